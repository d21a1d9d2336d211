//! The TLS layer of one connection: what sits between the socket and the connection's read
//! buffer and write queue once TLS is on.
//!
//! The connection calls it at four points, and nowhere else: reading
//! ([`Layer::read`]), flushing ([`Layer::flush`], [`Layer::wants_write`]), closing
//! ([`Layer::close_notify`]) and the handshake's timer. Without a session every call falls
//! through to the plain socket, so a connection that never uses TLS pays one `Option` check.
//!
//! **Reading.** Ciphertext is read from the socket into a staging buffer of its own (a
//! [`ReadBuf`]: one `recv` of up to the turn's budget, and never less than a record, given back
//! when empty), handed to rustls record by record, and the plaintext rustls decrypts is copied
//! into the connection's read buffer, where framing and delivery work as for plain TCP. Plaintext is drained before more
//! ciphertext is fed, and nothing is read from the socket unless the connection is reading,
//! which it does only while delivery flows: a muted connection reads no TLS records, rustls'
//! plaintext buffer (16 KiB) never fills, the kernel buffer does and TCP closes the window.
//! Plaintext waiting anywhere is bounded by one turn's budget plus one record.
//!
//! **Writing.** The write queue holds plaintext, and keeps it until its ciphertext has been
//! handed to the kernel: a batch of up to [`BATCH`] bytes from the front of the queue is
//! encrypted only once rustls has written out everything before it, and is consumed from the
//! queue (its tokens reported as sent) only once its records are all out. So the watermarks,
//! [`Conn::queued`](crate::Conn::queued) and `sent` all count plaintext, in the units the
//! handler sends, and ciphertext waiting is bounded by one batch (plus TLS's 22 to 29 bytes
//! per 16 KiB record).
//!
//! **STARTTLS.** An upgrade records how many bytes were queued when it was asked for; those go
//! out in the clear first, everything after them through TLS.

