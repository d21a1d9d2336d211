//! Actor lifecycle: quiescence, spawning, stopping, asking, panics, shutdown.

mod common;

use common::{runtime, until, wait};
use rein::{
    Actor, ActorDown, ActorRef, AskError, BuildError, Context, DownReason, ReplyTo, Runtime,
};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

struct Tree {
    depth: u32,
    leaves: Arc<AtomicU64>,
}

impl Actor for Tree {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        if self.depth == 0 {
            self.leaves.fetch_add(1, SeqCst);
            return;
        }
        for _ in 0..3 {
            let child = ctx.spawn(Tree {
                depth: self.depth - 1,
                leaves: self.leaves.clone(),
            });
            child.send(()).unwrap();
        }
    }
}

#[test]
fn quiescence_waits_for_actors_spawned_by_actors() {
    for threads in [1, 2, 4] {
        let rt = runtime(threads);
        let leaves = Arc::new(AtomicU64::new(0));
        rt.spawn(Tree {
            depth: 6,
            leaves: leaves.clone(),
        })
        .send(())
        .unwrap();
        let report = wait(rt);
        assert!(report.quiescent);
        assert_eq!(leaves.load(SeqCst), 3u64.pow(6), "threads={threads}");
        assert_eq!(
            report.metrics.spawned,
            (0..=6).map(|d| 3u64.pow(d)).sum::<u64>()
        );
        assert_eq!(report.undelivered, 0);
    }
}

#[test]
fn spawning_from_outside_threads_works_and_nothing_runs_past_wait() {
    let rt = runtime(2);
    let leaves = Arc::new(AtomicU64::new(0));
    let handle = rt.handle();
    let feeders: Vec<_> = (0..4)
        .map(|_| {
            let handle = handle.clone();
            let leaves = leaves.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    handle
                        .spawn(Tree {
                            depth: 1,
                            leaves: leaves.clone(),
                        })
                        .expect("the runtime runs")
                        .send(())
                        .unwrap();
                }
            })
        })
        .collect();
    for f in feeders {
        f.join().unwrap();
    }
    let report = wait(rt);
    assert_eq!(leaves.load(SeqCst), 4 * 50 * 3);
    assert!(!handle.is_running());
    assert_eq!(report.metrics.messages(), 4 * 50 * 4);
}

#[test]
fn an_idle_runtime_that_was_not_told_to_wait_keeps_running() {
    let rt = runtime(2);
    std::thread::sleep(Duration::from_millis(50));
    assert!(rt.handle().is_running(), "no wait(), so no quiescence");
    let leaves = Arc::new(AtomicU64::new(0));
    rt.spawn(Tree {
        depth: 0,
        leaves: leaves.clone(),
    })
    .send(())
    .unwrap();
    wait(rt);
    assert_eq!(leaves.load(SeqCst), 1);
}

struct Stopper {
    stopped_hook: Arc<AtomicUsize>,
}

impl Actor for Stopper {
    type Msg = u32;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: u32) {
        if msg == 0 {
            ctx.stop();
        }
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stopped_hook.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_send_to_a_stopped_actor_returns_the_message() {
    let rt = runtime(2);
    let hook = Arc::new(AtomicUsize::new(0));
    let a = rt.spawn(Stopper {
        stopped_hook: hook.clone(),
    });
    a.send(0).unwrap();
    until("the actor to stop", || a.is_stopped());
    let err = a.send(7).unwrap_err();
    assert_eq!(err.into_inner(), 7);
    let report = wait(rt);
    assert_eq!(hook.load(SeqCst), 1, "stopped runs exactly once");
    assert_eq!(report.metrics.live_actors, 0);
}

#[test]
fn messages_queued_behind_a_stop_are_dropped_and_counted() {
    let rt = Runtime::builder().threads(1).batch(1000).build().unwrap();
    let hook = Arc::new(AtomicUsize::new(0));
    let a = rt.spawn(Stopper {
        stopped_hook: hook.clone(),
    });
    // All queued before the actor first runs? Not guaranteed, so count both outcomes.
    a.send(0).unwrap();
    let mut accepted = 0u64;
    for i in 1..=100 {
        if a.send(i).is_ok() {
            accepted += 1;
        }
    }
    let report = wait(rt);
    assert_eq!(report.metrics.dropped_messages, accepted);
    assert_eq!(
        report.metrics.messages(),
        1,
        "only the stop message was handled"
    );
}

enum Watcher {
    Down(ActorDown),
    Watch(ActorRef<Fragile>),
}

impl From<ActorDown> for Watcher {
    fn from(d: ActorDown) -> Self {
        Watcher::Down(d)
    }
}

struct WatcherActor {
    downs: mpsc::Sender<ActorDown>,
}

impl Actor for WatcherActor {
    type Msg = Watcher;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Watcher) {
        match msg {
            Watcher::Watch(target) => ctx.monitor(&target),
            Watcher::Down(d) => self.downs.send(d).unwrap(),
        }
    }
}

