//! `kollegium demo`: the demo practice with fixed sample data, on loopback only, and its
//! sample third-party tool "Dienstplan (Demo)" (`crate::roster`).

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;

use anyhow::Context;
use diesel::SqliteConnection;
use kollegium_idp::oidc::clients::{self, NewClient, RedirectUri};
use kollegium_tenants::provision::{
    BoxError, CreatePractice, NewPractice, ProvisionHook, ProvisionReport,
};
use kollegium_tenants::{Slug, TenantStore, UnixTime, registry};

use crate::config::Config;

pub const DEMO_SLUG: &str = "praxis-demo";
pub const DEMO_NAME: &str = "Praxis Dr. Demo";
pub const DEMO_OWNER: &str = "inhaber@praxis-demo.example";
/// The demo roster tool's client id at the demo practice's IdP (`kollegium_idp::demo`).
pub const ROSTER_CLIENT_ID: &str = "dienstplan-demo";

/// Demo mode serves fixed, published passwords: it must never be reachable from outside.
pub fn check_loopback(config: &Config) -> Result<(), String> {
    let listen = config.listen_addr().map_err(|e| e.to_string())?;
    let operator = config.operator_addr().map_err(|e| e.to_string())?;
    if !listen.ip().is_loopback() {
        return Err(format!(
            "configuration key `listen`: demo mode refuses to listen on the non-loopback address {listen}"
        ));
    }
    if !operator.ip().is_loopback() {
        return Err(format!(
            "configuration key `operator_listen`: demo mode refuses to listen on the non-loopback address {operator}"
        ));
    }
    Ok(())
}

/// Creates the demo practice unless it exists. Returns whether it was created.
pub fn ensure_demo(
    argon2: kollegium_idp::passwords::Argon2Params,
    store: &TenantStore,
    web: &kollegium_tenants::web::WebSettings,
) -> anyhow::Result<bool> {
    let slug = Slug::parse(DEMO_SLUG)?;
    if store
        .with_registry(|c| registry::find(c, slug.as_str()))?
        .is_some()
    {
        return Ok(false);
    }
    let input = CreatePractice::parse(DEMO_SLUG, DEMO_NAME, DEMO_OWNER)?;
    let now = store.clock().now();
    let seed = DemoSeed { argon2 };
    let mut conn = store.lock_registry()?;
    // Sample content is part of the create step: all of it or nothing.
    crate::practices::create(
        store.data_dir(),
        store.node_key(),
        &mut conn,
        now,
        web,
        &input,
        false,
        &[&seed],
    )?;
    drop(conn);
    store.invalidate(&slug);
    Ok(true)
}

/// Seeds the demo practice's sample data while it is being created.
struct DemoSeed {
    argon2: kollegium_idp::passwords::Argon2Params,
}

impl ProvisionHook for DemoSeed {
    fn step(&self) -> &'static str {
        "demo sample data"
    }

    fn provision(&self, p: &NewPractice<'_>, _: &mut ProvisionReport) -> Result<(), BoxError> {
        let hasher = kollegium_idp::passwords::Hasher::new(self.argon2)?;
        let mut idp = p.open_db(&kollegium_idp::IDP_DB)?;
        kollegium_idp::demo::seed(&mut idp, &hasher, p.now)?;
        let mut platform = p.open_db(&kollegium_platform::PLATFORM_DB)?;
        seed_workspace(&mut idp, &mut platform, p.now)?;
        Ok(())
    }
}

