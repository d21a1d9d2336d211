//! Stalls: actors muted for longer than a threshold, reported with the receiver they wait on.
//!
//! Why: muting is silent by design. A hub that writes to a client that stopped reading is muted
//! on that client's connection, and then every other client stalls too, with nothing in the
//! logs. [`Builder::on_stall`](crate::Builder::on_stall) turns that into a report naming the
//! muted actor, the receiver it is muted on, for how long, and why that receiver still blocks.
//!
//! What it costs: nothing per message. The mute graph already records every mute under its lock
//! (`crate::mute_graph`); each edge also keeps the moment it was added (one clock read per
//! mute). A periodic scan, a timer the workers fire (`crate::timer`), looks for edges older than the
//! threshold (one lock, O(mutes in force)), and only when it finds one it has not reported yet
//! does it read the actors' state words (O(live actors), like
//! [`RuntimeHandle::mute_snapshot`](crate::RuntimeHandle::mute_snapshot)).

use crate::mute;
use crate::scheduler::Shared;
use crate::ActorId;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// An actor muted (not scheduled) for longer than a threshold: see
/// [`Builder::on_stall`](crate::Builder::on_stall) and
/// [`RuntimeHandle::stalls`](crate::RuntimeHandle::stalls).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StallReport {
    /// The muted actor. It runs again only once `receiver` (and every other receiver it is
    /// muted on) recovers.
    pub actor: ActorId,
    /// The receiver it is muted on: it was overloaded, under pressure or muted itself when
    /// `actor` sent to it, and has not recovered since.
    pub receiver: ActorId,
    /// How long `actor` has been muted on `receiver`.
    pub muted_for: Duration,
    /// Why `receiver` still blocks, read when the report was made.
    pub cause: StallCause,
}

/// Why the receiver of a [`StallReport`] still mutes its senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StallCause {
    /// It applied backpressure (`rein-backpressure`) and has not released it: a `rein-net`
    /// connection whose peer does not read, for instance.
    Pressured,
    /// Its backlog crossed its high watermark and has not drained to its low one.
    Overloaded {
        /// Its backlog when the report was made.
        backlog: usize,
    },
    /// It is muted itself: look for its own report, further down the chain.
    Muted,
}

impl fmt::Display for StallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.cause {
            StallCause::Pressured => "under pressure".to_string(),
            StallCause::Overloaded { backlog } => format!("overloaded, {backlog} queued"),
            StallCause::Muted => "muted itself".to_string(),
        };
        write!(
            f,
            "{} has been muted for {:.1?} on {} ({why})",
            self.actor, self.muted_for, self.receiver
        )
    }
}

/// What [`Builder::on_stall`](crate::Builder::on_stall) calls.
pub(crate) type StallFn = Arc<dyn Fn(StallReport) + Send + Sync>;

/// The stall watch a builder asked for.
#[derive(Clone)]
pub(crate) struct OnStall {
    pub(crate) threshold: Duration,
    pub(crate) report: StallFn,
}

impl fmt::Debug for OnStall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnStall")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl OnStall {
    /// How often the watch looks: a quarter of the threshold, within 10 ms and 1 s, so that a
    /// stall is reported at most a quarter late.
    pub(crate) fn period(&self) -> Duration {
        (self.threshold / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// The timer body: reports each stall once, when it first exceeds the threshold. Returns
    /// `false` (ending the timer) once the runtime is gone.
    pub(crate) fn watch(self, shared: Weak<Shared>) -> impl FnMut() -> bool + Send {
        let mut reported: HashSet<(ActorId, ActorId, Instant)> = HashSet::new();
        move || {
            let Some(shared) = shared.upgrade() else {
                return false;
            };
            let now = Instant::now();
            let Some(cutoff) = now.checked_sub(self.threshold) else {
                return true;
            };
            let old = shared.mute_graph.added_before(cutoff);
            // Forget stalls that are over, so the set stays as small as the stalls in force.
            reported.retain(|key| old.contains(key));
            let fresh: Vec<_> = old
                .into_iter()
                .filter(|key| !reported.contains(key))
                .collect();
            if fresh.is_empty() {
                return true;
            }
            for (report, since) in shared.stall_reports(&fresh, now) {
                reported.insert((report.actor, report.receiver, since));
                (self.report)(report);
            }
            true
        }
    }
}

impl Shared {
    /// Every actor muted for longer than `threshold` right now, with the receiver it waits on.
    pub(crate) fn stalls(&self, threshold: Duration) -> Vec<StallReport> {
        let now = Instant::now();
        match now.checked_sub(threshold) {
            Some(cutoff) => self
                .stall_reports(&self.mute_graph.added_before(cutoff), now)
                .into_iter()
                .map(|(report, _)| report)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Reports for the mutes `edges` whose sender is still parked and whose receiver still
    /// blocks (an edge may be stale for a moment: its mute is being undone), longest first, each
    /// with the moment its mute began.
    fn stall_reports(
        &self,
        edges: &[(ActorId, ActorId, Instant)],
        now: Instant,
    ) -> Vec<(StallReport, Instant)> {
        if edges.is_empty() {
            return Vec::new();
        }
        let words: HashMap<ActorId, (u64, usize)> = self
            .registry
            .live()
            .iter()
            .map(|task| {
                let header = task.header();
                (header.id, (header.word().load(), task.backlog()))
            })
            .collect();
        let mut reports: Vec<(StallReport, Instant)> = edges
            .iter()
            .filter_map(|&(actor, receiver, since)| {
                let &(sender_word, _) = words.get(&actor)?;
                let &(word, backlog) = words.get(&receiver)?;
                if sender_word & mute::PARKED == 0 || !mute::is_blocking(word) {
                    return None;
                }
                let cause = if word & mute::PRESSURED != 0 {
                    StallCause::Pressured
                } else if word & mute::OVERLOADED != 0 {
                    StallCause::Overloaded { backlog }
                } else {
                    StallCause::Muted
                };
                let report = StallReport {
                    actor,
                    receiver,
                    muted_for: now.saturating_duration_since(since),
                    cause,
                };
                Some((report, since))
            })
            .collect();
        reports.sort_by_key(|&(_, since)| since);
        reports
    }
}
