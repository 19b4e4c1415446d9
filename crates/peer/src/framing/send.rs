//! The send side: per-channel queues, fair round-robin chunking.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{BASE_HEADER, FIRST, LAST, LZ4, OutMessage, TEXT, maybe_compress};

/// One chunk ready for the wire.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The channel slot it belongs to.
    pub(crate) slot: usize,
    /// Header and payload.
    pub(crate) bytes: Vec<u8>,
    /// Bytes of the caller's message this chunk carries (for buffer accounting).
    pub(crate) payload: usize,
    /// In raw mode, the message goes as a text data-channel message.
    pub(crate) text: bool,
}

struct Pending {
    first_header: Vec<u8>,
    data: Bytes,
    offset: usize,
    index: u32,
    seq: u32,
    flags: u8,
    /// Size the caller handed in (before compression), released as chunks go out.
    accounted: usize,
    released: usize,
}

#[derive(Default)]
struct Queue {
    msgs: VecDeque<Pending>,
    next_seq: u32,
    compress: bool,
}

/// Messages waiting to be chunked, one FIFO per channel.
///
/// A message cut in several chunks starts only while the messages already
/// in progress and it fit in the start budget together (or nothing else is
/// in progress), so the other side's partial messages stay within its
/// reassembly budget; a message that fits in one chunk always goes.
pub(crate) struct Outbox {
    queues: Vec<Queue>,
    cursor: usize,
    queued: usize,
    raw: bool,
    start_budget: usize,
    /// Bytes of the messages cut in chunks that are in progress (begun, not ended).
    in_progress: usize,
}

impl Outbox {
    /// An outbox for `raw` or framed channels.
    pub(crate) fn new(raw: bool) -> Self {
        Outbox { queues: Vec::new(), cursor: 0, queued: 0, raw, start_budget: usize::MAX, in_progress: 0 }
    }

    /// Sets the bytes of messages cut in chunks that may be in progress at once.
    pub(crate) fn set_start_budget(&mut self, bytes: usize) {
        self.start_budget = bytes;
    }

    /// Declares channel `slot` (slots are dense, starting at 0).
    pub(crate) fn add_channel(&mut self, slot: usize, compress: bool) {
        if self.queues.len() <= slot {
            self.queues.resize_with(slot + 1, Queue::default);
        }
        self.queues[slot].compress = compress && !self.raw;
    }

