//! Self-checking payload: proves each packet arrived intact and says which one it was and when it left.
//!
//! # Wire format (all integers little endian)
//!
//! ```text
//! offset  size  field
//!      0     2  body_len    u16  number of body bytes that follow the header
//!      2     3  seq         u24  packet number, 0-based, in send order
//!      5     1  run         u8   the run's id, modulo 256 (see below)
//!      6     8  inject_tsc  u64  sender's TSC when the packet was injected
//!     14     4  crc         u32  CRC-32 (IEEE) of  "MINT" ‖ body ‖ bytes 0..14
//!     18     …  body        body_len bytes, fill_body(seed) — same for every packet of a run
//! ```
//!
//! # Why 18 bytes and one CRC
//!
//! The smallest frame is 60 bytes; a UDP frame spends 14 + 20 + 8 = 42 of
//! them on headers, leaving exactly 18 for the payload. The first design
//! (magic u32, seq, tsc, body_len u32, body CRC, header CRC = 28 bytes) does
//! not fit, so it was shrunk, keeping every field a receiver needs at full
//! width (seq u32 for 10M packets, TSC u64 so latency is a plain subtraction):
//!
//! - **one CRC instead of two.** It covers the body *first* and the header
//!   fields last, so the sender computes the body part once per run
//!   ([`PayloadTemplate::new`]) and per packet only continues it over 14
//!   header bytes ([`PayloadTemplate::stamp`]) — as cheap as a header CRC.
//!   The price: a CRC failure does not say whether header or body was hit.
//! - **no magic field.** The CRC is personalised by prefixing the ASCII
//!   magic `"MINT"` (never transmitted), so a foreign payload fails it like a
//!   wrong magic would (with probability 1 − 2⁻³²); and `body_len` must match
//!   the buffer exactly, which rejects random data ~65535 times in 65536
//!   before the CRC is even computed, and reports truncation distinctly.
//! - **body_len u16**: the largest body is 16384 − 14 − 18 = 16352 bytes.
//! - **seq u24 and run u8** share what was a u32 seq: a run has at most
//!   10 million packets ([`crate::config::MAX_COUNT`] < 2²⁴), and the run
//!   byte lets a receiver tell a frame of an earlier, abandoned run (still
//!   in some buffer when the next run starts) from one of the current run,
//!   without guessing from the sequence number. It is the low byte of the
//!   support node's run id: a stale frame goes unnoticed only if it is
//!   exactly a multiple of 256 runs old.
//!
//! The receiver calls [`check`], which verifies, in order: length ≥ header
//! ([`PayloadError::TooShort`]), `body_len` = actual body length
//! ([`PayloadError::LengthMismatch`]), then the CRC
//! ([`PayloadError::BadCrc`]); comparing [`PayloadInfo::run`] with the
//! current run is the receiver's job. Optionally [`verify_body`] additionally
//! proves the body is the one the run's seed defines.

use core::fmt;

use crate::rng::SplitMix64;

/// Payload header length in bytes.
pub const HEADER_LEN: usize = 18;
/// Largest sequence number the 24-bit `seq` field can carry.
pub const MAX_SEQ: u32 = (1 << 24) - 1;
const _: () = assert!(crate::config::MAX_COUNT - 1 <= MAX_SEQ);
/// Largest body length the `body_len` field can express.
pub const MAX_BODY_LEN: usize = u16::MAX as usize;
/// Never transmitted; prefixed to the CRC input so the CRC doubles as a magic.
pub const CRC_MAGIC: [u8; 4] = *b"MINT";

/// Byte ranges of the header fields.
pub mod field {
    use core::ops::Range;
    /// `body_len: u16`.
    pub const BODY_LEN: Range<usize> = 0..2;
    /// `seq: u24`.
    pub const SEQ: Range<usize> = 2..5;
    /// `run: u8`.
    pub const RUN: Range<usize> = 5..6;
    /// `inject_tsc: u64`.
    pub const INJECT_TSC: Range<usize> = 6..14;
    /// `crc: u32`.
    pub const CRC: Range<usize> = 14..18;
    /// Header bytes the CRC covers (after the body): everything before it.
    pub const CRC_COVERED: Range<usize> = 0..14;
}

