//! The console's practices pages: the list with usage figures read from the file system
//! only (sizes of the practice's database files, `files/` and `index/`; never a database
//! opened, never content), creating a practice through [`crate::practices::create`] with
//! every app's hook (the owner's setup link shown once), and suspending and resuming one
//! after a confirmation, through [`crate::practices::change`]. The running server honours
//! a change at once (the store's cached registry entry and open databases are dropped).
//! Every action is in the audit log.

use std::path::Path;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::Slug;
use kollegium_tenants::cause::Internal;
use kollegium_tenants::provision::{CreatePractice, ProvisionError};
use kollegium_tenants::registry::{self, Practice, PracticeStatus};
use kollegium_tenants::store::practice_dir;
use kollegium_tenants::web::WebContext;
use serde::Deserialize;

use super::audit;
use super::web::{Console, ConsoleError, Layout, Operator, html};
use crate::practices::{self, Change};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/practices", web::get().to(list))
        .route("/practices/new", web::get().to(new_form))
        .route("/practices/new", web::post().to(create))
        .route("/practices/{slug}/{action}", web::get().to(confirm))
        .route("/practices/{slug}/{action}", web::post().to(change));
}

/// What a practice takes on disk, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `idp.sqlite` with its `-wal` and `-shm` files.
    pub idp_db: u64,
    /// `platform.sqlite` with its `-wal` and `-shm` files.
    pub platform_db: u64,
    /// `files/`, the stored attachments.
    pub files: u64,
    /// `index/`, the search index.
    pub index: u64,
}

fn file_size(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len())
}

fn db_size(dir: &Path, file: &str) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| file_size(&dir.join(format!("{file}{suffix}"))))
        .sum()
}

/// The size of every file under `dir` (symbolic links not followed).
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// The usage of the practice in `dir` (`data/tenants/<slug>`), from file sizes only.
pub fn usage(dir: &Path) -> Usage {
    Usage {
        idp_db: db_size(dir, kollegium_idp::IDP_DB.file),
        platform_db: db_size(dir, kollegium_platform::PLATFORM_DB.file),
        files: tree_size(&dir.join("files")),
        index: tree_size(&dir.join("index")),
    }
}

/// `1,5 MB`-style sizes (German decimal comma, powers of 1024).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit]).replace('.', ",")
}

fn status_label(s: PracticeStatus) -> &'static str {
    match s {
        PracticeStatus::Active => "aktiv",
        PracticeStatus::Suspended => "gesperrt",
        PracticeStatus::Deleted => "gelöscht",
    }
}

struct Row {
    slug: String,
    name: String,
    status: &'static str,
    active: bool,
    suspended: bool,
    created: String,
    /// `None` for a deleted practice (nothing on disk).
    usage: Option<[String; 4]>,
}

/// Practices per page of the list: each shown one's usage is read from the file system, so
/// a node with 1,000 practices does not walk every file tree on one page load.
const PER_PAGE: usize = 50;
/// Longest filter text the list takes.
const MAX_FILTER_CHARS: usize = 100;

#[derive(Template)]
#[template(path = "operator/practices.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    notice: Option<String>,
    /// The filter as typed.
    q: String,
    /// Practices matching the filter (all practices without one).
    matching: usize,
    page: usize,
    pages: usize,
    /// Links to the previous and next page, with the filter kept.
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Done {
    done: Option<String>,
    slug: Option<String>,
    /// Filter: part of the slug or the name.
    q: Option<String>,
    /// The page, from 1.
    seite: Option<String>,
}

/// The practices on `page` (from 1) of those whose slug or name contains `q` (ignoring
/// case), and how many match. A page past the last is empty.
fn page_of(all: Vec<Practice>, q: &str, page: usize) -> (Vec<Practice>, usize) {
    let q = q.trim().to_lowercase();
    let matching: Vec<Practice> = all
        .into_iter()
        .filter(|p| {
            q.is_empty() || p.slug.contains(&q) || p.display_name.to_lowercase().contains(&q)
        })
        .collect();
    let total = matching.len();
    let shown = matching
        .into_iter()
        .skip(page.saturating_sub(1).saturating_mul(PER_PAGE))
        .take(PER_PAGE)
        .collect();
    (shown, total)
}

