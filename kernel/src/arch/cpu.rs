//! CPU primitives: TSC, halting, and the isa-debug-exit port.

use core::arch::asm;

use x86_64::instructions::port::Port;

/// Reads the time-stamp counter, ordered after earlier loads (lfence).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `lfence; rdtsc` reads a counter and has no memory effects.
    unsafe {
        let lo: u32;
        let hi: u32;
        asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
        (u64::from(hi) << 32) | u64::from(lo)
    }
}

/// Stops this core for good: interrupts off, halt forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Ends the whole machine through QEMU's isa-debug-exit device (iobase
/// 0xf4); QEMU exits with `(code << 1) | 1`. Only node 0 may call this.
pub fn qemu_exit(code: u8) -> ! {
    // SAFETY: writing the debug-exit port terminates the emulator; on real
    // hardware the port is unused and the halt below takes over.
    unsafe { Port::<u32>::new(0xf4).write(u32::from(code)) };
    halt_forever()
}

/// CPUID leaf 1 ECX bit 21: the local APIC supports x2APIC mode.
pub fn has_x2apic() -> bool {
    let r = core::arch::x86_64::__cpuid(1);
    r.ecx & (1 << 21) != 0
}
