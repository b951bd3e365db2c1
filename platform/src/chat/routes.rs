//! Chat pages (`/chat`), server-rendered; they work without JavaScript.

use actix_web::http::header::ContentType;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;
use diesel::SqliteConnection;
use kollegium_tenants::time::Zone;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout};
use kollegium_tenants::{UnixTime, kv};

use super::actions::{self, MessageAction, RoomChange};
use super::messages::{self, View};
use super::rooms::{self, Summary, Visibility};
use super::state::ChatState;
use super::{Actor, ChatError, MessageId, REACTIONS, RoomId};
use crate::PLATFORM_DB;
use crate::auth::Member;
use crate::members::{self, MemberId};

/// Default time, in seconds, in which authors may edit or delete their messages.
pub const DEFAULT_EDIT_WINDOW_SECS: i64 = 15 * 60;

/// Errors of chat pages.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// Something failed inside: 500, the cause chain logged where the answer is rendered.
    #[error(transparent)]
    Internal(#[from] crate::error::Internal),
}

pub(super) fn internal<E: Into<crate::error::BoxError>>(e: E) -> PageError {
    PageError::Internal(crate::error::Internal::new("chat request", e))
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Chat(c) => StatusCode::from_u16(c.status()).unwrap_or(StatusCode::BAD_REQUEST),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Chat(ChatError::RoomNotFound | ChatError::MessageNotFound) => {
                ErrorPage::new(404).response()
            }
            Self::Chat(ChatError::Db(_)) | Self::Internal(_) => {
                crate::error::log_5xx("chat request failed", self);
                ErrorPage::new(500).response()
            }
            Self::Chat(c) => {
                let mut page = ErrorPage::new(status.as_u16());
                page.message = c.to_string().into();
                page.response()
            }
        }
    }
}

type PageResult = Result<HttpResponse, PageError>;

fn html(t: &impl Template) -> PageResult {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(t.render().map_err(internal)?))
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// Runs blocking chat work on this practice's database.
pub(super) async fn with_db<T: Send + 'static>(
    m: &Member,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    let t = m.tenant.clone();
    kollegium_tenants::web::block(move || {
        let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
        f(&mut conn)
    })
    .await
    .map_err(internal)?
}

/// Runs a chat write through the practice's group commit (see
/// `kollegium_tenants::group_commit`): writes arriving together share one transaction, and
/// the answer comes once the change is committed.
pub(super) async fn write_db<T: Send + 'static>(
    m: &Member,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, ChatError> + Send + 'static,
) -> Result<T, PageError> {
    use kollegium_tenants::group_commit::WriteError;
    m.tenant.write(&PLATFORM_DB, f).await.map_err(|e| match e {
        WriteError::Job(e) => PageError::Chat(e),
        WriteError::Db(why) => internal(format!("group commit: {why}")),
    })
}

/// The practice's edit window in seconds: the default if none is set. A database error is
/// an error (not the default: an admin's shorter window must not silently widen).
pub(super) fn edit_window(conn: &mut SqliteConnection) -> diesel::QueryResult<i64> {
    Ok(kv::get(conn, super::admin::EDIT_WINDOW_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EDIT_WINDOW_SECS))
}

pub(super) fn actor(m: &Member) -> Actor {
    Actor {
        id: m.id(),
        is_admin: m.member.is_admin,
    }
}

#[derive(Template)]
#[template(path = "pages/chat_list.html")]
struct ListPage {
    layout: Layout,
    me: i64,
    rooms: Vec<Summary>,
    /// Colleagues to write to: id, name, role labels.
    people: Vec<(i64, String, String)>,
    error: Option<String>,
    is_admin: bool,
}

async fn list(m: Member, csrf: CsrfToken) -> PageResult {
    let me = m.id();
    let (rooms, people) = with_db(&m, move |c| {
        let rooms = rooms::list_for(c, me).map_err(internal)?;
        let people = members::list(c)
            .map_err(internal)?
            .into_iter()
            .filter(|p| p.id != me)
            .map(|p| {
                let roles = p.role_labels().join(", ");
                (p.id.0, p.display_name, roles)
            })
            .collect();
        Ok((rooms, people))
    })
    .await?;
    html(&ListPage {
        layout: nav(&m, &csrf).with_script("chat.js"),
        me: me.0,
        rooms,
        people,
        error: None,
        is_admin: m.member.is_admin,
    })
}

fn nav(m: &Member, csrf: &CsrfToken) -> Layout {
    crate::shell::page(m, csrf, super::live::APP)
}

#[derive(Debug, serde::Deserialize)]
pub struct NewRoom {
    name: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    private: Option<String>,
}

