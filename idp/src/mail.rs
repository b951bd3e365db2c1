//! Mails of the identity provider. They are queued in the practice's own `idp.sqlite`
//! (`mail_queue`) and delivered by the node's mail worker; nothing is lost while SMTP is
//! down. Mails say *that* something happened, with a link; never a password or content.

use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;

use crate::schema::{mail_queue, users as users_t};
use crate::users::User;

/// What every IdP mail needs to know about its practice.
#[derive(Debug, Clone)]
pub struct MailCtx {
    pub practice_name: String,
    /// `<scheme>://<slug>.<base>[:port]`
    pub origin: String,
}

macro_rules! mail_templates {
    ($name:ident, $subject:literal, $text:literal, $html:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        mod $name {
            use askama::Template;
            #[derive(Template)]
            #[template(path = $subject)]
            #[allow(dead_code)] // a subject line uses only some of the fields
            pub struct Subject<'a> { $(pub $field: $ty),* }
            #[derive(Template)]
            #[template(path = $text)]
            pub struct Text<'a> { $(pub $field: $ty),* }
            #[derive(Template)]
            #[template(path = $html)]
            pub struct Html<'a> { $(pub $field: $ty),* }
        }
    };
}

mail_templates!(invitation, "email/invitation/subject.txt", "email/invitation/body.txt", "email/invitation/body.html", { practice_name: &'a str, display_name: &'a str, username: &'a str, link: &'a str, valid_hours: i64 });
mail_templates!(password_reset, "email/password_reset/subject.txt", "email/password_reset/body.txt", "email/password_reset/body.html", { practice_name: &'a str, display_name: &'a str, link: &'a str, valid_hours: i64 });
mail_templates!(device_waiting, "email/device_waiting/subject.txt", "email/device_waiting/body.txt", "email/device_waiting/body.html", { practice_name: &'a str, link: &'a str });
mail_templates!(account_locked, "email/account_locked/subject.txt", "email/account_locked/body.txt", "email/account_locked/body.html", { practice_name: &'a str, display_name: &'a str, link: &'a str });

fn render(t: &impl Template) -> QueryResult<String> {
    t.render()
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Puts a rendered mail into the practice's queue.
pub fn enqueue(
    conn: &mut SqliteConnection,
    now: UnixTime,
    kind: &str,
    recipient: &str,
    subject: &str,
    text: &str,
    html: &str,
) -> QueryResult<()> {
    diesel::insert_into(mail_queue::table)
        .values((
            mail_queue::kind.eq(kind),
            mail_queue::recipient.eq(recipient),
            mail_queue::subject.eq(subject.trim()),
            mail_queue::body_text.eq(text),
            mail_queue::body_html.eq(html),
            mail_queue::created_at.eq(now),
            mail_queue::next_attempt_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn invitation(
    conn: &mut SqliteConnection,
    ctx: &MailCtx,
    user: &User,
    token: &str,
    valid_hours: i64,
    now: UnixTime,
) -> QueryResult<()> {
    let link = format!("{}/id/setup/{token}", ctx.origin);
    let (p, d, u) = (
        ctx.practice_name.as_str(),
        user.display_name.as_str(),
        user.username.as_str(),
    );
    enqueue(
        conn,
        now,
        "invitation",
        &user.email,
        &render(&invitation::Subject {
            practice_name: p,
            display_name: d,
            username: u,
            link: &link,
            valid_hours,
        })?,
        &render(&invitation::Text {
            practice_name: p,
            display_name: d,
            username: u,
            link: &link,
            valid_hours,
        })?,
        &render(&invitation::Html {
            practice_name: p,
            display_name: d,
            username: u,
            link: &link,
            valid_hours,
        })?,
    )
}

pub fn password_reset(
    conn: &mut SqliteConnection,
    ctx: &MailCtx,
    user: &User,
    token: &str,
    valid_hours: i64,
    now: UnixTime,
) -> QueryResult<()> {
    let link = format!("{}/id/setup/{token}", ctx.origin);
    let (p, d) = (ctx.practice_name.as_str(), user.display_name.as_str());
    enqueue(
        conn,
        now,
        "password_reset",
        &user.email,
        &render(&password_reset::Subject {
            practice_name: p,
            display_name: d,
            link: &link,
            valid_hours,
        })?,
        &render(&password_reset::Text {
            practice_name: p,
            display_name: d,
            link: &link,
            valid_hours,
        })?,
        &render(&password_reset::Html {
            practice_name: p,
            display_name: d,
            link: &link,
            valid_hours,
        })?,
    )
}

/// Tells every active admin that a device waits for approval.
pub fn device_waiting(
    conn: &mut SqliteConnection,
    ctx: &MailCtx,
    now: UnixTime,
) -> QueryResult<()> {
    let link = format!("{}/id/admin/devices", ctx.origin);
    let p = ctx.practice_name.as_str();
    let admins: Vec<String> = users_t::table
        .filter(users_t::is_admin.eq(true))
        .filter(users_t::status.eq("active"))
        .select(users_t::email)
        .load(conn)?;
    for to in admins {
        enqueue(
            conn,
            now,
            "device_waiting",
            &to,
            &render(&device_waiting::Subject {
                practice_name: p,
                link: &link,
            })?,
            &render(&device_waiting::Text {
                practice_name: p,
                link: &link,
            })?,
            &render(&device_waiting::Html {
                practice_name: p,
                link: &link,
            })?,
        )?;
    }
    Ok(())
}

pub fn account_locked(
    conn: &mut SqliteConnection,
    ctx: &MailCtx,
    user: &User,
    now: UnixTime,
) -> QueryResult<()> {
    let link = format!("{}/id/login", ctx.origin);
    let (p, d) = (ctx.practice_name.as_str(), user.display_name.as_str());
    enqueue(
        conn,
        now,
        "account_locked",
        &user.email,
        &render(&account_locked::Subject {
            practice_name: p,
            display_name: d,
            link: &link,
        })?,
        &render(&account_locked::Text {
            practice_name: p,
            display_name: d,
            link: &link,
        })?,
        &render(&account_locked::Html {
            practice_name: p,
            display_name: d,
            link: &link,
        })?,
    )
}
