//! Password hashing (argon2id) and the password policy.
//!
//! Hashing runs on the hasher's own threads, one per core, so a burst of logins cannot
//! starve the async workers or the machine, and waits in their queue. Unknown users are
//! checked against a dummy hash so they cost the same as known ones.
//!
//! Why own threads, each with its own working memory: each hash needs `m_kib` (19 MiB by
//! default). Allocating and freeing that per hash made glibc raise its mmap threshold to
//! 19 MiB (and its trim threshold to twice that) for the whole process after the first
//! free, so every malloc arena kept tens of MB of freed ordinary allocations (the login
//! benchmark saw 320 MB RSS with 100 practices). Each hashing thread therefore allocates its
//! argon2 blocks once and reuses them (`hash_password_into_with_memory`), so no page is
//! faulted in per hash; after 30 s without work it frees them. The kept allocation is
//! larger than glibc's largest dynamic mmap threshold, so that free leaves the thresholds
//! alone. Other threads (start-up, the CLI, tests) allocate such memory per hash.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use kollegium_tenants::web::assets::Source;
use tokio::sync::oneshot;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommendation: m=19 MiB, t=2, p=1.
    fn default() -> Self {
        Self {
            m_kib: 19_456,
            t: 2,
            p: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("hashing was cancelled")]
    Cancelled,
}

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, and here is a new hash with the current parameters.
    YesRehashed(String),
}

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// argon2's working memory, kept by a hashing thread between hashes (`None` on every
    /// other thread: they allocate per hash).
    static BLOCKS: RefCell<Option<Vec<Block>>> = const { RefCell::new(None) };
}

/// A hashing thread idle this long frees its kept memory.
const KEEP_IDLE: Duration = Duration::from_secs(30);

/// Least capacity of kept memory, in blocks of 1 KiB: above glibc's largest dynamic mmap
/// threshold (32 MiB on 64-bit), so that freeing it after an idle spell never raises the
/// threshold either. Only the blocks a hash uses are ever touched, so only those are
/// resident.
const KEEP_MIN_BLOCKS: usize = 33 * 1024;

/// Runs argon2 with `argon`'s parameters into `out`: on this thread's kept memory if it
/// has any, else on memory allocated for this hash with the same large capacity (freeing
/// it leaves glibc's mmap threshold alone).
fn hash_into(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let need = argon.params().block_count();
    let grow = |blocks: &mut Vec<Block>| {
        if blocks.capacity() < need {
            *blocks = Vec::with_capacity(need.max(KEEP_MIN_BLOCKS));
        }
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
    };
    BLOCKS.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut()
            && let Some(blocks) = slot.as_mut()
        {
            grow(blocks);
            return argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..need]);
        }
        let mut own = Vec::new();
        grow(&mut own);
        argon.hash_password_into_with_memory(password, salt, out, &mut own)
    })
}

/// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for `password` with a new salt.
fn hash_phc(argon: &Argon2<'_>, password: &[u8]) -> Result<String, HashError> {
    let params = argon.params();
    let err = |e: &dyn std::fmt::Display| HashError::Hash(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| err(&e))?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        hash_into(argon, password, salt_bytes, out)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| err(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| err(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the parsed stored hash (its own algorithm, version and
/// parameters; the comparison of the outputs is constant-time).
fn matches(parsed: &PasswordHash<'_>, password: &[u8]) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    Output::init_with(expected.len(), |out| {
        hash_into(&argon, password, salt_bytes, out)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .is_ok_and(|got| got == expected)
}

/// The node's password hasher.
pub struct Hasher {
    params: Argon2Params,
    argon: Argon2<'static>,
    /// Queue of the hashing threads; they end when the hasher is dropped.
    jobs: Sender<Job>,
    dummy: String,
}

/// Starts `n` threads that run the jobs of one queue.
fn spawn_workers(n: usize) -> Result<Sender<Job>, HashError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx: Arc<Mutex<Receiver<Job>>> = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                BLOCKS.with(|b| *b.borrow_mut() = Some(Vec::new()));
                loop {
                    // The lock is released before the job runs.
                    let job = match rx.lock() {
                        Ok(q) => q.recv_timeout(KEEP_IDLE),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        // Idle: give the memory back until the next burst of logins.
                        Err(RecvTimeoutError::Timeout) => BLOCKS.with(|b| {
                            if let Ok(mut slot) = b.try_borrow_mut()
                                && let Some(blocks) = slot.as_mut()
                            {
                                *blocks = Vec::new();
                            }
                        }),
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|e| HashError::Hash(format!("cannot start a hashing thread: {e}")))?;
    }
    Ok(tx)
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn argon(params: Argon2Params) -> Result<Argon2<'static>, HashError> {
    let p = Params::new(params.m_kib, params.t, params.p, None)
        .map_err(|e| HashError::Params(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

impl Hasher {
    pub fn new(params: Argon2Params) -> Result<Self, HashError> {
        let argon = argon(params)?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let jobs = spawn_workers(cores)?;
        // Made here, not on a hashing thread: that thread would keep its memory until idle.
        let dummy = hash_phc(&argon, b"dummy password that no account has")?;
        Ok(Self {
            params,
            argon,
            jobs,
            dummy,
        })
    }

    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// Hashes synchronously (call from a blocking thread).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_phc(&self.argon, password.as_bytes())
    }

    /// Verifies synchronously; `None` checks against the dummy hash and always says no.
    pub fn verify_blocking(&self, password: &str, stored: Option<&str>) -> Verified {
        let target = stored.unwrap_or(&self.dummy);
        let Ok(parsed) = PasswordHash::new(target) else {
            // Keep the timing of a real check even for a corrupt stored hash.
            let _ = self.hash_blocking(password);
            return Verified::No;
        };
        let ok = matches(&parsed, password.as_bytes());
        if !ok || stored.is_none() {
            return Verified::No;
        }
        if self.is_current(&parsed) {
            Verified::Yes
        } else {
            match self.hash_blocking(password) {
                Ok(h) => Verified::YesRehashed(h),
                Err(_) => Verified::Yes,
            }
        }
    }

    fn is_current(&self, parsed: &PasswordHash<'_>) -> bool {
        parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(parsed).is_ok_and(|p| {
                p.m_cost() == self.params.m_kib
                    && p.t_cost() == self.params.t
                    && p.p_cost() == self.params.p
            })
    }

    /// Runs `f` on a hashing thread and waits for its result.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Self) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = oneshot::channel();
        let me = Arc::clone(self);
        let job: Job = Box::new(move || {
            let _ = tx.send(f(&me));
        });
        self.jobs.send(job).map_err(|_| HashError::Cancelled)?;
        rx.await.map_err(|_| HashError::Cancelled)
    }

    /// Hashes on a hashing thread (one per core).
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String, HashError> {
        self.run(move |h| h.hash_blocking(&password)).await?
    }

    /// Verifies on a hashing thread (one per core).
    pub async fn verify(
        self: &Arc<Self>,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, HashError> {
        self.run(move |h| h.verify_blocking(&password, stored.as_deref()))
            .await
    }
}

/// The ~10,000 most common passwords (English lists), as they are.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// The words common passwords are made of: the German list and the cores of the English
/// one (`password1` → `password`), normalised like a new password's core. Cores shorter
/// than [`MIN_WORD`] are left out: they would match fragments of good passphrases.
static COMMON_WORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let german = include_str!("../data/common-passwords-de.txt").lines();
    let english = include_str!("../data/common-passwords.txt").lines();
    german
        .chain(english)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        // The reading with digits and symbols stripped at both ends (`1` as `i`, as `l`).
        .flat_map(|l| cores(l).into_iter().take(2))
        .filter(|c| c.chars().count() >= MIN_WORD)
        .collect()
});

/// The strength meter under new-password fields: a guide while typing, the server decides.
pub const METER: &str = "password-meter.js";

/// The IdP's own assets, registered at composition time.
pub const ASSETS: &[Source] = &[Source {
    name: METER,
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../../templates/static/password-meter.js"),
}];

pub const MIN_CHARS: usize = 10;
pub const MAX_BYTES: usize = 1024;

/// Shortest word of a practice's or person's context (and of the common-word cores) the
/// check looks for; shorter ones (initials, "dr") are everywhere.
const MIN_WORD: usize = 3;

/// Longest core the word-by-word check looks at: longer ones are passphrases.
const MAX_SEGMENTED: usize = 64;

/// Words every practice's passwords are checked against (normalised: lower case, umlauts
/// written out).
const TRADE_WORDS: &[&str] = &[
    "praxis",
    "arztpraxis",
    "arzt",
    "aerztin",
    "aerzte",
    "doktor",
    "kollegium",
];

/// Why a new password was refused (German, shown to the user; never the password itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("Das Passwort muss mindestens {MIN_CHARS} Zeichen lang sein.")]
    TooShort,
    #[error("Das Passwort darf höchstens {MAX_BYTES} Bytes lang sein.")]
    TooLong,
    #[error(
        "Dieses Passwort gehört zu den am häufigsten verwendeten Passwörtern. Bitte wählen Sie ein anderes."
    )]
    Common,
    #[error(
        "Das Passwort ist ein häufig verwendetes Wort mit Ziffern oder Zeichen davor oder dahinter (wie „Passwort123“ oder „Sommer2026!“). Solche Passwörter werden bei Angriffen zuerst ausprobiert. Bitte wählen Sie ein anderes, zum Beispiel mehrere Wörter, die nichts miteinander zu tun haben."
    )]
    CommonWord,
    #[error(
        "Das Passwort besteht nur aus naheliegenden Wörtern – dem Namen der Praxis, Ihrem Namen, „Praxis“, „Arzt“ oder einer Jahreszahl – und Ziffern oder Zeichen. Solche Passwörter werden bei Angriffen zuerst ausprobiert. Bitte wählen Sie ein anderes, zum Beispiel mehrere Wörter, die nichts miteinander zu tun haben."
    )]
    ContextWords,
    #[error("Das Passwort darf Ihren Benutzernamen oder Ihre E-Mail-Adresse nicht enthalten.")]
    ContainsIdentity,
    #[error("Die beiden Passwörter stimmen nicht überein.")]
    Mismatch,
}

