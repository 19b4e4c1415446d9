//! The signaling benchmark: idle memory per connection, relayed signals per
//! second with latency beside a WebSocket echo baseline, and join churn.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use switchboard::proto::{ClientMessage, ConnId, CreateRoom, Join, PeerId, ServerMessage, SignalData};
use switchboard::{ConnectOptions, Identity, SignalingClient};
use tokio_tungstenite::tungstenite::Message;

use super::raw::{RawPeer, client_config};
use super::{ChildServer, pin_self};

/// Flags of `bench signaling`.
#[derive(Debug, Args)]
pub(crate) struct SignalingArgs {
    /// Idle connections to hold for the memory figure.
    #[arg(long, default_value_t = 19_000)]
    idle: usize,
    /// Client pairs (rooms of 2) relaying signals.
    #[arg(long, default_value_t = 500)]
    pairs: usize,
    /// Offered signals per second, all pairs together.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Seconds of relaying.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Seconds of join churn.
    #[arg(long, default_value_t = 5)]
    churn_secs: u64,
    /// Concurrent churning clients.
    #[arg(long, default_value_t = 64)]
    churn_workers: usize,
    /// Do not pin server and load generator to cores 0 and 1.
    #[arg(long)]
    no_pin: bool,
    /// Run one phase only.
    #[arg(long, value_enum)]
    only: Option<Phase>,
}

/// A phase of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// Idle memory per connection.
    Idle,
    /// Relay rate and latency beside the echo baseline.
    Relay,
    /// Join churn.
    Churn,
}

const PAYLOAD: usize = 500;

pub(crate) async fn run(args: SignalingArgs) -> anyhow::Result<()> {
    let pinned = !args.no_pin && pin_self(1);
    let core = pinned.then_some(0);
    println!("switchboard bench signaling — server on core 0, load generator on core 1: {pinned}");
    let serve_args = [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--memory",
        "--max-connections",
        "40000",
        "--max-connections-per-address",
        "40000",
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        "--idle-timeout",
        "600",
        "--log",
        "error",
    ];

    let runs = |phase| args.only.is_none_or(|only| only == phase);

    // 1. Idle memory per connection.
    if runs(Phase::Idle) {
        let server = ChildServer::spawn(&serve_args, core).await?;
        let before = server.rss()?;
        let clients = connect_many(&server.url, args.idle, 256).await;
        let after = server.rss()?;
        let held = clients.len();
        let per_conn = after.saturating_sub(before) as f64 / held.max(1) as f64;
        println!(
            "idle: {held} connections held; server RSS {:.1} MiB → {:.1} MiB; {:.2} KiB per connection (target ≤ 6 KiB)",
            mib(before),
            mib(after),
            per_conn / 1024.0
        );
        drop(clients);
        server.stop().await;
    }

    // 2. Relay rate and latency, beside the echo baseline.
    if runs(Phase::Relay) {
        let echo = ChildServer::spawn(&["echo-server"], core).await?;
        let cpu = echo.cpu_time()?;
        let base = echo_load(&echo.url, args.pairs, args.rate, args.secs).await?;
        let base_cpu = cpu_per_message(echo.cpu_time()? - cpu, &base, args.secs);
        echo.stop().await;
        let server = ChildServer::spawn(&serve_args, core).await?;
        let cpu = server.cpu_time()?;
        let relay = relay_load(&server.url, args.pairs, args.rate, args.secs).await?;
        let relay_cpu = cpu_per_message(server.cpu_time()? - cpu, &relay, args.secs);
        println!("relay: {} pairs, {} signals/s offered ({PAYLOAD} B)", args.pairs, args.rate);
        println!(
            "  baseline ws echo : {:>9.0} msg/s delivered, p50 {:>7.2} ms, p99 {:>7.2} ms",
            base.rate, base.p50, base.p99
        );
        println!(
            "  switchboard relay: {:>9.0} msg/s delivered, p50 {:>7.2} ms, p99 {:>7.2} ms (target p99 ≤ 25 ms)",
            relay.rate, relay.p50, relay.p99
        );
        println!(
            "  server CPU per message: echo {base_cpu:.2} µs, relay {relay_cpu:.2} µs ({:.2}×, connection setup included)",
            relay_cpu / base_cpu.max(1e-3)
        );
        println!(
            "  ratio relay/echo : throughput {:.2}×, p50 {:.2}×, p99 {:.2}×",
            relay.rate / base.rate.max(1.0),
            relay.p50 / base.p50.max(1e-3),
            relay.p99 / base.p99.max(1e-3)
        );

        server.stop().await;
    }

    // 3. Join churn: connect, prove identity, send one signal, disconnect.
    if runs(Phase::Churn) {
        let server = ChildServer::spawn(&serve_args, core).await?;
        let churn = churn(&server.url, args.churn_workers, Duration::from_secs(args.churn_secs)).await?;
        println!("churn: {churn:.0} sessions/s (connect, hello/welcome, one signal, close; target ≥ 30,000)");
        server.stop().await;
    }
    Ok(())
}

