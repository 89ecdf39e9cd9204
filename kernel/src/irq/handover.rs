//! Live hand-over, run by node 0: the commands to the old and new owner
//! (`HandoverCmd` / `HandoverAck`), the stray handler for unbound layer
//! vectors, the hand-over itself with its undo, and the `handover`
//! self-test's hooks.

use super::*;

/// The vectors the layer hands out, on every node: `Config::first_vector`
/// (above the debug NIC's) to the layer's last.
const LAYER_VECTORS: core::ops::RangeInclusive<u8> =
    (mint_abi::debug_nic::NIC_VECTOR.0 + 1)..=mint_irq::Config::QEMU.last_vector.0;

/// Binds every layer vector to the stray handler (before any driver binds
/// its own): an interrupt there is one this node was not routed.
pub fn bind_strays() {
    for v in LAYER_VECTORS {
        crate::arch::interrupts::register(Vector(v), on_stray);
    }
}

/// `vector` is no longer this node's (a detached device's old vector).
pub fn bind_stray(vector: Vector) {
    if LAYER_VECTORS.contains(&vector.0) {
        crate::arch::interrupts::register(vector, on_stray);
    }
}

fn on_stray(_frame: &mut crate::arch::interrupts::InterruptFrame) {
    crate::shared::region().real_nic.irq[node::me().index()]
        .stray
        .fetch_add(1, Ordering::Relaxed);
    apic::end_of_interrupt();
}

/// `HandoverAck` status codes.
const ACK_OK: u64 = 0;
const ACK_REFUSED: u64 = 1;
const ACK_MALFORMED: u64 = 2;

/// A node (its mailbox interrupt): node 0 asks it to act on a device.
pub fn on_handover_cmd(msg: Message) {
    use mint_abi::node::HandoverCmd;
    let w = msg.args[0];
    let (status, detail) = match (
        HandoverCmd::from_raw(w as u8),
        DeviceId((w >> 8) as u8 as u16),
    ) {
        (Some(cmd), NIC0) => match run_cmd(cmd, Vector((w >> 16) as u8)) {
            Ok(n) => (ACK_OK, n),
            Err(e) => {
                crate::println!("{}: hand-over: {e}", node::me());
                (ACK_REFUSED, 0)
            }
        },
        _ => (ACK_MALFORMED, 0),
    };
    send_to_node0(Message::new(
        MessageKind::HandoverAck as u32,
        msg.seq,
        [status, detail, 0],
    ));
}

/// How long a node keeps trying to put an answer into node 0's mailbox
/// (node 0 drains it in its mailbox interrupt, on its own core).
const ANSWER_RETRY_MS: u64 = 50;

/// Sends an answer (an ack) to node 0, retrying a full mailbox for up to
/// [`ANSWER_RETRY_MS`]; an answer that still does not fit is counted as an
/// incident (node 0 then times out waiting for it and undoes the step).
pub(super) fn send_to_node0(msg: Message) {
    let deadline = cpu::rdtsc() + node::ms_to_ticks(ANSWER_RETRY_MS);
    loop {
        match node::send(NodeId(0), msg) {
            Ok(()) | Err(node::SendError::IcrStuck(_)) => return,
            Err(node::SendError::Full) if cpu::rdtsc() < deadline => node::delay_us(20),
            Err(node::SendError::Full) => {
                crate::shared::slot(node::me()).count(mint_abi::shared::Incident::WaitExpired);
                crate::println!(
                    "{}: node 0's mailbox stayed full for {ANSWER_RETRY_MS} ms; answer {} dropped",
                    node::me(),
                    msg.seq
                );
                return;
            }
        }
    }
}

/// What a hand-over command does on this node.
/// Prepare's answer is 1 when this node receives on the NIC (the pin is
/// to be unmasked for it), 0 when not (node 0 outside `mint handover`).
fn run_cmd(cmd: mint_abi::node::HandoverCmd, vector: Vector) -> Result<u64, String> {
    use crate::nic::driver;
    use mint_abi::node::HandoverCmd;
    match cmd {
        HandoverCmd::Quiesce => driver::quiesce_real()
            .map(|n| n as u64)
            .map_err(String::from),
        HandoverCmd::Prepare => {
            driver::prepare_real(vector).map(|()| u64::from(node::receives_real_nic()))
        }
        HandoverCmd::Resume => driver::resume_real(vector),
        HandoverCmd::Abandon => {
            driver::abandon_real(vector);
            Ok(0)
        }
    }
}

/// The last `HandoverAck` from each node: its seq, status and detail.
static ACK_SEQ: [AtomicU32; mint_abi::shared::MAX_NODES] = [const { AtomicU32::new(0) }; 4];
static ACK_ARGS: [[AtomicU64; 2]; mint_abi::shared::MAX_NODES] =
    [const { [const { AtomicU64::new(0) }; 2] }; 4];

