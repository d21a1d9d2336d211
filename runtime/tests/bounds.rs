//! The backlog bound, shape by shape: every mailbox of an acyclic topology stays within
//! `high + 2·P·K` (P senders, each sending at most K messages to it per behaviour), forwarders
//! of any depth included; cycles of flooding actors still finish; muted senders of a receiver
//! that stops are resumed.
//!
//! Each test records every mailbox's largest backlog twice: by the senders, right after each
//! send (`ActorRef::backlog` then counts their own message), and by the receiver at each
//! message. Both readings can only miss a peak, never invent one, so a reading above the bound
//! is a real violation.

mod common;

use rein::{Actor, ActorRef, Context, Recipient, Report, Runtime};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Small watermarks, so that a debug build overloads often with modest traffic.
const LOW: usize = 16;
const HIGH: usize = 64;

fn runtime(threads: usize) -> Runtime {
    Runtime::builder()
        .threads(threads)
        .watermarks(LOW, HIGH)
        .build()
        .expect("runtime")
}

/// The largest backlog seen at one mailbox.
#[derive(Default)]
struct Peak(AtomicUsize);

impl Peak {
    fn see(&self, backlog: usize) {
        self.0.fetch_max(backlog, Relaxed);
    }

    fn get(&self) -> usize {
        self.0.load(Relaxed)
    }
}

/// An address plus the peak of the mailbox behind it, updated after every send.
#[derive(Clone)]
struct Out {
    to: Recipient<u64>,
    backlog: Arc<dyn Fn() -> usize + Send + Sync>,
    peak: Arc<Peak>,
}

impl Out {
    fn new<A: Actor>(to: &ActorRef<A>, peak: Arc<Peak>) -> Out
    where
        A::Msg: From<u64>,
    {
        let reader = to.clone();
        Out {
            to: to.recipient(),
            backlog: Arc::new(move || reader.backlog()),
            peak,
        }
    }

    fn send(&self, n: u64) {
        self.to.send(n).expect("a stage stopped early");
        self.peak.see((self.backlog)());
    }
}

/// Counts what it gets, doing `work` rounds of busy work per message.
struct Sink {
    work: u32,
    handled: Arc<AtomicU64>,
    peak: Arc<Peak>,
}

impl Actor for Sink {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, n: u64) {
        self.peak.see(ctx.backlog());
        let mut x = n;
        for _ in 0..self.work {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        self.handled.fetch_add(1, Relaxed);
    }
}

/// Passes every message on to each of its outputs in turn (round robin).
struct Forwarder {
    outs: Vec<Out>,
    next: usize,
    peak: Arc<Peak>,
}

impl Actor for Forwarder {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, n: u64) {
        self.peak.see(ctx.backlog());
        self.outs[self.next].send(n);
        self.next = (self.next + 1) % self.outs.len();
    }
}

/// Sends `chunk` messages per behaviour, round robin over its outputs, then messages itself.
struct Source {
    outs: Vec<Out>,
    sent: u64,
    end: u64,
    chunk: u64,
}

impl Actor for Source {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let stop = (self.sent + self.chunk).min(self.end);
        while self.sent < stop {
            self.outs[(self.sent % self.outs.len() as u64) as usize].send(self.sent);
            self.sent += 1;
        }
        if self.sent < self.end {
            ctx.myself().send(()).expect("the source runs");
        }
    }
}

fn start_source(rt: &Runtime, outs: Vec<Out>, messages: u64, chunk: u64) {
    rt.spawn(Source {
        outs,
        sent: 0,
        end: messages,
        chunk,
    })
    .send(())
    .expect("fresh source");
}

fn clean(report: &Report) {
    assert!(report.quiescent, "{report:?}");
    assert_eq!(report.undelivered, 0, "{report:?}");
    assert_eq!(report.metrics.dropped_messages, 0, "{report:?}");
    assert_eq!(report.metrics.mutes, report.metrics.unmutes, "{report:?}");
}

/// `high + 2·P·K`.
fn bound(senders: usize, per_behaviour: u64) -> usize {
    HIGH + 2 * senders * per_behaviour as usize
}

fn assert_within(what: &str, peak: &Peak, bound: usize) {
    assert!(
        peak.get() <= bound,
        "{what}: peak backlog {} above the bound {bound}",
        peak.get()
    );
}

