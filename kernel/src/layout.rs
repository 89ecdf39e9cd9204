//! A node's virtual address space and the layout of its partition window.
//!
//! Every node runs the same image linked at [`WINDOW_VIRT`]; its page tables
//! map that virtual window onto its own partition, so the one binary runs as
//! N independent instances with N copies of every static. Inside the window:
//!
//! | window offset | what |
//! |---|---|
//! | 0 | the kernel image (text, rodata, data, bss incl. stacks) |
//! | `pristine` | node 0 only: the untouched image it copies to other nodes |
//! | `tables` | this node's page tables (built by node 0) |
//! | `boot_info` | one page: [`NodeBootInfo`] |
//! | `heap` | the rest: this node's heap |
//!
//! Other virtual ranges: the low 2 MiB (node 0; other nodes drop it after
//! the trampoline), the shared region at `mint_abi::shared::SHARED_VIRT`,
//! and the local APIC (and I/O APIC for node 0) at their physical addresses,
//! uncached.

use core::sync::atomic::{AtomicU64, Ordering};

/// Virtual address of every node's partition window (the image start).
pub const WINDOW_VIRT: u64 = 0xFFFF_FFFF_8020_0000;
/// Offset of the higher half: node 0 boots with physical = virtual - this.
pub const KERNEL_VIRT: u64 = 0xFFFF_FFFF_8000_0000;
/// Page-table frames reserved per node.
pub const TABLE_FRAMES: u64 = 32;

unsafe extern "C" {
    static __image_start: u8;
    static __data_end: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static __image_end: u8;
    static __pristine_start: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Offsets (from the window start) of what a partition holds.
#[derive(Clone, Copy, Debug)]
pub struct WindowLayout {
    /// Bytes of image with contents (text, rodata, data).
    pub loaded_len: u64,
    pub bss_off: u64,
    pub bss_len: u64,
    pub pristine_off: u64,
    pub tables_off: u64,
    pub boot_info_off: u64,
    pub heap_off: u64,
    pub heap_len: u64,
}

impl WindowLayout {
    /// The layout of a partition of `size` bytes, or `None` if the image
    /// and its reserved areas do not leave at least 4 MiB of heap.
    pub fn new(size: u64) -> Option<WindowLayout> {
        // SAFETY: linker symbols; only their addresses are taken.
        let (start, data_end, bss_start, bss_end, pristine) = unsafe {
            (
                sym(&__image_start),
                sym(&__data_end),
                sym(&__bss_start),
                sym(&__bss_end),
                sym(&__pristine_start),
            )
        };
        let loaded_len = data_end - start;
        let pristine_off = pristine - start;
        let tables_off = align_up(pristine_off + loaded_len, 4096);
        let boot_info_off = tables_off + TABLE_FRAMES * 4096;
        let heap_off = align_up(boot_info_off + 4096, 2 << 20);
        let heap_len = size.checked_sub(heap_off)?;
        (heap_len >= 4 << 20).then_some(WindowLayout {
            loaded_len,
            bss_off: bss_start - start,
            bss_len: bss_end - bss_start,
            pristine_off,
            tables_off,
            boot_info_off,
            heap_off,
            heap_len,
        })
    }
}

pub const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

/// This node's partition base (physical); set once at node start.
static PARTITION_BASE: AtomicU64 = AtomicU64::new(WINDOW_VIRT - KERNEL_VIRT);

/// This node's partition size; 0 until set.
static PARTITION_SIZE: AtomicU64 = AtomicU64::new(0);

pub fn set_partition(base: u64, size: u64) {
    PARTITION_BASE.store(base, Ordering::Relaxed);
    PARTITION_SIZE.store(size, Ordering::Relaxed);
}

/// Whether `virt` lies in this node's partition window.
pub fn window_contains(virt: u64) -> bool {
    virt.checked_sub(WINDOW_VIRT)
        .is_some_and(|off| off < PARTITION_SIZE.load(Ordering::Relaxed))
}

/// Physical address of a virtual address inside this node's window.
pub fn virt_to_phys(virt: u64) -> u64 {
    virt - WINDOW_VIRT + PARTITION_BASE.load(Ordering::Relaxed)
}

/// Virtual address of a physical address inside this node's partition.
pub fn phys_to_virt(phys: u64) -> u64 {
    phys - PARTITION_BASE.load(Ordering::Relaxed) + WINDOW_VIRT
}

/// What node 0 tells a node about itself; placed at `boot_info_off` of the
/// node's window before the node starts. (Same binary on both sides; the
/// node still checks `magic`.)
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NodeBootInfo {
    pub magic: u64,
    pub node: u8,
    pub node_count: u8,
    pub console_port: u16,
    pub partition_base: u64,
    pub partition_size: u64,
    pub shared_phys: u64,
    pub shared_size: u64,
    /// Memory BAR of the real e1000 the plan gives this node (0: none),
    /// mapped uncached at the same address, and its PCI location
    /// (bus << 16 | device << 8 | function).
    pub nic_bar: u64,
    pub nic_pci: u32,
    /// Its legacy interrupt line (PCI config 0x3C).
    pub nic_irq: u8,
    /// The hidden self-test to run (`node::selftest::SelfTest` as u8).
    pub selftest: u8,
}

pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"MINTBOOT");