/// Why a payload was rejected (or a buffer refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadError {
    /// Shorter than the 18-byte header.
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The header's `body_len` disagrees with the bytes actually there
    /// (truncation, padding, or not a payload at all).
    LengthMismatch {
        /// What the header says.
        body_len: u16,
        /// Body bytes present.
        actual: usize,
    },
    /// CRC over magic, body and header fields failed: corrupted (or foreign).
    BadCrc {
        /// CRC carried in the packet.
        stored: u32,
        /// CRC of what arrived.
        computed: u32,
    },
    /// The body is self-consistent but not the one the run's seed defines.
    BodyMismatch {
        /// First differing body offset.
        offset: usize,
    },
    /// Sender side: the buffer given to a template has the wrong length.
    BufferSize {
        /// Length the template produces.
        expected: usize,
        /// Length of the buffer given.
        actual: usize,
    },
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::TooShort { len } => {
                write!(
                    f,
                    "payload too short: {len} bytes, header alone is {HEADER_LEN}"
                )
            }
            PayloadError::LengthMismatch { body_len, actual } => write!(
                f,
                "payload length mismatch: header says {body_len} body bytes, {actual} present"
            ),
            PayloadError::BadCrc { stored, computed } => write!(
                f,
                "payload CRC mismatch: carried {stored:#010x}, computed {computed:#010x}"
            ),
            PayloadError::BodyMismatch { offset } => {
                write!(f, "payload body differs from the seed's at offset {offset}")
            }
            PayloadError::BufferSize { expected, actual } => write!(
                f,
                "payload buffer is {actual} bytes, template needs exactly {expected}"
            ),
        }
    }
}

impl core::error::Error for PayloadError {}

/// What a valid payload tells the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PayloadInfo {
    /// Packet number.
    pub seq: u32,
    /// Low byte of the id of the run that sent it.
    pub run: u8,
    /// Sender's TSC at injection.
    pub inject_tsc: u64,
}

impl PayloadInfo {
    /// Cycles from injection to `rx_tsc`, or `None` if `rx_tsc` is earlier
    /// (unsynchronised TSCs: a measurement bug to report, not to clamp).
    pub const fn latency_cycles(&self, rx_tsc: u64) -> Option<u64> {
        rx_tsc.checked_sub(self.inject_tsc)
    }
}

/// A typed view over payload bytes, smoltcp style: `new_unchecked` wraps,
/// `new_checked` also validates lengths; getters on any `AsRef<[u8]>`,
/// setters on `AsMut<[u8]>`. Getters on an unchecked, too-short buffer panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Payload<T> {
    /// Wraps `buffer` without any check.
    pub const fn new_unchecked(buffer: T) -> Self {
        Payload { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, PayloadError> {
        let p = Payload::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Header present and `body_len` equal to the bytes after it.
    pub fn check_len(&self) -> Result<(), PayloadError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(PayloadError::TooShort { len });
        }
        let body_len = self.body_len();
        if usize::from(body_len) != len - HEADER_LEN {
            return Err(PayloadError::LengthMismatch {
                body_len,
                actual: len - HEADER_LEN,
            });
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header field `body_len`.
    pub fn body_len(&self) -> u16 {
        u16::from_le_bytes(self.array(field::BODY_LEN))
    }

    /// Header field `seq`.
    pub fn seq(&self) -> u32 {
        let [a, b, c] = self.array(field::SEQ);
        u32::from_le_bytes([a, b, c, 0])
    }

    /// Header field `run`.
    pub fn run(&self) -> u8 {
        self.buffer.as_ref()[field::RUN.start]
    }

    /// Header field `inject_tsc`.
    pub fn inject_tsc(&self) -> u64 {
        u64::from_le_bytes(self.array(field::INJECT_TSC))
    }

    /// Header field `crc` (as carried).
    pub fn crc(&self) -> u32 {
        u32::from_le_bytes(self.array(field::CRC))
    }

    /// The `body_len` body bytes.
    pub fn body(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.body_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// The CRC this payload should carry, computed from its current bytes.
    pub fn compute_crc(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&CRC_MAGIC);
        h.update(self.body());
        h.update(&self.buffer.as_ref()[field::CRC_COVERED]);
        h.finalize()
    }

    /// Lengths and CRC are right; returns what the payload says.
    pub fn verify(&self) -> Result<PayloadInfo, PayloadError> {
        self.check_len()?;
        let (stored, computed) = (self.crc(), self.compute_crc());
        if stored != computed {
            return Err(PayloadError::BadCrc { stored, computed });
        }
        Ok(PayloadInfo {
            seq: self.seq(),
            run: self.run(),
            inject_tsc: self.inject_tsc(),
        })
    }

    fn array<const N: usize>(&self, r: core::ops::Range<usize>) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buffer.as_ref()[r]);
        out
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Payload<T> {
    /// Sets `body_len`.
    pub fn set_body_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::BODY_LEN].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `seq` (its low 24 bits: callers keep it at most [`MAX_SEQ`]).
    pub fn set_seq(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_le_bytes()[..3]);
    }

    /// Sets `run`.
    pub fn set_run(&mut self, v: u8) {
        self.buffer.as_mut()[field::RUN.start] = v;
    }

    /// Sets `inject_tsc`.
    pub fn set_inject_tsc(&mut self, v: u64) {
        self.buffer.as_mut()[field::INJECT_TSC].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets `crc`.
    pub fn set_crc(&mut self, v: u32) {
        self.buffer.as_mut()[field::CRC].copy_from_slice(&v.to_le_bytes());
    }

    /// The body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.body_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Recomputes and stores the CRC (O(body); senders use a template instead).
    pub fn fill_crc(&mut self) {
        let crc = self.compute_crc();
        self.set_crc(crc);
    }
}

/// Verifies a received payload: lengths, then CRC. See the module docs.
pub fn check(buf: &[u8]) -> Result<PayloadInfo, PayloadError> {
    Payload::new_unchecked(buf).verify()
}

/// Why [`check_run`] refused a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunCheckError {
    /// The payload itself is bad (length, CRC): see [`check`].
    Payload(PayloadError),
    /// Intact, but sent by another run than the current one (a frame an
    /// abandoned run left in some buffer).
    StaleRun {
        /// The run byte it carries.
        carried: u8,
        /// The current run's byte.
        current: u8,
    },
    /// Intact and of this run, but numbered beyond the run's packet count.
    SeqOutOfRange {
        /// Its sequence number.
        seq: u32,
        /// Packets in the run.
        count: u32,
    },
}

