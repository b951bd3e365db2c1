//! Accounts: the `users` table and what can be done to it.

use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::catalog;
use kollegium_tenants::secrets::random_token;

use crate::schema::users;

/// Typed user id (row id in this practice's `idp.sqlite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// Created, password not chosen yet.
    Invited,
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Invited => "Eingeladen",
            Self::Active => "Aktiv",
            Self::Disabled => "Deaktiviert",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "invited" => Self::Invited,
            _ => Self::Disabled,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
struct Row {
    id: i64,
    sub: String,
    username: String,
    email: String,
    email_verified: bool,
    display_name: String,
    password_hash: Option<String>,
    status: String,
    is_admin: bool,
    is_owner: bool,
    roles: String,
    specialty: Option<String>,
    kv_region: Option<String>,
    work_areas: String,
    totp_secret: Option<String>,
    totp_last_step: Option<i64>,
    failed_logins: i64,
    locked_until: Option<i64>,
    password_changed_at: Option<i64>,
    created_at: i64,
}

/// An account of this practice.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    /// Stable, opaque subject identifier for OIDC.
    pub sub: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub status: UserStatus,
    pub is_admin: bool,
    pub is_owner: bool,
    pub roles: Vec<String>,
    pub specialty: Option<String>,
    pub kv_region: Option<String>,
    pub work_areas: Vec<String>,
    /// TOTP secret, sealed with the practice key for "totp" (see `crate::totp`).
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub failed_logins: i64,
    pub locked_until: Option<UnixTime>,
    pub password_changed_at: Option<UnixTime>,
    pub created_at: UnixTime,
}

impl From<Row> for User {
    fn from(r: Row) -> Self {
        Self {
            id: UserId(r.id),
            sub: r.sub,
            username: r.username,
            email: r.email,
            email_verified: r.email_verified,
            display_name: r.display_name,
            password_hash: r.password_hash,
            status: UserStatus::parse(&r.status),
            is_admin: r.is_admin,
            is_owner: r.is_owner,
            roles: serde_json::from_str(&r.roles).unwrap_or_default(),
            specialty: r.specialty,
            kv_region: r.kv_region,
            work_areas: serde_json::from_str(&r.work_areas).unwrap_or_default(),
            totp_secret: r.totp_secret,
            totp_last_step: r.totp_last_step,
            failed_logins: r.failed_logins,
            locked_until: r.locked_until,
            password_changed_at: r.password_changed_at,
            created_at: r.created_at,
        }
    }
}

impl User {
    /// Whether a login lock on the account is in force (for the admins' view; the
    /// throttle decides who is held back, and a lock never ends a session).
    pub fn is_locked(&self, now: UnixTime) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }
    pub fn has_totp(&self) -> bool {
        self.totp_secret.is_some()
    }
    pub fn role_labels(&self) -> Vec<String> {
        self.roles
            .iter()
            .map(|r| catalog::label(catalog::ROLES, r))
            .collect()
    }
    /// Strings a password must not contain.
    pub fn identity_words(&self) -> [&str; 2] {
        [&self.username, self.email.split('@').next().unwrap_or("")]
    }
}

/// Profile fields an admin edits.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub roles: Vec<String>,
    pub specialty: Option<String>,
    pub kv_region: Option<String>,
    pub work_areas: Vec<String>,
}

/// Why profile input was refused (German, shown next to the form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "Der Benutzername muss 2–64 Zeichen lang sein und darf nur Buchstaben, Ziffern, '.', '-' und '_' enthalten."
    )]
    Username,
    #[error("Bitte geben Sie eine gültige E-Mail-Adresse ein.")]
    Email,
    #[error("Bitte geben Sie einen Namen mit höchstens 120 Zeichen ein.")]
    DisplayName,
    #[error("Unbekannte Rolle.")]
    Role,
    #[error("Unbekannte Fachrichtung.")]
    Specialty,
    #[error("Unbekannte KV-Region.")]
    KvRegion,
    #[error("Arbeitsbereiche: höchstens 20 Einträge mit je höchstens 60 Zeichen.")]
    WorkAreas,
    #[error("Dieser Benutzername ist bereits vergeben.")]
    UsernameTaken,
    #[error("Diese E-Mail-Adresse ist bereits vergeben.")]
    EmailTaken,
}

