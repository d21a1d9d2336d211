//! Backpressure end to end, across two runtimes in one process, on loopback.
//!
//! ```text
//!  client runtime                                  server runtime
//!  Producer --Write--> TcpConnection ==TCP==> TcpConnection --frame--> Consumer (slow)
//!     ^ muted            | throttled               ^ muted                  | overloaded
//!     +--- pressure -----+                         +------- backlog --------+
//! ```
//!
//! The consumer does busy work per frame, so its mailbox overloads; the runtime mutes the server
//! connection (its only sender), which then stops reading; the kernel buffers fill, the TCP
//! window closes, the client connection's write queue passes its high watermark, it throttles
//! and applies pressure on itself, and the producer writing to it is muted. Every assertion is
//! on counters and readings, none on timing; every wait is bounded, and both runtimes must reach
//! quiescence by themselves at the end.

use rein::{Actor, ActorRef, Context, Runtime};
use rein_net::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{fnv, pattern, FNV_START};

const WAIT: Duration = Duration::from_secs(20);
/// Bytes the producer sends in all (a whole number of frames).
const TOTAL: usize = 12 << 20;
/// One producer write: `ConnRef::write` of this many bytes per behaviour.
const WRITE: usize = 16 * 1024;
/// The server delivers exactly this many bytes per `received` (framing).
const FRAME: usize = 4 * 1024;
/// The server connection's read budget per behaviour.
const READ_PER_TURN: usize = 4 * FRAME;
/// Server runtime mailbox watermarks (messages).
const SERVER_LOW: usize = 8;
const SERVER_HIGH: usize = 32;
/// Client connection write-queue watermarks (bytes): the defaults, spelled out.
const CONN_HIGH: usize = 64 * 1024;
const CONN_LOW: usize = 32 * 1024;

/// Readings shared between the actors and the test thread.
#[derive(Default)]
struct Readings {
    /// Server side.
    consumed: AtomicUsize,
    checksum: AtomicU64,
    consumer_max_backlog: AtomicUsize,
    /// Client side.
    throttles: AtomicUsize,
    unthrottles: AtomicUsize,
    /// Largest write queue seen in any client callback.
    max_queued: AtomicUsize,
    /// Largest mailbox backlog of the client connection seen when it throttled.
    max_backlog_at_throttle: AtomicUsize,
    client_closed: AtomicBool,
}

// ---------------------------------------------------------------- server runtime

/// Checksums the stream; slow on purpose (busy work, not sleep).
struct Consumer {
    readings: Arc<Readings>,
    hash: u64,
    got: usize,
    done: Sender<()>,
}

impl Actor for Consumer {
    type Msg = Bytes;
    fn handle(&mut self, ctx: &mut Context<Self>, frame: Bytes) {
        self.readings
            .consumer_max_backlog
            .fetch_max(ctx.backlog(), SeqCst);
        fnv(&mut self.hash, &frame);
        // Busy work: hash the frame a few more times into a value the optimizer must keep.
        let mut spin = self.hash;
        for _ in 0..6 {
            fnv(&mut spin, &frame);
        }
        std::hint::black_box(spin);
        self.got += frame.len();
        self.readings.consumed.store(self.got, SeqCst);
        if self.got == TOTAL {
            self.readings.checksum.store(self.hash, SeqCst);
            let _ = self.done.send(());
        }
    }
}

/// The server connection's handler: forwards each frame to the consumer from its behaviour,
/// which is what lets the runtime mute the connection when the consumer is overloaded.
struct Forward {
    consumer: ActorRef<Consumer>,
}

impl ConnectionHandler for Forward {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.expect(FRAME);
    }
    fn received(&mut self, _conn: &mut Conn<Self>, frame: Bytes) -> Flow {
        self.consumer.send(frame).expect("consumer alive");
        Flow::Continue
    }
}

struct Server {
    consumer: ActorRef<Consumer>,
    listening: Sender<SocketAddr>,
}

impl ListenNotify for Server {
    type Handler = Forward;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.listening.send(addr);
    }
    fn connected(&mut self, _peer: SocketAddr) -> Forward {
        Forward {
            consumer: self.consumer.clone(),
        }
    }
}

// ---------------------------------------------------------------- client runtime

/// The client connection's handler: records throttling and queue depth.
struct Client {
    readings: Arc<Readings>,
    connected: Sender<()>,
}