impl fmt::Display for RunCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunCheckError::Payload(e) => e.fmt(f),
            RunCheckError::StaleRun { carried, current } => write!(
                f,
                "payload of run byte {carried:#04x}, the current run's is {current:#04x}"
            ),
            RunCheckError::SeqOutOfRange { seq, count } => {
                write!(f, "payload seq {seq} beyond the run's {count} packets")
            }
        }
    }
}

impl core::error::Error for RunCheckError {}

/// The receiver's whole check for run `run_id` of `count` packets: the
/// payload is intact ([`check`]), carries this run's byte (the low byte of
/// `run_id`), and its seq is below `count`. An intact payload of another
/// run is [`RunCheckError::StaleRun`], never this run's packet.
pub fn check_run(buf: &[u8], run_id: u32, count: u32) -> Result<PayloadInfo, RunCheckError> {
    let info = check(buf).map_err(RunCheckError::Payload)?;
    let current = run_id as u8;
    if info.run != current {
        return Err(RunCheckError::StaleRun {
            carried: info.run,
            current,
        });
    }
    if info.seq >= count {
        return Err(RunCheckError::SeqOutOfRange {
            seq: info.seq,
            count,
        });
    }
    Ok(info)
}

/// Keeps body bytes independent of the schedule's PRNG stream for the same seed.
const BODY_DOMAIN: u64 = 0x6D69_6E74_2D62_6F64; // "mint-bod"

/// Fills `buf` with the run's body bytes: the SplitMix64 stream seeded with
/// `seed ^ BODY_DOMAIN`, each output written little endian.
pub fn fill_body(seed: u64, buf: &mut [u8]) {
    fill_body_at(seed, 0, buf);
}

/// Like [`fill_body`], but `buf` receives body bytes `offset..offset + len`,
/// so a body can be produced (or checked) in small pieces with no buffer
/// of its full size.
pub fn fill_body_at(seed: u64, offset: usize, buf: &mut [u8]) {
    let key = seed ^ BODY_DOMAIN;
    let mut pos = offset;
    let mut rest = buf;
    while !rest.is_empty() {
        let word = SplitMix64::nth_output(key, (pos / 8) as u64).to_le_bytes();
        let from = pos % 8;
        let n = (8 - from).min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(&word[from..from + n]);
        rest = tail;
        pos += n;
    }
}

/// Checks that `body` is exactly the body `fill_body(seed, ..)` would make.
/// Stronger than the CRC (which only proves the packet is self-consistent),
/// for receivers that know the run seed.
pub fn verify_body(seed: u64, body: &[u8]) -> Result<(), PayloadError> {
    let mut expected = [0u8; 64];
    for (i, chunk) in body.chunks(expected.len()).enumerate() {
        let offset = i * expected.len();
        let want = &mut expected[..chunk.len()];
        fill_body_at(seed, offset, want);
        if chunk != want {
            let at = chunk.iter().zip(want.iter()).position(|(a, b)| a != b);
            return Err(PayloadError::BodyMismatch {
                offset: offset + at.unwrap_or(0),
            });
        }
    }
    Ok(())
}

