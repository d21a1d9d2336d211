//! # Ingress: queueing disciplines for many connections that feed one consumer
//!
//! A server often gathers what many peers send into one consumer actor. What that consumer's
//! queue does under load is a policy, and the right one depends on the peers:
//!
//! * **[`Unbounded`]**: every connection reads as fast as its peer sends; the queue grows
//!   without limit. One abusive peer sending 16 MiB payloads as fast as it can grows the
//!   server's heap until the operating system kills it. Only for comparison.
//! * **[`Bounded`]**: rein's runtime muting, and what a plain `send` to the consumer gives
//!   you too: once the consumer's mailbox is over its high watermark, every connection that
//!   feeds it is muted and stops reading, and TCP slows their peers down. Memory stays flat,
//!   but an abusive peer slows everybody down: a well-behaved peer's request waits behind the
//!   abuser's data in one FIFO queue, and its connection is muted with the others.
//! * **[`FairPerPeer`]**: each peer has a budget of bytes (or messages) *in flight*: handed to
//!   the ingress and not yet consumed. A peer over its budget stops being read; the others are
//!   read normally meanwhile, and the consumer serves the peer that has had the least service
//!   lately first, so one heavy peer cannot push the others' latency up. Memory is bounded by
//!   the budgets.
//! * **[`RateLimited`]**: a token bucket of bytes per second per peer. A peer over its rate
//!   stops being read until its bucket refills; the consumer's backpressure still applies on
//!   top.
//! * Your own: implement [`Discipline`] (a few lines; see its docs).
//!
//! ## How it fits together
//!
//! ```text
//!  peer ==TCP==> TcpConnection ──Feed::push(conn, item, bytes)──> Ingress ──Ready──> consumer
//!   ^               |  read gate  <── open / close ── Discipline ──pick──> Ingress::take
//!   └── TCP window ─┘                                  ^ Item dropped: consumed
//! ```
//!
//! The connection's handler decodes its input into items and pushes each to its [`Feed`]. The
//! ingress keeps one queue per peer, asks the discipline whether the peer may go on reading
//! ([`Discipline::admit`]), and closes or opens the connection's *read gate* accordingly: a
//! stopped connection neither reads nor delivers what it had read, so its peer is slowed down
//! by TCP and nothing is lost. For every item it sends the consumer one [`Ready`]; the
//! consumer answers each with [`Ingress::take`], which hands it the next item in the order the
//! discipline picks ([`Discipline::pick`]). An [`Item`] is *in flight* until it is dropped:
//! then it counts as consumed, and a peer stopped for having too much in flight may be let go
//! on.
//!
//! Every item of a peer reaches the consumer, in the order the peer sent it, under every
//! discipline: disciplines decide *when* a peer is read and *which* peer is served next,
//! never whether an item is kept.
//!
//! ```
//! use rein::{Actor, Context};
//! use rein_net::ingress::{FairPerPeer, Feed, Ingress, Ready};
//! use rein_net::*;
//! use std::io::Write;
//! use std::sync::mpsc;
//!
//! /// The consumer: one item per `Ready`, in the discipline's order.
//! struct Tally { ingress: Ingress<Bytes>, got: usize, done: mpsc::Sender<usize> }
//! impl Actor for Tally {
//!     type Msg = Ready;
//!     fn handle(&mut self, _ctx: &mut Context<Self>, ready: Ready) {
//!         if let Some(item) = self.ingress.take(ready) {
//!             self.got += item.len(); // `item` derefs to what was pushed
//!             if self.got == 1 << 20 {
//!                 let _ = self.done.send(self.got);
//!             }
//!         } // dropped here: consumed, its peer's budget is freed
//!     }
//! }
//!
//! /// Each connection pushes what it reads.
//! struct Intake(Feed<Bytes>);
//! impl ConnectionHandler for Intake {
//!     type Msg = ();
//!     fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
//!         let len = data.len();
//!         self.0.push(conn, data, len);
//!         Flow::Continue
//!     }
//! }
//!
//! struct Server { ingress: Ingress<Bytes>, addr: mpsc::Sender<std::net::SocketAddr> }
//! impl ListenNotify for Server {
//!     type Handler = Intake;
//!     fn listening(&mut self, addr: std::net::SocketAddr) { let _ = self.addr.send(addr); }
//!     fn connected(&mut self, _peer: std::net::SocketAddr) -> Intake {
//!         Intake(self.ingress.feed())
//!     }
//! }
//!
//! let (rt, auth) = rein::Runtime::builder().build_with_auth().unwrap();
//! let reactor = Reactor::start(&rt.handle()).unwrap();
//! // 256 KiB in flight per peer at most.
//! let ingress = Ingress::new(FairPerPeer::bytes(256 * 1024));
//! let (done, finished) = mpsc::channel();
//! let tally = rt.spawn(Tally { ingress: ingress.clone(), got: 0, done });
//! ingress.deliver_to(tally.recipient());
//! let (tx, rx) = mpsc::channel();
//! let any = "127.0.0.1:0".parse().unwrap();
//! let server = Server { ingress, addr: tx };
//! let listener = TcpListener::bind(&reactor, &TcpListenAuth::new(&auth), any, server, Default::default());
//! let mut peer = std::net::TcpStream::connect(rx.recv().unwrap()).unwrap();
//! peer.write_all(&vec![7u8; 1 << 20]).unwrap();
//! assert_eq!(finished.recv().unwrap(), 1 << 20);
//! drop(peer);
//! listener.close();
//! rt.wait();
//! ```

