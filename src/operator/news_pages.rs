//! The console's news pages (issue 14): `/news` lists what the operator published (newest
//! first, withdrawn and expired ones marked) and composes a new message: title, Markdown
//! body, audience from the shared catalogue (checkboxes for specialties, roles and KV
//! regions), valid until (a date), pinned. "Vorschau" renders the body with the chat's safe
//! Markdown subset without publishing (a submit button: works without JavaScript);
//! "Veröffentlichen" signs and publishes through [`OperatorFeed::publish`], the function the
//! CLI calls. "Zurückziehen" asks first (`GET /news/{id}/withdraw`), then signs the
//! retraction ([`OperatorFeed::withdraw`]). Every action is in the audit log with the
//! message id, never its content. Input the catalogue does not know, a bad date or anything
//! the feed refuses is answered with the form, its input and a German message; nothing is
//! published then.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use kollegium_tenants::UnixTime;
use kollegium_tenants::broadcast::entry::{
    Invalid, MAX_AUDIENCE_IDS, MAX_BODY_BYTES, MAX_TITLE_CHARS,
};
use kollegium_tenants::broadcast::operator::{Published, end_of_day};
use kollegium_tenants::broadcast::{Audience, Draft, OperatorFeed, OperatorKey, PublishError};
use kollegium_tenants::catalog::{self, KV_REGIONS, ROLES, SPECIALTIES};
use kollegium_tenants::cause::Internal;
use kollegium_tenants::time::Zone;

use super::audit;
use super::web::{Console, ConsoleError, Layout, Operator, html, message_page, shown_time};

/// The operator's signing key (`[broadcast] key_file` or `data/operator.key`), read once when
/// the node starts: app data of the operator listener, registered by the composition. A key
/// file that goes missing later changes nothing (no new key is made behind the operator's
/// back, which nodes would refuse). `None` on a node that trusts another operator's key and
/// has none of its own: it shows that operator's messages and publishes none itself.
#[derive(Debug, Clone)]
pub struct NewsKey(pub Option<Arc<OperatorKey>>);

/// Why a node without a signing key publishes nothing.
const NO_KEY: &str = "Dieser Knoten hat keinen eigenen Signierschlüssel des Betreibers \
     ([broadcast] key_file): Er zeigt die Nachrichten des Betreibers, dessen öffentlichem \
     Schlüssel er vertraut, und veröffentlicht selbst nichts.";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/news", web::get().to(list))
        .route("/news", web::post().to(compose))
        .route("/news/{id}/withdraw", web::get().to(confirm))
        .route("/news/{id}/withdraw", web::post().to(withdraw));
}

/// A catalogue entry as a checkbox.
struct Choice {
    id: &'static str,
    label: &'static str,
    checked: bool,
}

/// One part of the audience: its field name, label and checkboxes (open when one is set).
struct Group {
    name: &'static str,
    label: &'static str,
    choices: Vec<Choice>,
    open: bool,
}

fn group(
    name: &'static str,
    label: &'static str,
    list: &'static [catalog::Entry],
    picked: &[String],
) -> Group {
    let choices: Vec<Choice> = list
        .iter()
        .map(|e| Choice {
            id: e.id,
            label: e.label,
            checked: picked.iter().any(|p| p == e.id),
        })
        .collect();
    Group {
        open: choices.iter().any(|c| c.checked),
        name,
        label,
        choices,
    }
}

/// What the compose form holds (also after a refusal or a preview).
#[derive(Debug, Clone, Default)]
struct Form {
    title: String,
    body: String,
    specialties: Vec<String>,
    roles: Vec<String>,
    kv_regions: Vec<String>,
    valid_until: String,
    pinned: bool,
    /// `preview` or `publish`.
    action: String,
}

impl Form {
    /// The posted fields; `None` for anything no form of the console sends.
    fn parse(fields: Vec<(String, String)>) -> Option<Self> {
        let mut f = Self::default();
        for (k, v) in fields {
            match k.as_str() {
                "csrf_token" => {}
                "title" => f.title = v,
                "body" => f.body = v,
                "specialty" => f.specialties.push(v),
                "role" => f.roles.push(v),
                "kv_region" => f.kv_regions.push(v),
                "valid_until" => f.valid_until = v,
                "pinned" if v == "1" => f.pinned = true,
                "action" if v == "preview" || v == "publish" => f.action = v,
                _ => return None,
            }
        }
        let ids = f.specialties.len() + f.roles.len() + f.kv_regions.len();
        (ids <= 3 * MAX_AUDIENCE_IDS + 3).then_some(f)
    }

