//! The abuse benchmark: 100 honest peers keep joining rooms and relaying
//! signals while one abusive address runs every server-side attack at once;
//! their latencies are set beside a run without the attacker (the baseline,
//! measured in the same run) and disconnections are counted. Loopback only:
//! each honest peer connects from its own 127.0.1.x address, the attacker
//! from 127.0.0.250, so per-address limits see them apart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use switchboard::proto::{
    ClientMessage, ConnId, CreateRoom, Join, Leave, MailRequest, PeerId, Ping, RoomCode, ServerMessage, SignalData,
    SignalRequest, Watch,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::raw::RawPeer;
use super::{ChildServer, pin_self};

/// Flags of `bench abuse`.
#[derive(Debug, Args)]
pub(crate) struct AbuseArgs {
    /// Honest peers (in pairs), each from its own loopback address.
    #[arg(long, default_value_t = 100)]
    honest: usize,
    /// Seconds each run lasts (a p99 over 30 s is steadier than over 10).
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Do not pin server and load generator to cores 0 and 1.
    #[arg(long)]
    no_pin: bool,
}

/// The attacker's one address.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 250);
/// Each attacking connection sends at the server's default frame rate
/// (200/s): faster only earns `rate_limited` and a closed connection, and
/// would load the core the honest peers are measured on.
const ATTACK_EVERY: Duration = Duration::from_millis(5);
/// How often each honest pair relays a signal and churns a room.
const SIGNAL_EVERY: Duration = Duration::from_millis(100);
const JOIN_EVERY: Duration = Duration::from_millis(500);
/// How often a peer that only listens pings the server (its idle timeout is 30 s).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(10);

pub(crate) async fn run(args: AbuseArgs) -> anyhow::Result<()> {
    let pinned = !args.no_pin && pin_self(1);
    let core = pinned.then_some(0);
    let pairs = (args.honest / 2).max(1);
    println!(
        "switchboard bench abuse — {} honest peers, {}s per run, server on core 0, load on core 1: {pinned}",
        pairs * 2,
        args.secs
    );
    // The embedded STUN/TURN server runs too, on a port free a moment ago.
    let turn = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    let turn_listen = turn.to_string();
    let serve = ["serve", "--bind", "127.0.0.1:0", "--memory", "--turn-listen", &turn_listen, "--log", "error"];
    let server = ChildServer::spawn(&serve, core).await?;
    let base =
        honest_load(&Target { url: server.url.clone(), turn }, pairs, Duration::from_secs(args.secs), None).await?;
    server.stop().await;
    let server = ChildServer::spawn(&serve, core).await?;
    let attacks = Arc::new(AttackCounts::default());
    let target = Target { url: server.url.clone(), turn };
    let under = honest_load(&target, pairs, Duration::from_secs(args.secs), Some(attacks.clone())).await?;
    let rss = server.rss()?;
    server.stop().await;
    base.print("baseline (no attacker)");
    under.print("under attack          ");
    println!(
        "  ratio attack/baseline: signal p99 {:.2}×, join p99 {:.2}× (target ≤ 2×); honest disconnections {} (target 0)",
        under.signal.p99 / base.signal.p99.max(1e-3),
        under.join.p99 / base.join.p99.max(1e-3),
        under.disconnects
    );
    println!("  attacker: {}; server RSS at the end {:.1} MiB", attacks.summary(), rss as f64 / (1024.0 * 1024.0));
    Ok(())
}

struct Quantiles {
    p50: f64,
    p99: f64,
    count: u64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99: h.value_at_quantile(0.99) as f64 / 1000.0,
            count: h.len(),
        }
    }
}

struct LoadResult {
    signal: Quantiles,
    join: Quantiles,
    disconnects: u64,
}

impl LoadResult {
    fn print(&self, label: &str) {
        println!(
            "  {label}: signal p50 {:>6.2} ms p99 {:>6.2} ms ({} relayed); create+join+leave p50 {:>6.2} ms p99 {:>6.2} ms ({} rooms)",
            self.signal.p50, self.signal.p99, self.signal.count, self.join.p50, self.join.p99, self.join.count
        );
    }
}

