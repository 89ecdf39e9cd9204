//! Booting a stock, unpatched Linux kernel as a mint node: everything that
//! is bytes, not hardware.
//!
//! - [`bzimage`]: a typed view of a bzImage's setup header (x86 boot
//!   protocol), checked for what mint needs (protocol 2.12+, the 64-bit
//!   entry, relocatable).
//! - [`params`]: the zero page (`struct boot_params`) node 0 hands the
//!   kernel, with an e820 map of only the node's own memory.
//! - [`acpi`]: per-node ACPI tables (RSDP, XSDT/RSDT, a hardware-reduced
//!   FADT, an empty DSDT, a MADT with only the node's local APIC) that keep
//!   Linux off the shared platform devices.
//! - [`mptable`]: an MP table naming no I/O APIC, found before the
//!   firmware's, so Linux registers (and reads) no I/O APIC from it.
//! - [`pack`]: the one file the CLI gives node 0 (QEMU's PVH boot carries a
//!   single module) holding each Linux node's kernel, initrd and command line.
//!
//! It does not touch memory or start cores: node 0's `kernel/src/linux/`
//! does, with these bytes.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi;
pub mod bzimage;
pub mod mptable;
pub mod pack;
pub mod params;

/// Little-endian field writers and readers over byte buffers; every caller
/// passes offsets inside the buffer (fixed layouts, checked by length).
pub(crate) mod bytes {
    pub fn put(buf: &mut [u8], off: usize, v: &[u8]) {
        buf[off..off + v.len()].copy_from_slice(v);
    }
    pub fn put_u16(buf: &mut [u8], off: usize, v: u16) {
        put(buf, off, &v.to_le_bytes());
    }
    pub fn put_u32(buf: &mut [u8], off: usize, v: u32) {
        put(buf, off, &v.to_le_bytes());
    }
    pub fn put_u64(buf: &mut [u8], off: usize, v: u64) {
        put(buf, off, &v.to_le_bytes());
    }
    pub fn get_u16(buf: &[u8], off: usize) -> Option<u16> {
        Some(u16::from_le_bytes(buf.get(off..off + 2)?.try_into().ok()?))
    }
    pub fn get_u32(buf: &[u8], off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(buf.get(off..off + 4)?.try_into().ok()?))
    }
    pub fn get_u64(buf: &[u8], off: usize) -> Option<u64> {
        Some(u64::from_le_bytes(buf.get(off..off + 8)?.try_into().ok()?))
    }
}
