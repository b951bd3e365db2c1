//! The roster tool's sessions: in memory, keyed by a random cookie value, bounded.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openidconnect::CsrfToken;

use super::oidc::{Pending, Person};

/// How long a started sign-in may take.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// How long a signed-in session lasts.
const SIGNED_TTL: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions are kept; the oldest go first.
const MAX_SESSIONS: usize = 1000;

enum Stage {
    Pending(Pending),
    Signed(Person),
}

struct Entry {
    at: Instant,
    /// The token of the sign-out form.
    csrf: String,
    stage: Stage,
}

impl Entry {
    fn live(&self) -> bool {
        let ttl = match self.stage {
            Stage::Pending(_) => PENDING_TTL,
            Stage::Signed(_) => SIGNED_TTL,
        };
        self.at.elapsed() < ttl
    }
}

/// The outcome of a sign-out request.
#[derive(Debug, PartialEq, Eq)]
pub enum SignOut {
    Done,
    NoSession,
    WrongToken,
}

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Entry>>,
}

fn random() -> String {
    CsrfToken::new_random_len(32).secret().clone()
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, stage: Stage) -> String {
        let mut map = self.lock();
        map.retain(|_, e| e.live());
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone()) else {
                break;
            };
            map.remove(&oldest);
        }
        let id = random();
        map.insert(
            id.clone(),
            Entry {
                at: Instant::now(),
                csrf: random(),
                stage,
            },
        );
        id
    }

    /// A new session waiting for the IdP's answer; its id.
    pub fn begin(&self, pending: Pending) -> String {
        self.insert(Stage::Pending(pending))
    }

    /// The pending sign-in of session `id` if `state` is the one it sent, removed (a
    /// sign-in answer counts once). A session that is not pending is left alone.
    pub fn take_pending(&self, id: &str, state: &str) -> Option<Pending> {
        let mut map = self.lock();
        let matches = map
            .get(id)
            .is_some_and(|e| e.live() && matches!(&e.stage, Stage::Pending(p) if p.state == state));
        if !matches {
            return None;
        }
        match map.remove(id).map(|e| e.stage) {
            Some(Stage::Pending(p)) => Some(p),
            _ => None,
        }
    }

    /// Drops session `id` (a sign-in that failed or was declined).
    pub fn drop_session(&self, id: &str) {
        self.lock().remove(id);
    }

    /// A signed-in session for `person` under a new id (never the pending one's).
    pub fn sign_in(&self, person: Person) -> String {
        self.insert(Stage::Signed(person))
    }

    /// Who is signed in with session `id`, and the sign-out form's token.
    pub fn person(&self, id: &str) -> Option<(Person, String)> {
        let map = self.lock();
        let e = map.get(id).filter(|e| e.live())?;
        match &e.stage {
            Stage::Signed(p) => Some((p.clone(), e.csrf.clone())),
            Stage::Pending(_) => None,
        }
    }

    /// Ends signed-in session `id` if `token` is its form token.
    pub fn end(&self, id: &str, token: &str) -> SignOut {
        let mut map = self.lock();
        match map.get(id) {
            Some(e) if matches!(e.stage, Stage::Signed(_)) && e.live() => {
                if e.csrf.as_bytes() != token.as_bytes() {
                    return SignOut::WrongToken;
                }
                map.remove(id);
                SignOut::Done
            }
            _ => SignOut::NoSession,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Person {
        Person {
            name: "Dr. Ines Inhaber".into(),
            roles: vec!["Praxisleitung".into()],
            admin: true,
            specialty: None,
            kv_region: None,
            practice: None,
        }
    }

    #[test]
    fn a_sign_in_answer_counts_once_and_only_with_its_state() {
        let s = Sessions::default();
        let pending = Pending::for_test("st-1");
        let id = s.begin(pending);
        assert!(s.take_pending(&id, "other").is_none());
        assert!(s.take_pending("unknown", "st-1").is_none());
        assert!(s.take_pending(&id, "st-1").is_some());
        assert!(s.take_pending(&id, "st-1").is_none(), "single use");
    }

    #[test]
    fn signing_out_needs_the_forms_token() {
        let s = Sessions::default();
        let id = s.sign_in(person());
        let (p, token) = s.person(&id).unwrap();
        assert_eq!(p.name, "Dr. Ines Inhaber");
        assert_eq!(s.end(&id, "wrong"), SignOut::WrongToken);
        assert!(s.person(&id).is_some(), "still signed in");
        assert_eq!(s.end(&id, &token), SignOut::Done);
        assert!(s.person(&id).is_none());
        assert_eq!(s.end(&id, &token), SignOut::NoSession);
    }

    #[test]
    fn the_store_is_bounded() {
        let s = Sessions::default();
        let first = s.sign_in(person());
        for _ in 0..MAX_SESSIONS {
            s.sign_in(person());
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        assert!(s.person(&first).is_none(), "the oldest went first");
    }
}
