//! (D) Connection-status notices: "attached", "detached", "owner crashed", sequenced and
//! acknowledged, kept in a bounded outbox that pushes back instead of dropping.
//!
//! A notice leaves the outbox only when its destination acknowledges it. Posting into a full
//! outbox is refused ([`OutboxFull`]): the caller must retry later (after flushing and
//! collecting acks); the hand-over state machine waits at its notice step instead of going on.
//! Flushing into a full mailbox stops at the first refused message for that destination and
//! keeps it, so notices reach each node in sequence order and none is lost. The mailbox is a
//! reliable queue in shared memory, so nothing is retransmitted; an ack only frees the slot
//! and tells the layer the node has acted on the notice.

use core::fmt;

use mint_abi::shared::MAX_NODES;
use mint_abi::{Gsi, NodeId, Vector};
use mint_mailbox::{Full, Message};

use crate::DeviceId;

/// Most notices one destination's outbox can hold (queued + sent, not yet acknowledged);
/// [`Outbox::with_capacity`] may set fewer.
pub const OUTBOX_CAPACITY: usize = 8;

/// Message kinds of notices and acks, as carried in [`Message::kind`]. They sit above the ABI's
/// own kinds (`mint_abi::MessageKind`, 1..=3); integration reserves this range there.
pub mod kind {
    /// Layer -> node: you own `device` now.
    pub const ATTACHED: u32 = 0x100;
    /// Layer -> node: `device` is no longer yours.
    pub const DETACHED: u32 = 0x101;
    /// Layer -> node: `device`'s owner crashed; see the new owner.
    pub const OWNER_CRASHED: u32 = 0x102;
    /// Node -> layer: every notice up to `seq` acted upon.
    pub const ACK: u32 = 0x180;
}

/// Why a node became a device's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachReason {
    /// A hand-over completed.
    Handover,
    /// The previous owner crashed; the device must be reset before use.
    CrashRecovery,
}

/// What a notice says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    Attached(AttachReason),
    Detached,
    /// `crashed` owned the device; `new_owner` has it now (or nobody).
    OwnerCrashed {
        crashed: NodeId,
        new_owner: Option<NodeId>,
    },
}

/// One connection-status notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Per destination, from 1, without gaps.
    pub seq: u32,
    pub kind: NoticeKind,
    pub device: DeviceId,
    /// [`NO_GSI`] when the device has no registered interrupt yet.
    pub gsi: Gsi,
    /// The device's vector as of this notice (0 with [`NO_GSI`]).
    pub vector: Vector,
}

/// The `gsi` of a notice about a device that has no registered interrupt.
pub const NO_GSI: Gsi = Gsi(u32::MAX);

/// A message that is not a valid notice (a peer's garbage, or another kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotANotice(pub Message);

const NO_NODE: u64 = 0xFF;

impl Notice {
    /// The mailbox message: `args = [device | gsi << 16 | vector << 48, reason-or-crashed,
    /// new owner (0xFF = none)]`.
    pub fn to_message(self) -> Message {
        let word0 =
            u64::from(self.device.0) | u64::from(self.gsi.0) << 16 | u64::from(self.vector.0) << 48;
        let (kind, a1, a2) = match self.kind {
            NoticeKind::Attached(AttachReason::Handover) => (kind::ATTACHED, 0, NO_NODE),
            NoticeKind::Attached(AttachReason::CrashRecovery) => (kind::ATTACHED, 1, NO_NODE),
            NoticeKind::Detached => (kind::DETACHED, 0, NO_NODE),
            NoticeKind::OwnerCrashed { crashed, new_owner } => (
                kind::OWNER_CRASHED,
                u64::from(crashed.0),
                new_owner.map_or(NO_NODE, |n| u64::from(n.0)),
            ),
        };
        Message::new(kind, self.seq, [word0, a1, a2])
    }

