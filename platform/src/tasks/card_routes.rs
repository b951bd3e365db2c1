//! The card page (`/tasks/cards/{id}`) and its forms: edit title, description and due date,
//! move ("Verschieben nach"), done, assignees, labels, checklist, comments with @-mentions
//! (mailed as "Sie wurden in einer Aufgabe erwähnt" with a link and no content), history,
//! archive and restore.

use actix_web::web;
use askama::Template;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::mail::{NewMail, queue};
use kollegium_tenants::time::Zone;
use kollegium_tenants::web::{CsrfToken, Layout, WebContext};

use super::cards::{self, Card, CardChange, NewCard};
use super::details::{self, Comment, Item, Label};
use super::live::{Change, Event};
use super::routes::{Notice, initials};
use super::web::{PageResult, after_commit, html, layout, read, see_other, write};
use super::{BoardId, CardId, ColumnId, Permission, TaskError, boards, columns};
use crate::app::AppContext;
use crate::auth::Member;
use crate::members::{self, MemberId};
use crate::schema::{
    members as members_t, task_card_assignees, task_card_events, task_card_labels,
};

const NOTICES: &[(&str, &str)] = &[
    ("saved", "Die Karte wurde gespeichert."),
    ("moved", "Die Karte wurde verschoben."),
    ("archived", "Die Karte wurde archiviert."),
    ("restored", "Die Karte wurde wiederhergestellt."),
    ("comment", "Der Kommentar wurde gespeichert."),
    ("checklist", "Die Checkliste wurde gespeichert."),
    ("attached", "Die Datei wurde geprüft und angehängt."),
    ("detached", "Der Anhang wurde gelöscht."),
];

/// A history row as shown.
pub struct HistoryRow {
    pub who: String,
    pub text: String,
    pub at: i64,
}

