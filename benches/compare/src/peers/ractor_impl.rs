//! ractor: `Actor` with `pre_start`/`handle`, messages sent with `cast`.
//!
//! ractor runs on tokio, so `--threads` is the multi-thread runtime's
//! `worker_threads`. Actors are spawned with `Actor::spawn` (awaited, as
//! ractor's docs show: spawning runs `pre_start` before it returns); setup
//! therefore happens inside `block_on` on the driver thread, and the result
//! arrives on a std channel after it. ractor's mailboxes are unbounded.
//! The crate is built without its default `message_span_propogation`
//! feature, which only adds per-message tracing-span capture.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::workloads::{self, BusyWork, Colour, Outcome, Params, Payload, Rng, Workload};

type Res = Result<(), ActorProcessingErr>;

/// Spawns an unnamed actor, panicking (which fails the run) if ractor refuses.
async fn spawn<A: Actor>(a: A, args: A::Arguments) -> ActorRef<A::Msg> {
    Actor::spawn(None, a, args)
        .await
        .expect("ractor: spawn failed")
        .0
}

/// `cast`, failing the run if the receiver is gone.
fn cast<M: ractor::Message>(to: &ActorRef<M>, m: M) {
    assert!(to.cast(m).is_ok(), "ractor: cast to a stopped actor");
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
                .map_err(|_| "ractor: every reporter hung up".to_string())
        })
    };
    let p = p.clone();
    let start = Instant::now();
    let value = match w {
        Workload::Pingpong => {
            rt.block_on(async {
                let pong = spawn(Pong, ()).await;
                let ping = spawn(Ping, (pong.clone(), p.pingpong_n, report)).await;
                cast(&pong, PongMsg::SetPeer(ping.clone()));
                cast(&ping, PingMsg::Start);
            });
            recv(1)?
        }
        Workload::Counting => {
            rt.block_on(async {
                let counter = spawn(Counter, report).await;
                let producer = spawn(Producer, (counter, p.counting_n)).await;
                cast(&producer, ());
            });
            recv(1)?
        }
        Workload::Threadring => {
            rt.block_on(async {
                let mut nodes = Vec::new();
                for _ in 0..p.ring_size {
                    nodes.push(spawn(RingNode, (p.ring_hops, report.clone())).await);
                }
                for (i, n) in nodes.iter().enumerate() {
                    cast(n, RingMsg::SetNext(nodes[(i + 1) % nodes.len()].clone()));
                }
                cast(&nodes[0], RingMsg::Token(0));
            });
            recv(1)?
        }
        Workload::ForkjoinThroughput => {
            let sinks = rt.block_on(async {
                let mut v = Vec::new();
                for _ in 0..p.fj_actors {
                    v.push(spawn(FjSink, (p.fj_msgs, report.clone())).await);
                }
                v
            });
            for i in 0..p.fj_msgs {
                for s in &sinks {
                    cast(s, i);
                }
            }
            recv(p.fj_actors)?
        }
        Workload::ForkjoinCreation => {
            rt.block_on(async {
                for i in 0..p.fj_create_n {
                    let a = spawn(OneShot, report.clone()).await;
                    cast(&a, i + 1);
                }
            });
            recv(p.fj_create_n)?
        }
        Workload::Chameneos => {
            rt.block_on(async {
                let mall = spawn(Mall, (p.chameneos_c, p.chameneos_meetings, report)).await;
                for i in 0..p.chameneos_c {
                    spawn(Chameneo, (Colour::nth(i), mall.clone())).await;
                }
            });
            recv(1)?
        }
        Workload::Big => {
            rt.block_on(async {
                let mut workers = Vec::new();
                for i in 0..p.big_workers {
                    workers.push(spawn(BigWorker, (i as u32, p.big_pings, report.clone())).await);
                }
                let peers: Arc<[ActorRef<BigMsg>]> = workers.into();
                // Every worker learns its peers before any worker starts pinging.
                for w in peers.iter() {
                    cast(w, BigMsg::Peers(peers.clone()));
                }
                for w in peers.iter() {
                    cast(w, BigMsg::Start);
                }
            });
            recv(p.big_workers)?
        }
        Workload::Skynet => {
            rt.block_on(spawn(
                SkyNode,
                (0, p.skynet_leaves(), Parent::Driver(report)),
            ));
            recv(1)?
        }
        Workload::Fanin => {
            rt.block_on(async {
                let work = BusyWork::new(p.fanin_work_ns, p.spin_per_us.unwrap_or(1.0));
                let total = p.fanin_producers * p.fanin_msgs;
                let consumer = spawn(Consumer, (work, total, report)).await;
                for id in 0..p.fanin_producers {
                    let prod = spawn(FaninProducer, (id, p.fanin_msgs, consumer.clone())).await;
                    cast(&prod, ());
                }
            });
            recv(1)?
        }
    };
    let elapsed = start.elapsed();
    rt.shutdown_background();
    Ok(Outcome { value, elapsed })
}

