//! [`Broadcast`]: a publish-subscribe actor that one slow subscriber cannot stall.
//!
//! Why: the obvious fan-out, an actor that sends each message to every subscriber, is muted by
//! the runtime as soon as one subscriber is behind (a connection whose peer stopped reading is
//! under pressure), and then *every* subscriber stops getting messages. That is right for a
//! pipeline, where the slowest stage should set the pace, and wrong for a chat room or a feed,
//! where one slow reader should only cost itself. So each subscriber chooses what happens when
//! it is behind ([`SlowSubscriber`]): the broadcast waits for it (rein's default), skips it and
//! counts, skips it and later tells it how many it missed, or removes it.
//!
//! "Behind" is the subscriber's own pressure signal, [`Recipient::is_pressured`]: its mailbox
//! is over its high watermark, or it applied backpressure (a `rein-net` connection does while
//! its write queue is over the high watermark). The broadcast reads it before each delivery
//! and never sends to a pressured subscriber except under [`SlowSubscriber::Mute`], so it is
//! never muted on the others' behalf. A connection fed by a broadcast should have mailbox
//! watermarks that absorb a burst of publishes
//! ([`ConnectionOptions::mailbox_watermarks`](crate::ConnectionOptions::mailbox_watermarks)),
//! or a burst alone counts as being behind.
//!
//! ```
//! use rein::{Actor, Context, Runtime};
//! use rein_net::broadcast::{Broadcast, BroadcastMsg, SlowSubscriber, Subscriber};
//!
//! struct Screen(&'static str);
//! impl Actor for Screen {
//!     type Msg = String;
//!     fn handle(&mut self, _: &mut Context<Self>, line: String) {
//!         println!("{}: {line}", self.0);
//!     }
//! }
//!
//! let rt = Runtime::new().unwrap();
//! let room = rt.spawn(Broadcast::<String>::new());
//! for name in ["ada", "bob"] {
//!     let screen = rt.spawn(Screen(name)).recipient();
//!     let lagging = SlowSubscriber::lag(|missed| format!("({missed} lines skipped)"));
//!     room.send(BroadcastMsg::Subscribe(Subscriber::new(screen).when_slow(lagging))).unwrap();
//! }
//! room.send(BroadcastMsg::Publish("hello".to_string())).unwrap();
//! rt.wait();
//! ```

use rein::{Actor, ActorId, Context, Recipient, ReplyTo, TrySendError};
use std::fmt;
use std::time::{Duration, Instant};

/// What a [`Broadcast`] does with a subscriber that is behind ([`Recipient::is_pressured`])
/// when a message is published.
#[non_exhaustive]
pub enum SlowSubscriber<M> {
    /// Sends anyway, with a plain send: the broadcast is muted until the subscriber catches up,
    /// and with it every other subscriber waits. Nothing is lost; the slowest sets the pace.
    /// Right for a pipeline, wrong for a room.
    Mute,
    /// Skips it: the subscriber misses the message, and the broadcast counts it
    /// ([`BroadcastStats::dropped`]).
    DropNewest,
    /// Skips it, and once it has caught up sends it `notice(missed)` before the next message,
    /// so it knows how many it missed (like tokio's broadcast `Lagged`).
    Lag(Box<dyn Fn(u64) -> M + Send>),
    /// Skips it, and removes it once it has been behind for longer than `after` (measured from
    /// the first message it missed since its last delivery; `Duration::ZERO`: at the first
    /// miss). Its [`on_removed`](Subscriber::on_removed) hook runs, typically to disconnect the
    /// peer, like IRC's "Max SendQ exceeded". A grace period rather than a count, because a
    /// healthy subscriber can be behind for a burst of publishes while it waits for a core.
    Disconnect {
        /// How long it may stay behind.
        after: Duration,
    },
}

impl<M> SlowSubscriber<M> {
    /// [`SlowSubscriber::Lag`] with `notice` as the message that tells a subscriber how many it
    /// missed.
    pub fn lag(notice: impl Fn(u64) -> M + Send + 'static) -> Self {
        SlowSubscriber::Lag(Box::new(notice))
    }
}

