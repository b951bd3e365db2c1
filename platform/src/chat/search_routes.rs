//! Chat search: the page `GET /chat/search?q=…` (the one search page filtered to chat,
//! works without JavaScript) and chat's results as JSON at `GET /api/chat/search?q=…`.

use actix_web::{HttpRequest, HttpResponse, web};
use kollegium_tenants::web::{CsrfToken, Layout};

use super::search::{self, Hit, QueryError, SearchText};
use super::state::ChatState;
use crate::app::AppContext;
use crate::auth::Member;
use crate::error::{Internal, log_5xx};
use crate::search::page::{View, respond};

#[derive(Debug, serde::Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// The layout of chat pages (navigation with "Chat" active).
pub fn chat_layout(m: &Member, csrf: &CsrfToken) -> Layout {
    crate::shell::page(m, csrf, super::live::APP)
}

/// `/chat/search`: the one search page, filtered to chat messages.
const CHAT: View = View {
    action: "/chat/search",
    heading: "Nachrichten durchsuchen",
    active: super::live::APP,
    only: Some(search::KIND),
    back: Some(("/chat", "Zurück zum Chat")),
};

enum Outcome {
    Empty,
    Refused(QueryError),
    Hits(Vec<Hit>),
}

async fn run(m: &Member, state: &ChatState, raw: &str) -> Result<Outcome, Internal> {
    let text = match SearchText::parse(raw) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Outcome::Empty),
        Err(e) => return Ok(Outcome::Refused(e)),
    };
    let (tenant, service, me, now) = (m.tenant.clone(), state.search(), m.id(), state.now());
    let hits =
        kollegium_tenants::web::block(move || search::find(&tenant, &service, me, &text, now))
            .await
            .map_err(|e| Internal::new("chat search", e))?
            .map_err(|e| Internal::new("chat search", e))?;
    Ok(Outcome::Hits(hits))
}

async fn page(
    req: HttpRequest,
    m: Member,
    csrf: CsrfToken,
    ctx: web::Data<AppContext>,
) -> HttpResponse {
    respond(&m, &csrf, &ctx, req.query_string(), &CHAT).await
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
        Ok(Outcome::Refused(e)) => {
            let code = match e {
                QueryError::TooLong => "query_too_long",
                QueryError::UnknownKind => "unknown_kind",
            };
            HttpResponse::BadRequest()
                .json(serde_json::json!({"error": code, "message": e.to_string()}))
        }
        Ok(Outcome::Hits(results)) => HttpResponse::Ok().json(JsonHits {
            query: raw.trim().to_owned(),
            results,
        }),
        Err(e) => {
            log_5xx("chat search failed", &e);
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
