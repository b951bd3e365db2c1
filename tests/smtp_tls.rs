//! SMTP over TLS against a real server (aiosmtpd with a certificate from a private CA
//! made at test time): STARTTLS and implicit TLS deliver when `smtp.ca_file` trusts the
//! certificate; a relay without STARTTLS gets nothing in clear text and an untrusted
//! certificate gets nothing at all, while the mail waits in the queue; a bad `ca_file`
//! is a configuration error.

use kollegium::config::{Config, SmtpTls};

use crate::harness::{TestApp, cli_in, stderr, stdout, use_smtp};
use crate::mail::wait_rows;
use crate::smtp::{SinkTls, SmtpSink, TestCert};

/// Points `config` at the test server on `port` with `tls`, trusting `ca` if given.
fn use_tls(config: &mut Config, port: u16, tls: SmtpTls, ca: Option<&TestCert>) {
    use_smtp(config, port);
    config.smtp.tls = tls;
    config.smtp.ca_file = ca.map(|c| c.ca.clone());
}

/// Creates a practice (its owner's setup mail goes out by SMTP) and checks that the mail
/// arrived once, over TLS, and is marked sent after one attempt.
async fn setup_mail_arrives_over_tls(tls: SmtpTls, sink_tls: SinkTls) {
    let cert = TestCert::localhost();
    let smtp = SmtpSink::start_tls(sink_tls, &cert);
    let app = TestApp::spawn_with(|c| use_tls(c, smtp.port, tls, Some(&cert))).await;
    app.create_practice("praxis-a").await;
    let mails = smtp.wait_for(1, 20).await;
    let m = &mails[0];
    assert_eq!(m.envelope_to, vec!["owner@praxis-a.example".to_owned()]);
    assert_eq!(
        m.subject.as_deref(),
        Some("Zugang für Praxis praxis-a einrichten")
    );
    assert!(m.setup_path().starts_with("/id/setup/"));
    assert!(
        m.tls.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
        "the mail arrived over TLS: {:?}",
        m.tls
    );
    wait_rows(&app, "praxis-a", 10, |rows| {
        rows.len() == 1 && rows[0].sent_at.is_some() && rows[0].attempts == 1
    })
    .await;
    assert!(app.outbox("praxis-a").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_ca_file_delivers_over_tls() {
    setup_mail_arrives_over_tls(SmtpTls::Starttls, SinkTls::Starttls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_with_ca_file_delivers_over_tls() {
    setup_mail_arrives_over_tls(SmtpTls::Tls, SinkTls::Implicit).await;
}

/// Waits until the practice's only mail failed at least twice and is still queued.
async fn wait_queued_after_failures(app: &TestApp) -> crate::harness::MailRow {
    wait_rows(app, "praxis-a", 30, |rows| {
        rows.len() == 1 && rows[0].sent_at.is_none() && rows[0].attempts >= 2
    })
    .await;
    let row = app.mail_rows("praxis-a").await.remove(0);
    assert_eq!(row.kind, "owner_setup");
    assert!(row.failed_at.is_none(), "retried, not given up: {row:?}");
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_never_falls_back_to_plain_text_and_the_mail_waits() {
    let cert = TestCert::localhost();
    let mut smtp = SmtpSink::start_tls(SinkTls::Plain, &cert);
    let app = TestApp::spawn_with(|c| use_tls(c, smtp.port, SmtpTls::Starttls, Some(&cert))).await;
    app.create_practice("praxis-a").await;
    let row = wait_queued_after_failures(&app).await;
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("STARTTLS"), "{error}");
    assert!(
        smtp.messages().is_empty(),
        "nothing is sent in clear text to a relay without STARTTLS"
    );
    assert!(
        app.outbox("praxis-a").is_empty(),
        "no fallback to the outbox"
    );

    // Once the relay offers STARTTLS the same mail goes out, encrypted and only once.
    smtp.restart_tls(SinkTls::Starttls, &cert);
    let mails = smtp.wait_for(1, 30).await;
    assert_eq!(
        mails[0].envelope_to,
        vec!["owner@praxis-a.example".to_owned()]
    );
    assert!(mails[0].tls.is_some(), "{:?}", mails[0].tls);
    wait_rows(&app, "praxis-a", 10, |rows| rows[0].sent_at.is_some()).await;
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_refuses_an_untrusted_certificate_and_keeps_the_mail() {
    let cert = TestCert::localhost();
    let smtp = SmtpSink::start_tls(SinkTls::Implicit, &cert);
    let mut app = TestApp::spawn_with(|c| use_tls(c, smtp.port, SmtpTls::Tls, None)).await;
    app.create_practice("praxis-a").await;
    let row = wait_queued_after_failures(&app).await;
    let error = row.last_error.unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate"), "{error}");
    assert!(
        smtp.messages().is_empty(),
        "a relay with an untrusted certificate gets nothing"
    );

    // Trusting the certificate (and restarting) delivers the waiting mail.
    app.config.smtp.ca_file = Some(cert.ca.clone());
    app.restart().await;
    let mails = smtp.wait_for(1, 30).await;
    assert_eq!(
        mails[0].envelope_to,
        vec!["owner@praxis-a.example".to_owned()]
    );
    assert!(mails[0].tls.is_some(), "{:?}", mails[0].tls);
    wait_rows(&app, "praxis-a", 10, |rows| rows[0].sent_at.is_some()).await;
}

#[test]
fn a_missing_or_non_pem_ca_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let check = |path: &std::path::Path| {
        cli_in(
            &data,
            &["config", "check"],
            &[("KOLLEGIUM_SMTP__CA_FILE", path.to_str().unwrap())],
        )
    };

    let missing = dir.path().join("relay-ca.pem");
    let out = check(&missing);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`smtp.ca_file`") && stderr(&out).contains("relay-ca.pem"),
        "{}",
        stderr(&out)
    );

    let not_pem = dir.path().join("relay-ca.txt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let out = check(&not_pem);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`smtp.ca_file`") && stderr(&out).contains("PEM"),
        "{}",
        stderr(&out)
    );

    let cert = TestCert::localhost();
    let out = check(&cert.ca);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("ca_file = \"{}\"", cert.ca.display())),
        "{}",
        stdout(&out)
    );
}
