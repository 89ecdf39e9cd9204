//! The shared region: the only memory two nodes both map.
//!
//! Layout (offsets from the region's base; every node maps it at
//! [`SHARED_VIRT`]):
//!
//! | offset | what | written by | mapped writable in |
//! |---|---|---|---|
//! | 0x0000 | [`Header`]: magic, version, TSC rate, node table, `go`, faults to inject, debug NIC target, TSC rate source | node 0 | node 0 only |
//! | 0x1000 + i × 0x1000 | [`NodeSlot`] of node i: state, heartbeat, crash reason, ping samples, incident counters, the consumer index of each mailbox *to* i, node 0's cross-core TSC sync line with node i, the vector its mailbox IPI goes to | node i (node 0 marks it booting, and its monitor may declare a silent node crashed) | node i and node 0 |
//! | 0x5000 + i × 0x3000 | [`NodeOutboxes`] of node i: producer index and messages of each mailbox *from* i | node i | node i only |
//! | [`OPEN_OFFSET`] (0x11000) | [`crate::debug_nic::DebugNic`]: e1000 register page, posted-IRQ flag, run control | see that module | every node |
//! | [`crate::debug_nic::dma_window_offset`].. | DMA window: the target driver's RX ring and buffers | device: buffers, write-back; driver: ring setup | every node |
//!
//! The mailbox `[to][from]` ([`SharedRegion::mailbox`]) is split by writer:
//! its consumer index lives in `to`'s slot, its producer index and
//! messages in `from`'s outboxes. So a message in it really comes from
//! `from` (or from node 0, which may write slots but not outboxes, and
//! then only the consumer index).
//!
//! The header, every slot and every node's outboxes sit on 4 KiB pages of
//! their own (asserted at compile time below), so node 0 can map them
//! read-only into every node that is not their writer ([`segments_for`]):
//! a stray or hostile write to the header, to another node's slot or into
//! another node's mailboxes page-faults in the node that made it. The rest
//! (the *open* part: debug NIC, DMA window) has two writers per cache line
//! and stays writable by every node; a peer's values there are validated,
//! not trusted.
//!
//! Every field is an atomic: the peer is another kernel that may be faulty,
//! so nothing here is read as a plain reference to a Rust type with
//! invariants, and every value read from a peer is validated before use.
//! Node 0 zeroes the region, fills the header and publishes
//! [`Header::magic`] last; a node whose view of magic or
//! [`ABI_VERSION`] differs refuses to run.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use mint_mailbox::{ConsumerIndex, Outbox, Queue};

use crate::node::NodeState;

/// "MINTSHRD", little endian.
pub const SHARED_MAGIC: u64 = u64::from_le_bytes(*b"MINTSHRD");
/// Bumped whenever this layout changes.
pub const ABI_VERSION: u32 = 11;
/// Nodes a region can describe (one ISA UART per node: COM1..COM4).
pub const MAX_NODES: usize = 4;
/// Messages per mailbox.
pub const MAILBOX_SLOTS: usize = 64;
/// Ping round trips each node measures to each peer.
pub const PINGS_PER_PEER: usize = 32;
/// Bytes of crash reason a slot keeps.
pub const REASON_LEN: usize = 120;
/// Virtual address at which every node maps the shared region.
pub const SHARED_VIRT: u64 = 0x40_0000_0000;

/// The producer's half of a node-to-node mailbox.
pub type NodeOutbox = Outbox<MAILBOX_SLOTS>;
/// A node-to-node mailbox: the two halves joined.
pub type NodeMailbox<'a> = Queue<'a, MAILBOX_SLOTS>;

/// What one node produces: its outbox to every node (indexed by the
/// receiver; its own is unused). On pages only that node may write.
#[repr(C, align(4096))]
pub struct NodeOutboxes {
    pub to: [NodeOutbox; MAX_NODES],
}

