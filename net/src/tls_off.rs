//! The connection's TLS layer when the crate is built without TLS: every call falls through to
//! the plain socket. Same shape as `tls::Layer`, so the connection has no `cfg` of its own.

use crate::connection::read_buf::ReadBuf;
use crate::connection::socket::Socket;
use crate::connection::write_queue::{Flushed, WriteQueue};
use crate::{CloseReason, ConnectionOptions, ListenOptions};
use std::io;

/// No TLS.
pub(crate) struct Layer;

impl Layer {
    pub(crate) fn for_listener(_opts: &ListenOptions) -> Self {
        Layer
    }

    pub(crate) fn for_connect(_opts: &ConnectionOptions, _host: Option<&str>) -> Self {
        Layer
    }

    pub(crate) fn read(
        &mut self,
        socket: &Socket,
        plain: &mut ReadBuf,
        budget: usize,
        missing: usize,
        _raw: bool,
    ) -> io::Result<usize> {
        socket.read_into(plain, budget, missing)
    }

    pub(crate) fn wants_write(&self) -> bool {
        false
    }

    pub(crate) fn flush(&mut self, socket: &Socket, queue: &mut WriteQueue) -> io::Result<Flushed> {
        socket.flush(queue)
    }

    pub(crate) fn close_notify(&mut self) -> bool {
        false
    }

    pub(crate) fn end_reason(&self) -> CloseReason {
        CloseReason::PeerClosed
    }

    pub(crate) fn release(&mut self) {}
}
