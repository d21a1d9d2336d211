//! # rein: an actor runtime whose scheduler enforces backpressure
//!
//! Actors own private state and handle messages one at a time, in plain synchronous code. A
//! work-stealing scheduler (one worker per core by default) runs them in batches, and the
//! program ends by itself once every actor is quiescent.
//!
//! What sets rein apart is what happens under load. Mailboxes are unbounded, yet memory stays
//! bounded: when a receiver's backlog crosses a high watermark, the scheduler *mutes* the actors
//! sending to it (they are not scheduled, their messages still queue) until it drains below a low
//! watermark. Muting cascades upstream, costs O(senders) to undo, and never drops a message.
//!
//! ```
//! use rein::{Actor, Context, Runtime};
//!
//! struct Greeter;
//!
//! impl Actor for Greeter {
//!     type Msg = &'static str;
//!     fn handle(&mut self, _ctx: &mut Context<Self>, name: &'static str) {
//!         println!("hello, {name}");
//!     }
//! }
//!
//! let rt = Runtime::new().expect("runtime");
//! let greeter = rt.spawn(Greeter);
//! greeter.send("world").unwrap();
//! let report = rt.wait(); // returns once nothing is left to do
//! assert_eq!(report.metrics.messages(), 1);
//! ```
//!
//! ## Backpressure
//!
//! * A receiver is **overloaded** once a send finds its backlog at the high watermark
//!   ([`DEFAULT_HIGH_WATERMARK`], set with [`Builder::watermarks`]); it **recovers** when one of
//!   its turns leaves the backlog at or below the low watermark ([`DEFAULT_LOW_WATERMARK`]).
//!   The gap between the two keeps a busy consumer fed while its producers restart, so fan-in
//!   does not collapse the way it does with Pony's mute-on-first-full-batch rule.
//! * An actor whose behaviour sent to a receiver that is overloaded, under pressure
//!   (`rein-backpressure`) or itself muted is **muted** when that behaviour returns: it is not
//!   scheduled, its messages queue, until every receiver it is muted on recovers. An actor that
//!   is overloaded itself is muted too, so muting cascades through forwarding stages all the way
//!   to the source. Sends to self never mute, an actor under pressure is never muted (it must
//!   run to release), and a mute that would close a cycle of muted actors is refused
//!   ([`Metrics::cycle_refusals`]), so actors that flood each other still finish.
//! * Unmuting touches only the muted senders (O(senders)), never every worker.
//! * Threads outside the runtime are never muted; [`ActorRef::try_send`] and
//!   [`ActorRef::send_timeout`] let them respect pressure. Timer ticks are never muted.
//! * An actor that must not be stalled by one slow receiver (a hub, a broadcaster) checks
//!   [`Recipient::is_pressured`] or uses [`Recipient::try_send`] (refused instead of muted), or
//!   sends with [`ActorRef::send_ignoring_pressure`], which never mutes it and so leaves that
//!   receiver's mailbox unbounded: the trade-off is in the name.
//!
//! **Backlog bound.** In any acyclic topology (pipelines, fan-in, fan-out, diamonds,
//! forwarders of any depth), a mailbox whose `P` sending actors each send it at most `K`
//! messages per behaviour never holds more than `high + 2·P·K`: each producer finishes the
//! behaviour in which it crossed the high watermark (`P·K`), and one that races the receiver's
//! recovery may finish one more. In steady state the figure is `high + P·K`. Outside threads
//! are not muted, so their sends are not bounded unless they use `send_timeout`. In a cycle the
//! one refused mute leaves one mailbox of the cycle to grow by what its refused sender handles
//! while the cycle is closed.
//!
//! ## Panics
//!
//! A panic in a behaviour (or in `started`) stops that actor only; its monitors hear
//! [`DownReason::Panicked`]. A panic in your code anywhere else the runtime calls it (an actor's
//! or a message's `Drop`, a `From` conversion behind a [`Recipient`] or a monitor, a periodic
//! timer's `Clone`, a `stopped` hook) is contained and counted in [`Metrics::panics`]: it costs
//! that message, notice or timer, never a runtime thread. A worker that dies anyway (a runtime
//! bug) ends the runtime at once with [`Report::worker_panics`] set, rather than leave
//! [`Runtime::wait`] waiting for work it can no longer run.
//!
//! ## Embedding: threads, async code and observability
//!
//! * From a plain thread, feed actors with [`ActorRef::send_blocking`] (or
//!   [`ActorRef::send_timeout`]): it waits while the receiver blocks, woken by its recovery, so
//!   the producer is paced as a muted actor would be. A plain [`ActorRef::send`] from outside is
//!   never held back. Hold a [`KeepAlive`] while a thread feeds the runtime, so that
//!   [`Runtime::wait`] does not end it under the thread.
//! * From async code (any executor: only `Future`s and `Waker`s), [`ActorRef::send_when_ready`]
//!   is the same wait as a future, and [`ActorRef::ask_async`] awaits a reply.
//! * Inside an actor, [`Context::ask`] delivers a reply, or why none came, as a message.
//! * [`Metrics::to_prometheus`] renders the figures for a `/metrics` endpoint; the `metrics`
//!   feature adds [`Metrics::record`](Metrics) (the `metrics` crate's facade).
//!   [`RuntimeHandle::mute_snapshot`] lists every live actor with its backlog, its state and
//!   what it is muted on.
//!
//! ## Tracing
//!
//! With the `tracing` feature (off by default; when off nothing of it is compiled in), rein
//! reports through the [`tracing`](https://docs.rs/tracing) crate. Targets and levels:
//!
//! | target | level | what |
//! |--------|-------|------|
//! | `rein::behaviour` | TRACE | a span `behaviour` around each message handled, with `actor` (the id) and `actor_type` |
//! | `rein::overload` | DEBUG | a receiver crossed its high watermark (`actor`, `backlog`), or recovered (`actor`) |
//! | `rein::mute` | DEBUG | an actor was muted (`actor`, `on`: the receivers), or resumed (`actor`) |
//! | `rein::pressure` | DEBUG | an actor applied or released backpressure (`actor`) |
//! | `rein::panic` | WARN | a behaviour panicked and its actor stopped (`actor`, `actor_type`), or a panic in other user code was contained |
//!
//! With no subscriber, or one that filters these out, each costs a check of the callsite's
//! cached interest (docs/benchmarks.md measures it).
//!
//! See `docs/architecture.md` in the repository for how a message travels and why each atomic
//! ordering is what it is.

