//! [`ConnectionHandler`]: the code you write for a connection, and what it hears about its end.
//!
//! Why a handler trait inside a connection actor, rather than a connection embedded in your
//! own actor: see `docs/decisions/net-v2-connection-as-actor.md`. In short, the handler keeps
//! the short, callback-per-event shape, and still gets the whole actor through [`Conn`]: its
//! own typed messages ([`Self::Msg`](ConnectionHandler::Msg)), timers, spawning, monitoring
//! and its own address.

use crate::{Conn, FrameError, SendToken};
use bytes::Bytes;
use rein::ActorId;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// Callbacks for one connection. Every method runs inside the connection actor's behaviour,
/// one at a time, so the handler's state needs no locks.
///
/// A per-connection heartbeat that also takes a message from other actors:
///
/// ```
/// use rein_net::{Bytes, Conn, ConnectionHandler, Flow};
/// use std::time::Duration;
///
/// #[derive(Clone)]
/// enum Beat {
///     Tick,
///     Say(&'static str),
/// }
///
/// struct Heartbeat {
///     ticks: u32,
/// }
///
/// impl ConnectionHandler for Heartbeat {
///     type Msg = Beat;
///     fn connected(&mut self, conn: &mut Conn<Self>) {
///         conn.every(Duration::from_millis(50), Beat::Tick);
///     }
///     fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
///         Flow::Continue
///     }
///     fn message(&mut self, conn: &mut Conn<Self>, msg: Beat) {
///         match msg {
///             Beat::Tick => {
///                 self.ticks += 1;
///                 let _ = conn.send("ping\n");
///             }
///             // Another actor, through this connection's `ConnRef::send`.
///             Beat::Say(text) => {
///                 let _ = conn.send(text);
///             }
///         }
///     }
/// }
/// ```
pub trait ConnectionHandler: Sized + Send + 'static {
    /// The handler's own messages: sent by other actors through [`ConnRef::send`], by timers
    /// ([`Conn::after`], [`Conn::every`]), or as [`ActorDown`](rein::ActorDown) notices for
    /// actors it [monitors](Conn::monitor). Use `()` if it needs none.
    ///
    /// [`ConnRef::send`]: crate::ConnRef::send
    type Msg: Send + 'static;

    /// An outgoing connection starts attempt number `attempt` (from 1).
    fn connecting(&mut self, _attempt: u32) {}

    /// The connection is open. [`Conn::myself`] is its address, to hand to other actors.
    fn connected(&mut self, _conn: &mut Conn<'_, '_, Self>) {}

    /// The connection could not be opened; nothing else follows. For an outgoing connection,
    /// any [`ConnectError`]; for an accepted TLS connection, its handshake failed
    /// (`ConnectError::Tls`, also reported to the listener's
    /// [`ended`](crate::ListenNotify::ended)).
    fn connect_failed(&mut self, _reason: ConnectError) {}

    /// Data arrived: one frame of the connection's [`Framing`](crate::Framing) (by default,
    /// whatever one read got). `data` is a view of the read buffer, not a copy: keep it, send
    /// it on or back ([`Conn::send`] takes it as is). A small frame kept for long keeps its
    /// whole read buffer (up to `read_per_turn`) alive; copy it (`Bytes::copy_from_slice`)
    /// to keep only its bytes.
    ///
    /// If [`Conn::send`] refuses bytes here as [`SendError::NotWriteable`], delivery is held:
    /// `received` is not called again (in this turn or a later one) until
    /// [`unthrottled`](ConnectionHandler::unthrottled) has been delivered. What arrived stays
    /// buffered and the connection stops reading the socket meanwhile, so the peer is slowed
    /// down by TCP and no memory grows. The refused bytes are the handler's to keep: store them
    /// and send them from `unthrottled`, before anything newer arrives.
    ///
    /// [`SendError::NotWriteable`]: crate::SendError::NotWriteable
    fn received(&mut self, conn: &mut Conn<'_, '_, Self>, data: Bytes) -> Flow;

    /// One of the handler's own messages ([`Self::Msg`](ConnectionHandler::Msg)) arrived. It is
    /// delivered whatever the connection's state: while connecting, open or closing.
    fn message(&mut self, _conn: &mut Conn<'_, '_, Self>, _msg: Self::Msg) {}

    /// The input broke the connection's [`Framing`](crate::Framing): a line or delimited frame
    /// longer than its maximum, or a length prefix above it. Nothing of the offending frame was
    /// buffered. The default closes the connection gracefully (the handler then hears
    /// [`CloseReason::FrameError`]). A handler that does not close goes on: the rest of the
    /// offending frame is skipped as it arrives (up to the next delimiter, or the announced
    /// length), never buffered, and framing resumes after it.
    fn frame_error(&mut self, conn: &mut Conn<'_, '_, Self>, _error: FrameError) {
        conn.close();
    }

    /// The write queue reached the high watermark: [`Conn::send`] refuses until `unthrottled`,
    /// and actors writing to this connection are muted. Whenever a callback leaves the queue at
    /// or above the high watermark this follows, even if the kernel then takes every byte at
    /// once, so a handler that saw [`Conn::is_writeable`] turn false can rely on hearing
    /// `throttled` and later `unthrottled`.
    ///
    /// Delivery goes on after `throttled` until a send in
    /// [`received`](ConnectionHandler::received) is refused (which holds it) or the handler
    /// calls [`Conn::mute`]; muting here is not needed for correctness, only to stop reading one
    /// step earlier.
    fn throttled(&mut self, _conn: &mut Conn<'_, '_, Self>) {}

    /// The write queue drained to the low watermark: [`Conn::send`] accepts again. Delivery held
    /// by a refusal in [`received`](ConnectionHandler::received) resumes once this returns, so
    /// send the bytes kept from that refusal here.
    fn unthrottled(&mut self, _conn: &mut Conn<'_, '_, Self>) {}

    /// Under [`Overflow::Lag`](crate::Overflow::Lag): the peer fell behind and `missed` writes
    /// from other actors were dropped (the oldest first) since the last call; the queue has now
    /// drained to the low watermark. Tell the peer in the protocol's terms, for instance
    /// `conn.send(format!("* {missed} messages skipped\n"))`. The default does nothing.
    fn lagged(&mut self, _conn: &mut Conn<'_, '_, Self>, _missed: u64) {}

    /// All bytes of the send with this token were handed to the operating system.
    fn sent(&mut self, _conn: &mut Conn<'_, '_, Self>, _token: SendToken) {}

    /// No data moved for the idle timeout. The default closes the connection gracefully (the
    /// handler then hears [`CloseReason::TimedOut`]).
    fn timed_out(&mut self, conn: &mut Conn<'_, '_, Self>) {
        conn.close();
    }

    /// A [`Conn::start_tls`] upgrade finished its handshake: from now on `received` gets
    /// decrypted bytes and sends are encrypted; [`Conn::tls`] says what was agreed on. (A
    /// connection that starts with TLS hears `connected` after its handshake instead.)
    #[cfg(feature = "tls")]
    fn secured(&mut self, _conn: &mut Conn<'_, '_, Self>) {}

    /// The connection has ended, and why; nothing else follows. Called for every connection
    /// that was [`connected`](ConnectionHandler::connected) (an outgoing connect that failed
    /// hears [`connect_failed`](ConnectionHandler::connect_failed) instead).
    fn closed(&mut self, _reason: CloseReason) {}
}