/// Node 0 (mailbox interrupt): `from` answered a hand-over command.
pub fn on_handover_ack(from: NodeId, msg: Message) {
    let i = from.index();
    ACK_ARGS[i][0].store(msg.args[0], Ordering::Relaxed);
    ACK_ARGS[i][1].store(msg.args[1], Ordering::Relaxed);
    ACK_SEQ[i].store(msg.seq, Ordering::Release);
}

/// One hand-over as node 0 ran it.
pub struct Round {
    pub from: NodeId,
    pub to: NodeId,
    /// The layer's trace (Requested .. Done), TSC stamps.
    pub trace: mint_irq::Trace,
    /// Node 0's own stamps: the old owner's quiesce answered, the new
    /// owner's prepare answered, both notices acknowledged.
    pub quiesced_at: u64,
    pub prepared_at: u64,
    pub acked_at: u64,
    /// Frames the old owner cleaned while quiescing.
    pub cleaned_on_quiesce: u64,
    /// Polls that found remote IRR still set.
    pub remote_irr_polls: u32,
}

/// Longest a node may take to answer a hand-over command or a notice.
const CMD_TIMEOUT_MS: u64 = 5_000;
/// Remote IRR polls before a hand-over is abandoned (each ~10 us apart).
const REMOTE_IRR_POLLS: u32 = 10_000;

/// Node 0: runs `cmd` on `node` (itself directly, another node over the
/// mailbox, waiting bounded for its answer while `idle` runs node 0's
/// chores). Returns the node's detail value.
fn command(
    node: NodeId,
    cmd: mint_abi::node::HandoverCmd,
    vector: Vector,
    idle: &mut dyn FnMut(),
) -> Result<u64, String> {
    if node == NodeId(0) {
        return x86_64::instructions::interrupts::without_interrupts(|| run_cmd(cmd, vector));
    }
    let seq = requests::NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    let word = cmd as u64 | u64::from(NIC0.0) << 8 | u64::from(vector.0) << 16;
    match node::send(
        node,
        Message::new(MessageKind::HandoverCmd as u32, seq, [word, 0, 0]),
    ) {
        // Queued even when the IPI's ICR is stuck: the peer sees it on its
        // next mailbox interrupt, so wait for the answer as usual.
        Ok(()) | Err(node::SendError::IcrStuck(_)) => {}
        Err(e) => return Err(alloc::format!("{cmd:?} to {node}: {e}")),
    }
    let deadline = cpu::rdtsc() + node::ms_to_ticks(CMD_TIMEOUT_MS);
    while ACK_SEQ[node.index()].load(Ordering::Acquire) != seq {
        if cpu::rdtsc() > deadline {
            return Err(alloc::format!(
                "{node} did not answer {cmd:?} within {CMD_TIMEOUT_MS} ms"
            ));
        }
        idle();
    }
    match ACK_ARGS[node.index()][0].load(Ordering::Relaxed) {
        ACK_OK => Ok(ACK_ARGS[node.index()][1].load(Ordering::Relaxed)),
        ACK_MALFORMED => Err(alloc::format!("{node} could not read {cmd:?}")),
        _ => Err(alloc::format!("{node} refused {cmd:?} (see its console)")),
    }
}

/// Polls of the layer's state machine that may fail (a write not read
/// back) before a hand-over is given up.
const POLL_ERRORS: u32 = 100;

/// How far a hand-over got, for undoing it.
#[derive(Clone, Copy)]
struct Reached {
    /// The old owner was asked to quiesce (it may have, even if its answer
    /// did not come).
    quiesce_sent: bool,
    /// The new owner was asked to prepare.
    prepare_sent: bool,
}

/// Node 0: gives up a hand-over that did not switch: the layer restores
/// the pin (`cancel_handover`, unless it abandoned it already), the new
/// owner drops what it prepared (`Abandon`), the old owner takes the
/// device back (`Resume`, harmless if it never quiesced). Returns `why`
/// with what each step did.
fn undo(
    why: String,
    from: NodeId,
    to: NodeId,
    vectors: (Vector, Vector),
    reached: Reached,
    layer_cancel: bool,
    idle: &mut dyn FnMut(),
) -> String {
    use mint_abi::node::HandoverCmd;
    let (old_vector, new_vector) = vectors;
    let mut s = why;
    if layer_cancel {
        match with_layer(|l| l.layer.cancel_handover(&mut l.hw, NIC0, from, cpu::rdtsc())) {
            Some(Ok(())) => {
                let _ = write!(s, "; hand-over cancelled, nic0 stays with {from}");
            }
            Some(Err(e)) => {
                let _ = write!(s, "; cancelling failed: {e}");
            }
            None => s.push_str("; no layer to cancel it"),
        }
    }
    if reached.prepare_sent
        && let Err(e) = command(to, HandoverCmd::Abandon, new_vector, idle)
    {
        let _ = write!(s, "; {to} abandoning: {e}");
    }
    if reached.quiesce_sent
        && let Err(e) = command(from, HandoverCmd::Resume, old_vector, idle)
    {
        let _ = write!(s, "; {from} resuming: {e}");
    }
    s
}

