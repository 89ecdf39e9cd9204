//! Per-node ACPI tables: what Linux is told the machine is.
//!
//! An RSDP (revision 2) pointing to an XSDT (and an RSDT), a FADT flagged
//! HW_REDUCED_ACPI with IAPC_BOOT_ARCH saying there is no VGA, no CMOS RTC
//! and no 8042, an empty DSDT (no AML: no devices), and a MADT listing only
//! the node's own local APIC, no I/O APIC and no PCAT_COMPAT (so no 8259s).
//! Linux then leaves the shared I/O APIC, PICs, PIT, HPET, RTC, i8042 and
//! PCI alone as far as the tables go; its command line does the rest.

use alloc::vec;
use alloc::vec::Vec;

use mint_abi::{ApicId, PhysAddr};

use crate::bytes::{put, put_u16, put_u32, put_u64};

/// Offsets of each table in the block [`build`] returns.
mod at {
    pub const RSDP: usize = 0;
    pub const XSDT: usize = 64;
    pub const RSDT: usize = 128;
    pub const FADT: usize = 192;
    pub const DSDT: usize = 512;
    pub const MADT: usize = 576;
    pub const END: usize = 640;
}

const HEADER_LEN: usize = 36;
const FADT_LEN: usize = 276;
/// FADT flags bit 20.
const HW_REDUCED_ACPI: u32 = 1 << 20;
/// IAPC_BOOT_ARCH: bit 2 "VGA not present", bit 5 "CMOS RTC not present";
/// bits 0 (legacy devices) and 1 (8042) clear.
const IAPC_BOOT_ARCH: u16 = 0x0024;
/// The local APIC's physical base.
const LOCAL_APIC_BASE: u32 = 0xFEE0_0000;
const OEM_ID: &[u8; 6] = b"MINT  ";

/// The tables for a node whose one CPU has `apic`, to be placed at `base`
/// (16-byte aligned; the RSDP is at `base`). Returns the bytes.
pub fn build(base: PhysAddr, apic: ApicId) -> Vec<u8> {
    let mut b = vec![0u8; at::END];
    let addr = |off: usize| base.as_u64() + off as u64;

    // DSDT: a header and no AML.
    header(&mut b[at::DSDT..], b"DSDT", HEADER_LEN, 2);
    checksum(&mut b[at::DSDT..at::DSDT + HEADER_LEN], 9);

    // FADT, ACPI 6.0 layout.
    let f = &mut b[at::FADT..at::FADT + FADT_LEN];
    header(f, b"FACP", FADT_LEN, 6);
    put_u32(f, 40, addr(at::DSDT) as u32);
    put_u16(f, 109, IAPC_BOOT_ARCH);
    put_u32(f, 112, HW_REDUCED_ACPI);
    f[131] = 0; // FADT minor version
    put_u64(f, 140, addr(at::DSDT));
    checksum(f, 9);

    // MADT: the node's local APIC (or x2APIC) only.
    let madt_len = if apic.0 < 0xff { 44 + 8 } else { 44 + 16 };
    let m = &mut b[at::MADT..at::MADT + madt_len];
    header(m, b"APIC", madt_len, 4);
    put_u32(m, 36, LOCAL_APIC_BASE);
    put_u32(m, 40, 0); // no PCAT_COMPAT: no 8259s
    if apic.0 < 0xff {
        m[44] = 0; // Processor Local APIC
        m[45] = 8;
        m[46] = 0; // ACPI processor UID
        m[47] = apic.0 as u8;
        put_u32(m, 48, 1); // enabled
    } else {
        m[44] = 9; // Processor Local x2APIC
        m[45] = 16;
        put_u32(m, 48, apic.0);
        put_u32(m, 52, 1);
        put_u32(m, 56, 0);
    }
    checksum(m, 9);

    // XSDT and RSDT: the FADT and the MADT.
    let x = &mut b[at::XSDT..at::XSDT + HEADER_LEN + 16];
    header(x, b"XSDT", HEADER_LEN + 16, 1);
    put_u64(x, 36, addr(at::FADT));
    put_u64(x, 44, addr(at::MADT));
    checksum(x, 9);
    let r = &mut b[at::RSDT..at::RSDT + HEADER_LEN + 8];
    header(r, b"RSDT", HEADER_LEN + 8, 1);
    put_u32(r, 36, addr(at::FADT) as u32);
    put_u32(r, 40, addr(at::MADT) as u32);
    checksum(r, 9);

    // RSDP, revision 2.
    let p = &mut b[at::RSDP..at::RSDP + 36];
    put(p, 0, b"RSD PTR ");
    put(p, 9, OEM_ID);
    p[15] = 2;
    put_u32(p, 16, addr(at::RSDT) as u32);
    put_u32(p, 20, 36);
    put_u64(p, 24, addr(at::XSDT));
    checksum(&mut p[..20], 8);
    checksum(p, 32);
    b
}

