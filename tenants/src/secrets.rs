//! The node key and the per-practice secrets it wraps.
//!
//! `data/node.key` (like the operator's broadcast key, `crate::broadcast::key`) holds 32 random bytes (hex), created with mode 0600 on first start.
//! Every practice has its own random secret, stored in the practice directory wrapped
//! (XChaCha20-Poly1305) with the node key and bound to the practice slug, so a copied
//! practice directory is useless without the node key and cannot be re-labelled.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
pub use zeroize::Zeroizing;

use crate::slug::Slug;

const WRAP_PREFIX: &str = "kw1.";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "key file {path} is readable by others (mode {mode:04o}); it must be 0600: chmod 600 {path}"
    )]
    Permissions { path: String, mode: u32 },
    #[error("cannot make {path} owner-only ({source}); fix it by hand: chmod -R go-rwx {path}")]
    DataMode {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} is malformed: {why}")]
    Malformed { path: String, why: &'static str },
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("wrapped secret cannot be opened (wrong node key, wrong practice or tampered data)")]
    Unwrap,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SecretsError + '_ {
    move |source| SecretsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Loads a 32-byte key kept as hex in `path` (the node key, the operator's broadcast key),
/// creating it from the system's random source (mode 0600, its directory owner-only) when
/// missing. Refuses a key file whose mode gives any access to group or others.
pub fn load_or_create_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::Permissions {
                    path: path.display().to_string(),
                    mode,
                });
            }
            let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
            let malformed = |why| SecretsError::Malformed {
                path: path.display().to_string(),
                why,
            };
            let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| malformed("not hex"))?);
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| malformed("not 32 bytes"))?;
            Ok(Zeroizing::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::perms::create_dir_all(dir).map_err(io_err(dir))?;
            }
            let mut key = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(key.as_mut());
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io_err(path))?;
            let text = Zeroizing::new(hex::encode(key.as_ref()));
            file.write_all(text.as_bytes()).map_err(io_err(path))?;
            file.write_all(b"\n").map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
            Ok(key)
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The node master key. Never printed: `Debug` is redacted.
pub struct NodeKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    /// Path of the node key inside a data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("node.key")
    }

    /// Loads `data/node.key`, creating it (mode 0600) when missing. Refuses a key file whose
    /// mode gives any access to group or others.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretsError> {
        Ok(Self {
            key: load_or_create_key_file(&Self::path_in(data_dir))?,
        })
    }

    #[cfg(test)]
    pub(crate) fn from_bytes(key: [u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(key),
        }
    }

    /// Encrypts `plaintext` bound to `context` (e.g. "practice-secret|<slug>").
    pub fn wrap(&self, context: &str, plaintext: &[u8]) -> String {
        seal(&self.key, context, plaintext)
    }

    /// A key for one `purpose` (e.g. the operator console's TOTP sealing or CSRF tokens),
    /// derived from the node key: `HMAC-SHA256(node key, "kollegium node subkey v1|" +
    /// purpose)`. The node key itself never leaves this type.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let msg = format!("kollegium node subkey v1|{purpose}");
        Zeroizing::new(hmac_sha256(self.key.as_ref(), msg.as_bytes()))
    }

    /// Decrypts what [`NodeKey::wrap`] produced with the same `context`.
    pub fn unwrap_secret(
        &self,
        context: &str,
        wrapped: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        open(&self.key, context, wrapped)
    }
}

/// Encrypts `plaintext` with XChaCha20-Poly1305 under `key`, bound to `context` (used as
/// associated data), as `kw1.<base64url(nonce || ciphertext)>`.
pub fn seal(key: &[u8; 32], context: &str, plaintext: &[u8]) -> String {
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key));
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encryption with a valid key and nonce cannot fail for in-memory buffers.
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    format!("{WRAP_PREFIX}{}", B64.encode(out))
}

/// Decrypts what [`seal`] produced with the same `key` and `context`.
pub fn open(
    key: &[u8; 32],
    context: &str,
    wrapped: &str,
) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
    let body = wrapped
        .trim()
        .strip_prefix(WRAP_PREFIX)
        .ok_or(SecretsError::Unwrap)?;
    let raw = B64.decode(body).map_err(|_| SecretsError::Unwrap)?;
    if raw.len() < 24 + 16 {
        return Err(SecretsError::Unwrap);
    }
    let (nonce, ct) = raw.split_at(24);
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key));
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: context.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SecretsError::Unwrap)
}

/// A practice's own secret, from which purpose-bound subkeys are derived.
#[derive(Clone)]
pub struct PracticeSecret {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PracticeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PracticeSecret(<redacted>)")
    }
}

pub const PRACTICE_SECRET_FILE: &str = "practice.key";

