//! Node life cycle states and the message kinds nodes exchange.

use core::fmt;

/// Where a node is in its life, as published in its [`crate::shared::NodeSlot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum NodeState {
    /// Not started (or not in the plan).
    Absent = 0,
    /// Started by node 0, not yet ready.
    Booting = 1,
    Running = 2,
    /// Stopped on request.
    Halted = 3,
    /// Stopped by a fault; the slot holds the reason.
    Crashed = 4,
}

impl NodeState {
    /// Decodes a peer-written value; unknown values are not trusted.
    pub fn from_raw(v: u32) -> Option<NodeState> {
        Some(match v {
            0 => NodeState::Absent,
            1 => NodeState::Booting,
            2 => NodeState::Running,
            3 => NodeState::Halted,
            4 => NodeState::Crashed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Absent => "absent",
            NodeState::Booting => "booting",
            NodeState::Running => "running",
            NodeState::Halted => "halted",
            NodeState::Crashed => "crashed",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a mailbox message means. Carried as `Message::kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MessageKind {
    /// args[0] = sender's TSC at send.
    Ping = 1,
    /// args[0] = the ping's TSC, echoed back.
    Pong = 2,
    /// Node 0 asks the receiver to stop (state becomes Halted).
    Halt = 3,
    /// A node asks the interrupt layer (run by node 0) for an operation on a
    /// device's interrupt: args[0] = operation | device << 8, args[1] = its
    /// argument (see the kernel's `irq` module). Only node 0 acts on it.
    IrqRequest = 4,
    /// Node 0's answer to an [`MessageKind::IrqRequest`] with the same `seq`:
    /// args[0] = operation | status << 8 | vector << 16 | gsi << 32,
    /// args[1] / args[2] = the device's redirection entry before / after.
    IrqReply = 5,
    /// Node 0 (running a hand-over) asks a node to act on a device:
    /// args[0] = [`HandoverCmd`] | device << 8 | vector << 16.
    HandoverCmd = 6,
    /// The node's answer to a [`MessageKind::HandoverCmd`] with the same
    /// `seq`: args[0] = 0 done, else an error code; args[1] = detail.
    HandoverAck = 7,
}

/// What node 0 asks of a node during a hand-over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HandoverCmd {
    /// The old owner: stop receiving, mask the device's causes (IMC); the
    /// receiver stays on, so frames keep landing in the shared ring.
    Quiesce = 1,
    /// The new owner: take over the ring from the device's registers and
    /// bind the handler to the new vector (before the pin is switched).
    Prepare = 2,
    /// The old owner, when a hand-over is cancelled after its quiesce:
    /// take the ring back, rebind the (old) vector, unmask the device
    /// (harmless if it never quiesced).
    Resume = 3,
    /// The new owner, when a hand-over is cancelled after its prepare:
    /// drop the adopted ring and the vector it bound.
    Abandon = 4,
}

impl HandoverCmd {
    pub fn from_raw(v: u8) -> Option<HandoverCmd> {
        match v {
            1 => Some(HandoverCmd::Quiesce),
            2 => Some(HandoverCmd::Prepare),
            3 => Some(HandoverCmd::Resume),
            4 => Some(HandoverCmd::Abandon),
            _ => None,
        }
    }
}

impl MessageKind {
    pub fn from_raw(v: u32) -> Option<MessageKind> {
        Some(match v {
            1 => MessageKind::Ping,
            2 => MessageKind::Pong,
            3 => MessageKind::Halt,
            4 => MessageKind::IrqRequest,
            5 => MessageKind::IrqReply,
            6 => MessageKind::HandoverCmd,
            7 => MessageKind::HandoverAck,
            _ => return None,
        })
    }
}

/// Faults a node can be told to inject into itself (`mint boot --fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FaultKind {
    None = 0,
    PageFault = 1,
    Panic = 2,
    /// A write into node 0's partition.
    WildWrite = 3,
    /// Spin with interrupts off.
    Hang = 4,
    InvalidOpcode = 5,
    /// Unbounded recursion until the kernel stack hits its guard page.
    StackOverflow = 6,
    /// A page fault whose delivery faults (the page-fault stack points
    /// into its guard page): the CPU raises #DF.
    DoubleFault = 7,
    /// The node sends itself NMIs in a loop.
    NmiStorm = 8,
    /// A write to the shared header, which only node 0 may write: mapped
    /// read-only in every other node, so it page-faults.
    HeaderWrite = 9,
    /// Send every peer a Halt request, which only node 0 may make: each
    /// refuses it and counts a forged request; then end this node.
    ForgeHalt = 10,
    /// Put a Halt into a mailbox node 0 produces (to another node, or to
    /// this one when it has no other peer): node 0's outboxes are mapped
    /// read-only in every other node, so it page-faults.
    MailboxForge = 11,
    /// Read the page right after the register space of the real e1000
    /// this node owns: only the register space is mapped, so it
    /// page-faults (a node without a real e1000 panics instead).
    NicOverreach = 12,
    /// Hidden (not in [`FaultKind::ALL`], for the interrupt layer's tests):
    /// raise a cause on the real e1000 this node owns (ICS) and panic in its
    /// interrupt handler before reading ICR or ending the interrupt, so the
    /// level pin is left with remote IRR set and the line asserted.
    NicMidHandler = 13,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::PageFault,
        FaultKind::Panic,
        FaultKind::WildWrite,
        FaultKind::Hang,
        FaultKind::InvalidOpcode,
        FaultKind::StackOverflow,
        FaultKind::DoubleFault,
        FaultKind::NmiStorm,
        FaultKind::HeaderWrite,
        FaultKind::ForgeHalt,
        FaultKind::MailboxForge,
        FaultKind::NicOverreach,
    ];

    pub fn from_raw(v: u32) -> Option<FaultKind> {
        Some(match v {
            0 => FaultKind::None,
            1 => FaultKind::PageFault,
            2 => FaultKind::Panic,
            3 => FaultKind::WildWrite,
            4 => FaultKind::Hang,
            5 => FaultKind::InvalidOpcode,
            6 => FaultKind::StackOverflow,
            7 => FaultKind::DoubleFault,
            8 => FaultKind::NmiStorm,
            9 => FaultKind::HeaderWrite,
            10 => FaultKind::ForgeHalt,
            11 => FaultKind::MailboxForge,
            12 => FaultKind::NicOverreach,
            13 => FaultKind::NicMidHandler,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::None => "none",
            FaultKind::PageFault => "page-fault",
            FaultKind::Panic => "panic",
            FaultKind::WildWrite => "wild-write",
            FaultKind::Hang => "hang",
            FaultKind::InvalidOpcode => "invalid-opcode",
            FaultKind::StackOverflow => "stack-overflow",
            FaultKind::DoubleFault => "double-fault",
            FaultKind::NmiStorm => "nmi-storm",
            FaultKind::HeaderWrite => "header-write",
            FaultKind::ForgeHalt => "forge-halt",
            FaultKind::MailboxForge => "mailbox-forge",
            FaultKind::NicOverreach => "nic-overreach",
            FaultKind::NicMidHandler => "nic-mid-handler",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        Self::ALL
            .into_iter()
            .chain([FaultKind::NicMidHandler])
            .find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_kinds_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::from_raw(k as u32), Some(k));
            assert_eq!(FaultKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(FaultKind::HeaderWrite as u32, 9);
        assert_eq!(
            FaultKind::parse("header-write"),
            Some(FaultKind::HeaderWrite)
        );
        // The hidden kind round-trips but is not offered.
        let hidden = FaultKind::NicMidHandler;
        assert_eq!(FaultKind::from_raw(hidden as u32), Some(hidden));
        assert_eq!(FaultKind::parse("nic-mid-handler"), Some(hidden));
        assert!(!FaultKind::ALL.contains(&hidden));
        assert_eq!(FaultKind::from_raw(14), None);
    }
}
