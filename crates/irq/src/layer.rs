//! The management table and the layer's operations: registration, owner-only route / mask /
//! unmask / EOI, interrupt bookkeeping, node life cycle (crash handling) and storm control.
//!
//! Every operation names who asks (`by: NodeId`): the layer checks it against the table's
//! owner and refuses anything else with a typed error, counts the refusal on the device, and
//! reads the hardware entry back into the error so the caller can show it is unchanged.
//! Every write to the I/O APIC or an MSI is read back; a mismatch is a [`HardwareError`].

use core::fmt;

use mint_abi::node::NodeState;
use mint_abi::shared::MAX_NODES;
use mint_abi::{ApicId, Gsi, NodeId, Vector};

use crate::handover::{AbortReason, Handover, HandoverStep, Trace};
use crate::ioapic::{Pin, Polarity, RedirectionEntry, TriggerMode};
use crate::msi::MsiMessage;
use crate::notice::{
    AckError, AttachReason, NO_GSI, NoticeKind, NoticeSink, OUTBOX_CAPACITY, Outbox,
};
use crate::route::{RouteEntry, RouteTarget, RoutingTable};
use crate::vector::{VectorPool, VectorUse};
use crate::{DeviceId, Hardware, MAX_DEVICES};

/// Static configuration, from the partition plan and the I/O APIC's version register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// GSI of the I/O APIC's pin 0.
    pub gsi_base: Gsi,
    /// Pins the layer manages (at most what IOAPICVER reports).
    pub pins: u8,
    /// The layer's vector range, inclusive; every node's IDT routes it to the layer's stub.
    pub first_vector: Vector,
    pub last_vector: Vector,
    /// Who takes a crashed node's device when its own default owner cannot (node 0).
    pub fallback_owner: NodeId,
    /// EOIs in a row after which a level line that is still asserted is paused (0 = off).
    pub storm_threshold: u32,
    /// The layer ends level interrupts with the I/O APIC's EOI register (version >= 0x20, and
    /// the local APICs suppress their EOI broadcast, SVR bit 12). When false, the owner's local
    /// APIC EOI is broadcast to the I/O APIC by hardware before [`IrqLayer::eoi`] runs, which
    /// then only keeps the books; remote IRR the layer must clear itself (a crashed owner's) is
    /// cleared by toggling the masked pin to edge and back (Linux's fallback without an EOI
    /// register; KVM and QEMU clear remote IRR when a pin becomes edge).
    pub eoi_register: bool,
    /// Notices the outbox holds per destination (1..=8): how far a node may fall behind on
    /// acknowledgements before posting to it pushes back.
    pub notice_slots: u8,
}

impl Config {
    /// QEMU's machine: one I/O APIC of 24 pins at GSI 0; vectors 0x30..=0xEF (below mint's
    /// mailbox vector 0xF0 and above the timer's 0x20); node 0 as fallback; storms after 1000.
    pub const QEMU: Config = Config {
        gsi_base: Gsi(0),
        pins: 24,
        first_vector: Vector(0x30),
        last_vector: Vector(0xEF),
        fallback_owner: NodeId(0),
        storm_threshold: 1000,
        eoi_register: true,
        notice_slots: 8,
    };
}

/// A configuration or declaration the layer refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    NodeOutOfRange(NodeId),
    /// mint programs physical xAPIC destinations: 8 bits.
    ApicIdTooWide {
        node: NodeId,
        apic: ApicId,
    },
    DuplicateApic {
        node: NodeId,
        other: NodeId,
    },
    UnknownNode(NodeId),
    UnknownDevice(DeviceId),
    DuplicateDevice(DeviceId),
    TooManyDevices,
    /// The hardware has fewer pins than configured.
    PinsMissing {
        configured: u8,
        present: u8,
    },
}

/// How a device signals its interrupt, as its driver registers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqSource {
    /// An I/O APIC input.
    Gsi {
        gsi: Gsi,
        trigger: TriggerMode,
        polarity: Polarity,
    },
    /// A message-signalled interrupt (edge); the layer assigns it a GSI above the pins.
    Msi,
}

impl IrqSource {
    /// A PCI INTx line: level triggered, active low.
    pub const fn pci_intx(gsi: Gsi) -> IrqSource {
        IrqSource::Gsi {
            gsi,
            trigger: TriggerMode::Level,
            polarity: Polarity::ActiveLow,
        }
    }

    /// An ISA-style edge line, active high.
    pub const fn isa_edge(gsi: Gsi) -> IrqSource {
        IrqSource::Gsi {
            gsi,
            trigger: TriggerMode::Edge,
            polarity: Polarity::ActiveHigh,
        }
    }
}

/// A registered device's place in hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Pin {
        gsi: Gsi,
        pin: Pin,
        trigger: TriggerMode,
        polarity: Polarity,
    },
    Msi {
        gsi: Gsi,
    },
}

impl Binding {
    pub const fn gsi(self) -> Gsi {
        match self {
            Binding::Pin { gsi, .. } | Binding::Msi { gsi } => gsi,
        }
    }

    /// Level pins are the ones with remote IRR.
    pub const fn is_level(self) -> bool {
        matches!(
            self,
            Binding::Pin {
                trigger: TriggerMode::Level,
                ..
            }
        )
    }

    pub const fn trigger(self) -> TriggerMode {
        match self {
            Binding::Pin { trigger, .. } => trigger,
            Binding::Msi { .. } => TriggerMode::Edge,
        }
    }
}

/// Where a device is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Known from the plan, owned, no interrupt registered yet.
    Declared,
    /// Registered and owned.
    Attached,
    /// A hand-over is in progress.
    HandingOver,
    /// Its owner died and no node could take it; masked until a candidate runs again.
    Orphaned,
}

