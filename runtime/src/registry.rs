//! The registry of live actors, so that shutdown can run every `stopped` hook and break
//! reference cycles between idle actors.
//!
//! Sharded by the worker that spawns (plus one shard for outside threads), so a spawn takes an
//! uncontended lock. Entries are weak: the registry never keeps an actor alive. An entry is
//! removed when its cell is dropped.
//!
//! A spawn from outside the workers checks that the runtime still runs *under its shard's lock*
//! (see [`Registry::lock`]): the shutdown sweep takes every shard's lock after closing the runtime,
//! so a spawn either lands in the registry before the sweep looks (and is stopped by it) or sees
//! the runtime closed and hands the actor back. Nothing spawned can be stranded after the end.

use crate::cell::{Runnable, Task};
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, MutexGuard};
use std::sync::Weak;

/// Where a cell's entry lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    shard: u32,
    index: u32,
}

#[derive(Default)]
struct Shard {
    entries: Vec<Option<Weak<dyn Runnable>>>,
    free: Vec<u32>,
}

pub(crate) struct Registry {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Self {
        Registry {
            shards: (0..shards).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Locks one shard, to insert into it (and, for a spawn from outside, to check under the same
    /// lock that the runtime still runs).
    pub(crate) fn lock(&self, shard: usize) -> ShardGuard<'_> {
        let shard = shard % self.shards.len();
        ShardGuard {
            shard,
            guard: self.shards[shard].lock(),
        }
    }

    pub(crate) fn remove(&self, slot: Slot) {
        let mut s = self.shards[slot.shard as usize].lock();
        if let Some(entry) = s.entries.get_mut(slot.index as usize) {
            if entry.take().is_some() {
                s.free.push(slot.index);
            }
        }
    }

    /// Every actor still alive.
    pub(crate) fn live(&self) -> Vec<Task> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let s = shard.lock();
            out.extend(s.entries.iter().flatten().filter_map(Weak::upgrade));
        }
        out
    }
}

/// One locked shard of the registry.
pub(crate) struct ShardGuard<'a> {
    shard: usize,
    guard: MutexGuard<'a, Shard>,
}

impl ShardGuard<'_> {
    pub(crate) fn insert(&mut self, entry: Weak<dyn Runnable>) -> Slot {
        let s = &mut *self.guard;
        let index = match s.free.pop() {
            Some(i) => {
                s.entries[i as usize] = Some(entry);
                i
            }
            None => {
                s.entries.push(Some(entry));
                (s.entries.len() - 1) as u32
            }
        };
        Slot {
            shard: self.shard as u32,
            index,
        }
    }
}
