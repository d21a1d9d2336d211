//! The server side: [`HttpConnection`] runs HTTP/1.1 on one accepted connection and calls your
//! [`RequestHandler`] for each request, one exchange at a time.
//!
//! Why one exchange at a time: responses must go out in request order, and a handler that sees
//! only the current request cannot get that wrong. Requests that arrive while a response is
//! still streaming (pipelining) are parsed and wait in a queue of at most
//! [`ServerOptions::pipeline_depth`]; past it, or when the next request has a body, the
//! connection stops reading and TCP pushes back on the client.
//!
//! Why bodies are events and not buffers: a request body reaches the handler as it arrives, a
//! piece per read ([`RequestHandler::body`]), then [`RequestHandler::body_end`]. A handler that
//! forwards the pieces to another actor is muted by the runtime when that actor falls behind,
//! and a muted connection does not read: the client slows down, nothing is buffered. A body the
//! handler does not want is drained (up to [`ServerOptions::drain_limit`]) or the connection is
//! closed; it is never collected. [`BodyCollector`] and [`Collect`] collect small bodies,
//! above this level, with a limit.
//!
//! Responses are written in pieces too: [`Http::respond`] sets the head, which goes out with
//! the first body bytes ([`Http::write`]) or at [`Http::finish`]. Another actor can produce the
//! body through a [`BodySink`]: its sends land in this connection's mailbox, and while the
//! connection is throttled (its write queue above the high watermark) it applies rein
//! backpressure on itself, so that producer is muted by the runtime and needs no flow control.

use super::body::{BodyReader, BodyWriter, Mismatch, Outbox};
use super::chunked::Piece;
use super::head::{
    self, BodyLength, ConnHeader, Framing, HeadLimits, Headers, Method, Parsed, Refusal, Request,
    Response, Version,
};
use crate::connection::msg::{ConnMsg, Msg};
use crate::{
    BindError, CloseReason, Conn, ConnRef, ConnectionHandler, Flow, ListenNotify, ListenOptions,
    ListenerRef, Reactor, TcpListenAuth, TcpListener,
};
use bytes::{Buf, Bytes, BytesMut};
use rein::{Actor, ActorRef, Recipient, ReplyTo, Timer};
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Settings for HTTP server connections. Every limit is answered with a status and a closed
/// connection, never with unbounded memory.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The largest request head (request line and fields), in bytes; more is `431` (default
    /// 64 KiB).
    pub max_head: usize,
    /// The longest request target; longer is `414` (default 8 KiB).
    pub max_target: usize,
    /// The largest request body; more is `413` (default: none, bodies are streamed).
    pub max_body: Option<u64>,
    /// A request head must be complete this long after its first byte arrived, or the client
    /// gets `408` (slowloris; default 30 s).
    pub head_timeout: Duration,
    /// An idle keep-alive connection (no request under way) is closed after this long
    /// (default 60 s).
    pub keep_alive_timeout: Duration,
    /// Requests parsed ahead while a response is under way (pipelining); past this the
    /// connection stops reading (default 16).
    pub pipeline_depth: usize,
    /// Unread request body bytes discarded after the response so the connection can be kept
    /// alive; a longer rest closes the connection instead (default 256 KiB).
    pub drain_limit: u64,
    /// The listener's settings and its TCP connections' (write-queue watermarks, socket
    /// buffers), used by [`serve`] (default: [`ListenOptions::default`]).
    pub listen: ListenOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_head: 64 * 1024,
            max_target: 8 * 1024,
            max_body: None,
            head_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            pipeline_depth: 16,
            drain_limit: 256 * 1024,
            listen: ListenOptions::default(),
        }
    }
}

/// Setters, for building options from the defaults: `ServerOptions::default().max_head(..)`. (The
/// struct is `#[non_exhaustive]`, so that new settings are not breaking changes.)
impl ServerOptions {
    /// Sets `max_head` (see the field for its meaning and default).
    pub fn max_head(mut self, value: usize) -> Self {
        self.max_head = value;
        self
    }

    /// Sets `max_target` (see the field for its meaning and default).
    pub fn max_target(mut self, value: usize) -> Self {
        self.max_target = value;
        self
    }

    /// Sets `max_body` to `Some(value)` (see the field for its meaning and default).
    pub fn max_body(mut self, value: u64) -> Self {
        self.max_body = Some(value);
        self
    }

    /// Sets `head_timeout` (see the field for its meaning and default).
    pub fn head_timeout(mut self, value: Duration) -> Self {
        self.head_timeout = value;
        self
    }

    /// Sets `keep_alive_timeout` (see the field for its meaning and default).
    pub fn keep_alive_timeout(mut self, value: Duration) -> Self {
        self.keep_alive_timeout = value;
        self
    }

    /// Sets `pipeline_depth` (see the field for its meaning and default).
    pub fn pipeline_depth(mut self, value: usize) -> Self {
        self.pipeline_depth = value;
        self
    }

    /// Sets `drain_limit` (see the field for its meaning and default).
    pub fn drain_limit(mut self, value: u64) -> Self {
        self.drain_limit = value;
        self
    }

    /// Sets `listen` (see the field for its meaning and default).
    pub fn listen(mut self, value: ListenOptions) -> Self {
        self.listen = value;
        self
    }
}

