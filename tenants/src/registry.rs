//! The central registry (`data/registry.sqlite`): which practices exist, their status and
//! placement. It never holds a practice's users, profiles, content or logs.

use std::path::Path;

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::embed_migrations;

use crate::clock::UnixTime;
use crate::db::{self, DbError, DbKind};
use crate::slug::Slug;
use crate::time::Zone;

pub mod schema {
    diesel::table! {
        practices (slug) {
            slug -> Text,
            display_name -> Text,
            status -> Text,
            created_at -> BigInt,
            status_changed_at -> BigInt,
            placement -> Text,
            time_zone -> Text,
        }
    }

    diesel::table! {
        practice_flags (slug, flag) {
            slug -> Text,
            flag -> Text,
            set_at -> BigInt,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(practices, practice_flags);
}

use schema::{practice_flags, practices};

pub const REGISTRY_DB: DbKind = DbKind {
    name: "registry",
    file: "registry.sqlite",
    migrations: embed_migrations!("migrations/registry"),
};

/// Lifecycle state of a practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PracticeStatus {
    Active,
    Suspended,
    /// Tombstone: the directory is gone, the slug stays taken.
    Deleted,
}

impl PracticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "deleted" => Ok(Self::Deleted),
            other => Err(DbError::Query(diesel::result::Error::DeserializationError(
                format!("unknown practice status {other:?}").into(),
            ))),
        }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = practices)]
struct PracticeRow {
    slug: String,
    display_name: String,
    status: String,
    created_at: i64,
    status_changed_at: i64,
    placement: String,
    time_zone: String,
}

/// A practice as the registry knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Practice {
    pub slug: String,
    pub display_name: String,
    pub status: PracticeStatus,
    pub created_at: UnixTime,
    pub status_changed_at: UnixTime,
    pub placement: String,
    /// Where the practice's users are: every time they are shown is in this zone.
    pub time_zone: Zone,
}

impl TryFrom<PracticeRow> for Practice {
    type Error = DbError;
    fn try_from(r: PracticeRow) -> Result<Self, DbError> {
        Ok(Self {
            status: PracticeStatus::parse(&r.status)?,
            slug: r.slug,
            display_name: r.display_name,
            created_at: r.created_at,
            status_changed_at: r.status_changed_at,
            placement: r.placement,
            time_zone: Zone::stored(&r.time_zone),
        })
    }
}

/// Opens the registry database of a data directory and migrates it.
pub fn open(data_dir: &Path) -> Result<SqliteConnection, DbError> {
    let path = data_dir.join(REGISTRY_DB.file);
    let mut conn = db::open_connection(&path)?;
    db::migrate(&mut conn, &REGISTRY_DB, &path)?;
    Ok(conn)
}

pub fn find(conn: &mut SqliteConnection, slug: &str) -> Result<Option<Practice>, DbError> {
    practices::table
        .find(slug)
        .select(PracticeRow::as_select())
        .first(conn)
        .optional()?
        .map(Practice::try_from)
        .transpose()
}

/// All practices, tombstones included, ordered by slug.
pub fn list(conn: &mut SqliteConnection) -> Result<Vec<Practice>, DbError> {
    practices::table
        .order(practices::slug)
        .select(PracticeRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Practice::try_from)
        .collect()
}

/// Practices that are not deleted.
pub fn count_live(conn: &mut SqliteConnection) -> Result<i64, DbError> {
    Ok(practices::table
        .filter(practices::status.ne(PracticeStatus::Deleted.as_str()))
        .count()
        .get_result(conn)?)
}

