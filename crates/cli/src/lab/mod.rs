//! `switchboard lab`: the NAT lab. Builds network namespaces with a public
//! segment (signaling and STUN/TURN on 203.0.113.10/.11) and one peer behind
//! each kind of NAT router (crates/natlab), then connects every pair of NAT
//! kinds and prints the matrix: cell, path on each side, setup time. Needs
//! root; removes every namespace it made, also on failure.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use switchboard::proto::RoomCode;
use switchboard::{Event, IcePolicy, Node, PathKind};
use switchboard_natlab::{Lab, LabSpec, NatKind, Netns};
use switchboard_server::{Server, ServerConfig, TurnConfig};

use crate::local::next_matching_within;

mod recovery;
mod ttfb;

/// Flags of `lab`.
#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Link setups per cell (the matrix shows their median).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// One-way delay added on the public side of every router and the server, in ms
    /// (netem, or an NFQUEUE delayer where the kernel has no netem).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Relay-only policy in every cell (every path must then be relayed).
    #[arg(long)]
    relay_only: bool,
    /// Instead of the matrix, measure recovery: one link (full cone ↔
    /// port-restricted) carrying a message every 20 ms has one site cut off
    /// `--runs` times for this many seconds; prints the time from the network's
    /// return to the next message arriving.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
    recovery: Option<u64>,
    /// Instead of the matrix, measure time to first byte of a new link
    /// (`--runs` links each) without and with the server relay's head start.
    #[arg(long, conflicts_with = "recovery")]
    ttfb: bool,
    /// Log filter when RUST_LOG is unset [default: Switchboard's warnings,
    /// nothing from dependencies; see -v].
    #[arg(long)]
    pub(crate) log: Option<String>,
}

/// Kinds in the matrix, in print order.
const KINDS: [NatKind; 6] = NatKind::ALL;

/// How long one link may take before the cell counts as failed.
const CELL_PATIENCE: Duration = Duration::from_secs(20);
/// Longest wait for a relayed link to move to a direct pair.
const SETTLE: Duration = Duration::from_secs(3);
/// Reliable messages each link carries to prove it works.
const PROOF_MESSAGES: u32 = 20;

/// Whether a pair of NAT kinds needs the relay.
fn needs_relay(a: NatKind, b: NatKind) -> bool {
    use NatKind::{PortRestricted, Symmetric, UdpBlocked};
    a == UdpBlocked
        || b == UdpBlocked
        || matches!((a, b), (Symmetric, Symmetric) | (Symmetric, PortRestricted) | (PortRestricted, Symmetric))
}

/// One cell's outcome.
struct Cell {
    name: String,
    paths: Option<(PathKind, PathKind)>,
    setups: Vec<Duration>,
    error: Option<String>,
    expect_relay: bool,
}

