//! The crate's tests, against the model in [`crate::testing`].
//!
//! - `formats`: redirection entries, register indices, MSI address/data against known values.
//! - `table`: routing table, vector pool, outbox, notices.
//! - `layer`: registration and refusals, owner-only operations, EOI and storm control,
//!   interrupt bookkeeping, crash handling.
//! - `handover`: the state machine, its trace and every refusal.
//! - `prop`: random event sequences against the model; the properties are defined there.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use mint_abi::node::NodeState;
use mint_abi::shared::MAX_NODES;
use mint_abi::{ApicId, Gsi, NodeId};
use mint_mailbox::{Full, Message};

use crate::testing::{Delivery, Machine};
use crate::{Config, DeviceId, IrqLayer, IrqSource, NoticeSink, Pin};

mod formats;
mod handover;
mod layer;
mod prop;
mod table;

pub(crate) const N0: NodeId = NodeId(0);
pub(crate) const N1: NodeId = NodeId(1);
pub(crate) const N2: NodeId = NodeId(2);
/// Deliberately unlike the node numbers, so a node/APIC mix-up shows.
pub(crate) const APICS: [ApicId; 3] = [ApicId(2), ApicId(5), ApicId(7)];

/// A level PCI INTx device on GSI 11, owned by node 0.
pub(crate) const NIC: DeviceId = DeviceId(0);
/// A level PCI INTx device on GSI 10, owned by node 1.
pub(crate) const DISK: DeviceId = DeviceId(1);
/// An edge device on GSI 4, owned by node 1, returned to node 0 on a crash.
pub(crate) const UART: DeviceId = DeviceId(2);
/// An MSI device owned by node 2.
pub(crate) const MSIDEV: DeviceId = DeviceId(3);

pub(crate) const NIC_GSI: Gsi = Gsi(11);
pub(crate) const DISK_GSI: Gsi = Gsi(10);
pub(crate) const UART_GSI: Gsi = Gsi(4);

pub(crate) fn source_of(d: DeviceId) -> IrqSource {
    match d {
        NIC => IrqSource::pci_intx(NIC_GSI),
        DISK => IrqSource::pci_intx(DISK_GSI),
        UART => IrqSource::isa_edge(UART_GSI),
        _ => IrqSource::Msi,
    }
}

pub(crate) fn pin_of(d: DeviceId) -> Option<Pin> {
    match source_of(d) {
        IrqSource::Gsi { gsi, .. } => Some(Pin(gsi.0 as u8)),
        IrqSource::Msi => None,
    }
}

/// Mailboxes of a few slots per node, so pushback happens.
pub(crate) struct Mailboxes {
    pub(crate) queues: Vec<VecDeque<Message>>,
    pub(crate) capacity: usize,
}

impl Mailboxes {
    pub(crate) fn new(capacity: usize) -> Mailboxes {
        Mailboxes {
            queues: (0..MAX_NODES).map(|_| VecDeque::new()).collect(),
            capacity,
        }
    }
}

impl NoticeSink for Mailboxes {
    fn try_send(&mut self, to: NodeId, message: Message) -> Result<(), Full> {
        let q = &mut self.queues[to.index()];
        if q.len() >= self.capacity {
            return Err(Full);
        }
        q.push_back(message);
        Ok(())
    }
}

/// A layer with three running nodes and the four devices declared, over a fresh machine.
pub(crate) struct Rig {
    pub(crate) layer: IrqLayer,
    pub(crate) hw: Machine,
    pub(crate) now: u64,
}

impl Rig {
    pub(crate) fn new() -> Rig {
        Self::with_config(Config::QEMU)
    }

    pub(crate) fn with_config(config: Config) -> Rig {
        let mut hw = Machine::new(24);
        let mut layer = IrqLayer::new(config);
        for (n, apic) in APICS.iter().enumerate() {
            layer
                .declare_node(NodeId(n as u8), *apic, NodeState::Running)
                .unwrap();
        }
        layer.declare_device(NIC, N0, N0).unwrap();
        layer.declare_device(DISK, N1, N1).unwrap();
        layer.declare_device(UART, N1, N0).unwrap();
        layer.declare_device(MSIDEV, N2, N2).unwrap();
        layer.init(&mut hw).unwrap();
        Rig {
            layer,
            hw,
            now: 1000,
        }
    }

    pub(crate) fn tick(&mut self) -> u64 {
        self.now += 10;
        self.now
    }

    /// Registers `d` by its owner and unmasks it.
    pub(crate) fn attach(&mut self, d: DeviceId) -> crate::Registration {
        let owner = self.layer.device(d).unwrap().owner.unwrap();
        let r = self
            .layer
            .register(&mut self.hw, d, owner, source_of(d))
            .unwrap();
        self.layer.unmask(&mut self.hw, d, owner).unwrap();
        r
    }

    pub(crate) fn take(&mut self) -> Vec<Delivery> {
        self.hw.take_deliveries()
    }
}
