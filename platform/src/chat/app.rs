//! The chat as a workspace app: its entry in [`crate::app::APPS`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::jobs::Handler as JobHandler;
use kollegium_tenants::provision::BoxError;
use kollegium_tenants::web::assets::Source;
use kollegium_tenants::web::metrics::{Gauge, GaugeKind};

use super::state::{ChatSettings, ChatState};
use super::{live, rooms};
use crate::PlatformSettings;
use crate::app::{
    AppContext, AppData, AppExport, Job, NavEntry, Node, SearchSource, Started, Tile, WorkspaceApp,
};
use crate::members::MemberId;
use crate::schema::{members, messages, room_members, rooms as rooms_t};

/// The chat app.
#[derive(Debug, Clone, Copy)]
pub struct Chat;

const ASSETS: &[Source] = &[
    Source {
        name: "chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../templates/static/chat.js"),
    },
    Source {
        name: "chat-composer.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../templates/static/chat-composer.js"),
    },
];

#[derive(Template)]
#[template(path = "chat/tile.html")]
struct TileView {
    unread: i64,
    mentions: i64,
}

impl WorkspaceApp for Chat {
    fn id(&self) -> &'static str {
        live::APP
    }

    fn nav(&self) -> Option<NavEntry> {
        Some(NavEntry {
            label: "Chat",
            href: "/chat",
            order: 10,
        })
    }

    fn configure(&self, cfg: &mut web::ServiceConfig) {
        // `/chat/settings` and the other fixed chat paths before `/chat/{room}`.
        crate::notify::configure(cfg);
        super::search_routes::configure(cfg);
        super::admin::configure(cfg);
        super::api::configure(cfg);
        super::routes::configure(cfg);
    }

    fn assets(&self) -> &'static [Source] {
        ASSETS
    }

    fn start(&self, shared: &Arc<AppContext>, settings: &PlatformSettings) -> Started {
        let state = web::Data::new(ChatState::new(shared.clone(), ChatSettings::from(settings)));
        let for_gauge = state.clone();
        Started {
            data: Some(AppData::new(state)),
            gauges: vec![Gauge::new(
                "kollegium_chat_post_buckets",
                "Members with a chat posting budget in memory (rate limiter).",
                GaugeKind::Gauge,
                move || for_gauge.post_buckets() as i64,
            )],
        }
    }

    fn tile(
        &self,
        conn: &mut SqliteConnection,
        member: MemberId,
        _now: kollegium_tenants::UnixTime,
    ) -> Result<Option<Tile>, BoxError> {
        let rooms = rooms::list_for(conn, member)?;
        let view = TileView {
            unread: rooms.iter().map(|r| r.unread).sum(),
            mentions: rooms.iter().map(|r| r.mentions).sum(),
        };
        Ok(Some(Tile {
            app: live::APP,
            html: view.render()?,
        }))
    }

    fn job_kinds(&self, node: &Node<'_>) -> Vec<Arc<dyn JobHandler>> {
        vec![crate::notify::MentionJobs::new(
            node.web.clone(),
            node.directory.clone(),
        )]
    }

    fn spawn_jobs(&self, node: &Node<'_>) -> Vec<(&'static str, Job)> {
        let retention = super::retention::spawn(
            node.store.clone(),
            node.shared.search.clone(),
            Duration::from_secs(60),
            Duration::from_secs(24 * 3600),
        );
        vec![("retention", Job::Task(retention))]
    }

    fn search_source(&self) -> Option<&'static dyn SearchSource> {
        Some(&super::search::MESSAGES)
    }

    fn live_topics(&self) -> &'static [&'static str] {
        &["room"]
    }

    fn export(
        &self,
        _shared: &AppContext,
        conn: &mut SqliteConnection,
    ) -> Result<Option<AppExport>, BoxError> {
        export(conn).map(Some)
    }

    // Sessions ending: chat keeps nothing per session; its live connections are the
    // channel's and close with it. Members deactivated: audiences are read from the
    // database when an event is built, and deactivated members are in none.
}

