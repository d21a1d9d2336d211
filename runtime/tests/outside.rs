//! Sends from outside the runtime that honour backpressure (`send_blocking`, `send_timeout`,
//! `send_when_ready`), the reasons a send is refused, and the asks (`ask_async`, `Context::ask`).

mod common;

use common::{until, wait, LIMIT};
use rein::{
    Actor, ActorRef, AmbientAuth, AskError, Context, ReplyTo, Runtime, SendFailure, TrySendError,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Polls `f` on this thread, parking between polls: a minimal executor, so that these tests
/// need no async runtime (the tokio test is in `tokio_bridge.rs`).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "future not ready within {LIMIT:?}"
        );
        std::thread::park_timeout(LIMIT);
    }
}

/// Runs `f` on a thread; the returned closure waits for its result at most [`LIMIT`], so that a
/// send that is never woken fails the test instead of hanging it.
fn spawn_bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> impl FnOnce() -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    move || {
        rx.recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("the thread did not finish within {LIMIT:?}"))
    }
}

/// Counts polls of the future it wraps: a future that is woken, not polled in a loop, is polled
/// a handful of times however long it waits.
struct CountPolls<F> {
    inner: F,
    polls: Arc<AtomicUsize>,
}

impl<F: Future + Unpin> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<F::Output> {
        self.polls.fetch_add(1, SeqCst);
        std::pin::Pin::new(&mut self.inner).poll(cx)
    }
}

/// Handles each message slowly.
struct Slow {
    handled: Arc<AtomicUsize>,
}

impl Actor for Slow {
    type Msg = u64;
    fn handle(&mut self, _: &mut Context<Self>, _: u64) {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_micros(2) {}
        self.handled.fetch_add(1, SeqCst);
    }
}

#[test]
fn send_blocking_keeps_an_outside_producer_within_the_high_watermark() {
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(16, 64)
        .build()
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let slow = rt.spawn(Slow {
        handled: handled.clone(),
    });
    let peak = spawn_bounded(move || {
        let mut peak = 0;
        for i in 0..20_000 {
            slow.send_blocking(i).unwrap();
            peak = peak.max(slow.backlog());
        }
        peak
    })();
    let report = wait(rt);
    assert_eq!(handled.load(SeqCst), 20_000);
    // One producer: the push that reaches 64 sets the flag, the next send waits.
    assert!(peak <= 64, "backlog peaked at {peak}");
    assert!(
        report.metrics.overloads > 0,
        "the producer never had to wait"
    );
}

#[test]
fn a_plain_outside_send_is_not_bounded() {
    // The contrast, and why send_blocking exists: nothing holds a plain thread back.
    let rt = Runtime::builder()
        .threads(1)
        .watermarks(16, 64)
        .build()
        .unwrap();
    let slow = rt.spawn(Slow {
        handled: Arc::new(AtomicUsize::new(0)),
    });
    let mut peak = 0;
    for i in 0..5_000 {
        slow.send(i).unwrap();
        peak = peak.max(slow.backlog());
    }
    assert!(peak > 1_000, "backlog peaked at only {peak}");
    wait(rt);
}

enum Gate {
    Close,
    Open,
    Data,
    Stop,
}

/// Applies pressure on `Close`, releases it on `Open`, stops on `Stop`.
struct Gated {
    auth: AmbientAuth,
    data: Arc<AtomicUsize>,
}

impl Actor for Gated {
    type Msg = Gate;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Gate) {
        match msg {
            Gate::Close => {
                rein::pressure::apply(&self.auth).unwrap();
            }
            Gate::Open => {
                rein::pressure::release(&self.auth).unwrap();
            }
            Gate::Data => {
                self.data.fetch_add(1, SeqCst);
            }
            Gate::Stop => ctx.stop(),
        }
    }
}

fn gated(threads: usize) -> (Runtime, ActorRef<Gated>, Arc<AtomicUsize>) {
    let (rt, auth) = Runtime::builder()
        .threads(threads)
        .build_with_auth()
        .unwrap();
    let data = Arc::new(AtomicUsize::new(0));
    let gate = rt.spawn(Gated {
        auth,
        data: data.clone(),
    });
    gate.send(Gate::Close).unwrap();
    until("pressure", || rt.metrics().pressured_actors == 1);
    (rt, gate, data)
}