#![warn(missing_docs)]

/// An event through `tracing` when the `tracing` feature is on; nothing at all when it is off
/// (the arguments are not even compiled). Field values are evaluated only when a subscriber
/// wants the event.
macro_rules! trace_event {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        {
            tracing::event!($($arg)*);
        }
    };
}

mod actor;
mod actor_ref;
mod auth;
mod cell;
mod context;
mod error;
mod id;
mod io;
mod mailbox;
mod metrics;
mod monitor;
mod mute;
mod mute_graph;
mod muting;
mod outside;
pub mod pressure;
mod quick_answer;
mod recipient;
mod registry;
mod reply;
mod runtime;
mod scheduler;
mod snapshot;
mod source;
mod stall;
mod sync;
mod timer;
mod waiter;

pub use actor::Actor;
pub use actor_ref::ActorRef;
pub use auth::AmbientAuth;
pub use context::Context;
pub use error::{
    AskError, BuildError, OutsideBehaviour, SendError, SendFailure, SpawnError, TrySendError,
};
pub use id::ActorId;
pub use io::{Interest, Io, IoRegistration, Readiness};
pub use metrics::{Metrics, WorkerMetrics};
pub use monitor::{ActorDown, DownReason};
pub use outside::SendWhenReady;
pub use recipient::Recipient;
pub use reply::{AskFuture, ReplyTo};
pub use runtime::{
    Builder, KeepAlive, Report, Runtime, RuntimeHandle, DEFAULT_BATCH, DEFAULT_HIGH_WATERMARK,
    DEFAULT_LOW_WATERMARK,
};
pub use snapshot::{ActorInfo, MuteEdge, MuteSnapshot};
pub use source::{NextChunk, Source};
pub use stall::{StallCause, StallReport};
pub use timer::Timer;