use super::config::{StartTls, TlsInfo};
use super::error::TlsError;
use crate::connection::msg::{ConnMsg, Msg, Step};
use crate::connection::read_buf::ReadBuf;
use crate::connection::socket::Socket;
use crate::connection::write_queue::{Flushed, WriteQueue};
use crate::connection::TcpConnection;
use crate::{CloseReason, ConnectionHandler};
use rein::{Context, Timer};
use rustls::{ClientConnection, Connection, ServerConnection};
use std::io::{self, BufRead, IoSlice, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Plaintext encrypted per batch: rustls' own buffer limit (64 KiB, four full records).
pub(crate) const BATCH: usize = 64 * 1024;

/// The largest TLS record on the wire (16 KiB of plaintext, its header and AEAD overhead).
const RECORD: usize = 16 * 1024 + 5 + 256;

/// Chunks of the write queue handed to rustls per batch.
const SLICES: usize = 64;

/// Where the handshake is.
enum Handshake {
    /// Under way; the timer drops the connection if it takes too long.
    Running { timer: Timer, timeout: Duration },
    /// Finished, and the connection has not been told yet.
    Done,
    /// Finished and told.
    Told,
}

/// An active TLS session.
struct Session {
    tls: Connection,
    /// Ciphertext read from the socket and not yet handed to rustls.
    staged: ReadBuf,
    /// Bytes at the front of the write queue that rustls has encrypted and whose records are
    /// not all written yet.
    encrypted: usize,
    /// Bytes at the front of the write queue to send in the clear (queued before STARTTLS).
    clear: usize,
    handshake: Handshake,
    /// The peer's TCP end arrived without `close_notify`.
    truncated: bool,
    /// The name a client verified the server against.
    verified_name: Option<String>,
    /// `close_notify` was queued.
    close_notify: bool,
    /// rustls refused more input once without processing any: a second time is an error.
    stuck: bool,
}

/// TLS for one connection: nothing, TLS to start once TCP is up, or a session.
pub(crate) struct Layer {
    /// Started when TCP is up (accepted with `ListenOptions::tls`, or connected with
    /// `ConnectionOptions::tls`).
    pending: Option<StartTls>,
    /// The host an outgoing connection was asked for: the default name to verify.
    host: Option<String>,
    session: Option<Session>,
}

impl Layer {
    pub(crate) fn new(pending: Option<StartTls>, host: Option<&str>) -> Self {
        Layer {
            pending,
            host: host.map(str::to_string),
            session: None,
        }
    }

    /// Starts the TLS the connection was configured with, if any: `None` when it has none.
    pub(crate) fn start_configured<H: ConnectionHandler>(
        &mut self,
        ctx: &Context<TcpConnection<H>>,
        read_per_turn: usize,
        peer: Option<SocketAddr>,
    ) -> Option<Result<(), TlsError>> {
        let role = self.pending.take()?;
        Some(self.start(ctx, role, 0, read_per_turn, peer))
    }

    /// Starts a session: the first `clear` queued bytes still go out in the clear.
    pub(crate) fn start<H: ConnectionHandler>(
        &mut self,
        ctx: &Context<TcpConnection<H>>,
        role: StartTls,
        clear: usize,
        read_per_turn: usize,
        peer: Option<SocketAddr>,
    ) -> Result<(), TlsError> {
        let timeout = role.handshake_timeout();
        let (tls, verified_name): (Connection, _) = match role {
            StartTls::Server(server) => (
                ServerConnection::new(server.config)
                    .map_err(TlsError::Protocol)?
                    .into(),
                None,
            ),
            StartTls::Client(client) => {
                let name = client.name_for(self.host.as_deref(), peer)?;
                let shown = name.to_str().into_owned();
                let conn =
                    ClientConnection::new(client.config, name).map_err(TlsError::Protocol)?;
                (conn.into(), Some(shown))
            }
        };
        let timer = ctx.after(timeout, ConnMsg(Msg::Step(Step::TlsHandshakeTimeout)));
        self.session = Some(Session {
            tls,
            staged: ReadBuf::new(read_per_turn),
            encrypted: 0,
            clear,
            handshake: Handshake::Running { timer, timeout },
            truncated: false,
            verified_name,
            close_notify: false,
            stuck: false,
        });
        Ok(())
    }

    /// The handshake finished since the last call: what it agreed on.
    pub(crate) fn take_secured(&mut self) -> Option<TlsInfo> {
        let session = self.session.as_mut()?;
        if !matches!(session.handshake, Handshake::Done) {
            return None;
        }
        session.handshake = Handshake::Told;
        let tls = &session.tls;
        let server_name = match tls {
            Connection::Server(server) => server.server_name().map(str::to_string),
            Connection::Client(_) => session.verified_name.clone(),
        };
        Some(TlsInfo {
            alpn_protocol: tls.alpn_protocol().map(<[u8]>::to_vec),
            version: tls.protocol_version(),
            cipher_suite: tls.negotiated_cipher_suite().map(|s| s.suite()),
            server_name,
        })
    }

    /// The handshake timer fired: the error to end the connection with, if the handshake is
    /// still running.
    pub(crate) fn handshake_timed_out(&self) -> Option<TlsError> {
        match self.session.as_ref()?.handshake {
            Handshake::Running { timeout, .. } => Some(TlsError::HandshakeTimedOut(timeout)),
            _ => None,
        }
    }

    /// How the peer's end of stream should be reported: a TLS stream that ended without
    /// `close_notify` is [`TlsError::Truncated`].
    pub(crate) fn end_reason(&self) -> CloseReason {
        match &self.session {
            Some(s) if s.truncated => CloseReason::Tls(TlsError::Truncated),
            _ => CloseReason::PeerClosed,
        }
    }

    /// One read: plaintext appended to `plain` (`Ok(0)`: the peer's end), or `WouldBlock`.
    /// `raw` reads the socket as it is, for a closing connection that discards its input.
    pub(crate) fn read(
        &mut self,
        socket: &Socket,
        plain: &mut ReadBuf,
        budget: usize,
        missing: usize,
        raw: bool,
    ) -> io::Result<usize> {
        match self.session.as_mut() {
            Some(session) if !raw || matches!(session.handshake, Handshake::Running { .. }) => {
                // rustls may hold decrypted bytes that no new edge would announce: a TLS read is
                // never taken as the socket's last.
                plain.take_short();
                session.read(socket, plain, budget)
            }
            _ => socket.read_into(plain, budget, missing),
        }
    }

    /// Whether there is ciphertext to write (handshake messages, alerts, records).
    pub(crate) fn wants_write(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.tls.wants_write())
    }

    /// Writes what can be written: the clear prefix, rustls' records, then the queue through
    /// rustls once the handshake is done.
    pub(crate) fn flush(&mut self, socket: &Socket, queue: &mut WriteQueue) -> io::Result<Flushed> {
        match self.session.as_mut() {
            Some(session) => session.flush(socket, queue),
            None => socket.flush(queue),
        }
    }

    /// Queues `close_notify` the first time it is called on a session; returns whether it did
    /// (then flush before shutting the write side).
    pub(crate) fn close_notify(&mut self) -> bool {
        match self.session.as_mut() {
            Some(s) if !s.close_notify => {
                s.close_notify = true;
                s.tls.send_close_notify();
                true
            }
            _ => false,
        }
    }

    /// Drops the session and its buffers (the connection has ended).
    pub(crate) fn release(&mut self) {
        self.session = None;
        self.pending = None;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Handshake::Running { timer, .. } = &self.handshake {
            timer.cancel();
        }
    }
}

