//! SlowDown (after Pony's example of the same name): a client floods a server that reads
//! slowly, and backpressure carries the slowness end to end instead of memory growing.
//!
//! Two runtimes in one process, on loopback:
//!
//! ```text
//!  client runtime                                    server runtime
//!  Producer --writer()--> TcpConnection ==TCP==> TcpConnection --chunk--> Consumer (slow)
//! ```
//!
//! * The consumer does busy work on every chunk (`--work` extra hashing passes), so its mailbox
//!   overloads and the runtime **mutes the server connection** that sends to it; a muted
//!   connection is not scheduled, so it stops reading, the kernel buffers fill and the TCP
//!   window closes.
//! * On the client the write queue then passes its high watermark: the connection is
//!   **throttled**, applies backpressure on itself, and the producer writing through
//!   [`Conn::writer`] is muted until the queue drains (**unthrottled**).
//!
//! A monitor thread samples both runtimes every 100 ms and prints when the server connection
//! becomes muted or unmuted (from the server's `mute_snapshot`), and once a second the bytes/s
//! that reached the consumer, the counts of throttles and mutes in that second, and RSS. The
//! client's first few throttled/unthrottled callbacks are printed as they happen. The client
//! floods for `--seconds`, then closes; the program checks that every byte sent arrived (count
//! and FNV checksum) and that both runtimes end by quiescence, and exits non-zero otherwise.
//!
//! ```text
//! cargo run --release -p rein-examples --bin slowdown -- [--seconds 4] [--work 8] [--threads N]
//! cargo run --release -p rein-examples --bin slowdown -- --no-backpressure
//! ```
//!
//! The consumer sets its own watermarks (4/16 chunks), so with backpressure the whole program
//! stays around 11 MiB of RSS here (3 s at ~66 MB/s). With `--no-backpressure` (both runtimes)
//! nothing holds the client back: the consumer's mailbox takes every chunk and RSS climbs past
//! 500 MiB at the same consumer throughput.

