//! [`Runtime`]: building, feeding, waiting for and shutting down a set of workers.

use crate::auth::AmbientAuth;
use crate::error::{BuildError, SpawnError};
use crate::metrics::Metrics;
use crate::scheduler::{Shared, Worker};
use crate::stall::OnStall;
use crate::timer::Wheel;
use crate::StallReport;
use crate::{Actor, ActorRef};
use crossbeam_utils::sync::Parker;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default number of messages an actor handles per turn.
pub const DEFAULT_BATCH: usize = 100;
/// Default backlog at which a receiver counts as overloaded and mutes its senders.
pub const DEFAULT_HIGH_WATERMARK: usize = 1024;
/// Default backlog at or below which an overloaded receiver recovers and unmutes them.
pub const DEFAULT_LOW_WATERMARK: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) threads: usize,
    pub(crate) batch: usize,
    pub(crate) thread_name: String,
    pub(crate) backpressure: bool,
    pub(crate) high_watermark: usize,
    pub(crate) low_watermark: usize,
    /// `Some(seed)`: deterministic scheduling (see [`Builder::deterministic`]).
    pub(crate) deterministic: Option<u64>,
}

/// Configures a [`Runtime`]. Every setting has a documented default.
///
/// ```
/// let rt = rein::Runtime::builder()
///     .threads(2)
///     .batch(64)
///     .thread_name("my-app-worker")
///     .build()
///     .expect("valid configuration");
/// assert!(matches!(
///     rein::Runtime::builder().threads(0).build(),
///     Err(rein::BuildError::ZeroThreads)
/// ));
/// # drop(rt);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
    on_stall: Option<OnStall>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            on_stall: None,
            config: Config {
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                batch: DEFAULT_BATCH,
                thread_name: "rein-worker".into(),
                backpressure: true,
                high_watermark: DEFAULT_HIGH_WATERMARK,
                low_watermark: DEFAULT_LOW_WATERMARK,
                deterministic: None,
            },
        }
    }
}

