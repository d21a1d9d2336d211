//! The client side: [`HttpClient`] runs HTTP/1.1 on one outgoing connection and calls your
//! [`ResponseHandler`] with each response's head, its body in pieces as they arrive, and its
//! end (the streaming RFC's `apply` called many times, then `closed`).
//!
//! Why requests queue in the connection: responses come back in request order, so the client
//! keeps the requests it sent (for `HEAD`, whose response has no body) and those not sent yet.
//! A request is sent when the connection is free: no upload under way, and no response
//! outstanding, unless [`ClientOptions::pipelining`] is on and every request involved is
//! idempotent (a pipelined non-idempotent request could be applied twice on a retry).
//!
//! Uploads stream like server responses: a request of unknown length is chunked, the handler
//! hears [`ResponseHandler::upload`] when its body may be written, and writes pieces with
//! [`Client::write`] (refused while the connection is throttled; resume from
//! [`ResponseHandler::writeable`]) or hands an [`UploadSink`] to another actor, which the
//! runtime mutes while the connection is throttled.

use super::body::{BodyReader, BodyWriter, Outbox};
use super::chunked::Piece;
use super::head::{
    self, BodyLength, ClientRequest, Framing, Headers, Method, Parsed, ResponseHead,
};
use super::server::WriteError;
use crate::connection::msg::{ConnMsg, Msg};
use crate::{
    CloseReason, Conn, ConnRef, ConnectError, ConnectionHandler, ConnectionOptions, Flow, Reactor,
    TcpConnectAuth, TcpConnection,
};
use bytes::{Bytes, BytesMut};
use rein::{Actor, ActorRef, Recipient, Timer};
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// Identifies a request on its connection: the responses' callbacks carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    /// The request's sequence number on its connection (from 0).
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// Client connection settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The largest response head accepted (default 64 KiB); more ends the connection.
    pub max_head: usize,
    /// Send idempotent requests without waiting for the previous response (default off).
    pub pipelining: bool,
    /// The TCP connection's settings.
    pub connection: ConnectionOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_head: 64 * 1024,
            pipelining: false,
            connection: ConnectionOptions::default(),
        }
    }
}

/// Setters, for building options from the defaults: `ClientOptions::default().max_head(..)`. (The
/// struct is `#[non_exhaustive]`, so that new settings are not breaking changes.)
impl ClientOptions {
    /// Sets `max_head` (see the field for its meaning and default).
    pub fn max_head(mut self, value: usize) -> Self {
        self.max_head = value;
        self
    }

    /// Sets `pipelining` (see the field for its meaning and default).
    pub fn pipelining(mut self, value: bool) -> Self {
        self.pipelining = value;
        self
    }

    /// Sets `connection` (see the field for its meaning and default).
    pub fn connection(mut self, value: ConnectionOptions) -> Self {
        self.connection = value;
        self
    }
}

