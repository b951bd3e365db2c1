//! Chat search: the page `GET /chat/search?q=…` (works without JavaScript) and the same
//! results as JSON at `GET /api/chat/search?q=…`.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout};

use super::search::{self, Hit, QueryError, SearchText};
use super::state::ChatState;
use crate::auth::Member;

#[derive(Debug, serde::Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// The layout of chat pages (navigation with "Chat" active).
pub fn chat_layout(m: &Member, csrf: &CsrfToken) -> Layout {
    crate::shell::page(m, csrf, super::live::APP)
}

/// A result as the page shows it.
struct ShownHit {
    hit: Hit,
    when: String,
}

#[derive(Template)]
#[template(path = "pages/chat_search.html")]
struct SearchPage {
    layout: Layout,
    q: String,
    searched: bool,
    error: Option<String>,
    hits: Vec<ShownHit>,
    max: usize,
}

enum Outcome {
    Empty,
    Refused(QueryError),
    Hits(Vec<Hit>),
}

async fn run(m: &Member, state: &ChatState, raw: &str) -> Result<Outcome, String> {
    let text = match SearchText::parse(raw) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Outcome::Empty),
        Err(e) => return Ok(Outcome::Refused(e)),
    };
    let (tenant, service, me, now) = (m.tenant.clone(), state.search(), m.id(), state.now());
    let hits = web::block(move || search::find(&tenant, &service, me, &text, now))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(Outcome::Hits(hits))
}

async fn page(
    m: Member,
    csrf: CsrfToken,
    state: web::Data<ChatState>,
    q: web::Query<SearchQuery>,
) -> HttpResponse {
    let raw = q.into_inner().q;
    let outcome = match run(&m, &state, &raw).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "chat search failed");
            return ErrorPage::new(500).response();
        }
    };
    let (status, searched, error, hits) = match outcome {
        Outcome::Empty => (StatusCode::OK, false, None, Vec::new()),
        Outcome::Refused(e) => (
            StatusCode::BAD_REQUEST,
            false,
            Some(e.to_string()),
            Vec::new(),
        ),
        Outcome::Hits(h) => (StatusCode::OK, true, None, h),
    };
    let page = SearchPage {
        layout: chat_layout(&m, &csrf),
        // An over-long query is not echoed back in full.
        q: raw.chars().take(search::MAX_QUERY_CHARS).collect(),
        searched,
        error,
        hits: hits
            .into_iter()
            .map(|hit| ShownHit {
                when: m.tenant.local_time(hit.created_at),
                hit,
            })
            .collect(),
        max: search::MAX_RESULTS,
    };
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "chat search page failed to render");
            ErrorPage::new(500).response()
        }
    }
}

#[derive(serde::Serialize)]
struct JsonHits {
    query: String,
    results: Vec<Hit>,
}

async fn api(m: Member, state: web::Data<ChatState>, q: web::Query<SearchQuery>) -> HttpResponse {
    let raw = q.into_inner().q;
    match run(&m, &state, &raw).await {
        Ok(Outcome::Empty) => HttpResponse::Ok().json(JsonHits {
            query: String::new(),
            results: Vec::new(),
        }),
        Ok(Outcome::Refused(e)) => HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "query_too_long", "message": e.to_string()})),
        Ok(Outcome::Hits(results)) => HttpResponse::Ok().json(JsonHits {
            query: raw.trim().to_owned(),
            results,
        }),
        Err(e) => {
            tracing::error!(error = %e, "chat search failed");
            HttpResponse::InternalServerError().json(serde_json::json!({
                "error": "internal",
                "message": "Die Suche ist gerade nicht möglich. Bitte versuchen Sie es später erneut."
            }))
        }
    }
}

/// Registers the search routes. Must come before `/chat/{room}` in the app's routing.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat/search", web::get().to(page))
        .route("/api/chat/search", web::get().to(api));
}
