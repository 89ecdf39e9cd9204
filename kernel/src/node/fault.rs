//! Fault containment: a CPU exception or a panic ends this node only. The
//! handler runs on this node's own IST stack with its own IDT (#DF, #PF,
//! NMI and #MC on stacks of their own, so a fault while delivering another
//! still finds a good stack), writes the reason into this node's slot of
//! the shared region, and halts the core; the other nodes see the state
//! change and keep running. A stack that overflows into its guard page is
//! named in the reason.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use mint_abi::NodeId;
use mint_abi::node::{FaultKind, MessageKind};

use crate::arch::interrupts::{InterruptFrame, exception_name};
use crate::arch::{cpu, stacks};
use crate::layout::WINDOW_VIRT;
use crate::{println, shared};

/// A fixed-capacity string for building a reason without the heap (which a
/// fault may have broken).
struct ReasonBuf {
    buf: [u8; mint_abi::shared::REASON_LEN],
    len: usize,
}

impl ReasonBuf {
    fn new() -> Self {
        ReasonBuf {
            buf: [0; mint_abi::shared::REASON_LEN],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("(reason not UTF-8)")
    }
}

impl Write for ReasonBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Set by the first [`stop`]: a fault while stopping (or an NMI after it)
/// only halts, and never overwrites the first reason.
static STOPPING: AtomicBool = AtomicBool::new(false);

fn stop(reason: &ReasonBuf) -> ! {
    if STOPPING.swap(true, Ordering::AcqRel) {
        cpu::halt_forever()
    }
    let me = super::me();
    println!("{me} CRASHED: {}", reason.as_str());
    if super::shared_ready() {
        shared::slot(me).record_crash(reason.as_str());
    }
    if me == NodeId(0) {
        // Node 0 runs the machine: nobody else could report or power off.
        println!("MINT-ERROR node0 crashed: {}", reason.as_str());
        cpu::qemu_exit(3);
    }
    cpu::halt_forever()
}

/// Every CPU exception of this node ends here.
pub fn on_exception(frame: &mut InterruptFrame) {
    if super::selftest::recover_probe(frame) {
        return;
    }
    let mut r = ReasonBuf::new();
    match frame.vector {
        8 => describe_double_fault(&mut r, frame),
        14 => describe_page_fault(&mut r, frame),
        2 => {
            let _ = write!(
                r,
                "NMI at rip {:#x} (mint raises none: hardware or a peer in trouble)",
                frame.rip
            );
        }
        v => {
            let _ = write!(r, "{} at rip {:#x}", exception_name(v), frame.rip);
            if frame.error_code != 0 {
                let _ = write!(r, ", error code {:#x}", frame.error_code);
            }
        }
    }
    stop(&r)
}

fn describe_page_fault(r: &mut ReasonBuf, frame: &InterruptFrame) {
    let addr = x86_64::registers::control::Cr2::read_raw();
    let access = if frame.error_code & 0x10 != 0 {
        "fetch"
    } else if frame.error_code & 2 != 0 {
        "write"
    } else {
        "read"
    };
    if let Some(stack) = stacks::guard_hit(addr) {
        // The reason is short (REASON_LEN): what happened first.
        let _ = write!(
            r,
            "stack overflow: page fault in the {stack} stack's guard page, {access} of {addr:#x} at rip {:#x}",
            frame.rip
        );
        return;
    }
    let _ = write!(
        r,
        "page fault at rip {:#x}: {access} of {addr:#x}",
        frame.rip
    );
    let (_, shared_size) = super::shared_window();
    let shared_off = addr.wrapping_sub(mint_abi::shared::SHARED_VIRT);
    if shared_off < shared_size && frame.error_code & 1 != 0 {
        // Present but refused: a page of the shared region this node may
        // only read.
        let what = mint_abi::shared::describe_offset(shared_off);
        let _ = write!(r, " ({what}, read-only in this node)");
    } else if !crate::layout::window_contains(addr) {
        let _ = write!(r, " (outside this node's memory)");
    } else if frame.error_code & 1 != 0 {
        // Present but refused: W^X or a sealed page.
        let _ = write!(r, " (not allowed)");
    }
}

/// A double fault: the CPU met a fault while delivering another. Its saved
/// RIP is not reliable (an abort), so the reason names what can be known:
/// the stack pointer and CR2 (the address of the last page fault), and a
/// stack overflow when either lies in a guard page.
fn describe_double_fault(r: &mut ReasonBuf, frame: &InterruptFrame) {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let _ = write!(r, "double fault");
    if let Some(stack) = stacks::guard_hit(frame.rsp).or_else(|| stacks::guard_hit(cr2)) {
        let _ = write!(r, ": stack overflow into the {stack} stack's guard page,");
    } else {
        let _ = write!(r, " (a fault while delivering another):");
    }
    let _ = write!(r, " rsp {:#x}, cr2 {cr2:#x}", frame.rsp);
}
/// The panic handler of this node.
pub fn on_panic(info: &core::panic::PanicInfo) -> ! {
    let mut r = ReasonBuf::new();
    let _ = write!(r, "panic: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(r, " at {}:{}", loc.file(), loc.line());
    }
    stop(&r)
}

/// Injects the fault node 0 was asked to put into this node, if any.
pub fn inject_if_asked(me: NodeId) {
    let raw = shared::header().inject_fault[me.index()].load(Ordering::Acquire);
    let kind = FaultKind::from_raw(raw).unwrap_or(FaultKind::None);
    if kind == FaultKind::None {
        return;
    }
    println!("{me}: injecting fault '{}'", kind.as_str());
    match kind {
        FaultKind::None => {}
        FaultKind::PageFault => {
            // SAFETY: deliberately faulting: this canonical address is never
            // mapped in any node, so the read raises #PF and never returns.
            let v = unsafe { core::ptr::read_volatile(0x0000_7fff_dead_0000 as *const u64) };
            println!("unreachable: read {v}");
        }
        FaultKind::Panic => panic!("injected panic"),
        FaultKind::WildWrite => {
            // Node 0's partition by physical address (as a stray DMA-style
            // pointer would name it): not mapped here, so it faults instead
            // of corrupting node 0.
            let target = WINDOW_VIRT - crate::layout::KERNEL_VIRT + 0x1000;
            // SAFETY: deliberately faulting: the low half holds nothing of
            // node 0 in this node's tables, so the write raises #PF.
            unsafe { core::ptr::write_volatile(target as *mut u64, 0xBAD) };
        }
        FaultKind::Hang => {
            x86_64::instructions::interrupts::disable();
            loop {
                core::hint::spin_loop();
            }
        }
        FaultKind::InvalidOpcode => {
            // SAFETY: deliberately faulting: ud2 raises #UD.
            unsafe { core::arch::asm!("ud2") };
        }
        FaultKind::HeaderWrite => {
            // Rewrites node 0's `go` with the value it already holds, so a
            // write that went through would change nothing; node 0 maps the
            // header read-only here, so it page-faults instead.
            let go = &shared::header().go;
            go.store(go.load(Ordering::Acquire), Ordering::Release);
            println!("{me}: the shared header took a write from this node");
            panic!("header write was not refused");
        }
        FaultKind::ForgeHalt => {
            for peer in (0..super::node_count()).map(NodeId).filter(|&p| p != me) {
                let halt = mint_mailbox::Message::new(MessageKind::Halt as u32, 0, [0; 3]);
                if let Err(e) = super::send(peer, halt) {
                    println!("{me}: forged Halt to {peer}: {e}");
                }
            }
            panic!("injected forge-halt: sent every peer a Halt only node 0 may send");
        }
        FaultKind::MailboxForge => {
            let victim = (1..super::node_count())
                .map(NodeId)
                .find(|&n| n != me)
                .unwrap_or(me);
            let halt = mint_mailbox::Message::new(MessageKind::Halt as u32, 0, [0; 3]);
            // The producer index and messages are node 0's outbox, mapped
            // read-only here: the push page-faults before anything changes.
            let pushed = shared::mailbox(victim, NodeId(0)).push(halt);
            println!("{me}: forged a Halt from node0 into {victim}'s mailbox: {pushed:?}");
            panic!("mailbox forgery was not refused");
        }
        FaultKind::NicMidHandler => {
            if !crate::nic::driver::die_in_next_real_interrupt() {
                panic!("injected nic-mid-handler: this node drives no real e1000");
            }
            // The interrupt follows the ICS write at once; wait for it
            // with interrupts on (the handler panics).
            let deadline = crate::arch::cpu::rdtsc() + super::ms_to_ticks(2_000);
            while crate::arch::cpu::rdtsc() < deadline {
                x86_64::instructions::hlt();
            }
            panic!("injected nic-mid-handler: the e1000's interrupt did not come within 2 s");
        }
        FaultKind::NicOverreach => {
            let Some(bar) = super::real_nic_bar() else {
                panic!("injected nic-overreach: this node owns no real e1000");
            };
            let past = bar + mint_e1000::regs::REGISTER_SPACE.next_multiple_of(4096);
            // SAFETY: deliberately faulting: node 0 maps exactly the NIC's
            // register space, so the page after it is not mapped and the
            // read raises #PF (reading device memory has no other effect).
            let v = unsafe { core::ptr::read_volatile(past as *const u32) };
            println!("{me}: read {v:#x} past the e1000's register space");
            panic!("read past the NIC's register space was not refused");
        }
        FaultKind::StackOverflow => {
            let depth = recurse(0);
            println!("unreachable: recursion ended at depth {depth}");
        }
        FaultKind::DoubleFault => {
            // SAFETY: deliberately faulting: with the page-fault stack
            // pointing into its guard page, the #PF of this read cannot be
            // delivered (its frame push faults), which the CPU turns into
            // #DF, delivered on the double-fault stack; this node ends.
            unsafe {
                crate::arch::gdt::break_page_fault_stack();
                let v = core::ptr::read_volatile(0x0000_7fff_dead_0000 as *const u64);
                println!("unreachable: read {v}");
            }
        }
        FaultKind::NmiStorm => {
            // The first NMI stops this node (mint raises none, so one means
            // trouble); its handler never returns with iretq, so the CPU
            // keeps every later NMI blocked. Should one ever return, the
            // loop ends and the node carries on: not contained.
            let me = crate::arch::apic::id();
            for _ in 0..NMI_STORM_LENGTH {
                let _ = crate::arch::apic::send_nmi(me);
            }
            println!("{me}: {NMI_STORM_LENGTH} NMIs sent and survived");
        }
    }
}

/// NMIs the `nmi-storm` injection sends itself.
const NMI_STORM_LENGTH: u32 = 100_000;

/// Recursion the compiler cannot turn into a loop: every call goes
/// through a pointer it cannot see through and keeps a 512-byte array
/// live across the call, so each level takes a real stack frame until the
/// kernel stack runs into its guard page.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[(depth % 512) as usize] = depth as u8;
    core::hint::black_box(&mut frame);
    let next: fn(u64) -> u64 = core::hint::black_box(recurse);
    let below = next(depth + 1);
    below + u64::from(core::hint::black_box(&frame)[0])
}
