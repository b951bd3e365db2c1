//! The operator console's web layer: its state ([`Console`]), the guard every request to
//! the console passes ([`guard`]: the listener's own host, the security headers come from
//! `tenants::web::headers::plumbing` around it, the Origin check and the CSRF token of
//! every state-changing request, a bounded form body), the [`Operator`] extractor pages
//! ask for, the layout of every page, and the console's errors.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use diesel::SqliteConnection;
use kollegium_idp::IdpSettings;
use kollegium_idp::passwords::Hasher;
use kollegium_tenants::cause::{Internal, log_5xx};
use kollegium_tenants::secrets::hmac_sha256;
use kollegium_tenants::web::{assets, csrf};
use kollegium_tenants::{SharedClock, TenantStore, UnixTime};
use zeroize::Zeroizing;

use super::sessions::{self, SignedIn};

/// Largest form body the console reads (news texts included).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The form field and header carrying the CSRF token (the practice origins' own).
pub use kollegium_tenants::web::csrf::{FORM_FIELD as CSRF_FIELD, HEADER as CSRF_HEADER};

/// Paths of the operator listener that are not the console (no session, no CSRF: machines
/// read them).
const MACHINE_PATHS: &[&str] = &["/healthz", "/metrics", "/feed"];

/// The console's state, one per node (`web::Data<Console>`).
pub struct Console {
    db: Arc<Mutex<SqliteConnection>>,
    totp_key: Zeroizing<[u8; 32]>,
    csrf_key: Zeroizing<[u8; 32]>,
    /// The IdP's password hasher (its threads, its dummy hash for unknown names).
    pub hasher: Arc<Hasher>,
    /// The throttle's numbers: the IdP's (`[idp]` lockout settings).
    pub throttle: IdpSettings,
    pub clock: SharedClock,
    pub store: Arc<TenantStore>,
    /// `[operator] public_url`'s origin (`https://ops.example`), when configured.
    pub public_origin: Option<String>,
    /// Whether a new practice's owner also gets the setup link by mail (SMTP configured).
    pub mail_setup_link: bool,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("public_origin", &self.public_origin)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The console of the node in `store`'s data directory (`operator.sqlite` must be
    /// migrated already: `OperatorFeed::open` does that). Blocking.
    pub fn open(
        store: Arc<TenantStore>,
        hasher: Arc<Hasher>,
        throttle: IdpSettings,
        public_origin: Option<String>,
        mail_setup_link: bool,
    ) -> anyhow::Result<Self> {
        let conn = super::open_db(store.data_dir())?;
        Ok(Self {
            db: Arc::new(Mutex::new(conn)),
            totp_key: super::totp_key(store.node_key()),
            csrf_key: store.node_key().derive("operator-console-csrf"),
            hasher,
            throttle,
            clock: store.clock().clone(),
            store,
            public_origin,
            mail_setup_link,
        })
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The key TOTP secrets are sealed with.
    pub fn totp_key(&self) -> &[u8; 32] {
        &self.totp_key
    }

    /// Runs `f` on the console's connection to `operator.sqlite` on a blocking thread.
    /// This is how a handler reaches the database:
    /// `console.run(move |conn| audit::record(conn, now, &who, "x", "y")).await?`.
    pub async fn run<T, E>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ConsoleError>
    where
        T: Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let db = self.db.clone();
        kollegium_tenants::web::block(move || {
            let mut conn = db
                .lock()
                .map_err(|_| Internal::msg("operator database lock poisoned"))?;
            f(&mut conn).map_err(|e| Internal::new("operator database", e))
        })
        .await
        .map_err(ConsoleError::from)?
        .map_err(ConsoleError::Internal)
    }

    fn https(&self) -> bool {
        self.public_origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"))
    }

    /// The session cookie's name: `__Host-` prefixed on https.
    pub fn session_cookie(&self) -> &'static str {
        if self.https() {
            "__Host-kollegium_operator"
        } else {
            "kollegium_operator"
        }
    }

    fn csrf_cookie(&self) -> &'static str {
        if self.https() {
            "__Host-kollegium_operator_csrf"
        } else {
            "kollegium_operator_csrf"
        }
    }

    /// A host-only, HttpOnly, SameSite=Strict cookie of the console.
    pub fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.https())
            .finish()
    }

    /// The session cookie for `token`.
    pub fn session_cookie_for(&self, token: String) -> Cookie<'static> {
        self.cookie(self.session_cookie(), token)
    }

    /// A cookie that removes the session cookie.
    pub fn session_cookie_removal(&self) -> Cookie<'static> {
        let mut c = self.cookie(self.session_cookie(), String::new());
        c.make_removal();
        c
    }

    fn csrf_for(&self, cookie_value: &str) -> String {
        B64.encode(hmac_sha256(self.csrf_key.as_ref(), cookie_value.as_bytes()))
    }

    /// The origins a form of the console may come from for `host` (the request's `Host`);
    /// empty for a host that is not the console's.
    fn own_origins(&self, host: &str) -> Vec<String> {
        own_origins(self.public_origin.as_deref(), host)
    }
}

