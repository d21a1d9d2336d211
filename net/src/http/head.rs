//! Message heads: requests parsed with `httparse`, responses and requests built and written.
//!
//! Why the checks here and not in the connection: every rule that decides how long a body is
//! (Content-Length, Transfer-Encoding, HTTP/1.0) is a request-smuggling question, and it must
//! be answered in one place, the same way for every request, before a single body byte is
//! read. A request that is ambiguous is refused with the status the caller then sends
//! ([`Refusal`]); it is never guessed at.
//!
//! Parsed heads keep their bytes: a [`Request`]'s target and header fields are views
//! ([`Bytes`]) of the buffer the head arrived in, not copies.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The most header fields a head may carry; more is `431 Request Header Fields Too Large`.
pub const MAX_HEADERS: usize = 100;

/// An HTTP request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: answered like `GET`, without the body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `CONNECT`
    Connect,
    /// `PATCH`
    Patch,
    /// Any other method token, as it was sent.
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }

    /// Whether repeating the request has the same effect as sending it once (RFC 9110, 9.2.2):
    /// only such requests are pipelined by the client.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// HTTP/1.0: no chunked coding, connections close unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1.
    Http11,
}

impl Version {
    /// The version as it goes on the wire (`HTTP/1.1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Header fields, in the order they arrived (or were added). Names compare case-insensitively.
///
/// ```
/// use rein_net::http::Headers;
/// let mut headers = Headers::new();
/// headers.insert("Content-Type", "text/plain");
/// assert_eq!(headers.get("content-type"), Some(&b"text/plain"[..]));
/// assert_eq!(headers.get_str("CONTENT-TYPE"), Some("text/plain"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(Bytes, Bytes)>,
}

impl Headers {
    /// No fields.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Appends a field.
    ///
    /// # Panics
    /// If `name` is not a token or `value` holds CR, LF or NUL (either would let a value split
    /// the message: a response-splitting bug, refused here rather than sent).
    pub fn insert(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let (name, value) = (name.into(), value.into());
        assert!(
            is_token(&name),
            "invalid header name {:?}",
            String::from_utf8_lossy(&name)
        );
        assert!(
            !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "header value of {:?} holds CR, LF or NUL",
            String::from_utf8_lossy(&name)
        );
        self.fields.push((name, value));
    }

    /// The first field named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }

    /// The first field named `name`, if its value is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every field named `name`, in order.
    pub fn get_all<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }

    /// Whether a field named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every field as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(n, v)| (&n[..], &v[..]))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Builds from parsed `httparse` fields, as views of `head` (the buffer they point into).
    fn from_parsed(head: &Bytes, parsed: &[httparse::Header<'_>]) -> Self {
        let fields = parsed
            .iter()
            .map(|h| (head.slice_ref(h.name.as_bytes()), head.slice_ref(h.value)))
            .collect();
        Headers { fields }
    }

    pub(crate) fn write_to(&self, out: &mut BytesMut) {
        for (name, value) in &self.fields {
            out.put_slice(name);
            out.put_slice(b": ");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.iter().map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

/// How a message's body is delimited, as its head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Known(u64),
    /// `Transfer-Encoding: chunked`: pieces of announced sizes, up to a zero-size last chunk.
    Chunked,
    /// Until the peer closes the connection (responses only: HTTP/1.0 style).
    UntilClose,
}

/// A request head, parsed and checked. The body, if any, follows in pieces.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    target: Bytes,
    version: Version,
    headers: Headers,
    body: BodyLength,
    keep_alive: bool,
    expect_continue: bool,
}

impl Request {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request target as sent (usually a path with an optional query: `/a/b?x=1`).
    pub fn target(&self) -> &str {
        // Checked at parse time: httparse only yields UTF-8 targets.
        std::str::from_utf8(&self.target).unwrap_or("")
    }

    /// The target's path: everything before `?`.
    pub fn path(&self) -> &str {
        let target = self.target();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The target's query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, query)| query)
    }

    /// The value of query parameter `name` (`a=1&b=2`), undecoded.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query()?
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// How the body is delimited ([`BodyLength::Empty`] for none).
    pub fn body_length(&self) -> BodyLength {
        self.body
    }

    /// Whether the client asked to keep the connection open after this exchange (HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the client sent `Expect: 100-continue` and waits for a go-ahead before the body.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }
}

/// Why a request head (or body) was refused: the status to answer with, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The response status (400, 408, 413, 414, 417, 431, 501).
    pub status: u16,
    /// What was wrong, sent as the response body.
    pub why: &'static str,
}

