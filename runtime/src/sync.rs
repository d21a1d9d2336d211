//! The few synchronisation primitives that the loom models replace.
//!
//! The mailbox, the mute state word and the hand-off of a busy worker's private work
//! (`scheduler::handoff`) are model-checked with loom: under `cfg(loom)` they are built on loom's
//! atomics and cells so that loom can explore every interleaving. Everything else in the runtime
//! uses std directly. Only the lock-free pieces whose correctness hinges on memory orderings go
//! through this module.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize};

/// One round of a wait for another thread that is a few instructions from done (it may have been
/// preempted, so yield now and then). Under loom, a yield, so that the model lets it progress.
#[inline]
pub(crate) fn spin(round: &mut u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        *round = round.wrapping_add(1);
        if *round % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// A std `UnsafeCell` with loom's closure-based access API, so the same code compiles under both.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
}
