//! The practice's news settings (`/news/admin`, practice admins only): "Neuigkeiten per
//! E-Mail ankündigen" ([`super::mail`]). The setting lives in the practice's database; the
//! registry's flag follows it so the node finds the practices to open cheaply.

use actix_web::http::header::ContentType;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::registry;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout, WebContext};

use super::mail;
use crate::PLATFORM_DB;
use crate::app::AppContext;
use crate::auth::MemberAdmin;

#[derive(Template)]
#[template(path = "news/admin.html")]
struct AdminPage {
    layout: Layout,
    announce: bool,
    saved: bool,
    error: Option<&'static str>,
}

impl AdminPage {
    fn respond(&self, status: StatusCode) -> HttpResponse {
        match self.render() {
            Ok(body) => HttpResponse::build(status)
                .content_type(ContentType::html())
                .body(body),
            Err(e) => failed(&e),
        }
    }
}

fn failed(e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "news settings failed");
    ErrorPage::new(500).response()
}

/// Runs `f` on the blocking pool; its failure or the pool's is the 500 page.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, HttpResponse> {
    match kollegium_tenants::web::block(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(&e)),
        Err(e) => Err(failed(&e)),
    }
}

fn layout(a: &MemberAdmin, csrf: &CsrfToken) -> Layout {
    crate::shell::page(&a.0, csrf, super::APP)
}

#[derive(Debug, serde::Deserialize)]
pub struct SavedQuery {
    gespeichert: Option<String>,
}

async fn show(a: MemberAdmin, csrf: CsrfToken, q: web::Query<SavedQuery>) -> HttpResponse {
    let t = a.0.tenant.clone();
    let on = blocking(move || {
        let mut conn = t.conn(&PLATFORM_DB).map_err(|e| e.to_string())?;
        mail::enabled(&mut conn).map_err(|e| e.to_string())
    })
    .await;
    let announce = match on {
        Ok(on) => on,
        Err(res) => return res,
    };
    AdminPage {
        layout: layout(&a, &csrf),
        announce,
        saved: q.gespeichert.is_some(),
        error: None,
    }
    .respond(StatusCode::OK)
}

/// The form's one choice: the checkbox `announce=1` (absent: off); anything else is refused.
fn parse(fields: &[(String, String)]) -> Option<bool> {
    let mut on = false;
    for (k, v) in fields {
        match (k.as_str(), v.as_str()) {
            ("csrf_token", _) => {}
            ("announce", "1") if !on => on = true,
            _ => return None,
        }
    }
    Some(on)
}

async fn save(
    a: MemberAdmin,
    csrf: CsrfToken,
    web_ctx: web::Data<WebContext>,
    shared: web::Data<AppContext>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let Some(on) = parse(&form) else {
        return AdminPage {
            layout: layout(&a, &csrf),
            announce: false,
            saved: false,
            error: Some("Die Eingabe ist ungültig. Bitte wählen Sie die Einstellung erneut."),
        }
        .respond(StatusCode::BAD_REQUEST);
    };
    let last_seq = shared.broadcasts.as_ref().map_or(0, |f| f.last_seq());
    let (t, store, now) = (a.0.tenant.clone(), web_ctx.store.clone(), shared.now());
    let done = blocking(move || {
        let slug = t.slug().clone();
        let flag = |on: bool| {
            store
                .with_registry(|c| registry::set_flag(c, &slug, mail::FLAG, on, now))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let mut conn = t.conn(&PLATFORM_DB).map_err(|e| e.to_string())?;
        // The flag is never missing while the setting is on.
        if on {
            flag(true)?;
        }
        mail::set(&mut conn, on, last_seq).map_err(|e| e.to_string())?;
        if !on {
            flag(false)?;
        }
        Ok(())
    })
    .await;
    if let Err(res) = done {
        return res;
    }
    tracing::info!(practice = %a.0.tenant.slug(), announce = on, "news settings changed");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/news/admin?gespeichert=1"))
        .finish()
}

/// Registers `/news/admin` (before `/news/{id}`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/news/admin", web::get().to(show))
        .route("/news/admin", web::post().to(save));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_has_one_checkbox_and_nothing_else() {
        let f = |v: &[(&str, &str)]| {
            parse(
                &v.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(f(&[("csrf_token", "x")]), Some(false));
        assert_eq!(f(&[("csrf_token", "x"), ("announce", "1")]), Some(true));
        assert_eq!(f(&[("announce", "yes")]), None);
        assert_eq!(f(&[("announce", "1"), ("announce", "1")]), None);
        assert_eq!(f(&[("announce", "1"), ("other", "1")]), None);
    }
}
