//! The interrupt layer's kernel half: one `mint_irq::IrqLayer` over the
//! real I/O APIC (`arch::ioapic`), run by node 0, its only writer.
//!
//! The layer's state lives in node 0's own memory behind a spin lock taken
//! with interrupts off; node 0's CPU runs every layer operation, and node 0
//! is the only node whose tables map the I/O APIC. After every operation
//! that changed it, node 0 publishes what the other nodes read in the
//! shared header (`publish`). Here: bring-up (`init_node0`), node life
//! cycle and crash handling (`observe_nodes`). Elsewhere:
//! - `requests`: operations another node asks for over the mailbox, run
//!   as that node (so a non-owner is refused and counted, the entry read
//!   before and after);
//! - `handover`: live hand-over with its commands to the two owners, its
//!   undo, the stray handler for unbound layer vectors;
//! - `notices`: attached / detached / owner-crashed notices and their acks;
//! - `publish`: the shared snapshot and its readers;
//! - `report`: the report's `irq` object and the shell's tables.
//!
//! The interrupt itself never passes through node 0: the I/O APIC sends it
//! straight to the owner's local APIC, whose EOI is broadcast back to the
//! I/O APIC by vector (QEMU's LAPIC has no EOI-broadcast suppression the
//! kernel could turn on: see `probe_directed_eoi` and docs/INTERRUPTS.md),
//! which clears remote IRR. The layer is therefore configured with
//! `eoi_register = false`, and its own `eoi` / `on_interrupt` bookkeeping is
//! not on the interrupt path: the owner's entry counts and stamps each
//! interrupt in its own line of the shared region (`RealNic::irq`).

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use mint_abi::node::{MessageKind, NodeState};
use mint_abi::{NodeId, Vector};
use mint_irq::request::{Op, Reply, Request, Status};
use mint_irq::{
    Binding, Config, DeviceId, IoApic, IrqLayer, OpError, RedirectionEntry, RegisterError,
};
use mint_mailbox::Message;
use spin::Mutex;

use crate::arch::ioapic::{IOAPIC_BASE, IoApicMmio};
use crate::arch::{apic, cpu};
use crate::node;

/// The plan's e1000 ("nic0").
pub const NIC0: DeviceId = DeviceId(0);

struct Layer {
    layer: IrqLayer,
    hw: IoApicMmio,
    /// What the local APICs and the I/O APIC offer (for the report).
    facts: Facts,
}

#[derive(Clone, Copy)]
struct Facts {
    directed_eoi: apic::DirectedEoi,
}

static LAYER: Mutex<Option<Layer>> = Mutex::new(None);

/// Runs `f` on the layer with interrupts off (node 0's mailbox handler
/// takes the same lock); `None` on a node that does not run the layer.
/// A routing table `f` changed is published for every node (`publish`).
fn with_layer<R>(f: impl FnOnce(&mut Layer) -> R) -> Option<R> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        LAYER.lock().as_mut().map(|l| {
            let r = f(l);
            publish::publish(&l.layer, &mut l.hw);
            r
        })
    })
}

mod handover;
mod notices;
mod publish;
mod report;
mod requests;

pub use handover::{
    Round, assert_line_on_next_switch, bind_stray, bind_strays, handover, nic0_probe,
    on_handover_ack, on_handover_cmd, second_handover_refused,
};
pub use notices::{flush_notices, is_notice, on_notice_message};
pub use publish::{published_device, published_json, published_route};
pub use report::{devices_table, entry_json, report_json, routes_table};
pub use requests::{on_reply, on_request, request};

/// Node 0, once its own tables map the I/O APIC: builds the layer, masks
/// every pin, declares the plan's nodes and the e1000 with its owner and
/// the source node 0 read from PCI and the MADT (the owner's registration
/// must claim exactly that source) and the nodes a hand-over may give it
/// to (the owner and the standby nodes); node 0 is its default owner, taking it
/// (masked) when its owner crashes or halts. Returns a line for node 0's
/// console.
pub fn init_node0(
    apic_ids: &[(NodeId, mint_abi::ApicId)],
    nic: Option<(NodeId, mint_irq::IrqSource, &[NodeId])>,
) -> Result<String, String> {
    // SAFETY: node 0's tables map the I/O APIC's frame uncached at its
    // physical address (`partition.rs`), and this is the layer's only
    // instance (stored below, behind the lock).
    let mut hw = unsafe { IoApicMmio::new(IOAPIC_BASE) };
    let version = hw.version();
    let directed_eoi = apic::probe_directed_eoi();
    let config = Config {
        pins: hw.pins().min(Config::QEMU.pins),
        // See the module docs: the owner's LAPIC EOI is broadcast.
        eoi_register: false,
        // Above the debug NIC's fixed vector (0x40), which its target's IDT
        // binds outside the layer.
        first_vector: Vector(mint_abi::debug_nic::NIC_VECTOR.0 + 1),
        ..Config::QEMU
    };
    let mut layer = IrqLayer::new(config);
    for &(id, apic_id) in apic_ids {
        let state = if id == NodeId(0) {
            NodeState::Running
        } else {
            NodeState::Booting
        };
        layer
            .declare_node(id, apic_id, state)
            .map_err(|e| alloc::format!("interrupt layer: {id}: {e:?}"))?;
    }
    if let Some((owner, source, candidates)) = nic {
        layer
            .declare_device_at(NIC0, owner, NodeId(0), source)
            .map_err(|e| alloc::format!("interrupt layer: nic0: {e:?}"))?;
        // Hand-overs only among the nodes that map its registers.
        layer
            .allow_handover_to(NIC0, candidates)
            .map_err(|e| alloc::format!("interrupt layer: nic0: {e:?}"))?;
    }
    layer
        .init(&mut hw)
        .map_err(|e| alloc::format!("interrupt layer: {e:?}"))?;
    let mut line = String::new();
    let _ = write!(
        line,
        "node0: interrupt layer: I/O APIC version {:#04x}, {} pins ({} managed, all masked), EOI register {}; local APIC version {:#x}, EOI-broadcast suppression {} (SVR bit 12 {}, probed in xAPIC mode before the APIC is switched to its final mode): level pins end by the owner's broadcast EOI",
        version.version,
        version.pins(),
        config.pins,
        if version.has_eoi_register() {
            "present"
        } else {
            "absent"
        },
        directed_eoi.version_register,
        if directed_eoi.advertised {
            "advertised"
        } else {
            "not advertised"
        },
        match directed_eoi.sticks {
            Some(true) => "sticks",
            Some(false) => "does not stick",
            None => "not tried: reserved in x2APIC mode",
        },
    );
    *LAYER.lock() = Some(Layer {
        layer,
        hw,
        facts: Facts { directed_eoi },
    });
    Ok(line)
}

