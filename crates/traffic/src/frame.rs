//! Ethernet framing: builds the whole frame once per run, then stamps packets in place.
//!
//! Two frame kinds, both exactly `size` bytes (no FCS; the NIC appends it):
//!
//! ```text
//! udp: | Ethernet II 14 | IPv4 20 | UDP 8 | payload (size − 42) |
//! raw: | Ethernet II 14, ethertype 0x88B5  | payload (size − 14) |
//! ```
//!
//! IPv4: no options, DF set, identification 0 (legal with DF, RFC 6864),
//! TTL 64, header checksum filled in. UDP checksum 0 ("none", legal for
//! IPv4), which is what lets a packet be re-stamped without touching any
//! header: nothing outside the payload depends on seq or TSC. Headers are
//! emitted with `smoltcp::wire`, the same code the target parses them with.
//!
//! At the 60-byte minimum a UDP frame has exactly [`HEADER_LEN`] = 18 payload
//! bytes (empty body); see [`crate::payload`] for why the header is 18 bytes.
//! A compile-time assertion keeps that true.

use core::fmt;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv4Repr, UdpPacket,
};

use crate::config::{ConfigError, GenConfig, MAX_SIZE, MIN_SIZE, PacketKind};
use crate::payload::{HEADER_LEN, PayloadTemplate};

/// Ethernet II header length.
pub const ETH_HEADER_LEN: usize = 14;
/// IPv4 header length (no options).
pub const IPV4_HEADER_LEN: usize = 20;
/// UDP header length.
pub const UDP_HEADER_LEN: usize = 8;
/// Ethertype of raw frames: IEEE 802 "local experimental ethertype 1".
pub const RAW_ETHERTYPE: u16 = 0x88B5;
/// TTL of emitted IPv4 packets.
pub const TTL: u8 = 64;
/// Smallest frame (without FCS).
pub const MIN_FRAME_LEN: usize = MIN_SIZE as usize;
/// Largest frame (without FCS); the default template storage size.
pub const MAX_FRAME_LEN: usize = MAX_SIZE as usize;

/// Where the payload starts in a frame of `kind`.
pub const fn payload_offset(kind: PacketKind) -> usize {
    match kind {
        PacketKind::Udp => ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN,
        PacketKind::Raw => ETH_HEADER_LEN,
    }
}

/// Body bytes in a `size`-byte frame of `kind`, or `None` if even the
/// payload header does not fit.
pub const fn body_len(kind: PacketKind, size: usize) -> Option<usize> {
    size.checked_sub(payload_offset(kind) + HEADER_LEN)
}

// The smallest legal frame must carry a full payload header for both kinds.
const _: () = assert!(payload_offset(PacketKind::Udp) + HEADER_LEN <= MIN_FRAME_LEN);
const _: () = assert!(payload_offset(PacketKind::Raw) + HEADER_LEN <= MIN_FRAME_LEN);
// …and the largest body must fit the payload's u16 `body_len`.
const _: () = assert!(MAX_FRAME_LEN - ETH_HEADER_LEN - HEADER_LEN <= u16::MAX as usize);

/// Addresses and ports written into frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source IPv4 address (udp only).
    pub src_ip: [u8; 4],
    /// Destination IPv4 address (udp only).
    pub dst_ip: [u8; 4],
    /// Source UDP port (udp only).
    pub src_port: u16,
    /// Destination UDP port (udp only).
    pub dst_port: u16,
}

/// Locally administered unicast MACs (bit 1 of the first octet set), so
/// they can never clash with a real vendor's: 02:00:00:00:00:01 →
/// 02:00:00:00:00:02, 10.0.0.1:40000 → 10.0.0.2:7777.
impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src_ip: [10, 0, 0, 1],
            dst_ip: [10, 0, 0, 2],
            src_port: 40000,
            dst_port: 7777,
        }
    }
}

/// Why a frame could not be stamped or parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameError {
    /// Sender side: the buffer to stamp/render is not the template's length.
    Length {
        /// The template's frame length.
        expected: usize,
        /// The buffer's length.
        actual: usize,
    },
    /// Too short for the headers of this kind.
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Not the ethertype this kind uses.
    EtherType {
        /// Ethertype found.
        found: u16,
        /// Ethertype expected.
        expected: u16,
    },
    /// IPv4 header malformed (version, header or total length).
    Ipv4Malformed,
    /// IPv4 header checksum wrong.
    Ipv4Checksum,
    /// An IPv4 fragment; the generator never fragments (DF).
    Fragmented,
    /// IPv4 but not UDP.
    NotUdp {
        /// IP protocol number found.
        protocol: u8,
    },
    /// UDP length field inconsistent with the IPv4 payload length.
    UdpLength {
        /// UDP length field.
        field: u16,
        /// Bytes of IPv4 payload.
        ip_payload: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Length { expected, actual } => {
                write!(f, "frame buffer is {actual} bytes, template is {expected}")
            }
            FrameError::Truncated { len } => write!(f, "frame truncated: {len} bytes"),
            FrameError::EtherType { found, expected } => {
                write!(f, "ethertype {found:#06x}, expected {expected:#06x}")
            }
            FrameError::Ipv4Malformed => f.write_str("malformed IPv4 header"),
            FrameError::Ipv4Checksum => f.write_str("bad IPv4 header checksum"),
            FrameError::Fragmented => f.write_str("IPv4 fragment"),
            FrameError::NotUdp { protocol } => write!(f, "IP protocol {protocol}, expected UDP"),
            FrameError::UdpLength { field, ip_payload } => write!(
                f,
                "UDP length {field} disagrees with {ip_payload}-byte IPv4 payload"
            ),
        }
    }
}

