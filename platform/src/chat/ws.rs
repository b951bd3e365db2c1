//! The page's WebSocket (`GET /api/chat/ws`): the workspace's one live channel
//! ([`crate::live`]) with the events of every app addressed to the member (today chat's,
//! of every room the member may read), and chat's client frames.
//!
//! Handshake: the platform session (cookie) and an `Origin` equal to the practice's own
//! origin, else 401/403 before any upgrade. Frames from the client are small JSON texts:
//!
//! - `{"type":"subscribe","room":R,"after":N}`: catch up on room R from message N
//!   (`{"type":"catchup",…}`, or a `not_found` error for a room the member may not read);
//! - `{"type":"read","room":R,"upto":N}`: move the read marker;
//! - `{"type":"ping"}`: answered with `{"type":"pong"}`.
//!
//! A malformed frame (not JSON, unknown type, binary) closes that socket with 1003/1007,
//! an oversized one with 1009; other sockets are unaffected. The socket closes when the
//! session ends (logout, back-channel logout) and when the access token expires (4001), so
//! the client reconnects through the normal session check, which refreshes at the IdP.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use actix_ws::{CloseCode, CloseReason, Message};
use kollegium_tenants::web::WebContext;

use super::actions;
use super::live::{self, ApiMessage};
use super::messages;
use super::rooms;
use super::routes::{PageError, internal};
use super::state::ChatState;
use super::{ChatError, MessageId, RoomId};
use crate::PLATFORM_DB;
use crate::auth::Member;

/// Largest frame a client may send.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Messages sent at most in one catch-up; more means the client reloads the room.
const CATCH_UP_LIMIT: i64 = 200;
/// Ping interval; a client silent for three intervals is gone.
const HEARTBEAT: Duration = Duration::from_secs(20);
/// Close code telling the client to reconnect (its session must be checked again).
const RECONNECT: u16 = 4001;

#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe { room: i64, after: Option<i64> },
    Read { room: i64, upto: i64 },
    Ping,
}

fn refuse(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::FORBIDDEN),
    )
    .json(serde_json::json!({"error": "forbidden", "message": message}))
}

pub(super) async fn connect(
    req: HttpRequest,
    body: web::Payload,
    m: Member,
    state: web::Data<ChatState>,
    ctx: web::Data<WebContext>,
) -> Result<HttpResponse, actix_web::Error> {
    let own = ctx.settings.practice_origin(m.tenant.slug().as_str());
    let origin_ok = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() == own.as_bytes());
    if !origin_ok {
        return Ok(refuse(403, "Verbindung von fremder Herkunft abgelehnt."));
    }
    let Some(events) = state
        .live()
        .subscribe(m.tenant.slug().as_str(), m.id().0, m.session_id)
    else {
        return Ok(refuse(503, "Live-Verbindung derzeit nicht möglich."));
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(MAX_FRAME_BYTES);
    let state = state.into_inner();
    actix_web::rt::spawn(run(m, state, session, stream, events));
    Ok(response)
}

fn close(code: impl Into<CloseCode>, why: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: code.into(),
        description: Some(why.to_owned()),
    })
}

/// The session's access-token expiry, or `None` once the session has ended.
async fn session_valid_until(m: &Member) -> Result<Option<i64>, PageError> {
    let (t, sid) = (m.tenant.clone(), m.session_id);
    kollegium_tenants::web::block(move || {
        let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
        crate::auth::session::valid_until(&mut conn, sid).map_err(internal)
    })
    .await
    .map_err(internal)?
}

