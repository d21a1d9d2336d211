//! The actor mailbox: a lock-free, multi-producer single-consumer queue of message blocks, plus
//! the message count that hands the actor's activation from party to party.
//!
//! # The queue: blocks of slots
//! Messages go into blocks of slots (about 512 bytes each: 31 slots for a `u64`, fewer for
//! bigger messages; a block plus the "between blocks" position is a power of two), as in crossbeam's and tokio's list channels. A producer claims the next slot
//! with one compare-and-swap on the tail index, writes the message, and marks the slot written;
//! the one that claims a block's last slot installs the next block, allocated beforehand. The
//! single consumer reads slots in order and frees each block once it has read all of it. So a
//! burst of messages costs one allocation per block rather than one per message: with a node per
//! message (rein's first mailbox, after Pony's `messageq`), fork-join throughput spent two thirds
//! of its time in the allocator's slow paths.
//!
//! A producer touches a block only after its claim succeeded, and a claimed slot keeps its block
//! alive (the consumer frees a block only once every slot of it is read), so no producer ever
//! dereferences a freed block. The tail index counts slots; an offset of `CAP` within a lap
//! (`LAP = CAP + 1` positions per block) means "between blocks": producers that see it wait for
//! the installer (or the releaser, below) to move the index on.
//!
//! **An idle actor keeps no block.** When a turn has read everything claimed, the consumer
//! *releases* the block: it swaps the tail index from exactly where it has read up to to the
//! "between blocks" offset (which succeeds only if no producer has claimed a slot since, and
//! holds every producer off meanwhile), clears both block pointers, moves both indexes to the
//! next lap and frees the block. The next producer allocates a fresh block. An idle actor's
//! mailbox is five words and no allocation. A turn that lingers (below) keeps its block until the
//! lingering ends without mail ([`Mailbox::end_lingering`]): mail is expected soon, and on 16
//! cores a release and a fresh block per message made fork-join throughput 14x slower.
//!
//! # The count: the scheduling handoff
//! Next to the queue, `len` counts messages. A producer increments it *before* claiming a slot;
//! the one whose increment starts from zero owns the job of scheduling the actor. The consumer
//! retires the messages it handled with one subtraction per turn; when that leaves zero it has
//! given up the actor, and the next producer to arrive schedules it again. So exactly one party
//! holds the actor's "activation" at any time: an actor with messages is never left unscheduled
//! and never runs twice at once. (Loom model: `loom_mailbox` in this module.) The count is also
//! the backlog that backpressure reads, for free, from the value the producer's increment
//! returns.
//!
//! Because producers count before they write, the consumer can briefly see `len > 0` while the
//! newest message is not written yet (or its block not installed); `pop` then returns `None`.
//! A turn first waits a little for such a message (`pop_in_flight`), and if it still is not there
//! the turn ends with the actor still holding its activation, to be run again.
//!
//! # The lingering token
//! A worker with nothing else to do may keep a drained actor activated for a while (the
//! scheduler's "Lingering"), so that a producer outside the runtime need not schedule it. The
//! consumer then ends its turn by retiring its messages *and* setting [`LINGER_TOKEN`], one high
//! bit of `len`, in one RMW ([`Mailbox::linger`]). While the token is set, a producer's increment
//! never starts from zero, so no producer schedules the actor; the activation belongs to the token.
//! Whoever clears the token with a CAS gets it: the lingering worker when mail arrives
//! ([`Mailbox::claim_lingering`], only while mail waits) or when it stops looking for work
//! ([`Mailbox::end_lingering`], which also frees the block a lingering actor keeps), or a sender on
//! another worker that would rather run the actor itself. Exactly one CAS wins, so the "one holder" rule above still
//! holds. (Loom model: `loom_linger` in this module.) The token is not a message: backlog readings
//! mask it out.

use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, UnsafeCell};
use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

/// Spins a consumer waits for a message counted but not yet written (`pop_in_flight`).
#[cfg(not(loom))]
const IN_FLIGHT_SPINS: u32 = 128;
/// Under loom, one look after one yield: enough for the model to interleave the producer.
#[cfg(loom)]
const IN_FLIGHT_SPINS: u32 = 1;

/// About how many bytes of slots a block holds.
#[cfg(not(loom))]
const BLOCK_BYTES: usize = 512;
/// Most slots a block holds (small messages).
#[cfg(not(loom))]
const MAX_CAP: usize = 31;

