//! The JSON messages of protocol v1, named by direction:
//! [`ClientMessage`] travels client → server, [`ServerMessage`] server → client.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{ConnId, DecodeError, ErrorCode, Limits, PeerId, RoomCode, ValidationError};

/// A request id chosen by the client; the answer carries it back as `re`.
pub type RequestId = u64;

/// Most bytes a `meta` object may take once serialized.
pub const MAX_META_BYTES: usize = 1024;
/// Longest room password.
pub const MAX_PASSWORD_LEN: usize = 256;
/// Longest auth or resume token.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Most peers in one `watch` request.
pub const MAX_WATCH_PEERS: usize = 256;
/// Most mail ids in one `ack_mail` request.
pub const MAX_ACK_IDS: usize = 256;

/// A message from a client to the server.
///
/// Decoding reads `"type"` first when it is the first key (as every encoder
/// here writes it) and then the variant's fields straight from the frame;
/// otherwise it collects the object and reads it from there.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// Answers the server's `challenge`: proves the identity and opens the session.
    Hello(Hello),
    /// Creates a room; answered by `room_created`. The creator is not joined.
    CreateRoom(CreateRoom),
    /// Joins a room by code; answered by `joined`.
    Join(Join),
    /// Leaves a room; answered by `ok`.
    Leave(Leave),
    /// Relays signaling data to another peer.
    Signal(SignalRequest),
    /// Stores a message for a peer, delivered when it is online; answered by `mail_accepted`.
    Mail(MailRequest),
    /// Acknowledges delivered mail, which the server then deletes; answered by `ok`.
    AckMail(AckMail),
    /// Subscribes to the presence of peers; answered by `ok` and one `presence` event each.
    Watch(Watch),
    /// Ends a presence subscription; answered by `ok`.
    Unwatch(Watch),
    /// Asks for fresh ICE server credentials; answered by `ice_servers`.
    IceServers(Ping),
    /// Keep-alive; answered by `pong`.
    Ping(Ping),
}

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClientVisitor)
    }
}

struct ClientVisitor;

impl<'de> serde::de::Visitor<'de> for ClientVisitor {
    type Value = ClientMessage;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object with a \"type\" field")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ClientMessage, A::Error> {
        use serde::de::Error as _;
        let Some(first) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(A::Error::missing_field("type"));
        };
        if first == "type" {
            let kind = map.next_value::<std::borrow::Cow<'de, str>>()?;
            return client_variant(&kind, serde::de::value::MapAccessDeserializer::new(map));
        }
        // "type" is not first: collect the object, then read it.
        let mut object = serde_json::Map::new();
        let value = map.next_value::<Value>()?;
        object.insert(first.into_owned(), value);
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        let kind = match object.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(A::Error::custom("\"type\" must be a string")),
            None => return Err(A::Error::missing_field("type")),
        };
        client_variant(&kind, Value::Object(object)).map_err(A::Error::custom)
    }
}

/// Reads the fields of the variant named `kind` from `fields`.
fn client_variant<'de, D: serde::Deserializer<'de>>(kind: &str, fields: D) -> Result<ClientMessage, D::Error> {
    Ok(match kind {
        "hello" => ClientMessage::Hello(Deserialize::deserialize(fields)?),
        "create_room" => ClientMessage::CreateRoom(Deserialize::deserialize(fields)?),
        "join" => ClientMessage::Join(Deserialize::deserialize(fields)?),
        "leave" => ClientMessage::Leave(Deserialize::deserialize(fields)?),
        "signal" => ClientMessage::Signal(Deserialize::deserialize(fields)?),
        "mail" => ClientMessage::Mail(Deserialize::deserialize(fields)?),
        "ack_mail" => ClientMessage::AckMail(Deserialize::deserialize(fields)?),
        "watch" => ClientMessage::Watch(Deserialize::deserialize(fields)?),
        "unwatch" => ClientMessage::Unwatch(Deserialize::deserialize(fields)?),
        "ice_servers" => ClientMessage::IceServers(Deserialize::deserialize(fields)?),
        "ping" => ClientMessage::Ping(Deserialize::deserialize(fields)?),
        other => return Err(serde::de::Error::unknown_variant(other, CLIENT_KINDS)),
    })
}

