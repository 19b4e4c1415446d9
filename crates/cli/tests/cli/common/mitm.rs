//! A signaling server in the middle: a TCP proxy in front of a real `serve`
//! that passes HTTP (the page, the wasm) through untouched and, on
//! WebSocket connections, swaps the DTLS fingerprint of every session
//! description the server hands a client for the fingerprint of a
//! certificate the attacker holds: what a compromised server does to sit
//! in the middle of every WebRTC link.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const FINGERPRINT: &[u8] = b"a=fingerprint:sha-256 ";
/// A SHA-256 fingerprint's digest: 32 bytes in hex, colon separated.
const DIGEST_LEN: usize = 32 * 3 - 1;

/// The proxy; it stops when dropped.
pub struct Mitm {
    /// Its signaling URL (`ws://127.0.0.1:port/ws`); its pages are under the same host.
    pub url: String,
    swapped: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Mitm {
    /// A proxy in front of the server at `server_url` (`ws://host:port/ws`).
    pub async fn start(server_url: &str) -> Mitm {
        let server: SocketAddr =
            server_url.trim_start_matches("ws://").trim_end_matches("/ws").parse().expect("a ws://address:port/ws URL");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/ws", listener.local_addr().expect("address"));
        let swapped = Arc::new(AtomicUsize::new(0));
        let counter = swapped.clone();
        // The attacker's certificate: any digest of the right form but the real one.
        let theirs: Vec<u8> = (0..32).map(|i| format!("{:02X}", 0xA0 + i)).collect::<Vec<_>>().join(":").into_bytes();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (counter, theirs) = (counter.clone(), theirs.clone());
                tokio::spawn(async move {
                    let _ = relay(client, server, &theirs, &counter).await;
                });
            }
        });
        Mitm { url, swapped, task }
    }

    /// Descriptions whose fingerprint it swapped so far.
    pub fn swapped(&self) -> usize {
        self.swapped.load(Ordering::Relaxed)
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads an HTTP head, through its blank line (64 KiB at most).
async fn read_head(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 << 10 {
            return Err(std::io::Error::other("HTTP head too long"));
        }
        head.push(from.read_u8().await?);
    }
    Ok(head)
}

async fn relay(client: TcpStream, server: SocketAddr, theirs: &[u8], swapped: &AtomicUsize) -> std::io::Result<()> {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = TcpStream::connect(server).await?.into_split();
    let request = read_head(&mut from_client).await?;
    let websocket = String::from_utf8_lossy(&request).to_ascii_lowercase().contains("upgrade: websocket");
    to_server.write_all(&request).await?;
    let upstream = tokio::spawn(async move { tokio::io::copy(&mut from_client, &mut to_server).await });
    if websocket {
        let response = read_head(&mut from_server).await?;
        to_client.write_all(&response).await?;
        loop {
            let mut frame = read_frame(&mut from_server).await?;
            swapped.fetch_add(swap(&mut frame, theirs), Ordering::Relaxed);
            to_client.write_all(&frame).await?;
        }
    } else {
        tokio::io::copy(&mut from_server, &mut to_client).await?;
    }
    upstream.abort();
    Ok(())
}

/// One WebSocket frame from the server (unmasked), header and payload.
async fn read_frame(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut frame = vec![0u8; 2];
    from.read_exact(&mut frame).await?;
    let len = match frame[1] & 0x7F {
        126 => {
            let n = from.read_u16().await?;
            frame.extend_from_slice(&n.to_be_bytes());
            usize::from(n)
        }
        127 => {
            let n = from.read_u64().await?;
            frame.extend_from_slice(&n.to_be_bytes());
            usize::try_from(n).map_err(std::io::Error::other)?
        }
        n => usize::from(n),
    };
    if frame[1] & 0x80 != 0 {
        return Err(std::io::Error::other("a masked frame from the server"));
    }
    let at = frame.len();
    frame.resize(at + len, 0);
    from.read_exact(&mut frame[at..]).await?;
    Ok(frame)
}

/// Swaps the fingerprint digests in a frame's payload for `theirs` (the
/// same length, so the frame's header stays right); how many it swapped.
fn swap(frame: &mut [u8], theirs: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = frame[at..].windows(FINGERPRINT.len()).position(|w| w == FINGERPRINT) {
        let start = at + i + FINGERPRINT.len();
        if start + DIGEST_LEN > frame.len() {
            break;
        }
        frame[start..start + DIGEST_LEN].copy_from_slice(theirs);
        n += 1;
        at = start + DIGEST_LEN;
    }
    n
}
