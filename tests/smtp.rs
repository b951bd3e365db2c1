//! A real SMTP server for the tests: `python3 -m aiosmtpd` with the handler in
//! `tests/support/smtp_sink.py`, which stores each received message as a JSON file.
//! A missing aiosmtpd is a failure that says how to install it, never a skip.
//! [`SmtpSink::start_tls`] serves STARTTLS (required) or implicit TLS with a
//! [`TestCert`] (private CA + server certificate) made by `openssl` at test time.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// One received (or outbox) message, decoded by Python's `email` package.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub message_id: Option<String>,
    pub auto_submitted: Option<String>,
    pub content_type: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub raw: String,
    pub envelope_to: Vec<String>,
    /// The TLS version the message arrived over (`TLSv1.3`); `None`: plain SMTP.
    #[serde(default)]
    pub tls: Option<String>,
}

impl Mail {
    pub fn text(&self) -> &str {
        self.text.as_deref().unwrap_or_default()
    }
    pub fn html(&self) -> &str {
        self.html.as_deref().unwrap_or_default()
    }
    /// The first `/id/setup/<token>` link's path in the plain text part.
    pub fn setup_path(&self) -> String {
        let text = self.text();
        let start = text.find("/id/setup/").expect("mail has a setup link");
        let end = text[start..]
            .find(|c: char| c.is_whitespace())
            .map_or(text.len(), |e| start + e);
        text[start..end].to_owned()
    }
}

fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

/// A Python interpreter that can import aiosmtpd (pyenv shims may hide Debian's packages).
pub fn python() -> &'static str {
    static FOUND: OnceLock<String> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut candidates = vec!["python3".to_owned(), "/usr/bin/python3".to_owned()];
        if let Ok(p) = std::env::var("KOLLEGIUM_TEST_PYTHON") {
            candidates.insert(0, p);
        }
        candidates
            .into_iter()
            .find(|py| {
                Command::new(py)
                    .args(["-c", "import aiosmtpd"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .unwrap_or_else(|| {
                panic!(
                    "the mail tests need a real SMTP server (Python's aiosmtpd) and none was found.\n\
                     Install it with: sudo apt-get install -y python3-aiosmtpd  (or: pip install aiosmtpd),\n\
                     or run ops/test.sh, which installs it."
                )
            })
    })
}

/// Decodes an `.eml` file with the same code the SMTP sink uses.
pub fn parse_eml(path: &Path) -> Mail {
    let out = Command::new(python())
        .arg(support_dir().join("smtp_sink.py"))
        .arg("parse")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private CA and a server certificate it signed for `localhost` and `127.0.0.1`,
/// made by `openssl` in a temporary directory (valid for one day). The relay serves
/// `cert` + `key`; the app trusts `ca` through `smtp.ca_file`. (A lone self-signed
/// certificate does not do: `openssl req -x509` marks it as a CA, and webpki refuses
/// a CA certificate as the server's own.)
pub struct TestCert {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the SMTP TLS tests need openssl to make test certificates ({e}).\n\
                 Install it with: sudo apt-get install -y openssl"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCert {
    pub fn localhost() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let days = ["-days", "1"];
        let ca_ext = [
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ];
        let mut ca = vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes"];
        ca.extend(["-subj", "/CN=Kollegium Test CA", "-keyout", "ca.key"]);
        ca.extend(["-out", "ca.pem"]);
        ca.extend(days);
        ca.extend(ca_ext);
        openssl(d, &ca);
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
            ],
        );
        std::fs::write(
            d.join("cert.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        let mut sign = vec!["x509", "-req", "-in", "cert.csr", "-CA", "ca.pem"];
        sign.extend(["-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem"]);
        sign.extend(["-extfile", "cert.ext"]);
        sign.extend(days);
        openssl(d, &sign);
        Self {
            ca: d.join("ca.pem"),
            cert: d.join("cert.pem"),
            key: d.join("key.pem"),
            _dir: dir,
        }
    }
}

/// How the sink secures connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain SMTP; STARTTLS is not offered.
    Plain,
    /// STARTTLS offered and required before MAIL.
    Starttls,
    /// Implicit TLS from the first byte (SMTPS).
    Implicit,
}

pub struct SmtpSink {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Extra aiosmtpd arguments (TLS certificate and key).
    tls_args: Vec<std::ffi::OsString>,
}

impl SmtpSink {
    /// Starts aiosmtpd on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        let mut sink = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls_args: Vec::new(),
        };
        sink.run();
        sink
    }

    /// Starts aiosmtpd serving `tls` with `cert` (ignored for [`SinkTls::Plain`]).
    pub fn start_tls(tls: SinkTls, cert: &TestCert) -> Self {
        let mut sink = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls_args: Self::tls_args(tls, cert),
        };
        sink.run();
        sink
    }

    fn tls_args(tls: SinkTls, cert: &TestCert) -> Vec<std::ffi::OsString> {
        let (c, k) = match tls {
            SinkTls::Plain => return Vec::new(),
            SinkTls::Starttls => ("--tlscert", "--tlskey"),
            SinkTls::Implicit => ("--smtpscert", "--smtpskey"),
        };
        vec![
            c.into(),
            cert.cert.clone().into(),
            k.into(),
            cert.key.clone().into(),
        ]
    }

    /// Starts the server again on the same port serving `tls`, keeping what it received.
    pub fn restart_tls(&mut self, tls: SinkTls, cert: &TestCert) {
        self.stop();
        self.tls_args = Self::tls_args(tls, cert);
        self.run();
    }

    fn mailbox(&self) -> PathBuf {
        self.dir.path().join("mailbox")
    }

    fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("aiosmtpd.log")).unwrap();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.tls_args)
            .args(["-c", "smtp_sink.Sink"])
            .arg(self.mailbox())
            .env("PYTHONPATH", support_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.path().join("aiosmtpd.log"));
                panic!("aiosmtpd exited with {status}: {log:?}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (the port stops accepting connections).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port, keeping what it received.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<Mail> {
        let Ok(rd) = std::fs::read_dir(self.mailbox()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived; panics after `secs` seconds.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} mails at the SMTP server within {secs} s, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
