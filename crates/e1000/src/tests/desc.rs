use crate::desc::*;
use crate::ring::DescriptorRing;
use crate::testing::{ByteRing, MemRing};

fn sample() -> RxDescriptor {
    RxDescriptor {
        buffer_addr: 0x1122_3344_5566_7788,
        length: 0x99aa,
        checksum: 0xbbcc,
        status: RxStatus::DD | RxStatus::EOP | RxStatus::IPCS,
        errors: RxErrors::TCPE,
        special: 0xddee,
    }
}

#[test]
fn status_and_error_bits() {
    assert_eq!(RxStatus::DD.bits(), 0x01);
    assert_eq!(RxStatus::EOP.bits(), 0x02);
    assert_eq!(RxStatus::IXSM.bits(), 0x04);
    assert_eq!(RxStatus::VP.bits(), 0x08);
    assert_eq!(RxStatus::TCPCS.bits(), 0x20);
    assert_eq!(RxStatus::IPCS.bits(), 0x40);
    assert_eq!(RxStatus::PIF.bits(), 0x80);
    assert_eq!(RxErrors::CE.bits(), 0x01);
    assert_eq!(RxErrors::SE.bits(), 0x02);
    assert_eq!(RxErrors::SEQ.bits(), 0x04);
    assert_eq!(RxErrors::CXE.bits(), 0x10);
    assert_eq!(RxErrors::TCPE.bits(), 0x20);
    assert_eq!(RxErrors::IPE.bits(), 0x40);
    assert_eq!(RxErrors::RXE.bits(), 0x80);
}

#[test]
fn word_layout() {
    let d = sample();
    let [w0, w1] = d.to_words();
    assert_eq!(w0, 0x1122_3344_5566_7788);
    assert_eq!(w1, 0xddee_2043_bbcc_99aa);
    assert_eq!(d.writeback_word(), w1);
    assert_eq!(RxDescriptor::from_words([w0, w1]), d);
}

#[test]
fn bytes_layout() {
    let b = sample().to_bytes();
    assert_eq!(
        b,
        [
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // buffer address
            0xaa, 0x99, // length
            0xcc, 0xbb, // checksum
            0x43, // status
            0x20, // errors
            0xee, 0xdd, // special
        ]
    );
    assert_eq!(RxDescriptor::from_bytes(&b), sample());
}

#[test]
fn view_agrees_with_words() {
    // A spread of descriptors, including all-ones and single bits in every field.
    let mut cases = alloc::vec![
        RxDescriptor::default(),
        sample(),
        RxDescriptor::from_words([u64::MAX; 2])
    ];
    for bit in 0..64 {
        cases.push(RxDescriptor::from_words([1 << bit, 1 << bit]));
    }
    for d in cases {
        let bytes = d.to_bytes();
        let view = RxDescriptorView::new_checked(&bytes[..]).expect("16 bytes");
        assert_eq!(view.descriptor(), d);
        assert_eq!(view.buffer_addr(), d.buffer_addr);
        assert_eq!(view.length(), d.length);
        assert_eq!(view.checksum(), d.checksum);
        assert_eq!(view.status(), d.status);
        assert_eq!(view.errors(), d.errors);
        assert_eq!(view.special(), d.special);

        // Setters build the same bytes as to_bytes.
        let mut raw = [0u8; 16];
        let mut v = RxDescriptorView::new_checked(&mut raw[..]).expect("16 bytes");
        v.set_descriptor(&d);
        assert_eq!(raw, bytes);
        // And the words read back from the view's bytes are the value's words.
        let w0 = u64::from_le_bytes(raw[..8].try_into().expect("8"));
        let w1 = u64::from_le_bytes(raw[8..].try_into().expect("8"));
        assert_eq!([w0, w1], d.to_words());
    }
}

#[test]
fn view_individual_setters() {
    let mut raw = [0u8; 20]; // longer than needed is fine
    let mut v = RxDescriptorView::new_checked(&mut raw[..]).expect("long enough");
    let d = sample();
    v.set_buffer_addr(d.buffer_addr);
    v.set_length(d.length);
    v.set_checksum(d.checksum);
    v.set_status(d.status);
    v.set_errors(d.errors);
    v.set_special(d.special);
    assert_eq!(v.descriptor(), d);
    let raw = v.into_inner();
    assert_eq!(&raw[..16], &d.to_bytes());
    assert_eq!(&raw[16..], &[0; 4]);
}

#[test]
fn view_rejects_short_buffers() {
    for len in 0..16 {
        let buf = [0u8; 16];
        assert_eq!(
            RxDescriptorView::new_checked(&buf[..len]),
            Err(ViewError { len })
        );
    }
}

#[test]
fn word_ring_and_byte_ring_agree() {
    let words = MemRing::new(8);
    let bytes = ByteRing::new(8);
    assert_eq!(words.len(), bytes.len());
    let rings: [&dyn DescriptorRing; 2] = [&words, &bytes];
    for r in rings {
        r.store_buffer_addr(3, 0xabcd_0000);
        r.store_writeback(3, &sample()); // sample's buffer address is ignored
        r.store_buffer_addr(5, 7);
        r.store_writeback(5, &sample());
        r.clear_status(5);
    }
    for i in 0..8 {
        assert_eq!(words.load(i), bytes.load(i), "descriptor {i}");
        assert_eq!(
            RxDescriptor::from_bytes(&bytes.raw(i)).to_words(),
            words.words(i)
        );
    }
    let d = words.load(3);
    assert_eq!(d.buffer_addr, 0xabcd_0000);
    assert_eq!(d.writeback_word(), sample().writeback_word());
    assert_eq!(words.load(5), RxDescriptor::with_buffer(7));
}
