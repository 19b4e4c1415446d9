//! `switchboard bench p2p`: link setup time, round trip and reliable
//! throughput between two nodes on loopback, beside raw UDP measured in the
//! same run.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use switchboard::{HostCandidates, IcePolicy, Node};
use tokio::net::UdpSocket;

use crate::local::{LocalServer, PATIENCE, connected, next_message};

/// Flags of `bench p2p`.
#[derive(Debug, Args)]
pub(crate) struct P2pArgs {
    /// Link setups to time.
    #[arg(long, default_value_t = 10)]
    setups: usize,
    /// Round trips to time.
    #[arg(long, default_value_t = 2000)]
    round_trips: usize,
    /// MiB moved per throughput run.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// str0m's SCTP send buffer per link, KiB (the library default is 128).
    #[arg(long, default_value_t = 128)]
    sctp_buffer_kib: usize,
    /// Relay-only policy: every link goes through the server's embedded TURN
    /// server (compare with a run without it).
    #[arg(long)]
    relay: bool,
}

/// Blocks the round trips of each kind are measured in, taking turns.
const BLOCKS: usize = 10;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

pub(crate) async fn run(args: P2pArgs) -> anyhow::Result<()> {
    // Measure on the runtime's worker threads, where applications run their tasks.
    tokio::spawn(measure(args)).await?
}

async fn measure(args: P2pArgs) -> anyhow::Result<()> {
    if args.setups == 0 || args.round_trips == 0 || args.mib == 0 {
        bail!("--setups, --round-trips and --mib must be at least 1");
    }
    println!("# peer-to-peer on loopback: two nodes in one process, baseline raw UDP in the same run");
    let server = if args.relay {
        println!("# relay-only policy: every link goes through the embedded TURN server on 127.0.0.1");
        LocalServer::with_turn().await?
    } else {
        LocalServer::start().await?
    };
    let url = server.url.clone();

    // Setup: both peers in the room -> channels open on both sides.
    let mut setups = Vec::with_capacity(args.setups);
    for _ in 0..args.setups {
        let (a, b) = (node(&url, &args).await?, node(&url, &args).await?);
        let room = a.create_room(None, None).await?;
        a.join(room).await?;
        let t = Instant::now();
        b.join(room).await?;
        let (x, y) = tokio::join!(connected(&a), connected(&b));
        x?;
        y?;
        setups.push(t.elapsed());
        a.close().await;
        b.close().await;
    }
    setups.sort();
    println!(
        "setup (join -> both sides open): p50 {:.2} ms, p99 {:.2} ms over {} links   target p50 <= 20 ms",
        ms(percentile(&setups, 50)),
        ms(percentile(&setups, 99)),
        setups.len()
    );

    let (a, b) = (node(&url, &args).await?, node(&url, &args).await?);
    let room = a.create_room(None, None).await?;
    a.join(room).await?;
    b.join(room).await?;
    let (x, y) = tokio::join!(connected(&a), connected(&b));
    x?;
    y?;

    // Round trip: 64-byte message out, echoed back, one at a time; beside
    // raw UDP and a bare str0m pair (one task a side, no Switchboard).
    // The three take turns in ten blocks, so that all see the same moments
    // of a machine whose speed varies (a shared VM).
    let (mut udp, mut bare, mut link) = (Vec::new(), Vec::new(), Vec::new());
    let block = args.round_trips.div_ceil(BLOCKS);
    for _ in 0..BLOCKS {
        udp.extend(udp_round_trips(block).await?);
        bare.extend(super::bare::round_trips(block).await?);
        link.extend(link_round_trips(&a, &b, block).await?);
    }
    for v in [&mut udp, &mut bare, &mut link] {
        v.sort();
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (u50, u99) = (percentile(&udp, 50), percentile(&udp, 99));
    let (s50, s99) = (percentile(&bare, 50), percentile(&bare, 99));
    let (l50, l99) = (percentile(&link, 50), percentile(&link, 99));
    println!("raw UDP round trip:    p50 {:.1} us, p99 {:.1} us", us(u50), us(u99));
    println!(
        "bare str0m round trip: p50 {:.1} us, p99 {:.1} us   ratio p50 {:.2}x raw UDP",
        us(s50),
        us(s99),
        s50.as_secs_f64() / u50.as_secs_f64()
    );
    println!(
        "link round trip:       p50 {:.1} us, p99 {:.1} us   ratio p50 {:.2}x bare str0m (target <= 1.3x), {:.2}x raw UDP (target <= 3x)",
        us(l50),
        us(l99),
        l50.as_secs_f64() / s50.as_secs_f64(),
        l50.as_secs_f64() / u50.as_secs_f64()
    );

    // Throughput.
    let udp_rate = udp_throughput(args.mib).await?;
    println!("raw UDP throughput (1200-byte datagrams, received): {udp_rate:.0} MB/s");
    for size in [16usize << 10, 1 << 20] {
        let rate = link_throughput(&a, &b, size, args.mib << 20).await?;
        println!(
            "reliable throughput, {:>4} KiB messages: {rate:.0} MB/s   ratio {:.2} of raw UDP   target >= 100 MB/s",
            size >> 10,
            rate / udp_rate
        );
    }
    a.close().await;
    b.close().await;
    server.stop().await?;
    Ok(())
}

async fn node(url: &str, args: &P2pArgs) -> anyhow::Result<Node> {
    Ok(Node::builder()
        .signaling(url)
        .host_candidates(HostCandidates::Loopback)
        .sctp_send_buffer(args.sctp_buffer_kib << 10)
        .ice_policy(if args.relay { IcePolicy::Relay } else { IcePolicy::All })
        .start()
        .await?)
}

async fn next_data(node: &Node) -> anyhow::Result<Bytes> {
    Ok(next_message(node).await?.data)
}

async fn link_round_trips(a: &Node, b: &Node, n: usize) -> anyhow::Result<Vec<Duration>> {
    let (ida, idb) = (a.id(), b.id());
    let echo = async {
        for _ in 0..n {
            let data = next_data(b).await?;
            b.send(ida, "reliable", data).await?;
        }
        anyhow::Ok(())
    };
    let ping = async {
        let mut out = Vec::with_capacity(n);
        let payload = Bytes::from(vec![0u8; 64]);
        for _ in 0..n {
            let t = Instant::now();
            a.send(idb, "reliable", payload.clone()).await?;
            next_data(a).await?;
            out.push(t.elapsed());
        }
        anyhow::Ok(out)
    };
    let (e, p) = tokio::join!(echo, ping);
    e?;
    let mut out = p?;
    out.sort();
    Ok(out)
}

async fn udp_round_trips(n: usize) -> anyhow::Result<Vec<Duration>> {
    let echo = UdpSocket::bind("127.0.0.1:0").await?;
    let client = UdpSocket::bind("127.0.0.1:0").await?;
    client.connect(echo.local_addr()?).await?;
    let echo_task = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let Ok(Ok((len, from))) = tokio::time::timeout(PATIENCE, echo.recv_from(&mut buf)).await else { return };
            let _ = echo.send_to(&buf[..len], from).await;
        }
    });
    let mut out = Vec::with_capacity(n);
    let mut buf = [0u8; 2048];
    for _ in 0..n {
        let t = Instant::now();
        client.send(&[0u8; 64]).await?;
        tokio::time::timeout(PATIENCE, client.recv(&mut buf)).await.context("udp echo lost")??;
        out.push(t.elapsed());
    }
    echo_task.await?;
    out.sort();
    Ok(out)
}

