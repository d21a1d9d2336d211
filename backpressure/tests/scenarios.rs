//! Runtime backpressure end to end: the backlog bound, the deadlock escapes, outside threads,
//! observability. Every wait is bounded; every figure is read from metrics, not timing.

#[path = "../../runtime/tests/common.rs"]
mod common;

use common::{until, wait};
use rein::{Actor, ActorRef, Context, Runtime, TrySendError};
use rein_backpressure::{ApplyReleaseBackpressureAuth, Backpressure, OutsideBehaviour};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Does a little work per message and records the largest backlog it ever saw.
struct Consumer {
    received: Arc<AtomicU64>,
    max_backlog: Arc<AtomicUsize>,
    spin: u32,
}

impl Actor for Consumer {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, _: u64) {
        self.max_backlog.fetch_max(ctx.backlog(), SeqCst);
        for i in 0..self.spin {
            std::hint::black_box(i);
        }
        self.received.fetch_add(1, SeqCst);
    }
}

/// Sends `per_behaviour` messages per behaviour, `rounds` times.
struct Producer {
    to: ActorRef<Consumer>,
    per_behaviour: u64,
    rounds: u64,
}

impl Actor for Producer {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        for i in 0..self.per_behaviour {
            self.to.send(i).unwrap();
        }
        self.rounds -= 1;
        if self.rounds > 0 {
            ctx.myself().send(()).unwrap();
        }
    }
}

fn fan_in(
    rt: &Runtime,
    producers: u64,
    per_behaviour: u64,
    rounds: u64,
    spin: u32,
) -> (Arc<AtomicU64>, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicU64::new(0));
    let max_backlog = Arc::new(AtomicUsize::new(0));
    let consumer = rt.spawn(Consumer {
        received: received.clone(),
        max_backlog: max_backlog.clone(),
        spin,
    });
    for _ in 0..producers {
        rt.spawn(Producer {
            to: consumer.clone(),
            per_behaviour,
            rounds,
        })
        .send(())
        .unwrap();
    }
    (received, max_backlog)
}

#[test]
fn the_backlog_stays_within_the_documented_bound() {
    let (low, high) = (64, 256);
    let (producers, per_behaviour, rounds) = (4, 10, 2_000);
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(low, high)
        .build()
        .unwrap();
    let (received, max_backlog) = fan_in(&rt, producers, per_behaviour, rounds, 200);
    let report = wait(rt);
    assert_eq!(
        received.load(SeqCst),
        producers * per_behaviour * rounds,
        "lost messages"
    );
    // The documented bound (crate docs of rein, "Backlog bound"): each producer finishes the
    // behaviour in which it crossed the high watermark, and one more if it raced a recovery.
    let bound = high + 2 * (producers * per_behaviour) as usize;
    let seen = max_backlog.load(SeqCst);
    assert!(
        seen <= bound,
        "backlog {seen} exceeded the documented bound {bound}"
    );
    assert!(report.metrics.mutes > 0, "the test never exercised muting");
    assert_eq!(
        report.metrics.mutes, report.metrics.unmutes,
        "every mute was undone"
    );
    assert_eq!(report.metrics.muted_actors, 0);
    assert_eq!(report.metrics.overloaded_actors, 0);
}

#[test]
fn without_backpressure_the_backlog_grows_past_the_bound() {
    // The same workload, muting off: the bound above is really due to muting.
    let (producers, per_behaviour, rounds) = (4, 10, 2_000);
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(64, 256)
        .backpressure(false)
        .build()
        .unwrap();
    let (received, max_backlog) = fan_in(&rt, producers, per_behaviour, rounds, 2_000);
    let report = wait(rt);
    assert_eq!(received.load(SeqCst), producers * per_behaviour * rounds);
    assert_eq!(report.metrics.mutes, 0);
    assert!(
        max_backlog.load(SeqCst) > 256 + 40,
        "backlog {}",
        max_backlog.load(SeqCst)
    );
}

/// Applies pressure when started; releases on a timer tick. Producers flood it meanwhile.
struct TickReleased {
    auth: ApplyReleaseBackpressureAuth,
    received: Arc<AtomicU64>,
    applied_seen: Arc<AtomicUsize>,
}

enum TickMsg {
    Data,
    Tick,
}

impl Actor for TickReleased {
    type Msg = TickMsg;
    fn started(&mut self, ctx: &mut Context<Self>) {
        assert!(Backpressure::apply(&self.auth).unwrap());
        ctx.after_keeping_alive(Duration::from_millis(30), TickMsg::Tick);
    }
    fn handle(&mut self, _: &mut Context<Self>, msg: TickMsg) {
        match msg {
            TickMsg::Data => {
                if Backpressure::is_applied().unwrap() {
                    self.applied_seen.fetch_add(1, SeqCst);
                }
                self.received.fetch_add(1, SeqCst);
            }
            TickMsg::Tick => {
                assert!(Backpressure::release(&self.auth).unwrap());
            }
        }
    }
}

