//! `fanin`: watch backpressure happen.
//!
//! P producers (default 4) send 64-byte messages as fast as they can to one consumer that does
//! about 1 µs of calibrated busy work per message (a spin loop, not a sleep). Every second the
//! program prints the consumer's throughput, its backlog, how many producers are muted right now
//! and the process RSS; at the end, a summary.
//!
//! With backpressure (the default) the scheduler mutes the producers whenever the consumer's
//! backlog reaches the high watermark, so the backlog and memory stay flat while the consumer
//! runs at full speed. With `--no-backpressure` nothing holds the producers back: the backlog
//! and RSS grow with every message they get ahead.
//!
//! ```text
//! cargo run --release -p rein-examples --bin fanin
//! cargo run --release -p rein-examples --bin fanin -- --no-backpressure
//! ```

use clap::Parser;
use rein::{Actor, ActorRef, Context};
use rein_examples::{
    build, check_eq, fail, human, peak_rss_kib, rss_kib, BackpressureArgs, RuntimeArgs,
};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "P producers flood one slow consumer; watch muting keep memory flat")]
struct Args {
    /// Producers.
    #[arg(long, default_value_t = 4)]
    producers: u64,
    /// Messages per producer.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Messages a producer sends per behaviour before yielding.
    #[arg(long, default_value_t = 100)]
    chunk: u64,
    /// Busy work per message, in nanoseconds.
    #[arg(long, default_value_t = 1_000)]
    work_ns: u64,
    /// Print a line every this many milliseconds.
    #[arg(long, default_value_t = 1_000)]
    interval_ms: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    backpressure: BackpressureArgs,
}

/// A 64-byte message; the checksum field lets the consumer verify what it got.
struct Payload {
    bytes: [u8; 56],
    seq: u64,
}

/// Spins for about `iterations` loop rounds; calibrated so that a given count takes ~1 µs.
fn spin(iterations: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

/// Loop rounds per `work_ns` nanoseconds on this machine.
fn calibrate(work_ns: u64) -> u64 {
    let rounds = 5_000_000;
    let started = Instant::now();
    spin(rounds);
    let ns_per_round = started.elapsed().as_nanos() as f64 / rounds as f64;
    ((work_ns as f64 / ns_per_round).round() as u64).max(1)
}

struct Consumer {
    spin_rounds: u64,
    handled: Arc<AtomicU64>,
    max_backlog: Arc<AtomicUsize>,
    local_max: usize,
    checksum: u64,
}

impl Actor for Consumer {
    type Msg = Payload;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Payload) {
        spin(self.spin_rounds);
        self.checksum = self
            .checksum
            .wrapping_add(msg.seq ^ u64::from(msg.bytes[7]));
        let n = self.handled.load(Relaxed) + 1;
        self.handled.store(n, Relaxed);
        self.local_max = self.local_max.max(ctx.backlog());
        if n % 256 == 0 {
            self.max_backlog.store(self.local_max, Relaxed);
        }
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.max_backlog.store(self.local_max, Relaxed);
    }
}

struct Producer {
    to: ActorRef<Consumer>,
    next: u64,
    end: u64,
    chunk: u64,
}

impl Actor for Producer {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let stop = (self.next + self.chunk).min(self.end);
        while self.next < stop {
            let payload = Payload {
                bytes: [self.next as u8; 56],
                seq: self.next,
            };
            if self.to.send(payload).is_err() {
                fail("the consumer stopped early");
            }
            self.next += 1;
        }
        if self.next < self.end {
            let _ = ctx.myself().send(());
        }
    }
}

