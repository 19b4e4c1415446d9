//! The server-relay carrier, sans-IO: end-to-end encryption of the frames a
//! link sends through the signaling server's WebSocket relay, and pacing
//! under the server's limits.
//!
//! **Keys.** Each side makes an ephemeral X25519 key and sends it in a
//! `relay_key` signal, signed with its Ed25519 identity. The other side
//! checks that the identity key hashes to the peer id the server vouched
//! for, checks the signature over the sender's id, the recipient's id and
//! the ephemeral key, and runs the Diffie-Hellman. HKDF-SHA256 over the
//! shared secret gives one ChaCha20-Poly1305 key per direction. The server
//! relays the keys but cannot sign for either identity, so it cannot sit in
//! the middle; it sees only ciphertext.
//!
//! **Frames.** `counter u64 BE | ciphertext | tag`, the counter is the
//! nonce (per direction, so never reused) and must grow: a frame the server
//! plays again is refused. When the other side makes a new link it sends a
//! new key; a link never takes a key it took before (the server could play
//! an old one again to bring back used nonces), takes at most 64, and its
//! own counter goes on across keys.

use std::time::Duration;

use web_time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use sha2::Sha256;
use switchboard_proto::{PeerId, SignalData, encode_b64, verify_signed};

use crate::Identity;

/// What a link needs to carry data through the server's relay.
#[derive(Clone, Debug)]
pub(crate) struct ServerRelaySetup {
    /// This node's identity, which signs the key agreement.
    pub(crate) identity: Identity,
    /// This node's peer id.
    pub(crate) local: PeerId,
    /// The other side's peer id, as the server vouched for it.
    pub(crate) remote: PeerId,
    /// How long a link goes without a WebRTC path before the relay carries
    /// its data (zero: from the start, while WebRTC comes up).
    pub(crate) after: Duration,
    /// Relay payload bytes per second this link may send.
    pub(crate) bytes_per_sec: u32,
    /// Relay frames per second this link may send.
    pub(crate) frames_per_sec: u32,
    /// Largest relay frame payload the server takes.
    pub(crate) max_payload: usize,
}

/// The relay channel number of link frames (the server passes it through).
pub(crate) const RELAY_CHANNEL: u16 = 1;
/// Relay frame contents: a chunk (`slot u16 LE | chunk`), a control message, a probe.
pub(crate) const RELAY_DATA: u8 = 0;
/// A raw-mode text message of a channel (as a text data-channel message).
pub(crate) const RELAY_TEXT: u8 = 3;
/// A control message (credit, acknowledgement) through the relay.
pub(crate) const RELAY_CONTROL: u8 = 1;
/// A probe (ping, pong) through the relay.
pub(crate) const RELAY_PROBE: u8 = 2;
/// Bytes of the relay frame header (peer id, channel) and our own (kind, slot).
pub(crate) const RELAY_FRAMING: usize = switchboard_proto::RELAY_HEADER_LEN + OVERHEAD + 3;

/// A relay data frame's plaintext: kind, slot, chunk (`text`: a raw-mode
/// text message).
pub(crate) fn relay_chunk(slot: usize, chunk: &[u8], text: bool) -> Vec<u8> {
    let mut plain = Vec::with_capacity(3 + chunk.len());
    plain.push(if text { RELAY_TEXT } else { RELAY_DATA });
    plain.extend_from_slice(&u16::try_from(slot).unwrap_or(u16::MAX).to_le_bytes());
    plain.extend_from_slice(chunk);
    plain
}

