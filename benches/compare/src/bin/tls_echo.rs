//! `tls_echo`: a rein-net TLS echo server against tokio + tokio-rustls, on loopback, with the
//! same rustls configuration (and so the same crypto provider) for both, driven by the same
//! client (tokio-rustls on a runtime of its own).
//!
//! * **Throughput**: `C` connections (1 and 100), each with a writer task streaming its share
//!   of `--bytes` and a reader task checking the echo; MB/s is plaintext echoed / wall time.
//! * **Handshakes per second**: `--handshakes` connections, 32 at a time, each a full TLS 1.3
//!   handshake (no resumption), one byte echoed, close.
//! * **Memory per connection**: each server alone in a fresh child process (so that neither
//!   inherits the other's freed heap), `--idle` TLS connections held by a grandchild (so that
//!   the client's rustls state is not counted), each having echoed one byte; RSS delta of the
//!   server's process / `--idle`.
//!
//! Each figure is the median of `--reps` runs; servers run one at a time, rein first. The tokio
//! server is the textbook one: `accept`, `TlsAcceptor::accept`, `tokio::spawn`, `read` into a
//! 64 KiB buffer, `write_all`. Both use one worker per core and `TCP_NODELAY`.
//!
//! ```text
//! cargo run --release -p rein-compare --bin tls_echo -- [--provider ring|aws-lc-rs] [--bytes 67108864] [--reps 3]
//! ```

use clap::{Parser, ValueEnum};
use rein_net::rustls::crypto::CryptoProvider;
use rein_net::rustls::pki_types::pem::PemObject;
use rein_net::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rein_net::rustls::{ClientConfig, RootCertStore, ServerConfig};
use rein_net::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Provider {
    Ring,
    AwsLcRs,
}

#[derive(Debug, Parser)]
#[command(about = "TLS echo: rein-net against tokio + tokio-rustls on loopback")]
struct Cli {
    /// The crypto provider, for both servers and the client.
    #[arg(long, value_enum, default_value = "ring")]
    provider: Provider,
    /// Bytes echoed per throughput run (split evenly across the connections).
    #[arg(long, default_value_t = 64 << 20)]
    bytes: usize,
    /// Handshakes per handshake run.
    #[arg(long, default_value_t = 2000)]
    handshakes: usize,
    /// Idle connections for the memory figure (0: skip it).
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Runs per figure (the median is printed).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Internal: hold `--idle` TLS connections to this address, trusting the CA in `--ca`,
    /// until standard input closes (the child process of the memory figure).
    #[arg(long, hide = true)]
    hold: Option<SocketAddr>,
    #[arg(long, hide = true)]
    ca: Option<PathBuf>,
    /// Internal: run only the memory figure of this server (`rein` or `tokio`) and print it.
    #[arg(long, hide = true)]
    memory_of: Option<String>,
}

fn provider(p: Provider) -> Arc<CryptoProvider> {
    Arc::new(match p {
        Provider::Ring => rustls::crypto::ring::default_provider(),
        Provider::AwsLcRs => rustls::crypto::aws_lc_rs::default_provider(),
    })
}

/// A CA and a leaf for `localhost`, as PEM: (ca, chain, key).
fn certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tls_echo CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

fn server_config(p: Provider, chain: &str, key: &str) -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let config = ServerConfig::builder_with_provider(provider(p))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    Arc::new(config)
}

