//! The mute graph: who is muted on whom, kept so that a mute that would close a cycle is refused.
//!
//! Muting cascades: an actor muted on an overloaded receiver is itself blocking, so its senders
//! are muted on it in turn. That is what bounds every mailbox of a pipeline, forwarders
//! included. But a cascade that runs round a cycle would deadlock it: if A is muted on B and B
//! on A, neither runs, so neither drains, so neither recovers. Pony avoids that by never muting
//! an actor that is itself overloaded, which also means an overloaded forwarder is never muted
//! and the mailbox after it grows without bound.
//!
//! rein mutes overloaded actors like any other and refuses instead exactly the mutes that would
//! close a cycle. An edge `S → R` means "S is muted on R". Every edge is added under this graph's
//! lock, after checking that R does not already reach S, so the graph never holds a cycle. An
//! edge is removed only after the mute it stands for has been undone, so the graph may show a
//! stale edge for a moment, never miss a live one: a stale edge can only make the check refuse a
//! mute it could have allowed, never allow one that closes a cycle.
//!
//! In an acyclic topology (every edge is also an edge of "who sends to whom") no check ever
//! refuses, so the backlog bound holds for every mailbox. Only real cycles lose one edge's worth
//! of muting, and that only while the cycle is closed.
//!
//! The lock is taken once per behaviour that must mute (not per message) and once per batch of
//! unmutes, and the search follows only edges out of the receiver: a receiver that is not itself
//! muted costs one map lookup.
//!
//! Each edge also records when it was added, so that an actor muted for too long can be
//! reported with the receiver it waits on (`crate::stall`): one clock read per mute, under a
//! lock the mute takes anyway.

use crate::id::ActorId;
use crate::sync::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Out-edges of every actor that is muted on someone (a multiset: an actor can be registered
/// twice on one receiver, once per behaviour, and each registration is undone separately), each
/// with the moment it was added.
type Edges = HashMap<ActorId, Vec<(ActorId, Instant)>>;

#[derive(Debug, Default)]
pub(crate) struct MuteGraph {
    edges: Mutex<Edges>,
}

/// The graph, locked: every addition happens through one of these.
pub(crate) struct Locked<'a> {
    edges: MutexGuard<'a, Edges>,
}

impl MuteGraph {
    pub(crate) fn new() -> Self {
        MuteGraph::default()
    }

    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked {
            edges: self.edges.lock(),
        }
    }

    /// Forgets one edge per `(sender, receiver)` pair: mutes that have been undone.
    pub(crate) fn remove_all(&self, undone: &[(ActorId, ActorId)]) {
        if undone.is_empty() {
            return;
        }
        let mut edges = self.edges.lock();
        for &(sender, receiver) in undone {
            if let Some(out) = edges.get_mut(&sender) {
                if let Some(pos) = out.iter().position(|&(r, _)| r == receiver) {
                    out.swap_remove(pos);
                }
                if out.is_empty() {
                    edges.remove(&sender);
                }
            }
        }
    }

    /// Every `(sender, receiver, since)` mute added before `cutoff` and not yet undone; a sender
    /// registered twice on one receiver counts once, since its oldest registration.
    pub(crate) fn added_before(&self, cutoff: Instant) -> Vec<(ActorId, ActorId, Instant)> {
        let edges = self.edges.lock();
        let mut old: Vec<(ActorId, ActorId, Instant)> = Vec::new();
        for (&sender, out) in edges.iter() {
            for &(receiver, since) in out.iter().filter(|&&(_, since)| since < cutoff) {
                match old
                    .iter_mut()
                    .find(|(s, r, _)| *s == sender && *r == receiver)
                {
                    Some(seen) => seen.2 = seen.2.min(since),
                    None => old.push((sender, receiver, since)),
                }
            }
        }
        old
    }

    /// How many mute edges the graph holds: a diagnostic.
    #[cfg(test)]
    pub(crate) fn edge_count(&self) -> usize {
        self.edges.lock().values().map(Vec::len).sum()
    }
}

impl Locked<'_> {
    /// Whether `from` is muted, directly or through a chain of mutes, on `to`.
    pub(crate) fn reaches(&self, from: ActorId, to: ActorId) -> bool {
        if from == to {
            return true;
        }
        let Some(first) = self.edges.get(&from) else {
            return false;
        };
        let mut stack: Vec<ActorId> = first.iter().map(|&(r, _)| r).collect();
        let mut seen: HashSet<ActorId> = HashSet::new();
        seen.insert(from);
        while let Some(next) = stack.pop() {
            if next == to {
                return true;
            }
            if seen.insert(next) {
                if let Some(out) = self.edges.get(&next) {
                    stack.extend(out.iter().map(|&(r, _)| r).filter(|a| !seen.contains(a)));
                }
            }
        }
        false
    }

    /// Records that `sender` is now muted on `receiver`. The caller checked that `receiver`
    /// does not reach `sender`, under this same lock.
    pub(crate) fn add(&mut self, sender: ActorId, receiver: ActorId) {
        debug_assert!(
            !self.reaches(receiver, sender),
            "a mute would close a cycle"
        );
        self.edges
            .entry(sender)
            .or_default()
            .push((receiver, Instant::now()));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn id(n: u64) -> ActorId {
        ActorId(n)
    }

    #[test]
    fn reaches_follows_chains_and_diamonds() {
        let g = MuteGraph::new();
        {
            let mut l = g.lock();
            l.add(id(1), id(2));
            l.add(id(2), id(3));
            l.add(id(1), id(4));
            l.add(id(4), id(3));
            assert!(l.reaches(id(1), id(3)));
            assert!(l.reaches(id(4), id(3)));
            assert!(!l.reaches(id(3), id(1)), "edges are directed");
            assert!(!l.reaches(id(2), id(4)));
            assert!(l.reaches(id(5), id(5)), "an actor reaches itself");
        }
        assert_eq!(g.edge_count(), 4);
    }

    #[test]
    fn removal_takes_one_registration_at_a_time() {
        let g = MuteGraph::new();
        {
            let mut l = g.lock();
            l.add(id(1), id(2));
            l.add(id(1), id(2));
        }
        g.remove_all(&[(id(1), id(2))]);
        assert!(g.lock().reaches(id(1), id(2)), "one registration is left");
        g.remove_all(&[(id(1), id(2)), (id(7), id(8))]);
        assert!(!g.lock().reaches(id(1), id(2)));
        assert_eq!(g.edge_count(), 0);
    }

    #[test]
    fn edges_remember_when_they_were_added() {
        let g = MuteGraph::new();
        g.lock().add(id(1), id(2));
        let between = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        g.lock().add(id(1), id(2));
        g.lock().add(id(3), id(2));
        assert!(g.added_before(between).iter().all(|e| e.0 == id(1)));
        let all = g.added_before(Instant::now());
        assert_eq!(all.len(), 2, "one entry per pair: {all:?}");
        let first = all.iter().find(|e| e.0 == id(1)).unwrap();
        assert!(first.2 < between, "the oldest registration counts");
    }
}
