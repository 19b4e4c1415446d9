//! Every NAT type simulated in memory on a virtual clock: a fake NAT and a
//! fake RFC 5780 server with four addresses, no sockets.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use Behaviour::{AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei};

/// One way, client to server.
const HOP: Duration = Duration::from_millis(10);
const P1: u16 = 3478;
const P2: u16 = 3479;

fn ip1() -> IpAddr {
    IpAddr::from([192, 0, 2, 1])
}

fn ip2() -> IpAddr {
    IpAddr::from([192, 0, 2, 2])
}

fn primary() -> SocketAddr {
    SocketAddr::new(ip1(), P1)
}

fn other() -> SocketAddr {
    SocketAddr::new(ip2(), P2)
}

/// Behind a NAT.
fn private() -> SocketAddr {
    "10.0.0.2:5000".parse().expect("addr")
}

/// On a public address (no NAT).
fn public() -> SocketAddr {
    "198.51.100.7:5000".parse().expect("addr")
}

/// What sits between the client and the server.
#[derive(Clone, Copy, Debug)]
enum Middlebox {
    /// Nothing: the client has a public address.
    Nothing,
    /// Drops all UDP.
    Firewall,
    /// A NAT on 198.51.100.7.
    Nat { mapping: Behaviour, filtering: Behaviour },
}

struct FakeNat {
    kind: Middlebox,
    /// Mapping key (the part of the destination the mapping depends on) → public address.
    mappings: HashMap<Option<SocketAddr>, SocketAddr>,
    /// (public address, remote) pairs the client has sent to.
    contacted: HashSet<(SocketAddr, SocketAddr)>,
    next_port: u16,
}

impl FakeNat {
    fn new(kind: Middlebox) -> Self {
        FakeNat { kind, mappings: HashMap::new(), contacted: HashSet::new(), next_port: 40000 }
    }

    /// The source address a packet from the client to `to` leaves with.
    fn outbound(&mut self, from: SocketAddr, to: SocketAddr) -> Option<SocketAddr> {
        let mapping = match self.kind {
            Middlebox::Nothing => return Some(from),
            Middlebox::Firewall => return None,
            Middlebox::Nat { mapping, .. } => mapping,
        };
        let key = match mapping {
            Behaviour::EndpointIndependent => None,
            Behaviour::AddressDependent => Some(SocketAddr::new(to.ip(), 0)),
            _ => Some(to),
        };
        let next_port = &mut self.next_port;
        let public = *self.mappings.entry(key).or_insert_with(|| {
            *next_port += 1;
            SocketAddr::new(IpAddr::from([198, 51, 100, 7]), *next_port)
        });
        self.contacted.insert((public, to));
        Some(public)
    }

    /// Whether a packet from `from` to the public address `to` gets in.
    fn inbound(&self, from: SocketAddr, to: SocketAddr) -> bool {
        match self.kind {
            Middlebox::Nothing => true,
            Middlebox::Firewall => false,
            Middlebox::Nat { filtering, .. } => {
                self.mappings.values().any(|m| *m == to)
                    && match filtering {
                        Behaviour::EndpointIndependent => true,
                        Behaviour::AddressDependent => {
                            self.contacted.iter().any(|(m, r)| *m == to && r.ip() == from.ip())
                        }
                        _ => self.contacted.contains(&(to, from)),
                    }
            }
        }
    }
}

/// An RFC 5780 server on IP1/IP2 × P1/P2.
#[derive(Clone, Copy)]
struct FakeServer {
    /// Has (and advertises) the alternate addresses.
    alternates: bool,
    /// Honours CHANGE-REQUEST (else always answers from where it was asked).
    honours_change: bool,
    /// The alternate addresses are advertised but nothing gets to or from them.
    alternates_dead: bool,
}

impl Default for FakeServer {
    fn default() -> Self {
        FakeServer { alternates: true, honours_change: true, alternates_dead: false }
    }
}

impl FakeServer {
    fn serves(&self, addr: SocketAddr) -> bool {
        addr == primary()
            || (self.alternates
                && !self.alternates_dead
                && (addr.ip() == ip1() || addr.ip() == ip2())
                && (addr.port() == P1 || addr.port() == P2))
    }

