//! A connection is an actor: handlers with timers and their own messages, spawning and
//! monitoring, connections controlled from other actors through their address, the reason
//! every way of ending reports, and framing that refuses over-long input. All on loopback,
//! every wait bounded, every runtime ending by quiescence.

use rein::{Actor, ActorDown, AmbientAuth, Context, Runtime};
use rein_net::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

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

/// What a listener saw.
enum Seen<M> {
    Listening(SocketAddr),
    Accepted(ConnRef<M>),
    Ended(ConnectionEnded),
}

/// A listener whose connections get handlers from a closure, and which reports what it sees.
struct Server<M, F> {
    seen: Sender<Seen<M>>,
    make: F,
}

impl<H, F> ListenNotify for Server<H::Msg, F>
where
    H: ConnectionHandler,
    F: FnMut() -> H + Send + 'static,
{
    type Handler = H;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.seen.send(Seen::Listening(addr));
    }
    fn not_listening(&mut self, err: BindError) {
        panic!("bind failed: {err}");
    }
    fn connected(&mut self, _peer: SocketAddr) -> H {
        (self.make)()
    }
    fn accepted(&mut self, _peer: SocketAddr, conn: ConnRef<H::Msg>) {
        let _ = self.seen.send(Seen::Accepted(conn));
    }
    fn ended(&mut self, ended: ConnectionEnded) {
        let _ = self.seen.send(Seen::Ended(ended));
    }
}

fn listen<H: ConnectionHandler>(
    reactor: &Reactor,
    auth: &AmbientAuth,
    opts: ListenOptions,
    make: impl FnMut() -> H + Send + 'static,
) -> (ListenerRef, SocketAddr, Receiver<Seen<H::Msg>>) {
    let (tx, rx) = channel();
    let server = Server { seen: tx, make };
    let any = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind(reactor, &TcpListenAuth::new(auth), any, server, opts);
    match rx.recv_timeout(WAIT) {
        Ok(Seen::Listening(addr)) => (listener, addr, rx),
        _ => panic!("not listening"),
    }
}

/// The next event `pick` accepts (others are skipped), within the wait.
fn next<M, T>(seen: &Receiver<Seen<M>>, what: &str, pick: impl Fn(Seen<M>) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(ev) => {
                if let Some(v) = pick(ev) {
                    return v;
                }
            }
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

fn accepted<M>(seen: &Receiver<Seen<M>>) -> ConnRef<M> {
    next(seen, "an accepted connection", |ev| match ev {
        Seen::Accepted(conn) => Some(conn),
        _ => None,
    })
}

fn ended<M>(seen: &Receiver<Seen<M>>) -> ConnectionEnded {
    next(seen, "a connection to end", |ev| match ev {
        Seen::Ended(ended) => Some(ended),
        _ => None,
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.set_write_timeout(Some(WAIT)).unwrap();
    peer
}

/// Reads until end of stream; returns what came and how the stream ended (`None`: a clean end
/// of stream, else the error kind, such as a reset).
fn read_to_end(peer: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

// ------------------------------------------------------------------ timers and own messages

#[derive(Clone)]
enum Beat {
    Tick,
    /// Report (ticks, own messages handled so far).
    Report(Sender<(u32, u32)>),
}

/// Sends "ping" every 50 ms from a periodic timer, and counts its own messages.
struct Heartbeat {
    ticks: u32,
    messages: u32,
}

impl ConnectionHandler for Heartbeat {
    type Msg = Beat;
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.every(Duration::from_millis(50), Beat::Tick);
    }
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
    fn message(&mut self, conn: &mut Conn<Self>, msg: Beat) {
        self.messages += 1;
        match msg {
            Beat::Tick => {
                self.ticks += 1;
                // Refused once the connection is closing; the timer ends with it.
                let _ = conn.send("ping\n");
            }
            Beat::Report(to) => {
                let _ = to.send((self.ticks, self.messages));
            }
        }
    }
}

#[test]
fn a_handler_pings_from_a_timer_and_receives_its_own_messages() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, seen) = listen(&reactor, &auth, ListenOptions::default(), || Heartbeat {
        ticks: 0,
        messages: 0,
    });
    let mut peer = connect(addr);
    let conn = accepted(&seen);
    let start = Instant::now();
    let mut got = [0; 15];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping\nping\nping\n");
    // Three ticks 50 ms apart: the first after 50 ms, the third after about 150 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    // Another thread (or actor) talks to the handler through the connection's address.
    let (tx, rx) = channel();
    conn.send(Beat::Report(tx)).unwrap();
    let (ticks, messages) = rx.recv_timeout(WAIT).unwrap();
    assert!(ticks >= 3, "{ticks} ticks");
    assert_eq!(
        messages,
        ticks + 1,
        "every tick and the report went to `message`"
    );
    // The timer ends with the connection: closing it lets the runtime end.
    assert!(conn.close());
    let (_, end) = read_to_end(&mut peer);
    assert_eq!(end, None);
    drop(peer);
    assert!(matches!(ended(&seen).reason, CloseReason::Closed));
    assert!(listener.close());
    finish(rt, &reactor);
}

/// Stops when told.
struct Child;

impl Actor for Child {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, (): ()) {
        ctx.stop();
    }
}

