//! Actor overhead: how many heap bytes the runtime spends on each idle actor.
//!
//! A counting global allocator tracks live heap bytes. The program spawns `--actors` (default
//! 100,000) actors whose state is a unit struct and whose message type is `u64`, waits until
//! every one has run its `started` hook and the workers are idle again, and reports
//!
//! ```text
//! (live heap bytes after - live heap bytes before) / actors - size_of::<state>()
//! ```
//!
//! once for actors that never received a message and once, in a fresh runtime, for actors that
//! each handled one `u64`. The caller's `Vec<ActorRef>` is reserved before the first reading, so
//! the 8-byte addresses the program keeps are not counted; the registry's share (its slot vector
//! grows by doubling) is. It also prints the live allocations by size, which shows where the
//! bytes go, and the resident-set growth per actor, which adds the allocator's own per-chunk
//! overhead. After shutdown, the live bytes must return to within a few KiB of where they were
//! (crossbeam-epoch frees some buffers lazily); more fails the run as a leak. The goal is at most 128 bytes per actor; pass
//! `--max-bytes 128` to make missing it an error.
//!
//! ```text
//! cargo run --release -p rein-examples --bin actor_overhead -- [--actors 100000] [--max-bytes 128] [--threads N]
//! ```

use clap::Parser;
use rein::{Actor, ActorRef, Context};
use rein_examples::{check_eq, fail, rss_kib, RuntimeArgs};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Live allocations are bucketed by size in 8-byte steps up to this size; larger ones share the
/// last bucket.
const BUCKETS: usize = 64;
const BUCKET_BYTES: usize = 8;
/// Bytes allowed to stay live after shutdown, independent of the number of actors.
const LEAK_SLACK: i64 = 64 * 1024;

/// `System`, counting live bytes and live allocations per size.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BY_SIZE: [AtomicI64; BUCKETS] = [const { AtomicI64::new(0) }; BUCKETS];
/// Live bytes in allocations that fall in the last bucket.
static LIVE_LARGE_BYTES: AtomicI64 = AtomicI64::new(0);

fn bucket(size: usize) -> usize {
    (size.div_ceil(BUCKET_BYTES)).min(BUCKETS - 1)
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are plain atomics and
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Relaxed);
            let b = bucket(layout.size());
            LIVE_BY_SIZE[b].fetch_add(1, Relaxed);
            if b == BUCKETS - 1 {
                LIVE_LARGE_BYTES.fetch_add(layout.size() as i64, Relaxed);
            }
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Relaxed);
        let b = bucket(layout.size());
        LIVE_BY_SIZE[b].fetch_sub(1, Relaxed);
        if b == BUCKETS - 1 {
            LIVE_LARGE_BYTES.fetch_sub(layout.size() as i64, Relaxed);
        }
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Parser)]
#[command(about = "Heap bytes the runtime spends per idle actor")]
struct Cli {
    /// Actors to spawn in each scenario.
    #[arg(long, default_value_t = 100_000)]
    actors: u64,
    /// Fail when either scenario costs more than this many bytes per actor.
    #[arg(long)]
    max_bytes: Option<f64>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

static STARTED: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// An actor with no state at all.
struct Unit;

impl Actor for Unit {
    type Msg = u64;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        STARTED.fetch_add(1, Relaxed);
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, _n: u64) {
        HANDLED.fetch_add(1, Relaxed);
    }
}

