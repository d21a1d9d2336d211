//! Egress isolation: a hub fans lines out to 100 clients, one of which never reads. Under
//! every overflow policy, the 99 others get every line, in order, on time, and the slow
//! client's connection holds a bounded number of bytes; under the default (muting the writer)
//! the hub stalls and the runtime says on whom.
//!
//! Two layers are checked: the connection's own [`Overflow`] policy (the hub writes with a
//! plain `ConnRef::write`), and a [`Broadcast`] actor with a [`SlowSubscriber`] policy per
//! subscriber (the connections keep the default policy, whose pressure tells the broadcast
//! who is behind).
//!
//! The tests run one at a time (each drives 100 sockets and 100 reader threads), and every
//! wait is bounded.

use rein::{Actor, ActorRef, Context, Runtime, StallCause, StallReport};
use rein_net::broadcast::{Broadcast, BroadcastMsg, SlowSubscriber, Subscriber};
use rein_net::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One test at a time: each drives 100 sockets.
static SERIAL: Mutex<()> = Mutex::new(());

const CLIENTS: usize = 100;
/// Lines the hub sends each client, `PER_TICK` every `TICK` (1,250 a second: a healthy client must
/// fall `LIMIT` behind, about a quarter of a second, before a policy treats it as slow, which a
/// reader thread waiting for one of two loaded cores did at 5,000 a second).
const LINES: u32 = 1000;
const PER_TICK: u32 = 5;
const TICK: Duration = Duration::from_millis(4);
/// Bytes per line, newline included: 200 KB per client in all.
const LINE: usize = 200;
/// The byte limit of the connection policies. A healthy client falls this far behind only if
/// its thread waits for a core for a long while (its kernel buffers hold more on top).
const LIMIT: usize = 64 * 1024;
/// Every healthy client must have every line within this long of the first.
const ON_TIME: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(30);

fn line(seq: u32) -> Bytes {
    let mut text = format!("{seq:08} ");
    text.push_str(&"x".repeat(LINE - text.len() - 1));
    text.push('\n');
    Bytes::from(text)
}

/// A line as a client reads it.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Line(u32),
    /// "LAGGED n": the peer was told it missed `n` lines.
    Lagged(u64),
}

fn parse(text: &str) -> Got {
    match text.strip_prefix("LAGGED ") {
        Some(n) => Got::Lagged(n.trim().parse().expect("a count")),
        None => Got::Line(text[..8].parse().expect("a sequence number")),
    }
}

// ---------------------------------------------------------------- server

/// What the test asks a connection for at the end.
enum Ask {
    Report(Sender<(usize, u64)>),
}

/// The server side of one client: ignores input, tells the peer how many lines it missed.
struct Peer {
    closed: Arc<Mutex<Vec<CloseReason>>>,
}

impl ConnectionHandler for Peer {
    type Msg = Ask;
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
    fn message(&mut self, conn: &mut Conn<Self>, Ask::Report(tx): Ask) {
        let _ = tx.send((conn.peak_queued(), conn.dropped_writes()));
    }
    fn lagged(&mut self, conn: &mut Conn<Self>, missed: u64) {
        let _ = conn.send(format!("LAGGED {missed}\n"));
    }
    fn closed(&mut self, reason: CloseReason) {
        self.closed.lock().unwrap().push(reason);
    }
}

struct Accept {
    listening: Sender<SocketAddr>,
    accepted: Sender<(SocketAddr, ConnRef<Ask>)>,
    closed: Arc<Mutex<Vec<CloseReason>>>,
}

impl ListenNotify for Accept {
    type Handler = Peer;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.listening.send(addr);
    }
    fn connected(&mut self, _peer: SocketAddr) -> Peer {
        Peer {
            closed: self.closed.clone(),
        }
    }
    fn accepted(&mut self, peer: SocketAddr, conn: ConnRef<Ask>) {
        let _ = self.accepted.send((peer, conn));
    }
}

/// How the hub reaches its clients.
enum Fanout {
    /// `ConnRef::write` to each: the connections' overflow policy decides.
    Write(Vec<ConnRef<Ask>>),
    /// Publish to a broadcast actor: each subscriber's policy decides.
    Broadcast(ActorRef<Broadcast<Bytes>>),
}

/// Sends `PER_TICK` lines every `TICK` until `LINES`, then says when it finished.
struct Hub {
    fanout: Fanout,
    next: u32,
    done: Sender<Instant>,
}

impl Actor for Hub {
    type Msg = ();
    fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx.myself().send(());
    }
    fn handle(&mut self, ctx: &mut Context<Self>, (): ()) {
        for _ in 0..PER_TICK {
            let line = line(self.next);
            match &self.fanout {
                Fanout::Write(clients) => {
                    for client in clients {
                        let _ = client.write(line.clone());
                    }
                }
                Fanout::Broadcast(room) => {
                    let _ = room.send(BroadcastMsg::Publish(line));
                }
            }
            self.next += 1;
        }
        if self.next == LINES {
            let _ = self.done.send(Instant::now());
        } else {
            ctx.after(TICK, ());
        }
    }
}

