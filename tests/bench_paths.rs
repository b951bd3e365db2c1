//! What the performance work of issue 15 made observable: the group commit's batch sizes on
//! the operator listener's `/metrics`.

use crate::harness::TestApp;

async fn metrics(app: &TestApp) -> String {
    reqwest::get(app.operator_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of an unlabelled sample line `name value`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_group_commit_batch_sizes_of_chat_posts() {
    let app = TestApp::spawn().await;
    app.create_practice("praxis-a").await;
    let anna = app.signed_in("praxis-a", "anna", false).await;
    let r = app
        .post_form(
            &anna,
            "praxis-a",
            "/chat",
            "/chat/rooms",
            &[("name", "Labor")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let room = r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/chat/")
        .split('#')
        .next()
        .unwrap()
        .to_owned();

    let before = metrics(&app).await;
    assert!(
        before.contains("# TYPE kollegium_group_commit_batch_size histogram"),
        "{before}"
    );
    let (count0, sum0) = (
        sample(&before, "kollegium_group_commit_batch_size_count"),
        sample(&before, "kollegium_group_commit_batch_size_sum"),
    );
    for i in 0..3 {
        app.say(&anna, "praxis-a", &room, &format!("Befund {i}"))
            .await;
    }
    let after = metrics(&app).await;
    let (count1, sum1) = (
        sample(&after, "kollegium_group_commit_batch_size_count"),
        sample(&after, "kollegium_group_commit_batch_size_sum"),
    );
    // The histogram is the node's (other tests' servers in this process add to it too):
    // at least the three posts, each in a batch.
    assert!(sum1 - sum0 >= 3.0, "{after}");
    assert!(
        count1 - count0 >= 1.0 && count1 - count0 <= sum1 - sum0,
        "{after}"
    );
    let ones = sample(&after, "kollegium_group_commit_batch_size_bucket{le=\"1\"}");
    let all = sample(
        &after,
        "kollegium_group_commit_batch_size_bucket{le=\"+Inf\"}",
    );
    assert!(ones >= 1.0 && all >= count1, "{after}");
    // The operator listener only: the practice origin has no /metrics.
    let r = anna
        .get(app.url("praxis-a", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
}