struct TickProducer {
    to: ActorRef<TickReleased>,
    rounds: u32,
}

impl Actor for TickProducer {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        for _ in 0..10 {
            self.to.send(TickMsg::Data).unwrap();
        }
        self.rounds -= 1;
        if self.rounds > 0 {
            ctx.myself().send(()).unwrap();
        }
    }
}

#[test]
fn deadlock_escape_release_driven_by_a_timer_tick() {
    let (rt, root) = Runtime::builder().threads(2).build_with_auth().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let applied_seen = Arc::new(AtomicUsize::new(0));
    let target = rt.spawn(TickReleased {
        auth: ApplyReleaseBackpressureAuth::new(&root),
        received: received.clone(),
        applied_seen: applied_seen.clone(),
    });
    for _ in 0..3 {
        rt.spawn(TickProducer {
            to: target.clone(),
            rounds: 100,
        })
        .send(())
        .unwrap();
    }
    let report = wait(rt);
    assert_eq!(received.load(SeqCst), 3 * 100 * 10);
    assert!(
        report.metrics.mutes > 0,
        "producers were never muted by the pressure"
    );
    // While pressured, each producer sends at most one behaviour (10 messages) before muting.
    assert!(
        applied_seen.load(SeqCst) <= 3 * 10,
        "{}",
        applied_seen.load(SeqCst)
    );
}

/// Under pressure until its helper answers a request; the helper also floods it.
struct NeedsHelper {
    auth: ApplyReleaseBackpressureAuth,
    helper: Option<ActorRef<Helper>>,
    received: Arc<AtomicU64>,
    released: Arc<AtomicUsize>,
}

enum NeedsMsg {
    Helper(ActorRef<Helper>),
    Data,
    Answer,
}

impl Actor for NeedsHelper {
    type Msg = NeedsMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: NeedsMsg) {
        match msg {
            NeedsMsg::Helper(h) => {
                Backpressure::apply(&self.auth).unwrap();
                Backpressure::exempt(&self.auth, h.id()).unwrap();
                self.helper = Some(h);
            }
            NeedsMsg::Data => {
                let n = self.received.fetch_add(1, SeqCst) + 1;
                if n == 10 {
                    // After the helper's first burst (it would be muted now, were it not
                    // exempt): ask it for the answer that releases the pressure.
                    self.helper
                        .as_ref()
                        .unwrap()
                        .send(HelperMsg::Request(ctx.myself()))
                        .unwrap();
                }
            }
            NeedsMsg::Answer => {
                Backpressure::release(&self.auth).unwrap();
                self.released.fetch_add(1, SeqCst);
            }
        }
    }
}

struct Helper {
    to: ActorRef<NeedsHelper>,
    rounds: u32,
}

enum HelperMsg {
    Flood,
    Request(ActorRef<NeedsHelper>),
}

impl Actor for Helper {
    type Msg = HelperMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: HelperMsg) {
        match msg {
            HelperMsg::Flood => {
                for _ in 0..10 {
                    self.to.send(NeedsMsg::Data).unwrap();
                }
                self.rounds -= 1;
                if self.rounds > 0 {
                    ctx.myself().send(HelperMsg::Flood).unwrap();
                }
            }
            HelperMsg::Request(from) => from.send(NeedsMsg::Answer).unwrap(),
        }
    }
}

fn run_reply_scenario() {
    let (rt, root) = Runtime::builder().threads(2).build_with_auth().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let released = Arc::new(AtomicUsize::new(0));
    let needy = rt.spawn(NeedsHelper {
        auth: ApplyReleaseBackpressureAuth::new(&root),
        helper: None,
        received: received.clone(),
        released: released.clone(),
    });
    let helper = rt.spawn(Helper {
        to: needy.clone(),
        rounds: 20,
    });
    // Pressure is applied before the flood starts.
    needy.send(NeedsMsg::Helper(helper.clone())).unwrap();
    until("pressure to be applied", || needy.backlog() == 0);
    helper.send(HelperMsg::Flood).unwrap();
    wait(rt);
    assert_eq!(received.load(SeqCst), 200);
    assert_eq!(released.load(SeqCst), 1);
}

#[test]
fn deadlock_escape_release_driven_by_the_reply_of_a_sender_with_exemption() {
    run_reply_scenario();
}

