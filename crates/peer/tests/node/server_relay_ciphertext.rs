//! With no WebRTC path (relay-only policy, and the only TURN server does not
//! answer), the link carries its data through the signaling server's relay
//! after the default deadline — and the server sees only ciphertext: this
//! test reads every byte that passed between one node and the server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use switchboard::{Event, IcePolicy, IceServer, PathKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{TestServer, next_message, wait_for};

/// A TCP forwarder that keeps a copy of everything it passes, both ways.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn to(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
        let copy = seen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(server).await else { continue };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, copy.clone()));
                tokio::spawn(pipe(ro, wi, copy.clone()));
            }
        });
        Recorder { addr, seen }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                seen.lock().expect("record").extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_webrtc_path_the_server_relays_only_ciphertext() {
    let server = TestServer::start().await;
    let server_addr: SocketAddr = server.url.trim_start_matches("ws://").trim_end_matches("/ws").parse().expect("addr");
    let recorder = Recorder::to(server_addr).await;
    // A TURN server that never answers: no candidate at all, so no WebRTC path.
    let silent_turn = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let turn_url = format!("turn:{}", silent_turn.local_addr().expect("addr"));
    let relay_only = |b: switchboard::NodeBuilder| {
        b.ice_policy(IcePolicy::Relay).ice_servers([IceServer::turn(turn_url.clone(), "user", "pass")])
    };
    let a = relay_only(switchboard::Node::builder().signaling(format!("ws://{}/ws", recorder.addr)))
        .host_candidates(switchboard::HostCandidates::Loopback)
        .start()
        .await
        .expect("a starts");
    let b = relay_only(server.node()).start().await.expect("b starts");
    let room = a.create_room(None, None).await.expect("room");
    a.join(room).await.expect("a joins");
    b.join(room).await.expect("b joins");
    let path = |ev| match ev {
        Event::PeerConnected { path, .. } => Some(path),
        _ => None,
    };
    let (pa, pb) = tokio::join!(wait_for(&a, path), wait_for(&b, path));
    assert_eq!((pa, pb), (PathKind::Server, PathKind::Server));

    let secret = b"attack at dawn, bring the blue folder";
    for i in 0..50u32 {
        let mut msg = secret.to_vec();
        msg.extend_from_slice(&i.to_be_bytes());
        a.send(b.id(), "reliable", msg).await.expect("send");
    }
    for i in 0..50u32 {
        let m = next_message(&b).await;
        assert_eq!(&m.data[..secret.len()], secret);
        assert_eq!(m.data[secret.len()..], i.to_be_bytes(), "message {i} lost, repeated or reordered");
    }
    let reply = b"the answer is forty-two, said the other peer";
    b.send(a.id(), "reliable", &reply[..]).await.expect("send");
    assert_eq!(&next_message(&a).await.data[..], &reply[..]);
    assert_eq!(a.stats(b.id()).expect("stats").path, Some(PathKind::Server));

    let seen = recorder.seen.lock().expect("record").clone();
    assert!(seen.len() > 50 * secret.len(), "the relayed frames passed the recorder ({} bytes)", seen.len());
    assert!(!contains(&seen, &secret[..16]), "the server saw a message in clear");
    assert!(!contains(&seen, &reply[..16]), "the server saw the reply in clear");
}
