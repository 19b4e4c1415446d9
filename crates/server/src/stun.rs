//! A STUN Binding responder with RFC 5780 NAT behaviour discovery.
//!
//! [`StunResponder`] answers Binding requests on up to four UDP sockets:
//! the primary address (IP1:P1) and, when an alternate IP is configured,
//! IP1:P2, IP2:P1 and IP2:P2. Every answer carries XOR-MAPPED-ADDRESS,
//! RESPONSE-ORIGIN and, with the alternates, OTHER-ADDRESS = IP2:P2; a
//! CHANGE-REQUEST makes the answer leave from the socket with the other IP
//! and/or port. That is what a client needs to tell how its NAT maps and
//! filters (`switchboard nat`).
//!
//! The TURN server owns the primary socket's receive loop and hands every
//! datagram to [`StunResponder::answer_primary`] first; without a TURN server,
//! [`StunResponder::serve_primary`] reads it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use stun_types::attribute::{
    Attribute, AttributeStaticType, AttributeType, Fingerprint, MappedSocketAddr, XorMappedAddress,
};
use stun_types::message::{
    BINDING, Message, MessageClass, MessageHeader, MessageWrite, MessageWriteExt, MessageWriteVec,
};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// CHANGE-REQUEST (RFC 5780).
const CHANGE_REQUEST: AttributeType = AttributeType::new(0x0003);
/// RESPONSE-ORIGIN (RFC 5780).
const RESPONSE_ORIGIN: AttributeType = AttributeType::new(0x802b);
/// OTHER-ADDRESS (RFC 5780).
const OTHER_ADDRESS: AttributeType = AttributeType::new(0x802c);
/// CHANGE-REQUEST flag: answer from the other IP.
const CHANGE_IP: u32 = 0x4;
/// CHANGE-REQUEST flag: answer from the other port.
const CHANGE_PORT: u32 = 0x2;
/// Attributes a request may carry that we understand.
const UNDERSTOOD: [AttributeType; 2] = [CHANGE_REQUEST, Fingerprint::TYPE];
/// Largest datagram read; a longer one is cut short and then ignored.
const RECV_BUFFER: usize = 2048;
/// How often binding is retried when a port picked by the system turns out
/// to leave no room for its alternate.
const BIND_ATTEMPTS: usize = 16;

/// Answers STUN Binding requests, with RFC 5780 attributes.
#[derive(Debug)]
pub struct StunResponder {
    /// The sockets by index `ip_changed << 1 | port_changed`: primary,
    /// IP1:P2, IP2:P1, IP2:P2. Only the primary without an alternate IP.
    sockets: Vec<(Arc<UdpSocket>, SocketAddr)>,
}

/// Keeps a responder's serving tasks running; dropping it stops them.
#[derive(Debug)]
#[must_use = "the tasks stop when the guard drops"]
pub struct ServeGuard {
    tasks: Vec<JoinHandle<()>>,
}

/// What [`StunResponder::serve_alternates`] returns.
pub type AlternatesGuard = ServeGuard;

