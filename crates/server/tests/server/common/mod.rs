//! Helpers for the server's integration tests: a real server on port 0 and real clients.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use switchboard::proto::{RoomCode, ServerMessage, Welcome};
use switchboard::{ConnectOptions, Identity, Incoming, SignalingClient};
use switchboard_server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(mut config: ServerConfig) -> Self {
        config.bind = "127.0.0.1:0".parse().expect("addr");
        let server = Server::builder().config(config).bind().await.expect("server binds");
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        Self { addr, url: format!("ws://{addr}/ws"), stop: Some(stop), task: Some(task) }
    }

    pub async fn default() -> Self {
        Self::start(ServerConfig::default()).await
    }

    /// Stops the server gracefully and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task).await.expect("server stops in time").expect("server task");
        }
    }

    pub async fn client(&self) -> SignalingClient {
        connect(&self.url, &Identity::generate()).await
    }
}

pub async fn connect(url: &str, identity: &Identity) -> SignalingClient {
    SignalingClient::connect(url, identity, ConnectOptions::default()).await.expect("client connects")
}

/// The next message (relay frames and closes are returned too), failing after [`PATIENCE`].
pub async fn next(client: &mut SignalingClient) -> Incoming {
    tokio::time::timeout(PATIENCE, client.next()).await.expect("an event in time").expect("connection alive")
}

/// The next JSON message, failing if something else comes.
pub async fn next_msg(client: &mut SignalingClient) -> ServerMessage {
    match next(client).await {
        Incoming::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Watches `peer` and checks the `ok`; the `presence` answer follows.
pub async fn watch(client: &mut SignalingClient, peer: switchboard::proto::PeerId) {
    let watch = switchboard::proto::Watch { id: None, peers: vec![peer] };
    let answer = client.request(switchboard::proto::ClientMessage::Watch(watch)).await;
    assert!(matches!(answer, Ok(ServerMessage::Ok { .. })), "{answer:?}");
}

/// A ping round trip: proves every frame the server queued before it has been read.
pub async fn sync(client: &mut SignalingClient) -> Vec<Incoming> {
    client.send(&switchboard::proto::ClientMessage::Ping(Default::default())).await.expect("ping");
    let mut before = Vec::new();
    loop {
        match next(client).await {
            Incoming::Message(ServerMessage::Pong { .. }) => return before,
            other => before.push(other),
        }
    }
}

/// A fresh room with `a` (its creator and host) and then `b` joined; `a` has
/// seen `b` join, so both start with nothing pending.
pub async fn room_of_two(a: &mut SignalingClient, b: &mut SignalingClient) -> RoomCode {
    let room = a.create_room(None, None).await.expect("room");
    a.join(room, None, None).await.expect("join");
    b.join(room, None, None).await.expect("join");
    sync(a).await;
    room
}

pub fn welcome(client: &SignalingClient) -> &Welcome {
    client.welcome()
}

/// A plain HTTP/1.0 GET; returns the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response)).await.expect("answer in time").expect("read");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A client connected from the loopback address `from` (say 127.0.0.2), so
/// that per-address limits count it apart from [`TestServer::client`]s. It
/// speaks the protocol itself: the challenge, a signed `hello`, `welcome`.
pub struct RawClient {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl RawClient {
    pub async fn connect(server: &TestServer, from: std::net::IpAddr) -> Self {
        use switchboard::proto::{ClientMessage, Hello, PROTOCOL_VERSION};
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from, 0)).expect("bind the source address");
        let tcp = socket.connect(server.addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(&server.url, tcp).await.expect("upgrade");
        let mut client = Self { ws };
        let ServerMessage::Challenge { nonce, .. } = client.next().await else { panic!("no challenge") };
        let identity = Identity::generate();
        let server_name = switchboard::proto::server_name(&server.url).expect("server name");
        let hello = Hello {
            id: None,
            v: PROTOCOL_VERSION,
            public_key: identity.public_key_b64(),
            signature: identity.sign_challenge(&nonce, &server_name),
            server: server_name,
            resume_token: None,
            auth_token: None,
        };
        client.send(&ClientMessage::Hello(hello)).await;
        let ServerMessage::Welcome(_) = client.next().await else { panic!("no welcome") };
        client
    }

    pub async fn send(&mut self, msg: &switchboard::proto::ClientMessage) {
        use futures_util::SinkExt;
        self.ws.send(tokio_tungstenite::tungstenite::Message::Text(msg.encode().into())).await.expect("send");
    }

    /// The next JSON message, failing after [`PATIENCE`].
    pub async fn next(&mut self) -> ServerMessage {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("a message in time");
            match frame {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    return ServerMessage::decode(text.as_str()).expect("a server message");
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    }
}
