//! The tasks JSON API under `/api/tasks/`, used by `tasks.js`: read a board, move a card,
//! create a card, quick edits. Same checks as the pages: a board or card the member may not
//! read is a 404 like an unknown id. State-changing requests need the CSRF token in the
//! `X-CSRF-Token` header.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, error, web};

use super::board_view;
use super::cards::{self, CardChange, NewCard};
use super::live::{Change, Event};
use super::web::{PageError, after_commit, read, write};
use super::{BoardId, CardId, ColumnId, Permission, TaskError, boards};
use crate::app::AppContext;
use crate::auth::Member;

/// Largest JSON body accepted (a full description fits; a 1 MB one does not).
const MAX_JSON_BYTES: usize = 256 * 1024;

pub use crate::error::ApiError;

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        if e.is_internal() {
            crate::error::log_5xx("tasks API request failed", &e);
            return Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Interner Fehler. Bitte versuchen Sie es später erneut.",
            );
        }
        match e {
            PageError::Task(t) => {
                let status = StatusCode::from_u16(t.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let code = match status.as_u16() {
                    404 => "not_found",
                    403 => "forbidden",
                    409 => "conflict",
                    413 => "too_long",
                    422 => "infected",
                    503 => "unavailable",
                    _ => "invalid",
                };
                Self::new(status, code, t.to_string())
            }
            PageError::Internal(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", ""),
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(t: TaskError) -> Self {
        PageError::Task(t).into()
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

fn path_error(_: error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "Nicht gefunden.").into()
}

#[derive(serde::Serialize)]
struct ApiColumn {
    id: i64,
    title: String,
    is_done: bool,
    cards: Vec<board_view::Tile>,
}

async fn get_board(m: Member, id: web::Path<i64>) -> ApiResult {
    let (board, me) = (BoardId(id.into_inner()), m.id());
    let view = read(&m, move |c| board_view::load(c, board, me)).await?;
    let columns: Vec<ApiColumn> = view
        .columns
        .into_iter()
        .map(|c| ApiColumn {
            id: c.column.id,
            title: c.column.title,
            is_done: c.column.is_done,
            cards: c.cards,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": view.board.id,
        "title": view.board.title,
        "archived": view.board.is_archived(),
        "permission": view.permission.as_str(),
        "columns": columns,
    })))
}

async fn get_card(m: Member, id: web::Path<i64>) -> ApiResult {
    let (card, me) = (CardId(id.into_inner()), m.id());
    let (c, perm) = read(&m, move |c| cards::readable(c, card, me)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"card": c, "permission": perm.as_str()})))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    column: i64,
    position: i64,
}

async fn move_card(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    body: web::Json<Move>,
) -> ApiResult {
    let (card, me, now) = (CardId(id.into_inner()), m.id(), shared.now());
    let b = body.into_inner();
    let (moved, ev) = write(&m, move |c| {
        let moved = cards::move_card(c, card, me, ColumnId(b.column), b.position, now)?;
        let board = cards::by_id(c, card)?
            .ok_or(TaskError::CardNotFound)?
            .board();
        let change = Change::Moved {
            card: card.0,
            column: moved.to_column,
            position: moved.position,
        };
        Ok((moved, Event::new(c, board, change, me.0)?))
    })
    .await?;
    after_commit(&shared, &m, vec![ev], false);
    Ok(HttpResponse::Ok().json(moved))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    title: String,
    #[serde(default)]
    column: Option<i64>,
    #[serde(default)]
    description: String,
}

async fn create_card(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    body: web::Json<Create>,
) -> ApiResult {
    let (board, me, now) = (BoardId(id.into_inner()), m.id(), shared.now());
    let b = body.into_inner();
    let (card, ev) = write(&m, move |c| {
        boards::writable(c, board, me, Permission::Edit)?;
        let new = NewCard {
            title: b.title,
            description: b.description,
            ..NewCard::default()
        };
        let card = cards::create_card(c, board, b.column.map(ColumnId), Some(me), &new, now)?;
        let stored = cards::by_id(c, card)?.ok_or(TaskError::CardNotFound)?;
        Ok((
            stored,
            Event::new(c, board, Change::Card { card: card.0 }, me.0)?,
        ))
    })
    .await?;
    after_commit(&shared, &m, vec![ev], false);
    // The title as stored (trimmed), for the board page to show the card in place.
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": card.id,
        "title": card.title,
        "column": card.column_id,
    })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    title: Option<String>,
    description: Option<String>,
    /// `YYYY-MM-DD`, empty to remove the due date (with `due_time`, `HH:MM` or empty).
    due_date: Option<String>,
    #[serde(default)]
    due_time: String,
}

async fn patch_card(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    body: web::Json<Patch>,
) -> ApiResult {
    let (card, me, now) = (CardId(id.into_inner()), m.id(), shared.now());
    let b = body.into_inner();
    let zone = m.tenant.time_zone().clone();
    let due = match &b.due_date {
        Some(d) => Some(super::time::parse_due(&zone, d, &b.due_time)?),
        None => None,
    };
    let change = CardChange {
        title: b.title,
        description: b.description,
        due,
    };
    let (updated, ev) = write(&m, move |c| {
        let updated = cards::update_card(c, card, me, &change, now)?;
        let ev = Event::new(c, updated.board(), Change::Card { card: card.0 }, me.0)?;
        Ok((updated, ev))
    })
    .await?;
    after_commit(&shared, &m, vec![ev], false);
    Ok(HttpResponse::Ok().json(serde_json::json!({"card": updated})))
}

/// Registers `/api/tasks/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/tasks")
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_JSON_BYTES)
                    .error_handler(crate::error::json_error),
            )
            .app_data(web::PathConfig::default().error_handler(path_error))
            .route("/boards/{id}", web::get().to(get_board))
            .route("/boards/{id}/cards", web::post().to(create_card))
            .route("/cards/{id}", web::get().to(get_card))
            .route("/cards/{id}", web::patch().to(patch_card))
            .route("/cards/{id}/move", web::post().to(move_card)),
    );
}
