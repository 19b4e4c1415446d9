//! TURN REST authentication and the per-user allocation quota.
//!
//! Usernames are `<expiry>:<user>` and passwords
//! `base64(HMAC-SHA1(secret, username))`, checked the way coturn's
//! `use-auth-secret` mode checks them: an expired username is refused on every
//! request, so clients move to fresh credentials before the old ones expire.
//! The embedded server also refuses a peer's credentials once its signaling
//! session has ended, so relay ports are held only by peers with a session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use stun_types::attribute::{AttributeStaticType, ErrorCode, MessageIntegrity, Nonce, Realm, Username};
use stun_types::message::{Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec};
use turn::auth::{AuthHandler, generate_auth_key};

use switchboard_proto::PeerId;

use crate::config::Secret;
use crate::ice::turn_credential;
use crate::rate::TokenBucket;
use crate::turn::nonce::{NonceCheck, NoncePool};

/// STUN methods of TURN's requests (RFC 8656, section 18).
const ALLOCATE: u16 = 0x0003;
const REFRESH: u16 = 0x0004;
const CREATE_PERMISSION: u16 = 0x0008;
const CHANNEL_BIND: u16 = 0x0009;

/// Whether a peer has a session on the signaling server.
pub(crate) type SessionCheck = Box<dyn Fn(PeerId) -> bool + Send + Sync>;

/// Checks TURN REST usernames against the shared secret.
pub(crate) struct RestAuth {
    pub(crate) secret: Secret,
    /// Set once the signaling server's state exists (after the TURN server).
    pub(crate) sessions: Arc<OnceLock<SessionCheck>>,
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
        // Usernames that name no peer id were not minted for a session (an
        // operator's own use of the secret) and are not tied to one.
        if let (Some(live), Ok(peer)) = (self.sessions.get(), user_of(username).parse::<PeerId>())
            && !live(peer)
        {
            return Err(turn::Error::Other(format!("the session of {peer} has ended")));
        }
        let password = turn_credential(self.secret.expose(), username);
        Ok(generate_auth_key(username, realm, &password))
    }
}

/// Allocate requests per second from one IP address and from all: an
/// unauthenticated one leaves a nonce in the `turn` crate, one that names a
/// user costs a look at every allocation.
const ALLOCATES_PER_ADDRESS: u32 = 50;
const ALLOCATES_PER_SEC: u32 = 500;
/// Addresses whose Allocate budgets are remembered at once.
const MAX_ADDRESSES: usize = 65_536;

/// Refuses an Allocate when its user already holds `limit` allocations, or
/// its source address `address_limit`; and drops Allocates beyond a rate
/// per address and in all (spoofed sources included), so that they neither
/// fill the `turn` crate's nonces nor cost a look at every allocation.
pub(crate) struct Quota {
    pub(crate) limit: usize,
    pub(crate) address_limit: usize,
    /// Set once the TURN server exists (it is built from the sockets that consult the quota).
    pub(crate) server: OnceLock<Arc<turn::server::Server>>,
    pub(crate) rate: Mutex<AllocateRate>,
    /// The crate's recent nonces, so that only requests it would accept, and
    /// about one per rotation, reach its nonce check.
    nonces: Mutex<NoncePool>,
    /// The realm the front names in the 401 and 438 answers it gives itself.
    realm: String,
}

/// Allocate budgets by source address and in all.
pub(crate) struct AllocateRate {
    by_address: HashMap<IpAddr, TokenBucket>,
    all: TokenBucket,
}

impl Default for AllocateRate {
    fn default() -> Self {
        Self { by_address: HashMap::new(), all: TokenBucket::new(ALLOCATES_PER_SEC, ALLOCATES_PER_SEC, Instant::now()) }
    }
}

impl AllocateRate {
    /// Takes one Allocate from `from`'s budget and the server's.
    fn admit(&mut self, from: IpAddr, now: Instant) -> bool {
        if self.by_address.len() >= MAX_ADDRESSES {
            self.by_address.retain(|_, b| !b.is_full(now));
        }
        let room = self.by_address.len() < MAX_ADDRESSES;
        let mine = match self.by_address.entry(from) {
            std::collections::hash_map::Entry::Occupied(mut b) => b.get_mut().try_take(1.0, now),
            std::collections::hash_map::Entry::Vacant(v) if room => {
                v.insert(TokenBucket::new(ALLOCATES_PER_ADDRESS, ALLOCATES_PER_ADDRESS, now)).try_take(1.0, now)
            }
            std::collections::hash_map::Entry::Vacant(_) => false,
        };
        mine && self.all.try_take(1.0, now)
    }
}