/// Server CPU microseconds per delivered message over a load phase.
fn cpu_per_message(cpu: Duration, load: &LoadResult, secs: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / (load.rate * secs as f64).max(1.0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn connect_many(url: &str, n: usize, concurrency: usize) -> Vec<SignalingClient> {
    stream::iter(0..n)
        .map(|_| async move { SignalingClient::connect(url, &Identity::generate(), ConnectOptions::default()).await })
        .buffer_unordered(concurrency)
        .filter_map(|r| async move { r.ok() })
        .collect()
        .await
}

/// A timestamp (nanoseconds since `epoch`, 20 digits) padded to the payload size.
fn stamp(epoch: Instant) -> String {
    let nanos = epoch.elapsed().as_nanos();
    let mut s = format!("{nanos:020}");
    s.extend(std::iter::repeat_n('x', PAYLOAD - 20));
    s
}

/// Sends on a fixed schedule (open loop) until the run time is over.
struct Pace {
    tick: tokio::time::Interval,
    start: Instant,
    run_for: Duration,
}

impl Pace {
    fn new(period: Duration, run_for: Duration) -> Self {
        Self { tick: tokio::time::interval(period), start: Instant::now(), run_for }
    }

    /// Waits for the next send slot; false once the run is over.
    async fn next(&mut self) -> bool {
        if self.start.elapsed() >= self.run_for {
            return false;
        }
        self.tick.tick().await;
        true
    }

    /// When receivers stop waiting: the run plus 2 s for stragglers.
    fn receive_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + self.run_for + Duration::from_secs(2))
    }
}

/// The latencies one receiver saw, in microseconds.
struct Latencies {
    hist: Histogram<u64>,
    count: u64,
}

impl Latencies {
    fn new() -> anyhow::Result<Self> {
        Ok(Self { hist: Histogram::new_with_bounds(1, 60_000_000, 3)?, count: 0 })
    }

    /// Records the age of a payload made by [`stamp`]; other text is ignored.
    fn record(&mut self, payload: &str, epoch: Instant) {
        let Some(sent) = payload.get(..20).and_then(|d| d.parse::<u128>().ok()) else { return };
        let us = epoch.elapsed().as_nanos().saturating_sub(sent) / 1000;
        let _ = self.hist.record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
        self.count += 1;
    }
}

struct LoadResult {
    rate: f64,
    p50: f64,
    p99: f64,
}

/// Offers `rate` messages/s over `pairs` echo connections; latency is the round trip.
async fn echo_load(url: &str, pairs: usize, rate: u64, secs: u64) -> anyhow::Result<LoadResult> {
    let epoch = Instant::now();
    let period = Duration::from_secs_f64(pairs as f64 / rate as f64);
    let run_for = Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..pairs {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true).await?;
        let (mut tx, mut rx) = ws.split();
        let mut seen = Latencies::new()?;
        tasks.push(tokio::spawn(async move {
            let mut pace = Pace::new(period, run_for);
            let deadline = pace.receive_deadline();
            let sender = async move {
                while pace.next().await {
                    if tx.send(Message::Text(stamp(epoch).into())).await.is_err() {
                        break;
                    }
                }
            };
            let receiver = async move {
                while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, rx.next()).await {
                    seen.record(msg.to_text().unwrap_or_default(), epoch);
                }
                seen
            };
            tokio::join!(sender, receiver).1
        }));
    }
    collect(tasks, secs).await
}

