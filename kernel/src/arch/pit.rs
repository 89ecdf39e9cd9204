//! The 8254 PIT, used once by node 0 to calibrate the TSC, and the legacy
//! 8259 PICs, which node 0 masks. Both are
//! machine-wide devices: no other node touches them.

use x86_64::instructions::port::Port;

use super::cpu;

const PIT_HZ: u64 = 1_193_182;
const CHANNEL2_DATA: u16 = 0x42;
const COMMAND: u16 = 0x43;
const GATE: u16 = 0x61;

/// TSC ticks per second, measured over `ms` milliseconds of PIT channel 2
/// one-shot countdown (repeated `rounds` times, the median kept).
pub fn calibrate_tsc(ms: u64, rounds: usize) -> u64 {
    let mut results = [0u64; 8];
    let rounds = rounds.clamp(1, results.len());
    for r in results.iter_mut().take(rounds) {
        *r = measure(ms);
    }
    let slice = &mut results[..rounds];
    slice.sort_unstable();
    slice[rounds / 2]
}

fn measure(ms: u64) -> u64 {
    let count = (PIT_HZ * ms / 1000).min(0xFFFF) as u16;
    let mut gate: Port<u8> = Port::new(GATE);
    let mut cmd: Port<u8> = Port::new(COMMAND);
    let mut data: Port<u8> = Port::new(CHANNEL2_DATA);
    // SAFETY: node 0 owns the PIT during boot; these are the standard
    // channel-2 gate, mode and reload ports.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01); // speaker off, gate on
        cmd.write(0b1011_0000); // channel 2, lo/hi, mode 0, binary
        data.write(count as u8);
        data.write((count >> 8) as u8);
        // Restart the count: toggle the gate low then high.
        let g = gate.read();
        gate.write(g & !0x01);
        gate.write(g | 0x01);
        let start = cpu::rdtsc();
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let end = cpu::rdtsc();
        (end - start) * PIT_HZ / u64::from(count)
    }
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
