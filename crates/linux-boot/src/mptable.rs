//! An MP table (Intel MultiProcessor Specification 1.4) that names no I/O
//! APIC, for the first place Linux looks for one.
//!
//! Linux scans for the MP floating pointer even when ACPI describes the
//! CPUs (physical 0-1 KiB first, then the top of base memory and the
//! BIOS's 64 KiB), and with `acpi=noirq` (which it runs with here) it
//! takes the I/O APICs from the MP table it finds. The firmware's table
//! names the machine's one I/O APIC, so Linux wrote its index register
//! reading the id, version and arbitration id: a write to a shared device.
//! This table is found first, and lists an ISA bus and one interrupt
//! source entry (so Linux does not invent a default table) but no
//! processor (the MADT has it) and no I/O APIC, so Linux registers none
//! and touches none.
//!
//! Written by hand: the layout is a few fixed fields, and no crate that
//! builds MP tables is in this machine's crate cache.

use crate::bytes::{put, put_u16, put_u32};

/// Where node 0 places the table: in the first KiB Linux scans (the real
/// mode interrupt vectors 0xC0-0xFF, which nothing uses once the machine
/// runs in long mode), 16-byte aligned.
pub const BASE: u32 = 0x300;
/// Bytes of the floating pointer, then the configuration table.
pub const LEN: usize = FLOATING_LEN + TABLE_LEN;

const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;
const BUS_LEN: usize = 8;
const INTSRC_LEN: usize = 8;
const TABLE_LEN: usize = HEADER_LEN + BUS_LEN + INTSRC_LEN;
/// The local APIC's physical base, as the MADT says.
const LOCAL_APIC_BASE: u32 = 0xFEE0_0000;
/// MP specification revision 1.4.
const SPEC_1_4: u8 = 4;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)))
}

/// The floating pointer at [`BASE`] and its configuration table right
/// after it.
pub fn build() -> [u8; LEN] {
    let mut b = [0u8; LEN];
    let table = FLOATING_LEN;
    // Floating pointer: "_MP_", the table's address, length 1 (16 bytes),
    // revision, checksum, feature byte 1 = 0 (a table is present, not a
    // default configuration), feature byte 2 = 0 (virtual wire mode).
    put(&mut b, 0, b"_MP_");
    put_u32(&mut b, 4, BASE + table as u32);
    b[8] = 1;
    b[9] = SPEC_1_4;
    // Configuration table header.
    put(&mut b, table, b"PCMP");
    put_u16(&mut b, table + 4, TABLE_LEN as u16);
    b[table + 6] = SPEC_1_4;
    put(&mut b, table + 8, b"MINT    ");
    put(&mut b, table + 16, b"LINUX NODE  ");
    put_u16(&mut b, table + 34, 2);
    put_u32(&mut b, table + 36, LOCAL_APIC_BASE);
    // Entry: bus 0, ISA.
    let bus = table + HEADER_LEN;
    b[bus] = 1;
    put(&mut b, bus + 2, b"ISA   ");
    // Entry: interrupt source ExtINT from ISA IRQ 0 (what an 8259 would
    // deliver, which is masked): Linux keeps it and, with no I/O APIC and
    // `noapic`, programs nothing for it.
    let src = bus + BUS_LEN;
    b[src] = 3;
    b[src + 1] = 3;
    b[table + 7] = checksum(&b[table..table + TABLE_LEN]);
    b[10] = checksum(&b[..FLOATING_LEN]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{get_u16, get_u32};

    #[test]
    fn both_parts_sum_to_zero_and_point_at_each_other() {
        let b = build();
        assert_eq!(&b[..4], b"_MP_");
        assert_eq!(b[8], 1, "length in 16-byte units");
        assert_eq!(b.iter().take(16).fold(0u8, |s, &x| s.wrapping_add(x)), 0);
        let table = (get_u32(&b, 4).unwrap() - BASE) as usize;
        assert_eq!(table, 16);
        assert_eq!(&b[table..table + 4], b"PCMP");
        let len = usize::from(get_u16(&b, table + 4).unwrap());
        assert_eq!(table + len, LEN);
        let sum = b[table..table + len]
            .iter()
            .fold(0u8, |s, &x| s.wrapping_add(x));
        assert_eq!(sum, 0);
        assert_eq!(get_u32(&b, table + 36), Some(LOCAL_APIC_BASE));
    }

    #[test]
    fn it_names_no_processor_and_no_io_apic() {
        let b = build();
        let count = usize::from(get_u16(&b, 16 + 34).unwrap());
        assert_eq!(count, 2);
        let mut at = 16 + HEADER_LEN;
        let mut kinds = alloc::vec::Vec::new();
        for _ in 0..count {
            let kind = b[at];
            kinds.push(kind);
            // Processor entries are 20 bytes; the others 8.
            at += if kind == 0 { 20 } else { 8 };
        }
        assert_eq!(at, LEN);
        assert_eq!(kinds, [1, 3], "a bus and an interrupt source only");
    }

    #[test]
    fn it_fits_the_first_kib_linux_scans() {
        assert_eq!(BASE % 16, 0);
        assert!(BASE as usize + LEN <= 0x400);
    }
}