/// Honest peer `n`'s address: 127.0.1.x, 127.0.2.x, …
fn honest_addr(n: usize) -> Ipv4Addr {
    let n = n + 1;
    Ipv4Addr::new(127, 0, 1 + (n / 250) as u8, (n % 250) as u8 + 1)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs the honest pairs (and the attacker, when given its counters) for `run_for`.
/// The server under test: its WebSocket URL and its STUN/TURN UDP address.
struct Target {
    url: String,
    turn: SocketAddr,
}

async fn honest_load(
    target: &Target,
    pairs: usize,
    run_for: Duration,
    attacker: Option<Arc<AttackCounts>>,
) -> anyhow::Result<LoadResult> {
    let url = target.url.as_str();
    let disconnects = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut victims = Vec::new();
    for p in 0..pairs {
        let mut a = RawPeer::connect(url, Some(honest_addr(2 * p).into())).await?;
        let mut b = RawPeer::connect(url, Some(honest_addr(2 * p + 1).into())).await?;
        let ServerMessage::RoomCreated { room, .. } =
            a.ask(&ClientMessage::CreateRoom(CreateRoom { id: Some(1), password: None, max_peers: Some(2) })).await?
        else {
            bail!("no room")
        };
        for peer in [&mut a, &mut b] {
            let join = Join { id: Some(2), room, password: None, meta: None, recreate: false };
            let ServerMessage::Joined(_) = peer.ask(&ClientMessage::Join(join)).await? else { bail!("not joined") };
        }
        victims.push(b.id);
        tasks.push(tokio::spawn(pair(a, b, run_for, disconnects.clone())));
    }
    let attack = attacker.map(|counts| {
        let (url, turn) = (url.to_owned(), target.turn);
        // The attacker's own work (encoding some 20 MB/s of JSON) runs at
        // idle priority on its own thread: on this machine it shares the
        // honest clients' core, and what is measured is what it costs the
        // server, not the clients' CPU.
        std::thread::spawn(move || {
            let idle = idle_priority();
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return idle };
            rt.block_on(async {
                let both = async {
                    tokio::join!(attack(url, victims, run_for, counts.clone()), turn_flood(turn, run_for, counts))
                };
                // Every attack stops by itself at the end of the run; a
                // connection stuck in its handshake does not hold it up.
                let _ = tokio::time::timeout(run_for + Duration::from_secs(5), both).await;
            });
            idle
        })
    });
    let (mut signal, mut join) = (histogram()?, histogram()?);
    for t in tasks {
        let (s, j) = t.await.context("an honest pair failed")??;
        signal.add(&s)?;
        join.add(&j)?;
    }
    if let Some(attack) = attack {
        let idle = tokio::task::spawn_blocking(move || attack.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the attacker panicked"))?;
        if !idle {
            println!("  (chrt could not give the attacker idle priority: it competes with the honest clients)");
        }
    }
    Ok(LoadResult {
        signal: Quantiles::of(&signal),
        join: Quantiles::of(&join),
        disconnects: disconnects.load(Ordering::Relaxed),
    })
}

/// Puts the calling thread at `SCHED_IDLE` (with `chrt`, as `pin_self` uses
/// `taskset`); whether that worked.
fn idle_priority() -> bool {
    let Ok(me) = std::fs::read_link("/proc/thread-self") else { return false };
    let Some(tid) = me.file_name().and_then(|t| t.to_str()).map(str::to_owned) else { return false };
    std::process::Command::new("chrt")
        .args(["--idle", "-p", "0", &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One honest pair: A signals B (B times each), and A creates, joins and
/// leaves a room of its own now and then.
async fn pair(
    mut a: RawPeer,
    b: RawPeer,
    run_for: Duration,
    disconnects: Arc<AtomicU64>,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let epoch = Instant::now();
    let mut joins = histogram()?;
    let mut signals = histogram()?;
    let to = b.id;
    let receiver = {
        let disconnects = disconnects.clone();
        let mut b = b;
        let deadline = tokio::time::Instant::now() + run_for + Duration::from_secs(2);
        tokio::spawn(async move {
            let mut seen = histogram()?;
            // A client that only listens still pings, as real ones do, so
            // that the server's idle timeout does not take it in long runs.
            let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
            keepalive.tick().await;
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout_at(deadline, b.recv()) => next,
                    _ = keepalive.tick() => {
                        let ping = ClientMessage::Ping(Ping { id: None });
                        match b.send(&ping).await {
                            Ok(()) => continue,
                            Err(e) => Ok(Err(e)),
                        }
                    }
                };
                match next {
                    Err(_) => return Ok::<_, anyhow::Error>(seen),
                    Ok(Ok(ServerMessage::Signal { data, .. })) => {
                        if let Ok(SignalData::Offer { sdp, .. }) = data.parse()
                            && let Ok(sent) = sdp.parse::<u64>()
                        {
                            let _ = seen.record(micros(epoch.elapsed()).saturating_sub(sent).max(1));
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => {
                        disconnects.fetch_add(1, Ordering::Relaxed);
                        return Ok(seen);
                    }
                }
            }
        })
    };
    let mut signal_tick = tokio::time::interval(SIGNAL_EVERY);
    let mut join_tick = tokio::time::interval(JOIN_EVERY);
    let conn: ConnId = "bench".parse()?;
    let end = Instant::now() + run_for;
    let mut id = 10;
    while Instant::now() < end {
        id += 1;
        let result = tokio::select! {
            _ = signal_tick.tick() => {
                let data = SignalData::Offer { sdp: micros(epoch.elapsed()).to_string(), session: 0 };
                let signal = SignalRequest { id: None, to, conn: conn.clone(), data: data.into() };
                a.send(&ClientMessage::Signal(signal)).await
            }
            _ = join_tick.tick() => churn_room(&mut a, id, &mut joins).await,
        };
        if result.is_err() {
            disconnects.fetch_add(1, Ordering::Relaxed);
            break;
        }
    }
    let seen = receiver.await.context("receiver")??;
    signals.add(&seen)?;
    Ok((signals, joins))
}

/// Creates a room, joins it and leaves it; records the three round trips.
async fn churn_room(a: &mut RawPeer, id: u64, joins: &mut Histogram<u64>) -> anyhow::Result<()> {
    let started = Instant::now();
    let create = CreateRoom { id: Some(id), password: None, max_peers: None };
    let ServerMessage::RoomCreated { room, .. } = a.ask(&ClientMessage::CreateRoom(create)).await? else {
        bail!("create refused")
    };
    let join = Join { id: Some(id), room, password: None, meta: None, recreate: false };
    let ServerMessage::Joined(_) = a.ask(&ClientMessage::Join(join)).await? else { bail!("join refused") };
    let ServerMessage::Ok { .. } = a.ask(&ClientMessage::Leave(Leave { id: Some(id), room })).await? else {
        bail!("leave refused")
    };
    let _ = joins.record(micros(started.elapsed()));
    Ok(())
}

/// What the attacker did, by attack.
#[derive(Default)]
struct AttackCounts {
    mails: AtomicU64,
    guesses: AtomicU64,
    held: AtomicU64,
    flood: AtomicU64,
    rooms: AtomicU64,
    watches: AtomicU64,
    idle_sockets: AtomicU64,
    slow_requests: AtomicU64,
    reconnects: AtomicU64,
    turn_requests: AtomicU64,
    turn_answers: AtomicU64,
}

impl AttackCounts {
    fn summary(&self) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{} large mails, {} code guesses, {} held signals to absent ids, {} flood signals, {} room creates, \
             {} watches of random ids, {} sockets without hello, {} slowloris requests, {} reconnects, \
             {} TURN requests without credentials or with made-up nonces ({} answered)",
            n(&self.mails),
            n(&self.guesses),
            n(&self.held),
            n(&self.flood),
            n(&self.rooms),
            n(&self.watches),
            n(&self.idle_sockets),
            n(&self.slow_requests),
            n(&self.reconnects),
            n(&self.turn_requests),
            n(&self.turn_answers)
        )
    }
}

/// Every attack at once from one address, each on connections of its own,
/// reconnecting whenever the server closes one.
async fn attack(url: String, victims: Vec<PeerId>, run_for: Duration, counts: Arc<AttackCounts>) {
    let end = Instant::now() + run_for;
    let victims = Arc::new(victims);
    let mut tasks = Vec::new();
    let Ok(flood) = "flood".parse::<ConnId>() else { return };
    let big = "x".repeat(31 * 1024);
    for kind in 0..6 {
        let (url, victims, counts, flood, big) =
            (url.clone(), victims.clone(), counts.clone(), flood.clone(), big.clone());
        tasks.push(tokio::spawn(async move {
            let mut n: u64 = 0;
            let mut pace = tokio::time::interval(ATTACK_EVERY);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < end {
                let Ok(mut peer) = RawPeer::connect(&url, Some(ATTACKER.into())).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                while Instant::now() < end {
                    pace.tick().await;
                    n += 1;
                    let victim = victims[(n as usize) % victims.len()];
                    let random = PeerId::from_bytes(rand::random());
                    let (msg, counter) = match kind {
                        0 => {
                            let to = if n.is_multiple_of(2) { victim } else { random };
                            let body = serde_json::json!(big);
                            (ClientMessage::Mail(MailRequest { id: None, to, body }), &counts.mails)
                        }
                        1 => {
                            let indices: Vec<u8> = (0..10).map(|_| rand::random::<u8>()).collect();
                            let Ok(room) = RoomCode::from_indices(&indices) else { continue };
                            let join = Join { id: None, room, password: None, meta: None, recreate: false };
                            (ClientMessage::Join(join), &counts.guesses)
                        }
                        2 | 3 => {
                            let to = if kind == 2 { random } else { victim };
                            let data = SignalData::Offer { sdp: big.clone(), session: 0 };
                            let signal = SignalRequest { id: None, to, conn: flood.clone(), data: data.into() };
                            (ClientMessage::Signal(signal), if kind == 2 { &counts.held } else { &counts.flood })
                        }
                        4 => (
                            ClientMessage::CreateRoom(CreateRoom { id: None, password: None, max_peers: None }),
                            &counts.rooms,
                        ),
                        _ => {
                            let peers = (0..256).map(|_| PeerId::from_bytes(rand::random())).collect();
                            (ClientMessage::Watch(Watch { id: None, peers }), &counts.watches)
                        }
                    };
                    if peer.send(&msg).await.is_err() {
                        break;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    // Read what came back without waiting for it.
                    while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, peer.ws.next()).await {}
                }
                counts.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Sockets that never say hello, and requests whose headers trickle in.
    let addr = url.strip_prefix("ws://").and_then(|r| r.strip_suffix("/ws")).and_then(|a| a.parse::<SocketAddr>().ok());
    if let Some(addr) = addr {
        for slow in [false, true] {
            let counts = counts.clone();
            tasks.push(tokio::spawn(async move {
                let mut held = Vec::new();
                while Instant::now() < end && held.len() < 300 {
                    let Ok(socket) = TcpSocket::new_v4() else { break };
                    if socket.bind(SocketAddr::new(IpAddr::V4(ATTACKER), 0)).is_err() {
                        break;
                    }
                    let Ok(mut tcp) = socket.connect(addr).await else { continue };
                    let head = if slow { "GET /ws HTTP/1.1\r\nHost: x\r\n" } else { "" };
                    if !slow {
                        if let Ok((ws, _)) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp).await {
                            held.push(Held::Ws(Box::new(ws)));
                            counts.idle_sockets.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    if tcp.write_all(head.as_bytes()).await.is_ok() {
                        held.push(Held::Tcp(tcp));
                        counts.slow_requests.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Keep them alive: pings on the idle ones, a header byte on the slow ones.
                while Instant::now() < end {
                    for h in &mut held {
                        match h {
                            Held::Ws(ws) => {
                                let _ = ws.send(Message::Ping(Vec::new().into())).await;
                            }
                            Held::Tcp(tcp) => {
                                let _ = tcp.write_all(b"X").await;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Spoofable TURN requests at the pace of every other attack (200/s, four
/// times the TURN budget of one address): Allocates without credentials,
/// Refreshes without MESSAGE-INTEGRITY, and Allocates with credentials and a
/// made-up nonce (each once left a nonce in the `turn` crate).
async fn turn_flood(turn: SocketAddr, run_for: Duration, counts: Arc<AttackCounts>) {
    let Ok(socket) = tokio::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(ATTACKER), 0)).await else { return };
    let end = Instant::now() + run_for;
    let mut pace = tokio::time::interval(ATTACK_EVERY);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; 1500];
    for n in 0u64.. {
        if Instant::now() >= end {
            break;
        }
        pace.tick().await;
        let request = match n % 3 {
            0 => stun_request(0x0003, &[(0x0019, &[17, 0, 0, 0])]),
            1 => stun_request(0x0004, &[(0x000D, &[0, 0, 0, 0])]),
            _ => {
                let nonce = format!("made-up-{n}");
                let integrity = [0u8; 20];
                let attributes: [(u16, &[u8]); 5] = [
                    (0x0019, &[17, 0, 0, 0]),
                    (0x0006, b"1:attacker"),
                    (0x0014, b"switchboard"),
                    (0x0015, nonce.as_bytes()),
                    (0x0008, &integrity),
                ];
                stun_request(0x0003, &attributes)
            }
        };
        if socket.send_to(&request, turn).await.is_ok() {
            counts.turn_requests.fetch_add(1, Ordering::Relaxed);
        }
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::ZERO, socket.recv_from(&mut buf)).await {
            counts.turn_answers.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A STUN request of `method` with these attributes (each padded to four bytes).
fn stun_request(method: u16, attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, value) in attributes {
        body.extend_from_slice(&kind.to_be_bytes());
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut msg = Vec::with_capacity(20 + body.len());
    msg.extend_from_slice(&method.to_be_bytes());
    msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
    msg.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    msg.extend_from_slice(&rand::random::<[u8; 12]>());
    msg.extend_from_slice(&body);
    msg
}

enum Held {
    Ws(Box<WebSocketStream<TcpStream>>),
    Tcp(TcpStream),
}
