//! A NAT lab for Switchboard's NAT-traversal tests and benchmarks.
//!
//! [`Lab::build`] wires Linux network namespaces into a small internet: a public segment
//! (203.0.113.0/24, a bridge), a server with two addresses on it, and sites, each a
//! [`NatKind`]: peers on the public segment itself, or behind a router namespace whose nftables
//! ruleset is a full-cone, restricted-cone, port-restricted-cone, symmetric or UDP-blocking NAT.
//! Code runs inside a namespace with [`Netns::run`] (a thread) or [`Netns::command`] (a
//! process); sockets keep the namespace they were made in.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use switchboard_natlab::{Lab, LabSpec, NatKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lab = Lab::build(&LabSpec::new().site(NatKind::Symmetric, 1))?;
//! let server = lab.server();
//! let listener = server.netns().run(|| UdpSocket::bind((server.ip(), 3478)))?;
//! let peer = lab.peer(0, 0);
//! let socket = peer.netns().run(|| UdpSocket::bind((peer.ip(), 0)))?;
//! socket.send_to(b"ping", (server.ip(), 3478))?;
//! let mut buf = [0; 16];
//! let (_, seen) = listener.recv_from(&mut buf)?;
//! assert_eq!(seen.ip(), peer.public_ip());
//! # Ok(()) }
//! ```
//!
//! Requirements: root, `ip` and `tc` (iproute2), `nft` (nftables), `sysctl` (procps), and for
//! [`Lab::set_delay`] on kernels without the netem qdisc, `iptables`. The lab never touches the root namespace:
//! interfaces are made inside the lab's namespaces and nothing routes out of them.

mod chaos;
mod cmd;
mod delay;
mod error;
mod lab;
mod netns;
mod nft;
mod spec;

pub use chaos::block_udp_here;
pub use error::LabError;
pub use lab::{Lab, Peer, Router, Server, Site, sweep_stale};
pub use netns::Netns;
pub use spec::{LabSpec, MAX_OPEN_PEERS, MAX_PEERS_PER_SITE, MAX_SITES, NatKind, SiteSpec};
