//! [`Recipient`]: an address for one message type, whatever actor is behind it.

use crate::cell::{Cell, Header, Task};
use crate::error::{SendError, SendFailure};
use crate::outside::{self, Ready, SendTarget, SendWhenReady};
use crate::{Actor, ActorId};
use std::fmt;
use std::sync::Arc;

/// Delivers an `M` to the cell behind a task. Built only together with that task, for the cell's
/// concrete actor type.
type DeliverFn<M> = fn(&Task, M) -> Result<(), M>;

/// An address that accepts `M`: any actor whose message type implements `From<M>`.
///
/// Lets components (timers, connections, reply handles) talk to actors without naming their
/// concrete type. Sending converts `M` with `From` and costs the same as
/// [`ActorRef::send`](crate::ActorRef::send).
pub struct Recipient<M> {
    /// `None` for [`Recipient::closed`]: no actor, every send is handed back.
    task: Option<Task>,
    deliver: DeliverFn<M>,
}

fn deliver<A: Actor, M>(task: &Task, msg: M) -> Result<(), M>
where
    A::Msg: From<M>,
{
    // SAFETY: this function is only stored next to a task made from an `Arc<Cell<A>>` for this
    // very `A` (see `Recipient::new`), so the data pointer is a `Cell<A>`.
    let cell = unsafe { &*(Arc::as_ptr(task) as *const Cell<A>) };
    let header = crate::cell::Runnable::header(cell);
    if !header.is_open() {
        return Err(msg);
    }
    let counters = &header.shared.counters;
    // The conversion is the receiver's code, run on the sender's thread (a behaviour, the timer
    // or I/O thread, a reply): a panic in it loses this message, counted as a panic and as
    // dropped, and neither kills that thread nor blames the sender.
    let Some(converted) = counters.contained(move || A::Msg::from(msg)) else {
        counters.dropped.inc();
        return Ok(());
    };
    // A stop racing in after the check refuses the converted message, which cannot be turned
    // back into an `M`: count it as dropped, like the messages a stop finds queued.
    if let Err(refused) = cell.send(converted, || task.clone()) {
        counters.dropped.inc();
        counters.contained(move || drop(refused));
    }
    Ok(())
}

impl<M: Send + 'static> Recipient<M> {
    pub(crate) fn new<A: Actor>(cell: Arc<Cell<A>>) -> Self
    where
        A::Msg: From<M>,
    {
        Recipient {
            task: Some(cell),
            deliver: deliver::<A, M>,
        }
    }

    /// An address with no actor behind it: every send is handed back, and it counts as
    /// stopped. For APIs that must return an address when no actor could be made (say, a
    /// component started after its runtime ended), so that callers need no special case.
    ///
    /// ```
    /// let nobody = rein::Recipient::<u32>::closed();
    /// assert!(nobody.is_stopped());
    /// assert_eq!(nobody.send(7).unwrap_err().into_inner(), 7);
    /// ```
    pub fn closed() -> Self {
        fn refuse<M>(_: &Task, msg: M) -> Result<(), M> {
            Err(msg)
        }
        Recipient {
            task: None,
            deliver: refuse::<M>,
        }
    }

    /// Sends `msg`; hands it back if the actor has stopped.
    ///
    /// The conversion (`From<M>`) runs on the calling thread. If it panics, the message is lost:
    /// the send still returns `Ok`, and the runtime counts a panic and a dropped message
    /// ([`Metrics::panics`](crate::Metrics::panics),
    /// [`Metrics::dropped_messages`](crate::Metrics::dropped_messages)).
    #[inline]
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        match &self.task {
            Some(task) => (self.deliver)(task, msg)
                .map_err(|msg| SendError::new(msg, task.header().refusal_now())),
            None => Err(SendError::new(msg, SendFailure::ActorStopped)),
        }
    }

    /// Sends from a thread outside the runtime, waiting while the receiver blocks: see
    /// [`ActorRef::send_blocking`](crate::ActorRef::send_blocking).
    pub fn send_blocking(&self, msg: M) -> Result<(), SendError<M>> {
        if crate::scheduler::on_worker_thread() {
            return Err(SendError::new(msg, SendFailure::OnWorkerThread));
        }
        match self.header().map(|h| outside::wait_ready(h, None)) {
            None | Some(Ready::Now) => self.send(msg),
            Some(Ready::Refused(reason)) => Err(SendError::new(msg, reason)),
            Some(Ready::TimedOut) => unreachable!("no deadline"),
        }
    }

    /// Sends from an async task once the receiver stops blocking: see
    /// [`ActorRef::send_when_ready`](crate::ActorRef::send_when_ready).
    pub fn send_when_ready(&self, msg: M) -> SendWhenReady<'_, M> {
        SendWhenReady::new(self, msg)
    }

    /// The identity of the actor behind this address ([`ActorId::NONE`] for a
    /// [closed](Recipient::closed) one).
    pub fn id(&self) -> ActorId {
        self.header().map_or(ActorId::NONE, |h| h.id)
    }

    /// Whether the actor behind it has stopped (always, for a [closed](Recipient::closed) one).
    pub fn is_stopped(&self) -> bool {
        !matches!(self.header(), Some(h) if h.is_open())
    }

    fn header(&self) -> Option<&Header> {
        self.task.as_ref().map(|t| t.header())
    }
}

impl<M: Send + 'static> SendTarget<M> for Recipient<M> {
    fn target_header(&self) -> Option<&Header> {
        self.header()
    }

    fn deliver(&self, msg: M) -> Result<(), SendError<M>> {
        self.send(msg)
    }
}

impl<M> Clone for Recipient<M> {
    fn clone(&self) -> Self {
        Recipient {
            task: self.task.clone(),
            deliver: self.deliver,
        }
    }
}

impl<M> fmt::Debug for Recipient<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.task.as_ref().map_or(ActorId::NONE, |t| t.header().id);
        write!(f, "Recipient({id})")
    }
}