impl<M> fmt::Debug for SlowSubscriber<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlowSubscriber::Mute => f.write_str("Mute"),
            SlowSubscriber::DropNewest => f.write_str("DropNewest"),
            SlowSubscriber::Lag(_) => f.write_str("Lag(..)"),
            SlowSubscriber::Disconnect { after } => {
                write!(f, "Disconnect {{ after: {after:?} }}")
            }
        }
    }
}

/// Why a subscriber left a [`Broadcast`] (told to its [`on_removed`](Subscriber::on_removed)
/// hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removed {
    /// It missed more messages in a row than its [`SlowSubscriber::Disconnect`] allows.
    TooSlow,
    /// The actor behind it has stopped.
    Gone,
    /// [`BroadcastMsg::Unsubscribe`].
    Unsubscribed,
}

type OnRemoved = Box<dyn FnOnce(Removed) + Send>;

/// One subscriber of a [`Broadcast`]: an address and its policy for when it is behind.
pub struct Subscriber<M> {
    to: Recipient<M>,
    when_slow: SlowSubscriber<M>,
    on_removed: Option<OnRemoved>,
    /// Messages missed since the last delivery.
    missed: u64,
    /// When it missed the first of them.
    behind_since: Option<Instant>,
}

impl<M: Send + 'static> Subscriber<M> {
    /// A subscriber at `to`, with rein's default policy ([`SlowSubscriber::Mute`]).
    pub fn new(to: Recipient<M>) -> Self {
        Subscriber {
            to,
            when_slow: SlowSubscriber::Mute,
            on_removed: None,
            missed: 0,
            behind_since: None,
        }
    }

    /// What to do when it is behind.
    pub fn when_slow(mut self, policy: SlowSubscriber<M>) -> Self {
        self.when_slow = policy;
        self
    }

    /// Runs `hook` (inside the broadcast's behaviour) when it leaves the broadcast, with why:
    /// a chat closes the peer's connection here. Keep it short; send with
    /// [`send_ignoring_pressure`](Recipient::send_ignoring_pressure) or `try_send` from it,
    /// or the broadcast may be muted on whatever it sends to.
    pub fn on_removed(mut self, hook: impl FnOnce(Removed) + Send + 'static) -> Self {
        self.on_removed = Some(Box::new(hook));
        self
    }

    /// The identity of the actor behind it (what [`BroadcastMsg::Unsubscribe`] takes).
    pub fn id(&self) -> ActorId {
        self.to.id()
    }
}

impl<M> fmt::Debug for Subscriber<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("to", &self.to)
            .field("when_slow", &self.when_slow)
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}

/// What a [`Broadcast`] has done (see [`BroadcastMsg::Stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastStats {
    /// Subscribers now.
    pub subscribers: usize,
    /// Messages published.
    pub published: u64,
    /// Deliveries made (a message to one subscriber), notices of missed messages included.
    pub delivered: u64,
    /// Deliveries skipped because the subscriber was behind.
    pub dropped: u64,
    /// Subscribers removed for being too slow.
    pub disconnected: u64,
}

/// What a [`Broadcast`] handles.
pub enum BroadcastMsg<M> {
    /// Sends a clone of the message to every subscriber, each by its own policy.
    Publish(M),
    /// Adds a subscriber.
    Subscribe(Subscriber<M>),
    /// Removes the subscriber whose actor has this identity; its hook hears
    /// [`Removed::Unsubscribed`].
    Unsubscribe(ActorId),
    /// Answers with the broadcast's figures.
    Stats(ReplyTo<BroadcastStats>),
}

impl<M> fmt::Debug for BroadcastMsg<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastMsg::Publish(_) => f.write_str("Publish(..)"),
            BroadcastMsg::Subscribe(s) => write!(f, "Subscribe({:?})", s.to),
            BroadcastMsg::Unsubscribe(id) => write!(f, "Unsubscribe({id})"),
            BroadcastMsg::Stats(_) => f.write_str("Stats"),
        }
    }
}

