//! mint-target: the target node's per-packet paths, as code the node
//! kernel and the native benchmark both run.
//!
//! The target's e1000 driver takes the debug NIC's interrupt, cleans the
//! RX ring into socket buffers, and its stack and application check and
//! count every frame (seeds/003's target node). Everything of that which
//! is not hardware lives here:
//!
//! - [`rx`]: the interrupt's work: the posted flag, the signal stamp
//!   (signal-to-handler latency), the ring cleaned into socket buffers
//!   (`mint_e1000::RxRing`, `mint_skb`), refusals counted by reason;
//! - [`app`]: the receiving application: payload check, sequence
//!   tracking, injection-to-application latency, the run's accounting
//!   published in the shared [`RunControl`];
//! - [`receiver`]: smoltcp's UDP/IPv4 stack over the socket buffers and
//!   the run's life cycle (arm, finish), stepped by the caller's loop;
//! - [`seen`]: a node's seen map (which sequence numbers it accepted).
//!
//! What differs between the kernel and a native run sits behind
//! [`receiver::Host`] (the clock, and the driver-side calls the receiver
//! makes between frames) and the e1000 crate's memory traits. What it
//! does not do: touch an APIC, halt, print, or own any static.
//!
//! [`RunControl`]: mint_abi::debug_nic::RunControl

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod app;
mod device;
pub mod receiver;
pub mod rx;
pub mod seen;

pub use app::App;
pub use device::Stats;
pub use receiver::{Host, Receiver};
pub use rx::{IrqSamples, Lines, MAX_SAMPLES, NAPI_BYTES, NAPI_WEIGHT, RxPath, moderation_of};
pub use seen::SeenMap;

#[cfg(test)]
mod tests;
