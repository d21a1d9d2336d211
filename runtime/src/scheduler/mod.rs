//! The work-stealing scheduler: what the workers share, how actors get into run queues, and how
//! the runtime knows that it is done.
//!
//! # Activations
//! An actor is *activated* when a send finds its mailbox empty (the mailbox count went from 0)
//! or when it is spawned. The activation is a task in some run queue (or running) until a turn
//! retires the last counted message. Muted actors keep theirs while parked. So the number of
//! outstanding activations is exactly the number of actors that still have something to do.
//!
//! Rather than keep that number in one contended atomic, each worker counts the activations it
//! starts and ends in a local integer (they may be negative: a turn on worker B can end an
//! activation started on worker A) and publishes it before it sleeps. Outside threads count into
//! one shared atomic; they only touch it when they wake an idle actor.
//!
//! # Quiescence
//! Once the owner has called [`Runtime::wait`](crate::Runtime::wait) (the runtime is *armed*),
//! the last worker to go to sleep sums every published count under the sleep lock. If all
//! workers sleep, the sum is zero and nothing keeps the runtime alive, no actor has anything left
//! to do and none can be woken except from outside: the runtime is quiescent and the workers
//! exit. A runtime that is not armed just sleeps, so an embedding application can keep feeding
//! it from its own threads.
//!
//! # Lingering
//! An actor fed from a thread outside the runtime (a driver loop, a reactor, another runtime)
//! tends to be drained by an idle worker faster than it is fed, so every message finds it idle and
//! the sender pays for a schedule: a refcount bump, an injector push, a wake-up check. When a turn
//! drains its actor on a worker that has nothing else queued, the worker instead keeps the
//! activation for a while: the turn sets the mailbox's lingering token (see [`crate::mailbox`])
//! and the worker keeps the actor in a small list (at most 64) that it watches while it looks for
//! work. A send then only pushes the message; the worker notices the mail and runs the actor.
//! Before the worker sleeps (or exits) it claims every token back, so quiescence counting and
//! idle CPU are unchanged. A worker that has become busy moves those with mail to its stealable
//! queue at its periodic injector check, so its own work cannot keep them waiting for long. A sender on a worker does not leave the actor lingering elsewhere: it
//! claims the token and runs the actor next on its own core, exactly as if the actor had been
//! idle, so request/response pairs keep their locality. When some worker sleeps, lingering
//! actors with mail beyond the first go to the worker's stealable queue (and one sleeper is
//! woken), so idle workers can share them; otherwise they keep lingering and are taken one at a
//! time, round the list, so that their turns can linger again. A worker whose own turn runs long
//! cannot look at them: the watchdog does (below).
//!
//! # Work stuck behind a long behaviour
//! The next slot and the lingering list are private to their worker, which is what makes them
//! cheap, and they pay off only because the worker gets back to them within microseconds. A
//! behaviour that sleeps or computes for long would make them wait however idle the other workers
//! are. So both live in the worker's [`Core`], shared with the [`watchdog`]: a thread that, while
//! some worker holds such work, looks every half millisecond for a worker whose turn counter has
//! not moved, and hands its next slot and its lingering actors with mail to the others (through
//! the injector). [`handoff`] has the two protocols that keep that sound; the worker pays one
//! CAS per next-slot hand-off and one per turn in which it lingers on something.
//!
//! # Sleeping without lost wake-ups
//! A worker registers as sleeping (SeqCst), re-checks every queue, and only then parks; a thread
//! that pushes work fences (SeqCst) and then reads the sleeper count. One of the two always sees
//! the other, so work is never left with every worker asleep.

mod deterministic;
mod handoff;
pub(crate) mod watchdog;
mod worker;

pub(crate) use worker::{ignoring_pressure, on_worker_thread, Worker};

use deterministic::Baton;
use handoff::{Lendable, NextSlot};
use watchdog::Watchdog;

