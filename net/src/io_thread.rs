//! The reactor: rein-net's view of the runtime's readiness driver.
//!
//! Readiness no longer comes from a thread of rein-net's own: an idle worker of the runtime
//! waits in `epoll_wait` itself, and an edge runs its connection's turn on that worker, with no
//! hand-off between threads (see `rein::Io` and the `io` module of the runtime for the design).
//! What stays here is the registration API rein-net's actors and users see: a [`Reactor`]
//! handle per runtime, and a [`Registered`] guard that owns a source and deregisters it on
//! drop. Sends from the readiness driver happen between turns, outside any behaviour, so they
//! are never muted: a throttled connection always hears that its socket drained.
//!
//! mio stays private, the way tokio hides it: sources are registered by file descriptor with
//! rein's [`Interest`], so a change of mio version, or of where readiness comes from, is not a
//! change of this crate's API.

use rein::{Interest, IoRegistration, Readiness, Recipient, RuntimeHandle};
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// Whoever hears of a registration's edges.
pub(crate) type Owner = Arc<dyn Fn(Readiness) + Send + Sync>;

/// A handle on one runtime's readiness driver, for registering sockets. Cheap to clone. It
/// starts nothing: the runtime's idle workers do the waiting.
#[derive(Clone)]
pub struct Reactor {
    runtime: RuntimeHandle,
    io: rein::Io,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reactor")
    }
}

impl Reactor {
    /// A reactor for the runtime behind `runtime`. (It used to start an I/O thread; the
    /// runtime's workers wait for readiness now, so this cannot fail, but keeps its `Result`.)
    pub fn start(runtime: &RuntimeHandle) -> io::Result<Reactor> {
        Ok(Reactor {
            io: runtime.io(),
            runtime: runtime.clone(),
        })
    }

    /// The runtime this reactor serves.
    pub fn runtime(&self) -> &RuntimeHandle {
        &self.runtime
    }

    /// Registers a file descriptor (edge-triggered) so that each readiness edge is sent to
    /// `owner`. Until the returned guard is dropped the runtime does not end by quiescence.
    ///
    /// Use it for your own non-blocking sources (pipes, Unix sockets, UDP sockets, ...): give
    /// it `actor_ref.recipient()` for an actor whose message type implements
    /// `From<Readiness>`, and keep the [`Registered`] guard in that actor; it derefs to `io`.
    /// With edge-triggered readiness, read (or write) until `WouldBlock` before expecting the
    /// next edge. A [`Readiness::failed`] edge says the runtime's polling failed: no edge will
    /// come again.
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
    pub fn register<S: AsRawFd>(
        &self,
        io: S,
        interest: Interest,
        owner: Recipient<Readiness>,
    ) -> io::Result<Registered<S>> {
        let owner: Owner = Arc::new(move |ready| {
            let _ = owner.send(ready);
        });
        self.register_source(io, interest, owner)
    }

    /// Registers one of the crate's own sockets.
    pub(crate) fn register_source<S: AsRawFd>(
        &self,
        source: S,
        interest: Interest,
        owner: Owner,
    ) -> io::Result<Registered<S>> {
        let registration = self
            .io
            .register(source.as_raw_fd(), interest, move |ready| owner(ready))?;
        Ok(Registered {
            source: Some(source),
            registration: Some(registration),
        })
    }

    /// Sources registered now (each one keeps the runtime alive).
    pub fn registered(&self) -> usize {
        self.io.registered()
    }
}

/// A source registered with a [`Reactor`]; derefs to the source. Dropping it deregisters the
/// source and releases its hold on the runtime.
#[must_use = "dropping the registration deregisters the source at once"]
pub struct Registered<S> {
    /// Declared (and so dropped) before the source: the descriptor stays open until it is
    /// deregistered.
    registration: Option<IoRegistration>,
    source: Option<S>,
}

impl<S> Registered<S> {
    /// Changes the interest set (edge-triggered, like the first registration).
    pub fn reregister(&mut self, interest: Interest) -> io::Result<()> {
        match &self.registration {
            Some(registration) => registration.reregister(interest),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// Deregisters and hands the source back.
    pub fn into_inner(mut self) -> S {
        drop(self.registration.take());
        self.source.take().expect("present until drop")
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

impl<S> std::fmt::Debug for Registered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.registration {
            Some(r) => write!(f, "Registered({r:?})"),
            None => f.write_str("Registered(released)"),
        }
    }
}
