//! Configuration: defaults → `kollegium.toml` → `KOLLEGIUM_*` environment variables
//! (`__` for nesting, e.g. `KOLLEGIUM_SMTP__HOST`) → command-line flags. `*_file` keys
//! read secrets from files. Unknown keys produce a warning; bad values an error naming
//! the key. Secrets never appear in `Debug` output or `config check`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use kollegium_tenants::DbKind;
use kollegium_tenants::broadcast::{OperatorKey, PublicKey, SyncSettings};
use kollegium_tenants::mail::{
    self, MailSettings, SmtpSettings, TlsMode, WorkerSettings, Zeroizing,
};
use kollegium_tenants::store::StoreSettings;
use kollegium_tenants::web::{RequestLimits, Scheme, TrustedProxies, WebSettings};
use serde::{Deserialize, Serialize};

/// A secret string: redacted in `Debug` and when printed.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
    /// No encryption (local relays and tests only).
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SmtpConfig {
    /// SMTP relay host; empty means no SMTP: mail goes to the practice's file outbox.
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: Secret,
    /// File holding the password (takes precedence over `password`).
    pub password_file: Option<PathBuf>,
    /// PEM file with an extra root certificate to trust for the relay (private CA).
    pub ca_file: Option<PathBuf>,
    pub from: String,
    /// Seconds one SMTP command may take.
    pub timeout_secs: u64,
    /// Delay before retrying a failed delivery; doubled per further failure.
    pub retry_initial_secs: u64,
    /// Longest delay between delivery attempts.
    pub retry_max_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: Secret::default(),
            password_file: None,
            ca_file: None,
            from: "Kollegium <no-reply@localhost>".into(),
            timeout_secs: 30,
            retry_initial_secs: 60,
            retry_max_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ClamdConfig {
    /// `host:port` of clamd's TCP socket (the `clamd_addr` uploads are scanned at). Empty:
    /// no scanner, and every upload is refused (never stored unscanned).
    pub address: String,
    /// Seconds one scan may take before the upload is refused.
    pub timeout_secs: u64,
}

impl Default for ClamdConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:3310".into(),
            timeout_secs: 60,
        }
    }
}

/// Signed broadcasts (`[broadcast]`): the operator's key and the node's sync of the feed.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BroadcastConfig {
    /// The operator's public key (base64, `kollegium news public-key` prints it) every
    /// entry is verified with. Unset: derived from this node's own operator key (the node
    /// is also the operator).
    pub public_key: Option<String>,
    /// The operator's signing key. Default: `<data_dir>/operator.key`, created on first use.
    pub key_file: Option<PathBuf>,
    /// The operator's feed. Default: this node's own operator listener,
    /// `http://<operator_listen>/feed`.
    pub feed_url: Option<String>,
    /// Seconds between syncs of the feed (a sync also runs at start).
    pub sync_interval_secs: u64,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            public_key: None,
            key_file: None,
            feed_url: None,
            sync_interval_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LimitsConfig {
    /// Largest request body on ordinary routes, in bytes.
    pub max_body_bytes: usize,
    /// Largest urlencoded form body, in bytes.
    pub max_form_bytes: usize,
    /// Largest uploaded file (card attachments, the practice file store), in bytes;
    /// larger ones are refused with 413. clamd's `StreamMaxLength` must be at least this.
    pub max_upload_bytes: u64,
    /// Practices whose databases may be open at once (LRU).
    pub max_open_practices: usize,
    /// Seconds after which an unused practice's databases are closed.
    pub practice_idle_secs: u64,
    /// Connections per practice database.
    pub db_pool_size: usize,
    /// Chat messages a member may send in a burst (then `chat_posts_per_sec`).
    pub chat_post_burst: f64,
    /// Chat messages per second a member may send after a burst.
    pub chat_posts_per_sec: f64,
    /// Seconds between asking the allocator to give freed heap back to the system
    /// (glibc's `malloc_trim`); 0 turns it off.
    pub memory_trim_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_form_bytes: 64 * 1024,
            max_upload_bytes: kollegium_platform::filestore::DEFAULT_MAX_FILE_BYTES,
            max_open_practices: 256,
            practice_idle_secs: 300,
            db_pool_size: 4,
            chat_post_burst: 20.0,
            chat_posts_per_sec: 1.0,
            memory_trim_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info` or `kollegium_idp=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    pub operator_listen: String,
    pub base_domain: String,
    pub public_scheme: Scheme,
    /// Port in generated URLs; default: the listen port (http) or none (https).
    pub public_port: Option<u16>,
    /// Worker threads of the main listener (0 = one per core).
    pub workers: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For`/`Forwarded`
    /// headers name the client; empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    pub smtp: SmtpConfig,
    pub clamd: ClamdConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    /// Identity provider: password cost, session timeouts, lockout, token lifetimes.
    pub idp: kollegium_idp::IdpSettings,
    /// Signed broadcasts from the operator.
    pub broadcast: BroadcastConfig,
    /// The operator console (`[operator]`).
    pub operator: OperatorConfig,
}

/// The operator console on the operator listener (`[operator]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OperatorConfig {
    /// Where operators reach the console, e.g. `https://ops.example` behind a VPN or an
    /// authenticating proxy (setup links, the Origin check, `__Host-` cookies on https).
    /// Unset: `http://<operator_listen>`.
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:8080".into(),
            operator_listen: "127.0.0.1:8081".into(),
            base_domain: "localhost".into(),
            public_scheme: Scheme::Http,
            public_port: None,
            workers: 0,
            shutdown_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            smtp: SmtpConfig::default(),
            clamd: ClamdConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            idp: kollegium_idp::IdpSettings::default(),
            broadcast: BroadcastConfig::default(),
            operator: OperatorConfig::default(),
        }
    }
}