impl core::error::Error for FrameError {}

/// A complete frame for one run, built once; packets differ only in the
/// payload's seq, TSC and CRC, which [`stamp`](Self::stamp) patches in place.
///
/// The bytes live in `B`: by default an inline `[u8; 16384]` (no
/// allocation at all; mind the 16 KiB when it sits on a small kernel stack),
/// or any caller storage via [`new_in`](Self::new_in) — e.g. a static
/// buffer or the shared-memory slot itself.
#[derive(Clone)]
pub struct FrameTemplate<B = [u8; MAX_FRAME_LEN]> {
    storage: B,
    kind: PacketKind,
    len: usize,
    payload: PayloadTemplate,
}

impl FrameTemplate {
    /// Builds a `size`-byte frame of `kind` in inline storage; the body is
    /// made from `seed`. Fails if `size` is outside 60..=16384.
    pub fn new(
        kind: PacketKind,
        size: u32,
        endpoints: &Endpoints,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        FrameTemplate::new_in([0u8; MAX_FRAME_LEN], kind, size, endpoints, seed)
    }

    /// [`new`](FrameTemplate::new) with kind, size and seed taken from `cfg`.
    pub fn from_config(cfg: &GenConfig, endpoints: &Endpoints) -> Result<Self, ConfigError> {
        FrameTemplate::new(cfg.kind, cfg.size, endpoints, cfg.seed)
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> FrameTemplate<B> {
    /// Builds the frame in the first `size` bytes of `storage`.
    pub fn new_in(
        mut storage: B,
        kind: PacketKind,
        size: u32,
        endpoints: &Endpoints,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
            return Err(ConfigError::SizeOutOfRange(u64::from(size)));
        }
        let len = size as usize;
        let got = storage.as_ref().len();
        if got < len {
            return Err(ConfigError::BufferTooSmall { needed: len, got });
        }
        // Cannot fail: size ≥ 60 and the const asserts above.
        let body = body_len(kind, len).unwrap_or(0) as u16;
        let payload = PayloadTemplate::new(seed, body);
        let frame = &mut storage.as_mut()[..len];
        frame.fill(0);
        emit_headers(frame, kind, endpoints);
        // Lengths agree by construction, so this cannot fail either.
        let _ = payload.write(&mut frame[payload_offset(kind)..]);
        Ok(FrameTemplate {
            storage,
            kind,
            len,
            payload,
        })
    }

    /// Stamps the template's own bytes for packet `seq` and returns the
    /// frame, for senders that transmit straight from the template.
    pub fn stamp_own(&mut self, seq: u32, inject_tsc: u64) -> &[u8] {
        let run = self.payload.run();
        self.stamp_own_as(run, seq, inject_tsc)
    }

    /// [`stamp_own`](Self::stamp_own) with another run byte than the
    /// template's (fault injection).
    pub fn stamp_own_as(&mut self, run: u8, seq: u32, inject_tsc: u64) -> &[u8] {
        let (off, len) = (payload_offset(self.kind), self.len);
        let frame = &mut self.storage.as_mut()[..len];
        // Lengths agree by construction.
        let _ = self
            .payload
            .stamp_as(&mut frame[off..], run, seq, inject_tsc);
        frame
    }

    /// Every packet stamped from now on carries `run` (the low byte of the
    /// run id) in its payload.
    pub fn set_run(&mut self, run: u8) {
        self.payload = self.payload.with_run(run);
    }
}

impl<B: AsRef<[u8]>> FrameTemplate<B> {
    /// The frame bytes (exactly `size`, stamped as last stamped, seq 0 at first).
    pub fn frame(&self) -> &[u8] {
        &self.storage.as_ref()[..self.len]
    }

    /// Frame length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Never true: frames are at least 60 bytes (here for clippy's sake).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frame kind.
    pub const fn kind(&self) -> PacketKind {
        self.kind
    }

    /// Where the payload starts in the frame.
    pub const fn payload_offset(&self) -> usize {
        payload_offset(self.kind)
    }

