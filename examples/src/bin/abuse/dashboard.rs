//! The live dashboard: a sampler actor that reads the server's figures four times a second,
//! and an HTTP server (rein's own, `rein_net::http`) with the page, a stream of samples
//! (server-sent events), `/metrics` in the Prometheus text format, and `/snapshot`.

use crate::server::{Piece, Tally};
use crate::Qdisc;
use rein::{Actor, Context, RuntimeHandle};
use rein_examples::{anon_kib, rss_kib};
use rein_net::http::{serve as http_serve, Http, Request, RequestHandler, Response, ServerOptions};
use rein_net::ingress::{Ingress, PeerId};
use rein_net::{BindError, Reactor, TcpListenAuth};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the sampler samples and the page is updated.
pub const SAMPLE: Duration = Duration::from_millis(250);
/// Samples kept for a page that opens late (two minutes).
const HISTORY: usize = 480;
/// Latency percentiles are over this window.
const WINDOW: Duration = Duration::from_secs(2);

const PAGE: &str = include_str!("page.html");

const MIB: f64 = (1 << 20) as f64;

/// The latest figures, shared by the sampler (which writes them) and the dashboard's
/// connections (which serve them).
pub struct Board {
    qdisc: Qdisc,
    state: Mutex<BoardState>,
}

#[derive(Default)]
struct BoardState {
    seq: u64,
    /// Samples as JSON objects, oldest first.
    history: VecDeque<String>,
    metrics: String,
}

impl Board {
    pub fn new(qdisc: Qdisc) -> Board {
        Board {
            qdisc,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, json: String, metrics: String) {
        let mut state = self.lock();
        state.seq += 1;
        if state.history.len() == HISTORY {
            state.history.pop_front();
        }
        state.history.push_back(json);
        state.metrics = metrics;
    }

    /// The latest sample's number and JSON.
    fn latest(&self) -> (u64, Option<String>) {
        let state = self.lock();
        (state.seq, state.history.back().cloned())
    }

    fn history(&self) -> (u64, String) {
        let state = self.lock();
        let items: Vec<&str> = state.history.iter().map(String::as_str).collect();
        (state.seq, format!("[{}]", items.join(",")))
    }
}

/// p50 and p99 of the values (µs) in `samples` from the last [`WINDOW`].
pub fn percentiles(samples: &VecDeque<(Instant, u64)>) -> (f64, f64) {
    let now = Instant::now();
    let mut values: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| now.saturating_duration_since(*at) <= WINDOW)
        .map(|&(_, v)| v)
        .collect();
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_unstable();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize] as f64;
    (at(0.5), at(0.99))
}

/// A string as a JSON string literal.
fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------- sampling

/// Reads the figures every [`SAMPLE`] and publishes them on the board (and to the CSV file).
pub struct Sampler {
    board: Arc<Board>,
    ingress: Ingress<Piece>,
    tally: Arc<Tally>,
    rt: RuntimeHandle,
    start: Instant,
    csv: Option<File>,
    last: Option<(Instant, u64)>,
    last_rx: HashMap<PeerId, u64>,
}

impl Sampler {
    pub fn new(
        board: Arc<Board>,
        ingress: Ingress<Piece>,
        tally: Arc<Tally>,
        rt: RuntimeHandle,
        start: Instant,
        mut csv: Option<File>,
    ) -> Sampler {
        if let Some(file) = csv.as_mut() {
            let _ = writeln!(
                file,
                "secs,rss_mib,anon_mib,consumed_mib_s,backlog_mib,legit_p99_ms,inbound_p99_ms,\
                 wait_p99_ms"
            );
        }
        Sampler {
            board,
            ingress,
            tally,
            rt,
            start,
            csv,
            last: None,
            last_rx: HashMap::new(),
        }
    }

