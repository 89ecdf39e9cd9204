//! Machine entry: the PVH note, the 32-bit PVH entry of node 0, and the AP
//! trampoline through which node 0 starts every other node.
//!
//! Node 0's entry runs with paging off at the image's physical load address.
//! Before any Rust code touches `.data` it copies the loaded image to the
//! "pristine" slot (see `layout.rs`), which is what node 0 later copies into
//! every other node's partition: each node starts from an untouched image.

use core::arch::global_asm;

/// Physical address the AP trampoline is copied to (SIPI vector 0x08).
pub const TRAMPOLINE_PHYS: u64 = 0x8000;

/// Byte offsets of the trampoline's parameter slots, written by node 0 before
/// each SIPI.
pub struct TrampolineParams;

// Symbols of the trampoline section below. Declared zero-sized: only their
// addresses are used, never the bytes behind them.
unsafe extern "C" {
    static ap_tramp_start: [u8; 0];
    static ap_tramp_end: [u8; 0];
    static tr_cr3: [u8; 0];
    static tr_stack: [u8; 0];
    static tr_arg: [u8; 0];
    static tr_entry: [u8; 0];
}

impl TrampolineParams {
    fn off(sym: *const [u8; 0]) -> usize {
        sym as usize - (&raw const ap_tramp_start) as usize
    }
    pub fn cr3() -> usize {
        Self::off(&raw const tr_cr3)
    }
    pub fn stack() -> usize {
        Self::off(&raw const tr_stack)
    }
    pub fn arg() -> usize {
        Self::off(&raw const tr_arg)
    }
    pub fn entry() -> usize {
        Self::off(&raw const tr_entry)
    }
    /// The trampoline's code and data as linked into the image.
    pub fn image() -> &'static [u8] {
        let start = (&raw const ap_tramp_start).cast::<u8>();
        let len = (&raw const ap_tramp_end) as usize - start as usize;
        // SAFETY: `ap_tramp_start..ap_tramp_end` is one contiguous range of
        // the image's rodata (the section below), which nothing writes.
        unsafe { core::slice::from_raw_parts(start, len) }
    }
}

/// Turns on long mode once CR3 holds the page tables: PAE, OSFXSR and
/// OSXMMEXCPT (the prebuilt `core` uses SSE), EFER.LME|NXE, then CR0 set
/// whole to PG|WP|NE|ET|MP|PE: caches on (CD and NW clear; an AP leaves
/// INIT with both set), EM clear. The same for node 0 and every other node.
macro_rules! enable_long_mode {
    () => {
        "
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x900
    wrmsr
    mov eax, 0x80010033
    mov cr0, eax
"
    };
}

/// Loads the flat data segment (GDT selector 0x10) and clears FS/GS, first
/// thing in 64-bit mode.
macro_rules! load_data_segments {
    () => {
        "
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
"
    };
}

/// Writes the AP trampoline and its parameters to [`TRAMPOLINE_PHYS`]:
/// the next SIPI starts a core there, in long mode on `cr3`, with `stack`,
/// calling `entry(arg)`.
pub fn install_trampoline(cr3: u64, stack: u64, arg: u64, entry: u64) {
    let code = TrampolineParams::image();
    // SAFETY: the low 2 MiB are node 0's firmware area, identity mapped in
    // all of its page tables, and nothing but the trampoline lives at
    // TRAMPOLINE_PHYS; a core reads these bytes only after the next SIPI.
    unsafe {
        let dst = TRAMPOLINE_PHYS as *mut u8;
        core::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len());
        let put = |off: usize, v: u64| core::ptr::write_volatile(dst.add(off) as *mut u64, v);
        put(TrampolineParams::cr3(), cr3);
        put(TrampolineParams::stack(), stack);
        put(TrampolineParams::arg(), arg);
        put(TrampolineParams::entry(), entry);
    }
}

/// The top of the kernel stack (in every node's own copy of the image).
pub fn kernel_stack_top() -> u64 {
    super::stacks::kernel_stack_top()
}

/// Where a started core enters Rust (`node::ap_entry`).
pub fn ap_entry_addr() -> u64 {
    unsafe extern "C" {
        fn ap_entry(info: *const crate::layout::NodeBootInfo) -> !;
    }
    ap_entry as *const () as u64
}

// The PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY = 18): where QEMU enters us.
global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32 - 0xFFFFFFFF80000000
    "#
);

