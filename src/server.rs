//! Composition: one actix-web server for all practices on the main listener, and the
//! operator listener (health, metrics, the broadcast feed, the operator console) on its
//! own port; the node's broadcast sync task.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use kollegium_tenants::broadcast::{NodeFeed, OperatorFeed, OperatorKey, SyncWorker, Syncer};
use kollegium_tenants::jobs::{self, JobSignal, JobWorker};
use kollegium_tenants::mail::{MailJobs, Mailer};
use kollegium_tenants::perms;
use kollegium_tenants::secrets::NodeKey;
use kollegium_tenants::web::metrics::{Gauge, GaugeKind, Gauges, Metrics};
use kollegium_tenants::web::shell::{self as web_shell, Shell};
use kollegium_tenants::web::{ErrorPage, WebContext, assets, client_addr, headers, host};
use kollegium_tenants::web::{PathClass, assets::Source};
use kollegium_tenants::{DbKind, SharedClock, TenantStore, registry};

use crate::config::Config;
use crate::operator::{self, Console};

/// Paths where POSTs authenticate without cookies (OAuth endpoints of the IdP).
fn csrf_exempt() -> Vec<&'static str> {
    let mut paths = kollegium_idp::CSRF_EXEMPT.to_vec();
    paths.extend_from_slice(kollegium_platform::CSRF_EXEMPT);
    paths
}

/// Options that differ between uses of the server.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    /// Let actix stop on SIGINT/SIGTERM by itself. The CLI installs its own handlers
    /// before start-up and calls [`RunningServer::stop`]; tests stop through the handle.
    pub handle_signals: bool,
    /// How often the job worker compares due times with the clock (`None`: every second).
    /// Tests that move a manual clock set it long and kick the worker after moving it, so
    /// the rounds they run themselves do not race it.
    pub job_tick: Option<Duration>,
}

/// A started server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub operator_addr: SocketAddr,
    pub store: Arc<TenantStore>,
    pub context: web::Data<WebContext>,
    main: ServerHandle,
    operator: ServerHandle,
    joins: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    reaper: tokio::task::JoinHandle<()>,
    /// Gives freed heap back to the system on an interval; stops when dropped.
    #[allow(dead_code)]
    trimmer: Option<kollegium_tenants::memory::Trimmer>,
    /// The node's one job worker: mail, search indexing, mention mails, back-channel
    /// logout (tests kick it after moving the clock).
    pub job_worker: JobWorker,
    /// The apps' own periodic work (chat retention).
    pub jobs: kollegium_platform::app::Jobs,
    /// Reads the practices' member directories (tests sync a practice with it).
    pub directory: Arc<kollegium_platform::directory::DirectorySync>,
    /// Applies the member directory of open practices periodically (tests kick it).
    pub directory_worker: kollegium_platform::directory::worker::DirectoryWorker,
    shutdown_grace: Duration,
    /// Chat search: index cache and the indexer's doorbell (tests run jobs with it).
    pub search: Arc<kollegium_platform::search::SearchService>,
    /// The workspace apps' shared context (tests export a practice with it).
    pub shared: Arc<kollegium_platform::app::AppContext>,
    /// The node's verified broadcasts (`data/broadcasts.sqlite`), for every practice.
    pub broadcasts: Arc<NodeFeed>,
    /// The operator's feed this node serves at `/feed` (`data/operator.sqlite`).
    pub operator_feed: Arc<OperatorFeed>,
    /// Syncs the broadcasts from the feed at start and on the interval (tests run rounds).
    pub broadcast_sync: SyncWorker,
}

/// Practice database kinds with a `mail_queue` table, whose mail jobs the job worker runs.
pub fn mail_kinds() -> Vec<&'static DbKind> {
    vec![&kollegium_idp::IDP_DB, &kollegium_platform::PLATFORM_DB]
}

/// Path prefixes counted apart in metrics and logs, from their owners (the IdP, the apps).
fn path_classes() -> Vec<PathClass> {
    let mut classes = kollegium_idp::PATH_CLASSES.to_vec();
    classes.extend(kollegium_platform::path_classes());
    classes
}

