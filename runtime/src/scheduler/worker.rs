//! One worker thread: its run queues, its slice of the activation count, and the turn-local
//! bookkeeping for muting.
//!
//! Each worker owns a FIFO crossbeam deque that others steal from, plus a one-task *next slot*
//! that other workers do not steal from: an actor woken by a send from this worker goes there, so
//! a request/response pair keeps bouncing on one core with hot caches instead of waking another
//! worker on every message (tokio's LIFO slot does the same). The next slot yields to the queue
//! after a few consecutive uses whenever other actors are waiting, so it cannot starve them.
//!
//! The next slot and the lingering list live in the worker's [`Core`], shared with
//! the watchdog: if this worker's turn runs long, the watchdog takes what they hold to the other
//! workers (see [`super::watchdog`]). Only this worker's thread calls the owner methods of the
//! core's [`NextSlot`](super::handoff::NextSlot) and [`Lendable`](super::handoff::Lendable).

use super::deterministic::{AfterRound, Baton};
use super::{Core, Shared};
use crate::cell::{Header, Task};
use crate::mailbox::LINGER_TOKEN;
use crate::metrics::WorkerStats;
use crossbeam_deque::Steal;
use crossbeam_utils::sync::Parker;
use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;

/// Tasks this worker's queue must hold before a push wakes a sleeping worker to share them. One
/// queued task is what this worker runs next anyway: waking another worker for it costs a futex
/// wake here and a steal there, and splits a producer from its consumer across cores (counting
/// on two workers ran at half its one-worker rate). The watchdog covers a lone task stuck behind
/// a long behaviour.
const WAKE_THRESHOLD: usize = 2;
/// Consecutive next-slot runs allowed while other actors wait in the queue.
const NEXT_SLOT_STREAK: u32 = 3;
/// Every this many picks, the FIFO queue and then the oldest spawn are served before the newest
/// spawns. 8 cost skynet 20 MiB at its peak against 4.8 MiB with no such pick; 32 costs 11 MiB
/// and still gives a queued actor one pick in 32 under an endless run of spawns.
const FRESH_YIELD: u32 = 32;
/// Check the injector first every this many picks, so outside work is never starved.
const INJECTOR_INTERVAL: u32 = 61;
/// Most drained actors a worker keeps activated while it looks for work (see the scheduler's
/// "Lingering"): each costs one load per look.
const LINGER_MAX: usize = 64;

thread_local! {
    static CURRENT: Cell<*const Worker> = const { Cell::new(ptr::null()) };
}

/// Whether the calling thread is a worker of some rein runtime.
pub(crate) fn on_worker_thread() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// Runs `send` so that a receiver it finds blocking is not noted: the behaviour that calls it
/// is not muted for that send (`ActorRef::send_ignoring_pressure`). Costs a thread-local read
/// and two stores; nothing on the plain send path.
pub(crate) fn ignoring_pressure<R>(send: impl FnOnce() -> R) -> R {
    /// Restores the flag however `send` ends.
    struct Restore<'a>(&'a Cell<bool>, bool);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.0.set(self.1);
        }
    }
    let worker = CURRENT.with(|c| c.get());
    // SAFETY: as in `Worker::with_current`: `CURRENT` is set only while `run` borrows the worker
    // on this very thread, and cleared before that borrow ends.
    match unsafe { worker.as_ref() } {
        // Outside the workers nobody is muted anyway.
        None => send(),
        Some(worker) => {
            let _restore = Restore(
                &worker.ignore_pressure,
                worker.ignore_pressure.replace(true),
            );
            send()
        }
    }
}

pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    /// `&shared.cores[index]` and `&shared.stats[index]`, kept at hand: the next slot is on
    /// every hand-off's path, and the figures are published at the end of every turn.
    core: *const Core,
    stats: *const WorkerStats,
    local: crossbeam_deque::Worker<Task>,
    /// Actors spawned on this worker, waiting for their first turn: last spawned, first run
    /// (see [`push_fresh`](Self::push_fresh)). Stealable from the other end, the oldest.
    fresh: crossbeam_deque::Worker<Task>,
    parker: Parker,
    next_streak: Cell<u32>,
    tick: Cell<u32>,
    rng: Cell<u32>,
    activations: Cell<i64>,
    messages: Cell<u64>,
    turns: Cell<u64>,
    steals: Cell<u64>,
    /// The header of the actor whose turn runs now (null between turns).
    current: Cell<*const Header>,
    /// Receivers that blocked when the current behaviour sent to them.
    blocking: RefCell<Vec<Task>>,
    /// Set while a send that must not mute its sender runs (see [`ignoring_pressure`]).
    ignore_pressure: Cell<bool>,
    /// Whether the running turn lends the lingering list to the watchdog.
    lending: Cell<bool>,
    /// Whether the lingering list is non-empty (kept by `with_lingering`), so that a turn need
    /// not look at the list to decide whether to lend it.
    lingers: Cell<bool>,
    /// Where the next look for a lingering actor with mail starts.
    linger_cursor: Cell<usize>,
    /// Whether a turn runs now (user code may run long), rather than the loop between turns
    /// (which runs whatever the next slot holds at once).
    in_turn: Cell<bool>,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared>,
        local: crossbeam_deque::Worker<Task>,
        fresh: crossbeam_deque::Worker<Task>,
        parker: Parker,
    ) -> Self {
        let core: *const Core = &*shared.cores[index];
        let stats: *const WorkerStats = &*shared.stats[index];
        Worker {
            index,
            core,
            stats,
            shared,
            local,
            fresh,
            parker,
            next_streak: Cell::new(0),
            tick: Cell::new(0),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32).wrapping_mul(0x85EB_CA6B) | 1),
            activations: Cell::new(0),
            messages: Cell::new(0),
            turns: Cell::new(0),
            steals: Cell::new(0),
            current: Cell::new(ptr::null()),
            blocking: RefCell::new(Vec::new()),
            ignore_pressure: Cell::new(false),
            lending: Cell::new(false),
            lingers: Cell::new(false),
            linger_cursor: Cell::new(0),
            in_turn: Cell::new(false),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// This worker's next slot and lingering list. Only this worker calls their owner methods.
    #[inline]
    fn core(&self) -> &Core {
        // SAFETY: `core` points into `shared.cores`, a boxed slice that `shared` (which this
        // worker holds) never reallocates or frees while it lives.
        unsafe { &*self.core }
    }

    /// This worker's published figures.
    #[inline]
    fn stats(&self) -> &WorkerStats {
        // SAFETY: as for `core`, in `shared.stats`.
        unsafe { &*self.stats }
    }

    /// Takes the next slot's task, unless the watchdog took it.
    #[inline]
    fn take_next(&self) -> Option<Task> {
        // SAFETY: this worker owns its core's slot, and this is its thread.
        unsafe { self.core().next.take() }
    }

    /// Changes the lingering list. `f` must not run user code (drop tasks outside it).
    #[inline]
    fn with_lingering<R>(&self, f: impl FnOnce(&mut Vec<Task>) -> R) -> R {
        debug_assert!(!self.lending.get());
        // SAFETY: this worker owns its core's list, this is its thread, and the list is lent only
        // between `begin_turn` and `end_turn`, inside which nothing calls this (turns touch the
        // list only once they have ended: `may_linger`, `linger`).
        unsafe {
            self.core().lingering.with_mut(|lingering| {
                let r = f(lingering);
                self.lingers.set(!lingering.is_empty());
                r
            })
        }
    }

    /// Reads the lingering list (owner only; no user code in `f`).
    #[inline]
    fn read_lingering<R>(&self, f: impl FnOnce(&Vec<Task>) -> R) -> R {
        // SAFETY: this worker owns its core's list and this is its thread; a borrower only
        // reads too.
        unsafe { self.core().lingering.with(f) }
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Runs `f` with this thread's worker if it belongs to `shared`'s runtime. A worker of one
    /// runtime sending to an actor of another goes through that runtime's injector.
    #[inline]
    pub(crate) fn with_current<R>(shared: &Shared, f: impl FnOnce(Option<&Worker>) -> R) -> R {
        let worker = CURRENT.with(|c| c.get());
        // SAFETY: `CURRENT` is set only while `run` borrows the worker on this very thread, and
        // cleared before that borrow ends.
        let worker = unsafe { worker.as_ref() };
        f(worker.filter(|w| ptr::eq(Arc::as_ptr(&w.shared), shared)))
    }

    /// Runs `f` with this thread's worker, of whatever runtime.
    pub(crate) fn with_any_current<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
        let worker = CURRENT.with(|c| c.get());
        // SAFETY: as in `with_current`.
        f(unsafe { worker.as_ref() })
    }

    /// The header of the actor whose behaviour runs now, if any.
    pub(crate) fn current_header(&self) -> Option<&Header> {
        // SAFETY: `current` is set by `begin_turn` to the header of the cell whose turn is
        // running, which that turn keeps alive, and cleared by `end_turn` before the turn ends.
        unsafe { self.current.get().as_ref() }
    }

    /// The worker loop: run actors until the runtime stops.
    pub(crate) fn run(&self) {
        /// Clears `CURRENT` however `run` ends: if a panic escapes (see `Builder::build`), the
        /// worker is dropped while unwinding, and code that runs then (a task's drop) must not
        /// find a dangling worker.
        struct Current;
        impl Drop for Current {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(ptr::null()));
            }
        }
        CURRENT.with(|c| c.set(self));
        let _current = Current;
        if let Some(baton) = &self.shared.baton {
            self.run_deterministic(baton);
        }
        // A relaxed load per turn: shutdown waits at most for the turn in progress.
        while self.shared.is_open() {
            if let Some(task) = self.find_task() {
                #[cfg(test)]
                if self.shared.inject_fault.swap(false, Relaxed) {
                    // A stand-in for a runtime bug: a panic outside any behaviour, while this
                    // worker holds an activation that nobody else can run.
                    panic!("injected worker fault (an expected panic in a test)");
                }
                self.run_turn(task);
                continue;
            }
            if !self.shared.sleep(self) {
                break;
            }
        }
        self.stop_lingering();
        self.publish();
        // Drop what is left (its actors are stopped by the shutdown that follows).
        drop(self.take_next());
        while self.local.pop().is_some() {}
        while self.fresh.pop().is_some() {}
    }

    /// The worker loop in deterministic mode (see [`super::deterministic`]): one round (a turn,
    /// or one look for work) per hand of the baton.
    fn run_deterministic(&self, baton: &Baton) {
        while baton.acquire(self.index) {
            let busy = match self.find_task() {
                Some(task) => {
                    self.run_turn(task);
                    true
                }
                // Lingering actors hold activations: give them up before counting as idle.
                None => self.stop_lingering(),
            };
            if !busy {
                self.publish();
            }
            match baton.after_round(self.index, busy) {
                AfterRound::Pass => baton.pass(self.index),
                AfterRound::FireTimer => {
                    if self.shared.timers.fire_next() {
                        baton.not_idle();
                    }
                    baton.pass(self.index);
                }
                AfterRound::AllIdle => {
                    if self.shared.all_idle(baton, self.index) {
                        break;
                    }
                }
            }
        }
    }

    // Inlined into both worker loops: a call per turn shows on ping-pong.
    #[inline(always)]
    fn find_task(&self) -> Option<Task> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if self.shared.take_io_due() {
            // Every worker has been busy for a tick (the watchdog's), so nobody waits in
            // `epoll_wait`: look at the sockets now rather than at the next interval, which
            // behind long turns can be milliseconds away.
            self.shared.poll_io(self);
        }
        if tick % INJECTOR_INTERVAL == 0 {
            // A worker that has become busy moves its lingering actors that have mail to its
            // stealable queue, so that a long run of local work (say, an actor that keeps
            // messaging itself) cannot keep them waiting while other workers could run them.
            // The others keep lingering: they have nothing to wait for.
            if self.lingers.get() && self.has_queued_work() {
                if let Some(task) = self.take_lingering_with_mail(true) {
                    self.push_back(task);
                }
            }
            // Sockets too: while every worker runs actors, nobody waits in `epoll_wait`. And
            // timers, for the same reason (one load when none is due).
            self.shared.poll_io(self);
            self.shared.timers.fire_due();
            if let Some(task) = self.shared.steal_from_injector(&self.local) {
                return Some(task);
            }
        }
        if let Some(task) = self.take_next() {
            let streak = self.next_streak.get();
            if streak < NEXT_SLOT_STREAK || (self.local.is_empty() && self.fresh.is_empty()) {
                self.next_streak.set(streak + 1);
                return Some(task);
            }
            // Others are waiting: queue it behind them.
            self.local.push(task);
        }
        self.next_streak.set(0);
        // Freshly spawned actors first, newest first: a tree of spawns unfolds depth first, so
        // the actors alive at once are about depth × fan-out, not a whole level. Every
        // `FRESH_YIELD`-th pick serves the FIFO queue first and then the *oldest* spawn, so
        // that neither queued actors nor early spawns wait behind an endless run of new ones.
        let queued = if tick % FRESH_YIELD == 0 {
            self.local
                .pop()
                .or_else(|| self.oldest_fresh())
                .or_else(|| self.fresh.pop())
        } else {
            self.fresh.pop().or_else(|| self.local.pop())
        };
        queued
            .or_else(|| self.take_lingering_with_mail(self.shared.has_sleepers()))
            .or_else(|| self.shared.steal_from_injector(&self.local))
            .or_else(|| self.steal())
    }

    /// The oldest actor on this worker's spawn stack, taken from the end thieves take from.
    fn oldest_fresh(&self) -> Option<Task> {
        loop {
            match self.shared.fresh_stealers[self.index].steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Whether the turn ending now may keep its drained actor activated: only when this worker
    /// has nothing else queued (a busy worker would make the actor's next message wait behind its
    /// queue, where no other worker can take it) and has room.
    #[inline]
    pub(crate) fn may_linger(&self) -> bool {
        !self.has_queued_work() && self.read_lingering(Vec::len) < LINGER_MAX
    }

    /// Whether the next slot holds a task.
    #[inline]
    pub(crate) fn next_is_taken(&self) -> bool {
        self.core().next.is_full()
    }

    /// Whether the next slot or the local queues hold a task.
    #[inline]
    fn has_queued_work(&self) -> bool {
        self.next_is_taken() || !self.local.is_empty() || !self.fresh.is_empty()
    }

    /// Watches a drained actor whose turn just set its lingering token, until it gets mail or
    /// this worker stops looking for work.
    pub(crate) fn linger(&self, task: Task) {
        self.with_lingering(|lingering| lingering.push(task));
    }

    /// Claims `task`'s lingering token if mail waits and runs it next on this worker (without
    /// counting a new activation: the token's carries over). If it has no mail (the lingering
    /// worker handled it already) or someone else claimed it, there is nothing to do.
    pub(crate) fn resume_claimed(&self, task: Task) {
        if task.claim_lingering().is_some() {
            self.push_next(task);
        }
    }

    /// Whether any lingering actor has mail: one load per lingering actor.
    pub(crate) fn lingering_has_mail(&self) -> bool {
        self.read_lingering(|lingering| lingering.iter().any(|t| t.raw_count() > LINGER_TOKEN))
    }

    /// Claims a lingering actor that has mail, to run now, and forgets entries someone else
    /// claimed. With `share`, it claims every one that has mail and queues the others where
    /// idle workers can steal them; without, the others keep lingering (so that the turns they
    /// are about to run can linger again) and the next look starts after this one, so that
    /// every lingering actor gets its turn.
    fn take_lingering_with_mail(&self, share: bool) -> Option<Task> {
        let mut first = None;
        let mut queued = false;
        // Entries to forget, dropped once the list is no longer borrowed (a drop may be the last
        // reference to an actor, whose `Drop` is user code).
        let mut forgotten = Vec::new();
        self.with_lingering(|lingering| {
            let mut i = self.linger_cursor.get().min(lingering.len());
            let mut looked = 0;
            while looked < lingering.len() && (share || first.is_none()) {
                if i >= lingering.len() {
                    i = 0;
                }
                let count = lingering[i].raw_count();
                if count == LINGER_TOKEN {
                    i += 1;
                    looked += 1;
                    continue;
                }
                // `swap_remove` brings the last entry to `i`: look there again.
                let task = lingering.swap_remove(i);
                if count & LINGER_TOKEN == 0 {
                    // A stale entry: claimed by someone else since.
                    forgotten.push(task);
                    continue;
                }
                // `None`: someone else claimed it since we read `count` (mail is never retired
                // while the token is set, so it did not lose its mail): a stale entry.
                match task.claim_lingering() {
                    Some(_) if first.is_none() => first = Some(task),
                    Some(_) => {
                        self.local.push(task);
                        queued = true;
                    }
                    None => forgotten.push(task),
                }
            }
            self.linger_cursor.set(i);
        });
        drop(forgotten);
        if queued {
            self.shared.notify_one();
        }
        first
    }

    /// Claims back every lingering actor, before this worker sleeps or exits. Returns whether
    /// any had mail (and is now queued here).
    pub(crate) fn stop_lingering(&self) -> bool {
        let lingering = self.with_lingering(std::mem::take);
        let mut queued = false;
        for task in lingering {
            match task.end_lingering() {
                Some(0) => self.activation_ended(),
                Some(_) => {
                    self.push_back(task);
                    queued = true;
                }
                None => {}
            }
        }
        queued
    }

    fn steal(&self) -> Option<Task> {
        let stealers = &self.shared.stealers;
        let n = stealers.len();
        if n <= 1 {
            return None;
        }
        // xorshift: a cheap random starting victim spreads thieves out.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        let start = x as usize % n;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            loop {
                match stealers[victim].steal_batch_and_pop(&self.local) {
                    Steal::Success(task) => {
                        self.steals.set(self.steals.get() + 1);
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
            // Its spawns not yet run, the oldest first: in a tree, the biggest subtree.
            loop {
                match self.shared.fresh_stealers[victim].steal() {
                    Steal::Success(task) => {
                        self.steals.set(self.steals.get() + 1);
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    /// Runs one turn, marking it as such for [`push_next`](Self::push_next).
    #[inline(always)]
    fn run_turn(&self, task: Task) {
        self.in_turn.set(true);
        task.run_turn(self);
        self.in_turn.set(false);
    }

    /// Queues an actor woken by a send from this worker into the next slot.
    #[inline(always)]
    pub(crate) fn push_next(&self, task: Task) {
        // SAFETY: this worker owns its core's slot, and this is its thread.
        unsafe {
            self.core()
                .next
                .push(task, |previous| self.push_back(previous))
        };
        // Only this worker runs the slot's task, unless its turn runs long: then the watchdog
        // must be looking. One load while it is. Between turns (readiness delivered by this
        // worker's poll, say) the loop runs the slot next, so nothing can be stuck behind user
        // code and the watchdog need not be woken: waking it on every socket edge cost the
        // round-trip p99 of a TCP echo ~0.4 ms on two cores.
        if self.in_turn.get() {
            self.shared.watchdog.exposed();
        }
    }

    /// Queues a freshly spawned actor (its first activation) on this worker's spawn stack: it runs
    /// before the FIFO queue, newest first, so a tree of spawns unfolds depth first (skynet's
    /// million actors peaked at 215 MiB breadth first, 11 MiB this way). Wakes a sleeper under the
    /// same rule as [`push_back`](Self::push_back).
    #[inline]
    pub(crate) fn push_fresh(&self, task: Task) {
        self.fresh.push(task);
        self.after_local_push(self.fresh.len());
    }

    /// Queues an actor at the back of this worker's stealable queue.
    #[inline]
    pub(crate) fn push_back(&self, task: Task) {
        self.local.push(task);
        self.after_local_push(self.local.len());
    }

    /// After a push into one of this worker's stealable queues, now `len` long: wake a sleeper
    /// to share them once there is enough to share (architecture 4.7).
    #[inline(always)]
    fn after_local_push(&self, len: usize) {
        if len >= WAKE_THRESHOLD {
            self.shared.notify_one();
        } else {
            // Nobody was woken for it: if a turn runs long before this worker comes back to its
            // queues, the watchdog must wake someone. That holds between turns too: edges
            // delivered by this worker's poll fill the next slot, which runs before the queues,
            // and a second edge pushes the first one's actor here.
            self.shared.watchdog.exposed();
        }
    }

    #[inline]
    pub(crate) fn activation_started(&self) {
        self.activations.set(self.activations.get() + 1);
    }

    #[inline]
    pub(crate) fn activation_ended(&self) {
        self.activations.set(self.activations.get() - 1);
    }

    #[inline]
    pub(crate) fn begin_turn(&self, header: &Header) {
        // Before `current` is set: forgetting a stale entry may drop an actor's last reference,
        // and its `Drop` must not count as this turn's behaviour.
        let lend = self.lingers.get() && self.forget_claimed_lingering();
        self.current.set(header);
        // Lend the lingering actors to the watchdog for the length of the turn, so that they do
        // not wait for it if it runs long. A worker that lingers on nothing pays one test; one
        // whose list holds only stale entries (actors claimed since, typically the very actor
        // about to run, claimed by an edge this worker delivered) forgets them instead of
        // waking the watchdog for nothing.
        if lend {
            self.lend_lingering();
        }
    }

    /// Drops the lingering entries whose token someone claimed; returns whether any is left.
    #[inline(never)]
    fn forget_claimed_lingering(&self) -> bool {
        let stale: Vec<Task> = self.with_lingering(|lingering| {
            let (live, stale) = std::mem::take(lingering)
                .into_iter()
                .partition(|t| t.raw_count() & LINGER_TOKEN != 0);
            *lingering = live;
            stale
        });
        // Dropped outside `with_lingering`: a last reference runs the actor's drop.
        drop(stale);
        self.lingers.get()
    }

    #[inline(never)]
    fn lend_lingering(&self) {
        // SAFETY: this worker owns its core's list, this is its thread, and it is closed (each
        // turn closes it in `end_turn`); the list is not changed until then.
        unsafe { self.core().lingering.open() };
        self.lending.set(true);
        self.shared.watchdog.exposed();
    }

    #[inline]
    pub(crate) fn end_turn(&self) {
        if self.lending.get() {
            self.stop_lending();
        }
        self.current.set(ptr::null());
        self.blocking.borrow_mut().clear();
    }

    #[inline(never)]
    fn stop_lending(&self) {
        self.lending.set(false);
        // SAFETY: as in `lend_lingering`: ours, opened there.
        unsafe { self.core().lingering.close() };
    }

    /// Publishes this turn's figures: relaxed stores of counters only this worker writes.
    pub(crate) fn count_turn(&self, handled: usize) {
        self.messages.set(self.messages.get() + handled as u64);
        self.turns.set(self.turns.get() + 1);
        let stats = self.stats();
        stats.messages.store(self.messages.get(), Relaxed);
        stats.turns.store(self.turns.get(), Relaxed);
        stats.activations.store(self.activations.get(), Relaxed);
    }

    /// Publishes everything before sleeping, for the quiescence check.
    pub(crate) fn publish(&self) {
        let stats = self.stats();
        stats.messages.store(self.messages.get(), Relaxed);
        stats.turns.store(self.turns.get(), Relaxed);
        stats.steals.store(self.steals.get(), Relaxed);
        stats.activations.store(self.activations.get(), SeqCst);
    }

    pub(crate) fn park(&self) {
        self.parker.park();
    }

    /// Sleeps until woken or until `deadline` (the timekeeper's sleep).
    pub(crate) fn park_until(&self, deadline: std::time::Instant) {
        self.parker.park_deadline(deadline);
    }

    /// Notes that the running behaviour sent to a receiver that blocks (overloaded, under
    /// pressure or muted). Sends to self never count.
    #[inline]
    pub(crate) fn note_blocking_receiver(&self, receiver: &Header, as_task: &dyn Fn() -> Task) {
        let current = self.current.get();
        // Outside a behaviour (e.g. a `stopped` hook) there is no sender to mute; a send that
        // ignores pressure mutes nobody.
        if current.is_null() || ptr::eq(current, receiver) || self.ignore_pressure.get() {
            return;
        }
        let mut blocking = self.blocking.borrow_mut();
        if !blocking.iter().any(|t| ptr::eq(t.header(), receiver)) {
            blocking.push(as_task());
        }
    }

    #[inline]
    pub(crate) fn has_blocking_receivers(&self) -> bool {
        !self.blocking.borrow().is_empty()
    }

    pub(crate) fn take_blocking_receivers(&self) -> Vec<Task> {
        std::mem::take(&mut *self.blocking.borrow_mut())
    }
}
