//! A peer's identity: an Ed25519 key pair. The peer id is derived from the
//! public key, and the server checks a signature over its challenge.

use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use switchboard_proto::{PeerId, encode_b64, hello_payload};

/// An Ed25519 key pair and the peer id derived from it.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

/// Why an identity file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing the file failed.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a 32-byte secret key.
    #[error("identity file {path} is not a Switchboard identity (expected 32 bytes)")]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
    },
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Self {
        Self::from_secret_bytes(rand::random())
    }

    /// The identity with this 32-byte secret key.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&secret) }
    }

    /// The 32-byte secret key, to store the identity elsewhere (keep it secret).
    pub fn to_secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Loads the identity stored at `path`, or creates one there (mode 0600 on Unix).
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        let io = |source| IdentityError::Io { path: path.to_owned(), source };
        match std::fs::read(path) {
            Ok(bytes) => {
                let secret: [u8; 32] =
                    bytes.try_into().map_err(|_| IdentityError::Corrupt { path: path.to_owned() })?;
                Ok(Self::from_secret_bytes(secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                file.write_all(&identity.key.to_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(identity)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The peer id derived from the public key.
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_public_key(self.key.verifying_key().as_bytes())
    }

    /// The public key, base64url, as `hello` carries it.
    pub fn public_key_b64(&self) -> String {
        encode_b64(self.key.verifying_key().as_bytes())
    }

    /// Signs the server's challenge nonce for the server named `server`
    /// ([`server_name`](switchboard_proto::server_name) of the URL dialed),
    /// base64url, as `hello` carries it.
    pub fn sign_challenge(&self, nonce: &str, server: &str) -> String {
        encode_b64(&self.key.sign(&hello_payload(nonce, server)).to_bytes())
    }

    /// The raw public key.
    pub(crate) fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `message` (the relay's key agreement).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_challenge_verifies_for_the_derived_id() {
        let id = Identity::generate();
        let proven = switchboard_proto::verify_hello(
            &id.public_key_b64(),
            &id.sign_challenge("abc", "h.test:80"),
            "abc",
            "h.test:80",
        );
        assert_eq!(proven.ok(), Some(id.peer_id()));
    }

    #[test]
    fn identities_persist_and_corrupt_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("sb-id-{}", std::process::id()));
        let path = dir.join("id.key");
        let _ = std::fs::remove_dir_all(&dir);
        let first = Identity::load_or_create(&path).expect("created");
        let again = Identity::load_or_create(&path).expect("loaded");
        assert_eq!(first.peer_id(), again.peer_id());
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(Identity::load_or_create(&path), Err(IdentityError::Corrupt { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
