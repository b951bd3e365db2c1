//! The practice's signing keys: an RS256 key (RSA-2048) and an ES256 key (P-256); a
//! client's tokens are signed with the key of its `signing_alg`. The private halves are
//! stored in `signing_keys` wrapped with the node key (XChaCha20-Poly1305, bound to
//! practice slug and key id), the public halves as JWKs. Per algorithm, the newest key
//! without `retired_at` signs; every key whose `publish_until` has not passed is published
//! in the JWKS and accepted when verifying, so tokens signed before a rotation stay
//! verifiable until they expire. Practices created before ES256 existed get their ES256 key
//! when it is first needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use diesel::prelude::*;
use kollegium_tenants::UnixTime;
use kollegium_tenants::secrets::NodeKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jwt::{Alg, Signer256, Verifier256, VerifyingKey256};
use crate::schema::signing_keys;

pub const KEY_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("rsa: {0}")]
    Rsa(String),
    #[error("ecdsa: {0}")]
    Ec(String),
    #[error("signing key cannot be unwrapped (wrong node key or tampered data)")]
    Unwrap,
    #[error("the practice has no signing key")]
    NoKey,
}

impl From<KeyError> for crate::error::IdpError {
    fn from(e: KeyError) -> Self {
        Self::internal("reading the signing key", e)
    }
}

fn wrap_context(slug: &str, kid: &str) -> String {
    format!("kollegium signing key v1|{slug}|{kid}")
}

/// The RFC 7638 thumbprint of an RSA public key: its key id.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// The RFC 7638 thumbprint of a P-256 public key: its key id.
fn ec_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// Generates a key pair of each algorithm and stores them as the signing keys. Returns
/// the key id of the RS256 key.
pub fn generate(
    conn: &mut SqliteConnection,
    node_key: &NodeKey,
    slug: &str,
    now: UnixTime,
) -> Result<String, KeyError> {
    let kid = generate_one(conn, node_key, slug, now, Alg::Rs256)?;
    generate_one(conn, node_key, slug, now, Alg::Es256)?;
    Ok(kid)
}

/// Generates one key pair of `alg` and stores it. Returns its key id.
fn generate_one(
    conn: &mut SqliteConnection,
    node_key: &NodeKey,
    slug: &str,
    now: UnixTime,
    alg: Alg,
) -> Result<String, KeyError> {
    let (kid, der, jwk) = match alg {
        Alg::Rs256 => {
            // aws-lc-rs: its prime search took a few ms here where the pure-Rust `rsa` crate
            // took 77-750 ms (90 % of creating a practice). Stored as before: PKCS#8 DER.
            let (der, public) = generate_rsa()?;
            let n = B64.encode(public.n().to_bytes_be());
            let e = B64.encode(public.e().to_bytes_be());
            let kid = thumbprint(&n, &e);
            let jwk = serde_json::json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e,
            });
            (kid, der, jwk)
        }
        Alg::Es256 => {
            let der = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .map_err(|e| KeyError::Ec(e.to_string()))?
            .as_ref()
            .to_vec();
            let signer = Signer256::from_pkcs8_es256(String::new(), &der).map_err(KeyError::Ec)?;
            let point = signer
                .ec_public_point()
                .filter(|p| p.len() == 65)
                .ok_or_else(|| KeyError::Ec("unexpected public key".into()))?;
            let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..]));
            let kid = ec_thumbprint(&x, &y);
            let jwk = serde_json::json!({
                "kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
                "x": x, "y": y,
            });
            (kid, der, jwk)
        }
    };
    let wrapped = node_key.wrap(&wrap_context(slug, &kid), &der);
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(&kid),
            signing_keys::alg.eq(alg.as_str()),
            signing_keys::private_wrapped.eq(wrapped),
            signing_keys::public_jwk.eq(jwk.to_string()),
            signing_keys::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(kid)
}

/// A new RSA key pair of [`KEY_BITS`]: the private key as PKCS#8 DER (the stored format)
/// and the public key.
fn generate_rsa() -> Result<(Vec<u8>, RsaPublicKey), KeyError> {
    let err = |e: &dyn std::fmt::Display| KeyError::Rsa(e.to_string());
    let size = match KEY_BITS {
        2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
        3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
        _ => aws_lc_rs::rsa::KeySize::Rsa4096,
    };
    let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| err(&e))?;
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair)
        .map_err(|e| err(&e))?
        .as_ref()
        .to_vec();
    // The public half as PKCS#1 `RSAPublicKey` DER.
    let public = RsaPublicKey::from_pkcs1_der(pair.public_key().as_ref()).map_err(|e| err(&e))?;
    Ok((der, public))
}

