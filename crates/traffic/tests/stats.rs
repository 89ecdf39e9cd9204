//! Summaries (nearest rank on known arrays) and the log2 histogram.

use mint_traffic::stats::{BUCKETS, Histogram, Summary, nearest_rank};

#[test]
fn nearest_rank_known_arrays() {
    let v: Vec<u64> = (1..=10).collect();
    assert_eq!(nearest_rank(&v, 500), Some(5));
    assert_eq!(nearest_rank(&v, 990), Some(10));
    assert_eq!(nearest_rank(&v, 0), Some(1));
    assert_eq!(nearest_rank(&v, 1000), Some(10));
    assert_eq!(nearest_rank(&v, 5000), Some(10));
    assert_eq!(nearest_rank(&v, 100), Some(1));
    assert_eq!(nearest_rank(&v, 101), Some(2));
    let h: Vec<u64> = (1..=100).collect();
    assert_eq!(nearest_rank(&h, 500), Some(50));
    assert_eq!(nearest_rank(&h, 990), Some(99));
    assert_eq!(nearest_rank(&h, 999), Some(100));
    // Classic textbook example: 15, 20, 35, 40, 50.
    let w = [15, 20, 35, 40, 50];
    assert_eq!(nearest_rank(&w, 50), Some(15));
    assert_eq!(nearest_rank(&w, 300), Some(20));
    assert_eq!(nearest_rank(&w, 400), Some(20));
    assert_eq!(nearest_rank(&w, 500), Some(35));
    assert_eq!(nearest_rank(&w, 1000), Some(50));
    assert_eq!(nearest_rank(&[], 500), None);
}

#[test]
fn summary_of_known_array() {
    let mut v = [9u64, 1, 8, 2, 7, 3, 6, 4, 5, 10];
    let s = Summary::from_samples(&mut v);
    assert_eq!(v, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "sorted in place");
    assert_eq!((s.count, s.min, s.max, s.p50, s.p99), (10, 1, 10, 5, 10));
    assert_eq!(s.mean, 5.5);
    assert_eq!(s.to_string(), "n=10 min=1 p50=5 p99=10 max=10 mean=5.5");

    let mut big: Vec<u64> = (0..1000).rev().collect();
    let s = Summary::from_samples(&mut big);
    assert_eq!((s.min, s.p50, s.p99, s.max), (0, 499, 989, 999));
    assert_eq!(s.mean, 499.5);
}

#[test]
fn summary_single_and_empty() {
    let s = Summary::from_samples(&mut [42]);
    assert_eq!(
        (s.count, s.min, s.max, s.p50, s.p99, s.mean),
        (1, 42, 42, 42, 42, 42.0)
    );
    let e = Summary::from_samples(&mut []);
    assert_eq!(e, Summary::empty());
    assert!(e.is_empty());
    assert_eq!(e.count, 0);
    assert_eq!(e.to_string(), "n=0");
    assert_eq!(Summary::default(), Summary::empty());
}

#[test]
fn summary_mean_does_not_overflow() {
    let mut v = [u64::MAX; 4];
    let s = Summary::from_samples(&mut v);
    assert_eq!(s.mean, u64::MAX as f64);
}

#[test]
fn histogram_buckets() {
    assert_eq!(BUCKETS, 64);
    assert_eq!(Histogram::bucket_of(0), 0);
    assert_eq!(Histogram::bucket_of(1), 0);
    assert_eq!(Histogram::bucket_of(2), 1);
    assert_eq!(Histogram::bucket_of(3), 1);
    assert_eq!(Histogram::bucket_of(4), 2);
    assert_eq!(Histogram::bucket_of(1023), 9);
    assert_eq!(Histogram::bucket_of(1024), 10);
    assert_eq!(Histogram::bucket_of(u64::MAX), 63);
    assert_eq!(Histogram::bucket_range(0), (0, 1));
    assert_eq!(Histogram::bucket_range(10), (1024, 2047));
    assert_eq!(Histogram::bucket_range(63), (1 << 63, u64::MAX));
    for i in 0..BUCKETS {
        let (lo, hi) = Histogram::bucket_range(i);
        assert_eq!(Histogram::bucket_of(lo), i);
        assert_eq!(Histogram::bucket_of(hi), i);
    }
}

#[test]
fn histogram_records() {
    let mut h = Histogram::new();
    assert_eq!(
        (h.count(), h.min(), h.max(), h.mean()),
        (0, None, None, None)
    );
    assert_eq!(h.percentile_upper_bound(500), None);
    for v in 1..=100u64 {
        h.record(v);
    }
    assert_eq!(h.count(), 100);
    assert_eq!((h.min(), h.max()), (Some(1), Some(100)));
    assert_eq!(h.mean(), Some(50.5));
    assert_eq!(h.buckets().iter().sum::<u64>(), 100);
    // Median is 50, in bucket [32, 63]; the bound is the bucket top.
    assert_eq!(h.percentile_upper_bound(500), Some(63));
    // p99 = 99, in [64, 127], tightened by max 100.
    assert_eq!(h.percentile_upper_bound(990), Some(100));
    assert_eq!(h.percentile_upper_bound(0), Some(1));
    let rows: Vec<_> = h.nonempty().collect();
    assert_eq!(rows[0], (0, 1, 1));
    assert_eq!(rows.last(), Some(&(64, 127, 37)));
}

#[test]
fn histogram_bounds_match_exact_percentiles() {
    // The exact nearest-rank value always lies in (bound/2, bound].
    let mut samples: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 100_003 + i * i).collect();
    let mut h = Histogram::new();
    for &s in &samples {
        h.record(s);
    }
    samples.sort_unstable();
    for pm in [0, 10, 500, 900, 990, 999, 1000] {
        let exact = nearest_rank(&samples, pm).unwrap();
        let bound = h.percentile_upper_bound(pm).unwrap();
        assert!(
            exact <= bound && Histogram::bucket_of(exact) == Histogram::bucket_of(bound),
            "{pm}"
        );
    }
}

#[test]
fn histogram_merge_and_reset() {
    let mut a = Histogram::new();
    let mut b = Histogram::default();
    a.record(5);
    b.record(500);
    b.record(0);
    a.merge(&b);
    assert_eq!((a.count(), a.min(), a.max()), (3, Some(0), Some(500)));
    a.reset();
    assert_eq!(a, Histogram::new());
    // Merging an empty histogram changes nothing.
    b.merge(&Histogram::new());
    assert_eq!((b.count(), b.min(), b.max()), (2, Some(0), Some(500)));
}

#[test]
fn an_empty_summary_is_none_not_zeros() {
    let empty = mint_traffic::Summary::from_samples(&mut []);
    assert_eq!(empty.non_empty(), None);
    let one = mint_traffic::Summary::from_samples(&mut [7]);
    assert_eq!(one.non_empty().map(|s| s.p50), Some(7));
}