    fn sample(&mut self) {
        let now = Instant::now();
        let t = (now - self.start).as_secs_f64();
        let rss = rss_kib().unwrap_or(0) as f64 / 1024.0;
        let anon = anon_kib().unwrap_or(0) as f64 / 1024.0;
        let ingress = self.ingress.stats();
        let metrics = self.rt.metrics();
        let snapshot = self.rt.mute_snapshot();
        let muted: HashSet<_> = snapshot.muted.iter().copied().collect();
        let tally = self.tally.lock();
        let dt = self
            .last
            .map_or(SAMPLE.as_secs_f64(), |(at, _)| (now - at).as_secs_f64())
            .max(1e-3);
        let consumed = tally.consumed_bytes;
        let rate = self
            .last
            .map_or(0.0, |(_, before)| (consumed - before) as f64 / MIB / dt);
        self.last = Some((now, consumed));
        let (p50, p99) = percentiles(&tally.rtts);
        let (_, wait99) = percentiles(&tally.waits);
        let (_, inbound99) = percentiles(&tally.inbound);

        let live: HashMap<PeerId, _> = ingress.peers.iter().map(|p| (p.id, p)).collect();
        let mut peers = Vec::new();
        let mut prom_peers = String::new();
        let (mut n_muted, mut n_stopped) = (0, 0);
        for (id, peer) in &tally.peers {
            let seen = live.get(id);
            let rx = seen.map_or_else(
                || self.last_rx.get(id).copied().unwrap_or(0),
                |p| p.received_bytes,
            );
            let before = self.last_rx.get(id).copied().unwrap_or(rx).min(rx);
            let rx_rate = (rx - before) as f64 / MIB / dt;
            self.last_rx.insert(*id, rx);
            let flight = seen.map_or(0, |p| p.in_flight_bytes);
            let state = if !peer.connected {
                "gone"
            } else if peer.conn.is_some_and(|c| muted.contains(&c)) {
                n_muted += 1;
                "muted"
            } else if seen.is_some_and(|p| !p.reading) {
                n_stopped += 1;
                "stopped"
            } else {
                "reading"
            };
            if !peer.connected && flight == 0 && seen.is_none() {
                continue;
            }
            let addr = peer.addr.map_or_else(|| id.to_string(), |a| a.to_string());
            let kind = if peer.legit { "legit" } else { "spammer" };
            peers.push(format!(
                "{{\"id\":{},\"addr\":{},\"kind\":\"{kind}\",\"rx\":{:.2},\"rate\":{:.2},\
                 \"consumed\":{:.2},\"flight\":{:.1},\"state\":\"{state}\"}}",
                id.get(),
                json_str(&addr),
                rx as f64 / MIB,
                rx_rate,
                peer.consumed as f64 / MIB,
                flight as f64 / 1024.0,
            ));
            let labels = format!("peer=\"{addr}\",kind=\"{kind}\"");
            let _ = writeln!(
                prom_peers,
                "abuse_peer_received_bytes_total{{{labels}}} {rx}"
            );
            let _ = writeln!(
                prom_peers,
                "abuse_peer_consumed_bytes_total{{{labels}}} {}",
                peer.consumed
            );
            let _ = writeln!(
                prom_peers,
                "abuse_peer_in_flight_bytes{{{labels}}} {flight}"
            );
            let _ = writeln!(
                prom_peers,
                "abuse_peer_reading{{{labels}}} {}",
                u8::from(state == "reading")
            );
            let _ = writeln!(
                prom_peers,
                "abuse_peer_muted{{{labels}}} {}",
                u8::from(state == "muted")
            );
        }
        let json = format!(
            "{{\"t\":{t:.2},\"qdisc\":\"{:?}\",\"rss\":{rss:.1},\"anon\":{anon:.1},\
             \"consumed\":{rate:.2},\"backlog\":{:.2},\"backlog_items\":{},\"flight\":{:.2},\
             \"p50\":{:.3},\"p99\":{:.3},\"wait_p99\":{:.3},\"inbound_p99\":{:.3},\
             \"muted\":{n_muted},\
             \"stopped\":{n_stopped},\"mutes\":{},\"peers\":[{}]}}",
            self.board.qdisc,
            ingress.queued_bytes as f64 / MIB,
            ingress.queued,
            ingress.in_flight_bytes as f64 / MIB,
            p50 / 1e3,
            p99 / 1e3,
            wait99 / 1e3,
            inbound99 / 1e3,
            metrics.mutes,
            peers.join(",")
        );

        let mut prom = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                prom,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        family(
            "abuse_rss_bytes",
            "gauge",
            "Resident set size.",
            format!("{}", (rss * MIB) as u64),
        );
        family(
            "abuse_anon_bytes",
            "gauge",
            "Anonymous resident memory (heap and stacks).",
            format!("{}", (anon * MIB) as u64),
        );
        family(
            "abuse_consumed_bytes_total",
            "counter",
            "Bytes the consumer is done with.",
            consumed.to_string(),
        );
        family(
            "abuse_payloads_total",
            "counter",
            "Payloads consumed whole.",
            tally.payloads.to_string(),
        );
        family(
            "abuse_requests_total",
            "counter",
            "Requests answered or dropped.",
            tally.requests.to_string(),
        );
        family(
            "abuse_replies_dropped_total",
            "counter",
            "Answers dropped: the peer did not read them.",
            tally.replies_dropped.to_string(),
        );
        family(
            "abuse_backlog_bytes",
            "gauge",
            "Bytes queued in the ingress, not yet taken by the consumer.",
            ingress.queued_bytes.to_string(),
        );
        family(
            "abuse_backlog_items",
            "gauge",
            "Items queued in the ingress.",
            ingress.queued.to_string(),
        );
        family(
            "abuse_in_flight_bytes",
            "gauge",
            "Bytes queued or being consumed.",
            ingress.in_flight_bytes.to_string(),
        );
        family(
            "abuse_legit_rtt_p50_seconds",
            "gauge",
            "Round trip the well-behaved peers reported, median over 2 s.",
            format!("{}", p50 / 1e6),
        );
        family(
            "abuse_legit_rtt_p99_seconds",
            "gauge",
            "Round trip the well-behaved peers reported, 99th percentile over 2 s.",
            format!("{}", p99 / 1e6),
        );
        family(
            "abuse_request_wait_p99_seconds",
            "gauge",
            "Time requests waited in the ingress, 99th percentile over 2 s.",
            format!("{}", wait99 / 1e6),
        );
        family(
            "abuse_request_inbound_p99_seconds",
            "gauge",
            "Time from a request's send to the consumer, 99th percentile over 2 s.",
            format!("{}", inbound99 / 1e6),
        );
        family(
            "rein_mute_snapshot_edges",
            "gauge",
            "Mutes in force in the last mute snapshot.",
            snapshot.edges.len().to_string(),
        );
        family(
            "rein_mute_snapshot_muted",
            "gauge",
            "Muted actors in the last mute snapshot.",
            snapshot.muted.len().to_string(),
        );
        let _ = write!(
            prom,
            "# HELP abuse_peer_received_bytes_total Bytes read from each peer.\n\
             # TYPE abuse_peer_received_bytes_total counter\n\
             # HELP abuse_peer_consumed_bytes_total Bytes of each peer the consumer is done with.\n\
             # TYPE abuse_peer_consumed_bytes_total counter\n\
             # HELP abuse_peer_in_flight_bytes Bytes of each peer queued or being consumed.\n\
             # TYPE abuse_peer_in_flight_bytes gauge\n\
             # HELP abuse_peer_reading Whether the peer's connection is being read (1) or not.\n\
             # TYPE abuse_peer_reading gauge\n\
             # HELP abuse_peer_muted Whether the peer's connection is muted by the runtime.\n\
             # TYPE abuse_peer_muted gauge\n{prom_peers}"
        );
        // The runtime's own figures (rein_*), in the same exposition.
        prom.push_str(&metrics.to_prometheus());
        drop(tally);

        if let Some(file) = self.csv.as_mut() {
            let _ = writeln!(
                file,
                "{t:.2},{rss:.1},{anon:.1},{rate:.2},{:.2},{:.3},{:.3},{:.3}",
                ingress.queued_bytes as f64 / MIB,
                p99 / 1e3,
                inbound99 / 1e3,
                wait99 / 1e3
            );
        }
        self.board.publish(json, prom);
    }
}

