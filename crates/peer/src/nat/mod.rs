//! NAT behaviour discovery in the style of RFC 5780, sans-IO.
//!
//! [`NatProbe`] asks a STUN server how the NAT in front of this host maps
//! and filters UDP. It never reads a clock or touches a socket: the driver
//! feeds it received datagrams and time, and drains [`NatProbe::poll_output`]
//! until it returns [`NatOutput::Done`] with a [`NatReport`].
//! [`detect_nat`] is the tokio driver.
//!
//! The procedure, one transaction at a time (a request is retransmitted
//! after 100, 200, 400 and 800 ms and given up after 2 s):
//!
//! 1. A Binding request to the server gives the mapped address and the
//!    server's OTHER-ADDRESS. No answer: UDP is blocked. Mapped address
//!    equal to the local one: no NAT. No OTHER-ADDRESS: the behaviour tests
//!    need a server with two addresses, so they are skipped.
//! 2. Filtering, before anything is sent to the server's other address: a
//!    request asking the answer to come from the other IP and port; if it
//!    arrives the filtering is endpoint-independent. Otherwise a request
//!    asking for the other port only; if it arrives the filtering is
//!    address-dependent, else address- and port-dependent.
//! 3. Mapping: a request to (other IP, primary port). The same mapped address
//!    as in step 1 means endpoint-independent mapping; otherwise a request to
//!    (other IP, other port) tells address-dependent (same as the second)
//!    from address- and port-dependent mapping.

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use turn_client_proto::stun::types::attribute::{AttributeType, MappedSocketAddr, RawAttribute, XorMappedAddress};
use turn_client_proto::stun::types::message::{
    BINDING, Message, MessageClass, MessageHeader, MessageWrite, MessageWriteExt, MessageWriteVec, TransactionId,
};

pub use crate::native::nat::{NatError, detect_nat};

/// MAPPED-ADDRESS (RFC 5389), sent by old servers instead of XOR-MAPPED-ADDRESS.
const MAPPED_ADDRESS: AttributeType = AttributeType::new(0x0001);
/// CHANGE-REQUEST (RFC 5780): asks the answer to leave from another IP and/or port.
const CHANGE_REQUEST: AttributeType = AttributeType::new(0x0003);
/// CHANGED-ADDRESS (RFC 3489), the older name of OTHER-ADDRESS.
const CHANGED_ADDRESS: AttributeType = AttributeType::new(0x0005);
/// OTHER-ADDRESS (RFC 5780): the server's alternate IP and port.
const OTHER_ADDRESS: AttributeType = AttributeType::new(0x802c);
/// CHANGE-REQUEST flag: answer from the other IP.
const CHANGE_IP: u32 = 0x4;
/// CHANGE-REQUEST flag: answer from the other port.
const CHANGE_PORT: u32 = 0x2;

/// First retransmission interval; it doubles after each retransmission.
const INITIAL_RTO: Duration = Duration::from_millis(100);
/// How long one test waits for its answer, retransmissions included.
const TEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How a NAT maps or filters, as RFC 4787 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Behaviour {
    /// The same for every remote address and port.
    EndpointIndependent,
    /// Depends on the remote IP address, not on its port.
    AddressDependent,
    /// Depends on the remote IP address and port.
    AddressAndPortDependent,
    /// Not found out (the server has one address, or a test got no usable answer).
    Unknown,
}

impl Behaviour {
    /// A short, stable name: `endpoint-independent`, `address-dependent`,
    /// `address-and-port-dependent` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::EndpointIndependent => "endpoint-independent",
            Behaviour::AddressDependent => "address-dependent",
            Behaviour::AddressAndPortDependent => "address-and-port-dependent",
            Behaviour::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classic name of a NAT's behaviour, from its mapping and filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NatType {
    /// No NAT: the mapped address is the local address.
    Open,
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    Restricted,
    /// Endpoint-independent mapping, address- and port-dependent filtering.
    PortRestricted,
    /// The mapping depends on the destination.
    Symmetric,
    /// The server never answered: UDP does not get through.
    UdpBlocked,
    /// Not found out (the server has one address, or a test got no usable answer).
    Unknown,
}

impl NatType {
    /// Whether direct peer-to-peer connections are likely from behind this
    /// NAT. Behind a symmetric NAT they usually need a TURN relay; with UDP
    /// blocked only a relay helps; unknown counts as unlikely.
    pub fn direct_likely(self) -> bool {
        matches!(self, NatType::Open | NatType::FullCone | NatType::Restricted | NatType::PortRestricted)
    }

