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
use crate::mute::{self, MuteWord};
use crate::mute_graph::MuteGraph;
use crate::muting::{Event, MuteTask, Muting, Scheduling};
use crate::registry::Slot;
use crate::scheduler::{Shared, Worker};
use crate::waiter::Waiter;
use crate::SendFailure;
use crate::{Actor, ActorId};
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
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
    /// Claims a lingering actor's activation to stop its lingering, freeing its mailbox's block
    /// if no mail came (see `Mailbox::end_lingering`).
    fn end_lingering(&self) -> Option<usize>;
    /// The actor's type name, for diagnostics and traces.
    fn type_name(&self) -> &'static str;
}

/// The type-erased part of a cell that other actors and the scheduler touch.
pub(crate) struct Header {
    /// The state word and, allocated on first use, the muted-senders list, watermarks and
    /// monitors (see [`crate::muting`]).
    pub(crate) muting: Muting<Task>,
    pub(crate) id: ActorId,
    pub(crate) shared: Arc<Shared>,
    pub(crate) slot: Slot,
}

type MonitorFn = Box<dyn FnOnce(&ActorDown) + Send>;

/// What a header keeps behind its muting lock besides the muting lists.
#[derive(Default)]
pub(crate) struct Monitors {
    /// Called once when the actor stops.
    monitors: Vec<MonitorFn>,
    /// Set when the actor has stopped; a monitor added later is told at once.
    down: Option<ActorDown>,
}

impl MuteTask for Task {
    type Aux = Monitors;

    #[inline]
    fn muting(&self) -> &Muting<Task> {
        &self.header().muting
    }

    #[inline]
    fn actor_id(&self) -> ActorId {
        self.header().id
    }
}

/// The scheduler as the muting protocol sees it: the runtime's mute graph and counters, and the
/// calling worker's run queue (or the injector, off the workers) for resumed actors.
struct Sched<'a> {
    shared: &'a Shared,
    worker: Option<&'a Worker>,
}

impl Scheduling<Task> for Sched<'_> {
    fn mute_graph(&self) -> &MuteGraph {
        &self.shared.mute_graph
    }

    fn requeue(&self, task: Task) {
        trace_event!(
            target: "rein::mute",
            tracing::Level::DEBUG,
            actor = task.header().id.as_u64(),
            "resumed: its last mute was undone"
        );
        self.shared.requeue(task, self.worker);
    }

    fn count(&self, event: Event) {
        let c = &self.shared.counters;
        match event {
            Event::Muted => c.mutes.inc(),
            Event::CycleRefused => c.cycle_refusals.inc(),
            Event::Unmuted => c.unmutes.inc(),
            Event::Resumed => c.resumes.inc(),
        }
    }

    fn wake(&self, waiter: Arc<Waiter>) {
        // A waker may be foreign code (an async runtime's, or anyone's): contain it.
        self.shared.counters.contained(|| waiter.wake());
    }
}

impl Header {
    #[inline]
    pub(crate) fn word(&self) -> &MuteWord {
        &self.muting.word
    }

    fn sched<'a>(&'a self, worker: Option<&'a Worker>) -> Sched<'a> {
        Sched {
            shared: &self.shared,
            worker,
        }
    }

    /// This actor's `(low, high)` backlog watermarks: its own if it set them, else the
    /// runtime's. `word` is a state word read with at least Acquire.
    #[inline]
    pub(crate) fn watermarks(&self, word: u64) -> (usize, usize) {
        let config = &self.shared.config;
        let defaults = (config.low_watermark, config.high_watermark);
        if word & mute::OWN_WATERMARKS == 0 {
            return defaults;
        }
        self.muting.watermarks(word, defaults)
    }

