//! `switchboard demo`: a server and two peers on loopback in one process,
//! every step printed: identities, a room by code, a direct WebRTC link,
//! messages, round trips, and 64 MiB checked by SHA-256.

use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use sha2::{Digest, Sha256};
use switchboard::{Event, HostCandidates, IcePolicy, Node};

use crate::local::{LocalServer, PATIENCE, connected, next_matching, next_message};

/// Flags of `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Size of the bulk transfer in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=64))]
    mib: u32,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let step = |text: String| println!("[{:>8.1} ms] {text}", started.elapsed().as_secs_f64() * 1000.0);

    let server = LocalServer::with_turn().await?;
    let url = server.url.clone();
    step(format!("signaling server listening on {url}"));
    if let Some((udp, tcp)) = server.turn {
        let tcp = tcp.map_or_else(|| "off".to_owned(), |t| t.to_string());
        step(format!("embedded STUN/TURN server on udp {udp}, tcp {tcp}; peers get minted credentials in welcome"));
    }

    let node = || Node::builder().signaling(&url).host_candidates(HostCandidates::Loopback).start();
    let alice = node().await?;
    step(format!("alice proved her key to the server; peer id {}", alice.id()));
    let bob = node().await?;
    step(format!("bob proved his key to the server; peer id {}", bob.id()));

    let room = alice.create_room(None, None).await?;
    alice.join(room).await?;
    step(format!("alice created room {room} and joined it"));
    let joined_at = Instant::now();
    bob.join(room).await?;
    step(format!("bob joined room {room} by its code"));
    let (a, b) = tokio::join!(connected(&alice), connected(&bob));
    let setup = joined_at.elapsed();
    let (Event::PeerConnected { path, .. }, Event::PeerConnected { .. }) = (a?, b?) else { bail!("unexpected event") };
    step(format!(
        "direct WebRTC link open (offer, answer and ICE candidates through the server): setup {:.1} ms, path {path}",
        setup.as_secs_f64() * 1000.0
    ));
    let stats = alice.stats(bob.id()).context("link stats")?;
    if let (Some(l), Some(r)) = (stats.local_addr, stats.remote_addr) {
        step(format!("selected candidate pair {l} <-> {r} (DTLS-encrypted SCTP over UDP)"));
    }

    alice.send(bob.id(), "reliable", &b"hello bob, this went peer to peer"[..]).await?;
    let m = next_message(&bob).await?;
    step(format!("bob got {:?} on channel {:?}", String::from_utf8_lossy(&m.data), m.channel));
    bob.send(alice.id(), "reliable", &b"hi alice"[..]).await?;
    let m = next_message(&alice).await?;
    step(format!("alice got {:?}", String::from_utf8_lossy(&m.data)));

    // A third peer that must not reveal its addresses: relay-only policy.
    let carol = Node::builder()
        .signaling(&url)
        .host_candidates(HostCandidates::Loopback)
        .ice_policy(IcePolicy::Relay)
        .start()
        .await?;
    let carol_joined = Instant::now();
    carol.join(room).await?;
    let carol_link = connected(&carol).await?;
    let Event::PeerConnected { path: carol_path, .. } = carol_link else { bail!("unexpected event") };
    // Carol links to both; take the link to alice.
    while carol.stats(alice.id()).is_none_or(|s| s.path.is_none()) {
        connected(&carol).await?;
    }
    step(format!(
        "carol joined with the relay-only policy: linked through the TURN server in {:.1} ms, path {carol_path}",
        carol_joined.elapsed().as_secs_f64() * 1000.0
    ));
    carol.send(alice.id(), "reliable", &b"hello from behind the relay"[..]).await?;
    let m = next_matching(&alice, |ev| match ev {
        Event::Message(m) if m.peer == carol.id() => Some(m),
        _ => None,
    })
    .await?;
    step(format!("alice got {:?} from carol through the relay", String::from_utf8_lossy(&m.data)));
    carol.close().await;

    // Round trips: alice asks, bob answers, 200 times.
    let mut rtts = Vec::with_capacity(200);
    let answering = async {
        for _ in 0..200 {
            let req = next_matching(&bob, |ev| match ev {
                Event::Request(r) => Some(r),
                _ => None,
            })
            .await?;
            bob.respond(&req, req.data.clone()).await?;
        }
        anyhow::Ok(())
    };
    let asking = async {
        for i in 0..200u32 {
            let t = Instant::now();
            alice.request(bob.id(), "reliable", i.to_le_bytes().to_vec(), PATIENCE).await?;
            rtts.push(t.elapsed());
        }
        anyhow::Ok(())
    };
    let (x, y) = tokio::join!(answering, asking);
    x?;
    y?;
    rtts.sort();
    step(format!(
        "200 request/response round trips: p50 {:.3} ms, p99 {:.3} ms",
        rtts[rtts.len() / 2].as_secs_f64() * 1000.0,
        rtts[rtts.len() * 99 / 100].as_secs_f64() * 1000.0
    ));

    let size = (args.mib as usize) << 20;
    let data: Vec<u8> = (0..size as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let digest = Sha256::digest(&data);
    step(format!("alice sends one {} MiB message, sha256 {}", args.mib, crate::peer::hex(&digest)));
    let t = Instant::now();
    let (sent, got) = tokio::join!(alice.send(bob.id(), "reliable", data), next_message(&bob));
    sent?;
    let got = got?;
    let secs = t.elapsed().as_secs_f64();
    let ok = Sha256::digest(&got.data) == digest && got.data.len() == size;
    step(format!(
        "bob received {} bytes in {:.3} s ({:.1} MB/s), sha256 {}",
        got.data.len(),
        secs,
        size as f64 / secs / 1e6,
        if ok { "matches" } else { "DOES NOT MATCH" }
    ));
    if !ok {
        bail!("the transfer was corrupted");
    }
    let stats = alice.stats(bob.id()).context("link stats")?;
    step(format!(
        "link stats (alice): {} messages / {} bytes sent, {} received, rtt {}",
        stats.messages_sent,
        stats.bytes_sent,
        stats.messages_received,
        stats.rtt.map_or("?".into(), |r| format!("{:.3} ms", r.as_secs_f64() * 1000.0))
    ));

    alice.close().await;
    bob.close().await;
    server.stop().await?;
    step("closed both peers and stopped the server".into());
    Ok(())
}
