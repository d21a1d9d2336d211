//! [`TcpConnection`]: one TCP stream as an actor, running your [`ConnectionHandler`].
//!
//! Why an actor per connection: the handler's state is private to it, so it needs no locks, and
//! rein's backpressure applies to it like to any actor. When the write queue passes its high
//! watermark the connection applies [`Backpressure`] on itself, so every actor that writes to it
//! is muted until the peer catches up: a slow peer slows its producers down end to end instead
//! of growing a buffer without bound.
//!
//! The connection is split the way its concerns are:
//! * `connect`: happy eyeballs and its timers, alive only while connecting;
//! * `socket`: the registered socket, the only code that knows where readiness comes from;
//! * `read_buf` and `write_queue`: the adaptive read buffer, the queue of `Bytes` written with
//!   vectored writes;
//! * `state`: the connection's state as enums, one per independent question;
//! * `msg`: its address ([`ConnRef`]) and opaque message type;
//! * `tls`: handshakes and STARTTLS as the connection sees them; the TLS layer itself
//!   (`crate::tls`) sits between the socket and the read buffer and write queue, and is called
//!   at the two places where bytes cross (`read`, `settle`'s flush) and at a graceful close;
//! * `crate::conn`: what the handler sees ([`Conn`]); `crate::framing`: cutting frames.
//!
//! This file is the actor: it dispatches messages and runs the two loops that tie the rest
//! together, [`read`](TcpConnection::read) (socket to handler) and
//! [`settle`](TcpConnection::settle) (handler requests to socket, throttling, closing).
//!
//! Fairness: a turn reads at most `read_per_turn` bytes, then the connection sends itself a
//! "read again" message, so one busy socket cannot hold a worker.
//!
//! Holding delivery: a handler that forwards what it receives (an echo, a proxy) gets a send
//! refused once the write queue is over its high watermark, and has to keep those bytes until
//! `unthrottled`. `throttled` only comes after the turn, so without more the connection would
//! go on delivering the rest of the turn's frames, each refused in turn, and a handler with one
//! slot for refused bytes would overwrite them: data lost. So a `NotWriteable` refusal inside
//! `received` holds delivery, and reading, until `unthrottled` has been delivered. It is scoped
//! to `received` on purpose: a client whose own pumping is refused (in `sent`, `unthrottled`)
//! must keep reading its peer's replies, or a full-duplex stream would deadlock, each side
//! waiting for the other to read.
//!
//! Writes from other actors go through the connection's [`Overflow`] policy: by default the
//! connection applies backpressure on itself while throttled, so its writers are muted; the
//! other policies never apply it and bound the write queue by dropping (newest or oldest) or
//! by disconnecting, so that a writer serving many peers is not held back by the slowest.
//!
//! A host name is resolved first, on a helper thread (see `resolve`), never on a worker: the
//! system resolver blocks, for seconds when DNS is slow. The answer arrives as an internal
//! message; meanwhile the actor is idle and its worker runs other actors. The connect timeout
//! is armed before the lookup, so it bounds resolution too.

pub(crate) mod connect;
pub(crate) mod gate;
pub(crate) mod msg;
pub(crate) mod options;
pub(crate) mod read_buf;
pub(crate) mod socket;
pub(crate) mod state;
mod tls;
pub(crate) mod write_queue;

use crate::conn::Core;
use crate::io_thread::Reactor;
use crate::resolve;
#[cfg(feature = "tls")]
use crate::tls::Layer as TlsLayer;
#[cfg(not(feature = "tls"))]
use crate::tls_off::Layer as TlsLayer;
use crate::{
    CloseReason, Conn, ConnRef, ConnectError, ConnectionEnded, ConnectionHandler,
    ConnectionOptions, Flow, Overflow, TcpConnectAuth,
};
use bytes::Bytes;
use connect::{Connector, Progress};
use gate::Gate;
use mio::net::TcpStream;
use msg::{ConnMsg, Msg, Step};
use read_buf::ReadBuf;
use rein::{Actor, ActorId, ActorRef, Context, Recipient, Timer};
use rein_backpressure::{ApplyReleaseBackpressureAuth, Backpressure};
use socket::Socket;
use state::{CloseRequest, Closing, Delivery, Inbound, Mute, Outbound, Stage, Throttle};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use write_queue::Flushed;

