//! TCP behaviour on loopback. Every wait is bounded, and every test ends with the runtime reaching
//! quiescence by itself, which proves every registered socket was released.

use rein::{AmbientAuth, Runtime};
use rein_net::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

mod common;
use common::{fnv, pattern, FNV_START};

const WAIT: Duration = Duration::from_secs(20);

fn setup() -> (Runtime, AmbientAuth, Reactor) {
    let (rt, auth) = Runtime::builder().threads(2).build_with_auth().unwrap();
    let reactor = Reactor::start(&rt.handle()).unwrap();
    (rt, auth, reactor)
}

fn finish(rt: Runtime, reactor: &Reactor) {
    let report = rt
        .wait_timeout(WAIT)
        .unwrap_or_else(|_| panic!("runtime did not end: sockets still registered"));
    assert!(report.quiescent);
    assert_eq!(reactor.registered(), 0);
}

#[derive(Debug)]
enum Ev {
    Listening(SocketAddr),
    NotListening(String),
    Accepted,
    Connected,
    Closed,
    Throttled,
    Unthrottled,
    Refused(usize),
    ConnectFailed(ConnectError),
    Connecting(u32),
    Done(usize, u64),
    /// A send in `received` was refused; `true` if refused bytes were already kept.
    Held(bool),
}

fn expect<T>(rx: &Receiver<Ev>, what: &str, mut pick: impl FnMut(Ev) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => {
                if let Some(v) = pick(ev) {
                    return v;
                }
            }
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Records the connect attempts (`Connecting(n)`) until `done` accepts an event. A failed
/// connect fails the test.
fn attempts_until(rx: &Receiver<Ev>, what: &str, done: impl Fn(&Ev) -> bool) -> Vec<u32> {
    let mut attempts = Vec::new();
    expect(rx, what, |ev| match ev {
        Ev::Connecting(n) => {
            attempts.push(n);
            None
        }
        Ev::ConnectFailed(e) => panic!("connect failed: {e}"),
        ev => done(&ev).then_some(()),
    });
    attempts
}

/// Records the connect attempts until the connect fails, and returns them with the error. A
/// connect that succeeds fails the test with `connected`.
fn attempts_until_failure(rx: &Receiver<Ev>, connected: &str) -> (Vec<u32>, ConnectError) {
    let mut attempts = Vec::new();
    let reason = expect(rx, "connect_failed", |ev| match ev {
        Ev::Connecting(n) => {
            attempts.push(n);
            None
        }
        Ev::ConnectFailed(e) => Some(e),
        Ev::Connected => panic!("{connected}"),
        _ => None,
    });
    (attempts, reason)
}

/// A listener whose connections get handlers from a closure.
struct Server<F> {
    events: Sender<Ev>,
    make: F,
}

impl<H: ConnectionHandler, F: FnMut() -> H + Send + 'static> ListenNotify for Server<F> {
    type Handler = H;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.events.send(Ev::Listening(addr));
    }
    fn not_listening(&mut self, err: BindError) {
        let _ = self.events.send(Ev::NotListening(err.to_string()));
    }
    fn connected(&mut self, _peer: SocketAddr) -> H {
        let _ = self.events.send(Ev::Accepted);
        (self.make)()
    }
}

fn listen<H: ConnectionHandler>(
    reactor: &Reactor,
    auth: &AmbientAuth,
    opts: ListenOptions,
    make: impl FnMut() -> H + Send + 'static,
) -> (ListenerRef, SocketAddr, Receiver<Ev>) {
    let (tx, rx) = channel();
    let server = Server { events: tx, make };
    let addr = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind(reactor, &TcpListenAuth::new(auth), addr, server, opts);
    let bound = expect(&rx, "listening", |ev| match ev {
        Ev::Listening(a) => Some(a),
        Ev::NotListening(e) => panic!("bind failed: {e}"),
        _ => None,
    });
    (listener, bound, rx)
}

/// Echoes everything; stops reading while throttled (it would not need to: a refused send
/// holds delivery until `unthrottled` anyway).
struct Echo {
    events: Option<Sender<Ev>>,
    pending: Option<Bytes>,
}

impl Echo {
    fn new(events: Option<Sender<Ev>>) -> Self {
        Echo {
            events,
            pending: None,
        }
    }
    fn tell(&self, ev: Ev) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ev);
        }
    }
}

impl ConnectionHandler for Echo {
    type Msg = ();
    fn connected(&mut self, _conn: &mut Conn<Self>) {
        self.tell(Ev::Connected);
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        if let Err(e) = conn.send(data) {
            // Only when a send already crossed the high watermark in this turn; no `received`
            // follows until `unthrottled`, so nothing can overwrite it.
            self.pending = Some(e.into_inner());
        }
        Flow::Continue
    }
    fn throttled(&mut self, conn: &mut Conn<Self>) {
        conn.mute();
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        if let Some(data) = self.pending.take() {
            conn.send(data).expect("writeable after unthrottled");
        }
        conn.unmute();
    }
    fn closed(&mut self, _reason: CloseReason) {
        self.tell(Ev::Closed);
    }
}

/// Sends `total` pattern bytes as fast as the connection takes them, checks the echo, closes.
struct Pumper {
    events: Sender<Ev>,
    total: usize,
    chunk: usize,
    sent: usize,
    received: usize,
    hash: u64,
    /// The next token `sent` should report.
    tokens: u64,
}

