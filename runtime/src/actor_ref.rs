//! [`ActorRef`]: the typed address of an actor.

use crate::cell::{Cell, Header, Runnable, Task};
use crate::error::{AskError, SendError, SendFailure, TrySendError};
use crate::outside::{self, Ready, SendTarget, SendWhenReady};
use crate::quick_answer::InFlight;
use crate::reply::{self, AskFuture, ReplyTo};
use crate::{Actor, ActorId, Recipient};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The address of an actor: cheap to clone, `Send + Sync`, usable from any thread.
///
/// Holding one keeps the actor's memory alive, not the runtime: the runtime still ends when
/// every actor is quiescent.
pub struct ActorRef<A: Actor> {
    cell: Arc<Cell<A>>,
}

impl<A: Actor> ActorRef<A> {
    pub(crate) fn from_cell(cell: Arc<Cell<A>>) -> Self {
        ActorRef { cell }
    }

    pub(crate) fn header(&self) -> &Header {
        self.cell.header()
    }

    /// Sends `msg`. Never blocks. If the actor has stopped or its runtime has ended, the message
    /// comes back in the error, whose [`reason`](SendError::reason) says which.
    ///
    /// Sent from inside a behaviour to an actor that is overloaded, under pressure or muted, it
    /// mutes the sending actor once that behaviour returns (see the crate docs on backpressure).
    ///
    /// **From a thread outside the runtime it is never held back**: nothing mutes a plain thread,
    /// so a loop of `send`s outruns a slower actor and its mailbox grows without bound. Feed a
    /// runtime from outside with [`send_blocking`](ActorRef::send_blocking) (a thread) or
    /// [`send_when_ready`](ActorRef::send_when_ready) (an async task), which wait while the
    /// receiver is overloaded, exactly as a muted actor would.
    #[inline]
    pub fn send(&self, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
        self.cell
            .send(msg, || self.cell.clone() as Task)
            .map_err(|msg| SendError::new(msg, self.header().refusal_now()))
    }