impl Refusal {
    pub(crate) const fn new(status: u16, why: &'static str) -> Self {
        Refusal { status, why }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            reason_phrase(self.status),
            self.why
        )
    }
}

/// Limits on request heads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub(crate) max_head: usize,
    pub(crate) max_target: usize,
}

/// The outcome of looking for a complete head at the front of a buffer.
pub(crate) enum Parsed<T> {
    /// A complete head of `len` bytes.
    Complete(T, usize),
    /// Not yet: more bytes are needed (and may come: the buffer is within the limits).
    Partial,
}

/// Looks for a request head at the front of `buf`. `Partial` is only answered while the
/// buffer is within the limits: an over-long head or target is refused before it completes.
pub(crate) fn parse_request(buf: &Bytes, limits: HeadLimits) -> Result<Parsed<Request>, Refusal> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return match partial_over_limits(buf, limits) {
                Some(refusal) => Err(refusal),
                None => Ok(Parsed::Partial),
            }
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(431, "more than 100 header fields"))
        }
        Err(httparse::Error::Version) => {
            return Err(Refusal::new(400, "malformed request line (version)"))
        }
        Err(httparse::Error::Token | httparse::Error::NewLine | httparse::Error::Status) => {
            return Err(Refusal::new(400, "malformed request line"))
        }
        Err(_) => return Err(Refusal::new(400, "malformed header field")),
    };
    if len > limits.max_head {
        return Err(Refusal::new(431, "request head too large"));
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::new(400, "malformed request line"));
    };
    if path.len() > limits.max_target {
        return Err(Refusal::new(414, "request target too long"));
    }
    if path.is_empty() {
        return Err(Refusal::new(400, "empty request target"));
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let headers = Headers::from_parsed(buf, req.headers);
    let body = request_body_length(&headers, version)?;
    let connection = ConnectionTokens::of(&headers);
    let keep_alive = match version {
        Version::Http11 => !connection.close,
        Version::Http10 => connection.keep_alive && !connection.close,
    };
    if version == Version::Http11 {
        let mut hosts = headers.get_all("host");
        if hosts.next().is_none() || hosts.next().is_some() {
            return Err(Refusal::new(
                400,
                "an HTTP/1.1 request needs exactly one Host",
            ));
        }
    }
    let expect_continue = match headers.get("expect") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"100-continue") => version == Version::Http11,
        Some(_) => return Err(Refusal::new(417, "unsupported expectation")),
    };
    let request = Request {
        method: Method::from_token(method),
        target: buf.slice_ref(path.as_bytes()),
        version,
        headers,
        body,
        keep_alive,
        expect_continue: expect_continue && body != BodyLength::Empty,
    };
    Ok(Parsed::Complete(request, len))
}

/// Whether an incomplete head already breaks a limit.
fn partial_over_limits(buf: &[u8], limits: HeadLimits) -> Option<Refusal> {
    // The request line is "METHOD SP target SP HTTP/1.x": allow room for the method and the
    // version around the longest target.
    let line_room = limits.max_target + 64;
    let line_end = buf.iter().take(line_room + 1).position(|&b| b == b'\n');
    if line_end.is_none() && buf.len() > line_room {
        return Some(Refusal::new(414, "request target too long"));
    }
    if buf.len() > limits.max_head {
        return Some(Refusal::new(431, "request head too large"));
    }
    None
}

