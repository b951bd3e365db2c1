//! Locked accounts: a new password through a one-time link ends the lockout; the admins
//! see "Gesperrt" (until when, in local time) and unlock with "Entsperren" (admins of
//! this practice only); one person's typos do not slow down colleagues signing in from
//! the same practice address.

use std::time::{Duration, Instant};

use kollegium_idp::users::UserId;

use crate::harness::{TestApp, client, form_csrf};
use crate::idp_mfa::PW;
use crate::mail::use_link;
use crate::smtp::parse_eml;

const LOCKED: &str = "Zu viele Fehlversuche";
const NEW_PW: &str = "Kirschbaum-Laterne-77";

fn user_page(id: UserId) -> String {
    format!("/id/admin/users/{}", id.0)
}

/// Locks `login` out (from the tests' one address) with failed logins: five wrong
/// passwords, the sixth attempt locks; then even the right one is refused.
async fn lock_out(app: &TestApp, slug: &str, login: &str) {
    let c = client();
    for i in 0..5 {
        let r = app
            .login(&c, slug, login, &format!("falsch-geraten-{i}"))
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = app.login(&c, slug, login, "falsch-geraten-5").await;
    assert_eq!(r.status(), 429, "the sixth attempt locks");
    let r = app.login(&client(), slug, login, PW).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains(LOCKED));
}

async fn admin_client(app: &TestApp, slug: &str, login: &str) -> reqwest::Client {
    let admin = client();
    assert_eq!(app.login(&admin, slug, login, PW).await.status(), 303);
    admin
}

