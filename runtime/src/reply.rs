//! One-shot replies: to a thread waiting in [`ActorRef::ask`](crate::ActorRef::ask), to an async
//! task awaiting [`ActorRef::ask_async`](crate::ActorRef::ask_async), or to an actor as an
//! ordinary message ([`ReplyTo::to`], [`Context::ask`](crate::Context::ask)).
//!
//! The slot behind `ask` and `ask_async` is the `oneshot` crate's channel: one allocation, a
//! lock-free hand-over, a blocking receive with a deadline and a `Future` in one type. (It
//! replaced a mutex and a condition variable, which could serve no async waiter.) Dropping the
//! receiving side (a timed-out `ask`, a dropped `ask_async` future) makes the answer come back to
//! the replier, and dropping the [`ReplyTo`] unanswered tells the asker that none will come.

use crate::error::AskError;
use crate::Recipient;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Where an answer goes. Answer once with [`ReplyTo::send`]; dropping it unanswered tells the
/// asker that no reply will come ([`AskError::NoReply`]).
///
/// Inside the runtime, ask another actor with [`Context::ask`](crate::Context::ask), or by sending
/// it `ReplyTo::to(ctx.myself().recipient())`: the answer arrives as a message, and no behaviour
/// ever blocks.
pub struct ReplyTo<R> {
    target: Option<Target<R>>,
}

enum Target<R> {
    Waiter(oneshot::Sender<R>),
    Actor(Recipient<R>),
    /// An ask from inside an actor ([`Context::ask`](crate::Context::ask)): the first of the
    /// answer, the handle's drop and the timeout is delivered.
    Pending(Box<dyn Settle<R>>),
}

/// The asker's side of [`Context::ask`](crate::Context::ask): settled once, by whichever comes
/// first.
pub(crate) trait Settle<R>: Send {
    /// Delivers `result` to the asker unless it was settled already (then hands `result` back).
    fn settle(&self, result: Result<R, AskError>) -> Result<(), Result<R, AskError>>;
}

impl<R: Send + 'static> ReplyTo<R> {
    pub(crate) fn waiter(sender: oneshot::Sender<R>) -> Self {
        ReplyTo {
            target: Some(Target::Waiter(sender)),
        }
    }

    pub(crate) fn pending(settle: Box<dyn Settle<R>>) -> Self {
        ReplyTo {
            target: Some(Target::Pending(settle)),
        }
    }

    /// A fresh reply handle and the future of its answer, for requests that are not sent by
    /// [`ask_async`](crate::ActorRef::ask_async): say, a request sent with
    /// [`send_when_ready`](crate::ActorRef::send_when_ready) so that the asker waits for a
    /// pressured receiver, or one handed to another component.
    ///
    /// ```
    /// let (reply, answer) = rein::ReplyTo::<u32>::channel();
    /// reply.send(7).unwrap();
    /// drop(answer); // the answer was there; nothing is left behind
    /// ```
    pub fn channel() -> (ReplyTo<R>, AskFuture<R>) {
        let (reply, rx) = slot();
        (reply, AskFuture::waiting(rx))
    }

    /// A reply handle that delivers the answer to an actor as a message.
    pub fn to(recipient: Recipient<R>) -> Self {
        ReplyTo {
            target: Some(Target::Actor(recipient)),
        }
    }

    /// Answers. Gives the value back if nobody can receive it any more (the asker timed out, gave
    /// up, or the replying-to actor stopped).
    pub fn send(mut self, value: R) -> Result<(), R> {
        match self.target.take() {
            Some(Target::Waiter(sender)) => sender.send(value).map_err(|e| e.into_inner()),
            Some(Target::Actor(recipient)) => recipient.send(value).map_err(|e| e.into_inner()),
            Some(Target::Pending(settle)) => settle.settle(Ok(value)).map_err(|back| match back {
                Ok(value) => value,
                Err(_) => unreachable!("the value handed back is the one given"),
            }),
            None => Err(value),
        }
    }

    /// Whether an answer would still be received: the asker is still waiting (or the actor it
    /// points to is alive). A replier with costly work can skip it once this is false.
    pub fn is_wanted(&self) -> bool {
        match &self.target {
            Some(Target::Waiter(sender)) => !sender.is_closed(),
            Some(Target::Actor(recipient)) => !recipient.is_stopped(),
            Some(Target::Pending(_)) => true,
            None => false,
        }
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        // A waiter hears `NoReply` from the sender's drop; a pending ask is told here.
        if let Some(Target::Pending(settle)) = self.target.take() {
            let _ = settle.settle(Err(AskError::NoReply));
        }
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyTo(..)")
    }
}

/// A new reply slot: the handle to send with the request, and the receiving side.
pub(crate) fn slot<R: Send + 'static>() -> (ReplyTo<R>, oneshot::Receiver<R>) {
    let (tx, rx) = oneshot::channel();
    (ReplyTo::waiter(tx), rx)
}

/// Waits for the answer on the calling thread. A timeout too large to be represented as an
/// instant means no deadline. Returning drops the receiver, so a late answer is handed back.
pub(crate) fn wait<R>(rx: oneshot::Receiver<R>, timeout: Duration) -> Result<R, AskError> {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => rx.recv_deadline(deadline).map_err(|e| match e {
            oneshot::RecvTimeoutError::Timeout => AskError::Timeout,
            oneshot::RecvTimeoutError::Disconnected => AskError::NoReply,
        }),
        None => rx.recv().map_err(|_| AskError::NoReply),
    }
}

/// The future of [`ActorRef::ask_async`](crate::ActorRef::ask_async): resolves to the answer, or
/// to why none will come.
///
/// It has no timeout of its own: use your async runtime's (`tokio::time::timeout`, say).
/// Dropping it cancels the ask cleanly: the replier's [`ReplyTo::send`] then hands the answer
/// back, and [`ReplyTo::is_wanted`] turns false.
#[must_use = "futures do nothing unless awaited"]
pub struct AskFuture<R> {
    state: Result<oneshot::Receiver<R>, Option<AskError>>,
}

impl<R> AskFuture<R> {
    pub(crate) fn waiting(rx: oneshot::Receiver<R>) -> Self {
        AskFuture { state: Ok(rx) }
    }

    pub(crate) fn failed(error: AskError) -> Self {
        AskFuture {
            state: Err(Some(error)),
        }
    }
}

impl<R> Future for AskFuture<R> {
    type Output = Result<R, AskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            Ok(rx) => Pin::new(rx).poll(cx).map_err(|_| AskError::NoReply),
            Err(error) => Poll::Ready(Err(error
                .take()
                .expect("AskFuture polled after it completed"))),
        }
    }
}

impl<R> std::fmt::Debug for AskFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AskFuture(..)")
    }
}