// ---------------------------------------------------------------- clients

/// Reads every line a healthy client should get, checking order; returns when it had them.
fn healthy(stream: TcpStream) -> Result<Instant, String> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut lines = BufReader::new(stream).lines();
    for expected in 0..LINES {
        let text = match lines.next() {
            Some(Ok(text)) => text,
            other => return Err(format!("line {expected}: {other:?}")),
        };
        match parse(&text) {
            Got::Line(seq) if seq == expected => {}
            got => return Err(format!("expected line {expected}, got {got:?}")),
        }
    }
    Ok(Instant::now())
}

/// How the slow client's reading ended.
#[derive(Debug, PartialEq)]
enum End {
    /// Nothing came for a while.
    Quiet,
    /// End of stream or a reset: the server disconnected it.
    Closed,
}

/// Reads what the slow client was sent, until it stops coming.
fn drain(stream: &mut TcpStream) -> (Vec<Got>, End) {
    stream
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let end = loop {
        match stream.read(&mut buf) {
            Ok(0) => break End::Closed,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break End::Quiet
            }
            Err(_) => break End::Closed,
        }
    };
    let text = String::from_utf8(bytes).expect("text");
    let got = text.lines().map(parse).collect();
    (got, end)
}

// ---------------------------------------------------------------- one run

struct Outcome {
    /// When the hub sent its last line, if it did within the first wait.
    hub_done: Option<Duration>,
    /// The latest time a healthy client had all its lines.
    healthy_done: Duration,
    /// The slow client's connection: peak queued bytes and writes dropped, asked before it
    /// reads (`None` once it has been disconnected).
    slow_conn: Option<(usize, u64)>,
    /// What the slow client read once it started reading, and how that ended.
    slow_got: Vec<Got>,
    slow_end: End,
    stalls: Vec<StallReport>,
    hub: rein::ActorId,
    slow_id: rein::ActorId,
    closed: Vec<CloseReason>,
}