/// Run-wide facts and controls, owned by node 0.
#[repr(C, align(4096))]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub node_count: AtomicU32,
    /// Region size in bytes.
    pub size: AtomicU64,
    /// TSC ticks per second, calibrated by node 0 against the PIT.
    pub tsc_hz: AtomicU64,
    /// Local APIC ID of each node's core (the IPI destination).
    pub apic_ids: [AtomicU32; MAX_NODES],
    /// Set by node 0 once every node is up: start the ping round.
    pub go: AtomicU32,
    /// Fault each node is asked to inject into itself (`FaultKind` as u32).
    pub inject_fault: [AtomicU32; MAX_NODES],
    /// The node that attaches the debug NIC's driver (node id + 1; 0 =
    /// none), set by node 0 before it starts the others.
    pub debug_nic_target: AtomicU32,
    /// Where `tsc_hz` came from: index into `mint_timing::Source::ALL`
    /// plus 1 (0 = not said), so other nodes can say whose figure they use.
    pub tsc_source: AtomicU32,
    /// The interrupt layer's state as node 0 (its only writer) publishes it
    /// after every operation, for every node to read: routes, device rows
    /// and counters, every pin's entry.
    pub routes: PublishedRoutes,
}

/// Most routes [`PublishedRoutes`] holds (one per I/O APIC pin).
pub const PUBLISHED_ROUTES: usize = 24;

/// The routing table as a sequence lock: node 0 makes `generation` odd,
/// rewrites `count` and `entries`, makes it even again (release); a reader
/// loads it (acquire), copies, loads it again and retries if it was odd or
/// changed (`mint_irq::route::read_consistent`). Each entry is
/// [`pack_route`]'s word.
#[repr(C, align(64))]
pub struct PublishedRoutes {
    pub generation: AtomicU64,
    pub count: AtomicU32,
    pub entries: [AtomicU64; PUBLISHED_ROUTES],
    /// The management table's rows under the same generation: how many,
    /// then [`pack_device`]'s word each.
    pub device_count: AtomicU32,
    pub devices: [AtomicU64; PUBLISHED_DEVICES],
    /// Each device's counters, by row: refused requests, hand-overs, crash
    /// resets, storm pauses.
    pub device_counters: [[AtomicU32; 4]; PUBLISHED_DEVICES],
    /// Every managed I/O APIC pin's redirection entry as read back after
    /// the operation (raw 64 bits: vector, mask, remote IRR, destination).
    pub pin_count: AtomicU32,
    pub pins: [AtomicU64; PUBLISHED_ROUTES],
}

/// Most devices [`PublishedRoutes`] holds.
pub const PUBLISHED_DEVICES: usize = 8;

/// One published row of the interrupt layer's management table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedDevice {
    pub device: u8,
    /// `None` while orphaned.
    pub owner: Option<u8>,
    /// `mint_irq::DeviceState` as 0 declared, 1 attached, 2 handing over,
    /// 3 orphaned.
    pub state: u8,
    pub vector: Option<u8>,
    pub gsi: Option<u16>,
    /// The owner's mask wish.
    pub masked: bool,
}

const NONE8: u64 = 0xFF;
const NONE16: u64 = 0xFFFF;

/// `device | owner << 8 | state << 16 | vector << 24 | gsi << 32 | masked << 48`
/// (0xFF / 0xFFFF for none).
pub const fn pack_device(d: PublishedDevice) -> u64 {
    let owner = match d.owner {
        Some(o) => o as u64,
        None => NONE8,
    };
    let vector = match d.vector {
        Some(v) => v as u64,
        None => NONE8,
    };
    let gsi = match d.gsi {
        Some(g) => g as u64,
        None => NONE16,
    };
    d.device as u64
        | owner << 8
        | (d.state as u64) << 16
        | vector << 24
        | gsi << 32
        | (d.masked as u64) << 48
}