/// One message's place in a block.
///
/// `repr(C)` with the flag first: blocks of equal layout and slot size then keep their flags at
/// the same places whatever the message type, which lets a worker's block cache hand a block
/// freed by one actor to another (see [`block_cache`]).
#[repr(C)]
struct Slot<M> {
    /// Set (Release) once `msg` is written; read (Acquire) by the consumer before it reads it.
    written: AtomicBool,
    msg: UnsafeCell<MaybeUninit<M>>,
}

/// A block's header; `cap::<M>()` slots follow it in the same allocation.
struct Block<M> {
    /// The block after this one, installed by the producer that claims this block's last slot
    /// before it writes that slot.
    next: AtomicPtr<Block<M>>,
    _slots: PhantomData<Slot<M>>,
}

/// Slots per block for messages of type `M`.
#[cfg(not(loom))]
const fn cap<M>() -> usize {
    let slot = std::mem::size_of::<Slot<M>>();
    if slot == 0 {
        return MAX_CAP;
    }
    let n = BLOCK_BYTES / slot;
    let n = if n < 1 {
        1
    } else if n > MAX_CAP {
        MAX_CAP
    } else {
        n
    };
    // One less than a power of two, so that a lap (`cap + 1` positions) is a power of two and
    // the index arithmetic is masks rather than divisions.
    let pow2 = 1usize << (usize::BITS - 1 - (n + 1).leading_zeros());
    pow2 - 1
}

/// Two slots per block under loom, so that its small models cross block boundaries and release
/// blocks.
#[cfg(loom)]
const fn cap<M>() -> usize {
    2
}

/// Tail positions per block: `cap` slots, plus the "between blocks" position.
const fn lap<M>() -> usize {
    cap::<M>() + 1
}

impl<M> Block<M> {
    /// The allocation's layout and where its slots start.
    fn layout() -> (Layout, usize) {
        let slots = Layout::array::<Slot<M>>(cap::<M>()).expect("a small array");
        let (layout, offset) = Layout::new::<Block<M>>()
            .extend(slots)
            .expect("a small block");
        (layout.pad_to_align(), offset)
    }

    /// What makes two blocks interchangeable: equal layouts and equal slot sizes (the flags are
    /// then at the same places, `Slot` being `repr(C)`).
    #[cfg(not(loom))]
    fn cache_key() -> block_cache::Key {
        let (layout, _) = Self::layout();
        block_cache::Key {
            size: layout.size(),
            align: layout.align(),
            slot: std::mem::size_of::<Slot<M>>(),
        }
    }

    /// A block with no next and every slot unwritten: one this thread recycled, or a fresh one.
    fn alloc() -> *mut Block<M> {
        #[cfg(not(loom))]
        {
            let recycled = block_cache::take(Self::cache_key());
            if !recycled.is_null() {
                return recycled.cast();
            }
        }
        Self::alloc_fresh()
    }

    /// A freshly allocated block: no next, every slot unwritten.
    fn alloc_fresh() -> *mut Block<M> {
        let (layout, offset) = Self::layout();
        // SAFETY: the layout is non-zero-sized (it holds at least the `next` pointer).
        let raw = unsafe { alloc::alloc(layout) };
        if raw.is_null() {
            alloc::handle_alloc_error(layout);
        }
        let block = raw.cast::<Block<M>>();
        // SAFETY: `raw` is a fresh allocation of `layout`: the header at its start and `cap`
        // slots at `offset`, each written once here before anyone can see the block.
        unsafe {
            ptr::write(
                block,
                Block {
                    next: AtomicPtr::new(ptr::null_mut()),
                    _slots: PhantomData,
                },
            );
            let slots = raw.add(offset).cast::<Slot<M>>();
            for i in 0..cap::<M>() {
                ptr::write(
                    slots.add(i),
                    Slot {
                        msg: UnsafeCell::new(MaybeUninit::uninit()),
                        written: AtomicBool::new(false),
                    },
                );
            }
        }
        block
    }

    /// Slot `i` of `block`.
    ///
    /// # Safety
    /// `block` is a live block, `i < cap::<M>()`, and the block outlives `'a`.
    unsafe fn slot<'a>(block: *mut Block<M>, i: usize) -> &'a Slot<M> {
        debug_assert!(i < cap::<M>());
        let (_, offset) = Self::layout();
        // SAFETY: per the caller, the block is live and `i` in range; slots were initialised
        // by `alloc`.
        unsafe { &*block.cast::<u8>().add(offset).cast::<Slot<M>>().add(i) }
    }

