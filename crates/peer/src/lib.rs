//! Switchboard: direct, encrypted peer-to-peer data channels over WebRTC.
//!
//! A [`Node`] is one peer. It proves its [`Identity`] to a Switchboard
//! signaling server, joins rooms by code, and keeps one WebRTC link to every
//! other peer of its rooms. Messages travel directly between the peers,
//! encrypted; the server only introduces them. The same `Node`, with the
//! same methods, events, errors and behaviour, runs in native programs
//! (str0m: ICE, DTLS and SCTP over this process's UDP sockets, on tokio)
//! and in browsers (wasm32, over the browser's own `RTCPeerConnection`).
//!
//! ```no_run
//! use switchboard::{ChannelConfig, Event, Node};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::builder()
//!     .signaling("ws://127.0.0.1:7600/ws")
//!     .channel(ChannelConfig::reliable("control"))
//!     .channel(ChannelConfig::unreliable("state"))
//!     .start()
//!     .await?;
//! let room = node.create_room(None, None).await?;
//! node.join(room).await?;
//! println!("share this code: {room}");
//! while let Some(event) = node.next_event().await {
//!     match event {
//!         Event::PeerConnected { peer, path, rtt } => {
//!             println!("{peer} connected over a {path} path, rtt {rtt:?}");
//!             node.send(peer, "control", &b"hi"[..]).await?;
//!         }
//!         Event::Message(m) => println!("{} on {}: {:?}", m.peer, m.channel, m.data),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Concepts
//!
//! - **Channels** are declared on the node and open on every link, with fixed
//!   SCTP stream ids (pre-negotiated: no extra round trip). [`ChannelConfig`]
//!   sets ordering, `max_retransmits`, `max_packet_lifetime` and compression.
//!   Without any declaration a node has `reliable` and `unreliable`.
//! - **Links**: one per remote peer, however many rooms the two share. The
//!   peer with the lower id writes the offer, so peers that join at the same
//!   moment never glare. Every link moves through [`LinkState`]s (`new →
//!   signaling → connecting → connected → reconnecting → closed | failed`),
//!   each change reported as [`Event::LinkState`]; [`Node::link_history`]
//!   keeps them with their times and [`Node::stats`] gives bytes, messages,
//!   round trip, path kind and the selected candidate pair.
//! - **Identity on the link**: every offer and answer carries a signature by
//!   the node's [`Identity`] over its DTLS certificate's fingerprint; a link
//!   through the server connects only when the other side's descriptions
//!   prove the peer id the server named, so a signaling server (or anyone
//!   who carries the descriptions) cannot sit in the middle: such a link
//!   ends as [`DisconnectReason::Unverified`] and never reaches
//!   [`Event::PeerConnected`]. Links by hand get the same check with
//!   [`Node::create_offer_for`] / [`Node::accept_offer_from`].
//! - **Device services**: [`Node::watch`] follows peers' presence
//!   ([`Event::Presence`]; mutual, so strangers cannot follow a peer);
//!   [`Node::mail`] stores a JSON message on the server for a peer, online
//!   or not, delivered as [`Event::Mail`] (once per id, until
//!   [`Node::ack_mail`]), kept across server restarts when the server has
//!   a mailbox file; [`Event::HostChanged`] says when a room's host left.
//! - **Trusted devices**: [`Node::set_trust`] marks a peer [`Trust::Trusted`]
//!   (watched, linked with as soon as both are online — no room needed —
//!   and again after a failed link with backoff; its link requests are
//!   accepted without the application) or [`Trust::Blocked`] (never
//!   linked). Nothing is trusted silently. [`NodeBuilder::trust_store`]
//!   keeps the book: a JSON file natively, IndexedDB in the browser. A link
//!   request from a peer outside the node's rooms that it has no word on
//!   reaches the application as [`Event::LinkRequested`] (64 may wait; more
//!   are declined).
//! - **Topology**: a full mesh by default; with [`Topology::OnRequest`] a link
//!   opens only after [`Node::request_link`] is accepted
//!   ([`Node::accept`] / [`Node::reject`] with a reason), and
//!   [`NodeBuilder::max_links`] caps the links of a node.
//! - **Messages** of any size up to [`NodeBuilder::max_message_size`]
//!   (64 MiB by default) are cut into chunks below the data-channel message
//!   size and reassembled; channels take turns, so a large transfer never
//!   starves a small control message. On unreliable channels a message whose
//!   chunk was lost is dropped whole, with bounded reassembly memory.
//!   [`Node::send_json`] / [`Message::json`] and the MessagePack pair encode
//!   typed values; [`Node::request`] waits for [`Node::respond`] with a timeout.
//! - **Backpressure**: each link buffers at most its high watermark (16 MiB by
//!   default). [`Node::send`] waits above it until the buffer drains to the low
//!   watermark (1 MiB); [`Node::try_send`] returns [`SendError::Full`];
//!   [`Node::buffered_amount`] reports. The receiving node grants credit as its
//!   application reads, so a peer that stops reading stops the sender, and
//!   memory stays bounded on both sides. A hostile peer cannot change that:
//!   data beyond its credit, partial messages over the reassembly budget or
//!   more than 1,000 channels end the link with
//!   [`DisconnectReason::Protocol`], compressed messages wait compressed
//!   until the application reads them, and in raw mode (no credit) a link
//!   whose unread messages pass two windows ends with
//!   [`DisconnectReason::Overrun`] (docs/protocol.md, section 19.4).
//! - **Rooms**: a message can say which room it belongs to
//!   ([`Node::send_in_room`], [`Node::broadcast`] with an excluded peer).
//! - **NAT traversal**: links gather host candidates, server-reflexive ones by
//!   STUN and relayed ones by TURN (UDP, TCP or TLS) from the servers the
//!   signaling server hands out in `welcome` (with credentials minted for
//!   this peer and renewed before they expire) and from
//!   [`NodeBuilder::ice_servers`]. Under [`IcePolicy::All`] relayed
//!   candidates join only when direct checks have not succeeded within
//!   [`NodeBuilder::relay_delay`]; [`IcePolicy::Relay`] uses only the relay.
//!   [`Event::PeerConnected`] names the path and [`Event::PathChanged`]
//!   reports a move. [`nat::detect_nat`] classifies the NAT in front of this
//!   host (RFC 5780).
//!
//! # Bring your own signaling
//!
//! Without a server, a node makes links from session descriptions that the
//! application carries itself. The SDP is standard (`a=sctp-port`,
//! `a=max-message-size`, ICE candidates), so the other side can be any WebRTC
//! stack; in [`NodeBuilder::raw_messages`] mode one message is one
//! data-channel message and channels the other side opens in-band (DCEP)
//! appear as [`Event::ChannelOpened`].
//!
//! What raw mode does for other stacks, tested against str0m
//! (`examples/byo-signaling`), against a plain Chromium page on its own
//! `RTCPeerConnection` and against aiortc (each side offering, with and
//! without trickle, directly and relay-only) and between Switchboard nodes
//! on both backends:
//! - text and binary: [`Node::send_text`] sends a string (PPID 51), which a
//!   browser's `onmessage` gets as a string; [`Message::is_text`] and
//!   [`Message::text`] say how a message came;
//! - channels either side opens on the live link, the answering side too
//!   ([`Node::open_channel`], as `createDataChannel`), and closes alone
//!   ([`Node::close_channel`], as `RTCDataChannel.close`); one that does
//!   not open within the connect timeout closes; a send on a closed channel
//!   is [`SendError::ChannelClosed`];
//! - every channel's opening ([`Event::ChannelOpened`], the node's own
//!   included; [`Event::PeerConnected`] waits for every declared channel,
//!   an in-band one being the offering side's, which the answering side
//!   takes by its label, so one that cannot open ends the link at
//!   [`NodeBuilder::connect_timeout`] and its sends fail with
//!   [`SendError::Closed`]) and closing ([`Event::ChannelClosed`]), and a
//!   peer connection the other side closes ends the link at once
//!   ([`DisconnectReason::ClosedByPeer`]; every channel closed by the other
//!   side counts as that); closing resets every channel's
//!   stream, as a browser's `close()` does, waits up to 1 s for the other
//!   side to answer and reset its ends, then sends DTLS close_notify
//!   (natively), so that the other side's channels close at once;
//! - the offer asks to be DTLS client (`a=setup:active`), so this side sends
//!   the SCTP INIT whatever the other stack's rule for it; no SNAP
//!   (`a=sctp-init`) is offered, and an answer that copies one back is taken
//!   without it;
//! - [`LinkStats::rtt`] is ICE's round trip;
//! - a message may be as large as the other side's `a=max-message-size`
//!   (64 KiB when it says nothing), up to 256 KiB, which is what this side
//!   advertises; a larger one is [`SendError::TooLarge`].
//!
//! Applications that do not trickle wait for [`Event::GatheringComplete`]
//! on either side: it carries the offer or answer with every candidate
//! (relayed ones under [`IcePolicy::Relay`] too) and `a=end-of-candidates`.
//!
//! Not yet: tests against Firefox's own `RTCPeerConnection` (Firefox is
//! tested as a Switchboard browser node); natively, a channel beyond the
//! streams the other side's association has (Firefox starts with 16 and
//! asks for more, which str0m does not grant) does not open, and closes at
//! the connect timeout.
//!
//! From JavaScript the same is there as the `rawMessages` and `inBand`
//! options and `openChannel` / `closeChannel`.
//!
//! ```no_run
//! # use switchboard::{Event, HostCandidates, Node};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let a = Node::builder().host_candidates(HostCandidates::Loopback).start().await?;
//! let b = Node::builder().host_candidates(HostCandidates::Loopback).start().await?;
//! let (b_on_a, offer) = a.create_offer().await?; // send `offer` over your channel
//! let (a_on_b, answer) = b.accept_offer(&offer).await?; // and `answer` back
//! a.accept_answer(b_on_a, &answer)?;
//! // Later candidates come as Event::LocalCandidate; hand them to
//! // `add_remote_candidate` on the other side.
//! a.send(b_on_a, "reliable", &b"no server involved"[..]).await?;
//! # let _ = a_on_b; Ok(()) }
//! ```
//!
//! `examples/byo-signaling` in the repository connects a node to a plain
//! str0m peer that opens its channel in-band, as a browser would.
//!
//! # Losing and finding a path
//!
//! A link that hears nothing on its path for 3 s (natively; a browser goes
//! by its own consent checks) goes
//! [`LinkState::Reconnecting`] and starts a new WebRTC session through the
//! signaling server (fresh DTLS and SCTP on the same candidates: an SCTP
//! association that was silent for seconds would wait up to a minute before
//! sending again) until a path answers or the give-up time passes
//! ([`NodeBuilder::path_timeouts`]). A node that renews its TURN credentials
//! moves its relayed links to new allocations by ICE restart;
//! [`LinkStats::ice_restarts`] counts both. Links made with the
//! bring-your-own-signaling calls do not restart.
//!
//! While a link has no path, both sides send a small beacon every 100 ms
//! along the last pair that worked. The first beacon heard after the
//! network returns brings the next attempt forward. It also makes the node
//! replace its signaling connection if that connection does not answer a
//! ping within 300 ms: after an outage, TCP may keep it silent for seconds.
//! The link carries data again within about 0.4 s of the network's return
//! (BENCHMARKS.md). Before each attempt the link checks the machine's
//! addresses: after a network switch it binds the new ones and offers them.
//!
//! When a link has no WebRTC path for 5 s — none opens, UDP is blocked, the
//! path was lost — the signaling server relays its data
//! ([`PathKind::Server`], [`NodeBuilder::server_relay`]; a zero deadline
//! gives the relay a head start) while WebRTC keeps trying, and the data
//! moves back once a WebRTC path opens ([`Event::PathChanged`]). Relayed
//! frames are end-to-end encrypted (ChaCha20-Poly1305) with keys agreed by
//! X25519 and signed by both identities, so the server sees only
//! ciphertext. Reliable channels number and acknowledge their chunks and
//! send again what was not acknowledged whenever the carrier changes:
//! nothing is lost, repeated or reordered across a switch.
//!
//! A node that loses the signaling server keeps its links, reports
//! [`Event::SignalingLost`], and connects again after a random wait that
//! grows from up to 1 s to up to 30 s ([`NodeBuilder::reconnect_attempts`]);
//! [`Event::SignalingRestored`] says whether the server resumed its session
//! (same rooms, nobody saw it leave) or the node joined its rooms again.
//!
//! Framed links probe four times a second on an unreliable internal channel;
//! [`Event::QualityChanged`] reports the [`Quality`] level their round trip
//! and loss give, and [`LinkStats`] carries both.
//!
//! # Errors and limits
//!
//! Each kind of call has its own error enum: [`StartError`], [`RoomError`],
//! [`SendError`], [`RequestFailed`], [`SignalError`]. A link that breaks the
//! framing rules or cannot connect within [`NodeBuilder::connect_timeout`]
//! ends with a [`DisconnectReason`] in [`Event::PeerDisconnected`].
//! Host candidates come from the local interfaces ([`HostCandidates`]); no
//! ICE server outside this machine is ever contacted unless the signaling
//! server hands one out.
//!
//! # Architecture
//!
//! Everything a node decides lives once, in two sans-IO cores that never
//! read a clock or touch a socket, tested on a virtual clock:
//!
//! - the **node core** (`node/core.rs`): rooms, who offers, the request
//!   topology, requests and the peer allowed to answer them, credit per
//!   link, events; and the signaling session (`node/core/server.rs`):
//!   handshake, requests, reconnection, resume or rejoin, credential refresh;
//! - the **link core** (`link/core.rs`): one link's carriers (WebRTC
//!   sessions and the server relay), new sessions and their pacing, the
//!   give-up rule, over the transfer (`link/transfer.rs`: framing, credit,
//!   acknowledgements, probes) and the server relay (`link/server_relay.rs`).
//!
//! Each backend adds only what its platform does differently: a WebRTC side
//! behind the link core's `Rtc` contract and a thin driver. Natively
//! (`native/`), the str0m side (`native/rtc.rs`, with gathering over STUN and
//! TURN in `ice`, silence detection and beacons) and one tokio task per node
//! that waits for datagrams, WebSocket frames and time, while application
//! calls enter the core under a lock and send at once. In the browser
//! (`web/`), the `RTCPeerConnection` side (`web/rtc.rs`), the browser's
//! callbacks and timers, and JavaScript bindings (`SwitchboardNode`; build
//! them with `scripts/web-build`, `switchboard serve` serves a page on them).
//! `framing` cuts and reassembles messages.