/// Node 0's monitor: `node` reached `state`.
pub fn set_node_state(node: NodeId, state: NodeState) {
    with_layer(|l| {
        let _ = l.layer.set_node_state(&mut l.hw, node, state, cpu::rdtsc());
    });
}

/// Node 0: tells the layer about every node the shared slots show crashed,
/// halted or gone while the layer still counts it booting or running, so
/// the layer's crash handling runs (the node's pins masked, a remote IRR it
/// left cleared, its devices back to their default owner, node 0, which
/// keeps them masked). Prints one console line per device taken. Called by
/// node 0's monitor (`check_heartbeats`, and before the report).
pub fn observe_nodes() {
    let mut lines: alloc::vec::Vec<String> = alloc::vec::Vec::new();
    with_layer(|l| {
        for id in (1..mint_abi::shared::MAX_NODES as u8).map(NodeId) {
            let Some(known) = l.layer.node_state(id) else {
                continue;
            };
            let Some(now) = crate::shared::slot(id).state() else {
                continue;
            };
            let gone = matches!(
                now,
                NodeState::Crashed | NodeState::Halted | NodeState::Absent
            );
            if !gone || !matches!(known, NodeState::Running | NodeState::Booting) {
                continue;
            }
            // Each device it owned, with its entry as the dead node left it.
            let owned: alloc::vec::Vec<(DeviceId, Option<RedirectionEntry>)> = l
                .layer
                .devices()
                .filter(|d| d.owner == Some(id))
                .map(|d| {
                    let left = match d.binding {
                        Some(Binding::Pin { pin, .. }) => Some(l.hw.read_entry(pin)),
                        _ => None,
                    };
                    (d.id, left)
                })
                .collect();
            match l.layer.set_node_state(&mut l.hw, id, now, cpu::rdtsc()) {
                Ok(_) => {}
                Err(e) => {
                    let resynced = l.layer.resync(&mut l.hw);
                    lines.push(alloc::format!(
                        "node0: interrupt layer: {id} {}: {e:?}; hardware re-derived from the table: {resynced:?}",
                        now.as_str()
                    ));
                }
            }
            for (dev, left) in owned {
                let Some(d) = l.layer.device(dev) else {
                    continue;
                };
                let entry = match d.binding {
                    Some(Binding::Pin { pin, .. }) => {
                        let e = l.hw.read_entry(pin);
                        alloc::format!(
                            "entry {:#018x} read back: {}, remote IRR {} (it left {}, remote IRR {})",
                            e.to_raw(),
                            if e.masked { "masked" } else { "NOT masked" },
                            if e.remote_irr { "SET" } else { "clear" },
                            left.map_or(String::from("no entry"), |x| alloc::format!(
                                "{:#018x}",
                                x.to_raw()
                            )),
                            if left.is_some_and(|x| x.remote_irr) {
                                "set"
                            } else {
                                "clear"
                            },
                        )
                    }
                    _ => String::from("not registered: no pin to mask"),
                };
                lines.push(alloc::format!(
                    "node0: interrupt layer: {id} {} owning nic{}: now {} by {}, {entry}",
                    now.as_str(),
                    dev.0,
                    d.state.as_str(),
                    d.owner
                        .map_or(String::from("no node (orphaned)"), |o| alloc::format!(
                            "{o}"
                        )),
                ));
            }
        }
    });
    for line in lines {
        crate::println!("{line}");
    }
    // Everyone is told (crash handling posted "attached (crash recovery)"
    // to the new owner and "owner crashed" to every other running node).
    flush_notices();
}

/// Node 0: whether `device` is registered and its owner has unmasked it
/// (the owner's side of the bring-up is done).
pub fn owner_ready(device: DeviceId) -> bool {
    with_layer(|l| {
        l.layer
            .device(device)
            .is_some_and(|d| d.vector.is_some() && !d.masked)
    })
    .unwrap_or(false)
}

/// The e1000's current owner, as the layer has it.
pub fn owner(device: DeviceId) -> Option<NodeId> {
    with_layer(|l| l.layer.device(device).and_then(|d| d.owner)).flatten()
}
