//! The console's own pages: sign-in, sign-out, the setup link (password, then TOTP
//! enrolment) and the audit log.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use kollegium_idp::passwords::{PasswordContext, Verified, check_new_password};
use kollegium_idp::totp;
use kollegium_tenants::web::client_addr::ClientAddr;
use serde::Deserialize;

use super::accounts::{self, SetupError};
use super::web::{Console, ConsoleError, CsrfToken, Layout, Operator, html, message_with_link};
use super::{audit, sessions, signin};

/// Registers the pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login_page))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/audit", web::get().to(audit_page))
        .route("/setup/{token}", web::get().to(setup_page))
        .route("/setup/{token}", web::post().to(setup_password))
        .route("/setup/{token}/totp", web::post().to(setup_totp));
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

async fn home(_op: Operator) -> HttpResponse {
    see_other("/practices")
}

#[derive(Template)]
#[template(path = "operator/login.html")]
struct LoginPage {
    layout: Layout,
    name: String,
    error: Option<&'static str>,
    notice: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    done: Option<String>,
}

async fn login_page(
    op: Option<Operator>,
    csrf: CsrfToken,
    q: web::Query<LoginQuery>,
) -> HttpResponse {
    if op.is_some() {
        return see_other("/practices");
    }
    let notice = (q.done.as_deref() == Some("abgemeldet")).then_some("Sie sind abgemeldet.");
    html(
        StatusCode::OK,
        &LoginPage {
            layout: Layout::anonymous(&csrf),
            name: String::new(),
            error: None,
            notice,
        },
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    code: String,
}

async fn login(
    req: HttpRequest,
    console: web::Data<Console>,
    csrf: CsrfToken,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    let LoginForm {
        name,
        password,
        code,
    } = form.into_inner();
    let refuse = |why: signin::Refusal, name: &str| {
        html(
            why.status(),
            &LoginPage {
                layout: Layout::anonymous(&csrf),
                name: name.chars().take(accounts::MAX_NAME).collect(),
                error: Some(why.message()),
                notice: None,
            },
        )
    };
    if name.len() > 254 || password.len() > kollegium_idp::passwords::MAX_BYTES || code.len() > 16 {
        return Err(ConsoleError::BadRequest);
    }
    let ip = ClientAddr::of(&req).map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let now = console.now();
    let settings = console.throttle.clone();
    let n = name.clone();
    let attempt = console
        .run(move |conn| signin::begin(conn, &settings, now, &n, &ip))
        .await?;
    let attempt = match attempt {
        Ok(a) => a,
        Err(why) => return Ok(refuse(why, &name)),
    };
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }
    let stored = attempt
        .account
        .as_ref()
        .and_then(|a| a.password_hash.clone());
    let verified = console.hasher.verify(password, stored).await.map_err(|e| {
        ConsoleError::Internal(kollegium_tenants::cause::Internal::new("password check", e))
    })?;
    let password_ok = matches!(verified, Verified::Yes | Verified::YesRehashed(_));
    let settings = console.throttle.clone();
    let now = console.now();
    let c = console.clone();
    let outcome = console
        .run(move |conn| {
            signin::finish(
                conn,
                &settings,
                c.totp_key(),
                now,
                &attempt,
                password_ok,
                &code,
            )
        })
        .await?;
    match outcome {
        Ok((token, _name)) => {
            let mut res = see_other("/practices");
            res.add_cookie(&console.session_cookie_for(token))
                .map_err(|e| {
                    ConsoleError::Internal(kollegium_tenants::cause::Internal::new(
                        "session cookie",
                        e,
                    ))
                })?;
            Ok(res)
        }
        Err(why) => Ok(refuse(why, &name)),
    }
}

async fn logout(op: Operator, console: web::Data<Console>) -> Result<HttpResponse, ConsoleError> {
    let now = console.now();
    let (session, name) = (op.session, op.name.clone());
    console
        .run(move |conn| {
            sessions::end(conn, session)?;
            audit::record(conn, now, &name, "operator.sign_out", &name)
        })
        .await?;
    let mut res = see_other("/login?done=abgemeldet");
    res.add_cookie(&console.session_cookie_removal())
        .map_err(|e| {
            ConsoleError::Internal(kollegium_tenants::cause::Internal::new("session cookie", e))
        })?;
    Ok(res)
}

fn link_invalid() -> HttpResponse {
    message_with_link(
        StatusCode::GONE,
        "Link ungültig",
        "Dieser Einrichtungslink ist abgelaufen, wurde schon benutzt oder durch einen neueren ersetzt. Bitten Sie einen Kollegen mit Zugang zum Server um einen neuen (kollegium operator setup-link <name>).",
        Some(("/login", "Zur Anmeldung")),
    )
}

#[derive(Template)]
#[template(path = "operator/setup_password.html")]
struct SetupPasswordPage {
    layout: Layout,
    token: String,
    name: String,
    error: Option<String>,
}

async fn setup_page(
    console: web::Data<Console>,
    csrf: CsrfToken,
    token: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let token = token.into_inner();
    let now = console.now();
    let t = token.clone();
    let Some((_, account)) = console
        .run(move |conn| accounts::open_link(conn, now, &t))
        .await?
    else {
        return Ok(link_invalid());
    };
    Ok(html(
        StatusCode::OK,
        &SetupPasswordPage {
            layout: Layout::anonymous(&csrf),
            token,
            name: account.name,
            error: None,
        },
    ))
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    password: String,
    password_repeat: String,
}

#[derive(Template)]
#[template(path = "operator/setup_totp.html")]
struct SetupTotpPage {
    layout: Layout,
    token: String,
    qr: Option<String>,
    secret_groups: String,
    error: Option<&'static str>,
}

