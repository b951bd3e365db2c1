//! The identity provider's part in creating a practice: `idp.sqlite`, the owner account
//! (invited), the one-time setup link that is printed for the operator, the first
//! signing key and the platform's first-party client (its credentials go into
//! `report.first_party_client` for the workspace's hook, never into the printed notes).

use kollegium_tenants::provision::{
    BoxError, FirstPartyClient, NewPractice, ProvisionHook, ProvisionReport,
};

use crate::links::{self, LinkKind};
use crate::oidc::clients::{self, NewClient, PLATFORM_CLIENT_ID, RedirectUri};
use crate::oidc::keys;
use crate::users::{self, Profile};
use crate::{IDP_DB, events};

/// Validity of the owner's setup link.
pub const SETUP_TTL_SECS: i64 = 72 * 3600;

/// Creates and migrates `idp.sqlite`, the owner account and the setup link.
#[derive(Debug, Default)]
pub struct IdpProvisioner {
    /// Also queue the setup link as mail to the owner (when an SMTP relay is configured;
    /// the operator gets the link printed either way).
    pub mail_setup_link: bool,
}

/// The owner's profile as created with the practice (they choose name and user name at setup).
pub fn owner_profile(email: &str) -> Profile {
    let local = email.split('@').next().unwrap_or("inhaber");
    let username: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
        .take(64)
        .collect();
    Profile {
        username: if username.len() >= 2 {
            username
        } else {
            "inhaber".into()
        },
        email: email.to_owned(),
        display_name: "Praxisleitung".into(),
        is_admin: true,
        roles: vec!["praxisinhaber".into()],
        ..Profile::default()
    }
}

impl ProvisionHook for IdpProvisioner {
    fn step(&self) -> &'static str {
        "identity provider"
    }

    fn provision(&self, p: &NewPractice<'_>, report: &mut ProvisionReport) -> Result<(), BoxError> {
        let mut conn = p.open_db(&IDP_DB)?;
        let profile = owner_profile(p.owner_email.as_str())
            .validate()
            .map_err(|e| e.to_string())?;
        let id =
            users::create_invited(&mut conn, &profile, true, p.now)?.map_err(|e| e.to_string())?;
        let token = links::issue(&mut conn, id, LinkKind::Setup, p.now, SETUP_TTL_SECS)?;
        events::record(
            &mut conn,
            p.now,
            &events::Event {
                user: Some(id),
                detail: "owner",
                ..events::Event::new(events::EventKind::UserInvited)
            },
        )?;
        keys::generate(&mut conn, p.node_key, p.slug.as_str(), p.now)?;
        let created = clients::create(&mut conn, &platform_client(p.origin)?, p.now)?
            .map_err(|e| e.to_string())?;
        let secret = created
            .secret
            .ok_or("the first-party client was registered without a secret")?;
        report.first_party_client = Some(FirstPartyClient {
            client_id: created.client_id,
            secret,
        });
        let link = format!("{}/id/setup/{token}", p.origin);
        if self.mail_setup_link {
            crate::mail::owner_setup(
                &mut conn,
                p.display_name,
                p.owner_email.as_str(),
                &link,
                SETUP_TTL_SECS / 3600,
                p.now,
            )?;
            report.notes.push(format!(
                "The setup link is also mailed to the owner ({}) by the running server.",
                p.owner_email
            ));
        }
        report
            .values
            .insert("owner_setup_link".into(), link.clone());
        report
            .notes
            .push(format!("Owner setup link (valid 72 h, single use): {link}"));
        Ok(())
    }
}

/// The platform as the practice's first-party, confidential client.
pub fn platform_client(origin: &str) -> Result<NewClient, clients::ClientError> {
    Ok(NewClient {
        client_id: Some(PLATFORM_CLIENT_ID.into()),
        name: "Arbeitsplatz".into(),
        confidential: true,
        first_party: true,
        redirect_uris: vec![RedirectUri::own(&format!("{origin}/auth/callback"))?],
        post_logout_uris: vec![
            RedirectUri::own(&format!("{origin}/auth/logged-out"))?,
            RedirectUri::own(&format!("{origin}/"))?,
        ],
        backchannel_logout_uri: Some(RedirectUri::own(&format!(
            "{origin}/auth/backchannel-logout"
        ))?),
        launch_url: None,
        initiate_login_uri: None,
        allowed_scopes: None,
        // The platform verifies with the `openidconnect` crate's defaults (RS256).
        signing_alg: crate::oidc::jwt::Alg::Rs256,
    })
}

/// A new setup link for the owner, if the owner never completed setup.
pub fn new_setup_link(
    conn: &mut diesel::SqliteConnection,
    origin: &str,
    now: i64,
) -> Result<Option<String>, BoxError> {
    use crate::schema::users as u;
    use diesel::prelude::*;
    let owner: Option<(i64, String)> = u::table
        .filter(u::is_owner.eq(true))
        .filter(u::status.eq("invited"))
        .select((u::id, u::status))
        .first(conn)
        .optional()?;
    let Some((id, _)) = owner else {
        return Ok(None);
    };
    let token = links::issue(
        conn,
        users::UserId(id),
        LinkKind::Setup,
        now,
        SETUP_TTL_SECS,
    )?;
    Ok(Some(format!("{origin}/id/setup/{token}")))
}