/// What is known about the practice and the person where a password is set: words that
/// must not make up the password (with digits and symbols around them), and the user's
/// name and e-mail local part, which must not appear in it at all.
#[derive(Debug, Clone, Default)]
pub struct PasswordContext {
    identity: Vec<String>,
    words: HashSet<String>,
}

impl PasswordContext {
    /// The context of a person of a practice at time `now` (Unix seconds): the practice's
    /// name and slug, the user name, display name and e-mail address, the trade's words
    /// ("praxis", "arzt", "kollegium", …) and the current and neighbouring years.
    pub fn person(
        practice_name: &str,
        practice_slug: &str,
        username: &str,
        display_name: &str,
        email: &str,
        now: i64,
    ) -> Self {
        let local = email.split('@').next().unwrap_or("");
        let mut ctx = Self::default().identity(username).identity(local);
        for w in TRADE_WORDS {
            ctx = ctx.words(w);
        }
        let year = year_of(now);
        for y in year - 1..=year + 1 {
            ctx = ctx.words(&y.to_string());
        }
        ctx.words(practice_name)
            .words(practice_slug)
            .words(display_name)
    }

    /// Adds a name that must not appear in the password at all (and is a context word).
    pub fn identity(mut self, name: &str) -> Self {
        let id = name.trim().to_lowercase();
        if id.chars().count() >= MIN_WORD {
            self.identity.push(id);
        }
        self.words(name)
    }

