//! The tokio driver of [`NatProbe`](crate::nat::NatProbe).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::nat::{NatOutput, NatProbe, NatReport};

/// Why NAT discovery could not run. A server that never answers is not an
/// error: the report then says [`NatType::UdpBlocked`](crate::nat::NatType::UdpBlocked).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatError {
    /// The local address and the server are of different IP families.
    #[error("cannot reach the IPv{server_family} server {server} from the local address {bind}", server_family = if server.is_ipv4() { 4 } else { 6 })]
    AddressFamily {
        /// The STUN server.
        server: SocketAddr,
        /// The local address asked for.
        bind: IpAddr,
    },
    /// The local socket could not be bound.
    #[error("cannot bind a UDP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// No route to the server (when the local address is unspecified, the
    /// route tells which local address the probe goes out from).
    #[error("no route to {server}: {source}")]
    NoRoute {
        /// The STUN server.
        server: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Sending to the server failed.
    #[error("cannot send to {to}: {source}")]
    Send {
        /// The destination.
        to: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Receiving failed.
    #[error("cannot receive: {0}")]
    Receive(io::Error),
}

/// Finds out how the NAT between this host and the STUN `server` behaves
/// (RFC 5780): binds a UDP socket on `bind` (any port; an unspecified address
/// such as `0.0.0.0` lets the route pick), runs a [`NatProbe`] and returns its
/// report. It takes a few round trips, and about 2 s more for each test that
/// gets no answer (at most about 6 s in all).
///
/// The server needs a second IP address and port (OTHER-ADDRESS, as
/// `switchboard serve` offers with an alternate IP) for the mapping and
/// filtering tests; with a plain STUN server only the mapped address, and
/// whether there is a NAT at all, are found out.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard::nat::NatError> {
/// let report = switchboard::nat::detect_nat("192.0.2.1:3478".parse().unwrap(), "0.0.0.0".parse().unwrap()).await?;
/// println!("{} (mapped address {:?})", report.nat_type, report.mapped);
/// # Ok(()) }
/// ```
pub async fn detect_nat(server: SocketAddr, bind: IpAddr) -> Result<NatReport, NatError> {
    if server.is_ipv4() != bind.is_ipv4() {
        return Err(NatError::AddressFamily { server, bind });
    }
    let addr = SocketAddr::new(bind, 0);
    let socket = UdpSocket::bind(addr).await.map_err(|source| NatError::Bind { addr, source })?;
    let mut local = socket.local_addr().map_err(|source| NatError::Bind { addr, source })?;
    if local.ip().is_unspecified() {
        local.set_ip(route_source(server).await.map_err(|source| NatError::NoRoute { server, source })?);
    }
    let mut probe = NatProbe::new(Instant::now(), local, server);
    let mut buf = vec![0u8; 2048];
    loop {
        match probe.poll_output() {
            NatOutput::Transmit(t) => {
                if let Err(source) = socket.send_to(&t.contents, t.destination).await {
                    if t.destination == server {
                        return Err(NatError::Send { to: t.destination, source });
                    }
                    // The alternate address may be unreachable: that test then goes unanswered.
                    tracing::debug!(to = %t.destination, error = %source, "cannot send a NAT test");
                }
            }
            NatOutput::Timeout(at) => {
                tokio::select! {
                    received = socket.recv_from(&mut buf) => match received {
                        Ok((n, from)) => {
                            probe.handle_datagram(Instant::now(), from, &buf[..n]);
                        }
                        // ICMP errors surface here on some systems; the test just goes unanswered.
                        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused) => {}
                        Err(e) => return Err(NatError::Receive(e)),
                    },
                    () = tokio::time::sleep_until(at.into()) => probe.handle_timeout(Instant::now()),
                }
            }
            NatOutput::Done(report) => return Ok(report),
        }
    }
}

/// The local IP address that packets to `server` leave from (connecting a
/// UDP socket sends nothing).
async fn route_source(server: SocketAddr) -> io::Result<IpAddr> {
    let unspecified: IpAddr = if server.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() };
    let socket = UdpSocket::bind((unspecified, 0)).await?;
    socket.connect(server).await?;
    Ok(socket.local_addr()?.ip())
}
