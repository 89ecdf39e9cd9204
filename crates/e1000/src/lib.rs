//! The Intel 8254x (82540EM) receive path as pure logic, shared by the e1000 driver and the
//! support node's NIC model.
//!
//! mint debugs a NIC driver's interrupt handling by letting one OS node (the *support node*)
//! play an e1000 for another node's driver. Both halves of that conversation live here:
//!
//! - [`driver`]: what the node kernel's e1000 driver does — program the RX ring, acknowledge
//!   interrupt causes, clean completed descriptors and hand frames to the stack.
//! - [`device`]: what the support node does while pretending to be the NIC — take a frame, find a
//!   free descriptor, DMA the frame into the driver's buffer, write the descriptor back and
//!   decide whether the driver's interrupt must be raised.
//!
//! Every access to hardware or to shared memory goes through a trait the kernel implements:
//! [`RegisterAccess`] (real MMIO, or a register page in the shared region), [`DescriptorRing`]
//! (the RX descriptor array) and [`DmaMemory`] (packet buffers). That keeps this crate free of
//! `unsafe`, of allocation and of locks, and lets the whole receive path run in host tests
//! ([`RegisterFile`] is the in-memory reference register page).
//!
//! Everything the *peer* writes — descriptors, register values such as RDH/RDT/RDLEN — is
//! treated as untrusted input: it is validated, counted when wrong, and never followed blindly.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "testing"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

#[macro_use]
mod flags;

pub mod desc;
pub mod device;
pub mod driver;
pub mod regs;
pub mod ring;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use desc::{RxDescriptor, RxDescriptorView, RxErrors, RxStatus, ViewError};
pub use device::{
    ConfigError, DeviceModel, DropCounters, READ_AHEAD_BYTES, Received, RxDrop, WritebackFault,
};
pub use driver::{
    BufferAddrs, Contiguous, InitError, PollError, PollResult, RxCounters, RxRing, RxSink,
};
pub use regs::{
    Ctrl, Interrupt, Rctl, Register, RegisterAccess, RegisterFile, RegisterSlots, Status,
};
pub use ring::{DescriptorRing, DmaError, DmaMemory};