/// What a [`received`](ConnectionHandler::received) callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep delivering data in this turn (up to the per-turn read budget).
    Continue,
    /// End this turn now and let other actors run; reading resumes in a later turn.
    Yield,
}

/// Why a connection ended: told to its handler ([`ConnectionHandler::closed`]) and, in a
/// [`ConnectionEnded`], to its listener.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its side (end of stream); ours was closed after what was queued went
    /// out.
    PeerClosed,
    /// The peer reset the connection (or it was aborted on the way: `ECONNRESET`,
    /// `ECONNABORTED`, `EPIPE`).
    Reset,
    /// Another I/O error on the socket.
    Error(Arc<io::Error>),
    /// No data moved for the idle timeout, and [`ConnectionHandler::timed_out`] closed it.
    TimedOut,
    /// The input broke the framing, and [`ConnectionHandler::frame_error`] closed it.
    FrameError(FrameError),
    /// Closed gracefully from this side ([`Conn::close`], [`ConnRef::close`]): queued bytes
    /// went out and the peer closed its side too.
    ///
    /// [`ConnRef::close`]: crate::ConnRef::close
    Closed,
    /// The peer did not read what other actors wrote to it fast enough, and the
    /// [`Overflow::Disconnect`](crate::Overflow::Disconnect) policy aborted the connection
    /// (queued bytes dropped, the peer sees a reset).
    SendQueueFull,
    /// Closed at once from this side ([`Conn::abort`], [`ConnRef::abort`]), or a graceful
    /// close whose queued bytes the peer did not take within `close_linger`: queued bytes were
    /// dropped and the peer saw a reset.
    ///
    /// [`ConnRef::abort`]: crate::ConnRef::abort
    Aborted,
    /// The runtime shut down.
    Shutdown,
    /// The handler panicked (reported in [`ConnectionEnded`] only: the handler is not called
    /// again).
    Panicked,
    /// TLS failed after the connection opened: a [`Conn::start_tls`] handshake, a record
    /// that did not decrypt, a stream truncated without `close_notify`. (A handshake that
    /// fails before the connection opens is [`ConnectError::Tls`] for the handler, and this
    /// for the listener.)
    #[cfg(feature = "tls")]
    Tls(crate::TlsError),
}