impl Drop for ServeGuard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl StunResponder {
    /// Binds the primary socket and, when `alt_ip` is given, the three
    /// alternates: IP1:P2, IP2:P1 and IP2:P2, where P2 is `alt_port`, or the
    /// primary port + 1 without one. Port 0 picks free ports (retried a few
    /// times when the port next to a picked one is taken).
    ///
    /// With an alternate IP the primary IP must be a specific address (not
    /// `0.0.0.0` or `::`) of the same family; `alt_port` needs `alt_ip`.
    pub async fn bind(primary: SocketAddr, alt_ip: Option<IpAddr>, alt_port: Option<u16>) -> io::Result<Arc<Self>> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        match alt_ip {
            None if alt_port.is_some() => return invalid("an alternate STUN port needs an alternate IP".into()),
            None => {}
            Some(ip) if ip.is_ipv4() != primary.is_ipv4() => {
                return invalid(format!("the alternate STUN IP {ip} is not of the family of {primary}"));
            }
            Some(ip) if ip.is_unspecified() || primary.ip().is_unspecified() => {
                return invalid(format!(
                    "an alternate STUN IP needs specific addresses, not {} and {ip}",
                    primary.ip()
                ));
            }
            Some(ip) if ip == primary.ip() => {
                return invalid(format!("the alternate STUN IP {ip} is the primary IP"));
            }
            Some(_) if alt_port.is_some_and(|p| p != 0 && p == primary.port()) => {
                return invalid(format!("the alternate STUN port is the primary port {}", primary.port()));
            }
            Some(_) => {}
        }
        let retry = primary.port() == 0 || alt_port == Some(0);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::bind_once(primary, alt_ip, alt_port).await {
                Err(e) if retry && attempt < BIND_ATTEMPTS && e.kind() == io::ErrorKind::AddrInUse => continue,
                result => return result.map(Arc::new),
            }
        }
    }

    async fn bind_once(primary: SocketAddr, alt_ip: Option<IpAddr>, alt_port: Option<u16>) -> io::Result<Self> {
        let socket = UdpSocket::bind(primary).await?;
        let p1_addr = socket.local_addr()?;
        let mut sockets = vec![(Arc::new(socket), p1_addr)];
        let Some(ip2) = alt_ip else { return Ok(StunResponder { sockets }) };
        let (ip1, p1) = (p1_addr.ip(), p1_addr.port());
        // IP1:P2 first: with `alt_port` 0 it picks P2.
        let p2 = match alt_port {
            Some(p) => p,
            None => p1.checked_add(1).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no alternate STUN port after 65535; set one")
            })?,
        };
        let socket = UdpSocket::bind(SocketAddr::new(ip1, p2)).await?;
        let alt_port_addr = socket.local_addr()?;
        sockets.push((Arc::new(socket), alt_port_addr));
        let p2 = alt_port_addr.port();
        for addr in [SocketAddr::new(ip2, p1), SocketAddr::new(ip2, p2)] {
            let socket = UdpSocket::bind(addr).await?;
            let addr = socket.local_addr()?;
            sockets.push((Arc::new(socket), addr));
        }
        Ok(StunResponder { sockets })
    }

    /// The primary socket (to read from when the TURN server owns it).
    pub fn primary(&self) -> Arc<UdpSocket> {
        self.sockets[0].0.clone()
    }

    /// The primary address as bound.
    pub fn primary_addr(&self) -> SocketAddr {
        self.sockets[0].1
    }

    /// The alternate address (IP2:P2) that answers carry as OTHER-ADDRESS,
    /// when there is an alternate IP.
    pub fn other_address(&self) -> Option<SocketAddr> {
        self.sockets.get(3).map(|(_, addr)| *addr)
    }

    /// If `packet`, received on the primary socket from `from`, is a Binding
    /// request, answers it and returns true; anything else (other STUN
    /// methods, TURN channel data, malformed datagrams) returns false
    /// untouched.
    pub async fn answer_primary(&self, from: SocketAddr, packet: &[u8]) -> bool {
        self.answer(0, from, packet).await
    }

    /// Serves Binding requests on the alternate sockets (spawned tokio tasks,
    /// ended when the returned guard drops). Without alternates there is
    /// nothing to serve and the guard is empty.
    pub fn serve_alternates(self: &Arc<Self>) -> AlternatesGuard {
        ServeGuard { tasks: (1..self.sockets.len()).map(|i| self.spawn_reader(i)).collect() }
    }

    /// Serves the primary socket too (for when no TURN server reads it):
    /// a spawned task, ended when the returned guard drops. Anything but a
    /// Binding request is dropped.
    pub fn serve_primary(self: &Arc<Self>) -> ServeGuard {
        ServeGuard { tasks: vec![self.spawn_reader(0)] }
    }

    fn spawn_reader(self: &Arc<Self>, index: usize) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let socket = me.sockets[index].0.clone();
            let mut buf = vec![0u8; RECV_BUFFER];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        me.answer(index, from, &buf[..n]).await;
                    }
                    // ICMP errors of earlier sends surface here on some systems.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "STUN socket receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    }

    /// Answers `packet` received on socket `index`, if it is a Binding request.
    async fn answer(&self, index: usize, from: SocketAddr, packet: &[u8]) -> bool {
        let Some((out, reply)) = self.reply(index, from, packet) else { return false };
        let (socket, _) = &self.sockets[out];
        if let Err(e) = socket.send_to(&reply, from).await {
            tracing::debug!(%from, error = %e, "cannot send a STUN answer");
        }
        true
    }

    /// The answer to `packet` and the index of the socket it leaves from.
    fn reply(&self, index: usize, from: SocketAddr, packet: &[u8]) -> Option<(usize, Vec<u8>)> {
        // The header first: it is cheap, and the codec logs about malformed
        // messages, which nobody should be able to trigger at will.
        let header = MessageHeader::from_bytes(packet).ok()?;
        if header.get_type().class() != MessageClass::Request
            || !header.get_type().has_method(BINDING)
            || usize::from(header.data_length()) + MessageHeader::LENGTH != packet.len()
        {
            return None;
        }
        let request = Message::from_bytes(packet).ok()?;
        let unknown: Vec<AttributeType> = request
            .iter_attributes()
            .map(|(_, attr)| attr.get_type())
            .filter(|t| t.comprehension_required() && !UNDERSTOOD.contains(t))
            .collect();
        if !unknown.is_empty() {
            return Some((index, Message::unknown_attributes(&request, &unknown, MessageWriteVec::new()).finish()));
        }
        let change = match request.raw_attribute(CHANGE_REQUEST) {
            None => 0,
            Some(raw) => match <[u8; 4]>::try_from(&raw.value[..]) {
                Ok(bytes) => u32::from_be_bytes(bytes),
                Err(_) => return Some((index, Message::bad_request(&request, MessageWriteVec::new()).finish())),
            },
        };
        let flip = usize::from(change & CHANGE_IP != 0) << 1 | usize::from(change & CHANGE_PORT != 0);
        if flip != 0 && self.sockets.len() < 4 {
            // RFC 5780 §7.2: no alternate address, so CHANGE-REQUEST is not understood.
            let refusal = Message::unknown_attributes(&request, &[CHANGE_REQUEST], MessageWriteVec::new());
            return Some((index, refusal.finish()));
        }
        let out = index ^ flip;
        let origin = self.sockets[out].1;
        // Report an IPv4 peer on a dual-stack socket as IPv4.
        let mapped = match from {
            SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().map_or(from, |v4| SocketAddr::new(v4.into(), v6.port())),
            SocketAddr::V4(_) => from,
        };
        let mut response = Message::builder_success(&request, MessageWriteVec::new());
        let add = |result: Result<(), stun_types::message::StunWriteError>| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "cannot build a STUN answer");
            }
        };
        add(response.add_attribute(&XorMappedAddress::new(mapped, request.transaction_id())));
        if !origin.ip().is_unspecified() {
            add(response.add_attribute(&MappedSocketAddr::new(origin).to_raw(RESPONSE_ORIGIN)));
        }
        if let Some(other) = self.other_address() {
            add(response.add_attribute(&MappedSocketAddr::new(other).to_raw(OTHER_ADDRESS)));
        }
        add(response.add_fingerprint());
        Some((out, response.finish()))
    }
}