use crate::connection::gate::{Gate, ReadGate};
use crate::{Conn, ConnectionHandler};
use rein::Recipient;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Identifies one peer (one feeding connection) of an [`Ingress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u64);

impl PeerId {
    /// The number behind it: peers are numbered from 1 in the order they first pushed.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {}", self.0)
    }
}

/// What a [`Discipline`] knows of one peer when it decides: its load now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// Which peer.
    pub id: PeerId,
    /// Its address, if its connection knew it.
    pub addr: Option<SocketAddr>,
    /// Items queued, not yet taken by the consumer.
    pub queued: usize,
    /// Their bytes (as pushed).
    pub queued_bytes: usize,
    /// Items in flight: queued, or taken and not yet dropped by the consumer.
    pub in_flight: usize,
    /// Their bytes.
    pub in_flight_bytes: usize,
    /// Items it pushed so far.
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Bytes of its items the consumer is done with.
    pub consumed_bytes: u64,
    /// The sequence number of its oldest queued item: items of all peers are numbered in the
    /// order they were pushed, so the lowest is the oldest (`None` when nothing is queued).
    pub oldest: Option<u64>,
    /// The bytes of that item (0 when nothing is queued).
    pub oldest_bytes: usize,
    /// Whether its connection may read now (its read gate is open).
    pub reading: bool,
    /// Whether its connection is still open (items of a closed one are still delivered).
    pub connected: bool,
}

/// Whether a peer's connection may go on reading: [`Discipline::admit`]'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Read on.
    Read,
    /// Stop reading until a later answer says [`Read`](Admit::Read). The discipline is asked
    /// again after each of this peer's items is consumed.
    Stop,
    /// Stop reading until this instant, then read on (the connection's own timer reopens it).
    StopUntil(Instant),
}

/// A queueing discipline: when each peer is read, and which peer the consumer serves next.
///
/// # Contract
///
/// * [`admit`](Discipline::admit) is asked after each item of a peer is queued, and, while its
///   last answer was [`Admit::Stop`], after each of its items is consumed. Its answer is acted
///   on at once: a stop takes effect before the connection delivers its next frame.
/// * [`pick`](Discipline::pick) is asked once per item the consumer takes, with every peer
///   that has items queued (never an empty list); it must return one of their ids (anything
///   else is served oldest-first). The item taken is that peer's oldest: a peer's items always
///   reach the consumer in order.
/// * The hooks ([`queued`](Discipline::queued), [`consumed`](Discipline::consumed),
///   [`left`](Discipline::left)) are for disciplines that keep state of their own (a token
///   bucket per peer); the [`Peer`] passed to each already counts the event.
/// * Every method runs under the ingress's lock, on the thread of whoever pushed, took or
///   dropped an item (a connection or the consumer): keep them short, and never block.
/// * A discipline can delay a peer, never lose its data: what a stopped connection has read
///   stays in its buffer, and the rest waits in the kernel and then at the peer.
/// * [`mutes_feeders`](Discipline::mutes_feeders) chooses whether the consumer's own
///   backpressure (rein's muting) also applies to the feeding connections.
///
/// # A discipline of your own
///
/// A quota: each peer may send `quota` bytes over its connection's life, then it is never read
/// again; the consumer serves peers in the order they connected.
///
/// ```
/// use rein_net::ingress::{Admit, Discipline, Peer, PeerId};
/// use std::time::Instant;
///
/// struct Quota { quota: u64 }
///
/// impl Discipline for Quota {
///     fn admit(&mut self, peer: &Peer, _now: Instant) -> Admit {
///         if peer.received_bytes < self.quota { Admit::Read } else { Admit::Stop }
///     }
///     fn pick(&mut self, backlogged: &[&Peer], _now: Instant) -> PeerId {
///         backlogged.iter().map(|p| p.id).min().expect("never empty")
///     }
/// }
/// ```
pub trait Discipline: Send + 'static {
    /// Whether `peer`'s connection may go on reading, given its load now.
    fn admit(&mut self, peer: &Peer, now: Instant) -> Admit;

    /// Which of the `backlogged` peers (those with items queued; never empty) the consumer
    /// gets its next item from. The default is oldest item first (one FIFO across peers).
    fn pick(&mut self, backlogged: &[&Peer], _now: Instant) -> PeerId {
        oldest_first(backlogged)
    }

    /// An item of `bytes` from `peer` was queued.
    fn queued(&mut self, _peer: &Peer, _bytes: usize, _now: Instant) {}

    /// The consumer is done with an item of `bytes` from `peer`.
    fn consumed(&mut self, _peer: &Peer, _bytes: usize, _now: Instant) {}

    /// `peer` is gone: its connection ended and its last item was consumed. Forget its state.
    fn left(&mut self, _peer: PeerId) {}

    /// Whether the feeding connections are also muted by the runtime while the consumer is
    /// overloaded (each [`Ready`] is sent with a plain send, so the consumer's mailbox
    /// watermarks bound the queue). The default is `false`: the wake-ups never mute their
    /// sender, and the discipline alone bounds what is queued.
    fn mutes_feeders(&self) -> bool {
        false
    }
}