struct Snapshot {
    bytes: i64,
    by_size: [i64; BUCKETS],
    large_bytes: i64,
    rss_kib: Option<u64>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        bytes: LIVE_BYTES.load(Relaxed),
        by_size: std::array::from_fn(|i| LIVE_BY_SIZE[i].load(Relaxed)),
        large_bytes: LIVE_LARGE_BYTES.load(Relaxed),
        rss_kib: rss_kib(),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            fail(format_args!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs one scenario and returns the bytes per actor.
fn measure(cli: &Cli, messages: bool) -> f64 {
    let n = cli.actors;
    STARTED.store(0, Relaxed);
    HANDLED.store(0, Relaxed);
    let outside = LIVE_BYTES.load(Relaxed);
    let rt = cli.runtime.build();
    let mut refs: Vec<ActorRef<Unit>> = Vec::with_capacity(n as usize);
    // Let the workers start and go to sleep before the first reading.
    wait_for("the workers to settle", || {
        rt.metrics().workers.iter().all(|w| w.parks > 0)
    });
    let before = snapshot();

    for _ in 0..n {
        let actor = rt.spawn(Unit);
        if messages {
            actor.send(7).expect("fresh actor accepts messages");
        }
        refs.push(actor);
    }
    wait_for("every actor to start", || STARTED.load(Relaxed) == n);
    if messages {
        wait_for("every message to be handled", || HANDLED.load(Relaxed) == n);
    }
    // Every worker publishes its activation count before it sleeps: zero means idle again.
    wait_for("the workers to go idle", || {
        rt.metrics().scheduled_actors == 0
    });
    std::thread::sleep(Duration::from_millis(50));
    let after = snapshot();
    let metrics = rt.metrics();
    check_eq("live actors", metrics.live_actors, n);

    let per_actor = (after.bytes - before.bytes) as f64 / n as f64 - size_of::<Unit>() as f64;
    let label = if messages {
        "after one u64 message each"
    } else {
        "idle, never messaged"
    };
    println!("{n} actors, {label}:");
    println!(
        "  heap: {per_actor:.1} bytes/actor (state {} bytes, address held by the caller {} bytes, not counted)",
        size_of::<Unit>(),
        size_of::<ActorRef<Unit>>()
    );
    print!("  new live allocations per actor, by size:");
    for (i, (a, b)) in after.by_size.iter().zip(&before.by_size).enumerate() {
        let per = (a - b) as f64 / n as f64;
        if i < BUCKETS - 1 && per.abs() >= 0.01 {
            print!(
                " {per:.2} x {}..={} B;",
                i * BUCKET_BYTES - 7,
                i * BUCKET_BYTES
            );
        }
    }
    println!(
        " {:.1} bytes in allocations over {} B (shared vectors)",
        (after.large_bytes - before.large_bytes) as f64 / n as f64,
        (BUCKETS - 2) * BUCKET_BYTES
    );
    // Only the first scenario's figure means much: the second reuses memory the first freed.
    if let (Some(a), Some(b), false) = (after.rss_kib, before.rss_kib, messages) {
        println!(
            "  resident set: {:.1} bytes/actor (includes the allocator's per-chunk overhead)",
            (a as f64 - b as f64) * 1024.0 / n as f64
        );
    }

    let report = rt.shutdown();
    check_eq("stopped at shutdown", report.undelivered, 0);
    drop(refs);
    let leaked = LIVE_BYTES.load(Relaxed) - outside;
    println!("  after shutdown: {leaked} bytes still live");
    // A few KiB stay behind whatever the number of actors: crossbeam-epoch frees retired deque
    // buffers and the workers' epoch records lazily. A per-actor leak grows with `--actors`.
    if leaked > LEAK_SLACK {
        fail(format_args!(
            "{leaked} bytes still live after shutdown (over {LEAK_SLACK}): the runtime leaks \
             about {:.1} bytes per actor",
            leaked as f64 / n as f64
        ));
    }
    per_actor
}

fn main() {
    let cli = Cli::parse();
    if cli.actors == 0 {
        fail("--actors must be at least 1");
    }
    let idle = measure(&cli, false);
    let messaged = measure(&cli, true);
    let worst = idle.max(messaged);
    match cli.max_bytes {
        Some(max) if worst > max => fail(format_args!(
            "overhead {worst:.1} bytes/actor exceeds --max-bytes {max}"
        )),
        Some(max) => println!("ok: at most {worst:.1} bytes/actor (limit {max})"),
        None => println!("ok: at most {worst:.1} bytes/actor"),
    }
}
