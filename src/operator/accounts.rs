//! Operator staff accounts: creation with a one-time setup link, listing, suspension, and
//! the setup itself (password and TOTP together). Plain functions on a connection to
//! `data/operator.sqlite` and a time; the CLI and the console both call them.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::{self, random_token};
use zeroize::Zeroizing;

use super::audit;
use super::schema::{operator_sessions, operator_setup_links, operators};

/// How long a setup link works.
pub const SETUP_LINK_TTL_SECS: i64 = 72 * 3600;
/// Longest operator name and e-mail address.
pub const MAX_NAME: usize = 32;
pub const MAX_EMAIL: usize = 254;

/// Why an account action was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "{0:?} is not a valid operator name: 2 to 32 characters, lower-case letters, digits, '.', '-' or '_', starting with a letter"
    )]
    Name(String),
    #[error("{0:?} is not a valid e-mail address")]
    Email(String),
    #[error("an operator named {0:?} exists already")]
    Exists(String),
    #[error("no operator named {0:?}")]
    NotFound(String),
    #[error("operator {name:?} is already {status}")]
    WrongStatus { name: String, status: &'static str },
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

/// An operator's account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = operators)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
    pub last_totp_step: i64,
    pub status: String,
    pub created_at: UnixTime,
}

impl Account {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// Whether setup is complete (password and TOTP, which are only ever set together).
    pub fn is_set_up(&self) -> bool {
        self.password_hash.is_some() && self.totp_secret.is_some()
    }
}

/// A valid operator name (lower case).
pub fn parse_name(input: &str) -> Result<String, AccountError> {
    let name = input.trim().to_lowercase();
    let ok = (2..=MAX_NAME).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(name)
    } else {
        Err(AccountError::Name(input.chars().take(40).collect()))
    }
}

/// A plausible e-mail address (one `@`, no spaces or control characters).
pub fn parse_email(input: &str) -> Result<String, AccountError> {
    let email = input.trim();
    let ok = email.len() <= MAX_EMAIL
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email.to_owned())
    } else {
        Err(AccountError::Email(input.chars().take(60).collect()))
    }
}

/// The SHA-256 (hex) a token is stored as: the IdP's.
pub use kollegium_idp::links::token_hash;

/// The account named `name` (any case), if there is one.
pub fn find(conn: &mut SqliteConnection, name: &str) -> QueryResult<Option<Account>> {
    operators::table
        .filter(operators::name.eq(name.trim().to_lowercase()))
        .select(Account::as_select())
        .first(conn)
        .optional()
}

/// Every account, by name.
pub fn list(conn: &mut SqliteConnection) -> QueryResult<Vec<Account>> {
    operators::table
        .order(operators::name.asc())
        .select(Account::as_select())
        .load(conn)
}

