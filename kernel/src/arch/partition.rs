//! Building node address spaces during node 0's boot: the only code that
//! writes physical memory outside node 0's own window.
//!
//! It works through [`BootMemory`], a capability that exists only while
//! node 0's boot page tables identity-map the first 4 GiB and no other node
//! runs. Every write is checked to stay out of node 0's window and the low
//! area; the capability is consumed when node 0 switches to its own tables,
//! after which node 0 can no longer reach other partitions at all.

use alloc::string::String;
use core::ops::Range;

use mint_abi::shared::{self, Access as SharedAccess, OPEN_OFFSET, SHARED_VIRT};

use super::apic::XAPIC_BASE;
use super::paging::{self, TableBuilder};
use crate::layout::{self, Access, NodeBootInfo, WINDOW_VIRT, WindowLayout};

/// The 2 MiB frame holding the I/O APIC's registers (node 0 only; the
/// local APIC's single page is `apic::XAPIC_BASE`).
const IOAPIC_FRAME: u64 = 0xFEC0_0000;
const TWO_MIB: u64 = 2 << 20;
const PAGE_4K: u64 = 4096;
const IDENTITY_LIMIT: u64 = 4 << 30;

/// Physical write access during node 0's boot (see the module docs).
pub struct BootMemory {
    node0: Range<u64>,
}

/// A range `check` accepted for writing.
#[derive(Clone, Copy)]
struct Checked(PhysRange);

/// A physical range `[base, base + size)`.
#[derive(Clone, Copy, Debug)]
pub struct PhysRange {
    pub base: u64,
    pub size: u64,
}

impl PhysRange {
    /// The range, or `None` if its end overflows.
    fn range(self) -> Option<Range<u64>> {
        Some(self.base..self.base.checked_add(self.size)?)
    }

    /// The register frames of an e1000 whose BAR 0 is at `bar`.
    pub fn e1000_registers(bar: u64) -> PhysRange {
        PhysRange {
            base: bar,
            size: mint_e1000::regs::REGISTER_SPACE,
        }
    }
}

impl BootMemory {
    /// # Safety
    /// Call once, from node 0, while its boot page tables identity-map the
    /// first 4 GiB and before any other node runs; `node0` is node 0's own
    /// partition (which this capability will not write).
    pub unsafe fn new(node0: PhysRange) -> BootMemory {
        BootMemory {
            node0: node0.range().unwrap_or(node0.base..u64::MAX),
        }
    }

    /// Checks that `r` may be written: below the identity limit, clear of
    /// the low area and of node 0's window.
    fn check(&self, r: PhysRange, what: &str) -> Result<Checked, String> {
        let bad = || {
            alloc::format!(
                "{what} {:#x}+{:#x} is not memory node 0 may prepare",
                r.base,
                r.size
            )
        };
        let range = r.range().ok_or_else(bad)?;
        let overlaps = |o: &Range<u64>| range.start < o.end && o.start < range.end;
        if r.base < TWO_MIB || range.end > IDENTITY_LIMIT || overlaps(&self.node0) {
            return Err(bad());
        }
        Ok(Checked(r))
    }

