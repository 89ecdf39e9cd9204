//! The raw-memory half of starting a Linux node: its loader block in node
//! 0's low area (the entry stub, the per-node ACPI tables, the words the
//! stub and `/init` report through), written and read here only.
//!
//! Node 0 owns the low area (identity mapped in its tables and, while it
//! starts, in the Linux node's); no Linux node has it in its e820 map, so
//! the tables there are memory Linux does not own.

use core::arch::global_asm;

use mint_abi::{NodeId, PhysAddr};

/// First byte of the loader blocks (node 0's low area, above the BIOS).
const BLOCKS_BASE: u64 = 0x10_0000;
/// One block per node id.
const BLOCK_LEN: u64 = 0x1_0000;
/// Where in a block: the stub's code and its slots.
const STUB_OFF: u64 = 0;
/// The words `/init` writes: magic, TSC, uptime (ns).
const INIT_OFF: u64 = 0x100;
/// The ACPI tables.
pub const ACPI_OFF: u64 = 0x1000;
/// What `/init` writes last, once its TSC and uptime are in place.
pub const INIT_MAGIC: u64 = u64::from_le_bytes(*b"MINTINIT");

// The entry stub, copied into a block: the trampoline calls it in long
// mode on the Linux node's identity map with rdi = the zero page. It loads
// a GDT with the boot protocol's selectors (code 0x10, data 0x18), stamps
// the TSC into its `started` slot (node 0 waits for that before it reuses
// the trampoline), and far-returns into the kernel's 64-bit entry with
// rsi = the zero page. Position independent: only RIP-relative addresses.
global_asm!(
    r#"
    .section .rodata.linux_stub, "a"
    .balign 16
    .global linux_stub_start
    .global linux_stub_end
    .global linux_stub_entry
    .global linux_stub_started
    .code64
linux_stub_start:
    cli
    lea rax, [rip + linux_stub_gdt]
    mov qword ptr [rip + linux_stub_gdtr + 2], rax
    lgdt [rip + linux_stub_gdtr]
    mov eax, 0x18
    mov ds, ax
    mov es, ax
    mov ss, ax
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov qword ptr [rip + linux_stub_started], rax
    mov rsi, rdi
    push 0x10
    push qword ptr [rip + linux_stub_entry]
    .byte 0x48, 0xcb
    .balign 8
linux_stub_entry:
    .quad 0
linux_stub_started:
    .quad 0
linux_stub_gdtr:
    .word 31
    .quad 0
    .balign 8
linux_stub_gdt:
    .quad 0
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
linux_stub_end:
    "#
);

unsafe extern "C" {
    static linux_stub_start: [u8; 0];
    static linux_stub_end: [u8; 0];
    static linux_stub_entry: [u8; 0];
    static linux_stub_started: [u8; 0];
}

fn stub_image() -> &'static [u8] {
    let start = (&raw const linux_stub_start).cast::<u8>();
    let len = (&raw const linux_stub_end) as usize - start as usize;
    // SAFETY: `linux_stub_start..linux_stub_end` is one contiguous range of
    // the image's rodata (the section above), which nothing writes.
    unsafe { core::slice::from_raw_parts(start, len) }
}

fn stub_offset(sym: *const [u8; 0]) -> u64 {
    (sym as usize - (&raw const linux_stub_start) as usize) as u64
}

/// Node `id`'s loader block.
pub fn block(id: NodeId) -> PhysAddr {
    PhysAddr(BLOCKS_BASE + u64::from(id.0) * BLOCK_LEN)
}

/// The stub's address in node `id`'s block (the trampoline's entry).
pub fn stub(id: NodeId) -> PhysAddr {
    PhysAddr(block(id).as_u64() + STUB_OFF)
}

/// The words `/init` of node `id` writes (passed on its command line).
pub fn init_report(id: NodeId) -> PhysAddr {
    PhysAddr(block(id).as_u64() + INIT_OFF)
}

/// Writes node `id`'s block: zeroed, the stub entering `entry`, and
/// `acpi` at [`ACPI_OFF`].
pub fn install(id: NodeId, entry: PhysAddr, acpi: &[u8]) {
    let code = stub_image();
    assert!(
        STUB_OFF + (code.len() as u64) <= INIT_OFF && ACPI_OFF + (acpi.len() as u64) <= BLOCK_LEN,
        "the Linux loader block overflows"
    );
    let base = block(id).as_u64() as *mut u8;
    // SAFETY: the block lies in node 0's low area (1 MiB .. 1.25 MiB for
    // ids below 4), identity mapped in node 0's boot and own tables,
    // used by nothing else (the trampoline is at 0x8000, the BIOS below
    // 1 MiB); no core runs the stub before node 0's SIPI, after this.
    unsafe {
        core::ptr::write_bytes(base, 0, BLOCK_LEN as usize);
        core::ptr::copy_nonoverlapping(code.as_ptr(), base.add(STUB_OFF as usize), code.len());
        let entry_slot = base.add((STUB_OFF + stub_offset(&raw const linux_stub_entry)) as usize);
        core::ptr::write_volatile(entry_slot.cast::<u64>(), entry.as_u64());
        core::ptr::copy_nonoverlapping(acpi.as_ptr(), base.add(ACPI_OFF as usize), acpi.len());
    }
}

/// Writes the MP table every Linux node finds first (the same for all)
/// at physical `mptable::BASE`.
pub fn install_mp_table(table: &[u8; mint_linux_boot::mptable::LEN]) {
    let base = mint_linux_boot::mptable::BASE as usize as *mut u8;
    // SAFETY: physical 0x300..0x33c, the real-mode vectors 0xC0-0xFF in
    // node 0's low area (identity mapped, writable, in its tables), which
    // nothing reads once every core runs in long mode: the trampoline at
    // 0x8000 takes no interrupt in real mode, and the firmware is done.
    // Linux nodes only read it; nothing else writes it.
    unsafe { core::ptr::copy_nonoverlapping(table.as_ptr(), base, table.len()) };
}

/// The TSC the stub of node `id` stamped on its way into Linux, 0 before.
pub fn started_tsc(id: NodeId) -> u64 {
    let slot = block(id).as_u64() + STUB_OFF + stub_offset(&raw const linux_stub_started);
    // SAFETY: an aligned word of node `id`'s block (see `install`), mapped
    // in node 0's tables; the node's core may write it at any time, hence
    // the volatile read.
    unsafe { core::ptr::read_volatile(slot as *const u64) }
}

/// What `/init` of node `id` reported: `(tsc, uptime_ns)` once its magic
/// is there.
pub fn init_reached(id: NodeId) -> Option<(u64, u64)> {
    let words = init_report(id).as_u64() as *const u64;
    // SAFETY: three aligned words of node `id`'s block (see `install`),
    // mapped in node 0's tables; the Linux node writes them through
    // /dev/mem at any time, hence volatile reads, magic first.
    unsafe {
        if core::ptr::read_volatile(words) != INIT_MAGIC {
            return None;
        }
        Some((
            core::ptr::read_volatile(words.add(1)),
            core::ptr::read_volatile(words.add(2)),
        ))
    }
}