/// Handles one client frame; returns the replies.
async fn handle(
    m: &Member,
    state: &ChatState,
    frame: ClientFrame,
) -> Result<Vec<String>, PageError> {
    let (me, now, t) = (m.id(), state.now(), m.tenant.clone());
    match frame {
        ClientFrame::Ping => Ok(vec![serde_json::json!({"type": "pong"}).to_string()]),
        ClientFrame::Subscribe { room, after } => {
            let out =
                kollegium_tenants::web::block(move || -> Result<serde_json::Value, PageError> {
                    let mut c = t.conn(&PLATFORM_DB).map_err(internal)?;
                    let room_id = RoomId(room);
                    match rooms::readable(&mut c, room_id, me, now) {
                        Ok(_) => {}
                        Err(ChatError::RoomNotFound) => {
                            return Ok(serde_json::json!({
                                "type": "error", "room": room, "error": "not_found",
                                "message": ChatError::RoomNotFound.to_string(),
                            }));
                        }
                        Err(e) => return Err(e.into()),
                    }
                    let list = match after {
                        Some(a) => {
                            messages::since(&mut c, room_id, MessageId(a), CATCH_UP_LIMIT + 1)
                                .map_err(internal)?
                        }
                        None => Vec::new(),
                    };
                    let complete = list.len() as i64 <= CATCH_UP_LIMIT;
                    let list = &list[..list.len().min(CATCH_UP_LIMIT as usize)];
                    let views: Vec<ApiMessage> = messages::views(&mut c, list, me)
                        .map_err(internal)?
                        .into_iter()
                        .map(ApiMessage::from)
                        .collect();
                    Ok(serde_json::json!({
                        "type": "catchup", "room": room, "messages": views, "complete": complete,
                    }))
                })
                .await
                .map_err(internal)??;
            Ok(vec![out.to_string()])
        }
        ClientFrame::Read { room, upto } => {
            let res = kollegium_tenants::web::block(move || -> Result<_, PageError> {
                let mut c = t.conn(&PLATFORM_DB).map_err(internal)?;
                Ok(actions::mark_read(
                    &mut c,
                    RoomId(room),
                    me,
                    MessageId(upto),
                    now,
                ))
            })
            .await
            .map_err(internal)??;
            match res {
                Ok(events) => {
                    state.publish(m.tenant.slug().as_str(), events);
                    Ok(Vec::new())
                }
                Err(ChatError::RoomNotFound) => Ok(vec![
                    serde_json::json!({
                        "type": "error", "room": room, "error": "not_found",
                        "message": ChatError::RoomNotFound.to_string(),
                    })
                    .to_string(),
                ]),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Events handed to the socket in one go at most.
const MAX_EVENTS_PER_WRITE: usize = 64;

/// Why a connection stops delivering.
enum Stop {
    /// The client went away.
    Gone,
    /// Close with this reason.
    Close(Option<CloseReason>),
}

/// Hands one received event to the socket.
async fn deliver(
    session: &mut actix_ws::Session,
    r: live::Received,
    me: i64,
    sid: i64,
) -> Result<(), Stop> {
    match r {
        live::Received::Event(p) => {
            if p.ends(me, sid) {
                return Err(Stop::Close(close(RECONNECT, "session ended")));
            }
            if let Some(text) = p.text_for(me, sid) {
                session.text(text).await.map_err(|_| Stop::Gone)?;
            }
        }
        live::Received::Lagged => {
            // Too slow to keep up: tell the client to catch up from its last id.
            session
                .text(r#"{"type":"resync"}"#)
                .await
                .map_err(|_| Stop::Gone)?;
        }
    }
    Ok(())
}

async fn run(
    m: Member,
    state: std::sync::Arc<ChatState>,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut events: live::Subscription,
) {
    let (me, sid) = (m.id().0, m.session_id);
    let mut heard = Instant::now();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.tick().await;
    let reason = loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(first) = ev else {
                    break close(CloseCode::Away, "shutting down");
                };
                // Let the other answers of the same commit publish first, then hand every
                // queued event to the socket at once: they leave in one write.
                tokio::task::yield_now().await;
                let mut next = Some(first);
                let mut stop = None;
                let mut sent = 0;
                while let Some(r) = next.take() {
                    sent += 1;
                    match deliver(&mut session, r, me, sid).await {
                        // Bounded, so client frames and the heartbeat still get their turn.
                        Ok(()) if sent < MAX_EVENTS_PER_WRITE => next = events.try_recv(),
                        Ok(()) => {}
                        Err(s) => stop = Some(s),
                    }
                }
                match stop {
                    Some(Stop::Gone) => return,
                    Some(Stop::Close(reason)) => break reason,
                    None => {}
                }
            },
            msg = stream.recv() => {
                heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(frame) = serde_json::from_str::<ClientFrame>(&text) else {
                            break close(CloseCode::Invalid, "malformed frame");
                        };
                        match handle(&m, &state, frame).await {
                            Ok(replies) => {
                                for r in replies {
                                    if session.text(r).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                crate::error::log_5xx("chat socket request failed", &e);
                                break close(CloseCode::Error, "internal error");
                            }
                        }
                    }
                    Some(Ok(Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(Message::Binary(_) | Message::Continuation(_))) => {
                        break close(CloseCode::Unsupported, "text frames only");
                    }
                    Some(Ok(Message::Nop)) => {}
                    Some(Err(actix_ws::ProtocolError::Overflow)) => {
                        break close(CloseCode::Size, "frame too large");
                    }
                    Some(Err(_)) => break close(CloseCode::Protocol, "protocol error"),
                }
            }
            _ = tick.tick() => {
                if heard.elapsed() > HEARTBEAT * 3 {
                    break close(CloseCode::Away, "timeout");
                }
                match session_valid_until(&m).await {
                    Ok(Some(until)) if until > state.now() => {}
                    Ok(_) => break close(RECONNECT, "session check"),
                    Err(e) => {
                        tracing::warn!(error = %e, "chat socket session check failed");
                        break close(RECONNECT, "session check");
                    }
                }
                if session.ping(b"").await.is_err() {
                    return;
                }
            }
        }
    };
    let _ = session.close(reason).await;
}
