//! Shared helpers for the benches: the actors that `benches/runtime.rs` measures.
//!
//! Every workload answers the bench through a [`ReplyTo`] once it is done, so one runtime can
//! serve many iterations: the bench thread sends a request with [`ActorRef::ask`] and blocks
//! until the actors have finished the batch.

use rein::{Actor, ActorRef, Context, ReplyTo, Runtime};
use std::time::Duration;

/// How long a bench waits for one batch before it gives up.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// Messages a [`Producer`] sends per turn before it sends itself [`ProducerMsg::Continue`].
pub const CHUNK: u64 = 1000;

/// Counts what it receives.
#[derive(Debug, Default)]
pub struct Sink {
    count: u64,
}

/// What a [`Sink`] receives.
#[derive(Debug)]
pub enum SinkMsg {
    /// One item to count.
    Item(u64),
    /// Answer with the count so far. It arrives after every item sent before it by the same
    /// sender, so the answer means they have all been handled.
    Flush(ReplyTo<u64>),
}

impl Actor for Sink {
    type Msg = SinkMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: SinkMsg) {
        match msg {
            SinkMsg::Item(n) => {
                std::hint::black_box(n);
                self.count += 1;
            }
            SinkMsg::Flush(reply) => {
                let _ = reply.send(self.count);
            }
        }
    }
}

/// Sends batches of items to a [`Sink`] from inside the runtime, [`CHUNK`] per turn.
#[derive(Debug)]
pub struct Producer {
    sink: ActorRef<Sink>,
    left: u64,
    reply: Option<ReplyTo<u64>>,
}

impl Producer {
    /// A producer feeding `sink`.
    pub fn new(sink: ActorRef<Sink>) -> Self {
        Producer {
            sink,
            left: 0,
            reply: None,
        }
    }
}

/// What a [`Producer`] receives.
#[derive(Debug)]
pub enum ProducerMsg {
    /// Send `items` to the sink, then have the sink answer `reply` with its count.
    Run {
        /// Items to send.
        items: u64,
        /// Answered by the sink once it has handled them all.
        reply: ReplyTo<u64>,
    },
    /// Send the next chunk.
    Continue,
}

impl Actor for Producer {
    type Msg = ProducerMsg;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: ProducerMsg) {
        if let ProducerMsg::Run { items, reply } = msg {
            self.left = items;
            self.reply = Some(reply);
        }
        let n = self.left.min(CHUNK);
        for i in 0..n {
            let _ = self.sink.send(SinkMsg::Item(i));
        }
        self.left -= n;
        if self.left > 0 {
            let _ = ctx.myself().send(ProducerMsg::Continue);
        } else if let Some(reply) = self.reply.take() {
            let _ = self.sink.send(SinkMsg::Flush(reply));
        }
    }
}

/// The side of a ping-pong pair that counts round trips and answers the bench.
#[derive(Debug)]
pub struct Pinger {
    ponger: ActorRef<Ponger>,
    left: u64,
    reply: Option<ReplyTo<u64>>,
}

/// What a [`Pinger`] receives.
#[derive(Debug)]
pub enum PingMsg {
    /// Play `round_trips`, then answer `reply` with the number played.
    Run {
        /// Round trips to play.
        round_trips: u64,
        /// Answered once they are done.
        reply: ReplyTo<u64>,
    },
    /// The ball is back.
    Ball,
}

impl Actor for Pinger {
    type Msg = PingMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: PingMsg) {
        match msg {
            PingMsg::Run { round_trips, reply } => {
                self.left = round_trips;
                self.reply = Some(reply);
            }
            PingMsg::Ball => self.left -= 1,
        }
        if self.left > 0 {
            let _ = self.ponger.send(PongMsg::Ball);
        } else if let Some(reply) = self.reply.take() {
            let _ = reply.send(0);
        }
    }
}

/// The side of a ping-pong pair that sends every ball straight back.
#[derive(Debug, Default)]
pub struct Ponger {
    pinger: Option<ActorRef<Pinger>>,
}

/// What a [`Ponger`] receives.
#[derive(Debug)]
pub enum PongMsg {
    /// Setup: where to send balls back.
    Peer(ActorRef<Pinger>),
    /// A ball to return.
    Ball,
}

impl Actor for Ponger {
    type Msg = PongMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: PongMsg) {
        match msg {
            PongMsg::Peer(pinger) => self.pinger = Some(pinger),
            PongMsg::Ball => {
                if let Some(pinger) = &self.pinger {
                    let _ = pinger.send(PingMsg::Ball);
                }
            }
        }
    }
}

/// Spawns a connected ping-pong pair and returns the pinger.
pub fn spawn_pingpong(rt: &Runtime) -> ActorRef<Pinger> {
    let ponger = rt.spawn(Ponger::default());
    let pinger = rt.spawn(Pinger {
        ponger: ponger.clone(),
        left: 0,
        reply: None,
    });
    ponger
        .send(PongMsg::Peer(pinger.clone()))
        .expect("fresh actor accepts messages");
    pinger
}

/// An actor that does nothing with its messages.
#[derive(Debug, Default)]
pub struct Noop;

impl Actor for Noop {
    type Msg = u64;

    fn handle(&mut self, _ctx: &mut Context<Self>, n: u64) {
        std::hint::black_box(n);
    }
}

/// Spawns `children` [`Noop`]s from inside the runtime and sends each one message.
#[derive(Debug, Default)]
pub struct Spawner;

impl Actor for Spawner {
    /// How many children to spawn.
    type Msg = u64;

    fn handle(&mut self, ctx: &mut Context<Self>, children: u64) {
        for i in 0..children {
            let _ = ctx.spawn(Noop).send(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Runtime {
        Runtime::builder().threads(2).build().unwrap()
    }

    #[test]
    fn sink_counts_items_sent_from_outside() {
        let rt = runtime();
        let sink = rt.spawn(Sink::default());
        for i in 0..5000 {
            sink.send(SinkMsg::Item(i)).unwrap();
        }
        assert_eq!(sink.ask(SinkMsg::Flush, ASK_TIMEOUT), Ok(5000));
    }

    #[test]
    fn producer_delivers_every_item_before_the_flush() {
        let rt = runtime();
        let sink = rt.spawn(Sink::default());
        let producer = rt.spawn(Producer::new(sink));
        for round in 1..=3 {
            let got = producer.ask(|reply| ProducerMsg::Run { items: 2500, reply }, ASK_TIMEOUT);
            assert_eq!(got, Ok(2500 * round));
        }
    }

    #[test]
    fn pingpong_answers_after_the_round_trips() {
        let rt = runtime();
        let pinger = spawn_pingpong(&rt);
        let got = pinger.ask(
            |reply| PingMsg::Run {
                round_trips: 1000,
                reply,
            },
            ASK_TIMEOUT,
        );
        assert_eq!(got, Ok(0));
        drop(pinger);
        let report = rt.wait();
        // Peer + Run + 1000 balls each way.
        assert_eq!(report.metrics.messages(), 2002);
    }

    #[test]
    fn spawner_spawns_and_messages_every_child() {
        let rt = runtime();
        rt.spawn(Spawner).send(100).unwrap();
        let report = rt.wait();
        assert!(report.quiescent);
        assert_eq!(report.metrics.spawned, 101);
        assert_eq!(report.metrics.messages(), 101);
    }
}
