//! Ingress queueing disciplines over loopback, each held to its contract: `Unbounded` keeps
//! reading whatever the consumer does; `Bounded` stops reading while the consumer is
//! overloaded; `FairPerPeer` stops only the peer over its budget and serves a light peer
//! ahead of a heavy one's backlog; `RateLimited` holds a peer to its rate; a discipline written
//! here (a quota) works the same way. Under every one, each peer's bytes reach the consumer
//! whole and in order (checked with a checksum per peer).
//!
//! The consumer can be *stalled*: its behaviour then waits (holding one of the two workers)
//! until released, so that wake-ups pile up in its mailbox and items stay in flight, as with a
//! consumer that cannot keep up. Every wait is bounded.

use rein::{Actor, Context, Runtime};
use rein_net::ingress::*;
use rein_net::*;
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;
use common::{fnv, pattern, FNV_START};

/// Items are frames of this many bytes; every client sends a whole number of them.
const FRAME: usize = 16 * 1024;
const WAIT: Duration = Duration::from_secs(30);

/// What the consumer saw, per peer and in order.
#[derive(Default)]
struct Log {
    /// Checksum and bytes of each peer's stream, as consumed.
    peers: HashMap<PeerId, (u64, usize)>,
    /// Who each item came from, in the order the consumer took them.
    order: Vec<PeerId>,
    /// (when, total bytes consumed) after each item.
    progress: Vec<(Instant, usize)>,
}

struct Sink {
    ingress: Ingress<Bytes>,
    stall: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    /// Mailbox watermarks (in wake-ups), for `Bounded`.
    watermarks: Option<(usize, usize)>,
}

impl Actor for Sink {
    type Msg = Ready;
    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some((low, high)) = self.watermarks {
            ctx.set_watermarks(low, high).unwrap();
        }
    }
    fn handle(&mut self, _ctx: &mut Context<Self>, ready: Ready) {
        while self.stall.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let item = self.ingress.take(ready).expect("one item per wake-up");
        let mut log = self.log.lock().unwrap();
        let entry = log.peers.entry(item.peer()).or_insert((FNV_START, 0));
        fnv(&mut entry.0, &item);
        entry.1 += item.len();
        log.order.push(item.peer());
        let total = log.progress.last().map_or(0, |p| p.1) + item.len();
        log.progress.push((Instant::now(), total));
    }
}

/// Pushes every frame it receives.
struct Intake(Feed<Bytes>);

impl ConnectionHandler for Intake {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.expect(FRAME);
    }
    fn received(&mut self, conn: &mut Conn<Self>, frame: Bytes) -> Flow {
        self.0.push(conn, frame, FRAME);
        Flow::Continue
    }
}

struct Server {
    ingress: Ingress<Bytes>,
    listening: std::sync::mpsc::Sender<SocketAddr>,
}

impl ListenNotify for Server {
    type Handler = Intake;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.listening.send(addr);
    }
    fn connected(&mut self, _peer: SocketAddr) -> Intake {
        Intake(self.ingress.feed())
    }
}

/// Releases the consumer when dropped, so that a failing test unwinds instead of leaving a
/// worker waiting in the stalled consumer (and the runtime's drop waiting for it for ever).
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}

/// A server whose consumer starts stalled (or not).
struct Rig {
    /// First: fields drop in order, and this must come before the runtime's.
    _release: Release,
    rt: Runtime,
    addr: SocketAddr,
    ingress: Ingress<Bytes>,
    stall: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    listener: ListenerRef,
}

