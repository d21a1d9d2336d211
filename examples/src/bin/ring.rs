//! Thread ring: 503 actors in a circle pass one token around for N hops.
//!
//! Shows the cost of a single message hand-off with no parallelism to exploit: only one actor
//! ever has work, so the figure is the latency of send + schedule + run on one core (the worker's
//! next slot keeps the token on the core that sent it). The node that receives the token when
//! its count reaches zero must be node `hops % actors`, and the nodes together must have handled
//! `hops + 1` tokens (the injection plus every hop); the program exits non-zero otherwise.
//!
//! ```text
//! cargo run --release -p rein-examples --bin ring -- [--hops 10000000] [--actors 503] [--threads N]
//! ```

use clap::Parser;
use rein::{Actor, ActorRef, Context};
use rein_examples::{check_clean, check_eq, fail, report, report_runtime, RuntimeArgs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Thread ring: a token passed around a ring of actors")]
struct Cli {
    /// Hops the token makes.
    #[arg(long, default_value_t = 10_000_000)]
    hops: u64,
    /// Actors in the ring.
    #[arg(long, default_value_t = 503)]
    actors: usize,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

enum Msg {
    /// Setup: the next node in the ring.
    Link(ActorRef<Node>),
    /// The token, carrying the hops still to make.
    Token(u64),
}

struct Node {
    index: usize,
    next: Option<ActorRef<Node>>,
    /// Tokens this node handled.
    handled: u64,
    /// Sum of `handled` over the ring, filled in as each node stops at shutdown.
    total: Arc<AtomicU64>,
    /// Who got the token at zero, and when.
    finish: Arc<Mutex<Option<(usize, Instant)>>>,
}

impl Actor for Node {
    type Msg = Msg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) {
        match msg {
            Msg::Link(next) => self.next = Some(next),
            Msg::Token(left) => {
                self.handled += 1;
                if left == 0 {
                    *self.finish.lock().unwrap() = Some((self.index, Instant::now()));
                    return;
                }
                let next = self.next.as_ref().expect("ring linked before the token");
                if next.send(Msg::Token(left - 1)).is_err() {
                    panic!("node {} could not pass the token", self.index);
                }
            }
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.total.fetch_add(self.handled, Relaxed);
    }
}

fn main() {
    let cli = Cli::parse();
    if cli.actors == 0 {
        fail("--actors must be at least 1");
    }
    let rt = cli.runtime.build();
    let total = Arc::new(AtomicU64::new(0));
    let finish = Arc::new(Mutex::new(None));
    let nodes: Vec<ActorRef<Node>> = (0..cli.actors)
        .map(|index| {
            rt.spawn(Node {
                index,
                next: None,
                handled: 0,
                total: total.clone(),
                finish: finish.clone(),
            })
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        let next = nodes[(i + 1) % nodes.len()].clone();
        node.send(Msg::Link(next))
            .expect("fresh node accepts messages");
    }

    let start = Instant::now();
    nodes[0]
        .send(Msg::Token(cli.hops))
        .expect("fresh node accepts messages");
    drop(nodes);
    let run = rt.wait();

    let Some((last, end)) = *finish.lock().unwrap() else {
        fail("the token never reached zero");
    };
    report("hops", cli.hops, end - start);
    report_runtime(&run);
    check_clean(&run);
    check_eq(
        "node holding the token at zero",
        last,
        (cli.hops % cli.actors as u64) as usize,
    );
    check_eq(
        "tokens handled by the ring",
        total.load(Relaxed),
        cli.hops + 1,
    );
    check_eq(
        "messages handled",
        run.metrics.messages(),
        cli.hops + 1 + cli.actors as u64,
    );
    println!("ok: {} hops around {} actors", cli.hops, cli.actors);
}