/// Runs the hub against 100 clients, the first of which reads nothing until the hub is done.
/// With `broadcast`, lines go through a broadcast actor whose subscribers get `policy()`.
fn run(
    opts: ConnectionOptions,
    broadcast: Option<fn() -> SlowSubscriber<Bytes>>,
    hub_wait: Duration,
) -> Outcome {
    let stalls: Arc<Mutex<Vec<StallReport>>> = Arc::default();
    let log = stalls.clone();
    let (rt, auth) = Runtime::builder()
        .threads(2)
        .on_stall(Duration::from_millis(300), move |r| {
            log.lock().unwrap().push(r)
        })
        .build_with_auth()
        .unwrap();
    let reactor = Reactor::start(&rt.handle()).unwrap();
    let (listening_tx, listening) = channel();
    let (accepted_tx, accepted) = channel();
    let closed: Arc<Mutex<Vec<CloseReason>>> = Arc::default();
    let notify = Accept {
        listening: listening_tx,
        accepted: accepted_tx,
        closed: closed.clone(),
    };
    let listen = ListenOptions::default().connection(opts);
    let any = "127.0.0.1:0".parse().unwrap();
    let listener = TcpListener::bind(&reactor, &TcpListenAuth::new(&auth), any, notify, listen);
    let addr = listening.recv_timeout(WAIT).expect("listening");

    // The slow client: a small receive buffer, and it reads nothing for now.
    let slow = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    slow.set_recv_buffer_size(4096).unwrap();
    slow.connect(&addr.into()).unwrap();
    let slow: TcpStream = slow.into();
    let mut streams = vec![];
    for _ in 1..CLIENTS {
        streams.push(TcpStream::connect(addr).unwrap());
    }
    let conns = collect(&accepted);
    let slow_conn = conns[&slow.local_addr().unwrap()].clone();
    let mut slow = Some(slow);
    let start = Instant::now();
    let readers: Vec<_> = streams
        .into_iter()
        .map(|s| std::thread::spawn(move || healthy(s)))
        .collect();

    let fanout = match broadcast {
        None => Fanout::Write(conns.values().cloned().collect()),
        Some(policy) => {
            let room = rt.spawn(Broadcast::new());
            for conn in conns.values() {
                let kick = conn.clone();
                let sub = Subscriber::new(conn.writer())
                    .when_slow(policy())
                    .on_removed(move |_| {
                        kick.abort();
                    });
                room.send(BroadcastMsg::Subscribe(sub)).unwrap();
            }
            Fanout::Broadcast(room)
        }
    };
    let room = match &fanout {
        Fanout::Broadcast(room) => Some(room.clone()),
        Fanout::Write(_) => None,
    };
    let (done_tx, done) = channel();
    let hub = rt.spawn(Hub {
        fanout,
        next: 0,
        done: done_tx,
    });
    let hub_done = done.recv_timeout(hub_wait).ok();
    if hub_done.is_none() {
        // Stalled: the stall watch has had its chance. Let the slow client go; the hub resumes.
        let stalls_seen = stalls.lock().unwrap().len();
        assert!(stalls_seen > 0, "the hub stalled and nothing reported it");
        slow = None;
        done.recv_timeout(WAIT)
            .expect("the hub resumes once the slow client is gone");
    }
    let mut healthy_done = Duration::ZERO;
    for reader in readers {
        let at = reader
            .join()
            .unwrap()
            .expect("a healthy client gets every line");
        healthy_done = healthy_done.max(at - start);
    }
    if let (Some(room), Some(policy)) = (&room, broadcast) {
        if let SlowSubscriber::Disconnect { .. } = policy() {
            // Removal happens at a delivery: keep publishing until the slow subscriber has been
            // behind long enough (its grace may not have run out before the hub was done).
            let deadline = Instant::now() + WAIT;
            let mut next = LINES + 1;
            while !slow_conn.is_closed() && Instant::now() < deadline {
                room.send(BroadcastMsg::Publish(line(next))).unwrap();
                next += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let (tx, rx) = channel();
    let slow_conn_report = if slow_conn.send(Ask::Report(tx)).is_ok() {
        rx.recv_timeout(WAIT).ok()
    } else {
        None
    };
    let (mut slow_got, mut slow_end) = (Vec::new(), End::Closed);
    if let Some(mut slow) = slow {
        (slow_got, slow_end) = drain(&mut slow);
        if let (Some(room), End::Quiet) = (&room, &slow_end) {
            // A broadcast tells a lagging subscriber at its next delivery: publish one more.
            room.send(BroadcastMsg::Publish(line(LINES))).unwrap();
            let (more, end) = drain(&mut slow);
            slow_got.extend(more);
            slow_end = end;
        }
    }
    for conn in conns.values() {
        conn.abort();
    }
    listener.close();
    let hub = hub.id();
    let report = rt.wait_timeout(WAIT).expect("the server ends");
    assert_eq!(report.metrics.panics, 0);
    let stalls = stalls.lock().unwrap().clone();
    let closed = std::mem::take(&mut *closed.lock().unwrap());
    Outcome {
        hub_done: hub_done.map(|at| at - start),
        healthy_done,
        slow_conn: slow_conn_report,
        slow_got,
        slow_end,
        stalls,
        hub,
        slow_id: slow_conn.id(),
        closed,
    }
}

/// The connections of every client, by the client's address.
fn collect(accepted: &Receiver<(SocketAddr, ConnRef<Ask>)>) -> HashMap<SocketAddr, ConnRef<Ask>> {
    (0..CLIENTS)
        .map(|_| accepted.recv_timeout(WAIT).expect("accepted"))
        .collect()
}

/// The lines a slow client got, checked: in order, no line twice.
fn lines_in_order(got: &[Got]) -> Vec<u32> {
    let lines: Vec<u32> = got
        .iter()
        .filter_map(|g| match g {
            Got::Line(n) => Some(*n),
            Got::Lagged(_) => None,
        })
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated: {lines:?}"
    );
    lines
}

fn policy(overflow: Overflow) -> ConnectionOptions {
    ConnectionOptions::default()
        .overflow(overflow)
        // Throttled well before the limit: whatever the policy, the slow client's connection
        // throttles, and only the policy decides whether that mutes the hub.
        .high_watermark(LIMIT / 4)
        .low_watermark(LIMIT / 8)
        // Small kernel buffers, so the slow client's backlog lands in the write queue soon.
        .send_buffer_size(4096)
}

/// Checks what every run under a policy that isolates must show.
fn isolated(out: &Outcome) {
    let hub = out.hub_done.expect("the hub never stalled");
    assert!(hub < ON_TIME, "the hub took {hub:?}");
    assert!(
        out.healthy_done < ON_TIME,
        "the healthy clients took {:?}",
        out.healthy_done
    );
    assert!(out.stalls.is_empty(), "stalls: {:?}", out.stalls);
}

#[test]
fn muting_the_writer_stalls_the_hub_and_the_stall_is_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(policy(Overflow::MuteWriters), None, Duration::from_secs(3));
    assert!(out.hub_done.is_none(), "the hub should have stalled");
    let stall = out
        .stalls
        .iter()
        .find(|s| s.actor == out.hub)
        .unwrap_or_else(|| panic!("no report names the hub: {:?}", out.stalls));
    assert_eq!(
        stall.receiver, out.slow_id,
        "muted on the slow client's connection"
    );
    assert_eq!(stall.cause, StallCause::Pressured);
}

#[test]
fn drop_newest_bounds_the_slow_queue_and_keeps_the_others_on_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(policy(Overflow::DropNewest { limit: LIMIT }), None, WAIT);
    isolated(&out);
    let (peak, dropped) = out.slow_conn.expect("the slow client is still connected");
    assert!(peak <= LIMIT, "peak {peak} over {LIMIT}");
    assert!(dropped > 0, "the slow client should have missed lines");
    let lines = lines_in_order(&out.slow_got);
    assert_eq!(lines.len() as u64 + dropped, u64::from(LINES), "{lines:?}");
    assert_eq!(out.slow_end, End::Quiet);
}