impl DeviceState {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceState::Declared => "declared",
            DeviceState::Attached => "attached",
            DeviceState::HandingOver => "handing-over",
            DeviceState::Orphaned => "orphaned",
        }
    }
}

/// Per-device counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Interrupts taken by the owner's CPU on the device's vector.
    pub delivered: u64,
    /// EOIs through the layer.
    pub eois: u64,
    /// Requests refused (not owner, bad hand-over, ...).
    pub refused: u64,
    /// Interrupts on the device's vector taken by a CPU that is not the owner's.
    pub misrouted: u64,
    /// Interrupts on the device's previous (draining) vector.
    pub stale: u64,
    pub handovers: u64,
    pub handovers_abandoned: u64,
    /// Edges re-delivered after a hand-over.
    pub reinjected: u64,
    pub storm_pauses: u64,
    /// Times the device was taken from a crashed owner.
    pub crash_resets: u64,
}

/// One row of the management table, as the shell's `devices` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub id: DeviceId,
    /// `None` while orphaned.
    pub owner: Option<NodeId>,
    pub default_owner: NodeId,
    pub state: DeviceState,
    pub binding: Option<Binding>,
    pub vector: Option<Vector>,
    /// The owner's wish (the pin may also be masked by a hand-over or a storm pause).
    pub masked: bool,
    pub storm_paused: bool,
    pub counters: DeviceCounters,
    /// Caller's timestamp of the last interrupt taken by the owner.
    pub last_interrupt_at: Option<u64>,
}

/// Layer-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCounters {
    /// Interrupts on a vector that is no device's.
    pub unknown_vectors: u64,
    /// Requests naming an unknown device or node.
    pub refused_unknown: u64,
    /// Acks that matched nothing.
    pub bad_acks: u64,
}

/// A write the hardware did not take (read back differs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HardwareError {
    PinReadBack {
        pin: Pin,
        wrote: RedirectionEntry,
        read: RedirectionEntry,
    },
    /// Remote IRR still set after the EOI the layer sent to clear it.
    RemoteIrrStuck { pin: Pin, vector: Vector },
    MsiReadBack {
        device: DeviceId,
        wrote: MsiMessage,
        read: Option<MsiMessage>,
    },
}

/// A node state change that could not be applied (fully).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStateError {
    /// Not a declared node: nothing changed.
    UnknownNode(NodeId),
    /// The state was recorded but a hardware write did not take; call
    /// [`IrqLayer::resync`] and report.
    Hardware(HardwareError),
}

impl From<HardwareError> for NodeStateError {
    fn from(e: HardwareError) -> Self {
        NodeStateError::Hardware(e)
    }
}

/// A request refused because `by` does not own `device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub device: DeviceId,
    pub by: NodeId,
    pub owner: Option<NodeId>,
    /// The device's entry as read back after refusing (unchanged), if it has a pin.
    pub entry: Option<RedirectionEntry>,
}

/// Why a registration was refused. The table and the hardware are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    UnknownDevice(DeviceId),
    UnknownNode(NodeId),
    NotOwner(Refusal),
    AlreadyRegistered {
        device: DeviceId,
        gsi: Gsi,
    },
    GsiOutOfRange {
        device: DeviceId,
        gsi: Gsi,
    },
    /// Another device has this GSI (mint does not share lines between owners).
    GsiTaken {
        gsi: Gsi,
        device: DeviceId,
    },
    VectorsExhausted(DeviceId),
    HandoverInProgress(DeviceId),
    /// The driver claims a source other than the one the plan's owner of the bus (node 0,
    /// from PCI and the MADT) declared for the device: another pin, trigger or polarity.
    SourceMismatch {
        device: DeviceId,
        expected: IrqSource,
        claimed: IrqSource,
    },
    Hardware(HardwareError),
}

/// Why a route / mask / unmask / EOI was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    UnknownDevice(DeviceId),
    UnknownNode(NodeId),
    NotOwner(Refusal),
    NotRegistered(DeviceId),
    /// The layer holds the pin's mask during a hand-over.
    HandoverInProgress(DeviceId),
    /// Interrupts may only go to the owner's own CPU.
    ForeignApic {
        device: DeviceId,
        apic: ApicId,
        node: NodeId,
    },
    Hardware(HardwareError),
}

/// A successful registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    pub gsi: Gsi,
    pub vector: Vector,
    pub pin: Option<Pin>,
    /// The routing table's generation after the new route.
    pub generation: u64,
}

/// (A) What an interrupt a CPU took is, per the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// The device's interrupt, on its owner's CPU: run its driver, then [`IrqLayer::eoi`].
    Device {
        device: DeviceId,
        trigger: TriggerMode,
    },
    /// The device's vector on a CPU that does not own it: counted; the layer already sent the
    /// I/O APIC EOI for a level pin so the pin is not left dead. The stub only EOIs its LAPIC.
    Misrouted {
        device: DeviceId,
        owner: Option<NodeId>,
    },
    /// The device's previous vector, still pending on the old owner after a hand-over:
    /// counted; the stub EOIs its LAPIC and does nothing else.
    Stale { device: DeviceId },
    /// No device's vector.
    Unknown,
}

/// What an EOI did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EoiOutcome {
    /// Nothing more pending.
    Done,
    /// The line was still asserted: delivered again at once.
    Redelivered,
    /// Redelivered `storm_threshold` times in a row: the pin is now masked until the owner
    /// unmasks it.
    StormPaused,
}