    /// Adds `text` (a name: split at spaces, hyphens, dots, …, and also taken whole) to the
    /// words that must not make up the password.
    pub fn words(mut self, text: &str) -> Self {
        let folded = fold(&text.to_lowercase());
        let parts = folded
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| !p.is_empty());
        let whole: String = folded.chars().filter(|c| c.is_alphanumeric()).collect();
        for w in parts.map(str::to_owned).chain([whole]) {
            if w.chars().count() < MIN_WORD {
                continue;
            }
            for v in leet(&w) {
                self.words.insert(v);
            }
        }
        self
    }
}

/// Checks a new password against the policy. `identity` holds the user name and the
/// e-mail local part; see [`check_new_password`] for the check with the whole context.
pub fn check_policy(password: &str, identity: &[&str]) -> Result<(), PolicyError> {
    let ctx = identity
        .iter()
        .fold(PasswordContext::default(), |c, id| c.identity(id));
    check_new_password(password, &ctx)
}

/// Checks a new password against the policy: length, the common-password lists (also as a
/// word with digits and symbols around it, in leetspeak), the words of `ctx` and the
/// user's identity.
pub fn check_new_password(password: &str, ctx: &PasswordContext) -> Result<(), PolicyError> {
    if password.len() > MAX_BYTES {
        return Err(PolicyError::TooLong);
    }
    if password.chars().count() < MIN_CHARS {
        return Err(PolicyError::TooShort);
    }
    let lower = password.to_lowercase();
    if COMMON.contains(lower.as_str()) || COMMON.contains(password) {
        return Err(PolicyError::Common);
    }
    for id in &ctx.identity {
        if lower.contains(id.as_str()) {
            return Err(PolicyError::ContainsIdentity);
        }
    }
    let cores = cores(password);
    if cores.iter().any(|c| made_of_context(c, &ctx.words)) {
        return Err(PolicyError::ContextWords);
    }
    if cores.iter().any(|c| COMMON_WORDS.contains(c)) {
        return Err(PolicyError::CommonWord);
    }
    Ok(())
}

/// Lower case with umlauts and ß written out (`Fußball` → `fussball`).
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c => out.push(c),
        }
    }
    out
}

/// `s` with leetspeak undone: `0→o, 3→e, 4→a, 5→s, @→a, $→s`, and `1` once as `i`, once
/// as `l` (both are returned; the same string twice if `s` has no `1`).
fn leet(s: &str) -> [String; 2] {
    let map = |one: char| {
        s.chars()
            .map(|c| match c {
                '0' => 'o',
                '1' => one,
                '3' => 'e',
                '4' => 'a',
                '5' => 's',
                '@' => 'a',
                '$' => 's',
                c => c,
            })
            .collect()
    };
    [map('i'), map('l')]
}

/// What a password is made of, normalised: folded, with the leading and trailing digits
/// and symbols either stripped or read as leetspeak (`$chatz2026!` → `schatz`), leetspeak
/// undone inside, separators (`-`, `_`, `.`, spaces, …) dropped. Several readings, each
/// non-empty and distinct.
fn cores(password: &str) -> Vec<String> {
    let folded = fold(password);
    let start = folded
        .find(|c: char| c.is_alphabetic())
        .unwrap_or(folded.len());
    let end = folded
        .rfind(|c: char| c.is_alphabetic())
        .map(|i| i + folded[i..].chars().next().map_or(1, char::len_utf8))
        .unwrap_or(start)
        .max(start);
    let mut out = Vec::new();
    for strip_front in [true, false] {
        for strip_back in [true, false] {
            let from = if strip_front { start } else { 0 };
            let to = if strip_back { end } else { folded.len() };
            for reading in leet(&folded[from..to]) {
                let trimmed = reading.trim_matches(|c: char| !c.is_alphabetic());
                let core: String = trimmed.chars().filter(|c| c.is_alphanumeric()).collect();
                if !core.is_empty() && !out.contains(&core) {
                    out.push(core);
                }
            }
        }
    }
    out
}