impl Actor for Sampler {
    type Msg = ();
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.every(SAMPLE, ());
        self.sample();
    }
    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) {
        self.sample();
    }
}

// ---------------------------------------------------------------- serving

/// Serves the dashboard on 127.0.0.1:`port`; returns the bound address.
pub fn serve(
    reactor: &Reactor,
    auth: &rein::AmbientAuth,
    port: u16,
    board: Arc<Board>,
) -> Result<SocketAddr, BindError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let make = move |_peer| Dash {
        board: board.clone(),
        streaming: false,
        seen: 0,
    };
    http_serve(
        reactor,
        &TcpListenAuth::new(auth),
        addr,
        ServerOptions::default(),
        make,
    )
    .map(|(_listener, bound)| bound)
}

/// One dashboard connection.
struct Dash {
    board: Arc<Board>,
    /// Streaming samples (`/events`).
    streaming: bool,
    /// The last sample sent.
    seen: u64,
}

enum DashMsg {
    /// Time to send the next sample.
    Tick,
    /// A `/hold` is over.
    Held,
}

impl RequestHandler for Dash {
    type Msg = DashMsg;

    fn request(&mut self, http: &mut Http<Self>, req: Request) {
        match req.path() {
            "/" | "/index.html" => {
                let head = Response::new(200)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Cache-Control", "no-store");
                http.send(head, PAGE);
            }
            "/events" => {
                let head = Response::new(200)
                    .header("Content-Type", "text/event-stream")
                    .header("Cache-Control", "no-store");
                http.respond(head); // no length: chunked, for as long as the page is open
                let (seq, history) = self.board.history();
                let _ = http.write(format!("event: history\ndata: {history}\n\n"));
                self.seen = seq;
                self.streaming = true;
                http.after(SAMPLE, DashMsg::Tick);
            }
            "/metrics" => {
                let head = Response::new(200).header("Content-Type", "text/plain; version=0.0.4");
                http.send(head, self.board.lock().metrics.clone());
            }
            "/snapshot" => {
                let head = Response::new(200).header("Content-Type", "application/json");
                http.send(head, self.board.latest().1.unwrap_or_else(|| "{}".into()));
            }
            // Holds the page's load event (for headless captures, which are taken at load):
            // the page asks for `/hold?ms=N` when its own address has `?hold=N`.
            "/hold" => {
                let ms = req
                    .query_param("ms")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(5000u64)
                    .min(60_000);
                http.after(Duration::from_millis(ms), DashMsg::Held);
            }
            _ => {
                http.send(Response::new(404), "not found\n");
            }
        }
    }

    fn message(&mut self, http: &mut Http<Self>, msg: DashMsg) {
        match msg {
            DashMsg::Tick if self.streaming => {
                let (seq, latest) = self.board.latest();
                if seq != self.seen {
                    self.seen = seq;
                    // A page that does not keep up misses samples rather than queue them.
                    if let (Some(json), true) = (latest, http.is_writeable()) {
                        let _ = http.write(format!("data: {json}\n\n"));
                    }
                }
                http.after(SAMPLE, DashMsg::Tick);
            }
            DashMsg::Tick => {}
            DashMsg::Held => {
                let head = Response::new(200).header("Content-Type", "image/svg+xml");
                http.send(head, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
            }
        }
    }
}