/// Fields of `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// Protocol major version the client speaks (1).
    pub v: u32,
    /// Ed25519 public key, base64url without padding (32 bytes).
    pub public_key: String,
    /// Ed25519 signature over [`crate::hello_payload`] of the challenge nonce
    /// and `server`, base64url without padding (64 bytes).
    pub signature: String,
    /// The server the client dialed, as [`crate::server_name`] gives it
    /// (`host:port`): the server refuses a proof signed for a name that is
    /// not its own.
    #[serde(default)]
    pub server: String,
    /// Token from an earlier `welcome`, to resume that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
    /// Token minted by the deployment's auth service, when the server requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

/// Fields of `create_room`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRoom {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// Password joiners must give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Peer cap for this room (at most the server's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_peers: Option<u32>,
}

/// Fields of `join`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The room's code.
    pub room: RoomCode,
    /// The room's password, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Application data shown to the other members (at most 1 KiB serialized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// When the server has no room with this code (it restarted), make it,
    /// with `password`: how a peer rejoins after losing its session. Needs
    /// the right to create rooms.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recreate: bool,
}

/// Fields of `leave`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leave {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The room to leave.
    pub room: RoomCode,
}

/// Fields of a client's `signal`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalRequest {
    /// Request id: echoed by `ok` (sent only when an id is given) and by errors; `expired` names `to` and `conn` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The recipient.
    pub to: PeerId,
    /// Which negotiation this belongs to.
    pub conn: ConnId,
    /// The payload, relayed byte for byte.
    pub data: SignalPayload,
}

/// Signal data as it travels: a JSON object whose `kind` is one of
/// [`SignalData`]'s. The server checks the `kind` and relays the bytes
/// unchanged, so fields this crate does not know (a browser's
/// `sdpMLineIndex`, say) reach the other peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignalPayload(Box<RawValue>);

impl SignalPayload {
    /// Encodes typed signal data.
    pub fn new(data: &SignalData) -> Self {
        let json = serde_json::to_string(data).unwrap_or_else(|_| String::from("{}"));
        // Serialized JSON is always a valid raw value.
        Self(RawValue::from_string(json).unwrap_or_else(|_| unreachable!()))
    }

    /// Reads the typed signal data.
    pub fn parse(&self) -> Result<SignalData, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text as sent.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// The `kind`, when the payload is an object with a known one.
    pub fn kind(&self) -> Option<&'static str> {
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        let kind = serde_json::from_str::<Kind<'_>>(self.0.get()).ok()?.kind;
        SIGNAL_KINDS.iter().copied().find(|k| *k == kind)
    }
}

impl SignalPayload {
    /// Reads a payload from any deserializer, through a JSON value (used
    /// where serde buffers the message first, as for [`ServerMessage`]).
    fn deserialize_any<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        RawValue::from_string(value.to_string()).map(Self).map_err(serde::de::Error::custom)
    }
}

impl From<SignalData> for SignalPayload {
    fn from(data: SignalData) -> Self {
        Self::new(&data)
    }
}

/// Payloads are equal when they hold the same JSON value (key order aside).
impl PartialEq for SignalPayload {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
            || serde_json::from_str::<Value>(self.0.get()).ok() == serde_json::from_str::<Value>(other.0.get()).ok()
    }
}

/// The `kind`s a signal may have.
pub const SIGNAL_KINDS: &[&str] = &[
    "offer",
    "answer",
    "candidate",
    "end_of_candidates",
    "restart",
    "bye",
    "request",
    "accept",
    "reject",
    "relay_key",
];

/// What a signal carries; `kind` selects the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignalData {
    /// An SDP offer.
    Offer {
        /// The SDP text.
        sdp: String,
        /// The WebRTC session this offer starts: a link that lost its path
        /// starts a new one (fresh DTLS and SCTP); 0 for the first.
        #[serde(default, skip_serializing_if = "is_zero")]
        session: u32,
    },
    /// An SDP answer.
    Answer {
        /// The SDP text.
        sdp: String,
        /// The session of the offer it answers.
        #[serde(default, skip_serializing_if = "is_zero")]
        session: u32,
    },
    /// One trickled ICE candidate.
    Candidate {
        /// The `candidate:` attribute line.
        candidate: String,
        /// Media id the candidate belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mid: Option<String>,
    },
    /// The sender has no more candidates for this negotiation.
    EndOfCandidates,
    /// The sender restarts ICE; an offer with new credentials follows.
    Restart,
    /// The sender closes this connection.
    Bye {
        /// Why, for logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The sender asks to open a link (request/accept topology).
    Request {
        /// Application data for the decision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<Value>,
    },
    /// The recipient of a `request` accepts it.
    Accept,
    /// The recipient of a `request` declines it.
    Reject {
        /// Why, shown to the requester.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The sender's half of the key agreement for relayed data: an
    /// ephemeral X25519 key signed with its identity.
    RelayKey {
        /// The ephemeral X25519 public key, base64url.
        key: String,
        /// The sender's Ed25519 identity key, base64url.
        public_key: String,
        /// Ed25519 signature over the relay-key payload, base64url.
        signature: String,
    },
}

/// Fields of a client's `mail`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MailRequest {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The recipient.
    pub to: PeerId,
    /// Any JSON value, at most the `max_mail_bytes` limit serialized.
    pub body: Value,
}