async fn get_html(app: &TestApp, c: &reqwest::Client, slug: &str, path: &str) -> String {
    let r = c.get(app.url(slug, path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// The first mail in the practice's outbox that carries a one-time link.
async fn link_mail(app: &TestApp, slug: &str) -> crate::smtp::Mail {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = app
            .outbox(slug)
            .iter()
            .map(|p| parse_eml(p))
            .find(|m| m.text().contains("/id/setup/"))
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no mail with a link in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_through_a_reset_link_ends_the_lockout() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 50).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    lock_out(&app, "praxis-a", "anna").await;

    // The Praxisleitung sends a link to set a new password; anna sets one.
    let admin = admin_client(&app, "praxis-a", "chefin").await;
    let page = user_page(anna);
    let r = app
        .post_form(&admin, "praxis-a", &page, &format!("{page}/reset"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let path = link_mail(&app, "praxis-a").await.setup_path();
    let c = client();
    let r = use_link(
        &app,
        &c,
        "praxis-a",
        &path,
        &[("password", NEW_PW), ("password_repeat", NEW_PW)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/id/login?done=setup");

    // "Passwort gespeichert": the new password works at once, from the same address.
    let r = app.login(&c, "praxis-a", "anna", NEW_PW).await;
    assert_eq!(r.status(), 303, "signed in with the new password");
    assert!(app.user("praxis-a", anna).await.locked_until.is_none());
    // The old password does not, and a guesser starts from zero, not from a free pass.
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PW).await.status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_sees_gesperrt_and_unlocks_and_the_user_signs_in() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 50).await;
    app.create_practice("praxis-a").await;
    let chefin = app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    let admin = admin_client(&app, "praxis-a", "chefin").await;
    let page = user_page(anna);
    let unlock = format!("{page}/unlock");

    // Not locked: no mark, no button.
    let html = get_html(&app, &admin, "praxis-a", &page).await;
    assert!(!html.contains("Gesperrt bis") && !html.contains("Entsperren"));

    lock_out(&app, "praxis-a", "anna").await;
    let until = app.user("praxis-a", anna).await.locked_until.unwrap();
    let local = app.tenant("praxis-a").local_time_at(until, app.clock.now());
    let mark = format!("Gesperrt bis <span class=\"when\">{local}</span>");

    // The list and the user page show the lock, until when in local time, and the button.
    let list = get_html(&app, &admin, "praxis-a", "/id/admin/users").await;
    assert!(list.contains(&mark), "{list}");
    assert!(list.contains(&format!("action=\"{unlock}\"")));
    assert!(list.contains("Entsperren"));
    let html = get_html(&app, &admin, "praxis-a", &page).await;
    assert!(html.contains(&mark), "{html}");
    assert!(html.contains(&format!("action=\"{unlock}\"")));
    assert!(!html.contains("UTC"));

    // Entsperren: the page confirms, the mark is gone, the event names the admin.
    let r = app.post_form(&admin, "praxis-a", &page, &unlock, &[]).await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to, format!("{page}?done=unlocked"));
    let html = get_html(&app, &admin, "praxis-a", &to).await;
    assert!(html.contains("Entsperrt."), "{html}");
    assert!(!html.contains("Gesperrt bis"));
    let list = get_html(&app, &admin, "praxis-a", "/id/admin/users").await;
    assert!(!list.contains("Gesperrt bis") && !list.contains(&unlock));
    let unlocks: Vec<_> = app
        .idp_db("praxis-a", |c| {
            kollegium_idp::events::list(c, &kollegium_idp::events::Filter::default(), 1000).unwrap()
        })
        .await
        .into_iter()
        .filter(|e| e.kind == "unlock")
        .collect();
    assert_eq!(unlocks.len(), 1);
    assert_eq!(unlocks[0].user_id, Some(anna.0));
    assert_eq!(unlocks[0].actor_id, Some(chefin.0));

    // Anna signs in, from the address that locked her out.
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PW).await.status(),
        303
    );
    // Other confirmations of the page: a saved change says so; an unknown one says nothing.
    let html = get_html(&app, &admin, "praxis-a", &format!("{page}?done=saved")).await;
    assert!(html.contains("Gespeichert."));
    let html = get_html(&app, &admin, "praxis-a", &format!("{page}?done=<b>x</b>")).await;
    assert!(!html.contains("notice ok") && !html.contains("<b>x"));
}

async fn still_locked(app: &TestApp) {
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PW).await.status(),
        429,
        "anna is still locked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_this_practices_admins_can_unlock() {
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 50).await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    app.create_user("praxis-a", "ben", PW, false).await;
    app.create_user("praxis-b", "boss", PW, true).await;
    lock_out(&app, "praxis-a", "anna").await;
    let unlock = format!("{}/unlock", user_page(anna));

    // Not signed in: sent to the login page.
    let anon = client();
    let t = form_csrf(&get_html(&app, &anon, "praxis-a", "/id/login").await);
    let r = anon
        .post(app.url("praxis-a", &unlock))
        .form(&[("csrf_token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/id/login")
    );

    // A member who is not an admin: 403 for the page, the list and the action.
    let ben = client();
    assert_eq!(app.login(&ben, "praxis-a", "ben", PW).await.status(), 303);
    for path in ["/id/admin/users".to_owned(), user_page(anna)] {
        let r = ben.get(app.url("praxis-a", &path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = app
        .post_form(&ben, "praxis-a", "/id/account", &unlock, &[])
        .await;
    assert_eq!(r.status(), 403);
    still_locked(&app).await;

    // The admin: without the CSRF token refused; unknown or malformed ids are not found.
    let admin = admin_client(&app, "praxis-a", "chefin").await;
    let r = admin
        .post(app.url("praxis-a", &unlock))
        .form(&[("csrf_token", "falsch")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for path in [
        "/id/admin/users/999999/unlock",
        "/id/admin/users/abc/unlock",
        "/id/admin/users/-1/unlock",
    ] {
        let r = app
            .post_form(&admin, "praxis-a", "/id/admin/users", path, &[])
            .await;
        assert_eq!(r.status(), 404, "{path}");
    }
    still_locked(&app).await;

    // Another practice's admin: at B the id names nobody (or B's own user), at A B's
    // session and token are worthless.
    let boss = admin_client(&app, "praxis-b", "boss").await;
    let r = app
        .post_form(&boss, "praxis-b", "/id/admin/users", &unlock, &[])
        .await;
    assert_eq!(r.status(), 404, "anna's id names nobody at B");
    let tb = form_csrf(&get_html(&app, &boss, "praxis-b", "/id/admin/users").await);
    let r = boss
        .post(app.url("praxis-a", &unlock))
        .form(&[("csrf_token", tb.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == 403 || r.status() == 303,
        "refused at A: {}",
        r.status()
    );
    if r.status() == 303 {
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/id/login")
        );
    }
    still_locked(&app).await;
    let unlocks = app
        .idp_db("praxis-a", |c| {
            kollegium_idp::events::count_kind(c, "unlock").unwrap()
        })
        .await;
    assert_eq!(unlocks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_persons_typos_do_not_slow_colleagues_at_the_same_address() {
    // The default delays (from 250 ms up to 4 s): before, five typos of one person made
    // every colleague behind the practice's address wait 2 s per sign-in.
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "anna", PW, false).await;
    for name in ["ben", "carla"] {
        app.create_user("praxis-a", name, PW, false).await;
    }
    let c = client();
    for i in 0..5 {
        let r = app
            .login(&c, "praxis-a", "anna", &format!("vertippt-{i}"))
            .await;
        assert_eq!(r.status(), 401);
    }
    for name in ["ben", "carla"] {
        let start = Instant::now();
        let r = app.login(&client(), "praxis-a", name, PW).await;
        let took = start.elapsed();
        assert_eq!(r.status(), 303, "{name}");
        assert!(took < Duration::from_millis(1000), "{name} waited {took:?}");
    }
    // Anna's own pair keeps counting: her next attempt is locked out, theirs are not.
    assert_eq!(app.login(&c, "praxis-a", "anna", PW).await.status(), 429);
    assert_eq!(
        app.login(&client(), "praxis-a", "ben", PW).await.status(),
        303
    );
}

/// The page's visible text, once it contains `what` (panics after 10 s).
async fn text_with(b: &fantoccini::Client, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = crate::browser::js(b, "return document.body.innerText;").await;
        let text = text.as_str().unwrap_or_default().to_owned();
        if text.contains(what) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what:?} on the page:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_browser_the_admin_unlocks_and_the_colleague_signs_in() {
    use fantoccini::Locator;
    let app = TestApp::spawn_with(|c| c.idp.max_delay_ms = 50).await;
    app.create_practice("praxis-a").await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let anna = app.create_user("praxis-a", "anna", PW, false).await;
    lock_out(&app, "praxis-a", "anna").await;

    let d = crate::browser::driver().await;
    // The Praxisleitung opens the user list: anna is marked, with the button beside her.
    let admin = crate::browser::browser(&d, "chefin").await;
    admin
        .goto(&app.url("praxis-a", "/id/admin/users"))
        .await
        .unwrap();
    crate::browser::log_in(&admin, "chefin", PW).await;
    let list = text_with(&admin, "Gesperrt bis").await;
    assert!(list.contains("Entsperren"), "{list}");
    admin
        .find(Locator::Css(&format!(
            "form[action=\"{}/unlock\"] button",
            user_page(anna)
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let done = text_with(&admin, "Entsperrt.").await;
    assert!(!done.contains("Gesperrt bis"), "{done}");

    // Anna signs in in her own browser and lands in the workspace.
    let b = crate::browser::browser(&d, "anna").await;
    b.goto(&app.url("praxis-a", "/")).await.unwrap();
    crate::browser::log_in(&b, "anna", PW).await;
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("details.usermenu"))
        .await
        .expect("signed in: the user menu is there");
    let start = text_with(&b, "anna").await;
    assert!(!start.contains(LOCKED), "{start}");
    let url = b.current_url().await.unwrap();
    assert!(!url.path().starts_with("/id/login"), "{url}");
    admin.close().await.unwrap();
    b.close().await.unwrap();
}
