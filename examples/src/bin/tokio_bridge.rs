//! `tokio_bridge`: a small tokio application that feeds a rein pipeline from async tasks and
//! awaits results.
//!
//! Producer tasks on a tokio runtime send work items into a two-stage rein pipeline
//! (`Parse → Tally`, the tally slower than everything else) with `ActorRef::send_when_ready`:
//! while the parser is overloaded, or muted because the tally is, the producers' futures wait,
//! woken by the pipeline's recovery. So the async producers slow down to the pipeline's pace as
//! a muted actor would, without blocking a tokio worker, and every mailbox stays within its
//! bound. At the end the application asks the tally for its totals with `ask_async` (under
//! `tokio::time::timeout`). `--plain-send` feeds with `send` instead, which nothing holds back:
//! watch the parser's backlog and the memory grow.
//!
//! ```text
//! cargo run --release -p rein-examples --bin tokio_bridge
//! cargo run --release -p rein-examples --bin tokio_bridge -- --plain-send
//! ```

use clap::Parser;
use rein::{Actor, ActorRef, Context, ReplyTo};
use rein_examples::{check_eq, fail, human, peak_rss_kib, RuntimeArgs};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    about = "A tokio application feeds a rein pipeline from async tasks (send_when_ready) and \
             awaits its results (ask_async); muting slows the tasks down, memory stays bounded"
)]
struct Args {
    /// Producer tasks on the tokio runtime.
    #[arg(long, default_value_t = 8)]
    tasks: u64,
    /// Work items each task sends.
    #[arg(long, default_value_t = 250_000)]
    items: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    tokio_threads: usize,
    /// Feed with a plain `send`, which nothing holds back (to compare).
    #[arg(long)]
    plain_send: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// A work item: 64 bytes of "text" to parse.
struct Item {
    task: u64,
    text: [u8; 56],
}

/// Parses each item (cheap) and forwards a number to the tally.
struct Parse {
    tally: ActorRef<Tally>,
    peak: Arc<AtomicUsize>,
}

impl Actor for Parse {
    type Msg = Item;
    fn handle(&mut self, ctx: &mut Context<Self>, item: Item) {
        self.peak.fetch_max(ctx.backlog(), Relaxed);
        let value = item.text.iter().map(|&b| u64::from(b)).sum::<u64>();
        // Sent from a behaviour: while the tally is overloaded, this stage is muted.
        let _ = self.tally.send(TallyMsg::Add(item.task, value));
    }
}

enum TallyMsg {
    Add(u64, u64),
    Totals(ReplyTo<(u64, u64)>),
}

/// The slow stage: about a microsecond per item.
struct Tally {
    items: u64,
    sum: u64,
    peak: Arc<AtomicUsize>,
}

impl Actor for Tally {
    type Msg = TallyMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: TallyMsg) {
        self.peak.fetch_max(ctx.backlog(), Relaxed);
        match msg {
            TallyMsg::Add(_task, value) => {
                let started = Instant::now();
                while started.elapsed() < Duration::from_micros(1) {
                    std::hint::spin_loop();
                }
                self.items += 1;
                self.sum += value;
            }
            TallyMsg::Totals(reply) => {
                let _ = reply.send((self.items, self.sum));
            }
        }
    }
}

fn main() {
    let args = Args::parse();
    let rt = args.runtime.build();
    let (parse_peak, tally_peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tally = rt.spawn(Tally {
        items: 0,
        sum: 0,
        peak: tally_peak.clone(),
    });
    let parse = rt.spawn(Parse {
        tally: tally.clone(),
        peak: parse_peak.clone(),
    });
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.tokio_threads)
        .enable_time()
        .build()
        .unwrap_or_else(|e| fail(format_args!("cannot start tokio: {e}")));
    let total = args.tasks * args.items;
    println!(
        "tokio_bridge: {} tasks x {} items -> Parse -> Tally (~1 us/item), fed with {}",
        args.tasks,
        args.items,
        if args.plain_send {
            "send (never waits)"
        } else {
            "send_when_ready (waits while the pipeline is overloaded)"
        }
    );
    let started = Instant::now();
    let totals = tokio_rt.block_on(async {
        let producers: Vec<_> = (0..args.tasks)
            .map(|task| {
                let parse = parse.clone();
                let (items, plain) = (args.items, args.plain_send);
                tokio::spawn(async move {
                    for i in 0..items {
                        let item = Item {
                            task,
                            text: [(i % 251) as u8; 56],
                        };
                        let sent = if plain {
                            parse.send(item)
                        } else {
                            parse.send_when_ready(item).await
                        };
                        if let Err(e) = sent {
                            fail(format_args!("task {task}: {e}"));
                        }
                    }
                })
            })
            .collect();
        // Meanwhile the application stays responsive: report progress once a second.
        let reporter = tokio::spawn({
            let (parse, tally) = (parse.clone(), tally.clone());
            async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    println!(
                        "  {:>5.1} s: backlog parse {:>8}, tally {:>6}; RSS {:.1} MiB",
                        started.elapsed().as_secs_f64(),
                        parse.backlog(),
                        tally.backlog(),
                        rein_examples::rss_kib().unwrap_or(0) as f64 / 1024.0
                    );
                }
            }
        });
        for producer in producers {
            producer.await.expect("producer task");
        }
        // Ask the tally for its totals once everything sent has gone through: the answer
        // comes back as a future, bounded by tokio's timeout.
        let mut totals = (0, 0);
        while totals.0 < total {
            let ask = tally.ask_async(TallyMsg::Totals);
            totals = match tokio::time::timeout(Duration::from_secs(30), ask).await {
                Ok(Ok(totals)) => totals,
                Ok(Err(e)) => fail(format_args!("asking the tally: {e}")),
                Err(_) => fail("the tally did not answer within 30 s"),
            };
            if totals.0 < total {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        reporter.abort();
        totals
    });
    let elapsed = started.elapsed();
    let report = rt.wait();
    check_eq("items tallied", totals.0, total);
    check_eq("messages dropped", report.metrics.dropped_messages, 0);
    println!("--- summary ---");
    println!(
        "time: {:.2} s, {} items/s",
        elapsed.as_secs_f64(),
        human(total as f64 / elapsed.as_secs_f64())
    );
    println!(
        "peak backlog: parse {}, tally {} (high watermark {}); peak RSS {:.1} MiB",
        parse_peak.load(Relaxed),
        tally_peak.load(Relaxed),
        rein::DEFAULT_HIGH_WATERMARK,
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    println!(
        "times a stage was overloaded: {}; times the parser was muted: {}",
        report.metrics.overloads, report.metrics.mutes
    );
    println!("ok: {total} items from {} tokio tasks", args.tasks);
}
