//! Neuigkeiten: the practice side of the operator's signed broadcasts (issue 14).
//!
//! The messages live once per node ([`kollegium_tenants::broadcast::NodeFeed`], handed in by
//! the composition through [`crate::app::AppContext::broadcasts`]); which member sees one is
//! decided here from the member's claims in `members` ([`Audience::matches`]). What a member
//! did with a message (read, hidden) is kept in this practice's `platform.sqlite`
//! (`news_state`) and nowhere else: nothing of it goes back to the node's store or the feed.
//!
//! - `app`: its [`crate::app::WorkspaceApp`] (navigation, routes, tile, live task).
//! - `routes`: `/news`, `/news/{id}` and the read, hide and restore forms.
//! - `live`: a content-free event on the app's topic when the node's feed changed.
//! - `search`: the member's messages in the workspace's one search, from the node's store.
//! - `export`: the members' marks in the practice export.
//! - `admin` and `mail`: the practice setting "Neuigkeiten per E-Mail ankündigen" and the
//!   notices it sends (no title, no content), queued only in practices that set it.

pub mod admin;
pub mod app;
pub mod export;
pub mod live;
pub mod mail;
pub mod routes;
pub mod search;

use std::collections::HashMap;

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::broadcast::{BroadcastError, Message, NodeFeed};

use crate::members::{Member, MemberId};
use crate::schema::news_state;

/// The app's id: live topic (`Topic { app: APP, id: 0 }`), export section, logs.
pub const APP: &str = "news";

/// Titles the start-page tile lists at most.
pub const TILE_TITLES: usize = 3;

/// Errors of the news app: the node's store or the practice's database.
#[derive(Debug, thiserror::Error)]
pub enum NewsError {
    #[error(transparent)]
    Feed(#[from] BroadcastError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The composition handed in no node feed.
    #[error("the node's broadcasts are not available")]
    NoFeed,
}

/// A message as one member sees it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub message: Message,
    pub read: bool,
    pub hidden: bool,
}

/// Whether `m` is in the message's audience (their claims as the directory last said).
pub fn is_for(message: &Message, m: &Member) -> bool {
    message
        .audience
        .matches(m.specialty.as_deref(), &m.roles, m.kv_region.as_deref())
}

/// The member's read and hidden state, by message id.
fn states(
    conn: &mut SqliteConnection,
    member: MemberId,
) -> QueryResult<HashMap<String, (bool, bool)>> {
    let rows: Vec<(String, Option<i64>, Option<i64>)> = news_state::table
        .filter(news_state::member_id.eq(member.0))
        .select((
            news_state::message_id,
            news_state::read_at,
            news_state::dismissed_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, r, d)| (id, (r.is_some(), d.is_some())))
        .collect())
}

/// The active messages for `m` at `now` (pinned first, then the newest), with their state.
pub fn for_member(
    feed: &NodeFeed,
    conn: &mut SqliteConnection,
    m: &Member,
    now: UnixTime,
) -> Result<Vec<Shown>, NewsError> {
    let mine: Vec<Message> = feed
        .active_shared(now)?
        .iter()
        .filter(|msg| is_for(msg, m))
        .cloned()
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let st = states(conn, m.id)?;
    Ok(mine
        .into_iter()
        .map(|message| {
            let (read, hidden) = st.get(message.id.as_str()).copied().unwrap_or_default();
            Shown {
                message,
                read,
                hidden,
            }
        })
        .collect())
}

/// One active message for `m`, with their state; `None` for an unknown, malformed,
/// withdrawn, expired id or one whose audience they are not in (all alike: not found).
pub fn one_for_member(
    feed: &NodeFeed,
    conn: &mut SqliteConnection,
    m: &Member,
    id: &str,
    now: UnixTime,
) -> Result<Option<Shown>, NewsError> {
    let Some(message) = feed.active_one(id, now)? else {
        return Ok(None);
    };
    if !is_for(&message, m) {
        return Ok(None);
    }
    let (read, hidden) = news_state::table
        .find((m.id.0, message.id.as_str()))
        .select((news_state::read_at, news_state::dismissed_at))
        .first::<(Option<i64>, Option<i64>)>(conn)
        .optional()?
        .map(|(r, d)| (r.is_some(), d.is_some()))
        .unwrap_or_default();
    Ok(Some(Shown {
        message,
        read,
        hidden,
    }))
}