fn secret_context(slug: &Slug) -> String {
    format!("kollegium practice secret v1|{slug}")
}

impl PracticeSecret {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self { key }
    }

    /// Writes the secret wrapped with the node key to `<dir>/practice.key` (mode 0600).
    pub fn store(&self, node: &NodeKey, slug: &Slug, dir: &Path) -> Result<(), SecretsError> {
        let path = dir.join(PRACTICE_SECRET_FILE);
        let wrapped = node.wrap(&secret_context(slug), self.key.as_ref());
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(wrapped.as_bytes()).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))
    }

    pub fn load(node: &NodeKey, slug: &Slug, dir: &Path) -> Result<Self, SecretsError> {
        let path = dir.join(PRACTICE_SECRET_FILE);
        let wrapped = fs::read_to_string(&path).map_err(io_err(&path))?;
        let raw = node.unwrap_secret(&secret_context(slug), &wrapped)?;
        let key: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SecretsError::Unwrap)?;
        Ok(Self {
            key: Zeroizing::new(key),
        })
    }

    /// A 32-byte key for one purpose ("csrf", "session-cookie", ...).
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&hmac_sha256(self.key.as_ref(), purpose.as_bytes()));
        out
    }

    /// Encrypts `plaintext` under the purpose key `purpose`, bound to `context`. For data a
    /// practice's app stores (e.g. TOTP secrets): useless without this practice's secret,
    /// which in turn is useless without the node key.
    pub fn seal(&self, purpose: &str, context: &str, plaintext: &[u8]) -> String {
        seal(&self.derive(purpose), context, plaintext)
    }

    /// Decrypts what [`PracticeSecret::seal`] produced with the same purpose and context.
    pub fn open(
        &self,
        purpose: &str,
        context: &str,
        wrapped: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        open(&self.derive(purpose), context, wrapped)
    }
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// `n` random bytes, URL-safe base64 without padding (tokens, ids).
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    B64.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_key_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = NodeKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(NodeKey::path_in(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = NodeKey::load_or_create(dir.path()).unwrap();
        let w = k1.wrap("ctx", b"hello");
        assert_eq!(k2.unwrap_secret("ctx", &w).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn wide_mode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        NodeKey::load_or_create(dir.path()).unwrap();
        let path = NodeKey::path_in(dir.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeKey::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, SecretsError::Permissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn wrapped_secret_is_bound_to_its_context_and_key() {
        let k = NodeKey::from_bytes([7; 32]);
        let other = NodeKey::from_bytes([8; 32]);
        let w = k.wrap("practice|a", b"secret");
        assert!(k.unwrap_secret("practice|b", &w).is_err());
        assert!(other.unwrap_secret("practice|a", &w).is_err());
        let mut tampered = w.clone();
        tampered.pop();
        tampered.push('A');
        assert!(k.unwrap_secret("practice|a", &tampered).is_err() || tampered == w);
        assert!(!w.contains("secret"));
    }

    #[test]
    fn practice_sealed_data_is_bound_to_purpose_context_and_practice() {
        let a = PracticeSecret::generate();
        let b = PracticeSecret::generate();
        let w = a.seal("totp", "user:1", b"otp-secret");
        assert_eq!(
            a.open("totp", "user:1", &w).unwrap().as_slice(),
            b"otp-secret"
        );
        assert!(a.open("totp", "user:2", &w).is_err());
        assert!(a.open("other", "user:1", &w).is_err());
        assert!(b.open("totp", "user:1", &w).is_err());
        assert_ne!(
            w,
            a.seal("totp", "user:1", b"otp-secret"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn practice_secret_roundtrip_and_derivation() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeKey::from_bytes([1; 32]);
        let slug = Slug::parse("praxis-a").unwrap();
        let s = PracticeSecret::generate();
        s.store(&node, &slug, dir.path()).unwrap();
        let loaded = PracticeSecret::load(&node, &slug, dir.path()).unwrap();
        assert_eq!(*s.derive("csrf"), *loaded.derive("csrf"));
        assert_ne!(*s.derive("csrf"), *s.derive("cookie"));
        let other = Slug::parse("praxis-b").unwrap();
        assert!(PracticeSecret::load(&node, &other, dir.path()).is_err());
        let sealed = s.seal("oidc-client", "ctx", b"geheim");
        assert_eq!(
            loaded
                .open("oidc-client", "ctx", &sealed)
                .unwrap()
                .as_slice(),
            b"geheim"
        );
        assert!(loaded.open("other-purpose", "ctx", &sealed).is_err());
        assert!(loaded.open("oidc-client", "other", &sealed).is_err());
        assert!(
            PracticeSecret::generate()
                .open("oidc-client", "ctx", &sealed)
                .is_err()
        );
    }
}
