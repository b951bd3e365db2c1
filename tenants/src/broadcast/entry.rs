//! Feed entries: the signed payload's types, signing, and the checks every node applies
//! (the format is described in the module above).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use super::key::{OperatorKey, PublicKey};
use crate::catalog::{self, Entry as CatalogEntry};
use crate::clock::UnixTime;

/// What every signature covers before the payload's bytes.
pub const DOMAIN: &[u8] = b"kollegium-broadcast-v1\n";
/// Largest message body (Markdown), in bytes.
pub const MAX_BODY_BYTES: usize = 20_000;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Largest payload a node reads at all, in bytes (a body at its limit fits easily).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most ids in one audience set.
pub const MAX_AUDIENCE_IDS: usize = 64;

/// One entry of the feed as it travels: the payload's text and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: i64,
    pub payload: String,
    pub sig: String,
}

/// A message's id: 16 random bytes as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

impl MessageId {
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::MessageId(s.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MessageId {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.0
    }
}

/// Who a message is for: ids of the shared catalogue; an empty set means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    pub specialties: Vec<String>,
    pub roles: Vec<String>,
    pub kv_regions: Vec<String>,
}

impl Audience {
    /// Whether a member with these claims is in the audience: every non-empty set contains
    /// one of the member's values (DESIGN.md "Broadcasts"). A member without a specialty or
    /// KV region is outside any message that names specialties or KV regions.
    pub fn matches(
        &self,
        specialty: Option<&str>,
        roles: &[String],
        kv_region: Option<&str>,
    ) -> bool {
        let one = |set: &[String], value: Option<&str>| {
            set.is_empty() || value.is_some_and(|v| set.iter().any(|s| s == v))
        };
        one(&self.specialties, specialty)
            && one(&self.kv_regions, kv_region)
            && (self.roles.is_empty() || roles.iter().any(|r| self.roles.contains(r)))
    }

    /// Every id is known to the catalogue, and no set is absurdly long.
    pub fn check(&self) -> Result<(), Invalid> {
        let sets: [(&'static str, &[String], &[CatalogEntry]); 3] = [
            ("specialty", &self.specialties, catalog::SPECIALTIES),
            ("role", &self.roles, catalog::ROLES),
            ("kv_region", &self.kv_regions, catalog::KV_REGIONS),
        ];
        for (set, ids, list) in sets {
            if ids.len() > MAX_AUDIENCE_IDS {
                return Err(Invalid::AudienceTooLarge { set });
            }
            if let Some(id) = ids.iter().find(|id| catalog::find(list, id).is_none()) {
                return Err(Invalid::UnknownId {
                    set,
                    id: id.chars().take(64).collect(),
                });
            }
        }
        Ok(())
    }
}

/// A signed payload: its place in the feed and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub seq: i64,
    #[serde(flatten)]
    pub item: Item,
}

/// What an entry says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Item {
    Message(MessagePayload),
    Retraction(RetractionPayload),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePayload {
    pub id: MessageId,
    pub published_at: UnixTime,
    pub valid_until: Option<UnixTime>,
    pub title: String,
    pub body: String,
    pub pinned: bool,
    pub audience: Audience,
}

