//! Key/value settings tables (`settings(key, value)`) that each practice database kind
//! declares in its first migration; the apps keep their practice-wide settings there.

use diesel::prelude::*;

pub mod schema {
    diesel::table! {
        settings (key) {
            key -> Text,
            value -> Text,
        }
    }
}

use schema::settings;

pub fn get(conn: &mut SqliteConnection, key: &str) -> QueryResult<Option<String>> {
    settings::table
        .find(key)
        .select(settings::value)
        .first(conn)
        .optional()
}

pub fn set(conn: &mut SqliteConnection, key: &str, value: &str) -> QueryResult<()> {
    diesel::replace_into(settings::table)
        .values((settings::key.eq(key), settings::value.eq(value)))
        .execute(conn)
        .map(|_| ())
}
