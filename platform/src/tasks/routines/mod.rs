//! Recurring practice routines: series of cards by rule, templates, reminders.

use std::sync::Arc;

use actix_web::web;
use kollegium_tenants::jobs::Handler as JobHandler;

use crate::app::Node;

pub mod holidays;
pub mod rule;

/// Registers the routines' routes (fixed paths under `/tasks/`).
pub fn configure(_cfg: &mut web::ServiceConfig) {}

/// The routines' kinds of background job (`tasks.*`).
pub fn job_kinds(_node: &Node<'_>) -> Vec<Arc<dyn JobHandler>> {
    Vec::new()
}