/// The code you write for an HTTP server connection. Each callback runs inside the connection
/// actor, one at a time, for the current exchange: the next request is delivered only once the
/// response to this one is finished.
///
/// A streaming echo of request bodies (the response is chunked, each piece sent back as it
/// arrives; a piece the connection refuses is kept and resent from `writeable`, and reading
/// pauses meanwhile):
///
/// ```
/// use rein_net::http::{Http, RequestHandler, Request, Response, WriteError};
/// use rein_net::Bytes;
///
/// struct Echo {
///     kept: Option<Bytes>,
///     ended: bool,
/// }
///
/// impl RequestHandler for Echo {
///     type Msg = ();
///     fn request(&mut self, http: &mut Http<Self>, _request: Request) {
///         http.respond(Response::new(200)); // no length: chunked
///     }
///     fn body(&mut self, http: &mut Http<Self>, piece: Bytes) {
///         if let Err(WriteError::NotWriteable(piece)) = http.write(piece) {
///             self.kept = Some(piece);
///             http.pause(); // no more pieces until `writeable`
///         }
///     }
///     fn body_end(&mut self, http: &mut Http<Self>, _trailers: rein_net::http::Headers) {
///         self.ended = true;
///         if self.kept.is_none() {
///             http.finish();
///         }
///     }
///     fn writeable(&mut self, http: &mut Http<Self>) {
///         if let Some(piece) = self.kept.take() {
///             let _ = http.write(piece);
///             http.resume();
///         }
///         if self.ended && self.kept.is_none() {
///             http.finish();
///         }
///     }
/// }
/// ```
pub trait RequestHandler: Sized + Send + 'static {
    /// The handler's own messages (from other actors through [`HttpRef::send`], or timers).
    /// Use `()` if it needs none.
    type Msg: Send + 'static;

    /// A request head arrived. Respond now or later ([`Http::respond`], [`Http::send`]); the
    /// body, if any, follows as [`body`](RequestHandler::body) calls, then
    /// [`body_end`](RequestHandler::body_end) (called for every request, at once for one
    /// without a body).
    fn request(&mut self, http: &mut Http<'_, '_, '_, Self>, request: Request);

    /// A piece of the request body, as it arrived. The default drops it.
    fn body(&mut self, _http: &mut Http<'_, '_, '_, Self>, _piece: Bytes) {}

    /// The request body is complete; `trailers` are the chunked trailer fields, if any.
    fn body_end(&mut self, _http: &mut Http<'_, '_, '_, Self>, _trailers: Headers) {}

    /// The connection takes writes again after [`Http::write`] refused (or while a response is
    /// being written and the write queue drained to its low watermark).
    fn writeable(&mut self, _http: &mut Http<'_, '_, '_, Self>) {}

    /// One of the handler's own messages arrived.
    fn message(&mut self, _http: &mut Http<'_, '_, '_, Self>, _msg: Self::Msg) {}

    /// A request was refused by the server before reaching the handler (malformed, over a
    /// limit, timed out): `refusal` is the status the client was sent before the close.
    fn refused(&mut self, _refusal: Refusal) {}

    /// The connection ended; nothing else follows.
    fn closed(&mut self, _reason: CloseReason) {}
}

/// The message type of an HTTP connection actor. Opaque: send the handler's own messages with
/// [`HttpRef::send`], body pieces with a [`BodySink`].
pub struct HttpMsg<M>(Inner<M>);

enum Inner<M> {
    User(M),
    Sink(SinkMsg),
    Tick,
}

impl<M: Clone> Clone for HttpMsg<M> {
    fn clone(&self) -> Self {
        HttpMsg(match &self.0 {
            Inner::User(m) => Inner::User(m.clone()),
            Inner::Sink(s) => Inner::Sink(s.clone()),
            Inner::Tick => Inner::Tick,
        })
    }
}

impl<M> fmt::Debug for HttpMsg<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Inner::User(_) => "HttpMsg(message)",
            Inner::Sink(_) => "HttpMsg(body piece)",
            Inner::Tick => "HttpMsg(internal)",
        })
    }
}

/// What a [`BodySink`] sends to its connection. Opaque.
#[derive(Clone)]
pub struct SinkMsg {
    exchange: u64,
    what: SinkWhat,
}

#[derive(Clone)]
enum SinkWhat {
    Data(Bytes),
    Finish(Option<Headers>),
    Abort,
}

impl<M: Send + 'static> From<SinkMsg> for ConnMsg<HttpMsg<M>> {
    fn from(msg: SinkMsg) -> Self {
        ConnMsg(Msg::User(HttpMsg(Inner::Sink(msg))))
    }
}

/// An address another actor writes a response body through: pieces, then
/// [`finish`](BodySink::finish). Get one from [`Http::body_sink`] after [`Http::respond`].
///
/// Sends land in the connection's mailbox and always queue; while the connection is throttled
/// it applies rein backpressure on itself, so an actor sending from its behaviour is muted
/// until the client has taken the bytes. Produce in pieces (send one, then message yourself to
/// continue) and the producer's pace follows the client's.
///
/// ```
/// use rein::{Actor, Context};
/// use rein_net::http::BodySink;
/// use rein_net::Bytes;
///
/// /// Streams `left` bytes of zeros, 16 KiB per behaviour.
/// struct Zeros {
///     sink: BodySink,
///     left: usize,
/// }
///
/// impl Actor for Zeros {
///     type Msg = ();
///     fn started(&mut self, ctx: &mut Context<Self>) {
///         let _ = ctx.myself().send(());
///     }
///     fn handle(&mut self, ctx: &mut Context<Self>, (): ()) {
///         let n = self.left.min(16 * 1024);
///         self.left -= n;
///         // Muted by the runtime after this behaviour if the connection is throttled.
///         if self.sink.send(vec![0u8; n]).is_err() || self.left == 0 {
///             self.sink.finish();
///             return ctx.stop();
///         }
///         let _ = ctx.myself().send(());
///     }
/// }
/// ```
#[derive(Clone)]
pub struct BodySink {
    to: Recipient<SinkMsg>,
    exchange: u64,
}

impl BodySink {
    /// Sends a piece of the body. Hands it back if the connection has ended.
    pub fn send(&self, piece: impl Into<Bytes>) -> Result<(), Bytes> {
        self.to
            .send(self.msg(SinkWhat::Data(piece.into())))
            .map_err(|e| match e.into_inner().what {
                SinkWhat::Data(bytes) => bytes,
                _ => Bytes::new(),
            })
    }

    /// Ends the body. Returns `false` if the connection has ended.
    pub fn finish(&self) -> bool {
        self.to.send(self.msg(SinkWhat::Finish(None))).is_ok()
    }

    /// Ends the body with chunked trailer fields (dropped if the response has a length).
    pub fn finish_with_trailers(&self, trailers: Headers) -> bool {
        self.to
            .send(self.msg(SinkWhat::Finish(Some(trailers))))
            .is_ok()
    }

    /// Gives up on the body: the connection is aborted (the client sees a cut-off response).
    pub fn abort(&self) -> bool {
        self.to.send(self.msg(SinkWhat::Abort)).is_ok()
    }

    /// Whether the connection has ended: stop producing.
    pub fn is_closed(&self) -> bool {
        self.to.is_stopped()
    }

    fn msg(&self, what: SinkWhat) -> SinkMsg {
        SinkMsg {
            exchange: self.exchange,
            what,
        }
    }
}

impl fmt::Debug for BodySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodySink({}, exchange {})", self.to.id(), self.exchange)
    }
}

/// The address of an HTTP connection: send its handler messages, close it. Cheap to clone.
pub struct HttpRef<M> {
    conn: ConnRef<HttpMsg<M>>,
}

impl<M: Send + 'static> HttpRef<M> {
    /// Delivers `msg` to [`RequestHandler::message`]; hands it back if the connection ended.
    pub fn send(&self, msg: M) -> Result<(), rein::SendError<M>> {
        self.conn.send(HttpMsg(Inner::User(msg))).map_err(|e| {
            e.map(|back| match back.0 {
                Inner::User(m) => m,
                _ => unreachable!("the message handed back is the one sent"),
            })
        })
    }

    /// Closes gracefully (queued bytes go out first).
    pub fn close(&self) -> bool {
        self.conn.close()
    }

    /// Closes at once.
    pub fn abort(&self) -> bool {
        self.conn.abort()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }
}

impl<M> Clone for HttpRef<M> {
    fn clone(&self) -> Self {
        HttpRef {
            conn: self.conn.clone(),
        }
    }
}

impl<M: Send + 'static> fmt::Debug for HttpRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpRef({:?})", self.conn)
    }
}

/// Why [`Http::write`] refused a piece; the piece is handed back.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The connection's write queue is full: wait for [`RequestHandler::writeable`].
    NotWriteable(Bytes),
    /// No response body is being written (none started, already finished, or the connection
    /// is closing).
    NotStreaming(Bytes),
}

impl WriteError {
    /// The refused piece.
    pub fn into_inner(self) -> Bytes {
        match self {
            WriteError::NotWriteable(b) | WriteError::NotStreaming(b) => b,
        }
    }
}

