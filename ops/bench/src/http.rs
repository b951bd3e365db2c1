//! Requests to practices the way a browser makes them: to 127.0.0.1 with
//! `Host: <slug>.localhost:<port>` (glibc does not resolve `*.localhost`), following the
//! practice's own redirects by hand so every hop is timed on its own.

use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::StatusCode;
use reqwest::header::{HOST, LOCATION};

use crate::server::ServerProcess;

/// Redirects followed at most in one page load.
const MAX_HOPS: usize = 8;

/// One request and its answer, timed until the whole body was read.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The path without the query (`/auth/login`), to group hops by endpoint.
    pub endpoint: String,
    pub status: StatusCode,
    pub took: Duration,
    pub location: Option<String>,
}

/// The requests of one page load, the last one not a redirect.
#[derive(Debug, Clone)]
pub struct PageLoad {
    pub hops: Vec<Hop>,
}

impl PageLoad {
    pub fn total(&self) -> Duration {
        self.hops.iter().map(|h| h.took).sum()
    }
    pub fn status(&self) -> Option<StatusCode> {
        self.hops.last().map(|h| h.status)
    }
    /// `/ 303 -> /auth/login 303 -> ...` for messages.
    pub fn describe(&self) -> String {
        let hops: Vec<String> = self
            .hops
            .iter()
            .map(|h| format!("{} {}", h.endpoint, h.status.as_u16()))
            .collect();
        hops.join(" -> ")
    }
}

impl ServerProcess {
    /// The `Host` header value of practice `slug`.
    pub fn practice_host(&self, slug: &str) -> String {
        format!("{slug}.localhost:{}", self.addr.port())
    }

    /// `GET path` with an explicit `Host` header, timed until the body was read.
    pub async fn get_host(&self, host: &str, path: &str) -> anyhow::Result<Hop> {
        let url = format!("http://{}{path}", self.addr);
        let started = Instant::now();
        let resp = self.client().get(&url).header(HOST, host).send().await?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        resp.bytes().await?;
        let endpoint = path.split('?').next().unwrap_or(path).to_owned();
        Ok(Hop {
            endpoint,
            status,
            took: started.elapsed(),
            location,
        })
    }

    /// `GET path` on practice `slug`, then every redirect that stays on the practice's
    /// origin, until an answer that is not a redirect (a browser's page load).
    pub async fn page_load(&self, slug: &str, path: &str) -> anyhow::Result<PageLoad> {
        let host = self.practice_host(slug);
        let origin = format!("http://{host}");
        let mut hops = Vec::new();
        let mut next = path.to_owned();
        for _ in 0..MAX_HOPS {
            let hop = self.get_host(&host, &next).await?;
            let redirect = hop.status.is_redirection();
            let location = hop.location.clone();
            hops.push(hop);
            if !redirect {
                return Ok(PageLoad { hops });
            }
            next = match location {
                Some(l) if l.starts_with('/') && !l.starts_with("//") => l,
                Some(l) => match l.strip_prefix(&origin) {
                    Some(rest) if rest.starts_with('/') => rest.to_owned(),
                    _ => bail!("{slug}: redirect leaves the practice: {l}"),
                },
                None => bail!("{slug}: redirect without Location"),
            };
        }
        bail!(
            "{slug}: more than {MAX_HOPS} redirects: {}",
            PageLoad { hops }.describe()
        )
    }
}