/// Sender side: the per-run part of the payload, computed once, so that each
/// packet costs only writing 14 header bytes and a CRC over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PayloadTemplate {
    seed: u64,
    body_len: u16,
    /// Stamped into every packet's `run` field.
    run: u8,
    /// CRC-32 state after `"MINT" ‖ body`: every packet continues from here.
    body_state: u32,
}

impl PayloadTemplate {
    /// Precomputes the CRC over the magic and the body made from `seed`
    /// (streamed in 256-byte pieces: no body-sized buffer needed).
    pub fn new(seed: u64, body_len: u16) -> Self {
        let mut h = crc32fast::Hasher::new();
        h.update(&CRC_MAGIC);
        let mut chunk = [0u8; 256];
        let total = usize::from(body_len);
        let mut done = 0;
        while done < total {
            let n = chunk.len().min(total - done);
            fill_body_at(seed, done, &mut chunk[..n]);
            h.update(&chunk[..n]);
            done += n;
        }
        PayloadTemplate {
            seed,
            body_len,
            run: 0,
            body_state: h.finalize(),
        }
    }

    /// The same template stamping `run` into every packet.
    pub const fn with_run(self, run: u8) -> Self {
        PayloadTemplate { run, ..self }
    }

    /// The run byte every packet carries.
    pub const fn run(&self) -> u8 {
        self.run
    }

    /// The seed the body is made from.
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// Body length in bytes.
    pub const fn body_len(&self) -> u16 {
        self.body_len
    }

    /// Whole payload length: header + body.
    pub const fn payload_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }

    fn check_buf(&self, buf: &[u8]) -> Result<(), PayloadError> {
        if buf.len() == self.payload_len() {
            Ok(())
        } else {
            Err(PayloadError::BufferSize {
                expected: self.payload_len(),
                actual: buf.len(),
            })
        }
    }

    /// Writes a complete payload (body, and header stamped with seq 0,
    /// tsc 0) into `buf`, which must be exactly [`payload_len`](Self::payload_len)
    /// bytes. Done once per buffer; afterwards only [`stamp`](Self::stamp).
    pub fn write(&self, buf: &mut [u8]) -> Result<(), PayloadError> {
        self.check_buf(buf)?;
        fill_body(self.seed, &mut buf[HEADER_LEN..]);
        self.stamp(buf, 0, 0)
    }

    /// Per packet: writes `body_len`, `seq`, the template's `run`,
    /// `inject_tsc` and the CRC into a buffer previously filled by
    /// [`write`](Self::write). O(header), not O(body): the CRC continues
    /// from the precomputed body state. `seq` is cut to its low 24 bits.
    pub fn stamp(&self, buf: &mut [u8], seq: u32, inject_tsc: u64) -> Result<(), PayloadError> {
        self.stamp_as(buf, self.run, seq, inject_tsc)
    }

    /// [`stamp`](Self::stamp) with another run byte than the template's
    /// (fault injection: a frame that looks like another run's).
    pub fn stamp_as(
        &self,
        buf: &mut [u8],
        run: u8,
        seq: u32,
        inject_tsc: u64,
    ) -> Result<(), PayloadError> {
        self.check_buf(buf)?;
        let mut p = Payload::new_unchecked(&mut *buf);
        p.set_body_len(self.body_len);
        p.set_seq(seq);
        p.set_run(run);
        p.set_inject_tsc(inject_tsc);
        let covered = 4 + u64::from(self.body_len);
        let mut h = crc32fast::Hasher::new_with_initial_len(self.body_state, covered);
        h.update(&buf[field::CRC_COVERED]);
        let crc = h.finalize();
        Payload::new_unchecked(buf).set_crc(crc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_crc_equals_full_crc() {
        for len in [0u16, 1, 7, 8, 9, 255, 256, 257, 1496, 16352] {
            let t = PayloadTemplate::new(99, len);
            let mut buf = [0u8; HEADER_LEN + 16352];
            let buf = &mut buf[..t.payload_len()];
            t.write(buf).unwrap();
            t.stamp(buf, 12345, 0xdead_beef_cafe).unwrap();
            let p = Payload::new_checked(&*buf).unwrap();
            assert_eq!(p.crc(), p.compute_crc(), "len {len}");
        }
    }

    #[test]
    fn fill_body_at_is_consistent_with_whole() {
        let mut whole = [0u8; 100];
        fill_body(5, &mut whole);
        for start in 0..100 {
            for end in start..=100 {
                let mut part = [0u8; 100];
                fill_body_at(5, start, &mut part[..end - start]);
                assert_eq!(&part[..end - start], &whole[start..end]);
            }
        }
    }
}
