//! [`ActorRef`]: the typed address of an actor.

use crate::cell::{Cell, Header, Runnable, Task};
use crate::error::{AskError, SendError, TrySendError};
use crate::reply::{OneShot, ReplyTo};
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

    /// Sends `msg`. Never blocks. If the actor has stopped (or its runtime has shut down) the
    /// message comes back in the error.
    ///
    /// Sent from inside a behaviour to an actor that is overloaded, under pressure or muted, it
    /// mutes the sending actor once that behaviour returns (see the crate docs on backpressure).
    #[inline]
    pub fn send(&self, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
        self.cell
            .send(msg, || self.cell.clone() as Task)
            .map_err(SendError)
    }

    /// Sends a request built around a fresh [`ReplyTo`] and waits up to `timeout` for the answer
    /// (a timeout too large to be represented as an instant, such as `Duration::MAX`, means no
    /// deadline). For code outside the runtime; on a worker thread it fails with
    /// [`AskError::OnWorkerThread`] rather than block other actors.
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
        let shot = Arc::new(OneShot::new());
        self.send(request(ReplyTo::waiter(shot.clone())))
            .map_err(|_| AskError::Stopped)?;
        shot.wait(timeout)
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
    ///         Err(TrySendError::Stopped(_)) => unreachable!(),
    ///     }
    /// }
    /// assert_eq!(sent + refused, 1_000);
    /// rt.wait();
    /// ```
    pub fn try_send(&self, msg: A::Msg) -> Result<(), TrySendError<A::Msg>> {
        if self.is_stopped() {
            return Err(TrySendError::Stopped(msg));
        }
        if self.is_pressured() {
            return Err(TrySendError::Pressured(msg));
        }
        self.send_ignoring_pressure(msg)
            .map_err(|e| TrySendError::Stopped(e.0))
    }

    /// A pressure-aware send for threads outside the runtime: waits (sleeping, with backoff up
    /// to 1 ms) while the receiver is pressured, up to `timeout`, then gives the message back.
    /// A timeout too large to be represented as an instant (`Duration::MAX`) means no deadline.
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
        let deadline = std::time::Instant::now().checked_add(timeout);
        let mut pause = Duration::from_micros(20);
        let mut msg = msg;
        loop {
            match self.try_send(msg) {
                Err(TrySendError::Pressured(m)) => {
                    let now = std::time::Instant::now();
                    let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
                    if left.is_zero() {
                        return Err(TrySendError::Pressured(m));
                    }
                    msg = m;
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
                other => return other,
            }
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
