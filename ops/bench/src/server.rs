//! The server under test: the release `kollegium` binary as a separate process on a fresh
//! data directory, listening on loopback ports, so its memory and file descriptors can be
//! read from `/proc/<pid>` without the load driver's own counted in.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde::Serialize;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::report::{proc_kb, workspace_root};

/// How long the server gets to answer `/healthz` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A fresh temporary directory holding the data directory and the server log. Removed on
/// drop unless `KOLLEGIUM_BENCH_KEEP` is set (to a value other than `0`).
pub struct Workdir {
    root: PathBuf,
    guard: Option<TempDir>,
}

impl Workdir {
    pub fn new() -> anyhow::Result<Self> {
        let guard = tempfile::Builder::new()
            .prefix("kollegium-bench-")
            .tempdir()?;
        let root = guard.path().to_path_buf();
        std::fs::create_dir(root.join("data"))?;
        Ok(Self {
            root,
            guard: Some(guard),
        })
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let keep = std::env::var("KOLLEGIUM_BENCH_KEEP").is_ok_and(|v| !v.is_empty() && v != "0");
        if keep && let Some(guard) = self.guard.take() {
            eprintln!("KOLLEGIUM_BENCH_KEEP: kept {}", guard.keep().display());
        }
    }
}

/// Builds (or confirms fresh) the release server binary and returns its path.
///
/// The package selection includes this crate so that dependency features resolve exactly as
/// for `cargo run -p kollegium-bench` (the driver's own `tempfile` turns on `std` features
/// of `rustix`/`bitflags`); with `-p kollegium` alone every run would rebuild a large part
/// of the dependency tree twice (once for the server, once more for the next driver build).
/// For the same reason the variables `cargo run` sets for the driver (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, ...) are removed: `ring`'s build script reruns when they change.
pub async fn build_server_binary() -> anyhow::Result<PathBuf> {
    // Once per driver process: the runs of `--repeat` use the same binary.
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(path) = BUILT.get() {
        return Ok(path.clone());
    }
    // An A/B comparison runs another build's server under this driver (the driver still
    // creates the practices with this tree's library).
    let path = match std::env::var_os("KOLLEGIUM_BENCH_SERVER") {
        Some(other) => {
            let other = PathBuf::from(other);
            anyhow::ensure!(
                other.is_file(),
                "KOLLEGIUM_BENCH_SERVER={} is not a file",
                other.display()
            );
            // The server runs in its work directory: a relative path is the caller's.
            let other = other.canonicalize()?;
            println!(
                "Server binary from KOLLEGIUM_BENCH_SERVER: {}",
                other.display()
            );
            other
        }
        None => build().await?,
    };
    Ok(BUILT.get_or_init(|| path).clone())
}

async fn build() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!(
        "Building the server: cargo build --release -p kollegium -p kollegium-bench --bin kollegium"
    );
    let mut cmd = Command::new(&cargo);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let set_by_cargo_run = k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&k.as_ref());
        if set_by_cargo_run {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .args([
            "build",
            "--release",
            "-p",
            "kollegium",
            "-p",
            "kollegium-bench",
            "--bin",
            "kollegium",
        ])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("cannot run cargo")?;
    if !out.status.success() {
        bail!("building the server failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "kollegium")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the kollegium executable")
}

/// The longest wait for the quiet point.
pub const QUIET_TIMEOUT: Duration = Duration::from_secs(30);

fn new_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        // Below the server's keep-alive timeout (5 s): a connection idle that long (the
        // operator listener's, between the health check and the gauges after a long pass)
        // is not reused just as the server closes it ("connection closed before message
        // completed").
        .pool_idle_timeout(Duration::from_secs(3))
        .build()?)
}

/// TCP connections (IPv4) from or to one of `ports`, in any state that still holds a
/// socket open (all but LISTEN, TIME_WAIT and CLOSE).
fn open_connections(ports: &[u16]) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    count_connections(&text, ports)
}

fn count_connections(text: &str, ports: &[u16]) -> usize {
    let port = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    text.lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state)) = (f.get(1), f.get(2), f.get(3)) else {
                return false;
            };
            let ours = [local, remote]
                .iter()
                .any(|a| port(a).is_some_and(|p| ports.contains(&p)));
            ours && !matches!(*state, "0A" | "06" | "07")
        })
        .count()
}

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it soon after).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The server's two loopback listeners, chosen before the server starts so that practices
/// created beforehand already know their origin (`http://<slug>.localhost:<port>`).
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub addr: SocketAddr,
    pub operator_addr: SocketAddr,
}

impl Listen {
    pub fn pick() -> anyhow::Result<Self> {
        Ok(Self {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            operator_addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        })
    }
}

/// Memory and file descriptors of the server process.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    /// Parts of the RSS: heap and stacks, mapped files, shared memory (SQLite `-shm`).
    pub rss_anon_mb: f64,
    pub rss_file_mb: f64,
    pub rss_shmem_mb: f64,
    pub threads: u64,
    pub fds: usize,
    /// Open descriptors by kind: `sqlite`, `sqlite-wal`, `sqlite-shm`, `socket`, `other`.
    pub fds_by_kind: BTreeMap<&'static str, usize>,
    /// Soft limit on open files of the server process.
    pub max_open_files: Option<u64>,
}

