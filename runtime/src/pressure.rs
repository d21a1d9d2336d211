//! Hooks behind `rein-backpressure`: applying and releasing pressure on the running actor.
//!
//! Use the `rein-backpressure` crate rather than these functions; they exist so that crate can
//! reach the scheduler. Each takes an [`AmbientAuth`], so the power stays with whoever the
//! program's entry point gives authority to.

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
