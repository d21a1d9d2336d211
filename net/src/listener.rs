//! [`TcpListener`]: a listening socket as an actor that spawns one [`TcpConnection`] per peer.
//!
//! Why it counts its connections: an accept loop that never says no turns a connection flood
//! into unbounded memory. At `max_connections` the listener stops accepting (peers wait in the
//! kernel backlog, then are refused by it) and resumes as soon as one of its connections ends,
//! which each connection reports with a [`ConnectionEnded`] message.

use crate::connection::{ConnectionEnded, ConnectionHandler, ConnectionOptions, TcpConnection};
use crate::io_thread::{Reactor, Readiness, Registered};
use crate::TcpListenAuth;
use mio::Interest;
use rein::{Actor, ActorRef, Context, SpawnError};
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::io;
use std::net::SocketAddr;
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
    /// The listener stopped listening (connections already accepted go on).
    fn closed(&mut self) {}
}

/// Why a listener could not bind.
#[derive(Debug)]
pub enum BindError {
    /// Another socket holds the address.
    AddrInUse(SocketAddr),
    /// The address is not local to this machine.
    AddrNotAvailable(SocketAddr),
    /// Not allowed (e.g. a port below 1024 without privileges).
    PermissionDenied(SocketAddr),
    /// Another error.
    Io(SocketAddr, io::Error),
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
        }
    }
}

impl std::error::Error for BindError {}

/// Listener settings.
#[derive(Debug, Clone)]
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
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            max_connections: None,
            reuse_addr: true,
            accept_per_turn: 64,
            connection: ConnectionOptions::default(),
        }
    }
}

/// Messages a [`TcpListener`] handles.
pub enum ListenerMsg {
    /// Readiness from the I/O thread.
    Ready(Readiness),
    /// Stop listening (accepted connections go on).
    Close,
    /// One of its connections ended.
    Ended(ConnectionEnded),
    /// Internal: accept more after yielding.
    #[doc(hidden)]
    AcceptAgain,
}

impl From<Readiness> for ListenerMsg {
    fn from(r: Readiness) -> Self {
        ListenerMsg::Ready(r)
    }
}

impl From<ConnectionEnded> for ListenerMsg {
    fn from(e: ConnectionEnded) -> Self {
        ListenerMsg::Ended(e)
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
    paused: bool,
    accept_pending: bool,
}

impl<N: ListenNotify> TcpListener<N> {
    /// Spawns a listener on `addr` (IPv4 or IPv6; port 0 picks a free port, reported to
    /// [`ListenNotify::listening`]). Send it [`ListenerMsg::Close`] to stop listening. Fails,
    /// handing the actor back, if the runtime has ended (see [`rein::RuntimeHandle::spawn`]).
    pub fn bind(
        reactor: &Reactor,
        auth: &TcpListenAuth,
        addr: SocketAddr,
        notify: N,
        opts: ListenOptions,
    ) -> Result<ActorRef<Self>, SpawnError<Self>> {
        reactor.runtime().spawn(TcpListener {
            notify,
            reactor: reactor.clone(),
            auth: auth.clone(),
            addr,
            opts,
            socket: None,
            live: 0,
            paused: false,
            accept_pending: false,
        })
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
                self.paused = true;
                return;
            }
            let Some(socket) = self.socket.as_ref() else {
                return;
            };
            match socket.accept() {
                Ok((stream, peer)) => {
                    let handler = self.notify.connected(peer);
                    let conn = TcpConnection::accepted(
                        &self.reactor,
                        self.auth.pressure.clone(),
                        stream,
                        handler,
                        self.opts.connection.clone(),
                        ctx.myself().recipient(),
                    );
                    ctx.spawn(conn);
                    self.live += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Out of descriptors or an aborted handshake: the edge is spent, so retry
                    // on a timer rather than wait for one that may not come.
                    ctx.after(Duration::from_millis(10), ListenerMsg::AcceptAgain);
                    self.accept_pending = true;
                    return;
                }
            }
        }
        if !self.accept_pending {
            self.accept_pending = true;
            let _ = ctx.myself().send(ListenerMsg::AcceptAgain);
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
            let owner = ctx.myself().recipient::<Readiness>();
            self.reactor.register(l, Interest::READABLE, owner)
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

    fn handle(&mut self, ctx: &mut Context<Self>, msg: ListenerMsg) {
        match msg {
            ListenerMsg::Ready(_) => self.accept(ctx),
            ListenerMsg::AcceptAgain => {
                self.accept_pending = false;
                self.accept(ctx);
            }
            ListenerMsg::Ended(ConnectionEnded) => {
                self.live = self.live.saturating_sub(1);
                if self.paused && !self.at_limit() {
                    self.paused = false;
                    self.accept(ctx);
                }
            }
            ListenerMsg::Close => self.close(ctx),
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if self.socket.take().is_some() {
            self.notify.closed();
        }
    }
}
