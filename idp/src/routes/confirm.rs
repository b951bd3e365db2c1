//! The question before a destructive action ("Wirklich …?"): the page's button leads to
//! a GET page that says what will happen and carries the POST form; without JavaScript
//! this is the confirmation step. The POST itself stays as it was (CSRF-protected), so a
//! script or a test may still send it directly.

use actix_web::HttpResponse;
use askama::Template;
use kollegium_tenants::web::Layout;

use crate::error::IdpResult;
use crate::views::page;

#[derive(Template)]
#[template(path = "pages/idp/confirm.html")]
pub struct Confirm {
    pub layout: Layout,
    /// The page's heading, e.g. "Konto deaktivieren?".
    pub title: String,
    /// The question, naming what is affected.
    pub question: String,
    /// What follows from it (may be empty).
    pub consequence: String,
    /// Where the button posts to.
    pub action: String,
    /// The button's words, e.g. "Ja, deaktivieren".
    pub button: String,
    /// Where "Abbrechen" leads back to.
    pub cancel: String,
}

impl Confirm {
    pub fn response(&self) -> IdpResult<HttpResponse> {
        page(self)
    }
}