    /// The answer to `data`, received on `at` from `from`: (source, bytes).
    fn answer(&self, at: SocketAddr, from: SocketAddr, data: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
        if !self.serves(at) {
            return None;
        }
        let msg = Message::from_bytes(data).ok()?;
        if !msg.has_class(MessageClass::Request) || !msg.has_method(BINDING) {
            return None;
        }
        let change = match msg.raw_attribute(CHANGE_REQUEST) {
            Some(raw) => u32::from_be_bytes(raw.value[..].try_into().ok()?),
            None => 0,
        };
        if change != 0 && !self.alternates {
            return Some((at, Message::unknown_attributes(&msg, &[CHANGE_REQUEST], MessageWriteVec::new()).finish()));
        }
        let mut source = at;
        if self.honours_change {
            if change & CHANGE_IP != 0 {
                source.set_ip(if at.ip() == ip1() { ip2() } else { ip1() });
            }
            if change & CHANGE_PORT != 0 {
                source.set_port(if at.port() == P1 { P2 } else { P1 });
            }
        }
        if !self.serves(source) {
            return None;
        }
        let mut out = Message::builder_success(&msg, MessageWriteVec::new());
        out.add_attribute(&XorMappedAddress::new(from, msg.transaction_id())).ok()?;
        out.add_attribute(&MappedSocketAddr::new(source).to_raw(AttributeType::new(0x802b))).ok()?;
        if self.alternates {
            out.add_attribute(&MappedSocketAddr::new(other()).to_raw(OTHER_ADDRESS)).ok()?;
        }
        Some((source, out.finish()))
    }
}

struct Packet {
    at: Instant,
    to_client: bool,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// Client, NAT and server on a virtual clock.
struct Sim {
    start: Instant,
    now: Instant,
    probe: NatProbe,
    nat: FakeNat,
    server: FakeServer,
    wire: Vec<Packet>,
    rng: StdRng,
    /// Chance that any one datagram is lost.
    loss: f64,
    /// Drop this many sends of every request (retransmissions must save the day).
    drop_first_sends: usize,
    sends: HashMap<Vec<u8>, usize>,
    /// Sprinkle junk towards the client after every answer.
    garbage: bool,
    /// Virtual times (since start) of the client's transmissions.
    sent_at: Vec<Duration>,
}

impl Sim {
    fn new(local: SocketAddr, middlebox: Middlebox, server: FakeServer) -> Self {
        let now = Instant::now();
        Sim {
            start: now,
            now,
            probe: NatProbe::new(now, local, primary()),
            nat: FakeNat::new(middlebox),
            server,
            wire: Vec::new(),
            rng: StdRng::seed_from_u64(7),
            loss: 0.0,
            drop_first_sends: 0,
            sends: HashMap::new(),
            garbage: false,
            sent_at: Vec::new(),
        }
    }

    fn lost(&mut self) -> bool {
        self.loss > 0.0 && self.rng.random_bool(self.loss)
    }

    /// Runs until the probe reports; returns the report and the virtual time it took.
    fn run(mut self) -> (NatReport, Duration, Sim) {
        for _ in 0..10_000 {
            let timeout = loop {
                match self.probe.poll_output() {
                    NatOutput::Transmit(t) => self.client_sends(t),
                    NatOutput::Timeout(at) => break at,
                    NatOutput::Done(report) => {
                        assert_eq!(self.probe.poll_output(), NatOutput::Done(report), "done stays done");
                        return (report, self.now - self.start, self);
                    }
                }
            };
            assert!(timeout >= self.now, "timeouts never lie in the past");
            let next = self.wire.iter().map(|p| p.at).min().map_or(timeout, |p| p.min(timeout));
            self.now = next;
            let now = self.now;
            let (due, rest): (Vec<Packet>, Vec<Packet>) = self.wire.drain(..).partition(|p| p.at <= now);
            self.wire = rest;
            for p in due {
                self.deliver(p);
            }
            if now >= timeout {
                self.probe.handle_timeout(now);
            }
            assert!(now - self.start < Duration::from_secs(30), "the probe must finish");
        }
        panic!("the probe never finished");
    }

