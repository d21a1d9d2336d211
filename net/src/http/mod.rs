//! # HTTP/1.1 on rein-net: streaming server and client, backpressure end to end
//!
//! Get rid of data as soon as possible: request and response bodies move in pieces, in both
//! directions, as they are produced and as the network takes them, and a slow network slows
//! the data's source down instead of filling memory. Nothing here ever holds a whole body
//! unless you ask for it ([`BodyCollector`], [`Collect`]), with a limit.
//!
//! * **Server.** A [`RequestHandler`] runs inside each [`HttpConnection`] (a rein-net
//!   connection actor) and hears a request head, its body in pieces, then the body's end. It
//!   answers with a head ([`Http::respond`]) and body pieces ([`Http::write`]) of known length
//!   (`Content-Length`) or not (chunked), or hands a [`BodySink`] to another actor that
//!   produces the body. Keep-alive, HTTP/1.0, `Connection: close`, `Expect: 100-continue`,
//!   `HEAD`, and pipelining (in order, with a bounded queue) are handled by the connection.
//! * **Client.** A [`ResponseHandler`] runs inside an [`HttpClient`] connection: it sends
//!   requests (with streaming uploads, [`Client::write`] or an [`UploadSink`]) and hears each
//!   response's head, body pieces as they arrive, and end. Connections are kept alive and
//!   reused; idempotent requests can be pipelined.
//! * **Backpressure.** Both sides sit on a rein-net connection, whose write queue throttles at
//!   its high watermark and then applies rein backpressure on the connection actor: an actor
//!   producing a body through a sink is muted by the runtime while the peer is slow, with no
//!   flow-control code of its own. In the other direction, a handler that forwards body pieces
//!   to a slow actor is muted by the runtime, a muted connection does not read, and TCP slows
//!   the sender. [`Http::pause`] and [`Client::pause`] do the same by hand.
//! * **Limits.** Every limit of [`ServerOptions`] is answered with a status and a closed
//!   connection: an over-long head or too many fields (431), an over-long target (414), an
//!   over-large body (413), malformed input (400), Content-Length with Transfer-Encoding or
//!   conflicting lengths (400: request smuggling), an unsupported transfer coding (501), a head
//!   not complete in time (408). A keep-alive connection idle too long is closed.
//!
//! Heads are parsed by `httparse`; the chunked decoder is this crate's own, and both are
//! tested against random and mutated input (no panics; every input is either accepted exactly
//! or refused with a 4xx).
//!
//! See the guide (`docs/guide.md`, "HTTP") for a streaming file server and a streaming upload.

mod body;
mod chunked;
mod client;
mod head;
mod server;
#[cfg(test)]
mod testing;

pub use client::{
    Client, ClientMsg, ClientOptions, ClientRef, HttpClient, RequestId, ResponseHandler, UploadMsg,
    UploadSink,
};
pub use head::{
    reason_phrase, BodyLength, ClientRequest, Headers, Method, Refusal, Request, Response,
    ResponseHead, Version, MAX_HEADERS,
};
pub use server::{
    serve, BodyCollector, BodySink, Collect, Http, HttpConnection, HttpMsg, HttpRef,
    RequestHandler, Serve, ServerOptions, SinkMsg, TooLarge, WriteError,
};
