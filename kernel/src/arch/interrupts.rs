//! This node's IDT, the common interrupt entry, and vector dispatch.
//!
//! `build.rs` generates one stub per vector (`isr_N`: push a dummy error
//! code where the CPU pushes none, push N, jump to `isr_common`). The common
//! entry saves the general registers and the SSE state (the prebuilt `core`
//! uses SSE, so an interrupted computation's XMM registers must survive),
//! clears the direction flag (the ABI's DF = 0 on function entry), calls
//! the dispatcher with the saved frame, and returns with `iretq`.

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use mint_abi::Vector;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use super::gdt;

global_asm!(include_str!(concat!(env!("OUT_DIR"), "/isr_stubs.s")));

global_asm!(
    r#"
    .section .text.isr, "ax"
    .code64
    .global isr_common
isr_common:
    # The SysV ABI requires DF = 0 on function entry, and the interrupted
    # code may be inside `memmove`'s backwards copy (DF = 1): clear it, or
    # the handler's own string instructions would run backwards. The
    # interrupted context's DF comes back with its RFLAGS on iretq.
    cld
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rbp, rsp
    sub rsp, 512
    and rsp, -16
    fxsave [rsp]
    mov rdi, rbp
    call mint_interrupt_dispatch
    fxrstor [rsp]
    mov rsp, rbp
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
    "#
);

unsafe extern "C" {
    static isr_table: [u64; 256];
}

/// The registers `isr_common` saved, in push order reversed.
#[repr(C)]
#[derive(Debug)]
pub struct InterruptFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Vectors mint uses on every node.
pub mod vectors {
    use mint_abi::Vector;
    /// The local APIC timer: heartbeat and deadlines.
    pub const TIMER: Vector = Vector(0x20);
    /// Mailbox notification between nodes (a node may publish another
    /// one in its slot: a Linux node does, see `NodeSlot::mailbox_vector`).
    pub const MAILBOX: Vector = Vector(mint_abi::shared::DEFAULT_MAILBOX_VECTOR);
    /// APIC error.
    pub const APIC_ERROR: Vector = Vector(0xFE);
    pub const SPURIOUS: Vector = Vector(0xFF);
}

/// First vector that is not a CPU exception.
pub const FIRST_EXTERNAL: u8 = 32;

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const INTERRUPT_GATE_PRESENT: u8 = 0x8E;

#[repr(C, align(16))]
struct Idt([IdtEntry; 256]);

/// Written once by [`init`], then mapped read-only (`paging::seal`).
#[unsafe(link_section = ".data.mint_ro_after_init")]
static mut IDT: Idt = Idt([IdtEntry {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; 256]);

/// Handlers of external vectors (0 = none), set by [`register`].
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// A handler of an external vector.
pub type Handler = fn(&mut InterruptFrame);

/// What the node does with CPU exceptions (set once by the node layer).
static EXCEPTION_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Whether an external vector without a handler is acknowledged with an
/// EOI: every one but the spurious vector, which the APIC delivers without
/// setting an ISR bit (an EOI would retire some other, in-service
/// interrupt and let a lower-priority one in under it).
const fn eoi_when_unhandled(v: usize) -> bool {
    v >= FIRST_EXTERNAL as usize && v != vectors::SPURIOUS.0 as usize
}

// The guard, checked at compile time: the spurious vector gets no EOI, the
// vectors around it do.
const _: () = assert!(!eoi_when_unhandled(vectors::SPURIOUS.0 as usize));
const _: () = assert!(eoi_when_unhandled(vectors::APIC_ERROR.0 as usize));
const _: () = assert!(!eoi_when_unhandled(14));

/// Binds `handler` to `vector` (an external vector, >= 32, not the
/// spurious vector: that one must stay unhandled, so never acknowledged).
pub fn register(vector: Vector, handler: Handler) {
    assert!(vector.0 >= FIRST_EXTERNAL, "{vector} is a CPU exception");
    assert!(
        vector != vectors::SPURIOUS,
        "the spurious vector takes no handler (and no EOI)"
    );
    HANDLERS[vector.0 as usize].store(handler as usize, Ordering::Release);
}

/// Sets the handler every CPU exception goes to.
pub fn set_exception_handler(handler: Handler) {
    EXCEPTION_HANDLER.store(handler as usize, Ordering::Release);
}

/// Fills and loads this node's IDT: every vector gets its stub, each on an
/// IST stack chosen by kind (see `gdt`). Called once per node, before the
/// node seals its read-only-after-init pages.
pub fn init() {
    use x86_64::instructions::segmentation::{CS, Segment};
    let code_selector: u16 = CS::get_reg().0;
    // SAFETY: called once per node with interrupts off, while the IDT's page
    // is still writable; `isr_table` is the generated table of 256 stub
    // addresses; IDT is a static that lives as long as the node, as lidt
    // requires.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (v, entry) in idt.0.iter_mut().enumerate() {
            let addr = isr_table[v];
            let ist = match v {
                2 => gdt::IST_NMI,
                8 => gdt::IST_DOUBLE_FAULT,
                14 => gdt::IST_PAGE_FAULT,
                18 => gdt::IST_MACHINE_CHECK,
                0..=31 => gdt::IST_EXCEPTION,
                _ => gdt::IST_INTERRUPT,
            };
            *entry = IdtEntry {
                offset_low: addr as u16,
                selector: code_selector,
                ist: ist as u8,
                type_attr: INTERRUPT_GATE_PRESENT,
                offset_mid: (addr >> 16) as u16,
                offset_high: (addr >> 32) as u32,
                reserved: 0,
            };
        }
        lidt(&DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::from_ptr(idt.0.as_ptr()),
        });
    }
}

#[unsafe(no_mangle)]
extern "C" fn mint_interrupt_dispatch(frame: &mut InterruptFrame) {
    let v = frame.vector as usize;
    let h = if v < FIRST_EXTERNAL as usize {
        EXCEPTION_HANDLER.load(Ordering::Acquire)
    } else {
        HANDLERS[v & 0xFF].load(Ordering::Acquire)
    };
    if h != 0 {
        // SAFETY: only `register`/`set_exception_handler` store into these
        // tables, and they store valid `Handler` function pointers.
        let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        f(frame);
    } else if eoi_when_unhandled(v) {
        super::apic::end_of_interrupt();
    }
}

/// Human-readable name of an exception vector.
pub fn exception_name(v: u64) -> &'static str {
    match v {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack fault",
        13 => "general protection",
        14 => "page fault",
        16 => "x87 floating point",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating point",
        _ => "reserved exception",
    }
}
