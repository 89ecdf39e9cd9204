//! The layer's attached / detached / owner-crashed notices: node 0 sends
//! them over the mailbox (`NoticeSink`) and collects the acks; every node
//! acts on the ones it gets.

use super::*;

/// Whether `kind` is one of the layer's notice kinds.
pub fn is_notice(kind: u32) -> bool {
    use mint_irq::notice::kind;
    matches!(
        kind,
        kind::ATTACHED | kind::DETACHED | kind::OWNER_CRASHED | kind::ACK
    )
}

/// Counts a refused notice or ack on this node's line.
fn bad_notice() {
    crate::shared::region().real_nic.irq[node::me().index()]
        .bad_notices
        .fetch_add(1, Ordering::Relaxed);
}

/// A notice (on a node, from node 0) or an ack (on node 0, from a node).
pub fn on_notice_message(from: NodeId, msg: Message) {
    if msg.kind == mint_irq::notice::kind::ACK {
        if node::me() == NodeId(0) {
            let acked = with_layer(|l| l.layer.ack_notice(from, msg.seq));
            if !matches!(acked, Some(Ok(_))) {
                bad_notice();
            }
        }
        return;
    }
    if from != NodeId(0) {
        // Only node 0 runs the layer; a notice from anyone else is forged.
        bad_notice();
        return;
    }
    act_on_notice(msg);
    handover::send_to_node0(mint_irq::notice::ack_message(msg.seq));
}

/// What a node does with a notice about its devices.
fn act_on_notice(msg: Message) {
    use crate::nic::driver;
    use mint_irq::{NoticeKind, notice::Notice};
    let me = node::me();
    match Notice::from_message(msg) {
        Ok(n) if n.device == NIC0 => match n.kind {
            NoticeKind::Attached(mint_irq::AttachReason::CrashRecovery) => {
                // The layer keeps it masked: the new owner resets the
                // device before it unmasks (node 0, the default owner,
                // leaves it so: it runs the machine).
                crate::println!(
                    "{me}: nic0 is attached here after its owner crashed (gsi {}, {}), kept masked",
                    n.gsi.0,
                    n.vector
                );
            }
            NoticeKind::Attached(mint_irq::AttachReason::Handover) => {
                // The notice and the published table must agree: the
                // device's route now ends at this node's CPU, on the
                // vector the notice names.
                let here = node::apic_of(me).0;
                let owner = published_device(NIC0).and_then(|d| d.owner);
                match published_route(NIC0) {
                    Some(r)
                        if u32::from(r.destination) == here
                            && r.vector == n.vector.0
                            && owner == Some(me.0) => {}
                    other => {
                        // Refused: the device stays masked here.
                        bad_notice();
                        crate::println!(
                            "{me}: attached notice for nic0 on {} disagrees with the published table (route {other:?}, owner {owner:?}); not unmasking",
                            n.vector
                        );
                        return;
                    }
                }
                if let Err(e) = driver::attached_real() {
                    crate::println!("{me}: attached notice for nic0: {e}");
                }
            }
            NoticeKind::Detached => driver::detached_real(n.vector),
            NoticeKind::OwnerCrashed { crashed, new_owner } => crate::println!(
                "{me}: nic0's owner {crashed} crashed; now owned by {}",
                new_owner.map_or(String::from("nobody"), |o| alloc::format!("{o}"))
            ),
        },
        _ => {
            bad_notice();
        }
    }
}

/// Node 0's way out for the layer's notices: the mailbox to each node
/// (plus its IPI); notices to node 0 itself are kept for after the layer's
/// lock is released (acting on one takes the lock again).
struct MailboxSink {
    local: alloc::vec::Vec<Message>,
}

impl mint_irq::NoticeSink for MailboxSink {
    fn try_send(&mut self, to: NodeId, message: Message) -> Result<(), mint_mailbox::Full> {
        if to == NodeId(0) {
            self.local.push(message);
            return Ok(());
        }
        match node::send(to, message) {
            Ok(()) => Ok(()),
            Err(node::SendError::Full) => Err(mint_mailbox::Full),
            // Queued; the peer sees it on its next mailbox interrupt.
            Err(node::SendError::IcrStuck(_)) => Ok(()),
        }
    }
}

/// Node 0: sends the notices the layer has queued; acts on its own.
pub fn flush_notices() -> usize {
    let mut sink = MailboxSink {
        local: alloc::vec::Vec::new(),
    };
    let sent = with_layer(|l| l.layer.flush_notices(&mut sink)).unwrap_or(0);
    for msg in sink.local {
        act_on_notice(msg);
        with_layer(|l| {
            if l.layer.ack_notice(NodeId(0), msg.seq).is_err() {
                bad_notice();
            }
        });
    }
    sent
}

/// Whether every notice sent to `node` is acknowledged.
pub(super) fn notices_acked(node: NodeId) -> bool {
    with_layer(|l| l.layer.outbox().pending(node).next().is_none()).unwrap_or(true)
}
