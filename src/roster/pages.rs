//! The roster tool's pages and their errors (German, like the practice's own pages).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;

use super::RosterSettings;
use super::oidc::{Person, RelyingParty};
use super::sessions::{Sessions, SignOut};

/// The session cookie (host-only, HttpOnly, SameSite=Lax).
pub const COOKIE: &str = "dienstplan_demo";
/// Longest query string the callback reads.
const MAX_QUERY: usize = 4096;
/// Largest form body (the sign-out form).
const MAX_FORM: usize = 1024;

const STYLE: &str = include_str!("../../templates/demo/roster.css");

/// The tool's state: its registration at the IdP and its sessions.
pub struct State {
    rp: RelyingParty,
    sessions: Sessions,
    practice_url: String,
    /// `http://localhost:<port>`
    origin: String,
}

impl State {
    pub fn new(settings: RosterSettings, origin: &str) -> Self {
        Self {
            rp: RelyingParty::new(
                settings.issuer,
                settings.client_id,
                settings.client_secret,
                format!("{origin}/callback"),
                settings.http,
            ),
            sessions: Sessions::default(),
            practice_url: settings.practice_url,
            origin: origin.to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("malformed request")]
    Malformed,
    #[error("no pending sign-in for this answer")]
    Expired,
    #[error("the IdP answered the sign-in with {0}")]
    Declined(String),
    #[error("sign-out without the form's token")]
    Forbidden,
    #[error("identity provider unreachable or unusable: {0}")]
    Provider(String),
    #[error("the identity provider's answer was refused: {0}")]
    Refused(String),
    #[error("rendering: {0}")]
    Render(#[from] askama::Error),
}

#[derive(Template)]
#[template(path = "demo/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
    sign_in: bool,
    practice_url: &'a str,
}

#[derive(Template)]
#[template(path = "demo/roster.html")]
struct RosterPage<'a> {
    person: &'a Person,
    csrf: &'a str,
    practice_url: &'a str,
    origin: &'a str,
    shifts: Vec<Shift<'a>>,
}

/// A day of the sample week: who has the early and the late shift.
struct Shift<'a> {
    day: &'static str,
    early: Option<&'a str>,
    late: Option<&'a str>,
    closed_afternoon: bool,
}

/// The sample week: the signed-in member on some shifts, the rest open.
fn week(name: &str) -> Vec<Shift<'_>> {
    let day = |day, early, late| Shift {
        day,
        early,
        late,
        closed_afternoon: false,
    };
    vec![
        day("Montag", Some(name), None),
        day("Dienstag", None, Some(name)),
        Shift {
            // As announced in the demo's chat: closed on Wednesday afternoons.
            closed_afternoon: true,
            ..day("Mittwoch", Some(name), None)
        },
        day("Donnerstag", None, Some(name)),
        day("Freitag", Some(name), None),
    ]
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .body(body)
}

impl RosterError {
    fn words(&self) -> (&'static str, &'static str, bool) {
        match self {
            Self::Malformed => (
                "Ungültige Anfrage",
                "Die Anfrage ist unvollständig oder zu lang.",
                false,
            ),
            Self::Expired => (
                "Anmeldung abgelaufen",
                "Diese Anmeldung ist abgelaufen oder wurde in einem anderen Fenster begonnen. Bitte melden Sie sich erneut an.",
                true,
            ),
            Self::Declined(_) => (
                "Anmeldung abgebrochen",
                "Die Praxis-Anmeldung hat die Anmeldung nicht bestätigt, zum Beispiel weil Sie der Weitergabe Ihrer Angaben nicht zugestimmt haben.",
                true,
            ),
            Self::Forbidden => (
                "Formular abgelaufen",
                "Das Formular war nicht mehr gültig. Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.",
                false,
            ),
            Self::Refused(_) => (
                "Anmeldung nicht bestätigt",
                "Die Antwort der Praxis-Anmeldung ließ sich nicht bestätigen. Bitte melden Sie sich erneut an.",
                true,
            ),
            Self::Provider(_) => (
                "Praxis-Anmeldung nicht erreichbar",
                "Die Anmeldung über die Praxis ist gerade nicht möglich. Bitte versuchen Sie es gleich noch einmal.",
                true,
            ),
            Self::Render(_) => ("Fehler", "Die Seite konnte nicht angezeigt werden.", false),
        }
    }
}

impl ResponseError for RosterError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Malformed | Self::Expired => StatusCode::BAD_REQUEST,
            Self::Declined(_) | Self::Forbidden | Self::Refused(_) => StatusCode::FORBIDDEN,
            Self::Provider(_) => StatusCode::BAD_GATEWAY,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "demo roster tool: {status}");
        } else if matches!(self, Self::Refused(_)) {
            tracing::warn!(error = %self, "demo roster tool: sign-in refused");
        }
        let (title, text, sign_in) = self.words();
        let page = MessagePage {
            title,
            text,
            sign_in,
            practice_url: "",
        };
        match page.render() {
            Ok(body) => html(status, body),
            Err(_) => HttpResponse::build(status)
                .content_type(ContentType::plaintext())
                .body(text),
        }
    }
}

