//! The native backend: the node core and its links' str0m sides behind one
//! lock, driven by one tokio task per node.
//!
//! An application call takes the lock, enters the core, and carries out
//! what it asked at once: datagrams go out on the link's sockets and frames
//! to the WebSocket writer, so a `send` reaches the wire with no task hop.
//! The driver task ([`driver`]) waits for datagrams, WebSocket frames, TURN
//! streams and the core's next timeout, and feeds them in the same way.

mod beacon;
mod driver;
pub(crate) mod nat;
pub(crate) mod net;
pub(crate) mod rtc;
mod trust_file;
pub(crate) mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use web_time::Instant;

use self::rtc::{NativeOutput, Str0mConfig, Str0mRtc};
use crate::error::StartError;
use crate::ice::IcePolicy;
use crate::ice::gather::{Connect, Gatherer};
use crate::identity::Identity;
use crate::link::{LinkConfig, LinkCore};
use crate::node::core::{NodeCore, NodeOutput, Platform};
use crate::node::{HostCandidates, NodeConfig};

/// The node core on this backend.
pub(crate) type Core = NodeCore<NativePlatform>;

/// Makes the str0m side of new links: binds their sockets and gathers with
/// the current STUN/TURN servers.
pub(crate) struct NativePlatform {
    hosts: HostCandidates,
    policy: IcePolicy,
    relay_delay: Duration,
    /// Resolved STUN/TURN servers for new links.
    servers: Vec<crate::ice::gather::Server>,
    cert: Option<str0m::config::DtlsCert>,
    /// Sockets bound for links made since the driver last looked.
    bound: Vec<(u64, Vec<UdpSocket>)>,
}

impl NativePlatform {
    /// A gatherer with the current servers for sockets at `locals`.
    fn gatherer(&self, now: Instant, locals: &[SocketAddr]) -> Option<Gatherer> {
        (!self.servers.is_empty()).then(|| Gatherer::new(now, &self.servers, locals, self.policy, self.relay_delay))
    }
}

impl Platform for NativePlatform {
    type Rtc = Str0mRtc;

    fn new_rtc(&mut self, now: Instant, link: u64, cfg: &LinkConfig) -> Result<Str0mRtc, String> {
        let mut sockets = Vec::new();
        for ip in self.hosts.addresses().map_err(|e| format!("cannot list the host addresses: {e}"))? {
            match net::bind_udp(ip) {
                Ok(s) => sockets.push(s),
                Err(e) => tracing::debug!(%ip, error = %e, "cannot bind a host candidate socket"),
            }
        }
        if sockets.is_empty() {
            return Err("cannot bind a UDP socket on any local address".into());
        }
        let locals: Vec<SocketAddr> = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
        let hosts: &[SocketAddr] = if self.policy == IcePolicy::All { &locals } else { &[] };
        let str0m = Str0mConfig {
            channels: cfg.channels.clone(),
            raw: cfg.raw,
            chunk_size: cfg.chunk_size,
            sctp_buffer: cfg.sctp_buffer,
            dead_after: cfg.dead_after,
            cert: self.cert.clone(),
            machine: net::machine_addresses(),
        };
        let mut rtc = Str0mRtc::new(now, str0m, hosts);
        if let Some(g) = self.gatherer(now, &locals) {
            rtc.set_gatherer(g);
        }
        self.bound.push((link, sockets));
        Ok(rtc)
    }
}

/// What the lock guards.
pub(crate) struct State {
    core: Core,
    /// Each link's sockets, by local address.
    sockets: HashMap<u64, Vec<(SocketAddr, Arc<UdpSocket>)>>,
    /// Bumped when the set of sockets changes: the driver polls a copy.
    sockets_version: u64,
    /// Writes to the open WebSocket.
    ws_out: Option<mpsc::UnboundedSender<tokio_tungstenite::tungstenite::Message>>,
    /// A connection the driver must open.
    connect: Option<String>,
    /// The driver must close the WebSocket.
    disconnect: bool,
    /// ICE servers to resolve (and whether relayed links renew).
    resolve: Vec<(Vec<switchboard_proto::IceServer>, bool)>,
    /// TURN streams to open, by link.
    open_streams: Vec<(u64, Connect)>,
    /// Writers of open TURN streams, by link and stream.
    streams: HashMap<(u64, usize), mpsc::Sender<Vec<u8>>>,
    stream_tasks: HashMap<(u64, usize), tokio::task::JoinHandle<()>>,
    /// Links that ended while their close waits for the other side.
    lingering: Vec<(u64, LinkCore<Str0mRtc>)>,
    /// When the driver wakes next unless told.
    driver_at: Option<Instant>,
    /// The next time anything in the node wants time, as of the last flush.
    next_at: Option<Instant>,
    /// Where the trust book is saved.
    trust_file: Option<trust_file::TrustFile>,
}

