//! The NIC side of mint: the e1000 driver (target node) and the debug-
//! support mechanism that plays the NIC for it (support node).
//!
//! - `shared_backend`: the e1000 crate's register/ring/DMA traits over the
//!   shared region (the only raw-memory code here).
//! - `dma`: memory a NIC reaches by DMA, by physical address, through
//!   volatile copies only (the debug NIC's window and a real NIC's buffers).
//! - `driver`: the target's e1000 driver in debug mode: RX ring and buffers
//!   in the shared DMA window, interrupt handler on the IPI vector,
//!   socket buffers for the stack.
//! - `support`: the support node's device model and interrupt generator.
//! - `mmio_backend` / `real`: the same traits over a real 8254x's memory
//!   BAR, and its bring-up; `area`: its ring, buffers and the per-node
//!   seen maps in the shared region's NIC area (reached by every node that
//!   may own it).

pub mod area;
pub mod dma;
pub mod driver;
pub mod mmio_backend;
pub mod real;
pub mod shared_backend;
pub mod support;

use core::sync::atomic::Ordering;

use mint_abi::NodeId;

/// The node the debug NIC is attached to, if any (set by node 0 at boot).
pub fn debug_target() -> Option<NodeId> {
    let raw = crate::shared::header()
        .debug_nic_target
        .load(Ordering::Acquire);
    (raw != 0).then(|| NodeId((raw - 1) as u8))
}
