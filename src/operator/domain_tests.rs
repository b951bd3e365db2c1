//! The console's domain functions on a plain connection and a time, without HTTP: setup,
//! sign-in with its throttle and single-use codes, sessions' timeouts, suspension.

use diesel::SqliteConnection;
use kollegium_idp::IdpSettings;
use kollegium_idp::totp;

use super::accounts::{self, AccountError, SetupError};
use super::audit::{self, CLI};
use super::{sessions, signin};

const T0: i64 = 1_796_000_000;
const KEY: [u8; 32] = [7; 32];
const HASH: &str = "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn db() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = super::open_db(dir.path()).unwrap();
    (dir, conn)
}

/// `name` set up at `T0` (password [`HASH`]); returns the TOTP secret.
fn set_up(conn: &mut SqliteConnection, name: &str) -> Vec<u8> {
    let token = accounts::add(conn, T0, CLI, name, &format!("{name}@x.example")).unwrap();
    let (link, _) = accounts::open_link(conn, T0, &token).unwrap().unwrap();
    let secret = accounts::choose_password(conn, &KEY, T0, &link, HASH)
        .unwrap()
        .unwrap();
    let (link, _) = accounts::open_link(conn, T0, &token).unwrap().unwrap();
    let code = totp::code_at(&secret, T0);
    accounts::complete_setup(conn, &KEY, T0, &link, &code).unwrap();
    assert!(
        accounts::open_link(conn, T0, &token).unwrap().is_none(),
        "used up"
    );
    secret.to_vec()
}

#[test]
fn setup_needs_the_password_step_and_the_right_code_and_stores_both_together() {
    let (_d, mut conn) = db();
    let token = accounts::add(&mut conn, T0, CLI, "Erika", "erika@x.example").unwrap();
    assert!(matches!(
        accounts::add(&mut conn, T0, CLI, "erika", "e@x.example"),
        Err(AccountError::Exists(_))
    ));
    let (link, account) = accounts::open_link(&mut conn, T0, &token).unwrap().unwrap();
    assert_eq!(account.name, "erika");
    assert!(matches!(
        accounts::complete_setup(&mut conn, &KEY, T0, &link, "123456"),
        Err(SetupError::NotStarted)
    ));
    let secret = accounts::choose_password(&mut conn, &KEY, T0, &link, HASH)
        .unwrap()
        .unwrap();
    let (link, _) = accounts::open_link(&mut conn, T0, &token).unwrap().unwrap();
    assert!(matches!(
        accounts::complete_setup(&mut conn, &KEY, T0, &link, "000000"),
        Err(SetupError::WrongCode)
    ));
    assert!(
        !accounts::find(&mut conn, "erika")
            .unwrap()
            .unwrap()
            .is_set_up()
    );
    // The offered secret expires.
    let late = T0 + accounts::ENROL_TTL_SECS;
    assert!(matches!(
        accounts::complete_setup(&mut conn, &KEY, late, &link, &totp::code_at(&secret, late)),
        Err(SetupError::NotStarted)
    ));
    accounts::complete_setup(&mut conn, &KEY, T0, &link, &totp::code_at(&secret, T0)).unwrap();
    let a = accounts::find(&mut conn, "erika").unwrap().unwrap();
    assert!(a.is_set_up());
    assert_eq!(
        accounts::totp_secret(&KEY, &a).unwrap().to_vec(),
        secret.to_vec()
    );
    assert!(
        accounts::totp_secret(&[8; 32], &a).is_none(),
        "sealed with the key"
    );
    let (log, _) = audit::page(&mut conn, None).unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["operator.setup", "operator.add"]);
}

#[test]
fn sign_in_takes_each_code_once_and_locks_after_the_idps_threshold() {
    let (_d, mut conn) = db();
    let secret = set_up(&mut conn, "erika");
    let s = IdpSettings::default();
    let now = T0 + 60;
    let attempt = |conn: &mut SqliteConnection, ok: bool, code: &str| {
        let a = signin::begin(conn, &s, now, "erika", "10.0.0.1").unwrap()?;
        signin::finish(conn, &s, &KEY, now, &a, ok, code).unwrap()
    };
    let code = totp::code_at(&secret, now);
    assert!(attempt(&mut conn, true, &code).is_ok());
    assert_eq!(
        attempt(&mut conn, true, &code),
        Err(signin::Refusal::Wrong),
        "once"
    );
    for _ in 1..s.lockout_threshold {
        assert_eq!(
            attempt(&mut conn, false, "000000"),
            Err(signin::Refusal::Wrong)
        );
    }
    assert_eq!(
        attempt(&mut conn, false, "000000"),
        Err(signin::Refusal::Locked)
    );
    let next = totp::code_for_step(&secret, totp::step_at(now) + 1);
    assert_eq!(
        attempt(&mut conn, true, &next),
        Err(signin::Refusal::Locked)
    );
    // Another address is not locked out of the account by this one.
    let a = signin::begin(&mut conn, &s, now, "erika", "10.0.0.2")
        .unwrap()
        .unwrap();
    assert!(
        signin::finish(&mut conn, &s, &KEY, now, &a, true, &next)
            .unwrap()
            .is_ok()
    );
}

#[test]
fn sessions_end_when_idle_too_old_or_suspended() {
    let (_d, mut conn) = db();
    set_up(&mut conn, "erika");
    let id = accounts::find(&mut conn, "erika").unwrap().unwrap().id;
    let token = sessions::create(&mut conn, T0, id).unwrap();
    let mut t = T0;
    // Used every 20 minutes it lives until the absolute limit.
    while t + 20 * 60 < T0 + sessions::ABSOLUTE_SECS {
        t += 20 * 60;
        assert!(
            sessions::lookup(&mut conn, t, &token).unwrap().is_some(),
            "{t}"
        );
    }
    assert!(
        sessions::lookup(&mut conn, T0 + sessions::ABSOLUTE_SECS, &token)
            .unwrap()
            .is_none()
    );
    let token = sessions::create(&mut conn, T0, id).unwrap();
    assert!(
        sessions::lookup(&mut conn, T0 + sessions::IDLE_SECS, &token)
            .unwrap()
            .is_none()
    );
    let token = sessions::create(&mut conn, T0, id).unwrap();
    accounts::set_suspended(&mut conn, T0, CLI, "erika", true).unwrap();
    assert!(sessions::lookup(&mut conn, T0, &token).unwrap().is_none());
    assert!(matches!(
        accounts::set_suspended(&mut conn, T0, CLI, "erika", true),
        Err(AccountError::WrongStatus { .. })
    ));
}
