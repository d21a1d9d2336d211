//! What every framework module shares: the workload list, their parameters,
//! the expected answers, busy-work calibration and peak-RSS reading.
//!
//! Keeping these in one place is what makes the comparison fair: every
//! framework gets the same parameters, is checked against the same expected
//! value and reports the same unit, so a module can only differ in *how* it
//! moves the messages.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

/// The Savina-style workloads (plus `fanin`, a backpressure probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Workload {
    /// Two actors bounce one message back and forth.
    Pingpong,
    /// One producer sends N messages to a counter.
    Counting,
    /// A token hops around a ring of actors.
    Threadring,
    /// A driver floods a fixed set of actors.
    ForkjoinThroughput,
    /// A driver creates N short-lived actors.
    ForkjoinCreation,
    /// Savina chameneos: a meeting place pairs up chameneos.
    Chameneos,
    /// Savina big: workers ping random peers, peers answer pong.
    Big,
    /// A 10-ary tree of actors sums its leaves.
    Skynet,
    /// Four producers into one slow consumer.
    Fanin,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 9] = [
        Workload::Pingpong,
        Workload::Counting,
        Workload::Threadring,
        Workload::ForkjoinThroughput,
        Workload::ForkjoinCreation,
        Workload::Chameneos,
        Workload::Big,
        Workload::Skynet,
        Workload::Fanin,
    ];

    /// The CLI spelling (as clap's `ValueEnum` writes it).
    pub fn name(self) -> &'static str {
        match self {
            Workload::Pingpong => "pingpong",
            Workload::Counting => "counting",
            Workload::Threadring => "threadring",
            Workload::ForkjoinThroughput => "forkjoin-throughput",
            Workload::ForkjoinCreation => "forkjoin-creation",
            Workload::Chameneos => "chameneos",
            Workload::Big => "big",
            Workload::Skynet => "skynet",
            Workload::Fanin => "fanin",
        }
    }
}

/// Workload parameters. The defaults are sized so that each run takes
/// roughly 0.1–2 s on a 2-core machine for the faster frameworks.
#[derive(Clone, Debug, Args)]
pub struct Params {
    /// pingpong: round trips between the two actors.
    #[arg(long, default_value_t = 200_000)]
    pub pingpong_n: u64,
    /// counting: messages the producer sends to the counter.
    #[arg(long, default_value_t = 1_000_000)]
    pub counting_n: u64,
    /// threadring: actors in the ring.
    #[arg(long, default_value_t = 503)]
    pub ring_size: u64,
    /// threadring: hops the token makes.
    #[arg(long, default_value_t = 500_000)]
    pub ring_hops: u64,
    /// forkjoin-throughput: number of actors.
    #[arg(long, default_value_t = 60)]
    pub fj_actors: u64,
    /// forkjoin-throughput: messages each actor receives.
    #[arg(long, default_value_t = 10_000)]
    pub fj_msgs: u64,
    /// forkjoin-creation: actors created (each gets one message).
    #[arg(long, default_value_t = 200_000)]
    pub fj_create_n: u64,
    /// chameneos: number of chameneos.
    #[arg(long, default_value_t = 100)]
    pub chameneos_c: u64,
    /// chameneos: meetings to arrange.
    #[arg(long, default_value_t = 100_000)]
    pub chameneos_meetings: u64,
    /// big: number of workers.
    #[arg(long, default_value_t = 120)]
    pub big_workers: u64,
    /// big: pings each worker sends (one outstanding at a time).
    #[arg(long, default_value_t = 3_000)]
    pub big_pings: u64,
    /// skynet: tree depth; the tree has 10^depth leaves.
    #[arg(long, default_value_t = 6)]
    pub skynet_depth: u32,
    /// fanin: number of producers.
    #[arg(long, default_value_t = 4)]
    pub fanin_producers: u64,
    /// fanin: messages (64 bytes each) per producer.
    #[arg(long, default_value_t = 100_000)]
    pub fanin_msgs: u64,
    /// fanin: consumer busy work per message, in nanoseconds.
    #[arg(long, default_value_t = 1_000)]
    pub fanin_work_ns: u64,
    /// Spin-loop iterations per microsecond; measured at start-up when absent
    /// (the matrix runner measures once and passes it to every child).
    #[arg(long)]
    pub spin_per_us: Option<f64>,
    /// Channel capacity for `tokio-bounded`.
    #[arg(long, default_value_t = 1024)]
    pub capacity: usize,
    /// rein: messages an actor handles per scheduling turn (rein's default
    /// when absent).
    #[arg(long)]
    pub rein_batch: Option<usize>,
}

