//! Mention notifications by e-mail and the personal chat settings that steer them.
//!
//! `chat::messages::post` records a notice per mentioned member, due after the member's
//! delay, and queues its job. The [`worker`] (a kind of background job) turns due notices
//! into mails in the practice's own `mail_queue` ([`mentions`]) unless the member read the
//! message first; the node's job worker delivers them. The mails name the room and link to the message, never its text.
//! [`preferences`] is the page where members choose read receipts, mention mails and the
//! delay.

pub mod mentions;
pub mod preferences;
pub mod worker;

pub use worker::MentionJobs;

/// Registers `/chat/settings` (before the chat routes, whose `/chat/{room}` would match).
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    preferences::configure(cfg);
}