/// The peer with the oldest queued item.
fn oldest_first(backlogged: &[&Peer]) -> PeerId {
    backlogged
        .iter()
        .min_by_key(|p| p.oldest.unwrap_or(u64::MAX))
        .map(|p| p.id)
        .expect("pick is never asked with no peer")
}

/// Never stops reading: the queue grows as fast as the peers send. Reproduces the problem an
/// abusive peer causes (the heap grows until the process dies); use it only to compare.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unbounded;

impl Discipline for Unbounded {
    fn admit(&mut self, _peer: &Peer, _now: Instant) -> Admit {
        Admit::Read
    }
}

/// rein's runtime muting, the default behaviour of a server that forwards to one consumer:
/// one FIFO queue, and while the consumer's mailbox (one [`Ready`] per queued item) is over its
/// high watermark every feeding connection is muted and stops reading. Set the watermarks in
/// items with [`Context::set_watermarks`](rein::Context::set_watermarks) in the consumer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounded;

impl Discipline for Bounded {
    fn admit(&mut self, _peer: &Peer, _now: Instant) -> Admit {
        Admit::Read
    }
    fn mutes_feeders(&self) -> bool {
        true
    }
}

/// What [`FairPerPeer`] counts in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Bytes (as pushed).
    Bytes(usize),
    /// Items.
    Messages(usize),
}

/// Each peer may have a budget of bytes or messages in flight (pushed and not yet consumed);
/// a peer over it stops being read until the consumer has caught up with it, while peers
/// within budget are read as usual. The consumer is served least-recently-served peer first
/// (bytes served, decaying with a half-life of one second by default), so a light peer's item
/// goes before a heavy peer's backlog: the heavy peer is slowed down, the others keep their
/// latency.
///
/// A peer can be one item over its budget (the one that took it over); memory is bounded by
/// the sum of the budgets plus one item per peer.
///
/// ```
/// use rein_net::ingress::{FairPerPeer, Ingress};
/// use std::time::Duration;
/// let ingress: Ingress<Vec<u8>> =
///     Ingress::new(FairPerPeer::bytes(256 * 1024).half_life(Duration::from_millis(500)));
/// # drop(ingress);
/// ```
#[derive(Debug, Clone)]
pub struct FairPerPeer {
    budget: Budget,
    half_life: Duration,
    /// Bytes served to each peer, decayed, and when last updated.
    served: HashMap<PeerId, (f64, Instant)>,
}

