//! Frames: exact sizes, headers parse back with smoltcp, stamping, receiver parsing.

use mint_traffic::config::{ConfigError, GenConfig, PacketKind};
use mint_traffic::frame::{
    self, ETH_HEADER_LEN, Endpoints, FrameError, FrameTemplate, MAX_FRAME_LEN, RAW_ETHERTYPE,
    parse_frame, payload_offset,
};
use mint_traffic::payload::{HEADER_LEN, PayloadInfo, check, verify_body};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address, Ipv4Packet,
    Ipv4Repr, UdpPacket,
};

const KINDS: [PacketKind; 2] = [PacketKind::Udp, PacketKind::Raw];
const SIZES: [u32; 6] = [60, 61, 64, 1514, 9000, 16384];

#[test]
fn offsets() {
    assert_eq!(payload_offset(PacketKind::Udp), 42);
    assert_eq!(payload_offset(PacketKind::Raw), 14);
    assert_eq!(frame::body_len(PacketKind::Udp, 60), Some(0));
    assert_eq!(frame::body_len(PacketKind::Raw, 60), Some(28));
    assert_eq!(frame::body_len(PacketKind::Udp, 59), None);
}

#[test]
fn exact_sizes_both_kinds() {
    for kind in KINDS {
        for size in SIZES {
            let t = FrameTemplate::new(kind, size, &Endpoints::default(), 5).unwrap();
            assert_eq!(t.frame().len(), size as usize, "{kind} {size}");
            assert_eq!(t.len(), size as usize);
            assert!(!t.is_empty());
            assert_eq!(t.kind(), kind);
            let p = parse_frame(kind, t.frame()).unwrap();
            assert_eq!(p.len(), size as usize - payload_offset(kind));
            assert_eq!(
                check(p),
                Ok(PayloadInfo {
                    run: 0,
                    seq: 0,
                    inject_tsc: 0
                })
            );
            assert_eq!(verify_body(5, &p[HEADER_LEN..]), Ok(()));
        }
    }
}

#[test]
fn smallest_udp_frame_has_exactly_the_payload_header() {
    let t = FrameTemplate::new(PacketKind::Udp, 60, &Endpoints::default(), 1).unwrap();
    let p = parse_frame(PacketKind::Udp, t.frame()).unwrap();
    assert_eq!(p.len(), HEADER_LEN);
    assert_eq!(t.payload_template().body_len(), 0);
}

#[test]
fn size_limits() {
    for kind in KINDS {
        for bad in [0u32, 59, 16385] {
            assert_eq!(
                FrameTemplate::new(kind, bad, &Endpoints::default(), 1).unwrap_err(),
                ConfigError::SizeOutOfRange(bad.into())
            );
        }
    }
    let mut small = [0u8; 100];
    assert_eq!(
        FrameTemplate::new_in(
            &mut small[..],
            PacketKind::Raw,
            101,
            &Endpoints::default(),
            1
        )
        .unwrap_err(),
        ConfigError::BufferTooSmall {
            needed: 101,
            got: 100
        }
    );
}

#[test]
fn udp_headers_parse_back() {
    let ep = Endpoints::default();
    for size in SIZES {
        let t = FrameTemplate::new(PacketKind::Udp, size, &ep, 9).unwrap();
        let eth = EthernetFrame::new_checked(t.frame()).unwrap();
        assert_eq!(eth.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(eth.dst_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum(), "IPv4 checksum at size {size}");
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.total_len() as u32, size - 14);
        assert!(ip.dont_frag());
        assert!(!ip.more_frags());
        assert_eq!(ip.frag_offset(), 0);
        assert_eq!(ip.hop_limit(), 64);
        assert_eq!(ip.next_header(), IpProtocol::Udp);
        assert_eq!(ip.src_addr(), Ipv4Address::new(10, 0, 0, 1));
        assert_eq!(ip.dst_addr(), Ipv4Address::new(10, 0, 0, 2));
        // smoltcp's full parser (which also verifies the checksum) agrees.
        let repr = Ipv4Repr::parse(&ip, &Default::default()).unwrap();
        assert_eq!(repr.payload_len as u32, size - 34);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.src_port(), 40000);
        assert_eq!(udp.dst_port(), 7777);
        assert_eq!(udp.len() as u32, size - 34, "UDP length = header + payload");
        assert_eq!(udp.checksum(), 0, "UDP checksum disabled");
        assert_eq!(udp.payload().len() as u32, size - 42);
    }
}