/// The origins a console form may come from when the request names `host`, with the
/// configured public origin `public`:
/// - `localhost` or an IP address: `http://<host>` (a browser at the listener itself, or
///   through a tunnel to it), and the public origin where one is configured (a reverse
///   proxy that passes the listener's address as `Host`);
/// - the public origin's own host: the public origin;
/// - any other name (a DNS-rebinding page's, say): none.
fn own_origins(public: Option<&str>, host: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(origin) = public {
        let authority = origin.split_once("://").map_or("", |(_, a)| a);
        if host_is_literal(host) || host.eq_ignore_ascii_case(authority) {
            out.push(origin.to_owned());
        }
    }
    if host_is_literal(host) {
        out.push(format!("http://{host}"));
    }
    out
}

/// Whether `host` (with an optional port) is `localhost` or an IP address literal.
fn host_is_literal(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok()
                    && port
                        .trim_start_matches(':')
                        .bytes()
                        .all(|b| b.is_ascii_digit());
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// The CSRF token of the request (for forms: the `csrf_token` field).
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// The console's guard around every request to the operator listener: the practice
/// origins' security headers on every answer (`tenants::web::headers::security_headers`),
/// and, except on its machine paths (`/healthz`, `/metrics`, `/feed`, `/static/…`):
/// refuses a `Host` that is not the console's (404, as for any unknown host), and for every
/// state-changing request an `Origin` (or, without one, a `Referer`) that is not the
/// console's own origin (403), a body over [`MAX_FORM_BYTES`] (413) and a missing or wrong
/// CSRF token (403). Sets the CSRF cookie when the browser has none.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let https = req
        .app_data::<web::Data<Console>>()
        .is_some_and(|c| c.https());
    let machine = MACHINE_PATHS.contains(&req.path()) || req.path().starts_with("/static/");
    let mut res = if machine {
        next.call(req).await?.map_into_boxed_body()
    } else {
        let res = console_request(req, next).await?;
        let route = res.request().match_pattern().unwrap_or_else(|| "-".into());
        tracing::info!(route = %route, status = res.status().as_u16(), "operator console");
        res
    };
    kollegium_tenants::web::headers::security_headers(res.headers_mut(), https);
    Ok(res)
}

async fn console_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(console) = req.app_data::<web::Data<Console>>().cloned() else {
        let page = ConsoleError::Internal(Internal::msg("console state missing")).error_response();
        return Ok(req.into_response(page));
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let own = console.own_origins(&host);
    if own.is_empty() {
        return Ok(req.into_response(ConsoleError::NotFound.error_response()));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
        return Ok(req.into_response(too_large()));
    }
    let name = console.csrf_cookie();
    let (cookie_value, fresh) = csrf::cookie_value(&req, name);
    let expected = console.csrf_for(&cookie_value);
    req.extensions_mut().insert(CsrfToken(expected.clone()));

    let mut req = req;
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if !from_own_origin(&req, &own) {
            tracing::warn!(
                "operator console: state-changing request from a foreign origin refused"
            );
            let page = refused_form();
            return Ok(req.into_response(page));
        }
        let given = match csrf::supplied(req, None, MAX_FORM_BYTES).await {
            Ok(given) => given,
            Err((http_req, csrf::BodyFault::TooLarge)) => {
                return Ok(ServiceResponse::new(http_req, too_large()));
            }
            Err((http_req, csrf::BodyFault::Incomplete)) => {
                let page = message_page(
                    StatusCode::BAD_REQUEST,
                    "Ungültige Anfrage",
                    "Das Formular kam unvollständig an.",
                );
                return Ok(ServiceResponse::new(http_req, page));
            }
        };
        req = given.req;
        let ok = csrf::token_matches(given.token.as_deref(), &expected, fresh);
        if !ok {
            tracing::warn!(
                "operator console: state-changing request without valid CSRF token refused"
            );
            let mut res = req.into_response(refused_form());
            if fresh {
                add_cookie(&mut res, console.cookie(name, cookie_value));
            }
            return Ok(res);
        }
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    if fresh {
        add_cookie(&mut res, console.cookie(name, cookie_value));
    }
    Ok(res)
}