impl Pumper {
    fn new(events: Sender<Ev>, total: usize, chunk: usize) -> Self {
        Pumper {
            events,
            total,
            chunk,
            sent: 0,
            received: 0,
            hash: FNV_START,
            tokens: 0,
        }
    }

    fn pump(&mut self, conn: &mut Conn<Self>) {
        while self.sent < self.total {
            let len = self.chunk.min(self.total - self.sent);
            match conn.send(pattern(self.sent, len)) {
                Ok(_) => self.sent += len,
                Err(SendError::NotWriteable(back)) => {
                    assert_eq!(back, pattern(self.sent, len), "refused bytes come back");
                    let _ = self.events.send(Ev::Refused(back.len()));
                    return;
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    }
}

impl ConnectionHandler for Pumper {
    type Msg = ();
    fn connecting(&mut self, attempt: u32) {
        let _ = self.events.send(Ev::Connecting(attempt));
    }
    fn connected(&mut self, conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Connected);
        self.pump(conn);
    }
    fn connect_failed(&mut self, reason: ConnectError) {
        let _ = self.events.send(Ev::ConnectFailed(reason));
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        assert_eq!(data, pattern(self.received, data.len()), "echo is in order");
        self.received += data.len();
        fnv(&mut self.hash, &data);
        if self.received == self.total {
            let _ = self.events.send(Ev::Done(self.received, self.hash));
            conn.close();
        }
        Flow::Continue
    }
    fn throttled(&mut self, _conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Throttled);
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Unthrottled);
        self.pump(conn);
    }
    fn sent(&mut self, conn: &mut Conn<Self>, token: SendToken) {
        assert_eq!(
            token.seq(),
            self.tokens,
            "sent tokens come in order, each once"
        );
        self.tokens += 1;
        self.pump(conn);
    }
    fn closed(&mut self, _reason: CloseReason) {
        let _ = self.events.send(Ev::Closed);
    }
}

#[test]
fn echo_of_four_mebibytes_with_checksum() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server_events) =
        listen(&reactor, &auth, ListenOptions::default(), || {
            Echo::new(None)
        });
    let total = 4 << 20;
    let (tx, rx) = channel();
    let client = Pumper::new(tx, total, 16 * 1024);
    let connect = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default();
    TcpConnection::connect(&reactor, &connect, "127.0.0.1", addr.port(), client, opts);
    let (got, hash) = expect(&rx, "the echo", |ev| match ev {
        Ev::Done(n, h) => Some((n, h)),
        Ev::ConnectFailed(e) => panic!("connect failed: {e}"),
        _ => None,
    });
    let mut want = FNV_START;
    fnv(&mut want, &pattern(0, total));
    assert_eq!((got, hash), (total, want));
    expect(&rx, "the client closed", |ev| {
        matches!(ev, Ev::Closed).then_some(())
    });
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn a_peer_that_does_not_read_throttles_then_everything_arrives() {
    let (rt, auth, reactor) = setup();
    // Well past what loopback's kernel buffers hold (a few MiB).
    let total = 16 << 20;
    let (tx, rx) = channel();
    let mut make_tx = Some(tx);
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), move || {
        Pumper::new(make_tx.take().expect("one connection"), total, 64 * 1024)
    });
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    expect(&rx, "throttled", |ev| {
        matches!(ev, Ev::Throttled).then_some(())
    });
    expect(&rx, "a refused send", |ev| match ev {
        Ev::Refused(n) => {
            assert_eq!(n, 64 * 1024);
            Some(())
        }
        _ => None,
    });
    // Now read everything; the server closes (gracefully) once it has sent it all.
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0; 256 * 1024];
    let mut got = 0;
    loop {
        let n = peer.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(&buf[..n], &pattern(got, n)[..]);
        got += n;
        if got == total {
            // The pumper closes after its echo completes; nothing comes back here, so close.
            break;
        }
    }
    assert_eq!(got, total);
    expect(&rx, "unthrottled", |ev| {
        matches!(ev, Ev::Unthrottled).then_some(())
    });
    drop(peer);
    expect(&rx, "the server side closed", |ev| {
        matches!(ev, Ev::Closed).then_some(())
    });
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn connection_refused_is_typed() {
    let (rt, auth, reactor) = setup();
    let port = closed_port().port();
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 1, 1);
    let connect = TcpConnectAuth::new(&auth);
    TcpConnection::connect(
        &reactor,
        &connect,
        "127.0.0.1",
        port,
        client,
        Default::default(),
    );
    let (attempts, reason) = attempts_until_failure(&rx, "connected to a closed port");
    assert_eq!(attempts, [1]);
    assert!(matches!(reason, ConnectError::Refused), "{reason:?}");
    finish(rt, &reactor);
}

/// Replies to `close` with `bye` then closes; to `hard` with a big reply then hard-closes.
struct Closer {
    events: Sender<Ev>,
}

impl ConnectionHandler for Closer {
    type Msg = ();
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        match &data[..] {
            b"close" => {
                conn.send(b"bye".to_vec()).unwrap();
                conn.close();
                assert!(matches!(
                    conn.send(b"late".to_vec()),
                    Err(SendError::NotConnected(_))
                ));
            }
            b"hard" => {
                conn.send(vec![7; 8 << 20]).unwrap();
                conn.abort();
            }
            _ => {}
        }
        Flow::Continue
    }
    fn closed(&mut self, _reason: CloseReason) {
        let _ = self.events.send(Ev::Closed);
    }
}