    fn client_sends(&mut self, t: Transmit) {
        self.sent_at.push(self.now - self.start);
        let count = self.sends.entry(t.contents.clone()).or_default();
        *count += 1;
        if *count <= self.drop_first_sends || self.lost() {
            return;
        }
        let local = self.probe.local;
        if let Some(from) = self.nat.outbound(local, t.destination) {
            self.wire.push(Packet { at: self.now + HOP, to_client: false, from, to: t.destination, data: t.contents });
        }
    }

    fn deliver(&mut self, p: Packet) {
        if p.to_client {
            if self.nat.inbound(p.from, p.to) {
                self.probe.handle_datagram(self.now, p.from, &p.data);
            }
            return;
        }
        let Some((source, answer)) = self.server.answer(p.to, p.from, &p.data) else { return };
        if self.garbage {
            for junk in junk_like(&answer, &mut self.rng) {
                self.wire.push(Packet {
                    at: self.now + HOP / 2,
                    to_client: true,
                    from: source,
                    to: p.from,
                    data: junk,
                });
            }
        }
        if !self.lost() {
            self.wire.push(Packet { at: self.now + HOP, to_client: true, from: source, to: p.from, data: answer });
        }
    }
}

/// Datagrams that must not count as `answer`: random bytes, broken headers,
/// wrong transaction ids, the wrong class, truncations.
fn junk_like(answer: &[u8], rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let len = rng.random_range(0..600);
    out.push((0..len).map(|_| rng.random()).collect());
    out.push(Vec::new());
    out.push(answer[..rng.random_range(0..answer.len())].to_vec());
    let mut wrong_id = answer.to_vec();
    wrong_id[8 + rng.random_range(0..12)] ^= 0x5a;
    out.push(wrong_id);
    let mut wrong_cookie = answer.to_vec();
    wrong_cookie[4] ^= 1;
    out.push(wrong_cookie);
    let mut as_request = answer.to_vec();
    as_request[0] &= 0xfe;
    as_request[1] &= 0xef;
    out.push(as_request);
    let mut long = answer.to_vec();
    long[2] = 0xff;
    out.push(long);
    let mut padded = answer.to_vec();
    padded.extend_from_slice(&[0; 3]);
    out.push(padded);
    out
}

fn behind(mapping: Behaviour, filtering: Behaviour) -> NatReport {
    Sim::new(private(), Middlebox::Nat { mapping, filtering }, FakeServer::default()).run().0
}

#[test]
fn no_nat_is_open() {
    let (report, took, _) = Sim::new(public(), Middlebox::Nothing, FakeServer::default()).run();
    assert_eq!(report.nat_type, NatType::Open);
    assert_eq!(report.local, public());
    assert_eq!(report.mapped, Some(public()));
    assert_eq!((report.mapping, report.filtering), (Ei, Ei));
    assert_eq!(report.other_address, Some(other()));
    assert!(took < Duration::from_millis(100), "three round trips: {took:?}");
}

#[test]
fn full_cone() {
    let report = behind(Ei, Ei);
    assert_eq!(report.nat_type, NatType::FullCone);
    assert_eq!((report.mapping, report.filtering), (Ei, Ei));
    let mapped = report.mapped.expect("mapped");
    assert_eq!(mapped.ip(), IpAddr::from([198, 51, 100, 7]));
    assert_ne!(mapped, private());
}

#[test]
fn restricted_cone() {
    let report = behind(Ei, Ad);
    assert_eq!(report.nat_type, NatType::Restricted);
    assert_eq!((report.mapping, report.filtering), (Ei, Ad));
}

#[test]
fn port_restricted_cone() {
    let report = behind(Ei, Apd);
    assert_eq!(report.nat_type, NatType::PortRestricted);
    assert_eq!((report.mapping, report.filtering), (Ei, Apd));
}

#[test]
fn symmetric_with_address_dependent_mapping() {
    let report = behind(Ad, Ad);
    assert_eq!(report.nat_type, NatType::Symmetric);
    assert_eq!((report.mapping, report.filtering), (Ad, Ad));
}

#[test]
fn symmetric_with_address_and_port_dependent_mapping() {
    let report = behind(Apd, Apd);
    assert_eq!(report.nat_type, NatType::Symmetric);
    assert_eq!((report.mapping, report.filtering), (Apd, Apd));
    let report = behind(Apd, Ei);
    assert_eq!(report.nat_type, NatType::Symmetric);
    assert_eq!((report.mapping, report.filtering), (Apd, Ei));
}

#[test]
fn silence_is_udp_blocked_after_doubling_retransmissions() {
    let (report, took, sim) = Sim::new(private(), Middlebox::Firewall, FakeServer::default()).run();
    assert_eq!(report.nat_type, NatType::UdpBlocked);
    assert_eq!(report.mapped, None);
    assert_eq!((report.mapping, report.filtering), (Behaviour::Unknown, Behaviour::Unknown));
    let ms: Vec<u128> = sim.sent_at.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [0, 100, 300, 700, 1500]);
    assert_eq!(took, TEST_TIMEOUT);
}

