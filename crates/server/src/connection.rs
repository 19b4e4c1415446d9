//! One WebSocket connection: the thin driver between the socket and the hub.
//!
//! A single task per connection reads frames, answers them through the
//! connection's outbox, and writes whatever the outbox holds. Slow work
//! (password hashing, the mailbox) runs on the blocking pool.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use switchboard_proto::{
    ClientMessage, ErrorCode, Hello, Join, PROTOCOL_VERSION, PeerId, RELAY_HEADER_LEN, ServerMessage, Welcome,
    encode_b64, verify_hello,
};

use crate::auth::verify_token;
use crate::http::Slot;
use crate::hub::{ConnKey, Grants, Refusal, no_such_room};
use crate::ice::ice_servers_for;
use crate::origin::origin_of;
use crate::outbox::{Outbound, Outbox};
use crate::rate::TokenBucket;
use crate::shared::{Shared, mail_event, unix_ms};
use crate::store::{NewMail, StoreError};

/// Close code for policy violations (RFC 6455).
const POLICY: u16 = 1008;
/// Close code for a peer that is going away (server shutdown, idle).
const GOING_AWAY: u16 = 1001;
/// Stored mail fetched at once, at most; the next batch is fetched when the
/// connection has written this one (and read what the client sent meanwhile).
const MAIL_BATCH: usize = 256;
/// Close code when the session's auth token expires (application range).
const TOKEN_EXPIRED: u16 = 4001;

enum Phase {
    /// Until `hello`, which must come by `deadline` whatever else comes.
    AwaitHello {
        nonce: String,
        deadline: tokio::time::Instant,
    },
    Ready {
        peer: PeerId,
    },
}

struct Conn {
    key: ConnKey,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    phase: Phase,
    frames: TokenBucket,
    relay_bytes: TokenBucket,
    abuse: TokenBucket,
    closing: Option<(u16, &'static str)>,
    /// Highest mail id this connection has fetched from the store.
    mail_cursor: u64,
    /// Stored mail may be waiting beyond the cursor.
    mail_due: bool,
    /// The client's address, as mail quotas count it.
    origin: String,
    /// When the auth token presented in `hello` expires; the connection closes then.
    token_expiry: Option<tokio::time::Instant>,
    /// The same expiry in Unix seconds, which bounds minted TURN credentials.
    token_exp: Option<u64>,
    /// Signaling bytes read from this client's address, shared by its
    /// connections ([`ServerConfig::origin_text_bytes_per_sec`](crate::ServerConfig::origin_text_bytes_per_sec)).
    text_bytes: Arc<Mutex<TokenBucket>>,
    /// The tenant of the auth token (`""` without one): its mailbox is read,
    /// and the mail it sends is stored in its recipients' mailboxes of it.
    tenant: Arc<str>,
}

/// Drives one upgraded connection until it ends.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>, slot: Slot, addr: SocketAddr) {
    shared.metrics.connections_total.inc();
    shared.metrics.connections.inc();
    let outbox = Arc::new(Outbox::new(shared.config.max_outbound_bytes));
    let key = shared.register(outbox.clone());
    let now = Instant::now();
    let limits = &shared.config.limits;
    let nonce = encode_b64(&rand::random::<[u8; 24]>());
    outbox.push(Outbound::msg(&ServerMessage::Challenge { v: PROTOCOL_VERSION, nonce: nonce.clone() }));
    let mut conn = Conn {
        key,
        frames: TokenBucket::new(limits.rate_per_sec, limits.rate_burst, now),
        relay_bytes: TokenBucket::new(limits.relay_bytes_per_sec, limits.relay_bytes_per_sec, now),
        abuse: TokenBucket::new(shared.config.abuse_per_sec, shared.config.abuse_burst, now),
        shared: shared.clone(),
        outbox,
        phase: Phase::AwaitHello {
            nonce,
            deadline: tokio::time::Instant::now() + Duration::from_secs(shared.config.hello_timeout_secs),
        },
        closing: None,
        token_expiry: None,
        token_exp: None,
        tenant: "".into(),
        mail_cursor: 0,
        mail_due: false,
        origin: origin_of(addr.ip()),
        text_bytes: slot.text_bytes.clone().unwrap_or_else(|| {
            Arc::new(Mutex::new(TokenBucket::new(
                shared.config.origin_text_bytes_per_sec,
                shared.config.origin_text_burst_bytes,
                now,
            )))
        }),
    };
    let clean = conn.drive(socket).await;
    shared.unregister(key, clean);
    shared.metrics.connections.dec();
    drop(slot);
}

