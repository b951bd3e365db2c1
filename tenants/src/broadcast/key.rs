//! The operator's Ed25519 key: the private half signs the feed (`data/operator.key`, or a
//! configured file, 32 bytes as hex, mode 0600 like the node key), the public half is
//! configured on every node (standard base64 of its 32 bytes).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::secrets::{self, SecretsError};

/// The operator's signing key. Never printed: `Debug` is redacted.
pub struct OperatorKey {
    key: SigningKey,
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorKey(<redacted>)")
    }
}

impl OperatorKey {
    /// Where the key lives unless configured otherwise.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("operator.key")
    }

    /// Loads the key at `path`, creating it (mode 0600) on first use. Refuses a file that
    /// group or others may access.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretsError> {
        let seed = secrets::load_or_create_key_file(path)?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A fresh key that is kept nowhere (tests, other operators in tests).
    pub fn generate() -> Self {
        let mut seed = secrets::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }
}

/// The operator's public key, as every node is configured with it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A configured public key that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Ed25519 public key: expected the base64 of 32 bytes, as the operator prints it")]
pub struct BadPublicKey;

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, BadPublicKey> {
        let raw = B64.decode(text.trim()).map_err(|_| BadPublicKey)?;
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| BadPublicKey)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| BadPublicKey)?;
        if key.is_weak() {
            return Err(BadPublicKey);
        }
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    /// Strict verification (no malleable signatures, no weak keys).
    pub(crate) fn verifies(&self, msg: &[u8], sig: &Signature) -> bool {
        self.0.verify_strict(msg, sig).is_ok()
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_key_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = OperatorKey::default_path(&dir.path().join("data"));
        let k1 = OperatorKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = OperatorKey::load_or_create(&path).unwrap();
        assert_eq!(k1.public(), k2.public());
        assert_ne!(k1.public(), OperatorKey::generate().public());
        assert!(!format!("{k1:?}").contains(&k1.public().to_base64()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = OperatorKey::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn public_keys_round_trip_through_base64_and_garbage_is_refused() {
        let k = OperatorKey::generate().public();
        assert_eq!(PublicKey::parse(&k.to_base64()).unwrap(), k);
        assert_eq!(PublicKey::parse(&format!(" {k}\n")).unwrap(), k);
        for bad in ["", "abc", &B64.encode([1u8; 31]), &B64.encode([0u8; 32])] {
            assert_eq!(PublicKey::parse(bad), Err(BadPublicKey), "{bad:?}");
        }
    }
}