    /// Parses a mailbox message; anything malformed is refused.
    pub fn from_message(m: Message) -> Result<Notice, NotANotice> {
        let bad = NotANotice(m);
        let [w0, a1, a2] = m.args;
        let node = |v: u64| -> Result<Option<NodeId>, NotANotice> {
            match v {
                NO_NODE => Ok(None),
                n if (n as usize) < MAX_NODES => Ok(Some(NodeId(n as u8))),
                _ => Err(bad),
            }
        };
        let kind = match (m.kind, a1) {
            (kind::ATTACHED, 0) if a2 == NO_NODE => NoticeKind::Attached(AttachReason::Handover),
            (kind::ATTACHED, 1) if a2 == NO_NODE => {
                NoticeKind::Attached(AttachReason::CrashRecovery)
            }
            (kind::DETACHED, 0) if a2 == NO_NODE => NoticeKind::Detached,
            (kind::OWNER_CRASHED, c) => NoticeKind::OwnerCrashed {
                crashed: node(c)?.ok_or(bad)?,
                new_owner: node(a2)?,
            },
            _ => return Err(bad),
        };
        if m.seq == 0 || w0 >> 56 != 0 {
            return Err(bad);
        }
        Ok(Notice {
            seq: m.seq,
            kind,
            device: DeviceId(w0 as u16),
            gsi: Gsi((w0 >> 16) as u32),
            vector: Vector((w0 >> 48) as u8),
        })
    }
}

/// The acknowledgement message a node sends back for every notice up to `seq`.
pub fn ack_message(seq: u32) -> Message {
    Message::new(kind::ACK, seq, [0; 3])
}

/// Where flushed notices go: the mailbox to each node (plus the IPI that wakes it).
pub trait NoticeSink {
    /// Queues `message` for node `to`; `Err(Full)` when its mailbox has no room.
    fn try_send(&mut self, to: NodeId, message: Message) -> Result<(), Full>;
}

/// The destination's outbox is full: nothing was posted; retry after acks arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxFull {
    pub to: NodeId,
}

impl fmt::Display for OutboxFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "notice outbox to {} is full; retry after its acks",
            self.to
        )
    }
}

/// An acknowledgement that does not match anything sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckError {
    UnknownNode(NodeId),
    /// `seq` was never sent to `from` (ahead of what was sent, or already acknowledged).
    NotSent {
        from: NodeId,
        seq: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Queued,
    Sent,
}

/// Outbox counters, per destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounters {
    pub posted: u64,
    pub sent: u64,
    pub acked: u64,
    /// Posts refused because the outbox was full.
    pub refused_full: u64,
    /// Flushes stopped by a full mailbox.
    pub mailbox_full: u64,
    /// Notices discarded because the destination crashed.
    pub discarded: u64,
    /// Acks that matched nothing.
    pub bad_acks: u64,
}

#[derive(Clone, Copy, Debug)]
struct Queue {
    /// Oldest first; `len` used.
    slots: [(Notice, SlotState); OUTBOX_CAPACITY],
    len: usize,
    next_seq: u32,
    counters: OutboxCounters,
}

const EMPTY_NOTICE: Notice = Notice {
    seq: 0,
    kind: NoticeKind::Detached,
    device: DeviceId(0),
    gsi: Gsi(0),
    vector: Vector(0),
};

impl Queue {
    const fn new() -> Queue {
        Queue {
            slots: [(EMPTY_NOTICE, SlotState::Queued); OUTBOX_CAPACITY],
            len: 0,
            next_seq: 1,
            counters: OutboxCounters {
                posted: 0,
                sent: 0,
                acked: 0,
                refused_full: 0,
                mailbox_full: 0,
                discarded: 0,
                bad_acks: 0,
            },
        }
    }
}

/// The bounded outbox: per destination node, notices queued or sent and not yet acknowledged.
#[derive(Clone, Debug)]
pub struct Outbox {
    queues: [Queue; MAX_NODES],
    capacity: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// An outbox of [`OUTBOX_CAPACITY`] notices per destination.
    pub const fn new() -> Outbox {
        Self::with_capacity(OUTBOX_CAPACITY)
    }