/// What the quota does with a packet.
pub(crate) enum Verdict {
    /// Hand it to the TURN server.
    Pass,
    /// Answer it with this instead.
    Answer(Vec<u8>),
    /// Drop it unanswered (over the Allocate rate: no reflection).
    Drop,
}

impl Quota {
    pub(crate) fn new(limit: usize, address_limit: usize, realm: &str) -> Self {
        Self {
            limit,
            address_limit,
            server: OnceLock::new(),
            rate: Mutex::new(AllocateRate::default()),
            nonces: Mutex::new(NoncePool::default()),
            realm: realm.to_owned(),
        }
    }

    /// Looks at a packet the TURN server sends: the nonces it hands out are
    /// learned, to be handed out again by the front.
    pub(crate) fn learn(&self, packet: &[u8]) {
        // Only error responses carry nonces; relayed data (ChannelData, Data
        // indications) is passed over without parsing.
        let error_class = packet.len() >= 20
            && packet[0] & 0xC0 == 0
            && u16::from_be_bytes([packet[0], packet[1]]) & 0x0110 == 0x0110;
        if !error_class {
            return;
        }
        let Ok(msg) = Message::from_bytes(packet) else { return };
        if !msg.has_class(MessageClass::Error) {
            return;
        }
        if let (Ok(nonce), Ok(mut pool)) = (msg.attribute::<Nonce>(), self.nonces.lock()) {
            pool.learn(nonce.nonce(), Instant::now());
        }
    }

    /// An error answer to `msg` with `code`, a nonce and the realm.
    fn nonce_answer(&self, msg: &Message<'_>, code: u16, nonce: &str) -> Verdict {
        let reason = if code == 401 { "Unauthorized" } else { "Stale Nonce" };
        let mut reply = Message::builder_error(msg, MessageWriteVec::new());
        let (Ok(code), Ok(nonce), Ok(realm)) =
            (ErrorCode::builder(code).reason(reason).build(), Nonce::new(nonce), Realm::new(&self.realm))
        else {
            return Verdict::Drop;
        };
        if reply.add_attribute(&code).is_err()
            || reply.add_attribute(&realm).is_err()
            || reply.add_attribute(&nonce).is_err()
        {
            return Verdict::Drop;
        }
        Verdict::Answer(reply.finish())
    }

