//! Auth tokens: `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, first part))`.
//!
//! A deployment's own login service mints them (or `switchboard token`); the
//! server checks them in `hello` when started with an auth secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use switchboard_proto::PeerId;

/// What a token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The peer the token is for.
    pub sub: PeerId,
    /// Room codes the peer may join; `"*"` allows every room and creating rooms.
    pub rooms: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The tenant the peer belongs to, if the deployment has several: a peer
    /// reaches with signals, mail and presence only peers of its own tenant.
    /// Tokens without one form one tenant of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not two base64url parts with a JSON claims object.
    #[error("auth token is malformed")]
    Malformed,
    /// The signature does not match the server's secret.
    #[error("auth token signature is invalid")]
    BadSignature,
    /// The token's expiry has passed.
    #[error("auth token has expired")]
    Expired,
    /// The token names another peer.
    #[error("auth token was issued for another peer")]
    WrongPeer,
}

fn mac(secret: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of every length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(payload);
    mac
}

/// Signs claims into a token.
pub fn mint_token(secret: &[u8], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let sig = mac(secret, payload.as_bytes()).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Checks a token for `peer` at time `now` (Unix seconds).
pub fn verify_token(secret: &[u8], token: &str, peer: PeerId, now: u64) -> Result<Claims, TokenError> {
    let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
    mac(secret, payload.as_bytes()).verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.sub != peer {
        return Err(TokenError::WrongPeer);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_peer_secret_and_time() {
        let peer = PeerId::from_bytes([1; 16]);
        let claims = Claims { sub: peer, rooms: vec!["*".into()], exp: 100, tenant: None };
        let token = mint_token(b"s3cret", &claims);
        assert_eq!(verify_token(b"s3cret", &token, peer, 99), Ok(claims));
        assert_eq!(verify_token(b"other", &token, peer, 99), Err(TokenError::BadSignature));
        assert_eq!(verify_token(b"s3cret", &token, peer, 100), Err(TokenError::Expired));
        assert_eq!(verify_token(b"s3cret", &token, PeerId::from_bytes([2; 16]), 1), Err(TokenError::WrongPeer));
        assert_eq!(verify_token(b"s3cret", "nodot", peer, 1), Err(TokenError::Malformed));
        let tampered = token.replacen('e', "f", 1);
        assert!(verify_token(b"s3cret", &tampered, peer, 1).is_err());
    }
}