async fn create(m: Member, state: web::Data<ChatState>, form: web::Form<NewRoom>) -> PageResult {
    let f = form.into_inner();
    let (me, now) = (m.id(), state.now());
    let vis = if f.private.is_some() {
        Visibility::Private
    } else {
        Visibility::Open
    };
    let id = with_db(&m, move |c| {
        Ok(rooms::create_group(
            c,
            me,
            &f.name,
            &f.topic,
            vis,
            &[],
            now,
        )?)
    })
    .await?;
    Ok(see_other(&format!("/chat/{}", id.0)))
}

async fn direct(m: Member, state: web::Data<ChatState>, other: web::Path<i64>) -> PageResult {
    let (me, now, other) = (m.id(), state.now(), MemberId(other.into_inner()));
    let id = with_db(&m, move |c| Ok(rooms::direct(c, me, other, now)?)).await?;
    Ok(see_other(&format!("/chat/{}", id.0)))
}

#[derive(Template)]
#[template(path = "pages/chat_room.html")]
struct RoomPage {
    layout: Layout,
    room_id: i64,
    title: String,
    topic: String,
    direct: bool,
    archived: bool,
    messages: Vec<View>,
    older: Option<i64>,
    reply: Option<View>,
    reactions: &'static [&'static str],
    me: i64,
    editable_since: UnixTime,
    is_admin: bool,
    members: Vec<rooms::RoomMember>,
    read_by_last: Vec<String>,
    /// Private group room (members are managed here).
    private: bool,
    /// Practice members who could be added: id, name, role labels.
    candidates: Vec<(i64, String, String)>,
    /// The practice's time zone (times on the page and, via `data-tz`, in the script).
    zone: Zone,
    edit_window: i64,
    now: UnixTime,
    /// The newest message id on the page (where live updates continue).
    newest: i64,
    /// An empty message of `me`, the pattern the script fills for live messages.
    proto: View,
    /// The first unread message on the page (the "Neue Nachrichten" divider goes above it).
    first_unread: Option<i64>,
    /// Whether the reader may rename the room and name moderators.
    can_manage: bool,
    /// Whether the reader may archive the room (or take it out of the archive).
    can_archive: bool,
    /// Ids of the room's moderators.
    moderators: Vec<i64>,
    /// The reader's rooms, shown beside the room on wide screens.
    rooms: Vec<Summary>,
    group_secs: i64,
}

impl RoomPage {
    fn can_edit(&self, v: &View) -> bool {
        !v.deleted && v.author_id == Some(self.me) && v.created_at >= self.editable_since
    }
    fn can_delete(&self, v: &View) -> bool {
        !v.deleted && (self.is_admin || self.can_edit(v))
    }
    fn when(&self, t: &i64) -> String {
        self.zone.format_relative(*t, self.now)
    }
    fn full_time(&self, t: &i64) -> String {
        self.zone.format(*t)
    }
    /// Whether the message at `i` continues its author's previous one (same author, within
    /// a few minutes, no divider between them): shown without name and avatar.
    fn continued(&self, i: &usize) -> bool {
        let i = *i;
        let (Some(v), Some(prev)) = (
            self.messages.get(i),
            i.checked_sub(1).and_then(|p| self.messages.get(p)),
        ) else {
            return false;
        };
        Some(v.id) != self.first_unread
            && !v.deleted
            && !prev.deleted
            && v.author_id.is_some()
            && v.author_id == prev.author_id
            && v.created_at - prev.created_at <= GROUP_SECS
            && v.reply_to.is_none()
    }
    fn initials(&self, name: &str) -> String {
        initials(name)
    }
    fn reaction_label(&self, emoji: &str, count: &i64, mine: &bool) -> String {
        super::reaction_label(emoji, *count, *mine)
    }
    fn reaction_name(&self, emoji: &str) -> String {
        super::reaction_name(emoji).to_owned()
    }
    fn reaction_names(&self) -> String {
        super::reaction_names_attr()
    }
    fn is_first_unread(&self, id: &i64) -> bool {
        self.first_unread == Some(*id)
    }
    fn is_moderator(&self, id: &MemberId) -> bool {
        self.moderators.contains(&id.0)
    }
}

/// Messages of one author within this many seconds are shown as one group.
pub const GROUP_SECS: i64 = 5 * 60;

/// Initials for an avatar: the shell's, so the top bar and the messages agree.
pub use kollegium_tenants::web::layout::initials;

#[derive(Debug, serde::Deserialize)]
pub struct RoomQuery {
    before: Option<i64>,
    reply: Option<i64>,
}

