//! Where mail goes: an SMTP relay, or the practice's file outbox when none is configured.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
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
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
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
                let relay = |e: lettre::transport::smtp::Error| MailerError::Relay {
                    host: s.host.clone(),
                    why: e.to_string(),
                };
                let mut b = match s.tls {
                    TlsMode::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                            .map_err(relay)?
                    }
                    TlsMode::Tls => {
                        AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(relay)?
                    }
                    TlsMode::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str())
                    }
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
    fs::create_dir_all(dir).map_err(err(dir))?;
    let target = dir.join(format!("{name}.eml"));
    let tmp = dir.join(format!(".tmp-{name}-{}", random_token(6)));
    let written = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
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
}
