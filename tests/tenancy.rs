//! Practice lifecycle through the library, isolation between practices, atomic creation,
//! persistence across restarts.

use kollegium::practices::Change;
use kollegium_platform::PLATFORM_DB;
use kollegium_tenants::kv;
use kollegium_tenants::provision::{
    BoxError, NewPractice, ProvisionError, ProvisionHook, ProvisionReport, leftovers,
};
use kollegium_tenants::registry::{self, PracticeStatus};

use crate::harness::{TestApp, files_under};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_show_suspend_resume_delete_through_the_library() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;

    let dir = app.data_dir().join("tenants/praxis-a");
    for f in [
        "idp.sqlite",
        "platform.sqlite",
        "practice.key",
        "files",
        "index",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let all = registry::list(&mut app.server().store.lock_registry().unwrap()).unwrap();
    assert_eq!(
        all.iter().map(|p| p.slug.as_str()).collect::<Vec<_>>(),
        ["praxis-a", "praxis-b"]
    );
    assert!(all.iter().all(|p| p.status == PracticeStatus::Active));

    let page = app.get(&app.url("praxis-a", "/id/login")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Praxis praxis-a"));

    app.change("praxis-a", Change::Suspend).unwrap();
    let page = app.get(&app.url("praxis-a", "/id/login")).await;
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("Praxis gesperrt"));
    assert!(matches!(
        app.change("praxis-a", Change::Suspend),
        Err(ProvisionError::WrongStatus { .. })
    ));

    app.change("praxis-a", Change::Resume).unwrap();
    assert_eq!(
        app.get(&app.url("praxis-a", "/id/login")).await.status(),
        200
    );

    assert!(matches!(
        app.change(
            "praxis-a",
            Change::Delete {
                confirm: "praxis-b"
            }
        ),
        Err(ProvisionError::Confirm(_))
    ));
    assert!(dir.exists(), "a refused delete must not touch the data");
    app.change(
        "praxis-a",
        Change::Delete {
            confirm: "praxis-a",
        },
    )
    .unwrap();
    assert!(!dir.exists());
    assert_eq!(app.get(&app.url("praxis-a", "/")).await.status(), 404);
    // The tombstone keeps the slug from being silently reused.
    let again = app.try_create_practice("praxis-a", &[]).await;
    assert!(
        matches!(again, Err(ProvisionError::Tombstoned(_))),
        "{again:?}"
    );
    let p = registry::find(&mut app.server().store.lock_registry().unwrap(), "praxis-a")
        .unwrap()
        .unwrap();
    assert_eq!(p.status, PracticeStatus::Deleted);
    // The other practice is untouched.
    assert_eq!(
        app.get(&app.url("praxis-b", "/id/login")).await.status(),
        200
    );
    assert!(matches!(
        app.try_create_practice("praxis-b", &[]).await,
        Err(ProvisionError::Exists(_))
    ));
}

struct FailingHook;

impl ProvisionHook for FailingHook {
    fn step(&self) -> &'static str {
        "injected fault"
    }
    fn provision(&self, p: &NewPractice<'_>, _: &mut ProvisionReport) -> Result<(), BoxError> {
        // Prove the earlier steps really wrote something before the failure.
        assert!(p.dir.join("idp.sqlite").exists() && p.dir.join("platform.sqlite").exists());
        Err("disk full (injected)".into())
    }
}

/// Occupies the final directory after staging, so the commit's rename fails.
struct RacingDirHook;