use crate::cell::{Cell, Runnable, Task};
use crate::io::{Driver, NO_POLLER};
use crate::metrics::{Counters, Metrics, WorkerMetrics, WorkerStats};
use crate::mute_graph::MuteGraph;
use crate::registry::Registry;
use crate::runtime::Config;
use crate::timer::Wheel;
use crate::{Actor, ActorId, ActorRef};
use crossbeam_deque::{Injector, Steal, Stealer};
use crossbeam_utils::sync::Unparker;
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::Ordering::{AcqRel, Relaxed, SeqCst};
use std::sync::atomic::{fence, AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

/// Rounds a worker looks for work before parking (each a spin-loop hint, every 16th a yield):
/// a few microseconds.
const SPIN_BEFORE_PARK: u32 = 64;

/// `Shared::keeper` when no sleeping worker keeps time.
const NO_KEEPER: usize = usize::MAX;

const RUNNING: u8 = 0;
const QUIESCENT: u8 = 1;
const CLOSED: u8 = 2;

/// What a worker holds that only it runs, shared so that the watchdog can hand it to the others
/// while the worker is stuck in a long behaviour (see [`handoff`] and [`watchdog`]). Written by
/// its worker; one cache line, read by the watchdog once per tick.
pub(crate) struct Core {
    /// The next slot: an actor woken by a send from this worker, to run next here.
    pub(crate) next: NextSlot<Task>,
    /// Drained actors this worker keeps activated, their activations held by the mailbox's
    /// lingering token. Entries may be stale (claimed by a sender since): the token, not this
    /// list, says who holds an activation. Lent to the watchdog for the length of each turn.
    pub(crate) lingering: Lendable<Vec<Task>>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    injector: Injector<Task>,
    stealers: Box<[Stealer<Task>]>,
    /// The other end of each worker's spawn stack (`Worker::push_fresh`).
    pub(crate) fresh_stealers: Box<[Stealer<Task>]>,
    unparkers: Box<[Unparker]>,
    /// Per worker: set by a waker that took the worker off the sleeper list.
    notified: Box<[CachePadded<AtomicBool>]>,
    sleepers: Mutex<Vec<usize>>,
    num_sleeping: AtomicUsize,
    /// Set by the watchdog when sockets have gone a tick with nobody in `epoll_wait`: the next
    /// busy worker to pick a task looks at them first (see `watchdog`).
    io_due: CachePadded<AtomicBool>,
    /// The sleeping worker that keeps time: it sleeps only until the earliest timer's deadline
    /// ([`NO_KEEPER`] if none does; see [`crate::timer`]).
    keeper: AtomicUsize,
    /// The deadline the timekeeper sleeps until, in the wheel's nanoseconds (`Wheel::nanos`).
    keeper_until: AtomicU64,
    /// Activations started minus ended by threads that are not workers of this runtime.
    external_activations: CachePadded<AtomicI64>,
    /// Registered sources (I/O, timers) that keep the runtime alive.
    keepalive: AtomicUsize,
    armed: AtomicBool,
    state: AtomicU8,
    done_lock: Mutex<()>,
    done: Condvar,
    pub(crate) registry: Registry,
    pub(crate) counters: Counters,
    pub(crate) stats: Box<[CachePadded<WorkerStats>]>,
    next_id: AtomicU64,
    pub(crate) timers: Arc<Wheel>,
    /// Who is muted on whom, so that no mute closes a cycle (see [`crate::mute_graph`]).
    pub(crate) mute_graph: MuteGraph,
    /// Deterministic mode only: who may run now (see [`deterministic`]).
    baton: Option<Baton>,
    /// Per worker: its next slot and lingering list.
    pub(crate) cores: Box<[CachePadded<Core>]>,
    /// The readiness driver, made on the first I/O registration (see [`crate::io`]).
    io: OnceLock<Driver>,
    io_init: Mutex<()>,
    pub(crate) watchdog: Watchdog,
    /// Makes the next worker that finds a task panic outside the turn (see `Worker::run`).
    #[cfg(test)]
    pub(crate) inject_fault: AtomicBool,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        stealers: Vec<Stealer<Task>>,
        fresh_stealers: Vec<Stealer<Task>>,
        unparkers: Vec<Unparker>,
        timers: Arc<Wheel>,
        watchdog: Unparker,
    ) -> Self {
        let n = config.threads;
        Shared {
            injector: Injector::new(),
            stealers: stealers.into(),
            fresh_stealers: fresh_stealers.into(),
            unparkers: unparkers.into(),
            notified: (0..n).map(|_| CachePadded::default()).collect(),
            sleepers: Mutex::new(Vec::with_capacity(n)),
            num_sleeping: AtomicUsize::new(0),
            io_due: CachePadded::new(AtomicBool::new(false)),
            keeper: AtomicUsize::new(NO_KEEPER),
            keeper_until: AtomicU64::new(u64::MAX),
            external_activations: CachePadded::default(),
            keepalive: AtomicUsize::new(0),
            armed: AtomicBool::new(false),
            state: AtomicU8::new(RUNNING),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            registry: Registry::new(n + 1),
            counters: Counters::new(),
            stats: (0..n).map(|_| CachePadded::default()).collect(),
            next_id: AtomicU64::new(1),
            timers,
            mute_graph: MuteGraph::new(),
            baton: config.deterministic.map(|seed| Baton::new(n, seed)),
            cores: (0..n)
                .map(|_| {
                    CachePadded::new(Core {
                        next: NextSlot::new(),
                        lingering: Lendable::new(Vec::new()),
                    })
                })
                .collect(),
            watchdog: Watchdog::new(n, config.deterministic.is_some(), watchdog),
            io: OnceLock::new(),
            io_init: Mutex::new(()),
            config,
            #[cfg(test)]
            inject_fault: AtomicBool::new(false),
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.config.threads
    }

    /// Whether sends are still accepted: false once quiescent or shut down.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Relaxed) == RUNNING
    }

    /// Whether every worker is on the sleepers list (SeqCst: see `watchdog::run`).
    pub(crate) fn all_asleep(&self) -> bool {
        self.num_sleeping.load(SeqCst) == self.threads()
    }

    /// Whether sockets are registered, no worker waits in `epoll_wait` for them, and some
    /// worker sleeps in its futex (and could): a racy reading, for the watchdog.
    pub(crate) fn sockets_unwatched(&self) -> bool {
        self.sockets_unpolled() && self.num_sleeping.load(SeqCst) != 0
    }

    /// Whether sockets are registered and no worker waits in `epoll_wait` for them (every worker
    /// is busy, or about to sleep): a racy reading. Never after a failed poll: nobody polls a
    /// failed driver again, and the watchdog must not stay awake for it.
    pub(crate) fn sockets_unpolled(&self) -> bool {
        self.io
            .get()
            .is_some_and(|io| io.poller() == crate::io::NO_POLLER && io.failures.load(Relaxed) == 0)
    }

    /// Asks the busy workers for a look at the sockets at their next pick (set by the watchdog
    /// when nobody has waited in `epoll_wait` for a tick).
    pub(crate) fn request_io_poll(&self) {
        self.io_due.store(true, Relaxed);
    }

    /// Takes a request of [`request_io_poll`](Self::request_io_poll): one load per pick while
    /// there is none (the flag's line is only written when sockets go unpolled).
    #[inline(always)]
    pub(crate) fn take_io_due(&self) -> bool {
        self.io_due.load(Relaxed) && self.io_due.swap(false, Relaxed)
    }

    /// Whether worker `index` is on the sleepers list.
    pub(crate) fn is_asleep(&self, index: usize) -> bool {
        self.sleepers.lock().contains(&index)
    }

    /// Spawns `actor`. On a worker of this runtime it always succeeds (a runtime that is shutting
    /// down stops it in its final sweep, after joining the workers). From anywhere else, with
    /// `only_if_open`, it hands the actor back once the runtime no longer runs: after that nothing
    /// would ever run it or stop it, and the cell would leak (it refers to `Shared`, and `Shared`'s
    /// injector would refer to it). Without `only_if_open` (the owner's `Runtime::spawn`, and
    /// `Context::spawn` in a `stopped` hook at shutdown) the caller guarantees that the final sweep
    /// is still to come.
    pub(crate) fn try_spawn<A: Actor>(
        self: &Arc<Self>,
        actor: A,
        worker: Option<&Worker>,
        only_if_open: bool,
    ) -> Result<ActorRef<A>, A> {
        let shard = worker.map_or(self.threads(), |w| w.index());
        let mut registry = self.registry.lock(shard);
        // Under the shard lock, which the shutdown sweep takes after closing the runtime: either
        // the sweep will find this actor, or this load sees the runtime closed (see `registry`).
        if worker.is_none() && only_if_open && !self.is_open() {
            return Err(actor);
        }
        let id = ActorId(self.next_id.fetch_add(1, Relaxed));
        let cell = Arc::new_cyclic(|weak: &Weak<Cell<A>>| {
            let entry: Weak<dyn Runnable> = weak.clone();
            let slot = registry.insert(entry);
            Cell::new(actor, Cell::<A>::new_header(self.clone(), id, slot))
        });
        self.counters.spawned.inc();
        // A new actor starts with one activation (its `started` hook). It goes to the worker's
        // spawn stack (stealable) rather than the next slot, so a burst of spawns spreads over
        // the workers, and a tree of spawns unfolds depth first.
        match worker {
            Some(w) => {
                drop(registry);
                w.activation_started();
                w.push_fresh(cell.clone());
            }
            // Queued before the lock is released, so that the sweep that finds the entry also
            // finds the task (it clears the injector after stopping what it found).
            None => self.push_external(cell.clone()),
        }
        Ok(ActorRef::from_cell(cell))
    }

    /// Spawns `actor` unconditionally (see [`try_spawn`](Self::try_spawn)).
    pub(crate) fn spawn<A: Actor>(
        self: &Arc<Self>,
        actor: A,
        worker: Option<&Worker>,
    ) -> ActorRef<A> {
        match self.try_spawn(actor, worker, false) {
            Ok(actor_ref) => actor_ref,
            Err(_) => unreachable!("a spawn that need not find the runtime open never fails"),
        }
    }

    /// A worker thread died of a panic outside any behaviour: a runtime bug, since every piece of
    /// user code runs contained. Whatever it held (the turn it was running, its next slot, the
    /// actors lingering on it) can never run, and the activations it counted never end, so the
    /// runtime could never become quiescent and `wait` would hang. End the runtime instead, as
    /// `shutdown` would: every other worker finishes its turn and exits, `wait` returns, and the
    /// report counts the dead worker (`Report::worker_panics`).
    ///
    /// Replacing the worker was the alternative. It would need to know which activation the dead
    /// thread held and in what state it left that actor's turn, which a panic at an arbitrary
    /// point in the scheduler does not tell; a replacement could resume a half-finished turn or
    /// lose a token. Failing fast with a report is the sound choice.
    pub(crate) fn worker_died(&self) {
        self.close();
    }

    /// Schedules an actor whose mailbox count just left zero.
    #[inline(always)]
    pub(crate) fn schedule_activation(&self, task: Task, worker: Option<&Worker>) {
        match worker {
            Some(w) => {
                w.activation_started();
                w.push_next(task);
            }
            None => self.push_external(task),
        }
    }

    fn push_external(&self, task: Task) {
        self.external_activations.fetch_add(1, SeqCst);
        self.injector.push(task);
        self.notify_one();
    }

    /// Puts an actor that already holds its activation back in a run queue.
    pub(crate) fn requeue(&self, task: Task, worker: Option<&Worker>) {
        match worker {
            Some(w) => w.push_back(task),
            None => {
                self.injector.push(task);
                self.notify_one();
            }
        }
    }

    /// Whether some worker sleeps (and could be woken to share work): a racy reading.
    #[inline]
    pub(crate) fn has_sleepers(&self) -> bool {
        self.num_sleeping.load(Relaxed) != 0
    }

    /// Wakes one sleeping worker, if any, after work was pushed where it could be stolen.
    pub(crate) fn notify_one(&self) {
        if let Some(baton) = &self.baton {
            // Nobody sleeps in deterministic mode; work from outside picks up a dropped baton.
            baton.kick();
            return;
        }
        fence(SeqCst);
        if self.num_sleeping.load(SeqCst) == 0 {
            return;
        }
        let io = self.io.get();
        let mut sleepers = self.sleepers.lock();
        // Rather a sleeper in its futex than the one watching sockets, which keeps watching.
        let poller = io.map_or(NO_POLLER, Driver::poller);
        let Some(pos) = sleepers
            .iter()
            .rposition(|&i| i != poller)
            .or_else(|| sleepers.len().checked_sub(1))
        else {
            return;
        };
        let index = sleepers.swap_remove(pos);
        self.num_sleeping.fetch_sub(1, SeqCst);
        // The flag's store, then (in `wake_worker`) a fence and a load of the poller: the
        // waker's half of the pair whose other half is `Driver::poll` (see `crate::io`).
        self.notified[index].store(true, SeqCst);
        drop(sleepers);
        self.wake_worker(index, io);
    }

    /// Wakes worker `index`, wherever it sleeps: its futex, or `epoll_wait`. The caller has
    /// just set `notified[index]`.
    fn wake_worker(&self, index: usize, io: Option<&Driver>) {
        self.unparkers[index].unpark();
        if let Some(io) = io {
            // Between the flag's store and the poller's load: see `crate::io`.
            fence(SeqCst);
            if io.poller() == index {
                io.wake();
            }
        }
    }

    fn wake_all(&self) {
        for u in self.unparkers.iter() {
            u.unpark();
        }
        if let Some(io) = self.io.get() {
            io.wake();
        }
    }

    /// The readiness driver, if some source was ever registered.
    #[inline]
    pub(crate) fn io(&self) -> Option<&Driver> {
        self.io.get()
    }

    /// The readiness driver, made now if need be. Deterministic mode has none.
    pub(crate) fn io_driver(&self) -> std::io::Result<&Driver> {
        if let Some(io) = self.io.get() {
            return Ok(io);
        }
        if self.baton.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a runtime in deterministic mode has no I/O: readiness cannot be replayed",
            ));
        }
        let _init = self.io_init.lock();
        if self.io.get().is_none() {
            let _ = self.io.set(Driver::new()?);
        }
        Ok(self.io.get().expect("just set"))
    }

    /// Takes whatever readiness is there without blocking, if no other worker polls: a busy
    /// worker's look, so that sockets are served while every worker runs actors.
    /// Returns whether it delivered any edge.
    #[inline]
    pub(crate) fn poll_io(&self, worker: &Worker) -> bool {
        match self
            .io
            .get()
            .and_then(|io| io.poll(worker.index(), false, None, || true))
        {
            Some(edges) if !edges.is_empty() => {
                edges.deliver();
                true
            }
            _ => false,
        }
    }

    fn steal_from_injector(&self, local: &crossbeam_deque::Worker<Task>) -> Option<Task> {
        loop {
            match self.injector.steal_batch_and_pop(local) {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Whether worker `index`'s stealable queue holds a task: a racy reading.
    pub(crate) fn has_queued(&self, index: usize) -> bool {
        !self.stealers[index].is_empty() || !self.fresh_stealers[index].is_empty()
    }

    fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty()
            || self.stealers.iter().any(|s| !s.is_empty())
            || self.fresh_stealers.iter().any(|s| !s.is_empty())
    }

    /// Called by a worker that found nothing to do. Returns `false` when the worker must exit.
    fn sleep(&self, worker: &Worker) -> bool {
        let index = worker.index();
        // Before paying for a futex sleep and the waker's futex wake, look again for a few
        // microseconds: a producer outside the runtime, or an actor on another worker, is often
        // about to hand over more work. Bounded, so an idle runtime still goes quiet at once.
        for round in 0..SPIN_BEFORE_PARK {
            if self.has_stealable_work() || worker.lingering_has_mail() || !self.is_open() {
                return true;
            }
            if round % 16 == 15 {
                // Sockets too, where there are any: a request that arrives now is served at
                // once rather than after the worker has settled into `epoll_wait`. With sockets
                // about, no yield: on a loaded machine a yield can cost a whole time slice,
                // right when a reply is due.
                if self.io.get().is_some() {
                    if self.poll_io(worker) {
                        return true;
                    }
                } else {
                    std::thread::yield_now();
                }
            } else {
                std::hint::spin_loop();
            }
        }
        // Timers due now fire here, before this worker counts as asleep: their sends queue the
        // ticked actors on this worker (its next slot), to run at once.
        if self.timers.fire_due() {
            return true;
        }
        // Lingering actors hold activations: give them up before counting for quiescence.
        if worker.stop_lingering() {
            return true;
        }
        worker.publish();
        {
            let mut sleepers = self.sleepers.lock();
            sleepers.push(index);
            self.num_sleeping.fetch_add(1, SeqCst);
        }
        fence(SeqCst);
        if self.has_stealable_work() {
            self.cancel_sleep(index);
            return true;
        }
        self.try_quiesce();
        self.stats[index].parks.fetch_add(1, Relaxed);
        // One sleeper keeps time for the others (`crate::timer`).
        let keeper = Keeper::take(self, index);
        loop {
            if self.state.load(SeqCst) != RUNNING {
                return false;
            }
            if self.notified[index].swap(false, AcqRel) {
                keeper.woken_for_work();
                return true;
            }
            let until = keeper.arm();
            if until.is_some_and(|u| u <= Instant::now()) {
                // A timer is due: wake up to fire it (`sleep` fires before sleeping again).
                self.cancel_sleep(index);
                return true;
            }
            // The first sleeper to get there waits in `epoll_wait` rather than its futex, so
            // that a socket's edge runs its owner's turn here, with no hand-off.
            let woken = || self.notified[index].load(SeqCst);
            match self
                .io
                .get()
                .and_then(|io| io.poll(index, true, until, woken))
            {
                Some(edges) if !edges.is_empty() => {
                    // Awake before the owners' sends queue work on this worker: a worker on the
                    // sleepers list must not hold unpublished activations (quiescence, 4.4).
                    self.cancel_sleep(index);
                    keeper.woken_for_work();
                    edges.deliver();
                    return true;
                }
                // Woken, timed out, or nothing came: look at the flags and the deadline again.
                Some(_) => {}
                None => match until {
                    Some(u) => worker.park_until(u),
                    None => worker.park(),
                },
            }
        }
    }

    /// A timer became the earliest, due at `deadline` (`Wheel::nanos`): make sure a sleeper
    /// wakes for it. Wakes the timekeeper if it sleeps past it; with no timekeeper, wakes a
    /// sleeper, which becomes one. With every worker busy nobody is woken: busy workers look at
    /// the timers every `INJECTOR_INTERVAL` picks.
    ///
    /// Pairs with `Keeper::take` and `Keeper::arm`: the wheel publishes its next deadline, then
    /// a SeqCst fence, then this reads the keeper and its deadline; a keeper publishes itself
    /// and its deadline, then a fence, then reads the wheel's. So either this call sees a keeper
    /// that will sleep past the deadline and wakes it, or the keeper sees the deadline (loom
    /// model: `loom_keeper`).
    pub(crate) fn timer_added(&self, deadline: u64) {
        if self.baton.is_some() {
            return;
        }
        fence(SeqCst);
        let keeper = self.keeper.load(SeqCst);
        if keeper != NO_KEEPER {
            if deadline < self.keeper_until.load(SeqCst) {
                self.wake_sleeper(keeper);
            }
        } else if self.num_sleeping.load(SeqCst) != 0 {
            self.notify_one();
        }
    }

    /// Wakes worker `index` if it sleeps, as `notify_one` wakes one.
    fn wake_sleeper(&self, index: usize) {
        let mut sleepers = self.sleepers.lock();
        let Some(pos) = sleepers.iter().position(|&i| i == index) else {
            return;
        };
        sleepers.swap_remove(pos);
        self.num_sleeping.fetch_sub(1, SeqCst);
        self.notified[index].store(true, SeqCst);
        drop(sleepers);
        self.wake_worker(index, self.io.get());
    }

    pub(crate) fn cancel_sleep(&self, index: usize) {
        let mut sleepers = self.sleepers.lock();
        if let Some(pos) = sleepers.iter().position(|&i| i == index) {
            sleepers.swap_remove(pos);
            self.num_sleeping.fetch_sub(1, SeqCst);
        } else {
            // A waker took us off the list already; we are awake anyway.
            self.notified[index].store(false, SeqCst);
        }
    }

    /// Declares quiescence if the runtime is armed, every worker sleeps, no activation is
    /// outstanding and nothing keeps the runtime alive.
    pub(crate) fn try_quiesce(&self) {
        if let Some(baton) = &self.baton {
            // Deterministic mode: the baton holder checks at its next all-idle sweep.
            baton.kick();
            return;
        }
        if !self.armed.load(SeqCst) || self.keepalive.load(SeqCst) != 0 {
            return;
        }
        let sleepers = self.sleepers.lock();
        if sleepers.len() != self.threads() || self.state.load(SeqCst) != RUNNING {
            return;
        }
        if self.nothing_left() {
            self.state.store(QUIESCENT, SeqCst);
            drop(sleepers);
            self.finish_waiters();
        }
    }

    /// Armed, no keep-alive, and no outstanding activation in the published counts. Only
    /// meaningful while no worker runs a turn (all asleep, or all idle in deterministic mode).
    fn nothing_left(&self) -> bool {
        if !self.armed.load(SeqCst) || self.keepalive.load(SeqCst) != 0 {
            return false;
        }
        let outstanding: i64 = self
            .stats
            .iter()
            .map(|s| s.activations.load(SeqCst))
            .sum::<i64>()
            + self.external_activations.load(SeqCst);
        outstanding == 0 && self.keepalive.load(SeqCst) == 0
    }

    /// Deterministic mode, called by the baton holder when every worker has just found nothing
    /// to do (each published its count in that round): quiesce if nothing is left, else fire
    /// the next timer, else put the baton down until work arrives from outside. Returns
    /// whether the worker must exit.
    fn all_idle(&self, baton: &Baton, me: usize) -> bool {
        if self.state.load(SeqCst) != RUNNING {
            return true;
        }
        if self.nothing_left() {
            self.state.store(QUIESCENT, SeqCst);
            self.finish_waiters();
            return true;
        }
        if self.timers.fire_next() {
            baton.not_idle();
            baton.pass(me);
        } else {
            baton.put_down(me);
        }
        false
    }

    fn finish_waiters(&self) {
        if let Some(baton) = &self.baton {
            baton.close();
        }
        self.wake_all();
        let _guard = self.done_lock.lock();
        self.done.notify_all();
    }

    pub(crate) fn arm(&self) {
        self.armed.store(true, SeqCst);
        match &self.baton {
            Some(baton) => baton.start(),
            None => self.try_quiesce(),
        }
    }

    /// Blocks until the runtime is no longer running, or the deadline passes.
    pub(crate) fn wait_until_stopped(&self, deadline: Option<Instant>) -> bool {
        let mut guard = self.done_lock.lock();
        while self.state.load(SeqCst) == RUNNING {
            match deadline {
                Some(d) => {
                    if self.done.wait_until(&mut guard, d).timed_out() {
                        return self.state.load(SeqCst) != RUNNING;
                    }
                }
                None => self.done.wait(&mut guard),
            }
        }
        true
    }

    pub(crate) fn reached_quiescence(&self) -> bool {
        self.state.load(SeqCst) == QUIESCENT
    }

    /// Stops the workers (whatever they were doing) and refuses further sends.
    pub(crate) fn close(&self) {
        let _ = self.state.compare_exchange(RUNNING, CLOSED, SeqCst, SeqCst);
        self.timers.close();
        self.watchdog.close();
        self.finish_waiters();
    }

    /// Drops every task still queued in the injector. Only after the workers have exited.
    pub(crate) fn clear_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(task) => drop(task),
                Steal::Retry => continue,
                Steal::Empty => return,
            }
        }
    }

    /// A source (I/O registration, timer) that keeps the runtime alive until released.
    pub(crate) fn retain(&self) {
        self.keepalive.fetch_add(1, SeqCst);
    }

    pub(crate) fn release(&self) {
        if self.keepalive.fetch_sub(1, SeqCst) == 1 {
            self.try_quiesce();
        }
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let c = &self.counters;
        let spawned = c.spawned.get();
        let workers: Vec<WorkerMetrics> = self
            .stats
            .iter()
            .map(|s| WorkerMetrics {
                messages: s.messages.load(Relaxed),
                turns: s.turns.load(Relaxed),
                steals: s.steals.load(Relaxed),
                parks: s.parks.load(Relaxed),
            })
            .collect();
        Metrics {
            messages: workers.iter().map(|w| w.messages).sum(),
            workers,
            spawned,
            live_actors: spawned.saturating_sub(c.stopped.get() + c.collected.get()),
            scheduled_actors: self
                .stats
                .iter()
                .map(|s| s.activations.load(Relaxed))
                .sum::<i64>()
                + self.external_activations.load(Relaxed),
            dropped_messages: c.dropped.get(),
            panics: c.panics.get() + self.timers.panics(),
            handoffs: c.handoffs.get(),
            io_failures: self.io.get().map_or(0, |io| io.failures.load(Relaxed)),
            mutes: c.mutes.get(),
            unmutes: c.unmutes.get(),
            cycle_refusals: c.cycle_refusals.get(),
            overloads: c.overloads.get(),
            muted_actors: c.parks.get().saturating_sub(c.resumes.get()),
            overloaded_actors: c.overloads.get().saturating_sub(c.recoveries.get()),
            pressured_actors: c
                .pressure_applied
                .get()
                .saturating_sub(c.pressure_released.get()),
        }
    }
}