enum Watch {
    Down(ActorDown),
}

impl From<ActorDown> for Watch {
    fn from(down: ActorDown) -> Self {
        Watch::Down(down)
    }
}

/// Spawns a child per connection and monitors it; "stop" stops the child, whose end the
/// handler hears as its own message and reports to the peer.
struct Parent {
    child: Option<rein::ActorRef<Child>>,
}

impl ConnectionHandler for Parent {
    type Msg = Watch;
    fn connected(&mut self, conn: &mut Conn<Self>) {
        let child = conn.spawn(Child);
        conn.monitor(&child);
        self.child = Some(child);
    }
    fn received(&mut self, _conn: &mut Conn<Self>, data: Bytes) -> Flow {
        if &data[..] == b"stop" {
            if let Some(child) = &self.child {
                child.send(()).unwrap();
            }
        }
        Flow::Continue
    }
    fn message(&mut self, conn: &mut Conn<Self>, Watch::Down(down): Watch) {
        let child = self.child.take().expect("the child");
        assert_eq!(down.id, child.id());
        conn.send("child down").unwrap();
        conn.close();
    }
}

#[test]
fn a_handler_spawns_and_monitors_an_actor() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, seen) = listen(&reactor, &auth, ListenOptions::default(), || Parent {
        child: None,
    });
    let mut peer = connect(addr);
    let _conn = accepted(&seen);
    peer.write_all(b"stop").unwrap();
    let (got, end) = read_to_end(&mut peer);
    assert_eq!((&got[..], end), (&b"child down"[..], None));
    drop(peer);
    assert!(matches!(ended(&seen).reason, CloseReason::Closed));
    assert!(listener.close());
    finish(rt, &reactor);
}

// ------------------------------------------------------------------ close reasons

/// Echoes; closes on "close", aborts on "abort"; reports how it ended.
struct Ends {
    closed: Sender<CloseReason>,
}

