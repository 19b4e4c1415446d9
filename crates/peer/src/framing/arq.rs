//! Sequence numbers and acknowledgements for reliable channels, sans-IO.
//!
//! A framed link may move its data between carriers (a WebRTC session, the
//! server's relay, a fresh WebRTC session after an outage). Each carrier is
//! reliable while it lives, but what was in flight on one that is dropped
//! is gone. So the sender keeps every chunk of a reliable channel until the
//! other side acknowledges it, and sends again, in order, whatever is
//! unacknowledged when the link changes carrier. The receiver accepts only
//! the chunk that comes next on its channel — chunks are identified by their
//! `(seq, index)` header — and drops repeats and anything early, so nothing
//! is lost, duplicated or reordered across a switch.
//!
//! Acknowledgements count accepted chunks per channel (cumulative). What the
//! sender keeps is bounded by the flow-control window.

use std::collections::VecDeque;

use super::{BASE_HEADER, LAST};

/// The sending side of the reliable channels of one link.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    channels: Vec<SendState>,
}

#[derive(Debug, Default)]
struct SendState {
    /// Chunks sent and not acknowledged, oldest first.
    unacked: VecDeque<Vec<u8>>,
    /// Chunks acknowledged so far (the count before `unacked[0]`).
    acked: u64,
    /// How many of `unacked` went out on the current carrier.
    sent_here: usize,
    /// Bytes held.
    held: usize,
}

impl Retained {
    fn channel(&mut self, slot: usize) -> &mut SendState {
        if self.channels.len() <= slot {
            self.channels.resize_with(slot + 1, SendState::default);
        }
        &mut self.channels[slot]
    }

    /// A new chunk went out on `slot` over the current carrier.
    pub(crate) fn sent(&mut self, slot: usize, chunk: Vec<u8>) {
        let ch = self.channel(slot);
        ch.held += chunk.len();
        ch.unacked.push_back(chunk);
        ch.sent_here += 1;
    }

    /// The other side accepted `count` chunks of `slot` in all. Counts that
    /// go back or beyond what was sent are ignored.
    pub(crate) fn ack(&mut self, slot: usize, count: u64) {
        let Some(ch) = self.channels.get_mut(slot) else { return };
        let Some(newly) = count.checked_sub(ch.acked) else { return };
        if newly > ch.unacked.len() as u64 {
            return;
        }
        for _ in 0..newly {
            if let Some(c) = ch.unacked.pop_front() {
                ch.held -= c.len();
            }
        }
        ch.acked = count;
        ch.sent_here = ch.sent_here.saturating_sub(newly as usize);
    }

    /// The link changed carrier: everything unacknowledged goes out again.
    pub(crate) fn rewind(&mut self) {
        for ch in &mut self.channels {
            ch.sent_here = 0;
        }
    }

    /// The next chunk to send again on the current carrier, if any: call
    /// [`Retained::resent`] once it is on its way.
    pub(crate) fn next_resend(&self) -> Option<(usize, &[u8])> {
        self.channels
            .iter()
            .enumerate()
            .find_map(|(slot, ch)| ch.unacked.get(ch.sent_here).map(|c| (slot, c.as_slice())))
    }

    /// The chunk from [`Retained::next_resend`] went out.
    pub(crate) fn resent(&mut self, slot: usize) {
        if let Some(ch) = self.channels.get_mut(slot) {
            ch.sent_here = (ch.sent_here + 1).min(ch.unacked.len());
        }
    }

    /// Bytes kept for sending again.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.channels.iter().map(|c| c.held).sum()
    }

    /// Chunks not yet acknowledged, all channels.
    #[cfg(test)]
    pub(crate) fn unacked(&self) -> usize {
        self.channels.iter().map(|c| c.unacked.len()).sum()
    }
}

/// The receiving side of the reliable channels of one link.
#[derive(Debug, Default)]
pub(crate) struct InOrder {
    channels: Vec<RecvState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct RecvState {
    /// `(seq, index)` of the chunk that comes next.
    next: (u32, u32),
    /// Chunks accepted in all.
    accepted: u64,
    /// `accepted` as last acknowledged.
    acked: u64,
}

/// What to do with a received chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The next one: deliver it.
    Accept,
    /// Seen before, or early (after a gap the sender will fill): drop it.
    Drop,
}