pub(crate) fn run(args: LabArgs) -> anyhow::Result<()> {
    if let Some(cut) = args.recovery {
        return recovery::run(Duration::from_secs(cut), args.runs, Duration::from_millis(args.delay_ms));
    }
    if args.ttfb {
        return ttfb::run(args.runs, Duration::from_millis(args.delay_ms));
    }
    // Two sites per kind (each peer behind its own router), then one LAN with two peers.
    let mut spec = LabSpec::new();
    for kind in KINDS {
        spec = spec.site(kind, 1).site(kind, 1);
    }
    let same_lan_site = 2 * KINDS.len();
    spec = spec.same_lan();
    let lab = Lab::build(&spec).context("cannot build the NAT lab")?;
    if args.delay_ms > 0 {
        lab.set_delay(Duration::from_millis(args.delay_ms)).context("cannot add the delay")?;
    }
    let server_ip = lab.server().ip();
    let signaling = SocketAddr::from((server_ip, 7600));
    let (stop, server) = start_server(lab.server().netns(), signaling, lab.server().alt_ip().into())?;
    let url = format!("ws://{signaling}/ws");
    let policy = if args.relay_only { IcePolicy::Relay } else { IcePolicy::All };

    let mut cells = Vec::new();
    for (i, &ka) in KINDS.iter().enumerate() {
        for (j, &kb) in KINDS.iter().enumerate().skip(i) {
            let (sa, sb) = (2 * i, 2 * j + 1);
            let name = format!("{ka} ↔ {kb}");
            let expect_relay = args.relay_only || needs_relay(ka, kb);
            cells.push(run_cell(&lab, &url, policy, (sa, 0), (sb, 0), name, expect_relay, args.runs));
        }
    }
    cells.push(run_cell(
        &lab,
        &url,
        policy,
        (same_lan_site, 0),
        (same_lan_site, 1),
        "same LAN (one NAT)".into(),
        args.relay_only,
        args.runs,
    ));
    let _ = stop.send(());
    let _ = server.join();
    drop(lab);

    println!("{:<34} {:>22} {:>12} {:>8}", "cell", "path (a / b)", "setup p50", "runs");
    let mut failed = 0;
    for c in &cells {
        let paths = c.paths.map_or_else(|| "-".into(), |(a, b)| format!("{a} / {b}"));
        let p50 = median(&c.setups).map_or_else(|| "-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3));
        let mut verdict = String::new();
        if let Some(e) = &c.error {
            verdict = format!("  FAILED: {e}");
        } else if let Some((a, b)) = c.paths {
            let relayed = a == PathKind::Relayed || b == PathKind::Relayed;
            if relayed != c.expect_relay {
                let want = if c.expect_relay { "relayed" } else { "direct" };
                verdict = format!("  WRONG PATH: expected {want}");
            }
        }
        if !verdict.is_empty() {
            failed += 1;
        }
        println!("{:<34} {:>22} {:>12} {:>8}{verdict}", c.name, paths, p50, c.setups.len());
    }
    let ok = cells.len() - failed;
    println!("{ok}/{} cells connected on the expected path", cells.len());
    if failed > 0 {
        bail!("{failed} of {} cells failed", cells.len());
    }
    Ok(())
}

/// Runs the server (signaling, STUN/TURN with the RFC 5780 alternate) in the server namespace.
pub(super) fn start_server(
    netns: &Netns,
    bind: SocketAddr,
    alt_ip: std::net::IpAddr,
) -> anyhow::Result<(tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>)> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = netns.spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let turn =
                TurnConfig { listen: SocketAddr::new(bind.ip(), 3478), alt_ip: Some(alt_ip), ..TurnConfig::default() };
            let config = ServerConfig { bind, turn: Some(turn), ..ServerConfig::default() };
            match Server::builder().config(config).bind().await {
                Ok(server) => {
                    let _ = ready_tx.send(Ok(()));
                    let _ = server
                        .serve(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    })?;
    match ready_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(())) => Ok((stop_tx, handle)),
        Ok(Err(e)) => bail!("the lab server did not start: {e}"),
        Err(_) => bail!("the lab server did not start in time"),
    }
}

/// What one side of a link saw.
struct SideResult {
    /// The path once the proof messages went through (ICE may move from the
    /// relay to a direct pair that succeeds later).
    path: PathKind,
    connected_at: Instant,
}

