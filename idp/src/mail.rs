//! Mails of the identity provider. They are queued in the practice's own `idp.sqlite`
//! (`mail_queue`) and delivered by the node's mail worker; nothing is lost while SMTP is
//! down. Mails say *that* something happened, with a link; never a password or content.

use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::mail::{NewMail, queue};

use crate::schema::users as users_t;
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
mail_templates!(owner_setup, "email/owner_setup/subject.txt", "email/owner_setup/body.txt", "email/owner_setup/body.html", { practice_name: &'a str, link: &'a str, valid_hours: i64 });
mail_templates!(email_changed, "email/email_changed/subject.txt", "email/email_changed/body.txt", "email/email_changed/body.html", { practice_name: &'a str, display_name: &'a str });
mail_templates!(account_locked, "email/account_locked/subject.txt", "email/account_locked/body.txt", "email/account_locked/body.html", { practice_name: &'a str, display_name: &'a str, link: &'a str, everywhere: bool });

fn render(t: &impl Template) -> QueryResult<String> {
    t.render()
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Puts a rendered mail into the practice's queue (the shared `mail_queue` table; see
/// `kollegium_tenants::mail`). The caller pokes the node's `JobSignal` after commit.
pub fn enqueue(
    conn: &mut SqliteConnection,
    now: UnixTime,
    kind: &str,
    recipient: &str,
    subject: &str,
    text: &str,
    html: &str,
) -> QueryResult<()> {
    queue::enqueue(
        conn,
        now,
        &NewMail {
            kind,
            recipient,
            subject,
            text,
            html,
        },
    )
    .map(|_| ())
}

/// The owner's setup link, mailed at `practice create` when SMTP is configured.
pub fn owner_setup(
    conn: &mut SqliteConnection,
    practice_name: &str,
    recipient: &str,
    link: &str,
    valid_hours: i64,
    now: UnixTime,
) -> QueryResult<()> {
    let p = practice_name;
    enqueue(
        conn,
        now,
        "owner_setup",
        recipient,
        &render(&owner_setup::Subject {
            practice_name: p,
            link,
            valid_hours,
        })?,
        &render(&owner_setup::Text {
            practice_name: p,
            link,
            valid_hours,
        })?,
        &render(&owner_setup::Html {
            practice_name: p,
            link,
            valid_hours,
        })?,
    )
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

/// Tells the previous address of an account that its e-mail address was changed (so a
/// take-over through a changed address does not go unnoticed). No link, no new address.
pub fn email_changed(
    conn: &mut SqliteConnection,
    ctx: &MailCtx,
    before: &User,
    now: UnixTime,
) -> QueryResult<()> {
    let (p, d) = (ctx.practice_name.as_str(), before.display_name.as_str());
    enqueue(
        conn,
        now,
        "email_changed",
        &before.email,
        &render(&email_changed::Subject {
            practice_name: p,
            display_name: d,
        })?,
        &render(&email_changed::Text {
            practice_name: p,
            display_name: d,
        })?,
        &render(&email_changed::Html {
            practice_name: p,
            display_name: d,
        })?,
    )
}

/// Tells an account's owner that sign-in to it is locked: from one address, or (with
/// `everywhere`) from every browser but its known devices. No address, no secret.
pub fn account_locked(
    conn: &mut SqliteConnection,
    ctx: &MailCtx,
    user: &User,
    everywhere: bool,
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
            everywhere,
        })?,
        &render(&account_locked::Text {
            practice_name: p,
            display_name: d,
            link: &link,
            everywhere,
        })?,
        &render(&account_locked::Html {
            practice_name: p,
            display_name: d,
            link: &link,
            everywhere,
        })?,
    )
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::{BigInt, Text};

    use super::*;

    #[derive(Debug, PartialEq, QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        r#type: String,
        #[diesel(sql_type = BigInt)]
        notnull: i64,
        #[diesel(sql_type = BigInt)]
        pk: i64,
    }

    fn columns(conn: &mut SqliteConnection) -> Vec<Column> {
        diesel::sql_query("SELECT name, type, \"notnull\", pk FROM pragma_table_info('mail_queue')")
            .load(conn)
            .unwrap()
    }

    /// The notice to an old address carries no link, no token and not the new address.
    #[test]
    fn the_address_change_notice_has_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut idp = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut idp, &crate::IDP_DB, &path).unwrap();
        let profile = crate::users::Profile {
            username: "mia".into(),
            email: "mia@alt.example".into(),
            display_name: "Mia Muster".into(),
            roles: vec!["mfa".into()],
            ..Default::default()
        }
        .validate()
        .unwrap();
        let id = crate::users::create_invited(&mut idp, &profile, false, 100)
            .unwrap()
            .unwrap();
        let before = crate::users::by_id(&mut idp, id).unwrap().unwrap();
        let ctx = MailCtx {
            practice_name: "Praxis Dr. Müller".into(),
            origin: "https://praxis-mueller.example.de".into(),
        };
        email_changed(&mut idp, &ctx, &before, 100).unwrap();
        let due = queue::due(&mut idp, 100, 10).unwrap();
        let m = due.iter().find(|m| m.kind == "email_changed").unwrap();
        assert_eq!(m.recipient, "mia@alt.example");
        assert!(m.subject.contains("E-Mail-Adresse geändert"));
        for body in [&m.body_text, &m.body_html] {
            assert!(body.contains("Mia Muster") && body.contains("Praxis Dr. Müller"));
            assert!(!body.contains("http") && !body.contains("href"), "{body}");
        }
    }

    /// The IdP's migrated `mail_queue` is the table the node's mail worker reads.
    #[test]
    fn the_migrated_queue_matches_the_shared_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut idp = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut idp, &crate::IDP_DB, &path).unwrap();
        let mut shared = SqliteConnection::establish(":memory:").unwrap();
        shared
            .batch_execute(kollegium_tenants::mail::MAIL_QUEUE_SQL)
            .unwrap();
        assert_eq!(columns(&mut idp), columns(&mut shared));

        let ctx = MailCtx {
            practice_name: "Praxis Dr. Müller".into(),
            origin: "https://praxis-mueller.example.de".into(),
        };
        owner_setup(
            &mut idp,
            &ctx.practice_name,
            "inhaber@praxis.example",
            "https://praxis-mueller.example.de/id/setup/tok",
            72,
            100,
        )
        .unwrap();
        let due = queue::due(&mut idp, 100, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].kind, "owner_setup");
        assert_eq!(due[0].subject, "Zugang für Praxis Dr. Müller einrichten");
        assert!(due[0].body_text.contains("/id/setup/tok"));
        assert!(
            due[0]
                .body_html
                .contains("href=\"https://praxis-mueller.example.de/id/setup/tok\"")
        );
    }

    /// The lock notice says what is locked and what still works; it names neither the
    /// address nor anything secret.
    #[test]
    fn the_lock_notice_tells_which_lock_without_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &crate::IDP_DB, &path).unwrap();
        let ctx = MailCtx {
            practice_name: "Praxis Dr. Müller".into(),
            origin: "https://praxis-mueller.example.de".into(),
        };
        let profile = crate::users::Profile {
            username: "anna".into(),
            email: "anna@praxis.example".into(),
            display_name: "Anna Beispiel".into(),
            roles: vec!["mfa".into()],
            ..crate::users::Profile::default()
        }
        .validate()
        .unwrap();
        let id = crate::users::create_invited(&mut conn, &profile, false, 100)
            .unwrap()
            .unwrap();
        let user = crate::users::by_id(&mut conn, id).unwrap().unwrap();
        account_locked(&mut conn, &ctx, &user, false, 100).unwrap();
        account_locked(&mut conn, &ctx, &user, true, 100).unwrap();
        let due = queue::due(&mut conn, 100, 10).unwrap();
        assert_eq!(due.len(), 2);
        assert!(due[0].body_text.contains("nur für die Adresse"));
        assert!(due[1].body_text.contains("nur von freigegebenen Geräten"));
        for m in &due {
            assert_eq!(m.recipient, "anna@praxis.example");
            assert!(
                m.body_text
                    .contains("bestehenden Sitzungen bleiben erhalten")
            );
            assert!(
                !m.body_text.chars().any(|c| c.is_ascii_digit()),
                "{}",
                m.body_text
            );
        }
    }
}