impl CloseReason {
    /// The reason an I/O error ends a connection with.
    pub(crate) fn from_io(e: io::Error) -> Self {
        #[cfg(feature = "tls")]
        if let Some(tls) = crate::TlsError::from_io(&e) {
            return CloseReason::Tls(tls);
        }
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => CloseReason::Reset,
            _ => CloseReason::Error(Arc::new(e)),
        }
    }
}

impl CloseReason {
    /// Whether ending with this reason resets the connection (a TLS failure does not: the peer
    /// should read the alert).
    pub(crate) fn resets(&self) -> bool {
        #[cfg(feature = "tls")]
        if let CloseReason::Tls(_) = self {
            return false;
        }
        true
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("the peer closed the connection"),
            CloseReason::Reset => f.write_str("the connection was reset"),
            CloseReason::Error(e) => write!(f, "I/O error: {e}"),
            CloseReason::TimedOut => f.write_str("the connection was idle too long"),
            CloseReason::FrameError(e) => write!(f, "framing error: {e}"),
            CloseReason::Closed => f.write_str("closed"),
            CloseReason::SendQueueFull => {
                f.write_str("the peer fell too far behind (send queue full)")
            }
            CloseReason::Aborted => f.write_str("aborted"),
            CloseReason::Shutdown => f.write_str("the runtime shut down"),
            CloseReason::Panicked => f.write_str("the handler panicked"),
            #[cfg(feature = "tls")]
            CloseReason::Tls(e) => e.fmt(f),
        }
    }
}

/// Told to a listener ([`ListenNotify::ended`](crate::ListenNotify::ended)) when one of its
/// connections ends.
#[derive(Debug, Clone)]
pub struct ConnectionEnded {
    /// The connection actor (as [`ConnRef::id`](crate::ConnRef::id) reports it).
    pub id: ActorId,
    /// The peer, if the connection got as far as knowing it.
    pub peer: Option<SocketAddr>,
    /// Why it ended.
    pub reason: CloseReason,
}

/// Why an outgoing connection failed (the last attempt's reason when there were several).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The name could not be resolved.
    Resolve(io::Error),
    /// The name resolved to no address.
    NoAddresses,
    /// The peer refused the connection.
    Refused,
    /// No attempt finished within the connect timeout.
    TimedOut,
    /// The connect was aborted ([`ConnRef::abort`](crate::ConnRef::abort) or
    /// [`Conn::abort`]) before it finished.
    Aborted,
    /// Another error.
    Io(io::Error),
    /// The runtime had already ended when the connection was asked for: no connection actor
    /// could be made (the handler hears this at once, on the caller's thread).
    RuntimeEnded,
    /// TCP connected (or was accepted) but the TLS handshake failed.
    #[cfg(feature = "tls")]
    Tls(crate::TlsError),
}

impl ConnectError {
    pub(crate) fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::TimedOut,
            _ => ConnectError::Io(e),
        }
    }

    /// What the handler of a connection that ended before it opened hears (a TLS handshake
    /// that failed, or was aborted).
    pub(crate) fn from_close(reason: &CloseReason) -> Self {
        match reason {
            #[cfg(feature = "tls")]
            CloseReason::Tls(e) => ConnectError::Tls(e.clone()),
            CloseReason::Aborted | CloseReason::Shutdown => ConnectError::Aborted,
            CloseReason::Reset => ConnectError::Io(io::ErrorKind::ConnectionReset.into()),
            CloseReason::Error(e) => ConnectError::Io(io::Error::new(e.kind(), e.to_string())),
            other => ConnectError::Io(io::Error::other(other.to_string())),
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
            ConnectError::Aborted => f.write_str("the connect was aborted"),
            ConnectError::Io(e) => write!(f, "connect failed: {e}"),
            ConnectError::RuntimeEnded => f.write_str("the runtime has ended"),
            #[cfg(feature = "tls")]
            ConnectError::Tls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConnectError {}