mod channel;
mod error;
mod event;
mod framing;
pub mod ice;
mod identity;
mod link;
#[cfg(not(target_arch = "wasm32"))]
pub mod nat;
#[cfg(not(target_arch = "wasm32"))]
mod native;
mod node;
#[cfg(not(target_arch = "wasm32"))]
mod signaling;
mod trust;
#[cfg(target_arch = "wasm32")]
mod web;

pub use channel::{ChannelConfig, Compression};
pub use error::{
    ChannelError, ConnectError, RequestError, RequestFailed, RoomError, SendError, SignalError, StartError,
};
pub use event::{Event, Incoming, Mail, Message, Request};
pub use ice::{IcePolicy, IceServer};
pub use identity::{Identity, IdentityError};
pub use link::{DisconnectReason, InvalidTransition, LinkState, LinkStats, PathKind, Quality};
pub use node::{HostCandidates, Node, NodeBuilder, Topology};
#[cfg(not(target_arch = "wasm32"))]
pub use signaling::{ConnectOptions, SignalingClient};
pub use switchboard_proto as proto;
pub use trust::{MAX_TRUST_ENTRIES, Trust, TrustStoreError};
#[cfg(target_arch = "wasm32")]
pub use web::js::{Sha256Hasher, SwitchboardNode};
#[cfg(target_arch = "wasm32")]
pub use web::log_to_console;
