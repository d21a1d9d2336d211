//! `pipeline`: a source, `depth` forwarding stages per lane, `width` lanes, one slow sink.
//!
//! ```text
//! source ─┬─> f(0,0) ─> f(0,1) ─> … ─> f(0,depth-1) ─┐
//!         ├─> f(1,0) ─> …                            ├─> sink (busy work per message)
//!         └─> …   (width lanes, round robin)         ┘
//! ```
//!
//! The source is an actor that sends `--chunk` messages per behaviour and messages itself to go
//! on; each forwarder passes every message on; the sink does `--work-ns` of calibrated busy work
//! per message. Every stage records the largest backlog it saw, and the program checks each one
//! against rein's documented bound, `high + 2·P·K` (P senders to that mailbox, each sending at
//! most K messages per behaviour). With `--depth 0` it is plain source → sink.
//!
//! Run it with and without backpressure to see what muting does to a forwarding stage:
//!
//! ```text
//! cargo run --release -p rein-examples --bin pipeline -- --depth 1
//! cargo run --release -p rein-examples --bin pipeline -- --depth 1 --no-backpressure
//! cargo run --release -p rein-examples --bin pipeline -- --depth 1000 --messages 500000 --work-ns 0
//! ```

use clap::Parser;
use rein::{Actor, ActorRef, Context, Recipient};
use rein_examples::{
    build, check_clean, check_eq, fail, human, peak_rss_kib, report_runtime, BackpressureArgs,
    RuntimeArgs,
};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    about = "A source, forwarding stages and a slow sink: check every mailbox's peak backlog"
)]
struct Args {
    /// Forwarding stages in each lane between the source and the sink.
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Lanes side by side (the source sends round robin to their first stages).
    #[arg(long, default_value_t = 1)]
    width: usize,
    /// Messages the source sends in all.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Messages the source sends per behaviour before messaging itself to go on.
    #[arg(long, default_value_t = 100)]
    chunk: u64,
    /// Busy work per message in the sink, in nanoseconds.
    #[arg(long, default_value_t = 2_000)]
    work_ns: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    backpressure: BackpressureArgs,
}

fn spin(iterations: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

/// Loop rounds per `work_ns` nanoseconds on this machine.
fn calibrate(work_ns: u64) -> u64 {
    if work_ns == 0 {
        return 0;
    }
    let rounds = 5_000_000;
    let started = Instant::now();
    spin(rounds);
    let ns_per_round = started.elapsed().as_nanos() as f64 / rounds as f64;
    ((work_ns as f64 / ns_per_round).round() as u64).max(1)
}

/// The largest backlog a stage saw, read at each message it handles.
#[derive(Default)]
struct Peak(AtomicUsize);

impl Peak {
    fn see(&self, backlog: usize) {
        if backlog > self.0.load(Relaxed) {
            self.0.store(backlog, Relaxed);
        }
    }
}

struct Sink {
    spin_rounds: u64,
    handled: Arc<AtomicU64>,
    peak: Arc<Peak>,
}

impl Actor for Sink {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, _: u64) {
        spin(self.spin_rounds);
        self.handled.fetch_add(1, Relaxed);
        self.peak.see(ctx.backlog());
    }
}

struct Forwarder {
    next: Recipient<u64>,
    peak: Arc<Peak>,
}

impl Actor for Forwarder {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, n: u64) {
        self.peak.see(ctx.backlog());
        if self.next.send(n).is_err() {
            fail("a stage stopped early");
        }
    }
}

struct Source {
    lanes: Vec<Recipient<u64>>,
    sent: u64,
    end: u64,
    chunk: u64,
}

impl Actor for Source {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let stop = (self.sent + self.chunk).min(self.end);
        while self.sent < stop {
            let lane = &self.lanes[(self.sent % self.lanes.len() as u64) as usize];
            if lane.send(self.sent).is_err() {
                fail("a stage stopped early");
            }
            self.sent += 1;
        }
        if self.sent < self.end {
            let _ = ctx.myself().send(());
        }
    }
}

