//! Hidden self-tests (`mint.selftest=NAME` on the kernel command line, from
//! `mint boot --selftest NAME`): checks of the node kernel's own machinery
//! that no normal run exercises on purpose. Each prints one
//! `MINT-SELFTEST {json}` line on the node's console.
//!
//! - `df`: the direction flag on interrupt entry. The node copies
//!   overlapping buffers backwards (`memmove` runs `rep movsb` with DF set)
//!   with its timer running; the timer handler counts the ticks that
//!   interrupted a context with DF = 1 and the ticks in which the handler
//!   itself ran with DF = 1. The SysV ABI requires DF = 0 on function entry,
//!   so the second count must stay 0 (the entry stub clears DF); the first
//!   must be positive, or the test never hit the window it is about.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use alloc::vec;

use crate::arch::interrupts::InterruptFrame;
use crate::println;

/// The direction flag in RFLAGS.
const RFLAGS_DF: u64 = 1 << 10;

/// Which self-test a node runs (carried in its boot info).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SelfTest {
    None = 0,
    DirectionFlag = 1,
}

impl SelfTest {
    pub fn parse(name: &str) -> Option<SelfTest> {
        match name {
            "df" => Some(SelfTest::DirectionFlag),
            _ => None,
        }
    }

    pub fn from_raw(v: u8) -> SelfTest {
        match v {
            1 => SelfTest::DirectionFlag,
            _ => SelfTest::None,
        }
    }
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static TICKS: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED_DF: AtomicU64 = AtomicU64::new(0);
static HANDLER_DF: AtomicU64 = AtomicU64::new(0);

/// Enough timer ticks inside the backwards copy to call the window hit.
const ENOUGH_HITS: u64 = 20;
/// Give up after this many ticks (3 s of this node's timer).
const MAX_TICKS: u64 = 3 * super::TIMER_HZ;
/// Bytes moved by one backwards copy.
const COPY_LEN: usize = 64 * 1024;

/// Called from this node's timer handler on every tick.
#[inline(always)]
pub fn on_tick(frame: &InterruptFrame) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    // The handler's own flags, read here and not in the entry stub: this is
    // the state the handler's code (and any `rep movs` it runs) sees.
    let own = read_rflags();
    TICKS.fetch_add(1, Ordering::Relaxed);
    if frame.rflags & RFLAGS_DF != 0 {
        INTERRUPTED_DF.fetch_add(1, Ordering::Relaxed);
    }
    if own & RFLAGS_DF != 0 {
        HANDLER_DF.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline(always)]
fn read_rflags() -> u64 {
    let flags: u64;
    // SAFETY: pushfq/pop reads RFLAGS through this handler's own stack
    // (the IST stack it runs on, not the interrupted one); no other effect.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(preserves_flags)) };
    flags
}

/// Runs `test` on this node (with its timer running) and prints the result.
pub fn run(test: SelfTest) {
    match test {
        SelfTest::None => {}
        SelfTest::DirectionFlag => direction_flag(),
    }
}

fn direction_flag() {
    let me = super::me();
    let mut buf = vec![0u8; COPY_LEN + 1];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
    }
    ACTIVE.store(true, Ordering::Relaxed);
    let mut copies = 0u64;
    while INTERRUPTED_DF.load(Ordering::Relaxed) < ENOUGH_HITS
        && TICKS.load(Ordering::Relaxed) < MAX_TICKS
    {
        let p = buf.as_mut_ptr();
        // SAFETY: both ranges lie inside `buf` (COPY_LEN + 1 bytes); they
        // overlap with the destination above the source, which is the case
        // `memmove` copies backwards (DF set) and is defined to handle.
        unsafe { crate::mem::memmove(p.add(1), p, COPY_LEN) };
        copies += 1;
    }
    ACTIVE.store(false, Ordering::Relaxed);
    // Each copy moved every byte up by one: byte i now holds the original
    // byte i - copies, i.e. (i - copies) mod 256, for i >= copies.
    let intact = buf
        .iter()
        .enumerate()
        .skip(copies.min(COPY_LEN as u64) as usize)
        .all(|(i, &b)| b == (i as u64).wrapping_sub(copies) as u8);
    println!(
        "MINT-SELFTEST {{\"test\":\"df\",\"node\":{},\"copies\":{copies},\"ticks\":{},\"interrupted_df\":{},\"handler_df\":{},\"copy_intact\":{intact}}}",
        me.0,
        TICKS.load(Ordering::Relaxed),
        INTERRUPTED_DF.load(Ordering::Relaxed),
        HANDLER_DF.load(Ordering::Relaxed),
    );
}
