//! Seeded stress tests: random actor graphs, random DAGs whose every mailbox must stay within
//! the documented backlog bound, fan-in under backpressure, heavy muting.
//!
//! Every case is derived from one 64-bit seed: the graph, the runtime configuration (threads,
//! batch, watermarks) and the traffic. Each message carries `(sender id, per-sender sequence
//! number, hops left)`; every actor logs what it receives and how many messages it sent, and
//! after quiescence [`check`] verifies that every message sent was received exactly once, that
//! each (sender → receiver) pair saw strictly increasing sequence numbers, and that the runtime
//! neither dropped nor stranded anything.
//!
//! * `REIN_STRESS_SEED=<n or 0xhex>` runs exactly that seed in every test.
//! * `REIN_STRESS_CASES=<n>` sets how many random seeds each test runs (default 8).
//! * `REIN_STRESS_MODE=deterministic|parallel` runs each seed in one mode only; by default
//!   every seed runs in both. Deterministic mode (`Builder::deterministic`) runs one worker at
//!   a time, handed on by a generator seeded from the case seed, so a seed replays the whole
//!   interleaving; parallel mode runs real threads and finds what only real concurrency can.
//! * `REIN_REPRO_SECS=<n>` sets how long the probabilistic regression test at the end keeps
//!   trying (default 2).
//!
//! Every wait is bounded by `common::LIMIT` (30 s); a hang fails with the seed, the metrics and
//! the mute snapshot (who is muted on whom, and any cycle of mutually muted actors).
//!
//! A failure in deterministic mode replays exactly from the command its message prints; in
//! parallel mode the seed reproduces the *shape* of the case (graph, configuration, traffic),
//! not its interleaving: rerun it a few times, or in deterministic mode. Every
//! failure message starts with the seed and the configuration.

mod common;

use rein::{Actor, ActorRef, AmbientAuth, Context, Report, Runtime};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEFAULT_CASES: usize = 8;

// ---------------------------------------------------------------------------------------------
// Seeds and randomness
// ---------------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and good enough to pick graphs and configurations.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent / 100`.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An independent generator for a sub-task (a feeder thread, an actor).
    fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

fn parse_seed(s: &str) -> u64 {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("REIN_STRESS_SEED={s:?} is not a decimal or 0x-hex u64"))
}

/// The seeds one test runs: the forced one, or `REIN_STRESS_CASES` fresh ones.
fn seeds(salt: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("REIN_STRESS_SEED") {
        return vec![parse_seed(&s)];
    }
    let cases = match std::env::var("REIN_STRESS_CASES") {
        Ok(c) => c
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("REIN_STRESS_CASES={c:?} is not a number")),
        Err(_) => DEFAULT_CASES,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = Rng::new(now ^ salt.wrapping_mul(0xA24B_AED4_963E_E407));
    (0..cases).map(|_| rng.next_u64()).collect()
}

/// How a case is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sched {
    /// `Builder::deterministic` with this seed: one worker at a time, handed on by a seeded
    /// generator, so the seed replays the interleaving too.
    Deterministic(u64),
    /// Real threads in parallel: finds memory-model races the deterministic mode cannot.
    Parallel,
}

/// The schedules each seed runs under: `REIN_STRESS_MODE=deterministic` or `parallel` picks
/// one; by default every seed runs both.
fn schedules(seed: u64) -> Vec<Sched> {
    let deterministic = Sched::Deterministic(seed.rotate_left(17) ^ 0x5EED);
    match std::env::var("REIN_STRESS_MODE").as_deref().map(str::trim) {
        Ok("deterministic") => vec![deterministic],
        Ok("parallel") => vec![Sched::Parallel],
        Ok(other) if !other.is_empty() => {
            panic!("REIN_STRESS_MODE={other:?}: expected deterministic or parallel")
        }
        _ => vec![deterministic, Sched::Parallel],
    }
}

/// Runs a feeder: on a thread of its own in parallel mode; at once, on the test's thread, in
/// deterministic mode, whose workers hold until `wait`, so outside sends happen in program
/// order before the first round.
fn feeder<'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    sched: Sched,
    f: impl FnOnce() + Send + 'scope,
) {
    match sched {
        Sched::Parallel => {
            s.spawn(f);
        }
        Sched::Deterministic(_) => f(),
    }
}

// ---------------------------------------------------------------------------------------------
// Logs and the checker
// ---------------------------------------------------------------------------------------------

/// What one sender/receiver did: the messages it received, in order, and how many it sent.
/// Sequence numbers of a sender are `0..sent`.
#[derive(Debug, Clone, Default)]
struct Log {
    id: u32,
    received: Vec<(u32, u64)>,
    sent: u64,
}

/// Verifies a run's logs (one per sender/receiver). Returns the number of messages on success.
///
/// * every `(sender, seq)` received was sent (`seq < sent`) and was received exactly once, at
///   one receiver;
/// * every message sent was received (nothing lost);
/// * for each (sender → receiver) pair, sequence numbers arrive strictly increasing (per-sender
///   FIFO; senders number all their messages with one counter, so gaps are normal).
fn check(logs: &[Log]) -> Result<u64, String> {
    let mut sent: HashMap<u32, u64> = HashMap::new();
    for log in logs {
        if sent.insert(log.id, log.sent).is_some() {
            return Err(format!("two logs for actor {}", log.id));
        }
    }
    let total_sent: u64 = sent.values().sum();
    let mut seen: HashSet<(u32, u64)> = HashSet::with_capacity(total_sent as usize);
    for log in logs {
        let mut last: HashMap<u32, u64> = HashMap::new();
        for (i, &(from, seq)) in log.received.iter().enumerate() {
            match sent.get(&from) {
                None => {
                    return Err(format!(
                        "receiver {} got ({from}, {seq}) from unknown sender {from}",
                        log.id
                    ))
                }
                Some(&n) if seq >= n => {
                    return Err(format!(
                        "receiver {} got ({from}, {seq}) but sender {from} sent only {n}",
                        log.id
                    ))
                }
                Some(_) => {}
            }
            if let Some(&prev) = last.get(&from) {
                if seq == prev {
                    return Err(format!(
                        "receiver {} got a duplicate ({from}, {seq}) at position {i}",
                        log.id
                    ));
                }
                if seq < prev {
                    return Err(format!(
                        "receiver {} got sender {from} out of order: {seq} after {prev} \
                         (position {i})",
                        log.id
                    ));
                }
            }
            last.insert(from, seq);
            if !seen.insert((from, seq)) {
                return Err(format!(
                    "duplicate ({from}, {seq}): delivered to receiver {} and to another",
                    log.id
                ));
            }
        }
    }
    if seen.len() as u64 != total_sent {
        let mut missing: Vec<(u32, u64)> = sent
            .iter()
            .flat_map(|(&s, &n)| (0..n).map(move |q| (s, q)))
            .filter(|m| !seen.contains(m))
            .take(5)
            .collect();
        missing.sort_unstable();
        return Err(format!(
            "lost messages: {total_sent} sent, {} received; e.g. {missing:?}",
            seen.len()
        ));
    }
    Ok(total_sent)
}

