//! The identity proof of `hello`: an Ed25519 signature over the server's nonce.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::PeerId;

/// Domain-separation prefix of the signed payload.
pub const HELLO_CONTEXT: &[u8] = b"switchboard/v1 hello\n";

/// The bytes a client signs to answer a challenge: [`HELLO_CONTEXT`] then the nonce as sent.
pub fn hello_payload(nonce: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(HELLO_CONTEXT.len() + nonce.len());
    payload.extend_from_slice(HELLO_CONTEXT);
    payload.extend_from_slice(nonce.as_bytes());
    payload
}

/// Why an identity proof was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// `public_key` is not 32 bytes of base64url, or not a valid Ed25519 point.
    #[error("public_key is not a base64url Ed25519 public key")]
    BadPublicKey,
    /// `signature` is not 64 bytes of base64url.
    #[error("signature is not 64 bytes of base64url")]
    BadSignatureEncoding,
    /// The signature does not verify against the key and nonce.
    #[error("signature does not match the public key and challenge")]
    SignatureMismatch,
}

/// Decodes a base64url Ed25519 public key.
pub fn decode_public_key(public_key: &str) -> Result<VerifyingKey, IdentityError> {
    let bytes: [u8; 32] =
        URL_SAFE_NO_PAD.decode(public_key).ok().and_then(|b| b.try_into().ok()).ok_or(IdentityError::BadPublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| IdentityError::BadPublicKey)
}

/// Checks a `hello` proof and returns the proven peer id.
pub fn verify_hello(public_key: &str, signature: &str, nonce: &str) -> Result<PeerId, IdentityError> {
    verify_signed(public_key, signature, &hello_payload(nonce))
}

/// Checks a base64url Ed25519 `signature` of `payload` and returns the peer
/// id of the key that made it.
pub fn verify_signed(public_key: &str, signature: &str, payload: &[u8]) -> Result<PeerId, IdentityError> {
    let key = decode_public_key(public_key)?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(IdentityError::BadSignatureEncoding)?;
    key.verify_strict(payload, &Signature::from_bytes(&sig)).map_err(|_| IdentityError::SignatureMismatch)?;
    Ok(PeerId::from_public_key(key.as_bytes()))
}

/// Encodes bytes the way keys, signatures and nonces travel: base64url without padding.
pub fn encode_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    #[test]
    fn a_signature_proves_the_derived_id() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let public = encode_b64(key.verifying_key().as_bytes());
        let sig = encode_b64(&key.sign(&hello_payload("n1")).to_bytes());
        let id = verify_hello(&public, &sig, "n1");
        assert_eq!(id, Ok(PeerId::from_public_key(key.verifying_key().as_bytes())));
        assert_eq!(verify_hello(&public, &sig, "n2"), Err(IdentityError::SignatureMismatch));
        assert_eq!(verify_hello("AAAA", &sig, "n1"), Err(IdentityError::BadPublicKey));
        assert_eq!(verify_hello(&public, "!!", "n1"), Err(IdentityError::BadSignatureEncoding));
    }
}
