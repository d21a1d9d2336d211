//! The connection's state, one enum per independent question.
//!
//! Why enums rather than flags: a connection's state has several dimensions that change
//! separately (its stage of life, whether the handler muted reading, whether a refused send
//! holds delivery, whether the socket took everything, whether pressure is applied), and a
//! flag per fact let impossible combinations be written down (a "half closed" connection that
//! was still connecting). Each enum below answers one question, and its variants name the
//! answers; where a stage carries data (how far a graceful close got) the data lives in the
//! variant, so it cannot outlive the stage.

use crate::CloseReason;

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// An outgoing connect is resolving or racing its attempts.
    Connecting,
    /// TCP is up and a TLS handshake is under way: nothing is delivered, the handler has not
    /// heard `connected`; a failure is `connect_failed`.
    Handshaking,
    /// Open both ways.
    Open,
    /// A graceful close: nothing more is delivered; the write queue drains, then the write
    /// side is shut down and the connection waits for the peer's end of stream.
    Closing(Closing),
    /// Ended; the socket is released.
    Closed,
}

/// How far a graceful close got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Queued bytes are still going out.
    Flushing,
    /// Everything went out and our write side is shut down; waiting for the peer's end.
    WriteShut,
}

/// A close the handler (or another actor, or an event) asked for. The first request's reason
/// is the one reported, except that an abort overrides a graceful close.
#[derive(Debug, Clone, Default)]
pub(crate) enum CloseRequest {
    #[default]
    None,
    /// Flush, shut the write side, wait for the peer: [`Stage::Closing`].
    Graceful(CloseReason),
    /// Drop queued bytes and reset the connection.
    Abort(CloseReason),
}

impl CloseRequest {
    pub(crate) fn is_none(&self) -> bool {
        matches!(self, CloseRequest::None)
    }

    /// Asks for a graceful close unless a close is already asked for.
    pub(crate) fn graceful(&mut self, reason: CloseReason) {
        if self.is_none() {
            *self = CloseRequest::Graceful(reason);
        }
    }

    /// Asks for an abort, overriding a graceful close (but not an earlier abort).
    pub(crate) fn abort(&mut self, reason: CloseReason) {
        if !matches!(self, CloseRequest::Abort(_)) {
            *self = CloseRequest::Abort(reason);
        }
    }

    /// The reason to report when the connection ends now.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        match self {
            CloseRequest::None => None,
            CloseRequest::Graceful(r) | CloseRequest::Abort(r) => Some(r.clone()),
        }
    }
}

/// Whether the handler muted reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mute {
    /// Reading and delivering.
    Off,
    /// [`Conn::mute`](crate::Conn::mute): no reading, no delivery.
    On,
    /// Unmuted since the connection last looked: a read must be scheduled (edges that came
    /// while muted were not acted on).
    Lifted,
}

/// Whether a send refused inside `received` holds delivery (see [`Conn::send`](crate::Conn::send)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Flowing,
    /// No `received` (and no reading) until `unthrottled` has been delivered.
    Held,
}

/// Whether the peer has ended its side of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inbound {
    Open,
    /// A read returned end of stream.
    Ended,
}

/// Whether the socket takes writes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outbound {
    /// Write until it blocks.
    Ready,
    /// A write would block: wait for the next writable edge.
    Blocked,
}

/// Whether the write queue is over its high watermark, with rein backpressure applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    Off,
    /// Pressure applied; `throttled` was delivered, `unthrottled` is owed.
    On,
}
