//! A short-lived in-memory copy of recently used sessions, so that a busy member's requests
//! (a chat post, the script's API calls) do not each read `sessions` and `members` on the
//! blocking pool.
//!
//! An entry is a copy of what [`super::session`] read from the database, kept for at most
//! [`TTL_SECS`] (by the monotonic clock and by the application clock, whichever runs out
//! first). Every way a session ends in this process (logout, back-channel logout, idle
//! timeout, refused refresh) drops its entry at once, and a token refresh replaces it; what
//! else changes a member's row (the profile at another session's sign-in, the directory
//! marking a member who left) shows after at most the TTL. Everything the cached rows
//! decide is still checked per request: the idle limit and the access token's expiry
//! against the current time.
//!
//! Rows read before any forget are not kept (see [`SessionCache::epoch`]): a request that
//! read a session just before it ended cannot put it back.
//!
//! The cache is per process: with several nodes serving one practice, a logout seen by one
//! node ends the session on the others within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kollegium_tenants::UnixTime;

use super::session::SessionRow;
use crate::members::Member as MemberRow;

/// Seconds a copy is used before the database is read again (well below the 30 s at which
/// a session's `last_seen_at` is written, so that stays as it is).
pub const TTL_SECS: i64 = 5;

/// Entries beyond this are not added (a flood of distinct sessions reads the database).
const MAX_ENTRIES: usize = 50_000;

#[derive(Clone)]
struct Entry {
    session: SessionRow,
    member: MemberRow,
    /// When the rows were read: monotonic and by the application clock.
    at: Instant,
    at_clock: UnixTime,
}

/// Sessions by practice and token hash (never the token itself).
#[derive(Default)]
pub struct SessionCache {
    map: Mutex<Map>,
}

#[derive(Default)]
struct Map {
    entries: HashMap<(String, String), Entry>,
    /// Counts the forgets: rows read before one may be stale (a session that ended while
    /// they were read), so [`SessionCache::put`] refuses them.
    epoch: u64,
}

/// When rows were read, for [`SessionCache::put`] (see [`SessionCache::epoch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.len())
            .finish()
    }
}

fn fresh(e: &Entry, now: UnixTime) -> bool {
    let age = now - e.at_clock;
    (0..TTL_SECS).contains(&age) && e.at.elapsed() < Duration::from_secs(TTL_SECS as u64)
}