/// How a connection tells its listener that it ended.
pub(crate) type EndNotice = Box<dyn FnOnce(ConnectionEnded) + Send>;

enum Origin {
    Connect { host: String, port: u16 },
    Addrs(Vec<SocketAddr>),
    Accepted(TcpStream),
}

/// Messages the connection sent itself and has not handled yet, so each is sent once.
#[derive(Default)]
struct Posted {
    read_again: bool,
    sent: bool,
}

/// A TCP connection actor running the handler `H`. Open an outgoing one with
/// [`TcpConnection::connect`]; a [`TcpListener`](crate::TcpListener) spawns one per accepted
/// stream. Either way you get its address, a [`ConnRef`].
pub struct TcpConnection<H: ConnectionHandler> {
    handler: H,
    core: Core,
    origin: Option<Origin>,
    /// While connecting.
    connect: Option<Connector>,
    socket: Option<Socket>,
    /// TLS between the socket and the read buffer and write queue (nothing for plain TCP).
    tls: TlsLayer,
    reactor: Reactor,
    opts: ConnectionOptions,
    pressure: ApplyReleaseBackpressureAuth,
    read: ReadBuf,
    inbound: Inbound,
    delivery: Delivery,
    outbound: Outbound,
    throttle: Throttle,
    posted: Posted,
    /// Writes dropped by [`Overflow::Lag`] that the handler has not heard of yet.
    missed: u64,
    idle_timer: Option<Timer>,
    linger_timer: Option<Timer>,
    /// Reopens a read gate closed until an instant.
    gate_timer: Option<Timer>,
    /// Whether an edge has said the peer closed (or the socket failed). From then on every
    /// read goes on to `WouldBlock` or the end: the end of stream may already be waiting behind
    /// the data, and no further edge would announce it.
    hangup_seen: bool,
    last_activity: Instant,
    id: Option<ActorId>,
    on_end: Option<EndNotice>,
}

impl<H: ConnectionHandler> TcpConnection<H> {
    /// Spawns a connection to `host:port` on the reactor's runtime and returns its address. An
    /// IP literal `host` is connected to at once; a name is resolved with the system resolver
    /// on a helper thread, not on a runtime worker, within the connect timeout. A name that
    /// cannot be resolved ends in [`ConnectError::Resolve`], one that resolves to nothing in
    /// [`ConnectError::NoAddresses`].
    ///
    /// Bytes [written](ConnRef::write) and messages sent before the connection opens are
    /// handled in order: writes go out once it is open.
    pub fn connect(
        reactor: &Reactor,
        auth: &TcpConnectAuth,
        host: impl Into<String>,
        port: u16,
        handler: H,
        opts: ConnectionOptions,
    ) -> ConnRef<H::Msg> {
        let host = host.into();
        let tls = TlsLayer::for_connect(&opts, Some(&host));
        let origin = Origin::Connect { host, port };
        let actor = Self::new(
            reactor,
            auth.pressure.clone(),
            origin,
            tls,
            handler,
            opts,
            None,
        );
        Self::spawn(reactor, actor)
    }

    /// Spawns a connection that races `addrs` (no name resolution), happy-eyeballs style: IPv6
    /// and IPv4 addresses alternate (IPv6 first), each family keeping the given order, and a new
    /// attempt starts every `attempt_delay` or as soon as one fails. The first to answer within
    /// the connect timeout wins; the last failure is reported otherwise.
    pub fn connect_addrs(
        reactor: &Reactor,
        auth: &TcpConnectAuth,
        addrs: Vec<SocketAddr>,
        handler: H,
        opts: ConnectionOptions,
    ) -> ConnRef<H::Msg> {
        let origin = Origin::Addrs(addrs);
        let tls = TlsLayer::for_connect(&opts, None);
        let actor = Self::new(
            reactor,
            auth.pressure.clone(),
            origin,
            tls,
            handler,
            opts,
            None,
        );
        Self::spawn(reactor, actor)
    }

