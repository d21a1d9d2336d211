//! `rein-compare bridge`: an async request/response round trip from a tokio task, to a rein
//! actor with `ActorRef::ask_async` and to a tokio task with a tokio oneshot, measured in one
//! process, alternating, so that the two share the machine's state.
//!
//! The tokio peer is the idiomatic "actor as a task": requests go over an unbounded mpsc with a
//! `tokio::sync::oneshot::Sender` for the reply, and the client awaits the receiver. The rein
//! side: the client awaits `actor.ask_async(|reply| (n, reply))` on a rein actor that answers
//! through the `ReplyTo`. The client is a tokio task on the same tokio runtime either way.

use rein::{Actor, Context, ReplyTo};
use std::time::{Duration, Instant};

/// Arguments of `rein-compare bridge`.
#[derive(clap::Args)]
pub struct BridgeArgs {
    /// Round trips per measurement.
    #[arg(long, default_value_t = 200_000)]
    round_trips: u64,
    /// Measurements of each, alternating (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    tokio_threads: usize,
    /// rein worker threads.
    #[arg(long, default_value_t = 1)]
    rein_threads: usize,
    /// Busy work per request, in microseconds, on both servers (0: answer at once). With work
    /// that outlasts the asker's brief wait for the answer, the wait cannot pay; this shows what
    /// it costs then.
    #[arg(long, default_value_t = 0)]
    work_us: u64,
    /// Client tasks asking at once, each making its share of the round trips (1: one request in
    /// flight at a time, the latency case; more: throughput with requests overlapping).
    #[arg(long, default_value_t = 1)]
    clients: u64,
}

/// Spins for `us` microseconds: a request that takes work to answer.
fn work(us: u64) {
    if us == 0 {
        return;
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

struct Doubler {
    work_us: u64,
}

impl Actor for Doubler {
    type Msg = (u64, ReplyTo<u64>);
    fn handle(&mut self, _: &mut Context<Self>, (n, reply): Self::Msg) {
        work(self.work_us);
        let _ = reply.send(n * 2);
    }
}

type Request = (u64, tokio::sync::oneshot::Sender<u64>);

/// Runs `n` round trips made by `clients` tasks at once (inline when there is one), and returns
/// how long they all took.
async fn by_clients<Fut>(clients: u64, n: u64, mut client: impl FnMut(u64) -> Fut) -> Duration
where
    Fut: std::future::Future<Output = Duration> + Send + 'static,
{
    if clients == 1 {
        return client(n).await;
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(n / clients)))
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    started.elapsed()
}

async fn tokio_round_trips(
    server: tokio::sync::mpsc::UnboundedSender<Request>,
    n: u64,
) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        let (tx, rx) = tokio::sync::oneshot::channel();
        server.send((i, tx)).expect("server alive");
        assert_eq!(rx.await.expect("answer"), i * 2);
    }
    started.elapsed()
}

async fn rein_round_trips(actor: rein::ActorRef<Doubler>, n: u64) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        assert_eq!(actor.ask_async(|r| (i, r)).await.expect("answer"), i * 2);
    }
    started.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the comparison and prints one line per side and the ratio.
pub fn run(a: BridgeArgs) -> std::process::ExitCode {
    if a.round_trips == 0
        || a.repeats == 0
        || a.tokio_threads == 0
        || a.rein_threads == 0
        || a.clients == 0
        || a.clients > a.round_trips
    {
        eprintln!("error: every count must be at least 1, and clients at most round trips");
        return std::process::ExitCode::from(2);
    }
    let rt = rein::Runtime::builder()
        .threads(a.rein_threads)
        .build()
        .expect("rein runtime");
    let actor = rt.spawn(Doubler { work_us: a.work_us });
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.tokio_threads)
        .build()
        .expect("tokio runtime");
    let (tokio_rates, rein_rates) = tokio_rt.block_on(async {
        let (server, mut requests) = tokio::sync::mpsc::unbounded_channel::<Request>();
        tokio::spawn(async move {
            while let Some((n, reply)) = requests.recv().await {
                work(a.work_us);
                let _ = reply.send(n * 2);
            }
        });
        let actor = actor.clone();
        // A whole share for every client.
        let (n, clients) = (a.round_trips / a.clients * a.clients, a.clients);
        let tokio_side = move |n| tokio_round_trips(server.clone(), n);
        let rein_side = move |n| rein_round_trips(actor.clone(), n);
        // The client is a spawned task, as in an application (not the block_on thread).
        tokio::spawn(async move {
            // Warm both paths up.
            by_clients(clients, n / 10 + clients, &tokio_side).await;
            by_clients(clients, n / 10 + clients, &rein_side).await;
            let (mut t, mut r) = (Vec::new(), Vec::new());
            for _ in 0..a.repeats {
                let took = by_clients(clients, n, &tokio_side).await;
                t.push(n as f64 / took.as_secs_f64());
                let took = by_clients(clients, n, &rein_side).await;
                r.push(n as f64 / took.as_secs_f64());
            }
            (t, r)
        })
        .await
        .expect("client task")
    });
    drop(actor);
    rt.wait();
    let (t, r) = (median(tokio_rates), median(rein_rates));
    println!(
        "tokio oneshot to a tokio task:  {:.0} round trips/s ({:.2} us each)",
        t,
        1e6 / t
    );
    println!(
        "rein ask_async to a rein actor: {:.0} round trips/s ({:.2} us each)",
        r,
        1e6 / r
    );
    println!("ratio rein/tokio: {:.2}", r / t);
    std::process::ExitCode::SUCCESS
}