/// The code you write for an HTTP client connection. Each callback runs inside the connection
/// actor, one at a time.
///
/// ```
/// use rein_net::http::{Client, ClientRequest, RequestId, ResponseHandler, ResponseHead};
/// use rein_net::Bytes;
///
/// /// Fetches one page and counts its bytes as they arrive.
/// struct Fetch {
///     bytes: usize,
/// }
///
/// impl ResponseHandler for Fetch {
///     type Msg = ();
///     fn connected(&mut self, client: &mut Client<Self>) {
///         client.request(ClientRequest::get("/"));
///     }
///     fn response(&mut self, _client: &mut Client<Self>, _id: RequestId, head: ResponseHead) {
///         println!("status {}", head.status());
///     }
///     fn body(&mut self, _client: &mut Client<Self>, _id: RequestId, piece: Bytes) {
///         self.bytes += piece.len();
///     }
///     fn end(&mut self, client: &mut Client<Self>, _id: RequestId, _trailers: rein_net::http::Headers) {
///         client.close();
///     }
/// }
/// ```
pub trait ResponseHandler: Sized + Send + 'static {
    /// The handler's own messages (from other actors through [`ClientRef::send`]). Use `()` if
    /// it needs none.
    type Msg: Send + 'static;

    /// The connection is open: send requests.
    fn connected(&mut self, _client: &mut Client<'_, '_, '_, Self>) {}

    /// The connection could not be opened; nothing else follows.
    fn connect_failed(&mut self, _reason: ConnectError) {}

    /// The streaming body of request `id` may be written now ([`Client::write`],
    /// [`Client::finish`], or [`Client::upload_sink`] for another actor).
    fn upload(&mut self, _client: &mut Client<'_, '_, '_, Self>, _id: RequestId) {}

    /// The connection takes writes again after [`Client::write`] refused.
    fn writeable(&mut self, _client: &mut Client<'_, '_, '_, Self>) {}

    /// The response head to request `id` arrived (informational 1xx responses are skipped).
    fn response(
        &mut self,
        client: &mut Client<'_, '_, '_, Self>,
        id: RequestId,
        head: ResponseHead,
    );

    /// A piece of the response body, as it arrived.
    fn body(&mut self, _client: &mut Client<'_, '_, '_, Self>, _id: RequestId, _piece: Bytes) {}

    /// The response to `id` is complete (`trailers`: chunked trailer fields, if any). A body
    /// delimited by the server closing the connection ends here too, just before
    /// [`closed`](ResponseHandler::closed) (new requests are refused then).
    fn end(&mut self, _client: &mut Client<'_, '_, '_, Self>, _id: RequestId, _trailers: Headers) {}

    /// One of the handler's own messages arrived.
    fn message(&mut self, _client: &mut Client<'_, '_, '_, Self>, _msg: Self::Msg) {}

    /// The server sent something that is not HTTP/1.1 (or broke a limit); the connection is
    /// aborted and [`closed`](ResponseHandler::closed) follows.
    fn protocol_error(&mut self, _why: &'static str) {}

    /// The connection ended; `unanswered` are the requests whose response did not complete
    /// (not sent, or cut off). Nothing else follows.
    fn closed(&mut self, _reason: CloseReason, _unanswered: Vec<RequestId>) {}
}

/// The message type of an HTTP client connection actor. Opaque.
pub struct ClientMsg<M>(CInner<M>);

enum CInner<M> {
    User(M),
    Upload(UploadMsg),
}

impl<M> fmt::Debug for ClientMsg<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            CInner::User(_) => "ClientMsg(message)",
            CInner::Upload(_) => "ClientMsg(upload piece)",
        })
    }
}

/// What an [`UploadSink`] sends to its connection. Opaque.
pub struct UploadMsg {
    id: RequestId,
    what: UploadWhat,
}

enum UploadWhat {
    Data(Bytes),
    Finish,
    Abort,
}

impl<M: Send + 'static> From<UploadMsg> for ConnMsg<ClientMsg<M>> {
    fn from(msg: UploadMsg) -> Self {
        ConnMsg(Msg::User(ClientMsg(CInner::Upload(msg))))
    }
}

/// An address another actor writes a request body through: pieces, then
/// [`finish`](UploadSink::finish). While the connection is throttled the runtime mutes the
/// sending actor (see [`BodySink`](crate::http::BodySink), its server-side twin).
#[derive(Clone)]
pub struct UploadSink {
    to: Recipient<UploadMsg>,
    id: RequestId,
}

impl UploadSink {
    /// Sends a piece of the body; hands it back if the connection has ended.
    pub fn send(&self, piece: impl Into<Bytes>) -> Result<(), Bytes> {
        self.to
            .send(UploadMsg {
                id: self.id,
                what: UploadWhat::Data(piece.into()),
            })
            .map_err(|e| match e.into_inner().what {
                UploadWhat::Data(b) => b,
                _ => Bytes::new(),
            })
    }

    /// Ends the body. Returns `false` if the connection has ended.
    pub fn finish(&self) -> bool {
        self.to
            .send(UploadMsg {
                id: self.id,
                what: UploadWhat::Finish,
            })
            .is_ok()
    }

    /// Gives up on the upload: the connection is aborted.
    pub fn abort(&self) -> bool {
        self.to
            .send(UploadMsg {
                id: self.id,
                what: UploadWhat::Abort,
            })
            .is_ok()
    }

    /// Whether the connection has ended: stop producing.
    pub fn is_closed(&self) -> bool {
        self.to.is_stopped()
    }
}

impl fmt::Debug for UploadSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadSink({}, {:?})", self.to.id(), self.id)
    }
}

