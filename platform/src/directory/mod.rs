//! Who is in the practice: the platform asks its practice's IdP for the member directory
//! (`GET <issuer>/api/members`). Every active account becomes a member, including
//! colleagues who have never signed in (a row without a session, so pickers and `@`
//! mentions offer them; their first sign-in takes the row over, matched by `sub`), and
//! members' names, e-mail addresses and roles follow the IdP. Members whose account is
//! disabled or deleted there are marked deactivated (`members.deactivated_at`); members
//! listed as active lose the mark. It never reads `idp.sqlite`.
//!
//! The request is server-to-server, with an access token of the platform's own
//! registration (`client_credentials`, scope [`SCOPE`], which the IdP grants only to its
//! first-party client), cached per practice until shortly before it expires. An account the
//! directory lists as inactive and an account it does not list at all are treated alike.
//!
//! When it runs:
//! - [`worker`]: every [`worker::INTERVAL_SECS`] for each practice whose `platform.sqlite`
//!   is open on this node (closed practices are not opened for it);
//! - the mention worker, right before it turns due mentions into mails; if the directory
//!   cannot be read then, the mails wait and are retried in its next round (nobody is
//!   mailed who might have left);
//! - a sign-in or token refresh with fresh claims clears the mark at once
//!   ([`crate::members::upsert`]).

pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use actix_web::web;
use diesel::prelude::*;
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{Tenant, UnixTime};

use crate::PLATFORM_DB;
use crate::auth::SignIn;
use crate::auth::rp::{self, Registration, RpError};
use crate::members::{self, MemberId};
use crate::schema;

/// The IdP's scope for the member directory.
pub const SCOPE: &str = "directory";
/// The directory's path under the issuer.
pub const PATH: &str = "/api/members";
/// Longest answer accepted (a practice has hundreds of accounts, not tens of thousands).
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// A cached token is used only while it has at least this many seconds left.
const TOKEN_MARGIN_SECS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Rp(#[from] RpError),
    #[error("member directory request: {0}")]
    Request(String),
    #[error("the member directory refused the token ({0})")]
    Refused(u16),
    #[error("the member directory answered {0}")]
    Status(u16),
    #[error("the member directory answer is too large")]
    TooLarge,
    #[error("the member directory answer is malformed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] kollegium_tenants::store::StoreError),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// One account as the IdP's directory lists it. An active account also carries the names
/// of the ID token's claims; an answer without them (an older IdP) only marks members.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Entry {
    pub sub: String,
    pub active: bool,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Role ids of the shared catalogue (and `admin` for a practice admin).
    pub roles: Option<Vec<String>>,
}

impl Entry {
    /// Who the colleague is, if the entry is active and says so (a user name at least).
    pub fn listed(&self) -> Option<members::Listed<'_>> {
        let username = self.preferred_username.as_deref()?;
        if !self.active || username.trim().is_empty() {
            return None;
        }
        Some(members::Listed {
            sub: &self.sub,
            preferred_username: username,
            name: self.name.as_deref().unwrap_or_default(),
            email: self.email.as_deref().unwrap_or_default(),
            roles: self.roles.as_deref().unwrap_or_default(),
        })
    }
}

/// The directory as read from the IdP.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Listing {
    pub members: Vec<Entry>,
}

impl Listing {
    /// Parses the IdP's answer; anything unexpected is an error (and changes nothing).
    pub fn parse(body: &[u8]) -> Result<Self, DirectoryError> {
        serde_json::from_slice(body).map_err(|e| DirectoryError::Malformed(e.to_string()))
    }
}

/// What applying a listing changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Members newly marked deactivated.
    pub deactivated: usize,
    /// Who they are: the apps are told, with the practice's connection, after the commit
    /// ([`crate::app::AppContext::members_deactivated`]).
    pub left: Vec<MemberId>,
    /// Their workspace sessions, ended in the same transaction (their live connections
    /// close and their cached copies go when the caller reports them).
    pub ended_sessions: Vec<i64>,
    /// Members whose mark was cleared.
    pub reactivated: usize,
    /// Colleagues who are members now without having signed in.
    pub added: usize,
    /// Members whose names, e-mail or roles changed.
    pub updated: usize,
}

