//! Due mention notices become mails: one mail per member and round, naming the rooms
//! and linking to the messages, never quoting them. A notice is mailed only if the member
//! is not deactivated (account disabled or deleted at the IdP), still wants mention mails,
//! has an address, may still read the room and has not read the message by then, and the
//! message still exists; every due notice is marked done (a deactivated member's too: they
//! are not mailed later if their account is enabled again).

use std::collections::BTreeMap;

use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::mail::{NewMail, queue};

use crate::chat::messages;
use crate::chat::rooms;
use crate::chat::{MessageId, RoomId};
use crate::members::{self, MemberId};
use crate::schema::{mention_notices, room_members};

/// Mail kind in the queue (logs and tests).
pub const MAIL_KIND: &str = "mention";
/// Due notices handled in one transaction; the rest follow in the next round.
pub const BATCH: i64 = 500;

/// What a mention mail needs to know about its practice.
#[derive(Debug, Clone)]
pub struct MailCtx {
    pub practice_name: String,
    /// `<scheme>://<slug>.<base>[:port]`
    pub origin: String,
}

/// The outcome of one round over a practice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Notices marked done.
    pub notices: usize,
    /// Mails queued.
    pub mails: usize,
    /// When the next open notice is due (`None`: none waits).
    pub next_due: Option<UnixTime>,
    /// The notices stayed open because the member directory could not be read.
    pub directory_unreadable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("mail template: {0}")]
    Template(#[from] askama::Error),
}

/// One room in a mention mail.
#[derive(Debug, Clone)]
pub struct RoomLine {
    /// `im Raum „Labor“` or `in der Unterhaltung mit Anna Test` (plain text, one line).
    pub place: String,
    /// Who mentioned the member there.
    pub who: String,
    /// Link to the first unread mention in the room.
    pub link: String,
    pub count: usize,
}

mod mail {
    use super::RoomLine;
    use askama::Template;

    #[derive(Template)]
    #[template(path = "email/mention/subject.txt")]
    #[allow(dead_code)] // the subject uses only some of the fields
    pub struct Subject<'a> {
        pub practice_name: &'a str,
        pub display_name: &'a str,
        pub rooms: &'a [RoomLine],
        pub settings_link: &'a str,
        /// Exactly one mention in one room.
        pub single: bool,
    }
    #[derive(Template)]
    #[template(path = "email/mention/body.txt")]
    pub struct Text<'a> {
        pub practice_name: &'a str,
        pub display_name: &'a str,
        pub rooms: &'a [RoomLine],
        pub settings_link: &'a str,
        /// Exactly one mention in one room.
        pub single: bool,
    }
    #[derive(Template)]
    #[template(path = "email/mention/body.html")]
    pub struct Html<'a> {
        pub practice_name: &'a str,
        pub display_name: &'a str,
        pub rooms: &'a [RoomLine],
        pub settings_link: &'a str,
        /// Exactly one mention in one room.
        pub single: bool,
    }
}

/// Text for a mail: one line without control characters, at most `max` characters.
pub fn plain(s: &str, max: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = one.split_whitespace().collect();
    words.join(" ").chars().take(max).collect()
}

/// The rendered mail of one member.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders the mention mail for `display_name` about `rooms`.
pub fn render(
    ctx: &MailCtx,
    display_name: &str,
    rooms: &[RoomLine],
) -> Result<Rendered, askama::Error> {
    let settings_link = format!("{}/chat/settings", ctx.origin);
    let single = matches!(rooms, [one] if one.count == 1);
    let practice_name = plain(&ctx.practice_name, 120);
    let display_name = plain(display_name, 120);
    let (p, d, s) = (
        practice_name.as_str(),
        display_name.as_str(),
        settings_link.as_str(),
    );
    Ok(Rendered {
        subject: plain(
            &mail::Subject {
                practice_name: p,
                display_name: d,
                rooms,
                settings_link: s,
                single,
            }
            .render()?,
            200,
        ),
        text: mail::Text {
            practice_name: p,
            display_name: d,
            rooms,
            settings_link: s,
            single,
        }
        .render()?,
        html: mail::Html {
            practice_name: p,
            display_name: d,
            rooms,
            settings_link: s,
            single,
        }
        .render()?,
    })
}

#[derive(Debug, Clone, Queryable)]
struct Notice {
    id: i64,
    member_id: i64,
    room_id: i64,
    message_id: i64,
}

