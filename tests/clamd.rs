//! One real clamd per test process, shared by every server the tests start (its address is
//! in [`crate::harness::test_config`]). Its own config in a temp directory
//! (`DatabaseDirectory`, `TCPSocket <free port>`, `TCPAddr 127.0.0.1`, `Foreground yes`, no
//! `LocalSocket`) and one signature database, `test.hdb`, made by `sigtool --md5` of the
//! EICAR test file written at start: it finds EICAR, also inside a ZIP, and nothing else.
//!
//! clamd outlives no test run: it is started under a small shell watchdog that ends it (and
//! removes its directory) once this test process is gone. A missing clamd or sigtool fails
//! the tests with the command that installs them; nothing is skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The EICAR anti-virus test file (harmless; every scanner reports it).
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// What the scanner calls EICAR with the test database.
pub const EICAR_FINDING: &str = "eicar.com.UNOFFICIAL";

const INSTALL: &str = "sudo apt-get install -y clamav-daemon clamav   (or run ops/test.sh)";

fn find(cmd: &str) -> Option<String> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(cmd);
        if p.is_file() {
            return Some(p.display().to_string());
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether clamd at `addr` answers `PING` with `PONG`.
pub fn pings(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"zPING\0").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.starts_with(b"PONG")
}

fn start() -> Result<String, String> {
    let clamd = find("clamd").ok_or(format!("clamd is not installed: {INSTALL}"))?;
    let sigtool = find("sigtool").ok_or(format!("sigtool is not installed: {INSTALL}"))?;
    let dir = tempfile::Builder::new()
        .prefix("kollegium-clamd-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let db = dir.join("db");
    std::fs::create_dir(&db).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("eicar.com"), EICAR).map_err(|e| e.to_string())?;
    let out = Command::new(&sigtool)
        .arg("--md5")
        .arg("eicar.com")
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("cannot run {sigtool}: {e}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(format!(
            "sigtool --md5 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(db.join("test.hdb"), &out.stdout).map_err(|e| e.to_string())?;
    let port = free_port();
    let conf = dir.join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "DatabaseDirectory {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nForeground yes\n\
             LogFile {}\nStreamMaxLength 64M\n",
            db.display(),
            dir.join("clamd.log").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    // The watchdog: clamd in the background; when this test process (or clamd) is gone,
    // clamd is stopped and its directory removed.
    let script = format!(
        "'{clamd}' -c '{conf}' >/dev/null 2>&1 & c=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 1; done; \
         kill $c 2>/dev/null; wait $c 2>/dev/null; rm -rf '{dir}'",
        conf = conf.display(),
        me = std::process::id(),
        dir = dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start clamd: {e}"))?;
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if pings(&addr) {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("clamd.log")).unwrap_or_default();
    Err(format!(
        "clamd did not answer PING within 60 s; its log:\n{log}"
    ))
}

/// The shared clamd's `host:port`, started on first use.
pub fn address() -> String {
    static CLAMD: OnceLock<Result<String, String>> = OnceLock::new();
    match CLAMD.get_or_init(start) {
        Ok(a) => a.clone(),
        Err(e) => panic!("the tests need a real clamd: {e}"),
    }
}