/// Whether `core` is nothing but words of `context` (and digits), with at most one common
/// word among them: `praxisschmidt2026`, `annapraxis`, `sommerpraxis`.
fn made_of_context(core: &str, context: &HashSet<String>) -> bool {
    let chars: Vec<char> = core.chars().collect();
    let n = chars.len();
    if n == 0 || n > MAX_SEGMENTED {
        return false;
    }
    // best[i]: fewest common words needed to make up chars[..i] (None: impossible), and
    // whether a context word was used on that way.
    let mut best: Vec<Option<(u8, bool)>> = vec![None; n + 1];
    best[0] = Some((0, false));
    for i in 0..n {
        let Some((cost, ctx_used)) = best[i] else {
            continue;
        };
        let mut relax = |j: usize, c: u8, used: bool| {
            let cand = (c, used);
            let better = match best[j] {
                None => true,
                Some((bc, bu)) => c < bc || (c == bc && used && !bu),
            };
            if better {
                best[j] = Some(cand);
            }
        };
        // A run of digits.
        let digits = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        for j in i + 1..=i + digits {
            relax(j, cost, ctx_used);
        }
        let mut word = String::new();
        for (j, c) in chars.iter().enumerate().skip(i) {
            word.push(*c);
            if j + 1 - i < MIN_WORD {
                continue;
            }
            if context.contains(&word) {
                relax(j + 1, cost, true);
            } else if COMMON_WORDS.contains(&word) && cost == 0 {
                relax(j + 1, 1, ctx_used);
            }
        }
    }
    matches!(best[n], Some((c, true)) if c <= 1)
}

