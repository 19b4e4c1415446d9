//! `chat`, `send` and `recv`: peers that use a running server.
//!
//! Exit codes: 0 done, 1 runtime error (server unreachable, I/O), 2 usage,
//! 3 integrity failure (hash or size mismatch), 4 no peer or link lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard::proto::{PeerId, RoomCode};
use switchboard::{ChannelConfig, Event, HostCandidates, Node};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Exit code for an integrity failure.
pub(crate) const EXIT_INTEGRITY: u8 = 3;
/// Exit code when no peer came or the link was lost.
pub(crate) const EXIT_PEER: u8 = 4;

/// A failure with its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Exit {
    pub(crate) code: u8,
    message: String,
}

fn exit(code: u8, message: impl Into<String>) -> anyhow::Error {
    Exit { code, message: message.into() }.into()
}

/// Which local addresses to offer.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Hosts {
    /// Every interface but loopback.
    All,
    /// 127.0.0.1 only.
    Loopback,
}

/// Flags every peer command takes.
#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    /// The signaling server.
    #[arg(long, env = "SWITCHBOARD_SERVER", default_value = "ws://127.0.0.1:7600/ws")]
    server: String,
    /// Local addresses offered to peers.
    #[arg(long, value_enum, default_value = "all")]
    hosts: Hosts,
    /// Give up when no peer connects within this many seconds.
    #[arg(long, default_value_t = 120)]
    wait: u64,
}

/// Flags of `chat`.
#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// Room code; a new room is created (and its code printed) without one.
    room: Option<String>,
    #[command(flatten)]
    peer: PeerArgs,
}

/// Flags of `send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Room code of the receiver.
    room: String,
    /// The file to send.
    file: PathBuf,
    #[command(flatten)]
    peer: PeerArgs,
}

/// Flags of `recv`.
#[derive(Debug, Args)]
pub(crate) struct RecvArgs {
    /// Room code; a new room is created (and its code printed) without one.
    room: Option<String>,
    /// Where received files go.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    #[command(flatten)]
    peer: PeerArgs,
}

/// What the sender announces before the bytes.
#[derive(Debug, Serialize, Deserialize)]
struct FileHeader {
    name: String,
    size: u64,
    sha256: String,
}

const FILE_CHUNK: usize = 1 << 20;

async fn start(args: &PeerArgs, room: Option<&str>) -> anyhow::Result<(Arc<Node>, RoomCode)> {
    let hosts = match args.hosts {
        Hosts::All => HostCandidates::All,
        Hosts::Loopback => HostCandidates::Loopback,
    };
    let node = Node::builder()
        .signaling(&args.server)
        .host_candidates(hosts)
        .channel(ChannelConfig::reliable("control"))
        .channel(ChannelConfig::reliable("data"))
        .start()
        .await
        .with_context(|| format!("cannot connect to {}", args.server))?;
    let room = match room {
        Some(code) => code.parse::<RoomCode>().map_err(|e| anyhow::anyhow!("room code {code:?}: {e}"))?,
        None => {
            let room = node.create_room(None, None).await.context("cannot create a room")?;
            println!("room {room}");
            room
        }
    };
    node.join(room).await.with_context(|| format!("cannot join room {room}"))?;
    eprintln!("joined room {room} as {}", node.id());
    Ok((Arc::new(node), room))
}

/// Waits for the first connected peer.
async fn first_peer(node: &Node, wait: u64) -> anyhow::Result<PeerId> {
    let found = tokio::time::timeout(Duration::from_secs(wait), async {
        while let Some(ev) = node.next_event().await {
            if let Event::PeerConnected { peer, path, rtt } = ev {
                eprintln!("connected to {peer} ({path}, rtt {})", fmt_rtt(rtt));
                return Some(peer);
            }
        }
        None
    });
    match found.await {
        Ok(Some(peer)) => Ok(peer),
        _ => Err(exit(EXIT_PEER, format!("no peer connected within {wait} s"))),
    }
}

fn fmt_rtt(rtt: Option<Duration>) -> String {
    rtt.map_or_else(|| "unknown".to_owned(), |r| format!("{:.2} ms", r.as_secs_f64() * 1000.0))
}

