//! Page tables of a node: its partition window, the shared region (part of
//! it read-only, see `mint_abi::shared::segments_for`), its local
//! APIC (and, for node 0, the low firmware area and the I/O APIC). Nothing
//! else is mapped, so a stray access to another node's memory faults in the
//! node that made it. Ranges are mapped with 2 MiB pages where alignment
//! allows and 4 KiB pages elsewhere, so a range may have page-granular
//! permissions and holes (guard pages): the window is W^X (text read-only
//! and executable, everything else never executed), and [`seal`] makes a
//! node's own tables, GDT, TSS and IDT read-only once it has set them up.

use x86_64::PhysAddr;
use x86_64::structures::paging::{PageTable, PageTableFlags as F};

const HUGE_2M: u64 = 2 << 20;
const PAGE_4K: u64 = 4096;

/// Builds a page-table tree in a run of physical frames that the builder can
/// reach at `phys + access_offset` (identity while node 0 boots).
pub struct TableBuilder {
    frames_phys: u64,
    frames_len: u64,
    next: u64,
    access_offset: u64,
    pml4_phys: u64,
}

#[derive(Debug)]
pub struct OutOfTableFrames;

impl TableBuilder {
    /// Takes `[frames_phys, frames_phys + frames_len)` (4 KiB aligned) for
    /// tables; the first frame becomes the PML4.
    ///
    /// # Safety
    /// The frames must be memory nothing else uses, reachable at
    /// `phys + access_offset` in the current address space.
    pub unsafe fn new(frames_phys: u64, frames_len: u64, access_offset: u64) -> Self {
        let mut b = TableBuilder {
            frames_phys,
            frames_len,
            next: frames_phys,
            access_offset,
            pml4_phys: 0,
        };
        b.pml4_phys = b.alloc().expect("table area holds at least one frame");
        b
    }

    pub fn pml4_phys(&self) -> u64 {
        self.pml4_phys
    }

    fn alloc(&mut self) -> Result<u64, OutOfTableFrames> {
        if self.next + 4096 > self.frames_phys + self.frames_len {
            return Err(OutOfTableFrames);
        }
        let f = self.next;
        self.next += 4096;
        // SAFETY: `f` is a fresh frame of the area `new` was given.
        unsafe { table_at(f + self.access_offset).zero() };
        Ok(f)
    }

    /// # Safety
    /// `phys` must be a table frame of this builder.
    unsafe fn table(&mut self, phys: u64) -> &mut PageTable {
        // SAFETY: guaranteed by the caller and by `new`'s contract; `&mut
        // self` keeps two tables of this builder from being borrowed at once.
        unsafe { table_at(phys + self.access_offset) }
    }

    fn next_level(&mut self, table_phys: u64, index: usize) -> Result<u64, OutOfTableFrames> {
        // SAFETY: `table_phys` is one of our frames (PML4 or one we linked).
        let entry = unsafe { &mut self.table(table_phys)[index] };
        if entry.flags().contains(F::PRESENT) {
            return Ok(entry.addr().as_u64());
        }
        let new = self.alloc()?;
        // SAFETY: as above; re-borrow after `alloc`.
        let entry = unsafe { &mut self.table(table_phys)[index] };
        entry.set_addr(PhysAddr::new(new), F::PRESENT | F::WRITABLE);
        Ok(new)
    }

    /// Maps `[virt, virt+len)` to `[phys, phys+len)` (all 4 KiB aligned):
    /// 2 MiB pages where `virt` and `phys` are both 2 MiB aligned and a whole
    /// 2 MiB remains, 4 KiB pages elsewhere. A range already mapped is
    /// refused rather than silently remapped (`AlreadyMapped`), so later
    /// calls cannot widen an earlier, stricter mapping.
    pub fn map(&mut self, virt: u64, phys: u64, len: u64, flags: F) -> Result<(), MapError> {
        if !(virt.is_multiple_of(PAGE_4K)
            && phys.is_multiple_of(PAGE_4K)
            && len.is_multiple_of(PAGE_4K))
        {
            return Err(MapError::Unaligned);
        }
        let mut off = 0;
        while off < len {
            let (v, p) = (virt + off, phys + off);
            let pdpt = self.next_level(self.pml4_phys, ((v >> 39) & 511) as usize)?;
            let pd = self.next_level(pdpt, ((v >> 30) & 511) as usize)?;
            let pd_index = ((v >> 21) & 511) as usize;
            if v.is_multiple_of(HUGE_2M) && p.is_multiple_of(HUGE_2M) && len - off >= HUGE_2M {
                // SAFETY: `pd` is one of our frames.
                let entry = unsafe { &mut self.table(pd)[pd_index] };
                if entry.flags().contains(F::PRESENT) {
                    return Err(MapError::AlreadyMapped(v));
                }
                entry.set_addr(PhysAddr::new(p), flags | F::PRESENT | F::HUGE_PAGE);
                off += HUGE_2M;
                continue;
            }
            // SAFETY: `pd` is one of our frames.
            if unsafe { self.table(pd)[pd_index].flags() }.contains(F::HUGE_PAGE) {
                return Err(MapError::AlreadyMapped(v));
            }
            let pt = self.next_level(pd, pd_index)?;
            // SAFETY: `pt` is one of our frames.
            let entry = unsafe { &mut self.table(pt)[((v >> 12) & 511) as usize] };
            if entry.flags().contains(F::PRESENT) {
                return Err(MapError::AlreadyMapped(v));
            }
            entry.set_addr(PhysAddr::new(p), flags | F::PRESENT);
            off += PAGE_4K;
        }
        Ok(())
    }
}