fn client_config(p: Provider, ca: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.expect("CA")).expect("root");
    }
    let mut config = ClientConfig::builder_with_provider(provider(p))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if std::env::var_os("TLS_ECHO_RESUME").is_none() {
        // Every handshake a full one: a resumed one costs a fraction, and would compare
        // session caches rather than servers.
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
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
    fn start(config: Arc<ServerConfig>) -> Box<dyn Server> {
        let (rt, auth) = rein::Runtime::builder()
            .build_with_auth()
            .expect("rein runtime");
        let reactor = Reactor::start(&rt.handle()).expect("reactor");
        let (tx, rx) = channel();
        let opts = ListenOptions::default().tls(TlsServer::new(config));
        let listener = TcpListener::bind(
            &reactor,
            &TcpListenAuth::new(&auth),
            "127.0.0.1:0".parse().unwrap(),
            EchoServer(tx),
            opts,
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
    fn start(config: Arc<ServerConfig>) -> Box<dyn Server> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .build()
            .expect("tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        rt.spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let mut buf = vec![0; 64 * 1024];
                    loop {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if tls.write_all(&buf[..n]).await.is_err() {
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

type ClientStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn open(addr: SocketAddr, connector: &tokio_rustls::TlsConnector) -> ClientStream {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("handshake")
}

struct Client {
    rt: tokio::runtime::Runtime,
    connector: tokio_rustls::TlsConnector,
}

impl Client {
    fn new(config: Arc<ClientConfig>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .build()
            .expect("client runtime");
        Client {
            rt,
            connector: tokio_rustls::TlsConnector::from(config),
        }
    }

    /// MB/s echoing `bytes` of plaintext over `conns` connections.
    fn throughput(&self, addr: SocketAddr, conns: usize, bytes: usize) -> f64 {
        let per = bytes / conns;
        self.rt.block_on(async {
            let mut streams = Vec::with_capacity(conns);
            for _ in 0..conns {
                streams.push(open(addr, &self.connector).await);
            }
            let start = Instant::now();
            let mut tasks = Vec::new();
            for stream in streams {
                let (mut r, mut w) = tokio::io::split(stream);
                tasks.push(tokio::spawn(async move {
                    let chunk = vec![0x5a; 16 * 1024];
                    let mut left = per;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        w.write_all(&chunk[..n]).await.expect("write");
                        left -= n;
                    }
                    // tokio-rustls may keep the last records in rustls' buffer after
                    // `write_all`: without a flush they would never leave.
                    w.flush().await.expect("flush");
                }));
                tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0; 64 * 1024];
                    let mut got = 0;
                    while got < per {
                        let n = r.read(&mut buf).await.expect("read");
                        assert!(n > 0, "early end of stream");
                        assert!(buf[..n].iter().all(|&b| b == 0x5a), "echo corrupted");
                        got += n;
                    }
                }));
            }
            for t in tasks {
                t.await.expect("client task");
            }
            let elapsed = start.elapsed();
            (per * conns) as f64 / 1e6 / elapsed.as_secs_f64()
        })
    }

    /// Full handshakes per second: `n` connections, 32 at a time, one byte echoed each.
    fn handshakes(&self, addr: SocketAddr, n: usize) -> f64 {
        const AT_ONCE: usize = 32;
        self.rt.block_on(async {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for worker in 0..AT_ONCE {
                let connector = self.connector.clone();
                let count = n / AT_ONCE + usize::from(worker < n % AT_ONCE);
                tasks.push(tokio::spawn(async move {
                    for _ in 0..count {
                        let mut s = open(addr, &connector).await;
                        s.write_all(&[7]).await.expect("write");
                        s.flush().await.expect("flush");
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await.expect("read");
                        let _ = s.shutdown().await;
                    }
                }));
            }
            for t in tasks {
                t.await.expect("handshake task");
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
    }
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

/// The child process: holds `n` TLS connections open (blocking rustls), each having echoed a
/// byte, says "ready", and waits for its standard input to close.
fn hold(addr: SocketAddr, ca: &PathBuf, n: usize, p: Provider) {
    let ca = std::fs::read_to_string(ca).expect("CA file");
    let config = client_config(p, &ca);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = std::net::TcpStream::connect(addr).expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(&[1]).expect("ping");
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).expect("pong");
        held.push(tls);
    }
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(held);
}

/// RSS bytes per held connection, the connections held by a child process.
fn idle_memory(addr: SocketAddr, ca: &PathBuf, n: usize, p: Provider) -> f64 {
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    let provider = provider_name(p);
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--hold")
        .arg(addr.to_string())
        .arg("--ca")
        .arg(ca)
        .args(["--idle", &n.to_string(), "--provider", provider])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the holding client");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert_eq!(line.trim(), "ready", "the holding client failed");
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_bytes();
    drop(child.stdin.take());
    let _ = child.wait();
    after.saturating_sub(before) as f64 / n as f64
}

fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Ring => "ring",
        Provider::AwsLcRs => "aws-lc-rs",
    }
}

/// The memory figure of `server`, measured in a fresh child process.
fn memory_in_child(server: &str, cli: &Cli) -> f64 {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args(["--memory-of", server, "--idle", &cli.idle.to_string()])
        .args(["--provider", provider_name(cli.provider)])
        .output()
        .expect("start the memory run");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("memory run of {server} failed: {text}"))
}

