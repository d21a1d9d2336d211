//! Typed errors. Every failure hands back what it could not deliver.

use std::fmt;

/// Why a send was refused. Every refusal hands the message back in a [`SendError`] (or a
/// [`TrySendError`]); this says which of the reasons it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendFailure {
    /// The actor has stopped (it called [`Context::stop`](crate::Context::stop), panicked, or
    /// was stopped at shutdown) while its runtime may still run.
    ActorStopped,
    /// The runtime has ended: it became quiescent after [`Runtime::wait`](crate::Runtime::wait)
    /// was called, or it was shut down. Nothing is accepted any more, by any actor. A thread
    /// that feeds a runtime from outside holds a [`KeepAlive`](crate::KeepAlive) so that `wait`
    /// does not end the runtime under it.
    RuntimeEnded,
    /// A blocking send ([`ActorRef::send_blocking`](crate::ActorRef::send_blocking)) was made
    /// on a worker thread of a runtime, where waiting would hold up other actors. Inside a
    /// behaviour, a plain `send` is already paced by muting.
    OnWorkerThread,
}

impl SendFailure {
    fn describe(self) -> &'static str {
        match self {
            SendFailure::ActorStopped => "the actor has stopped",
            SendFailure::RuntimeEnded => "the runtime has ended (quiescent or shut down)",
            SendFailure::OnWorkerThread => {
                "a blocking send would hold up a runtime worker; send from a behaviour instead"
            }
        }
    }
}

impl fmt::Display for SendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A send that was refused: the actor has stopped, its runtime has ended, or (for a blocking
/// send) the caller is a worker thread. The message is returned, never silently dropped, and
/// [`reason`](SendError::reason) says which it was.
///
/// ```
/// use rein::{Actor, Context, Runtime, SendFailure};
///
/// struct Sink;
/// impl Actor for Sink {
///     type Msg = u32;
///     fn handle(&mut self, _: &mut Context<Self>, _: u32) {}
/// }
///
/// let rt = Runtime::new().unwrap();
/// let sink = rt.spawn(Sink);
/// rt.wait(); // quiescent: the runtime ends
/// let refused = sink.send(7).unwrap_err();
/// assert_eq!(refused.reason(), SendFailure::RuntimeEnded);
/// assert_eq!(format!("{refused:?}"), "SendError(RuntimeEnded, ..)");
/// assert_eq!(refused.into_inner(), 7);
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<M> {
    msg: M,
    reason: SendFailure,
}

impl<M> SendError<M> {
    pub(crate) fn new(msg: M, reason: SendFailure) -> Self {
        SendError { msg, reason }
    }

    /// Takes the undelivered message back.
    pub fn into_inner(self) -> M {
        self.msg
    }

    /// The undelivered message.
    pub fn message(&self) -> &M {
        &self.msg
    }

    /// Why the send was refused.
    pub fn reason(&self) -> SendFailure {
        self.reason
    }

    /// The same refusal with the message converted: for wrappers that send an envelope and hand
    /// back what was inside it.
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> SendError<N> {
        SendError {
            msg: f(self.msg),
            reason: self.reason,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SendError({:?}, ..)", self.reason)
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; the message is returned", self.reason)
    }
}

impl<M> std::error::Error for SendError<M> {}

/// A spawn through a [`RuntimeHandle`](crate::RuntimeHandle) whose runtime no longer runs
/// (quiescent, shut down, or finished). The actor is returned, never run and never dropped.
///
/// It is boxed so that `Result<ActorRef<A>, SpawnError<A>>` stays small whatever the actor's
/// size; a refused spawn is rare and pays for the allocation.
pub struct SpawnError<A> {
    actor: Box<A>,
}

impl<A> SpawnError<A> {
    pub(crate) fn new(actor: A) -> Self {
        SpawnError {
            actor: Box::new(actor),
        }
    }

    /// Takes the actor back.
    pub fn into_inner(self) -> A {
        *self.actor
    }
}

impl<A> fmt::Debug for SpawnError<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpawnError(..)")
    }
}

impl<A> fmt::Display for SpawnError<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the runtime has ended; the actor is returned")
    }
}

impl<A> std::error::Error for SpawnError<A> {}

