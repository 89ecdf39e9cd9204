//! mint-abi: the contract between mint's parts.
//!
//! - [`ids`]: typed identifiers (nodes, CPUs, APIC IDs, vectors, addresses).
//! - [`shared`]: the versioned `#[repr(C)]` layout of the one memory region
//!   nodes share, and what each field means. Nodes share nothing else.
//! - [`node`]: node states and message kinds carried in mailboxes.
//! - [`debug_nic`]: the debug NIC the support node plays for the target.
//!
//! This crate holds layouts and meanings, not algorithms; the queue
//! algorithm is `mint-mailbox`, the hardware access is the node kernel's.
#![no_std]
#![forbid(unsafe_code)]

pub mod debug_nic;
pub mod ids;
pub mod node;
pub mod real_nic;
pub mod shared;

pub use ids::*;
