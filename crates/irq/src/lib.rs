//! mint's neutral interrupt-management layer, as pure logic.
//!
//! The I/O APIC is the one piece of interrupt hardware every mint node shares. This crate is
//! the layer that owns it on everyone's behalf (seed 000's design, modelled on KVM's routing):
//!
//! - [`ioapic`] and [`msi`]: the hardware formats, typed (redirection entries, register
//!   indices, MSI address/data), and the traits the layer drives ([`IoApic`], [`Msi`],
//!   [`Lapic`]). The kernel implements them over MMIO and PCI; tests over `testing`.
//! - [`route`]: (B) the routing table GSI -> pin or MSI message, swapped whole, with the
//!   generation counter readers use.
//! - [`vector`]: one vector per device, never reused while its old owner may hold it.
//! - [`notice`]: (D) attached / detached / owner-crashed notices, sequenced, acknowledged, in a
//!   bounded outbox that pushes back instead of dropping.
//! - [`layer`]: the management table ([`IrqLayer`]): devices, owners, counters; (C)
//!   registration; owner-only route / mask / unmask / EOI; (A) the bookkeeping of an interrupt
//!   a node's CPU took ([`IrqLayer::on_interrupt`]); node crash handling; storm control.
//! - [`handover`]: the hand-over state machine and its trace.
//! - [`request`]: layer operations another node asks node 0 for over the mailbox, and where
//!   a PCI INTx line arrives after the MADT's overrides.
//! - `testing` (feature `testing`): a model of the I/O APIC and local APICs after QEMU's and
//!   KVM's, for this crate's tests and other crates'.
//!
//! What this crate does *not* do: touch hardware (no `unsafe`), decide where its state lives
//! (the kernel places an [`IrqLayer`] in the shared region and serialises callers; see
//! `docs/INTERRUPTS.md`), or talk to devices (drivers quiesce and reset their own devices).
//! State is fixed-capacity arrays; nothing allocates.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "testing"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

use core::fmt;

pub mod handover;
pub mod ioapic;
pub mod layer;
pub mod msi;
pub mod notice;
pub mod request;
pub mod route;
pub mod vector;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use handover::{
    AbortReason, HandoverError, HandoverProgress, HandoverStatus, HandoverStep, Trace, TraceEntry,
};
pub use ioapic::{
    DeliveryMode, DestinationMode, IoApic, Lapic, Pin, Polarity, RedirectionEntry, RegisterIndex,
    TriggerMode, Version,
};
pub use layer::{
    Binding, Config, ConfigError, DeviceCounters, DeviceInfo, DeviceState, Dispatch, EoiOutcome,
    HardwareError, IrqLayer, IrqSource, LayerCounters, NodeReport, NodeStateError, OpError,
    Refusal, RegisterError, Registration,
};
pub use msi::{Msi, MsiAddress, MsiData, MsiMessage};
pub use notice::{AttachReason, Notice, NoticeKind, NoticeSink, Outbox, OutboxFull};
pub use route::{RouteEntry, RouteError, RouteTarget, RoutingTable};
pub use vector::{VectorPool, VectorUse};

/// Most devices the layer manages.
pub const MAX_DEVICES: usize = 16;

/// A device the layer manages (named by the partition plan, e.g. "nic0" = `DeviceId(0)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct DeviceId(pub u16);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dev{}", self.0)
    }
}

/// Everything the layer drives: the I/O APIC, devices' MSI, and IPIs for re-delivery.
pub trait Hardware: IoApic + Msi + Lapic {}

impl<T: IoApic + Msi + Lapic> Hardware for T {}