    /// A short, stable name: `open`, `full-cone`, `restricted`,
    /// `port-restricted`, `symmetric`, `udp-blocked` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            NatType::Open => "open",
            NatType::FullCone => "full-cone",
            NatType::Restricted => "restricted",
            NatType::PortRestricted => "port-restricted",
            NatType::Symmetric => "symmetric",
            NatType::UdpBlocked => "udp-blocked",
            NatType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for NatType {
    /// Names the type in words and says whether direct connections are likely.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NatType::Open => "open (no NAT): direct connections are likely",
            NatType::FullCone => "full-cone NAT: direct connections are likely",
            NatType::Restricted => "restricted-cone NAT: direct connections are likely",
            NatType::PortRestricted => {
                "port-restricted-cone NAT: direct connections are likely, \
                 except to peers behind a symmetric NAT"
            }
            NatType::Symmetric => {
                "symmetric NAT: direct connections are unlikely \
                 (except to open or full-cone peers); expect a TURN relay"
            }
            NatType::UdpBlocked => "UDP blocked: direct connections are not possible; only a relay can help",
            NatType::Unknown => "unknown: cannot tell whether direct connections are likely",
        })
    }
}

/// What a probe found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatReport {
    /// The local address the probe sent from.
    pub local: SocketAddr,
    /// The address the server saw (`None` when it never answered).
    pub mapped: Option<SocketAddr>,
    /// How the NAT maps: does the mapped address depend on the destination?
    pub mapping: Behaviour,
    /// How the NAT filters: who may send to the mapped address?
    pub filtering: Behaviour,
    /// The classic name of the behaviour.
    pub nat_type: NatType,
    /// The server's alternate address (OTHER-ADDRESS), when it has one.
    pub other_address: Option<SocketAddr>,
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatOutput {
    /// Send this datagram from the probe's socket.
    Transmit(Transmit),
    /// Nothing more until this time (or a received datagram): then call
    /// [`NatProbe::handle_timeout`].
    Timeout(Instant),
    /// Finished; returned again on every later call.
    Done(NatReport),
}

/// One test of the procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Plain Binding request to the primary address.
    Binding,
    /// CHANGE-REQUEST for the other IP and port.
    FilterBoth,
    /// CHANGE-REQUEST for the other port.
    FilterPort,
    /// Binding request to (other IP, primary port).
    MapIp,
    /// Binding request to (other IP, other port).
    MapBoth,
}

/// The request in flight.
#[derive(Debug)]
struct Transaction {
    step: Step,
    id: TransactionId,
    destination: SocketAddr,
    request: Vec<u8>,
    /// When to retransmit, if ever again.
    resend_at: Option<Instant>,
    rto: Duration,
    /// When to give up.
    deadline: Instant,
}

/// How a test ended.
#[derive(Debug)]
enum Outcome {
    /// A success response.
    Answered { from: SocketAddr, mapped: Option<SocketAddr>, other: Option<SocketAddr> },
    /// An error response (the server refused the request).
    Refused,
    /// No answer in time.
    Lost,
}

/// The RFC 5780 behaviour-discovery client, sans-IO. See the module docs.
#[derive(Debug)]
pub struct NatProbe {
    local: SocketAddr,
    server: SocketAddr,
    pending: Option<Transaction>,
    /// Whether the current request still has to be handed to the driver.
    unsent: bool,
    mapped: Option<SocketAddr>,
    /// The mapped address seen from (other IP, primary port).
    mapped_other_ip: Option<SocketAddr>,
    other: Option<SocketAddr>,
    mapping: Behaviour,
    filtering: Behaviour,
    /// The mapping is known not to be endpoint-independent (even when the
    /// last mapping test got no answer).
    destination_dependent: bool,
    report: Option<NatReport>,
}

impl NatProbe {
    /// Starts a probe from the socket bound to `local` (a concrete address:
    /// it is compared with the mapped one) against the STUN `server`. The
    /// first request is ready in [`poll_output`](Self::poll_output).
    pub fn new(now: Instant, local: SocketAddr, server: SocketAddr) -> Self {
        let mut probe = NatProbe {
            local,
            server,
            pending: None,
            unsent: false,
            mapped: None,
            mapped_other_ip: None,
            other: None,
            mapping: Behaviour::Unknown,
            filtering: Behaviour::Unknown,
            destination_dependent: false,
            report: None,
        };
        probe.start(now, Step::Binding);
        probe
    }