/// The 36-byte SDT header (checksum left for [`checksum`]).
fn header(t: &mut [u8], signature: &[u8; 4], len: usize, revision: u8) {
    put(t, 0, signature);
    put_u32(t, 4, len as u32);
    t[8] = revision;
    put(t, 10, OEM_ID);
    put(t, 16, b"MINTNODE");
    put_u32(t, 24, 1);
    put(t, 28, b"MINT");
    put_u32(t, 32, 1);
}

/// Sets byte `at` so that all of `t` sums to 0 (mod 256).
fn checksum(t: &mut [u8], at: usize) {
    t[at] = 0;
    let sum = t.iter().fold(0u8, |s, &x| s.wrapping_add(x));
    t[at] = 0u8.wrapping_sub(sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{get_u32, get_u64};

    fn sums_to_zero(t: &[u8]) -> bool {
        t.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
    }

    #[test]
    fn tables_are_consistent_and_checksummed() {
        let base = PhysAddr(0x10_1000);
        let b = build(base, ApicId(1));
        assert_eq!(&b[..8], b"RSD PTR ");
        assert!(sums_to_zero(&b[..20]) && sums_to_zero(&b[..36]));
        let xsdt = (get_u64(&b, 24).unwrap() - base.as_u64()) as usize;
        assert_eq!(&b[xsdt..xsdt + 4], b"XSDT");
        let len = |off: usize| get_u32(&b, off + 4).unwrap() as usize;
        assert!(sums_to_zero(&b[xsdt..xsdt + len(xsdt)]));
        let fadt = (get_u64(&b, xsdt + 36).unwrap() - base.as_u64()) as usize;
        let madt = (get_u64(&b, xsdt + 44).unwrap() - base.as_u64()) as usize;
        assert_eq!(&b[fadt..fadt + 4], b"FACP");
        assert!(sums_to_zero(&b[fadt..fadt + len(fadt)]));
        assert_eq!(get_u32(&b, fadt + 112), Some(HW_REDUCED_ACPI));
        assert_eq!(b[fadt + 109], 0x24);
        let dsdt = (get_u64(&b, fadt + 140).unwrap() - base.as_u64()) as usize;
        assert_eq!(&b[dsdt..dsdt + 4], b"DSDT");
        assert_eq!(len(dsdt), 36);
        assert_eq!(&b[madt..madt + 4], b"APIC");
        assert!(sums_to_zero(&b[madt..madt + len(madt)]));
        assert_eq!(len(madt), 52);
        assert_eq!(get_u32(&b, madt + 40), Some(0));
        assert_eq!((b[madt + 44], b[madt + 47]), (0, 1));
        let rsdt = (get_u32(&b, 16).unwrap() as u64 - base.as_u64()) as usize;
        assert!(sums_to_zero(&b[rsdt..rsdt + len(rsdt)]));
    }
}
