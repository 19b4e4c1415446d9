//! The load generators' own lean client: it proves a fresh identity like any
//! peer, then writes pre-encoded frames and reads raw text, so that its cost
//! per message stays close to a bare WebSocket's.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use switchboard::Identity;
use switchboard::proto::{ClientMessage, Hello, PROTOCOL_VERSION, PeerId, ServerMessage};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The load generators' WebSocket settings, the same for baselines and the server.
pub(crate) fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

/// A signaling connection that said `hello` and got `welcome`.
pub(crate) struct RawPeer {
    pub(crate) ws: WebSocketStream<TcpStream>,
    pub(crate) id: PeerId,
}

impl RawPeer {
    /// Connects to `url` (`ws://ADDR/ws`), from the address `from` when given.
    pub(crate) async fn connect(url: &str, from: Option<IpAddr>) -> anyhow::Result<Self> {
        let addr: SocketAddr = url
            .strip_prefix("ws://")
            .and_then(|r| r.strip_suffix("/ws"))
            .context("server URL is not ws://ADDR/ws")?
            .parse()?;
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(from) = from {
            socket.bind(SocketAddr::new(from, 0))?;
        }
        let tcp = socket.connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(client_config())).await?;
        let identity = Identity::generate();
        let mut peer = Self { ws, id: identity.peer_id() };
        let ServerMessage::Challenge { nonce, .. } = peer.recv().await? else { bail!("no challenge") };
        let server = switchboard::proto::server_name(url).context("server URL has no host")?;
        let hello = Hello {
            id: None,
            v: PROTOCOL_VERSION,
            public_key: identity.public_key_b64(),
            signature: identity.sign_challenge(&nonce, &server),
            server,
            resume_token: None,
            auth_token: None,
        };
        peer.send(&ClientMessage::Hello(hello)).await?;
        let ServerMessage::Welcome(_) = peer.recv().await? else { bail!("no welcome") };
        Ok(peer)
    }

    /// Sends one message.
    pub(crate) async fn send(&mut self, msg: &ClientMessage) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::Text(msg.encode().into())).await?)
    }

    /// The next message from the server; a close or an error ends the peer.
    pub(crate) async fn recv(&mut self) -> anyhow::Result<ServerMessage> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(ServerMessage::decode(text.as_str())?),
                Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("connection failed: {e}"),
                None => bail!("connection ended"),
            }
        }
    }

    /// Sends a request and waits for its answer (events in between are skipped).
    pub(crate) async fn ask(&mut self, msg: &ClientMessage) -> anyhow::Result<ServerMessage> {
        self.send(msg).await?;
        loop {
            let answer = self.recv().await?;
            if answer.answers().is_some() || matches!(answer, ServerMessage::Error { re: Some(_), .. }) {
                return Ok(answer);
            }
        }
    }
}