pub const fn unpack_device(w: u64) -> PublishedDevice {
    let owner = (w >> 8) & 0xFF;
    let vector = (w >> 24) & 0xFF;
    let gsi = (w >> 32) & 0xFFFF;
    PublishedDevice {
        device: w as u8,
        owner: if owner == NONE8 {
            None
        } else {
            Some(owner as u8)
        },
        state: (w >> 16) as u8,
        vector: if vector == NONE8 {
            None
        } else {
            Some(vector as u8)
        },
        gsi: if gsi == NONE16 {
            None
        } else {
            Some(gsi as u16)
        },
        masked: (w >> 48) & 1 != 0,
    }
}

/// One published route: GSI, device, destination APIC ID and vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedRoute {
    pub gsi: u32,
    pub device: u8,
    pub destination: u8,
    pub vector: u8,
}

/// `gsi | device << 32 | destination << 40 | vector << 48`.
pub const fn pack_route(r: PublishedRoute) -> u64 {
    r.gsi as u64 | (r.device as u64) << 32 | (r.destination as u64) << 40 | (r.vector as u64) << 48
}

pub const fn unpack_route(w: u64) -> PublishedRoute {
    PublishedRoute {
        gsi: w as u32,
        device: (w >> 32) as u8,
        destination: (w >> 40) as u8,
        vector: (w >> 48) as u8,
    }
}

/// One cache line node 0 and one other node exchange TSC stamps through:
/// node 0 writes `request` (round number; [`TSC_SYNC_DONE`] ends the
/// exchange), the node answers with its TSC in `remote_tsc` and the round
/// number in `answer` (release, after `remote_tsc`).
#[repr(C, align(64))]
pub struct TscSyncLine {
    pub request: AtomicU64,
    pub remote_tsc: AtomicU64,
    pub answer: AtomicU64,
}

/// `TscSyncLine::request` value that ends the exchange.
pub const TSC_SYNC_DONE: u64 = u64::MAX;

/// One node's public status.
#[repr(C, align(4096))]
pub struct NodeSlot {
    /// `NodeState` as u32.
    pub state: AtomicU32,
    /// Set when this node finished its ping round.
    pub pings_done: AtomicU32,
    /// Incremented by the node's APIC timer; a node that stops counting is
    /// stuck (interrupts off, or dead).
    pub heartbeat: AtomicU64,
    /// TSC when the node entered Running.
    pub running_tsc: AtomicU64,
    pub reason_len: AtomicU32,
    pub reason: [AtomicU8; REASON_LEN],
    /// Round-trip times (TSC ticks) of this node's pings, per peer.
    pub ping_rtt: [[AtomicU64; PINGS_PER_PEER]; MAX_NODES],
    pub ping_count: [AtomicU32; MAX_NODES],
    /// What this node refused or gave up on, by [`Incident`].
    pub incidents: [AtomicU32; Incident::COUNT],
    /// The consumer index of each mailbox to this node, by sender.
    pub inbox: [ConsumerIndex; MAX_NODES],
    /// Node 0's cross-core TSC check with this node (see [`TscSyncLine`]):
    /// in the slot because its two writers, node 0 and this node, are the
    /// two nodes that may write the slot's page.
    pub tsc_sync: TscSyncLine,
    /// The vector this node takes its mailbox interrupt on, published by
    /// the node before it enters Running; 0 = [`DEFAULT_MAILBOX_VECTOR`]
    /// (mint nodes). A Linux node cannot take 0xF0 (Linux's own system
    /// vector, POSTED_INTR_NESTED), so mint's module publishes the vector
    /// Linux allocated it. Read through [`NodeSlot::mailbox_vector`], which
    /// validates the peer-written value.
    pub mailbox_vector: AtomicU32,
    /// The vector this node takes the debug NIC's interrupt on (the IPI
    /// the support node sends), published before its driver says ready
    /// (`DebugNic::driver_ready`); 0 = `debug_nic::NIC_VECTOR` (mint
    /// nodes). A Linux node cannot choose its vectors (mint's module takes
    /// one from Linux and publishes it). Read through
    /// [`NodeSlot::nic_vector`], which validates the peer-written value.
    pub nic_vector: AtomicU32,
}

