//! Payload format: round trip, each corruption caught by the right check, template = full computation.

use mint_traffic::payload::{
    self, HEADER_LEN, Payload, PayloadError, PayloadInfo, PayloadTemplate, check, fill_body,
    verify_body,
};

fn make(seed: u64, body_len: u16, seq: u32, tsc: u64) -> Vec<u8> {
    let t = PayloadTemplate::new(seed, body_len);
    let mut buf = vec![0u8; t.payload_len()];
    t.write(&mut buf).unwrap();
    t.stamp(&mut buf, seq, tsc).unwrap();
    buf
}

#[test]
fn header_is_18_bytes() {
    assert_eq!(HEADER_LEN, 18);
}

#[test]
fn round_trip() {
    for len in [0u16, 1, 28, 1454, 16352] {
        let buf = make(7, len, 41, 0x0123_4567_89ab_cdef);
        assert_eq!(buf.len(), HEADER_LEN + usize::from(len));
        assert_eq!(
            check(&buf),
            Ok(PayloadInfo {
                run: 0,
                seq: 41,
                inject_tsc: 0x0123_4567_89ab_cdef
            })
        );
        let p = Payload::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.body_len(), p.seq(), p.inject_tsc()),
            (len, 41, 0x0123_4567_89ab_cdef)
        );
        assert_eq!(verify_body(7, p.body()), Ok(()));
    }
}

#[test]
fn wire_layout_is_little_endian_at_fixed_offsets() {
    // seq is 24 bits: the top byte given here is cut; byte 5 is the run (0).
    let buf = make(1, 4, 0x0403_0201, 0x0c0b_0a09_0807_0605);
    assert_eq!(&buf[0..2], &[4, 0]);
    assert_eq!(&buf[2..6], &[1, 2, 3, 0]);
    assert_eq!(&buf[6..14], &[5, 6, 7, 8, 9, 10, 11, 12]);
    // CRC = CRC-32("MINT" ‖ body ‖ header[0..14]) — recompute independently.
    let mut input = b"MINT".to_vec();
    input.extend_from_slice(&buf[18..]);
    input.extend_from_slice(&buf[..14]);
    assert_eq!(&buf[14..18], &crc32fast::hash(&input).to_le_bytes());
}

#[test]
fn restamping_reuses_the_buffer() {
    let t = PayloadTemplate::new(3, 100);
    let mut buf = vec![0u8; t.payload_len()];
    t.write(&mut buf).unwrap();
    assert_eq!(
        check(&buf),
        Ok(PayloadInfo {
            run: 0,
            seq: 0,
            inject_tsc: 0
        })
    );
    let body_before = buf[HEADER_LEN..].to_vec();
    for seq in 0..1000u32 {
        t.stamp(&mut buf, seq, u64::from(seq) * 3).unwrap();
        assert_eq!(check(&buf).unwrap().seq, seq);
    }
    assert_eq!(
        &buf[HEADER_LEN..],
        &body_before[..],
        "stamp must not touch the body"
    );
}

#[test]
fn every_header_byte_flip_is_detected() {
    let clean = make(11, 64, 5, 99);
    for i in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut b = clean.clone();
            b[i] ^= 1 << bit;
            let e = check(&b).unwrap_err();
            if payload::field::BODY_LEN.contains(&i) {
                assert!(
                    matches!(e, PayloadError::LengthMismatch { .. }),
                    "byte {i}: {e:?}"
                );
            } else {
                assert!(matches!(e, PayloadError::BadCrc { .. }), "byte {i}: {e:?}");
            }
        }
    }
}

#[test]
fn every_body_byte_flip_is_detected() {
    let clean = make(12, 300, 5, 99);
    for i in HEADER_LEN..clean.len() {
        let mut b = clean.clone();
        b[i] ^= 0x80;
        assert!(
            matches!(check(&b), Err(PayloadError::BadCrc { .. })),
            "byte {i}"
        );
    }
}

#[test]
fn truncation_and_extension_are_length_errors() {
    let clean = make(13, 100, 1, 1);
    for cut in 1..=100 {
        let e = check(&clean[..clean.len() - cut]).unwrap_err();
        assert_eq!(
            e,
            PayloadError::LengthMismatch {
                body_len: 100,
                actual: 100 - cut
            }
        );
    }
    for len in 0..HEADER_LEN {
        assert_eq!(check(&clean[..len]), Err(PayloadError::TooShort { len }));
    }
    let mut padded = clean.clone();
    padded.extend_from_slice(&[0; 4]);
    assert_eq!(
        check(&padded),
        Err(PayloadError::LengthMismatch {
            body_len: 100,
            actual: 104
        })
    );
}

#[test]
fn foreign_data_is_rejected() {
    // Right length field, but not ours: the magic-seeded CRC refuses it.
    let mut b = vec![0u8; HEADER_LEN + 10];
    b[0] = 10;
    assert!(matches!(check(&b), Err(PayloadError::BadCrc { .. })));
    // A CRC without the "MINT" prefix is not accepted either.
    let t = make(1, 10, 1, 1);
    let mut plain = t.clone();
    let mut input = plain[18..].to_vec();
    input.extend_from_slice(&plain[..14]);
    plain[14..18].copy_from_slice(&crc32fast::hash(&input).to_le_bytes());
    assert!(matches!(check(&plain), Err(PayloadError::BadCrc { .. })));
}

#[test]
fn swapped_seq_or_tsc_is_detected() {
    // Rewriting the seq without the CRC (a stale or mixed-up slot) fails.
    let mut b = make(1, 32, 7, 7);
    Payload::new_unchecked(&mut b[..]).set_seq(8);
    assert!(matches!(check(&b), Err(PayloadError::BadCrc { .. })));
    Payload::new_unchecked(&mut b[..]).fill_crc();
    assert_eq!(check(&b).unwrap().seq, 8);
}

