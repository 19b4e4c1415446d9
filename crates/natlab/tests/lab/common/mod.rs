//! Helpers for the NAT lab's tests: building a lab (failing, never skipping, without root), UDP
//! sockets inside namespaces, a reflector on the server, and receives that never wait forever.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use switchboard_natlab::{Lab, LabSpec, Netns, Peer};

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test listens, after a later packet on the same path arrived, for a stray one that
/// should not arrive at all (only reordering between CPUs could make it late).
pub const STRAGGLERS: Duration = Duration::from_millis(300);

/// The reflector's port, on both server addresses.
pub const REFLECTOR_PORT: u16 = 3478;

/// Builds the lab, failing the test with the reason if it cannot (not root, no nft, ...).
pub fn build(spec: LabSpec) -> Lab {
    match Lab::build(&spec) {
        Ok(lab) => lab,
        Err(error) => panic!("cannot build the NAT lab: {error}"),
    }
}

/// A UDP socket bound to `ip:port` inside `netns`, whose receives give up after [`PATIENCE`].
pub fn udp(netns: &Netns, ip: Ipv4Addr, port: u16) -> UdpSocket {
    let socket = netns.run(|| UdpSocket::bind((ip, port))).expect("bind a UDP socket in the namespace");
    socket.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
    socket
}

/// A UDP socket on an ephemeral port of the peer's own address.
pub fn peer_socket(peer: &Peer) -> UdpSocket {
    udp(peer.netns(), peer.ip(), 0)
}

/// Receives one datagram; fails the test if none comes within the socket's timeout.
pub fn recv(socket: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = [0; 1500];
    match socket.recv_from(&mut buf) {
        Ok((len, from)) => (String::from_utf8_lossy(&buf[..len]).into_owned(), from),
        Err(error) => panic!("nothing arrived on {:?}: {error}", socket.local_addr()),
    }
}

/// Receives one datagram if one comes within `wait`.
pub fn try_recv(socket: &UdpSocket, wait: Duration) -> Option<(String, SocketAddr)> {
    socket.set_read_timeout(Some(wait)).expect("set a read timeout");
    let mut buf = [0; 1500];
    let got = match socket.recv_from(&mut buf) {
        Ok((len, from)) => Some((String::from_utf8_lossy(&buf[..len]).into_owned(), from)),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(error) => panic!("receiving on {:?}: {error}", socket.local_addr()),
    };
    socket.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
    got
}

/// A UDP reflector on both server addresses: answers every datagram with the text of the
/// address it came from, as a STUN binding response would. Stops when dropped.
pub struct Reflector {
    addrs: [SocketAddr; 2],
    control: UdpSocket,
    threads: Vec<JoinHandle<()>>,
}

const STOP: &[u8] = b"reflector: stop";

impl Reflector {
    pub fn start(lab: &Lab) -> Self {
        let server = lab.server();
        let control = udp(server.netns(), server.ip(), 0);
        let control_addr = control.local_addr().expect("control address");
        let mut addrs = Vec::new();
        let mut threads = Vec::new();
        for ip in server.ips() {
            let socket = udp(server.netns(), ip, REFLECTOR_PORT);
            socket.set_read_timeout(None).expect("clear the read timeout");
            addrs.push(socket.local_addr().expect("reflector address"));
            threads.push(std::thread::spawn(move || {
                let mut buf = [0; 1500];
                loop {
                    let (len, from) = socket.recv_from(&mut buf).expect("reflector receives");
                    if from == control_addr && &buf[..len] == STOP {
                        return;
                    }
                    // With `set_loss`, some replies are dropped on the way out (EPERM).
                    let _ = socket.send_to(from.to_string().as_bytes(), from);
                }
            }));
        }
        Self { addrs: [addrs[0], addrs[1]], control, threads }
    }

    /// The reflector on the server's primary address.
    pub fn primary(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The reflector on the server's alternate address.
    pub fn alternate(&self) -> SocketAddr {
        self.addrs[1]
    }

    /// The public address `socket` is seen from when it sends to `reflector`.
    pub fn mapped(&self, socket: &UdpSocket, reflector: SocketAddr) -> SocketAddr {
        socket.send_to(b"binding request", reflector).expect("send to the reflector");
        let (text, from) = recv(socket);
        assert_eq!(from, reflector, "the answer comes from the reflector asked");
        text.parse().expect("the reflector answers with an address")
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        for addr in self.addrs {
            let _ = self.control.send_to(STOP, addr);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// What reached a peer from server sockets it never sent to.
#[derive(Debug)]
pub struct Unsolicited {
    /// Labels of the packets that got through: "other ip" (203.0.113.11:3478), "other port"
    /// (203.0.113.10:3479).
    pub reached: BTreeSet<String>,
    /// The peer's mapping, as 203.0.113.10:3478 saw it.
    pub mapping: SocketAddr,
    /// The peer's mapping as 203.0.113.11:3478 sees it when the peer then sends there.
    pub mapping_after: SocketAddr,
    /// The peer's socket, to go on with.
    pub socket: UdpSocket,
}

/// The peer sends to 203.0.113.10:3478 (`contacted`). Then 203.0.113.11:3478 (another IP)
/// and 203.0.113.10:3479 (another port of the contacted IP) send to its mapping, and
/// `contacted` sends a marker after them on the same path. Records what got to the peer up to
/// the marker, and stragglers for a moment after it.
pub fn send_unsolicited(lab: &Lab, peer: &Peer) -> Unsolicited {
    let server = lab.server();
    let contacted = udp(server.netns(), server.ip(), 3478);
    let other_ip = udp(server.netns(), server.alt_ip(), 3478);
    let other_port = udp(server.netns(), server.ip(), 3479);
    let socket = peer_socket(peer);

    socket.send_to(b"hello", contacted.local_addr().expect("address")).expect("peer sends");
    let (_, mapping) = recv(&contacted);
    other_ip.send_to(b"other ip", mapping).expect("send from the other ip");
    other_port.send_to(b"other port", mapping).expect("send from the other port");
    contacted.send_to(b"marker", mapping).expect("send the marker");

    let mut reached = BTreeSet::new();
    loop {
        let (text, _) = recv(&socket);
        if text == "marker" {
            break;
        }
        reached.insert(text);
    }
    while let Some((text, _)) = try_recv(&socket, STRAGGLERS) {
        reached.insert(text);
    }

    socket.send_to(b"hello again", other_ip.local_addr().expect("address")).expect("peer sends");
    let (_, mapping_after) = recv(&other_ip);
    Unsolicited { reached, mapping, mapping_after, socket }
}

/// The names `ip netns list` shows.
pub fn netns_list() -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output().expect("run ip netns list");
    assert!(output.status.success(), "ip netns list: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}