/// What an opened relay frame holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened<'a> {
    /// A chunk of channel `slot`.
    Chunk {
        /// The channel.
        slot: usize,
        /// The chunk, framed as on a data channel.
        chunk: &'a [u8],
        /// It went as text (raw mode).
        text: bool,
    },
    /// A control message.
    Control(&'a [u8]),
    /// A probe.
    Probe(&'a [u8]),
}

impl<'a> Opened<'a> {
    /// Reads an opened frame; `None` for an unknown kind or a cut frame.
    pub(crate) fn parse(plain: &'a [u8]) -> Option<Self> {
        let (&kind, rest) = plain.split_first()?;
        match kind {
            RELAY_DATA | RELAY_TEXT if rest.len() >= 2 => {
                let slot = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
                Some(Opened::Chunk { slot, chunk: &rest[2..], text: kind == RELAY_TEXT })
            }
            RELAY_CONTROL => Some(Opened::Control(rest)),
            RELAY_PROBE => Some(Opened::Probe(rest)),
            _ => None,
        }
    }
}

/// Domain separation of the signed relay key.
const KEY_CONTEXT: &[u8] = b"switchboard/v1 relay key\n";
/// Bytes a sealed frame adds: counter and tag.
pub(crate) const OVERHEAD: usize = 8 + 16;

/// Why a peer's relay key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RelayKeyError {
    /// A field is not base64url of the right length.
    #[error("relay key field {0} is malformed")]
    Malformed(&'static str),
    /// The identity key does not belong to the peer, or the signature fails.
    #[error("relay key is not signed by the peer's identity")]
    NotSigned,
    /// The key agreement gave the all-zero secret (a low-order point).
    #[error("relay key is a low-order point")]
    Weak,
    /// A key this link took before and left: played again by the server,
    /// it would bring back a key whose nonces were used.
    #[error("relay key was used before on this link")]
    Replayed,
    /// The other side changed keys more often than a link ever needs.
    #[error("more than {MAX_KEYS} relay keys on one link")]
    TooMany,
}

/// Keys of the other side one link takes at most (each new link on the
/// other side brings one).
const MAX_KEYS: usize = 64;

/// This side's half of the key agreement.
pub(crate) struct Handshake {
    secret: [u8; 32],
    public: [u8; 32],
    local: PeerId,
    remote: PeerId,
}

impl Handshake {
    /// A fresh ephemeral key (from `random`) for the link `local` → `remote`.
    pub(crate) fn new(random: [u8; 32], local: PeerId, remote: PeerId) -> Self {
        let public = MontgomeryPoint::mul_base_clamped(random).to_bytes();
        Handshake { secret: random, public, local, remote }
    }

    /// The signal that carries this side's key, signed by `identity`.
    pub(crate) fn signal(&self, identity: &Identity) -> SignalData {
        let payload = signed_payload(self.local, self.remote, &self.public);
        SignalData::RelayKey {
            key: encode_b64(&self.public),
            public_key: encode_b64(&identity.public_key()),
            signature: encode_b64(&identity.sign(&payload)),
        }
    }

    /// Checks the other side's key and derives the frame keys.
    pub(crate) fn complete(&self, key: &str, public_key: &str, signature: &str) -> Result<Sealer, RelayKeyError> {
        let theirs: [u8; 32] =
            URL_SAFE_NO_PAD.decode(key).ok().and_then(|b| b.try_into().ok()).ok_or(RelayKeyError::Malformed("key"))?;
        let payload = signed_payload(self.remote, self.local, &theirs);
        let signer = verify_signed(public_key, signature, &payload).map_err(|_| RelayKeyError::NotSigned)?;
        if signer != self.remote {
            return Err(RelayKeyError::NotSigned);
        }
        let shared = MontgomeryPoint(theirs).mul_clamped(self.secret).to_bytes();
        if shared == [0; 32] {
            return Err(RelayKeyError::Weak);
        }
        // Lower id first, so both sides derive the same material.
        let local_first = self.local.as_bytes() < self.remote.as_bytes();
        let (first, second) = if local_first { (&self.public, &theirs) } else { (&theirs, &self.public) };
        let (id_first, id_second) = if local_first { (self.local, self.remote) } else { (self.remote, self.local) };
        let mut info = Vec::with_capacity(96);
        for part in [id_first.as_bytes().as_slice(), id_second.as_bytes(), first, second] {
            info.extend_from_slice(part);
        }
        let mut okm = [0u8; 64];
        hkdf::Hkdf::<Sha256>::new(Some(KEY_CONTEXT), &shared)
            .expand(&info, &mut okm)
            .map_err(|_| RelayKeyError::Weak)?;
        let (k1, k2) = okm.split_at(32);
        let (send, recv) = if local_first { (k1, k2) } else { (k2, k1) };
        Ok(Sealer {
            send: ChaCha20Poly1305::new_from_slice(send).map_err(|_| RelayKeyError::Weak)?,
            recv: ChaCha20Poly1305::new_from_slice(recv).map_err(|_| RelayKeyError::Weak)?,
            sent: 0,
            highest: None,
        })
    }
}

fn signed_payload(from: PeerId, to: PeerId, key: &[u8; 32]) -> Vec<u8> {
    let mut p = Vec::with_capacity(KEY_CONTEXT.len() + 64);
    p.extend_from_slice(KEY_CONTEXT);
    p.extend_from_slice(from.as_bytes());
    p.extend_from_slice(to.as_bytes());
    p.extend_from_slice(key);
    p
}

/// Why a relayed frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Shorter than counter and tag.
    #[error("relayed frame too short")]
    Short,
    /// The counter did not grow: a replay.
    #[error("relayed frame replayed")]
    Replay,
    /// Authentication failed: not from the peer, or altered.
    #[error("relayed frame failed authentication")]
    Forged,
}

