//! Robustness: panics in user code that runs outside a behaviour never take a thread of the
//! runtime down, huge durations mean "never" instead of overflowing, and spawning on a runtime
//! that has ended hands the actor back.
//!
//! Every test here ends with the runtime reaching quiescence within [`common::LIMIT`] and other
//! actors still working after the panic: on a runtime whose worker died, `wait` would hang.

mod common;

use common::{runtime, until, wait, LIMIT};
use rein::{Actor, ActorDown, ActorRef, Context, ReplyTo, SpawnError, Timer};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Answers every request: proof that the runtime still runs actors.
struct Echo;

impl Actor for Echo {
    type Msg = (u32, ReplyTo<u32>);
    fn handle(&mut self, _: &mut Context<Self>, (n, reply): Self::Msg) {
        let _ = reply.send(n);
    }
}

fn still_works(echo: &ActorRef<Echo>) {
    for n in 0..10 {
        assert_eq!(
            echo.ask(|r| (n, r), LIMIT),
            Ok(n),
            "an actor stopped answering"
        );
    }
}

/// An actor whose `Drop` panics.
struct Bomb {
    dropped: Arc<AtomicUsize>,
}

impl Actor for Bomb {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
        panic!("Bomb::drop (an expected panic in a test)");
    }
}

/// Spawns a [`Bomb`] and forgets its address at once, so that the worker that runs its first
/// turn holds the last reference and collects it there.
struct Spawner {
    dropped: Arc<AtomicUsize>,
}

impl Actor for Spawner {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        drop(ctx.spawn(Bomb {
            dropped: self.dropped.clone(),
        }));
    }
}

#[test]
fn an_actor_whose_drop_panics_when_collected_on_a_worker_takes_nothing_down() {
    for threads in [1, 2] {
        let rt = runtime(threads);
        let dropped = Arc::new(AtomicUsize::new(0));
        let echo = rt.spawn(Echo);
        let spawner = rt.spawn(Spawner {
            dropped: dropped.clone(),
        });
        for _ in 0..5 {
            spawner.send(()).unwrap();
        }
        until("every bomb to be collected", || dropped.load(SeqCst) == 5);
        still_works(&echo);
        let report = wait(rt);
        assert!(report.quiescent);
        assert_eq!(report.worker_panics, 0);
        assert_eq!(report.metrics.panics, 5, "threads={threads}");
    }
}

#[test]
fn an_actor_whose_drop_panics_when_its_last_address_is_dropped_is_contained() {
    let rt = runtime(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let echo = rt.spawn(Echo);
    let bomb = rt.spawn(Bomb {
        dropped: dropped.clone(),
    });
    bomb.send(()).unwrap();
    until("the bomb to go idle", || bomb.backlog() == 0);
    // Collected here if the workers are done with its task, else on the worker that is: either
    // way the panic is contained.
    drop(bomb);
    until("the bomb to be collected", || dropped.load(SeqCst) == 1);
    still_works(&echo);
    let report = wait(rt);
    assert_eq!(report.worker_panics, 0);
    assert_eq!(report.metrics.panics, 1);
}

/// A message whose conversion from `ActorDown` panics.
struct Touchy;

impl From<ActorDown> for Touchy {
    fn from(_: ActorDown) -> Self {
        panic!("Touchy::from (an expected panic in a test)");
    }
}

/// Stops on its first message.
struct Quitter;

impl Actor for Quitter {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        ctx.stop();
    }
}

/// Monitors a target with a message type whose `From<ActorDown>` panics.
struct TouchyWatcher {
    target: ActorRef<Quitter>,
}

impl Actor for TouchyWatcher {
    type Msg = Touchy;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.monitor(&self.target);
    }
    fn handle(&mut self, _: &mut Context<Self>, _: Touchy) {
        unreachable!("no ActorDown can be converted");
    }
}

#[test]
fn a_monitor_whose_conversion_panics_takes_nothing_down() {
    for threads in [1, 2] {
        let rt = runtime(threads);
        let echo = rt.spawn(Echo);
        let target = rt.spawn(Quitter);
        let watcher = rt.spawn(TouchyWatcher {
            target: target.clone(),
        });
        until("the monitor to be in place", || watcher.backlog() == 0);
        target.send(()).unwrap();
        until("the target to stop", || target.is_stopped());
        still_works(&echo);
        // A monitor added once the target is down is told at once, inside `started`: the
        // conversion's panic is contained there too, and the late watcher keeps running.
        let late = rt.spawn(TouchyWatcher {
            target: target.clone(),
        });
        until("the late monitor to be told", || rt.metrics().panics == 2);
        assert!(!late.is_stopped());
        assert!(!watcher.is_stopped());
        still_works(&echo);
        let report = wait(rt);
        assert!(report.quiescent);
        assert_eq!(report.worker_panics, 0);
        assert_eq!(report.metrics.panics, 2, "threads={threads}");
    }
}