struct Fragile {
    handled: Arc<AtomicUsize>,
}

impl Actor for Fragile {
    type Msg = bool;
    fn handle(&mut self, _: &mut Context<Self>, explode: bool) {
        assert!(!explode, "boom (an expected panic in a test)");
        self.handled.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_panicking_actor_is_isolated_and_its_monitors_hear_of_it() {
    let rt = runtime(2);
    let (tx, rx) = mpsc::channel();
    let handled = Arc::new(AtomicUsize::new(0));
    let fragile = rt.spawn(Fragile {
        handled: handled.clone(),
    });
    let bystander = rt.spawn(Fragile {
        handled: handled.clone(),
    });
    let watcher = rt.spawn(WatcherActor { downs: tx });
    watcher.send(Watcher::Watch(fragile.clone())).unwrap();
    // Make sure the monitor is in place before the panic.
    until("the monitor to be in place", || watcher.backlog() == 0);
    fragile.send(false).unwrap();
    fragile.send(true).unwrap();
    for _ in 0..10 {
        let _ = fragile.send(false);
        bystander.send(false).unwrap();
    }
    let down = rx.recv_timeout(common::LIMIT).expect("ActorDown notice");
    assert_eq!(down.id, fragile.id());
    assert_eq!(down.reason, DownReason::Panicked);
    let report = wait(rt);
    assert_eq!(report.metrics.panics, 1);
    assert!(fragile.is_stopped());
    // The bystander handled all 10; the fragile one handled exactly the first message.
    assert_eq!(handled.load(SeqCst), 11);
    assert_eq!(report.worker_panics, 0);
}

#[test]
fn monitoring_an_actor_that_is_already_down_reports_at_once() {
    let rt = runtime(1);
    let (tx, rx) = mpsc::channel();
    let hook = Arc::new(AtomicUsize::new(0));
    let victim = rt.spawn(Stopper {
        stopped_hook: hook.clone(),
    });
    victim.send(0).unwrap();
    until("the victim to stop", || victim.is_stopped());
    struct Late {
        target: ActorRef<Stopper>,
        tx: mpsc::Sender<ActorDown>,
    }
    impl Actor for Late {
        type Msg = LateMsg;
        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.monitor(&self.target);
        }
        fn handle(&mut self, _: &mut Context<Self>, LateMsg(d): LateMsg) {
            self.tx.send(d).unwrap();
        }
    }
    struct LateMsg(ActorDown);
    impl From<ActorDown> for LateMsg {
        fn from(d: ActorDown) -> Self {
            LateMsg(d)
        }
    }
    rt.spawn(Late {
        target: victim.clone(),
        tx,
    });
    let down = rx.recv_timeout(common::LIMIT).unwrap();
    assert_eq!(down.reason, DownReason::Stopped);
    wait(rt);
}

struct Adder {
    total: u64,
}

enum AdderMsg {
    Add(u64),
    Get(ReplyTo<u64>),
    Ignore(ReplyTo<u64>),
}

impl Actor for Adder {
    type Msg = AdderMsg;
    fn handle(&mut self, _: &mut Context<Self>, msg: AdderMsg) {
        match msg {
            AdderMsg::Add(n) => self.total += n,
            AdderMsg::Get(reply) => {
                let _ = reply.send(self.total);
            }
            AdderMsg::Ignore(reply) => std::mem::forget(reply),
        }
    }
}

#[test]
fn ask_answers_times_out_and_reports_dropped_replies() {
    let rt = runtime(2);
    let adder = rt.spawn(Adder { total: 0 });
    for i in 1..=100 {
        adder.send(AdderMsg::Add(i)).unwrap();
    }
    assert_eq!(adder.ask(AdderMsg::Get, common::LIMIT), Ok(5050));
    // Forgotten: no reply ever, so the ask times out.
    assert_eq!(
        adder.ask(AdderMsg::Ignore, Duration::from_millis(50)),
        Err(AskError::Timeout)
    );
    struct Dropper;
    impl Actor for Dropper {
        type Msg = ReplyTo<u8>;
        fn handle(&mut self, _: &mut Context<Self>, reply: ReplyTo<u8>) {
            drop(reply);
        }
    }
    let dropper = rt.spawn(Dropper);
    assert_eq!(dropper.ask(|r| r, common::LIMIT), Err(AskError::NoReply));
    wait(rt);
}

#[test]
fn ask_on_a_worker_thread_is_refused_rather_than_blocking() {
    struct Asker {
        target: ActorRef<Adder>,
        out: mpsc::Sender<Result<u64, AskError>>,
    }
    impl Actor for Asker {
        type Msg = ();
        fn handle(&mut self, _: &mut Context<Self>, _: ()) {
            let r = self.target.ask(AdderMsg::Get, Duration::from_secs(1));
            self.out.send(r).unwrap();
        }
    }
    let rt = runtime(1);
    let adder = rt.spawn(Adder { total: 0 });
    let (tx, rx) = mpsc::channel();
    rt.spawn(Asker {
        target: adder,
        out: tx,
    })
    .send(())
    .unwrap();
    assert_eq!(
        rx.recv_timeout(common::LIMIT).unwrap(),
        Err(AskError::OnWorkerThread)
    );
    wait(rt);
}

#[test]
fn asking_an_actor_of_a_finished_runtime_fails_fast() {
    let rt = runtime(1);
    let adder = rt.spawn(Adder { total: 1 });
    wait(rt);
    let started = std::time::Instant::now();
    assert_eq!(
        adder.ask(AdderMsg::Get, common::LIMIT),
        Err(AskError::RuntimeEnded),
        "the cause is the runtime's end, not the actor's stop"
    );
    assert!(started.elapsed() < common::LIMIT / 2, "did not fail fast");
}

struct Sleeper {
    stopped_hook: Arc<AtomicUsize>,
}

impl Actor for Sleeper {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stopped_hook.fetch_add(1, SeqCst);
    }
}