/// Seals and opens relayed frames for one link.
pub(crate) struct Sealer {
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
    sent: u64,
    highest: Option<u64>,
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(n)
}

impl Sealer {
    /// Encrypts `plain` into a frame.
    pub(crate) fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let counter = self.sent;
        self.sent += 1;
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.extend_from_slice(&counter.to_be_bytes());
        // Encryption fails only for messages over 256 GiB.
        if let Ok(c) = self.send.encrypt(&nonce(counter), plain) {
            out.extend_from_slice(&c);
        }
        out
    }

    /// Decrypts a frame from the peer.
    pub(crate) fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, OpenError> {
        if frame.len() < OVERHEAD {
            return Err(OpenError::Short);
        }
        let (head, body) = frame.split_at(8);
        let counter = u64::from_be_bytes(head.try_into().map_err(|_| OpenError::Short)?);
        if self.highest.is_some_and(|h| counter <= h) {
            return Err(OpenError::Replay);
        }
        let plain = self.recv.decrypt(&nonce(counter), body).map_err(|_| OpenError::Forged)?;
        self.highest = Some(counter);
        Ok(plain)
    }
}

/// Which way a link's data goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// The WebRTC session's data channels.
    Rtc,
    /// Sealed frames through the signaling server.
    Server,
}

/// The server relay of one link: the key agreement, the sealer once the
/// keys are agreed, and the pace.
pub(crate) struct ServerRelay {
    pub(crate) setup: ServerRelaySetup,
    handshake: Handshake,
    sealer: Option<Sealer>,
    pacer: Pacer,
    /// The other side's key last completed, to answer a new one once.
    their_key: Option<String>,
    /// Every key of the other side this link took, never taken again.
    seen: Vec<String>,
    key_sent: bool,
}

impl ServerRelay {
    /// The relay of a link starting at `now`; `random` seeds the ephemeral key.
    pub(crate) fn new(now: Instant, setup: ServerRelaySetup, random: [u8; 32]) -> Self {
        ServerRelay {
            handshake: Handshake::new(random, setup.local, setup.remote),
            pacer: Pacer::new(now, setup.bytes_per_sec, setup.frames_per_sec),
            setup,
            sealer: None,
            their_key: None,
            seen: Vec::new(),
            key_sent: false,
        }
    }

    /// Both sides' keys are agreed: frames can be sealed and opened.
    pub(crate) fn ready(&self) -> bool {
        self.sealer.is_some()
    }

