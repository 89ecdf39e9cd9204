//! 16550 UART: each node's console, on its own ISA port (COM1 for node 0,
//! COM2 for node 1, ...). Hand-written because the whole driver is a handful
//! of port writes and we need a non-blocking read for the shell.

use core::fmt;
use core::sync::atomic::{AtomicU16, Ordering};

use x86_64::instructions::port::Port;

/// Register offsets from the UART's base port (DLAB=0 unless noted).
#[derive(Clone, Copy)]
#[repr(u16)]
enum Reg {
    /// Receive buffer / transmit holding; divisor low when DLAB=1.
    Data = 0,
    /// Interrupt enable; divisor high when DLAB=1.
    InterruptEnable = 1,
    /// FIFO control (write).
    FifoControl = 2,
    LineControl = 3,
    ModemControl = 4,
    LineStatus = 5,
}

const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LCR_DLAB: u8 = 1 << 7;
const LCR_8N1: u8 = 0x03;

/// The console port of this node; 0 until `init`.
static CONSOLE_BASE: AtomicU16 = AtomicU16::new(0);

fn port(base: u16, reg: Reg) -> Port<u8> {
    Port::new(base + reg as u16)
}

fn write_reg(base: u16, reg: Reg, v: u8) {
    // SAFETY: `base` is this node's own UART (from the validated plan); the
    // 16550 registers have no memory side effects.
    unsafe { port(base, reg).write(v) }
}

fn read_reg(base: u16, reg: Reg) -> u8 {
    // SAFETY: as in `write_reg`.
    unsafe { port(base, reg).read() }
}

/// Programs the UART at `base` for 115200 8N1 with FIFOs and makes it this
/// node's console.
pub fn init(base: u16) {
    write_reg(base, Reg::InterruptEnable, 0);
    write_reg(base, Reg::LineControl, LCR_DLAB);
    write_reg(base, Reg::Data, 1); // divisor 1 = 115200 baud
    write_reg(base, Reg::InterruptEnable, 0);
    write_reg(base, Reg::LineControl, LCR_8N1);
    // FIFOs on, trigger level 14; no FIFO reset, so bytes typed before the
    // node came up are kept.
    write_reg(base, Reg::FifoControl, 0xC1);
    write_reg(base, Reg::ModemControl, 0x03);
    CONSOLE_BASE.store(base, Ordering::Relaxed);
}

fn put(base: u16, b: u8) {
    while read_reg(base, Reg::LineStatus) & LSR_THR_EMPTY == 0 {
        core::hint::spin_loop();
    }
    write_reg(base, Reg::Data, b);
}

/// Writes bytes to the console. No lock: one core per node, and a fault
/// handler must be able to print even if it interrupted a print.
pub fn write_bytes(bytes: &[u8]) {
    let base = CONSOLE_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    for &b in bytes {
        if b == b'\n' {
            put(base, b'\r');
        }
        put(base, b);
    }
}

/// A byte from the console, if one is waiting.
pub fn try_read() -> Option<u8> {
    let base = CONSOLE_BASE.load(Ordering::Relaxed);
    if base == 0 || read_reg(base, Reg::LineStatus) & LSR_DATA_READY == 0 {
        return None;
    }
    Some(read_reg(base, Reg::Data))
}

pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::arch::serial::Console, format_args!($($arg)*));
    }};
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{ $crate::print!($($arg)*); $crate::print!("\n"); }};
}
