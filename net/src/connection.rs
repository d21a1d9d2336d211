//! [`TcpConnection`]: one TCP stream as an actor, driven by readiness from the I/O thread.
//!
//! Why an actor per connection: the handler's state is private to it, so it needs no locks, and
//! rein's backpressure applies to it like to any actor. When the write queue passes its high
//! watermark the connection applies [`Backpressure`] on itself, so every actor that writes to it
//! is muted until the peer catches up: a slow peer slows its producers down end to end instead
//! of growing a buffer without bound.
//!
//! Fairness: a turn reads at most `read_per_turn` bytes, then the connection sends itself a
//! "read again" message, so one busy socket cannot hold a worker.
//!
//! Outgoing connects race the resolved addresses, happy-eyeballs style (RFC 8305, simplified):
//! the addresses are interleaved by family (IPv6 first, then IPv4, alternating), the first
//! attempt starts at once, and each next one starts after `attempt_delay` or as soon as an attempt
//! fails, whichever comes first. The first attempt to complete wins; the others are closed and
//! deregistered at once. The whole connect is bounded by `connect_timeout` through a timer.

use crate::conn::{CloseKind, Conn, Flow, Phase, SendToken, SocketOptions};
use crate::io_thread::{Reactor, Readiness, Registered};
use crate::TcpConnectAuth;
use mio::net::TcpStream;
use mio::Interest;
use rein::{Actor, ActorRef, Context, Recipient, SpawnError, Timer};
use rein_backpressure::{ApplyReleaseBackpressureAuth, Backpressure};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Callbacks for one connection. Every method runs inside the connection actor's behaviour.
pub trait ConnectionHandler: Send + 'static {
    /// An outgoing connection starts attempt number `attempt` (from 1).
    fn connecting(&mut self, _attempt: u32) {}
    /// The connection is open.
    fn connected(&mut self, _conn: &mut Conn) {}
    /// An outgoing connection could not be opened; nothing else follows.
    fn connect_failed(&mut self, _reason: ConnectError) {}
    /// Data arrived (exactly [`Conn::expect`] bytes if framing is on).
    fn received(&mut self, conn: &mut Conn, data: Vec<u8>) -> Flow;
    /// The write queue reached the high watermark: [`Conn::send`] refuses until `unthrottled`,
    /// and actors writing to this connection are muted. Whenever a callback leaves the queue at
    /// or above the high watermark this follows, even if the kernel then takes every byte at
    /// once, so a handler that saw [`Conn::is_writeable`] turn false can rely on hearing
    /// `throttled` and later `unthrottled`.
    fn throttled(&mut self, _conn: &mut Conn) {}
    /// The write queue drained to the low watermark.
    fn unthrottled(&mut self, _conn: &mut Conn) {}
    /// All bytes of the send with this token were handed to the operating system.
    fn sent(&mut self, _conn: &mut Conn, _token: SendToken) {}
    /// No data moved for the idle timeout. The default closes the connection.
    fn timed_out(&mut self, conn: &mut Conn) {
        conn.close();
    }
    /// The connection has ended (by either side, or on an error); nothing else follows.
    fn closed(&mut self) {}
}

/// Why an outgoing connection failed (the last attempt's reason when there were several).
#[derive(Debug)]
pub enum ConnectError {
    /// The name could not be resolved.
    Resolve(io::Error),
    /// The name resolved to no address.
    NoAddresses,
    /// The peer refused the connection.
    Refused,
    /// No attempt finished within the connect timeout.
    TimedOut,
    /// Another error.
    Io(io::Error),
}