#[allow(clippy::too_many_arguments)]
fn run_cell(
    lab: &Lab,
    url: &str,
    policy: IcePolicy,
    a: (usize, usize),
    b: (usize, usize),
    name: String,
    expect_relay: bool,
    runs: u32,
) -> Cell {
    let mut cell = Cell { name, paths: None, setups: Vec::new(), error: None, expect_relay };
    for _ in 0..runs {
        match run_once(lab, url, policy, a, b, !expect_relay) {
            Ok((pa, pb, setup)) => {
                cell.paths = Some((pa, pb));
                cell.setups.push(setup);
            }
            Err(e) => {
                cell.error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    eprintln!("lab: {} done", cell.name);
    cell
}

/// One link from peer `a` (creates the room) to peer `b` (joins it); returns both paths and the setup time.
fn run_once(
    lab: &Lab,
    url: &str,
    policy: IcePolicy,
    a: (usize, usize),
    b: (usize, usize),
    expect_direct: bool,
) -> anyhow::Result<(PathKind, PathKind, Duration)> {
    let (code_tx, code_rx) = mpsc::channel::<RoomCode>();
    let (start_tx, start_rx) = mpsc::channel::<Instant>();
    let url_a = url.to_owned();
    let url_b = url.to_owned();
    let side_a = lab.peer(a.0, a.1).netns().spawn(move || {
        in_runtime(async move {
            let node = Node::builder().signaling(&url_a).ice_policy(policy).start().await?;
            let room = node.create_room(None, None).await?;
            node.join(room).await?;
            code_tx.send(room)?;
            let result = await_link(&node).await;
            let mut final_path = None;
            if result.is_ok() {
                // The proof: numbered messages from b, all in order.
                for i in 0..PROOF_MESSAGES {
                    let m = next_message(&node).await?;
                    if m != i.to_be_bytes() {
                        bail!("message {i} arrived altered or out of order");
                    }
                }
                let peer = node_peer(&node)?;
                final_path = settled_path(&node, peer, expect_direct).await;
                node.send(peer, "reliable", b"ok".to_vec()).await?;
                // b closes once it has the acknowledgement.
                await_disconnect(&node).await?;
            }
            node.close().await;
            result.map(|r| SideResult { path: final_path.unwrap_or(r.path), ..r })
        })
    })?;
    let side_b = lab.peer(b.0, b.1).netns().spawn(move || {
        in_runtime(async move {
            let node = Node::builder().signaling(&url_b).ice_policy(policy).start().await?;
            let room = code_rx.recv_timeout(CELL_PATIENCE)?;
            start_tx.send(Instant::now())?;
            node.join(room).await?;
            let result = await_link(&node).await;
            let mut final_path = None;
            if result.is_ok() {
                let peer = node_peer(&node)?;
                for i in 0..PROOF_MESSAGES {
                    node.send(peer, "reliable", i.to_be_bytes().to_vec()).await?;
                }
                if next_message(&node).await? != b"ok" {
                    bail!("no acknowledgement of the proof messages");
                }
                final_path = settled_path(&node, peer, expect_direct).await;
            }
            node.close().await;
            result.map(|r| SideResult { path: final_path.unwrap_or(r.path), ..r })
        })
    })?;
    let ra = side_a.join().map_err(|_| anyhow::anyhow!("peer a panicked"))?;
    let rb = side_b.join().map_err(|_| anyhow::anyhow!("peer b panicked"))?;
    let (ra, rb) = (ra.context("peer a")?, rb.context("peer b")?);
    let start = start_rx.recv_timeout(Duration::from_secs(1)).context("no start time")?;
    let setup = ra.connected_at.max(rb.connected_at).saturating_duration_since(start);
    Ok((ra.path, rb.path, setup))
}

pub(super) fn in_runtime<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

/// The one peer this node has a link to.
fn node_peer(node: &Node) -> anyhow::Result<switchboard::proto::PeerId> {
    node.peers().into_iter().next().context("no linked peer")
}

/// The next event `pick` takes on a cell's link; the link ending first is an error.
async fn next_on_link<T>(node: &Node, mut pick: impl FnMut(Event) -> Option<T>) -> anyhow::Result<T> {
    let r = next_matching_within(node, CELL_PATIENCE, |ev| match ev {
        Event::PeerDisconnected { reason, .. } => Some(Err(reason)),
        ev => pick(ev).map(Ok),
    })
    .await?;
    r.map_err(|reason| anyhow::anyhow!("link ended: {reason}"))
}

async fn await_link(node: &Node) -> anyhow::Result<SideResult> {
    next_on_link(node, |ev| match ev {
        Event::PeerConnected { path, .. } => Some(SideResult { path, connected_at: Instant::now() }),
        _ => None,
    })
    .await
}

/// The link's path once settled: where a direct path should exist but the
/// relay answered first, ICE moves to the direct pair when its checks
/// succeed (a `PathChanged` event); give it a moment.
async fn settled_path(node: &Node, peer: switchboard::proto::PeerId, expect_direct: bool) -> Option<PathKind> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let path = node.stats(peer).and_then(|s| s.path);
        if !expect_direct || path != Some(PathKind::Relayed) {
            return path;
        }
        match tokio::time::timeout_at(deadline, node.next_event()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return path,
        }
    }
}

async fn await_disconnect(node: &Node) -> anyhow::Result<()> {
    next_matching_within(node, CELL_PATIENCE, |ev| matches!(ev, Event::PeerDisconnected { .. }).then_some(())).await
}

async fn next_message(node: &Node) -> anyhow::Result<Vec<u8>> {
    next_on_link(node, |ev| match ev {
        Event::Message(m) => Some(m.data.to_vec()),
        _ => None,
    })
    .await
}

/// Runs `f` on a lab of two sites (full cone, port-restricted, one peer
/// each) with `delay` on the public segment and a server at `url`; the
/// server stops and the lab goes afterwards, also on failure.
pub(super) fn with_two_sites<T>(
    delay: Duration,
    f: impl FnOnce(&switchboard_natlab::Lab, &str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let lab =
        switchboard_natlab::Lab::build(&LabSpec::new().site(NatKind::FullCone, 1).site(NatKind::PortRestricted, 1))
            .context("cannot build the NAT lab")?;
    if !delay.is_zero() {
        lab.set_delay(delay).context("cannot add the delay")?;
    }
    let signaling = SocketAddr::from((lab.server().ip(), 7600));
    let (stop_server, server) = start_server(lab.server().netns(), signaling, lab.server().alt_ip().into())?;
    let result = f(&lab, &format!("ws://{signaling}/ws"));
    let _ = stop_server.send(());
    let _ = server.join();
    result
}

pub(super) fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hard_pairs_need_the_relay() {
        use NatKind::*;
        assert!(needs_relay(Symmetric, Symmetric));
        assert!(needs_relay(PortRestricted, Symmetric));
        assert!(needs_relay(UdpBlocked, Open));
        assert!(!needs_relay(Symmetric, Restricted));
        assert!(!needs_relay(Symmetric, FullCone));
        assert!(!needs_relay(PortRestricted, PortRestricted));
    }
}
