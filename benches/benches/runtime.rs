//! Criterion benches for rein's hot paths.
//!
//! * `send/outside`: the bench thread sends a batch of messages to one actor, then waits (with
//!   `ask`) for the actor to have handled them all.
//! * `send/inside`: the same batch, sent by a producer actor to a sink actor, 1000 per turn.
//! * `pingpong/round_trip`: two actors bounce a ball; one iteration is a batch of round trips.
//! * `spawn/outside/K`, `spawn/inside/K`: spawn K actors (from the bench thread, or from one
//!   actor), send each one message, and wait for quiescence. Each iteration builds a fresh
//!   runtime; building it is not timed, `wait` (quiescence plus joining the workers) is.
//!
//! Every runtime uses the default worker count (one per core); set `REIN_BENCH_THREADS` to
//! change it.
//!
//! ```text
//! cargo bench -p rein-benches --bench runtime
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rein::Runtime;
use rein_benches::{
    spawn_pingpong, PingMsg, Producer, ProducerMsg, Sink, SinkMsg, Spawner, ASK_TIMEOUT,
};
use std::time::Duration;

const BATCH: u64 = 10_000;
const ROUND_TRIPS: u64 = 1_000;

fn runtime() -> Runtime {
    let mut builder = Runtime::builder();
    if let Some(threads) = std::env::var("REIN_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        builder = builder.threads(threads);
    }
    builder.build().expect("runtime")
}

fn send(c: &mut Criterion) {
    let mut group = c.benchmark_group("send");
    group.throughput(Throughput::Elements(BATCH));

    let rt = runtime();
    let sink = rt.spawn(Sink::default());
    let mut expected = 0;
    group.bench_function("outside", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                sink.send(SinkMsg::Item(i)).expect("sink alive");
            }
            expected += BATCH;
            let count = sink.ask(SinkMsg::Flush, ASK_TIMEOUT).expect("flush");
            assert_eq!(count, expected);
        })
    });

    let sink = rt.spawn(Sink::default());
    let producer = rt.spawn(Producer::new(sink));
    let mut expected = 0;
    group.bench_function("inside", |b| {
        b.iter(|| {
            let count = producer
                .ask(
                    |reply| ProducerMsg::Run {
                        items: BATCH,
                        reply,
                    },
                    ASK_TIMEOUT,
                )
                .expect("run");
            expected += BATCH;
            assert_eq!(count, expected);
        })
    });
    group.finish();
}

fn pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong");
    group.throughput(Throughput::Elements(ROUND_TRIPS));
    let rt = runtime();
    let pinger = spawn_pingpong(&rt);
    group.bench_function("round_trip", |b| {
        b.iter(|| {
            pinger
                .ask(
                    |reply| PingMsg::Run {
                        round_trips: ROUND_TRIPS,
                        reply,
                    },
                    ASK_TIMEOUT,
                )
                .expect("run");
        })
    });
    group.finish();
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    for actors in [1_000u64, 10_000] {
        group.throughput(Throughput::Elements(actors));
        group.bench_function(format!("outside/{actors}"), |b| {
            b.iter_batched(
                runtime,
                |rt| {
                    for i in 0..actors {
                        rt.spawn(rein_benches::Noop)
                            .send(i)
                            .expect("fresh actor accepts messages");
                    }
                    let report = rt.wait();
                    assert_eq!(report.metrics.messages(), actors);
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("inside/{actors}"), |b| {
            b.iter_batched(
                runtime,
                |rt| {
                    rt.spawn(Spawner)
                        .send(actors)
                        .expect("fresh actor accepts messages");
                    let report = rt.wait();
                    assert_eq!(report.metrics.messages(), actors + 1);
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    targets = send, pingpong, spawn
}
criterion_main!(benches);
