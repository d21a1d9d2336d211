//! TLS on rein-net connections, with rustls: servers, clients and STARTTLS, with the same
//! handler API as plain TCP and backpressure intact.
//!
//! Why a layer inside the connection rather than a stream type of its own: a handler should
//! not care whether its bytes are encrypted. `connected` fires after the handshake,
//! `received` gets plaintext, `send` takes plaintext, and every backpressure rule (watermarks,
//! holding delivery after a refused send, read muting, the connection's pressure on its
//! writers) is the plain connection's, unchanged, because the layer sits below them: between
//! the socket on one side and the read buffer and write queue on the other (`layer`).
//!
//! Why TLS is a setting ([`ListenOptions::tls`](crate::ListenOptions::tls),
//! [`ConnectionOptions::tls`](crate::ConnectionOptions::tls)) rather than `bind_tls` and
//! `connect_tls`: everything built on listeners and connections takes their options already,
//! so it gets TLS without a change. The HTTP layer's server and client, given options with TLS
//! and ALPN `http/1.1`, serve and speak HTTPS; one pair of entry points stays one pair.
//!
//! What throttling counts: **plaintext**. The write queue holds what the handler sent, and
//! bytes leave it only when their ciphertext has been handed to the kernel, so
//! [`Conn::queued`](crate::Conn::queued), the watermarks and
//! [`sent`](crate::ConnectionHandler::sent) tokens mean what they mean without TLS, in the
//! units the handler controls. Ciphertext waiting on top is bounded by one batch of 64 KiB
//! (plus about 0.2 % of record overhead).
//!
//! Reading: no TLS record is read while plaintext is not being delivered (muted, delivery
//! held, closing), so muting still closes the TCP window and plaintext buffered anywhere is
//! bounded by one turn's read budget plus one record.

mod config;
mod error;
mod layer;

pub use config::{StartTls, TlsClient, TlsInfo, TlsServer, DEFAULT_HANDSHAKE_TIMEOUT};
pub use error::{StartTlsError, TlsConfigError, TlsError};
pub(crate) use layer::Layer;

use crate::{Conn, ConnectionHandler, ConnectionOptions, ListenOptions};

/// What the handler's side of a connection knows about TLS (kept in the connection's `Core`).
#[derive(Debug, Default)]
pub(crate) struct CoreTls {
    /// [`Conn::start_tls`] asked for an upgrade, with the bytes queued at that moment (they go
    /// out in the clear).
    pub(crate) request: Option<(StartTls, usize)>,
    /// TLS is on, starting, or asked for: another upgrade is refused.
    pub(crate) on: bool,
    /// What the last handshake agreed on.
    pub(crate) info: Option<TlsInfo>,
}

impl Layer {
    /// The layer for a connection a listener with `opts` accepted.
    pub(crate) fn for_listener(opts: &ListenOptions) -> Self {
        Layer::new(opts.tls.clone().map(StartTls::Server), None)
    }

    /// The layer for an outgoing connection to `host` (`None`: to addresses).
    pub(crate) fn for_connect(opts: &ConnectionOptions, host: Option<&str>) -> Self {
        Layer::new(opts.tls.clone().map(StartTls::Client), host)
    }
}

impl<H: ConnectionHandler> Conn<'_, '_, H> {
    /// Upgrades this open connection to TLS (STARTTLS): bytes sent before this call go out in
    /// the clear, everything sent from now on goes through TLS once the handshake is done.
    /// Delivery stops at once; when the handshake finishes the handler hears
    /// [`secured`](crate::ConnectionHandler::secured) and data flows again, encrypted. A
    /// failed handshake ends the connection with [`CloseReason::Tls`](crate::CloseReason::Tls).
    ///
    /// Call it from the callback that handled the last plaintext (typically `received`, with
    /// the protocol's "go ahead"): bytes that already arrived after that point are not TLS
    /// from the peer but plaintext injected before the upgrade, and end the connection with
    /// [`TlsError::PlaintextAfterStartTls`].
    ///
    /// ```
    /// use rein_net::{Bytes, Conn, ConnectionHandler, Flow, Framing, TlsServer};
    ///
    /// /// A line protocol: "STARTTLS" upgrades, anything else is echoed.
    /// struct Lines {
    ///     tls: TlsServer,
    /// }
    /// impl ConnectionHandler for Lines {
    ///     type Msg = ();
    ///     fn connected(&mut self, conn: &mut Conn<Self>) {
    ///         conn.set_framing(Framing::Lines { max: 1024 });
    ///     }
    ///     fn received(&mut self, conn: &mut Conn<Self>, line: Bytes) -> Flow {
    ///         if &line[..] == b"STARTTLS" && !conn.is_tls() {
    ///             let _ = conn.send("GO\n"); // in the clear: it was sent first
    ///             conn.start_tls(self.tls.clone()).expect("open, not yet TLS");
    ///         } else {
    ///             let _ = conn.send([&line[..], b"\n"].concat());
    ///         }
    ///         Flow::Continue
    ///     }
    ///     fn secured(&mut self, conn: &mut Conn<Self>) {
    ///         let _ = conn.send("secure now\n"); // encrypted
    ///     }
    /// }
    /// ```
    pub fn start_tls(&mut self, tls: impl Into<StartTls>) -> Result<(), StartTlsError> {
        if !self.core.is_open() {
            return Err(StartTlsError::NotOpen);
        }
        if self.core.tls.on {
            return Err(StartTlsError::AlreadyTls);
        }
        self.core.tls.on = true;
        self.core.tls.request = Some((tls.into(), self.core.writes.queued()));
        Ok(())
    }

    /// What the TLS handshake agreed on, once it has finished: `None` on a plain connection
    /// (and during a STARTTLS handshake).
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.core.tls.info.as_ref()
    }

    /// Whether the connection is encrypted (a handshake has finished).
    pub fn is_tls(&self) -> bool {
        self.core.tls.info.is_some()
    }

    /// The application protocol (ALPN) the handshake agreed on, if any: what an HTTP layer
    /// checks for `http/1.1`.
    ///
    /// ```
    /// use rein_net::{Bytes, Conn, ConnectionHandler, Flow};
    /// struct Http;
    /// impl ConnectionHandler for Http {
    ///     type Msg = ();
    ///     fn connected(&mut self, conn: &mut Conn<Self>) {
    ///         if conn.is_tls() && conn.alpn_protocol() != Some(&b"http/1.1"[..]) {
    ///             conn.close(); // not a protocol this handler speaks
    ///         }
    ///     }
    ///     fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
    ///         Flow::Continue
    ///     }
    /// }
    /// ```
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.core.tls.info.as_ref()?.alpn_protocol.as_deref()
    }
}
