//! The identity proof of `hello`: an Ed25519 signature over the server's
//! nonce and the name of the server the client dialed, so that a rogue
//! server cannot pass a real server's nonce to a victim and use the answer.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::PeerId;

/// Domain-separation prefix of the signed payload.
pub const HELLO_CONTEXT: &[u8] = b"switchboard/v1 hello\n";

/// The bytes a client signs to answer a challenge: [`HELLO_CONTEXT`], the
/// nonce as sent, a newline, and the server's name as [`server_name`] gives it.
pub fn hello_payload(nonce: &str, server: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(HELLO_CONTEXT.len() + nonce.len() + 1 + server.len());
    payload.extend_from_slice(HELLO_CONTEXT);
    payload.extend_from_slice(nonce.as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(server.as_bytes());
    payload
}

/// The name a client signs for the server at `url`: its host in lower case
/// and its port (the scheme's default when the URL has none), as
/// `host:port` or `[v6]:port`. `None` for a URL that is not `ws`, `wss`,
/// `http` or `https` with a host.
pub fn server_name(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => 80,
        "wss" | "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host_port(host_port)?;
    let port = match port {
        Some(p) => p.parse::<u16>().ok()?,
        None => default_port,
    };
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// Splits `host[:port]` or `[v6][:port]`; the host keeps its brackets.
pub fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    match s.split_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, Some(port))),
        None if !s.is_empty() => Some((s, None)),
        _ => None,
    }
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

/// Checks a `hello` proof over `nonce` and the `server` name it claims and
/// returns the proven peer id (whether the name is this server's is the
/// server's own check).
pub fn verify_hello(public_key: &str, signature: &str, nonce: &str, server: &str) -> Result<PeerId, IdentityError> {
    verify_signed(public_key, signature, &hello_payload(nonce, server))
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
        let sig = encode_b64(&key.sign(&hello_payload("n1", "a.test:443")).to_bytes());
        let id = verify_hello(&public, &sig, "n1", "a.test:443");
        assert_eq!(id, Ok(PeerId::from_public_key(key.verifying_key().as_bytes())));
        assert_eq!(verify_hello(&public, &sig, "n2", "a.test:443"), Err(IdentityError::SignatureMismatch));
        assert_eq!(verify_hello(&public, &sig, "n1", "b.test:443"), Err(IdentityError::SignatureMismatch));
        assert_eq!(verify_hello("AAAA", &sig, "n1", "a.test:443"), Err(IdentityError::BadPublicKey));
        assert_eq!(verify_hello(&public, "!!", "n1", "a.test:443"), Err(IdentityError::BadSignatureEncoding));
    }

    #[test]
    fn server_names_are_host_and_port_in_lower_case() {
        assert_eq!(server_name("ws://127.0.0.1:8080/ws").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(server_name("wss://Signal.Example.COM/ws?x=1").as_deref(), Some("signal.example.com:443"));
        assert_eq!(server_name("ws://[::1]:9/ws").as_deref(), Some("[::1]:9"));
        assert_eq!(server_name("ws://[::1]").as_deref(), Some("[::1]:80"));
        assert_eq!(server_name("ws://own.test@other.test/ws").as_deref(), Some("other.test:80"));
        assert_eq!(server_name("https://h.test#frag").as_deref(), Some("h.test:443"));
        for bad in ["ftp://h.test/", "h.test:80", "ws://", "ws://:80/", "ws://h.test:99999/", "ws://[::1/"] {
            assert_eq!(server_name(bad), None, "{bad}");
        }
    }
}