    /// The payload template (seed, body length).
    pub const fn payload_template(&self) -> &PayloadTemplate {
        &self.payload
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> B {
        self.storage
    }

    /// Per packet: patches seq, TSC and CRC into `frame`, a copy of
    /// [`frame`](Self::frame) (e.g. a TX slot filled once per run). Touches
    /// 18 bytes; fails only if `frame` is not exactly the template's length.
    pub fn stamp(&self, frame: &mut [u8], seq: u32, inject_tsc: u64) -> Result<(), FrameError> {
        if frame.len() != self.len {
            return Err(FrameError::Length {
                expected: self.len,
                actual: frame.len(),
            });
        }
        // The payload slice has the template's payload length by the check
        // above, so the template cannot refuse it.
        self.payload
            .stamp(&mut frame[payload_offset(self.kind)..], seq, inject_tsc)
            .map_err(|_| FrameError::Length {
                expected: self.len,
                actual: frame.len(),
            })
    }

    /// Copies the frame into the front of `out` and stamps it; returns the
    /// frame length. For senders whose slots are not pre-filled.
    pub fn render(&self, out: &mut [u8], seq: u32, inject_tsc: u64) -> Result<usize, FrameError> {
        let actual = out.len();
        let dst = out.get_mut(..self.len).ok_or(FrameError::Length {
            expected: self.len,
            actual,
        })?;
        dst.copy_from_slice(self.frame());
        self.stamp(dst, seq, inject_tsc)?;
        Ok(self.len)
    }
}

impl<B> fmt::Debug for FrameTemplate<B> {
    // Not the 16 KiB of storage: the frame is reproducible from these.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameTemplate")
            .field("kind", &self.kind)
            .field("len", &self.len)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

fn emit_headers(frame: &mut [u8], kind: PacketKind, ep: &Endpoints) {
    let ethertype = match kind {
        PacketKind::Udp => EthernetProtocol::Ipv4,
        PacketKind::Raw => EthernetProtocol::from(RAW_ETHERTYPE),
    };
    EthernetRepr {
        src_addr: EthernetAddress(ep.src_mac),
        dst_addr: EthernetAddress(ep.dst_mac),
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut *frame));
    if kind == PacketKind::Raw {
        return;
    }
    let ip_start = ETH_HEADER_LEN;
    let udp_start = ip_start + IPV4_HEADER_LEN;
    let udp_len = frame.len() - udp_start;
    Ipv4Repr {
        src_addr: Ipv4Address::from(ep.src_ip),
        dst_addr: Ipv4Address::from(ep.dst_ip),
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: TTL,
    }
    // Default capabilities = compute the header checksum; smoltcp's emit
    // also sets DF and identification 0.
    .emit(
        &mut Ipv4Packet::new_unchecked(&mut frame[ip_start..udp_start]),
        &ChecksumCapabilities::default(),
    );
    let mut udp = UdpPacket::new_unchecked(&mut frame[udp_start..]);
    udp.set_src_port(ep.src_port);
    udp.set_dst_port(ep.dst_port);
    // ≤ 16384 − 34, fits u16.
    udp.set_len(udp_len as u16);
    // 0 = no checksum (IPv4 only): keeps per-packet stamping header-free.
    udp.set_checksum(0);
}

/// Receiver side: checks the headers of a `kind` frame and returns its
/// payload (to hand to [`crate::payload::check`]).
///
/// Raw: ethertype 0x88B5; the payload is everything after the Ethernet
/// header (frames are never below 60 bytes, so there is no NIC padding to
/// strip). UDP: IPv4 (valid header checksum, not a fragment, protocol
/// UDP) and the UDP length must equal the IPv4 payload length; the payload
/// is bounded by those lengths, so Ethernet padding is ignored. Addresses
/// and ports are not checked: that is the receiver's policy.
pub fn parse_frame(kind: PacketKind, frame: &[u8]) -> Result<&[u8], FrameError> {
    let eth = EthernetFrame::new_checked(frame)
        .map_err(|_| FrameError::Truncated { len: frame.len() })?;
    let expected = match kind {
        PacketKind::Udp => u16::from(EthernetProtocol::Ipv4),
        PacketKind::Raw => RAW_ETHERTYPE,
    };
    let found = u16::from(eth.ethertype());
    if found != expected {
        return Err(FrameError::EtherType { found, expected });
    }
    let l3 = &frame[ETH_HEADER_LEN..];
    if kind == PacketKind::Raw {
        return Ok(l3);
    }
    if l3.len() < IPV4_HEADER_LEN {
        return Err(FrameError::Truncated { len: frame.len() });
    }
    let ip = Ipv4Packet::new_checked(l3).map_err(|_| FrameError::Ipv4Malformed)?;
    if ip.version() != 4 || usize::from(ip.header_len()) < IPV4_HEADER_LEN {
        return Err(FrameError::Ipv4Malformed);
    }
    if !ip.verify_checksum() {
        return Err(FrameError::Ipv4Checksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(FrameError::Fragmented);
    }
    let protocol = u8::from(ip.next_header());
    if protocol != u8::from(IpProtocol::Udp) {
        return Err(FrameError::NotUdp { protocol });
    }
    let ip_payload = ip.payload();
    if ip_payload.len() < UDP_HEADER_LEN {
        return Err(FrameError::Truncated { len: frame.len() });
    }
    let udp = UdpPacket::new_unchecked(ip_payload);
    let field = udp.len();
    if usize::from(field) != ip_payload.len() {
        return Err(FrameError::UdpLength {
            field,
            ip_payload: ip_payload.len(),
        });
    }
    Ok(&ip_payload[UDP_HEADER_LEN..])
}
