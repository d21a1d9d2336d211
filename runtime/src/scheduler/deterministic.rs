//! Deterministic scheduling for tests: one seed, one interleaving.
//!
//! A stress test that finds a bug is only as good as its replay. In this mode (built with
//! [`Builder::deterministic`](crate::Builder::deterministic)) the real scheduler runs (the
//! same workers, queues, stealing, lingering, muting and quiescence code) but only one worker
//! runs at a time: it holds a *baton* for one round (one turn, or one fruitless look for work)
//! and then hands it to a worker picked by a seeded generator. Every decision that could
//! depend on timing is taken by the baton holder alone, so a seed fixes the interleaving, the
//! way ponyc's systematic testing drives its scheduler threads.
//!
//! Inputs must be deterministic too:
//! * workers hold until the runtime is armed ([`Runtime::wait`](crate::Runtime::wait)), so
//!   whatever the test sends or spawns from outside before that is all in place, in program
//!   order, before the first round; sends from outside threads *after* that race as usual;
//! * timers run on a virtual clock with no thread of its own: when every worker has looked for
//!   work and found none, or at seeded random moments, the holder moves the clock to the
//!   earliest deadline and fires what is due (see `timer.rs`).
//!
//! When every worker has found nothing since anyone last ran a turn, the holder fires the next
//! timer if one is pending, else declares quiescence if the usual conditions hold (armed, no
//! keep-alive, no outstanding activation), else puts the baton down until something is sent
//! from outside (a deadlock in this mode hangs exactly as it would in the real one, and
//! `wait_timeout` reports it).

use parking_lot::{Condvar, Mutex, MutexGuard};

/// Rounds between seeded chances to fire a timer while workers are busy: 1 in this many.
const TIMER_CHANCE: u64 = 64;

pub(crate) struct Baton {
    state: Mutex<State>,
    /// One per worker: signalled when it is handed the baton (or when the runtime ends).
    turn: Box<[Condvar]>,
}

struct State {
    /// Who runs now. `None` before the runtime is armed, and while every worker waits for
    /// work from outside.
    holder: Option<usize>,
    started: bool,
    closed: bool,
    rng: u64,
    /// Workers that found nothing to do since any worker last did something.
    idle: Vec<bool>,
    /// Work arrived from outside while the baton was held: the holder must not put it down.
    kicked: bool,
}

/// What a round's holder must do after its round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterRound {
    /// Hand the baton on.
    Pass,
    /// Every worker is idle: fire a timer, quiesce, or wait for outside work.
    AllIdle,
    /// Fire the next timer (a seeded random moment), then hand the baton on.
    FireTimer,
}

impl State {
    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self) -> usize {
        (self.next() % self.idle.len() as u64) as usize
    }
}

impl Baton {
    pub(crate) fn new(workers: usize, seed: u64) -> Self {
        Baton {
            state: Mutex::new(State {
                holder: None,
                started: false,
                closed: false,
                rng: seed,
                idle: vec![false; workers],
                kicked: false,
            }),
            turn: (0..workers).map(|_| Condvar::new()).collect(),
        }
    }

    /// Blocks until worker `me` holds the baton. Returns `false` once the runtime has ended.
    pub(crate) fn acquire(&self, me: usize) -> bool {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return false;
            }
            if state.holder == Some(me) {
                return true;
            }
            self.turn[me].wait(&mut state);
        }
    }

    /// Records the round `me` just ran (`busy`: it ran a turn or queued work) and says what
    /// comes next. The caller still holds the baton.
    pub(crate) fn after_round(&self, me: usize, busy: bool) -> AfterRound {
        let mut state = self.state.lock();
        debug_assert_eq!(state.holder, Some(me));
        if busy {
            state.idle.iter_mut().for_each(|i| *i = false);
        } else {
            state.idle[me] = true;
            if state.idle.iter().all(|&i| i) {
                return AfterRound::AllIdle;
            }
        }
        if state.next() % TIMER_CHANCE == 0 {
            AfterRound::FireTimer
        } else {
            AfterRound::Pass
        }
    }

    /// Something happened (a timer fired, work arrived): every worker must look again before
    /// the runtime counts as idle.
    pub(crate) fn not_idle(&self) {
        let mut state = self.state.lock();
        state.idle.iter_mut().for_each(|i| *i = false);
    }

    /// Hands the baton from `me` to a seeded pick (possibly `me` again).
    pub(crate) fn pass(&self, me: usize) {
        let mut state = self.state.lock();
        debug_assert_eq!(state.holder, Some(me));
        let next = state.pick();
        state.holder = Some(next);
        drop(state);
        self.turn[next].notify_one();
    }

    /// Every worker is idle and nothing is pending: put the baton down until [`Baton::kick`].
    /// If work arrived from outside since the holder looked (a kick while it held the baton),
    /// hand the baton on instead: that work would otherwise wait for a kick that already came.
    pub(crate) fn put_down(&self, me: usize) {
        let mut state = self.state.lock();
        debug_assert_eq!(state.holder, Some(me));
        if std::mem::take(&mut state.kicked) {
            self.hand_to_pick(state);
        } else {
            state.holder = None;
        }
    }

    /// Starts the first round (the runtime was armed). Idempotent.
    pub(crate) fn start(&self) {
        let mut state = self.state.lock();
        if !state.started && !state.closed {
            state.started = true;
            self.hand_to_pick(state);
        }
    }

    /// Work arrived from outside the workers: if the baton is down, pick it up again; if it is
    /// held, make sure the holder does not put it down without another look.
    pub(crate) fn kick(&self) {
        let mut state = self.state.lock();
        if !state.started || state.closed {
            return;
        }
        if state.holder.is_none() {
            self.hand_to_pick(state);
        } else {
            state.kicked = true;
        }
    }

    fn hand_to_pick(&self, mut state: MutexGuard<'_, State>) {
        state.idle.iter_mut().for_each(|i| *i = false);
        let next = state.pick();
        state.holder = Some(next);
        drop(state);
        self.turn[next].notify_one();
    }

    /// The runtime ended: every worker returns from [`Baton::acquire`] with `false`.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        for turn in self.turn.iter() {
            turn.notify_one();
        }
    }
}