/// Why a mapping could not be built.
#[derive(Debug)]
pub enum MapError {
    /// The table area has no free frame left.
    OutOfTableFrames,
    /// An address or length is not 4 KiB aligned.
    Unaligned,
    /// This virtual address is mapped already.
    AlreadyMapped(u64),
}

impl From<OutOfTableFrames> for MapError {
    fn from(_: OutOfTableFrames) -> Self {
        MapError::OutOfTableFrames
    }
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::OutOfTableFrames => write!(f, "page-table area exhausted"),
            MapError::Unaligned => write!(f, "mapping not 4 KiB aligned"),
            MapError::AlreadyMapped(v) => write!(f, "{v:#x} mapped twice"),
        }
    }
}

/// # Safety
/// `virt` must be the address of a page-table frame nothing else borrows.
unsafe fn table_at<'a>(virt: u64) -> &'a mut PageTable {
    // SAFETY: guaranteed by the caller.
    unsafe { &mut *(virt as *mut PageTable) }
}

/// Flags for normal memory that code runs from and writes (the low area
/// of a node other than node 0, while the trampoline starts it).
pub const RAM: F = F::WRITABLE;
/// Flags for the image's text: read-only, executable.
pub const CODE: F = F::empty();
/// Flags for read-only data: never written, never executed.
pub const READ_ONLY: F = F::NO_EXECUTE;
/// Flags for data, stacks, tables and heap: writable, never executed.
pub const DATA: F = F::WRITABLE.union(F::NO_EXECUTE);
/// Flags for shared memory: writable, never executed.
pub const SHARED: F = F::WRITABLE.union(F::NO_EXECUTE);
/// Flags for shared memory this node may only read (another node's page).
pub const SHARED_READ_ONLY: F = F::NO_EXECUTE;
/// Flags for device registers: uncached, never executed.
pub const MMIO: F = F::WRITABLE
    .union(F::NO_CACHE)
    .union(F::WRITE_THROUGH)
    .union(F::NO_EXECUTE);

/// Loads `pml4_phys` into CR3.
///
/// # Safety
/// The tables must map the code, stack and data in use at the call.
pub unsafe fn activate(pml4_phys: u64) {
    use x86_64::registers::control::{Cr3, Cr3Flags};
    use x86_64::structures::paging::PhysFrame;
    // SAFETY: guaranteed by the caller.
    unsafe {
        Cr3::write(
            PhysFrame::from_start_address(PhysAddr::new(pml4_phys)).expect("PML4 is page aligned"),
            Cr3Flags::empty(),
        )
    };
}

/// Removes the 2 MiB mapping of the low firmware area (virtual 0..2 MiB)
/// from the active tables; other nodes use it only while they start.
pub fn unmap_low_area() {
    use x86_64::registers::control::Cr3;
    let (frame, _) = Cr3::read();
    // The tables live in this node's window, which is mapped at
    // `layout::WINDOW_VIRT` + (phys - partition base); node code resolves
    // that through `crate::layout::phys_to_virt`.
    let pml4 = crate::layout::phys_to_virt(frame.start_address().as_u64()) as *mut PageTable;
    let table = |t: *mut PageTable| -> &'static mut PageTable {
        // SAFETY: `t` is one of this node's table frames (see below).
        unsafe { &mut *t }
    };
    // CR3's tables are this node's, built in its own window by node 0, and
    // entry 0/0/0 maps only the low area no live code or data uses now.
    let pdpt = crate::layout::phys_to_virt(table(pml4)[0].addr().as_u64()) as *mut PageTable;
    let pd = crate::layout::phys_to_virt(table(pdpt)[0].addr().as_u64()) as *mut PageTable;
    table(pd)[0].set_unused();
    x86_64::instructions::tlb::flush_all();
}

