//! Tasks as a workspace app: its entry in [`crate::app::APPS`].

use std::sync::Arc;

use actix_web::web;
use kollegium_tenants::jobs::Handler as JobHandler;

use crate::app::{Node, WorkspaceApp};

/// The tasks app.
#[derive(Debug, Clone, Copy)]
pub struct Tasks;

impl WorkspaceApp for Tasks {
    fn id(&self) -> &'static str {
        super::APP
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        // Fixed paths of the routines (`/tasks/templates`, ...) before the boards' `{id}` ones.
        super::routines::configure(cfg);
    }

    fn job_kinds(&self, node: &Node<'_>) -> Vec<Arc<dyn JobHandler>> {
        super::routines::job_kinds(node)
    }
}