/// The request body's length per RFC 9112 section 6: Transfer-Encoding wins but must not come
/// with Content-Length (a smuggling vector) and must end in `chunked`; several Content-Length
/// values must agree.
fn request_body_length(headers: &Headers, version: Version) -> Result<BodyLength, Refusal> {
    let length = content_length(headers)?;
    if headers.contains("transfer-encoding") {
        if length.is_some() {
            return Err(Refusal::new(
                400,
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if version == Version::Http10 {
            return Err(Refusal::new(
                400,
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        return match transfer_coding(headers) {
            Coding::Chunked => Ok(BodyLength::Chunked),
            // Not decodable here: answered 501 whether or not chunked came last, since the
            // connection closes either way and nothing of the body is read.
            Coding::Unsupported => Err(Refusal::new(501, "unsupported Transfer-Encoding")),
            Coding::Invalid => Err(Refusal::new(400, "malformed Transfer-Encoding")),
        };
    }
    Ok(match length {
        None | Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Known(n),
    })
}

/// The one Content-Length all fields agree on, if any. Values are lists (`5, 5` is 5).
pub(crate) fn content_length(headers: &Headers) -> Result<Option<u64>, Refusal> {
    let mut found = None;
    for value in headers.get_all("content-length") {
        for item in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(item))
                .ok_or(Refusal::new(400, "malformed Content-Length"))?;
            match found {
                Some(m) if m != n => {
                    return Err(Refusal::new(400, "conflicting Content-Length values"))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// What `Transfer-Encoding` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Exactly `chunked`.
    Chunked,
    /// Another coding (gzip, deflate, ...), alone or before chunked.
    Unsupported,
    /// Empty, or `chunked` twice.
    Invalid,
}

pub(crate) fn transfer_coding(headers: &Headers) -> Coding {
    let mut codings = Vec::new();
    for value in headers.get_all("transfer-encoding") {
        for item in value.split(|&b| b == b',') {
            let item = trim_ows(item);
            if !item.is_empty() {
                codings.push(item);
            }
        }
    }
    let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    match codings.as_slice() {
        [] => Coding::Invalid,
        [only] if chunked(only) => Coding::Chunked,
        all if all.iter().filter(|c| chunked(c)).count() > 1 => Coding::Invalid,
        _ => Coding::Unsupported,
    }
}

/// The `Connection` header's tokens that matter here.
#[derive(Default)]
pub(crate) struct ConnectionTokens {
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
}

impl ConnectionTokens {
    pub(crate) fn of(headers: &Headers) -> Self {
        let mut tokens = ConnectionTokens::default();
        for value in headers.get_all("connection") {
            for item in value.split(|&b| b == b',') {
                let item = trim_ows(item);
                tokens.close |= item.eq_ignore_ascii_case(b"close");
                tokens.keep_alive |= item.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        tokens
    }
}

/// A decimal number of at most 19 digits (no sign, no spaces): fits a u64 without overflow.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 token characters.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The standard reason phrase for `status` (empty for unknown codes: the phrase is optional).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A response head to send: status, fields, and how the body is delimited. Framing fields
/// (`Content-Length`, `Transfer-Encoding`) are written by the server from
/// [`length`](Response::length); without one the body is chunked (or, to an HTTP/1.0 client,
/// delimited by closing the connection).
///
/// ```
/// use rein_net::http::Response;
/// let ok = Response::new(200).header("content-type", "text/plain").length(13);
/// assert_eq!(ok.status(), 200);
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Headers,
    length: Option<u64>,
    close: bool,
}

impl Response {
    /// A response with `status` (100 to 999), no fields, and a body of unknown length.
    ///
    /// # Panics
    /// If `status` is not a three-digit number.
    pub fn new(status: u16) -> Self {
        assert!((100..1000).contains(&status), "invalid status {status}");
        Response {
            status,
            headers: Headers::new(),
            length: None,
            close: false,
        }
    }

    /// Adds a field. `Content-Length` sets [`length`](Response::length); `Connection: close`
    /// closes the connection after this response.
    ///
    /// # Panics
    /// As [`Headers::insert`]; also for `Transfer-Encoding` (the server chooses the framing) and
    /// for a `Content-Length` that is not a number.
    pub fn header(mut self, name: &str, value: impl Into<Bytes>) -> Self {
        let value = value.into();
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(trim_ows(&value)).expect("Content-Length must be a number");
            return self.length(n);
        }
        assert!(
            !name.eq_ignore_ascii_case("transfer-encoding"),
            "Transfer-Encoding is the server's to choose: leave the length unknown for chunked"
        );
        if name.eq_ignore_ascii_case("connection") {
            self.close |= ConnectionTokens::of(&{
                let mut h = Headers::new();
                h.insert("connection", value.clone());
                h
            })
            .close;
        }
        self.headers
            .insert(Bytes::copy_from_slice(name.as_bytes()), value);
        self
    }

    /// The body is exactly `n` bytes (`Content-Length`).
    pub fn length(mut self, n: u64) -> Self {
        self.length = Some(n);
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The fields added so far.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body length, if known.
    pub fn known_length(&self) -> Option<u64> {
        self.length
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.close
    }

    /// Whether this status never has a body (1xx, 204, 304).
    pub(crate) fn bodiless_status(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }

    /// Writes the head. `framing` is the body framing chosen by the server; `close` adds
    /// `Connection: close`, `keep_alive_10` adds `Connection: keep-alive` (HTTP/1.0 peers).
    pub(crate) fn write_head(&self, out: &mut BytesMut, framing: Framing, connection: ConnHeader) {
        out.reserve(128 + self.headers.len() * 32);
        out.put_slice(b"HTTP/1.1 ");
        let mut code = itoa::Buffer::new();
        out.put_slice(code.format(self.status).as_bytes());
        out.put_u8(b' ');
        out.put_slice(reason_phrase(self.status).as_bytes());
        out.put_slice(b"\r\nDate: ");
        out.put_slice(&http_date_now());
        out.put_slice(b"\r\n");
        self.headers.write_to(out);
        match framing {
            Framing::Length(n) => {
                out.put_slice(b"Content-Length: ");
                let mut num = itoa::Buffer::new();
                out.put_slice(num.format(n).as_bytes());
                out.put_slice(b"\r\n");
            }
            Framing::Chunked => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
            Framing::None | Framing::UntilClose => {}
        }
        match connection {
            ConnHeader::Close => out.put_slice(b"Connection: close\r\n"),
            ConnHeader::KeepAlive => out.put_slice(b"Connection: keep-alive\r\n"),
            ConnHeader::Nothing => {}
        }
        out.put_slice(b"\r\n");
    }
}

/// How a body being written is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body may follow (1xx, 204, 304, or the answer to HEAD, whose length fields still
    /// describe the body a GET would get).
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The `Connection` field a head gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnHeader {
    Nothing,
    Close,
    KeepAlive,
}

/// A request to send from the client: method, target, fields, and the body's length.
///
/// ```
/// use rein_net::http::{ClientRequest, Method};
/// let get = ClientRequest::get("/index.html").header("accept", "text/html");
/// let upload = ClientRequest::new(Method::Put, "/upload"); // body streamed, chunked
/// let sized = ClientRequest::new(Method::Post, "/form").length(11);
/// assert_eq!(get.method(), &Method::Get);
/// # let _ = (upload, sized);
/// ```
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) headers: Headers,
    /// `None`: a body of unknown length (chunked); `Some(0)`: none.
    pub(crate) length: Option<u64>,
}

impl ClientRequest {
    /// A request whose body is streamed with chunked coding; set [`length`](Self::length)
    /// for a body of known size (`length(0)` for none).
    ///
    /// # Panics
    /// If `target` holds spaces or control characters.
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        let target = target.into();
        assert!(
            !target.is_empty() && target.bytes().all(|b| b > b' ' && b != 0x7f),
            "invalid request target {target:?}"
        );
        ClientRequest {
            method,
            target,
            headers: Headers::new(),
            length: None,
        }
    }

    /// A `GET` with no body.
    pub fn get(target: impl Into<String>) -> Self {
        ClientRequest::new(Method::Get, target).length(0)
    }

    /// Adds a field (see [`Response::header`] for the rules; `Host` is added from the address
    /// connected to unless set here).
    pub fn header(mut self, name: &str, value: impl Into<Bytes>) -> Self {
        let value = value.into();
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(trim_ows(&value)).expect("Content-Length must be a number");
            return self.length(n);
        }
        assert!(
            !name.eq_ignore_ascii_case("transfer-encoding"),
            "Transfer-Encoding is the client's to choose: leave the length unknown for chunked"
        );
        self.headers
            .insert(Bytes::copy_from_slice(name.as_bytes()), value);
        self
    }

    /// The body is exactly `n` bytes (`0`: no body).
    pub fn length(mut self, n: u64) -> Self {
        self.length = Some(n);
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    pub(crate) fn write_head(&self, out: &mut BytesMut, host: &str) {
        out.reserve(64 + self.target.len() + self.headers.len() * 32);
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.target.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        if !self.headers.contains("host") {
            out.put_slice(b"Host: ");
            out.put_slice(host.as_bytes());
            out.put_slice(b"\r\n");
        }
        self.headers.write_to(out);
        match self.length {
            Some(0) if !matches!(self.method, Method::Post | Method::Put | Method::Patch) => {}
            Some(n) => {
                out.put_slice(b"Content-Length: ");
                let mut num = itoa::Buffer::new();
                out.put_slice(num.format(n).as_bytes());
                out.put_slice(b"\r\n");
            }
            None => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        out.put_slice(b"\r\n");
    }
}

/// A response head the client received.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) version: Version,
    pub(crate) headers: Headers,
    pub(crate) body: BodyLength,
    pub(crate) keep_alive: bool,
}

impl ResponseHead {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The server's protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// How the body is delimited.
    pub fn body_length(&self) -> BodyLength {
        self.body
    }
}

/// Looks for a response head at the front of `buf`, for a request with `method`.
pub(crate) fn parse_response(
    buf: &Bytes,
    method: &Method,
    max_head: usize,
) -> Result<Parsed<ResponseHead>, &'static str> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut fields);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err("response head too large")
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("more than 100 header fields"),
        Err(_) => return Err("malformed response head"),
    };
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Err("malformed status line");
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let headers = Headers::from_parsed(buf, res.headers);
    let bodiless = status < 200 || status == 204 || status == 304 || *method == Method::Head;
    let body = if bodiless {
        BodyLength::Empty
    } else if headers.contains("transfer-encoding") {
        match transfer_coding(&headers) {
            Coding::Chunked if version == Version::Http11 => BodyLength::Chunked,
            // RFC 9112 6.3: a response whose final coding is not chunked runs until close.
            Coding::Unsupported => BodyLength::UntilClose,
            _ => return Err("malformed Transfer-Encoding"),
        }
    } else {
        match content_length(&headers).map_err(|r| r.why)? {
            Some(0) => BodyLength::Empty,
            Some(n) => BodyLength::Known(n),
            None => BodyLength::UntilClose,
        }
    };
    let connection = ConnectionTokens::of(&headers);
    let keep_alive = body != BodyLength::UntilClose
        && match version {
            Version::Http11 => !connection.close,
            Version::Http10 => connection.keep_alive && !connection.close,
        };
    let head = ResponseHead {
        status,
        version,
        headers,
        body,
        keep_alive,
    };
    Ok(Parsed::Complete(head, len))
}

// ------------------------------------------------------------------ Date

thread_local! {
    /// The formatted date and the second it is for: formatting costs once a second per thread.
    static DATE: std::cell::Cell<(u64, [u8; 29])> = const { std::cell::Cell::new((u64::MAX, [0; 29])) };
}

/// Now as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), cached per second and thread.
pub(crate) fn http_date_now() -> [u8; 29] {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let (at, text) = cell.get();
        if at == secs {
            return text;
        }
        let text = http_date(secs);
        cell.set((secs, text));
        text
    })
}

/// `secs` since the Unix epoch as an IMF-fixdate.
pub(crate) fn http_date(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |out: &mut [u8; 29], at: usize, n: u64| {
        out[at] = b'0' + (n / 10) as u8;
        out[at + 1] = b'0' + (n % 10) as u8;
    };
    two(&mut out, 5, day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out, 12, year / 100 % 100);
    two(&mut out, 14, year % 100);
    two(&mut out, 17, in_day / 3600);
    two(&mut out, 20, in_day / 60 % 60);
    two(&mut out, 23, in_day % 60);
    out
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_head: 64 * 1024,
        max_target: 8 * 1024,
    };

    fn parse(text: &str) -> Result<Request, Refusal> {
        match parse_request(&Bytes::copy_from_slice(text.as_bytes()), LIMITS)? {
            Parsed::Complete(req, len) => {
                assert_eq!(len, text.len());
                Ok(req)
            }
            Parsed::Partial => panic!("incomplete: {text:?}"),
        }
    }

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&http_date(4_102_444_799), b"Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn a_plain_get_and_its_parts() {
        let req = parse("GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n").unwrap();
        assert_eq!(req.method(), &Method::Get);
        assert_eq!(req.path(), "/a/b");
        assert_eq!(req.query_param("x"), Some("1"));
        assert_eq!(req.query_param("y"), Some(""));
        assert_eq!(req.headers().get_str("x-a"), Some("1"));
        assert_eq!(req.body_length(), BodyLength::Empty);
        assert!(req.keep_alive());
        let old = parse("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!old.keep_alive());
        let old = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(old.keep_alive());
        let close = parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!close.keep_alive());
    }

    #[test]
    fn body_lengths_and_smuggling_rules() {
        let status = |text: &str| parse(text).map(|r| r.body_length()).map_err(|r| r.status);
        let h = "POST / HTTP/1.1\r\nHost: h\r\n";
        assert_eq!(
            status(&format!("{h}Content-Length: 5\r\n\r\n")),
            Ok(BodyLength::Known(5))
        );
        assert_eq!(
            status(&format!("{h}Content-Length: 5, 5\r\n\r\n")),
            Ok(BodyLength::Known(5))
        );
        assert_eq!(
            status(&format!(
                "{h}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
            )),
            Ok(BodyLength::Known(5))
        );
        assert_eq!(
            status(&format!(
                "{h}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
            )),
            Err(400)
        );
        assert_eq!(status(&format!("{h}Content-Length: +5\r\n\r\n")), Err(400));
        assert_eq!(
            status(&format!("{h}Content-Length: 99999999999999999999\r\n\r\n")),
            Err(400)
        );
        assert_eq!(
            status(&format!("{h}Transfer-Encoding: chunked\r\n\r\n")),
            Ok(BodyLength::Chunked)
        );
        assert_eq!(
            status(&format!(
                "{h}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
            )),
            Err(400)
        );
        assert_eq!(
            status(&format!("{h}Transfer-Encoding: gzip, chunked\r\n\r\n")),
            Err(501)
        );
        assert_eq!(
            status(&format!("{h}Transfer-Encoding: gzip\r\n\r\n")),
            Err(501)
        );
        assert_eq!(
            status(&format!("{h}Transfer-Encoding: chunked, chunked\r\n\r\n")),
            Err(400)
        );
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(400)
        );
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), Err(400), "no Host");
        assert_eq!(
            status(&format!("{h}Expect: 100-continue\r\n\r\n")),
            Ok(BodyLength::Empty)
        );
        assert_eq!(status(&format!("{h}Expect: something\r\n\r\n")), Err(417));
    }

    #[test]
    fn limits_are_refused_before_the_head_completes() {
        let long_target = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        let partial = parse_request(&Bytes::from(long_target.clone()), LIMITS);
        assert_eq!(partial.err().map(|r| r.status), Some(414));
        let no_newline = Bytes::from(format!("GET /{}", "a".repeat(9000)));
        assert_eq!(
            parse_request(&no_newline, LIMITS).err().map(|r| r.status),
            Some(414)
        );
        let mut big = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        while big.len() <= 64 * 1024 {
            big.push_str("X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        let partial = parse_request(&Bytes::from(big), LIMITS);
        assert_eq!(partial.err().map(|r| r.status), Some(431));
        let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..100 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(parse(&many).err().map(|r| r.status), Some(431));
    }

    #[test]
    fn responses_write_framing_and_connection() {
        let mut out = BytesMut::new();
        Response::new(200)
            .header("content-type", "text/plain")
            .length(5)
            .write_head(&mut out, Framing::Length(5), ConnHeader::Close);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{text}");
        assert!(
            text.ends_with(
                "content-type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
            ),
            "{text}"
        );
    }
}
