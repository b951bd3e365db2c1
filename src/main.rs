//! The `kollegium` binary: parse the command line, load the configuration, call into the
//! library. Exit codes: 0 ok, 2 usage or configuration error, 1 runtime failure.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kollegium::cli::{Cli, ClientCommand, Command, ConfigCommand, PracticeCommand};
use kollegium::config::{Config, LogFormat};
use kollegium::practices::{self, Change};
use kollegium::server::{StartOptions, open_store};
use kollegium::{demo, news, start};
use kollegium_tenants::provision::{CreatePractice, ProvisionError};
use kollegium_tenants::registry::{self, Practice};
use kollegium_tenants::{Clock, Slug, SystemClock, clock};

/// An error with the exit code it maps to.
enum Failure {
    Usage(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Runtime(e)
    }
}

impl From<ProvisionError> for Failure {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Slug(_)
            | ProvisionError::Email(_)
            | ProvisionError::Name(_)
            | ProvisionError::Exists(_)
            | ProvisionError::Tombstoned(_)
            | ProvisionError::NotFound(_)
            | ProvisionError::WrongStatus { .. }
            | ProvisionError::Confirm(_) => Self::Usage(e.to_string()),
            other => Self::Runtime(other.into()),
        }
    }
}

fn main() -> ExitCode {
    // Before anything creates a file: the data directory is owner-only.
    kollegium_tenants::perms::restrict_umask();
    let cli = Cli::parse();
    let loaded = match Config::load(cli.config.as_deref(), cli.data_dir.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&loaded.config);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
        eprintln!("warning: {w}");
    }
    match run(cli.command, loaded.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.into()))
}

fn run(command: Command, config: Config) -> Result<(), Failure> {
    match command {
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config.redacted_toml());
            Ok(())
        }
        Command::Serve => serve(config, None),
        Command::Demo { roster_port } => {
            demo::check_loopback(&config).map_err(Failure::Usage)?;
            // Demo tools run on this machine: their back-channel addresses are loopback.
            let mut config = config;
            config.idp.allow_private_endpoints = true;
            serve(config, Some(roster_port))
        }
        Command::Practice(cmd) => practice(cmd, &config),
        Command::Client(cmd) => client(cmd, &config),
        Command::Operator(cmd) => kollegium::operator::cli::run(cmd, &config, SystemClock.now())
            .map_err(|e| match e {
                kollegium::operator::cli::OperatorError::Usage(msg) => Failure::Usage(msg),
                kollegium::operator::cli::OperatorError::Runtime(e) => Failure::Runtime(e),
            }),
        Command::News(cmd) => news::run(cmd, &config, SystemClock.now()).map_err(|e| match e {
            news::NewsError::Usage(msg) => Failure::Usage(msg),
            news::NewsError::Runtime(e) => Failure::Runtime(e),
        }),
    }
}

/// Serves; `roster_port`: the demo mode, with the roster tool's port.
fn serve(config: Config, roster_port: Option<u16>) -> Result<(), Failure> {
    runtime()?.block_on(async move {
        let clock: kollegium_tenants::SharedClock = Arc::new(SystemClock);
        // The roster tool's port is taken before the server starts, so a busy port is
        // known (and reported) before anything is served.
        let roster_listener = roster_port.map(demo::bind_roster).transpose()?;
        if roster_port.is_some() {
            let store = open_store(&config, clock.clone())?;
            let port = config.listen_addr().map_err(anyhow::Error::from)?.port();
            if demo::ensure_demo(
                config.idp.argon2,
                &store,
                &config.web_settings(port, Vec::new()),
            )? {
                println!("Created the demo practice {:?}.", demo::DEMO_SLUG);
            }
            let news = demo::ensure_demo_broadcasts(&config, clock.now())?;
            if news > 0 {
                println!("Published {news} signed demo broadcasts.");
            }
        }
        // Signal handlers are installed before the listeners open, so a SIGTERM that
        // arrives right after start-up still ends in a graceful stop.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(anyhow::Error::from)?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(anyhow::Error::from)?;
        let server = start(
            &config,
            clock,
            StartOptions {
                handle_signals: false,
                job_tick: None,
            },
        )
        .await?;
        let mut roster = None;
        if let Some((listener, warning)) = roster_listener {
            if let Some(w) = warning {
                tracing::warn!("{w}");
                eprintln!("warning: {w}");
            }
            let http = kollegium_tenants::http::node_client(&config.base_domain, server.addr.ip())
                .map_err(anyhow::Error::from)?;
            roster = demo::start_roster(
                server.store.clone(),
                &server.context.settings,
                http,
                listener,
            )
            .await?;
            let origin = server.context.settings.practice_origin(demo::DEMO_SLUG);
            let tool = roster.as_ref().map(|r| r.origin());
            println!(
                "{}",
                demo::banner(&origin, server.operator_addr, tool.as_deref())
            );
        } else {
            println!(
                "Kollegium listening on {} (operator: {})",
                server.addr, server.operator_addr
            );
        }
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
            _ = int.recv() => tracing::info!("SIGINT: finishing in-flight requests"),
        }
        if let Some(r) = roster {
            r.stop().await;
        }
        server.stop().await?;
        Ok(())
    })
}