impl FairPerPeer {
    /// A budget of `bytes` in flight per peer.
    pub fn bytes(bytes: usize) -> Self {
        Self::new(Budget::Bytes(bytes))
    }

    /// A budget of `items` in flight per peer.
    pub fn messages(items: usize) -> Self {
        Self::new(Budget::Messages(items))
    }

    /// A budget of either kind.
    pub fn new(budget: Budget) -> Self {
        FairPerPeer {
            budget,
            half_life: Duration::from_secs(1),
            served: HashMap::new(),
        }
    }

    /// How fast past service is forgotten when choosing whom to serve next (default 1 s).
    pub fn half_life(mut self, half_life: Duration) -> Self {
        self.half_life = half_life.max(Duration::from_millis(1));
        self
    }

    /// Service of `peer` as of `now`.
    fn service(&self, peer: PeerId, now: Instant) -> f64 {
        self.served.get(&peer).map_or(0.0, |&(bytes, at)| {
            let age = now.saturating_duration_since(at).as_secs_f64();
            bytes * 0.5f64.powf(age / self.half_life.as_secs_f64())
        })
    }
}

impl Discipline for FairPerPeer {
    fn admit(&mut self, peer: &Peer, _now: Instant) -> Admit {
        let within = match self.budget {
            Budget::Bytes(max) => peer.in_flight_bytes < max,
            Budget::Messages(max) => peer.in_flight < max,
        };
        if within {
            Admit::Read
        } else {
            Admit::Stop
        }
    }

    fn pick(&mut self, backlogged: &[&Peer], now: Instant) -> PeerId {
        let chosen = backlogged
            .iter()
            .min_by(|a, b| {
                let (sa, sb) = (self.service(a.id, now), self.service(b.id, now));
                sa.total_cmp(&sb).then(a.oldest.cmp(&b.oldest))
            })
            .expect("pick is never asked with no peer");
        let served = self.service(chosen.id, now) + chosen.oldest_bytes.max(1) as f64;
        self.served.insert(chosen.id, (served, now));
        chosen.id
    }

    fn left(&mut self, peer: PeerId) {
        self.served.remove(&peer);
    }
}

/// A token bucket per peer: at most `bytes_per_sec` on average, in bursts of at most `burst`
/// bytes (default: a tenth of a second's worth, at least 64 KiB). A peer that has used up its
/// bucket stops being read until it has refilled. The consumer's backpressure applies too
/// ([`mutes_feeders`](Discipline::mutes_feeders)), so peers that are each within their rate
/// but together too fast for the consumer are muted as with [`Bounded`].
///
/// ```
/// use rein_net::ingress::{Ingress, RateLimited};
/// let ingress: Ingress<Vec<u8>> = Ingress::new(RateLimited::new(1 << 20).burst(128 * 1024));
/// # drop(ingress);
/// ```
#[derive(Debug, Clone)]
pub struct RateLimited {
    rate: f64,
    burst: f64,
    /// Tokens (bytes) in each peer's bucket, and when last refilled.
    buckets: HashMap<PeerId, (f64, Instant)>,
}

impl RateLimited {
    /// At most `bytes_per_sec` per peer.
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimited {
            rate,
            burst: (rate / 10.0).max(64.0 * 1024.0),
            buckets: HashMap::new(),
        }
    }

    /// The largest burst a rested peer may send at once, in bytes.
    pub fn burst(mut self, bytes: u64) -> Self {
        self.burst = bytes.max(1) as f64;
        self
    }

    /// `peer`'s bucket, refilled up to `now`.
    fn bucket(&mut self, peer: PeerId, now: Instant) -> &mut f64 {
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, at) = self.buckets.entry(peer).or_insert((burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * rate).min(burst);
        *at = now;
        tokens
    }
}

impl Discipline for RateLimited {
    fn admit(&mut self, peer: &Peer, now: Instant) -> Admit {
        let rate = self.rate;
        let tokens = *self.bucket(peer.id, now);
        if tokens >= 0.0 {
            Admit::Read
        } else {
            Admit::StopUntil(now + Duration::from_secs_f64(-tokens / rate))
        }
    }