impl State {
    /// Carries out what the core and the links' str0m sides ask for;
    /// returns whether the driver must look (new sockets, a connection to
    /// open or close, servers to resolve, an earlier timeout).
    fn flush(&mut self) -> bool {
        let mut wake = false;
        let now = Instant::now();
        self.flush_links(now);
        while let Some(out) = self.core.poll_output() {
            match out {
                NodeOutput::Text(text) => {
                    if let Some(ws) = &self.ws_out {
                        let _ = ws.send(tokio_tungstenite::tungstenite::Message::Text(text.into()));
                    }
                }
                NodeOutput::Binary(frame) => {
                    if let Some(ws) = &self.ws_out {
                        let _ = ws.send(tokio_tungstenite::tungstenite::Message::Binary(frame.into()));
                    }
                }
                NodeOutput::Connect { url } => {
                    self.connect = Some(url);
                    wake = true;
                }
                NodeOutput::Disconnect => {
                    self.disconnect = true;
                    wake = true;
                }
                NodeOutput::IceServers { servers, renew } => {
                    self.resolve.push((servers, renew));
                    wake = true;
                }
                NodeOutput::SaveTrust(text) => {
                    if let Some(f) = &self.trust_file {
                        f.save(text);
                    }
                }
                NodeOutput::LinkGone(link) => {
                    // A raw link's close lingers on its sockets until the
                    // other side answered it ([`Str0mRtc::lingering`]).
                    if let Some(gone) = self.core.take_gone(link) {
                        self.lingering.push((link, gone));
                    }
                    wake = true;
                }
            }
        }
        wake |= self.flush_lingering();
        for (link, sockets) in std::mem::take(&mut self.core.platform_mut().bound) {
            let entry = self.sockets.entry(link).or_default();
            for s in sockets {
                if let Ok(addr) = s.local_addr() {
                    entry.push((addr, Arc::new(s)));
                }
            }
            self.sockets_version += 1;
            wake = true;
            self.flush_link(now, link);
        }
        wake |= !self.open_streams.is_empty();
        let next = self.next_timeout();
        self.next_at = next;
        if next.is_some_and(|t| self.driver_at.is_none_or(|d| t < d)) {
            wake = true;
        }
        wake
    }

    /// Carries out what the links entered since the last flush ask for.
    fn flush_links(&mut self, now: Instant) {
        let mut done: Vec<u64> = Vec::new();
        loop {
            let next: Vec<u64> = self.core.take_touched().into_iter().filter(|l| !done.contains(l)).collect();
            if next.is_empty() {
                return;
            }
            for link in next {
                self.flush_link(now, link);
                done.push(link);
            }
        }
    }

    /// Lets link `link`'s core read what its str0m side reported, and
    /// carries out what the str0m side asks for, until neither has more.
    fn flush_link(&mut self, now: Instant, link: u64) {
        loop {
            self.core.drive_link(now, link);
            if !self.flush_io(now, link) {
                return;
            }
        }
    }

    /// Sends what links that ended still have to send, and lets those
    /// whose close is over go with their sockets; whether any went.
    fn flush_lingering(&mut self) -> bool {
        let mut done = Vec::new();
        for i in 0..self.lingering.len() {
            let link = self.lingering[i].0;
            while let Some(out) = self.lingering[i].1.rtc_mut().poll_io() {
                // Nothing else matters to a link that ended.
                let _ = self.send(link, out);
            }
            if !self.lingering[i].1.rtc_mut().lingering() {
                done.push(link);
            }
        }
        for link in &done {
            self.lingering.retain(|(l, _)| l != link);
            self.forget_link(*link);
        }
        !done.is_empty()
    }

    /// The str0m side of link `link`: a live link's, or that of one whose
    /// close lingers.
    pub(crate) fn rtc_of(&mut self, link: u64) -> Option<&mut Str0mRtc> {
        if self.core.link_by_id(link).is_some() {
            return self.core.link_by_id(link).map(|e| e.core.rtc_mut());
        }
        self.lingering.iter_mut().find(|(l, _)| *l == link).map(|(_, c)| c.rtc_mut())
    }

    /// Time passes for the links that linger.
    pub(crate) fn lingering_timeout(&mut self, now: Instant) {
        for (_, core) in &mut self.lingering {
            if core.rtc_mut().poll_timeout() <= now {
                core.rtc_mut().handle_timeout(now);
            }
        }
    }