/// The mailbox vector of a node that publishes none (mint's own nodes).
pub const DEFAULT_MAILBOX_VECTOR: u8 = 0xF0;

/// Something a node refused or gave up on rather than trust a peer or wait
/// for ever; counted in its [`NodeSlot::incidents`] and shown in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Incident {
    /// A Halt request that did not come through a mailbox node 0 produces.
    ForgedHalt = 0,
    /// A mailbox drain stopped after one capacity's worth of messages with
    /// more still arriving (the rest waits for the next interrupt).
    MailboxDrainCapped = 1,
    /// An xAPIC ICR whose delivery status stayed pending past its deadline.
    StuckIcr = 2,
    /// A wait on a peer that ended at its deadline (a ping unanswered, a
    /// node that did not start, `go` that never came, a round that did
    /// not settle).
    WaitExpired = 3,
}

impl Incident {
    pub const COUNT: usize = 4;
    pub const ALL: [Incident; Self::COUNT] = [
        Incident::ForgedHalt,
        Incident::MailboxDrainCapped,
        Incident::StuckIcr,
        Incident::WaitExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Incident::ForgedHalt => "forged_halt",
            Incident::MailboxDrainCapped => "mailbox_drain_capped",
            Incident::StuckIcr => "stuck_icr",
            Incident::WaitExpired => "wait_expired",
        }
    }
}

/// The whole region's fixed part.
#[repr(C)]
pub struct SharedRegion {
    pub header: Header,
    pub nodes: [NodeSlot; MAX_NODES],
    /// `outboxes[from].to[to]`: the producer halves of the mailboxes.
    pub outboxes: [NodeOutboxes; MAX_NODES],
    /// The debug NIC (support node <-> target node's e1000 driver).
    pub debug_nic: crate::debug_nic::DebugNic,
    /// The real e1000's per-node accounting (its ring is in the NIC area
    /// at the region's end: `real_nic`).
    pub real_nic: crate::real_nic::RealNic,
}

/// Bytes of the region this layout occupies; the rest is for later users.
pub const SHARED_FIXED_SIZE: usize = core::mem::size_of::<SharedRegion>();

/// Size of a page the protection is applied at.
pub const PAGE_SIZE: usize = 4096;
/// Offset of the header (node 0's page).
pub const HEADER_OFFSET: usize = core::mem::offset_of!(SharedRegion, header);
/// Bytes of one node's slot (whole pages).
pub const SLOT_SIZE: usize = core::mem::size_of::<NodeSlot>();
/// Offset of the first slot; slot `i` is at `SLOTS_OFFSET + i * SLOT_SIZE`.
pub const SLOTS_OFFSET: usize = core::mem::offset_of!(SharedRegion, nodes);
/// Offset of the first node's outboxes; node `i`'s are at
/// `OUTBOXES_OFFSET + i * OUTBOXES_SIZE`.
pub const OUTBOXES_OFFSET: usize = core::mem::offset_of!(SharedRegion, outboxes);
/// Bytes of one node's outboxes (whole pages).
pub const OUTBOXES_SIZE: usize = core::mem::size_of::<NodeOutboxes>();
/// Offset of the open part (debug NIC onwards), writable by every node.
pub const OPEN_OFFSET: usize = core::mem::offset_of!(SharedRegion, debug_nic);

// The protection is per 4 KiB page: the header, every slot and every
// node's outboxes must fill whole pages of their own, in this order, with
// nothing between them.
const _: () = {
    assert!(HEADER_OFFSET == 0);
    assert!(core::mem::size_of::<Header>() == PAGE_SIZE);
    assert!(SLOTS_OFFSET == PAGE_SIZE);
    assert!(SLOT_SIZE == PAGE_SIZE);
    assert!(OUTBOXES_OFFSET == SLOTS_OFFSET + MAX_NODES * SLOT_SIZE);
    assert!(OUTBOXES_SIZE.is_multiple_of(PAGE_SIZE));
    assert!(OPEN_OFFSET == OUTBOXES_OFFSET + MAX_NODES * OUTBOXES_SIZE);
    assert!(OPEN_OFFSET.is_multiple_of(PAGE_SIZE));
    assert!(
        SHARED_FIXED_SIZE < 4 << 20,
        "fits the smallest shared region"
    );
};

