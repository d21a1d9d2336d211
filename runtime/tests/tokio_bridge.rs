//! An async application feeding rein: a two-thread tokio runtime drives 1,000,000 messages into
//! an overloaded actor through `send_when_ready`. The producers are slowed down by muting
//! (they wait, woken by the actor's recovery) without ever blocking a tokio worker: a latency
//! probe on the same tokio runtime keeps being scheduled promptly, and the actor's backlog stays
//! within its bound.

mod common;

use rein::{Actor, Context, Runtime};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MESSAGES: u64 = 1_000_000;
const PRODUCERS: u64 = 4;
const LOW: usize = 256;
const HIGH: usize = 1024;

/// Slower than the producers, so that it stays overloaded; records its peak backlog.
struct Consumer {
    handled: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Actor for Consumer {
    type Msg = u64;
    fn handle(&mut self, ctx: &mut Context<Self>, n: u64) {
        let peak = self.peak.load(SeqCst).max(ctx.backlog());
        self.peak.store(peak, SeqCst);
        // A little work per message: a few hundred nanoseconds.
        let mut x = n;
        for _ in 0..64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        self.handled.fetch_add(1, SeqCst);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[test]
fn a_tokio_application_is_slowed_by_muting_without_blocking_its_workers() {
    let rt = Runtime::builder()
        .threads(1)
        .watermarks(LOW, HIGH)
        .build()
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let consumer = rt.spawn(Consumer {
        handled: handled.clone(),
        peak: peak.clone(),
    });
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let started = Instant::now();
    let (mut samples, waited) = tokio_rt.block_on(async {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let consumer = consumer.clone();
                tokio::spawn(async move {
                    let mut waited = 0u64;
                    for i in 0..MESSAGES / PRODUCERS {
                        if consumer.is_pressured() {
                            waited += 1;
                        }
                        consumer
                            .send_when_ready(p * MESSAGES + i)
                            .await
                            .expect("the consumer is alive");
                    }
                    waited
                })
            })
            .collect();
        // The probe: a plain thread pings a task on the same tokio runtime every 200 µs; the
        // task records how long each ping waited to be received. A blocked worker shows here.
        let done = Arc::new(AtomicBool::new(false));
        let (ping, mut pings) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let pinger = std::thread::spawn({
            let done = done.clone();
            move || {
                while !done.load(SeqCst) {
                    std::thread::sleep(Duration::from_micros(200));
                    if ping.send(Instant::now()).is_err() {
                        break;
                    }
                }
            }
        });
        let probe = tokio::spawn(async move {
            let mut samples = Vec::new();
            while let Some(sent) = pings.recv().await {
                samples.push(sent.elapsed());
            }
            samples
        });
        let mut waited = 0;
        for producer in producers {
            let left = common::LIMIT.saturating_sub(started.elapsed());
            let result = tokio::time::timeout(left, producer).await;
            waited += result.expect("the producers finish in time").unwrap();
        }
        done.store(true, SeqCst);
        pinger.join().unwrap();
        (probe.await.unwrap(), waited)
    });
    let report = common::wait(rt);
    let elapsed = started.elapsed();
    assert_eq!(handled.load(SeqCst) as u64, MESSAGES);
    assert_eq!(report.undelivered, 0);
    let peak = peak.load(SeqCst);
    samples.sort();
    let (p50, p99, max) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        *samples.last().expect("samples"),
    );
    println!(
        "{MESSAGES} messages in {elapsed:.2?}; peak backlog {peak} (high {HIGH}); \
         {waited} sends met a pressured consumer; probe: {} samples, p50 {p50:?}, p99 {p99:?}, \
         max {max:?}",
        samples.len()
    );
    assert!(
        waited > 0,
        "the consumer was never overloaded: no muting was tested"
    );
    assert!(
        peak <= HIGH + PRODUCERS as usize,
        "backlog {peak} over the bound {}",
        HIGH + PRODUCERS as usize
    );
    // A blocked tokio worker holds the probe for as long as the producers wait: with
    // `send_blocking` in the tasks instead, the probe's median wait was 886 ms and its p99
    // 1.54 s (the probe barely ran until the producers were done). With `send_when_ready` the
    // median is tens of microseconds. The target is a p99 under 1 ms: release builds meet
    // it (112 to 330 us, docs/benchmarks.md), but on a shared 2-core machine, in the debug build
    // that `cargo test` runs, the OS alone has delayed the probe by 150 ms now and then. So the
    // median carries the check, and the p99 gets a bound that only a blocked worker breaks.
    assert!(
        p50 < Duration::from_millis(5),
        "probe median {p50:?}: a tokio worker was held up"
    );
    assert!(
        p99 < Duration::from_millis(400),
        "probe p99 {p99:?}: a tokio worker was held up"
    );
}