    /// The draft, or the German reason it cannot be one (`now` for the date check).
    fn draft(&self, now: UnixTime) -> Result<Draft, String> {
        for (list, ids, what) in [
            (SPECIALTIES, &self.specialties, "Fachrichtung"),
            (ROLES, &self.roles, "Rolle"),
            (KV_REGIONS, &self.kv_regions, "KV-Region"),
        ] {
            if let Some(bad) = ids.iter().find(|id| catalog::find(list, id).is_none()) {
                let shown: String = bad.chars().take(40).collect();
                return Err(format!(
                    "Unbekannte {what} „{shown}“: nur Einträge des Katalogs sind möglich."
                ));
            }
        }
        let valid_until = match self.valid_until.trim() {
            "" => None,
            d => Some(end_of_day(d, &Zone::default()).map_err(|_| {
                "Das Datum „Gültig bis“ ist ungültig: bitte ein Datum im Format JJJJ-MM-TT angeben.".to_owned()
            })?),
        };
        if valid_until.is_some_and(|t| t <= now) {
            return Err("„Gültig bis“ muss in der Zukunft liegen.".into());
        }
        Ok(Draft {
            title: self.title.clone(),
            body: self.body.clone(),
            audience: Audience {
                specialties: self.specialties.clone(),
                roles: self.roles.clone(),
                kv_regions: self.kv_regions.clone(),
            },
            valid_until,
            pinned: self.pinned,
        })
    }
}

/// The German text of a refusal of the feed the operator can fix.
fn refusal(e: &PublishError) -> Option<String> {
    Some(match e {
        PublishError::Invalid(i) => match i {
            Invalid::EmptyTitle => "Der Titel fehlt.".into(),
            Invalid::TitleTooLong => {
                format!("Der Titel ist zu lang (höchstens {MAX_TITLE_CHARS} Zeichen).")
            }
            Invalid::TitleControl => "Der Titel darf keine Zeilenumbrüche enthalten.".into(),
            Invalid::EmptyBody => "Der Text fehlt.".into(),
            Invalid::BodyTooLong { .. } => {
                format!("Der Text ist zu lang (höchstens {MAX_BODY_BYTES} Bytes).")
            }
            Invalid::UnknownId { id, .. } => {
                format!("Unbekannte Angabe „{id}“: nur Einträge des Katalogs sind möglich.")
            }
            Invalid::AudienceTooLarge { .. } => "Zu viele Einträge in der Zielgruppe.".into(),
            Invalid::MessageId(_) => return None,
        },
        PublishError::ValidUntilPast => "„Gültig bis“ muss in der Zukunft liegen.".into(),
        _ => return None,
    })
}

/// A published message as the list shows it.
struct Row {
    id: String,
    title: String,
    published: String,
    valid_until: Option<String>,
    audience: String,
    pinned: bool,
    /// `None`: active; else "zurückgezogen …" or "abgelaufen".
    state: Option<String>,
}

fn audience_text(a: &Audience) -> String {
    let mut parts = Vec::new();
    for (list, ids) in [
        (SPECIALTIES, &a.specialties),
        (ROLES, &a.roles),
        (KV_REGIONS, &a.kv_regions),
    ] {
        if !ids.is_empty() {
            parts.push(catalog::labels(list, ids).join(" oder "));
        }
    }
    if parts.is_empty() {
        "Alle".into()
    } else {
        parts.join(" und ")
    }
}

fn row(p: Published, now: UnixTime) -> Row {
    let state = match (p.withdrawn_at, p.valid_until) {
        (Some(t), _) => Some(format!("zurückgezogen {}", shown_time(t))),
        (None, Some(t)) if t <= now => Some("abgelaufen".into()),
        _ => None,
    };
    Row {
        id: p.id.as_str().to_owned(),
        title: p.title,
        published: shown_time(p.published_at),
        valid_until: p.valid_until.map(shown_time),
        audience: audience_text(&p.audience),
        pinned: p.pinned,
        state,
    }
}