/// The address of an HTTP client connection. Cheap to clone.
pub struct ClientRef<M> {
    conn: ConnRef<ClientMsg<M>>,
}

impl<M: Send + 'static> ClientRef<M> {
    /// Delivers `msg` to [`ResponseHandler::message`]; hands it back if the connection ended.
    pub fn send(&self, msg: M) -> Result<(), rein::SendError<M>> {
        self.conn.send(ClientMsg(CInner::User(msg))).map_err(|e| {
            e.map(|back| match back.0 {
                CInner::User(m) => m,
                CInner::Upload(_) => unreachable!("the message handed back is the one sent"),
            })
        })
    }

    /// Closes gracefully.
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

impl<M> Clone for ClientRef<M> {
    fn clone(&self) -> Self {
        ClientRef {
            conn: self.conn.clone(),
        }
    }
}

impl<M: Send + 'static> fmt::Debug for ClientRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientRef({:?})", self.conn)
    }
}

/// A request not sent yet.
struct Waiting {
    id: RequestId,
    request: ClientRequest,
    /// The whole body, for [`Client::send`].
    body: Option<Bytes>,
}

/// A request sent (its head at least), waiting for its response.
struct Flight {
    id: RequestId,
    method: Method,
}

enum Reading {
    Head,
    Body(BodyReader),
}

struct CState {
    opts: ClientOptions,
    host: String,
    waiting: VecDeque<Waiting>,
    /// The request whose streaming body is being written.
    upload: Option<(RequestId, BodyWriter)>,
    /// An upload the handler has not been told about yet.
    announce: Option<RequestId>,
    in_flight: VecDeque<Flight>,
    input: Bytes,
    head_buf: BytesMut,
    reading: Reading,
    outbox: Outbox,
    next_id: u64,
    /// False once a response said the connection closes after it.
    reusable: bool,
    paused: bool,
    closing: bool,
    open: bool,
}

/// An HTTP/1.1 client connection running the handler `R`. Open one with
/// [`HttpClient::connect`].
pub struct HttpClient<R: ResponseHandler> {
    handler: R,
    st: CState,
}

impl<R: ResponseHandler> HttpClient<R> {
    /// Connects to `host:port` (a name is resolved off the workers, addresses are raced happy
    /// eyeballs style: see [`TcpConnection::connect`]) and runs `handler` on the connection.
    pub fn connect(
        reactor: &Reactor,
        auth: &TcpConnectAuth,
        host: &str,
        port: u16,
        handler: R,
        opts: ClientOptions,
    ) -> ClientRef<R::Msg> {
        let host_header = if port == 80 {
            host.to_owned()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tcp = opts.connection.clone();
        let client = HttpClient {
            handler,
            st: CState {
                opts,
                host: host_header,
                waiting: VecDeque::new(),
                upload: None,
                announce: None,
                in_flight: VecDeque::new(),
                input: Bytes::new(),
                head_buf: BytesMut::new(),
                reading: Reading::Head,
                outbox: Outbox::default(),
                next_id: 0,
                reusable: true,
                paused: false,
                closing: false,
                open: false,
            },
        };
        ClientRef {
            conn: TcpConnection::connect(reactor, auth, host, port, client, tcp),
        }
    }
}

type TcpConn<'x, 'a, 'c, R> = &'x mut Conn<'a, 'c, HttpClient<R>>;

/// The client connection as its handler sees it: send requests, write upload bodies, read flow
/// control. Once the connection has ended (in [`ResponseHandler::end`] for a body delimited by
/// the close) requests are refused.
///
/// Handlers name it `Client<Self>` (the lifetimes are elided).
pub struct Client<'x, 'a, 'c, R: ResponseHandler> {
    conn: Option<TcpConn<'x, 'a, 'c, R>>,
    st: &'x mut CState,
}

