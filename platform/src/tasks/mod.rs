//! Tasks: kanban boards of the practice with recurring practice routines (issue 13), the
//! first app built on the seam ([`crate::app`]).
//!
//! The domain functions (`boards`, `columns`, `cards`, `details`, `board_view`) take a
//! connection and a time and know no HTTP; the web layer is `routes` (boards), `card_routes`
//! (the card page) and `api` (JSON for `tasks.js`).
//!
//! - `app`: its [`crate::app::WorkspaceApp`] (navigation, routes, assets, tile, jobs, search).
//! - `routines`: recurring cards (rules evaluated in the practice's time zone), card and
//!   checklist templates, due-date reminders by mail.
//!
//! Access: a member's [`Permission`] on a board is the highest of the board's access rows
//! that match them (the whole practice, one of their roles, themselves); the practice's
//! admins manage every board. A board no row matches does not exist for them: every page,
//! API call and search answers as for an unknown id (404).

pub mod api;
pub mod app;
pub mod attachment_routes;
pub mod attachments;
pub mod board_view;
pub mod boards;
pub mod card_routes;
pub mod cards;
pub mod columns;
pub mod details;
pub mod export;
pub mod leavers;
pub mod live;
pub mod mine;
pub mod routes;
pub mod routines;
pub mod search;
pub mod time;
pub mod web;

#[cfg(test)]
mod tests;

use crate::members::MemberId;

/// The app's id: live topics (`Topic { app: APP, id: <board> }`), job kinds (`tasks.*`),
/// export section, logs.
pub const APP: &str = "tasks";

/// Typed board id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct BoardId(pub i64);

/// Typed column id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ColumnId(pub i64);

/// Typed card id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CardId(pub i64);

/// Longest board, column, card and label title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest card description or board description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;
/// Longest checklist item, in characters.
pub const MAX_ITEM_CHARS: usize = 500;
/// Most checklist items on one card.
pub const MAX_ITEMS: i64 = 200;
/// Most columns on one board.
pub const MAX_COLUMNS: i64 = 30;
/// Most cards in one column (archived ones not counted).
pub const MAX_CARDS_PER_COLUMN: i64 = 2_000;

/// What a member may do on a board, ordered: `View < Edit < Manage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// See the board and its cards.
    View,
    /// Also create, edit, move, archive cards; comment.
    Edit,
    /// Also rename, share, archive the board; add, rename, reorder, delete columns.
    Manage,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Edit => "edit",
            Self::Manage => "manage",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "view" => Some(Self::View),
            "edit" => Some(Self::Edit),
            "manage" => Some(Self::Manage),
            _ => None,
        }
    }
    /// German, as the sharing form shows it.
    pub fn label(self) -> &'static str {
        match self {
            Self::View => "Lesen",
            Self::Edit => "Bearbeiten",
            Self::Manage => "Verwalten",
        }
    }
}

/// The fixed palette of label colours (names stored; the stylesheet maps each to a colour
/// pair with sufficient contrast), with German names.
pub const COLORS: &[(&str, &str)] = &[
    ("grau", "Grau"),
    ("rot", "Rot"),
    ("orange", "Orange"),
    ("gelb", "Gelb"),
    ("gruen", "Grün"),
    ("tuerkis", "Türkis"),
    ("blau", "Blau"),
    ("lila", "Lila"),
];

/// Who is acting.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub id: MemberId,
}

/// Why a tasks action was refused; the message is German and shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Unknown board, or one the member may not see (the same answer on purpose).
    #[error("Board nicht gefunden.")]
    BoardNotFound,
    #[error("Karte nicht gefunden.")]
    CardNotFound,
    #[error("Spalte nicht gefunden.")]
    ColumnNotFound,
    #[error("Eintrag nicht gefunden.")]
    ItemNotFound,
    #[error("Sie dürfen dieses Board nur lesen.")]
    ReadOnly,
    #[error("Nur wer das Board verwalten darf, kann das ändern.")]
    NotManager,
    #[error("Das Board ist archiviert.")]
    Archived,
    #[error("Die Karte ist archiviert.")]
    CardArchived,
    #[error("Bitte geben Sie einen Titel mit 1–{MAX_TITLE_CHARS} Zeichen an.")]
    Title,
    #[error("Der Text ist zu lang.")]
    TooLong,
    #[error("Der Text ist leer.")]
    Empty,
    #[error("Die Spalte gehört zu einem anderen Board.")]
    OtherBoard,
    #[error("Die Spalte enthält noch Karten (auch archivierte). Verschieben Sie sie zuerst.")]
    ColumnNotEmpty,
    #[error("Ein Board braucht mindestens eine Spalte.")]
    LastColumn,
    #[error("Zu viele Einträge.")]
    TooMany,
    #[error("Ungültige Eingabe: {0}")]
    Invalid(&'static str),
    /// An upload over the file store's limit (the limit as shown).
    #[error("Die Datei ist zu groß: höchstens {0} sind erlaubt. Sie wurde nicht gespeichert.")]
    FileTooLarge(String),
    /// The virus scanner found something: the file's name and the finding.
    #[error(
        "Die Datei „{0}“ wurde nicht gespeichert: Die Virenprüfung hat Schadsoftware gefunden ({1})."
    )]
    Infected(String, String),
    /// The virus scanner could not be asked (not configured, unreachable, failed).
    #[error("{0}")]
    ScanUnavailable(&'static str),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

impl TaskError {
    /// HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::BoardNotFound
            | Self::CardNotFound
            | Self::ColumnNotFound
            | Self::ItemNotFound => 404,
            Self::ReadOnly | Self::NotManager | Self::Archived | Self::CardArchived => 403,
            Self::TooLong | Self::FileTooLarge(_) => 413,
            Self::Infected(..) => 422,
            Self::ScanUnavailable(_) => 503,
            Self::ColumnNotEmpty | Self::LastColumn => 409,
            Self::Db(_) => 500,
            _ => 400,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == 404
    }
}

/// A title as stored: trimmed, control characters removed, 1..=[`MAX_TITLE_CHARS`].
pub fn check_title(s: &str) -> Result<String, TaskError> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let n = t.chars().count();
    if n == 0 || n > MAX_TITLE_CHARS {
        return Err(TaskError::Title);
    }
    Ok(t)
}

/// A longer text as stored (description, comment): `\0` removed, at most `max` characters;
/// empty allowed unless `required`.
pub fn check_text(s: &str, max: usize, required: bool) -> Result<String, TaskError> {
    let t = s
        .trim_end()
        .trim_start_matches(['\n', '\r'])
        .replace('\0', "");
    if t.chars().count() > max {
        return Err(TaskError::TooLong);
    }
    if required && t.trim().is_empty() {
        return Err(TaskError::Empty);
    }
    Ok(t)
}
