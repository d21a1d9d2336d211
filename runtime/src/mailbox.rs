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

pub(crate) struct Mailbox<M> {
    /// The most recently pushed node; producers swap it.
    head: AtomicPtr<Node<M>>,
    /// The stub: the node before the oldest unread message. Consumer only.
    tail: UnsafeCell<*mut Node<M>>,
    /// Messages counted in by producers and not yet retired by the consumer.
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
    /// the caller must schedule it.
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

    /// Messages counted in and not yet retired, read with SeqCst (see `MuteWord::set`).
    #[inline]
    pub(crate) fn backlog_seqcst(&self) -> usize {
        self.len.load(SeqCst)
    }

    /// Messages counted in and not yet retired: the backlog. A racy reading, fine for metrics and
    /// for overload detection.
    #[inline]
    pub(crate) fn backlog(&self) -> usize {
        self.len.load(Relaxed)
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
mod loom_mailbox {
    //! Producers race the consumer's end of turn. Each producer that sees the count go from zero
    //! runs a turn itself (standing in for a worker). The model checks that every message is
    //! handled exactly once, in per-sender order, and that two turns never overlap.
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Mutex};

    struct Actor {
        mailbox: Mailbox<(usize, usize)>,
        running: AtomicBool,
        seen: Mutex<Vec<(usize, usize)>>,
    }

    fn run_turns(actor: &Actor) {
        loop {
            assert!(!actor.running.swap(true, AcqRel), "two turns at once");
            let mut n = 0;
            // SAFETY: the `running` flag (asserted above) makes this turn the only consumer.
            while let Some(m) = unsafe { actor.mailbox.pop() } {
                actor.seen.lock().unwrap().push(m);
                n += 1;
            }
            actor.running.store(false, Release);
            // SAFETY: the activation holder retires exactly what it popped.
            if unsafe { actor.mailbox.retire(n) } == 0 {
                return;
            }
            // Still holding the activation: a push is counted but not linked yet.
            loom::thread::yield_now();
        }
    }

    fn send(actor: &Actor, msg: (usize, usize)) {
        if actor.mailbox.push(msg) == 0 {
            run_turns(actor);
        }
    }

    #[test]
    fn every_message_is_handled_once_and_the_actor_never_stalls() {
        loom::model(|| {
            let actor = Arc::new(Actor {
                mailbox: Mailbox::new(0),
                running: AtomicBool::new(false),
                seen: Mutex::new(Vec::new()),
            });
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
            let seen = actor.seen.lock().unwrap().clone();
            assert_eq!(seen.len(), 4, "lost or duplicated: {seen:?}");
            for p in 0..2 {
                let order: Vec<_> = seen.iter().filter(|m| m.0 == p).map(|m| m.1).collect();
                assert_eq!(order, vec![0, 1], "sender {p} out of order");
            }
            assert_eq!(actor.mailbox.backlog(), 0, "activation leaked");
        });
    }
}