impl<R: ResponseHandler> fmt::Debug for Client<'_, '_, '_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("waiting", &self.st.waiting.len())
            .field("in_flight", &self.st.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<R: ResponseHandler> Client<'_, '_, '_, R> {
    /// Queues `request`; it is sent as soon as the connection is free for it (see the module
    /// docs). A request of unknown or non-zero length streams its body: the handler hears
    /// [`ResponseHandler::upload`] when to write it. Returns `None` if the connection cannot
    /// take requests any more (closing, or the server said it closes).
    pub fn request(&mut self, request: ClientRequest) -> Option<RequestId> {
        self.queue(request, None)
    }

    /// Queues `request` with its whole `body` (its length is set from it).
    pub fn send(&mut self, request: ClientRequest, body: impl Into<Bytes>) -> Option<RequestId> {
        let body = body.into();
        let request = request.length(body.len() as u64);
        self.queue(request, Some(body))
    }

    fn queue(&mut self, request: ClientRequest, body: Option<Bytes>) -> Option<RequestId> {
        if self.st.closing || !self.st.reusable || self.conn.is_none() {
            return None;
        }
        let id = RequestId(self.st.next_id);
        self.st.next_id += 1;
        self.st.waiting.push_back(Waiting { id, request, body });
        if let Some(conn) = self.conn.as_deref_mut() {
            self.st.advance(conn);
        }
        Some(id)
    }

    /// Writes a piece of the current upload's body. Refused while the connection is not
    /// writeable: keep the piece and write it from [`ResponseHandler::writeable`].
    pub fn write(&mut self, piece: impl Into<Bytes>) -> Result<(), WriteError> {
        let piece = piece.into();
        let Some(conn) = self.conn.as_deref_mut() else {
            return Err(WriteError::NotStreaming(piece));
        };
        if self.st.upload.is_none() || self.st.closing {
            return Err(WriteError::NotStreaming(piece));
        }
        if !conn.is_writeable() || !self.st.outbox.is_empty() {
            return Err(WriteError::NotWriteable(piece));
        }
        self.st.upload_piece(conn, piece);
        Ok(())
    }

    /// Ends the current upload's body; the next request may then be sent.
    pub fn finish(&mut self) {
        if let Some(conn) = self.conn.as_deref_mut() {
            self.st.finish_upload(conn);
        }
    }

    /// Whether [`write`](Client::write) would take a piece now.
    pub fn is_writeable(&self) -> bool {
        self.conn.as_deref().is_some_and(|c| c.is_writeable()) && self.st.outbox.is_empty()
    }

    /// An address another actor can write the current upload's body through. `None` if no
    /// upload is under way.
    pub fn upload_sink(&self) -> Option<UploadSink> {
        let (id, _) = self.st.upload.as_ref()?;
        let conn = self.conn.as_deref()?;
        Some(UploadSink {
            to: conn.ctx.myself().recipient(),
            id: *id,
        })
    }

    /// Stops reading responses (TCP slows the server down) until [`resume`](Client::resume).
    pub fn pause(&mut self) {
        self.st.paused = true;
        if let Some(conn) = self.conn.as_deref_mut() {
            conn.mute();
        }
    }

    /// Resumes reading after [`pause`](Client::pause).
    pub fn resume(&mut self) {
        self.st.paused = false;
        if let Some(conn) = self.conn.as_deref_mut() {
            conn.unmute();
        }
    }

    /// Closes gracefully: requests not sent yet are dropped (reported as unanswered).
    pub fn close(&mut self) {
        self.st.closing = true;
        if let Some(conn) = self.conn.as_deref_mut() {
            conn.close();
        }
    }

    /// Requests queued or sent whose responses have not completed.
    pub fn pending(&self) -> usize {
        self.st.waiting.len() + self.st.in_flight.len()
    }

    /// This connection's address, to hand to other actors (`None` once it has ended).
    pub fn myself(&self) -> Option<ClientRef<R::Msg>> {
        let conn = self.conn.as_deref()?;
        Some(ClientRef {
            conn: conn.myself(),
        })
    }

    /// Delivers `msg` to [`ResponseHandler::message`] after `delay` (`None` once the connection
    /// has ended).
    pub fn after(&self, delay: Duration, msg: R::Msg) -> Option<Timer> {
        let conn = self.conn.as_deref()?;
        Some(conn.after(delay, ClientMsg(CInner::User(msg))))
    }

    /// Spawns an actor on this runtime (`None` once the connection has ended).
    pub fn spawn<B: Actor>(&self, actor: B) -> Option<ActorRef<B>> {
        Some(self.conn.as_deref()?.spawn(actor))
    }
}

