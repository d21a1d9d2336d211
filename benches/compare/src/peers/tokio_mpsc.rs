//! Plain tokio: every "actor" is a task that owns an mpsc receiver.
//!
//! This is the baseline most Rust services would write without an actor
//! crate: `tokio::spawn` plus `mpsc::unbounded_channel` (framework `tokio`) or
//! `mpsc::channel(capacity)` with `send().await` (framework `tokio-bounded`).
//! One module serves both through the small [`Tx`]/[`Rx`] wrappers so the two
//! differ only in the channel kind.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::workloads::{self, BusyWork, Colour, Outcome, Params, Payload, Rng, Workload};

/// Sending half: unbounded, or bounded with capacity-based backpressure.
enum Tx<T> {
    Unbounded(mpsc::UnboundedSender<T>),
    Bounded(mpsc::Sender<T>),
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        match self {
            Tx::Unbounded(s) => Tx::Unbounded(s.clone()),
            Tx::Bounded(s) => Tx::Bounded(s.clone()),
        }
    }
}

impl<T> Tx<T> {
    /// Sends from a task, waiting for capacity when bounded.
    async fn send(&self, v: T) {
        let ok = match self {
            Tx::Unbounded(s) => s.send(v).is_ok(),
            Tx::Bounded(s) => s.send(v).await.is_ok(),
        };
        assert!(ok, "tokio: receiver task is gone");
    }

    /// Sends from the (non-runtime) driver thread.
    fn blocking_send(&self, v: T) {
        let ok = match self {
            Tx::Unbounded(s) => s.send(v).is_ok(),
            Tx::Bounded(s) => s.blocking_send(v).is_ok(),
        };
        assert!(ok, "tokio: receiver task is gone");
    }
}

/// Receiving half matching [`Tx`].
enum Rx<T> {
    Unbounded(mpsc::UnboundedReceiver<T>),
    Bounded(mpsc::Receiver<T>),
}

impl<T> Rx<T> {
    async fn recv(&mut self) -> Option<T> {
        match self {
            Rx::Unbounded(r) => r.recv().await,
            Rx::Bounded(r) => r.recv().await,
        }
    }
}

/// A channel pair: bounded when `cap` is set.
fn channel<T>(cap: Option<usize>) -> (Tx<T>, Rx<T>) {
    match cap {
        None => {
            let (t, r) = mpsc::unbounded_channel();
            (Tx::Unbounded(t), Rx::Unbounded(r))
        }
        Some(c) => {
            let (t, r) = mpsc::channel(c);
            (Tx::Bounded(t), Rx::Bounded(r))
        }
    }
}