#[test]
fn shutdown_is_prompt_runs_stopped_hooks_and_counts_undelivered() {
    let rt = Runtime::builder().threads(1).batch(1).build().unwrap();
    let hook = Arc::new(AtomicUsize::new(0));
    let idle: Vec<_> = (0..5)
        .map(|_| {
            rt.spawn(Sleeper {
                stopped_hook: hook.clone(),
            })
        })
        .collect();
    let busy = rt.spawn(Sleeper {
        stopped_hook: hook.clone(),
    });
    // Let every actor run its `started` hook (only started actors get `stopped`).
    until("every actor to start", || {
        rt.metrics().workers[0].turns >= 6
    });
    for _ in 0..1000 {
        busy.send(()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let report = rt.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown was not prompt"
    );
    assert!(!report.quiescent);
    assert_eq!(hook.load(SeqCst), 6, "every actor's stopped hook ran");
    let handled = report.metrics.messages();
    assert_eq!(
        report.undelivered + handled,
        1000,
        "every message handled or counted"
    );
    assert!(report.undelivered > 0);
    assert!(
        busy.send(()).is_err(),
        "sends after shutdown return the message"
    );
    drop(idle);
}

#[test]
fn idle_actors_in_a_reference_cycle_are_stopped_at_the_end() {
    struct Peer {
        other: Option<ActorRef<Peer>>,
        hook: Arc<AtomicUsize>,
    }
    impl Actor for Peer {
        type Msg = ActorRef<Peer>;
        fn handle(&mut self, _: &mut Context<Self>, other: ActorRef<Peer>) {
            self.other = Some(other);
        }
        fn stopped(&mut self, _: &mut Context<Self>) {
            self.other = None;
            self.hook.fetch_add(1, SeqCst);
        }
    }
    let rt = runtime(2);
    let hook = Arc::new(AtomicUsize::new(0));
    let a = rt.spawn(Peer {
        other: None,
        hook: hook.clone(),
    });
    let b = rt.spawn(Peer {
        other: None,
        hook: hook.clone(),
    });
    a.send(b.clone()).unwrap();
    b.send(a.clone()).unwrap();
    let weak_check = a.clone();
    drop((a, b));
    let report = wait(rt);
    assert_eq!(hook.load(SeqCst), 2);
    assert!(weak_check.is_stopped());
    assert_eq!(report.metrics.live_actors, 0);
}

#[test]
fn bad_configuration_is_a_typed_error() {
    assert!(matches!(
        Runtime::builder().threads(0).build(),
        Err(BuildError::ZeroThreads)
    ));
    assert!(matches!(
        Runtime::builder().batch(0).build(),
        Err(BuildError::ZeroBatch)
    ));
    assert!(matches!(
        Runtime::builder().watermarks(10, 10).build(),
        Err(BuildError::Watermarks { low: 10, high: 10 })
    ));
    let e = Runtime::builder().threads(0).build().unwrap_err();
    assert!(e.to_string().contains("at least one"));
}

#[test]
fn recipients_deliver_converted_messages_and_return_them_when_stopped() {
    struct Sink {
        seen: Arc<AtomicU64>,
    }
    enum SinkMsg {
        Num(u64),
        Stop,
    }
    impl From<u64> for SinkMsg {
        fn from(n: u64) -> Self {
            SinkMsg::Num(n)
        }
    }
    impl Actor for Sink {
        type Msg = SinkMsg;
        fn handle(&mut self, ctx: &mut Context<Self>, msg: SinkMsg) {
            match msg {
                SinkMsg::Num(n) => {
                    self.seen.fetch_add(n, SeqCst);
                }
                SinkMsg::Stop => ctx.stop(),
            }
        }
    }
    let rt = runtime(2);
    let seen = Arc::new(AtomicU64::new(0));
    let sink = rt.spawn(Sink { seen: seen.clone() });
    let r: rein::Recipient<u64> = sink.recipient();
    assert_eq!(r.id(), sink.id());
    for i in 0..10 {
        r.send(i).unwrap();
    }
    sink.send(SinkMsg::Stop).unwrap();
    until("the sink to stop", || r.is_stopped());
    assert_eq!(r.send(99).unwrap_err().into_inner(), 99);
    wait(rt);
    assert_eq!(seen.load(SeqCst), 45);
}

#[test]
fn replies_can_go_to_an_actor_as_a_message() {
    struct Client {
        server: ActorRef<Adder>,
        out: mpsc::Sender<u64>,
    }
    enum ClientMsg {
        Go,
        Answer(u64),
    }
    impl From<u64> for ClientMsg {
        fn from(n: u64) -> Self {
            ClientMsg::Answer(n)
        }
    }
    impl Actor for Client {
        type Msg = ClientMsg;
        fn handle(&mut self, ctx: &mut Context<Self>, msg: ClientMsg) {
            match msg {
                ClientMsg::Go => {
                    let reply = ReplyTo::to(ctx.myself().recipient());
                    self.server.send(AdderMsg::Get(reply)).unwrap();
                }
                ClientMsg::Answer(n) => self.out.send(n).unwrap(),
            }
        }
    }
    let rt = runtime(2);
    let server = rt.spawn(Adder { total: 41 });
    let (tx, rx) = mpsc::channel();
    rt.spawn(Client { server, out: tx })
        .send(ClientMsg::Go)
        .unwrap();
    assert_eq!(rx.recv_timeout(common::LIMIT), Ok(41));
    wait(rt);
}

/// Spawns its successor and stops, `left` times over: a chain of spawns that never leaves the
/// spawn stack empty.
struct Chain {
    left: u64,
    made: Arc<AtomicU64>,
}

impl Actor for Chain {
    type Msg = ();
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.made.fetch_add(1, SeqCst);
        if self.left > 0 {
            ctx.spawn(Chain {
                left: self.left - 1,
                made: self.made.clone(),
            });
        }
        ctx.stop();
    }
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
}