// ---------------------------------------------------------------------------------------------
// Shared case state and common assertions
// ---------------------------------------------------------------------------------------------

/// The message every stress actor handles.
#[derive(Debug)]
struct Hop {
    from: u32,
    seq: u64,
    hops: u32,
}

/// Per-case state shared by the test thread, the feeders and every actor.
#[derive(Default)]
struct Case {
    /// Logs, pushed by each actor's `Drop` and each feeder when done.
    logs: Mutex<Vec<Log>>,
    /// Sends actors may still make (feeders do not draw from it): bounds the traffic.
    budget: AtomicI64,
    /// Actors that may still be spawned mid-run.
    spawn_budget: AtomicI64,
    next_id: AtomicU32,
    /// Actors (initial and spawned) and feeders: how many logs to expect.
    participants: AtomicU64,
    /// Sends that returned an error (there must be none before quiescence).
    failed_sends: AtomicU64,
    /// The initial graph's nodes, set before any message is sent.
    directory: OnceLock<Vec<ActorRef<Node>>>,
    /// Release ticks handled (timer messages, not logged as traffic).
    ticks: AtomicU64,
    /// Pressure applied (each is released by one tick).
    pressure_pairs: AtomicU64,
    /// Other messages handled that are not traffic (a feeder actor's messages to itself).
    internal: AtomicU64,
}

impl Case {
    fn new(budget: i64, spawn_budget: i64) -> Arc<Case> {
        Arc::new(Case {
            budget: AtomicI64::new(budget),
            spawn_budget: AtomicI64::new(spawn_budget),
            ..Default::default()
        })
    }

    fn new_id(&self) -> u32 {
        self.participants.fetch_add(1, Relaxed);
        self.next_id.fetch_add(1, Relaxed)
    }

    fn take_budget(&self) -> bool {
        self.budget.fetch_sub(1, Relaxed) > 0
    }

    fn push_log(&self, log: Log) {
        // A poisoned lock means some test thread already failed; keep the log anyway.
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(log);
    }
}

/// Where a sender's numbering lives: `send` assigns `seq` and advances it only on success.
struct Outbox {
    id: u32,
    seq: u64,
}

