//! Echo over TLS with rein-net: a server that echoes through TLS, a client that streams N bytes
//! through it and checks every byte that comes back. The handlers are the plain TCP echo's
//! (`echo.rs`): TLS is a setting on the listener and on the connection, and backpressure works
//! the same (watermarks count plaintext queued).
//!
//! ```text
//! # a certificate for localhost, and its CA (any tool will do; here openssl):
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
//!     -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout key.pem -out cert.pem
//! cargo run --release -p rein-examples --bin tls_echo -- server --port 7443 --cert cert.pem --key key.pem
//! cargo run --release -p rein-examples --bin tls_echo -- client --port 7443 --ca cert.pem --bytes 1000000
//! openssl s_client -connect 127.0.0.1:7443 -CAfile cert.pem -servername localhost   # by hand
//! ```

use clap::{Parser, Subcommand};
use rein::{AmbientAuth, Runtime};
use rein_examples::echo::{byte_at, Echo};
use rein_examples::{check_clean, check_eq, fail, report, RuntimeArgs};
use rein_net::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "TLS echo through rein-net: a server, and a client that checks what comes back")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Echo every TLS connection on 127.0.0.1:PORT until killed (port 0: any free port; the
    /// address is printed).
    Server {
        #[arg(long)]
        port: u16,
        /// The certificate chain, PEM (leaf first).
        #[arg(long)]
        cert: PathBuf,
        /// The private key, PEM.
        #[arg(long)]
        key: PathBuf,
        /// Application protocols to accept (ALPN), comma-separated.
        #[arg(long, value_delimiter = ',')]
        alpn: Vec<String>,
    },
    /// Stream BYTES through the TLS echo server on 127.0.0.1:PORT and check them.
    Client {
        #[arg(long)]
        port: u16,
        /// CA certificates to verify the server with, PEM (default: Mozilla's roots).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The server's name: sent as SNI and checked against its certificate.
        #[arg(long, default_value = "localhost")]
        name: String,
        #[arg(long, default_value_t = 64 << 20)]
        bytes: usize,
        /// Application protocols to offer (ALPN), comma-separated.
        #[arg(long, value_delimiter = ',')]
        alpn: Vec<String>,
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
    fn ended(&mut self, ended: ConnectionEnded) {
        // Handshake failures land here too, with their reason.
        if let CloseReason::Tls(e) = &ended.reason {
            eprintln!("{:?}: {e}", ended.peer);
        }
    }
}

enum Outcome {
    Done {
        bytes: usize,
        elapsed: Duration,
        tls: Option<TlsInfo>,
    },
    Failed(String),
}

struct Client {
    total: usize,
    sent: usize,
    received: usize,
    start: Instant,
    tls: Option<TlsInfo>,
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
        // The handshake is done: the connection is encrypted and verified.
        self.tls = conn.tls().cloned();
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
            let _ = self.done.send(Outcome::Done {
                bytes: self.received,
                elapsed: self.start.elapsed(),
                tls: self.tls.take(),
            });
            conn.close(); // sends close_notify
        }
        Flow::Continue
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        self.pump(conn);
    }
    fn sent(&mut self, conn: &mut Conn<Self>, _token: SendToken) {
        self.pump(conn);
    }
    fn closed(&mut self, reason: CloseReason) {
        if self.received < self.total {
            let got = self.received;
            let _ = self.done.send(Outcome::Failed(format!(
                "closed after {got} bytes: {reason}"
            )));
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

fn protocols(alpn: &[String]) -> Vec<&[u8]> {
    alpn.iter().map(|p| p.as_bytes()).collect()
}

fn serve(reactor: &Reactor, auth: &AmbientAuth, port: u16, tls: TlsServer) {
    let (tx, rx) = channel();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let opts = ListenOptions::default().tls(tls);
    let server = Server { listening: tx };
    TcpListener::bind(reactor, &TcpListenAuth::new(auth), addr, server, opts);
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(addr)) => println!("listening on {addr} (TLS)"),
        Ok(Err(e)) => fail(e),
        Err(_) => fail("the listener did not start"),
    }
}

fn run_client(reactor: &Reactor, auth: &AmbientAuth, port: u16, tls: TlsClient, bytes: usize) {
    let (tx, rx) = channel();
    let client = Client {
        total: bytes,
        sent: 0,
        received: 0,
        start: Instant::now(),
        tls: None,
        done: tx,
    };
    let opts = ConnectionOptions::default().tls(tls);
    let auth = TcpConnectAuth::new(auth);
    TcpConnection::connect(reactor, &auth, "127.0.0.1", port, client, opts);
    match rx.recv() {
        Ok(Outcome::Done {
            bytes: got,
            elapsed,
            tls,
        }) => {
            check_eq("echoed bytes", got, bytes);
            if let Some(tls) = tls {
                let alpn = tls
                    .alpn_protocol
                    .map(|p| String::from_utf8_lossy(&p).into_owned());
                println!(
                    "TLS: {:?}, {:?}, server {:?}, ALPN {alpn:?}",
                    tls.version, tls.cipher_suite, tls.server_name
                );
            }
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
    match &cli.mode {
        Mode::Server {
            port,
            cert,
            key,
            alpn,
        } => {
            let tls = match TlsServer::from_pem_files(cert, key) {
                Ok(tls) => tls.alpn(&protocols(alpn)),
                Err(e) => fail(format_args!("TLS: {e}")),
            };
            serve(&reactor, &auth, *port, tls);
            // Runs until killed: the listener keeps the runtime alive.
            rt.wait();
        }
        Mode::Client {
            port,
            ca,
            name,
            bytes,
            alpn,
        } => {
            let tls = match ca {
                Some(ca) => TlsClient::with_roots_pem_file(ca),
                None => TlsClient::mozilla_roots(),
            };
            let tls = match tls {
                // Connecting to 127.0.0.1, verifying the certificate for `name`.
                Ok(tls) => tls.server_name(name.clone()).alpn(&protocols(alpn)),
                Err(e) => fail(format_args!("TLS: {e}")),
            };
            run_client(&reactor, &auth, *port, tls, *bytes);
            check_clean(&rt.wait());
            println!("ok: all {bytes} bytes came back in order, through TLS");
        }
    }
}
