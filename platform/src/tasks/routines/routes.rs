//! The routines' pages (German, server-rendered, no JavaScript needed), at fixed paths that
//! do not clash with the boards' `/tasks/boards/{id}`:
//!
//! - `GET/POST /tasks/routines/boards/{board}`: "Wiederkehrende Aufgaben" of a board (list,
//!   new series with a rule form that reads as a German sentence);
//!   `POST /tasks/routines/{id}/{pause|resume|end}`; ending asks first ("Routine wirklich
//!   beenden?", `GET /tasks/routines/{id}/end` or the POST without `confirm=1`).
//! - `GET/POST /tasks/templates/boards/{board}`: card and checklist templates;
//!   `POST /tasks/templates/{id}/card` ("Neue Karte aus Vorlage"),
//!   `POST /tasks/templates/{id}/checklist` (`card=<id>`: "Checkliste aus Vorlage
//!   einfügen"), `POST /tasks/templates/{id}/delete` (asks first without `confirm=1`).
//! - `GET/POST /tasks/routines/settings`: the member's reminder mails.
//!
//! Reading needs read access to the board, every change `Edit` on a board that is not
//! archived; someone without access gets the same 404 as for an unknown id.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;
use diesel::SqliteConnection;
use kollegium_tenants::time::Zone;
use kollegium_tenants::web::{CsrfToken, ErrorPage, Layout};

use super::RoutineError;
use super::holidays::{Region, State};
use super::reminders::{self, LEADS, Setting};
use super::rule::{Day, MonthDay, QuarterDay, Recurrence, Rule, TimeOfDay};
use super::series::{self, Action, Mode, NewSeries, Series, SeriesId};
use super::templates::{self, Kind, NewTemplate, Template as TaskTemplate};
use crate::PLATFORM_DB;
use crate::app::AppContext;
use crate::auth::Member;
use crate::members::{self, MemberId};
use crate::tasks::details::{self, Label};
use crate::tasks::{BoardId, CardId, ColumnId, Permission, TaskError, boards, cards, columns};

/// Errors of the routines' pages.
#[derive(Debug)]
pub struct PageError(RoutineError);

impl From<RoutineError> for PageError {
    fn from(e: RoutineError) -> Self {
        Self(e)
    }
}

impl From<TaskError> for PageError {
    fn from(e: TaskError) -> Self {
        Self(e.into())
    }
}

impl From<super::rule::RuleError> for PageError {
    fn from(e: super::rule::RuleError) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn internal<E: Into<crate::error::BoxError>>(e: E) -> PageError {
    PageError(crate::error::Internal::new("tasks routines request", e).into())
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.0.status();
        if status >= 500 {
            crate::error::log_5xx("tasks routines request failed", &self.0);
            return ErrorPage::new(500).response();
        }
        if status == 404 {
            return ErrorPage::new(404).response();
        }
        let mut page = ErrorPage::new(status);
        page.message = self.0.to_string().into();
        page.response()
    }
}

type PageResult = Result<HttpResponse, PageError>;

fn html(t: &impl Template) -> PageResult {
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::html())
        .body(t.render().map_err(internal)?))
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to.to_owned()))
        .finish()
}

async fn read<T: Send + 'static>(
    m: &Member,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, RoutineError> + Send + 'static,
) -> Result<T, PageError> {
    let t = m.tenant.clone();
    kollegium_tenants::web::block(move || {
        let mut conn = t.conn(&PLATFORM_DB).map_err(internal)?;
        f(&mut conn).map_err(PageError)
    })
    .await
    .map_err(internal)?
}

/// A write in one `BEGIN IMMEDIATE` transaction; afterwards the jobs it queued (the new
/// card's search document, recur and reminder jobs) are poked.
async fn write<T: Send + 'static>(
    m: &Member,
    shared: &AppContext,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, RoutineError> + Send + 'static,
) -> Result<T, PageError> {
    use kollegium_tenants::group_commit::WriteError;
    let out = m.tenant.write(&PLATFORM_DB, f).await.map_err(|e| match e {
        WriteError::Job(e) => PageError(e),
        WriteError::Db(why) => internal(format!("group commit: {why}")),
    })?;
    let slug = m.tenant.slug().as_str();
    shared.search.kick_str(slug);
    shared.jobs.poke_str(slug, &PLATFORM_DB);
    Ok(out)
}