/// A sleeping worker's part in keeping time (see [`crate::timer`]): at most one sleeper holds the
/// role, and it sleeps only until the earliest timer's deadline. The role ends when the worker
/// wakes (dropping this).
struct Keeper<'a> {
    shared: &'a Shared,
    index: usize,
    holds: std::cell::Cell<bool>,
    /// The deadline it last slept until.
    armed: std::cell::Cell<Option<Instant>>,
}

impl<'a> Keeper<'a> {
    /// Takes the role if timers are pending and nobody holds it. Called once `index` is on the
    /// sleepers list.
    fn take(shared: &'a Shared, index: usize) -> Self {
        let holds = shared.baton.is_none()
            && shared.timers.next_deadline().is_some()
            && shared
                .keeper
                .compare_exchange(NO_KEEPER, index, SeqCst, SeqCst)
                .is_ok();
        Keeper {
            shared,
            index,
            holds: std::cell::Cell::new(holds),
            armed: std::cell::Cell::new(None),
        }
    }

    /// The deadline to sleep until, if this worker keeps time: published first (for
    /// `Shared::timer_added`), then the wheel is read again, so that a timer added meanwhile
    /// is either seen here or wakes this worker.
    fn arm(&self) -> Option<Instant> {
        if !self.holds.get() {
            return None;
        }
        let timers = &self.shared.timers;
        loop {
            let next = timers.next_deadline();
            let nanos = next.map_or(u64::MAX, |d| timers.nanos(d));
            self.shared.keeper_until.store(nanos, SeqCst);
            fence(SeqCst);
            if timers.next_deadline() == next {
                self.armed.set(next);
                return next;
            }
        }
    }