/// `source -> forwarder x depth -> sink`, on 1 and 2 workers.
fn chain(depth: usize, messages: u64, threads: usize) {
    const CHUNK: u64 = 100;
    let rt = runtime(threads);
    let handled = Arc::new(AtomicU64::new(0));
    let sink_peak = Arc::new(Peak::default());
    let sink = rt.spawn(Sink {
        work: 2_000,
        handled: handled.clone(),
        peak: sink_peak.clone(),
    });
    let mut next = Out::new(&sink, sink_peak.clone());
    let mut peaks = Vec::new();
    for _ in 0..depth {
        let peak = Arc::new(Peak::default());
        let fwd = rt.spawn(Forwarder {
            outs: vec![next],
            next: 0,
            peak: peak.clone(),
        });
        next = Out::new(&fwd, peak.clone());
        peaks.push(peak);
    }
    start_source(&rt, vec![next], messages, CHUNK);
    let report = common::wait(rt);
    clean(&report);
    assert_eq!(handled.load(Relaxed), messages);
    // peaks[0] is next to the sink, the last one next to the source.
    for (i, peak) in peaks.iter().enumerate() {
        let k = if i + 1 == depth { CHUNK } else { 1 };
        assert_within(&format!("forwarder {i} (from the sink)"), peak, bound(1, k));
    }
    let k = if depth == 0 { CHUNK } else { 1 };
    assert_within("sink", &sink_peak, bound(1, k));
    assert!(report.metrics.mutes > 0, "the sink never pushed back");
}

#[test]
fn source_to_slow_sink_stays_within_the_bound() {
    chain(0, 20_000, 2);
}

#[test]
fn one_forwarder_before_a_slow_sink_keeps_the_sink_within_the_bound() {
    // Pony's rule (never mute an overloaded actor) lets this sink's backlog grow to the size of
    // the whole stream: the forwarder stays overloaded, so it is never muted.
    chain(1, 20_000, 2);
    chain(1, 20_000, 1);
}

#[test]
fn a_chain_of_forwarders_keeps_every_link_within_the_bound() {
    chain(30, 20_000, 2);
}

#[test]
fn forwarders_side_by_side_keep_the_sink_within_the_bound() {
    const LANES: usize = 10;
    const CHUNK: u64 = 50;
    let rt = runtime(2);
    let handled = Arc::new(AtomicU64::new(0));
    let sink_peak = Arc::new(Peak::default());
    let sink = rt.spawn(Sink {
        work: 2_000,
        handled: handled.clone(),
        peak: sink_peak.clone(),
    });
    let mut lanes = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..LANES {
        let peak = Arc::new(Peak::default());
        let fwd = rt.spawn(Forwarder {
            outs: vec![Out::new(&sink, sink_peak.clone())],
            next: 0,
            peak: peak.clone(),
        });
        lanes.push(Out::new(&fwd, peak.clone()));
        peaks.push(peak);
    }
    start_source(&rt, lanes, 30_000, CHUNK);
    let report = common::wait(rt);
    clean(&report);
    assert_eq!(handled.load(Relaxed), 30_000);
    // The source sends at most CHUNK / LANES (rounded up) to one lane per behaviour.
    for (i, peak) in peaks.iter().enumerate() {
        assert_within(
            &format!("lane {i}"),
            peak,
            bound(1, CHUNK.div_ceil(LANES as u64)),
        );
    }
    assert_within("sink", &sink_peak, bound(LANES, 1));
}

#[test]
fn a_diamond_with_unequal_arms_stays_within_the_bound() {
    //            ┌─> a1 ─> a2 ─> a3 ─┐
    // source ─> split                 ├─> sink
    //            └─> b1 ─────────────┘
    const CHUNK: u64 = 100;
    let rt = runtime(2);
    let handled = Arc::new(AtomicU64::new(0));
    let sink_peak = Arc::new(Peak::default());
    let sink = rt.spawn(Sink {
        work: 2_000,
        handled: handled.clone(),
        peak: sink_peak.clone(),
    });
    let to_sink = Out::new(&sink, sink_peak.clone());
    let mut peaks = Vec::new();
    let mut stage = |outs: Vec<Out>| {
        let peak = Arc::new(Peak::default());
        let fwd = rt.spawn(Forwarder {
            outs,
            next: 0,
            peak: peak.clone(),
        });
        peaks.push(peak.clone());
        Out::new(&fwd, peak)
    };
    let a3 = stage(vec![to_sink.clone()]);
    let a2 = stage(vec![a3]);
    let a1 = stage(vec![a2]);
    let b1 = stage(vec![to_sink]);
    let split = stage(vec![a1, b1]);
    start_source(&rt, vec![split], 20_000, CHUNK);
    let report = common::wait(rt);
    clean(&report);
    assert_eq!(handled.load(Relaxed), 20_000);
    for (i, peak) in peaks.iter().enumerate() {
        let k = if i + 1 == peaks.len() { CHUNK } else { 1 };
        assert_within(&format!("stage {i}"), peak, bound(1, k));
    }
    assert_within("sink", &sink_peak, bound(2, 1));
}