/// Node 0: hands nic0 from `from` to `to` while traffic flows: the layer
/// checks the request and reserves the new owner's vector; the old owner
/// quiesces (mask at the device, last clean); the new owner takes the ring
/// over and binds the new vector; the layer masks the pin, waits
/// (bounded) for remote IRR to clear, re-routes, and posts "detached" and
/// "attached"; node 0 waits until both are acknowledged (the new owner has
/// unmasked its device and polled the ring once), then sets the pin's mask
/// as the new owner wants it (unmasked where it receives). `idle` runs
/// between waits. A refusal changes nothing (the layer counted it); a
/// failure before the switch gives the device back to the old owner
/// (`undo`).
pub fn handover(from: NodeId, to: NodeId, idle: &mut dyn FnMut()) -> Result<Round, String> {
    use mint_abi::node::HandoverCmd;
    let vector = with_layer(|l| {
        l.layer
            .handover(NIC0, from, to, REMOTE_IRR_POLLS, cpu::rdtsc())
            .map(|()| l.layer.handover_status(NIC0).map(|s| s.new_vector))
    })
    .ok_or("this node does not run the interrupt layer")?
    .map_err(|e| alloc::format!("hand-over of nic0 from {from} to {to} refused: {e}"))?
    .ok_or("hand-over started but shows no status")?;
    let old_vector = with_layer(|l| l.layer.device(NIC0).and_then(|d| d.vector))
        .flatten()
        .unwrap_or(vector);
    let vectors = (old_vector, vector);
    let mut reached = Reached {
        quiesce_sent: true,
        prepare_sent: false,
    };
    let cleaned_on_quiesce = match command(from, HandoverCmd::Quiesce, vector, idle) {
        Ok(n) => n,
        Err(e) => return Err(undo(e, from, to, vectors, reached, true, idle)),
    };
    let quiesced_at = cpu::rdtsc();
    reached.prepare_sent = true;
    let wants_unmasked = match command(to, HandoverCmd::Prepare, vector, idle) {
        Ok(w) => w != 0,
        Err(e) => return Err(undo(e, from, to, vectors, reached, true, idle)),
    };
    let prepared_at = cpu::rdtsc();
    let q = with_layer(|l| {
        l.layer
            .handover_quiesced(&mut l.hw, NIC0, from, false, cpu::rdtsc())
    });
    if let Some(Err(e)) = q {
        return Err(undo(
            alloc::format!("{e}"),
            from,
            to,
            vectors,
            reached,
            true,
            idle,
        ));
    }
    if ASSERT_ON_SWITCH.swap(false, Ordering::AcqRel) {
        // Node 0 is the old owner here (it has the registers mapped).
        crate::nic::driver::raise_receive_cause();
    }
    let mut remote_irr_polls = 0;
    let mut poll_errors = 0;
    let deadline = cpu::rdtsc() + node::ms_to_ticks(CMD_TIMEOUT_MS);
    loop {
        let p = with_layer(|l| l.layer.handover_poll(&mut l.hw, NIC0, cpu::rdtsc()))
            .ok_or("the layer went away")?;
        let switched =
            with_layer(|l| l.layer.device(NIC0).and_then(|d| d.owner)).flatten() == Some(to);
        match p {
            Ok(mint_irq::HandoverProgress::Done) => break,
            Ok(mint_irq::HandoverProgress::AwaitingRemoteIrr { .. }) => {
                remote_irr_polls += 1;
                crate::node::delay_us(10);
            }
            Ok(mint_irq::HandoverProgress::AwaitingOutbox { to: full }) => {
                if cpu::rdtsc() > deadline {
                    // Switched already: the device is the new owner's; only
                    // the notices are late (they stay queued).
                    return Err(alloc::format!(
                        "nic0 switched to {to}, but the outbox to {full} stayed full for {CMD_TIMEOUT_MS} ms"
                    ));
                }
                flush_notices();
                idle();
            }
            Ok(mint_irq::HandoverProgress::AwaitingQuiesce) => {
                let why = String::from("the layer still awaits the quiesce");
                return Err(undo(why, from, to, vectors, reached, true, idle));
            }
            Err(mint_irq::HandoverError::RemoteIrrTimeout { polls, .. }) => {
                // Abandoned by the layer (pin restored): the old owner keeps it.
                let why = alloc::format!(
                    "remote IRR stayed set for {polls} polls: hand-over abandoned by the layer"
                );
                return Err(undo(why, from, to, vectors, reached, false, idle));
            }
            Err(e) if !switched && poll_errors < POLL_ERRORS => {
                // A write that did not read back is retried by the next poll.
                poll_errors += 1;
                if poll_errors == POLL_ERRORS {
                    let why = alloc::format!("hand-over of nic0: {e} ({POLL_ERRORS} polls)");
                    return Err(undo(why, from, to, vectors, reached, true, idle));
                }
                crate::node::delay_us(10);
            }
            Err(e) => return Err(alloc::format!("hand-over of nic0: {e}")),
        }
    }
    flush_notices();
    let deadline = cpu::rdtsc() + node::ms_to_ticks(CMD_TIMEOUT_MS);
    while !(notices::notices_acked(from) && notices::notices_acked(to)) {
        if cpu::rdtsc() > deadline {
            return Err(alloc::format!(
                "nic0 switched to {to}, but the attached/detached notices were not acknowledged within {CMD_TIMEOUT_MS} ms"
            ));
        }
        flush_notices();
        idle();
    }
    let acked_at = cpu::rdtsc();
    // The pin's mask follows the new owner's wish, not the old owner's
    // (node 0 keeps a NIC it does not receive on masked).
    let mask = with_layer(|l| {
        if wants_unmasked {
            l.layer.unmask(&mut l.hw, NIC0, to)
        } else {
            l.layer.mask(&mut l.hw, NIC0, to)
        }
    });
    if let Some(Err(e)) = mask {
        return Err(alloc::format!(
            "nic0 switched to {to}, but setting its pin's mask failed: {e}"
        ));
    }
    let trace = with_layer(|l| l.layer.trace(NIC0).copied())
        .flatten()
        .ok_or("the hand-over left no trace")?;
    Ok(Round {
        from,
        to,
        trace,
        quiesced_at,
        prepared_at,
        acked_at,
        cleaned_on_quiesce,
        remote_irr_polls,
    })
}