type Form = web::Form<Vec<(String, String)>>;

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn all<'a>(form: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    form.iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn ids(form: &[(String, String)], name: &str) -> Result<Vec<i64>, RoutineError> {
    all(form, name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|_| RoutineError::Invalid("Unbekannte Auswahl."))
        })
        .collect()
}

fn number(form: &[(String, String)], name: &str) -> Result<u32, RoutineError> {
    field(form, name)
        .trim()
        .parse()
        .map_err(|_| RoutineError::Invalid("Bitte eine Zahl angeben."))
}

/// The rule form as a recurrence: `freq` and the fields that belong to it.
fn parse_rule(
    form: &[(String, String)],
    today: jiff::civil::Date,
) -> Result<Recurrence, RoutineError> {
    let rule = match field(form, "freq") {
        "daily" => Rule::Daily {
            every: number(form, "every_days")?,
        },
        "weekly" => Rule::Weekly {
            every: number(form, "every_weeks")?,
            days: all(form, "days")
                .map(|d| Day::parse(d).ok_or(RoutineError::Invalid("Unbekannter Wochentag.")))
                .collect::<Result<_, _>>()?,
        },
        "monthly" => Rule::Monthly {
            on: match field(form, "month_on") {
                "day" => MonthDay::Day(number(form, "month_day")?),
                "first_working_day" => MonthDay::FirstWorkingDay,
                "last_working_day" => MonthDay::LastWorkingDay,
                _ => return Err(RoutineError::Invalid("Welcher Tag des Monats?")),
            },
        },
        "quarterly" => Rule::Quarterly {
            on: match field(form, "quarter_on") {
                "days_before_end" => QuarterDay::DaysBeforeEnd(number(form, "quarter_offset")?),
                "first_working_day" => QuarterDay::FirstWorkingDay,
                "last_working_day" => QuarterDay::LastWorkingDay,
                _ => return Err(RoutineError::Invalid("Welcher Tag des Quartals?")),
            },
        },
        "yearly" => Rule::Yearly {
            month: number(form, "year_month")?,
            day: number(form, "year_day")?,
        },
        _ => {
            return Err(RoutineError::Invalid(
                "Wie oft soll die Aufgabe wiederkehren?",
            ));
        }
    };
    // A state, or a part of one with holidays of its own.
    let (holidays, region) = match field(form, "holidays").trim() {
        "" => (None, None),
        code => match (State::parse(code), Region::parse(code)) {
            (Some(s), _) => (Some(s), None),
            (None, Some(r)) => (None, Some(r)),
            (None, None) => return Err(RoutineError::Invalid("Unbekanntes Bundesland.")),
        },
    };
    let start = match field(form, "start").trim() {
        "" => today,
        s => s.parse().map_err(|_| super::rule::RuleError::Start)?,
    };
    let recurrence = Recurrence::new(rule, holidays, start)?;
    Ok(match region {
        Some(r) => recurrence.in_region(r),
        None => recurrence,
    })
}

fn today(zone: &Zone, now: i64) -> jiff::civil::Date {
    jiff::Timestamp::from_second(now)
        .map(|t| zone.time_zone().to_datetime(t).date())
        .unwrap_or(jiff::civil::Date::MIN)
}

#[derive(serde::Deserialize)]
pub struct Notice {
    done: Option<String>,
}

const NOTICES: &[(&str, &str)] = &[
    ("created", "Die Serie wurde angelegt."),
    ("pause", "Die Serie ist pausiert."),
    ("resume", "Die Serie läuft wieder."),
    ("end", "Die Serie ist beendet."),
    ("template", "Die Vorlage wurde gespeichert."),
    ("deleted", "Die Vorlage wurde gelöscht."),
    ("settings", "Ihre Einstellung wurde gespeichert."),
];

impl Notice {
    fn text(&self) -> Option<&'static str> {
        let d = self.done.as_deref()?;
        NOTICES.iter().find(|(k, _)| *k == d).map(|(_, v)| *v)
    }
}

/// A series as the list shows it.
pub struct SeriesRow {
    pub series: Series,
    pub rule: String,
    pub next: String,
    pub mode: &'static str,
}

#[derive(Template)]
#[template(path = "tasks/routines/series.html")]
struct SeriesPage {
    layout: Layout,
    board: boards::Board,
    rows: Vec<SeriesRow>,
    columns: Vec<columns::Column>,
    labels: Vec<Label>,
    people: Vec<members::Member>,
    days: &'static [Day],
    states: &'static [State],
    regions: &'static [Region],
    today: String,
    can_edit: bool,
    notice: Option<&'static str>,
}

