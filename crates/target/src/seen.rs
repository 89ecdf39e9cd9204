//! A node's seen map: bit `s` = that node's application accepted sequence
//! number `s` of the current run. Its node writes it, node 0 reads it
//! after the run to find frames two owners of one NIC both delivered (see
//! `mint_abi::real_nic`). Words are reached with atomics only: the other
//! party (node 0, or a faulty peer) may touch them at any time.

use core::sync::atomic::{AtomicU64, Ordering};

/// A seen map over 64-bit words (64 sequence numbers each).
#[derive(Clone, Copy)]
pub struct SeenMap<'a> {
    words: &'a [AtomicU64],
}

impl<'a> SeenMap<'a> {
    /// The map over `words`.
    pub fn new(words: &'a [AtomicU64]) -> SeenMap<'a> {
        SeenMap { words }
    }

    /// Sequence numbers the map can hold.
    pub fn capacity(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    /// Marks `seq`; returns whether it was marked already (false for a
    /// seq past the map: the checker refuses those first).
    pub fn mark(&self, seq: u32) -> bool {
        let Some(w) = self.words.get((seq / 64) as usize) else {
            return false;
        };
        let bit = 1u64 << (seq % 64);
        w.fetch_or(bit, Ordering::Relaxed) & bit != 0
    }

    /// Clears the words of the first `frames` bits (a new run).
    pub fn clear(&self, frames: u32) {
        let n = (frames as usize).div_ceil(64).min(self.words.len());
        for w in &self.words[..n] {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Word `i` (64 seqs from `64 * i`; 0 past the map).
    pub fn word(&self, i: usize) -> u64 {
        self.words.get(i).map_or(0, |w| w.load(Ordering::Acquire))
    }
}
