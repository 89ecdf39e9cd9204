//! mint-traffic: the interrupt generator's pure logic, shared by the node kernel and host tools.
//!
//! The support node runs a generator that injects Ethernet frames into
//! another node's e1000 driver; the target checks every payload and measures
//! latency. Everything here is deterministic, allocation-free and `no_std`,
//! so the very same code runs in the freestanding kernel (both ends) and in
//! host-side tests and tools:
//!
//! - [`config`]: what to send and how fast ([`GenConfig`]), parsed from a
//!   shell line and validated;
//! - [`schedule`]: when each packet goes out ([`Schedule`]), reproducible
//!   from the seed;
//! - [`payload`]: the self-checking payload ([`Payload`], [`PayloadTemplate`],
//!   [`check`]) that proves arrival, integrity and order and carries the
//!   injection timestamp;
//! - [`frame`]: the Ethernet (+IPv4/UDP) frame around it ([`FrameTemplate`],
//!   [`parse_frame`]);
//! - [`tracker`]: receiver-side sequence accounting ([`SeqTracker`]);
//! - [`stats`]: latency summaries and a fixed log2 histogram
//!   ([`Summary`], [`Histogram`]);
//! - [`rng`]: the small seeded PRNGs everything above draws from.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Unit tests use `std` (formatting into `String`); the library itself never does.
#[cfg(test)]
extern crate std;

pub mod config;
pub mod frame;
pub mod payload;
pub mod rng;
pub mod schedule;
pub mod stats;
pub mod tracker;

pub use config::{ConfigError, Delivery, Field, GenConfig, Moderation, PacketKind, Pattern};
pub use frame::{Endpoints, FrameError, FrameTemplate, parse_frame, payload_offset};
pub use payload::{
    Payload, PayloadError, PayloadInfo, PayloadTemplate, RunCheckError, check, check_run, fill_body,
};
pub use schedule::{Schedule, digest as schedule_digest, digest_step as schedule_digest_step};
pub use stats::{Histogram, Summary};
pub use tracker::{Observation, SeqTracker};
