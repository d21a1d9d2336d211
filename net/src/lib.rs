//! # rein-net: TCP on the rein scheduler, with end-to-end backpressure
//!
//! Sockets are actors. A [`Reactor`] runs one I/O thread (`mio`, edge-triggered) that turns
//! readiness into ordinary messages; a [`TcpListener`] actor accepts peers and spawns one
//! [`TcpConnection`] actor per stream; your code lives in a [`ConnectionHandler`] (and a
//! [`ListenNotify`] for listeners) whose callbacks run inside those actors.
//!
//! ## Backpressure, end to end
//! * **Writing.** [`Conn::send`] queues bytes. Past the high watermark (64 KiB by default) the
//!   connection is not writeable: `send` hands the bytes back, the handler hears
//!   [`throttled`](ConnectionHandler::throttled), and the connection applies rein backpressure
//!   on itself, so actors writing to it ([`ConnMsg::Write`], [`Conn::writer`]) are muted. Once
//!   the queue drains to the low watermark it hears `unthrottled` and the writers resume.
//! * **Reading.** [`Conn::mute`] stops reading; the kernel buffer fills and TCP slows the peer.
//!   A turn reads at most `read_per_turn` bytes, so one busy socket cannot hog a worker.
//! * Readiness comes from a thread outside the runtime, and such sends are never muted: a
//!   throttled connection always hears that its socket drained.
//!
//! ## Lifetime
//! Every registered socket holds a keep-alive on the runtime, so a server runs while it listens
//! or has connections, and `Runtime::wait` returns once all of them are closed.
//!
//! ## Authority
//! Opening sockets needs a [`TcpListenAuth`] or [`TcpConnectAuth`], derived from the
//! [`rein::AmbientAuth`] the program's entry point receives from `Builder::build_with_auth`.
//!
//! ```no_run
//! use rein_net::*;
//!
//! struct Echo {
//!     pending: Option<Vec<u8>>,
//! }
//! impl ConnectionHandler for Echo {
//!     fn received(&mut self, conn: &mut Conn, data: Vec<u8>) -> Flow {
//!         if let Err(refused) = conn.send(data) {
//!             // Over the high watermark: `throttled` follows, keep the bytes until then.
//!             self.pending = Some(refused.into_inner());
//!         }
//!         Flow::Continue
//!     }
//!     fn throttled(&mut self, conn: &mut Conn) {
//!         conn.mute(); // stop reading until the peer catches up
//!     }
//!     fn unthrottled(&mut self, conn: &mut Conn) {
//!         if let Some(data) = self.pending.take() {
//!             let _ = conn.send(data);
//!         }
//!         conn.unmute();
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
//! TcpListener::bind(&reactor, &TcpListenAuth::new(&auth), addr, Server, ListenOptions::default())
//!     .expect("the runtime has not ended");
//! rt.wait(); // runs until the listener is closed and its connections have ended
//! ```

#![warn(missing_docs)]

mod auth;
mod conn;
mod connection;
mod io_thread;
mod listener;

pub use auth::{TcpConnectAuth, TcpListenAuth};
pub use conn::{Conn, Flow, SendError, SendToken, SocketOptions};
pub use connection::{
    ConnMsg, ConnectError, ConnectionEnded, ConnectionHandler, ConnectionOptions, TcpConnection,
};
pub use io_thread::{Reactor, Readiness, Registered};
pub use listener::{BindError, ListenNotify, ListenOptions, ListenerMsg, TcpListener};
pub use mio::Interest;
