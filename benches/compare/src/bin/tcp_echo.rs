//! `tcp_echo`: a rein-net echo server against an idiomatic tokio echo server, on loopback, in one
//! process, driven by the same plain std-thread client.
//!
//! * **Throughput**: `C` connections (1 and `--many`, 100 by default), each with a writer thread streaming its share
//!   of `--bytes` and a reader thread reading the echo back; MB/s is bytes echoed / wall time.
//! * **Latency**: `C` connections, each a thread doing `--round-trips` blocking round trips of
//!   64 bytes; p50 and p99 over every sample.
//! * **Idle memory**: `--idle` connections opened and each pinged once (so the server has
//!   accepted it and read from it), then RSS delta / `--idle`. Client sockets are file
//!   descriptors with no user-space memory, so the delta is the server's.
//!
//! Each figure is the median of `--reps` runs; servers run one at a time, rein first. The tokio
//! server is the textbook one: `TcpListener::accept` in a loop, `tokio::spawn` per connection,
//! `read` into a 64 KiB buffer then `write_all`. Both runtimes use one worker per core and set
//! `TCP_NODELAY`.
//!
//! ```text
//! cargo run --release -p rein-compare --bin tcp_echo -- [--bytes 134217728] [--reps 3] [--idle 1000]
//! ```

use clap::Parser;
use rein_net::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "TCP echo: rein-net against tokio on loopback")]
struct Cli {
    /// Bytes echoed per throughput run (split evenly across the connections).
    #[arg(long, default_value_t = 128 << 20)]
    bytes: usize,
    /// Round trips per connection in the 1-connection latency run (the `--many`-connection
    /// run does 1/`--many` as many per connection, so both take the same number of samples).
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
    /// Connections in the many-connection throughput and latency runs.
    #[arg(long, default_value_t = 100)]
    many: usize,
    /// Idle connections for the memory figure.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Runs per figure (the median is printed).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Measure one server only (for profiling it: `strace -c`, `perf record`); no table.
    #[arg(long, value_parser = ["rein", "tokio"])]
    only: Option<String>,
}

// ------------------------------------------------------------------ rein server

#[path = "../rein_echo_server.rs"]
mod rein_echo_server;
use rein_echo_server::EchoServer;

trait Server {
    fn addr(&self) -> SocketAddr;
    fn stop(self: Box<Self>);
}

struct Rein {
    rt: rein::Runtime,
    listener: ListenerRef,
    addr: SocketAddr,
    _reactor: Reactor,
}

impl Rein {
    fn start() -> Box<dyn Server> {
        let (rt, auth) = rein::Runtime::builder()
            .build_with_auth()
            .expect("rein runtime");
        let reactor = Reactor::start(&rt.handle()).expect("reactor");
        let (tx, rx) = channel();
        let listener = TcpListener::bind(
            &reactor,
            &TcpListenAuth::new(&auth),
            "127.0.0.1:0".parse().unwrap(),
            EchoServer(tx),
            ListenOptions::default(),
        );
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("listening");
        Box::new(Rein {
            rt,
            listener,
            addr,
            _reactor: reactor,
        })
    }
}

impl Server for Rein {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(self: Box<Self>) {
        self.listener.close();
        if self.rt.wait_timeout(Duration::from_secs(20)).is_err() {
            panic!("the rein server did not end");
        }
    }
}

// ------------------------------------------------------------------ tokio server

struct Tokio {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
}

impl Tokio {
    fn start() -> Box<dyn Server> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .build()
            .expect("tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0; 64 * 1024];
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if socket.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Box::new(Tokio { rt, addr })
    }
}

impl Server for Tokio {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(self: Box<Self>) {
        self.rt.shutdown_timeout(Duration::from_secs(5));
    }
}

// ------------------------------------------------------------------ the client

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s
}

/// MB/s echoing `bytes` over `conns` connections.
fn throughput(addr: SocketAddr, conns: usize, bytes: usize) -> f64 {
    let per = bytes / conns;
    let streams: Vec<TcpStream> = (0..conns).map(|_| connect(addr)).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for stream in &streams {
            let mut w = stream.try_clone().expect("clone");
            let mut r = stream.try_clone().expect("clone");
            s.spawn(move || {
                let chunk = vec![0x5a; 16 * 1024];
                let mut left = per;
                while left > 0 {
                    let n = left.min(chunk.len());
                    w.write_all(&chunk[..n]).expect("write");
                    left -= n;
                }
            });
            s.spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                let mut got = 0;
                while got < per {
                    let n = r.read(&mut buf).expect("read");
                    assert!(n > 0, "early end of stream");
                    assert!(buf[..n].iter().all(|&b| b == 0x5a), "echo corrupted");
                    got += n;
                }
            });
        }
    });
    let elapsed = start.elapsed();
    (per * conns) as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Round-trip times (µs) of 64-byte messages over `conns` connections.
