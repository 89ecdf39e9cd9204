//! This node's stacks: the kernel stack and one stack per IST slot, each
//! with an unmapped guard page right below it.
//!
//! All of them live in one page-aligned static in `.bss.mint_stacks` (see
//! `linker.ld`), so every node's copy sits at the same window offsets and
//! node 0 can leave the same guard pages out of every node's page tables
//! (`layout::WindowLayout::regions`). A stack that grows into its guard
//! page page-faults instead of overwriting whatever lies below it; the
//! page-fault and double-fault handlers run on stacks of their own and
//! name the stack whose guard was hit ([`guard_hit`]).

/// Bytes of one guard page.
pub const GUARD_SIZE: usize = 4096;
/// The kernel stack every node starts on and runs on outside interrupts.
pub const KERNEL_STACK_SIZE: usize = 256 * 1024;
/// One IST stack.
pub const IST_STACK_SIZE: usize = 32 * 1024;

/// IST slots in use (1-based, as the IDT names them): see `gdt`.
pub const IST_SLOTS: usize = 6;

/// What each IST slot (1-based index - 1) is for, to name a guard that was hit.
const IST_NAMES: [&str; IST_SLOTS] = [
    "interrupt",
    "exception",
    "double-fault",
    "NMI",
    "page-fault",
    "machine-check",
];

#[repr(C, align(4096))]
struct Guarded<const N: usize> {
    /// Never mapped: the page a stack overflowing downwards hits first.
    _guard: [u8; GUARD_SIZE],
    /// Only its address is used (as RSP, by the CPU and the entry code).
    _stack: [u8; N],
}

impl<const N: usize> Guarded<N> {
    const fn new() -> Self {
        Guarded {
            _guard: [0; GUARD_SIZE],
            _stack: [0; N],
        }
    }
}

#[repr(C)]
pub struct Stacks {
    kernel: Guarded<KERNEL_STACK_SIZE>,
    ist: [Guarded<IST_STACK_SIZE>; IST_SLOTS],
}

// Sizes the page tables rely on: whole pages, so guards and stacks never
// share a page.
const _: () = {
    assert!(KERNEL_STACK_SIZE.is_multiple_of(4096));
    assert!(IST_STACK_SIZE.is_multiple_of(4096));
    assert!(core::mem::size_of::<Stacks>().is_multiple_of(4096));
};

/// This node's stacks (each node runs its own copy of the image). Named for
/// the PVH entry in `boot.rs`, which loads the kernel stack's top into RSP.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".bss.mint_stacks")]
pub static mut MINT_STACKS: Stacks = Stacks {
    kernel: Guarded::new(),
    ist: [const { Guarded::new() }; IST_SLOTS],
};

/// Offset of the kernel stack's top from [`MINT_STACKS`] (for `boot.rs`).
pub const KERNEL_STACK_TOP_OFFSET: usize = GUARD_SIZE + KERNEL_STACK_SIZE;

fn base() -> u64 {
    core::ptr::addr_of!(MINT_STACKS) as u64
}

fn ist_base(slot: usize) -> u64 {
    base()
        + core::mem::offset_of!(Stacks, ist) as u64
        + (slot * core::mem::size_of::<Guarded<IST_STACK_SIZE>>()) as u64
}

/// The top of the kernel stack (the same window address in every node).
pub fn kernel_stack_top() -> u64 {
    base() + KERNEL_STACK_TOP_OFFSET as u64
}

/// The top of the stack for IST slot `slot` (1-based, as in the IDT).
pub fn ist_top(slot: u16) -> u64 {
    let i = usize::from(slot) - 1;
    ist_base(i) + (GUARD_SIZE + IST_STACK_SIZE) as u64
}

/// Every guard page (virtual address of its first byte) with the name of
/// the stack right above it.
pub fn guard_pages() -> [(u64, &'static str); IST_SLOTS + 1] {
    let mut out = [(base(), "kernel"); IST_SLOTS + 1];
    for (i, name) in IST_NAMES.iter().enumerate() {
        out[i + 1] = (ist_base(i), name);
    }
    out
}

/// The name of the stack whose guard page holds `addr`, if any.
pub fn guard_hit(addr: u64) -> Option<&'static str> {
    guard_pages()
        .into_iter()
        .find(|&(g, _)| (g..g + GUARD_SIZE as u64).contains(&addr))
        .map(|(_, name)| name)
}
