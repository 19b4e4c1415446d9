//! The transfer of one link over whatever carries it, sans-IO: chunking
//! and reassembly, credit flow control, acknowledgements and probes
//! (protocol.md §19.4–19.5), or, in raw mode, one message per data-channel
//! message with none of that.
//!
//! The link core drives a [`Transfer`] for both backends: it hands in what
//! the carrier received and the time, writes what [`Transfer::pump`] and
//! [`Transfer::poll_control`] give out to the carrier (WebRTC data
//! channels or the server relay), and calls [`Transfer::handle_timeout`] at
//! [`Transfer::poll_timeout`]. It never reads a clock or touches a channel
//! itself, so it is tested on a virtual clock.

use std::collections::VecDeque;
use std::time::Duration;

use web_time::Instant;

use super::Quality;
use super::control::Control;
use super::quality::{self, QualityMeter};
use crate::channel::{ChannelConfig, Compression};
use crate::framing::{Delivered, FrameError, InOrder, Inbox, OutMessage, Outbox, Retained, Verdict};

/// Longest wait before acknowledging received chunks.
pub(crate) const ACK_DELAY: Duration = Duration::from_millis(50);

/// Which internal channel a control message goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// `switchboard-control`: reliable, ordered.
    Control,
    /// `switchboard-probe`: unordered, never retransmitted.
    Probe,
}

/// Where chunks go: the data channels of a WebRTC session, or the server relay.
pub(crate) trait Wire {
    /// Whether channel `slot` takes chunks now (open); a closed one's
    /// messages wait while the others go.
    fn open(&self, slot: usize) -> bool;
    /// Writes one chunk on channel `slot` (`text`: a raw-mode text
    /// message); `false` when the channel cannot take it now (its buffer is
    /// full, or the relay's pace says wait).
    fn write(&mut self, slot: usize, chunk: &[u8], text: bool) -> bool;
}

/// Figures the application sees in [`LinkStats`](super::LinkStats).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Counters {
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) messages_received: u64,
}

/// The transfer of one link.
pub(crate) struct Transfer {
    /// One message per data-channel message: no framing, credit,
    /// acknowledgements or probes.
    raw: bool,
    reliable: Vec<bool>,
    outbox: Outbox,
    inbox: Inbox,
    retained: Retained,
    in_order: InOrder,
    window: u64,
    chunk_size: usize,
    /// Reliable chunk bytes sent, and how far the other side lets us go.
    sent_reliable: u64,
    peer_limit: u64,
    /// Reliable chunk bytes received, and the credit granted for them.
    recv_reliable: u64,
    granted: u64,
    ack_at: Option<Instant>,
    next_ping: Option<Instant>,
    meter: QualityMeter,
    counters: Counters,
    out: VecDeque<(Lane, Vec<u8>)>,
    /// Complete messages the application has no room for yet, as they came
    /// (compressed ones stay compressed), and their bytes.
    ready: VecDeque<Delivered>,
    ready_bytes: usize,
    max_message: usize,
}

/// Raw mode has no credit: once this many windows of messages wait unread,
/// the link ends rather than hold more.
const RAW_UNREAD_WINDOWS: usize = 2;

impl Transfer {
    /// A transfer over `channels` (slot `n` is the `n`-th), accepting
    /// messages up to `max_message` bytes, with a flow-control `window` and
    /// chunks of at most `chunk_size` bytes; `raw` for standard WebRTC peers.
    pub(crate) fn new(
        channels: &[ChannelConfig],
        raw: bool,
        max_message: usize,
        window: usize,
        chunk_size: usize,
    ) -> Self {
        let mut transfer = Transfer {
            raw,
            reliable: Vec::new(),
            outbox: Outbox::new(raw),
            inbox: Inbox::new(max_message, max_message.saturating_add(window.saturating_mul(2)), raw),
            retained: Retained::default(),
            in_order: InOrder::default(),
            window: window as u64,
            chunk_size,
            sent_reliable: 0,
            peer_limit: window as u64,
            recv_reliable: 0,
            granted: 0,
            ack_at: None,
            next_ping: None,
            meter: QualityMeter::default(),
            counters: Counters::default(),
            out: VecDeque::new(),
            ready: VecDeque::new(),
            ready_bytes: 0,
            max_message,
        };
        transfer.outbox.set_start_budget(window);
        for (slot, c) in channels.iter().enumerate() {
            transfer.add_channel(slot, c);
        }
        transfer
    }