fn print_practice(p: &Practice, origin: &str) {
    println!("slug:       {}", p.slug);
    println!("name:       {}", p.display_name);
    println!("status:     {}", p.status.as_str());
    println!("created:    {}", clock::format_utc(p.created_at));
    println!("changed:    {}", clock::format_utc(p.status_changed_at));
    println!("placement:  {}", p.placement);
    println!("time zone:  {}", p.time_zone);
    println!("url:        {origin}/");
}

fn practice(cmd: PracticeCommand, config: &Config) -> Result<(), Failure> {
    let store = open_store(config, Arc::new(SystemClock))?;
    let now = store.clock().now();
    let port = config.listen_addr().map(|a| a.port()).unwrap_or(8080);
    let web = config.web_settings(port, Vec::new());
    let origin = |slug: &str| web.practice_origin(slug);
    let lock = || {
        store
            .lock_registry()
            .map_err(|e| Failure::Runtime(e.into()))
    };
    match cmd {
        PracticeCommand::Create {
            slug,
            name,
            owner_email,
        } => {
            let input = CreatePractice::parse(&slug, &name, &owner_email)?;
            let mut conn = lock()?;
            let report = practices::create(
                store.data_dir(),
                store.node_key(),
                &mut conn,
                now,
                &web,
                &input,
                !config.smtp.host.is_empty(),
                &[],
            )?;
            audit_cli(config, now, "practice.create", input.slug.as_str())?;
            println!(
                "Created practice {:?} ({}).",
                input.slug.as_str(),
                input.display_name
            );
            println!("URL: {}/", origin(input.slug.as_str()));
            for note in report.notes {
                println!("{note}");
            }
            Ok(())
        }
        PracticeCommand::List { json } => {
            let all = registry::list(&mut *lock()?).map_err(|e| Failure::Runtime(e.into()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&all).map_err(anyhow::Error::from)?
                );
                return Ok(());
            }
            if all.is_empty() {
                println!(
                    "No practices yet. Create one with: kollegium practice create <slug> --name NAME --owner-email EMAIL"
                );
                return Ok(());
            }
            println!("{:<40}  {:<10}  {:<20}  NAME", "SLUG", "STATUS", "CREATED");
            for p in all {
                println!(
                    "{:<40}  {:<10}  {:<20}  {}",
                    p.slug,
                    p.status.as_str(),
                    clock::format_utc(p.created_at),
                    p.display_name
                );
            }
            Ok(())
        }
        PracticeCommand::Show { slug, json } => {
            let slug = Slug::parse(&slug).map_err(ProvisionError::from)?;
            let found = registry::find(&mut *lock()?, slug.as_str())
                .map_err(|e| Failure::Runtime(e.into()))?
                .ok_or_else(|| ProvisionError::NotFound(slug.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&found).map_err(anyhow::Error::from)?
                );
            } else {
                print_practice(&found, &origin(slug.as_str()));
            }
            Ok(())
        }
        PracticeCommand::SetupLink { slug } => {
            let slug = Slug::parse(&slug).map_err(ProvisionError::from)?;
            let tenant = store
                .tenant(&slug)
                .map_err(|e| Failure::Runtime(e.into()))?
                .ok_or_else(|| ProvisionError::NotFound(slug.to_string()))?;
            let mut conn = tenant
                .conn(&kollegium_idp::IDP_DB)
                .map_err(|e| Failure::Runtime(e.into()))?;
            let link =
                kollegium_idp::provision::new_setup_link(&mut conn, &origin(slug.as_str()), now)
                    .map_err(|e| {
                        Failure::Runtime(anyhow::anyhow!("cannot issue a setup link: {e}"))
                    })?;
            match link {
                Some(link) => {
                    audit_cli(config, now, "practice.setup_link", slug.as_str())?;
                    println!("Owner setup link (valid 72 h, single use): {link}");
                    println!("Earlier setup links of this practice no longer work.");
                    Ok(())
                }
                None => Err(Failure::Usage(format!(
                    "the owner of practice {:?} has already completed setup; a forgotten password is reset by a practice administrator",
                    slug.as_str()
                ))),
            }
        }
        PracticeCommand::Suspend { slug } => {
            lifecycle(&store, now, &slug, Change::Suspend, "Suspended")?;
            audit_cli(config, now, "practice.suspend", &slug)
        }
        PracticeCommand::Resume { slug } => {
            lifecycle(&store, now, &slug, Change::Resume, "Resumed")?;
            audit_cli(config, now, "practice.resume", &slug)
        }
        PracticeCommand::SetTimeZone { slug, zone } => {
            let zone = kollegium_tenants::time::Zone::parse(&zone)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            lifecycle(
                &store,
                now,
                &slug,
                Change::SetTimeZone(&zone),
                &format!("Time zone {zone} set for"),
            )?;
            audit_cli(config, now, "practice.time_zone", &slug)
        }
        PracticeCommand::RotateKeys { slug } => {
            let slug = Slug::parse(&slug).map_err(ProvisionError::from)?;
            let kid = practices::rotate_keys(&store, &slug, &config.idp, now).map_err(idp_admin)?;
            println!(
                "New signing key {kid} for practice {:?}; earlier keys stay published until their tokens expire.",
                slug.as_str()
            );
            Ok(())
        }
        PracticeCommand::Delete { slug, confirm } => {
            lifecycle(
                &store,
                now,
                &slug,
                Change::Delete { confirm: &confirm },
                "Deleted",
            )?;
            audit_cli(config, now, "practice.delete", &slug)
        }
    }
}