    fn queued(&mut self, peer: &Peer, bytes: usize, now: Instant) {
        *self.bucket(peer.id, now) -= bytes as f64;
    }

    fn left(&mut self, peer: PeerId) {
        self.buckets.remove(&peer);
    }

    fn mutes_feeders(&self) -> bool {
        true
    }
}

/// A wake-up for the consumer: one is sent per item pushed; answer each with
/// [`Ingress::take`]. Opaque, so that only the ingress makes them.
#[derive(Debug)]
pub struct Ready(());

/// One item a peer sent, handed to the consumer by [`Ingress::take`]. It derefs to the value
/// pushed. It is *in flight* until dropped: dropping it tells the ingress the consumer is done
/// with it (a peer stopped for having too much in flight may then read on). Keep it for as
/// long as the work on it lasts, even across actors: it is `Send`.
pub struct Item<T: Send + 'static> {
    value: Option<T>,
    peer: PeerId,
    bytes: usize,
    shared: Arc<Shared<T>>,
}

impl<T: Send + 'static> Item<T> {
    /// Who sent it.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Its size, as pushed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes the value out; the item still counts as in flight until it is dropped.
    pub fn take(&mut self) -> Option<T> {
        self.value.take()
    }
}

impl<T: Send + 'static> Deref for Item<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("the value was taken out")
    }
}

impl<T: Send + 'static> DerefMut for Item<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("the value was taken out")
    }
}

impl<T: Send + 'static> Drop for Item<T> {
    fn drop(&mut self) {
        self.shared.consumed(self.peer, self.bytes);
    }
}

impl<T: Send + 'static> fmt::Debug for Item<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("peer", &self.peer)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// A snapshot of an [`Ingress`] (see [`Ingress::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngressStats {
    /// Items queued, not yet taken.
    pub queued: usize,
    /// Their bytes.
    pub queued_bytes: usize,
    /// Bytes in flight: queued, or taken and not yet dropped.
    pub in_flight_bytes: usize,
    /// Items taken by the consumer so far.
    pub taken: u64,
    /// Bytes of items the consumer is done with so far.
    pub consumed_bytes: u64,
    /// Every peer the ingress still knows: connected, or with items in flight.
    pub peers: Vec<Peer>,
}

/// One peer's queue and its connection's gate.
struct Slot<T> {
    peer: Peer,
    items: VecDeque<(u64, usize, T)>,
    gate: Option<Arc<ReadGate>>,
    /// The last answer was [`Admit::Stop`]: ask again at each consumption.
    stopped: bool,
}

struct Inner<T> {
    discipline: Box<dyn Discipline>,
    slots: HashMap<PeerId, Slot<T>>,
    /// Peers with items queued.
    backlogged: Vec<PeerId>,
    next_seq: u64,
    next_peer: u64,
    /// Where the wake-ups go, and how many are owed to it from before it was known.
    consumer: Option<Recipient<Ready>>,
    owed: usize,
    stats: IngressStats,
}

struct Shared<T> {
    inner: Mutex<Inner<T>>,
}

impl<T: Send + 'static> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic in a discipline poisons the lock; the state is still consistent between
        // calls (each call updates the counters before asking the discipline).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumer is done with an item of `bytes` from `id`.
    fn consumed(&self, id: PeerId, bytes: usize) {
        let mut open = None;
        {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let now = Instant::now();
            inner.stats.in_flight_bytes -= bytes;
            inner.stats.consumed_bytes += bytes as u64;
            let Some(slot) = inner.slots.get_mut(&id) else {
                return;
            };
            slot.peer.in_flight -= 1;
            slot.peer.in_flight_bytes -= bytes;
            slot.peer.consumed_bytes += bytes as u64;
            inner.discipline.consumed(&slot.peer, bytes, now);
            if slot.stopped {
                let answer = inner.discipline.admit(&slot.peer, now);
                slot.stopped = apply(slot, answer, &mut open);
            }
            if !slot.peer.connected && slot.peer.in_flight == 0 {
                inner.slots.remove(&id);
                inner.discipline.left(id);
            }
        }
        if let Some(gate) = open {
            gate.open();
        }
    }
}

