//! One-shot replies: to a thread waiting in [`ActorRef::ask`](crate::ActorRef::ask), or to an
//! actor as an ordinary message.

use crate::error::AskError;
use crate::Recipient;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an answer goes. Answer once with [`ReplyTo::send`]; dropping it unanswered tells a
/// waiting `ask` that no reply will come ([`AskError::NoReply`]).
///
/// Inside the runtime, ask another actor by sending it `ReplyTo::to(ctx.myself().recipient())`:
/// the answer arrives as a message, and no behaviour ever blocks.
pub struct ReplyTo<R> {
    target: Option<Target<R>>,
}

enum Target<R> {
    Waiter(Arc<OneShot<R>>),
    Actor(Recipient<R>),
}

impl<R: Send + 'static> ReplyTo<R> {
    pub(crate) fn waiter(shot: Arc<OneShot<R>>) -> Self {
        ReplyTo {
            target: Some(Target::Waiter(shot)),
        }
    }

    /// A reply handle that delivers the answer to an actor as a message.
    pub fn to(recipient: Recipient<R>) -> Self {
        ReplyTo {
            target: Some(Target::Actor(recipient)),
        }
    }

    /// Answers. Gives the value back if nobody can receive it any more (the asker timed out or
    /// the replying-to actor stopped).
    pub fn send(mut self, value: R) -> Result<(), R> {
        match self.target.take() {
            Some(Target::Waiter(shot)) => shot.fill(value),
            Some(Target::Actor(recipient)) => recipient.send(value).map_err(|e| e.0),
            None => Err(value),
        }
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        if let Some(Target::Waiter(shot)) = self.target.take() {
            shot.close();
        }
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyTo(..)")
    }
}

enum Slot<R> {
    Waiting,
    Filled(R),
    /// The reply handle was dropped unanswered, or the asker gave up.
    Closed,
}

pub(crate) struct OneShot<R> {
    slot: Mutex<Slot<R>>,
    ready: Condvar,
}

impl<R> OneShot<R> {
    pub(crate) fn new() -> Self {
        OneShot {
            slot: Mutex::new(Slot::Waiting),
            ready: Condvar::new(),
        }
    }

    fn fill(&self, value: R) -> Result<(), R> {
        let mut slot = self.slot.lock();
        if !matches!(*slot, Slot::Waiting) {
            return Err(value);
        }
        *slot = Slot::Filled(value);
        self.ready.notify_one();
        Ok(())
    }

    fn close(&self) {
        let mut slot = self.slot.lock();
        if matches!(*slot, Slot::Waiting) {
            *slot = Slot::Closed;
            self.ready.notify_one();
        }
    }

    /// Waits for the answer. A timeout too large to be represented as an instant means no
    /// deadline.
    pub(crate) fn wait(&self, timeout: Duration) -> Result<R, AskError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut slot = self.slot.lock();
        loop {
            match std::mem::replace(&mut *slot, Slot::Closed) {
                Slot::Filled(value) => return Ok(value),
                Slot::Closed => return Err(AskError::NoReply),
                Slot::Waiting => *slot = Slot::Waiting,
            }
            let Some(deadline) = deadline else {
                self.ready.wait(&mut slot);
                continue;
            };
            if self.ready.wait_until(&mut slot, deadline).timed_out()
                && matches!(*slot, Slot::Waiting)
            {
                // Give up: a late answer is handed back to the replier.
                *slot = Slot::Closed;
                return Err(AskError::Timeout);
            }
        }
    }
}
