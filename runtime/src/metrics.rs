//! Metrics that cost nothing on the per-message path.
//!
//! Per-worker figures are plain counters in the worker, published with a relaxed store once per
//! turn. Global events (spawns, stops, mutes) are rare and go to striped counters, so that
//! workers do not bounce one cache line between them.

use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

const STRIPES: usize = 8;

/// A counter that many threads add to and few read.
pub(crate) struct Counter {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Relaxed) % STRIPES);
        }
        s.get()
    })
}

impl Counter {
    pub(crate) fn new() -> Self {
        Counter {
            stripes: Default::default(),
        }
    }

    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        if n != 0 {
            self.stripes[stripe()].fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.stripes.iter().map(|s| s.load(Relaxed)).sum()
    }
}

/// Runs `f`, counting a panic in `panics` instead of letting it unwind. See
/// [`Counters::contained`].
pub(crate) fn contain<R>(panics: &Counter, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            panics.inc();
            // The payload is user data too; its drop is the last user code of this panic.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            None
        }
    }
}

/// Runtime-wide event counts.
pub(crate) struct Counters {
    pub(crate) spawned: Counter,
    pub(crate) stopped: Counter,
    /// Dropped unreachable without a stop.
    pub(crate) collected: Counter,
    /// Messages dropped undelivered: queued at a stop, a panic or shutdown.
    pub(crate) dropped: Counter,
    pub(crate) panics: Counter,
    pub(crate) mutes: Counter,
    pub(crate) unmutes: Counter,
    pub(crate) cycle_refusals: Counter,
    pub(crate) overloads: Counter,
    pub(crate) recoveries: Counter,
    pub(crate) parks: Counter,
    pub(crate) resumes: Counter,
    pub(crate) pressure_applied: Counter,
    pub(crate) pressure_released: Counter,
    /// Activations the watchdog took from a worker stuck in a long behaviour.
    pub(crate) handoffs: Counter,
}

impl Counters {
    /// Runs user code that runs outside any behaviour (a `Drop`, a `From` conversion, a `Clone`,
    /// a monitor), so that a panic in it costs only what it was doing: the panic is counted and
    /// the caller, often a worker or the timer thread, carries on. Returns `None` if it panicked.
    ///
    /// A panic there must not unwind into the runtime: a worker that dies holds activations that
    /// nobody else can ever run, and the runtime could then never become quiescent.
    pub(crate) fn contained<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        contain(&self.panics, f)
    }

    pub(crate) fn new() -> Self {
        Counters {
            spawned: Counter::new(),
            stopped: Counter::new(),
            collected: Counter::new(),
            dropped: Counter::new(),
            panics: Counter::new(),
            mutes: Counter::new(),
            unmutes: Counter::new(),
            cycle_refusals: Counter::new(),
            overloads: Counter::new(),
            recoveries: Counter::new(),
            parks: Counter::new(),
            resumes: Counter::new(),
            pressure_applied: Counter::new(),
            pressure_released: Counter::new(),
            handoffs: Counter::new(),
        }
    }
}

/// One worker's published figures. Written only by that worker.
#[derive(Default)]
pub(crate) struct WorkerStats {
    pub(crate) messages: AtomicU64,
    pub(crate) turns: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    /// Activations this worker started minus those it ended (see `crate::scheduler`).
    pub(crate) activations: AtomicI64,
}

/// What one worker thread has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// Messages handled.
    pub messages: u64,
    /// Actor turns run (each up to `batch` messages).
    pub turns: u64,
    /// Successful steals from other workers.
    pub steals: u64,
    /// Times the worker went to sleep for lack of work.
    pub parks: u64,
}

/// A snapshot of the runtime's figures. Readings are racy but each is monotone or a gauge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Per worker thread.
    pub workers: Vec<WorkerMetrics>,
    /// Actors spawned so far.
    pub spawned: u64,
    /// Actors alive: spawned and neither stopped nor collected.
    pub live_actors: u64,
    /// Actors holding an activation: scheduled, running, or muted with work.
    pub scheduled_actors: i64,
    /// Messages dropped undelivered (queued when their actor stopped, panicked or shut down).
    pub dropped_messages: u64,
    /// Behaviours (or hooks) that panicked.
    pub panics: u64,
    /// Times an actor was muted on a receiver.
    pub mutes: u64,
    /// Times an actor was released from a receiver it was muted on.
    pub unmutes: u64,
    /// Mutes refused because they would have closed a cycle of muted actors (which would then
    /// wait for one another for ever). Always 0 in an acyclic topology.
    pub cycle_refusals: u64,
    /// Times a receiver crossed its high watermark.
    pub overloads: u64,
    /// Actors muted (parked) right now.
    pub muted_actors: u64,
    /// Actors whose backlog is above the high watermark and has not yet fallen to the low one.
    pub overloaded_actors: u64,
    /// Actors that applied backpressure and have not released it.
    pub pressured_actors: u64,
    /// Actors taken from a worker whose behaviour ran long (over about a millisecond) while they
    /// waited in its next slot or lingered on it, so that another worker could run them.
    pub handoffs: u64,
    /// Times the runtime's readiness polling (`epoll_wait`) failed. After a failure every
    /// registered source's owner heard [`Readiness::failed`](crate::Readiness::failed), and new
    /// registrations are refused. Expect 0.
    pub io_failures: u64,
}

impl Metrics {
    /// Messages handled by all workers.
    pub fn messages(&self) -> u64 {
        self.workers.iter().map(|w| w.messages).sum()
    }
}