struct Ping;

enum PingMsg {
    Start,
    Ball,
}

struct PingState {
    pong: ActorRef<PongMsg>,
    rounds: u64,
    done: u64,
    report: Sender<u64>,
}

impl Actor for Ping {
    type Msg = PingMsg;
    type State = PingState;
    type Arguments = (ActorRef<PongMsg>, u64, Sender<u64>);

    async fn pre_start(
        &self,
        _: ActorRef<PingMsg>,
        a: Self::Arguments,
    ) -> Result<PingState, ActorProcessingErr> {
        Ok(PingState {
            pong: a.0,
            rounds: a.1,
            done: 0,
            report: a.2,
        })
    }

    async fn handle(&self, _: ActorRef<PingMsg>, m: PingMsg, s: &mut PingState) -> Res {
        if let PingMsg::Ball = m {
            s.done += 1;
            if s.done == s.rounds {
                let _ = s.report.send(s.done);
                return Ok(());
            }
        }
        cast(&s.pong, PongMsg::Ball);
        Ok(())
    }
}

struct Pong;

enum PongMsg {
    SetPeer(ActorRef<PingMsg>),
    Ball,
}

impl Actor for Pong {
    type Msg = PongMsg;
    type State = Option<ActorRef<PingMsg>>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<PongMsg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(None)
    }

    async fn handle(&self, _: ActorRef<PongMsg>, m: PongMsg, s: &mut Self::State) -> Res {
        match m {
            PongMsg::SetPeer(p) => *s = Some(p),
            PongMsg::Ball => {
                if let Some(p) = s {
                    cast(p, PingMsg::Ball);
                }
            }
        }
        Ok(())
    }
}

struct Producer;

impl Actor for Producer {
    type Msg = ();
    type State = (ActorRef<CountMsg>, u64);
    type Arguments = (ActorRef<CountMsg>, u64);

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        a: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(a)
    }

    async fn handle(&self, _: ActorRef<()>, _: (), (to, n): &mut Self::State) -> Res {
        for _ in 0..*n {
            cast(to, CountMsg::Inc);
        }
        cast(to, CountMsg::Get);
        Ok(())
    }
}

enum CountMsg {
    Inc,
    Get,
}

struct Counter;

impl Actor for Counter {
    type Msg = CountMsg;
    type State = (u64, Sender<u64>);
    type Arguments = Sender<u64>;

    async fn pre_start(
        &self,
        _: ActorRef<CountMsg>,
        r: Sender<u64>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((0, r))
    }

    async fn handle(
        &self,
        _: ActorRef<CountMsg>,
        m: CountMsg,
        (count, report): &mut Self::State,
    ) -> Res {
        match m {
            CountMsg::Inc => *count += 1,
            CountMsg::Get => {
                let _ = report.send(*count);
            }
        }
        Ok(())
    }
}

enum RingMsg {
    SetNext(ActorRef<RingMsg>),
    Token(u64),
}

struct RingNode;

struct RingState {
    next: Option<ActorRef<RingMsg>>,
    hops: u64,
    report: Sender<u64>,
}

impl Actor for RingNode {
    type Msg = RingMsg;
    type State = RingState;
    type Arguments = (u64, Sender<u64>);

    async fn pre_start(
        &self,
        _: ActorRef<RingMsg>,
        (hops, report): Self::Arguments,
    ) -> Result<RingState, ActorProcessingErr> {
        Ok(RingState {
            next: None,
            hops,
            report,
        })
    }

    async fn handle(&self, _: ActorRef<RingMsg>, m: RingMsg, s: &mut RingState) -> Res {
        match m {
            RingMsg::SetNext(n) => s.next = Some(n),
            RingMsg::Token(h) if h == s.hops => {
                let _ = s.report.send(h);
            }
            RingMsg::Token(h) => {
                if let Some(n) = &s.next {
                    cast(n, RingMsg::Token(h + 1));
                }
            }
        }
        Ok(())
    }
}

struct FjSink;