#[test]
fn ipv4_checksum_verified_independently() {
    let t = FrameTemplate::new(PacketKind::Udp, 1514, &Endpoints::default(), 1).unwrap();
    let hdr = &t.frame()[14..34];
    // One's-complement sum over the header including its checksum is 0xFFFF.
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff);
    assert_eq!(hdr[6] & 0x40, 0x40, "DF bit");
}

#[test]
fn raw_headers() {
    let ep = Endpoints {
        src_mac: [2, 1, 2, 3, 4, 5],
        dst_mac: [0xff; 6],
        ..Endpoints::default()
    };
    let t = FrameTemplate::new(PacketKind::Raw, 60, &ep, 1).unwrap();
    let f = t.frame();
    assert_eq!(&f[0..6], &[0xff; 6]);
    assert_eq!(&f[6..12], &[2, 1, 2, 3, 4, 5]);
    assert_eq!(&f[12..14], &RAW_ETHERTYPE.to_be_bytes());
    assert_eq!(&f[12..14], &[0x88, 0xb5]);
}

#[test]
fn endpoints_default() {
    let e = Endpoints::default();
    assert_eq!(e.src_mac, [0x02, 0, 0, 0, 0, 1]);
    assert_eq!(e.dst_mac, [0x02, 0, 0, 0, 0, 2]);
    assert_eq!(e.src_mac[0] & 0b11, 0b10, "locally administered unicast");
    assert_eq!((e.src_ip, e.dst_ip), ([10, 0, 0, 1], [10, 0, 0, 2]));
    assert_eq!((e.src_port, e.dst_port), (40000, 7777));
}

#[test]
fn stamp_patches_only_the_payload_header() {
    for kind in KINDS {
        let t = FrameTemplate::new(kind, 1514, &Endpoints::default(), 3).unwrap();
        let mut slot = t.frame().to_vec();
        let off = payload_offset(kind);
        for seq in [1u32, 2, 1_000_000, mint_traffic::payload::MAX_SEQ] {
            t.stamp(&mut slot, seq, u64::from(seq) << 20).unwrap();
            let diff: Vec<usize> = (0..slot.len())
                .filter(|&i| slot[i] != t.frame()[i])
                .collect();
            assert!(
                diff.iter().all(|&i| (off..off + HEADER_LEN).contains(&i)),
                "{diff:?}"
            );
            let info = check(parse_frame(kind, &slot).unwrap()).unwrap();
            assert_eq!(
                info,
                PayloadInfo {
                    run: 0,
                    seq,
                    inject_tsc: u64::from(seq) << 20
                }
            );
        }
        assert_eq!(
            t.stamp(&mut slot[..100], 1, 1),
            Err(FrameError::Length {
                expected: 1514,
                actual: 100
            })
        );
    }
}

#[test]
fn render_and_stamp_own() {
    let cfg = GenConfig {
        kind: PacketKind::Raw,
        size: 128,
        seed: 4,
        ..GenConfig::default()
    };
    let mut t = FrameTemplate::from_config(&cfg, &Endpoints::default()).unwrap();
    let mut out = [0u8; 2048];
    assert_eq!(t.render(&mut out, 9, 10), Ok(128));
    assert_eq!(
        check(parse_frame(PacketKind::Raw, &out[..128]).unwrap())
            .unwrap()
            .seq,
        9
    );
    assert_eq!(
        t.render(&mut out[..127], 1, 1),
        Err(FrameError::Length {
            expected: 128,
            actual: 127
        })
    );
    let f = t.stamp_own(77, 88).to_vec();
    assert_eq!(
        check(&f[14..]),
        Ok(PayloadInfo {
            run: 0,
            seq: 77,
            inject_tsc: 88
        })
    );
    assert_eq!(t.frame(), &f[..]);
}