/// Two actors flooding each other: both overloaded, neither may be muted.
struct Twin {
    other: Option<ActorRef<Twin>>,
    rounds: u32,
    received: Arc<AtomicU64>,
}

enum TwinMsg {
    Meet(ActorRef<Twin>),
    Go,
    Data,
}

impl Actor for Twin {
    type Msg = TwinMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: TwinMsg) {
        match msg {
            TwinMsg::Meet(o) => self.other = Some(o),
            TwinMsg::Go => {
                let other = self.other.as_ref().unwrap();
                for _ in 0..50 {
                    other.send(TwinMsg::Data).unwrap();
                }
                self.rounds -= 1;
                if self.rounds > 0 {
                    ctx.myself().send(TwinMsg::Go).unwrap();
                }
            }
            TwinMsg::Data => {
                self.received.fetch_add(1, SeqCst);
                for i in 0..500u32 {
                    std::hint::black_box(i);
                }
            }
        }
    }
}

#[test]
fn deadlock_escape_two_overloaded_actors_in_a_cycle() {
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(8, 32)
        .build()
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let a = rt.spawn(Twin {
        other: None,
        rounds: 100,
        received: received.clone(),
    });
    let b = rt.spawn(Twin {
        other: None,
        rounds: 100,
        received: received.clone(),
    });
    a.send(TwinMsg::Meet(b.clone())).unwrap();
    b.send(TwinMsg::Meet(a.clone())).unwrap();
    a.send(TwinMsg::Go).unwrap();
    b.send(TwinMsg::Go).unwrap();
    let report = wait(rt);
    assert_eq!(received.load(SeqCst), 2 * 100 * 50);
    assert!(
        report.metrics.overloads > 0,
        "the test never overloaded anyone"
    );
    assert_eq!(report.metrics.muted_actors, 0);
}

#[test]
fn apply_and_release_outside_a_behaviour_are_typed_errors() {
    let (_rt, root) = Runtime::builder().threads(1).build_with_auth().unwrap();
    let auth = ApplyReleaseBackpressureAuth::new(&root);
    assert_eq!(Backpressure::apply(&auth), Err(OutsideBehaviour));
    assert_eq!(Backpressure::release(&auth), Err(OutsideBehaviour));
    assert_eq!(Backpressure::is_applied(), Err(OutsideBehaviour));
    assert_eq!(
        Backpressure::exempt(&auth, rein::ActorId::from_raw_for_tests(1)),
        Err(OutsideBehaviour)
    );
}

/// Applies pressure on demand and reports over a channel.
struct Gate {
    auth: ApplyReleaseBackpressureAuth,
}

enum GateMsg {
    Close,
    Open,
    Data,
}

impl Actor for Gate {
    type Msg = GateMsg;
    fn handle(&mut self, _: &mut Context<Self>, msg: GateMsg) {
        match msg {
            GateMsg::Close => {
                assert!(Backpressure::apply(&self.auth).unwrap());
                assert!(!Backpressure::apply(&self.auth).unwrap(), "idempotent");
            }
            GateMsg::Open => {
                assert!(Backpressure::release(&self.auth).unwrap());
                assert!(!Backpressure::release(&self.auth).unwrap(), "idempotent");
            }
            GateMsg::Data => {}
        }
    }
}

struct GateFeeder {
    gate: ActorRef<Gate>,
}

impl Actor for GateFeeder {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {
        self.gate.send(GateMsg::Data).unwrap();
    }
}

#[test]
fn pressure_mutes_senders_shows_in_the_snapshot_and_outside_threads_are_told() {
    let (rt, root) = Runtime::builder().threads(2).build_with_auth().unwrap();
    let gate = rt.spawn(Gate {
        auth: ApplyReleaseBackpressureAuth::new(&root),
    });
    gate.send(GateMsg::Close).unwrap();
    until("pressure", || rt.metrics().pressured_actors == 1);
    assert!(gate.is_pressured());
    assert!(matches!(
        gate.try_send(GateMsg::Data),
        Err(TrySendError::Pressured(GateMsg::Data))
    ));
    let started = std::time::Instant::now();
    assert!(matches!(
        gate.send_timeout(GateMsg::Data, Duration::from_millis(20)),
        Err(TrySendError::Pressured(_))
    ));
    assert!(started.elapsed() >= Duration::from_millis(20));

    let feeder = rt.spawn(GateFeeder { gate: gate.clone() });
    feeder.send(()).unwrap();
    until("the feeder to be muted", || rt.metrics().muted_actors == 1);
    let snap = rt.mute_snapshot();
    assert_eq!(snap.pressured, vec![gate.id()]);
    assert_eq!(snap.muted, vec![feeder.id()]);
    assert_eq!(
        snap.edges,
        vec![rein::MuteEdge {
            sender: feeder.id(),
            receiver: gate.id()
        }]
    );
    // A muted actor still receives: its messages queue.
    feeder.send(()).unwrap();
    feeder.send(()).unwrap();
    until("queued", || feeder.backlog() >= 2);

    // Outside threads are not muted: a plain send still goes through.
    gate.send(GateMsg::Open).unwrap();
    until("release", || rt.metrics().muted_actors == 0);
    assert!(rt.mute_snapshot().edges.is_empty());
    assert!(gate.try_send(GateMsg::Data).is_ok());
    let report = wait(rt);
    assert_eq!(report.metrics.pressured_actors, 0);
    assert!(report.metrics.mutes >= 1);
    assert_eq!(report.metrics.mutes, report.metrics.unmutes);
}

