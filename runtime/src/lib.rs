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
//! See `docs/architecture.md` in the repository for how a message travels and why each atomic
//! ordering is what it is.

#![warn(missing_docs)]

mod actor;
mod actor_ref;
mod auth;
mod cell;
mod context;
mod error;
mod id;
mod mailbox;
mod metrics;
mod monitor;
mod mute;
#[doc(hidden)]
pub mod pressure;
mod recipient;
mod registry;
mod reply;
mod runtime;
mod scheduler;
mod snapshot;
mod sync;
mod timer;

pub use actor::Actor;
pub use actor_ref::ActorRef;
pub use auth::AmbientAuth;
pub use context::Context;
pub use error::{AskError, BuildError, OutsideBehaviour, SendError, TrySendError};
pub use id::ActorId;
pub use metrics::{Metrics, WorkerMetrics};
pub use monitor::{ActorDown, DownReason};
pub use recipient::Recipient;
pub use reply::ReplyTo;
pub use runtime::{
    Builder, KeepAlive, Report, Runtime, RuntimeHandle, DEFAULT_BATCH, DEFAULT_HIGH_WATERMARK,
    DEFAULT_LOW_WATERMARK,
};
pub use snapshot::{MuteEdge, MuteSnapshot};
pub use timer::Timer;
