//! "Neuigkeiten per E-Mail ankündigen": a practice setting (off unless an admin switches it
//! on) that mails each matching member a notice that there is news for them, with a link to
//! `/news`: no title, no content, no audience (DESIGN "Do not track"). Once per member and
//! message: every message is considered once per practice, in the transaction that queues
//! the mails and moves the practice's marker past it.
//!
//! Density (1,000 practices per node): nothing happens per sync tick. The node's task
//! ([`watch`]) acts only when the node's last verified seq changes (and once at start); it
//! asks the registry which active practices set the flag [`FLAG`] (a name, never content;
//! the registry never learns which members matched) and opens only those, to queue one
//! [`JOB`] each. The job syncs the member directory first (nobody who left is mailed), then
//! runs [`announce`] on the practice's database.
//!
//! The practice's own database is the truth: the setting is the marker `news_mail_after_seq`
//! in its `settings` (absent: off), the seq up to which messages were considered. Switching
//! on sets it to the node's current seq, so only messages that arrive later are announced.
//! The registry flag follows it (set before switching on, cleared after switching off), so
//! a flag without the setting costs an opened practice, never a mail without the setting.
//!
//! Each member may decline the notices for themselves on the news page
//! (`news_mail_opt_out`, [`set_mine`]); every notice says where.

use std::sync::Arc;

use actix_web::web;
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::broadcast::Message;
use kollegium_tenants::jobs::{BoxFuture, Handler, Job, Outcome, Outcomes};
use kollegium_tenants::kv;
use kollegium_tenants::mail::queue::{self, NewMail};
use kollegium_tenants::web::WebContext;
use kollegium_tenants::{DbKind, Slug, Tenant, TenantStore, UnixTime, registry};

use crate::PLATFORM_DB;
use crate::app::AppContext;
use crate::directory::DirectorySync;
use crate::members;
use crate::notify::mentions::plain;

/// The registry flag of practices that announce news by mail.
pub const FLAG: &str = "news.mail";
/// The practice setting: the seq up to which messages were considered (absent: off).
pub const SETTING: &str = "news_mail_after_seq";
/// The kind of job that announces new messages in one practice.
pub const JOB: &str = "news.announce";
/// Its one key: a pending job covers every message that arrived meanwhile.
const JOB_KEY: &str = "feed";
/// The mail's kind in `mail_queue`.
pub const MAIL_KIND: &str = "news_notice";

/// Whether the practice announces news by mail.
pub fn enabled(conn: &mut SqliteConnection) -> QueryResult<bool> {
    Ok(marker(conn)?.is_some())
}

fn marker(conn: &mut SqliteConnection) -> QueryResult<Option<i64>> {
    Ok(kv::get(conn, SETTING)?.and_then(|v| v.parse().ok()))
}

/// Whether member `me` gets the notices (when the practice sends them): yes unless they
/// declined.
pub fn mine(conn: &mut SqliteConnection, me: members::MemberId) -> QueryResult<bool> {
    use crate::schema::news_mail_opt_out::dsl as o;
    let declined: Option<i64> = o::news_mail_opt_out
        .find(me.0)
        .select(o::member_id)
        .first(conn)
        .optional()?;
    Ok(declined.is_none())
}

/// Member `me` wants the notices (`wants`) or declines them, from `now`.
pub fn set_mine(
    conn: &mut SqliteConnection,
    me: members::MemberId,
    wants: bool,
    now: UnixTime,
) -> QueryResult<()> {
    use crate::schema::news_mail_opt_out::dsl as o;
    if wants {
        diesel::delete(o::news_mail_opt_out.find(me.0)).execute(conn)?;
    } else {
        diesel::insert_into(o::news_mail_opt_out)
            .values((o::member_id.eq(me.0), o::since.eq(now)))
            .on_conflict(o::member_id)
            .do_nothing()
            .execute(conn)?;
    }
    Ok(())
}

/// Switches the setting in the practice's database: on from the node's current seq
/// `last_seq` (an existing marker stays), or off.
pub fn set(conn: &mut SqliteConnection, on: bool, last_seq: i64) -> QueryResult<()> {
    use kollegium_tenants::kv::schema::settings;
    if on {
        if marker(conn)?.is_none() {
            kv::set(conn, SETTING, &last_seq.to_string())?;
        }
    } else {
        diesel::delete(settings::table.find(SETTING)).execute(conn)?;
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "news/mail_subject.txt")]
struct Subject<'a> {
    practice_name: &'a str,
}

