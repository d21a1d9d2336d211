//! Lingering: an idle worker keeps drained actors activated so that sends from outside the
//! runtime need no scheduling (see the scheduler's module docs). These tests pin down what
//! must not change because of it: backlog readings, quiescence, delivery and per-sender order,
//! including when a sender on a worker claims a lingering actor.

mod common;

use common::{runtime, wait, LIMIT};
use rein::{Actor, ActorRef, Context, Runtime};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Acknowledges every message on a std channel.
struct Acker {
    acks: mpsc::Sender<u64>,
}

impl Actor for Acker {
    type Msg = u64;
    fn handle(&mut self, _: &mut Context<Self>, n: u64) {
        self.acks.send(n).unwrap();
    }
}

#[test]
fn backlog_readings_never_include_an_idle_workers_hold() {
    // One worker: right after each acknowledgement it has nothing else to do, so it is very
    // likely lingering on the actor when we read the backlog. Batches of one, so that a turn
    // retires each message before the next is sent: then the backlog is at most the message
    // being acknowledged (a longer turn retires several at its end).
    let rt = Runtime::builder().threads(1).batch(1).build().unwrap();
    let (acks, acked) = mpsc::channel();
    let actor = rt.spawn(Acker { acks });
    for n in 0..2_000u64 {
        actor.send(n).unwrap();
        assert_eq!(acked.recv_timeout(LIMIT).unwrap(), n);
        let backlog = actor.backlog();
        // The first turn also holds the spawn activation (for `started`) until it ends.
        let most = if n == 0 { 2 } else { 1 };
        assert!(
            backlog <= most,
            "backlog {backlog} after message {n} was handled"
        );
        assert!(!actor.is_pressured());
    }
    drop(actor);
    let report = wait(rt);
    assert!(report.quiescent);
    assert_eq!(report.metrics.scheduled_actors, 0, "an activation leaked");
}

/// What a sink saw: (sender, sequence number) in arrival order.
type Seen = Arc<Mutex<Vec<Vec<(u32, u64)>>>>;

enum SinkMsg {
    /// From the driver thread (sender id 0): pass every tenth on to the next sink.
    FromDriver(u64),
    /// From another sink, numbered per forwarding sink.
    Forwarded {
        from: u32,
        seq: u64,
    },
    Next(ActorRef<Sink>),
}

struct Sink {
    index: usize,
    next: Option<ActorRef<Sink>>,
    forwarded: u64,
    received: Vec<(u32, u64)>,
    seen: Seen,
}

impl Actor for Sink {
    type Msg = SinkMsg;
    fn handle(&mut self, _: &mut Context<Self>, msg: SinkMsg) {
        match msg {
            SinkMsg::Next(next) => self.next = Some(next),
            SinkMsg::FromDriver(seq) => {
                self.received.push((0, seq));
                if seq % 10 == 0 {
                    let next = self.next.as_ref().expect("wired before the driver starts");
                    let from = self.index as u32 + 1;
                    let seq = self.forwarded;
                    next.send(SinkMsg::Forwarded { from, seq }).ok().unwrap();
                    self.forwarded += 1;
                }
            }
            SinkMsg::Forwarded { from, seq } => self.received.push((from, seq)),
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.seen.lock().unwrap()[self.index] = std::mem::take(&mut self.received);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.received.is_empty() {
            self.seen.lock().unwrap()[self.index] = std::mem::take(&mut self.received);
        }
    }
}

/// The fork-join throughput shape that lingering is for (a driver thread round-robins over many
/// actors), plus actor-to-actor forwarding, which makes senders on workers claim lingering
/// receivers. Everything must arrive exactly once and in per-sender order, and the runtime must
/// still reach quiescence.
#[test]
fn outside_round_robin_with_forwarding_delivers_everything_in_order() {
    const SINKS: usize = 24;
    const ROUNDS: u64 = 2_000;
    for threads in [1, 2, 4] {
        let rt = runtime(threads);
        let seen: Seen = Arc::new(Mutex::new(vec![Vec::new(); SINKS]));
        let sinks: Vec<ActorRef<Sink>> = (0..SINKS)
            .map(|index| {
                rt.spawn(Sink {
                    index,
                    next: None,
                    forwarded: 0,
                    received: Vec::new(),
                    seen: seen.clone(),
                })
            })
            .collect();
        for (i, sink) in sinks.iter().enumerate() {
            let next = sinks[(i + 1) % SINKS].clone();
            sink.send(SinkMsg::Next(next)).ok().unwrap();
        }
        for seq in 0..ROUNDS {
            for sink in &sinks {
                sink.send(SinkMsg::FromDriver(seq)).ok().unwrap();
            }
        }
        drop(sinks);
        let report = wait(rt);
        assert!(report.quiescent, "threads {threads}: {report:?}");
        assert_eq!(report.metrics.dropped_messages, 0, "threads {threads}");
        let seen = seen.lock().unwrap();
        let forwarded_per_sink = ROUNDS.div_ceil(10);
        for (index, received) in seen.iter().enumerate() {
            let from_driver: Vec<u64> = received.iter().filter(|m| m.0 == 0).map(|m| m.1).collect();
            assert_eq!(
                from_driver,
                (0..ROUNDS).collect::<Vec<_>>(),
                "threads {threads}: sink {index} lost, duplicated or reordered driver messages"
            );
            let previous = (index + SINKS - 1) % SINKS;
            let forwarded: Vec<u64> = received
                .iter()
                .filter(|m| m.0 == previous as u32 + 1)
                .map(|m| m.1)
                .collect();
            assert_eq!(
                forwarded,
                (0..forwarded_per_sink).collect::<Vec<_>>(),
                "threads {threads}: sink {index} lost, duplicated or reordered forwarded messages"
            );
            assert_eq!(
                received.len() as u64,
                ROUNDS + forwarded_per_sink,
                "threads {threads}: sink {index} got messages from elsewhere"
            );
        }
    }
}

/// Sends itself a message per message until told to stop: keeps its worker busy forever.
struct Spinner {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Actor for Spinner {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        if !self.stop.load(std::sync::atomic::Ordering::SeqCst) {
            ctx.myself().send(()).ok().unwrap();
        }
    }
}

#[test]
fn a_worker_that_becomes_busy_does_not_starve_the_actors_it_lingers_on() {
    // One worker. The acker is drained while the worker is idle, so it lingers there; then a
    // spinner keeps that worker's own queue non-empty for good. A message to the acker from
    // outside finds it lingering (no schedule), so only the busy worker can let it run.
    for _ in 0..20 {
        let rt = runtime(1);
        let (acks, acked) = mpsc::channel();
        let acker = rt.spawn(Acker { acks });
        acker.send(0).unwrap();
        assert_eq!(acked.recv_timeout(LIMIT).unwrap(), 0);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = rt.spawn(Spinner { stop: stop.clone() });
        spinner.send(()).ok().unwrap();
        acker.send(1).unwrap();
        let answer = acked.recv_timeout(LIMIT);
        let metrics = rt.metrics();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            answer,
            Ok(1),
            "the lingering actor starved behind a busy worker: backlog {}, {metrics:?}",
            acker.backlog()
        );
        drop((acker, spinner));
        assert!(wait(rt).quiescent);
    }
}