#[test]
fn close_flushes_but_hard_close_resets() {
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), move || {
        Closer { events: tx.clone() }
    });

    let mut gentle = std::net::TcpStream::connect(addr).unwrap();
    gentle.set_read_timeout(Some(WAIT)).unwrap();
    gentle.write_all(b"close").unwrap();
    let mut reply = Vec::new();
    gentle.read_to_end(&mut reply).unwrap();
    assert_eq!(
        reply, b"bye",
        "graceful close flushes, then the peer sees end of stream"
    );
    drop(gentle);
    expect(&rx, "closed", |ev| matches!(ev, Ev::Closed).then_some(()));

    let mut rough = std::net::TcpStream::connect(addr).unwrap();
    rough.set_read_timeout(Some(WAIT)).unwrap();
    rough.write_all(b"hard").unwrap();
    expect(&rx, "closed", |ev| matches!(ev, Ev::Closed).then_some(()));
    let mut buf = vec![0; 64 * 1024];
    let mut got = 0;
    let end = loop {
        match rough.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => got += n,
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(
        end,
        Some(std::io::ErrorKind::ConnectionReset),
        "after {got} bytes"
    );
    assert!(got < 8 << 20, "a hard close drops queued bytes");

    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn listener_stops_accepting_at_its_limit_and_resumes_below_it() {
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let opts = ListenOptions::default().max_connections(2);
    let (listener, addr, accepted) =
        listen(&reactor, &auth, opts, move || Echo::new(Some(tx.clone())));
    let mut peers: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    for _ in 0..2 {
        expect(&rx, "connected", |ev| {
            matches!(ev, Ev::Connected).then_some(())
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    let extra: Vec<_> = accepted.try_iter().collect();
    assert_eq!(extra.len(), 2, "only two accepted: {extra:?}");
    // The third peer waits in the backlog; it is accepted once one ends.
    drop(peers.remove(0));
    expect(&rx, "one closed", |ev| {
        matches!(ev, Ev::Closed).then_some(())
    });
    expect(&rx, "the third connected", |ev| {
        matches!(ev, Ev::Connected).then_some(())
    });
    let last = &mut peers[1];
    last.set_read_timeout(Some(WAIT)).unwrap();
    last.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    last.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    drop(peers);
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn idle_connections_time_out() {
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let mut opts = ListenOptions::default();
    opts.connection.idle_timeout = Some(Duration::from_millis(200));
    let (listener, addr, _server) =
        listen(&reactor, &auth, opts, move || Echo::new(Some(tx.clone())));
    let start = Instant::now();
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    expect(&rx, "closed", |ev| matches!(ev, Ev::Closed).then_some(()));
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn a_thousand_concurrent_connections() {
    // 2,000 sockets in all (both ends are in this process).
    const CONNECTIONS: usize = 1_000;
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), || {
        Echo::new(None)
    });
    let (tx, rx) = channel();
    let connect = TcpConnectAuth::new(&auth);
    for _ in 0..CONNECTIONS {
        let client = Pumper::new(tx.clone(), 1024, 1024);
        let opts = ConnectionOptions::default();
        TcpConnection::connect(&reactor, &connect, "127.0.0.1", addr.port(), client, opts);
    }
    for i in 0..CONNECTIONS {
        expect(&rx, &format!("echo {i}"), |ev| match ev {
            Ev::Done(n, _) => {
                assert_eq!(n, 1024);
                Some(())
            }
            Ev::ConnectFailed(e) => panic!("connect failed: {e}"),
            _ => None,
        });
    }
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn bind_conflict_is_typed() {
    let (rt, auth, reactor) = setup();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (tx, rx) = channel();
    let server = Server {
        events: tx,
        make: || Echo::new(None),
    };
    let opts = ListenOptions::default().reuse_addr(false);
    TcpListener::bind(&reactor, &TcpListenAuth::new(&auth), addr, server, opts);
    let err = expect(&rx, "not_listening", |ev| match ev {
        Ev::NotListening(e) => Some(e),
        Ev::Listening(_) => panic!("bound a taken port"),
        _ => None,
    });
    assert!(err.contains("in use"), "{err}");
    finish(rt, &reactor);
}

/// Hands its connection's writer to the test, then ignores input.
struct Handoff {
    writer: Sender<rein::Recipient<Bytes>>,
    events: Sender<Ev>,
}

impl ConnectionHandler for Handoff {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        let _ = self.writer.send(conn.writer());
    }
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
    fn throttled(&mut self, _conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Throttled);
    }
    fn closed(&mut self, _reason: CloseReason) {
        let _ = self.events.send(Ev::Closed);
    }
}

/// Writes `total` bytes to a connection, one 64 KiB chunk per behaviour.
struct Producer {
    writer: rein::Recipient<Bytes>,
    sent: usize,
    total: usize,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl rein::Actor for Producer {
    type Msg = ();
    fn handle(&mut self, ctx: &mut rein::Context<Self>, (): ()) {
        if self.sent < self.total {
            let len = (64 * 1024).min(self.total - self.sent);
            self.writer
                .send(Bytes::from(vec![(self.sent / len) as u8; len]))
                .unwrap();
            self.sent += len;
            self.progress
                .store(self.sent, std::sync::atomic::Ordering::SeqCst);
            let _ = ctx.myself().send(());
        }
    }
}

#[test]
fn actors_writing_to_a_throttled_connection_are_muted() {
    let (rt, auth, reactor) = setup();
    let (wtx, wrx) = channel();
    let (etx, erx) = channel();
    let (listener, addr, _server) =
        listen(&reactor, &auth, ListenOptions::default(), move || Handoff {
            writer: wtx.clone(),
            events: etx.clone(),
        });
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    let writer = wrx.recv_timeout(WAIT).unwrap();
    let total = 64 << 20;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    rt.spawn(Producer {
        writer,
        sent: 0,
        total,
        progress: progress.clone(),
    })
    .send(())
    .unwrap();
    expect(&erx, "throttled", |ev| {
        matches!(ev, Ev::Throttled).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let held = progress.load(std::sync::atomic::Ordering::SeqCst);
    assert!(held < total, "the producer was not held back");
    assert!(rt.metrics().mutes > 0, "the producer was muted");
    // Read everything: the producer resumes and finishes.
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0; 256 * 1024];
    let mut got = 0;
    while got < total {
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0, "early end of stream after {got} bytes");
        got += n;
    }
    assert_eq!(got, total);
    drop(peer);
    expect(&erx, "closed", |ev| matches!(ev, Ev::Closed).then_some(()));
    assert!(listener.close());
    finish(rt, &reactor);
}

/// Length-prefixed frames: a 4-byte big-endian length, then the body; echoes each body back
/// reversed, yielding after every frame.
struct Framed {
    header: bool,
}

impl ConnectionHandler for Framed {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.expect(4);
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        if self.header {
            let len = u32::from_be_bytes(data[..].try_into().unwrap()) as usize;
            conn.expect(len);
            self.header = false;
            Flow::Continue
        } else {
            let mut body = data.to_vec();
            body.reverse();
            conn.send(body).unwrap();
            conn.expect(4);
            self.header = true;
            Flow::Yield
        }
    }
}

#[test]
fn expect_delivers_exact_frames_and_yield_resumes() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), || Framed {
        header: true,
    });
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let bodies: Vec<Vec<u8>> = (1..=50u8).map(|n| (0..n).collect()).collect();
    let mut wire = Vec::new();
    for body in &bodies {
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
        wire.extend_from_slice(body);
    }
    // All frames in one write: they arrive glued together and must be split.
    peer.write_all(&wire).unwrap();
    let want: Vec<u8> = bodies
        .iter()
        .flat_map(|b| b.iter().rev().copied())
        .collect();
    let mut got = vec![0; want.len()];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
    drop(peer);
    assert!(listener.close());
    finish(rt, &reactor);
}