impl Client {
    fn observe(&self, conn: &Conn<Self>) {
        self.readings.max_queued.fetch_max(conn.queued(), SeqCst);
    }
}

impl ConnectionHandler for Client {
    type Msg = ();
    fn connected(&mut self, _conn: &mut Conn<Self>) {
        let _ = self.connected.send(());
    }
    fn received(&mut self, _conn: &mut Conn<Self>, _data: Bytes) -> Flow {
        Flow::Continue
    }
    fn throttled(&mut self, conn: &mut Conn<Self>) {
        self.observe(conn);
        self.readings.throttles.fetch_add(1, SeqCst);
        self.readings
            .max_backlog_at_throttle
            .fetch_max(conn.backlog(), SeqCst);
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        self.observe(conn);
        self.readings.unthrottles.fetch_add(1, SeqCst);
    }
    fn sent(&mut self, conn: &mut Conn<Self>, _token: SendToken) {
        self.observe(conn);
    }
    fn closed(&mut self, _reason: CloseReason) {
        self.readings.client_closed.store(true, SeqCst);
    }
}

/// Writes the stream through `ConnRef::write`, one `WRITE`-byte chunk per behaviour, then
/// closes the connection (the close queues behind the writes).
struct Producer {
    conn: ConnRef<()>,
    sent: usize,
}

impl Actor for Producer {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, (): ()) {
        if self.sent < TOTAL {
            let len = WRITE.min(TOTAL - self.sent);
            self.conn
                .write(pattern(self.sent, len))
                .expect("connection alive");
            self.sent += len;
            let _ = ctx.myself().send(());
        } else {
            let _ = self.conn.close();
        }
    }
}

fn finish(name: &str, rt: Runtime, reactor: &Reactor) {
    let report = rt
        .wait_timeout(WAIT)
        .unwrap_or_else(|_| panic!("the {name} runtime did not end"));
    assert!(report.quiescent, "the {name} runtime is quiescent");
    assert_eq!(reactor.registered(), 0, "{name}: every socket released");
}