    /// Lets go of what the driver holds for `link`: its sockets and TURN streams.
    fn forget_link(&mut self, link: u64) {
        self.sockets.remove(&link);
        self.sockets_version += 1;
        self.streams.retain(|(l, _), _| *l != link);
        self.stream_tasks.retain(|(l, _), t| {
            if *l == link {
                t.abort();
            }
            *l != link
        });
    }

    /// Sends what link `link` asks to send: a datagram from its socket on
    /// `source` (or its first one), or bytes on one of its TURN streams.
    /// Anything else comes back.
    fn send(&self, link: u64, out: NativeOutput) -> Option<NativeOutput> {
        match out {
            NativeOutput::Transmit { source, destination, contents } => {
                let sockets = self.sockets.get(&link)?;
                let socket = sockets.iter().find(|(a, _)| *a == source).or_else(|| sockets.first());
                if let Some((_, socket)) = socket
                    && let Err(e) = socket.try_send_to(&contents, destination)
                {
                    // A full socket buffer drops the datagram: SCTP and ICE send again.
                    tracing::trace!(%destination, error = %e, "udp send failed");
                }
            }
            NativeOutput::StreamSend { stream, contents } => {
                if let Some(w) = self.streams.get(&(link, stream))
                    && w.try_send(contents).is_err()
                {
                    tracing::trace!(stream, "TURN stream backed up; datagram dropped");
                }
            }
            other => return Some(other),
        }
        None
    }

    /// Carries out what link `link`'s str0m side asks for; whether it asked anything.
    fn flush_io(&mut self, now: Instant, link: u64) -> bool {
        let mut any = false;
        loop {
            let Some(entry) = self.core.link_by_id(link) else { return any };
            let Some(out) = entry.core.rtc_mut().poll_io() else { return any };
            any = true;
            let Some(out) = self.send(link, out) else { continue };
            match out {
                NativeOutput::Transmit { .. } | NativeOutput::StreamSend { .. } => {}
                NativeOutput::OpenStream(connect) => self.open_streams.push((link, connect)),
                NativeOutput::CloseStream(stream) => {
                    // The writer task sends what it holds, then ends.
                    self.streams.remove(&(link, stream));
                    if let Some(task) = self.stream_tasks.remove(&(link, stream)) {
                        task.abort();
                    }
                }
                NativeOutput::Regather => {
                    let locals: Vec<SocketAddr> =
                        self.sockets.get(&link).map(|s| s.iter().map(|(a, _)| *a).collect()).unwrap_or_default();
                    let gatherer = self.core.platform_mut().gatherer(now, &locals);
                    if let Some(entry) = self.core.link_by_id(link) {
                        entry.core.rtc_mut().regather(now, gatherer);
                    }
                }
                NativeOutput::CheckHosts => self.rehost(now, link),
            }
        }
    }

    /// After a network switch: sockets on addresses that went away close,
    /// new addresses get sockets, and the link gets host candidates and a
    /// gatherer for them. Nothing happens while the addresses stay.
    fn rehost(&mut self, now: Instant, link: u64) {
        let ips = match self.core.platform_mut().hosts.addresses() {
            Ok(ips) => ips,
            Err(e) => return tracing::debug!(error = %e, "cannot list the host addresses"),
        };
        let Some(sockets) = self.sockets.get_mut(&link) else { return };
        let gone: Vec<SocketAddr> = sockets.iter().map(|(a, _)| *a).filter(|a| !ips.contains(&a.ip())).collect();
        sockets.retain(|(a, _)| !gone.contains(a));
        let mut added = Vec::new();
        for ip in ips {
            if sockets.iter().any(|(a, _)| a.ip() == ip) {
                continue;
            }
            match net::bind_udp(ip).and_then(|s| Ok((s.local_addr()?, s))) {
                Ok((addr, socket)) => {
                    added.push(addr);
                    sockets.push((addr, Arc::new(socket)));
                }
                Err(e) => tracing::debug!(%ip, error = %e, "cannot bind a host candidate socket"),
            }
        }
        if gone.is_empty() && added.is_empty() {
            return;
        }
        tracing::info!(?gone, ?added, "host addresses changed");
        self.sockets_version += 1;
        let locals: Vec<SocketAddr> = sockets.iter().map(|(a, _)| *a).collect();
        let gatherer = self.core.platform_mut().gatherer(now, &locals);
        if let Some(entry) = self.core.link_by_id(link) {
            let rtc = entry.core.rtc_mut();
            rtc.rehost(now, &added, &gone);
            rtc.regather(now, gatherer);
        }
        // The signaling connection may have gone with an old address.
        self.core.network_changed(now);
    }