#[derive(Template)]
#[template(path = "news/mail_body.txt")]
struct Text<'a> {
    practice_name: &'a str,
    display_name: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "news/mail_body.html")]
struct Html<'a> {
    practice_name: &'a str,
    display_name: &'a str,
    link: &'a str,
}

/// Queues a notice for every active member with an address who did not decline them and
/// whom one of the `active` messages that arrived after the practice's marker and up to
/// `last_seq` is for, and moves
/// the marker to `last_seq`, in one transaction. Returns how many mails were queued; nothing
/// when the setting is off.
pub fn announce(
    conn: &mut SqliteConnection,
    active: &[Message],
    last_seq: i64,
    origin: &str,
    practice_name: &str,
    now: UnixTime,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    conn.immediate_transaction(|conn| {
        let Some(after) = marker(conn)? else {
            return Ok(0);
        };
        if last_seq <= after {
            return Ok(0);
        }
        let new: Vec<&Message> = active
            .iter()
            .filter(|m| m.seq > after && m.seq <= last_seq)
            .collect();
        let mut queued = 0;
        if !new.is_empty() {
            let practice = plain(practice_name, 120);
            let subject = plain(
                &Subject {
                    practice_name: &practice,
                }
                .render()?,
                200,
            );
            let link = format!("{origin}/news");
            let declined: std::collections::HashSet<i64> = {
                use crate::schema::news_mail_opt_out::dsl as o;
                o::news_mail_opt_out
                    .select(o::member_id)
                    .load::<i64>(conn)?
                    .into_iter()
                    .collect()
            };
            for m in members::list(conn)? {
                let address = m.email.trim();
                if declined.contains(&m.id.0)
                    || kollegium_tenants::Email::parse(address).is_err()
                    || !new.iter().any(|msg| super::is_for(msg, &m))
                {
                    continue;
                }
                let name = plain(&m.display_name, 120);
                let text = Text {
                    practice_name: &practice,
                    display_name: &name,
                    link: &link,
                }
                .render()?;
                let html = Html {
                    practice_name: &practice,
                    display_name: &name,
                    link: &link,
                }
                .render()?;
                queue::enqueue(
                    conn,
                    now,
                    &NewMail {
                        kind: MAIL_KIND,
                        recipient: address,
                        subject: &subject,
                        text: &text,
                        html: &html,
                    },
                )?;
                queued += 1;
            }
        }
        kv::set(conn, SETTING, &last_seq.to_string())?;
        Ok(queued)
    })
}

/// The [`JOB`] kind: syncs the practice's member directory, then [`announce`]s.
pub struct AnnounceJobs {
    web: web::Data<WebContext>,
    shared: Arc<AppContext>,
    directory: Arc<DirectorySync>,
}

impl AnnounceJobs {
    pub fn new(
        web: web::Data<WebContext>,
        shared: Arc<AppContext>,
        directory: Arc<DirectorySync>,
    ) -> Arc<Self> {
        Arc::new(Self {
            web,
            shared,
            directory,
        })
    }
}

impl Handler for AnnounceJobs {
    fn kind(&self) -> &'static str {
        JOB
    }

    fn run(&self, tenant: Tenant, _db: &'static DbKind, jobs: Vec<Job>) -> BoxFuture<Outcomes> {
        let (web, shared, directory) = (
            self.web.clone(),
            self.shared.clone(),
            self.directory.clone(),
        );
        Box::pin(async move {
            let all = |o: Outcome| -> Outcomes { jobs.iter().map(|j| (j.id, o.clone())).collect() };
            let Some(feed) = shared.broadcasts.clone() else {
                return all(Outcome::Done);
            };
            // Nobody whose account was disabled meanwhile is mailed, and claims are current.
            if let Err(e) = directory.sync(&web, &tenant).await {
                return all(Outcome::retry(format!("member directory unreadable: {e}")));
            }
            let origin = web.settings.practice_origin(tenant.slug().as_str());
            let slug = tenant.slug().as_str().to_owned();
            let now = shared.now();
            let done = tokio::task::spawn_blocking(move || -> Result<usize, String> {
                let last_seq = feed.last_seq();
                let active = feed.active_shared(now).map_err(|e| e.to_string())?;
                let mut conn = tenant.conn(&PLATFORM_DB).map_err(|e| e.to_string())?;
                announce(
                    &mut conn,
                    &active,
                    last_seq,
                    &origin,
                    tenant.display_name(),
                    now,
                )
                .map_err(|e| e.to_string())
            })
            .await;
            match done {
                Ok(Ok(n)) => {
                    if n > 0 {
                        tracing::info!(practice = %slug, mails = n, "news announced by mail");
                        web.jobs
                            .poke_kind(&slug, &PLATFORM_DB, kollegium_tenants::mail::JOB_KIND);
                    }
                    all(Outcome::Done)
                }
                Ok(Err(e)) => all(Outcome::retry(e)),
                Err(e) => all(Outcome::retry(e.to_string())),
            }
        })
    }
}

