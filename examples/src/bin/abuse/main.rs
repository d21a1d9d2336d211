//! `abuse`: peer abuse, and how an ingress discipline keeps a server (and its well-behaved
//! peers) alive, watched live in a browser.
//!
//! The server gathers what many peers send into one consumer, which does a configurable amount
//! of work per MiB (slower than the clients). Spammers send 16 MiB payloads as fast as they
//! can; a legitimate peer sends 100 small requests a second and measures its latency. The
//! discipline of the server's ingress (`--qdisc`) decides what happens:
//!
//! * `unbounded`: the server reads everything; its memory climbs until `--max-rss`, where it
//!   stops itself and says so (the operating system would otherwise kill it);
//! * `bounded`: rein's muting; memory stays flat, and the legitimate peer waits in line;
//! * `fair`: a budget in flight per peer, least-served first; memory stays flat and the
//!   legitimate peer keeps its latency;
//! * `rate`: a token bucket per peer.
//!
//! ```text
//! cargo run --release -p rein-examples --bin abuse -- server --port 7700 --qdisc fair --dashboard-port 7701
//! cargo run --release -p rein-examples --bin abuse -- client --port 7700 --spammers 4 --payload 16MiB
//! cargo run --release -p rein-examples --bin abuse -- client --port 7700 --legit --rate 100
//! # then open http://127.0.0.1:7701/ (metrics at /metrics)
//! ```
//!
//! The wire protocol: frames of a 5-byte head (kind, then a big-endian u32 length) and a body.
//! Kind 0 is a payload (no answer). Kind 1 is a request of 24 bytes (sequence number, the
//! client's send time in wall-clock µs, the client's last measured round trip in µs); the
//! server answers with its first 16 bytes.

mod client;
mod dashboard;
mod plot;
mod server;

/// A frame's head: kind (1 byte), body length (u32, big-endian).
pub const HEAD: usize = 5;
/// A payload: no answer.
pub const KIND_PAYLOAD: u8 = 0;
/// A request: sequence number, send time (µs), last round trip (µs); answered.
pub const KIND_REQUEST: u8 = 1;
pub const REQUEST_LEN: usize = 24;
/// The answer: the request's sequence number and send time.
pub const REPLY_LEN: usize = 16;

use clap::{Parser, Subcommand, ValueEnum};
use rein_examples::RuntimeArgs;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    about = "Peer abuse against a rein-net server: ingress disciplines (unbounded, bounded, \
             fair, rate) watched live on a dashboard",
    after_help = "Run a server, then clients against it; open the dashboard in a browser."
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Receive payloads from many peers into one consumer through an ingress discipline.
    Server(ServerArgs),
    /// Spam the server with large payloads, or be a well-behaved peer that measures latency.
    Client(ClientArgs),
    /// Draw an SVG plot of RSS over time from the CSV files `server --rss-log` wrote.
    Plot(PlotArgs),
}

/// The ingress discipline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Qdisc {
    /// Never stop reading: the heap grows with what the peers send.
    Unbounded,
    /// rein's muting: every connection stops reading while the consumer is overloaded.
    Bounded,
    /// A budget in flight per peer; the least-served peer first.
    Fair,
    /// A token bucket of bytes per second per peer.
    Rate,
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Port for the peers (127.0.0.1; 0 picks a free one, printed).
    #[arg(long, default_value_t = 7700)]
    port: u16,
    /// The ingress discipline.
    #[arg(long, value_enum, default_value_t = Qdisc::Bounded)]
    qdisc: Qdisc,
    /// Port for the dashboard (0 picks a free one, printed).
    #[arg(long, default_value_t = 7701)]
    dashboard_port: u16,
    /// Consumer work per MiB received, in milliseconds (busy work: the consumer is slower
    /// than the clients).
    #[arg(long, default_value_t = 10.0)]
    work_ms_per_mib: f64,
    /// Stop (with a message, exit status 3) once the resident set exceeds this many MiB.
    #[arg(long, default_value_t = 1024)]
    max_rss: u64,
    /// `fair`: bytes in flight per peer (e.g. 256KiB).
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    budget: u64,
    /// `rate`: bytes per second per peer (e.g. 8MiB).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    rate: u64,
    /// Bytes per item handed to the consumer: payloads are cut into pieces of this size.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    piece: u64,
    /// Write a sample (seconds, RSS MiB, anonymous MiB, consumed MiB/s, backlog MiB, and the
    /// legitimate peers' p99 round trip, client-to-consumer time and ingress wait over the
    /// last 2 s, in ms) to this CSV file every sample period.
    #[arg(long)]
    rss_log: Option<PathBuf>,
    /// Stop after this many seconds, with a summary (default: run until killed).
    #[arg(long)]
    secs: Option<f64>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The server's port on 127.0.0.1.
    #[arg(long, default_value_t = 7700)]
    port: u16,
    /// Spammers: connections that send payloads as fast as they can.
    #[arg(long, default_value_t = 0)]
    spammers: usize,
    /// Payload size (e.g. 16MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    payload: u64,
    /// Also run a well-behaved peer that sends small requests and measures its latency.
    #[arg(long)]
    legit: bool,
    /// The well-behaved peer's requests per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    secs: Option<f64>,
}

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// The SVG file to write.
    #[arg(long)]
    out: PathBuf,
    /// The plot's title.
    #[arg(long, default_value = "Server RSS under abuse")]
    title: String,
    /// A horizontal line at this many MiB, labelled as the cap.
    #[arg(long)]
    cap: Option<f64>,
    /// `LABEL=FILE.csv` for each line to draw.
    #[arg(required = true)]
    series: Vec<String>,
}

/// Parses `16MiB`, `256KiB`, `1GiB`, `8MB` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => return Err(format!("unknown unit {other:?} in {text:?}")),
    };
    Ok((number * scale) as u64)
}

fn main() {
    match Cli::parse().mode {
        Mode::Server(args) => server::run(args),
        Mode::Client(args) => client::run(args),
        Mode::Plot(args) => plot::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("256KiB"), Ok(256 << 10));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("8MB"), Ok(8_000_000));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("12 parsecs").is_err());
    }
}
