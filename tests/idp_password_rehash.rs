//! A login rehashes the stored password when the hashing parameters changed.

use kollegium_idp::passwords::Argon2Params;

use crate::harness::{TestApp, client};
use crate::oidc_support::*;

async fn stored_hash(app: &TestApp, id: kollegium_idp::users::UserId) -> String {
    app.user("praxis-a", id).await.password_hash.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_rehashes_the_password_when_the_parameters_changed() {
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let id = app.create_user("praxis-a", "anna", PASSWORD, false).await;
    assert!(stored_hash(&app, id).await.contains("m=256,t=1,p=1"));
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PASSWORD)
            .await
            .status(),
        303
    );
    assert!(
        stored_hash(&app, id).await.contains("m=256,t=1,p=1"),
        "same parameters: kept"
    );

    app.config.idp.argon2 = Argon2Params {
        m_kib: 512,
        t: 2,
        p: 1,
    };
    app.restart().await;
    let before = stored_hash(&app, id).await;
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PASSWORD)
            .await
            .status(),
        303
    );
    let after = stored_hash(&app, id).await;
    assert_ne!(after, before);
    assert!(
        after.starts_with("$argon2id$") && after.contains("m=512,t=2,p=1"),
        "{after}"
    );
    // The new hash works, the wrong password still does not.
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(
        app.login(&client(), "praxis-a", "anna", "Falsches-Passwort-1")
            .await
            .status(),
        401
    );
}