/// The child of [`memory_in_child`]: starts one server, measures, prints bytes per connection.
fn memory_of(server: &str, cli: &Cli) {
    let (ca, chain, key) = certificates();
    let dir = std::env::temp_dir().join(format!("tls_echo-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca).expect("CA file");
    let config = server_config(cli.provider, &chain, &key);
    let server = match server {
        "rein" => Rein::start(config),
        _ => Tokio::start(config),
    };
    let per = idle_memory(server.addr(), &ca_file, cli.idle, cli.provider);
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{per:.1}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default, Clone, Copy)]
struct Figures {
    mbs_1: f64,
    mbs_100: f64,
    handshakes: f64,
    idle: f64,
}

struct Setup {
    server: Arc<ServerConfig>,
    client: Client,
}

fn measure(
    start: fn(Arc<ServerConfig>) -> Box<dyn Server>,
    setup: &Setup,
    cli: &Cli,
    name: &str,
    memory_name: &str,
) -> Figures {
    let mut runs: Vec<Figures> = Vec::new();
    for rep in 0..cli.reps {
        let server = start(setup.server.clone());
        let addr = server.addr();
        let f = Figures {
            mbs_1: setup.client.throughput(addr, 1, cli.bytes),
            mbs_100: setup.client.throughput(addr, 100, cli.bytes),
            handshakes: setup.client.handshakes(addr, cli.handshakes),
            idle: if rep == 0 && cli.idle > 0 {
                memory_in_child(memory_name, cli)
            } else {
                f64::NAN
            },
        };
        eprintln!(
            "{name} run {}: {:.0} / {:.0} MB/s, {:.0} handshakes/s, {:.0} B per connection",
            rep + 1,
            f.mbs_1,
            f.mbs_100,
            f.handshakes,
            f.idle
        );
        runs.push(f);
        server.stop();
    }
    let pick = |g: fn(&Figures) -> f64| median(runs.iter().map(g).collect());
    Figures {
        mbs_1: pick(|f| f.mbs_1),
        mbs_100: pick(|f| f.mbs_100),
        handshakes: pick(|f| f.handshakes),
        idle: runs[0].idle,
    }
}

/// A table row: label, reading, unit.
type Row = (&'static str, fn(&Figures) -> f64, &'static str);

fn main() {
    let cli = Cli::parse();
    if let Some(addr) = cli.hold {
        let ca = cli.ca.as_ref().expect("--ca with --hold");
        return hold(addr, ca, cli.idle, cli.provider);
    }
    if let Some(server) = &cli.memory_of {
        return memory_of(server, &cli);
    }
    assert!(
        cli.reps > 0 && cli.bytes >= 100 && cli.handshakes > 0,
        "--reps, --bytes or --handshakes too small"
    );
    let (ca, chain, key) = certificates();
    let setup = Setup {
        server: server_config(cli.provider, &chain, &key),
        client: Client::new(client_config(cli.provider, &ca)),
    };
    let rein = measure(Rein::start, &setup, &cli, "rein", "rein");
    let tokio = measure(Tokio::start, &setup, &cli, "tokio-rustls", "tokio");
    println!(
        "\n{:?} provider, {} reps (median), {} MiB per throughput run, {} handshakes, {} held \
         connections\n",
        cli.provider,
        cli.reps,
        cli.bytes >> 20,
        cli.handshakes,
        cli.idle
    );
    println!("| figure | rein | tokio-rustls | rein/tokio |");
    println!("|---|---:|---:|---:|");
    let rows: [Row; 4] = [
        ("TLS echo throughput, 1 connection", |f| f.mbs_1, "MB/s"),
        (
            "TLS echo throughput, 100 connections",
            |f| f.mbs_100,
            "MB/s",
        ),
        ("full handshakes per second", |f| f.handshakes, "1/s"),
        ("RSS per connection", |f| f.idle, "bytes"),
    ];
    for (what, get, unit) in rows {
        let (r, t) = (get(&rein), get(&tokio));
        println!(
            "| {what} ({unit}) | {r:.1} | {t:.1} | {:.2} |",
            r / t.max(f64::MIN_POSITIVE)
        );
    }
}