    /// Gives up a block whose first `used` slots were written and read and whose others were
    /// never claimed: it goes back to this thread's block cache, its flags cleared, or is freed
    /// if the cache is full.
    ///
    /// # Safety
    /// Nobody else can reach `block` any more, and no slot holds an unread message.
    unsafe fn recycle(block: *mut Block<M>, used: usize) {
        #[cfg(not(loom))]
        {
            // SAFETY: the block is ours alone (per the caller) and its first `used` slots live.
            unsafe {
                for i in 0..used {
                    Self::slot(block, i).written.store(false, Relaxed);
                }
                (*block).next.store(ptr::null_mut(), Relaxed);
            }
            if block_cache::put(block.cast(), Self::cache_key()) {
                return;
            }
        }
        #[cfg(loom)]
        let _ = used;
        // SAFETY: per the caller.
        unsafe { Self::free(block) }
    }

    /// Frees a block whose messages were all read (or never written).
    ///
    /// # Safety
    /// Nobody else can reach `block` any more, and no slot holds an unread message.
    unsafe fn free(block: *mut Block<M>) {
        let (layout, offset) = Self::layout();
        // SAFETY: per the caller; `drop_in_place` drops the slots' atomics and cells, never a
        // message (`MaybeUninit` drops nothing).
        unsafe {
            let slots = block.cast::<u8>().add(offset).cast::<Slot<M>>();
            for i in 0..cap::<M>() {
                ptr::drop_in_place(slots.add(i));
            }
            ptr::drop_in_place(block);
            alloc::dealloc(block.cast(), layout);
        }
    }
}

/// The high bit of the mailbox count that marks an actor as lingering (see the module docs).
/// Backlogs stay far below it.
pub(crate) const LINGER_TOKEN: usize = 1 << (usize::BITS - 2);

pub(crate) struct Mailbox<M> {
    /// Messages counted in by producers and not yet retired by the consumer, plus
    /// [`LINGER_TOKEN`] while the actor lingers.
    len: AtomicUsize,
    /// The next position producers claim (see the module docs for offsets and laps).
    tail_index: AtomicUsize,
    /// The block producers write into; null while no block is installed (idle, or released).
    tail_block: AtomicPtr<Block<M>>,
    /// The block the consumer reads; set by the producer that installs a lap's first block.
    head_block: AtomicPtr<Block<M>>,
    /// The next position the consumer reads. Consumer only.
    head_index: UnsafeCell<usize>,
}

// SAFETY: messages are moved from producers to the single consumer; `M: Send` suffices. Blocks
// are owned by the queue and only dereferenced under the protocol described above.
unsafe impl<M: Send> Send for Mailbox<M> {}
// SAFETY: `push` is safe from any thread (atomics only, slots written after a successful claim);
// `pop`/`retire`/`release_if_drained` are `unsafe` and require the caller to be the single
// consumer, which the scheduler guarantees (one turn at a time).
unsafe impl<M: Send> Sync for Mailbox<M> {}

impl<M> Mailbox<M> {
    /// An empty mailbox whose count starts at `initial_activation` (0 or 1): a freshly spawned
    /// actor starts with one activation so that its `started` hook runs before anything else.
    pub(crate) fn new(initial_activation: usize) -> Self {
        Mailbox {
            len: AtomicUsize::new(initial_activation),
            tail_index: AtomicUsize::new(0),
            tail_block: AtomicPtr::new(ptr::null_mut()),
            head_block: AtomicPtr::new(ptr::null_mut()),
            head_index: UnsafeCell::new(0),
        }
    }

    /// Enqueues `msg` and returns the count *before* this push. Zero means the actor was idle and
    /// the caller must schedule it; [`LINGER_TOKEN`] set means it lingers.
    #[inline]
    pub(crate) fn push(&self, msg: M) -> usize {
        // AcqRel: acquire pairs with the consumer's release in `retire` (the previous turn's writes
        // to the actor happen-before whoever schedules it next); release publishes nothing needed
        // but keeps the RMW chain a synchronisation point.
        let before = self.len.fetch_add(1, AcqRel);
        self.enqueue(msg);
        before
    }