/// The card's history in German words.
fn describe(what: &str, detail: &serde_json::Value, names: &dyn Fn(i64) -> String) -> String {
    let s = |k: &str| {
        detail
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    match what {
        "created" => format!("hat die Karte in „{}“ angelegt", s("column")),
        "moved" => format!(
            "hat die Karte von „{}“ nach „{}“ verschoben",
            s("from"),
            s("to")
        ),
        "title" => format!("hat den Titel in „{}“ geändert", s("to")),
        "description" => "hat die Beschreibung geändert".into(),
        "due" => "hat das Fälligkeitsdatum geändert".into(),
        "assigned" => format!(
            "hat {} zugewiesen",
            names(detail.get("member").and_then(|v| v.as_i64()).unwrap_or(0))
        ),
        "unassigned" => format!(
            "hat {} entfernt",
            names(detail.get("member").and_then(|v| v.as_i64()).unwrap_or(0))
        ),
        super::leavers::LEFT => "hat die Praxis verlassen und ist nicht mehr zugewiesen".into(),
        "labels" => "hat die Labels geändert".into(),
        "checklist" => "hat die Checkliste geändert".into(),
        "comment" => "hat kommentiert".into(),
        "done" if detail.get("done").and_then(|v| v.as_bool()) == Some(true) => {
            "hat die Karte erledigt".into()
        }
        "done" => "hat die Karte wieder geöffnet".into(),
        "attachment" => format!("hat die Datei „{}“ angehängt", s("name")),
        "attachment_deleted" => format!("hat den Anhang „{}“ gelöscht", s("name")),
        "archived" => "hat die Karte archiviert".into(),
        "restored" => "hat die Karte wiederhergestellt".into(),
        other => other.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "tasks/card.html")]
struct CardPage {
    layout: Layout,
    card: Card,
    board: boards::Board,
    column_title: String,
    columns: Vec<columns::Column>,
    /// Cards in the card's column (for the position choice).
    column_size: i64,
    description_html: String,
    labels: Vec<Label>,
    card_labels: Vec<i64>,
    people: Vec<members::Member>,
    assignees: Vec<i64>,
    items: Vec<Item>,
    comments: Vec<Comment>,
    history: Vec<HistoryRow>,
    attachments: Vec<super::attachments::Listed>,
    /// The largest upload, as shown.
    max_upload: String,
    zone: Zone,
    now: UnixTime,
    me: i64,
    can_edit: bool,
    can_manage: bool,
    notice: Option<&'static str>,
}

impl CardPage {
    fn when(&self, t: &i64) -> String {
        self.zone.format_relative(*t, self.now)
    }
    fn due_date(&self) -> String {
        self.card
            .due_at
            .map(|d| super::time::date_value(&self.zone, d))
            .unwrap_or_default()
    }
    fn due_time(&self) -> String {
        self.card
            .due_at
            .map(|d| super::time::time_value(&self.zone, d, self.card.due_all_day))
            .unwrap_or_default()
    }
    fn due_label(&self) -> String {
        self.card
            .due_at
            .map(|d| super::time::due_label(&self.zone, d, self.card.due_all_day))
            .unwrap_or_default()
    }
    fn overdue(&self) -> bool {
        self.card.done_at.is_none()
            && self
                .card
                .due_at
                .is_some_and(|d| super::time::is_overdue(d, self.card.due_all_day, self.now))
    }
    fn comment_html(&self, body: &str) -> String {
        crate::markdown::render(body, &|_| false)
    }
    fn initials(&self, name: &str) -> String {
        initials(name)
    }
    fn may_delete(&self, author: &Option<i64>) -> bool {
        self.can_manage || *author == Some(self.me)
    }
    fn items_done(&self) -> usize {
        self.items.iter().filter(|i| i.done_at.is_some()).count()
    }
}

async fn page(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    q: web::Query<Notice>,
) -> PageResult {
    let (card, me) = (CardId(id.into_inner()), m.id());
    let d = read(&m, move |c| load(c, card, me)).await?;
    let editable = d.perm >= Permission::Edit && !d.board.is_archived();
    html(&CardPage {
        layout: layout(&m, &csrf),
        description_html: crate::markdown::render(&d.card.description, &|_| false),
        can_edit: editable,
        can_manage: d.perm >= Permission::Manage,
        card: d.card,
        board: d.board,
        column_title: d.column_title,
        columns: d.columns,
        column_size: d.column_size,
        labels: d.labels,
        card_labels: d.card_labels,
        people: d.people,
        assignees: d.assignees,
        items: d.items,
        comments: d.comments,
        history: d.history,
        attachments: d.attachments,
        max_upload: super::attachments::size_label(shared.files.settings.max_file_bytes),
        zone: m.tenant.time_zone().clone(),
        now: shared.now(),
        me: me.0,
        notice: q.text(NOTICES),
    })
}

/// What the card page shows, read in one go.
struct CardData {
    card: Card,
    perm: Permission,
    board: boards::Board,
    columns: Vec<columns::Column>,
    column_title: String,
    column_size: i64,
    labels: Vec<Label>,
    card_labels: Vec<i64>,
    people: Vec<members::Member>,
    assignees: Vec<i64>,
    items: Vec<Item>,
    comments: Vec<Comment>,
    history: Vec<HistoryRow>,
    attachments: Vec<super::attachments::Listed>,
}

fn load(c: &mut SqliteConnection, card: CardId, me: MemberId) -> Result<CardData, TaskError> {
    use crate::schema::task_cards;
    let (card_row, perm) = cards::readable(c, card, me)?;
    let board = boards::by_id(c, card_row.board())?.ok_or(TaskError::CardNotFound)?;
    let cols = columns::of_board(c, card_row.board())?;
    let column_size: i64 = task_cards::table
        .filter(task_cards::column_id.eq(card_row.column_id))
        .filter(task_cards::archived_at.is_null())
        .count()
        .get_result(c)?;
    let card_labels = task_card_labels::table
        .filter(task_card_labels::card_id.eq(card.0))
        .select(task_card_labels::label_id)
        .load(c)?;
    let assignees = task_card_assignees::table
        .filter(task_card_assignees::card_id.eq(card.0))
        .select(task_card_assignees::member_id)
        .load(c)?;
    type EventRow = (Option<i64>, Option<String>, String, String, i64);
    let events: Vec<EventRow> = task_card_events::table
        .left_join(members_t::table.on(members_t::id.nullable().eq(task_card_events::actor_id)))
        .filter(task_card_events::card_id.eq(card.0))
        .order(task_card_events::id.desc())
        .limit(200)
        .select((
            task_card_events::actor_id,
            members_t::display_name.nullable(),
            task_card_events::what,
            task_card_events::detail,
            task_card_events::at,
        ))
        .load(c)?;
    let names: Vec<(i64, String)> = members_t::table
        .select((members_t::id, members_t::display_name))
        .load(c)?;
    let name_of = |id: i64| {
        names
            .iter()
            .find(|(i, _)| *i == id)
            .map_or_else(|| "ein ehemaliges Mitglied".to_owned(), |(_, n)| n.clone())
    };
    let history = events
        .into_iter()
        .map(|(actor, name, what, detail, at)| {
            let detail: serde_json::Value =
                serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null);
            HistoryRow {
                who: match (actor, name) {
                    (None, _) => "Automatisch".into(),
                    (Some(_), Some(n)) => n,
                    (Some(_), None) => "Ehemaliges Mitglied".into(),
                },
                text: describe(&what, &detail, &name_of),
                at,
            }
        })
        .collect();
    let column_title = cols
        .iter()
        .find(|x| x.id == card_row.column_id)
        .map(|x| x.title.clone())
        .unwrap_or_default();
    Ok(CardData {
        labels: details::labels(c, card_row.board())?,
        items: details::checklist(c, card)?,
        comments: details::comments(c, card)?,
        attachments: super::attachments::list(c, card)?,
        people: members::list(c)?,
        card: card_row,
        perm,
        board,
        columns: cols,
        column_title,
        column_size,
        card_labels,
        assignees,
        history,
    })
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn ids(form: &[(String, String)], name: &str) -> Result<Vec<i64>, TaskError> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| {
            v.parse()
                .map_err(|_| TaskError::Invalid("Ungültige Auswahl."))
        })
        .collect()
}

