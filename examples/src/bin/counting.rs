//! Counting: one producer actor sends N numbers to one counter actor.
//!
//! Shows raw one-way throughput between two actors, and rein's idiom for a long-running
//! producer: rather than loop N times inside one behaviour (which would hold a worker for the
//! whole run and, with backpressure, be muted only once it returns), the producer sends a chunk
//! (`--chunk`, default 1000) and then sends itself `Continue`, so every chunk is one short turn
//! and the scheduler can mute the producer whenever the counter falls behind. The counter checks
//! that the numbers arrive complete and in order (0, 1, 2, ...); the program exits non-zero
//! otherwise.
//!
//! ```text
//! cargo run --release -p rein-examples --bin counting -- [--messages 10000000] [--chunk 1000] [--threads N]
//! ```

use clap::Parser;
use rein::{Actor, ActorRef, Context};
use rein_examples::{check_clean, check_eq, fail, report, report_runtime, RuntimeArgs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "One producer sends N messages to a counter")]
struct Cli {
    /// Messages the producer sends.
    #[arg(long, default_value_t = 10_000_000)]
    messages: u64,
    /// Messages sent per producer turn before it sends itself `Continue`.
    #[arg(long, default_value_t = 1000)]
    chunk: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// The producer's only message: send the next chunk.
struct Continue;

struct Producer {
    counter: ActorRef<Counter>,
    next: u64,
    total: u64,
    chunk: u64,
}

impl Actor for Producer {
    type Msg = Continue;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx.myself().send(Continue);
    }

    fn handle(&mut self, ctx: &mut Context<Self>, _: Continue) {
        let end = self.total.min(self.next + self.chunk);
        for n in self.next..end {
            if self.counter.send(n).is_err() {
                panic!("the counter stopped early");
            }
        }
        self.next = end;
        if self.next < self.total {
            let _ = ctx.myself().send(Continue);
        }
    }
}

struct Counter {
    count: u64,
    expected: u64,
    /// When the last expected number arrived.
    finish: Arc<Mutex<Option<Instant>>>,
    /// The count when the counter goes away, to catch extra messages.
    final_count: Arc<AtomicU64>,
}

impl Actor for Counter {
    type Msg = u64;

    fn handle(&mut self, _ctx: &mut Context<Self>, n: u64) {
        if n != self.count {
            // A panic stops only this actor; main sees it in the report and the count.
            panic!("out of order: got {n}, expected {}", self.count);
        }
        self.count += 1;
        if self.count == self.expected {
            *self.finish.lock().unwrap() = Some(Instant::now());
        }
    }
}

/// Once the producer is done nothing can reach the counter, so the runtime drops it without a
/// `stopped` hook (see [`Actor::stopped`]); `Drop` runs either way.
impl Drop for Counter {
    fn drop(&mut self) {
        self.final_count.store(self.count, Relaxed);
    }
}

fn main() {
    let cli = Cli::parse();
    if cli.chunk == 0 {
        fail("--chunk must be at least 1");
    }
    let rt = cli.runtime.build();
    let finish = Arc::new(Mutex::new(None));
    let final_count = Arc::new(AtomicU64::new(u64::MAX));
    let counter = rt.spawn(Counter {
        count: 0,
        expected: cli.messages,
        finish: finish.clone(),
        final_count: final_count.clone(),
    });
    let start = Instant::now();
    rt.spawn(Producer {
        counter,
        next: 0,
        total: cli.messages,
        chunk: cli.chunk,
    });
    let run = rt.wait();
    let end = finish.lock().unwrap().unwrap_or_else(|| {
        if cli.messages == 0 {
            start
        } else {
            fail("the counter never saw the last message")
        }
    });

    report("msgs", cli.messages, end - start);
    report_runtime(&run);
    check_clean(&run);
    check_eq("counted", final_count.load(Relaxed), cli.messages);
    let chunks = cli.messages.div_ceil(cli.chunk).max(1);
    check_eq(
        "messages handled",
        run.metrics.messages(),
        cli.messages + chunks,
    );
    println!(
        "ok: {} messages counted in order ({} producer turns, {} mutes)",
        cli.messages, chunks, run.metrics.mutes
    );
}
