//! The native node's driver task: waits for what the node cannot compute —
//! datagrams on its links' sockets, WebSocket frames, TURN streams,
//! resolved server names and time — and feeds it to the core under the
//! node's lock. One task per node; application calls need it only to
//! learn of new sockets and earlier timeouts.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use web_time::Instant;

use super::NativeNode;
use crate::ice::gather::Connect;
use crate::link::{LinkState, PathKind};

use super::ws::Ws;
type Connecting = Pin<Box<dyn Future<Output = Result<Ws, String>> + Send>>;

/// Datagrams taken between two drains of the core: fewer drains save SCTP
/// work, and DTLS keeps only a short receive queue (30 records).
const DRAIN_EVERY: usize = 16;
/// Most datagrams taken in one go.
const BATCH: usize = 64;
/// Longest wait for a TCP connection to a TURN server.
const STREAM_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Writes queued towards one TURN stream before new ones are dropped.
const STREAM_QUEUE: usize = 256;

/// What a TURN stream task reports.
enum StreamEvent {
    Connected { link: u64, id: usize, local: SocketAddr, writer: mpsc::Sender<Vec<u8>> },
    Data { link: u64, id: usize, data: Vec<u8> },
    Closed { link: u64, id: usize },
}

enum Wake {
    Datagram(usize, usize, SocketAddr),
    Frame(Option<Result<Message, String>>),
    Connected(Box<Result<Ws, String>>),
    Stream(StreamEvent),
    Resolved(Vec<crate::ice::gather::Server>, bool),
    Timeout,
    Woken,
}

