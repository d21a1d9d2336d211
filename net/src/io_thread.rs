//! The I/O thread: one `mio::Poll` per [`Reactor`], delivering readiness to actors as messages.
//!
//! Why a separate thread rather than polling on the workers: a worker that blocks in `epoll_wait`
//! cannot run actors, and a worker that never blocks burns a core. One thread per reactor sleeps
//! in the kernel and turns each edge into an ordinary send. Sends from threads outside the
//! runtime are never muted in rein, so readiness always reaches its actor, even one whose own
//! senders are muted on it: the ponyc#3382 style deadlock (an actor that waits for I/O to release
//! its own pressure) cannot arise.
//!
//! Registration goes straight through `mio::Registry`, which is thread-safe, after the owner is
//! entered in a shared token map. Entering the owner *first* means no edge can arrive for a token
//! the I/O thread does not know (with edge-triggered polling such an edge would be lost for good).
//! The `mio::Waker` only ends the thread.
//!
//! Each live registration holds a [`KeepAlive`] on the runtime, so a server keeps running while it
//! listens or has connections and the program still ends by itself once they are all closed.
//!
//! mio stays private, the way tokio hides it: users register their own sources by file
//! descriptor ([`Reactor::register`], Unix) with rein's [`Interest`], so a change of mio version,
//! or of where readiness comes from, is not a change of this crate's API.

use mio::event::Source;
use mio::{Events, Poll, Registry, Token, Waker};
use rein::{KeepAlive, Recipient, RuntimeHandle};
use std::collections::HashMap;
use std::io;
use std::ops::{BitOr, Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAKER: Token = Token(0);

/// What the I/O thread saw on a source: one edge, sent to the source's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Data (or a connection, or end of stream) can be read.
    pub readable: bool,
    /// Bytes can be written (or a pending connect finished).
    pub writable: bool,
    /// The peer closed one or both directions, or the socket has an error.
    pub closed: bool,
}

impl Readiness {
    fn of(event: &mio::event::Event) -> Self {
        Readiness {
            readable: event.is_readable(),
            writable: event.is_writable(),
            closed: event.is_read_closed() || event.is_write_closed() || event.is_error(),
        }
    }
}

/// Which readiness a registration asks to hear of.
///
/// ```
/// use rein_net::Interest;
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

/// Whoever hears of a registration's edges.
pub(crate) type Owner = Arc<dyn Fn(Readiness) + Send + Sync>;

struct Entry {
    owner: Owner,
    _alive: KeepAlive,
}

struct Shared {
    owners: Mutex<HashMap<Token, Entry>>,
    stop: AtomicBool,
    runtime: RuntimeHandle,
}

struct Inner {
    shared: Arc<Shared>,
    registry: Registry,
    waker: Waker,
    next: AtomicUsize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// A handle on one I/O thread serving one runtime. Cheap to clone; the thread ends once every
/// clone (and every [`Registered`] source, which holds one) is gone, or once the runtime has
/// ended.
#[derive(Clone)]
pub struct Reactor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reactor")
    }
}

