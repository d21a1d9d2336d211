//! Echo over TCP with rein-net: a server that echoes, a client that streams N bytes through it
//! and checks every byte that comes back.
//!
//! Both sides respect backpressure: the client sends only while its connection is writeable and
//! resumes on `unthrottled`; the server keeps an echo its connection refused and sends it on
//! `unthrottled`. A refusal inside `received` holds delivery (and reading) until then, so the
//! kept echo is never overwritten and TCP flow control slows the client down instead of memory
//! growing.
//!
//! ```text
//! cargo run --release -p rein-examples --bin echo -- [--bytes 268435456]   # both, on loopback
//! cargo run --release -p rein-examples --bin echo -- server --port 7000
//! cargo run --release -p rein-examples --bin echo -- client --port 7000 --bytes 1000000
//! cargo run --release -p rein-examples --bin echo -- --threads 2 client --port 7000  # runtime flags first
//! ```

use clap::{Parser, Subcommand};
use rein::{AmbientAuth, Runtime};
use rein_examples::echo::{byte_at, Echo};
use rein_examples::{check_clean, check_eq, fail, report, report_peak_rss, RuntimeArgs};
use rein_net::*;
use std::net::SocketAddr;
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "TCP echo through rein-net, with throughput and validation")]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Bytes the client streams (when running both in one process).
    #[arg(long, default_value_t = 256 << 20)]
    bytes: usize,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Echo every connection on 127.0.0.1:PORT until killed.
    Server {
        #[arg(long)]
        port: u16,
    },
    /// Stream BYTES through the echo server on 127.0.0.1:PORT and check them.
    Client {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 256 << 20)]
        bytes: usize,
    },
}

struct Server {
    listening: Sender<Result<SocketAddr, String>>,
}

impl ListenNotify for Server {
    type Handler = Echo;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.listening.send(Ok(addr));
    }
    fn not_listening(&mut self, err: BindError) {
        let _ = self.listening.send(Err(err.to_string()));
    }
    fn connected(&mut self, _peer: SocketAddr) -> Echo {
        Echo::default()
    }
}

/// What the client found.
enum Outcome {
    Done { bytes: usize, elapsed: Duration },
    Failed(String),
}

struct Client {
    total: usize,
    sent: usize,
    received: usize,
    start: Instant,
    done: Sender<Outcome>,
}

impl Client {
    const CHUNK: usize = 64 * 1024;

    fn pump(&mut self, conn: &mut Conn<Self>) {
        while self.sent < self.total && conn.is_writeable() {
            let len = Self::CHUNK.min(self.total - self.sent);
            let chunk: Vec<u8> = (self.sent..self.sent + len).map(byte_at).collect();
            if conn.send(chunk).is_err() {
                return;
            }
            self.sent += len;
        }
    }
}

impl ConnectionHandler for Client {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        self.start = Instant::now();
        self.pump(conn);
    }
    fn connect_failed(&mut self, reason: ConnectError) {
        let _ = self
            .done
            .send(Outcome::Failed(format!("connect: {reason}")));
    }
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        for (i, &b) in data.iter().enumerate() {
            if b != byte_at(self.received + i) {
                let at = self.received + i;
                let _ = self
                    .done
                    .send(Outcome::Failed(format!("wrong byte at {at}")));
                conn.abort();
                return Flow::Yield;
            }
        }
        self.received += data.len();
        if self.received == self.total {
            let elapsed = self.start.elapsed();
            let _ = self.done.send(Outcome::Done {
                bytes: self.received,
                elapsed,
            });
            conn.close();
        }
        Flow::Continue
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        self.pump(conn);
    }
    fn sent(&mut self, conn: &mut Conn<Self>, _token: SendToken) {
        self.pump(conn);
    }
    fn closed(&mut self, _reason: CloseReason) {
        if self.received < self.total {
            let got = self.received;
            let _ = self
                .done
                .send(Outcome::Failed(format!("closed after {got} bytes")));
        }
    }
}

fn start(cli: &Cli) -> (Runtime, AmbientAuth, Reactor) {
    let (rt, auth) = match cli.runtime.builder().build_with_auth() {
        Ok(pair) => pair,
        Err(e) => fail(format_args!("cannot build the runtime: {e}")),
    };
    let reactor = match Reactor::start(&rt.handle()) {
        Ok(r) => r,
        Err(e) => fail(format_args!("cannot start the I/O thread: {e}")),
    };
    (rt, auth, reactor)
}

/// Starts the echo listener; returns it with the address it got (port 0 picks a free port).
fn serve(reactor: &Reactor, auth: &AmbientAuth, port: u16) -> (ListenerRef, SocketAddr) {
    let (tx, rx) = channel();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listen = TcpListenAuth::new(auth);
    let opts = ListenOptions::default();
    let listener = TcpListener::bind(reactor, &listen, addr, Server { listening: tx }, opts);
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(addr)) => {
            println!("listening on {addr}");
            (listener, addr)
        }
        Ok(Err(e)) => fail(e),
        Err(_) => fail("the listener did not start"),
    }
}

fn run_client(reactor: &Reactor, auth: &AmbientAuth, port: u16, bytes: usize) {
    let (tx, rx) = channel();
    let client = Client {
        total: bytes,
        sent: 0,
        received: 0,
        start: Instant::now(),
        done: tx,
    };
    let connect = TcpConnectAuth::new(auth);
    let opts = ConnectionOptions::default();
    TcpConnection::connect(reactor, &connect, "127.0.0.1", port, client, opts);
    match rx.recv() {
        Ok(Outcome::Done {
            bytes: got,
            elapsed,
        }) => {
            check_eq("echoed bytes", got, bytes);
            report("bytes", got as u64, elapsed);
            let mib = got as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9);
            println!("throughput: {mib:.1} MiB/s each way");
        }
        Ok(Outcome::Failed(why)) => fail(why),
        Err(_) => fail("the client ended without a result"),
    }
}

fn main() {
    let cli = Cli::parse();
    let (rt, auth, reactor) = start(&cli);
    match cli.mode {
        Some(Mode::Server { port }) => {
            serve(&reactor, &auth, port);
            // Runs until killed: the listener keeps the runtime alive.
            rt.wait();
        }
        Some(Mode::Client { port, bytes }) => {
            run_client(&reactor, &auth, port, bytes);
            check_clean(&rt.wait());
            println!("ok: all {bytes} bytes came back in order");
        }
        None => {
            let (listener, addr) = serve(&reactor, &auth, 0);
            run_client(&reactor, &auth, addr.port(), cli.bytes);
            listener.close();
            let report = rt.wait();
            check_clean(&report);
            report_peak_rss();
            println!(
                "ok: all {} bytes came back in order; the runtime ended by quiescence",
                cli.bytes
            );
        }
    }
}