#[test]
fn a_server_with_one_address_tells_only_the_mapping() {
    let server = FakeServer { alternates: false, ..FakeServer::default() };
    let (report, took, _) = Sim::new(private(), Middlebox::Nat { mapping: Ei, filtering: Apd }, server).run();
    assert_eq!(report.nat_type, NatType::Unknown);
    assert!(report.mapped.is_some_and(|m| m != private()));
    assert_eq!((report.mapping, report.filtering), (Behaviour::Unknown, Behaviour::Unknown));
    assert_eq!(report.other_address, None);
    assert!(took < Duration::from_millis(50), "one round trip: {took:?}");
    let (report, _, _) = Sim::new(public(), Middlebox::Nothing, server).run();
    assert_eq!(report.nat_type, NatType::Open);
    assert_eq!((report.mapping, report.filtering), (Behaviour::Unknown, Behaviour::Unknown));
}

#[test]
fn a_server_that_ignores_change_request_leaves_filtering_unknown() {
    let server = FakeServer { honours_change: false, ..FakeServer::default() };
    let (report, _, _) = Sim::new(private(), Middlebox::Nat { mapping: Ei, filtering: Ei }, server).run();
    assert_eq!(report.filtering, Behaviour::Unknown);
    assert_eq!(report.mapping, Ei);
    assert_eq!(report.nat_type, NatType::Unknown);
}

#[test]
fn a_dead_alternate_address_leaves_mapping_unknown() {
    let server = FakeServer { alternates_dead: true, ..FakeServer::default() };
    let (report, took, _) = Sim::new(private(), Middlebox::Nat { mapping: Ei, filtering: Ei }, server).run();
    assert_eq!(report.mapping, Behaviour::Unknown);
    assert_eq!(report.nat_type, NatType::Unknown);
    assert!(report.mapped.is_some());
    assert!(took <= 3 * TEST_TIMEOUT + Duration::from_millis(100), "{took:?}");
}

#[test]
fn lost_requests_are_retransmitted() {
    for (mapping, filtering, expected) in [
        (Ei, Ei, NatType::FullCone),
        (Ei, Ad, NatType::Restricted),
        (Ei, Apd, NatType::PortRestricted),
        (Apd, Apd, NatType::Symmetric),
    ] {
        let mut sim = Sim::new(private(), Middlebox::Nat { mapping, filtering }, FakeServer::default());
        sim.drop_first_sends = 2;
        let (report, _, _) = sim.run();
        assert_eq!(report.nat_type, expected, "{mapping:?}/{filtering:?}");
        assert_eq!((report.mapping, report.filtering), (mapping, filtering));
    }
}

