//! Team chat: rooms (group or 1:1), messages with a safe Markdown subset, mentions,
//! replies, reactions, read markers and receipts. The domain functions here take a
//! connection and a time; the web layer lives in `routes`.

pub mod actions;
pub mod admin;
pub mod api;
pub mod app;
pub mod live;
pub mod messages;
pub mod retention;
pub mod rooms;
pub mod routes;
pub mod search;
pub mod search_routes;
pub mod state;
pub mod ws;

use crate::members::MemberId;

/// Typed room id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub i64);

/// Typed message id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MessageId(pub i64);

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Messages per page.
pub const PAGE_SIZE: i64 = 50;
/// Reactions that can be given.
pub const REACTIONS: &[&str] = &["👍", "❤️", "😂", "😮", "😢", "🙏", "✅", "👀"];

/// The reactions' names in words, for screen readers and tooltips (same order as
/// [`REACTIONS`]).
const REACTION_NAMES: &[&str] = &[
    "Daumen hoch",
    "Herz",
    "Lachen",
    "Staunen",
    "Traurig",
    "Danke",
    "Erledigt",
    "Gesehen",
];

/// A reaction's name in words ("Daumen hoch"); the emoji itself for one this version does
/// not know.
pub fn reaction_name(emoji: &str) -> &str {
    REACTIONS
        .iter()
        .position(|e| *e == emoji)
        .and_then(|i| REACTION_NAMES.get(i).copied())
        .unwrap_or(emoji)
}

/// A given reaction as a screen reader reads its button: "Daumen hoch, 2 Reaktionen, auch
/// von Ihnen".
pub fn reaction_label(emoji: &str, count: i64, mine: bool) -> String {
    let name = reaction_name(emoji);
    let count_words = if count == 1 {
        "1 Reaktion".to_owned()
    } else {
        format!("{count} Reaktionen")
    };
    match (mine, count) {
        (true, 1) => format!("{name}, {count_words}, von Ihnen"),
        (true, _) => format!("{name}, {count_words}, auch von Ihnen"),
        (false, _) => format!("{name}, {count_words}"),
    }
}

/// The reactions with their names, as the room page hands them to its script
/// (`emoji=name` pairs separated by `;`).
pub fn reaction_names_attr() -> String {
    REACTIONS
        .iter()
        .map(|e| format!("{e}={}", reaction_name(e)))
        .collect::<Vec<_>>()
        .join(";")
}

/// Why a chat action was refused; the message is German and shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("Raum nicht gefunden.")]
    RoomNotFound,
    #[error("Nachricht nicht gefunden.")]
    MessageNotFound,
    #[error("Die Nachricht ist leer.")]
    Empty,
    #[error("Die Nachricht ist zu lang (höchstens {MAX_MESSAGE_CHARS} Zeichen).")]
    TooLong,
    #[error("Sie können nur Ihre eigenen Nachrichten ändern.")]
    NotAuthor,
    #[error("Diese Nachricht kann nicht mehr geändert werden (Zeitfenster abgelaufen).")]
    WindowClosed,
    #[error("Diese Reaktion gibt es nicht.")]
    UnknownReaction,
    #[error("Der Raum ist archiviert.")]
    Archived,
    #[error("Bitte geben Sie einen Raumnamen mit 1–80 Zeichen an.")]
    RoomName,
    #[error("Das Thema darf höchstens 300 Zeichen lang sein.")]
    Topic,
    #[error("Diese Aktion ist nur für Raummitglieder oder die Praxisleitung möglich.")]
    NotAllowed,
    #[error(
        "Nur wer den Raum angelegt hat, seine Moderator:innen und die Praxisleitung können ihn umbenennen oder archivieren."
    )]
    NotManager,
    #[error("Den Raum „Allgemein“ kann nur die Praxisleitung archivieren.")]
    DefaultRoom,
    #[error("Die Antwort bezieht sich auf eine Nachricht aus einem anderen Raum.")]
    ReplyElsewhere,
    #[error("Sie senden zu schnell. Bitte warten Sie einen Moment.")]
    RateLimited,
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

impl ChatError {
    /// HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::RoomNotFound | Self::MessageNotFound => 404,
            Self::NotAuthor
            | Self::WindowClosed
            | Self::NotAllowed
            | Self::NotManager
            | Self::DefaultRoom
            | Self::Archived => 403,
            Self::TooLong => 413,
            Self::RateLimited => 429,
            Self::Db(_) => 500,
            _ => 400,
        }
    }
}

/// Who is acting.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub id: MemberId,
    pub is_admin: bool,
}

#[cfg(test)]
mod tests;