impl fmt::Debug for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::NotWriteable(b) => write!(f, "NotWriteable({} bytes)", b.len()),
            WriteError::NotStreaming(b) => write!(f, "NotStreaming({} bytes)", b.len()),
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::NotWriteable(_) => "the connection's write queue is full",
            WriteError::NotStreaming(_) => "no response body is being written",
        })
    }
}

impl std::error::Error for WriteError {}

// ------------------------------------------------------------------ the connection's state

/// A request waiting for its turn, or a refusal to send once the exchanges before it are done.
enum Queued {
    Request(u64, Request),
    Refuse(Refusal),
}

/// Where the parser is in the input.
enum Reading {
    /// Looking for the next request head.
    Head,
    /// Inside the body of request `exchange` (which may not be current yet).
    Body(u64, BodyReader),
    /// A refusal was queued: nothing more is parsed.
    Stopped,
}

/// The request body of the current exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqBody {
    /// Pieces go to the handler.
    Reading,
    /// The response is finished; the rest is discarded (`n` bytes so far).
    Draining(u64),
    /// Ended.
    Done,
}

/// The response of the current exchange.
enum Resp {
    NotStarted,
    Streaming {
        /// The head, until the first body bytes (or the end) go out with it.
        head: Option<Bytes>,
        writer: BodyWriter,
    },
    Done,
}

struct Exchange {
    seq: u64,
    method: Method,
    version: Version,
    /// Whether the connection may stay open after this exchange.
    keep_alive: bool,
    expect_continue: bool,
    continued: bool,
    body: ReqBody,
    body_seen: u64,
    response: Resp,
}

struct State {
    opts: ServerOptions,
    parser: RequestParser,
    idle_since: Option<Instant>,
    timer: Option<(Instant, Timer)>,
    reading: Reading,
    queue: VecDeque<Queued>,
    current: Option<Exchange>,
    next_seq: u64,
    outbox: Outbox,
    /// The handler paused body delivery.
    paused: bool,
    /// The parser stopped with input it cannot use yet: reading is muted.
    stalled: bool,
    /// A close was asked for (after the current response, or now).
    closing: bool,
}

/// Cuts request heads off the received bytes; the body readers take theirs from `input`.
#[derive(Default)]
pub(crate) struct RequestParser {
    /// Received bytes not parsed yet (after the head, body, or the next requests).
    pub(crate) input: Bytes,
    /// A head that arrived in several pieces, collected until complete.
    head_buf: BytesMut,
    /// Whether `head_buf` holds a complete first line (checked once, early, for a quick 400).
    first_line: bool,
    /// When the first byte of the head being collected arrived.
    pub(crate) head_started: Option<Instant>,
}

impl RequestParser {
    /// Appends received bytes (without copying when nothing is left over).
    pub(crate) fn push(&mut self, data: Bytes) {
        if self.input.is_empty() {
            self.input = data;
        } else {
            let mut joined = BytesMut::with_capacity(self.input.len() + data.len());
            joined.extend_from_slice(&self.input);
            joined.extend_from_slice(&data);
            self.input = joined.freeze();
        }
    }

    /// Drops everything buffered.
    pub(crate) fn clear(&mut self) {
        self.input = Bytes::new();
        self.head_buf = BytesMut::new();
        self.head_started = None;
    }

    /// The next complete request head from the input, if there is one.
    pub(crate) fn next_head(&mut self, limits: HeadLimits) -> Result<Option<Request>, Refusal> {
        let st = self;
        if st.head_buf.is_empty() {
            if st.input.is_empty() {
                return Ok(None);
            }
            // Leading empty lines before a request are allowed (RFC 9112, 2.2).
            while st.input.starts_with(b"\r\n") {
                st.input.advance(2);
            }
            if st.input.is_empty() {
                return Ok(None);
            }
            match head::parse_request(&st.input, limits)? {
                Parsed::Complete(request, len) => {
                    st.input.advance(len);
                    st.head_started = None;
                    return Ok(Some(request));
                }
                Parsed::Partial => {
                    st.first_line = st.input.contains(&b'\n');
                    st.head_buf.extend_from_slice(&st.input);
                    st.input.clear();
                    st.head_started.get_or_insert_with(Instant::now);
                    return Ok(None);
                }
            }
        }
        if st.input.is_empty() {
            return Ok(None);
        }
        let old = st.head_buf.len();
        st.head_buf.extend_from_slice(&st.input);
        st.input.clear();
        // Re-parse only when a line ended (the head may be complete, or a finished line may be
        // malformed): a head trickling in a byte at a time costs O(head) per line, not per
        // byte. A malformed line is refused once it ends, or at the head timeout.
        let line_ended = st.head_buf[old..].contains(&b'\n');
        st.first_line |= line_ended;
        if !line_ended {
            if st.head_buf.len() > limits.max_head
                || (!st.first_line && st.head_buf.len() > limits.max_target + 64)
            {
                // Over a limit already: get the exact refusal.
                let copy = Bytes::copy_from_slice(&st.head_buf[..]);
                head::parse_request(&copy, limits)?;
                return Err(Refusal::new(431, "request head too large"));
            }
            return Ok(None);
        }
        let len = {
            let mut fields = [httparse::EMPTY_HEADER; head::MAX_HEADERS];
            let mut probe = httparse::Request::new(&mut fields);
            match probe.parse(&st.head_buf) {
                Ok(httparse::Status::Complete(len)) => Some(len),
                _ => None,
            }
        };
        match len {
            Some(len) => {
                let head = st.head_buf.split_to(len).freeze();
                st.input = st.head_buf.split().freeze();
                st.head_buf = BytesMut::new();
                st.first_line = false;
                st.head_started = None;
                match head::parse_request(&head, limits)? {
                    Parsed::Complete(request, _) => Ok(Some(request)),
                    Parsed::Partial => Err(Refusal::new(400, "malformed request head")),
                }
            }
            None => {
                let copy = Bytes::copy_from_slice(&st.head_buf[..]);
                match head::parse_request(&copy, limits)? {
                    Parsed::Complete(..) => Err(Refusal::new(400, "malformed request head")),
                    Parsed::Partial => Ok(None),
                }
            }
        }
    }
}

/// An HTTP/1.1 server connection running the handler `H`: the [`ConnectionHandler`] a listener
/// spawns per accepted client (see [`Serve`] or [`serve`]).
pub struct HttpConnection<H: RequestHandler> {
    handler: H,
    st: State,
}

impl<H: RequestHandler> HttpConnection<H> {
    /// A connection that will run `handler` with `opts`.
    pub fn new(handler: H, opts: ServerOptions) -> Self {
        HttpConnection {
            handler,
            st: State {
                opts,
                parser: RequestParser::default(),
                idle_since: None,
                timer: None,
                reading: Reading::Head,
                queue: VecDeque::new(),
                current: None,
                next_seq: 0,
                outbox: Outbox::default(),
                paused: false,
                stalled: false,
                closing: false,
            },
        }
    }
}

type TcpConn<'x, 'a, 'c, H> = &'x mut Conn<'a, 'c, HttpConnection<H>>;