/// Registers a Unix stream in `started` and reports what it reads from it.
struct Pipe {
    reactor: Reactor,
    stream: Option<std::os::unix::net::UnixStream>,
    source: Option<Registered<std::os::unix::net::UnixStream>>,
    want: usize,
    got: Vec<u8>,
    done: Sender<Vec<u8>>,
}

impl rein::Actor for Pipe {
    type Msg = Readiness;
    fn started(&mut self, ctx: &mut rein::Context<Self>) {
        let stream = self.stream.take().unwrap();
        let owner = ctx.myself().recipient();
        self.source = Some(
            self.reactor
                .register(stream, Interest::READABLE, owner)
                .unwrap(),
        );
    }
    fn handle(&mut self, ctx: &mut rein::Context<Self>, ready: Readiness) {
        if !ready.readable {
            return;
        }
        let Some(source) = self.source.as_mut() else {
            return;
        };
        let mut buf = [0; 1024];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        if self.got.len() >= self.want {
            // Dropping the registration releases the runtime.
            self.source = None;
            let _ = self.done.send(std::mem::take(&mut self.got));
            ctx.stop();
        }
    }
}

#[test]
fn users_can_register_their_own_sources() {
    let (rt, _auth, reactor) = setup();
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let (tx, rx) = channel();
    rt.spawn(Pipe {
        reactor: reactor.clone(),
        stream: Some(ours),
        source: None,
        want: 11,
        got: Vec::new(),
        done: tx,
    });
    // Registered in `started`; the kernel reports data that arrived before registration too.
    theirs.write_all(b"hello ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    theirs.write_all(b"world").unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), b"hello world");
    finish(rt, &reactor);
}

/// Panics on `boom`, echoes anything else.
struct Fragile;

impl ConnectionHandler for Fragile {
    type Msg = ();
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        assert_ne!(&data[..], b"boom", "handler blew up on purpose");
        conn.send(data).unwrap();
        Flow::Continue
    }
}

#[test]
fn a_panicking_handler_releases_its_socket_and_its_slot() {
    let (rt, auth, reactor) = setup();
    let opts = ListenOptions::default().max_connections(1);
    let (listener, addr, _server) = listen(&reactor, &auth, opts, || Fragile);
    let mut first = std::net::TcpStream::connect(addr).unwrap();
    first.set_read_timeout(Some(WAIT)).unwrap();
    first.write_all(b"boom").unwrap();
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // The single slot is free again.
    let mut second = std::net::TcpStream::connect(addr).unwrap();
    second.set_read_timeout(Some(WAIT)).unwrap();
    second.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    second.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    drop((first, second));
    assert!(listener.close());
    let report = rt
        .wait_timeout(WAIT)
        .unwrap_or_else(|_| panic!("did not end"));
    assert!(report.quiescent);
    assert_eq!(report.metrics.panics, 1);
    assert_eq!(reactor.registered(), 0);
}