    /// Sends from a thread outside the runtime, honouring backpressure: waits while the
    /// receiver blocks (overloaded, under pressure, or muted), then queues `msg`. The thread is
    /// woken by whoever unblocks the receiver (its recovery to the low watermark, the release of
    /// its pressure, its last unmute, its stop), never by polling. This is muting for threads: a
    /// producer that feeds a slow pipeline this way keeps every mailbox within its bound.
    ///
    /// Hands the message back if the actor stops or the runtime ends (also while waiting), and
    /// at once on a worker thread of a runtime ([`SendFailure::OnWorkerThread`]): there, waiting
    /// would hold up other actors, and a behaviour's plain `send` is paced by muting anyway.
    ///
    /// Only the receiver's recovery ends the wait, so it waits for as long as the receiver
    /// cannot drain: a receiver under pressure that is never released, or (in
    /// [deterministic mode](crate::Builder::deterministic), where nothing runs before
    /// [`Runtime::wait`](crate::Runtime::wait)) an overloaded receiver before `wait` is called.
    /// Use [`send_timeout`](ActorRef::send_timeout) where that can happen.
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime};
    ///
    /// struct Slow;
    /// impl Actor for Slow {
    ///     type Msg = u64;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u64) {
    ///         std::thread::sleep(std::time::Duration::from_micros(5));
    ///     }
    /// }
    ///
    /// let rt = Runtime::builder().watermarks(16, 64).build().unwrap();
    /// let slow = rt.spawn(Slow);
    /// let mut peak = 0;
    /// for i in 0..2_000 {
    ///     slow.send_blocking(i).unwrap(); // waits whenever 64 are queued
    ///     peak = peak.max(slow.backlog());
    /// }
    /// assert!(peak <= 65, "one past the high watermark at most, got {peak}");
    /// rt.wait();
    /// ```
    pub fn send_blocking(&self, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
        if crate::scheduler::on_worker_thread() {
            return Err(SendError::new(msg, SendFailure::OnWorkerThread));
        }
        match outside::wait_ready(self.header(), None) {
            Ready::Now => self.send(msg),
            Ready::Refused(reason) => Err(SendError::new(msg, reason)),
            Ready::TimedOut => unreachable!("no deadline"),
        }
    }

    /// Sends from an async task, honouring backpressure: the future waits while the receiver
    /// blocks (overloaded, under pressure, or muted), then queues `msg` and resolves. The task
    /// is woken by whoever unblocks the receiver, as a muted actor is resumed, and never polls:
    /// an async producer feeding rein slows down exactly as a muted actor would, and memory stays
    /// bounded. It needs no particular async runtime.
    ///
    /// Resolves to an error with the message if the actor stops or the runtime ends. Dropping
    /// the future gives up the send (and drops the message). Several tasks waiting on one
    /// receiver each add at most one message past its high watermark when they are woken.
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     // A minimal executor, so the example needs no async runtime.
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark {
    /// #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
    /// #     }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) { return out; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    ///
    /// struct Sink;
    /// impl Actor for Sink {
    ///     type Msg = u64;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u64) {}
    /// }
    ///
    /// let rt = Runtime::new().unwrap();
    /// let sink = rt.spawn(Sink);
    /// block_on(async {
    ///     for i in 0..10_000 {
    ///         sink.send_when_ready(i).await.unwrap();
    ///     }
    /// });
    /// rt.wait();
    /// ```
    pub fn send_when_ready(&self, msg: A::Msg) -> SendWhenReady<'_, A::Msg> {
        SendWhenReady::new(self, msg)
    }

    /// Sends a request built around a fresh [`ReplyTo`] and waits up to `timeout` for the answer
    /// (a timeout too large to be represented as an instant, such as `Duration::MAX`, means no
    /// deadline). For code outside the runtime; on a worker thread it fails with
    /// [`AskError::OnWorkerThread`] rather than block other actors (inside a behaviour, use
    /// [`Context::ask`](crate::Context::ask)).
    ///
    /// ```
    /// use rein::{Actor, Context, ReplyTo, Runtime};
    /// use std::time::Duration;
    ///
    /// struct Doubler;
    /// impl Actor for Doubler {
    ///     type Msg = (u32, ReplyTo<u32>);
    ///     fn handle(&mut self, _: &mut Context<Self>, (n, reply): Self::Msg) {
    ///         let _ = reply.send(n * 2);
    ///     }
    /// }
    ///
    /// let rt = rein::Runtime::new().unwrap();
    /// let doubler = rt.spawn(Doubler);
    /// assert_eq!(doubler.ask(|r| (21, r), Duration::from_secs(5)), Ok(42));
    /// ```
    pub fn ask<R: Send + 'static>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> A::Msg,
        timeout: Duration,
    ) -> Result<R, AskError> {
        if crate::scheduler::on_worker_thread() {
            return Err(AskError::OnWorkerThread);
        }
        let (reply_to, rx) = reply::slot();
        let ask = InFlight::new();
        self.send(request(reply_to)).map_err(|e| ask_refused(&e))?;
        reply::wait(rx, ask, timeout)
    }

    /// Sends a request built around a fresh [`ReplyTo`] and returns a future for the answer, for
    /// async code (any executor: the future is woken by the reply, nothing polls). It has no
    /// timeout of its own: wrap it in your runtime's (`tokio::time::timeout`, say). Dropping the
    /// future cancels the ask: the actor's [`ReplyTo::send`] then hands the answer back.
    ///
    /// When this is the only ask awaited in the process, the future's first poll waits up to
    /// 20 µs for the answer before it returns `Pending`: a quick actor's answer then costs no
    /// wake-up on either side (a round trip from a tokio task: about 0.3 µs rather than 16).
    /// A thread whose waits stop paying stops waiting; see `docs/architecture.md`, 5.9.1.
    ///
    /// The request is a plain [`send`](ActorRef::send): it does not wait for a pressured
    /// receiver. To ask at the pace the receiver sets, `send_when_ready` a request built around
    /// a [`ReplyTo`] from [`ReplyTo::channel`] instead.
    ///
    /// ```
    /// use rein::{Actor, Context, ReplyTo, Runtime};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl std::task::Wake for Unpark {
    /// #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
    /// #     }
    /// #     let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) { return out; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    ///
    /// struct Doubler;
    /// impl Actor for Doubler {
    ///     type Msg = (u32, ReplyTo<u32>);
    ///     fn handle(&mut self, _: &mut Context<Self>, (n, reply): Self::Msg) {
    ///         let _ = reply.send(n * 2);
    ///     }
    /// }
    ///
    /// let rt = Runtime::new().unwrap();
    /// let doubler = rt.spawn(Doubler);
    /// let answer = block_on(doubler.ask_async(|reply| (21, reply)));
    /// assert_eq!(answer, Ok(42));
    /// ```
    pub fn ask_async<R: Send + 'static>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> A::Msg,
    ) -> AskFuture<R> {
        let (reply_to, rx) = reply::slot();
        let ask = InFlight::new();
        match self.send(request(reply_to)) {
            Ok(()) => AskFuture::asked(rx, ask),
            Err(refused) => AskFuture::failed(ask_refused(&refused)),
        }
    }

    /// Sends `msg` without muting the calling actor, whatever state the receiver is in: the
    /// trade-off is in the name. [`send`](ActorRef::send) from a behaviour to an overloaded,
    /// pressured or muted receiver mutes the sender until the receiver recovers; this does not,
    /// so the sender keeps running and one slow receiver cannot stall it (a hub writing to many
    /// clients, a broadcaster, a watchdog).
    ///
    /// **The risk:** nothing then bounds the receiver's mailbox. Every message sent this way
    /// while the receiver is behind adds to its backlog, so use it for messages that are few
    /// or small, or together with [`is_pressured`](ActorRef::is_pressured) to decide what to
    /// drop. The receiver still counts as overloaded, and senders that use plain `send` are
    /// still muted on it. From outside the runtime it is the same as `send`.
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime};
    ///
    /// struct Slow;
    /// impl Actor for Slow {
    ///     type Msg = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u32) {
    ///         std::thread::sleep(std::time::Duration::from_micros(50));
    ///     }
    /// }
    ///
    /// /// Sends 2,000 messages in one behaviour and is never muted for it.
    /// struct Hub { to: rein::ActorRef<Slow> }
    /// impl Actor for Hub {
    ///     type Msg = ();
    ///     fn handle(&mut self, _: &mut Context<Self>, (): ()) {
    ///         for n in 0..2_000 {
    ///             let _ = self.to.send_ignoring_pressure(n);
    ///         }
    ///     }
    /// }
    ///
    /// let rt = Runtime::builder().watermarks(4, 16).build().unwrap();
    /// let slow = rt.spawn(Slow);
    /// rt.spawn(Hub { to: slow }).send(()).unwrap();
    /// let report = rt.wait();
    /// assert_eq!(report.metrics.mutes, 0);
    /// ```
    pub fn send_ignoring_pressure(&self, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
        crate::scheduler::ignoring_pressure(|| self.send(msg))
    }

    /// Whether a send now would land on a receiver that mutes its senders: overloaded (backlog
    /// at the high watermark), under pressure, or itself muted.
    pub fn is_pressured(&self) -> bool {
        pressured(self.header(), self.cell.backlog())
    }

    /// A pressure-aware send that never blocks and never mutes: fails fast with the message
    /// returned while the receiver [is pressured](ActorRef::is_pressured). For threads outside
    /// the runtime, which cannot be muted, and for actors that would rather drop, keep or
    /// reroute a message than be muted on a slow receiver. A send it accepts does not mute the
    /// calling actor either, even if it is the one that takes the receiver to its high
    /// watermark, so the receiver's backlog stays within its high watermark plus one message per
    /// racing sender.
    ///
    /// ```
    /// use rein::{Actor, Context, Runtime, TrySendError};
    ///
    /// struct Sink;
    /// impl Actor for Sink {
    ///     type Msg = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u32) {}
    /// }
    ///
    /// let rt = Runtime::builder().watermarks(2, 8).build().unwrap();
    /// let sink = rt.spawn(Sink);
    /// let (mut sent, mut refused) = (0, 0);
    /// for n in 0..1_000 {
    ///     match sink.try_send(n) {
    ///         Ok(()) => sent += 1,
    ///         Err(TrySendError::Pressured(_)) => refused += 1, // dropped, kept or retried later
    ///         Err(_) => unreachable!("the sink runs until the end"),
    ///     }
    /// }
    /// assert_eq!(sent + refused, 1_000);
    /// rt.wait();
    /// ```
    pub fn try_send(&self, msg: A::Msg) -> Result<(), TrySendError<A::Msg>> {
        if let Some(reason) = self.header().refusal(self.header().word().load()) {
            return Err(SendError::new(msg, reason).into());
        }
        if self.is_pressured() {
            return Err(TrySendError::Pressured(msg));
        }
        self.send_ignoring_pressure(msg).map_err(TrySendError::from)
    }

    /// [`send_blocking`](ActorRef::send_blocking) with a deadline: waits up to `timeout` while
    /// the receiver blocks, then gives the message back as [`TrySendError::Pressured`]. Woken by
    /// the receiver's unblocking, like `send_blocking`, not by polling. A timeout too large to be
    /// represented as an instant (`Duration::MAX`) means no deadline. On a worker thread it
    /// refuses at once ([`TrySendError::OnWorkerThread`]), as [`ask`](ActorRef::ask) does.
    ///
    /// ```
    /// # use rein::{Actor, Context};
    /// # struct Sink;
    /// # impl Actor for Sink { type Msg = u64; fn handle(&mut self, _: &mut Context<Self>, _: u64) {} }
    /// let rt = rein::Runtime::new().unwrap();
    /// let sink = rt.spawn(Sink);
    /// for i in 0..10_000 {
    ///     // Never lets the backlog run far past the high watermark.
    ///     sink.send_timeout(i, std::time::Duration::from_secs(10)).unwrap();
    /// }
    /// rt.wait();
    /// ```
    pub fn send_timeout(&self, msg: A::Msg, timeout: Duration) -> Result<(), TrySendError<A::Msg>> {
        if crate::scheduler::on_worker_thread() {
            return Err(TrySendError::OnWorkerThread(msg));
        }
        let deadline = std::time::Instant::now().checked_add(timeout);
        match outside::wait_ready(self.header(), deadline) {
            Ready::Now => self.send(msg).map_err(TrySendError::from),
            Ready::Refused(reason) => Err(SendError::new(msg, reason).into()),
            Ready::TimedOut => Err(TrySendError::Pressured(msg)),
        }
    }

    /// A type-erased address for any message type this actor's message can be built from.
    pub fn recipient<M: Send + 'static>(&self) -> Recipient<M>
    where
        A::Msg: From<M>,
    {
        Recipient::new::<A>(self.cell.clone())
    }

    /// The actor's identity.
    pub fn id(&self) -> ActorId {
        self.header().id
    }

    /// Whether the actor has stopped (sends would fail).
    pub fn is_stopped(&self) -> bool {
        !self.header().is_open()
    }

    /// Messages queued and not yet handled: a cheap, racy reading.
    pub fn backlog(&self) -> usize {
        self.cell.backlog()
    }
}

/// Whether a send now would land on a receiver that mutes its senders (see
/// [`ActorRef::is_pressured`]), given the receiver's header and backlog.
pub(crate) fn pressured(header: &Header, backlog: usize) -> bool {
    let word = header.word().load();
    crate::mute::is_blocking(word)
        || (header.shared.config.backpressure && backlog >= header.watermarks(word).1)
}

/// Why a request could not be sent, as an ask reports it.
pub(crate) fn ask_refused<M>(refused: &SendError<M>) -> AskError {
    match refused.reason() {
        SendFailure::RuntimeEnded => AskError::RuntimeEnded,
        _ => AskError::Stopped,
    }
}

impl<A: Actor> SendTarget<A::Msg> for ActorRef<A> {
    fn target_header(&self) -> Option<&Header> {
        Some(self.header())
    }

    fn deliver(&self, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
        self.send(msg)
    }
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef {
            cell: self.cell.clone(),
        }
    }
}

impl<A: Actor> PartialEq for ActorRef<A> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.cell, &other.cell)
    }
}

impl<A: Actor> Eq for ActorRef<A> {}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef({})", self.id())
    }
}
