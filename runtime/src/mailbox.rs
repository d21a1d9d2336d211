//! The actor mailbox: an intrusive, lock-free, multi-producer single-consumer queue.
//!
//! The queue is Pony's `messageq` design (itself Vyukov's non-intrusive MPSC queue): producers
//! swap themselves into `head` with one atomic exchange and then link the previous head to the
//! new node; the single consumer walks from `tail`. The node that held the last popped message
//! becomes the new stub, so every push allocates exactly one node and every pop frees exactly
//! one: at most one heap allocation per message.
//!
//! Where Pony marks emptiness in the low bit of `head`, rein keeps a message count, `len`, next
//! to it. That count does two jobs at once:
//!
//! * **Scheduling handoff.** A producer increments `len` *before* linking its node; the one whose
//!   increment starts from zero owns the job of scheduling the actor. The consumer retires the
//!   messages it handled with one subtraction per turn; when that leaves zero it has given up the
//!   actor, and the next producer to arrive schedules it again. So exactly one party holds the
//!   actor's "activation" at any time: an actor with messages is never left unscheduled and never
//!   runs twice at once. (Loom model: `loom_mailbox` in this module.)
//! * **Backlog reading.** Backpressure needs to know how far behind a receiver is, and the
//!   producer learns it for free from the value its increment returns.
//!
//! Because producers count before they link, the consumer can briefly see `len > 0` while the
//! newest node is not linked yet; `pop` then returns `None` and the turn simply ends with the
//! actor still holding its activation, to be run again.
//!
//! # The lingering token
//! A worker with nothing else to do may keep a drained actor activated for a while (the
//! scheduler's "Lingering"), so that a producer outside the runtime need not schedule it. The
//! consumer then ends its turn by retiring its messages *and* setting [`LINGER_TOKEN`], one high
//! bit of `len`, in one RMW ([`Mailbox::linger`]). While the token is set, a producer's increment
//! never starts from zero, so no producer schedules the actor; the activation belongs to the token.
//! Whoever clears the token with a CAS ([`Mailbox::claim_lingering`]) gets it: the lingering
//! worker when mail arrives or when it stops looking for work, or a sender on another worker that
//! would rather run the actor itself. Exactly one CAS wins, so the "one holder" rule above still
//! holds. (Loom model: `loom_linger` in this module.) The token is not a message: backlog readings
//! mask it out.

