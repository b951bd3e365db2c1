//! Helpers of the platform's unit tests: a migrated `platform.sqlite` in a temporary
//! directory, and members in it.

use diesel::SqliteConnection;

use crate::PLATFORM_DB;
use crate::members::{self, Claims, MemberId};

/// A fresh, migrated `platform.sqlite` (the directory lives as long as the first value).
pub(crate) fn db() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
    kollegium_tenants::db::migrate(&mut conn, &PLATFORM_DB, &path).unwrap();
    (dir, conn)
}

/// A member `username` (display name "<username> Name"), created as a sign-in would.
pub(crate) fn member(conn: &mut SqliteConnection, username: &str) -> MemberId {
    let c = Claims {
        sub: format!("sub-{username}"),
        preferred_username: username.into(),
        name: format!("{username} Name"),
        ..Claims::default()
    };
    members::upsert(conn, &c, 1_000).unwrap().id
}