type Answer = Result<HttpResponse, RosterError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(MAX_FORM)
            .error_handler(|_, _| RosterError::Malformed.into()),
    )
    .service(
        web::scope("")
            .wrap(
                DefaultHeaders::new()
                    .add((
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'self'; form-action 'self'; \
                         base-uri 'none'; frame-ancestors 'none'",
                    ))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .route("/", web::get().to(home))
            .route("/login", web::get().to(login))
            .route("/callback", web::get().to(callback))
            .route("/logout", web::post().to(logout))
            .route("/abgemeldet", web::get().to(signed_out))
            .route("/style.css", web::get().to(style))
            .default_service(web::to(not_found)),
    );
}

fn session(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE).map(|c| c.value().to_owned())
}

fn session_cookie(id: &str) -> Cookie<'static> {
    Cookie::build(COOKIE, id.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish()
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// The roster for who is signed in; otherwise straight to the sign-in (one click from the
/// practice's start page).
async fn home(req: HttpRequest, state: web::Data<State>) -> Answer {
    let Some((person, csrf)) = session(&req).and_then(|id| state.sessions.person(&id)) else {
        return Ok(see_other("/login"));
    };
    let page = RosterPage {
        shifts: week(&person.name),
        person: &person,
        csrf: &csrf,
        practice_url: &state.practice_url,
        origin: &state.origin,
    };
    Ok(html(StatusCode::OK, page.render()?))
}

/// Starts a sign-in at the practice IdP, in a fresh session.
async fn login(req: HttpRequest, state: web::Data<State>) -> Answer {
    let (url, pending) = state.rp.start().await?;
    if let Some(old) = session(&req) {
        state.sessions.drop_session(&old);
    }
    let id = state.sessions.begin(pending);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .cookie(session_cookie(&id))
        .finish())
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// The IdP's answer: checked against the session's pending sign-in, then the code is
/// exchanged and the ID token verified.
async fn callback(req: HttpRequest, state: web::Data<State>) -> Answer {
    let query = req.query_string();
    if query.len() > MAX_QUERY {
        return Err(RosterError::Malformed);
    }
    let answer = web::Query::<Callback>::from_query(query)
        .map_err(|_| RosterError::Malformed)?
        .into_inner();
    let (Some(id), Some(sent_state)) = (session(&req), answer.state.as_deref()) else {
        return Err(RosterError::Expired);
    };
    let pending = state
        .sessions
        .take_pending(&id, sent_state)
        .ok_or(RosterError::Expired)?;
    // RFC 9207: an answer names the issuer it comes from.
    if answer
        .iss
        .as_deref()
        .is_some_and(|iss| iss != state.rp.issuer())
    {
        return Err(RosterError::Refused("answer from another issuer".into()));
    }
    if let Some(error) = answer.error {
        return Err(RosterError::Declined(error));
    }
    let code = answer.code.ok_or(RosterError::Malformed)?;
    let person = state.rp.finish(code, pending).await?;
    let id = state.sessions.sign_in(person);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .cookie(session_cookie(&id))
        .finish())
}

#[derive(Debug, Deserialize)]
struct SignOutForm {
    #[serde(default)]
    csrf_token: String,
}

/// Ends the tool's session (the practice session stays).
async fn logout(req: HttpRequest, state: web::Data<State>, form: web::Form<SignOutForm>) -> Answer {
    let id = session(&req).unwrap_or_default();
    match state.sessions.end(&id, &form.csrf_token) {
        SignOut::WrongToken => Err(RosterError::Forbidden),
        SignOut::Done | SignOut::NoSession => {
            let mut gone = session_cookie("");
            gone.make_removal();
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/abgemeldet"))
                .cookie(gone)
                .finish())
        }
    }
}

async fn signed_out(state: web::Data<State>) -> Answer {
    let page = MessagePage {
        title: "Abgemeldet",
        text: "Sie sind vom Dienstplan abgemeldet. In der Praxis bleiben Sie angemeldet: Wieder anmelden geht ohne Passwort.",
        sign_in: true,
        practice_url: &state.practice_url,
    };
    Ok(html(StatusCode::OK, page.render()?))
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE)
}

async fn not_found(state: web::Data<State>) -> Answer {
    let page = MessagePage {
        title: "Nicht gefunden",
        text: "Diese Seite gibt es im Dienstplan nicht.",
        sign_in: false,
        practice_url: &state.practice_url,
    };
    Ok(html(StatusCode::NOT_FOUND, page.render()?))
}
