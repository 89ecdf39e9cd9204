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
/// A ping is lost when the peer answers nothing for this many of the
/// peer's own timer ticks (it ran, 1 s of its time, and did not reply), or
/// when its heartbeat stands still while this node's own timer ticks this
/// many times (the monitor's rule for a dead node). Counting in timer ticks
/// rather than a fixed TSC budget keeps a peer whose virtual CPU the host
/// has descheduled for a while, or an emulator slowed by host load, from
/// being declared unreachable; a hung or dead peer is still given up on.
const LOST_AFTER_TICKS: u64 = super::monitor::HEARTBEAT_TIMEOUT_TICKS;
/// Absolute bound on one round trip, whatever the heartbeats do.
const ABSOLUTE_TIMEOUT_MS: u64 = 10_000;

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
    let deadline = t0 + super::ms_to_ticks(ABSOLUTE_TIMEOUT_MS);
    let own_beat = || shared::slot(super::me()).heartbeat.load(Ordering::Relaxed);
    let peer_beat = || shared::slot(peer).heartbeat.load(Ordering::Relaxed);
    let (peer_at_send, mut peer_last, mut own_when_peer_moved) =
        (peer_beat(), peer_beat(), own_beat());
    let result = sent.ok().and_then(|()| {
        while !REPLIED.load(Ordering::Acquire) {
            let (own, peer_now) = (own_beat(), peer_beat());
            if peer_now != peer_last {
                (peer_last, own_when_peer_moved) = (peer_now, own);
            }
            let peer_ran_silent = peer_now.wrapping_sub(peer_at_send) > LOST_AFTER_TICKS;
            let peer_stood_still = own.wrapping_sub(own_when_peer_moved) > LOST_AFTER_TICKS;
            if peer_ran_silent || peer_stood_still || cpu::rdtsc() > deadline {
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
    let peers: alloc::vec::Vec<NodeId> = (0..super::node_count())
        .map(NodeId)
        .filter(|&p| p != me)
        .collect();
    ping_peers(&peers);
    shared::slot(me).pings_done.store(1, Ordering::Release);
}

/// Carries out node 0's late ping request (`NodeSlot::late_pings_asked`:
/// peers that came up after this node's round, the Linux nodes), once
/// per request; from a node's idle or receive loop (never an interrupt:
/// a ping waits for its pong's interrupt).
pub fn late_round() {
    let slot = shared::slot(super::me());
    let asked = slot.late_pings_asked.load(Ordering::Acquire);
    if asked == 0 || slot.late_pings_done.load(Ordering::Relaxed) == asked {
        return;
    }
    let peers: alloc::vec::Vec<NodeId> = (0..super::node_count())
        .filter(|&k| usize::from(k) < 32 && asked & (1 << k) != 0)
        .map(NodeId)
        .filter(|&p| p != super::me())
        .collect();
    ping_peers(&peers);
    slot.late_pings_done.store(asked, Ordering::Release);
}

/// Node 0, once the Linux nodes `late` are up: asks every other running
/// mint node to ping them (`late_round`) and waits for each, at most
/// `ms` in all; returns the nodes that did not answer in time.
pub fn ask_late_round(late: &[NodeId], mint_nodes: &[NodeId], ms: u64) -> alloc::vec::Vec<NodeId> {
    let mask = late
        .iter()
        .filter(|n| n.index() < 32)
        .fold(0u32, |m, n| m | 1 << n.index());
    if mask == 0 {
        return alloc::vec::Vec::new();
    }
    let asked: alloc::vec::Vec<NodeId> = mint_nodes
        .iter()
        .copied()
        .filter(|&n| n != super::me() && shared::slot(n).state() == Some(NodeState::Running))
        .collect();
    for &n in &asked {
        shared::slot(n)
            .late_pings_asked
            .store(mask, Ordering::Release);
    }
    let deadline = cpu::rdtsc() + super::ms_to_ticks(ms);
    let done = |n: NodeId| shared::slot(n).late_pings_done.load(Ordering::Acquire) == mask;
    while !asked.iter().all(|&n| done(n)) && cpu::rdtsc() < deadline {
        x86_64::instructions::hlt();
    }
    asked.into_iter().filter(|&n| !done(n)).collect()
}

/// Pings each of `peers` that is running `PINGS_PER_PEER` times (node 0
/// also calls it for the Linux nodes, which come up after its round).
pub fn ping_peers(peers: &[NodeId]) {
    let slot = shared::slot(super::me());
    for &peer in peers {
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
}

/// A polled mailbox ping-pong: round trips through the shared region's
/// mailbox lines alone, both cores spinning, no IPI (`mint bench`'s floor
/// of cross-core signalling in the guest). Node 0 asks with a Ping whose
/// `args[1]` is [`PINGPONG_START`] (`args[2]`: the rounds); the peer's
/// mailbox interrupt serves the session after its drain, interrupts off,
/// every wait bounded. A peer that does not know it answers with a plain
/// Pong, which node 0 reports as such.
const PINGPONG_START: u64 = 0x5050_5354;
const PINGPONG_READY: u64 = 0x5050_5244;
const PINGPONG_ROUND: u64 = 0x5050_524E;
/// Most rounds one session may ask for.
pub const PINGPONG_MAX_ROUNDS: u32 = 10_000;
/// How long either side waits for the other's next message.
const PINGPONG_WAIT_MS: u64 = 200;
/// How long node 0 waits for the peer to take its request (the peer's
/// virtual CPU may be halted, or busy in another interrupt).
const PINGPONG_READY_MS: u64 = 2_000;

/// Rounds node 0 asked for, until the mailbox interrupt serves them.
static PINGPONG_ASKED: AtomicU32 = AtomicU32::new(0);

/// Whether `msg` is node 0's request for a polled ping-pong (then it is
/// remembered for [`serve_pingpong`], not answered as a ping).
pub fn take_pingpong_request(from: NodeId, msg: &Message) -> bool {
    if from != NodeId(0) || msg.args[1] != PINGPONG_START {
        return false;
    }
    let rounds = u32::try_from(msg.args[2])
        .unwrap_or(u32::MAX)
        .min(PINGPONG_MAX_ROUNDS);
    PINGPONG_ASKED.store(rounds, Ordering::Release);
    true
}

/// Spins until `mailbox` holds a message, at most `ms`.
fn pop_within(
    mailbox: &mint_abi::shared::NodeMailbox<'_>,
    ms: u64,
) -> Result<Message, &'static str> {
    let deadline = cpu::rdtsc() + super::ms_to_ticks(ms);
    loop {
        match mailbox.pop() {
            Ok(Some(m)) => return Ok(m),
            Ok(None) => {}
            Err(_) => return Err("the mailbox is corrupt"),
        }
        if cpu::rdtsc() > deadline {
            return Err("no message in time");
        }
        core::hint::spin_loop();
    }
}

/// The peer's side of a requested session (from its mailbox interrupt,
/// interrupts off): READY, then one answer per round. Gives up at the
/// first late or unexpected message.
pub fn serve_pingpong() {
    let rounds = PINGPONG_ASKED.swap(0, Ordering::AcqRel);
    if rounds == 0 {
        return;
    }
    let me = super::me();
    let (to0, from0) = (
        shared::mailbox(NodeId(0), me),
        shared::mailbox(me, NodeId(0)),
    );
    let pong = |seq: u32, mark: u64| {
        Message::new(MessageKind::Pong as u32, seq, [0, mark, u64::from(rounds)])
    };
    if to0.push(pong(0, PINGPONG_READY)).is_err() {
        return;
    }
    for i in 0..rounds {
        match pop_within(&from0, PINGPONG_WAIT_MS) {
            Ok(m) if m.seq == i && m.args[1] == PINGPONG_ROUND => {}
            _ => return,
        }
        if to0.push(pong(i, PINGPONG_ROUND)).is_err() {
            return;
        }
    }
}

/// Node 0's side: `rounds` polled round trips to `peer`, in TSC ticks
/// (this node's TSC at both ends). Interrupts stay off throughout: this
/// node's own mailbox interrupt must not take the answers.
pub fn pingpong(peer: NodeId, rounds: u32) -> Result<alloc::vec::Vec<u64>, alloc::string::String> {
    let rounds = rounds.min(PINGPONG_MAX_ROUNDS);
    let mut out = alloc::vec::Vec::new();
    out.try_reserve_exact(rounds as usize)
        .map_err(|_| alloc::string::String::from("no memory for the samples"))?;
    let me = super::me();
    x86_64::instructions::interrupts::without_interrupts(|| {
        let (to, from) = (shared::mailbox(peer, me), shared::mailbox(me, peer));
        super::send(
            peer,
            Message::new(
                MessageKind::Ping as u32,
                0,
                [cpu::rdtsc(), PINGPONG_START, u64::from(rounds)],
            ),
        )
        .map_err(|e| alloc::format!("the request: {e}"))?;
        match pop_within(&from, PINGPONG_READY_MS) {
            Ok(m) if m.args[1] == PINGPONG_READY => {}
            Ok(m) => {
                return Err(alloc::format!(
                    "{peer} answered kind {} (args {:?}), not a ping-pong session: it does not serve one",
                    m.kind,
                    m.args
                ));
            }
            Err(e) => return Err(alloc::format!("{peer} did not start the session: {e}")),
        }
        for i in 0..rounds {
            let t0 = cpu::rdtsc();
            to.push(Message::new(
                MessageKind::Ping as u32,
                i,
                [t0, PINGPONG_ROUND, 0],
            ))
            .map_err(|_| alloc::format!("round {i}: the mailbox to {peer} is full"))?;
            match pop_within(&from, PINGPONG_WAIT_MS) {
                Ok(m) if m.seq == i && m.args[1] == PINGPONG_ROUND => out.push(cpu::rdtsc() - t0),
                Ok(m) => {
                    return Err(alloc::format!(
                        "round {i}: unexpected answer (seq {}, args {:?})",
                        m.seq,
                        m.args
                    ));
                }
                Err(e) => return Err(alloc::format!("round {i}: {e}")),
            }
        }
        Ok(())
    })?;
    Ok(out)
}