/// The list's address for `page` with filter `q`.
fn list_href(q: &str, page: usize) -> String {
    let mut pairs = Vec::new();
    if !q.is_empty() {
        pairs.push(("q", q.to_owned()));
    }
    if page > 1 {
        pairs.push(("seite", page.to_string()));
    }
    match serde_urlencoded::to_string(&pairs) {
        Ok(query) if !query.is_empty() => format!("/practices?{query}"),
        _ => "/practices".to_owned(),
    }
}

fn notice(done: &Done) -> Option<String> {
    let slug = done.slug.as_deref().and_then(|s| Slug::parse(s).ok())?;
    let what = match done.done.as_deref()? {
        "gesperrt" => "ist gesperrt",
        "entsperrt" => "ist wieder freigegeben",
        _ => return None,
    };
    Some(format!("Die Praxis „{}“ {what}.", slug.as_str()))
}

fn internal(
    what: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ConsoleError {
    move |e| ConsoleError::Internal(Internal::new(what, e))
}

async fn list(
    op: Operator,
    console: web::Data<Console>,
    q: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let q = q.into_inner();
    let filter = q.q.clone().unwrap_or_default();
    let page = match q.seite.as_deref() {
        None => 1,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or(ConsoleError::BadRequest)?,
    };
    if filter.chars().count() > MAX_FILTER_CHARS {
        return Err(ConsoleError::BadRequest);
    }
    let store = console.store.clone();
    let f = filter.clone();
    let (rows, matching) = kollegium_tenants::web::block(move || {
        let all = store
            .with_registry(registry::list)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
        let (shown, matching) = page_of(all, &f, page);
        let rows = shown
            .into_iter()
            .map(|p| {
                let usage = (p.status != PracticeStatus::Deleted)
                    .then(|| Slug::parse(&p.slug).ok())
                    .flatten()
                    .map(|slug| {
                        let u = usage(&practice_dir(store.data_dir(), &slug));
                        [u.idp_db, u.platform_db, u.files, u.index].map(human_size)
                    });
                Row {
                    active: p.status == PracticeStatus::Active,
                    suspended: p.status == PracticeStatus::Suspended,
                    status: status_label(p.status),
                    created: super::web::shown_time(p.created_at),
                    slug: p.slug,
                    name: p.display_name,
                    usage,
                }
            })
            .collect::<Vec<_>>();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((rows, matching))
    })
    .await
    .map_err(ConsoleError::from)?
    .map_err(internal("listing the practices"))?;
    let pages = matching.div_ceil(PER_PAGE).max(1);
    let filter = filter.trim().to_owned();
    Ok(html(
        StatusCode::OK,
        &ListPage {
            layout: op.layout("practices"),
            rows,
            notice: notice(&q),
            previous: (page > 1).then(|| list_href(&filter, (page - 1).min(pages))),
            next: (page < pages).then(|| list_href(&filter, page + 1)),
            q: filter,
            matching,
            page,
            pages,
        },
    ))
}

#[derive(Template)]
#[template(path = "operator/practice_new.html")]
struct NewPage {
    layout: Layout,
    slug: String,
    name: String,
    owner_email: String,
    error: Option<String>,
}

async fn new_form(op: Operator) -> HttpResponse {
    html(
        StatusCode::OK,
        &NewPage {
            layout: op.layout("practices"),
            slug: String::new(),
            name: String::new(),
            owner_email: String::new(),
            error: None,
        },
    )
}

#[derive(Debug, Deserialize)]
struct NewForm {
    slug: String,
    name: String,
    owner_email: String,
}

#[derive(Template)]
#[template(path = "operator/practice_created.html")]
struct CreatedPage {
    layout: Layout,
    slug: String,
    name: String,
    url: String,
    setup_link: Option<String>,
    mailed: bool,
}

/// German text for a refusal the operator can fix.
fn refusal(e: &ProvisionError) -> Option<String> {
    Some(match e {
        ProvisionError::Slug(why) => format!(
            "Das Kürzel ist ungültig ({why}). Erlaubt sind Kleinbuchstaben, Ziffern und Bindestriche, z. B. praxis-mueller."
        ),
        ProvisionError::Email(_) => {
            "Die E-Mail-Adresse der Inhaberin oder des Inhabers ist ungültig.".into()
        }
        ProvisionError::Name(_) => {
            "Der Name der Praxis fehlt oder ist zu lang (höchstens 120 Zeichen).".into()
        }
        ProvisionError::Exists(slug) => {
            format!("Es gibt schon eine Praxis mit dem Kürzel „{slug}“.")
        }
        ProvisionError::Tombstoned(slug) => format!(
            "Das Kürzel „{slug}“ gehörte einer gelöschten Praxis und wird nicht wieder vergeben."
        ),
        ProvisionError::NotFound(slug) => format!("Es gibt keine Praxis „{slug}“."),
        ProvisionError::WrongStatus { .. } => "Die Praxis ist schon in diesem Zustand.".into(),
        _ => return None,
    })
}

async fn create(
    op: Operator,
    console: web::Data<Console>,
    ctx: web::Data<WebContext>,
    form: web::Form<NewForm>,
) -> Result<HttpResponse, ConsoleError> {
    let NewForm {
        slug,
        name,
        owner_email,
    } = form.into_inner();
    if slug.len() > 200 || name.len() > 1000 || owner_email.len() > 1000 {
        return Err(ConsoleError::BadRequest);
    }
    let again = |error: String| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewPage {
                layout: op.layout("practices"),
                slug: slug.clone(),
                name: name.clone(),
                owner_email: owner_email.clone(),
                error: Some(error),
            },
        )
    };
    let input = match CreatePractice::parse(&slug, &name, &owner_email) {
        Ok(i) => i,
        Err(e) => return Ok(again(refusal(&e).unwrap_or_else(|| e.to_string()))),
    };
    let store = console.store.clone();
    let now = console.now();
    let mail = console.mail_setup_link;
    let web_settings = ctx.settings.clone();
    let created_input = input.clone();
    let report = kollegium_tenants::web::block(move || {
        let mut registry = store.lock_registry()?;
        Ok::<_, kollegium_tenants::store::StoreError>(practices::create(
            store.data_dir(),
            store.node_key(),
            &mut registry,
            now,
            &web_settings,
            &created_input,
            mail,
            &[],
        ))
    })
    .await
    .map_err(ConsoleError::from)?
    .map_err(|e| ConsoleError::Internal(Internal::new("registry", e)))?;
    let report = match report {
        Ok(r) => r,
        Err(e) => match refusal(&e) {
            Some(why) => return Ok(again(why)),
            None => {
                return Err(ConsoleError::Internal(Internal::new(
                    "creating a practice",
                    e,
                )));
            }
        },
    };
    console.store.invalidate(&input.slug);
    let (who, subject) = (op.name.clone(), input.slug.to_string());
    console
        .run(move |conn| audit::record(conn, now, &who, "practice.create", &subject))
        .await?;
    Ok(html(
        StatusCode::OK,
        &CreatedPage {
            layout: op.layout("practices"),
            slug: input.slug.to_string(),
            name: input.display_name.clone(),
            url: format!("{}/", ctx.settings.practice_origin(input.slug.as_str())),
            setup_link: report.values.get("owner_setup_link").cloned(),
            mailed: mail,
        },
    ))
}

