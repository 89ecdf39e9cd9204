//! The native floors: what the hardware itself gives two pinned host
//! threads, measured in the same run as (later) the data path's figures.
//!
//! - [`pingpong`]: a cache-line ping-pong between the two CPUs (the
//!   placement, and the floor of cross-core signalling);
//! - [`copies`]: one core copying a frame into buffers rotating through a
//!   ring laid out like the debug NIC's (256 buffers of 16 KiB);
//! - [`xcore_copies`]: the support CPU copying a frame into the buffer the
//!   target CPU has just read, then publishing it with a release store
//!   (what a send cannot go below);
//! - [`spsc`]: a two-copy queue over 256 buffers of 16 KiB, producer on
//!   the support CPU, consumer on the target CPU (what a delivered
//!   throughput cannot go above), in both orders of reusing its buffers:
//!   the one released last (hot in cache, but its lines cross back to the
//!   producer at once) and the oldest (the ring's rotation, the two cores
//!   on different buffers); the floor is the faster.
//!
//! The buffers passed between the two threads are `mint-skb`'s pool, the
//! one the target's driver hands socket buffers to its stack with: its
//! loans make the two threads' accesses alias-free by type, so nothing
//! here needs `unsafe`. Every interval is timed on one CPU (lfence; rdtsc
//! at both ends), so the two cores' TSC offset never enters a figure.
//! Every wait on the other thread is bounded ([`WAIT_LIMIT`]).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::os::rdtsc;

/// Frame sizes of the paper's tables.
pub const SIZES: [usize; 6] = [1024, 1514, 4096, 8192, 12288, 16384];
/// The debug NIC's RX ring: buffers and their size.
pub const RING_SLOTS: usize = mint_abi::debug_nic::RING_SLOTS as usize;
pub const BUFFER_SIZE: usize = mint_abi::debug_nic::BUFFER_SIZE;
/// The SPSC floor's two orders of reusing buffers, measured in this order.
pub const SPSC_REUSE: [mint_skb::Reuse; 2] = [
    mint_skb::Reuse::LastReleased,
    mint_skb::Reuse::OldestReleased,
];
/// How long one thread waits for the other before giving up.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The two host CPUs: the support side (sender) and the target side
/// (receiver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub support: usize,
    pub target: usize,
}

/// What both threads of one measurement share: a way to stop the other
/// when one fails, and the wait limit in ticks.
pub(super) struct Ctl {
    abort: AtomicBool,
    limit_ticks: u64,
}

/// The other side stopped (its own error says why).
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the other thread stopped")
    }
}

impl std::error::Error for Aborted {}

impl Ctl {
    /// Spins until `cond`, at most the wait limit; gives up at once when
    /// the other side has stopped.
    pub(super) fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
        let mut spins: u32 = 0;
        let mut since: Option<u64> = None;
        while !cond() {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) {
                if self.abort.load(Ordering::Relaxed) {
                    return Err(Aborted.into());
                }
                let now = rdtsc();
                let start = *since.get_or_insert(now);
                if now.saturating_sub(start) > self.limit_ticks {
                    self.abort.store(true, Ordering::Relaxed);
                    bail!("waited more than {} s for {what}", WAIT_LIMIT.as_secs());
                }
            }
        }
        Ok(())
    }
}

/// Times the kernel took the CPU away from the measuring threads
/// (`nonvoluntary_ctxt_switches` of each, summed over every measurement
/// since the last [`take_preemptions`]): support side, target side.
static PREEMPTED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// The calling thread's involuntary context switches so far (`None`
/// where /proc does not say).
fn involuntary_switches() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Runs `f`, adding the calling thread's involuntary switches during it
/// to `PREEMPTED[side]`.
fn counting_preemptions<T>(side: usize, f: impl FnOnce() -> T) -> T {
    let before = involuntary_switches();
    let out = f();
    if let (Some(a), Some(b)) = (before, involuntary_switches()) {
        PREEMPTED[side].fetch_add(b.saturating_sub(a), Ordering::Relaxed);
    }
    out
}

/// How often the support and the target thread were preempted since the
/// last call (reset to 0): a preempted sample includes the time another
/// task (or the host) held the CPU.
pub fn take_preemptions() -> [u64; 2] {
    [
        PREEMPTED[0].swap(0, Ordering::Relaxed),
        PREEMPTED[1].swap(0, Ordering::Relaxed),
    ]
}

