//! `timer_latency`: how late a timer fires, rein against tokio, on an otherwise idle runtime.
//!
//! Each framework re-arms a one-shot timer of `--delay-us` as soon as the previous one fires,
//! `--ticks` times, and records how long after its deadline each one was delivered (to a rein
//! actor's behaviour; to a tokio task after `sleep`). Both runtimes have `--threads` workers.
//! Prints p50, p99 and max lateness in microseconds.
//!
//! ```text
//! cargo run --release -p rein-compare --bin timer_latency -- [--delay-us 1000] [--ticks 2000]
//! ```

use clap::Parser;
use rein::{Actor, Context, Runtime};
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Timer lateness: rein against tokio")]
struct Cli {
    /// Delay of each one-shot timer, in microseconds.
    #[arg(long, default_value_t = 1000)]
    delay_us: u64,
    /// Timers per framework, one after another.
    #[arg(long, default_value_t = 2000)]
    ticks: usize,
    /// Worker threads of each runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

struct Rearm {
    delay: Duration,
    left: usize,
    deadline: Instant,
    late: Vec<Duration>,
    done: Option<Sender<Vec<Duration>>>,
}

impl Actor for Rearm {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) {
        let now = Instant::now();
        if self.left < usize::MAX {
            self.late.push(now.saturating_duration_since(self.deadline));
        }
        if self.left == 0 {
            if let Some(done) = self.done.take() {
                let _ = done.send(std::mem::take(&mut self.late));
            }
            return;
        }
        self.left -= 1;
        self.deadline = now + self.delay;
        ctx.after_keeping_alive(self.delay, ());
    }
}

fn rein(cli: &Cli) -> Vec<Duration> {
    let rt = Runtime::builder()
        .threads(cli.threads)
        .build()
        .expect("rein runtime");
    let (tx, rx) = channel();
    let delay = Duration::from_micros(cli.delay_us);
    let a = rt.spawn(Rearm {
        delay,
        left: cli.ticks,
        deadline: Instant::now(),
        late: Vec::with_capacity(cli.ticks + 1),
        done: Some(tx),
    });
    a.send(()).expect("send");
    let mut late = rx.recv().expect("rein result");
    // The first entry is the kick-off message, not a timer.
    late.remove(0);
    rt.shutdown();
    late
}

fn tokio(cli: &Cli) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads)
        .enable_time()
        .build()
        .expect("tokio runtime");
    let delay = Duration::from_micros(cli.delay_us);
    let ticks = cli.ticks;
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut late = Vec::with_capacity(ticks);
            for _ in 0..ticks {
                let deadline = Instant::now() + delay;
                tokio::time::sleep(delay).await;
                late.push(Instant::now().saturating_duration_since(deadline));
            }
            late
        })
        .await
        .expect("tokio task")
    })
}

fn report(name: &str, mut late: Vec<Duration>) -> (f64, f64) {
    late.sort();
    let at = |q: f64| late[((late.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let (p50, p99, max) = (at(0.5), at(0.99), at(1.0));
    println!("| {name} | {p50:.1} | {p99:.1} | {max:.1} |");
    (p50, p99)
}

fn main() {
    let cli = Cli::parse();
    assert!(cli.ticks > 0, "--ticks must be positive");
    println!(
        "\n{} one-shot timers of {} µs each, {} workers: lateness in µs\n",
        cli.ticks, cli.delay_us, cli.threads
    );
    println!("| runtime | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    let (r50, r99) = report("rein", rein(&cli));
    let (t50, t99) = report("tokio", tokio(&cli));
    println!(
        "\nrein / tokio: p50 {:.2}, p99 {:.2}",
        r50 / t50.max(1e-9),
        r99 / t99.max(1e-9)
    );
}