    /// Looks at a packet from `from` before the TURN server does.
    ///
    /// Every request the `turn` crate authenticates is budgeted, the
    /// unauthenticated first Allocate too: the crate answers each one that
    /// lacks a known nonce with a fresh nonce that it keeps. Refresh,
    /// CreatePermission and ChannelBind without MESSAGE-INTEGRITY come only
    /// from clients without an allocation, which no real client sends: they
    /// are dropped unanswered.
    pub(crate) async fn check(&self, packet: &[u8], from: SocketAddr) -> Verdict {
        let Ok(msg) = Message::from_bytes(packet) else { return Verdict::Pass };
        if !msg.has_class(MessageClass::Request) {
            return Verdict::Pass;
        }
        let method = msg.method().value();
        let authenticated = msg.has_attribute(MessageIntegrity::TYPE);
        match method {
            ALLOCATE => {}
            REFRESH | CREATE_PERMISSION | CHANNEL_BIND if !authenticated => return Verdict::Drop,
            REFRESH | CREATE_PERMISSION | CHANNEL_BIND => {}
            _ => return Verdict::Pass,
        }
        let now = Instant::now();
        let admitted = self.rate.lock().is_ok_and(|mut r| r.admit(from.ip(), now));
        if !admitted {
            return Verdict::Drop;
        }
        let nonce = msg.attribute::<Nonce>().ok();
        let check = match self.nonces.lock() {
            Ok(mut pool) if authenticated => pool.authenticated(nonce.as_ref().map(Nonce::nonce), now),
            Ok(mut pool) => pool.unauthenticated(now),
            Err(_) => NonceCheck::Drop,
        };
        match check {
            NonceCheck::Pass => {}
            NonceCheck::Answer(nonce) => return self.nonce_answer(&msg, if authenticated { 438 } else { 401 }, &nonce),
            NonceCheck::Drop => return Verdict::Drop,
        }
        if method != ALLOCATE || !authenticated {
            return Verdict::Pass;
        }
        let Ok(user) = msg.attribute::<Username>() else { return Verdict::Pass };
        let user = user_of(user.username()).to_owned();
        let Some(server) = self.server.get() else { return Verdict::Pass };
        let Ok(infos) = server.get_allocations_info(None).await else { return Verdict::Pass };
        let mine = infos.values().filter(|i| user_of(&i.username) == user).count();
        let here = infos.values().filter(|i| i.five_tuple.src_addr.ip() == from.ip()).count();
        if mine < self.limit && here < self.address_limit {
            return Verdict::Pass;
        }
        tracing::info!(%user, %from, mine, here, "TURN allocation quota reached");
        let mut reply = Message::builder_error(&msg, MessageWriteVec::new());
        let Ok(code) = ErrorCode::builder(486).reason("Allocation Quota Reached").build() else { return Verdict::Drop };
        if reply.add_attribute(&code).is_err() {
            return Verdict::Drop;
        }
        Verdict::Answer(reply.finish())
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
        let auth = RestAuth { secret: Secret::new("s"), sessions: Arc::default() };
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        assert!(auth.auth_handle("1:alice", "r", addr).is_err());
        assert!(auth.auth_handle("alice", "r", addr).is_err());
        let later = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 60;
        let name = format!("{later}:alice");
        let key = auth.auth_handle(&name, "r", addr).expect("fresh credentials pass");
        assert_eq!(key, generate_auth_key(&name, "r", &turn_credential(b"s", &name)));
    }

    /// Attack: take relay ports with credentials of identities whose
    /// sessions have ended (credentials were valid 12 hours whatever the
    /// session did).
    #[test]
    fn credentials_of_an_ended_session_are_refused() {
        let live = PeerId::from_bytes([1; 16]);
        let auth = RestAuth { secret: Secret::new("s"), sessions: Arc::default() };
        let _ = auth.sessions.set(Box::new(move |p| p == live));
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let later = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 60;
        assert!(auth.auth_handle(&format!("{later}:{live}"), "r", addr).is_ok());
        let ended = PeerId::from_bytes([2; 16]);
        assert!(auth.auth_handle(&format!("{later}:{ended}"), "r", addr).is_err());
        assert!(auth.auth_handle(&format!("{later}:operator"), "r", addr).is_ok(), "not a peer id: not tied");
    }

    /// Attack: Allocates with a USERNAME (from spoofed sources too) each
    /// made the quota look at every allocation; now they are budgeted.
    #[test]
    fn allocates_are_budgeted_per_address_and_in_all() {
        let now = Instant::now();
        let mut rate = AllocateRate::default();
        let one: IpAddr = [198, 51, 100, 1].into();
        assert!((0..ALLOCATES_PER_ADDRESS).all(|_| rate.admit(one, now)));
        assert!(!rate.admit(one, now), "one address has its burst");
        assert!(rate.admit(one, now + std::time::Duration::from_secs(1)), "and its rate");
        let mut admitted = 0;
        for n in 0..2000u32 {
            let spoofed = IpAddr::from(n.to_be_bytes());
            admitted += u32::from(rate.admit(spoofed, now + std::time::Duration::from_secs(1)));
        }
        assert!(admitted <= ALLOCATES_PER_SEC, "all sources together: {admitted}");
    }

    fn request(method: u16, authenticated: bool) -> Vec<u8> {
        request_with(method, authenticated, Some("n1"))
    }