use crate::sync::{AtomicPtr, AtomicUsize, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

struct Node<M> {
    next: AtomicPtr<Node<M>>,
    /// Initialised from the push until the pop that moves it out; a stub holds nothing.
    msg: MaybeUninit<M>,
}

impl<M> Node<M> {
    fn alloc(msg: MaybeUninit<M>) -> *mut Node<M> {
        Box::into_raw(Box::new(Node {
            next: AtomicPtr::new(ptr::null_mut()),
            msg,
        }))
    }
}

/// The high bit of the mailbox count that marks an actor as lingering (see the module docs).
/// Backlogs stay far below it.
pub(crate) const LINGER_TOKEN: usize = 1 << (usize::BITS - 2);

pub(crate) struct Mailbox<M> {
    /// The most recently pushed node; producers swap it.
    head: AtomicPtr<Node<M>>,
    /// The stub: the node before the oldest unread message. Consumer only.
    tail: UnsafeCell<*mut Node<M>>,
    /// Messages counted in by producers and not yet retired by the consumer, plus
    /// [`LINGER_TOKEN`] while the actor lingers.
    len: AtomicUsize,
}

// SAFETY: messages are moved from producers to the single consumer; `M: Send` suffices. The raw
// node pointers are owned by the queue and only dereferenced under the protocol described above.
unsafe impl<M: Send> Send for Mailbox<M> {}
// SAFETY: `push` is safe from any thread (atomics only); `pop`/`retire` are `unsafe` and require
// the caller to be the single consumer, which the scheduler guarantees (one turn at a time).
unsafe impl<M: Send> Sync for Mailbox<M> {}

impl<M> Mailbox<M> {
    /// An empty mailbox whose count starts at `initial_activation` (0 or 1): a freshly spawned
    /// actor starts with one activation so that its `started` hook runs before anything else.
    pub(crate) fn new(initial_activation: usize) -> Self {
        let stub = Node::alloc(MaybeUninit::uninit());
        Mailbox {
            head: AtomicPtr::new(stub),
            tail: UnsafeCell::new(stub),
            len: AtomicUsize::new(initial_activation),
        }
    }

    /// Enqueues `msg` and returns the count *before* this push. Zero means the actor was idle and
    /// the caller must schedule it; [`LINGER_TOKEN`] set means it lingers.
    #[inline]
    pub(crate) fn push(&self, msg: M) -> usize {
        let node = Node::alloc(MaybeUninit::new(msg));
        // AcqRel: acquire pairs with the consumer's release in `retire` (the previous turn's writes
        // to the actor happen-before whoever schedules it next); release publishes nothing needed
        // but keeps the RMW chain a synchronisation point.
        let before = self.len.fetch_add(1, AcqRel);
        // AcqRel: acquire the previous head so we may write its `next`; release our node's init.
        let prev = self.head.swap(node, AcqRel);
        // SAFETY: `prev` stays allocated until the consumer moves past it, which needs this very
        // store to `prev.next` first: nobody frees it under us.
        unsafe { (*prev).next.store(node, Release) };
        before
    }

    /// Dequeues the oldest linked message, if any.
    ///
    /// # Safety
    /// Only the single consumer (the thread running the actor's turn) may call this.
    #[inline]
    pub(crate) unsafe fn pop(&self) -> Option<M> {
        self.tail.with_mut(|tail_slot| {
            // SAFETY: the caller is the single consumer, so `tail_slot` is ours and `tail` is the
            // live stub, never freed by anyone else.
            unsafe {
                let tail = *tail_slot;
                let next = (*tail).next.load(Acquire);
                if next.is_null() {
                    return None;
                }
                *tail_slot = next;
                // The message moves out; `next` becomes the stub and keeps an uninit payload.
                let msg = (*next).msg.assume_init_read();
                // The old stub's payload was moved out earlier (or never existed): free the node
                // only. `MaybeUninit` never drops its content.
                drop(Box::from_raw(tail));
                Some(msg)
            }
        })
    }

    /// Retires `n` activations (handled messages plus any held activation) and returns what is
    /// left. Zero means the consumer has given the actor up and must not touch its turn state.
    ///
    /// # Safety
    /// Only the single consumer may call this, and `n` must not exceed what it popped plus the
    /// activations it holds.
    #[inline]
    pub(crate) unsafe fn retire(&self, n: usize) -> usize {
        if n == 0 {
            return self.len.load(Acquire);
        }
        // Release this turn's writes to whoever schedules the actor next (see `push`); SeqCst
        // rather than AcqRel for the overload hand-off (see `MuteWord::set`).
        self.len.fetch_sub(n, SeqCst) - n
    }

    /// Retires `n` activations like [`retire`](Self::retire) and sets [`LINGER_TOKEN`] in the
    /// same RMW, handing the activation to the token. Returns the messages left (the token
    /// masked out); the caller must not touch the turn state afterwards: any claimer may own it.
    ///
    /// # Safety
    /// As for `retire`; the token must not be set (the activation holder never holds it).
    #[inline]
    pub(crate) unsafe fn linger(&self, n: usize) -> usize {
        // SeqCst as in `retire`: this is the retire, with the token added by the same RMW.
        let before = self.len.fetch_add(LINGER_TOKEN.wrapping_sub(n), SeqCst);
        debug_assert!(before & LINGER_TOKEN == 0 && before >= n);
        before - n
    }

    /// Clears [`LINGER_TOKEN`] if it is set, taking the activation it held. Returns the messages
    /// waiting then: `Some(0)` means the caller has just made the actor idle (it ended the
    /// activation); `Some(k > 0)` means the caller now holds the activation; `None` means the
    /// token was not set (someone else claimed it, or the actor never lingered).
    #[inline]
    pub(crate) fn claim_lingering(&self) -> Option<usize> {
        let mut current = self.len.load(Acquire);
        loop {
            if current & LINGER_TOKEN == 0 {
                return None;
            }
            // SeqCst: the claim is a retire of the token (see `retire`); Acquire on failure to
            // re-read a fresh count.
            match self
                .len
                .compare_exchange_weak(current, current - LINGER_TOKEN, SeqCst, Acquire)
            {
                Ok(_) => return Some(current - LINGER_TOKEN),
                Err(actual) => current = actual,
            }
        }
    }

    /// The raw count, token included, for a lingering worker's cheap "any mail yet?" look.
    #[inline]
    pub(crate) fn raw_count(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Messages counted in and not yet retired, read with SeqCst (see `MuteWord::set`).
    #[inline]
    pub(crate) fn backlog_seqcst(&self) -> usize {
        self.len.load(SeqCst) & !LINGER_TOKEN
    }

    /// Messages counted in and not yet retired: the backlog. A racy reading, fine for metrics and
    /// for overload detection.
    #[inline]
    pub(crate) fn backlog(&self) -> usize {
        self.len.load(Relaxed) & !LINGER_TOKEN
    }
}

impl<M> Drop for Mailbox<M> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no producer or consumer is left; we are the consumer.
        while unsafe { self.pop() }.is_some() {}
        self.tail.with_mut(|tail| {
            // SAFETY: the remaining stub is owned by the queue and holds no message.
            unsafe { drop(Box::from_raw(*tail)) }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn push_reports_the_previous_count_and_pop_is_fifo() {
        let mb = Mailbox::new(0);
        assert_eq!(mb.push(1), 0);
        assert_eq!(mb.push(2), 1);
        assert_eq!(mb.backlog(), 2);
        // SAFETY: this test thread is the only consumer.
        unsafe {
            assert_eq!(mb.pop(), Some(1));
            assert_eq!(mb.pop(), Some(2));
            assert_eq!(mb.pop(), None);
            assert_eq!(mb.retire(2), 0);
        }
        assert_eq!(
            mb.push(3),
            0,
            "an emptied mailbox must ask to be scheduled again"
        );
    }

    #[test]
    fn dropping_a_mailbox_drops_queued_messages() {
        let token = Arc::new(());
        let mb = Mailbox::new(0);
        for _ in 0..10 {
            mb.push(token.clone());
        }
        assert_eq!(Arc::strong_count(&token), 11);
        drop(mb);
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn concurrent_producers_keep_per_sender_order() {
        let mb = Arc::new(Mailbox::new(0));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let mb = mb.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        mb.push((p, i));
                    }
                })
            })
            .collect();
        let mut next = [0u64; 4];
        let mut got = 0;
        while got < 40_000 {
            // SAFETY: this test thread is the only consumer.
            if let Some((p, i)) = unsafe { mb.pop() } {
                assert_eq!(next[p as usize], i, "sender {p} out of order");
                next[p as usize] += 1;
                got += 1;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        // SAFETY: the only consumer retires exactly what it popped.
        assert_eq!(unsafe { mb.retire(got) }, 0);
    }
}

#[cfg(all(test, loom))]
mod loom_actor {
    //! The stand-in actor of the loom models: a mailbox, a flag that catches two turns running
    //! at once, and the log of what its turns handled.
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Mutex;

    pub(super) struct Actor<M> {
        pub(super) mailbox: Mailbox<M>,
        running: AtomicBool,
        pub(super) seen: Mutex<Vec<M>>,
    }

    impl<M: Clone> Actor<M> {
        pub(super) fn new(initial_activation: usize) -> Self {
            Actor {
                mailbox: Mailbox::new(initial_activation),
                running: AtomicBool::new(false),
                seen: Mutex::new(Vec::new()),
            }
        }

        /// One turn by the activation holder: pops what is linked and returns how many.
        pub(super) fn turn(&self) -> usize {
            assert!(!self.running.swap(true, AcqRel), "two turns at once");
            let mut n = 0;
            // SAFETY: the `running` flag (asserted above) makes this turn the only consumer.
            while let Some(m) = unsafe { self.mailbox.pop() } {
                self.seen.lock().unwrap().push(m);
                n += 1;
            }
            self.running.store(false, Release);
            n
        }

        /// Turns that end by handing the activation back, as on a busy worker, until it is.
        pub(super) fn run_turns(&self) {
            loop {
                let n = self.turn();
                // SAFETY: the activation holder retires exactly what it popped.
                if unsafe { self.mailbox.retire(n) } == 0 {
                    return;
                }
                // Still holding the activation: a push is counted but not linked yet.
                loom::thread::yield_now();
            }
        }

        pub(super) fn seen(&self) -> Vec<M> {
            self.seen.lock().unwrap().clone()
        }
    }
}

#[cfg(all(test, loom))]
mod loom_mailbox {
    //! Producers race the consumer's end of turn. Each producer that sees the count go from zero
    //! runs a turn itself (standing in for a worker). The model checks that every message is
    //! handled exactly once, in per-sender order, and that two turns never overlap.
    use super::loom_actor::Actor;
    use loom::sync::Arc;

    fn send(actor: &Actor<(usize, usize)>, msg: (usize, usize)) {
        if actor.mailbox.push(msg) == 0 {
            actor.run_turns();
        }
    }

    #[test]
    fn every_message_is_handled_once_and_the_actor_never_stalls() {
        loom::model(|| {
            let actor = Arc::new(Actor::new(0));
            let handles: Vec<_> = (0..2)
                .map(|p| {
                    let actor = actor.clone();
                    loom::thread::spawn(move || {
                        send(&actor, (p, 0));
                        send(&actor, (p, 1));
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let seen = actor.seen();
            assert_eq!(seen.len(), 4, "lost or duplicated: {seen:?}");
            for p in 0..2 {
                let order: Vec<_> = seen.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                assert_eq!(order, vec![0, 1], "sender {p} out of order");
            }
            assert_eq!(actor.mailbox.backlog(), 0, "activation leaked");
        });
    }
}

#[cfg(all(test, loom))]
mod loom_linger {
    //! A worker lingers on a drained actor while a sender outside the runtime and a sender on
    //! another worker race it: the outside sender only pushes, the worker sender tries to take
    //! the actor over, and the lingering worker runs it when it sees mail and finally claims it
    //! back. The model checks that every message is handled exactly once, that two turns never
    //! overlap, and that the actor ends idle with the token cleared.
    use super::loom_actor::Actor;
    use super::LINGER_TOKEN;
    use loom::sync::Arc;

    /// Turns that end by lingering, as on an idle worker; returns when someone else holds the
    /// activation or the actor is idle.
    fn run_turns_lingering(actor: &Actor<usize>) {
        loop {
            let n = actor.turn();
            // SAFETY: we hold the activation, retire what we popped, and the token is clear.
            if unsafe { actor.mailbox.linger(n) } == 0 {
                return;
            }
            // Mail arrived meanwhile: take the token back, unless a sender claimed it first.
            match actor.mailbox.claim_lingering() {
                Some(0) | None => return,
                Some(_) => loom::thread::yield_now(),
            }
        }
    }

    #[test]
    fn lingering_never_loses_duplicates_or_overlaps_turns() {
        // Three threads with retry loops: bound the preemptions, as loom recommends, so that
        // the model finishes in seconds.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            // One activation, held by the lingering worker below.
            let actor = Arc::new(Actor::new(1));
            // SAFETY: the main thread holds the only activation and has popped nothing.
            assert_eq!(unsafe { actor.mailbox.linger(1) }, 0);

            let outside = {
                let actor = actor.clone();
                loom::thread::spawn(move || {
                    if actor.mailbox.push(1) == 0 {
                        actor.run_turns();
                    }
                })
            };
            let worker_sender = {
                let actor = actor.clone();
                loom::thread::spawn(move || {
                    let before = actor.mailbox.push(2);
                    if before == 0 {
                        actor.run_turns();
                    } else if before & LINGER_TOKEN != 0 {
                        if let Some(1..) = actor.mailbox.claim_lingering() {
                            actor.run_turns();
                        }
                    }
                })
            };

            // The lingering worker: one look for mail, then it stops looking and claims back.
            if actor.mailbox.raw_count() > LINGER_TOKEN {
                if let Some(1..) = actor.mailbox.claim_lingering() {
                    run_turns_lingering(&actor);
                }
            }
            if let Some(1..) = actor.mailbox.claim_lingering() {
                actor.run_turns();
            }

            outside.join().unwrap();
            worker_sender.join().unwrap();
            let mut seen = actor.seen();
            seen.sort_unstable();
            assert_eq!(seen, vec![1, 2], "lost or duplicated");
            assert_eq!(actor.mailbox.raw_count(), 0, "token or activation leaked");
        });
    }
}