impl Params {
    /// The flags that reproduce these parameters in a child process.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            format!("--pingpong-n={}", self.pingpong_n),
            format!("--counting-n={}", self.counting_n),
            format!("--ring-size={}", self.ring_size),
            format!("--ring-hops={}", self.ring_hops),
            format!("--fj-actors={}", self.fj_actors),
            format!("--fj-msgs={}", self.fj_msgs),
            format!("--fj-create-n={}", self.fj_create_n),
            format!("--chameneos-c={}", self.chameneos_c),
            format!("--chameneos-meetings={}", self.chameneos_meetings),
            format!("--big-workers={}", self.big_workers),
            format!("--big-pings={}", self.big_pings),
            format!("--skynet-depth={}", self.skynet_depth),
            format!("--fanin-producers={}", self.fanin_producers),
            format!("--fanin-msgs={}", self.fanin_msgs),
            format!("--fanin-work-ns={}", self.fanin_work_ns),
            format!("--capacity={}", self.capacity),
        ];
        if let Some(s) = self.spin_per_us {
            v.push(format!("--spin-per-us={s}"));
        }
        if let Some(b) = self.rein_batch {
            v.push(format!("--rein-batch={b}"));
        }
        v
    }

    /// Rejects parameter combinations no workload can run.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("pingpong-n", self.pingpong_n),
            ("counting-n", self.counting_n),
            ("ring-hops", self.ring_hops),
            ("fj-actors", self.fj_actors),
            ("fj-msgs", self.fj_msgs),
            ("fj-create-n", self.fj_create_n),
            ("chameneos-meetings", self.chameneos_meetings),
            ("big-pings", self.big_pings),
            ("fanin-producers", self.fanin_producers),
            ("fanin-msgs", self.fanin_msgs),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("--{name} must be at least 1"));
            }
        }
        if self.ring_size < 2 {
            return Err("--ring-size must be at least 2".into());
        }
        if self.chameneos_c < 2 {
            return Err("--chameneos-c must be at least 2".into());
        }
        if self.big_workers < 2 {
            return Err("--big-workers must be at least 2".into());
        }
        if self.skynet_depth > 8 {
            return Err("--skynet-depth above 8 (10^8 actors) is not supported".into());
        }
        if self.capacity == 0 {
            return Err("--capacity must be at least 1".into());
        }
        Ok(())
    }

    /// Leaves of the skynet tree.
    pub fn skynet_leaves(&self) -> u64 {
        10u64.pow(self.skynet_depth)
    }

    /// The value a correct run of `w` reports back to the driver.
    pub fn expected(&self, w: Workload) -> u64 {
        match w {
            Workload::Pingpong => self.pingpong_n,
            Workload::Counting => self.counting_n,
            Workload::Threadring => self.ring_hops,
            Workload::ForkjoinThroughput => self.fj_actors * self.fj_msgs,
            Workload::ForkjoinCreation => self.fj_create_n,
            // Every meeting involves two chameneos, and each counts it.
            Workload::Chameneos => 2 * self.chameneos_meetings,
            Workload::Big => self.big_workers * self.big_pings,
            Workload::Skynet => {
                let n = self.skynet_leaves();
                n * (n - 1) / 2
            }
            Workload::Fanin => self.fanin_producers * self.fanin_msgs,
        }
    }

    /// What the reported value means, for the error message.
    pub fn expected_meaning(w: Workload) -> &'static str {
        match w {
            Workload::Pingpong => "round trips",
            Workload::Counting => "counted messages",
            Workload::Threadring => "token hops",
            Workload::ForkjoinThroughput => "messages received over all actors",
            Workload::ForkjoinCreation => "replies from created actors",
            Workload::Chameneos => "meetings counted by chameneos (2 per meeting)",
            Workload::Big => "pongs received over all workers",
            Workload::Skynet => "sum of leaf numbers",
            Workload::Fanin => "messages consumed",
        }
    }

    /// How many units of work a run does, and their name, for the rate column.
    pub fn work_units(&self, w: Workload) -> (u64, &'static str) {
        match w {
            Workload::Pingpong => (2 * self.pingpong_n, "msgs/s"),
            Workload::Counting => (self.counting_n, "msgs/s"),
            Workload::Threadring => (self.ring_hops, "msgs/s"),
            Workload::ForkjoinThroughput => (self.fj_actors * self.fj_msgs, "msgs/s"),
            Workload::ForkjoinCreation => (self.fj_create_n, "actors/s"),
            Workload::Chameneos => (self.chameneos_meetings, "meetings/s"),
            Workload::Big => (2 * self.big_workers * self.big_pings, "msgs/s"),
            Workload::Skynet => {
                // 1 + 10 + ... + 10^depth actors.
                let actors = (0..=self.skynet_depth).map(|d| 10u64.pow(d)).sum();
                (actors, "actors/s")
            }
            Workload::Fanin => (self.fanin_producers * self.fanin_msgs, "msgs/s"),
        }
    }
}

/// What one framework module hands back for one run.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// The value the final actor reported (compared with [`Params::expected`]).
    pub value: u64,
    /// Wall time from before the first actor is spawned until the driver has
    /// the result; runtime start-up and shutdown are outside it.
    pub elapsed: Duration,
}