    /// The report, once the probe has finished.
    pub fn report(&self) -> Option<NatReport> {
        self.report
    }

    /// Takes a datagram received on the probe's socket. Returns whether it
    /// was the answer the probe waits for; anything else (other traffic,
    /// late or duplicate answers, garbage) is ignored.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> bool {
        let Some(tx) = &self.pending else { return false };
        let Some(outcome) = parse_response(tx.id, from, data) else { return false };
        self.finish(now, outcome);
        true
    }

    /// Lets time pass: retransmits, or gives a test up.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(tx) = &mut self.pending else { return };
        if now >= tx.deadline {
            self.finish(now, Outcome::Lost);
        } else if tx.resend_at.is_some_and(|at| now >= at) {
            tx.rto *= 2;
            let next = now + tx.rto;
            tx.resend_at = (next < tx.deadline).then_some(next);
            self.unsent = true;
        }
    }

    /// The next thing to do. Drain it until it returns a timeout or `Done`.
    pub fn poll_output(&mut self) -> NatOutput {
        if let Some(report) = self.report {
            return NatOutput::Done(report);
        }
        let Some(tx) = &self.pending else {
            // Unreachable: without a report a transaction is always pending.
            return NatOutput::Done(self.conclude());
        };
        if self.unsent {
            self.unsent = false;
            return NatOutput::Transmit(Transmit { destination: tx.destination, contents: tx.request.clone() });
        }
        NatOutput::Timeout(tx.resend_at.map_or(tx.deadline, |at| at.min(tx.deadline)))
    }

    /// Sends the request of `step`.
    fn start(&mut self, now: Instant, step: Step) {
        let (destination, change) = match (step, self.other) {
            (Step::Binding, _) => (self.server, 0),
            (Step::FilterBoth, _) => (self.server, CHANGE_IP | CHANGE_PORT),
            (Step::FilterPort, _) => (self.server, CHANGE_PORT),
            (Step::MapIp, Some(other)) => (SocketAddr::new(other.ip(), self.server.port()), 0),
            (Step::MapBoth, Some(other)) => (other, 0),
            (Step::MapIp | Step::MapBoth, None) => {
                self.report = Some(self.conclude());
                return;
            }
        };
        let (id, request) = binding_request(change);
        self.pending = Some(Transaction {
            step,
            id,
            destination,
            request,
            resend_at: Some(now + INITIAL_RTO),
            rto: INITIAL_RTO,
            deadline: now + TEST_TIMEOUT,
        });
        self.unsent = true;
    }

    /// Records how the current test ended and starts the next one.
    fn finish(&mut self, now: Instant, outcome: Outcome) {
        let Some(tx) = self.pending.take() else { return };
        self.unsent = false;
        let next = match (tx.step, outcome) {
            (Step::Binding, Outcome::Answered { mapped: Some(mapped), other, .. }) => {
                self.mapped = Some(mapped);
                self.other = other.filter(|o| valid_other(self.server, *o));
                if self.other.is_none() {
                    tracing::debug!(server = %self.server, "no usable OTHER-ADDRESS: behaviour tests skipped");
                }
                self.other.map(|_| Step::FilterBoth)
            }
            (Step::Binding, Outcome::Lost) => {
                self.report = Some(NatReport { nat_type: NatType::UdpBlocked, ..self.conclude() });
                return;
            }
            // Refused, or answered without a mapped address: nothing to go on.
            (Step::Binding, _) => None,
            (Step::FilterBoth, Outcome::Answered { from, .. }) => {
                // An answer from the primary address means the server ignored CHANGE-REQUEST.
                if from.ip() != self.server.ip() && from.port() != self.server.port() {
                    self.filtering = Behaviour::EndpointIndependent;
                }
                Some(Step::MapIp)
            }
            (Step::FilterBoth, Outcome::Refused) => Some(Step::MapIp),
            (Step::FilterBoth, Outcome::Lost) => Some(Step::FilterPort),
            (Step::FilterPort, Outcome::Answered { from, .. }) => {
                if from.ip() == self.server.ip() && from.port() != self.server.port() {
                    self.filtering = Behaviour::AddressDependent;
                }
                Some(Step::MapIp)
            }
            (Step::FilterPort, Outcome::Refused) => Some(Step::MapIp),
            (Step::FilterPort, Outcome::Lost) => {
                self.filtering = Behaviour::AddressAndPortDependent;
                Some(Step::MapIp)
            }
            (Step::MapIp, Outcome::Answered { mapped: Some(mapped), .. }) => {
                if Some(mapped) == self.mapped {
                    self.mapping = Behaviour::EndpointIndependent;
                    None
                } else {
                    self.destination_dependent = true;
                    self.mapped_other_ip = Some(mapped);
                    Some(Step::MapBoth)
                }
            }
            (Step::MapIp, _) => None,
            (Step::MapBoth, Outcome::Answered { mapped: Some(mapped), .. }) => {
                self.mapping = if Some(mapped) == self.mapped_other_ip {
                    Behaviour::AddressDependent
                } else {
                    Behaviour::AddressAndPortDependent
                };
                None
            }
            (Step::MapBoth, _) => None,
        };
        match next {
            Some(step) => self.start(now, step),
            None => self.report = Some(self.conclude()),
        }
    }

    /// The report from what the tests found.
    fn conclude(&self) -> NatReport {
        let nat_type = match self.mapped {
            None => NatType::Unknown,
            Some(mapped) if mapped == self.local => NatType::Open,
            Some(_) if self.destination_dependent => NatType::Symmetric,
            Some(_) => match (self.mapping, self.filtering) {
                (Behaviour::EndpointIndependent, Behaviour::EndpointIndependent) => NatType::FullCone,
                (Behaviour::EndpointIndependent, Behaviour::AddressDependent) => NatType::Restricted,
                (Behaviour::EndpointIndependent, Behaviour::AddressAndPortDependent) => NatType::PortRestricted,
                _ => NatType::Unknown,
            },
        };
        NatReport {
            local: self.local,
            mapped: self.mapped,
            mapping: self.mapping,
            filtering: self.filtering,
            nat_type,
            other_address: self.other,
        }
    }
}

