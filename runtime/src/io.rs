//! I/O readiness on the workers: an idle worker waits for sockets itself.
//!
//! Why not a thread of its own: with a separate I/O thread, every readiness edge crosses from
//! that thread to a worker, wakes it, and waits in a queue, so a network round trip pays two
//! thread hand-offs and a futex wake. Here an idle worker blocks in `epoll_wait` instead of
//! its futex (one worker at a time: whoever takes the poller's lock), and an edge runs its
//! owner's turn on that very worker. tokio's multi-thread scheduler parks one worker on its I/O
//! driver the same way.
//!
//! What the separate thread gave, kept:
//! * **Readiness is never muted.** The poller delivers an edge by calling its owner (normally a
//!   send to an actor) between turns, on a worker but outside any behaviour, so the send mutes
//!   nobody, and it reaches an actor whose own senders are muted on it: the ponyc#3382 deadlock
//!   (an actor that waits for I/O to release its own pressure) cannot arise.
//! * **Quiescence and ending by itself.** Each registration holds a keep-alive on the runtime;
//!   the worker in `epoll_wait` counts as asleep, and the runtime's end wakes it through the
//!   poller's waker. An idle runtime blocks in the kernel: 0 % CPU.
//! * **Busy workers do not starve sockets.** When every worker is running actors, nobody sleeps
//!   in `epoll_wait`; a busy worker looks (without blocking) every 61 picks, as it looks at the
//!   injector.
//!
//! Who wakes the poller: a waker that finds the poller on the sleepers list prefers another
//! sleeper (the poller keeps watching sockets); when it must wake the poller, it writes the
//! poller's eventfd after setting its `notified` flag, and the poller reads that flag after
//! publishing itself as poller: a store-buffering pair, each side's store and load separated by
//! a SeqCst fence, so at least one side sees the other (loom model: `loom_poller`).
//!
//! A failed `epoll_wait` (anything but `EINTR`) is not a silent stop: the driver marks itself
//! failed, every owner hears [`Readiness::failed`], further registrations are refused with the
//! error, and [`Metrics::io_failures`](crate::Metrics::io_failures) counts it.
//!
//! Sources are registered by file descriptor ([`Io::register`]), so mio stays an implementation
//! detail: `rein-net` registers its sockets through this, and so can users.

use crate::scheduler::Shared;
use crate::KeepAlive;
use mio::{Events, Poll, Registry, Token, Waker};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::ops::BitOr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// The waker's token; sources get tokens from 1 up.
const WAKER: Token = Token(0);
/// `Driver::poller` when no worker is blocked in `epoll_wait`.
pub(crate) const NO_POLLER: usize = usize::MAX;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;

/// What happened on a registered source: one edge, handed to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Readiness {
    /// Data (or a connection, or end of stream) can be read.
    pub readable: bool,
    /// Bytes can be written (or a pending connect finished).
    pub writable: bool,
    /// The peer closed one or both directions, or the socket has an error.
    pub closed: bool,
    /// The runtime's readiness polling failed: no further edge will come for this source.
    /// See [`Io`].
    pub failed: bool,
}

impl Readiness {
    fn of(event: &mio::event::Event) -> Self {
        Readiness {
            readable: event.is_readable(),
            writable: event.is_writable(),
            closed: event.is_read_closed() || event.is_write_closed() || event.is_error(),
            failed: false,
        }
    }

    /// Readable, writable and closed at once, as a test or a wrapper might deliver by hand.
    pub fn all() -> Self {
        Readiness {
            readable: true,
            writable: true,
            closed: true,
            failed: false,
        }
    }

    /// What every owner hears once polling has failed.
    pub fn poll_failed() -> Self {
        Readiness {
            failed: true,
            ..Readiness::all()
        }
    }
}

/// Which readiness a registration asks to hear of.
///
/// ```
/// use rein::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert!(!Interest::READABLE.is_writable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    readable: bool,
    writable: bool,
}

