//! # rein-backpressure: report pressure from outside the runtime
//!
//! The rein scheduler mutes actors that send to an overloaded mailbox. Some pressure is
//! invisible to it: a socket whose kernel buffer is full, an internal buffer that grew too big,
//! a downstream service that asked you to slow down. With this crate an actor reports that
//! pressure itself: [`Backpressure::apply`] marks the actor whose behaviour is running as under
//! pressure, and from then on every actor that sends to it is muted exactly as if its mailbox
//! were overloaded (muting cascades upstream). [`Backpressure::release`] clears it and unmutes
//! them, at a cost of O(muted senders).
//!
//! Applying pressure is a power over the whole runtime, so it needs an
//! [`ApplyReleaseBackpressureAuth`], which only [`AmbientAuth`] (minted by the runtime for the
//! program's entry point, see [`rein::Builder::build_with_auth`]) can create.
//!
//! ## Semantics
//! * `apply` and `release` are **idempotent, not counted**: two applies and one release leave
//!   the actor released. Each returns whether it changed anything. Keep one owner of the
//!   decision per actor (typically the code that watches the buffer).
//! * Called outside a behaviour (e.g. from a plain thread) they return
//!   [`OutsideBehaviour`] rather than panic.
//! * An actor under pressure is never muted itself (it must be able to drain), and a stopped
//!   actor's pressure is released automatically.
//! * Pressure only mutes *actors*. Threads outside the runtime are never muted; they can use
//!   [`rein::ActorRef::try_send`] / [`rein::ActorRef::send_timeout`] to respect it.
//!
//! ## The deadlock caveat, and the ways out
//! An actor under pressure that needs a message to release it must still get that message. In
//! Pony this can deadlock (ponyc#3382): the actor it waits on is muted *because of it*.
//!
//! Worked example: `Writer` applies pressure when its socket is full and releases it when a
//! `Flushed` message arrives from `Flusher`. `Flusher` also sends `Writer` data, so it is muted
//! on `Writer`, and the `Flushed` it should send never comes: both wait forever.
//!
//! rein gives two ways out, both deterministic:
//! 1. **Timers and I/O are never muted.** A tick from [`rein::Context::after`] is sent by a
//!    worker between turns, outside any behaviour, so no mute applies and "retry on a timer"
//!    always progresses.
//! 2. **Exempt the sender** you depend on: `Backpressure::exempt(&auth, flusher_id)` in `Writer`
//!    means `Flusher` is never muted on `Writer` (and is unmuted at once if it was), so its
//!    `Flushed` arrives. Only exempt actors you need: an exempt sender is not throttled by you.
//!
//! rein deliberately does *not* unmute a muted actor just because the pressured actor sent it a
//! message: with a consumer that acknowledges every message, each acknowledgement would let a
//! producer send another batch, and the backlog would no longer be bounded.
//!
//! ```
//! use rein::{Actor, Context};
//! use rein_backpressure::{ApplyReleaseBackpressureAuth, Backpressure};
//! use std::time::Duration;
//!
//! /// Holds data in a buffer; asks to be left alone while it is big, and retries on a timer.
//! struct Buffer { held: usize, auth: ApplyReleaseBackpressureAuth }
//! #[derive(Clone)]
//! enum Msg { Data(usize), Drain }
//!
//! impl Actor for Buffer {
//!     type Msg = Msg;
//!     fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) {
//!         match msg {
//!             Msg::Data(n) => {
//!                 self.held += n;
//!                 if self.held > 1_000 && Backpressure::apply(&self.auth).unwrap() {
//!                     ctx.after_keeping_alive(Duration::from_millis(1), Msg::Drain);
//!                 }
//!             }
//!             Msg::Drain => {
//!                 self.held = 0;
//!                 Backpressure::release(&self.auth).unwrap();
//!             }
//!         }
//!     }
//! }
//!
//! let (rt, root) = rein::Runtime::builder().threads(2).build_with_auth().unwrap();
//! let buffer = rt.spawn(Buffer { held: 0, auth: ApplyReleaseBackpressureAuth::new(&root) });
//! for _ in 0..100 {
//!     buffer.send(Msg::Data(100)).unwrap();
//! }
//! let report = rt.wait();
//! assert_eq!(report.metrics.pressured_actors, 0);
//! assert!(Backpressure::apply(&ApplyReleaseBackpressureAuth::new(&root)).is_err());
//! ```
//!
//! ## How it reaches the scheduler
//! Through [`rein::pressure`], the documented (and semver-covered) seam between the scheduler
//! and whatever reports pressure. This crate adds the narrowed authority token and the guidance
//! above; it holds no state of its own.

#![warn(missing_docs)]

pub use rein::{ActorId, AmbientAuth, OutsideBehaviour};

/// The power to apply and release backpressure, derived from the root authority.
#[derive(Clone, Debug)]
pub struct ApplyReleaseBackpressureAuth {
    root: AmbientAuth,
}

impl ApplyReleaseBackpressureAuth {
    /// Derives the token from the root authority.
    pub fn new(root: &AmbientAuth) -> Self {
        ApplyReleaseBackpressureAuth { root: root.clone() }
    }
}

/// Apply and release backpressure on the actor whose behaviour is running.
#[derive(Debug)]
pub struct Backpressure;

impl Backpressure {
    /// Marks the running actor as under pressure: actors that send to it are muted once their
    /// current behaviour ends. Idempotent; returns whether this call applied it.
    pub fn apply(auth: &ApplyReleaseBackpressureAuth) -> Result<bool, OutsideBehaviour> {
        rein::pressure::apply(&auth.root)
    }

    /// Releases the running actor's pressure and unmutes the actors muted on it (unless it is
    /// also overloaded, in which case they resume when it drains). Idempotent; returns whether
    /// this call released it.
    pub fn release(auth: &ApplyReleaseBackpressureAuth) -> Result<bool, OutsideBehaviour> {
        rein::pressure::release(&auth.root)
    }

    /// Whether the running actor is under pressure.
    pub fn is_applied() -> Result<bool, OutsideBehaviour> {
        rein::pressure::is_applied()
    }

    /// The running actor will never mute `sender`, and unmutes it now if it is muted on it.
    /// Use it for an actor whose messages you need in order to release pressure.
    pub fn exempt(
        auth: &ApplyReleaseBackpressureAuth,
        sender: ActorId,
    ) -> Result<(), OutsideBehaviour> {
        rein::pressure::exempt(&auth.root, sender)
    }
}

/// The code in `README.md`, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
