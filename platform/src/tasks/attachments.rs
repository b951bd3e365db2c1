//! Card attachments: files in the practice file store ([`crate::filestore`]), one row per
//! attachment holding one reference to its blob. Reading needs the board's `View`, adding
//! and deleting its `Edit` (on a board and card that are not archived). Every change writes
//! the card's history and queues its search document (attachment names are searchable) in
//! the caller's transaction.
//!
//! Names are kept as uploaded (last path component, no control characters, at most
//! [`MAX_NAME_CHARS`]); the content type is stored only if it cannot run in the practice's
//! origin (never HTML, SVG, XML or script: those become `application/octet-stream`), and
//! downloads always go out as `Content-Disposition: attachment`.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use serde_json::json;

use super::cards::{self, Card, queue_index, record};
use super::{CardId, Permission, TaskError};
use crate::filestore::{self, BlobHash, Staged, Store, StoreError};
use crate::members::MemberId;
use crate::schema::{members, task_attachments};

/// Longest attachment name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most attachments on one card.
pub const MAX_PER_CARD: i64 = 100;

/// Typed attachment id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AttachmentId(pub i64);

/// An attachment row.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = task_attachments)]
pub struct Attachment {
    pub id: i64,
    pub card_id: i64,
    pub blob_hash: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub uploaded_by: Option<i64>,
    pub created_at: i64,
}

impl Attachment {
    pub fn hash(&self) -> Option<BlobHash> {
        BlobHash::parse(&self.blob_hash)
    }
}

/// An attachment as the card page and the API list it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub id: i64,
    pub name: String,
    pub size: i64,
    pub size_label: String,
    pub content_type: String,
    pub uploaded_by: String,
    pub created_at: i64,
}

/// A file name as stored: the last path component, control characters removed, trimmed,
/// at most [`MAX_NAME_CHARS`]; empty or dots only: `None`.
pub fn clean_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = last
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect();
    (!name.is_empty() && !name.chars().all(|c| c == '.')).then_some(name)
}

/// The content type to store for what the browser said: a well-formed `type/subtype` that
/// cannot be rendered or run as a page of the practice's origin, else
/// `application/octet-stream`.
pub fn safe_content_type(said: Option<&str>) -> String {
    const FALLBACK: &str = "application/octet-stream";
    let Some(said) = said else {
        return FALLBACK.into();
    };
    let essence = said
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((top, sub)) = essence.split_once('/') else {
        return FALLBACK.into();
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'))
    };
    let active = matches!(top, "text" | "multipart" | "message")
        && !matches!(sub, "plain" | "csv" | "calendar" | "vcard")
        || sub.contains("html")
        || sub.contains("xml")
        || sub.contains("script")
        || sub.contains("svg");
    if !token(top) || !token(sub) || active {
        return FALLBACK.into();
    }
    essence
}

/// A size in German units (`17 Bytes`, `3,4 KB`, `25 MB`).
pub fn size_label(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    let (v, unit) = if b >= KB * KB * KB {
        (b / (KB * KB * KB), "GB")
    } else if b >= KB * KB {
        (b / (KB * KB), "MB")
    } else if b >= KB {
        (b / KB, "KB")
    } else {
        return if bytes == 1 {
            "1 Byte".into()
        } else {
            format!("{bytes} Bytes")
        };
    };
    let s = if v >= 10.0 || v.fract() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}").replace('.', ",")
    };
    format!("{s} {unit}")
}

/// The attachments of a card, oldest first, with who uploaded them.
pub fn list(conn: &mut SqliteConnection, card: CardId) -> QueryResult<Vec<Listed>> {
    let rows: Vec<(Attachment, Option<String>)> = task_attachments::table
        .left_join(members::table.on(members::id.nullable().eq(task_attachments::uploaded_by)))
        .filter(task_attachments::card_id.eq(card.0))
        .order(task_attachments::id)
        .select((Attachment::as_select(), members::display_name.nullable()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(a, who)| Listed {
            id: a.id,
            size_label: size_label(u64::try_from(a.size).unwrap_or(0)),
            name: a.name,
            size: a.size,
            content_type: a.content_type,
            uploaded_by: who.unwrap_or_else(|| "Ehemaliges Mitglied".into()),
            created_at: a.created_at,
        })
        .collect())
}

/// The attachment rows of a card, oldest first (the export).
pub fn list_for_export(conn: &mut SqliteConnection, card: CardId) -> QueryResult<Vec<Attachment>> {
    task_attachments::table
        .filter(task_attachments::card_id.eq(card.0))
        .order(task_attachments::id)
        .select(Attachment::as_select())
        .load(conn)
}

/// The names of the attachments of `cards` (for their search documents).
pub fn names_of(conn: &mut SqliteConnection, cards: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    task_attachments::table
        .filter(task_attachments::card_id.eq_any(cards))
        .order(task_attachments::id)
        .select((task_attachments::card_id, task_attachments::name))
        .load(conn)
}

