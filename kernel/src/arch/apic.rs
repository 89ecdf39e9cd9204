//! This node's local APIC: x2APIC (MSRs) when the CPU has it, xAPIC (MMIO
//! at the architectural base, mapped uncached in every node) otherwise.
//!
//! Hand-written rather than the `x2apic` crate because node 0 needs raw
//! INIT/SIPI control with delivery-status polling, every node needs the
//! timer calibrated against the TSC, and both modes behind one typed
//! register set; the crate's `LocalApic` configures all of that itself.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use mint_abi::{ApicId, Vector};
use x86_64::registers::model_specific::Msr;

use super::cpu;

/// Physical (and, in every node, virtual) base of the xAPIC registers.
pub const XAPIC_BASE: u64 = 0xFEE0_0000;

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

/// Local APIC registers by their xAPIC MMIO offset (x2APIC MSR = 0x800 +
/// offset / 16).
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Reg {
    Id = 0x20,
    Version = 0x30,
    Eoi = 0xB0,
    SpuriousVector = 0xF0,
    ErrorStatus = 0x280,
    IcrLow = 0x300,
    IcrHigh = 0x310,
    LvtTimer = 0x320,
    LvtError = 0x370,
    TimerInitialCount = 0x380,
    TimerCurrentCount = 0x390,
    TimerDivide = 0x3E0,
}

/// Interrupt command register fields.
mod icr {
    pub const FIXED: u32 = 0b000 << 8;
    pub const NMI: u32 = 0b100 << 8;
    pub const INIT: u32 = 0b101 << 8;
    pub const STARTUP: u32 = 0b110 << 8;
    pub const LEVEL_ASSERT: u32 = 1 << 14;
    pub const DELIVERY_PENDING: u32 = 1 << 12;
}

const SVR_ENABLE: u32 = 1 << 8;
/// SVR bit 12: suppress the EOI broadcast to I/O APICs (directed EOI).
const SVR_SUPPRESS_EOI_BROADCAST: u32 = 1 << 12;
/// Version register bit 24: EOI-broadcast suppression is supported.
const LVR_DIRECTED_EOI: u32 = 1 << 24;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// Timer divide configuration value for divide-by-16.
const DIVIDE_BY_16: u32 = 0b0011;

static X2APIC: AtomicBool = AtomicBool::new(false);

/// How long an xAPIC ICR may report "send pending" before the send is
/// given up as stuck.
pub const ICR_TIMEOUT_MS: u64 = 10;
/// [`ICR_TIMEOUT_MS`] in TSC ticks, once [`set_tsc_hz`] knows the rate;
/// until then 2^32 ticks (about a second at a few GHz).
static ICR_TIMEOUT_TSC: AtomicU64 = AtomicU64::new(1 << 32);

/// Interrupt commands given up as stuck since this node started.
static STUCK_ICRS: AtomicU32 = AtomicU32::new(0);

/// How many interrupt commands this node gave up as stuck.
pub fn stuck_icrs() -> u32 {
    STUCK_ICRS.load(Ordering::Relaxed)
}

/// Gives the ICR deadline its TSC rate.
pub fn set_tsc_hz(tsc_hz: u64) {
    ICR_TIMEOUT_TSC.store((tsc_hz / 1000 * ICR_TIMEOUT_MS).max(1), Ordering::Relaxed);
}

/// An xAPIC interrupt command whose delivery status was still pending at
/// its deadline: the IPI may or may not have been delivered.
#[derive(Clone, Copy, Debug)]
pub struct IcrStuck {
    pub dest: ApicId,
    pub command: u32,
}

impl core::fmt::Display for IcrStuck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "IPI {:#x} to {} still pending after {ICR_TIMEOUT_MS} ms (ICR stuck)",
            self.command, self.dest
        )
    }
}

fn read(reg: Reg) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is enabled (checked above); reading an APIC
        // MSR has no side effects besides the register's own.
        unsafe { Msr::new(0x800 + reg as u32 / 16).read() as u32 }
    } else {
        // SAFETY: the xAPIC page is mapped uncached at XAPIC_BASE in every
        // node's page tables; registers are 32-bit aligned.
        unsafe { core::ptr::read_volatile((XAPIC_BASE + reg as u64) as *const u32) }
    }
}

fn write(reg: Reg, v: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is enabled; `reg` is a writable APIC register.
        unsafe { Msr::new(0x800 + reg as u32 / 16).write(u64::from(v)) }
    } else {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((XAPIC_BASE + reg as u64) as *mut u32, v) }
    }
}

