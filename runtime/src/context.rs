//! What a behaviour can do besides touching its own state.

use crate::cell::Cell;
use crate::monitor::ActorDown;
use crate::reply::{ReplyTo, Settle};
use crate::scheduler::Worker;
use crate::{Actor, ActorId, ActorRef, AskError, RuntimeHandle};
use crate::{BuildError, Timer};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

fn once<M: Send + 'static>(msg: M) -> impl FnMut() -> Option<M> + Send + 'static {
    let mut msg = Some(msg);
    move || msg.take()
}

/// Handed to every behaviour: the actor's own reference, spawning, stopping and monitoring.
pub struct Context<'a, A: Actor> {
    cell: &'a Arc<Cell<A>>,
    worker: Option<&'a Worker>,
    stop: bool,
}

impl<'a, A: Actor> Context<'a, A> {
    pub(crate) fn new(cell: &'a Arc<Cell<A>>, worker: Option<&'a Worker>) -> Self {
        Context {
            cell,
            worker,
            stop: false,
        }
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop
    }

    /// This actor's own reference, to hand out or to send to itself (a send to self never mutes).
    pub fn myself(&self) -> ActorRef<A> {
        ActorRef::from_cell(self.cell.clone())
    }

    /// This actor's identity.
    pub fn id(&self) -> ActorId {
        crate::cell::Runnable::header(&**self.cell).id
    }

    /// Spawns a child actor on this runtime. It starts on this worker unless another steals it.
    pub fn spawn<B: Actor>(&self, actor: B) -> ActorRef<B> {
        let shared = &crate::cell::Runnable::header(&**self.cell).shared;
        shared.spawn(actor, self.worker)
    }

    /// Stops this actor once the current behaviour returns: `stopped` runs, queued messages are
    /// dropped and counted, monitors are told, and later sends fail with the message returned.
    pub fn stop(&mut self) {
        self.stop = true;
    }

    /// A handle on the runtime this actor runs on.
    pub fn runtime(&self) -> RuntimeHandle {
        RuntimeHandle::new(crate::cell::Runnable::header(&**self.cell).shared.clone())
    }

    /// Asks to be told, with an [`ActorDown`] message, when `target` stops (at once if it has).
    pub fn monitor<B: Actor>(&self, target: &ActorRef<B>)
    where
        A::Msg: From<ActorDown>,
    {
        let me = self.myself();
        target
            .header()
            .add_monitor(Box::new(move |down: &ActorDown| {
                // If the watcher has stopped too there is nobody left to tell.
                let _ = me.send(A::Msg::from(down.clone()));
            }));
    }