/// Runs the node until it is closed.
pub(super) async fn run(shared: Arc<NativeNode>, tls: Arc<rustls::ClientConfig>) {
    let mut buf = vec![0u8; 2048];
    let mut reader: Option<futures_util::stream::SplitStream<Ws>> = None;
    let mut writer: Option<tokio::task::JoinHandle<()>> = None;
    let mut closing: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut connecting: Option<Connecting> = None;
    let (stream_tx, mut stream_rx) = mpsc::channel::<StreamEvent>(64);
    let (resolved_tx, mut resolved_rx) = mpsc::unbounded_channel();
    let mut polled: Vec<(u64, SocketAddr, Arc<UdpSocket>)> = Vec::new();
    let mut version = u64::MAX;
    let mut woken: Option<Wake> = None;
    loop {
        let deadline = {
            let mut state = shared.lock();
            // What woke the driver, under the same lock as what follows.
            if let Some(wake) = woken.take() {
                let now = Instant::now();
                match wake {
                    Wake::Datagram(i, n, from) => {
                        let mut touched = Vec::new();
                        let (link, local, _) = polled[i];
                        if let Some(rtc) = state.rtc_of(link) {
                            rtc.handle_datagram(now, from, local, &buf[..n]);
                        }
                        touched.push(link);
                        // Take what else is waiting, draining every few datagrams.
                        for k in 1..BATCH {
                            if k % DRAIN_EVERY == 0 {
                                for link in touched.drain(..) {
                                    state.core.drive_link(Instant::now(), link);
                                }
                                state.flush();
                            }
                            let Some((i, n, from)) = try_recv_any(&polled, &mut buf) else { break };
                            let (link, local, _) = polled[i];
                            if let Some(rtc) = state.rtc_of(link) {
                                rtc.handle_datagram(Instant::now(), from, local, &buf[..n]);
                            }
                            if !touched.contains(&link) {
                                touched.push(link);
                            }
                        }
                        for link in touched {
                            state.core.drive_link(Instant::now(), link);
                        }
                    }
                    Wake::Frame(Some(Ok(Message::Text(text)))) => state.core.ws_text(now, text.as_str()),
                    Wake::Frame(Some(Ok(Message::Binary(bytes)))) => state.core.ws_binary(now, &bytes),
                    Wake::Frame(Some(Ok(Message::Close(frame)))) => {
                        let (code, reason) =
                            frame.map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string()));
                        reader = None;
                        state.ws_out = None;
                        state.core.ws_closed(now, code, &reason);
                    }
                    Wake::Frame(Some(Ok(_))) => {}
                    Wake::Frame(Some(Err(e))) => {
                        reader = None;
                        state.ws_out = None;
                        state.core.ws_closed(now, 1006, &e);
                    }
                    Wake::Frame(None) => {
                        reader = None;
                        state.ws_out = None;
                        state.core.ws_closed(now, 1006, "connection dropped");
                    }
                    Wake::Connected(result) => {
                        connecting = None;
                        match *result {
                            Ok(ws) => {
                                let (mut sink, stream) = ws.split();
                                let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
                                writer = Some(tokio::spawn(async move {
                                    while let Some(msg) = rx.recv().await {
                                        if sink.send(msg).await.is_err() {
                                            return;
                                        }
                                    }
                                    let _ = sink.close().await;
                                }));
                                reader = Some(stream);
                                state.ws_out = Some(tx);
                                state.core.ws_opened(now);
                            }
                            Err(e) => state.core.ws_closed(now, 1006, &e),
                        }
                    }
                    Wake::Stream(e) => stream_event(&mut state, now, e),
                    Wake::Resolved(servers, renew) => {
                        state.core.platform_mut().servers = servers;
                        if renew {
                            for entry in state.core.links_mut() {
                                let relayed = entry.core.state() == LinkState::Connected
                                    && entry.core.stats().path == Some(PathKind::Relayed);
                                if relayed {
                                    entry.core.rtc_mut().renew_pending();
                                }
                            }
                            state.core.renew_links(now);
                        }
                    }
                    Wake::Timeout => {
                        let due: Vec<u64> = state
                            .core
                            .links_mut()
                            .filter_map(|e| (e.core.rtc_mut().poll_timeout() <= now).then_some(e.id))
                            .collect();
                        for link in due {
                            if let Some(entry) = state.core.link_by_id(link) {
                                entry.core.rtc_mut().handle_timeout(now);
                            }
                            state.core.drive_link(now, link);
                        }
                        state.lingering_timeout(now);
                        state.core.handle_timeout(now);
                    }
                    Wake::Woken => {}
                }
                state.flush();
            }
            if state.disconnect {
                state.disconnect = false;
                state.ws_out = None;
                reader = None;
                connecting = None;
                if let Some(w) = writer.take() {
                    // Dropping the sender above lets the writer send its
                    // close frame and end; it is waited for before the
                    // driver ends, so that the server ends the session at
                    // once instead of holding it for a resume.
                    closing.retain(|h| !h.is_finished());
                    closing.push(w);
                }
            }
            if let Some(url) = state.connect.take() {
                state.ws_out = None;
                reader = None;
                connecting = Some(Box::pin(connect(url, tls.clone())));
            }
            for (servers, renew) in std::mem::take(&mut state.resolve) {
                let own = state.core.config().ice_servers.clone();
                let tx = resolved_tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send((crate::ice::resolve(&own, &servers).await, renew));
                });
            }
            for (link, connect) in std::mem::take(&mut state.open_streams) {
                let id = connect.stream;
                let task = tokio::spawn(stream_task(link, connect, tls.clone(), stream_tx.clone()));
                state.stream_tasks.insert((link, id), task);
            }
            if state.sockets_version != version {
                version = state.sockets_version;
                polled = state
                    .sockets
                    .iter()
                    .flat_map(|(link, s)| s.iter().map(move |(a, sock)| (*link, *a, sock.clone())))
                    .collect();
            }
            if state.core.is_closed() && connecting.is_none() && state.ws_out.is_none() {
                break;
            }
            let next = state.next_at;
            state.driver_at = next;
            next
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        woken = Some(tokio::select! {
            biased;
            r = recv_any(&polled, &mut buf) => match r {
                Ok((i, n, from)) => Wake::Datagram(i, n, from),
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive failed");
                    Wake::Timeout
                }
            },
            frame = next_frame(&mut reader) => Wake::Frame(frame),
            result = async { connecting.as_mut().expect("polled only when set").await }, if connecting.is_some() => {
                Wake::Connected(Box::new(result))
            }
            Some(e) = stream_rx.recv() => Wake::Stream(e),
            Some((servers, renew)) = resolved_rx.recv() => Wake::Resolved(servers, renew),
            () = shared.wake.notified() => Wake::Woken,
            () = sleep => Wake::Timeout,
        });
    }
    closing.extend(writer);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), futures_util::future::join_all(closing)).await;
    for task in shared.lock().stream_tasks.values() {
        task.abort();
    }
    shared.stopped.notify_waiters();
}