    pub(crate) fn accepted(
        reactor: &Reactor,
        pressure: ApplyReleaseBackpressureAuth,
        stream: TcpStream,
        tls: TlsLayer,
        handler: H,
        opts: ConnectionOptions,
        on_end: EndNotice,
    ) -> Self {
        let origin = Origin::Accepted(stream);
        Self::new(reactor, pressure, origin, tls, handler, opts, Some(on_end))
    }

    /// Spawns an outgoing connection. If the runtime has ended, the handler hears
    /// [`ConnectError::RuntimeEnded`] at once, on this thread, and the address is closed.
    fn spawn(reactor: &Reactor, actor: Self) -> ConnRef<H::Msg> {
        match reactor.runtime().spawn(actor) {
            Ok(actor) => Self::address(&actor),
            Err(refused) => {
                refused
                    .into_inner()
                    .handler
                    .connect_failed(ConnectError::RuntimeEnded);
                ConnRef::new(Recipient::closed(), Recipient::closed())
            }
        }
    }

    pub(crate) fn address(actor: &ActorRef<Self>) -> ConnRef<H::Msg> {
        ConnRef::new(actor.recipient(), actor.recipient())
    }

    fn new(
        reactor: &Reactor,
        pressure: ApplyReleaseBackpressureAuth,
        origin: Origin,
        tls: TlsLayer,
        handler: H,
        opts: ConnectionOptions,
        on_end: Option<EndNotice>,
    ) -> Self {
        TcpConnection {
            handler,
            core: Core::new(opts.high_watermark, opts.low_watermark),
            origin: Some(origin),
            connect: None,
            socket: None,
            tls,
            reactor: reactor.clone(),
            read: ReadBuf::new(opts.read_per_turn),
            opts,
            pressure,
            inbound: Inbound::Open,
            delivery: Delivery::Flowing,
            outbound: Outbound::Ready,
            throttle: Throttle::Off,
            posted: Posted::default(),
            missed: 0,
            idle_timer: None,
            linger_timer: None,
            gate_timer: None,
            hangup_seen: false,
            last_activity: Instant::now(),
            id: None,
            on_end,
        }
    }