/// Queues far more than the kernel takes, then closes gracefully as soon as it is throttled.
struct CloseWhenThrottled {
    events: Sender<Ev>,
}

impl ConnectionHandler for CloseWhenThrottled {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.send(vec![1; 32 << 20]).unwrap();
    }
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
    fn throttled(&mut self, conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Throttled);
        conn.close();
    }
    fn closed(&mut self, _reason: CloseReason) {
        let _ = self.events.send(Ev::Closed);
    }
}

#[test]
fn a_graceful_close_to_a_peer_that_never_reads_ends_by_reset() {
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let mut opts = ListenOptions::default();
    opts.connection.close_linger = Duration::from_millis(300);
    let (listener, addr, _server) = listen(&reactor, &auth, opts, move || CloseWhenThrottled {
        events: tx.clone(),
    });
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    expect(&rx, "throttled", |ev| {
        matches!(ev, Ev::Throttled).then_some(())
    });
    let start = Instant::now();
    expect(&rx, "closed", |ev| matches!(ev, Ev::Closed).then_some(()));
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0; 1 << 20];
    let end = loop {
        match peer.read(&mut buf) {
            Ok(0) => break None,
            Ok(_) => {}
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn connect_times_out_when_syns_go_unanswered() {
    // A listener that never accepts, with its backlog full: Linux drops further SYNs, so a
    // connect neither succeeds nor is refused.
    let Some((addr, socket, fillers)) = black_hole() else {
        eprintln!("skipped: this kernel answers SYNs beyond the backlog");
        return;
    };
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let opts = ConnectionOptions::default().connect_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let client = Pumper::new(tx, 1, 1);
    let connect = TcpConnectAuth::new(&auth);
    TcpConnection::connect(&reactor, &connect, "127.0.0.1", addr.port(), client, opts);
    let (_, reason) = attempts_until_failure(&rx, "connected to a full backlog");
    assert!(matches!(reason, ConnectError::TimedOut), "{reason:?}");
    assert!(start.elapsed() >= Duration::from_millis(250));
    finish(rt, &reactor);
    drop((fillers, socket));
}

#[test]
fn listens_on_ipv6_loopback_when_available() {
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let server = Server {
        events: tx,
        make: || Echo::new(None),
    };
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    let listener = TcpListener::bind(
        &reactor,
        &TcpListenAuth::new(&auth),
        addr,
        server,
        Default::default(),
    );
    let bound = expect(&rx, "a bind result", |ev| match ev {
        Ev::Listening(a) => Some(Some(a)),
        Ev::NotListening(e) => {
            eprintln!("skipped: no IPv6 loopback here ({e})");
            Some(None)
        }
        _ => None,
    });
    if let Some(bound) = bound {
        assert!(bound.is_ipv6());
        let mut peer = std::net::TcpStream::connect(bound).unwrap();
        peer.set_read_timeout(Some(WAIT)).unwrap();
        peer.write_all(b"six").unwrap();
        let mut buf = [0; 3];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"six");
        assert!(listener.close());
    }
    finish(rt, &reactor);
}

#[test]
fn connects_by_name_trying_each_address_in_turn() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), || {
        Echo::new(None)
    });
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 0))
        .unwrap()
        .collect();
    // Only 127.0.0.1 listens: any address tried before it (such as ::1) is refused and skipped.
    // Attempts go in happy-eyeballs order: IPv6 and IPv4 alternate, IPv6 first.
    let (v6, v4): (Vec<_>, Vec<_>) = resolved.into_iter().partition(SocketAddr::is_ipv6);
    let mut ordered: Vec<&SocketAddr> = Vec::new();
    for i in 0..v6.len().max(v4.len()) {
        ordered.extend(v6.get(i));
        ordered.extend(v4.get(i));
    }
    let Some(index) = ordered.iter().position(|a| a.ip() == addr.ip()) else {
        eprintln!("skipped: localhost does not resolve to {}", addr.ip());
        return;
    };
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 4096, 1024);
    let connect = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default();
    TcpConnection::connect(&reactor, &connect, "localhost", addr.port(), client, opts);
    let attempts = attempts_until(&rx, "the echo", |ev| match ev {
        Ev::Done(n, _) => {
            assert_eq!(*n, 4096);
            true
        }
        _ => false,
    });
    assert_eq!(attempts.last().copied(), Some(index as u32 + 1));
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn a_name_that_does_not_resolve_is_typed() {
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 1, 1);
    let connect = TcpConnectAuth::new(&auth);
    // `.invalid` never resolves (RFC 6761). The timeout leaves a slow resolver time to say so:
    // the connect must fail on the lookup, not time out.
    let opts = ConnectionOptions::default().connect_timeout(Duration::from_secs(15));
    TcpConnection::connect(&reactor, &connect, "nonexistent.invalid", 80, client, opts);
    let (attempts, reason) = attempts_until_failure(&rx, "connected to nonexistent.invalid");
    assert!(attempts.is_empty(), "{attempts:?}");
    assert!(matches!(reason, ConnectError::Resolve(_)), "{reason:?}");
    finish(rt, &reactor);
}

#[test]
fn a_refused_address_falls_through_to_the_next() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), || {
        Echo::new(None)
    });
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 4096, 1024);
    let connect = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default();
    TcpConnection::connect_addrs(&reactor, &connect, vec![closed_port(), addr], client, opts);
    let attempts = attempts_until(&rx, "the echo", |ev| matches!(ev, Ev::Done(..)));
    assert_eq!(attempts, [1, 2]);
    assert!(listener.close());
    finish(rt, &reactor);
}

