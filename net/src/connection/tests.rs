//! Connection tests that need the crate's seams: a pending or failing name lookup
//! (`resolve::seam`) and a failing read (`socket::fault`).

use super::socket::fault;
use crate::resolve::seam;
use crate::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug)]
enum Ev {
    Connecting(u32),
    Connected,
    Failed(ConnectError),
}

/// Reports what happens to an outgoing connection; closes as soon as it is connected.
struct Probe(Sender<Ev>);

impl ConnectionHandler for Probe {
    type Msg = ();
    fn connecting(&mut self, attempt: u32) {
        let _ = self.0.send(Ev::Connecting(attempt));
    }
    fn connected(&mut self, conn: &mut Conn<Self>) {
        let _ = self.0.send(Ev::Connected);
        conn.close();
    }
    fn connect_failed(&mut self, reason: ConnectError) {
        let _ = self.0.send(Ev::Failed(reason));
    }
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
}

/// Answers every message on a channel: shows that a worker is free to run it.
struct Ping(Sender<()>);

impl rein::Actor for Ping {
    type Msg = ();
    fn handle(&mut self, _ctx: &mut rein::Context<Self>, (): ()) {
        let _ = self.0.send(());
    }
}

/// A one-worker runtime, its reactor, and a connect to `host` whose events come on the
/// returned receiver.
fn connect_to(host: &str, port: u16) -> (rein::Runtime, Reactor, Receiver<Ev>) {
    let (rt, auth) = rein::Runtime::builder()
        .threads(1)
        .build_with_auth()
        .unwrap();
    let reactor = Reactor::start(&rt.handle()).unwrap();
    let (tx, rx) = channel();
    let auth = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default();
    TcpConnection::connect(&reactor, &auth, host, port, Probe(tx), opts);
    (rt, reactor, rx)
}

fn finish(rt: rein::Runtime, reactor: &Reactor) {
    let report = rt
        .wait_timeout(WAIT)
        .unwrap_or_else(|_| panic!("did not end"));
    assert!(report.quiescent);
    assert_eq!(reactor.registered(), 0);
}

#[test]
fn the_only_worker_stays_free_while_a_name_resolves() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = seam::gate("pending.rein-test");
    let (rt, reactor, rx) = connect_to("pending.rein-test", addr.port());
    // The lookup is pending (the gate is shut); the single worker must still run actors.
    let (ping_tx, ping_rx) = channel();
    rt.spawn(Ping(ping_tx)).send(()).unwrap();
    ping_rx
        .recv_timeout(WAIT)
        .expect("an actor ran while the lookup was pending");
    assert!(rx.try_recv().is_err(), "no attempt before the answer");
    // Nothing else to do, but the runtime must not end by quiescence while the lookup is
    // pending (the helper holds it alive).
    let rt = rt
        .wait_timeout(Duration::from_millis(100))
        .expect_err("the runtime ended while a lookup was pending");
    answer.send(Ok(vec![addr])).unwrap();
    assert!(matches!(rx.recv_timeout(WAIT), Ok(Ev::Connecting(1))));
    assert!(matches!(rx.recv_timeout(WAIT), Ok(Ev::Connected)));
    let (peer, _) = listener.accept().unwrap();
    drop(peer);
    finish(rt, &reactor);
}