/// Adds a new signing key of each algorithm; earlier keys stop signing and stay published
/// for `overlap_secs` (at least the lifetime of any token they signed). Returns the new
/// RS256 key id.
pub fn rotate(
    conn: &mut SqliteConnection,
    node_key: &NodeKey,
    slug: &str,
    now: UnixTime,
    overlap_secs: i64,
) -> Result<String, KeyError> {
    let kid = generate_one(conn, node_key, slug, now, Alg::Rs256)?;
    let ec_kid = generate_one(conn, node_key, slug, now, Alg::Es256)?;
    diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.ne(&kid))
            .filter(signing_keys::kid.ne(&ec_kid))
            .filter(signing_keys::retired_at.is_null()),
    )
    .set((
        signing_keys::retired_at.eq(now),
        signing_keys::publish_until.eq(now + overlap_secs),
    ))
    .execute(conn)?;
    Ok(kid)
}

/// Unwrapped signing keys, cached per practice and key id (unwrapping and parsing costs
/// more than signing).
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, Arc<Signer256>>>);

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache(<redacted>)")
    }
}

/// The current RS256 signing key of the practice (RS256 keys are never made lazily, so no
/// time is needed).
pub fn active(
    conn: &mut SqliteConnection,
    node_key: &NodeKey,
    slug: &str,
    cache: &KeyCache,
) -> Result<Arc<Signer256>, KeyError> {
    active_of(conn, node_key, slug, cache, Alg::Rs256, 0)
}

/// The current signing key of `alg`. A practice without an ES256 key (created before they
/// existed) gets one here, created at `now` and published beside its RS256 key.
pub fn active_of(
    conn: &mut SqliteConnection,
    node_key: &NodeKey,
    slug: &str,
    cache: &KeyCache,
    alg: Alg,
    now: UnixTime,
) -> Result<Arc<Signer256>, KeyError> {
    let current = |conn: &mut SqliteConnection| {
        signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .filter(signing_keys::alg.eq(alg.as_str()))
            .order((signing_keys::created_at.desc(), signing_keys::kid))
            .select((signing_keys::kid, signing_keys::private_wrapped))
            .first::<(String, String)>(conn)
            .optional()
    };
    let (kid, wrapped) = match (current(conn)?, alg) {
        (Some(found), _) => found,
        (None, Alg::Rs256) => return Err(KeyError::NoKey),
        (None, Alg::Es256) => {
            generate_one(conn, node_key, slug, now, Alg::Es256)?;
            current(conn)?.ok_or(KeyError::NoKey)?
        }
    };
    let cache_key = format!("{slug}|{kid}");
    if let Ok(c) = cache.0.lock()
        && let Some(k) = c.get(&cache_key)
    {
        return Ok(Arc::clone(k));
    }
    let der = node_key
        .unwrap_secret(&wrap_context(slug, &kid), &wrapped)
        .map_err(|_| KeyError::Unwrap)?;
    let signer = Arc::new(match alg {
        Alg::Rs256 => Signer256::from_pkcs8(kid, &der).map_err(KeyError::Rsa)?,
        Alg::Es256 => Signer256::from_pkcs8_es256(kid, &der).map_err(KeyError::Ec)?,
    });
    if let Ok(mut c) = cache.0.lock() {
        if c.len() > 4096 {
            c.clear();
        }
        c.insert(cache_key, Arc::clone(&signer));
    }
    Ok(signer)
}

/// Public JWKs of every published key.
pub fn published_jwks(conn: &mut SqliteConnection, now: UnixTime) -> QueryResult<Vec<Value>> {
    let rows: Vec<String> = signing_keys::table
        .filter(
            signing_keys::publish_until
                .is_null()
                .or(signing_keys::publish_until.gt(now)),
        )
        .order(signing_keys::created_at.desc())
        .select(signing_keys::public_jwk)
        .load(conn)?;
    Ok(rows
        .iter()
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect())
}

/// The JWKS document.
pub fn jwks(conn: &mut SqliteConnection, now: UnixTime) -> QueryResult<Value> {
    Ok(serde_json::json!({ "keys": published_jwks(conn, now)? }))
}

/// Keys that verify tokens of this practice (the published ones).
pub fn verifiers(conn: &mut SqliteConnection, now: UnixTime) -> QueryResult<Vec<Verifier256>> {
    Ok(published_jwks(conn, now)?
        .iter()
        .filter_map(verifier_of)
        .collect())
}

