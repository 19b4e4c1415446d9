//! The tokio driver of one link: UDP sockets, timers and commands around a
//! [`LinkCore`].
//!
//! The loop follows str0m's rule: after every input, drain
//! [`LinkCore::poll_output`] until it returns a timeout, then wait for the
//! next datagram, command, wake-up or that timeout.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use switchboard_proto::SignalData;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

use crate::framing::OutMessage;
use crate::ice::gather::{Connect, Gatherer};
use crate::link::{LinkCore, LinkEvent, LinkState, LinkStats, Output};

/// Where a driver reports what its link did.
pub(crate) trait LinkSink: Send + Sync + 'static {
    /// A signal for the other side.
    fn signal(&self, link: u64, signal: SignalData);
    /// A sealed frame for the other side, through the server's relay.
    fn relay(&self, link: u64, frame: Vec<u8>);
    /// Something happened on the link.
    fn event(&self, link: u64, event: LinkEvent);
    /// The network changed under the node: the other side was heard along
    /// a lost path, or the host addresses changed. The node checks that its
    /// signaling connection still answers.
    fn network_back(&self);
    /// The machine's current host candidate addresses.
    fn host_addresses(&self) -> std::io::Result<Vec<std::net::IpAddr>>;
    /// A gatherer with the current ICE servers for sockets at `locals`
    /// (`None` when the node has none).
    fn gatherer(&self, now: Instant, locals: &[SocketAddr]) -> Option<Gatherer>;
}

/// A command for the driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Queue a message on a channel slot.
    Send { slot: usize, msg: OutMessage },
    /// A signal from the other side.
    Signal(SignalData),
    /// Close on purpose.
    Close(Option<String>),
    /// The node has fresh TURN credentials.
    RenewRelay,
    /// A sealed frame the server relayed from the other side.
    Relay(Vec<u8>),
    /// The node's signaling connection is back after a loss.
    SignalingBack,
}

/// State shared between the driver and the handles that send on the link.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Bytes accepted by `send` and not yet handed to str0m.
    pub(crate) queued: AtomicUsize,
    /// Notified when `queued` falls to the low watermark or the link ends.
    pub(crate) drained: Notify,
    /// Message bytes the application has taken.
    pub(crate) consumed: AtomicU64,
    /// Set by the driver while its inbox is over the window.
    pub(crate) inbox_full: AtomicBool,
    /// Wakes the driver (consumption, shutdown).
    pub(crate) wake: Notify,
    /// Whether the link ended.
    pub(crate) ended: AtomicBool,
    /// Latest state, stats and history.
    pub(crate) snapshot: Mutex<Snapshot>,
}

/// What handles can read about a running link.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) state: Option<LinkState>,
    pub(crate) stats: LinkStats,
    pub(crate) history: Vec<(Instant, LinkState)>,
    pub(crate) labels: Vec<String>,
}

/// A running link: send commands, read its shared state.
#[derive(Clone, Debug)]
pub(crate) struct LinkHandle {
    /// Identifies the link in sink callbacks.
    pub(crate) id: u64,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) shared: Arc<Shared>,
}

/// Builds the driver of `core` on `sockets` (whose host candidates the core
/// already has). Register the handle first, then [`Driver::start`] it, so
/// that nothing the link emits finds it unknown.
pub(crate) fn build(
    id: u64,
    core: LinkCore,
    sockets: Vec<UdpSocket>,
    low_watermark: usize,
    sink: Arc<dyn LinkSink>,
    tls: Arc<rustls::ClientConfig>,
) -> (LinkHandle, Driver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let handle = LinkHandle { id, commands: tx, shared: shared.clone() };
    let locals =
        sockets.iter().map(|s| s.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))).collect();
    let (stream_tx, stream_rx) = mpsc::channel(64);
    let driver = Driver {
        id,
        core,
        sockets,
        locals,
        rx,
        shared,
        sink,
        low_watermark,
        accepted: 0,
        released: 0,
        streams: HashMap::new(),
        stream_tx,
        stream_rx,
        stream_tasks: HashMap::new(),
        tls,
    };
    (handle, driver)
}

/// The task that runs one link.
pub(crate) struct Driver {
    id: u64,
    core: LinkCore,
    sockets: Vec<UdpSocket>,
    /// Local address of each socket, in the same order.
    locals: Vec<SocketAddr>,
    rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    sink: Arc<dyn LinkSink>,
    low_watermark: usize,
    accepted: u64,
    released: u64,
    /// Writers of open TURN TCP streams.
    streams: HashMap<usize, mpsc::Sender<Vec<u8>>>,
    stream_tx: mpsc::Sender<StreamEvent>,
    stream_rx: mpsc::Receiver<StreamEvent>,
    stream_tasks: HashMap<usize, tokio::task::JoinHandle<()>>,
    /// TLS settings for `turns:` streams.
    tls: Arc<rustls::ClientConfig>,
}

/// What a TURN stream task reports.
enum StreamEvent {
    Connected { id: usize, local: SocketAddr, writer: mpsc::Sender<Vec<u8>> },
    Data { id: usize, data: Vec<u8> },
    Closed { id: usize },
}

