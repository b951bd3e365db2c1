//! `TestApp`: a real Kollegium server on port 0 with a fresh data directory, and an HTTP
//! client that resolves `*.localhost` to loopback (glibc does not).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use kollegium::config::Config;
use kollegium::server::StartOptions;
use kollegium::{RunningServer, practices};
use kollegium_tenants::provision::{
    CreatePractice, ProvisionError, ProvisionHook, ProvisionReport,
};
use kollegium_tenants::{SharedClock, Slug, SystemClock, Tenant};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tempfile::TempDir;

/// Resolves `localhost` and every `*.localhost` name to 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct LocalhostResolver;

impl Resolve for LocalhostResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                let addrs: Addrs = Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
                Ok(addrs)
            } else {
                Err(format!("test resolver refuses {host}").into())
            }
        })
    }
}

/// How long a test client keeps an idle connection: well below the server's keep-alive
/// (actix-web's 5 s), so a client never sends on a connection the server is closing just
/// then ("connection closed before message completed" on a busy machine).
const CLIENT_IDLE: Duration = Duration::from_secs(2);

/// The builder every test client starts from: loopback names, idle connections dropped
/// after [`CLIENT_IDLE`], redirects not followed (tests look at them).
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(LocalhostResolver))
        .pool_idle_timeout(CLIENT_IDLE)
        .redirect(reqwest::redirect::Policy::none())
}

/// A client like a browser: cookies kept, redirects not followed (tests look at them).
pub fn client() -> reqwest::Client {
    builder().cookie_store(true).build().unwrap()
}

/// A browser-like client whose cookie jar the test can read (for WebSocket handshakes).
pub fn client_with_jar() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let c = builder().cookie_provider(jar.clone()).build().unwrap();
    (c, jar)
}

/// A client without a cookie store: sends exactly the cookies a test gives it.
pub fn raw_client() -> reqwest::Client {
    builder().build().unwrap()
}

/// The value a response sets for cookie `name`, if it sets one.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The job worker's tick in tests with a manual clock: it never looks at the clock by
/// itself within a test.
const MANUAL_CLOCK_JOB_TICK: Duration = Duration::from_secs(3600);

pub struct TestApp {
    /// Keeps the temporary directory alive as long as the app.
    pub _dir: TempDir,
    pub config: Config,
    pub server: Option<RunningServer>,
    pub port: u16,
    pub operator_port: u16,
    pub client: reqwest::Client,
    pub clock: SharedClock,
    /// The job worker's tick (long with a manual clock).
    job_tick: Option<Duration>,
}