/// What a member does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Hide,
    Restore,
}

/// Records `action` of `member` on message `id` at `now` (the caller checked that the
/// message is one they may see). Hiding marks read too; restoring keeps it read.
pub fn record(
    conn: &mut SqliteConnection,
    member: MemberId,
    id: &str,
    action: Action,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::insert_or_ignore_into(news_state::table)
        .values((
            news_state::member_id.eq(member.0),
            news_state::message_id.eq(id),
        ))
        .execute(conn)?;
    let row = news_state::table.find((member.0, id));
    match action {
        Action::Read => diesel::update(row.filter(news_state::read_at.is_null()))
            .set(news_state::read_at.eq(now))
            .execute(conn)?,
        Action::Hide => {
            diesel::update(row.filter(news_state::read_at.is_null()))
                .set(news_state::read_at.eq(now))
                .execute(conn)?;
            diesel::update(row)
                .set(news_state::dismissed_at.eq(now))
                .execute(conn)?
        }
        Action::Restore => diesel::update(row)
            .set(news_state::dismissed_at.eq(None::<i64>))
            .execute(conn)?,
    };
    Ok(())
}

/// The unread, not hidden messages of `m` and the titles of the newest of them (at most
/// [`TILE_TITLES`], pinned first as on the page).
pub fn unread(
    feed: &NodeFeed,
    conn: &mut SqliteConnection,
    m: &Member,
    now: UnixTime,
) -> Result<(usize, Vec<(String, String)>), NewsError> {
    let open: Vec<Shown> = for_member(feed, conn, m, now)?
        .into_iter()
        .filter(|s| !s.read && !s.hidden)
        .collect();
    let titles = open
        .iter()
        .take(TILE_TITLES)
        .map(|s| (s.message.id.as_str().to_owned(), s.message.title.clone()))
        .collect();
    Ok((open.len(), titles))
}

/// How many messages for `m` are neither read nor hidden (the navigation badge), without
/// copying any message.
pub fn unread_count(
    feed: &NodeFeed,
    conn: &mut SqliteConnection,
    m: &Member,
    now: UnixTime,
) -> Result<usize, NewsError> {
    let active = feed.active_shared(now)?;
    let mut mine = active.iter().filter(|msg| is_for(msg, m)).peekable();
    if mine.peek().is_none() {
        return Ok(0);
    }
    let st = states(conn, m.id)?;
    Ok(mine
        .filter(|msg| {
            st.get(msg.id.as_str())
                .is_none_or(|&(read, hidden)| !read && !hidden)
        })
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::{db, member};

    #[test]
    fn marks_are_per_member_hiding_reads_and_restoring_keeps_read() {
        let (_dir, mut c) = db();
        let (anna, bernd) = (member(&mut c, "anna"), member(&mut c, "bernd"));
        let id = "0123456789abcdef0123456789abcdef";
        let state = |c: &mut SqliteConnection, m: MemberId| states(c, m).unwrap().get(id).copied();
        assert_eq!(state(&mut c, anna), None);
        record(&mut c, anna, id, Action::Hide, 2_000).unwrap();
        assert_eq!(
            state(&mut c, anna),
            Some((true, true)),
            "hidden is read too"
        );
        assert_eq!(state(&mut c, bernd), None, "Bernd's marks are his own");
        record(&mut c, anna, id, Action::Restore, 3_000).unwrap();
        assert_eq!(state(&mut c, anna), Some((true, false)));
        record(&mut c, bernd, id, Action::Read, 3_000).unwrap();
        record(&mut c, bernd, id, Action::Read, 4_000).unwrap();
        let first: Option<i64> = news_state::table
            .find((bernd.0, id))
            .select(news_state::read_at)
            .first(&mut c)
            .unwrap();
        assert_eq!(first, Some(3_000), "the first reading's time stays");
    }
}