async fn room(
    m: Member,
    csrf: CsrfToken,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    q: web::Query<RoomQuery>,
) -> PageResult {
    let (room_id, me, now) = (RoomId(id.into_inner()), m.id(), state.now());
    let q = q.into_inner();
    let who = actor(&m);
    let (room, title, list, reply, window, people, read_by_last, everyone, extra) =
        with_db(&m, move |c| {
            let room = rooms::readable(c, room_id, me, now)?;
            let page = messages::page(c, room_id, q.before.map(MessageId)).map_err(internal)?;
            let views = messages::views(c, &page, me).map_err(internal)?;
            let last_read = rooms::last_read(c, room_id, me).map_err(internal)?;
            let first_unread = page
                .iter()
                .find(|x| x.id > last_read && x.author_id != Some(me.0) && x.deleted_at.is_none())
                .map(|x| x.id);
            let extra = RoomExtra {
                first_unread: first_unread.filter(|_| q.before.is_none()),
                can_manage: rooms::may_manage(c, &room, who).map_err(internal)?,
                can_archive: rooms::may_archive(c, &room, who).map_err(internal)?,
                moderators: rooms::moderators(c, room_id).map_err(internal)?,
                rooms: rooms::list_for(c, me).map_err(internal)?,
            };
            // Reading the newest page moves the read marker.
            if q.before.is_none()
                && let Some(last) = page.last()
            {
                rooms::mark_read(c, room_id, me, last.message_id()).map_err(internal)?;
            }
            let reply = match q.reply {
                Some(r) => {
                    let msg = messages::by_id(c, MessageId(r))
                        .map_err(internal)?
                        .filter(|x| x.room_id == room_id.0 && x.deleted_at.is_none());
                    match msg {
                        Some(x) => messages::views(c, std::slice::from_ref(&x), me)
                            .map_err(internal)?
                            .pop(),
                        None => None,
                    }
                }
                None => None,
            };
            let read_by_last = match page.iter().rev().find(|x| x.author_id == Some(me.0)) {
                Some(mine) => messages::read_by(c, mine).map_err(internal)?,
                None => Vec::new(),
            };
            let title = if room.is_direct() {
                rooms::direct_title(c, room_id, me).map_err(internal)?
            } else {
                room.name.clone()
            };
            let people = rooms::member_list(c, room_id).map_err(internal)?;
            let everyone = members::list(c).map_err(internal)?;
            Ok((
                room,
                title,
                views,
                reply,
                edit_window(c).map_err(internal)?,
                people,
                read_by_last,
                everyone,
                extra,
            ))
        })
        .await?;
    let older = if list.len() as i64 == super::PAGE_SIZE {
        list.first().map(|v| v.id)
    } else {
        None
    };
    let candidates = everyone
        .into_iter()
        .filter(|p| !people.iter().any(|x| x.id == p.id))
        .map(|p| {
            let roles = p.role_labels().join(", ");
            (p.id.0, p.display_name, roles)
        })
        .collect();
    let newest = list
        .last()
        .map_or(0, |v| v.id)
        .max(room.last_message_id.unwrap_or(0));
    let proto = View {
        id: 0,
        room_id: room.id,
        author_id: Some(me.0),
        author: String::new(),
        html: String::new(),
        body: String::new(),
        created_at: now,
        edited: false,
        deleted: false,
        reply_to: None,
        reply_author: None,
        reply_excerpt: None,
        reactions: Vec::new(),
        mentions_me: false,
    };
    html(&RoomPage {
        layout: nav(&m, &csrf)
            .with_script("chat.js")
            .with_script("chat-composer.js"),
        private: !room.is_open() && !room.is_direct(),
        candidates,
        zone: m.tenant.time_zone().clone(),
        edit_window: window,
        now,
        newest,
        proto,
        room_id: room.id,
        title,
        topic: room.topic.clone(),
        direct: room.is_direct(),
        archived: room.archived,
        messages: list,
        older,
        reply,
        reactions: REACTIONS,
        me: me.0,
        editable_since: now - window,
        is_admin: m.member.is_admin,
        members: people,
        read_by_last,
        first_unread: extra.first_unread,
        can_manage: extra.can_manage,
        can_archive: extra.can_archive,
        moderators: extra.moderators,
        rooms: extra.rooms,
        group_secs: GROUP_SECS,
    })
}

