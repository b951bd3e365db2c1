//! The search page "Suche", `GET /search?q=…&kind=…`: hits of every kind the member may
//! read, each labelled with its kind ("Chat"), with the matched words highlighted and a
//! link to the hit. Server-rendered, works without JavaScript. `/chat/search` is the same
//! page filtered to chat ([`View`]).

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout};

use super::Shown;
use super::find::{self, MAX_QUERY_CHARS, MAX_RESULTS, QueryError, SearchText};
use crate::app::{AppContext, DirectSearch, SearchSource, direct_searches, search_sources};
use crate::auth::Member;
use crate::error::{Internal, log_5xx};

/// Which search a page is: the whole workspace's, or one app's filtered view.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// Where the form sends the query.
    pub action: &'static str,
    /// The form's label.
    pub heading: &'static str,
    /// The app whose navigation entry is marked (none for the whole search).
    pub active: &'static str,
    /// The one kind searched, or every kind the apps have (with a filter).
    pub only: Option<&'static str>,
    /// A link back to the app: (href, text).
    pub back: Option<(&'static str, &'static str)>,
}

/// `/search`: every kind.
pub const ALL: View = View {
    action: "/search",
    heading: "Alles durchsuchen, was Sie lesen dürfen",
    active: "search",
    only: None,
    back: None,
};

/// A kind in the page's filter.
struct KindOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "pages/search.html")]
struct SearchPage<'a> {
    layout: Layout,
    view: &'a View,
    q: String,
    kinds: Vec<KindOption>,
    searched: bool,
    error: Option<String>,
    hits: Vec<Shown>,
    max: usize,
    /// The same query over every kind (on a filtered view).
    everywhere: Option<String>,
    /// The labels of the kinds searched ("Chat").
    covers: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Params {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
}

/// What a request asked for.
enum Outcome {
    /// No query yet: the form.
    Empty,
    /// A query the page refuses, with the reason shown.
    Refused(String),
    Hits(Vec<Shown>),
}

/// The search page of `view` for `query` (the request's query string). Refused input (too
/// long, unknown kind, an unreadable query string) is a 400 with the reason in German;
/// query syntax is no input error (every query is words).
pub async fn respond(
    m: &Member,
    csrf: &CsrfToken,
    ctx: &web::Data<AppContext>,
    query: &str,
    view: &View,
) -> HttpResponse {
    let params = serde_urlencoded::from_str::<Params>(query);
    let (params, outcome) = match params {
        Ok(p) => {
            let outcome = run(m, ctx, &p, view).await;
            (p, outcome)
        }
        Err(_) => (
            Params::default(),
            Ok(Outcome::Refused(
                "Die Suchanfrage ist ungültig. Bitte geben Sie Ihre Suchbegriffe erneut ein."
                    .to_owned(),
            )),
        ),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            log_5xx("search failed", &e);
            return ErrorPage::new(500).response();
        }
    };
    let (status, searched, error, hits) = match outcome {
        Outcome::Empty => (StatusCode::OK, false, None, Vec::new()),
        Outcome::Refused(e) => (StatusCode::BAD_REQUEST, false, Some(e), Vec::new()),
        Outcome::Hits(h) => (StatusCode::OK, true, None, h),
    };
    // An over-long query is not echoed back in full.
    let q: String = params.q.chars().take(MAX_QUERY_CHARS).collect();
    let kind = params.kind.as_str();
    let kinds = match view.only {
        Some(_) => Vec::new(),
        None => kinds_of_all()
            .map(|(value, label)| KindOption {
                value,
                label,
                selected: value == kind,
            })
            .collect(),
    };
    let everywhere = (view.only.is_some() && searched).then(|| {
        format!(
            "/search?{}",
            serde_urlencoded::to_string([("q", &q)]).unwrap_or_default()
        )
    });
    let page = SearchPage {
        layout: layout(m, csrf, view),
        view,
        q,
        kinds,
        searched,
        error,
        hits,
        max: MAX_RESULTS,
        everywhere,
        covers: kinds_of_all()
            .map(|(_, label)| label)
            .collect::<Vec<_>>()
            .join(", "),
    };
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type(ContentType::html())
            .body(body),
        Err(e) => {
            log_5xx(
                "search failed",
                &Internal::new("rendering the search page", e),
            );
            ErrorPage::new(500).response()
        }
    }
}

/// Every kind the whole search covers: the apps' indexed kinds, then their kinds found
/// outside the index (the news).
fn kinds_of_all() -> impl Iterator<Item = (&'static str, &'static str)> {
    search_sources()
        .map(|s| (s.kind(), s.label()))
        .chain(direct_searches().map(|d| (d.kind(), d.label())))
}

fn layout(m: &Member, csrf: &CsrfToken, view: &View) -> Layout {
    crate::shell::page(m, csrf, view.active)
}

async fn run(
    m: &Member,
    ctx: &web::Data<AppContext>,
    p: &Params,
    view: &View,
) -> Result<Outcome, Internal> {
    let kind = view.only.unwrap_or(p.kind.as_str());
    // An app's own view searches its indexed kind; the whole search also asks the apps'
    // sources outside the index, all of them or the one the filter names.
    let direct: Vec<&'static dyn DirectSearch> = match view.only {
        Some(_) => Vec::new(),
        None => direct_searches()
            .filter(|d| kind.is_empty() || d.kind() == kind)
            .collect(),
    };
    let direct_only = !kind.is_empty() && !direct.is_empty();
    let sources: Vec<&'static dyn SearchSource> = match find::sources(kind) {
        _ if direct_only => Vec::new(),
        Ok(s) => s,
        Err(e) => return Ok(Outcome::Refused(e.to_string())),
    };
    let text = match SearchText::parse(&p.q) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Outcome::Empty),
        Err(e @ (QueryError::TooLong | QueryError::UnknownKind)) => {
            return Ok(Outcome::Refused(e.to_string()));
        }
    };
    let (tenant, service, me, now) = (m.tenant.clone(), ctx.search.clone(), m.id(), ctx.now());
    let mut hits = if sources.is_empty() {
        Vec::new()
    } else {
        kollegium_tenants::web::block(move || {
            find::find(&tenant, &service, me, &text, &sources, now)
        })
        .await
        .map_err(|e| Internal::new("searching", e))?
        .map_err(|e| Internal::new("searching", e))?
    };
    for source in direct {
        let max = MAX_RESULTS.saturating_sub(hits.len());
        if max == 0 {
            break;
        }
        let (shared, row) = (ctx.clone(), m.member.clone());
        let (zone, q) = (m.tenant.time_zone().clone(), p.q.clone());
        let found =
            kollegium_tenants::web::block(move || source.find(&shared, &row, &q, now, &zone, max))
                .await
                .map_err(|e| Internal::new("searching outside the index", e))?
                .map_err(|e| Internal::new("searching outside the index", e))?;
        hits.extend(found);
    }
    Ok(Outcome::Hits(hits))
}

async fn page(
    req: HttpRequest,
    m: Member,
    csrf: CsrfToken,
    ctx: web::Data<AppContext>,
) -> HttpResponse {
    respond(&m, &csrf, &ctx, req.query_string(), &ALL).await
}

/// Registers `/search`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/search", web::get().to(page));
}