impl Conn {
    /// Returns whether the client closed cleanly (its session then ends at once).
    async fn drive(&mut self, mut socket: WebSocket) -> bool {
        let idle = Duration::from_secs(self.shared.config.limits.idle_timeout_secs);
        // One timer for the whole connection: frames only record when they
        // came, and the timer re-arms itself when it fires early.
        let mut last_frame = tokio::time::Instant::now();
        let idle_timer = tokio::time::sleep_until(self.wake_at(last_frame + idle));
        tokio::pin!(idle_timer);
        let mut batch = Vec::new();
        // While the address owes read budget, its frames wait in the socket
        // (and the client's TCP window), not in memory.
        let mut paused_until: Option<tokio::time::Instant> = None;
        loop {
            match self.write_pending(&mut socket, &mut batch).await {
                Ok(None) => {}
                Ok(Some((code, reason))) => return close(&mut socket, code, reason).await,
                Err(()) => return false,
            }
            if self.peer().is_some() && self.outbox.take_mail_stored() {
                self.mail_due = true;
            }
            let mail_due = self.mail_due;
            tokio::select! {
                biased;
                // Shutdown arrives through the outbox too, as a close.
                () = self.outbox.notified() => {}
                () = &mut idle_timer => {
                    let now = tokio::time::Instant::now();
                    if matches!(self.phase, Phase::AwaitHello { deadline, .. } if deadline <= now) {
                        return close(&mut socket, POLICY, "no hello in time").await;
                    }
                    if self.token_expiry.is_some_and(|at| at <= now) {
                        return close(&mut socket, TOKEN_EXPIRED, "auth token expired").await;
                    }
                    let deadline = last_frame + idle;
                    if deadline <= now {
                        return close(&mut socket, GOING_AWAY, "idle timeout").await;
                    }
                    idle_timer.as_mut().reset(self.wake_at(deadline));
                }
                () = tokio::time::sleep_until(paused_until.unwrap_or(last_frame)), if paused_until.is_some() => {
                    paused_until = None;
                }
                frame = socket.recv(), if paused_until.is_none() => {
                    last_frame = tokio::time::Instant::now();
                    match frame {
                        None => return false,
                        Some(Err(e)) => return fail(&mut socket, &e).await,
                        Some(Ok(Message::Close(_))) => return true,
                        Some(Ok(Message::Text(text))) => {
                            let owed = self.text_bytes.lock().unwrap_or_else(PoisonError::into_inner)
                                .take_owing(text.len() as f64, Instant::now());
                            if !owed.is_zero() {
                                // Time spent not reading is not idle time.
                                last_frame += owed;
                                paused_until = Some(last_frame);
                            }
                            self.on_text(text.as_str()).await;
                        }
                        Some(Ok(Message::Binary(bytes))) => self.on_binary(bytes.to_vec()),
                        Some(Ok(_)) => {}
                    }
                    // The timer never fires late: re-armed when an earlier
                    // wake-up appears (a token's expiry after `hello`).
                    let wake = self.wake_at(last_frame + idle);
                    if wake < idle_timer.deadline() {
                        idle_timer.as_mut().reset(wake);
                    }
                    if let Some((code, reason)) = self.closing.take() {
                        let _ = self.write_pending(&mut socket, &mut batch).await;
                        return close(&mut socket, code, reason).await;
                    }
                }
                // Last: the client's frames and the writes before this come first.
                () = std::future::ready(()), if mail_due => self.deliver_stored_mail().await,
            }
        }
    }

    /// The connection's one timer fires at the idle deadline, the token's
    /// expiry or the `hello` deadline, whichever is first.
    fn wake_at(&self, idle_deadline: tokio::time::Instant) -> tokio::time::Instant {
        let mut at = self.token_expiry.map_or(idle_deadline, |t| t.min(idle_deadline));
        if let Phase::AwaitHello { deadline, .. } = self.phase {
            at = at.min(deadline);
        }
        at
    }