    /// Bytes of caller data queued and not yet chunked.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Whether anything is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0 && self.queues.iter().all(|q| q.msgs.is_empty())
    }

    /// Queues a message on `slot`.
    pub(crate) fn push(&mut self, slot: usize, msg: OutMessage) {
        if self.queues.len() <= slot {
            self.add_channel(slot, false);
        }
        let accounted = msg.data.len();
        let queue = &mut self.queues[slot];
        let seq = queue.next_seq;
        queue.next_seq = queue.next_seq.wrapping_add(1);
        let (data, mut flags) = match queue.compress.then(|| maybe_compress(&msg.data)).flatten() {
            Some(packed) => (Bytes::from(packed), LZ4),
            None => (msg.data, 0),
        };
        if msg.text {
            flags |= TEXT;
        }
        let mut first_header = Vec::new();
        if !self.raw {
            first_header.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
            first_header.push(msg.kind.code());
            if let Some(id) = msg.kind.id() {
                first_header.extend_from_slice(&id.to_le_bytes());
            }
            match msg.room {
                Some(room) => {
                    let code = room.as_str().as_bytes();
                    first_header.push(code.len() as u8);
                    first_header.extend_from_slice(code);
                }
                None => first_header.push(0),
            }
        }
        self.queued += accounted;
        queue.msgs.push_back(Pending { first_header, data, offset: 0, index: 0, seq, flags, accounted, released: 0 });
    }

    /// Drops everything queued on `slot`, returning the bytes released.
    pub(crate) fn clear(&mut self, slot: usize) -> usize {
        let Some(queue) = self.queues.get_mut(slot) else { return 0 };
        let mut freed = 0;
        for p in queue.msgs.drain(..) {
            freed += p.accounted - p.released;
            if p.index > 0 {
                self.in_progress -= p.data.len();
            }
        }
        self.queued -= freed;
        freed
    }

    /// Size of the next chunk `slot` would produce with chunks of at most `max` bytes.
    pub(crate) fn next_len(&self, slot: usize, max: usize) -> Option<usize> {
        let pending = self.queues.get(slot)?.msgs.front()?;
        if self.raw {
            return Some(pending.data.len());
        }
        let header = BASE_HEADER + if pending.index == 0 { pending.first_header.len() } else { 0 };
        let room = max.saturating_sub(header).max(1);
        Some(header + room.min(pending.data.len() - pending.offset))
    }

    /// Renders the next chunk, visiting channels round-robin, without taking
    /// it out of the queue: call [`Outbox::commit`] once it is on its way.
    /// `admit(slot, len)` says whether a chunk of `len` bytes may go out on
    /// `slot` now.
    pub(crate) fn next_chunk(&self, max: usize, mut admit: impl FnMut(usize, usize) -> bool) -> Option<Chunk> {
        let n = self.queues.len();
        let in_progress = self.in_progress;
        for step in 0..n {
            let slot = (self.cursor + step) % n;
            let Some(len) = self.next_len(slot, max) else { continue };
            let Some(pending) = self.queues[slot].msgs.front() else { continue };
            let cut =
                !self.raw && pending.index == 0 && BASE_HEADER + pending.first_header.len() + pending.data.len() > len;
            if cut && in_progress > 0 && in_progress + pending.data.len() > self.start_budget {
                continue;
            }
            if !admit(slot, len) {
                continue;
            }
            return Some(self.render(slot, len));
        }
        None
    }

    fn render(&self, slot: usize, len: usize) -> Chunk {
        let mut bytes = Vec::with_capacity(len);
        let Some(pending) = self.queues[slot].msgs.front() else {
            return Chunk { slot, bytes, payload: 0, text: false };
        };
        let header =
            if self.raw { 0 } else { BASE_HEADER + if pending.index == 0 { pending.first_header.len() } else { 0 } };
        let end = pending.offset + (len - header);
        let last = end >= pending.data.len();
        if !self.raw {
            let mut flags = pending.flags;
            if pending.index == 0 {
                flags |= FIRST;
            }
            if last {
                flags |= LAST;
            }
            bytes.push(flags);
            bytes.extend_from_slice(&pending.seq.to_le_bytes());
            bytes.extend_from_slice(&pending.index.to_le_bytes());
            if pending.index == 0 {
                bytes.extend_from_slice(&pending.first_header);
            }
        }
        bytes.extend_from_slice(&pending.data[pending.offset..end]);
        // Caller bytes are released in proportion to what went out
        // (compressed messages are accounted at their original size).
        let target = if last {
            pending.accounted
        } else {
            (pending.accounted as u128 * end as u128 / pending.data.len().max(1) as u128) as usize
        };
        Chunk { slot, payload: target - pending.released, bytes, text: self.raw && pending.flags & TEXT != 0 }
    }

    /// Takes a chunk from [`Outbox::next_chunk`] out of the queue.
    pub(crate) fn commit(&mut self, chunk: &Chunk) {
        let n = self.queues.len();
        let header = if self.raw { 0 } else { BASE_HEADER };
        let queue = &mut self.queues[chunk.slot];
        let Some(pending) = queue.msgs.front_mut() else { return };
        let header = header + if !self.raw && pending.index == 0 { pending.first_header.len() } else { 0 };
        let first = pending.index == 0;
        pending.offset += chunk.bytes.len() - header;
        pending.index += 1;
        pending.released += chunk.payload;
        self.queued -= chunk.payload;
        let done = pending.offset >= pending.data.len();
        // A message cut in chunks is in progress from its first chunk to its last.
        match (first, done) {
            (true, false) => self.in_progress += pending.data.len(),
            (false, true) => self.in_progress -= pending.data.len(),
            _ => {}
        }
        if done {
            queue.msgs.pop_front();
        }
        self.cursor = (chunk.slot + 1) % n;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::framing::MessageKind;

    pub(crate) fn take(out: &mut Outbox, max: usize, admit: impl FnMut(usize, usize) -> bool) -> Option<Chunk> {
        let chunk = out.next_chunk(max, admit)?;
        out.commit(&chunk);
        Some(chunk)
    }

    fn msg(data: &[u8]) -> OutMessage {
        OutMessage { kind: MessageKind::Data, room: None, data: Bytes::copy_from_slice(data), text: false }
    }

    #[test]
    fn channels_take_turns() {
        let mut out = Outbox::new(false);
        out.add_channel(0, false);
        out.add_channel(1, false);
        out.push(0, msg(&[0; 1000]));
        out.push(1, msg(&[1; 1000]));
        let slots: Vec<usize> = std::iter::from_fn(|| take(&mut out, 300, |_, _| true).map(|c| c.slot)).collect();
        assert_eq!(&slots[..4], &[0, 1, 0, 1]);
        assert_eq!(out.queued(), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn refused_channel_does_not_block_others() {
        let mut out = Outbox::new(false);
        out.push(0, msg(&[0; 100]));
        out.push(1, msg(&[1; 100]));
        let chunk = take(&mut out, 1000, |slot, _| slot == 1).expect("slot 1 admitted");
        assert_eq!(chunk.slot, 1);
        assert_eq!(out.queued(), 100);
        assert!(take(&mut out, 1000, |slot, _| slot == 1).is_none());
    }

    #[test]
    fn raw_mode_sends_messages_whole() {
        let mut out = Outbox::new(true);
        out.push(0, msg(b"hello"));
        let chunk = take(&mut out, 2, |_, _| true).expect("a chunk");
        assert_eq!(chunk.bytes, b"hello");
        assert!(!chunk.text);
        out.push(0, OutMessage::text("héllo".into()));
        let chunk = take(&mut out, 2, |_, _| true).expect("a chunk");
        assert_eq!((chunk.bytes.as_slice(), chunk.text), ("héllo".as_bytes(), true));
    }

    #[test]
    fn a_cut_message_waits_while_those_in_progress_fill_the_start_budget() {
        let mut out = Outbox::new(false);
        out.set_start_budget(1500);
        for slot in 0..3 {
            out.add_channel(slot, false);
        }
        out.push(0, msg(&[0; 1000]));
        out.push(1, msg(&[1; 1000]));
        out.push(2, msg(&[2; 10]));
        let slots: Vec<usize> = std::iter::from_fn(|| take(&mut out, 300, |_, _| true).map(|c| c.slot)).collect();
        // Channel 1's message starts only once channel 0's is out; the
        // one-chunk message on channel 2 is never held.
        let last_of_0 = slots.iter().rposition(|&s| s == 0).expect("channel 0");
        let first_of_1 = slots.iter().position(|&s| s == 1).expect("channel 1");
        assert!(first_of_1 > last_of_0, "{slots:?}");
        assert_eq!(slots[1], 2, "{slots:?}");
        assert!(out.is_empty());
    }
}