/// A configuration error; the message names the key and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {why}")]
    Invalid { key: &'static str, why: String },
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
}

fn invalid(key: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        why: why.into(),
    }
}

/// The loaded configuration plus warnings about keys nobody reads.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Environment variables that are not configuration keys.
const ENV_IGNORED: &[&str] = &["config", "bench_keep", "demo_roster_port"];

impl Config {
    /// Loads defaults, the TOML file (if given or `./kollegium.toml` exists), the
    /// environment, then `data_dir_override`.
    pub fn load(
        file: Option<&Path>,
        data_dir_override: Option<&Path>,
    ) -> Result<Loaded, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) if !f.exists() => {
                return Err(ConfigError::MissingFile(f.display().to_string()));
            }
            Some(f) => figment = figment.merge(Toml::file_exact(f)),
            None if Path::new("kollegium.toml").exists() => {
                figment = figment.merge(Toml::file_exact("kollegium.toml"))
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed("KOLLEGIUM_").ignore(ENV_IGNORED).split("__"));
        if let Some(d) = data_dir_override {
            figment = figment.merge(Serialized::default("data_dir", d));
        }
        let warnings = unknown_keys(&figment)
            .into_iter()
            .map(|k| format!("unknown configuration key `{k}` is ignored"))
            .collect();
        let mut config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        if let Some(path) = &config.smtp.password_file {
            let pw = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "smtp.password_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            config.smtp.password = Secret(pw.trim_end_matches(['\n', '\r']).to_owned());
        }
        Ok(Loaded { config, warnings })
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.operator_addr()?;
        self.operator_origin()?;
        self.base_domain = self.base_domain.trim().to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !self.base_domain.split('.').all(label_ok) {
            return Err(invalid(
                "base_domain",
                format!("{:?} is not a DNS name", self.base_domain),
            ));
        }
        self.trusted_proxies()?;
        if self.public_port == Some(0) {
            return Err(invalid("public_port", "must be between 1 and 65535"));
        }
        if self.limits.max_body_bytes < 1024 {
            return Err(invalid("limits.max_body_bytes", "must be at least 1024"));
        }
        if self.limits.max_form_bytes < 1024
            || self.limits.max_form_bytes > self.limits.max_body_bytes
        {
            return Err(invalid(
                "limits.max_form_bytes",
                "must be at least 1024 and at most limits.max_body_bytes",
            ));
        }
        if self.limits.max_upload_bytes < 1024 || self.limits.max_upload_bytes > 1 << 40 {
            return Err(invalid(
                "limits.max_upload_bytes",
                "must be at least 1024 and at most 1 TiB",
            ));
        }
        if self.clamd.timeout_secs == 0 {
            return Err(invalid("clamd.timeout_secs", "must be at least 1"));
        }
        if self.limits.max_open_practices == 0 {
            return Err(invalid("limits.max_open_practices", "must be at least 1"));
        }
        if self.limits.db_pool_size == 0 {
            return Err(invalid("limits.db_pool_size", "must be at least 1"));
        }
        if !(self.limits.chat_post_burst >= 1.0 && self.limits.chat_post_burst <= 1e6) {
            return Err(invalid(
                "limits.chat_post_burst",
                "must be a number from 1 to 1000000",
            ));
        }
        if !(self.limits.chat_posts_per_sec > 0.0 && self.limits.chat_posts_per_sec <= 1e6) {
            return Err(invalid(
                "limits.chat_posts_per_sec",
                "must be a number above 0 and at most 1000000",
            ));
        }
        if !self.smtp.host.is_empty() && self.smtp.from.trim().is_empty() {
            return Err(invalid("smtp.from", "must be set when smtp.host is set"));
        }
        mail::parse_from(&self.smtp.from).map_err(|e| invalid("smtp.from", e.to_string()))?;
        if self.smtp.retry_initial_secs == 0
            || self.smtp.retry_max_secs < self.smtp.retry_initial_secs
        {
            return Err(invalid(
                "smtp.retry_max_secs",
                "smtp.retry_initial_secs must be at least 1 and at most smtp.retry_max_secs",
            ));
        }
        // An empty value (e.g. `KOLLEGIUM_SMTP__CA_FILE=`) means unset.
        if self
            .smtp
            .ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.smtp.ca_file = None;
        }
        if let Some(path) = &self.smtp.ca_file {
            mail::check_ca_file(path).map_err(|e| invalid("smtp.ca_file", e.to_string()))?;
        }
        self.validate_broadcast()
    }

    /// `[broadcast]`: empty values mean unset; a public key and a feed URL that parse.
    fn validate_broadcast(&mut self) -> Result<(), ConfigError> {
        let b = &mut self.broadcast;
        if b.public_key.as_ref().is_some_and(|k| k.trim().is_empty()) {
            b.public_key = None;
        }
        if b.feed_url.as_ref().is_some_and(|u| u.trim().is_empty()) {
            b.feed_url = None;
        }
        if b.key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            b.key_file = None;
        }
        if let Some(k) = &b.public_key {
            PublicKey::parse(k).map_err(|e| invalid("broadcast.public_key", e.to_string()))?;
        }
        if let Some(u) = &b.feed_url {
            let ok = reqwest::Url::parse(u.trim()).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https") && url.host_str().is_some()
            });
            if !ok {
                return Err(invalid(
                    "broadcast.feed_url",
                    format!("{u:?} is not an http(s) URL like https://operator.example/feed"),
                ));
            }
        }
        if !(1..=86_400).contains(&b.sync_interval_secs) {
            return Err(invalid(
                "broadcast.sync_interval_secs",
                "must be between 1 and 86400",
            ));
        }
        Ok(())
    }

    /// The origin of `[operator] public_url` (scheme, host and port only), if set.
    pub fn operator_origin(&self) -> Result<Option<String>, ConfigError> {
        let Some(u) = self.operator.public_url.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(u).ok().filter(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty()
        });
        match url {
            Some(url) => Ok(Some(url.origin().ascii_serialization())),
            None => Err(invalid(
                "operator.public_url",
                format!("{u:?} is not an origin like https://ops.example"),
            )),
        }
    }

    /// Where the console's links point: `[operator] public_url`, or the operator listener.
    pub fn operator_base_url(&self) -> Result<String, ConfigError> {
        Ok(match self.operator_origin()? {
            Some(o) => o,
            None => format!("http://{}", self.operator_addr()?),
        })
    }

    /// Where the operator's signing key is.
    pub fn operator_key_path(&self) -> PathBuf {
        self.broadcast
            .key_file
            .clone()
            .unwrap_or_else(|| OperatorKey::default_path(&self.data_dir))
    }

    /// The public key this node verifies broadcasts with: the configured one, or this
    /// node's own operator key's (created on first use).
    pub fn broadcast_public_key(&self) -> anyhow::Result<PublicKey> {
        match &self.broadcast.public_key {
            Some(k) => {
                Ok(PublicKey::parse(k)
                    .map_err(|e| invalid("broadcast.public_key", e.to_string()))?)
            }
            None => {
                let path = self.operator_key_path();
                let key = OperatorKey::load_or_create(&path).map_err(|e| {
                    anyhow::anyhow!(
                        "configuration key `broadcast.public_key` is unset, so this node uses its own operator key: {e}"
                    )
                })?;
                Ok(key.public())
            }
        }
    }

    /// The feed this node syncs from, once the operator listener is bound to `operator`.
    pub fn broadcast_sync(&self, operator: SocketAddr) -> SyncSettings {
        SyncSettings {
            feed_url: self
                .broadcast
                .feed_url
                .as_ref()
                .map(|u| u.trim().to_owned())
                .unwrap_or_else(|| format!("http://{operator}/feed")),
            interval: Duration::from_secs(self.broadcast.sync_interval_secs),
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{:?} is not an address like 127.0.0.1:8080", self.listen),
            )
        })
    }

    pub fn operator_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.operator_listen.parse().map_err(|_| {
            invalid(
                "operator_listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:8081",
                    self.operator_listen
                ),
            )
        })
    }

    /// The parsed `trusted_proxies`.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies, ConfigError> {
        TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| invalid("trusted_proxies", e.to_string()))
    }

    /// The workspace's settings. Its sessions end no later than the IdP session they came
    /// from: they have the IdP's idle and absolute limits.
    pub fn platform_settings(&self) -> kollegium_platform::PlatformSettings {
        kollegium_platform::PlatformSettings {
            session_idle_secs: self.idp.session_idle_secs,
            session_absolute_secs: self.idp.session_absolute_secs,
            post_burst: self.limits.chat_post_burst,
            posts_per_sec: self.limits.chat_posts_per_sec,
            files: kollegium_platform::filestore::FileSettings {
                clamd_addr: Some(self.clamd.address.trim().to_owned()).filter(|a| !a.is_empty()),
                scan_timeout: Duration::from_secs(self.clamd.timeout_secs),
                max_file_bytes: self.limits.max_upload_bytes,
            },
            ..Default::default()
        }
    }

    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            max_open_practices: self.limits.max_open_practices,
            idle_close: Duration::from_secs(self.limits.practice_idle_secs),
            pool_max: self.limits.db_pool_size,
            ..StoreSettings::new(self.data_dir.clone())
        }
    }

    /// Where mail goes: the SMTP relay, or the practices' outboxes when `smtp.host` is empty.
    pub fn mail_settings(&self) -> MailSettings {
        let s = &self.smtp;
        let smtp = (!s.host.trim().is_empty()).then(|| SmtpSettings {
            host: s.host.trim().to_owned(),
            port: s.port,
            tls: match s.tls {
                SmtpTls::Starttls => TlsMode::Starttls,
                SmtpTls::Tls => TlsMode::Tls,
                SmtpTls::None => TlsMode::None,
            },
            username: s.username.clone(),
            password: Zeroizing::new(s.password.0.clone()),
            timeout_secs: s.timeout_secs,
            ca_file: s.ca_file.clone(),
        });
        MailSettings {
            smtp,
            from: s.from.clone(),
        }
    }

    /// Retry timing of the mail worker for the database kinds in `kinds`.
    pub fn mail_worker_settings(&self, kinds: Vec<&'static DbKind>) -> WorkerSettings {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        WorkerSettings {
            retry_initial_secs: clamp(self.smtp.retry_initial_secs),
            retry_max_secs: clamp(self.smtp.retry_max_secs),
            sweep_secs: self.smtp.retry_initial_secs.clamp(1, 60),
            ..WorkerSettings::new(kinds)
        }
    }

    /// Web settings once the main listener is bound to `bound_port`. `trusted_proxies`
    /// was checked when the configuration was loaded; an unchecked bad entry trusts no one.
    pub fn web_settings(&self, bound_port: u16, csrf_exempt: Vec<&'static str>) -> WebSettings {
        let public_port = match (self.public_port, self.public_scheme) {
            (Some(p), _) => Some(p),
            (None, Scheme::Http) => Some(bound_port),
            (None, Scheme::Https) => None,
        };
        WebSettings {
            base_domain: self.base_domain.clone(),
            scheme: self.public_scheme,
            public_port,
            limits: RequestLimits {
                max_body_bytes: self.limits.max_body_bytes,
                max_form_bytes: self.limits.max_form_bytes,
                // The multipart envelope around the file (boundaries, part headers).
                max_upload_bytes: usize::try_from(self.limits.max_upload_bytes)
                    .unwrap_or(usize::MAX)
                    .saturating_add(64 * 1024),
            },
            csrf_exempt,
            trusted_proxies: self.trusted_proxies().unwrap_or_default(),
            // A form with a file cannot carry the token in a field the CSRF check reads.
            csrf_query_token_paths: kollegium_platform::UPLOAD_PATHS.to_vec(),
            upload_paths: kollegium_platform::UPLOAD_PATHS.to_vec(),
            path_classes: Vec::new(),
        }
    }

    /// The effective configuration as TOML with secrets redacted.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        if !copy.smtp.password.0.is_empty() {
            copy.smtp.password = Secret("<redacted>".into());
        }
        toml::to_string_pretty(&copy).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            key_paths(v, &path, out);
            out.insert(path);
        }
    }
}

