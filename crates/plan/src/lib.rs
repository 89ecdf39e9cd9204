//! The partition plan: which cores, memory and devices each OS node of a
//! mint machine owns, plus the size of the region the nodes share.
//!
//! A plan is static configuration (Hubris-style). The host writes it as a
//! TOML file (feature `toml`), [`Plan::validate`]s it and hands it to node 0
//! on the kernel command line ([`Plan::encode`]); node 0 — a `no_std` kernel
//! with a heap — [`Plan::decode`]s it and checks it against the machine it
//! finds ([`Plan::check_machine`]). The core logic needs only `alloc`.
//!
//! Physical memory is laid out by [`Plan::layout`]:
//!
//! ```text
//! 0 .. 2 MiB        low/firmware area (AP trampoline, boot info)
//! node 0, node 1 .. each node's partition, in id order
//! shared region     the inter-node mailboxes
//! 8 MiB             ACPI reserve (firmware tables), at the top
//! ```

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod device;
mod encode;
mod error;
mod layout;
mod machine;
mod plan;
mod size;
#[cfg(feature = "toml")]
mod toml_file;
mod validate;

pub use device::Device;
pub use encode::{CMDLINE_KEY, ENCODING_VERSION};
pub use error::PlanError;
pub use layout::{
    ACPI_RESERVE, LOW_RESERVE, Layout, MAX_NODE_MEMORY, MAX_NODE0_MEMORY, MIN_NODE_MEMORY,
    MIN_SHARED_SIZE, PARTITION_ALIGN, Region,
};
pub use machine::MachineFacts;
pub use plan::{
    DEFAULT_NODE_MEMORY, DEFAULT_SHARED_SIZE, LinuxBoot, MAX_LINUX_CMDLINE, MAX_NODES,
    MIN_LINUX_MEMORY, Machine, NodeSpec, Os, Plan,
};
pub use size::{GIB, KIB, MIB, parse_size};

pub use mint_abi::{ApicId, CoreIndex, NodeId, PhysAddr};