    /// The next time anything in the node wants time.
    fn next_timeout(&mut self) -> Option<Instant> {
        let rtcs = self.core.links_mut().map(|e| e.core.rtc_mut().poll_timeout()).min();
        let lingering = self.lingering.iter_mut().map(|(_, c)| c.rtc_mut().poll_timeout()).min();
        [self.core.poll_timeout(), rtcs, lingering].into_iter().flatten().min()
    }
}

/// The lock and what wakes the driver.
pub(crate) struct NativeNode {
    state: Mutex<State>,
    /// Wakes the driver (new sockets, a connection to open, an earlier timeout, close).
    wake: Notify,
    /// Told when the driver ended.
    stopped: Notify,
}

impl NativeNode {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The application's handle on a native node.
pub(crate) struct Backend {
    shared: Arc<NativeNode>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.with(|core, _| core.id())).finish_non_exhaustive()
    }
}

fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if str0m::crypto::CryptoProvider::get_default().is_none() {
            str0m_aws_lc_rs::default_provider().install_process_default();
        }
    });
}

impl Backend {
    /// Starts the node's driver and, with a signaling server, waits for
    /// its welcome.
    pub(crate) async fn start(cfg: NodeConfig, identity: Identity) -> Result<Backend, StartError> {
        install_crypto();
        let tls = crate::ice::tls::client_config(&cfg.tls_roots).map_err(|e| StartError::Config(e.to_string()))?;
        // One DTLS certificate for all of this node's links, made off the
        // async threads (the first one also warms up the crypto library).
        let cert =
            tokio::task::spawn_blocking(|| str0m_aws_lc_rs::default_provider().dtls_provider.generate_certificate())
                .await
                .ok()
                .flatten();
        let servers = crate::ice::resolve(&cfg.ice_servers, &[]).await;
        let platform = NativePlatform {
            hosts: cfg.hosts.clone(),
            policy: cfg.ice_policy,
            relay_delay: cfg.relay_delay,
            servers,
            cert,
            bound: Vec::new(),
        };
        let (policy, own) = (cfg.ice_policy, cfg.ice_servers.clone());
        let trust_path = cfg.trust_store.clone().map(std::path::PathBuf::from);
        let book = match &trust_path {
            Some(path) => trust_file::load(path.clone()).await?,
            None => Default::default(),
        };
        let mut core = NodeCore::new(Instant::now(), cfg, identity, platform, rand::random());
        core.load_trust(book);
        let state = State {
            core,
            sockets: HashMap::new(),
            sockets_version: 0,
            ws_out: None,
            connect: None,
            disconnect: false,
            resolve: Vec::new(),
            open_streams: Vec::new(),
            streams: HashMap::new(),
            stream_tasks: HashMap::new(),
            lingering: Vec::new(),
            driver_at: None,
            next_at: None,
            trust_file: trust_path.map(trust_file::TrustFile::new),
        };
        let shared = Arc::new(NativeNode { state: Mutex::new(state), wake: Notify::new(), stopped: Notify::new() });
        let backend = Backend { shared: shared.clone() };
        backend.with(|_, _| ());
        tokio::spawn(driver::run(shared, tls));
        let started = std::future::poll_fn(|cx| backend.with(|core, _| core.poll_start(cx))).await;
        started?;
        // Links made from now on gather with the servers the welcome handed out.
        let handed = backend.with(|core, _| core.welcome_ice_servers());
        let resolved = crate::ice::resolve(&own, &handed).await;
        if policy == IcePolicy::Relay && !resolved.iter().any(|s| s.turn.is_some()) {
            return Err(StartError::Config("relay-only policy needs a TURN server".into()));
        }
        backend.with(|core, _| core.platform_mut().servers = resolved);
        Ok(backend)
    }

    /// Runs `f` on the core at the current time under the lock, then
    /// carries out what it asked for.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Core, Instant) -> T) -> T {
        let mut state = self.shared.lock();
        let result = f(&mut state.core, Instant::now());
        if state.flush() {
            self.shared.wake.notify_one();
        }
        result
    }

    /// Closes every link and the signaling connection, and waits (briefly)
    /// for the driver to say goodbye to the server.
    pub(crate) async fn close(&self) {
        let stopped = self.shared.stopped.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        let already = self.with(|core, now| {
            let was = core.is_closed();
            core.close(now);
            was
        });
        self.shared.wake.notify_one();
        // Trust changes made so far are on disk when `close` returns.
        let trust = self.shared.lock().trust_file.clone();
        if let Some(f) = trust {
            f.flushed().await;
        }
        if !already {
            let _ = tokio::time::timeout(Duration::from_secs(2), stopped).await;
        }
    }
}