    fn request_with(method: u16, authenticated: bool, nonce: Option<&str>) -> Vec<u8> {
        use stun_types::message::{IntegrityAlgorithm, MessageIntegrityCredentials, ShortTermCredentials};
        let mut msg = Message::builder_request(stun_types::message::Method::new(method), MessageWriteVec::new());
        if let Some(nonce) = nonce {
            msg.add_attribute(&Nonce::new(nonce).expect("nonce")).expect("add");
        }
        if authenticated {
            let credentials = MessageIntegrityCredentials::ShortTerm(ShortTermCredentials::new("pw".into()));
            msg.add_message_integrity(&credentials, IntegrityAlgorithm::Sha1).expect("integrity");
        }
        msg.finish()
    }

    /// Attack: spoofed unauthenticated Refresh, CreatePermission and
    /// ChannelBind requests each left a nonce in the `turn` crate, without
    /// any budget. They are dropped; authenticated ones share the Allocate
    /// budget; Binding requests (STUN) pass untouched.
    #[tokio::test]
    async fn requests_that_would_leave_a_nonce_are_dropped_or_budgeted() {
        let quota = Quota::new(1, 1, "test");
        quota.learn(&crate_answer("n1"));
        let from = SocketAddr::from(([198, 51, 100, 1], 1));
        for method in [REFRESH, CREATE_PERMISSION, CHANNEL_BIND] {
            assert!(matches!(quota.check(&request(method, false), from).await, Verdict::Drop), "{method:#x}");
            assert!(matches!(quota.check(&request(method, true), from).await, Verdict::Pass), "{method:#x}");
        }
        let budget = ALLOCATES_PER_ADDRESS - 3;
        for _ in 0..budget {
            assert!(matches!(quota.check(&request(REFRESH, true), from).await, Verdict::Pass));
        }
        assert!(matches!(quota.check(&request(REFRESH, true), from).await, Verdict::Drop), "over the budget");
        assert!(matches!(quota.check(&request(0x0001, false), from).await, Verdict::Pass), "Binding");
    }

    /// An error answer of the crate's with `nonce`.
    fn crate_answer(nonce: &str) -> Vec<u8> {
        let request = request_with(ALLOCATE, false, None);
        let request = Message::from_bytes(&request).expect("request");
        let mut reply = Message::builder_error(&request, MessageWriteVec::new());
        reply.add_attribute(&ErrorCode::builder(401).build().expect("code")).expect("add");
        reply.add_attribute(&Nonce::new(nonce).expect("nonce")).expect("add");
        reply.finish()
    }

    /// Attack: spoofed Allocates without credentials, or with a made-up
    /// nonce, each left a nonce in the `turn` crate for ever. The front
    /// answers them with the crate's current nonce (401 or 438, with the
    /// realm); only a nonce the crate knows reaches it.
    #[tokio::test]
    async fn the_front_answers_with_the_crates_nonce() {
        let quota = Quota::new(1, 1, "lab");
        let from = SocketAddr::from(([198, 51, 100, 2], 1));
        let first = quota.check(&request_with(ALLOCATE, false, None), from).await;
        assert!(matches!(first, Verdict::Pass), "no nonce yet: the crate mints one");
        quota.learn(&crate_answer("crate-1"));
        let answer = |v: Verdict| match v {
            Verdict::Answer(bytes) => {
                let msg = Message::from_bytes(&bytes).expect("an answer");
                let code = msg.attribute::<ErrorCode>().expect("code").code();
                let nonce = msg.attribute::<Nonce>().expect("nonce").nonce().to_owned();
                let realm = msg.attribute::<Realm>().expect("realm").realm().to_owned();
                (code, nonce, realm)
            }
            Verdict::Pass | Verdict::Drop => panic!("expected an answer"),
        };
        let unauthenticated = quota.check(&request_with(ALLOCATE, false, None), from).await;
        assert_eq!(answer(unauthenticated), (401, "crate-1".into(), "lab".into()));
        let made_up = quota.check(&request_with(REFRESH, true, Some("made-up")), from).await;
        assert_eq!(answer(made_up), (438, "crate-1".into(), "lab".into()));
        let known = quota.check(&request_with(REFRESH, true, Some("crate-1")), from).await;
        assert!(matches!(known, Verdict::Pass));
    }

    #[test]
    fn user_is_the_part_after_the_expiry() {
        assert_eq!(user_of("1700000000:peer"), "peer");
        assert_eq!(user_of("plain"), "plain");
    }
}