/// The practice's setting read straight from its database file, without opening the
/// practice in the store: `Some(None)` off, `Some(Some(seq))` on and considered up to
/// `seq`; `None` when it cannot tell (then the practice is opened).
fn peek(dir: &std::path::Path) -> Option<Option<i64>> {
    let path = dir.join(PLATFORM_DB.file);
    if !path.exists() {
        return Some(None);
    }
    let mut conn = kollegium_tenants::db::open_connection(&path).ok()?;
    marker(&mut conn).ok()
}

/// One round of the node with the feed at `last_seq`: queues a [`JOB`] in every active
/// practice that set [`FLAG`] and has not considered the messages up to `last_seq` yet (read
/// from the file first, so a restart without news opens none). Blocking. Returns the
/// practices asked.
pub fn queue_round(
    store: &TenantStore,
    last_seq: i64,
    now: UnixTime,
) -> Result<Vec<String>, String> {
    let slugs = store
        .with_registry(|c| registry::with_flag(c, FLAG))
        .map_err(|e| e.to_string())?;
    let mut queued = Vec::new();
    for s in slugs {
        let Ok(slug) = Slug::parse(&s) else { continue };
        match peek(&kollegium_tenants::store::practice_dir(
            store.data_dir(),
            &slug,
        )) {
            Some(None) => continue,
            Some(Some(done)) if done >= last_seq => continue,
            _ => {}
        }
        let tenant = match store.tenant(&slug) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(practice = %s, error = %e, "news mail: practice unavailable");
                continue;
            }
        };
        let queued_here = tenant
            .conn(&PLATFORM_DB)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                kollegium_tenants::jobs::enqueue(&mut c, JOB, JOB_KEY, None, 0, now, now)
                    .map_err(|e| e.to_string())
            });
        match queued_here {
            Ok(()) => queued.push(s),
            Err(e) => tracing::warn!(practice = %s, error = %e, "news mail: job not queued"),
        }
    }
    Ok(queued)
}