fn main() {
    let args = Args::parse();
    if args.producers == 0 || args.chunk == 0 {
        fail("--producers and --chunk must be at least 1");
    }
    let total = args.producers * args.messages;
    let spin_rounds = calibrate(args.work_ns);
    let backpressure = !args.backpressure.no_backpressure;
    println!(
        "fanin: {} producers x {} messages of 64 bytes -> 1 consumer doing ~{} ns of work each; backpressure {}",
        args.producers,
        args.messages,
        args.work_ns,
        if backpressure { "ON" } else { "OFF" }
    );

    // The consumer alone: the same work with no messaging at all, as the reference rate.
    let alone_n = (total / 20).max(10_000);
    let started = Instant::now();
    for _ in 0..alone_n {
        spin(spin_rounds);
    }
    let alone_rate = alone_n as f64 / started.elapsed().as_secs_f64();

    let rt = build(args.backpressure.apply(args.runtime.builder()));
    let handled = Arc::new(AtomicU64::new(0));
    let max_backlog = Arc::new(AtomicUsize::new(0));
    let consumer = rt.spawn(Consumer {
        spin_rounds,
        handled: handled.clone(),
        max_backlog: max_backlog.clone(),
        local_max: 0,
        checksum: 0,
    });
    let started = Instant::now();
    for p in 0..args.producers {
        let producer = rt.spawn(Producer {
            to: consumer.clone(),
            next: p * args.messages,
            end: (p + 1) * args.messages,
            chunk: args.chunk,
        });
        producer.send(()).expect("fresh producer");
    }

    let handle = rt.handle();
    let monitor = {
        let handled = handled.clone();
        let consumer = consumer.clone();
        let interval = Duration::from_millis(args.interval_ms.max(10));
        std::thread::spawn(move || {
            let mut last = (Instant::now(), 0u64);
            let mut peak_sampled_backlog = 0usize;
            println!(
                "{:>7}  {:>12}  {:>10}  {:>6}  {:>10}",
                "time", "consumer/s", "backlog", "muted", "rss"
            );
            while handle.is_running() {
                std::thread::sleep(interval);
                let now = Instant::now();
                let n = handled.load(Relaxed);
                let rate = (n - last.1) as f64 / (now - last.0).as_secs_f64();
                last = (now, n);
                let backlog = consumer.backlog();
                peak_sampled_backlog = peak_sampled_backlog.max(backlog);
                let metrics = handle.metrics();
                println!(
                    "{:>6.1}s  {:>12}  {:>10}  {:>6}  {:>7} MiB",
                    started.elapsed().as_secs_f64(),
                    human(rate),
                    backlog,
                    metrics.muted_actors,
                    rss_kib().unwrap_or(0) / 1024
                );
            }
            peak_sampled_backlog
        })
    };

    let report = rt.wait();
    let elapsed = started.elapsed();
    let _ = monitor.join();
    check_eq(
        "messages handled by the consumer",
        handled.load(Relaxed),
        total,
    );
    check_eq("messages dropped", report.metrics.dropped_messages, 0);
    let rate = total as f64 / elapsed.as_secs_f64();
    println!("--- summary ---");
    println!("time:                 {:.2} s", elapsed.as_secs_f64());
    println!("consumer throughput:  {} msgs/s", human(rate));
    println!("consumer alone:       {} msgs/s", human(alone_rate));
    println!(
        "ratio to alone:       {:.2} (throughput / consumer alone, the same work with no \
         messaging: 1.00 means the runtime costs the consumer nothing)",
        rate / alone_rate
    );
    println!("peak consumer backlog: {}", max_backlog.load(Relaxed));
    println!(
        "peak RSS:             {} MiB",
        peak_rss_kib().unwrap_or(0) / 1024
    );
    println!(
        "mutes / unmutes:      {} / {}",
        report.metrics.mutes, report.metrics.unmutes
    );
    if backpressure {
        // The documented bound (rein crate docs): high + 2·P·K.
        let bound = rein::DEFAULT_HIGH_WATERMARK + 2 * (args.producers * args.chunk) as usize;
        let peak = max_backlog.load(Relaxed);
        if peak > bound {
            fail(format_args!(
                "peak backlog {peak} above the documented bound {bound}"
            ));
        }
        println!("ok: {total} messages, peak backlog {peak} within the bound {bound}");
    } else {
        println!("ok: {total} messages (no bound without backpressure)");
    }
}