/// Acts on a discipline's answer for `slot`'s gate; a gate to open is handed back in `open`
/// (opened once the lock is released, since opening wakes the connection). Returns whether the
/// peer is now stopped until a consumption.
fn apply<T>(slot: &mut Slot<T>, answer: Admit, open: &mut Option<Arc<ReadGate>>) -> bool {
    slot.peer.reading = answer == Admit::Read;
    let Some(gate) = &slot.gate else {
        return false;
    };
    match answer {
        Admit::Read => {
            if gate.at(Instant::now()) != Gate::Open {
                *open = Some(gate.clone());
            }
            false
        }
        Admit::Stop => {
            gate.close();
            true
        }
        Admit::StopUntil(at) => {
            gate.close_until(at);
            false
        }
    }
}

/// The consumer's side of an ingress, and the maker of [`Feed`]s: a cheap, cloneable handle
/// (see the [module docs](self)).
pub struct Ingress<T: Send + 'static> {
    shared: Arc<Shared<T>>,
}

impl<T: Send + 'static> Clone for Ingress<T> {
    fn clone(&self) -> Self {
        Ingress {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Ingress<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("Ingress")
            .field("peers", &inner.slots.len())
            .field("queued", &inner.stats.queued)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Ingress<T> {
    /// An ingress run by `discipline`. Tell it where its consumer is with
    /// [`deliver_to`](Ingress::deliver_to).
    pub fn new(discipline: impl Discipline) -> Self {
        Ingress {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    discipline: Box::new(discipline),
                    slots: HashMap::new(),
                    backlogged: Vec::new(),
                    next_seq: 0,
                    next_peer: 1,
                    consumer: None,
                    owed: 0,
                    stats: IngressStats::default(),
                }),
            }),
        }
    }

    /// Sends the consumer's wake-ups ([`Ready`], one per item) to `consumer`, including those
    /// owed for items pushed before it was known. Call it once the consumer is spawned (it
    /// usually holds a clone of this ingress, so it cannot be given at [`new`](Ingress::new)).
    pub fn deliver_to(&self, consumer: Recipient<Ready>) {
        let (owed, mutes) = {
            let mut inner = self.shared.lock();
            inner.consumer = Some(consumer.clone());
            (
                std::mem::take(&mut inner.owed),
                inner.discipline.mutes_feeders(),
            )
        };
        for _ in 0..owed {
            wake(&consumer, mutes);
        }
    }

    /// A feed for one connection: its handler pushes what the peer sent through it. Make one
    /// per connection (in [`ListenNotify::connected`](crate::ListenNotify::connected)).
    pub fn feed(&self) -> Feed<T> {
        Feed {
            shared: self.shared.clone(),
            peer: None,
        }
    }

    /// The next item, in the discipline's order, for a wake-up: call it once per [`Ready`]
    /// the consumer receives. `None` only if no item is queued (which a wake-up from this
    /// ingress never finds).
    pub fn take(&self, ready: Ready) -> Option<Item<T>> {
        let Ready(()) = ready;
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        if inner.backlogged.is_empty() {
            return None;
        }
        let now = Instant::now();
        let chosen = {
            let backlogged: Vec<&Peer> = inner
                .backlogged
                .iter()
                .map(|id| &inner.slots[id].peer)
                .collect();
            let chosen = inner.discipline.pick(&backlogged, now);
            if backlogged.iter().any(|p| p.id == chosen) {
                chosen
            } else {
                oldest_first(&backlogged)
            }
        };
        let slot = inner.slots.get_mut(&chosen).expect("backlogged");
        let (_, bytes, value) = slot.items.pop_front().expect("backlogged");
        slot.peer.queued -= 1;
        slot.peer.queued_bytes -= bytes;
        slot.peer.oldest = slot.items.front().map(|&(seq, _, _)| seq);
        slot.peer.oldest_bytes = slot.items.front().map_or(0, |&(_, b, _)| b);
        if slot.items.is_empty() {
            inner.backlogged.retain(|&id| id != chosen);
        }
        inner.stats.queued -= 1;
        inner.stats.queued_bytes -= bytes;
        inner.stats.taken += 1;
        Some(Item {
            value: Some(value),
            peer: chosen,
            bytes,
            shared: self.shared.clone(),
        })
    }

    /// The figures now, and every peer's load (whether it is being read included): for
    /// dashboards and tests. Costs a lock and a copy of each peer's figures.
    pub fn stats(&self) -> IngressStats {
        let inner = self.shared.lock();
        let now = Instant::now();
        let mut stats = inner.stats.clone();
        stats.peers = inner
            .slots
            .values()
            .map(|slot| Peer {
                reading: slot
                    .gate
                    .as_ref()
                    .map_or(true, |gate| gate.at(now) == Gate::Open),
                ..slot.peer.clone()
            })
            .collect();
        stats.peers.sort_by_key(|p| p.id);
        stats
    }
}

