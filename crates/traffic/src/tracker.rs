//! Receiver-side sequence accounting: in order, duplicate, late, or gap — in constant memory.
//!
//! # Design: next-expected + sliding bitmap window
//!
//! [`SeqTracker`] remembers `next` (one past the highest seq seen) and a
//! bitmap of which of the `WINDOW` seqs just below `next` have arrived (the
//! IPsec anti-replay scheme). That is 512 bytes for the default 4096-seq
//! window, inline, and handles runs of any length (10M packets and beyond)
//! without allocation or a caller-supplied bitmap.
//!
//! - seq = next: [`Observation::InOrder`].
//! - seq > next: [`Observation::Gap`]`(seq − next)`; the skipped seqs are
//!   missing for now and may still arrive late.
//! - seq < next, within the window: [`Observation::Duplicate`] if its bit is
//!   set, else [`Observation::OutOfOrder`] (a late arrival filling a gap).
//! - seq < next − WINDOW: [`Observation::Stale`] — too old to tell a
//!   duplicate from a late arrival, so it is counted apart, never guessed.
//!
//! So duplicates and late arrivals are classified exactly within the window
//! and an in-order stream is tracked exactly whatever its length. At the
//! end, [`SeqTracker::missing`] = sent − distinct seqs received; it is exact
//! when [`SeqTracker::stale`] is 0 and otherwise an upper bound (a stale
//! packet may have been a late first copy).
//!
//! `WORDS` (64-bit words of window) is a const parameter so a receiver with a
//! deep RX ring can afford a wider window; `SeqTracker` alone means 64 words
//! = 4096 seqs.

use core::fmt;

/// How one arriving seq relates to what came before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Observation {
    /// Exactly the next expected seq.
    InOrder,
    /// Already seen (within the window).
    Duplicate,
    /// Earlier than expected but not seen before: a late arrival.
    OutOfOrder,
    /// Ahead of the expected seq; `missed` seqs were skipped (so far).
    Gap(u32),
    /// Older than the window: cannot tell duplicate from late arrival.
    Stale,
}

/// Sequence tracker with a `64 × WORDS`-seq duplicate window; see the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct SeqTracker<const WORDS: usize = 64> {
    /// Bit `s % WINDOW` says whether seq `s` (for s in `next−WINDOW..next`) arrived.
    window: [u64; WORDS],
    /// One past the highest seq seen; u64 so seq u32::MAX cannot overflow it.
    next: u64,
    received: u64,
    distinct: u64,
    duplicates: u64,
    out_of_order: u64,
    gaps: u64,
    stale: u64,
}

impl SeqTracker {
    /// A tracker with the default 4096-seq window, expecting seq 0 first.
    pub const fn new() -> Self {
        Self::with_window()
    }
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> SeqTracker<WORDS> {
    /// Window size in seqs.
    pub const WINDOW: u64 = 64 * WORDS as u64;

    /// A tracker with a `64 × WORDS`-seq window, expecting seq 0 first.
    pub const fn with_window() -> Self {
        assert!(WORDS > 0, "the window needs at least one word");
        SeqTracker {
            window: [0; WORDS],
            next: 0,
            received: 0,
            distinct: 0,
            duplicates: 0,
            out_of_order: 0,
            gaps: 0,
            stale: 0,
        }
    }

    fn bit(seq: u64) -> (usize, u64) {
        let slot = seq % Self::WINDOW;
        ((slot / 64) as usize, 1u64 << (slot % 64))
    }

    fn set(&mut self, seq: u64) {
        let (w, m) = Self::bit(seq);
        self.window[w] |= m;
    }

    fn is_set(&self, seq: u64) -> bool {
        let (w, m) = Self::bit(seq);
        self.window[w] & m != 0
    }

    /// Forgets seqs `from..to` (their slots are about to be reused for the
    /// seqs one window later). Whole words at a time where possible.
    fn clear_range(&mut self, from: u64, to: u64) {
        if to - from >= Self::WINDOW {
            self.window = [0; WORDS];
            return;
        }
        let mut s = from;
        while s < to {
            let (w, _) = Self::bit(s);
            let bit = s % 64;
            let n = (64 - bit).min(to - s);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            self.window[w] &= !mask;
            s += n;
        }
    }

    /// Accounts for one arriving seq.
    pub fn observe(&mut self, seq: u32) -> Observation {
        let seq = u64::from(seq);
        self.received += 1;
        if seq >= self.next {
            // Slots of next..=seq held seqs a window older; clear them first.
            self.clear_range(self.next, seq + 1);
            self.set(seq);
            let missed = seq - self.next;
            self.next = seq + 1;
            self.distinct += 1;
            if missed == 0 {
                Observation::InOrder
            } else {
                self.gaps += 1;
                // seq and next are both ≤ 2^32, so missed fits in u32.
                Observation::Gap(missed as u32)
            }
        } else if self.next - seq > Self::WINDOW {
            self.stale += 1;
            Observation::Stale
        } else if self.is_set(seq) {
            self.duplicates += 1;
            Observation::Duplicate
        } else {
            self.set(seq);
            self.distinct += 1;
            self.out_of_order += 1;
            Observation::OutOfOrder
        }
    }

    /// Every seq observed, duplicates included.
    pub const fn received(&self) -> u64 {
        self.received
    }

    /// Distinct seqs counted (in order, gap-openers and late arrivals).
    pub const fn distinct(&self) -> u64 {
        self.distinct
    }

    /// [`Observation::Duplicate`]s so far.
    pub const fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// [`Observation::OutOfOrder`]s (late arrivals) so far.
    pub const fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// [`Observation::Gap`] events so far (not the number of seqs skipped).
    pub const fn gaps(&self) -> u64 {
        self.gaps
    }

    /// [`Observation::Stale`]s so far.
    pub const fn stale(&self) -> u64 {
        self.stale
    }

    /// One past the highest seq seen (the next in-order seq).
    pub const fn next_expected(&self) -> u64 {
        self.next
    }

    /// At the end of a run of `total_sent` packets (seqs `0..total_sent`):
    /// how many never arrived, i.e. `total_sent − distinct`, saturating.
    /// Exact when [`stale`](Self::stale) is 0, else an upper bound. Assumes
    /// every observed seq is below `total_sent`: a receiver should drop
    /// (and report) out-of-run seqs before observing them, since they would
    /// otherwise hide real losses.
    pub const fn missing(&self, total_sent: u32) -> u32 {
        let sent = total_sent as u64;
        if self.distinct >= sent {
            0
        } else {
            (sent - self.distinct) as u32
        }
    }
}

impl<const WORDS: usize> fmt::Debug for SeqTracker<WORDS> {
    // The window bitmap is noise in logs; show the counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqTracker")
            .field("window", &Self::WINDOW)
            .field("next", &self.next)
            .field("received", &self.received)
            .field("distinct", &self.distinct)
            .field("duplicates", &self.duplicates)
            .field("out_of_order", &self.out_of_order)
            .field("gaps", &self.gaps)
            .field("stale", &self.stale)
            .finish()
    }
}
