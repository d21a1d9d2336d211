//! Timers: deliver a message to an actor after a delay, once or periodically.
//!
//! One timer thread per runtime, started on first use, sleeps on a condition variable until the
//! earliest deadline. Firing is an ordinary send from outside the workers, so a timer tick is
//! never held back by muting: an actor under pressure that waits for a tick to release it always
//! gets the tick (Pony's ponyc#3382 deadlock does not arise). A pending timer keeps the runtime
//! alive only if it was created with one of the `*_keeping_alive` methods.
//!
//! The timer thread runs user code: a periodic timer clones its message, a send that fails drops
//! it, and an ended timer drops its closure (the message, the target's address, and with the last
//! address the actor itself). Each of these is contained: a panic there ends that timer (counted in
//! [`Metrics::panics`](crate::Metrics::panics)), never the thread and every other timer with it.
//! User code also never runs under the queue lock, so it may set or cancel timers itself.
//!
//! A delay too large to be represented as an instant (`Duration::MAX`, say) means "never": the
//! timer stays pending, keeping the runtime alive if it was created to, until it is cancelled.
//!
//! A runtime in deterministic mode ([`Builder::deterministic`](crate::Builder::deterministic))
//! has no timer thread: its clock is virtual, and the worker holding the scheduling baton fires
//! timers itself ([`Wheel::fire_next`]) when every worker is idle, or at seeded random moments,
//! so that a seed replays the same ticks at the same points.

use crate::metrics::{contain, Counter};
use crate::scheduler::Shared;
use parking_lot::{Condvar, Mutex, MutexGuard};
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
    /// `None` for never: the delay could not be represented. Such an entry sorts after every
    /// other and only waits to be cancelled.
    deadline: Option<Instant>,
    seq: u64,
    period: Option<Duration>,
    fire: FireFn,
    state: Arc<TimerState>,
}

impl Entry {
    fn key(&self) -> (bool, Option<Instant>, u64) {
        (self.deadline.is_none(), self.deadline, self.seq)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
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
        self.key().cmp(&other.key())
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
    /// Panics in timer user code (message clones, closure drops); part of `Metrics::panics`.
    panics: Counter,
    /// `Some(base)` for a virtual clock (deterministic mode): now is `base + Queue::elapsed`.
    virtual_base: Option<Instant>,
}

impl Wheel {
    /// Starts a timer thread named `name`.
    pub(crate) fn start(name: String) -> std::io::Result<Arc<Wheel>> {
        let wheel = Arc::new(Wheel {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            panics: Counter::new(),
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
            panics: Counter::new(),
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
    /// due then, on the calling thread. Returns whether a timer was due (timers that never fire
    /// do not count).
    pub(crate) fn fire_next(&self) -> bool {
        let Some(base) = self.virtual_base else {
            debug_assert!(false, "a real clock fires on its own thread");
            return false;
        };
        let mut q = self.queue.lock();
        let mut fired = false;
        loop {
            let next = q
                .heap
                .peek()
                .map(|Reverse(e)| (e.deadline, e.state.cancelled.load(SeqCst)));
            match next {
                Some((_, true)) => {
                    let Reverse(entry) = q.heap.pop().expect("peeked");
                    q = self.discard(q, entry);
                }
                Some((Some(deadline), false)) if !fired || deadline <= self.now(&q) => {
                    q.elapsed = q.elapsed.max(deadline.saturating_duration_since(base));
                    let now = self.now(&q);
                    let Reverse(entry) = q.heap.pop().expect("peeked");
                    q = self.fire(q, entry, deadline, now);
                    fired = true;
                }
                _ => return fired,
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
            contain(&self.panics, move || drop(fire));
            return Timer { state };
        }
        q.seq += 1;
        let seq = q.seq;
        let deadline = self.now(&q).checked_add(delay);
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
                    q = self.discard(q, entry);
                }
                Some((None, false)) => {
                    // Only timers that never fire are left: wait for a change, then forget
                    // those cancelled meanwhile (they would otherwise never reach the top).
                    self.changed.wait(&mut q);
                    q = self.forget_cancelled(q);
                }
                Some((Some(deadline), false)) if deadline <= now => {
                    let Reverse(entry) = q.heap.pop().expect("peeked");
                    q = self.fire(q, entry, deadline, now);
                }
                Some((Some(deadline), false)) => {
                    self.changed.wait_until(&mut q, deadline);
                }
            }
        }
    }

    /// Fires `entry`, due at `deadline`, and requeues it if it is periodic and still wanted.
    /// Fires without the lock: a send may run arbitrary `From` conversions, and a periodic timer
    /// clones its message. A panic there ends this timer only.
    fn fire<'a>(
        &'a self,
        q: MutexGuard<'a, Queue>,
        mut entry: Entry,
        deadline: Instant,
        now: Instant,
    ) -> MutexGuard<'a, Queue> {
        drop(q);
        let alive = contain(&self.panics, || (entry.fire)()).unwrap_or(false);
        let mut q = self.queue.lock();
        match entry.period {
            Some(period) if alive && !entry.state.cancelled.load(SeqCst) && !q.closed => {
                // Fixed rate, but never a burst of catch-up ticks after a stall.
                entry.deadline = deadline.checked_add(period).map(|d| d.max(now));
                q.heap.push(Reverse(entry));
                q
            }
            _ => self.discard(q, entry),
        }
    }

    /// Ends `entry` and drops it (user code: its message, its target) without the lock.
    fn discard<'a>(&'a self, q: MutexGuard<'a, Queue>, entry: Entry) -> MutexGuard<'a, Queue> {
        drop(q);
        entry.state.finish();
        contain(&self.panics, move || drop(entry));
        self.queue.lock()
    }

    /// Takes every cancelled entry out of the queue and discards it.
    fn forget_cancelled<'a>(&'a self, mut q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        let (cancelled, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut q.heap)
            .into_vec()
            .into_iter()
            .partition(|Reverse(e)| e.state.cancelled.load(SeqCst));
        q.heap = kept.into();
        for Reverse(entry) in cancelled {
            q = self.discard(q, entry);
        }
        q
    }

    /// Panics contained on the timer thread so far.
    pub(crate) fn panics(&self) -> u64 {
        self.panics.get()
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
            contain(&self.panics, move || drop(entry));
        }
    }
}
