//! TURN REST authentication and the per-user allocation quota.
//!
//! Usernames are `<expiry>:<user>` and passwords
//! `base64(HMAC-SHA1(secret, username))`, checked the way coturn's
//! `use-auth-secret` mode checks them: an expired username is refused on every
//! request, so clients move to fresh credentials before the old ones expire.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use stun_types::attribute::{ErrorCode, Username};
use stun_types::message::{Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec};
use turn::auth::{AuthHandler, generate_auth_key};

use crate::config::Secret;
use crate::ice::turn_credential;

/// STUN method of TURN's Allocate request.
const ALLOCATE: u16 = 0x0003;

/// Checks TURN REST usernames against the shared secret.
pub(crate) struct RestAuth {
    pub(crate) secret: Secret,
}

impl AuthHandler for RestAuth {
    fn auth_handle(&self, username: &str, realm: &str, _src: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        let expiry = username
            .split_once(':')
            .map_or(username, |(e, _)| e)
            .parse::<u64>()
            .map_err(|_| turn::Error::Other(format!("username {username:?} is not <expiry>:<user>")))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if expiry < now {
            return Err(turn::Error::Other(format!("credentials of {username:?} expired")));
        }
        let password = turn_credential(self.secret.expose(), username);
        Ok(generate_auth_key(username, realm, &password))
    }
}

/// Refuses an Allocate when its user already holds `limit` allocations.
pub(crate) struct Quota {
    pub(crate) limit: usize,
    /// Set once the TURN server exists (it is built from the sockets that consult the quota).
    pub(crate) server: OnceLock<Arc<turn::server::Server>>,
}

impl Quota {
    /// If `packet` is an authenticated Allocate over quota, returns the error
    /// response to send instead of handing it to the TURN server.
    pub(crate) async fn refuse(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let msg = Message::from_bytes(packet).ok()?;
        if msg.method().value() != ALLOCATE || !msg.has_class(MessageClass::Request) {
            return None;
        }
        let user = user_of(msg.attribute::<Username>().ok()?.username()).to_owned();
        let server = self.server.get()?;
        let infos = server.get_allocations_info(None).await.ok()?;
        let mut per_user: HashMap<&str, usize> = HashMap::new();
        for info in infos.values() {
            *per_user.entry(user_of(&info.username)).or_default() += 1;
        }
        if per_user.get(user.as_str()).copied().unwrap_or(0) < self.limit {
            return None;
        }
        tracing::info!(%user, limit = self.limit, "TURN allocation quota reached");
        let mut reply = Message::builder_error(&msg, MessageWriteVec::new());
        let code = ErrorCode::builder(486).reason("Allocation Quota Reached").build().ok()?;
        reply.add_attribute(&code).ok()?;
        Some(reply.finish())
    }
}

/// The user part of a TURN REST username.
fn user_of(username: &str) -> &str {
    username.split_once(':').map_or(username, |(_, u)| u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_and_malformed_usernames_are_refused() {
        let auth = RestAuth { secret: Secret::new("s") };
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        assert!(auth.auth_handle("1:alice", "r", addr).is_err());
        assert!(auth.auth_handle("alice", "r", addr).is_err());
        let later = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 60;
        let name = format!("{later}:alice");
        let key = auth.auth_handle(&name, "r", addr).expect("fresh credentials pass");
        assert_eq!(key, generate_auth_key(&name, "r", &turn_credential(b"s", &name)));
    }

    #[test]
    fn user_is_the_part_after_the_expiry() {
        assert_eq!(user_of("1700000000:peer"), "peer");
        assert_eq!(user_of("plain"), "plain");
    }
}
