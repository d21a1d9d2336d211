//! The actor cell: one allocation holding an actor's state, mailbox and scheduling word, and
//! the code of one turn.
//!
//! The scheduler sees cells only as [`Task`]s (`Arc<dyn Runnable>`). A task in a run queue *is*
//! an activation (see [`crate::mailbox`]): whoever holds it runs the next turn, and the turn
//! either hands the activation back (the mailbox count reached zero), keeps it while parked
//! (muted), keeps it while *lingering* on an otherwise idle worker (see
//! [`crate::scheduler`]'s "Lingering"), or requeues itself.

use crate::context::Context;
use crate::mailbox::{Mailbox, LINGER_TOKEN};
use crate::monitor::{ActorDown, DownReason};
use crate::mute::{self, MuteWord, Unmuted};
use crate::registry::Slot;
use crate::scheduler::{Shared, Worker};
use crate::{Actor, ActorId};
use parking_lot::Mutex;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::atomic::{AtomicPtr, AtomicU64};
use std::sync::Arc;

/// An actor as the scheduler sees it. Holding one in a run queue is holding its activation.
pub(crate) type Task = Arc<dyn Runnable>;

pub(crate) trait Runnable: Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Runs one turn. `self` is the activation; the turn decides where it goes next.
    fn run_turn(self: Arc<Self>, worker: &Worker);
    /// Stops the actor at runtime shutdown, after every worker has exited. Returns the number of
    /// messages that were still queued.
    fn stop_at_shutdown(self: Arc<Self>) -> u64;
    /// The backlog: messages counted in and not yet handled.
    fn backlog(&self) -> usize;
    /// The mailbox count with its lingering token (see `crate::mailbox`): a racy reading.
    fn raw_count(&self) -> usize;
    /// Claims a lingering actor's activation (see `Mailbox::claim_lingering`).
    fn claim_lingering(&self) -> Option<usize>;
}

/// The type-erased part of a cell that other actors and the scheduler touch.
pub(crate) struct Header {
    pub(crate) word: MuteWord,
    pub(crate) id: ActorId,
    pub(crate) shared: Arc<Shared>,
    pub(crate) slot: Slot,
    /// Rarely used (muting, monitors), so allocated on first use: a null pointer costs an idle
    /// actor 8 bytes instead of a lock and a box.
    extras: AtomicPtr<ExtrasCell>,
}

type MonitorFn = Box<dyn FnOnce(&ActorDown) + Send>;

/// The lazily allocated part of a header: per-actor watermarks (read without the lock, once
/// `OWN_WATERMARKS` is seen) and everything behind the lock.
#[derive(Default)]
struct ExtrasCell {
    /// `high << 32 | low`: one word, so a reader never pairs an old `low` with a new `high`.
    watermarks: AtomicU64,
    locked: Mutex<Extras>,
}

#[derive(Default)]
struct Extras {
    /// Senders muted on this actor, to unmute when it stops blocking.
    muted_senders: Vec<Task>,
    /// Called once when the actor stops.
    monitors: Vec<MonitorFn>,
    /// Set when the actor has stopped; a monitor added later is told at once.
    down: Option<ActorDown>,
    /// Senders this actor never mutes (see `rein_backpressure::Backpressure::exempt`).
    exempt: Vec<ActorId>,
}

impl Header {
    fn with_extras<R>(&self, f: impl FnOnce(&mut Extras) -> R) -> R {
        let mut guard = self.extras_cell().locked.lock();
        f(&mut guard)
    }

