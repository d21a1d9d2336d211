//! Notices that an actor has stopped, for the actors that monitor it.

use crate::ActorId;

/// Why an actor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// It called [`Context::stop`](crate::Context::stop).
    Stopped,
    /// A behaviour (or its `started` hook) panicked; its queued messages were dropped and counted.
    Panicked,
    /// The runtime shut down.
    Shutdown,
}

/// Sent to every actor that [monitors](crate::Context::monitor) an actor, once it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorDown {
    /// The actor that stopped.
    pub id: ActorId,
    /// Why.
    pub reason: DownReason,
}
