//! Local addresses and UDP sockets for host candidates.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::node::HostCandidates;

/// Socket buffer size asked for on every link socket.
const SOCKET_BUFFER: usize = 4 << 20;

impl HostCandidates {
    /// The addresses this filter selects on this machine.
    pub fn addresses(&self) -> io::Result<Vec<IpAddr>> {
        match self {
            HostCandidates::Loopback => Ok(vec![IpAddr::from([127, 0, 0, 1])]),
            HostCandidates::Only(ips) => Ok(ips.clone()),
            HostCandidates::All => {
                let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()?
                    .into_iter()
                    .map(|i| i.ip())
                    .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && !is_link_local(ip))
                    .collect();
                ips.sort();
                ips.dedup();
                if ips.is_empty() {
                    ips.push(IpAddr::from([127, 0, 0, 1]));
                }
                Ok(ips)
            }
        }
    }
}

/// Every address of this machine's interfaces, loopback included.
pub(crate) fn machine_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> =
        if_addrs::get_if_addrs().map(|a| a.into_iter().map(|i| i.ip()).collect()).unwrap_or_default();
    ips.push(IpAddr::from([127, 0, 0, 1]));
    ips.sort();
    ips.dedup();
    ips
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Binds a UDP socket on `ip` (any port) with large buffers.
pub(crate) fn bind_udp(ip: IpAddr) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // The kernel may cap these (net.core.rmem_max); a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
