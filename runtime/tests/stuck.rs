//! Work parked on a worker whose behaviour runs long must not wait for it while another worker
//! idles: an actor in that worker's next slot, lingering on it, or alone in its queue, is taken
//! over by the others within about a millisecond, and sockets it was polling are polled by
//! another (see the scheduler's "Work stuck behind a long behaviour").
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
    // Let both workers go to sleep first: a worker that has just run the clock's first turn
    // lingers on it, and could then claim the sleeper's message before the sleeper's worker
    // does (the clock would run at once, but with no hand-off for this test to see).
    std::thread::sleep(Duration::from_millis(200));
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

/// Waits (up to `patience`) until `other` has run too; counts in `met` whether it did.
struct Meeter {
    me: std::sync::Arc<std::sync::atomic::AtomicBool>,
    other: std::sync::Arc<std::sync::atomic::AtomicBool>,
    met: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    patience: Duration,
}

impl Actor for Meeter {
    type Msg = rein::Readiness;
    fn handle(&mut self, _: &mut Context<Self>, _: rein::Readiness) {
        use std::sync::atomic::Ordering::SeqCst;
        self.me.store(true, SeqCst);
        let deadline = Instant::now() + self.patience;
        while !self.other.load(SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.other.load(SeqCst) {
            self.met.fetch_add(1, SeqCst);
        }
    }
}

#[test]
fn an_actor_displaced_from_the_next_slot_between_turns_does_not_wait_for_a_long_behaviour() {
    // One readiness edge wakes two actors, between turns on the worker that polled: the second
    // takes the next slot and pushes the first to the queue, alone, which wakes nobody. The
    // slot's actor then runs long (until the other has run, or `patience`): the queued one must
    // be handed to the idle worker, not wait behind it.
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let patience = Duration::from_secs(5);
    let rt = runtime(2);
    let flags = [
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    ];
    let met = Arc::new(AtomicUsize::new(0));
    let meeter = |me: usize| Meeter {
        me: flags[me].clone(),
        other: flags[1 - me].clone(),
        met: met.clone(),
        patience,
    };
    let (a, b) = (rt.spawn(meeter(0)), rt.spawn(meeter(1)));
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let owner = move |ready| {
        let _ = a.send(ready);
        let _ = b.send(ready);
    };
    let registration = rt
        .handle()
        .io()
        .register(ours.as_raw_fd(), rein::Interest::READABLE, owner)
        .unwrap();
    // Let both workers and the watchdog go to sleep, one of the workers in `epoll_wait`.
    std::thread::sleep(Duration::from_millis(200));
    theirs.write_all(b"x").unwrap();
    let deadline = Instant::now() + LIMIT;
    while !(flags[0].load(SeqCst) && flags[1].load(SeqCst)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(registration);
    let report = wait(rt);
    assert!(report.quiescent);
    assert_eq!(
        met.load(SeqCst),
        2,
        "the actor pushed to the queue waited for the long behaviour in the next slot"
    );
}

/// Waits until `other` has run, or `patience`.
struct Long {
    other: std::sync::Arc<std::sync::atomic::AtomicBool>,
    started: mpsc::Sender<()>,
    patience: Duration,
}

impl Actor for Long {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {
        use std::sync::atomic::Ordering::SeqCst;
        let _ = self.started.send(());
        let deadline = Instant::now() + self.patience;
        while !self.other.load(SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Passes an edge on to `long`, from inside a behaviour (so `long` lands in this worker's next
/// slot and runs right after, on the worker that took the edge).
struct Relay {
    long: ActorRef<Long>,
}

impl Actor for Relay {
    type Msg = rein::Readiness;
    fn handle(&mut self, _: &mut Context<Self>, _: rein::Readiness) {
        self.long.send(()).unwrap();
    }
}

#[test]
fn sockets_are_polled_while_the_worker_that_polled_them_runs_long() {
    // The worker in `epoll_wait` takes an edge and goes on to a long turn; the other worker
    // sleeps in its futex. A second socket's edge must still reach its owner (the watchdog wakes
    // the sleeper, which takes the polling over), not wait for the long turn to end.
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let patience = Duration::from_secs(5);
    let rt = runtime(2);
    let ran = Arc::new(AtomicBool::new(false));
    let (started, long_started) = mpsc::channel();
    let long = rt.spawn(Long {
        other: ran.clone(),
        started,
        patience,
    });
    let relay = rt.spawn(Relay { long });
    let flag = ran.clone();
    let io = rt.handle().io();
    let (first, mut first_peer) = UnixStream::pair().unwrap();
    let (second, mut second_peer) = UnixStream::pair().unwrap();
    let r1 = io
        .register(first.as_raw_fd(), rein::Interest::READABLE, move |ready| {
            let _ = relay.send(ready);
        })
        .unwrap();
    let r2 = io
        .register(second.as_raw_fd(), rein::Interest::READABLE, move |_| {
            flag.store(true, SeqCst);
        })
        .unwrap();
    // Both workers asleep, one of them in `epoll_wait`.
    std::thread::sleep(Duration::from_millis(200));
    first_peer.write_all(b"x").unwrap();
    long_started.recv_timeout(LIMIT).expect("the long turn ran");
    let sent = Instant::now();
    second_peer.write_all(b"x").unwrap();
    let deadline = Instant::now() + LIMIT;
    while !ran.load(SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let waited = sent.elapsed();
    drop((r1, r2));
    assert!(wait(rt).quiescent);
    assert!(
        waited < patience,
        "the second socket's edge waited {waited:?}, for the long turn to end"
    );
}

/// Keeps its worker in long turns (it sleeps in each, as a behaviour blocked on something
/// would), one after another, and says on which thread each ran, until told to stop.
struct LongTurns {
    turn: Duration,
    ran_on: mpsc::Sender<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Actor for LongTurns {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        use std::sync::atomic::Ordering::SeqCst;
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        let _ = self.ran_on.send(name);
        std::thread::sleep(self.turn);
        if !self.stop.load(SeqCst) {
            ctx.myself().send(()).unwrap();
        }
    }
}

#[test]
fn sockets_are_polled_while_every_worker_runs_long_turns() {
    // Both workers run 20 ms turns back to back, so neither waits in `epoll_wait`, and there is
    // no sleeper for the watchdog to wake. Busy workers look at the sockets every 61 picks
    // (1.2 s of such turns); the watchdog's request for a look makes it the next pick.
    use std::collections::HashSet;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let turn = Duration::from_millis(20);
    // One message per turn, so that each 20 ms behaviour is a pick of its own.
    let rt = rein::Runtime::builder()
        .threads(2)
        .batch(1)
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let (ran_on, turns) = mpsc::channel();
    let busy: Vec<_> = (0..2)
        .map(|_| {
            rt.spawn(LongTurns {
                turn,
                ran_on: ran_on.clone(),
                stop: stop.clone(),
            })
        })
        .collect();
    let io = rt.handle().io();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let (edge, edges) = mpsc::channel();
    let registration = io
        .register(ours.as_raw_fd(), rein::Interest::READABLE, move |_| {
            let _ = edge.send(Instant::now());
        })
        .unwrap();
    for b in &busy {
        b.send(()).unwrap();
    }
    // Wait until both workers run the busy turns (a turn each on two threads, the latest ones).
    let deadline = Instant::now() + LIMIT;
    let mut recent = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "both workers never got busy");
        recent.push(turns.recv_timeout(LIMIT).expect("busy turns run"));
        let last: HashSet<_> = recent.iter().rev().take(2).collect();
        if last.len() == 2 {
            break;
        }
    }
    // Drain the registration's first edge (writable sockets may report at once).
    while edges.try_recv().is_ok() {}
    let sent = Instant::now();
    peer.write_all(b"x").unwrap();
    let at = edges
        .recv_timeout(LIMIT)
        .expect("the edge reached its owner");
    let waited = at.duration_since(sent);
    stop.store(true, SeqCst);
    drop((registration, busy));
    assert!(wait(rt).quiescent);
    assert!(
        waited < Duration::from_millis(400),
        "the edge waited {waited:?} behind busy workers (their 61-pick look is 1.2 s away)"
    );
}
