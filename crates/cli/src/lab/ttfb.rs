//! `switchboard lab --ttfb`: time to first byte of a new link, with and
//! without the server relay's head start. For each run, one peer (full cone)
//! creates a room and sends a message as soon as its link to the other
//! (port-restricted) is up; the time runs from the other peer's `join` to that
//! message's arrival. Without the head start the message waits for WebRTC;
//! with it, the server relay carries it while WebRTC comes up.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use switchboard::{Event, Node, PathKind};
use switchboard_natlab::Lab;

use super::{in_runtime, median, with_two_sites};
use crate::local::next_matching_within;

/// Longest wait for one step of a run.
const PATIENCE: Duration = Duration::from_secs(30);

pub(super) fn run(runs: u32, delay: Duration) -> anyhow::Result<()> {
    let (plain, head_start) = with_two_sites(delay, |lab, url| {
        let plain = measure(lab, url, runs, Some(Duration::from_secs(5)))?;
        let head_start = measure(lab, url, runs, Some(Duration::ZERO))?;
        anyhow::Ok((plain, head_start))
    })?;
    println!(
        "# time to first byte: full cone ↔ port-restricted, {} ms one-way delay, p50 of {runs}",
        delay.as_millis()
    );
    for (name, rows) in [("WebRTC only (relay after 5 s)", &plain), ("relay head start", &head_start)] {
        let times: Vec<Duration> = rows.iter().map(|(t, _)| *t).collect();
        let p50 = median(&times).context("no runs")?;
        let via_relay = rows.iter().filter(|(_, p)| *p == PathKind::Server).count();
        println!(
            "{name:<32} p50 {:>7.1} ms   first message through the server relay in {via_relay}/{} runs",
            p50.as_secs_f64() * 1e3,
            rows.len()
        );
    }
    Ok(())
}

/// `runs` fresh links; each gives the time from `join` to the first message
/// and the path the receiver had then.
fn measure(lab: &Lab, url: &str, runs: u32, relay: Option<Duration>) -> anyhow::Result<Vec<(Duration, PathKind)>> {
    let mut rows = Vec::new();
    for _ in 0..runs {
        let (room_tx, room_rx) = mpsc::channel();
        let (url_a, url_b) = (url.to_owned(), url.to_owned());
        let sender = lab.peer(0, 0).netns().spawn(move || {
            in_runtime(async move {
                let node = Node::builder().signaling(&url_a).server_relay(relay).start().await?;
                let room = node.create_room(None, None).await?;
                node.join(room).await?;
                room_tx.send(room)?;
                let peer = next_matching_within(&node, PATIENCE, |ev| match ev {
                    Event::PeerConnected { peer, .. } => Some(peer),
                    _ => None,
                })
                .await?;
                node.send(peer, "reliable", &b"first byte"[..]).await?;
                next_matching_within(&node, PATIENCE, |ev| matches!(ev, Event::PeerDisconnected { .. }).then_some(()))
                    .await?;
                node.close().await;
                anyhow::Ok(())
            })
        })?;
        let receiver = lab.peer(1, 0).netns().spawn(move || {
            in_runtime(async move {
                let node = Node::builder().signaling(&url_b).server_relay(relay).start().await?;
                let room = room_rx.recv_timeout(PATIENCE)?;
                let start = Instant::now();
                node.join(room).await?;
                let mut path = None;
                loop {
                    match next_matching_within(&node, PATIENCE, Some).await? {
                        Event::PeerConnected { path: p, .. } | Event::PathChanged { path: p, .. } => path = Some(p),
                        Event::Message(m) if m.data.as_ref() == b"first byte" => {
                            let took = start.elapsed();
                            node.close().await;
                            return anyhow::Ok((took, path.context("a message before the link")?));
                        }
                        Event::PeerDisconnected { reason, .. } => bail!("the link ended: {reason}"),
                        _ => {}
                    }
                }
            })
        })?;
        let row = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
        sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))?.context("sender")?;
        rows.push(row.context("receiver")?);
    }
    Ok(rows)
}