#[test]
fn random_loss_only_weakens_the_verdict() {
    let mut exact = 0;
    for seed in 0..20 {
        for (mapping, filtering, expected) in
            [(Ei, Ei, NatType::FullCone), (Ei, Apd, NatType::PortRestricted), (Ad, Apd, NatType::Symmetric)]
        {
            let mut sim = Sim::new(private(), Middlebox::Nat { mapping, filtering }, FakeServer::default());
            sim.rng = StdRng::seed_from_u64(seed);
            sim.loss = 0.2;
            let (report, _, _) = sim.run();
            // With 20 % loss each way all five tries of a test fail now and then
            // (0.6 %): a lost filtering answer looks like stricter filtering, a
            // lost mapping answer leaves the type unknown. Never anything laxer.
            if report.nat_type == expected {
                exact += 1;
            } else {
                assert!(
                    matches!(
                        report.nat_type,
                        NatType::Unknown | NatType::Restricted | NatType::PortRestricted | NatType::UdpBlocked
                    ),
                    "seed {seed}: {report:?}"
                );
            }
        }
    }
    assert!(exact >= 55, "only {exact} of 60 exact");
}

#[test]
fn garbage_is_ignored() {
    for (mapping, filtering, expected) in
        [(Ei, Ei, NatType::FullCone), (Ei, Ad, NatType::Restricted), (Ad, Apd, NatType::Symmetric)]
    {
        let mut sim = Sim::new(private(), Middlebox::Nat { mapping, filtering }, FakeServer::default());
        sim.garbage = true;
        let (report, _, _) = sim.run();
        assert_eq!(report.nat_type, expected);
        assert_eq!((report.mapping, report.filtering), (mapping, filtering));
    }
}

#[test]
fn mangled_answers_never_panic() {
    let now = Instant::now();
    let mut rng = StdRng::seed_from_u64(11);
    let server = FakeServer::default();
    for _ in 0..2000 {
        let mut probe = NatProbe::new(now, private(), primary());
        let NatOutput::Transmit(t) = probe.poll_output() else { panic!("first request") };
        let (source, mut answer) = server.answer(primary(), public(), &t.contents).expect("answer");
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..answer.len());
            answer[i] = rng.random();
        }
        if rng.random_bool(0.3) {
            answer.truncate(rng.random_range(0..answer.len()));
        }
        probe.handle_datagram(now, source, &answer);
        // Whatever it made of that, it keeps going or has finished.
        let _ = probe.poll_output();
        probe.handle_timeout(now + TEST_TIMEOUT);
        let _ = probe.poll_output();
    }
}

#[test]
fn an_answer_counts_once() {
    let now = Instant::now();
    let mut probe = NatProbe::new(now, private(), primary());
    let NatOutput::Transmit(t) = probe.poll_output() else { panic!("first request") };
    assert_eq!(t.destination, primary());
    assert!(matches!(probe.poll_output(), NatOutput::Timeout(at) if at == now + INITIAL_RTO));
    let (source, answer) = FakeServer::default().answer(primary(), public(), &t.contents).expect("answer");
    assert!(probe.handle_datagram(now, source, &answer));
    assert!(!probe.handle_datagram(now, source, &answer), "a duplicate is not an answer");
    // The next test: CHANGE-REQUEST for both, to the primary address.
    let NatOutput::Transmit(t) = probe.poll_output() else { panic!("filtering request") };
    assert_eq!(t.destination, primary());
    let msg = Message::from_bytes(&t.contents).expect("request");
    let change = msg.raw_attribute(CHANGE_REQUEST).expect("CHANGE-REQUEST");
    assert_eq!(&change.value[..], &[0, 0, 0, 6]);
}

#[test]
fn names_and_advice() {
    assert!(NatType::Open.direct_likely());
    assert!(NatType::FullCone.direct_likely());
    assert!(NatType::Restricted.direct_likely());
    assert!(NatType::PortRestricted.direct_likely());
    assert!(!NatType::Symmetric.direct_likely());
    assert!(!NatType::UdpBlocked.direct_likely());
    assert!(!NatType::Unknown.direct_likely());
    assert!(NatType::Symmetric.to_string().starts_with("symmetric NAT: direct connections are unlikely"));
    assert!(NatType::FullCone.to_string().contains("likely"));
    assert_eq!(NatType::PortRestricted.as_str(), "port-restricted");
    assert_eq!(Behaviour::AddressAndPortDependent.to_string(), "address-and-port-dependent");
}
