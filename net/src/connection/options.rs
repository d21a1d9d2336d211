//! [`ConnectionOptions`]: per-connection settings, and [`Overflow`]: what a connection does
//! with writes from other actors while its peer is not reading.
//!
//! Kept apart so the actor's module holds behaviour only; every default is documented on its
//! field, and the defaults are the ones the crate's backpressure story is told with.

use std::time::Duration;

/// What a connection does with writes from other actors ([`ConnRef::write`],
/// [`ConnRef::writer`]) while its peer does not read them as fast as they come.
///
/// The default, [`MuteWriters`](Overflow::MuteWriters), is rein's backpressure: nothing is
/// lost and memory is bounded, but a writer waits for the slowest connection it writes to. A
/// writer that serves many peers (a chat hub, a broadcaster, a game server) must not be held
/// back by one peer that stopped reading; choose one of the other policies for its connections.
/// Each bounds the bytes queued for the peer by `limit` instead, and treats the writes that do
/// not fit its own way. None of them applies to the handler's own [`Conn::send`], which is
/// refused past the high watermark whatever the policy.
///
/// ```
/// use rein_net::{ConnectionOptions, Overflow};
///
/// // A chat server's clients: a client that falls 256 KiB behind skips ahead to the newest
/// // lines, and its handler hears how many it missed (`ConnectionHandler::lagged`).
/// let opts = ConnectionOptions::default().overflow(Overflow::Lag { limit: 256 * 1024 });
/// # let _ = opts;
/// ```
///
/// [`ConnRef::write`]: crate::ConnRef::write
/// [`ConnRef::writer`]: crate::ConnRef::writer
/// [`Conn::send`]: crate::Conn::send
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// While the write queue is over its high watermark the connection applies rein
    /// backpressure on itself: the actors writing to it are muted after their behaviour until
    /// it drains to the low watermark. Nothing is dropped; the writer runs at the pace of its
    /// slowest peer. The default.
    MuteWriters,
    /// A write that would take the queue past `limit` bytes is dropped (unless the queue is
    /// empty) and counted ([`Conn::dropped_writes`](crate::Conn::dropped_writes)). The peer
    /// misses the newest data; what it gets is a prefix of what was written, message by
    /// message. Writers are never muted for the peer's sake.
    DropNewest {
        /// Bytes the queue may hold.
        limit: usize,
    },
    /// A write that would take the queue past `limit` bytes aborts the connection: the slow
    /// peer is disconnected (IRC's "Max SendQ exceeded"), and the handler hears
    /// [`CloseReason::SendQueueFull`](crate::CloseReason::SendQueueFull). Writers are never
    /// muted for the peer's sake.
    Disconnect {
        /// Bytes the queue may hold.
        limit: usize,
    },
    /// Writes are always queued, and the *oldest* queued writes of other actors are dropped
    /// until at most `limit` bytes are queued (the chunk going out now and the handler's own
    /// sends are kept), so a slow peer skips ahead to the newest data, like a lagging receiver
    /// of tokio's broadcast channel. Once the queue has drained to the low watermark (or to half
    /// the limit, if that is lower) the handler hears
    /// [`lagged`](crate::ConnectionHandler::lagged) with the number of writes the peer missed,
    /// to tell it. Writers are never muted for the peer's sake.
    Lag {
        /// Bytes the queue may hold.
        limit: usize,
    },
}

