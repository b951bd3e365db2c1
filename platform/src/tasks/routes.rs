//! Tasks pages (`/tasks`): the board list, a new board with its sharing, the board page and
//! its settings (title, sharing, columns, labels, archive). Server-rendered; every action
//! is a form that works without JavaScript and answers with a redirect carrying a
//! `?done=` notice.

use actix_web::web;
use askama::Template;
use kollegium_tenants::catalog;
use kollegium_tenants::time::Zone;
use kollegium_tenants::web::{CsrfToken, Layout};

use super::board_view::{self, BoardView, Tile};
use super::boards::{self, Access, Grantee, Listed};
use super::live::{Change, Event};
use super::web::{PageError, PageResult, after_commit, html, layout, read, see_other, write};
use super::{BoardId, COLORS, ColumnId, Permission, TaskError, columns, details};
use crate::app::AppContext;
use crate::auth::Member;
use crate::members::{self, MemberId};

pub use kollegium_tenants::web::layout::initials;

/// `?done=` codes and the notice each shows.
const NOTICES: &[(&str, &str)] = &[
    ("created", "Das Board wurde angelegt."),
    ("saved", "Die Änderungen wurden gespeichert."),
    ("shared", "Die Freigabe wurde gespeichert."),
    ("archived", "Das Board wurde archiviert."),
    ("restored", "Das Board wurde wiederhergestellt."),
    ("column", "Die Spalte wurde gespeichert."),
    ("column-deleted", "Die Spalte wurde gelöscht."),
    ("label", "Das Label wurde gespeichert."),
    ("label-deleted", "Das Label wurde gelöscht."),
    ("card", "Die Karte wurde angelegt."),
    ("card-archived", "Die Karte wurde archiviert."),
];

#[derive(Debug, Default, serde::Deserialize)]
pub struct Notice {
    done: Option<String>,
}