/// A lifecycle action of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Suspend,
    Resume,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "suspend" => Some(Self::Suspend),
            "resume" => Some(Self::Resume),
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "operator/practice_confirm.html")]
struct ConfirmPage {
    layout: Layout,
    slug: String,
    name: String,
    suspend: bool,
}

async fn practice_of(
    console: &Console,
    slug: &str,
) -> Result<Option<registry::Practice>, ConsoleError> {
    let Ok(slug) = Slug::parse(slug) else {
        return Ok(None);
    };
    let store = console.store.clone();
    kollegium_tenants::web::block(move || store.with_registry(|c| registry::find(c, slug.as_str())))
        .await
        .map_err(ConsoleError::from)?
        .map_err(|e| ConsoleError::Internal(Internal::new("registry", e)))
}

async fn confirm(
    op: Operator,
    console: web::Data<Console>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (slug, action) = path.into_inner();
    let action = Action::parse(&action).ok_or(ConsoleError::NotFound)?;
    let p = practice_of(&console, &slug)
        .await?
        .filter(|p| p.status != PracticeStatus::Deleted)
        .ok_or(ConsoleError::NotFound)?;
    Ok(html(
        StatusCode::OK,
        &ConfirmPage {
            layout: op.layout("practices"),
            slug: p.slug,
            name: p.display_name,
            suspend: action == Action::Suspend,
        },
    ))
}