impl Profile {
    /// Validates and normalises the fields.
    pub fn validate(mut self) -> Result<Self, ProfileError> {
        self.username = self.username.trim().to_owned();
        let u = &self.username;
        if u.len() < 2
            || u.len() > 64
            || !u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        {
            return Err(ProfileError::Username);
        }
        self.email = kollegium_tenants::Email::parse(&self.email)
            .map_err(|_| ProfileError::Email)?
            .to_string();
        self.display_name = self.display_name.trim().to_owned();
        if self.display_name.is_empty()
            || self.display_name.chars().count() > 120
            || self.display_name.chars().any(char::is_control)
        {
            return Err(ProfileError::DisplayName);
        }
        if self
            .roles
            .iter()
            .any(|r| catalog::find(catalog::ROLES, r).is_none())
        {
            return Err(ProfileError::Role);
        }
        self.roles.sort();
        self.roles.dedup();
        self.specialty = self.specialty.filter(|s| !s.is_empty());
        if let Some(s) = &self.specialty
            && catalog::find(catalog::SPECIALTIES, s).is_none()
        {
            return Err(ProfileError::Specialty);
        }
        self.kv_region = self.kv_region.filter(|s| !s.is_empty());
        if let Some(k) = &self.kv_region
            && catalog::find(catalog::KV_REGIONS, k).is_none()
        {
            return Err(ProfileError::KvRegion);
        }
        self.work_areas = self
            .work_areas
            .iter()
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect();
        if self.work_areas.len() > 20
            || self
                .work_areas
                .iter()
                .any(|w| w.chars().count() > 60 || w.chars().any(char::is_control))
        {
            return Err(ProfileError::WorkAreas);
        }
        Ok(self)
    }
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub fn by_id(conn: &mut SqliteConnection, id: UserId) -> QueryResult<Option<User>> {
    users::table
        .find(id.0)
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(User::from))
}

pub fn by_sub(conn: &mut SqliteConnection, sub: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::sub.eq(sub))
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(User::from))
}

/// Finds an account by user name or e-mail (case-insensitive).
pub fn by_login(conn: &mut SqliteConnection, login: &str) -> QueryResult<Option<User>> {
    let login = login.trim();
    users::table
        .filter(users::username.eq(login).or(users::email.eq(login)))
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(User::from))
}

pub fn list(conn: &mut SqliteConnection) -> QueryResult<Vec<User>> {
    users::table
        .order(users::display_name)
        .select(Row::as_select())
        .load(conn)
        .map(|v| v.into_iter().map(User::from).collect())
}

