//! `Builder::deterministic`: one seed, one interleaving.
//!
//! A workload with stealing, muting, spawning and timers records the global order in which
//! behaviours run. The same seed must give the same order every time; different seeds must be
//! able to give different orders (or the mode would explore nothing).

mod common;

use rein::{Actor, ActorRef, Context, Runtime};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Trace = Arc<Mutex<Vec<(u32, u32)>>>;

/// Forwards what it gets to its next stage (if any), and records it.
struct Stage {
    name: u32,
    next: Option<ActorRef<Stage>>,
    trace: Trace,
    work: u32,
}

enum Msg {
    Item(u32),
    /// Spawn a child stage that forwards to us, and feed it.
    Spawn(u32),
    Tick(u32),
}

impl Actor for Stage {
    type Msg = Msg;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.name == 0 {
            ctx.after_keeping_alive(Duration::from_millis(5), Msg::Tick(1));
            ctx.after_keeping_alive(Duration::from_millis(1), Msg::Tick(0));
        }
        ctx.set_watermarks(2, 6).expect("valid");
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) {
        let mut x = 0u64;
        for i in 0..self.work {
            x = std::hint::black_box(x.wrapping_add(u64::from(i)));
        }
        match msg {
            Msg::Item(n) => {
                self.trace.lock().unwrap().push((self.name, n));
                if let Some(next) = &self.next {
                    next.send(Msg::Item(n)).unwrap();
                }
            }
            Msg::Spawn(n) => {
                self.trace.lock().unwrap().push((self.name, 1_000_000 + n));
                let child = ctx.spawn(Stage {
                    name: 100 + n,
                    next: Some(ctx.myself()),
                    trace: self.trace.clone(),
                    work: 0,
                });
                for i in 0..20 {
                    child.send(Msg::Item(i)).unwrap();
                }
            }
            Msg::Tick(n) => self.trace.lock().unwrap().push((self.name, 2_000_000 + n)),
        }
    }
}

/// Runs the workload under `seed` and returns its trace.
fn run(seed: u64) -> Vec<(u32, u32)> {
    let rt = Runtime::builder()
        .threads(3)
        .batch(4)
        .watermarks(2, 6)
        .deterministic(seed)
        .build()
        .unwrap();
    let trace: Trace = Arc::default();
    let sink = rt.spawn(Stage {
        name: 0,
        next: None,
        trace: trace.clone(),
        work: 3_000,
    });
    let mids: Vec<_> = (1..=3)
        .map(|name| {
            rt.spawn(Stage {
                name,
                next: Some(sink.clone()),
                trace: trace.clone(),
                work: 0,
            })
        })
        .collect();
    for n in 0..150 {
        mids[n as usize % 3].send(Msg::Item(n)).unwrap();
        if n % 50 == 0 {
            mids[(n as usize / 50) % 3].send(Msg::Spawn(n)).unwrap();
        }
    }
    drop((sink, mids));
    let report = common::wait(rt);
    assert!(report.quiescent);
    assert!(report.metrics.mutes > 0, "the workload never muted");
    let trace = std::mem::take(&mut *trace.lock().unwrap());
    assert_eq!(
        trace.iter().filter(|t| t.1 >= 2_000_000).count(),
        2,
        "both keep-alive timers fired"
    );
    trace
}

#[test]
fn one_seed_gives_one_interleaving() {
    let first = run(42);
    for _ in 0..4 {
        assert_eq!(run(42), first, "seed 42 took another interleaving");
    }
}

#[test]
fn seeds_explore_different_interleavings() {
    let traces: Vec<_> = (0..8).map(run).collect();
    let distinct = traces
        .iter()
        .enumerate()
        .filter(|(i, t)| !traces[..*i].contains(t))
        .count();
    assert!(
        distinct > 1,
        "8 seeds, one interleaving: nothing is explored"
    );
}

#[test]
fn virtual_timers_fire_in_deadline_order_without_waiting() {
    struct Clock(Trace);
    impl Actor for Clock {
        type Msg = u32;
        fn started(&mut self, ctx: &mut Context<Self>) {
            // An hour of virtual time passes at once.
            ctx.after_keeping_alive(Duration::from_secs(3_600), 3);
            ctx.after_keeping_alive(Duration::from_secs(60), 2);
            ctx.after_keeping_alive(Duration::from_millis(1), 1);
            // Not keeping alive: the runtime ends before it fires.
            ctx.after(Duration::from_secs(7_200), 4);
        }
        fn handle(&mut self, _: &mut Context<Self>, n: u32) {
            self.0.lock().unwrap().push((0, n));
        }
    }
    let started = std::time::Instant::now();
    let rt = Runtime::builder()
        .threads(2)
        .deterministic(1)
        .build()
        .unwrap();
    let trace: Trace = Arc::default();
    rt.spawn(Clock(trace.clone()));
    assert!(common::wait(rt).quiescent);
    assert_eq!(*trace.lock().unwrap(), vec![(0, 1), (0, 2), (0, 3)]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited in real time"
    );
}

#[test]
fn work_sent_from_outside_after_wait_is_picked_up() {
    struct Count(Arc<Mutex<u32>>);
    impl Actor for Count {
        type Msg = ();
        fn handle(&mut self, _: &mut Context<Self>, _: ()) {
            *self.0.lock().unwrap() += 1;
        }
    }
    let rt = Runtime::builder()
        .threads(2)
        .deterministic(9)
        .build()
        .unwrap();
    let handle = rt.handle();
    let keep = handle.keep_alive();
    let n = Arc::new(Mutex::new(0));
    let counter = rt.spawn(Count(n.clone()));
    let feeder = std::thread::spawn(move || {
        // Sent while the workers idle with the baton down.
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..10 {
            counter.send(()).unwrap();
        }
        common::until("the messages are handled", || *n.lock().unwrap() == 10);
        drop(keep);
    });
    let report = common::wait(rt);
    feeder.join().unwrap();
    assert!(report.quiescent);
    assert_eq!(report.metrics.messages(), 10);
}