impl Interest {
    /// Readable (data, a connection to accept, end of stream).
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    /// Writable (room to write, a connect finished).
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };

    /// Whether readable edges are asked for.
    pub fn is_readable(self) -> bool {
        self.readable
    }

    /// Whether writable edges are asked for.
    pub fn is_writable(self) -> bool {
        self.writable
    }

    fn to_mio(self) -> mio::Interest {
        match (self.readable, self.writable) {
            (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
            (false, true) => mio::Interest::WRITABLE,
            // Both constants have one of the two set, and `|` only adds.
            _ => mio::Interest::READABLE,
        }
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
        }
    }
}

/// Whoever hears a registration's edges: called on a worker, between turns.
type Owner = Arc<dyn Fn(Readiness) + Send + Sync>;

/// Edges taken by one poll, to hand to their owners once the poller is awake (see
/// [`Edges::deliver`]).
pub(crate) struct Edges(Vec<(Owner, Readiness)>);

impl Edges {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands each edge to its owner, on this thread. Outside every lock: an owner's send may
    /// run arbitrary `From` code.
    pub(crate) fn deliver(self) {
        for (owner, readiness) in self.0 {
            owner(readiness);
        }
    }
}

struct Entry {
    owner: Owner,
    _alive: KeepAlive,
}

/// What only the polling worker touches.
struct PollState {
    poll: Poll,
    events: Events,
}

/// The runtime's readiness driver: created on the first registration.
pub(crate) struct Driver {
    /// Held by the one worker that polls (blocking when idle, or a quick look when busy).
    state: Mutex<PollState>,
    registry: Registry,
    waker: Waker,
    owners: Mutex<HashMap<usize, Entry>>,
    next_token: AtomicUsize,
    /// The index of the worker blocked in `epoll_wait`, or [`NO_POLLER`].
    poller: AtomicUsize,
    /// Set once `epoll_wait` failed: the error registrations are refused with.
    failed: Mutex<Option<io::ErrorKind>>,
    /// Failed polls (0 or 1: a failed driver stops polling), for the metrics.
    pub(crate) failures: std::sync::atomic::AtomicU64,
    #[cfg(test)]
    pub(crate) fail_next_poll: std::sync::atomic::AtomicBool,
}

