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
            trace_event!(
                target: "rein::panic",
                tracing::Level::WARN,
                "a panic in user code outside a behaviour was contained"
            );
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
    /// the caller, often a worker firing timers or running I/O, carries on. Returns `None` if it panicked.
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
#[non_exhaustive]
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
///
/// Every figure is a field; `#[non_exhaustive]`, so that new figures are not breaking changes.
/// [`to_prometheus`](Metrics::to_prometheus) renders them for a `/metrics` endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Per worker thread.
    pub workers: Vec<WorkerMetrics>,
    /// Messages handled by all workers (the sum of `workers[i].messages`).
    pub messages: u64,
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
    /// Messages handled by all workers: the [`messages`](Metrics#structfield.messages) field,
    /// kept as a method because earlier versions had only this.
    pub fn messages(&self) -> u64 {
        self.messages
    }
}

/// Whether a figure only grows (a counter) or goes up and down (a gauge).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One runtime-wide figure as the exporters name it.
struct Figure {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    value: f64,
}

/// One per-worker figure.
struct WorkerFigure {
    name: &'static str,
    help: &'static str,
    value: fn(&WorkerMetrics) -> u64,
}

const WORKER_FIGURES: [WorkerFigure; 4] = [
    WorkerFigure {
        name: "rein_worker_messages_total",
        help: "Messages handled by this worker.",
        value: |w| w.messages,
    },
    WorkerFigure {
        name: "rein_worker_turns_total",
        help: "Actor turns (runs of up to `batch` messages) this worker ran.",
        value: |w| w.turns,
    },
    WorkerFigure {
        name: "rein_worker_steals_total",
        help: "Batches of work this worker stole from another.",
        value: |w| w.steals,
    },
    WorkerFigure {
        name: "rein_worker_sleeps_total",
        help: "Times this worker went to sleep for lack of work.",
        value: |w| w.parks,
    },
];

impl Metrics {
    /// The runtime-wide figures under their exported names (`rein_*`; counters end in `_total`).
    fn figures(&self) -> [Figure; 14] {
        use Kind::{Counter as C, Gauge as G};
        let f = |name, help, kind, value: u64| Figure {
            name,
            help,
            kind,
            value: value as f64,
        };
        [
            f("rein_messages_total", "Messages handled by all workers.", C, self.messages),
            f("rein_actors_spawned_total", "Actors spawned.", C, self.spawned),
            f("rein_actors_live", "Actors alive (spawned, neither stopped nor collected).", G, self.live_actors),
            Figure {
                name: "rein_actors_scheduled",
                help: "Actors holding an activation: scheduled, running, or muted with work.",
                kind: G,
                value: self.scheduled_actors as f64,
            },
            f("rein_messages_dropped_total", "Messages dropped undelivered (their actor stopped, panicked or shut down).", C, self.dropped_messages),
            f("rein_panics_total", "Panics in user code, contained.", C, self.panics),
            f("rein_mutes_total", "Times an actor was muted on a receiver.", C, self.mutes),
            f("rein_unmutes_total", "Times an actor was released from a receiver it was muted on.", C, self.unmutes),
            f("rein_cycle_refusals_total", "Mutes refused because they would have closed a cycle of muted actors.", C, self.cycle_refusals),
            f("rein_overloads_total", "Times a receiver crossed its high watermark.", C, self.overloads),
            f("rein_actors_muted", "Actors muted (parked) right now.", G, self.muted_actors),
            f("rein_actors_overloaded", "Actors above their high watermark that have not yet fallen to the low one.", G, self.overloaded_actors),
            f("rein_actors_pressured", "Actors that applied backpressure and have not released it.", G, self.pressured_actors),
            f("rein_handoffs_total", "Actors taken from a worker stuck in a long behaviour so that another could run them.", C, self.handoffs),
        ]
    }

    /// These figures in the Prometheus text exposition format (version 0.0.4), ready to serve
    /// from a `/metrics` endpoint (content type `text/plain; version=0.0.4`). Runtime-wide
    /// figures are named `rein_*` (counters end in `_total`); per-worker ones are
    /// `rein_worker_*_total{worker="i"}`.
    ///
    /// ```
    /// let rt = rein::Runtime::builder().threads(2).build().unwrap();
    /// let text = rt.metrics().to_prometheus();
    /// assert!(text.contains("# TYPE rein_messages_total counter\nrein_messages_total 0\n"));
    /// assert!(text.contains("rein_worker_messages_total{worker=\"1\"} 0\n"));
    /// # drop(rt);
    /// ```
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(4096);
        for f in self.figures() {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n",
                name = f.name,
                help = f.help,
                value = f.value
            );
        }
        for f in &WORKER_FIGURES {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n",
                name = f.name,
                help = f.help
            );
            for (i, w) in self.workers.iter().enumerate() {
                let _ = writeln!(out, "{}{{worker=\"{i}\"}} {}", f.name, (f.value)(w));
            }
        }
        out
    }

    /// Records these figures through the [`metrics`](https://docs.rs/metrics) crate's facade
    /// (feature `metrics`), under the same names as [`to_prometheus`](Metrics::to_prometheus):
    /// counters with `absolute`, gauges with `set`, per-worker figures with a `worker` label.
    /// Call it periodically (say, once a second from a timer or the exporter's scrape hook);
    /// without an installed recorder it does nothing.
    #[cfg(feature = "metrics")]
    pub fn record(&self) {
        for f in self.figures() {
            match f.kind {
                Kind::Counter => metrics::counter!(f.name).absolute(f.value as u64),
                Kind::Gauge => metrics::gauge!(f.name).set(f.value),
            }
        }
        for f in &WORKER_FIGURES {
            for (i, w) in self.workers.iter().enumerate() {
                metrics::counter!(f.name, "worker" => i.to_string()).absolute((f.value)(w));
            }
        }
    }
}