    /// This side's key signal, the first time only.
    pub(crate) fn first_key(&mut self) -> Option<SignalData> {
        if self.key_sent {
            return None;
        }
        self.key_sent = true;
        Some(self.handshake.signal(&self.setup.identity))
    }

    /// Takes the other side's key. Returns this side's key again when the
    /// other side made a new link (a second, different key), which needs it.
    /// A key taken before and replaced is refused (this side's ephemeral key
    /// lasts as long as the link, so taking it again would bring back frame
    /// keys whose counters already ran), and this side's counter goes on
    /// from where it was under the old keys.
    pub(crate) fn accept_key(
        &mut self,
        key: &str,
        public_key: &str,
        signature: &str,
    ) -> Result<Option<SignalData>, RelayKeyError> {
        if self.their_key.as_deref() == Some(key) {
            return Ok(None);
        }
        if self.seen.iter().any(|k| k == key) {
            return Err(RelayKeyError::Replayed);
        }
        if self.seen.len() >= MAX_KEYS {
            return Err(RelayKeyError::TooMany);
        }
        let mut sealer = self.handshake.complete(key, public_key, signature)?;
        if let Some(old) = &self.sealer {
            sealer.sent = old.sent;
        }
        self.seen.push(key.to_owned());
        let again = self.their_key.is_some();
        self.sealer = Some(sealer);
        self.their_key = Some(key.to_owned());
        Ok(again.then(|| self.handshake.signal(&self.setup.identity)))
    }

    /// Seals a data frame if the pace allows it now.
    pub(crate) fn seal_data(&mut self, now: Instant, plain: &[u8]) -> Option<Vec<u8>> {
        let sealer = self.sealer.as_mut()?;
        self.pacer.admit(now, plain.len()).then(|| sealer.seal(plain))
    }

    /// Seals a small frame (control, probe) of `kind` whatever the pace.
    pub(crate) fn seal_small(&mut self, now: Instant, kind: u8, body: &[u8]) -> Option<Vec<u8>> {
        let sealer = self.sealer.as_mut()?;
        let mut plain = Vec::with_capacity(1 + body.len());
        plain.push(kind);
        plain.extend_from_slice(body);
        self.pacer.force(now, plain.len());
        Some(sealer.seal(&plain))
    }

    /// Opens a frame from the other side (`None` before the keys are agreed).
    pub(crate) fn open(&mut self, frame: &[u8]) -> Option<Result<Vec<u8>, OpenError>> {
        Some(self.sealer.as_mut()?.open(frame))
    }

    /// When a data frame of `len` bytes will fit the pace.
    pub(crate) fn ready_at(&self, len: usize) -> Instant {
        self.pacer.ready_at(len)
    }
}

/// Paces relayed frames under the server's limits: a token bucket for
/// bytes and one for frames, each with a one-second burst.
#[derive(Debug)]
pub(crate) struct Pacer {
    bytes_per_sec: f64,
    frames_per_sec: f64,
    bytes: f64,
    frames: f64,
    at: Instant,
}

impl Pacer {
    /// A pacer that allows `bytes_per_sec` and `frames_per_sec`.
    pub(crate) fn new(now: Instant, bytes_per_sec: u32, frames_per_sec: u32) -> Self {
        let (b, f) = (f64::from(bytes_per_sec.max(1024)), f64::from(frames_per_sec.max(1)));
        Pacer { bytes_per_sec: b, frames_per_sec: f, bytes: b, frames: f, at: now }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now.max(self.at);
        self.bytes = (self.bytes + dt * self.bytes_per_sec).min(self.bytes_per_sec);
        self.frames = (self.frames + dt * self.frames_per_sec).min(self.frames_per_sec);
    }

    /// Takes room for a frame of `len` bytes, or says no.
    pub(crate) fn admit(&mut self, now: Instant, len: usize) -> bool {
        self.refill(now);
        if self.frames < 1.0 || self.bytes < len as f64 {
            return false;
        }
        self.frames -= 1.0;
        self.bytes -= len as f64;
        true
    }

