//! [`Conn`]: what a connection handler sees of its connection and of the actor it runs in.
//!
//! Why a view rather than the actor itself: the handler can queue bytes, record requests
//! (mute, framing, close) and act as an actor (timers, spawning, monitoring, its own address),
//! but every system call happens in the connection after the callback returns. That keeps all
//! I/O, throttling and backpressure decisions in one place and makes the handler impossible
//! to re-enter. The part of the connection a handler may change is [`Core`]; the rest of the
//! actor is out of its reach.

use crate::connection::gate::ReadGate;
use crate::connection::msg::{ConnMsg, Msg, Step};
use crate::connection::state::{CloseRequest, Mute, Stage};
use crate::connection::write_queue::WriteQueue;
use crate::connection::TcpConnection;
use crate::framing::{Framer, Framing};
use crate::{CloseReason, ConnRef, ConnectionHandler};
use bytes::Bytes;
use rein::{
    Actor, ActorDown, ActorId, ActorRef, Context, Recipient, ReplyTo, RuntimeHandle, Timer,
};
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Identifies one [`Conn::send`]; handed back to [`sent`](crate::ConnectionHandler::sent) once
/// all its bytes were handed to the operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendToken(pub(crate) u64);

impl SendToken {
    /// The token's sequence number (tokens of one connection count up from 0).
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// Why [`Conn::send`] refused bytes; they are handed back.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is not (or no longer) open for writing.
    NotConnected(Bytes),
    /// The write queue is at or above its high watermark; wait for
    /// [`unthrottled`](crate::ConnectionHandler::unthrottled). Refused during
    /// [`received`](crate::ConnectionHandler::received), it also holds delivery until then (see
    /// [`Conn::send`]).
    NotWriteable(Bytes),
}

impl SendError {
    /// The refused bytes.
    pub fn into_inner(self) -> Bytes {
        match self {
            SendError::NotConnected(b) | SendError::NotWriteable(b) => b,
        }
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected(b) => write!(f, "NotConnected({} bytes)", b.len()),
            SendError::NotWriteable(b) => write!(f, "NotWriteable({} bytes)", b.len()),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected(_) => f.write_str("the connection is not open for writing"),
            SendError::NotWriteable(_) => {
                f.write_str("the write queue is above its high watermark")
            }
        }
    }
}

impl std::error::Error for SendError {}