impl MessagePayload {
    /// Title and body within their limits, the audience known to the catalogue.
    pub fn check(&self) -> Result<(), Invalid> {
        let title = self.title.trim();
        if title.is_empty() {
            return Err(Invalid::EmptyTitle);
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(Invalid::TitleTooLong);
        }
        if self.title.chars().any(char::is_control) {
            return Err(Invalid::TitleControl);
        }
        if self.body.trim().is_empty() {
            return Err(Invalid::EmptyBody);
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(Invalid::BodyTooLong {
                bytes: self.body.len(),
            });
        }
        self.audience.check()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetractionPayload {
    pub retracts: MessageId,
    pub published_at: UnixTime,
}

/// Why a message's content is not acceptable (at publishing, and again at every node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the title is empty")]
    EmptyTitle,
    #[error("the title is longer than {MAX_TITLE_CHARS} characters")]
    TitleTooLong,
    #[error("the title contains control characters (line breaks, tabs)")]
    TitleControl,
    #[error("the body is empty")]
    EmptyBody,
    #[error("the body has {bytes} bytes; at most {MAX_BODY_BYTES} are allowed")]
    BodyTooLong { bytes: usize },
    #[error("unknown {set} id {id:?}: not in the catalogue (tenants/src/catalog.rs)")]
    UnknownId { set: &'static str, id: String },
    #[error("more than {MAX_AUDIENCE_IDS} ids in the {set} set")]
    AudienceTooLarge { set: &'static str },
    #[error("{0:?} is not a message id (32 lowercase hex digits)")]
    MessageId(String),
}

/// Why a node refused an entry. The text is what the refusal log keeps: stable for the
/// same entry, so a refusal is recorded once, not at every round.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed feed page: {0}")]
    MalformedPage(String),
    #[error("malformed entry: {0}")]
    MalformedEntry(String),
    #[error("replayed entry: seq {seq} is not after the last verified seq {last}")]
    Replayed { seq: i64, last: i64 },
    #[error("out of order: seq {seq} where {expected} was expected")]
    OutOfOrder { seq: i64, expected: i64 },
    #[error("payload larger than {MAX_PAYLOAD_BYTES} bytes")]
    Oversized,
    #[error("bad signature: not signed by the configured operator key")]
    BadSignature,
    #[error("malformed payload: {0}")]
    MalformedPayload(String),
    #[error("the payload's seq {payload} differs from the entry's seq {entry}")]
    SeqMismatch { entry: i64, payload: i64 },
    #[error("invalid message: {0}")]
    Invalid(#[from] Invalid),
    #[error("retraction of unknown message {0}")]
    UnknownMessage(MessageId),
    #[error("message id {0} was used before")]
    DuplicateMessage(MessageId),
}

fn signed_bytes(payload: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + payload.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(payload.as_bytes());
    msg
}

impl Entry {
    /// Signs `payload` as entry `seq` (the operator side).
    pub fn sign(key: &OperatorKey, payload: &Payload) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(payload)?;
        Ok(Self::sign_text(key, payload.seq, text))
    }

    /// Signs a payload's text as it is (tests forge malformed payloads with it).
    pub fn sign_text(key: &OperatorKey, seq: i64, payload: String) -> Self {
        let sig = key.sign(&signed_bytes(&payload));
        Self {
            seq,
            payload,
            sig: B64.encode(sig.to_bytes()),
        }
    }

    /// Parses an entry as a node receives it.
    pub fn from_json(value: serde_json::Value) -> Result<Self, Refusal> {
        serde_json::from_value(value).map_err(|e| Refusal::MalformedEntry(e.to_string()))
    }

    /// The checks that need nothing but the entry and the key: the signature over the
    /// payload's bytes, the payload's schema and seq, sizes and catalogue ids. Which seq
    /// comes next and which messages exist is the node's part ([`super::NodeFeed`]).
    pub fn verify(&self, key: &PublicKey) -> Result<Payload, Refusal> {
        if self.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Refusal::Oversized);
        }
        let raw = B64
            .decode(self.sig.trim())
            .map_err(|_| Refusal::BadSignature)?;
        let sig = Signature::from_slice(&raw).map_err(|_| Refusal::BadSignature)?;
        if !key.verifies(&signed_bytes(&self.payload), &sig) {
            return Err(Refusal::BadSignature);
        }
        let payload: Payload = serde_json::from_str(&self.payload)
            .map_err(|e| Refusal::MalformedPayload(e.to_string()))?;
        if payload.seq != self.seq {
            return Err(Refusal::SeqMismatch {
                entry: self.seq,
                payload: payload.seq,
            });
        }
        if let Item::Message(m) = &payload.item {
            m.check()?;
        }
        Ok(payload)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn message(seq: i64, audience: Audience) -> Payload {
        Payload {
            seq,
            item: Item::Message(MessagePayload {
                id: MessageId::random(),
                published_at: 1_800_000_000,
                valid_until: None,
                title: "Abrechnungstipp".into(),
                body: "Die **GOP 03230** ist ab Januar neu bewertet.".into(),
                pinned: false,
                audience,
            }),
        }
    }

    #[test]
    fn a_signed_entry_verifies_with_its_key_only() {
        let key = OperatorKey::generate();
        let other = OperatorKey::generate();
        let payload = message(1, Audience::default());
        let entry = Entry::sign(&key, &payload).unwrap();
        assert_eq!(entry.verify(&key.public()).unwrap(), payload);
        assert_eq!(
            entry.verify(&other.public()).unwrap_err(),
            Refusal::BadSignature
        );
        // The JSON text travels as it is: the payload string is what was signed.
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(Entry::from_json(json).unwrap(), entry);
        assert!(entry.payload.starts_with("{\"seq\":1,\"kind\":\"message\""));
    }

    #[test]
    fn the_signature_covers_the_domain_prefix() {
        let key = OperatorKey::generate();
        let payload = serde_json::to_string(&message(1, Audience::default())).unwrap();
        // A signature over the bare payload (no domain prefix) is not one of ours.
        let bare = key.sign(payload.as_bytes());
        let entry = Entry {
            seq: 1,
            payload,
            sig: B64.encode(bare.to_bytes()),
        };
        assert_eq!(
            entry.verify(&key.public()).unwrap_err(),
            Refusal::BadSignature
        );
    }

    #[test]
    fn an_audience_altered_after_signing_is_refused() {
        let key = OperatorKey::generate();
        let audience = Audience {
            kv_regions: vec!["kv-nordrhein".into()],
            ..Audience::default()
        };
        let mut entry = Entry::sign(&key, &message(1, audience)).unwrap();
        entry.payload = entry.payload.replace("kv-nordrhein", "kv-bayerns");
        assert_eq!(
            entry.verify(&key.public()).unwrap_err(),
            Refusal::BadSignature
        );
        let mut widened = Entry::sign(
            &key,
            &message(
                1,
                Audience {
                    roles: vec!["abrechnung".into()],
                    ..Audience::default()
                },
            ),
        )
        .unwrap();
        widened.payload = widened.payload.replace("[\"abrechnung\"]", "[]");
        assert_eq!(
            widened.verify(&key.public()).unwrap_err(),
            Refusal::BadSignature
        );
    }

    #[test]
    fn garbage_signatures_are_bad_signatures() {
        let key = OperatorKey::generate();
        let mut entry = Entry::sign(&key, &message(1, Audience::default())).unwrap();
        for sig in ["", "not base64!", "AAAA", &B64.encode([0u8; 64])] {
            entry.sig = sig.into();
            assert_eq!(
                entry.verify(&key.public()).unwrap_err(),
                Refusal::BadSignature,
                "{sig:?}"
            );
        }
    }

    #[test]
    fn unknown_catalogue_ids_are_refused_even_when_signed() {
        let key = OperatorKey::generate();
        for (audience, set, id) in [
            (
                Audience {
                    specialties: vec!["zauberei".into()],
                    ..Audience::default()
                },
                "specialty",
                "zauberei",
            ),
            (
                Audience {
                    roles: vec!["mfa".into(), "chef".into()],
                    ..Audience::default()
                },
                "role",
                "chef",
            ),
            (
                Audience {
                    kv_regions: vec!["kv-atlantis".into()],
                    ..Audience::default()
                },
                "kv_region",
                "kv-atlantis",
            ),
        ] {
            let entry = Entry::sign(&key, &message(1, audience)).unwrap();
            assert_eq!(
                entry.verify(&key.public()).unwrap_err(),
                Refusal::Invalid(Invalid::UnknownId { set, id: id.into() })
            );
        }
    }

    #[test]
    fn oversized_bodies_and_payloads_are_refused() {
        let key = OperatorKey::generate();
        let mut payload = message(1, Audience::default());
        let Item::Message(m) = &mut payload.item else {
            unreachable!()
        };
        m.body = "x".repeat(MAX_BODY_BYTES);
        assert!(
            Entry::sign(&key, &payload)
                .unwrap()
                .verify(&key.public())
                .is_ok()
        );
        let Item::Message(m) = &mut payload.item else {
            unreachable!()
        };
        m.body.push('x');
        assert_eq!(
            Entry::sign(&key, &payload)
                .unwrap()
                .verify(&key.public())
                .unwrap_err(),
            Refusal::Invalid(Invalid::BodyTooLong {
                bytes: MAX_BODY_BYTES + 1
            })
        );
        let Item::Message(m) = &mut payload.item else {
            unreachable!()
        };
        m.body = "x".repeat(MAX_PAYLOAD_BYTES);
        assert_eq!(
            Entry::sign(&key, &payload)
                .unwrap()
                .verify(&key.public())
                .unwrap_err(),
            Refusal::Oversized
        );
    }

    #[test]
    fn malformed_payloads_and_entries_are_refused() {
        let key = OperatorKey::generate();
        let public = key.public();
        let refused = |text: &str| Entry::sign_text(&key, 1, text.into()).verify(&public);
        assert!(matches!(
            refused("{not json"),
            Err(Refusal::MalformedPayload(_))
        ));
        assert!(matches!(
            refused(r#"{"seq":1,"kind":"poll","id":"x"}"#),
            Err(Refusal::MalformedPayload(_))
        ));
        assert!(matches!(
            refused(r#"{"seq":1,"kind":"retraction","retracts":"../etc","published_at":1}"#),
            Err(Refusal::MalformedPayload(_))
        ));
        assert!(matches!(
            refused(r#"{"seq":1,"kind":"message","title":"ohne Rest"}"#),
            Err(Refusal::MalformedPayload(_))
        ));
        let moved = Entry::sign(&key, &message(2, Audience::default())).unwrap();
        let renumbered = Entry { seq: 3, ..moved };
        assert_eq!(
            renumbered.verify(&public).unwrap_err(),
            Refusal::SeqMismatch {
                entry: 3,
                payload: 2
            }
        );
        for bad in [
            serde_json::json!("entry"),
            serde_json::json!({"seq": 1, "payload": {"seq": 1}, "sig": ""}),
            serde_json::json!({"seq": "1", "payload": "{}", "sig": ""}),
            serde_json::json!({"payload": "{}", "sig": ""}),
        ] {
            assert!(
                matches!(
                    Entry::from_json(bad.clone()),
                    Err(Refusal::MalformedEntry(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_retraction_round_trips() {
        let key = OperatorKey::generate();
        let payload = Payload {
            seq: 4,
            item: Item::Retraction(RetractionPayload {
                retracts: MessageId::random(),
                published_at: 1_800_000_100,
            }),
        };
        let entry = Entry::sign(&key, &payload).unwrap();
        assert_eq!(entry.verify(&key.public()).unwrap(), payload);
        assert!(entry.payload.contains("\"kind\":\"retraction\""));
    }

    #[test]
    fn audience_matching_needs_a_value_in_every_non_empty_set() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let a = |sp: &[&str], ro: &[&str], kv: &[&str]| Audience {
            specialties: ids(sp),
            roles: ids(ro),
            kv_regions: ids(kv),
        };
        let mfa = ids(&["mfa"]);
        let billing = ids(&["abrechnung", "verwaltung"]);
        // (audience, specialty, roles, KV region, shown)
        type Case<'a> = (
            Audience,
            Option<&'a str>,
            &'a [String],
            Option<&'a str>,
            bool,
        );
        let cases: &[Case<'_>] = &[
            (a(&[], &[], &[]), None, &[], None, true),
            (a(&[], &[], &["kv-nordrhein"]), None, &mfa, None, false),
            (
                a(&[], &[], &["kv-nordrhein"]),
                None,
                &mfa,
                Some("kv-nordrhein"),
                true,
            ),
            (
                a(&[], &[], &["kv-nordrhein", "kv-wl"]),
                None,
                &mfa,
                Some("kv-wl"),
                true,
            ),
            (
                a(&[], &[], &["kv-nordrhein"]),
                None,
                &mfa,
                Some("kv-bayerns"),
                false,
            ),
            (a(&[], &["abrechnung"], &[]), None, &mfa, None, false),
            (a(&[], &["abrechnung"], &[]), None, &billing, None, true),
            (a(&["urologie"], &[], &[]), None, &mfa, Some("kv-wl"), false),
            (
                a(&["urologie", "hno"], &["mfa"], &[]),
                Some("hno"),
                &mfa,
                None,
                true,
            ),
            (
                a(&["hno"], &["abrechnung"], &["kv-wl"]),
                Some("hno"),
                &billing,
                Some("kv-nordrhein"),
                false,
            ),
            // An id the catalogue does not know matches nobody who lacks it.
            (a(&[], &["gibt-es-nicht"], &[]), None, &billing, None, false),
        ];
        for (i, (aud, sp, roles, kv, want)) in cases.iter().enumerate() {
            assert_eq!(aud.matches(*sp, roles, *kv), *want, "case {i}: {aud:?}");
        }
    }
}
