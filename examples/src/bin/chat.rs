//! `chat`: a TCP chat room that stays live when a client stops reading.
//!
//! Every line a client sends goes to every client, through a [`Broadcast`] actor. Written the
//! obvious way (the room writing to each connection), one client that never reads throttles
//! its connection, the room is muted on it, and everyone stalls. Here each subscriber has a
//! policy for when it is behind (`--policy`): `lag` (the default: it skips ahead and is told
//! how many lines it missed), `drop` (it misses lines), `disconnect` (it is kicked after
//! `--grace-ms`), or `mute` (the obvious way, to see the stall: the runtime reports it on
//! stderr).
//!
//! ```text
//! cargo run --release -p rein-examples --bin chat -- --port 7070
//! nc 127.0.0.1 7070          # in several terminals; type lines
//! cargo run --release -p rein-examples --bin chat -- --self-check 50   # 50 clients + 1 that never reads
//! cargo run --release -p rein-examples --bin chat -- --self-check 50 --policy mute   # stalls, reported
//! ```

use clap::{Parser, ValueEnum};
use rein::ActorRef;
use rein_examples::{fail, RuntimeArgs};
use rein_net::broadcast::{Broadcast, BroadcastMsg, SlowSubscriber, Subscriber};
use rein_net::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "A TCP chat room that stays live when a client stops reading")]
struct Cli {
    /// Port to listen on (127.0.0.1; 0 picks a free one, printed).
    #[arg(long, default_value_t = 7070)]
    port: u16,
    /// What the room does with a client that is behind.
    #[arg(long, value_enum, default_value_t = Policy::Lag)]
    policy: Policy,
    /// With `--policy disconnect`: how long a client may stay behind.
    #[arg(long, default_value_t = 2000)]
    grace_ms: u64,
    /// Instead of serving: connect N clients and one that never reads, chat, check everyone
    /// live got everything, and exit.
    #[arg(long, value_name = "N")]
    self_check: Option<usize>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Policy {
    Lag,
    Drop,
    Disconnect,
    Mute,
}

// ---------------------------------------------------------------- the chat room itself

type Room = ActorRef<Broadcast<Bytes>>;

/// One client's connection: joins the room, says what it types, leaves.
struct Session {
    room: Room,
    policy: Policy,
    grace: Duration,
    name: String,
}

impl ConnectionHandler for Session {
    type Msg = ();
    fn connected(&mut self, conn: &mut Conn<Self>) {
        conn.set_framing(Framing::Lines { max: 4096 });
        let me = conn.myself();
        let when_slow = match self.policy {
            Policy::Lag => SlowSubscriber::lag(|n| Bytes::from(format!("* {n} lines skipped\n"))),
            Policy::Drop => SlowSubscriber::DropNewest,
            Policy::Disconnect => SlowSubscriber::Disconnect { after: self.grace },
            Policy::Mute => SlowSubscriber::Mute,
        };
        let kick = me.clone();
        let subscriber = Subscriber::new(me.writer())
            .when_slow(when_slow)
            .on_removed(move |_| {
                kick.abort();
            });
        let _ = self.room.send(BroadcastMsg::Subscribe(subscriber));
    }
    fn received(&mut self, _conn: &mut Conn<Self>, line: Bytes) -> Flow {
        let text = format!("{}: {}\n", self.name, String::from_utf8_lossy(&line));
        let _ = self.room.send(BroadcastMsg::Publish(Bytes::from(text)));
        Flow::Continue
    }
}

struct Lobby {
    room: Room,
    policy: Policy,
    grace: Duration,
    listening: mpsc::Sender<SocketAddr>,
}

impl ListenNotify for Lobby {
    type Handler = Session;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.listening.send(addr);
    }
    fn connected(&mut self, peer: SocketAddr) -> Session {
        let (room, policy, grace) = (self.room.clone(), self.policy, self.grace);
        Session {
            room,
            policy,
            grace,
            name: peer.to_string(),
        }
    }
}