fn figment_paths(dict: &figment::value::Dict, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in dict {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            figment::value::Value::Dict(_, inner) => figment_paths(inner, &path, out),
            _ => out.push(path),
        }
    }
}

fn unknown_keys(figment: &Figment) -> Vec<String> {
    let mut known = BTreeSet::new();
    if let Ok(v) = serde_json::to_value(Config::default()) {
        key_paths(&v, "", &mut known);
    }
    known.insert("smtp.password_file".into());
    known.insert("smtp.ca_file".into());
    known.insert("public_port".into());
    known.insert("broadcast.public_key".into());
    known.insert("broadcast.key_file".into());
    known.insert("broadcast.feed_url".into());
    known.insert("operator.public_url".into());
    let mut seen = Vec::new();
    if let Ok(data) = figment.data() {
        for dict in data.values() {
            figment_paths(dict, "", &mut seen);
        }
    }
    seen.retain(|k| !known.contains(k));
    seen.sort();
    seen.dedup();
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_names_exist() {
        let mut c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.listen_addr().unwrap().port(), 8080);
        let ws = c.web_settings(8080, vec![]);
        assert_eq!(
            ws.practice_origin("praxis-demo"),
            "http://praxis-demo.localhost:8080"
        );
    }

    #[test]
    fn mail_settings_follow_the_smtp_keys() {
        let mut c = Config::default();
        assert!(c.mail_settings().smtp.is_none(), "no host: file outbox");
        c.smtp.host = " mail.example.de ".into();
        c.smtp.tls = SmtpTls::Tls;
        c.smtp.port = 465;
        c.smtp.password = Secret("hunter2hunter2".into());
        let m = c.mail_settings();
        let smtp = m.smtp.unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("mail.example.de", 465, TlsMode::Tls)
        );
        assert_eq!(smtp.password.as_str(), "hunter2hunter2");
        c.smtp.from = "kein absender".into();
        assert!(c.validate().is_err());
        c.smtp.from = "Praxis <no-reply@mail.example.de>".into();
        c.smtp.retry_initial_secs = 0;
        assert!(c.validate().is_err());
        c.smtp.retry_initial_secs = 30;
        c.validate().unwrap();
        c.smtp.ca_file = Some(PathBuf::new());
        c.validate().unwrap();
        assert_eq!(c.smtp.ca_file, None, "an empty ca_file means none");
        c.smtp.ca_file = Some(PathBuf::from("/nonexistent/relay-ca.pem"));
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("`smtp.ca_file`") && e.contains("/nonexistent/relay-ca.pem"),
            "{e}"
        );
        assert_eq!(
            c.mail_settings().smtp.unwrap().ca_file.as_deref(),
            Some(Path::new("/nonexistent/relay-ca.pem"))
        );
        c.smtp.ca_file = None;
        let w = c.mail_worker_settings(Vec::new());
        assert_eq!(
            (w.retry_initial_secs, w.retry_max_secs, w.sweep_secs),
            (30, 3600, 30)
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let mut c = Config::default();
        assert!(c.web_settings(8080, vec![]).trusted_proxies.is_empty());
        c.trusted_proxies = vec!["127.0.0.1".into(), "10.0.0.0/8".into(), "fd00::/8".into()];
        c.validate().unwrap();
        let t = c.web_settings(8080, vec![]).trusted_proxies;
        assert!(t.trusts("10.1.2.3".parse().unwrap()) && !t.trusts("11.0.0.1".parse().unwrap()));
        c.trusted_proxies = vec!["10.0.0.0/8".into(), "proxy.intern".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("`trusted_proxies`") && e.contains("proxy.intern"),
            "{e}"
        );
    }

    #[test]
    fn broadcast_keys_are_checked_and_default_to_this_node() {
        let mut c = Config::default();
        c.validate().unwrap();
        let op: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let s = c.broadcast_sync(op);
        assert_eq!(s.feed_url, "http://127.0.0.1:8081/feed");
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(c.operator_key_path(), PathBuf::from("./data/operator.key"));
        c.broadcast.feed_url = Some("ftp://operator.example/feed".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`broadcast.feed_url`"), "{e}");
        c.broadcast.feed_url = Some("https://operator.example/feed".into());
        c.broadcast.public_key = Some("kein-schluessel".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`broadcast.public_key`"), "{e}");
        let key = OperatorKey::generate().public();
        c.broadcast.public_key = Some(key.to_base64());
        c.validate().unwrap();
        assert_eq!(c.broadcast_public_key().unwrap(), key);
        assert_eq!(
            c.broadcast_sync(op).feed_url,
            "https://operator.example/feed"
        );
        c.broadcast.sync_interval_secs = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn redaction_hides_the_smtp_password() {
        let mut c = Config::default();
        c.smtp.password = Secret("hunter2hunter2".into());
        assert!(!c.redacted_toml().contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
