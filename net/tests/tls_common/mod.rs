//! The TLS tests' shared parts: certificates made at test time (rcgen), a runtime with a
//! reactor, TLS listeners and connections, and handlers that echo, pump and stay deaf.
#![allow(dead_code)]

use rein::{AmbientAuth, Runtime};
use rein_net::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
pub use common::{fnv, pattern, FNV_START};

pub const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ certificates

/// A CA, and a leaf it signed for `localhost` and 127.0.0.1, as PEM.
pub struct Pki {
    pub ca: String,
    pub chain: String,
    pub key: String,
}

pub fn ca(name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    (params, key)
}

/// A PKI whose CA is named `ca_name` (two CAs of one name would make a certificate from the
/// other look forged rather than unknown), its leaf edited by `edit`.
pub fn pki_named(ca_name: &str, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Pki {
    let (ca_params, ca_key) = ca(ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    edit(&mut params);
    let leaf = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca_cert.pem(),
        chain: leaf.pem(),
        key: key.serialize_pem(),
    }
}

pub fn pki_with(edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Pki {
    pki_named("rein test CA", edit)
}

pub fn pki() -> Pki {
    pki_with(|_| {})
}

impl Pki {
    pub fn server(&self) -> TlsServer {
        TlsServer::from_pem(self.chain.as_bytes(), self.key.as_bytes()).unwrap()
    }
    pub fn client(&self) -> TlsClient {
        TlsClient::with_roots_pem(self.ca.as_bytes()).unwrap()
    }
    /// Writes the PEM files into a fresh directory for the command-line tools.
    pub fn files(&self, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("rein-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            path
        };
        (
            write("ca.pem", &self.ca),
            write("cert.pem", &self.chain),
            write("key.pem", &self.key),
        )
    }
}

/// A tool the test needs, or a clear failure.
pub fn tool(name: &str) -> &str {
    match Command::new(name).arg("version").output() {
        Ok(_) => name,
        Err(e) => panic!(
            "`{name}` is needed for this test and could not be run ({e}): install it \
             (apt-get install -y openssl curl)"
        ),
    }
}

// ------------------------------------------------------------------ harness

pub fn setup() -> (Runtime, AmbientAuth, Reactor) {
    let (rt, auth) = Runtime::builder().threads(2).build_with_auth().unwrap();
    let reactor = Reactor::start(&rt.handle()).unwrap();
    (rt, auth, reactor)
}

pub fn finish(rt: Runtime, reactor: &Reactor) {
    let report = rt
        .wait_timeout(WAIT)
        .unwrap_or_else(|_| panic!("runtime did not end: sockets still registered"));
    assert!(report.quiescent);
    assert_eq!(reactor.registered(), 0);
}

#[derive(Debug)]
pub enum Ev {
    Listening(SocketAddr),
    Connected(Option<TlsInfo>),
    ConnectFailed(ConnectError),
    Ended(CloseReason),
    Closed(CloseReason),
    Got(Vec<u8>),
    Done(usize, u64),
    Throttled(usize),
    Secured,
}

pub fn expect<T>(rx: &Receiver<Ev>, what: &str, mut pick: impl FnMut(Ev) -> Option<T>) -> T {
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

pub struct Server<F> {
    pub events: Sender<Ev>,
    pub make: F,
}

impl<H: ConnectionHandler, F: FnMut() -> H + Send + 'static> ListenNotify for Server<F> {
    type Handler = H;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.events.send(Ev::Listening(addr));
    }
    fn connected(&mut self, _peer: SocketAddr) -> H {
        (self.make)()
    }
    fn ended(&mut self, ended: ConnectionEnded) {
        let _ = self.events.send(Ev::Ended(ended.reason));
    }
}

/// A TLS listener on 127.0.0.1; its events: `Listening` (consumed here), then `Ended` per
/// connection.
pub fn listen<H: ConnectionHandler>(
    reactor: &Reactor,
    auth: &AmbientAuth,
    tls: TlsServer,
    make: impl FnMut() -> H + Send + 'static,
) -> (ListenerRef, SocketAddr, Receiver<Ev>) {
    let (tx, rx) = channel();
    let opts = ListenOptions::default().tls(tls);
    let server = Server { events: tx, make };
    let addr = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind(reactor, &TcpListenAuth::new(auth), addr, server, opts);
    let bound = expect(&rx, "listening", |ev| match ev {
        Ev::Listening(a) => Some(a),
        _ => None,
    });
    (listener, bound, rx)
}

pub fn connect<H: ConnectionHandler>(
    reactor: &Reactor,
    auth: &AmbientAuth,
    host: &str,
    port: u16,
    tls: TlsClient,
    handler: H,
) -> ConnRef<H::Msg> {
    let opts = ConnectionOptions::default().tls(tls);
    TcpConnection::connect(
        reactor,
        &TcpConnectAuth::new(auth),
        host,
        port,
        handler,
        opts,
    )
}

/// Echoes, keeping a refused buffer until `unthrottled`; reports what it hears.
pub struct Echo {
    pub events: Option<Sender<Ev>>,
    pub pending: Option<Bytes>,
}

impl Echo {
    pub fn new(events: Option<Sender<Ev>>) -> Self {
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
    fn connected(&mut self, conn: &mut Conn<Self>) {
        self.tell(Ev::Connected(conn.tls().cloned()));
    }
    fn connect_failed(&mut self, reason: ConnectError) {
        self.tell(Ev::ConnectFailed(reason));
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        if let Err(e) = conn.send(data) {
            self.pending = Some(e.into_inner());
        }
        Flow::Continue
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        if let Some(data) = self.pending.take() {
            conn.send(data).expect("writeable after unthrottled");
        }
    }
    fn closed(&mut self, reason: CloseReason) {
        self.tell(Ev::Closed(reason));
    }
}

/// Streams `total` pattern bytes as fast as the connection takes them, checks what comes
/// back, closes.
pub struct Pumper {
    pub events: Sender<Ev>,
    pub total: usize,
    pub chunk: usize,
    pub sent: usize,
    pub received: usize,
    pub hash: u64,
}

impl Pumper {
    pub fn new(events: Sender<Ev>, total: usize, chunk: usize) -> Self {
        Pumper {
            events,
            total,
            chunk,
            sent: 0,
            received: 0,
            hash: FNV_START,
        }
    }
    fn pump(&mut self, conn: &mut Conn<Self>) {
        while self.sent < self.total && conn.is_writeable() {
            let len = self.chunk.min(self.total - self.sent);
            conn.send(pattern(self.sent, len)).expect("writeable");
            self.sent += len;
        }
    }
}

impl ConnectionHandler for Pumper {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Connected(conn.tls().cloned()));
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
    fn throttled(&mut self, conn: &mut Conn<Self>) {
        let _ = self.events.send(Ev::Throttled(conn.queued()));
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        self.pump(conn);
    }
    fn sent(&mut self, conn: &mut Conn<Self>, _token: SendToken) {
        self.pump(conn);
    }
    fn closed(&mut self, reason: CloseReason) {
        let _ = self.events.send(Ev::Closed(reason));
    }
}

pub fn connect_failure(rx: &Receiver<Ev>) -> ConnectError {
    expect(rx, "connect_failed", |ev| match ev {
        Ev::ConnectFailed(e) => Some(e),
        Ev::Connected(_) => panic!("the handshake succeeded"),
        _ => None,
    })
}

pub fn tls_error(e: ConnectError) -> TlsError {
    match e {
        ConnectError::Tls(e) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

pub fn ended_with_tls(rx: &Receiver<Ev>) -> TlsError {
    expect(rx, "the listener hears the connection end", |ev| match ev {
        Ev::Ended(CloseReason::Tls(e)) => Some(e),
        Ev::Ended(other) => panic!("ended with {other:?}, not a TLS error"),
        _ => None,
    })
}

/// Mutes itself at once and stays muted until told: never reads.
pub struct Deaf {
    pub events: Sender<Ev>,
    pub got: usize,
}

impl ConnectionHandler for Deaf {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.mute();
        let _ = self.events.send(Ev::Connected(conn.tls().cloned()));
    }
    fn received(&mut self, _conn: &mut Conn<Self>, data: Bytes) -> Flow {
        assert_eq!(data, pattern(self.got, data.len()), "in order");
        self.got += data.len();
        let _ = self.events.send(Ev::Got(self.got.to_string().into_bytes()));
        Flow::Continue
    }
    fn message(&mut self, conn: &mut Conn<Self>, (): ()) {
        conn.unmute();
    }
}

pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(0, |k| k * 1024)
}
