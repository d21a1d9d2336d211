//! The read gate: a connection's reading, stopped and resumed by someone other than its handler.
//!
//! Why apart from [`Conn::mute`](crate::Conn::mute): the handler's mute is the handler's own
//! decision (one request at a time, a paused upload). An ingress discipline
//! ([`crate::ingress`]) decides for many connections at once, from the consumer's side, when
//! a peer has too much in flight or has used up its rate. Two owners of one flag would undo
//! each other's decisions, so the discipline gets a gate of its own: the connection reads and
//! delivers only while the handler has not muted it *and* the gate is open.
//!
//! The gate's state is one atomic word, so whoever decides (under the ingress's lock, in step
//! with its accounting) sets it at once, and the connection reads it before each delivery and
//! each read: a peer is stopped at the very frame that took it over its budget. Opening from
//! outside also wakes the connection with a message (never muting the opener); a gate closed
//! until an instant is reopened by the connection's own timer.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// The state word: open, closed until opened, or closed until `base + n` nanoseconds.
const OPEN: u64 = 0;
const CLOSED: u64 = u64::MAX;

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Open,
    /// Until [`ReadGate::open`].
    Closed,
    /// Until this instant (then open by itself).
    Until(Instant),
}

/// Wakes the connection after its gate opened.
type Wake = Box<dyn Fn() + Send + Sync>;

pub(crate) struct ReadGate {
    state: AtomicU64,
    base: Instant,
    wake: Wake,
}

impl ReadGate {
    pub(crate) fn new(wake: Wake) -> Self {
        ReadGate {
            state: AtomicU64::new(OPEN),
            base: Instant::now(),
            wake,
        }
    }

    /// Opens the gate; wakes the connection if it was closed.
    pub(crate) fn open(&self) {
        if self.state.swap(OPEN, SeqCst) != OPEN {
            (self.wake)();
        }
    }

    /// Closes it until [`open`](ReadGate::open).
    pub(crate) fn close(&self) {
        self.state.store(CLOSED, SeqCst);
    }

    /// Closes it until `at`; the connection reopens it then.
    pub(crate) fn close_until(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.base).as_nanos();
        let word = u64::try_from(nanos)
            .unwrap_or(CLOSED - 1)
            .clamp(1, CLOSED - 1);
        self.state.store(word, SeqCst);
    }

    /// The gate now (a deadline that has passed counts as open).
    pub(crate) fn at(&self, now: Instant) -> Gate {
        match self.state.load(SeqCst) {
            OPEN => Gate::Open,
            CLOSED => Gate::Closed,
            nanos => {
                let until = self.base + Duration::from_nanos(nanos);
                if until <= now {
                    Gate::Open
                } else {
                    Gate::Until(until)
                }
            }
        }
    }
}

impl std::fmt::Debug for ReadGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGate")
            .field("state", &self.at(Instant::now()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn opening_a_closed_gate_wakes_once_and_deadlines_open_by_themselves() {
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let gate = ReadGate::new(Box::new(move || {
            w.fetch_add(1, SeqCst);
        }));
        let now = Instant::now();
        assert_eq!(gate.at(now), Gate::Open);
        gate.open();
        assert_eq!(woken.load(SeqCst), 0, "already open: nobody to wake");
        gate.close();
        assert_eq!(gate.at(now), Gate::Closed);
        gate.open();
        assert_eq!(woken.load(SeqCst), 1);
        let later = now + Duration::from_millis(50);
        gate.close_until(later);
        assert!(matches!(gate.at(now), Gate::Until(_)));
        assert_eq!(gate.at(later + Duration::from_nanos(1)), Gate::Open);
    }
}