/// Offset of node `index`'s slot.
pub const fn slot_offset(index: usize) -> usize {
    SLOTS_OFFSET + index * SLOT_SIZE
}

/// Offset of node `index`'s outboxes.
pub const fn outboxes_offset(index: usize) -> usize {
    OUTBOXES_OFFSET + index * OUTBOXES_SIZE
}

/// Segments of the protected part: the header, a slot per node, the
/// outboxes of each node.
pub const SEGMENTS: usize = 1 + 2 * MAX_NODES;

impl SharedRegion {
    /// The mailbox carrying messages from `from` to `to` (indices below
    /// [`MAX_NODES`]): `to`'s consumer index, `from`'s outbox.
    pub fn mailbox(&self, to: usize, from: usize) -> NodeMailbox<'_> {
        Queue::new(&self.nodes[to].inbox[from], &self.outboxes[from].to[to])
    }
}

/// How a node maps one segment of the protected part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// A page-aligned piece of the region: `[offset, offset + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: usize,
    pub len: usize,
    pub access: Access,
}

/// How node `node` must map the protected part of the region, `[0,
/// OPEN_OFFSET)`, in order and without gaps: the header writable only in
/// node 0; node i's slot writable in node i and node 0 (which marks a node
/// booting and declares a silent one crashed), read-only elsewhere; node
/// i's outboxes writable in node i only. The rest of the region, from
/// [`OPEN_OFFSET`], is writable by every node.
pub fn segments_for(node: usize) -> [Segment; SEGMENTS] {
    let rw = |writable: bool| {
        if writable {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        }
    };
    let mut out = [Segment {
        offset: HEADER_OFFSET,
        len: core::mem::size_of::<Header>(),
        access: rw(node == 0),
    }; SEGMENTS];
    for i in 0..MAX_NODES {
        out[1 + i] = Segment {
            offset: slot_offset(i),
            len: SLOT_SIZE,
            access: rw(node == 0 || node == i),
        };
        out[1 + MAX_NODES + i] = Segment {
            offset: outboxes_offset(i),
            len: OUTBOXES_SIZE,
            access: rw(node == i),
        };
    }
    out
}

/// What a region offset holds, to name it in a fault report.
pub fn describe_offset(offset: u64) -> &'static str {
    let o = offset as usize;
    if o < SLOTS_OFFSET {
        "the shared header"
    } else if o < OUTBOXES_OFFSET {
        "a node slot"
    } else if o < OPEN_OFFSET {
        "another node's mailboxes"
    } else if o < SHARED_FIXED_SIZE {
        "the debug NIC"
    } else {
        "the shared DMA window"
    }
}

