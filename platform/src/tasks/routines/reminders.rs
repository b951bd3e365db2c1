//! Due-date reminders by mail: a member's setting (off unless switched on; at the due time,
//! 1 hour or 1 day before, …) and a [`super::jobs::REMINDER`] job per due card and
//! assignee, due at the reminder's time.
//!
//! [`schedule`] runs in the transaction of every change of a card that matters (created,
//! due date, assignees, done, archived: [`super::card_changed`]); it drops the card's
//! pending reminders and queues them afresh. [`deliver`] checks the card again when the
//! job runs (still due at the same time, open, the member still assigned, reminders still
//! on), so a job that outlived a change mails nothing.
//!
//! The mail says only that a task is due and links to `/tasks/cards/<id>`: no title, no
//! description, no board (DESIGN "Do not track": no content in notification mails).

use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::jobs::Job;
use kollegium_tenants::jobs::schema::jobs;
use kollegium_tenants::mail::queue::{self, NewMail};

use super::RoutineError;
use super::jobs::REMINDER;
use crate::members::{self, MemberId};
use crate::notify::mentions::plain;
use crate::schema::{task_card_assignees, task_cards, task_reminder_settings};
use crate::tasks::CardId;

/// The choices of lead time, in minutes, with their German labels.
pub const LEADS: &[(i64, &str)] = &[
    (0, "zum Fälligkeitstermin"),
    (15, "15 Minuten vorher"),
    (60, "1 Stunde vorher"),
    (180, "3 Stunden vorher"),
    (1440, "1 Tag vorher"),
    (2880, "2 Tage vorher"),
    (10080, "1 Woche vorher"),
];

/// A member's reminder setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub enabled: bool,
    pub lead_minutes: i64,
}

impl Default for Setting {
    fn default() -> Self {
        Self {
            enabled: false,
            lead_minutes: 60,
        }
    }
}

pub fn setting(conn: &mut SqliteConnection, member: MemberId) -> QueryResult<Setting> {
    Ok(task_reminder_settings::table
        .find(member.0)
        .select((
            task_reminder_settings::enabled,
            task_reminder_settings::lead_minutes,
        ))
        .first::<(bool, i64)>(conn)
        .optional()?
        .map(|(enabled, lead_minutes)| Setting {
            enabled,
            lead_minutes,
        })
        .unwrap_or_default())
}

/// Stores a member's setting (a lead time not offered is refused) and reschedules the
/// reminders of the open cards assigned to them.
pub fn set(
    conn: &mut SqliteConnection,
    member: MemberId,
    s: Setting,
    now: UnixTime,
) -> Result<(), RoutineError> {
    if !LEADS.iter().any(|(m, _)| *m == s.lead_minutes) {
        return Err(RoutineError::Lead);
    }
    diesel::insert_into(task_reminder_settings::table)
        .values((
            task_reminder_settings::member_id.eq(member.0),
            task_reminder_settings::enabled.eq(s.enabled),
            task_reminder_settings::lead_minutes.eq(s.lead_minutes),
            task_reminder_settings::updated_at.eq(now),
        ))
        .on_conflict(task_reminder_settings::member_id)
        .do_update()
        .set((
            task_reminder_settings::enabled.eq(s.enabled),
            task_reminder_settings::lead_minutes.eq(s.lead_minutes),
            task_reminder_settings::updated_at.eq(now),
        ))
        .execute(conn)?;
    let open: Vec<i64> = task_card_assignees::table
        .inner_join(task_cards::table)
        .filter(task_card_assignees::member_id.eq(member.0))
        .filter(task_cards::done_at.is_null())
        .filter(task_cards::archived_at.is_null())
        .filter(task_cards::due_at.gt(now))
        .select(task_cards::id)
        .load(conn)?;
    for card in open {
        schedule(conn, CardId(card), now)?;
    }
    Ok(())
}

/// The job payload: the due time the reminder was queued for.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Payload {
    due_at: UnixTime,
}

