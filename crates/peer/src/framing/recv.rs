//! The receive side: reassembly with bounded memory.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use switchboard_proto::RoomCode;

use super::{BASE_HEADER, FIRST, LAST, LZ4, MessageKind, TEXT};

/// Partial messages kept per unreliable channel; older ones are dropped.
const MAX_PARTIALS_UNRELIABLE: usize = 4;
/// Partial messages allowed per reliable channel before the peer is at fault.
const MAX_PARTIALS_RELIABLE: usize = 64;
/// What a chunk held out of order costs besides its payload (the map entry
/// and its allocation), so that many tiny chunks count as memory too.
const CHUNK_COST: usize = 64;

/// A complete message.
#[derive(Debug, PartialEq)]
pub(crate) struct Delivered {
    /// Channel slot.
    pub(crate) slot: usize,
    /// What it is.
    pub(crate) kind: MessageKind,
    /// Room it belongs to, if the sender said.
    pub(crate) room: Option<RoomCode>,
    /// The bytes, still compressed while `packed`.
    pub(crate) data: Bytes,
    /// The bytes are LZ4 (size-prefixed) as they came: [`Delivered::unpack`]
    /// decompresses them once the application has room.
    pub(crate) packed: bool,
    /// The sender sent it as text (not checked to be UTF-8 here).
    pub(crate) text: bool,
}

impl Delivered {
    /// Decompresses a packed message, refusing one over `max` bytes.
    pub(crate) fn unpack(mut self, max: usize) -> Result<Self, FrameError> {
        if self.packed {
            self.data = decompress(&self.data, max)?;
            self.packed = false;
        }
        Ok(self)
    }
}

/// A chunk that breaks the framing rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Shorter than its header.
    #[error("chunk of {0} bytes is shorter than its header")]
    Truncated(usize),
    /// The message would exceed the maximum size.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Announced or decompressed size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Chunks disagree with the announced size or with each other.
    #[error("inconsistent chunk: {0}")]
    Inconsistent(&'static str),
    /// The compressed payload does not decode.
    #[error("bad compressed payload")]
    Compression,
    /// Too many messages in progress at once.
    #[error("too many partial messages")]
    TooManyPartials,
    /// Partial messages on reliable channels hold more than the budget: a
    /// sender never starts a message that would take them there.
    #[error("partial messages hold {held} bytes, over the budget of {budget}")]
    OverBudget {
        /// Bytes held, counting each out-of-order chunk's overhead.
        held: usize,
        /// The budget.
        budget: usize,
    },
    /// Reliable chunks beyond the credit this side granted.
    #[error("{received} reliable bytes received where {allowed} were allowed")]
    OverCredit {
        /// Reliable chunk bytes received so far.
        received: u64,
        /// What the credit granted allows.
        allowed: u64,
    },
    /// Raw messages arrive faster than the application reads them.
    #[error("{0} bytes of messages wait unread")]
    Unread(usize),
}

struct Partial {
    seq: u32,
    kind: MessageKind,
    room: Option<RoomCode>,
    total: Option<usize>,
    lz4: bool,
    text: bool,
    next_index: u32,
    last_index: Option<u32>,
    buf: Vec<u8>,
    later: BTreeMap<u32, Vec<u8>>,
    held: usize,
}

impl Partial {
    /// Memory it holds: payload plus the overhead of out-of-order chunks.
    fn cost(&self) -> usize {
        self.held + self.later.len() * CHUNK_COST
    }
}

impl Partial {
    fn new(seq: u32) -> Self {
        Partial {
            seq,
            kind: MessageKind::Data,
            room: None,
            total: None,
            lz4: false,
            text: false,
            next_index: 0,
            last_index: None,
            buf: Vec::new(),
            later: BTreeMap::new(),
            held: 0,
        }
    }
}

struct Assembly {
    reliable: bool,
    partials: VecDeque<Partial>,
}