/// A practice lifecycle command in the operator audit log ("Kommandozeile").
fn audit_cli(config: &Config, now: i64, action: &str, slug: &str) -> Result<(), Failure> {
    kollegium::operator::audit::record_cli(&config.data_dir, now, action, slug)
        .map_err(|e| Failure::Runtime(e.context("cannot write the operator audit log")))
}

fn idp_admin(e: practices::IdpAdminError) -> Failure {
    match e {
        practices::IdpAdminError::NotFound(_) | practices::IdpAdminError::Invalid(_) => {
            Failure::Usage(e.to_string())
        }
        other => Failure::Runtime(other.into()),
    }
}

fn client(cmd: ClientCommand, config: &Config) -> Result<(), Failure> {
    use kollegium_idp::oidc::clients::{NewClient, RedirectUri};
    let ClientCommand::Add {
        slug,
        name,
        redirect_uris,
        public,
        post_logout_uris,
        backchannel_logout_uri,
        launch_url,
        initiate_login_uri,
        signing_alg,
    } = cmd;
    let slug = Slug::parse(&slug).map_err(ProvisionError::from)?;
    let usage = |e: kollegium_idp::oidc::clients::ClientError| Failure::Usage(e.to_string());
    let one = |u: Option<String>| u.map(|u| RedirectUri::parse(&u)).transpose();
    let mut input = NewClient::parse(&name, &redirect_uris, !public).map_err(usage)?;
    input.post_logout_uris = post_logout_uris
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<_, _>>()
        .map_err(usage)?;
    input.backchannel_logout_uri = one(backchannel_logout_uri).map_err(usage)?;
    if let Some(uri) = &input.backchannel_logout_uri {
        // The rules the server applies to an admin's registration (SSRF).
        let egress = kollegium_idp::oidc::egress::Egress {
            allow_private: config.idp.allow_private_endpoints,
            base_domain: config.base_domain.clone(),
            listeners: vec![
                config.listen_addr().map_err(anyhow::Error::from)?,
                config.operator_addr().map_err(anyhow::Error::from)?,
            ],
        };
        runtime()?
            .block_on(egress.check_uri(uri.as_str()))
            .map_err(|why| {
                Failure::Usage(format!(
                    "--backchannel-logout-uri {:?} refused: {}",
                    uri.as_str(),
                    why.reason()
                ))
            })?;
    }
    input.launch_url = one(launch_url).map_err(usage)?;
    input.initiate_login_uri = one(initiate_login_uri).map_err(usage)?;
    input.signing_alg = kollegium_idp::oidc::jwt::Alg::parse(&signing_alg).ok_or_else(|| {
        Failure::Usage(format!(
            "--signing-alg {signing_alg:?}: must be RS256 or ES256"
        ))
    })?;
    let store = open_store(config, Arc::new(SystemClock))?;
    let now = store.clock().now();
    let created = practices::add_client(&store, &slug, &input, now).map_err(idp_admin)?;
    println!("client_id:     {}", created.client_id);
    if let Some(secret) = created.secret {
        println!("client_secret: {secret}");
        println!("The secret is shown only now; store it in the tool's configuration.");
    }
    Ok(())
}

fn lifecycle(
    store: &kollegium_tenants::TenantStore,
    now: i64,
    slug: &str,
    change: Change<'_>,
    done: &str,
) -> Result<(), Failure> {
    let slug = Slug::parse(slug).map_err(ProvisionError::from)?;
    let mut conn = store
        .lock_registry()
        .map_err(|e| Failure::Runtime(e.into()))?;
    practices::change(
        store.data_dir(),
        store.node_key(),
        &mut conn,
        now,
        &slug,
        change,
    )?;
    println!("{done} practice {:?}.", slug.as_str());
    Ok(())
}