/// What a node state change did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Devices taken from the node (crash, halt).
    pub devices_reset: u8,
    /// Hand-overs from or to the node that were abandoned.
    pub handovers_aborted: u8,
    /// Orphaned devices the node (now running) took.
    pub adopted: u8,
    /// Devices left without an owner.
    pub orphaned: u8,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    apic: Option<ApicId>,
    state: NodeState,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Device {
    pub(crate) info: DeviceInfo,
    pub(crate) handover: Option<Handover>,
    pub(crate) last_trace: Option<Trace>,
    /// Notices owed to each node that did not fit in the outbox yet (latest state wins).
    owed: [Option<NoticeKind>; MAX_NODES],
    storm_in_a_row: u32,
    /// The source the declaring node found for the device (bus and firmware tables);
    /// `None`: the driver's word is taken.
    expected: Option<IrqSource>,
    /// Nodes a hand-over may give the device to (bit per node); `None`: any running node.
    pub(crate) candidates: Option<u8>,
}

impl Device {
    /// The mask the hardware must have: the owner's, a storm pause, or a hand-over's.
    fn effective_masked(&self) -> bool {
        self.info.masked
            || self.info.storm_paused
            || self.info.owner.is_none()
            || self.handover.is_some_and(|h| h.pin_masked)
    }
}

/// The neutral interrupt-management layer: the management table, the routing table, the
/// vector pool and the notice outbox. See the crate docs and `docs/INTERRUPTS.md`.
#[derive(Clone, Debug)]
pub struct IrqLayer {
    config: Config,
    nodes: [Node; MAX_NODES],
    pub(crate) devices: [Option<Device>; MAX_DEVICES],
    routes: RoutingTable,
    vectors: VectorPool,
    outbox: Outbox,
    counters: LayerCounters,
}

impl IrqLayer {
    /// An empty layer: no nodes, no devices.
    pub fn new(config: Config) -> IrqLayer {
        IrqLayer {
            config,
            nodes: [Node {
                apic: None,
                state: NodeState::Absent,
            }; MAX_NODES],
            devices: [None; MAX_DEVICES],
            routes: RoutingTable::new(),
            vectors: VectorPool::new(config.first_vector, config.last_vector),
            outbox: Outbox::with_capacity(config.notice_slots as usize),
            counters: LayerCounters::default(),
        }
    }

    /// Declares a node of the plan and its local APIC.
    pub fn declare_node(
        &mut self,
        node: NodeId,
        apic: ApicId,
        state: NodeState,
    ) -> Result<(), ConfigError> {
        if node.index() >= MAX_NODES {
            return Err(ConfigError::NodeOutOfRange(node));
        }
        if apic.0 > 0xFF {
            return Err(ConfigError::ApicIdTooWide { node, apic });
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if i != node.index() && n.apic == Some(apic) {
                return Err(ConfigError::DuplicateApic {
                    node,
                    other: NodeId(i as u8),
                });
            }
        }
        self.nodes[node.index()] = Node {
            apic: Some(apic),
            state,
        };
        Ok(())
    }

    /// Declares a device of the plan, owned by `owner` at boot, returned to `default_owner`
    /// when an owner crashes. Its driver may register any source; see
    /// [`IrqLayer::declare_device_at`] to pin it down.
    pub fn declare_device(
        &mut self,
        id: DeviceId,
        owner: NodeId,
        default_owner: NodeId,
    ) -> Result<(), ConfigError> {
        self.declare(id, owner, default_owner, None)
    }

    /// Declares a device whose interrupt source the caller knows (node 0 reads it from PCI and
    /// the MADT): a registration claiming any other source (GSI, trigger or polarity) is
    /// refused with [`RegisterError::SourceMismatch`], counted, and changes nothing.
    pub fn declare_device_at(
        &mut self,
        id: DeviceId,
        owner: NodeId,
        default_owner: NodeId,
        source: IrqSource,
    ) -> Result<(), ConfigError> {
        self.declare(id, owner, default_owner, Some(source))
    }

    fn declare(
        &mut self,
        id: DeviceId,
        owner: NodeId,
        default_owner: NodeId,
        expected: Option<IrqSource>,
    ) -> Result<(), ConfigError> {
        for n in [owner, default_owner] {
            if self.apic_of(n).is_none() {
                return Err(ConfigError::UnknownNode(n));
            }
        }
        if self.slot(id).is_some() {
            return Err(ConfigError::DuplicateDevice(id));
        }
        let Some(free) = self.devices.iter_mut().find(|d| d.is_none()) else {
            return Err(ConfigError::TooManyDevices);
        };
        *free = Some(Device {
            info: DeviceInfo {
                id,
                owner: Some(owner),
                default_owner,
                state: DeviceState::Declared,
                binding: None,
                vector: None,
                masked: true,
                storm_paused: false,
                counters: DeviceCounters::default(),
                last_interrupt_at: None,
            },
            handover: None,
            last_trace: None,
            owed: [None; MAX_NODES],
            storm_in_a_row: 0,
            expected,
            candidates: None,
        });
        Ok(())
    }

    /// Limits the nodes a hand-over may give `id` to (the plan's owner and standby nodes): a
    /// hand-over to any other node is refused with
    /// [`crate::HandoverError::NotACandidate`], counted, and changes nothing.
    pub fn allow_handover_to(&mut self, id: DeviceId, nodes: &[NodeId]) -> Result<(), ConfigError> {
        let mut mask = 0u8;
        for &n in nodes {
            if self.apic_of(n).is_none() {
                return Err(ConfigError::UnknownNode(n));
            }
            mask |= 1 << n.0;
        }
        let i = self.slot(id).ok_or(ConfigError::UnknownDevice(id))?;
        self.dev_mut(i).candidates = Some(mask);
        Ok(())
    }

    /// Masks every managed pin (the layer's starting state: nothing is routed).
    pub fn init(&mut self, hw: &mut impl Hardware) -> Result<(), ConfigError> {
        if hw.pins() < self.config.pins {
            return Err(ConfigError::PinsMissing {
                configured: self.config.pins,
                present: hw.pins(),
            });
        }
        for p in 0..self.config.pins {
            hw.write_entry(Pin(p), RedirectionEntry::MASKED);
        }
        Ok(())
    }