impl ConnectError {
    fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::TimedOut,
            _ => ConnectError::Io(e),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve(e) => write!(f, "cannot resolve the host: {e}"),
            ConnectError::NoAddresses => f.write_str("the host resolved to no address"),
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::TimedOut => f.write_str("connect timed out"),
            ConnectError::Io(e) => write!(f, "connect failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Queued bytes at which the connection throttles (default 64 KiB).
    pub high_watermark: usize,
    /// Queued bytes at which it unthrottles (default 32 KiB).
    pub low_watermark: usize,
    /// Bytes read per turn before yielding to other actors (default 64 KiB).
    pub read_per_turn: usize,
    /// `TCP_NODELAY` (default on).
    pub nodelay: bool,
    /// TCP keepalive: probe a silent peer after this long idle (default: off).
    pub keepalive: Option<Duration>,
    /// `SO_SNDBUF` in bytes (default: the kernel's choice).
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF` in bytes (default: the kernel's choice). Set when the connection is
    /// established; the window scale was negotiated before, so very large values help less than
    /// a receive buffer set on the listener.
    pub recv_buffer_size: Option<usize>,
    /// Close (through [`ConnectionHandler::timed_out`]) after this long without data moving
    /// either way (default: none).
    pub idle_timeout: Option<Duration>,
    /// Limit for the whole connect, all attempts together (default 10 s).
    pub connect_timeout: Duration,
    /// Happy eyeballs' "connection attempt delay": how long an outgoing connect waits on its
    /// latest attempt before it also tries the next address (default 250 ms). A failed attempt
    /// starts the next one at once.
    pub attempt_delay: Duration,
    /// A graceful close must finish (queue flushed, peer's end of stream seen) within this long,
    /// or the connection is reset (default 5 s).
    pub close_linger: Duration,
    /// The connection actor's own mailbox watermarks, in messages (default `Some((4, 16))`):
    /// actors writing to it are muted once 16 messages wait, so writes queued in the mailbox are
    /// bounded too, not only the bytes in the write queue. `None` uses the runtime's (default
    /// 1024 messages, i.e. up to 1024 buffers). Invalid values (`low >= high`) also fall back
    /// to the runtime's.
    pub mailbox_watermarks: Option<(usize, usize)>,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            high_watermark: 64 * 1024,
            low_watermark: 32 * 1024,
            read_per_turn: 64 * 1024,
            nodelay: true,
            keepalive: None,
            send_buffer_size: None,
            recv_buffer_size: None,
            idle_timeout: None,
            connect_timeout: Duration::from_secs(10),
            attempt_delay: Duration::from_millis(250),
            close_linger: Duration::from_secs(5),
            mailbox_watermarks: Some((4, 16)),
        }
    }
}

/// Told to a listener when one of its connections ends.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionEnded;

/// Messages a [`TcpConnection`] handles.
pub enum ConnMsg {
    /// Readiness from the I/O thread.
    Ready(Readiness),
    /// Bytes to write, from another actor. Queued whatever the watermark: the runtime holds
    /// the writers back (they are muted) while the connection is throttled.
    Write(Vec<u8>),
    /// Close gracefully (see [`Conn::close`]).
    Close,
    /// Close at once (see [`Conn::hard_close`]).
    HardClose,
    /// Internal bookkeeping.
    #[doc(hidden)]
    Internal(Internal),
}

#[doc(hidden)]
pub struct Internal(Step);

enum Step {
    ReadAgain,
    Sent,
    ConnectTimeout,
    AttemptDelay(u32),
    Idle,
    Linger,
    Settle,
}

impl From<Readiness> for ConnMsg {
    fn from(r: Readiness) -> Self {
        ConnMsg::Ready(r)
    }
}

impl From<Vec<u8>> for ConnMsg {
    fn from(bytes: Vec<u8>) -> Self {
        ConnMsg::Write(bytes)
    }
}

enum Origin {
    Connect { host: String, port: u16 },
    Addrs(Vec<SocketAddr>),
    Accepted(Option<TcpStream>),
}

/// A TCP connection actor. Spawn an outgoing one with [`TcpConnection::connect`]; listeners
/// spawn one per accepted stream.
pub struct TcpConnection<H: ConnectionHandler> {
    handler: H,
    conn: Conn,
    stream: Option<Registered<TcpStream>>,
    reactor: Reactor,
    opts: ConnectionOptions,
    pressure: ApplyReleaseBackpressureAuth,
    origin: Origin,
    /// Addresses not tried yet, in happy-eyeballs order.
    addrs: VecDeque<SocketAddr>,
    /// Connect attempts in flight (registered, not yet finished), oldest first.
    attempts: Vec<Registered<TcpStream>>,
    attempt: u32,
    last_error: Option<ConnectError>,
    connect_timer: Option<Timer>,
    delay_timer: Option<Timer>,
    idle_timer: Option<Timer>,
    linger_timer: Option<Timer>,
    last_activity: Instant,
    rbuf: Vec<u8>,
    frame: Vec<u8>,
    write_blocked: bool,
    sent_pending: bool,
    read_pending: bool,
    throttled: bool,
    half_closed: bool,
    peer_eof: bool,
    on_end: Option<Recipient<ConnectionEnded>>,
}

impl<H: ConnectionHandler> TcpConnection<H> {
    /// Spawns a connection to `host:port` on the reactor's runtime. `host` is resolved on a
    /// worker with the system resolver (instant for an IP literal). Fails, handing the actor
    /// back, if the runtime has ended (see [`rein::RuntimeHandle::spawn`]).
    pub fn connect(
        reactor: &Reactor,
        auth: &TcpConnectAuth,
        host: impl Into<String>,
        port: u16,
        handler: H,
        opts: ConnectionOptions,
    ) -> Result<ActorRef<Self>, SpawnError<Self>> {
        let origin = Origin::Connect {
            host: host.into(),
            port,
        };
        let actor = Self::new(reactor, auth.pressure.clone(), origin, handler, opts, None);
        reactor.runtime().spawn(actor)
    }

    /// Spawns a connection that races `addrs` (no name resolution), happy-eyeballs style: IPv6
    /// and IPv4 addresses alternate (IPv6 first), each family keeping the given order, and a new
    /// attempt starts every `attempt_delay` or as soon as one fails. The first to answer within
    /// the connect timeout wins; the last failure is reported otherwise. Fails like
    /// [`connect`](Self::connect) if the runtime has ended.
    pub fn connect_addrs(
        reactor: &Reactor,
        auth: &TcpConnectAuth,
        addrs: Vec<SocketAddr>,
        handler: H,
        opts: ConnectionOptions,
    ) -> Result<ActorRef<Self>, SpawnError<Self>> {
        let origin = Origin::Addrs(addrs);
        let actor = Self::new(reactor, auth.pressure.clone(), origin, handler, opts, None);
        reactor.runtime().spawn(actor)
    }

    pub(crate) fn accepted(
        reactor: &Reactor,
        pressure: ApplyReleaseBackpressureAuth,
        stream: TcpStream,
        handler: H,
        opts: ConnectionOptions,
        on_end: Recipient<ConnectionEnded>,
    ) -> Self {
        let origin = Origin::Accepted(Some(stream));
        Self::new(reactor, pressure, origin, handler, opts, Some(on_end))
    }

    fn new(
        reactor: &Reactor,
        pressure: ApplyReleaseBackpressureAuth,
        origin: Origin,
        handler: H,
        opts: ConnectionOptions,
        on_end: Option<Recipient<ConnectionEnded>>,
    ) -> Self {
        TcpConnection {
            handler,
            conn: Conn::new(opts.high_watermark, opts.low_watermark),
            stream: None,
            reactor: reactor.clone(),
            rbuf: vec![0; opts.read_per_turn.clamp(1, 64 * 1024)],
            opts,
            pressure,
            origin,
            addrs: VecDeque::new(),
            attempts: Vec::new(),
            attempt: 0,
            last_error: None,
            connect_timer: None,
            delay_timer: None,
            idle_timer: None,
            linger_timer: None,
            last_activity: Instant::now(),
            frame: Vec::new(),
            write_blocked: false,
            sent_pending: false,
            read_pending: false,
            throttled: false,
            half_closed: false,
            peer_eof: false,
            on_end,
        }
    }

    fn register(&mut self, ctx: &Context<Self>, stream: TcpStream) -> io::Result<()> {
        let reg = self.register_source(ctx, stream)?;
        self.stream = Some(reg);
        Ok(())
    }

    fn register_source(
        &self,
        ctx: &Context<Self>,
        stream: TcpStream,
    ) -> io::Result<Registered<TcpStream>> {
        let owner = ctx.myself().recipient::<Readiness>();
        self.reactor
            .register(stream, Interest::READABLE | Interest::WRITABLE, owner)
    }

    /// Begins an outgoing connect: arms the overall timeout and starts the first attempt.
    fn begin_connect(&mut self, ctx: &mut Context<Self>) {
        if !self.addrs.is_empty() {
            let msg = ConnMsg::Internal(Internal(Step::ConnectTimeout));
            self.connect_timer = Some(ctx.after(self.opts.connect_timeout, msg));
        }
        self.next_attempt(ctx);
    }

    /// Starts an attempt on the next address (skipping those that fail at once) and, if more
    /// addresses remain, arms the attempt delay. Fails the connect once nothing is left to try.
    fn next_attempt(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.delay_timer.take() {
            t.cancel();
        }
        while let Some(addr) = self.addrs.pop_front() {
            self.attempt += 1;
            self.handler.connecting(self.attempt);
            let started = TcpStream::connect(addr).and_then(|s| self.register_source(ctx, s));
            match started {
                Ok(reg) => {
                    self.attempts.push(reg);
                    if !self.addrs.is_empty() {
                        let msg = ConnMsg::Internal(Internal(Step::AttemptDelay(self.attempt)));
                        self.delay_timer = Some(ctx.after(self.opts.attempt_delay, msg));
                    }
                    return;
                }
                Err(e) => self.last_error = Some(ConnectError::from_io(e)),
            }
        }
        if self.attempts.is_empty() {
            let reason = self.last_error.take().unwrap_or(ConnectError::NoAddresses);
            self.connect_failed(ctx, reason);
        }
    }

    fn connect_failed(&mut self, ctx: &mut Context<Self>, reason: ConnectError) {
        self.attempts.clear();
        self.addrs.clear();
        self.conn.phase = Phase::Closed;
        self.handler.connect_failed(reason);
        self.end(ctx);
    }

    /// A writable (or error) edge while connecting. Readiness does not say which socket it is
    /// for, so every attempt in flight is checked: the first that is connected wins, failed ones
    /// are dropped (each failure starts the next address at once).
    fn check_connect(&mut self, ctx: &mut Context<Self>, ready: Readiness) {
        // A closed edge with no error recorded on any socket can only be pinned on an attempt
        // when there is exactly one.
        let lone = self.attempts.len() == 1;
        let mut failures = 0;
        let mut i = 0;
        while i < self.attempts.len() {
            let stream = &self.attempts[i];
            let outcome = match stream.take_error() {
                Ok(Some(e)) | Err(e) => Err(ConnectError::from_io(e)),
                Ok(None) => match stream.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        if lone && ready.closed {
                            Err(ConnectError::Refused)
                        } else {
                            Ok(false)
                        }
                    }
                    Err(e) => Err(ConnectError::from_io(e)),
                },
            };
            match outcome {
                Ok(true) => {
                    let winner = self.attempts.swap_remove(i);
                    // The losers are closed and deregistered here.
                    self.attempts.clear();
                    self.addrs.clear();
                    self.stream = Some(winner);
                    return self.established(ctx);
                }
                Ok(false) => i += 1,
                Err(reason) => {
                    self.attempts.remove(i);
                    self.last_error = Some(reason);
                    failures += 1;
                }
            }
        }
        for _ in 0..failures {
            if self.conn.phase != Phase::Connecting {
                return;
            }
            self.next_attempt(ctx);
        }
    }

    fn established(&mut self, ctx: &mut Context<Self>) {
        for timer in [self.connect_timer.take(), self.delay_timer.take()]
            .into_iter()
            .flatten()
        {
            timer.cancel();
        }
        let stream = self.stream.as_ref().expect("registered");
        self.conn.socket = Some(apply_socket_options(stream, &self.opts));
        self.conn.peer = stream.peer_addr().ok();
        self.conn.local = stream.local_addr().ok();
        self.conn.writer = Some(ctx.myself().recipient::<Vec<u8>>());
        self.conn.phase = Phase::Connected;
        self.last_activity = Instant::now();
        if let Some(idle) = self.opts.idle_timeout {
            self.idle_timer = Some(ctx.after(idle, ConnMsg::Internal(Internal(Step::Idle))));
        }
        self.handler.connected(&mut self.conn);
        // Edges may already have been consumed: try both directions.
        self.read(ctx);
        self.settle(ctx);
    }

    /// Delivers what the frame buffer holds: whole frames of [`Conn::expect`] bytes, or
    /// everything when framing is off. Returns `false` when reading must stop for this turn.
    fn deliver_buffered(&mut self, ctx: &mut Context<Self>) -> bool {
        loop {
            if !self.may_deliver() {
                return false;
            }
            let want = self.conn.expect;
            let frame = if want == 0 && !self.frame.is_empty() {
                std::mem::take(&mut self.frame)
            } else if want > 0 && self.frame.len() >= want {
                let rest = self.frame.split_off(want);
                std::mem::replace(&mut self.frame, rest)
            } else {
                return true;
            };
            if self.handler.received(&mut self.conn, frame) == Flow::Yield {
                self.schedule_read(ctx);
                return false;
            }
        }
    }

    fn may_deliver(&self) -> bool {
        self.conn.phase == Phase::Connected && self.conn.close.is_none() && !self.conn.muted
    }

    fn schedule_read(&mut self, ctx: &Context<Self>) {
        if !self.read_pending {
            self.read_pending = true;
            let _ = ctx
                .myself()
                .send(ConnMsg::Internal(Internal(Step::ReadAgain)));
        }
    }

    /// Reads up to the per-turn budget, delivering to the handler (or discarding while closing).
    fn read(&mut self, ctx: &mut Context<Self>) {
        let closing = self.conn.phase == Phase::Closing || self.conn.close.is_some();
        if !closing && !self.deliver_buffered(ctx) {
            return;
        }
        let mut budget = self.opts.read_per_turn.max(1);
        while budget > 0 {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let want = budget.min(self.rbuf.len());
            match stream.read(&mut self.rbuf[..want]) {
                Ok(0) => {
                    self.peer_eof = true;
                    self.conn.close();
                    return;
                }
                Ok(n) => {
                    budget -= n;
                    self.last_activity = Instant::now();
                    if closing {
                        continue;
                    }
                    let data = &self.rbuf[..n];
                    if self.conn.expect == 0 && self.frame.is_empty() {
                        let data = data.to_vec();
                        if self.handler.received(&mut self.conn, data) == Flow::Yield {
                            self.schedule_read(ctx);
                            return;
                        }
                        if !self.may_deliver() {
                            return;
                        }
                    } else {
                        self.frame.extend_from_slice(data);
                        if !self.deliver_buffered(ctx) {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.conn.hard_close();
                    return;
                }
            }
        }
        self.schedule_read(ctx);
    }

    /// After any event or callback: act on close requests, flush, report sent tokens, throttle or
    /// unthrottle, and finish a graceful close. Loops because callbacks can queue more; after a
    /// few rounds it finishes in a later turn so one connection cannot hold the worker.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        for _ in 0..8 {
            if self.conn.phase == Phase::Closed {
                return;
            }
            if self.conn.close == Some(CloseKind::Hard) {
                return self.abort(ctx);
            }
            if self.conn.close == Some(CloseKind::Graceful) && self.conn.phase == Phase::Connected {
                self.conn.phase = Phase::Closing;
                // Bounds the whole close: a peer that neither reads nor closes gets a reset.
                let msg = ConnMsg::Internal(Internal(Step::Linger));
                self.linger_timer = Some(ctx.after(self.opts.close_linger, msg));
            }
            if self.conn.phase == Phase::Connecting {
                return;
            }
            if self.half_closed && self.peer_eof {
                return self.end(ctx);
            }
            // Before flushing: a handler that saw `is_writeable() == false` always hears
            // `throttled` and then `unthrottled`, even if the kernel takes everything at once.
            if !self.throttled && self.conn.over_high() {
                self.throttled = true;
                let _ = Backpressure::apply(&self.pressure);
                self.handler.throttled(&mut self.conn);
                continue;
            }
            if !self.write_blocked && self.conn.has_queued() {
                let Some(stream) = self.stream.as_mut() else {
                    return;
                };
                match self.conn.flush(&mut **stream) {
                    Ok((blocked, n)) => {
                        self.write_blocked = blocked;
                        if n > 0 {
                            self.last_activity = Instant::now();
                        }
                    }
                    Err(_) => return self.abort(ctx),
                }
            }
            if !self.conn.written.is_empty() && !self.sent_pending {
                self.sent_pending = true;
                let _ = ctx.myself().send(ConnMsg::Internal(Internal(Step::Sent)));
            }
            if self.conn.unmuted {
                self.conn.unmuted = false;
                self.schedule_read(ctx);
            }
            if self.throttled && self.conn.queued() <= self.conn.low {
                self.throttled = false;
                let _ = Backpressure::release(&self.pressure);
                self.handler.unthrottled(&mut self.conn);
                continue;
            }
            if self.conn.phase == Phase::Closing && !self.conn.has_queued() && !self.half_closed {
                self.half_closed = true;
                if let Some(stream) = self.stream.as_ref() {
                    let _ = stream.shutdown(Shutdown::Write);
                }
                if self.peer_eof {
                    return self.end(ctx);
                }
                // Drain (and discard) until the peer's end of stream.
                self.read(ctx);
                if self.peer_eof {
                    return self.end(ctx);
                }
            }
            return;
        }
        let _ = ctx.myself().send(ConnMsg::Internal(Internal(Step::Settle)));
    }

    /// Ends at once: queued bytes dropped, the peer sees a reset.
    fn abort(&mut self, ctx: &mut Context<Self>) {
        self.conn.clear();
        if let Some(stream) = self.stream.as_ref() {
            let _ = socket2::SockRef::from(&**stream).set_linger(Some(Duration::ZERO));
        }
        self.end(ctx);
    }

    fn end(&mut self, ctx: &mut Context<Self>) {
        self.release();
        ctx.stop();
    }

    /// Drops the socket (deregistering it) and tells whoever must know. Idempotent.
    fn release(&mut self) {
        let was_open = matches!(self.conn.phase, Phase::Connected | Phase::Closing);
        self.conn.phase = Phase::Closed;
        self.conn.writer = None;
        self.stream = None;
        self.attempts.clear();
        self.addrs.clear();
        let timers = [
            &self.connect_timer,
            &self.delay_timer,
            &self.idle_timer,
            &self.linger_timer,
        ];
        for timer in timers.into_iter().flatten() {
            timer.cancel();
        }
        if self.throttled {
            self.throttled = false;
            let _ = Backpressure::release(&self.pressure);
        }
        if was_open {
            self.handler.closed();
        }
        if let Some(end) = self.on_end.take() {
            let _ = end.send(ConnectionEnded);
        }
    }

    fn idle_check(&mut self, ctx: &mut Context<Self>) {
        let Some(idle) = self.opts.idle_timeout else {
            return;
        };
        if self.conn.phase != Phase::Connected {
            return;
        }
        let quiet = self.last_activity.elapsed();
        if quiet >= idle {
            self.handler.timed_out(&mut self.conn);
            self.last_activity = Instant::now();
        }
        let next = idle.saturating_sub(self.last_activity.elapsed());
        let msg = ConnMsg::Internal(Internal(Step::Idle));
        self.idle_timer = Some(ctx.after(next.max(Duration::from_millis(1)), msg));
    }
}

impl<H: ConnectionHandler> Drop for TcpConnection<H> {
    /// Also runs when a handler panicked (the runtime drops the actor without `stopped`): the
    /// socket is deregistered by its guard, and the listener must still hear of it.
    fn drop(&mut self) {
        if let Some(end) = self.on_end.take() {
            let _ = end.send(ConnectionEnded);
        }
    }
}

impl<H: ConnectionHandler> Actor for TcpConnection<H> {
    type Msg = ConnMsg;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some((low, high)) = self.opts.mailbox_watermarks {
            // Invalid values keep the runtime's watermarks, as documented on the option.
            let _ = ctx.set_watermarks(low, high);
        }
        match &mut self.origin {
            Origin::Accepted(stream) => {
                let stream = stream.take().expect("accepted stream");
                match self.register(ctx, stream) {
                    Ok(()) => self.established(ctx),
                    Err(_) => self.end(ctx),
                }
            }
            Origin::Connect { host, port } => {
                match (host.as_str(), *port).to_socket_addrs() {
                    Ok(addrs) => self.addrs = interleave(addrs.collect()),
                    Err(e) => self.last_error = Some(ConnectError::Resolve(e)),
                }
                self.begin_connect(ctx);
            }
            Origin::Addrs(addrs) => {
                self.addrs = interleave(std::mem::take(addrs));
                self.begin_connect(ctx);
            }
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: ConnMsg) {
        if self.conn.phase == Phase::Closed {
            return;
        }
        match msg {
            ConnMsg::Ready(ready) => {
                if self.conn.phase == Phase::Connecting {
                    if ready.writable || ready.closed {
                        self.check_connect(ctx, ready);
                    }
                    return;
                }
                if ready.writable {
                    self.write_blocked = false;
                }
                if ready.readable || ready.closed {
                    self.read(ctx);
                }
            }
            ConnMsg::Write(bytes) => {
                if matches!(self.conn.phase, Phase::Connecting | Phase::Connected) {
                    self.conn.push(bytes);
                }
            }
            ConnMsg::Close => self.conn.close(),
            ConnMsg::HardClose => self.conn.hard_close(),
            ConnMsg::Internal(Internal(step)) => match step {
                Step::ReadAgain => {
                    self.read_pending = false;
                    self.read(ctx);
                }
                Step::Sent => {
                    self.sent_pending = false;
                    for token in std::mem::take(&mut self.conn.written) {
                        self.handler.sent(&mut self.conn, token);
                    }
                }
                Step::ConnectTimeout => {
                    if self.conn.phase == Phase::Connecting {
                        self.connect_failed(ctx, ConnectError::TimedOut);
                    }
                    return;
                }
                Step::AttemptDelay(attempt) => {
                    // Only the latest attempt's delay counts: a failure since has already
                    // started the next address (and armed a fresh delay).
                    if self.conn.phase == Phase::Connecting && attempt == self.attempt {
                        self.delay_timer = None;
                        self.next_attempt(ctx);
                    }
                    return;
                }
                Step::Idle => self.idle_check(ctx),
                Step::Linger if self.half_closed => return self.end(ctx),
                // Bytes still queued: the peer stopped reading; give up on them.
                Step::Linger => return self.abort(ctx),
                Step::Settle => {}
            },
        }
        self.settle(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.release();
    }
}

/// Happy-eyeballs order (RFC 8305, section 4, simplified): IPv6 and IPv4 alternate, IPv6 first,
/// each family keeping its given order; what is left of the longer family follows.
fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let (mut v6, mut v4): (VecDeque<_>, VecDeque<_>) =
        addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut out = VecDeque::with_capacity(v6.len() + v4.len());
    while !v6.is_empty() || !v4.is_empty() {
        out.extend(v6.pop_front());
        out.extend(v4.pop_front());
    }
    out
}

/// Applies the socket options in `opts` (a refusal leaves the kernel's value, which the
/// read-back shows) and reads back what is in force.
fn apply_socket_options(stream: &TcpStream, opts: &ConnectionOptions) -> SocketOptions {
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_nodelay(opts.nodelay);
    if let Some(idle) = opts.keepalive {
        let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle));
    }
    if let Some(bytes) = opts.send_buffer_size {
        let _ = sock.set_send_buffer_size(bytes);
    }
    if let Some(bytes) = opts.recv_buffer_size {
        let _ = sock.set_recv_buffer_size(bytes);
    }
    SocketOptions {
        nodelay: sock.nodelay().ok(),
        keepalive: sock.keepalive().ok(),
        send_buffer_size: sock.send_buffer_size().ok(),
        recv_buffer_size: sock.recv_buffer_size().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::interleave;
    use std::net::SocketAddr;

    #[test]
    fn interleaves_families_ipv6_first() {
        let parse =
            |v: &[&str]| -> Vec<SocketAddr> { v.iter().map(|a| a.parse().unwrap()).collect() };
        let given = parse(&["1.0.0.1:1", "1.0.0.2:1", "[::1]:1", "1.0.0.3:1", "[::2]:1"]);
        let want = parse(&["[::1]:1", "1.0.0.1:1", "[::2]:1", "1.0.0.2:1", "1.0.0.3:1"]);
        assert_eq!(Vec::from(interleave(given)), want);
        let only4 = parse(&["1.0.0.2:1", "1.0.0.1:1"]);
        assert_eq!(Vec::from(interleave(only4.clone())), only4);
        assert!(interleave(Vec::new()).is_empty());
    }
}
