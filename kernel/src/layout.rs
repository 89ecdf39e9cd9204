//! A node's virtual address space and the layout of its partition window.
//!
//! Every node runs the same image linked at [`WINDOW_VIRT`]; its page tables
//! map that virtual window onto its own partition, so the one binary runs as
//! N independent instances with N copies of every static. Inside the window:
//!
//! | window offset | what |
//! |---|---|
//! | 0 | the kernel image (text, rodata, data, bss incl. stacks with guard pages) |
//! | `pristine` | node 0 only: the untouched image it copies to other nodes |
//! | `tables` | this node's page tables (built by node 0) |
//! | `boot_info` | one page: [`NodeBootInfo`] |
//! | `heap` | the rest: this node's heap |
//!
//! Other virtual ranges: the low 2 MiB (node 0; other nodes drop it after
//! the trampoline), the shared region at `mint_abi::shared::SHARED_VIRT`,
//! and the local APIC (and I/O APIC for node 0) at their physical addresses,
//! uncached.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Virtual address of every node's partition window (the image start).
pub const WINDOW_VIRT: u64 = 0xFFFF_FFFF_8020_0000;
/// Offset of the higher half: node 0 boots with physical = virtual - this.
pub const KERNEL_VIRT: u64 = 0xFFFF_FFFF_8000_0000;
/// Page-table frames reserved per node.
pub const TABLE_FRAMES: u64 = 32;

// Boundaries set by `linker.ld`. Declared zero-sized: a boundary symbol
// names an address, not an object (several may share one address, and
// the bytes behind one may belong to something else or to nothing), so
// only their addresses are ever taken, as raw pointers.
unsafe extern "C" {
    static __image_start: [u8; 0];
    static __text_end: [u8; 0];
    static __rodata_end: [u8; 0];
    static __ro_after_init_start: [u8; 0];
    static __ro_after_init_end: [u8; 0];
    static __data_end: [u8; 0];
    static __bss_start: [u8; 0];
    static __stacks_start: [u8; 0];
    static __stacks_end: [u8; 0];
    static __bss_end: [u8; 0];
    static __pristine_start: [u8; 0];
}

fn sym(s: *const [u8; 0]) -> u64 {
    s as u64
}

/// How a range of the window is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only and executable: the image's text.
    Code,
    /// Read-only, never executed: rodata, the pristine image.
    ReadOnly,
    /// Writable, never executed: data, bss, stacks, tables, heap.
    ReadWrite,
}

/// A range of the window, as offsets from its start, and its access.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub off: u64,
    pub len: u64,
    pub access: Access,
}

