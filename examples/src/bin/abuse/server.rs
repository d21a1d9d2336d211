//! The server: connections decode frames into pieces and push them through the ingress; one
//! consumer tallies them and does the configured work per MiB; requests are answered.

use crate::dashboard::{self, Board, Sampler};
use crate::{Qdisc, ServerArgs, HEAD, KIND_PAYLOAD, KIND_REQUEST, REPLY_LEN, REQUEST_LEN};
use rein::{Actor, ActorId, Context};
use rein_examples::{fail, peak_rss_kib, rss_kib};
use rein_net::ingress::{
    Bounded, FairPerPeer, Feed, Ingress, PeerId, RateLimited, Ready, Unbounded,
};
use rein_net::*;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a connection hands the consumer.
pub struct Piece {
    pub data: Bytes,
    pub kind: Kind,
    /// When the connection pushed it (for the server-side wait of requests).
    pub arrived: Instant,
}

pub enum Kind {
    /// A piece of a payload; `last` ends it.
    Payload { last: bool },
    /// A request, and where to answer it.
    Request(ConnRef<()>),
}

/// What the server knows of each peer beyond the ingress's figures.
#[derive(Debug, Clone, Default)]
pub struct PeerTally {
    pub addr: Option<SocketAddr>,
    /// It sent requests: a well-behaved peer.
    pub legit: bool,
    pub consumed: u64,
    pub payloads: u64,
    /// Its connection actor, to look it up in the runtime's mute snapshot.
    pub conn: Option<ActorId>,
    pub connected: bool,
}

/// Figures the consumer and the connections keep, read by the sampler.
#[derive(Default)]
pub struct TallyInner {
    pub peers: BTreeMap<PeerId, PeerTally>,
    pub consumed_bytes: u64,
    pub payloads: u64,
    pub requests: u64,
    /// Answers not sent because the asking peer's connection had ended.
    pub replies_dropped: u64,
    /// Round trips the well-behaved peers measured and reported, in µs, with when they came.
    pub rtts: VecDeque<(Instant, u64)>,
    /// How long requests waited in the ingress, from push to consumer, in µs.
    pub waits: VecDeque<(Instant, u64)>,
    /// How long requests took from the client's send to the consumer, in µs (both ends read
    /// the wall clock of one machine).
    pub inbound: VecDeque<(Instant, u64)>,
}

#[derive(Default)]
pub struct Tally(Mutex<TallyInner>);

impl Tally {
    pub fn lock(&self) -> MutexGuard<'_, TallyInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Latency samples are kept this long.
const KEEP: Duration = Duration::from_secs(10);

fn keep(samples: &mut VecDeque<(Instant, u64)>, now: Instant, value: u64) {
    samples.push_back((now, value));
    while samples.front().is_some_and(|&(at, _)| now - at > KEEP) {
        samples.pop_front();
    }
}

// ---------------------------------------------------------------- connections

enum Frame {
    Head,
    Payload { left: u64 },
    Request,
}

/// One peer's connection: cuts frames, pushes their pieces.
struct Intake {
    feed: Feed<Piece>,
    frame: Frame,
    piece: u64,
    tally: Arc<Tally>,
    registered: bool,
}

impl Intake {
    fn expect_payload(&mut self, conn: &mut Conn<Self>, left: u64) {
        self.frame = Frame::Payload { left };
        conn.expect(left.min(self.piece) as usize);
    }

    fn head(&mut self, conn: &mut Conn<Self>) {
        self.frame = Frame::Head;
        conn.expect(HEAD);
    }

    fn push(&mut self, conn: &mut Conn<Self>, data: Bytes, kind: Kind) {
        let bytes = data.len();
        let legit = matches!(kind, Kind::Request(_));
        let piece = Piece {
            data,
            kind,
            arrived: Instant::now(),
        };
        self.feed.push(conn, piece, bytes);
        if !self.registered || legit {
            if let Some(peer) = self.feed.peer() {
                self.registered = true;
                let mut tally = self.tally.lock();
                let entry = tally.peers.entry(peer).or_default();
                entry.addr = conn.peer_addr();
                entry.conn = Some(conn.id());
                entry.connected = true;
                entry.legit |= legit;
            }
        }
    }
}

impl ConnectionHandler for Intake {
    type Msg = ();

