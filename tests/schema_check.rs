//! The diesel schemas (`platform/src/schema.rs`, `idp/src/schema.rs`, and the tables
//! `tenants` declares for every practice database: `settings`, `mail_queue`) agree with what
//! the migrations create: the same tables, and per table the same columns with the same
//! type (SQLite affinity) and nullability. The migrations run on a fresh database; the
//! declared side comes from the compiled `table!` declarations themselves (each column's
//! `Column::NAME` and SQL type), so what is checked is what the code queries with. Runs
//! offline, without the diesel CLI.

use std::collections::BTreeMap;
use std::path::Path;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use kollegium_tenants::DbKind;

/// One column as a `table!` declares it.
#[derive(Debug, Clone)]
struct Declared {
    name: &'static str,
    /// `std::any::type_name` of its SQL type, e.g. `diesel::sql_types::Nullable<…Text>`.
    sql_type: &'static str,
}

/// The columns of a `table!`'s `AllColumns` tuple.
trait Columns {
    fn list() -> Vec<Declared>;
}

fn declared<C: diesel::Column>() -> Declared {
    Declared {
        name: C::NAME,
        sql_type: std::any::type_name::<<C as Expression>::SqlType>(),
    }
}

macro_rules! tuple_columns {
    ($($c:ident),+) => {
        impl<$($c: diesel::Column),+> Columns for ($($c,)+) {
            fn list() -> Vec<Declared> {
                vec![$(declared::<$c>()),+]
            }
        }
    };
}

macro_rules! all_tuples {
    ($head:ident $(, $tail:ident)*) => {
        tuple_columns!($head $(, $tail)*);
        all_tuples!($($tail),*);
    };
    () => {};
}

all_tuples!(
    C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17, C18, C19, C20, C21,
    C22, C23, C24, C25, C26, C27, C28, C29, C30, C31, C32
);

/// `(table name, its declared columns)` for each named `table!` of a schema module.
macro_rules! tables {
    ($($m:ident)::+ => [$($t:ident),+ $(,)?]) => {{
        use $($m)::+ as declared_in;
        vec![$((
            stringify!($t),
            <<declared_in::$t::table as diesel::Table>::AllColumns as Columns>::list(),
        )),+]
    }};
}

/// A column as the migrated database has it.
#[derive(Debug, QueryableByName)]
struct Actual {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared_type: String,
    #[diesel(sql_type = BigInt)]
    notnull: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

#[derive(Debug, QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// A database of `kind` with every migration run, in `dir`.
fn migrated(dir: &Path, kind: &DbKind) -> SqliteConnection {
    let path = dir.join(kind.file);
    let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
    kollegium_tenants::db::migrate(&mut conn, kind, &path).unwrap();
    conn
}

/// Tables and columns of the migrated database (diesel's own bookkeeping left out).
fn actual(conn: &mut SqliteConnection) -> BTreeMap<String, Vec<Actual>> {
    let tables: Vec<TableName> = diesel::sql_query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load(conn)
    .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let cols: Vec<Actual> = diesel::sql_query(
                "SELECT name, type AS declared_type, \"notnull\", pk FROM pragma_table_info(?1) \
                 ORDER BY cid",
            )
            .bind::<Text, _>(&t.name)
            .load(conn)
            .unwrap();
            (t.name, cols)
        })
        .collect()
}

/// SQLite's type affinity of a declared column type (the rules of "Datatypes In SQLite",
/// 3.1).
fn affinity(declared: &str) -> &'static str {
    let d = declared.to_ascii_uppercase();
    if d.contains("INT") {
        "INTEGER"
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        "TEXT"
    } else if d.contains("BLOB") || d.is_empty() {
        "BLOB"
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

/// The affinity a diesel SQL type needs and whether it is `Nullable`, or `None` for a type
/// this check does not know (reported as a difference).
fn expected(sql_type: &str) -> Option<(&'static [&'static str], bool)> {
    let short = |s: &str| -> String {
        s.trim_end_matches('>')
            .rsplit("::")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let (inner, nullable) = match sql_type.split_once("Nullable<") {
        Some((_, inner)) => (short(inner), true),
        None => (short(sql_type), false),
    };
    let affinities: &'static [&'static str] = match inner.as_str() {
        "BigInt" | "Integer" | "SmallInt" | "TinyInt" => &["INTEGER"],
        "Bool" => &["INTEGER", "NUMERIC"],
        "Text" => &["TEXT"],
        "Binary" => &["BLOB"],
        "Double" | "Float" => &["REAL"],
        _ => return None,
    };
    Some((affinities, nullable))
}