/// The (UTC) calendar year of Unix time `t`.
fn year_of(t: i64) -> i64 {
    // Howard Hinnant's days-to-civil algorithm.
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Hasher {
        Hasher::new(Argon2Params {
            m_kib: 64,
            t: 1,
            p: 1,
        })
        .unwrap()
    }

    #[test]
    fn hash_verify_and_rehash_on_parameter_change() {
        let h = cheap();
        let stored = h.hash_blocking("richtig-langes-passwort").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert_eq!(
            h.verify_blocking("richtig-langes-passwort", Some(&stored)),
            Verified::Yes
        );
        assert_eq!(h.verify_blocking("falsch", Some(&stored)), Verified::No);
        assert_eq!(
            h.verify_blocking("richtig-langes-passwort", None),
            Verified::No
        );
        let stronger = Hasher::new(Argon2Params {
            m_kib: 128,
            t: 1,
            p: 1,
        })
        .unwrap();
        match stronger.verify_blocking("richtig-langes-passwort", Some(&stored)) {
            Verified::YesRehashed(new) => assert!(new.contains("m=128")),
            other => panic!("expected rehash, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn kept_memory_gives_standard_hashes_and_survives_other_parameters() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let pw = "richtig-langes-passwort";
        let h = Arc::new(cheap());
        // Ours, made on a hashing thread, verifies with the crate's own verifier.
        let ours = h.hash(pw.into()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"falsch", &parsed)
                .is_err()
        );
        // The crate's hashes with other parameters (more, then less memory than the
        // threads kept so far, and two lanes) verify on the hashing threads, whose memory
        // then holds another hash's leftovers, and off them.
        for (m, t, p) in [(256, 2, 1), (64, 1, 1), (128, 1, 2), (32, 3, 1)] {
            let argon = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(m, t, p, None).unwrap(),
            );
            let theirs = argon
                .hash_password(pw.as_bytes(), &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
            let current = (m, t, p) == (64, 1, 1);
            let right = |got: &Verified| match got {
                Verified::Yes => current,
                Verified::YesRehashed(_) => !current,
                Verified::No => false,
            };
            for _ in 0..4 {
                let got = h.verify(pw.into(), Some(theirs.clone())).await.unwrap();
                assert!(right(&got), "m={m}: {got:?}");
                let wrong = h.verify("falsch".into(), Some(theirs.clone())).await;
                assert_eq!(wrong.unwrap(), Verified::No, "m={m}");
            }
            assert!(right(&h.verify_blocking(pw, Some(&theirs))));
        }
        // An argon2i hash (another algorithm) still verifies, and is rehashed.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(pw.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        match h.verify(pw.into(), Some(argon2i)).await.unwrap() {
            Verified::YesRehashed(new) => assert!(new.starts_with("$argon2id$")),
            other => panic!("expected rehash, got {other:?}"),
        }
        // Garbage is a no, not an error.
        assert_eq!(
            h.verify(
                pw.into(),
                Some("$argon2id$v=19$m=64,t=1,p=1$AAAA$BBBB".into())
            )
            .await
            .unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn hashes_and_verifies_on_the_hashing_threads() {
        let h = Arc::new(cheap());
        let stored = h.hash("richtig-langes-passwort".into()).await.unwrap();
        let checks: Vec<_> = (0..8)
            .map(|i| {
                let (h, stored) = (Arc::clone(&h), stored.clone());
                tokio::spawn(async move {
                    let pw = if i % 2 == 0 {
                        "richtig-langes-passwort"
                    } else {
                        "falsch"
                    };
                    h.verify(pw.into(), Some(stored)).await.unwrap()
                })
            })
            .collect();
        for (i, c) in checks.into_iter().enumerate() {
            let want = if i % 2 == 0 {
                Verified::Yes
            } else {
                Verified::No
            };
            assert_eq!(c.await.unwrap(), want);
        }
        assert_eq!(h.verify("x".into(), None).await.unwrap(), Verified::No);
    }

    #[test]
    fn default_parameters_are_owasp() {
        assert_eq!(
            Argon2Params::default(),
            Argon2Params {
                m_kib: 19_456,
                t: 2,
                p: 1
            }
        );
    }

    #[test]
    fn policy_rules() {
        assert_eq!(check_policy("kurz", &[]), Err(PolicyError::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(1025), &[]),
            Err(PolicyError::TooLong)
        );
        assert_eq!(check_policy("qwertyuiop", &[]), Err(PolicyError::Common));
        assert_eq!(check_policy("1234567890", &[]), Err(PolicyError::Common));
        assert_eq!(check_policy("QWERTYUIOP", &[]), Err(PolicyError::Common));
        assert_eq!(
            check_policy("anna.schmidt-2024!", &["anna.schmidt", "anna"]),
            Err(PolicyError::ContainsIdentity)
        );
        assert_eq!(
            check_policy("Sonnenblume-Kaffee-42", &["anna", "anna.schmidt"]),
            Ok(())
        );
        assert_eq!(check_policy("äöüßäöüßäö", &[]), Ok(()));
        assert!(COMMON.len() >= 9_990);
    }

    /// 6 December 2026, 12:00 UTC.
    const NOW: i64 = 1_796_558_400;

    /// Anna Schmidt of "Praxis Dr. Sommer" (`praxis-sommer`).
    fn anna() -> PasswordContext {
        PasswordContext::person(
            "Praxis Dr. Sommer",
            "praxis-sommer",
            "aschmidt",
            "Anna Schmidt",
            "a.schmidt@praxis-sommer.example",
            NOW,
        )
    }

    #[test]
    fn years_of_unix_times() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(NOW), 2026);
        assert_eq!(year_of(1_798_761_599), 2026, "31.12.2026 23:59:59");
        assert_eq!(year_of(1_798_761_600), 2027, "01.01.2027 00:00:00");
        assert_eq!(year_of(951_782_400), 2000, "29.02.2000");
        assert_eq!(year_of(-1), 1969);
    }

    #[test]
    fn cores_strip_digits_and_symbols_and_undo_leetspeak() {
        let has = |pw: &str, core: &str| {
            let got = cores(pw);
            assert!(got.iter().any(|c| c == core), "{pw}: {got:?}");
        };
        has("passwort1234", "passwort");
        has("Praxis2026!", "praxis");
        has("!!2026Praxis", "praxis");
        has("P@ssw0rt-1", "passwort");
        has("$chatz2026!", "schatz");
        has("H4ll0_W3lt!", "hallowelt");
        has("1ch-l1ebe-d1ch", "ichliebedich");
        has("Fu55b4ll", "fussball");
        has("Fußball!!2026", "fussball");
        has("ÄRZTIN-2026", "aerztin");
        assert!(cores("1234567890").iter().all(|c| c != "passwort"));
        assert!(cores("!!!???").iter().all(|c| !c.is_empty()));
    }

    #[test]
    fn german_passwords_and_patterns_are_refused() {
        for pw in [
            "passwort1234",
            "Passwort!2026",
            "P@ssw0rt123",
            "hallo123456",
            "Schatz2026!!",
            "$chatzi12345",
            "fussball1904",
            "Fußball2026!",
            "ichliebedich",
            "1chl1ebed1ch!",
            "qwertz12345",
            "Sommer2026!",
            "Geheim!!1234",
        ] {
            assert_eq!(
                check_new_password(pw, &PasswordContext::default()),
                Err(PolicyError::CommonWord),
                "{pw}"
            );
        }
        // The English list's words too, with digits around them.
        assert_eq!(
            check_new_password("Password2026!", &PasswordContext::default()),
            Err(PolicyError::CommonWord)
        );
    }

    #[test]
    fn the_practice_and_the_person_are_no_password() {
        let ctx = anna();
        for pw in [
            "Praxis2026!",
            "praxis-2025",
            "2027Praxis!",
            "Pr4x1s-2026!",
            "Anna1987!!",
            "Schmidt2026!",
            "Anna-Schmidt-1987",
            "Sommer-Praxis-2026",
            "PraxisSommer!",
            "praxis-sommer1",
            "Arzt-Praxis-12",
            "Kollegium2026",
            "Aerztin2026!",
            "Ärztin-2026!",
            // One common word with them is still too little.
            "Passwort-Praxis-2026",
            "Hallo-Anna-2026",
        ] {
            assert_eq!(
                check_new_password(pw, &ctx),
                Err(PolicyError::ContextWords),
                "{pw}"
            );
        }
        // The user name and the e-mail local part may not appear at all.
        assert_eq!(
            check_new_password("Wolke-aschmidt-Tee", &ctx),
            Err(PolicyError::ContainsIdentity)
        );
        assert_eq!(
            check_new_password("x-a.schmidt-Regen", &ctx),
            Err(PolicyError::ContainsIdentity)
        );
        // The examples, whatever the context.
        for ctx in [ctx, PasswordContext::default()] {
            assert!(check_new_password("passwort1234", &ctx).is_err());
        }
    }

    #[test]
    fn good_passphrases_pass() {
        let ctx = anna();
        for pw in [
            "Sonnenblume-Kaffee-42",
            "Kirschbaum-Laterne-77",
            "Neues-Passwort-Wiese-77",
            "Wasserturm-Regenbogen-77",
            "Anna geht gern im Wald spazieren",
            "Praxis-Leuchtturm-Zebra-Gitarre",
            "korrekt Pferd Batterie Heftklammer",
            "äöüßäöüßäö",
        ] {
            assert_eq!(check_new_password(pw, &ctx), Ok(()), "{pw}");
        }
        // The messages say why, never what.
        for e in [PolicyError::CommonWord, PolicyError::ContextWords] {
            let msg = e.to_string();
            assert!(msg.contains("Bitte wählen Sie ein anderes"), "{msg}");
        }
    }
}