#[test]
fn send_blocking_waits_for_the_release_of_pressure_and_is_woken_by_it() {
    let (rt, gate, data) = gated(2);
    let done = Arc::new(AtomicBool::new(false));
    let (g, d) = (gate.clone(), done.clone());
    let producer = spawn_bounded(move || {
        g.send_blocking(Gate::Data).unwrap();
        d.store(true, SeqCst);
    });
    until("the producer to wait", || {
        rt.mute_snapshot().actors.iter().any(|a| a.waiters == 1)
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!done.load(SeqCst), "sent through pressure");
    let released = Instant::now();
    gate.send(Gate::Open).unwrap();
    producer();
    assert!(done.load(SeqCst));
    assert!(released.elapsed() < Duration::from_secs(5));
    wait(rt);
    assert_eq!(data.load(SeqCst), 1);
}

#[test]
fn send_blocking_hands_the_message_back_when_the_actor_stops_while_it_waits() {
    let (rt, gate, data) = gated(2);
    let g = gate.clone();
    let producer = spawn_bounded(move || g.send_blocking(Gate::Data));
    until("the producer to wait", || {
        rt.mute_snapshot().actors.iter().any(|a| a.waiters == 1)
    });
    gate.send(Gate::Stop).unwrap();
    let refused = producer().unwrap_err();
    assert_eq!(refused.reason(), SendFailure::ActorStopped);
    assert!(matches!(refused.into_inner(), Gate::Data));
    wait(rt);
    assert_eq!(data.load(SeqCst), 0);
}

#[test]
fn send_timeout_gives_up_and_leaves_no_waiter_behind() {
    let (rt, gate, _) = gated(1);
    let started = Instant::now();
    let refused = gate
        .send_timeout(Gate::Data, Duration::from_millis(30))
        .unwrap_err();
    assert!(matches!(refused, TrySendError::Pressured(Gate::Data)));
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert!(rt.mute_snapshot().actors.iter().all(|a| a.waiters == 0));
    gate.send(Gate::Open).unwrap();
    assert!(gate.send_timeout(Gate::Data, LIMIT).is_ok());
    wait(rt);
}

/// Tries every waiting send from inside a behaviour and reports what each said.
struct OnWorker {
    target: ActorRef<Slow>,
    report: mpsc::Sender<(Option<SendFailure>, Option<SendFailure>, Option<AskError>)>,
}

impl Actor for OnWorker {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, (): ()) {
        let blocking = self.target.send_blocking(1).err().map(|e| e.reason());
        let timeout = self
            .target
            .send_timeout(1, Duration::from_secs(1))
            .err()
            .and_then(|e| e.reason());
        let recipient = self.target.recipient::<u64>();
        assert_eq!(
            recipient.send_blocking(1).unwrap_err().reason(),
            SendFailure::OnWorkerThread
        );
        let ask = self.target.ask::<u32>(|_| 0, Duration::from_secs(1)).err();
        self.report.send((blocking, timeout, ask)).unwrap();
    }
}

#[test]
fn waiting_sends_refuse_on_a_worker_thread() {
    let rt = common::runtime(1);
    let target = rt.spawn(Slow {
        handled: Arc::new(AtomicUsize::new(0)),
    });
    let (tx, rx) = mpsc::channel();
    rt.spawn(OnWorker { target, report: tx }).send(()).unwrap();
    let (blocking, timeout, ask) = rx.recv_timeout(LIMIT).unwrap();
    assert_eq!(blocking, Some(SendFailure::OnWorkerThread));
    assert_eq!(timeout, Some(SendFailure::OnWorkerThread));
    assert_eq!(ask, Some(AskError::OnWorkerThread));
    wait(rt);
}