/// Enables this core's local APIC (x2APIC when available) with spurious and
/// error vectors; returns whether x2APIC mode is on.
pub fn init(spurious: Vector, error: Vector) -> bool {
    let x2 = cpu::has_x2apic();
    let mut base = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU; we only set the
    // enable bits and keep the base address. xAPIC first, then x2APIC: the
    // architecture does not allow going from disabled straight to x2APIC.
    unsafe {
        let v = base.read() | APIC_BASE_ENABLE;
        base.write(v);
        if x2 {
            base.write(v | APIC_BASE_X2APIC);
        }
    }
    X2APIC.store(x2, Ordering::Relaxed);
    write(Reg::SpuriousVector, SVR_ENABLE | u32::from(spurious.0));
    write(Reg::LvtError, u32::from(error.0));
    write(Reg::ErrorStatus, 0);
    write(Reg::LvtTimer, LVT_MASKED);
    x2
}

/// Whether this local APIC can suppress its EOI broadcast (SDM vol. 3,
/// 11.8.5): what its version register advertises, and whether SVR bit 12
/// sticks when written (it is written back as it was at once). In x2APIC
/// mode a reserved SVR bit written raises #GP, so the write is tried there
/// only when the version register advertises the feature; in xAPIC mode
/// (MMIO) a reserved bit is ignored, so it is always tried.
#[derive(Clone, Copy, Debug)]
pub struct DirectedEoi {
    pub version_register: u32,
    pub advertised: bool,
    /// `None`: not tried (x2APIC mode without the feature advertised).
    pub sticks: Option<bool>,
}

/// Probes [`DirectedEoi`] on this core, leaving the SVR as it was.
pub fn probe_directed_eoi() -> DirectedEoi {
    let version_register = read(Reg::Version);
    let svr = read(Reg::SpuriousVector);
    let advertised = version_register & LVR_DIRECTED_EOI != 0;
    let sticks = (advertised || !is_x2apic()).then(|| {
        x86_64::instructions::interrupts::without_interrupts(|| {
            write(Reg::SpuriousVector, svr | SVR_SUPPRESS_EOI_BROADCAST);
            let stuck = read(Reg::SpuriousVector) & SVR_SUPPRESS_EOI_BROADCAST != 0;
            write(Reg::SpuriousVector, svr);
            stuck
        })
    });
    DirectedEoi {
        version_register,
        advertised,
        sticks,
    }
}

pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// This core's APIC ID as the APIC reports it.
pub fn id() -> ApicId {
    let raw = read(Reg::Id);
    ApicId(if is_x2apic() { raw } else { raw >> 24 })
}

/// The error status register (ESR), as the SDM asks (vol. 3, 11.5.3): a
/// write first (any value; 0 in x2APIC mode, where it must be 0) latches
/// the errors seen since the last write into the register, the read then
/// returns them.
pub fn read_error_status() -> u32 {
    write(Reg::ErrorStatus, 0);
    read(Reg::ErrorStatus)
}

/// Signals the end of the interrupt being handled. Never for the spurious
/// vector (SDM vol. 3, 11.9: a spurious interrupt sets no ISR bit, so an
/// EOI would retire another, real interrupt's).
pub fn end_of_interrupt() {
    write(Reg::Eoi, 0);
}

/// Writes the interrupt command. In xAPIC mode, waits (bounded by
/// [`ICR_TIMEOUT_MS`]) until the APIC has accepted it; x2APIC has no
/// delivery status to wait for.
fn send_icr(dest: ApicId, low: u32) -> Result<(), IcrStuck> {
    if is_x2apic() {
        // WRMSR to the x2APIC ICR does not serialize: without a fence the
        // IPI could overtake the stores it announces (a mailbox tail). A
        // full fence (mfence) orders memory, but WRMSR is no memory access,
        // so an lfence after it keeps the WRMSR from starting before the
        // mfence completes (Linux's weak_wrmsr_fence does the same).
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: lfence has no operands and touches no memory or flags; it
        // only orders instruction execution.
        unsafe { core::arch::asm!("lfence", options(nostack, preserves_flags)) };
        // SAFETY: x2APIC mode; the ICR is one 64-bit MSR (0x830).
        unsafe { Msr::new(0x830).write((u64::from(dest.0) << 32) | u64::from(low)) };
        Ok(())
    } else {
        // Two register writes make one command: an interrupt handler that
        // sent its own IPI in between would retarget this one.
        x86_64::instructions::interrupts::without_interrupts(|| {
            write(Reg::IcrHigh, dest.0 << 24);
            write(Reg::IcrLow, low);
            let deadline = cpu::rdtsc() + ICR_TIMEOUT_TSC.load(Ordering::Relaxed);
            while read(Reg::IcrLow) & icr::DELIVERY_PENDING != 0 {
                if cpu::rdtsc() > deadline {
                    STUCK_ICRS.fetch_add(1, Ordering::Relaxed);
                    return Err(IcrStuck { dest, command: low });
                }
                core::hint::spin_loop();
            }
            Ok(())
        })
    }
}