impl Rig {
    fn new(discipline: impl Discipline, stalled: bool, watermarks: Option<(usize, usize)>) -> Rig {
        let (rt, auth) = Runtime::builder().threads(2).build_with_auth().unwrap();
        let reactor = Reactor::start(&rt.handle()).unwrap();
        let ingress = Ingress::new(discipline);
        let stall = Arc::new(AtomicBool::new(stalled));
        let log: Arc<Mutex<Log>> = Arc::default();
        let sink = rt.spawn(Sink {
            ingress: ingress.clone(),
            stall: stall.clone(),
            log: log.clone(),
            watermarks,
        });
        ingress.deliver_to(sink.recipient());
        let (tx, rx) = channel();
        let server = Server {
            ingress: ingress.clone(),
            listening: tx,
        };
        let any = "127.0.0.1:0".parse().unwrap();
        let listener = TcpListener::bind(
            &reactor,
            &TcpListenAuth::new(&auth),
            any,
            server,
            Default::default(),
        );
        let addr = rx.recv_timeout(WAIT).expect("listening");
        Rig {
            _release: Release(stall.clone()),
            rt,
            addr,
            ingress,
            stall,
            log,
            listener,
        }
    }

    /// A client that sends `frames` frames of the test pattern as fast as it can, in writes of
    /// `chunk` bytes; returns its address and the thread, which hands the stream back (still
    /// open) once all is written.
    fn client(&self, frames: usize, chunk: usize) -> (SocketAddr, JoinHandle<TcpStream>) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let local = stream.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let total = frames * FRAME;
            let mut at = 0;
            while at < total {
                let n = chunk.min(total - at);
                stream.write_all(&pattern(at, n)).expect("write");
                at += n;
            }
            stream
        });
        (local, thread)
    }

    /// The ingress's view of the peer at `addr`.
    fn peer(&self, addr: SocketAddr) -> Option<Peer> {
        self.ingress
            .stats()
            .peers
            .into_iter()
            .find(|p| p.addr == Some(addr))
    }

    /// Waits until `done(stats)` holds.
    fn until(&self, what: &str, mut done: impl FnMut(&IngressStats) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.ingress.stats();
            if done(&stats) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {stats:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the stats have not changed for `quiet`: reading has stopped.
    fn settled(&self, quiet: Duration) -> IngressStats {
        let deadline = Instant::now() + WAIT;
        let mut last = self.ingress.stats();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.ingress.stats();
            if now.queued_bytes != last.queued_bytes {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                return now;
            }
            assert!(Instant::now() < deadline, "reading never settled: {last:?}");
        }
    }

    fn release(&self) {
        self.stall.store(false, SeqCst);
    }

    /// Checks that the consumer got `frames` frames from the client at `addr`, whole and in
    /// order.
    fn check_stream(&self, addr: SocketAddr, peer: PeerId, frames: usize) {
        let (hash, bytes) = self.log.lock().unwrap().peers[&peer];
        assert_eq!(bytes, frames * FRAME, "{addr}: bytes");
        let mut expected = FNV_START;
        fnv(&mut expected, &pattern(0, frames * FRAME));
        assert_eq!(hash, expected, "{addr}: lost or reordered bytes");
    }

    fn consumed(&self) -> usize {
        self.log.lock().unwrap().progress.last().map_or(0, |p| p.1)
    }

    fn finish(self) {
        self.release();
        self.listener.close();
        // The clients hold their connections open until the server closes them.
        let report = match self.rt.wait_timeout(Duration::from_millis(200)) {
            Ok(report) => report,
            Err(rt) => rt.shutdown(),
        };
        assert_eq!(report.metrics.panics, 0);
    }
}

#[test]
fn unbounded_keeps_reading_while_the_consumer_is_stalled() {
    // Small watermarks: the consumer is overloaded at once, and Unbounded ignores it.
    let rig = Rig::new(Unbounded, true, Some((8, 32)));
    let frames = 512; // 8 MiB
    let (addr, client) = rig.client(frames, 256 * 1024);
    rig.until("every byte read", |s| s.queued_bytes == frames * FRAME);
    let _stream = client.join().unwrap();
    assert_eq!(rig.consumed(), 0, "the consumer has not taken anything yet");
    assert!(rig.peer(addr).unwrap().reading);
    rig.release();
    let peer = rig.peer(addr).unwrap().id;
    rig.until("everything consumed", |s| s.taken == frames as u64);
    rig.check_stream(addr, peer, frames);
    rig.finish();
}