/// Pins the calling thread to `cpu` and checks that it runs there.
fn pin(cpu: usize, role: &str) -> Result<()> {
    crate::os::pin_current_thread(cpu)
        .with_context(|| format!("cannot pin the {role} thread to CPU {cpu}"))?;
    match crate::os::current_cpu() {
        Some(now) if now == cpu => Ok(()),
        now => bail!("the {role} thread, pinned to CPU {cpu}, runs on CPU {now:?}"),
    }
}

/// Runs `support` on the support CPU and `target` on the target CPU, each
/// on a thread of its own pinned there, and returns both results. When
/// one fails the other is stopped, and the first real error is returned.
pub(super) fn on_pair<A: Send, B: Send>(
    pair: Pair,
    tsc_hz: u64,
    support: impl FnOnce(&Ctl) -> Result<A> + Send,
    target: impl FnOnce(&Ctl) -> Result<B> + Send,
) -> Result<(A, B)> {
    let ctl = Ctl {
        abort: AtomicBool::new(false),
        limit_ticks: tsc_hz.saturating_mul(WAIT_LIMIT.as_secs()),
    };
    let (a, b) = std::thread::scope(|s| {
        let ctl = &ctl;
        let t = s.spawn(move || {
            let r =
                pin(pair.target, "target").and_then(|()| counting_preemptions(1, || target(ctl)));
            if r.is_err() {
                ctl.abort.store(true, Ordering::Relaxed);
            }
            r
        });
        let a = s.spawn(move || {
            let r = pin(pair.support, "support")
                .and_then(|()| counting_preemptions(0, || support(ctl)));
            if r.is_err() {
                ctl.abort.store(true, Ordering::Relaxed);
            }
            r
        });
        (
            a.join()
                .unwrap_or_else(|_| Err(anyhow!("the support thread panicked"))),
            t.join()
                .unwrap_or_else(|_| Err(anyhow!("the target thread panicked"))),
        )
    });
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        // The side that failed first, not the one it stopped.
        (Err(e), Err(other)) if e.is::<Aborted>() => Err(other),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The cost of the timer itself: `lfence; rdtsc` twice, back to back, on
/// the support CPU. Every other sample includes it once.
pub fn timer_overhead(pair: Pair, samples: usize) -> Result<Vec<u64>> {
    // No waits on the other side: the wait limit does not matter.
    let (ticks, ()) = on_pair(
        pair,
        1,
        |_| {
            let mut out = Vec::with_capacity(samples);
            for _ in 0..samples {
                let t0 = rdtsc();
                let t1 = rdtsc();
                out.push(t1 - t0);
            }
            Ok(out)
        },
        |_| Ok(()),
    )?;
    Ok(ticks)
}

/// A cache line of its own (128 bytes: adjacent-line prefetch pairs lines).
#[repr(align(128))]
struct Line(AtomicU64);

/// `rounds` round trips (after `rounds / 10` for warm-up) of a counter
/// between the two CPUs: the support CPU writes `i` into one line, the
/// target CPU answers with `i` in another. Ticks per round trip, timed on
/// the support CPU.
pub fn pingpong(pair: Pair, tsc_hz: u64, rounds: usize) -> Result<Vec<u64>> {
    const STOP: u64 = u64::MAX;
    let ping = Line(AtomicU64::new(0));
    let pong = Line(AtomicU64::new(0));
    let warm = rounds / 10;
    let (rtt, ()) = on_pair(
        pair,
        tsc_hz,
        |ctl| {
            let mut out = Vec::with_capacity(rounds);
            for i in 1..=(warm + rounds) as u64 {
                let t0 = rdtsc();
                ping.0.store(i, Ordering::Release);
                ctl.wait("the target's answer", || {
                    pong.0.load(Ordering::Acquire) == i
                })?;
                let t1 = rdtsc();
                if i as usize > warm {
                    out.push(t1 - t0);
                }
            }
            ping.0.store(STOP, Ordering::Release);
            Ok(out)
        },
        |ctl| {
            let mut last = 0;
            loop {
                let mut seen = last;
                ctl.wait("the support side's ping", || {
                    seen = ping.0.load(Ordering::Acquire);
                    seen != last
                })?;
                if seen == STOP {
                    return Ok(());
                }
                pong.0.store(seen, Ordering::Release);
                last = seen;
            }
        },
    )?;
    Ok(rtt)
}

/// `len` bytes that start on a page boundary, in an allocation of their
/// own (safe code: a page more than asked for, and the offset of the
/// first boundary in it).
///
/// Every floor's buffers start on a page, as the socket buffers do: the
/// host's memcpy copies 4 KiB and more with `rep movsb`, which some CPUs
/// (AMD Zen 3 here) run 10-20 times slower when the destination is 1-63
/// bytes past the source modulo 4 KiB. Buffers at wherever the allocator
/// put them fall in that window by chance, run to run, and a floor taken
/// there would be the allocator's luck, not the copy's cost.
pub struct PageAligned {
    bytes: Vec<u8>,
    at: usize,
    len: usize,
}

impl PageAligned {
    /// `len` bytes, byte `i` `fill(i)` (every page written, so none is
    /// mapped in while timed).
    pub fn new(len: usize, fill: impl Fn(usize) -> u8) -> PageAligned {
        let mut bytes = vec![0u8; len + 4095];
        let at = bytes.as_ptr().align_offset(4096).min(4095);
        for (i, b) in bytes[at..at + len].iter_mut().enumerate() {
            *b = fill(i);
        }
        // A fill of zeroes into zeroed memory may be optimised away: one
        // store per page the compiler must keep maps every page now.
        for page in bytes[at..at + len].chunks_mut(4096) {
            page[0] = black_box(page[0]);
        }
        PageAligned { bytes, at, len }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.at..self.at + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[self.at..self.at + self.len]
    }
}

/// A frame's worth of bytes that are not all alike, on a page of its own.
fn frame_source() -> PageAligned {
    PageAligned::new(BUFFER_SIZE, |i| (i * 7 + 3) as u8)
}

/// One core copying `copies` frames of `size` bytes from one source into
/// buffers rotating through a ring of [`RING_SLOTS`] x [`BUFFER_SIZE`]
/// (touched beforehand, so no page is faulted in while timed); ticks per
/// copy (`copy_from_slice`, the platform's memcpy), on the support CPU.
pub fn copies(pair: Pair, sizes: &[usize], copies: usize) -> Result<Vec<Vec<u64>>> {
    // No waits on the other side: the wait limit does not matter.
    let (out, ()) = on_pair(
        pair,
        1,
        |_| {
            let src = frame_source();
            let src = src.as_slice();
            let mut window = PageAligned::new(RING_SLOTS * BUFFER_SIZE, |_| 1);
            let window = window.as_mut_slice();
            black_box(&mut *window);
            let mut out = Vec::with_capacity(sizes.len());
            for &size in sizes {
                let mut ticks = Vec::with_capacity(copies);
                for i in 0..copies {
                    let at = (i % RING_SLOTS) * BUFFER_SIZE;
                    let t0 = rdtsc();
                    window[at..at + size].copy_from_slice(&src[..size]);
                    black_box(&mut window[at..at + size]);
                    let t1 = rdtsc();
                    ticks.push(t1 - t0);
                }
                out.push(ticks);
            }
            Ok(out)
        },
        |_| Ok(()),
    )?;
    Ok(out)
}

/// `copies` frames of `size` bytes copied by the support CPU into the one
/// buffer of a `mint-skb` pool and published (the pool's release store),
/// each time after the target CPU has read the previous frame out of that
/// buffer (copied it into a buffer of its own) and released it: ticks of
/// the copy and the publication, on the support CPU.
pub fn xcore_copies(pair: Pair, tsc_hz: u64, size: usize, copies: usize) -> Result<Vec<u64>> {
    let (mut producer, mut consumer) = mint_skb::pool(1, BUFFER_SIZE);
    let (ticks, ()) = on_pair(
        pair,
        tsc_hz,
        move |ctl| {
            let src = frame_source();
            let src = src.as_slice();
            let mut ticks = Vec::with_capacity(copies);
            for _ in 0..copies {
                ctl.wait("the target to release the buffer", || {
                    producer.buffer().is_some()
                })?;
                let t0 = rdtsc();
                let Some(buffer) = producer.buffer() else {
                    bail!("the buffer the target released is gone");
                };
                buffer[..size].copy_from_slice(&src[..size]);
                let published = producer.commit(size);
                let t1 = rdtsc();
                if !published {
                    bail!("a free buffer could not be published");
                }
                ticks.push(t1 - t0);
            }
            Ok(ticks)
        },
        move |ctl| {
            let mut own = PageAligned::new(BUFFER_SIZE, |_| 0);
            for _ in 0..copies {
                copy_out(ctl, &mut consumer, own.as_mut_slice(), size)?;
            }
            Ok(())
        },
    )?;
    Ok(ticks)
}

/// One repetition of the SPSC floor.
#[derive(Clone, Copy, Debug)]
pub struct SpscRep {
    /// Which free buffer the producer took next.
    pub reuse: mint_skb::Reuse,
    pub frames: u64,
    pub bytes: u64,
    /// From before the first copy in to the producer seeing the last
    /// frame consumed (on the support CPU).
    pub ticks: u64,
}

/// `reps` repetitions of `frames` frames of `size` bytes through a
/// `mint-skb` pool of [`RING_SLOTS`] x [`BUFFER_SIZE`] reusing its free
/// buffers in `reuse` order: the support CPU copies each frame in and
/// publishes it, the target CPU copies it out into a buffer of its own and
/// releases it.
pub fn spsc(
    pair: Pair,
    tsc_hz: u64,
    size: usize,
    frames: u64,
    reps: usize,
    reuse: mint_skb::Reuse,
) -> Result<Vec<SpscRep>> {
    let (mut producer, mut consumer) = mint_skb::pool_with(RING_SLOTS, BUFFER_SIZE, reuse);
    let done = Line(AtomicU64::new(0));
    let (out, ()) = on_pair(
        pair,
        tsc_hz,
        |ctl| {
            let src = frame_source();
            let src = src.as_slice();
            let mut out = Vec::with_capacity(reps);
            for rep in 1..=reps as u64 {
                let t0 = rdtsc();
                for _ in 0..frames {
                    ctl.wait("a free buffer", || producer.buffer().is_some())?;
                    let Some(buffer) = producer.buffer() else {
                        bail!("a free buffer is gone");
                    };
                    buffer[..size].copy_from_slice(&src[..size]);
                    if !producer.commit(size) {
                        bail!("a free buffer could not be published");
                    }
                }
                ctl.wait("the target to take every frame", || {
                    done.0.load(Ordering::Acquire) == rep
                })?;
                let t1 = rdtsc();
                out.push(SpscRep {
                    reuse,
                    frames,
                    bytes: frames * size as u64,
                    ticks: t1 - t0,
                });
            }
            Ok(out)
        },
        |ctl| {
            let mut own = PageAligned::new(BUFFER_SIZE, |_| 0);
            for rep in 1..=reps as u64 {
                for _ in 0..frames {
                    copy_out(ctl, &mut consumer, own.as_mut_slice(), size)?;
                }
                done.0.store(rep, Ordering::Release);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// The target CPU's side of both copy floors: waits for the next frame,
/// checks its size, copies it out into `own` and releases its buffer.
fn copy_out(
    ctl: &Ctl,
    consumer: &mut mint_skb::Consumer,
    own: &mut [u8],
    size: usize,
) -> Result<()> {
    ctl.wait("a frame from the support side", || !consumer.is_empty())?;
    let Some(skb) = consumer.front() else {
        bail!("a published frame is gone");
    };
    let frame = skb.frame();
    if frame.len() != size {
        bail!("a frame of {} bytes arrived, {size} were sent", frame.len());
    }
    own[..size].copy_from_slice(frame);
    black_box(&mut *own);
    skb.release();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_pair() -> Option<Pair> {
        let cpus = crate::os::allowed_cpus().ok()?;
        Some(Pair {
            support: *cpus.first()?,
            target: *cpus.get(1).unwrap_or(cpus.first()?),
        })
    }

    #[test]
    fn every_floor_gives_its_samples() {
        // Two threads on one CPU would still finish (spinning yields to
        // the scheduler eventually), but slowly: keep the counts small.
        let Some(pair) = any_pair() else { return };
        let hz = 3_000_000_000;
        assert_eq!(pingpong(pair, hz, 50).expect("pingpong").len(), 50);
        let c = copies(pair, &[64, 1514], 10).expect("copies");
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10]);
        assert_eq!(xcore_copies(pair, hz, 1514, 20).expect("xcore").len(), 20);
        for reuse in [
            mint_skb::Reuse::LastReleased,
            mint_skb::Reuse::OldestReleased,
        ] {
            let reps = spsc(pair, hz, 4096, 600, 2, reuse).expect("spsc");
            assert_eq!(reps.len(), 2);
            assert!(
                reps.iter()
                    .all(|r| r.reuse == reuse && r.bytes == 600 * 4096 && r.ticks > 0)
            );
        }
    }
}
