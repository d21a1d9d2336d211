//! Timers: deliver a message to an actor after a delay, once or periodically.
//!
//! There is no timer thread: the workers keep time. Pending timers sit in a heap ordered by
//! deadline, and the earliest deadline is published in an atomic ([`Wheel::next_deadline`]), so
//! that a worker can tell in one load whether anything could be due.
//!
//! * A worker about to sleep first fires whatever is due ([`Wheel::fire_due`]). Then one sleeper,
//!   the *timekeeper* (`Shared::keeper`), sleeps only until the earliest deadline: in
//!   `epoll_wait`'s timeout if it is the worker that waits for sockets, else in its futex with a
//!   deadline. A timer set earlier than what the timekeeper waits for wakes it
//!   (`Shared::timer_added`), and with no timekeeper a sleeper is woken to become one.
//! * A busy worker looks at the deadline every `INJECTOR_INTERVAL` picks (with the injector and
//!   the sockets), so timers fire while every worker is busy too.
//!
//! So a tick costs no thread switch to a timer thread and back: the worker that fires it runs the
//! ticked actor next. Firing is an ordinary send from outside any behaviour, so a timer tick is
//! never held back by muting: an actor under pressure that waits for a tick to release it always
//! gets the tick (Pony's ponyc#3382 deadlock does not arise). A pending timer keeps the runtime
//! alive only if it was created with one of the `*_keeping_alive` methods.
//!
//! Firing runs user code: a periodic timer clones its message, a send that fails drops it, and an
//! ended timer drops its closure (the message, the target's address, and with the last address
//! the actor itself). Each of these is contained: a panic there ends that timer (counted in
//! [`Metrics::panics`](crate::Metrics::panics)), never the worker and every other timer with it.
//! User code also never runs under the queue lock, so it may set or cancel timers itself.
//!
//! A delay too large to be represented as an instant (`Duration::MAX`, say) means "never": the
//! timer stays pending, keeping the runtime alive if it was created to, until it is cancelled.
//!
//! A runtime in deterministic mode ([`Builder::deterministic`](crate::Builder::deterministic))
//! has a virtual clock instead, and the worker holding the scheduling baton fires
//! timers itself ([`Wheel::fire_next`]) when every worker is idle, or at seeded random moments,
//! so that a seed replays the same ticks at the same points.

use crate::metrics::{contain, Counter};
use crate::scheduler::Shared;
use parking_lot::{Mutex, MutexGuard};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
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
            // Its closure holds the target's address: drop it now if it is next in line (the
            // others go when they reach the front).
            wheel.discard_cancelled_front();
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

/// `Wheel::next` when no timer will ever be due.
const NOTHING_DUE: u64 = u64::MAX;

pub(crate) struct Wheel {
    queue: Mutex<Queue>,
    /// The earliest pending deadline, in nanoseconds since `origin` ([`NOTHING_DUE`] if none):
    /// what a worker reads to decide whether to look at the queue. Written under the queue lock.
    next: AtomicU64,
    origin: Instant,
    /// The scheduler, told when a timer becomes the earliest (real clock only).
    shared: OnceLock<Weak<Shared>>,
    /// Panics in timer user code (message clones, closure drops); part of `Metrics::panics`.
    panics: Counter,
    /// `Some(base)` for a virtual clock (deterministic mode): now is `base + Queue::elapsed`.
    virtual_base: Option<Instant>,
}

impl Wheel {
    /// A wheel on the real clock, kept by the workers (see the module docs).
    pub(crate) fn new() -> Arc<Wheel> {
        Self::with_clock(None)
    }

    /// A wheel on a virtual clock: see [`Wheel::fire_next`].
    pub(crate) fn manual() -> Arc<Wheel> {
        Self::with_clock(Some(Instant::now()))
    }

    fn with_clock(virtual_base: Option<Instant>) -> Arc<Wheel> {
        Arc::new(Wheel {
            queue: Mutex::new(Queue::default()),
            next: AtomicU64::new(NOTHING_DUE),
            origin: Instant::now(),
            shared: OnceLock::new(),
            panics: Counter::new(),
            virtual_base,
        })
    }

    /// Connects the wheel to its scheduler, which is told when a timer becomes the earliest.
    pub(crate) fn attach(&self, shared: &Arc<Shared>) {
        let _ = self.shared.set(Arc::downgrade(shared));
    }