    /// Writes the outbox; returns a close to perform, or `Err` if the socket
    /// failed or a write stalled for the write timeout (a client that stopped
    /// reading: its outbox then fills, and the connection is dropped).
    async fn write_pending(
        &self,
        socket: &mut WebSocket,
        batch: &mut Vec<Outbound>,
    ) -> Result<Option<(u16, &'static str)>, ()> {
        let overflowed = self.outbox.drain(batch);
        if batch.is_empty() && !overflowed {
            return Ok(None);
        }
        let mut close_with = None;
        let write = async {
            for item in batch.drain(..) {
                let frame = match item {
                    Outbound::Text(text) => Message::Text(text.into()),
                    Outbound::Binary(bytes) => Message::Binary(bytes.into()),
                    Outbound::Close(code, reason) => {
                        close_with = Some((code, reason));
                        break;
                    }
                };
                socket.feed(frame).await.map_err(|_| ())?;
            }
            socket.flush().await.map_err(|_| ())
        };
        let stall = Duration::from_secs(self.shared.config.write_timeout_secs);
        tokio::time::timeout(stall, write).await.map_err(|_| ())??;
        batch.clear();
        if overflowed {
            return Ok(Some((POLICY, "too slow: outbound queue full")));
        }
        Ok(close_with)
    }

    fn send(&self, msg: ServerMessage) {
        self.outbox.push(Outbound::msg(&msg));
    }

    fn refuse(&mut self, re: Option<u64>, refusal: Refusal) {
        self.shared.metrics.error(refusal.code.as_str());
        self.send(ServerMessage::error(re, refusal.code, refusal.message));
        if !self.abuse.try_take(1.0, Instant::now()) && self.closing.is_none() {
            self.closing = Some((POLICY, "too many bad frames"));
        }
    }

    fn fatal(&mut self, re: Option<u64>, code: ErrorCode, message: String, reason: &'static str) {
        self.refuse(re, Refusal::new(code, message));
        self.closing = Some((POLICY, reason));
    }

    fn peer(&self) -> Option<PeerId> {
        match self.phase {
            Phase::Ready { peer } => Some(peer),
            Phase::AwaitHello { .. } => None,
        }
    }

    async fn on_text(&mut self, text: &str) {
        if !self.frames.try_take(1.0, Instant::now()) {
            self.refuse(None, Refusal::new(ErrorCode::RateLimited, "slow down: frame rate limit reached"));
            return;
        }
        match ClientMessage::decode(text, &self.shared.config.limits) {
            Err(failure) => self.refuse(failure.re, Refusal::new(failure.error.code(), failure.error.to_string())),
            Ok(msg) => {
                self.shared.metrics.message(msg.kind());
                let re = msg.request_id();
                if let Err(refusal) = self.handle(msg).await {
                    self.refuse(re, refusal);
                }
            }
        }
    }

    fn on_binary(&mut self, frame: Vec<u8>) {
        let max = self.shared.config.limits.max_frame_bytes as usize;
        if frame.len() > max {
            let message = format!("relay frame is {} bytes, the limit is {max}", frame.len());
            self.refuse(None, Refusal::new(ErrorCode::TooLarge, message));
            return;
        }
        let now = Instant::now();
        let payload = frame.len().saturating_sub(RELAY_HEADER_LEN);
        if !self.frames.try_take(1.0, now) || !self.relay_bytes.try_take(payload as f64, now) {
            self.refuse(None, Refusal::new(ErrorCode::RateLimited, "slow down: relay rate limit reached"));
            return;
        }
        if self.peer().is_none() {
            self.refuse(None, Refusal::new(ErrorCode::Unauthorized, "send hello first"));
            return;
        }
        self.shared.metrics.message("relay");
        let len = frame.len() as u64;
        match self.shared.with_hub(|hub| hub.relay(self.key, frame)) {
            Ok(()) => {
                self.shared.metrics.relay_bytes.inc_by(len);
            }
            Err(refusal) => self.refuse(None, refusal),
        }
    }

