//! Turns a queued mail into an RFC 5322 message: `multipart/alternative` with a plain
//! text and an HTML part, a stable `Message-ID` (a retried mail keeps its id, so a relay
//! or client can drop a duplicate) and `Auto-Submitted: auto-generated`.

use std::time::{Duration, SystemTime};

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};

use super::queue::QueuedMail;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("sender address is invalid: {0}")]
    From(String),
    #[error("recipient address is invalid")]
    Recipient,
    #[error("message cannot be built: {0}")]
    Build(String),
}

/// Parses the configured sender (`Name <address>` or a bare address).
pub fn parse_from(from: &str) -> Result<Mailbox, MessageError> {
    from.trim()
        .parse::<Mailbox>()
        .map_err(|e| MessageError::From(e.to_string()))
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation replies to our mail.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

/// Builds the message of `mail` from the practice `slug`'s database `db`.
pub fn build_message(
    from: &Mailbox,
    slug: &str,
    db: &str,
    mail: &QueuedMail,
) -> Result<Message, MessageError> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|_| MessageError::Recipient)?;
    let origin = hex::encode(&Sha256::digest(format!("{slug}\0{db}"))[..8]);
    let message_id = format!(
        "<{}.{}.{origin}@{}>",
        mail.created_at,
        mail.id,
        from.email.domain()
    );
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(mail.created_at.max(0) as u64);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .date(date)
        .message_id(Some(message_id))
        .header(AutoSubmitted)
        .multipart(MultiPart::alternative_plain_html(
            mail.body_text.clone(),
            mail.body_html.clone(),
        ))
        .map_err(|e| MessageError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(recipient: &str) -> QueuedMail {
        QueuedMail {
            id: 7,
            kind: "invitation".into(),
            recipient: recipient.into(),
            subject: "Einladung zu Praxis Müller".into(),
            body_text: "Guten Tag,\n\nhier Ihr Link: https://a.example/id/setup/abc\n".into(),
            body_html: "<p>Guten Tag</p>".into(),
            created_at: 1_795_000_000,
            attempts: 0,
        }
    }

    #[test]
    fn builds_a_multipart_message_with_stable_id() {
        let from = parse_from("Kollegium <no-reply@kollegium.example>").unwrap();
        let m = build_message(&from, "praxis-a", "idp", &queued("anna@praxis.example")).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("To: anna@praxis.example\r\n"), "{raw}");
        assert!(raw.contains("From: Kollegium <no-reply@kollegium.example>\r\n"));
        assert!(
            raw.contains("Subject: Einladung zu Praxis =?utf-8?b?"),
            "non-ASCII words are encoded: {raw}"
        );
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(
            raw.contains("Date: Wed, 18 Nov 2026 11:06:40 +0000"),
            "{raw}"
        );
        let again = build_message(&from, "praxis-a", "idp", &queued("anna@praxis.example"))
            .unwrap()
            .formatted();
        let id = |r: &str| {
            r.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .map(str::to_owned)
        };
        assert_eq!(id(&raw), id(&String::from_utf8(again).unwrap()));
        assert!(!raw.contains("praxis-a"), "the slug is hashed in the id");
    }

    #[test]
    fn refuses_bad_addresses() {
        let from = parse_from("no-reply@kollegium.example").unwrap();
        assert!(matches!(
            build_message(&from, "p", "idp", &queued("not an address")),
            Err(MessageError::Recipient)
        ));
        assert!(parse_from("Kollegium <>").is_err());
        assert!(parse_from("Kollegium <no-reply@localhost>").is_ok());
    }
}