/// nic0 as the layer and the I/O APIC have it (the `handover` self-test).
pub struct Probe {
    pub owner: Option<NodeId>,
    pub refused: u64,
    /// The pin's entry, read back.
    pub entry: Option<RedirectionEntry>,
}

pub fn nic0_probe() -> Probe {
    with_layer(|l| {
        let d = l.layer.device(NIC0);
        Probe {
            owner: d.and_then(|d| d.owner),
            refused: d.map_or(0, |d| d.counters.refused),
            entry: match d.and_then(|d| d.binding) {
                Some(Binding::Pin { pin, .. }) => Some(l.hw.read_entry(pin)),
                _ => None,
            },
        }
    })
    .unwrap_or(Probe {
        owner: None,
        refused: 0,
        entry: None,
    })
}

/// The `handover` self-test: starts a hand-over of nic0 (not driven
/// further), asks for a second one, which must be refused, and cancels the
/// first. Returns the second's refusal.
pub fn second_handover_refused() -> Result<Round, String> {
    let Some(owner) = owner(NIC0) else {
        return Err(String::from("nic0 has no owner"));
    };
    let to = NodeId(if owner == NodeId(1) { 0 } else { 1 });
    with_layer(|l| {
        l.layer
            .handover(NIC0, owner, to, 1, cpu::rdtsc())
            .map_err(|e| alloc::format!("the first hand-over was refused: {e}"))?;
        let second = l.layer.handover(NIC0, owner, to, 1, cpu::rdtsc());
        let cancelled = l
            .layer
            .cancel_handover(&mut l.hw, NIC0, owner, cpu::rdtsc());
        match (second, cancelled) {
            (Err(e), Ok(())) => Err(alloc::format!("refused: {e}")),
            (Ok(()), _) => Ok(None),
            (Err(e), Err(c)) => Err(alloc::format!(
                "refused: {e}; but cancelling the first failed: {c}"
            )),
        }
    })
    .unwrap_or_else(|| Err(String::from("this node does not run the interrupt layer")))
    .and_then(|r: Option<Round>| r.ok_or_else(|| String::from("a second hand-over was accepted")))
}

/// The `handover` self-test: the next hand-over raises nic0's receive
/// cause (ICR unread) once the layer has masked the pin.
static ASSERT_ON_SWITCH: AtomicBool = AtomicBool::new(false);

pub fn assert_line_on_next_switch() {
    ASSERT_ON_SWITCH.store(true, Ordering::Release);
}
