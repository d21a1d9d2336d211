//! Outside waiters: a thread or an async task waiting for an actor to stop blocking.
//!
//! Actors that send to a blocking receiver (overloaded, under pressure, or muted) are muted by
//! the scheduler. Threads and async tasks outside the runtime cannot be: nothing schedules them.
//! They wait instead, on a [`Waiter`] that they register on the receiver under its muting lock,
//! exactly as a muted actor registers itself (see [`crate::muting`]):
//!
//! * **registrant's rule**: the waiter is listed only under the receiver's lock, after re-reading
//!   the receiver's word there and finding it still blocking;
//! * **unblocker's rule**: whoever takes the receiver from blocking to not blocking (a recovery, a
//!   release of pressure, the last unmute of a parked actor, a stop) takes the list of waiters
//!   with the list of muted senders, under the same lock, and wakes them all.
//!
//! So a waiter is either listed before the unblocking (and the unblocker wakes it) or sees the
//! receiver not blocking when it re-reads the word (and does not wait). No wake-up is lost, and
//! nothing polls: a waiter costs nothing while it waits.
//!
//! One abstraction serves both kinds of waiter: the wake-up is a [`Waker`]. An async task passes
//! its context's waker; a blocking thread passes a waker that unparks it ([`thread_waker`]). The
//! `woken` flag is what a waiter trusts (a thread may unpark spuriously, a task may be polled for
//! other reasons): once it is set, the unblocker has taken the waiter off the list.

use crate::sync::{AtomicBool, Mutex};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::task::Waker;

/// One outside sender waiting for a receiver to stop blocking. Reused across registrations by
/// the same send (re-armed each time), shared with the receiver's list while listed.
pub(crate) struct Waiter {
    /// Set by the unblocker after it took this waiter off the receiver's list.
    woken: AtomicBool,
    /// How to wake the waiter: the latest waker it gave.
    waker: Mutex<Option<Waker>>,
}

impl Waiter {
    pub(crate) fn new(waker: Waker) -> Arc<Self> {
        Arc::new(Waiter {
            woken: AtomicBool::new(false),
            waker: Mutex::new(Some(waker)),
        })
    }

    /// Makes a waiter that is on no list ready to be registered again.
    pub(crate) fn rearm(&self, waker: &Waker) {
        self.set_waker(waker);
        // Relaxed: the registration that follows (under the receiver's lock) publishes it.
        self.woken.store(false, Relaxed);
    }

    /// Replaces the waker (an async task may be polled with a new one while it waits).
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.lock();
        match &*slot {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Whether the unblocker has taken this waiter off the list and woken it.
    ///
    /// Acquire pairs with the release store in [`wake`](Waiter::wake). A task that replaced its
    /// waker and then reads `false` here is sure to be woken with the new waker: `wake` sets the
    /// flag before it takes the waker under the lock, so a waker stored after that take is
    /// followed by a read that sees the flag.
    pub(crate) fn is_woken(&self) -> bool {
        self.woken.load(Acquire)
    }

    /// Wakes the waiter. Called by the unblocker once it has taken the waiter off the list and
    /// released the receiver's lock (a waker may run foreign code).
    pub(crate) fn wake(&self) {
        self.woken.store(true, Release);
        let waker = self.waker.lock().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A waker that unparks `thread`: what a blocking outside sender registers.
pub(crate) fn thread_waker(thread: std::thread::Thread) -> Waker {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    Waker::from(Arc::new(Unpark(thread)))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_thread_waiter_is_unparked_and_sees_the_flag() {
        let waiter = Waiter::new(thread_waker(std::thread::current()));
        let w = waiter.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            w.wake();
        });
        while !waiter.is_woken() {
            std::thread::park();
        }
        t.join().unwrap();
        waiter.rearm(&thread_waker(std::thread::current()));
        assert!(!waiter.is_woken(), "re-armed");
    }
}