    async fn handle(&mut self, msg: ClientMessage) -> Result<(), Refusal> {
        let Some(peer) = self.peer() else {
            return match msg {
                ClientMessage::Hello(hello) => {
                    self.hello(hello).await;
                    Ok(())
                }
                _ => Err(Refusal::new(ErrorCode::Unauthorized, "send hello first")),
            };
        };
        let key = self.key;
        let now = Instant::now();
        match msg {
            ClientMessage::Hello(_) => Err(Refusal::new(ErrorCode::BadRequest, "hello was already sent")),
            ClientMessage::CreateRoom(c) => {
                let hash = match c.password {
                    Some(pw) => Some(self.hash_password(pw).await?),
                    None => None,
                };
                let room = self.shared.with_hub(|hub| hub.create_room(now, key, hash, c.max_peers))?;
                self.send(ServerMessage::RoomCreated { re: c.id, room });
                Ok(())
            }
            ClientMessage::Join(join) => self.join(join).await,
            ClientMessage::Leave(l) => {
                self.shared.with_hub(|hub| hub.leave(now, key, l.room))?;
                self.send(ServerMessage::Ok { re: l.id });
                Ok(())
            }
            ClientMessage::Signal(s) => {
                self.shared.with_hub(|hub| hub.signal(now, key, s.to, s.conn, s.data))?;
                if s.id.is_some() {
                    self.send(ServerMessage::Ok { re: s.id });
                }
                Ok(())
            }
            ClientMessage::Mail(m) => {
                let body = m.body.to_string();
                let ttl_ms = self.shared.config.limits.mail_ttl_secs.saturating_mul(1000);
                let (store, shared, origin) = (self.shared.store.clone(), self.shared.clone(), self.origin.clone());
                let (to, now_ms, tenant) = (m.to, unix_ms(), self.tenant.clone());
                let id = blocking(move || {
                    let mail =
                        NewMail { from: peer, to, origin: &origin, tenant: &tenant, body: &body, now_ms, ttl_ms };
                    store.put(mail, &shared.config.mail_quota)
                })
                .await?;
                self.send(ServerMessage::MailAccepted { re: m.id, mail_id: id });
                self.shared.mail_stored(m.to);
                Ok(())
            }
            ClientMessage::AckMail(a) => {
                let (store, tenant) = (self.shared.store.clone(), self.tenant.clone());
                blocking(move || store.ack(peer, &tenant, &a.mail_ids)).await?;
                self.send(ServerMessage::Ok { re: a.id });
                Ok(())
            }
            ClientMessage::Watch(w) => {
                let states = self.shared.with_hub(|hub| hub.watch(key, &w.peers))?;
                self.send(ServerMessage::Ok { re: w.id });
                for (peer_id, online) in states {
                    self.send(ServerMessage::Presence { peer_id, online });
                }
                Ok(())
            }
            ClientMessage::Unwatch(w) => {
                self.shared.with_hub(|hub| hub.unwatch(key, &w.peers))?;
                self.send(ServerMessage::Ok { re: w.id });
                Ok(())
            }
            ClientMessage::IceServers(p) => {
                let ice_servers = ice_servers_for(&self.shared.config, peer, unix_ms() / 1000, self.token_exp);
                self.send(ServerMessage::IceServers { re: p.id, ice_servers });
                Ok(())
            }
            ClientMessage::Ping(p) => {
                self.send(ServerMessage::Pong { re: p.id });
                Ok(())
            }
            _ => Err(Refusal::new(ErrorCode::BadRequest, "message type not supported")),
        }
    }

    async fn hello(&mut self, hello: Hello) {
        let Phase::AwaitHello { nonce, .. } = &self.phase else { return };
        if hello.v != PROTOCOL_VERSION {
            let message = format!("this server speaks protocol v{PROTOCOL_VERSION}, not v{}", hello.v);
            return self.fatal(hello.id, ErrorCode::UnsupportedVersion, message, "unsupported protocol version");
        }
        if !answers_as(&self.shared.config.server_names, &hello.server) {
            let message = format!(
                "the identity proof is signed for server {:?}, which is not this server's name{}",
                hello.server,
                if self.shared.config.server_names.is_empty() {
                    " (without server_names it answers as localhost and IP addresses only)"
                } else {
                    ""
                }
            );
            return self.fatal(hello.id, ErrorCode::Unauthorized, message, "proof signed for another server");
        }
        let peer = match verify_hello(&hello.public_key, &hello.signature, nonce, &hello.server) {
            Ok(peer) => peer,
            Err(e) => return self.fatal(hello.id, ErrorCode::Unauthorized, e.to_string(), "identity proof failed"),
        };
        let grants = match &self.shared.config.auth_secret {
            None => Grants::default(),
            Some(secret) => {
                let Some(token) = hello.auth_token.as_deref() else {
                    let msg = "this server requires an auth_token".to_owned();
                    return self.fatal(hello.id, ErrorCode::Unauthorized, msg, "auth token required");
                };
                match verify_token(secret.expose(), token, peer, unix_ms() / 1000) {
                    Ok(claims) => {
                        let left = claims.exp.saturating_sub(unix_ms() / 1000);
                        self.token_expiry = Some(tokio::time::Instant::now() + Duration::from_secs(left));
                        self.token_exp = Some(claims.exp);
                        self.tenant = claims.tenant.as_deref().unwrap_or_default().into();
                        Grants { rooms: Some(claims.rooms), tenant: claims.tenant.map(Into::into) }
                    }
                    Err(e) => {
                        return self.fatal(hello.id, ErrorCode::Unauthorized, e.to_string(), "auth token refused");
                    }
                }
            }
        };
        let ice_servers = ice_servers_for(&self.shared.config, peer, unix_ms() / 1000, self.token_exp);
        let limits = self.shared.config.limits.clone();
        let (key, outbox) = (self.key, self.outbox.clone());
        self.shared.with_hub(|hub| {
            let attached = hub.attach(Instant::now(), key, peer, hello.resume_token.as_deref(), grants, &self.origin);
            // Queued before the hub's outputs, so `welcome` precedes held signals.
            outbox.push(Outbound::msg(&ServerMessage::Welcome(Box::new(Welcome {
                re: hello.id,
                v: PROTOCOL_VERSION,
                peer_id: peer,
                resume_token: attached.resume_token,
                resumed: attached.resumed,
                rooms: attached.rooms,
                ice_servers,
                limits,
            }))));
        });
        self.phase = Phase::Ready { peer };
        self.mail_due = self.shared.store.may_have_mail(peer, &self.tenant);
    }

