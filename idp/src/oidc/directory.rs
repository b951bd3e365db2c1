//! `GET /id/api/members`: the member directory for the practice workspace, so that it
//! knows every colleague, including those who have never signed in to it (to add them to
//! a room or mention them), and learns who has left (account disabled or deleted), without
//! ever reading `idp.sqlite`.
//!
//! The answer lists every account of the practice by `sub` (the subject its ID tokens
//! carry) with `active`: `true` only for an active account (it can sign in); invited and
//! disabled accounts are listed as inactive; deleted accounts are absent. A relying party
//! treats absent and inactive alike. Active accounts also carry what the workspace shows
//! and mails to, with the names of the ID token's claims: `preferred_username`, `name`,
//! `email` and `roles` (catalogue ids); inactive ones carry nothing more than `sub`.
//!
//! Authorisation: a bearer access token of this practice (issuer, keys, not expired,
//! recorded, not revoked) from the `client_credentials` grant of the practice's enabled
//! first-party client with the scope [`DIRECTORY_SCOPE`], which the token endpoint grants
//! to no other client. A user's token (even the workspace's own), a third-party client's
//! token or a token without the scope is refused with `insufficient_scope` (403); a
//! missing, expired, forged or foreign token with `invalid_token` (401).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use serde::Serialize;

use super::Op;
use super::clients::{self, DIRECTORY_SCOPE};
use super::errors::OAuthError;
use super::userinfo::{ValidAccess, bearer, check_access_token};
use crate::IDP_DB;
use crate::schema::users;
use crate::users::UserStatus;

/// One account as the directory shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub sub: String,
    /// The account can sign in (status active). Invited and disabled: `false`.
    pub active: bool,
    /// Who the colleague is, for an active account only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
}

/// What the workspace shows of an active colleague (as in the ID token's claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub preferred_username: String,
    pub name: String,
    pub email: String,
    /// Role ids of the shared catalogue, and `admin` for a practice admin (as the ID
    /// token's `roles` claim).
    pub roles: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Answer {
    members: Vec<Entry>,
}

/// Every account of the practice, oldest first.
pub fn entries(conn: &mut SqliteConnection) -> QueryResult<Vec<Entry>> {
    type Row = (String, String, String, String, String, String, bool);
    let rows: Vec<Row> = users::table
        .order(users::id)
        .select((
            users::sub,
            users::status,
            users::username,
            users::display_name,
            users::email,
            users::roles,
            users::is_admin,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(sub, status, username, name, email, roles, is_admin)| {
            let active = status == UserStatus::Active.as_str();
            let mut roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
            if is_admin {
                roles.push("admin".into());
            }
            Entry {
                sub,
                active,
                person: active.then_some(Person {
                    preferred_username: username,
                    name,
                    email,
                    roles,
                }),
            }
        })
        .collect())
}

/// Whether a valid token may read the directory: no user behind it, the directory scope,
/// and issued to the practice's enabled first-party client.
fn may_read(conn: &mut SqliteConnection, access: &ValidAccess) -> QueryResult<bool> {
    if access.user.is_some() || !access.scopes().contains(&DIRECTORY_SCOPE) {
        return Ok(false);
    }
    Ok(clients::enabled(conn, &access.client_id)?.is_some_and(|c| c.first_party))
}

/// What the check found.
enum Found {
    Invalid,
    Forbidden,
    Members(Vec<Entry>),
}

async fn members(req: HttpRequest, op: Op) -> Result<HttpResponse, OAuthError> {
    let token = bearer(&req)?;
    let issuer = op.issuer();
    let now = op.now();
    let t = op.tenant.clone();
    let found = kollegium_tenants::web::block(move || -> Result<Found, OAuthError> {
        let mut conn = t.conn(&IDP_DB)?;
        let Some(access) = check_access_token(&mut conn, &token, &issuer, now)? else {
            return Ok(Found::Invalid);
        };
        if !may_read(&mut conn, &access)? {
            return Ok(Found::Forbidden);
        }
        Ok(Found::Members(entries(&mut conn)?))
    })
    .await??;
    match found {
        Found::Invalid => Err(OAuthError::invalid_token(
            "the access token is invalid, expired or revoked",
        )),
        Found::Forbidden => Err(OAuthError::insufficient_scope(
            "only the practice workspace's client token with the directory scope may list the members",
        )),
        Found::Members(members) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(Answer { members })),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id/api/members", web::get().to(members));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{self, Profile, UserStatus};

    fn profile(name: &str) -> Profile {
        Profile {
            username: name.into(),
            email: format!("{name}@a.example"),
            display_name: format!("{name} Test"),
            ..Profile::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn only_active_accounts_are_active_with_their_profile_and_deleted_ones_are_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &crate::IDP_DB, &path).unwrap();
        let mut id = |name: &str| {
            users::create_invited(&mut conn, &profile(name), false, 1)
                .unwrap()
                .unwrap()
        };
        let (anna, bernd, carla, dora) = (id("anna"), id("bernd"), id("carla"), id("dora"));
        let mut p = profile("anna");
        p.roles = vec!["mfa".into(), "arzt".into()];
        users::update_profile(&mut conn, anna, &p.validate().unwrap(), 1)
            .unwrap()
            .unwrap();
        for u in [anna, bernd, dora] {
            users::set_password(&mut conn, u, "hash", true, 2).unwrap();
        }
        users::set_status(&mut conn, bernd, UserStatus::Disabled, 3).unwrap();
        users::delete(&mut conn, dora).unwrap();
        let sub = |conn: &mut SqliteConnection, u| users::by_id(conn, u).unwrap().unwrap().sub;
        let (a, b, c) = (
            sub(&mut conn, anna),
            sub(&mut conn, bernd),
            sub(&mut conn, carla),
        );
        assert_eq!(
            entries(&mut conn).unwrap(),
            [
                Entry {
                    sub: a,
                    active: true,
                    person: Some(Person {
                        preferred_username: "anna".into(),
                        name: "anna Test".into(),
                        email: "anna@a.example".into(),
                        roles: vec!["arzt".into(), "mfa".into()],
                    }),
                },
                Entry {
                    sub: b,
                    active: false,
                    person: None,
                },
                Entry {
                    sub: c,
                    active: false,
                    person: None,
                },
            ]
        );
    }
}

#[cfg(test)]
mod shape {
    use super::*;

    #[test]
    fn an_active_entry_carries_the_claims_names_and_an_inactive_one_only_its_sub() {
        let active = Entry {
            sub: "s1".into(),
            active: true,
            person: Some(Person {
                preferred_username: "anna".into(),
                name: "Anna Test".into(),
                email: "anna@a.example".into(),
                roles: vec!["mfa".into()],
            }),
        };
        assert_eq!(
            serde_json::to_value(&active).unwrap(),
            serde_json::json!({"sub": "s1", "active": true, "preferred_username": "anna",
                "name": "Anna Test", "email": "anna@a.example", "roles": ["mfa"]})
        );
        let gone = Entry {
            sub: "s2".into(),
            active: false,
            person: None,
        };
        assert_eq!(
            serde_json::to_value(&gone).unwrap(),
            serde_json::json!({"sub": "s2", "active": false})
        );
    }
}
