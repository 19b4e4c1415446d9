//! `switchboard lab --recovery N`: how long a link takes to carry data again
//! after its network returns. One link (full cone ↔ port-restricted) carries
//! a numbered reliable message every 20 ms; the port-restricted site is cut
//! off the public segment for N seconds, `runs` times. Each run measures the
//! time from the cut's end to the next message's arrival, and checks that
//! every message arrives once, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use switchboard::{Event, Node};
use switchboard_natlab::Lab;

use super::{in_runtime, median, with_two_sites};
use crate::local::next_matching_within;

/// Between two messages of the steady stream.
const PACE: Duration = Duration::from_millis(20);
/// Steady traffic before each cut.
const STEADY: Duration = Duration::from_secs(2);
/// Longest wait for data after the network returns.
const PATIENCE: Duration = Duration::from_secs(90);

pub(super) fn run(cut: Duration, runs: u32, delay: Duration) -> anyhow::Result<()> {
    let times = with_two_sites(delay, |lab, url| measure(lab, url, cut, runs))?;
    println!("# recovery: full cone ↔ port-restricted, a message every 20 ms, site cut off for {} s", cut.as_secs());
    for (i, t) in times.iter().enumerate() {
        println!("run {:>2}: data again {:>8.1} ms after the network returned", i + 1, t.as_secs_f64() * 1e3);
    }
    let p50 = median(&times).context("no runs")?;
    let (min, max) = (times.iter().min().copied().unwrap_or_default(), times.iter().max().copied().unwrap_or_default());
    println!(
        "recovery p50 {:.1} ms (min {:.1}, max {:.1}) over {} runs   target p50 <= 1000 ms",
        p50.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        times.len()
    );
    println!("every message arrived once, in order");
    Ok(())
}

fn measure(lab: &Lab, url: &str, cut: Duration, runs: u32) -> anyhow::Result<Vec<Duration>> {
    let (room_tx, room_rx) = mpsc::channel();
    let (arrival_tx, arrival_rx) = mpsc::channel::<Instant>();
    let stop = Arc::new(AtomicBool::new(false));
    let (url_a, url_b) = (url.to_owned(), url.to_owned());
    let stop_a = stop.clone();
    let sender = lab.peer(0, 0).netns().spawn(move || {
        in_runtime(async move {
            let node = Node::builder().signaling(&url_a).start().await?;
            let room = node.create_room(None, None).await?;
            node.join(room).await?;
            room_tx.send(room)?;
            let peer = linked(&node).await?;
            let mut i = 0u32;
            while !stop_a.load(Ordering::Acquire) {
                node.send(peer, "reliable", i.to_be_bytes().to_vec()).await?;
                i += 1;
                tokio::time::sleep(PACE).await;
            }
            node.close().await;
            anyhow::Ok(())
        })
    })?;
    let stop_b = stop.clone();
    let receiver = lab.peer(1, 0).netns().spawn(move || {
        in_runtime(async move {
            let node = Node::builder().signaling(&url_b).start().await?;
            let room = room_rx.recv_timeout(PATIENCE)?;
            node.join(room).await?;
            linked(&node).await?;
            let mut next = 0u32;
            while !stop_b.load(Ordering::Acquire) {
                let ev = tokio::time::timeout(Duration::from_millis(200), node.next_event()).await;
                match ev {
                    Ok(Some(Event::Message(m))) => {
                        if m.data.as_ref() != next.to_be_bytes() {
                            bail!("message {next} lost, repeated or out of order");
                        }
                        next += 1;
                        let _ = arrival_tx.send(Instant::now());
                    }
                    Ok(Some(Event::PeerDisconnected { reason, .. })) => bail!("the link ended: {reason}"),
                    Ok(None) => bail!("node closed"),
                    Ok(Some(_)) | Err(_) => {}
                }
            }
            node.close().await;
            anyhow::Ok(())
        })
    })?;
    let mut times = Vec::new();
    let outcome = (|| {
        // The first message says the link is up.
        arrival_rx.recv_timeout(PATIENCE).context("the link did not come up")?;
        for _ in 0..runs {
            std::thread::sleep(STEADY);
            lab.set_cut(1, true)?;
            std::thread::sleep(cut);
            lab.set_cut(1, false)?;
            let restored = Instant::now();
            let deadline = restored + PATIENCE;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let at = arrival_rx.recv_timeout(left).context("no data after the network returned")?;
                if at > restored {
                    times.push(at - restored);
                    break;
                }
            }
        }
        anyhow::Ok(())
    })();
    stop.store(true, Ordering::Release);
    let sent = sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))?;
    let received = receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    outcome?;
    sent.context("sender")?;
    received.context("receiver")?;
    Ok(times)
}

async fn linked(node: &Node) -> anyhow::Result<switchboard::proto::PeerId> {
    next_matching_within(node, PATIENCE, |ev| match ev {
        Event::PeerConnected { peer, .. } => Some(peer),
        _ => None,
    })
    .await
}
