//! Candidate gathering and the TURN glue of one link, sans-IO.
//!
//! [`Gatherer`] asks STUN servers for server-reflexive addresses from the
//! link's own UDP sockets, allocates relayed addresses on TURN servers over
//! UDP (from the same sockets) or TCP (one stream per server, opened by the
//! driver), keeps permissions and channels for the peers the link talks to,
//! and wraps and unwraps relayed datagrams. The allocation, refresh and
//! channel state machines are `turn-client-proto`'s; this module decides
//! when to use them and routes their bytes.
//!
//! The ladder: under [`IcePolicy::All`] relayed candidates are announced only
//! when direct checks have not succeeded within the relay delay, or at once
//! when a direct path is unlikely: no STUN server answered (or a TURN server
//! answered over TCP while STUN over UDP did not: UDP is blocked), or the
//! server's alternate address saw another mapping (a symmetric NAT).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::Candidate;
use turn_client_proto::api::{TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::client::{CreatePermissionError, TurnClient};
use turn_client_proto::prelude::TurnClientApi;
use turn_client_proto::stun::Instant as StunInstant;
use turn_client_proto::stun::agent::Transmit as StunTransmit;
use turn_client_proto::stun::types::TransportType;
use turn_client_proto::stun::types::attribute::XorMappedAddress;
use turn_client_proto::stun::types::message::{
    BINDING, Message, MessageClass, MessageType, MessageWrite, MessageWriteVec, TransactionId,
};
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::TurnCredentials;
use turn_client_proto::udp::TurnClientUdp;

use super::IcePolicy;
use super::url::Transport;

/// STUN retransmissions (RFC 8489: 7 tries; fewer here, gathering must not stall setup).
const STUN_TRIES: u32 = 5;
const STUN_RTO: Duration = Duration::from_millis(100);
/// Gathering counts as complete this long after it began, whatever still
/// has not answered (a TURN server that never does): STUN probes give up
/// after about 3 s.
const GATHER_LIMIT: Duration = Duration::from_secs(5);
/// Datagrams held per peer while a TURN permission is being installed.
const HELD_PER_PEER: usize = 16;

/// One STUN or TURN server, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
    /// TURN credentials; `None` for a STUN-only server.
    pub(crate) turn: Option<Credentials>,
    /// For `turns:`: the name the server's certificate must carry.
    pub(crate) tls_name: Option<String>,
}

/// TURN long-term credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

/// A TCP stream to a TURN server for the driver to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Connect {
    /// Id to report the stream with.
    pub(crate) stream: usize,
    pub(crate) server: SocketAddr,
    /// Wrap the stream in TLS, checking the certificate for this name (`turns:`).
    pub(crate) tls_name: Option<String>,
}

/// Where a datagram for a server goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Out of the link's UDP socket bound to this address.
    Udp(SocketAddr),
    /// Down the TCP stream of this relay.
    Stream(usize),
}

/// Something for the driver to send.
#[derive(Debug)]
pub(crate) struct Xmit {
    pub(crate) route: Route,
    pub(crate) to: SocketAddr,
    pub(crate) data: Vec<u8>,
}

/// A datagram that arrived through a relay: hand it to ICE as if it had
/// reached `relayed` from `peer`.
#[derive(Debug)]
pub(crate) struct Relayed {
    pub(crate) peer: SocketAddr,
    pub(crate) relayed: SocketAddr,
    pub(crate) data: Vec<u8>,
}

/// What became of a received datagram.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Not ours: ICE's.
    No,
    /// Consumed by gathering.
    Yes,
    /// Peer data through a relay.
    Relayed(Relayed),
}

struct Probe {
    local: SocketAddr,
    server: SocketAddr,
    tid: TransactionId,
    tries: u32,
    next: Option<Instant>,
    /// The mapped address the answer gave.
    mapped: Option<SocketAddr>,
    /// Sent to the server's OTHER-ADDRESS, to compare mappings.
    second: bool,
}

impl Probe {
    fn new(local: SocketAddr, server: SocketAddr, now: Instant, second: bool) -> Self {
        Probe { local, server, tid: TransactionId::generate(), tries: 0, next: Some(now), mapped: None, second }
    }
}

