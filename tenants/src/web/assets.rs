//! Static assets embedded in the binary, served under content-hashed names with a long
//! cache lifetime (`/static/app.3f2a9c1d.css`).
//!
//! The shell's own assets (`app.css`, `favicon.svg`) are built in; everything else is
//! registered by whoever owns it ([`register`], at composition time): `tenants` names no
//! app. Registering a name again is a no-op, so a process may start several servers.

use std::sync::{LazyLock, RwLock};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};

/// An asset as its owner registers it: plain name, content type and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

struct Asset {
    name: &'static str,
    hashed: &'static str,
    href: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The shell's own assets, used by every page's layout.
const SHELL: &[Source] = &[
    Source {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../templates/static/app.css"),
    },
    Source {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../templates/static/favicon.svg"),
    },
];

static ASSETS: LazyLock<RwLock<Vec<Asset>>> =
    LazyLock::new(|| RwLock::new(SHELL.iter().map(hashed).collect()));

fn hashed(s: &Source) -> Asset {
    let digest = hex::encode(&Sha256::digest(s.body)[..5]);
    let hashed = match s.name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{digest}.{ext}"),
        None => format!("{}.{digest}", s.name),
    };
    let href = format!("/static/{hashed}");
    // Leaked once per registered name: assets live as long as the process.
    Asset {
        name: s.name,
        hashed: Box::leak(hashed.into_boxed_str()),
        href: Box::leak(href.into_boxed_str()),
        content_type: s.content_type,
        body: s.body,
    }
}

/// Adds assets to what `/static/` serves. A name already registered keeps its first
/// registration (the bytes are compiled in, so they are the same).
pub fn register(sources: &[Source]) {
    let Ok(mut assets) = ASSETS.write() else {
        tracing::error!("asset registry lock poisoned; assets not registered");
        return;
    };
    for s in sources {
        if !assets.iter().any(|a| a.name == s.name) {
            assets.push(hashed(s));
        }
    }
}

/// The URL path of an embedded asset by its plain name (`"app.css"`). An unknown name
/// yields a path that 404s, never a panic.
pub fn href(name: &str) -> &'static str {
    ASSETS
        .read()
        .ok()
        .and_then(|a| a.iter().find(|a| a.name == name).map(|a| a.href))
        .unwrap_or("/static/missing")
}

async fn serve(path: web::Path<String>) -> HttpResponse {
    let found = ASSETS.read().ok().and_then(|assets| {
        assets
            .iter()
            .find(|a| a.hashed == path.as_str())
            .map(|a| (a.content_type, a.body))
    });
    match found {
        Some((content_type, body)) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .body(body),
        None => super::errors::ErrorPage::not_found().response(),
    }
}

/// Registers `/static/{name}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{name}", web::get().to(serve));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_carry_the_content_hash() {
        let h = href("app.css");
        assert!(
            h.starts_with("/static/app.") && h.ends_with(".css") && h.len() > 20,
            "{h}"
        );
        assert_eq!(href("nope.js"), "/static/missing");
    }

    #[test]
    fn owners_register_their_assets_once() {
        assert_eq!(href("widget.js"), "/static/missing");
        let src = Source {
            name: "widget.js",
            content_type: "text/javascript; charset=utf-8",
            body: b"console.log(1)",
        };
        register(&[src]);
        let first = href("widget.js");
        assert!(first.starts_with("/static/widget.") && first.ends_with(".js"));
        register(&[src]);
        assert_eq!(href("widget.js"), first);
        let n = ASSETS
            .read()
            .unwrap()
            .iter()
            .filter(|a| a.name == "widget.js")
            .count();
        assert_eq!(n, 1, "registered once");
    }
}