/// Applies a listing in one transaction: marks the members the listing does not show as
/// active, clears the mark of those it does, creates a member for every active colleague
/// it describes who has none yet, and brings names, e-mail and roles in line.
///
/// `fetched_at` is when the listing was requested: a member created or refreshed from
/// fresh claims since then (a first sign-in racing the request) is newer than the listing
/// and keeps its state; so does a member an even newer listing described.
pub fn apply(
    conn: &mut SqliteConnection,
    listing: &Listing,
    fetched_at: UnixTime,
    now: UnixTime,
) -> QueryResult<Applied> {
    let active: HashMap<&str, &Entry> = listing
        .members
        .iter()
        .filter(|e| e.active)
        .map(|e| (e.sub.as_str(), e))
        .collect();
    conn.immediate_transaction(|conn| {
        let known: Vec<Known> = schema::members::table
            .select(Known::as_select())
            .load(conn)?;
        let mut applied = Applied::default();
        let mut gone = Vec::new();
        let mut back = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for k in &known {
            let entry = active.get(k.sub.as_str()).copied();
            if let Some(e) = entry {
                seen.insert(e.sub.as_str());
            }
            match (entry.is_some(), k.deactivated_at) {
                (true, Some(_)) => back.push(k.id),
                (false, None) if k.updated_at < fetched_at => gone.push(k.id),
                _ => {}
            }
            let Some(listed) = entry.and_then(Entry::listed) else {
                continue;
            };
            let newer = k.updated_at < fetched_at && k.listed_at.is_none_or(|l| l < fetched_at);
            let fields = listed.fields();
            if newer && fields != k.fields() {
                members::refresh_from_directory(conn, MemberId(k.id), &fields, fetched_at)?;
                applied.updated += 1;
            }
        }
        // In the listing's order (oldest account first), each `sub` once.
        for e in &listing.members {
            if !e.active || !seen.insert(e.sub.as_str()) {
                continue;
            }
            if let Some(listed) = e.listed()
                && members::from_directory(conn, &listed, fetched_at, now)?
            {
                applied.added += 1;
            }
        }
        if !gone.is_empty() {
            diesel::update(schema::members::table.filter(schema::members::id.eq_any(&gone)))
                .set(schema::members::deactivated_at.eq(now))
                .execute(conn)?;
            // Someone who left the practice keeps no open session in its workspace.
            let open: Vec<i64> = schema::sessions::table
                .filter(schema::sessions::member_id.eq_any(&gone))
                .filter(schema::sessions::ended_at.is_null())
                .select(schema::sessions::id)
                .load(conn)?;
            for id in &open {
                crate::auth::session::end(conn, *id, "member deactivated", now)?;
            }
            applied.ended_sessions = open;
            applied.left = gone.iter().copied().map(MemberId).collect();
        }
        if !back.is_empty() {
            diesel::update(schema::members::table.filter(schema::members::id.eq_any(&back)))
                .set(schema::members::deactivated_at.eq(None::<i64>))
                .execute(conn)?;
        }
        applied.deactivated = gone.len();
        applied.reactivated = back.len();
        Ok(applied)
    })
}

/// A member as the sync compares it with the listing.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = schema::members)]
struct Known {
    id: i64,
    sub: String,
    username: String,
    display_name: String,
    email: String,
    roles: String,
    is_admin: bool,
    updated_at: i64,
    deactivated_at: Option<i64>,
    listed_at: Option<i64>,
}

impl Known {
    fn fields(&self) -> members::ListedFields {
        members::ListedFields {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            roles: self.roles.clone(),
            is_admin: self.is_admin,
        }
    }
}

/// Reads the member directory of practices and applies it; keeps one access token per
/// practice. One per node, shared by the directory worker and the mention worker.
pub struct DirectorySync {
    platform: web::Data<SignIn>,
    tokens: Mutex<HashMap<String, (String, UnixTime)>>,
}