impl Outbox {
    fn send<A: Actor<Msg = Hop>>(&mut self, case: &Case, to: &ActorRef<A>, hops: u32) {
        let msg = Hop {
            from: self.id,
            seq: self.seq,
            hops,
        };
        match to.send(msg) {
            Ok(()) => self.seq += 1,
            Err(_) => {
                case.failed_sends.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Describes a case in every failure message, with how to replay it.
struct Tag {
    seed: u64,
    sched: Sched,
    desc: String,
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.sched {
            Sched::Deterministic(_) => "deterministic",
            Sched::Parallel => "parallel",
        };
        write!(
            f,
            "seed {:#018x}, {mode} (replay: REIN_STRESS_SEED={:#x} REIN_STRESS_MODE={mode}) [{}]",
            self.seed, self.seed, self.desc
        )
    }
}

/// Like `common::wait` (bounded by `limit`, normally [`common::LIMIT`]), but a failure names
/// the seed and shows who is muted on whom, read before the runtime is torn down (a shutdown
/// clears every flag), with any cycle of actors muted on each other.
fn wait(rt: Runtime, tag: &Tag, limit: Duration) -> Report {
    match rt.wait_timeout(limit) {
        Ok(report) => report,
        Err(rt) => {
            let snapshot = rt.mute_snapshot();
            let metrics = rt.metrics();
            drop(rt);
            panic!(
                "{tag}: no quiescence within {limit:?}; mute cycles {:?}; {snapshot:?}; \
                 {metrics:?}",
                mute_cycles(&snapshot)
            )
        }
    }
}

/// Figures kept across the cases of one test, to check that the stress did stress.
#[derive(Debug, Default)]
struct Totals {
    messages: u64,
    mutes: u64,
    overloads: u64,
    handoffs: u64,
}

/// Everything that must hold once a case has reached quiescence.
fn verify(tag: &Tag, case: &Case, report: &Report, backpressure: bool, totals: &mut Totals) {
    let m = &report.metrics;
    assert!(report.quiescent, "{tag}: ended without quiescence: {m:?}");
    assert_eq!(report.worker_panics, 0, "{tag}: worker threads panicked");
    assert_eq!(m.panics, 0, "{tag}: a behaviour panicked: {m:?}");
    assert_eq!(report.undelivered, 0, "{tag}: undelivered messages: {m:?}");
    assert_eq!(m.dropped_messages, 0, "{tag}: dropped messages: {m:?}");
    assert_eq!(m.scheduled_actors, 0, "{tag}: activations left: {m:?}");
    assert_eq!(
        case.failed_sends.load(Relaxed),
        0,
        "{tag}: sends failed before quiescence"
    );
    assert_eq!(
        m.mutes, m.unmutes,
        "{tag}: some mute was never undone: {m:?}"
    );
    assert_eq!(m.muted_actors, 0, "{tag}: an actor is still parked: {m:?}");
    if !backpressure {
        assert_eq!(
            m.mutes + m.overloads,
            0,
            "{tag}: muting without backpressure"
        );
    }
    let logs = std::mem::take(&mut *case.logs.lock().unwrap());
    assert_eq!(
        logs.len() as u64,
        case.participants.load(Relaxed),
        "{tag}: some actor's state was never dropped (or dropped twice)"
    );
    let total = check(&logs).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let ticks = case.ticks.load(Relaxed);
    assert_eq!(
        ticks,
        case.pressure_pairs.load(Relaxed),
        "{tag}: every apply is released by exactly one tick"
    );
    assert_eq!(m.pressured_actors, 0, "{tag}: pressure left applied: {m:?}");
    let internal = case.internal.load(Relaxed);
    assert_eq!(
        m.messages(),
        total + ticks + internal,
        "{tag}: the runtime handled {} messages, the actors logged {total} (+{ticks} ticks, \
         +{internal} internal)",
        m.messages()
    );
    eprintln!(
        "  ok: {total} messages, {} spawned, {} overloads, {} mutes, {} steals",
        m.spawned,
        m.overloads,
        m.mutes,
        m.workers.iter().map(|w| w.steals).sum::<u64>()
    );
    totals.messages += total;
    totals.mutes += m.mutes;
    totals.overloads += m.overloads;
    totals.handoffs += m.handoffs;
}

/// Starts a runtime for a case.
fn build(
    sched: Sched,
    threads: usize,
    batch: usize,
    watermarks: Option<(usize, usize)>,
    bp: bool,
) -> (Runtime, AmbientAuth) {
    let mut b = Runtime::builder()
        .threads(threads)
        .batch(batch)
        .backpressure(bp)
        .thread_name("rein-stress");
    if let Some((low, high)) = watermarks {
        b = b.watermarks(low, high);
    }
    if let Sched::Deterministic(seed) = sched {
        b = b.deterministic(seed);
    }
    b.build_with_auth().expect("runtime")
}

// ---------------------------------------------------------------------------------------------
// Random graphs
// ---------------------------------------------------------------------------------------------

/// A node of a random graph: logs what it receives and forwards along random edges.
struct Node {
    case: Arc<Case>,
    out: Outbox,
    rng: Rng,
    /// Indices into the directory, resolved on the first message.
    initial_edges: Vec<usize>,
    edges: Vec<ActorRef<Node>>,
    received: Vec<(u32, u64)>,
    /// Messages this node originates itself (not in reply to anything): on its first message
    /// for initial nodes, in `started` for spawned ones.
    originate: usize,
    /// Spawned nodes: whether to add a self-edge once started.
    self_edge: bool,
    /// When set, the node applies backpressure at random and releases it on a timer tick.
    auth: Option<AmbientAuth>,
    pressured: bool,
    /// Percent of behaviours that end by sleeping a few milliseconds (after their sends), so
    /// that the watchdog hands what this worker holds to the others mid-run.
    slow: usize,
}

/// `Hop::from` of a release tick: a timer message, not traffic.
const RELEASE_TICK: u32 = u32::MAX;

impl Node {
    fn new(case: Arc<Case>, id: u32, rng: Rng, originate: usize) -> Node {
        Node {
            case,
            out: Outbox { id, seq: 0 },
            rng,
            initial_edges: Vec::new(),
            edges: Vec::new(),
            received: Vec::new(),
            originate,
            self_edge: false,
            auth: None,
            pressured: false,
            slow: 0,
        }
    }

    /// With authority, now and then apply backpressure and schedule its release on a timer
    /// (ticks are never muted, so every pair is released and quiescence still comes).
    fn maybe_apply_pressure(&mut self, ctx: &mut Context<Self>) {
        let Some(auth) = &self.auth else { return };
        if self.pressured || !self.rng.chance(8) {
            return;
        }
        assert!(rein::pressure::apply(auth).expect("inside a behaviour"));
        self.pressured = true;
        self.case.pressure_pairs.fetch_add(1, Relaxed);
        let delay = Duration::from_micros(self.rng.range(0, 2_000) as u64);
        let tick = Hop {
            from: RELEASE_TICK,
            seq: 0,
            hops: 0,
        };
        ctx.after_keeping_alive(delay, tick);
    }

    fn forward(&mut self, hops: u32) {
        if self.edges.is_empty() || !self.case.take_budget() {
            return;
        }
        let to = self.edges[self.rng.below(self.edges.len())].clone();
        self.out.send(&self.case, &to, hops);
    }

    fn originate_all(&mut self) {
        for _ in 0..std::mem::take(&mut self.originate) {
            let hops = self.rng.range(1, 12) as u32;
            self.forward(hops);
        }
    }
}

impl Actor for Node {
    type Msg = Hop;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.self_edge {
            self.edges.push(ctx.myself());
        }
        // Spawned nodes have their edges already and start sending at once.
        if !self.edges.is_empty() {
            self.originate_all();
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Hop) {
        if msg.from == RELEASE_TICK {
            self.case.ticks.fetch_add(1, Relaxed);
            let auth = self.auth.as_ref().expect("ticks only come with authority");
            assert!(rein::pressure::release(auth).expect("inside a behaviour"));
            self.pressured = false;
            return;
        }
        self.received.push((msg.from, msg.seq));
        if !self.initial_edges.is_empty() {
            let directory = self
                .case
                .directory
                .get()
                .expect("directory set before sends");
            for i in std::mem::take(&mut self.initial_edges) {
                self.edges.push(directory[i].clone());
            }
        }
        self.originate_all();
        if self.rng.chance(2) && self.case.spawn_budget.fetch_sub(1, Relaxed) > 0 {
            let id = self.case.new_id();
            let mut child = Node::new(self.case.clone(), id, self.rng.fork(), self.rng.range(0, 4));
            for _ in 0..self.rng.range(0, 3) {
                if !self.edges.is_empty() {
                    child
                        .edges
                        .push(self.edges[self.rng.below(self.edges.len())].clone());
                }
            }
            child.edges.push(ctx.myself());
            child.self_edge = self.rng.chance(30);
            child.auth = self.auth.clone();
            child.slow = self.slow;
            let child = ctx.spawn(child);
            self.edges.push(child);
        }
        if msg.hops > 0 {
            let k = self.rng.range(0, (msg.hops as usize).min(3));
            for _ in 0..k {
                self.forward(msg.hops - 1);
            }
        }
        self.maybe_apply_pressure(ctx);
        if self.slow > 0 && self.rng.chance(self.slow) {
            std::thread::sleep(Duration::from_micros(self.rng.range(1_500, 4_000) as u64));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.case.push_log(Log {
            id: self.out.id,
            received: std::mem::take(&mut self.received),
            sent: self.out.seq,
        });
    }
}

/// Reads a Unix socket registered with the runtime's I/O until its end of stream: while it is
/// registered, an idle worker waits in `epoll_wait` rather than its futex, so the graph's
/// traffic has to wake that worker through the poller's waker (see `rein::Io`).
struct SocketReader {
    case: Arc<Case>,
    stream: std::os::unix::net::UnixStream,
    registration: Option<rein::IoRegistration>,
    bytes: Arc<AtomicU64>,
}

impl Actor for SocketReader {
    type Msg = rein::Readiness;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use std::os::fd::AsRawFd;
        let me = ctx.myself();
        let owner = move |ready| {
            let _ = me.send(ready);
        };
        let fd = self.stream.as_raw_fd();
        let io = ctx.runtime().io();
        self.registration = Some(
            io.register(fd, rein::Interest::READABLE, owner)
                .expect("register the socket"),
        );
    }

    fn handle(&mut self, _: &mut Context<Self>, _: rein::Readiness) {
        use std::io::Read;
        self.case.internal.fetch_add(1, Relaxed);
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    // Deregistering lets the runtime end. No stop: an edge already queued
                    // behind this one must still find the actor (or it would count as dropped).
                    self.registration = None;
                    return;
                }
                Ok(n) => {
                    self.bytes.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("reading the socket: {e}"),
            }
        }
    }
}

/// Runs one random-graph case. `small_watermarks` forces `.watermarks(4, 16)`; `slow` makes
/// that percentage of behaviours sleep for a few milliseconds, on two or four workers. In
/// parallel mode, half the cases also have a socket registered with the runtime's I/O, written
/// to now and then while the feeders run, so that an idle worker waits in `epoll_wait`.
fn random_graph_case(
    seed: u64,
    sched: Sched,
    small_watermarks: bool,
    slow: usize,
    limit: Duration,
    totals: &mut Totals,
) {
    let mut rng = Rng::new(seed);
    let threads = if slow > 0 {
        rng.pick(&[2, 4])
    } else {
        rng.pick(&[1, 2, 4])
    };
    let batch = rng.range(1, 200);
    let n = rng.range(2, 40);
    let feeders = rng.range(1, 4);
    let per_feeder = rng.range(10, 200);
    let budget = if slow > 0 {
        rng.range(500, 3_000) as i64
    } else {
        rng.range(2_000, 25_000) as i64
    };
    let spawn_budget = rng.range(0, 20) as i64;
    let backpressure = small_watermarks || !rng.chance(20);
    let pressure = rng.chance(50);
    let watermarks = if small_watermarks {
        Some((4, 16))
    } else {
        match rng.below(3) {
            0 => None,
            1 => Some((4, 16)),
            _ => {
                let high = rng.range(1, 64);
                Some((rng.below(high), high))
            }
        }
    };
    let tag = Tag {
        seed,
        sched,
        desc: format!(
            "random graph: threads {threads}, batch {batch}, nodes {n}, feeders {feeders}x\
             {per_feeder}, budget {budget}, spawns {spawn_budget}, backpressure {backpressure}, \
             watermarks {watermarks:?}, random apply/release {pressure}, slow {slow}%"
        ),
    };
    eprintln!("{tag}");

    let case = Case::new(budget, spawn_budget);
    let (rt, auth) = build(sched, threads, batch, watermarks, backpressure);
    let socket = (sched == Sched::Parallel && rng.chance(50)).then(|| {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        ours.set_nonblocking(true).expect("non-blocking");
        let bytes = Arc::new(AtomicU64::new(0));
        rt.spawn(SocketReader {
            case: case.clone(),
            stream: ours,
            registration: None,
            bytes: bytes.clone(),
        });
        (theirs, bytes, rng.range(1, 40))
    });
    eprintln!("  socket: {}", socket.is_some());
    let nodes: Vec<ActorRef<Node>> = (0..n)
        .map(|_| {
            let id = case.new_id();
            let originate = if rng.chance(30) { rng.range(1, 5) } else { 0 };
            let mut node = Node::new(case.clone(), id, rng.fork(), originate);
            // 0..=4 out-edges; self-edges and cycles arise naturally.
            node.initial_edges = (0..rng.range(0, 4)).map(|_| rng.below(n)).collect();
            node.auth = pressure.then(|| auth.clone());
            node.slow = slow;
            rt.spawn(node)
        })
        .collect();
    assert!(case.directory.set(nodes.clone()).is_ok());

    let written = socket.as_ref().map(|(_, _, writes)| *writes * 512);
    let socket_bytes = socket.as_ref().map(|(_, bytes, _)| bytes.clone());
    std::thread::scope(|s| {
        if let Some((mut theirs, _, writes)) = socket {
            let mut srng = rng.fork();
            s.spawn(move || {
                use std::io::Write;
                for _ in 0..writes {
                    theirs.write_all(&[7u8; 512]).expect("write the socket");
                    std::thread::sleep(Duration::from_micros(srng.range(0, 500) as u64));
                }
                // Dropped here: the reader sees the end of stream and deregisters.
            });
        }
        for _ in 0..feeders {
            let mut frng = rng.fork();
            let nodes = &nodes;
            let case = &case;
            let id = case.new_id();
            feeder(s, sched, move || {
                let mut out = Outbox { id, seq: 0 };
                for _ in 0..per_feeder {
                    let to = &nodes[frng.below(nodes.len())];
                    let hops = frng.range(0, 12) as u32;
                    out.send(case, to, hops);
                    if frng.chance(5) {
                        std::thread::yield_now();
                    }
                }
                case.push_log(Log {
                    id,
                    received: Vec::new(),
                    sent: out.seq,
                });
            });
        }
    });
    drop(nodes);
    let report = wait(rt, &tag, limit);
    verify(&tag, &case, &report, backpressure, totals);
    if let (Some(written), Some(got)) = (written, socket_bytes) {
        assert_eq!(
            got.load(Relaxed),
            written as u64,
            "{tag}: the socket's bytes did not all arrive"
        );
    }
}

#[test]
fn random_graphs_deliver_everything_once_in_per_sender_order() {
    let mut totals = Totals::default();
    for seed in seeds(1) {
        for sched in schedules(seed) {
            random_graph_case(seed, sched, false, 0, common::LIMIT, &mut totals);
        }
    }
    assert!(totals.messages > 0, "no traffic at all: {totals:?}");
}

/// Behaviours that now and then sleep past the watchdog's tick, after sending: the actors they
/// woke (in their worker's next slot) and those lingering on their worker are handed to the
/// other workers mid-turn. Nothing may be lost, duplicated or reordered by that. Parallel mode
/// only: the watchdog is a matter of real time, which deterministic mode does without.
#[test]
fn random_graphs_with_slow_behaviours_hand_work_over_without_losing_anything() {
    let mut totals = Totals::default();
    for seed in seeds(4) {
        random_graph_case(seed, Sched::Parallel, false, 2, common::LIMIT, &mut totals);
    }
    assert!(totals.messages > 0, "no traffic at all: {totals:?}");
    assert!(
        totals.handoffs > 0,
        "the watchdog never handed anything over: {totals:?}"
    );
    eprintln!("{totals:?}");
}

#[test]
fn random_graphs_with_small_watermarks_mute_without_losing_anything() {
    let mut totals = Totals::default();
    for seed in seeds(2) {
        for sched in schedules(seed) {
            random_graph_case(seed, sched, true, 0, common::LIMIT, &mut totals);
        }
    }
    assert!(totals.messages > 0, "no traffic at all: {totals:?}");
}

// ---------------------------------------------------------------------------------------------
// Random DAGs: every mailbox within its bound
// ---------------------------------------------------------------------------------------------

/// The largest backlog seen at each node of a DAG case: by senders right after each send, and
/// by the node at each message. Either reading can miss a peak, never invent one.
struct Peaks(Vec<AtomicUsize>);

impl Peaks {
    fn see(&self, node: usize, backlog: usize) {
        self.0[node].fetch_max(backlog, Relaxed);
    }
}

/// A node of a random DAG: logs what it receives; a message with `hops = b` makes it send `b`
/// messages downstream in that one behaviour (bursts at the first layer); otherwise it passes
/// the message on to one out-edge, now and then to two.
struct DagNode {
    case: Arc<Case>,
    index: usize,
    out: Outbox,
    rng: Rng,
    edges: Vec<(usize, ActorRef<DagNode>)>,
    peaks: Arc<Peaks>,
    work: u32,
    own_watermarks: Option<(usize, usize)>,
    received: Vec<(u32, u64)>,
}

impl DagNode {
    fn send_on(&mut self) {
        if self.edges.is_empty() || !self.case.take_budget() {
            return;
        }
        let (i, to) = &self.edges[self.rng.below(self.edges.len())];
        self.out.send(&self.case, to, 1);
        self.peaks.see(*i, to.backlog());
    }
}

impl Actor for DagNode {
    type Msg = Hop;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some((low, high)) = self.own_watermarks {
            ctx.set_watermarks(low, high).expect("valid watermarks");
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Hop) {
        self.peaks.see(self.index, ctx.backlog());
        self.received.push((msg.from, msg.seq));
        let mut x = msg.seq;
        for _ in 0..self.work {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let sends = if msg.hops > 1 {
            msg.hops as usize
        } else if self.rng.chance(10) {
            2
        } else {
            1
        };
        for _ in 0..sends {
            self.send_on();
        }
    }
}

impl Drop for DagNode {
    fn drop(&mut self) {
        self.case.push_log(Log {
            id: self.out.id,
            received: std::mem::take(&mut self.received),
            sent: self.out.seq,
        });
    }
}

/// Feeds the first layer of a DAG from inside the runtime: one burst request per behaviour,
/// then a message to itself to go on (its own messages are not traffic and are not logged).
struct DagFeeder {
    case: Arc<Case>,
    out: Outbox,
    rng: Rng,
    first: Vec<(usize, ActorRef<DagNode>)>,
    peaks: Arc<Peaks>,
    left: usize,
    max_burst: usize,
}

impl Actor for DagFeeder {
    type Msg = Hop;
    fn handle(&mut self, ctx: &mut Context<Self>, _: Hop) {
        self.case.internal.fetch_add(1, Relaxed);
        if self.left == 0 {
            return;
        }
        self.left -= 1;
        let (i, to) = &self.first[self.rng.below(self.first.len())];
        let burst = self.rng.range(1, self.max_burst) as u32;
        self.out.send(&self.case, to, burst);
        self.peaks.see(*i, to.backlog());
        let _ = ctx.myself().send(Hop {
            from: RELEASE_TICK,
            seq: 0,
            hops: 0,
        });
    }
}

impl Drop for DagFeeder {
    fn drop(&mut self) {
        self.case.push_log(Log {
            id: self.out.id,
            received: Vec::new(),
            sent: self.out.seq,
        });
    }
}

/// Runs one random-DAG case: layers of nodes, edges only forward (some skip layers, making
/// diamonds), fan-in and fan-out up to 8, slow and fast stages, some with their own
/// watermarks, fed by outside threads that honour pressure (`send_timeout`). Every mailbox's
/// peak must stay within `high + 2·Σ K + F`: `K` the most a sender sends per behaviour, summed
/// over its senders, plus one message per outside feeder that can race past its pressure check.
fn random_dag_case(seed: u64, sched: Sched, totals: &mut Totals) {
    let mut rng = Rng::new(seed);
    let threads = rng.pick(&[1, 2, 4]);
    let batch = rng.range(1, 200);
    let depth = rng.range(1, 20);
    let max_burst = rng.range(1, 64);
    let feeders = rng.range(1, 3);
    let per_feeder = rng.range(20, 200);
    let budget = rng.range(2_000, 30_000) as i64;
    let (low, high) = match rng.below(3) {
        0 => (rein::DEFAULT_LOW_WATERMARK, rein::DEFAULT_HIGH_WATERMARK),
        1 => (4, 16),
        _ => {
            let high = rng.range(2, 64);
            (rng.below(high), high)
        }
    };
    let widths: Vec<usize> = (0..depth).map(|_| rng.range(1, 8)).collect();
    let mut layer_of = Vec::new();
    for (layer, &w) in widths.iter().enumerate() {
        layer_of.extend(std::iter::repeat(layer).take(w));
    }
    let n = layer_of.len();
    let first_of = |layer: usize| widths[..layer].iter().sum::<usize>();
    // Edges: each node below the last layer gets 1..=8 out-edges into the next three layers,
    // keeping every node's in-degree at 8 or less.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut in_degree = vec![0usize; n];
    for from in 0..n {
        let layer = layer_of[from];
        if layer + 1 >= depth {
            continue;
        }
        let lo = first_of(layer + 1);
        let hi = first_of((layer + 4).min(depth));
        for _ in 0..rng.range(1, 8) {
            let to = rng.range(lo, hi - 1);
            if in_degree[to] < 8 && !edges[from].contains(&to) {
                edges[from].push(to);
                in_degree[to] += 1;
            }
        }
    }
    let work: Vec<u32> = (0..n)
        .map(|_| {
            if rng.chance(25) {
                rng.range(500, 3_000) as u32
            } else {
                rng.range(0, 50) as u32
            }
        })
        .collect();
    let own: Vec<Option<(usize, usize)>> = (0..n)
        .map(|_| {
            rng.chance(20).then(|| {
                let h = rng.range(2, 48);
                (rng.below(h), h)
            })
        })
        .collect();
    // The bound per node. K: layer-0 nodes send up to a burst per behaviour, others up to 2.
    let per_behaviour = |from: usize| if layer_of[from] == 0 { max_burst } else { 2 };
    let mut bound: Vec<usize> = (0..n)
        .map(|i| high.max(own[i].map_or(0, |o| o.1)))
        .collect();
    for (from, outs) in edges.iter().enumerate() {
        for &to in outs {
            bound[to] += 2 * per_behaviour(from);
        }
    }
    // Outside feeders can each race one message past a pressure check; feeder actors (in
    // deterministic mode) send one message per behaviour: 2·K with K = 1.
    for b in bound.iter_mut().take(widths[0]) {
        *b += 2 * feeders;
    }
    let tag = Tag {
        seed,
        sched,
        desc: format!(
            "random DAG: threads {threads}, batch {batch}, layers {widths:?}, bursts 1..={max_burst}, \
             feeders {feeders}x{per_feeder}, budget {budget}, watermarks ({low}, {high})"
        ),
    };
    eprintln!("{tag}");

    let case = Case::new(budget, 0);
    let (rt, _auth) = build(sched, threads, batch, Some((low, high)), true);
    let peaks = Arc::new(Peaks((0..n).map(|_| AtomicUsize::new(0)).collect()));
    // Spawn from the last layer back, so every node's out-edges exist when it is made.
    let mut refs: Vec<Option<ActorRef<DagNode>>> = vec![None; n];
    for i in (0..n).rev() {
        let id = case.new_id();
        let node = DagNode {
            case: case.clone(),
            index: i,
            out: Outbox { id, seq: 0 },
            rng: rng.fork(),
            edges: edges[i]
                .iter()
                .map(|&to| (to, refs[to].clone().expect("spawned")))
                .collect(),
            peaks: peaks.clone(),
            work: work[i],
            own_watermarks: own[i],
            received: Vec::new(),
        };
        refs[i] = Some(rt.spawn(node));
    }
    let first: Vec<(usize, ActorRef<DagNode>)> = refs[..widths[0]]
        .iter()
        .flatten()
        .cloned()
        .enumerate()
        .collect();
    drop(refs);
    match sched {
        // Outside threads that honour pressure.
        Sched::Parallel => std::thread::scope(|s| {
            for _ in 0..feeders {
                let mut frng = rng.fork();
                let (first, case, peaks) = (&first, &case, &peaks);
                let id = case.new_id();
                s.spawn(move || {
                    let mut seq = 0;
                    for _ in 0..per_feeder {
                        let (i, to) = &first[frng.below(first.len())];
                        let msg = Hop {
                            from: id,
                            seq,
                            hops: frng.range(1, max_burst) as u32,
                        };
                        match to.send_timeout(msg, common::LIMIT) {
                            Ok(()) => seq += 1,
                            Err(e) => panic!("seed {seed:#018x}: a feeder's send failed: {e:?}"),
                        }
                        peaks.see(*i, to.backlog());
                    }
                    case.push_log(Log {
                        id,
                        received: Vec::new(),
                        sent: seq,
                    });
                });
            }
        }),
        // Workers hold until `wait`, so a pressure-aware outside send could wait for ever:
        // feed from actors instead, which muting holds back.
        Sched::Deterministic(_) => {
            for _ in 0..feeders {
                let id = case.new_id();
                let feeder = rt.spawn(DagFeeder {
                    case: case.clone(),
                    out: Outbox { id, seq: 0 },
                    rng: rng.fork(),
                    first: first.clone(),
                    peaks: peaks.clone(),
                    left: per_feeder,
                    max_burst,
                });
                feeder
                    .send(Hop {
                        from: RELEASE_TICK,
                        seq: 0,
                        hops: 0,
                    })
                    .expect("fresh feeder");
            }
        }
    }
    drop(first);
    let report = wait(rt, &tag, common::LIMIT);
    verify(&tag, &case, &report, true, totals);
    assert_eq!(
        report.metrics.cycle_refusals, 0,
        "{tag}: a mute was refused for a cycle in an acyclic graph"
    );
    for i in 0..n {
        let peak = peaks.0[i].load(Relaxed);
        assert!(
            peak <= bound[i],
            "{tag}: node {i} (layer {}, {} senders, own watermarks {:?}) reached a backlog of \
             {peak}, above its bound {}",
            layer_of[i],
            in_degree[i],
            own[i],
            bound[i]
        );
    }
}

#[test]
fn random_dags_keep_every_mailbox_within_its_bound() {
    let mut totals = Totals::default();
    for seed in seeds(6) {
        for sched in schedules(seed) {
            random_dag_case(seed, sched, &mut totals);
        }
    }
    assert!(totals.messages > 0, "no traffic at all: {totals:?}");
}

// ---------------------------------------------------------------------------------------------
// Fan-in: many senders, one receiver
// ---------------------------------------------------------------------------------------------

/// The one receiver: logs and does a little work per message, so that it falls behind.
struct Sink {
    case: Arc<Case>,
    id: u32,
    work: u32,
    received: Vec<(u32, u64)>,
    /// The largest backlog seen, by the sink at each message and by senders after each send.
    peak: Arc<AtomicUsize>,
}

impl Actor for Sink {
    type Msg = Hop;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Hop) {
        self.peak.fetch_max(ctx.backlog(), Relaxed);
        self.received.push((msg.from, msg.seq));
        let mut x = msg.seq;
        for _ in 0..self.work {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.case.push_log(Log {
            id: self.id,
            received: std::mem::take(&mut self.received),
            sent: 0,
        });
    }
}

/// A sender: each message it gets asks for a burst of `hops` messages to the sink.
struct Source {
    case: Arc<Case>,
    out: Outbox,
    sink: ActorRef<Sink>,
    peak: Arc<AtomicUsize>,
    received: Vec<(u32, u64)>,
}

impl Actor for Source {
    type Msg = Hop;
    fn handle(&mut self, _: &mut Context<Self>, msg: Hop) {
        self.received.push((msg.from, msg.seq));
        for _ in 0..msg.hops {
            self.out.send(&self.case, &self.sink, 0);
            self.peak.fetch_max(self.sink.backlog(), Relaxed);
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.case.push_log(Log {
            id: self.out.id,
            received: std::mem::take(&mut self.received),
            sent: self.out.seq,
        });
    }
}

#[derive(Clone, Copy, Debug)]
enum FanIn {
    Backpressure,
    NoBackpressure,
    SmallWatermarks,
}

fn fan_in_case(seed: u64, sched: Sched, mode: FanIn, totals: &mut Totals) {
    let limit = common::LIMIT;
    let mut rng = Rng::new(seed);
    let threads = rng.pick(&[1, 2, 4]);
    let batch = rng.range(1, 200);
    let sources = rng.range(8, 40);
    let feeders = rng.range(2, 4);
    let per_feeder = rng.range(100, 400);
    let max_burst = rng.range(8, 64);
    let work = rng.range(0, 200) as u32;
    let (backpressure, watermarks) = match mode {
        FanIn::Backpressure => (true, None),
        FanIn::NoBackpressure => (false, None),
        FanIn::SmallWatermarks => (true, Some((4, 16))),
    };
    let tag = Tag {
        seed,
        sched,
        desc: format!(
            "fan-in {mode:?}: threads {threads}, batch {batch}, sources {sources}, feeders \
             {feeders}x{per_feeder}, bursts 1..={max_burst}, sink work {work}"
        ),
    };
    eprintln!("{tag}");

    let case = Case::new(0, 0);
    let (rt, _auth) = build(sched, threads, batch, watermarks, backpressure);
    let peak = Arc::new(AtomicUsize::new(0));
    let direct = AtomicU64::new(0);
    let sink = rt.spawn(Sink {
        case: case.clone(),
        id: case.new_id(),
        work,
        received: Vec::new(),
        peak: peak.clone(),
    });
    let srcs: Vec<ActorRef<Source>> = (0..sources)
        .map(|_| {
            rt.spawn(Source {
                case: case.clone(),
                out: Outbox {
                    id: case.new_id(),
                    seq: 0,
                },
                sink: sink.clone(),
                peak: peak.clone(),
                received: Vec::new(),
            })
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..feeders {
            let mut frng = rng.fork();
            let (srcs, sink, case, direct) = (&srcs, &sink, &case, &direct);
            let id = case.new_id();
            feeder(s, sched, move || {
                let mut out = Outbox { id, seq: 0 };
                for _ in 0..per_feeder {
                    if frng.chance(10) {
                        // A plain send from outside: never muted, so it counts in full.
                        out.send(case, sink, 0);
                        direct.fetch_add(1, Relaxed);
                    } else {
                        let burst = frng.range(1, max_burst) as u32;
                        out.send(case, &srcs[frng.below(srcs.len())], burst);
                    }
                }
                case.push_log(Log {
                    id,
                    received: Vec::new(),
                    sent: out.seq,
                });
            });
        }
    });
    drop((sink, srcs));
    let report = wait(rt, &tag, limit);
    verify(&tag, &case, &report, backpressure, totals);
    if backpressure {
        // high + 2·P·K for the sources, plus every plain send from outside.
        let high = watermarks.map_or(rein::DEFAULT_HIGH_WATERMARK, |w| w.1);
        let bound = high + 2 * sources * max_burst + direct.load(Relaxed) as usize;
        let peak = peak.load(Relaxed);
        assert!(
            peak <= bound,
            "{tag}: the sink's backlog reached {peak}, above its bound {bound}"
        );
    }
}

fn fan_in(salt: u64, mode: FanIn) -> Totals {
    let mut totals = Totals::default();
    for seed in seeds(salt) {
        for sched in schedules(seed) {
            fan_in_case(seed, sched, mode, &mut totals);
        }
    }
    assert!(totals.messages > 0, "no traffic at all: {totals:?}");
    totals
}

#[test]
fn fan_in_with_backpressure() {
    fan_in(3, FanIn::Backpressure);
}

#[test]
fn fan_in_without_backpressure() {
    fan_in(4, FanIn::NoBackpressure);
}

#[test]
fn fan_in_with_small_watermarks_mutes_a_lot() {
    let totals = fan_in(5, FanIn::SmallWatermarks);
    // Bursts of up to 64 into a high watermark of 16 overload the sink in practically every
    // case; over all cases, muting must have happened (or this test stresses nothing).
    assert!(
        totals.overloads > 0 && totals.mutes > 0,
        "small watermarks never muted anyone: {totals:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The checker itself must be able to fail
// ---------------------------------------------------------------------------------------------

#[test]
fn the_checker_catches_loss_duplicates_and_reordering() {
    let good = || {
        vec![
            Log {
                id: 1,
                received: vec![],
                sent: 3,
            },
            Log {
                id: 2,
                received: vec![(1, 0), (1, 2), (3, 0)],
                sent: 1,
            },
            Log {
                id: 3,
                received: vec![(1, 1), (2, 0)],
                sent: 1,
            },
        ]
    };
    assert_eq!(check(&good()), Ok(5));
    // The Rng is deterministic and covers its range.
    let mut r = Rng::new(7);
    let a: Vec<_> = (0..4).map(|_| r.next_u64()).collect();
    let mut r = Rng::new(7);
    assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
    let mut hit = [false; 5];
    for _ in 0..200 {
        hit[r.range(2, 6) - 2] = true;
    }
    assert_eq!(hit, [true; 5]);
    assert_eq!(parse_seed("0x10"), 16);
    assert_eq!(parse_seed("10"), 10);

    let expect_err = |logs: Vec<Log>, needle: &str| {
        let err = check(&logs).expect_err(needle);
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    };
    // Duplicate at one receiver.
    let mut logs = good();
    logs[1].received.push((1, 2));
    expect_err(logs, "duplicate");
    // The same message at two receivers.
    let mut logs = good();
    logs[2].received.push((1, 2));
    expect_err(logs, "to another");
    // Out of order between one pair.
    let mut logs = good();
    logs[1].received.swap(0, 1);
    expect_err(logs, "out of order");
    // Lost.
    let mut logs = good();
    logs[2].received.remove(0);
    expect_err(logs, "lost");
    // Received but never sent.
    let mut logs = good();
    logs[2].received.push((2, 1));
    expect_err(logs, "sent only");
    // From nobody.
    let mut logs = good();
    logs[2].received.push((9, 0));
    expect_err(logs, "unknown sender");
}

// ---------------------------------------------------------------------------------------------
// Regressions: two muting races this file found (fixed in c723deb)
// ---------------------------------------------------------------------------------------------

/// What a hung runtime's mute snapshot shows: cycles of muted actors, and muted actors waiting
/// on an idle receiver.
fn mute_cycles(snapshot: &rein::MuteSnapshot) -> Vec<Vec<rein::ActorId>> {
    let mut out: HashMap<rein::ActorId, Vec<rein::ActorId>> = HashMap::new();
    for e in &snapshot.edges {
        out.entry(e.sender).or_default().push(e.receiver);
    }
    let mut cycles = Vec::new();
    let mut starts: Vec<_> = out.keys().copied().collect();
    starts.sort_unstable();
    for start in starts {
        // Depth-first search for a path back to `start` through larger ids only, so that each
        // cycle is reported once (from its smallest member).
        let mut stack = vec![(start, vec![start])];
        while let Some((node, path)) = stack.pop() {
            for &next in out.get(&node).into_iter().flatten() {
                if next == start {
                    cycles.push(path.clone());
                } else if next > start && !path.contains(&next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    cycles
}

/// How long the probabilistic regression test keeps trying (`REIN_REPRO_SECS`, default 2).
fn repro_budget() -> Duration {
    let secs = std::env::var("REIN_REPRO_SECS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2);
    Duration::from_secs(secs)
}

/// Keeps the cores oversubscribed while it lives, so that workers get preempted at random
/// points (inside the runtime's short race windows, among others).
struct Burners {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Burners {
    /// One spinning thread per core (at most 16).
    fn start() -> Burners {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().min(16));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Relaxed) {
                        for _ in 0..1000 {
                            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
                        }
                    }
                })
            })
            .collect();
        Burners { stop, threads }
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A receiver that does a little work per message.
struct SlowSink {
    work: u32,
}

impl Actor for SlowSink {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {
        let mut x = 1u64;
        for _ in 0..self.work {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
    }
}

/// Sends one message to its sink per tick, and ticks itself `n` times. Its own backlog stays
/// at one or two, so it is never overloaded itself and always mutes on an overloaded sink.
struct Ticker {
    sink: ActorRef<SlowSink>,
}

impl Actor for Ticker {
    type Msg = u32;
    fn handle(&mut self, ctx: &mut Context<Self>, n: u32) {
        let _ = self.sink.send(());
        if n > 0 {
            let _ = ctx.myself().send(n - 1);
        }
    }
}

/// Regression: **a sender stayed muted forever on an idle receiver** (no quiescence).
///
/// `Header::after_push` sets `OVERLOADED` *after* the push that crossed the high watermark.
/// Before c723deb, if the receiver's turn popped that message, drained everything and
/// retired to zero in between, the turn had already read its word (no `OVERLOADED`) and went
/// idle; the flag then sat on an idle receiver that no turn would ever clear. The sender had
/// noted the receiver as blocking (`over`), registered in its muted list (the re-check under
/// the lock saw `OVERLOADED`) and parked for good. The fix makes the set, the turn's retire and
/// the reads after each SeqCst and has the sender recover a receiver it finds drained.
///
/// Each ticker → sink pair crosses the watermark (4) over and over; the race needs the
/// ticker's worker to be preempted between the link and the `fetch_or`, so burner threads
/// oversubscribe the cores. Before the fix this hung in the first or second round on 2 cores,
/// leaving the ticker parked on its idle (backlog 0) yet still overloaded sink.
#[test]
fn a_late_overload_flag_never_strands_a_muted_sender() {
    const PAIRS: usize = 2;
    const TICKS: u32 = 10_000;
    let _burners = Burners::start();
    let deadline = Instant::now() + repro_budget();
    let mut rounds = 0u64;
    while rounds == 0 || Instant::now() < deadline {
        rounds += 1;
        let rt = Runtime::builder()
            .threads(4)
            .batch(1)
            .watermarks(3, 4)
            .build()
            .unwrap();
        let pairs: Vec<_> = (0..PAIRS)
            .map(|_| {
                let sink = rt.spawn(SlowSink { work: 500 });
                let ticker = rt.spawn(Ticker { sink: sink.clone() });
                (ticker, sink)
            })
            .collect();
        for (ticker, _) in &pairs {
            ticker.send(TICKS).unwrap();
        }
        let rt = match rt.wait_timeout(Duration::from_secs(5)) {
            Ok(report) => {
                assert!(report.quiescent);
                assert_eq!(
                    report.metrics.messages(),
                    2 * PAIRS as u64 * (TICKS as u64 + 1)
                );
                continue;
            }
            Err(rt) => rt,
        };
        let snap = rt.mute_snapshot();
        let stranded: Vec<_> = pairs
            .iter()
            .filter(|(ticker, sink)| {
                sink.backlog() == 0
                    && snap.overloaded.contains(&sink.id())
                    && snap.muted.contains(&ticker.id())
                    && snap
                        .edges
                        .iter()
                        .any(|e| e.sender == ticker.id() && e.receiver == sink.id())
            })
            .map(|(ticker, sink)| (ticker.id(), sink.id()))
            .collect();
        let m = rt.metrics();
        drop(rt);
        panic!(
            "round {rounds}: no quiescence within 5 s. (ticker, sink) pairs where the ticker \
             is parked, muted on its sink, and the sink is idle (backlog 0) yet still \
             OVERLOADED: {stranded:?}. Snapshot: {snap:?}. Metrics: {m:?}"
        );
    }
    eprintln!("{rounds} rounds, no sender stranded");
}

/// Where a thread id is recorded, for the test's own set-up check.
type ThreadSlot = Arc<Mutex<Option<std::thread::ThreadId>>>;

enum VictimMsg {
    Go(ActorRef<Doomed>, ActorRef<Poked>, ThreadSlot),
    Filler,
}

/// Overloads its two receivers with one behaviour, then (after they have drained) ends it.
struct Victim;

impl Actor for Victim {
    type Msg = VictimMsg;
    fn handle(&mut self, _: &mut Context<Self>, msg: VictimMsg) {
        if let VictimMsg::Go(doomed, poked, ran_on) = msg {
            // Each push crosses the high watermark (16): both receivers are noted as blocking.
            for _ in 0..17 {
                doomed.send(DoomedMsg::Filler).unwrap();
                poked.send(PokedMsg::Filler).unwrap();
            }
            drop(doomed);
            // Let both drain and recover: at the end of this behaviour neither blocks.
            std::thread::sleep(Duration::from_millis(150));
            *ran_on.lock().unwrap() = Some(std::thread::current().id());
        }
    }
}

enum DoomedMsg {
    Sleep(Duration),
    Filler,
}

/// Its last reference is the victim's list of blocking receivers, so it is dropped *inside*
/// `register_mutes`, after the victim checked that it is not overloaded itself and before it
/// registers on `Poked`. Its `Drop` plays the other threads' part of the race, slowly.
struct Doomed {
    victim: ActorRef<Victim>,
    poked: ActorRef<Poked>,
    /// The thread that dropped it: the victim's, right after its behaviour.
    drop_thread: ThreadSlot,
}

impl Actor for Doomed {
    type Msg = DoomedMsg;
    fn handle(&mut self, _: &mut Context<Self>, msg: DoomedMsg) {
        if let DoomedMsg::Sleep(d) = msg {
            std::thread::sleep(d);
        }
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        *self.drop_thread.lock().unwrap() = Some(std::thread::current().id());
        // 1. The victim becomes overloaded (any sender could do this at this moment).
        for _ in 0..20 {
            let _ = self.victim.send(VictimMsg::Filler);
        }
        // 2. Its peer sends to it, mutes itself on it and parks.
        let poked = self.poked.clone();
        std::thread::spawn(move || poked.send(PokedMsg::Poke))
            .join()
            .unwrap()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        // 3. Back in `register_mutes`, the victim registers on the parked peer and parks too.
    }
}

enum PokedMsg {
    Sleep(Duration),
    Filler,
    Poke,
}

struct Poked {
    victim: ActorRef<Victim>,
}

impl Actor for Poked {
    type Msg = PokedMsg;
    fn handle(&mut self, _: &mut Context<Self>, msg: PokedMsg) {
        match msg {
            PokedMsg::Sleep(d) => std::thread::sleep(d),
            PokedMsg::Filler => {}
            PokedMsg::Poke => {
                let _ = self.victim.send(VictimMsg::Filler);
            }
        }
    }
}

/// Regression: **an actor parked after becoming overloaded, so two actors that send to each
/// other stayed muted on each other for good** (no quiescence).
///
/// Under the old rule (an overloaded actor is never muted), `Cell::register_mutes` read the
/// actor's own word *before* registering on its receivers, and before c723deb
/// `MuteWord::try_park` parked without looking at `OVERLOADED`. If the actor (V) became
/// overloaded in between, and a peer (P) that sends to it muted itself on it and parked, V
/// then registered on P and parked too: a cycle of two parked actors. Today overloaded actors
/// are muted like any other, and the mute graph (`mute_graph.rs`) refuses the one mute that
/// would close such a cycle, so the window no longer matters; the scenario stays as a check.
///
/// The victim's first blocking receiver has no other reference left, so dropping it at the
/// end of the victim's behaviour runs user code (`Drop for Doomed`), which overloads V and has
/// P mute itself on V, while V is muting. Before c723deb this failed every time with the cycle
/// `[V, P]`.
#[test]
fn overload_between_registering_and_parking_does_not_deadlock_a_cycle() {
    let rt = Runtime::builder()
        .threads(4)
        .batch(100)
        .watermarks(4, 16)
        .build()
        .unwrap();
    let victim = rt.spawn(Victim);
    let poked = rt.spawn(Poked {
        victim: victim.clone(),
    });
    let drop_thread = Arc::new(Mutex::new(None));
    let doomed = rt.spawn(Doomed {
        victim: victim.clone(),
        poked: poked.clone(),
        drop_thread: drop_thread.clone(),
    });
    // Keep both receivers busy on other workers, so that the victim's pushes find them active
    // (not in the victim's worker's next slot) and they drain while the victim sleeps.
    doomed
        .send(DoomedMsg::Sleep(Duration::from_millis(30)))
        .unwrap();
    poked
        .send(PokedMsg::Sleep(Duration::from_millis(30)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let victim_thread = Arc::new(Mutex::new(None));
    victim
        .send(VictimMsg::Go(doomed, poked.clone(), victim_thread.clone()))
        .unwrap_or_else(|_| panic!("victim stopped"));
    let (victim_id, poked_id) = (victim.id(), poked.id());
    drop((victim, poked));
    match rt.wait_timeout(Duration::from_secs(5)) {
        Ok(report) => {
            let (ran_on, dropped_on) =
                (*victim_thread.lock().unwrap(), *drop_thread.lock().unwrap());
            assert!(
                ran_on.is_some() && ran_on == dropped_on,
                "setup failed: the receiver was not dropped by the victim's turn after its \
                 behaviour (victim ran on {ran_on:?}, receiver dropped on {dropped_on:?})"
            );
            assert!(report.quiescent);
            assert_eq!(report.metrics.mutes, report.metrics.unmutes);
        }
        Err(rt) => {
            let snapshot = rt.mute_snapshot();
            drop(rt);
            panic!(
                "no quiescence: mute cycles {:?} (victim {victim_id}, peer {poked_id}); \
                 overloaded {:?}, parked {:?}",
                mute_cycles(&snapshot),
                snapshot.overloaded,
                snapshot.muted
            );
        }
    }
}