enum RelayState {
    /// Waiting for the driver to connect the TCP stream.
    Connecting,
    /// Allocating (or allocated, see `relayed`).
    Running(Box<TurnClient>),
    /// Gave up.
    Failed,
}

struct Relay {
    server: Server,
    /// Local end: the UDP socket address, or the TCP stream's once connected.
    local: Option<SocketAddr>,
    state: RelayState,
    relayed: Option<SocketAddr>,
    announced: bool,
    /// The server refused the allocation: no candidate will come from it.
    refused: bool,
    /// Peers with a channel bound or being bound.
    channels: Vec<SocketAddr>,
    /// Datagrams waiting for a permission, per peer IP.
    held: HashMap<IpAddr, Vec<(SocketAddr, Vec<u8>)>>,
    /// Permissions asked for and not yet answered.
    asked: Vec<IpAddr>,
}

/// Gathering state of one link.
pub(crate) struct Gatherer {
    base: Instant,
    last: Instant,
    policy: IcePolicy,
    relay_at: Instant,
    direct: bool,
    probes: Vec<Probe>,
    relays: Vec<Relay>,
    out: VecDeque<Xmit>,
    candidates: VecDeque<Candidate>,
    /// Streams the driver must open.
    connects: VecDeque<Connect>,
    remote_ips: Vec<IpAddr>,
    /// One socket's mapping differed towards the server's two addresses.
    symmetric: bool,
    /// Stream ids of this gatherer start here (after those of the gatherers
    /// it replaced on the same link).
    stream_base: usize,
}

impl Gatherer {
    /// Starts gathering at `now` from the link's UDP sockets `locals`.
    pub(crate) fn new(
        now: Instant,
        servers: &[Server],
        locals: &[SocketAddr],
        policy: IcePolicy,
        relay_delay: Duration,
    ) -> Self {
        let mut g = Gatherer {
            base: now,
            last: now,
            policy,
            relay_at: if policy == IcePolicy::Relay { now } else { now + relay_delay },
            direct: false,
            probes: Vec::new(),
            relays: Vec::new(),
            out: VecDeque::new(),
            candidates: VecDeque::new(),
            connects: VecDeque::new(),
            remote_ips: Vec::new(),
            symmetric: false,
            stream_base: 0,
        };
        for server in servers {
            let udp_locals = locals.iter().filter(|l| l.is_ipv4() == server.addr.is_ipv4());
            match (&server.turn, server.transport) {
                (None, Transport::Udp) if policy == IcePolicy::All => {
                    for &local in udp_locals {
                        g.probes.push(Probe::new(local, server.addr, now, false));
                    }
                }
                (Some(_), Transport::Udp) => {
                    // One allocation per server, from the first socket of the family.
                    if let Some(&local) = udp_locals.into_iter().next() {
                        g.relays.push(Relay::new(server.clone(), Some(local)));
                        let i = g.relays.len() - 1;
                        g.start_relay(i, local, now);
                    }
                }
                (Some(_), Transport::Tcp) => {
                    g.relays.push(Relay::new(server.clone(), None));
                    let stream = g.relays.len() - 1;
                    g.connects.push_back(Connect { stream, server: server.addr, tls_name: server.tls_name.clone() });
                }
                _ => {}
            }
        }
        g.handle_timeout(now);
        g
    }

    fn at(&self, now: Instant) -> StunInstant {
        StunInstant::from_nanos(i64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(i64::MAX))
    }

    fn to_std(&self, t: StunInstant) -> Instant {
        t.to_std(self.base)
    }

    fn start_relay(&mut self, i: usize, local: SocketAddr, now: Instant) {
        let Some(creds) = self.relays[i].server.turn.clone() else { return };
        let config = TurnConfig::new(TurnCredentials::new(&creds.username, &creds.password));
        let server = self.relays[i].server.addr;
        // Over `turns:` the driver's stream is already TLS: the client sees plain TCP.
        let client = match self.relays[i].server.transport {
            Transport::Udp => TurnClient::Udp(TurnClientUdp::allocate(local, server, config)),
            Transport::Tcp => TurnClient::Tcp(TurnClientTcp::allocate(local, server, config)),
        };
        self.relays[i].local = Some(local);
        self.relays[i].state = RelayState::Running(Box::new(client));
        self.pump(i, now);
    }