/// Why an ask ([`ActorRef::ask`](crate::ActorRef::ask),
/// [`ActorRef::ask_async`](crate::ActorRef::ask_async), [`Context::ask`](crate::Context::ask))
/// produced no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskError {
    /// The actor had stopped; the request was not delivered.
    Stopped,
    /// The runtime had ended (quiescent or shut down); the request was not delivered.
    RuntimeEnded,
    /// No answer within the timeout.
    Timeout,
    /// The actor dropped the [`ReplyTo`](crate::ReplyTo) without answering (or stopped first).
    NoReply,
    /// `ask` was called on a runtime worker thread, where waiting would block other actors. From
    /// inside an actor, send a [`ReplyTo::to`](crate::ReplyTo::to) that points back at yourself.
    OnWorkerThread,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AskError::Stopped => "the actor has stopped",
            AskError::RuntimeEnded => "the runtime has ended (quiescent or shut down)",
            AskError::Timeout => "no reply before the timeout",
            AskError::NoReply => "the actor dropped the reply handle without answering",
            AskError::OnWorkerThread => {
                "ask would block a runtime worker; reply to an actor with ReplyTo::to instead"
            }
        })
    }
}

impl std::error::Error for AskError {}

/// A runtime configuration that cannot work.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `threads(0)`: a runtime needs at least one worker.
    ZeroThreads,
    /// `batch(0)`: an actor must handle at least one message per turn.
    ZeroBatch,
    /// The low watermark must be below the high one, and the high one above zero.
    Watermarks {
        /// The low watermark asked for.
        low: usize,
        /// The high watermark asked for.
        high: usize,
    },
    /// The operating system refused to start a worker thread.
    Spawn(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroThreads => f.write_str("a runtime needs at least one worker thread"),
            BuildError::ZeroBatch => f.write_str("the batch size must be at least 1"),
            BuildError::Watermarks { low, high } => write!(
                f,
                "backlog watermarks must satisfy 0 <= low < high (got low {low}, high {high})"
            ),
            BuildError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// A pressure-aware send from outside the runtime ([`ActorRef::try_send`](crate::ActorRef::try_send),
/// [`ActorRef::send_timeout`](crate::ActorRef::send_timeout)) that did not go through. The
/// message is returned.
#[derive(PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum TrySendError<M> {
    /// The receiver is overloaded, under pressure or muted (and stayed so until the timeout).
    Pressured(M),
    /// The receiver has stopped.
    Stopped(M),
    /// The runtime has ended (quiescent or shut down): no actor accepts anything any more.
    RuntimeEnded(M),
    /// A waiting send ([`send_timeout`](crate::ActorRef::send_timeout)) was made on a worker
    /// thread, where waiting would hold up other actors.
    OnWorkerThread(M),
}

impl<M> TrySendError<M> {
    /// Takes the undelivered message back.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Pressured(m)
            | TrySendError::Stopped(m)
            | TrySendError::RuntimeEnded(m)
            | TrySendError::OnWorkerThread(m) => m,
        }
    }

    /// Why the send was refused for good, or `None` if the receiver was only pressured.
    pub fn reason(&self) -> Option<SendFailure> {
        match self {
            TrySendError::Pressured(_) => None,
            TrySendError::Stopped(_) => Some(SendFailure::ActorStopped),
            TrySendError::RuntimeEnded(_) => Some(SendFailure::RuntimeEnded),
            TrySendError::OnWorkerThread(_) => Some(SendFailure::OnWorkerThread),
        }
    }

    /// Whether the receiver has stopped or its runtime has ended: no later send will succeed.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            TrySendError::Stopped(_) | TrySendError::RuntimeEnded(_)
        )
    }
}

impl<M> From<SendError<M>> for TrySendError<M> {
    fn from(e: SendError<M>) -> Self {
        match e.reason {
            SendFailure::ActorStopped => TrySendError::Stopped(e.msg),
            SendFailure::RuntimeEnded => TrySendError::RuntimeEnded(e.msg),
            SendFailure::OnWorkerThread => TrySendError::OnWorkerThread(e.msg),
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Pressured(_) => "Pressured(..)",
            TrySendError::Stopped(_) => "Stopped(..)",
            TrySendError::RuntimeEnded(_) => "RuntimeEnded(..)",
            TrySendError::OnWorkerThread(_) => "OnWorkerThread(..)",
        })
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => {
                f.write_str("the receiver is overloaded or under pressure; the message is returned")
            }
            Some(reason) => write!(f, "{reason}; the message is returned"),
        }
    }
}

impl<M> std::error::Error for TrySendError<M> {}

/// A call that acts on "the actor whose behaviour is running" was made outside any behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideBehaviour;

impl fmt::Display for OutsideBehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this call must be made from inside an actor's behaviour")
    }
}

impl std::error::Error for OutsideBehaviour {}
