//! # rein-net: TCP on the rein scheduler, with end-to-end backpressure
//!
//! Sockets are actors. Readiness comes from the runtime itself: an idle worker waits in
//! `epoll_wait` (`mio`, edge-triggered; see [`rein::Io`]) and turns each edge into an ordinary
//! message that runs on that very worker, with no hand-off between threads. A [`Reactor`] is
//! the handle sockets are registered through; a [`TcpListener`] actor accepts peers and spawns one
//! [`TcpConnection`] actor per stream; your code lives in a [`ConnectionHandler`] (and a
//! [`ListenNotify`] for listeners) whose callbacks run inside those actors.
//!
//! ## A connection is an actor you write
//! A handler's callbacks get a [`Conn`]: the connection (send, mute, framing, close) and the
//! actor around it (its own address [`Conn::myself`], timers [`Conn::after`] and
//! [`Conn::every`], [`Conn::spawn`], [`Conn::monitor`]). A handler declares its own message
//! type ([`ConnectionHandler::Msg`]) and receives those messages in
//! [`message`](ConnectionHandler::message), beside the socket's events. Every connection,
//! accepted or outgoing, has an address, a [`ConnRef`], through which other actors send it
//! those messages, write to it, close or abort it; a listener hands each accepted one's to
//! [`ListenNotify::accepted`]. When it ends, the handler hears why
//! ([`closed`](ConnectionHandler::closed) with a [`CloseReason`]), and so does its listener
//! ([`ListenNotify::ended`] with a [`ConnectionEnded`]).
//!
//! ## Buffers
//! Data arrives as [`Bytes`]: views of the read buffer, not copies, so framing costs O(1) per
//! frame and an echo sends back the very buffer it received. The read buffer starts at 8 KiB,
//! grows while reads fill it (up to `read_per_turn`), and is given back whenever a read turn
//! leaves nothing undelivered: an idle connection holds no read buffer. Sends take anything
//! that converts into `Bytes` (`Vec<u8>`, `&'static [u8]`, `String`, ...) without copying, and
//! go out with vectored writes. [`Framing`] cuts input into fixed-size frames, lines or
//! delimited frames, or length-prefixed frames, each with a maximum: over-long input is a
//! [`FrameError`] for the handler, never unbounded buffering.
//!
//! ## Backpressure, end to end
//! * **Writing.** [`Conn::send`] queues bytes. Past the high watermark (64 KiB by default) the
//!   connection is not writeable: `send` hands the bytes back, the handler hears
//!   [`throttled`](ConnectionHandler::throttled), and the connection applies rein backpressure
//!   on itself, so actors writing to it ([`ConnRef::write`], [`ConnRef::writer`]) are muted.
//!   Once the queue drains to the low watermark it hears `unthrottled` and the writers resume.
//! * **Forwarding.** A send refused inside [`received`](ConnectionHandler::received) holds
//!   delivery: no more `received` until `unthrottled` has been delivered, and no reading from
//!   the socket meanwhile. A handler keeps the refused bytes and sends them from
//!   `unthrottled`; nothing arrives in between to overwrite them (see [`Conn::send`]).
//! * **Reading.** [`Conn::mute`] stops reading; the kernel buffer fills and TCP slows the peer.
//!   A turn reads at most `read_per_turn` bytes, so one busy socket cannot hog a worker.
//! * Readiness is delivered between turns, outside any behaviour, and such sends are never
//!   muted: a throttled connection always hears that its socket drained.
//!
//! ## Isolation: one peer must not cost the others
//! * **Egress.** A writer that serves many peers must not wait for the slowest:
//!   [`ConnectionOptions::overflow`] makes a connection drop ([`Overflow::DropNewest`]), skip
//!   ahead ([`Overflow::Lag`]) or disconnect ([`Overflow::Disconnect`]) instead of muting its
//!   writers; [`ConnRef::is_pressured`] and [`ConnRef::try_write`] let a writer decide per
//!   write; [`broadcast::Broadcast`] fans messages out with a policy per subscriber. The
//!   runtime's `Builder::on_stall` reports a writer that is stalled anyway, and on whom.
//! * **Ingress.** When many connections feed one consumer, an [`ingress::Ingress`] with a
//!   queueing discipline decides what is queued and which connections stop reading:
//!   [`ingress::Unbounded`], [`ingress::Bounded`] (rein's muting), [`ingress::FairPerPeer`]
//!   (a budget in flight per peer, least-served first), [`ingress::RateLimited`], or your own
//!   [`ingress::Discipline`].
//!
//! ## TLS
//! With the `tls` feature (default, rustls with ring), a connection can be encrypted without
//! its handler knowing: set `ListenOptions::tls` (a `TlsServer`) or
//! `ConnectionOptions::tls` (a `TlsClient`). `connected` fires after the handshake,
//! `received` gets plaintext, `send` takes plaintext, and the watermarks count plaintext
//! queued. `Conn::start_tls` upgrades an open connection (STARTTLS), `Conn::alpn_protocol`
//! reads what ALPN agreed on, and every handshake failure is a typed `TlsError`. The guide's
//! "TLS" chapter walks through it; `docs/decisions/tls-on-connections.md` says why it is built
//! this way.
//!
//! ## Lifetime
//! Every registered socket holds a keep-alive on the runtime, so a server runs while it listens
//! or has connections, and `Runtime::wait` returns once all of them are closed.
//!
//! ## HTTP
//! [`http`] (feature `http`, on by default) runs HTTP/1.1 on these connections: a streaming
//! server ([`http::RequestHandler`]) and client ([`http::ResponseHandler`]), bodies in pieces
//! both ways, body sinks whose producing actors the runtime mutes while the peer is slow.
//!
//! ## Tracing
//! With the `tracing` feature (off by default), a connection ended by a socket error is a WARN
//! event on the target `rein_net::socket`, a reset by the peer or a failed connect a DEBUG one
//! (fields `conn`, `peer`, `error` or `reason`); it turns on rein's own `tracing` feature too.
//!
//! ## Options
//! Every options struct ([`ConnectionOptions`], [`ListenOptions`], `http::ServerOptions`,
//! `http::ClientOptions`) is `#[non_exhaustive]`: build one from `default()` and its setters,
//! `ConnectionOptions::default().high_watermark(256 * 1024)`, or set its public fields.
//!
//! ## Authority
//! Opening sockets needs a [`TcpListenAuth`] or [`TcpConnectAuth`], derived from the
//! [`rein::AmbientAuth`] the program's entry point receives from `Builder::build_with_auth`.
//!
//! The guide (`docs/guide.md`, "TCP") walks through a server, a client, throttling and the
//! pressure story. An echo server:
//!
//! ```no_run
//! use rein_net::*;
//!
//! struct Echo {
//!     pending: Option<Bytes>,
//! }
//! impl ConnectionHandler for Echo {
//!     type Msg = ();
//!     fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
//!         if let Err(refused) = conn.send(data) {
//!             // Not writeable: no more `received` (and no reading) until `unthrottled`, so
//!             // this slot cannot be overwritten. Keep the bytes until then.
//!             self.pending = Some(refused.into_inner());
//!         }
//!         Flow::Continue
//!     }
//!     fn unthrottled(&mut self, conn: &mut Conn<Self>) {
//!         if let Some(data) = self.pending.take() {
//!             // Below the low watermark now: accepted (unless the connection is closing).
//!             let _ = conn.send(data);
//!         }
//!     }
//! }
//!
//! struct Server;
//! impl ListenNotify for Server {
//!     type Handler = Echo;
//!     fn connected(&mut self, _peer: std::net::SocketAddr) -> Echo {
//!         Echo { pending: None }
//!     }
//! }
//!
//! let (rt, auth) = rein::Runtime::builder().build_with_auth().unwrap();
//! let reactor = Reactor::start(&rt.handle()).unwrap();
//! let addr = "127.0.0.1:7000".parse().unwrap();
//! TcpListener::bind(&reactor, &TcpListenAuth::new(&auth), addr, Server, ListenOptions::default());
//! rt.wait(); // runs until the listener is closed and its connections have ended
//! ```