impl ProvisionHook for RacingDirHook {
    fn step(&self) -> &'static str {
        "racing directory"
    }
    fn provision(&self, p: &NewPractice<'_>, _: &mut ProvisionReport) -> Result<(), BoxError> {
        let final_dir = p.dir.parent().unwrap().join(p.slug.as_str());
        std::fs::create_dir(&final_dir)?;
        std::fs::write(final_dir.join("someone-elses-file"), b"x")?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_failing_halfway_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    let err = app
        .try_create_practice("praxis-fail", &[&FailingHook])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert!(!app.data_dir().join("tenants/praxis-fail").exists());
    assert!(
        leftovers(&app.data_dir()).is_empty(),
        "{:?}",
        leftovers(&app.data_dir())
    );
    assert!(
        registry::find(
            &mut app.server().store.lock_registry().unwrap(),
            "praxis-fail"
        )
        .unwrap()
        .is_none()
    );

    // Failure at the very last step (the rename inside the registry transaction).
    let err = app
        .try_create_practice("praxis-race", &[&RacingDirHook])
        .await
        .unwrap_err();
    assert!(matches!(err, ProvisionError::Io { .. }), "{err:?}");
    assert!(
        registry::find(
            &mut app.server().store.lock_registry().unwrap(),
            "praxis-race"
        )
        .unwrap()
        .is_none()
    );
    assert!(leftovers(&app.data_dir()).is_empty());
    // The directory that was in the way is not ours and stays as it was.
    assert!(
        app.data_dir()
            .join("tenants/praxis-race/someone-elses-file")
            .exists()
    );
    assert!(
        !app.data_dir()
            .join("tenants/praxis-race/idp.sqlite")
            .exists()
    );

    // After the failures the same slug can be created normally.
    app.create_practice("praxis-fail").await;
    assert_eq!(
        app.get(&app.url("praxis-fail", "/id/login")).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_practice_a_never_reaches_practice_b() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    app.create_practice("praxis-b").await;
    let marker = "MARKER-only-for-praxis-a-7f3c";
    let a = app.tenant("praxis-a");
    tokio::task::spawn_blocking(move || {
        let mut conn = a.conn(&PLATFORM_DB).unwrap();
        kv::set(&mut conn, "welcome_text", marker).unwrap();
    })
    .await
    .unwrap();

    let contains = |slug: &str| {
        files_under(&app.data_dir().join("tenants").join(slug))
            .into_iter()
            .any(|f| {
                let bytes = std::fs::read(&f).unwrap_or_default();
                bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
            })
    };
    assert!(contains("praxis-a"), "the write must land in A's files");
    assert!(
        !contains("praxis-b"),
        "A's write must never appear in B's files"
    );
    assert!(
        !std::fs::read(app.data_dir().join("registry.sqlite"))
            .unwrap()
            .windows(marker.len())
            .any(|w| w == marker.as_bytes())
    );

    // Through B's handle, the value A wrote does not exist.
    let b = app.tenant("praxis-b");
    let seen = tokio::task::spawn_blocking(move || {
        kv::get(&mut b.conn(&PLATFORM_DB).unwrap(), "welcome_text").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(seen, None);
    let b_page = app
        .get(&app.url("praxis-b", "/id/login"))
        .await
        .text()
        .await
        .unwrap();
    assert!(b_page.contains("Praxis praxis-b") && !b_page.contains("Praxis praxis-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_practices_and_their_data() {
    let mut app = TestApp::spawn().await;
    app.create_practice("praxis-keep").await;
    app.create_practice("praxis-pause").await;
    app.change("praxis-pause", Change::Suspend).unwrap();
    let t = app.tenant("praxis-keep");
    tokio::task::spawn_blocking(move || {
        kv::set(
            &mut t.conn(&PLATFORM_DB).unwrap(),
            "welcome_text",
            "Guten Morgen, Team!",
        )
        .unwrap();
    })
    .await
    .unwrap();
    let key_before = std::fs::read(app.data_dir().join("node.key")).unwrap();

    app.restart().await;

    assert_eq!(
        std::fs::read(app.data_dir().join("node.key")).unwrap(),
        key_before
    );
    let page = app.get(&app.url("praxis-keep", "/id/login")).await;
    assert_eq!(page.status(), 200);
    let t = app.tenant("praxis-keep");
    let kept = tokio::task::spawn_blocking(move || {
        kv::get(&mut t.conn(&PLATFORM_DB).unwrap(), "welcome_text").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(kept.as_deref(), Some("Guten Morgen, Team!"));
    assert_eq!(app.get(&app.url("praxis-pause", "/")).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_practices_are_capped_and_idle_ones_closed() {
    let app = TestApp::spawn_with(|c| c.limits.max_open_practices = 3).await;
    for i in 0..6 {
        app.create_practice(&format!("praxis-{i}")).await;
    }
    for i in 0..6 {
        assert_eq!(
            app.get(&app.url(&format!("praxis-{i}"), "/id/setup/kein-gueltiger-link"))
                .await
                .status(),
            410
        );
    }
    let store = &app.server().store;
    assert_eq!(store.open_practices(), 3, "LRU cap holds");
    assert!(store.open_databases() <= 3);
    // The evicted practice reopens transparently.
    assert_eq!(
        app.get(&app.url("praxis-0", "/id/setup/kein-gueltiger-link"))
            .await
            .status(),
        410
    );
    assert_eq!(store.open_practices(), 3);
    store.close_all();
    assert_eq!(store.open_practices(), 0);
    assert_eq!(
        store.open_connections(),
        0,
        "closing practices closes their connections"
    );
}
