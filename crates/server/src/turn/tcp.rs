//! TURN over TCP (RFC 5766 §2.1): one listener whose connections carry
//! framed STUN messages and ChannelData, presented to the `turn` crate's
//! server as one packet `Conn` keyed by each connection's remote address.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use webrtc_util::Conn;

use super::auth::{Quota, Verdict};
use super::guard::PeerPolicy;

/// Frames queued towards one client before it counts as not reading.
const WRITE_QUEUE: usize = 256;
/// Frames read from all clients and not yet taken by the TURN server.
const READ_QUEUE: usize = 1024;
/// Most simultaneous TURN TCP connections.
const MAX_CONNECTIONS: usize = 4096;
/// Most simultaneous TURN TCP connections from one IP address.
const MAX_PER_ADDRESS: usize = 64;
/// A new connection must send its first frame within this time.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// A connection that sends nothing for this long is closed: longer than an
/// allocation's lifetime (600 s), which a client refreshes before it ends.
const IDLE: Duration = Duration::from_secs(660);

type Writers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// All TURN TCP connections of one listener as a packet `Conn`.
pub(crate) struct TcpFront {
    local: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    writers: Writers,
    /// Learns the nonces the TURN server sends.
    quota: Arc<Quota>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TcpFront {
    /// Starts accepting on `listener`.
    pub(crate) fn start(listener: TcpListener, quota: Arc<Quota>, policy: PeerPolicy) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(READ_QUEUE);
        let writers: Writers = Arc::default();
        let accept_task = tokio::spawn(accept_loop(listener, tx, writers.clone(), quota.clone(), policy));
        Ok(TcpFront { local, incoming: tokio::sync::Mutex::new(rx), writers, quota, accept_task })
    }
}

impl Drop for TcpFront {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
    quota: Arc<Quota>,
    policy: PeerPolicy,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "TURN TCP accept failed");
                continue;
            }
        };
        let (count, from_peer) = writers
            .lock()
            .map_or((usize::MAX, usize::MAX), |w| (w.len(), w.keys().filter(|a| a.ip() == peer.ip()).count()));
        if count >= MAX_CONNECTIONS || from_peer >= MAX_PER_ADDRESS {
            tracing::debug!(%peer, count, from_peer, "too many TURN TCP connections; refused");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (wtx, wrx) = mpsc::channel(WRITE_QUEUE);
        if let Ok(mut w) = writers.lock() {
            w.insert(peer, wtx);
        }
        let writer = tokio::spawn(write_loop(write, wrx));
        let (tx, writers, quota) = (tx.clone(), writers.clone(), quota.clone());
        tokio::spawn(async move {
            if let Err(e) = read_loop(read, peer, &tx, &writers, &quota, policy).await {
                tracing::debug!(%peer, error = %e, "TURN TCP connection ended");
            }
            if let Ok(mut w) = writers.lock() {
                w.remove(&peer);
            }
            writer.abort();
        });
    }
}

/// Reads frames until the stream ends or breaks the framing.
async fn read_loop(
    mut read: impl AsyncRead + Unpin,
    peer: SocketAddr,
    tx: &mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: &Writers,
    quota: &Quota,
    policy: PeerPolicy,
) -> std::io::Result<()> {
    let mut head = [0u8; 4];
    let mut wait = FIRST_FRAME;
    loop {
        match tokio::time::timeout(wait, read.read_exact(&mut head)).await {
            Ok(read) => read?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TURN TCP connection idle")),
        };
        wait = IDLE;
        let (len, padded) = frame_len(head)?;
        let mut frame = vec![0u8; 4 + padded];
        frame[..4].copy_from_slice(&head);
        // The rest of a frame follows its head at once, not a byte at a time.
        match tokio::time::timeout(FIRST_FRAME, read.read_exact(&mut frame[4..])).await {
            Ok(read) => read?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TURN TCP frame trickled")),
        };
        frame.truncate(4 + len);
        let refusal = match policy.refuse(&frame) {
            Some(reply) => Verdict::Answer(reply),
            None => quota.check(&frame, peer).await,
        };
        if let Verdict::Answer(reply) = refusal {
            let w = writers.lock().ok().and_then(|w| w.get(&peer).cloned());
            if let Some(w) = w {
                let _ = w.try_send(reply);
            }
            continue;
        }
        if tx.send((frame, peer)).await.is_err() {
            return Ok(());
        }
    }
}

