//! Skynet: a tree of actors, 10 children per node, down to 1,000,000 leaves.
//!
//! Shows spawn cost and how memory follows the live set. Each inner node spawns 10 children in
//! its `started` hook; each leaf replies its own number; each parent sums its children's answers
//! and replies up. Replies travel as ordinary messages through [`ReplyTo::to`], so no behaviour
//! ever blocks; the root answers the main thread through [`ActorRef::ask`](rein::ActorRef::ask). A node that has
//! replied stops (`ctx.stop()`), and since only its children's reply handles point at it, its
//! memory is freed as soon as its last turn ends (the program samples the live actor count and
//! prints its peak next to the peak RSS). The root's answer must be
//! `leaves * (leaves - 1) / 2` (499999500000 for the default) and every actor must have been
//! spawned and stopped; the program exits non-zero otherwise.
//!
//! ```text
//! cargo run --release -p rein-examples --bin skynet -- [--leaves 1000000] [--threads N]
//! ```

use clap::Parser;
use rein::{Actor, Context, ReplyTo};
use rein_examples::{
    check_clean, check_eq, fail, report, report_peak_rss, report_runtime, RuntimeArgs,
};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FANOUT: u64 = 10;

#[derive(Debug, Parser)]
#[command(about = "Skynet: sum the numbers of 10^k leaf actors through a 10-ary tree")]
struct Cli {
    /// Leaf actors: a power of 10.
    #[arg(long, default_value_t = 1_000_000)]
    leaves: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

enum Msg {
    /// Start the root, answering `ReplyTo` with the tree's sum.
    Start(ReplyTo<u64>),
    /// A child's sum.
    Sum(u64),
}

impl From<u64> for Msg {
    fn from(sum: u64) -> Self {
        Msg::Sum(sum)
    }
}

struct Node {
    /// The first leaf number under this node.
    num: u64,
    /// Leaves under this node.
    size: u64,
    /// Where the sum goes. Set at spawn for every node but the root, which gets it from `Start`.
    reply: Option<ReplyTo<u64>>,
    sum: u64,
    pending: u64,
}

impl Node {
    fn new(num: u64, size: u64, reply: Option<ReplyTo<u64>>) -> Self {
        Node {
            num,
            size,
            reply,
            sum: 0,
            pending: 0,
        }
    }

    fn begin(&mut self, ctx: &mut Context<Self>) {
        if self.size == 1 {
            self.finish(ctx, self.num);
            return;
        }
        let child_size = self.size / FANOUT;
        self.pending = FANOUT;
        for i in 0..FANOUT {
            let reply = ReplyTo::to(ctx.myself().recipient());
            // The child's address is not needed: it answers through `reply`, and dropping the
            // address here lets the child be freed as soon as it has answered.
            ctx.spawn(Node::new(
                self.num + i * child_size,
                child_size,
                Some(reply),
            ));
        }
    }

    fn finish(&mut self, ctx: &mut Context<Self>, sum: u64) {
        if let Some(reply) = self.reply.take() {
            if reply.send(sum).is_err() {
                panic!("the parent of node {} stopped early", self.num);
            }
        }
        ctx.stop();
    }
}

impl Actor for Node {
    type Msg = Msg;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.reply.is_some() {
            self.begin(ctx);
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) {
        match msg {
            Msg::Start(reply) => {
                self.reply = Some(reply);
                self.begin(ctx);
            }
            Msg::Sum(sum) => {
                self.sum += sum;
                self.pending -= 1;
                if self.pending == 0 {
                    self.finish(ctx, self.sum);
                }
            }
        }
    }
}

/// Whether `n` is a power of 10, and how many tree levels below the root that gives.
fn levels(n: u64) -> Option<u32> {
    let mut size = 1u64;
    let mut levels = 0;
    while size < n {
        size = size.checked_mul(FANOUT)?;
        levels += 1;
    }
    (size == n).then_some(levels)
}

fn main() {
    let cli = Cli::parse();
    let Some(depth) = levels(cli.leaves) else {
        fail(format_args!(
            "--leaves must be a power of 10, got {}",
            cli.leaves
        ));
    };
    let actors: u64 = (0..=depth).map(|l| FANOUT.pow(l)).sum();
    let expected = cli.leaves * (cli.leaves - 1) / 2;

    let rt = cli.runtime.build();
    // Sample the live actor count every millisecond to see how much of the tree exists at once.
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = {
        let handle = rt.handle();
        let stop = stop_sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Relaxed) {
                peak = peak.max(handle.metrics().live_actors);
                std::thread::sleep(Duration::from_millis(1));
            }
            peak
        })
    };
    let start = Instant::now();
    let root = rt.spawn(Node::new(0, cli.leaves, None));
    let answer = root.ask(Msg::Start, Duration::from_secs(300));
    let elapsed = start.elapsed();
    stop_sampling.store(true, Relaxed);
    let peak_live = sampler.join().expect("sampler thread");
    drop(root);
    let run = rt.wait();

    let sum = answer.unwrap_or_else(|e| fail(format_args!("no answer from the root: {e}")));
    println!(
        "skynet: {actors} actors ({} leaves), sum {sum}, {:.3} s",
        cli.leaves,
        elapsed.as_secs_f64()
    );
    report("actors", actors, elapsed);
    report_peak_rss();
    println!("peak live actors (sampled every ms): {peak_live}");
    report_runtime(&run);
    check_clean(&run);
    check_eq("sum", sum, expected);
    check_eq("actors spawned", run.metrics.spawned, actors);
    check_eq("actors still alive", run.metrics.live_actors, 0);
    println!("ok: sum {sum} == {expected}");
}