/// Per-connection settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionOptions {
    /// Queued bytes at which the connection throttles (default 64 KiB).
    pub high_watermark: usize,
    /// Queued bytes at which it unthrottles (default 32 KiB).
    pub low_watermark: usize,
    /// Bytes read per turn before yielding to other actors, and the largest single read
    /// (default 64 KiB). Reads start at 8 KiB and grow towards this while they come back full.
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
    /// Close (through [`timed_out`](crate::ConnectionHandler::timed_out)) after this long
    /// without data moving either way (default: none).
    pub idle_timeout: Option<Duration>,
    /// Limit for the whole connect: name resolution and all attempts together (default 10 s).
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
    /// What writes from other actors do while the peer is slow (default
    /// [`Overflow::MuteWriters`]: the writers are muted). The other policies bound the write
    /// queue by dropping or disconnecting instead, so that one slow peer cannot stall a writer
    /// that serves many. Writers can still be muted for a moment while the connection's own
    /// mailbox is over [`mailbox_watermarks`](ConnectionOptions::mailbox_watermarks), which it
    /// drains at once whatever its peer does.
    pub overflow: Overflow,
    /// TLS for an outgoing connection (default: none, plain TCP): a client handshake once TCP
    /// is up, before the handler hears `connected`. See [`TlsClient`](crate::TlsClient).
    /// Accepted connections take theirs from [`ListenOptions::tls`](crate::ListenOptions::tls)
    /// and ignore this one.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::TlsClient>,
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
            overflow: Overflow::MuteWriters,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Setters, for building options from the defaults: `ConnectionOptions::default().high_watermark(..)`. (The
/// struct is `#[non_exhaustive]`, so that new settings are not breaking changes.)
impl ConnectionOptions {
    /// Sets `high_watermark` (see the field for its meaning and default).
    pub fn high_watermark(mut self, value: usize) -> Self {
        self.high_watermark = value;
        self
    }

    /// Sets `low_watermark` (see the field for its meaning and default).
    pub fn low_watermark(mut self, value: usize) -> Self {
        self.low_watermark = value;
        self
    }

    /// Sets `read_per_turn` (see the field for its meaning and default).
    pub fn read_per_turn(mut self, value: usize) -> Self {
        self.read_per_turn = value;
        self
    }

    /// Sets `nodelay` (see the field for its meaning and default).
    pub fn nodelay(mut self, value: bool) -> Self {
        self.nodelay = value;
        self
    }

    /// Sets `keepalive` to `Some(value)` (see the field for its meaning and default).
    pub fn keepalive(mut self, value: Duration) -> Self {
        self.keepalive = Some(value);
        self
    }

    /// Sets `send_buffer_size` to `Some(value)` (see the field for its meaning and default).
    pub fn send_buffer_size(mut self, value: usize) -> Self {
        self.send_buffer_size = Some(value);
        self
    }

    /// Sets `recv_buffer_size` to `Some(value)` (see the field for its meaning and default).
    pub fn recv_buffer_size(mut self, value: usize) -> Self {
        self.recv_buffer_size = Some(value);
        self
    }

    /// Sets `idle_timeout` to `Some(value)` (see the field for its meaning and default).
    pub fn idle_timeout(mut self, value: Duration) -> Self {
        self.idle_timeout = Some(value);
        self
    }

    /// Sets `connect_timeout` (see the field for its meaning and default).
    pub fn connect_timeout(mut self, value: Duration) -> Self {
        self.connect_timeout = value;
        self
    }

    /// Sets `attempt_delay` (see the field for its meaning and default).
    pub fn attempt_delay(mut self, value: Duration) -> Self {
        self.attempt_delay = value;
        self
    }

    /// Sets `close_linger` (see the field for its meaning and default).
    pub fn close_linger(mut self, value: Duration) -> Self {
        self.close_linger = value;
        self
    }

    /// Sets `mailbox_watermarks` (see the field for its meaning and default).
    pub fn mailbox_watermarks(mut self, value: Option<(usize, usize)>) -> Self {
        self.mailbox_watermarks = value;
        self
    }

    /// Sets `overflow` (see the field for its meaning and default).
    pub fn overflow(mut self, value: Overflow) -> Self {
        self.overflow = value;
        self
    }

    /// Sets `tls` to `Some(value)`: a client handshake once TCP is up (see the field).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, value: crate::TlsClient) -> Self {
        self.tls = Some(value);
        self
    }
}