/// A new setup link's token for `operator`; the operator's earlier unused links stop
/// working.
fn issue_link(conn: &mut SqliteConnection, now: UnixTime, operator: i64) -> QueryResult<String> {
    diesel::delete(
        operator_setup_links::table
            .filter(operator_setup_links::operator_id.eq(operator))
            .filter(operator_setup_links::used_at.is_null()),
    )
    .execute(conn)?;
    let token = random_token(32);
    diesel::insert_into(operator_setup_links::table)
        .values((
            operator_setup_links::operator_id.eq(operator),
            operator_setup_links::token_hash.eq(token_hash(&token)),
            operator_setup_links::created_at.eq(now),
            operator_setup_links::expires_at.eq(now + SETUP_LINK_TTL_SECS),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Creates the account `name` (active, not yet set up) and returns its setup link's
/// token. `who` is recorded in the audit log.
pub fn add(
    conn: &mut SqliteConnection,
    now: UnixTime,
    who: &str,
    name: &str,
    email: &str,
) -> Result<String, AccountError> {
    let name = parse_name(name)?;
    let email = parse_email(email)?;
    conn.immediate_transaction(|conn| {
        if find(conn, &name)?.is_some() {
            return Err(AccountError::Exists(name.clone()));
        }
        let id: i64 = diesel::insert_into(operators::table)
            .values((
                operators::name.eq(&name),
                operators::email.eq(&email),
                operators::status.eq("active"),
                operators::created_at.eq(now),
            ))
            .returning(operators::id)
            .get_result(conn)?;
        let token = issue_link(conn, now, id)?;
        audit::record(conn, now, who, "operator.add", &name)?;
        Ok(token)
    })
}

/// A new setup link for `name` (to set up again: a new password and a new TOTP secret);
/// earlier links stop working.
pub fn new_setup_link(
    conn: &mut SqliteConnection,
    now: UnixTime,
    who: &str,
    name: &str,
) -> Result<String, AccountError> {
    conn.immediate_transaction(|conn| {
        let account = find(conn, name)?.ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
        let token = issue_link(conn, now, account.id)?;
        audit::record(conn, now, who, "operator.setup_link", &account.name)?;
        Ok(token)
    })
}

/// Suspends (`suspend`) or resumes an account. A suspended account's sessions end at once.
pub fn set_suspended(
    conn: &mut SqliteConnection,
    now: UnixTime,
    who: &str,
    name: &str,
    suspend: bool,
) -> Result<(), AccountError> {
    let (from, to, action) = if suspend {
        ("active", "suspended", "operator.suspend")
    } else {
        ("suspended", "active", "operator.resume")
    };
    conn.immediate_transaction(|conn| {
        let account = find(conn, name)?.ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
        if account.status != from {
            return Err(AccountError::WrongStatus {
                name: account.name,
                status: to,
            });
        }
        diesel::update(operators::table.find(account.id))
            .set(operators::status.eq(to))
            .execute(conn)?;
        if suspend {
            diesel::delete(
                operator_sessions::table.filter(operator_sessions::operator_id.eq(account.id)),
            )
            .execute(conn)?;
        }
        audit::record(conn, now, who, action, &account.name)?;
        Ok(())
    })
}

/// A setup link as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = operator_setup_links)]
pub struct SetupLink {
    pub id: i64,
    pub operator_id: i64,
    pub token_hash: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    pub pending_password_hash: Option<String>,
    pub pending_totp: Option<String>,
    pub pending_at: Option<UnixTime>,
}

/// The setup link of `token` with its account, if it is unused, unexpired and the account
/// active. Tokens longer than any issued are not looked up.
pub fn open_link(
    conn: &mut SqliteConnection,
    now: UnixTime,
    token: &str,
) -> QueryResult<Option<(SetupLink, Account)>> {
    if token.is_empty() || token.len() > 64 {
        return Ok(None);
    }
    operator_setup_links::table
        .inner_join(operators::table)
        .filter(operator_setup_links::token_hash.eq(token_hash(token)))
        .filter(operator_setup_links::used_at.is_null())
        .filter(operator_setup_links::expires_at.gt(now))
        .filter(operators::status.eq("active"))
        .select((SetupLink::as_select(), Account::as_select()))
        .first(conn)
        .optional()
}

/// Seconds an offered TOTP secret may wait for its confirming code.
pub const ENROL_TTL_SECS: i64 = 15 * 60;

fn totp_context(operator: i64) -> String {
    format!("kollegium operator totp v1|operator:{operator}")
}

fn pending_context(link: i64) -> String {
    format!("kollegium operator totp enrol v1|link:{link}")
}

/// The first step of setup: the chosen password's hash and a fresh TOTP secret (sealed
/// with `key`) are kept with the link until a code confirms the secret. Returns the secret
/// to show. A link used meanwhile is refused (`None`).
pub fn choose_password(
    conn: &mut SqliteConnection,
    key: &[u8; 32],
    now: UnixTime,
    link: &SetupLink,
    password_hash: &str,
) -> QueryResult<Option<Zeroizing<Vec<u8>>>> {
    let secret = kollegium_idp::totp::generate_secret();
    let sealed = secrets::seal(key, &pending_context(link.id), &secret);
    let n = diesel::update(
        operator_setup_links::table
            .find(link.id)
            .filter(operator_setup_links::used_at.is_null()),
    )
    .set((
        operator_setup_links::pending_password_hash.eq(password_hash),
        operator_setup_links::pending_totp.eq(sealed),
        operator_setup_links::pending_at.eq(now),
    ))
    .execute(conn)?;
    Ok((n == 1).then_some(secret))
}

/// The TOTP secret offered on `link`, while its enrolment has not expired.
pub fn pending_secret(
    key: &[u8; 32],
    link: &SetupLink,
    now: UnixTime,
) -> Option<Zeroizing<Vec<u8>>> {
    let sealed = link.pending_totp.as_deref()?;
    if link.pending_at.is_none_or(|at| at + ENROL_TTL_SECS <= now) {
        return None;
    }
    secrets::open(key, &pending_context(link.id), sealed).ok()
}

/// Why completing setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No password chosen yet, or the offered secret expired.
    #[error("the password step is missing or the enrolment expired")]
    NotStarted,
    /// The code does not match the offered secret.
    #[error("wrong code")]
    WrongCode,
    /// The link was used meanwhile.
    #[error("the link is used")]
    Used,
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
}

/// The second step of setup: `code` confirms the offered secret; the account gets the
/// password and the secret (sealed with `key`), the link is used up, the account's other
/// sessions end, and the audit log says so. Returns the account.
pub fn complete_setup(
    conn: &mut SqliteConnection,
    key: &[u8; 32],
    now: UnixTime,
    link: &SetupLink,
    code: &str,
) -> Result<Account, SetupError> {
    let (Some(password_hash), Some(secret)) = (
        link.pending_password_hash.as_deref(),
        pending_secret(key, link, now),
    ) else {
        return Err(SetupError::NotStarted);
    };
    let step =
        kollegium_idp::totp::matching_step(&secret, code, now).ok_or(SetupError::WrongCode)?;
    let sealed = secrets::seal(key, &totp_context(link.operator_id), &secret);
    conn.immediate_transaction(|conn| {
        let used = diesel::update(
            operator_setup_links::table
                .find(link.id)
                .filter(operator_setup_links::used_at.is_null()),
        )
        .set((
            operator_setup_links::used_at.eq(now),
            operator_setup_links::pending_password_hash.eq(None::<String>),
            operator_setup_links::pending_totp.eq(None::<String>),
        ))
        .execute(conn)?;
        if used != 1 {
            return Err(SetupError::Used);
        }
        diesel::update(operators::table.find(link.operator_id))
            .set((
                operators::password_hash.eq(password_hash),
                operators::totp_secret.eq(&sealed),
                operators::last_totp_step.eq(step),
            ))
            .execute(conn)?;
        diesel::delete(
            operator_sessions::table.filter(operator_sessions::operator_id.eq(link.operator_id)),
        )
        .execute(conn)?;
        let account = operators::table
            .find(link.operator_id)
            .select(Account::as_select())
            .first(conn)?;
        audit::record(conn, now, &account.name, "operator.setup", &account.name)?;
        Ok(account)
    })
}

/// The account's TOTP secret.
pub fn totp_secret(key: &[u8; 32], account: &Account) -> Option<Zeroizing<Vec<u8>>> {
    let sealed = account.totp_secret.as_deref()?;
    secrets::open(key, &totp_context(account.id), sealed).ok()
}

/// Uses TOTP step `step` of `account` once: false when it (or a later one) was used.
pub fn consume_totp_step(
    conn: &mut SqliteConnection,
    account: i64,
    step: i64,
) -> QueryResult<bool> {
    diesel::update(
        operators::table
            .find(account)
            .filter(operators::last_totp_step.lt(step)),
    )
    .set(operators::last_totp_step.eq(step))
    .execute(conn)
    .map(|n| n == 1)
}