impl Actor for FjSink {
    type Msg = u64;
    type State = (u64, u64, Sender<u64>);
    type Arguments = (u64, Sender<u64>);

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        (want, r): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((0, want, r))
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        _: u64,
        (seen, want, report): &mut Self::State,
    ) -> Res {
        *seen += 1;
        if seen == want {
            let _ = report.send(*seen);
        }
        Ok(())
    }
}

struct OneShot;

impl Actor for OneShot {
    type Msg = u64;
    type State = Sender<u64>;
    type Arguments = Sender<u64>;

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        r: Sender<u64>,
    ) -> Result<Sender<u64>, ActorProcessingErr> {
        Ok(r)
    }

    async fn handle(&self, myself: ActorRef<u64>, v: u64, report: &mut Sender<u64>) -> Res {
        let _ = report.send(v.min(1));
        myself.stop(None);
        Ok(())
    }
}

enum MallMsg {
    Meet(Colour, ActorRef<ChamMsg>),
    Count(u64),
}

enum ChamMsg {
    Meet(Colour, ActorRef<ChamMsg>),
    Change(Colour),
    Exit,
}

struct Mall;

struct MallState {
    chameneos: u64,
    left: u64,
    waiting: Option<ActorRef<ChamMsg>>,
    reported: u64,
    sum: u64,
    report: Sender<u64>,
}

impl Actor for Mall {
    type Msg = MallMsg;
    type State = MallState;
    type Arguments = (u64, u64, Sender<u64>);

    async fn pre_start(
        &self,
        _: ActorRef<MallMsg>,
        (c, n, r): Self::Arguments,
    ) -> Result<MallState, ActorProcessingErr> {
        Ok(MallState {
            chameneos: c,
            left: n,
            waiting: None,
            reported: 0,
            sum: 0,
            report: r,
        })
    }

    async fn handle(&self, _: ActorRef<MallMsg>, m: MallMsg, s: &mut MallState) -> Res {
        match m {
            MallMsg::Meet(colour, from) if s.left > 0 => match s.waiting.take() {
                None => s.waiting = Some(from),
                Some(first) => {
                    s.left -= 1;
                    cast(&first, ChamMsg::Meet(colour, from));
                }
            },
            MallMsg::Meet(_, from) => cast(&from, ChamMsg::Exit),
            MallMsg::Count(n) => {
                s.sum += n;
                s.reported += 1;
                if s.reported == s.chameneos {
                    let _ = s.report.send(s.sum);
                }
            }
        }
        Ok(())
    }
}

struct Chameneo;

struct ChamState {
    colour: Colour,
    met: u64,
    mall: ActorRef<MallMsg>,
}

impl Actor for Chameneo {
    type Msg = ChamMsg;
    type State = ChamState;
    type Arguments = (Colour, ActorRef<MallMsg>);

    async fn pre_start(
        &self,
        _: ActorRef<ChamMsg>,
        (colour, mall): Self::Arguments,
    ) -> Result<ChamState, ActorProcessingErr> {
        Ok(ChamState {
            colour,
            met: 0,
            mall,
        })
    }

    async fn post_start(&self, myself: ActorRef<ChamMsg>, s: &mut ChamState) -> Res {
        cast(&s.mall, MallMsg::Meet(s.colour, myself));
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<ChamMsg>, m: ChamMsg, s: &mut ChamState) -> Res {
        match m {
            ChamMsg::Meet(other, peer) => {
                s.colour = s.colour.complement(other);
                s.met += 1;
                cast(&peer, ChamMsg::Change(s.colour));
                cast(&s.mall, MallMsg::Meet(s.colour, myself));
            }
            ChamMsg::Change(c) => {
                s.colour = c;
                s.met += 1;
                cast(&s.mall, MallMsg::Meet(s.colour, myself));
            }
            ChamMsg::Exit => {
                cast(&s.mall, MallMsg::Count(s.met));
                myself.stop(None);
            }
        }
        Ok(())
    }
}

enum BigMsg {
    Peers(Arc<[ActorRef<BigMsg>]>),
    Start,
    Ping(u32),
    Pong,
}

struct BigWorker;

struct BigState {
    me: u32,
    rng: Rng,
    peers: Arc<[ActorRef<BigMsg>]>,
    sent: u64,
    pongs: u64,
    pings: u64,
    report: Sender<u64>,
}

impl BigState {
    fn ping_someone(&mut self) {
        self.sent += 1;
        let to = self.rng.below(self.peers.len() as u64) as usize;
        cast(&self.peers[to], BigMsg::Ping(self.me));
    }
}