#[test]
fn bounded_stops_reading_while_the_consumer_is_overloaded() {
    let (low, high) = (8, 32);
    let rig = Rig::new(Bounded, true, Some((low, high)));
    let frames = 512; // 8 MiB: far more than the bound, the kernel buffers included
    let (addr, client) = rig.client(frames, 256 * 1024);
    let stopped = rig.settled(Duration::from_millis(500));
    // At most the high watermark, plus what a muted connection's last turn delivered (its
    // read budget of 64 KiB in frames), plus the frame the stalled consumer holds.
    let bound = (high + 64 * 1024 / FRAME + 1) * FRAME;
    assert!(
        stopped.queued_bytes <= bound,
        "{} queued, bound {bound}",
        stopped.queued_bytes
    );
    assert!(
        !client.is_finished(),
        "the client cannot have written it all"
    );
    let snapshot = rig.rt.mute_snapshot();
    assert!(
        !snapshot.muted.is_empty(),
        "the connection is muted by the runtime: {snapshot:?}"
    );
    rig.release();
    let _stream = client.join().unwrap();
    rig.until("everything consumed", |s| s.taken == frames as u64);
    let peer = rig.peer(addr).unwrap().id;
    rig.check_stream(addr, peer, frames);
    rig.finish();
}

#[test]
fn fair_stops_only_the_peer_over_its_budget() {
    let budget = 16 * FRAME; // 256 KiB
    let rig = Rig::new(FairPerPeer::bytes(budget), true, None);
    let heavy_frames = 512;
    let (heavy, heavy_client) = rig.client(heavy_frames, 256 * 1024);
    rig.until("the heavy peer stopped", |s| {
        s.peers.iter().any(|p| p.addr == Some(heavy) && !p.reading)
    });
    let stopped = rig.settled(Duration::from_millis(300));
    let h = rig.peer(heavy).unwrap();
    assert!(h.in_flight_bytes <= budget, "{h:?}");
    assert!(!heavy_client.is_finished());
    // A light peer is read while the heavy one is stopped, the consumer still stalled.
    let light_frames = 8;
    let (light, light_client) = rig.client(light_frames, FRAME);
    let _light_stream = light_client.join().unwrap();
    rig.until("the light peer's frames read", |s| {
        s.peers
            .iter()
            .any(|p| p.addr == Some(light) && p.received == light_frames as u64)
    });
    assert!(rig.peer(light).unwrap().reading);
    assert_eq!(
        rig.peer(heavy).unwrap().received_bytes,
        h.received_bytes,
        "the heavy peer stayed stopped"
    );
    assert_eq!(stopped.peers.len(), 1);
    rig.release();
    let _heavy_stream = heavy_client.join().unwrap();
    rig.until("everything consumed", |s| {
        s.taken == (heavy_frames + light_frames) as u64
    });
    let (hid, lid) = (rig.peer(heavy).unwrap().id, rig.peer(light).unwrap().id);
    rig.check_stream(heavy, hid, heavy_frames);
    rig.check_stream(light, lid, light_frames);
    rig.finish();
}

#[test]
fn fair_serves_a_light_peer_ahead_of_a_heavy_backlog() {
    let rig = Rig::new(FairPerPeer::bytes(16 * FRAME), true, None);
    let (heavy, heavy_client) = rig.client(256, 256 * 1024);
    rig.until("the heavy peer stopped", |s| {
        s.peers.iter().any(|p| p.addr == Some(heavy) && !p.reading)
    });
    let (light, light_client) = rig.client(1, FRAME);
    let _light_stream = light_client.join().unwrap();
    rig.until("the light frame queued", |s| {
        s.peers
            .iter()
            .any(|p| p.addr == Some(light) && p.received == 1)
    });
    let lid = rig.peer(light).unwrap().id;
    rig.release();
    rig.until("the light frame consumed", |_| {
        rig.log.lock().unwrap().order.contains(&lid)
    });
    // The consumer was stalled on its first item (the heavy peer's); the light one goes next,
    // ahead of the 16 heavy frames queued before it.
    let at = rig.log.lock().unwrap().order.iter().position(|&p| p == lid);
    assert_eq!(at, Some(1), "{:?}", rig.log.lock().unwrap().order);
    let _heavy_stream = heavy_client.join().unwrap();
    rig.until("everything consumed", |s| s.taken == 257);
    rig.check_stream(heavy, rig.peer(heavy).unwrap().id, 256);
    rig.finish();
}