/// The running server.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    pub operator_addr: SocketAddr,
    /// Replaced by [`ServerProcess::quiet_point`], which closes the driver's connections.
    client: std::sync::Mutex<reqwest::Client>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `binary serve` on `workdir` listening on `listen` and waits until healthy.
    /// `extra_env` adds `KOLLEGIUM_*` settings for the scenario.
    pub async fn start(
        binary: &Path,
        workdir: &Workdir,
        listen: Listen,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let Listen {
            addr,
            operator_addr,
        } = listen;
        let log = workdir.log_path();
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            // Only our settings: no ./kollegium.toml, no inherited KOLLEGIUM_* or RUST_LOG.
            .current_dir(workdir.root())
            .env_remove("RUST_LOG")
            .env_remove("KOLLEGIUM_CONFIG");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KOLLEGIUM_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("KOLLEGIUM_DATA_DIR", workdir.data_dir())
            .env("KOLLEGIUM_LISTEN", addr.to_string())
            .env("KOLLEGIUM_OPERATOR_LISTEN", operator_addr.to_string())
            .env("KOLLEGIUM_LOG__LEVEL", "warn")
            .env("KOLLEGIUM_SHUTDOWN_TIMEOUT_SECS", "5");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("server exited at once")?;
        let mut server = Self {
            child,
            pid,
            addr,
            operator_addr,
            client: std::sync::Mutex::new(new_client()?),
            log,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/healthz", self.operator_addr);
        let deadline = Instant::now() + START_TIMEOUT;
        let client = self.client();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "server exited during start ({status}); log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status() == StatusCode::OK
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "server not healthy after {START_TIMEOUT:?}; log:\n{}",
            self.log_tail()
        )
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file the server's output goes to.
    pub fn log_file(&self) -> &std::path::Path {
        &self.log
    }

    /// The last lines of the server's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Client for the main listener: no proxy, no automatic redirects.
    pub fn client(&self) -> reqwest::Client {
        match self.client.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The defined quiet point for reading memory: closes the driver's connections (a new
    /// client replaces the old one), then waits until at least `min_wait` has passed (the
    /// server's keep-alive timeout, after which it also drops the idle connections of its
    /// own calls to itself) and no TCP connection to either listener of the server is left
    /// (`/proc/net/tcp`). Returns the wait and the connections still open if it gave up
    /// after [`QUIET_TIMEOUT`].
    pub async fn quiet_point(&self, min_wait: Duration) -> anyhow::Result<(Duration, usize)> {
        let fresh = new_client()?;
        match self.client.lock() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        let started = Instant::now();
        tokio::time::sleep(min_wait).await;
        let ports = [self.addr.port(), self.operator_addr.port()];
        loop {
            let open = open_connections(&ports);
            if open == 0 || started.elapsed() >= QUIET_TIMEOUT {
                return Ok((started.elapsed(), open));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The plain gauges of the operator `/metrics` (lines without labels).
    pub async fn gauges(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let url = format!("http://{}/metrics", self.operator_addr);
        let text = self
            .client()
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// Reads RSS, threads and open descriptors from `/proc/<pid>`.
    pub fn resources(&self) -> anyhow::Result<Resources> {
        let proc = PathBuf::from(format!("/proc/{}", self.pid));
        let status = std::fs::read_to_string(proc.join("status"))?;
        let mb = |key| {
            proc_kb(&status, key)
                .map(|kb| kb as f64 / 1024.0)
                .unwrap_or(f64::NAN)
        };
        let mut fds_by_kind = BTreeMap::new();
        let mut fds = 0;
        for entry in std::fs::read_dir(proc.join("fd"))? {
            let Ok(entry) = entry else { continue };
            fds += 1;
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            let kind = if target.ends_with(".sqlite") {
                "sqlite"
            } else if target.ends_with(".sqlite-wal") {
                "sqlite-wal"
            } else if target.ends_with(".sqlite-shm") {
                "sqlite-shm"
            } else if target.starts_with("socket:") {
                "socket"
            } else {
                "other"
            };
            *fds_by_kind.entry(kind).or_insert(0) += 1;
        }
        let limits = std::fs::read_to_string(proc.join("limits")).unwrap_or_default();
        let max_open_files = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok());
        Ok(Resources {
            rss_mb: mb("VmRSS"),
            peak_rss_mb: mb("VmHWM"),
            rss_anon_mb: mb("RssAnon"),
            rss_file_mb: mb("RssFile"),
            rss_shmem_mb: mb("RssShmem"),
            threads: proc_kb(&status, "Threads").unwrap_or(0),
            fds,
            fds_by_kind,
            max_open_files,
        })
    }

    /// Sends SIGTERM and waits for the exit; returns how long shutdown took.
    pub async fn stop(mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("cannot run kill")?;
        if !sent.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!(
                        "server exited with {status} after SIGTERM; log:\n{}",
                        self.log_tail()
                    );
                }
                Ok(started.elapsed())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("server did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_open_connections_of_the_server_ports() {
        // 0x1F90 = 8080 (listening, one established pair, one TIME_WAIT), 0x0016 = 22.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n\
   1: 0100007F:1F90 0100007F:C000 01 00000000:00000000\n\
   2: 0100007F:C000 0100007F:1F90 01 00000000:00000000\n\
   3: 0100007F:1F90 0100007F:C001 06 00000000:00000000\n\
   4: 0100007F:0016 0100007F:C002 01 00000000:00000000\n";
        assert_eq!(count_connections(text, &[8080]), 2);
        assert_eq!(count_connections(text, &[22]), 1);
        assert_eq!(count_connections(text, &[9999]), 0);
    }
}