/// The demo users as workspace members, with the `sub` the IdP puts into their ID tokens
/// (so their first sign-in maps onto these rows), and sample rooms and messages.
fn seed_workspace(
    idp: &mut SqliteConnection,
    platform: &mut SqliteConnection,
    now: UnixTime,
) -> Result<(), BoxError> {
    use kollegium_platform::chat::rooms::{self, Visibility};
    use kollegium_platform::chat::{RoomId, messages};
    use kollegium_platform::members::{self, Claims, MemberId};

    let mut member = |username: &str| -> Result<MemberId, BoxError> {
        let u = kollegium_idp::users::by_login(idp, username)?
            .ok_or_else(|| format!("demo user {username} missing"))?;
        let mut roles = u.roles.clone();
        if u.is_admin {
            roles.push("admin".into());
        }
        let claims = Claims {
            sub: u.sub.clone(),
            preferred_username: u.username.clone(),
            name: u.display_name.clone(),
            email: u.email.clone(),
            roles,
            is_admin: u.is_admin,
            specialty: u.specialty.clone(),
            kv_region: u.kv_region.clone(),
            work_areas: u.work_areas.clone(),
        };
        Ok(members::upsert(platform, &claims, now)?.id)
    };
    let inhaber = member("inhaber")?;
    let mfa = member("mfa")?;
    let abrechnung = member("abrechnung")?;

    let start = now - 3 * 3600;
    let general = rooms::create_group(
        platform,
        inhaber,
        "Allgemein",
        "Alles, was das ganze Team betrifft",
        Visibility::Open,
        &[mfa, abrechnung],
        start,
    )?;
    let billing = rooms::create_group(
        platform,
        inhaber,
        "Abrechnung",
        "Quartalsabrechnung und Rückfragen der KV",
        Visibility::Private,
        &[abrechnung],
        start,
    )?;
    let direct = rooms::direct(platform, inhaber, mfa, start)?;
    let script: &[(RoomId, MemberId, &str)] = &[
        (
            general,
            inhaber,
            "Guten Morgen zusammen! Ab Montag gelten die neuen Sprechzeiten: \
             Mittwochnachmittag bleibt die Praxis geschlossen.",
        ),
        (
            general,
            mfa,
            "Danke! Ich passe die Ansage auf dem Anrufbeantworter an.",
        ),
        (
            general,
            abrechnung,
            "Erinnerung: Bitte die Überweisungsscheine bis Freitag **vollständig** einscannen.",
        ),
        (
            general,
            mfa,
            "Mache ich. Der Impfstoff-Kühlschrank wurde heute früh geprüft – alles im grünen Bereich.",
        ),
        (
            billing,
            abrechnung,
            "Die Quartalsabrechnung ist vorbereitet. Es fehlen noch drei Unterschriften.",
        ),
        (
            billing,
            inhaber,
            "Danke, ich unterschreibe heute nach der Sprechstunde.",
        ),
        (
            direct,
            inhaber,
            "Kannst du morgen früh die Blutabnahmen übernehmen?",
        ),
        (direct, mfa, "Ja, ich bin ab 7:30 Uhr da."),
    ];
    for (i, (room, author, body)) in script.iter().enumerate() {
        let r = rooms::by_id(platform, *room)?.ok_or("demo room missing")?;
        let at = start + 600 * (i as i64 + 1);
        messages::post(platform, &r, *author, body, None, at)?;
    }
    seed_board(platform, [inhaber, mfa, abrechnung], start)?;
    Ok(())
}

/// The demo's board "Praxisorganisation", shared with the whole practice.
fn seed_board(
    platform: &mut SqliteConnection,
    [inhaber, mfa, abrechnung]: [kollegium_platform::members::MemberId; 3],
    start: UnixTime,
) -> Result<(), BoxError> {
    use kollegium_platform::tasks::boards::{self, Access, Grantee};
    use kollegium_platform::tasks::cards::{self, NewCard};
    use kollegium_platform::tasks::{ColumnId, Permission, columns, details};

    let board = boards::create_board(
        platform,
        inhaber,
        "Praxisorganisation",
        "Was im Praxisalltag zu erledigen ist",
        boards::DEFAULT_COLUMNS,
        &[Access::new(Grantee::Practice, Permission::Edit)],
        start,
    )?;
    let cols: Vec<ColumnId> = columns::of_board(platform, board)?
        .into_iter()
        .map(|c| ColumnId(c.id))
        .collect();
    let [open, doing, done] = cols[..] else {
        return Err("demo board columns missing".into());
    };
    let urgent = details::add_label(platform, board, inhaber, "Dringend", "rot")?;
    let hygiene = details::add_label(platform, board, inhaber, "Hygiene", "gruen")?;
    let billing = details::add_label(platform, board, inhaber, "Abrechnung", "blau")?;
    let card = |title: &str,
                description: &str,
                due: Option<(UnixTime, bool)>,
                who: Vec<_>,
                labels: Vec<i64>| NewCard {
        title: title.into(),
        description: description.into(),
        due,
        assignees: who,
        labels,
    };
    let day = 24 * 3600;
    let list = [
        (
            open,
            card(
                "Notfallkoffer prüfen",
                "Verfallsdaten kontrollieren, fehlende Medikamente **nachbestellen**.",
                Some((start + 2 * day, true)),
                vec![mfa],
                vec![urgent],
            ),
        ),
        (
            open,
            card(
                "Sprechzeiten auf der Website anpassen",
                "Mittwochnachmittag geschlossen.",
                None,
                vec![inhaber],
                vec![],
            ),
        ),
        (
            doing,
            card(
                "Offene Privatrechnungen prüfen",
                "Mahnlauf für Rechnungen älter als 30 Tage vorbereiten.",
                Some((start + 5 * day, true)),
                vec![abrechnung],
                vec![billing],
            ),
        ),
        (
            doing,
            card(
                "Hygieneplan aktualisieren",
                "Neue Flächendesinfektion eintragen.",
                Some((start - day, true)),
                vec![mfa, inhaber],
                vec![hygiene],
            ),
        ),
        (
            done,
            card(
                "Impfstoff-Kühlschrank prüfen",
                "Temperaturprotokoll abgezeichnet.",
                None,
                vec![mfa],
                vec![hygiene],
            ),
        ),
    ];
    for (i, (column, new)) in list.iter().enumerate() {
        let id = cards::create_card(
            platform,
            board,
            Some(*column),
            Some(inhaber),
            new,
            start + 60 * i as i64,
        )?;
        if i == 0 {
            details::add_items(
                platform,
                id,
                Some(inhaber),
                "Adrenalin\nInfusionsbesteck\nBeatmungsbeutel",
                start + 60,
            )?;
        }
    }
    // The recurring routines (weekly hygiene check, quarterly billing): tasks::routines.
    kollegium_platform::tasks::routines::demo::seed(
        platform,
        board,
        inhaber,
        [&[mfa], &[abrechnung]],
        &kollegium_tenants::time::Zone::default(),
        start,
    )?;
    Ok(())
}