/// Every way `declared` and the migrated `actual` tables disagree, one line each.
fn differences(
    declared: &[(&'static str, Vec<Declared>)],
    actual: &BTreeMap<String, Vec<Actual>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for name in actual.keys() {
        if !declared.iter().any(|(t, _)| t == name) {
            out.push(format!(
                "table {name}: created by the migrations, no table! declares it"
            ));
        }
    }
    for (table, cols) in declared {
        let Some(have) = actual.get(*table) else {
            out.push(format!(
                "table {table}: declared, the migrations create no such table"
            ));
            continue;
        };
        for a in have {
            if !cols.iter().any(|c| c.name == a.name) {
                out.push(format!(
                    "{table}.{}: in the migrations, not declared",
                    a.name
                ));
            }
        }
        for c in cols {
            let Some(a) = have.iter().find(|a| a.name == c.name) else {
                out.push(format!(
                    "{table}.{}: declared, not in the migrations",
                    c.name
                ));
                continue;
            };
            let Some((affinities, nullable)) = expected(c.sql_type) else {
                out.push(format!(
                    "{table}.{}: unknown SQL type {}",
                    c.name, c.sql_type
                ));
                continue;
            };
            let have_affinity = affinity(&a.declared_type);
            if !affinities.contains(&have_affinity) {
                out.push(format!(
                    "{table}.{}: declared {} but the migrations make it {} ({have_affinity})",
                    c.name, c.sql_type, a.declared_type
                ));
            }
            let db_nullable = a.notnull == 0 && a.pk == 0;
            if nullable != db_nullable {
                out.push(format!(
                    "{table}.{}: declared {}, the migrations make it {}",
                    c.name,
                    if nullable { "Nullable" } else { "NOT NULL" },
                    if db_nullable { "nullable" } else { "NOT NULL" },
                ));
            }
        }
    }
    out
}

/// The tables `tenants` declares for every practice database.
fn shared_tables() -> Vec<(&'static str, Vec<Declared>)> {
    let mut t = tables!(kollegium_tenants::kv::schema => [settings]);
    t.extend(tables!(kollegium_tenants::mail::schema => [mail_queue]));
    t.extend(tables!(kollegium_tenants::jobs::schema => [jobs]));
    t
}

/// The names of the `table!` blocks in a schema file's source, so that a table added to
/// `schema.rs` but not to the lists below fails the check instead of going unchecked.
fn tables_in_source(src: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut lines = src.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("diesel::table!")
            && let Some(next) = lines.next()
            && let Some(name) = next.split_whitespace().next()
        {
            names.push(name.to_owned());
        }
    }
    names
}

fn assert_covers(declared: &[(&'static str, Vec<Declared>)], src: &str, file: &str) {
    for name in tables_in_source(src) {
        assert!(
            declared.iter().any(|(t, _)| *t == name),
            "{file} declares table {name}: add it to the list in tests/schema_check.rs"
        );
    }
}

fn platform_declared() -> Vec<(&'static str, Vec<Declared>)> {
    let mut t = tables!(kollegium_platform::schema => [
        members, sessions, rooms, room_members, messages, reactions,
        mention_notices, jobs, mail_queue, task_boards, task_board_access, task_columns,
        task_labels, task_cards, task_card_labels, task_card_assignees, task_checklist_items,
        task_comments, task_card_events, task_series, task_templates, task_reminder_settings,
        file_blobs, task_attachments, news_state, news_mail_opt_out,
    ]);
    // The platform's own `mail_queue` and `jobs` declarations are checked above;
    // `settings` is the shared one.
    t.extend(
        shared_tables()
            .into_iter()
            .filter(|(name, _)| *name == "settings"),
    );
    t
}

fn idp_declared() -> Vec<(&'static str, Vec<Declared>)> {
    let mut t = tables!(kollegium_idp::schema => [
        users, recovery_codes, action_tokens, devices, sessions, throttle, clients,
        signing_keys, grants, auth_codes, refresh_tokens, access_tokens, consents,
        session_clients, jobs, mail_queue, security_events,
    ]);
    t.extend(
        shared_tables()
            .into_iter()
            .filter(|(name, _)| *name == "settings"),
    );
    t
}

/// Checks one database kind: its `table!` declarations cover its schema file and agree with
/// what its migrations create, and tenants' shared tables fit it too.
fn check_kind(
    declared: Vec<(&'static str, Vec<Declared>)>,
    schema_rs: &str,
    schema_path: &str,
    kind: &DbKind,
) {
    assert_covers(&declared, schema_rs, schema_path);
    let dir = tempfile::tempdir().unwrap();
    let mut conn = migrated(dir.path(), kind);
    let diff = differences(&declared, &actual(&mut conn));
    assert!(diff.is_empty(), "{}:\n{}", kind.file, diff.join("\n"));
    let shared = shared_tables();
    let diff = differences(&shared, &actual(&mut conn))
        .into_iter()
        .filter(|d| !d.starts_with("table "))
        .collect::<Vec<_>>();
    assert!(
        diff.is_empty(),
        "{} (tenants' tables):\n{}",
        kind.file,
        diff.join("\n")
    );
}

#[test]
fn the_platform_schema_matches_its_migrations() {
    check_kind(
        platform_declared(),
        include_str!("../platform/src/schema.rs"),
        "platform/src/schema.rs",
        &kollegium_platform::PLATFORM_DB,
    );
}

#[test]
fn the_idp_schema_matches_its_migrations() {
    check_kind(
        idp_declared(),
        include_str!("../idp/src/schema.rs"),
        "idp/src/schema.rs",
        &kollegium_idp::IDP_DB,
    );
}

#[test]
fn the_broadcast_schemas_match_their_migrations() {
    use kollegium_tenants::broadcast::{node, operator};
    check_kind(
        tables!(kollegium_tenants::broadcast::node::schema => [entries, messages, refusals]),
        include_str!("../tenants/src/broadcast/node.rs"),
        "tenants/src/broadcast/node.rs",
        &node::NODE_DB,
    );
    // operator.sqlite: the feed, the console's tables and the IdP's throttle table shape.
    let mut declared = tables!(kollegium_tenants::broadcast::operator::schema => [feed]);
    declared.extend(tables!(kollegium::operator::schema => [
        operators, operator_setup_links, operator_sessions, operator_audit,
    ]));
    declared.extend(tables!(kollegium_idp::schema => [throttle]));
    check_kind(
        declared.clone(),
        include_str!("../tenants/src/broadcast/operator.rs"),
        "tenants/src/broadcast/operator.rs",
        &operator::OPERATOR_DB,
    );
    assert_covers(
        &declared,
        include_str!("../src/operator/schema.rs"),
        "src/operator/schema.rs",
    );
}

/// Deliberately wrong declarations of the platform's tables.
mod wrong {
    diesel::table! {
        messages (id) {
            id -> BigInt,
            room_id -> Nullable<BigInt>,
            author_id -> Nullable<BigInt>,
            body -> Binary,
            reply_to -> Nullable<BigInt>,
            mentions -> Text,
            mentions_all -> Bool,
            created_at -> BigInt,
            edited_at -> Nullable<BigInt>,
            colour -> Text,
        }
    }

    diesel::table! {
        gone (id) {
            id -> BigInt,
        }
    }
}

#[test]
fn a_wrong_table_declaration_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = migrated(dir.path(), &kollegium_platform::PLATFORM_DB);
    let actual = actual(&mut conn);
    // Right declarations of every other table, wrong ones of `messages`, and one too many.
    let mut declared: Vec<_> = platform_declared()
        .into_iter()
        .filter(|(t, _)| *t != "messages")
        .collect();
    declared.extend(tables!(wrong => [messages, gone]));
    let diff = differences(&declared, &actual);
    let has = |needle: &str| diff.iter().any(|d| d.contains(needle));
    assert!(
        has("messages.deleted_at: in the migrations, not declared"),
        "{diff:#?}"
    );
    assert!(
        has("messages.colour: declared, not in the migrations"),
        "{diff:#?}"
    );
    assert!(has("messages.body: declared"), "type: {diff:#?}");
    assert!(
        has("messages.room_id: declared Nullable"),
        "nullability: {diff:#?}"
    );
    assert!(
        has("table gone: declared, the migrations create no such table"),
        "{diff:#?}"
    );
    assert_eq!(diff.len(), 5, "nothing else: {diff:#?}");

    // A table the migrations create that nothing declares.
    let declared: Vec<_> = platform_declared()
        .into_iter()
        .filter(|(t, _)| *t != "reactions")
        .collect();
    let diff = differences(&declared, &actual);
    assert_eq!(
        diff,
        ["table reactions: created by the migrations, no table! declares it"]
    );
}

#[test]
fn schema_sources_are_read_for_their_tables() {
    let src = "diesel::table! {\n    a (id) {\n        id -> BigInt,\n    }\n}\n\n\
               diesel::table! {\n    b_c (x, y) {\n    }\n}\n";
    assert_eq!(tables_in_source(src), ["a", "b_c"]);
}

/// Both databases with jobs create the `jobs` table with the very SQL of
/// `kollegium_tenants::jobs::JOBS_SQL`.
#[test]
fn the_jobs_table_is_the_same_in_every_database_with_jobs() {
    for (file, up) in [
        (
            "platform",
            include_str!("../platform/migrations/2027-01-05-000001_jobs/up.sql"),
        ),
        (
            "idp",
            include_str!("../idp/migrations/2027-01-05-000001_jobs/up.sql"),
        ),
    ] {
        assert!(
            up.contains(kollegium_tenants::jobs::JOBS_SQL),
            "{file}'s jobs migration differs from JOBS_SQL"
        );
    }
}

/// A database of kind `crate_dir` migrated with the migration files up to, not including,
/// `before`.
fn migrated_before(dir: &Path, crate_dir: &str, before: &str) -> SqliteConnection {
    use diesel::connection::SimpleConnection;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(crate_dir)
        .join("migrations");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.as_str() < before)
        .collect();
    names.sort();
    let mut conn = kollegium_tenants::db::open_connection(&dir.join("db.sqlite")).unwrap();
    for n in names {
        let sql = std::fs::read_to_string(root.join(n).join("up.sql")).unwrap();
        conn.batch_execute(&sql).unwrap();
    }
    conn.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
    conn
}

#[derive(QueryableByName, Debug, PartialEq)]
struct JobRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    payload: Option<String>,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = BigInt)]
    run_after: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    failed_at: Option<i64>,
}

