//! The watchdog: one thread per runtime (with two workers or more) that hands work stuck behind a
//! long behaviour to the other workers.
//!
//! A worker's next slot and lingering list hold activations that only that worker runs (see
//! [`super::handoff`]). While it runs a behaviour that sleeps 2 s, or computes for 100 ms, they
//! wait, however idle the other workers are. Nothing on the worker can help (it is in user code),
//! and the idle workers sleep, so some other thread must look at the clock. The watchdog does,
//! and only while there is something to look at:
//!
//! * **Active**, it wakes every [`TICK`] and reads, for every worker, the turn counter (published
//!   at the end of each turn), whether its next slot is full, and whether it lends its lingering
//!   list (it does while a turn runs and it lingers on something). A worker whose counter has not
//!   moved since the previous tick has been in one turn for at least a tick: the watchdog steals
//!   its next slot and claims those of its lingering actors that have mail, and requeues them all
//!   on the injector, waking a sleeping worker. So an actor waits at most about two ticks (1 ms).
//!   A lone task in such a worker's stealable queue wakes a sleeper to steal it; and if sockets
//!   are registered and nobody waits in `epoll_wait` for them (the poller left with edges and
//!   is the stuck worker), a sleeper is woken to take the polling over. With nobody asleep to
//!   wake, it asks the busy workers to look at the sockets at their next pick (`io_due`).
//! * **Idle**, it sleeps. It goes idle after [`QUIET_TICKS`] ticks without seeing any such work, or
//!   at once when every worker sleeps. A worker that puts work where only it can reach it (fills
//!   its next slot, lends its lingering list) reads the watchdog's state and, if it is idle, makes
//!   it active and wakes it: one load on that path, and one wake-up per idle period.
//!
//! Idle, the watchdog sleeps for good only when every worker sleeps (so an idle runtime costs no
//! CPU at all). Otherwise it sleeps for at most [`IDLE_TICK`] and then looks once more: the idle
//! transition and a worker's check of it can cross (neither side fences, to keep the worker's path
//! cheap), and this bounds what that rare race can cost. Quiescence is untouched: the watchdog
//! moves activations from one place to another and never creates one (see `docs/architecture.md`,
//! "Work stuck behind a long behaviour").

use super::Shared;
use crate::cell::Task;
use crate::mailbox::LINGER_TOKEN;
use crossbeam_utils::sync::{Parker, Unparker};
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// How often an active watchdog looks. Work stuck behind a long behaviour waits between one and
/// two ticks (plus a wake-up).
pub(crate) const TICK: Duration = Duration::from_micros(500);
/// Ticks without anything to watch before the watchdog goes idle.
pub(crate) const QUIET_TICKS: u32 = 16;
/// How long an idle watchdog sleeps while some worker is awake, before it looks once more.
pub(crate) const IDLE_TICK: Duration = Duration::from_millis(50);

/// No watchdog (a single worker: nobody could take its work anyway).
const OFF: u8 = 0;
const IDLE: u8 = 1;
const ACTIVE: u8 = 2;

/// The watchdog's state, shared with the workers.
pub(crate) struct Watchdog {
    state: AtomicU8,
    unparker: Unparker,
}

impl Watchdog {
    /// A watchdog for `threads` workers; it runs (see [`run`]) only with two or more, and never
    /// in deterministic mode, where only one worker runs at a time and nothing may depend on
    /// real time (a long behaviour there holds up the others by design).
    pub(crate) fn new(threads: usize, deterministic: bool, unparker: Unparker) -> Self {
        let on = threads > 1 && !deterministic;
        Watchdog {
            state: AtomicU8::new(if on { IDLE } else { OFF }),
            unparker,
        }
    }

    /// Whether this runtime has a watchdog thread to start.
    pub(crate) fn enabled(&self) -> bool {
        self.state.load(Relaxed) != OFF
    }

    /// Called by a worker that has just put work where only it can reach it: wakes an idle
    /// watchdog. One load when the watchdog is active (the common case while work flows).
    #[inline]
    pub(crate) fn exposed(&self) {
        // SeqCst: if the watchdog went idle because every worker slept, the wake-up of this worker
        // (the waker's SeqCst decrement of `num_sleeping`) comes after its check in the single
        // total order, and so does this load: it sees `IDLE`. See `run`.
        if self.state.load(SeqCst) == IDLE {
            self.activate();
        }
    }