    /// An outbox of `capacity` notices per destination (clamped to 1..=[`OUTBOX_CAPACITY`]).
    pub const fn with_capacity(capacity: usize) -> Outbox {
        let capacity = if capacity == 0 {
            1
        } else if capacity > OUTBOX_CAPACITY {
            OUTBOX_CAPACITY
        } else {
            capacity
        };
        Outbox {
            queues: [Queue::new(); MAX_NODES],
            capacity,
        }
    }

    /// Room left for `to` (0 for an unknown node).
    pub fn room(&self, to: NodeId) -> usize {
        self.queues
            .get(to.index())
            .map_or(0, |q| self.capacity - q.len)
    }

    /// Posts a notice for `to`, assigning its sequence number (returned).
    pub fn post(
        &mut self,
        to: NodeId,
        kind: NoticeKind,
        device: DeviceId,
        gsi: Gsi,
        vector: Vector,
    ) -> Result<u32, OutboxFull> {
        let Some(q) = self.queues.get_mut(to.index()) else {
            return Err(OutboxFull { to });
        };
        if q.len >= self.capacity {
            q.counters.refused_full += 1;
            return Err(OutboxFull { to });
        }
        let seq = q.next_seq;
        q.next_seq = q.next_seq.wrapping_add(1).max(1);
        q.slots[q.len] = (
            Notice {
                seq,
                kind,
                device,
                gsi,
                vector,
            },
            SlotState::Queued,
        );
        q.len += 1;
        q.counters.posted += 1;
        Ok(seq)
    }

    /// Sends queued notices in order; per destination, stops at the first full mailbox.
    /// Returns how many were sent.
    pub fn flush(&mut self, sink: &mut impl NoticeSink) -> usize {
        let mut sent = 0;
        for (i, q) in self.queues.iter_mut().enumerate() {
            let to = NodeId(i as u8);
            for slot in q.slots[..q.len].iter_mut() {
                if slot.1 == SlotState::Sent {
                    continue;
                }
                match sink.try_send(to, slot.0.to_message()) {
                    Ok(()) => {
                        slot.1 = SlotState::Sent;
                        q.counters.sent += 1;
                        sent += 1;
                    }
                    Err(Full) => {
                        q.counters.mailbox_full += 1;
                        break;
                    }
                }
            }
        }
        sent
    }

    /// `from` acknowledges every notice sent to it up to `seq`; `acked` sees each of them.
    pub fn ack(
        &mut self,
        from: NodeId,
        seq: u32,
        mut acked: impl FnMut(&Notice),
    ) -> Result<usize, AckError> {
        let Some(q) = self.queues.get_mut(from.index()) else {
            return Err(AckError::UnknownNode(from));
        };
        let covered = q.slots[..q.len]
            .iter()
            .take_while(|(n, s)| *s == SlotState::Sent && n.seq <= seq)
            .count();
        let matches_last = covered > 0 && q.slots[covered - 1].0.seq == seq;
        if !matches_last {
            q.counters.bad_acks += 1;
            return Err(AckError::NotSent { from, seq });
        }
        for (n, _) in &q.slots[..covered] {
            acked(n);
        }
        q.slots.copy_within(covered..q.len, 0);
        q.len -= covered;
        q.counters.acked += covered as u64;
        Ok(covered)
    }

    /// Drops everything for `node` (it crashed; its mailbox is reset when it restarts).
    /// Sequence numbers go on, so a stale ack cannot match a new notice.
    pub fn discard(&mut self, node: NodeId) {
        if let Some(q) = self.queues.get_mut(node.index()) {
            q.counters.discarded += q.len as u64;
            q.len = 0;
        }
    }

    /// Notices for `to`, oldest first, and whether each was sent.
    pub fn pending(&self, to: NodeId) -> impl Iterator<Item = (&Notice, bool)> {
        self.queues
            .get(to.index())
            .map(|q| &q.slots[..q.len])
            .unwrap_or(&[])
            .iter()
            .map(|(n, s)| (n, *s == SlotState::Sent))
    }

    /// Counters for `to`.
    pub fn counters(&self, to: NodeId) -> OutboxCounters {
        self.queues
            .get(to.index())
            .map_or_else(OutboxCounters::default, |q| q.counters)
    }
}
