//! Tasks: kanban boards of the practice with recurring practice routines (issue 13), the
//! first app built on the seam ([`crate::app`]).
//!
//! - `app`: its [`crate::app::WorkspaceApp`] (navigation, routes, assets, tile, jobs, search).
//! - `routines`: recurring cards (rules evaluated in the practice's time zone), card and
//!   checklist templates, due-date reminders by mail.

pub mod app;
pub mod routines;

/// The app's id: live topics (`Topic { app: APP, id: <board> }`), job kinds (`tasks.*`),
/// export section, logs.
pub const APP: &str = "tasks";
