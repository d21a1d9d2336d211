//! rein: one `Actor` per role with an enum `Msg`, `ActorRef::send`,
//! children through `Context::spawn`.
//!
//! Written the way rein's crate docs show: synchronous behaviours that never
//! block, results back to the driver on a std channel, `Runtime::builder()
//! .threads(n)` for `--threads`. Mailboxes are unbounded and backpressure is
//! the scheduler's job (senders to an overloaded actor are muted between
//! behaviours), so long-running producers hand the core back between chunks
//! of sends by messaging themselves, exactly as every other framework's
//! `fanin` producer yields after each chunk. After the result is in, the
//! runtime is shut down outside the timed region, like the peers'.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use rein::{Actor, ActorRef, Context, Runtime, Source};

use crate::workloads::{self, BusyWork, Colour, Outcome, Params, Payload, Rng, Workload};

/// `send`, failing the run if the receiver has stopped.
fn send<A: Actor>(to: &ActorRef<A>, m: A::Msg) {
    assert!(to.send(m).is_ok(), "rein: send to a stopped actor");
}

/// Runs `w` on a rein runtime with `threads` workers.
pub fn run(w: Workload, p: &Params, threads: usize) -> Result<Outcome, String> {
    let mut b = Runtime::builder().threads(threads);
    if let Some(batch) = p.rein_batch {
        b = b.batch(batch);
    }
    let rt = b.build().map_err(|e| format!("rein runtime: {e}"))?;
    let (report, results) = std::sync::mpsc::channel::<u64>();
    let recv = |n: u64| -> Result<u64, String> {
        (0..n).try_fold(0u64, |acc, _| {
            results
                .recv()
                .map(|v| acc + v)
                .map_err(|_| "rein: every reporter hung up".to_string())
        })
    };
    let start = Instant::now();
    let value = match w {
        Workload::Pingpong => {
            let pong = rt.spawn(Pong { ping: None });
            let ping = rt.spawn(Ping {
                pong: pong.clone(),
                rounds: p.pingpong_n,
                done: 0,
                report,
            });
            send(&pong, PongMsg::SetPeer(ping.clone()));
            send(&ping, PingMsg::Start);
            recv(1)?
        }
        Workload::Counting => {
            // The producer is rein's built-in `Source`: chunks of 100 per behaviour, muted by
            // the runtime whenever the counter falls behind (the form the guide recommends;
            // a plain loop in one behaviour would queue all N at once).
            let counter = rt.spawn(Counter { count: 0, report });
            let items = (0..p.counting_n)
                .map(|_| CountMsg::Inc)
                .chain(std::iter::once(CountMsg::Get));
            rt.spawn(Source::new(items, counter));
            recv(1)?
        }
        Workload::Threadring => {
            let nodes: Vec<_> = (0..p.ring_size)
                .map(|_| {
                    rt.spawn(RingNode {
                        next: None,
                        hops: p.ring_hops,
                        report: report.clone(),
                    })
                })
                .collect();
            for (i, n) in nodes.iter().enumerate() {
                send(n, RingMsg::SetNext(nodes[(i + 1) % nodes.len()].clone()));
            }
            send(&nodes[0], RingMsg::Token(0));
            recv(1)?
        }
        Workload::ForkjoinThroughput => {
            let sinks: Vec<_> = (0..p.fj_actors)
                .map(|_| {
                    rt.spawn(FjSink {
                        seen: 0,
                        want: p.fj_msgs,
                        report: report.clone(),
                    })
                })
                .collect();
            // The driver is an actor sending in chunks of 100 per behaviour (so the runtime can
            // mute it), round robin over the sinks.
            let driver = rt.spawn(FjDriver {
                sinks,
                next: 0,
                total: p.fj_msgs * p.fj_actors,
            });
            send(&driver, ());
            recv(p.fj_actors)?
        }
        Workload::ForkjoinCreation => {
            for i in 0..p.fj_create_n {
                let a = rt.spawn(OneShot {
                    report: report.clone(),
                });
                send(&a, i + 1);
            }
            recv(p.fj_create_n)?
        }
        Workload::Chameneos => {
            let mall = rt.spawn(Mall {
                left: p.chameneos_meetings,
                waiting: None,
                chameneos: p.chameneos_c,
                reported: 0,
                sum: 0,
                report,
            });
            for i in 0..p.chameneos_c {
                rt.spawn(Chameneo {
                    colour: Colour::nth(i),
                    met: 0,
                    mall: mall.clone(),
                });
            }
            recv(1)?
        }
        Workload::Big => {
            let workers: Vec<_> = (0..p.big_workers)
                .map(|i| {
                    rt.spawn(BigWorker {
                        me: i as u32,
                        rng: Rng::new(i),
                        peers: Arc::new([]),
                        sent: 0,
                        pongs: 0,
                        pings: p.big_pings,
                        report: report.clone(),
                    })
                })
                .collect();
            let peers: Arc<[ActorRef<BigWorker>]> = workers.into();
            // Every worker learns its peers before any worker starts pinging.
            for w in peers.iter() {
                send(w, BigMsg::Peers(peers.clone()));
            }
            for w in peers.iter() {
                send(w, BigMsg::Start);
            }
            recv(p.big_workers)?
        }
        Workload::Skynet => {
            rt.spawn(SkyNode {
                num: 0,
                size: p.skynet_leaves(),
                parent: Parent::Driver(report),
                sum: 0,
                replies: 0,
            });
            recv(1)?
        }
        Workload::Fanin => {
            let consumer = rt.spawn(Consumer {
                work: BusyWork::new(p.fanin_work_ns, p.spin_per_us.unwrap_or(1.0)),
                count: 0,
                sum: 0,
                total: p.fanin_producers * p.fanin_msgs,
                report,
            });
            for id in 0..p.fanin_producers {
                let prod = rt.spawn(FaninProducer {
                    id,
                    next: 0,
                    msgs: p.fanin_msgs,
                    to: consumer.clone(),
                });
                send(&prod, ());
            }
            recv(1)?
        }
    };
    let elapsed = start.elapsed();
    if std::env::var_os("REIN_COMPARE_METRICS").is_some() {
        eprintln!("rein metrics: {:?}", rt.metrics());
    }
    let shut = rt.shutdown();
    if shut.worker_panics > 0 {
        return Err(format!(
            "{} rein worker thread(s) panicked",
            shut.worker_panics
        ));
    }
    Ok(Outcome { value, elapsed })
}

