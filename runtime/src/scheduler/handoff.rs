//! How a worker's private work can be taken by others while that worker is stuck in a behaviour.
//!
//! Two places hold activations that only their worker runs: the *next slot* (an actor woken by a
//! send from this worker's running behaviour, run next on the same core for locality) and the
//! *lingering list* (drained actors kept activated by an idle worker, see the scheduler's
//! "Lingering"). Both pay off only because the worker gets back to them within microseconds. A
//! behaviour that sleeps or computes for a long time breaks that: the work waits for it while
//! other workers idle. So both are shared with the scheduler's watchdog (`super::watchdog`), which
//! takes the work over once the behaviour has run for more than a tick, under two small protocols
//! that keep the owner's common path free of read-modify-writes where it can be:
//!
//! * [`NextSlot`]: the owner fills an empty slot with plain stores and empties it with one CAS; a
//!   thief takes the occupant with a CAS too, so exactly one of them gets it. (One CAS per
//!   next-slot hand-off is what a stealable slot costs; Go's `runnext` pays the same.)
//! * [`Lendable`]: the owner may lend a value (the lingering list) for the length of a turn, when
//!   it does not change it; a borrower reads it only inside such a window and the owner closes the
//!   window with one CAS, waiting out a borrower. A turn whose worker lingers on nothing opens no
//!   window and pays nothing.
//!
//! Both are generic and built on [`crate::sync`], so loom checks them (models below).

use crate::sync::{spin, AtomicU8, UnsafeCell};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

const EMPTY: u8 = 0;
const FULL: u8 = 1;
/// A thief is moving the occupant out.
const TAKING: u8 = 2;

/// A one-task slot that its owner fills and empties and that any other thread may steal from.
///
/// `state` says who may touch `task`: the owner while `EMPTY` (to fill it) or right after its own
/// successful `FULL → EMPTY` CAS (to empty it); a thief after its successful `FULL → TAKING` CAS,
/// until it stores `EMPTY`. Only the owner stores `FULL`, after writing `task`.
pub(crate) struct NextSlot<T> {
    state: AtomicU8,
    task: UnsafeCell<Option<T>>,
}

// SAFETY: `task` is only touched by the one thread that `state` designates (see above), and the
// value moves between threads (so `T: Send`); everything else is atomic.
unsafe impl<T: Send> Sync for NextSlot<T> {}

impl<T> NextSlot<T> {
    pub(crate) fn new() -> Self {
        NextSlot {
            state: AtomicU8::new(EMPTY),
            task: UnsafeCell::new(None),
        }
    }

    /// Puts `task` in the slot. If the slot held a task that no thief took first, hands that
    /// previous occupant to `displaced`.
    ///
    /// # Safety
    /// Only the slot's owner may call `push` and `take`, from one thread.
    #[inline(always)]
    pub(crate) unsafe fn push(&self, task: T, displaced: impl FnOnce(T)) {
        // The common case: the slot is empty (the owner ran its last occupant). Acquire pairs
        // with a thief's release store of `EMPTY`, so its read of the cell happens before our
        // write.
        if self.state.load(Acquire) == EMPTY {
            // SAFETY: as in `fill`.
            unsafe { self.fill(task) };
        } else {
            // SAFETY: we are the owner (the caller's contract).
            if let Some(previous) = unsafe { self.displace(task) } {
                displaced(previous);
            }
        }
    }

    /// `push` into a slot that is full, or that a thief is emptying. Returns the previous
    /// occupant if the thief did not take it.
    #[cold]
    #[inline(never)]
    unsafe fn displace(&self, task: T) -> Option<T> {
        // SAFETY: we are the owner.
        let previous = unsafe { self.take() };
        // A thief may still be moving the previous occupant out (our take lost to it): the cell
        // is the thief's until it stores `EMPTY`. Acquire pairs with that store.
        let mut round = 0;
        while self.state.load(Acquire) != EMPTY {
            spin(&mut round);
        }
        // SAFETY: as in `fill`.
        unsafe { self.fill(task) };
        previous
    }

    /// Writes `task` into the empty cell and publishes it.
    ///
    /// # Safety
    /// The owner only, having read `EMPTY` with Acquire: only the owner moves the slot out of
    /// `EMPTY`, so nobody else touches the cell until the store of `FULL` below, and an empty slot's
    /// cell holds `None` (every taker leaves `None` behind), so there is nothing to drop.
    #[inline]
    unsafe fn fill(&self, task: T) {
        self.task.with_mut(|cell| {
            // SAFETY: see above; `write` skips dropping the `None` it replaces.
            unsafe {
                debug_assert!((*cell).is_none());
                cell.write(Some(task));
            }
        });
        // Release: a thief's CAS that reads `FULL` sees the task written above.
        self.state.store(FULL, Release);
    }