    /// Runs `f` with the handler and its view of the connection.
    fn with_conn<R>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut H, &mut Conn<'_, '_, H>) -> R,
    ) -> R {
        let mut conn = Conn {
            core: &mut self.core,
            ctx,
        };
        f(&mut self.handler, &mut conn)
    }

    fn post(ctx: &Context<Self>, step: Step) {
        let _ = ctx.myself().send(ConnMsg(Msg::Step(step)));
    }

    // ------------------------------------------------------------------ connecting

    /// Looks `host` up on a helper thread; the answer comes back as [`Step::Resolved`]. The
    /// helper keeps the runtime alive until it has sent it.
    fn resolve(&mut self, ctx: &mut Context<Self>, host: String, port: u16) {
        let me = ctx.myself();
        let alive = self.reactor.runtime().keep_alive();
        let started = resolve::spawn(host, port, alive, move |answer| {
            let _ = me.send(ConnMsg(Msg::Step(Step::Resolved(answer))));
        });
        if let Err(e) = started {
            self.resolved(ctx, Err(e));
        }
    }

    /// The lookup's answer: race the addresses, or fail with the typed error.
    fn resolved(&mut self, ctx: &mut Context<Self>, answer: resolve::Answer) {
        let Some(connector) = self.connect.as_mut() else {
            return;
        };
        match answer {
            Ok(addrs) => connector.add(addrs),
            Err(e) => connector.fail_with(ConnectError::Resolve(e)),
        }
        self.next_attempt(ctx);
    }

    fn next_attempt(&mut self, ctx: &mut Context<Self>) {
        let Some(connector) = self.connect.as_mut() else {
            return;
        };
        let progress = connector.next_attempt(ctx, &self.reactor, &mut self.handler);
        self.progress(ctx, progress);
    }

    fn progress(&mut self, ctx: &mut Context<Self>, progress: Progress) {
        match progress {
            Progress::Trying => {}
            Progress::Connected(socket) => {
                // Dropping the connector cancels its timers.
                self.connect = None;
                self.socket = Some(socket);
                self.established(ctx);
            }
            Progress::Failed(reason) => self.connect_failed(ctx, reason),
        }
    }

    fn connect_failed(&mut self, ctx: &mut Context<Self>, reason: ConnectError) {
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "rein_net::socket",
            conn = ctx.id().as_u64(),
            reason = %reason,
            "connect failed"
        );
        self.connect = None;
        self.handler.connect_failed(reason);
        self.end(ctx, CloseReason::Closed);
    }

    fn established(&mut self, ctx: &mut Context<Self>) {
        let socket = self.socket.as_ref().expect("registered");
        self.core.socket = Some(socket.apply(&self.opts));
        self.core.peer = socket.peer_addr();
        self.core.local = socket.local_addr();
        self.last_activity = Instant::now();
        // With TLS, the handshake first: it opens the connection when it finishes.
        if self.start_configured_tls(ctx) {
            return;
        }
        self.opened(ctx);
        // Edges may already have been consumed: try both directions.
        self.read(ctx);
        self.settle(ctx);
    }

    /// Open both ways: the handler hears `connected`.
    fn opened(&mut self, ctx: &mut Context<Self>) {
        self.core.stage = Stage::Open;
        self.last_activity = Instant::now();
        if let Some(idle) = self.opts.idle_timeout {
            self.idle_timer = Some(ctx.after(idle, ConnMsg(Msg::Step(Step::Idle))));
        }
        self.with_conn(ctx, |h, conn| h.connected(conn));
    }

    // ------------------------------------------------------------------ reading

    /// Delivers the frames the read buffer holds. Returns `false` when reading must stop for
    /// this turn.
    fn deliver_buffered(&mut self, ctx: &mut Context<Self>) -> bool {
        loop {
            if !self.may_deliver() {
                return false;
            }
            // The handler may change the framing in `received`: cut each frame anew.
            let Some(next) = self.core.framer.next(self.read.bytes()) else {
                return true;
            };
            match next {
                Ok(frame) => {
                    if !self.deliver(ctx, frame) {
                        return false;
                    }
                }
                Err(error) => {
                    self.core.cause = Some(CloseReason::FrameError(error));
                    self.with_conn(ctx, |h, conn| h.frame_error(conn, error));
                    self.core.cause = None;
                }
            }
        }
    }

    /// Hands `data` to the handler. Returns `false` when delivery must stop for this turn: the
    /// handler yielded, muted, closed, or had a send refused (which holds delivery until
    /// `unthrottled`, see [`Conn::send`]).
    fn deliver(&mut self, ctx: &mut Context<Self>, data: Bytes) -> bool {
        self.core.writes.take_refused();
        let flow = self.with_conn(ctx, |h, conn| h.received(conn, data));
        if self.core.writes.take_refused() {
            self.delivery = Delivery::Held;
        }
        // STARTTLS: what follows is not plaintext any more.
        if self.apply_start_tls(ctx) {
            return false;
        }
        if !self.may_deliver() {
            return false;
        }
        if flow == Flow::Yield {
            self.schedule_read(ctx);
            return false;
        }
        true
    }

    fn may_deliver(&self) -> bool {
        self.core.is_open()
            && self.core.mute != Mute::On
            && self.delivery == Delivery::Flowing
            && self.gate() == Gate::Open
    }

    /// The read gate an ingress controls ([`crate::ingress`]); open if there is none.
    fn gate(&self) -> Gate {
        match &self.core.gate {
            Some(gate) => gate.at(Instant::now()),
            None => Gate::Open,
        }
    }

    /// A gate closed until an instant needs a timer to reopen it: arms one if none is pending.
    fn arm_gate_timer(&mut self, ctx: &Context<Self>) {
        if let Gate::Until(at) = self.gate() {
            if self.gate_timer.as_ref().map_or(true, Timer::is_done) {
                let msg = ConnMsg(Msg::Step(Step::GateTimer));
                let delay = at.saturating_duration_since(Instant::now());
                self.gate_timer = Some(ctx.after(delay, msg));
            }
        }
    }

    fn schedule_read(&mut self, ctx: &Context<Self>) {
        if !self.posted.read_again {
            self.posted.read_again = true;
            Self::post(ctx, Step::ReadAgain);
        }
    }

    /// Reads up to the per-turn budget, delivering to the handler (or discarding while closing).
    /// An idle connection gives its read buffer back here.
    fn read(&mut self, ctx: &mut Context<Self>) {
        // A TLS handshake reads (and delivers nothing); a closing connection discards.
        let handshaking = self.core.stage == Stage::Handshaking;
        let closing = !self.core.is_open() && !handshaking;
        if !closing && !handshaking && !self.deliver_buffered(ctx) {
            return;
        }
        let mut budget = self.opts.read_per_turn.max(1);
        while budget > 0 {
            let Some(socket) = self.socket.as_ref() else {
                return;
            };
            let missing = self.core.framer.missing(self.read.len());
            let result = self
                .tls
                .read(socket, &mut self.read, budget, missing, closing);
            self.tls_after_read(ctx);
            match result {
                Ok(0) => {
                    self.inbound = Inbound::Ended;
                    self.core.request.graceful(self.tls.end_reason());
                    self.read.release_if_empty();
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.last_activity = Instant::now();
                    // A short plain read emptied the socket: skip the read that would only say
                    // `WouldBlock` (a quarter of all reads in the echo benchmark), since data
                    // arriving later brings a new edge.
                    let drained = self.read.take_short() && !self.hangup_seen && cfg!(not(windows));
                    if closing {
                        self.read.clear();
                        if drained {
                            return;
                        }
                        continue;
                    }
                    if !self.deliver_buffered(ctx) {
                        return;
                    }
                    if drained {
                        self.socket_emptied();
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.socket_emptied();
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.core.request.abort(CloseReason::from_io(e));
                    return;
                }
            }
        }
        self.schedule_read(ctx);
    }

    /// A read turn found the socket empty: an idle connection gives its buffers back.
    fn socket_emptied(&mut self) {
        self.read.release_if_empty();
        self.core.writes.shrink_if_empty();
    }

    // ------------------------------------------------------------------ writing and closing

    /// Whether a peer that lagged has caught up enough to be told: its queue drained to the
    /// low watermark, or to half the `Lag` limit if that is lower (otherwise, with a limit under
    /// the low watermark, it would be told after every drop and the notices, which are never
    /// dropped, would pile up).
    fn caught_up(&self) -> bool {
        let mut level = self.opts.low_watermark;
        if let Overflow::Lag { limit } = self.opts.overflow {
            level = level.min(limit / 2);
        }
        self.core.writes.queued() <= level
    }

    /// Bytes another actor wrote ([`ConnRef::write`]), through the overflow policy.
    fn write_from_other(&mut self, bytes: Bytes) {
        let writes = &mut self.core.writes;
        let over = |limit: usize| writes.queued() > 0 && writes.queued() + bytes.len() > limit;
        match self.opts.overflow {
            Overflow::DropNewest { limit } if over(limit) => {
                self.core.dropped.0 += 1;
                self.core.dropped.1 += bytes.len() as u64;
            }
            Overflow::Disconnect { limit } if over(limit) => {
                self.core.request.abort(CloseReason::SendQueueFull);
            }
            Overflow::Lag { limit } => {
                writes.push(bytes);
                let (chunks, dropped) = writes.drop_oldest_over(limit);
                self.missed += chunks;
                self.core.dropped.0 += chunks;
                self.core.dropped.1 += dropped as u64;
            }
            _ => {
                writes.push(bytes);
            }
        }
        self.core.writes.note_peak();
    }

    /// After any event or callback: act on close requests, flush, report sent tokens, throttle or
    /// unthrottle, and finish a graceful close. Loops because callbacks can queue more; after a
    /// few rounds it finishes in a later turn so one connection cannot hold the worker.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        for _ in 0..8 {
            self.apply_start_tls(ctx);
            match (&self.core.request, self.core.stage) {
                (_, Stage::Closed) => return,
                (CloseRequest::Abort(_), Stage::Connecting) => {
                    return self.connect_failed(ctx, ConnectError::Aborted);
                }
                (CloseRequest::Abort(reason), Stage::Handshaking) => {
                    let reason = reason.clone();
                    return self.handshake_failed(ctx, reason);
                }
                (CloseRequest::Abort(reason), _) => {
                    let reason = reason.clone();
                    return self.abort(ctx, reason);
                }
                (_, Stage::Connecting) => return,
                (CloseRequest::Graceful(_), Stage::Open) => {
                    self.core.stage = Stage::Closing(Closing::Flushing);
                    // Bounds the whole close: a peer that neither reads nor closes gets a reset.
                    let msg = ConnMsg(Msg::Step(Step::Linger));
                    self.linger_timer = Some(ctx.after(self.opts.close_linger, msg));
                }
                _ => {}
            }
            if self.core.stage == Stage::Closing(Closing::WriteShut)
                && self.inbound == Inbound::Ended
            {
                return self.end(ctx, self.ending_reason());
            }
            // Before flushing: a handler that saw `is_writeable() == false` always hears
            // `throttled` and then `unthrottled`, even if the kernel takes everything at once.
            if self.throttle == Throttle::Off && self.core.writes.over_high() {
                self.throttle = Throttle::On;
                // Only the default policy holds writers back; the others bound the queue
                // themselves, so that one slow peer cannot stall a writer that serves many.
                if self.opts.overflow == Overflow::MuteWriters {
                    let _ = Backpressure::apply(&self.pressure);
                }
                self.with_conn(ctx, |h, conn| h.throttled(conn));
                continue;
            }
            if self.outbound == Outbound::Ready && self.has_output() {
                let Some(socket) = self.socket.as_ref() else {
                    return;
                };
                match self.tls.flush(socket, &mut self.core.writes) {
                    Ok(flushed) => {
                        if let Flushed::Blocked(_) = flushed {
                            self.outbound = Outbound::Blocked;
                        }
                        if flushed.bytes() > 0 {
                            self.last_activity = Instant::now();
                        }
                    }
                    Err(e) => return self.abort(ctx, CloseReason::from_io(e)),
                }
            }
            if self.core.writes.has_written() && !self.posted.sent {
                self.posted.sent = true;
                Self::post(ctx, Step::Sent);
            }
            if self.core.mute == Mute::Lifted {
                self.core.mute = Mute::Off;
                self.schedule_read(ctx);
            }
            if self.throttle == Throttle::On && self.core.writes.at_or_below_low() {
                self.throttle = Throttle::Off;
                let _ = Backpressure::release(&self.pressure);
                self.with_conn(ctx, |h, conn| h.unthrottled(conn));
                // Only now: the handler has sent what it kept from the refusal.
                if self.delivery == Delivery::Held {
                    self.delivery = Delivery::Flowing;
                    self.schedule_read(ctx);
                }
                continue;
            }
            if self.missed > 0 && self.core.is_open() && self.caught_up() {
                let missed = std::mem::take(&mut self.missed);
                self.with_conn(ctx, |h, conn| h.lagged(conn, missed));
                continue;
            }
            if self.core.stage == Stage::Closing(Closing::Flushing) && !self.has_output() {
                // TLS: close_notify goes out before the write side is shut.
                if self.tls.close_notify() {
                    continue;
                }
                if let Some(socket) = self.socket.as_ref() {
                    socket.shutdown_write();
                }
                self.core.stage = Stage::Closing(Closing::WriteShut);
                // Drain (and discard) until the peer's end of stream.
                self.read(ctx);
                continue;
            }
            return;
        }
        Self::post(ctx, Step::Settle);
    }

    /// Bytes to write: queued by the handler, or the TLS layer's own (handshake, alerts).
    fn has_output(&self) -> bool {
        self.core.writes.has_queued() || self.tls.wants_write()
    }

    fn ending_reason(&self) -> CloseReason {
        self.core.request.reason().unwrap_or(CloseReason::Closed)
    }

    /// A graceful close ran out of time: the write side was shut (the peer just never closed
    /// its own) or bytes were still queued (the peer stopped reading: give up on them).
    fn linger_over(&mut self, ctx: &mut Context<Self>) {
        match self.core.stage {
            Stage::Closing(Closing::WriteShut) => self.end(ctx, self.ending_reason()),
            Stage::Closing(Closing::Flushing) => self.abort(ctx, CloseReason::Aborted),
            _ => {}
        }
    }

    /// Ends at once: queued bytes dropped, the peer sees a reset.
    fn abort(&mut self, ctx: &mut Context<Self>, reason: CloseReason) {
        self.core.writes.clear();
        if let Some(socket) = self.socket.as_ref() {
            // A TLS failure closes without a reset, so the peer reads rustls' alert.
            if reason.resets() {
                socket.reset_on_close();
            }
        }
        self.end(ctx, reason);
    }

    fn end(&mut self, ctx: &mut Context<Self>, reason: CloseReason) {
        self.release(ctx, reason);
        ctx.stop();
    }

    /// Drops the socket (deregistering it) and tells whoever must know. Only the first call
    /// acts.
    fn release(&mut self, ctx: &mut Context<Self>, reason: CloseReason) {
        let was_open = match self.core.stage {
            Stage::Closed => return,
            Stage::Connecting | Stage::Handshaking => false,
            Stage::Open | Stage::Closing(_) => true,
        };
        self.core.stage = Stage::Closed;
        self.tls.release();
        #[cfg(feature = "tracing")]
        match &reason {
            CloseReason::Error(e) => tracing::warn!(
                target: "rein_net::socket",
                conn = ctx.id().as_u64(),
                peer = ?self.core.peer,
                error = %e,
                "connection ended by a socket error"
            ),
            CloseReason::Reset => tracing::debug!(
                target: "rein_net::socket",
                conn = ctx.id().as_u64(),
                peer = ?self.core.peer,
                "connection reset by the peer"
            ),
            _ => {}
        }
        self.socket = None;
        self.connect = None;
        for timer in [
            self.idle_timer.take(),
            self.linger_timer.take(),
            self.gate_timer.take(),
        ]
        .into_iter()
        .flatten()
        {
            timer.cancel();
        }
        if self.throttle == Throttle::On {
            self.throttle = Throttle::Off;
            let _ = Backpressure::release(&self.pressure);
        }
        self.core.writes.clear();
        self.read.clear();
        self.read.release_if_empty();
        if was_open {
            self.handler.closed(reason.clone());
        }
        if let Some(end) = self.on_end.take() {
            end(ConnectionEnded {
                id: ctx.id(),
                peer: self.core.peer,
                reason,
            });
        }
    }

    fn idle_check(&mut self, ctx: &mut Context<Self>) {
        let Some(idle) = self.opts.idle_timeout else {
            return;
        };
        if self.core.stage != Stage::Open {
            return;
        }
        if self.last_activity.elapsed() >= idle {
            self.core.cause = Some(CloseReason::TimedOut);
            self.with_conn(ctx, |h, conn| h.timed_out(conn));
            self.core.cause = None;
            self.last_activity = Instant::now();
        }
        let next = idle.saturating_sub(self.last_activity.elapsed());
        let msg = ConnMsg(Msg::Step(Step::Idle));
        self.idle_timer = Some(ctx.after(next.max(Duration::from_millis(1)), msg));
    }
}

