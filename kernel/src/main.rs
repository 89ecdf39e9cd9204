//! mint node kernel: one image, one independent instance per OS node.
//!
//! - `arch`: hardware access (the only place with `unsafe` on hardware).
//! - `irq`: the interrupt layer's kernel half (`mint-irq` over the real
//!   I/O APIC), run by node 0; other nodes ask it over the mailbox.
//! - `layout`: the node's address space and partition window.
//! - `mem`: `memcpy` & co. and the node's heap.
//! - `shared`: the node's view of the shared region (`mint-abi` layout).
//! - `node`: what a node does: node 0's bring-up of the machine, every
//!   node's start, mailboxes, heartbeat, fault containment, the ping round,
//!   the monitor and report, node 0's shell.
//! - `nic`: the e1000 driver (target) and the debug-support mechanism
//!   that plays the NIC for it (support node).
//! - `net`: the target's UDP/IPv4 stack and the receiving application.
//! - `linux`: node 0 loads and starts a stock Linux kernel as a node.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod irq;
mod layout;
mod linux;
mod mem;
mod net;
mod nic;
mod node;
mod shared;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    node::fault::on_panic(info)
}

/// The prebuilt `alloc` references the unwinder's resume entry on its
/// cleanup paths; with `panic = "abort"` they are never taken.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    arch::cpu::halt_forever()
}

/// Named by the prebuilt `alloc`'s unwind tables; never called with
/// `panic = "abort"`.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
