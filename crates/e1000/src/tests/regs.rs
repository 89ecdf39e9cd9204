use alloc::format;

use crate::regs::*;

#[test]
fn offsets_match_the_82540em_manual() {
    let table = [
        (Register::CTRL, 0x0000),
        (Register::STATUS, 0x0008),
        (Register::EECD, 0x0010),
        (Register::EERD, 0x0014),
        (Register::ICR, 0x00C0),
        (Register::ITR, 0x00C4),
        (Register::ICS, 0x00C8),
        (Register::IMS, 0x00D0),
        (Register::IMC, 0x00D8),
        (Register::RCTL, 0x0100),
        (Register::TCTL, 0x0400),
        (Register::RDBAL, 0x2800),
        (Register::RDBAH, 0x2804),
        (Register::RDLEN, 0x2808),
        (Register::RDH, 0x2810),
        (Register::RDT, 0x2818),
        (Register::RDTR, 0x2820),
        (Register::TDBAL, 0x3800),
        (Register::TDBAH, 0x3804),
        (Register::TDLEN, 0x3808),
        (Register::TDH, 0x3810),
        (Register::TDT, 0x3818),
        (Register::MPC, 0x4010),
        (Register::GPRC, 0x4074),
        (Register::MTA, 0x5200),
        (Register::RAL0, 0x5400),
        (Register::RAH0, 0x5404),
    ];
    assert_eq!(table.len(), Register::ALL.len());
    for (reg, off) in table {
        assert_eq!(reg.offset(), off, "{reg:?}");
        assert_eq!(Register::from_offset(off), Some(reg));
    }
    assert_eq!(Register::from_offset(0x0004), None);
}

#[test]
fn register_index_is_dense_and_matches_all() {
    for (i, reg) in Register::ALL.iter().enumerate() {
        assert_eq!(reg.index(), i, "{reg:?}");
    }
    // ALL is in offset order, so offsets are unique.
    assert!(
        Register::ALL
            .windows(2)
            .all(|w| w[0].offset() < w[1].offset())
    );
}

#[test]
fn bit_values() {
    assert_eq!(Interrupt::TXDW.bits(), 1 << 0);
    assert_eq!(Interrupt::TXQE.bits(), 1 << 1);
    assert_eq!(Interrupt::LSC.bits(), 1 << 2);
    assert_eq!(Interrupt::RXSEQ.bits(), 1 << 3);
    assert_eq!(Interrupt::RXDMT0.bits(), 1 << 4);
    assert_eq!(Interrupt::RXO.bits(), 1 << 6);
    assert_eq!(Interrupt::RXT0.bits(), 1 << 7);

    assert_eq!(Rctl::EN.bits(), 1 << 1);
    assert_eq!(Rctl::SBP.bits(), 1 << 2);
    assert_eq!(Rctl::UPE.bits(), 1 << 3);
    assert_eq!(Rctl::MPE.bits(), 1 << 4);
    assert_eq!(Rctl::LPE.bits(), 1 << 5);
    assert_eq!(Rctl::LBM_MASK.bits(), 0b11 << 6);
    assert_eq!(Rctl::RDMTS_MASK.bits(), 0b11 << 8);
    assert_eq!(Rctl::MO_MASK.bits(), 0b11 << 12);
    assert_eq!(Rctl::BAM.bits(), 1 << 15);
    assert_eq!(Rctl::BSIZE_MASK.bits(), 0b11 << 16);
    assert_eq!(Rctl::VFE.bits(), 1 << 18);
    assert_eq!(Rctl::BSEX.bits(), 1 << 25);
    assert_eq!(Rctl::SECRC.bits(), 1 << 26);

    assert_eq!(Ctrl::ASDE.bits(), 1 << 5);
    assert_eq!(Ctrl::SLU.bits(), 1 << 6);
    assert_eq!(Ctrl::RST.bits(), 1 << 26);
    assert_eq!(Status::LU.bits(), 1 << 1);
}

#[test]
fn flag_operations_and_debug() {
    let f = Interrupt::RXT0 | Interrupt::RXO;
    assert!(f.contains(Interrupt::RXT0));
    assert!(!f.contains(Interrupt::RXT0 | Interrupt::LSC));
    assert!(f.intersects(Interrupt::RXO | Interrupt::LSC));
    assert_eq!((f - Interrupt::RXO), Interrupt::RXT0);
    assert_eq!(f & Interrupt::RXO, Interrupt::RXO);
    assert!(Interrupt::empty().is_empty());
    assert_eq!(u32::from(f), (1 << 7) | (1 << 6));
    assert_eq!(format!("{f:?}"), "Interrupt(RXO | RXT0)");
    assert_eq!(
        format!("{:?}", Interrupt::from_bits_retain((1 << 7) | (1 << 20))),
        "Interrupt(RXT0 | 0x100000)"
    );
    assert_eq!(format!("{:?}", Interrupt::empty()), "Interrupt(0x0)");
}

