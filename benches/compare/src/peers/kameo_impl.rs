//! kameo: `#[derive(Actor)]` (or a hand-written `Actor` where a start hook
//! is needed), one `Message<M>` impl per message type, sent with `tell`.
//!
//! kameo runs on tokio, so `--threads` is the multi-thread runtime's
//! `worker_threads`. Actors use kameo's default mailbox (bounded, 64) and
//! `tell(..).await`, which waits for mailbox space: that is kameo's
//! documented default and its backpressure story. The one exception is
//! `big`: there every worker may ping every other, so with more than 63
//! workers one mailbox can fill while its owner itself waits on a full
//! mailbox, a cycle that deadlocks; `big` therefore uses
//! `mailbox::unbounded()` (also documented). The driver thread sends with
//! `blocking_send`.

use std::convert::Infallible;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use kameo::actor::{ActorRef, Spawn};
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::Actor;

use crate::workloads::{self, BusyWork, Colour, Outcome, Params, Payload, Rng, Workload};

/// `tell(..).await`, failing the run if the receiver is gone.
async fn tell<A: Message<M>, M: Send + 'static>(to: &ActorRef<A>, m: M) {
    assert!(to.tell(m).await.is_ok(), "kameo: tell to a stopped actor");
}

/// `tell(..).blocking_send()` from the driver thread.
fn tell_blocking<A: Message<M>, M: Send + 'static>(to: &ActorRef<A>, m: M) {
    assert!(
        to.tell(m).blocking_send().is_ok(),
        "kameo: tell to a stopped actor"
    );
}

/// Runs `w` on a tokio runtime with `threads` workers.
pub fn run(w: Workload, p: &Params, threads: usize) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (report, results) = std::sync::mpsc::channel::<u64>();
    let recv = |n: u64| -> Result<u64, String> {
        (0..n).try_fold(0u64, |acc, _| {
            results
                .recv()
                .map(|v| acc + v)
                .map_err(|_| "kameo: every reporter hung up".to_string())
        })
    };
    // `Spawn::spawn` uses `tokio::spawn`, so the driver enters the runtime.
    let _guard = rt.enter();
    let start = Instant::now();
    let value = match w {
        Workload::Pingpong => {
            let pong = Pong::spawn(Pong { ping: None });
            let ping = Ping::spawn(Ping {
                pong: pong.clone(),
                rounds: p.pingpong_n,
                done: 0,
                report,
            });
            tell_blocking(&pong, SetPeer(ping.clone()));
            tell_blocking(&ping, Start);
            recv(1)?
        }
        Workload::Counting => {
            let counter = Counter::spawn(Counter { count: 0, report });
            let producer = Producer::spawn(Producer {
                to: counter,
                n: p.counting_n,
            });
            tell_blocking(&producer, Start);
            recv(1)?
        }
        Workload::Threadring => {
            let nodes: Vec<_> = (0..p.ring_size)
                .map(|_| {
                    RingNode::spawn(RingNode {
                        next: None,
                        hops: p.ring_hops,
                        report: report.clone(),
                    })
                })
                .collect();
            for (i, n) in nodes.iter().enumerate() {
                tell_blocking(n, SetPeer(nodes[(i + 1) % nodes.len()].clone()));
            }
            tell_blocking(&nodes[0], Token(0));
            recv(1)?
        }
        Workload::ForkjoinThroughput => {
            let sinks: Vec<_> = (0..p.fj_actors)
                .map(|_| {
                    FjSink::spawn(FjSink {
                        seen: 0,
                        want: p.fj_msgs,
                        report: report.clone(),
                    })
                })
                .collect();
            for i in 0..p.fj_msgs {
                for s in &sinks {
                    tell_blocking(s, Num(i));
                }
            }
            recv(p.fj_actors)?
        }
        Workload::ForkjoinCreation => {
            for i in 0..p.fj_create_n {
                let a = OneShot::spawn(OneShot {
                    report: report.clone(),
                });
                tell_blocking(&a, Num(i + 1));
            }
            recv(p.fj_create_n)?
        }
        Workload::Chameneos => {
            let mall = Mall::spawn(Mall {
                left: p.chameneos_meetings,
                waiting: None,
                chameneos: p.chameneos_c,
                reported: 0,
                sum: 0,
                report,
            });
            for i in 0..p.chameneos_c {
                Chameneo::spawn(Chameneo {
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
                    let w = BigWorker {
                        me: i as u32,
                        rng: Rng::new(i),
                        peers: Arc::new([]),
                        sent: 0,
                        pongs: 0,
                        pings: p.big_pings,
                        report: report.clone(),
                    };
                    BigWorker::spawn_with_mailbox(w, mailbox::unbounded())
                })
                .collect();
            let peers: Arc<[ActorRef<BigWorker>]> = workers.into();
            // Every worker learns its peers before any worker starts pinging.
            for w in peers.iter() {
                tell_blocking(w, BigPeers(peers.clone()));
            }
            for w in peers.iter() {
                tell_blocking(w, Start);
            }
            recv(p.big_workers)?
        }
        Workload::Skynet => {
            SkyNode::spawn(SkyNode {
                num: 0,
                size: p.skynet_leaves(),
                parent: Parent::Driver(report),
                sum: 0,
                replies: 0,
            });
            recv(1)?
        }
        Workload::Fanin => {
            let consumer = Consumer::spawn(Consumer {
                work: BusyWork::new(p.fanin_work_ns, p.spin_per_us.unwrap_or(1.0)),
                count: 0,
                sum: 0,
                total: p.fanin_producers * p.fanin_msgs,
                report,
            });
            for id in 0..p.fanin_producers {
                let prod = FaninProducer::spawn(FaninProducer {
                    id,
                    next: 0,
                    msgs: p.fanin_msgs,
                    to: consumer.clone(),
                });
                tell_blocking(&prod, Start);
            }
            recv(1)?
        }
    };
    let elapsed = start.elapsed();
    drop(_guard);
    rt.shutdown_background();
    Ok(Outcome { value, elapsed })
}

