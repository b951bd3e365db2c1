//! The operator audit log (`operator_audit`): who did what, when. Every console and CLI
//! action calls [`record`] in the transaction of its change. It names the actor (an
//! operator's name or [`CLI`]), an action code and its subject (a slug, an operator's name,
//! a message id), never content.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use super::schema::operator_audit;

/// The actor of everything done on the command line.
pub const CLI: &str = "Kommandozeile";

/// Entries per page of `/audit`.
pub const PAGE_SIZE: i64 = 50;

/// The action codes and their German labels for the page. An action missing here is shown
/// by its code (other parts of the console add their own codes, e.g. `news.publish`).
pub const LABELS: &[(&str, &str)] = &[
    ("operator.add", "Betreiberkonto angelegt"),
    ("operator.setup_link", "Einrichtungslink ausgestellt"),
    (
        "operator.setup",
        "Einrichtung abgeschlossen (Passwort und TOTP)",
    ),
    ("operator.suspend", "Betreiberkonto gesperrt"),
    ("operator.resume", "Betreiberkonto entsperrt"),
    ("operator.sign_in", "Angemeldet"),
    ("operator.sign_out", "Abgemeldet"),
    (
        "operator.lockout",
        "Anmeldung gesperrt (zu viele Fehlversuche)",
    ),
    ("practice.create", "Praxis angelegt"),
    ("practice.suspend", "Praxis gesperrt"),
    ("practice.resume", "Praxis entsperrt"),
    ("practice.delete", "Praxis gelöscht"),
    ("practice.time_zone", "Zeitzone der Praxis geändert"),
    (
        "practice.setup_link",
        "Einrichtungslink der Praxisinhaber:in ausgestellt",
    ),
    ("news.publish", "Neuigkeit veröffentlicht"),
    ("news.withdraw", "Neuigkeit zurückgezogen"),
];

/// The German label of an action code (the code itself when unknown).
pub fn label(action: &str) -> &str {
    LABELS
        .iter()
        .find(|(code, _)| *code == action)
        .map_or(action, |(_, l)| l)
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = operator_audit)]
pub struct Entry {
    pub id: i64,
    pub at: UnixTime,
    pub who: String,
    pub action: String,
    pub subject: String,
}

/// Records that `who` did `action` to `subject` at `now`.
pub fn record(
    conn: &mut SqliteConnection,
    now: UnixTime,
    who: &str,
    action: &str,
    subject: &str,
) -> QueryResult<()> {
    diesel::insert_into(operator_audit::table)
        .values((
            operator_audit::at.eq(now),
            operator_audit::who.eq(who),
            operator_audit::action.eq(action),
            operator_audit::subject.eq(subject),
        ))
        .execute(conn)
        .map(|_| ())
}

/// A page of the log, newest first: the entries before id `before` (all when `None`), at
/// most [`PAGE_SIZE`], and the `before` of the next (older) page if there is one.
pub fn page(
    conn: &mut SqliteConnection,
    before: Option<i64>,
) -> QueryResult<(Vec<Entry>, Option<i64>)> {
    let mut q = operator_audit::table
        .select(Entry::as_select())
        .order(operator_audit::id.desc())
        .limit(PAGE_SIZE + 1)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(operator_audit::id.lt(b));
    }
    let mut rows = q.load(conn)?;
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    let next = more.then(|| rows.last().map(|e| e.id)).flatten();
    Ok((rows, next))
}

/// Records a command-line action (`who` = [`CLI`]) in `data_dir`'s `operator.sqlite`, for
/// commands that do not otherwise open it (the practice lifecycle). Blocking.
pub fn record_cli(
    data_dir: &std::path::Path,
    now: UnixTime,
    action: &str,
    subject: &str,
) -> anyhow::Result<()> {
    let mut conn = super::open_db(data_dir)?;
    record(&mut conn, now, CLI, action, subject)?;
    Ok(())
}
