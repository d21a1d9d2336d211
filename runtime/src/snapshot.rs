//! Who is muted on whom: a diagnostic snapshot for dashboards and debugging.

use crate::mute;
use crate::ActorId;

/// One muting: `sender` is not scheduled until `receiver` recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MuteEdge {
    /// The muted actor.
    pub sender: ActorId,
    /// The actor it sent to, which was overloaded, under pressure or muted itself.
    pub receiver: ActorId,
}

/// The muting state of every live actor at one moment (each actor read separately, so the
/// picture may be slightly torn under load). Costs O(live actors): a diagnostic, not a hot path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuteSnapshot {
    /// Every current muting.
    pub edges: Vec<MuteEdge>,
    /// Actors above their high watermark.
    pub overloaded: Vec<ActorId>,
    /// Actors that applied backpressure.
    pub pressured: Vec<ActorId>,
    /// Actors parked because they are muted.
    pub muted: Vec<ActorId>,
}

impl crate::scheduler::Shared {
    pub(crate) fn mute_snapshot(&self) -> MuteSnapshot {
        let mut snap = MuteSnapshot::default();
        for task in self.registry.live() {
            let header = task.header();
            let word = header.word().load();
            if word & mute::OVERLOADED != 0 {
                snap.overloaded.push(header.id);
            }
            if word & mute::PRESSURED != 0 {
                snap.pressured.push(header.id);
            }
            if word & mute::PARKED != 0 {
                snap.muted.push(header.id);
            }
            snap.edges.extend(
                header
                    .muted_sender_ids()
                    .into_iter()
                    .map(|sender| MuteEdge {
                        sender,
                        receiver: header.id,
                    }),
            );
        }
        snap
    }
}