/// A publish-subscribe actor: every published message goes to every subscriber, each with its
/// own policy for when it is behind (see the [module docs](self)). Spawn it like any actor and
/// send it [`BroadcastMsg`]s.
pub struct Broadcast<M> {
    subscribers: Vec<Subscriber<M>>,
    stats: BroadcastStats,
}

impl<M: Clone + Send + 'static> Broadcast<M> {
    /// A broadcast with no subscribers.
    pub fn new() -> Self {
        Broadcast {
            subscribers: Vec::new(),
            stats: BroadcastStats::default(),
        }
    }

    fn publish(&mut self, msg: M) {
        self.stats.published += 1;
        let stats = &mut self.stats;
        let mut removed = Vec::new();
        self.subscribers
            .retain_mut(|sub| match deliver(sub, &msg, stats) {
                Ok(()) => true,
                Err(why) => {
                    removed.push((sub.on_removed.take(), why));
                    false
                }
            });
        for (hook, why) in removed {
            if why == Removed::TooSlow {
                self.stats.disconnected += 1;
            }
            if let Some(hook) = hook {
                hook(why);
            }
        }
    }
}

/// Delivers `msg` to one subscriber by its policy; `Err` removes it.
fn deliver<M: Clone + Send + 'static>(
    sub: &mut Subscriber<M>,
    msg: &M,
    stats: &mut BroadcastStats,
) -> Result<(), Removed> {
    if sub.to.is_stopped() {
        return Err(Removed::Gone);
    }
    if let SlowSubscriber::Mute = sub.when_slow {
        stats.delivered += 1;
        return sub.to.send(msg.clone()).map_err(|_| Removed::Gone);
    }
    if sub.to.is_pressured() {
        sub.missed += 1;
        stats.dropped += 1;
        let since = *sub.behind_since.get_or_insert_with(Instant::now);
        return match sub.when_slow {
            SlowSubscriber::Disconnect { after } if since.elapsed() >= after => {
                Err(Removed::TooSlow)
            }
            _ => Ok(()),
        };
    }
    if let (SlowSubscriber::Lag(notice), true) = (&sub.when_slow, sub.missed > 0) {
        let notice = notice(sub.missed);
        if sub
            .to
            .try_send(notice)
            .is_err_and(|refused| refused.is_closed())
        {
            return Err(Removed::Gone);
        }
        stats.delivered += 1;
    }
    sub.missed = 0;
    sub.behind_since = None;
    match sub.to.try_send(msg.clone()) {
        Ok(()) => {
            stats.delivered += 1;
            Ok(())
        }
        Err(TrySendError::Pressured(_)) => {
            // The notice just filled it: this one counts as missed.
            sub.missed = 1;
            sub.behind_since = Some(Instant::now());
            stats.dropped += 1;
            Ok(())
        }
        // Stopped, or the runtime has ended (never `OnWorkerThread`: `try_send` does not wait).
        Err(_) => Err(Removed::Gone),
    }
}

impl<M: Clone + Send + 'static> Default for Broadcast<M> {
    fn default() -> Self {
        Broadcast::new()
    }
}

impl<M: Clone + Send + 'static> Actor for Broadcast<M> {
    type Msg = BroadcastMsg<M>;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: BroadcastMsg<M>) {
        match msg {
            BroadcastMsg::Publish(msg) => self.publish(msg),
            BroadcastMsg::Subscribe(sub) => self.subscribers.push(sub),
            BroadcastMsg::Unsubscribe(id) => {
                if let Some(at) = self.subscribers.iter().position(|s| s.id() == id) {
                    let mut sub = self.subscribers.swap_remove(at);
                    if let Some(hook) = sub.on_removed.take() {
                        hook(Removed::Unsubscribed);
                    }
                }
            }
            BroadcastMsg::Stats(reply) => {
                let _ = reply.send(BroadcastStats {
                    subscribers: self.subscribers.len(),
                    ..self.stats
                });
            }
        }
    }
}

impl<M> fmt::Debug for Broadcast<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("subscribers", &self.subscribers.len())
            .field("stats", &self.stats)
            .finish()
    }
}