    /// The next stream the driver must open.
    pub(crate) fn poll_connect(&mut self) -> Option<Connect> {
        let mut c = self.connects.pop_front()?;
        c.stream += self.stream_base;
        Some(c)
    }

    /// Takes over from `old` on the same link: `old` gives its allocations
    /// back (its last requests and the streams to close come out of
    /// [`Self::release`]) and this gatherer's stream ids follow its own.
    pub(crate) fn follow(&mut self, old: &Gatherer) {
        self.stream_base = old.stream_base + old.relays.len();
    }

    /// Gives every allocation back (a REFRESH with lifetime 0, so that the
    /// next gatherer can allocate from the same socket); returns the ids of
    /// this gatherer's streams, which the driver may then close.
    pub(crate) fn release(&mut self, now: Instant) -> Vec<usize> {
        let at = self.at(now);
        let mut streams = Vec::new();
        for i in 0..self.relays.len() {
            if let RelayState::Running(client) = &mut self.relays[i].state {
                let _ = client.delete(at);
            }
            self.pump(i, now);
            if self.relays[i].server.transport == Transport::Tcp {
                streams.push(self.stream_base + i);
            }
        }
        streams
    }

    fn index(&self, id: usize) -> Option<usize> {
        id.checked_sub(self.stream_base).filter(|i| *i < self.relays.len())
    }

    /// The driver connected stream `id` from `local`.
    pub(crate) fn stream_connected(&mut self, now: Instant, id: usize, local: SocketAddr) {
        let Some(id) = self.index(id) else { return };
        if matches!(self.relays[id].state, RelayState::Connecting) {
            self.start_relay(id, local, now);
        }
    }

    /// Stream `id` failed or closed.
    pub(crate) fn stream_closed(&mut self, id: usize) {
        let Some(id) = self.index(id) else { return };
        if let Some(r) = self.relays.get_mut(id) {
            tracing::debug!(server = %r.server.addr, "TURN stream closed");
            r.state = RelayState::Failed;
        }
    }

    /// Bytes read from stream `id`; peer data comes back in `relayed`.
    pub(crate) fn stream_data(&mut self, now: Instant, id: usize, data: &[u8], relayed: &mut Vec<Relayed>) {
        let at = self.at(now);
        let Some(id) = self.index(id) else { return };
        let Some(r) = self.relays.get_mut(id) else { return };
        let (Some(local), RelayState::Running(client)) = (r.local, &mut r.state) else { return };
        let t = StunTransmit { data, transport: TransportType::Tcp, from: r.server.addr, to: local };
        if let TurnRecvRet::PeerData(p) = client.recv(t, at)
            && let Some(addr) = r.relayed
        {
            relayed.push(Relayed { peer: p.peer, relayed: addr, data: p.data().to_vec() });
        }
        while let Some(p) = client.poll_recv(at) {
            if let Some(addr) = r.relayed {
                relayed.push(Relayed { peer: p.peer, relayed: addr, data: p.data().to_vec() });
            }
        }
        self.pump(id, now);
    }

    /// A datagram that reached UDP socket `local` from `from`.
    pub(crate) fn handle_udp(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) -> Taken {
        // Only STUN (first byte 0..=3) and ChannelData (64..=79) can be ours.
        let first = data.first().copied().unwrap_or(0xff);
        if first > 3 && !(64..=79).contains(&first) {
            return Taken::No;
        }
        if first <= 3 && self.take_probe_answer(now, local, from, data) {
            return Taken::Yes;
        }
        let at = self.at(now);
        let Some(i) = self
            .relays
            .iter()
            .position(|r| r.server.transport == Transport::Udp && r.server.addr == from && r.local == Some(local))
        else {
            return Taken::No;
        };
        let r = &mut self.relays[i];
        let RelayState::Running(client) = &mut r.state else { return Taken::No };
        let t = StunTransmit { data, transport: TransportType::Udp, from, to: local };
        let taken = match client.recv(t, at) {
            TurnRecvRet::Ignored(_) => Taken::No,
            TurnRecvRet::PeerData(p) => match r.relayed {
                Some(relayed) => Taken::Relayed(Relayed { peer: p.peer, relayed, data: p.data().to_vec() }),
                None => Taken::Yes,
            },
            _ => Taken::Yes,
        };
        self.pump(i, now);
        taken
    }

