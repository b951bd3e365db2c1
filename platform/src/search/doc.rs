//! What the one search of the workspace stores and shows: documents of every app (chat
//! messages, task cards; files later), each carrying its kind and the permission key its
//! app checks, and hits as the apps confirm and render them.

use std::fmt;

use kollegium_tenants::UnixTime;

/// The kind of a document (`chat-message`, `task-card`). Stored in the index, so a kind is
/// never renamed without a rebuild.
pub type Kind = &'static str;

/// One document of the index: its kind and its id in the owning app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocRef {
    pub kind: Kind,
    pub id: i64,
}

impl DocRef {
    pub const fn new(kind: Kind, id: i64) -> Self {
        Self { kind, id }
    }

    /// The document's unique term in the index (`chat-message:17`), which replacing and
    /// removing it go by: ids of different kinds may coincide.
    pub fn uid(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

/// What a reader must be allowed to read to see a document, in the words of the owning
/// app: chat's is the room (`room:<id>`). Queries match only documents whose key the app
/// listed for the reader ([`crate::app::SearchSource::readable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermKey {
    /// What the key names (`room`; later `board`, `folder`, …).
    pub scope: &'static str,
    pub id: i64,
}

impl PermKey {
    pub const fn new(scope: &'static str, id: i64) -> Self {
        Self { scope, id }
    }
}

impl fmt::Display for PermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scope, self.id)
    }
}

/// A hit its app confirmed against its database for one reader: what the document is now
/// (never what the index remembers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub id: i64,
    /// Where or what it is, as the reader sees it (chat: `# Team`, `@ Dr. Ines Inhaber`).
    pub title: String,
    /// Who wrote it, if anyone.
    pub author: Option<String>,
    /// Its current text; the snippet is cut from it.
    pub text: String,
    /// Where it is shown (chat: the message in its room).
    pub link: String,
    pub created_at: UnixTime,
}

/// A hit as the search page shows it, rendered by its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub kind: Kind,
    /// The kind's label (German: `Chat`).
    pub label: &'static str,
    pub title: String,
    pub author: Option<String>,
    /// The time in the practice's time zone, German format.
    pub when: String,
    /// Escaped text with the matched words in `<mark>`.
    pub snippet_html: String,
    pub link: String,
}