/// A loopback address that never answers: a listener that never accepts, with its backlog full,
/// so Linux drops further SYNs. Keep the returned sockets alive while it is used. `None` where
/// the kernel answers SYNs beyond the backlog.
fn black_hole() -> Option<(SocketAddr, socket2::Socket, Vec<std::net::TcpStream>)> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let full = (0..16).any(|_| {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => {
                fillers.push(s);
                false
            }
            Err(_) => true,
        }
    });
    full.then_some((addr, socket, fillers))
}

fn closed_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

#[test]
fn an_unanswered_address_is_raced_after_the_attempt_delay() {
    let Some((hole, _socket, _fillers)) = black_hole() else {
        eprintln!("skipped: this kernel answers SYNs beyond the backlog");
        return;
    };
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), || {
        Echo::new(None)
    });
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 4096, 1024);
    let connect = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default()
        .connect_timeout(Duration::from_secs(8))
        .attempt_delay(Duration::from_millis(100));
    let start = Instant::now();
    TcpConnection::connect_addrs(&reactor, &connect, vec![hole, addr], client, opts);
    let attempts = attempts_until(&rx, "connected", |ev| matches!(ev, Ev::Connected));
    // About the attempt delay, nowhere near the connect timeout.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(attempts, [1, 2]);
    expect(&rx, "the echo", |ev| {
        matches!(ev, Ev::Done(4096, _)).then_some(())
    });
    // The losing attempt was released when the other won: at most the listener, its accepted
    // connection and the client are left.
    assert!(reactor.registered() <= 3, "{}", reactor.registered());
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn a_refused_address_starts_the_next_at_once() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), || {
        Echo::new(None)
    });
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 1024, 1024);
    let connect = TcpConnectAuth::new(&auth);
    // An attempt delay far beyond the wait: only the refusal can start the second attempt.
    let opts = ConnectionOptions::default().attempt_delay(Duration::from_secs(60));
    let addrs = vec![closed_port(), closed_port(), addr];
    TcpConnection::connect_addrs(&reactor, &connect, addrs, client, opts);
    let attempts = attempts_until(&rx, "the echo", |ev| matches!(ev, Ev::Done(..)));
    assert_eq!(attempts, [1, 2, 3]);
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn all_addresses_refused_is_typed() {
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 1, 1);
    let connect = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default()
        .connect_timeout(Duration::from_secs(8))
        .attempt_delay(Duration::from_secs(60));
    let start = Instant::now();
    let addrs = vec![closed_port(), closed_port(), closed_port()];
    TcpConnection::connect_addrs(&reactor, &connect, addrs, client, opts);
    let (attempts, reason) = attempts_until_failure(&rx, "connected to a closed port");
    assert!(matches!(reason, ConnectError::Refused), "{reason:?}");
    assert_eq!(attempts, [1, 2, 3]);
    // Each refusal started the next attempt: neither the delay nor the timeout was waited for.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    finish(rt, &reactor);
}

#[test]
fn racing_unanswered_addresses_times_out_as_a_whole() {
    let Some((hole, _socket, _fillers)) = black_hole() else {
        eprintln!("skipped: this kernel answers SYNs beyond the backlog");
        return;
    };
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 1, 1);
    let connect = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default()
        .connect_timeout(Duration::from_millis(600))
        .attempt_delay(Duration::from_millis(100));
    let start = Instant::now();
    TcpConnection::connect_addrs(&reactor, &connect, vec![hole, hole, hole], client, opts);
    let (attempts, reason) = attempts_until_failure(&rx, "connected to a full backlog");
    assert!(matches!(reason, ConnectError::TimedOut), "{reason:?}");
    // All three ran side by side; the timeout bounds the whole connect, not each attempt.
    assert_eq!(attempts, [1, 2, 3]);
    assert!(start.elapsed() >= Duration::from_millis(550));
    finish(rt, &reactor);
}

/// Reports the socket options in force once connected, then closes.
struct OptionsReporter {
    out: Sender<Option<SocketOptions>>,
}

impl ConnectionHandler for OptionsReporter {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        let _ = self.out.send(conn.socket_options());
        conn.close();
    }
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
}

#[test]
fn socket_options_are_applied_and_read_back() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), || {
        Echo::new(None)
    });
    let connect = TcpConnectAuth::new(&auth);
    let (tx, rx) = channel();
    let tuned = ConnectionOptions::default()
        .keepalive(Duration::from_secs(30))
        .send_buffer_size(256 * 1024)
        .recv_buffer_size(128 * 1024)
        .nodelay(false);
    let handler = OptionsReporter { out: tx.clone() };
    TcpConnection::connect(&reactor, &connect, "127.0.0.1", addr.port(), handler, tuned);
    let got = rx.recv_timeout(WAIT).unwrap().expect("read back");
    assert_eq!(got.keepalive, Some(true));
    assert_eq!(got.nodelay, Some(false));
    // Linux doubles what it is given (for bookkeeping); anything at least the request is fine.
    assert!(got.send_buffer_size.unwrap() >= 256 * 1024, "{got:?}");
    assert!(got.recv_buffer_size.unwrap() >= 128 * 1024, "{got:?}");

    let handler = OptionsReporter { out: tx };
    let plain = ConnectionOptions::default();
    TcpConnection::connect(&reactor, &connect, "127.0.0.1", addr.port(), handler, plain);
    let got = rx.recv_timeout(WAIT).unwrap().expect("read back");
    assert_eq!(got.keepalive, Some(false), "keepalive is off by default");
    assert_eq!(got.nodelay, Some(true), "TCP_NODELAY is on by default");
    assert!(listener.close());
    finish(rt, &reactor);
}