/// The demo's signed broadcasts: (title, Markdown body, roles, KV regions). With the demo
/// accounts' claims (`kollegium_idp::demo::ACCOUNTS`), `inhaber` (Praxisleitung, KV
/// Nordrhein) sees the first two, `mfa` (MFA, no KV region) only the first, `abrechnung`
/// (Abrechnung, KV Nordrhein) all three.
pub const DEMO_BROADCASTS: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "Willkommen bei den Neuigkeiten",
        "Hier erscheinen Hinweise Ihres Anbieters: **Wartungsfenster**, neue Funktionen und \
         Abrechnungstipps. Was Sie lesen oder ausblenden, erfährt der Anbieter nicht.",
        &[],
        &[],
    ),
    (
        "KV Nordrhein: Abgabefrist der Quartalsabrechnung",
        "Die KV Nordrhein nimmt die Abrechnung für das laufende Quartal bis zum **10. Tag** \
         des Folgemonats entgegen. Bitte rechtzeitig übermitteln.",
        &[],
        &["kv-nordrhein"],
    ),
    (
        "Abrechnungstipp: Chronikerpauschale",
        "Die Chronikerpauschale setzt mindestens **zwei persönliche Kontakte** in zwei \
         Quartalen voraus. Prüfen Sie die Kontakte vor der Abrechnung.",
        &["abrechnung"],
        &[],
    ),
];

/// Publishes the demo's broadcasts with the operator key this node uses (and verifies
/// with, unless configured otherwise) unless the feed has messages with their titles
/// already: idempotent across restarts. Returns how many it published.
pub fn ensure_demo_broadcasts(config: &Config, now: UnixTime) -> anyhow::Result<usize> {
    use kollegium_tenants::broadcast::{Audience, Draft, OperatorFeed};
    let key = crate::news::operator_key(config).map_err(|e| match e {
        crate::news::NewsError::Usage(m) => anyhow::anyhow!(m),
        crate::news::NewsError::Runtime(e) => e,
    })?;
    let feed = OperatorFeed::open(&config.data_dir)?;
    let have: Vec<String> = feed.list()?.into_iter().map(|m| m.title).collect();
    let mut published = 0;
    for (i, (title, body, roles, kv_regions)) in DEMO_BROADCASTS.iter().enumerate() {
        if have.iter().any(|t| t == title) {
            continue;
        }
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        let draft = Draft {
            title: (*title).to_owned(),
            body: (*body).to_owned(),
            audience: Audience {
                specialties: Vec::new(),
                roles: ids(roles),
                kv_regions: ids(kv_regions),
            },
            valid_until: None,
            // The welcome stays on top.
            pinned: i == 0,
        };
        feed.publish(&key, draft, now)?;
        published += 1;
    }
    Ok(published)
}

