//! Send processing time natively: the kernel's per-frame function
//! (`mint_support::Sender::send`, which `kernel/src/nic/support.rs` runs
//! on node 0) on the support CPU, into the e1000 crate's driver ring on
//! the target CPU, over host memory laid out like the debug NIC's.
//!
//! What is the kernel's and what is not:
//!
//! - the same: the send (stamp, `DeviceModel::receive_with_fault`, the
//!   posted-flag edge, the signal stamp, the counters), the register page
//!   (`mint_abi`'s `NicRegisters`, one register per cache line, through
//!   `mint_support::backend::NicSlots`), the descriptor ring's atomics
//!   (`mint_support::backend::AtomicRing`), the ring's size and buffers
//!   (256 x 16 KiB);
//! - in its place: a doorbell (a store to a line the target polls) for
//!   the IPI, which cannot be sent from user space; host memory as 64-bit
//!   atomic words (`WordDma`) for the DMA window's volatile bytes (both
//!   move a frame a word at a time with plain stores);
//! - a stand-in: the target thread, which does what the driver's handler
//!   does to keep the ring free (clear the posted flag, read ICR, clean the
//!   ring with `mint_e1000::RxRing`, one copy per frame) but is not
//!   `kernel/src/nic/driver.rs`. Its time is not measured here.
//!
//! Frames are sent [`INTERVAL_NS`] apart (absolute deadlines), so the
//! target has long cleaned each one before the next: the figures are
//! sends into a free ring, as the paper's.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Result, bail};
use mint_abi::debug_nic::{DropReason, NIC_REGISTER_SLOTS, NicRegisters, PaddedU32};
use mint_e1000::{Contiguous, RegisterFile, RxRing};
use mint_support::backend::{AtomicRing, NicSlots, WordDma};
use mint_support::{Device, Faults, Lines, Sender};
use mint_traffic::{Endpoints, FrameTemplate, PacketKind};

use super::clock::HostTsc;
use super::native::{self, BUFFER_SIZE, Pair, RING_SLOTS};
use crate::os::rdtsc;

/// Time between two sends' deadlines.
pub const INTERVAL_NS: u64 = 10_000;
/// Physical addresses the host layout is named by (the values only have
/// to be consistent: they go into RDBAL and the descriptors).
const RING_PHYS: u64 = 0x1000;
const DMA_PHYS: u64 = 0x100_0000;

/// A line of its own for each word the two sides share.
#[repr(align(128))]
struct Line<T>(T);

/// The debug NIC's memory, on the host.
struct HostNic {
    regs: NicRegisters,
    descs: Vec<[AtomicU64; 2]>,
    words: Vec<AtomicU64>,
    posted: Line<AtomicU32>,
    signal_stamp: Line<AtomicU64>,
    doorbell: Line<AtomicU64>,
    stop: Line<AtomicU32>,
    sent: Line<AtomicU64>,
    signals: Line<AtomicU64>,
    forgotten: Line<AtomicU64>,
    drops: Line<[AtomicU64; DropReason::COUNT]>,
}

impl HostNic {
    fn new() -> HostNic {
        HostNic {
            regs: NicRegisters(std::array::from_fn::<_, NIC_REGISTER_SLOTS, _>(|_| {
                PaddedU32(AtomicU32::new(0))
            })),
            descs: (0..RING_SLOTS)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            // Written (zero) here, so no page is faulted in while timed.
            words: (0..RING_SLOTS * BUFFER_SIZE / 8)
                .map(|_| AtomicU64::new(0))
                .collect(),
            posted: Line(AtomicU32::new(0)),
            signal_stamp: Line(AtomicU64::new(0)),
            doorbell: Line(AtomicU64::new(0)),
            stop: Line(AtomicU32::new(0)),
            sent: Line(AtomicU64::new(0)),
            signals: Line(AtomicU64::new(0)),
            forgotten: Line(AtomicU64::new(0)),
            drops: Line(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    fn lines(&self) -> Lines<'_> {
        Lines {
            posted: &self.posted.0,
            signal_stamp: &self.signal_stamp.0,
            sent: &self.sent.0,
            signals: &self.signals.0,
            signals_forgotten: &self.forgotten.0,
            drops: &self.drops.0,
        }
    }
}

/// The doorbell: the native stand-in for the IPI.
struct Doorbell<'a> {
    line: &'a AtomicU64,
    rung: u64,
}

impl mint_support::Signal for Doorbell<'_> {
    fn raise(&mut self) {
        self.rung += 1;
        self.line.store(self.rung, Ordering::Release);
    }
}