    /// Claims a slot and writes `msg` into it.
    #[inline]
    fn enqueue(&self, msg: M) {
        let cap = cap::<M>();
        let lap = lap::<M>();
        // A block made ready before claiming a block's last slot (or a lap's first block), kept
        // across retries.
        let mut spare: *mut Block<M> = ptr::null_mut();
        let mut spins = 0u32;
        // Acquire: a new lap's index (stored with Release after its block pointer) comes with
        // that pointer.
        let mut tail = self.tail_index.load(Acquire);
        let mut block = self.tail_block.load(Acquire);
        loop {
            let offset = tail % lap;
            if offset == cap {
                // Between blocks: an installer or a releaser is moving the index on.
                backoff(&mut spins);
                tail = self.tail_index.load(Acquire);
                block = self.tail_block.load(Acquire);
                continue;
            }
            if block.is_null() {
                // No block in this lap yet: install one. Release publishes its initialisation;
                // acquire orders the head pointer's store after a releaser's (see
                // `release_if_drained`).
                if spare.is_null() {
                    spare = Block::alloc();
                }
                match self
                    .tail_block
                    .compare_exchange(ptr::null_mut(), spare, AcqRel, Acquire)
                {
                    Ok(_) => {
                        block = spare;
                        spare = ptr::null_mut();
                        self.head_block.store(block, Release);
                    }
                    Err(_) => {
                        tail = self.tail_index.load(Acquire);
                        block = self.tail_block.load(Acquire);
                        continue;
                    }
                }
            }
            if offset + 1 == cap && spare.is_null() {
                spare = Block::alloc();
            }
            // The claim. Only a successful one lets this producer touch `block`: the index has
            // not moved since `block` was read with it, so the block is this lap's and, with a
            // slot of it unread, still alive.
            match self
                .tail_index
                .compare_exchange(tail, tail + 1, SeqCst, Acquire)
            {
                Ok(_) => {
                    if offset + 1 == cap {
                        // The last slot: install the next block before writing, so that the
                        // consumer, once it reads this slot, finds the next block linked.
                        let next = std::mem::replace(&mut spare, ptr::null_mut());
                        self.tail_block.store(next, Release);
                        self.tail_index.store(tail + 2, Release);
                        // SAFETY: our claimed slot keeps `block` alive.
                        unsafe { (*block).next.store(next, Release) };
                    }
                    // SAFETY: the slot is ours alone (claimed), in a live block.
                    unsafe {
                        let slot = Block::slot(block, offset);
                        slot.msg.with_mut(|m| (*m).write(msg));
                        // Release: the message (and, for the last slot, the next block's
                        // link) before the flag the consumer reads.
                        slot.written.store(true, Release);
                    }
                    if !spare.is_null() {
                        // SAFETY: made by this call and never shared.
                        unsafe { Block::recycle(spare, 0) };
                    }
                    return;
                }
                Err(current) => {
                    tail = current;
                    block = self.tail_block.load(Acquire);
                }
            }
        }
    }

    /// Dequeues the oldest written message, if any.
    ///
    /// # Safety
    /// Only the single consumer (the thread running the actor's turn) may call this.
    #[inline]
    pub(crate) unsafe fn pop(&self) -> Option<M> {
        let cap = cap::<M>();
        let lap = lap::<M>();
        self.head_index.with_mut(|head| {
            // SAFETY: the caller is the single consumer, so `head` is ours, and the blocks from
            // the head on are alive: only this consumer frees them.
            unsafe {
                let mut block = self.head_block.load(Acquire);
                if block.is_null() {
                    // Counted, not yet claimed (or the lap's first block not yet installed).
                    return None;
                }
                let mut offset = *head % lap;
                if offset == cap {
                    // Every slot of this block is read: move to the next, linked before its
                    // last slot was written.
                    let next = (*block).next.load(Acquire);
                    if next.is_null() {
                        return None;
                    }
                    Block::recycle(block, cap);
                    block = next;
                    self.head_block.store(block, Relaxed);
                    *head += 1;
                    offset = 0;
                }
                let slot = Block::slot(block, offset);
                if !slot.written.load(Acquire) {
                    // Claimed, not written yet.
                    return None;
                }
                let msg = slot.msg.with_mut(|m| (*m).assume_init_read());
                *head += 1;
                Some(msg)
            }
        })
    }