impl ConnectionHandler for Ends {
    type Msg = ();
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        match &data[..] {
            b"close" => conn.close(),
            b"abort" => {
                conn.send(vec![0; 1 << 20]).unwrap();
                conn.abort();
            }
            _ => {
                let _ = conn.send(data);
            }
        }
        Flow::Continue
    }
    fn closed(&mut self, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

/// A listener of [`Ends`] handlers, with their reasons on the returned receiver.
fn ends_server(
    reactor: &Reactor,
    auth: &AmbientAuth,
    opts: ListenOptions,
) -> (
    ListenerRef,
    SocketAddr,
    Receiver<Seen<()>>,
    Receiver<CloseReason>,
) {
    let (tx, rx) = channel();
    let (listener, addr, seen) = listen(reactor, auth, opts, move || Ends { closed: tx.clone() });
    (listener, addr, seen, rx)
}

#[test]
fn a_peer_that_closes_is_peer_closed() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, seen, reasons) = ends_server(&reactor, &auth, Default::default());
    let mut peer = connect(addr);
    let conn = accepted(&seen);
    peer.write_all(b"hi").unwrap();
    let mut echo = [0; 2];
    peer.read_exact(&mut echo).unwrap();
    drop(peer);
    let reason = reasons.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
    // The listener hears the same, for the same connection.
    let ended = ended(&seen);
    assert!(matches!(ended.reason, CloseReason::PeerClosed));
    assert_eq!(ended.id, conn.id());
    assert!(ended.peer.is_some());
    // The listener heard of the end before the actor finished stopping.
    let deadline = Instant::now() + WAIT;
    while !conn.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the connection actor did not stop"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!conn.close(), "closing an ended connection says so");
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn a_peer_that_resets_is_reset() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, seen, reasons) = ends_server(&reactor, &auth, Default::default());
    let peer = connect(addr);
    let _conn = accepted(&seen);
    // SO_LINGER 0: closing sends a reset instead of an end of stream.
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    let reason = reasons.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::Reset), "{reason:?}");
    assert!(matches!(ended(&seen).reason, CloseReason::Reset));
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn an_idle_connection_is_timed_out() {
    let (rt, auth, reactor) = setup();
    let mut opts = ListenOptions::default();
    opts.connection.idle_timeout = Some(Duration::from_millis(150));
    let (listener, addr, seen, reasons) = ends_server(&reactor, &auth, opts);
    let mut peer = connect(addr);
    let _conn = accepted(&seen);
    // The default `timed_out` closes gracefully: the peer reads a clean end of stream.
    let (got, end) = read_to_end(&mut peer);
    assert_eq!((got.len(), end), (0, None));
    drop(peer);
    let reason = reasons.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::TimedOut), "{reason:?}");
    assert!(listener.close());
    finish(rt, &reactor);
}

#[test]
fn a_local_close_is_closed_and_a_local_abort_is_aborted() {
    let (rt, auth, reactor) = setup();
    let (listener, addr, seen, reasons) = ends_server(&reactor, &auth, Default::default());

    let mut gentle = connect(addr);
    let _conn = accepted(&seen);
    gentle.write_all(b"close").unwrap();
    let (got, end) = read_to_end(&mut gentle);
    assert_eq!(
        (got.len(), end),
        (0, None),
        "a graceful close ends the stream"
    );
    drop(gentle);
    let reason = reasons.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::Closed), "{reason:?}");

    let mut rough = connect(addr);
    let _conn = accepted(&seen);
    rough.write_all(b"abort").unwrap();
    let reason = reasons.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::Aborted), "{reason:?}");
    let (got, end) = read_to_end(&mut rough);
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
    assert!(got.len() < 1 << 20, "an abort drops what was queued");

    assert!(listener.close());
    finish(rt, &reactor);
}

/// Reports how an outgoing connection ended.
struct Outgoing {
    closed: Sender<CloseReason>,
}

impl ConnectionHandler for Outgoing {
    type Msg = ();
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
    fn closed(&mut self, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

#[test]
fn outgoing_connections_report_their_end_too() {
    let (rt, auth, reactor) = setup();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let connect = TcpConnectAuth::new(&auth);
    let (tx, rx) = channel();

    // The server closes: peer closed.
    let handler = Outgoing { closed: tx.clone() };
    TcpConnection::connect_addrs(&reactor, &connect, vec![addr], handler, Default::default());
    drop(server.accept().unwrap());
    let reason = rx.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");

    // Aborted through the returned address: the server sees a reset.
    let handler = Outgoing { closed: tx };
    let conn =
        TcpConnection::connect_addrs(&reactor, &connect, vec![addr], handler, Default::default());
    let (mut theirs, _) = server.accept().unwrap();
    theirs.set_read_timeout(Some(WAIT)).unwrap();
    conn.write("before the abort").unwrap();
    let mut got = [0; 16];
    theirs.read_exact(&mut got).unwrap();
    assert!(conn.abort());
    let reason = rx.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::Aborted), "{reason:?}");
    let (_, end) = read_to_end(&mut theirs);
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
    finish(rt, &reactor);
}

// ------------------------------------------------------------------ a hub

/// A chat client's handler: joins the hub with its own address, forwards each line to it.
struct Member {
    hub: rein::ActorRef<Hub>,
    closed: Sender<CloseReason>,
}

