//! A client for the signaling server: connect, prove the identity, and
//! exchange protocol messages.

use std::collections::VecDeque;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_proto::{
    ClientMessage, ConnId, CreateRoom, Hello, Join, JoinedRoom, PROTOCOL_VERSION, PeerId, RelayFrame, RoomCode,
    ServerMessage, SignalData, SignalRequest, Welcome,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{ConnectError, Identity, Incoming, RequestError};

/// Options of [`SignalingClient::connect`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Resume the session this token came from.
    pub resume_token: Option<String>,
    /// Auth token, for servers that require one.
    pub auth_token: Option<String>,
    /// Root certificates (DER) trusted for `wss://` besides the web's.
    pub root_certificates: Vec<Vec<u8>>,
}

impl ConnectOptions {
    /// Resumes the session `token` came from.
    pub fn resume(mut self, token: impl Into<String>) -> Self {
        self.resume_token = Some(token.into());
        self
    }

    /// Presents an auth token.
    pub fn auth(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Trusts `der` as a root certificate for `wss://` (a private CA).
    pub fn root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(der.into());
        self
    }
}

/// A live, authenticated connection to a signaling server.
pub struct SignalingClient {
    ws: crate::native::ws::Ws,
    welcome: Welcome,
    next_id: u64,
    backlog: VecDeque<Incoming>,
    /// From opening the TCP connection to `welcome`: about three round trips.
    handshake: std::time::Duration,
}

impl std::fmt::Debug for SignalingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalingClient").field("peer_id", &self.welcome.peer_id).finish_non_exhaustive()
    }
}