#[derive(Template)]
#[template(path = "operator/news.html")]
struct NewsPage {
    layout: Layout,
    rows: Vec<Row>,
    notice: Option<&'static str>,
    error: Option<String>,
    title: String,
    body: String,
    valid_until: String,
    pinned: bool,
    groups: Vec<Group>,
    /// The rendered body and the audience, after "Vorschau".
    preview: Option<(String, String)>,
    max_title: usize,
}

impl NewsPage {
    fn new(op: &Operator, rows: Vec<Row>, form: &Form) -> Self {
        Self {
            layout: op.layout("news"),
            rows,
            notice: None,
            error: None,
            title: form.title.clone(),
            body: form.body.clone(),
            valid_until: form.valid_until.chars().take(40).collect(),
            pinned: form.pinned,
            groups: vec![
                group(
                    "specialty",
                    "Fachrichtungen",
                    SPECIALTIES,
                    &form.specialties,
                ),
                group("role", "Rollen", ROLES, &form.roles),
                group("kv_region", "KV-Regionen", KV_REGIONS, &form.kv_regions),
            ],
            preview: None,
            max_title: MAX_TITLE_CHARS,
        }
    }
}

fn internal(what: &'static str) -> impl FnOnce(PublishError) -> ConsoleError {
    move |e| ConsoleError::Internal(Internal::new(what, e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PublishError> + Send + 'static,
) -> Result<Result<T, PublishError>, ConsoleError> {
    kollegium_tenants::web::block(f)
        .await
        .map_err(ConsoleError::from)
}

async fn rows(feed: &web::Data<OperatorFeed>, now: UnixTime) -> Result<Vec<Row>, ConsoleError> {
    let feed = feed.clone();
    let mut all = blocking(move || feed.list())
        .await?
        .map_err(internal("listing the news"))?;
    all.sort_by_key(|p| std::cmp::Reverse(p.seq));
    Ok(all.into_iter().map(|p| row(p, now)).collect())
}

#[derive(Debug, serde::Deserialize)]
struct Done {
    done: Option<String>,
}

async fn list(
    op: Operator,
    console: web::Data<Console>,
    feed: web::Data<OperatorFeed>,
    q: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let mut page = NewsPage::new(&op, rows(&feed, console.now()).await?, &Form::default());
    page.notice = match q.done.as_deref() {
        Some("published") => Some("Die Nachricht ist signiert und veröffentlicht."),
        Some("withdrawn") => Some("Die Nachricht ist zurückgezogen."),
        _ => None,
    };
    Ok(html(StatusCode::OK, &page))
}

async fn compose(
    op: Operator,
    console: web::Data<Console>,
    feed: web::Data<OperatorFeed>,
    key: web::Data<NewsKey>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let form = Form::parse(form.into_inner()).ok_or(ConsoleError::BadRequest)?;
    let now = console.now();
    let again = |page: NewsPage| Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &page));
    let draft = match form.draft(now) {
        Ok(d) => d,
        Err(why) => {
            let mut page = NewsPage::new(&op, rows(&feed, now).await?, &form);
            page.error = Some(why);
            return again(page);
        }
    };
    if form.action != "publish" {
        let mut page = NewsPage::new(&op, rows(&feed, now).await?, &form);
        page.preview = Some((
            kollegium_platform::markdown::render(&draft.body, &|_| false),
            audience_text(&draft.audience),
        ));
        return Ok(html(StatusCode::OK, &page));
    }
    let Some(key) = key.0.clone() else {
        let mut page = NewsPage::new(&op, rows(&feed, now).await?, &form);
        page.error = Some(NO_KEY.to_owned());
        return Ok(html(StatusCode::CONFLICT, &page));
    };
    let f = feed.clone();
    let published = blocking(move || {
        let entry = f.publish(&key, draft, now)?;
        crate::news::message_id(&key, &entry)
            .map(|id| id.to_string())
            .ok_or_else(|| {
                PublishError::Storage(kollegium_tenants::broadcast::BroadcastError::Corrupt(
                    "the signed entry does not verify".into(),
                ))
            })
    })
    .await?;
    let id = match published {
        Ok(id) => id,
        Err(e) => match refusal(&e) {
            Some(why) => {
                let mut page = NewsPage::new(&op, rows(&feed, now).await?, &form);
                page.error = Some(why);
                return again(page);
            }
            None => return Err(internal("publishing a message")(e)),
        },
    };
    let who = op.name.clone();
    let subject = id.clone();
    console
        .run(move |c| audit::record(c, now, &who, "news.publish", &subject))
        .await?;
    tracing::info!(operator = %op.name, message = %id, "broadcast published in the console");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/news?done=published"))
        .finish())
}