/// Why [`seal`] could not make a range read-only.
#[derive(Debug)]
pub enum SealError {
    /// This address is not mapped by a 4 KiB page of the active tables.
    NotA4KibPage(u64),
}

impl core::fmt::Display for SealError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SealError::NotA4KibPage(v) => write!(f, "{v:#x} is not mapped by a 4 KiB page"),
        }
    }
}

/// Clears the writable bit of every 4 KiB page in `ranges` (virtual
/// address, length; page aligned) in the active tables, with CR0.WP on, so
/// that from here on no code of this node can write those pages (the CPU
/// still reads them: page tables, GDT, TSS, IDT). Pages mapped by 2 MiB
/// entries are refused: a range to seal must be mapped with 4 KiB pages
/// (the window's small regions are).
///
/// Every page is checked before the first entry changes, and the changes
/// are made with CR0.WP off, so sealing the tables that map the tables
/// themselves cannot fault halfway.
pub fn seal(ranges: &[(u64, u64)]) -> Result<(), SealError> {
    use x86_64::registers::control::Cr3;
    let (frame, _) = Cr3::read();
    let pml4 = frame.start_address().as_u64();
    let pages = || {
        ranges
            .iter()
            .flat_map(|&(virt, len)| (virt..virt + len).step_by(PAGE_4K as usize))
    };
    for v in pages() {
        leaf_entry(pml4, v).ok_or(SealError::NotA4KibPage(v))?;
    }
    // SAFETY: the closure writes only present 4 KiB page-table entries of
    // this node's active tables (checked above; `leaf_entry` finds them in
    // the node's own window), and clearing an entry's writable bit only
    // takes write access away.
    unsafe {
        with_write_protect_off(|| {
            for pte in pages().filter_map(|v| leaf_entry(pml4, v)) {
                pte.write_volatile(pte.read_volatile() & !F::WRITABLE.bits());
            }
            x86_64::instructions::tlb::flush_all();
        })
    };
    Ok(())
}

/// Runs `f` with CR0.WP off (ring-0 writes then ignore read-only pages)
/// and interrupts off, and turns CR0.WP on again after it, whatever it was
/// before.
///
/// # Safety
/// `f` must write only what it means to through read-only pages: nothing
/// guards them meanwhile.
pub unsafe fn with_write_protect_off<R>(f: impl FnOnce() -> R) -> R {
    use x86_64::registers::control::{Cr0, Cr0Flags};
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: clearing CR0.WP only lets this core's own ring-0 writes
        // through read-only pages; it is set again below before anything
        // but `f` runs (interrupts are off), and the caller vouches for `f`.
        unsafe { Cr0::update(|c| c.remove(Cr0Flags::WRITE_PROTECT)) };
        let r = f();
        // SAFETY: turning write protection (back) on takes nothing away
        // that code relies on.
        unsafe { Cr0::update(|c| c.insert(Cr0Flags::WRITE_PROTECT)) };
        r
    })
}

/// The 4 KiB page-table entry mapping `virt` in the tables at `pml4_phys`
/// (this node's own, in its window), or `None` if some level is missing
/// or maps a large page.
fn leaf_entry(pml4_phys: u64, virt: u64) -> Option<*mut u64> {
    let mut table = pml4_phys;
    for shift in [39u64, 30, 21] {
        let entry = crate::layout::phys_to_virt(table) as *const u64;
        // SAFETY: `table` is a table frame of this node's active tables,
        // which node 0 built in this node's window; an index below 512
        // stays inside the frame.
        let e = unsafe { entry.add(((virt >> shift) & 511) as usize).read_volatile() };
        let flags = F::from_bits_truncate(e);
        if !flags.contains(F::PRESENT) || flags.contains(F::HUGE_PAGE) {
            return None;
        }
        table = e & 0x000f_ffff_ffff_f000;
    }
    let pt = crate::layout::phys_to_virt(table) as *mut u64;
    // SAFETY: as above, for the last level.
    let pte = unsafe { pt.add(((virt >> 12) & 511) as usize) };
    // SAFETY: as above.
    let present = unsafe { pte.read_volatile() } & F::PRESENT.bits() != 0;
    present.then_some(pte)
}