#[test]
fn an_outside_feeder_that_honours_pressure_keeps_a_pipeline_bounded() {
    // `send_timeout` waits while the first stage is pressured; muting does the rest.
    let rt = runtime(2);
    let handled = Arc::new(AtomicU64::new(0));
    let sink_peak = Arc::new(Peak::default());
    let sink = rt.spawn(Sink {
        work: 2_000,
        handled: handled.clone(),
        peak: sink_peak.clone(),
    });
    let fwd_peak = Arc::new(Peak::default());
    let fwd = rt.spawn(Forwarder {
        outs: vec![Out::new(&sink, sink_peak.clone())],
        next: 0,
        peak: fwd_peak.clone(),
    });
    for n in 0..20_000u64 {
        fwd.send_timeout(n, common::LIMIT).expect("pressure eases");
        fwd_peak.see(fwd.backlog());
    }
    let report = common::wait(rt);
    clean(&report);
    assert_eq!(handled.load(Relaxed), 20_000);
    assert_within("forwarder", &fwd_peak, bound(0, 0) + 1);
    assert_within("sink", &sink_peak, bound(1, 1));
}

/// Floods its peers: every message it gets makes it send `fan` messages round its peers, while
/// the shared budget lasts.
struct Flooder {
    peers: Vec<ActorRef<Flooder>>,
    fan: usize,
    budget: Arc<AtomicU64>,
    handled: Arc<AtomicU64>,
}

impl Actor for Flooder {
    type Msg = FloodMsg;
    fn handle(&mut self, _: &mut Context<Self>, msg: FloodMsg) {
        match msg {
            FloodMsg::Peers(peers) => self.peers = peers,
            FloodMsg::Flood => {
                self.handled.fetch_add(1, Relaxed);
                for i in 0..self.fan {
                    let taken = self
                        .budget
                        .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(1))
                        .is_ok();
                    if !taken || self.peers.is_empty() {
                        return;
                    }
                    let _ = self.peers[i % self.peers.len()].send(FloodMsg::Flood);
                }
            }
        }
    }
}

enum FloodMsg {
    Peers(Vec<ActorRef<Flooder>>),
    Flood,
}

/// `n` actors, each flooding all the others (ponyc#3382's shape for n = 2): every one of them
/// is overloaded and sends to overloaded peers, so unrestricted cascading would park them all
/// on each other. The run must finish, and muting must have been refused for a cycle.
fn flood_clique(n: usize, threads: usize) -> Report {
    let rt = runtime(threads);
    let budget = Arc::new(AtomicU64::new(200_000));
    let handled = Arc::new(AtomicU64::new(0));
    let actors: Vec<_> = (0..n)
        .map(|_| {
            rt.spawn(Flooder {
                peers: Vec::new(),
                fan: 2,
                budget: budget.clone(),
                handled: handled.clone(),
            })
        })
        .collect();
    for (i, a) in actors.iter().enumerate() {
        let peers = actors
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, p)| p.clone())
            .collect();
        a.send(FloodMsg::Peers(peers)).unwrap();
    }
    for a in &actors {
        for _ in 0..HIGH * 2 {
            a.send(FloodMsg::Flood).unwrap();
        }
    }
    drop(actors);
    let report = common::wait(rt);
    clean(&report);
    assert_eq!(budget.load(Relaxed), 0, "the flood ran dry early");
    assert_eq!(
        handled.load(Relaxed),
        200_000 + (n * HIGH * 2) as u64,
        "every flood message handled"
    );
    report
}

#[test]
fn overloaded_actors_flooding_each_other_finish() {
    let mut refused = 0;
    for (n, threads) in [(2, 1), (2, 2), (3, 2), (5, 2)] {
        refused += flood_clique(n, threads).metrics.cycle_refusals;
    }
    assert!(refused > 0, "no mute was ever refused for a cycle");
}

/// A sink that stops itself after `after` messages, while its senders are muted on it.
struct Quitter {
    after: u64,
    seen: u64,
}

impl Actor for Quitter {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, _: u64) {
        let mut x = 0u64;
        for i in 0..2_000 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        self.seen += 1;
        if self.seen == self.after {
            ctx.stop();
        }
    }
}

/// Sends to the quitter until a send fails, counting failures.
struct Pusher {
    to: ActorRef<Quitter>,
    refused: Arc<AtomicU64>,
}

impl Actor for Pusher {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        for n in 0..50 {
            if self.to.send(n).is_err() {
                self.refused.fetch_add(1, Relaxed);
                return;
            }
        }
        ctx.myself().send(()).expect("the pusher runs");
    }
}

#[test]
fn senders_muted_on_a_receiver_that_stops_are_resumed() {
    let rt = runtime(2);
    let quitter = rt.spawn(Quitter {
        after: 5_000,
        seen: 0,
    });
    let refused = Arc::new(AtomicU64::new(0));
    for _ in 0..4 {
        rt.spawn(Pusher {
            to: quitter.clone(),
            refused: refused.clone(),
        })
        .send(())
        .unwrap();
    }
    drop(quitter);
    // A pusher left muted on the stopped quitter would never run again: no quiescence.
    let report = common::wait(rt);
    assert!(report.quiescent);
    assert!(report.metrics.mutes > 0, "nobody was muted: {report:?}");
    assert_eq!(report.metrics.mutes, report.metrics.unmutes, "{report:?}");
    assert_eq!(
        refused.load(Relaxed),
        4,
        "every pusher ran on to a refused send"
    );
}