#![warn(missing_docs)]

mod auth;
pub mod broadcast;
mod conn;
mod connection;
mod framing;
mod handler;
#[cfg(feature = "http")]
pub mod http;
pub mod ingress;
mod io_thread;
mod listener;
mod resolve;
#[cfg(feature = "tls")]
mod tls;
#[cfg(not(feature = "tls"))]
mod tls_off;

pub use auth::{TcpConnectAuth, TcpListenAuth};
pub use bytes::{Bytes, BytesMut};
pub use conn::{Conn, SendError, SendToken, SocketOptions};
pub use connection::msg::{ConnMsg, ConnRef};
pub use connection::options::{ConnectionOptions, Overflow};
pub use connection::TcpConnection;
pub use framing::{FrameError, Framing, Prefix};
pub use handler::{CloseReason, ConnectError, ConnectionEnded, ConnectionHandler, Flow};
pub use io_thread::{Reactor, Registered};
pub use listener::{
    BindError, HandlerMsg, ListenNotify, ListenOptions, ListenerMsg, ListenerRef, TcpListener,
};
pub use rein::{Interest, Readiness};
/// rustls, re-exported: build a `ServerConfig` or `ClientConfig` of your own with the same
/// version rein-net uses ([`TlsServer::new`], [`TlsClient::new`]).
#[cfg(feature = "tls")]
pub use rustls;
#[cfg(feature = "tls")]
pub use tls::{
    StartTls, StartTlsError, TlsClient, TlsConfigError, TlsError, TlsInfo, TlsServer,
    DEFAULT_HANDSHAKE_TIMEOUT,
};

/// The code in `docs/guide.md`, compiled and run as doctests so the guide stays true. It lives
/// here because this crate depends on every other crate the guide uses.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide.md")]
pub struct GuideDoctests;