/// The node's task: at start and whenever the node's broadcasts changed, queue the
/// announcement job in the practices that set the flag (and poke the job worker). `None`
/// without a node feed.
pub fn watch(
    shared: Arc<AppContext>,
    store: Arc<TenantStore>,
) -> Option<tokio::task::JoinHandle<()>> {
    let feed = shared.broadcasts.clone()?;
    let mut changes = feed.changes();
    Some(tokio::spawn(async move {
        loop {
            let (st, now, last) = (store.clone(), shared.now(), feed.last_seq());
            match tokio::task::spawn_blocking(move || queue_round(&st, last, now)).await {
                Ok(Ok(slugs)) => {
                    for s in slugs {
                        shared.jobs.poke_kind(&s, &PLATFORM_DB, JOB);
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "news mail round failed"),
                Err(e) => tracing::warn!(error = %e, "news mail round failed"),
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::Claims;
    use crate::test_support::db;
    use kollegium_tenants::broadcast::{Audience, MessageId};
    use kollegium_tenants::mail::schema::mail_queue;

    fn msg(seq: i64, roles: &[&str]) -> Message {
        Message {
            id: MessageId::random(),
            seq,
            published_at: 1_000,
            valid_until: None,
            title: format!("Geheimer Titel {seq}"),
            body: "Geheimer Inhalt".into(),
            pinned: false,
            audience: Audience {
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                ..Audience::default()
            },
            withdrawn_at: None,
        }
    }

    fn person(c: &mut SqliteConnection, user: &str, role: &str, email: &str) {
        let claims = Claims {
            sub: format!("sub-{user}"),
            preferred_username: user.into(),
            name: format!("{user} Name"),
            email: email.into(),
            roles: vec![role.into()],
            ..Claims::default()
        };
        members::upsert(c, &claims, 1_000).unwrap();
    }

    fn mails(c: &mut SqliteConnection) -> Vec<(String, String, String, String)> {
        mail_queue::table
            .filter(mail_queue::kind.eq(MAIL_KIND))
            .order(mail_queue::id)
            .select((
                mail_queue::recipient,
                mail_queue::subject,
                mail_queue::body_text,
                mail_queue::body_html,
            ))
            .load(c)
            .unwrap()
    }

    #[test]
    fn matching_members_get_one_notice_per_message_without_its_content() {
        let (_dir, mut c) = db();
        person(&mut c, "mfa", "mfa", "mfa@praxis.example");
        person(&mut c, "abr", "abrechnung", "abr@praxis.example");
        person(&mut c, "ohne", "abrechnung", "");
        let old = msg(1, &[]);
        let run = |c: &mut SqliteConnection, active: &[Message], last: i64| {
            announce(c, active, last, "https://a.example", "Praxis A", 2_000).unwrap()
        };

        // Off: nothing, and the marker is not set by announcing.
        assert_eq!(run(&mut c, std::slice::from_ref(&old), 1), 0);
        assert!(!enabled(&mut c).unwrap());

        // On from seq 1: the message that was there before is not announced.
        set(&mut c, true, 1).unwrap();
        assert_eq!(run(&mut c, std::slice::from_ref(&old), 1), 0);
        let for_billing = msg(2, &["abrechnung"]);
        let active = [for_billing.clone(), old.clone()];
        assert_eq!(
            run(&mut c, &active, 2),
            1,
            "only abr matches and has an address"
        );
        let got = mails(&mut c);
        assert_eq!(got.len(), 1);
        let (to, subject, text, html) = &got[0];
        assert_eq!(to, "abr@praxis.example");
        assert_eq!(subject, "Neuigkeiten für Sie – Praxis A");
        assert!(text.contains("https://a.example/news") && html.contains("https://a.example/news"));
        for part in [subject, text, html] {
            assert!(
                !part.contains("Geheim") && !part.contains("abrechnung"),
                "{part}"
            );
        }

        // The same message again (another sync, a restart): no second mail.
        assert_eq!(run(&mut c, &active, 2), 0);
        // Two new messages for everyone at once: one mail per member.
        let active = [msg(3, &[]), msg(4, &[]), for_billing, old];
        assert_eq!(run(&mut c, &active, 4), 2);
        assert_eq!(mails(&mut c).len(), 3);

        // Switched off: nothing more, and switching on again starts from then.
        set(&mut c, false, 4).unwrap();
        assert_eq!(run(&mut c, &[msg(5, &[])], 5), 0);
        set(&mut c, true, 5).unwrap();
        assert_eq!(run(&mut c, &[msg(5, &[])], 5), 0);
        assert_eq!(mails(&mut c).len(), 3);
    }

    #[test]
    fn a_member_who_declined_gets_no_notice_until_they_want_them_again() {
        let (_dir, mut c) = db();
        person(&mut c, "mfa", "mfa", "mfa@praxis.example");
        person(&mut c, "abr", "abrechnung", "abr@praxis.example");
        let id = |c: &mut SqliteConnection, user: &str| {
            members::list(c)
                .unwrap()
                .into_iter()
                .find(|m| m.username == user)
                .unwrap()
                .id
        };
        let abr = id(&mut c, "abr");
        set(&mut c, true, 0).unwrap();
        assert!(mine(&mut c, abr).unwrap(), "notices unless declined");
        set_mine(&mut c, abr, false, 1_500).unwrap();
        set_mine(&mut c, abr, false, 1_600).unwrap();
        assert!(!mine(&mut c, abr).unwrap());
        let run = |c: &mut SqliteConnection, seq: i64| {
            announce(
                c,
                &[msg(seq, &[])],
                seq,
                "https://a.example",
                "Praxis A",
                2_000,
            )
            .unwrap()
        };
        assert_eq!(run(&mut c, 1), 1, "only mfa");
        assert_eq!(mails(&mut c)[0].0, "mfa@praxis.example");
        let declined = crate::news::export::declined(&mut c).unwrap();
        assert_eq!(
            declined,
            [("abr".to_owned(), 1_500)],
            "the first choice counts"
        );
        set_mine(&mut c, abr, true, 2_100).unwrap();
        assert!(mine(&mut c, abr).unwrap());
        assert_eq!(run(&mut c, 2), 2);
        assert!(crate::news::export::declined(&mut c).unwrap().is_empty());
    }
}
