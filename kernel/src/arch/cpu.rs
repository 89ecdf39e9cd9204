//! CPU primitives: TSC, halting, and the isa-debug-exit port.

use core::arch::asm;

use x86_64::instructions::port::Port;

/// Reads the time-stamp counter, ordered after earlier loads.
///
/// `lfence; rdtsc`: the LFENCE lets RDTSC execute only once every earlier
/// instruction has completed locally (so every earlier load has its
/// value), which is what each call site needs: a stamp taken after seeing
/// a flag, a payload or a counter must not be read before that load, and
/// a stamp ending a timed region comes after the region's work. Later
/// instructions may start before RDTSC reads the counter: a few cycles of
/// a timed region may overlap its start stamp. Stores before the stamp may still sit in the store
/// buffer (RDTSC does not wait for them to become visible): a stamp taken
/// before publishing a flag (`ping`, the TSC sync, the generator's send)
/// is then earlier than the flag's visibility, which only widens a bound.
///
/// The asm is not `nomem`: it is a compiler barrier, so the compiler keeps
/// every memory access on the side of the stamp the source puts it.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `lfence; rdtsc` reads a counter; it writes only eax/edx.
    unsafe {
        let lo: u32;
        let hi: u32;
        asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack, preserves_flags));
        (u64::from(hi) << 32) | u64::from(lo)
    }
}

/// What the CPU's identification says about the TSC's rate, in Hz
/// (`None`: not given).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuidTsc {
    /// CPUID 0x40000010 EAX (TSC kHz), under a hypervisor that has it.
    pub hypervisor: Option<u64>,
    /// CPUID 0x15: crystal Hz (ECX) × EBX / EAX, when all three are given.
    pub cpuid15: Option<u64>,
    /// CPUID 0x16 EAX: the processor's base frequency (MHz), nominal.
    pub cpuid16: Option<u64>,
    /// The hypervisor's vendor signature (CPUID 0x40000000), if any.
    pub hypervisor_vendor: [u8; 12],
    /// The highest basic leaf (CPUID 0 EAX) and hypervisor leaf (CPUID
    /// 0x40000000 EAX, 0 without a hypervisor).
    pub max_leaf: u32,
    pub max_hypervisor_leaf: u32,
}

/// The CPU features the kernel image is compiled for beyond x86-64's
/// baseline (`-C target-feature`, cli/src/kernel.rs) that CPUID leaf 1
/// does not report, by name; `None` when all are there.
pub fn missing_features() -> Option<&'static str> {
    use core::arch::x86_64::__cpuid;
    let ecx = __cpuid(1).ecx;
    match (ecx & (1 << 1) != 0, ecx & (1 << 19) != 0) {
        (true, true) => None,
        (false, true) => Some("PCLMULQDQ"),
        (true, false) => Some("SSE4.1"),
        (false, false) => Some("PCLMULQDQ and SSE4.1"),
    }
}

/// Reads CPUID leaves 0x15, 0x16 and 0x40000010 where present.
pub fn cpuid_tsc() -> CpuidTsc {
    use core::arch::x86_64::__cpuid;
    let mut out = CpuidTsc::default();
    let max = __cpuid(0).eax;
    out.max_leaf = max;
    if max >= 0x15 {
        let r = __cpuid(0x15);
        if r.eax != 0 && r.ebx != 0 && r.ecx != 0 {
            out.cpuid15 = Some(u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax));
        }
    }
    if max >= 0x16 {
        let mhz = __cpuid(0x16).eax & 0xFFFF;
        if mhz != 0 {
            out.cpuid16 = Some(u64::from(mhz) * 1_000_000);
        }
    }
    let hypervisor_present = __cpuid(1).ecx & (1 << 31) != 0;
    if hypervisor_present {
        let r = __cpuid(0x4000_0000);
        out.max_hypervisor_leaf = r.eax;
        for (i, reg) in [r.ebx, r.ecx, r.edx].iter().enumerate() {
            out.hypervisor_vendor[i * 4..i * 4 + 4].copy_from_slice(&reg.to_le_bytes());
        }
        if r.eax >= 0x4000_0010 {
            let khz = __cpuid(0x4000_0010).eax;
            if khz != 0 {
                out.hypervisor = Some(u64::from(khz) * 1000);
            }
        }
    }
    out
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