impl Builder {
    /// Worker threads (default: one per available core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.config.threads = threads;
        self
    }

    /// Messages an actor may handle per turn before others get the core (default
    /// [`DEFAULT_BATCH`]).
    pub fn batch(mut self, batch: usize) -> Self {
        self.config.batch = batch;
        self
    }

    /// Worker thread name prefix; workers are named `{prefix}-{index}` (default `rein-worker`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.config.thread_name = prefix.into();
        self
    }

    /// Whether the scheduler mutes senders to overloaded receivers (default `true`). Turn it off
    /// only to compare: without it a fast producer grows a slow consumer's mailbox without bound.
    pub fn backpressure(mut self, enabled: bool) -> Self {
        self.config.backpressure = enabled;
        self
    }

    /// Backlog watermarks (defaults [`DEFAULT_LOW_WATERMARK`], [`DEFAULT_HIGH_WATERMARK`]): a
    /// receiver whose backlog reaches `high` is overloaded and mutes its senders; it recovers
    /// when a turn leaves it at or below `low`.
    pub fn watermarks(mut self, low: usize, high: usize) -> Self {
        self.config.low_watermark = low;
        self.config.high_watermark = high;
        self
    }

    /// Deterministic scheduling, for tests: the same workers, queues and muting run, but one
    /// worker at a time, each for one turn, handed on by a generator seeded with `seed`. Given
    /// the same program and the same seed, every run takes the same interleaving, so a test
    /// failure found with a seed replays with it.
    ///
    /// What changes, so that nothing depends on timing:
    /// * the workers hold until [`Runtime::wait`] (or [`Runtime::wait_timeout`]) is called, so
    ///   send and spawn from outside *before* that; sends from outside threads afterwards race
    ///   as in a normal runtime, and an [`ActorRef::ask`](crate::ActorRef::ask) before `wait`
    ///   gets no answer;
    /// * timers run on a virtual clock: time jumps to the next deadline when every worker is
    ///   idle, or at seeded moments while they are busy.
    ///
    /// It is slower than a normal runtime and exercises scheduling orders, not memory-model
    /// races (rein's loom models cover those).
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime};
    /// use std::sync::{Arc, Mutex};
    ///
    /// struct Log(Arc<Mutex<Vec<u32>>>);
    /// impl Actor for Log {
    ///     type Msg = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, n: u32) {
    ///         self.0.lock().unwrap().push(n);
    ///     }
    /// }
    ///
    /// let run = |seed| {
    ///     let rt = Runtime::builder().threads(4).deterministic(seed).build().unwrap();
    ///     let order = Arc::new(Mutex::new(Vec::new()));
    ///     let logs: Vec<_> = (0..4).map(|_| rt.spawn(Log(order.clone()))).collect();
    ///     for n in 0..100 {
    ///         logs[n as usize % 4].send(n).unwrap();
    ///     }
    ///     rt.wait();
    ///     Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    /// };
    /// assert_eq!(run(7), run(7), "one seed, one interleaving");
    /// ```
    pub fn deterministic(mut self, seed: u64) -> Self {
        self.config.deterministic = Some(seed);
        self
    }

    /// Reports every actor that stays muted longer than `threshold`: `report` is called once
    /// per stall, on the worker that keeps time (see [`Context::after`](crate::Context::after)), with the muted actor, the receiver it is muted
    /// on, for how long, and why that receiver still blocks ([`StallReport`]). A stall is
    /// reported within a quarter of `threshold` (at least 10 ms, at most 1 s) of crossing it,
    /// and again only if the actor is muted anew after resuming. Use it to make a stalled
    /// pipeline visible: a hub muted on a client that stopped reading, a producer waiting on a
    /// consumer that never drains.
    ///
    /// It costs nothing per message: each mute records when it began (under a lock it takes
    /// anyway) and a periodic scan looks for old ones (see also [`RuntimeHandle::stalls`]).
    /// `report` must be quick and must not block; a panic in it is counted in
    /// [`Metrics::panics`](crate::Metrics::panics) and ends the watch. Not called in
    /// [deterministic](Builder::deterministic) mode, whose clock is virtual; `stalls` still
    /// works there.
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime, StallCause};
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// /// Takes a long time over its first message, so that its senders are muted meanwhile.
    /// struct Slow;
    /// impl Actor for Slow {
    ///     type Msg = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, n: u32) {
    ///         if n == 0 {
    ///             std::thread::sleep(Duration::from_millis(300));
    ///         }
    ///     }
    /// }
    ///
    /// struct Producer(rein::ActorRef<Slow>);
    /// impl Actor for Producer {
    ///     type Msg = ();
    ///     fn handle(&mut self, _: &mut Context<Self>, (): ()) {
    ///         for n in 0..20 {
    ///             let _ = self.0.send(n); // overloads `Slow`: muted after this behaviour
    ///         }
    ///     }
    /// }
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let rt = Runtime::builder()
    ///     .threads(2)
    ///     .watermarks(2, 8)
    ///     .on_stall(Duration::from_millis(100), move |report| {
    ///         let _ = tx.send(report);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let slow = rt.spawn(Slow);
    /// let producer = rt.spawn(Producer(slow.clone()));
    /// producer.send(()).unwrap();
    /// let report = rx.recv_timeout(Duration::from_secs(10)).expect("a stall report");
    /// assert_eq!((report.actor, report.receiver), (producer.id(), slow.id()));
    /// assert!(matches!(report.cause, StallCause::Overloaded { .. }));
    /// assert!(report.muted_for >= Duration::from_millis(100));
    /// println!("{report}"); // actor#2 has been muted for 125.3ms on actor#1 (overloaded, 19 queued)
    /// rt.wait();
    /// ```
    pub fn on_stall(
        mut self,
        threshold: Duration,
        report: impl Fn(StallReport) + Send + Sync + 'static,
    ) -> Self {
        self.on_stall = Some(OnStall {
            threshold,
            report: Arc::new(report),
        });
        self
    }

    /// Starts the workers and mints the root authority, for the program's entry point: the
    /// only way to obtain an [`AmbientAuth`].
    pub fn build_with_auth(self) -> Result<(Runtime, AmbientAuth), BuildError> {
        Ok((self.build()?, AmbientAuth::mint()))
    }

    /// Starts the workers.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let config = self.config;
        if config.threads == 0 {
            return Err(BuildError::ZeroThreads);
        }
        if config.batch == 0 {
            return Err(BuildError::ZeroBatch);
        }
        if config.high_watermark == 0 || config.low_watermark >= config.high_watermark {
            return Err(BuildError::Watermarks {
                low: config.low_watermark,
                high: config.high_watermark,
            });
        }
        let locals: Vec<_> = (0..config.threads)
            .map(|_| crossbeam_deque::Worker::new_fifo())
            .collect();
        let freshes: Vec<_> = (0..config.threads)
            .map(|_| crossbeam_deque::Worker::new_lifo())
            .collect();
        let parkers: Vec<_> = (0..config.threads).map(|_| Parker::new()).collect();
        let timers = match config.deterministic {
            Some(_) => Wheel::manual(),
            None => Wheel::new(),
        };
        let watchdog = Parker::new();
        let shared = Arc::new(Shared::new(
            config.clone(),
            locals.iter().map(|l| l.stealer()).collect(),
            freshes.iter().map(|f| f.stealer()).collect(),
            parkers.iter().map(|p| p.unparker().clone()).collect(),
            timers,
            watchdog.unparker().clone(),
        ));
        shared.timers.attach(&shared);
        if let (Some(watch), None) = (self.on_stall, config.deterministic) {
            let period = watch.period();
            let fire = watch.watch(Arc::downgrade(&shared));
            // Does not keep the runtime alive; ends when the runtime does.
            shared
                .timers
                .add(period, Some(period), None, Box::new(fire));
        }
        let mut runtime = Runtime {
            shared: shared.clone(),
            threads: Vec::with_capacity(config.threads),
            watchdog: None,
            finished: false,
        };
        if shared.watchdog.enabled() {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-watchdog", config.thread_name))
                .spawn(move || crate::scheduler::watchdog::run(shared, watchdog));
            match spawned {
                Ok(handle) => runtime.watchdog = Some(handle),
                Err(e) => return Err(BuildError::Spawn(e)),
            }
        }
        let queues = locals.into_iter().zip(freshes);
        for (index, ((local, fresh), parker)) in queues.zip(parkers).enumerate() {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", config.thread_name))
                .spawn(move || {
                    let worker = Worker::new(index, shared.clone(), local, fresh, parker);
                    // User code runs contained (behaviours, hooks, drops, conversions), so a
                    // panic that reaches this point is a runtime bug. Never let it hang `wait`:
                    // end the runtime (see `Shared::worker_died`), then let the thread die so that
                    // `finish` counts it in `Report::worker_panics`.
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| worker.run())) {
                        shared.worker_died();
                        drop(worker);
                        resume_unwind(panic);
                    }
                });
            match spawned {
                Ok(handle) => runtime.threads.push(handle),
                // Dropping `runtime` shuts down the workers already started.
                Err(e) => return Err(BuildError::Spawn(e)),
            }
        }
        Ok(runtime)
    }
}