/// A peer as `chat` shows it: the first 16 of its 32 hex digits (64 bits,
/// as the page shows it: too many to make a look-alike id).
fn short(peer: PeerId) -> String {
    peer.to_string()[..16].to_owned()
}

/// `switchboard chat [ROOM]`.
pub(crate) async fn chat(args: ChatArgs) -> anyhow::Result<()> {
    let (node, room) = start(&args.peer, args.room.as_deref()).await?;
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<String>(1000);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if lines_tx.send(line).await.is_err() {
                break;
            }
        }
    });
    let mut connected: Vec<PeerId> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let mut stdin_open = true;
    let mut ever_connected = false;
    let mut stdout = tokio::io::stdout();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.peer.wait);
    loop {
        tokio::select! {
            line = lines_rx.recv(), if stdin_open => match line {
                Some(line) if connected.is_empty() => held.push(line),
                Some(line) => {
                    node.broadcast(room, "control", line.into_bytes(), None).await?;
                }
                None => {
                    stdin_open = false;
                    if ever_connected {
                        break;
                    }
                }
            },
            ev = node.next_event() => match ev {
                Some(Event::PeerConnected { peer, path, rtt }) => {
                    eprintln!("* {} connected ({path}, rtt {})", short(peer), fmt_rtt(rtt));
                    connected.push(peer);
                    ever_connected = true;
                    for line in held.drain(..) {
                        node.send(peer, "control", line.into_bytes()).await?;
                    }
                    if !stdin_open {
                        break;
                    }
                }
                Some(Event::PeerDisconnected { peer, reason }) => {
                    eprintln!("* {} left ({reason})", short(peer));
                    connected.retain(|p| *p != peer);
                }
                Some(Event::PathChanged { peer, path }) => eprintln!("* {} now {path}", short(peer)),
                Some(Event::QualityChanged { peer, quality }) => eprintln!("* {} link quality {quality}", short(peer)),
                Some(Event::SignalingLost { reason }) => eprintln!("* server lost ({reason}); reconnecting"),
                Some(Event::SignalingRestored { .. }) => eprintln!("* server back"),
                Some(Event::Message(m)) => {
                    let line = format!("{}: {}\n", short(m.peer), String::from_utf8_lossy(&m.data));
                    stdout.write_all(line.as_bytes()).await?;
                    stdout.flush().await?;
                }
                Some(Event::Request(r)) => {
                    // A peer that is about to leave checks its lines arrived.
                    node.respond(&r, Bytes::new()).await.ok();
                }
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep_until(deadline), if !ever_connected => {
                return Err(exit(EXIT_PEER, format!("no peer connected within {} s", args.peer.wait)));
            }
        }
    }
    // Stdin ended: make sure every peer has our lines before leaving.
    for peer in connected {
        node.request(peer, "control", Bytes::new(), Duration::from_secs(10)).await.ok();
    }
    // Print what arrived meanwhile (the answers above came after it).
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, node.next_event()).await {
        if let Event::Message(m) = ev {
            let line = format!("{}: {}\n", short(m.peer), String::from_utf8_lossy(&m.data));
            stdout.write_all(line.as_bytes()).await?;
        }
    }
    stdout.flush().await?;
    node.close().await;
    Ok(())
}

