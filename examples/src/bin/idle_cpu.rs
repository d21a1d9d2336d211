//! `idle_cpu`: how much CPU an idle runtime burns. Spawns idle actors, lets the workers settle,
//! then reads the process CPU time (user + system, from /proc/self/stat) over a quiet period.
//! The target is under 1 % of one core.
//!
//! ```text
//! cargo run --release -p rein-examples --bin idle_cpu -- --seconds 3
//! ```

use clap::Parser;
use rein::{Actor, Context};
use rein_examples::{fail, RuntimeArgs};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "How much CPU an idle runtime burns (target: under 1 % of one core)")]
struct Args {
    /// Length of the quiet period measured.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Idle actors to keep around.
    #[arg(long, default_value_t = 1_000)]
    actors: usize,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

struct Idle;

impl Actor for Idle {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
}

/// User + system CPU time of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
    let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    utime + stime
}

fn main() {
    let args = Args::parse();
    let rt = args.runtime.build();
    let actors: Vec<_> = (0..args.actors).map(|_| rt.spawn(Idle)).collect();
    for a in &actors {
        a.send(()).expect("alive");
    }
    std::thread::sleep(Duration::from_millis(200));
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let before = cpu_ticks();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let used = (cpu_ticks() - before) as f64 / ticks_per_sec;
    let share = used / started.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle CPU: {share:.2} % of one core over {} s ({used:.2} s of CPU)",
        args.seconds
    );
    if share >= 1.0 {
        fail(format_args!(
            "an idle runtime used {share:.2} % of a core (target < 1 %)"
        ));
    }
    drop(actors);
    rt.shutdown();
    println!("ok: idle runtime under 1 % of a core");
}
