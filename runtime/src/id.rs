//! Actor identities.

use std::fmt;

/// A runtime-unique actor identity, for logs, metrics and [`ActorDown`](crate::ActorDown) notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(pub(crate) u64);

impl ActorId {
    /// The identity of no actor (actor ids start at 1): what a
    /// [closed](crate::Recipient::closed) address reports.
    pub const NONE: ActorId = ActorId(0);

    /// The raw number, unique within one process.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// An identity from a raw number, for tests of code that takes ids. It names no actor
    /// unless a live actor happens to have that number.
    #[doc(hidden)]
    pub fn from_raw_for_tests(raw: u64) -> Self {
        ActorId(raw)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "actor#{}", self.0)
    }
}