/// The echo handler the crate docs show: a refused send is kept and sent on `unthrottled`.
/// `mute_when_throttled` adds the older docs' `mute`/`unmute`, which must be correct too.
struct DocsEcho {
    events: Sender<Ev>,
    frame: usize,
    mute_when_throttled: bool,
    pending: Option<Bytes>,
}

impl ConnectionHandler for DocsEcho {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.expect(self.frame);
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        if let Err(refused) = conn.send(data) {
            let _ = self.events.send(Ev::Held(self.pending.is_some()));
            self.pending = Some(refused.into_inner());
        }
        Flow::Continue
    }
    fn throttled(&mut self, conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Throttled);
        if self.mute_when_throttled {
            conn.mute();
        }
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        if let Some(data) = self.pending.take() {
            let _ = conn.send(data);
        }
        if self.mute_when_throttled {
            conn.unmute();
        }
    }
    fn closed(&mut self, _reason: CloseReason) {
        let _ = self.events.send(Ev::Closed);
    }
}

/// Streams `total` pattern bytes through a framed echo with the docs' handler while reading
/// slowly, and checks every byte that comes back, in order.
fn framed_echo_to_a_slow_reader(mute_when_throttled: bool) {
    const FRAME: usize = 100;
    // About 16 MiB, in whole frames.
    let total: usize = (16 << 20) / FRAME * FRAME;
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let mut opts = ListenOptions::default();
    // A small kernel send buffer: the write queue drains a few KiB at a time, so it is seldom
    // empty when the echo reads on, and a turn's frames cross the high watermark mid-turn.
    opts.connection.send_buffer_size = Some(8 * 1024);
    let (listener, addr, _server) = listen(&reactor, &auth, opts, move || DocsEcho {
        events: tx.clone(),
        frame: FRAME,
        mute_when_throttled,
        pending: None,
    });
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.set_write_timeout(Some(WAIT)).unwrap();
    let mut writer = peer.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let block = 1 << 20;
        for offset in (0..total).step_by(block) {
            let len = block.min(total - offset);
            writer.write_all(&pattern(offset, len)).unwrap();
        }
    });
    // Read nothing until the server's write queue is over its high watermark, so the echo has
    // to hold refused bytes; then read slowly for a while, so it throttles again and again.
    expect(&rx, "the server throttled", |ev| match ev {
        Ev::Throttled => Some(()),
        Ev::Held(true) => panic!("received was delivered before unthrottled"),
        _ => None,
    });
    let mut buf = vec![0; 16 * 1024];
    let mut got = 0;
    let mut reads = 0;
    while got < total {
        if reads % 4 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let n = peer
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {reads} after {got} bytes: {e}"));
        assert!(n > 0, "early end of stream after {got} bytes");
        let want = pattern(got, n);
        if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
            panic!("echo differs at byte {} (read {reads})", got + i);
        }
        got += n;
        reads += 1;
    }
    sender.join().unwrap();
    let (mut throttles, mut held, mut overwritten) = (1, 0, 0);
    for ev in rx.try_iter() {
        match ev {
            Ev::Throttled => throttles += 1,
            Ev::Held(over) => {
                held += 1;
                overwritten += usize::from(over);
            }
            _ => {}
        }
    }
    eprintln!("{got} bytes echoed in order in {reads} reads; {throttles}+ throttles, {held} held");
    assert!(
        held > 0,
        "the echo never had to keep refused bytes: nothing was tested"
    );
    assert_eq!(overwritten, 0, "received was delivered before unthrottled");
    drop(peer);
    expect(&rx, "the server side closed", |ev| {
        matches!(ev, Ev::Closed).then_some(())
    });
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn framed_echo_with_the_docs_handler_loses_nothing_to_a_slow_reader() {
    framed_echo_to_a_slow_reader(false);
}

#[test]
fn framed_echo_that_also_mutes_loses_nothing_to_a_slow_reader() {
    framed_echo_to_a_slow_reader(true);
}

/// Checks 10-byte frames against the pattern, and counts those that sit right after the
/// previous frame in memory (cut from the same read buffer, not copied).
struct FrameCounter {
    events: Sender<FrameTally>,
    total: usize,
    received: usize,
    adjacent: usize,
    last_end: usize,
}

#[derive(Debug)]
struct FrameTally {
    received: usize,
    frames: usize,
    adjacent: usize,
}

impl ConnectionHandler for FrameCounter {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.expect(10);
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        assert_eq!(data.len(), 10);
        for (i, &b) in data.iter().enumerate() {
            assert_eq!(
                b,
                ((self.received + i) % 251) as u8,
                "at {}",
                self.received + i
            );
        }
        let start = data.as_ptr() as usize;
        self.adjacent += usize::from(start == self.last_end);
        self.last_end = start + data.len();
        self.received += data.len();
        if self.received == self.total {
            let _ = self.events.send(FrameTally {
                received: self.received,
                frames: self.received / 10,
                adjacent: self.adjacent,
            });
            conn.close();
        }
        Flow::Continue
    }
}