    #[cold]
    fn activate(&self) {
        if self
            .state
            .compare_exchange(IDLE, ACTIVE, SeqCst, Relaxed)
            .is_ok()
        {
            self.unparker.unpark();
        }
    }

    /// Wakes the watchdog so that it notices that the runtime has ended.
    pub(crate) fn close(&self) {
        self.unparker.unpark();
    }
}

/// The watchdog thread: runs until the runtime stops.
pub(crate) fn run(shared: Arc<Shared>, parker: Parker) {
    let dog = &shared.watchdog;
    // Each worker's turn counter at the previous tick.
    let mut seen = vec![u64::MAX; shared.threads()];
    let mut quiet = 0;
    // Every park below directly follows this check: `Shared::close` ends the runtime before it
    // unparks us, so either the check sees the end or the unpark ends the park.
    while shared.is_open() {
        if dog.state.load(SeqCst) == ACTIVE {
            parker.park_timeout(TICK);
            if look(&shared, &mut seen) {
                quiet = 0;
                continue;
            }
            quiet += 1;
            if quiet >= QUIET_TICKS || shared.all_asleep() {
                quiet = 0;
                // Counters seen before an idle period say nothing about a turn that starts after
                // it: forget them, so that the first look after waking only takes note.
                seen.fill(u64::MAX);
                // Go idle. A worker that exposes work from now on reads `IDLE` and wakes us,
                // except in the race described in the module docs, which `IDLE_TICK` bounds.
                dog.state.store(IDLE, SeqCst);
            }
            continue;
        }
        // SeqCst, after the store of `IDLE`: a worker woken after this load finds `IDLE` (see
        // `Watchdog::exposed`), so sleeping for good when every worker sleeps loses nothing.
        if shared.all_asleep() {
            parker.park();
        } else {
            parker.park_timeout(IDLE_TICK);
            // The look that bounds the race. If it finds work to watch, turn active without an
            // unpark of our own: the next look must come a full tick after this one.
            if dog.state.load(SeqCst) == IDLE && look(&shared, &mut seen) {
                let _ = dog.state.compare_exchange(IDLE, ACTIVE, SeqCst, Relaxed);
            }
        }
    }
}

/// One look at every worker: takes the work of those that have been in one turn since the last
/// look. Returns whether any worker had work only it could reach.
fn look(shared: &Shared, seen: &mut [u64]) -> bool {
    let mut watched = false;
    let mut taken: Vec<Task> = Vec::new();
    let mut wake = false;
    // Sockets: a worker that leaves `epoll_wait` with edges runs their turns, and the workers
    // asleep in their futex do not take the polling over. If it stays in one turn, no socket is
    // looked at until it ends, however idle the others are: wake one of them, which waits in
    // `epoll_wait` once it finds nothing else to do.
    let unwatched = shared.sockets_unwatched();
    // With nobody to wake (every worker busy), the busy workers look at the sockets between
    // turns: they do every `INJECTOR_INTERVAL` picks anyway, but behind long turns that is
    // milliseconds, during which a peer's request waits unread. So each tick that finds nobody
    // in `epoll_wait` asks for a look at the next pick.
    if shared.sockets_unpolled() {
        shared.request_io_poll();
        watched = true;
    }
    for (index, core) in shared.cores.iter().enumerate() {
        let turns = shared.stats[index].turns.load(Relaxed);
        let stuck = std::mem::replace(&mut seen[index], turns) == turns;
        let full = core.next.is_full();
        let lent = core.lingering.is_open();
        // A lone task in the queue woke nobody (`Worker::push_back`): others can steal it, but
        // only if one is awake.
        let queued = shared.has_queued(index);
        watched |= full || lent || queued;
        if !stuck {
            continue;
        }
        wake |= queued;
        if unwatched && !shared.is_asleep(index) {
            // In one turn since the last look (not asleep: a sleeper's counter stands still too).
            watched = true;
            wake = true;
        }
        if full {
            taken.extend(core.next.steal());
        }
        if lent {
            core.lingering.borrow(|lingering| {
                for task in lingering {
                    if task.raw_count() > LINGER_TOKEN {
                        // Only with mail: an actor without keeps lingering where it is.
                        if task.claim_lingering().is_some() {
                            taken.push(task.clone());
                        }
                    }
                }
            });
        }
    }
    if !taken.is_empty() {
        shared.counters.handoffs.add(taken.len() as u64);
    }
    for task in taken {
        // The activation moves with the task: requeue, do not count a new one.
        shared.requeue(task, None);
    }
    if wake {
        shared.notify_one();
    }
    watched
}