    fn connected(&mut self, conn: &mut Conn<Self>) {
        self.head(conn);
    }

    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        match self.frame {
            Frame::Head => {
                let len = u64::from(u32::from_be_bytes([data[1], data[2], data[3], data[4]]));
                match data[0] {
                    KIND_PAYLOAD if len > 0 => self.expect_payload(conn, len),
                    KIND_PAYLOAD => {}
                    KIND_REQUEST if len == REQUEST_LEN as u64 => {
                        self.frame = Frame::Request;
                        conn.expect(REQUEST_LEN);
                    }
                    _ => conn.close(), // not our protocol
                }
            }
            Frame::Payload { left } => {
                let left = left - data.len() as u64;
                self.push(conn, data, Kind::Payload { last: left == 0 });
                if left > 0 {
                    self.expect_payload(conn, left);
                } else {
                    self.head(conn);
                }
            }
            Frame::Request => {
                let reply = conn.myself();
                self.push(conn, data, Kind::Request(reply));
                self.head(conn);
            }
        }
        Flow::Continue
    }

    fn closed(&mut self, _reason: CloseReason) {
        if let Some(peer) = self.feed.peer() {
            if let Some(entry) = self.tally.lock().peers.get_mut(&peer) {
                entry.connected = false;
            }
        }
    }
}

struct Listen {
    ingress: Ingress<Piece>,
    tally: Arc<Tally>,
    piece: u64,
    listening: mpsc::Sender<Result<SocketAddr, String>>,
}

impl ListenNotify for Listen {
    type Handler = Intake;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.listening.send(Ok(addr));
    }
    fn not_listening(&mut self, err: BindError) {
        let _ = self.listening.send(Err(err.to_string()));
    }
    fn connected(&mut self, _peer: SocketAddr) -> Intake {
        Intake {
            feed: self.ingress.feed(),
            frame: Frame::Head,
            piece: self.piece,
            tally: self.tally.clone(),
            registered: false,
        }
    }
}

// ---------------------------------------------------------------- the consumer

/// Takes one piece per wake-up, tallies it, works on it, answers requests.
struct Consumer {
    ingress: Ingress<Piece>,
    tally: Arc<Tally>,
    work_per_mib: Duration,
}

