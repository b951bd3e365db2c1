//! Static assets embedded in the binary, served under content-hashed names with a long
//! cache lifetime (`/static/app.3f2a9c1d.css`).

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    hashed: &'static str,
    href: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const SOURCES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../templates/static/app.css"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../templates/static/chat.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../templates/static/favicon.svg"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(name, content_type, body)| {
            let digest = hex::encode(&Sha256::digest(body)[..5]);
            let hashed = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{digest}.{ext}"),
                None => format!("{name}.{digest}"),
            };
            let href = format!("/static/{hashed}");
            Asset {
                name,
                hashed: Box::leak(hashed.into_boxed_str()),
                href: Box::leak(href.into_boxed_str()),
                content_type,
                body,
            }
        })
        .collect()
});

/// The URL path of an embedded asset by its plain name (`"app.css"`). An unknown name
/// yields a path that 404s, never a panic.
pub fn href(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.href)
        .unwrap_or("/static/missing")
}

async fn serve(path: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.hashed == path.as_str()) {
        Some(a) => HttpResponse::Ok()
            .content_type(a.content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .body(a.body),
        None => super::errors::ErrorPage::not_found().response(),
    }
}

/// Registers `/static/{name}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{name}", web::get().to(serve));
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashed_names_carry_the_content_hash() {
        let h = super::href("app.css");
        assert!(
            h.starts_with("/static/app.") && h.ends_with(".css") && h.len() > 20,
            "{h}"
        );
        assert_eq!(super::href("nope.js"), "/static/missing");
    }
}