/// Binds the demo roster tool's listener on loopback, on `port` or, if that port is taken
/// (another demo, another program), on a free one: the demo client's addresses follow the
/// port the tool got. Returns the listener and a warning when it fell back.
pub fn bind_roster(port: u16) -> anyhow::Result<(TcpListener, Option<String>)> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(l) => Ok((l, None)),
        Err(e) if port != 0 => {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .context("cannot listen for the demo roster tool on loopback")?;
            let got = l.local_addr()?.port();
            Ok((
                l,
                Some(format!(
                    "the demo roster tool cannot listen on port {port} ({e}); it uses port {got} \
                     (choose one with --roster-port)"
                )),
            ))
        }
        Err(e) => Err(e).context("cannot listen for the demo roster tool on loopback"),
    }
}

/// Points the demo client at the roster tool's origin (redirect URI `<origin>/callback`,
/// start-page tile `<origin>/`) and gives it a new secret, which only the running tool
/// keeps (a client secret is stored hashed and shown once, as for any tool). Other
/// settings an admin changed (name, scopes, signing algorithm) stay. `None`: the demo
/// practice has no such client (any more).
pub fn register_roster(store: &TenantStore, origin: &str) -> anyhow::Result<Option<String>> {
    let slug = Slug::parse(DEMO_SLUG)?;
    let Some(tenant) = store.tenant(&slug)? else {
        return Ok(None);
    };
    let now = store.clock().now();
    let mut conn = tenant.conn(&kollegium_idp::IDP_DB)?;
    let Some(client) = clients::by_id(&mut conn, ROSTER_CLIENT_ID)? else {
        return Ok(None);
    };
    let redirect = format!("{origin}/callback");
    let mut input = NewClient::parse(&client.name, &[redirect], true)?;
    input.post_logout_uris = parse_all(&client.post_logout_uris())?;
    input.backchannel_logout_uri = client
        .backchannel_logout_uri
        .as_deref()
        .map(RedirectUri::parse)
        .transpose()?;
    input.initiate_login_uri = client
        .initiate_login_uri
        .as_deref()
        .map(RedirectUri::parse)
        .transpose()?;
    input.launch_url = Some(RedirectUri::parse(&format!("{origin}/"))?);
    input.allowed_scopes = Some(client.allowed_scopes());
    input.signing_alg = client.signing_alg();
    clients::update(&mut conn, ROSTER_CLIENT_ID, &input, now)??;
    Ok(clients::rotate_secret(&mut conn, ROSTER_CLIENT_ID, now)?)
}

fn parse_all(uris: &[String]) -> Result<Vec<RedirectUri>, clients::ClientError> {
    uris.iter().map(|u| RedirectUri::parse(u)).collect()
}

/// Starts the demo roster tool on `listener` as a relying party of the demo practice
/// (registered for the listener's port first). `http` resolves the practice's host name
/// to this node (`kollegium_tenants::http::node_client`). `None`: the demo practice has no
/// roster client, so there is nothing to sign in to.
pub async fn start_roster(
    store: Arc<TenantStore>,
    web: &kollegium_tenants::web::WebSettings,
    http: reqwest::Client,
    listener: TcpListener,
) -> anyhow::Result<Option<crate::roster::RunningRoster>> {
    let origin = crate::roster::origin(listener.local_addr()?.port());
    let at = origin.clone();
    let registered = tokio::task::spawn_blocking(move || register_roster(&store, &at)).await??;
    let Some(secret) = registered else {
        tracing::warn!(
            "the demo practice has no client {ROSTER_CLIENT_ID:?}: the roster tool is not started"
        );
        return Ok(None);
    };
    let practice = web.practice_origin(DEMO_SLUG);
    let roster = crate::roster::serve(
        listener,
        crate::roster::RosterSettings {
            issuer: format!("{practice}/id"),
            client_id: ROSTER_CLIENT_ID.to_owned(),
            client_secret: secret,
            practice_url: format!("{practice}/"),
            http,
        },
    )?;
    Ok(Some(roster))
}

/// What `demo` prints once the server listens.
pub fn banner(
    practice_origin: &str,
    operator: std::net::SocketAddr,
    roster: Option<&str>,
) -> String {
    let roster = roster.map_or_else(String::new, |r| {
        format!("  Dienstplan:     {r}/  (sample tool: signs in through the practice)\n")
    });
    format!(
        "\nKollegium demo is running.\n\n  Demo practice:  {DEMO_NAME}\n  Open:           {practice_origin}/\n{roster}  Operator:       http://{operator}/metrics\n  Console:        http://{operator}/  (an account: kollegium operator add <name> --email E)\n\n  Demo logins (password {pw} for each):\n    inhaber     Praxisleitung, Administrator:in\n    mfa         MFA\n    abrechnung  Abrechnung\n\nStop with Ctrl+C.\n",
        pw = kollegium_idp::demo::DEMO_PASSWORD
    )
}