#[test]
fn a_refused_send_says_whether_the_actor_stopped_or_the_runtime_ended() {
    let (rt, gate, _) = gated(1);
    gate.send(Gate::Stop).unwrap();
    until("the stop", || gate.is_stopped());
    let stopped = gate.send(Gate::Data).unwrap_err();
    assert_eq!(stopped.reason(), SendFailure::ActorStopped);
    assert_eq!(format!("{stopped:?}"), "SendError(ActorStopped, ..)");
    assert_eq!(
        stopped.to_string(),
        "the actor has stopped; the message is returned"
    );

    let live = rt.spawn(Slow {
        handled: Arc::new(AtomicUsize::new(0)),
    });
    wait(rt);
    let ended = live.send(1).unwrap_err();
    assert_eq!(ended.reason(), SendFailure::RuntimeEnded);
    assert!(format!("{ended:?}").contains("RuntimeEnded"));
    assert!(ended.to_string().contains("runtime has ended"));
    assert_eq!(
        live.recipient::<u64>().send(2).unwrap_err().reason(),
        SendFailure::RuntimeEnded
    );
    assert!(matches!(
        live.try_send(3),
        Err(TrySendError::RuntimeEnded(3))
    ));
    assert_eq!(
        live.send_blocking(4).unwrap_err().reason(),
        SendFailure::RuntimeEnded
    );
    assert_eq!(live.ask::<u32>(|_| 5, LIMIT), Err(AskError::RuntimeEnded));
}

#[test]
fn a_keep_alive_lets_an_outside_producer_finish_after_wait_is_called() {
    let rt = common::runtime(2);
    let handled = Arc::new(AtomicUsize::new(0));
    let slow = rt.spawn(Slow {
        handled: handled.clone(),
    });
    let feeding = rt.handle().keep_alive();
    let producer = spawn_bounded(move || {
        let _feeding = feeding; // the runtime stays open until this thread is done
        for i in 0..2_000 {
            std::thread::yield_now();
            slow.send_blocking(i).unwrap();
        }
    });
    let report = wait(rt); // called at once, while the producer is still at work
    producer();
    assert_eq!(handled.load(SeqCst), 2_000);
    assert_eq!(report.undelivered, 0);
}

#[test]
fn send_when_ready_waits_without_polling_and_is_woken_by_the_release() {
    let (rt, gate, data) = gated(2);
    let polls = Arc::new(AtomicUsize::new(0));
    let (g, p) = (gate.clone(), polls.clone());
    let producer = spawn_bounded(move || {
        block_on(CountPolls {
            inner: g.send_when_ready(Gate::Data),
            polls: p,
        })
    });
    until("the task to wait", || {
        rt.mute_snapshot().actors.iter().any(|a| a.waiters == 1)
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(polls.load(SeqCst), 1, "polled while nothing changed");
    gate.send(Gate::Open).unwrap();
    producer().unwrap();
    assert_eq!(polls.load(SeqCst), 2, "one poll to wait, one to send");
    wait(rt);
    assert_eq!(data.load(SeqCst), 1);
}

#[test]
fn a_dropped_send_when_ready_leaves_no_waiter_and_sends_nothing() {
    let (rt, gate, data) = gated(1);
    {
        let mut pending = gate.send_when_ready(Gate::Data);
        let waker = Waker::from(Arc::new(Nothing));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut pending).poll(&mut cx).is_pending());
        assert_eq!(rt.mute_snapshot().actors[0].waiters, 1);
    }
    assert_eq!(rt.mute_snapshot().actors[0].waiters, 0);
    gate.send(Gate::Open).unwrap();
    wait(rt);
    assert_eq!(data.load(SeqCst), 0);
}

#[test]
fn the_futures_can_move_between_executor_threads() {
    fn is_send<T: Send>(_: &T) {}
    let rt = common::runtime(1);
    let doubler = rt.spawn(Doubler { kept: Vec::new() });
    let send = doubler.send_when_ready((2, ReplyTo::channel().0));
    is_send(&send);
    drop(send);
    let ask = doubler.ask_async::<u64>(|r| (2, r));
    is_send(&ask);
    drop(ask);
    wait(rt);
}

struct Nothing;
impl Wake for Nothing {
    fn wake(self: Arc<Self>) {}
}

/// Answers `(n, reply)` with `n * 2`, except: 0 is never answered (the handle is kept), 1 is
/// dropped unanswered.
struct Doubler {
    kept: Vec<ReplyTo<u64>>,
}