#[test]
fn a_failed_lookup_is_a_typed_error() {
    let answer = seam::gate("fails.rein-test");
    let (rt, reactor, rx) = connect_to("fails.rein-test", 1);
    let not_found = std::io::Error::new(std::io::ErrorKind::NotFound, "no such name");
    answer.send(Err(not_found)).unwrap();
    match rx.recv_timeout(WAIT) {
        Ok(Ev::Failed(ConnectError::Resolve(e))) => {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    finish(rt, &reactor);
}

#[test]
fn a_name_without_addresses_is_a_typed_error() {
    let answer = seam::gate("empty.rein-test");
    let (rt, reactor, rx) = connect_to("empty.rein-test", 1);
    answer.send(Ok(Vec::new())).unwrap();
    match rx.recv_timeout(WAIT) {
        Ok(Ev::Failed(ConnectError::NoAddresses)) => {}
        other => panic!("{other:?}"),
    }
    finish(rt, &reactor);
}

#[test]
fn the_connect_timeout_covers_a_pending_lookup() {
    let answer = seam::gate("stuck.rein-test");
    let (rt, auth) = rein::Runtime::builder()
        .threads(1)
        .build_with_auth()
        .unwrap();
    let reactor = Reactor::start(&rt.handle()).unwrap();
    let (tx, rx) = channel();
    let opts = ConnectionOptions {
        connect_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let auth = TcpConnectAuth::new(&auth);
    TcpConnection::connect(&reactor, &auth, "stuck.rein-test", 1, Probe(tx), opts);
    match rx.recv_timeout(WAIT) {
        Ok(Ev::Failed(ConnectError::TimedOut)) => {}
        other => panic!("{other:?}"),
    }
    // The helper holds the runtime until its lookup ends: end it (the answer is dropped).
    drop(answer);
    finish(rt, &reactor);
}

/// Echoes, and reports how the connection ended.
struct Reporter {
    local: Sender<SocketAddr>,
    closed: Sender<CloseReason>,
}

impl ConnectionHandler for Reporter {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        let _ = self.local.send(conn.local_addr().expect("connected"));
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        let _ = conn.send(data);
        Flow::Continue
    }
    fn closed(&mut self, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

#[test]
fn an_io_error_while_reading_ends_the_connection_with_that_error() {
    let (rt, auth) = rein::Runtime::builder()
        .threads(1)
        .build_with_auth()
        .unwrap();
    let reactor = Reactor::start(&rt.handle()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (local_tx, local_rx) = channel();
    let (closed_tx, closed_rx) = channel();
    let handler = Reporter {
        local: local_tx,
        closed: closed_tx,
    };
    let auth = TcpConnectAuth::new(&auth);
    let opts = ConnectionOptions::default();
    TcpConnection::connect_addrs(&reactor, &auth, vec![addr], handler, opts);
    let (mut peer, _) = listener.accept().unwrap();
    let local = local_rx.recv_timeout(WAIT).unwrap();
    // The echo works; then the next read fails with an error that is neither a reset nor an
    // end of stream (as EIO from a failing device would).
    peer.write_all(b"one").unwrap();
    let mut buf = [0; 3];
    peer.read_exact(&mut buf).unwrap();
    fault::fail_next_read(local, std::io::Error::other("injected"));
    peer.write_all(b"two").unwrap();
    match closed_rx.recv_timeout(WAIT).unwrap() {
        CloseReason::Error(e) => assert_eq!(e.to_string(), "injected"),
        other => panic!("{other:?}"),
    }
    // An error aborts: the peer sees a reset (or at least the end).
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    assert!(rest.is_empty());
    finish(rt, &reactor);
}

#[test]
fn a_failed_poller_ends_the_connection_with_a_reason() {
    // When the runtime's readiness polling fails, every registered source's owner hears a
    // `failed` edge (rein's own test injects the failure); a connection must end with an error
    // that says so, not wait for edges that will never come.
    let (rt, auth) = rein::Runtime::builder()
        .threads(1)
        .build_with_auth()
        .unwrap();
    let reactor = Reactor::start(&rt.handle()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (local_tx, local_rx) = channel();
    let (closed_tx, closed_rx) = channel();
    let handler = Reporter {
        local: local_tx,
        closed: closed_tx,
    };
    let auth = TcpConnectAuth::new(&auth);
    let conn = TcpConnection::connect_addrs(
        &reactor,
        &auth,
        vec![addr],
        handler,
        ConnectionOptions::default(),
    );
    let (_peer, _) = listener.accept().unwrap();
    local_rx.recv_timeout(WAIT).unwrap();
    conn.ready_for_test(Readiness::poll_failed());
    match closed_rx.recv_timeout(WAIT).unwrap() {
        CloseReason::Error(e) => assert!(e.to_string().contains("polling failed"), "{e}"),
        other => panic!("{other:?}"),
    }
    finish(rt, &reactor);
}