/// Connections fed by the room: a mailbox that absorbs a burst of lines (a burst alone must
/// not count as being behind), small kernel buffers (lines are small), and the default
/// write-queue watermarks, whose pressure tells the room who is behind.
fn connection_options() -> ConnectionOptions {
    ConnectionOptions::default()
        .mailbox_watermarks(Some((256, 1024)))
        .send_buffer_size(32 * 1024)
}

// ---------------------------------------------------------------- running it

fn main() {
    let cli = Cli::parse();
    let builder = cli
        .runtime
        .builder()
        .on_stall(Duration::from_secs(1), |stall| {
            eprintln!("stalled: {stall}");
        });
    let (rt, auth) = builder
        .build_with_auth()
        .unwrap_or_else(|e| fail(format_args!("cannot build the runtime: {e}")));
    let reactor = Reactor::start(&rt.handle()).unwrap_or_else(|e| fail(e));
    let room = rt.spawn(Broadcast::new());
    let (tx, rx) = mpsc::channel();
    let lobby = Lobby {
        room: room.clone(),
        policy: cli.policy,
        grace: Duration::from_millis(cli.grace_ms),
        listening: tx,
    };
    let port = if cli.self_check.is_some() {
        0
    } else {
        cli.port
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listen = ListenOptions::default().connection(connection_options());
    let listener = TcpListener::bind(&reactor, &TcpListenAuth::new(&auth), addr, lobby, listen);
    let bound = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| fail(format_args!("cannot listen on {addr}")));
    println!("chat on {bound} ({:?} policy)", cli.policy);
    match cli.self_check {
        None => {
            rt.wait();
        }
        Some(clients) => {
            let result = self_check(bound, clients, &room);
            listener.close();
            let _ = rt.shutdown();
            match result {
                Ok(line) => println!("ok: {line}"),
                Err(e) => fail(e),
            }
        }
    }
}

/// Lines the talking client sends in the self-check, `BURST` every 10 ms.
const LINES: usize = 2000;
const BURST: usize = 20;

/// Connects `clients` readers and one client that never reads (with a small receive buffer),
/// has the first reader send `LINES` lines, and checks every reader gets all of them in time.
fn self_check(addr: SocketAddr, clients: usize, room: &Room) -> Result<String, String> {
    let silent = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .and_then(|s| s.set_recv_buffer_size(4096).map(|()| s))
        .and_then(|s| s.connect(&addr.into()).map(|()| s))
        .map_err(|e| format!("connect: {e}"))?;
    let readers: Vec<TcpStream> = (0..clients.max(1))
        .map(|_| TcpStream::connect(addr))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("connect: {e}"))?;
    // Wait until the room has every subscriber.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = room
            .ask(BroadcastMsg::Stats, Duration::from_secs(10))
            .map_err(|e| format!("room: {e}"))?;
        if stats.subscribers == clients.max(1) + 1 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {} subscribers joined", stats.subscribers));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    let mut talker = readers[0].try_clone().map_err(|e| e.to_string())?;
    let handles: Vec<_> = readers
        .into_iter()
        .map(|stream| {
            std::thread::spawn(move || -> Result<(), String> {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                let mut lines = BufReader::new(stream).lines();
                for n in 0..LINES {
                    let line = match lines.next() {
                        Some(Ok(line)) => line,
                        Some(Err(_)) => return Err(format!("line {n}: nothing for 10 s: stalled")),
                        None => return Err(format!("line {n}: the server closed")),
                    };
                    if !line.ends_with(&format!("line {n} {}", "-".repeat(80))) {
                        return Err(format!("expected line {n}, got {line:?}"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for n in 0..LINES {
        writeln!(talker, "line {n} {}", "-".repeat(80)).map_err(|e| e.to_string())?;
        if n % BURST == BURST - 1 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for handle in handles {
        handle.join().map_err(|_| "a reader panicked")??;
    }
    let elapsed = start.elapsed();
    let stats = room
        .ask(BroadcastMsg::Stats, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    drop(silent);
    Ok(format!(
        "{} readers got all {LINES} lines in {:.2} s while one client never read; \
         the room dropped {} deliveries and disconnected {}",
        clients.max(1),
        elapsed.as_secs_f64(),
        stats.dropped,
        stats.disconnected
    ))
}