fn add_cookie(res: &mut ServiceResponse<BoxBody>, cookie: Cookie<'static>) {
    if let Err(e) = res.response_mut().add_cookie(&cookie) {
        tracing::error!(error = %e, "operator console: cannot set a cookie");
    }
}

/// Whether the browser says the request comes from a page of one of `own`: its `Origin`,
/// or when it sent none, its `Referer`. A request with neither is refused too.
fn from_own_origin(req: &ServiceRequest, own: &[String]) -> bool {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        return own.iter().any(|o| origin.as_bytes() == o.as_bytes());
    }
    let Some(referer) = req
        .headers()
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
    else {
        return false;
    };
    own.iter().any(|o| {
        referer
            .strip_prefix(o.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn too_large() -> HttpResponse {
    message_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Zu groß",
        "Das Formular ist zu groß.",
    )
}

fn refused_form() -> HttpResponse {
    message_page(
        StatusCode::FORBIDDEN,
        "Formular abgelehnt",
        "Das Formular ist abgelaufen oder stammt nicht von der Betriebskonsole. Bitte laden Sie die Seite neu und versuchen Sie es erneut.",
    )
}

/// `t` as the console shows it: German date and time in the default zone (Europe/Berlin),
/// as the practices' pages show theirs (`07.12.2026, 15:04`).
pub fn shown_time(t: UnixTime) -> String {
    static ZONE: std::sync::LazyLock<kollegium_tenants::time::Zone> =
        std::sync::LazyLock::new(kollegium_tenants::time::Zone::default);
    ZONE.format(t)
}

/// Every console page's frame (`templates/operator/layout.html`): pages carry it as their
/// `layout` field and extend the template (blocks `title` and `content`).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The signed-in operator's name (`None`: the sign-in and setup pages, no navigation).
    pub operator: Option<String>,
    /// The CSRF token for the page's forms (`<input type="hidden" name="csrf_token">`).
    pub csrf: String,
    /// Which navigation entry is current: `"practices"`, `"news"` or `"audit"`.
    pub section: &'static str,
    pub css_href: &'static str,
    pub favicon_href: &'static str,
    /// Scripts of the page (asset hrefs, `assets::href("x.js")`), loaded deferred.
    pub scripts: Vec<&'static str>,
}

/// The console's navigation: (href, label, section).
pub const NAV: &[(&str, &str, &str)] = &[
    ("/practices", "Praxen", "practices"),
    ("/news", "Neuigkeiten", "news"),
    ("/audit", "Protokoll", "audit"),
];

impl Layout {
    /// The frame for `operator`'s page in `section`.
    pub fn new(operator: Option<&Operator>, csrf: &CsrfToken, section: &'static str) -> Self {
        Self {
            operator: operator.map(|o| o.name.clone()),
            csrf: csrf.0.clone(),
            section,
            css_href: assets::href("app.css"),
            favicon_href: assets::href("favicon.svg"),
            scripts: Vec::new(),
        }
    }

    /// The frame of a page before sign-in.
    pub fn anonymous(csrf: &CsrfToken) -> Self {
        Self::new(None, csrf, "")
    }

    /// The navigation with the current entry marked: (href, label, current).
    pub fn nav(&self) -> Vec<(&'static str, &'static str, bool)> {
        NAV.iter()
            .map(|(href, label, s)| (*href, *label, *s == self.section))
            .collect()
    }

    pub fn initial(&self) -> String {
        self.operator
            .as_deref()
            .and_then(|n| n.chars().next())
            .map(|c| c.to_uppercase().collect())
            .unwrap_or_default()
    }
}

impl FromRequest for CsrfToken {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Self, ConsoleError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions().get::<CsrfToken>().cloned().ok_or_else(|| {
                ConsoleError::Internal(Internal::msg("console guard not installed"))
            }),
        )
    }
}

/// The signed-in operator: what every console page but sign-in and setup asks for. Without
/// a live session (none, expired, ended, the account suspended) a GET is sent to `/login`
/// (303) and anything else refused (401).
#[derive(Debug, Clone)]
pub struct Operator {
    pub id: i64,
    pub name: String,
    pub session: i64,
    /// The request's CSRF token, for the page's forms.
    pub csrf: CsrfToken,
}

impl Operator {
    /// The page frame for this operator in `section`.
    pub fn layout(&self, section: &'static str) -> Layout {
        Layout::new(Some(self), &self.csrf, section)
    }
}

