#![no_std]
#![forbid(unsafe_code)]
pub mod ids;
pub use ids::*;