impl Actor for BigWorker {
    type Msg = BigMsg;
    type State = BigState;
    type Arguments = (u32, u64, Sender<u64>);

    async fn pre_start(
        &self,
        _: ActorRef<BigMsg>,
        (me, pings, report): Self::Arguments,
    ) -> Result<BigState, ActorProcessingErr> {
        Ok(BigState {
            me,
            rng: Rng::new(u64::from(me)),
            peers: Arc::new([]),
            sent: 0,
            pongs: 0,
            pings,
            report,
        })
    }

    async fn handle(&self, _: ActorRef<BigMsg>, m: BigMsg, s: &mut BigState) -> Res {
        match m {
            BigMsg::Peers(p) => s.peers = p,
            BigMsg::Start => s.ping_someone(),
            BigMsg::Ping(from) => cast(&s.peers[from as usize], BigMsg::Pong),
            BigMsg::Pong => {
                s.pongs += 1;
                if s.sent < s.pings {
                    s.ping_someone();
                } else {
                    let _ = s.report.send(s.pongs);
                }
            }
        }
        Ok(())
    }
}

enum Parent {
    Driver(Sender<u64>),
    Node(ActorRef<u64>),
}

struct SkyNode;

struct SkyState {
    size: u64,
    parent: Parent,
    sum: u64,
    replies: u32,
}

impl SkyState {
    fn tell_parent(&self, v: u64) {
        match &self.parent {
            Parent::Driver(s) => {
                let _ = s.send(v);
            }
            Parent::Node(a) => cast(a, v),
        }
    }
}

impl Actor for SkyNode {
    type Msg = u64;
    type State = SkyState;
    type Arguments = (u64, u64, Parent);

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        (num, size, parent): Self::Arguments,
    ) -> Result<SkyState, ActorProcessingErr> {
        Ok(SkyState {
            size,
            parent,
            // A leaf's "sum" is its own number, reported in post_start.
            sum: num,
            replies: 0,
        })
    }

    async fn post_start(&self, myself: ActorRef<u64>, s: &mut SkyState) -> Res {
        if s.size == 1 {
            s.tell_parent(s.sum);
            myself.stop(None);
            return Ok(());
        }
        let num = std::mem::take(&mut s.sum);
        for i in 0..10 {
            let (n, size) = workloads::skynet_child(num, s.size, i);
            spawn(SkyNode, (n, size, Parent::Node(myself.clone()))).await;
        }
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<u64>, v: u64, s: &mut SkyState) -> Res {
        s.sum += v;
        s.replies += 1;
        if s.replies == 10 {
            s.tell_parent(s.sum);
            myself.stop(None);
        }
        Ok(())
    }
}

struct Consumer;

struct ConsumerState {
    work: BusyWork,
    count: u64,
    sum: u64,
    total: u64,
    report: Sender<u64>,
}

impl Actor for Consumer {
    type Msg = Payload;
    type State = ConsumerState;
    type Arguments = (BusyWork, u64, Sender<u64>);

    async fn pre_start(
        &self,
        _: ActorRef<Payload>,
        (work, total, report): Self::Arguments,
    ) -> Result<ConsumerState, ActorProcessingErr> {
        Ok(ConsumerState {
            work,
            count: 0,
            sum: 0,
            total,
            report,
        })
    }

    async fn handle(&self, _: ActorRef<Payload>, m: Payload, s: &mut ConsumerState) -> Res {
        s.sum = s.sum.wrapping_add(s.work.run(&m));
        s.count += 1;
        if s.count == s.total {
            std::hint::black_box(s.sum);
            let _ = s.report.send(s.count);
        }
        Ok(())
    }
}

struct FaninProducer;

impl Actor for FaninProducer {
    type Msg = ();
    /// (id, next message, messages, consumer)
    type State = (u64, u64, u64, ActorRef<Payload>);
    type Arguments = (u64, u64, ActorRef<Payload>);

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        (id, msgs, to): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((id, 0, msgs, to))
    }

    /// One chunk per message, then a message to itself for the next.
    async fn handle(
        &self,
        myself: ActorRef<()>,
        _: (),
        (id, next, msgs, to): &mut Self::State,
    ) -> Res {
        let end = (*next + workloads::FANIN_CHUNK).min(*msgs);
        for i in *next..end {
            cast(to, workloads::payload(*id, i));
        }
        *next = end;
        if end < *msgs {
            cast(&myself, ());
        }
        Ok(())
    }
}
