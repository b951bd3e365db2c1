//! Members of the practice as the platform knows them: a copy of the IdP's claims,
//! refreshed at every login and token refresh. The platform never reads the IdP's tables.
//!
//! A member whose account the IdP reports disabled or deleted (the member directory, see
//! [`crate::directory`]) is marked deactivated: they are left out of room audiences,
//! mention mails and member lists, but keep their row, so their messages keep their name.
//! A sign-in or token refresh with fresh claims clears the mark (the IdP let them in).

use diesel::prelude::*;
use kollegium_tenants::UnixTime;

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

/// Inserts or refreshes a member from claims (a sign-in or token refresh the IdP allowed),
/// which also clears a deactivation mark.
pub fn upsert(conn: &mut SqliteConnection, c: &Claims, now: UnixTime) -> QueryResult<Member> {
    let name = if c.name.trim().is_empty() {
        &c.preferred_username
    } else {
        &c.name
    };
    // Shown to every colleague: no bidirectional controls (as in room names and messages).
    let name = crate::markdown::neutralize_bidi(name).into_owned();
    let username = crate::markdown::neutralize_bidi(&c.preferred_username).into_owned();
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