fn number(form: &[(String, String)], name: &str) -> Result<i64, TaskError> {
    field(form, name)
        .trim()
        .parse()
        .map_err(|_| TaskError::Invalid("Ungültige Zahl."))
}

/// Creates a card from the board page's form (`title`, `column`).
pub async fn create(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: web::Form<Vec<(String, String)>>,
) -> PageResult {
    let (board, me, now) = (BoardId(id.into_inner()), m.id(), shared.now());
    let form = form.into_inner();
    let column = match field(&form, "column") {
        "" => None,
        _ => Some(ColumnId(number(&form, "column")?)),
    };
    let new = NewCard {
        title: field(&form, "title").to_owned(),
        ..NewCard::default()
    };
    let (card, ev) = write(&m, move |c| {
        boards::writable(c, board, me, Permission::Edit)?;
        let card = cards::create_card(c, board, column, Some(me), &new, now)?;
        Ok((
            card,
            Event::new(c, board, Change::Card { card: card.0 }, me.0)?,
        ))
    })
    .await?;
    after_commit(&shared, &m, vec![ev], false);
    Ok(see_other(&format!(
        "/tasks/boards/{}?done=card#card-{}",
        board.0, card.0
    )))
}

/// Where a mention mail links and what it names.
struct MailCtx {
    origin: String,
    practice: String,
}

/// Queues "Sie wurden in einer Aufgabe erwähnt" for each mentioned member who takes mention
/// mails (a link, no content), in the comment's transaction.
fn mail_mentions(
    c: &mut SqliteConnection,
    ctx: &MailCtx,
    card: CardId,
    mentioned: &[MemberId],
    now: UnixTime,
) -> Result<bool, TaskError> {
    let mut queued = false;
    for m in mentioned {
        let Some(who) = members::by_id(c, *m)? else {
            continue;
        };
        if who.is_deactivated() || !who.mention_mail || who.email.trim().is_empty() {
            continue;
        }
        let link = format!("{}/tasks/cards/{}", ctx.origin, card.0);
        let practice = crate::notify::mentions::plain(&ctx.practice, 120);
        let text =
            format!("Guten Tag,\n\nSie wurden in einer Aufgabe erwähnt ({practice}).\n\n{link}\n");
        let mut esc_link = String::new();
        crate::markdown::escape(&link, &mut esc_link);
        let mut esc_practice = String::new();
        crate::markdown::escape(&practice, &mut esc_practice);
        let html = format!(
            "<p>Guten Tag,</p><p>Sie wurden in einer Aufgabe erwähnt ({esc_practice}).</p>\
             <p><a href=\"{esc_link}\">Aufgabe öffnen</a></p>"
        );
        queue::enqueue(
            c,
            now,
            &NewMail {
                kind: "tasks.mention",
                recipient: &who.email,
                subject: "Sie wurden in einer Aufgabe erwähnt",
                text: &text,
                html: &html,
            },
        )?;
        queued = true;
    }
    Ok(queued)
}

