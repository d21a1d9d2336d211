//! [`TcpListener`]: a listening socket as an actor that spawns one [`TcpConnection`] per peer.
//!
//! Why it counts its connections: an accept loop that never says no turns a connection flood
//! into unbounded memory. At `max_connections` the listener stops accepting (peers wait in the
//! kernel backlog, then are refused by it) and resumes as soon as one of its connections ends,
//! which each connection reports with a [`ConnectionEnded`] message.
//!
//! Its message type is opaque for the same reason a connection's is: readiness edges, "accept
//! again" and "a connection ended" are the listener's own business. Others hold a
//! [`ListenerRef`], which can only close it.

use crate::connection::{EndNotice, TcpConnection};
use crate::io_thread::{Owner, Reactor, Registered};
#[cfg(feature = "tls")]
use crate::tls::Layer;
#[cfg(not(feature = "tls"))]
use crate::tls_off::Layer;
use crate::Readiness;
use crate::{
    ConnRef, ConnectionEnded, ConnectionHandler, ConnectionOptions, Interest, TcpListenAuth,
};
use rein::{Actor, ActorId, Context, Recipient};
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Callbacks for a listener. Every method runs inside the listener actor's behaviour.
pub trait ListenNotify: Send + 'static {
    /// The handler type of accepted connections.
    type Handler: ConnectionHandler;
    /// The socket is bound and listening on `addr` (with the real port if 0 was asked).
    fn listening(&mut self, _addr: SocketAddr) {}
    /// Binding failed; the listener has stopped.
    fn not_listening(&mut self, _err: BindError) {}
    /// A peer connected: return the handler for its connection.
    fn connected(&mut self, peer: SocketAddr) -> Self::Handler;
    /// The connection for `peer` (whose handler [`connected`](ListenNotify::connected) just
    /// returned) is spawned: here is its address, to hand to whoever should control it (a hub
    /// that writes to its clients, kicks them, or sends their handlers messages).
    fn accepted(&mut self, _peer: SocketAddr, _conn: ConnRef<HandlerMsg<Self>>) {}
    /// One of this listener's connections ended, and why. Not called once the listener itself
    /// has stopped.
    fn ended(&mut self, _ended: ConnectionEnded) {}
    /// The listener stopped listening (connections already accepted go on).
    fn closed(&mut self) {}
}

/// The message type of a listener's connection handlers.
pub type HandlerMsg<N> = <<N as ListenNotify>::Handler as ConnectionHandler>::Msg;

/// Why a listener could not bind.
#[derive(Debug)]
#[non_exhaustive]
pub enum BindError {
    /// Another socket holds the address.
    AddrInUse(SocketAddr),
    /// The address is not local to this machine.
    AddrNotAvailable(SocketAddr),
    /// Not allowed (e.g. a port below 1024 without privileges).
    PermissionDenied(SocketAddr),
    /// Another error.
    Io(SocketAddr, io::Error),
    /// The runtime had already ended when the listener was asked for (the notify hears this
    /// at once, on the caller's thread).
    RuntimeEnded(SocketAddr),
}

impl BindError {
    fn new(addr: SocketAddr, e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::AddrInUse => BindError::AddrInUse(addr),
            io::ErrorKind::AddrNotAvailable => BindError::AddrNotAvailable(addr),
            io::ErrorKind::PermissionDenied => BindError::PermissionDenied(addr),
            _ => BindError::Io(addr, e),
        }
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::AddrInUse(a) => write!(f, "{a} is already in use"),
            BindError::AddrNotAvailable(a) => write!(f, "{a} is not a local address"),
            BindError::PermissionDenied(a) => write!(f, "not allowed to bind {a}"),
            BindError::Io(a, e) => write!(f, "cannot listen on {a}: {e}"),
            BindError::RuntimeEnded(a) => {
                write!(f, "cannot listen on {a}: the runtime has ended")
            }
        }
    }
}

impl std::error::Error for BindError {}

