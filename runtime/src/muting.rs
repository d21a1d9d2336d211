//! The muting protocol: registering a muted sender with its receivers, and undoing it.
//!
//! [`crate::mute`] holds the per-actor state word; [`crate::mute_graph`] keeps mutes from
//! closing a cycle. This module ties them together with each actor's list of muted senders,
//! and is the code that both the runtime and its loom models (`loom_muting` below) run: it knows
//! nothing of workers, run queues or cells, only of the [`MuteTask`] and [`Scheduling`] traits,
//! so the models can plug in a stand-in scheduler and check the real protocol.
//!
//! Two rules make it race-free (docs/architecture.md §5.3 has the argument):
//!
//! * **Unblocker's rule.** Whoever performs the read-modify-write that takes an actor from
//!   blocking to not blocking then takes that actor's muted-senders list, under its lock, and
//!   unmutes everyone in it.
//! * **Registrant's rule.** A sender registers on a receiver only under the receiver's lock,
//!   after re-reading the receiver's word there and finding it still blocking.
//!
//! Unmuting costs O(senders unmuted): no broadcast to workers, no scan of actors.
//!
//! Threads and async tasks outside the runtime cannot be muted, so they *wait* ([`Waiter`], see
//! [`crate::waiter`]): a waiter is registered under the same lock by the same registrant's rule,
//! and every unblocker that takes the muted senders takes the waiters with them and wakes them.

use crate::id::ActorId;
use crate::mute::{self, MuteWord, Unmuted};
use crate::mute_graph::MuteGraph;
use crate::sync::{AtomicPtr, AtomicU64, Mutex};
use crate::waiter::Waiter;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Arc;

/// An actor as the muting protocol sees it: a cheap, cloneable reference (the runtime's
/// `Task`) that leads to its [`Muting`] state and its identity.
pub(crate) trait MuteTask: Clone {
    /// What else the lazily allocated extras hold, behind the same lock (the runtime keeps its
    /// monitors there, so an idle actor pays for one pointer only).
    type Aux: Default;
    fn muting(&self) -> &Muting<Self>;
    fn actor_id(&self) -> ActorId;
}

/// Counted events, for the runtime's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A sender was registered as muted on a receiver.
    Muted,
    /// A mute would have closed a cycle of muted actors and was refused.
    CycleRefused,
    /// A muted sender was taken off a receiver's list.
    Unmuted,
    /// A parked actor was unmuted for the last time and requeued.
    Resumed,
}

/// What the protocol needs from the scheduler.
pub(crate) trait Scheduling<T> {
    fn mute_graph(&self) -> &MuteGraph;
    /// Puts a resumed actor (which kept its activation while parked) back in a run queue.
    fn requeue(&self, task: T);
    fn count(&self, event: Event);
    /// Wakes an outside waiter the protocol took off a list (after every lock is released).
    fn wake(&self, waiter: Arc<Waiter>);
}

/// An actor's muting state: its state word, and (allocated on first use) its watermarks and the
/// lists behind its lock.
pub(crate) struct Muting<T: MuteTask> {
    pub(crate) word: MuteWord,
    /// Null until first used: most actors are never muted on and never set watermarks, so an
    /// idle actor pays 8 bytes instead of a lock and a box.
    extras: AtomicPtr<Extras<T>>,
}

struct Extras<T: MuteTask> {
    /// `high << 32 | low`: one word, so a reader never pairs an old `low` with a new `high`.
    watermarks: AtomicU64,
    locked: Mutex<Lists<T>>,
}

/// What sits behind an actor's muting lock.
pub(crate) struct Lists<T: MuteTask> {
    /// Senders muted on this actor, to unmute when it stops blocking.
    muted_senders: Vec<T>,
    /// Threads and tasks outside the runtime waiting for this actor to stop blocking.
    waiters: Vec<Arc<Waiter>>,
    /// Senders this actor never mutes (see `rein_backpressure::Backpressure::exempt`).
    exempt: Vec<ActorId>,
    pub(crate) aux: T::Aux,
}

impl<T: MuteTask> Default for Extras<T> {
    fn default() -> Self {
        Extras {
            watermarks: AtomicU64::new(0),
            locked: Mutex::new(Lists {
                muted_senders: Vec::new(),
                waiters: Vec::new(),
                exempt: Vec::new(),
                aux: T::Aux::default(),
            }),
        }
    }
}