/// Reassembles chunks into messages, per channel, within two budgets:
/// partial messages on reliable channels may hold `reliable_budget` bytes
/// (more is the peer's fault), those on unreliable channels together
/// `max_message` (the oldest are dropped).
pub(crate) struct Inbox {
    channels: Vec<Assembly>,
    max_message: usize,
    reliable_budget: usize,
    raw: bool,
    dropped: u64,
    reliable_cost: usize,
    unreliable_cost: usize,
}

struct Header<'a> {
    flags: u8,
    seq: u32,
    index: u32,
    first: Option<(usize, MessageKind, Option<RoomCode>)>,
    payload: &'a [u8],
}

fn parse(chunk: &[u8]) -> Result<Header<'_>, FrameError> {
    let short = || FrameError::Truncated(chunk.len());
    if chunk.len() < BASE_HEADER {
        return Err(short());
    }
    let flags = chunk[0];
    let seq = u32::from_le_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]);
    let index = u32::from_le_bytes([chunk[5], chunk[6], chunk[7], chunk[8]]);
    let mut rest = &chunk[BASE_HEADER..];
    let mut first = None;
    if flags & FIRST != 0 {
        if rest.len() < 6 {
            return Err(short());
        }
        let total = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let code = rest[4];
        rest = &rest[5..];
        let kind = if code == 0 {
            MessageKind::Data
        } else {
            if rest.len() < 9 {
                return Err(short());
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&rest[..8]);
            let id = u64::from_le_bytes(id);
            rest = &rest[8..];
            match code {
                1 => MessageKind::Request(id),
                2 => MessageKind::Response(id),
                3 => MessageKind::ErrorResponse(id),
                _ => return Err(FrameError::Inconsistent("unknown message kind")),
            }
        };
        let room_len = usize::from(rest[0]);
        rest = &rest[1..];
        if rest.len() < room_len {
            return Err(short());
        }
        let room = if room_len == 0 {
            None
        } else {
            let code = std::str::from_utf8(&rest[..room_len]).map_err(|_| FrameError::Inconsistent("room"))?;
            Some(code.parse::<RoomCode>().map_err(|_| FrameError::Inconsistent("room"))?)
        };
        rest = &rest[room_len..];
        first = Some((total, kind, room));
        if index != 0 {
            return Err(FrameError::Inconsistent("first chunk with non-zero index"));
        }
    }
    Ok(Header { flags, seq, index, first, payload: rest })
}

impl Inbox {
    /// An inbox for messages up to `max_message` bytes whose reliable
    /// partial messages hold at most `reliable_budget` bytes.
    pub(crate) fn new(max_message: usize, reliable_budget: usize, raw: bool) -> Self {
        Inbox {
            channels: Vec::new(),
            max_message,
            reliable_budget,
            raw,
            dropped: 0,
            reliable_cost: 0,
            unreliable_cost: 0,
        }
    }

    /// Declares channel `slot`.
    pub(crate) fn add_channel(&mut self, slot: usize, reliable: bool) {
        while self.channels.len() <= slot {
            self.channels.push(Assembly { reliable: true, partials: VecDeque::new() });
        }
        self.channels[slot].reliable = reliable;
    }

