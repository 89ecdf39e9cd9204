//! This node's GDT and TSS, with the interrupt stack table.
//!
//! Every interrupt and exception runs on an IST stack: the prebuilt `core`
//! uses the red zone, so the interrupted stack must never be written by the
//! CPU's interrupt frame push.

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slots (1-based in the IDT, 0-based in the TSS array).
pub const IST_INTERRUPT: u16 = 1;
pub const IST_EXCEPTION: u16 = 2;
pub const IST_DOUBLE_FAULT: u16 = 3;
pub const IST_NMI: u16 = 4;

const IST_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

// Each node runs its own copy of the image, so these statics are per node.
static mut IST_STACKS: [Stack; 4] = [const { Stack([0; IST_STACK_SIZE]) }; 4];
static mut TSS: TaskStateSegment = TaskStateSegment::new();
static mut GDT: GlobalDescriptorTable = GlobalDescriptorTable::new();

/// Builds and loads this node's GDT and TSS. Called once per node, before
/// interrupts are enabled.
pub fn init() {
    // SAFETY: called once on this node's only core with interrupts off; no
    // other reference to these statics exists yet, and they live forever,
    // as lgdt/ltr require.
    unsafe {
        let tss = &mut *core::ptr::addr_of_mut!(TSS);
        let stacks = &*core::ptr::addr_of!(IST_STACKS);
        for (i, s) in stacks.iter().enumerate() {
            let top = VirtAddr::from_ptr(s.0.as_ptr()) + IST_STACK_SIZE as u64;
            tss.interrupt_stack_table[i] = top;
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