impl<T: MuteTask> Default for Muting<T> {
    fn default() -> Self {
        Muting {
            word: MuteWord::new(),
            extras: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl<T: MuteTask> Muting<T> {
    fn extras(&self) -> &Extras<T> {
        let mut ptr = self.extras.load(Acquire);
        if ptr.is_null() {
            let fresh = Box::into_raw(Box::<Extras<T>>::default());
            // AcqRel/Acquire: publish the initialised box, or see the winner's.
            match self
                .extras
                .compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire)
            {
                Ok(_) => ptr = fresh,
                Err(winner) => {
                    // SAFETY: `fresh` was never shared; we still own it.
                    drop(unsafe { Box::from_raw(fresh) });
                    ptr = winner;
                }
            }
        }
        // SAFETY: once set, the pointer stays valid until `self` is dropped (`Drop` below),
        // which cannot happen while `&self` is borrowed.
        unsafe { &*ptr }
    }

    /// Runs `f` under this actor's muting lock. `f` must not run user code: whatever it takes
    /// out (monitors, tasks) it hands back to be used or dropped after the lock is released.
    pub(crate) fn with_lists<R>(&self, f: impl FnOnce(&mut Lists<T>) -> R) -> R {
        let mut guard = self.extras().locked.lock();
        f(&mut guard)
    }

    /// Runs `f` under the lock if the lists were ever allocated: a diagnostic reading that
    /// allocates nothing for an actor nobody was ever muted or waiting on.
    fn peek_lists<R>(&self, f: impl FnOnce(&Lists<T>) -> R) -> Option<R> {
        if self.extras.load(Acquire).is_null() {
            return None;
        }
        Some(f(&self.extras().locked.lock()))
    }

    /// This actor's `(low, high)` watermarks: its own if it set them (`OWN_WATERMARKS` in
    /// `word`, read with at least Acquire), else `defaults`.
    #[inline]
    pub(crate) fn watermarks(&self, word: u64, defaults: (usize, usize)) -> (usize, usize) {
        if word & mute::OWN_WATERMARKS == 0 {
            return defaults;
        }
        // Relaxed: the first value was stored before the flag was set (a SeqCst RMW), and the
        // caller read the flag with Acquire; later values replace the pair at once.
        let packed = self.extras().watermarks.load(Relaxed);
        (
            (packed & u64::from(u32::MAX)) as usize,
            (packed >> 32) as usize,
        )
    }

    /// Gives this actor its own watermarks. Validated by the caller (`low < high`).
    pub(crate) fn set_watermarks(&self, low: u32, high: u32) {
        let packed = (u64::from(high) << 32) | u64::from(low);
        self.extras().watermarks.store(packed, Relaxed);
        self.word.set(mute::OWN_WATERMARKS);
    }

    /// The end of a behaviour of `sender` that sent to blocking `receivers`: registers `sender`
    /// as muted on each that still blocks, unless that would close a cycle of mutes. Returns
    /// whether any registration succeeded (the sender must then try to park).
    ///
    /// An actor under pressure is never muted: it must keep running to release it (its release
    /// may wait on a message only it can handle). An overloaded one is muted like any other; a
    /// cycle is broken instead at the one mute that would close it (see [`crate::mute_graph`]).
    pub(crate) fn register_mutes(sender: &T, receivers: &[T], sched: &impl Scheduling<T>) -> bool {
        if sender.muting().word.load() & mute::PRESSURED != 0 {
            return false;
        }
        let me = sender.actor_id();
        let mut graph = sched.mute_graph().lock();
        let mut any = false;
        for receiver in receivers {
            let to = receiver.actor_id();
            if graph.reaches(to, me) {
                sched.count(Event::CycleRefused);
                continue;
            }
            if receiver.muting().register_muted(sender) {
                graph.add(me, to);
                sched.count(Event::Muted);
                any = true;
            }
        }
        any
    }

    /// Registers `sender` as muted on this actor if this actor still blocks. Returns whether it
    /// did. The re-check under the lock is the registrant's rule (module docs).
    fn register_muted(&self, sender: &T) -> bool {
        self.with_lists(|lists| {
            if mute::is_blocking(self.word.load()) && !lists.exempt.contains(&sender.actor_id()) {
                sender.muting().word.add_mute();
                lists.muted_senders.push(sender.clone());
                true
            } else {
                false
            }
        })
    }

    /// Lists an outside `waiter` on this actor if this actor still blocks. Returns whether it
    /// did; if not, the caller may send at once. The re-check under the lock is the registrant's
    /// rule: the unblocker, which takes the list under the same lock, is sure to wake it.
    pub(crate) fn register_waiter(&self, waiter: &Arc<Waiter>) -> bool {
        self.with_lists(|lists| {
            let blocking = mute::is_blocking(self.word.load());
            if blocking {
                lists.waiters.push(waiter.clone());
            }
            blocking
        })
    }

    /// Takes `waiter` off this actor's list (it gave up: a timeout, a dropped future). Returns
    /// whether it was still listed; if not, an unblocker took it and wakes it (or did).
    pub(crate) fn remove_waiter(&self, waiter: &Arc<Waiter>) -> bool {
        self.with_lists(
            |lists| match lists.waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                Some(i) => {
                    lists.waiters.swap_remove(i);
                    true
                }
                None => false,
            },
        )
    }

    /// How many outside waiters are listed on this actor, for diagnostics.
    pub(crate) fn waiter_count(&self) -> usize {
        self.peek_lists(|lists| lists.waiters.len()).unwrap_or(0)
    }

    /// Clears `flag`; if that leaves the actor (`me`) no longer blocking, unmutes its senders.
    /// Returns whether this call cleared the flag.
    pub(crate) fn clear_blocking_flag(
        &self,
        me: ActorId,
        flag: u64,
        sched: &impl Scheduling<T>,
    ) -> bool {
        match self.word.clear(flag) {
            Some(now_unblocked) => {
                if now_unblocked {
                    self.unmute_senders(me, sched);
                }
                true
            }
            None => false,
        }
    }

    /// Clears `OVERLOADED` if the backlog is still at or below `low`, re-read under the lock
    /// (senders register under it after pushing), so that a burst pushed since the caller read
    /// the backlog does not get its senders unmuted at once. Returns whether it recovered.
    pub(crate) fn recover_if_drained(
        &self,
        me: ActorId,
        low: usize,
        backlog: impl Fn() -> usize,
        sched: &impl Scheduling<T>,
    ) -> bool {
        let cleared =
            self.with_lists(|_| (backlog() <= low).then(|| self.word.clear(mute::OVERLOADED)));
        match cleared.flatten() {
            Some(now_unblocked) => {
                if now_unblocked {
                    self.unmute_senders(me, sched);
                }
                true
            }
            None => false,
        }
    }

    /// The actors muted on this one, for diagnostics.
    pub(crate) fn muted_sender_ids(&self) -> Vec<ActorId> {
        self.peek_lists(|l| l.muted_senders.iter().map(MuteTask::actor_id).collect())
            .unwrap_or_default()
    }

    /// Unmutes every sender muted on this actor (`me`), cascading to the actors muted on those
    /// that resume. Costs O(senders unmuted).
    /// Wakes its outside waiters too.
    pub(crate) fn unmute_senders(&self, me: ActorId, sched: &impl Scheduling<T>) {
        let (senders, waiters) = self.with_lists(Lists::take_unblocked);
        unmute(
            senders.into_iter().map(|s| (s, me)).collect(),
            waiters,
            sched,
        );
    }

    /// Never mute `sender` on this actor (`me`) again, and unmute it now if it is.
    pub(crate) fn exempt(&self, me: ActorId, sender: ActorId, sched: &impl Scheduling<T>) {
        let picked: Vec<T> = self.with_lists(|l| {
            if !l.exempt.contains(&sender) {
                l.exempt.push(sender);
            }
            let (picked, kept) = std::mem::take(&mut l.muted_senders)
                .into_iter()
                .partition(|t| t.actor_id() == sender);
            l.muted_senders = kept;
            picked
        });
        unmute(
            picked.into_iter().map(|s| (s, me)).collect(),
            Vec::new(),
            sched,
        );
    }
}

impl<T: MuteTask> Lists<T> {
    /// Everyone waiting for this actor to stop blocking: its muted senders and its outside
    /// waiters. Taken, under the lock, by whoever unblocked it (the unblocker's rule).
    fn take_unblocked(&mut self) -> (Vec<T>, Vec<Arc<Waiter>>) {
        (
            std::mem::take(&mut self.muted_senders),
            std::mem::take(&mut self.waiters),
        )
    }
}

/// Undoes each `(sender, receiver)` mute, already taken off the receiver's list. A sender whose
/// last mute this was resumes; if it no longer blocks either, the unmuter has performed its
/// unblocking RMW and so, by the unblocker's rule, unmutes its senders too (an explicit work
/// list, not recursion). The graph edges go last, once every mute they stand for is undone.
/// `waiters` (outside waiters taken with the first senders) are woken with those of every
/// actor the cascade unblocks, once no lock is held.
fn unmute<T: MuteTask>(
    mut work: Vec<(T, ActorId)>,
    mut waiters: Vec<Arc<Waiter>>,
    sched: &impl Scheduling<T>,
) {
    let mut undone = Vec::with_capacity(work.len());
    while let Some((sender, receiver)) = work.pop() {
        sched.count(Event::Unmuted);
        let id = sender.actor_id();
        undone.push((id, receiver));
        if let Unmuted::Resume { now_unblocked } = sender.muting().word.unmute_one() {
            if now_unblocked {
                let (more, waiting) = sender.muting().with_lists(Lists::take_unblocked);
                work.extend(more.into_iter().map(|s| (s, id)));
                waiters.extend(waiting);
            }
            // A parked actor kept its activation: requeue it without counting a new one.
            sched.count(Event::Resumed);
            sched.requeue(sender);
        }
    }
    sched.mute_graph().remove_all(&undone);
    for waiter in waiters {
        sched.wake(waiter);
    }
}

impl<T: MuteTask> Drop for Muting<T> {
    fn drop(&mut self) {
        let ptr = self.extras.load(Acquire);
        if !ptr.is_null() {
            // SAFETY: allocated by `extras` with `Box::into_raw`, freed only here, and `&mut
            // self` means nobody else can reach it.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

#[cfg(all(test, loom))]
mod loom_muting {
    //! Models of the real protocol above, with a stand-in scheduler: the requeue just counts.
    //! Each checks that every muted actor is resumed exactly once (by its own turn, or by an
    //! unmuter, never both, never neither), that nothing is left parked, and that the graph
    //! ends empty.
    use super::*;
    use crate::mute::{mute_count, OVERLOADED, PARKED, PRESSURED, STOPPED};
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    struct Actor {
        id: ActorId,
        muting: Muting<Task>,
        resumed: AtomicUsize,
    }

    #[derive(Clone)]
    struct Task(Arc<Actor>);

    impl MuteTask for Task {
        type Aux = ();
        fn muting(&self) -> &Muting<Self> {
            &self.0.muting
        }
        fn actor_id(&self) -> ActorId {
            self.0.id
        }
    }

    #[derive(Default)]
    struct Sched {
        graph: MuteGraph,
        refused: AtomicUsize,
    }

    impl Scheduling<Task> for Sched {
        fn mute_graph(&self) -> &MuteGraph {
            &self.graph
        }
        fn requeue(&self, task: Task) {
            task.0.resumed.fetch_add(1, SeqCst);
        }
        fn count(&self, event: Event) {
            if event == Event::CycleRefused {
                self.refused.fetch_add(1, SeqCst);
            }
        }
        fn wake(&self, waiter: std::sync::Arc<Waiter>) {
            waiter.wake();
        }
    }

    /// A waker that does nothing: the models read the waiter's flag.
    fn noop_waker() -> std::task::Waker {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        std::task::Waker::from(std::sync::Arc::new(Noop))
    }

    /// An outside sender's registration: returns whether it must wait (it was listed).
    fn wait_on(r: &Task, waiter: &std::sync::Arc<Waiter>) -> bool {
        r.muting().register_waiter(waiter)
    }

    fn actor(n: u64, flags: u64) -> Task {
        let t = Task(Arc::new(Actor {
            id: ActorId(n),
            muting: Muting::default(),
            resumed: AtomicUsize::new(0),
        }));
        if flags != 0 {
            t.muting().word.set(flags);
        }
        t
    }

    /// A sender's end of a behaviour that sent to `receivers`: register, then try to park; a
    /// turn that does not park goes on by itself (counted as a resume).
    fn end_behaviour(sender: &Task, receivers: &[Task], sched: &Sched) {
        if !(Muting::register_mutes(sender, receivers, sched) && sender.muting().word.try_park()) {
            sender.0.resumed.fetch_add(1, SeqCst);
        }
    }

    /// A receiver's turn draining to its low watermark.
    fn recover(r: &Task, sched: &Sched) {
        r.muting().recover_if_drained(r.actor_id(), 0, || 0, sched);
    }

    fn assert_settled(tasks: &[&Task], sched: &Sched) {
        for t in tasks {
            let word = t.muting().word.load();
            assert_eq!(mute_count(word), 0, "{:?} still counted muted", t.0.id);
            assert_eq!(word & PARKED, 0, "{:?} left parked", t.0.id);
        }
        assert_eq!(sched.graph.edge_count(), 0, "stale edges in the mute graph");
    }

    #[test]
    fn a_muted_sender_is_resumed_exactly_once() {
        loom::model(|| {
            let sched = Arc::new(Sched::default());
            let r = actor(1, OVERLOADED);
            let s = actor(2, 0);
            let (r2, sched2) = (r.clone(), sched.clone());
            let recovery = loom::thread::spawn(move || recover(&r2, &sched2));
            end_behaviour(&s, &[r.clone()], &sched);
            recovery.join().unwrap();
            assert_eq!(s.0.resumed.load(SeqCst), 1);
            assert_settled(&[&r, &s], &sched);
        });
    }

    #[test]
    fn a_sender_overloaded_while_it_mutes_is_still_resumed_exactly_once() {
        // S registers on R and tries to park while a push overloads S and R recovers. Overloaded
        // or not, S is resumed once: by its own turn or by R's unmute, never both, never neither.
        // Three threads: bound the preemptions, as loom recommends, so it finishes in seconds.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let sched = Arc::new(Sched::default());
            let r = actor(1, OVERLOADED);
            let s = actor(2, 0);
            let (r2, sched2) = (r.clone(), sched.clone());
            let recovery = loom::thread::spawn(move || recover(&r2, &sched2));
            let s2 = s.clone();
            let overload = loom::thread::spawn(move || {
                s2.muting().word.set(OVERLOADED);
            });
            end_behaviour(&s, &[r.clone()], &sched);
            recovery.join().unwrap();
            overload.join().unwrap();
            assert_eq!(s.0.resumed.load(SeqCst), 1);
            assert_settled(&[&r, &s], &sched);
        });
    }

    #[test]
    fn an_overloaded_forwarder_is_muted_and_its_sender_waits_for_its_recovery() {
        // source -> forwarder -> sink. The forwarder is overloaded and sends to the overloaded
        // sink: it is muted (the rule that bounds pipelines). The sink recovers concurrently.
        // The source, muted on the forwarder, must stay muted until the forwarder itself
        // recovers, and then be resumed exactly once.
        loom::model(|| {
            let sched = Arc::new(Sched::default());
            let sink = actor(1, OVERLOADED);
            let fwd = actor(2, OVERLOADED);
            let src = actor(3, 0);
            end_behaviour(&src, &[fwd.clone()], &sched);
            assert_eq!(src.0.resumed.load(SeqCst), 0, "the source parks");
            let (sink2, sched2) = (sink.clone(), sched.clone());
            let recovery = loom::thread::spawn(move || recover(&sink2, &sched2));
            end_behaviour(&fwd, &[sink.clone()], &sched);
            recovery.join().unwrap();
            assert_eq!(fwd.0.resumed.load(SeqCst), 1);
            assert_eq!(
                src.0.resumed.load(SeqCst),
                0,
                "the forwarder is still overloaded: its senders stay muted"
            );
            recover(&fwd, &sched);
            assert_eq!(src.0.resumed.load(SeqCst), 1);
            assert_settled(&[&sink, &fwd, &src], &sched);
        });
    }

    #[test]
    fn two_overloaded_actors_flooding_each_other_never_both_park() {
        // ponyc#3382's shape: A and B overloaded, each sending to the other. At most one of the
        // two mutes can be registered; whichever registers second finds the cycle and goes on.
        loom::model(|| {
            let sched = Arc::new(Sched::default());
            let a = actor(1, OVERLOADED);
            let b = actor(2, OVERLOADED);
            let (a2, b2, sched2) = (a.clone(), b.clone(), sched.clone());
            let other = loom::thread::spawn(move || end_behaviour(&b2, &[a2], &sched2));
            end_behaviour(&a, &[b.clone()], &sched);
            other.join().unwrap();
            let parked = [&a, &b]
                .iter()
                .filter(|t| t.muting().word.load() & PARKED != 0)
                .count();
            assert_eq!(
                parked, 1,
                "one mute registers (a cycle of two would deadlock)"
            );
            assert_eq!(
                sched.refused.load(SeqCst),
                1,
                "the other is refused for the cycle"
            );
            // Whichever runs on drains and recovers, which resumes the other.
            recover(&a, &sched);
            recover(&b, &sched);
            assert_eq!(a.0.resumed.load(SeqCst), 1);
            assert_eq!(b.0.resumed.load(SeqCst), 1);
            assert_settled(&[&a, &b], &sched);
        });
    }

    #[test]
    fn an_outside_waiter_is_woken_by_the_recovery_or_never_waits() {
        // The registrant's rule for waiters: registered on a receiver that recovers concurrently,
        // the waiter is either listed before the recovery takes the list (and woken), or sees
        // the receiver recovered and does not wait. Never listed and left asleep.
        loom::model(|| {
            let sched = Arc::new(Sched::default());
            let r = actor(1, OVERLOADED);
            let (r2, sched2) = (r.clone(), sched.clone());
            let recovery = loom::thread::spawn(move || recover(&r2, &sched2));
            let waiter = Waiter::new(noop_waker());
            let waits = wait_on(&r, &waiter);
            recovery.join().unwrap();
            if waits {
                assert!(waiter.is_woken(), "listed and never woken");
            }
            assert_eq!(r.muting().waiter_count(), 0, "left on the list");
        });
    }

    #[test]
    fn an_outside_waiter_on_a_muted_actor_is_woken_when_the_cascade_unblocks_it() {
        // fwd is muted (parked) on an overloaded sink, so it blocks; a thread waits on fwd while
        // the sink recovers. The cascade that resumes fwd unblocks it and must wake the waiter.
        loom::model(|| {
            let sched = Arc::new(Sched::default());
            let sink = actor(1, OVERLOADED);
            let fwd = actor(2, 0);
            end_behaviour(&fwd, &[sink.clone()], &sched);
            assert_eq!(fwd.0.resumed.load(SeqCst), 0, "fwd parks");
            let (sink2, sched2) = (sink.clone(), sched.clone());
            let recovery = loom::thread::spawn(move || recover(&sink2, &sched2));
            let waiter = Waiter::new(noop_waker());
            let waits = wait_on(&fwd, &waiter);
            recovery.join().unwrap();
            assert_eq!(fwd.0.resumed.load(SeqCst), 1);
            if waits {
                assert!(waiter.is_woken(), "listed on fwd and never woken");
            }
            assert_eq!(fwd.muting().waiter_count(), 0);
            assert_settled(&[&sink, &fwd], &sched);
        });
    }

    #[test]
    fn an_outside_waiter_is_woken_by_a_stop_or_a_release_racing_it() {
        // A pressured receiver that stops (STOPPED set, then its lists taken) while a waiter
        // registers, and one whose pressure is released: the waiter is woken or never waits.
        for stop in [true, false] {
            loom::model(move || {
                let sched = Arc::new(Sched::default());
                let r = actor(1, PRESSURED);
                let (r2, sched2) = (r.clone(), sched.clone());
                let unblocker = loom::thread::spawn(move || {
                    if stop {
                        r2.muting().word.set(STOPPED);
                        r2.muting().unmute_senders(r2.actor_id(), &*sched2);
                    } else {
                        r2.muting()
                            .clear_blocking_flag(r2.actor_id(), PRESSURED, &*sched2);
                    }
                });
                let waiter = Waiter::new(noop_waker());
                let waits = wait_on(&r, &waiter);
                unblocker.join().unwrap();
                if waits {
                    assert!(waiter.is_woken(), "listed and never woken (stop: {stop})");
                }
                assert_eq!(r.muting().waiter_count(), 0);
            });
        }
    }

    #[test]
    fn two_receivers_recovering_resume_the_sender_once() {
        loom::model(|| {
            let sched = Arc::new(Sched::default());
            let rs = [actor(1, OVERLOADED), actor(2, OVERLOADED)];
            let s = actor(3, 0);
            end_behaviour(&s, &rs, &sched);
            assert_eq!(s.0.resumed.load(SeqCst), 0, "parked on both");
            let threads: Vec<_> = rs
                .iter()
                .cloned()
                .map(|r| {
                    let sched = sched.clone();
                    loom::thread::spawn(move || recover(&r, &sched))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(s.0.resumed.load(SeqCst), 1);
            assert_settled(&[&rs[0], &rs[1], &s], &sched);
        });
    }
}