/// A running set of worker threads and the actors on them.
///
/// Feed it from any thread, then call [`wait`](Runtime::wait): it returns once every actor is
/// quiescent (nothing scheduled, running, or muted with work, and no source keeping the runtime
/// alive), runs every remaining actor's `stopped` hook, and reports. Dropping a runtime shuts it
/// down at once, like [`shutdown`](Runtime::shutdown).
///
/// ```
/// use rein::{Actor, Context, Runtime};
///
/// struct Echo;
/// impl Actor for Echo {
///     type Msg = String;
///     fn handle(&mut self, _: &mut Context<Self>, msg: String) {
///         assert_eq!(msg, "hello");
///     }
/// }
///
/// let rt = Runtime::new().unwrap();
/// rt.spawn(Echo).send("hello".to_string()).unwrap();
/// let report = rt.wait();
/// assert!(report.quiescent);
/// assert_eq!(report.metrics.messages(), 1);
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The thread that hands work stuck behind a long behaviour to other workers (none with a
    /// single worker).
    watchdog: Option<JoinHandle<()>>,
    finished: bool,
}

/// What a runtime did, returned when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Whether it ended because every actor was quiescent (rather than by `shutdown`).
    pub quiescent: bool,
    /// Messages still queued when the runtime ended, dropped with their actors.
    pub undelivered: u64,
    /// Worker threads that died of a panic outside any behaviour (a runtime bug; expect 0). The
    /// first such death ends the runtime at once, as [`shutdown`](Runtime::shutdown) would (the
    /// report is then not `quiescent`): what the dead worker held could never run, and waiting for
    /// quiescence would hang.
    pub worker_panics: usize,
    /// The final figures.
    pub metrics: Metrics,
}

impl Runtime {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A runtime with the default configuration.
    pub fn new() -> Result<Runtime, BuildError> {
        Builder::default().build()
    }