impl Notice {
    pub fn text(&self, list: &[(&str, &'static str)]) -> Option<&'static str> {
        let d = self.done.as_deref()?;
        list.iter().find(|(k, _)| *k == d).map(|(_, v)| *v)
    }
}

#[derive(Template)]
#[template(path = "tasks/list.html")]
struct ListPage {
    layout: Layout,
    active: Vec<Listed>,
    archived: Vec<Listed>,
    notice: Option<&'static str>,
}

async fn list(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    q: web::Query<Notice>,
) -> PageResult {
    let (me, now) = (m.id(), shared.now());
    let all = read(&m, move |c| Ok(boards::list_for(c, me, now)?)).await?;
    let (archived, active) = all.into_iter().partition(|l| l.board.is_archived());
    html(&ListPage {
        layout: layout(&m, &csrf),
        active,
        archived,
        notice: q.text(NOTICES),
    })
}

/// A sharing choice as the form offers it.
pub struct ShareRow {
    /// Form field name: `practice`, `role:<id>`, `member:<id>`.
    pub field: String,
    pub label: String,
    pub current: Option<Permission>,
}

impl ShareRow {
    pub fn is(&self, p: &Permission) -> bool {
        self.current == Some(*p)
    }
}

const PERMISSIONS: [Permission; 3] = [Permission::View, Permission::Edit, Permission::Manage];

fn share_rows(list: &[Access], people: &[members::Member], me: MemberId) -> Vec<ShareRow> {
    let current = |g: &Grantee| list.iter().find(|a| &a.grantee == g).map(|a| a.permission);
    let mut rows = vec![ShareRow {
        field: "practice".into(),
        label: "Ganze Praxis".into(),
        current: current(&Grantee::Practice),
    }];
    for r in catalog::ROLES {
        rows.push(ShareRow {
            field: format!("role:{}", r.id),
            label: format!("Rolle: {}", r.label),
            current: current(&Grantee::Role(r.id.to_owned())),
        });
    }
    for p in people.iter().filter(|p| p.id != me) {
        rows.push(ShareRow {
            field: format!("member:{}", p.id.0),
            label: p.display_name.clone(),
            current: current(&Grantee::Member(p.id)),
        });
    }
    rows
}

/// The sharing of a submitted form: every `practice` / `role:<id>` / `member:<id>` field
/// with a permission (empty: not shared).
fn parse_share(form: &[(String, String)]) -> Result<Vec<Access>, TaskError> {
    let mut out = Vec::new();
    for (k, v) in form {
        let grantee = if k == "practice" {
            Grantee::Practice
        } else if let Some(r) = k.strip_prefix("role:") {
            Grantee::Role(r.to_owned())
        } else if let Some(id) = k.strip_prefix("member:") {
            Grantee::Member(MemberId(
                id.parse()
                    .map_err(|_| TaskError::Invalid("Unbekannte Person."))?,
            ))
        } else {
            continue;
        };
        if v.is_empty() {
            continue;
        }
        let p = Permission::parse(v).ok_or(TaskError::Invalid("Unbekannte Berechtigung."))?;
        out.push(Access::new(grantee, p));
    }
    Ok(out)
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[derive(Template)]
#[template(path = "tasks/new.html")]
struct NewPage {
    layout: Layout,
    share: Vec<ShareRow>,
    permissions: [Permission; 3],
}

async fn new_board(m: Member, csrf: CsrfToken) -> PageResult {
    let me = m.id();
    let people = read(&m, |c| Ok(members::list(c)?)).await?;
    let mut share = share_rows(&[], &people, me);
    if let Some(p) = share.first_mut() {
        p.current = Some(Permission::Edit);
    }
    html(&NewPage {
        layout: layout(&m, &csrf),
        share,
        permissions: PERMISSIONS,
    })
}

async fn create(
    m: Member,
    shared: web::Data<AppContext>,
    form: web::Form<Vec<(String, String)>>,
) -> PageResult {
    let (me, now) = (m.id(), shared.now());
    let form = form.into_inner();
    let access = parse_share(&form)?;
    let (title, description) = (
        field(&form, "title").to_owned(),
        field(&form, "description").to_owned(),
    );
    let id = write(&m, move |c| {
        boards::create_board(
            c,
            me,
            &title,
            &description,
            boards::DEFAULT_COLUMNS,
            &access,
            now,
        )
    })
    .await?;
    Ok(see_other(&format!("/tasks/boards/{}?done=created", id.0)))
}

#[derive(Template)]
#[template(path = "tasks/board.html")]
struct BoardPage {
    layout: Layout,
    view: BoardView,
    zone: Zone,
    now: i64,
    notice: Option<&'static str>,
    can_edit: bool,
    can_manage: bool,
}

impl BoardPage {
    fn due(&self, t: &Tile) -> String {
        t.due_at
            .map(|d| super::time::due_label(&self.zone, d, t.due_all_day))
            .unwrap_or_default()
    }
    fn overdue(&self, t: &Tile) -> bool {
        !t.done
            && t.due_at
                .is_some_and(|d| super::time::is_overdue(d, t.due_all_day, self.now))
    }
    fn initials(&self, name: &str) -> String {
        initials(name)
    }
}

async fn board(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    q: web::Query<Notice>,
) -> PageResult {
    let (board, me) = (BoardId(id.into_inner()), m.id());
    let view = read(&m, move |c| board_view::load(c, board, me)).await?;
    let archived = view.board.is_archived();
    html(&BoardPage {
        layout: layout(&m, &csrf).with_script("tasks.js"),
        can_edit: view.permission >= Permission::Edit && !archived,
        can_manage: view.permission >= Permission::Manage,
        view,
        zone: m.tenant.time_zone().clone(),
        now: shared.now(),
        notice: q.text(NOTICES),
    })
}

#[derive(Template)]
#[template(path = "tasks/settings.html")]
struct SettingsPage {
    layout: Layout,
    board: boards::Board,
    columns: Vec<columns::Column>,
    labels: Vec<details::Label>,
    share: Vec<ShareRow>,
    permissions: [Permission; 3],
    colors: &'static [(&'static str, &'static str)],
    notice: Option<&'static str>,
}

impl SettingsPage {
    fn color_name(&self, c: &str) -> &'static str {
        COLORS.iter().find(|(k, _)| *k == c).map_or("", |(_, v)| *v)
    }
}

async fn settings(
    m: Member,
    csrf: CsrfToken,
    id: web::Path<i64>,
    q: web::Query<Notice>,
) -> PageResult {
    let (board, me) = (BoardId(id.into_inner()), m.id());
    let (b, cols, labels, access, people) = read(&m, move |c| {
        let (b, perm) = boards::readable(c, board, me)?;
        if perm < Permission::Manage {
            return Err(TaskError::NotManager);
        }
        Ok((
            b,
            columns::of_board(c, board)?,
            details::labels(c, board)?,
            boards::access(c, board)?,
            members::list(c)?,
        ))
    })
    .await?;
    html(&SettingsPage {
        layout: layout(&m, &csrf),
        board: b,
        columns: cols,
        labels,
        share: share_rows(&access, &people, me),
        permissions: PERMISSIONS,
        colors: COLORS,
        notice: q.text(NOTICES),
    })
}

/// Runs a board change, publishes that the board changed, redirects with a notice.
async fn board_change(
    m: &Member,
    shared: &AppContext,
    board: BoardId,
    done: &str,
    to_settings: bool,
    f: impl FnOnce(&mut diesel::SqliteConnection) -> Result<(), TaskError> + Send + 'static,
) -> PageResult {
    let me = m.id().0;
    let ev = write(m, move |c| {
        f(c)?;
        Ok(Event::new(c, board, Change::Board, me)?)
    })
    .await?;
    after_commit(shared, m, vec![ev], false);
    let page = if to_settings { "/settings" } else { "" };
    Ok(see_other(&format!(
        "/tasks/boards/{}{page}?done={done}",
        board.0
    )))
}

async fn save_settings(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> PageResult {
    let (board, me, now) = (BoardId(id.into_inner()), m.id(), shared.now());
    let form = form.into_inner();
    let (title, description) = (
        field(&form, "title").to_owned(),
        field(&form, "description").to_owned(),
    );
    board_change(&m, &shared, board, "saved", true, move |c| {
        boards::update_board(c, board, me, &title, &description, now)
    })
    .await
}

async fn share(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> PageResult {
    let (board, me, now) = (BoardId(id.into_inner()), m.id(), shared.now());
    let access = parse_share(&form.into_inner())?;
    // Readers who lose the board get the event too (read before the change).
    let before = read(&m, move |c| {
        boards::readable(c, board, me)?;
        Ok(boards::readers(c, board)?)
    })
    .await?;
    let mut ev = write(&m, move |c| {
        boards::share(c, board, me, &access, now)?;
        Ok(Event::new(c, board, Change::Board, me.0)?)
    })
    .await?;
    for r in before {
        if !ev.audience.contains(&r.0) {
            ev.audience.push(r.0);
        }
    }
    after_commit(&shared, &m, vec![ev], false);
    Ok(see_other(&format!(
        "/tasks/boards/{}/settings?done=shared",
        board.0
    )))
}

#[derive(Template)]
#[template(path = "tasks/confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub question: String,
    pub action: String,
    pub button: &'static str,
    pub back: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct Confirm {
    confirm: Option<String>,
}

async fn archive(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    path: web::Path<(i64, String)>,
    form: web::Form<Confirm>,
) -> PageResult {
    let (id, what) = path.into_inner();
    let (board, me, now) = (BoardId(id), m.id(), shared.now());
    let archived = match what.as_str() {
        "archive" => true,
        "restore" => false,
        _ => return Err(TaskError::BoardNotFound.into()),
    };
    if archived && form.confirm.as_deref() != Some("1") {
        let b = read(&m, move |c| {
            let (b, perm) = boards::readable(c, board, me)?;
            if perm < Permission::Manage {
                return Err(TaskError::NotManager);
            }
            Ok(b)
        })
        .await?;
        return html(&ConfirmPage {
            layout: layout(&m, &csrf),
            question: format!("Board „{}“ wirklich archivieren?", b.title),
            action: format!("/tasks/boards/{id}/archive"),
            button: "Ja, archivieren",
            back: format!("/tasks/boards/{id}/settings"),
        });
    }
    let done = if archived { "archived" } else { "restored" };
    board_change(&m, &shared, board, done, false, move |c| {
        boards::set_archived(c, board, me, archived, now)
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
pub struct ColumnForm {
    title: String,
    done: Option<String>,
    position: Option<i64>,
}

async fn add_column(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: web::Form<ColumnForm>,
) -> PageResult {
    let (board, me, now) = (BoardId(id.into_inner()), m.id(), shared.now());
    let f = form.into_inner();
    board_change(&m, &shared, board, "column", true, move |c| {
        columns::add(c, board, me, &f.title, f.done.is_some(), now).map(|_| ())
    })
    .await
}

async fn column_of(m: &Member, column: ColumnId) -> Result<(BoardId, columns::Column), PageError> {
    let me = m.id();
    read(m, move |c| {
        let col = columns::by_id(c, column)?.ok_or(TaskError::ColumnNotFound)?;
        let board = BoardId(col.board_id);
        boards::permission(c, board, me)?.ok_or(TaskError::ColumnNotFound)?;
        Ok((board, col))
    })
    .await
}

async fn update_column(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: web::Form<ColumnForm>,
) -> PageResult {
    let (column, me, now) = (ColumnId(id.into_inner()), m.id(), shared.now());
    let (board, _) = column_of(&m, column).await?;
    let f = form.into_inner();
    board_change(&m, &shared, board, "column", true, move |c| {
        columns::update(c, column, me, &f.title, f.done.is_some(), now)?;
        if let Some(p) = f.position {
            columns::reorder(c, column, me, p.saturating_sub(1))?;
        }
        Ok(())
    })
    .await
}

async fn delete_column(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: web::Form<Confirm>,
) -> PageResult {
    let (column, me) = (ColumnId(id.into_inner()), m.id());
    let (board, col) = column_of(&m, column).await?;
    if form.confirm.as_deref() != Some("1") {
        return html(&ConfirmPage {
            layout: layout(&m, &csrf),
            question: format!("Spalte „{}“ wirklich löschen?", col.title),
            action: format!("/tasks/columns/{}/delete", column.0),
            button: "Ja, löschen",
            back: format!("/tasks/boards/{}/settings", board.0),
        });
    }
    board_change(&m, &shared, board, "column-deleted", true, move |c| {
        columns::delete(c, column, me).map(|_| ())
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
pub struct LabelForm {
    name: String,
    color: String,
}

async fn add_label(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: web::Form<LabelForm>,
) -> PageResult {
    let (board, me) = (BoardId(id.into_inner()), m.id());
    let f = form.into_inner();
    board_change(&m, &shared, board, "label", true, move |c| {
        details::add_label(c, board, me, &f.name, &f.color).map(|_| ())
    })
    .await
}

async fn delete_label(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    path: web::Path<(i64, i64)>,
    form: web::Form<Confirm>,
) -> PageResult {
    let (id, label) = path.into_inner();
    let (board, me) = (BoardId(id), m.id());
    if form.confirm.as_deref() != Some("1") {
        let l = read(&m, move |c| {
            boards::writable(c, board, me, Permission::Manage)?;
            details::labels(c, board)?
                .into_iter()
                .find(|l| l.id == label)
                .ok_or(TaskError::ItemNotFound)
        })
        .await?;
        return html(&ConfirmPage {
            layout: layout(&m, &csrf),
            question: format!(
                "Label „{}“ wirklich löschen? Es wird von allen Karten entfernt.",
                l.name
            ),
            action: format!("/tasks/boards/{id}/labels/{label}/delete"),
            button: "Ja, löschen",
            back: format!("/tasks/boards/{id}/settings"),
        });
    }
    board_change(&m, &shared, board, "label-deleted", true, move |c| {
        details::delete_label(c, board, me, label)
    })
    .await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks", web::get().to(list))
        .route("/tasks/new", web::get().to(new_board))
        .route("/tasks/mine", web::get().to(super::mine::page))
        .route("/tasks/boards", web::post().to(create))
        .route("/tasks/boards/{id}", web::get().to(board))
        .route("/tasks/boards/{id}/settings", web::get().to(settings))
        .route("/tasks/boards/{id}/settings", web::post().to(save_settings))
        .route("/tasks/boards/{id}/share", web::post().to(share))
        .route("/tasks/boards/{id}/columns", web::post().to(add_column))
        .route("/tasks/boards/{id}/labels", web::post().to(add_label))
        .route(
            "/tasks/boards/{id}/labels/{label}/delete",
            web::post().to(delete_label),
        )
        .route(
            "/tasks/boards/{id}/cards",
            web::post().to(super::card_routes::create),
        )
        .route("/tasks/boards/{id}/{what}", web::post().to(archive))
        .route("/tasks/columns/{id}", web::post().to(update_column))
        .route("/tasks/columns/{id}/delete", web::post().to(delete_column));
    super::card_routes::configure(cfg);
}
