//! Who is muted on whom, and every live actor's state: a diagnostic snapshot for dashboards and
//! for debugging a system that looks stuck.
//!
//! The runtime keeps a registry of live actors (for shutdown); the snapshot walks it and reads
//! each actor's state word, backlog and lists. It costs O(live actors) and takes each actor's
//! muting lock briefly (only for actors that ever had a muted sender or an outside waiter), so
//! it is for an operator's endpoint or a test, not a hot path.

use crate::mute;
use crate::ActorId;
use std::fmt;

/// One muting: `sender` is not scheduled until `receiver` recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MuteEdge {
    /// The muted actor.
    pub sender: ActorId,
    /// The actor it sent to, which was overloaded, under pressure or muted itself.
    pub receiver: ActorId,
}

/// One live actor as a [`MuteSnapshot`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorInfo {
    /// Its identity.
    pub id: ActorId,
    /// Its Rust type (`std::any::type_name`), e.g. `my_app::Parser`.
    pub type_name: &'static str,
    /// Messages queued and not yet handled.
    pub backlog: usize,
    /// Its `(low, high)` backlog watermarks (its own, or the runtime's).
    pub watermarks: (usize, usize),
    /// Its backlog reached the high watermark and has not yet fallen to the low one.
    pub overloaded: bool,
    /// It applied backpressure and has not released it.
    pub pressured: bool,
    /// It is parked: muted, and not scheduled until every receiver in `muted_on` recovers.
    pub muted: bool,
    /// It has stopped (a stopped actor may linger in the registry until its last reference
    /// goes).
    pub stopped: bool,
    /// The receivers it is muted on (a receiver twice if it was muted on it twice).
    pub muted_on: Vec<ActorId>,
    /// The actors muted on it.
    pub muted_senders: Vec<ActorId>,
    /// Threads and async tasks outside the runtime waiting for it to stop blocking
    /// ([`send_blocking`](crate::ActorRef::send_blocking),
    /// [`send_when_ready`](crate::ActorRef::send_when_ready),
    /// [`send_timeout`](crate::ActorRef::send_timeout)).
    pub waiters: usize,
}

impl ActorInfo {
    /// Whether senders to it are muted (or wait): overloaded, under pressure or muted itself.
    pub fn is_blocking(&self) -> bool {
        !self.stopped && (self.overloaded || self.pressured || self.muted)
    }
}

/// The muting state of every live actor at one moment (each actor read separately, so the
/// picture may be slightly torn under load). Costs O(live actors): a diagnostic, not a hot path.
///
/// Print it (`{}`) for a table of the actors that block or wait, with what each is muted on:
///
/// ```
/// use rein::{Actor, Context, Runtime};
///
/// struct Idle;
/// impl Actor for Idle {
///     type Msg = ();
///     fn handle(&mut self, _: &mut Context<Self>, _: ()) {}
/// }
///
/// let rt = Runtime::new().unwrap();
/// let idle = rt.spawn(Idle);
/// let snap = rt.mute_snapshot();
/// let info = snap.actor(idle.id()).expect("live");
/// assert!(info.type_name.ends_with("Idle"));
/// assert!(!info.is_blocking() && info.muted_on.is_empty());
/// println!("{snap}");
/// rt.wait();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MuteSnapshot {
    /// Every current muting.
    pub edges: Vec<MuteEdge>,
    /// Actors above their high watermark.
    pub overloaded: Vec<ActorId>,
    /// Actors that applied backpressure.
    pub pressured: Vec<ActorId>,
    /// Actors parked because they are muted.
    pub muted: Vec<ActorId>,
    /// Every live actor, in no particular order.
    pub actors: Vec<ActorInfo>,
}

impl MuteSnapshot {
    /// The actor with this identity, if it was live.
    pub fn actor(&self, id: ActorId) -> Option<&ActorInfo> {
        self.actors.iter().find(|a| a.id == id)
    }

    /// The actors that block their senders or have someone waiting on them: where to look
    /// first in a stuck system.
    pub fn blocking(&self) -> impl Iterator<Item = &ActorInfo> {
        self.actors
            .iter()
            .filter(|a| a.is_blocking() || a.waiters > 0 || !a.muted_on.is_empty())
    }
}

impl fmt::Display for MuteSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} live actors, {} muted, {} overloaded, {} pressured",
            self.actors.len(),
            self.muted.len(),
            self.overloaded.len(),
            self.pressured.len()
        )?;
        for a in self.blocking() {
            let mut state = Vec::new();
            if a.overloaded {
                state.push("overloaded");
            }
            if a.pressured {
                state.push("pressured");
            }
            if a.muted {
                state.push("muted");
            }
            if a.stopped {
                state.push("stopped");
            }
            write!(
                f,
                "  {} {}: backlog {} (watermarks {}/{}), {}",
                a.id,
                a.type_name,
                a.backlog,
                a.watermarks.0,
                a.watermarks.1,
                if state.is_empty() {
                    "running".to_string()
                } else {
                    state.join(", ")
                }
            )?;
            if !a.muted_on.is_empty() {
                let on: Vec<String> = a.muted_on.iter().map(ToString::to_string).collect();
                write!(f, "; muted on {}", on.join(", "))?;
            }
            if !a.muted_senders.is_empty() {
                write!(f, "; {} muted senders", a.muted_senders.len())?;
            }
            if a.waiters > 0 {
                write!(f, "; {} outside waiters", a.waiters)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

impl crate::scheduler::Shared {
    pub(crate) fn mute_snapshot(&self) -> MuteSnapshot {
        let mut snap = MuteSnapshot::default();
        for task in self.registry.live() {
            let header = task.header();
            let word = header.word().load();
            let id = header.id;
            let overloaded = word & mute::OVERLOADED != 0;
            let pressured = word & mute::PRESSURED != 0;
            let muted = word & mute::PARKED != 0;
            if overloaded {
                snap.overloaded.push(id);
            }
            if pressured {
                snap.pressured.push(id);
            }
            if muted {
                snap.muted.push(id);
            }
            let muted_senders = header.muted_sender_ids();
            snap.edges
                .extend(muted_senders.iter().map(|&sender| MuteEdge {
                    sender,
                    receiver: id,
                }));
            snap.actors.push(ActorInfo {
                id,
                type_name: task.type_name(),
                backlog: task.backlog(),
                watermarks: header.watermarks(word),
                overloaded,
                pressured,
                muted,
                stopped: word & mute::STOPPED != 0,
                muted_on: Vec::new(),
                muted_senders,
                waiters: header.muting.waiter_count(),
            });
        }
        let index: std::collections::HashMap<ActorId, usize> = snap
            .actors
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i))
            .collect();
        for edge in &snap.edges {
            if let Some(&i) = index.get(&edge.sender) {
                snap.actors[i].muted_on.push(edge.receiver);
            }
        }
        snap
    }
}
