//! [`Conn`]: what a connection handler sees of its connection.
//!
//! Kept apart from the actor so the handler can be given `&mut Conn` while the actor keeps the
//! socket: the handler only queues bytes and records requests (mute, framing, close); the actor
//! does every system call after the callback returns. That keeps all I/O, throttling and
//! backpressure decisions in one place and makes the handler impossible to re-enter.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;

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
pub enum SendError {
    /// The connection is not (or no longer) open for writing.
    NotConnected(Vec<u8>),
    /// The write queue is at or above its high watermark; wait for
    /// [`unthrottled`](crate::ConnectionHandler::unthrottled). Refused during
    /// [`received`](crate::ConnectionHandler::received), it also holds delivery until then (see
    /// [`Conn::send`]).
    NotWriteable(Vec<u8>),
}

impl SendError {
    /// The refused bytes.
    pub fn into_inner(self) -> Vec<u8> {
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

/// What a [`received`](crate::ConnectionHandler::received) callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep delivering data in this turn (up to the per-turn read budget).
    Continue,
    /// End this turn now and let other actors run; reading resumes in a later turn.
    Yield,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Connected,
    /// `close()` was asked: no more reads delivered, the queue drains, then shutdown.
    Closing,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseKind {
    Graceful,
    Hard,
}

/// The connection as its handler sees it: queue bytes, read flow control, framing, closing.
pub struct Conn {
    pub(crate) phase: Phase,
    queue: VecDeque<(Vec<u8>, SendToken)>,
    /// Bytes of the front chunk already written.
    offset: usize,
    queued: usize,
    high: usize,
    pub(crate) low: usize,
    next_token: u64,
    /// Tokens whose bytes are all written, not yet reported.
    pub(crate) written: Vec<SendToken>,
    pub(crate) muted: bool,
    pub(crate) unmuted: bool,
    /// Set by a [`SendError::NotWriteable`] refusal; the connection clears it before each
    /// `received` and looks at it after, to hold delivery (see [`Conn::send`]).
    pub(crate) refused: bool,
    pub(crate) expect: usize,
    pub(crate) close: Option<CloseKind>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) writer: Option<rein::Recipient<Vec<u8>>>,
    pub(crate) socket: Option<SocketOptions>,
}

/// The socket options a connection ended up with, read back from the kernel after applying
/// [`ConnectionOptions`](crate::ConnectionOptions) (the kernel may round or double buffer
/// sizes). `None` for a reading the platform does not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("phase", &self.phase)
            .field("peer", &self.peer)
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

impl Conn {
    pub(crate) fn new(high: usize, low: usize) -> Self {
        Conn {
            phase: Phase::Connecting,
            queue: VecDeque::new(),
            offset: 0,
            queued: 0,
            high,
            low,
            next_token: 0,
            written: Vec::new(),
            muted: false,
            unmuted: false,
            refused: false,
            expect: 0,
            close: None,
            peer: None,
            local: None,
            writer: None,
            socket: None,
        }
    }

    /// Queues `bytes` for writing. Refused, with the bytes handed back, unless the connection is
    /// open and [writeable](Conn::is_writeable). A send that is accepted may take the queue past
    /// the high watermark; the connection then throttles.
    ///
    /// A refusal as [`SendError::NotWriteable`] during
    /// [`received`](crate::ConnectionHandler::received) **holds delivery**: `received` is not
    /// called again, in this turn or a later one, until
    /// [`unthrottled`](crate::ConnectionHandler::unthrottled) has been delivered. Bytes that
    /// arrived meanwhile stay buffered, and the connection stops reading the socket, so TCP slows
    /// the peer down. A handler can therefore keep the refused bytes in one slot and send them
    /// from `unthrottled`: nothing new arrives to push them out. Refusals in other callbacks
    /// (`connected`, `sent`, `unthrottled`, ...) do not hold delivery: a client that pumps its
    /// own data while the peer answers must go on reading the answers, or both ends could end
    /// up waiting for each other.
    pub fn send(&mut self, bytes: Vec<u8>) -> Result<SendToken, SendError> {
        if self.phase != Phase::Connected || self.close.is_some() {
            return Err(SendError::NotConnected(bytes));
        }
        if !self.is_writeable() {
            self.refused = true;
            return Err(SendError::NotWriteable(bytes));
        }
        Ok(self.push(bytes))
    }

    /// Queues without the watermark check (for `Write` messages from other actors, which the
    /// runtime already holds back through backpressure).
    pub(crate) fn push(&mut self, bytes: Vec<u8>) -> SendToken {
        let token = SendToken(self.next_token);
        self.next_token += 1;
        if bytes.is_empty() {
            self.written.push(token);
        } else {
            self.queued += bytes.len();
            self.queue.push_back((bytes, token));
        }
        token
    }