#[derive(Template)]
#[template(path = "operator/news_withdraw.html")]
struct ConfirmPage {
    layout: Layout,
    id: String,
    title: String,
}

/// The published, not yet withdrawn message `id` (else 404).
async fn withdrawable(
    feed: &web::Data<OperatorFeed>,
    id: String,
) -> Result<Published, ConsoleError> {
    let feed = feed.clone();
    blocking(move || feed.list())
        .await?
        .map_err(internal("listing the news"))?
        .into_iter()
        .find(|p| p.id.as_str() == id && p.withdrawn_at.is_none())
        .ok_or(ConsoleError::NotFound)
}

async fn confirm(
    op: Operator,
    feed: web::Data<OperatorFeed>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let p = withdrawable(&feed, id.into_inner()).await?;
    Ok(html(
        StatusCode::OK,
        &ConfirmPage {
            layout: op.layout("news"),
            id: p.id.as_str().to_owned(),
            title: p.title,
        },
    ))
}

async fn withdraw(
    op: Operator,
    console: web::Data<Console>,
    feed: web::Data<OperatorFeed>,
    key: web::Data<NewsKey>,
    id: web::Path<String>,
    _form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let p = withdrawable(&feed, id.into_inner()).await?;
    let Some(key) = key.0.clone() else {
        return Ok(message_page(
            StatusCode::CONFLICT,
            "Kein Signierschlüssel",
            NO_KEY,
        ));
    };
    let (f, now) = (feed.clone(), console.now());
    let id = p.id.as_str().to_owned();
    let target = id.clone();
    let done = blocking(move || f.withdraw(&key, &target, now).map(|_| ())).await?;
    match done {
        Ok(()) => {}
        // Withdrawn meanwhile (another operator, the CLI).
        Err(PublishError::AlreadyWithdrawn(_) | PublishError::UnknownMessage(_)) => {
            return Err(ConsoleError::NotFound);
        }
        Err(e) => return Err(internal("withdrawing a message")(e)),
    }
    let who = op.name.clone();
    let subject = id.clone();
    console
        .run(move |c| audit::record(c, now, &who, "news.withdraw", &subject))
        .await?;
    tracing::info!(operator = %op.name, message = %id, "broadcast withdrawn in the console");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/news?done=withdrawn"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Option<Form> {
        Form::parse(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_form_takes_catalogue_ids_and_a_date_and_refuses_the_rest() {
        let f = form(&[
            ("title", "Tipp"),
            ("body", "Text"),
            ("role", "abrechnung"),
            ("kv_region", "kv-nordrhein"),
            ("valid_until", "2030-01-31"),
            ("pinned", "1"),
            ("action", "publish"),
        ])
        .unwrap();
        let d = f.draft(0).unwrap();
        assert_eq!(d.audience.roles, ["abrechnung"]);
        assert!(d.pinned && d.valid_until.is_some());
        assert!(form(&[("bogus", "1")]).is_none());
        assert!(form(&[("action", "delete")]).is_none());
        let unknown = form(&[("title", "T"), ("role", "chefarzt")]).unwrap();
        assert!(
            unknown
                .draft(0)
                .unwrap_err()
                .contains("Unbekannte Rolle „chefarzt“")
        );
        for bad in ["31.01.2030", "2030-02-30", "morgen"] {
            let f = form(&[("title", "T"), ("valid_until", bad)]).unwrap();
            assert!(f.draft(0).unwrap_err().contains("Gültig bis"), "{bad}");
        }
        let past = form(&[("title", "T"), ("valid_until", "2001-01-01")]).unwrap();
        assert!(past.draft(2_000_000_000).unwrap_err().contains("Zukunft"));
    }
}