fn totp_page(
    csrf: &CsrfToken,
    token: String,
    name: &str,
    secret: &[u8],
    error: Option<&'static str>,
) -> HttpResponse {
    let uri = totp::otpauth_uri("Kollegium Betrieb", name, secret);
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html(
        status,
        &SetupTotpPage {
            layout: Layout::anonymous(csrf),
            token,
            qr: totp::qr_data_uri(&uri),
            secret_groups: totp::base32_grouped(secret),
            error,
        },
    )
}

async fn setup_password(
    console: web::Data<Console>,
    csrf: CsrfToken,
    token: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ConsoleError> {
    let token = token.into_inner();
    let now = console.now();
    let t = token.clone();
    let Some((link, account)) = console
        .run(move |conn| accounts::open_link(conn, now, &t))
        .await?
    else {
        return Ok(link_invalid());
    };
    let PasswordForm {
        password,
        password_repeat,
    } = form.into_inner();
    // The IdP's context of a person, with the console standing in for the practice.
    let ctx = PasswordContext::person(
        "Kollegium Betrieb",
        "betrieb",
        &account.name,
        &account.name,
        &account.email,
        now,
    );
    let refused = if password != password_repeat {
        Some(kollegium_idp::passwords::PolicyError::Mismatch)
    } else {
        check_new_password(&password, &ctx).err()
    };
    if let Some(why) = refused {
        return Ok(html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPasswordPage {
                layout: Layout::anonymous(&csrf),
                token,
                name: account.name,
                error: Some(why.to_string()),
            },
        ));
    }
    let hash = console.hasher.hash(password).await.map_err(|e| {
        ConsoleError::Internal(kollegium_tenants::cause::Internal::new("password hash", e))
    })?;
    let c = console.clone();
    let secret = console
        .run(move |conn| accounts::choose_password(conn, c.totp_key(), now, &link, &hash))
        .await?;
    let Some(secret) = secret else {
        return Ok(link_invalid());
    };
    Ok(totp_page(&csrf, token, &account.name, &secret, None))
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    code: String,
}

async fn setup_totp(
    req: HttpRequest,
    console: web::Data<Console>,
    csrf: CsrfToken,
    token: web::Path<String>,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    let token = token.into_inner();
    let code = form.into_inner().code;
    if code.len() > 16 {
        return Err(ConsoleError::BadRequest);
    }
    let ip = ClientAddr::of(&req).map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let now = console.now();
    let t = token.clone();
    let c = console.clone();
    let outcome = console
        .run(move |conn| {
            let Some((link, account)) = accounts::open_link(conn, now, &t)? else {
                return Ok::<_, diesel::result::Error>(None);
            };
            let keys = match signin::begin_setup_code(conn, &c.throttle, now, &account, &ip)? {
                Ok(keys) => keys,
                Err(why) => return Ok(Some(Err(why))),
            };
            let done = accounts::complete_setup(conn, c.totp_key(), now, &link, &code);
            let wrong = matches!(done, Err(SetupError::WrongCode));
            signin::end_setup_code(conn, &c.throttle, now, &keys, !wrong)?;
            let session = match &done {
                Ok(a) => Some(signin::start_session(conn, now, a)?),
                Err(_) => None,
            };
            Ok(Some(Ok((link, account, done, session))))
        })
        .await?;
    let (link, account, done, session) = match outcome {
        None => return Ok(link_invalid()),
        Some(Err(why)) => {
            return Ok(message_with_link(
                why.status(),
                "Vorübergehend gesperrt",
                why.message(),
                None,
            ));
        }
        Some(Ok(found)) => found,
    };
    match (done, session) {
        (Ok(_), Some(session)) => {
            let mut res = see_other("/practices");
            res.add_cookie(&console.session_cookie_for(session))
                .map_err(|e| {
                    ConsoleError::Internal(kollegium_tenants::cause::Internal::new(
                        "session cookie",
                        e,
                    ))
                })?;
            Ok(res)
        }
        (Err(SetupError::WrongCode), _) => {
            match accounts::pending_secret(console.totp_key(), &link, now) {
                Some(secret) => Ok(totp_page(
                    &csrf,
                    token,
                    &account.name,
                    &secret,
                    Some(
                        "Der Code passt nicht. Bitte geben Sie den aktuellen Code aus der App ein.",
                    ),
                )),
                None => Ok(link_invalid()),
            }
        }
        (Err(SetupError::Db(e)), _) => Err(ConsoleError::Internal(
            kollegium_tenants::cause::Internal::new("completing setup", e),
        )),
        (Err(SetupError::NotStarted), _) => Ok(see_other(&format!("/setup/{token}"))),
        _ => Ok(link_invalid()),
    }
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    before: Option<i64>,
}

struct AuditRow {
    when: String,
    who: String,
    action: String,
    subject: String,
}

#[derive(Template)]
#[template(path = "operator/audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<AuditRow>,
    older: Option<i64>,
    paged: bool,
}

async fn audit_page(
    op: Operator,
    console: web::Data<Console>,
    q: Result<web::Query<AuditQuery>, actix_web::Error>,
) -> Result<HttpResponse, ConsoleError> {
    let before = q.map_err(|_| ConsoleError::BadRequest)?.before;
    let (entries, older) = console.run(move |conn| audit::page(conn, before)).await?;
    let rows = entries
        .into_iter()
        .map(|e| AuditRow {
            when: super::web::shown_time(e.at),
            who: e.who,
            action: audit::label(&e.action).to_owned(),
            subject: e.subject,
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        &AuditPage {
            layout: op.layout("audit"),
            rows,
            older,
            paged: before.is_some(),
        },
    ))
}