/// The current exchange as the handler sees it: respond, write the body, read flow control,
/// and the connection actor's powers (its address, timers, spawning).
///
/// Handlers name it `Http<Self>` (the lifetimes are elided).
pub struct Http<'x, 'a, 'c, H: RequestHandler> {
    conn: TcpConn<'x, 'a, 'c, H>,
    st: &'x mut State,
}

impl<H: RequestHandler> fmt::Debug for Http<'_, '_, '_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("exchange", &self.st.current.as_ref().map(|e| e.seq))
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl<H: RequestHandler> Http<'_, '_, '_, H> {
    /// Starts the response to the current request with `head`. The head goes out with the first
    /// body bytes ([`write`](Http::write)) or at [`finish`](Http::finish). Returns `false` (and
    /// does nothing) if there is no request awaiting a response.
    ///
    /// The body is framed from the head: [`Response::length`] for a known size, chunked
    /// otherwise (to an HTTP/1.0 client: delimited by closing the connection). The answer to
    /// `HEAD`, and 204 and 304, carry no body: writes are dropped.
    pub fn respond(&mut self, response: Response) -> bool {
        let st = &mut *self.st;
        let Some(ex) = st.current.as_mut() else {
            return false;
        };
        if !matches!(ex.response, Resp::NotStarted) || st.closing {
            return false;
        }
        let framing = if response.bodiless_status() {
            Framing::None
        } else {
            match (response.known_length(), ex.version) {
                (Some(n), _) => Framing::Length(n),
                (None, Version::Http11) => Framing::Chunked,
                (None, Version::Http10) => Framing::UntilClose,
            }
        };
        if response.wants_close() || framing == Framing::UntilClose {
            ex.keep_alive = false;
        }
        // A body the client was told to wait for (100-continue) and never sent cannot be
        // drained: close after the response instead of waiting for it.
        if ex.expect_continue && !ex.continued && ex.body != ReqBody::Done {
            ex.keep_alive = false;
        }
        let connection = match (ex.keep_alive, ex.version) {
            (false, _) => ConnHeader::Close,
            (true, Version::Http10) => ConnHeader::KeepAlive,
            (true, Version::Http11) => ConnHeader::Nothing,
        };
        let mut buf = BytesMut::new();
        response.write_head(&mut buf, framing, connection);
        let body_framing = if ex.method == Method::Head {
            Framing::None
        } else {
            framing
        };
        ex.response = Resp::Streaming {
            head: Some(buf.freeze()),
            writer: BodyWriter::new(body_framing),
        };
        true
    }

    /// Sends a whole response: `response` with the length of `body`, then `body`. Never
    /// refused for a full write queue (the bytes wait in order), so use it for bodies of
    /// bounded size; stream larger ones with [`write`](Http::write) or a [`BodySink`].
    /// Returns `false` if there is no request awaiting a response.
    pub fn send(&mut self, response: Response, body: impl Into<Bytes>) -> bool {
        let body = body.into();
        if !self.respond(response.length(body.len() as u64)) {
            return false;
        }
        let st = &mut *self.st;
        let Some(Exchange {
            response: Resp::Streaming { head, writer },
            ..
        }) = st.current.as_mut()
        else {
            return false;
        };
        let mut head = head.take().unwrap_or_default();
        let mut pieces = Vec::with_capacity(2);
        let _ = writer.piece(body, |b| pieces.push(b));
        if let [piece] = pieces.as_slice() {
            if piece.len() <= 16 * 1024 {
                // One buffer, one queue entry: the common small answer costs one write.
                let mut joined = BytesMut::with_capacity(head.len() + piece.len());
                joined.extend_from_slice(&head);
                joined.extend_from_slice(piece);
                head = joined.freeze();
                pieces.clear();
            }
        }
        st.outbox.push(self.conn, head);
        for piece in pieces {
            st.outbox.push(self.conn, piece);
        }
        self.finish_inner(None);
        true
    }

    /// Writes a piece of the response body (framed as the head said), with the head if it has
    /// not gone out yet. Refused while the connection is not writeable: keep the piece and
    /// write it from [`RequestHandler::writeable`].
    ///
    /// Writing more than a [`Response::length`] drops the excess and closes the connection
    /// after the response.
    pub fn write(&mut self, piece: impl Into<Bytes>) -> Result<(), WriteError> {
        let piece = piece.into();
        if !self.is_streaming() {
            return Err(WriteError::NotStreaming(piece));
        }
        if !self.is_writeable() {
            return Err(WriteError::NotWriteable(piece));
        }
        self.st.write_piece(self.conn, piece);
        Ok(())
    }

    /// Ends the response body (the last chunk, for chunked framing). Ending a body shorter than
    /// its [`Response::length`] closes the connection (the client sees it cut short).
    pub fn finish(&mut self) {
        self.finish_inner(None);
    }

    /// Ends a chunked response body with trailer fields (dropped under other framings).
    pub fn finish_with_trailers(&mut self, trailers: Headers) {
        self.finish_inner(Some(trailers));
    }

    fn finish_inner(&mut self, trailers: Option<Headers>) {
        self.st.finish_response(self.conn, trailers.as_ref());
    }

    /// An address another actor can write the response body through (see [`BodySink`]).
    /// Call after [`respond`](Http::respond); pieces sent for an exchange that is over are
    /// dropped.
    pub fn body_sink(&self) -> BodySink {
        let exchange = self.st.current.as_ref().map_or(u64::MAX, |e| e.seq);
        BodySink {
            to: self.conn.ctx.myself().recipient(),
            exchange,
        }
    }

    /// Whether a response body is being written (responded, not finished).
    pub fn is_streaming(&self) -> bool {
        matches!(
            self.st.current.as_ref().map(|e| &e.response),
            Some(Resp::Streaming { .. })
        ) && !self.st.closing
    }

    /// Whether [`write`](Http::write) would take a piece now.
    pub fn is_writeable(&self) -> bool {
        self.conn.is_writeable() && self.st.outbox.is_empty()
    }

    /// Stops delivering request body pieces (and reading the socket) until
    /// [`resume`](Http::resume): the client is slowed down by TCP.
    pub fn pause(&mut self) {
        self.st.paused = true;
        self.conn.mute();
    }

    /// Resumes body delivery after [`pause`](Http::pause).
    pub fn resume(&mut self) {
        self.st.paused = false;
        if !self.st.stalled {
            self.conn.unmute();
        }
    }

    /// Closes the connection once the current response is finished (at once if there is
    /// none); the response gets `Connection: close` if its head has not gone out yet.
    pub fn close(&mut self) {
        match self.st.current.as_mut() {
            Some(ex) if !matches!(ex.response, Resp::Done) => ex.keep_alive = false,
            _ => {
                self.st.closing = true;
                self.conn.close();
            }
        }
    }

    /// Aborts the connection at once (the client sees a reset).
    pub fn abort(&mut self) {
        self.st.closing = true;
        self.conn.abort();
    }

    /// The client's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn.peer_addr()
    }

    /// This connection's address, to hand to other actors.
    pub fn myself(&self) -> HttpRef<H::Msg> {
        HttpRef {
            conn: self.conn.myself(),
        }
    }

    /// Delivers `msg` to [`RequestHandler::message`] after `delay` (see
    /// [`Conn::after`](crate::Conn::after)).
    pub fn after(&self, delay: Duration, msg: H::Msg) -> Timer {
        self.conn.after(delay, HttpMsg(Inner::User(msg)))
    }

    /// Spawns an actor on this runtime.
    pub fn spawn<B: Actor>(&self, actor: B) -> ActorRef<B> {
        self.conn.spawn(actor)
    }

    /// A [`ReplyTo`] whose answer arrives at [`RequestHandler::message`] as `wrap(answer)`
    /// (see [`Conn::reply_to`](crate::Conn::reply_to)).
    pub fn reply_to<R: Send + 'static>(
        &self,
        wrap: impl FnOnce(R) -> H::Msg + Send + 'static,
    ) -> ReplyTo<R> {
        self.conn.reply_to(move |r| HttpMsg(Inner::User(wrap(r))))
    }

    /// Bytes queued for the client and not yet taken by the kernel (the TCP write queue and
    /// pieces held back while it was full).
    pub fn queued(&self) -> usize {
        self.conn.queued() + self.st.outbox.held()
    }
}