/// Fields of `ack_mail`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMail {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// Ids from `mail` events.
    pub mail_ids: Vec<u64>,
}

/// Fields of `watch` and `unwatch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// Peers whose presence to follow.
    pub peers: Vec<PeerId>,
}

/// Fields of `ping` and of requests that carry nothing but an id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
}

/// A message from the server to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// First frame on every connection: the nonce `hello` must sign.
    Challenge {
        /// Highest protocol major version the server speaks.
        v: u32,
        /// Random nonce, base64url.
        nonce: String,
    },
    /// The session is open.
    Welcome(Box<Welcome>),
    /// Answer to `create_room`.
    RoomCreated {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
        /// The new room's code.
        room: RoomCode,
    },
    /// Answer to `join`.
    Joined(JoinedRoom),
    /// Another peer joined a room this peer is in.
    PeerJoined {
        /// The room.
        room: RoomCode,
        /// The newcomer.
        peer: PeerInfo,
    },
    /// A peer left a room this peer is in (by `leave`, or its session ended).
    PeerLeft {
        /// The room.
        room: RoomCode,
        /// The peer that left.
        peer_id: PeerId,
    },
    /// The room's host changed (the previous host left).
    HostChanged {
        /// The room.
        room: RoomCode,
        /// The new host.
        host: PeerId,
    },
    /// Signaling data from another peer.
    Signal {
        /// The sender.
        from: PeerId,
        /// Which negotiation this belongs to.
        conn: ConnId,
        /// The payload with every field the sender wrote.
        #[serde(deserialize_with = "SignalPayload::deserialize_any")]
        data: SignalPayload,
    },
    /// A signal could not be delivered within the signal TTL.
    Expired {
        /// The absent recipient.
        to: PeerId,
        /// The signal's `conn`.
        conn: ConnId,
    },
    /// A stored message; acknowledge it with `ack_mail`.
    Mail {
        /// Id to acknowledge.
        mail_id: u64,
        /// The sender.
        from: PeerId,
        /// The body as sent.
        body: Value,
        /// When the server accepted it, Unix milliseconds.
        sent_at: u64,
    },
    /// Answer to `mail`: the message is stored durably.
    MailAccepted {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
        /// The stored message's id.
        mail_id: u64,
    },
    /// A watched peer came online or went offline.
    Presence {
        /// The peer.
        peer_id: PeerId,
        /// Whether it has a live session.
        online: bool,
    },
    /// Answer to `ice_servers`.
    IceServers {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
        /// STUN/TURN servers with fresh credentials.
        ice_servers: Vec<IceServer>,
    },
    /// Success answer to requests that return nothing else.
    Ok {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
    },
    /// Answer to `ping`.
    Pong {
        /// Echo of the request id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
    },
    /// A request failed, or a frame could not be used.
    Error {
        /// Echo of the request id, when the frame had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<RequestId>,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
}

/// Fields of `welcome`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// Echo of the `hello` request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<RequestId>,
    /// Protocol version in use.
    pub v: u32,
    /// The id derived from the proven public key.
    pub peer_id: PeerId,
    /// Token to resume this session after a disconnect.
    pub resume_token: String,
    /// Whether an earlier session was resumed (its rooms are kept).
    pub resumed: bool,
    /// Rooms the session is in (non-empty only when resumed).
    #[serde(default)]
    pub rooms: Vec<JoinedRoom>,
    /// STUN/TURN servers with credentials for this session.
    pub ice_servers: Vec<IceServer>,
    /// The limits this server enforces.
    pub limits: Limits,
}

