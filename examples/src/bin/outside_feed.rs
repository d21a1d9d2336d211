//! `outside_feed`: a thread outside the runtime feeds an actor, the way an application's main
//! thread, a driver loop or another runtime's callback would.
//!
//! By default it sends with `ActorRef::send_blocking`, which waits while the actor is
//! overloaded (woken by its recovery, as a muted actor is resumed), so the backlog stays within
//! the high watermark however slow the actor. `--plain-send` uses `ActorRef::send` instead:
//! nothing holds a plain thread back, so with a slow actor (`--work-ns`) the backlog, and
//! memory, grow with everything the thread sends faster than the actor handles it.
//!
//! ```text
//! cargo run --release -p rein-examples --bin outside_feed -- --messages 2000000
//! cargo run --release -p rein-examples --bin outside_feed -- --work-ns 500              # bounded
//! cargo run --release -p rein-examples --bin outside_feed -- --work-ns 500 --plain-send # not
//! ```

use clap::Parser;
use rein::{Actor, Context};
use rein_examples::{check_eq, fail, peak_rss_kib, report, RuntimeArgs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    about = "A thread outside the runtime feeds an actor: send_blocking keeps the backlog \
             bounded, a plain send does not"
)]
struct Args {
    /// Messages sent from the outside thread.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Busy work per message in the actor, in nanoseconds (0: as fast as it goes).
    #[arg(long, default_value_t = 0)]
    work_ns: u64,
    /// Send with a plain `send`, which nothing holds back (to see the backlog grow).
    #[arg(long)]
    plain_send: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

struct Counter {
    seen: Arc<AtomicU64>,
    peak: Arc<AtomicUsize>,
    work: Duration,
}

impl Actor for Counter {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, _: u64) {
        if !self.work.is_zero() {
            let started = Instant::now();
            while started.elapsed() < self.work {
                std::hint::spin_loop();
            }
        }
        self.peak.fetch_max(ctx.backlog(), Relaxed);
        self.seen.store(self.seen.load(Relaxed) + 1, Relaxed);
    }
}

fn main() {
    let args = Args::parse();
    let rt = args.runtime.build();
    let seen = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let counter = rt.spawn(Counter {
        seen: seen.clone(),
        peak: peak.clone(),
        work: Duration::from_nanos(args.work_ns),
    });
    let started = Instant::now();
    for i in 0..args.messages {
        let sent = if args.plain_send {
            counter.send(i)
        } else {
            counter.send_blocking(i)
        };
        if let Err(e) = sent {
            fail(format_args!("message {i}: {e}"));
        }
    }
    let report_ = rt.wait();
    report("msgs", args.messages, started.elapsed());
    check_eq("messages counted", seen.load(Relaxed), args.messages);
    println!(
        "sent with: {}",
        if args.plain_send {
            "send (never waits)"
        } else {
            "send_blocking (waits while the actor is overloaded)"
        }
    );
    println!(
        "peak backlog: {} (high watermark {}), peak RSS: {:.1} MiB",
        peak.load(Relaxed),
        rein::DEFAULT_HIGH_WATERMARK,
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    println!(
        "times the actor was overloaded: {}; worker sleeps (a worker found nothing to do and \
         parked; the next send had to wake it): {}",
        report_.metrics.overloads,
        report_.metrics.workers.iter().map(|w| w.parks).sum::<u64>()
    );
    println!("ok: {} messages from outside", args.messages);
}
