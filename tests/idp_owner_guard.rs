//! The owner's account belongs to the owner: another admin can neither change its e-mail
//! address, nor send it a password link, nor reset its second factor. Any change of an
//! account's e-mail address tells the old address.

use kollegium_idp::users::{User, UserId};

use crate::harness::{TestApp, client};

const PW: &str = "Sonnenblume-Kaffee-42";

/// Gives the practice's owner (created with the practice, still invited) a password, so
/// they can log in as `owner`. Returns the owner's id.
async fn activate_owner(app: &TestApp) -> UserId {
    let hash = kollegium_idp::passwords::Hasher::new(app.config.idp.argon2)
        .unwrap()
        .hash_blocking(PW)
        .unwrap();
    let now = app.clock.now();
    app.idp_db("praxis-a", move |c| {
        use diesel::prelude::*;
        use kollegium_idp::schema::users as u;
        let id = UserId(
            u::table
                .filter(u::is_owner.eq(true))
                .select(u::id)
                .first::<i64>(c)
                .unwrap(),
        );
        kollegium_idp::users::set_password(c, id, &hash, true, now).unwrap();
        id
    })
    .await
}

/// The edit form's fields for `u` with e-mail `email` (everything else as it is).
fn profile_fields(u: &User, email: &str) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("display_name", u.display_name.clone()),
        ("username", u.username.clone()),
        ("email", email.to_owned()),
        ("is_admin", if u.is_admin { "on" } else { "" }.to_owned()),
        ("work_areas", u.work_areas.join(", ")),
    ];
    f.extend(u.roles.iter().map(|r| ("roles", r.clone())));
    f.retain(|(k, v)| *k != "is_admin" || !v.is_empty());
    f
}

async fn post(
    app: &TestApp,
    c: &reqwest::Client,
    page: &str,
    action: &str,
    fields: &[(&str, String)],
) -> reqwest::Response {
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_form(c, "praxis-a", page, action, &f).await
}

async fn mails_of_kind(app: &TestApp, kind: &str) -> Vec<String> {
    app.mail_rows("praxis-a")
        .await
        .into_iter()
        .filter(|m| m.kind == kind)
        .map(|m| m.recipient)
        .collect()
}

async fn signed_in(app: &TestApp, login: &str) -> reqwest::Client {
    let c = client();
    assert_eq!(app.login(&c, "praxis-a", login, PW).await.status(), 303);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_co_admin_cannot_change_the_owners_address_password_link_or_second_factor() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let owner_id = activate_owner(&app).await;
    app.create_user("praxis-a", "chefin", PW, true).await;
    let mia = app.create_user("praxis-a", "mia", PW, false).await;
    let co = signed_in(&app, "chefin").await;
    // The owner has a second factor (only its presence matters here).
    app.idp_db("praxis-a", move |c| {
        kollegium_idp::users::set_totp(c, owner_id, Some("sealed"), Some(0)).unwrap();
    })
    .await;
    let owner = app.user("praxis-a", owner_id).await;
    let page = format!("/id/admin/users/{}", owner_id.0);

    // The form shows the address read-only and offers neither action.
    let html = co
        .get(app.url("praxis-a", &page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("readonly"));
    assert!(!html.contains(&format!("{page}/reset\"")));
    assert!(!html.contains(&format!("{page}/reset-totp\"")));

    // Posting anyway is refused and changes nothing.
    let r = post(
        &app,
        &co,
        &page,
        &page,
        &profile_fields(&owner, "chefin-privat@example.org"),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("nur sie oder er selbst"));
    for action in ["reset", "reset-totp"] {
        let r = post(&app, &co, &page, &format!("{page}/{action}"), &[]).await;
        assert_eq!(r.status(), 403, "{action}");
    }
    let after = app.user("praxis-a", owner_id).await;
    assert_eq!(after.email, owner.email);
    assert!(after.has_totp(), "the owner's second factor stays");
    assert!(mails_of_kind(&app, "password_reset").await.is_empty());
    assert!(mails_of_kind(&app, "email_changed").await.is_empty());
    let links = app
        .idp_db("praxis-a", |c| {
            use diesel::prelude::*;
            kollegium_idp::schema::action_tokens::table
                .count()
                .get_result::<i64>(c)
                .unwrap()
        })
        .await;
    let before_links = links;

    // Other edits of the owner's profile, and every action on other members, still work.
    let mut renamed = profile_fields(&owner, &owner.email);
    renamed[0].1 = "Dr. Inhaberin".into();
    assert_eq!(post(&app, &co, &page, &page, &renamed).await.status(), 303);
    assert_eq!(
        app.user("praxis-a", owner_id).await.display_name,
        "Dr. Inhaberin"
    );
    let mia_page = format!("/id/admin/users/{}", mia.0);
    let r = post(&app, &co, &mia_page, &format!("{mia_page}/reset"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        mails_of_kind(&app, "password_reset").await,
        vec!["mia@praxis-a.example"]
    );
    let links = app
        .idp_db("praxis-a", |c| {
            use diesel::prelude::*;
            kollegium_idp::schema::action_tokens::table
                .count()
                .get_result::<i64>(c)
                .unwrap()
        })
        .await;
    assert_eq!(links, before_links + 1, "only Mia's link was issued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_changes_their_own_address_and_every_old_address_is_told() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let owner_id = activate_owner(&app).await;
    let mia = app.create_user("praxis-a", "mia", PW, false).await;
    let boss = signed_in(&app, "owner").await;
    let owner = app.user("praxis-a", owner_id).await;
    let page = format!("/id/admin/users/{}", owner_id.0);
    let html = boss
        .get(app.url("praxis-a", &page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("readonly"),
        "the owner edits their own address"
    );

    let r = post(
        &app,
        &boss,
        &page,
        &page,
        &profile_fields(&owner, "inhaberin@praxis-neu.example"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.user("praxis-a", owner_id).await.email,
        "inhaberin@praxis-neu.example"
    );
    assert_eq!(
        mails_of_kind(&app, "email_changed").await,
        vec!["owner@praxis-a.example"],
        "the old address is told"
    );
    // The owner may send themselves a password link (to the new address).
    let r = post(&app, &boss, &page, &format!("{page}/reset"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        mails_of_kind(&app, "password_reset").await,
        vec!["inhaberin@praxis-neu.example"]
    );

    // Any admin changing any member's address: the old address is told as well.
    let mia_user = app.user("praxis-a", mia).await;
    let mia_page = format!("/id/admin/users/{}", mia.0);
    let r = post(
        &app,
        &boss,
        &mia_page,
        &mia_page,
        &profile_fields(&mia_user, "mia.neu@praxis-a.example"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        mails_of_kind(&app, "email_changed").await,
        vec!["owner@praxis-a.example", "mia@praxis-a.example"]
    );
    // Saving without a change of address tells nobody.
    let mia_user = app.user("praxis-a", mia).await;
    let r = post(
        &app,
        &boss,
        &mia_page,
        &mia_page,
        &profile_fields(&mia_user, "MIA.neu@praxis-a.example"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(mails_of_kind(&app, "email_changed").await.len(), 2);
}