    /// Woken for work rather than for a deadline: the role must not stay with a worker that is
    /// about to run actors (a long behaviour would hold every timer up), so hand it to another
    /// sleeper, woken for that, if timers are pending.
    fn woken_for_work(&self) {
        if self.holds.get() {
            self.release();
            let next = self.shared.timers.next_deadline();
            // Woken by `timer_added` for an earlier deadline (not for work): this worker comes
            // straight back to fire or re-arm, no need to wake another.
            let kicked = matches!((next, self.armed.get()), (Some(n), Some(a)) if n < a);
            if next.is_some() && !kicked && self.shared.has_sleepers() {
                self.shared.notify_one();
            }
        }
    }

    /// Gives the role up, once. The deadline is cleared first, while the role is still ours:
    /// cleared after, it could overwrite the deadline of the next keeper.
    fn release(&self) {
        if self.holds.replace(false) {
            self.shared.keeper_until.store(u64::MAX, SeqCst);
            let _ = self
                .shared
                .keeper
                .compare_exchange(self.index, NO_KEEPER, SeqCst, SeqCst);
        }
    }
}

impl Drop for Keeper<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(all(test, loom))]
mod loom_keeper {
    //! The handshake between a timer that becomes the earliest (`Shared::timer_added`) and the
    //! sleeper that keeps time (`Keeper::take`, `Keeper::arm`), with loom's atomics standing in
    //! for the wheel's `next`, `Shared::keeper` and `Shared::keeper_until` (the orderings, the
    //! fences and the order of the steps are the code's):
    //!
    //! * timekeeper: CAS `keeper` from none to itself; then, until the wheel's deadline reads
    //!   the same twice, publish it in `keeper_until`, SeqCst fence, read the wheel again;
    //!   sleep until that deadline;
    //! * adder: publish the earlier deadline (`Wheel::publish_next`), SeqCst fence, read
    //!   `keeper`: if a keeper sleeps past the deadline, wake it (`wake_sleeper`); if none
    //!   keeps time, wake a sleeper (`notify_one`), which takes the role and reads the wheel.
    //!
    //! The timekeeper must never sleep past the new deadline unwoken.
    use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize};
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    const ME: usize = 1;
    const NONE: usize = usize::MAX;
    const LATE: u64 = 100;
    const EARLY: u64 = 10;

    #[test]
    fn the_timekeeper_never_sleeps_past_an_earlier_timer_unwoken() {
        loom::model(|| {
            let next = Arc::new(AtomicU64::new(LATE));
            let keeper = Arc::new(AtomicUsize::new(NONE));
            let until = Arc::new(AtomicU64::new(u64::MAX));
            let kicked = Arc::new(AtomicBool::new(false));

            let adder = {
                let (next, keeper, until, kicked) =
                    (next.clone(), keeper.clone(), until.clone(), kicked.clone());
                loom::thread::spawn(move || {
                    next.store(EARLY, SeqCst);
                    fence(SeqCst);
                    let k = keeper.load(SeqCst);
                    // With no keeper, a sleeper is woken to become one: it reads the wheel after
                    // this store, which the model's keeper below does when it takes the role.
                    if k != NONE && EARLY < until.load(SeqCst) {
                        kicked.store(true, SeqCst);
                    }
                })
            };

            assert!(keeper.compare_exchange(NONE, ME, SeqCst, SeqCst).is_ok());
            let slept_until = loop {
                let seen = next.load(SeqCst);
                until.store(seen, SeqCst);
                fence(SeqCst);
                if next.load(SeqCst) == seen {
                    break seen;
                }
            };

            adder.join().unwrap();
            assert!(
                slept_until <= EARLY || kicked.load(SeqCst),
                "slept until {slept_until} past the timer at {EARLY}, unwoken"
            );
        });
    }
}