/// A Binding request, with a CHANGE-REQUEST attribute when `change` has flags.
fn binding_request(change: u32) -> (TransactionId, Vec<u8>) {
    let mut msg = Message::builder_request(BINDING, MessageWriteVec::new());
    if change != 0 {
        let value = change.to_be_bytes();
        // Cannot fail: there is no MESSAGE-INTEGRITY or FINGERPRINT before it.
        if let Err(e) = msg.add_attribute(&RawAttribute::new(CHANGE_REQUEST, &value)) {
            tracing::debug!(error = %e, "cannot add CHANGE-REQUEST");
        }
    }
    let id = msg.transaction_id();
    (id, msg.finish())
}

/// The outcome of the transaction `id` if `data` answers it.
fn parse_response(id: TransactionId, from: SocketAddr, data: &[u8]) -> Option<Outcome> {
    // The header first: cheap, and it keeps the codec from logging about traffic
    // that is not for us.
    let header = MessageHeader::from_bytes(data).ok()?;
    if header.transaction_id() != id
        || !header.get_type().has_method(BINDING)
        || usize::from(header.data_length()) + MessageHeader::LENGTH != data.len()
    {
        return None;
    }
    let msg = Message::from_bytes(data).ok()?;
    match msg.class() {
        MessageClass::Success => {}
        MessageClass::Error => return Some(Outcome::Refused),
        MessageClass::Request | MessageClass::Indication => return None,
    }
    let address = |atype| msg.raw_attribute(atype).and_then(|raw| MappedSocketAddr::from_raw(&raw).ok());
    let mapped = match msg.attribute::<XorMappedAddress>() {
        Ok(xor) => Some(xor.addr(id)),
        Err(_) => address(MAPPED_ADDRESS).map(|a| a.addr()),
    };
    let other = address(OTHER_ADDRESS).or_else(|| address(CHANGED_ADDRESS)).map(|a| a.addr());
    Some(Outcome::Answered { from, mapped, other })
}

/// The OTHER-ADDRESS (or CHANGED-ADDRESS) of a Binding answer, if it has a usable one.
pub(crate) fn other_address(server: SocketAddr, msg: &Message<'_>) -> Option<SocketAddr> {
    let address = |atype| msg.raw_attribute(atype).and_then(|raw| MappedSocketAddr::from_raw(&raw).ok());
    let other = address(OTHER_ADDRESS).or_else(|| address(CHANGED_ADDRESS))?.addr();
    valid_other(server, other).then_some(other)
}

/// Whether `other` can serve as the server's alternate address: same family,
/// and both IP and port differ from the primary.
fn valid_other(server: SocketAddr, other: SocketAddr) -> bool {
    server.is_ipv4() == other.is_ipv4() && other.ip() != server.ip() && other.port() != server.port()
}