fn main() {
    let args = Args::parse();
    if args.width == 0 || args.chunk == 0 {
        fail("--width and --chunk must be at least 1");
    }
    let backpressure = !args.backpressure.no_backpressure;
    println!(
        "pipeline: source -> {} lane(s) of {} forwarder(s) -> sink (~{} ns/msg), {} messages, backpressure {}",
        args.width,
        args.depth,
        args.work_ns,
        args.messages,
        if backpressure { "ON" } else { "OFF" }
    );
    let rt = build(args.backpressure.apply(args.runtime.builder()));
    let handled = Arc::new(AtomicU64::new(0));
    let sink_peak = Arc::new(Peak::default());
    let sink: ActorRef<Sink> = rt.spawn(Sink {
        spin_rounds: calibrate(args.work_ns),
        handled: handled.clone(),
        peak: sink_peak.clone(),
    });
    // Build each lane from the sink backwards; `peaks[d]` holds depth d's stages.
    let mut peaks: Vec<Vec<Arc<Peak>>> = vec![Vec::new(); args.depth];
    let mut lanes = Vec::with_capacity(args.width);
    for _ in 0..args.width {
        let mut next: Recipient<u64> = sink.recipient();
        for d in (0..args.depth).rev() {
            let peak = Arc::new(Peak::default());
            peaks[d].push(peak.clone());
            next = rt.spawn(Forwarder { next, peak }).recipient();
        }
        lanes.push(next);
    }
    let started = Instant::now();
    rt.spawn(Source {
        lanes,
        sent: 0,
        end: args.messages,
        chunk: args.chunk,
    })
    .send(())
    .expect("fresh source");
    let report = rt.wait();
    let elapsed = started.elapsed();
    check_clean(&report);
    check_eq("messages at the sink", handled.load(Relaxed), args.messages);

    // The documented bound per mailbox: high + 2·P·K.
    let high = rein::DEFAULT_HIGH_WATERMARK;
    let first_bound = high + 2 * args.chunk as usize;
    let mut worst_ratio = 0f64;
    let mut rows = Vec::new();
    for (d, stage) in peaks.iter().enumerate() {
        let peak = stage.iter().map(|p| p.0.load(Relaxed)).max().unwrap_or(0);
        let bound = if d == 0 { first_bound } else { high + 2 };
        rows.push((format!("stage {d}"), peak, bound));
    }
    let sink_bound = if args.depth == 0 {
        first_bound
    } else {
        high + 2 * args.width
    };
    rows.push(("sink".to_string(), sink_peak.0.load(Relaxed), sink_bound));
    let shown: Vec<_> = if rows.len() > 8 {
        let mut v: Vec<_> = rows[..3].to_vec();
        v.push(("...".into(), 0, 0));
        v.extend_from_slice(&rows[rows.len() - 3..]);
        v
    } else {
        rows.clone()
    };
    println!("{:>10}  {:>12}  {:>8}", "mailbox", "peak backlog", "bound");
    for (name, peak, bound) in &shown {
        if name == "..." {
            println!("{:>10}", "...");
        } else {
            println!("{name:>10}  {peak:>12}  {bound:>8}");
        }
    }
    for (_, peak, bound) in &rows {
        worst_ratio = worst_ratio.max(*peak as f64 / *bound as f64);
    }
    let in_flight: usize = rows.iter().map(|r| r.1).sum();
    println!("time:            {:.2} s", elapsed.as_secs_f64());
    println!(
        "throughput:      {} msgs/s",
        human(args.messages as f64 / elapsed.as_secs_f64())
    );
    println!("sum of peaks:    {in_flight}");
    println!(
        "peak RSS:        {:.1} MiB",
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    report_runtime(&report);
    if backpressure {
        if worst_ratio > 1.0 {
            fail(format_args!(
                "a mailbox's peak backlog exceeded its bound ({worst_ratio:.1}x)"
            ));
        }
        println!("ok: every mailbox within its bound (worst {worst_ratio:.2} of it)");
    } else {
        println!(
            "ok: {} messages (no bound without backpressure)",
            args.messages
        );
    }
}