impl std::fmt::Debug for DirectorySync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorySync").finish_non_exhaustive()
    }
}

impl DirectorySync {
    pub fn new(platform: web::Data<SignIn>) -> Self {
        Self {
            platform,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the directory of `tenant`'s IdP and applies it to its members.
    pub async fn sync(&self, web: &WebContext, tenant: &Tenant) -> Result<Applied, DirectoryError> {
        let origin = web.settings.practice_origin(tenant.slug().as_str());
        let t = tenant.clone();
        let reg = tokio::task::spawn_blocking(move || rp::registration(&t, &origin)).await??;
        let fetched_at = self.platform.now();
        let listing = self.fetch(&reg, tenant.slug().as_str()).await?;
        let now = self.platform.now();
        let t = tenant.clone();
        let applied = tokio::task::spawn_blocking(move || -> Result<Applied, DirectoryError> {
            let mut conn = t.conn(&PLATFORM_DB)?;
            Ok(apply(&mut conn, &listing, fetched_at, now)?)
        })
        .await??;
        if applied != Applied::default() {
            // Cached member rows of this practice may hold the old mark.
            self.platform
                .sessions
                .forget_practice(tenant.slug().as_str());
            let slug = tenant.slug().as_str();
            if !applied.ended_sessions.is_empty() {
                self.platform.sessions_ended(slug, &applied.ended_sessions);
            }
            if !applied.left.is_empty() {
                // The apps react on the practice's database (their own transactions).
                let (t, platform, left) =
                    (tenant.clone(), self.platform.clone(), applied.left.clone());
                tokio::task::spawn_blocking(move || -> Result<(), DirectoryError> {
                    let mut conn = t.conn(&PLATFORM_DB)?;
                    platform.members_deactivated(&mut conn, t.slug().as_str(), &left);
                    Ok(())
                })
                .await??;
            }
            tracing::info!(practice = %tenant.slug(), deactivated = applied.deactivated,
                reactivated = applied.reactivated, added = applied.added,
                updated = applied.updated, "member directory applied");
        }
        Ok(applied)
    }

    /// The listing, with the cached token or a new one; a cached token the IdP refuses
    /// (revoked meanwhile) is dropped and the request repeated once with a new one.
    async fn fetch(&self, reg: &Registration, slug: &str) -> Result<Listing, DirectoryError> {
        if let Some(token) = self.cached(slug) {
            match self.get(reg, &token).await {
                Err(DirectoryError::Refused(_)) => self.forget(slug),
                other => return other,
            }
        }
        let (token, expires_in) = rp::client_token(&self.platform, reg, SCOPE).await?;
        self.remember(slug, &token, self.platform.now() + expires_in);
        self.get(reg, &token).await
    }

    async fn get(&self, reg: &Registration, token: &str) -> Result<Listing, DirectoryError> {
        let request = |e: reqwest::Error| DirectoryError::Request(e.without_url().to_string());
        let res = self
            .platform
            .http
            .get(format!("{}{PATH}", reg.issuer))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(request)?;
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(DirectoryError::Refused(status.as_u16()));
        }
        if !status.is_success() {
            return Err(DirectoryError::Status(status.as_u16()));
        }
        if res.content_length().is_some_and(|l| l > MAX_BYTES as u64) {
            return Err(DirectoryError::TooLarge);
        }
        let body = res.bytes().await.map_err(request)?;
        if body.len() > MAX_BYTES {
            return Err(DirectoryError::TooLarge);
        }
        Listing::parse(&body)
    }

    fn cached(&self, slug: &str) -> Option<String> {
        let now = self.platform.now();
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(slug)
            .filter(|(_, exp)| *exp - TOKEN_MARGIN_SECS > now)
            .map(|(t, _)| t.clone())
    }

    fn remember(&self, slug: &str, token: &str, expires_at: UnixTime) {
        let now = self.platform.now();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, (_, exp)| *exp > now);
            tokens.insert(slug.to_owned(), (token.to_owned(), expires_at));
        }
    }

    fn forget(&self, slug: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(slug);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::{self, Claims, MemberId};

    fn db() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &PLATFORM_DB, &path).unwrap();
        (dir, conn)
    }

    fn member(conn: &mut SqliteConnection, name: &str, at: UnixTime) -> MemberId {
        let c = Claims {
            sub: format!("sub-{name}"),
            preferred_username: name.into(),
            email: format!("{name}@a.example"),
            ..Claims::default()
        };
        members::upsert(conn, &c, at).unwrap().id
    }

    fn deactivated(conn: &mut SqliteConnection, id: MemberId) -> Option<UnixTime> {
        members::by_id(conn, id).unwrap().unwrap().deactivated_at
    }

    fn listing(entries: &[(&str, bool)]) -> Listing {
        Listing {
            members: entries
                .iter()
                .map(|(s, a)| Entry {
                    sub: format!("sub-{s}"),
                    active: *a,
                    ..Entry::default()
                })
                .collect(),
        }
    }

    /// An active colleague as the IdP lists them (with name, e-mail and roles).
    fn colleague(name: &str, display: &str, roles: &[&str]) -> Entry {
        Entry {
            sub: format!("sub-{name}"),
            active: true,
            preferred_username: Some(name.into()),
            name: Some(display.into()),
            email: Some(format!("{name}@a.example")),
            roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
        }
    }

    fn rows(conn: &mut SqliteConnection) -> i64 {
        schema::members::table.count().get_result(conn).unwrap()
    }

    fn by_sub(conn: &mut SqliteConnection, sub: &str) -> members::Member {
        let id: i64 = schema::members::table
            .filter(schema::members::sub.eq(sub))
            .select(schema::members::id)
            .first(conn)
            .unwrap();
        members::by_id(conn, MemberId(id)).unwrap().unwrap()
    }

    #[test]
    fn colleagues_who_never_signed_in_become_members_and_their_first_sign_in_takes_the_row() {
        let (_d, mut c) = db();
        let anna = member(&mut c, "anna", 100);
        let l = Listing {
            members: vec![
                colleague("anna", "Anna Test", &["arzt"]),
                colleague("emil", "Emil Neu", &["mfa", "admin"]),
                // Invited, disabled: no row.
                Entry {
                    sub: "sub-ida".into(),
                    active: false,
                    ..Entry::default()
                },
                // An active entry that says nothing about the person: no row.
                Entry {
                    sub: "sub-olaf".into(),
                    active: true,
                    ..Entry::default()
                },
            ],
        };
        let a = apply(&mut c, &l, 200, 201).unwrap();
        assert_eq!((a.added, a.updated, a.deactivated), (1, 1, 0));
        assert_eq!(rows(&mut c), 2);
        let emil = by_sub(&mut c, "sub-emil");
        assert_eq!(
            (emil.username.as_str(), emil.display_name.as_str()),
            ("emil", "Emil Neu")
        );
        assert_eq!(emil.email, "emil@a.example");
        assert_eq!(emil.role_labels(), ["MFA"]);
        assert!(emil.is_admin && !emil.is_deactivated());
        // Offered in the lists like everyone else.
        let names: Vec<String> = members::list(&mut c)
            .unwrap()
            .into_iter()
            .map(|m| m.username)
            .collect();
        assert_eq!(names, ["anna", "emil"]);
        // Anna's claims said nothing about her name and roles; the listing, newer, does.
        let a_row = members::by_id(&mut c, anna).unwrap().unwrap();
        assert_eq!(a_row.display_name, "Anna Test");
        assert_eq!(a_row.role_labels(), ["Ärzt:in"]);
        // The same listing again changes nothing.
        assert_eq!(apply(&mut c, &l, 300, 301).unwrap(), Applied::default());
        // Emil signs in for the first time: his row, not a second one.
        let signed = members::upsert(
            &mut c,
            &Claims {
                sub: "sub-emil".into(),
                preferred_username: "emil".into(),
                name: "Emil Neu".into(),
                email: "emil@a.example".into(),
                roles: vec!["mfa".into(), "admin".into()],
                is_admin: true,
                ..Claims::default()
            },
            400,
        )
        .unwrap();
        assert_eq!(signed.id, emil.id);
        assert_eq!(rows(&mut c), 2);
    }

    #[test]
    fn a_changed_name_at_the_idp_reaches_the_member_but_an_older_listing_never_wins() {
        let (_d, mut c) = db();
        let l = |display: &str| Listing {
            members: vec![colleague("bernd", display, &["mfa"])],
        };
        apply(&mut c, &l("Bernd Alt"), 100, 100).unwrap();
        let bernd = by_sub(&mut c, "sub-bernd").id;
        let name =
            |c: &mut SqliteConnection| members::by_id(c, bernd).unwrap().unwrap().display_name;
        // Renamed at the IdP: the next listing carries the new name.
        let a = apply(&mut c, &l("Bernd Neu"), 200, 201).unwrap();
        assert_eq!((a.updated, a.added), (1, 0));
        assert_eq!(name(&mut c), "Bernd Neu");
        // A listing requested before that one (a slow round) does not undo it.
        assert_eq!(
            apply(&mut c, &l("Bernd Alt"), 150, 202).unwrap(),
            Applied::default()
        );
        assert_eq!(name(&mut c), "Bernd Neu");
        // Claims of a sign-in at 300 are fresher than a listing requested at 250.
        members::upsert(
            &mut c,
            &Claims {
                sub: "sub-bernd".into(),
                preferred_username: "bernd".into(),
                name: "Bernd Claims".into(),
                ..Claims::default()
            },
            300,
        )
        .unwrap();
        apply(&mut c, &l("Bernd Neu"), 250, 301).unwrap();
        assert_eq!(name(&mut c), "Bernd Claims");
        // A later listing is fresher than those claims. Bidirectional controls are
        // neutralised, as in names from claims.
        apply(&mut c, &l("Bernd \u{202e}Neu"), 400, 401).unwrap();
        assert_eq!(name(&mut c), "Bernd \u{FFFD}Neu");
    }

    /// An open workspace session of `member` (raw row; the sign-in is not under test).
    fn open_session(conn: &mut SqliteConnection, member: MemberId, token: &str) -> i64 {
        use crate::schema::sessions as s;
        diesel::insert_into(s::table)
            .values((
                s::token_hash.eq(token),
                s::member_id.eq(member.0),
                s::id_token.eq("x"),
                s::access_token.eq("x"),
                s::access_expires_at.eq(10_000),
                s::created_at.eq(100),
                s::last_seen_at.eq(100),
            ))
            .execute(conn)
            .unwrap();
        s::table
            .filter(s::token_hash.eq(token))
            .select(s::id)
            .first(conn)
            .unwrap()
    }

    fn ended(conn: &mut SqliteConnection, id: i64) -> Option<(i64, Option<String>)> {
        use crate::schema::sessions as s;
        let (at, why): (Option<i64>, Option<String>) = s::table
            .find(id)
            .select((s::ended_at, s::end_reason))
            .first(conn)
            .unwrap();
        at.map(|at| (at, why))
    }

    #[test]
    fn a_member_who_left_keeps_no_open_session_and_is_reported_once() {
        let (_d, mut c) = db();
        let anna = member(&mut c, "anna", 100);
        let bernd = member(&mut c, "bernd", 100);
        let a1 = open_session(&mut c, anna, "a1");
        let b1 = open_session(&mut c, bernd, "b1");
        let b2 = open_session(&mut c, bernd, "b2");
        let a = apply(
            &mut c,
            &listing(&[("anna", true), ("bernd", false)]),
            200,
            201,
        )
        .unwrap();
        assert_eq!(a.deactivated, 1);
        assert_eq!(a.left, vec![bernd]);
        let mut ended_ids = a.ended_sessions.clone();
        ended_ids.sort_unstable();
        assert_eq!(ended_ids, vec![b1, b2]);
        let why = Some("member deactivated".to_owned());
        assert_eq!(ended(&mut c, b1), Some((201, why.clone())));
        assert_eq!(ended(&mut c, b2), Some((201, why)));
        assert_eq!(ended(&mut c, a1), None, "anna is still listed");
        // The next round changes nothing and reports nobody again.
        let again = apply(
            &mut c,
            &listing(&[("anna", true), ("bernd", false)]),
            300,
            301,
        );
        assert_eq!(again.unwrap(), Applied::default());
    }

    #[test]
    fn inactive_and_absent_members_are_marked_and_active_ones_cleared() {
        let (_d, mut c) = db();
        let anna = member(&mut c, "anna", 100);
        let bernd = member(&mut c, "bernd", 100);
        let carla = member(&mut c, "carla", 100);
        let l = listing(&[("anna", true), ("bernd", false), ("xaver", true)]);
        let a = apply(&mut c, &l, 200, 201).unwrap();
        assert_eq!((a.deactivated, a.reactivated), (2, 0));
        assert_eq!(deactivated(&mut c, anna), None);
        assert_eq!(deactivated(&mut c, bernd), Some(201));
        assert_eq!(deactivated(&mut c, carla), Some(201));
        // Unchanged listing: nothing changes, the first mark's time stays.
        assert_eq!(apply(&mut c, &l, 300, 301).unwrap(), Applied::default());
        assert_eq!(deactivated(&mut c, bernd), Some(201));
        // Bernd is enabled again.
        let l = listing(&[("anna", true), ("bernd", true)]);
        let a = apply(&mut c, &l, 400, 401).unwrap();
        assert_eq!((a.deactivated, a.reactivated), (0, 1));
        assert_eq!(deactivated(&mut c, bernd), None);
        assert_eq!(deactivated(&mut c, carla), Some(201));
        // Deactivated members leave the lists but keep their row (and name).
        let listed: Vec<MemberId> = members::list(&mut c)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(listed, [anna, bernd]);
        assert!(members::by_id(&mut c, carla).unwrap().is_some());
    }

    #[test]
    fn fresh_claims_clear_the_mark_and_outlive_an_older_listing() {
        let (_d, mut c) = db();
        let bernd = member(&mut c, "bernd", 100);
        apply(&mut c, &listing(&[]), 200, 200).unwrap();
        assert_eq!(deactivated(&mut c, bernd), Some(200));
        // A sign-in: the IdP let him in.
        member(&mut c, "bernd", 250);
        assert_eq!(deactivated(&mut c, bernd), None);
        // A listing requested before that sign-in (or a first sign-in) does not undo it.
        let dora = member(&mut c, "dora", 300);
        let a = apply(&mut c, &listing(&[]), 300, 301).unwrap();
        assert_eq!((a.deactivated, a.reactivated), (1, 0));
        assert_eq!(deactivated(&mut c, dora), None);
        assert_eq!(deactivated(&mut c, bernd), Some(301));
    }

    #[test]
    fn only_a_well_formed_answer_is_a_listing() {
        let l = Listing::parse(
            br#"{"members":[{"sub":"a","active":true},{"sub":"b","active":false}]}"#,
        )
        .unwrap();
        assert_eq!(l.members.len(), 2);
        let l = Listing::parse(
            br#"{"members":[{"sub":"a","active":true,"preferred_username":"anna","name":"Anna","email":"a@x.example","roles":["mfa"]}]}"#,
        )
        .unwrap();
        let listed = l.members[0].listed().unwrap();
        assert_eq!((listed.preferred_username, listed.name), ("anna", "Anna"));
        for bad in [
            &br#"{"members":[{"sub":"a","active":true,"roles":"mfa"}]}"#[..],
            br#"{"members":[{"sub":"a","active":true,"preferred_username":7}]}"#,
            b"not json",
            br#"{"launchables":[]}"#,
            br#"{"members":[{"sub":"a"}]}"#,
            br#"{"members":[{"sub":"a","active":"yes"}]}"#,
            br#"[]"#,
        ] {
            assert!(
                Listing::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