impl Reactor {
    /// Starts an I/O thread for the runtime behind `runtime`.
    pub fn start(runtime: &RuntimeHandle) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            owners: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            runtime: runtime.clone(),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("rein-net-io".into())
            .spawn(move || run(poll, thread_shared))?;
        Ok(Reactor {
            inner: Arc::new(Inner {
                shared,
                registry,
                waker,
                next: AtomicUsize::new(1),
            }),
        })
    }

    /// The runtime this reactor serves.
    pub fn runtime(&self) -> &RuntimeHandle {
        &self.inner.shared.runtime
    }

    /// Registers a file descriptor (edge-triggered) so that each readiness edge is sent to
    /// `owner`. Until the returned guard is dropped the runtime does not end by quiescence.
    ///
    /// Use it for your own non-blocking sources (pipes, Unix sockets, UDP sockets, ...): give
    /// it `actor_ref.recipient()` for an actor whose message type implements
    /// `From<Readiness>`, and keep the [`Registered`] guard in that actor; it derefs to `io`.
    /// With edge-triggered readiness, read (or write) until `WouldBlock` before expecting the
    /// next edge.
    ///
    /// ```
    /// use rein::{Actor, Context};
    /// use rein_net::{Interest, Reactor, Readiness, Registered};
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    ///
    /// /// Counts what arrives on a Unix socket until its end of stream.
    /// struct Pipe {
    ///     reactor: Reactor,
    ///     stream: Option<UnixStream>,
    ///     end: Option<Registered<UnixStream>>,
    ///     got: usize,
    /// }
    /// impl Actor for Pipe {
    ///     type Msg = Readiness;
    ///     fn started(&mut self, ctx: &mut Context<Self>) {
    ///         let stream = self.stream.take().unwrap();
    ///         let owner = ctx.myself().recipient();
    ///         self.end = Some(self.reactor.register(stream, Interest::READABLE, owner).unwrap());
    ///     }
    ///     fn handle(&mut self, ctx: &mut Context<Self>, _ready: Readiness) {
    ///         let mut buf = [0; 64];
    ///         while let Some(end) = self.end.as_mut() {
    ///             match end.read(&mut buf) {
    ///                 Ok(0) => {
    ///                     println!("{} bytes", self.got);
    ///                     self.end = None; // deregisters: the runtime may end
    ///                     ctx.stop();
    ///                 }
    ///                 Ok(n) => self.got += n,
    ///                 Err(_) => return, // WouldBlock: wait for the next edge
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let rt = rein::Runtime::new().unwrap();
    /// let reactor = Reactor::start(&rt.handle()).unwrap();
    /// let (ours, mut theirs) = UnixStream::pair().unwrap();
    /// ours.set_nonblocking(true).unwrap();
    /// rt.spawn(Pipe { reactor: reactor.clone(), stream: Some(ours), end: None, got: 0 });
    /// theirs.write_all(b"hello").unwrap();
    /// drop(theirs);
    /// rt.wait(); // ends once the pipe has seen its end of stream and let go of it
    /// assert_eq!(reactor.registered(), 0);
    /// ```
    #[cfg(unix)]
    pub fn register<S: std::os::fd::AsRawFd>(
        &self,
        io: S,
        interest: Interest,
        owner: Recipient<Readiness>,
    ) -> io::Result<Registered<S>> {
        let owner: Owner = Arc::new(move |ready| {
            let _ = owner.send(ready);
        });
        self.enter(io, interest, owner, fd::For::<S>::OPS)
    }

    /// Registers a mio source (the crate's own sockets).
    pub(crate) fn register_source<S: Source>(
        &self,
        source: S,
        interest: Interest,
        owner: Owner,
    ) -> io::Result<Registered<S>> {
        let ops = Ops {
            register: |registry, s, token, interest| registry.register(s, token, interest),
            reregister: |registry, s, token, interest| registry.reregister(s, token, interest),
            deregister: |registry, s| registry.deregister(s),
        };
        self.enter(source, interest, owner, ops)
    }

    /// Enters the owner first (so no edge can arrive for a token the I/O thread does not know),
    /// then registers.
    fn enter<S>(
        &self,
        mut source: S,
        interest: Interest,
        owner: Owner,
        ops: Ops<S>,
    ) -> io::Result<Registered<S>> {
        let token = Token(self.inner.next.fetch_add(1, Ordering::Relaxed));
        let entry = Entry {
            owner,
            _alive: self.inner.shared.runtime.keep_alive(),
        };
        self.owners().insert(token, entry);
        let registry = &self.inner.registry;
        if let Err(e) = (ops.register)(registry, &mut source, token, interest.to_mio()) {
            self.owners().remove(&token);
            return Err(e);
        }
        Ok(Registered {
            source: Some(source),
            token,
            reactor: self.clone(),
            ops,
        })
    }

    /// Sources registered now (each one keeps the runtime alive).
    pub fn registered(&self) -> usize {
        self.owners().len()
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<Token, Entry>> {
        lock(&self.inner.shared.owners)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How to register a kind of source with mio: as a mio source, or by file descriptor.
struct Ops<S> {
    register: fn(&Registry, &mut S, Token, mio::Interest) -> io::Result<()>,
    reregister: fn(&Registry, &mut S, Token, mio::Interest) -> io::Result<()>,
    deregister: fn(&Registry, &mut S) -> io::Result<()>,
}

impl<S> Clone for Ops<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Ops<S> {}

/// Registration by file descriptor, through `mio::unix::SourceFd`.
#[cfg(unix)]
mod fd {
    use super::Ops;
    use mio::unix::SourceFd;
    use std::os::fd::AsRawFd;

    pub(super) struct For<S>(std::marker::PhantomData<S>);

    impl<S: AsRawFd> For<S> {
        pub(super) const OPS: Ops<S> = Ops {
            register: |registry, s, token, interest| {
                registry.register(&mut SourceFd(&s.as_raw_fd()), token, interest)
            },
            reregister: |registry, s, token, interest| {
                registry.reregister(&mut SourceFd(&s.as_raw_fd()), token, interest)
            },
            deregister: |registry, s| registry.deregister(&mut SourceFd(&s.as_raw_fd())),
        };
    }
}

/// A source registered with a [`Reactor`]; derefs to the source. Dropping it deregisters the
/// source and releases its hold on the runtime.
#[must_use = "dropping the registration deregisters the source at once"]
pub struct Registered<S> {
    source: Option<S>,
    token: Token,
    reactor: Reactor,
    ops: Ops<S>,
}

impl<S> Registered<S> {
    /// Changes the interest set (edge-triggered, like the first registration).
    pub fn reregister(&mut self, interest: Interest) -> io::Result<()> {
        let source = self.source.as_mut().expect("present until drop");
        let registry = &self.reactor.inner.registry;
        (self.ops.reregister)(registry, source, self.token, interest.to_mio())
    }

    /// Deregisters and hands the source back.
    pub fn into_inner(mut self) -> S {
        let mut source = self.source.take().expect("present until drop");
        self.release(&mut source);
        source
    }

    fn release(&self, source: &mut S) {
        let _ = (self.ops.deregister)(&self.reactor.inner.registry, source);
        let entry = self.reactor.owners().remove(&self.token);
        drop(entry);
    }
}

impl<S> Deref for Registered<S> {
    type Target = S;
    fn deref(&self) -> &S {
        self.source.as_ref().expect("present until drop")
    }
}

impl<S> DerefMut for Registered<S> {
    fn deref_mut(&mut self) -> &mut S {
        self.source.as_mut().expect("present until drop")
    }
}

impl<S> Drop for Registered<S> {
    fn drop(&mut self) {
        if let Some(mut source) = self.source.take() {
            self.release(&mut source);
        }
    }
}

impl<S> std::fmt::Debug for Registered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registered({})", self.token.0)
    }
}

fn run(mut poll: Poll, shared: Arc<Shared>) {
    let mut events = Events::with_capacity(1024);
    let mut ready = Vec::with_capacity(1024);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        // The timeout only bounds how long the thread outlives a runtime that ended with
        // reactor handles still around.
        match poll.poll(&mut events, Some(Duration::from_millis(200))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        {
            let owners = lock(&shared.owners);
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                if let Some(entry) = owners.get(&event.token()) {
                    ready.push((entry.owner.clone(), Readiness::of(event)));
                }
            }
        }
        // Send outside the lock: a send may run arbitrary `From` code and never needs it.
        for (owner, readiness) in ready.drain(..) {
            owner(readiness);
        }
        if events.is_empty() && !shared.runtime.is_running() && lock(&shared.owners).is_empty() {
            break;
        }
    }
}