    fn take_probe_answer(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) -> bool {
        let Ok(msg) = Message::from_bytes(data) else { return false };
        let tid = msg.transaction_id();
        let Some(p) = self.probes.iter_mut().find(|p| p.tid == tid && p.server == from && p.local == local) else {
            return false;
        };
        if p.next.is_none() {
            return true;
        }
        p.next = None;
        if msg.has_class(MessageClass::Success)
            && let Ok(x) = msg.attribute::<XorMappedAddress>()
        {
            let mapped = x.addr(tid);
            p.mapped = Some(mapped);
            if p.second {
                let first = self.probes.iter().find(|q| !q.second && q.local == local).and_then(|q| q.mapped);
                if first.is_some_and(|m| m != mapped) {
                    tracing::debug!(%local, "mapping depends on the destination: relayed candidates at once");
                    self.symmetric = true;
                }
            } else {
                // A mapping equal to the socket adds nothing to the host candidate.
                if mapped != local
                    && let Ok(c) = Candidate::server_reflexive(mapped, local, "udp")
                {
                    tracing::debug!(%mapped, %local, "server-reflexive candidate");
                    self.candidates.push_back(c);
                }
                // Behind a NAT, ask the server's other address too: another
                // mapping there means a symmetric NAT.
                if mapped != local
                    && let Some(other) = crate::nat::other_address(from, &msg)
                {
                    self.probes.push(Probe::new(local, other, now, true));
                    self.handle_timeout(now);
                }
            }
        }
        self.maybe_announce(now);
        true
    }

    /// Sends `data` from relayed address `from` to `to`; `None` when `from` is not one of ours.
    pub(crate) fn send_relayed(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) -> Option<()> {
        let at = self.at(now);
        let i = self.relays.iter().position(|r| r.relayed == Some(from))?;
        let r = &mut self.relays[i];
        let RelayState::Running(client) = &mut r.state else { return Some(()) };
        if !client.have_permission(TransportType::Udp, to.ip()) {
            r.ask_permission(to.ip(), at);
            let held = r.held.entry(to.ip()).or_default();
            if held.len() < HELD_PER_PEER {
                held.push((to, data.to_vec()));
            }
            self.pump(i, now);
            return Some(());
        }
        // Channels only over UDP: turn-client-proto neither pads ChannelData
        // over TCP nor expects padding, which RFC 8656 requires (and browsers
        // and our server do); Send and Data indications are always aligned.
        if r.server.transport == Transport::Udp && !r.channels.contains(&to) {
            r.channels.push(to);
            if let Err(e) = client.bind_channel(TransportType::Udp, to, at) {
                tracing::trace!(%to, error = %e, "TURN channel not bound");
            }
        }
        Self::send_through(r, self.stream_base + i, to, data, at, &mut self.out);
        self.pump(i, now);
        Some(())
    }

    fn send_through(
        r: &mut Relay,
        stream: usize,
        to: SocketAddr,
        data: &[u8],
        at: StunInstant,
        out: &mut VecDeque<Xmit>,
    ) {
        let (RelayState::Running(client), Some(local)) = (&mut r.state, r.local) else { return };
        match client.send_to(TransportType::Udp, to, data, at) {
            Ok(Some(t)) => {
                let t = t.build();
                let route =
                    if r.server.transport == Transport::Udp { Route::Udp(local) } else { Route::Stream(stream) };
                out.push_back(Xmit { route, to: t.to, data: t.data });
            }
            Ok(None) => {}
            Err(e) => tracing::trace!(%to, error = %e, "relayed send failed"),
        }
    }