impl NodeSlot {
    /// Counts one `incident`.
    pub fn count(&self, incident: Incident) {
        self.incidents[incident as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn incident_count(&self, incident: Incident) -> u32 {
        self.incidents[incident as usize].load(Ordering::Relaxed)
    }

    /// This slot's state, or `None` when the value is garbage.
    pub fn state(&self) -> Option<NodeState> {
        NodeState::from_raw(self.state.load(Ordering::Acquire))
    }

    /// The vector to send this node's mailbox IPI on: the published one
    /// when it is a device vector (0x20..=0xEF, never an exception or
    /// another system vector), else [`DEFAULT_MAILBOX_VECTOR`].
    pub fn mailbox_vector(&self) -> u8 {
        match self.mailbox_vector.load(Ordering::Acquire) {
            v @ 0x20..=0xEF => v as u8,
            _ => DEFAULT_MAILBOX_VECTOR,
        }
    }

    /// The vector to send this node the debug NIC's interrupt on: the
    /// published one when it is a device vector (0x20..=0xEF), else
    /// `debug_nic::NIC_VECTOR`.
    pub fn nic_vector(&self) -> u8 {
        match self.nic_vector.load(Ordering::Acquire) {
            v @ 0x20..=0xEF => v as u8,
            _ => crate::debug_nic::NIC_VECTOR.0,
        }
    }

    pub fn set_state(&self, s: NodeState) {
        self.state.store(s as u32, Ordering::Release);
    }

    /// Records why the node stopped, then marks it crashed (reason first,
    /// so a reader that sees Crashed sees the reason).
    pub fn record_crash(&self, reason: &str) {
        self.write_reason(reason);
        self.set_state(NodeState::Crashed);
    }

    /// Declares a node crashed from outside (the monitor), unless it already
    /// reported its own end. Returns whether this call made the change.
    /// The reason is written only when this call made the change, so a
    /// reason the node recorded itself is never overwritten.
    pub fn declare_crashed_from(&self, from: NodeState, reason: &str) -> bool {
        let changed = self
            .state
            .compare_exchange(
                from as u32,
                NodeState::Crashed as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if changed {
            self.write_reason(reason);
        }
        changed
    }

    fn write_reason(&self, reason: &str) {
        let bytes = reason.as_bytes();
        let n = bytes.len().min(REASON_LEN);
        for (cell, b) in self.reason.iter().zip(&bytes[..n]) {
            cell.store(*b, Ordering::Relaxed);
        }
        self.reason_len.store(n as u32, Ordering::Release);
    }

    /// Copies the reason into `out`, returning the valid prefix (lossy on
    /// invalid UTF-8: the writer may be broken).
    pub fn reason<'a>(&self, out: &'a mut [u8; REASON_LEN]) -> &'a str {
        let n = (self.reason_len.load(Ordering::Acquire) as usize).min(REASON_LEN);
        for (b, cell) in out.iter_mut().zip(&self.reason[..n]) {
            *b = cell.load(Ordering::Relaxed);
        }
        match core::str::from_utf8(&out[..n]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&out[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl Header {
    /// Whether node 0 has published a header this build understands.
    pub fn is_valid(&self) -> bool {
        self.magic.load(Ordering::Acquire) == SHARED_MAGIC
            && self.version.load(Ordering::Acquire) == ABI_VERSION
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn published_routes_round_trip() {
        let r = PublishedRoute {
            gsi: 10,
            device: 0,
            destination: 3,
            vector: 0x42,
        };
        assert_eq!(unpack_route(pack_route(r)), r);
        let max = PublishedRoute {
            gsi: u32::MAX,
            device: 255,
            destination: 255,
            vector: 255,
        };
        assert_eq!(unpack_route(pack_route(max)), max);
        for d in [
            PublishedDevice {
                device: 0,
                owner: Some(1),
                state: 1,
                vector: Some(0x42),
                gsi: Some(10),
                masked: false,
            },
            PublishedDevice {
                device: 7,
                owner: None,
                state: 3,
                vector: None,
                gsi: None,
                masked: true,
            },
        ] {
            assert_eq!(unpack_device(pack_device(d)), d);
        }
        assert!(core::mem::size_of::<Header>() == PAGE_SIZE);
    }

    #[test]
    fn layout_is_fixed() {
        // The offsets are the ABI: a change here must bump ABI_VERSION.
        assert_eq!(size_of::<Header>(), 4096);
        assert_eq!(size_of::<TscSyncLine>(), 64);
        assert_eq!(offset_of!(NodeSlot, tsc_sync) % 64, 0);
        assert_eq!(offset_of!(SharedRegion, nodes), 0x1000);
        assert_eq!(size_of::<NodeSlot>(), 4096);
        for i in 0..MAX_NODES {
            assert_eq!(slot_offset(i), 0x1000 + i * 0x1000);
            assert_eq!(
                offset_of!(SharedRegion, nodes) + i * size_of::<NodeSlot>(),
                slot_offset(i)
            );
        }
        assert_eq!(OUTBOXES_OFFSET, 0x5000);
        assert_eq!(size_of::<NodeOutbox>(), 64 + MAILBOX_SLOTS * 32);
        assert_eq!(OUTBOXES_SIZE, 0x3000);
        for i in 0..MAX_NODES {
            assert_eq!(outboxes_offset(i), 0x5000 + i * 0x3000);
        }
        assert_eq!(OPEN_OFFSET, 0x11000);
        assert_eq!(offset_of!(SharedRegion, debug_nic), OPEN_OFFSET);
        assert_eq!(offset_of!(Header, debug_nic_target), 0x44);
    }

    #[test]
    fn segments_cover_the_protected_part_in_page_units() {
        for node in 0..MAX_NODES {
            let segs = segments_for(node);
            let mut next = 0;
            for s in segs {
                assert_eq!(s.offset, next, "node {node}: {segs:?}");
                assert_eq!(s.offset % PAGE_SIZE, 0);
                assert_eq!(s.len % PAGE_SIZE, 0);
                assert!(s.len > 0);
                next = s.offset + s.len;
            }
            assert_eq!(next, OPEN_OFFSET, "node {node}");
        }
    }

    #[test]
    fn only_the_writer_and_node0_may_write() {
        use Access::*;
        let accesses = |node| -> std::vec::Vec<Access> {
            segments_for(node).iter().map(|s| s.access).collect()
        };
        // Node 0 writes the header and every slot (it supervises them), but
        // not another node's outboxes: nobody speaks for another node.
        assert_eq!(
            accesses(0),
            [
                ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadOnly,
                ReadOnly, ReadOnly
            ]
        );
        // Node 1: header read-only, its own slot and outboxes writable,
        // others' not.
        assert_eq!(
            accesses(1),
            [
                ReadOnly, ReadOnly, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly,
                ReadOnly
            ]
        );
        for node in 1..MAX_NODES {
            let segs = segments_for(node);
            assert_eq!(segs[0].access, ReadOnly, "header in node {node}");
            for i in 0..MAX_NODES {
                let expect = if i == node { ReadWrite } else { ReadOnly };
                assert_eq!(segs[1 + i].access, expect, "slot {i} in node {node}");
                assert_eq!(
                    segs[1 + MAX_NODES + i].access,
                    expect,
                    "outboxes {i} in node {node}"
                );
            }
        }
    }

    #[test]
    fn offsets_are_named() {
        assert_eq!(describe_offset(0x20), "the shared header");
        assert_eq!(describe_offset(0x2008), "a node slot");
        assert_eq!(describe_offset(0x5040), "another node's mailboxes");
        assert_eq!(describe_offset(OPEN_OFFSET as u64), "the debug NIC");
        assert_eq!(
            describe_offset(crate::debug_nic::dma_window_offset()),
            "the shared DMA window"
        );
    }

    #[test]
    fn a_mailbox_joins_the_receivers_index_and_the_senders_outbox() {
        let slot = unsafe_free_zeroed_slot();
        let outboxes = NodeOutboxes {
            to: [const { NodeOutbox::new() }; MAX_NODES],
        };
        // Node 2 -> node 1: node 1's index for sender 2, node 2's outbox to 1.
        let q = Queue::new(&slot.inbox[2], &outboxes.to[1]);
        q.push(mint_mailbox::Message::new(3, 7, [0; 3])).unwrap();
        let other = Queue::new(&slot.inbox[0], &outboxes.to[0]);
        assert!(other.is_empty());
        assert_eq!(q.pop().unwrap().map(|m| m.seq), Some(7));
    }

    #[test]
    fn incidents_are_counted_per_kind() {
        let slot = unsafe_free_zeroed_slot();
        slot.count(Incident::ForgedHalt);
        slot.count(Incident::ForgedHalt);
        slot.count(Incident::StuckIcr);
        assert_eq!(slot.incident_count(Incident::ForgedHalt), 2);
        assert_eq!(slot.incident_count(Incident::StuckIcr), 1);
        assert_eq!(slot.incident_count(Incident::MailboxDrainCapped), 0);
        for (i, k) in Incident::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn crash_reason_round_trip_and_truncation() {
        let slot: NodeSlot = unsafe_free_zeroed_slot();
        slot.set_state(NodeState::Running);
        slot.record_crash("page fault at 0x200000");
        assert_eq!(slot.state(), Some(NodeState::Crashed));
        let mut buf = [0u8; REASON_LEN];
        assert_eq!(slot.reason(&mut buf), "page fault at 0x200000");
        let long = "x".repeat(500);
        slot.record_crash(&long);
        assert_eq!(slot.reason(&mut buf).len(), REASON_LEN);
    }

    #[test]
    fn monitor_does_not_overwrite_a_reported_crash() {
        let slot = unsafe_free_zeroed_slot();
        slot.set_state(NodeState::Running);
        assert!(slot.declare_crashed_from(NodeState::Running, "heartbeat lost"));
        slot.set_state(NodeState::Halted);
        assert!(!slot.declare_crashed_from(NodeState::Running, "heartbeat lost"));
        assert_eq!(slot.state(), Some(NodeState::Halted));
    }

    #[test]
    fn garbage_state_is_rejected() {
        let slot = unsafe_free_zeroed_slot();
        slot.state.store(77, Ordering::Relaxed);
        assert_eq!(slot.state(), None);
    }

    fn unsafe_free_zeroed_slot() -> NodeSlot {
        NodeSlot {
            state: AtomicU32::new(0),
            pings_done: AtomicU32::new(0),
            heartbeat: AtomicU64::new(0),
            running_tsc: AtomicU64::new(0),
            reason_len: AtomicU32::new(0),
            reason: [const { AtomicU8::new(0) }; REASON_LEN],
            ping_rtt: [const { [const { AtomicU64::new(0) }; PINGS_PER_PEER] }; MAX_NODES],
            ping_count: [const { AtomicU32::new(0) }; MAX_NODES],
            incidents: [const { AtomicU32::new(0) }; Incident::COUNT],
            inbox: [const { ConsumerIndex::new() }; MAX_NODES],
            tsc_sync: TscSyncLine {
                request: AtomicU64::new(0),
                remote_tsc: AtomicU64::new(0),
                answer: AtomicU64::new(0),
            },
            mailbox_vector: AtomicU32::new(0),
            nic_vector: AtomicU32::new(0),
        }
    }

    #[test]
    fn a_published_mailbox_vector_is_used_only_when_it_is_a_device_vector() {
        let slot = unsafe_free_zeroed_slot();
        assert_eq!(slot.mailbox_vector(), DEFAULT_MAILBOX_VECTOR);
        slot.mailbox_vector.store(0x21, Ordering::Relaxed);
        assert_eq!(slot.mailbox_vector(), 0x21);
        for bad in [0x02, 0x1F, 0xF0, 0xFE, 0x1_21] {
            slot.mailbox_vector.store(bad, Ordering::Relaxed);
            assert_eq!(slot.mailbox_vector(), DEFAULT_MAILBOX_VECTOR, "{bad:#x}");
        }
    }

    #[test]
    fn a_published_nic_vector_is_used_only_when_it_is_a_device_vector() {
        let slot = unsafe_free_zeroed_slot();
        let default = crate::debug_nic::NIC_VECTOR.0;
        assert_eq!(slot.nic_vector(), default);
        slot.nic_vector.store(0x22, Ordering::Relaxed);
        assert_eq!(slot.nic_vector(), 0x22);
        for bad in [0x02, 0x1F, 0xF0, 0xFE, 0x1_22] {
            slot.nic_vector.store(bad, Ordering::Relaxed);
            assert_eq!(slot.nic_vector(), default, "{bad:#x}");
        }
    }
}