#[test]
fn buffer_size_decode_table() {
    let bsize = |v: u32| v << Rctl::BSIZE_SHIFT;
    let bsex = Rctl::BSEX.bits();
    let table = [
        (bsize(0b00), Some(2048)),
        (bsize(0b01), Some(1024)),
        (bsize(0b10), Some(512)),
        (bsize(0b11), Some(256)),
        (bsex | bsize(0b00), None),
        (bsex | bsize(0b01), Some(16384)),
        (bsex | bsize(0b10), Some(8192)),
        (bsex | bsize(0b11), Some(4096)),
    ];
    for (rctl, size) in table {
        assert_eq!(rctl_buffer_size(rctl), size, "rctl {rctl:#x}");
        // Unrelated RCTL bits do not affect the decode.
        let noisy =
            rctl | Rctl::EN.bits() | Rctl::LPE.bits() | Rctl::SECRC.bits() | Rctl::BAM.bits();
        assert_eq!(rctl_buffer_size(noisy), size, "rctl {noisy:#x}");
        if let Some(size) = size {
            assert_eq!(rctl_bsize_bits(size), Some(rctl), "size {size}");
        }
    }
    for bad in [0, 1, 255, 1500, 1518, 3000, 32768, usize::MAX] {
        assert_eq!(rctl_bsize_bits(bad), None, "size {bad}");
    }
}

#[test]
fn rdmts_divisor() {
    assert_eq!(rctl_rdmts_divisor(Rctl::RDMTS_HALF.bits()), Some(2));
    assert_eq!(rctl_rdmts_divisor(Rctl::RDMTS_QUARTER.bits()), Some(4));
    assert_eq!(rctl_rdmts_divisor(Rctl::RDMTS_EIGHTH.bits()), Some(8));
    assert_eq!(rctl_rdmts_divisor(Rctl::RDMTS_MASK.bits()), None);
}

#[test]
fn icr_is_read_to_clear() {
    let r = RegisterFile::new();
    r.write(Register::ICS, Interrupt::RXT0.bits());
    r.write(Register::ICS, Interrupt::LSC.bits());
    assert_eq!(
        r.peek(Register::ICR),
        (Interrupt::RXT0 | Interrupt::LSC).bits()
    );
    assert_eq!(
        r.read(Register::ICR),
        (Interrupt::RXT0 | Interrupt::LSC).bits()
    );
    assert_eq!(r.read(Register::ICR), 0);
    assert_eq!(r.peek(Register::ICR), 0);
}

#[test]
fn icr_write_clears_written_bits() {
    let r = RegisterFile::new();
    r.write(Register::ICS, (Interrupt::RXT0 | Interrupt::RXO).bits());
    r.write(Register::ICR, Interrupt::RXO.bits());
    assert_eq!(r.read(Register::ICR), Interrupt::RXT0.bits());
}

#[test]
fn ims_sets_and_imc_clears() {
    let r = RegisterFile::new();
    r.write(Register::IMS, Interrupt::RXT0.bits());
    r.write(Register::IMS, Interrupt::LSC.bits());
    assert_eq!(
        r.read(Register::IMS),
        (Interrupt::RXT0 | Interrupt::LSC).bits()
    );
    r.write(
        Register::IMC,
        Interrupt::RXT0.bits() | Interrupt::RXO.bits(),
    );
    assert_eq!(r.read(Register::IMS), Interrupt::LSC.bits());
    // Write-only registers read as zero and keep no value of their own.
    assert_eq!(r.read(Register::IMC), 0);
    assert_eq!(r.read(Register::ICS), 0);
    // ICS does not touch the mask, IMS does not raise causes.
    assert_eq!(r.read(Register::ICR), 0);
}

#[test]
fn plain_registers_store_values() {
    let r = RegisterFile::default();
    for reg in Register::ALL {
        if matches!(
            reg,
            Register::ICR | Register::ICS | Register::IMS | Register::IMC
        ) {
            continue;
        }
        r.write(reg, 0xdead_0000 | reg.offset());
        assert_eq!(r.read(reg), 0xdead_0000 | reg.offset(), "{reg:?}");
        // Statistics are cumulative here (see RegisterFile docs): a read does not clear them.
        assert_eq!(r.read(reg), 0xdead_0000 | reg.offset(), "{reg:?}");
    }
    r.poke(Register::ICR, 5);
    assert_eq!(r.read(Register::ICR), 5);
}