impl InOrder {
    /// Judges a chunk received on reliable channel `slot`. Chunks too short
    /// to have a header are accepted, for the framing to refuse.
    pub(crate) fn check(&mut self, slot: usize, chunk: &[u8]) -> Verdict {
        if chunk.len() < BASE_HEADER {
            return Verdict::Accept;
        }
        if self.channels.len() <= slot {
            self.channels.resize(slot + 1, RecvState::default());
        }
        let ch = &mut self.channels[slot];
        let seq = u32::from_le_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]);
        let index = u32::from_le_bytes([chunk[5], chunk[6], chunk[7], chunk[8]]);
        if (seq, index) != ch.next {
            return Verdict::Drop;
        }
        ch.next = if chunk[0] & LAST != 0 { (seq.wrapping_add(1), 0) } else { (seq, index.wrapping_add(1)) };
        ch.accepted += 1;
        Verdict::Accept
    }

    /// Acknowledgements owed: `(slot, count)` for every channel that accepted
    /// chunks since the last call.
    pub(crate) fn take_acks(&mut self) -> Vec<(usize, u64)> {
        let mut acks = Vec::new();
        for (slot, ch) in self.channels.iter_mut().enumerate() {
            if ch.accepted != ch.acked {
                ch.acked = ch.accepted;
                acks.push((slot, ch.accepted));
            }
        }
        acks
    }

    /// Every channel's count again (after a carrier change, when earlier
    /// acknowledgements may have been lost with the old carrier).
    pub(crate) fn all_acks(&mut self) -> Vec<(usize, u64)> {
        for ch in &mut self.channels {
            ch.acked = ch.accepted;
        }
        self.channels.iter().enumerate().filter(|(_, c)| c.accepted > 0).map(|(s, c)| (s, c.accepted)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{Inbox, OutMessage, Outbox};
    use bytes::Bytes;

    fn chunks(n: u32) -> Vec<Vec<u8>> {
        let mut out = Outbox::new(false);
        out.add_channel(0, false);
        for i in 0..n {
            out.push(0, OutMessage::data(Bytes::from(vec![i as u8; 100])));
        }
        let mut all = Vec::new();
        while let Some(c) = crate::framing::send::tests::take(&mut out, 60, |_, _| true) {
            all.push(c.bytes);
        }
        all
    }

    #[test]
    fn repeats_and_early_chunks_are_dropped_and_acks_count_accepted_ones() {
        let all = chunks(3);
        assert!(all.len() > 3, "messages span several chunks");
        let mut rx = InOrder::default();
        assert_eq!(rx.check(0, &all[1]), Verdict::Drop, "early");
        assert_eq!(rx.check(0, &all[0]), Verdict::Accept);
        assert_eq!(rx.check(0, &all[0]), Verdict::Drop, "repeat");
        assert_eq!(rx.check(0, &all[1]), Verdict::Accept);
        assert_eq!(rx.take_acks(), vec![(0, 2)]);
        assert!(rx.take_acks().is_empty());
        for c in &all[2..] {
            assert_eq!(rx.check(0, c), Verdict::Accept);
        }
        assert_eq!(rx.all_acks(), vec![(0, all.len() as u64)]);
    }

    #[test]
    fn a_switch_mid_stream_delivers_every_message_once_in_order() {
        let all = chunks(20);
        let mut tx = Retained::default();
        let mut rx = InOrder::default();
        let mut inbox = Inbox::new(1 << 20, 4 * (1 << 20), false);
        inbox.add_channel(0, true);
        let mut got = Vec::new();
        let mut deliver = |rx: &mut InOrder, c: &[u8], got: &mut Vec<u8>| {
            if rx.check(0, c) == Verdict::Accept
                && let Some(m) = inbox.push(0, c, false).expect("valid chunk")
            {
                got.push(m.data[0]);
            }
        };
        // The first carrier takes ten chunks; the receiver hears six of
        // them and acknowledges four before the carrier dies.
        for c in &all[..10] {
            tx.sent(0, c.clone());
        }
        for c in &all[..6] {
            deliver(&mut rx, c, &mut got);
        }
        tx.ack(0, 4);
        assert_eq!(tx.unacked(), 6);
        // The new carrier first carries everything unacknowledged, then new chunks.
        tx.rewind();
        while let Some((slot, c)) = tx.next_resend() {
            let c = c.to_vec();
            deliver(&mut rx, &c, &mut got);
            tx.resent(slot);
        }
        for c in &all[10..] {
            tx.sent(0, c.clone());
            deliver(&mut rx, c, &mut got);
        }
        // A late chunk of the dead carrier changes nothing.
        deliver(&mut rx, &all[7], &mut got);
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
        let acks = rx.take_acks();
        tx.ack(0, acks[0].1);
        assert_eq!((tx.unacked(), tx.held()), (0, 0));
    }

    #[test]
    fn bogus_acks_are_ignored() {
        let all = chunks(2);
        let mut tx = Retained::default();
        for c in &all {
            tx.sent(0, c.clone());
        }
        tx.ack(0, 100);
        tx.ack(7, 1);
        assert_eq!(tx.unacked(), all.len());
        tx.ack(0, 1);
        tx.ack(0, 0);
        assert_eq!(tx.unacked(), all.len() - 1);
    }
}