/// One of the card page's forms (`/tasks/cards/{id}/{action}`).
async fn act(
    m: Member,
    shared: web::Data<AppContext>,
    web_ctx: web::Data<WebContext>,
    path: web::Path<(i64, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> PageResult {
    let (id, action) = path.into_inner();
    let (card, me, now) = (CardId(id), m.id(), shared.now());
    let form = form.into_inner();
    let zone = m.tenant.time_zone().clone();
    let ctx = MailCtx {
        origin: web_ctx.settings.practice_origin(m.tenant.slug().as_str()),
        practice: m.tenant.display_name().to_owned(),
    };
    let (done, ev, mailed) = write(&m, move |c| {
        let before = cards::readable(c, card, me)?.0;
        let mut change = Change::Card { card: card.0 };
        let mut mailed = false;
        let done = match action.as_str() {
            "edit" => {
                let due = super::time::parse_due(
                    &zone,
                    field(&form, "due_date"),
                    field(&form, "due_time"),
                )?;
                let ch = CardChange {
                    title: Some(field(&form, "title").to_owned()),
                    description: Some(field(&form, "description").to_owned()),
                    due: Some(due),
                };
                cards::update_card(c, card, me, &ch, now)?;
                "saved"
            }
            "move" => {
                let col = ColumnId(number(&form, "column")?);
                let pos = number(&form, "position")?.saturating_sub(1);
                let moved = cards::move_card(c, card, me, col, pos, now)?;
                change = Change::Moved {
                    card: card.0,
                    column: moved.to_column,
                    position: moved.position,
                };
                "moved"
            }
            "done" | "reopen" => {
                if let Some(moved) = cards::set_done(c, card, me, action == "done", now)? {
                    change = Change::Moved {
                        card: card.0,
                        column: moved.to_column,
                        position: moved.position,
                    };
                }
                "saved"
            }
            "assignees" => {
                let list: Vec<MemberId> = ids(&form, "member")?.into_iter().map(MemberId).collect();
                cards::set_assignees(c, card, me, &list, now)?;
                "saved"
            }
            "labels" => {
                cards::set_labels(c, card, me, &ids(&form, "label")?, now)?;
                "saved"
            }
            "items" => {
                details::add_items(c, card, Some(me), field(&form, "text"), now)?;
                "checklist"
            }
            "item-tick" => {
                let on = field(&form, "done") == "1";
                details::tick_item(c, card, me, number(&form, "item")?, on, now)?;
                "checklist"
            }
            "item-delete" => {
                details::delete_item(c, card, me, number(&form, "item")?, now)?;
                "checklist"
            }
            "comment" => {
                let sent = details::add_comment(c, card, me, field(&form, "body"), now)?;
                mailed = mail_mentions(c, &ctx, card, &sent.mentioned, now)?;
                "comment"
            }
            "comment-delete" => {
                details::delete_comment(c, card, me, number(&form, "comment")?, now)?;
                "comment"
            }
            "archive" => {
                cards::set_archived(c, card, me, true, now)?;
                "archived"
            }
            "restore" => {
                cards::set_archived(c, card, me, false, now)?;
                "restored"
            }
            _ => return Err(TaskError::CardNotFound),
        };
        let ev = Event::new(c, before.board(), change, me.0)?;
        Ok((done, ev, mailed))
    })
    .await?;
    after_commit(&shared, &m, vec![ev], mailed);
    Ok(see_other(&format!("/tasks/cards/{}?done={done}", card.0)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/cards/{id}", web::get().to(page))
        .route("/tasks/cards/{id}/{action}", web::post().to(act));
}