#[test]
fn setters_and_fill_crc_match_template() {
    let expect = make(21, 40, 1234, 5678);
    let mut b = vec![0u8; HEADER_LEN + 40];
    let mut p = Payload::new_unchecked(&mut b[..]);
    p.set_body_len(40);
    fill_body(21, p.body_mut());
    p.set_seq(1234);
    p.set_inject_tsc(5678);
    p.fill_crc();
    assert_eq!(b, expect);
}

#[test]
fn body_is_deterministic_and_seed_dependent() {
    let mut a = [0u8; 256];
    let mut b = [0u8; 256];
    let mut c = [0u8; 256];
    fill_body(5, &mut a);
    fill_body(5, &mut b);
    fill_body(6, &mut c);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(verify_body(5, &a), Ok(()));
    let mut d = a;
    d[200] ^= 1;
    assert_eq!(
        verify_body(5, &d),
        Err(PayloadError::BodyMismatch { offset: 200 })
    );
    assert_eq!(
        verify_body(6, &a),
        Err(PayloadError::BodyMismatch { offset: 0 })
    );
}

#[test]
fn template_refuses_wrong_buffer_sizes() {
    let t = PayloadTemplate::new(1, 10);
    let mut small = [0u8; 27];
    let mut big = [0u8; 29];
    assert_eq!(
        t.write(&mut small),
        Err(PayloadError::BufferSize {
            expected: 28,
            actual: 27
        })
    );
    assert_eq!(
        t.stamp(&mut big, 1, 1),
        Err(PayloadError::BufferSize {
            expected: 28,
            actual: 29
        })
    );
    assert_eq!((t.seed(), t.body_len(), t.payload_len()), (1, 10, 28));
}

#[test]
fn latency() {
    let i = PayloadInfo {
        run: 0,
        seq: 0,
        inject_tsc: 100,
    };
    assert_eq!(i.latency_cycles(150), Some(50));
    assert_eq!(i.latency_cycles(99), None);
}

#[test]
fn errors_display() {
    for e in [
        PayloadError::TooShort { len: 3 },
        PayloadError::LengthMismatch {
            body_len: 1,
            actual: 2,
        },
        PayloadError::BadCrc {
            stored: 1,
            computed: 2,
        },
        PayloadError::BodyMismatch { offset: 3 },
        PayloadError::BufferSize {
            expected: 1,
            actual: 2,
        },
    ] {
        assert!(!e.to_string().is_empty());
    }
    assert!(
        PayloadError::BadCrc {
            stored: 1,
            computed: 2
        }
        .to_string()
        .contains("CRC")
    );
}

#[test]
fn body_bytes_pinned() {
    // Sender and receiver both derive the body from the seed: changing the
    // generator is a wire-format change and must be deliberate.
    let mut b = [0u8; 12];
    fill_body(1, &mut b);
    assert_eq!(
        b,
        [153, 215, 168, 147, 251, 244, 30, 23, 250, 125, 151, 223]
    );
    // And one whole stamped payload, byte for byte.
    let p = make(1, 4, 2, 3);
    assert_eq!(&p[..14], &[4, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&p[18..], &b[..4]);
}

// ---- run id ----

/// A frame stamped by the current run passes; the same frame stamped by
/// the run before (or any other run byte) is classified as stale, never
/// as this run's packet; a corrupted one stays corrupted.
#[test]
fn stale_run_frames_are_classified() {
    use mint_traffic::payload::{RunCheckError, check_run};
    let run_id = 0x1_0203u32; // low byte 0x03
    let t = PayloadTemplate::new(9, 40).with_run(run_id as u8);
    let mut buf = vec![0u8; t.payload_len()];
    t.write(&mut buf).unwrap();
    t.stamp(&mut buf, 5, 77).unwrap();
    let info = check_run(&buf, run_id, 10).expect("current run");
    assert_eq!((info.seq, info.run, info.inject_tsc), (5, 3, 77));

    for other in [0u8, 2, 4, 0xFF] {
        t.stamp_as(&mut buf, other, 5, 77).unwrap();
        assert!(check(&buf).is_ok(), "intact payload of run byte {other}");
        assert_eq!(
            check_run(&buf, run_id, 10),
            Err(RunCheckError::StaleRun {
                carried: other,
                current: 3
            })
        );
    }
    // The run byte is covered by the CRC: flipping it is corruption.
    t.stamp(&mut buf, 5, 77).unwrap();
    buf[5] ^= 1;
    assert!(matches!(
        check_run(&buf, run_id, 10),
        Err(RunCheckError::Payload(PayloadError::BadCrc { .. }))
    ));
    t.stamp(&mut buf, 10, 77).unwrap();
    assert_eq!(
        check_run(&buf, run_id, 10),
        Err(RunCheckError::SeqOutOfRange { seq: 10, count: 10 })
    );
}

/// seq and run share bytes 2..6 without overwriting each other.
#[test]
fn seq_and_run_do_not_overlap() {
    let t = PayloadTemplate::new(1, 0).with_run(0xAB);
    let mut buf = vec![0u8; t.payload_len()];
    t.write(&mut buf).unwrap();
    t.stamp(&mut buf, mint_traffic::payload::MAX_SEQ, 1)
        .unwrap();
    let info = check(&buf).unwrap();
    assert_eq!((info.seq, info.run), (mint_traffic::payload::MAX_SEQ, 0xAB));
    assert_eq!(&buf[2..6], &[0xFF, 0xFF, 0xFF, 0xAB]);
}