async fn series_page(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    q: web::Query<Notice>,
) -> PageResult {
    let (board, me) = (BoardId(id.into_inner()), m.id());
    let zone = m.tenant.time_zone().clone();
    let z = zone.clone();
    let (b, perm, list, cols, labels, people) = read(&m, move |c| {
        let (b, perm) = boards::readable(c, board, me)?;
        Ok((
            b,
            perm,
            series::of_board(c, board)?,
            columns::of_board(c, board)?,
            details::labels(c, board)?,
            members::list(c)?,
        ))
    })
    .await?;
    let rows = list
        .into_iter()
        .map(|s| SeriesRow {
            rule: s.describe(),
            next: s
                .next_due_at
                .filter(|_| s.ended_at.is_none())
                .map_or_else(|| "–".to_owned(), |t| z.format(t)),
            mode: s.mode().label(),
            series: s,
        })
        .collect();
    html(&SeriesPage {
        layout: crate::shell::page(&m, &csrf, crate::tasks::APP),
        can_edit: perm >= Permission::Edit && !b.is_archived(),
        board: b,
        rows,
        columns: cols,
        labels,
        people,
        days: &Day::ALL,
        states: &State::ALL,
        regions: &Region::ALL,
        today: today(&zone, shared.now()).to_string(),
        notice: q.text(),
    })
}

async fn create_series(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    let (board, me, now) = (BoardId(id.into_inner()), m.id(), shared.now());
    let zone = m.tenant.time_zone().clone();
    let form = form.into_inner();
    let new = NewSeries {
        board,
        column: match field(&form, "column") {
            "" => None,
            c => Some(ColumnId(
                c.parse()
                    .map_err(|_| RoutineError::Invalid("Unbekannte Spalte."))?,
            )),
        },
        title: field(&form, "title").to_owned(),
        description: field(&form, "description").to_owned(),
        checklist: field(&form, "checklist")
            .lines()
            .map(str::to_owned)
            .collect(),
        assignees: ids(&form, "assignees")?.into_iter().map(MemberId).collect(),
        labels: ids(&form, "labels")?,
        recurrence: parse_rule(&form, today(&zone, now))?,
        at: TimeOfDay::parse(field(&form, "time"))?,
        mode: Mode::parse(field(&form, "mode")).ok_or(RoutineError::Invalid(
            "Wann soll die nächste Karte entstehen?",
        ))?,
    };
    let event = write(&m, &shared, move |c| {
        boards::writable(c, board, me, Permission::Edit)?;
        check_people(c, &new)?;
        let (_, card) = series::create(c, &new, me, &zone, now)?;
        match card {
            Some(card) => Ok(super::jobs::card_event(c, card)?),
            None => Ok(None),
        }
    })
    .await?;
    publish(&shared, &m, event);
    Ok(see_other(&format!(
        "/tasks/routines/boards/{}?done=created",
        board.0
    )))
}

/// Assignees must be active members and labels of the board (checked again per instance).
fn check_people(c: &mut SqliteConnection, new: &NewSeries) -> Result<(), RoutineError> {
    if new.assignees.len() > 100 || new.labels.len() > 100 {
        return Err(TaskError::TooMany.into());
    }
    let active: Vec<MemberId> = members::list(c)?.into_iter().map(|m| m.id).collect();
    if new.assignees.iter().any(|a| !active.contains(a)) {
        return Err(RoutineError::Invalid("Unbekannte Person."));
    }
    let labels: Vec<i64> = details::labels(c, new.board)?
        .into_iter()
        .map(|l| l.id)
        .collect();
    if new.labels.iter().any(|l| !labels.contains(l)) {
        return Err(RoutineError::Invalid("Unbekanntes Label."));
    }
    Ok(())
}

/// The series `id` if `me` may change it (`Edit` on its board, not archived); a series on a
/// board they cannot see is as unknown as one that does not exist.
fn editable_series(
    c: &mut SqliteConnection,
    id: SeriesId,
    me: MemberId,
) -> Result<Series, RoutineError> {
    let s = series::by_id(c, id)?.ok_or(RoutineError::SeriesNotFound)?;
    match boards::writable(c, s.board(), me, Permission::Edit) {
        Err(TaskError::BoardNotFound) => Err(RoutineError::SeriesNotFound),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(s),
    }
}