/// A message whose conversion from `u32` panics.
struct Picky;

impl From<u32> for Picky {
    fn from(_: u32) -> Self {
        panic!("Picky::from (an expected panic in a test)");
    }
}

struct PickySink;

impl Actor for PickySink {
    type Msg = Picky;
    fn handle(&mut self, _: &mut Context<Self>, _: Picky) {
        unreachable!("no u32 can be converted");
    }
}

#[test]
fn a_recipient_whose_conversion_panics_drops_the_message_and_counts_it() {
    let rt = runtime(2);
    let echo = rt.spawn(Echo);
    let sink = rt.spawn(PickySink);
    let recipient = sink.recipient::<u32>();
    // From this thread (as an I/O or timer thread would), then from inside a behaviour.
    assert!(recipient.send(1).is_ok());
    struct Forwarder(rein::Recipient<u32>);
    impl Actor for Forwarder {
        type Msg = u32;
        fn handle(&mut self, _: &mut Context<Self>, n: u32) {
            let _ = self.0.send(n);
        }
    }
    let forwarder = rt.spawn(Forwarder(recipient));
    forwarder.send(2).unwrap();
    until("both conversions to panic", || rt.metrics().panics == 2);
    assert!(!forwarder.is_stopped(), "the sender is not to blame");
    assert!(!sink.is_stopped());
    still_works(&echo);
    let report = wait(rt);
    assert_eq!(report.worker_panics, 0);
    assert_eq!(report.metrics.panics, 2);
    assert_eq!(report.metrics.dropped_messages, 2);
}

/// A message whose `Clone` panics.
struct Fragile;

impl Clone for Fragile {
    fn clone(&self) -> Self {
        panic!("Fragile::clone (an expected panic in a test)");
    }
}

#[derive(Clone)]
enum TimerMsg {
    StartFragile,
    StartLater,
    Fragile(Fragile),
    Tick,
}

struct Timed {
    timers: mpsc::Sender<Timer>,
    ticked: mpsc::Sender<()>,
}

impl Actor for Timed {
    type Msg = TimerMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: TimerMsg) {
        match msg {
            TimerMsg::StartFragile => {
                let fragile = TimerMsg::Fragile(Fragile);
                let timer = ctx.every(Duration::from_millis(1), fragile);
                self.timers.send(timer).unwrap();
            }
            TimerMsg::StartLater => {
                ctx.after_keeping_alive(Duration::from_millis(5), TimerMsg::Tick);
            }
            TimerMsg::Fragile(_) => unreachable!("the clone panics"),
            TimerMsg::Tick => self.ticked.send(()).unwrap(),
        }
    }
}

#[test]
fn a_timer_message_whose_clone_panics_ends_that_timer_only() {
    let rt = runtime(2);
    let echo = rt.spawn(Echo);
    let (timers, timer) = mpsc::channel();
    let (ticked, tick) = mpsc::channel();
    let timed = rt.spawn(Timed { timers, ticked });
    timed.send(TimerMsg::StartFragile).unwrap();
    let fragile = timer.recv_timeout(LIMIT).expect("the fragile timer");
    until("the fragile timer to fire and panic", || {
        rt.metrics().panics == 1
    });
    until("the fragile timer to end", || fragile.is_done());
    // Timers still fire: a timer set after the panic fires.
    timed.send(TimerMsg::StartLater).unwrap();
    tick.recv_timeout(LIMIT)
        .expect("a timer set after the panic fired");
    assert!(!timed.is_stopped());
    still_works(&echo);
    let report = wait(rt);
    assert!(report.quiescent);
    assert_eq!(report.worker_panics, 0);
    assert_eq!(report.metrics.panics, 1);
}

#[derive(Clone)]
enum FarMsg {
    Arm(mpsc::Sender<Vec<Timer>>),
    Fired,
    Ping(mpsc::Sender<()>),
}

/// Sets timers with durations too large to represent as an instant, then keeps answering.
struct Patient;

impl Actor for Patient {
    type Msg = FarMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: FarMsg) {
        match msg {
            FarMsg::Arm(out) => {
                let timers = vec![
                    ctx.after(Duration::MAX, FarMsg::Fired),
                    ctx.every(Duration::MAX, FarMsg::Fired),
                    ctx.after_keeping_alive(Duration::MAX, FarMsg::Fired),
                    ctx.every_keeping_alive(Duration::MAX, FarMsg::Fired),
                ];
                out.send(timers).unwrap();
            }
            FarMsg::Fired => unreachable!("a timer set for Duration::MAX fired"),
            FarMsg::Ping(out) => out.send(()).unwrap(),
        }
    }
}

