//! actix: `Actor` + `Handler<M>` per message type, `Addr::do_send`.
//!
//! actix runs each actor on one `Arbiter`, a single-threaded event loop, and
//! never moves it. To honour `--threads N` the module starts N arbiters (N OS
//! threads) and places actors on them explicitly with `start_in_arbiter`: in
//! contiguous chunks for fixed actor sets (a ring crosses threads only N
//! times per lap; the ping-pong pair shares one arbiter), round-robin for actors the driver creates one by one, and
//! for skynet the root's ten subtrees go round-robin while every node below
//! starts its children on its own arbiter with `Actor::start`, the idiomatic
//! local spawn. The main thread is the driver, as for every framework; it
//! registers an (unrun) `System` only because arbiters must belong to one.
//! `do_send` ignores the mailbox capacity, so every mailbox is unbounded.
//!
//! One actix race needs a workaround. After draining its mailbox an actor
//! stops if no `Addr` to it is left (`ContextFut` checks `connected()` once
//! the mailbox looked empty), so a message pushed from another arbiter just
//! before the sender drops the last `Addr` can be lost, and the run hangs.
//! Skynet lost replies this way. So the driver keeps the `Addr`s it created
//! until the result is in, and actors that stop themselves after a known
//! number of messages hold their own `Addr` (`me`) until they do.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use crate::workloads::{self, BusyWork, Colour, Outcome, Params, Payload, Rng, Workload};

/// N arbiters owned by the driver; stopped and joined on drop.
struct Arbiters {
    arbs: Vec<Arbiter>,
    handles: Arc<[ArbiterHandle]>,
    _sys: SystemRunner,
}