/// The socket options a connection ended up with, read back from the kernel after applying
/// [`ConnectionOptions`](crate::ConnectionOptions) (the kernel may round or double buffer
/// sizes). `None` for a reading the platform does not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// `TCP_NODELAY`.
    pub nodelay: Option<bool>,
    /// `SO_KEEPALIVE`.
    pub keepalive: Option<bool>,
    /// `SO_SNDBUF`, in bytes.
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF`, in bytes.
    pub recv_buffer_size: Option<usize>,
}

/// The part of a connection its handler may change: the write queue, read muting, framing,
/// close requests; and what it may read (addresses, options).
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) stage: Stage,
    pub(crate) request: CloseRequest,
    pub(crate) writes: WriteQueue,
    pub(crate) framer: Framer,
    pub(crate) mute: Mute,
    /// What a close asked for during the current callback means, if not a plain local close
    /// (`timed_out` closing is [`CloseReason::TimedOut`]).
    pub(crate) cause: Option<CloseReason>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) socket: Option<SocketOptions>,
    /// Writes from other actors dropped by the overflow policy, and their bytes.
    pub(crate) dropped: (u64, u64),
    /// The read gate an ingress discipline controls, once one asked for it.
    pub(crate) gate: Option<Arc<ReadGate>>,
    /// STARTTLS requests and what the handshake agreed on.
    #[cfg(feature = "tls")]
    pub(crate) tls: crate::tls::CoreTls,
}

impl Core {
    pub(crate) fn new(high: usize, low: usize) -> Self {
        Core {
            stage: Stage::Connecting,
            request: CloseRequest::None,
            writes: WriteQueue::new(high, low),
            framer: Framer::new(),
            mute: Mute::Off,
            cause: None,
            peer: None,
            local: None,
            socket: None,
            dropped: (0, 0),
            gate: None,
            #[cfg(feature = "tls")]
            tls: crate::tls::CoreTls::default(),
        }
    }

    /// Open for writing: connected, and no close asked for.
    pub(crate) fn is_open(&self) -> bool {
        self.stage == Stage::Open && self.request.is_none()
    }
}

/// The connection as its handler sees it: queue bytes, read flow control, framing, closing;
/// and the connection actor's powers: its own address, timers, spawning, monitoring.
///
/// Handlers name it `Conn<Self>` (the two lifetimes are elided).
pub struct Conn<'a, 'c, H: ConnectionHandler> {
    pub(crate) core: &'a mut Core,
    pub(crate) ctx: &'a mut Context<'c, TcpConnection<H>>,
}

impl<H: ConnectionHandler> fmt::Debug for Conn<'_, '_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("stage", &self.core.stage)
            .field("peer", &self.core.peer)
            .field("queued", &self.core.writes.queued())
            .finish_non_exhaustive()
    }
}

impl<H: ConnectionHandler> Conn<'_, '_, H> {
    /// Queues bytes for writing: a `Bytes`, `Vec<u8>`, `&'static [u8]`, `&'static str` or
    /// `String`, none of them copied. Refused, with the bytes handed back, unless the
    /// connection is open and [writeable](Conn::is_writeable). A send that is accepted may take
    /// the queue past the high watermark; the connection then throttles.
    ///
    /// A refusal as [`SendError::NotWriteable`] during
    /// [`received`](crate::ConnectionHandler::received) **holds delivery**: `received` is not
    /// called again, in this turn or a later one, until
    /// [`unthrottled`](crate::ConnectionHandler::unthrottled) has been delivered. Bytes that
    /// arrived meanwhile stay buffered, and the connection stops reading the socket, so TCP slows
    /// the peer down. A handler can therefore keep the refused bytes in one slot and send them
    /// from `unthrottled`: nothing new arrives to push them out. Refusals in other callbacks
    /// (`connected`, `sent`, `unthrottled`, `message`, ...) do not hold delivery: a client that
    /// pumps its own data while the peer answers must go on reading the answers, or both ends
    /// could end up waiting for each other.
    pub fn send(&mut self, bytes: impl Into<Bytes>) -> Result<SendToken, SendError> {
        let bytes = bytes.into();
        if !self.core.is_open() {
            return Err(SendError::NotConnected(bytes));
        }
        self.core
            .writes
            .offer(bytes)
            .map_err(SendError::NotWriteable)
    }

    /// Whether [`send`](Conn::send) would accept bytes now: open and the write queue below the
    /// high watermark.
    pub fn is_writeable(&self) -> bool {
        self.core.is_open() && self.core.writes.is_writeable()
    }

    /// Bytes queued and not yet handed to the operating system.
    pub fn queued(&self) -> usize {
        self.core.writes.queued()
    }

    /// The most bytes that were ever queued at once on this connection (after the overflow
    /// policy acted on each write): what a slow peer cost in memory at worst.
    pub fn peak_queued(&self) -> usize {
        self.core.writes.peak()
    }

    /// Writes from other actors that the [overflow policy](crate::Overflow) dropped so far
    /// ([`DropNewest`](crate::Overflow::DropNewest) and [`Lag`](crate::Overflow::Lag)).
    pub fn dropped_writes(&self) -> u64 {
        self.core.dropped.0
    }

    /// The bytes of those dropped writes.
    pub fn dropped_bytes(&self) -> u64 {
        self.core.dropped.1
    }

    /// Stops reading from the socket (the kernel buffer fills and TCP slows the peer down) and
    /// delivering what was already read, until [`unmute`](Conn::unmute).
    pub fn mute(&mut self) {
        self.core.mute = Mute::On;
    }

    /// Resumes reading after [`mute`](Conn::mute).
    pub fn unmute(&mut self) {
        if self.core.mute == Mute::On {
            self.core.mute = Mute::Lifted;
        }
    }

    /// Whether reading is muted.
    pub fn is_muted(&self) -> bool {
        self.core.mute == Mute::On
    }

    /// Fixed-size framing: from now on each [`received`](crate::ConnectionHandler::received)
    /// gets exactly `n` bytes (`0`: whatever arrived, the default). Short for
    /// `set_framing(Framing::Exact(n))`; call it again from `received` to change the size of
    /// the next frame. A frame costs O(1) however much was read at once: it is a view of the
    /// read buffer, not a copy.
    pub fn expect(&mut self, n: usize) {
        self.core.framer.set(Framing::Exact(n));
    }

    /// Sets how input is cut into frames (see [`Framing`]); the next frame is cut the new way.
    pub fn set_framing(&mut self, framing: Framing) {
        self.core.framer.set(framing);
    }

    /// The framing in force.
    pub fn framing(&self) -> Framing {
        self.core.framer.framing()
    }

    /// Closes gracefully: no more data is delivered, queued bytes are flushed, then the write
    /// side is shut down and the connection ends once the peer closes too. If that takes longer
    /// than `close_linger` (a peer that stopped reading), the connection is reset.
    pub fn close(&mut self) {
        let reason = self.core.cause.clone().unwrap_or(CloseReason::Closed);
        self.core.request.graceful(reason);
    }

    /// Closes at once: queued bytes are dropped and the peer sees a reset. A connect in flight
    /// is abandoned.
    pub fn abort(&mut self) {
        self.core.request.abort(CloseReason::Aborted);
    }

    /// The peer's address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.core.peer
    }

    /// The local address, once connected.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.core.local
    }

    /// The socket options in force, once connected (see [`SocketOptions`]).
    pub fn socket_options(&self) -> Option<SocketOptions> {
        self.core.socket
    }

    /// This connection's read gate (made on first use): reading and delivery also stop while
    /// it is closed. For [`crate::ingress`], which opens and closes it from the consumer's
    /// side.
    pub(crate) fn read_gate(&mut self) -> Arc<ReadGate> {
        let me = self.ctx.myself();
        self.core
            .gate
            .get_or_insert_with(|| {
                Arc::new(ReadGate::new(Box::new(move || {
                    // Whoever opens the gate (a consumer) must not be muted on this
                    // connection for it.
                    let _ = me.send_ignoring_pressure(ConnMsg(Msg::Step(Step::GateOpened)));
                })))
            })
            .clone()
    }

    /// This connection's address, to hand to other actors (a hub that may write to it, kick
    /// it or send it the handler's own messages).
    pub fn myself(&self) -> ConnRef<H::Msg> {
        let me = self.ctx.myself();
        ConnRef::new(me.recipient(), me.recipient())
    }

    /// An address other actors can send bytes to; each is queued for writing. Their sends are
    /// held back by rein's backpressure while this connection is throttled.
    pub fn writer(&self) -> Recipient<Bytes> {
        self.ctx.myself().recipient()
    }

    /// The connection actor's identity.
    pub fn id(&self) -> ActorId {
        self.ctx.id()
    }

    /// Messages waiting in the connection actor's mailbox (the one being handled included):
    /// writes, closes and the handler's own messages from other actors, readiness edges.
    pub fn backlog(&self) -> usize {
        self.ctx.backlog()
    }

    /// A handle on the runtime the connection runs on.
    pub fn runtime(&self) -> RuntimeHandle {
        self.ctx.runtime()
    }

    /// Delivers `msg` to [`message`](crate::ConnectionHandler::message) after `delay`. Like
    /// [`Context::after`], the timer does not keep the runtime alive, and it ends with the
    /// connection.
    pub fn after(&self, delay: Duration, msg: H::Msg) -> Timer {
        self.ctx.after(delay, ConnMsg(Msg::User(msg)))
    }

    /// Like [`after`](Conn::after), but the runtime does not end before the timer fires or is
    /// cancelled.
    pub fn after_keeping_alive(&self, delay: Duration, msg: H::Msg) -> Timer {
        self.ctx.after_keeping_alive(delay, ConnMsg(Msg::User(msg)))
    }

    /// Delivers a clone of `msg` to [`message`](crate::ConnectionHandler::message) every
    /// `period` until cancelled or the connection ends (see [`Context::every`]).
    pub fn every(&self, period: Duration, msg: H::Msg) -> Timer
    where
        H::Msg: Clone,
    {
        self.ctx.every(period, ConnMsg(Msg::User(msg)))
    }

    /// Spawns an actor on this runtime (see [`Context::spawn`]).
    pub fn spawn<B: Actor>(&self, actor: B) -> ActorRef<B> {
        self.ctx.spawn(actor)
    }

    /// A [`ReplyTo`] for asking another actor: its answer arrives at
    /// [`message`](crate::ConnectionHandler::message) as `wrap(answer)`. Typically `wrap` is a
    /// variant of the handler's message enum (`conn.reply_to(Msg::Found)`).
    ///
    /// The answer is carried by a small one-shot actor (spawned here, gone once it has
    /// delivered, or once the `ReplyTo` is dropped unanswered), because the connection's own
    /// address only takes the handler's whole message type.
    pub fn reply_to<R: Send + 'static>(
        &self,
        wrap: impl FnOnce(R) -> H::Msg + Send + 'static,
    ) -> ReplyTo<R> {
        let relay = self.ctx.spawn(Relay {
            to: self.myself(),
            wrap: Some(wrap),
            answer: PhantomData,
        });
        ReplyTo::to(relay.recipient())
    }

    /// Asks to be told, with an [`ActorDown`] delivered to
    /// [`message`](crate::ConnectionHandler::message), when `target` stops (see
    /// [`Context::monitor`]).
    pub fn monitor<B: Actor>(&self, target: &ActorRef<B>)
    where
        H::Msg: From<ActorDown>,
    {
        self.ctx.monitor(target);
    }
}

/// Carries one answer to a connection as its handler's message (see [`Conn::reply_to`]).
struct Relay<R, M, F> {
    to: ConnRef<M>,
    wrap: Option<F>,
    answer: PhantomData<fn(R)>,
}

impl<R, M, F> Actor for Relay<R, M, F>
where
    R: Send + 'static,
    M: Send + 'static,
    F: FnOnce(R) -> M + Send + 'static,
{
    type Msg = R;
    fn handle(&mut self, ctx: &mut Context<Self>, answer: R) {
        if let Some(wrap) = self.wrap.take() {
            let _ = self.to.send(wrap(answer));
        }
        ctx.stop();
    }
}
