//! Members of the practice as the platform knows them: a copy of the IdP's claims,
//! refreshed at every login and token refresh, and of the IdP's member directory, which
//! also lists colleagues who have never signed in (their row exists before their first
//! session, so they can be added to rooms and mentioned; their first sign-in takes the row
//! over, matched by `sub`). The platform never reads the IdP's tables.
//!
//! A member whose account the IdP reports disabled or deleted (the member directory, see
//! [`crate::directory`]) is marked deactivated: they are left out of room audiences,
//! mention mails and member lists, but keep their row, so their messages keep their name.
//! A sign-in or token refresh with fresh claims clears the mark (the IdP let them in).

use diesel::prelude::*;
use kollegium_tenants::{UnixTime, catalog};

use crate::schema::members;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MemberId(pub i64);

/// What the IdP says about a user (ID token + userinfo, scope `practice`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub preferred_username: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub specialty: Option<String>,
    #[serde(default)]
    pub kv_region: Option<String>,
    #[serde(default)]
    pub work_areas: Vec<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = members)]
struct Row {
    id: i64,
    sub: String,
    username: String,
    display_name: String,
    email: String,
    roles: String,
    is_admin: bool,
    specialty: Option<String>,
    kv_region: Option<String>,
    work_areas: String,
    send_read_receipts: bool,
    mention_mail: bool,
    mention_mail_delay_secs: i64,
    deactivated_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: MemberId,
    pub sub: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub roles: Vec<String>,
    pub is_admin: bool,
    pub specialty: Option<String>,
    pub kv_region: Option<String>,
    pub work_areas: Vec<String>,
    pub send_read_receipts: bool,
    pub mention_mail: bool,
    pub mention_mail_delay_secs: i64,
    /// When the IdP's directory last said the account is disabled or gone.
    pub deactivated_at: Option<UnixTime>,
}

impl Member {
    pub fn is_deactivated(&self) -> bool {
        self.deactivated_at.is_some()
    }
    /// The labels of the member's roles (the shared catalogue), e.g. `["Ärzt:in", "MFA"]`.
    pub fn role_labels(&self) -> Vec<String> {
        catalog::labels(catalog::ROLES, &self.roles)
    }
}

/// Role labels from the stored `roles` column (a JSON list of catalogue ids).
pub fn role_labels_of(roles_json: &str) -> Vec<String> {
    let ids: Vec<String> = serde_json::from_str(roles_json).unwrap_or_default();
    catalog::labels(catalog::ROLES, &ids)
}

impl From<Row> for Member {
    fn from(r: Row) -> Self {
        Self {
            id: MemberId(r.id),
            sub: r.sub,
            username: r.username,
            display_name: r.display_name,
            email: r.email,
            roles: serde_json::from_str(&r.roles).unwrap_or_default(),
            is_admin: r.is_admin,
            specialty: r.specialty,
            kv_region: r.kv_region,
            work_areas: serde_json::from_str(&r.work_areas).unwrap_or_default(),
            send_read_receipts: r.send_read_receipts,
            mention_mail: r.mention_mail,
            mention_mail_delay_secs: r.mention_mail_delay_secs,
            deactivated_at: r.deactivated_at,
        }
    }
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// The user name and display name as the workspace keeps them: the name falls back to the
/// user name, and neither may carry bidirectional controls (shown to every colleague, as
/// room names and messages).
fn names(preferred_username: &str, name: &str) -> (String, String) {
    let name = if name.trim().is_empty() {
        preferred_username
    } else {
        name
    };
    (
        crate::markdown::neutralize_bidi(preferred_username).into_owned(),
        crate::markdown::neutralize_bidi(name).into_owned(),
    )
}

/// Inserts or refreshes a member from claims (a sign-in or token refresh the IdP allowed),
/// which also clears a deactivation mark. A colleague first known from the member directory
/// keeps their row (matched by `sub`): their first sign-in completes it.
pub fn upsert(conn: &mut SqliteConnection, c: &Claims, now: UnixTime) -> QueryResult<Member> {
    let (username, name) = names(&c.preferred_username, &c.name);
    diesel::insert_into(members::table)
        .values((
            members::sub.eq(&c.sub),
            members::username.eq(&username),
            members::display_name.eq(&name),
            members::email.eq(&c.email),
            members::roles.eq(json(&c.roles)),
            members::is_admin.eq(c.is_admin),
            members::specialty.eq(&c.specialty),
            members::kv_region.eq(&c.kv_region),
            members::work_areas.eq(json(&c.work_areas)),
            members::created_at.eq(now),
            members::updated_at.eq(now),
        ))
        .on_conflict(members::sub)
        .do_update()
        .set((
            members::username.eq(&username),
            members::display_name.eq(&name),
            members::email.eq(&c.email),
            members::roles.eq(json(&c.roles)),
            members::is_admin.eq(c.is_admin),
            members::specialty.eq(&c.specialty),
            members::kv_region.eq(&c.kv_region),
            members::work_areas.eq(json(&c.work_areas)),
            members::updated_at.eq(now),
            members::deactivated_at.eq(None::<i64>),
        ))
        .returning(Row::as_returning())
        .get_result(conn)
        .map(Member::from)
}

/// An active colleague as the IdP's member directory lists them.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub sub: &'a str,
    pub preferred_username: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    /// Role ids of the shared catalogue.
    pub roles: &'a [String],
}

