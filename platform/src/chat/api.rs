//! The chat's JSON API under `/api/chat/`, for the browser script and other clients.
//! Same rules as the pages: a member sees only rooms they may read; an unknown room and a
//! room they may not read are the same 404. State-changing requests need the CSRF token
//! in the `X-CSRF-Token` header (the page's `<meta name="csrf-token">`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, error, web};
use kollegium_tenants::UnixTime;

use super::actions::{self, MessageAction, RoomChange};
use super::live::{self, ApiMessage};
use super::messages;
use super::rooms::{self, Visibility};
use super::routes::{PageError, actor, edit_window, with_db, write_db};
use super::state::ChatState;
use super::{ChatError, MessageId, PAGE_SIZE, RoomId};
use crate::auth::Member;
use crate::members::{self, MemberId};

/// Largest JSON body accepted (a 10,000-character message fits several times).
const MAX_JSON_BYTES: usize = 128 * 1024;

pub use crate::error::ApiError;

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::Chat(c) => c.into(),
            PageError::Internal(e) => {
                crate::error::log_5xx("chat API request failed", &e);
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Interner Fehler. Bitte versuchen Sie es später erneut.",
                )
            }
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(c: ChatError) -> Self {
        if matches!(c, ChatError::Db(_)) {
            return super::routes::internal(c).into();
        }
        let status = StatusCode::from_u16(c.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let code = match c {
            ChatError::RoomNotFound | ChatError::MessageNotFound => "not_found",
            ChatError::RateLimited => "rate_limited",
            ChatError::TooLong => "too_long",
            ChatError::NotAuthor
            | ChatError::WindowClosed
            | ChatError::NotAllowed
            | ChatError::NotManager
            | ChatError::DefaultRoom
            | ChatError::Archived => "forbidden",
            _ => "invalid",
        };
        Self::new(status, code, c.to_string())
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

fn query_error(err: error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed",
        format!("Ungültige Parameter: {err}"),
    )
    .into()
}

fn path_error(_: error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::from(ChatError::RoomNotFound).into()
}

#[derive(serde::Serialize)]
struct RoomSummary {
    id: i64,
    title: String,
    topic: String,
    direct: bool,
    private: bool,
    archived: bool,
    unread: i64,
    mentions: i64,
    last_message_id: Option<i64>,
    last_author: Option<String>,
    last_excerpt: Option<String>,
    last_at: Option<i64>,
}

async fn list_rooms(m: Member) -> ApiResult {
    let me = m.id();
    let list = with_db(&m, move |c| {
        rooms::list_for(c, me).map_err(super::routes::internal)
    })
    .await?;
    let out: Vec<RoomSummary> = list
        .into_iter()
        .map(|s| RoomSummary {
            id: s.id.0,
            title: s.title,
            topic: s.topic,
            direct: s.direct,
            private: s.private,
            archived: s.archived,
            unread: s.unread,
            mentions: s.mentions,
            last_message_id: s.last_message_id,
            last_author: s.last.as_ref().map(|l| l.0.clone()),
            last_excerpt: s.last.as_ref().map(|l| l.1.clone()),
            last_at: s.last.as_ref().map(|l| l.2),
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rooms": out, "me": me.0 })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoom {
    name: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    members: Vec<i64>,
}

async fn create_room(
    m: Member,
    state: web::Data<ChatState>,
    body: web::Json<NewRoom>,
) -> ApiResult {
    let f = body.into_inner();
    if f.members.len() > 500 {
        return Err(ChatError::NotAllowed.into());
    }
    let (me, now) = (m.id(), state.now());
    let vis = if f.private {
        Visibility::Private
    } else {
        Visibility::Open
    };
    let id = with_db(&m, move |c| {
        let invite: Vec<MemberId> = f.members.iter().copied().map(MemberId).collect();
        for who in &invite {
            if members::by_id(c, *who)
                .map_err(super::routes::internal)?
                .is_none()
            {
                return Err(ChatError::NotAllowed.into());
            }
        }
        Ok(rooms::create_group(
            c, me, &f.name, &f.topic, vis, &invite, now,
        )?)
    })
    .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": id.0 })))
}

async fn direct(m: Member, state: web::Data<ChatState>, other: web::Path<i64>) -> ApiResult {
    let (me, now, other) = (m.id(), state.now(), MemberId(other.into_inner()));
    let id = with_db(&m, move |c| Ok(rooms::direct(c, me, other, now)?)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id.0 })))
}

#[derive(serde::Serialize)]
struct Person {
    id: i64,
    username: String,
    name: String,
    /// Role labels (the shared catalogue), e.g. `["Ärzt:in"]`.
    roles: Vec<String>,
}