/// Sends one wake-up.
fn wake(consumer: &Recipient<Ready>, mutes_feeders: bool) {
    let _ = if mutes_feeders {
        consumer.send(Ready(()))
    } else {
        consumer.send_ignoring_pressure(Ready(()))
    };
}

/// One connection's way into an [`Ingress`]: its handler pushes each item it decodes. Dropped
/// with the handler when the connection ends; its items still queued reach the consumer.
pub struct Feed<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    peer: Option<PeerId>,
}

impl<T: Send + 'static> Feed<T> {
    /// Queues `value` (of `bytes`, as the discipline should count it) from this connection's
    /// peer, wakes the consumer, and stops the connection's reading if the discipline says so:
    /// then no more frames are delivered (and nothing is read) until it says read on. Call it
    /// from the handler's callbacks, typically [`received`](ConnectionHandler::received).
    pub fn push<H: ConnectionHandler>(
        &mut self,
        conn: &mut Conn<'_, '_, H>,
        value: T,
        bytes: usize,
    ) {
        let mut open = None;
        let (consumer, mutes) = {
            let mut inner = self.shared.lock();
            let inner = &mut *inner;
            let now = Instant::now();
            let id = *self.peer.get_or_insert_with(|| {
                let id = PeerId(inner.next_peer);
                inner.next_peer += 1;
                let slot = Slot {
                    peer: Peer {
                        id,
                        addr: conn.peer_addr(),
                        queued: 0,
                        queued_bytes: 0,
                        in_flight: 0,
                        in_flight_bytes: 0,
                        received: 0,
                        received_bytes: 0,
                        consumed_bytes: 0,
                        oldest: None,
                        oldest_bytes: 0,
                        reading: true,
                        connected: true,
                    },
                    items: VecDeque::new(),
                    gate: Some(conn.read_gate()),
                    stopped: false,
                };
                inner.slots.insert(id, slot);
                id
            });
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let slot = inner.slots.get_mut(&id).expect("joined");
            if slot.items.is_empty() {
                inner.backlogged.push(id);
                slot.peer.oldest = Some(seq);
                slot.peer.oldest_bytes = bytes;
            }
            slot.items.push_back((seq, bytes, value));
            let peer = &mut slot.peer;
            peer.queued += 1;
            peer.queued_bytes += bytes;
            peer.in_flight += 1;
            peer.in_flight_bytes += bytes;
            peer.received += 1;
            peer.received_bytes += bytes as u64;
            inner.stats.queued += 1;
            inner.stats.queued_bytes += bytes;
            inner.stats.in_flight_bytes += bytes;
            inner.discipline.queued(&slot.peer, bytes, now);
            let answer = inner.discipline.admit(&slot.peer, now);
            slot.stopped = apply(slot, answer, &mut open);
            if inner.consumer.is_none() {
                inner.owed += 1;
            }
            (inner.consumer.clone(), inner.discipline.mutes_feeders())
        };
        if let Some(gate) = open {
            // Closed earlier and pushed to from outside a delivery: read on.
            gate.open();
        }
        if let Some(consumer) = consumer {
            wake(&consumer, mutes);
        }
    }

    /// The peer this feed pushes for, once it has pushed.
    pub fn peer(&self) -> Option<PeerId> {
        self.peer
    }
}

impl<T: Send + 'static> Drop for Feed<T> {
    fn drop(&mut self) {
        let Some(id) = self.peer else {
            return;
        };
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        let Some(slot) = inner.slots.get_mut(&id) else {
            return;
        };
        slot.peer.connected = false;
        slot.gate = None;
        if slot.peer.in_flight == 0 {
            inner.slots.remove(&id);
            inner.discipline.left(id);
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Feed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed").field("peer", &self.peer).finish()
    }
}