#[test]
fn caller_storage() {
    // e.g. a static buffer or a shared-memory TX slot.
    let mut storage = vec![0xAAu8; 4096];
    let t = FrameTemplate::new_in(
        &mut storage[..],
        PacketKind::Udp,
        1000,
        &Endpoints::default(),
        2,
    )
    .unwrap();
    assert_eq!(t.len(), 1000);
    assert!(check(parse_frame(PacketKind::Udp, t.frame()).unwrap()).is_ok());
    let storage = t.into_storage();
    assert_eq!(storage[1000], 0xAA, "bytes past the frame untouched");
    let d = format!(
        "{:?}",
        FrameTemplate::new(PacketKind::Raw, 60, &Endpoints::default(), 1).unwrap()
    );
    assert!(d.len() < 200 && d.contains("Raw"), "{d}");
    // Default storage covers the largest frame.
    assert_eq!(MAX_FRAME_LEN, 16384);
}

#[test]
fn parse_frame_rejections() {
    let udp = FrameTemplate::new(PacketKind::Udp, 200, &Endpoints::default(), 1).unwrap();
    let raw = FrameTemplate::new(PacketKind::Raw, 200, &Endpoints::default(), 1).unwrap();

    // Wrong kind → wrong ethertype.
    assert_eq!(
        parse_frame(PacketKind::Raw, udp.frame()),
        Err(FrameError::EtherType {
            found: 0x0800,
            expected: RAW_ETHERTYPE
        })
    );
    assert_eq!(
        parse_frame(PacketKind::Udp, raw.frame()),
        Err(FrameError::EtherType {
            found: RAW_ETHERTYPE,
            expected: 0x0800
        })
    );
    assert_eq!(
        parse_frame(PacketKind::Raw, &raw.frame()[..10]),
        Err(FrameError::Truncated { len: 10 })
    );
    assert_eq!(
        parse_frame(PacketKind::Udp, &udp.frame()[..20]),
        Err(FrameError::Truncated { len: 20 })
    );

    // Corrupt IPv4 header byte → checksum error.
    let mut f = udp.frame().to_vec();
    f[ETH_HEADER_LEN + 8] ^= 1; // TTL
    assert_eq!(
        parse_frame(PacketKind::Udp, &f),
        Err(FrameError::Ipv4Checksum)
    );

    // Truncated frame: IPv4 total length exceeds the bytes.
    assert_eq!(
        parse_frame(PacketKind::Udp, &udp.frame()[..150]),
        Err(FrameError::Ipv4Malformed)
    );

    // Not UDP (fix the checksum so only the protocol is wrong).
    let mut f = udp.frame().to_vec();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_HEADER_LEN..]);
        ip.set_next_header(IpProtocol::Tcp);
        ip.fill_checksum();
    }
    assert_eq!(
        parse_frame(PacketKind::Udp, &f),
        Err(FrameError::NotUdp { protocol: 6 })
    );

    // Fragment.
    let mut f = udp.frame().to_vec();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_HEADER_LEN..]);
        ip.set_more_frags(true);
        ip.fill_checksum();
    }
    assert_eq!(
        parse_frame(PacketKind::Udp, &f),
        Err(FrameError::Fragmented)
    );

    // UDP length disagreeing with IP.
    let mut f = udp.frame().to_vec();
    UdpPacket::new_unchecked(&mut f[34..]).set_len(100);
    assert_eq!(
        parse_frame(PacketKind::Udp, &f),
        Err(FrameError::UdpLength {
            field: 100,
            ip_payload: 166
        })
    );

    // Ethernet padding after the IP packet is ignored for UDP.
    let mut f = udp.frame().to_vec();
    f.extend_from_slice(&[0; 8]);
    assert_eq!(parse_frame(PacketKind::Udp, &f).unwrap().len(), 200 - 42);

    for e in [
        FrameError::Length {
            expected: 1,
            actual: 2,
        },
        FrameError::Truncated { len: 1 },
        FrameError::EtherType {
            found: 1,
            expected: 2,
        },
        FrameError::Ipv4Malformed,
        FrameError::Ipv4Checksum,
        FrameError::Fragmented,
        FrameError::NotUdp { protocol: 6 },
        FrameError::UdpLength {
            field: 1,
            ip_payload: 2,
        },
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn payload_corruption_through_frame_is_detected() {
    let t = FrameTemplate::new(PacketKind::Udp, 1514, &Endpoints::default(), 8).unwrap();
    let mut f = t.frame().to_vec();
    t.stamp(&mut f, 5, 6).unwrap();
    f[1000] ^= 0x10;
    // Headers are fine (UDP has no checksum), the payload CRC is not.
    assert!(check(parse_frame(PacketKind::Udp, &f).unwrap()).is_err());
}