/// A mention the member should still hear about.
struct Pending {
    room_id: i64,
    message_id: i64,
    author: Option<i64>,
}

/// Whether `member` should still be told about `n`: the message exists and is not
/// deleted, the member may read the room and has not read the message.
fn still_unread(conn: &mut SqliteConnection, n: &Notice) -> QueryResult<Option<Pending>> {
    let Some(msg) = messages::by_id(conn, MessageId(n.message_id))? else {
        return Ok(None);
    };
    if msg.deleted_at.is_some() || msg.room_id != n.room_id {
        return Ok(None);
    }
    let Some(room) = rooms::by_id(conn, RoomId(n.room_id))? else {
        return Ok(None);
    };
    let joined: Option<i64> = room_members::table
        .find((n.room_id, n.member_id))
        .select(room_members::last_read_id)
        .first(conn)
        .optional()?;
    // The same marker as the room list's unread and mention counts.
    let last_read = match joined {
        Some(l) => l,
        None if room.is_open() => {
            rooms::open_room_marker(conn, room.room_id(), MemberId(n.member_id))?
        }
        None => return Ok(None),
    };
    if last_read >= msg.id {
        return Ok(None);
    }
    Ok(Some(Pending {
        room_id: room.id,
        message_id: msg.id,
        author: msg.author_id,
    }))
}

/// Where in the practice the member was mentioned, as mail text.
fn place(conn: &mut SqliteConnection, room: RoomId, member: MemberId) -> QueryResult<String> {
    let Some(r) = rooms::by_id(conn, room)? else {
        return Ok("in einem Raum".into());
    };
    Ok(if r.is_direct() {
        let other = rooms::direct_title(conn, room, member)?;
        format!("in der Unterhaltung mit {}", plain(&other, 80))
    } else {
        format!("im Raum „{}“", plain(&r.name, 80))
    })
}

