//! This node's view of the shared region, mapped at `SHARED_VIRT`.

use mint_abi::NodeId;
use mint_abi::shared::{Header, NodeMailbox, NodeSlot, SHARED_VIRT, SharedRegion};

/// The shared region.
pub fn region() -> &'static SharedRegion {
    // SAFETY: every node maps the region at SHARED_VIRT before calling
    // this, for its whole life; `SharedRegion` is all atomics, so
    // concurrent access by other nodes is defined behaviour. Pages another
    // node writes are mapped read-only here: a store to them faults (a
    // contained crash of this node), it does not make the reference
    // unsound.
    unsafe { &*(SHARED_VIRT as *const SharedRegion) }
}

pub fn header() -> &'static Header {
    &region().header
}

pub fn slot(node: NodeId) -> &'static NodeSlot {
    &region().nodes[node.index()]
}

/// The mailbox carrying messages from `from` to `to`: `to`'s consumer
/// index (in its slot) and `from`'s outbox (on pages only `from` writes).
pub fn mailbox(to: NodeId, from: NodeId) -> NodeMailbox<'static> {
    region().mailbox(to.index(), from.index())
}