impl FromRequest for Operator {
    type Error = ConsoleError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ConsoleError>>>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let console = req.app_data::<web::Data<Console>>().cloned();
        let csrf = req.extensions().get::<CsrfToken>().cloned();
        let is_get = matches!(*req.method(), Method::GET | Method::HEAD);
        let token = console
            .as_ref()
            .and_then(|c| req.cookie(c.session_cookie()))
            .map(|c| c.value().to_owned());
        Box::pin(async move {
            let (Some(console), Some(csrf)) = (console, csrf) else {
                return Err(ConsoleError::Internal(Internal::msg(
                    "console state or guard missing",
                )));
            };
            let refuse = if is_get {
                ConsoleError::SignInFirst
            } else {
                ConsoleError::Unauthorized
            };
            let Some(token) = token else {
                return Err(refuse);
            };
            let now = console.now();
            let found: Option<SignedIn> = console
                .run(move |conn| sessions::lookup(conn, now, &token))
                .await?;
            match found {
                Some(s) => Ok(Operator {
                    id: s.operator,
                    name: s.name,
                    session: s.session,
                    csrf,
                }),
                None => Err(refuse),
            }
        })
    }
}

/// What a console request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, on a page: to the sign-in.
    #[error("sign in first")]
    SignInFirst,
    /// No session, on an action.
    #[error("not signed in")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    /// Malformed input that no form of the console sends.
    #[error("bad request")]
    BadRequest,
    #[error(transparent)]
    Internal(#[from] Internal),
}

/// A blocking task that did not finish (the pool shut down, the task panicked).
impl From<actix_web::error::BlockingError> for ConsoleError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(Internal::new("blocking task", e))
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignInFirst => StatusCode::SEE_OTHER,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignInFirst => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish(),
            Self::Unauthorized => message_page(
                StatusCode::UNAUTHORIZED,
                "Nicht angemeldet",
                "Bitte melden Sie sich an der Betriebskonsole an.",
            ),
            Self::NotFound => message_page(
                StatusCode::NOT_FOUND,
                "Nicht gefunden",
                "Diese Seite gibt es in der Betriebskonsole nicht.",
            ),
            Self::BadRequest => message_page(
                StatusCode::BAD_REQUEST,
                "Ungültige Anfrage",
                "Die Anfrage ist unvollständig oder fehlerhaft.",
            ),
            Self::Internal(e) => {
                log_5xx("operator console", e);
                message_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Interner Fehler",
                    "Etwas ist schiefgegangen. Der Fehler wurde protokolliert.",
                )
            }
        }
    }
}

#[derive(Template)]
#[template(path = "operator/message.html")]
struct MessagePage<'a> {
    layout: Layout,
    title: &'a str,
    message: &'a str,
    link: Option<(&'a str, &'a str)>,
}

/// A page with a title and a message (errors, refusals), without navigation.
pub fn message_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    message_with_link(status, title, message, None)
}

/// [`message_page`] with a link onwards (href, label).
pub fn message_with_link(
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    let page = MessagePage {
        layout: Layout::anonymous(&CsrfToken(String::new())),
        title,
        message,
        link,
    };
    html(status, &page)
}

/// A rendered page with `status`; a template that fails to render is a logged 500.
pub fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            log_5xx("operator console page", &e);
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Interner Fehler")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_localhost_and_addresses_are_the_consoles_own_hosts() {
        for ok in [
            "127.0.0.1:8081",
            "localhost:8081",
            "LOCALHOST",
            "10.0.0.7",
            "[::1]:8081",
            "[fe80::1]",
        ] {
            assert!(host_is_literal(ok), "{ok}");
        }
        for bad in [
            "evil.example:8081",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::1]x",
            "127.0.0.1:80a",
            "",
        ] {
            assert!(!host_is_literal(bad), "{bad}");
        }
    }

    #[test]
    fn forms_come_from_the_address_used_or_the_public_origin() {
        let public = Some("https://betrieb.example");
        assert_eq!(
            own_origins(None, "127.0.0.1:9090"),
            ["http://127.0.0.1:9090"]
        );
        assert!(own_origins(None, "betrieb.example").is_empty());
        // Behind a proxy that passes the listener's address, and through a tunnel to it.
        assert_eq!(
            own_origins(public, "127.0.0.1:9090"),
            ["https://betrieb.example", "http://127.0.0.1:9090"]
        );
        assert_eq!(
            own_origins(public, "BETRIEB.example"),
            ["https://betrieb.example"]
        );
        assert!(own_origins(public, "evil.example").is_empty());
        assert!(own_origins(public, "betrieb.example.evil.example").is_empty());
    }
}