/// Length after the 4-byte head of a frame, and the same padded as sent.
fn frame_len(head: [u8; 4]) -> std::io::Result<(usize, usize)> {
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    match head[0] >> 6 {
        // STUN: 20-byte header, length counts the attributes (a multiple of 4).
        0 => Ok((16 + len, 16 + len)),
        // ChannelData: padded to 4 bytes over TCP.
        1 => Ok((len, len.next_multiple_of(4))),
        _ => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "neither STUN nor ChannelData")),
    }
}

async fn write_loop(mut write: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(frame) = rx.recv().await {
        if write.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

#[async_trait]
impl Conn for TcpFront {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("a listener does not connect".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut rx = self.incoming.lock().await;
        loop {
            let Some((frame, from)) = rx.recv().await else {
                return Err(webrtc_util::Error::Other("TURN TCP listener closed".into()));
            };
            if frame.len() > buf.len() {
                tracing::debug!(%from, len = frame.len(), "TURN TCP frame too large; dropped");
                continue;
            }
            buf[..frame.len()].copy_from_slice(&frame);
            return Ok((frame.len(), from));
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("a listener sends with send_to".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        self.quota.learn(buf);
        let writer = self.writers.lock().ok().and_then(|w| w.get(&target).cloned());
        let Some(writer) = writer else {
            // The client's connection closed; its allocation lingers until it
            // expires (the `turn` crate cannot delete one allocation by its
            // 5-tuple), and what the peer still sends to it is dropped here.
            tracing::trace!(%target, "TURN TCP connection gone; frame dropped");
            return Ok(buf.len());
        };
        let mut frame = buf.to_vec();
        // ChannelData goes padded to a multiple of four over TCP.
        if buf.first().is_some_and(|b| b >> 6 == 1) {
            frame.resize(buf.len().next_multiple_of(4), 0);
        }
        // A client that stops reading loses frames, not the server's loop.
        if writer.try_send(frame).is_err() {
            tracing::trace!(%target, "TURN TCP client not reading; frame dropped");
        }
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// The `turn` crate closes an allocation's listener conn when the
    /// allocation ends; this one is shared by every TCP client, so it stays
    /// open (it stops when the front is dropped).
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_measured_by_kind() {
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x08]).ok(), Some((24, 24)));
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]).ok(), Some((5, 8)));
        assert!(frame_len([0xC0, 0, 0, 0]).is_err());
    }

    /// Attack: hold TURN TCP sockets that send nothing, or a frame a byte at
    /// a time, until every connection slot is taken.
    #[tokio::test(start_paused = true)]
    async fn silent_and_trickling_connections_are_closed() {
        let (tx, _rx) = mpsc::channel(1);
        let writers = Writers::default();
        let quota = Quota::new(1, 1, "test");
        let policy = PeerPolicy::new(std::net::IpAddr::from([127, 0, 0, 1]), false);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let (_client, server) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let silent = read_loop(server, peer, &tx, &writers, &quota, policy).await;
        assert_eq!(silent.map_err(|e| e.kind()), Err(std::io::ErrorKind::TimedOut));
        assert_eq!(started.elapsed(), FIRST_FRAME, "no first frame in time");
        let (mut client, server) = tokio::io::duplex(64);
        // A STUN head announcing 8 bytes of attributes that never come.
        client.write_all(&[0x00, 0x01, 0x00, 0x08]).await.expect("write");
        let started = tokio::time::Instant::now();
        let trickled = read_loop(server, peer, &tx, &writers, &quota, policy).await;
        assert_eq!(trickled.map_err(|e| e.kind()), Err(std::io::ErrorKind::TimedOut));
        assert_eq!(started.elapsed(), FIRST_FRAME, "the rest of a frame in time");
    }
}
