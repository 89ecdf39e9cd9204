//! Seeded PRNGs (SplitMix64, xoshiro256**) so every run is reproducible from one `u64`.
//!
//! Hand-rolled rather than pulled from `rand_xoshiro`: both generators are a
//! few lines, the exact output sequence is part of the wire/behaviour
//! contract (the receiver regenerates payload bodies from the seed, tests pin
//! schedules), and owning the code means no crate upgrade can silently change
//! a run. The algorithms are the public-domain reference ones by Vigna and
//! Blackman; the tests pin their outputs against the reference implementation.

/// SplitMix64's increment (2^64 / golden ratio, odd).
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a strong 64-bit bijective mixer.
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: the `n`-th output is `mix64(seed + (n + 1) * GOLDEN_GAMMA)`,
/// which makes it randomly addressable (payload bodies rely on that).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first output is `mix64(seed + GOLDEN_GAMMA)`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The `index`-th output of the stream seeded with `seed`, in O(1).
    #[inline]
    pub const fn nth_output(seed: u64, index: u64) -> u64 {
        mix64(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)))
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }
}

/// xoshiro256**: fast, 256-bit state, passes BigCrush; used for schedules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xoshiro256StarStar {
    s: [u64; 4],
}

impl Xoshiro256StarStar {
    /// Seeds the state from four SplitMix64 outputs, as the authors
    /// recommend; this never yields the forbidden all-zero state.
    pub fn new(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        Self {
            s: [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()],
        }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform double in `(0, 1]`: 53 random bits, shifted up by one ulp so
    /// that `ln(u)` is always finite (inverse-transform sampling needs that).
    #[inline]
    pub fn next_open01(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        ((self.next_u64() >> 11) + 1) as f64 * SCALE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_output_matches_stream() {
        let mut sm = SplitMix64::new(42);
        for i in 0..100 {
            assert_eq!(sm.next_u64(), SplitMix64::nth_output(42, i));
        }
    }

    /// Reference outputs (Vigna's splitmix64.c / xoshiro256starstar.c, as
    /// also produced by `rand_xoshiro`'s `seed_from_u64`) for seed 1234567.
    #[test]
    fn reference_vectors() {
        let mut sm = SplitMix64::new(1234567);
        assert_eq!(
            [sm.next_u64(), sm.next_u64(), sm.next_u64()],
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
        let mut x = Xoshiro256StarStar::new(1234567);
        assert_eq!(
            [x.next_u64(), x.next_u64(), x.next_u64()],
            [
                3504822795582309479,
                1819558768956484042,
                1250851346055027673
            ]
        );
    }

    #[test]
    fn open01_bounds() {
        let mut r = Xoshiro256StarStar::new(3);
        for _ in 0..10_000 {
            let u = r.next_open01();
            assert!(u > 0.0 && u <= 1.0);
        }
    }
}