pub fn test_config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        operator_listen: "127.0.0.1:0".into(),
        workers: 2,
        shutdown_timeout_secs: 5,
        // Cheap hashing keeps the suite fast; production defaults are tested in unit tests.
        idp: kollegium_idp::IdpSettings {
            argon2: kollegium_idp::passwords::Argon2Params {
                m_kib: 256,
                t: 1,
                p: 1,
            },
            // Test tools (back-channel receivers) listen on loopback.
            allow_private_endpoints: true,
            ..kollegium_idp::IdpSettings::default()
        },
        // Every server scans uploads with the test process's one real clamd.
        clamd: kollegium::config::ClamdConfig {
            address: crate::clamd::address(),
            timeout_secs: 30,
        },
        ..Config::default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_with(Arc::new(SystemClock), None, adjust).await
    }

    /// A server whose time is `clock` (e.g. a `ManualClock` the test moves). Its job worker
    /// does not look at the clock by itself: after moving it, kick the worker
    /// (`server().job_worker.kick()`) or run the round in the test.
    pub async fn spawn_with_clock(clock: SharedClock, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_with(clock, Some(MANUAL_CLOCK_JOB_TICK), adjust).await
    }

    async fn start_with(
        clock: SharedClock,
        job_tick: Option<Duration>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir.path().join("data"));
        adjust(&mut config);
        let server = kollegium::start(
            &config,
            clock.clone(),
            StartOptions {
                handle_signals: false,
                job_tick,
            },
        )
        .await
        .unwrap();
        let port = server.addr.port();
        let operator_port = server.operator_addr.port();
        Self {
            _dir: dir,
            config,
            server: Some(server),
            port,
            operator_port,
            client: client(),
            clock,
            job_tick,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// `http://<slug>.localhost:<port><path>`
    pub fn url(&self, slug: &str, path: &str) -> String {
        format!("http://{slug}.localhost:{}{path}", self.port)
    }

    /// `http://localhost:<port><path>`
    pub fn node_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    pub fn operator_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.operator_port)
    }

    /// Creates a practice through the library, exactly as `practice create` does.
    pub async fn create_practice(&self, slug: &str) -> ProvisionReport {
        self.try_create_practice(slug, &[]).await.unwrap()
    }

    pub async fn try_create_practice(
        &self,
        slug: &str,
        extra: &[&dyn ProvisionHook],
    ) -> Result<ProvisionReport, ProvisionError> {
        let store = self.server().store.clone();
        let input = CreatePractice::parse(
            slug,
            &format!("Praxis {slug}"),
            &format!("owner@{slug}.example"),
        )?;
        let now = self.clock.now();
        let result = {
            let mut conn = store.lock_registry().unwrap();
            practices::create(
                store.data_dir(),
                store.node_key(),
                &mut conn,
                now,
                &self.server().context.settings,
                &input,
                !self.config.smtp.host.is_empty(),
                extra,
            )
        };
        store.invalidate(&input.slug);
        // As request code does after queuing mail (the owner's setup mail with SMTP).
        self.server()
            .context
            .jobs
            .poke(&input.slug, &kollegium_idp::IDP_DB);
        result
    }

    /// Applies a lifecycle change through the library and drops server caches for it.
    pub fn change(&self, slug: &str, change: practices::Change<'_>) -> Result<(), ProvisionError> {
        let store = self.server().store.clone();
        let slug = Slug::parse(slug)?;
        let now = self.clock.now();
        let result = {
            let mut conn = store.lock_registry().unwrap();
            practices::change(
                store.data_dir(),
                store.node_key(),
                &mut conn,
                now,
                &slug,
                change,
            )
        };
        store.invalidate(&slug);
        result
    }

    /// A handle to a practice as request code gets it.
    pub fn tenant(&self, slug: &str) -> Tenant {
        let slug = Slug::parse(slug).unwrap();
        self.server().store.tenant(&slug).unwrap().unwrap()
    }

    /// What a fresh browser gets at practice `slug`'s start page: 303 (to the sign-in) while
    /// the practice is active, 403 ("Praxis gesperrt") while it is suspended.
    pub async fn front_door(&self, slug: &str) -> u16 {
        client()
            .get(self.url(slug, "/"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Practice `slug`'s export as the running node makes it: every app's part.
    pub fn export(&self, slug: &str) -> Vec<kollegium_platform::app::AppExport> {
        let mut conn = self
            .tenant(slug)
            .conn(&kollegium_platform::PLATFORM_DB)
            .unwrap();
        kollegium_platform::app::export(
            kollegium_platform::apps(),
            &self.server().shared,
            &mut conn,
        )
        .unwrap()
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.restart_after(|_| {}).await;
    }

    /// Stops the server gracefully, runs `between` on the data directory (no server runs
    /// then), and starts a new one on it.
    pub async fn restart_after(&mut self, between: impl FnOnce(&Path)) {
        self.server.take().unwrap().stop().await.unwrap();
        between(&self.config.data_dir);
        let server = kollegium::start(
            &self.config,
            self.clock.clone(),
            StartOptions {
                handle_signals: false,
                job_tick: self.job_tick,
            },
        )
        .await
        .unwrap();
        self.port = server.addr.port();
        self.operator_port = server.operator_addr.port();
        self.server = Some(server);
    }

    /// Creates an active account with a password directly in the practice's IdP database
    /// (a fixture: the invitation flow itself is tested separately).
    pub async fn create_user(
        &self,
        slug: &str,
        username: &str,
        password: &str,
        admin: bool,
    ) -> kollegium_idp::users::UserId {
        let profile = kollegium_idp::users::Profile {
            is_admin: admin,
            roles: vec!["mfa".into()],
            ..kollegium_idp::users::Profile::default()
        };
        self.create_user_with(slug, username, password, profile)
            .await
    }

    /// [`Self::create_user`] with the claims of `profile` (roles, specialty, KV region);
    /// its username, e-mail address and display name are filled in as there.
    pub async fn create_user_with(
        &self,
        slug: &str,
        username: &str,
        password: &str,
        profile: kollegium_idp::users::Profile,
    ) -> kollegium_idp::users::UserId {
        use kollegium_idp::users::{self, Profile};
        let tenant = self.tenant(slug);
        let hasher = kollegium_idp::passwords::Hasher::new(self.config.idp.argon2).unwrap();
        let hash = hasher.hash_blocking(password).unwrap();
        let now = self.clock.now();
        let profile = Profile {
            username: username.into(),
            email: format!("{username}@{slug}.example"),
            display_name: format!("{username} Test"),
            ..profile
        }
        .validate()
        .unwrap();
        tokio::task::spawn_blocking(move || {
            let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
            let id = users::create_invited(&mut conn, &profile, false, now)
                .unwrap()
                .unwrap();
            users::set_password(&mut conn, id, &hash, true, now).unwrap();
            id
        })
        .await
        .unwrap()
    }

    /// Signs `client` in at a practice's IdP through the real login form; returns the
    /// response to the form post (a 303 on success).
    pub async fn login(
        &self,
        client: &reqwest::Client,
        slug: &str,
        login: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = client
            .get(self.url(slug, "/id/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = form_csrf(&page);
        client
            .post(self.url(slug, "/id/login"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("login", login),
                ("password", password),
                ("next", "/id/"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Follows redirects by hand (the client does not), resolving relative locations against
    /// the practice origin. Returns the final response.
    pub async fn follow(
        &self,
        client: &reqwest::Client,
        slug: &str,
        mut url: String,
    ) -> reqwest::Response {
        for _ in 0..15 {
            let r = client.get(&url).send().await.unwrap();
            if !r.status().is_redirection() {
                return r;
            }
            let loc = r.headers()["location"].to_str().unwrap().to_owned();
            url = if loc.starts_with('/') {
                self.url(slug, &loc)
            } else {
                loc
            };
        }
        panic!("too many redirects at {url}");
    }

    /// Signs `client` in to a practice's workspace the way a browser does: `/auth/login` →
    /// the IdP's authorize endpoint → the login form → back to `/auth/callback`.
    pub async fn sign_in(&self, client: &reqwest::Client, slug: &str, login: &str, password: &str) {
        let page = self
            .follow(client, slug, self.url(slug, "/auth/login"))
            .await;
        let final_url = page.url().to_string();
        let html = page.text().await.unwrap();
        if !final_url.contains("/id/login") {
            // Already signed in at the IdP: the flow completed silently.
            return;
        }
        let next = html
            .split("name=\"next\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&#38;", "&")
            .replace("&amp;", "&")
            .replace("&#61;", "=")
            .replace("&#39;", "'")
            .replace("&#34;", "\"");
        let token = form_csrf(&html);
        let r = client
            .post(self.url(slug, "/id/login"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("login", login),
                ("password", password),
                ("next", next.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            303,
            "login failed: {}",
            r.text().await.unwrap_or_default()
        );
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let done = self.follow(client, slug, self.url(slug, &loc)).await;
        assert_eq!(
            done.status(),
            200,
            "sign-in did not complete at {}",
            done.url()
        );
    }

    /// Invites a user through the admin form as the admin signed in on `client`.
    pub async fn invite(
        &self,
        client: &reqwest::Client,
        slug: &str,
        username: &str,
        email: &str,
    ) -> reqwest::Response {
        let page = client
            .get(self.url(slug, "/id/admin/users/new"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "admin form");
        let token = form_csrf(&page.text().await.unwrap());
        client
            .post(self.url(slug, "/id/admin/users"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("username", username),
                ("email", email),
                ("display_name", &format!("{username} Neu")),
                ("roles", "mfa"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Signs in with a password, then answers the second step with `code`; returns the
    /// response to the code post.
    pub async fn login_totp(
        &self,
        client: &reqwest::Client,
        slug: &str,
        login: &str,
        password: &str,
        code: &str,
    ) -> reqwest::Response {
        let r = self.login(client, slug, login, password).await;
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("/id/login/totp"), "{to}");
        self.post_form(
            client,
            slug,
            &to,
            "/id/login/totp",
            &[("code", code), ("next", "/id/")],
        )
        .await
    }

    /// Loads `page` with `client`, then posts `fields` plus that page's CSRF token to
    /// `action`.
    pub async fn post_form(
        &self,
        client: &reqwest::Client,
        slug: &str,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let html = client
            .get(self.url(slug, page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = form_csrf(&html);
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        client
            .post(self.url(slug, action))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// Rows of a practice's IdP `mail_queue`, oldest first.
    pub async fn mail_rows(&self, slug: &str) -> Vec<MailRow> {
        use diesel::prelude::*;
        use kollegium_tenants::mail::schema::mail_queue as q;
        let tenant = self.tenant(slug);
        tokio::task::spawn_blocking(move || {
            let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
            q::table
                .order(q::id)
                .select((
                    q::id,
                    q::kind,
                    q::recipient,
                    q::attempts,
                    q::sent_at,
                    q::last_error,
                    q::failed_at,
                ))
                .load::<MailRow>(&mut *conn)
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// A user's row as the IdP sees it.
    pub async fn user(
        &self,
        slug: &str,
        id: kollegium_idp::users::UserId,
    ) -> kollegium_idp::users::User {
        let tenant = self.tenant(slug);
        tokio::task::spawn_blocking(move || {
            let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
            kollegium_idp::users::by_id(&mut conn, id).unwrap().unwrap()
        })
        .await
        .unwrap()
    }

    /// `.eml` files in a practice's outbox.
    pub fn outbox(&self, slug: &str) -> Vec<PathBuf> {
        let mut files = files_under(&self.data_dir().join("tenants").join(slug).join("outbox"));
        files.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".eml") && !n.starts_with('.'))
        });
        files.sort();
        files
    }

    /// Runs `f` on a connection to the practice's `idp.sqlite`.
    pub async fn idp_db<T: Send + 'static>(
        &self,
        slug: &str,
        f: impl FnOnce(&mut diesel::SqliteConnection) -> T + Send + 'static,
    ) -> T {
        let tenant = self.tenant(slug);
        tokio::task::spawn_blocking(move || {
            let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
            f(&mut conn)
        })
        .await
        .unwrap()
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client.get(url).send().await.unwrap()
    }
}

/// A row of `mail_queue` as the tests look at it.
#[derive(Debug, Clone, diesel::Queryable)]
pub struct MailRow {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub attempts: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
    pub failed_at: Option<i64>,
}

/// Points `config` at the test SMTP server on `port` (plain, fast retries).
pub fn use_smtp(config: &mut Config, port: u16) {
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = port;
    config.smtp.tls = kollegium::config::SmtpTls::None;
    config.smtp.from = "Kollegium <no-reply@kollegium.example>".into();
    config.smtp.timeout_secs = 5;
    config.smtp.retry_initial_secs = 1;
    config.smtp.retry_max_secs = 2;
}

/// Runs the `kollegium` binary with `--data-dir` and extra environment.
pub fn cli_in(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kollegium"));
    cmd.arg("--data-dir").arg(data_dir).args(args);
    cmd.env_remove("KOLLEGIUM_CONFIG")
        .env("KOLLEGIUM_LOG__LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.current_dir(data_dir.parent().unwrap_or(data_dir));
    cmd.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The CSRF token a page embeds in `<meta name="csrf-token">`.
pub fn meta_csrf(html: &str) -> String {
    let start = html.find("name=\"csrf-token\" content=\"").unwrap()
        + "name=\"csrf-token\" content=\"".len();
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_owned()
}

/// The CSRF token of the first form on a page (`<input name="csrf_token" value="...">`).
pub fn form_csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html
        .find(marker)
        .expect("page has a form with a CSRF token")
        + marker.len();
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_owned()
}

/// The CSRF token of the first form on the page at `url`, fetched with `c`.
pub async fn form_csrf_at(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    form_csrf(&c.get(url).send().await.unwrap().text().await.unwrap())
}

/// The password the chat tests give their users.
pub const CHAT_PW: &str = "Sonnenblume-Kaffee-42";

impl TestApp {
    /// Creates `user` (password [`CHAT_PW`]) and signs a fresh browser in to the workspace.
    pub async fn signed_in(&self, slug: &str, user: &str, admin: bool) -> reqwest::Client {
        self.create_user(slug, user, CHAT_PW, admin).await;
        let c = client();
        self.sign_in(&c, slug, user, CHAT_PW).await;
        c
    }

    /// Posts `body` into chat room `room` through the page's form; returns the message id.
    pub async fn say(&self, c: &reqwest::Client, slug: &str, room: &str, body: &str) -> String {
        let page = format!("/chat/{room}");
        let r = self
            .post_form(
                c,
                slug,
                &page,
                &format!("{page}/messages"),
                &[("body", body)],
            )
            .await;
        assert_eq!(r.status(), 303, "posting {body:?}");
        r.headers()["location"]
            .to_str()
            .unwrap()
            .split("#m")
            .nth(1)
            .unwrap()
            .to_owned()
    }
}