/// Listener settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenOptions {
    /// Kernel accept backlog (default 1024).
    pub backlog: i32,
    /// At most this many live connections; accepting pauses at the limit (default: none).
    pub max_connections: Option<usize>,
    /// `SO_REUSEADDR` (default on).
    pub reuse_addr: bool,
    /// Connections accepted per turn before yielding (default 64).
    pub accept_per_turn: usize,
    /// Settings for accepted connections.
    pub connection: ConnectionOptions,
    /// TLS for accepted connections (default: none, plain TCP): each does a server handshake
    /// before its handler hears `connected`. See [`TlsServer`](crate::TlsServer).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::TlsServer>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            max_connections: None,
            reuse_addr: true,
            accept_per_turn: 64,
            connection: ConnectionOptions::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Setters, for building options from the defaults: `ListenOptions::default().backlog(..)`. (The
/// struct is `#[non_exhaustive]`, so that new settings are not breaking changes.)
impl ListenOptions {
    /// Sets `backlog` (see the field for its meaning and default).
    pub fn backlog(mut self, value: i32) -> Self {
        self.backlog = value;
        self
    }

    /// Sets `max_connections` to `Some(value)` (see the field for its meaning and default).
    pub fn max_connections(mut self, value: usize) -> Self {
        self.max_connections = Some(value);
        self
    }

    /// Sets `reuse_addr` (see the field for its meaning and default).
    pub fn reuse_addr(mut self, value: bool) -> Self {
        self.reuse_addr = value;
        self
    }

    /// Sets `accept_per_turn` (see the field for its meaning and default).
    pub fn accept_per_turn(mut self, value: usize) -> Self {
        self.accept_per_turn = value;
        self
    }

    /// Sets `connection` (see the field for its meaning and default).
    pub fn connection(mut self, value: ConnectionOptions) -> Self {
        self.connection = value;
        self
    }

    /// Sets `tls` to `Some(value)`: each accepted connection does a server handshake first
    /// (see the field).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, value: crate::TlsServer) -> Self {
        self.tls = Some(value);
        self
    }
}

/// The message type of a listener actor. Opaque: close a listener through its
/// [`ListenerRef`].
pub struct ListenerMsg(Msg);

enum Msg {
    /// Readiness from the runtime's poller.
    Ready,
    /// Stop listening (accepted connections go on).
    Close,
    /// One of its connections ended.
    Ended(ConnectionEnded),
    /// Accept more after yielding (or after an error, on a timer).
    AcceptAgain,
}

impl fmt::Debug for ListenerMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Msg::Close => "ListenerMsg(close)",
            _ => "ListenerMsg(internal)",
        })
    }
}

/// The address of a listener: close it from anywhere. Cheap to clone.
#[derive(Clone)]
pub struct ListenerRef {
    to: Recipient<ListenerMsg>,
}

impl ListenerRef {
    /// Stops listening; connections already accepted go on. Returns `false` if the listener had
    /// already stopped.
    pub fn close(&self) -> bool {
        self.to.send(ListenerMsg(Msg::Close)).is_ok()
    }

    /// The listener actor's identity.
    pub fn id(&self) -> ActorId {
        self.to.id()
    }

    /// Whether the listener has stopped.
    pub fn is_closed(&self) -> bool {
        self.to.is_stopped()
    }
}

impl fmt::Debug for ListenerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListenerRef({})", self.to.id())
    }
}

/// A listening socket as an actor.
pub struct TcpListener<N: ListenNotify> {
    notify: N,
    reactor: Reactor,
    auth: TcpListenAuth,
    addr: SocketAddr,
    opts: ListenOptions,
    socket: Option<Registered<mio::net::TcpListener>>,
    live: usize,
    accepting: Accepting,
    again: Again,
}

/// Whether the listener accepts, or waits for a connection to end (at `max_connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    Open,
    AtLimit,
}

/// Whether an "accept again" message is on its way (so it is sent once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    No,
    Posted,
}

