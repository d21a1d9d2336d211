//! `rein-compare`: Savina-style workloads on rein and on peer frameworks,
//! side by side.
//!
//! `rein-compare one` runs one workload on one framework in this process and
//! prints a machine-readable `RESULT ...` line (including the process's peak
//! RSS). `rein-compare matrix` re-executes itself once per framework ×
//! workload × repetition (× thread count with `--scaling`), so that no run
//! inherits another's heap, thread pool or warmed caches, and prints median
//! tables in markdown (optionally CSV for `plot.py`).

mod bridge;
mod peers;
mod rein_impl;
mod runner;
mod workloads;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use workloads::{Params, Workload};

/// With `--features mimalloc`, every framework in the process allocates through mimalloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The frameworks under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Framework {
    /// tokio tasks + unbounded mpsc.
    Tokio,
    /// tokio tasks + bounded mpsc (`--capacity`).
    TokioBounded,
    /// actix actors, `Addr::do_send`, one arbiter per thread.
    Actix,
    /// ractor actors, `cast`.
    Ractor,
    /// kameo actors, `tell`.
    Kameo,
    /// rein.
    Rein,
}

impl Framework {
    /// Every framework, in table order (rein last so ratios read left to right).
    pub const ALL: [Framework; 6] = [
        Framework::Tokio,
        Framework::TokioBounded,
        Framework::Actix,
        Framework::Ractor,
        Framework::Kameo,
        Framework::Rein,
    ];

    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Framework::Tokio => "tokio",
            Framework::TokioBounded => "tokio-bounded",
            Framework::Actix => "actix",
            Framework::Ractor => "ractor",
            Framework::Kameo => "kameo",
            Framework::Rein => "rein",
        }
    }
}

#[derive(Parser)]
#[command(
    version,
    about = "Savina-style benchmarks: rein against tokio, actix, ractor and kameo"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one workload on one framework in this process and print a RESULT line.
    One(OneArgs),
    /// Run the framework × workload matrix, each run in a fresh child process.
    Matrix(runner::MatrixArgs),
    /// An async round trip from a tokio task: `ask_async` to a rein actor against a tokio
    /// oneshot to a tokio task, in one run.
    Bridge(bridge::BridgeArgs),
}

#[derive(clap::Args)]
struct OneArgs {
    /// Framework to run.
    #[arg(long, value_enum)]
    framework: Framework,
    /// Workload to run.
    #[arg(long, value_enum)]
    workload: Workload,
    /// Worker threads for the framework's scheduler.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[command(flatten)]
    params: Params,
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::One(a) => run_one(a),
        Cmd::Matrix(m) => runner::run_matrix(m),
        Cmd::Bridge(b) => bridge::run(b),
    }
}

/// Runs `w` on framework `f` in this process (not yet validated).
fn run_on(
    f: Framework,
    w: Workload,
    p: &Params,
    threads: usize,
) -> Result<workloads::Outcome, String> {
    match f {
        Framework::Tokio => peers::tokio_mpsc::run(w, p, threads, false),
        Framework::TokioBounded => peers::tokio_mpsc::run(w, p, threads, true),
        Framework::Actix => peers::actix_impl::run(w, p, threads),
        Framework::Ractor => peers::ractor_impl::run(w, p, threads),
        Framework::Kameo => peers::kameo_impl::run(w, p, threads),
        Framework::Rein => rein_impl::run(w, p, threads),
    }
}

/// Runs one workload, validates it and prints its RESULT line.
fn run_one(mut a: OneArgs) -> ExitCode {
    // A panic on any actor thread must fail the run, not leave the driver
    // waiting for a result that will never come.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(101);
    }));
    if let Err(e) = a.params.check() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if a.threads == 0 {
        eprintln!("error: --threads must be at least 1");
        return ExitCode::from(2);
    }
    if a.workload == Workload::Fanin && a.params.spin_per_us.is_none() {
        a.params.spin_per_us = Some(workloads::calibrate_spin());
    }
    let (p, w, t) = (&a.params, a.workload, a.threads);
    let outcome = match run_on(a.framework, w, p, t) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {} {}: {e}", a.framework.name(), w.name());
            return ExitCode::from(1);
        }
    };
    if let Err(e) = workloads::validate(w, p, outcome.value) {
        eprintln!("error: {}: {e}", a.framework.name());
        return ExitCode::from(1);
    }
    let secs = outcome.elapsed.as_secs_f64();
    let (units, unit) = p.work_units(w);
    println!(
        "RESULT framework={} workload={} threads={t} secs={secs:.6} rate={:.1} unit={unit} rss_kib={} value={}",
        a.framework.name(),
        w.name(),
        units as f64 / secs,
        workloads::peak_rss_kib().unwrap_or(0),
        outcome.value,
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny parameters: every framework must get every workload right.
    fn tiny() -> Params {
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            p: Params,
        }
        P::parse_from([
            "x",
            "--pingpong-n=200",
            "--counting-n=2000",
            "--ring-size=7",
            "--ring-hops=300",
            "--fj-actors=5",
            "--fj-msgs=200",
            "--fj-create-n=300",
            "--chameneos-c=5",
            "--chameneos-meetings=300",
            "--big-workers=6",
            "--big-pings=50",
            "--skynet-depth=3",
            "--fanin-producers=3",
            "--fanin-msgs=1000",
            "--fanin-work-ns=50",
            "--spin-per-us=100",
            "--capacity=8",
        ])
        .p
    }

    #[test]
    fn every_framework_validates_every_workload() {
        let p = tiny();
        for f in Framework::ALL {
            for w in Workload::ALL {
                for threads in [1, 2] {
                    let o = run_on(f, w, &p, threads)
                        .unwrap_or_else(|e| panic!("{} {}: {e}", f.name(), w.name()));
                    workloads::validate(w, &p, o.value)
                        .unwrap_or_else(|e| panic!("{} on {threads} thread(s): {e}", f.name()));
                }
            }
        }
    }

    #[test]
    fn framework_names_match_clap() {
        for f in Framework::ALL {
            assert_eq!(f.to_possible_value().unwrap().get_name(), f.name());
        }
        for w in Workload::ALL {
            assert_eq!(w.to_possible_value().unwrap().get_name(), w.name());
        }
    }
}