/// Sends a fixed IPI with `vector` to the core `dest`.
pub fn try_send_ipi(dest: ApicId, vector: Vector) -> Result<(), IcrStuck> {
    send_icr(dest, icr::FIXED | u32::from(vector.0))
}

/// [`try_send_ipi`] for callers that have nothing better to do with a
/// stuck ICR than what it already does: count it in [`stuck_icrs`].
pub fn send_ipi(dest: ApicId, vector: Vector) {
    let _ = try_send_ipi(dest, vector);
}

/// A non-maskable interrupt to the core `dest` (the vector field is
/// ignored). Used only by fault injection; a stuck ICR is counted in
/// [`stuck_icrs`] like any other.
pub fn send_nmi(dest: ApicId) -> Result<(), IcrStuck> {
    send_icr(dest, icr::NMI | icr::LEVEL_ASSERT)
}

/// INIT IPI (asserted): resets `dest` into wait-for-SIPI.
pub fn send_init(dest: ApicId) -> Result<(), IcrStuck> {
    send_icr(dest, icr::INIT | icr::LEVEL_ASSERT)
}

/// Startup IPI: `dest` starts in real mode at `page * 4096`.
pub fn send_startup(dest: ApicId, page: u8) -> Result<(), IcrStuck> {
    send_icr(dest, icr::STARTUP | icr::LEVEL_ASSERT | u32::from(page))
}

/// One reading of the timer's current count (as ticks elapsed since the
/// count started at `u32::MAX`) bracketed by two TSC reads, the narrowest
/// of three tries.
fn timer_stamp() -> mint_timing::Stamp {
    let reading = mint_timing::narrowest_stamp(3, cpu::rdtsc, || {
        Ok::<u64, core::convert::Infallible>(u64::from(u32::MAX - read(Reg::TimerCurrentCount)))
    });
    match reading {
        Ok(s) => s,
    }
}

/// Measures the APIC timer's rate (ticks per second at divide-by-16)
/// against the TSC: `windows` windows of `window_tsc` TSC ticks, each
/// bracketed at both ends like the TSC's own calibration (time lost
/// between the two stamps, a descheduled virtual CPU, does not skew it),
/// then the median with outliers rejected (`mint_timing::robust_rate`).
pub fn calibrate_timer(tsc_hz: u64, window_tsc: u64, windows: usize) -> TimerRate {
    write(Reg::TimerDivide, DIVIDE_BY_16);
    write(Reg::LvtTimer, LVT_MASKED);
    let mut rates = [0u64; mint_timing::rate::MAX_WINDOWS];
    let n = windows.clamp(1, rates.len());
    let mut measured = 0;
    for _ in 0..n {
        write(Reg::TimerInitialCount, u32::MAX);
        let start = timer_stamp();
        while cpu::rdtsc() - start.tsc_after < window_tsc {
            core::hint::spin_loop();
        }
        let end = timer_stamp();
        // The timer's ticks against the TSC's: the rate is the reference's
        // elapsed count over the TSC's elapsed time at the stamps' middles.
        let tsc2 = (u128::from(end.tsc_before) + u128::from(end.tsc_after))
            .saturating_sub(u128::from(start.tsc_before) + u128::from(start.tsc_after));
        let counted = end.reference.saturating_sub(start.reference);
        if tsc2 > 0 && counted > 0 {
            rates[measured] = (u128::from(counted) * 2 * u128::from(tsc_hz) / tsc2) as u64;
            measured += 1;
        }
    }
    write(Reg::TimerInitialCount, 0);
    match mint_timing::robust_rate(&mut rates[..measured]) {
        Some(e) => TimerRate {
            hz: e.hz,
            consistent: e.is_consistent(mint_timing::rate::OUTLIER_PPM),
            kept: e.kept,
            windows: e.windows,
        },
        None => TimerRate {
            hz: 0,
            consistent: false,
            kept: 0,
            windows: 0,
        },
    }
}

/// What [`calibrate_timer`] found.
#[derive(Clone, Copy, Debug)]
pub struct TimerRate {
    /// Timer ticks per second (0: no window could be measured).
    pub hz: u64,
    /// Whether most windows agreed with the median.
    pub consistent: bool,
    pub kept: u8,
    pub windows: u8,
}

/// Starts the periodic timer: `vector` every `period_ticks` timer ticks.
pub fn start_periodic_timer(vector: Vector, period_ticks: u32) {
    write(Reg::TimerDivide, DIVIDE_BY_16);
    write(Reg::LvtTimer, LVT_TIMER_PERIODIC | u32::from(vector.0));
    write(Reg::TimerInitialCount, period_ticks.max(1));
}
