//! The `mail_queue` table of a practice database: enqueue, due mail, delivery outcomes.
//! Functions take a connection so apps can enqueue inside their own transaction.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::schema::mail_queue;
use crate::clock::UnixTime;

/// A rendered mail on its way into the queue.
#[derive(Debug, Clone, Copy)]
pub struct NewMail<'a> {
    /// What the mail is about (`invitation`, `password_reset`, ...): for logs and tests.
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// A queued mail that is due for delivery.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_queue)]
pub struct QueuedMail {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub created_at: UnixTime,
    pub attempts: i64,
}

/// Longest error text kept in `last_error`.
const MAX_ERROR_CHARS: usize = 500;

/// Subjects are one line: control characters (a line break in a name) become spaces.
fn one_line(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Puts a mail into the queue, due now, with its delivery job ([`crate::jobs`], kind
/// [`super::worker::JOB_KIND`], keyed by the mail's id). Returns its id. Call it in the
/// transaction of the change the mail reports, and poke the [`crate::jobs::JobSignal`]
/// after the commit.
pub fn enqueue(conn: &mut SqliteConnection, now: UnixTime, mail: &NewMail<'_>) -> QueryResult<i64> {
    let id: i64 = diesel::insert_into(mail_queue::table)
        .values((
            mail_queue::kind.eq(mail.kind),
            mail_queue::recipient.eq(mail.recipient.trim()),
            mail_queue::subject.eq(one_line(mail.subject)),
            mail_queue::body_text.eq(mail.text),
            mail_queue::body_html.eq(mail.html),
            mail_queue::created_at.eq(now),
            mail_queue::next_attempt_at.eq(now),
        ))
        .returning(mail_queue::id)
        .get_result(conn)?;
    crate::jobs::enqueue(
        conn,
        super::worker::JOB_KIND,
        &id.to_string(),
        None,
        0,
        now,
        now,
    )?;
    Ok(id)
}

/// The mails of `ids` that are neither delivered nor given up.
pub fn undelivered(conn: &mut SqliteConnection, ids: &[i64]) -> QueryResult<Vec<QueuedMail>> {
    mail_queue::table
        .filter(mail_queue::id.eq_any(ids))
        .filter(mail_queue::sent_at.is_null())
        .filter(mail_queue::failed_at.is_null())
        .order(mail_queue::id)
        .select(QueuedMail::as_select())
        .load(conn)
}

/// Undelivered mail whose next attempt is due, oldest first.
pub fn due(conn: &mut SqliteConnection, now: UnixTime, limit: i64) -> QueryResult<Vec<QueuedMail>> {
    mail_queue::table
        .filter(mail_queue::sent_at.is_null())
        .filter(mail_queue::failed_at.is_null())
        .filter(mail_queue::next_attempt_at.le(now))
        .order((mail_queue::next_attempt_at, mail_queue::id))
        .limit(limit)
        .select(QueuedMail::as_select())
        .load(conn)
}

/// When the next undelivered mail is due (`None`: nothing waits).
pub fn next_due(conn: &mut SqliteConnection) -> QueryResult<Option<UnixTime>> {
    mail_queue::table
        .filter(mail_queue::sent_at.is_null())
        .filter(mail_queue::failed_at.is_null())
        .select(diesel::dsl::min(mail_queue::next_attempt_at))
        .first(conn)
}

/// Runs `f` with SQLite's `secure_delete` on, so the bytes of content it removes or shrinks
/// are overwritten with zeros in the database pages instead of lingering as free space.
/// The connection's setting is restored afterwards (it costs writes, so it is not on for
/// everything).
fn securely<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    conn.batch_execute("PRAGMA secure_delete = ON")?;
    let result = f(conn);
    let restored = conn.batch_execute("PRAGMA secure_delete = OFF");
    let value = result?;
    restored?;
    Ok(value)
}

/// Records a delivery and drops the body: once the relay (or the outbox) has the mail, the
/// queue keeps only the record (kind, recipient, subject, times, attempts), never the
/// one-time link the body carried. Checkpoint the database afterwards
/// ([`crate::db::checkpoint_truncate`]) so the body is not left in the write-ahead log.
pub fn mark_sent(conn: &mut SqliteConnection, id: i64, now: UnixTime) -> QueryResult<()> {
    securely(conn, |conn| {
        diesel::update(mail_queue::table.find(id))
            .set((
                mail_queue::sent_at.eq(now),
                mail_queue::attempts.eq(mail_queue::attempts + 1),
                mail_queue::body_text.eq(""),
                mail_queue::body_html.eq(""),
            ))
            .execute(conn)
            .map(|_| ())
    })
}

fn clip(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

/// Records a failed attempt; the next one is due at `next_at`.
pub fn mark_retry(
    conn: &mut SqliteConnection,
    id: i64,
    next_at: UnixTime,
    error: &str,
) -> QueryResult<()> {
    diesel::update(mail_queue::table.find(id))
        .set((
            mail_queue::attempts.eq(mail_queue::attempts + 1),
            mail_queue::next_attempt_at.eq(next_at),
            mail_queue::last_error.eq(clip(error)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Gives up on a mail that can never be delivered: the row stays as the record (not
/// retried), its body is dropped like a delivered one's.
pub fn mark_failed(
    conn: &mut SqliteConnection,
    id: i64,
    now: UnixTime,
    error: &str,
) -> QueryResult<()> {
    securely(conn, |conn| {
        diesel::update(mail_queue::table.find(id))
            .set((
                mail_queue::attempts.eq(mail_queue::attempts + 1),
                mail_queue::failed_at.eq(now),
                mail_queue::last_error.eq(clip(error)),
                mail_queue::body_text.eq(""),
                mail_queue::body_html.eq(""),
            ))
            .execute(conn)
            .map(|_| ())
    })
}

/// Delay before attempt `attempts + 1` after `attempts` failures: `initial`, doubled per
/// failure, capped at `max`.
pub fn backoff(attempts: i64, initial: i64, max: i64) -> i64 {
    let initial = initial.max(1);
    let shift = attempts.saturating_sub(1).clamp(0, 40) as u32;
    initial.saturating_mul(1_i64 << shift).min(max.max(initial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> SqliteConnection {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute(crate::mail::MAIL_QUEUE_SQL).unwrap();
        c.batch_execute(crate::jobs::JOBS_SQL).unwrap();
        c
    }

    fn mail() -> NewMail<'static> {
        NewMail {
            kind: "invitation",
            recipient: " anna@praxis.example ",
            subject: "Einladung\r\nBcc: x@y.de",
            text: "t",
            html: "<p>h</p>",
        }
    }

    #[test]
    fn due_retry_sent_and_failed() {
        let mut c = db();
        let a = enqueue(&mut c, 100, &mail()).unwrap();
        let b = enqueue(&mut c, 105, &mail()).unwrap();
        assert_eq!(due(&mut c, 99, 10).unwrap().len(), 0);
        let d = due(&mut c, 105, 10).unwrap();
        assert_eq!(d.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(d[0].recipient, "anna@praxis.example");
        assert_eq!(d[0].subject, "Einladung  Bcc: x@y.de");
        assert_eq!(next_due(&mut c).unwrap(), Some(100));

        mark_retry(&mut c, a, 160, &"x".repeat(2000)).unwrap();
        assert_eq!(next_due(&mut c).unwrap(), Some(105));
        mark_sent(&mut c, b, 106).unwrap();
        assert_eq!(next_due(&mut c).unwrap(), Some(160));
        assert!(due(&mut c, 159, 10).unwrap().is_empty());
        let again = due(&mut c, 160, 10).unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        mark_failed(&mut c, a, 170, "bad address").unwrap();
        assert_eq!(next_due(&mut c).unwrap(), None);
        assert!(due(&mut c, 1_000_000, 10).unwrap().is_empty());
    }

    #[test]
    fn a_queued_mail_has_its_job_and_rolls_back_with_it() {
        let mut c = db();
        let a = enqueue(&mut c, 100, &mail()).unwrap();
        let r: QueryResult<i64> = c.transaction(|c| {
            enqueue(c, 100, &mail())?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(r.is_err());
        let jobs =
            crate::jobs::queue::due(&mut c, super::super::worker::JOB_KIND, 100, 10).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].key, a.to_string());
        assert_eq!(undelivered(&mut c, &[a, a + 1]).unwrap().len(), 1);
        mark_sent(&mut c, a, 101).unwrap();
        assert!(undelivered(&mut c, &[a]).unwrap().is_empty());
    }

    #[test]
    fn delivery_and_giving_up_drop_the_body_a_retry_keeps_it() {
        let mut c = db();
        let (a, b) = (
            enqueue(&mut c, 100, &mail()).unwrap(),
            enqueue(&mut c, 100, &mail()).unwrap(),
        );
        let body = |c: &mut SqliteConnection, id: i64| -> (String, String) {
            mail_queue::table
                .find(id)
                .select((mail_queue::body_text, mail_queue::body_html))
                .first(c)
                .unwrap()
        };
        mark_retry(&mut c, a, 160, "relay down").unwrap();
        assert_eq!(body(&mut c, a), ("t".into(), "<p>h</p>".into()));
        mark_sent(&mut c, a, 170).unwrap();
        assert_eq!(body(&mut c, a), (String::new(), String::new()));
        mark_failed(&mut c, b, 170, "bad address").unwrap();
        assert_eq!(body(&mut c, b), (String::new(), String::new()));
        // The record stays.
        let kinds: Vec<String> = mail_queue::table
            .select(mail_queue::kind)
            .load(&mut c)
            .unwrap();
        assert_eq!(kinds.len(), 2);
    }

    /// The bytes of a delivered body are in neither the database file nor its WAL once the
    /// database is checkpointed; an update without `secure_delete` would leave them.
    #[test]
    fn a_delivered_body_leaves_no_bytes_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let link = "https://praxis-a.example/id/setup/Zm9vYmFyLXNlY3JldC10b2tlbg";
        let text = format!("Guten Tag,\n{link}\n{}", "Lorem ipsum. ".repeat(400));
        let html = format!("<a href=\"{link}\">{link}</a>");
        let contains = |dir: &std::path::Path, file: &str| {
            ["", "-wal", "-shm"].iter().any(|suffix| {
                std::fs::read(dir.join(format!("{file}{suffix}")))
                    .is_ok_and(|b| b.windows(link.len()).any(|w| w == link.as_bytes()))
            })
        };
        for secure in [true, false] {
            let file = if secure {
                "secure.sqlite"
            } else {
                "plain.sqlite"
            };
            let path = dir.path().join(file);
            let mut c = crate::db::open_connection(&path).unwrap();
            c.batch_execute(crate::mail::MAIL_QUEUE_SQL).unwrap();
            c.batch_execute(crate::jobs::JOBS_SQL).unwrap();
            let m = NewMail {
                text: &text,
                html: &html,
                ..mail()
            };
            let id = enqueue(&mut c, 100, &m).unwrap();
            crate::db::checkpoint_truncate(&mut c).unwrap();
            assert!(contains(dir.path(), file), "the queued body is stored");
            if secure {
                mark_sent(&mut c, id, 101).unwrap();
            } else {
                diesel::update(mail_queue::table.find(id))
                    .set((mail_queue::body_text.eq(""), mail_queue::body_html.eq("")))
                    .execute(&mut c)
                    .unwrap();
            }
            assert!(crate::db::checkpoint_truncate(&mut c).unwrap());
            assert_eq!(contains(dir.path(), file), !secure, "{file}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 60, 3600), 60);
        assert_eq!(backoff(2, 60, 3600), 120);
        assert_eq!(backoff(3, 60, 3600), 240);
        assert_eq!(backoff(10, 60, 3600), 3600);
        assert_eq!(backoff(i64::MAX, 60, 3600), 3600);
        assert_eq!(backoff(0, 0, 0), 1);
    }
}
