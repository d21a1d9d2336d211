//! Timers: one-shot and periodic delivery, cancellation, and whether a timer keeps the runtime
//! alive. Durations here are lower bounds on when a tick may arrive, never speed targets.

mod common;

use common::{until, wait};
use rein::{Actor, Context, Runtime, Timer};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
enum Msg {
    StartOnce(Duration),
    StartEvery(Duration, u32),
    Tick,
}

/// Starts timers on request and counts ticks; cancels a periodic timer after `stop_after`.
struct Ticked {
    ticks: Arc<AtomicU32>,
    stop_after: u32,
    periodic: Option<Timer>,
    out: mpsc::Sender<Instant>,
}

impl Actor for Ticked {
    type Msg = Msg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) {
        match msg {
            Msg::StartOnce(delay) => {
                ctx.after_keeping_alive(delay, Msg::Tick);
            }
            Msg::StartEvery(period, stop_after) => {
                self.stop_after = stop_after;
                self.periodic = Some(ctx.every_keeping_alive(period, Msg::Tick));
            }
            Msg::Tick => {
                let n = self.ticks.fetch_add(1, SeqCst) + 1;
                let _ = self.out.send(Instant::now());
                if n == self.stop_after {
                    let timer = self.periodic.as_ref().expect("periodic timer");
                    timer.cancel();
                    assert!(timer.is_done());
                }
            }
        }
    }
}

fn ticked(
    rt: &Runtime,
) -> (
    rein::ActorRef<Ticked>,
    Arc<AtomicU32>,
    mpsc::Receiver<Instant>,
) {
    let ticks = Arc::new(AtomicU32::new(0));
    let (tx, rx) = mpsc::channel();
    let a = rt.spawn(Ticked {
        ticks: ticks.clone(),
        stop_after: 0,
        periodic: None,
        out: tx,
    });
    (a, ticks, rx)
}

#[test]
fn after_delivers_once_no_earlier_than_its_delay() {
    let rt = common::runtime(2);
    let (a, ticks, rx) = ticked(&rt);
    let started = Instant::now();
    a.send(Msg::StartOnce(Duration::from_millis(30))).unwrap();
    let report = wait(rt);
    assert_eq!(ticks.load(SeqCst), 1);
    let at = rx.recv().unwrap();
    assert!(at - started >= Duration::from_millis(30), "fired early");
    assert!(report.quiescent);
}

#[test]
fn every_repeats_until_cancelled_and_cancelling_releases_the_runtime() {
    let rt = common::runtime(2);
    let (a, ticks, rx) = ticked(&rt);
    a.send(Msg::StartEvery(Duration::from_millis(2), 5))
        .unwrap();
    // The runtime can only end once the keep-alive timer is cancelled at the fifth tick.
    let report = wait(rt);
    assert!(report.quiescent);
    assert_eq!(ticks.load(SeqCst), 5, "no tick after the cancel");
    let times: Vec<Instant> = rx.try_iter().collect();
    assert_eq!(times.len(), 5);
    assert!(times.windows(2).all(|w| w[1] >= w[0]));
}

/// Starts a timer that does not keep the runtime alive.
struct Lazy {
    timer: Option<Timer>,
    fired: Arc<AtomicU32>,
}

impl Actor for Lazy {
    type Msg = bool;
    fn handle(&mut self, ctx: &mut Context<Self>, start: bool) {
        if start {
            self.timer = Some(ctx.after(Duration::from_secs(3600), false));
        } else {
            self.fired.fetch_add(1, SeqCst);
        }
    }
}

#[test]
fn a_timer_that_does_not_keep_alive_lets_the_runtime_end() {
    let rt = common::runtime(1);
    let fired = Arc::new(AtomicU32::new(0));
    rt.spawn(Lazy {
        timer: None,
        fired: fired.clone(),
    })
    .send(true)
    .unwrap();
    let started = Instant::now();
    let report = wait(rt);
    assert!(report.quiescent);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited for an hour-long timer"
    );
    assert_eq!(fired.load(SeqCst), 0);
}

/// Stops itself; a periodic timer pointed at it must then end.
struct Quitter {
    timer: Option<Timer>,
    handed: mpsc::Sender<Timer>,
}

impl Actor for Quitter {
    type Msg = u8;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: u8) {
        match msg {
            0 => {
                let t = ctx.every_keeping_alive(Duration::from_millis(1), 2);
                self.handed.send(t.clone()).unwrap();
                self.timer = Some(t);
            }
            1 => ctx.stop(),
            _ => {}
        }
    }
}

