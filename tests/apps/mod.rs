//! Typed test clients per workspace app: a signed-in member doing what a browser does
//! (open a page, send a form with the page's CSRF token), one method per user step, so the
//! tests read as the steps a user takes instead of raw requests.

pub mod attachments;
pub mod chat;
pub mod chat_api;
pub mod oidc;
pub mod operator;
