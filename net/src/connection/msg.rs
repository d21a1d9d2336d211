//! A connection's address ([`ConnRef`]) and its message type ([`ConnMsg`]).
//!
//! Why the message type is opaque: a connection acts on readiness edges, timer ticks and
//! lookup answers that only it may produce. Were they variants of a public enum, any actor
//! holding the address could fake a "readable" edge or a connect timeout. So [`ConnMsg`] is a
//! struct with a private field: other actors reach a connection only through [`ConnRef`]'s
//! methods (the handler's own messages, bytes to write, close, abort), and the internal steps
//! cannot be built outside this crate.
//!
//! Why [`ConnRef`] is typed by the handler's message type and not by the handler: a hub that
//! keeps its clients' addresses should not have to name their handler type (or care that two
//! kinds of handler speak the same messages).

use crate::resolve;
use crate::Readiness;
use bytes::Bytes;
use rein::{ActorDown, ActorId, Recipient, SendError, TrySendError};
use std::fmt;
use std::io;

/// The message type of a connection actor. Opaque: send to a connection through its
/// [`ConnRef`], or from its handler through [`Conn`](crate::Conn).
pub struct ConnMsg<M>(pub(crate) Msg<M>);

/// What a connection handles.
pub(crate) enum Msg<M> {
    /// The handler's own message.
    User(M),
    /// Bytes to write, from another actor.
    Write(Bytes),
    /// Close gracefully.
    Close,
    /// Close at once.
    Abort,
    /// A readiness edge.
    Ready(Readiness),
    /// Internal bookkeeping.
    Step(Step),
}

/// The connection's own steps: self-sends, timer ticks, the lookup's answer.
pub(crate) enum Step {
    ReadAgain,
    Sent,
    ConnectTimeout,
    AttemptDelay(u32),
    /// The host name lookup's answer, from the helper thread.
    Resolved(resolve::Answer),
    Idle,
    Linger,
    Settle,
    /// The read gate was opened from outside.
    GateOpened,
    /// A gate closed until an instant may be open now.
    GateTimer,
    /// The TLS handshake's time is up.
    #[cfg(feature = "tls")]
    TlsHandshakeTimeout,
}

impl<M> From<Bytes> for ConnMsg<M> {
    /// Bytes to write (what a [`ConnRef::writer`] sends).
    fn from(bytes: Bytes) -> Self {
        ConnMsg(Msg::Write(bytes))
    }
}

impl<M: From<ActorDown>> From<ActorDown> for ConnMsg<M> {
    /// A monitored actor stopped (see [`Conn::monitor`](crate::Conn::monitor)): delivered to
    /// [`message`](crate::ConnectionHandler::message) as the handler's own message.
    fn from(down: ActorDown) -> Self {
        ConnMsg(Msg::User(M::from(down)))
    }
}

impl<M: Clone> Clone for ConnMsg<M> {
    /// Needed for periodic timers ([`Conn::every`](crate::Conn::every)), which clone the
    /// handler's message for every tick. Internal messages are never cloned that way; a lookup
    /// answer's error, if one were, keeps its kind and text.
    fn clone(&self) -> Self {
        ConnMsg(match &self.0 {
            Msg::User(m) => Msg::User(m.clone()),
            Msg::Write(b) => Msg::Write(b.clone()),
            Msg::Close => Msg::Close,
            Msg::Abort => Msg::Abort,
            Msg::Ready(r) => Msg::Ready(*r),
            Msg::Step(step) => Msg::Step(match step {
                Step::ReadAgain => Step::ReadAgain,
                Step::Sent => Step::Sent,
                Step::ConnectTimeout => Step::ConnectTimeout,
                Step::AttemptDelay(n) => Step::AttemptDelay(*n),
                Step::Resolved(Ok(addrs)) => Step::Resolved(Ok(addrs.clone())),
                Step::Resolved(Err(e)) => {
                    Step::Resolved(Err(io::Error::new(e.kind(), e.to_string())))
                }
                Step::Idle => Step::Idle,
                Step::Linger => Step::Linger,
                Step::Settle => Step::Settle,
                Step::GateOpened => Step::GateOpened,
                Step::GateTimer => Step::GateTimer,
                #[cfg(feature = "tls")]
                Step::TlsHandshakeTimeout => Step::TlsHandshakeTimeout,
            }),
        })
    }
}

impl<M> fmt::Debug for ConnMsg<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.0 {
            Msg::User(_) => "ConnMsg(message)",
            Msg::Write(_) => "ConnMsg(write)",
            Msg::Close => "ConnMsg(close)",
            Msg::Abort => "ConnMsg(abort)",
            Msg::Ready(_) | Msg::Step(_) => "ConnMsg(internal)",
        })
    }
}