impl State {
    fn limits(&self) -> HeadLimits {
        HeadLimits {
            max_head: self.opts.max_head,
            max_target: self.opts.max_target,
        }
    }

    fn write_piece<H: RequestHandler>(&mut self, conn: TcpConn<'_, '_, '_, H>, piece: Bytes) {
        let Some(ex) = self.current.as_mut() else {
            return;
        };
        let Resp::Streaming { head, writer } = &mut ex.response else {
            return;
        };
        if let Some(head) = head.take() {
            self.outbox.push(conn, head);
        }
        let outbox = &mut self.outbox;
        if writer.piece(piece, |b| outbox.push(conn, b)) == Err(Mismatch::TooLong) {
            ex.keep_alive = false;
        }
    }

    fn finish_response<H: RequestHandler>(
        &mut self,
        conn: TcpConn<'_, '_, '_, H>,
        trailers: Option<&Headers>,
    ) {
        let Some(ex) = self.current.as_mut() else {
            return;
        };
        let Resp::Streaming { head, writer } = &mut ex.response else {
            return;
        };
        if let Some(head) = head.take() {
            self.outbox.push(conn, head);
        }
        let outbox = &mut self.outbox;
        if writer.finish(trailers, |b| outbox.push(conn, b)) == Err(Mismatch::TooShort) {
            ex.keep_alive = false;
        }
        ex.response = Resp::Done;
        if ex.body == ReqBody::Reading {
            ex.body = ReqBody::Draining(0);
            let left = match &self.reading {
                Reading::Body(seq, BodyReader::Length(left)) if *seq == ex.seq => Some(*left),
                _ => None,
            };
            if left.is_some_and(|l| l > self.opts.drain_limit)
                || (ex.expect_continue && !ex.continued)
            {
                ex.keep_alive = false;
                ex.body = ReqBody::Done;
            }
        }
    }
}