async fn change(
    op: Operator,
    console: web::Data<Console>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (slug, action) = path.into_inner();
    let action = Action::parse(&action).ok_or(ConsoleError::NotFound)?;
    let slug = Slug::parse(&slug).map_err(|_| ConsoleError::NotFound)?;
    let store = console.store.clone();
    let now = console.now();
    let s = slug.clone();
    let done = kollegium_tenants::web::block(move || {
        let mut registry = store.lock_registry()?;
        let change = match action {
            Action::Suspend => Change::Suspend,
            Action::Resume => Change::Resume,
        };
        let r = practices::change(
            store.data_dir(),
            store.node_key(),
            &mut registry,
            now,
            &s,
            change,
        );
        drop(registry);
        // The running server honours the change at once: no cached registry entry, no
        // open databases of the practice are left.
        store.invalidate(&s);
        Ok::<_, kollegium_tenants::store::StoreError>(r)
    })
    .await
    .map_err(ConsoleError::from)?
    .map_err(|e| ConsoleError::Internal(Internal::new("registry", e)))?;
    match done {
        Ok(()) => {}
        Err(ProvisionError::NotFound(_)) => return Err(ConsoleError::NotFound),
        Err(ProvisionError::WrongStatus { .. }) => {
            return Ok(see_other(&format!("/practices?slug={}", slug.as_str())));
        }
        Err(e) => {
            return Err(ConsoleError::Internal(Internal::new(
                "changing a practice",
                e,
            )));
        }
    }
    let (code, done) = match action {
        Action::Suspend => ("practice.suspend", "gesperrt"),
        Action::Resume => ("practice.resume", "entsperrt"),
    };
    let (who, subject) = (op.name.clone(), slug.to_string());
    console
        .run(move |conn| audit::record(conn, now, &who, code, &subject))
        .await?;
    Ok(see_other(&format!(
        "/practices?done={done}&slug={}",
        slug.as_str()
    )))
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn practice(slug: &str, name: &str) -> Practice {
        Practice {
            slug: slug.into(),
            display_name: name.into(),
            status: PracticeStatus::Active,
            created_at: 0,
            status_changed_at: 0,
            placement: "local".into(),
            time_zone: kollegium_tenants::time::Zone::default(),
        }
    }

    #[test]
    fn the_list_pages_by_fifty_and_filters_by_slug_or_name() {
        let all: Vec<_> = (0..120)
            .map(|i| practice(&format!("praxis-{i:03}"), &format!("Praxis Nummer {i}")))
            .collect();
        let slugs = |v: Vec<Practice>| v.into_iter().map(|p| p.slug).collect::<Vec<_>>();
        let (first, total) = page_of(all.clone(), "", 1);
        assert_eq!((first.len(), total), (50, 120));
        let (last, _) = page_of(all.clone(), "", 3);
        assert_eq!(slugs(last).first().map(String::as_str), Some("praxis-100"));
        assert!(page_of(all.clone(), "", 4).0.is_empty());
        assert!(page_of(all.clone(), "", usize::MAX).0.is_empty());
        // Slug or name, any case, surrounding blanks ignored.
        let (found, total) = page_of(all.clone(), " NUMMER 11", 1);
        assert_eq!(total, 11, "11 and 110–119");
        assert_eq!(slugs(found)[0], "praxis-011");
        assert_eq!(page_of(all.clone(), "praxis-007", 1).1, 1);
        assert_eq!(page_of(all, "zahnarzt", 1).1, 0);
    }

    #[test]
    fn page_links_keep_the_filter() {
        assert_eq!(list_href("", 1), "/practices");
        assert_eq!(list_href("", 2), "/practices?seite=2");
        assert_eq!(
            list_href("Dr. Ähm & Co", 3),
            "/practices?q=Dr.+%C3%84hm+%26+Co&seite=3"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1,5 KB");
        assert_eq!(human_size(5 * 1024 * 1024), "5,0 MB");
    }

    #[test]
    fn usage_counts_database_files_and_trees_without_opening_anything() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("idp.sqlite"), vec![0u8; 100]).unwrap();
        std::fs::write(d.join("idp.sqlite-wal"), vec![0u8; 20]).unwrap();
        std::fs::write(d.join("platform.sqlite"), vec![0u8; 300]).unwrap();
        std::fs::create_dir_all(d.join("files/ab")).unwrap();
        std::fs::write(d.join("files/ab/x"), vec![0u8; 7]).unwrap();
        std::fs::write(d.join("files/y"), vec![0u8; 3]).unwrap();
        std::fs::create_dir_all(d.join("index/search")).unwrap();
        std::fs::write(d.join("index/search/seg"), vec![0u8; 11]).unwrap();
        assert_eq!(
            usage(d),
            Usage {
                idp_db: 120,
                platform_db: 300,
                files: 10,
                index: 11,
            }
        );
    }
}
