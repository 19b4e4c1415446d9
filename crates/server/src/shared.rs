//! State shared by every connection task: the hub behind one lock, each
//! connection's outbox, the store, metrics and the shutdown signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use switchboard_proto::{ErrorCode, PeerId, ServerMessage};
use tokio::sync::{Notify, Semaphore, watch};

use crate::config::ServerConfig;
use crate::hub::{ConnKey, Hub, Output};
use crate::metrics::Metrics;
use crate::outbox::{Outbound, Outbox};
use crate::rate::TokenBucket;
use crate::store::{MailStore, StoredMail};
use crate::throttle::Throttle;

/// The connections of one address.
struct OriginConns {
    count: usize,
    /// Signaling bytes read from the address ([`ServerConfig::origin_text_bytes_per_sec`]).
    text_bytes: Arc<Mutex<TokenBucket>>,
}

struct Core {
    hub: Hub,
    outboxes: HashMap<ConnKey, Arc<Outbox>>,
}

/// The close reason every connection gets when the server stops.
pub(crate) const SHUTTING_DOWN: &str = "server shutting down";

pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    core: Mutex<Core>,
    pub(crate) store: Arc<dyn MailStore>,
    pub(crate) metrics: Metrics,
    pub(crate) open_conns: AtomicUsize,
    next_conn: AtomicU64,
    timer_wake: Notify,
    pub(crate) all_closed: Notify,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) hashing: Semaphore,
    /// Password hashes waiting for the hashing pool.
    pub(crate) hash_queue: AtomicUsize,
    throttle: Mutex<Throttle>,
    /// Open connections by address, with the address's shared read budget.
    conns_by_origin: Mutex<HashMap<String, OriginConns>>,
    /// What joins naming no room check their password against.
    pub(crate) decoy_hash: String,
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shared {
    pub(crate) fn new(config: ServerConfig, store: Arc<dyn MailStore>, shutdown: watch::Receiver<bool>) -> Self {
        let hub_config = crate::hub::HubConfig {
            limits: config.limits.clone(),
            room_ttl: Duration::from_secs(config.room_ttl_secs),
            max_rooms: config.max_rooms,
            max_pending_per_peer: config.max_pending_signals,
            max_held_bytes_per_peer: config.max_held_signal_bytes,
            max_held_per_sender: config.max_held_signals_per_sender,
            max_held_bytes_per_sender: config.max_held_signal_bytes_per_sender,
            max_held_bytes: config.max_held_signal_bytes_total,
            max_rooms_per_origin: config.max_rooms_per_origin,
            max_detached_sessions: config.max_detached_sessions,
            max_watch: config.max_watch,
            max_watches: config.max_watches,
            room_code_len: config.room_code_len,
        };
        let seed: [u8; 32] = rand::random();
        let throttle = config.join_throttle.clone();
        Self {
            config,
            core: Mutex::new(Core { hub: Hub::new(hub_config, seed), outboxes: HashMap::new() }),
            store,
            metrics: Metrics::new(),
            open_conns: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            timer_wake: Notify::new(),
            all_closed: Notify::new(),
            shutdown,
            hashing: Semaphore::new(2),
            hash_queue: AtomicUsize::new(0),
            throttle: Mutex::new(Throttle::new(throttle, Instant::now())),
            conns_by_origin: Mutex::new(HashMap::new()),
            decoy_hash: crate::connection::decoy_hash(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the hub, then routes everything it queued to the outboxes.
    pub(crate) fn with_hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        let mut core = self.lock();
        let before = core.hub.poll_timeout();
        let result = f(&mut core.hub);
        let Core { hub, outboxes } = &mut *core;
        while let Some(out) = hub.poll_output() {
            let (key, item) = match out {
                Output::Send(key, msg) => (key, Outbound::msg(&msg)),
                Output::Close(key, reason) => (key, Outbound::Close(4000, reason)),
                Output::Signal { to, from, msg } => {
                    forward(outboxes, to, from, Outbound::msg(&msg), "signal");
                    continue;
                }
                Output::Relay { to, from, frame } => {
                    forward(outboxes, to, from, Outbound::Binary(frame), "relay frame");
                    continue;
                }
            };
            if let Some(outbox) = outboxes.get(&key) {
                outbox.push(item);
            }
        }
        let after = hub.poll_timeout();
        if after.is_some() && (before.is_none() || after < before) {
            self.timer_wake.notify_one();
        }
        result
    }

    /// Runs `f` on the per-address budgets.
    pub(crate) fn throttle<R>(&self, f: impl FnOnce(&mut Throttle, Instant) -> R) -> R {
        f(&mut self.throttle.lock().unwrap_or_else(PoisonError::into_inner), Instant::now())
    }

    /// Counts a connection from `origin` and returns the address's read
    /// budget, which its connections share; `None` when it holds its maximum.
    pub(crate) fn claim_origin(&self, origin: &str) -> Option<Arc<Mutex<TokenBucket>>> {
        let mut conns = self.conns_by_origin.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = conns.entry(origin.to_owned()).or_insert_with(|| OriginConns {
            count: 0,
            text_bytes: Arc::new(Mutex::new(TokenBucket::new(
                self.config.origin_text_bytes_per_sec,
                self.config.origin_text_burst_bytes,
                Instant::now(),
            ))),
        });
        if entry.count >= self.config.max_connections_per_origin {
            return None;
        }
        entry.count += 1;
        Some(entry.text_bytes.clone())
    }

    /// Releases a connection counted by [`Shared::claim_origin`].
    pub(crate) fn release_origin(&self, origin: &str) {
        let mut conns = self.conns_by_origin.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = conns.get_mut(origin) {
            entry.count = entry.count.saturating_sub(1);
            if entry.count == 0 {
                conns.remove(origin);
            }
        }
    }

    pub(crate) fn register(&self, outbox: Arc<Outbox>) -> ConnKey {
        let key = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut core = self.lock();
        // `close_all` holds this lock too, so a connection registered after
        // it ran sees the flag and closes at once.
        if *self.shutdown.borrow() {
            outbox.push(Outbound::Close(1001, SHUTTING_DOWN));
        }
        core.outboxes.insert(key, outbox);
        key
    }

    pub(crate) fn unregister(&self, key: ConnKey, clean: bool) {
        self.with_hub(|hub| hub.detach(Instant::now(), key, clean));
        self.lock().outboxes.remove(&key);
    }

    /// Tells the recipient's connection, if it has one, that mail was
    /// stored for it; the connection fetches it as its queue drains.
    pub(crate) fn mail_stored(&self, to: PeerId) {
        let core = self.lock();
        if let Some(outbox) = core.hub.live_conn(to).and_then(|k| core.outboxes.get(&k)) {
            outbox.mail_stored();
        }
    }

    /// Closes every connection (shutdown); the shutdown flag is already set.
    pub(crate) fn close_all(&self) {
        let core = self.lock();
        for outbox in core.outboxes.values() {
            outbox.push(Outbound::Close(1001, SHUTTING_DOWN));
        }
    }

    pub(crate) fn refresh_gauges(&self) {
        let (sessions, rooms) = {
            let core = self.lock();
            (core.hub.session_count(), core.hub.room_count())
        };
        self.metrics.sessions.set(i64::try_from(sessions).unwrap_or(i64::MAX));
        self.metrics.rooms.set(i64::try_from(rooms).unwrap_or(i64::MAX));
        if let Ok(depth) = self.store.depth() {
            self.metrics.mailbox_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// Runs the hub's timers until shutdown.
    pub(crate) async fn run_timers(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        loop {
            let next = self.lock().hub.poll_timeout();
            let wait = next.map_or(Duration::from_secs(3600), |t| t.saturating_duration_since(Instant::now()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.timer_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            self.with_hub(|hub| hub.handle_timeout(Instant::now()));
        }
    }

    /// Deletes expired mail once a minute until shutdown.
    pub(crate) async fn run_mail_purge(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.purge_expired(unix_ms())).await {
                Ok(Ok(n)) if n > 0 => tracing::debug!(purged = n, "expired mail deleted"),
                Ok(Err(e)) => tracing::warn!(error = %e, "mail purge failed"),
                _ => {}
            }
        }
    }
}

/// Queues what one peer sent another within the recipient's share for
/// forwarded frames; what does not fit is dropped and its sender told.
fn forward(outboxes: &HashMap<ConnKey, Arc<Outbox>>, to: ConnKey, from: ConnKey, item: Outbound, what: &str) {
    let Some(outbox) = outboxes.get(&to) else { return };
    if outbox.push_forwarded(item) {
        return;
    }
    if let Some(sender) = outboxes.get(&from) {
        let message = format!("{what} dropped: the recipient is not reading fast enough");
        sender.push(Outbound::msg(&ServerMessage::error(None, ErrorCode::RateLimited, message)));
    }
}

pub(crate) fn mail_event(mail: &StoredMail) -> ServerMessage {
    ServerMessage::Mail {
        mail_id: mail.id,
        from: mail.from,
        body: serde_json::from_str(&mail.body).unwrap_or(serde_json::Value::Null),
        sent_at: mail.sent_at,
    }
}