/// Static assets beyond the shell's own, from their owners (the workspace's apps, the
/// IdP's password meter).
fn app_assets() -> Vec<Source> {
    let mut all = kollegium_platform::app::assets();
    all.extend_from_slice(kollegium_platform::live::ASSETS);
    all.extend_from_slice(kollegium_idp::passwords::ASSETS);
    all
}

/// The practice origin's one shell, composed from its owners: the workspace's navigation
/// (the start page and the app list), the IdP's administration (for admins), the
/// workspace's search field, and "Mein Konto" in the user menu.
pub fn shell() -> Shell {
    let mut nav = kollegium_platform::shell::entries();
    nav.extend(kollegium_idp::views::shell_nav());
    Shell {
        home: kollegium_platform::shell::home().to_owned(),
        nav,
        search: Some(kollegium_platform::shell::search_field()),
        user_menu: kollegium_idp::views::shell_user_menu(),
        // The live channel on every signed-in page ("Mein Konto" and the administration too):
        // the navigation's unread and mention counts follow the member everywhere.
        // The apps' scripts for their navigation counts follow it (news: unread badge).
        scripts: kollegium_platform::shell::scripts(),
    }
}

/// Opens the node (key, registry) of `config.data_dir`: owner-only modes for everything
/// it creates, and wider modes found under it tightened with a warning.
pub fn open_store(config: &Config, clock: SharedClock) -> anyhow::Result<Arc<TenantStore>> {
    perms::restrict_umask();
    perms::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let node_key = NodeKey::load_or_create(&config.data_dir)?;
    perms::tighten_data_dir(&config.data_dir)?;
    let store = TenantStore::open(config.store_settings(), Arc::new(node_key), clock)?;
    Ok(Arc::new(store))
}

async fn not_found() -> HttpResponse {
    ErrorPage::not_found().response()
}

async fn operator_not_found() -> Result<HttpResponse, operator::ConsoleError> {
    Err(operator::ConsoleError::NotFound)
}

async fn healthz(ctx: web::Data<WebContext>) -> HttpResponse {
    let store = ctx.store.clone();
    match kollegium_tenants::web::block(move || store.with_registry(registry::count_live)).await {
        Ok(Ok(_)) => HttpResponse::Ok().content_type("text/plain").body("ok\n"),
        _ => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("registry unavailable\n"),
    }
}

async fn metrics_text(ctx: web::Data<WebContext>, m: web::Data<Metrics>) -> HttpResponse {
    let store = ctx.store.clone();
    let known = kollegium_tenants::web::block(move || store.with_registry(registry::count_live))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(-1);
    let gauges = Gauges {
        open_practices: ctx.store.open_practices(),
        open_databases: ctx.store.open_databases(),
        open_connections: ctx.store.open_connections(),
        practices_known: known,
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render(&gauges))
}

/// The node's broadcast sync on `/metrics`: the last seq it verified and stored (whether
/// the node is current with the operator's feed; the `news` benchmark waits for it) and the
/// rounds run. Nothing about practices or members.
fn broadcast_gauges(syncer: &Arc<Syncer>) -> Vec<Gauge> {
    let feed = syncer.feed().clone();
    let rounds = syncer.clone();
    vec![
        Gauge::new(
            "kollegium_broadcast_last_seq",
            "The last seq of the operator's feed this node has verified and stored.",
            GaugeKind::Gauge,
            move || feed.last_seq(),
        ),
        Gauge::new(
            "kollegium_broadcast_sync_rounds_total",
            "Rounds of the broadcast sync run to their end, successful or not.",
            GaugeKind::Counter,
            move || i64::try_from(rounds.rounds()).unwrap_or(i64::MAX),
        ),
    ]
}