    /// Gives this actor its own watermarks. Validated by the caller (`low < high <= u32::MAX`).
    pub(crate) fn set_watermarks(&self, low: u32, high: u32) {
        self.muting.set_watermarks(low, high);
    }

    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.word().load() & mute::STOPPED == 0 && self.shared.is_open()
    }

    /// Why a send to this actor would be refused, given its state word: `None` if it would not.
    /// A runtime that has ended explains more than a stopped actor, so it comes first.
    #[inline]
    pub(crate) fn refusal(&self, word: u64) -> Option<SendFailure> {
        if !self.shared.is_open() {
            Some(SendFailure::RuntimeEnded)
        } else if word & mute::STOPPED != 0 {
            Some(SendFailure::ActorStopped)
        } else {
            None
        }
    }

    /// Why a send that was just refused was refused (cold path: read again now).
    #[cold]
    pub(crate) fn refusal_now(&self) -> SendFailure {
        self.refusal(self.word().load())
            .unwrap_or(SendFailure::ActorStopped)
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
                // leaves it there (that is the point); a sender on a worker takes it over into
                // its free next slot, so that a conversation keeps running on one core as with
                // an idle receiver. With the slot taken (a fan-out), it stays where it lingers:
                // claiming it would push the slot's actor out to the stealable queue, and on 16
                // cores idle thieves turned that into a steal and a new linger per message
                // (fork-join throughput 48x slower than on one worker).
                if let Some(worker) = worker {
                    if !worker.next_is_taken() {
                        worker.resume_claimed(as_task());
                    }
                }
            }
            if !shared.config.backpressure {
                return;
            }
            let backlog = (before & !LINGER_TOKEN) + 1;
            let (low, high) = self.watermarks(word);
            let over = backlog >= high;
            if over && word & mute::OVERLOADED == 0 && self.word().set(mute::OVERLOADED) {
                shared.counters.overloads.inc();
                trace_event!(
                    target: "rein::overload",
                    tracing::Level::DEBUG,
                    actor = self.id.as_u64(),
                    backlog,
                    "overloaded: senders to it are muted"
                );
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

    /// Clears `flag`; if that leaves the actor no longer blocking, unmutes its senders.
    /// Returns whether this call cleared the flag.
    pub(crate) fn clear_blocking_flag(&self, flag: u64, worker: Option<&Worker>) -> bool {
        self.muting
            .clear_blocking_flag(self.id, flag, &self.sched(worker))
    }

    /// Clears `OVERLOADED` if the backlog is still at or below the low watermark (see
    /// [`Muting::recover_if_drained`]).
    pub(crate) fn recover_if_drained(
        &self,
        backlog: impl Fn() -> usize,
        worker: Option<&Worker>,
    ) -> bool {
        let (low, _) = self.watermarks(self.word().load());
        let recovered = self
            .muting
            .recover_if_drained(self.id, low, backlog, &self.sched(worker));
        if recovered {
            trace_event!(
                target: "rein::overload",
                tracing::Level::DEBUG,
                actor = self.id.as_u64(),
                "recovered: its senders resume"
            );
        }
        recovered
    }

    /// The actors muted on this one, for diagnostics.
    pub(crate) fn muted_sender_ids(&self) -> Vec<ActorId> {
        self.muting.muted_sender_ids()
    }

    /// Unmutes every sender muted on this actor, cascading to actors muted on those that resume.
    /// Costs O(senders unmuted): no broadcast to other workers.
    pub(crate) fn unmute_senders(&self, worker: Option<&Worker>) {
        self.muting.unmute_senders(self.id, &self.sched(worker));
    }

    /// Never mute `sender` on this actor again, and unmute it now if it is.
    pub(crate) fn exempt(&self, sender: ActorId, worker: Option<&Worker>) {
        self.muting.exempt(self.id, sender, &self.sched(worker));
    }

    /// Adds a monitor, or calls it at once if the actor is already down.
    pub(crate) fn add_monitor(&self, notify: MonitorFn) {
        let already = self.muting.with_lists(|l| match &l.aux.down {
            Some(down) => Some((notify, down.clone())),
            None => {
                l.aux.monitors.push(notify);
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
        let monitors = self.muting.with_lists(|l| {
            l.aux.down = Some(down.clone());
            std::mem::take(&mut l.aux.monitors)
        });
        for notify in monitors {
            // Each monitor runs user code (a `From<ActorDown>`, the message's `Drop` if the
            // watcher has stopped): a panic there must not skip the others nor unwind into the
            // worker that runs this stop.
            self.shared.counters.contained(|| notify(&down));
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
            muting: Muting::default(),
            id,
            shared,
            slot,
        }
    }

    /// Sends `msg`, or hands it back if the actor has stopped.
    #[inline]
    pub(crate) fn send(&self, msg: A::Msg, as_task: impl Fn() -> Task) -> Result<(), A::Msg> {
        let word = self.header.word().load();
        if word & mute::STOPPED != 0 || !self.header.shared.is_open() {
            return Err(msg);
        }
        let before = self.mailbox.push(msg);
        self.header
            .after_push(before, word, as_task, || self.mailbox.backlog_seqcst());
        Ok(())
    }

    /// Runs the behaviour for one message, turning a panic into a stop.
    #[inline(always)]
    fn handle_one(&self, actor: &mut A, ctx: &mut Context<'_, A>, msg: A::Msg) -> After {
        // With tracing compiled in, one load of tracing's global level filter per message while
        // no subscriber wants TRACE; the span and its drop live on the cold path.
        #[cfg(feature = "tracing")]
        if tracing::Level::TRACE <= tracing::level_filters::LevelFilter::current() {
            return self.handle_one_traced(actor, ctx, msg);
        }
        self.handle_untraced(actor, ctx, msg)
    }

    /// [`handle_one`](Self::handle_one) inside the behaviour's span.
    #[cfg(feature = "tracing")]
    #[cold]
    #[inline(never)]
    fn handle_one_traced(&self, actor: &mut A, ctx: &mut Context<'_, A>, msg: A::Msg) -> After {
        let _span = tracing::trace_span!(
            target: "rein::behaviour",
            "behaviour",
            actor = self.header.id.as_u64(),
            actor_type = std::any::type_name::<A>()
        )
        .entered();
        self.handle_untraced(actor, ctx, msg)
    }

    #[inline(always)]
    fn handle_untraced(&self, actor: &mut A, ctx: &mut Context<'_, A>, msg: A::Msg) -> After {
        if catch_unwind(AssertUnwindSafe(|| actor.handle(ctx, msg))).is_err() {
            trace_event!(
                target: "rein::panic",
                tracing::Level::WARN,
                actor = self.header.id.as_u64(),
                actor_type = std::any::type_name::<A>(),
                "a behaviour panicked; the actor stops"
            );
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
        self.header.word().set(mute::STOPPED);
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
            .word()
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
        let me: Task = self.clone();
        let parked = Muting::register_mutes(&me, &receivers, &self.header.sched(Some(worker)));
        if parked {
            trace_event!(
                target: "rein::mute",
                tracing::Level::DEBUG,
                actor = self.header.id.as_u64(),
                on = ?receivers.iter().map(|r| r.header().id.as_u64()).collect::<Vec<_>>(),
                "muted on blocking receivers"
            );
        }
        // Dropped after the registration released its locks: the last reference to a receiver
        // may run its drop (and user code) here.
        drop(receivers);
        parked
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
        // Whether the turn read everything claimed (its last pop found nothing).
        let mut drained = false;

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
                let popped = unsafe { self.mailbox.pop() }.or_else(|| {
                    let held = handled + usize::from(turn.extra_activation);
                    // SAFETY: as above.
                    unsafe { self.mailbox.pop_in_flight(held) }
                });
                let Some(msg) = popped else {
                    drained = true;
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
                if !self.header.word().try_park() {
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
            drained = true;
        }
        // An otherwise idle worker keeps a drained, live actor activated for a while, so that a
        // send from outside the runtime needs no scheduling (see `crate::scheduler`,
        // "Lingering").
        let linger = turn.actor.is_some() && worker.may_linger();
        if drained && !linger {
            // An idle actor keeps no block of its mailbox (see `crate::mailbox`). A lingering one
            // keeps it until it stops lingering (`Mailbox::end_lingering`).
            // SAFETY: we hold the activation and our last pop found nothing.
            unsafe { self.mailbox.release_if_drained() };
        }
        // From here on the turn state may belong to whoever claims the token.
        let left = if linger {
            // SAFETY: we hold the activation, retire what we handled or held, and the token is
            // clear while a turn runs.
            unsafe { self.mailbox.linger(retire) }
        } else {
            // SAFETY: we hold the activation and retire what we handled, dropped or held.
            unsafe { self.mailbox.retire(retire) }
        };
        // SeqCst after the SeqCst retire: see `MuteWord::set`.
        let word = self.header.word().load_seqcst();
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
        if self.header.word().load() & mute::STOPPED != 0 {
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

    fn end_lingering(&self) -> Option<usize> {
        self.mailbox.end_lingering()
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<A>()
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