impl<H: ConnectionHandler> Drop for TcpConnection<H> {
    /// Also runs when a handler panicked (the runtime drops the actor without `stopped`): the
    /// socket is deregistered by its guard, and the listener must still hear of it.
    fn drop(&mut self) {
        if let (Some(end), Some(id)) = (self.on_end.take(), self.id) {
            end(ConnectionEnded {
                id,
                peer: self.core.peer,
                reason: CloseReason::Panicked,
            });
        }
    }
}

impl<H: ConnectionHandler> Actor for TcpConnection<H> {
    type Msg = ConnMsg<H::Msg>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.id = Some(ctx.id());
        if let Some((low, high)) = self.opts.mailbox_watermarks {
            // Invalid values keep the runtime's watermarks, as documented on the option.
            let _ = ctx.set_watermarks(low, high);
        }
        match self.origin.take() {
            Some(Origin::Accepted(stream)) => match Socket::register(&self.reactor, ctx, stream) {
                Ok(socket) => {
                    self.socket = Some(socket);
                    self.established(ctx);
                }
                Err(e) => self.end(ctx, CloseReason::from_io(e)),
            },
            Some(Origin::Connect { host, port }) => {
                let mut connector = Connector::start(ctx, &self.opts);
                match resolve::literal(&host, port) {
                    Some(addr) => {
                        connector.add(vec![addr]);
                        self.connect = Some(connector);
                        self.next_attempt(ctx);
                    }
                    None => {
                        self.connect = Some(connector);
                        self.resolve(ctx, host, port);
                    }
                }
            }
            Some(Origin::Addrs(addrs)) => {
                let mut connector = Connector::start(ctx, &self.opts);
                connector.add(addrs);
                self.connect = Some(connector);
                self.next_attempt(ctx);
            }
            None => {}
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, ConnMsg(msg): ConnMsg<H::Msg>) {
        if self.core.stage == Stage::Closed {
            return;
        }
        match msg {
            Msg::User(msg) => self.with_conn(ctx, |h, conn| h.message(conn, msg)),
            Msg::Write(bytes) => {
                if matches!(
                    self.core.stage,
                    Stage::Connecting | Stage::Handshaking | Stage::Open
                ) && self.core.request.is_none()
                {
                    self.write_from_other(bytes);
                }
            }
            Msg::Close => self.core.request.graceful(CloseReason::Closed),
            Msg::Abort => self.core.request.abort(CloseReason::Aborted),
            Msg::Ready(ready) if ready.failed => {
                // The runtime's readiness polling failed: no edge will come again, so the
                // connection cannot go on. Say so rather than hang.
                let e = io::Error::other("the runtime's readiness polling failed");
                if self.core.stage == Stage::Connecting {
                    self.connect_failed(ctx, ConnectError::Io(e));
                } else {
                    self.core.request.abort(CloseReason::Error(Arc::new(e)));
                }
            }
            Msg::Ready(ready) => {
                if self.core.stage == Stage::Connecting {
                    if ready.writable || ready.closed {
                        if let Some(connector) = self.connect.as_mut() {
                            let progress =
                                connector.check(ready, ctx, &self.reactor, &mut self.handler);
                            self.progress(ctx, progress);
                        }
                    }
                } else {
                    if ready.writable {
                        self.outbound = Outbound::Ready;
                    }
                    self.hangup_seen |= ready.closed;
                    if ready.readable || ready.closed {
                        self.read(ctx);
                    }
                }
            }
            Msg::Step(step) => match step {
                Step::ReadAgain => {
                    self.posted.read_again = false;
                    self.read(ctx);
                }
                Step::Sent => {
                    self.posted.sent = false;
                    for token in self.core.writes.take_written() {
                        self.with_conn(ctx, |h, conn| h.sent(conn, token));
                    }
                }
                Step::ConnectTimeout => {
                    if self.core.stage == Stage::Connecting {
                        self.connect_failed(ctx, ConnectError::TimedOut);
                    }
                }
                Step::Resolved(answer) => self.resolved(ctx, answer),
                Step::AttemptDelay(attempt) => {
                    if let Some(connector) = self.connect.as_mut() {
                        let progress =
                            connector.delay_over(attempt, ctx, &self.reactor, &mut self.handler);
                        self.progress(ctx, progress);
                    }
                }
                Step::Idle => self.idle_check(ctx),
                #[cfg(feature = "tls")]
                Step::TlsHandshakeTimeout => self.tls_handshake_timeout(),
                Step::Linger => return self.linger_over(ctx),
                Step::Settle => {}
                Step::GateOpened => self.read(ctx),
                Step::GateTimer => {
                    self.gate_timer = None;
                    self.read(ctx);
                }
            },
        }
        self.arm_gate_timer(ctx);
        self.settle(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.release(ctx, CloseReason::Shutdown);
    }
}

#[cfg(test)]
mod tests;