/// `GET /feed?after=<seq>&limit=<n>` on the operator listener: the signed entries after
/// `after` (default 0), at most `limit` (1 to 100, default 100), and the next page's
/// `after` when there is one. The answer depends on nothing but the query: no session, no
/// cookie, nothing about the caller is read or kept.
async fn feed_page(req: actix_web::HttpRequest, feed: web::Data<OperatorFeed>) -> HttpResponse {
    // What a node sent, at debug level, so an operator (and the privacy test) can see that
    // feed requests carry nothing about practices or members: the query (escaped, cut) and
    // the header names (no values: never a credential).
    let query: String = req.query_string().chars().take(200).collect();
    let headers: Vec<&str> = req.headers().keys().map(|k| k.as_str()).collect();
    tracing::debug!(query = ?query, headers = ?headers, "feed request");
    let (after, limit) = match feed_query(req.query_string()) {
        Ok(q) => q,
        Err(why) => {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({"error": "bad_request", "message": why}));
        }
    };
    let feed = feed.into_inner();
    match kollegium_tenants::web::block(move || feed.page(after, limit)).await {
        Ok(Ok(page)) => HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(page),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the broadcast feed cannot be read");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"error": "unavailable", "message": "feed unavailable"}))
        }
        Err(e) => {
            tracing::error!(error = %e, "the broadcast feed task failed");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"error": "unavailable", "message": "feed unavailable"}))
        }
    }
}

/// `after` (a seq, 0 or more) and `limit` (1 to the page limit) of a feed request.
fn feed_query(query: &str) -> Result<(i64, usize), String> {
    use kollegium_tenants::broadcast::operator::PAGE_LIMIT;
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| "the query is malformed".to_owned())?
        .into_inner();
    let one = |name: &str| -> Result<Option<&str>, String> {
        let mut found = pairs.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(format!("`{name}` is given more than once"));
        }
        Ok(first)
    };
    let number = |v: &str| -> Option<u64> {
        (!v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse().ok())
            .flatten()
    };
    let after = match one("after")? {
        None => 0,
        Some(v) => number(v)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| "`after` must be a seq: a whole number, 0 or more".to_owned())?,
    };
    let limit = match one("limit")? {
        None => PAGE_LIMIT,
        Some(v) => number(v)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=PAGE_LIMIT).contains(n))
            .ok_or_else(|| format!("`limit` must be a whole number from 1 to {PAGE_LIMIT}"))?,
    };
    Ok((after, limit))
}