    /// Re-derives the hardware from the table: every device's entry (or MSI) is rewritten from
    /// its row, every other pin masked. For the next holder of the layer's lock after a node
    /// died holding it (see `docs/INTERRUPTS.md`): the table is the truth, the hardware follows.
    /// Returns how many pins and messages were rewritten.
    pub fn resync(&mut self, hw: &mut impl Hardware) -> Result<usize, HardwareError> {
        let mut owned = [false; 256];
        let mut n = 0;
        for i in 0..MAX_DEVICES {
            let Some(d) = self.devices[i] else { continue };
            if let (Some(b), Some(_)) = (d.info.binding, d.info.vector) {
                if let Binding::Pin { pin, .. } = b {
                    owned[usize::from(pin.0)] = true;
                }
                self.program(hw, i)?;
                n += 1;
            }
        }
        for p in 0..self.config.pins {
            if !owned[usize::from(p)] {
                hw.write_entry(Pin(p), RedirectionEntry::MASKED);
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- queries ----

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The management table's row for `id`.
    pub fn device(&self, id: DeviceId) -> Option<DeviceInfo> {
        self.slot(id).map(|i| self.dev(i).info)
    }

    /// Every row, in declaration order.
    pub fn devices(&self) -> impl Iterator<Item = DeviceInfo> + '_ {
        self.devices.iter().flatten().map(|d| d.info)
    }

    pub fn routes(&self) -> &RoutingTable {
        &self.routes
    }

    pub fn vectors(&self) -> &VectorPool {
        &self.vectors
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn counters(&self) -> LayerCounters {
        self.counters
    }

    pub fn node_state(&self, node: NodeId) -> Option<NodeState> {
        self.nodes
            .get(node.index())
            .filter(|n| n.apic.is_some())
            .map(|n| n.state)
    }

    pub fn apic_of(&self, node: NodeId) -> Option<ApicId> {
        self.nodes.get(node.index()).and_then(|n| n.apic)
    }

    /// The current hand-over's trace, or the last finished one.
    pub fn trace(&self, id: DeviceId) -> Option<&Trace> {
        let d = self.dev(self.slot(id)?);
        d.handover
            .as_ref()
            .map(|h| &h.trace)
            .or(d.last_trace.as_ref())
    }

    // ---- (C) registration ----

    /// A driver on `by` registers its device's interrupt and gets a vector. The pin (or MSI)
    /// is programmed to the owner's CPU and left masked: the owner unmasks it when its handler
    /// is ready.
    pub fn register(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        by: NodeId,
        source: IrqSource,
    ) -> Result<Registration, RegisterError> {
        let i = self.known(device, by).map_err(|e| match e {
            Unknown::Device(d) => RegisterError::UnknownDevice(d),
            Unknown::Node(n) => RegisterError::UnknownNode(n),
        })?;
        if self.dev(i).info.owner != Some(by) {
            let entry = match source {
                IrqSource::Gsi { gsi, .. } => self.pin_of_gsi(gsi).map(|p| hw.read_entry(p)),
                IrqSource::Msi => None,
            };
            return Err(RegisterError::NotOwner(self.refuse(hw, i, by, entry)));
        }
        let d = self.dev(i);
        if d.handover.is_some() {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(RegisterError::HandoverInProgress(device));
        }
        if let Some(b) = d.info.binding {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(RegisterError::AlreadyRegistered {
                device,
                gsi: b.gsi(),
            });
        }
        if let Some(expected) = d.expected
            && expected != source
        {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(RegisterError::SourceMismatch {
                device,
                expected,
                claimed: source,
            });
        }
        let binding = match source {
            IrqSource::Gsi {
                gsi,
                trigger,
                polarity,
            } => {
                let Some(pin) = self.pin_of_gsi(gsi) else {
                    self.dev_mut(i).info.counters.refused += 1;
                    return Err(RegisterError::GsiOutOfRange { device, gsi });
                };
                let taken = self
                    .devices()
                    .find(|o| o.binding.map(Binding::gsi) == Some(gsi))
                    .map(|o| o.id);
                if let Some(other) = taken {
                    self.dev_mut(i).info.counters.refused += 1;
                    return Err(RegisterError::GsiTaken { gsi, device: other });
                }
                Binding::Pin {
                    gsi,
                    pin,
                    trigger,
                    polarity,
                }
            }
            IrqSource::Msi => Binding::Msi {
                gsi: Gsi(self.config.gsi_base.0 + u32::from(self.config.pins) + i as u32),
            },
        };
        let Some(vector) = self.vectors.reserve(device) else {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(RegisterError::VectorsExhausted(device));
        };
        {
            let d = self.dev_mut(i);
            d.info.binding = Some(binding);
            d.info.vector = Some(vector);
            d.info.masked = true;
        }
        if let Err(e) = self.program(hw, i) {
            let d = self.dev_mut(i);
            d.info.binding = None;
            d.info.vector = None;
            self.vectors.release(vector);
            return Err(RegisterError::Hardware(e));
        }
        self.vectors.activate(vector);
        self.dev_mut(i).info.state = DeviceState::Attached;
        let generation = self.update_route(i);
        Ok(Registration {
            gsi: binding.gsi(),
            vector,
            pin: match binding {
                Binding::Pin { pin, .. } => Some(pin),
                Binding::Msi { .. } => None,
            },
            generation,
        })
    }

    // ---- owner-only operations ----

    /// Masks the device's interrupt (owner only).
    pub fn mask(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        by: NodeId,
    ) -> Result<(), OpError> {
        let i = self.owner_op(hw, device, by)?;
        self.dev_mut(i).info.masked = true;
        self.program(hw, i).map_err(OpError::Hardware)
    }

    /// Unmasks the device's interrupt (owner only); ends a storm pause. A level line still
    /// asserted is delivered at once. Edges raised while the pin was masked were dropped by
    /// the I/O APIC: the owner's driver re-checks its device after unmasking an edge pin.
    pub fn unmask(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        by: NodeId,
    ) -> Result<(), OpError> {
        let i = self.owner_op(hw, device, by)?;
        let d = self.dev_mut(i);
        d.info.masked = false;
        d.info.storm_paused = false;
        d.storm_in_a_row = 0;
        self.program(hw, i).map_err(OpError::Hardware)
    }

    /// Routes the device's interrupt to `apic` (owner only, and only to the owner's own CPU;
    /// mint nodes have one CPU each, so this re-programs the entry from the table). Returns
    /// the routing table's new generation.
    pub fn route(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        by: NodeId,
        apic: ApicId,
    ) -> Result<u64, OpError> {
        let i = self.owner_op(hw, device, by)?;
        if self.apic_of(by) != Some(apic) {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(OpError::ForeignApic {
                device,
                apic,
                node: by,
            });
        }
        self.program(hw, i).map_err(OpError::Hardware)?;
        Ok(self.update_route(i))
    }

    /// The owner's handler is done with the device's interrupt: for a level pin, EOI through
    /// the I/O APIC's EOI register (the only I/O APIC EOI in mint). Storm control: a level line
    /// redelivered `storm_threshold` times in a row is paused (masked) and reported.
    pub fn eoi(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        by: NodeId,
    ) -> Result<EoiOutcome, OpError> {
        let i = self.owner_op_any_state(hw, device, by)?;
        let d = self.dev_mut(i);
        d.info.counters.eois += 1;
        let (Some(binding), Some(vector)) = (d.info.binding, d.info.vector) else {
            return Err(OpError::NotRegistered(device));
        };
        let Binding::Pin {
            pin,
            trigger: TriggerMode::Level,
            ..
        } = binding
        else {
            return Ok(EoiOutcome::Done);
        };
        if self.config.eoi_register {
            hw.eoi(vector);
        }
        let again = hw.read_entry(pin).remote_irr;
        let threshold = self.config.storm_threshold;
        let d = self.dev_mut(i);
        if !again {
            d.storm_in_a_row = 0;
            return Ok(EoiOutcome::Done);
        }
        d.storm_in_a_row += 1;
        if threshold > 0 && d.storm_in_a_row >= threshold && d.handover.is_none() {
            d.info.storm_paused = true;
            d.info.counters.storm_pauses += 1;
            d.storm_in_a_row = 0;
            self.program(hw, i).map_err(OpError::Hardware)?;
            return Ok(EoiOutcome::StormPaused);
        }
        Ok(EoiOutcome::Redelivered)
    }

    // ---- (A) bookkeeping of a taken interrupt ----

    /// The layer's entry stub on a node's CPU (`apic`) took `vector` at time `now`: count and
    /// stamp it, and say whose it is. Misrouted level interrupts are EOIed here so their pin
    /// does not stay dead.
    pub fn on_interrupt(
        &mut self,
        hw: &mut impl Hardware,
        apic: ApicId,
        vector: Vector,
        now: u64,
    ) -> Dispatch {
        match self.vectors.usage(vector) {
            VectorUse::Active(device) => {
                let Some(i) = self.slot(device) else {
                    self.counters.unknown_vectors += 1;
                    return Dispatch::Unknown;
                };
                let owner = self.dev(i).info.owner;
                if owner.and_then(|o| self.apic_of(o)) == Some(apic) {
                    let d = self.dev_mut(i);
                    d.info.counters.delivered += 1;
                    d.info.last_interrupt_at = Some(now);
                    Dispatch::Device {
                        device,
                        trigger: d.info.binding.map_or(TriggerMode::Edge, Binding::trigger),
                    }
                } else {
                    let d = self.dev_mut(i);
                    d.info.counters.misrouted += 1;
                    if let Some(Binding::Pin {
                        pin,
                        trigger: TriggerMode::Level,
                        ..
                    }) = d.info.binding
                    {
                        self.clear_remote_irr(hw, pin, vector);
                    }
                    Dispatch::Misrouted { device, owner }
                }
            }
            VectorUse::Reserved(device) => {
                if let Some(i) = self.slot(device) {
                    self.dev_mut(i).info.counters.misrouted += 1;
                }
                Dispatch::Misrouted {
                    device,
                    owner: self.device(device).and_then(|d| d.owner),
                }
            }
            VectorUse::Draining { device, .. } => {
                if let Some(i) = self.slot(device) {
                    self.dev_mut(i).info.counters.stale += 1;
                }
                Dispatch::Stale { device }
            }
            VectorUse::Free | VectorUse::NotManaged => {
                self.counters.unknown_vectors += 1;
                Dispatch::Unknown
            }
        }
    }

    // ---- (D) notices ----

    /// Posts owed notices that now fit, then sends queued notices through `sink` (per node, in
    /// order, stopping at a full mailbox). Returns how many were sent.
    pub fn flush_notices(&mut self, sink: &mut impl NoticeSink) -> usize {
        self.pump_owed();
        self.outbox.flush(sink)
    }

    /// `from` acknowledges every notice up to `seq`. Acknowledging a notice about a device
    /// frees the device's previous vectors `from` held (draining): before it acknowledges, the
    /// node checks that its local APIC's IRR and ISR show nothing pending on any vector of that
    /// device it no longer owns. Usually the notice is "detached"; it is "owner crashed" or
    /// "attached" when a hand-over was cut short by the new owner's crash before its
    /// "detached" notice went out.
    pub fn ack_notice(&mut self, from: NodeId, seq: u32) -> Result<usize, AckError> {
        let mut about = [None; OUTBOX_CAPACITY];
        let mut k = 0;
        let r = self.outbox.ack(from, seq, |n| {
            about[k] = Some(n.device);
            k += 1;
        });
        if r.is_err() {
            self.counters.bad_acks += 1;
        }
        for d in about.into_iter().flatten() {
            self.vectors.drained(d, from);
        }
        self.pump_owed();
        r
    }

    /// True when notices are owed that did not fit in the outbox yet.
    pub fn notices_owed(&self) -> bool {
        self.devices
            .iter()
            .flatten()
            .any(|d| d.owed.iter().any(Option::is_some))
    }

    fn pump_owed(&mut self) {
        for i in 0..MAX_DEVICES {
            let Some(d) = self.devices[i] else { continue };
            let (Some(binding), vector) = (d.info.binding, d.info.vector) else {
                // Unregistered devices: notices still say who owns them.
                for n in 0..MAX_NODES {
                    if let Some(kind) = d.owed[n] {
                        let to = NodeId(n as u8);
                        if self
                            .outbox
                            .post(to, kind, d.info.id, NO_GSI, Vector(0))
                            .is_ok()
                        {
                            self.dev_mut(i).owed[n] = None;
                        }
                    }
                }
                continue;
            };
            for n in 0..MAX_NODES {
                if let Some(kind) = d.owed[n] {
                    let to = NodeId(n as u8);
                    let v = vector.unwrap_or(Vector(0));
                    if self
                        .outbox
                        .post(to, kind, d.info.id, binding.gsi(), v)
                        .is_ok()
                    {
                        self.dev_mut(i).owed[n] = None;
                    }
                }
            }
        }
    }

    // ---- node life cycle ----

    /// The caller (node 0's monitor) tells the layer a node's state. `Crashed`, `Halted` and
    /// `Absent` take the node's devices away (crash handling); `Running` lets it adopt
    /// orphaned devices whose default owner it is (or any, if it is the fallback owner).
    pub fn set_node_state(
        &mut self,
        hw: &mut impl Hardware,
        node: NodeId,
        state: NodeState,
        now: u64,
    ) -> Result<NodeReport, NodeStateError> {
        if self.apic_of(node).is_none() {
            self.counters.refused_unknown += 1;
            return Err(NodeStateError::UnknownNode(node));
        }
        self.nodes[node.index()].state = state;
        let mut report = NodeReport::default();
        match state {
            NodeState::Running => self.adopt(hw, node, &mut report)?,
            NodeState::Booting => {}
            NodeState::Crashed | NodeState::Halted | NodeState::Absent => {
                self.node_gone(hw, node, now, &mut report)?
            }
        }
        self.pump_owed();
        Ok(report)
    }

    fn node_gone(
        &mut self,
        hw: &mut impl Hardware,
        node: NodeId,
        now: u64,
        report: &mut NodeReport,
    ) -> Result<(), HardwareError> {
        self.outbox.discard(node);
        self.vectors.owner_gone(node);
        for i in 0..MAX_DEVICES {
            let Some(d) = self.devices[i] else { continue };
            let d = {
                let mut d = d;
                d.owed[node.index()] = None;
                self.devices[i] = Some(d);
                d
            };
            // Hand-overs touching the node.
            if let Some(h) = d.handover
                && (h.from == node || h.to == node)
            {
                if h.switched() {
                    if h.from == node {
                        // The old owner is gone; the rest of the hand-over goes on without it.
                        self.dev_mut(i).handover.as_mut().expect("some").from_gone = true;
                    } else {
                        self.end_handover(i, AbortReason::NodeCrashed(node), now);
                        report.handovers_aborted += 1;
                    }
                } else if h.from == node {
                    // The old owner died before the switch: do not restore its mask state
                    // (that would unmask towards a dead CPU); crash handling below masks and
                    // re-homes the device.
                    self.vectors.release(h.new_vector);
                    self.end_handover(i, AbortReason::NodeCrashed(node), now);
                    report.handovers_aborted += 1;
                } else {
                    self.abort_handover(hw, i, AbortReason::NodeCrashed(node), now)?;
                    report.handovers_aborted += 1;
                }
            }
            if self.dev(i).info.owner == Some(node) {
                self.take_from_crashed(hw, i, node, report)?;
            }
        }
        Ok(())
    }

    /// Masks the device, clears a remote IRR the dead owner left, frees its vector, and gives
    /// the device to its default owner or the fallback; tells everyone.
    fn take_from_crashed(
        &mut self,
        hw: &mut impl Hardware,
        i: usize,
        crashed: NodeId,
        report: &mut NodeReport,
    ) -> Result<(), HardwareError> {
        report.devices_reset += 1;
        let d = self.dev(i).info;
        if let (Some(binding), Some(vector)) = (d.binding, d.vector) {
            {
                let d = self.dev_mut(i);
                d.info.masked = true;
                d.info.counters.crash_resets += 1;
            }
            self.program(hw, i)?;
            if let Binding::Pin { pin, .. } = binding
                && hw.read_entry(pin).remote_irr
                && !self.clear_remote_irr(hw, pin, vector)
            {
                return Err(HardwareError::RemoteIrrStuck { pin, vector });
            }
            self.vectors.release(vector);
            self.dev_mut(i).info.vector = None;
        }
        let new_owner = self.candidate(d.default_owner, crashed);
        self.dev_mut(i).info.owner = new_owner;
        match new_owner {
            Some(o) => {
                self.rehome(hw, i)?;
                self.dev_mut(i).owed[o.index()] =
                    Some(NoticeKind::Attached(AttachReason::CrashRecovery));
            }
            None => {
                report.orphaned += 1;
                self.dev_mut(i).info.state = DeviceState::Orphaned;
                if let Some(b) = d.binding {
                    self.routes.remove(b.gsi());
                }
            }
        }
        for n in 0..MAX_NODES {
            let to = NodeId(n as u8);
            if to != crashed
                && Some(to) != new_owner
                && self.node_state(to) == Some(NodeState::Running)
            {
                self.dev_mut(i).owed[n] = Some(NoticeKind::OwnerCrashed { crashed, new_owner });
            }
        }
        Ok(())
    }

    /// Gives device `i` (owner already set) a fresh vector and programs it masked to the
    /// owner; without a free vector the device is orphaned.
    fn rehome(&mut self, hw: &mut impl Hardware, i: usize) -> Result<(), HardwareError> {
        let d = self.dev(i).info;
        let registered = d.binding.is_some();
        {
            let d = self.dev_mut(i);
            d.info.state = if registered {
                DeviceState::Attached
            } else {
                DeviceState::Declared
            };
            d.info.masked = true;
            d.info.storm_paused = false;
        }
        if !registered {
            return Ok(());
        }
        let Some(vector) = self.vectors.reserve(d.id) else {
            let dm = self.dev_mut(i);
            dm.info.owner = None;
            dm.info.state = DeviceState::Orphaned;
            return Ok(());
        };
        self.dev_mut(i).info.vector = Some(vector);
        self.program(hw, i)?;
        self.vectors.activate(vector);
        self.update_route(i);
        Ok(())
    }

    fn candidate(&self, default_owner: NodeId, gone: NodeId) -> Option<NodeId> {
        [default_owner, self.config.fallback_owner]
            .into_iter()
            .find(|&n| n != gone && self.node_state(n) == Some(NodeState::Running))
    }

    fn adopt(
        &mut self,
        hw: &mut impl Hardware,
        node: NodeId,
        report: &mut NodeReport,
    ) -> Result<(), HardwareError> {
        for i in 0..MAX_DEVICES {
            let Some(d) = self.devices[i] else { continue };
            if d.info.state != DeviceState::Orphaned
                || (d.info.default_owner != node && self.config.fallback_owner != node)
            {
                continue;
            }
            self.dev_mut(i).info.owner = Some(node);
            self.rehome(hw, i)?;
            if self.dev(i).info.owner == Some(node) {
                report.adopted += 1;
                self.dev_mut(i).owed[node.index()] =
                    Some(NoticeKind::Attached(AttachReason::CrashRecovery));
            }
        }
        Ok(())
    }

    // ---- internals shared with the hand-over ----

    pub(crate) fn slot(&self, id: DeviceId) -> Option<usize> {
        self.devices
            .iter()
            .position(|d| d.is_some_and(|d| d.info.id == id))
    }

    pub(crate) fn dev(&self, i: usize) -> &Device {
        self.devices[i].as_ref().expect("slot holds a device")
    }

    pub(crate) fn dev_mut(&mut self, i: usize) -> &mut Device {
        self.devices[i].as_mut().expect("slot holds a device")
    }

    pub(crate) fn vectors_mut(&mut self) -> &mut VectorPool {
        &mut self.vectors
    }

    pub(crate) fn outbox_mut(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    pub(crate) fn pin_of_gsi(&self, gsi: Gsi) -> Option<Pin> {
        let p = gsi.0.checked_sub(self.config.gsi_base.0)?;
        (p < u32::from(self.config.pins)).then_some(Pin(p as u8))
    }

    pub(crate) fn known(&mut self, device: DeviceId, by: NodeId) -> Result<usize, Unknown> {
        let Some(i) = self.slot(device) else {
            self.counters.refused_unknown += 1;
            return Err(Unknown::Device(device));
        };
        if self.apic_of(by).is_none() {
            self.counters.refused_unknown += 1;
            self.dev_mut(i).info.counters.refused += 1;
            return Err(Unknown::Node(by));
        }
        Ok(i)
    }

    /// Counts a refusal and reads the entry back for the error.
    pub(crate) fn refuse(
        &mut self,
        hw: &impl Hardware,
        i: usize,
        by: NodeId,
        entry: Option<RedirectionEntry>,
    ) -> Refusal {
        let d = self.dev_mut(i);
        d.info.counters.refused += 1;
        let entry = entry.or(match d.info.binding {
            Some(Binding::Pin { pin, .. }) => Some(hw.read_entry(pin)),
            _ => None,
        });
        Refusal {
            device: d.info.id,
            by,
            owner: d.info.owner,
            entry,
        }
    }

    fn owner_op(
        &mut self,
        hw: &impl Hardware,
        device: DeviceId,
        by: NodeId,
    ) -> Result<usize, OpError> {
        let i = self.owner_op_any_state(hw, device, by)?;
        if self.dev(i).handover.is_some() {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(OpError::HandoverInProgress(device));
        }
        Ok(i)
    }

    fn owner_op_any_state(
        &mut self,
        hw: &impl Hardware,
        device: DeviceId,
        by: NodeId,
    ) -> Result<usize, OpError> {
        let i = self.known(device, by).map_err(|e| match e {
            Unknown::Device(d) => OpError::UnknownDevice(d),
            Unknown::Node(n) => OpError::UnknownNode(n),
        })?;
        if self.dev(i).info.owner != Some(by) {
            return Err(OpError::NotOwner(self.refuse(hw, i, by, None)));
        }
        if self.dev(i).info.binding.is_none() {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(OpError::NotRegistered(device));
        }
        Ok(i)
    }

    /// Clears a level pin's remote IRR that no owner will EOI (EOI register, or the edge
    /// toggle); true when it reads back clear.
    fn clear_remote_irr(&mut self, hw: &mut impl Hardware, pin: Pin, vector: Vector) -> bool {
        if self.config.eoi_register {
            hw.eoi(vector);
        } else {
            let e = hw.read_entry(pin);
            hw.write_entry(
                pin,
                RedirectionEntry {
                    masked: true,
                    trigger: TriggerMode::Edge,
                    ..e
                },
            );
            hw.write_entry(pin, RedirectionEntry { masked: true, ..e });
            hw.write_entry(pin, e);
        }
        !hw.read_entry(pin).remote_irr
    }

    /// Writes device `i`'s entry (or MSI) from the table and reads it back.
    pub(crate) fn program(
        &mut self,
        hw: &mut impl Hardware,
        i: usize,
    ) -> Result<(), HardwareError> {
        let d = *self.dev(i);
        let (Some(binding), Some(vector)) = (d.info.binding, d.info.vector) else {
            return Ok(());
        };
        let masked = d.effective_masked();
        // An orphan keeps its last destination, masked.
        let destination = d
            .info
            .owner
            .and_then(|o| self.apic_of(o))
            .map_or(0, |a| a.0 as u8);
        match binding {
            Binding::Pin {
                pin,
                trigger,
                polarity,
                ..
            } => {
                let entry = RedirectionEntry::fixed(vector, destination, trigger, polarity, masked);
                hw.write_entry(pin, entry);
                let read = hw.read_entry(pin);
                if !read.same_writable(entry) {
                    return Err(HardwareError::PinReadBack {
                        pin,
                        wrote: entry,
                        read,
                    });
                }
            }
            Binding::Msi { .. } => {
                let msg = MsiMessage::to_apic(destination, vector);
                // Mask first when masking, unmask last when unmasking: never a live half-update.
                if masked {
                    hw.set_masked(d.info.id, true);
                }
                hw.write_message(d.info.id, msg);
                let read = hw.read_message(d.info.id);
                if read != Some(msg) {
                    return Err(HardwareError::MsiReadBack {
                        device: d.info.id,
                        wrote: msg,
                        read,
                    });
                }
                if !masked {
                    hw.set_masked(d.info.id, false);
                }
            }
        }
        Ok(())
    }

    /// Puts device `i`'s current route into the table; returns the new generation.
    pub(crate) fn update_route(&mut self, i: usize) -> u64 {
        let d = self.dev(i).info;
        let (Some(binding), Some(vector), Some(owner)) = (d.binding, d.vector, d.owner) else {
            return self.routes.generation();
        };
        let apic = self.apic_of(owner).expect("owners are declared nodes");
        let target = match binding {
            Binding::Pin { pin, .. } => RouteTarget::Pin(pin),
            Binding::Msi { .. } => RouteTarget::Msi(MsiMessage::to_apic(apic.0 as u8, vector)),
        };
        self.routes
            .set(RouteEntry {
                gsi: binding.gsi(),
                device: d.id,
                target,
                destination: apic,
                vector,
            })
            // The layer hands out GSIs, pins and vectors uniquely; a clash is a bug here.
            .expect("layer keeps routes consistent")
    }

    pub(crate) fn end_handover(&mut self, i: usize, reason: AbortReason, now: u64) {
        let d = self.dev_mut(i);
        if let Some(mut h) = d.handover.take() {
            h.trace.push(HandoverStep::Aborted(reason), now);
            d.last_trace = Some(h.trace);
            d.info.counters.handovers_abandoned += 1;
            if d.info.state == DeviceState::HandingOver {
                d.info.state = DeviceState::Attached;
            }
        }
    }
}

/// Unknown device or node (internal).
pub(crate) enum Unknown {
    Device(DeviceId),
    Node(NodeId),
}

impl fmt::Display for HardwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HardwareError::PinReadBack { pin, wrote, read } => write!(
                f,
                "{pin}: wrote {:#018x}, read back {:#018x}",
                wrote.to_raw(),
                read.to_raw()
            ),
            HardwareError::RemoteIrrStuck { pin, vector } => {
                write!(f, "{pin}: remote IRR still set after EOI of {vector}")
            }
            HardwareError::MsiReadBack { device, .. } => {
                write!(f, "{device}: MSI message did not read back")
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} does not own {} (owner: ", self.by, self.device)?;
        match self.owner {
            Some(o) => write!(f, "{o})"),
            None => f.write_str("none)"),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::UnknownDevice(d) => write!(f, "unknown device {d}"),
            OpError::UnknownNode(n) => write!(f, "unknown node {n}"),
            OpError::NotOwner(r) => write!(f, "refused: {r}"),
            OpError::NotRegistered(d) => write!(f, "{d} has no registered interrupt"),
            OpError::HandoverInProgress(d) => write!(f, "{d} is being handed over"),
            OpError::ForeignApic { device, apic, node } => {
                write!(f, "{device}: {apic} is not a CPU of {node}")
            }
            OpError::Hardware(e) => write!(f, "hardware: {e}"),
        }
    }
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::UnknownDevice(d) => write!(f, "unknown device {d}"),
            RegisterError::UnknownNode(n) => write!(f, "unknown node {n}"),
            RegisterError::NotOwner(r) => write!(f, "refused: {r}"),
            RegisterError::AlreadyRegistered { device, gsi } => {
                write!(f, "{device} is already registered on {gsi}")
            }
            RegisterError::GsiOutOfRange { device, gsi } => {
                write!(f, "{device}: {gsi} is not an input of the I/O APIC")
            }
            RegisterError::GsiTaken { gsi, device } => write!(f, "{gsi} belongs to {device}"),
            RegisterError::VectorsExhausted(d) => write!(f, "{d}: no free vector"),
            RegisterError::HandoverInProgress(d) => write!(f, "{d} is being handed over"),
            RegisterError::SourceMismatch {
                device,
                expected,
                claimed,
            } => write!(
                f,
                "{device}: claims {claimed:?}, but its declared source is {expected:?}"
            ),
            RegisterError::Hardware(e) => write!(f, "hardware: {e}"),
        }
    }
}
