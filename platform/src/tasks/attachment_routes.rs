//! Card attachments over HTTP: the card page's upload form (`POST /tasks/attachments?card=`,
//! multipart, works without JavaScript), download (`GET /tasks/attachments/{id}`), delete
//! with a confirmation page (`/tasks/attachments/{id}/delete`), and the JSON API
//! (`GET /api/tasks/cards/{id}/attachments`, `POST /api/tasks/attachments?card=`,
//! `DELETE /api/tasks/attachments/{id}`).
//!
//! An upload is streamed into a temp file of the practice's file store (bounded by the
//! configured limit), scanned by clamd, and only then committed with its row; a refusal
//! (too large, infected, scanner unreachable, malformed) leaves nothing behind. The upload
//! paths are fixed (the card is a query parameter) so the plumbing can give them their
//! larger body limit and take the CSRF token from the query: a multipart form has no field
//! the CSRF check reads.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use kollegium_tenants::web::CsrfToken;
use tokio::io::AsyncReadExt;

use super::attachments::{self, AddError, AttachmentId, Upload};
use super::live::{Change, Event};
use super::routes::ConfirmPage;
use super::web::{PageError, PageResult, after_commit, html, internal, layout, read, see_other};
use super::{CardId, TaskError};
use crate::PLATFORM_DB;
use crate::app::AppContext;
use crate::auth::Member;
use crate::error::ApiError;
use crate::filestore::scan::Verdict;
use crate::filestore::{BlobHash, Staged, StoreError};

/// The upload form's path (exact: the plumbing's upload limit and query CSRF token).
pub const UPLOAD_PATH: &str = "/tasks/attachments";
/// The API's upload path.
pub const API_UPLOAD_PATH: &str = "/api/tasks/attachments";
/// Both, for the composition ([`crate::UPLOAD_PATHS`]).
pub const UPLOAD_PATHS: &[&str] = &[UPLOAD_PATH, API_UPLOAD_PATH];

/// Bytes gathered before each write to the temp file (written off the async threads).
const WRITE_CHUNK: usize = 256 * 1024;

#[derive(Debug, serde::Deserialize)]
struct UploadQuery {
    card: i64,
}

/// Reads the multipart body's `file` part into a staged file of the practice's store
/// (at most the configured size) and has clamd scan it. Refusals are [`TaskError`]s;
/// nothing is left on disk when this fails.
async fn receive(
    shared: &AppContext,
    m: &Member,
    mut body: Multipart,
) -> Result<Upload, PageError> {
    let limit = shared.files.settings.max_file_bytes;
    let too_large = || TaskError::FileTooLarge(attachments::size_label(limit));
    let store = shared.files.store(&m.tenant);
    while let Some(field) = body.next().await {
        let mut field = field.map_err(|_| unreadable_err())?;
        let is_file = field.name() == Some("file");
        let name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .and_then(attachments::clean_name);
        let (true, Some(name)) = (is_file, name) else {
            // Another field (or a file input left empty): read past it, bounded.
            let mut seen = 0usize;
            while let Some(chunk) = field.next().await {
                seen += chunk.map_err(|_| unreadable_err())?.len();
                if seen > 64 * 1024 {
                    return Err(TaskError::Invalid("Unerwartetes Formularfeld.").into());
                }
            }
            continue;
        };
        let content_type =
            attachments::safe_content_type(field.content_type().map(|t| t.essence_str()));
        let now = shared.now();
        let mut staged: Staged = {
            let store = store.clone();
            kollegium_tenants::web::block(move || {
                if let Err(e) = store.sweep_temp(now) {
                    tracing::warn!(error = %e, "cannot sweep stale temp files of the file store");
                }
                store.stage(limit)
            })
            .await
            .map_err(internal)?
            .map_err(internal)?
        };
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        let mut done = false;
        while !done {
            match field.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|_| unreadable_err())?;
                    if (staged.size() + buf.len() as u64).saturating_add(chunk.len() as u64) > limit
                    {
                        return Err(too_large().into());
                    }
                    buf.extend_from_slice(&chunk);
                    if buf.len() < WRITE_CHUNK {
                        continue;
                    }
                }
                None => done = true,
            }
            let data = std::mem::take(&mut buf);
            staged = kollegium_tenants::web::block(move || {
                let r = staged.write(&data).and_then(|()| {
                    if done {
                        staged.finish().map(|_| ())
                    } else {
                        Ok(())
                    }
                });
                r.map(|()| staged)
            })
            .await
            .map_err(internal)?
            .map_err(|e| match e {
                StoreError::TooLarge { .. } => too_large().into(),
                e => internal(e),
            })?;
        }
        return match shared.files.scanner.scan_file(staged.path()).await {
            Ok(Verdict::Clean) => Ok(Upload {
                staged,
                name,
                content_type,
            }),
            Ok(Verdict::Infected(finding)) => {
                tracing::warn!(practice = %m.tenant.slug(), %finding, "upload refused: malware found");
                Err(TaskError::Infected(name, finding).into())
            }
            Err(e) => {
                tracing::error!(practice = %m.tenant.slug(), error = %e, "upload refused: no virus scan");
                Err(TaskError::ScanUnavailable(e.message()).into())
            }
        };
    }
    Err(TaskError::Invalid("Bitte wählen Sie eine Datei aus.").into())
}