/// A room as seen by one member: answer to `join`, and part of a resumed `welcome`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinedRoom {
    /// Echo of the request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<RequestId>,
    /// The room.
    pub room: RoomCode,
    /// The other members, oldest first.
    pub peers: Vec<PeerInfo>,
    /// The current host (the oldest member).
    pub host: PeerId,
}

/// A room member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its id.
    pub peer_id: PeerId,
    /// The `meta` it joined with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// One STUN or TURN server, shaped like WebRTC's `RTCIceServer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (`<expiry>:<peer id>` for minted credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// When the credential stops working, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl ClientMessage {
    /// The request id, if the message has one.
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::Hello(m) => m.id,
            Self::CreateRoom(m) => m.id,
            Self::Join(m) => m.id,
            Self::Leave(m) => m.id,
            Self::Signal(m) => m.id,
            Self::Mail(m) => m.id,
            Self::AckMail(m) => m.id,
            Self::Watch(m) | Self::Unwatch(m) => m.id,
            Self::IceServers(m) | Self::Ping(m) => m.id,
        }
    }

    /// The wire name of the message type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::CreateRoom(_) => "create_room",
            Self::Join(_) => "join",
            Self::Leave(_) => "leave",
            Self::Signal(_) => "signal",
            Self::Mail(_) => "mail",
            Self::AckMail(_) => "ack_mail",
            Self::Watch(_) => "watch",
            Self::Unwatch(_) => "unwatch",
            Self::IceServers(_) => "ice_servers",
            Self::Ping(_) => "ping",
        }
    }

    /// Decodes and validates one text frame, enforcing `limits`.
    ///
    /// On error, [`DecodeFailure::re`] holds the frame's request id when it
    /// could be read, so the answer can carry it.
    pub fn decode(text: &str, limits: &Limits) -> Result<Self, DecodeFailure> {
        let max = limits.max_frame_bytes as usize;
        if text.len() > max {
            return Err(DecodeFailure {
                re: None,
                error: DecodeError::TooLarge { what: "frame".into(), size: text.len(), max },
            });
        }
        match serde_json::from_str::<Self>(text) {
            Ok(msg) => match msg.validate(limits) {
                Ok(()) => Ok(msg),
                Err(error) => Err(DecodeFailure { re: msg.request_id(), error }),
            },
            Err(err) => Err(diagnose(text, &err)),
        }
    }

    /// Encodes the message as a JSON text frame.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Checks the rules that serde's types cannot express (sizes, counts).
    pub fn validate(&self, limits: &Limits) -> Result<(), DecodeError> {
        match self {
            Self::Hello(h) => {
                check_len("public_key", &h.public_key, 64)?;
                check_len("signature", &h.signature, 128)?;
                check_len("server", &h.server, 300)?;
                check_opt_len("resume_token", h.resume_token.as_deref(), MAX_TOKEN_LEN)?;
                check_opt_len("auth_token", h.auth_token.as_deref(), MAX_TOKEN_LEN)?;
            }
            Self::CreateRoom(c) => {
                check_opt_len("password", c.password.as_deref(), MAX_PASSWORD_LEN)?;
                if c.max_peers == Some(0) {
                    return Err(ValidationError::new("max_peers must be at least 1").into());
                }
            }
            Self::Join(j) => {
                check_opt_len("password", j.password.as_deref(), MAX_PASSWORD_LEN)?;
                if let Some(meta) = &j.meta {
                    let size = json_size(meta);
                    if size > MAX_META_BYTES {
                        return Err(too_large("meta", size, MAX_META_BYTES));
                    }
                }
            }
            Self::Signal(sig) if sig.data.kind().is_none() => {
                let kinds = SIGNAL_KINDS.join(", ");
                return Err(ValidationError::new(format!("data must be an object with kind one of: {kinds}")).into());
            }
            Self::Mail(m) => {
                let size = json_size(&m.body);
                let max = limits.max_mail_bytes as usize;
                if size > max {
                    return Err(too_large("mail body", size, max));
                }
            }
            Self::AckMail(a) if a.mail_ids.len() > MAX_ACK_IDS => {
                return Err(ValidationError::new(format!("at most {MAX_ACK_IDS} mail ids per ack_mail")).into());
            }
            Self::Watch(w) | Self::Unwatch(w) if w.peers.len() > MAX_WATCH_PEERS => {
                return Err(ValidationError::new(format!("at most {MAX_WATCH_PEERS} peers per watch")).into());
            }
            _ => {}
        }
        Ok(())
    }
}

