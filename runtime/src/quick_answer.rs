//! A short, adaptive wait for an answer that is about to arrive, before an asker goes to sleep.
//!
//! An [`ask`](crate::ActorRef::ask) or [`ask_async`](crate::ActorRef::ask_async) from outside the
//! runtime crosses threads twice. If the asker sleeps at once, the answer has to wake it: a futex
//! wake-up for a blocked thread, and for an async task a wake-up of its executor's parked worker.
//! Measured from a tokio task (`rein-compare bridge`), a round trip that sleeps on both sides costs
//! about 16 µs, on this project's 2-core VM and on 16 real cores alike, against 0.3 to 1 µs when
//! both sides stay awake. The worker that answers stays awake for a few microseconds after its
//! turn (lingering, and its spin before parking: see `scheduler`), so an asker that asks again at
//! once finds it awake; and an asker that waits a moment for the answer finds it there. Then
//! neither side sleeps, and nobody wakes anybody.
//!
//! How long to wait is the classic spin-then-block choice: waiting at most as long as sleeping
//! and being woken would cost ([`MAX_WAIT`]) never costs more than twice the better of the two.
//! A shorter bound looked cheaper and was worse: at 4 µs, one late answer left the answering
//! worker asleep, the next ask had to wake it (which takes longer than 4 µs), and the asker fell
//! into runs of misses (about 2,000 misses and 20,000 unwaited asks per 500,000, against 20 to
//! 200 and almost none at 20 µs). 20 µs is also well inside what an async task may run between
//! two awaits (tokio's guidance is 10 to 100 µs).
//!
//! The wait is adaptive, per thread: a score counts up when the answer came in time and down
//! when it did not, so the thread keeps waiting while at least half of its waits succeed (the
//! break-even point when a wait costs about what a sleep does). While waiting fails (slow actors,
//! more busy threads than cores) it stops waiting and only tries again every
//! [`PROBE_EVERY`]th ask, so a workload that cannot profit pays about 1 µs per ask. It never waits
//! on a machine with a single CPU (the answering worker cannot run while the asker spins), nor on
//! a worker thread (a behaviour must not wait for another actor).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest an asker waits for an answer before it goes to sleep.
pub(crate) const MAX_WAIT: Duration = Duration::from_micros(20);

/// Spin rounds between two reads of the clock.
const ROUNDS_PER_CLOCK_READ: u32 = 32;

/// The score at which a thread waits for every answer, and where a success takes it.
const SCORE_MAX: u8 = 8;
/// With a score of zero, one ask in this many still waits, to notice that waiting pays again.
const PROBE_EVERY: u32 = 32;

thread_local! {
    /// This thread's score and the asks it has skipped since it last waited.
    static SCORE: Cell<(u8, u32)> = const { Cell::new((SCORE_MAX, 0)) };
}

/// Asks from outside the runtimes whose answers are awaited now, in this process.
static ASKS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// An ask whose answer is awaited: counted in [`ASKS_IN_FLIGHT`] from before its request is sent
/// until it is answered or dropped. Only an ask that is alone in flight waits briefly. With other
/// asks in flight the asker has other work to do (an executor's other tasks, which a spinning
/// poll would hold up, and whose requests would then not overlap), or other threads wait too,
/// and spinning threads would outnumber cores. Measured with 64 client tasks on a 2-thread tokio
/// runtime (`rein-compare bridge --clients 64`): waiting regardless made a round trip 0.6 to
/// 0.75 µs against 0.25 to 0.6 µs without the wait.
pub(crate) struct InFlight {
    counted_in: &'static AtomicUsize,
}

impl InFlight {
    pub(crate) fn new() -> Self {
        Self::counted_in(&ASKS_IN_FLIGHT)
    }

    /// An ask counted in `counter` rather than the process's count: tests that run beside
    /// other tests' asks use a counter of their own.
    pub(crate) fn counted_in(counter: &'static AtomicUsize) -> Self {
        // Relaxed: the count only steers a heuristic; a stale reading costs a wait or skips one.
        counter.fetch_add(1, Relaxed);
        InFlight {
            counted_in: counter,
        }
    }

    fn alone(&self) -> bool {
        self.counted_in.load(Relaxed) == 1
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counted_in.fetch_sub(1, Relaxed);
    }
}

/// What [`wait_briefly`] saw.
pub(crate) enum Quick<T> {
    /// `try_take` produced the answer.
    Answered(T),
    /// No answer in time, or this thread does not wait now: sleep on the slow path.
    NotYet,
}

/// Calls `try_take` until it returns `Some`, for at most [`MAX_WAIT`], if the ask is alone in
/// flight and this thread's record says that waiting pays. `try_take` must be cheap and must not
/// register anything that a later slow path would not expect (a `try_recv`).
pub(crate) fn wait_briefly<T>(ask: &InFlight, mut try_take: impl FnMut() -> Option<T>) -> Quick<T> {
    if !ask.alone() || !worth_trying() {
        return Quick::NotYet;
    }
    let started = Instant::now();
    let mut round = 0u32;
    loop {
        if let Some(answer) = try_take() {
            record(true);
            return Quick::Answered(answer);
        }
        round = round.wrapping_add(1);
        if round % ROUNDS_PER_CLOCK_READ == 0 && started.elapsed() >= MAX_WAIT {
            record(false);
            return Quick::NotYet;
        }
        std::hint::spin_loop();
    }
}