impl Session {
    /// Reads until plaintext arrives (appended to `plain`), the peer's end (`Ok(0)`), the
    /// socket would block, or rustls refuses the input.
    fn read(&mut self, socket: &Socket, plain: &mut ReadBuf, budget: usize) -> io::Result<usize> {
        let mut got = 0;
        loop {
            // Plaintext rustls has already decrypted goes first: nothing more is fed to it
            // while some waits, so its buffer stays within one record.
            match self.drain(plain, budget - got) {
                Drained::Some(n) => got += n,
                Drained::End | Drained::Truncated if got > 0 => return Ok(got),
                Drained::End => return Ok(0),
                Drained::Truncated => {
                    self.truncated = true;
                    return Ok(0);
                }
                Drained::Nothing => {}
            }
            // Records already read are decrypted in one go (one delivery for a whole recv),
            // up to the budget; the socket is read again only when they are all delivered.
            if got >= budget {
                return Ok(got);
            }
            if self.staged.len() > 0 {
                self.feed(socket)?;
                continue;
            }
            if got > 0 {
                return Ok(got);
            }
            // At least a whole record's worth, however little of the budget is left: a
            // record cannot be decrypted in pieces.
            match socket.read_into(&mut self.staged, budget.max(RECORD), 0) {
                Ok(0) => {
                    self.staged.release_if_empty();
                    if matches!(self.handshake, Handshake::Running { .. }) {
                        return Err(TlsError::ClosedInHandshake.into_io());
                    }
                    // Tell rustls about the end, so the reader reports a clean or unclean one.
                    let _ = self.tls.read_tls(&mut io::empty());
                }
                Ok(_) => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.staged.release_if_empty();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Copies decrypted plaintext into `plain`, up to `budget` bytes.
    fn drain(&mut self, plain: &mut ReadBuf, budget: usize) -> Drained {
        let mut reader = self.tls.reader();
        let mut got = 0;
        while got < budget {
            match reader.fill_buf() {
                Ok([]) if got == 0 => return Drained::End,
                Ok([]) => break,
                Ok(chunk) => {
                    let take = chunk.len().min(budget - got);
                    plain.bytes().extend_from_slice(&chunk[..take]);
                    reader.consume(take);
                    got += take;
                }
                Err(e) if got == 0 && e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Drained::Truncated
                }
                Err(_) => break,
            }
        }
        if got > 0 {
            Drained::Some(got)
        } else {
            Drained::Nothing
        }
    }

    /// Hands staged ciphertext to rustls and lets it process what is complete. A refusal
    /// sends rustls' alert (if the socket takes it now) and ends the connection.
    fn feed(&mut self, socket: &Socket) -> io::Result<()> {
        // rustls takes a few KiB per call, up to one record: hand it all it takes, then
        // process once.
        let staged = self.staged.bytes();
        loop {
            let mut input: &[u8] = staged;
            match self.tls.read_tls(&mut input) {
                Ok(0) => break,
                Ok(n) => {
                    self.stuck = false;
                    bytes::Buf::advance(staged, n);
                    if staged.is_empty() {
                        break;
                    }
                }
                // rustls holds a record it has not processed: process it first; if that frees
                // nothing, the peer sent something rustls cannot take.
                Err(e) if e.kind() == io::ErrorKind::InvalidData && !self.stuck => {
                    self.stuck = true;
                    break;
                }
                Err(e) => {
                    let refused = rustls::Error::General(format!("input refused: {e}"));
                    return Err(TlsError::Protocol(refused).into_io());
                }
            }
        }
        self.staged.release_if_empty();
        if let Err(e) = self.tls.process_new_packets() {
            let _ = self.tls.write_tls(&mut socket.writer());
            return Err(TlsError::Protocol(e).into_io());
        }
        if matches!(self.handshake, Handshake::Running { .. }) && !self.tls.is_handshaking() {
            if let Handshake::Running { timer, .. } = &self.handshake {
                timer.cancel();
            }
            self.handshake = Handshake::Done;
        }
        Ok(())
    }

    fn flush(&mut self, socket: &Socket, queue: &mut WriteQueue) -> io::Result<Flushed> {
        let mut total = 0;
        if self.clear > 0 {
            let flushed = queue.flush_at_most(&mut socket.writer(), self.clear)?;
            self.clear -= flushed.bytes();
            total += flushed.bytes();
            if self.clear > 0 {
                return Ok(Flushed::Blocked(total));
            }
        }
        loop {
            while self.tls.wants_write() {
                match self.tls.write_tls(&mut socket.writer()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Flushed::Blocked(total))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            // Every record is out: the plaintext they carried has reached the kernel.
            if self.encrypted > 0 {
                queue.consume(self.encrypted);
                total += self.encrypted;
                self.encrypted = 0;
            }
            if self.tls.is_handshaking() || !queue.has_queued() {
                return Ok(Flushed::Drained(total));
            }
            let mut slices = [IoSlice::new(&[]); SLICES];
            let count = queue.front(&mut slices, BATCH);
            let n = self.tls.writer().write_vectored(&slices[..count])?;
            if n == 0 {
                // rustls takes no more application data (close_notify was sent).
                return Ok(Flushed::Drained(total));
            }
            self.encrypted = n;
            queue.hold(n);
        }
    }
}

/// What [`Session::drain`] found.
enum Drained {
    Some(usize),
    Nothing,
    /// `close_notify` arrived and everything before it was delivered.
    End,
    /// The TCP end arrived without `close_notify`.
    Truncated,
}
