//! The gatherer against a sans-IO TURN server (`turn-server-proto`) on a
//! virtual clock: allocation, permission and channel, then hours of virtual
//! time in which the relay must keep carrying data (refreshes on time).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turn_client_proto::stun::Instant as StunInstant;
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::stun::types::attribute::XorMappedAddress;
use turn_client_proto::stun::types::message::Message;
use turn_client_proto::types::TransportType;
use turn_server_proto::api::{TurnServerApi, TurnServerPollRet};
use turn_server_proto::server::TurnServer;

use super::IcePolicy;
use super::gather::{Credentials, Gatherer, Route, Server, Taken};
use super::url::Transport;

const SERVER: &str = "192.0.2.1:3478";
const RELAY: &str = "192.0.2.1:40000";
const LOCAL: &str = "192.0.2.10:5000";
const PEER: &str = "198.51.100.7:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// One client gatherer, one server, a wire between them and a peer beyond the relay.
struct World {
    t0: Instant,
    now: Instant,
    gatherer: Gatherer,
    server: TurnServer,
    /// Payloads the relay delivered to the peer.
    at_peer: Vec<Vec<u8>>,
}

impl World {
    fn new(policy: IcePolicy) -> Self {
        let t0 = Instant::now();
        let mut server = TurnServer::new(TransportType::Udp, addr(SERVER), "lab".into());
        server.add_user("user".into(), "secret".into());
        let servers = [Server {
            addr: addr(SERVER),
            transport: Transport::Udp,
            turn: Some(Credentials { username: "user".into(), password: "secret".into() }),
            tls_name: None,
        }];
        let gatherer = Gatherer::new(t0, &servers, &[addr(LOCAL)], policy, Duration::from_millis(250));
        let mut w = World { t0, now: t0, gatherer, server, at_peer: Vec::new() };
        w.exchange();
        w
    }

    fn at(&self) -> StunInstant {
        StunInstant::from_nanos(i64::try_from((self.now - self.t0).as_nanos()).expect("fits"))
    }

