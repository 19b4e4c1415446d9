//! The link state machine: which states a link passes through, which moves
//! are allowed, and the history of the moves made.

use std::collections::VecDeque;
use std::fmt;
use web_time::Instant;

/// Where a link to one remote peer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkState {
    /// Created; nothing exchanged yet.
    New,
    /// Offer and answer are being exchanged through signaling.
    Signaling,
    /// Descriptions agreed; ICE, DTLS and SCTP are coming up.
    Connecting,
    /// Channels are open and carry data.
    Connected,
    /// The path stopped answering; the link is trying to get it back.
    Reconnecting,
    /// Closed on purpose by either side (final).
    Closed,
    /// Gave up: no path, or a protocol failure (final).
    Failed,
}

impl LinkState {
    /// Whether no move leaves this state.
    pub fn is_final(self) -> bool {
        matches!(self, LinkState::Closed | LinkState::Failed)
    }

    /// Whether the machine may move from `self` to `to`.
    pub fn may_move_to(self, to: LinkState) -> bool {
        use LinkState::*;
        match (self, to) {
            (from, Closed | Failed) => !from.is_final(),
            (New, Signaling) => true,
            (Signaling, Connecting) => true,
            (Connecting, Connected) => true,
            (Connected, Reconnecting) => true,
            (Reconnecting, Connected | Connecting) => true,
            _ => false,
        }
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LinkState::New => "new",
            LinkState::Signaling => "signaling",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Reconnecting => "reconnecting",
            LinkState::Closed => "closed",
            LinkState::Failed => "failed",
        };
        f.write_str(name)
    }
}

/// A move the machine refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("link cannot move from {from} to {to}")]
pub struct InvalidTransition {
    /// The current state.
    pub from: LinkState,
    /// The state asked for.
    pub to: LinkState,
}

/// Most moves kept in the history.
const HISTORY: usize = 32;

/// The state, enforced transitions and a bounded history.
#[derive(Debug)]
pub(crate) struct StateMachine {
    state: LinkState,
    history: VecDeque<(Instant, LinkState)>,
}

impl StateMachine {
    /// A machine in `New` since `now`.
    pub(crate) fn new(now: Instant) -> Self {
        let mut history = VecDeque::with_capacity(8);
        history.push_back((now, LinkState::New));
        StateMachine { state: LinkState::New, history }
    }

    /// The current state.
    pub(crate) fn state(&self) -> LinkState {
        self.state
    }

    /// The moves made, oldest first (the last [`HISTORY`] of them).
    pub(crate) fn history(&self) -> impl Iterator<Item = &(Instant, LinkState)> {
        self.history.iter()
    }

    /// Moves to `to`, or says why not. Moving to the current state is a no-op
    /// that returns `Ok(false)`.
    pub(crate) fn move_to(&mut self, now: Instant, to: LinkState) -> Result<bool, InvalidTransition> {
        if self.state == to {
            return Ok(false);
        }
        if !self.state.may_move_to(to) {
            return Err(InvalidTransition { from: self.state, to });
        }
        self.state = to;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((now, to));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn happy_path_and_history() {
        let t0 = Instant::now();
        let mut m = StateMachine::new(t0);
        for (i, s) in [LinkState::Signaling, LinkState::Connecting, LinkState::Connected].into_iter().enumerate() {
            assert_eq!(m.move_to(t0 + Duration::from_millis(i as u64 + 1), s), Ok(true));
        }
        assert_eq!(m.move_to(t0, LinkState::Connected), Ok(false));
        let states: Vec<LinkState> = m.history().map(|(_, s)| *s).collect();
        assert_eq!(states, [LinkState::New, LinkState::Signaling, LinkState::Connecting, LinkState::Connected]);
    }

    #[test]
    fn forbidden_moves_are_refused() {
        let t0 = Instant::now();
        let mut m = StateMachine::new(t0);
        let err = m.move_to(t0, LinkState::Connected).expect_err("cannot skip signaling");
        assert_eq!(err, InvalidTransition { from: LinkState::New, to: LinkState::Connected });
        assert_eq!(m.move_to(t0, LinkState::Failed), Ok(true));
        assert!(m.move_to(t0, LinkState::Closed).is_err(), "final states stay final");
        assert!(m.move_to(t0, LinkState::Signaling).is_err());
        assert_eq!(m.state(), LinkState::Failed);
    }

    #[test]
    fn history_is_bounded() {
        let t0 = Instant::now();
        let mut m = StateMachine::new(t0);
        m.move_to(t0, LinkState::Signaling).expect("ok");
        m.move_to(t0, LinkState::Connecting).expect("ok");
        m.move_to(t0, LinkState::Connected).expect("ok");
        for _ in 0..100 {
            m.move_to(t0, LinkState::Reconnecting).expect("ok");
            m.move_to(t0, LinkState::Connected).expect("ok");
        }
        assert_eq!(m.history().count(), HISTORY);
    }
}
