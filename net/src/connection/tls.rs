//! The connection's side of TLS: when the handshake starts, what a finished or failed one
//! means for the connection's stage and its handler, and applying a STARTTLS request.
//!
//! Why here and not in `mod.rs`: the connection's read and write paths only call the layer
//! (`crate::tls::Layer`); everything that knows about handshakes is in this file and in
//! `crate::tls`, so plain TCP reads as before and a build without the `tls` feature compiles
//! the no-op half below.

#[cfg(feature = "tls")]
use super::state::Stage;
use super::TcpConnection;
use crate::{CloseReason, ConnectionHandler};
use rein::Context;

#[cfg(feature = "tls")]
impl<H: ConnectionHandler> TcpConnection<H> {
    /// TCP is up: starts the configured handshake, if any. Returns `true` when the connection
    /// must wait for it (or has already failed) instead of opening now.
    pub(super) fn start_configured_tls(&mut self, ctx: &mut Context<Self>) -> bool {
        let read_per_turn = self.opts.read_per_turn;
        match self
            .tls
            .start_configured(ctx, read_per_turn, self.core.peer)
        {
            None => false,
            Some(Ok(())) => {
                self.core.tls.on = true;
                self.core.stage = Stage::Handshaking;
                // The client's hello goes out, and edges may already have been consumed.
                self.read(ctx);
                self.settle(ctx);
                true
            }
            Some(Err(e)) => {
                self.handshake_failed(ctx, CloseReason::Tls(e));
                true
            }
        }
    }

    /// After a read: a handshake that just finished opens the connection (`connected`), or,
    /// for a STARTTLS upgrade, tells the handler it is `secured`.
    pub(super) fn tls_after_read(&mut self, ctx: &mut Context<Self>) {
        let Some(info) = self.tls.take_secured() else {
            return;
        };
        self.core.tls.info = Some(info);
        if self.core.stage == Stage::Handshaking {
            self.opened(ctx);
        } else {
            self.with_conn(ctx, |h, conn| h.secured(conn));
        }
    }

    /// Applies a [`Conn::start_tls`](crate::Conn::start_tls) request; returns whether there
    /// was one (delivery stops for this turn).
    pub(super) fn apply_start_tls(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some((role, clear)) = self.core.tls.request.take() else {
            return false;
        };
        if self.read.len() > 0 {
            let e = crate::TlsError::PlaintextAfterStartTls;
            self.core.request.abort(CloseReason::Tls(e));
            return true;
        }
        let read_per_turn = self.opts.read_per_turn;
        match self
            .tls
            .start(ctx, role, clear, read_per_turn, self.core.peer)
        {
            // The peer's hello may be in the kernel already, its edge spent.
            Ok(()) => self.schedule_read(ctx),
            Err(e) => self.core.request.abort(CloseReason::Tls(e)),
        }
        true
    }

    /// The handshake timer fired.
    pub(super) fn tls_handshake_timeout(&mut self) {
        if let Some(e) = self.tls.handshake_timed_out() {
            self.core.request.abort(CloseReason::Tls(e));
        }
    }
}

#[cfg(not(feature = "tls"))]
impl<H: ConnectionHandler> TcpConnection<H> {
    pub(super) fn start_configured_tls(&mut self, _ctx: &mut Context<Self>) -> bool {
        false
    }

    pub(super) fn tls_after_read(&mut self, _ctx: &mut Context<Self>) {}

    pub(super) fn apply_start_tls(&mut self, _ctx: &mut Context<Self>) -> bool {
        false
    }
}

impl<H: ConnectionHandler> TcpConnection<H> {
    /// The connection never opened: its handler hears `connect_failed` (an accepted TLS
    /// connection included), its listener the reason. No reset: a TLS peer should read the
    /// alert rustls sent.
    pub(super) fn handshake_failed(&mut self, ctx: &mut Context<Self>, reason: CloseReason) {
        self.handler
            .connect_failed(crate::ConnectError::from_close(&reason));
        self.abort(ctx, reason);
    }
}