pub fn insert(
    conn: &mut SqliteConnection,
    slug: &Slug,
    display_name: &str,
    now: UnixTime,
) -> Result<(), DbError> {
    diesel::insert_into(practices::table)
        .values((
            practices::slug.eq(slug.as_str()),
            practices::display_name.eq(display_name),
            practices::status.eq(PracticeStatus::Active.as_str()),
            practices::created_at.eq(now),
            practices::status_changed_at.eq(now),
            practices::placement.eq("local"),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_status(
    conn: &mut SqliteConnection,
    slug: &Slug,
    status: PracticeStatus,
    now: UnixTime,
) -> Result<(), DbError> {
    diesel::update(practices::table.find(slug.as_str()))
        .set((
            practices::status.eq(status.as_str()),
            practices::status_changed_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets the practice's time zone (a zone [`Zone::parse`] accepted). Returns whether the
/// practice exists.
pub fn set_time_zone(
    conn: &mut SqliteConnection,
    slug: &Slug,
    zone: &Zone,
) -> Result<bool, DbError> {
    let n = diesel::update(practices::table.find(slug.as_str()))
        .set(practices::time_zone.eq(zone.name()))
        .execute(conn)?;
    Ok(n == 1)
}

/// A flag a practice's app sets in the registry so that node-wide work finds the practices
/// to open without opening every one (e.g. `app.mail`: an app that mails members when the node receives something). A name
/// chosen by its owner, never content or anything about members; validated here only as a
/// short name.
pub fn valid_flag(flag: &str) -> bool {
    !flag.is_empty()
        && flag.len() <= 64
        && flag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// Sets or clears `flag` for the practice. Returns whether the practice exists.
pub fn set_flag(
    conn: &mut SqliteConnection,
    slug: &Slug,
    flag: &str,
    on: bool,
    now: UnixTime,
) -> Result<bool, DbError> {
    if !valid_flag(flag) {
        return Err(DbError::Query(diesel::result::Error::QueryBuilderError(
            format!("invalid practice flag {flag:?}").into(),
        )));
    }
    let exists = find(conn, slug.as_str())?.is_some();
    if !exists {
        return Ok(false);
    }
    if on {
        diesel::insert_or_ignore_into(practice_flags::table)
            .values((
                practice_flags::slug.eq(slug.as_str()),
                practice_flags::flag.eq(flag),
                practice_flags::set_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        diesel::delete(practice_flags::table.find((slug.as_str(), flag))).execute(conn)?;
    }
    Ok(true)
}

/// The active practices (not suspended, not deleted) with `flag` set, by slug.
pub fn with_flag(conn: &mut SqliteConnection, flag: &str) -> Result<Vec<String>, DbError> {
    Ok(practice_flags::table
        .inner_join(practices::table.on(practices::slug.eq(practice_flags::slug)))
        .filter(practice_flags::flag.eq(flag))
        .filter(practices::status.eq(PracticeStatus::Active.as_str()))
        .order(practice_flags::slug)
        .select(practice_flags::slug)
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_practice_has_berlin_time_until_it_chooses_another_zone() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(dir.path()).unwrap();
        let slug = Slug::parse("praxis-a").unwrap();
        insert(&mut conn, &slug, "Praxis A", 1_000).unwrap();
        let p = find(&mut conn, "praxis-a").unwrap().unwrap();
        assert_eq!(p.time_zone.name(), "Europe/Berlin");
        let vienna = Zone::parse("Europe/Vienna").unwrap();
        assert!(set_time_zone(&mut conn, &slug, &vienna).unwrap());
        let p = find(&mut conn, "praxis-a").unwrap().unwrap();
        assert_eq!(p.time_zone, vienna);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["time_zone"], "Europe/Vienna");
        let other = Slug::parse("praxis-b").unwrap();
        assert!(!set_time_zone(&mut conn, &other, &vienna).unwrap());
    }

    #[test]
    fn flags_name_the_active_practices_that_set_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(dir.path()).unwrap();
        let (a, b, c) = (
            Slug::parse("praxis-a").unwrap(),
            Slug::parse("praxis-b").unwrap(),
            Slug::parse("praxis-c").unwrap(),
        );
        for s in [&a, &b] {
            insert(&mut conn, s, "Praxis", 1_000).unwrap();
        }
        assert!(with_flag(&mut conn, "app.mail").unwrap().is_empty());
        assert!(set_flag(&mut conn, &a, "app.mail", true, 1).unwrap());
        assert!(
            set_flag(&mut conn, &a, "app.mail", true, 2).unwrap(),
            "twice is once"
        );
        assert!(set_flag(&mut conn, &b, "other.flag", true, 1).unwrap());
        assert!(
            !set_flag(&mut conn, &c, "app.mail", true, 1).unwrap(),
            "unknown practice"
        );
        assert_eq!(with_flag(&mut conn, "app.mail").unwrap(), ["praxis-a"]);
        set_status(&mut conn, &a, PracticeStatus::Suspended, 3).unwrap();
        assert!(
            with_flag(&mut conn, "app.mail").unwrap().is_empty(),
            "suspended"
        );
        set_status(&mut conn, &a, PracticeStatus::Active, 4).unwrap();
        assert!(set_flag(&mut conn, &a, "app.mail", false, 5).unwrap());
        assert!(with_flag(&mut conn, "app.mail").unwrap().is_empty());
        for bad in ["", "Mail", "a b", "x;--", &"x".repeat(65)] {
            assert!(set_flag(&mut conn, &a, bad, true, 1).is_err(), "{bad}");
        }
    }
}