async fn people(m: Member) -> ApiResult {
    let list = with_db(&m, |c| members::list(c).map_err(super::routes::internal)).await?;
    let out: Vec<Person> = list
        .into_iter()
        .map(|p| Person {
            id: p.id.0,
            roles: p.role_labels(),
            username: p.username,
            name: p.display_name,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "members": out })))
}

async fn room(m: Member, state: web::Data<ChatState>, id: web::Path<i64>) -> ApiResult {
    let (room_id, me, now) = (RoomId(id.into_inner()), m.id(), state.now());
    let v = with_db(&m, move |c| {
        let r = rooms::readable(c, room_id, me, now)?;
        let title = if r.is_direct() {
            rooms::direct_title(c, room_id, me).map_err(super::routes::internal)?
        } else {
            r.name.clone()
        };
        let people: Vec<Person> = rooms::member_list(c, room_id)
            .map_err(super::routes::internal)?
            .into_iter()
            .map(|p| Person {
                id: p.id.0,
                username: p.username,
                name: p.display_name,
                roles: p.roles,
            })
            .collect();
        Ok(serde_json::json!({
            "id": r.id, "title": title, "name": r.name, "topic": r.topic,
            "direct": r.is_direct(), "private": !r.is_open(), "archived": r.archived,
            "last_message_id": r.last_message_id, "members": people,
            "edit_window_secs": edit_window(c).map_err(ChatError::Db)?,
        }))
    })
    .await?;
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomPatch {
    name: Option<String>,
    topic: Option<String>,
    archived: Option<bool>,
}

async fn patch_room(
    m: Member,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    body: web::Json<RoomPatch>,
) -> ApiResult {
    let (room_id, who, now) = (RoomId(id.into_inner()), actor(&m), state.now());
    let f = body.into_inner();
    let events = with_db(&m, move |c| {
        let r = rooms::readable(c, room_id, who.id, now)?;
        let name = f.name.unwrap_or(r.name);
        let topic = f.topic.unwrap_or(r.topic);
        let archived = f.archived.unwrap_or(r.archived);
        let change = RoomChange {
            details: Some((&name, &topic, archived)),
            members: &[],
        };
        Ok(actions::update_room(c, room_id, who, change, now)?)
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(HttpResponse::NoContent().finish())
}

async fn membership(
    req: HttpRequest,
    m: Member,
    state: web::Data<ChatState>,
    path: web::Path<(i64, i64)>,
) -> ApiResult {
    let (room_id, member) = path.into_inner();
    let present = req.method() == actix_web::http::Method::PUT;
    let (room_id, who, now) = (RoomId(room_id), actor(&m), state.now());
    let events = with_db(&m, move |c| {
        let change = RoomChange {
            details: None,
            members: &[(MemberId(member), present)],
        };
        Ok(actions::update_room(c, room_id, who, change, now)?)
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    before: Option<i64>,
    after: Option<i64>,
}

async fn list_messages(
    m: Member,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    q: web::Query<PageQuery>,
) -> ApiResult {
    let (room_id, me, now) = (RoomId(id.into_inner()), m.id(), state.now());
    let q = q.into_inner();
    let list = with_db(&m, move |c| {
        rooms::readable(c, room_id, me, now)?;
        let page = match q.after {
            Some(a) => messages::since(c, room_id, MessageId(a), PAGE_SIZE),
            None => messages::page(c, room_id, q.before.map(MessageId)),
        }
        .map_err(super::routes::internal)?;
        messages::views(c, &page, me).map_err(super::routes::internal)
    })
    .await?;
    let more = list.len() as i64 == PAGE_SIZE;
    let out: Vec<ApiMessage> = list.into_iter().map(ApiMessage::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "messages": out, "more": more })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    body: String,
    reply_to: Option<i64>,
}

/// The message as `me` sees it, after a change.
fn view_for(
    c: &mut diesel::SqliteConnection,
    msg: &messages::Message,
    me: MemberId,
) -> Result<ApiMessage, PageError> {
    messages::views(c, std::slice::from_ref(msg), me)
        .map_err(super::routes::internal)?
        .pop()
        .map(ApiMessage::from)
        .ok_or_else(|| PageError::Internal(crate::error::Internal::msg("message vanished")))
}

async fn post_message(
    m: Member,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    body: web::Json<NewMessage>,
) -> ApiResult {
    let (room_id, me, now) = (RoomId(id.into_inner()), m.id(), state.now());
    if !state.allow_post(m.tenant.slug().as_str(), me.0) {
        return Err(ChatError::RateLimited.into());
    }
    let f = body.into_inner();
    let (_, events) = write_db(&m, move |c| {
        actions::post(c, room_id, me, &f.body, f.reply_to.map(MessageId), now)
    })
    .await?;
    // The author's view is the live message as the author reads it (no second rendering).
    let view = events
        .iter()
        .find_map(|e| match &e.kind {
            live::EventKind::Posted(l) => Some(ApiMessage::from(l.for_reader(me.0))),
            _ => None,
        })
        .ok_or_else(|| {
            PageError::Internal(crate::error::Internal::msg(
                "posted message without its event",
            ))
        })?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagePatch {
    body: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Reaction {
    emoji: String,
    #[serde(default = "yes")]
    on: bool,
}

fn yes() -> bool {
    true
}

enum Change {
    Edit(String),
    Delete,
    React(String, bool),
}

async fn change_message(
    m: &Member,
    state: &ChatState,
    room_id: RoomId,
    msg_id: MessageId,
    change: Change,
    now: UnixTime,
) -> ApiResult {
    let who = actor(m);
    let (view, events) = with_db(m, move |c| {
        let action = match &change {
            Change::Edit(b) => MessageAction::Edit(b),
            Change::Delete => MessageAction::Delete,
            Change::React(e, on) => MessageAction::React { emoji: e, on: *on },
        };
        let window = edit_window(c).map_err(ChatError::Db)?;
        let (msg, events) = actions::on_message(c, room_id, msg_id, who, action, window, now)?;
        Ok((view_for(c, &msg, who.id)?, events))
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(HttpResponse::Ok().json(view))
}

async fn patch_message(
    m: Member,
    state: web::Data<ChatState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<MessagePatch>,
) -> ApiResult {
    let (r, id) = path.into_inner();
    let now = state.now();
    let change = Change::Edit(body.into_inner().body);
    change_message(&m, &state, RoomId(r), MessageId(id), change, now).await
}

async fn delete_message(
    m: Member,
    state: web::Data<ChatState>,
    path: web::Path<(i64, i64)>,
) -> ApiResult {
    let (r, id) = path.into_inner();
    let now = state.now();
    change_message(&m, &state, RoomId(r), MessageId(id), Change::Delete, now).await
}

async fn react(
    m: Member,
    state: web::Data<ChatState>,
    path: web::Path<(i64, i64)>,
    body: web::Json<Reaction>,
) -> ApiResult {
    let (r, id) = path.into_inner();
    let now = state.now();
    let f = body.into_inner();
    let change = Change::React(f.emoji, f.on);
    change_message(&m, &state, RoomId(r), MessageId(id), change, now).await
}

async fn read_by(m: Member, state: web::Data<ChatState>, path: web::Path<(i64, i64)>) -> ApiResult {
    let (r, id) = path.into_inner();
    let (room_id, me, now) = (RoomId(r), m.id(), state.now());
    let names = with_db(&m, move |c| {
        let room = rooms::readable(c, room_id, me, now)?;
        let msg = messages::by_id(c, MessageId(id))
            .map_err(super::routes::internal)?
            .filter(|x| x.room_id == room.id)
            .ok_or(ChatError::MessageNotFound)?;
        messages::read_by(c, &msg).map_err(super::routes::internal)
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "read_by": names })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    upto: i64,
}

async fn mark_read(
    m: Member,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    body: web::Json<Read>,
) -> ApiResult {
    let (room_id, me, now) = (RoomId(id.into_inner()), m.id(), state.now());
    let upto = MessageId(body.into_inner().upto);
    let events = with_db(&m, move |c| {
        Ok(actions::mark_read(c, room_id, me, upto, now)?)
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(HttpResponse::NoContent().finish())
}

/// Registers `/api/chat/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/chat")
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_JSON_BYTES)
                    .error_handler(crate::error::json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            // Posting first: actix tries the routes in order, each `{param}` one by a regex
            // match (the post reached its route after six of them, ~5 % of its CPU). No other
            // route matches a POST to this path, so the order changes nothing else.
            .route("/rooms/{room}/messages", web::post().to(post_message))
            .route("/ws", web::get().to(super::ws::connect))
            .route("/members", web::get().to(people))
            .route("/direct/{member}", web::post().to(direct))
            .route("/rooms", web::get().to(list_rooms))
            .route("/rooms", web::post().to(create_room))
            .route("/rooms/{room}", web::get().to(room))
            .route("/rooms/{room}", web::patch().to(patch_room))
            .route("/rooms/{room}/members/{member}", web::put().to(membership))
            .route(
                "/rooms/{room}/members/{member}",
                web::delete().to(membership),
            )
            .route("/rooms/{room}/messages", web::get().to(list_messages))
            .route("/rooms/{room}/read", web::post().to(mark_read))
            .route(
                "/rooms/{room}/messages/{message}",
                web::patch().to(patch_message),
            )
            .route(
                "/rooms/{room}/messages/{message}",
                web::delete().to(delete_message),
            )
            .route(
                "/rooms/{room}/messages/{message}/reactions",
                web::post().to(react),
            )
            .route(
                "/rooms/{room}/messages/{message}/read-by",
                web::get().to(read_by),
            ),
    );
}
