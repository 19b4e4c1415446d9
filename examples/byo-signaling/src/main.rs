//! Bring-your-own signaling against a standard WebRTC peer.
//!
//! The "other stack" is a plain str0m peer: it writes a standard SDP offer
//! with an in-band (DCEP) data channel named `chat`, the way a browser's
//! `createDataChannel("chat")` does. The Switchboard node, built without any
//! signaling server and in raw-message mode, answers the offer, learns of the
//! channel in-band, and the two exchange messages: the plain peer sends a
//! text message and a binary one, and the node answers each in kind (a
//! browser's `onmessage` gets a string for text, an `ArrayBuffer` for
//! binary). The SDP travels as plain strings, as it would over your own
//! signaling.
//!
//! Run: `cargo run --manifest-path examples/byo-signaling/Cargo.toml`.
//! Exit code 0 when all four messages arrived as what they were sent as.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};
use switchboard::{Event, HostCandidates, Node};
use tokio::net::UdpSocket;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- the standard peer: str0m with an in-band channel ---
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local: SocketAddr = socket.local_addr()?;
    let mut rtc = Rtc::new(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    let chat = change.add_channel("chat".to_string());
    let (offer, pending) = change.apply().ok_or("nothing to offer")?;
    let offer_sdp = offer.to_sdp_string();

    // --- the Switchboard node: no server, raw messages, no declared channels ---
    let node = Node::builder().host_candidates(HostCandidates::Loopback).raw_messages(true).start().await?;
    let (peer, answer_sdp) = node.accept_offer(&offer_sdp).await?;
    println!("switchboard answered the offer ({} bytes of SDP)", answer_sdp.len());
    rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer_sdp)?)?;

    // Drive the str0m peer in its own task: the classic sans-IO run loop.
    let plain = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut said_hello = false;
        let mut replies = Vec::new();
        while Instant::now() < deadline {
            let timeout = loop {
                match rtc.poll_output()? {
                    Output::Transmit(t) => {
                        socket.send_to(&t.contents, t.destination).await?;
                    }
                    Output::Event(RtcEvent::ChannelOpen(id, label)) if id == chat => {
                        println!("str0m: channel {label:?} open");
                        if let Some(mut ch) = rtc.channel(chat) {
                            // `false`: a text message (PPID 51), `true`: binary (PPID 53).
                            ch.write(false, b"hello from a plain WebRTC peer")?;
                            ch.write(true, &[0, 1, 2, 255])?;
                            said_hello = true;
                        }
                    }
                    Output::Event(RtcEvent::ChannelData(d)) if said_hello => {
                        println!("str0m: got {:?} as {}", d.data, if d.binary { "binary" } else { "text" });
                        replies.push((d.binary, d.data));
                        if replies.len() == 2 {
                            return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(replies);
                        }
                    }
                    Output::Event(_) => {}
                    Output::Timeout(t) => break t,
                }
            };
            let wait = timeout.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let input = match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
                Ok(Ok((n, source))) => {
                    let receive = Receive::new(Protocol::Udp, source, local, &buf[..n])?;
                    Input::Receive(Instant::now(), receive)
                }
                _ => Input::Timeout(Instant::now()),
            };
            rtc.handle_input(input)?;
        }
        Err("the plain peer got no answer in 20 s".into())
    });

    // The node learns of the in-band channel and answers each message in kind.
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    let mut answered = 0;
    while answered < 2 {
        tokio::select! {
            ev = node.next_event() => match ev.ok_or("node closed")? {
                Event::ChannelOpened { channel, .. } => println!("switchboard: the other side opened channel {channel:?}"),
                Event::Message(m) => {
                    if let Some(text) = m.text() {
                        println!("switchboard: got text {text:?} on {:?}", m.channel);
                        node.send_text(peer, &m.channel, "hello back from switchboard").await?;
                    } else {
                        println!("switchboard: got {} bytes on {:?}", m.data.len(), m.channel);
                        node.send(peer, &m.channel, m.data.clone()).await?;
                    }
                    answered += 1;
                }
                _ => {}
            },
            _ = &mut deadline => return Err("no message from the plain peer in 20 s".into()),
        }
    }
    let replies = plain.await?.map_err(|e| e.to_string())?;
    assert_eq!(replies[0], (false, b"hello back from switchboard".to_vec()), "text comes back as text");
    assert_eq!(replies[1], (true, vec![0, 1, 2, 255]), "binary comes back as binary");
    println!("bring-your-own signaling with a standard WebRTC peer: ok");
    node.close().await;
    Ok(())
}
