//! ICE servers for `welcome`, with TURN REST credentials minted per session:
//! `username = "<expiry>:<peer id>"`, `credential = base64(HMAC-SHA1(secret, username))`,
//! the scheme coturn checks with `use-auth-secret`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use switchboard_proto::{IceServer, PeerId};

use crate::config::ServerConfig;

/// Mints the TURN REST credential for `username`.
pub fn turn_credential(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of every length.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The ICE servers a peer gets at `now` (Unix seconds). Minted TURN
/// credentials expire no later than `until`, the expiry of the peer's auth
/// token, so relay access never outlives the right to use the server.
pub(crate) fn ice_servers_for(config: &ServerConfig, peer: PeerId, now: u64, until: Option<u64>) -> Vec<IceServer> {
    let mut servers: Vec<IceServer> = config
        .ice_servers
        .iter()
        .map(|s| IceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.as_ref().map(|c| String::from_utf8_lossy(c.expose()).into_owned()),
            expires_at: None,
        })
        .collect();
    if let Some(secret) = &config.turn_secret {
        let expires_at = until.map_or(u64::MAX, |t| t.max(now)).min(now + config.turn_credential_ttl_secs);
        let username = format!("{expires_at}:{peer}");
        servers.push(IceServer {
            urls: config.turn_urls.clone(),
            credential: Some(turn_credential(secret.expose(), &username)),
            username: Some(username),
            expires_at: Some(expires_at),
        });
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        // Reference value computed independently (Python hmac): HMAC-SHA1("secret", "1700000000:alice"), base64.
        assert_eq!(turn_credential(b"secret", "1700000000:alice"), "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
    }

    /// Attack: relay credentials that outlive the session's token let a
    /// peer whose token expired keep taking relay ports for 12 hours.
    #[test]
    fn turn_credentials_never_outlive_the_auth_token() {
        let config = ServerConfig {
            turn_secret: Some(crate::config::Secret::new("s")),
            turn_urls: vec!["turn:127.0.0.1:3478".into()],
            turn_credential_ttl_secs: 12 * 3600,
            ..ServerConfig::default()
        };
        let peer = PeerId::from_bytes([1; 16]);
        let expiry = |until| ice_servers_for(&config, peer, 1000, until).last().and_then(|s| s.expires_at);
        assert_eq!(expiry(None), Some(1000 + 12 * 3600));
        assert_eq!(expiry(Some(1600)), Some(1600));
        assert_eq!(expiry(Some(999_999)), Some(1000 + 12 * 3600));
    }
}