/// Offers `rate` signals/s from A to B over `pairs` rooms of two.
async fn relay_load(url: &str, pairs: usize, rate: u64, secs: u64) -> anyhow::Result<LoadResult> {
    let epoch = Instant::now();
    let period = Duration::from_secs_f64(pairs as f64 / rate as f64);
    let run_for = Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..pairs {
        let (mut a, mut b) = (RawPeer::connect(url, None).await?, RawPeer::connect(url, None).await?);
        a.send(&ClientMessage::CreateRoom(CreateRoom { id: Some(1), password: None, max_peers: Some(2) })).await?;
        let ServerMessage::RoomCreated { room, .. } = a.recv().await? else { anyhow::bail!("no room") };
        for p in [&mut a, &mut b] {
            p.send(&ClientMessage::Join(Join { id: Some(2), room, password: None, meta: None, recreate: false }))
                .await?;
            let ServerMessage::Joined(_) = p.recv().await? else { anyhow::bail!("not joined") };
        }
        let ServerMessage::PeerJoined { .. } = a.recv().await? else { anyhow::bail!("no peer_joined") };
        // The signal frame with the sdp at its end; the timestamp is spliced in per message.
        let template = format!(r#"{{"type":"signal","to":"{}","conn":"bench","data":{{"kind":"offer","sdp":""#, b.id);
        let (mut tx, mut rx) = (a.ws, b.ws);
        let mut seen = Latencies::new()?;
        tasks.push(tokio::spawn(async move {
            let mut pace = Pace::new(period, run_for);
            let deadline = pace.receive_deadline();
            let sender = async move {
                while pace.next().await {
                    let frame = format!("{template}{}\"}}}}", stamp(epoch));
                    if tx.send(Message::Text(frame.into())).await.is_err() {
                        break;
                    }
                }
            };
            let receiver = async move {
                while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, rx.next()).await {
                    let text = msg.to_text().unwrap_or_default();
                    if let Some(at) = text.find(r#""sdp":""#) {
                        seen.record(&text[at + 7..], epoch);
                    }
                }
                seen
            };
            tokio::join!(sender, receiver).1
        }));
    }
    collect(tasks, secs).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Latencies>>, secs: u64) -> anyhow::Result<LoadResult> {
    let mut all = Latencies::new()?;
    for t in tasks {
        if let Ok(seen) = t.await {
            all.hist.add(&seen.hist)?;
            all.count += seen.count;
        }
    }
    Ok(LoadResult {
        rate: all.count as f64 / secs as f64,
        p50: all.hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99: all.hist.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// Sessions per second: connect, hello/welcome, one signal to a sink peer, close.
async fn churn(url: &str, workers: usize, run_for: Duration) -> anyhow::Result<f64> {
    let mut sink = SignalingClient::connect(url, &Identity::generate(), ConnectOptions::default()).await?;
    let sink_id: PeerId = sink.peer_id();
    let sessions = Arc::new(AtomicU64::new(0));
    let stop = tokio::time::Instant::now() + run_for + Duration::from_secs(3);
    let drain = tokio::spawn(async move { while let Ok(Ok(_)) = tokio::time::timeout_at(stop, sink.next()).await {} });
    let conn: ConnId = "churn".parse()?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (url, sessions, conn) = (url.to_owned(), sessions.clone(), conn.clone());
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < run_for {
                let identity = Identity::generate();
                let Ok(mut c) = SignalingClient::connect(&url, &identity, ConnectOptions::default()).await else {
                    continue;
                };
                if c.signal(sink_id, &conn, SignalData::Accept).await.is_ok() && c.close().await.is_ok() {
                    sessions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    drain.abort();
    Ok(sessions.load(Ordering::Relaxed) as f64 / elapsed)
}