#[test]
fn a_stopped_pressured_actor_releases_its_senders() {
    struct Quitter {
        auth: ApplyReleaseBackpressureAuth,
    }
    impl Actor for Quitter {
        type Msg = u8;
        fn handle(&mut self, ctx: &mut Context<Self>, msg: u8) {
            match msg {
                0 => {
                    Backpressure::apply(&self.auth).unwrap();
                }
                1 => ctx.stop(),
                _ => {}
            }
        }
    }
    struct Pusher {
        to: ActorRef<Quitter>,
        sent: Arc<AtomicU64>,
    }
    impl Actor for Pusher {
        type Msg = ();
        fn handle(&mut self, _: &mut Context<Self>, _: ()) {
            if self.to.send(2).is_ok() {
                self.sent.fetch_add(1, SeqCst);
            }
        }
    }
    let (rt, root) = Runtime::builder().threads(2).build_with_auth().unwrap();
    let q = rt.spawn(Quitter {
        auth: ApplyReleaseBackpressureAuth::new(&root),
    });
    q.send(0).unwrap();
    // The pusher must find the quitter pressured; otherwise its five
    // sends may all land before `apply`, and nothing is ever muted.
    until("the quitter to apply pressure", || {
        rt.metrics().pressured_actors == 1
    });
    let sent = Arc::new(AtomicU64::new(0));
    let p = rt.spawn(Pusher {
        to: q.clone(),
        sent: sent.clone(),
    });
    for _ in 0..5 {
        p.send(()).unwrap();
    }
    until("the pusher to be muted", || rt.metrics().muted_actors == 1);
    q.send(1).unwrap();
    let report = wait(rt);
    assert_eq!(report.metrics.muted_actors, 0);
    assert_eq!(report.metrics.messages(), 2 + 5 + sent.load(SeqCst));
}

/// Sets its own small watermarks and records its largest backlog.
struct SmallMailbox {
    max_backlog: Arc<AtomicUsize>,
    received: Arc<AtomicU64>,
}

impl Actor for SmallMailbox {
    type Msg = u64;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_watermarks(2, 8).unwrap();
    }
    fn handle(&mut self, ctx: &mut Context<Self>, _: u64) {
        self.max_backlog.fetch_max(ctx.backlog(), SeqCst);
        for i in 0..300u32 {
            std::hint::black_box(i);
        }
        self.received.fetch_add(1, SeqCst);
    }
}

struct SmallProducer {
    to: ActorRef<SmallMailbox>,
    rounds: u64,
}

impl Actor for SmallProducer {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        self.to.send(self.rounds).unwrap();
        self.rounds -= 1;
        if self.rounds > 0 {
            ctx.myself().send(()).unwrap();
        }
    }
}

#[test]
fn an_actor_with_its_own_watermarks_is_bounded_by_them() {
    // The runtime's watermarks are large; the receiver's own (2, 8) must be what holds.
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(1000, 4000)
        .build()
        .unwrap();
    let max_backlog = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let sink = rt.spawn(SmallMailbox {
        max_backlog: max_backlog.clone(),
        received: received.clone(),
    });
    // Let `started` set the watermarks before anyone sends.
    until("the watermarks to be set", || sink.backlog() == 0);
    let producers = 3u64;
    for _ in 0..producers {
        rt.spawn(SmallProducer {
            to: sink.clone(),
            rounds: 500,
        })
        .send(())
        .unwrap();
    }
    let report = wait(rt);
    assert_eq!(received.load(SeqCst), producers * 500);
    let bound = 8 + 2 * producers as usize;
    assert!(
        max_backlog.load(SeqCst) <= bound,
        "backlog {} over {bound}",
        max_backlog.load(SeqCst)
    );
    assert!(report.metrics.mutes > 0);
}