    /// Queues the next batch of stored mail this connection has not fetched
    /// yet: at most [`MAIL_BATCH`] messages and a quarter of the outbound
    /// queue, so that however much mail waits, the queue never overflows
    /// with it and the client keeps being read between batches.
    async fn deliver_stored_mail(&mut self) {
        self.mail_due = false;
        let Some(peer) = self.peer() else { return };
        let (store, after, tenant) = (self.shared.store.clone(), self.mail_cursor, self.tenant.clone());
        let max_bytes = self.shared.config.max_outbound_bytes / 4;
        match blocking(move || store.pending(peer, &tenant, unix_ms(), after, MAIL_BATCH, max_bytes)).await {
            Ok(mail) => {
                // Until a fetch comes back empty, more may wait.
                self.mail_due = !mail.is_empty();
                for m in &mail {
                    self.mail_cursor = self.mail_cursor.max(m.id);
                    self.send(mail_event(m));
                }
            }
            Err(refusal) => self.refuse(None, refusal),
        }
    }

    async fn join(&mut self, join: Join) -> Result<(), Refusal> {
        let room = join.room;
        if !self.shared.throttle(|t, now| t.may_join(&self.origin, now)) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many failed joins from your address; try again later",
            ));
        }
        let result = self.try_join(join).await;
        if let Err(refusal) = &result
            && refusal.code == ErrorCode::NotFound
        {
            self.shared.throttle(|t, now| t.failed(&self.origin, now));
            tracing::debug!(%room, origin = %self.origin, "failed join");
        }
        result
    }

    async fn try_join(&mut self, join: Join) -> Result<(), Refusal> {
        let Join { id, room, password, meta, recreate } = join;
        let key = self.key;
        if recreate && !self.shared.with_hub(|hub| hub.has_room(room)) {
            let hash = match &password {
                Some(pw) => Some(self.hash_password(pw.clone()).await?),
                None => None,
            };
            let now = Instant::now();
            // Another member may have made it meanwhile: then join it as usual.
            if self.shared.with_hub(|hub| hub.recreate_room(now, key, room, hash.clone()))? {
                let mut view = self.shared.with_hub(|hub| hub.join(key, room, hash.as_deref(), meta))?;
                view.re = id;
                self.send(ServerMessage::Joined(view));
                return Ok(());
            }
        }
        let verified = match self.shared.with_hub(|hub| (hub.has_room(room), hub.password_hash(room))) {
            (_, Some(hash)) => {
                let Some(password) = password else { return Err(no_such_room(room)) };
                if !self.verify_password(password, hash.clone()).await? {
                    return Err(no_such_room(room));
                }
                Some(hash)
            }
            (false, None) => {
                // As long as checking a password against a real room takes.
                if let Some(password) = password {
                    let decoy = self.shared.decoy_hash.clone();
                    self.verify_password(password, decoy).await?;
                }
                return Err(no_such_room(room));
            }
            // A password for a room without one: not the room the joiner
            // means (a stranger may have recreated its code after a restart).
            (true, None) if password.is_some() => return Err(no_such_room(room)),
            (true, None) => None,
        };
        let mut view = self.shared.with_hub(|hub| hub.join(key, room, verified.as_deref(), meta))?;
        view.re = id;
        self.send(ServerMessage::Joined(view));
        Ok(())
    }

    /// A place in the password-hashing pool, within this address's budget
    /// and a bounded queue.
    async fn hashing_permit(&self) -> Result<HashingPermit<'_>, Refusal> {
        if !self.shared.throttle(|t, now| t.may_hash(&self.origin, now)) {
            return Err(Refusal::new(ErrorCode::RateLimited, "too many password checks from your address"));
        }
        let queue = &self.shared.hash_queue;
        if queue.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= MAX_HASH_QUEUE {
            queue.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return Err(Refusal::new(ErrorCode::RateLimited, "the server is busy checking passwords; retry"));
        }
        let queued = Queued(queue);
        let permit = self.shared.hashing.acquire().await.map_err(|_| internal("hashing pool closed"))?;
        Ok(HashingPermit { _queued: queued, _permit: permit })
    }

    async fn hash_password(&self, password: String) -> Result<String, Refusal> {
        let _permit = self.hashing_permit().await?;
        blocking(move || {
            argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| crate::store::StoreError::Backend(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches `hash`.
    async fn verify_password(&self, password: String, hash: String) -> Result<bool, Refusal> {
        let _permit = self.hashing_permit().await?;
        tokio::task::spawn_blocking(move || argon2().verify_password(password.as_bytes(), hash.as_str()).is_ok())
            .await
            .map_err(|_| internal("password check failed"))
    }
}

/// Password hashes that may wait for the pool at once; beyond them `rate_limited`.
const MAX_HASH_QUEUE: usize = 32;

/// Counts one hash in the queue while it waits and runs.
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

struct HashingPermit<'a> {
    _queued: Queued<'a>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

/// A hash of a random password: joins that name no room are checked
/// against it, so that they take as long as a wrong password does.
pub(crate) fn decoy_hash() -> String {
    let password = encode_b64(&rand::random::<[u8; 16]>());
    argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
}

fn internal(message: &str) -> Refusal {
    Refusal::new(ErrorCode::Internal, message)
}

/// Argon2id with 8 MiB and 2 passes: slow for guessing, quick enough for joins.
fn argon2() -> Argon2<'static> {
    let params = Params::new(8 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Runs a store call on the blocking pool and maps its error to an answer.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Refusal> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e @ StoreError::Quota(_))) => Err(Refusal::new(ErrorCode::LimitExceeded, e.to_string())),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "storage failed");
            Err(internal("storage failed"))
        }
        Err(_) => Err(internal("storage task failed")),
    }
}

