//! Work parked on a worker whose behaviour runs long must not wait for it while another worker
//! idles: an actor in that worker's next slot, or lingering on it, is taken over by the others
//! within about a millisecond (see the scheduler's "Work stuck behind a long behaviour").
//!
//! These assert behaviour, not speed: the margins are two orders of magnitude above the expected
//! latency, and far below the length of the behaviour that used to hold the work up.

mod common;

use common::{runtime, wait, LIMIT};
use rein::{Actor, ActorRef, Context, ReplyTo};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Records when each message arrives.
struct Clock {
    at: mpsc::Sender<Instant>,
}

impl Actor for Clock {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {
        self.at.send(Instant::now()).unwrap();
    }
}

/// Wakes `clock` from inside its behaviour (so the clock lands in this worker's next slot), then
/// sleeps.
struct Sleeper {
    clock: ActorRef<Clock>,
    sleep: Duration,
    sent: mpsc::Sender<Instant>,
}

impl Actor for Sleeper {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {
        self.sent.send(Instant::now()).unwrap();
        self.clock.send(()).unwrap();
        std::thread::sleep(self.sleep);
    }
}

#[test]
fn an_actor_woken_by_a_sleeping_behaviour_runs_elsewhere_at_once() {
    let sleep = Duration::from_secs(2);
    let margin = Duration::from_millis(500);
    let rt = runtime(2);
    let (at, arrivals) = mpsc::channel();
    let (sent, sends) = mpsc::channel();
    let clock = rt.spawn(Clock { at });
    let sleeper = rt.spawn(Sleeper { clock, sleep, sent });
    sleeper.send(()).unwrap();
    let sent = sends.recv_timeout(LIMIT).expect("the sleeper ran");
    let arrived = arrivals.recv_timeout(LIMIT).expect("the clock ran");
    let waited = arrived.saturating_duration_since(sent);
    eprintln!("the woken actor waited {waited:?}");
    assert!(
        waited < margin,
        "the woken actor waited {waited:?} for a behaviour that sleeps {sleep:?}"
    );
    let report = wait(rt);
    assert!(report.quiescent);
    assert!(
        report.metrics.handoffs >= 1,
        "taken from the sleeper's next slot"
    );
}

/// Answers at once.
struct Echo;

impl Actor for Echo {
    type Msg = ReplyTo<()>;
    fn handle(&mut self, _: &mut Context<Self>, reply: ReplyTo<()>) {
        let _ = reply.send(());
    }
}

/// Holds its worker for a while: sleeping, or computing.
struct Busy {
    hold: Duration,
    spin: bool,
    done: mpsc::Sender<()>,
}

impl Actor for Busy {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {
        let start = Instant::now();
        if self.spin {
            let mut x = 0u64;
            while start.elapsed() < self.hold {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        } else {
            std::thread::sleep(self.hold);
        }
        self.done.send(()).unwrap();
    }
}

/// An actor fed from outside lingers on the worker that ran it last. If that worker then picks
/// up a long behaviour, the next outside request must not wait for it while the other worker
/// idles. Each round, on a fresh runtime, answers once (so the echo lingers on a worker that is
/// still looking for work), hands the busy actor its long behaviour (often picked up by that same
/// worker), and times a second request.
fn outside_requests_do_not_wait_for_a_long_behaviour(hold: Duration, spin: bool) {
    let margin = hold / 2;
    let mut slowest = Duration::ZERO;
    for round in 0..8 {
        let rt = runtime(2);
        let echo = rt.spawn(Echo);
        let (done, dones) = mpsc::channel();
        let busy = rt.spawn(Busy { hold, spin, done });
        echo.ask(|r| r, LIMIT).expect("warm-up answer");
        busy.send(()).unwrap();
        let start = Instant::now();
        echo.ask(|r| r, LIMIT).expect("answer");
        let waited = start.elapsed();
        slowest = slowest.max(waited);
        assert!(
            waited < margin,
            "round {round}: a request waited {waited:?} behind a behaviour of {hold:?}"
        );
        dones.recv_timeout(LIMIT).expect("the busy actor finished");
        assert!(wait(rt).quiescent);
    }
    eprintln!("slowest answer: {slowest:?}");
}

#[test]
fn a_lingering_actor_does_not_wait_for_a_sleeping_behaviour() {
    outside_requests_do_not_wait_for_a_long_behaviour(Duration::from_millis(300), false);
}

#[test]
fn a_lingering_actor_does_not_wait_for_a_computing_behaviour() {
    outside_requests_do_not_wait_for_a_long_behaviour(Duration::from_millis(200), true);
}

/// Spawns a clock from inside its behaviour (a spawn goes to this worker's stealable queue; a
/// lone queued task wakes nobody), sends it a message, then sleeps.
struct Spawner {
    sleep: Duration,
    at: mpsc::Sender<Instant>,
    sent: mpsc::Sender<Instant>,
}

impl Actor for Spawner {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let clock = ctx.spawn(Clock {
            at: self.at.clone(),
        });
        self.sent.send(Instant::now()).unwrap();
        clock.send(()).unwrap();
        std::thread::sleep(self.sleep);
    }
}

#[test]
fn a_lone_queued_actor_does_not_wait_for_a_sleeping_behaviour() {
    // A task pushed to a worker's queue wakes a sleeping worker only when the queue holds two
    // or more; a lone one behind a long behaviour is the watchdog's to hand over.
    let sleep = Duration::from_secs(2);
    let margin = Duration::from_millis(500);
    let rt = runtime(2);
    let (at, arrivals) = mpsc::channel();
    let (sent, sends) = mpsc::channel();
    let spawner = rt.spawn(Spawner { sleep, at, sent });
    // Let the spawner's own `started` turn pass, so that the next push finds an empty queue.
    std::thread::sleep(Duration::from_millis(50));
    spawner.send(()).unwrap();
    let sent = sends.recv_timeout(LIMIT).expect("the spawner ran");
    let arrived = arrivals.recv_timeout(LIMIT).expect("the clock ran");
    let waited = arrived.saturating_duration_since(sent);
    eprintln!("the queued actor waited {waited:?}");
    assert!(
        waited < margin,
        "the queued actor waited {waited:?} for a behaviour that sleeps {sleep:?}"
    );
    assert!(wait(rt).quiescent);
}