    /// The other side announced `addr`: ask every relay for a permission ahead of the checks.
    pub(crate) fn add_remote(&mut self, now: Instant, addr: SocketAddr) {
        if self.remote_ips.contains(&addr.ip()) || self.remote_ips.len() >= 64 {
            return;
        }
        self.remote_ips.push(addr.ip());
        let at = self.at(now);
        for i in 0..self.relays.len() {
            let r = &mut self.relays[i];
            if r.relayed.is_none() {
                continue;
            }
            r.ask_permission(addr.ip(), at);
            self.pump(i, now);
        }
    }

    /// The link connected over a path that needs no relay: relays not yet
    /// announced are given back.
    pub(crate) fn direct_connected(&mut self, now: Instant) {
        if self.direct || self.policy == IcePolicy::Relay {
            return;
        }
        self.direct = true;
        let at = self.at(now);
        for i in 0..self.relays.len() {
            if self.relays[i].announced {
                continue;
            }
            if let RelayState::Running(client) = &mut self.relays[i].state {
                let _ = client.delete(at);
            }
            self.pump(i, now);
        }
    }

    /// Drives retransmissions, refreshes and the ladder.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.last = self.last.max(now);
        for p in &mut self.probes {
            let Some(next) = p.next else { continue };
            if next > now {
                continue;
            }
            if p.tries >= STUN_TRIES {
                p.next = None;
                tracing::debug!(server = %p.server, local = %p.local, "no STUN answer");
                continue;
            }
            p.tid = TransactionId::generate();
            let msg = Message::builder(
                MessageType::from_class_method(MessageClass::Request, BINDING),
                p.tid,
                MessageWriteVec::new(),
            );
            p.tries += 1;
            p.next = Some(now + STUN_RTO * 2u32.pow(p.tries - 1));
            self.out.push_back(Xmit { route: Route::Udp(p.local), to: p.server, data: msg.finish() });
        }
        for i in 0..self.relays.len() {
            self.pump(i, now);
        }
        self.maybe_announce(now);
    }

    /// Moves one relay's client along: transmits, events, held data.
    fn pump(&mut self, i: usize, now: Instant) {
        let at = self.at(now);
        let base = self.stream_base;
        let r = &mut self.relays[i];
        let Some(local) = r.local else { return };
        let RelayState::Running(client) = &mut r.state else { return };
        let route = if r.server.transport == Transport::Udp { Route::Udp(local) } else { Route::Stream(base + i) };
        if let TurnPollRet::Closed = client.poll(at) {
            if r.relayed.is_some() || r.announced {
                tracing::debug!(server = %r.server.addr, "TURN allocation closed");
            }
            r.state = RelayState::Failed;
            return;
        }
        let mut granted = Vec::new();
        while let Some(e) = client.poll_event() {
            match e {
                TurnEvent::AllocationCreated(TransportType::Udp, addr) => {
                    tracing::debug!(server = %r.server.addr, relayed = %addr, "TURN allocation");
                    r.relayed = Some(addr);
                }
                TurnEvent::AllocationCreateFailed(_) => {
                    tracing::debug!(server = %r.server.addr, "TURN allocation refused");
                    r.refused = true;
                }
                TurnEvent::PermissionCreated(_, ip) => {
                    r.asked.retain(|a| *a != ip);
                    granted.push(ip);
                }
                TurnEvent::PermissionCreateFailed(_, ip) => {
                    r.asked.retain(|a| *a != ip);
                    r.held.remove(&ip);
                }
                _ => {}
            }
        }
        // Datagrams held for a permission that just arrived.
        for ip in granted {
            for (to, data) in r.held.remove(&ip).unwrap_or_default() {
                if let RelayState::Running(client) = &mut r.state
                    && let Ok(Some(t)) = client.send_to(TransportType::Udp, to, data.as_slice(), at)
                {
                    let t = t.build();
                    self.out.push_back(Xmit { route, to: t.to, data: t.data });
                }
            }
        }
        if r.relayed.is_some() {
            for &ip in &self.remote_ips {
                r.ask_permission(ip, at);
            }
        }
        // Everything the client wants sent: requests, refreshes, permissions.
        if let RelayState::Running(client) = &mut r.state {
            while let Some(t) = client.poll_transmit(at) {
                let data = t.data.to_vec();
                let to = t.to;
                self.out.push_back(Xmit { route, to, data });
            }
        }
        self.maybe_announce(now);
    }

    /// Announces relayed candidates once the ladder allows it.
    fn maybe_announce(&mut self, now: Instant) {
        if self.direct {
            return;
        }
        if now < self.relay_at && !self.direct_unlikely() {
            return;
        }
        for r in &mut self.relays {
            if let (Some(addr), Some(local), false) = (r.relayed, r.local, r.announced) {
                r.announced = true;
                match Candidate::relayed(addr, local, "udp") {
                    Ok(c) => self.candidates.push_back(c),
                    Err(e) => tracing::debug!(error = %e, "relayed candidate refused"),
                }
            }
        }
    }

    /// Whether this side's own NAT makes a direct path unlikely.
    fn direct_unlikely(&self) -> bool {
        let first = || self.probes.iter().filter(|p| !p.second);
        if self.probes.is_empty() {
            return false;
        }
        let stun_gave_up = first().all(|p| p.next.is_none() && p.mapped.is_none());
        // A TURN server answered over TCP while no STUN probe over UDP did,
        // though the probes went out before the TCP connection even opened.
        let udp_silent = first().all(|p| p.mapped.is_none() && p.tries > 0)
            && self.relays.iter().any(|r| r.relayed.is_some() && r.server.transport == Transport::Tcp);
        stun_gave_up || udp_silent || self.symmetric
    }

    /// Whether every candidate this gatherer will find is out at `now`:
    /// each STUN probe answered or gave up, and each relay announced its
    /// candidate, failed, or was given back for a direct path; or
    /// [`GATHER_LIMIT`] passed.
    pub(crate) fn is_complete(&self, now: Instant) -> bool {
        let probes = self.probes.iter().all(|p| p.next.is_none());
        let relays = self.direct
            || self.relays.iter().all(|r| r.announced || r.refused || matches!(r.state, RelayState::Failed));
        (probes && relays) || now >= self.base + GATHER_LIMIT
    }

    /// A new local candidate to add to ICE and trickle.
    pub(crate) fn poll_candidate(&mut self) -> Option<Candidate> {
        self.candidates.pop_front()
    }

    /// A datagram to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Xmit> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        let at = self.at(self.last);
        let mut next: Option<Instant> = None;
        let mut earliest = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for p in &self.probes {
            if let Some(t) = p.next {
                earliest(t);
            }
        }
        if !self.direct && self.relays.iter().any(|r| r.relayed.is_some() && !r.announced) {
            earliest(self.relay_at);
        }
        if !self.is_complete(self.last) {
            earliest(self.base + GATHER_LIMIT);
        }
        let mut waits = Vec::new();
        for r in &mut self.relays {
            if let RelayState::Running(client) = &mut r.state
                && let TurnPollRet::WaitUntil(t) = client.poll(at)
            {
                waits.push(t);
            }
        }
        for t in waits {
            earliest(self.to_std(t));
        }
        next
    }
}