    /// Takes the occupant, unless a thief took it first.
    ///
    /// # Safety
    /// As for [`push`](Self::push): the owner only.
    #[inline]
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // Relaxed: only the owner stores `FULL`, so a `FULL` read here is our own store.
        if self.state.load(Relaxed) != FULL {
            return None;
        }
        // The CAS decides between us and a thief; Relaxed because what we read then is what we
        // wrote ourselves.
        match self.state.compare_exchange(FULL, EMPTY, Relaxed, Relaxed) {
            // SAFETY: we moved the slot from `FULL` to `EMPTY`: no thief can take it now, and only
            // we (the owner) would fill it.
            Ok(_) => self.task.with_mut(|cell| unsafe { (*cell).take() }),
            Err(_) => None,
        }
    }

    /// Takes the occupant from any thread; `None` if the slot is empty or someone else is taking
    /// it.
    pub(crate) fn steal(&self) -> Option<T> {
        // Acquire pairs with the owner's release store of `FULL`: the task it wrote is visible.
        if self
            .state
            .compare_exchange(FULL, TAKING, Acquire, Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: `TAKING` is ours: the owner's take fails and its push waits for `EMPTY`, and no
        // other thief's CAS from `FULL` can succeed.
        let task = self.task.with_mut(|cell| unsafe { (*cell).take() });
        // Release: our read of the cell happens before the owner's next write (see `push`).
        self.state.store(EMPTY, Release);
        task
    }

    /// Whether the slot holds a task: a racy reading, for the owner's "anything queued?" and the
    /// watchdog's look.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.state.load(Relaxed) == FULL
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
/// Open, and a borrower is reading.
const LENT: u8 = 2;

/// A value its owner changes at will and may *lend* for a while: between [`open`](Self::open)
/// and [`close`](Self::close), other threads may read it ([`borrow`](Self::borrow)) and the owner
/// must not change it.
///
/// `state` is `CLOSED` (the owner's alone), `OPEN` (anyone may read, nobody writes) or `LENT` (a
/// borrower is reading). Only the owner moves it `CLOSED → OPEN` (a release store) and
/// `OPEN → CLOSED` (a CAS, retried while a borrower holds `LENT`); a borrower moves it
/// `OPEN → LENT` (an acquiring CAS) and back (a release store).
pub(crate) struct Lendable<T> {
    state: AtomicU8,
    value: UnsafeCell<T>,
}

// SAFETY: borrowers only read `value` (so `T: Sync`), and only inside a window in which the owner
// does not write it; the owner may drop or move what it holds on any thread (so `T: Send`).
unsafe impl<T: Send + Sync> Sync for Lendable<T> {}

impl<T> Lendable<T> {
    pub(crate) fn new(value: T) -> Self {
        Lendable {
            state: AtomicU8::new(CLOSED),
            value: UnsafeCell::new(value),
        }
    }

    /// Changes the value.
    ///
    /// # Safety
    /// Only the owner may call this (and the other owner methods), from one thread, and only
    /// while the value is not lent (between `close` and the next `open`). `f` must not call back
    /// into this value.
    #[inline]
    pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        debug_assert_eq!(self.state.load(Relaxed), CLOSED, "changed while lent");
        // SAFETY: closed: no borrower reads (see `borrow`), and the owner is the only writer.
        self.value.with_mut(|value| f(unsafe { &mut *value }))
    }

    /// Reads the value.
    ///
    /// # Safety
    /// The owner only (borrowers use [`borrow`](Self::borrow)); `f` must not call back into this
    /// value.
    #[inline]
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: the owner is the only writer, and it is busy here; borrowers only read.
        self.value.with(|value| f(unsafe { &*value }))
    }

    /// Lends the value until [`close`](Self::close).
    ///
    /// # Safety
    /// The owner only, while closed; it must not change the value until it closes.
    #[inline]
    pub(crate) unsafe fn open(&self) {
        debug_assert_eq!(self.state.load(Relaxed), CLOSED);
        // Release: a borrower's acquiring CAS sees every change made before.
        self.state.store(OPEN, Release);
    }

    /// Ends the loan, waiting for a borrower that is reading.
    ///
    /// # Safety
    /// The owner only, after its `open`.
    #[inline]
    pub(crate) unsafe fn close(&self) {
        let mut round = 0;
        // Acquire pairs with a borrower's release store of `OPEN`: its reads happen before our
        // next change.
        while self
            .state
            .compare_exchange(OPEN, CLOSED, Acquire, Relaxed)
            .is_err()
        {
            spin(&mut round);
        }
    }

    /// Reads the value if the owner lends it now; `None` if it does not (or another borrower is
    /// reading). `f` should be short: the owner may be waiting to close.
    pub(crate) fn borrow<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        // Acquire pairs with the owner's release store of `OPEN`.
        if self
            .state
            .compare_exchange(OPEN, LENT, Acquire, Relaxed)
            .is_err()
        {
            return None;
        }
        /// Gives the loan back however `f` ends.
        struct Return<'a>(&'a AtomicU8);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                // Release: our reads happen before the owner's next change (see `close`).
                self.0.store(OPEN, Release);
            }
        }
        let _return = Return(&self.state);
        // SAFETY: `LENT` is ours: the owner cannot close (so does not write) until we store
        // `OPEN`, and no other borrower's CAS from `OPEN` can succeed meanwhile.
        Some(self.value.with(|value| f(unsafe { &*value })))
    }

    /// Whether the value is lent now: a racy reading, for the watchdog's look.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Relaxed) != CLOSED
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_owner_and_a_thief_never_both_get_the_occupant() {
        let slot = NextSlot::new();
        // SAFETY: this thread is the only owner.
        unsafe {
            let mut displaced = Vec::new();
            slot.push(1, |t| displaced.push(t));
            slot.push(2, |t| displaced.push(t));
            assert_eq!(displaced, [1], "the previous occupant comes back");
            assert_eq!(slot.steal(), Some(2));
            assert_eq!(slot.take(), None, "stolen already");
            slot.push(3, |t| displaced.push(t));
            assert_eq!(displaced, [1]);
            assert!(slot.is_full());
            assert_eq!(slot.take(), Some(3));
            assert!(!slot.is_full());
        }
        assert_eq!(slot.steal(), None);
    }

    #[test]
    fn a_value_is_lent_only_between_open_and_close() {
        let list = Lendable::new(vec![1, 2]);
        assert_eq!(list.borrow(|v| v.len()), None, "closed");
        // SAFETY: this thread is the only owner.
        unsafe {
            list.with_mut(|v| v.push(3));
            list.open();
        }
        assert!(list.is_open());
        assert_eq!(list.borrow(|v| v.iter().sum::<i32>()), Some(6));
        // SAFETY: as above.
        unsafe {
            list.close();
            list.with_mut(|v| v.clear());
        }
        assert_eq!(list.borrow(|v| v.len()), None);
    }
}