impl Arbiters {
    fn new(n: usize) -> Result<Self, String> {
        let sys = System::new();
        let arbs = (0..n)
            .map(|_| Arbiter::try_new().map_err(|e| format!("actix arbiter: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let handles = arbs.iter().map(Arbiter::handle).collect();
        Ok(Arbiters {
            arbs,
            handles,
            _sys: sys,
        })
    }

    /// The arbiter for actor `i` of `count` placed in contiguous chunks.
    fn chunk(&self, i: usize, count: usize) -> &ArbiterHandle {
        &self.handles[i * self.handles.len() / count.max(1)]
    }

    /// The arbiter for actor `i` placed round-robin.
    fn rr(&self, i: usize) -> &ArbiterHandle {
        &self.handles[i % self.handles.len()]
    }
}

impl Drop for Arbiters {
    fn drop(&mut self) {
        for a in self.arbs.drain(..) {
            a.stop();
            let _ = a.join();
        }
    }
}

/// Starts `a` on arbiter `h`.
fn start_on<A>(h: &ArbiterHandle, a: A) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Send,
{
    A::start_in_arbiter(h, move |_| a)
}

/// Runs `w` on `threads` actix arbiters.
pub fn run(w: Workload, p: &Params, threads: usize) -> Result<Outcome, String> {
    let arbs = Arbiters::new(threads)?;
    let (report, results) = std::sync::mpsc::channel::<u64>();
    let recv = |n: u64| -> Result<u64, String> {
        (0..n).try_fold(0u64, |acc, _| {
            results
                .recv()
                .map(|v| acc + v)
                .map_err(|_| "actix: every reporter hung up".to_string())
        })
    };
    let start = Instant::now();
    let value = match w {
        Workload::Pingpong => {
            // Co-located: actix cannot migrate actors, and a strictly
            // sequential pair gains nothing from two threads. Split over two
            // arbiters the same run is ~40x slower (see compare-notes.md).
            let pong = start_on(arbs.rr(0), Pong { ping: None });
            let ping = start_on(
                arbs.rr(0),
                Ping {
                    pong: pong.clone(),
                    rounds: p.pingpong_n,
                    done: 0,
                    report,
                },
            );
            pong.do_send(SetPeer(ping.clone()));
            ping.do_send(Start);
            recv(1)?
        }
        Workload::Counting => {
            let counter = start_on(arbs.chunk(1, 2), Counter { count: 0, report });
            let producer = start_on(
                arbs.chunk(0, 2),
                Producer {
                    to: counter,
                    n: p.counting_n,
                },
            );
            producer.do_send(Start);
            recv(1)?
        }
        Workload::Threadring => {
            let size = p.ring_size as usize;
            let nodes: Vec<_> = (0..size)
                .map(|i| {
                    let node = RingNode {
                        next: None,
                        hops: p.ring_hops,
                        report: report.clone(),
                    };
                    start_on(arbs.chunk(i, size), node)
                })
                .collect();
            for (i, n) in nodes.iter().enumerate() {
                n.do_send(SetPeer(nodes[(i + 1) % size].clone()));
            }
            nodes[0].do_send(Token(0));
            recv(1)?
        }
        Workload::ForkjoinThroughput => {
            let count = p.fj_actors as usize;
            let sinks: Vec<_> = (0..count)
                .map(|i| {
                    let s = FjSink {
                        seen: 0,
                        want: p.fj_msgs,
                        report: report.clone(),
                    };
                    start_on(arbs.chunk(i, count), s)
                })
                .collect();
            for i in 0..p.fj_msgs {
                for s in &sinks {
                    s.do_send(Num(i));
                }
            }
            recv(p.fj_actors)?
        }
        Workload::ForkjoinCreation => {
            for i in 0..p.fj_create_n {
                let a = start_on(
                    arbs.rr(i as usize),
                    OneShot {
                        report: report.clone(),
                        me: None,
                    },
                );
                a.do_send(Num(i + 1));
            }
            recv(p.fj_create_n)?
        }
        Workload::Chameneos => {
            let c = p.chameneos_c as usize;
            let mall = start_on(
                arbs.chunk(0, c + 1),
                Mall {
                    left: p.chameneos_meetings,
                    waiting: None,
                    chameneos: p.chameneos_c,
                    reported: 0,
                    sum: 0,
                    report,
                },
            );
            for i in 0..c {
                let cham = Chameneo {
                    colour: Colour::nth(i as u64),
                    met: 0,
                    mall: mall.clone(),
                    me: None,
                };
                start_on(arbs.chunk(i + 1, c + 1), cham);
            }
            recv(1)?
        }
        Workload::Big => {
            let count = p.big_workers as usize;
            let workers: Vec<_> = (0..count)
                .map(|i| {
                    let w = BigWorker {
                        me: i as u32,
                        rng: Rng::new(i as u64),
                        peers: Arc::new([]),
                        sent: 0,
                        pongs: 0,
                        pings: p.big_pings,
                        report: report.clone(),
                    };
                    start_on(arbs.chunk(i, count), w)
                })
                .collect();
            let peers: Arc<[Addr<BigWorker>]> = workers.into();
            // Every worker learns its peers before any worker starts pinging.
            for w in peers.iter() {
                w.do_send(BigPeers(peers.clone()));
            }
            for w in peers.iter() {
                w.do_send(Start);
            }
            recv(p.big_workers)?
        }
        Workload::Skynet => {
            let root = SkyNode {
                num: 0,
                size: p.skynet_leaves(),
                parent: Parent::Driver(report),
                sum: 0,
                replies: 0,
                spread: Some(arbs.handles.clone()),
                me: None,
            };
            start_on(arbs.rr(0), root);
            recv(1)?
        }
        Workload::Fanin => {
            let producers = p.fanin_producers as usize;
            let consumer = start_on(
                arbs.chunk(0, producers + 1),
                Consumer {
                    work: BusyWork::new(p.fanin_work_ns, p.spin_per_us.unwrap_or(1.0)),
                    count: 0,
                    sum: 0,
                    total: p.fanin_producers * p.fanin_msgs,
                    report,
                },
            );
            let producers: Vec<_> = (0..producers)
                .map(|i| {
                    let prod = FaninProducer {
                        id: i as u64,
                        next: 0,
                        msgs: p.fanin_msgs,
                        to: consumer.clone(),
                    };
                    start_on(arbs.chunk(i + 1, producers + 1), prod)
                })
                .collect();
            for prod in &producers {
                prod.do_send(Start);
            }
            recv(1)?
        }
    };
    let elapsed = start.elapsed();
    drop(arbs);
    Ok(Outcome { value, elapsed })
}

/// Implements `Actor` with the default `Context` for each listed type.
macro_rules! actors {
    ($($t:ty),*) => {$(
        impl Actor for $t {
            type Context = Context<Self>;
        }
    )*};
}

actors!(
    Ping,
    Pong,
    Producer,
    Counter,
    RingNode,
    FjSink,
    Mall,
    BigWorker,
    Consumer,
    FaninProducer
);

#[derive(Message)]
#[rtype(result = "()")]
struct Start;

#[derive(Message)]
#[rtype(result = "()")]
struct Ball;

#[derive(Message)]
#[rtype(result = "()")]
struct SetPeer<A: Actor>(Addr<A>);

#[derive(Message)]
#[rtype(result = "()")]
struct Num(u64);

struct Ping {
    pong: Addr<Pong>,
    rounds: u64,
    done: u64,
    report: Sender<u64>,
}

impl Handler<Start> for Ping {
    type Result = ();
    fn handle(&mut self, _: Start, _: &mut Context<Self>) {
        self.pong.do_send(Ball);
    }
}

impl Handler<Ball> for Ping {
    type Result = ();
    fn handle(&mut self, _: Ball, _: &mut Context<Self>) {
        self.done += 1;
        if self.done == self.rounds {
            let _ = self.report.send(self.done);
        } else {
            self.pong.do_send(Ball);
        }
    }
}

struct Pong {
    ping: Option<Addr<Ping>>,
}

impl Handler<SetPeer<Ping>> for Pong {
    type Result = ();
    fn handle(&mut self, m: SetPeer<Ping>, _: &mut Context<Self>) {
        self.ping = Some(m.0);
    }
}

impl Handler<Ball> for Pong {
    type Result = ();
    fn handle(&mut self, _: Ball, _: &mut Context<Self>) {
        if let Some(p) = &self.ping {
            p.do_send(Ball);
        }
    }
}

enum Count {
    Inc,
    Get,
}

impl Message for Count {
    type Result = ();
}

struct Producer {
    to: Addr<Counter>,
    n: u64,
}

impl Handler<Start> for Producer {
    type Result = ();
    fn handle(&mut self, _: Start, _: &mut Context<Self>) {
        for _ in 0..self.n {
            self.to.do_send(Count::Inc);
        }
        self.to.do_send(Count::Get);
    }
}

struct Counter {
    count: u64,
    report: Sender<u64>,
}

impl Handler<Count> for Counter {
    type Result = ();
    fn handle(&mut self, m: Count, _: &mut Context<Self>) {
        match m {
            Count::Inc => self.count += 1,
            Count::Get => {
                let _ = self.report.send(self.count);
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Token(u64);

struct RingNode {
    next: Option<Addr<RingNode>>,
    hops: u64,
    report: Sender<u64>,
}

impl Handler<SetPeer<RingNode>> for RingNode {
    type Result = ();
    fn handle(&mut self, m: SetPeer<RingNode>, _: &mut Context<Self>) {
        self.next = Some(m.0);
    }
}

impl Handler<Token> for RingNode {
    type Result = ();
    fn handle(&mut self, Token(h): Token, _: &mut Context<Self>) {
        if h == self.hops {
            let _ = self.report.send(h);
        } else if let Some(n) = &self.next {
            n.do_send(Token(h + 1));
        }
    }
}

struct FjSink {
    seen: u64,
    want: u64,
    report: Sender<u64>,
}

impl Handler<Num> for FjSink {
    type Result = ();
    fn handle(&mut self, _: Num, _: &mut Context<Self>) {
        self.seen += 1;
        if self.seen == self.want {
            let _ = self.report.send(self.seen);
        }
    }
}

struct OneShot {
    report: Sender<u64>,
    me: Option<Addr<OneShot>>,
}

impl Actor for OneShot {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
    }
}

impl Handler<Num> for OneShot {
    type Result = ();
    fn handle(&mut self, Num(v): Num, ctx: &mut Context<Self>) {
        let _ = self.report.send(v.min(1));
        ctx.stop();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
enum MallMsg {
    Meet(Colour, Addr<Chameneo>),
    Count(u64),
}

#[derive(Message)]
#[rtype(result = "()")]
enum ChamMsg {
    Meet(Colour, Addr<Chameneo>),
    Change(Colour),
    Exit,
}

struct Mall {
    left: u64,
    waiting: Option<Addr<Chameneo>>,
    chameneos: u64,
    reported: u64,
    sum: u64,
    report: Sender<u64>,
}

impl Handler<MallMsg> for Mall {
    type Result = ();
    fn handle(&mut self, m: MallMsg, _: &mut Context<Self>) {
        match m {
            MallMsg::Meet(colour, from) if self.left > 0 => match self.waiting.take() {
                None => self.waiting = Some(from),
                Some(first) => {
                    self.left -= 1;
                    first.do_send(ChamMsg::Meet(colour, from));
                }
            },
            MallMsg::Meet(_, from) => from.do_send(ChamMsg::Exit),
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
    mall: Addr<Mall>,
    me: Option<Addr<Chameneo>>,
}

impl Actor for Chameneo {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        self.mall.do_send(MallMsg::Meet(self.colour, ctx.address()));
    }
}

impl Handler<ChamMsg> for Chameneo {
    type Result = ();
    fn handle(&mut self, m: ChamMsg, ctx: &mut Context<Self>) {
        match m {
            ChamMsg::Meet(other, peer) => {
                self.colour = self.colour.complement(other);
                self.met += 1;
                peer.do_send(ChamMsg::Change(self.colour));
                self.mall.do_send(MallMsg::Meet(self.colour, ctx.address()));
            }
            ChamMsg::Change(c) => {
                self.colour = c;
                self.met += 1;
                self.mall.do_send(MallMsg::Meet(self.colour, ctx.address()));
            }
            ChamMsg::Exit => {
                self.mall.do_send(MallMsg::Count(self.met));
                ctx.stop();
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct BigPeers(Arc<[Addr<BigWorker>]>);

#[derive(Message)]
#[rtype(result = "()")]
enum BigMsg {
    Ping(u32),
    Pong,
}

struct BigWorker {
    me: u32,
    rng: Rng,
    peers: Arc<[Addr<BigWorker>]>,
    sent: u64,
    pongs: u64,
    pings: u64,
    report: Sender<u64>,
}

impl BigWorker {
    fn ping_someone(&mut self) {
        self.sent += 1;
        let to = self.rng.below(self.peers.len() as u64) as usize;
        self.peers[to].do_send(BigMsg::Ping(self.me));
    }
}

impl Handler<BigPeers> for BigWorker {
    type Result = ();
    fn handle(&mut self, BigPeers(peers): BigPeers, _: &mut Context<Self>) {
        self.peers = peers;
    }
}

impl Handler<Start> for BigWorker {
    type Result = ();
    fn handle(&mut self, _: Start, _: &mut Context<Self>) {
        self.ping_someone();
    }
}

impl Handler<BigMsg> for BigWorker {
    type Result = ();
    fn handle(&mut self, m: BigMsg, _: &mut Context<Self>) {
        match m {
            BigMsg::Ping(from) => self.peers[from as usize].do_send(BigMsg::Pong),
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
    Node(Addr<SkyNode>),
}

impl Parent {
    fn tell(&self, v: u64) {
        match self {
            Parent::Driver(s) => {
                let _ = s.send(v);
            }
            Parent::Node(a) => a.do_send(Num(v)),
        }
    }
}

struct SkyNode {
    num: u64,
    size: u64,
    parent: Parent,
    sum: u64,
    replies: u32,
    /// Only the root has this: it spreads its subtrees over the arbiters.
    spread: Option<Arc<[ArbiterHandle]>>,
    me: Option<Addr<SkyNode>>,
}

impl Actor for SkyNode {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.size == 1 {
            self.parent.tell(self.num);
            ctx.stop();
            return;
        }
        let me = ctx.address();
        self.me = Some(me.clone());
        for i in 0..10 {
            let (num, size) = workloads::skynet_child(self.num, self.size, i);
            let child = SkyNode {
                num,
                size,
                parent: Parent::Node(me.clone()),
                sum: 0,
                replies: 0,
                spread: None,
                me: None,
            };
            match &self.spread {
                Some(h) => drop(start_on(&h[i as usize % h.len()], child)),
                None => drop(child.start()),
            }
        }
    }
}

impl Handler<Num> for SkyNode {
    type Result = ();
    fn handle(&mut self, Num(v): Num, ctx: &mut Context<Self>) {
        self.sum += v;
        self.replies += 1;
        if self.replies == 10 {
            self.parent.tell(self.sum);
            ctx.stop();
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Bytes(Payload);

struct Consumer {
    work: BusyWork,
    count: u64,
    sum: u64,
    total: u64,
    report: Sender<u64>,
}

impl Handler<Bytes> for Consumer {
    type Result = ();
    fn handle(&mut self, Bytes(p): Bytes, _: &mut Context<Self>) {
        self.sum = self.sum.wrapping_add(self.work.run(&p));
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
    to: Addr<Consumer>,
}

impl Handler<Start> for FaninProducer {
    type Result = ();
    /// One chunk per message; `notify` queues the next chunk behind
    /// whatever else this arbiter has to run.
    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) {
        let end = (self.next + workloads::FANIN_CHUNK).min(self.msgs);
        for i in self.next..end {
            self.to.do_send(Bytes(workloads::payload(self.id, i)));
        }
        self.next = end;
        if end < self.msgs {
            ctx.notify(Start);
        }
    }
}