    /// Spawns an actor. Its `started` hook runs on a worker before its first message.
    ///
    /// This cannot fail: the runtime has not ended while you hold it. (If it has already become
    /// quiescent, which only a [`wait_timeout`](Runtime::wait_timeout) that timed out lets you
    /// see, the actor never runs and is stopped with the others when the runtime is finished.)
    pub fn spawn<A: Actor>(&self, actor: A) -> ActorRef<A> {
        self.shared.spawn(actor, None)
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// A cloneable handle for spawning and reading metrics from anywhere.
    pub fn handle(&self) -> RuntimeHandle {
        RuntimeHandle::new(self.shared.clone())
    }

    /// The current figures.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Who is muted on whom right now (see [`RuntimeHandle::mute_snapshot`]).
    pub fn mute_snapshot(&self) -> crate::MuteSnapshot {
        self.shared.mute_snapshot()
    }

    /// Every actor muted for longer than `threshold` right now (see [`RuntimeHandle::stalls`]).
    pub fn stalls(&self, threshold: Duration) -> Vec<StallReport> {
        self.shared.stalls(threshold)
    }

    /// Blocks until every actor is quiescent, then shuts down and reports.
    pub fn wait(mut self) -> Report {
        self.shared.arm();
        self.shared.wait_until_stopped(None);
        self.finish()
    }

    /// Like [`wait`](Runtime::wait) but gives up after `timeout`, handing the runtime back
    /// (still armed: it will end by itself once quiescent). A timeout too large to be represented
    /// as an instant (`Duration::MAX`) means no deadline, as in `wait`.
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<Report, Runtime> {
        self.shared.arm();
        if self
            .shared
            .wait_until_stopped(Instant::now().checked_add(timeout))
        {
            Ok(self.finish())
        } else {
            Err(self)
        }
    }

    /// Stops everything promptly: workers finish the turn they are in, then every actor's
    /// `stopped` hook runs and queued messages are dropped and counted in the report.
    pub fn shutdown(mut self) -> Report {
        self.finish()
    }

    fn finish(&mut self) -> Report {
        self.finished = true;
        let quiescent = self.shared.reached_quiescence();
        self.shared.close();
        // Before the sweep: the watchdog may be requeueing a task it took, which the sweep must
        // then find in the injector. (Its only user code, a task's drop, runs contained.)
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        let worker_panics = self
            .threads
            .drain(..)
            .map(JoinHandle::join)
            .filter(Result::is_err)
            .count();
        // Only this thread is left: stop every actor still alive. Stopped hooks may spawn;
        // repeat a few times to catch those too.
        let mut undelivered = 0;
        for _ in 0..8 {
            self.shared.clear_injector();
            let live = self.shared.registry.live();
            if live.is_empty() {
                break;
            }
            for task in live {
                undelivered += task.stop_at_shutdown();
            }
        }
        self.shared.clear_injector();
        Report {
            quiescent,
            undelivered,
            worker_panics,
            metrics: self.shared.metrics(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.finished {
            self.finish();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("threads", &self.shared.threads())
            .finish_non_exhaustive()
    }
}

/// A cloneable, `Send + Sync` handle on a runtime: spawn actors and read metrics from anywhere.
/// It does not keep the runtime alive.
#[derive(Clone)]
pub struct RuntimeHandle {
    shared: Arc<Shared>,
}

impl RuntimeHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RuntimeHandle { shared }
    }

    /// Spawns an actor (from a worker, it starts on that worker unless stolen).
    ///
    /// A handle outlives its runtime. Once the runtime no longer runs (it became quiescent, was
    /// shut down, or a [`wait`](Runtime::wait) returned), nothing would ever run the actor, so
    /// the spawn fails and hands it back in the [`SpawnError`]. On a worker of this runtime (from
    /// inside a behaviour) it always succeeds, like [`Context::spawn`](crate::Context::spawn).
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime};
    ///
    /// struct Worker(u32);
    /// impl Actor for Worker {
    ///     type Msg = ();
    ///     fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
    /// }
    ///
    /// let rt = Runtime::new().unwrap();
    /// let handle = rt.handle();
    /// assert!(handle.spawn(Worker(1)).is_ok());
    /// rt.wait();
    /// // The runtime has ended: the actor comes back instead of being left unrunnable.
    /// let refused = handle.spawn(Worker(2)).unwrap_err();
    /// assert_eq!(refused.into_inner().0, 2);
    /// ```
    pub fn spawn<A: Actor>(&self, actor: A) -> Result<ActorRef<A>, SpawnError<A>> {
        crate::scheduler::Worker::with_current(&self.shared, |w| {
            self.shared
                .try_spawn(actor, w, true)
                .map_err(SpawnError::new)
        })
    }

    /// The current figures.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.shared.threads()
    }

