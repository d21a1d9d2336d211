//! Typed errors. Every failure hands back what it could not deliver.

use std::fmt;

/// A send that could not be delivered because the actor has stopped or its runtime has shut
/// down. The message is returned, never silently dropped.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<M>(pub M);

impl<M> SendError<M> {
    /// Takes the undelivered message back.
    pub fn into_inner(self) -> M {
        self.0
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the actor has stopped; the message is returned")
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

/// Why an [`ask`](crate::ActorRef::ask) produced no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskError {
    /// The actor had stopped; the request was not delivered.
    Stopped,
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

/// A pressure-aware send from outside the runtime that did not go through. The message is
/// returned.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<M> {
    /// The receiver is overloaded, under pressure or muted (and stayed so until the timeout).
    Pressured(M),
    /// The receiver has stopped, or its runtime has ended.
    Stopped(M),
}

impl<M> TrySendError<M> {
    /// Takes the undelivered message back.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Pressured(m) | TrySendError::Stopped(m) => m,
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Pressured(_) => "Pressured(..)",
            TrySendError::Stopped(_) => "Stopped(..)",
        })
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Pressured(_) => {
                "the receiver is overloaded or under pressure; the message is returned"
            }
            TrySendError::Stopped(_) => "the actor has stopped; the message is returned",
        })
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
