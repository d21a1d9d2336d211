//! `outside_feed`: one thread outside the runtime feeds a counter actor; measures the cost of
//! waking an idle actor (and possibly a sleeping worker) from outside.
//!
//! ```text
//! cargo run --release -p rein-examples --bin outside_feed -- --messages 2000000
//! ```

use clap::Parser;
use rein::{Actor, Context};
use rein_examples::{check_eq, report, RuntimeArgs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    /// Messages sent from the outside thread.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

struct Counter {
    seen: Arc<AtomicU64>,
}

impl Actor for Counter {
    type Msg = u64;
    fn handle(&mut self, _: &mut Context<Self>, _: u64) {
        self.seen.store(self.seen.load(Relaxed) + 1, Relaxed);
    }
}

fn main() {
    let args = Args::parse();
    let rt = args.runtime.build();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = rt.spawn(Counter { seen: seen.clone() });
    let started = Instant::now();
    for i in 0..args.messages {
        counter.send(i).expect("counter alive");
    }
    let report_ = rt.wait();
    report("msgs", args.messages, started.elapsed());
    check_eq("messages counted", seen.load(Relaxed), args.messages);
    println!(
        "parks: {}",
        report_.metrics.workers.iter().map(|w| w.parks).sum::<u64>()
    );
    println!("ok: {} messages from outside", args.messages);
}
