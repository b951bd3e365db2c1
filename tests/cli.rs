//! The command-line contract, configuration errors, demo mode and signals.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{cli_in, client, stderr, stdout};

#[test]
fn practice_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| cli_in(&data, args, &[]);

    let out = run(&[
        "practice",
        "create",
        "praxis-mueller",
        "--name",
        "Praxis Dr. Müller",
        "--owner-email",
        "chefin@praxis-mueller.de",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("http://praxis-mueller.localhost:8080/"));
    assert!(data.join("tenants/praxis-mueller/idp.sqlite").exists());
    let mode = std::fs::metadata(data.join("node.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let out = run(&["practice", "list"]);
    assert!(stdout(&out).contains("praxis-mueller") && stdout(&out).contains("Praxis Dr. Müller"));
    let out = run(&["practice", "show", "praxis-mueller", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "active");
    assert_eq!(json["display_name"], "Praxis Dr. Müller");

    assert!(
        run(&["practice", "suspend", "praxis-mueller"])
            .status
            .success()
    );
    let out = run(&["practice", "show", "praxis-mueller"]);
    assert!(stdout(&out).contains("suspended"));
    let out = run(&["practice", "suspend", "praxis-mueller"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("suspended"));
    assert!(
        run(&["practice", "resume", "praxis-mueller"])
            .status
            .success()
    );

    let out = run(&[
        "practice",
        "delete",
        "praxis-mueller",
        "--confirm",
        "praxis-mueler",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--confirm praxis-mueller"));
    assert!(data.join("tenants/praxis-mueller").exists());
    let out = run(&[
        "practice",
        "delete",
        "praxis-mueller",
        "--confirm",
        "praxis-mueller",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!data.join("tenants/praxis-mueller").exists());
    let out = run(&["practice", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["status"], "deleted");
    let out = run(&[
        "practice",
        "create",
        "praxis-mueller",
        "--name",
        "Neu",
        "--owner-email",
        "a@b.de",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("deleted practice"),
        "{}",
        stderr(&out)
    );

    let out = run(&["practice", "show", "praxis-nie"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no practice"));
}

#[test]
fn every_bad_slug_is_refused_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let long = "a".repeat(200);
    let cases: &[(&str, &str)] = &[
        ("Praxis", "lowercase"),
        ("praxis-müller", "lowercase"),
        ("xn--praxis-mller-5ob", "--"),
        (&long, "at most 40"),
        ("../x", "lowercase"),
        ("", "empty"),
        ("ab", "at least 3"),
        ("-praxis", "start or end"),
        ("praxis-", "start or end"),
        ("praxis--a", "--"),
        ("www", "reserved"),
        ("admin", "reserved"),
        ("operator", "reserved"),
        ("praxis a", "lowercase"),
    ];
    for (slug, rule) in cases {
        let out = cli_in(
            &data,
            &[
                "practice",
                "create",
                "--name",
                "X",
                "--owner-email",
                "a@b.de",
                "--",
                slug,
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{slug:?}");
        assert!(stderr(&out).contains(rule), "{slug:?}: {}", stderr(&out));
    }
    let out = cli_in(
        &data,
        &[
            "practice",
            "create",
            "praxis-ok",
            "--name",
            "X",
            "--owner-email",
            "kein-at",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("e-mail"));
    let out = cli_in(
        &data,
        &[
            "practice",
            "create",
            "praxis-ok",
            "--name",
            "  ",
            "--owner-email",
            "a@b.de",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("name"));
    // Nothing was created by any refusal.
    let out = cli_in(&data, &["practice", "list", "--json"], &[]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let out = cli_in(
        &data,
        &["config", "check"],
        &[
            ("KOLLEGIUM_LISTEN_PORT", "1"),
            ("KOLLEGIUM_SMTP__HOSTNAME", "x"),
        ],
    );
    assert!(
        out.status.success(),
        "unknown keys only warn: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("unknown configuration key `listen_port`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("`smtp.hostname`"));

    let out = cli_in(
        &data,
        &["config", "check"],
        &[("KOLLEGIUM_PUBLIC_SCHEME", "ftp")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).to_lowercase().contains("public_scheme"),
        "{}",
        stderr(&out)
    );
    let out = cli_in(
        &data,
        &["config", "check"],
        &[("KOLLEGIUM_LISTEN", "not-an-address")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`listen`"), "{}", stderr(&out));
    let out = cli_in(
        &data,
        &["config", "check"],
        &[("KOLLEGIUM_LIMITS__MAX_BODY_BYTES", "lots")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).to_lowercase().contains("max_body_bytes"),
        "{}",
        stderr(&out)
    );
    for (key, value) in [
        ("KOLLEGIUM_LIMITS__CHAT_POST_BURST", "0"),
        ("KOLLEGIUM_LIMITS__CHAT_POSTS_PER_SEC", "-1"),
        ("KOLLEGIUM_LIMITS__CHAT_POSTS_PER_SEC", "NaN"),
    ] {
        let out = cli_in(&data, &["config", "check"], &[(key, value)]);
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let name = key.trim_start_matches("KOLLEGIUM_LIMITS__").to_lowercase();
        assert!(
            stderr(&out)
                .to_lowercase()
                .contains(&format!("limits.{name}")),
            "{}",
            stderr(&out)
        );
    }

    let toml = dir.path().join("k.toml");
    std::fs::write(&toml, "base_domain = \"praxen.example\"\nfavourite_colour = \"blue\"\n[smtp]\npassword = \"s3cr3t-value\"\n").unwrap();
    let out = cli_in(
        &data,
        &["--config", toml.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("base_domain = \"praxen.example\""));
    assert!(
        !stdout(&out).contains("s3cr3t-value"),
        "secrets are redacted"
    );
    assert!(stderr(&out).contains("favourite_colour"));
    let out = cli_in(
        &data,
        &["--config", "/nonexistent/k.toml", "config", "check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));

    let out = cli_in(&data, &["practice", "frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn a_node_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli_in(&data, &["practice", "list"], &[]).status.success());
    std::fs::set_permissions(
        data.join("node.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    for args in [&["practice", "list"][..], &["serve"][..]] {
        let out = cli_in(
            &data,
            args,
            &[
                ("KOLLEGIUM_LISTEN", "127.0.0.1:0"),
                ("KOLLEGIUM_OPERATOR_LISTEN", "127.0.0.1:0"),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    }
}

#[test]
fn demo_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_in(
        &dir.path().join("data"),
        &["demo"],
        &[("KOLLEGIUM_LISTEN", "0.0.0.0:0")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("loopback"));
    assert!(!dir.path().join("data/tenants/praxis-demo").exists());
}

/// Starts `kollegium demo` (or `serve`) and returns the child and its stdout lines so far.
fn spawn_server(data: &std::path::Path, command: &str) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kollegium"))
        .arg("--data-dir")
        .arg(data)
        .arg(command)
        .env("KOLLEGIUM_LISTEN", "127.0.0.1:0")
        .env("KOLLEGIUM_OPERATOR_LISTEN", "127.0.0.1:0")
        .env("KOLLEGIUM_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let done = line.contains("Stop with Ctrl+C") || line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, lines)
}

fn sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_creates_the_demo_practice_prints_its_url_and_reuses_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, lines) = spawn_server(&data, "demo");
    let text = lines.concat();
    assert!(text.contains("Praxis Dr. Demo"), "{text}");
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Open:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(url.starts_with("http://praxis-demo.localhost:"), "{url}");
    let r = client().get(format!("{url}id/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Praxis Dr. Demo"));
    assert!(text.contains("inhaber") && text.contains(kollegium_idp::demo::DEMO_PASSWORD));
    // The printed demo login works through the real login form.
    let c = client();
    let page = c
        .get(format!("{url}id/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = crate::harness::form_csrf(&page);
    let r = c
        .post(format!("{url}id/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("login", "inhaber"),
            ("password", kollegium_idp::demo::DEMO_PASSWORD),
            ("next", "/id/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "demo login failed");
    // The IdP's address leads to the one start page, the workspace's (signing in there).
    let mut at = format!("{url}id/");
    let mut hops = 0;
    let home = loop {
        let r = c.get(&at).send().await.unwrap();
        if !r.status().is_redirection() {
            assert_eq!(r.status(), 200, "{at}");
            break r.text().await.unwrap();
        }
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        at = match loc.strip_prefix('/') {
            Some(path) => format!("{url}{path}"),
            None => loc,
        };
        hops += 1;
        assert!(hops < 10, "too many redirects at {at}");
    };
    assert!(home.contains("Guten Tag, Dr. Ines Inhaber"), "{home}");
    // The owner is an admin: the shell has the administration.
    assert!(
        home.contains("<li><a href=\"/id/admin/users\">Praxisverwaltung</a></li>"),
        "{home}"
    );
    assert!(
        home.contains("Dienstplan (Demo)"),
        "the demo third-party tool has a tile"
    );
    assert!(sigterm(&mut child).success(), "graceful stop exits 0");

    // Second run reuses the data.
    let (mut child, lines) = spawn_server(&data, "demo");
    assert!(!lines.concat().contains("Created the demo practice"));
    assert!(lines.concat().contains("praxis-demo.localhost"));
    assert!(sigterm(&mut child).success());
    let out = cli_in(&data, &["practice", "list", "--json"], &[]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_client_configured_from_discovery_signs_in_a_demo_user() {
    use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
    use openidconnect::{
        AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The demo practice, then a tool registered as an integrator would.
    let (mut child, _) = spawn_server(&data, "demo");
    assert!(sigterm(&mut child).success());
    let out = cli_in(
        &data,
        &[
            "client",
            "add",
            "praxis-demo",
            "--name",
            "Werkzeug",
            "--redirect-uri",
            "http://127.0.0.1:9/callback",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let (client_id, secret) = (field("client_id:"), field("client_secret:"));
    let (mut child, lines) = spawn_server(&data, "demo");
    let url = lines
        .concat()
        .lines()
        .find_map(|l| l.trim().strip_prefix("Open:"))
        .unwrap()
        .trim()
        .to_owned();

    // Everything the client knows comes from the discovery document.
    let http = crate::harness::builder().build().unwrap();
    let issuer = IssuerUrl::new(format!("{url}id")).unwrap();
    let meta = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .unwrap();
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(RedirectUrl::new("http://127.0.0.1:9/callback".into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = rp
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("practice".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The demo user logs in through the real form and consents.
    let browser = client();
    let r = browser.get(auth_url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 303, "to the login form");
    let login = format!("{url}{}", location_of(&r).trim_start_matches('/'));
    let page = browser
        .get(&login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let next = page
        .split("name=\"next\" value=\"")
        .nth(1)
        .map(|v| crate::oidc_support::unescape(v.split('"').next().unwrap()))
        .unwrap_or_default();
    let r = browser
        .post(format!("{url}id/login"))
        .form(&[
            ("csrf_token", crate::harness::form_csrf(&page).as_str()),
            ("login", "abrechnung"),
            ("password", kollegium_idp::demo::DEMO_PASSWORD),
            ("next", next.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "demo login failed");
    let mut r = browser
        .get(format!("{url}{}", location_of(&r).trim_start_matches('/')))
        .send()
        .await
        .unwrap();
    if r.status() == 200 {
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Werkzeug"),
            "the consent page names the tool: {html}"
        );
        let mut allow = crate::oidc_support::hidden_fields(&html);
        allow.push(("decision".into(), "allow".into()));
        r = browser
            .post(format!("{url}id/authorize/consent"))
            .form(&allow)
            .send()
            .await
            .unwrap();
    }
    let status = r.status();
    if status != 302 {
        panic!("{status}: {}", r.text().await.unwrap());
    }
    let back = location_of(&r);
    assert!(back.starts_with("http://127.0.0.1:9/callback?"), "{back}");
    let q = crate::oidc_support::query(&back);
    assert_eq!(q["state"], *state.secret());
    assert_eq!(q["iss"], format!("{url}id"), "RFC 9207 iss");

    // The crate exchanges the code and verifies the ID token (signature, issuer,
    // audience, nonce) with the keys it found through discovery.
    let tokens = rp
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id = tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(id.preferred_username().unwrap().as_str(), "abrechnung");
    let info: openidconnect::core::CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(id.subject().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject(), id.subject());
    assert!(sigterm(&mut child).success());
}

fn location_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}
