//! Where mail goes: an SMTP relay, or the practice's file outbox when none is configured.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use super::message::{MessageError, parse_from};
use crate::secrets::random_token;

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS; refused if the relay does not offer it.
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// No encryption: local relays and tests only.
    None,
}

/// An SMTP relay.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Empty: no authentication.
    pub username: String,
    pub password: Zeroizing<String>,
    /// Seconds one SMTP command may take.
    pub timeout_secs: u64,
    /// PEM file with an extra root certificate to trust for the relay (a private CA),
    /// on top of the default roots. `None`: the default roots only.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// What the mailer needs from the configuration.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `None`: no relay; mail goes to each practice's outbox directory.
    pub smtp: Option<SmtpSettings>,
    /// Sender, `Name <address>`.
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error(transparent)]
    From(#[from] MessageError),
    #[error("SMTP relay {host:?}: {why}")]
    Relay { host: String, why: String },
    /// The extra root certificate (`smtp.ca_file`) cannot be used.
    #[error("{path}: {why}")]
    CaFile { path: String, why: String },
}

const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// Reads a PEM file holding one or more certificates.
fn root_certificate(path: &Path) -> Result<Certificate, MailerError> {
    let err = |why: String| MailerError::CaFile {
        path: path.display().to_string(),
        why,
    };
    let pem = fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    if !pem
        .windows(PEM_CERTIFICATE.len())
        .any(|w| w == PEM_CERTIFICATE)
    {
        return Err(err(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Certificate::from_pem(&pem).map_err(|e| err(format!("not a valid PEM certificate: {e}")))
}

/// TLS parameters for `host`: the default roots plus `ca_file`'s certificates.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, MailerError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        builder = builder.add_root_certificate(root_certificate(path)?);
    }
    builder.build().map_err(|e| match ca_file {
        Some(path) => MailerError::CaFile {
            path: path.display().to_string(),
            why: format!("not a usable root certificate: {e}"),
        },
        None => MailerError::Relay {
            host: host.to_owned(),
            why: e.to_string(),
        },
    })
}

/// Checks that `path` holds certificates usable as trusted roots (`smtp.ca_file`).
pub fn check_ca_file(path: &Path) -> Result<(), MailerError> {
    tls_parameters("localhost", Some(path)).map(|_| ())
}

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The relay answered or could not be reached; `class` is safe to log (no addresses).
    #[error("{detail}")]
    Smtp {
        class: String,
        permanent: bool,
        detail: String,
    },
    #[error("outbox {path}: {source}")]
    Outbox {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl DeliveryError {
    /// A description without addresses or content, for logs.
    pub fn log_class(&self) -> String {
        match self {
            Self::Smtp { class, .. } => class.clone(),
            Self::Outbox { source, .. } => format!("outbox: {}", source.kind()),
        }
    }
    /// The relay refused the mail for good (5xx).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Smtp {
                permanent: true,
                ..
            }
        )
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        let kind = if e.is_permanent() {
            "permanent"
        } else {
            "transient"
        };
        format!("smtp {kind} reply {code}")
    } else if e.is_timeout() {
        "smtp timeout".into()
    } else if e.is_tls() {
        "smtp tls failure".into()
    } else if e.is_client() {
        "smtp client error".into()
    } else if e.is_response() {
        "smtp unexpected response".into()
    } else {
        "smtp connection failure".into()
    }
}

enum Route {
    Smtp {
        host: String,
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
    },
    Outbox,
}

/// Sends built messages. Cheap to share behind an `Arc`.
pub struct Mailer {
    from: Mailbox,
    route: Route,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let route = match &self.route {
            Route::Smtp { host, .. } => format!("smtp {host}"),
            Route::Outbox => "outbox".into(),
        };
        f.debug_struct("Mailer").field("route", &route).finish()
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Self, MailerError> {
        let from = parse_from(&settings.from)?;
        let route = match &settings.smtp {
            None => Route::Outbox,
            Some(s) => {
                let tls = |s: &SmtpSettings| tls_parameters(&s.host, s.ca_file.as_deref());
                let mut b =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str());
                b = match s.tls {
                    // Refuses to send if the relay does not offer STARTTLS.
                    TlsMode::Starttls => b.tls(Tls::Required(tls(s)?)),
                    TlsMode::Tls => b.tls(Tls::Wrapper(tls(s)?)),
                    TlsMode::None => b,
                };
                b = b
                    .port(s.port)
                    .timeout(Some(Duration::from_secs(s.timeout_secs.max(1))));
                if !s.username.is_empty() {
                    b = b.credentials(Credentials::new(
                        s.username.clone(),
                        s.password.as_str().to_owned(),
                    ));
                }
                Route::Smtp {
                    host: s.host.clone(),
                    transport: Box::new(b.build()),
                }
            }
        };
        Ok(Self { from, route })
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Whether mail goes to the practices' outbox directories.
    pub fn uses_outbox(&self) -> bool {
        matches!(self.route, Route::Outbox)
    }