/// What the room page shows beside the messages.
struct RoomExtra {
    first_unread: Option<i64>,
    can_manage: bool,
    can_archive: bool,
    moderators: Vec<i64>,
    rooms: Vec<Summary>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Post {
    body: String,
    reply_to: Option<i64>,
}

async fn post(
    m: Member,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    form: web::Form<Post>,
) -> PageResult {
    let (room_id, me, now) = (RoomId(id.into_inner()), m.id(), state.now());
    if !state.allow_post(m.tenant.slug().as_str(), me.0) {
        return Err(ChatError::RateLimited.into());
    }
    let f = form.into_inner();
    let (msg, events) = write_db(&m, move |c| {
        actions::post(c, room_id, me, &f.body, f.reply_to.map(MessageId), now)
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(see_other(&format!("/chat/{}#m{}", room_id.0, msg.id)))
}

#[derive(Debug, serde::Deserialize)]
pub struct Edit {
    body: Option<String>,
    emoji: Option<String>,
    on: Option<String>,
}

async fn act(
    m: Member,
    state: web::Data<ChatState>,
    path: web::Path<(i64, i64, String)>,
    form: web::Form<Edit>,
) -> PageResult {
    let (room_id, msg_id, what) = path.into_inner();
    let (room_id, msg_id, who, now) = (RoomId(room_id), MessageId(msg_id), actor(&m), state.now());
    let f = form.into_inner();
    let (_, events) = with_db(&m, move |c| {
        let action = match what.as_str() {
            "edit" => MessageAction::Edit(f.body.as_deref().unwrap_or("")),
            "delete" => MessageAction::Delete,
            "react" => MessageAction::React {
                emoji: f.emoji.as_deref().unwrap_or(""),
                on: f.on.as_deref() != Some("0"),
            },
            _ => return Err(ChatError::MessageNotFound.into()),
        };
        let window = edit_window(c).map_err(internal)?;
        Ok(actions::on_message(
            c, room_id, msg_id, who, action, window, now,
        )?)
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(see_other(&format!("/chat/{}#m{}", room_id.0, msg_id.0)))
}

#[derive(Debug, serde::Deserialize)]
pub struct Settings {
    name: String,
    #[serde(default)]
    topic: String,
    archived: Option<String>,
    add: Option<i64>,
    remove: Option<i64>,
}

async fn settings(
    m: Member,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    form: web::Form<Settings>,
) -> PageResult {
    let (room_id, who, now) = (RoomId(id.into_inner()), actor(&m), state.now());
    let f = form.into_inner();
    let mut members = Vec::new();
    if let Some(a) = f.add {
        members.push((MemberId(a), true));
    }
    if let Some(r) = f.remove {
        members.push((MemberId(r), false));
    }
    let events = with_db(&m, move |c| {
        let change = RoomChange {
            details: Some((&f.name, &f.topic, f.archived.is_some())),
            members: &members,
        };
        Ok(actions::update_room(c, room_id, who, change, now)?)
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(see_other(&format!("/chat/{}", room_id.0)))
}

#[derive(Debug, serde::Deserialize)]
pub struct Members {
    add: Option<i64>,
    remove: Option<i64>,
    /// Names this member a moderator (`on` = "1") or takes it back.
    moderator: Option<i64>,
    on: Option<String>,
}

async fn members_form(
    m: Member,
    state: web::Data<ChatState>,
    id: web::Path<i64>,
    form: web::Form<Members>,
) -> PageResult {
    let (room_id, who, now) = (RoomId(id.into_inner()), actor(&m), state.now());
    let f = form.into_inner();
    if let Some(target) = f.moderator {
        let on = f.on.as_deref() == Some("1");
        let events = with_db(&m, move |c| {
            Ok(actions::set_moderator(
                c,
                room_id,
                who,
                MemberId(target),
                on,
                now,
            )?)
        })
        .await?;
        state.publish(m.tenant.slug().as_str(), events);
        return Ok(see_other(&format!("/chat/{}", room_id.0)));
    }
    let mut change = Vec::new();
    if let Some(a) = f.add {
        change.push((MemberId(a), true));
    }
    if let Some(r) = f.remove {
        change.push((MemberId(r), false));
    }
    if change.is_empty() {
        return Err(ChatError::NotAllowed.into());
    }
    let events = with_db(&m, move |c| {
        let change = RoomChange {
            details: None,
            members: &change,
        };
        Ok(actions::update_room(c, room_id, who, change, now)?)
    })
    .await?;
    state.publish(m.tenant.slug().as_str(), events);
    Ok(see_other(&format!("/chat/{}", room_id.0)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat", web::get().to(list))
        .route("/chat/rooms", web::post().to(create))
        .route("/chat/direct/{member}", web::post().to(direct))
        .route("/chat/{room}", web::get().to(room))
        .route("/chat/{room}/messages", web::post().to(post))
        .route("/chat/{room}/settings", web::post().to(settings))
        .route("/chat/{room}/members", web::post().to(members_form))
        .route(
            "/chat/{room}/messages/{message}/{action}",
            web::post().to(act),
        );
}