fn transport(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl SignalingClient {
    /// Connects to `url` (`ws://host:port/ws`), answers the challenge and waits for `welcome`.
    pub async fn connect(url: &str, identity: &Identity, options: ConnectOptions) -> Result<Self, ConnectError> {
        let started = std::time::Instant::now();
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let tls = crate::ice::tls::client_config(&options.root_certificates)
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        let ws = crate::native::ws::connect(url, tls, config).await.map_err(ConnectError::Transport)?;
        let mut client = Self {
            ws,
            welcome: placeholder_welcome(identity.peer_id()),
            next_id: 1,
            backlog: VecDeque::new(),
            handshake: std::time::Duration::ZERO,
        };
        let nonce = match client.read().await.map_err(ConnectError::Transport)? {
            Incoming::Message(ServerMessage::Challenge { nonce, .. }) => nonce,
            other => return Err(ConnectError::Protocol(format!("expected challenge, got {other:?}"))),
        };
        let server = switchboard_proto::server_name(url).unwrap_or_default();
        let hello = ClientMessage::Hello(Hello {
            id: None,
            v: PROTOCOL_VERSION,
            public_key: identity.public_key_b64(),
            signature: identity.sign_challenge(&nonce, &server),
            server,
            resume_token: options.resume_token,
            auth_token: options.auth_token,
        });
        client.send(&hello).await.map_err(|e| ConnectError::Transport(e.to_string()))?;
        match client.read().await.map_err(ConnectError::Transport)? {
            Incoming::Message(ServerMessage::Welcome(welcome)) => {
                client.welcome = *welcome;
                client.handshake = started.elapsed();
                Ok(client)
            }
            Incoming::Message(ServerMessage::Error { code, message, .. }) => {
                Err(ConnectError::Refused { code, message })
            }
            other => Err(ConnectError::Protocol(format!("expected welcome, got {other:?}"))),
        }
    }

    /// How long connecting took, from opening the TCP connection to
    /// `welcome` (TCP, WebSocket upgrade, challenge and hello: about three
    /// round trips to the server).
    pub fn handshake_time(&self) -> std::time::Duration {
        self.handshake
    }

    /// The server's `welcome`.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// This peer's id, as the server proved it.
    pub fn peer_id(&self) -> PeerId {
        self.welcome.peer_id
    }

    /// Sends a message as is.
    pub async fn send(&mut self, msg: &ClientMessage) -> Result<(), RequestError> {
        self.send_text(msg.encode()).await
    }

    /// Sends a raw text frame (for tools that test servers with bad input).
    pub async fn send_text(&mut self, text: String) -> Result<(), RequestError> {
        self.ws.send(Message::Text(text.into())).await.map_err(|e| RequestError::Transport(transport(e)))
    }

    /// Sends relay data to a peer in a shared room.
    pub async fn send_relay(&mut self, to: PeerId, channel: u16, payload: &[u8]) -> Result<(), RequestError> {
        let frame = RelayFrame { peer: to, channel, payload }.encode();
        self.ws.send(Message::Binary(frame.into())).await.map_err(|e| RequestError::Transport(transport(e)))
    }

    /// Sends a raw binary frame.
    pub async fn send_binary(&mut self, frame: Vec<u8>) -> Result<(), RequestError> {
        self.ws.send(Message::Binary(frame.into())).await.map_err(|e| RequestError::Transport(transport(e)))
    }

    /// The next thing the server sent, including events that arrived while
    /// a request waited for its answer.
    pub async fn next(&mut self) -> Result<Incoming, RequestError> {
        if let Some(item) = self.backlog.pop_front() {
            return Ok(item);
        }
        self.read().await.map_err(RequestError::Transport)
    }

    /// Sends a request with a fresh id and waits for the answer carrying it.
    pub async fn request(&mut self, mut msg: ClientMessage) -> Result<ServerMessage, RequestError> {
        let id = self.next_id;
        self.next_id += 1;
        msg.set_id(id);
        self.send(&msg).await?;
        loop {
            match self.read().await.map_err(RequestError::Transport)? {
                Incoming::Message(ServerMessage::Error { re: Some(re), code, message }) if re == id => {
                    return Err(RequestError::Refused { code, message });
                }
                Incoming::Message(answer) if answer.answers() == Some(id) => return Ok(answer),
                Incoming::Closed { code, reason } => {
                    return Err(RequestError::Transport(format!("closed by server ({code}): {reason}")));
                }
                other => self.backlog.push_back(other),
            }
        }
    }

    /// Creates a room and returns its code.
    pub async fn create_room(
        &mut self,
        password: Option<&str>,
        max_peers: Option<u32>,
    ) -> Result<RoomCode, RequestError> {
        let msg = ClientMessage::CreateRoom(CreateRoom { id: None, password: password.map(Into::into), max_peers });
        match self.request(msg).await? {
            ServerMessage::RoomCreated { room, .. } => Ok(room),
            other => Err(RequestError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Joins a room.
    pub async fn join(
        &mut self,
        room: RoomCode,
        password: Option<&str>,
        meta: Option<Value>,
    ) -> Result<JoinedRoom, RequestError> {
        self.send_join(Join { id: None, room, password: password.map(Into::into), meta, recreate: false }).await
    }

    /// Joins a room again after the session was lost, making it anew (same
    /// code, same password) if the server no longer has it.
    pub async fn rejoin(
        &mut self,
        room: RoomCode,
        password: Option<&str>,
        meta: Option<Value>,
    ) -> Result<JoinedRoom, RequestError> {
        self.send_join(Join { id: None, room, password: password.map(Into::into), meta, recreate: true }).await
    }

    async fn send_join(&mut self, join: Join) -> Result<JoinedRoom, RequestError> {
        match self.request(ClientMessage::Join(join)).await? {
            ServerMessage::Joined(joined) => Ok(joined),
            other => Err(RequestError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends a signal to a peer (no answer unless it fails).
    pub async fn signal(&mut self, to: PeerId, conn: &ConnId, data: SignalData) -> Result<(), RequestError> {
        let msg = ClientMessage::Signal(SignalRequest { id: None, to, conn: conn.clone(), data: data.into() });
        self.send(&msg).await
    }

    /// Closes the connection cleanly, which ends the session at once.
    pub async fn close(&mut self) -> Result<(), RequestError> {
        self.ws.close(None).await.map_err(|e| RequestError::Transport(transport(e)))
    }

    async fn read(&mut self) -> Result<Incoming, String> {
        loop {
            let Some(frame) = self.ws.next().await else {
                return Ok(Incoming::Closed { code: 1006, reason: "connection dropped".into() });
            };
            match frame {
                Ok(Message::Text(text)) => match ServerMessage::decode(text.as_str()) {
                    Ok(msg) => return Ok(Incoming::Message(msg)),
                    // Newer servers may add message types; this client ignores them.
                    Err(f) if matches!(f.error, switchboard_proto::DecodeError::UnknownType(_)) => {
                        tracing::debug!(error = %f, "ignoring an unknown message type");
                    }
                    Err(f) => return Err(f.to_string()),
                },
                Ok(Message::Binary(bytes)) => {
                    let frame = RelayFrame::decode(&bytes).map_err(|e| e.to_string())?;
                    return Ok(Incoming::Relay {
                        from: frame.peer,
                        channel: frame.channel,
                        payload: frame.payload.to_vec(),
                    });
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string()));
                    return Ok(Incoming::Closed { code, reason });
                }
                Ok(_) => {}
                Err(e) => return Ok(Incoming::Closed { code: 1006, reason: e.to_string() }),
            }
        }
    }
}

fn placeholder_welcome(peer_id: PeerId) -> Welcome {
    Welcome {
        re: None,
        v: PROTOCOL_VERSION,
        peer_id,
        resume_token: String::new(),
        resumed: false,
        rooms: Vec::new(),
        ice_servers: Vec::new(),
        limits: Default::default(),
    }
}