fn verifier_of(jwk: &Value) -> Option<Verifier256> {
    let field = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
    };
    let key = match jwk.get("kty")?.as_str()? {
        "RSA" => VerifyingKey256::Rsa(
            RsaPublicKey::new(
                BigUint::from_bytes_be(&field("n")?),
                BigUint::from_bytes_be(&field("e")?),
            )
            .ok()?,
        ),
        "EC" if jwk.get("crv")?.as_str()? == "P-256" => {
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(4u8);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            VerifyingKey256::Ec(point)
        }
        _ => return None,
    };
    Some(Verifier256 {
        kid: jwk.get("kid")?.as_str()?.to_owned(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::jwt::{self, JwtError, TYP_ACCESS_TOKEN};

    fn db() -> (tempfile::TempDir, SqliteConnection, NodeKey) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
        kollegium_tenants::db::migrate(&mut conn, &crate::IDP_DB, &path).unwrap();
        let node = NodeKey::load_or_create(dir.path()).unwrap();
        (dir, conn, node)
    }

    #[test]
    fn a_generated_rsa_key_is_stored_and_signs_tokens_that_verify() {
        let (_d, mut conn, node) = db();
        let kid = generate(&mut conn, &node, "praxis-a", 1_000).unwrap();
        let cache = KeyCache::default();
        let signer = active(&mut conn, &node, "praxis-a", &cache).unwrap();
        assert_eq!(signer.kid, kid);
        assert_eq!(signer.alg(), Alg::Rs256);
        let claims = serde_json::json!({"iss": "https://a/id", "sub": "u", "exp": 2_000});
        let token = jwt::sign(&signer, TYP_ACCESS_TOKEN, &claims).unwrap();
        // Verified with the published JWK (n, e), as relying parties do.
        let keys = verifiers(&mut conn, 1_000).unwrap();
        assert_eq!(keys.len(), 2, "an RS256 and an ES256 key are published");
        assert_eq!(
            jwt::verify(&token, &keys, TYP_ACCESS_TOKEN).unwrap(),
            claims
        );
        // The key id is the RFC 7638 thumbprint of the published key.
        let jwks = published_jwks(&mut conn, 1_000).unwrap();
        let rsa = jwks.iter().find(|k| k["kty"] == "RSA").unwrap();
        let (n, e) = (rsa["n"].as_str().unwrap(), rsa["e"].as_str().unwrap());
        assert_eq!(thumbprint(n, e), kid);
        assert_eq!(e, "AQAB");
        assert_eq!(B64.decode(n).unwrap().len(), KEY_BITS / 8);
        // Another practice's key does not verify it.
        let (_d2, mut other, node2) = db();
        generate(&mut other, &node2, "praxis-b", 1_000).unwrap();
        let mut foreign = verifiers(&mut other, 1_000).unwrap();
        for k in &mut foreign {
            k.kid = kid.clone();
        }
        assert!(matches!(
            jwt::verify(&token, &foreign, TYP_ACCESS_TOKEN),
            Err(JwtError::Signature | JwtError::Algorithm)
        ));
    }

    #[test]
    fn keys_stored_by_the_rsa_crate_still_load() {
        use rsa::pkcs8::EncodePrivateKey;
        // The format practices created before the switch keep in `signing_keys`.
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS).unwrap();
        let der = private.to_pkcs8_der().unwrap();
        let legacy = Signer256::from_pkcs8("old".into(), der.as_bytes()).unwrap();
        let (new_der, _) = generate_rsa().unwrap();
        assert!(Signer256::from_pkcs8("new".into(), &new_der).is_ok());
        // Both are PKCS#8 `PrivateKeyInfo` with the rsaEncryption algorithm.
        let rsa_oid = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ];
        for d in [der.as_bytes(), new_der.as_slice()] {
            assert!(d.windows(rsa_oid.len()).any(|w| w == rsa_oid));
        }
        let claims = serde_json::json!({"sub": "u"});
        let public = private.to_public_key();
        let v = jwt::Verifier256 {
            kid: "old".into(),
            key: jwt::VerifyingKey256::Rsa(public),
        };
        let t = jwt::sign(&legacy, TYP_ACCESS_TOKEN, &claims).unwrap();
        assert_eq!(jwt::verify(&t, &[v], TYP_ACCESS_TOKEN).unwrap(), claims);
    }
}