/// Ends a connection whose transport failed: a frame beyond the transport
/// limit gets close code 1009, any other protocol violation 1002.
async fn fail(socket: &mut WebSocket, error: &axum::Error) -> bool {
    let text = error.to_string();
    tracing::debug!(error = %text, "connection failed");
    if text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Message too long") {
        return close(socket, 1009, "frame too large").await;
    }
    if text.contains("Protocol") || text.contains("protocol") {
        return close(socket, 1002, "websocket protocol error").await;
    }
    false
}

/// Sends a close frame, then reads (and discards) until the client answers
/// with its own close or 2 s pass. Dropping the socket at once would make the
/// kernel reset a connection that still has frames in flight, and the client
/// would lose the answers and the close reason queued before it.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> bool {
    let frame = CloseFrame { code, reason: reason.into() };
    let sent = tokio::time::timeout(Duration::from_secs(2), socket.send(Message::Close(Some(frame)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return false;
    }
    let linger = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(linger, socket.recv()).await {
        if matches!(msg, Message::Close(_)) {
            break;
        }
    }
    false
}

/// Whether `server` (`host:port`, as a client signed it) names this server:
/// one of `names` (`host` for any port, or `host:port`), or without names
/// `localhost` or an IP address literal.
fn answers_as(names: &[String], server: &str) -> bool {
    let Some((host, Some(_))) = switchboard_proto::split_host_port(server) else { return false };
    if names.is_empty() {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        return host == "localhost" || bare.parse::<std::net::IpAddr>().is_ok();
    }
    names.iter().any(|n| n == server || n == host)
}