#[derive(serde::Serialize)]
struct ExportedMessage {
    id: i64,
    author: Option<String>,
    body: String,
    reply_to: Option<i64>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted: bool,
}

#[derive(serde::Serialize)]
struct ExportedRoom {
    id: i64,
    kind: String,
    name: String,
    topic: String,
    visibility: String,
    archived: bool,
    created_at: i64,
    members: Vec<String>,
    messages: Vec<ExportedMessage>,
}

/// The chat's part of a practice export: every room with its members and messages (JSON),
/// and the same as plain text.
pub fn export(conn: &mut SqliteConnection) -> Result<AppExport, BoxError> {
    let names: HashMap<i64, String> = members::table
        .select((members::id, members::display_name))
        .load(conn)?
        .into_iter()
        .collect();
    let name = |id: i64| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
    type RoomRow = (i64, String, String, String, String, bool, i64);
    let room_rows: Vec<RoomRow> = rooms_t::table
        .order(rooms_t::id)
        .select((
            rooms_t::id,
            rooms_t::kind,
            rooms_t::name,
            rooms_t::topic,
            rooms_t::visibility,
            rooms_t::archived,
            rooms_t::created_at,
        ))
        .load(conn)?;
    let mut out = Vec::with_capacity(room_rows.len());
    let mut text = String::from("Chat\n====\n");
    for (id, kind, room_name, topic, visibility, archived, created_at) in room_rows {
        let member_ids: Vec<i64> = room_members::table
            .filter(room_members::room_id.eq(id))
            .order(room_members::member_id)
            .select(room_members::member_id)
            .load(conn)?;
        type MessageRow = (
            i64,
            Option<i64>,
            String,
            Option<i64>,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<MessageRow> = messages::table
            .filter(messages::room_id.eq(id))
            .order(messages::id)
            .select((
                messages::id,
                messages::author_id,
                messages::body,
                messages::reply_to,
                messages::created_at,
                messages::edited_at,
                messages::deleted_at,
            ))
            .load(conn)?;
        let title = if room_name.is_empty() {
            format!("Raum {id}")
        } else {
            room_name.clone()
        };
        text.push_str(&format!("\n## {title}"));
        if archived {
            text.push_str(" (archiviert)");
        }
        text.push('\n');
        if !topic.is_empty() {
            text.push_str(&format!("Thema: {topic}\n"));
        }
        let member_names: Vec<String> = member_ids.iter().map(|m| name(*m)).collect();
        if !member_names.is_empty() {
            text.push_str(&format!("Mitglieder: {}\n", member_names.join(", ")));
        }
        let mut msgs = Vec::with_capacity(rows.len());
        for (mid, author, body, reply_to, at, edited_at, deleted_at) in rows {
            let author = author.map(name);
            let who = author.as_deref().unwrap_or("(unbekannt)");
            let when = kollegium_tenants::clock::format_utc(at);
            if deleted_at.is_some() {
                text.push_str(&format!("[{when}] {who}: (gelöscht)\n"));
            } else {
                let edited = if edited_at.is_some() {
                    " (bearbeitet)"
                } else {
                    ""
                };
                text.push_str(&format!("[{when}] {who}{edited}: {body}\n"));
            }
            msgs.push(ExportedMessage {
                id: mid,
                author,
                body: if deleted_at.is_some() {
                    String::new()
                } else {
                    body
                },
                reply_to,
                created_at: at,
                edited_at,
                deleted: deleted_at.is_some(),
            });
        }
        out.push(ExportedRoom {
            id,
            kind,
            name: room_name,
            topic,
            visibility,
            archived,
            created_at,
            members: member_names,
            messages: msgs,
        });
    }
    let mut json = serde_json::Map::new();
    json.insert("rooms".into(), serde_json::to_value(&out)?);
    Ok(AppExport {
        app: live::APP,
        json: serde_json::Value::Object(json),
        readable: text,
    })
}