impl ConnectionHandler for Member {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.set_framing(Framing::Lines { max: 256 });
        self.hub.send(HubMsg::Join(conn.myself())).unwrap();
    }
    fn received(&mut self, conn: &mut Conn<Self>, line: Bytes) -> Flow {
        let _ = self.hub.send(HubMsg::Say(conn.id(), line));
        Flow::Continue
    }
    fn closed(&mut self, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

enum HubMsg {
    Join(ConnRef<()>),
    Say(rein::ActorId, Bytes),
    /// Close the member that joined `n`-th (from 0), gracefully or not.
    Kick(usize, bool),
}

/// Relays every line to every other member; kicks members when told.
struct Hub {
    members: Vec<ConnRef<()>>,
    joined: Sender<usize>,
}

impl Actor for Hub {
    type Msg = HubMsg;
    fn handle(&mut self, _ctx: &mut Context<Self>, msg: HubMsg) {
        match msg {
            HubMsg::Join(member) => {
                self.members.push(member);
                let _ = self.joined.send(self.members.len());
            }
            HubMsg::Say(from, line) => {
                for member in self.members.iter().filter(|m| m.id() != from) {
                    let _ = member.write(line.clone());
                    let _ = member.write("\n");
                }
            }
            HubMsg::Kick(n, graceful) => {
                let member = &self.members[n];
                let _ = member.write("kicked\n");
                if graceful {
                    assert!(member.close());
                } else {
                    assert!(member.abort());
                }
            }
        }
    }
}

#[test]
fn a_hub_relays_between_clients_and_kicks_them_through_their_addresses() {
    let (rt, auth, reactor) = setup();
    let (joined_tx, joined) = channel();
    let hub = rt.spawn(Hub {
        members: Vec::new(),
        joined: joined_tx,
    });
    let (closed_tx, closed) = channel();
    let hub_for_members = hub.clone();
    let (listener, addr, seen) =
        listen(&reactor, &auth, ListenOptions::default(), move || Member {
            hub: hub_for_members.clone(),
            closed: closed_tx.clone(),
        });
    let mut alice = connect(addr);
    let alice_conn = accepted(&seen);
    assert_eq!(joined.recv_timeout(WAIT).unwrap(), 1);
    let mut bob = connect(addr);
    let bob_conn = accepted(&seen);
    assert_eq!(joined.recv_timeout(WAIT).unwrap(), 2);
    assert_ne!(alice_conn, bob_conn);

    alice.write_all(b"hello bob\r\n").unwrap();
    let mut line = [0; 10];
    bob.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"hello bob\n");

    // Kick Alice gracefully: the hub's last write reaches her, then the end of stream.
    hub.send(HubMsg::Kick(0, true)).unwrap();
    let (got, end) = read_to_end(&mut alice);
    assert_eq!((&got[..], end), (&b"kicked\n"[..], None));
    drop(alice);
    let reason = closed.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::Closed), "{reason:?}");
    assert_eq!(ended(&seen).id, alice_conn.id());

    // Abort Bob: he sees a reset.
    hub.send(HubMsg::Kick(1, false)).unwrap();
    let (_, end) = read_to_end(&mut bob);
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
    let reason = closed.recv_timeout(WAIT).unwrap();
    assert!(matches!(reason, CloseReason::Aborted), "{reason:?}");
    assert_eq!(ended(&seen).id, bob_conn.id());

    drop(hub);
    assert!(listener.close());
    finish(rt, &reactor);
}

// ------------------------------------------------------------------ framing limits

/// Echoes each frame back (lines with their `\n`), reports framing errors, and survives them
/// when `survive` is set.
struct FrameEcho {
    framing: Framing,
    survive: bool,
    errors: Sender<FrameError>,
    closed: Sender<CloseReason>,
}