/// Runs `w` on a tokio multi-thread runtime with `threads` workers;
/// `bounded` selects `tokio-bounded`.
pub fn run(w: Workload, p: &Params, threads: usize, bounded: bool) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let cap = bounded.then_some(p.capacity);
    let (report, results) = std_mpsc::channel::<u64>();
    let recv = |n: u64| -> Result<u64, String> {
        (0..n).try_fold(0u64, |acc, _| {
            results
                .recv()
                .map(|v| acc + v)
                .map_err(|_| "tokio: every reporter hung up".to_string())
        })
    };
    let start = Instant::now();
    let value = match w {
        Workload::Pingpong => {
            let n = p.pingpong_n;
            let (ping_tx, mut ping_rx) = channel::<()>(cap);
            let (pong_tx, mut pong_rx) = channel::<()>(cap);
            rt.spawn(async move {
                while pong_rx.recv().await.is_some() {
                    ping_tx.send(()).await;
                }
            });
            rt.spawn(async move {
                let mut done = 0;
                for _ in 0..n {
                    pong_tx.send(()).await;
                    if ping_rx.recv().await.is_some() {
                        done += 1;
                    }
                }
                let _ = report.send(done);
            });
            recv(1)?
        }
        Workload::Counting => {
            enum Msg {
                Inc,
                Get,
            }
            let n = p.counting_n;
            let (tx, mut rx) = channel::<Msg>(cap);
            rt.spawn(async move {
                let mut count = 0;
                while let Some(m) = rx.recv().await {
                    match m {
                        Msg::Inc => count += 1,
                        Msg::Get => {
                            let _ = report.send(count);
                            break;
                        }
                    }
                }
            });
            rt.spawn(async move {
                for _ in 0..n {
                    tx.send(Msg::Inc).await;
                }
                tx.send(Msg::Get).await;
            });
            recv(1)?
        }
        Workload::Threadring => {
            let (size, hops) = (p.ring_size as usize, p.ring_hops);
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..size).map(|_| channel::<u64>(cap)).unzip();
            for (i, mut rx) in rxs.into_iter().enumerate() {
                let next = txs[(i + 1) % size].clone();
                let report = report.clone();
                rt.spawn(async move {
                    while let Some(h) = rx.recv().await {
                        if h == hops {
                            let _ = report.send(h);
                        } else {
                            next.send(h + 1).await;
                        }
                    }
                });
            }
            txs[0].blocking_send(0);
            recv(1)?
        }
        Workload::ForkjoinThroughput => {
            let (actors, msgs) = (p.fj_actors, p.fj_msgs);
            let txs: Vec<_> = (0..actors)
                .map(|_| {
                    let (tx, mut rx) = channel::<u64>(cap);
                    let report = report.clone();
                    rt.spawn(async move {
                        let mut seen = 0;
                        while rx.recv().await.is_some() {
                            seen += 1;
                            if seen == msgs {
                                let _ = report.send(seen);
                            }
                        }
                    });
                    tx
                })
                .collect();
            // The driver is a task, as rein's is an actor.
            rt.spawn(async move {
                for i in 0..msgs {
                    for tx in &txs {
                        tx.send(i).await;
                    }
                }
            });
            recv(actors)?
        }
        Workload::ForkjoinCreation => {
            let n = p.fj_create_n;
            for i in 0..n {
                let (tx, mut rx) = channel::<u64>(cap);
                let report = report.clone();
                rt.spawn(async move {
                    if let Some(v) = rx.recv().await {
                        let _ = report.send(v.min(1));
                    }
                });
                tx.blocking_send(i + 1);
            }
            recv(n)?
        }
        Workload::Chameneos => {
            rt.spawn(chameneos(p.chameneos_c, p.chameneos_meetings, cap, report));
            recv(1)?
        }
        Workload::Big => {
            let (workers, pings) = (p.big_workers, p.big_pings);
            // A worker's channel can hold a ping from every worker plus its
            // own pong; with less room two workers can each wait for space in
            // the other's full channel forever.
            if bounded && (p.capacity as u64) < workers + 1 {
                return Err(format!(
                    "--capacity {} < --big-workers + 1 can deadlock bounded channels in big",
                    p.capacity
                ));
            }
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers).map(|_| channel::<BigMsg>(cap)).unzip();
            let peers = Arc::new(txs);
            for (i, rx) in rxs.into_iter().enumerate() {
                rt.spawn(big_worker(
                    i as u32,
                    pings,
                    rx,
                    peers.clone(),
                    report.clone(),
                ));
            }
            recv(workers)?
        }
        Workload::Skynet => {
            let leaves = p.skynet_leaves();
            rt.spawn(async move {
                let (tx, mut rx) = channel::<u64>(cap);
                tokio::spawn(skynet(0, leaves, tx, cap));
                if let Some(v) = rx.recv().await {
                    let _ = report.send(v);
                }
            });
            recv(1)?
        }
        Workload::Fanin => {
            let total = p.fanin_producers * p.fanin_msgs;
            let work = BusyWork::new(p.fanin_work_ns, p.spin_per_us.unwrap_or(1.0));
            let (tx, mut rx) = channel::<Payload>(cap);
            rt.spawn(async move {
                let mut count = 0;
                let mut sum = 0u64;
                while let Some(m) = rx.recv().await {
                    sum = sum.wrapping_add(work.run(&m));
                    count += 1;
                    if count == total {
                        std::hint::black_box(sum);
                        let _ = report.send(count);
                    }
                }
            });
            for producer in 0..p.fanin_producers {
                let (tx, msgs) = (tx.clone(), p.fanin_msgs);
                rt.spawn(async move {
                    for i in 0..msgs {
                        tx.send(workloads::payload(producer, i)).await;
                        if (i + 1) % workloads::FANIN_CHUNK == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                });
            }
            recv(1)?
        }
    };
    let elapsed = start.elapsed();
    rt.shutdown_background();
    Ok(Outcome { value, elapsed })
}