/// Binds both listeners and starts serving.
pub async fn start(
    config: &Config,
    clock: SharedClock,
    opts: StartOptions,
) -> anyhow::Result<RunningServer> {
    // Checked at load; checked again here for configurations built in code.
    config.trusted_proxies()?;
    let store = open_store(config, clock)?;
    let broadcast_key = config.broadcast_public_key()?;
    let broadcasts = Arc::new(
        NodeFeed::open(&config.data_dir, broadcast_key)
            .context("cannot open the node's broadcasts (broadcasts.sqlite)")?,
    );
    let operator_feed = Arc::new(
        OperatorFeed::open(&config.data_dir)
            .context("cannot open the operator's feed (operator.sqlite)")?,
    );
    let listener = TcpListener::bind(config.listen_addr()?)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let op_listener = TcpListener::bind(config.operator_addr()?)
        .with_context(|| format!("cannot listen on {}", config.operator_listen))?;
    let operator_addr = op_listener.local_addr()?;

    let mut settings = config.web_settings(addr.port(), csrf_exempt());
    settings.path_classes = path_classes();
    let limits = settings.limits.clone();
    assets::register(&app_assets());
    web_shell::install(shell());
    // Pages rendered without their owner's help (error pages) find the member by the IdP.
    web_shell::install_signed_in(Arc::new(kollegium_idp::views::signed_in));
    let metrics = Arc::new(Metrics::default());
    let mailer = Mailer::new(&config.mail_settings()).context("configuration key `smtp`")?;
    let job_signal = Arc::new(JobSignal::new());
    let context = web::Data::new(WebContext {
        settings,
        store: store.clone(),
        metrics: metrics.clone(),
        jobs: job_signal.clone(),
    });

    let idp = web::Data::new(
        kollegium_idp::IdpState::new(store.clock().clone(), config.idp.clone())
            .map_err(|e| anyhow::anyhow!("configuration key `idp.argon2`: {e}"))?
            .with_node(&config.base_domain, vec![addr, operator_addr]),
    );
    let http = kollegium_tenants::http::node_client(&config.base_domain, addr.ip())
        .context("cannot build the server-to-server HTTP client")?;
    let mut platform = kollegium_platform::Platform::new(
        store.clock().clone(),
        http,
        &config.platform_settings(),
        job_signal.clone(),
        Some(broadcasts.clone()),
    );
    metrics.register(platform.take_gauges());
    let trim_stats = Arc::new(kollegium_tenants::memory::TrimStats::default());
    metrics.register(trim_stats.gauges());
    let platform = Arc::new(platform);
    let directory = Arc::new(kollegium_platform::directory::DirectorySync::new(
        platform.sign_in.clone(),
    ));
    let search = platform.search();
    let shared = platform.shared.clone().into_inner();

    // The kinds of background job, each registered by its owner: mail (every database
    // with a `mail_queue`), the IdP's back-channel logout, the workspace's (search index,
    // the apps' kinds).
    let mut job_kinds = jobs::Registry::new();
    let mail_settings = config.mail_worker_settings(mail_kinds());
    let mut job_settings = jobs::WorkerSettings {
        sweep_secs: mail_settings.sweep_secs.min(15),
        ..jobs::WorkerSettings::default()
    };
    if let Some(tick) = opts.job_tick {
        job_settings.tick = tick;
    }
    MailJobs::new(Arc::new(mailer), mail_settings, store.clock().clone()).register(&mut job_kinds);
    let backchannel = kollegium_idp::oidc::backchannel::BackchannelJobs::new(
        store.clone(),
        context.clone(),
        idp.clone(),
        addr.ip(),
    )
    .context("cannot build the back-channel logout HTTP clients")?;
    job_kinds.register(&kollegium_idp::IDP_DB, backchannel);
    let node = kollegium_platform::app::Node {
        store: &store,
        web: &context,
        shared: &shared,
        directory: &directory,
    };
    kollegium_platform::app::register_job_kinds(
        &mut job_kinds,
        &node,
        kollegium_platform::search::worker::WorkerSettings::default(),
    );
    let hasher = idp.hasher.clone();
    let ctx = context.clone();
    let mut main = HttpServer::new(move || {
        App::new()
            .app_data(ctx.clone())
            .app_data(idp.clone())
            .app_data(web::PayloadConfig::new(limits.max_body_bytes))
            .app_data(web::FormConfig::default().limit(limits.max_form_bytes))
            .app_data(web::JsonConfig::default().limit(limits.max_body_bytes))
            .wrap(from_fn(host::resolve))
            .wrap(from_fn(headers::plumbing))
            .wrap(from_fn(client_addr::resolve))
            .configure(assets::configure)
            // The workspace first: actix tries routes in order, each `{param}` route with a
            // regex, and the workspace's busy paths (`/api/chat/…`) would otherwise try the
            // IdP's patterns first. The two share no path.
            .configure(|cfg| platform.configure(cfg))
            .configure(kollegium_idp::configure)
            .default_service(web::to(not_found))
    })
    .listen(listener)?
    .shutdown_timeout(config.shutdown_timeout_secs);
    if config.workers > 0 {
        main = main.workers(config.workers);
    }
    if !opts.handle_signals {
        main = main.disable_signals();
    }
    let main = main.run();

    let ctx = context.clone();
    let m = web::Data::from(metrics.clone());
    let feed = web::Data::from(operator_feed.clone());
    // The operator's signing key for the console: made on first use by the node that is its
    // own operator (no `broadcast.public_key`); a node that trusts another operator's key
    // reads one only if its file is there, and makes none.
    let key_path = config.operator_key_path();
    let news_key = if config.broadcast.public_key.is_none() || key_path.exists() {
        Some(Arc::new(
            OperatorKey::load_or_create(&key_path)
                .context("cannot read the operator's signing key")?,
        ))
    } else {
        None
    };
    let news_key = web::Data::new(operator::news_pages::NewsKey(news_key));
    let console_store = store.clone();
    let throttle = config.idp.clone();
    let public_origin = config.operator_origin()?;
    let mail_setup_link = !config.smtp.host.is_empty();
    let console = web::Data::new(
        tokio::task::spawn_blocking(move || {
            Console::open(
                console_store,
                hasher,
                throttle,
                public_origin,
                mail_setup_link,
            )
        })
        .await?
        .context("cannot open the operator console's database (operator.sqlite)")?,
    );
    let mut operator = HttpServer::new(move || {
        App::new()
            .app_data(ctx.clone())
            .app_data(m.clone())
            .app_data(feed.clone())
            .app_data(console.clone())
            .app_data(news_key.clone())
            .app_data(web::PayloadConfig::new(operator::web::MAX_FORM_BYTES))
            .app_data(web::FormConfig::default().limit(operator::web::MAX_FORM_BYTES))
            .wrap(from_fn(operator::web::guard))
            .wrap(from_fn(client_addr::resolve))
            .configure(assets::configure)
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics_text))
            .route("/feed", web::get().to(feed_page))
            .configure(operator::configure)
            .default_service(web::to(operator_not_found))
    })
    .listen(op_listener)?
    .workers(1)
    .shutdown_timeout(config.shutdown_timeout_secs);
    if !opts.handle_signals {
        operator = operator.disable_signals();
    }
    let operator = operator.run();

    let main_handle = main.handle();
    let operator_handle = operator.handle();
    let joins = vec![tokio::spawn(main), tokio::spawn(operator)];
    let reaper_store = store.clone();
    let reaper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            let closed = reaper_store.close_idle();
            if closed > 0 {
                tracing::debug!(closed, "closed idle practices");
            }
            let store = reaper_store.clone();
            match tokio::task::spawn_blocking(move || store.shrink_pools()).await {
                Ok(n) if n > 0 => tracing::debug!(connections = n, "shrank database pools"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "shrinking database pools failed"),
            }
        }
    });
    let trimmer = kollegium_tenants::memory::Trimmer::spawn(
        Duration::from_secs(config.limits.memory_trim_secs),
        trim_stats,
    );
    let job_worker = JobWorker::spawn(store.clone(), job_kinds, job_signal, job_settings);
    metrics.register(job_worker.stats().gauges());
    let jobs = kollegium_platform::app::Jobs::spawn(&kollegium_platform::app::Node {
        store: &store,
        web: &context,
        shared: &shared,
        directory: &directory,
    });
    let directory_worker = kollegium_platform::directory::worker::DirectoryWorker::spawn(
        context.clone(),
        directory.clone(),
    );
    let syncer = Arc::new(
        Syncer::new(
            broadcasts.clone(),
            config.broadcast_sync(operator_addr),
            store.clock().clone(),
        )
        .context("cannot build the broadcast feed's HTTP client")?,
    );
    metrics.register(broadcast_gauges(&syncer));
    let broadcast_sync = SyncWorker::spawn(syncer);
    tracing::info!(%addr, %operator_addr, "kollegium listening");
    Ok(RunningServer {
        addr,
        operator_addr,
        store,
        context,
        main: main_handle,
        operator: operator_handle,
        joins,
        reaper,
        trimmer,
        job_worker,
        jobs,
        directory,
        directory_worker,
        shutdown_grace: Duration::from_secs(config.shutdown_timeout_secs),
        search,
        shared,
        broadcasts,
        operator_feed,
        broadcast_sync,
    })
}