use clap::Parser;
use rein::{Actor, ActorRef, Context, Recipient, Runtime};
use rein_examples::{check_clean, check_eq, fail, peak_rss_kib, rss_kib, RuntimeArgs};
use rein_net::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "A client floods a slow server; watch backpressure on both sides")]
struct Cli {
    /// How long the client floods before it closes (the run takes about one second more).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Extra hashing passes the server's consumer makes over each chunk (its slowness).
    #[arg(long, default_value_t = 8)]
    work: u32,
    /// Bytes per producer write.
    #[arg(long, default_value_t = 16 * 1024)]
    chunk: usize,
    /// Callbacks of each kind printed as they happen before only counts are shown.
    #[arg(long, default_value_t = 3)]
    show: u64,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(hash: &mut u64, data: &[u8]) {
    for &b in data {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

/// Counters shared by both sides and the monitor.
#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    consumed: AtomicU64,
    throttles: AtomicU64,
    unthrottles: AtomicU64,
    max_queued: AtomicU64,
}

fn stamp(start: Instant) -> String {
    format!("[{:6.3} s]", start.elapsed().as_secs_f64())
}

// ------------------------------------------------------------------ server

/// Checksums the stream, slowly.
struct Consumer {
    stats: Arc<Stats>,
    work: u32,
    hash: u64,
    done: Sender<u64>,
}

enum ConsumerMsg {
    Chunk(Vec<u8>),
    /// The connection saw the end of stream: every chunk before this one was delivered.
    End,
}

impl Actor for Consumer {
    type Msg = ConsumerMsg;
    fn started(&mut self, ctx: &mut Context<Self>) {
        // Chunks are up to 64 KiB: count the consumer overloaded after 16 of them rather than
        // the runtime's default 1024 messages, so the server holds ~1 MiB, not ~64 MiB.
        ctx.set_watermarks(4, 16).expect("valid watermarks");
    }
    fn handle(&mut self, _ctx: &mut Context<Self>, msg: ConsumerMsg) {
        match msg {
            ConsumerMsg::Chunk(chunk) => {
                fnv(&mut self.hash, &chunk);
                let mut spin = self.hash;
                for _ in 0..self.work {
                    fnv(&mut spin, &chunk);
                }
                std::hint::black_box(spin);
                self.stats.consumed.fetch_add(chunk.len() as u64, Relaxed);
            }
            ConsumerMsg::End => {
                let _ = self.done.send(self.hash);
            }
        }
    }
}

/// The server connection's handler: hands every chunk to the consumer from its behaviour, so
/// the runtime mutes the connection whenever the consumer is overloaded.
struct Forward {
    consumer: ActorRef<Consumer>,
}

impl ConnectionHandler for Forward {
    fn received(&mut self, _conn: &mut Conn, data: Vec<u8>) -> Flow {
        let _ = self.consumer.send(ConsumerMsg::Chunk(data));
        Flow::Continue
    }
    fn closed(&mut self) {
        let _ = self.consumer.send(ConsumerMsg::End);
    }
}

struct Server {
    consumer: ActorRef<Consumer>,
    listening: Sender<Result<SocketAddr, String>>,
}

impl ListenNotify for Server {
    type Handler = Forward;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.listening.send(Ok(addr));
    }
    fn not_listening(&mut self, err: BindError) {
        let _ = self.listening.send(Err(err.to_string()));
    }
    fn connected(&mut self, _peer: SocketAddr) -> Forward {
        Forward {
            consumer: self.consumer.clone(),
        }
    }
}

// ------------------------------------------------------------------ client

/// The client connection's handler: reports throttling, hands its writer out.
struct Client {
    stats: Arc<Stats>,
    start: Instant,
    show: u64,
    connected: Sender<Result<Recipient<Vec<u8>>, String>>,
    closed: Arc<AtomicBool>,
}

impl ConnectionHandler for Client {
    fn connected(&mut self, conn: &mut Conn) {
        let writer = conn.writer().expect("a connected connection has a writer");
        let _ = self.connected.send(Ok(writer));
    }
    fn connect_failed(&mut self, reason: ConnectError) {
        let _ = self.connected.send(Err(reason.to_string()));
    }
    fn received(&mut self, _conn: &mut Conn, _data: Vec<u8>) -> Flow {
        Flow::Continue
    }
    fn throttled(&mut self, conn: &mut Conn) {
        self.stats
            .max_queued
            .fetch_max(conn.queued() as u64, Relaxed);
        let n = self.stats.throttles.fetch_add(1, Relaxed) + 1;
        if n <= self.show {
            println!(
                "{} client: connection throttled ({} bytes queued): backpressure applied, \
                 the producer will be muted",
                stamp(self.start),
                conn.queued()
            );
        }
    }
    fn unthrottled(&mut self, conn: &mut Conn) {
        let n = self.stats.unthrottles.fetch_add(1, Relaxed) + 1;
        if n <= self.show {
            println!(
                "{} client: connection unthrottled ({} bytes queued): backpressure released",
                stamp(self.start),
                conn.queued()
            );
        }
    }
    fn sent(&mut self, conn: &mut Conn, _token: SendToken) {
        self.stats
            .max_queued
            .fetch_max(conn.queued() as u64, Relaxed);
    }
    fn closed(&mut self) {
        self.closed.store(true, Relaxed);
    }
}

enum ProducerMsg {
    Next,
}

/// Floods through the connection's writer until the deadline, then closes the connection.
struct Producer {
    writer: Recipient<Vec<u8>>,
    conn: ActorRef<TcpConnection<Client>>,
    chunk: usize,
    deadline: Instant,
    offset: u64,
    hash: Arc<Mutex<u64>>,
    stats: Arc<Stats>,
}

impl Actor for Producer {
    type Msg = ProducerMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, ProducerMsg::Next: ProducerMsg) {
        if Instant::now() >= self.deadline {
            // Queued behind every write this actor sent, so it flushes them first.
            let _ = self.conn.send(ConnMsg::Close);
            return;
        }
        let data: Vec<u8> = (0..self.chunk as u64)
            .map(|i| ((self.offset + i) % 251) as u8)
            .collect();
        fnv(&mut self.hash.lock().unwrap(), &data);
        self.offset += data.len() as u64;
        self.stats.sent.fetch_add(data.len() as u64, Relaxed);
        if self.writer.send(data).is_err() {
            fail("the client connection ended early");
        }
        let _ = ctx.myself().send(ProducerMsg::Next);
    }
}

// ------------------------------------------------------------------ monitor

/// Samples every 100 ms: prints server-connection mute transitions at once, and a line of
/// figures every second. Returns the number of mute transitions it saw.
fn monitor(
    server: rein::RuntimeHandle,
    client: rein::RuntimeHandle,
    consumer: rein::ActorId,
    stats: Arc<Stats>,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> (u64, u64) {
    let mut muted = false;
    let (mut mute_on, mut mute_off) = (0, 0);
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut tick = 0u32;
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        tick += 1;
        // The consumer's only sender is the server connection: an edge into it means the
        // connection is muted.
        let now_muted = server
            .mute_snapshot()
            .edges
            .iter()
            .any(|e| e.receiver == consumer);
        if now_muted != muted {
            muted = now_muted;
            if muted {
                mute_on += 1;
            } else {
                mute_off += 1;
            }
            println!(
                "{} server: connection {}",
                stamp(start),
                if muted {
                    "muted (consumer overloaded): stops reading"
                } else {
                    "unmuted (consumer drained): reads again"
                }
            );
        }
        if tick % 10 == 0 {
            let consumed = stats.consumed.load(Relaxed);
            let throttles = stats.throttles.load(Relaxed);
            let server_mutes = server.metrics().mutes;
            let client_mutes = client.metrics().mutes;
            println!(
                "{} {:8.1} MB/s consumed | client: {:5} throttles, {:5} producer mutes | \
                 server: {:5} connection mutes | RSS {:6.1} MiB",
                stamp(start),
                (consumed - last.0) as f64 / 1e6,
                throttles - last.1,
                client_mutes - last.2,
                server_mutes - last.3,
                rss_kib().unwrap_or(0) as f64 / 1024.0
            );
            last = (consumed, throttles, client_mutes, server_mutes);
        }
    }
    (mute_on, mute_off)
}