impl<N: ListenNotify> TcpListener<N> {
    /// Spawns a listener on `addr` (IPv4 or IPv6; port 0 picks a free port, reported to
    /// [`ListenNotify::listening`]) and returns its address; [`ListenerRef::close`] stops it.
    /// If the runtime has ended, `notify` hears [`BindError::RuntimeEnded`] at once, on this
    /// thread, and the address returned is closed.
    pub fn bind(
        reactor: &Reactor,
        auth: &TcpListenAuth,
        addr: SocketAddr,
        notify: N,
        opts: ListenOptions,
    ) -> ListenerRef {
        let spawned = reactor.runtime().spawn(TcpListener {
            notify,
            reactor: reactor.clone(),
            auth: auth.clone(),
            addr,
            opts,
            socket: None,
            live: 0,
            accepting: Accepting::Open,
            again: Again::No,
        });
        match spawned {
            Ok(listener) => ListenerRef {
                to: listener.recipient(),
            },
            Err(refused) => {
                let mut listener = refused.into_inner();
                listener
                    .notify
                    .not_listening(BindError::RuntimeEnded(listener.addr));
                ListenerRef {
                    to: Recipient::closed(),
                }
            }
        }
    }

    fn open(&self) -> io::Result<mio::net::TcpListener> {
        let socket = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(self.opts.reuse_addr)?;
        if self.addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&self.addr.into())?;
        socket.listen(self.opts.backlog)?;
        Ok(mio::net::TcpListener::from_std(socket.into()))
    }

    fn at_limit(&self) -> bool {
        self.opts
            .max_connections
            .is_some_and(|max| self.live >= max)
    }

    fn accept(&mut self, ctx: &mut Context<Self>) {
        for _ in 0..self.opts.accept_per_turn.max(1) {
            if self.at_limit() {
                self.accepting = Accepting::AtLimit;
                return;
            }
            let Some(socket) = self.socket.as_ref() else {
                return;
            };
            match socket.accept() {
                Ok((stream, peer)) => {
                    let handler = self.notify.connected(peer);
                    let me = ctx.myself();
                    let on_end: EndNotice = Box::new(move |ended| {
                        let _ = me.send(ListenerMsg(Msg::Ended(ended)));
                    });
                    let conn = TcpConnection::accepted(
                        &self.reactor,
                        self.auth.pressure.clone(),
                        stream,
                        Layer::for_listener(&self.opts),
                        handler,
                        self.opts.connection.clone(),
                        on_end,
                    );
                    let conn = TcpConnection::address(&ctx.spawn(conn));
                    self.live += 1;
                    self.notify.accepted(peer, conn);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Out of descriptors or an aborted handshake: the edge is spent, so retry
                    // on a timer rather than wait for one that may not come.
                    ctx.after(Duration::from_millis(10), ListenerMsg(Msg::AcceptAgain));
                    self.again = Again::Posted;
                    return;
                }
            }
        }
        if self.again == Again::No {
            self.again = Again::Posted;
            let _ = ctx.myself().send(ListenerMsg(Msg::AcceptAgain));
        }
    }

    fn close(&mut self, ctx: &mut Context<Self>) {
        if self.socket.take().is_some() {
            self.notify.closed();
        }
        ctx.stop();
    }
}

impl<N: ListenNotify> Actor for TcpListener<N> {
    type Msg = ListenerMsg;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let opened = self.open().and_then(|l| {
            let me = ctx.myself();
            let owner: Owner = Arc::new(move |ready: Readiness| {
                // A failed poller delivers no edge again: stop listening rather than hang.
                let msg = if ready.failed { Msg::Close } else { Msg::Ready };
                let _ = me.send(ListenerMsg(msg));
            });
            self.reactor.register_source(l, Interest::READABLE, owner)
        });
        match opened.and_then(|s| s.local_addr().map(|a| (s, a))) {
            Ok((socket, addr)) => {
                self.socket = Some(socket);
                self.notify.listening(addr);
                // Peers may have queued between listen and registration.
                self.accept(ctx);
            }
            Err(e) => {
                self.notify.not_listening(BindError::new(self.addr, e));
                ctx.stop();
            }
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, ListenerMsg(msg): ListenerMsg) {
        match msg {
            Msg::Ready => self.accept(ctx),
            Msg::AcceptAgain => {
                self.again = Again::No;
                self.accept(ctx);
            }
            Msg::Ended(ended) => {
                self.live = self.live.saturating_sub(1);
                self.notify.ended(ended);
                if self.accepting == Accepting::AtLimit && !self.at_limit() {
                    self.accepting = Accepting::Open;
                    self.accept(ctx);
                }
            }
            Msg::Close => self.close(ctx),
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if self.socket.take().is_some() {
            self.notify.closed();
        }
    }
}
