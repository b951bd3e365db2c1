//! The operator console as a test drives it: an operator created through the library (as
//! `kollegium operator add` does), the setup link completed in a client like a browser
//! (password, then TOTP enrolment with the secret read from the page), and the signed-in
//! client's steps: open a page, send a form with the page's CSRF token and the console's
//! own `Origin`.

use std::sync::Mutex;

use kollegium::operator::{self, accounts, audit};
use kollegium_idp::totp;
use reqwest::Response;

use crate::harness::{TestApp, client, form_csrf};
use crate::idp_mfa::shown_secret;

/// The password test operators choose.
pub const OP_PW: &str = "Leuchtturm-Kompass-Gezeiten-7";

/// Creates operator `name` as `kollegium operator add` does; returns the setup link's URL.
pub fn add_operator(app: &TestApp, name: &str) -> String {
    let mut conn = operator::open_db(&app.data_dir()).unwrap();
    let token = accounts::add(
        &mut conn,
        app.clock.now(),
        audit::CLI,
        name,
        &format!("{name}@betrieb.example"),
    )
    .unwrap();
    app.operator_url(&format!("/setup/{token}"))
}

/// A browser at the operator console.
pub struct OperatorClient {
    pub client: reqwest::Client,
    /// `http://127.0.0.1:<operator port>`
    pub origin: String,
    pub name: String,
    /// The TOTP secret enrolled at setup.
    pub secret: Vec<u8>,
    /// The last TOTP step this client used (codes work once).
    pub last_step: Mutex<i64>,
}

impl OperatorClient {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// A TOTP code of a step not used before (the current one, or the next while the
    /// current one is used up: the window accepts it), without marking it used.
    pub fn fresh_code(&self, now: i64) -> String {
        let last = *self.last_step.lock().unwrap();
        totp::code_for_step(&self.secret, totp::step_at(now).max(last + 1))
    }

    /// [`Self::fresh_code`], marked used (for an attempt that will succeed).
    pub fn next_code(&self, now: i64) -> String {
        let mut last = self.last_step.lock().unwrap();
        let step = totp::step_at(now).max(*last + 1);
        *last = step;
        totp::code_for_step(&self.secret, step)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The page at `path` (200 expected).
    pub async fn page(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.unwrap()
    }

    /// This browser's CSRF token: from the sign-in form, or (signed in, where that form
    /// leads on) from the practices page.
    pub async fn csrf(&self) -> String {
        let r = self.get("/login").await;
        if r.status() == 303 {
            return form_csrf(&self.page("/practices").await);
        }
        assert_eq!(r.status(), 200, "GET /login");
        form_csrf(&r.text().await.unwrap())
    }

    /// POSTs `fields` with CSRF token `csrf` and the console's own `Origin`.
    pub async fn post_with(&self, action: &str, csrf: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = vec![("csrf_token", csrf)];
        all.extend_from_slice(fields);
        self.client
            .post(self.url(action))
            .header("origin", &self.origin)
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// Signs in again in this browser (name, password, a fresh code; the code counts as
    /// used when the sign-in succeeds).
    pub async fn sign_in(&self, now: i64) -> Response {
        let code = self.fresh_code(now);
        let csrf = self.csrf().await;
        let r = self
            .post_with(
                "/login",
                &csrf,
                &[("name", &self.name), ("password", OP_PW), ("code", &code)],
            )
            .await;
        if r.status() == 303 {
            self.next_code(now);
        }
        r
    }
}

/// The password step of the setup at `link` in `client`: the page's CSRF token, [`OP_PW`]
/// twice, the console's own `Origin`. Answered with the TOTP enrolment page (200).
pub async fn choose_password(app: &TestApp, client: &reqwest::Client, link: &str) -> Response {
    let page = client.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200, "setup page");
    let csrf = form_csrf(&page.text().await.unwrap());
    client
        .post(link)
        .header("origin", app.operator_url(""))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("password", OP_PW),
            ("password_repeat", OP_PW),
        ])
        .send()
        .await
        .unwrap()
}

/// Completes the setup at `link` in `client`: password [`OP_PW`], then the TOTP enrolment
/// with the secret shown on the page. Returns the secret, the step used and the answer to
/// the code (a 303 to `/practices` with the session cookie).
pub async fn complete_setup(
    app: &TestApp,
    client: &reqwest::Client,
    link: &str,
) -> (Vec<u8>, i64, Response) {
    let origin = app.operator_url("");
    let enrol = choose_password(app, client, link).await;
    assert_eq!(enrol.status(), 200, "password step");
    let html = enrol.text().await.unwrap();
    let secret = shown_secret(&html);
    let csrf = form_csrf(&html);
    let now = app.clock.now();
    let step = totp::step_at(now);
    let done = client
        .post(format!("{link}/totp"))
        .header("origin", &origin)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("code", &totp::code_for_step(&secret, step)),
        ])
        .send()
        .await
        .unwrap();
    (secret, step, done)
}

/// An operator `name` created, set up (password and TOTP) and signed in: the browser with
/// the console's session.
pub async fn signed_in_operator(app: &TestApp, name: &str) -> OperatorClient {
    let link = add_operator(app, name);
    let client = client();
    let (secret, step, done) = complete_setup(app, &client, &link).await;
    assert_eq!(done.status(), 303, "setup completes");
    assert_eq!(done.headers()["location"], "/practices");
    OperatorClient {
        client,
        origin: app.operator_url(""),
        name: name.to_owned(),
        secret,
        last_step: Mutex::new(step),
    }
}