    /// `at` as nanoseconds since the wheel's origin, saturating below [`NOTHING_DUE`].
    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        let n = at.saturating_duration_since(self.origin).as_nanos();
        n.min(u128::from(NOTHING_DUE - 1)) as u64
    }

    /// The earliest pending deadline (cancelled timers may still count), if any will ever be
    /// due. One SeqCst load: see `Shared::timer_added` for the pairing.
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.next.load(SeqCst) {
            NOTHING_DUE => None,
            n => Some(self.origin + Duration::from_nanos(n)),
        }
    }

    /// Publishes the front of the heap as the next deadline. Under the queue lock.
    fn publish_next(&self, q: &Queue) {
        let next = match q.heap.peek() {
            Some(Reverse(Entry {
                deadline: Some(d), ..
            })) => self.nanos(*d),
            _ => NOTHING_DUE,
        };
        self.next.store(next, SeqCst);
    }

    /// Real clock: fires every timer due now, on the calling thread (a worker between turns).
    /// Returns whether it fired any. One load when nothing is due.
    pub(crate) fn fire_due(&self) -> bool {
        if self.virtual_base.is_some() {
            return false;
        }
        match self.next_deadline() {
            Some(d) if d <= Instant::now() => {}
            _ => return false,
        }
        let mut q = self.queue.lock();
        let mut fired = false;
        loop {
            if q.closed {
                return fired;
            }
            let now = Instant::now();
            match Self::front(&q) {
                Some((_, true)) => {
                    let entry = self.pop_front(&mut q);
                    q = self.discard(q, entry);
                }
                Some((Some(deadline), false)) if deadline <= now => {
                    let entry = self.pop_front(&mut q);
                    q = self.fire(q, entry, deadline, now);
                    fired = true;
                }
                _ => return fired,
            }
        }
    }

    /// The front of the queue: its deadline and whether it was cancelled.
    fn front(q: &Queue) -> Option<(Option<Instant>, bool)> {
        q.heap
            .peek()
            .map(|Reverse(e)| (e.deadline, e.state.cancelled.load(SeqCst)))
    }

    /// Takes the front entry out and publishes the new front. The caller has just seen one.
    fn pop_front(&self, q: &mut Queue) -> Entry {
        let Reverse(entry) = q.heap.pop().expect("the caller saw a front entry");
        self.publish_next(q);
        entry
    }

    /// Drops cancelled timers from the front of the queue, so that they neither hold their
    /// targets nor wake the timekeeper for nothing.
    fn discard_cancelled_front(&self) {
        let mut q = self.queue.lock();
        while let Some((_, true)) = Self::front(&q) {
            let entry = self.pop_front(&mut q);
            q = self.discard(q, entry);
        }
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
            debug_assert!(false, "a real clock is fired by the workers (`fire_due`)");
            return false;
        };
        let mut q = self.queue.lock();
        let mut fired = false;
        loop {
            match Self::front(&q) {
                Some((_, true)) => {
                    let entry = self.pop_front(&mut q);
                    q = self.discard(q, entry);
                }
                Some((Some(deadline), false)) if !fired || deadline <= self.now(&q) => {
                    q.elapsed = q.elapsed.max(deadline.saturating_duration_since(base));
                    let now = self.now(&q);
                    let entry = self.pop_front(&mut q);
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
        let earliest = q.heap.peek().is_some_and(|Reverse(e)| e.seq == seq);
        self.publish_next(&q);
        drop(q);
        if let (true, Some(deadline), None) = (earliest, deadline, self.virtual_base) {
            if let Some(shared) = self.shared.get().and_then(Weak::upgrade) {
                shared.timer_added(self.nanos(deadline));
            }
        }
        Timer { state }
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
                self.publish_next(&q);
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

    /// Panics contained in timer user code so far.
    pub(crate) fn panics(&self) -> u64 {
        self.panics.get()
    }

    /// Ends every pending timer; later ones end at once.
    pub(crate) fn close(&self) {
        let entries = {
            let mut q = self.queue.lock();
            q.closed = true;
            let entries = std::mem::take(&mut q.heap);
            self.publish_next(&q);
            entries
        };
        for Reverse(entry) in entries {
            entry.state.finish();
            contain(&self.panics, move || drop(entry));
        }
    }
}