#[test]
fn rate_limited_holds_the_rate_within_ten_percent() {
    let rate = 2 << 20; // 2 MiB/s
    let rig = Rig::new(RateLimited::new(rate).burst(64 * 1024), false, None);
    let frames = 1024; // 16 MiB: far more than the test takes at the rate
    let (addr, client) = rig.client(frames, 64 * 1024);
    rig.until("two seconds of traffic", |_| {
        let log = rig.log.lock().unwrap();
        log.progress.len() > 1 && log.progress[0].0.elapsed() > Duration::from_millis(2300)
    });
    let log = rig.log.lock().unwrap();
    let start = log.progress[0].0;
    let at = |t: Duration| {
        log.progress
            .iter()
            .take_while(|p| p.0 - start <= t)
            .last()
            .map_or(0, |p| p.1)
    };
    // Past the first burst: from 0.3 s to 2.3 s.
    let (from, to) = (Duration::from_millis(300), Duration::from_millis(2300));
    let measured = (at(to) - at(from)) as f64 / (to - from).as_secs_f64();
    drop(log);
    let ratio = measured / rate as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{measured:.0} B/s against {rate} B/s"
    );
    let peer = rig.peer(addr).unwrap().id;
    let (hash, bytes) = rig.log.lock().unwrap().peers[&peer];
    let mut expected = FNV_START;
    fnv(&mut expected, &pattern(0, bytes));
    assert_eq!(hash, expected, "what arrived so far is the stream's prefix");
    rig.finish();
    let _ = client.join();
}

/// A discipline of our own: each peer may send `quota` bytes in all, then is never read
/// again; the consumer serves peers in the order they connected.
struct Quota {
    quota: u64,
}

impl Discipline for Quota {
    fn admit(&mut self, peer: &Peer, _now: Instant) -> Admit {
        if peer.received_bytes < self.quota {
            Admit::Read
        } else {
            Admit::Stop
        }
    }
    fn pick(&mut self, backlogged: &[&Peer], _now: Instant) -> PeerId {
        backlogged.iter().map(|p| p.id).min().expect("never empty")
    }
}

#[test]
fn a_custom_discipline_stops_each_peer_at_its_quota() {
    let quota = 64 * FRAME; // 1 MiB
    let rig = Rig::new(
        Quota {
            quota: quota as u64,
        },
        false,
        None,
    );
    let (a, a_client) = rig.client(256, 256 * 1024);
    let (b, b_client) = rig.client(32, 256 * 1024);
    let _b_stream = b_client.join().unwrap();
    rig.until("both peers served", |s| {
        s.peers.iter().any(|p| p.addr == Some(a) && !p.reading)
            && s.peers
                .iter()
                .any(|p| p.addr == Some(b) && p.consumed_bytes == 32 * FRAME as u64)
    });
    rig.settled(Duration::from_millis(300));
    let pa = rig.peer(a).unwrap();
    assert_eq!(
        pa.received_bytes, quota as u64,
        "stopped at its quota exactly"
    );
    rig.until("a's quota consumed", |s| s.taken == 64 + 32);
    rig.check_stream(a, pa.id, 64);
    rig.check_stream(b, rig.peer(b).unwrap().id, 32);
    rig.finish();
    let _ = a_client.join();
}