pub fn count(conn: &mut SqliteConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

fn check_unique(
    conn: &mut SqliteConnection,
    p: &Profile,
    except: Option<UserId>,
) -> QueryResult<Result<(), ProfileError>> {
    let other = |q: Option<i64>| q.is_some_and(|id| Some(UserId(id)) != except);
    let by_name: Option<i64> = users::table
        .filter(
            users::username
                .eq(&p.username)
                .or(users::email.eq(&p.username)),
        )
        .select(users::id)
        .first(conn)
        .optional()?;
    if other(by_name) {
        return Ok(Err(ProfileError::UsernameTaken));
    }
    let by_mail: Option<i64> = users::table
        .filter(users::email.eq(&p.email).or(users::username.eq(&p.email)))
        .select(users::id)
        .first(conn)
        .optional()?;
    if other(by_mail) {
        return Ok(Err(ProfileError::EmailTaken));
    }
    Ok(Ok(()))
}

/// Creates an invited account (no password yet).
pub fn create_invited(
    conn: &mut SqliteConnection,
    p: &Profile,
    is_owner: bool,
    now: UnixTime,
) -> QueryResult<Result<UserId, ProfileError>> {
    if let Err(e) = check_unique(conn, p, None)? {
        return Ok(Err(e));
    }
    let id = diesel::insert_into(users::table)
        .values((
            users::sub.eq(random_token(18)),
            users::username.eq(&p.username),
            users::email.eq(&p.email),
            users::display_name.eq(&p.display_name),
            users::status.eq(UserStatus::Invited.as_str()),
            users::is_admin.eq(p.is_admin || is_owner),
            users::is_owner.eq(is_owner),
            users::roles.eq(json(&p.roles)),
            users::specialty.eq(&p.specialty),
            users::kv_region.eq(&p.kv_region),
            users::work_areas.eq(json(&p.work_areas)),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .returning(users::id)
        .get_result(conn)?;
    Ok(Ok(UserId(id)))
}

/// Updates the profile fields.
pub fn update_profile(
    conn: &mut SqliteConnection,
    id: UserId,
    p: &Profile,
    now: UnixTime,
) -> QueryResult<Result<(), ProfileError>> {
    if let Err(e) = check_unique(conn, p, Some(id))? {
        return Ok(Err(e));
    }
    let before = by_id(conn, id)?;
    let email_changed = before
        .as_ref()
        .is_some_and(|u| !u.email.eq_ignore_ascii_case(&p.email));
    diesel::update(users::table.find(id.0))
        .set((
            users::username.eq(&p.username),
            users::email.eq(&p.email),
            users::display_name.eq(&p.display_name),
            users::is_admin.eq(p.is_admin),
            users::roles.eq(json(&p.roles)),
            users::specialty.eq(&p.specialty),
            users::kv_region.eq(&p.kv_region),
            users::work_areas.eq(json(&p.work_areas)),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    if email_changed {
        diesel::update(users::table.find(id.0))
            .set(users::email_verified.eq(false))
            .execute(conn)?;
    }
    Ok(Ok(()))
}

/// Sets a new password hash and activates an invited account.
pub fn set_password(
    conn: &mut SqliteConnection,
    id: UserId,
    hash: &str,
    verified_email: bool,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set((
            users::password_hash.eq(hash),
            users::password_changed_at.eq(now),
            users::updated_at.eq(now),
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    diesel::update(
        users::table
            .find(id.0)
            .filter(users::status.eq(UserStatus::Invited.as_str())),
    )
    .set(users::status.eq(UserStatus::Active.as_str()))
    .execute(conn)?;
    if verified_email {
        diesel::update(users::table.find(id.0))
            .set(users::email_verified.eq(true))
            .execute(conn)?;
    }
    Ok(())
}

/// Replaces the stored hash (rehash at login) without touching anything else.
pub fn replace_hash(conn: &mut SqliteConnection, id: UserId, hash: &str) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set(users::password_hash.eq(hash))
        .execute(conn)
        .map(|_| ())
}

pub fn set_status(
    conn: &mut SqliteConnection,
    id: UserId,
    status: UserStatus,
    now: UnixTime,
) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set((users::status.eq(status.as_str()), users::updated_at.eq(now)))
        .execute(conn)
        .map(|_| ())
}

pub fn delete(conn: &mut SqliteConnection, id: UserId) -> QueryResult<()> {
    diesel::delete(users::table.find(id.0))
        .execute(conn)
        .map(|_| ())
}

/// Records a failed password for the account; returns the new failure count.
pub fn record_failure(conn: &mut SqliteConnection, id: UserId, now: UnixTime) -> QueryResult<i64> {
    diesel::update(users::table.find(id.0))
        .set((
            users::failed_logins.eq(users::failed_logins + 1),
            users::last_failed_at.eq(now),
        ))
        .returning(users::failed_logins)
        .get_result(conn)
}

/// Clears the failure count after a completed login. A lock stays marked until it runs
/// out: it may hold back another address than the one that just signed in.
pub fn reset_failures(conn: &mut SqliteConnection, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set(users::failed_logins.eq(0))
        .execute(conn)
        .map(|_| ())
}

/// Records that sign-in to the account is locked until `until` (from one address or from
/// all unknown devices; the throttle enforces it, this is the admins' view). A later end
/// already recorded is kept.
pub fn lock_until(conn: &mut SqliteConnection, id: UserId, until: UnixTime) -> QueryResult<()> {
    diesel::update(
        users::table.find(id.0).filter(
            users::locked_until
                .is_null()
                .or(users::locked_until.lt(until)),
        ),
    )
    .set(users::locked_until.eq(until))
    .execute(conn)
    .map(|_| ())
}

/// Clears failures and any lock mark (admin unlock).
pub fn clear_failures(conn: &mut SqliteConnection, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set((
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<i64>),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn set_totp(
    conn: &mut SqliteConnection,
    id: UserId,
    wrapped_secret: Option<&str>,
    last_step: Option<i64>,
) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set((
            users::totp_secret.eq(wrapped_secret),
            users::totp_last_step.eq(last_step),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Marks a TOTP step as used if it is newer than the last one; false if it was replayed.
pub fn consume_totp_step(conn: &mut SqliteConnection, id: UserId, step: i64) -> QueryResult<bool> {
    let n = diesel::update(
        users::table.find(id.0).filter(
            users::totp_last_step
                .is_null()
                .or(users::totp_last_step.lt(step)),
        ),
    )
    .set(users::totp_last_step.eq(step))
    .execute(conn)?;
    Ok(n == 1)
}