#[cfg(all(test, loom))]
mod loom_handoff {
    //! The owner of a next slot fills and empties it while a thief steals; the owner of a
    //! lingering list lends it for a turn, then changes it, while a borrower reads. Loom's cells
    //! catch any access that races; the asserts catch a task run twice or lost.
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn a_stolen_slot_task_runs_once_and_none_is_lost() {
        loom::model(|| {
            let slot = Arc::new(NextSlot::new());
            let thief = {
                let slot = slot.clone();
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        got.extend(slot.steal());
                    }
                    got
                })
            };
            let mut mine = Vec::new();
            // SAFETY: this thread is the only owner.
            unsafe {
                slot.push(1, |t| mine.push(t));
                slot.push(2, |t| mine.push(t));
                mine.extend(slot.take());
            }
            let mut all = thief.join().unwrap();
            all.extend(mine);
            all.sort_unstable();
            assert_eq!(all, vec![1, 2], "a task was lost or taken twice");
        });
    }

    #[test]
    fn a_lent_list_is_never_read_while_changed() {
        loom::model(|| {
            let list = Arc::new(Lendable::new(vec![1]));
            // SAFETY: this thread is the only owner.
            unsafe { list.open() };
            let borrower = {
                let list = list.clone();
                loom::thread::spawn(move || list.borrow(|v| v.clone()))
            };
            // SAFETY: as above; the list is not changed while open.
            unsafe {
                list.close();
                list.with_mut(|v| v.push(2));
            }
            if let Some(seen) = borrower.join().unwrap() {
                assert_eq!(seen, vec![1], "read a list being changed");
            }
            // SAFETY: as above.
            assert_eq!(unsafe { list.with(|v| v.clone()) }, vec![1, 2]);
        });
    }
}