#[test]
fn a_slow_consumer_mutes_a_producer_on_another_runtime_through_tcp() {
    let readings = Arc::new(Readings::default());

    // Server: small mailbox watermarks so the slow consumer overloads quickly.
    let (server_rt, server_auth) = Runtime::builder()
        .threads(2)
        .watermarks(SERVER_LOW, SERVER_HIGH)
        .build_with_auth()
        .unwrap();
    let server_reactor = Reactor::start(&server_rt.handle()).unwrap();
    let (done_tx, done_rx) = channel();
    let consumer = server_rt.spawn(Consumer {
        readings: readings.clone(),
        hash: FNV_START,
        got: 0,
        done: done_tx,
    });
    let (addr_tx, addr_rx) = channel();
    let mut listen_opts = ListenOptions::default();
    listen_opts.connection.read_per_turn = READ_PER_TURN;
    let listener = TcpListener::bind(
        &server_reactor,
        &TcpListenAuth::new(&server_auth),
        "127.0.0.1:0".parse().unwrap(),
        Server {
            consumer: consumer.clone(),
            listening: addr_tx,
        },
        listen_opts,
    );
    let addr = addr_rx.recv_timeout(WAIT).expect("listening");

    // Client: default runtime watermarks, default connection watermarks.
    let (client_rt, client_auth) = Runtime::builder().threads(2).build_with_auth().unwrap();
    let client_reactor = Reactor::start(&client_rt.handle()).unwrap();
    let (conn_tx, conn_rx) = channel();
    let opts = ConnectionOptions::default()
        .high_watermark(CONN_HIGH)
        .low_watermark(CONN_LOW);
    let conn = TcpConnection::connect_addrs(
        &client_reactor,
        &TcpConnectAuth::new(&client_auth),
        vec![addr],
        Client {
            readings: readings.clone(),
            connected: conn_tx,
        },
        opts,
    );
    conn_rx.recv_timeout(WAIT).expect("connected");
    client_rt
        .spawn(Producer { conn, sent: 0 })
        .send(())
        .unwrap();

    // Watch the server's mute graph while it runs: the connection (the consumer's only sender)
    // should show up muted on the consumer. A diagnostic; the assertions use the counters.
    let deadline = Instant::now() + WAIT;
    let mut seen_edge = false;
    loop {
        match done_rx.recv_timeout(Duration::from_millis(2)) {
            Ok(()) => break,
            Err(_) if Instant::now() > deadline => panic!(
                "timed out: {} of {TOTAL} bytes consumed",
                readings.consumed.load(SeqCst)
            ),
            Err(_) => {}
        }
        if !seen_edge {
            let snap = server_rt.mute_snapshot();
            seen_edge = snap.edges.iter().any(|e| e.receiver == consumer.id());
        }
    }

    // Every byte arrived, in order.
    let mut want = FNV_START;
    fnv(&mut want, &pattern(0, TOTAL));
    assert_eq!(readings.consumed.load(SeqCst), TOTAL);
    assert_eq!(readings.checksum.load(SeqCst), want, "checksum");

    let server = server_rt.metrics();
    let client = client_rt.metrics();
    let throttles = readings.throttles.load(SeqCst);
    let consumer_max = readings.consumer_max_backlog.load(SeqCst);
    let max_queued = readings.max_queued.load(SeqCst);
    let backlog_at_throttle = readings.max_backlog_at_throttle.load(SeqCst);
    eprintln!(
        "server: mutes {} overloads {} (mute edge seen: {seen_edge}); consumer max backlog \
         {consumer_max}; client: mutes {} overloads {} pressure-throttles {throttles} \
         unthrottles {}; max queued {max_queued} B; conn backlog at throttle <= \
         {backlog_at_throttle}",
        server.mutes,
        server.overloads,
        client.mutes,
        client.overloads,
        readings.unthrottles.load(SeqCst),
    );

    // Server side: the consumer overloaded and its one sender, the connection, was muted.
    assert!(server.overloads > 0, "the consumer overloaded");
    assert!(server.mutes > 0, "the server connection was muted");

    // Documented bound (rein crate docs): with P senders sending at most K messages per
    // behaviour, the backlog never exceeds high + 2·P·K. Here P = 1 (the connection; readiness
    // comes from the I/O thread and is sent to the connection, not the consumer) and K is the
    // most frames one behaviour can deliver: fewer than FRAME bytes left over from the last
    // turn plus READ_PER_TURN bytes read in this one.
    let k = READ_PER_TURN.div_ceil(FRAME);
    let bound = SERVER_HIGH + 2 * k;
    assert!(
        consumer_max <= bound,
        "consumer backlog {consumer_max} above high + 2PK = {bound}"
    );

    // Client side: the connection throttled, and the producer writing to it was muted.
    assert!(throttles > 0, "the client connection throttled");
    assert!(client.mutes > 0, "the client producer was muted");

    // Write-queue bound. Below the high watermark each Write adds one producer chunk, so the
    // Write that throttles leaves at most CONN_HIGH - 1 + WRITE. After that only Writes already
    // in the connection's mailbox (at most its backlog when it throttled) and the one from a
    // producer behaviour racing the throttle can still land before the producer is muted.
    // Only if the mailbox were empty would this be "high watermark + one write per behaviour";
    // in practice the producer runs ahead of the connection (each Write costs the connection a
    // system call while the window is open) and tens of Writes wait in its mailbox, which the
    // byte watermark does not see.
    let queue_bound = CONN_HIGH - 1 + WRITE * (2 + backlog_at_throttle);
    assert!(
        max_queued <= queue_bound,
        "client queue {max_queued} B above {queue_bound} B"
    );
    // The static form: the connection's own mailbox watermarks (ConnectionOptions default
    // (4, 16) messages) bound the Writes waiting in its mailbox at high + 2·P·K = 16 + 2 with
    // P = 1 producer sending K = 1 Write per behaviour.
    let (_, mailbox_high) = ConnectionOptions::default()
        .mailbox_watermarks
        .expect("default mailbox watermarks");
    let static_bound = CONN_HIGH - 1 + WRITE * (2 + mailbox_high + 2);
    assert!(
        max_queued <= static_bound,
        "client queue {max_queued} B above {static_bound} B"
    );
    assert!(
        max_queued >= CONN_HIGH,
        "the queue did reach the high watermark"
    );

    // Both runtimes end by themselves: the client's close flushes, the server sees the end of
    // stream and closes its side, the listener is closed by hand.
    assert!(listener.close());
    finish("client", client_rt, &client_reactor);
    assert!(readings.client_closed.load(SeqCst));
    finish("server", server_rt, &server_reactor);
}