#[test]
fn small_frames_out_of_big_reads_are_cut_without_copying() {
    // About 4 MiB in whole frames, written at once: the server reads it up to 64 KiB at a time.
    let total: usize = (4 << 20) / 10 * 10;
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let (listener, addr, _server) = listen(&reactor, &auth, ListenOptions::default(), move || {
        FrameCounter {
            events: tx.clone(),
            total,
            received: 0,
            adjacent: 0,
            last_end: 0,
        }
    });
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.set_write_timeout(Some(WAIT)).unwrap();
    peer.write_all(&pattern(0, total)).unwrap();
    let tally = rx.recv_timeout(WAIT).expect("every frame arrived");
    assert_eq!((tally.received, tally.frames), (total, total / 10));
    // Frames are views of the buffer they were read into: within one read, each frame starts
    // where the previous one ended. Only the first frame of a read (or one straddling two
    // reads) starts elsewhere; reads are at least 8 KiB, so that is under one frame in 800.
    assert!(
        tally.adjacent * 100 >= tally.frames * 99,
        "only {} of {} frames were cut in place",
        tally.adjacent,
        tally.frames
    );
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(peer);
    assert!(listener.close());
    finish(rt, &reactor);
}

/// What [`Deaf`] reports.
enum Heard {
    Muted(ConnRef<()>),
    Got(usize),
}

/// Stops reading the moment it is connected, and reads again when sent `()`.
struct Deaf {
    events: Sender<Heard>,
    got: usize,
}

impl ConnectionHandler for Deaf {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.mute();
        let _ = self.events.send(Heard::Muted(conn.myself()));
    }
    fn received(&mut self, _conn: &mut Conn<Self>, data: Bytes) -> Flow {
        self.got += data.len();
        let _ = self.events.send(Heard::Got(self.got));
        Flow::Continue
    }
    fn message(&mut self, conn: &mut Conn<Self>, _: ()) {
        conn.unmute();
    }
}

#[test]
fn a_muted_connection_stops_reading_until_the_peer_cannot_write() {
    // Read muting is what closes the TCP window on a fast writer: while muted, nothing is read,
    // so the kernel buffers fill and the peer's writes stop. Unmuted, everything arrives.
    let (rt, auth, reactor) = setup();
    let (tx, rx) = channel();
    let mut opts = ListenOptions::default();
    opts.connection.recv_buffer_size = Some(64 * 1024);
    let (listener, addr, _events) = listen(&reactor, &auth, opts, move || Deaf {
        events: tx.clone(),
        got: 0,
    });
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_send_buffer_size(64 * 1024).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut client: std::net::TcpStream = sock.into();
    let recv = |what: &str| {
        rx.recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    };
    let conn = match recv("the connection") {
        Heard::Muted(conn) => conn,
        Heard::Got(n) => panic!("read {n} bytes before muting"),
    };
    // Write until the kernel says stop: with reading muted, that must come within the two
    // kernel buffers (a few MiB at most, whatever the kernel doubles them to), not 64 MiB.
    client.set_nonblocking(true).unwrap();
    let chunk = pattern(0, 64 * 1024);
    let mut written = 0usize;
    let mut stalled_since: Option<Instant> = None;
    while written < 64 << 20 {
        match client.write(&chunk[written % chunk.len()..]) {
            Ok(n) => {
                written += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Stalled for 200 ms: the window is closed.
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(200) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        written < 64 << 20,
        "64 MiB went out to a muted connection: nothing stopped the writer"
    );
    if let Ok(Heard::Got(n)) = rx.try_recv() {
        panic!("a muted connection read {n} bytes");
    }
    // Unmute: every byte written arrives.
    conn.send(()).unwrap();
    let mut got = 0;
    while got < written {
        match recv("the buffered bytes") {
            Heard::Got(n) => got = n,
            Heard::Muted(_) => unreachable!(),
        }
    }
    assert_eq!(got, written);
    drop(client);
    drop(conn);
    listener.close();
    finish(rt, &reactor);
}

#[test]
fn connecting_or_listening_after_the_runtime_ended_is_a_typed_error() {
    let (rt, auth, reactor) = setup();
    let report = rt.wait_timeout(WAIT).expect("an idle runtime ends");
    assert!(report.quiescent);
    // A connect: the handler hears why at once, and the address refuses everything.
    let (tx, rx) = channel();
    let client = Pumper::new(tx, 10, 10);
    let conn = TcpConnection::connect(
        &reactor,
        &TcpConnectAuth::new(&auth),
        "127.0.0.1",
        1,
        client,
        ConnectionOptions::default(),
    );
    match rx.try_recv() {
        Ok(Ev::ConnectFailed(ConnectError::RuntimeEnded)) => {}
        other => panic!("expected connect_failed(RuntimeEnded), got {other:?}"),
    }
    assert!(conn.is_closed());
    assert!(conn.send(()).is_err());
    assert!(conn.write("late").is_err());
    assert!(!conn.close());
    // A bind: the notify hears why at once.
    let (tx, rx) = channel();
    let server = Server {
        events: tx,
        make: || Echo::new(None),
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind(
        &reactor,
        &TcpListenAuth::new(&auth),
        addr,
        server,
        ListenOptions::default(),
    );
    match rx.try_recv() {
        Ok(Ev::NotListening(e)) => assert!(e.contains("runtime has ended"), "{e}"),
        other => panic!("expected not_listening(RuntimeEnded), got {other:?}"),
    }
    assert!(listener.is_closed());
    assert!(!listener.close());
}