impl Relay {
    /// Asks the server to let `ip` reach this relay, once; a refused ask
    /// (no allocation yet) is asked again later.
    fn ask_permission(&mut self, ip: IpAddr, at: StunInstant) {
        let RelayState::Running(client) = &mut self.state else { return };
        if self.asked.contains(&ip) || client.have_permission(TransportType::Udp, ip) {
            return;
        }
        // A relay on the public internet cannot reach a private address; asking
        // would only queue this request behind the ones that matter.
        if !is_local(self.server.addr.ip()) && is_local(ip) {
            return;
        }
        match client.create_permission(TransportType::Udp, ip, at) {
            Ok(()) | Err(CreatePermissionError::AlreadyExists) => self.asked.push(ip),
            Err(e) => tracing::trace!(%ip, error = %e, "TURN permission not asked yet"),
        }
    }

    fn new(server: Server, local: Option<SocketAddr>) -> Self {
        Relay {
            server,
            local,
            state: RelayState::Connecting,
            relayed: None,
            announced: false,
            refused: false,
            channels: Vec::new(),
            held: HashMap::new(),
            asked: Vec::new(),
        }
    }
}

/// Whether `ip` is only reachable inside some site: private, shared (CGNAT),
/// loopback, link-local or unique-local.
pub(super) fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}
