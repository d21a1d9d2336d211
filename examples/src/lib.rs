//! Shared helpers for the example programs in `src/bin/`.
//!
//! Every example takes the runtime flags in [`RuntimeArgs`] (flattened into its own clap
//! parser, under a "Runtime" heading of its `--help`), those where backpressure matters also
//! [`BackpressureArgs`], prints one line per figure with [`report`] and friends, and exits
//! non-zero through [`fail`] when its result does not check out.
//!
//! Run one with, for example:
//!
//! ```text
//! cargo run --release -p rein-examples --bin ring -- --hops 10000000 --threads 2
//! ```

use clap::Args;
use rein::{Builder, Report, Runtime};
use std::fmt::Display;
use std::time::Duration;

// Runtime settings shared by every example. (A `//` comment, not a doc comment: clap would take
// a doc comment on a flattened struct for the `about` of every example's `--help`.)
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Runtime")]
pub struct RuntimeArgs {
    /// Worker threads (default: one per available core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Messages an actor handles per turn (default: rein's `DEFAULT_BATCH`).
    #[arg(long)]
    pub batch: Option<usize>,
}

// The backpressure switch, only for the examples where it changes what they show.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Runtime")]
pub struct BackpressureArgs {
    /// Turn scheduler-enforced backpressure off, to compare: without it, mailboxes grow without
    /// bound.
    #[arg(long)]
    pub no_backpressure: bool,
}

impl BackpressureArgs {
    /// `builder` with this setting applied.
    pub fn apply(&self, builder: Builder) -> Builder {
        builder.backpressure(!self.no_backpressure)
    }
}

impl RuntimeArgs {
    /// A builder with these settings applied.
    pub fn builder(&self) -> Builder {
        let mut builder = Runtime::builder();
        if let Some(threads) = self.threads {
            builder = builder.threads(threads);
        }
        if let Some(batch) = self.batch {
            builder = builder.batch(batch);
        }
        builder
    }

    /// Builds the runtime, or exits with a clear message if the settings are invalid.
    pub fn build(&self) -> Runtime {
        build(self.builder())
    }
}

/// Builds the runtime, or exits with a clear message if the settings are invalid.
pub fn build(builder: Builder) -> Runtime {
    match builder.build() {
        Ok(rt) => rt,
        Err(e) => fail(format_args!("cannot build the runtime: {e}")),
    }
}

/// The number of worker threads a runtime built from `args` gets.
pub fn threads(args: &RuntimeArgs) -> usize {
    args.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Prints `what` at `count / elapsed` per second, e.g. `hops/s: 12.34 M`, plus the raw figures.
pub fn report(what: &str, count: u64, elapsed: Duration) {
    let rate = rate(count, elapsed);
    println!(
        "{what}/s: {} ({count} {what} in {:.3} s)",
        human(rate),
        elapsed.as_secs_f64()
    );
}

/// `count / elapsed` in units per second.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// A rate with an SI suffix: `12.34 M`.
pub fn human(rate: f64) -> String {
    if rate >= 1e9 {
        format!("{:.2} G", rate / 1e9)
    } else if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.2} k", rate / 1e3)
    } else {
        format!("{rate:.2}")
    }
}

/// Peak resident set size of this process in KiB (`VmHWM` in `/proc/self/status`), where the
/// platform has it.
pub fn peak_rss_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// Current resident set size of this process in KiB (`VmRSS`), where the platform has it.
pub fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// Anonymous resident memory of this process in KiB (`RssAnon`): the heap, and thread stacks.
pub fn anon_kib() -> Option<u64> {
    proc_status_kib("RssAnon:")
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
}

/// Prints the peak RSS line, if it can be read.
pub fn report_peak_rss() {
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS: unavailable on this platform"),
    }
}

/// Prints the runtime's end-of-run figures on one line: workers; messages handled; turns (an
/// actor's run of up to `batch` messages on a worker); actors spawned; steals (batches of work
/// taken from another worker's queue); parks (times a worker went to sleep for lack of work);
/// handoffs (actors moved off a worker stuck in a long behaviour); mutes (times an actor was
/// muted on an overloaded receiver); whether the runtime ended by quiescence.
pub fn report_runtime(report: &Report) {
    let m = &report.metrics;
    let steals: u64 = m.workers.iter().map(|w| w.steals).sum();
    let parks: u64 = m.workers.iter().map(|w| w.parks).sum();
    let turns: u64 = m.workers.iter().map(|w| w.turns).sum();
    println!(
        "runtime: {} workers, {} messages, {turns} turns, {} spawned, {steals} steals, \
         {parks} worker sleeps, {} handoffs, {} mutes, quiescent {}",
        m.workers.len(),
        m.messages(),
        m.spawned,
        m.handoffs,
        m.mutes,
        report.quiescent
    );
}

/// Prints `msg` to stderr as a failed check and exits with status 1.
pub fn fail(msg: impl Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// Exits through [`fail`] unless `got == expected`.
pub fn check_eq<T: PartialEq + Display>(what: &str, got: T, expected: T) {
    if got != expected {
        fail(format_args!("{what}: got {got}, expected {expected}"));
    }
}

/// Exits through [`fail`] unless the runtime ended by quiescence with nothing undelivered.
pub fn check_clean(report: &Report) {
    if !report.quiescent {
        fail("the runtime did not end by quiescence");
    }
    check_eq("undelivered messages", report.undelivered, 0);
    check_eq("worker panics", report.worker_panics, 0);
    check_eq("behaviour panics", report.metrics.panics, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_fields() {
        let status = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t  100 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(100));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn human_rates() {
        assert_eq!(human(12.0), "12.00");
        assert_eq!(human(1_500.0), "1.50 k");
        assert_eq!(human(2_340_000.0), "2.34 M");
        assert_eq!(human(3e9), "3.00 G");
    }
}

/// The echo server handler and stream pattern shared by `echo` and `tls_echo`: a TLS
/// connection echoes with the very same handler as a plain one.
pub mod echo {
    use rein_net::{Bytes, Conn, ConnectionHandler, Flow};

    /// Byte `i` of the test stream the clients send and check.
    pub fn byte_at(i: usize) -> u8 {
        (i % 251) as u8
    }

    /// Sends back what it receives, keeping a refused buffer until `unthrottled`.
    #[derive(Default)]
    pub struct Echo {
        pending: Option<Bytes>,
    }

    impl ConnectionHandler for Echo {
        type Msg = ();
        fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
            if let Err(refused) = conn.send(data) {
                // No `received` follows until `unthrottled`: this slot is not overwritten.
                self.pending = Some(refused.into_inner());
            }
            Flow::Continue
        }
        fn unthrottled(&mut self, conn: &mut Conn<Self>) {
            if let Some(data) = self.pending.take() {
                let _ = conn.send(data);
            }
        }
    }
}
