//! The per-actor state word that muting is built on.
//!
//! One `AtomicU64` per actor holds every flag that other threads act on:
//!
//! | bits | meaning |
//! |------|---------|
//! | `STOPPED` | the actor has stopped: sends fail and return the message |
//! | `OVERLOADED` | its backlog crossed the high watermark and has not fallen to the low one |
//! | `PRESSURED` | it applied backpressure (`rein-backpressure`) and has not released it |
//! | `PARKED` | it is muted and not scheduled until every receiver it waits on recovers |
//! | `OWN_WATERMARKS` | it set its own backlog watermarks (never cleared; not blocking) |
//! | `count << 8` | on how many receivers it is currently muted |
//!
//! An actor is *blocking* (senders to it get muted) while any of `OVERLOADED`, `PRESSURED`,
//! `PARKED` is set. Keeping all of them in one word gives every transition a single place in
//! the modification order, which is what makes the unmute rule race-free:
//!
//! * whoever performs the read-modify-write that takes an actor from blocking to not blocking
//!   must then lock that actor's muted-senders list and unmute everyone in it;
//! * a sender registers itself in a receiver's list only while holding that lock *and* after
//!   re-reading the word and finding the receiver still blocking.
//!
//! Either the registration's critical section comes first (the unblocker finds the sender in the
//! list) or the unblocking RMW happens-before the registration's re-read (the sender sees the
//! receiver recovered and does not mute). No sender is ever left muted on a receiver that has
//! recovered, and unmuting costs O(muted senders), with no broadcast to other workers.
//!
//! Parking has its own small handshake because a sender registers while its turn is still
//! running: [`MuteWord::try_park`] and [`MuteWord::unmute_one`] decide by compare-and-swap which
//! of the two reschedules the actor, so it is scheduled exactly once. The protocol built on this
//! word lives in [`crate::muting`], whose loom models check it.

use crate::sync::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, SeqCst};

pub(crate) const STOPPED: u64 = 1;
pub(crate) const OVERLOADED: u64 = 1 << 1;
pub(crate) const PRESSURED: u64 = 1 << 2;
pub(crate) const PARKED: u64 = 1 << 3;
/// The actor has its own backlog watermarks (in its extras) instead of the runtime's.
pub(crate) const OWN_WATERMARKS: u64 = 1 << 4;
const BLOCKING: u64 = OVERLOADED | PRESSURED | PARKED;
const MUTE_ONE: u64 = 1 << 8;
const FLAGS: u64 = MUTE_ONE - 1;

/// Whether an actor in `word` mutes those who send to it. A stopped actor never does, whatever
/// flag a racing sender left on it.
#[inline]
pub(crate) const fn is_blocking(word: u64) -> bool {
    word & BLOCKING != 0 && word & STOPPED == 0
}

/// How many receivers an actor in `word` is muted on.
#[inline]
pub(crate) const fn mute_count(word: u64) -> u64 {
    word >> 8
}

/// What an unmute did to the muted actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmuted {
    /// The actor was parked and this was its last mute: the caller must schedule it, and if it
    /// no longer blocks, unmute the actors muted on it (`now_unblocked`).
    Resume { now_unblocked: bool },
    /// Still muted on other receivers, or still inside the turn that registered the mute (that
    /// turn will see the count and carry on).
    Nothing,
}

#[derive(Debug)]
pub(crate) struct MuteWord(AtomicU64);

impl MuteWord {
    pub(crate) fn new() -> Self {
        MuteWord(AtomicU64::new(0))
    }

    #[inline]
    pub(crate) fn load(&self) -> u64 {
        // Acquire: a sender that sees STOPPED or a blocking flag also sees what preceded it.
        self.0.load(Acquire)
    }

    /// Sets `flag`; returns whether this call set it (it was clear before).
    ///
    /// SeqCst: setting `OVERLOADED` is followed by a SeqCst read of the backlog, while a turn's
    /// SeqCst retire is followed by a SeqCst read of this word (`load_seqcst`). In that
    /// store-buffering pattern SeqCst guarantees at least one side sees the other, so a flag set
    /// just as the receiver goes idle is never left for nobody to clear.
    #[inline]
    pub(crate) fn set(&self, flag: u64) -> bool {
        debug_assert_eq!(flag & !FLAGS, 0);
        self.0.fetch_or(flag, SeqCst) & flag == 0
    }

    /// A SeqCst read, for the other half of the pattern described at [`MuteWord::set`].
    #[inline]
    pub(crate) fn load_seqcst(&self) -> u64 {
        self.0.load(SeqCst)
    }

    /// Clears `flags` and returns the word as it was before: which of them this call cleared,
    /// and (with [`is_blocking`]) whether it unblocked the actor.
    #[inline]
    pub(crate) fn clear_returning_previous(&self, flags: u64) -> u64 {
        debug_assert_eq!(flags & !FLAGS, 0);
        self.0.fetch_and(!flags, AcqRel)
    }