struct Ping {
    pong: ActorRef<Pong>,
    rounds: u64,
    done: u64,
    report: Sender<u64>,
}

enum PingMsg {
    Start,
    Ball,
}

impl Actor for Ping {
    type Msg = PingMsg;
    fn handle(&mut self, _: &mut Context<Self>, m: PingMsg) {
        if let PingMsg::Ball = m {
            self.done += 1;
            if self.done == self.rounds {
                let _ = self.report.send(self.done);
                return;
            }
        }
        send(&self.pong, PongMsg::Ball);
    }
}

struct Pong {
    ping: Option<ActorRef<Ping>>,
}

enum PongMsg {
    SetPeer(ActorRef<Ping>),
    Ball,
}

impl Actor for Pong {
    type Msg = PongMsg;
    fn handle(&mut self, _: &mut Context<Self>, m: PongMsg) {
        match m {
            PongMsg::SetPeer(p) => self.ping = Some(p),
            PongMsg::Ball => {
                if let Some(p) = &self.ping {
                    send(p, PingMsg::Ball);
                }
            }
        }
    }
}

enum CountMsg {
    Inc,
    Get,
}

struct Counter {
    count: u64,
    report: Sender<u64>,
}

impl Actor for Counter {
    type Msg = CountMsg;
    fn handle(&mut self, _: &mut Context<Self>, m: CountMsg) {
        match m {
            CountMsg::Inc => self.count += 1,
            CountMsg::Get => {
                let _ = self.report.send(self.count);
            }
        }
    }
}

enum RingMsg {
    SetNext(ActorRef<RingNode>),
    Token(u64),
}

struct RingNode {
    next: Option<ActorRef<RingNode>>,
    hops: u64,
    report: Sender<u64>,
}

impl Actor for RingNode {
    type Msg = RingMsg;
    fn handle(&mut self, _: &mut Context<Self>, m: RingMsg) {
        match m {
            RingMsg::SetNext(n) => self.next = Some(n),
            RingMsg::Token(h) if h == self.hops => {
                let _ = self.report.send(h);
            }
            RingMsg::Token(h) => {
                if let Some(n) = &self.next {
                    send(n, RingMsg::Token(h + 1));
                }
            }
        }
    }
}

/// Sends message `i` to sink `i % sinks`, 100 per behaviour, then messages itself to go on.
struct FjDriver {
    sinks: Vec<ActorRef<FjSink>>,
    next: u64,
    total: u64,
}

impl Actor for FjDriver {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let end = (self.next + 100).min(self.total);
        let n = self.sinks.len() as u64;
        while self.next < end {
            send(&self.sinks[(self.next % n) as usize], self.next / n);
            self.next += 1;
        }
        if self.next < self.total {
            send(&ctx.myself(), ());
        }
    }
}

struct FjSink {
    seen: u64,
    want: u64,
    report: Sender<u64>,
}

impl Actor for FjSink {
    type Msg = u64;
    fn handle(&mut self, _: &mut Context<Self>, _: u64) {
        self.seen += 1;
        if self.seen == self.want {
            let _ = self.report.send(self.seen);
        }
    }
}

struct OneShot {
    report: Sender<u64>,
}

impl Actor for OneShot {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, v: u64) {
        let _ = self.report.send(v.min(1));
        ctx.stop();
    }
}

enum MallMsg {
    Meet(Colour, ActorRef<Chameneo>),
    Count(u64),
}

enum ChamMsg {
    Meet(Colour, ActorRef<Chameneo>),
    Change(Colour),
    Exit,
}

struct Mall {
    left: u64,
    waiting: Option<ActorRef<Chameneo>>,
    chameneos: u64,
    reported: u64,
    sum: u64,
    report: Sender<u64>,
}