impl<H: RequestHandler> HttpConnection<H> {
    fn with_http<R>(
        &mut self,
        conn: TcpConn<'_, '_, '_, H>,
        f: impl FnOnce(&mut H, &mut Http<'_, '_, '_, H>) -> R,
    ) -> R {
        let mut http = Http {
            conn,
            st: &mut self.st,
        };
        f(&mut self.handler, &mut http)
    }

    /// Parses and dispatches as far as the input and the state allow, then sets read muting
    /// and the timer from where it stopped.
    fn pump(&mut self, conn: TcpConn<'_, '_, '_, H>) {
        for _ in 0..1024 {
            if !self.step(conn) {
                break;
            }
        }
        self.settle(conn);
    }

    /// One step of the server; `false` when nothing more can happen now.
    fn step(&mut self, conn: TcpConn<'_, '_, '_, H>) -> bool {
        if self.st.closing {
            return false;
        }
        if let Some(ex) = &self.st.current {
            if matches!(ex.response, Resp::Done) && ex.body == ReqBody::Done {
                let keep_alive = ex.keep_alive;
                self.st.current = None;
                if !keep_alive {
                    self.st.closing = true;
                    conn.close();
                    return false;
                }
            }
        }
        if self.st.current.is_none() {
            if let Some(next) = self.st.queue.pop_front() {
                match next {
                    Queued::Request(seq, request) => self.start(conn, seq, request),
                    Queued::Refuse(refusal) => self.refuse(conn, refusal),
                }
                return true;
            }
        }
        self.st.stalled = false;
        match &mut self.st.reading {
            Reading::Stopped => {
                self.st.parser.input.clear();
                false
            }
            Reading::Head => {
                if self.st.current.is_some() && self.st.queue.len() >= self.st.opts.pipeline_depth {
                    self.st.stalled = !self.st.parser.input.is_empty();
                    return false;
                }
                let limits = self.st.limits();
                match self.st.parser.next_head(limits) {
                    Ok(None) => false,
                    Ok(Some(request)) => {
                        let seq = self.st.next_seq;
                        self.st.next_seq += 1;
                        if request.body_length() != BodyLength::Empty {
                            let max_trailers = self.st.opts.max_head;
                            let reader = BodyReader::new(request.body_length(), max_trailers);
                            self.st.reading = Reading::Body(seq, reader);
                        }
                        self.st.queue.push_back(Queued::Request(seq, request));
                        true
                    }
                    Err(refusal) => {
                        self.st.reading = Reading::Stopped;
                        self.st.queue.push_back(Queued::Refuse(refusal));
                        true
                    }
                }
            }
            Reading::Body(seq, reader) => {
                let current = self.st.current.as_ref().map(|e| e.seq);
                if current != Some(*seq) {
                    // The body of a request still waiting its turn: hold it (muted).
                    self.st.stalled = !self.st.parser.input.is_empty();
                    return false;
                }
                if self.st.paused {
                    return false;
                }
                match reader.next(&mut self.st.parser.input) {
                    Ok(None) => false,
                    Ok(Some(Piece::Data(piece))) => {
                        self.body_piece(conn, piece);
                        true
                    }
                    Ok(Some(Piece::End(trailers))) => {
                        self.st.reading = Reading::Head;
                        self.body_end(conn, trailers);
                        true
                    }
                    Err(refusal) => {
                        self.st.reading = Reading::Stopped;
                        self.body_failed(conn, refusal);
                        true
                    }
                }
            }
        }
    }

    fn start(&mut self, conn: TcpConn<'_, '_, '_, H>, seq: u64, request: Request) {
        let body = if request.body_length() == BodyLength::Empty {
            ReqBody::Done
        } else {
            ReqBody::Reading
        };
        if let (Some(max), BodyLength::Known(n)) = (self.st.opts.max_body, request.body_length()) {
            if n > max {
                self.st.reading = Reading::Stopped;
                return self.refuse(conn, Refusal::new(413, "request body too large"));
            }
        }
        self.st.current = Some(Exchange {
            seq,
            method: request.method().clone(),
            version: request.version(),
            keep_alive: request.keep_alive(),
            expect_continue: request.expects_continue(),
            continued: false,
            body,
            body_seen: 0,
            response: Resp::NotStarted,
        });
        self.st.idle_since = None;
        self.with_http(conn, |h, http| h.request(http, request));
        let st = &mut self.st;
        if let Some(ex) = st.current.as_mut() {
            if ex.seq == seq
                && ex.expect_continue
                && ex.body == ReqBody::Reading
                && matches!(ex.response, Resp::NotStarted)
            {
                ex.continued = true;
                st.outbox
                    .push(conn, Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
            }
            if ex.seq == seq && body == ReqBody::Done {
                self.with_http(conn, |h, http| h.body_end(http, Headers::new()));
            }
        }
    }

    fn body_piece(&mut self, conn: TcpConn<'_, '_, '_, H>, piece: Bytes) {
        let max_body = self.st.opts.max_body;
        let drain_limit = self.st.opts.drain_limit;
        let Some(ex) = self.st.current.as_mut() else {
            return;
        };
        ex.body_seen += piece.len() as u64;
        if max_body.is_some_and(|max| ex.body_seen > max) {
            self.st.reading = Reading::Stopped;
            return self.body_failed(conn, Refusal::new(413, "request body too large"));
        }
        match ex.body {
            ReqBody::Reading => self.with_http(conn, |h, http| h.body(http, piece)),
            ReqBody::Draining(n) => {
                let n = n + piece.len() as u64;
                if n > drain_limit {
                    ex.keep_alive = false;
                    ex.body = ReqBody::Done;
                    self.st.reading = Reading::Stopped;
                } else {
                    ex.body = ReqBody::Draining(n);
                }
            }
            ReqBody::Done => {}
        }
    }

    fn body_end(&mut self, conn: TcpConn<'_, '_, '_, H>, trailers: Headers) {
        let Some(ex) = self.st.current.as_mut() else {
            return;
        };
        let was = std::mem::replace(&mut ex.body, ReqBody::Done);
        if was == ReqBody::Reading {
            self.with_http(conn, |h, http| h.body_end(http, trailers));
        }
    }

    /// The current request's body broke a rule: answer with the refusal if no response has
    /// started, otherwise the response cannot be trusted any more: abort.
    fn body_failed(&mut self, conn: TcpConn<'_, '_, '_, H>, refusal: Refusal) {
        let started = self
            .st
            .current
            .as_ref()
            .is_some_and(|ex| !matches!(ex.response, Resp::NotStarted));
        self.st.current = None;
        if started {
            self.handler.refused(refusal);
            self.st.closing = true;
            conn.abort();
        } else {
            self.refuse(conn, refusal);
        }
    }

    /// Answers with `refusal` and closes.
    fn refuse(&mut self, conn: TcpConn<'_, '_, '_, H>, refusal: Refusal) {
        let body = format!("{refusal}\n");
        let mut buf = BytesMut::new();
        Response::new(refusal.status)
            .header("content-type", "text/plain")
            .write_head(
                &mut buf,
                Framing::Length(body.len() as u64),
                ConnHeader::Close,
            );
        buf.extend_from_slice(body.as_bytes());
        self.st.outbox.push(conn, buf.freeze());
        self.st.closing = true;
        self.st.current = None;
        self.st.queue.clear();
        self.st.reading = Reading::Stopped;
        self.st.parser.clear();
        self.handler.refused(refusal);
        conn.close();
    }

    /// After a pump: mute reading while the parser is stalled or the handler paused, and keep
    /// the head and keep-alive timer armed while waiting for a request.
    fn settle(&mut self, conn: TcpConn<'_, '_, '_, H>) {
        let st = &mut self.st;
        if st.closing {
            return;
        }
        if st.stalled || st.paused {
            conn.mute();
        } else {
            conn.unmute();
        }
        let waiting = st.current.is_none() && st.queue.is_empty();
        if !waiting {
            st.idle_since = None;
            return;
        }
        let now = Instant::now();
        let due = match st.parser.head_started {
            Some(started) => started + st.opts.head_timeout,
            None => *st.idle_since.get_or_insert(now) + st.opts.keep_alive_timeout,
        };
        if st.timer.as_ref().is_some_and(|(at, _)| *at <= due) {
            return;
        }
        if let Some((_, old)) = st.timer.take() {
            old.cancel();
        }
        let delay = due.saturating_duration_since(now);
        let timer = conn.after(delay, HttpMsg(Inner::Tick));
        st.timer = Some((due, timer));
    }

    fn tick(&mut self, conn: TcpConn<'_, '_, '_, H>) {
        let now = Instant::now();
        match &self.st.timer {
            Some((due, _)) if *due <= now => self.st.timer = None,
            _ => return,
        }
        if self.st.closing || self.st.current.is_some() || !self.st.queue.is_empty() {
            return;
        }
        if let Some(started) = self.st.parser.head_started {
            if now >= started + self.st.opts.head_timeout {
                return self.refuse(conn, Refusal::new(408, "request head not complete in time"));
            }
        } else if let Some(idle) = self.st.idle_since {
            if now >= idle + self.st.opts.keep_alive_timeout {
                self.st.closing = true;
                conn.close();
                return;
            }
        }
        self.settle(conn);
    }

    fn sink(&mut self, conn: TcpConn<'_, '_, '_, H>, msg: SinkMsg) {
        let current = self.st.current.as_ref().map(|e| e.seq);
        if current != Some(msg.exchange) || self.st.closing {
            return;
        }
        match msg.what {
            SinkWhat::Data(piece) => self.st.write_piece(conn, piece),
            SinkWhat::Finish(trailers) => {
                self.st.finish_response(conn, trailers.as_ref());
                self.pump(conn);
            }
            SinkWhat::Abort => {
                self.st.closing = true;
                conn.abort();
            }
        }
    }
}

impl<H: RequestHandler> ConnectionHandler for HttpConnection<H> {
    type Msg = HttpMsg<H::Msg>;

    fn connected(&mut self, conn: &mut Conn<Self>) {
        self.settle(conn);
    }

    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        self.st.parser.push(data);
        self.pump(conn);
        Flow::Continue
    }

    fn message(&mut self, conn: &mut Conn<Self>, HttpMsg(msg): HttpMsg<H::Msg>) {
        match msg {
            Inner::User(msg) => {
                self.with_http(conn, |h, http| h.message(http, msg));
                self.pump(conn);
            }
            Inner::Sink(msg) => self.sink(conn, msg),
            Inner::Tick => self.tick(conn),
        }
    }

    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        if self.st.outbox.flush(conn) && conn.is_writeable() {
            let streaming = matches!(
                self.st.current.as_ref().map(|e| &e.response),
                Some(Resp::Streaming { .. })
            );
            if streaming {
                self.with_http(conn, |h, http| h.writeable(http));
            }
        }
        self.pump(conn);
    }

    fn closed(&mut self, reason: CloseReason) {
        if let Some((_, timer)) = self.st.timer.take() {
            timer.cancel();
        }
        self.handler.closed(reason);
    }
}

// ------------------------------------------------------------------ listening