impl SessionCache {
    /// The rows of the session with this token hash in practice `slug`, if read recently.
    pub fn get(
        &self,
        slug: &str,
        token_hash: &str,
        now: UnixTime,
    ) -> Option<(SessionRow, MemberRow)> {
        let Ok(mut map) = self.map.lock() else {
            return None;
        };
        let key = (slug.to_owned(), token_hash.to_owned());
        match map.entries.get(&key) {
            Some(e) if fresh(e, now) => Some((e.session.clone(), e.member.clone())),
            Some(_) => {
                map.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Taken before reading the rows to [`Self::put`].
    pub fn epoch(&self) -> Epoch {
        Epoch(self.map.lock().map(|m| m.epoch).unwrap_or(u64::MAX))
    }

    /// Keeps the rows just read for the session with this token hash, unless something
    /// was forgotten since `read_at` (the rows may show a session that ended meanwhile).
    pub fn put(
        &self,
        slug: &str,
        token_hash: &str,
        session: &SessionRow,
        member: &MemberRow,
        now: UnixTime,
        read_at: Epoch,
    ) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.epoch != read_at.0 {
            return;
        }
        if map.entries.len() >= MAX_ENTRIES {
            map.entries.retain(|_, e| fresh(e, now));
            if map.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        map.entries.insert(
            (slug.to_owned(), token_hash.to_owned()),
            Entry {
                session: session.clone(),
                member: member.clone(),
                at: Instant::now(),
                at_clock: now,
            },
        );
    }

    /// Drops the copies of these sessions of practice `slug` (they ended or changed).
    pub fn forget(&self, slug: &str, sessions: &[i64]) {
        if sessions.is_empty() {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            map.epoch += 1;
            map.entries
                .retain(|(s, _), e| s != slug || !sessions.contains(&e.session.id));
        }
    }

    /// Drops the copies of every session of a member of practice `slug` (their row changed).
    pub fn forget_member(&self, slug: &str, member: i64) {
        if let Ok(mut map) = self.map.lock() {
            map.epoch += 1;
            map.entries
                .retain(|(s, _), e| s != slug || e.member.id.0 != member);
        }
    }

    /// Drops the copies of every session of practice `slug`.
    pub fn forget_practice(&self, slug: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.epoch += 1;
            map.entries.retain(|(s, _), _| s != slug);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberId;

    fn session(id: i64) -> SessionRow {
        SessionRow {
            id,
            member_id: 7,
            idp_sid: None,
            id_token: "id".into(),
            access_token: "sealed".into(),
            refresh_token: None,
            access_expires_at: 1_000,
            created_at: 100,
            last_seen_at: 100,
            ended_at: None,
        }
    }

    fn member() -> MemberRow {
        MemberRow {
            id: MemberId(7),
            sub: "sub-7".into(),
            username: "anna".into(),
            display_name: "Anna".into(),
            email: "anna@praxis-a.example".into(),
            roles: Vec::new(),
            is_admin: false,
            specialty: None,
            kv_region: None,
            work_areas: Vec::new(),
            send_read_receipts: true,
            mention_mail: true,
            mention_mail_delay_secs: 900,
            deactivated_at: None,
        }
    }

    #[test]
    fn a_copy_is_used_for_its_ttl_and_only_in_its_practice() {
        let c = SessionCache::default();
        c.put("praxis-a", "h1", &session(1), &member(), 100, c.epoch());
        assert_eq!(c.get("praxis-a", "h1", 100).map(|(s, _)| s.id), Some(1));
        assert_eq!(
            c.get("praxis-a", "h1", 100 + TTL_SECS - 1)
                .map(|(s, _)| s.id),
            Some(1)
        );
        // Same token hash at another practice: nothing.
        assert!(c.get("praxis-b", "h1", 100).is_none());
        // The application clock ran past the TTL (or back): read again.
        assert!(c.get("praxis-a", "h1", 100 + TTL_SECS).is_none());
        c.put("praxis-a", "h1", &session(1), &member(), 100, c.epoch());
        assert!(c.get("praxis-a", "h1", 99).is_none());
    }

    #[test]
    fn an_ended_session_is_forgotten_at_once_and_only_in_its_practice() {
        let c = SessionCache::default();
        c.put("praxis-a", "h1", &session(1), &member(), 100, c.epoch());
        c.put("praxis-a", "h2", &session(2), &member(), 100, c.epoch());
        c.put("praxis-b", "h3", &session(1), &member(), 100, c.epoch());
        c.forget("praxis-a", &[1]);
        assert!(c.get("praxis-a", "h1", 100).is_none());
        assert!(c.get("praxis-a", "h2", 100).is_some());
        // Session 1 of practice B is another session.
        assert!(c.get("praxis-b", "h3", 100).is_some());
        c.put("praxis-a", "h1", &session(1), &member(), 100, c.epoch());
        c.forget_member("praxis-b", 7);
        assert!(c.get("praxis-b", "h3", 100).is_none());
        assert!(c.get("praxis-a", "h1", 100).is_some());
        c.forget_practice("praxis-a");
        assert!(c.get("praxis-a", "h2", 100).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn rows_read_before_a_session_ended_are_not_kept() {
        let c = SessionCache::default();
        // A request reads the rows; meanwhile a logout ends a session and forgets it.
        let read_at = c.epoch();
        c.forget("praxis-a", &[1]);
        c.put("praxis-a", "h1", &session(1), &member(), 100, read_at);
        assert!(c.get("praxis-a", "h1", 100).is_none(), "stale rows refused");
        c.put("praxis-a", "h1", &session(1), &member(), 100, c.epoch());
        assert!(c.get("praxis-a", "h1", 100).is_some());
    }
}
