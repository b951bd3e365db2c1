//! Mail delivery for every app of a practice.
//!
//! Apps never talk SMTP. They render a mail and insert it into the `mail_queue` table of
//! their own practice database ([`queue::enqueue`], which also queues its delivery job) in
//! the same transaction as the change the mail is about, then poke the node's
//! [`crate::jobs::JobSignal`]. The node's job worker hands due mail jobs to [`MailJobs`]
//! ([`worker`]), which gives each mail to the [`Mailer`]: an SMTP relay (STARTTLS required, never a plain-text fallback; implicit TLS;
//! or plain; `smtp.ca_file` adds a trusted root for a private CA) or, without a configured
//! relay, the practice's file outbox `data/tenants/<slug>/outbox/`. Failed deliveries are
//! retried with exponential backoff; nothing is lost while the relay is down.
//!
//! Every database kind that carries mail has the identical table [`MAIL_QUEUE_SQL`]
//! (`idp.sqlite` and `platform.sqlite`), and the `jobs` table; [`MailJobs::register`]
//! registers the kind for each of them.
//!
//! Logs never contain a subject, a body, a link or a full address (the recipient's domain
//! at most).

mod message;
pub mod queue;
mod transport;
pub mod worker;

pub use message::{MessageError, build_message, parse_from};
pub use queue::{NewMail, QueuedMail};
pub use transport::{
    DeliveryError, MailSettings, Mailer, MailerError, SmtpSettings, TlsMode, check_ca_file,
};
pub use worker::{JOB_KIND, MailJobs, WorkerSettings};
pub use zeroize::Zeroizing;

/// The `mail_queue` table as every practice database kind that sends mail creates it.
pub const MAIL_QUEUE_SQL: &str = "CREATE TABLE mail_queue (
    id INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT,
    failed_at INTEGER
) STRICT;
CREATE INDEX mail_queue_due ON mail_queue(next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;";

pub mod schema {
    diesel::table! {
        mail_queue (id) {
            id -> BigInt,
            kind -> Text,
            recipient -> Text,
            subject -> Text,
            body_text -> Text,
            body_html -> Text,
            created_at -> BigInt,
            attempts -> BigInt,
            next_attempt_at -> BigInt,
            sent_at -> Nullable<BigInt>,
            last_error -> Nullable<Text>,
            failed_at -> Nullable<BigInt>,
        }
    }
}

/// The part of an address after the `@`: all that logs may say about a recipient.
pub fn recipient_domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("?", |(_, d)| d)
}