enum MallMsg {
    Meet(Colour, Tx<ChamMsg>),
    Count(u64),
}

enum ChamMsg {
    Meet(Colour, Tx<ChamMsg>),
    Change(Colour),
    Exit,
}

/// The mall task spawns the chameneos, pairs them up, then sums their counts.
async fn chameneos(c: u64, meetings: u64, cap: Option<usize>, report: std_mpsc::Sender<u64>) {
    let (mall, mut inbox) = channel::<MallMsg>(cap);
    for i in 0..c {
        let (me, mut rx) = channel::<ChamMsg>(cap);
        let mall = mall.clone();
        tokio::spawn(async move {
            let mut colour = Colour::nth(i);
            let mut met = 0;
            mall.send(MallMsg::Meet(colour, me.clone())).await;
            while let Some(m) = rx.recv().await {
                match m {
                    ChamMsg::Meet(other, peer) => {
                        colour = colour.complement(other);
                        met += 1;
                        peer.send(ChamMsg::Change(colour)).await;
                        mall.send(MallMsg::Meet(colour, me.clone())).await;
                    }
                    ChamMsg::Change(c) => {
                        colour = c;
                        met += 1;
                        mall.send(MallMsg::Meet(colour, me.clone())).await;
                    }
                    ChamMsg::Exit => {
                        mall.send(MallMsg::Count(met)).await;
                        break;
                    }
                }
            }
        });
    }
    drop(mall);
    let (mut left, mut waiting, mut reported, mut sum) = (meetings, None, 0, 0);
    while let Some(m) = inbox.recv().await {
        match m {
            MallMsg::Meet(colour, from) if left > 0 => match waiting.take() {
                None => waiting = Some(from),
                Some(first) => {
                    left -= 1;
                    first.send(ChamMsg::Meet(colour, from)).await;
                }
            },
            MallMsg::Meet(_, from) => from.send(ChamMsg::Exit).await,
            MallMsg::Count(n) => {
                sum += n;
                reported += 1;
                if reported == c {
                    let _ = report.send(sum);
                    return;
                }
            }
        }
    }
}

enum BigMsg {
    Ping(u32),
    Pong,
}

/// A `big` worker: one ping outstanding at a time, answers every ping.
async fn big_worker(
    me: u32,
    pings: u64,
    mut rx: Rx<BigMsg>,
    peers: Arc<Vec<Tx<BigMsg>>>,
    report: std_mpsc::Sender<u64>,
) {
    let mut rng = Rng::new(u64::from(me));
    let n = peers.len() as u64;
    let (mut sent, mut pongs) = (1, 0);
    peers[rng.below(n) as usize].send(BigMsg::Ping(me)).await;
    while let Some(m) = rx.recv().await {
        match m {
            BigMsg::Ping(from) => peers[from as usize].send(BigMsg::Pong).await,
            BigMsg::Pong => {
                pongs += 1;
                if sent < pings {
                    sent += 1;
                    peers[rng.below(n) as usize].send(BigMsg::Ping(me)).await;
                } else {
                    let _ = report.send(pongs);
                }
            }
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One skynet node: a leaf reports its number, an inner node spawns ten
/// children and reports the sum of their answers.
fn skynet(num: u64, size: u64, parent: Tx<u64>, cap: Option<usize>) -> BoxFuture {
    Box::pin(async move {
        if size == 1 {
            parent.send(num).await;
            return;
        }
        let (tx, mut rx) = channel::<u64>(cap);
        for i in 0..10 {
            let (n, s) = workloads::skynet_child(num, size, i);
            tokio::spawn(skynet(n, s, tx.clone(), cap));
        }
        drop(tx);
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv().await.unwrap_or(0);
        }
        parent.send(sum).await;
    })
}