/// Whether this thread waits for this answer: it has CPUs to spare, is not a worker, and waiting
/// has paid off lately (or it is time for a probe).
fn worth_trying() -> bool {
    if !several_cpus() || crate::scheduler::on_worker_thread() {
        return false;
    }
    // `try_with`: an ask made while this thread's locals are being torn down just sleeps.
    SCORE
        .try_with(|s| {
            let (score, skipped) = s.get();
            if score > 0 {
                return true;
            }
            if skipped + 1 >= PROBE_EVERY {
                s.set((0, 0));
                true
            } else {
                s.set((0, skipped + 1));
                false
            }
        })
        .unwrap_or(false)
}

fn record(answered: bool) {
    let _ = SCORE.try_with(|s| {
        let (score, _) = s.get();
        let score = if answered {
            score.saturating_add(1).min(SCORE_MAX)
        } else {
            score.saturating_sub(1)
        };
        s.set((score, 0));
    });
}

/// Restores this thread's record to a fresh thread's, for tests that count quick answers.
#[cfg(test)]
pub(crate) fn reset_for_test() {
    SCORE.with(|s| s.set((SCORE_MAX, 0)));
}

pub(crate) fn several_cpus() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score() -> u8 {
        SCORE.with(|s| s.get().0)
    }

    /// An ask alone in a count of its own (other tests ask at the same time).
    fn alone() -> InFlight {
        InFlight::counted_in(Box::leak(Box::new(AtomicUsize::new(0))))
    }

    #[test]
    fn an_ask_with_others_in_flight_does_not_wait() {
        reset_for_test();
        let counter: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let first = InFlight::counted_in(counter);
        let second = InFlight::counted_in(counter);
        let mut tries = 0;
        let quick = wait_briefly(&second, || {
            tries += 1;
            None::<()>
        });
        assert!(matches!(quick, Quick::NotYet));
        assert_eq!(tries, 0, "no waiting beside another ask");
        drop(first);
        let quick = wait_briefly(&second, || Some(()));
        assert!(
            matches!(quick, Quick::Answered(())) || !several_cpus(),
            "alone again, it waits"
        );
        assert_eq!(counter.load(Relaxed), 1);
        drop(second);
        assert_eq!(counter.load(Relaxed), 0);
    }

    #[test]
    fn an_answer_already_there_is_taken_at_once() {
        if !several_cpus() {
            return;
        }
        let mut calls = 0;
        let quick = wait_briefly(&alone(), || {
            calls += 1;
            Some(7)
        });
        assert!(matches!(quick, Quick::Answered(7)));
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_wait_is_bounded_and_failures_stop_the_waiting() {
        if !several_cpus() {
            return;
        }
        reset_for_test();
        // Each failed wait is bounded, and lowers the score by one.
        for _ in 0..SCORE_MAX {
            let started = Instant::now();
            assert!(matches!(
                wait_briefly(&alone(), || None::<()>),
                Quick::NotYet
            ));
            assert!(started.elapsed() >= MAX_WAIT);
        }
        assert_eq!(score(), 0);
        // With a score of zero, only one ask in PROBE_EVERY waits (and tries more than once).
        let mut tries = 0;
        for _ in 0..PROBE_EVERY * 2 {
            let _ = wait_briefly(&alone(), || {
                tries += 1;
                None::<()>
            });
        }
        let waits = (0..PROBE_EVERY * 2)
            .filter(|_| {
                let mut tried = false;
                let _ = wait_briefly(&alone(), || {
                    tried = true;
                    None::<()>
                });
                tried
            })
            .count();
        assert_eq!(waits, 2, "two probes in 2 × PROBE_EVERY asks");
        assert!(tries > 2, "a probe waits, trying again and again");
        // A probe that is answered makes the thread wait again.
        let mut asks = 0;
        while score() == 0 {
            asks += 1;
            assert!(asks <= PROBE_EVERY, "a probe within PROBE_EVERY asks");
            let _ = wait_briefly(&alone(), || Some(()));
        }
        assert_eq!(score(), 1);
    }

    #[test]
    fn a_worker_thread_never_waits() {
        let rt = crate::Runtime::builder().threads(1).build().unwrap();
        struct Probe;
        impl crate::Actor for Probe {
            type Msg = crate::ReplyTo<bool>;
            fn handle(&mut self, _: &mut crate::Context<Self>, reply: crate::ReplyTo<bool>) {
                let mut tries = 0;
                let _ = wait_briefly(&alone(), || {
                    tries += 1;
                    None::<()>
                });
                let _ = reply.send(tries == 0);
            }
        }
        let probe = rt.spawn(Probe);
        assert!(probe
            .ask(|r| r, Duration::from_secs(10))
            .expect("the probe answers"));
        drop(probe);
        rt.wait();
    }
}