fn job_rows(conn: &mut SqliteConnection) -> Vec<JobRow> {
    diesel::sql_query(
        "SELECT kind, key, payload, attempts, run_after, failed_at FROM jobs ORDER BY kind, key",
    )
    .load(conn)
    .unwrap()
}

const JOBS_MIGRATION: &str = "2027-01-05-000001_jobs";

/// Pending work of the old queues becomes jobs; what was done stays out.
#[test]
fn the_jobs_migration_moves_pending_work_into_jobs() {
    use diesel::connection::SimpleConnection;
    let dir = tempfile::tempdir().unwrap();
    let mut c = migrated_before(dir.path(), "platform", JOBS_MIGRATION);
    c.batch_execute(
        "INSERT INTO search_queue (message_id, queued_at) VALUES (7, 100);
         INSERT INTO mention_notices (id, member_id, room_id, message_id, due_at, done_at)
             VALUES (1, 1, 1, 7, 500, NULL), (2, 1, 1, 7, 400, 450);
         INSERT INTO mail_queue (id, kind, recipient, subject, body_text, body_html, created_at,
                 attempts, next_attempt_at, sent_at, failed_at)
             VALUES (3, 'mention', 'a@b.example', 's', 't', 'h', 90, 2, 160, NULL, NULL),
                    (4, 'mention', 'a@b.example', 's', '', '', 90, 1, 90, 95, NULL);",
    )
    .unwrap();
    let up = format!("{JOBS_MIGRATION}/up.sql");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    c.batch_execute(&std::fs::read_to_string(root.join("platform/migrations").join(&up)).unwrap())
        .unwrap();
    let row = |kind: &str, key: &str, attempts, run_after| JobRow {
        kind: kind.into(),
        key: key.into(),
        payload: None,
        attempts,
        run_after,
        failed_at: None,
    };
    assert_eq!(
        job_rows(&mut c),
        vec![
            row("chat.mention", "1", 0, 500),
            row("mail", "3", 2, 160),
            row("search", "chat-message:7", 0, 100),
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let mut c = migrated_before(dir.path(), "idp", JOBS_MIGRATION);
    c.batch_execute(
        "INSERT INTO backchannel_queue (id, client_id, uri, logout_token, attempts,
                 next_attempt_at, created_at, delivered_at, last_error)
             VALUES (1, 'tool', 'https://tool.example/bc', '{\"sid\":\"s\"}', 2, 300, 100, NULL, 'HTTP 500'),
                    (2, 'tool', 'https://tool.example/bc', '{}', 1, 300, 100, 150, NULL),
                    (3, 'tool', 'https://tool.example/bc', '{}', 8, 900, 100, NULL, 'timeout');",
    )
    .unwrap();
    c.batch_execute(&std::fs::read_to_string(root.join("idp/migrations").join(&up)).unwrap())
        .unwrap();
    let rows = job_rows(&mut c);
    assert_eq!(
        rows.iter()
            .map(|r| (r.key.as_str(), r.attempts, r.run_after, r.failed_at))
            .collect::<Vec<_>>(),
        vec![("notice:1", 2, 300, None), ("notice:3", 8, 900, Some(900))]
    );
    assert!(
        rows.iter()
            .all(|r| r.kind == kollegium_idp::oidc::backchannel::JOB_KIND)
    );
    let notice: kollegium_idp::oidc::backchannel::Notice =
        serde_json::from_str(rows[0].payload.as_deref().unwrap()).unwrap();
    assert_eq!(
        notice,
        kollegium_idp::oidc::backchannel::Notice {
            client_id: "tool".into(),
            uri: "https://tool.example/bc".into(),
            claims: "{\"sid\":\"s\"}".into(),
        }
    );
}