struct Start;
struct Ball;
struct SetPeer<A: Actor>(ActorRef<A>);
struct Num(u64);

#[derive(Actor)]
struct Ping {
    pong: ActorRef<Pong>,
    rounds: u64,
    done: u64,
    report: Sender<u64>,
}

impl Message<Start> for Ping {
    type Reply = ();
    async fn handle(&mut self, _: Start, _: &mut Context<Self, ()>) {
        tell(&self.pong, Ball).await;
    }
}

impl Message<Ball> for Ping {
    type Reply = ();
    async fn handle(&mut self, _: Ball, _: &mut Context<Self, ()>) {
        self.done += 1;
        if self.done == self.rounds {
            let _ = self.report.send(self.done);
        } else {
            tell(&self.pong, Ball).await;
        }
    }
}

#[derive(Actor)]
struct Pong {
    ping: Option<ActorRef<Ping>>,
}

impl Message<SetPeer<Ping>> for Pong {
    type Reply = ();
    async fn handle(&mut self, m: SetPeer<Ping>, _: &mut Context<Self, ()>) {
        self.ping = Some(m.0);
    }
}

impl Message<Ball> for Pong {
    type Reply = ();
    async fn handle(&mut self, _: Ball, _: &mut Context<Self, ()>) {
        if let Some(p) = &self.ping {
            tell(p, Ball).await;
        }
    }
}

enum Count {
    Inc,
    Get,
}

#[derive(Actor)]
struct Producer {
    to: ActorRef<Counter>,
    n: u64,
}

impl Message<Start> for Producer {
    type Reply = ();
    async fn handle(&mut self, _: Start, _: &mut Context<Self, ()>) {
        for _ in 0..self.n {
            tell(&self.to, Count::Inc).await;
        }
        tell(&self.to, Count::Get).await;
    }
}

#[derive(Actor)]
struct Counter {
    count: u64,
    report: Sender<u64>,
}

impl Message<Count> for Counter {
    type Reply = ();
    async fn handle(&mut self, m: Count, _: &mut Context<Self, ()>) {
        match m {
            Count::Inc => self.count += 1,
            Count::Get => {
                let _ = self.report.send(self.count);
            }
        }
    }
}

struct Token(u64);

#[derive(Actor)]
struct RingNode {
    next: Option<ActorRef<RingNode>>,
    hops: u64,
    report: Sender<u64>,
}

impl Message<SetPeer<RingNode>> for RingNode {
    type Reply = ();
    async fn handle(&mut self, m: SetPeer<RingNode>, _: &mut Context<Self, ()>) {
        self.next = Some(m.0);
    }
}

impl Message<Token> for RingNode {
    type Reply = ();
    async fn handle(&mut self, Token(h): Token, _: &mut Context<Self, ()>) {
        if h == self.hops {
            let _ = self.report.send(h);
        } else if let Some(n) = &self.next {
            tell(n, Token(h + 1)).await;
        }
    }
}

#[derive(Actor)]
struct FjSink {
    seen: u64,
    want: u64,
    report: Sender<u64>,
}

impl Message<Num> for FjSink {
    type Reply = ();
    async fn handle(&mut self, _: Num, _: &mut Context<Self, ()>) {
        self.seen += 1;
        if self.seen == self.want {
            let _ = self.report.send(self.seen);
        }
    }
}

#[derive(Actor)]
struct OneShot {
    report: Sender<u64>,
}