/// "Routine wirklich beenden?": the question before a series ends (a GET of the action's
/// path, or its POST without `confirm=1`). Changes nothing.
async fn ask_end(m: &Member, csrf: &CsrfToken, id: i64) -> PageResult {
    let me = m.id();
    let s = read(m, move |c| {
        let s = editable_series(c, SeriesId(id), me)?;
        if s.ended_at.is_some() {
            return Err(RoutineError::Ended);
        }
        Ok(s)
    })
    .await?;
    html(&crate::tasks::routes::ConfirmPage {
        layout: crate::shell::page(m, csrf, crate::tasks::APP),
        question: format!(
            "Routine „{}“ wirklich beenden? Es werden keine neuen Karten mehr erzeugt.",
            s.title
        ),
        action: format!("/tasks/routines/{id}/end"),
        button: "Ja, beenden",
        back: format!("/tasks/routines/boards/{}#series-{id}", s.board_id),
    })
}

async fn end_page(m: Member, csrf: CsrfToken, id: web::Path<i64>) -> PageResult {
    ask_end(&m, &csrf, id.into_inner()).await
}

async fn act_series(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    path: web::Path<(i64, String)>,
    form: Form,
) -> PageResult {
    let (id, what) = path.into_inner();
    let action = Action::parse(&what).ok_or(RoutineError::SeriesNotFound)?;
    if action == Action::End && field(&form, "confirm") != "1" {
        return ask_end(&m, &csrf, id).await;
    }
    let (me, now) = (m.id(), shared.now());
    let board = write(&m, &shared, move |c| {
        let s = editable_series(c, SeriesId(id), me)?;
        series::act(c, SeriesId(id), action, now)?;
        Ok(s.board_id)
    })
    .await?;
    Ok(see_other(&format!(
        "/tasks/routines/boards/{board}?done={what}"
    )))
}

#[derive(Template)]
#[template(path = "tasks/routines/templates.html")]
struct TemplatesPage {
    layout: Layout,
    board: boards::Board,
    list: Vec<TaskTemplate>,
    labels: Vec<Label>,
    can_edit: bool,
    notice: Option<&'static str>,
}

async fn templates_page(
    m: Member,
    csrf: CsrfToken,
    id: web::Path<i64>,
    q: web::Query<Notice>,
) -> PageResult {
    let (board, me) = (BoardId(id.into_inner()), m.id());
    let (b, perm, list, labels) = read(&m, move |c| {
        let (b, perm) = boards::readable(c, board, me)?;
        Ok((
            b,
            perm,
            templates::of_board(c, board)?,
            details::labels(c, board)?,
        ))
    })
    .await?;
    html(&TemplatesPage {
        layout: crate::shell::page(&m, &csrf, crate::tasks::APP),
        can_edit: perm >= Permission::Edit && !b.is_archived(),
        board: b,
        list,
        labels,
        notice: q.text(),
    })
}

async fn create_template(
    m: Member,
    shared: web::Data<AppContext>,
    id: web::Path<i64>,
    form: Form,
) -> PageResult {
    let (board, me, now) = (BoardId(id.into_inner()), m.id(), shared.now());
    let form = form.into_inner();
    let t = NewTemplate {
        board,
        kind: Kind::parse(field(&form, "kind"))
            .ok_or(RoutineError::Invalid("Unbekannte Art der Vorlage."))?,
        name: field(&form, "name").to_owned(),
        title: field(&form, "title").to_owned(),
        description: field(&form, "description").to_owned(),
        checklist: field(&form, "checklist")
            .lines()
            .map(str::to_owned)
            .collect(),
        labels: ids(&form, "labels")?,
    };
    write(&m, &shared, move |c| {
        boards::writable(c, board, me, Permission::Edit)?;
        templates::create(c, &t, me, now)
    })
    .await?;
    Ok(see_other(&format!(
        "/tasks/templates/boards/{}?done=template",
        board.0
    )))
}

/// A template and `Edit` on its board (a template of a board one may not see: 404).
fn editable_template(
    c: &mut SqliteConnection,
    id: i64,
    me: MemberId,
) -> Result<TaskTemplate, RoutineError> {
    let t = templates::by_id(c, id)?.ok_or(RoutineError::TemplateNotFound)?;
    match boards::writable(c, BoardId(t.board_id), me, Permission::Edit) {
        Err(TaskError::BoardNotFound) => Err(RoutineError::TemplateNotFound),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(t),
    }
}