#[test]
fn a_timer_whose_actor_stopped_ends_and_releases_the_runtime() {
    let rt = common::runtime(2);
    let (tx, rx) = mpsc::channel();
    let q = rt.spawn(Quitter {
        timer: None,
        handed: tx,
    });
    q.send(0).unwrap();
    let timer = rx.recv_timeout(common::LIMIT).unwrap();
    q.send(1).unwrap();
    // The next tick finds the actor stopped: the timer ends, and with it its keep-alive.
    until("the timer to end", || timer.is_done());
    let report = wait(rt);
    assert!(report.quiescent);
}

/// Sets timers on request: the long one first, so that a sleeping worker keeps time for it.
struct Setter {
    long: Option<Timer>,
    out: mpsc::Sender<Instant>,
}

enum SetterMsg {
    Long,
    Short(Duration),
    Tick,
}

impl Actor for Setter {
    type Msg = SetterMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: SetterMsg) {
        match msg {
            SetterMsg::Long => {
                self.long =
                    Some(ctx.after_keeping_alive(Duration::from_secs(3600), SetterMsg::Tick));
            }
            SetterMsg::Short(delay) => {
                ctx.after_keeping_alive(delay, SetterMsg::Tick);
            }
            SetterMsg::Tick => {
                let _ = self.out.send(Instant::now());
                // The short timer fired: the long one has nothing left to prove.
                if let Some(long) = self.long.take() {
                    long.cancel();
                }
            }
        }
    }
}

#[test]
fn an_earlier_timer_wakes_the_worker_that_sleeps_until_a_later_one() {
    // The timekeeper sleeps until the hour-long timer; the short timer set afterwards must wake
    // it rather than wait behind it.
    let rt = common::runtime(2);
    let (tx, rx) = mpsc::channel();
    let a = rt.spawn(Setter {
        long: None,
        out: tx,
    });
    a.send(SetterMsg::Long).unwrap();
    // Let every worker go to sleep, one of them until the hour is up.
    std::thread::sleep(Duration::from_millis(100));
    let set = Instant::now();
    a.send(SetterMsg::Short(Duration::from_millis(20))).unwrap();
    let fired = rx
        .recv_timeout(common::LIMIT)
        .expect("the short timer fired");
    assert!(fired - set >= Duration::from_millis(20), "fired early");
    let report = wait(rt);
    assert!(report.quiescent);
}

/// Keeps its only worker busy with turns of about 200 µs until `done` is set or two seconds pass.
struct Busy {
    done: Arc<std::sync::atomic::AtomicBool>,
    stopped_by_timer: Arc<std::sync::atomic::AtomicBool>,
    started: Instant,
}

impl Actor for Busy {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let turn = Instant::now();
        while turn.elapsed() < Duration::from_micros(200) {
            std::hint::spin_loop();
        }
        if self.done.load(SeqCst) {
            self.stopped_by_timer.store(true, SeqCst);
        } else if self.started.elapsed() < Duration::from_secs(2) {
            let _ = ctx.myself().send(());
        }
    }
}

/// Sets a short timer and raises `done` when it fires.
struct Alarm {
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl Actor for Alarm {
    type Msg = bool;
    fn handle(&mut self, ctx: &mut Context<Self>, tick: bool) {
        if tick {
            self.done.store(true, SeqCst);
        } else {
            ctx.after_keeping_alive(Duration::from_millis(20), true);
        }
    }
}

#[test]
fn timers_fire_while_every_worker_is_busy() {
    // One worker, kept busy by an actor that messages itself: no worker ever sleeps, so the
    // timer must be fired by the busy worker between turns (a turn per message, so that turns
    // come often).
    let rt = Runtime::builder()
        .threads(1)
        .batch(1)
        .build()
        .expect("runtime");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    rt.spawn(Alarm { done: done.clone() }).send(false).unwrap();
    let stopped_by_timer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = rt.spawn(Busy {
        done: done.clone(),
        stopped_by_timer: stopped_by_timer.clone(),
        started: Instant::now(),
    });
    busy.send(()).unwrap();
    let report = wait(rt);
    assert!(report.quiescent);
    assert!(
        stopped_by_timer.load(SeqCst),
        "the timer fired only once the busy actor gave up"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn timers_need_no_thread_of_their_own() {
    let rt = Runtime::builder()
        .threads(2)
        .thread_name("tkeep")
        .build()
        .expect("runtime");
    let (a, _ticks, rx) = ticked(&rt);
    a.send(Msg::StartEvery(Duration::from_millis(1), 20))
        .unwrap();
    rx.recv_timeout(common::LIMIT).expect("a first tick");
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("tkeep"))
        .collect();
    assert!(names.iter().any(|n| n == "tkeep-0"), "threads: {names:?}");
    assert!(
        !names.iter().any(|n| n.contains("timer")),
        "a timer thread runs: {names:?}"
    );
    assert!(wait(rt).quiescent);
}