    /// Copies `src` to `offset` within a checked range.
    fn copy(&self, into: Checked, offset: u64, src: &[u8]) {
        let end = offset.checked_add(src.len() as u64);
        assert!(
            end.is_some_and(|e| e <= into.0.size),
            "copy past a checked range"
        );
        // SAFETY: `into` passed `check` (writable, identity-mapped RAM
        // outside node 0's window and the low area) and the copy stays inside
        // it (asserted above); `src` is node 0's own memory, so the two do
        // not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                src.as_ptr(),
                (into.0.base + offset) as *mut u8,
                src.len(),
            )
        };
    }

    /// Zeroes `len` bytes at `offset` within a checked range.
    fn zero(&self, into: Checked, offset: u64, len: u64) {
        let end = offset.checked_add(len);
        assert!(
            end.is_some_and(|e| e <= into.0.size),
            "zeroing past a checked range"
        );
        // SAFETY: as in `copy`.
        unsafe { core::ptr::write_bytes((into.0.base + offset) as *mut u8, 0, len as usize) };
    }

    /// Zeroes the shared region before anyone uses it.
    pub fn clear_shared(&self, shared: PhysRange) -> Result<(), String> {
        let checked = self.check(shared, "shared region")?;
        self.zero(checked, 0, shared.size);
        Ok(())
    }

    /// Gives a node its own copy of the kernel in `part` and its address
    /// space: the pristine image (text, rodata, data) and zeroed bss, page
    /// tables mapping its window, the shared region, its local APIC, the
    /// register frame of its NIC if it has one and (to start from the
    /// trampoline) the low area, and its boot info. Returns the node's CR3.
    pub fn prepare_node(
        &self,
        part: PhysRange,
        window: &WindowLayout,
        shared: PhysRange,
        info: &NodeBootInfo,
    ) -> Result<u64, String> {
        let checked = self.check(part, "partition")?;
        let mmio = (info.nic_bar != 0).then(|| PhysRange::e1000_registers(info.nic_bar));
        let pristine = WINDOW_VIRT + window.pristine_off;
        // SAFETY: node 0's pristine slot holds `loaded_len` bytes of the
        // image copied before any Rust code ran, never written since.
        let image = unsafe {
            core::slice::from_raw_parts(pristine as *const u8, window.loaded_len as usize)
        };
        self.copy(checked, 0, image);
        self.zero(checked, window.bss_off, window.bss_len);
        let tables = self.build_tables(part, window, shared, usize::from(info.node), mmio)?;
        let info_bytes = info as *const NodeBootInfo as *const u8;
        // SAFETY: a `#[repr(C)]` plain-data struct viewed as its bytes.
        let info_bytes = unsafe {
            core::slice::from_raw_parts(info_bytes, core::mem::size_of::<NodeBootInfo>())
        };
        self.copy(checked, window.boot_info_off, info_bytes);
        Ok(tables)
    }

    /// Node `node`'s tables: the low area, its window, the shared region
    /// (the header and other nodes' slots read-only unless `node` is node
    /// 0, see `mint_abi::shared::segments_for`), its local APIC, node 0's
    /// I/O APIC, and exactly the register pages of its NIC.
    fn build_tables(
        &self,
        part: PhysRange,
        window: &WindowLayout,
        shared: PhysRange,
        node: usize,
        mmio: Option<PhysRange>,
    ) -> Result<u64, String> {
        // SAFETY: the table frames are the partition's reserved table area
        // (inside `part`, checked by the caller or node 0's own), reachable
        // through the identity map.
        let mut t = unsafe {
            TableBuilder::new(
                part.base + window.tables_off,
                layout::TABLE_FRAMES * 4096,
                0,
            )
        };
        let open = OPEN_OFFSET as u64;
        if shared.size <= open {
            return Err(alloc::format!(
                "shared region of {:#x} bytes holds no open part",
                shared.size
            ));
        }
        // Node 0 only reads and writes its low area (firmware tables, the
        // trampoline's copy); another node runs the trampoline from it.
        let low = if node == 0 { paging::DATA } else { paging::RAM };
        let mut mapped = t.map(0, 0, TWO_MIB, low);
        for r in window.regions() {
            let flags = match r.access {
                Access::Code => paging::CODE,
                Access::ReadOnly => paging::READ_ONLY,
                Access::ReadWrite => paging::DATA,
            };
            mapped =
                mapped.and_then(|_| t.map(WINDOW_VIRT + r.off, part.base + r.off, r.len, flags));
        }
        // The protected part of the shared region page by page, as its
        // writers allow; then the open part (debug NIC, DMA window) writable.
        for seg in shared::segments_for(node) {
            let flags = match seg.access {
                SharedAccess::ReadWrite => paging::SHARED,
                SharedAccess::ReadOnly => paging::SHARED_READ_ONLY,
            };
            let (off, len) = (seg.offset as u64, seg.len as u64);
            mapped = mapped.and_then(|_| t.map(SHARED_VIRT + off, shared.base + off, len, flags));
        }
        mapped = mapped
            .and_then(|_| {
                t.map(
                    SHARED_VIRT + open,
                    shared.base + open,
                    shared.size - open,
                    paging::SHARED,
                )
            })
            // The local APIC's one register page (xAPIC mode uses it; in
            // x2APIC mode the registers are MSRs and it goes unused).
            .and_then(|_| t.map(XAPIC_BASE, XAPIC_BASE, PAGE_4K, paging::MMIO));
        if node == 0 {
            mapped = mapped.and_then(|_| t.map(IOAPIC_FRAME, IOAPIC_FRAME, TWO_MIB, paging::MMIO));
        }
        if let Some(regs) = mmio {
            // Exactly the device's register space, identity and uncached,
            // in 4 KiB pages: not the rest of the 2 MiB frames around it
            // (another device's BAR may sit there).
            let first = regs.base & !(PAGE_4K - 1);
            let end = (regs.base + regs.size).next_multiple_of(PAGE_4K);
            mapped = mapped.and_then(|_| t.map(first, first, end - first, paging::MMIO));
        }
        mapped.map_err(|e| alloc::format!("node page tables: {e}"))?;
        Ok(t.pml4_phys())
    }

    /// Builds node 0's own tables (its window, the low area it owns, the
    /// shared region, the local and I/O APIC, and the register frame of a
    /// device the plan gives it) and switches to them. From
    /// here on node 0 reaches no other partition: the capability ends.
    pub fn switch_to_node0_tables(
        self,
        window: &WindowLayout,
        shared: PhysRange,
        mmio: Option<PhysRange>,
    ) -> Result<(), String> {
        let part = PhysRange {
            base: self.node0.start,
            size: self.node0.end - self.node0.start,
        };
        let cr3 = self.build_tables(part, window, shared, 0, mmio)?;
        // SAFETY: the new tables map node 0's whole window at the same
        // virtual addresses as the boot tables, with access node 0's code
        // keeps to from here on: its text executable, rodata and the
        // pristine image read-only, stacks (not their guard pages), statics,
        // tables and heap writable; the low area stays mapped (not
        // executable: node 0 runs no code there).
        unsafe { paging::activate(cr3) };
        Ok(())
    }

    // For a Linux node (`crate::linux`): its files, zero page and identity
    // map go into its partition through the same checks.

    /// Copies `bytes` to `offset` within `part` (a partition node 0 may
    /// prepare).
    pub fn write(&self, part: PhysRange, offset: u64, bytes: &[u8]) -> Result<(), String> {
        let checked = self.check(part, "partition")?;
        let fits = offset
            .checked_add(bytes.len() as u64)
            .is_some_and(|end| end <= part.size);
        if !fits {
            return Err(alloc::format!(
                "{:#x} bytes at {offset:#x} do not fit a partition of {:#x}",
                bytes.len(),
                part.size
            ));
        }
        self.copy(checked, offset, bytes);
        Ok(())
    }

    /// Builds identity-mapping page tables in `frames` (inside a partition
    /// node 0 may prepare) for each of `ranges`, writable and executable
    /// (a kernel that is not mint's builds its own tables at once).
    /// Returns the CR3.
    pub fn identity_tables(&self, frames: PhysRange, ranges: &[PhysRange]) -> Result<u64, String> {
        let checked = self.check(frames, "page-table area")?;
        self.zero(checked, 0, frames.size);
        // SAFETY: `frames` passed `check` (RAM outside node 0's window and
        // the low area, identity mapped now), was just zeroed, and nothing
        // else uses it: it is the Linux node's loader area.
        let mut t = unsafe { TableBuilder::new(frames.base, frames.size, 0) };
        for r in ranges {
            t.map(r.base, r.base, r.size, paging::RAM)
                .map_err(|e| alloc::format!("identity map: {e}"))?;
        }
        Ok(t.pml4_phys())
    }
}