    /// Takes room for a small frame that must go now, even into debt.
    pub(crate) fn force(&mut self, now: Instant, len: usize) {
        self.refill(now);
        self.frames -= 1.0;
        self.bytes -= len as f64;
    }

    /// When a frame of `len` bytes will fit.
    pub(crate) fn ready_at(&self, len: usize) -> Instant {
        let wait_f = (1.0 - self.frames).max(0.0) / self.frames_per_sec;
        let wait_b = (len as f64 - self.bytes).max(0.0) / self.bytes_per_sec;
        self.at + Duration::from_secs_f64(wait_f.max(wait_b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Identity, Identity) {
        (Identity::from_secret_bytes([1; 32]), Identity::from_secret_bytes([2; 32]))
    }

    fn keys(sig: &SignalData) -> (&str, &str, &str) {
        match sig {
            SignalData::RelayKey { key, public_key, signature } => (key, public_key, signature),
            other => panic!("not a relay key: {other:?}"),
        }
    }

    #[test]
    fn both_sides_derive_matching_keys_and_frames_round_trip() {
        let (a, b) = pair();
        let ha = Handshake::new([7; 32], a.peer_id(), b.peer_id());
        let hb = Handshake::new([8; 32], b.peer_id(), a.peer_id());
        let (sa, sb) = (ha.signal(&a), hb.signal(&b));
        let (k, p, s) = keys(&sb);
        let mut sealer_a = ha.complete(k, p, s).expect("b's key verifies");
        let (k, p, s) = keys(&sa);
        let mut sealer_b = hb.complete(k, p, s).expect("a's key verifies");
        let frame = sealer_a.seal(b"hello over the relay");
        assert!(!frame.windows(5).any(|w| w == b"hello"), "the frame is ciphertext");
        assert_eq!(sealer_b.open(&frame).as_deref(), Ok(&b"hello over the relay"[..]));
        assert_eq!(sealer_b.open(&frame), Err(OpenError::Replay));
        let back = sealer_b.seal(b"and back");
        assert_eq!(sealer_a.open(&back).as_deref(), Ok(&b"and back"[..]));
        let mut forged = sealer_a.seal(b"x");
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(sealer_b.open(&forged), Err(OpenError::Forged));
        assert_eq!(sealer_b.open(&[0; 5]), Err(OpenError::Short));
    }

    #[test]
    fn a_key_signed_by_another_identity_is_refused() {
        let (a, b) = pair();
        let mallory = Identity::from_secret_bytes([3; 32]);
        let ha = Handshake::new([7; 32], a.peer_id(), b.peer_id());
        // Mallory (the server, say) signs its own key as if it were b.
        let hm = Handshake::new([9; 32], b.peer_id(), a.peer_id());
        let forged = hm.signal(&mallory);
        let (k, p, s) = keys(&forged);
        assert_eq!(ha.complete(k, p, s).err(), Some(RelayKeyError::NotSigned));
        // b's real signature over another key does not carry over.
        let hb = Handshake::new([8; 32], b.peer_id(), a.peer_id());
        let sb = hb.signal(&b);
        let (_, p, s) = keys(&sb);
        assert_eq!(ha.complete(k, p, s).err(), Some(RelayKeyError::NotSigned));
        assert_eq!(ha.complete("??", p, s).err(), Some(RelayKeyError::Malformed("key")));
    }

    #[test]
    fn opened_frames_read_back_by_kind() {
        let chunk = relay_chunk(3, b"abc", false);
        assert_eq!(Opened::parse(&chunk), Some(Opened::Chunk { slot: 3, chunk: b"abc", text: false }));
        let chunk = relay_chunk(3, b"abc", true);
        assert_eq!(Opened::parse(&chunk), Some(Opened::Chunk { slot: 3, chunk: b"abc", text: true }));
        assert_eq!(Opened::parse(&[RELAY_CONTROL, 9]), Some(Opened::Control(&[9])));
        assert_eq!(Opened::parse(&[RELAY_PROBE]), Some(Opened::Probe(&[])));
        assert_eq!(Opened::parse(&[RELAY_DATA, 1]), None, "a chunk without its slot");
        assert_eq!(Opened::parse(&[7, 1, 2]), None, "an unknown kind");
        assert_eq!(Opened::parse(&[]), None);
    }

    #[test]
    fn the_pacer_holds_frames_to_the_rates() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 10_000, 5);
        let admitted = (0..10).filter(|_| p.admit(t0, 1000)).count();
        assert_eq!(admitted, 5, "five frames a second");
        assert!(p.ready_at(1000) > t0);
        let later = t0 + Duration::from_millis(400);
        assert!(p.admit(later, 1000), "two frames' worth refilled");
        assert!(!p.admit(later, 9000), "bytes run out before frames");
    }

