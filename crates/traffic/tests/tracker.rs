//! Sequence tracking: in order, gaps, late arrivals, duplicates, stale, final loss count.

use Observation::*;
use mint_traffic::tracker::{Observation, SeqTracker};

#[test]
fn in_order_stream() {
    let mut t = SeqTracker::new();
    for s in 0..100_000 {
        assert_eq!(t.observe(s), InOrder);
    }
    assert_eq!(t.received(), 100_000);
    assert_eq!(t.distinct(), 100_000);
    assert_eq!(
        (t.duplicates(), t.out_of_order(), t.gaps(), t.stale()),
        (0, 0, 0, 0)
    );
    assert_eq!(t.missing(100_000), 0);
    assert_eq!(t.next_expected(), 100_000);
}

#[test]
fn gap_then_late_fill() {
    let mut t = SeqTracker::new();
    assert_eq!(t.observe(0), InOrder);
    assert_eq!(t.observe(1), InOrder);
    assert_eq!(t.observe(5), Gap(3));
    assert_eq!(t.observe(3), OutOfOrder);
    assert_eq!(t.observe(6), InOrder);
    assert_eq!(t.observe(3), Duplicate);
    assert_eq!(t.observe(5), Duplicate);
    assert_eq!(t.missing(7), 2); // 2 and 4
    assert_eq!(t.observe(2), OutOfOrder);
    assert_eq!(t.observe(4), OutOfOrder);
    assert_eq!(t.missing(7), 0);
    assert_eq!(t.received(), 9);
    assert_eq!((t.duplicates(), t.out_of_order(), t.gaps()), (2, 3, 1));
}

#[test]
fn first_packet_missing() {
    let mut t = SeqTracker::new();
    assert_eq!(t.observe(2), Gap(2));
    assert_eq!(t.observe(0), OutOfOrder);
    assert_eq!(t.missing(3), 1);
}

#[test]
fn duplicate_of_in_order() {
    let mut t = SeqTracker::new();
    t.observe(0);
    assert_eq!(t.observe(0), Duplicate);
    t.observe(1);
    assert_eq!(t.observe(0), Duplicate);
    assert_eq!(t.observe(1), Duplicate);
}

#[test]
fn tail_loss_counts_as_missing() {
    let mut t = SeqTracker::new();
    for s in 0..90 {
        t.observe(s);
    }
    assert_eq!(t.missing(100), 10);
    assert_eq!(t.gaps(), 0, "tail loss is not seen until the end");
}

#[test]
fn duplicates_exact_across_the_full_window() {
    let mut t = SeqTracker::new();
    for s in 0..10_000 {
        t.observe(s);
    }
    // The window is the 4096 seqs below next (5904..10000).
    assert_eq!(SeqTracker::<64>::WINDOW, 4096);
    for s in 5904..10_000 {
        assert_eq!(t.observe(s), Duplicate, "seq {s}");
    }
    assert_eq!(t.observe(5903), Stale);
    assert_eq!(t.observe(0), Stale);
    assert_eq!(t.stale(), 2);
    assert_eq!(t.missing(10_000), 0);
}

#[test]
fn late_arrival_at_window_edge() {
    let mut t = SeqTracker::new();
    t.observe(0);
    assert_eq!(t.observe(4096), Gap(4095));
    assert_eq!(
        t.observe(1),
        OutOfOrder,
        "exactly WINDOW below next is still tracked"
    );
    assert_eq!(t.observe(1), Duplicate);
    assert_eq!(t.observe(4097), InOrder);
    assert_eq!(t.observe(2), OutOfOrder);
    assert_eq!(t.observe(1), Stale);
    assert_eq!(t.missing(4098), 4098 - 5); // got 0, 1, 2, 4096, 4097
}

#[test]
fn huge_gap_clears_window() {
    let mut t = SeqTracker::new();
    for s in 0..100 {
        t.observe(s);
    }
    assert_eq!(t.observe(1_000_000), Gap(1_000_000 - 100));
    // Old slots must not masquerade as seen: 1_000_000 − 4000 is new.
    assert_eq!(t.observe(1_000_000 - 4000), OutOfOrder);
    assert_eq!(t.observe(1_000_000 - 4000), Duplicate);
    assert_eq!(t.observe(99), Stale);
}

#[test]
fn slot_reuse_after_gap_is_clean() {
    // Seq s and s + WINDOW share a slot; a gap must clear the reused slots.
    let mut t = SeqTracker::<1>::with_window(); // 64-seq window
    assert_eq!(SeqTracker::<1>::WINDOW, 64);
    for s in 0..64 {
        t.observe(s);
    }
    assert_eq!(t.observe(64 + 10), Gap(10));
    for s in 64..74 {
        assert_eq!(t.observe(s), OutOfOrder, "seq {s}");
    }
    assert_eq!(t.observe(70), Duplicate);
    // Window is now 11..75: 10 fell out, 11 is still remembered.
    assert_eq!(t.observe(10), Stale);
    assert_eq!(t.observe(11), Duplicate);
    assert_eq!(t.observe(12), Duplicate);
}

#[test]
fn extreme_seqs() {
    let mut t = SeqTracker::new();
    assert_eq!(t.observe(u32::MAX), Gap(u32::MAX));
    assert_eq!(t.observe(u32::MAX), Duplicate);
    assert_eq!(t.observe(u32::MAX - 1), OutOfOrder);
    assert_eq!(t.next_expected(), 1u64 << 32);
    // Seqs at or past `total_sent` still count as distinct arrivals (the
    // receiver is expected to drop them before tracking): 10 − 2.
    assert_eq!(t.missing(10), 8);
    assert_eq!(t.missing(1), 0, "saturates");
}

#[test]
fn ten_million_in_order_no_allocation() {
    // 512 bytes of window whatever the run length.
    assert!(core::mem::size_of::<SeqTracker>() <= 512 + 8 * 8);
    let mut t = SeqTracker::default();
    for s in 0..10_000_000 {
        if t.observe(s) != InOrder {
            panic!("seq {s}");
        }
    }
    assert_eq!(t.missing(10_000_000), 0);
}

#[test]
fn debug_shows_counters() {
    let mut t = SeqTracker::new();
    t.observe(3);
    let d = format!("{t:?}");
    assert!(d.contains("gaps: 1") && d.contains("window: 4096"), "{d}");
}