/// Keeps messaging itself, noting how long the chain was at each of its messages.
struct Ticker {
    ticks: u64,
    made: Arc<AtomicU64>,
    seen: mpsc::Sender<u64>,
}

impl Actor for Ticker {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        self.ticks += 1;
        let _ = self.seen.send(self.made.load(SeqCst));
        if self.ticks < 20 {
            let _ = ctx.myself().send(());
        }
    }
}

/// Freshly spawned actors run first (a tree unfolds depth first), but not forever: an actor in
/// the FIFO queue keeps its turns while a chain of spawns runs on the same worker.
#[test]
fn a_chain_of_spawns_does_not_starve_queued_actors() {
    const CHAIN: u64 = 200_000;
    let rt = runtime(1);
    let made = Arc::new(AtomicU64::new(0));
    let (tx, seen) = mpsc::channel();
    // One driver spawns both from one turn, so both start on the one worker.
    struct Start {
        made: Arc<AtomicU64>,
        seen: Option<mpsc::Sender<u64>>,
    }
    impl Actor for Start {
        type Msg = ();
        fn started(&mut self, ctx: &mut Context<Self>) {
            let ticker = ctx.spawn(Ticker {
                ticks: 0,
                made: self.made.clone(),
                seen: self.seen.take().unwrap(),
            });
            ticker.send(()).unwrap();
            ctx.spawn(Chain {
                left: CHAIN,
                made: self.made.clone(),
            });
            ctx.stop();
        }
        fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
    }
    rt.spawn(Start {
        made: made.clone(),
        seen: Some(tx),
    });
    let report = wait(rt);
    let at: Vec<u64> = seen.try_iter().collect();
    assert_eq!(at.len(), 20, "the ticker handled all its messages");
    assert_eq!(made.load(SeqCst), CHAIN + 1, "the whole chain ran");
    // Its twentieth message was handled long before the chain ended: it was not held back
    // behind the spawn stack.
    assert!(
        at[19] < CHAIN / 2,
        "the ticker's last message waited for {} of {} spawns",
        at[19],
        CHAIN + 1
    );
    assert_eq!(report.metrics.panics, 0);
}