fn author_names(conn: &mut SqliteConnection, authors: &[Option<i64>]) -> QueryResult<String> {
    let mut names: Vec<String> = Vec::new();
    for a in authors {
        let name = match a {
            Some(id) => members::by_id(conn, MemberId(*id))?
                .map(|m| plain(&m.display_name, 80))
                .unwrap_or_else(|| "Ein ehemaliges Mitglied".into()),
            None => "Ein ehemaliges Mitglied".into(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(match names.as_slice() {
        [] => "Jemand".into(),
        [one] => one.clone(),
        [first @ .., last] => format!("{} und {last}", first.join(", ")),
    })
}

/// Turns the notices due at `now` into mails in this practice's `mail_queue`, in one
/// transaction (two workers cannot mail a notice twice). The caller pokes the mail signal
/// when `mails > 0`.
pub fn deliver_due(
    conn: &mut SqliteConnection,
    ctx: &MailCtx,
    now: UnixTime,
) -> Result<Round, NotifyError> {
    // Most rounds find nothing due: answer from the index without taking the write lock.
    let next = next_due(conn)?;
    if next.is_none_or(|t| t > now) {
        return Ok(Round {
            next_due: next,
            ..Round::default()
        });
    }
    conn.immediate_transaction(|conn| {
        let due: Vec<Notice> = mention_notices::table
            .filter(mention_notices::done_at.is_null())
            .filter(mention_notices::due_at.le(now))
            .order((mention_notices::member_id, mention_notices::id))
            .limit(BATCH)
            .select((
                mention_notices::id,
                mention_notices::member_id,
                mention_notices::room_id,
                mention_notices::message_id,
            ))
            .load(conn)?;
        let mut by_member: BTreeMap<i64, Vec<Notice>> = BTreeMap::new();
        for n in due.iter().cloned() {
            by_member.entry(n.member_id).or_default().push(n);
        }
        let mut round = Round {
            notices: due.len(),
            ..Round::default()
        };
        for (member_id, notices) in by_member {
            let Some(member) = members::by_id(conn, MemberId(member_id))? else {
                continue;
            };
            let address = member.email.trim();
            if member.is_deactivated()
                || !member.mention_mail
                || kollegium_tenants::Email::parse(address).is_err()
            {
                continue;
            }
            // Rooms in order of their first mention; a message mentioned twice counts once.
            let mut per_room: Vec<(i64, Vec<Pending>)> = Vec::new();
            for n in &notices {
                let Some(p) = still_unread(conn, n)? else {
                    continue;
                };
                match per_room.iter_mut().find(|(r, _)| *r == p.room_id) {
                    Some((_, list)) => {
                        if !list.iter().any(|x| x.message_id == p.message_id) {
                            list.push(p);
                        }
                    }
                    None => per_room.push((p.room_id, vec![p])),
                }
            }
            if per_room.is_empty() {
                continue;
            }
            let mut lines = Vec::with_capacity(per_room.len());
            for (room_id, list) in &per_room {
                let first = list.iter().map(|p| p.message_id).min().unwrap_or_default();
                let authors: Vec<Option<i64>> = list.iter().map(|p| p.author).collect();
                lines.push(RoomLine {
                    place: place(conn, RoomId(*room_id), member.id)?,
                    who: author_names(conn, &authors)?,
                    link: format!("{}/chat/{room_id}#m{first}", ctx.origin),
                    count: list.len(),
                });
            }
            let mail = render(ctx, &member.display_name, &lines)?;
            queue::enqueue(
                conn,
                now,
                &NewMail {
                    kind: MAIL_KIND,
                    recipient: address,
                    subject: &mail.subject,
                    text: &mail.text,
                    html: &mail.html,
                },
            )?;
            round.mails += 1;
        }
        let ids: Vec<i64> = due.iter().map(|n| n.id).collect();
        diesel::update(mention_notices::table.filter(mention_notices::id.eq_any(&ids)))
            .set(mention_notices::done_at.eq(now))
            .execute(conn)?;
        round.next_due = next_due(conn)?;
        Ok(round)
    })
}

/// When the next open notice is due.
pub fn next_due(conn: &mut SqliteConnection) -> QueryResult<Option<UnixTime>> {
    mention_notices::table
        .filter(mention_notices::done_at.is_null())
        .select(diesel::dsl::min(mention_notices::due_at))
        .first(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PLATFORM_DB;
    use crate::chat::rooms::Visibility;
    use crate::members::Claims;
    use kollegium_tenants::mail::schema::mail_queue;

    fn db() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &PLATFORM_DB, &path).unwrap();
        (dir, conn)
    }

    fn member(conn: &mut SqliteConnection, username: &str, email: &str) -> MemberId {
        let c = Claims {
            sub: format!("sub-{username}"),
            preferred_username: username.into(),
            name: format!("{username} Name"),
            email: email.into(),
            ..Claims::default()
        };
        members::upsert(conn, &c, 1_000).unwrap().id
    }

    fn recipients(conn: &mut SqliteConnection) -> Vec<String> {
        mail_queue::table
            .order(mail_queue::id)
            .select(mail_queue::recipient)
            .load(conn)
            .unwrap()
    }

    #[test]
    fn only_members_who_can_still_read_and_have_an_address_are_mailed() {
        let (_d, mut c) = db();
        let ctx = MailCtx {
            practice_name: "Praxis A".into(),
            origin: "https://praxis-a.example".into(),
        };
        let a = member(&mut c, "anna", "anna@a.example");
        let b = member(&mut c, "bernd", "bernd@a.example");
        let x = member(&mut c, "xaver", "");
        let z = member(&mut c, "zoe", "zoe@a.example");
        let room = rooms::create_group(
            &mut c,
            a,
            "Labor\r\nBcc: evil@x.example",
            "",
            Visibility::Private,
            &[b, x, z],
            1_000,
        );
        // Control characters in names are refused at creation already.
        assert!(room.is_err());
        let room = rooms::create_group(
            &mut c,
            a,
            "Labor",
            "",
            Visibility::Private,
            &[b, x, z],
            1_000,
        )
        .unwrap();
        let r = rooms::by_id(&mut c, room).unwrap().unwrap();
        let (msg, _) =
            messages::post(&mut c, &r, a, "@bernd @xaver @zoe Befund da", None, 1_000).unwrap();
        // Zoe leaves the private room before the mail is due.
        rooms::set_membership(
            &mut c,
            &r,
            crate::chat::Actor {
                id: a,
                is_admin: false,
            },
            z,
            false,
            1_001,
        )
        .unwrap();
        assert_eq!(
            deliver_due(&mut c, &ctx, 1_899).unwrap().next_due,
            Some(1_900)
        );
        assert!(recipients(&mut c).is_empty());
        let round = deliver_due(&mut c, &ctx, 1_900).unwrap();
        assert_eq!((round.notices, round.mails, round.next_due), (3, 1, None));
        assert_eq!(recipients(&mut c), ["bernd@a.example"]);
        let text: String = mail_queue::table
            .select(mail_queue::body_text)
            .first(&mut c)
            .unwrap();
        assert!(text.contains(&format!(
            "https://praxis-a.example/chat/{}#m{}",
            room.0, msg.id
        )));
        assert!(!text.contains("Befund"));
        assert_eq!(deliver_due(&mut c, &ctx, 5_000).unwrap(), Round::default());
    }

    #[test]
    fn a_member_deactivated_before_the_mail_is_due_gets_none() {
        let (_d, mut c) = db();
        let ctx = MailCtx {
            practice_name: "Praxis A".into(),
            origin: "https://praxis-a.example".into(),
        };
        let a = member(&mut c, "anna", "anna@a.example");
        member(&mut c, "bernd", "bernd@a.example");
        let z = member(&mut c, "zoe", "zoe@a.example");
        let room =
            rooms::create_group(&mut c, a, "Labor", "", Visibility::Open, &[], 1_000).unwrap();
        let r = rooms::by_id(&mut c, room).unwrap().unwrap();
        messages::post(&mut c, &r, a, "@alle Teamsitzung", None, 1_000).unwrap();
        // Zoe's account is disabled at the IdP after the mention, before the mail is due.
        let listing = crate::directory::Listing {
            members: ["anna", "bernd"]
                .iter()
                .map(|n| crate::directory::Entry {
                    sub: format!("sub-{n}"),
                    active: true,
                    ..Default::default()
                })
                .collect(),
        };
        crate::directory::apply(&mut c, &listing, 1_500, 1_500).unwrap();
        let round = deliver_due(&mut c, &ctx, 1_900).unwrap();
        assert_eq!((round.notices, round.mails), (2, 1));
        assert_eq!(recipients(&mut c), ["bernd@a.example"]);
        // Her notice is done: enabled again later, she is not mailed about it.
        let back = crate::directory::Listing {
            members: vec![crate::directory::Entry {
                sub: "sub-zoe".into(),
                active: true,
                ..Default::default()
            }],
        };
        crate::directory::apply(&mut c, &back, 2_000, 2_000).unwrap();
        assert_eq!(deliver_due(&mut c, &ctx, 5_000).unwrap(), Round::default());
        assert!(
            members::by_id(&mut c, z)
                .unwrap()
                .unwrap()
                .deactivated_at
                .is_none()
        );
    }

    #[test]
    fn plain_text_is_one_line() {
        assert_eq!(plain("Labor\r\nBcc: x@y.de", 80), "Labor Bcc: x@y.de");
        assert_eq!(plain("  a \t b  ", 80), "a b");
        assert_eq!(plain("abcdef", 3), "abc");
    }

    #[test]
    fn mails_name_the_rooms_and_link_without_content() {
        let ctx = MailCtx {
            practice_name: "Praxis A".into(),
            origin: "https://praxis-a.example".into(),
        };
        let one = vec![RoomLine {
            place: "im Raum „<b>Labor</b>“".into(),
            who: "Anna".into(),
            link: "https://praxis-a.example/chat/3#m7".into(),
            count: 1,
        }];
        let m = render(&ctx, "Bernd", &one).unwrap();
        assert_eq!(m.subject, "Sie wurden im Raum „<b>Labor</b>“ erwähnt");
        assert!(m.text.contains("https://praxis-a.example/chat/3#m7"));
        assert!(m.text.contains("https://praxis-a.example/chat/settings"));
        assert!(m.html.contains("&#60;b&#62;Labor") || m.html.contains("&lt;b&gt;Labor"));
        let mut two = one.clone();
        two.push(RoomLine {
            place: "in der Unterhaltung mit Carla".into(),
            who: "Carla".into(),
            link: "https://praxis-a.example/chat/4#m9".into(),
            count: 2,
        });
        let m = render(&ctx, "Bernd", &two).unwrap();
        assert_eq!(m.subject, "Sie wurden in 2 Unterhaltungen erwähnt");
        assert!(m.text.contains("(2-mal)") && m.text.contains("diese Erwähnungen"));
    }
}
