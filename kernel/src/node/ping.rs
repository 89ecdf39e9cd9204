//! Timed round trips between nodes: a Ping message through the peer's
//! mailbox plus an IPI, answered by a Pong the same way. The round-trip time
//! is taken with this node's TSC from just before the send to the Pong's
//! arrival in this node's mailbox interrupt.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use mint_abi::NodeId;
use mint_abi::node::{MessageKind, NodeState};
use mint_abi::shared::{Incident, PINGS_PER_PEER};
use mint_mailbox::Message;

use crate::arch::cpu;
use crate::shared;

const NONE: u32 = u32::MAX;
/// A ping unanswered this long marks the peer unreachable for this round.
const TIMEOUT_MS: u64 = 50;

static PENDING_PEER: AtomicU8 = AtomicU8::new(0);
static PENDING_SEQ: AtomicU32 = AtomicU32::new(NONE);
static REPLY_TSC: AtomicU64 = AtomicU64::new(0);
static REPLIED: AtomicBool = AtomicBool::new(false);

/// Called from the mailbox interrupt when a Pong arrives.
pub fn on_pong(from: NodeId, seq: u32) {
    if from.0 == PENDING_PEER.load(Ordering::Acquire) && seq == PENDING_SEQ.load(Ordering::Acquire)
    {
        REPLY_TSC.store(cpu::rdtsc(), Ordering::Release);
        REPLIED.store(true, Ordering::Release);
    }
}

/// One round trip to `peer`: its time in TSC ticks, or `None` on timeout
/// or a full mailbox.
pub fn ping_once(peer: NodeId, seq: u32) -> Option<u64> {
    REPLIED.store(false, Ordering::Release);
    PENDING_PEER.store(peer.0, Ordering::Release);
    PENDING_SEQ.store(seq, Ordering::Release);
    let t0 = cpu::rdtsc();
    let sent = super::send(
        peer,
        Message::new(MessageKind::Ping as u32, seq, [t0, 0, 0]),
    );
    let deadline = t0 + super::ms_to_ticks(TIMEOUT_MS);
    let result = sent.ok().and_then(|()| {
        while !REPLIED.load(Ordering::Acquire) {
            if cpu::rdtsc() > deadline {
                shared::slot(super::me()).count(Incident::WaitExpired);
                return None;
            }
            core::hint::spin_loop();
        }
        Some(REPLY_TSC.load(Ordering::Acquire) - t0)
    });
    PENDING_SEQ.store(NONE, Ordering::Release);
    result
}

/// Pings every running peer `PINGS_PER_PEER` times, recording each RTT in
/// this node's slot; a peer that misses one is not pinged again.
pub fn round() {
    let me = super::me();
    let slot = shared::slot(me);
    for peer in (0..super::node_count()).map(NodeId).filter(|&p| p != me) {
        if shared::slot(peer).state() != Some(NodeState::Running) {
            continue;
        }
        for i in 0..PINGS_PER_PEER {
            let Some(rtt) = ping_once(peer, i as u32) else {
                break;
            };
            slot.ping_rtt[peer.index()][i].store(rtt, Ordering::Relaxed);
            slot.ping_count[peer.index()].store(i as u32 + 1, Ordering::Release);
        }
    }
    slot.pings_done.store(1, Ordering::Release);
}