/// A [`ListenNotify`] that gives each accepted client an [`HttpConnection`] running the handler
/// `make(peer)` returns. Bind it with [`TcpListener::bind`], or use [`serve`].
pub struct Serve<F> {
    make: F,
    opts: ServerOptions,
    listening: Option<OnListening>,
}

/// What [`Serve::on_listening`] calls.
type OnListening = Box<dyn FnMut(Result<SocketAddr, BindError>) + Send>;

impl<F> Serve<F> {
    /// Serves with handlers from `make` and the default [`ServerOptions`].
    pub fn new(make: F) -> Self {
        Serve {
            make,
            opts: ServerOptions::default(),
            listening: None,
        }
    }

    /// Uses `opts` for every connection.
    pub fn options(mut self, opts: ServerOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Calls `f` with the bound address (or why binding failed).
    pub fn on_listening(
        mut self,
        f: impl FnMut(Result<SocketAddr, BindError>) + Send + 'static,
    ) -> Self {
        self.listening = Some(Box::new(f));
        self
    }
}

impl<F, H> ListenNotify for Serve<F>
where
    F: FnMut(SocketAddr) -> H + Send + 'static,
    H: RequestHandler,
{
    type Handler = HttpConnection<H>;

    fn listening(&mut self, addr: SocketAddr) {
        if let Some(f) = self.listening.as_mut() {
            f(Ok(addr));
        }
    }

    fn not_listening(&mut self, err: BindError) {
        if let Some(f) = self.listening.as_mut() {
            f(Err(err));
        }
    }

    fn connected(&mut self, peer: SocketAddr) -> HttpConnection<H> {
        HttpConnection::new((self.make)(peer), self.opts.clone())
    }
}

/// Binds an HTTP server on `addr` and waits (up to 10 s) until it listens; returns the
/// listener and the bound address (port 0 picks a free one). Blocks the calling thread, so
/// call it from `main` or a test, not from an actor (use [`Serve`] with
/// [`TcpListener::bind`] there).
///
/// ```no_run
/// use rein_net::http::{serve, Collect, Response, ServerOptions};
/// use rein_net::{Reactor, TcpListenAuth};
///
/// let (rt, auth) = rein::Runtime::builder().build_with_auth().unwrap();
/// let reactor = Reactor::start(&rt.handle()).unwrap();
/// let hello = |_peer| Collect::new(1024, |_req, _body| (Response::new(200), "Hello, World!".into()));
/// let addr = "127.0.0.1:8080".parse().unwrap();
/// let (_listener, bound) =
///     serve(&reactor, &TcpListenAuth::new(&auth), addr, ServerOptions::default(), hello).unwrap();
/// println!("listening on {bound}");
/// rt.wait();
/// ```
pub fn serve<F, H>(
    reactor: &Reactor,
    auth: &TcpListenAuth,
    addr: SocketAddr,
    opts: ServerOptions,
    make: F,
) -> Result<(ListenerRef, SocketAddr), BindError>
where
    F: FnMut(SocketAddr) -> H + Send + 'static,
    H: RequestHandler,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let listen = opts.listen.clone();
    let notify = Serve::new(make).options(opts).on_listening(move |r| {
        let _ = tx.send(r);
    });
    let listener = TcpListener::bind(reactor, auth, addr, notify, listen);
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(bound)) => Ok((listener, bound)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BindError::Io(
            addr,
            std::io::Error::new(std::io::ErrorKind::TimedOut, "the listener did not start"),
        )),
    }
}

// ------------------------------------------------------------------ small bodies

/// Collects a body of at most `limit` bytes into one [`Bytes`]: the small-body convenience
/// above the streaming level. A body that arrives in one piece is kept as it is (no copy).
///
/// ```
/// use rein_net::http::BodyCollector;
/// use rein_net::Bytes;
/// let mut body = BodyCollector::new(8);
/// body.push(Bytes::from_static(b"hello")).unwrap();
/// assert!(body.push(Bytes::from_static(b" world")).is_err(), "11 bytes > 8");
/// let mut body = BodyCollector::new(64);
/// body.push(Bytes::from_static(b"hello")).unwrap();
/// body.push(Bytes::from_static(b" world")).unwrap();
/// assert_eq!(body.take(), "hello world");
/// ```
#[derive(Debug, Default)]
pub struct BodyCollector {
    limit: usize,
    first: Option<Bytes>,
    joined: BytesMut,
}

/// A body passed its collector's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the body is larger than the limit")
    }
}

impl std::error::Error for TooLarge {}

impl BodyCollector {
    /// A collector of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        BodyCollector {
            limit,
            first: None,
            joined: BytesMut::new(),
        }
    }

    /// Bytes collected so far.
    pub fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a piece; refused (and nothing kept of it) past the limit.
    pub fn push(&mut self, piece: Bytes) -> Result<(), TooLarge> {
        if self.len() + piece.len() > self.limit {
            return Err(TooLarge);
        }
        match self.first.take() {
            None if self.joined.is_empty() => self.first = Some(piece),
            first => {
                if let Some(first) = first {
                    self.joined.extend_from_slice(&first);
                }
                self.joined.extend_from_slice(&piece);
            }
        }
        Ok(())
    }

    /// The body collected, leaving the collector empty.
    pub fn take(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => self.joined.split().freeze(),
        }
    }
}

/// A [`RequestHandler`] for small requests: collects each body (up to `limit` bytes; `413`
/// past it) and answers with `f(&request, body)`, a response head and its whole body.
///
/// ```
/// use rein_net::http::{Collect, Response};
/// let hello = Collect::new(1024, |req, _body| {
///     let text = format!("Hello from {}\n", req.path());
///     (Response::new(200).header("content-type", "text/plain"), text.into())
/// });
/// # let _ = hello;
/// ```
pub struct Collect<F> {
    f: F,
    body: BodyCollector,
    request: Option<Request>,
}

impl<F> Collect<F>
where
    F: FnMut(&Request, Bytes) -> (Response, Bytes) + Send + 'static,
{
    /// Collects bodies of up to `limit` bytes and answers with `f`.
    pub fn new(limit: usize, f: F) -> Self {
        Collect {
            f,
            body: BodyCollector::new(limit),
            request: None,
        }
    }
}