/// Longest wait for a TCP connection to a TURN server.
const STREAM_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Writes queued towards one TURN stream before new ones are dropped.
const STREAM_QUEUE: usize = 256;

/// Datagrams handled between two drains.
const DRAIN_EVERY: usize = 16;

enum Wake {
    Datagram(usize, usize, SocketAddr),
    Command(Option<Command>),
    Stream(Option<StreamEvent>),
    Timeout,
    Woken,
}

impl Driver {
    /// Runs the link on the current tokio runtime until it ends.
    pub(crate) fn start(self) {
        tokio::spawn(self.run());
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        self.publish();
        loop {
            let timeout = self.drain().await;
            if self.core.state().is_final() {
                break;
            }
            let deadline = tokio::time::Instant::from_std(timeout);
            let wake = tokio::select! {
                biased;
                r = recv_any(&self.sockets, &mut buf) => match r {
                    Ok((i, n, from)) => Wake::Datagram(i, n, from),
                    Err(e) => {
                        tracing::debug!(error = %e, "udp receive failed");
                        Wake::Timeout
                    }
                },
                c = self.rx.recv() => Wake::Command(c),
                e = self.stream_rx.recv() => Wake::Stream(e),
                _ = self.shared.wake.notified() => Wake::Woken,
                _ = tokio::time::sleep_until(deadline) => Wake::Timeout,
            };
            let now = Instant::now();
            match wake {
                Wake::Datagram(i, n, from) => {
                    self.core.handle_datagram(now, from, self.locals[i], &buf[..n]);
                    // Take what else is waiting, draining every few datagrams:
                    // fewer drains save SCTP work, and DTLS keeps only a short
                    // receive queue (30 records).
                    for k in 1..64 {
                        if k % DRAIN_EVERY == 0 {
                            let _ = self.drain().await;
                        }
                        match try_recv_any(&self.sockets, &mut buf) {
                            Some((i, n, from)) => {
                                self.core.handle_datagram(Instant::now(), from, self.locals[i], &buf[..n]);
                            }
                            None => break,
                        }
                    }
                }
                Wake::Command(None) => self.core.close(now, None),
                Wake::Command(Some(c)) => {
                    self.command(now, c);
                    while let Ok(c) = self.rx.try_recv() {
                        self.command(now, c);
                    }
                }
                Wake::Stream(Some(e)) => self.stream_event(now, e),
                Wake::Stream(None) | Wake::Timeout => self.core.handle_timeout(now),
                Wake::Woken => {}
            }
            self.core.set_consumed(self.shared.consumed.load(Ordering::Acquire));
        }
        for task in self.stream_tasks.values() {
            task.abort();
        }
        self.shared.ended.store(true, Ordering::Release);
        self.shared.drained.notify_waiters();
        self.publish();
    }

    fn stream_event(&mut self, now: Instant, e: StreamEvent) {
        match e {
            StreamEvent::Connected { id, local, writer } => {
                self.streams.insert(id, writer);
                self.core.stream_connected(now, id, local);
            }
            StreamEvent::Data { id, data } => self.core.stream_data(now, id, &data),
            StreamEvent::Closed { id } => {
                self.streams.remove(&id);
                self.core.stream_closed(id);
            }
        }
    }

    /// After a network switch: sockets on addresses that went away close,
    /// new addresses get sockets, and the core gets host candidates and a
    /// gatherer for them. Nothing happens while the addresses stay.
    fn rehost(&mut self) {
        let ips = match self.sink.host_addresses() {
            Ok(ips) => ips,
            Err(e) => return tracing::debug!(error = %e, "cannot list the host addresses"),
        };
        let mut gone = Vec::new();
        let mut k = 0;
        while k < self.locals.len() {
            if ips.contains(&self.locals[k].ip()) {
                k += 1;
            } else {
                gone.push(self.locals.remove(k));
                drop(self.sockets.remove(k));
            }
        }
        let mut added = Vec::new();
        for ip in ips {
            if self.locals.iter().any(|a| a.ip() == ip) {
                continue;
            }
            match crate::native::net::bind_udp(ip).and_then(|s| Ok((s.local_addr()?, s))) {
                Ok((addr, socket)) => {
                    added.push(addr);
                    self.locals.push(addr);
                    self.sockets.push(socket);
                }
                Err(e) => tracing::debug!(%ip, error = %e, "cannot bind a host candidate socket"),
            }
        }
        if gone.is_empty() && added.is_empty() {
            return;
        }
        tracing::info!(?gone, ?added, "host addresses changed");
        // The signaling connection may have gone with an old address.
        self.sink.network_back();
        let now = Instant::now();
        self.core.rehost(now, &added, &gone);
        let gatherer = self.sink.gatherer(now, &self.locals);
        self.core.regather(now, gatherer);
    }