/// Checks a run's value against the expected one.
pub fn validate(w: Workload, p: &Params, got: u64) -> Result<(), String> {
    let want = p.expected(w);
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{} produced a wrong result: {} = {got}, expected {want}",
            w.name(),
            Params::expected_meaning(w)
        ))
    }
}

/// `fanin` producers send this many messages per turn, then yield (an actor
/// messages itself, a tokio task calls `yield_now`), so every scheduler gets
/// the same chance to run the consumer or to apply backpressure in between.
pub const FANIN_CHUNK: u64 = 100;

/// A 64-byte message body for `fanin`.
pub type Payload = [u8; 64];

/// Builds producer `producer`'s `i`-th payload.
#[inline]
pub fn payload(producer: u64, i: u64) -> Payload {
    let mut p = [0u8; 64];
    p[..8].copy_from_slice(&producer.to_le_bytes());
    p[8..16].copy_from_slice(&i.to_le_bytes());
    p
}

/// Calibrated CPU-bound busy work: spinning, never sleeping, so that the
/// consumer of `fanin` really is slower than its producers.
#[derive(Clone, Copy, Debug)]
pub struct BusyWork {
    iters: u64,
}

impl BusyWork {
    /// Work of about `ns` nanoseconds, given `spin_per_us` iterations per µs.
    pub fn new(ns: u64, spin_per_us: f64) -> Self {
        BusyWork {
            iters: ((ns as f64) * spin_per_us / 1000.0).round() as u64,
        }
    }

    /// Spins, folding `p` into the returned checksum so nothing is optimised out.
    #[inline]
    pub fn run(&self, p: &Payload) -> u64 {
        let mut acc = u64::from_le_bytes(p[8..16].try_into().unwrap_or_default());
        spin(self.iters, &mut acc);
        acc
    }
}

#[inline(never)]
fn spin(iters: u64, acc: &mut u64) {
    let mut x = black_box(*acc) | 1;
    for _ in 0..iters {
        // xorshift: a dependent chain the CPU cannot skip or parallelise.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    *acc = black_box(x);
}

/// Measures spin-loop iterations per microsecond on this machine (best of
/// several tries, so a descheduled try does not skew it).
pub fn calibrate_spin() -> f64 {
    const ITERS: u64 = 2_000_000;
    let mut acc = 1;
    spin(ITERS / 10, &mut acc); // warm up
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        spin(ITERS, &mut acc);
        best = best.min(t.elapsed());
    }
    black_box(acc);
    ITERS as f64 / (best.as_nanos().max(1) as f64 / 1000.0)
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A tiny xorshift generator: `big` needs random peers, and a shared crate
/// for that would only add a dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Savina chameneos colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    /// Blue.
    Blue,
    /// Red.
    Red,
    /// Yellow.
    Yellow,
}

impl Colour {
    /// The starting colour of chameneo `i`.
    pub fn nth(i: u64) -> Self {
        match i % 3 {
            0 => Colour::Blue,
            1 => Colour::Red,
            _ => Colour::Yellow,
        }
    }

    /// The colour two chameneos both take after meeting.
    pub fn complement(self, other: Colour) -> Colour {
        use Colour::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Blue, Red) | (Red, Blue) => Yellow,
            (Blue, Yellow) | (Yellow, Blue) => Red,
            _ => Blue,
        }
    }
}

/// Skynet: the `i`-th child of a node numbered `num` covering `size` leaves.
pub fn skynet_child(num: u64, size: u64, i: u64) -> (u64, u64) {
    let child_size = size / 10;
    (num + i * child_size, child_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        p: Params,
    }

    #[test]
    fn defaults_round_trip_through_args() {
        let p = P::parse_from(["x"]).p;
        let mut args = vec!["x".to_string()];
        args.extend(p.to_args());
        let q = P::parse_from(args).p;
        assert_eq!(p.expected(Workload::Skynet), q.expected(Workload::Skynet));
        assert_eq!(q.expected(Workload::Skynet), 499_999_500_000);
        assert!(p.check().is_ok());
    }

    #[test]
    fn colours_complement() {
        use Colour::*;
        assert_eq!(Blue.complement(Red), Yellow);
        assert_eq!(Yellow.complement(Red), Blue);
        assert_eq!(Red.complement(Red), Red);
    }

    #[test]
    fn skynet_children_cover_parent() {
        let kids: Vec<_> = (0..10).map(|i| skynet_child(100, 100, i)).collect();
        assert_eq!(kids[0], (100, 10));
        assert_eq!(kids[9], (190, 10));
    }

    #[test]
    fn reads_peak_rss() {
        assert!(peak_rss_kib().unwrap() > 0);
    }

    #[test]
    fn calibration_is_positive() {
        let s = calibrate_spin();
        assert!(s > 1.0, "{s}");
        assert!(BusyWork::new(1000, s).iters > 0);
    }
}