    fn extras_cell(&self) -> &ExtrasCell {
        let mut ptr = self.extras.load(Acquire);
        if ptr.is_null() {
            let fresh = Box::into_raw(Box::default());
            // AcqRel/Acquire: publish the initialised box, or see the winner's.
            match self
                .extras
                .compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire)
            {
                Ok(_) => ptr = fresh,
                Err(winner) => {
                    // SAFETY: `fresh` was never shared; we still own it.
                    drop(unsafe { Box::from_raw(fresh) });
                    ptr = winner;
                }
            }
        }
        // SAFETY: once set, the pointer stays valid until the header is dropped (`Drop` below),
        // which cannot happen while `&self` is borrowed.
        unsafe { &*ptr }
    }

    /// This actor's `(low, high)` backlog watermarks: its own if it set them, else the
    /// runtime's. `word` is a state word read with at least Acquire.
    #[inline]
    pub(crate) fn watermarks(&self, word: u64) -> (usize, usize) {
        if word & mute::OWN_WATERMARKS == 0 {
            return (
                self.shared.config.low_watermark,
                self.shared.config.high_watermark,
            );
        }
        // Relaxed: the first value was stored before the flag was set (a SeqCst RMW), and the
        // caller read the flag with Acquire; later values replace the pair at once.
        let packed = self.extras_cell().watermarks.load(Relaxed);
        (
            (packed & u64::from(u32::MAX)) as usize,
            (packed >> 32) as usize,
        )
    }

    /// Gives this actor its own watermarks. Validated by the caller (`low < high <= u32::MAX`).
    pub(crate) fn set_watermarks(&self, low: u32, high: u32) {
        let packed = (u64::from(high) << 32) | u64::from(low);
        self.extras_cell().watermarks.store(packed, Relaxed);
        self.word.set(mute::OWN_WATERMARKS);
    }

    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.word.load() & mute::STOPPED == 0 && self.shared.is_open()
    }

    /// The send path after the message is in the mailbox: schedule the actor if it was idle and
    /// note overload and muting. `before` is the count before the push, `word` the state word
    /// read before it, `as_task` clones the receiver as a task (only when needed), `backlog`
    /// reads the receiver's backlog with SeqCst.
    #[inline]
    pub(crate) fn after_push(
        &self,
        before: usize,
        word: u64,
        as_task: impl Fn() -> Task,
        read_backlog: impl Fn() -> usize,
    ) {
        let shared = &self.shared;
        Worker::with_current(shared, |worker| {
            if before == 0 {
                shared.schedule_activation(as_task(), worker);
            } else if before & LINGER_TOKEN != 0 {
                // It lingers on a worker that watches for mail. A sender outside the runtime
                // leaves it there (that is the point); a sender on a worker takes it over, so
                // that a conversation keeps running on one core as with an idle receiver.
                if let Some(worker) = worker {
                    worker.resume_claimed(as_task());
                }
            }
            if !shared.config.backpressure {
                return;
            }
            let backlog = (before & !LINGER_TOKEN) + 1;
            let (low, high) = self.watermarks(word);
            let over = backlog >= high;
            if over && word & mute::OVERLOADED == 0 && self.word.set(mute::OVERLOADED) {
                shared.counters.overloads.inc();
                // The receiver may have drained to idle between our push and this set, having
                // read its word without the flag: then no turn of its would ever clear it.
                // Check after the set (SeqCst, see `MuteWord::set`) and recover it ourselves.
                if read_backlog() <= low && self.recover_if_drained(&read_backlog, worker) {
                    shared.counters.recoveries.inc();
                }
            }
            if let Some(worker) = worker {
                if over || mute::is_blocking(word) {
                    worker.note_blocking_receiver(self, &as_task);
                }
            }
        });
    }

    /// Registers `sender` as muted on this actor if this actor still blocks. Returns whether it
    /// did. See [`crate::mute`] for why the re-check under the lock makes this race-free.
    pub(crate) fn register_muted(&self, sender: &Task) -> bool {
        self.with_extras(|extras| {
            if mute::is_blocking(self.word.load()) && !extras.exempt.contains(&sender.header().id) {
                sender.header().word.add_mute();
                extras.muted_senders.push(sender.clone());
                true
            } else {
                false
            }
        })
    }

    /// Clears `flag`; if that leaves the actor no longer blocking, unmutes its senders.
    /// Returns whether this call cleared the flag.
    pub(crate) fn clear_blocking_flag(&self, flag: u64, worker: Option<&Worker>) -> bool {
        match self.word.clear(flag) {
            Some(now_unblocked) => {
                if now_unblocked {
                    self.unmute_senders(worker);
                }
                true
            }
            None => false,
        }
    }

    /// Clears `OVERLOADED` if the backlog is still at or below the low watermark, re-read under
    /// the muted-senders lock (senders register under it after pushing), so that a burst pushed
    /// since the turn counted its backlog does not get its senders unmuted at once.
    pub(crate) fn recover_if_drained(
        &self,
        backlog: impl Fn() -> usize,
        worker: Option<&Worker>,
    ) -> bool {
        let (low, _) = self.watermarks(self.word.load());
        let cleared =
            self.with_extras(|_| (backlog() <= low).then(|| self.word.clear(mute::OVERLOADED)));
        match cleared.flatten() {
            Some(now_unblocked) => {
                if now_unblocked {
                    self.unmute_senders(worker);
                }
                true
            }
            None => false,
        }
    }

    /// The actors muted on this one, for diagnostics.
    pub(crate) fn muted_sender_ids(&self) -> Vec<ActorId> {
        self.with_extras(|e| e.muted_senders.iter().map(|t| t.header().id).collect())
    }

    /// Unmutes every sender muted on this actor, cascading to actors muted on those that resume.
    /// Costs O(senders unmuted): no broadcast to other workers.
    pub(crate) fn unmute_senders(&self, worker: Option<&Worker>) {
        let work: Vec<Task> = self.with_extras(|e| std::mem::take(&mut e.muted_senders));
        self.unmute(work, worker);
    }

    /// Unmutes the senders muted on this actor that `pick` selects, leaving the others muted.
    /// For the deadlock escape: exempted senders.
    pub(crate) fn unmute_some(&self, pick: impl Fn(&Task) -> bool, worker: Option<&Worker>) {
        let work: Vec<Task> = self.with_extras(|e| {
            let (picked, kept) = std::mem::take(&mut e.muted_senders)
                .into_iter()
                .partition(|t| pick(t));
            e.muted_senders = kept;
            picked
        });
        self.unmute(work, worker);
    }

    /// Never mute `sender` on this actor again, and unmute it now if it is.
    pub(crate) fn exempt(&self, sender: ActorId, worker: Option<&Worker>) {
        self.with_extras(|e| {
            if !e.exempt.contains(&sender) {
                e.exempt.push(sender);
            }
        });
        self.unmute_some(|t| t.header().id == sender, worker);
    }

    fn unmute(&self, mut work: Vec<Task>, worker: Option<&Worker>) {
        while let Some(sender) = work.pop() {
            self.shared.counters.unmutes.inc();
            if let Unmuted::Resume { now_unblocked } = sender.header().word.unmute_one() {
                if now_unblocked {
                    let more = sender
                        .header()
                        .with_extras(|e| std::mem::take(&mut e.muted_senders));
                    work.extend(more);
                }
                // A parked actor kept its activation: requeue it without counting a new one.
                self.shared.counters.resumes.inc();
                self.shared.requeue(sender, worker);
            }
        }
    }

    /// Adds a monitor, or calls it at once if the actor is already down.
    pub(crate) fn add_monitor(&self, notify: MonitorFn) {
        let already = self.with_extras(|e| match &e.down {
            Some(down) => Some((notify, down.clone())),
            None => {
                e.monitors.push(notify);
                None
            }
        });
        if let Some((notify, down)) = already {
            // A monitor runs user code (the watcher's `From<ActorDown>`): contain it.
            self.shared.counters.contained(|| notify(&down));
        }
    }

    /// Marks the actor down and tells its monitors.
    fn announce_down(&self, reason: DownReason) {
        let down = ActorDown {
            id: self.id,
            reason,
        };
        let monitors = self.with_extras(|e| {
            e.down = Some(down.clone());
            std::mem::take(&mut e.monitors)
        });
        for notify in monitors {
            // Each monitor runs user code (a `From<ActorDown>`, the message's `Drop` if the
            // watcher has stopped): a panic there must not skip the others nor unwind into the
            // worker that runs this stop.
            self.shared.counters.contained(|| notify(&down));
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        let ptr = *self.extras.get_mut();
        if !ptr.is_null() {
            // SAFETY: allocated by `with_extras` with `Box::into_raw`, freed only here.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

/// State owned by whoever runs the current turn. Never touched by senders.
struct Turn<A> {
    actor: Option<A>,
    started: bool,
    /// Holding one activation beyond the queued messages: set at spawn (so `started` runs) and
    /// when parking (so senders do not schedule a muted actor).
    extra_activation: bool,
}

pub(crate) struct Cell<A: Actor> {
    header: Header,
    mailbox: Mailbox<A::Msg>,
    turn: UnsafeCell<Turn<A>>,
}

// SAFETY: `turn` is only accessed by the single thread running the actor's turn (the scheduler
// hands each activation to exactly one worker, see `crate::mailbox`) or, at shutdown, by the
// thread that joined every worker. Everything else is `Sync` on its own. `A: Send` lets the state
// move between workers.
unsafe impl<A: Actor> Sync for Cell<A> {}

/// How a behaviour left the turn.
enum After {
    Continue,
    Stop(DownReason),
    Park,
}

impl<A: Actor> Cell<A> {
    pub(crate) fn new(actor: A, header: Header) -> Self {
        Cell {
            header,
            mailbox: Mailbox::new(1),
            turn: UnsafeCell::new(Turn {
                actor: Some(actor),
                started: false,
                extra_activation: true,
            }),
        }
    }

    pub(crate) fn new_header(shared: Arc<Shared>, id: ActorId, slot: Slot) -> Header {
        Header {
            word: MuteWord::new(),
            id,
            shared,
            slot,
            extras: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Sends `msg`, or hands it back if the actor has stopped.
    #[inline]
    pub(crate) fn send(&self, msg: A::Msg, as_task: impl Fn() -> Task) -> Result<(), A::Msg> {
        let word = self.header.word.load();
        if word & mute::STOPPED != 0 || !self.header.shared.is_open() {
            return Err(msg);
        }
        let before = self.mailbox.push(msg);
        self.header
            .after_push(before, word, as_task, || self.mailbox.backlog_seqcst());
        Ok(())
    }

    /// Runs the behaviour for one message, turning a panic into a stop.
    fn handle_one(&self, actor: &mut A, ctx: &mut Context<'_, A>, msg: A::Msg) -> After {
        if catch_unwind(AssertUnwindSafe(|| actor.handle(ctx, msg))).is_err() {
            return After::Stop(DownReason::Panicked);
        }
        if ctx.stop_requested() {
            return After::Stop(DownReason::Stopped);
        }
        After::Continue
    }

    /// Drops every linked message, counting them (and any panic in their `Drop`).
    fn drain(&self) -> usize {
        let mut n = 0;
        // SAFETY: called only by the thread that holds the activation (or at shutdown).
        while let Some(msg) = unsafe { self.mailbox.pop() } {
            self.header.shared.counters.contained(move || drop(msg));
            n += 1;
        }
        n
    }

    /// Stops the actor from inside its turn (or at shutdown with no worker). Returns the number
    /// of queued messages it dropped.
    fn stop(
        self: &Arc<Self>,
        turn: &mut Turn<A>,
        worker: Option<&Worker>,
        reason: DownReason,
    ) -> usize {
        let shared = &self.header.shared;
        self.header.word.set(mute::STOPPED);
        if let Some(mut actor) = turn.actor.take() {
            if turn.started && reason != DownReason::Panicked {
                let mut ctx = Context::new(self, worker);
                shared.counters.contained(|| actor.stopped(&mut ctx));
            }
            shared.counters.contained(move || drop(actor));
        }
        if reason == DownReason::Panicked {
            shared.counters.panics.inc();
        }
        let dropped = self.drain();
        shared.counters.dropped.add(dropped as u64);
        // A stopped actor blocks nobody (`is_blocking` is false once STOPPED is set): whoever
        // was muted on it resumes. The flags are cleared too, so the gauges come back down;
        // the RMW's previous word says which ones this call cleared.
        let before = self
            .header
            .word
            .clear_returning_previous(mute::OVERLOADED | mute::PRESSURED);
        if before & mute::OVERLOADED != 0 {
            shared.counters.recoveries.inc();
        }
        if before & mute::PRESSURED != 0 {
            shared.counters.pressure_released.inc();
        }
        self.header.unmute_senders(worker);
        self.header.announce_down(reason);
        shared.counters.stopped.inc();
        dropped
    }

    /// The end of a behaviour that sent to blocking receivers: register the mutes. Returns
    /// whether the actor must park.
    fn register_mutes(self: &Arc<Self>, worker: &Worker) -> bool {
        let receivers = worker.take_blocking_receivers();
        let own = self.header.word.load();
        // An actor that is itself overloaded or under pressure must drain: never mute it.
        if own & (mute::OVERLOADED | mute::PRESSURED) != 0 {
            return false;
        }
        let me: Task = self.clone();
        let mut any = false;
        for receiver in receivers {
            if receiver.header().register_muted(&me) {
                self.header.shared.counters.mutes.inc();
                any = true;
            }
        }
        any
    }
}

impl<A: Actor> Runnable for Cell<A> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn run_turn(self: Arc<Self>, worker: &Worker) {
        // The worker belongs to this actor's runtime (tasks only enter their own runtime's
        // queues), so borrow its `Shared` rather than touch the refcount on every turn.
        let shared = worker.shared();
        debug_assert!(std::ptr::eq(shared, &*self.header.shared));
        // SAFETY: we hold the activation, so no other thread runs a turn of this actor; senders
        // never touch `turn`.
        let turn = unsafe { &mut *self.turn.get() };
        let mut handled = 0usize;
        let mut after = After::Continue;

        if let Some(actor) = turn.actor.as_mut() {
            let mut ctx = Context::new(&self, Some(worker));
            worker.begin_turn(&self.header);
            if !turn.started {
                turn.started = true;
                if catch_unwind(AssertUnwindSafe(|| actor.started(&mut ctx))).is_err() {
                    after = After::Stop(DownReason::Panicked);
                } else if ctx.stop_requested() {
                    after = After::Stop(DownReason::Stopped);
                }
            }
            while matches!(after, After::Continue) && handled < shared.config.batch {
                // SAFETY: we are the single consumer while holding the activation.
                let Some(msg) = (unsafe { self.mailbox.pop() }) else {
                    break;
                };
                handled += 1;
                after = self.handle_one(actor, &mut ctx, msg);
                if matches!(after, After::Continue)
                    && worker.has_blocking_receivers()
                    && self.register_mutes(worker)
                {
                    after = After::Park;
                }
            }
            worker.end_turn();
        }
        worker.count_turn(handled);

        let mut retire = handled + usize::from(std::mem::take(&mut turn.extra_activation));
        match after {
            After::Stop(reason) => retire += self.stop(turn, Some(worker), reason),
            After::Park => {
                // Keep one activation so senders do not schedule us while muted, and finish
                // every touch of `turn` before parking: once parked, an unmuter may run us.
                turn.extra_activation = true;
                retire -= 1;
                // SAFETY: we hold the activation and retire only what we handled.
                let left = unsafe { self.mailbox.retire(retire) };
                debug_assert!(left > 0);
                shared.counters.parks.inc();
                if !self.header.word.try_park() {
                    // Every receiver recovered meanwhile, or we became overloaded or pressured
                    // and must drain: carry on.
                    shared.counters.resumes.inc();
                    shared.requeue(self, Some(worker));
                }
                return;
            }
            After::Continue => {}
        }
        if turn.actor.is_none() {
            // Stopped (now or earlier): messages that raced the stop are dropped and counted.
            let dropped = self.drain();
            shared.counters.dropped.add(dropped as u64);
            retire += dropped;
        }
        // An otherwise idle worker keeps a drained, live actor activated for a while, so that a
        // send from outside the runtime needs no scheduling (see `crate::scheduler`,
        // "Lingering"). From here on the turn state may belong to whoever claims the token.
        let linger = turn.actor.is_some() && worker.may_linger();
        let left = if linger {
            // SAFETY: we hold the activation, retire what we handled or held, and the token is
            // clear while a turn runs.
            unsafe { self.mailbox.linger(retire) }
        } else {
            // SAFETY: we hold the activation and retire what we handled, dropped or held.
            unsafe { self.mailbox.retire(retire) }
        };
        // SeqCst after the SeqCst retire: see `MuteWord::set`.
        let word = self.header.word.load_seqcst();
        if word & mute::OVERLOADED != 0
            && left <= self.header.watermarks(word).0
            && self
                .header
                .recover_if_drained(|| self.mailbox.backlog(), Some(worker))
        {
            shared.counters.recoveries.inc();
        }
        if linger {
            if left == 0 {
                worker.linger(self);
            } else {
                // Mail is waiting: take the token back and run again next on this otherwise idle
                // worker (the next slot spares the deque and the wake-up check of a requeue),
                // unless a sender on another worker claimed the actor first.
                worker.resume_claimed(self);
            }
        } else if left == 0 {
            worker.activation_ended();
        } else {
            shared.requeue(self, Some(worker));
        }
    }

    fn stop_at_shutdown(self: Arc<Self>) -> u64 {
        if self.header.word.load() & mute::STOPPED != 0 {
            return 0;
        }
        // SAFETY: every worker has been joined: no turn runs concurrently.
        let turn = unsafe { &mut *self.turn.get() };
        self.stop(turn, None, DownReason::Shutdown) as u64
    }

    fn backlog(&self) -> usize {
        self.mailbox.backlog()
    }

    fn raw_count(&self) -> usize {
        self.mailbox.raw_count()
    }

    fn claim_lingering(&self) -> Option<usize> {
        self.mailbox.claim_lingering()
    }
}

impl<A: Actor> Drop for Cell<A> {
    fn drop(&mut self) {
        // The last reference can go anywhere: on a worker (a finished turn, a stale lingering
        // entry), the timer or I/O thread, a user's thread. The actor's and the messages' `Drop`
        // run here, so contain them: a panic must not unwind into whoever dropped the reference.
        if let Some(actor) = self.turn.get_mut().actor.take() {
            // Nothing could reach it any more: collected without a stop.
            self.header.shared.counters.collected.inc();
            self.header.shared.counters.contained(move || drop(actor));
        }
        let queued = self.drain();
        self.header.shared.counters.dropped.add(queued as u64);
        self.header.shared.registry.remove(self.header.slot);
    }
}