impl RunningServer {
    /// Waits until both listeners stop (on a signal), then closes every database.
    pub async fn wait(self) -> anyhow::Result<()> {
        for j in self.joins {
            j.await??;
        }
        self.reaper.abort();
        self.broadcast_sync.stop(self.shutdown_grace).await;
        self.jobs.stop(self.shutdown_grace).await;
        self.directory_worker.stop(self.shutdown_grace).await;
        self.job_worker.stop(self.shutdown_grace).await;
        self.store.close_all();
        tracing::info!("kollegium stopped; databases closed");
        Ok(())
    }

    /// Runs the chat retention job now (it also runs shortly after start and daily).
    /// Returns how many messages it deleted.
    pub async fn run_chat_retention(&self) -> anyhow::Result<usize> {
        Ok(
            kollegium_platform::chat::retention::run_node(self.store.clone(), self.search.clone())
                .await?,
        )
    }

    /// Stops gracefully: in-flight requests finish, then databases close.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.main.stop(true).await;
        self.operator.stop(true).await;
        self.wait().await
    }
}

#[cfg(test)]
mod tests {
    use kollegium_tenants::web::shell::Audience;

    use super::*;

    #[test]
    fn feed_queries_are_seqs_and_limits_or_refused() {
        assert_eq!(feed_query(""), Ok((0, 100)));
        assert_eq!(feed_query("after=7&limit=3"), Ok((7, 3)));
        assert_eq!(feed_query("limit=100&other=x"), Ok((0, 100)));
        for bad in [
            "after=-1",
            "after=abc",
            "after=",
            "after=1e3",
            "after=99999999999999999999",
            "after=1&after=2",
            "limit=0",
            "limit=101",
            "limit=+5",
            "after=%ZZ",
        ] {
            assert!(feed_query(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn metrics_show_the_last_verified_broadcast_seq() {
        use kollegium_tenants::broadcast::{Draft, OperatorKey, SyncSettings};
        let dir = tempfile::tempdir().unwrap();
        let key = OperatorKey::generate();
        let node = Arc::new(NodeFeed::open(dir.path(), key.public()).unwrap());
        let settings = SyncSettings {
            feed_url: "http://127.0.0.1:9/feed".into(),
            interval: Duration::from_secs(60),
        };
        let clock: SharedClock = Arc::new(kollegium_tenants::SystemClock);
        let syncer = Arc::new(Syncer::new(node.clone(), settings, clock).unwrap());
        let metrics = Metrics::default();
        metrics.register(broadcast_gauges(&syncer));
        let line = |name: &str| {
            let text = metrics.render(&Gauges::default());
            text.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .map(str::to_owned)
        };
        assert_eq!(
            line("kollegium_broadcast_last_seq").as_deref(),
            Some("kollegium_broadcast_last_seq 0")
        );
        let operator = OperatorFeed::open(dir.path()).unwrap();
        for title in ["Tipp 1", "Tipp 2"] {
            let draft = Draft {
                title: title.into(),
                body: "Neu: **GOP 03230**.".into(),
                ..Draft::default()
            };
            operator.publish(&key, draft, 100).unwrap();
        }
        let page = operator.page(0, 100).unwrap();
        let raw = page
            .entries
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        assert_eq!(node.accept(raw, 100).unwrap().stored, 2);
        assert_eq!(
            line("kollegium_broadcast_last_seq").as_deref(),
            Some("kollegium_broadcast_last_seq 2")
        );
        // The feed is unreachable here: the round ends, is counted, and keeps what it has.
        assert!(syncer.round().await.is_err());
        assert_eq!(
            line("kollegium_broadcast_sync_rounds_total").as_deref(),
            Some("kollegium_broadcast_sync_rounds_total 1")
        );
        assert_eq!(
            line("kollegium_broadcast_last_seq").as_deref(),
            Some("kollegium_broadcast_last_seq 2")
        );
    }

    #[test]
    fn the_shell_is_the_workspaces_navigation_then_the_administration_for_admins() {
        let s = shell();
        assert_eq!(s.home, "/");
        let nav: Vec<_> = s
            .nav
            .iter()
            .map(|e| (e.label.as_str(), e.href.as_str(), e.audience))
            .collect();
        let mut expected: Vec<_> = kollegium_platform::app::navigation()
            .iter()
            .map(|(_, e)| (e.label, e.href, Audience::Everyone))
            .collect();
        expected.push(("Praxisverwaltung", "/id/admin/users", Audience::Admins));
        assert_eq!(nav, expected);
        let menu: Vec<_> = s
            .user_menu
            .iter()
            .map(|e| (e.label.as_str(), e.href.as_str(), e.audience))
            .collect();
        assert_eq!(menu, [("Mein Konto", "/id/account", Audience::Everyone)]);
        let search = s.search.unwrap();
        assert_eq!(
            (
                search.action.as_str(),
                search.name.as_str(),
                search.label.as_str()
            ),
            ("/search", "q", "Suche")
        );
    }
}