async fn use_template(
    m: Member,
    csrf: CsrfToken,
    shared: web::Data<AppContext>,
    path: web::Path<(i64, String)>,
    form: Form,
) -> PageResult {
    let (id, what) = path.into_inner();
    let (me, now) = (m.id(), shared.now());
    let form = form.into_inner();
    if what == "delete" && field(&form, "confirm") != "1" {
        // Deleting asks first, as ending a series does.
        let t = read(&m, move |c| editable_template(c, id, me)).await?;
        return html(&crate::tasks::routes::ConfirmPage {
            layout: crate::shell::page(&m, &csrf, crate::tasks::APP),
            question: format!("Vorlage „{}“ wirklich löschen?", t.name),
            action: format!("/tasks/templates/{id}/delete"),
            button: "Ja, löschen",
            back: format!("/tasks/templates/boards/{}", t.board_id),
        });
    }
    let card_field = field(&form, "card").trim().to_owned();
    let to = write(&m, &shared, move |c| {
        let t = editable_template(c, id, me)?;
        match what.as_str() {
            "card" if t.is_card() => {
                let card = templates::new_card(c, &t, me, now)?;
                let event = super::jobs::card_event(c, card)?;
                Ok((format!("/tasks/cards/{}", card.0), event))
            }
            "checklist" => {
                let card = CardId(
                    card_field
                        .parse()
                        .map_err(|_| RoutineError::Task(TaskError::CardNotFound))?,
                );
                let target = cards::editable(c, card, me)?;
                if target.board_id != t.board_id {
                    return Err(TaskError::OtherBoard.into());
                }
                if target.is_archived() {
                    return Err(TaskError::CardArchived.into());
                }
                templates::append_items(c, card, &t.items())?;
                cards::record(c, card, Some(me), "checklist", serde_json::json!({}), now)?;
                let event = super::jobs::card_event(c, card)?;
                Ok((format!("/tasks/cards/{}", card.0), event))
            }
            "delete" => {
                templates::delete(c, id)?;
                let to = format!("/tasks/templates/boards/{}?done=deleted", t.board_id);
                Ok((to, None))
            }
            _ => Err(RoutineError::TemplateNotFound),
        }
    })
    .await?;
    publish(&shared, &m, to.1);
    Ok(see_other(&to.0))
}

/// Publishes a card's live event after its change committed.
fn publish(shared: &AppContext, m: &Member, event: Option<crate::tasks::live::Event>) {
    if let Some(e) = event {
        e.publish(shared, m.tenant.slug().as_str());
    }
}

#[derive(Template)]
#[template(path = "tasks/routines/settings.html")]
struct SettingsPage {
    layout: Layout,
    setting: Setting,
    leads: &'static [(i64, &'static str)],
    notice: Option<&'static str>,
}

async fn settings_page(m: Member, csrf: CsrfToken, q: web::Query<Notice>) -> PageResult {
    let me = m.id();
    let setting = read(&m, move |c| Ok(reminders::setting(c, me)?)).await?;
    html(&SettingsPage {
        layout: crate::shell::page(&m, &csrf, crate::tasks::APP),
        setting,
        leads: LEADS,
        notice: q.text(),
    })
}

async fn save_settings(m: Member, shared: web::Data<AppContext>, form: Form) -> PageResult {
    let (me, now) = (m.id(), shared.now());
    let form = form.into_inner();
    let s = Setting {
        enabled: field(&form, "enabled") == "1",
        lead_minutes: field(&form, "lead")
            .trim()
            .parse()
            .map_err(|_| RoutineError::Lead)?,
    };
    write(&m, &shared, move |c| reminders::set(c, me, s, now)).await?;
    Ok(see_other("/tasks/routines/settings?done=settings"))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/routines/settings", web::get().to(settings_page))
        .route("/tasks/routines/settings", web::post().to(save_settings))
        .route("/tasks/routines/boards/{id}", web::get().to(series_page))
        .route("/tasks/routines/boards/{id}", web::post().to(create_series))
        .route("/tasks/routines/{id}/end", web::get().to(end_page))
        .route("/tasks/routines/{id}/{action}", web::post().to(act_series))
        .route(
            "/tasks/templates/boards/{id}",
            web::get().to(templates_page),
        )
        .route(
            "/tasks/templates/boards/{id}",
            web::post().to(create_template),
        )
        .route("/tasks/templates/{id}/{what}", web::post().to(use_template));
}
