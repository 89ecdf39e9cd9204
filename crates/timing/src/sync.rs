//! How far apart two cores' TSCs are, from stamp exchanges.
//!
//! One [`Exchange`]: the local core reads its TSC (`local_before`), asks
//! the remote core through a shared cache line, the remote core reads its
//! TSC (`remote`) and answers, the local core reads its TSC again
//! (`local_after`). The remote read happened at some instant between the
//! two local reads, so the offset `remote TSC - local TSC` at one instant
//! lies in `[remote - local_after, remote - local_before]`. Every exchange
//! gives such an interval; the true offset (if constant) lies in all of
//! them, so [`OffsetTracker`] intersects them. Its width is set by the
//! fastest round trip, not the average one.
//!
//! An empty intersection means no constant offset explains the stamps:
//! the TSCs drift apart or one went backwards. That is reported as
//! inconsistent, with the bound of the fastest exchange alone.

/// One round of the exchange, in TSC ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// Local TSC before the request was published.
    pub local_before: u64,
    /// The remote core's TSC, read after it saw the request.
    pub remote: u64,
    /// Local TSC after the answer was seen.
    pub local_after: u64,
}

impl Exchange {
    fn interval(&self) -> (i128, i128) {
        let r = i128::from(self.remote);
        (
            r - i128::from(self.local_after),
            r - i128::from(self.local_before),
        )
    }

    fn round_trip(&self) -> Option<u64> {
        self.local_after.checked_sub(self.local_before)
    }
}

/// Intersects the intervals of many exchanges.
#[derive(Clone, Copy, Debug, Default)]
pub struct OffsetTracker {
    lo: i128,
    hi: i128,
    rounds: u32,
    fastest: Option<Exchange>,
    consistent: bool,
}

/// The offset of a remote core's TSC relative to the local one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetBound {
    /// The offset is at least this (ticks, remote - local).
    pub lo: i64,
    /// The offset is at most this.
    pub hi: i64,
    /// Exchanges that went into the bound.
    pub rounds: u32,
    /// The fastest exchange's round trip (ticks).
    pub min_round_trip: u64,
    /// Whether one constant offset explains every exchange.
    pub consistent: bool,
}

impl OffsetBound {
    /// The middle of the bound: the best single estimate.
    pub fn estimate(&self) -> i64 {
        ((i128::from(self.lo) + i128::from(self.hi)) / 2) as i64
    }

    /// Half the bound's width: how far the estimate may be off.
    pub fn uncertainty(&self) -> u64 {
        (i128::from(self.hi) - i128::from(self.lo)).unsigned_abs() as u64 / 2
    }

    /// The largest |offset| the bound allows: what a cross-core latency
    /// taken with these two TSCs may be off by.
    pub fn worst_abs(&self) -> u64 {
        self.lo.unsigned_abs().max(self.hi.unsigned_abs())
    }
}

fn clamp(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl OffsetTracker {
    /// No exchanges yet.
    pub fn new() -> Self {
        OffsetTracker {
            lo: i128::MIN,
            hi: i128::MAX,
            rounds: 0,
            fastest: None,
            consistent: true,
        }
    }

    /// Adds one exchange; one whose local stamps run backwards is ignored
    /// (returns false).
    pub fn add(&mut self, e: Exchange) -> bool {
        let Some(rtt) = e.round_trip() else {
            return false;
        };
        let (lo, hi) = e.interval();
        self.lo = self.lo.max(lo);
        self.hi = self.hi.min(hi);
        if self.lo > self.hi {
            self.consistent = false;
        }
        if self
            .fastest
            .and_then(|f| f.round_trip())
            .is_none_or(|best| rtt < best)
        {
            self.fastest = Some(e);
        }
        self.rounds += 1;
        true
    }

    /// The bound so far (`None` before the first exchange).
    pub fn bound(&self) -> Option<OffsetBound> {
        let fastest = self.fastest?;
        let (lo, hi) = if self.consistent {
            (self.lo, self.hi)
        } else {
            fastest.interval()
        };
        Some(OffsetBound {
            lo: clamp(lo),
            hi: clamp(hi),
            rounds: self.rounds,
            min_round_trip: fastest.round_trip().unwrap_or(0),
            consistent: self.consistent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(before: u64, remote: u64, after: u64) -> Exchange {
        Exchange {
            local_before: before,
            remote,
            local_after: after,
        }
    }

    #[test]
    fn intervals_intersect_to_the_true_offset() {
        // Remote runs 50 ticks ahead; answers take varying times.
        let mut t = OffsetTracker::new();
        for (before, delay, back) in [(1_000, 300, 400), (5_000, 20, 900), (9_000, 700, 10)] {
            let at = before + delay;
            assert!(t.add(ex(before, at + 50, at + back)));
        }
        let b = t.bound().unwrap();
        assert!(b.consistent);
        assert!(b.lo <= 50 && 50 <= b.hi, "{b:?}");
        // Tighter than any single exchange: [50-10, 50+20].
        assert_eq!((b.lo, b.hi), (40, 70));
        assert_eq!(b.estimate(), 55);
        assert_eq!(b.uncertainty(), 15);
        assert_eq!(b.worst_abs(), 70);
        assert_eq!(b.rounds, 3);
        assert_eq!(b.min_round_trip, 700);
    }

    #[test]
    fn a_remote_behind_gives_a_negative_offset() {
        let mut t = OffsetTracker::new();
        t.add(ex(10_000, 10_100 - 2_000, 10_200));
        let b = t.bound().unwrap();
        assert_eq!((b.lo, b.hi), (-2_100, -1_900));
        assert_eq!(b.worst_abs(), 2_100);
    }

    #[test]
    fn drifting_tscs_are_inconsistent_and_fall_back_to_the_fastest_exchange() {
        let mut t = OffsetTracker::new();
        t.add(ex(0, 60, 100)); // offset in [-40, 60]
        t.add(ex(1_000, 1_300, 1_050)); // offset in [250, 300]
        let b = t.bound().unwrap();
        assert!(!b.consistent);
        assert_eq!((b.lo, b.hi), (250, 300));
        assert_eq!(b.min_round_trip, 50);
    }

    #[test]
    fn backward_local_stamps_are_ignored_and_nothing_gives_no_bound() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.bound(), None);
        assert!(!t.add(ex(100, 50, 90)));
        assert_eq!(t.bound(), None);
    }
}
