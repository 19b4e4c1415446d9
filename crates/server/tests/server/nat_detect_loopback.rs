//! NAT behaviour discovery against the STUN responder over real loopback
//! sockets: 127.0.0.1 is the primary IP, 127.0.0.2 the alternate.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stun_types::attribute::{AttributeType, MappedSocketAddr, RawAttribute, XorMappedAddress};
use stun_types::message::{BINDING, Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec};
use switchboard::nat::{Behaviour, NatType, detect_nat};
use switchboard_server::stun::StunResponder;
use tokio::net::UdpSocket;

const CHANGE_REQUEST: AttributeType = AttributeType::new(0x0003);
const RESPONSE_ORIGIN: AttributeType = AttributeType::new(0x802b);
const OTHER_ADDRESS: AttributeType = AttributeType::new(0x802c);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

async fn responder(alternates: bool) -> Arc<StunResponder> {
    let alt = alternates.then(|| ip("127.0.0.2"));
    StunResponder::bind("127.0.0.1:0".parse().expect("addr"), alt, None).await.expect("bind")
}

/// Sends a Binding request (with CHANGE-REQUEST `change` when non-zero) and
/// returns the answer's source and bytes, if one comes within 500 ms.
async fn ask(socket: &UdpSocket, to: SocketAddr, change: u32) -> Option<(SocketAddr, Vec<u8>)> {
    let mut msg = Message::builder_request(BINDING, MessageWriteVec::new());
    if change != 0 {
        msg.add_attribute(&RawAttribute::new(CHANGE_REQUEST, &change.to_be_bytes())).expect("attribute");
    }
    socket.send_to(&msg.finish(), to).await.expect("send");
    let mut buf = vec![0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await.ok()?.ok()?;
    buf.truncate(n);
    Some((from, buf))
}

fn address(msg: &Message<'_>, atype: AttributeType) -> Option<SocketAddr> {
    msg.raw_attribute(atype).and_then(|raw| MappedSocketAddr::from_raw(&raw).ok()).map(|a| a.addr())
}

#[tokio::test]
async fn loopback_with_alternates_is_open() {
    let stun = responder(true).await;
    let _primary = stun.serve_primary();
    let _alternates = stun.serve_alternates();
    let primary = stun.primary_addr();
    let other = stun.other_address().expect("other address");
    assert_eq!(other, SocketAddr::new(ip("127.0.0.2"), primary.port() + 1));

    let started = Instant::now();
    let report = detect_nat(primary, ip("127.0.0.1")).await.expect("detect");
    assert_eq!(report.nat_type, NatType::Open, "{report:?}");
    assert_eq!(report.mapped, Some(report.local));
    assert_eq!(report.local.ip(), ip("127.0.0.1"));
    assert_eq!(report.other_address, Some(other));
    assert_eq!(report.mapping, Behaviour::EndpointIndependent);
    assert_eq!(report.filtering, Behaviour::EndpointIndependent);
    assert!(report.nat_type.direct_likely());
    assert!(started.elapsed() < Duration::from_secs(1), "no test should time out: {:?}", started.elapsed());
}

#[tokio::test]
async fn one_address_gives_the_mapped_address_only() {
    let stun = responder(false).await;
    let _primary = stun.serve_primary();
    assert_eq!(stun.other_address(), None);
    let report = detect_nat(stun.primary_addr(), ip("127.0.0.1")).await.expect("detect");
    assert_eq!(report.mapped, Some(report.local));
    assert_eq!(report.other_address, None);
    assert_eq!((report.mapping, report.filtering), (Behaviour::Unknown, Behaviour::Unknown));
    // Loopback has no NAT, and that much is known from one address.
    assert_eq!(report.nat_type, NatType::Open);
}

#[tokio::test]
async fn an_unspecified_bind_address_uses_the_routes_source() {
    let stun = responder(true).await;
    let _primary = stun.serve_primary();
    let _alternates = stun.serve_alternates();
    let report = detect_nat(stun.primary_addr(), ip("0.0.0.0")).await.expect("detect");
    assert_eq!(report.local.ip(), ip("127.0.0.1"));
    assert_eq!(report.nat_type, NatType::Open, "{report:?}");
}

#[tokio::test]
async fn silence_is_udp_blocked() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let started = Instant::now();
    let report = detect_nat(silent.local_addr().expect("addr"), ip("127.0.0.1")).await.expect("detect");
    assert_eq!(report.nat_type, NatType::UdpBlocked);
    assert_eq!(report.mapped, None);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn a_family_mismatch_is_an_error() {
    let err = detect_nat("127.0.0.1:3478".parse().expect("addr"), ip("::1")).await.expect_err("mismatch");
    assert!(err.to_string().contains("IPv4"), "{err}");
}

#[tokio::test]
async fn change_request_picks_the_socket_and_attributes_say_so() {
    let stun = responder(true).await;
    let _primary = stun.serve_primary();
    let _alternates = stun.serve_alternates();
    let p = stun.primary_addr();
    let other = stun.other_address().expect("other");
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let me = client.local_addr().expect("addr");
    let alt_port = SocketAddr::new(p.ip(), other.port());
    let alt_ip = SocketAddr::new(other.ip(), p.port());
    for (to, change, expected) in [
        (p, 0, p),
        (p, 0x2, alt_port),
        (p, 0x4, alt_ip),
        (p, 0x6, other),
        (other, 0x6, p),
        (alt_ip, 0x2, other),
        (alt_port, 0x4, other),
    ] {
        let (from, bytes) = ask(&client, to, change).await.expect("answer");
        assert_eq!(from, expected, "to {to} with change {change:#x}");
        let msg = Message::from_bytes(&bytes).expect("stun");
        assert!(msg.has_class(MessageClass::Success));
        let mapped = msg.attribute::<XorMappedAddress>().expect("xor-mapped").addr(msg.transaction_id());
        assert_eq!(mapped, me);
        assert_eq!(address(&msg, RESPONSE_ORIGIN), Some(expected));
        assert_eq!(address(&msg, OTHER_ADDRESS), Some(other));
    }
}

#[tokio::test]
async fn without_alternates_change_request_is_refused() {
    let stun = responder(false).await;
    let _primary = stun.serve_primary();
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let (from, bytes) = ask(&client, stun.primary_addr(), 0x6).await.expect("answer");
    assert_eq!(from, stun.primary_addr());
    let msg = Message::from_bytes(&bytes).expect("stun");
    assert!(msg.has_class(MessageClass::Error));
    // A zero CHANGE-REQUEST asks for nothing and is answered.
    let (_, bytes) = ask(&client, stun.primary_addr(), 0).await.expect("answer");
    assert!(Message::from_bytes(&bytes).expect("stun").has_class(MessageClass::Success));
}

#[tokio::test]
async fn answer_primary_takes_only_binding_requests() {
    let stun = responder(true).await;
    let from: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    assert!(!stun.answer_primary(from, b"").await);
    assert!(!stun.answer_primary(from, &[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]).await, "channel data");
    let allocate = Message::builder_request(stun_types::message::Method::new(0x0003), MessageWriteVec::new()).finish();
    assert!(!stun.answer_primary(from, &allocate).await, "TURN Allocate");
    let indication = Message::builder_indication(BINDING, MessageWriteVec::new()).finish();
    assert!(!stun.answer_primary(from, &indication).await, "Binding indication");
    let mut truncated = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
    truncated[3] = 8;
    assert!(!stun.answer_primary(from, &truncated).await, "length beyond the datagram");
    let binding = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
    assert!(stun.answer_primary(from, &binding).await);
}

#[tokio::test]
async fn garbage_harms_no_one() {
    let stun = responder(true).await;
    let _primary = stun.serve_primary();
    let _alternates = stun.serve_alternates();
    let junk = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let targets = [stun.primary_addr(), stun.other_address().expect("other")];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let valid = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
    for i in 0..2000usize {
        let mut packet = if i % 2 == 0 { valid.clone() } else { Vec::new() };
        for _ in 0..(i % 70) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            packet.push(x as u8);
        }
        if i % 3 == 0 && packet.len() > 20 {
            let at = (x as usize) % packet.len();
            packet[at] ^= 0xff;
        }
        let _ = junk.send_to(&packet, targets[i % 2]).await;
    }
    let report = detect_nat(stun.primary_addr(), ip("127.0.0.1")).await.expect("detect");
    assert_eq!(report.nat_type, NatType::Open, "{report:?}");
    assert_eq!(report.filtering, Behaviour::EndpointIndependent);
}

