//! Timers: deliver a message to an actor after a delay, once or periodically.
//!
//! One timer thread per runtime, started on first use, sleeps on a condition variable until the
//! earliest deadline. Firing is an ordinary send from outside the workers, so a timer tick is
//! never held back by muting: an actor under pressure that waits for a tick to release it always
//! gets the tick (Pony's ponyc#3382 deadlock does not arise). A pending timer keeps the runtime
//! alive only if it was created with one of the `*_keeping_alive` methods.
//!
//! A runtime in deterministic mode ([`Builder::deterministic`](crate::Builder::deterministic))
//! has no timer thread: its clock is virtual, and the worker holding the scheduling baton fires
//! timers itself ([`Wheel::fire_next`]) when every worker is idle, or at seeded random moments,
//! so that a seed replays the same ticks at the same points.

use crate::scheduler::Shared;
use parking_lot::{Condvar, Mutex};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Fires the timer; returns `false` if its target is gone (the timer then ends).
pub(crate) type FireFn = Box<dyn FnMut() -> bool + Send>;

/// A handle to a pending timer. Dropping it does not cancel the timer.
#[derive(Clone, Debug)]
pub struct Timer {
    state: Arc<TimerState>,
}

impl Timer {
    /// Cancels the timer: it will not fire again. Idempotent.
    pub fn cancel(&self) {
        self.state.cancelled.store(true, SeqCst);
        self.state.finish();
        if let Some(wheel) = self.state.wheel.upgrade() {
            wheel.changed.notify_one();
        }
    }

    /// Whether the timer has finished: fired (if one-shot), cancelled, or its target stopped.
    pub fn is_done(&self) -> bool {
        self.state.done.load(SeqCst)
    }
}

#[derive(Debug)]
struct TimerState {
    cancelled: AtomicBool,
    done: AtomicBool,
    /// Holding a keep-alive on the runtime until done.
    keep_alive: Option<Weak<Shared>>,
    wheel: Weak<Wheel>,
}

impl TimerState {
    /// Ends the timer exactly once, releasing its keep-alive if it held one.
    fn finish(&self) {
        if !self.done.swap(true, SeqCst) {
            if let Some(shared) = self.keep_alive.as_ref().and_then(Weak::upgrade) {
                shared.release();
            }
        }
    }
}

struct Entry {
    deadline: Instant,
    seq: u64,
    period: Option<Duration>,
    fire: FireFn,
    state: Arc<TimerState>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    closed: bool,
    /// Virtual time elapsed (deterministic mode only).
    elapsed: Duration,
}

pub(crate) struct Wheel {
    queue: Mutex<Queue>,
    changed: Condvar,
    /// `Some(base)` for a virtual clock (deterministic mode): now is `base + Queue::elapsed`.
    virtual_base: Option<Instant>,
}

impl Wheel {
    /// Starts a timer thread named `name`.
    pub(crate) fn start(name: String) -> std::io::Result<Arc<Wheel>> {
        let wheel = Arc::new(Wheel {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            virtual_base: None,
        });
        let runner = wheel.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || runner.run())?;
        Ok(wheel)
    }

    /// A wheel on a virtual clock, with no thread: see [`Wheel::fire_next`].
    pub(crate) fn manual() -> Arc<Wheel> {
        Arc::new(Wheel {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            virtual_base: Some(Instant::now()),
        })
    }

    /// The current time: the real clock, or the virtual one.
    fn now(&self, q: &Queue) -> Instant {
        match self.virtual_base {
            Some(base) => base + q.elapsed,
            None => Instant::now(),
        }
    }

    /// Virtual clock only: moves time to the earliest pending deadline and fires every timer
    /// due then, on the calling thread. Returns whether any timer was pending.
    pub(crate) fn fire_next(&self) -> bool {
        debug_assert!(
            self.virtual_base.is_some(),
            "a real clock fires on its thread"
        );
        let mut q = self.queue.lock();
        let Some(Reverse(first)) = q.heap.peek() else {
            return false;
        };
        let base = self.virtual_base.unwrap_or(first.deadline);
        q.elapsed = q
            .elapsed
            .max(first.deadline.saturating_duration_since(base));
        let now = self.now(&q);
        let mut due = Vec::new();
        while q.heap.peek().is_some_and(|Reverse(e)| e.deadline <= now) {
            due.extend(q.heap.pop().map(|Reverse(e)| e));
        }
        drop(q);
        for entry in due {
            self.fire(entry, now);
        }
        true
    }

    /// Fires one due entry (without the lock: a send may run arbitrary `From` conversions) and
    /// reschedules it if it is periodic and still wanted.
    fn fire(&self, mut entry: Entry, now: Instant) {
        let alive = !entry.state.cancelled.load(SeqCst) && (entry.fire)();
        let mut q = self.queue.lock();
        match entry.period {
            Some(period) if alive && !entry.state.cancelled.load(SeqCst) && !q.closed => {
                // Fixed rate, but never a burst of catch-up ticks after a stall.
                entry.deadline = (entry.deadline + period).max(now);
                q.heap.push(Reverse(entry));
            }
            _ => {
                drop(q);
                entry.state.finish();
            }
        }
    }

    pub(crate) fn add(
        self: &Arc<Self>,
        delay: Duration,
        period: Option<Duration>,
        keep_alive: Option<&Arc<Shared>>,
        fire: FireFn,
    ) -> Timer {
        if let Some(shared) = keep_alive {
            shared.retain();
        }
        let state = Arc::new(TimerState {
            cancelled: AtomicBool::new(false),
            done: AtomicBool::new(false),
            keep_alive: keep_alive.map(Arc::downgrade),
            wheel: Arc::downgrade(self),
        });
        let mut q = self.queue.lock();
        if q.closed {
            drop(q);
            state.finish();
            return Timer { state };
        }
        q.seq += 1;
        let seq = q.seq;
        let deadline = self.now(&q) + delay;
        q.heap.push(Reverse(Entry {
            deadline,
            seq,
            period: period.map(|p| p.max(Duration::from_micros(1))),
            fire,
            state: state.clone(),
        }));
        drop(q);
        self.changed.notify_one();
        Timer { state }
    }

    fn run(&self) {
        let mut q = self.queue.lock();
        loop {
            if q.closed {
                return;
            }
            let now = Instant::now();
            let next = q
                .heap
                .peek()
                .map(|Reverse(e)| (e.deadline, e.state.cancelled.load(SeqCst)));
            match next {
                None => self.changed.wait(&mut q),
                Some((_, true)) => {
                    let Reverse(entry) = q.heap.pop().expect("peeked");
                    entry.state.finish();
                }
                Some((deadline, false)) if deadline <= now => {
                    let Reverse(entry) = q.heap.pop().expect("peeked");
                    drop(q);
                    self.fire(entry, now);
                    q = self.queue.lock();
                }
                Some((deadline, false)) => {
                    self.changed.wait_until(&mut q, deadline);
                }
            }
        }
    }

    /// Ends the timer thread and every pending timer.
    pub(crate) fn close(&self) {
        let entries = {
            let mut q = self.queue.lock();
            q.closed = true;
            std::mem::take(&mut q.heap)
        };
        self.changed.notify_all();
        for Reverse(entry) in entries {
            entry.state.finish();
        }
    }
}