    /// Connects a TURN TCP (or TLS) stream in its own task.
    fn open_stream(&mut self, connect: Connect) {
        let events = self.stream_tx.clone();
        let tls = self.tls.clone();
        let (id, server) = (connect.stream, connect.server);
        let task = tokio::spawn(async move {
            let opened = tokio::time::timeout(STREAM_CONNECT_TIMEOUT, open(connect, tls)).await;
            let (local, mut read, mut write) = match opened {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%server, error = %e, "TURN stream failed to open");
                    let _ = events.send(StreamEvent::Closed { id }).await;
                    return;
                }
                Err(_) => {
                    tracing::debug!(%server, "TURN stream open timed out");
                    let _ = events.send(StreamEvent::Closed { id }).await;
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
            if events.send(StreamEvent::Connected { id, local, writer: wtx }).await.is_err() {
                writer.abort();
                return;
            }
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if events.send(StreamEvent::Data { id, data: buf[..n].to_vec() }).await.is_err() {
                            break;
                        }
                    }
                }
            }
            writer.abort();
            let _ = events.send(StreamEvent::Closed { id }).await;
        });
        self.stream_tasks.insert(id, task);
    }

    fn command(&mut self, now: Instant, c: Command) {
        match c {
            Command::Send { slot, msg } => {
                self.accepted += msg.data.len() as u64;
                self.core.send(slot, msg);
            }
            Command::Signal(s) => {
                if let Err(e) = self.core.handle_signal(now, s) {
                    tracing::debug!(link = self.id, error = %e, "signal refused");
                }
            }
            Command::Close(reason) => self.core.close(now, reason),
            Command::RenewRelay => self.core.renew_relay(now),
            Command::Relay(frame) => self.core.handle_relay(now, &frame),
            Command::SignalingBack => self.core.signaling_back(now),
        }
    }

    /// Drains the core's outputs; returns when it next wants time.
    async fn drain(&mut self) -> Instant {
        let timeout = loop {
            match self.core.poll_output() {
                Output::Transmit { source, destination, contents } => {
                    let i = self.locals.iter().position(|a| *a == source).unwrap_or(0);
                    let socket = self.sockets.get(i);
                    if let Some(socket) = socket {
                        match socket.try_send_to(&contents, destination) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                let _ = socket.send_to(&contents, destination).await;
                            }
                            Err(e) => tracing::trace!(%destination, error = %e, "udp send failed"),
                        }
                    }
                }
                Output::OpenStream(connect) => self.open_stream(connect),
                Output::CloseStream(stream) => {
                    // The writer task sends what it holds, then ends.
                    self.streams.remove(&stream);
                    if let Some(task) = self.stream_tasks.remove(&stream) {
                        task.abort();
                    }
                }
                Output::StreamSend { stream, contents } => {
                    if let Some(w) = self.streams.get(&stream)
                        && w.try_send(contents).is_err()
                    {
                        tracing::trace!(stream, "TURN stream backed up; datagram dropped");
                    }
                }
                Output::Signal(s) => self.sink.signal(self.id, s),
                Output::Relay(frame) => self.sink.relay(self.id, frame),
                Output::PathHeard => self.sink.network_back(),
                Output::CheckHosts => self.rehost(),
                Output::Regather => {
                    let now = Instant::now();
                    let gatherer = self.sink.gatherer(now, &self.locals);
                    self.core.regather(now, gatherer);
                }
                Output::Event(e) => {
                    if matches!(
                        e,
                        LinkEvent::State(_)
                            | LinkEvent::Connected { .. }
                            | LinkEvent::ChannelOpen { .. }
                            | LinkEvent::PathChanged(_)
                            | LinkEvent::Quality(_)
                    ) {
                        self.publish();
                    }
                    self.sink.event(self.id, e);
                }
                Output::Timeout(t) => break t,
            }
        };
        // Release send budget for what left the outbox.
        let released = self.accepted - self.core.queued() as u64;
        if released > self.released {
            let delta = (released - self.released) as usize;
            self.released = released;
            let before = self.shared.queued.fetch_sub(delta, Ordering::AcqRel);
            if before - delta <= self.low_watermark {
                self.shared.drained.notify_waiters();
            }
        }
        self.shared.inbox_full.store(self.core.inbox_full(), Ordering::Release);
        if let Ok(mut snap) = self.shared.snapshot.lock() {
            snap.stats = self.core.stats();
        }
        timeout
    }

    fn publish(&self) {
        if let Ok(mut snap) = self.shared.snapshot.lock() {
            snap.state = Some(self.core.state());
            snap.stats = self.core.stats();
            snap.history = self.core.history();
            snap.labels = self.core.channel_labels().map(str::to_owned).collect();
        }
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

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

async fn recv_any(sockets: &[UdpSocket], buf: &mut [u8]) -> std::io::Result<(usize, usize, SocketAddr)> {
    if sockets.is_empty() {
        return std::future::pending().await;
    }
    poll_fn(|cx| {
        for (i, socket) in sockets.iter().enumerate() {
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

fn try_recv_any(sockets: &[UdpSocket], buf: &mut [u8]) -> Option<(usize, usize, SocketAddr)> {
    sockets.iter().enumerate().find_map(|(i, s)| s.try_recv_from(buf).ok().map(|(n, from)| (i, n, from)))
}