// Node 0 entry: 32-bit protected mode, paging off, ebx = hvm_start_info.
// Symbols are linked in the higher half; until paging is on, their physical
// addresses are `symbol - KERNEL_VIRT`.
global_asm!(
    r#"
    .section .text.boot, "ax"
    .code32
    .global pvh_start32
    .set KV, 0xFFFFFFFF80000000
pvh_start32:
    cli
    cld
    # Keep an untouched copy of the loaded image (text, rodata, data).
    mov esi, offset __image_start - KV
    mov edi, offset __pristine_start - KV
    mov ecx, offset __data_end - KV
    sub ecx, esi
    rep movsb

    # Boot page tables: identity map of the first 4 GiB in 2 MiB pages, and
    # the first GiB again at KERNEL_VIRT (PML4[511] -> PDPT[510]).
    mov edi, offset boot_pml4 - KV
    xor eax, eax
    mov ecx, 7 * 1024
    rep stosd
    mov eax, offset boot_pdpt - KV
    or eax, 3
    mov dword ptr [boot_pml4 - KV], eax
    mov eax, offset boot_pdpt_hi - KV
    or eax, 3
    mov dword ptr [boot_pml4 - KV + 511 * 8], eax
    mov eax, offset boot_pd - KV
    or eax, 3
    mov dword ptr [boot_pdpt_hi - KV + 510 * 8], eax
    mov edi, offset boot_pdpt - KV
    mov ecx, 4
2:
    mov dword ptr [edi], eax
    add eax, 4096
    add edi, 8
    loop 2b
    mov edi, offset boot_pd - KV
    mov eax, 0x83
    mov ecx, 2048
3:
    mov dword ptr [edi], eax
    add eax, 0x200000
    add edi, 8
    loop 3b

    mov eax, offset boot_pml4 - KV
    mov cr3, eax
    "#,
    enable_long_mode!(),
    r#"
    lgdt [boot_gdt_ptr - KV]
    push 0x08
    mov eax, offset pvh_long_mode - KV
    push eax
    retf

    .code64
pvh_long_mode:
    "#,
    load_data_segments!(),
    r#"
    movabs rax, offset pvh_high
    jmp rax
pvh_high:
    movabs rsp, offset MINT_STACKS + {kernel_stack_top}
    mov edi, ebx
    call pvh_main
5:
    hlt
    jmp 5b

    .section .rodata.boot_gdt, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_ptr:
    .word 23
    .long boot_gdt - KV

    .section .bss.boot_tables, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pdpt_hi:
    .skip 4096
boot_pd:
    .skip 4 * 4096
    "#,
    kernel_stack_top = const super::stacks::KERNEL_STACK_TOP_OFFSET,
);

// AP trampoline: copied to TRAMPOLINE_PHYS; starts in real mode with
// CS = 0x0800 and goes straight to long mode (PE and PG together) using the
// page tables node 0 built for the node in that node's own partition.
// Parameters sit at fixed offsets right after the first jump, so the 16-bit
// code can address them with plain numbers (DS = CS).
global_asm!(
    r#"
    .section .rodata.trampoline, "a"
    .balign 16
    .global ap_tramp_start
    .global ap_tramp_end
    .global tr_cr3
    .global tr_stack
    .global tr_arg
    .global tr_entry
    .code16
ap_tramp_start:
    jmp short ap_tramp16
    .balign 8
tr_cr3:                         # offset 8
    .quad 0
tr_stack:                       # offset 16
    .quad 0
tr_arg:                         # offset 24
    .quad 0
tr_entry:                       # offset 32
    .quad 0
tr_gdt:                         # offset 40
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
tr_gdt_ptr:                     # offset 64
    .word 23
    .long 0x8000 + 40
ap_tramp16:
    cli
    cld
    mov ax, cs
    mov ds, ax
    lgdt [64]
    mov eax, dword ptr [8]
    mov cr3, eax
    "#,
    enable_long_mode!(),
    r#"
    .byte 0x66, 0xEA
    .long 0x8000 + (ap_tramp64 - ap_tramp_start)
    .word 0x08
    .code64
ap_tramp64:
    "#,
    load_data_segments!(),
    r#"
    mov rsp, qword ptr [0x8000 + 16]
    mov rdi, qword ptr [0x8000 + 24]
    mov rax, qword ptr [0x8000 + 32]
    # A call, not a jump: the entry expects the ABI's stack alignment
    # (rsp = 8 mod 16 after the pushed return address).
    call rax
2:
    hlt
    jmp 2b
ap_tramp_end:
    "#
);

const _: () = {
    // The offsets the 16-bit code above hard-codes.
    assert!(TRAMPOLINE_PHYS == 0x8000);
};