/// `switchboard send ROOM FILE`.
pub(crate) async fn send(args: SendArgs) -> anyhow::Result<()> {
    let mut file =
        tokio::fs::File::open(&args.file).await.with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let sha256 = hash_file(&args.file).await?;
    let name = args.file.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_owned();
    let (node, _room) = start(&args.peer, Some(&args.room)).await?;
    let peer = first_peer(&node, args.peer.wait).await?;
    let header = FileHeader { name: name.clone(), size, sha256: sha256.clone() };
    node.send_json(peer, "data", &header).await?;
    let bar = progress(size, &format!("sending {name}"));
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        node.send(peer, "data", Bytes::copy_from_slice(&buf[..n])).await.map_err(|e| exit(EXIT_PEER, e.to_string()))?;
        bar.inc(n as u64);
        // Nothing else is read while sending; a move to another path is news.
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, node.next_event()).await {
            if let Event::PathChanged { peer: p, path } = ev
                && p == peer
            {
                bar.suspend(|| eprintln!("path now {path}"));
            }
        }
    }
    // The receiver answers once it has checked size and hash.
    let verdict = node.request(peer, "data", &b"done"[..], Duration::from_secs(300)).await;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    match verdict {
        Ok(_) => {
            eprintln!(
                "sent {name}: {size} bytes in {secs:.2} s ({:.1} MB/s), sha256 {sha256} verified",
                size as f64 / secs / 1e6
            );
            node.close().await;
            Ok(())
        }
        Err(switchboard::RequestFailed::Remote(why)) => Err(exit(EXIT_INTEGRITY, format!("receiver reports: {why}"))),
        Err(e) => Err(exit(EXIT_PEER, format!("no confirmation from the receiver: {e}"))),
    }
}

/// `switchboard recv [ROOM] [--out DIR]`.
pub(crate) async fn recv(args: RecvArgs) -> anyhow::Result<()> {
    if !args.out.is_dir() {
        bail!("--out {} is not a directory", args.out.display());
    }
    let (node, _room) = start(&args.peer, args.room.as_deref()).await?;
    let peer = first_peer(&node, args.peer.wait).await?;
    let mut header: Option<FileHeader> = None;
    let mut out: Option<(tokio::fs::File, PathBuf)> = None;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut bar = ProgressBar::hidden();
    loop {
        let Some(ev) = node.next_event().await else { return Err(exit(EXIT_PEER, "node closed")) };
        match ev {
            // On the one ordered channel: the header, the bytes, then the "done" request.
            Event::Message(m) if m.peer == peer && header.is_none() && out.is_none() => {
                let h: FileHeader = m.json().context("bad file header from the sender")?;
                let path = args.out.join(safe_name(&h.name));
                let file = tokio::fs::File::create(&path)
                    .await
                    .with_context(|| format!("cannot create {}", path.display()))?;
                bar = progress(h.size, &format!("receiving {}", h.name));
                out = Some((file, path));
                header = Some(h);
            }
            Event::Message(m) if m.peer == peer && &*m.channel == "data" => {
                let Some((file, _)) = out.as_mut() else { bail!("data before the file header") };
                file.write_all(&m.data).await?;
                hasher.update(&m.data);
                received += m.data.len() as u64;
                bar.set_position(received);
            }
            Event::Request(r) if r.peer == peer => {
                let (Some(h), Some((mut file, path))) = (header.take(), out.take()) else {
                    node.respond_error(&r, "no file announced").await.ok();
                    continue;
                };
                file.flush().await?;
                bar.finish();
                let digest = hex(&hasher.clone().finalize());
                if received != h.size || digest != h.sha256 {
                    node.respond_error(&r, &format!("got {received} bytes with sha256 {digest}")).await.ok();
                    node.close().await;
                    return Err(exit(
                        EXIT_INTEGRITY,
                        format!(
                            "{}: expected {} bytes sha256 {}, got {received} bytes sha256 {digest}",
                            path.display(),
                            h.size,
                            h.sha256
                        ),
                    ));
                }
                node.respond(&r, Bytes::new()).await.ok();
                println!("received {} ({received} bytes), sha256 {digest} verified", path.display());
                node.request(peer, "control", Bytes::new(), Duration::from_secs(2)).await.ok();
                node.close().await;
                return Ok(());
            }
            Event::PathChanged { peer: p, path } if p == peer => bar.suspend(|| eprintln!("path now {path}")),
            Event::PeerDisconnected { peer: p, reason } if p == peer => {
                return Err(exit(EXIT_PEER, format!("sender gone before the end: {reason}")));
            }
            _ => {}
        }
    }
}

/// Keeps only the last path component, so a sender cannot write elsewhere.
fn safe_name(name: &str) -> String {
    let base = Path::new(name).file_name().and_then(|n| n.to_str()).unwrap_or("");
    if base.is_empty() || base == "." || base == ".." { "received.bin".to_owned() } else { base.to_owned() }
}

async fn hash_file(path: &Path) -> anyhow::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn progress(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}