impl Driver {
    pub(crate) fn new() -> io::Result<Driver> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok(Driver {
            state: Mutex::new(PollState {
                poll,
                events: Events::with_capacity(EVENTS),
            }),
            registry,
            waker,
            owners: Mutex::new(HashMap::new()),
            next_token: AtomicUsize::new(1),
            poller: AtomicUsize::new(NO_POLLER),
            failed: Mutex::new(None),
            failures: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            fail_next_poll: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The worker blocked in `epoll_wait`, if any (SeqCst: see the module docs).
    #[inline]
    pub(crate) fn poller(&self) -> usize {
        self.poller.load(SeqCst)
    }

    /// Wakes the worker blocked in `epoll_wait`, if any.
    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// Polls once, as worker `me`, if no other worker is polling: blocking (until an edge, a
    /// wake-up, or `until` if given: the timekeeper's deadline) when `block`, else a quick look.
    /// `woken` is read after `me` is published as the poller and before blocking: if it says
    /// the worker was woken already, the poll does not block. Returns the edges taken, for the caller to [deliver](Edges::deliver) once it
    /// counts as awake, or `None` if another worker holds the poller.
    pub(crate) fn poll(
        &self,
        me: usize,
        block: bool,
        until: Option<std::time::Instant>,
        woken: impl Fn() -> bool,
    ) -> Option<Edges> {
        if self.failed.lock().is_some() {
            // A failed driver polls no more; its owners have heard.
            return None;
        }
        let mut state = self.state.try_lock()?;
        let PollState { poll, events } = &mut *state;
        let mut timeout = Some(Duration::ZERO);
        if block {
            // Publish, fence, then read the worker's wake-up flag: the other half of the
            // waker's store of that flag, fence and load of `poller` (module docs).
            self.poller.store(me, SeqCst);
            std::sync::atomic::fence(SeqCst);
            if !woken() {
                // epoll_wait counts whole milliseconds (mio rounds up): a timer fires at most a
                // millisecond late, never early.
                timeout = until.map(|u| u.saturating_duration_since(std::time::Instant::now()));
            }
        }
        let result = self.poll_once(poll, events, timeout);
        if block {
            self.poller.store(NO_POLLER, SeqCst);
        }
        let ready: Vec<(Owner, Readiness)> = match result {
            Ok(()) => {
                let owners = self.owners.lock();
                events
                    .iter()
                    .filter(|e| e.token() != WAKER)
                    .filter_map(|e| {
                        let entry = owners.get(&e.token().0)?;
                        Some((entry.owner.clone(), Readiness::of(e)))
                    })
                    .collect()
            }
            Err(e) => self.fail(e),
        };
        drop(state);
        Some(Edges(ready))
    }

    fn poll_once(
        &self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_next_poll.swap(false, SeqCst) {
            return Err(io::Error::other("injected poll failure"));
        }
        loop {
            match poll.poll(events, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Polling failed: refuse registrations from now on and tell every owner.
    fn fail(&self, e: io::Error) -> Vec<(Owner, Readiness)> {
        *self.failed.lock() = Some(e.kind());
        self.failures.fetch_add(1, Relaxed);
        self.owners
            .lock()
            .values()
            .map(|entry| (entry.owner.clone(), Readiness::poll_failed()))
            .collect()
    }

    fn check_failed(&self) -> io::Result<()> {
        match *self.failed.lock() {
            Some(kind) => Err(io::Error::new(
                kind,
                "the runtime's readiness polling failed earlier",
            )),
            None => Ok(()),
        }
    }

    fn registered(&self) -> usize {
        self.owners.lock().len()
    }
}

/// The runtime's I/O registry, from [`RuntimeHandle::io`](crate::RuntimeHandle::io): register
/// a non-blocking file descriptor and each readiness edge (edge-triggered) is handed to your
/// owner function on a worker, between turns; typically the owner sends a message to an actor.
/// `rein-net` builds its sockets on this.
///
/// Each registration keeps the runtime from ending by quiescence until it is deregistered.
/// With edge-triggered readiness, read (or write) until `WouldBlock` before expecting the next
/// edge. Not available in deterministic mode (registration fails with `Unsupported`): readiness
/// comes when the kernel says so, which no seed can replay.
///
/// ```
/// use rein::{Actor, Context, Interest, Readiness};
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
///
/// /// Counts what arrives on a Unix socket until its end of stream.
/// struct Pipe {
///     stream: UnixStream,
///     registration: Option<rein::IoRegistration>,
///     got: usize,
/// }
/// impl Actor for Pipe {
///     type Msg = Readiness;
///     fn started(&mut self, ctx: &mut Context<Self>) {
///         let me = ctx.myself();
///         let io = ctx.runtime().io();
///         let owner = move |ready| {
///             let _ = me.send(ready);
///         };
///         self.registration =
///             Some(io.register(self.stream.as_raw_fd(), Interest::READABLE, owner).unwrap());
///     }
///     fn handle(&mut self, ctx: &mut Context<Self>, _ready: Readiness) {
///         let mut buf = [0; 64];
///         loop {
///             match self.stream.read(&mut buf) {
///                 Ok(0) => {
///                     // Deregisters: the runtime may end.
///                     drop(self.registration.take());
///                     ctx.stop();
///                     return;
///                 }
///                 Ok(n) => self.got += n,
///                 Err(_) => return, // WouldBlock: wait for the next edge
///             }
///         }
///     }
/// }
///
/// let rt = rein::Runtime::new().unwrap();
/// let (ours, mut theirs) = UnixStream::pair().unwrap();
/// ours.set_nonblocking(true).unwrap();
/// rt.spawn(Pipe { stream: ours, registration: None, got: 0 });
/// theirs.write_all(b"hello").unwrap();
/// drop(theirs);
/// rt.wait(); // ends once the pipe has seen its end of stream and let go of it
/// ```
#[derive(Clone)]
pub struct Io {
    shared: Arc<Shared>,
}

impl Io {
    pub(crate) fn new(shared: Arc<Shared>) -> Io {
        Io { shared }
    }

    /// Registers `fd` so that each readiness edge in `interest` is handed to `owner` (on a
    /// worker, between turns; it must not block). Until the returned registration is dropped
    /// (which deregisters `fd`) the runtime does not end by quiescence. `fd` must stay open
    /// while registered.
    #[cfg(unix)]
    pub fn register(
        &self,
        fd: std::os::fd::RawFd,
        interest: Interest,
        owner: impl Fn(Readiness) + Send + Sync + 'static,
    ) -> io::Result<IoRegistration> {
        let driver = self.shared.io_driver()?;
        driver.check_failed()?;
        let token = driver.next_token.fetch_add(1, Relaxed);
        let keep_alive = crate::RuntimeHandle::new(self.shared.clone()).keep_alive();
        // Enter the owner first, so that no edge can arrive for a token the poller does not
        // know (with edge-triggered polling such an edge would be lost for good).
        driver.owners.lock().insert(
            token,
            Entry {
                owner: Arc::new(owner),
                _alive: keep_alive,
            },
        );
        let source = &mut mio::unix::SourceFd(&fd);
        if let Err(e) = driver
            .registry
            .register(source, Token(token), interest.to_mio())
        {
            let entry = driver.owners.lock().remove(&token);
            drop(entry);
            return Err(e);
        }
        Ok(IoRegistration {
            shared: self.shared.clone(),
            token,
            fd,
        })
    }

    /// Sources registered now (each one keeps the runtime alive).
    pub fn registered(&self) -> usize {
        self.shared.io().map_or(0, Driver::registered)
    }
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Io({} registered)", self.registered())
    }
}

/// A registered file descriptor (see [`Io::register`]). Dropping it deregisters the descriptor
/// and releases its hold on the runtime.
#[must_use = "dropping the registration deregisters the descriptor at once"]
pub struct IoRegistration {
    shared: Arc<Shared>,
    token: usize,
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
}

impl IoRegistration {
    /// Changes the interest set (edge-triggered, like the first registration).
    #[cfg(unix)]
    pub fn reregister(&self, interest: Interest) -> io::Result<()> {
        let driver = self.shared.io_driver()?;
        driver.registry.reregister(
            &mut mio::unix::SourceFd(&self.fd),
            Token(self.token),
            interest.to_mio(),
        )
    }
}

impl Drop for IoRegistration {
    fn drop(&mut self) {
        if let Some(driver) = self.shared.io() {
            #[cfg(unix)]
            let _ = driver
                .registry
                .deregister(&mut mio::unix::SourceFd(&self.fd));
            // Dropped outside the lock: the owner may hold the last address of an actor.
            let entry = driver.owners.lock().remove(&self.token);
            drop(entry);
        }
    }
}

impl std::fmt::Debug for IoRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IoRegistration({})", self.token)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Actor, Context, Runtime};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::AtomicU64;
    use std::sync::mpsc;

    /// Counts the edges it hears and reports a failed one.
    struct Watcher {
        stream: UnixStream,
        registration: Option<IoRegistration>,
        edges: Arc<AtomicU64>,
        failed: mpsc::Sender<()>,
    }

    impl Actor for Watcher {
        type Msg = Readiness;
        fn started(&mut self, ctx: &mut Context<Self>) {
            let me = ctx.myself();
            let registration = ctx
                .runtime()
                .io()
                .register(self.stream.as_raw_fd(), Interest::READABLE, move |r| {
                    let _ = me.send(r);
                })
                .expect("register");
            self.registration = Some(registration);
        }
        fn handle(&mut self, ctx: &mut Context<Self>, ready: Readiness) {
            self.edges.fetch_add(1, SeqCst);
            if ready.failed {
                let _ = self.failed.send(());
                self.registration = None;
                ctx.stop();
            }
        }
    }

    #[test]
    fn a_failed_poll_is_reported_to_every_owner_and_counted() {
        let rt = Runtime::builder().threads(2).build().unwrap();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let edges = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        rt.spawn(Watcher {
            stream: ours,
            registration: None,
            edges: edges.clone(),
            failed: tx,
        });
        // An edge first, so that the driver is running and polled.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while edges.load(SeqCst) == 0 {
            theirs.write_all(b"x").unwrap();
            assert!(std::time::Instant::now() < deadline, "no edge arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
        let driver = rt.shared().io().expect("a driver");
        driver.fail_next_poll.store(true, SeqCst);
        // Wake the poller (or let a busy worker look) so that the failure happens.
        driver.wake();
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the owner heard of the failure");
        let err = rt
            .handle()
            .io()
            .register(theirs.as_raw_fd(), Interest::READABLE, |_| {})
            .expect_err("a failed driver takes no registration");
        assert!(err.to_string().contains("polling failed"), "{err}");
        let report = rt.wait_timeout(Duration::from_secs(30)).expect("it ends");
        assert!(report.quiescent);
        assert_eq!(report.metrics.io_failures, 1);
    }

    #[test]
    fn deterministic_mode_refuses_io() {
        let rt = Runtime::builder().deterministic(1).build().unwrap();
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let err = rt
            .handle()
            .io()
            .register(ours.as_raw_fd(), Interest::READABLE, |_| {})
            .expect_err("no I/O in deterministic mode");
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        rt.wait();
    }
}

#[cfg(all(test, loom))]
mod loom_poller {
    //! The wake-up handshake between a waker and the worker about to block in `epoll_wait`,
    //! with loom's atomics standing in for `Shared::notified`, `Driver::poller` and the eventfd
    //! (mio cannot run under loom; the orderings and the order of the steps are the code's):
    //!
    //! * poller (`Driver::poll`): `poller = me`, SeqCst fence, then block only if
    //!   `notified[me]` is still false;
    //! * waker (`Shared::notify_one`, `wake_worker`): `notified[me] = true`, SeqCst fence, then
    //!   write the eventfd if `poller == me`.
    //!
    //! (Loom does not model SeqCst accesses as one total order, only SeqCst fences: without the
    //! fences this model finds the lost wake-up.)
    //!
    //! The poller must never block with its wake-up lost: it either sees the flag, or the waker
    //! sees it polling and writes the eventfd, which ends the block.
    use loom::sync::atomic::{fence, AtomicBool, AtomicUsize};
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    const ME: usize = 1;
    const NONE: usize = usize::MAX;

    #[test]
    fn a_worker_in_epoll_wait_is_never_left_asleep_with_work() {
        loom::model(|| {
            let notified = Arc::new(AtomicBool::new(false));
            let poller = Arc::new(AtomicUsize::new(NONE));
            let eventfd = Arc::new(AtomicBool::new(false));

            let waker = {
                let (notified, poller, eventfd) =
                    (notified.clone(), poller.clone(), eventfd.clone());
                loom::thread::spawn(move || {
                    notified.store(true, SeqCst);
                    fence(SeqCst);
                    if poller.load(SeqCst) == ME {
                        eventfd.store(true, SeqCst);
                    }
                })
            };

            poller.store(ME, SeqCst);
            fence(SeqCst);
            // Whether the worker goes on into `epoll_wait` with no timeout.
            let blocks = !notified.load(SeqCst);
            waker.join().unwrap();
            // A blocked `epoll_wait` returns only if the eventfd is written: once the waker has
            // run, a worker that blocked must have been written to.
            assert!(!blocks || eventfd.load(SeqCst), "a lost wake-up");
            poller.store(NONE, SeqCst);
        });
    }
}
