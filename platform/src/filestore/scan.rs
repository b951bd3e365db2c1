//! Virus scanning with clamd (`INSTREAM` over TCP, the `clamav-client` crate). Every upload
//! is scanned before it is committed to the store; a scanner that is not configured, not
//! reachable, too slow or answering anything but `OK`/`FOUND` refuses the upload (fail
//! closed): nothing unscanned is ever stored.

use std::path::Path;
use std::time::Duration;

use clamav_client::tokio::Tcp;

/// What clamd said about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// Malware found: the signature's name (e.g. `Eicar-Signature`).
    Infected(String),
}

/// Why a file could not be scanned (the upload is refused).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("no virus scanner configured")]
    NotConfigured,
    #[error("clamd unreachable: {0}")]
    Unreachable(std::io::Error),
    #[error("clamd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("clamd answered: {0}")]
    Failed(String),
}

impl ScanError {
    /// The German message users see.
    pub fn message(&self) -> &'static str {
        match self {
            Self::NotConfigured | Self::Unreachable(_) | Self::Timeout(_) => {
                "Virenprüfung nicht erreichbar – Datei wurde nicht gespeichert."
            }
            Self::Failed(_) => "Virenprüfung fehlgeschlagen – Datei wurde nicht gespeichert.",
        }
    }
}

/// The node's connection settings for clamd.
#[derive(Debug, Clone)]
pub struct Scanner {
    addr: Option<String>,
    timeout: Duration,
}

impl Scanner {
    pub fn new(addr: Option<String>, timeout: Duration) -> Self {
        Self {
            addr: addr.filter(|a| !a.trim().is_empty()),
            timeout,
        }
    }

    /// Streams the file at `path` to clamd and reads its verdict.
    pub async fn scan_file(&self, path: &Path) -> Result<Verdict, ScanError> {
        let Some(addr) = self.addr.as_deref() else {
            return Err(ScanError::NotConfigured);
        };
        let conn = Tcp { host_address: addr };
        let answer = tokio::time::timeout(
            self.timeout,
            clamav_client::tokio::scan_file(path, conn, Some(64 * 1024)),
        )
        .await
        .map_err(|_| ScanError::Timeout(self.timeout))?
        .map_err(ScanError::Unreachable)?;
        parse(&answer)
    }
}

/// Reads clamd's answer to `INSTREAM`: `stream: OK`, `stream: <name> FOUND`, or an error
/// such as `INSTREAM size limit exceeded. ERROR`.
pub fn parse(answer: &[u8]) -> Result<Verdict, ScanError> {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim_end_matches(['\0', '\n', '\r']).trim();
    let body = text.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Ok(Verdict::Clean),
        Some(b) if b.ends_with(" FOUND") => {
            let name = b.trim_end_matches(" FOUND").trim();
            Ok(Verdict::Infected(name.chars().take(200).collect()))
        }
        _ => Err(ScanError::Failed(text.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamd_answers_are_read_strictly() {
        assert_eq!(parse(b"stream: OK\0").unwrap(), Verdict::Clean);
        assert_eq!(
            parse(b"stream: eicar.com.UNOFFICIAL FOUND\0").unwrap(),
            Verdict::Infected("eicar.com.UNOFFICIAL".into())
        );
        assert!(matches!(
            parse(b"INSTREAM size limit exceeded. ERROR\0"),
            Err(ScanError::Failed(_))
        ));
        assert!(matches!(parse(b""), Err(ScanError::Failed(_))));
        // "OK" somewhere in an error is not a clean verdict.
        assert!(parse(b"stream: OK? no: lstat() failed. ERROR").is_err());
    }

    #[tokio::test]
    async fn no_scanner_or_closed_port_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, b"hello").unwrap();
        let none = Scanner::new(None, Duration::from_secs(2));
        assert!(matches!(
            none.scan_file(&f).await,
            Err(ScanError::NotConfigured)
        ));
        // A port nobody listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let closed = Scanner::new(Some(format!("127.0.0.1:{port}")), Duration::from_secs(2));
        let e = closed.scan_file(&f).await.unwrap_err();
        assert!(matches!(e, ScanError::Unreachable(_)), "{e:?}");
        assert!(e.message().starts_with("Virenprüfung nicht erreichbar"));
    }
}
