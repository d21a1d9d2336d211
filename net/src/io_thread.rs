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

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use rein::{KeepAlive, Recipient, RuntimeHandle};
use std::collections::HashMap;
use std::io;
use std::ops::{Deref, DerefMut};
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

struct Entry {
    owner: Recipient<Readiness>,
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

    /// Registers `source` (edge-triggered) so that each readiness edge is sent to `owner`. Until
    /// the returned guard is dropped the runtime does not end by quiescence.
    ///
    /// Use it for your own mio sources (pipes, UDP sockets, ...): give it
    /// `actor_ref.recipient()` for an actor whose message type implements `From<Readiness>`, and
    /// keep the [`Registered`] guard in that actor. With edge-triggered readiness, read (or
    /// write) until `WouldBlock` before expecting the next edge.
    pub fn register<S: Source>(
        &self,
        mut source: S,
        interest: Interest,
        owner: Recipient<Readiness>,
    ) -> io::Result<Registered<S>> {
        let token = Token(self.inner.next.fetch_add(1, Ordering::Relaxed));
        let entry = Entry {
            owner,
            _alive: self.inner.shared.runtime.keep_alive(),
        };
        self.owners().insert(token, entry);
        if let Err(e) = self.inner.registry.register(&mut source, token, interest) {
            self.owners().remove(&token);
            return Err(e);
        }
        Ok(Registered {
            source: Some(source),
            token,
            reactor: self.clone(),
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

/// A source registered with a [`Reactor`]; derefs to the source. Dropping it deregisters the
/// source and releases its hold on the runtime.
pub struct Registered<S: Source> {
    source: Option<S>,
    token: Token,
    reactor: Reactor,
}

impl<S: Source> Registered<S> {
    /// Changes the interest set (edge-triggered, like the first registration).
    pub fn reregister(&mut self, interest: Interest) -> io::Result<()> {
        let source = self.source.as_mut().expect("present until drop");
        self.reactor
            .inner
            .registry
            .reregister(source, self.token, interest)
    }

    /// Deregisters and hands the source back.
    pub fn into_inner(mut self) -> S {
        let mut source = self.source.take().expect("present until drop");
        self.release(&mut source);
        source
    }

    fn release(&self, source: &mut S) {
        let _ = self.reactor.inner.registry.deregister(source);
        let entry = self.reactor.owners().remove(&self.token);
        drop(entry);
    }
}

impl<S: Source> Deref for Registered<S> {
    type Target = S;
    fn deref(&self) -> &S {
        self.source.as_ref().expect("present until drop")
    }
}

impl<S: Source> DerefMut for Registered<S> {
    fn deref_mut(&mut self) -> &mut S {
        self.source.as_mut().expect("present until drop")
    }
}

impl<S: Source> Drop for Registered<S> {
    fn drop(&mut self) {
        if let Some(mut source) = self.source.take() {
            self.release(&mut source);
        }
    }
}

impl<S: Source> std::fmt::Debug for Registered<S> {
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
            let _ = owner.send(readiness);
        }
        if events.is_empty() && !shared.runtime.is_running() && lock(&shared.owners).is_empty() {
            break;
        }
    }
}