impl Actor for Consumer {
    type Msg = Ready;
    fn handle(&mut self, _ctx: &mut Context<Self>, ready: Ready) {
        let Some(item) = self.ingress.take(ready) else {
            return;
        };
        let len = item.data.len() as u64;
        // The work: busy, proportional to the bytes (the consumer is the bottleneck).
        let work = self.work_per_mib.mul_f64(len as f64 / (1 << 20) as f64);
        let until = Instant::now() + work;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let now = Instant::now();
        let mut tally = self.tally.lock();
        tally.consumed_bytes += len;
        let peer = tally.peers.entry(item.peer()).or_default();
        peer.consumed += len;
        match &item.kind {
            Kind::Payload { last } => {
                if *last {
                    peer.payloads += 1;
                    tally.payloads += 1;
                }
            }
            Kind::Request(reply) => {
                peer.legit = true;
                tally.requests += 1;
                let rtt = u64::from_be_bytes(item.data[16..24].try_into().expect("24 bytes"));
                if rtt > 0 {
                    keep(&mut tally.rtts, now, rtt);
                }
                let waited = (now - item.arrived).as_micros() as u64;
                keep(&mut tally.waits, now, waited);
                let sent = u64::from_be_bytes(item.data[8..16].try_into().expect("24 bytes"));
                let inbound = crate::client::wall_micros().saturating_sub(sent);
                keep(&mut tally.inbound, now, inbound);
                // Never be muted on a peer: its connection may be muted itself (bounded), or
                // behind because it does not read its answers. Its overflow policy
                // (`connection_options`) bounds what waits for it instead.
                let answer = item.data.slice(..REPLY_LEN);
                if reply.writer().send_ignoring_pressure(answer).is_err() {
                    tally.replies_dropped += 1;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- running it

/// The peers' connections: answers are the only writes, and a peer that does not read them
/// loses the newest past 64 KiB rather than hold the consumer back or grow the server.
fn connection_options() -> ConnectionOptions {
    ConnectionOptions::default().overflow(Overflow::DropNewest { limit: 64 * 1024 })
}

pub fn run(args: ServerArgs) {
    let mut builder = args.runtime.builder();
    if args.runtime.batch.is_none() {
        // The consumer's work per message is long (a 16 KiB piece is 0.16 ms at 10 ms/MiB):
        // one message per turn lets the connections it answers run between its items.
        builder = builder.batch(1);
    }
    let (rt, auth) = builder
        .build_with_auth()
        .unwrap_or_else(|e| fail(format_args!("cannot build the runtime: {e}")));
    let reactor = Reactor::start(&rt.handle()).unwrap_or_else(|e| fail(e));
    let ingress: Ingress<Piece> = match args.qdisc {
        Qdisc::Unbounded => Ingress::new(Unbounded),
        Qdisc::Bounded => Ingress::new(Bounded),
        Qdisc::Fair => Ingress::new(FairPerPeer::bytes(args.budget as usize)),
        Qdisc::Rate => Ingress::new(RateLimited::new(args.rate)),
    };
    let tally = Arc::new(Tally::default());
    let consumer = rt.spawn(Consumer {
        ingress: ingress.clone(),
        tally: tally.clone(),
        work_per_mib: Duration::from_secs_f64(args.work_ms_per_mib.max(0.0) / 1e3),
    });
    ingress.deliver_to(consumer.recipient());

    let (tx, rx) = mpsc::channel();
    let listen = Listen {
        ingress: ingress.clone(),
        tally: tally.clone(),
        piece: args.piece.max(1),
        listening: tx,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let _listener = TcpListener::bind(
        &reactor,
        &TcpListenAuth::new(&auth),
        addr,
        listen,
        ListenOptions::default().connection(connection_options()),
    );
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(bound)) => println!("listening on {bound} ({:?})", args.qdisc),
        Ok(Err(e)) => fail(e),
        Err(_) => fail("the listener did not start"),
    }

    let board = Arc::new(Board::new(args.qdisc));
    match dashboard::serve(&reactor, &auth, args.dashboard_port, board.clone()) {
        Ok(bound) => println!("dashboard on http://{bound}/"),
        Err(e) => fail(format_args!("dashboard: {e}")),
    }
    let start = Instant::now();
    let csv = args.rss_log.as_ref().map(|path| {
        std::fs::File::create(path).unwrap_or_else(|e| fail(format_args!("{path:?}: {e}")))
    });
    rt.spawn(Sampler::new(
        board.clone(),
        ingress,
        tally.clone(),
        rt.handle(),
        start,
        csv,
    ));
    guard_rss(args.max_rss, args.qdisc, start, tally.clone());
    match args.secs {
        Some(secs) => {
            std::thread::sleep(Duration::from_secs_f64(secs));
            summary(args.qdisc, start, &tally);
            std::process::exit(0);
        }
        None => {
            rt.wait();
        }
    }
}

/// Prints what the run did.
fn summary(qdisc: Qdisc, start: Instant, tally: &Tally) {
    let secs = start.elapsed().as_secs_f64();
    let tally = tally.lock();
    let mib = tally.consumed_bytes as f64 / (1 << 20) as f64;
    let peak = peak_rss_kib().map_or(0.0, |k| k as f64 / 1024.0);
    let (p50, p99) = dashboard::percentiles(&tally.rtts);
    let (_, wait99) = dashboard::percentiles(&tally.waits);
    let (_, inbound99) = dashboard::percentiles(&tally.inbound);
    println!(
        "legit requests (last 2 s): client to consumer p99 {:.2} ms, of which waiting in the \
         ingress p99 {:.2} ms",
        inbound99 / 1e3,
        wait99 / 1e3
    );
    println!(
        "ok: {qdisc:?}: consumed {mib:.0} MiB in {secs:.1} s ({:.1} MiB/s), {} payloads, {} \
         requests ({} answers to closed connections), peak RSS {peak:.1} MiB, legit round trip (last 10 s, \
         as reported) p50 {:.2} ms p99 {:.2} ms",
        mib / secs,
        tally.payloads,
        tally.requests,
        tally.replies_dropped,
        p50 / 1e3,
        p99 / 1e3
    );
}

/// Watches the resident set from a thread of its own (every 50 ms, however busy the runtime
/// is) and stops the process past `max_mib`, saying so, rather than let the operating system
/// kill it.
fn guard_rss(max_mib: u64, qdisc: Qdisc, start: Instant, tally: Arc<Tally>) {
    std::thread::Builder::new()
        .name("rss-guard".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            let Some(rss) = rss_kib() else { return };
            if rss / 1024 > max_mib {
                summary(qdisc, start, &tally);
                eprintln!(
                    "abuse server: RSS {} MiB is over --max-rss {max_mib} MiB after {:.1} s: \
                     stopping here rather than wait for the operating system to kill the \
                     process ({qdisc:?} lets the queue grow as fast as the peers send)",
                    rss / 1024,
                    start.elapsed().as_secs_f64()
                );
                std::process::exit(3);
            }
        })
        .unwrap_or_else(|e| fail(e));
}
