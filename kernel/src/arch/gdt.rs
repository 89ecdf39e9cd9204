//! This node's GDT and TSS, with the interrupt stack table.
//!
//! Every interrupt and exception runs on an IST stack: the prebuilt `core`
//! uses the red zone, so the interrupted stack must never be written by the
//! CPU's interrupt frame push. Faults that can strike while another
//! handler runs have stacks of their own, so a nested fault never lands on
//! the frame of the one it interrupted: #DF, #PF, NMI and #MC each have a
//! slot, the other exceptions share one, external interrupts another. Each
//! stack has an unmapped guard page below it (`stacks`).
//!
//! The GDT and TSS live in `.data.mint_ro_after_init`: once loaded, the
//! node maps them read-only (`paging::seal`). The CPU writes neither after
//! `ltr` (it sets the TSS descriptor's busy bit then, and every code and
//! data descriptor is built with its accessed bit already set).

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use super::stacks;

/// IST slots (1-based in the IDT, 0-based in the TSS array).
pub const IST_INTERRUPT: u16 = 1;
pub const IST_EXCEPTION: u16 = 2;
pub const IST_DOUBLE_FAULT: u16 = 3;
pub const IST_NMI: u16 = 4;
pub const IST_PAGE_FAULT: u16 = 5;
pub const IST_MACHINE_CHECK: u16 = 6;

const _: () = assert!(IST_MACHINE_CHECK as usize == stacks::IST_SLOTS);

// Each node runs its own copy of the image, so these statics are per node.
#[unsafe(link_section = ".data.mint_ro_after_init")]
static mut TSS: TaskStateSegment = TaskStateSegment::new();
#[unsafe(link_section = ".data.mint_ro_after_init")]
static mut GDT: GlobalDescriptorTable = GlobalDescriptorTable::new();

/// Builds and loads this node's GDT and TSS. Called once per node, before
/// interrupts are enabled and before the node seals its read-only-after-
/// init pages.
pub fn init() {
    // SAFETY: called once on this node's only core with interrupts off; no
    // other reference to these statics exists yet, and they live forever,
    // as lgdt/ltr require; each IST entry is the top of a stack of this
    // node reserved for that slot alone.
    unsafe {
        let tss = &mut *core::ptr::addr_of_mut!(TSS);
        for slot in 1..=stacks::IST_SLOTS as u16 {
            tss.interrupt_stack_table[usize::from(slot) - 1] = VirtAddr::new(stacks::ist_top(slot));
        }
        let gdt = &mut *core::ptr::addr_of_mut!(GDT);
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(&*core::ptr::addr_of!(TSS)));
        gdt.load();
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        load_tss(tss_sel);
    }
}

/// Points the page-fault IST slot at the bottom of its stack, right above
/// its guard page, so the CPU's first push of the next #PF frame lands in
/// the guard: a page fault while delivering a page fault, which the CPU
/// turns into a double fault (delivered on its own stack). For the
/// deliberate `double-fault` injection only. The TSS is sealed read-only:
/// the write goes through with CR0.WP off, as a stray write with write
/// protection off would.
///
/// # Safety
/// The next page fault of this node becomes a double fault: the caller
/// must be about to end this node.
pub unsafe fn break_page_fault_stack() {
    let bottom = stacks::ist_top(IST_PAGE_FAULT) - stacks::IST_STACK_SIZE as u64;
    let slot = usize::from(IST_PAGE_FAULT) - 1;
    // SAFETY: the one write is to this node's TSS (a static of its own),
    // as the caller asked; the CPU reads the TSS only when it delivers an
    // interrupt through an IST slot, and interrupts are off meanwhile.
    unsafe {
        super::paging::with_write_protect_off(|| {
            let entry = core::ptr::addr_of_mut!(TSS.interrupt_stack_table[slot]);
            entry.write_volatile(VirtAddr::new(bottom));
        })
    };
}