/// Opens the WebSocket.
async fn connect(url: String, tls: Arc<rustls::ClientConfig>) -> Result<Ws, String> {
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    super::ws::connect(&url, tls, config).await
}

/// The next frame of the open WebSocket (pending without one).
async fn next_frame(reader: &mut Option<futures_util::stream::SplitStream<Ws>>) -> Option<Result<Message, String>> {
    match reader {
        Some(r) => r.next().await.map(|f| f.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

fn stream_event(state: &mut super::State, now: Instant, e: StreamEvent) {
    let link = match e {
        StreamEvent::Connected { link, id, local, writer } => {
            state.streams.insert((link, id), writer);
            if let Some(rtc) = state.rtc_of(link) {
                rtc.stream_connected(now, id, local);
            }
            link
        }
        StreamEvent::Data { link, id, data } => {
            if let Some(rtc) = state.rtc_of(link) {
                rtc.stream_data(now, id, &data);
            }
            link
        }
        StreamEvent::Closed { link, id } => {
            state.streams.remove(&(link, id));
            if let Some(rtc) = state.rtc_of(link) {
                rtc.stream_closed(id);
            }
            link
        }
    };
    state.core.drive_link(now, link);
}

type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// A TURN TCP (or TLS) stream: connects, then reports what it reads.
async fn stream_task(link: u64, connect: Connect, tls: Arc<rustls::ClientConfig>, events: mpsc::Sender<StreamEvent>) {
    let (id, server) = (connect.stream, connect.server);
    let (local, mut read, mut write) = match tokio::time::timeout(STREAM_CONNECT_TIMEOUT, open(connect, tls)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%server, error = %e, "TURN stream failed to open");
            let _ = events.send(StreamEvent::Closed { link, id }).await;
            return;
        }
        Err(_) => {
            tracing::debug!(%server, "TURN stream open timed out");
            let _ = events.send(StreamEvent::Closed { link, id }).await;
            return;
        }
    };
    let (wtx, mut wrx) = mpsc::channel::<Vec<u8>>(STREAM_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(buf) = wrx.recv().await {
            if write.write_all(&buf).await.is_err() {
                break;
            }
            // TLS holds written bytes until flushed.
            if wrx.is_empty() && write.flush().await.is_err() {
                break;
            }
        }
    });
    if events.send(StreamEvent::Connected { link, id, local, writer: wtx }).await.is_err() {
        writer.abort();
        return;
    }
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if events.send(StreamEvent::Data { link, id, data: buf[..n].to_vec() }).await.is_err() {
                    break;
                }
            }
        }
    }
    writer.abort();
    let _ = events.send(StreamEvent::Closed { link, id }).await;
}

/// Connects to a TURN server over TCP, with TLS for `turns:`.
async fn open(connect: Connect, tls: Arc<rustls::ClientConfig>) -> std::io::Result<(SocketAddr, Reader, Writer)> {
    let tcp = tokio::net::TcpStream::connect(connect.server).await?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr()?;
    let Some(name) = connect.tls_name else {
        let (r, w) = tcp.into_split();
        return Ok((local, Box::new(r), Box::new(w)));
    };
    let name = rustls::pki_types::ServerName::try_from(name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
    let (r, w) = tokio::io::split(stream);
    Ok((local, Box::new(r), Box::new(w)))
}

async fn recv_any(
    sockets: &[(u64, SocketAddr, Arc<UdpSocket>)],
    buf: &mut [u8],
) -> std::io::Result<(usize, usize, SocketAddr)> {
    if sockets.is_empty() {
        return std::future::pending().await;
    }
    poll_fn(|cx| {
        for (i, (_, _, socket)) in sockets.iter().enumerate() {
            let mut rb = ReadBuf::new(buf);
            match socket.poll_recv_from(cx, &mut rb) {
                Poll::Ready(Ok(from)) => return Poll::Ready(Ok((i, rb.filled().len(), from))),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

fn try_recv_any(sockets: &[(u64, SocketAddr, Arc<UdpSocket>)], buf: &mut [u8]) -> Option<(usize, usize, SocketAddr)> {
    sockets.iter().enumerate().find_map(|(i, (_, _, s))| s.try_recv_from(buf).ok().map(|(n, from)| (i, n, from)))
}