/// An attachment `member` may read, with its card and the member's permission; unknown or
/// on a board they may not see: [`TaskError::ItemNotFound`] (the same answer).
pub fn readable(
    conn: &mut SqliteConnection,
    id: AttachmentId,
    member: MemberId,
) -> Result<(Attachment, Card, Permission), TaskError> {
    let a: Attachment = task_attachments::table
        .find(id.0)
        .select(Attachment::as_select())
        .first(conn)
        .optional()?
        .ok_or(TaskError::ItemNotFound)?;
    let (card, perm) = match cards::readable(conn, CardId(a.card_id), member) {
        Err(TaskError::CardNotFound) => return Err(TaskError::ItemNotFound),
        other => other?,
    };
    Ok((a, card, perm))
}

/// Checks that `member` may attach to or detach from `card` now.
pub fn may_change(
    conn: &mut SqliteConnection,
    card: CardId,
    member: MemberId,
) -> Result<Card, TaskError> {
    let c = cards::editable(conn, card, member)?;
    if c.is_archived() {
        return Err(TaskError::CardArchived);
    }
    Ok(c)
}

/// Why adding an attachment failed: a refusal, or the store failing inside.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for AddError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Task(TaskError::Db(e))
    }
}

/// A scanned file on its way to a card.
#[derive(Debug)]
pub struct Upload {
    pub staged: Staged,
    pub name: String,
    pub content_type: String,
}

/// Attaches a scanned upload to `card` (`Edit`): the blob goes into the store, the row and
/// the history entry are written, the card's search document queued; in the caller's
/// write transaction.
pub fn add(
    conn: &mut SqliteConnection,
    store: &Store,
    card: CardId,
    member: MemberId,
    upload: Upload,
    now: UnixTime,
) -> Result<(AttachmentId, Card), AddError> {
    let c = may_change(conn, card, member)?;
    let n: i64 = task_attachments::table
        .filter(task_attachments::card_id.eq(card.0))
        .count()
        .get_result(conn)?;
    if n >= MAX_PER_CARD {
        return Err(TaskError::TooMany.into());
    }
    let blob = store.commit(conn, upload.staged, now)?;
    let id = diesel::insert_into(task_attachments::table)
        .values((
            task_attachments::card_id.eq(card.0),
            task_attachments::blob_hash.eq(blob.hash.as_str()),
            task_attachments::name.eq(&upload.name),
            task_attachments::content_type.eq(&upload.content_type),
            task_attachments::size.eq(i64::try_from(blob.size).unwrap_or(i64::MAX)),
            task_attachments::uploaded_by.eq(member.0),
            task_attachments::created_at.eq(now),
        ))
        .returning(task_attachments::id)
        .get_result(conn)?;
    record(
        conn,
        card,
        Some(member),
        "attachment",
        json!({"name": upload.name, "size": blob.size}),
        now,
    )?;
    queue_index(conn, card, now)?;
    Ok((AttachmentId(id), c))
}

/// Deletes an attachment (`Edit` on its card's board): row gone, history written, search
/// document queued, the blob's reference released. Returns the card and the blob if
/// nothing references it any more (collect it after the commit,
/// [`crate::filestore::Store::collect`]).
pub fn remove(
    conn: &mut SqliteConnection,
    id: AttachmentId,
    member: MemberId,
    now: UnixTime,
) -> Result<(Card, Option<BlobHash>), TaskError> {
    let (a, _, _) = readable(conn, id, member)?;
    let card = may_change(conn, CardId(a.card_id), member)?;
    diesel::delete(task_attachments::table.find(a.id)).execute(conn)?;
    let unreferenced = match a.hash() {
        Some(h) if filestore::release(conn, &h)? => Some(h),
        _ => None,
    };
    record(
        conn,
        card.card_id(),
        Some(member),
        "attachment_deleted",
        json!({"name": a.name}),
        now,
    )?;
    queue_index(conn, card.card_id(), now)?;
    Ok((card, unreferenced))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_last_component_without_controls() {
        assert_eq!(clean_name("Befund.pdf").as_deref(), Some("Befund.pdf"));
        assert_eq!(
            clean_name("C:\\Users\\mfa\\Plan Q1.xlsx").as_deref(),
            Some("Plan Q1.xlsx")
        );
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("a\u{0}b\nc.txt").as_deref(), Some("abc.txt"));
        assert_eq!(clean_name("  "), None);
        assert_eq!(clean_name(".."), None);
        assert_eq!(clean_name("dir/"), None);
        assert_eq!(clean_name(&"x".repeat(500)).unwrap().chars().count(), 200);
    }

    #[test]
    fn content_types_that_could_run_are_not_stored() {
        let t = |s: &str| safe_content_type(Some(s));
        assert_eq!(t("application/pdf"), "application/pdf");
        assert_eq!(t("image/png"), "image/png");
        assert_eq!(t("text/plain; charset=utf-8"), "text/plain");
        for bad in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/javascript",
            "text/javascript",
            "multipart/related",
            "nonsense",
            "a/b c",
            "",
        ] {
            assert_eq!(t(bad), "application/octet-stream", "{bad}");
        }
        assert_eq!(safe_content_type(None), "application/octet-stream");
    }

    #[test]
    fn sizes_read_in_german() {
        assert_eq!(size_label(1), "1 Byte");
        assert_eq!(size_label(17), "17 Bytes");
        assert_eq!(size_label(3 * 1024 + 400), "3,4 KB");
        assert_eq!(size_label(25 * 1024 * 1024), "25 MB");
    }
}