impl CState {
    /// Sends waiting requests while the connection is free for them.
    fn advance<R: ResponseHandler>(&mut self, conn: TcpConn<'_, '_, '_, R>) {
        while let Some(next) = self.waiting.front() {
            if self.upload.is_some() || self.closing || !self.reusable || !self.open {
                return;
            }
            let pipelined = self.opts.pipelining
                && next.request.method.is_idempotent()
                && self.in_flight.iter().all(|f| f.method.is_idempotent());
            if !self.in_flight.is_empty() && !pipelined {
                return;
            }
            let Waiting { id, request, body } = self.waiting.pop_front().expect("front");
            let mut head = BytesMut::new();
            request.write_head(&mut head, &self.host);
            self.outbox.push(conn, head.freeze());
            self.in_flight.push_back(Flight {
                id,
                method: request.method.clone(),
            });
            match (body, request.length) {
                (Some(body), _) => self.outbox.push(conn, body),
                (None, Some(0)) => {}
                (None, Some(n)) => {
                    self.upload = Some((id, BodyWriter::new(Framing::Length(n))));
                    self.announce = Some(id);
                }
                (None, None) => {
                    self.upload = Some((id, BodyWriter::new(Framing::Chunked)));
                    self.announce = Some(id);
                }
            }
        }
    }

    fn upload_piece<R: ResponseHandler>(&mut self, conn: TcpConn<'_, '_, '_, R>, piece: Bytes) {
        if let Some((_, writer)) = self.upload.as_mut() {
            let outbox = &mut self.outbox;
            if writer.piece(piece, |b| outbox.push(conn, b)).is_err() {
                // More than the announced length: the excess was dropped, and the server would
                // misread what follows. End the connection after this exchange.
                self.reusable = false;
            }
        }
    }

    fn finish_upload<R: ResponseHandler>(&mut self, conn: TcpConn<'_, '_, '_, R>) {
        if let Some((_, mut writer)) = self.upload.take() {
            let outbox = &mut self.outbox;
            if writer.finish(None, |b| outbox.push(conn, b)).is_err() {
                // Shorter than announced: the request can never complete.
                self.closing = true;
                conn.abort();
            }
        }
    }
}