#[test]
fn lag_skips_the_slow_client_ahead_and_tells_it_what_it_missed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(policy(Overflow::Lag { limit: LIMIT }), None, WAIT);
    isolated(&out);
    let (peak, dropped) = out.slow_conn.expect("the slow client is still connected");
    // The handler's notices are its own sends, never dropped: a few bytes over.
    assert!(peak <= LIMIT + 64, "peak {peak} over {LIMIT}");
    let lines = lines_in_order(&out.slow_got);
    let told: u64 = out
        .slow_got
        .iter()
        .map(|g| match g {
            Got::Lagged(n) => *n,
            Got::Line(_) => 0,
        })
        .sum();
    assert!(told > 0, "never told it lagged: {:?}", out.slow_got);
    assert_eq!(told, dropped, "told exactly what was dropped");
    assert_eq!(lines.len() as u64 + told, u64::from(LINES));
    assert_eq!(lines.last(), Some(&(LINES - 1)), "the newest line is kept");
}

#[test]
fn disconnect_drops_the_slow_client_and_keeps_the_others_on_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(policy(Overflow::Disconnect { limit: LIMIT }), None, WAIT);
    isolated(&out);
    assert!(out.slow_conn.is_none(), "the slow client should be gone");
    assert_eq!(out.slow_end, End::Closed);
    let kicked = out
        .closed
        .iter()
        .filter(|r| matches!(r, CloseReason::SendQueueFull))
        .count();
    assert_eq!(kicked, 1, "{:?}", out.closed);
}

/// Connections fed by a broadcast: the default policy (their pressure is the broadcast's
/// signal), small write-queue watermarks, and a mailbox that absorbs a burst of publishes.
fn subscribed() -> ConnectionOptions {
    ConnectionOptions::default()
        .high_watermark(LIMIT)
        .low_watermark(LIMIT / 2)
        .mailbox_watermarks(Some((128, 1024)))
        .send_buffer_size(4096)
}

/// The bytes a broadcast subscriber's connection may hold: its high watermark, plus what was
/// in its mailbox when it throttled.
const SUBSCRIBED_BOUND: usize = LIMIT + 1024 * LINE;

#[test]
fn broadcast_drop_newest_skips_only_the_slow_subscriber() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(subscribed(), Some(|| SlowSubscriber::DropNewest), WAIT);
    isolated(&out);
    let (peak, _) = out.slow_conn.expect("still subscribed");
    assert!(peak <= SUBSCRIBED_BOUND, "peak {peak}");
    let lines = lines_in_order(&out.slow_got);
    assert!(
        lines.len() < LINES as usize,
        "it missed some: {}",
        lines.len()
    );
    assert!(out.slow_got.iter().all(|g| matches!(g, Got::Line(_))));
}

#[test]
fn broadcast_lag_tells_the_slow_subscriber_what_it_missed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let notice = || SlowSubscriber::lag(|n| Bytes::from(format!("LAGGED {n}\n")));
    let out = run(subscribed(), Some(notice), WAIT);
    isolated(&out);
    let (peak, _) = out.slow_conn.expect("still subscribed");
    assert!(peak <= SUBSCRIBED_BOUND, "peak {peak}");
    let lines = lines_in_order(&out.slow_got);
    let told: u64 = out
        .slow_got
        .iter()
        .map(|g| match g {
            Got::Lagged(n) => *n,
            Got::Line(_) => 0,
        })
        .sum();
    assert!(told > 0);
    // Every line, the extra one published after it drained included, was got or counted.
    assert_eq!(lines.len() as u64 + told, u64::from(LINES) + 1);
    assert_eq!(lines.last(), Some(&LINES));
}

#[test]
fn broadcast_disconnect_removes_the_slow_subscriber() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(
        subscribed(),
        Some(|| SlowSubscriber::Disconnect {
            after: Duration::from_millis(500),
        }),
        WAIT,
    );
    isolated(&out);
    assert!(out.slow_conn.is_none(), "its connection was aborted");
    assert_eq!(out.slow_end, End::Closed);
}
