//! Sends from outside the runtime that honour backpressure: blocking threads and async tasks.
//!
//! An actor that sends to a blocking receiver is muted by the scheduler; a thread or task outside
//! the runtime cannot be, so a plain [`ActorRef::send`](crate::ActorRef::send) from there queues
//! without limit. The sends here wait instead, until the receiver stops blocking (its backlog is
//! back at its low watermark, its pressure released, its mutes undone), and then queue. They
//! wait on a [`Waiter`] registered on the receiver and woken by whoever unblocks it (see
//! [`crate::waiter`]): no polling, no sleeping in steps, and a wake-up cannot be lost.
//!
//! A receiver that does not block accepts at once, even when the send takes its backlog past the
//! high watermark: that push sets `OVERLOADED` (as any sender's does), and the next send waits.
//! So each waiting producer adds at most one message past the receiver's high watermark.

use crate::cell::Header;
use crate::error::{SendError, SendFailure};
use crate::mute;
use crate::waiter::Waiter;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// What an outside send needs from an address: the receiver's header (`None` for an address
/// with no actor behind it) and the plain send.
pub(crate) trait SendTarget<M>: Sync {
    fn target_header(&self) -> Option<&Header>;
    fn deliver(&self, msg: M) -> Result<(), SendError<M>>;
}

/// How a wait for a receiver ended.
pub(crate) enum Ready {
    /// It does not block: send now.
    Now,
    /// It never will accept: stopped, or its runtime ended.
    Refused(SendFailure),
    /// The deadline passed while it still blocked.
    TimedOut,
}

/// Blocks the calling thread until `header`'s actor does not block, it is refused, or
/// `deadline` passes (`None`: no deadline). The caller checked it is not a worker thread.
pub(crate) fn wait_ready(header: &Header, deadline: Option<Instant>) -> Ready {
    // Made on the first wait only: a send that never waits allocates nothing.
    let mut waiter: Option<(Arc<Waiter>, std::task::Waker)> = None;
    loop {
        let word = header.word().load();
        if let Some(reason) = header.refusal(word) {
            return Ready::Refused(reason);
        }
        if !mute::is_blocking(word) {
            return Ready::Now;
        }
        let w = match &waiter {
            Some((w, waker)) => {
                w.rearm(waker);
                w
            }
            None => {
                let waker = crate::waiter::thread_waker(std::thread::current());
                &waiter.insert((Waiter::new(waker.clone()), waker)).0
            }
        };
        if !header.muting.register_waiter(w) {
            continue; // It stopped blocking since the load above.
        }
        while !w.is_woken() {
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        if header.muting.remove_waiter(w) {
                            return Ready::TimedOut;
                        }
                        // An unblocker took it off the list just now: look at the word again
                        // (an unpark may still arrive; parking tolerates a spurious one).
                        break;
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }
}

/// The future of [`ActorRef::send_when_ready`](crate::ActorRef::send_when_ready) and
/// [`Recipient::send_when_ready`](crate::Recipient::send_when_ready): resolves once the message
/// is queued (`Ok`), or refused for good (`Err`, with the message and the reason).
///
/// While the receiver blocks, the task waits, woken by whoever unblocks the receiver, exactly as
/// a muted actor is resumed; it is never polled in a loop. Dropping the future gives up the send
/// (the message is dropped with it) and takes it off the receiver's list.
#[must_use = "futures do nothing unless awaited"]
pub struct SendWhenReady<'a, M> {
    target: &'a dyn SendTarget<M>,
    msg: Option<M>,
    waiter: Option<Arc<Waiter>>,
    /// Whether `waiter` is on the receiver's list (until it is woken, which takes it off).
    listed: bool,
}

impl<'a, M> SendWhenReady<'a, M> {
    pub(crate) fn new(target: &'a dyn SendTarget<M>, msg: M) -> Self {
        SendWhenReady {
            target,
            msg: Some(msg),
            waiter: None,
            listed: false,
        }
    }
}

// The message is never pinned: it moves out when sent.
impl<M> Unpin for SendWhenReady<'_, M> {}

impl<M> Future for SendWhenReady<'_, M> {
    type Output = Result<(), SendError<M>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let msg = this
            .msg
            .take()
            .expect("SendWhenReady polled after it completed");
        let Some(header) = this.target.target_header() else {
            return Poll::Ready(this.target.deliver(msg));
        };
        if this.listed {
            let waiter = this.waiter.as_ref().expect("listed with a waiter");
            waiter.set_waker(cx.waker());
            if !waiter.is_woken() {
                this.msg = Some(msg);
                return Poll::Pending;
            }
            this.listed = false;
        }
        loop {
            let word = header.word().load();
            if let Some(reason) = header.refusal(word) {
                return Poll::Ready(Err(SendError::new(msg, reason)));
            }
            if !mute::is_blocking(word) {
                return Poll::Ready(this.target.deliver(msg));
            }
            let waiter = match &this.waiter {
                Some(w) => {
                    w.rearm(cx.waker());
                    w
                }
                None => this.waiter.insert(Waiter::new(cx.waker().clone())),
            };
            if header.muting.register_waiter(waiter) {
                this.listed = true;
                this.msg = Some(msg);
                return Poll::Pending;
            }
        }
    }
}

impl<M> Drop for SendWhenReady<'_, M> {
    fn drop(&mut self) {
        if !self.listed {
            return;
        }
        if let (Some(header), Some(waiter)) = (self.target.target_header(), &self.waiter) {
            // Not listed any more means an unblocker took it: its wake-up goes nowhere.
            header.muting.remove_waiter(waiter);
        }
    }
}

impl<M> std::fmt::Debug for SendWhenReady<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendWhenReady")
            .field("waiting", &self.listed)
            .finish_non_exhaustive()
    }
}