impl ConnectionHandler for FrameEcho {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.set_framing(self.framing);
    }
    fn received(&mut self, conn: &mut Conn<Self>, frame: Bytes) -> Flow {
        conn.send(frame).unwrap();
        if let Framing::Lines { .. } = self.framing {
            conn.send("\n").unwrap();
        }
        Flow::Continue
    }
    fn frame_error(&mut self, conn: &mut Conn<Self>, error: FrameError) {
        let _ = self.errors.send(error);
        if !self.survive {
            conn.close();
        }
    }
    fn closed(&mut self, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

/// Writes `input` to a server of [`FrameEcho`]s, then closes the write side; returns what came
/// back, the framing errors, and the close reason.
fn frame_echo(
    framing: Framing,
    survive: bool,
    input: &[u8],
) -> (Vec<u8>, Vec<FrameError>, CloseReason) {
    let (rt, auth, reactor) = setup();
    let (errors_tx, errors) = channel();
    let (closed_tx, closed) = channel();
    let (listener, addr, _seen) = listen(&reactor, &auth, ListenOptions::default(), move || {
        FrameEcho {
            framing,
            survive,
            errors: errors_tx.clone(),
            closed: closed_tx.clone(),
        }
    });
    let mut peer = connect(addr);
    let mut writer = peer.try_clone().unwrap();
    let input = input.to_vec();
    // Write on another thread: a server that closes early must not leave this one blocked.
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&input);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let (got, _) = read_to_end(&mut peer);
    sender.join().unwrap();
    drop(peer);
    let reason = closed.recv_timeout(WAIT).unwrap();
    assert!(listener.close());
    finish(rt, &reactor);
    (got, errors.try_iter().collect(), reason)
}

#[test]
fn an_over_long_line_is_a_typed_error_that_closes_by_default() {
    let framing = Framing::Lines { max: 16 };
    let input = b"short\r\nthis line is far longer than sixteen bytes\nnever seen\n";
    let (got, errors, reason) = frame_echo(framing, false, input);
    assert_eq!(got, b"short\n");
    assert_eq!(errors, [FrameError::TooLong { max: 16 }]);
    assert!(
        matches!(
            reason,
            CloseReason::FrameError(FrameError::TooLong { max: 16 })
        ),
        "{reason:?}"
    );
}

#[test]
fn a_handler_may_survive_an_over_long_line_which_is_skipped_not_buffered() {
    let framing = Framing::Lines { max: 16 };
    let mut input = b"first\n".to_vec();
    // A megabyte without a newline: skipped as it arrives.
    input.extend(vec![b'x'; 1 << 20]);
    input.extend_from_slice(b"\nafter\n");
    let (got, errors, reason) = frame_echo(framing, true, &input);
    assert_eq!(got, b"first\nafter\n");
    assert_eq!(errors, [FrameError::TooLong { max: 16 }]);
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
}

fn prefixed(body: &[u8], len: u16) -> Vec<u8> {
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn an_over_long_length_prefix_is_a_typed_error_that_closes_by_default() {
    let framing = Framing::LengthPrefixed {
        prefix: Prefix::U16,
        max: 100,
    };
    let mut input = prefixed(b"hello", 5);
    input.extend(prefixed(&[7; 1000], 1000));
    input.extend(prefixed(b"abc", 3));
    let (got, errors, reason) = frame_echo(framing, false, &input);
    assert_eq!(got, b"hello");
    assert_eq!(
        errors,
        [FrameError::LengthTooLarge {
            len: 1000,
            max: 100
        }]
    );
    assert!(
        matches!(
            reason,
            CloseReason::FrameError(FrameError::LengthTooLarge { .. })
        ),
        "{reason:?}"
    );
}

#[test]
fn a_handler_may_survive_an_over_long_length_prefix_whose_body_is_skipped() {
    let framing = Framing::LengthPrefixed {
        prefix: Prefix::U16,
        max: 100,
    };
    let mut input = prefixed(b"hello", 5);
    input.extend(prefixed(&[7; 60_000], 60_000));
    input.extend(prefixed(b"abc", 3));
    let (got, errors, reason) = frame_echo(framing, true, &input);
    assert_eq!(got, b"helloabc");
    assert_eq!(
        errors,
        [FrameError::LengthTooLarge {
            len: 60_000,
            max: 100
        }]
    );
    assert!(matches!(reason, CloseReason::PeerClosed), "{reason:?}");
}