    /// Asks `target` without blocking: sends it the request built around a fresh [`ReplyTo`], and
    /// delivers the outcome to this actor as a message, built by `answer` from the reply, or from
    /// why none came: [`AskError::Timeout`] once `timeout` has passed,
    /// [`AskError::NoReply`] if `target` dropped the handle unanswered, [`AskError::Stopped`] if it
    /// had stopped. Exactly one of these arrives, whichever comes first; a reply after the
    /// timeout is handed back to the replier.
    ///
    /// Until the outcome arrives, the ask keeps the runtime from ending by quiescence (a
    /// timeout too large to be represented, such as `Duration::MAX`, means none: the outcome then
    /// comes only from the reply or the handle's drop). `answer` runs on whichever thread settles
    /// the ask (the replier's, the worker that fires the timeout, a drop); a panic in it loses the outcome and
    /// is counted in [`Metrics::panics`](crate::Metrics::panics).
    ///
    /// ```
    /// use rein::{Actor, ActorRef, AskError, Context, ReplyTo, Runtime};
    /// use std::time::Duration;
    ///
    /// struct Store;
    /// impl Actor for Store {
    ///     type Msg = (String, ReplyTo<usize>);
    ///     fn handle(&mut self, _: &mut Context<Self>, (key, reply): Self::Msg) {
    ///         let _ = reply.send(key.len());
    ///     }
    /// }
    ///
    /// enum Msg {
    ///     Start,
    ///     Answer(Result<usize, AskError>),
    /// }
    ///
    /// struct Client { store: ActorRef<Store>, got: std::sync::mpsc::Sender<usize> }
    /// impl Actor for Client {
    ///     type Msg = Msg;
    ///     fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) {
    ///         match msg {
    ///             Msg::Start => ctx.ask(
    ///                 &self.store,
    ///                 |reply| ("apple".to_string(), reply),
    ///                 Duration::from_secs(5),
    ///                 Msg::Answer,
    ///             ),
    ///             Msg::Answer(result) => self.got.send(result.unwrap()).unwrap(),
    ///         }
    ///     }
    /// }
    ///
    /// let rt = Runtime::new().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let store = rt.spawn(Store);
    /// rt.spawn(Client { store, got: tx }).send(Msg::Start).unwrap();
    /// rt.wait();
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn ask<B: Actor, R: Send + 'static>(
        &self,
        target: &ActorRef<B>,
        request: impl FnOnce(ReplyTo<R>) -> B::Msg,
        timeout: Duration,
        answer: impl FnOnce(Result<R, AskError>) -> A::Msg + Send + 'static,
    ) {
        let pending = Arc::new(PendingAsk {
            settle: Mutex::new(Some((answer, self.myself()))),
            timer: Mutex::new(None),
        });
        if let Err(refused) = target.send(request(ReplyTo::pending(Box::new(pending.clone())))) {
            // The request (and the handle in it) is dropped first: that settles `NoReply`
            // unless we settle with the real reason before.
            let reason = crate::actor_ref::ask_refused(&refused);
            let _ = pending.settle(Err(reason));
            drop(refused);
            return;
        }
        if timeout == Duration::MAX {
            return;
        }
        let shared = &crate::cell::Runnable::header(&**self.cell).shared;
        let on_timeout = pending.clone();
        let fire = Box::new(move || {
            let _ = on_timeout.settle(Err(AskError::Timeout));
            false
        });
        let timer = shared.timers.add(timeout, None, Some(shared), fire);
        *pending.timer.lock() = Some(timer);
        // Settled before the timer was stored: it is no longer needed.
        if pending.settle.lock().is_none() {
            if let Some(timer) = pending.timer.lock().take() {
                timer.cancel();
            }
        }
    }

    /// Delivers `msg` to this actor after `delay`. The timer does not keep the runtime alive:
    /// if everything else is done, the runtime ends without waiting for it (see
    /// [`after_keeping_alive`](Context::after_keeping_alive)).
    ///
    /// A delay too large to be represented as an instant (`Duration::MAX`) means never: the timer
    /// stays pending until cancelled. The same holds for every timer method.
    pub fn after(&self, delay: Duration, msg: A::Msg) -> Timer {
        self.timer(delay, None, false, once(msg))
    }

    /// Like [`after`](Context::after), but the runtime does not end before the timer fires or is
    /// cancelled.
    pub fn after_keeping_alive(&self, delay: Duration, msg: A::Msg) -> Timer {
        self.timer(delay, None, true, once(msg))
    }

    /// Delivers a clone of `msg` every `period` until cancelled or this actor stops. It does not
    /// keep the runtime alive. The clone is made by the worker that fires the tick; if it panics, the timer
    /// ends (the panic is counted in [`Metrics::panics`](crate::Metrics::panics)) and the actor
    /// is told nothing.
    pub fn every(&self, period: Duration, msg: A::Msg) -> Timer
    where
        A::Msg: Clone,
    {
        self.timer(period, Some(period), false, move || Some(msg.clone()))
    }

    /// Like [`every`](Context::every), but the runtime does not end while the timer runs.
    pub fn every_keeping_alive(&self, period: Duration, msg: A::Msg) -> Timer
    where
        A::Msg: Clone,
    {
        self.timer(period, Some(period), true, move || Some(msg.clone()))
    }

    fn timer(
        &self,
        delay: Duration,
        period: Option<Duration>,
        keep_alive: bool,
        mut make: impl FnMut() -> Option<A::Msg> + Send + 'static,
    ) -> Timer {
        let shared = &crate::cell::Runnable::header(&**self.cell).shared;
        let target = self.myself();
        let fire = Box::new(move || match make() {
            Some(msg) => target.send(msg).is_ok(),
            None => false,
        });
        shared
            .timers
            .add(delay, period, keep_alive.then_some(shared), fire)
    }

    /// Gives this actor its own backlog watermarks instead of the runtime's (see
    /// [`Builder::watermarks`](crate::Builder::watermarks)): an actor whose messages are large
    /// (buffers, frames) can count itself overloaded after fewer of them. Requires
    /// `0 <= low < high <= u32::MAX`.
    ///
    /// ```
    /// use rein::{Actor, Context};
    /// struct Writer;
    /// impl Actor for Writer {
    ///     type Msg = Vec<u8>;
    ///     fn started(&mut self, ctx: &mut Context<Self>) {
    ///         // Senders are muted once 16 buffers are waiting, resumed at 4.
    ///         ctx.set_watermarks(4, 16).unwrap();
    ///         assert!(ctx.set_watermarks(4, 4).is_err());
    ///     }
    ///     fn handle(&mut self, _: &mut Context<Self>, _buf: Vec<u8>) {}
    /// }
    /// # let rt = rein::Runtime::new().unwrap();
    /// # rt.spawn(Writer);
    /// # rt.wait();
    /// ```
    pub fn set_watermarks(&self, low: usize, high: usize) -> Result<(), BuildError> {
        match (u32::try_from(low), u32::try_from(high)) {
            (Ok(l), Ok(h)) if l < h => {
                crate::cell::Runnable::header(&**self.cell).set_watermarks(l, h);
                Ok(())
            }
            _ => Err(BuildError::Watermarks { low, high }),
        }
    }

    /// This actor's backlog: messages queued for it and not yet handled (including the one
    /// being handled).
    pub fn backlog(&self) -> usize {
        crate::cell::Runnable::backlog(&**self.cell)
    }
}

/// An ask from inside an actor ([`Context::ask`]), settled once: by the reply, by the reply
/// handle's drop, or by the timeout, whichever comes first.
struct PendingAsk<A: Actor, F> {
    settle: Mutex<Option<(F, ActorRef<A>)>>,
    /// The timeout's timer, cancelled once settled so that it stops keeping the runtime alive.
    timer: Mutex<Option<Timer>>,
}

impl<A, R, F> Settle<R> for Arc<PendingAsk<A, F>>
where
    A: Actor,
    R: Send + 'static,
    F: FnOnce(Result<R, AskError>) -> A::Msg + Send + 'static,
{
    fn settle(&self, result: Result<R, AskError>) -> Result<(), Result<R, AskError>> {
        let Some((answer, asker)) = self.settle.lock().take() else {
            return Err(result);
        };
        if let Some(timer) = self.timer.lock().take() {
            timer.cancel();
        }
        if asker.is_stopped() {
            return Err(result);
        }
        // `answer` is the asker's code, run on the settling thread (a replier's behaviour, a
        // worker firing the timeout, whoever drops the handle): contain it, as a `Recipient`'s conversion.
        let counters = &asker.header().shared.counters;
        if let Some(msg) = counters.contained(move || answer(result)) {
            if let Err(refused) = asker.send(msg) {
                counters.dropped.inc();
                counters.contained(move || drop(refused));
            }
        }
        Ok(())
    }
}