fn unreadable_err() -> PageError {
    TaskError::Invalid("Die Datei konnte nicht gelesen werden.").into()
}

/// Receives, scans and attaches an upload to `card`; returns the attachment and publishes.
async fn upload_to(
    shared: &AppContext,
    m: &Member,
    card: CardId,
    body: Multipart,
) -> Result<AttachmentId, PageError> {
    let me = m.id();
    // Refuse before reading a byte for someone who may not attach here.
    read(m, move |c| attachments::may_change(c, card, me)).await?;
    let upload = receive(shared, m, body).await?;
    let store = shared.files.store(&m.tenant);
    let now = shared.now();
    let (id, ev) = m
        .tenant
        .write(&PLATFORM_DB, move |c| {
            let (id, card_row) = attachments::add(c, &store, card, me, upload, now)?;
            let ev = Event::new(c, card_row.board(), Change::Card { card: card.0 }, me.0)?;
            Ok::<_, AddError>((id, ev))
        })
        .await
        .map_err(|e| match e {
            kollegium_tenants::group_commit::WriteError::Job(AddError::Task(t)) => t.into(),
            kollegium_tenants::group_commit::WriteError::Job(AddError::Store(s)) => internal(s),
            kollegium_tenants::group_commit::WriteError::Db(why) => {
                internal(format!("group commit: {why}"))
            }
        })?;
    after_commit(shared, m, vec![ev], false);
    Ok(id)
}

async fn upload(
    m: Member,
    shared: web::Data<AppContext>,
    q: web::Query<UploadQuery>,
    body: Multipart,
) -> PageResult {
    let card = CardId(q.card);
    upload_to(&shared, &m, card, body).await?;
    Ok(see_other(&format!(
        "/tasks/cards/{}?done=attached#attachments",
        card.0
    )))
}

/// Deletes an attachment and, once that committed, its blob if nothing else uses it.
async fn delete_attachment(
    shared: &AppContext,
    m: &Member,
    id: AttachmentId,
) -> Result<CardId, PageError> {
    let (me, now) = (m.id(), shared.now());
    let (card, unreferenced, ev) = super::web::write(m, move |c| {
        let (card, unreferenced) = attachments::remove(c, id, me, now)?;
        let ev = Event::new(c, card.board(), Change::Card { card: card.id }, me.0)?;
        Ok((card.card_id(), unreferenced, ev))
    })
    .await?;
    after_commit(shared, m, vec![ev], false);
    if let Some(hash) = unreferenced {
        collect(shared, m, hash).await;
    }
    Ok(card)
}