/// The directory's fields of a member as stored: what [`from_directory`] and
/// [`refresh_from_directory`] write, and what the directory sync compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFields {
    pub username: String,
    pub display_name: String,
    pub email: String,
    /// JSON list of role ids, in the IdP's order (as the `roles` claim).
    pub roles: String,
    pub is_admin: bool,
}

impl Listed<'_> {
    pub fn fields(&self) -> ListedFields {
        let (username, display_name) = names(self.preferred_username, self.name);
        ListedFields {
            username,
            display_name,
            email: self.email.trim().to_owned(),
            roles: json(self.roles),
            // As the sign-in reads the claims: `admin` among the roles.
            is_admin: self.roles.iter().any(|r| r == "admin"),
        }
    }
}

/// Creates the member of a colleague the directory lists who has not signed in yet: a row
/// without a session (`last_login_at` empty), so pickers and mentions offer them. Nothing
/// happens if a row with this `sub` exists (a first sign-in got there first). `listed_at`
/// is when the listing was requested. Returns whether a row was created.
pub fn from_directory(
    conn: &mut SqliteConnection,
    l: &Listed<'_>,
    listed_at: UnixTime,
    now: UnixTime,
) -> QueryResult<bool> {
    let f = l.fields();
    diesel::insert_into(members::table)
        .values((
            members::sub.eq(l.sub),
            members::username.eq(&f.username),
            members::display_name.eq(&f.display_name),
            members::email.eq(&f.email),
            members::roles.eq(&f.roles),
            members::is_admin.eq(f.is_admin),
            members::created_at.eq(now),
            // No claims yet: the listing is the newest word on this member.
            members::updated_at.eq(listed_at),
            members::listed_at.eq(listed_at),
        ))
        .on_conflict(members::sub)
        .do_nothing()
        .execute(conn)
        .map(|n| n == 1)
}

/// Brings a member's user name, display name, e-mail, roles and admin flag in line with
/// the directory (a change at the IdP, e.g. a new display name, before the member's next
/// sign-in or token refresh).
pub fn refresh_from_directory(
    conn: &mut SqliteConnection,
    id: MemberId,
    f: &ListedFields,
    listed_at: UnixTime,
) -> QueryResult<()> {
    diesel::update(members::table.find(id.0))
        .set((
            members::username.eq(&f.username),
            members::display_name.eq(&f.display_name),
            members::email.eq(&f.email),
            members::roles.eq(&f.roles),
            members::is_admin.eq(f.is_admin),
            members::listed_at.eq(listed_at),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn by_id(conn: &mut SqliteConnection, id: MemberId) -> QueryResult<Option<Member>> {
    members::table
        .find(id.0)
        .select(Row::as_select())
        .first(conn)
        .optional()
        .map(|o| o.map(Member::from))
}

/// The members who are not deactivated, by name (member lists and pickers).
pub fn list(conn: &mut SqliteConnection) -> QueryResult<Vec<Member>> {
    members::table
        .filter(members::deactivated_at.is_null())
        .order(members::display_name)
        .select(Row::as_select())
        .load(conn)
        .map(|v| v.into_iter().map(Member::from).collect())
}

/// Personal chat settings.
pub fn set_preferences(
    conn: &mut SqliteConnection,
    id: MemberId,
    send_read_receipts: bool,
    mention_mail: bool,
    delay_secs: i64,
) -> QueryResult<()> {
    diesel::update(members::table.find(id.0))
        .set((
            members::send_read_receipts.eq(send_read_receipts),
            members::mention_mail.eq(mention_mail),
            members::mention_mail_delay_secs.eq(delay_secs.clamp(0, 7 * 24 * 3600)),
        ))
        .execute(conn)
        .map(|_| ())
}