    /// Moves packets both ways until nothing is left to move.
    fn exchange(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(x) = self.gatherer.poll_transmit() {
                assert_eq!((x.route, x.to), (Route::Udp(addr(LOCAL)), addr(SERVER)));
                let t = Transmit::new(x.data.as_slice(), TransportType::Udp, addr(LOCAL), addr(SERVER));
                if let Some(reply) = self.server.recv(t, self.at()) {
                    let reply = reply.build();
                    self.deliver(reply.from, reply.to, reply.data);
                }
                moved = true;
            }
            while let TurnServerPollRet::AllocateSocket {
                transport,
                listen_addr,
                client_addr,
                allocation_transport,
                family,
            } = self.server.poll(self.at())
            {
                let at = self.at();
                self.server.allocated_socket(
                    transport,
                    listen_addr,
                    client_addr,
                    allocation_transport,
                    family,
                    Ok(addr(RELAY)),
                    at,
                );
                moved = true;
            }
            while let Some(t) = self.server.poll_transmit(self.at()) {
                self.deliver(t.from, t.to, t.data);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange did not settle");
    }

    fn deliver(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if to == addr(LOCAL) {
            let taken = self.gatherer.handle_udp(self.now, addr(LOCAL), from, &data);
            assert!(!matches!(taken, Taken::No), "a server answer was not taken");
        } else if to == addr(PEER) {
            assert_eq!(from, addr(RELAY), "peer data must leave from the relayed address");
            self.at_peer.push(data);
        } else {
            panic!("datagram to an unknown address {to}");
        }
    }

    /// Lets virtual time pass up to `until`, waking the gatherer when it asks.
    fn run_until(&mut self, until: Instant) {
        while self.now < until {
            let next = self.gatherer.poll_timeout().unwrap_or(until).min(until).max(self.now);
            self.now = if next == self.now { self.now + Duration::from_millis(1) } else { next };
            self.gatherer.handle_timeout(self.now);
            self.exchange();
        }
    }
}

#[test]
fn a_relayed_address_is_allocated_and_announced_without_delay_under_the_relay_policy() {
    let mut w = World::new(IcePolicy::Relay);
    // turn-client-proto spaces requests 50 ms apart: 401, then the signed Allocate.
    let until = w.now + Duration::from_millis(100);
    w.run_until(until);
    let c = w.gatherer.poll_candidate().expect("a relayed candidate");
    assert_eq!(c.kind(), str0m::CandidateKind::Relayed);
    assert_eq!(c.addr(), addr(RELAY));
}

#[test]
fn the_ladder_holds_relayed_candidates_back_until_the_delay() {
    let mut w = World::new(IcePolicy::All);
    assert!(w.gatherer.poll_candidate().is_none(), "announced before the relay delay");
    let until = w.now + Duration::from_millis(300);
    w.run_until(until);
    assert_eq!(w.gatherer.poll_candidate().map(|c| c.addr()), Some(addr(RELAY)));
}

#[test]
fn a_direct_link_gives_the_unannounced_relay_back() {
    let mut w = World::new(IcePolicy::All);
    w.gatherer.direct_connected(w.now);
    w.exchange();
    let until = w.now + Duration::from_secs(1);
    w.run_until(until);
    assert!(w.gatherer.poll_candidate().is_none(), "a relay was announced after a direct link");
}

#[test]
fn the_relay_keeps_carrying_data_for_hours_of_virtual_time() {
    let mut w = World::new(IcePolicy::Relay);
    let until = w.now + Duration::from_millis(100);
    w.run_until(until);
    let relayed = w.gatherer.poll_candidate().expect("relayed candidate").addr();
    w.gatherer.add_remote(w.now, addr(PEER));
    w.exchange();
    let mut sent = 0u32;
    // Three hours: allocation (10 min by default here), permission (5 min)
    // and channel (10 min) lifetimes all pass many times over.
    for minute in 0..180u64 {
        let until = w.t0 + Duration::from_secs(60 * minute);
        w.run_until(until);
        let payload = format!("ping {minute}").into_bytes();
        assert!(w.gatherer.send_relayed(w.now, relayed, addr(PEER), &payload).is_some());
        w.exchange();
        sent += 1;
        assert_eq!(w.at_peer.len(), sent as usize, "ping at minute {minute} did not reach the peer");
        assert_eq!(w.at_peer.last(), Some(&payload));
    }
}

#[test]
fn private_addresses_are_not_asked_for_on_a_public_relay() {
    use std::net::IpAddr;
    let local = |s: &str| super::gather::is_local(s.parse::<IpAddr>().expect("ip"));
    assert!(local("10.1.2.3") && local("192.168.0.1") && local("172.20.0.1") && local("100.64.0.1"));
    assert!(local("127.0.0.1") && local("169.254.1.1") && local("fd00::1") && local("fe80::1") && local("::1"));
    assert!(!local("203.0.113.7") && !local("198.51.100.1") && !local("2001:db8::1") && !local("100.128.0.1"));
}

/// A STUN server at `STUN` whose alternate address is `STUN_ALT`, behind a NAT that maps
/// the gatherer's socket to `mapped(destination)`.
const STUN: &str = "192.0.2.5:3478";
const STUN_ALT: &str = "192.0.2.6:3479";

fn stun_answer(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
    use turn_client_proto::stun::types::attribute::{AttributeType, MappedSocketAddr};
    use turn_client_proto::stun::types::message::{MessageWrite, MessageWriteExt, MessageWriteVec};
    let msg = Message::from_bytes(request).expect("a STUN request");
    let mut out = Message::builder_success(&msg, MessageWriteVec::new());
    out.add_attribute(&XorMappedAddress::new(mapped, msg.transaction_id())).expect("XOR-MAPPED-ADDRESS");
    let other = MappedSocketAddr::new(addr(STUN_ALT));
    out.add_attribute(&other.to_raw(AttributeType::new(0x802c))).expect("OTHER-ADDRESS");
    out.finish()
}

/// Runs a gatherer with a STUN server (answering as `nat` maps) and a TURN
/// server for `limit` of virtual time; returns when the relayed candidate
/// was announced, if it was.
fn relay_announced_after(nat: impl Fn(SocketAddr) -> Option<SocketAddr>, limit: Duration) -> Option<Duration> {
    let mut w = World::new(IcePolicy::All);
    let stun = Server { addr: addr(STUN), transport: Transport::Udp, turn: None, tls_name: None };
    let turn = Server {
        addr: addr(SERVER),
        transport: Transport::Udp,
        turn: Some(Credentials { username: "user".into(), password: "secret".into() }),
        tls_name: None,
    };
    // Relay delay far beyond the limit: only the NAT's behaviour can bring the relay forward.
    w.gatherer = Gatherer::new(w.now, &[stun, turn], &[addr(LOCAL)], IcePolicy::All, Duration::from_secs(60));
    let end = w.now + limit;
    while w.now < end {
        // STUN answers first, then the TURN exchange.
        let mut turn_bound = Vec::new();
        while let Some(x) = w.gatherer.poll_transmit() {
            if x.to == addr(SERVER) {
                turn_bound.push(x);
            } else if let Some(mapped) = nat(x.to) {
                let answer = stun_answer(&x.data, mapped);
                let _ = w.gatherer.handle_udp(w.now, addr(LOCAL), x.to, &answer);
            }
        }
        for x in turn_bound {
            let t = Transmit::new(x.data.as_slice(), TransportType::Udp, addr(LOCAL), addr(SERVER));
            if let Some(reply) = w.server.recv(t, w.at()) {
                let reply = reply.build();
                w.deliver(reply.from, reply.to, reply.data);
            }
        }
        w.exchange();
        while let Some(c) = w.gatherer.poll_candidate() {
            if c.kind() == str0m::CandidateKind::Relayed {
                return Some(w.now - w.t0);
            }
        }
        let next = w.gatherer.poll_timeout().unwrap_or(end).min(end).max(w.now + Duration::from_millis(1));
        w.now = next;
        w.gatherer.handle_timeout(w.now);
    }
    None
}

#[test]
fn a_symmetric_nat_brings_the_relay_forward() {
    // A new public port for every destination.
    let announced = relay_announced_after(
        |to| Some(SocketAddr::new("198.51.100.20".parse().expect("ip"), if to == addr(STUN) { 40000 } else { 40001 })),
        Duration::from_secs(2),
    );
    assert!(announced.is_some(), "a symmetric NAT waited for the relay delay");
}

#[test]
fn a_cone_nat_waits_for_the_relay_delay() {
    // One public port whatever the destination: direct paths are likely.
    let announced = relay_announced_after(|_| Some(addr("198.51.100.20:40000")), Duration::from_secs(2));
    assert_eq!(announced, None, "the relay came forward behind a cone NAT");
}

#[test]
fn silence_from_stun_brings_the_relay_forward() {
    let announced = relay_announced_after(|_| None, Duration::from_secs(5));
    assert!(announced.is_some(), "no STUN answer, yet no relay before the delay");
}

#[test]
fn gathering_is_complete_once_the_relay_is_announced_or_a_silent_server_is_given_up() {
    let mut w = World::new(IcePolicy::All);
    assert!(!w.gatherer.is_complete(w.now), "the relay is still held back by the ladder");
    let until = w.now + Duration::from_millis(300);
    w.run_until(until);
    assert!(w.gatherer.poll_candidate().is_some());
    assert!(w.gatherer.is_complete(w.now), "the relay is announced: nothing more will come");

    // A STUN server that never answers: complete once the probes give up.
    let t0 = Instant::now();
    let silent = Server { addr: addr(SERVER), transport: Transport::Udp, turn: None, tls_name: None };
    let mut g = Gatherer::new(t0, &[silent], &[addr(LOCAL)], IcePolicy::All, Duration::from_millis(250));
    let mut now = t0;
    while !g.is_complete(now) {
        now = g.poll_timeout().expect("a probe or the gathering limit is due");
        g.handle_timeout(now);
        while g.poll_transmit().is_some() {}
        assert!(now < t0 + Duration::from_secs(5), "the probes gave up before the gathering limit");
    }
    assert!(now >= t0 + Duration::from_secs(3), "not before the probes gave up: {:?}", now - t0);
    assert!(Gatherer::new(t0, &[], &[addr(LOCAL)], IcePolicy::All, Duration::ZERO).is_complete(t0), "no servers");
}