    fn relay(me: &Identity, other: &Identity, random: u8) -> ServerRelay {
        let setup = ServerRelaySetup {
            identity: me.clone(),
            local: me.peer_id(),
            remote: other.peer_id(),
            after: Duration::ZERO,
            bytes_per_sec: 1 << 20,
            frames_per_sec: 1000,
            max_payload: 64 << 10,
        };
        ServerRelay::new(Instant::now(), setup, [random; 32])
    }

    fn counter(frame: &[u8]) -> u64 {
        u64::from_be_bytes(frame[..8].try_into().expect("a counter"))
    }

    #[test]
    fn an_old_relay_key_played_again_is_refused_and_counters_never_restart() {
        let (a, b) = pair();
        let now = Instant::now();
        let mut ra = relay(&a, &b, 7);
        // b's first link, then a new link of b's with a new key.
        let mut rb1 = relay(&b, &a, 8);
        let old = rb1.first_key().expect("b's first key");
        let mut rb2 = relay(&b, &a, 9);
        let new = rb2.first_key().expect("b's second key");
        let (k, p, s) = keys(&old);
        assert_eq!(ra.accept_key(k, p, s), Ok(None));
        let sent: Vec<u64> = (0..3).map(|_| counter(&ra.seal_small(now, RELAY_PROBE, b"x").expect("sealed"))).collect();
        assert_eq!(sent, [0, 1, 2]);
        let (k, p, s) = keys(&new);
        assert!(ra.accept_key(k, p, s).expect("a new link's key").is_some(), "b's new link needs a's key again");
        assert_eq!(counter(&ra.seal_small(now, RELAY_PROBE, b"x").expect("sealed")), 3, "the counter goes on");
        // The server plays b's old key again: refused, the keys stay.
        let (k, p, s) = keys(&old);
        assert_eq!(ra.accept_key(k, p, s), Err(RelayKeyError::Replayed));
        let frame = ra.seal_small(now, RELAY_PROBE, b"still new").expect("sealed");
        let a_key = ra.handshake.signal(&a);
        let (k, p, s) = keys(&a_key);
        rb2.accept_key(k, p, s).expect("a's key verifies");
        assert_eq!(rb2.open(&frame), Some(Ok([&[RELAY_PROBE][..], b"still new"].concat())));
    }

    #[test]
    fn a_link_takes_a_bounded_number_of_keys() {
        let (a, b) = pair();
        let mut ra = relay(&a, &b, 7);
        for n in 0..MAX_KEYS {
            let key = relay(&b, &a, n as u8 + 10).first_key().expect("a key");
            let (k, p, s) = keys(&key);
            assert!(ra.accept_key(k, p, s).is_ok());
        }
        let key = relay(&b, &a, 200).first_key().expect("a key");
        let (k, p, s) = keys(&key);
        assert_eq!(ra.accept_key(k, p, s), Err(RelayKeyError::TooMany));
    }
}