    /// Sends `message` through the relay. With the outbox route, writes it to
    /// `outbox_dir/<name>.eml` instead (blocking file I/O on a blocking thread).
    pub async fn deliver(
        &self,
        message: Message,
        outbox_dir: PathBuf,
        name: String,
    ) -> Result<(), DeliveryError> {
        match &self.route {
            Route::Smtp { transport, .. } => {
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| DeliveryError::Smtp {
                        class: classify(&e),
                        permanent: e.is_permanent(),
                        detail: e.to_string(),
                    })
            }
            Route::Outbox => {
                let bytes = message.formatted();
                let path = outbox_dir.clone();
                tokio::task::spawn_blocking(move || write_outbox(&outbox_dir, &name, &bytes))
                    .await
                    .map_err(|e| DeliveryError::Outbox {
                        path: path.display().to_string(),
                        source: std::io::Error::other(e.to_string()),
                    })?
            }
        }
    }
}

/// Writes one message as `dir/<name>.eml` atomically: a temporary file in the same
/// directory, synced, then renamed into place, then the directory synced.
pub fn write_outbox(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DeliveryError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| DeliveryError::Outbox { path, source }
    };
    crate::perms::create_dir_all(dir).map_err(err(dir))?;
    let target = dir.join(format!("{name}.eml"));
    let tmp = dir.join(format!(".tmp-{name}-{}", random_token(6)));
    let written = (|| -> std::io::Result<()> {
        // Owner-only: an outbox file is the delivered mail, links included.
        let mut f = crate::perms::create_new_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(err(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_write_is_atomic_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("outbox");
        write_outbox(&out, "100-idp-1", b"Subject: x\r\n\r\nhi\r\n").unwrap();
        write_outbox(&out, "100-idp-1", b"Subject: y\r\n\r\nhi\r\n").unwrap();
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["100-idp-1.eml".to_owned()]);
        assert!(
            fs::read_to_string(out.join("100-idp-1.eml"))
                .unwrap()
                .contains("Subject: y")
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let s = SmtpSettings {
            host: "mail.example".into(),
            port: 587,
            tls: TlsMode::Starttls,
            username: "u".into(),
            password: Zeroizing::new("hunter2hunter2".into()),
            timeout_secs: 30,
            ca_file: None,
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let m = Mailer::new(&MailSettings {
            smtp: Some(s),
            from: "Kollegium <no-reply@kollegium.example>".into(),
        })
        .unwrap();
        assert!(!m.uses_outbox());
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn a_ca_file_must_be_a_readable_pem_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = check_ca_file(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );

        let key_only = dir.path().join("key.pem");
        fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = check_ca_file(&key_only).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(check_ca_file(&garbage).is_err(), "not DER inside the PEM");

        let settings = |tls| MailSettings {
            smtp: Some(SmtpSettings {
                host: "mail.example".into(),
                port: 587,
                tls,
                username: String::new(),
                password: Zeroizing::new(String::new()),
                timeout_secs: 30,
                ca_file: Some(garbage.clone()),
            }),
            from: "Kollegium <no-reply@kollegium.example>".into(),
        };
        for tls in [TlsMode::Starttls, TlsMode::Tls] {
            let e = Mailer::new(&settings(tls)).unwrap_err();
            assert!(matches!(e, MailerError::CaFile { .. }), "{e}");
        }
        // Without TLS the file is not used (the configuration check still rejects it).
        Mailer::new(&settings(TlsMode::None)).unwrap();
    }
}