/// Offsets (from the window start) of what a partition holds.
#[derive(Clone, Copy, Debug)]
pub struct WindowLayout {
    /// The partition's size (the window's length).
    pub size: u64,
    /// Bytes of image with contents (text, rodata, data).
    pub loaded_len: u64,
    /// End of text, end of rodata (both page aligned).
    pub text_end: u64,
    pub rodata_end: u64,
    /// Pages written once at the node's start (GDT, TSS, IDT), then sealed.
    pub ro_after_init_off: u64,
    pub ro_after_init_len: u64,
    pub bss_off: u64,
    pub bss_len: u64,
    /// The stacks and their guard pages (page aligned).
    pub stacks_off: u64,
    pub stacks_end: u64,
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
        let start = sym(&raw const __image_start);
        let off = |s: *const [u8; 0]| sym(s) - start;
        let loaded_len = off(&raw const __data_end);
        let pristine_off = off(&raw const __pristine_start);
        let tables_off = align_up(pristine_off + loaded_len, 4096);
        let boot_info_off = tables_off + TABLE_FRAMES * 4096;
        let heap_off = align_up(boot_info_off + 4096, 2 << 20);
        let heap_len = size.checked_sub(heap_off)?;
        let bss_off = off(&raw const __bss_start);
        let ro_after_init_off = off(&raw const __ro_after_init_start);
        (heap_len >= 4 << 20).then_some(WindowLayout {
            size,
            loaded_len,
            text_end: off(&raw const __text_end),
            rodata_end: off(&raw const __rodata_end),
            ro_after_init_off,
            ro_after_init_len: off(&raw const __ro_after_init_end) - ro_after_init_off,
            bss_off,
            bss_len: off(&raw const __bss_end) - bss_off,
            stacks_off: off(&raw const __stacks_start),
            stacks_end: off(&raw const __stacks_end),
            pristine_off,
            tables_off,
            boot_info_off,
            heap_off,
            heap_len,
        })
    }

    /// How the whole window is mapped, in address order: text executable,
    /// rodata and the pristine image read-only, everything else writable
    /// and never executed, and a hole at every stack's guard page. The
    /// pages that become read-only after init ([`Self::sealed`]) are
    /// writable here.
    pub fn regions(&self) -> Vec<Region> {
        let mut out = Vec::new();
        let mut push = |off: u64, end: u64, access: Access| {
            if end > off {
                out.push(Region {
                    off,
                    len: end - off,
                    access,
                });
            }
        };
        push(0, self.text_end, Access::Code);
        push(self.text_end, self.rodata_end, Access::ReadOnly);
        // The sealed ranges are regions of their own, each shorter than
        // 2 MiB, so `map` gives them 4 KiB pages (sealing clears the
        // writable bit of 4 KiB entries only), whatever the image's size.
        let (ro_off, ro_len) = (self.ro_after_init_off, self.ro_after_init_len);
        assert!(
            self.rodata_end <= ro_off && ro_off + ro_len <= self.stacks_off,
            "the read-only-after-init section lies in data"
        );
        push(self.rodata_end, ro_off, Access::ReadWrite);
        push(ro_off, ro_off + ro_len, Access::ReadWrite);
        push(ro_off + ro_len, self.stacks_off, Access::ReadWrite);
        // Guards in address order (`stacks` lays them out so), each
        // followed by its stack up to the next guard.
        let guards = crate::arch::stacks::guard_pages().map(|(virt, _)| virt - WINDOW_VIRT);
        assert_eq!(guards[0], self.stacks_off, "the stacks open their section");
        for (i, &g) in guards.iter().enumerate() {
            let end = guards.get(i + 1).copied().unwrap_or(self.stacks_end);
            push(
                g + crate::arch::stacks::GUARD_SIZE as u64,
                end,
                Access::ReadWrite,
            );
        }
        push(self.stacks_end, self.pristine_off, Access::ReadWrite);
        push(self.pristine_off, self.tables_off, Access::ReadOnly);
        let sealed_end = self.boot_info_off + 4096;
        assert!(
            ro_len < 2 << 20 && sealed_end - self.tables_off < 2 << 20,
            "sealed ranges must stay under 2 MiB to get 4 KiB pages"
        );
        push(self.tables_off, sealed_end, Access::ReadWrite);
        push(sealed_end, self.size, Access::ReadWrite);
        out
    }

    /// The ranges (window offset, length) a node makes read-only once it
    /// has set itself up: its page tables and boot info, and its GDT, TSS
    /// and IDT.
    pub fn sealed(&self) -> [(u64, u64); 2] {
        [
            (self.ro_after_init_off, self.ro_after_init_len),
            (self.tables_off, self.boot_info_off + 4096 - self.tables_off),
        ]
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
    /// Where that line arrives (GSI, trigger, polarity after the MADT's
    /// overrides), as `mint_irq::request`'s register argument.
    pub nic_source: u64,
    /// `node::NIC_OWNER`, `node::NIC_STANDBY`, or 0 (no e1000).
    pub nic_role: u8,
    /// The hidden self-test to run (`node::selftest::SelfTest` as u8).
    pub selftest: u8,
}

pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"MINTBOOT");