    /// Partial messages dropped so far (unreliable channels).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes held in partial messages, counting each out-of-order chunk's overhead.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        debug_assert_eq!(
            self.reliable_cost + self.unreliable_cost,
            self.channels.iter().flat_map(|c| c.partials.iter()).map(Partial::cost).sum::<usize>()
        );
        self.reliable_cost + self.unreliable_cost
    }

    /// Takes one chunk received on `slot` (`text`: it came as a text
    /// data-channel message, which only raw mode heeds). A complete message
    /// comes back; an error means the peer broke the framing (on an
    /// unreliable channel the chunk is dropped instead and `Ok(None)` returned).
    pub(crate) fn push(&mut self, slot: usize, chunk: &[u8], text: bool) -> Result<Option<Delivered>, FrameError> {
        if self.raw {
            if chunk.len() > self.max_message {
                return Err(FrameError::TooLarge { size: chunk.len(), max: self.max_message });
            }
            let data = Bytes::copy_from_slice(chunk);
            return Ok(Some(Delivered { slot, kind: MessageKind::Data, room: None, data, packed: false, text }));
        }
        if self.channels.len() <= slot {
            self.add_channel(slot, true);
        }
        let reliable = self.channels[slot].reliable;
        match self.push_framed(slot, chunk) {
            Ok(done) => Ok(done),
            Err(_) if !reliable => {
                self.dropped += 1;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn push_framed(&mut self, slot: usize, chunk: &[u8]) -> Result<Option<Delivered>, FrameError> {
        let header = parse(chunk)?;
        let max = self.max_message;
        let channel = &mut self.channels[slot];
        let reliable = channel.reliable;
        let packed = header.flags & LZ4 != 0;
        // Fast path: a whole message in one chunk.
        if header.flags & (FIRST | LAST) == FIRST | LAST {
            let Some((total, kind, room)) = header.first else {
                return Err(FrameError::Inconsistent("missing first header"));
            };
            if total != header.payload.len() {
                return Err(FrameError::Inconsistent("size"));
            }
            check_packed(header.payload, packed, max)?;
            let data = Bytes::copy_from_slice(header.payload);
            let text = header.flags & TEXT != 0;
            return Ok(Some(Delivered { slot, kind, room, data, packed, text }));
        }
        // Every chunk of a message cut in several carries at least a byte.
        if header.payload.is_empty() {
            return Err(FrameError::Inconsistent("empty chunk"));
        }
        let pos = match channel.partials.iter().position(|p| p.seq == header.seq) {
            Some(pos) => pos,
            None => {
                let limit = if reliable { MAX_PARTIALS_RELIABLE } else { MAX_PARTIALS_UNRELIABLE };
                if channel.partials.len() >= limit {
                    if reliable {
                        return Err(FrameError::TooManyPartials);
                    }
                    if let Some(old) = channel.partials.pop_front() {
                        self.unreliable_cost -= old.cost();
                    }
                    self.dropped += 1;
                }
                channel.partials.push_back(Partial::new(header.seq));
                channel.partials.len() - 1
            }
        };
        let partial = &mut channel.partials[pos];
        let before = partial.cost();
        if let Err(e) = take_chunk(partial, &header, max) {
            // The partial goes with the bad chunk, so the budgets stay exact.
            channel.partials.remove(pos);
            if reliable {
                self.reliable_cost -= before;
            } else {
                self.unreliable_cost -= before;
            }
            return Err(e);
        }
        let partial = &channel.partials[pos];
        let after = partial.cost();
        if reliable {
            self.reliable_cost = self.reliable_cost + after - before;
            if self.reliable_cost > self.reliable_budget {
                return Err(FrameError::OverBudget { held: self.reliable_cost, budget: self.reliable_budget });
            }
        } else {
            self.unreliable_cost = self.unreliable_cost + after - before;
            self.shed_unreliable(slot, header.seq);
        }
        let channel = &mut self.channels[slot];
        let Some(pos) = channel.partials.iter().position(|p| p.seq == header.seq) else { return Ok(None) };
        let partial = &channel.partials[pos];
        let complete = partial.last_index.is_some_and(|last| partial.next_index == last + 1) && partial.total.is_some();
        if !complete {
            return Ok(None);
        }
        let Some(partial) = channel.partials.remove(pos) else { return Ok(None) };
        if reliable {
            self.reliable_cost -= partial.cost();
        } else {
            self.unreliable_cost -= partial.cost();
        }
        if Some(partial.buf.len()) != partial.total {
            return Err(FrameError::Inconsistent("size"));
        }
        check_packed(&partial.buf, partial.lz4, max)?;
        Ok(Some(Delivered {
            slot,
            kind: partial.kind,
            room: partial.room,
            data: Bytes::from(partial.buf),
            packed: partial.lz4,
            text: partial.text,
        }))
    }

    /// Keeps the partial messages of all unreliable channels within the
    /// message limit: the oldest of `slot` go first, then those of other
    /// channels, and last the one in progress (`seq`).
    fn shed_unreliable(&mut self, slot: usize, seq: u32) {
        while self.unreliable_cost > self.max_message {
            let own = &mut self.channels[slot].partials;
            let victim = if own.front().is_some_and(|p| p.seq != seq) {
                own.pop_front()
            } else {
                let other = self
                    .channels
                    .iter_mut()
                    .enumerate()
                    .find(|(s, c)| *s != slot && !c.reliable && !c.partials.is_empty())
                    .map(|(_, c)| c);
                match other {
                    Some(c) => c.partials.pop_front(),
                    None => self.channels[slot].partials.pop_front(),
                }
            };
            let Some(victim) = victim else { return };
            self.unreliable_cost -= victim.cost();
            self.dropped += 1;
        }
    }
}

/// Adds one chunk of a message cut in several to its partial message.
fn take_chunk(partial: &mut Partial, header: &Header<'_>, max: usize) -> Result<(), FrameError> {
    if let Some((total, kind, room)) = header.first {
        if total > max {
            return Err(FrameError::TooLarge { size: total, max });
        }
        partial.total = Some(total);
        partial.kind = kind;
        partial.room = room;
        partial.lz4 = header.flags & LZ4 != 0;
        partial.text = header.flags & TEXT != 0;
    }
    if header.flags & LAST != 0 {
        partial.last_index = Some(header.index);
    }
    if header.index < partial.next_index || partial.later.contains_key(&header.index) {
        return Err(FrameError::Inconsistent("duplicate chunk"));
    }
    partial.held += header.payload.len();
    if partial.held > partial.total.unwrap_or(max) {
        return Err(FrameError::Inconsistent("more bytes than announced"));
    }
    if header.index == partial.next_index {
        partial.buf.extend_from_slice(header.payload);
        partial.next_index += 1;
        while let Some(next) = partial.later.remove(&partial.next_index) {
            partial.buf.extend_from_slice(&next);
            partial.next_index += 1;
        }
    } else {
        partial.later.insert(header.index, header.payload.to_vec());
    }
    Ok(())
}

/// Checks a packed message's announced size before it waits for the
/// application (the bytes are decompressed only when it reads them).
fn check_packed(buf: &[u8], packed: bool, max: usize) -> Result<(), FrameError> {
    if !packed {
        return Ok(());
    }
    let Some(prefix) = buf.get(..4) else { return Err(FrameError::Compression) };
    let size = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(())
}

fn decompress(buf: &[u8], max: usize) -> Result<Bytes, FrameError> {
    check_packed(buf, true, max)?;
    let size = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    lz4_flex::block::decompress(&buf[4..], size).map(Bytes::from).map_err(|_| FrameError::Compression)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::super::{OutMessage, Outbox};
    use super::*;
    use crate::framing::MAX_HEADER;

    fn chunks(out: &mut Outbox, max: usize) -> Vec<(usize, Vec<u8>)> {
        std::iter::from_fn(|| super::super::send::tests::take(out, max, |_, _| true).map(|c| (c.slot, c.bytes)))
            .collect()
    }

    #[test]
    fn large_message_round_trips_through_small_chunks() {
        let mut rng = StdRng::seed_from_u64(7);
        let data: Vec<u8> = (0..200_000).map(|_| rng.random()).collect();
        let mut out = Outbox::new(false);
        let room: RoomCode = "ABC123".parse().expect("room");
        out.push(
            0,
            OutMessage { kind: MessageKind::Request(9), room: Some(room), data: Bytes::from(data.clone()), text: true },
        );
        let mut inbox = Inbox::new(1 << 20, 4 * (1 << 20), false);
        let mut got = Vec::new();
        for (slot, chunk) in chunks(&mut out, 1200) {
            assert!(chunk.len() <= 1200);
            if let Some(d) = inbox.push(slot, &chunk, false).expect("valid") {
                got.push(d);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, MessageKind::Request(9));
        assert_eq!(got[0].room, Some(room));
        assert_eq!(got[0].data, data);
        assert!(got[0].text, "the text flag of the first chunk is kept");
        assert_eq!(inbox.held(), 0);
    }

    #[test]
    fn text_and_binary_stay_apart_in_one_chunk_and_in_raw_mode() {
        let mut out = Outbox::new(false);
        out.push(0, OutMessage::text("ping 0".into()));
        out.push(0, OutMessage::data(Bytes::from_static(b"ping 0")));
        let mut inbox = Inbox::new(1 << 20, 1 << 20, false);
        let got: Vec<(bool, Bytes)> = chunks(&mut out, 1200)
            .iter()
            .filter_map(|(s, c)| inbox.push(*s, c, false).expect("valid"))
            .map(|d| (d.text, d.data))
            .collect();
        assert_eq!(got, [(true, Bytes::from_static(b"ping 0")), (false, Bytes::from_static(b"ping 0"))]);
        let mut raw = Inbox::new(1 << 20, 1 << 20, true);
        assert!(raw.push(0, b"x", true).expect("valid").expect("a message").text);
        assert!(!raw.push(0, b"x", false).expect("valid").expect("a message").text);
    }

    #[test]
    fn unordered_chunks_reassemble() {
        let mut out = Outbox::new(false);
        out.push(0, OutMessage::data(Bytes::from(vec![5u8; 10_000])));
        out.push(0, OutMessage::data(Bytes::from(vec![6u8; 10_000])));
        let mut all = chunks(&mut out, 1000);
        all.shuffle(&mut StdRng::seed_from_u64(1));
        let mut inbox = Inbox::new(1 << 20, 4 * (1 << 20), false);
        let mut done: Vec<Bytes> =
            all.iter().filter_map(|(s, c)| inbox.push(*s, c, false).expect("valid")).map(|d| d.data).collect();
        done.sort();
        assert_eq!(done, vec![Bytes::from(vec![5u8; 10_000]), Bytes::from(vec![6u8; 10_000])]);
    }

    #[test]
    fn compression_only_when_it_saves() {
        let mut out = Outbox::new(false);
        out.add_channel(0, true);
        let text = Bytes::from("hello world ".repeat(1000));
        out.push(0, OutMessage::data(text.clone()));
        let mut rng = StdRng::seed_from_u64(3);
        let noise: Vec<u8> = (0..4000).map(|_| rng.random()).collect();
        out.push(0, OutMessage::data(Bytes::from(noise.clone())));
        let all = chunks(&mut out, 64 * 1024);
        assert_eq!(all.len(), 2);
        assert!(all[0].1.len() < 1000, "text compressed to {}", all[0].1.len());
        assert_eq!(all[0].1[0] & LZ4, LZ4);
        assert_eq!(all[1].1[0] & LZ4, 0, "noise sent as is");
        let mut inbox = Inbox::new(1 << 20, 4 * (1 << 20), false);
        let got: Vec<Bytes> = all
            .iter()
            .filter_map(|(s, c)| inbox.push(*s, c, false).expect("valid"))
            .map(|d| d.unpack(1 << 20).expect("decodes").data)
            .collect();
        assert_eq!(got, vec![text, Bytes::from(noise)]);
    }

    #[test]
    fn unreliable_partials_are_dropped_and_memory_stays_bounded() {
        let mut inbox = Inbox::new(100_000, 4 * (100_000), false);
        inbox.add_channel(0, false);
        // 1,000 messages whose last chunk is lost.
        for seq in 0..1000u32 {
            let mut out = Outbox::new(false);
            for _ in 0..seq {
                out.push(0, OutMessage::data(Bytes::new()));
            }
            let _ = chunks(&mut out, 1000);
            out.push(0, OutMessage::data(Bytes::from(vec![1u8; 50_000])));
            let mut all = chunks(&mut out, 1000);
            all.pop();
            for (slot, chunk) in all {
                assert_eq!(inbox.push(slot, &chunk, false), Ok(None));
            }
            assert!(inbox.held() <= 100_000 + 1000, "held {}", inbox.held());
        }
        assert!(inbox.dropped() >= 996);
    }

    #[test]
    fn oversized_announcement_is_refused_before_allocation() {
        let mut chunk = vec![FIRST, 0, 0, 0, 0, 0, 0, 0, 0];
        chunk.extend_from_slice(&u32::MAX.to_le_bytes());
        chunk.extend_from_slice(&[0, 0, 1, 2, 3]);
        let mut inbox = Inbox::new(1 << 20, 4 * (1 << 20), false);
        assert!(matches!(inbox.push(0, &chunk, false), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn decompression_bomb_is_refused() {
        let packed = lz4_flex::block::compress_prepend_size(&vec![0u8; 10_000]);
        let mut chunk = vec![FIRST | LAST | LZ4, 0, 0, 0, 0, 0, 0, 0, 0];
        chunk.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&[0, 0]);
        chunk.extend_from_slice(&packed);
        let mut inbox = Inbox::new(1000, 4 * (1000), false);
        assert!(matches!(inbox.push(0, &chunk, false), Err(FrameError::TooLarge { size: 10_000, max: 1000 })));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut inbox = Inbox::new(1 << 16, 4 * (1 << 16), false);
        inbox.add_channel(1, false);
        for _ in 0..20_000 {
            let len = rng.random_range(0..MAX_HEADER + 40);
            let mut chunk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if !chunk.is_empty() {
                chunk[0] &= 0x07;
            }
            let _ = inbox.push(rng.random_range(0..2), &chunk, false);
        }
        assert!(inbox.held() <= 64 * (1 << 16) + (1 << 16) * 4);
    }

    /// A chunk of a message cut in several, without its first header.
    fn middle(seq: u32, index: u32, payload: &[u8]) -> Vec<u8> {
        let mut chunk = vec![0u8];
        chunk.extend_from_slice(&seq.to_le_bytes());
        chunk.extend_from_slice(&index.to_le_bytes());
        chunk.extend_from_slice(payload);
        chunk
    }

    #[test]
    fn empty_chunks_at_random_indices_hold_no_memory() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut inbox = Inbox::new(1 << 16, 1 << 18, false);
        inbox.add_channel(0, false);
        for _ in 0..100_000 {
            let index = rng.random_range(1..u32::MAX);
            assert_eq!(inbox.push(0, &middle(7, index, &[]), false), Ok(None));
        }
        assert_eq!(inbox.dropped(), 100_000, "every empty chunk is refused");
        assert_eq!(inbox.held(), 0);
    }

    #[test]
    fn tiny_chunks_at_random_indices_count_their_overhead() {
        let mut rng = StdRng::seed_from_u64(6);
        let max = 1 << 16;
        let mut inbox = Inbox::new(max, 4 * max, false);
        inbox.add_channel(0, false);
        inbox.add_channel(1, false);
        for _ in 0..100_000 {
            let (slot, seq, index) = (rng.random_range(0..2), rng.random_range(0..8), rng.random_range(1..u32::MAX));
            assert_eq!(inbox.push(slot, &middle(seq, index, &[1]), false), Ok(None));
            assert!(inbox.held() <= max, "all unreliable channels together stay within the message limit");
        }
        // 100,000 chunks cost 6.5 MB; each partial dropped frees at most `max`.
        assert!(inbox.dropped() >= 90, "the oldest partial messages went: {}", inbox.dropped());
    }

    #[test]
    fn reliable_partial_messages_over_the_budget_are_the_peers_fault() {
        let max = 1 << 20;
        let mut inbox = Inbox::new(max, 3 * max, false);
        // Many channels, each with one large message begun and never ended.
        let mut result = Ok(None);
        for slot in 0..64 {
            inbox.add_channel(slot, true);
            let mut chunk = vec![FIRST, 0, 0, 0, 0, 0, 0, 0, 0];
            chunk.extend_from_slice(&(max as u32).to_le_bytes());
            chunk.extend_from_slice(&[0, 0]);
            chunk.extend_from_slice(&vec![3u8; 60_000]);
            result = inbox.push(slot, &chunk, false);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(FrameError::OverBudget { budget, .. }) if budget == 3 * max), "{result:?}");
    }
}