#[test]
fn timers_set_for_duration_max_never_fire_and_do_not_kill_the_actor() {
    let rt = runtime(2);
    let patient = rt.spawn(Patient);
    let (tx, rx) = mpsc::channel();
    patient.send(FarMsg::Arm(tx)).unwrap();
    let timers = rx
        .recv_timeout(LIMIT)
        .expect("the timers (the actor died?)");
    let (tx, rx) = mpsc::channel();
    patient.send(FarMsg::Ping(tx)).unwrap();
    rx.recv_timeout(LIMIT).expect("the actor answers");
    assert!(!patient.is_stopped());
    assert!(timers.iter().all(|t| !t.is_done()));
    // The keep-alive timers are pending for ever: the runtime does not end by itself...
    let rt = match rt.wait_timeout(Duration::from_millis(100)) {
        Ok(report) => panic!("ended while keep-alive timers were pending: {report:?}"),
        Err(rt) => rt,
    };
    // ...until they are cancelled.
    for t in &timers {
        t.cancel();
    }
    let report = wait(rt);
    assert!(report.quiescent);
    assert_eq!(report.metrics.panics, 0);
}

#[test]
fn ask_and_wait_timeout_accept_duration_max() {
    let rt = runtime(2);
    let echo = rt.spawn(Echo);
    assert_eq!(echo.ask(|r| (5, r), Duration::MAX), Ok(5));
    let report = rt
        .wait_timeout(Duration::MAX)
        .expect("Duration::MAX is no deadline");
    assert!(report.quiescent);
}

/// Handles a message per millisecond, so that a fast sender finds it pressured.
struct Slow {
    handled: Arc<AtomicUsize>,
}

impl Actor for Slow {
    type Msg = u32;
    fn handle(&mut self, _: &mut Context<Self>, _: u32) {
        std::thread::sleep(Duration::from_millis(1));
        self.handled.fetch_add(1, SeqCst);
    }
}

#[test]
fn send_timeout_accepts_duration_max_and_waits_out_the_pressure() {
    let rt = rein::Runtime::builder()
        .threads(2)
        .watermarks(1, 4)
        .build()
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let slow = rt.spawn(Slow {
        handled: handled.clone(),
    });
    for n in 0..40 {
        assert!(slow.send_timeout(n, Duration::MAX).is_ok());
    }
    let report = wait(rt);
    assert_eq!(handled.load(SeqCst), 40);
    assert!(
        report.metrics.overloads > 0,
        "the sender never met pressure"
    );
}

/// Counts its drops; the number identifies it.
struct Counted(Arc<AtomicUsize>, u32);

impl Actor for Counted {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn spawning_through_a_handle_after_the_runtime_ended_hands_the_actor_back() {
    let dropped = Arc::new(AtomicUsize::new(0));
    for shut_down in [false, true] {
        let rt = runtime(2);
        let handle = rt.handle();
        let live = handle.spawn(Counted(dropped.clone(), 1)).expect("running");
        live.send(()).unwrap();
        let report = if shut_down { rt.shutdown() } else { wait(rt) };
        assert_eq!(report.metrics.spawned, 1);
        let before = dropped.load(SeqCst);
        let refused: SpawnError<Counted> = handle
            .spawn(Counted(dropped.clone(), 2))
            .expect_err("the runtime has ended");
        assert_eq!(
            dropped.load(SeqCst),
            before,
            "the refused actor was dropped"
        );
        assert!(refused.to_string().contains("ended"));
        assert_eq!(refused.into_inner().1, 2);
        assert_eq!(dropped.load(SeqCst), before + 1);
        assert_eq!(handle.metrics().spawned, 1, "nothing was spawned");
        assert!(!handle.is_running());
    }
}

#[test]
fn spawns_racing_a_shutdown_are_either_stopped_or_handed_back() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt = runtime(2);
    let handle = rt.handle();
    let spawners: Vec<_> = (0..4)
        .map(|_| {
            let handle = handle.clone();
            let dropped = dropped.clone();
            std::thread::spawn(move || {
                let mut made = 0;
                loop {
                    made += 1;
                    match handle.spawn(Counted(dropped.clone(), made)) {
                        Ok(actor) => drop(actor),
                        Err(refused) => {
                            drop(refused);
                            return made;
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    let report = rt.shutdown();
    let made: u32 = spawners.into_iter().map(|s| s.join().unwrap()).sum();
    // Every accepted actor was stopped by the shutdown (or collected), every refused one came
    // back: none is left alive with nothing to run it.
    assert_eq!(report.metrics.spawned + 4, u64::from(made));
    drop(handle);
    assert_eq!(dropped.load(SeqCst), made as usize);
}
