//! A real SMTP server for the tests: `python3 -m aiosmtpd` with the handler in
//! `tests/support/smtp_sink.py`, which stores each received message as a JSON file.
//! A missing aiosmtpd is a failure that says how to install it, never a skip.

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

pub struct SmtpSink {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts aiosmtpd on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        let mut sink = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        sink.run();
        sink
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
