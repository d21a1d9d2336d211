//! The connection's socket: the one place that knows where readiness comes from.
//!
//! Why a module of its own: a socket is registered through the [`Reactor`] with the runtime's
//! readiness driver, whose poller (an idle worker) sends each edge to the connection as a
//! message. Where readiness comes from is this file's and the reactor's business, not the
//! connection's logic, which only sees "readable / writable / closed / failed" messages and
//! calls the methods below. Everything here is a thin wrapper over one system call or socket
//! option.

use super::msg::{ConnMsg, Msg};
use super::read_buf::ReadBuf;
use super::write_queue::{Flushed, WriteQueue};
use super::TcpConnection;
use crate::io_thread::{Reactor, Registered};
use crate::{ConnectError, ConnectionHandler, ConnectionOptions, Interest, SocketOptions};
use mio::net::TcpStream;
use rein::Context;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A registered TCP stream. Dropping it deregisters and closes it.
pub(crate) struct Socket {
    stream: Registered<TcpStream>,
}

impl Socket {
    /// Starts a non-blocking connect to `addr`, registered for the connection behind `ctx`.
    pub(crate) fn connect<H: ConnectionHandler>(
        reactor: &Reactor,
        ctx: &Context<TcpConnection<H>>,
        addr: SocketAddr,
    ) -> io::Result<Socket> {
        Self::register(reactor, ctx, TcpStream::connect(addr)?)
    }

    /// Registers an accepted (or connected) stream for the connection behind `ctx`: its
    /// readiness edges arrive as messages.
    pub(crate) fn register<H: ConnectionHandler>(
        reactor: &Reactor,
        ctx: &Context<TcpConnection<H>>,
        stream: TcpStream,
    ) -> io::Result<Socket> {
        let me = ctx.myself();
        let owner = Arc::new(move |ready| {
            let _ = me.send(ConnMsg(Msg::Ready(ready)));
        });
        let stream =
            reactor.register_source(stream, Interest::READABLE | Interest::WRITABLE, owner)?;
        Ok(Socket { stream })
    }

    /// Whether a connect in flight has finished: `Ok(true)` connected, `Ok(false)` not yet.
    /// `closed_edge` says the edge that prompted the check reported the socket closed, which
    /// (with no error recorded) means refused when this is the only attempt.
    pub(crate) fn connect_outcome(&self, lone_closed_edge: bool) -> Result<bool, ConnectError> {
        match self.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(ConnectError::from_io(e)),
            Ok(None) => match self.stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if lone_closed_edge {
                        Err(ConnectError::Refused)
                    } else {
                        Ok(false)
                    }
                }
                Err(e) => Err(ConnectError::from_io(e)),
            },
        }
    }

    /// One read into `buf`: at most `budget` bytes, with room for `missing` bytes of a frame.
    pub(crate) fn read_into(
        &self,
        buf: &mut ReadBuf,
        budget: usize,
        missing: usize,
    ) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(e) = fault::take(|| self.local_addr()) {
            return Err(e);
        }
        let sock = socket2::SockRef::from(&*self.stream);
        // SAFETY: `recv` initialises the first `n` bytes of the slice when it returns `Ok(n)`
        // (it is `recv(2)` into that memory), which is `read_with`'s requirement.
        unsafe { buf.read_with(budget, missing, |spare| sock.recv(spare)) }
    }

    /// Writes what `queue` holds until the socket would block.
    pub(crate) fn flush(&self, queue: &mut WriteQueue) -> io::Result<Flushed> {
        queue.flush(&mut &*self.stream)
    }

    /// The stream as a writer, for a layer that writes bytes of its own (TLS records).
    #[cfg(feature = "tls")]
    pub(crate) fn writer(&self) -> &TcpStream {
        &self.stream
    }

    /// Shuts the write side down: the peer reads end of stream after what was sent.
    pub(crate) fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Makes closing send a reset (queued bytes in the kernel are dropped too).
    pub(crate) fn reset_on_close(&self) {
        let _ = socket2::SockRef::from(&*self.stream).set_linger(Some(Duration::ZERO));
    }

    pub(crate) fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok()
    }

    /// Applies the socket options in `opts` (a refusal leaves the kernel's value, which the
    /// read-back shows) and reads back what is in force.
    pub(crate) fn apply(&self, opts: &ConnectionOptions) -> SocketOptions {
        let sock = socket2::SockRef::from(&*self.stream);
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
}

/// Test seam: the next read on the connection whose local address a test names fails with
/// the error the test gives, so the I/O error path can be tested deterministically.
#[cfg(test)]
pub(crate) mod fault {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    static FAULTS: Mutex<Vec<(SocketAddr, io::Error)>> = Mutex::new(Vec::new());

    /// The next read of the connection bound locally to `local` fails with `error`.
    pub(crate) fn fail_next_read(local: SocketAddr, error: io::Error) {
        lock().push((local, error));
    }

    pub(super) fn take(local: impl FnOnce() -> Option<SocketAddr>) -> Option<io::Error> {
        let mut faults = lock();
        if faults.is_empty() {
            return None;
        }
        let local = local()?;
        let at = faults.iter().position(|(addr, _)| *addr == local)?;
        Some(faults.swap_remove(at).1)
    }

    fn lock() -> std::sync::MutexGuard<'static, Vec<(SocketAddr, io::Error)>> {
        FAULTS.lock().unwrap_or_else(|e| e.into_inner())
    }
}