impl<F> RequestHandler for Collect<F>
where
    F: FnMut(&Request, Bytes) -> (Response, Bytes) + Send + 'static,
{
    type Msg = ();

    fn request(&mut self, http: &mut Http<Self>, request: Request) {
        if let BodyLength::Known(n) = request.body_length() {
            if n > self.body.limit as u64 {
                http.send(
                    Response::new(413).header("connection", "close"),
                    "request body too large\n",
                );
                return;
            }
        }
        self.body = BodyCollector::new(self.body.limit);
        self.request = Some(request);
    }

    fn body(&mut self, http: &mut Http<Self>, piece: Bytes) {
        if self.request.is_some() && self.body.push(piece).is_err() {
            self.request = None;
            http.send(
                Response::new(413).header("connection", "close"),
                "request body too large\n",
            );
        }
    }

    fn body_end(&mut self, http: &mut Http<Self>, _trailers: Headers) {
        if let Some(request) = self.request.take() {
            let (response, body) = (self.f)(&request, self.body.take());
            http.send(response, body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::chunked::tests::encode;
    use crate::http::testing::Rng;

    /// What a request parsed to: method, target, fields, body.
    type Parsed = (String, String, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>);

    const LIMITS: HeadLimits = HeadLimits {
        max_head: 64 * 1024,
        max_target: 8 * 1024,
    };

    /// Runs `input`, cut at `cuts`, through the server's parser and body readers: the requests
    /// completed, and the refusal that stopped it, if any.
    fn drive(input: &[u8], cuts: &[usize]) -> (Vec<Parsed>, Option<u16>) {
        let mut parser = RequestParser::default();
        let mut done = Vec::new();
        let mut reading: Option<(Request, BodyReader, Vec<u8>)> = None;
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
        bounds.sort_unstable();
        bounds.push(input.len());
        let mut from = 0;
        let finished = |req: &Request, body: Vec<u8>| -> Parsed {
            let fields = req
                .headers()
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            (
                req.method().to_string(),
                req.target().to_owned(),
                fields,
                body,
            )
        };
        for to in bounds {
            parser.push(Bytes::copy_from_slice(&input[from..to]));
            from = to;
            loop {
                if let Some((_, reader, body)) = reading.as_mut() {
                    match reader.next(&mut parser.input) {
                        Ok(None) => break,
                        Ok(Some(Piece::Data(d))) => body.extend_from_slice(&d),
                        Ok(Some(Piece::End(_))) => {
                            let (req, _, body) = reading.take().expect("reading");
                            done.push(finished(&req, body));
                        }
                        Err(r) => return (done, Some(r.status)),
                    }
                } else {
                    match parser.next_head(LIMITS) {
                        Ok(None) => break,
                        Ok(Some(req)) if req.body_length() == BodyLength::Empty => {
                            done.push(finished(&req, Vec::new()));
                        }
                        Ok(Some(req)) => {
                            let reader = BodyReader::new(req.body_length(), LIMITS.max_head);
                            reading = Some((req, reader, Vec::new()));
                        }
                        Err(r) => return (done, Some(r.status)),
                    }
                }
            }
        }
        (done, None)
    }

    /// A random valid request and what it must parse to.
    fn request(rng: &mut Rng) -> (Vec<u8>, Parsed) {
        const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"];
        const PATH: &[u8] = b"abcxyz0189/._-~%";
        let method = METHODS[rng.below(7) as usize];
        let mut target = String::from("/");
        for _ in 0..rng.below(30) {
            target.push(PATH[rng.below(PATH.len() as u64) as usize] as char);
        }
        if rng.below(3) == 0 {
            target.push_str("?k=v&x");
        }
        let http10 = rng.below(8) == 0;
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if !http10 {
            fields.push((b"Host".to_vec(), b"example.test".to_vec()));
        }
        for i in 0..rng.below(6) {
            let value: Vec<u8> = (0..rng.below(20))
                .map(|_| b'!' + rng.below(94) as u8)
                .collect();
            fields.push((format!("X-Field-{i}").into_bytes(), value));
        }
        let len = rng.below(200) as usize;
        let body = rng.bytes(len);
        let mut wire_body = Vec::new();
        match rng.below(3) {
            0 if len > 0 => {
                fields.push((b"Content-Length".to_vec(), len.to_string().into_bytes()));
                wire_body = body.clone();
            }
            1 if !http10 => {
                fields.push((b"Transfer-Encoding".to_vec(), b"chunked".to_vec()));
                wire_body = encode(rng, &body);
            }
            _ => {}
        }
        let body = if wire_body.is_empty() {
            Vec::new()
        } else {
            body
        };
        let mut wire = format!(
            "{method} {target} HTTP/1.{}\r\n",
            if http10 { 0 } else { 1 }
        )
        .into_bytes();
        for (n, v) in &fields {
            wire.extend_from_slice(n);
            wire.extend_from_slice(b": ");
            wire.extend_from_slice(v);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&wire_body);
        (wire, (method.to_owned(), target, fields, body))
    }

    fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
        (0..rng.below(8))
            .map(|_| rng.below(len as u64 + 1) as usize)
            .collect()
    }

    #[test]
    fn randomised_requests_parse_exactly_or_are_refused_with_a_4xx() {
        let mut rng = Rng::from_env("request parser");
        let seed = rng.seed();
        let (mut accepted, mut refused) = (0, 0);
        for case in 0..3000 {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let (wire, parsed) = request(&mut rng);
                input.extend_from_slice(&wire);
                want.push(parsed);
            }
            let cuts = random_cuts(&mut rng, input.len());
            let (got, refusal) = drive(&input, &cuts);
            assert_eq!(
                refusal,
                None,
                "case {case} (seed {seed}): {:?}",
                String::from_utf8_lossy(&input)
            );
            assert_eq!(got, want, "case {case} (seed {seed}), cuts {cuts:?}");

            // Mutated: no panic; the same answer however the input is cut; a refusal is a 4xx
            // (or 501 for a transfer coding it cannot decode).
            rng.mutate(&mut input);
            let whole = drive(&input, &[]);
            let cuts = random_cuts(&mut rng, input.len());
            let cut = drive(&input, &cuts);
            // A head that arrives in pieces is re-parsed when a line ends, so a malformed line
            // that never ends may still be waiting where the whole input was refused at once.
            let deferred =
                cut.1.is_none() && whole.1.is_some() && cut.0 == whole.0 && !input.ends_with(b"\n");
            assert!(
                whole == cut || deferred,
                "case {case} (seed {seed}): cuts {cuts:?} changed the answer for {:?}: {whole:?} vs {cut:?}",
                String::from_utf8_lossy(&input)
            );
            match whole.1 {
                None => accepted += 1,
                Some(status) => {
                    assert!(
                        (400..500).contains(&status) || status == 501,
                        "case {case} (seed {seed}): status {status}"
                    );
                    refused += 1;
                }
            }
        }
        println!("mutated requests: {accepted} accepted, {refused} refused");
        assert!(
            refused > 500 && accepted > 100,
            "mutations should go both ways"
        );
    }

    #[test]
    fn random_bytes_never_panic_and_are_refused_with_a_4xx() {
        let mut rng = Rng::from_env("request parser, random bytes");
        for _ in 0..3000 {
            let len = rng.below(400) as usize;
            let mut input = rng.bytes(len);
            if rng.below(2) == 0 {
                // Often start like a request so the parser gets past the first bytes.
                let mut start =
                    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                start.truncate(rng.below(start.len() as u64 + 1) as usize);
                input.splice(0..0, start);
            }
            if let (_, Some(status)) = drive(&input, &random_cuts(&mut rng, input.len())) {
                assert!(
                    (400..500).contains(&status) || status == 501,
                    "status {status}"
                );
            }
        }
    }

    #[test]
    fn a_head_trickling_in_byte_by_byte_parses_once_it_ends() {
        let input =
            b"GET /slow HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n";
        let cuts: Vec<usize> = (1..input.len()).collect();
        let (got, refusal) = drive(input, &cuts);
        assert_eq!(refusal, None);
        assert_eq!(
            got.iter().map(|p| p.1.as_str()).collect::<Vec<_>>(),
            ["/slow", "/next"]
        );
    }
}