fn latency(addr: SocketAddr, conns: usize, round_trips: usize) -> Vec<f64> {
    let streams: Vec<TcpStream> = (0..conns).map(|_| connect(addr)).collect();
    let mut all = Vec::with_capacity(conns * round_trips);
    std::thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .enumerate()
            .map(|(i, stream)| {
                let mut stream = stream.try_clone().expect("clone");
                s.spawn(move || {
                    let msg = [i as u8; 64];
                    let mut back = [0u8; 64];
                    let mut samples = Vec::with_capacity(round_trips);
                    for _ in 0..round_trips {
                        let t = Instant::now();
                        stream.write_all(&msg).expect("write");
                        stream.read_exact(&mut back).expect("read");
                        samples.push(t.elapsed().as_secs_f64() * 1e6);
                        assert_eq!(back, msg, "echo corrupted");
                    }
                    samples
                })
            })
            .collect();
        for h in handles {
            all.extend(h.join().expect("latency thread"));
        }
    });
    all.sort_by(f64::total_cmp);
    all
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

/// RSS bytes per idle connection: open `n`, ping each once, measure, close.
fn idle_memory(addr: SocketAddr, n: usize) -> f64 {
    // Let the server settle, and warm the client path, before the baseline.
    drop(latency(addr, 1, 100));
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect(addr);
        s.write_all(&[1]).expect("ping");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("pong");
        streams.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_bytes();
    let per = after.saturating_sub(before) as f64 / n as f64;
    drop(streams);
    per
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default, Clone, Copy)]
struct Figures {
    mbs_1: f64,
    mbs_many: f64,
    p50_1: f64,
    p99_1: f64,
    p50_many: f64,
    p99_many: f64,
    idle: f64,
}

fn measure(start: fn() -> Box<dyn Server>, cli: &Cli, name: &str) -> Figures {
    let mut runs: Vec<Figures> = Vec::new();
    for rep in 0..cli.reps {
        let server = start();
        let addr = server.addr();
        let (lat1, lat_many) = (
            latency(addr, 1, cli.round_trips),
            latency(addr, cli.many, (cli.round_trips / cli.many).max(1)),
        );
        let f = Figures {
            mbs_1: throughput(addr, 1, cli.bytes),
            mbs_many: throughput(addr, cli.many, cli.bytes),
            p50_1: percentile(&lat1, 0.5),
            p99_1: percentile(&lat1, 0.99),
            p50_many: percentile(&lat_many, 0.5),
            p99_many: percentile(&lat_many, 0.99),
            idle: if rep == 0 && cli.idle > 0 {
                idle_memory(addr, cli.idle)
            } else {
                f64::NAN
            },
        };
        eprintln!(
            "{name} run {}: {:.0} / {:.0} MB/s, p50 {:.1} / {:.1} us, p99 {:.1} / {:.1} us",
            rep + 1,
            f.mbs_1,
            f.mbs_many,
            f.p50_1,
            f.p50_many,
            f.p99_1,
            f.p99_many
        );
        runs.push(f);
        server.stop();
    }
    let pick = |g: fn(&Figures) -> f64| median(runs.iter().map(g).collect());
    Figures {
        mbs_1: pick(|f| f.mbs_1),
        mbs_many: pick(|f| f.mbs_many),
        p50_1: pick(|f| f.p50_1),
        p99_1: pick(|f| f.p99_1),
        p50_many: pick(|f| f.p50_many),
        p99_many: pick(|f| f.p99_many),
        idle: runs[0].idle,
    }
}

/// A table row: label, reading, unit.
type Row = (&'static str, fn(&Figures) -> f64, &'static str);

fn main() {
    let cli = Cli::parse();
    assert!(
        cli.reps > 0 && cli.many > 0 && cli.bytes >= cli.many,
        "--reps, --many or --bytes too small"
    );
    match cli.only.as_deref() {
        Some("rein") => {
            measure(Rein::start, &cli, "rein");
            return;
        }
        Some(_) => {
            measure(Tokio::start, &cli, "tokio");
            return;
        }
        None => {}
    }
    let rein = measure(Rein::start, &cli, "rein");
    let tokio = measure(Tokio::start, &cli, "tokio");
    println!(
        "\n{} reps (median), {} MiB per throughput run, 64-byte round trips, {} idle connections\n",
        cli.reps,
        cli.bytes >> 20,
        cli.idle
    );
    println!("| figure | rein | tokio | rein/tokio |");
    println!("|---|---:|---:|---:|");
    let many = format!("{} connections", cli.many);
    let rows: [Row; 7] = [
        ("throughput, 1 connection", |f| f.mbs_1, "MB/s"),
        ("throughput, {many}", |f| f.mbs_many, "MB/s"),
        ("round trip p50, 1 connection", |f| f.p50_1, "µs"),
        ("round trip p99, 1 connection", |f| f.p99_1, "µs"),
        ("round trip p50, {many}", |f| f.p50_many, "µs"),
        ("round trip p99, {many}", |f| f.p99_many, "µs"),
        ("RSS per idle connection", |f| f.idle, "bytes"),
    ];
    for (what, get, unit) in rows {
        let what = what.replace("{many}", &many);
        let (r, t) = (get(&rein), get(&tokio));
        println!(
            "| {what} ({unit}) | {r:.1} | {t:.1} | {:.2} |",
            r / t.max(f64::MIN_POSITIVE)
        );
    }
}