    /// Clears `flag`. Returns `Some(now_unblocked)` if this call cleared it, where
    /// `now_unblocked` says that this RMW took the actor from blocking to not blocking, so the
    /// caller must unmute the actor's muted senders.
    #[inline]
    pub(crate) fn clear(&self, flag: u64) -> Option<bool> {
        debug_assert_eq!(flag & !FLAGS, 0);
        let before = self.0.fetch_and(!flag, AcqRel);
        if before & flag == 0 {
            return None;
        }
        let after = before & !flag;
        Some(is_blocking(before) && !is_blocking(after))
    }

    /// Records one more receiver this actor is muted on. Called by the actor's own turn, under
    /// the receiver's list lock.
    #[inline]
    pub(crate) fn add_mute(&self) {
        self.0.fetch_add(MUTE_ONE, AcqRel);
    }

    /// Called by the actor's own turn after registering mutes. Returns `true` if the actor is
    /// now parked (the turn must end and not reschedule it: an unmuter will), or `false` if every
    /// receiver recovered in the meantime (the turn reschedules it itself).
    ///
    /// An actor under pressure never parks, even if it applied pressure after it registered its
    /// mutes: it must keep running to release it. The check is part of the same CAS, so no flag
    /// set in between is missed. Its registrations stay counted and are undone by the
    /// receivers' recoveries. An overloaded actor parks like any other (see
    /// [`crate::mute_graph`] for why that cannot deadlock a cycle).
    pub(crate) fn try_park(&self) -> bool {
        let mut word = self.0.load(Acquire);
        loop {
            if mute_count(word) == 0 || word & PRESSURED != 0 {
                return false;
            }
            match self
                .0
                .compare_exchange_weak(word, word | PARKED, AcqRel, Acquire)
            {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
    }

    /// Removes one mute (a receiver recovered).
    pub(crate) fn unmute_one(&self) -> Unmuted {
        let mut word = self.0.load(Acquire);
        loop {
            debug_assert!(mute_count(word) > 0, "unmute without a mute");
            let mut next = word - MUTE_ONE;
            let resume = mute_count(next) == 0 && next & PARKED != 0;
            if resume {
                next &= !PARKED;
            }
            match self.0.compare_exchange_weak(word, next, AcqRel, Acquire) {
                Ok(_) if resume => {
                    return Unmuted::Resume {
                        now_unblocked: !is_blocking(next),
                    }
                }
                Ok(_) => return Unmuted::Nothing,
                Err(actual) => word = actual,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn clear_reports_the_transition_to_unblocked_only_once() {
        let w = MuteWord::new();
        assert!(w.set(OVERLOADED));
        assert!(!w.set(OVERLOADED));
        assert!(w.set(PRESSURED));
        assert_eq!(w.clear(OVERLOADED), Some(false), "still pressured");
        assert_eq!(w.clear(OVERLOADED), None);
        assert_eq!(w.clear(PRESSURED), Some(true));
        assert!(!is_blocking(w.load()));
    }

    #[test]
    fn a_stopped_actor_never_blocks() {
        let w = MuteWord::new();
        w.set(OVERLOADED);
        assert!(is_blocking(w.load()));
        w.set(STOPPED);
        assert!(
            !is_blocking(w.load()),
            "a flag left on a stopped actor must not mute anyone"
        );
    }

    #[test]
    fn park_and_unmute_hand_over_exactly_once() {
        let w = MuteWord::new();
        assert!(!w.try_park(), "no mute, no park");
        w.add_mute();
        w.add_mute();
        assert!(w.try_park());
        assert!(is_blocking(w.load()));
        assert_eq!(w.unmute_one(), Unmuted::Nothing);
        assert_eq!(
            w.unmute_one(),
            Unmuted::Resume {
                now_unblocked: true
            }
        );
        assert_eq!(w.load(), 0);
    }

    #[test]
    fn a_pressured_actor_never_parks() {
        let w = MuteWord::new();
        w.add_mute();
        w.set(PRESSURED);
        assert!(!w.try_park());
        assert_eq!(w.unmute_one(), Unmuted::Nothing);
        assert_eq!(mute_count(w.load()), 0);
    }

    #[test]
    fn an_overloaded_actor_parks_and_stays_blocking_when_resumed() {
        let w = MuteWord::new();
        w.add_mute();
        w.set(OVERLOADED);
        assert!(w.try_park());
        assert_eq!(
            w.unmute_one(),
            Unmuted::Resume {
                now_unblocked: false
            },
            "resumed, but its own senders wait for its recovery"
        );
    }

    #[test]
    fn an_unmute_before_the_park_leaves_the_turn_to_reschedule() {
        let w = MuteWord::new();
        w.add_mute();
        assert_eq!(w.unmute_one(), Unmuted::Nothing);
        assert!(!w.try_park());
    }
}
