//! Headless Chromium (Debian's `chromium` + `chromium-driver`, over WebDriver): two people
//! chat live in real browsers, and hostile markup stays inert under the page's CSP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::TestApp;

const PW: &str = "Sonnenblume-Kaffee-42";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A running chromedriver, stopped on drop.
pub struct Driver {
    child: Child,
    url: String,
    _profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn driver() -> Driver {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: the browser tests need Debian's Chromium and ChromeDriver.\n\
             install them with: sudo apt-get install -y chromium chromium-driver   (ops/test.sh does this)"
        );
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    // From here on, dropping the driver stops the process (also on a failed start).
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profiles: tempfile::tempdir().unwrap(),
    };
    let status = format!("{}/status", d.url);
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(&status).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not become ready on port {port}");
}

/// A fresh headless Chromium with its own profile.
pub async fn browser(d: &Driver, name: &str) -> Client {
    browser_on(d, name, Screen::Window(1200, 900)).await
}

/// The screen a browser renders for.
#[derive(Debug, Clone, Copy)]
pub enum Screen {
    /// A desktop window of this size (headless: the viewport is the window).
    Window(u32, u32),
    /// A phone's viewport (Chromium's device emulation, 3 device pixels per CSS pixel).
    Phone(u32, u32),
}

/// A fresh headless Chromium with its own profile, rendering for `screen`.
pub async fn browser_on(d: &Driver, name: &str, screen: Screen) -> Client {
    let profile = d._profiles.path().join(name);
    let mut options = json!({
        "binary": CHROMIUM,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    match screen {
        Screen::Window(w, h) => {
            options["args"]
                .as_array_mut()
                .unwrap()
                .push(json!(format!("--window-size={w},{h}")));
        }
        Screen::Phone(w, h) => {
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": w, "height": h, "pixelRatio": 3.0 } });
        }
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    // Both of rustls's crypto back ends are linked into the test binary; pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a Chromium session")
}

/// Answers the IdP's login form the browser shows (or is about to show) as `user`.
pub async fn log_in(b: &Client, user: &str, password: &str) {
    let login = b
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("input#login"))
        .await
        .unwrap();
    login.send_keys(user).await.unwrap();
    b.find(Locator::Css("input#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Signs in through the IdP's login form, the way a person does, ending at `path`.
pub async fn sign_in(b: &Client, app: &TestApp, user: &str, path: &str) {
    b.goto(&app.url("praxis-a", path)).await.unwrap();
    log_in(b, user, PW).await;
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#messages, #room-list"))
        .await
        .unwrap();
}

pub async fn wait_live(b: &Client) {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-live=open]"))
        .await
        .expect("the live connection opens");
}

pub async fn js(b: &Client, script: &str) -> Value {
    b.execute(script, vec![]).await.unwrap()
}

/// Records CSP violations and script-run markers in the page.
const WATCH: &str = "window.__violations = []; \
    document.addEventListener('securitypolicyviolation', function (e) { window.__violations.push(e.violatedDirective); }); \
    window.__marker = 'same page'; return true;";

async fn type_and_send(b: &Client, text: &str) {
    let area = b.find(Locator::Css("#composer textarea")).await.unwrap();
    area.send_keys(text).await.unwrap();
    b.find(Locator::Css("#composer button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_for_text(b: &Client, text: &str) {
    let script = format!(
        "return Array.from(document.querySelectorAll('#messages li.message')).some(function (li) {{ return li.textContent.indexOf({}) >= 0; }});",
        json!(text)
    );
    for _ in 0..50 {
        if js(b, &script).await == json!(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{text:?} did not appear within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_live_and_hostile_markup_stays_inert() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    app.create_user("praxis-a", "bernd", PW, false).await;
    // A hostile display name, as if an admin had typed it at the IdP.
    let tenant = app.tenant("praxis-a");
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = tenant.conn(&kollegium_idp::IDP_DB).unwrap();
        diesel::sql_query(
            "UPDATE users SET display_name = '<img src=x onerror=window.__xss=1>Anna' WHERE username = 'anna'",
        )
        .execute(&mut *conn)
        .unwrap();
    })
    .await
    .unwrap();

    let d = driver().await;
    let anna = browser(&d, "anna").await;
    let bernd = browser(&d, "bernd").await;
    sign_in(&anna, &app, "anna", "/chat").await;
    // Anna creates a room with a hostile name and topic through the page's form ("Neuer
    // Raum" opens it).
    anna.find(Locator::Css("#new-room > summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    anna.find(Locator::Css("input#name"))
        .await
        .unwrap()
        .send_keys("<svg onload=window.__xss=1>Team")
        .await
        .unwrap();
    anna.find(Locator::Css("input#topic"))
        .await
        .unwrap()
        .send_keys("<script>window.__xss=1</script>")
        .await
        .unwrap();
    anna.find(Locator::Css(
        "form[action='/chat/rooms'] button[type=submit]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    anna.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#messages"))
        .await
        .unwrap();
    let room_url = anna.current_url().await.unwrap();
    let room_path = room_url.path().to_owned();

    sign_in(&bernd, &app, "bernd", &room_path).await;
    wait_live(&anna).await;
    wait_live(&bernd).await;
    js(&anna, WATCH).await;
    js(&bernd, WATCH).await;

    // A message typed in one browser appears in the other without a reload.
    type_and_send(&anna, "Guten Morgen, Bernd!").await;
    wait_for_text(&bernd, "Guten Morgen, Bernd!").await;
    // Bernd's page read it: Anna's page shows the receipt live.
    let mut receipt = Value::Null;
    for _ in 0..50 {
        receipt = js(
            &anna,
            "var r = document.getElementById('read-by'); return r.hidden ? '' : r.textContent;",
        )
        .await;
        if receipt == json!("Gelesen von bernd Test") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receipt, json!("Gelesen von bernd Test"));
    type_and_send(&bernd, "Morgen @anna").await;
    wait_for_text(&anna, "Morgen @anna").await;
    let mention = js(
        &anna,
        "return document.querySelector('#messages li.message:last-child').classList.contains('mentioned');",
    )
    .await;
    assert_eq!(mention, json!(true), "the mention is marked for anna");

    // The XSS corpus, sent live.
    let corpus = [
        "<script>window.__xss=1</script>",
        "[Klick](javascript:window.__xss=1)",
        "[Klick2](JaVaScRiPt:window.__xss=1)",
        "![Bild](x\" onerror=\"window.__xss=1)",
        "<img src=x onerror=window.__xss=1>",
        "<svg><script>window.__xss=1</script></svg>",
        "&lt;script&gt;window.__xss=1&lt;/script&gt;",
        "Rechnung \u{202e}fdp.exe",
        "<a href=\"javascript:window.__xss=1\">x</a>",
        "[Daten](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    ];
    for (i, payload) in corpus.iter().enumerate() {
        type_and_send(&anna, &format!("XSS{i} {payload}")).await;
        wait_for_text(&bernd, &format!("XSS{i}")).await;
    }
    let inert = "return { xss: window.__xss === undefined, marker: window.__marker, \
        scripts: document.querySelectorAll('#messages script, #messages [onerror], #messages [onload], #messages iframe, #messages object').length, \
        jslinks: Array.from(document.querySelectorAll('#messages a')).filter(function (a) { return /^\\s*(javascript|data):/i.test(a.getAttribute('href') || ''); }).length, \
        norel: Array.from(document.querySelectorAll('#messages .message-body a')).filter(function (a) { return (a.getAttribute('rel') || '').indexOf('noopener') < 0; }).length, \
        violations: window.__violations };";
    for (who, b) in [("anna", &anna), ("bernd", &bernd)] {
        let v = js(b, inert).await;
        assert_eq!(v["xss"], true, "{who}: no script ran: {v}");
        assert_eq!(
            v["marker"], "same page",
            "{who}: the page was never reloaded: {v}"
        );
        assert_eq!(v["scripts"], 0, "{who}: {v}");
        assert_eq!(v["jslinks"], 0, "{who}: {v}");
        assert_eq!(v["norel"], 0, "{who}: links get rel=noopener: {v}");
    }
    // The same corpus, server-rendered after a reload, with the hostile names and topic.
    bernd.refresh().await.unwrap();
    wait_live(&bernd).await;
    js(&bernd, WATCH).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = js(&bernd, inert).await;
    assert_eq!(v["xss"], true, "{v}");
    assert_eq!(v["scripts"], 0, "{v}");
    assert_eq!(v["jslinks"], 0, "{v}");
    let shown = js(
        &bernd,
        "return { title: document.querySelector('.room-head h1').textContent, author: document.querySelector('#messages .message-author').textContent, imgs: document.querySelectorAll('main img, main svg').length };",
    )
    .await;
    assert!(
        shown["title"].as_str().unwrap().contains("<svg onload"),
        "{shown}"
    );
    assert!(
        shown["author"].as_str().unwrap().contains("<img src=x"),
        "{shown}"
    );
    assert_eq!(shown["imgs"], 0, "{shown}");
    // The CSP header is on the page (no inline script could run even if markup slipped in).
    let page = crate::harness::client()
        .get(app.url("praxis-a", &room_path))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    anna.close().await.unwrap();
    bernd.close().await.unwrap();
}

/// The top bar of the current page: its height, how far its visible parts are apart
/// vertically (0 when they sit in one row), which parts are visible, how many rows the
/// navigation's entries take, and whether the page is wider than the viewport.
const TOPBAR: &str = "var bar = document.querySelector('.topbar'); \
    var shown = function (e) { return e.getClientRects().length > 0; }; \
    var kids = Array.from(bar.querySelector('.topbar-inner').children).filter(shown); \
    var mids = kids.map(function (e) { var r = e.getBoundingClientRect(); return r.top + r.height / 2; }); \
    var rows = new Set(Array.from(document.querySelectorAll('.mainnav li')).filter(shown).map(function (e) { return Math.round(e.getBoundingClientRect().top); })); \
    return { height: bar.getBoundingClientRect().height, width: window.innerWidth, \
      spread: Math.max.apply(null, mids) - Math.min.apply(null, mids), \
      parts: kids.map(function (e) { return e.className; }), navRows: rows.size, \
      overflow: document.documentElement.scrollWidth > window.innerWidth };";

/// One row of the top bar: a 2 rem control plus its padding, well under two rows.
const ONE_ROW: f64 = 64.0;

/// Saves a screenshot when `KOLLEGIUM_SCREENSHOTS` names a directory (for people checking
/// the layout by eye; nothing is saved otherwise).
async fn screenshot(b: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("KOLLEGIUM_SCREENSHOTS") {
        let png = b.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

async fn topbar(b: &Client, app: &TestApp, path: &str) -> Value {
    b.goto(&app.url("praxis-a", path)).await.unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("header.topbar .usermenu"))
        .await
        .unwrap();
    js(b, TOPBAR).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_is_one_row_on_a_desktop_and_on_a_phone_on_workspace_and_admin_pages() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, true).await;
    let d = driver().await;

    // 1366 × 900: every part of the shell in one row, the same on every kind of page.
    let desk = browser_on(&d, "desk", Screen::Window(1366, 900)).await;
    sign_in(&desk, &app, "anna", "/chat").await;
    let mut heights = Vec::new();
    for path in [
        "/",
        "/chat",
        "/id/account",
        "/id/admin/users",
        "/id/admin/events",
    ] {
        let v = topbar(&desk, &app, path).await;
        assert_eq!(v["width"], 1366, "{path}: {v}");
        let height = v["height"].as_f64().unwrap();
        assert!(height <= ONE_ROW, "{path}: the top bar is one row: {v}");
        assert!(v["spread"].as_f64().unwrap() <= 4.0, "{path}: {v}");
        assert_eq!(v["navRows"], 1, "{path}: the navigation does not wrap: {v}");
        assert_eq!(
            v["parts"],
            json!(["brand", "mainnav", "topsearch", "usermenu"]),
            "{path}: {v}"
        );
        assert_eq!(v["overflow"], false, "{path}: {v}");
        heights.push(height);
        screenshot(&desk, &format!("desktop{}", path.replace('/', "_"))).await;
    }
    assert!(
        heights.windows(2).all(|w| (w[0] - w[1]).abs() < 0.5),
        "the same top bar on workspace, account and admin pages: {heights:?}"
    );
    // The search field sends its words to the workspace's search.
    desk.goto(&app.url("praxis-a", "/id/admin/users"))
        .await
        .unwrap();
    desk.find(Locator::Css("form.topsearch input[name=q]"))
        .await
        .unwrap()
        .send_keys("Labor\n")
        .await
        .unwrap();
    for _ in 0..50 {
        if desk.current_url().await.unwrap().path() == "/search" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = desk.current_url().await.unwrap();
    assert_eq!((url.path(), url.query()), ("/search", Some("q=Labor")));
    desk.close().await.unwrap();

    // 390 × 844: the compact menu, still one row.
    let phone = browser_on(&d, "phone", Screen::Phone(390, 844)).await;
    sign_in(&phone, &app, "anna", "/chat").await;
    for path in [
        "/",
        "/chat",
        "/id/account",
        "/id/admin/users",
        "/id/admin/devices",
    ] {
        let v = topbar(&phone, &app, path).await;
        assert_eq!(v["width"], 390, "{path}: {v}");
        assert!(
            v["height"].as_f64().unwrap() <= ONE_ROW,
            "{path}: the top bar is one row: {v}"
        );
        assert!(v["spread"].as_f64().unwrap() <= 4.0, "{path}: {v}");
        assert_eq!(
            v["parts"],
            json!(["brand", "navmenu", "usermenu"]),
            "{path}: {v}"
        );
        assert_eq!(
            v["overflow"], false,
            "{path}: nothing wider than the phone: {v}"
        );
        screenshot(&phone, &format!("phone{}", path.replace('/', "_"))).await;
    }
    // The menu opens without any script and lists the navigation and the search field.
    phone
        .goto(&app.url("praxis-a", "/id/admin/users"))
        .await
        .unwrap();
    phone
        .find(Locator::Css("details.navmenu > summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let menu = js(
        &phone,
        "var m = document.querySelector('details.navmenu'); var p = m.querySelector('.navmenu-panel').getBoundingClientRect(); \
         return { open: m.open, links: Array.from(m.querySelectorAll('.navmenu-list a')).filter(function (a) { return a.getClientRects().length > 0; }).map(function (a) { return a.innerText.trim(); }), \
           search: m.querySelector('input[name=q]').getClientRects().length > 0, inside: p.left >= 0 && p.right <= window.innerWidth };",
    )
    .await;
    assert_eq!(menu["open"], true, "{menu}");
    assert_eq!(
        menu["links"],
        json!([
            "Start",
            "Chat",
            "Aufgaben",
            "Neuigkeiten",
            "Praxisverwaltung"
        ]),
        "{menu}"
    );
    assert_eq!(menu["search"], true, "{menu}");
    assert_eq!(menu["inside"], true, "the menu fits the screen: {menu}");
    screenshot(&phone, "phone_menu").await;
    // The administration's tables are lists: one block per row, each value labelled; times
    // stay on one line.
    let table = js(
        &phone,
        "var td = document.querySelector('table.list-sm tbody td'); var head = document.querySelector('table.list-sm thead').getBoundingClientRect(); \
         var when = Array.from(document.querySelectorAll('.when')); \
         return { display: getComputedStyle(td).display, label: getComputedStyle(td, '::before').content, head: head.height, \
           whens: when.length, oneLine: when.every(function (w) { return w.getClientRects().length === 1; }) };",
    )
    .await;
    assert_eq!(table["display"], "block", "{table}");
    assert_eq!(table["label"], "\"Name\"", "{table}");
    assert!(table["head"].as_f64().unwrap() <= 1.0, "{table}");
    assert!(table["whens"].as_i64().unwrap() >= 1, "{table}");
    assert_eq!(table["oneLine"], true, "{table}");
    phone.close().await.unwrap();
}