impl Actor for Mall {
    type Msg = MallMsg;
    fn handle(&mut self, _: &mut Context<Self>, m: MallMsg) {
        match m {
            MallMsg::Meet(colour, from) if self.left > 0 => match self.waiting.take() {
                None => self.waiting = Some(from),
                Some(first) => {
                    self.left -= 1;
                    send(&first, ChamMsg::Meet(colour, from));
                }
            },
            MallMsg::Meet(_, from) => send(&from, ChamMsg::Exit),
            MallMsg::Count(n) => {
                self.sum += n;
                self.reported += 1;
                if self.reported == self.chameneos {
                    let _ = self.report.send(self.sum);
                }
            }
        }
    }
}

struct Chameneo {
    colour: Colour,
    met: u64,
    mall: ActorRef<Mall>,
}

impl Actor for Chameneo {
    type Msg = ChamMsg;

    fn started(&mut self, ctx: &mut Context<Self>) {
        send(&self.mall, MallMsg::Meet(self.colour, ctx.myself()));
    }

    fn handle(&mut self, ctx: &mut Context<Self>, m: ChamMsg) {
        match m {
            ChamMsg::Meet(other, peer) => {
                self.colour = self.colour.complement(other);
                self.met += 1;
                send(&peer, ChamMsg::Change(self.colour));
                send(&self.mall, MallMsg::Meet(self.colour, ctx.myself()));
            }
            ChamMsg::Change(c) => {
                self.colour = c;
                self.met += 1;
                send(&self.mall, MallMsg::Meet(self.colour, ctx.myself()));
            }
            ChamMsg::Exit => {
                send(&self.mall, MallMsg::Count(self.met));
                ctx.stop();
            }
        }
    }
}

enum BigMsg {
    Peers(Arc<[ActorRef<BigWorker>]>),
    Start,
    Ping(u32),
    Pong,
}

struct BigWorker {
    me: u32,
    rng: Rng,
    peers: Arc<[ActorRef<BigWorker>]>,
    sent: u64,
    pongs: u64,
    pings: u64,
    report: Sender<u64>,
}

impl BigWorker {
    fn ping_someone(&mut self) {
        self.sent += 1;
        let to = self.rng.below(self.peers.len() as u64) as usize;
        send(&self.peers[to], BigMsg::Ping(self.me));
    }
}

impl Actor for BigWorker {
    type Msg = BigMsg;
    fn handle(&mut self, _: &mut Context<Self>, m: BigMsg) {
        match m {
            BigMsg::Peers(p) => self.peers = p,
            BigMsg::Start => self.ping_someone(),
            BigMsg::Ping(from) => send(&self.peers[from as usize], BigMsg::Pong),
            BigMsg::Pong => {
                self.pongs += 1;
                if self.sent < self.pings {
                    self.ping_someone();
                } else {
                    let _ = self.report.send(self.pongs);
                }
            }
        }
    }
}

enum Parent {
    Driver(Sender<u64>),
    Node(ActorRef<SkyNode>),
}

struct SkyNode {
    num: u64,
    size: u64,
    parent: Parent,
    sum: u64,
    replies: u32,
}

impl SkyNode {
    fn tell_parent(&self, v: u64) {
        match &self.parent {
            Parent::Driver(s) => {
                let _ = s.send(v);
            }
            Parent::Node(a) => send(a, v),
        }
    }
}

impl Actor for SkyNode {
    type Msg = u64;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.size == 1 {
            self.tell_parent(self.num);
            ctx.stop();
            return;
        }
        let me = ctx.myself();
        for i in 0..10 {
            let (num, size) = workloads::skynet_child(self.num, self.size, i);
            ctx.spawn(SkyNode {
                num,
                size,
                parent: Parent::Node(me.clone()),
                sum: 0,
                replies: 0,
            });
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, v: u64) {
        self.sum += v;
        self.replies += 1;
        if self.replies == 10 {
            self.tell_parent(self.sum);
            ctx.stop();
        }
    }
}

struct Consumer {
    work: BusyWork,
    count: u64,
    sum: u64,
    total: u64,
    report: Sender<u64>,
}

impl Actor for Consumer {
    type Msg = Payload;
    fn handle(&mut self, _: &mut Context<Self>, m: Payload) {
        self.sum = self.sum.wrapping_add(self.work.run(&m));
        self.count += 1;
        if self.count == self.total {
            std::hint::black_box(self.sum);
            let _ = self.report.send(self.count);
        }
    }
}

struct FaninProducer {
    id: u64,
    next: u64,
    msgs: u64,
    to: ActorRef<Consumer>,
}

impl Actor for FaninProducer {
    type Msg = ();
    /// Sends one chunk, then asks itself for the next: between chunks the
    /// scheduler may mute this producer if the consumer is overloaded.
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let end = (self.next + workloads::FANIN_CHUNK).min(self.msgs);
        for i in self.next..end {
            send(&self.to, workloads::payload(self.id, i));
        }
        self.next = end;
        if end < self.msgs {
            send(&ctx.myself(), ());
        }
    }
}
