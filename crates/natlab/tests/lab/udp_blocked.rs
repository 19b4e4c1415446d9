//! Behind a UDP-blocking router UDP gets nowhere, while TCP to the server works (masqueraded).

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{PATIENCE, build, peer_socket, try_recv, udp};
use switchboard_natlab::{LabSpec, NatKind};

#[test]
fn udp_is_dropped_and_tcp_passes() {
    let lab = build(LabSpec::new().site(NatKind::UdpBlocked, 1));
    let server = lab.server();
    let peer = lab.peer(0, 0);

    let listener = udp(server.netns(), server.ip(), 3478);
    let socket = peer_socket(peer);
    socket.send_to(b"anyone?", listener.local_addr().expect("address")).expect("the peer sends");
    assert_eq!(try_recv(&listener, Duration::from_secs(1)), None, "UDP must not pass");

    let tcp = server.netns().run(|| TcpListener::bind((server.ip(), 443))).expect("TCP listener");
    let target = tcp.local_addr().expect("address");
    let mut client =
        peer.netns().run(|| TcpStream::connect_timeout(&target, PATIENCE)).expect("TCP connects through the router");
    // The connection is established, so it is in the listener's queue already.
    let (mut accepted, from) = tcp.accept().expect("accept");
    assert_eq!(from.ip(), peer.public_ip(), "TCP is masqueraded");
    accepted.set_read_timeout(Some(PATIENCE)).expect("timeout");
    client.set_read_timeout(Some(PATIENCE)).expect("timeout");

    client.write_all(b"ping").expect("client writes");
    let mut buf = [0; 4];
    accepted.read_exact(&mut buf).expect("server reads");
    assert_eq!(&buf, b"ping");
    accepted.write_all(b"pong").expect("server writes");
    client.read_exact(&mut buf).expect("client reads");
    assert_eq!(&buf, b"pong");
}
