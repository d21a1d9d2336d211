//! The integration point for reporting pressure: applying and releasing it on the running actor.
//!
//! Pressure is backpressure the scheduler cannot see for itself (a full socket, a buffer that
//! grew too big): the actor whose behaviour is running marks itself `PRESSURED`, and every actor
//! that sends to it is muted as if its mailbox were overloaded, until it releases.
//!
//! These four functions are the whole seam between the scheduler and the crates that report
//! pressure. Applications normally use them through `rein-backpressure`, whose
//! `ApplyReleaseBackpressureAuth` narrows the root authority to this one power and whose docs
//! explain the deadlock caveat (an actor under pressure that waits for a message from an actor it
//! has muted). A crate that reports pressure itself (as rein-net's connections do, through
//! `rein-backpressure`) may call them directly: they are a stable, semver-covered part of the API.
//! Each takes an [`AmbientAuth`], so the power stays with whoever the program's entry point gives
//! authority to, and each works only inside a behaviour ([`OutsideBehaviour`] otherwise).
//!
//! ```
//! use rein::{pressure, Actor, AmbientAuth, Context, Runtime};
//!
//! /// Applies pressure while it holds more than 100 items, and drains on `None`.
//! struct Buffer { auth: AmbientAuth, held: usize }
//!
//! impl Actor for Buffer {
//!     type Msg = Option<usize>;
//!     fn handle(&mut self, _: &mut Context<Self>, msg: Option<usize>) {
//!         match msg {
//!             Some(n) => {
//!                 self.held += n;
//!                 if self.held > 100 {
//!                     pressure::apply(&self.auth).unwrap(); // senders to me are muted
//!                 }
//!             }
//!             None => {
//!                 self.held = 0;
//!                 pressure::release(&self.auth).unwrap(); // and resume
//!             }
//!         }
//!     }
//! }
//!
//! let (rt, auth) = Runtime::builder().build_with_auth().unwrap();
//! assert!(pressure::apply(&auth).is_err(), "outside any behaviour");
//! let buffer = rt.spawn(Buffer { auth, held: 0 });
//! buffer.send(Some(500)).unwrap();
//! buffer.send(None).unwrap();
//! let report = rt.wait();
//! assert_eq!(report.metrics.pressured_actors, 0);
//! ```

use crate::cell::Header;
use crate::error::OutsideBehaviour;
use crate::mute;
use crate::scheduler::Worker;
use crate::{ActorId, AmbientAuth};

fn with_running_actor<R>(f: impl FnOnce(&Header, &Worker) -> R) -> Result<R, OutsideBehaviour> {
    Worker::with_any_current(|worker| {
        let worker = worker.ok_or(OutsideBehaviour)?;
        let header = worker.current_header().ok_or(OutsideBehaviour)?;
        Ok(f(header, worker))
    })
}

/// Marks the actor whose behaviour is running as under pressure: actors that send to it are
/// muted. Idempotent; returns whether this call applied it.
pub fn apply(_auth: &AmbientAuth) -> Result<bool, OutsideBehaviour> {
    with_running_actor(|header, _| {
        let applied = header.word().set(mute::PRESSURED);
        if applied {
            header.shared.counters.pressure_applied.inc();
            trace_event!(
                target: "rein::pressure",
                tracing::Level::DEBUG,
                actor = header.id.as_u64(),
                "pressure applied: senders to it are muted"
            );
        }
        applied
    })
}

/// Releases the running actor's pressure and unmutes its senders (unless it is also overloaded).
/// Idempotent; returns whether this call released it.
pub fn release(_auth: &AmbientAuth) -> Result<bool, OutsideBehaviour> {
    with_running_actor(|header, worker| {
        let released = header.clear_blocking_flag(mute::PRESSURED, Some(worker));
        if released {
            header.shared.counters.pressure_released.inc();
            trace_event!(
                target: "rein::pressure",
                tracing::Level::DEBUG,
                actor = header.id.as_u64(),
                "pressure released"
            );
        }
        released
    })
}

/// Whether the running actor is under pressure.
pub fn is_applied() -> Result<bool, OutsideBehaviour> {
    with_running_actor(|header, _| header.word().load() & mute::PRESSURED != 0)
}

/// The running actor will never mute `sender`, and unmutes it now if it is muted on it.
pub fn exempt(_auth: &AmbientAuth, sender: ActorId) -> Result<(), OutsideBehaviour> {
    with_running_actor(|header, worker| header.exempt(sender, Some(worker)))
}