/// Deletes a blob nothing references any more (after the release committed), and any
/// other one a crash left between a release and its collection. A failure is logged; the
/// blob stays until a later collection, nothing is lost.
async fn collect(shared: &AppContext, m: &Member, hash: BlobHash) {
    let store = shared.files.store(&m.tenant);
    let r = m
        .tenant
        .write(&PLATFORM_DB, move |c| {
            store.collect(c, &hash)?;
            store.collect_all(c)
        })
        .await;
    if let Err(e) = r {
        tracing::error!(practice = %m.tenant.slug(), error = ?e, "cannot delete an unreferenced blob");
    }
}

/// A download: the stored bytes as an attachment, never rendered in the practice's origin.
async fn download(m: Member, shared: web::Data<AppContext>, id: web::Path<i64>) -> PageResult {
    let (id, me) = (AttachmentId(id.into_inner()), m.id());
    let (a, _, _) = read(&m, move |c| attachments::readable(c, id, me)).await?;
    let hash = a
        .hash()
        .ok_or_else(|| internal(format!("attachment {} has a malformed hash", a.id)))?;
    let store = shared.files.store(&m.tenant);
    let file = kollegium_tenants::web::block(move || store.open(&hash))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let file = tokio::fs::File::from_std(file);
    let stream = futures_util::stream::unfold(Some(file), |f| async move {
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, a.content_type.clone()))
        .insert_header(disposition(&a.name))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .no_chunking(u64::try_from(a.size).unwrap_or(0))
        .streaming(stream))
}

/// `attachment; filename="<ASCII stand-in>"; filename*=UTF-8''<the name>`.
fn disposition(name: &str) -> ContentDisposition {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![
            DispositionParam::Filename(ascii),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: name.as_bytes().to_vec(),
            }),
        ],
    }
}

async fn confirm_delete(m: Member, csrf: CsrfToken, id: web::Path<i64>) -> PageResult {
    let (id, me) = (AttachmentId(id.into_inner()), m.id());
    let (a, card, _) = read(&m, move |c| {
        let (a, card, _) = attachments::readable(c, id, me)?;
        attachments::may_change(c, card.card_id(), me)?;
        Ok((a, card, ()))
    })
    .await?;
    html(&ConfirmPage {
        layout: layout(&m, &csrf),
        question: format!("Den Anhang „{}“ wirklich löschen?", a.name),
        action: format!("/tasks/attachments/{}/delete", a.id),
        button: "Anhang löschen",
        back: format!("/tasks/cards/{}#attachments", card.id),
    })
}

async fn delete(m: Member, shared: web::Data<AppContext>, id: web::Path<i64>) -> PageResult {
    let card = delete_attachment(&shared, &m, AttachmentId(id.into_inner())).await?;
    Ok(see_other(&format!(
        "/tasks/cards/{}?done=detached#attachments",
        card.0
    )))
}

async fn api_list(m: Member, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let (card, me) = (CardId(id.into_inner()), m.id());
    let list = read(&m, move |c| {
        super::cards::readable(c, card, me)?;
        Ok(attachments::list(c, card)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "attachments": list })))
}

async fn api_upload(
    m: Member,
    shared: web::Data<AppContext>,
    q: web::Query<UploadQuery>,
    body: Multipart,
) -> Result<HttpResponse, ApiError> {
    let card = CardId(q.card);
    let id = upload_to(&shared, &m, card, body).await?;
    let list = read(&m, move |c| Ok(attachments::list(c, card)?)).await?;
    let made = list.into_iter().find(|a| a.id == id.0);
    Ok(HttpResponse::build(StatusCode::CREATED).json(serde_json::json!({ "attachment": made })))
}

async fn api_delete(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    delete_attachment(&shared, &m, AttachmentId(id.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the attachment routes (before the tasks API's `/api/tasks` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(UPLOAD_PATH, web::post().to(upload))
        .route("/tasks/attachments/{id}", web::get().to(download))
        .route(
            "/tasks/attachments/{id}/delete",
            web::get().to(confirm_delete),
        )
        .route("/tasks/attachments/{id}/delete", web::post().to(delete))
        .route("/api/tasks/cards/{id}/attachments", web::get().to(api_list))
        .route(API_UPLOAD_PATH, web::post().to(api_upload))
        .route("/api/tasks/attachments/{id}", web::delete().to(api_delete));
}