#[tokio::test]
async fn bind_refuses_impossible_layouts() {
    let unspecified = StunResponder::bind("0.0.0.0:0".parse().expect("addr"), Some(ip("127.0.0.2")), None).await;
    assert_eq!(unspecified.expect_err("unspecified").kind(), std::io::ErrorKind::InvalidInput);
    let mixed = StunResponder::bind("127.0.0.1:0".parse().expect("addr"), Some(ip("::1")), None).await;
    assert_eq!(mixed.expect_err("family").kind(), std::io::ErrorKind::InvalidInput);
    let same = StunResponder::bind("127.0.0.1:0".parse().expect("addr"), Some(ip("127.0.0.1")), None).await;
    assert_eq!(same.expect_err("same ip").kind(), std::io::ErrorKind::InvalidInput);
    let port_only = StunResponder::bind("127.0.0.1:0".parse().expect("addr"), None, Some(4000)).await;
    assert_eq!(port_only.expect_err("port only").kind(), std::io::ErrorKind::InvalidInput);
    // An explicit alternate port of 0 picks one.
    let picked =
        StunResponder::bind("127.0.0.1:0".parse().expect("addr"), Some(ip("127.0.0.2")), Some(0)).await.expect("bind");
    let other = picked.other_address().expect("other");
    assert_ne!(other.port(), 0);
    assert_ne!(other.port(), picked.primary_addr().port());
}
