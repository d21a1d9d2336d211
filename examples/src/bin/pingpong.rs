//! Ping-pong: two actors bounce a ball N times (N round trips, 2N messages).
//!
//! Shows request/response latency between two actors. Each message wakes an idle actor, so every
//! hop goes through the scheduler's wake-up path; the worker's next slot keeps the pair on one
//! core instead of waking another worker for every message. Both sides count the ball; the
//! program exits non-zero unless each saw exactly N.
//!
//! ```text
//! cargo run --release -p rein-examples --bin pingpong -- [--round-trips 2000000] [--threads N]
//! ```

use clap::Parser;
use rein::{Actor, ActorRef, Context};
use rein_examples::{check_clean, check_eq, fail, report, report_runtime, RuntimeArgs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Two actors play ping-pong")]
struct Cli {
    /// Round trips (ping + pong).
    #[arg(long, default_value_t = 2_000_000)]
    round_trips: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

struct Pinger {
    ponger: ActorRef<Ponger>,
    round_trips: u64,
    finish: Arc<Mutex<Option<Instant>>>,
}

impl Actor for Pinger {
    /// The ball, carrying the number of round trips completed.
    type Msg = u64;

    fn handle(&mut self, _ctx: &mut Context<Self>, done: u64) {
        if done == self.round_trips {
            *self.finish.lock().unwrap() = Some(Instant::now());
            return;
        }
        if self.ponger.send(PongMsg::Ball(done)).is_err() {
            panic!("the ponger stopped early");
        }
    }
}

enum PongMsg {
    /// Setup: where to send the ball back.
    Peer(ActorRef<Pinger>),
    Ball(u64),
}

struct Ponger {
    pinger: Option<ActorRef<Pinger>>,
    balls: u64,
    /// `balls` at shutdown.
    seen: Arc<AtomicU64>,
}

impl Actor for Ponger {
    type Msg = PongMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: PongMsg) {
        match msg {
            PongMsg::Peer(pinger) => self.pinger = Some(pinger),
            PongMsg::Ball(n) => {
                self.balls += 1;
                let pinger = self
                    .pinger
                    .as_ref()
                    .expect("peer set before the first ball");
                if pinger.send(n + 1).is_err() {
                    panic!("the pinger stopped early");
                }
            }
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.seen.store(self.balls, Relaxed);
    }
}

fn main() {
    let cli = Cli::parse();
    let rt = cli.runtime.build();
    let finish = Arc::new(Mutex::new(None));
    let seen = Arc::new(AtomicU64::new(u64::MAX));
    let ponger = rt.spawn(Ponger {
        pinger: None,
        balls: 0,
        seen: seen.clone(),
    });
    let pinger = rt.spawn(Pinger {
        ponger: ponger.clone(),
        round_trips: cli.round_trips,
        finish: finish.clone(),
    });
    ponger
        .send(PongMsg::Peer(pinger.clone()))
        .expect("fresh actor accepts messages");
    let start = Instant::now();
    // Serve: "0 round trips done". The pinger answers every ball n with n + 1.
    pinger.send(0).expect("fresh actor accepts messages");
    drop((pinger, ponger));
    let run = rt.wait();

    let Some(end) = *finish.lock().unwrap() else {
        fail("the last round trip never came back");
    };
    report("round trips", cli.round_trips, end - start);
    let per_trip_ns = (end - start).as_nanos() as f64 / cli.round_trips.max(1) as f64;
    println!("latency: {per_trip_ns:.0} ns per round trip");
    report_runtime(&run);
    check_clean(&run);
    check_eq(
        "balls seen by the ponger",
        seen.load(Relaxed),
        cli.round_trips,
    );
    check_eq(
        "messages handled",
        run.metrics.messages(),
        2 * cli.round_trips + 2,
    );
    println!("ok: {} round trips", cli.round_trips);
}