impl ServerMessage {
    /// Encodes the message as a JSON text frame.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Decodes one text frame from the server.
    pub fn decode(text: &str) -> Result<Self, DecodeFailure> {
        serde_json::from_str(text).map_err(|err| diagnose(text, &err))
    }

    /// Builds an `error` frame.
    pub fn error(re: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error { re, code, message: message.into() }
    }
}

/// A frame that could not be decoded, with the request id when one was readable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DecodeFailure {
    /// The frame's `id`, when it could be read.
    pub re: Option<RequestId>,
    /// What went wrong.
    pub error: DecodeError,
}

fn encode_json<T: Serialize>(value: &T) -> String {
    // Serializing these types cannot fail: every map key is a string and no
    // Serialize impl returns an error.
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}

/// Finds out why `text` failed to parse, for a precise error answer.
fn diagnose(text: &str, err: &serde_json::Error) -> DecodeFailure {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return DecodeFailure { re: None, error: DecodeError::Malformed(e.to_string()) },
    };
    let Some(obj) = value.as_object() else {
        return DecodeFailure { re: None, error: DecodeError::Malformed("not a JSON object".into()) };
    };
    let re = obj.get("id").and_then(Value::as_u64);
    let error = match obj.get("type").and_then(Value::as_str) {
        None => DecodeError::Malformed("missing string field \"type\"".into()),
        Some(kind) if err.to_string().starts_with("unknown variant") && !is_known_kind(kind) => {
            DecodeError::UnknownType(truncate(kind, 64))
        }
        Some(kind) => DecodeError::InvalidFields { kind: truncate(kind, 64), reason: err.to_string() },
    };
    DecodeFailure { re, error }
}

const CLIENT_KINDS: &[&str] =
    &["hello", "create_room", "join", "leave", "signal", "mail", "ack_mail", "watch", "unwatch", "ice_servers", "ping"];
const SERVER_KINDS: &[&str] = &[
    "challenge",
    "welcome",
    "room_created",
    "joined",
    "peer_joined",
    "peer_left",
    "host_changed",
    "signal",
    "expired",
    "mail",
    "mail_accepted",
    "presence",
    "ice_servers",
    "ok",
    "pong",
    "error",
];

fn is_known_kind(kind: &str) -> bool {
    CLIENT_KINDS.contains(&kind) || SERVER_KINDS.contains(&kind)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn json_size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

fn too_large(field: &str, size: usize, max: usize) -> DecodeError {
    DecodeError::TooLarge { what: field.into(), size, max }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), DecodeError> {
    if value.len() > max {
        return Err(ValidationError::new(format!("{field} is longer than {max} bytes")).into());
    }
    Ok(())
}

fn check_opt_len(field: &str, value: Option<&str>, max: usize) -> Result<(), DecodeError> {
    value.map_or(Ok(()), |v| check_len(field, v, max))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ClientMessage {
    /// Sets the request id (`id`) of a message that takes one.
    pub fn set_id(&mut self, id: u64) {
        match self {
            ClientMessage::Hello(m) => m.id = Some(id),
            ClientMessage::CreateRoom(m) => m.id = Some(id),
            ClientMessage::Join(m) => m.id = Some(id),
            ClientMessage::Leave(m) => m.id = Some(id),
            ClientMessage::Signal(m) => m.id = Some(id),
            ClientMessage::Mail(m) => m.id = Some(id),
            ClientMessage::AckMail(m) => m.id = Some(id),
            ClientMessage::Watch(m) | ClientMessage::Unwatch(m) => m.id = Some(id),
            ClientMessage::IceServers(m) | ClientMessage::Ping(m) => m.id = Some(id),
        }
    }
}

impl ServerMessage {
    /// The request id this message answers (`re`), if it is an answer.
    pub fn answers(&self) -> Option<u64> {
        match self {
            ServerMessage::RoomCreated { re, .. }
            | ServerMessage::MailAccepted { re, .. }
            | ServerMessage::IceServers { re, .. }
            | ServerMessage::Ok { re }
            | ServerMessage::Pong { re } => *re,
            ServerMessage::Joined(j) => j.re,
            ServerMessage::Welcome(w) => w.re,
            _ => None,
        }
    }
}