impl<R: ResponseHandler> HttpClient<R> {
    fn with_client<T>(
        &mut self,
        conn: TcpConn<'_, '_, '_, R>,
        f: impl FnOnce(&mut R, &mut Client<'_, '_, '_, R>) -> T,
    ) -> T {
        let mut client = Client {
            conn: Some(conn),
            st: &mut self.st,
        };
        f(&mut self.handler, &mut client)
    }

    /// After every callback: send what can be sent, tell the handler about a new upload.
    fn settle(&mut self, conn: TcpConn<'_, '_, '_, R>) {
        for _ in 0..64 {
            self.st.advance(conn);
            let Some(id) = self.st.announce.take() else {
                break;
            };
            self.with_client(conn, |h, c| h.upload(c, id));
        }
        if self.st.paused {
            conn.mute();
        }
    }

    /// Parses and delivers responses from the input.
    fn pump(&mut self, conn: TcpConn<'_, '_, '_, R>) {
        loop {
            if self.st.paused || self.st.closing && self.st.in_flight.is_empty() {
                break;
            }
            match &mut self.st.reading {
                Reading::Head => {
                    let Some(front) = self.st.in_flight.front() else {
                        if !self.st.input.is_empty() || !self.st.head_buf.is_empty() {
                            return self.fail(conn, "data arrived with no request outstanding");
                        }
                        break;
                    };
                    if self.st.input.is_empty() {
                        break;
                    }
                    let (id, method) = (front.id, front.method.clone());
                    // Collect the head (it may arrive in pieces), then parse it where it lies.
                    let buf = if self.st.head_buf.is_empty() {
                        std::mem::take(&mut self.st.input)
                    } else {
                        self.st.head_buf.extend_from_slice(&self.st.input);
                        self.st.input = Bytes::new();
                        self.st.head_buf.split().freeze()
                    };
                    match head::parse_response(&buf, &method, self.st.opts.max_head) {
                        Err(why) => return self.fail(conn, why),
                        Ok(Parsed::Partial) => {
                            self.st.head_buf.extend_from_slice(&buf);
                            break;
                        }
                        Ok(Parsed::Complete(head, len)) => {
                            self.st.input = buf.slice(len..);
                            if head.status < 200 {
                                // 100 Continue and other informational answers: the real
                                // response follows.
                                if head.status == 101 {
                                    return self.fail(conn, "protocol upgrades are not supported");
                                }
                                continue;
                            }
                            self.st.reusable &= head.keep_alive;
                            let reader = BodyReader::new(head.body, self.st.opts.max_head);
                            self.st.reading = Reading::Body(reader);
                            self.with_client(conn, |h, c| h.response(c, id, head));
                            self.settle(conn);
                        }
                    }
                }
                Reading::Body(reader) => {
                    let Some(id) = self.st.in_flight.front().map(|f| f.id) else {
                        break;
                    };
                    match reader.next(&mut self.st.input) {
                        Err(refusal) => return self.fail(conn, refusal.why),
                        Ok(None) => break,
                        Ok(Some(Piece::Data(piece))) => {
                            self.with_client(conn, |h, c| h.body(c, id, piece));
                            self.settle(conn);
                        }
                        Ok(Some(Piece::End(trailers))) => {
                            self.st.reading = Reading::Head;
                            self.st.in_flight.pop_front();
                            self.with_client(conn, |h, c| h.end(c, id, trailers));
                            if !self.st.reusable && self.st.in_flight.is_empty() {
                                self.st.closing = true;
                                conn.close();
                            }
                            self.settle(conn);
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, conn: TcpConn<'_, '_, '_, R>, why: &'static str) {
        self.handler.protocol_error(why);
        self.st.closing = true;
        self.st.input = Bytes::new();
        conn.abort();
    }
}

impl<R: ResponseHandler> ConnectionHandler for HttpClient<R> {
    type Msg = ClientMsg<R::Msg>;

    fn connected(&mut self, conn: &mut Conn<Self>) {
        self.st.open = true;
        self.with_client(conn, |h, c| h.connected(c));
        self.settle(conn);
    }

    fn connect_failed(&mut self, reason: ConnectError) {
        self.handler.connect_failed(reason);
    }

    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        if self.st.input.is_empty() {
            self.st.input = data;
        } else {
            let mut joined = BytesMut::with_capacity(self.st.input.len() + data.len());
            joined.extend_from_slice(&self.st.input);
            joined.extend_from_slice(&data);
            self.st.input = joined.freeze();
        }
        self.pump(conn);
        if !self.st.input.is_empty() && !self.st.paused && !self.st.closing {
            // Only a paused or failed pump leaves input; keep it bounded either way.
            conn.mute();
        }
        Flow::Continue
    }

    fn message(&mut self, conn: &mut Conn<Self>, ClientMsg(msg): ClientMsg<R::Msg>) {
        match msg {
            CInner::User(msg) => self.with_client(conn, |h, c| h.message(c, msg)),
            CInner::Upload(UploadMsg { id, what }) => {
                if self.st.upload.as_ref().map(|(u, _)| *u) != Some(id) {
                    return;
                }
                match what {
                    UploadWhat::Data(piece) => self.st.upload_piece(conn, piece),
                    UploadWhat::Finish => self.st.finish_upload(conn),
                    UploadWhat::Abort => {
                        self.st.closing = true;
                        conn.abort();
                    }
                }
            }
        }
        self.settle(conn);
        if !self.st.paused {
            conn.unmute();
            self.pump(conn);
        }
    }

    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        if self.st.outbox.flush(conn) && conn.is_writeable() && self.st.upload.is_some() {
            self.with_client(conn, |h, c| h.writeable(c));
        }
        self.settle(conn);
    }

    fn closed(&mut self, reason: CloseReason) {
        self.st.open = false;
        if let Reading::Body(BodyReader::UntilClose) = self.st.reading {
            if let Some(flight) = self.st.in_flight.pop_front() {
                let mut client = Client {
                    conn: None,
                    st: &mut self.st,
                };
                self.handler.end(&mut client, flight.id, Headers::new());
            }
        }
        let unanswered = self
            .st
            .in_flight
            .drain(..)
            .map(|f| f.id)
            .chain(self.st.waiting.drain(..).map(|w| w.id))
            .collect();
        self.handler.closed(reason, unanswered);
    }
}

impl BodyLength {
    /// Whether a body of this length has any bytes to read.
    pub fn has_body(self) -> bool {
        self != BodyLength::Empty
    }
}