    /// After `pop` found nothing: if the count says a message is on its way (counted by a
    /// producer that has not written it yet), waits a little for it and pops it. `held` is what
    /// the caller's count includes besides unread messages (popped this turn and not retired,
    /// plus activations it holds).
    ///
    /// A producer writes its message a few instructions after counting it, but on another core
    /// the consumer can see the count first. Ending the turn then would cost a whole turn (and,
    /// on a lingering actor, a claim and a requeue) per message, several times over: on 16 cores
    /// fork-join throughput ran more turns than messages. The wait is bounded (about a
    /// microsecond), because a producer preempted between its count and its write may not come
    /// back soon; then the turn ends as before, still holding the activation.
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    #[cold]
    pub(crate) unsafe fn pop_in_flight(&self, held: usize) -> Option<M> {
        if self.backlog() <= held {
            return None;
        }
        let mut round = 0;
        for _ in 0..IN_FLIGHT_SPINS {
            crate::sync::spin(&mut round);
            // SAFETY: the caller's contract.
            if let Some(msg) = unsafe { self.pop() } {
                return Some(msg);
            }
        }
        None
    }

    /// Frees the block if everything claimed has been read, so that an idle actor holds no block
    /// (see the module docs). Returns whether it did.
    ///
    /// # Safety
    /// Only the single consumer may call this, at the end of a turn whose last `pop` returned
    /// `None`.
    pub(crate) unsafe fn release_if_drained(&self) -> bool {
        let lap = lap::<M>();
        let cap = cap::<M>();
        self.head_index.with_mut(|head| {
            // SAFETY: the caller is the single consumer.
            unsafe {
                // Acquire: pairs with the installer's store, so that the install happens-before
                // the clearing of the tail pointer below (else the clearing could come first in
                // the pointer's modification order and a producer still see the freed block).
                let mut block = self.head_block.load(Acquire);
                if block.is_null() {
                    return false;
                }
                if *head % lap == cap {
                    // The block is read to its end: step to the next one (linked, since its
                    // last slot was written) rather than keep both while idle.
                    let next = (*block).next.load(Acquire);
                    if next.is_null() {
                        return false;
                    }
                    Block::recycle(block, cap);
                    block = next;
                    self.head_block.store(block, Relaxed);
                    *head += 1;
                }
                // Exactly where we have read up to: no claim outstanding. Moving the index to
                // this lap's "between blocks" position holds every producer off (they wait
                // for the index to move on) while the block is taken out.
                let used = *head % lap;
                let parked = *head - used + cap;
                if self
                    .tail_index
                    .compare_exchange(*head, parked, SeqCst, Relaxed)
                    .is_err()
                {
                    return false;
                }
                let next_lap = parked + 1;
                // The head first: a producer may see the cleared tail pointer before the new
                // lap's index (its own view of the index being stale) and install the next
                // lap's block at once; its store of the head pointer must come after ours.
                // Release here, AcqRel on its install, put ours first.
                self.head_block.store(ptr::null_mut(), Relaxed);
                self.tail_block.store(ptr::null_mut(), Release);
                *head = next_lap;
                // Release: a producer that reads the new lap's index sees the cleared block
                // pointer (and installs a fresh block).
                self.tail_index.store(next_lap, Release);
                // No producer can reach it: every claim in it has been read, and the claims that
                // would come after it failed or waited, and now find the next lap.
                Block::recycle(block, used);
                true
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

    /// Clears [`LINGER_TOKEN`] if it is set *and mail is waiting*, taking the activation it
    /// held. Returns the messages waiting then (`Some(k > 0)`: the caller now holds the
    /// activation), or `None`: the token was not set (someone else claimed it, or the actor never
    /// lingered), or no mail is waiting, so the actor keeps lingering (a sender whose message
    /// the lingering worker has already handled has nothing to run). Only
    /// [`end_lingering`](Self::end_lingering) ends a lingering stretch with no mail, because
    /// only it frees the block first.
    #[inline]
    pub(crate) fn claim_lingering(&self) -> Option<usize> {
        self.clear_token(true, 0)
    }

    /// Clears [`LINGER_TOKEN`] by CAS, adding `keep` activations in the same step, if the token
    /// is set and (with `need_mail`) mail waits. Returns the messages waiting then.
    #[inline]
    fn clear_token(&self, need_mail: bool, keep: usize) -> Option<usize> {
        let mut current = self.len.load(Acquire);
        loop {
            if current & LINGER_TOKEN == 0 || (need_mail && current == LINGER_TOKEN) {
                return None;
            }
            // SeqCst: the claim is a retire of the token (see `retire`); Acquire on failure to
            // re-read a fresh count.
            match self.len.compare_exchange_weak(
                current,
                current - LINGER_TOKEN + keep,
                SeqCst,
                Acquire,
            ) {
                Ok(_) => return Some(current - LINGER_TOKEN),
                Err(actual) => current = actual,
            }
        }
    }

    /// Ends a lingering stretch: clears [`LINGER_TOKEN`] if it is set, and if no mail came,
    /// frees the mailbox's block before the actor goes idle. Returns `Some(0)` if the actor is
    /// now idle (the caller ended the activation), `Some(k > 0)` if mail waits and the caller holds the
    /// activation, `None` if someone else claimed the token first.
    ///
    /// A lingering actor keeps its block (a turn that lingers does not release it), because
    /// lingering is a bet that mail comes soon: on 16 cores, releasing it at every lingering turn
    /// cost a block allocation, a free on another core and an install per message, and made
    /// fork-join throughput 14x slower. So the block goes here, when the bet is off. The claim
    /// keeps one activation while the block is released (no producer can schedule the actor and
    /// no turn can run meanwhile), then retires it, so an idle actor still holds no block.
    pub(crate) fn end_lingering(&self) -> Option<usize> {
        // The token becomes a plain activation: same count, no handoff to anyone.
        self.clear_token(false, 1)?;
        // SAFETY: we hold the activation (taken from the token above), so we are the single
        // consumer; `release_if_drained` frees the block only if nothing was claimed past what
        // was read, and fails harmlessly otherwise.
        unsafe {
            self.release_if_drained();
            // The activation taken above, and nothing else.
            Some(self.retire(1))
        }
    }

    /// Whether the mailbox holds no block (what an idle actor must not keep).
    #[cfg(test)]
    pub(crate) fn holds_no_block(&self) -> bool {
        self.head_block.load(Acquire).is_null() && self.tail_block.load(Acquire).is_null()
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
        // SAFETY: `&mut self` means no producer or consumer is left; we are the consumer. `pop`
        // frees each block it moves past; whatever is left is the last block, every message of
        // it read.
        unsafe {
            while self.pop().is_some() {}
            let block = self.head_block.load(Relaxed);
            if !block.is_null() {
                Block::free(block);
            }
        }
    }
}

/// Each thread's few spare blocks, so that an actor that drains its mailbox every turn (ping-pong,
/// request and reply) does not pay an allocation, a free and a block initialisation per message.
///
/// A block released by a consumer goes into its thread's cache, flags cleared; the next block a
/// producer on that thread needs comes from there if one of the same shape is cached. The cache
/// holds at most [`block_cache::CAPACITY`] blocks (2 KiB of 512-byte blocks) per thread and frees
/// them when the thread exits. Not used under loom, whose atomics cannot be reused this way.
#[cfg(not(loom))]
mod block_cache {
    use std::alloc::{self, Layout};
    use std::cell::UnsafeCell;

    /// Most blocks one thread keeps.
    pub(super) const CAPACITY: usize = 4;

    /// The shape of a block: its allocation's size and alignment and its slots' size.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) struct Key {
        pub(super) size: usize,
        pub(super) align: usize,
        pub(super) slot: usize,
    }

    struct Cache {
        blocks: [(*mut u8, Key); CAPACITY],
        len: usize,
    }

    impl Drop for Cache {
        fn drop(&mut self) {
            for &(block, key) in &self.blocks[..self.len] {
                // SAFETY: cached blocks were allocated with this size and alignment, and only
                // this cache refers to them.
                unsafe {
                    alloc::dealloc(
                        block,
                        Layout::from_size_align_unchecked(key.size, key.align),
                    )
                };
            }
        }
    }

    thread_local! {
        static CACHE: UnsafeCell<Cache> = const {
            UnsafeCell::new(Cache {
                blocks: [(std::ptr::null_mut(), Key { size: 0, align: 0, slot: 0 }); CAPACITY],
                len: 0,
            })
        };
    }

    /// A cached block of shape `key`, or null.
    #[inline]
    pub(super) fn take(key: Key) -> *mut u8 {
        CACHE
            .try_with(|cache| {
                // SAFETY: this thread's cache, borrowed only inside `take` and `put`, which call
                // nothing that could come back here.
                let cache = unsafe { &mut *cache.get() };
                for i in (0..cache.len).rev() {
                    if cache.blocks[i].1 == key {
                        let block = cache.blocks[i].0;
                        cache.len -= 1;
                        cache.blocks[i] = cache.blocks[cache.len];
                        return block;
                    }
                }
                std::ptr::null_mut()
            })
            .unwrap_or(std::ptr::null_mut())
    }

    /// Keeps `block` (of shape `key`, every flag clear) for later; false if the cache is full or
    /// the thread is exiting, and the caller must free it.
    #[inline]
    pub(super) fn put(block: *mut u8, key: Key) -> bool {
        CACHE
            .try_with(|cache| {
                // SAFETY: as in `take`.
                let cache = unsafe { &mut *cache.get() };
                if cache.len == CAPACITY {
                    return false;
                }
                cache.blocks[cache.len] = (block, key);
                cache.len += 1;
                true
            })
            .unwrap_or(false)
    }
}

/// Waits a little for another producer to move the tail index on: spins first, then yields.
#[inline]
fn backoff(spins: &mut u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if *spins < 6 {
            for _ in 0..(1u32 << *spins) {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        *spins += 1;
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
    fn a_lingering_actor_keeps_its_block_until_its_lingering_ends() {
        let mb = Mailbox::new(0);
        assert_eq!(mb.push(1), 0);
        // SAFETY: this test thread is the only consumer, and holds the activation.
        unsafe {
            assert_eq!(mb.pop(), Some(1));
            assert_eq!(mb.pop(), None);
            assert_eq!(mb.linger(1), 0);
        }
        assert!(!mb.holds_no_block(), "a lingering turn keeps its block");
        assert_eq!(mb.claim_lingering(), None, "no mail: nothing to claim");
        assert_eq!(mb.raw_count(), LINGER_TOKEN, "and it keeps lingering");
        assert_eq!(mb.end_lingering(), Some(0));
        assert!(mb.holds_no_block(), "an idle actor holds no block");
        assert_eq!(mb.raw_count(), 0);
        assert_eq!(mb.end_lingering(), None, "the token is gone");
    }

    #[test]
    fn a_message_counted_but_not_yet_seen_is_waited_for() {
        let mb = Mailbox::new(0);
        // Counted only: as a producer on another core looks between its count and its claim.
        mb.len.fetch_add(1, SeqCst);
        // SAFETY: this test thread is the only consumer.
        unsafe {
            assert_eq!(mb.pop(), None);
            // Nothing beyond what is held: no wait.
            assert_eq!(mb.pop_in_flight(1), None);
            std::thread::scope(|s| {
                s.spawn(|| mb.enqueue(7));
                let mut got = None;
                while got.is_none() {
                    got = mb.pop().or_else(|| mb.pop_in_flight(0));
                }
                assert_eq!(got, Some(7));
            });
        }
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
            self.turn_then(true)
        }

        /// One turn, releasing the block at its end if `release` (a turn about to linger
        /// keeps it).
        pub(super) fn turn_then(&self, release: bool) -> usize {
            assert!(!self.running.swap(true, AcqRel), "two turns at once");
            let mut n = 0;
            // SAFETY: the `running` flag (asserted above) makes this turn the only consumer.
            while let Some(m) = unsafe { self.mailbox.pop() } {
                self.seen.lock().unwrap().push(m);
                n += 1;
            }
            // As a turn does when it has drained the mailbox.
            if release {
                // SAFETY: the only consumer, right after a pop that found nothing.
                unsafe { self.mailbox.release_if_drained() };
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
        // Producers wait for each other between blocks: bound the preemptions, as loom
        // recommends for spin-waits, so that the model finishes.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
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
            // A turn that lingers keeps its block (see `Mailbox::end_lingering`).
            let n = actor.turn_then(false);
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
            if let Some(1..) = actor.mailbox.end_lingering() {
                actor.run_turns();
            }

            outside.join().unwrap();
            worker_sender.join().unwrap();
            let mut seen = actor.seen();
            seen.sort_unstable();
            assert_eq!(seen, vec![1, 2], "lost or duplicated");
            assert_eq!(actor.mailbox.raw_count(), 0, "token or activation leaked");
            assert!(
                actor.mailbox.holds_no_block(),
                "an idle actor kept its block"
            );
        });
    }
}