/// What the sends of one size gave.
pub struct SendRun {
    /// Ticks of each send, in order.
    pub ticks: Vec<u64>,
    /// Ticks of each send's signal (0 where none was raised).
    pub signal_ticks: Vec<u64>,
    /// Frames the ring had no room for (0 when the target kept up).
    pub ring_full: u64,
    /// Frames the target cleaned.
    pub cleaned: u64,
}

/// `sends` frames of `size` bytes (UDP, the generator's format) sent by
/// the kernel's per-frame function, [`INTERVAL_NS`] apart.
pub fn send_time(pair: Pair, tsc_hz: u64, size: usize, sends: usize) -> Result<SendRun> {
    let nic = HostNic::new();
    let regs = RegisterFile::with_slots(NicSlots(&nic.regs));
    let ring = AtomicRing::new(&nic.descs);
    let dma = WordDma::new(DMA_PHYS, &nic.words);
    let buffers = Contiguous {
        base: DMA_PHYS,
        stride: BUFFER_SIZE as u64,
    };
    // The driver's side of the set-up, as `driver::attach` does it.
    let mut rx = match RxRing::init(&regs, &ring, RING_PHYS, buffers, BUFFER_SIZE) {
        Ok(rx) => rx,
        Err(e) => bail!("the driver's ring: {e:?}"),
    };
    let mut template = Box::new(
        FrameTemplate::new(PacketKind::Udp, size as u32, &Endpoints::default(), 1)
            .map_err(|e| anyhow::anyhow!("a {size}-byte frame: {e}"))?,
    );
    let interval = (u128::from(INTERVAL_NS) * u128::from(tsc_hz) / 1_000_000_000) as u64;
    let (nic, regs, ring, dma) = (&nic, &regs, &ring, &dma);
    let ((ticks, signal_ticks), cleaned) = native::on_pair(
        pair,
        tsc_hz,
        move |_| {
            let mut sender = Sender::new(
                Device { regs, ring, dma },
                nic.lines(),
                Doorbell {
                    line: &nic.doorbell.0,
                    rung: 0,
                },
                HostTsc(tsc_hz),
                &mut template,
                1,
                Faults::default(),
            );
            let mut ticks = Vec::with_capacity(sends);
            let mut signal_ticks = Vec::with_capacity(sends);
            let start = rdtsc() + interval;
            for seq in 0..sends {
                let deadline = start + interval * seq as u64;
                while rdtsc() < deadline {
                    std::hint::spin_loop();
                }
                let sent = sender.send(seq as u32);
                ticks.push(sent.ticks);
                signal_ticks.push(sent.signal_ticks);
            }
            nic.stop.0.store(1, Ordering::Release);
            Ok((ticks, signal_ticks))
        },
        move |ctl| {
            let mut scratch = vec![0u8; BUFFER_SIZE];
            let mut rung = 0;
            let mut cleaned = 0u64;
            loop {
                let mut stop = false;
                ctl.wait("the doorbell", || {
                    stop = nic.stop.0.load(Ordering::Acquire) != 0;
                    stop || nic.doorbell.0.load(Ordering::Acquire) != rung
                })?;
                rung = nic.doorbell.0.load(Ordering::Acquire);
                // As the driver's handler: clear the posted flag before
                // reading causes, so anything raised later rings again.
                nic.posted.0.swap(0, Ordering::AcqRel);
                nic.signal_stamp.0.swap(0, Ordering::AcqRel);
                let _causes = rx.ack(regs);
                match rx.poll(regs, ring, dma, &mut scratch, usize::MAX, |f| {
                    black_box(f);
                }) {
                    Ok(r) => cleaned += r.cleaned as u64,
                    Err(e) => bail!("the driver's poll: {e:?}"),
                }
                if stop {
                    return Ok(cleaned);
                }
            }
        },
    )?;
    let ring_full = nic.drops.0[DropReason::RingFull as usize].load(Ordering::Relaxed);
    let refused = nic.drops.0[DropReason::DeviceRefused as usize].load(Ordering::Relaxed);
    if refused > 0 {
        bail!("the device model refused {refused} frames of {size} bytes");
    }
    Ok(SendRun {
        ticks,
        signal_ticks,
        ring_full,
        cleaned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_send_is_timed_and_every_frame_cleaned() {
        let Ok(cpus) = crate::os::allowed_cpus() else {
            return;
        };
        let pair = match cpus[..] {
            [a, b, ..] => Pair {
                support: a,
                target: b,
            },
            _ => return,
        };
        let run = send_time(pair, 3_000_000_000, 1514, 300).expect("sends");
        assert_eq!(run.ticks.len(), 300);
        assert_eq!(run.signal_ticks.len(), 300);
        assert_eq!(run.cleaned + run.ring_full, 300, "every frame has a place");
    }
}