impl Message<Num> for OneShot {
    type Reply = ();
    async fn handle(&mut self, Num(v): Num, ctx: &mut Context<Self, ()>) {
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

#[derive(Actor)]
struct Mall {
    left: u64,
    waiting: Option<ActorRef<Chameneo>>,
    chameneos: u64,
    reported: u64,
    sum: u64,
    report: Sender<u64>,
}

impl Message<MallMsg> for Mall {
    type Reply = ();
    async fn handle(&mut self, m: MallMsg, _: &mut Context<Self, ()>) {
        match m {
            MallMsg::Meet(colour, from) if self.left > 0 => match self.waiting.take() {
                None => self.waiting = Some(from),
                Some(first) => {
                    self.left -= 1;
                    tell(&first, ChamMsg::Meet(colour, from)).await;
                }
            },
            MallMsg::Meet(_, from) => tell(&from, ChamMsg::Exit).await,
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
    type Args = Self;
    type Error = Infallible;

    async fn on_start(me: Self, actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        tell(&me.mall, MallMsg::Meet(me.colour, actor_ref)).await;
        Ok(me)
    }
}

impl Message<ChamMsg> for Chameneo {
    type Reply = ();
    async fn handle(&mut self, m: ChamMsg, ctx: &mut Context<Self, ()>) {
        match m {
            ChamMsg::Meet(other, peer) => {
                self.colour = self.colour.complement(other);
                self.met += 1;
                tell(&peer, ChamMsg::Change(self.colour)).await;
                let me = ctx.actor_ref().clone();
                tell(&self.mall, MallMsg::Meet(self.colour, me)).await;
            }
            ChamMsg::Change(c) => {
                self.colour = c;
                self.met += 1;
                let me = ctx.actor_ref().clone();
                tell(&self.mall, MallMsg::Meet(self.colour, me)).await;
            }
            ChamMsg::Exit => {
                tell(&self.mall, MallMsg::Count(self.met)).await;
                ctx.stop();
            }
        }
    }
}

struct BigPeers(Arc<[ActorRef<BigWorker>]>);

enum BigMsg {
    Ping(u32),
    Pong,
}

#[derive(Actor)]
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
    async fn ping_someone(&mut self) {
        self.sent += 1;
        let to = self.rng.below(self.peers.len() as u64) as usize;
        tell(&self.peers[to], BigMsg::Ping(self.me)).await;
    }
}

impl Message<BigPeers> for BigWorker {
    type Reply = ();
    async fn handle(&mut self, BigPeers(p): BigPeers, _: &mut Context<Self, ()>) {
        self.peers = p;
    }
}

impl Message<Start> for BigWorker {
    type Reply = ();
    async fn handle(&mut self, _: Start, _: &mut Context<Self, ()>) {
        self.ping_someone().await;
    }
}

impl Message<BigMsg> for BigWorker {
    type Reply = ();
    async fn handle(&mut self, m: BigMsg, _: &mut Context<Self, ()>) {
        match m {
            BigMsg::Ping(from) => tell(&self.peers[from as usize], BigMsg::Pong).await,
            BigMsg::Pong => {
                self.pongs += 1;
                if self.sent < self.pings {
                    self.ping_someone().await;
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
    async fn tell_parent(&self, v: u64) {
        match &self.parent {
            Parent::Driver(s) => {
                let _ = s.send(v);
            }
            Parent::Node(a) => tell(a, Num(v)).await,
        }
    }
}

impl Actor for SkyNode {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(me: Self, actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        if me.size == 1 {
            me.tell_parent(me.num).await;
            // A leaf has nothing left to do: queue its own graceful stop.
            let _ = actor_ref.stop_gracefully().await;
            return Ok(me);
        }
        for i in 0..10 {
            let (num, size) = workloads::skynet_child(me.num, me.size, i);
            SkyNode::spawn(SkyNode {
                num,
                size,
                parent: Parent::Node(actor_ref.clone()),
                sum: 0,
                replies: 0,
            });
        }
        Ok(me)
    }
}

impl Message<Num> for SkyNode {
    type Reply = ();
    async fn handle(&mut self, Num(v): Num, ctx: &mut Context<Self, ()>) {
        self.sum += v;
        self.replies += 1;
        if self.replies == 10 {
            self.tell_parent(self.sum).await;
            ctx.stop();
        }
    }
}

#[derive(Actor)]
struct Consumer {
    work: BusyWork,
    count: u64,
    sum: u64,
    total: u64,
    report: Sender<u64>,
}

struct Bytes(Payload);

impl Message<Bytes> for Consumer {
    type Reply = ();
    async fn handle(&mut self, Bytes(p): Bytes, _: &mut Context<Self, ()>) {
        self.sum = self.sum.wrapping_add(self.work.run(&p));
        self.count += 1;
        if self.count == self.total {
            std::hint::black_box(self.sum);
            let _ = self.report.send(self.count);
        }
    }
}

#[derive(Actor)]
struct FaninProducer {
    id: u64,
    next: u64,
    msgs: u64,
    to: ActorRef<Consumer>,
}

impl Message<Start> for FaninProducer {
    type Reply = ();
    /// One chunk per message, then a message to itself for the next.
    async fn handle(&mut self, _: Start, ctx: &mut Context<Self, ()>) {
        let end = (self.next + workloads::FANIN_CHUNK).min(self.msgs);
        for i in self.next..end {
            tell(&self.to, Bytes(workloads::payload(self.id, i))).await;
        }
        self.next = end;
        if end < self.msgs {
            tell(ctx.actor_ref(), Start).await;
        }
    }
}
