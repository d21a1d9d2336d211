//! `http_hello`: a plaintext "Hello, World!" HTTP/1.1 server on rein-net, for load tests.
//!
//! ```text
//! cargo run --release -p rein-examples --bin http_hello -- --port 8080
//! wrk -t2 -c100 -d10s http://127.0.0.1:8080/
//! cargo run --release -p rein-examples --bin http_hello -- --self-check 1000   # serve, fetch, exit
//! ```

use clap::Parser;
use rein_examples::{check_clean, fail, report, RuntimeArgs};
use rein_net::http::*;
use rein_net::*;
use std::net::SocketAddr;
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Plaintext \"Hello, World!\" over HTTP/1.1 with rein-net, for load tests")]
struct Cli {
    /// Port to listen on (127.0.0.1; 0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Listen on all interfaces instead of 127.0.0.1.
    #[arg(long)]
    any: bool,
    /// Instead of serving until killed: serve on a free port, fetch "/" this many times over
    /// one keep-alive connection with rein's HTTP client, check every answer, and exit.
    #[arg(long)]
    self_check: Option<usize>,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

const HELLO: &[u8] = b"Hello, World!";

fn hello() -> Collect<impl FnMut(&Request, Bytes) -> (Response, Bytes) + Send + 'static> {
    Collect::new(64 * 1024, |_req, _body| {
        let head = Response::new(200).header("content-type", "text/plain");
        (head, Bytes::from_static(HELLO))
    })
}

/// Fetches "/" `left` times, one after another on one connection.
struct Fetch {
    left: usize,
    done: Sender<Result<usize, String>>,
    ok: usize,
    body: Vec<u8>,
}

impl ResponseHandler for Fetch {
    type Msg = ();
    fn connected(&mut self, client: &mut Client<Self>) {
        client.request(ClientRequest::get("/"));
    }
    fn connect_failed(&mut self, reason: ConnectError) {
        let _ = self.done.send(Err(reason.to_string()));
    }
    fn response(&mut self, _client: &mut Client<Self>, _id: RequestId, head: ResponseHead) {
        if head.status() != 200 {
            let _ = self.done.send(Err(format!("status {}", head.status())));
        }
        self.body.clear();
    }
    fn body(&mut self, _client: &mut Client<Self>, _id: RequestId, piece: Bytes) {
        self.body.extend_from_slice(&piece);
    }
    fn end(&mut self, client: &mut Client<Self>, _id: RequestId, _trailers: Headers) {
        if self.body == HELLO {
            self.ok += 1;
        }
        self.left -= 1;
        if self.left == 0 {
            client.close();
        } else {
            client.request(ClientRequest::get("/"));
        }
    }
    fn closed(&mut self, reason: CloseReason, _unanswered: Vec<RequestId>) {
        let _ = self.done.send(if self.left == 0 {
            Ok(self.ok)
        } else {
            Err(format!("closed early: {reason}"))
        });
    }
}

fn main() {
    let cli = Cli::parse();
    let (rt, auth) = cli
        .runtime
        .builder()
        .build_with_auth()
        .unwrap_or_else(|e| fail(format_args!("cannot build the runtime: {e}")));
    let reactor = Reactor::start(&rt.handle())
        .unwrap_or_else(|e| fail(format_args!("cannot start the I/O thread: {e}")));
    let ip = if cli.any {
        [0, 0, 0, 0]
    } else {
        [127, 0, 0, 1]
    };
    let port = if cli.self_check.is_some() {
        0
    } else {
        cli.port
    };
    let addr = SocketAddr::from((ip, port));
    let listen = TcpListenAuth::new(&auth);
    let (listener, bound) = serve(&reactor, &listen, addr, ServerOptions::default(), |_| {
        hello()
    })
    .unwrap_or_else(|e| fail(e));
    println!("listening on {bound}");
    let Some(requests) = cli.self_check else {
        rt.wait(); // until killed
        return;
    };
    let (tx, rx) = channel();
    let fetch = Fetch {
        left: requests.max(1),
        done: tx,
        ok: 0,
        body: Vec::new(),
    };
    let started = Instant::now();
    let connect = TcpConnectAuth::new(&auth);
    HttpClient::connect(
        &reactor,
        &connect,
        "127.0.0.1",
        bound.port(),
        fetch,
        ClientOptions::default(),
    );
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(ok)) if ok == requests.max(1) => report("requests", ok as u64, started.elapsed()),
        Ok(Ok(ok)) => fail(format_args!("{ok} of {requests} answers were right")),
        Ok(Err(why)) => fail(why),
        Err(_) => fail("no answer within 60 s"),
    }
    listener.close();
    check_clean(&rt.wait());
    println!(
        "ok: {} requests answered \"Hello, World!\" on one keep-alive connection",
        requests.max(1)
    );
}