    /// Adds channel `slot` (the next one): one the other side opened in band.
    pub(crate) fn add_channel(&mut self, slot: usize, config: &ChannelConfig) {
        self.outbox.add_channel(slot, config.compression != Compression::None);
        self.inbox.add_channel(slot, config.is_reliable());
        if self.reliable.len() <= slot {
            self.reliable.resize(slot + 1, true);
        }
        self.reliable[slot] = config.is_reliable();
    }

    /// Largest chunk.
    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Sets the largest chunk.
    pub(crate) fn set_chunk_size(&mut self, chunk_size: usize) {
        self.chunk_size = chunk_size;
    }

    /// Drops what is queued on `slot` (its channel closed for good); returns the bytes freed.
    pub(crate) fn clear(&mut self, slot: usize) -> usize {
        self.outbox.clear(slot)
    }

    /// Queues a message on `slot`.
    pub(crate) fn send(&mut self, slot: usize, msg: OutMessage) {
        self.counters.messages_sent += 1;
        self.counters.bytes_sent += msg.data.len() as u64;
        self.outbox.push(slot, msg);
    }

    /// Message bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.outbox.queued()
    }

    /// Chunks wait to be written: new ones, or ones to send again.
    pub(crate) fn pending(&self) -> bool {
        !self.outbox.is_empty() || self.retained.next_resend().is_some()
    }

    /// Partial messages dropped on unreliable channels.
    pub(crate) fn dropped_partials(&self) -> u64 {
        self.inbox.dropped()
    }

    /// Traffic so far.
    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    /// Smoothed round trip of the probes.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.meter.rtt()
    }

    /// Share of probes lost recently.
    pub(crate) fn loss(&self, now: Instant) -> Option<f32> {
        self.meter.loss(now)
    }

    /// The quality level so far.
    pub(crate) fn quality(&self) -> Option<Quality> {
        self.meter.level()
    }

    /// The link's channels are open at `now`: probes start, and (after a
    /// carrier change, `again`) what was not acknowledged goes again, with
    /// this side's credit and acknowledgements.
    pub(crate) fn carrier_up(&mut self, now: Instant, again: bool) {
        if self.raw {
            return;
        }
        self.next_ping = Some(now);
        if again {
            self.retained.rewind();
            self.out.push_back((Lane::Control, Control::Credit(self.granted).encode()));
            self.queue_acks(true);
        }
    }

    /// A chunk arrived on `slot`; a message it completes waits in
    /// [`Self::next_message`]. `app_full`: the application has more than
    /// half a window unread, so no credit is granted and unreliable chunks
    /// are dropped. A chunk that breaks the framing rules or the credit is
    /// an error (the link must end); on unreliable channels a bad chunk is
    /// dropped instead.
    pub(crate) fn receive_chunk(
        &mut self,
        now: Instant,
        slot: usize,
        chunk: &[u8],
        text: bool,
        app_full: bool,
    ) -> Result<(), FrameError> {
        let reliable = self.reliable.get(slot).copied().unwrap_or(false);
        if !reliable && app_full {
            return Ok(());
        }
        if self.raw {
            if let Some(msg) = self.inbox.push(slot, chunk, text)? {
                self.hold(msg);
            }
            let limit = self.window as usize * RAW_UNREAD_WINDOWS;
            if self.ready_bytes > limit {
                return Err(FrameError::Unread(self.ready_bytes));
            }
            return Ok(());
        }
        if reliable {
            self.ack_at.get_or_insert(now + ACK_DELAY);
            if self.in_order.check(slot, chunk) == Verdict::Drop {
                return Ok(());
            }
            self.recv_reliable += chunk.len() as u64;
            let allowed = self.granted + self.window;
            if self.recv_reliable > allowed {
                return Err(FrameError::OverCredit { received: self.recv_reliable, allowed });
            }
        }
        let delivered = match self.inbox.push(slot, chunk, false) {
            Ok(d) => d,
            Err(e) if reliable => return Err(e),
            Err(_) => return Ok(()),
        };
        if let Some(msg) = delivered {
            self.hold(msg);
        }
        if reliable {
            self.grant(false, app_full);
        }
        Ok(())
    }

    fn hold(&mut self, msg: Delivered) {
        self.ready_bytes += msg.data.len();
        self.ready.push_back(msg);
    }

    /// The next complete message, decompressed, unless the application is
    /// behind (`app_full`); an error when a compressed one does not decode.
    pub(crate) fn next_message(&mut self, app_full: bool) -> Option<Result<Delivered, FrameError>> {
        if app_full {
            return None;
        }
        let msg = self.ready.pop_front()?;
        self.ready_bytes -= msg.data.len();
        let msg = msg.unpack(self.max_message);
        if let Ok(msg) = &msg {
            self.counters.messages_received += 1;
            self.counters.bytes_received += msg.data.len() as u64;
        }
        Some(msg)
    }

    /// Whether complete messages wait for room.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Grants credit for what arrived, unless the application is behind
    /// (`app_full`); without `force`, only once an eighth of the window
    /// is owed.
    pub(crate) fn grant(&mut self, force: bool, app_full: bool) {
        if self.raw {
            return;
        }
        let pending = self.recv_reliable - self.granted;
        if app_full || pending == 0 || (!force && pending < self.window / 8) {
            return;
        }
        self.granted = self.recv_reliable;
        self.out.push_back((Lane::Control, Control::Credit(self.granted).encode()));
        self.queue_acks(false);
    }

    /// A message on the control channel.
    pub(crate) fn receive_control(&mut self, msg: &[u8]) {
        match Control::decode(msg) {
            Some(Control::Credit(value)) => {
                self.peer_limit = self.peer_limit.max(value.saturating_add(self.window));
            }
            Some(Control::Ack { slot, count }) => self.retained.ack(usize::from(slot), count),
            _ => {}
        }
    }

    /// A message on the probe channel: a ping is answered, a pong measured.
    pub(crate) fn receive_probe(&mut self, now: Instant, msg: &[u8]) {
        match Control::decode(msg) {
            Some(Control::Ping(nonce)) => self.out.push_back((Lane::Probe, Control::Pong(nonce).encode())),
            Some(Control::Pong(nonce)) => {
                self.meter.echoed(nonce, now);
            }
            _ => {}
        }
    }

    /// Does what is due at `now`: acknowledgements, the next probe. Returns
    /// the quality level when it changed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Quality> {
        if self.ack_at.is_some_and(|t| t <= now) {
            self.queue_acks(false);
        }
        if self.next_ping.is_some_and(|t| t <= now) {
            self.next_ping = Some(now + quality::PROBE_INTERVAL);
            let nonce = self.meter.probe(now);
            self.out.push_back((Lane::Probe, Control::Ping(nonce).encode()));
            return self.meter.changed(now);
        }
        None
    }

    /// When [`Self::handle_timeout`] has something to do.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.ack_at, self.next_ping) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    /// The next control or probe message to write.
    pub(crate) fn poll_control(&mut self) -> Option<(Lane, Vec<u8>)> {
        self.out.pop_front()
    }

    /// Moves chunks onto `wire` while it takes them and credit allows:
    /// first what must go again, then new chunks. Returns whether anything
    /// moved.
    pub(crate) fn pump(&mut self, wire: &mut impl Wire) -> bool {
        let mut moved = false;
        while let Some((slot, chunk)) = self.retained.next_resend() {
            if !wire.write(slot, chunk, false) {
                return moved;
            }
            self.retained.resent(slot);
            moved = true;
        }
        while !self.outbox.is_empty() {
            let credit = self.peer_limit.saturating_sub(self.sent_reliable);
            let (reliable, raw) = (&self.reliable, self.raw);
            let admit = |slot: usize, len: usize| {
                (raw || !reliable.get(slot).copied().unwrap_or(true) || len as u64 <= credit) && wire.open(slot)
            };
            let Some(chunk) = self.outbox.next_chunk(self.chunk_size, admit) else { break };
            if !wire.write(chunk.slot, &chunk.bytes, chunk.text) {
                break;
            }
            moved = true;
            self.outbox.commit(&chunk);
            if !raw && self.reliable.get(chunk.slot).copied().unwrap_or(false) {
                self.sent_reliable += chunk.bytes.len() as u64;
                self.retained.sent(chunk.slot, chunk.bytes);
            }
        }
        moved
    }

    fn queue_acks(&mut self, all: bool) {
        self.ack_at = None;
        let acks = if all { self.in_order.all_acks() } else { self.in_order.take_acks() };
        for (slot, count) in acks {
            let slot = u16::try_from(slot).unwrap_or(u16::MAX);
            self.out.push_back((Lane::Control, Control::Ack { slot, count }.encode()));
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::channel::Compression;

    /// A wire that holds at most `room` chunks until the test drains it.
    struct Pipe {
        room: usize,
        chunks: Vec<(usize, Vec<u8>)>,
    }

    impl Wire for Pipe {
        fn open(&self, _slot: usize) -> bool {
            true
        }

        fn write(&mut self, slot: usize, chunk: &[u8], _text: bool) -> bool {
            if self.chunks.len() >= self.room {
                return false;
            }
            self.chunks.push((slot, chunk.to_vec()));
            true
        }
    }

    fn pair(window: usize) -> (Transfer, Transfer) {
        let channels = [ChannelConfig::reliable("r"), ChannelConfig::unreliable("u")];
        (Transfer::new(&channels, false, 1 << 20, window, 1000), Transfer::new(&channels, false, 1 << 20, window, 1000))
    }

    /// Takes a chunk and the message it completes, with the application keeping up.
    fn receive(t: &mut Transfer, now: Instant, slot: usize, chunk: &[u8]) -> Result<Option<Delivered>, FrameError> {
        t.receive_chunk(now, slot, chunk, false, false)?;
        t.next_message(false).transpose()
    }

    /// Carries control messages from `from` to `to`.
    fn deliver_control(now: Instant, from: &mut Transfer, to: &mut Transfer) {
        while let Some((lane, msg)) = from.poll_control() {
            match lane {
                Lane::Control => to.receive_control(&msg),
                Lane::Probe => to.receive_probe(now, &msg),
            }
        }
    }

    #[test]
    fn a_large_message_crosses_in_chunks_within_credit() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(4000);
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        a.send(0, OutMessage::data(Bytes::from(data.clone())));
        let mut got = None;
        let mut now = t0;
        for _ in 0..100 {
            let mut wire = Pipe { room: usize::MAX, chunks: Vec::new() };
            a.pump(&mut wire);
            assert!(
                wire.chunks.iter().map(|(_, c)| c.len()).sum::<usize>() <= 4000,
                "a round never exceeds the window"
            );
            for (slot, chunk) in wire.chunks {
                if let Some(d) = receive(&mut b, now, slot, &chunk).expect("valid chunk") {
                    got = Some(d);
                }
            }
            now += ACK_DELAY;
            b.handle_timeout(now);
            b.grant(true, false);
            deliver_control(now, &mut b, &mut a);
            if got.is_some() {
                break;
            }
        }
        let got = got.expect("the message arrives");
        assert_eq!(got.data.as_ref(), data.as_slice());
        assert_eq!(b.counters().messages_received, 1);
        assert_eq!(a.queued(), 0);
    }

    #[test]
    fn a_full_wire_holds_chunks_back_until_it_drains() {
        let (mut a, _) = pair(1 << 20);
        a.send(0, OutMessage::data(Bytes::from(vec![7u8; 5000])));
        let mut wire = Pipe { room: 2, chunks: Vec::new() };
        assert!(a.pump(&mut wire));
        assert_eq!(wire.chunks.len(), 2);
        assert!(a.queued() > 0, "the rest waits");
        wire.room = usize::MAX;
        assert!(a.pump(&mut wire));
        assert_eq!(a.queued(), 0);
    }

    #[test]
    fn what_was_not_acknowledged_goes_again_after_a_carrier_change() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(1 << 20);
        for i in 0..3u8 {
            a.send(0, OutMessage::data(Bytes::from(vec![i; 10])));
        }
        let mut lost = Pipe { room: usize::MAX, chunks: Vec::new() };
        a.pump(&mut lost);
        // Only the first chunk arrives; the carrier dies with the rest.
        receive(&mut b, t0, 0, &lost.chunks[0].1).expect("valid");
        b.handle_timeout(t0 + ACK_DELAY);
        deliver_control(t0, &mut b, &mut a);
        a.carrier_up(t0, true);
        let mut again = Pipe { room: usize::MAX, chunks: Vec::new() };
        a.pump(&mut again);
        assert_eq!(again.chunks.len(), 2, "the acknowledged chunk is not sent again");
        let got: Vec<u8> = again
            .chunks
            .iter()
            .filter_map(|(s, c)| receive(&mut b, t0, *s, c).expect("valid"))
            .map(|d| d.data[0])
            .collect();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn probes_measure_the_round_trip_on_a_virtual_clock() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(1 << 20);
        a.carrier_up(t0, false);
        assert_eq!(a.poll_timeout(), Some(t0));
        let mut now = t0;
        let mut reported = None;
        for _ in 0..10 {
            reported = a.handle_timeout(now).or(reported);
            let (lane, ping) = a.poll_control().expect("a ping");
            assert_eq!(lane, Lane::Probe);
            b.receive_probe(now, &ping);
            let (_, pong) = b.poll_control().expect("a pong");
            a.receive_probe(now + Duration::from_millis(40), &pong);
            now = a.poll_timeout().expect("next probe");
        }
        let rtt = a.rtt().expect("measured");
        assert!((Duration::from_millis(35)..=Duration::from_millis(45)).contains(&rtt), "{rtt:?}");
        assert_eq!(a.quality(), Some(Quality::Excellent));
        assert_eq!(reported, Some(Quality::Excellent), "the level is reported once known");
        assert_eq!(a.loss(now), Some(0.0), "every probe came back");
    }

    #[test]
    fn pending_counts_new_chunks_and_chunks_to_send_again() {
        let (mut a, _) = pair(1 << 20);
        assert!(!a.pending());
        a.send(0, OutMessage::data(Bytes::from(vec![1u8; 100])));
        assert!(a.pending(), "a new message waits");
        let mut wire = Pipe { room: 10, chunks: Vec::new() };
        assert!(a.pump(&mut wire));
        assert!(!a.pending(), "written, waiting only for its acknowledgement");
        a.carrier_up(Instant::now(), true);
        assert!(a.pending(), "after a carrier change the unacknowledged chunk goes again");
        assert!(a.pump(&mut wire));
        assert_eq!(wire.chunks.len(), 2);
        assert_eq!(wire.chunks[0], wire.chunks[1], "the same chunk went again");
    }

    #[test]
    fn a_broken_chunk_is_an_error_on_a_reliable_channel_and_dropped_on_an_unreliable_one() {
        let (_, mut b) = pair(1 << 20);
        let now = Instant::now();
        assert!(b.receive_chunk(now, 0, &[1, 2], false, false).is_err());
        assert_eq!(receive(&mut b, now, 1, &[1, 2]), Ok(None));
        assert_eq!(b.dropped_partials(), 1, "the unreliable channel counts what it dropped");
    }

    #[test]
    fn a_behind_application_gets_no_credit_granted() {
        let (mut a, mut b) = pair(8000);
        a.send(0, OutMessage::data(Bytes::from(vec![1u8; 3000])));
        let mut wire = Pipe { room: usize::MAX, chunks: Vec::new() };
        a.pump(&mut wire);
        let now = Instant::now();
        for (s, c) in &wire.chunks {
            b.receive_chunk(now, *s, c, false, true).expect("valid");
        }
        b.grant(true, true);
        assert!(b.poll_control().is_none(), "no credit while the application is behind");
        b.grant(true, false);
        let (lane, msg) = b.poll_control().expect("credit once it caught up");
        assert_eq!(lane, Lane::Control);
        assert!(matches!(Control::decode(&msg), Some(Control::Credit(n)) if n > 3000));
    }

    /// Sends everything `a` has for `b` in one go, as a sender that ignores credit would.
    fn flood(a: &mut Transfer) -> Vec<(usize, Vec<u8>)> {
        let mut wire = Pipe { room: usize::MAX, chunks: Vec::new() };
        a.pump(&mut wire);
        wire.chunks
    }

    #[test]
    fn a_peer_that_sends_beyond_its_credit_is_cut_off() {
        let channels = [ChannelConfig::reliable("r")];
        // The sender believes in a window 100 times larger than the receiver's.
        let mut a = Transfer::new(&channels, false, 1 << 20, 400_000, 1000);
        let mut b = Transfer::new(&channels, false, 1 << 20, 4000, 1000);
        for _ in 0..50 {
            a.send(0, OutMessage::data(Bytes::from(vec![9u8; 900])));
        }
        let now = Instant::now();
        let mut result = Ok(());
        let mut received = 0;
        for (slot, chunk) in flood(&mut a) {
            result = b.receive_chunk(now, slot, &chunk, false, true);
            if result.is_err() {
                break;
            }
            received += chunk.len();
        }
        assert!(received <= 4000, "no more than the window is taken: {received}");
        assert!(matches!(result, Err(FrameError::OverCredit { allowed: 4000, .. })), "{result:?}");
    }

    #[test]
    fn compressed_messages_wait_compressed_until_the_application_reads() {
        let channels = [ChannelConfig::reliable("r").compression(Compression::Lz4)];
        let mut a = Transfer::new(&channels, false, 64 << 20, 1 << 20, 16 << 10);
        let mut b = Transfer::new(&channels, false, 64 << 20, 1 << 20, 16 << 10);
        // Bombs: 8 MiB of zeros each, some 32 KiB on the wire.
        for _ in 0..16 {
            a.send(0, OutMessage::data(Bytes::from(vec![0u8; 8 << 20])));
        }
        let now = Instant::now();
        let chunks = flood(&mut a);
        let wire: usize = chunks.iter().map(|(_, c)| c.len()).sum();
        assert!(wire < 1 << 20, "within the window: {wire} bytes");
        for (slot, chunk) in &chunks {
            b.receive_chunk(now, *slot, chunk, false, true).expect("within credit");
        }
        assert!(b.has_ready());
        assert!(b.ready_bytes <= wire, "held as they came: {} bytes", b.ready_bytes);
        assert!(b.next_message(true).is_none(), "nothing is unpacked while the application is behind");
        let first = b.next_message(false).expect("a message").expect("decodes");
        assert_eq!(first.data.len(), 8 << 20);
        assert!(first.data.iter().all(|&x| x == 0));
        assert_eq!(b.counters().messages_received, 1, "counted once read");
    }

    #[test]
    fn raw_messages_that_wait_unread_past_two_windows_end_the_link() {
        let channels = [ChannelConfig::reliable("r"), ChannelConfig::unreliable("u")];
        let mut b = Transfer::new(&channels, true, 64 << 10, 100_000, 1000);
        let now = Instant::now();
        let chunk = vec![1u8; 10_000];
        for _ in 0..100 {
            b.receive_chunk(now, 1, &chunk, false, true).expect("unreliable messages are dropped while behind");
        }
        assert!(!b.has_ready());
        let mut result = Ok(());
        for _ in 0..21 {
            result = b.receive_chunk(now, 0, &chunk, false, true);
        }
        assert_eq!(result, Err(FrameError::Unread(210_000)));
    }
}