/// Drops the card's pending reminders and queues one per assignee who wants reminders,
/// if the card is open and due in the future. Call it in the change's transaction.
pub fn schedule(conn: &mut SqliteConnection, card: CardId, now: UnixTime) -> QueryResult<()> {
    diesel::delete(
        jobs::table
            .filter(jobs::kind.eq(REMINDER))
            .filter(jobs::key.like(format!("{}:%", card.0)))
            .filter(jobs::failed_at.is_null()),
    )
    .execute(conn)?;
    let Some((due, done, archived)) = task_cards::table
        .find(card.0)
        .select((
            task_cards::due_at,
            task_cards::done_at,
            task_cards::archived_at,
        ))
        .first::<(Option<i64>, Option<i64>, Option<i64>)>(conn)
        .optional()?
    else {
        return Ok(());
    };
    let Some(due) = due.filter(|d| *d > now && done.is_none() && archived.is_none()) else {
        return Ok(());
    };
    let wants: Vec<(i64, i64)> = task_card_assignees::table
        .inner_join(
            task_reminder_settings::table
                .on(task_reminder_settings::member_id.eq(task_card_assignees::member_id)),
        )
        .filter(task_card_assignees::card_id.eq(card.0))
        .filter(task_reminder_settings::enabled.eq(true))
        .select((
            task_card_assignees::member_id,
            task_reminder_settings::lead_minutes,
        ))
        .load(conn)?;
    let payload = serde_json::json!({ "due_at": due }).to_string();
    for (member, lead) in wants {
        let at = (due - lead * 60).max(now);
        kollegium_tenants::jobs::enqueue(
            conn,
            REMINDER,
            &format!("{}:{member}", card.0),
            Some(&payload),
            0,
            at,
            now,
        )?;
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "tasks/routines/reminder_subject.txt")]
struct Subject<'a> {
    practice_name: &'a str,
}

#[derive(Template)]
#[template(path = "tasks/routines/reminder_body.txt")]
struct Text<'a> {
    practice_name: &'a str,
    display_name: &'a str,
    link: &'a str,
    settings_link: &'a str,
}

#[derive(Template)]
#[template(path = "tasks/routines/reminder_body.html")]
struct Html<'a> {
    practice_name: &'a str,
    display_name: &'a str,
    link: &'a str,
    settings_link: &'a str,
}

/// Mails the reminder of `job` if it still holds; otherwise does nothing (the job is done
/// either way).
pub fn deliver(
    conn: &mut SqliteConnection,
    job: &Job,
    origin: &str,
    practice_name: &str,
    now: UnixTime,
) -> Result<(), RoutineError> {
    let Some((card, member)) = job
        .key
        .split_once(':')
        .and_then(|(c, m)| Some((c.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
    else {
        return Ok(());
    };
    let Ok(p) = job.payload::<Payload>() else {
        return Ok(());
    };
    conn.immediate_transaction(|conn| {
        let still = task_cards::table
            .find(card)
            .filter(task_cards::due_at.eq(p.due_at))
            .filter(task_cards::done_at.is_null())
            .filter(task_cards::archived_at.is_null())
            .count()
            .get_result::<i64>(conn)?
            == 1;
        let assigned = task_card_assignees::table
            .find((card, member))
            .count()
            .get_result::<i64>(conn)?
            == 1;
        if !still || !assigned || !setting(conn, MemberId(member))?.enabled {
            return Ok(());
        }
        let Some(m) = members::by_id(conn, MemberId(member))? else {
            return Ok(());
        };
        let address = m.email.trim();
        if m.is_deactivated() || kollegium_tenants::Email::parse(address).is_err() {
            return Ok(());
        }
        let practice = plain(practice_name, 120);
        let name = plain(&m.display_name, 120);
        let link = format!("{origin}/tasks/cards/{card}");
        let settings_link = format!("{origin}/tasks/routines/settings");
        let subject = plain(
            &Subject {
                practice_name: &practice,
            }
            .render()?,
            200,
        );
        let (p, d, l, s) = (
            practice.as_str(),
            name.as_str(),
            link.as_str(),
            settings_link.as_str(),
        );
        let text = Text {
            practice_name: p,
            display_name: d,
            link: l,
            settings_link: s,
        }
        .render()?;
        let html = Html {
            practice_name: p,
            display_name: d,
            link: l,
            settings_link: s,
        }
        .render()?;
        queue::enqueue(
            conn,
            now,
            &NewMail {
                kind: "task_reminder",
                recipient: address,
                subject: &subject,
                text: &text,
                html: &html,
            },
        )?;
        Ok(())
    })
}