/// Datagrams of 1200 bytes as fast as one sender can, counting what arrives.
async fn udp_throughput(mib: usize) -> anyhow::Result<f64> {
    let rx = switchboard_udp(4 << 20)?;
    let tx = UdpSocket::bind("127.0.0.1:0").await?;
    tx.connect(rx.local_addr()?).await?;
    let total = mib << 20;
    let count = total / 1200;
    let receiver = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut got = 0usize;
        let mut first = None;
        let mut last = Instant::now();
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), rx.recv(&mut buf)).await {
            first.get_or_insert_with(Instant::now);
            got += n;
            last = Instant::now();
        }
        (got, first.map(|f| last - f))
    });
    let payload = [7u8; 1200];
    for _ in 0..count {
        tx.send(&payload).await?;
    }
    let (got, span) = receiver.await?;
    let span = span.context("no datagram arrived")?;
    Ok(got as f64 / span.as_secs_f64() / 1e6)
}

fn switchboard_udp(buffer: usize) -> anyhow::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let _ = socket.set_recv_buffer_size(buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

async fn link_throughput(a: &Node, b: &Node, size: usize, total: usize) -> anyhow::Result<f64> {
    let n = total.div_ceil(size);
    let to = b.id();
    let payload = Bytes::from(vec![0x5Au8; size]);
    let t = Instant::now();
    let send = async {
        for _ in 0..n {
            a.send(to, "reliable", payload.clone()).await?;
        }
        anyhow::Ok(())
    };
    let recv = async {
        let mut got = 0usize;
        for _ in 0..n {
            got += next_data(b).await?.len();
        }
        anyhow::Ok(got)
    };
    let (s, r) = tokio::join!(send, recv);
    s?;
    let got = r?;
    Ok(got as f64 / t.elapsed().as_secs_f64() / 1e6)
}