impl Actor for Doubler {
    type Msg = (u64, ReplyTo<u64>);
    fn handle(&mut self, _: &mut Context<Self>, (n, reply): Self::Msg) {
        match n {
            0 => self.kept.push(reply),
            1 => drop(reply),
            n => {
                let _ = reply.send(n * 2);
            }
        }
    }
}

#[test]
fn ask_async_answers_reports_no_reply_and_cancels_when_dropped() {
    let rt = common::runtime(2);
    let doubler = rt.spawn(Doubler { kept: Vec::new() });
    assert_eq!(block_on(doubler.ask_async(|r| (21, r))), Ok(42));
    assert_eq!(
        block_on(doubler.ask_async::<u64>(|r| (1, r))),
        Err(AskError::NoReply)
    );
    // Dropped before the answer: the replier gets it back.
    let (reply, answer) = ReplyTo::<u64>::channel();
    assert!(reply.is_wanted());
    drop(answer);
    assert!(!reply.is_wanted());
    assert_eq!(reply.send(9), Err(9));
    wait(rt);
}

enum Client {
    Go(u64, Duration),
    Answer(Result<u64, AskError>),
}

/// Asks the doubler from inside a behaviour and reports each outcome.
struct Asker {
    doubler: ActorRef<Doubler>,
    outcomes: mpsc::Sender<Result<u64, AskError>>,
}

impl Actor for Asker {
    type Msg = Client;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Client) {
        match msg {
            Client::Go(n, timeout) => {
                ctx.ask(&self.doubler, |r| (n, r), timeout, Client::Answer);
            }
            Client::Answer(outcome) => self.outcomes.send(outcome).unwrap(),
        }
    }
}

#[test]
fn context_ask_delivers_exactly_one_outcome_as_a_message() {
    let rt = common::runtime(2);
    let doubler = rt.spawn(Doubler { kept: Vec::new() });
    let (tx, rx) = mpsc::channel();
    let asker = rt.spawn(Asker {
        doubler: doubler.clone(),
        outcomes: tx,
    });
    let recv = || rx.recv_timeout(LIMIT).unwrap();
    asker.send(Client::Go(21, LIMIT)).unwrap();
    assert_eq!(recv(), Ok(42));
    asker.send(Client::Go(1, LIMIT)).unwrap();
    assert_eq!(recv(), Err(AskError::NoReply));
    let started = Instant::now();
    asker
        .send(Client::Go(0, Duration::from_millis(30)))
        .unwrap();
    assert_eq!(recv(), Err(AskError::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(30));
    // The timed-out handle is still held: answering it now gives the value back, and no second
    // outcome arrives.
    std::thread::sleep(Duration::from_millis(20));
    assert!(rx.try_recv().is_err());
    let report = wait(rt);
    assert!(rx.try_recv().is_err(), "one outcome per ask");
    assert_eq!(report.metrics.panics, 0);
}

/// Stops on its first message: asking it afterwards is refused.
struct Quits;
impl Actor for Quits {
    type Msg = (u64, ReplyTo<u64>);
    fn handle(&mut self, ctx: &mut Context<Self>, _: Self::Msg) {
        ctx.stop();
    }
}

struct AskQuitter {
    target: ActorRef<Quits>,
    outcomes: mpsc::Sender<Result<u64, AskError>>,
}

impl Actor for AskQuitter {
    type Msg = Client;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Client) {
        match msg {
            Client::Go(n, timeout) => ctx.ask(&self.target, |r| (n, r), timeout, Client::Answer),
            Client::Answer(outcome) => self.outcomes.send(outcome).unwrap(),
        }
    }
}

#[test]
fn context_ask_of_a_stopped_actor_reports_stopped() {
    let rt = common::runtime(1);
    let target = rt.spawn(Quits);
    let (reply, _answer) = ReplyTo::channel();
    target.send((0, reply)).unwrap();
    until("the stop", || target.is_stopped());
    let (tx, rx) = mpsc::channel();
    let asker = rt.spawn(AskQuitter {
        target,
        outcomes: tx,
    });
    asker.send(Client::Go(3, Duration::MAX)).unwrap();
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), Err(AskError::Stopped));
    wait(rt);
}
