//! The 8254 PIT, used once by node 0 to calibrate the TSC, and the legacy
//! 8259 PICs, which node 0 masks. Both are machine-wide devices: no other
//! node touches them.
//!
//! Calibration reads PIT channel 2's counter (latched) between two TSC
//! reads at the start and at the end of each window (`mint_timing::rate`):
//! the host descheduling this virtual CPU between the two stamps costs
//! nothing, only inside a stamp, and each stamp is the narrowest of a few
//! tries. Several windows give a median, outliers rejected, and a spread.
//! Every poll has an absolute deadline: a PIT that never counts (or a
//! counter that never reaches the window's end) ends the window, not the
//! boot.

use mint_timing::{RateEstimate, Stamp};
use x86_64::instructions::port::Port;

use super::cpu;

const PIT_HZ: u64 = 1_193_182;
const CHANNEL2_DATA: u16 = 0x42;
const COMMAND: u16 = 0x43;
const GATE: u16 = 0x61;
/// Channel 2, low then high byte, mode 0 (count down once), binary.
const CMD_CHANNEL2_MODE0: u8 = 0b1011_0000;
/// Channel 2, counter latch.
const CMD_CHANNEL2_LATCH: u8 = 0b1000_0000;
/// Port 0x61: channel 2's OUT (set once the count passed 0).
const GATE_OUT: u8 = 0x20;
/// The count each window starts from (54.9 ms of PIT ticks).
const START_COUNT: u16 = 0xFFFF;
/// No TSC runs faster than this: a deadline of `ms` at this rate lasts at
/// least `ms` on any real TSC.
const MAX_PLAUSIBLE_TSC_HZ: u64 = 20_000_000_000;
/// Tries per stamp; the narrowest is kept.
const STAMP_TRIES: usize = 3;

/// Why a calibration gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PitError {
    /// The counter never moved before the deadline.
    NeverCounted,
    /// Every window failed (counter wrapped past 0, or ran backwards).
    NoValidWindow,
}

impl core::fmt::Display for PitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PitError::NeverCounted => "PIT channel 2 never counted",
            PitError::NoValidWindow => "no PIT window gave a rate",
        })
    }
}

/// TSC ticks per second, measured over `windows` windows (at most
/// `mint_timing::rate::MAX_WINDOWS`) of `ms` milliseconds each (at most
/// 50) of PIT channel 2. The estimate's `windows` may be fewer when some
/// had to be discarded twice over.
pub fn calibrate_tsc(ms: u64, windows: usize) -> Result<RateEstimate, PitError> {
    let mut rates = [0u64; mint_timing::rate::MAX_WINDOWS];
    let want = windows.clamp(1, rates.len());
    let mut got = 0;
    // A discarded window (the count wrapped while this vCPU was away) is
    // tried again, up to as many times as windows were asked for.
    for _ in 0..2 * want {
        if got == want {
            break;
        }
        match measure(ms.clamp(1, 50)) {
            Ok(Some(hz)) => {
                rates[got] = hz;
                got += 1;
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
    mint_timing::robust_rate(&mut rates[..got]).ok_or(PitError::NoValidWindow)
}

struct Pit {
    gate: Port<u8>,
    cmd: Port<u8>,
    data: Port<u8>,
}

impl Pit {
    /// PIT ticks since the window's count was loaded.
    fn elapsed(&mut self) -> u64 {
        // SAFETY: latch then read channel 2's count (low, high byte); node
        // 0 owns the PIT during boot.
        let count = unsafe {
            self.cmd.write(CMD_CHANNEL2_LATCH);
            let lo = self.data.read();
            let hi = self.data.read();
            u16::from_le_bytes([lo, hi])
        };
        u64::from(START_COUNT - count)
    }

    /// The narrowest of a few bracketed readings of the counter.
    fn stamp(&mut self) -> Stamp {
        let reading = mint_timing::narrowest_stamp(STAMP_TRIES, cpu::rdtsc, || {
            Ok::<u64, core::convert::Infallible>(self.elapsed())
        });
        match reading {
            Ok(s) => s,
        }
    }

    /// Whether the count has passed 0 (the window wrapped).
    fn out(&mut self) -> bool {
        // SAFETY: reading the gate/status port has no side effect.
        unsafe { self.gate.read() & GATE_OUT != 0 }
    }
}

/// One window: `Ok(None)` when it must be discarded.
fn measure(ms: u64) -> Result<Option<u64>, PitError> {
    let mut pit = Pit {
        gate: Port::new(GATE),
        cmd: Port::new(COMMAND),
        data: Port::new(CHANNEL2_DATA),
    };
    let target = PIT_HZ * ms / 1000;
    // SAFETY: node 0 owns the PIT during boot; these are the standard
    // channel-2 gate, mode and reload ports. Mode 0 starts counting when
    // the high byte of the count is written (gate high).
    unsafe {
        let g = pit.gate.read();
        pit.gate.write((g & !0x02) | 0x01); // speaker off, gate on
        pit.cmd.write(CMD_CHANNEL2_MODE0);
        pit.data.write(START_COUNT as u8);
        pit.data.write((START_COUNT >> 8) as u8);
    }
    let begin = cpu::rdtsc();
    // Absolute deadline: four windows' length at the fastest plausible
    // TSC rate, and as many polls (each poll takes at least one TSC tick).
    let deadline_ticks = 4 * ms * (MAX_PLAUSIBLE_TSC_HZ / 1000);
    let past_deadline = || cpu::rdtsc().wrapping_sub(begin) > deadline_ticks;
    // Wait for the first tick, so the start stamp sees a counting PIT.
    let mut polls = 0u64;
    while pit.elapsed() == 0 {
        polls += 1;
        if past_deadline() || polls > deadline_ticks {
            return Err(PitError::NeverCounted);
        }
        core::hint::spin_loop();
    }
    let start = pit.stamp();
    while pit.elapsed() < start.reference + target {
        polls += 1;
        if past_deadline() || polls > deadline_ticks {
            return Ok(None);
        }
        core::hint::spin_loop();
    }
    let end = pit.stamp();
    // OUT high after the end stamp: the count may have wrapped before it.
    if pit.out() {
        return Ok(None);
    }
    Ok(mint_timing::window_rate(start, end, PIT_HZ))
}

/// Masks every line of both legacy 8259 PICs. The firmware leaves them
/// routing IRQ 0 to vector 8, which would look like a double fault; mint
/// takes device interrupts through the I/O APIC only.
pub fn mask_legacy_pic() {
    // SAFETY: the 8259 data ports (0x21, 0xA1); writing 0xFF masks all
    // lines. Node 0 owns the legacy PICs.
    unsafe {
        Port::<u8>::new(0x21).write(0xFF);
        Port::<u8>::new(0xA1).write(0xFF);
    }
}