    /// Who is muted on whom right now, plus overloaded, pressured and muted actors.
    pub fn mute_snapshot(&self) -> crate::MuteSnapshot {
        self.shared.mute_snapshot()
    }

    /// Every actor muted (not scheduled) for longer than `threshold` right now, with the
    /// receiver it is muted on, oldest first: the on-demand form of
    /// [`Builder::on_stall`]. Costs one lock on the mute graph, and a read of every live
    /// actor's state when some mute is that old: a diagnostic, not a hot path.
    pub fn stalls(&self, threshold: Duration) -> Vec<StallReport> {
        self.shared.stalls(threshold)
    }

    /// The runtime's I/O registry: register a file descriptor and its readiness edges reach
    /// your code on a worker (see [`Io`](crate::Io)).
    pub fn io(&self) -> crate::Io {
        crate::Io::new(self.shared.clone())
    }

    /// Whether the runtime still accepts messages (not quiescent, not shut down).
    pub fn is_running(&self) -> bool {
        self.shared.is_open()
    }

    /// Keeps the runtime alive (it will not end by quiescence) until the guard is dropped: for
    /// I/O sources, timers and anything outside the runtime that will send later.
    ///
    /// A thread that feeds the runtime from outside should hold one for as long as it sends:
    /// without it, [`Runtime::wait`] may find the runtime quiescent between two sends, end it,
    /// and every later send fails with [`SendFailure::RuntimeEnded`](crate::SendFailure).
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime};
    ///
    /// struct Sink;
    /// impl Actor for Sink {
    ///     type Msg = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u32) {}
    /// }
    ///
    /// let rt = Runtime::new().unwrap();
    /// let sink = rt.spawn(Sink);
    /// let feeding = rt.handle().keep_alive();
    /// let producer = std::thread::spawn(move || {
    ///     let _feeding = feeding; // released when the thread is done
    ///     for i in 0..1_000 {
    ///         sink.send_blocking(i).unwrap();
    ///     }
    /// });
    /// let report = rt.wait(); // waits for the producer, then for quiescence
    /// producer.join().unwrap();
    /// assert_eq!(report.metrics.messages, 1_000);
    /// ```
    #[must_use = "the runtime is kept alive only while the guard lives"]
    pub fn keep_alive(&self) -> KeepAlive {
        self.shared.retain();
        KeepAlive {
            shared: self.shared.clone(),
        }
    }
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("threads", &self.shared.threads())
            .finish_non_exhaustive()
    }
}

/// Keeps a runtime from ending by quiescence while it lives. See [`RuntimeHandle::keep_alive`].
#[must_use = "the runtime is kept alive only while the guard lives: dropping it at once releases it"]
pub struct KeepAlive {
    shared: Arc<Shared>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepAlive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;
    use std::sync::atomic::Ordering::SeqCst;

    struct Idle;

    impl Actor for Idle {
        type Msg = ();
        fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
    }

    /// A worker that dies outside any behaviour (here by an injected fault, standing in for a
    /// runtime bug) holds an activation nobody else can run: `wait` must end the runtime and
    /// report it rather than wait for a quiescence that can never come.
    #[test]
    fn a_worker_that_dies_ends_the_runtime_instead_of_hanging_wait() {
        for threads in [1, 2] {
            let rt = Runtime::builder().threads(threads).build().unwrap();
            let bystander = rt.spawn(Idle);
            bystander.send(()).unwrap();
            // Let the spawn activations finish first, so the fault hits the next task.
            let deadline = Instant::now() + Duration::from_secs(30);
            while rt.metrics().scheduled_actors != 0 {
                assert!(Instant::now() < deadline, "the bystander never went idle");
                std::thread::yield_now();
            }
            let victim = rt.spawn(Idle);
            rt.shared.inject_fault.store(true, SeqCst);
            victim.send(()).unwrap();
            let report = rt
                .wait_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("wait hung after a worker died (threads={threads})"));
            assert_eq!(report.worker_panics, 1, "threads={threads}");
            assert!(!report.quiescent);
            assert!(victim.is_stopped() && bystander.is_stopped());
        }
    }
}
