//! Property tests: payload stamp/check round trip, and the tracker against a model.

use std::collections::HashSet;

use mint_traffic::frame::{Endpoints, FrameTemplate, parse_frame};
use mint_traffic::payload::{MAX_SEQ, PayloadInfo, PayloadTemplate, check};
use mint_traffic::tracker::{Observation, SeqTracker};
use mint_traffic::{PacketKind, Schedule, config::GenConfig, config::Pattern};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn payload_round_trip(seed: u64, seq in 0..=MAX_SEQ, tsc: u64, len in 0u16..=16352, seq2 in 0..=MAX_SEQ, tsc2: u64, run: u8) {
        let t = PayloadTemplate::new(seed, len).with_run(run);
        let mut buf = vec![0u8; t.payload_len()];
        t.write(&mut buf).unwrap();
        t.stamp(&mut buf, seq, tsc).unwrap();
        prop_assert_eq!(check(&buf), Ok(PayloadInfo { seq, run, inject_tsc: tsc }));
        // Re-stamping the same buffer works as well.
        t.stamp(&mut buf, seq2, tsc2).unwrap();
        prop_assert_eq!(check(&buf), Ok(PayloadInfo { seq: seq2, run, inject_tsc: tsc2 }));
    }

    #[test]
    fn payload_any_single_flip_detected(seed: u64, len in 0u16..600, pos: prop::sample::Index, bit in 0u8..8) {
        let t = PayloadTemplate::new(seed, len);
        let mut buf = vec![0u8; t.payload_len()];
        t.write(&mut buf).unwrap();
        t.stamp(&mut buf, 1, 2).unwrap();
        let i = pos.index(buf.len());
        buf[i] ^= 1 << bit;
        prop_assert!(check(&buf).is_err());
    }

    #[test]
    fn frame_round_trip(udp: bool, size in 60u32..=16384, seed: u64, seq in 0..=MAX_SEQ, tsc: u64) {
        let kind = if udp { PacketKind::Udp } else { PacketKind::Raw };
        let t = FrameTemplate::new(kind, size, &Endpoints::default(), seed).unwrap();
        let mut f = t.frame().to_vec();
        t.stamp(&mut f, seq, tsc).unwrap();
        prop_assert_eq!(f.len(), size as usize);
        prop_assert_eq!(check(parse_frame(kind, &f).unwrap()), Ok(PayloadInfo { seq, run: 0, inject_tsc: tsc }));
    }

    #[test]
    fn schedule_counts(count in 1u32..3000, interval in 0u64..1_000_000, seed: u64, k in 1u32..=4096, which in 0u8..3) {
        let pattern = match which { 0 => Pattern::Fixed, 1 => Pattern::Poisson, _ => Pattern::Burst(k) };
        let cfg = GenConfig { count, interval_ns: interval, seed, pattern, ..GenConfig::default() };
        let v: Vec<u64> = Schedule::new(&cfg).collect();
        prop_assert_eq!(v.len(), count as usize);
        prop_assert!(v.windows(2).all(|w| w[0] <= w[1]));
        prop_assert_eq!(v, Schedule::new(&cfg).collect::<Vec<u64>>());
    }

    /// A locally shuffled stream with duplicates, checked against an exact
    /// set-based model: displacement and duplicate distance stay inside the
    /// window, so every classification must match the model.
    #[test]
    fn tracker_matches_model(
        n in 1u32..3000,
        swaps in prop::collection::vec((any::<prop::sample::Index>(), 0usize..64), 0..400),
        dups in prop::collection::vec((any::<prop::sample::Index>(), 0usize..1000), 0..200),
        drops in prop::collection::vec(any::<prop::sample::Index>(), 0..100),
    ) {
        let mut stream: Vec<u32> = (0..n).collect();
        for (i, d) in swaps {
            let a = i.index(stream.len());
            let b = (a + d).min(stream.len() - 1);
            stream.swap(a, b);
        }
        for (i, d) in dups {
            let a = i.index(stream.len());
            let at = (a + d).min(stream.len());
            let s = stream[a];
            stream.insert(at, s);
        }
        for i in drops {
            if stream.len() > 1 {
                let a = i.index(stream.len());
                stream.remove(a);
            }
        }
        let mut t = SeqTracker::new();
        let mut seen = HashSet::new();
        let mut next = 0u64;
        let (mut dup, mut ooo, mut gaps) = (0u64, 0u64, 0u64);
        for &s in &stream {
            let s64 = u64::from(s);
            let expect = if s64 >= next {
                let missed = s64 - next;
                next = s64 + 1;
                seen.insert(s);
                if missed == 0 { Observation::InOrder } else { gaps += 1; Observation::Gap(missed as u32) }
            } else if !seen.insert(s) {
                dup += 1;
                Observation::Duplicate
            } else {
                ooo += 1;
                Observation::OutOfOrder
            };
            prop_assert_eq!(t.observe(s), expect, "seq {}", s);
        }
        prop_assert_eq!(t.stale(), 0);
        prop_assert_eq!((t.duplicates(), t.out_of_order(), t.gaps()), (dup, ooo, gaps));
        prop_assert_eq!(t.received(), stream.len() as u64);
        prop_assert_eq!(t.missing(n), n - seen.len() as u32);
    }

    /// Any order at all with a tiny window: whatever is not stale is exact,
    /// and distinct + stale never undercounts what arrived.
    #[test]
    fn tracker_small_window_any_order(seqs in prop::collection::vec(0u32..500, 0..2000)) {
        let mut t = SeqTracker::<2>::with_window(); // 128 seqs
        let mut seen = HashSet::new();
        let mut next = 0u64;
        for &s in &seqs {
            let obs = t.observe(s);
            let s64 = u64::from(s);
            match obs {
                Observation::Stale => prop_assert!(next - s64 > 128),
                Observation::Duplicate => prop_assert!(seen.contains(&s)),
                Observation::OutOfOrder => prop_assert!(!seen.contains(&s) && s64 < next),
                Observation::InOrder => prop_assert_eq!(s64, next),
                Observation::Gap(m) => prop_assert_eq!(u64::from(m), s64 - next),
            }
            if obs != Observation::Stale {
                seen.insert(s);
            }
            next = next.max(s64 + 1);
        }
        prop_assert_eq!(t.distinct(), seen.len() as u64);
        prop_assert!(t.missing(500) >= 500 - seqs.iter().collect::<HashSet<_>>().len() as u32);
    }
}