/// The address of a connection, accepted or outgoing: other actors (and threads) control it
/// through this. Cheap to clone.
///
/// * [`send`](ConnRef::send) delivers the handler's own message to
///   [`message`](crate::ConnectionHandler::message);
/// * [`write`](ConnRef::write) queues bytes, [`close`](ConnRef::close) and
///   [`abort`](ConnRef::abort) end the connection.
///
/// Sends from inside an actor's behaviour obey rein's backpressure: while the connection is
/// throttled (its write queue over the high watermark) or its mailbox is over its watermark,
/// the sending actor is muted after its behaviour, so a hub writing to a slow client slows
/// down instead of queueing without bound. A writer that must not wait for its slowest peer
/// either gives the connection another [`Overflow`](crate::Overflow) policy (drop, lag or
/// disconnect instead of muting the writer), or checks [`is_pressured`](ConnRef::is_pressured)
/// / uses [`try_write`](ConnRef::try_write) and decides for itself.
///
/// A handler gets its own address from [`Conn::myself`](crate::Conn::myself); a listener hands
/// out each accepted connection's through [`ListenNotify::accepted`](crate::ListenNotify::accepted);
/// [`TcpConnection::connect`](crate::TcpConnection::connect) returns it.
pub struct ConnRef<M> {
    to: Recipient<ConnMsg<M>>,
    writer: Recipient<Bytes>,
}

impl<M: Send + 'static> ConnRef<M> {
    pub(crate) fn new(to: Recipient<ConnMsg<M>>, writer: Recipient<Bytes>) -> Self {
        ConnRef { to, writer }
    }

    /// Delivers `msg` to the handler's [`message`](crate::ConnectionHandler::message). Hands
    /// it back if the connection has ended.
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.to.send(ConnMsg(Msg::User(msg))).map_err(|e| {
            e.map(|back| match back.0 {
                Msg::User(msg) => msg,
                _ => unreachable!("the message handed back is the one sent"),
            })
        })
    }

    /// Queues `bytes` for writing, whatever the write queue holds: backpressure, not a
    /// refusal, holds writers back (see above), or the connection's
    /// [`Overflow`](crate::Overflow) policy drops them or disconnects the peer. Hands them back if the connection has ended.
    /// Bytes written before the connection is open go out once it is; bytes that arrive after
    /// a close was asked for are dropped (the close flushes what was queued before it).
    pub fn write(&self, bytes: impl Into<Bytes>) -> Result<(), SendError<Bytes>> {
        self.writer.send(bytes.into())
    }

    /// Closes gracefully once the messages sent before this one are handled: queued bytes are
    /// flushed, the write side is shut down, and the connection ends once the peer closes too
    /// (see [`Conn::close`](crate::Conn::close)). The handler hears
    /// [`CloseReason::Closed`](crate::CloseReason::Closed). Returns `false` if the connection
    /// had already ended. Never mutes the caller: one message that ends the connection cannot
    /// grow its mailbox.
    pub fn close(&self) -> bool {
        self.to.send_ignoring_pressure(ConnMsg(Msg::Close)).is_ok()
    }

    /// Closes at once: queued bytes are dropped and the peer sees a reset. The handler hears
    /// [`CloseReason::Aborted`](crate::CloseReason::Aborted). Returns `false` if the
    /// connection had already ended. Never mutes the caller, like [`close`](ConnRef::close):
    /// disconnecting a peer that is behind must not wait for it.
    pub fn abort(&self) -> bool {
        self.to.send_ignoring_pressure(ConnMsg(Msg::Abort)).is_ok()
    }

    /// An address that takes bytes to write, for code that wants a [`Recipient`] (a pipeline
    /// stage that does not know it feeds a socket).
    pub fn writer(&self) -> Recipient<Bytes> {
        self.writer.clone()
    }

    /// The connection actor's identity.
    pub fn id(&self) -> ActorId {
        self.to.id()
    }

    /// Delivers a readiness edge by hand, as the runtime's poller would.
    #[cfg(test)]
    pub(crate) fn ready_for_test(&self, ready: crate::Readiness) {
        let _ = self.to.send(ConnMsg(Msg::Ready(ready)));
    }

    /// Whether the connection has ended (sends would be handed back).
    pub fn is_closed(&self) -> bool {
        self.to.is_stopped()
    }

    /// Whether a write now would mute the writing actor: the connection is throttled under
    /// the default [`Overflow::MuteWriters`](crate::Overflow::MuteWriters) policy (its peer is
    /// behind), or its mailbox is over its watermark. A writer that serves many peers checks
    /// it, or uses [`try_write`](ConnRef::try_write), to skip a peer that is behind rather than
    /// wait for it.
    pub fn is_pressured(&self) -> bool {
        self.writer.is_pressured()
    }

    /// Queues `bytes` for writing unless the connection [is pressured](ConnRef::is_pressured),
    /// in which case they are handed back ([`TrySendError::Pressured`]) and the caller is not
    /// muted: it can drop them, keep them for later, or disconnect the peer.
    /// [`TrySendError::Stopped`] hands them back once the connection has ended.
    pub fn try_write(&self, bytes: impl Into<Bytes>) -> Result<(), TrySendError<Bytes>> {
        self.writer.try_send(bytes.into())
    }
}

impl<M> Clone for ConnRef<M> {
    fn clone(&self) -> Self {
        ConnRef {
            to: self.to.clone(),
            writer: self.writer.clone(),
        }
    }
}

impl<M: Send + 'static> PartialEq for ConnRef<M> {
    fn eq(&self, other: &Self) -> bool {
        self.to.id() == other.to.id()
    }
}

impl<M: Send + 'static> Eq for ConnRef<M> {}

impl<M: Send + 'static> fmt::Debug for ConnRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnRef({})", self.to.id())
    }
}