    /// Whether [`send`](Conn::send) would accept bytes now: open and the write queue below the
    /// high watermark.
    pub fn is_writeable(&self) -> bool {
        self.phase == Phase::Connected && self.close.is_none() && self.queued < self.high
    }

    /// Bytes queued and not yet handed to the operating system.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Stops reading from the socket (the kernel buffer fills and TCP slows the peer down) and
    /// delivering what was already read, until [`unmute`](Conn::unmute).
    pub fn mute(&mut self) {
        self.muted = true;
    }

    /// Resumes reading after [`mute`](Conn::mute).
    pub fn unmute(&mut self) {
        if self.muted {
            self.muted = false;
            self.unmuted = true;
        }
    }

    /// Whether reading is muted.
    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// Framing: from now on each [`received`](crate::ConnectionHandler::received) gets exactly
    /// `n` bytes (`0`, the default: whatever arrived). Call it again from `received` to change
    /// the size of the next frame. A frame costs O(`n`) time and memory however much was read at
    /// once: its `Vec` holds just its bytes.
    pub fn expect(&mut self, n: usize) {
        self.expect = n;
    }

    /// Closes gracefully: no more data is delivered, queued bytes are flushed, then the write
    /// side is shut down and the connection ends once the peer closes too. If that takes longer
    /// than `close_linger` (a peer that stopped reading), the connection is reset.
    pub fn close(&mut self) {
        if self.close.is_none() {
            self.close = Some(CloseKind::Graceful);
        }
    }

    /// Closes at once: queued bytes are dropped and the peer sees a reset.
    pub fn hard_close(&mut self) {
        self.close = Some(CloseKind::Hard);
    }

    /// The peer's address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The local address, once connected.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The socket options in force, once connected (see [`SocketOptions`]).
    pub fn socket_options(&self) -> Option<SocketOptions> {
        self.socket
    }

    /// An address other actors can send bytes to; each `Vec<u8>` is queued for writing. Their
    /// sends are held back by rein's backpressure while this connection is throttled.
    pub fn writer(&self) -> Option<rein::Recipient<Vec<u8>>> {
        self.writer.clone()
    }

    pub(crate) fn over_high(&self) -> bool {
        self.queued >= self.high
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.queued = 0;
        self.offset = 0;
    }

    /// Writes as much as the socket takes with vectored writes. Returns whether it blocked
    /// (`WouldBlock`: wait for a writable edge) and how many bytes went out.
    pub(crate) fn flush(&mut self, out: &mut impl Write) -> io::Result<(bool, usize)> {
        let mut total = 0;
        while !self.queue.is_empty() {
            let n = {
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(self.queue.len().min(64));
                for (i, (chunk, _)) in self.queue.iter().take(64).enumerate() {
                    let start = if i == 0 { self.offset } else { 0 };
                    slices.push(IoSlice::new(&chunk[start..]));
                }
                match out.write_vectored(&slices) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((true, total)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            total += n;
            self.queued -= n;
            let mut left = n;
            while left > 0 {
                let front_len = self.queue[0].0.len() - self.offset;
                if left >= front_len {
                    left -= front_len;
                    self.offset = 0;
                    let (_, token) = self.queue.pop_front().expect("non-empty");
                    self.written.push(token);
                } else {
                    self.offset += left;
                    left = 0;
                }
            }
        }
        Ok((false, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks after `limit` in total.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.limit - self.got.len();
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.cap).min(room);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn flush_keeps_order_and_reports_tokens() {
        let mut conn = Conn::new(10, 5);
        conn.phase = Phase::Connected;
        let a = conn.send(b"hello".to_vec()).unwrap();
        let b = conn.send(b"world!".to_vec()).unwrap();
        assert!(
            !conn.is_writeable(),
            "11 bytes is above the high watermark of 10"
        );
        assert!(!conn.refused, "an accepted send is no refusal");
        assert!(matches!(
            conn.send(b"x".to_vec()),
            Err(SendError::NotWriteable(v)) if v == b"x"
        ));
        assert!(conn.refused, "the connection hears of the refusal");
        let mut out = Trickle {
            got: Vec::new(),
            cap: 3,
            limit: 7,
        };
        assert_eq!(conn.flush(&mut out).unwrap(), (true, 7));
        assert_eq!(conn.written, vec![a]);
        assert_eq!(conn.queued(), 4);
        out.limit = 100;
        assert_eq!(conn.flush(&mut out).unwrap(), (false, 4));
        assert_eq!(out.got, b"helloworld!");
        assert_eq!(conn.written, vec![a, b]);
    }

    #[test]
    fn not_connected_hands_bytes_back() {
        let mut conn = Conn::new(10, 5);
        assert_eq!(conn.send(vec![1, 2]).unwrap_err().into_inner(), vec![1, 2]);
        assert!(!conn.refused, "only NotWriteable holds delivery");
    }
}