fn main() {
    let cli = Cli::parse();
    if cli.chunk == 0 || cli.seconds.is_nan() || cli.seconds < 0.0 {
        fail("--chunk must be positive and --seconds not negative");
    }
    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let build = |name: &str| -> (Runtime, rein::AmbientAuth) {
        match cli.runtime.builder().thread_name(name).build_with_auth() {
            Ok(pair) => pair,
            Err(e) => fail(format_args!("cannot build the {name} runtime: {e}")),
        }
    };

    // Server runtime: listener, slow consumer.
    let (server_rt, server_auth) = build("server");
    let server_reactor = Reactor::start(&server_rt.handle()).unwrap_or_else(|e| fail(e));
    let (done_tx, done_rx) = channel();
    let consumer = server_rt.spawn(Consumer {
        stats: stats.clone(),
        work: cli.work,
        hash: FNV_START,
        done: done_tx,
    });
    let (listen_tx, listen_rx) = channel();
    let listener = TcpListener::bind(
        &server_reactor,
        &TcpListenAuth::new(&server_auth),
        "127.0.0.1:0".parse().expect("an address"),
        Server {
            consumer: consumer.clone(),
            listening: listen_tx,
        },
        ListenOptions::default(),
    )
    .expect("the runtime runs");
    let addr = match listen_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(addr)) => addr,
        Ok(Err(e)) => fail(e),
        Err(_) => fail("the listener did not start"),
    };

    // Client runtime: connection, producer.
    let (client_rt, client_auth) = build("client");
    let client_reactor = Reactor::start(&client_rt.handle()).unwrap_or_else(|e| fail(e));
    let (conn_tx, conn_rx) = channel();
    let client_closed = Arc::new(AtomicBool::new(false));
    let conn = TcpConnection::connect_addrs(
        &client_reactor,
        &TcpConnectAuth::new(&client_auth),
        vec![addr],
        Client {
            stats: stats.clone(),
            start,
            show: cli.show,
            connected: conn_tx,
            closed: client_closed.clone(),
        },
        ConnectionOptions::default(),
    )
    .expect("the runtime runs");
    let writer = match conn_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => fail(format_args!("cannot connect: {e}")),
        Err(_) => fail("connect did not finish"),
    };
    println!(
        "{} flooding {addr} for {:.1} s; consumer does {} extra passes per chunk",
        stamp(start),
        cli.seconds,
        cli.work
    );

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (server, client) = (server_rt.handle(), client_rt.handle());
        let (stats, stop, id) = (stats.clone(), stop.clone(), consumer.id());
        std::thread::spawn(move || monitor(server, client, id, stats, start, stop))
    };

    let sent_hash = Arc::new(Mutex::new(FNV_START));
    let flood_start = Instant::now();
    client_rt
        .spawn(Producer {
            writer,
            conn,
            chunk: cli.chunk,
            deadline: flood_start + Duration::from_secs_f64(cli.seconds),
            offset: 0,
            hash: sent_hash.clone(),
            stats: stats.clone(),
        })
        .send(ProducerMsg::Next)
        .unwrap_or_else(|_| fail("the producer did not start"));

    let got_hash = done_rx
        .recv_timeout(Duration::from_secs_f64(cli.seconds + 60.0))
        .unwrap_or_else(|_| fail("the server did not see the end of the stream"));
    let elapsed = flood_start.elapsed();
    stop.store(true, Relaxed);
    let (mute_on, mute_off) = watcher.join().expect("monitor");
    let _ = listener.send(ListenerMsg::Close);
    let server_metrics = server_rt.metrics();
    let client_metrics = client_rt.metrics();

    let client_report = client_rt
        .wait_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| fail("the client runtime did not end"));
    let server_report = server_rt
        .wait_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| fail("the server runtime did not end"));
    check_clean(&client_report);
    check_clean(&server_report);
    if !client_closed.load(Relaxed) {
        fail("the client connection did not close");
    }

    let sent = stats.sent.load(Relaxed);
    let consumed = stats.consumed.load(Relaxed);
    let want_hash = *sent_hash.lock().unwrap();
    println!("--- summary ---");
    println!(
        "bytes: {sent} sent, {consumed} consumed in {:.2} s ({:.1} MB/s)",
        elapsed.as_secs_f64(),
        consumed as f64 / 1e6 / elapsed.as_secs_f64()
    );
    println!(
        "client: {} throttles, {} unthrottles, {} producer mutes, max write queue seen {} KiB",
        stats.throttles.load(Relaxed),
        stats.unthrottles.load(Relaxed),
        client_metrics.mutes,
        stats.max_queued.load(Relaxed) / 1024
    );
    println!(
        "server: {} connection mutes ({} muted / {} unmuted seen at 100 ms sampling), \
         {} consumer overloads",
        server_metrics.mutes, mute_on, mute_off, server_metrics.overloads
    );
    println!(
        "peak RSS: {:.1} MiB",
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    check_eq("bytes consumed", consumed, sent);
    check_eq("checksum", got_hash, want_hash);
    println!("ok: all {sent} bytes arrived intact; both runtimes ended by quiescence");
}
