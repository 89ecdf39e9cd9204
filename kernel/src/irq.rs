//! The interrupt layer's kernel half: one `mint_irq::IrqLayer` over the
//! real I/O APIC (`arch::ioapic`), run by node 0.
//!
//! Placement (this slice): the layer's state lives in node 0's own memory,
//! behind a spin lock taken with interrupts off, and node 0's CPU runs
//! every layer operation. Node 0 is the only node whose tables map the I/O
//! APIC. Another node asks for an operation on a device it owns with a
//! `MessageKind::IrqRequest` mailbox message (`mint_irq::request`); node 0
//! runs it in its mailbox interrupt, as the asking node (`by`), so a node
//! that does not own the device is refused by the layer, the refusal is
//! counted on the device, and the reply carries the device's entry as read
//! before and after (unchanged).
//!
//! The interrupt itself never passes through node 0: the I/O APIC sends it
//! straight to the owner's local APIC, whose EOI is broadcast back to the
//! I/O APIC by vector (QEMU's LAPIC has no EOI-broadcast suppression the
//! kernel could turn on: see `probe_directed_eoi` and docs/INTERRUPTS.md),
//! which clears remote IRR. The layer is therefore configured with
//! `eoi_register = false`, and its own `eoi` / `on_interrupt` bookkeeping is
//! not on the interrupt path in this slice: the owner's driver counts its
//! interrupts (`RunControl::interrupts`).

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
            publish(&l.layer);
            r
        })
    })
}

/// The layer generation last published.
static PUBLISHED: AtomicU64 = AtomicU64::new(u64::MAX);

/// Node 0: copies the routing table and the management table's rows into
/// the shared header when either changed (a sequence lock; node 0 is its
/// only writer, every node reads it: `published_route`,
/// `published_device`).
fn publish(layer: &IrqLayer) {
    use mint_abi::shared::{
        PUBLISHED_DEVICES, PUBLISHED_ROUTES, PublishedDevice, PublishedRoute, pack_device,
        pack_route,
    };
    let generation = layer.routes().generation();
    let mut rows = [0u64; PUBLISHED_DEVICES];
    let mut k = 0;
    for (row, d) in rows.iter_mut().zip(layer.devices()) {
        *row = pack_device(PublishedDevice {
            device: d.id.0 as u8,
            owner: d.owner.map(|o| o.0),
            state: match d.state {
                mint_irq::DeviceState::Declared => 0,
                mint_irq::DeviceState::Attached => 1,
                mint_irq::DeviceState::HandingOver => 2,
                mint_irq::DeviceState::Orphaned => 3,
            },
            vector: d.vector.map(|v| v.0),
            gsi: d.binding.map(|b| b.gsi().0 as u16),
            masked: d.masked,
        });
        k += 1;
    }
    // A device's row changes without a route change too (a mask, a
    // hand-over starting): publish when either moved.
    let same_devices = {
        let mut seen = PUBLISHED_DEVICES_SEEN.lock();
        let same = *seen == rows;
        *seen = rows;
        same
    };
    if PUBLISHED.swap(generation, Ordering::Relaxed) == generation && same_devices {
        return;
    }
    let p = &crate::shared::header().routes;
    let seq = p.generation.load(Ordering::Relaxed);
    p.generation.store(seq | 1, Ordering::Relaxed);
    core::sync::atomic::fence(Ordering::Release);
    let mut n = 0;
    for r in layer.routes().iter().take(PUBLISHED_ROUTES) {
        p.entries[n].store(
            pack_route(PublishedRoute {
                gsi: r.gsi.0,
                device: r.device.0 as u8,
                destination: r.destination.0 as u8,
                vector: r.vector.0,
            }),
            Ordering::Relaxed,
        );
        n += 1;
    }
    p.count.store(n as u32, Ordering::Relaxed);
    for (slot, row) in p.devices.iter().zip(rows) {
        slot.store(row, Ordering::Relaxed);
    }
    p.device_count.store(k as u32, Ordering::Relaxed);
    p.generation.store((seq | 1) + 1, Ordering::Release);
}

/// The device rows `publish` last wrote.
static PUBLISHED_DEVICES_SEEN: spin::Mutex<[u64; mint_abi::shared::PUBLISHED_DEVICES]> =
    spin::Mutex::new([0; mint_abi::shared::PUBLISHED_DEVICES]);

/// Any node: `device`'s row as node 0 last published it.
pub fn published_device(device: DeviceId) -> Option<mint_abi::shared::PublishedDevice> {
    use mint_abi::shared::{PUBLISHED_DEVICES, unpack_device};
    let p = &crate::shared::header().routes;
    let (_, found) = mint_irq::route::read_consistent(
        || p.generation.load(Ordering::Acquire),
        || {
            let n = (p.device_count.load(Ordering::Relaxed) as usize).min(PUBLISHED_DEVICES);
            let found = p.devices[..n]
                .iter()
                .map(|e| unpack_device(e.load(Ordering::Relaxed)))
                .find(|d| u16::from(d.device) == device.0);
            core::sync::atomic::fence(Ordering::Acquire);
            found
        },
        64,
    )?;
    found
}

/// Any node: the published route of `device`, read consistently (a
/// sequence lock against node 0's `publish`); `None` when it has none or
/// every try raced a rewrite.
pub fn published_route(device: DeviceId) -> Option<mint_abi::shared::PublishedRoute> {
    use mint_abi::shared::{PUBLISHED_ROUTES, unpack_route};
    let p = &crate::shared::header().routes;
    let (_, found) = mint_irq::route::read_consistent(
        || p.generation.load(Ordering::Acquire),
        || {
            let n = (p.count.load(Ordering::Relaxed) as usize).min(PUBLISHED_ROUTES);
            let found = p.entries[..n]
                .iter()
                .map(|e| unpack_route(e.load(Ordering::Relaxed)))
                .find(|r| u16::from(r.device) == device.0);
            core::sync::atomic::fence(Ordering::Acquire);
            found
        },
        64,
    )?;
    found
}

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

/// What an operation did, as the asking node learns it.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub reply: Reply,
    /// The layer's error, when node 0 ran it itself (for its console).
    pub error: Option<LayerError>,
}

#[derive(Clone, Copy, Debug)]
pub enum LayerError {
    Register(RegisterError),
    Op(OpError),
}

impl core::fmt::Display for LayerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayerError::Register(e) => write!(f, "{e}"),
            LayerError::Op(e) => write!(f, "{e}"),
        }
    }
}

fn pin_of(layer: &IrqLayer, device: DeviceId, op: Op) -> Option<mint_irq::Pin> {
    match layer.device(device).and_then(|d| d.binding) {
        Some(Binding::Pin { pin, .. }) => Some(pin),
        Some(Binding::Msi { .. }) => None,
        None => match op {
            Op::Register(mint_irq::IrqSource::Gsi { gsi, .. }) => {
                let base = layer.config().gsi_base.0;
                let p = gsi.0.checked_sub(base)?;
                (p < u32::from(layer.config().pins)).then_some(mint_irq::Pin(p as u8))
            }
            _ => None,
        },
    }
}

/// Runs `request` for `by` on node 0's layer.
fn apply(by: NodeId, request: Request) -> Outcome {
    with_layer(|l| {
        let pin = pin_of(&l.layer, request.device, request.op);
        let before = pin.map_or(0, |p| l.hw.read_entry(p).to_raw());
        let result = match request.op {
            Op::Register(source) => l
                .layer
                .register(&mut l.hw, request.device, by, source)
                .map(|_| ())
                .map_err(LayerError::Register),
            Op::Unmask => l
                .layer
                .unmask(&mut l.hw, request.device, by)
                .map_err(LayerError::Op),
            Op::Mask => l
                .layer
                .mask(&mut l.hw, request.device, by)
                .map_err(LayerError::Op),
            Op::Route(apic_id) => l
                .layer
                .route(&mut l.hw, request.device, by, mint_abi::ApicId(apic_id))
                .map(|_| ())
                .map_err(LayerError::Op),
        };
        let pin = pin_of(&l.layer, request.device, request.op);
        let after = pin.map_or(0, |p| l.hw.read_entry(p).to_raw());
        let info = l.layer.device(request.device);
        let status = match result {
            Ok(()) => Status::Ok,
            Err(LayerError::Register(RegisterError::NotOwner(_)))
            | Err(LayerError::Op(OpError::NotOwner(_))) => Status::NotOwner,
            Err(_) => Status::Refused,
        };
        Outcome {
            reply: Reply {
                status,
                vector: info.and_then(|d| d.vector),
                gsi: info.and_then(|d| d.binding).map(|b| b.gsi()),
                before,
                after,
            },
            error: result.err(),
        }
    })
    .unwrap_or(Outcome {
        reply: Reply {
            status: Status::Refused,
            vector: None,
            gsi: None,
            before: 0,
            after: 0,
        },
        error: None,
    })
}

/// Requests refused as malformed (node 0: garbage from a peer).
static MALFORMED: AtomicU32 = AtomicU32::new(0);

/// Node 0's mailbox handler: `from` asks for an operation.
pub fn on_request(from: NodeId, msg: Message) {
    let reply = match Request::decode(msg.args) {
        Ok(request) => apply(from, request).reply,
        Err(_) => {
            MALFORMED.fetch_add(1, Ordering::Relaxed);
            Reply {
                status: Status::Malformed,
                vector: None,
                gsi: None,
                before: 0,
                after: 0,
            }
        }
    };
    let _ = node::send(
        from,
        Message::new(MessageKind::IrqReply as u32, msg.seq, reply.encode()),
    );
}

/// The last reply this node got from node 0: its sequence number, then
/// its three arguments (written by this node's mailbox handler).
static REPLY_SEQ: AtomicU32 = AtomicU32::new(0);
static REPLY_ARGS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static NEXT_SEQ: AtomicU32 = AtomicU32::new(1);

/// This node's mailbox handler: node 0 answered.
pub fn on_reply(msg: Message) {
    for (slot, v) in REPLY_ARGS.iter().zip(msg.args) {
        slot.store(v, Ordering::Relaxed);
    }
    REPLY_SEQ.store(msg.seq, Ordering::Release);
}

/// How long a node waits for node 0's answer: node 0 may be busy with
/// interrupts off for a while (a TSC sync with another node takes up to
/// 500 ms, longer rounds on a loaded host), and a request that timed out
/// cannot simply be repeated (a second registration is refused).
const REPLY_TIMEOUT_MS: u64 = 10_000;

/// Asks the layer for `op` on `device` as this node: on node 0 directly,
/// elsewhere over the mailbox (waiting, bounded, for the answer).
pub fn request(device: DeviceId, op: Op) -> Result<Outcome, String> {
    let request = Request { device, op };
    let me = node::me();
    if me == NodeId(0) {
        return Ok(apply(me, request));
    }
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    node::send(
        NodeId(0),
        Message::new(MessageKind::IrqRequest as u32, seq, request.encode()),
    )
    .map_err(|e| alloc::format!("asking node 0's interrupt layer: {e}"))?;
    let deadline = cpu::rdtsc() + node::ms_to_ticks(REPLY_TIMEOUT_MS);
    while REPLY_SEQ.load(Ordering::Acquire) != seq {
        if cpu::rdtsc() > deadline {
            return Err(alloc::format!(
                "node 0's interrupt layer did not answer {} within {REPLY_TIMEOUT_MS} ms",
                op.as_str()
            ));
        }
        // The reply comes with an IPI, and the timer wakes this every
        // 10 ms: halt rather than spin (a spinning virtual CPU takes host
        // time node 0's needs to answer).
        if x86_64::instructions::interrupts::are_enabled() {
            x86_64::instructions::hlt();
        } else {
            core::hint::spin_loop();
        }
    }
    let args = [0, 1, 2].map(|i| REPLY_ARGS[i].load(Ordering::Relaxed));
    let reply = Reply::decode(args).ok_or("node 0 sent a reply this node cannot read")?;
    Ok(Outcome { reply, error: None })
}

/// The layer's state as JSON for node 0's report: the I/O APIC, each
/// device's row and counters, the routing table. `null` on other nodes.
pub fn report_json(s: &mut String) {
    let written = with_layer(|l| {
        let v = l.hw.version();
        let c = l.layer.config();
        let _ = write!(
            s,
            "{{\"ioapic\":{{\"version\":{},\"pins\":{},\"managed_pins\":{},\"eoi_register\":{}}},\"eoi\":\"{}\",\"lapic_directed_eoi\":{{\"advertised\":{},\"sticks\":{}}},\"malformed_requests\":{},\"refused_unknown\":{},\"devices\":[",
            v.version,
            v.pins(),
            c.pins,
            v.has_eoi_register(),
            if c.eoi_register {
                "ioapic_register"
            } else {
                "lapic_broadcast"
            },
            l.facts.directed_eoi.advertised,
            match l.facts.directed_eoi.sticks {
                Some(true) => "true",
                Some(false) => "false",
                None => "null",
            },
            MALFORMED.load(Ordering::Relaxed),
            l.layer.counters().refused_unknown,
        );
        for (i, d) in l.layer.devices().enumerate() {
            let entry = match d.binding {
                Some(Binding::Pin { pin, .. }) => Some(l.hw.read_entry(pin)),
                _ => None,
            };
            let _ = write!(
                s,
                "{}{{\"device\":\"nic{}\",\"owner\":{},\"state\":\"{}\",\"gsi\":{},\"vector\":{},\"trigger\":{},\"masked\":{},\"entry\":{},\"refused\":{},\"misrouted\":{},\"storm_pauses\":{},\"default_owner\":{},\"crash_resets\":{}}}",
                if i > 0 { "," } else { "" },
                d.id.0,
                d.owner
                    .map_or(String::from("null"), |o| alloc::format!("{}", o.0)),
                d.state.as_str(),
                d.binding
                    .map_or(String::from("null"), |b| alloc::format!("{}", b.gsi().0)),
                d.vector
                    .map_or(String::from("null"), |v| alloc::format!("{}", v.0)),
                d.binding.map_or("null", |b| if b.is_level() {
                    "\"level\""
                } else {
                    "\"edge\""
                }),
                d.masked,
                entry.map_or(String::from("null"), entry_json),
                d.counters.refused,
                d.counters.misrouted,
                d.counters.storm_pauses,
                d.default_owner.0,
                d.counters.crash_resets,
            );
        }
        let _ = write!(
            s,
            "],\"generation\":{},\"routes\":[",
            l.layer.routes().generation()
        );
        for (i, r) in l.layer.routes().iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"gsi\":{},\"device\":\"nic{}\",\"destination_apic\":{},\"vector\":{}}}",
                if i > 0 { "," } else { "" },
                r.gsi.0,
                r.device.0,
                r.destination.0,
                r.vector.0
            );
        }
        s.push_str("]}");
    });
    if written.is_none() {
        s.push_str("null");
    }
}

/// A redirection entry as JSON.
pub fn entry_json(e: RedirectionEntry) -> String {
    alloc::format!(
        "{{\"raw\":{},\"vector\":{},\"destination\":{},\"masked\":{},\"level\":{},\"active_low\":{},\"remote_irr\":{}}}",
        e.to_raw(),
        e.vector.0,
        e.destination,
        e.masked,
        e.trigger == mint_irq::TriggerMode::Level,
        e.polarity == mint_irq::Polarity::ActiveLow,
        e.remote_irr
    )
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

// ---- Hand-over: node 0 runs it; the old and new owners act on commands
// ---- (`MessageKind::HandoverCmd`) and on the layer's notices.

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
    let _ = node::send(
        NodeId(0),
        Message::new(
            MessageKind::HandoverAck as u32,
            msg.seq,
            [status, detail, 0],
        ),
    );
}

/// What a hand-over command does on this node.
fn run_cmd(cmd: mint_abi::node::HandoverCmd, vector: Vector) -> Result<u64, String> {
    use crate::nic::driver;
    use mint_abi::node::HandoverCmd;
    match cmd {
        HandoverCmd::Quiesce => driver::quiesce_real()
            .map(|n| n as u64)
            .map_err(String::from),
        HandoverCmd::Prepare => driver::prepare_real(vector).map(|()| 0),
        HandoverCmd::Resume => {
            driver::prepare_real(vector)?;
            driver::attached_real().map_err(String::from)
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
    let _ = node::send(NodeId(0), mint_irq::notice::ack_message(msg.seq));
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
                        bad_notice();
                        crate::println!(
                            "{me}: attached notice for nic0 on {} disagrees with the published table (route {other:?}, owner {owner:?})",
                            n.vector
                        );
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
fn notices_acked(node: NodeId) -> bool {
    with_layer(|l| l.layer.outbox().pending(node).next().is_none()).unwrap_or(true)
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
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    let word = cmd as u64 | u64::from(NIC0.0) << 8 | u64::from(vector.0) << 16;
    node::send(
        node,
        Message::new(MessageKind::HandoverCmd as u32, seq, [word, 0, 0]),
    )
    .map_err(|e| alloc::format!("{cmd:?} to {node}: {e}"))?;
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

/// Node 0: hands nic0 from `from` to `to` while traffic flows: the layer
/// checks the request and reserves the new owner's vector; the old owner
/// quiesces (mask at the device, last clean); the new owner takes the ring
/// over and binds the new vector; the layer masks the pin, waits
/// (bounded) for remote IRR to clear, re-routes, and posts "detached" and
/// "attached"; node 0 waits until both are acknowledged (the new owner has
/// unmasked its device and polled the ring once). `idle` runs between
/// waits. A refusal changes nothing (the layer counted it); a failure
/// after the quiesce gives the device back to the old owner.
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
    let cancel = |why: String, resume: bool, idle: &mut dyn FnMut()| -> String {
        let c = with_layer(|l| l.layer.cancel_handover(&mut l.hw, NIC0, from, cpu::rdtsc()));
        let resumed = if resume {
            command(from, HandoverCmd::Resume, old_vector, idle)
                .err()
                .map_or(String::new(), |e| alloc::format!("; resuming {from}: {e}"))
        } else {
            String::new()
        };
        let state = match c {
            Some(Ok(())) => alloc::format!("cancelled, nic0 stays with {from}"),
            Some(Err(e)) => alloc::format!("cancelling failed: {e}"),
            None => String::from("no layer to cancel it"),
        };
        alloc::format!("{why}; hand-over {state}{resumed}")
    };
    let cleaned_on_quiesce = match command(from, HandoverCmd::Quiesce, vector, idle) {
        Ok(n) => n,
        Err(e) => return Err(cancel(e, false, idle)),
    };
    let quiesced_at = cpu::rdtsc();
    if let Err(e) = command(to, HandoverCmd::Prepare, vector, idle) {
        return Err(cancel(e, true, idle));
    }
    let prepared_at = cpu::rdtsc();
    let q = with_layer(|l| {
        l.layer
            .handover_quiesced(&mut l.hw, NIC0, from, false, cpu::rdtsc())
    });
    if let Some(Err(e)) = q {
        return Err(cancel(alloc::format!("{e}"), true, idle));
    }
    if ASSERT_ON_SWITCH.swap(false, Ordering::AcqRel) {
        // Node 0 is the old owner here (it has the registers mapped).
        crate::nic::driver::raise_receive_cause();
    }
    let mut remote_irr_polls = 0;
    loop {
        let p = with_layer(|l| l.layer.handover_poll(&mut l.hw, NIC0, cpu::rdtsc()))
            .ok_or("the layer went away")?;
        match p {
            Ok(mint_irq::HandoverProgress::Done) => break,
            Ok(mint_irq::HandoverProgress::AwaitingRemoteIrr { .. }) => {
                remote_irr_polls += 1;
                crate::node::delay_us(10);
            }
            Ok(mint_irq::HandoverProgress::AwaitingOutbox { .. }) => {
                flush_notices();
                idle();
            }
            Ok(mint_irq::HandoverProgress::AwaitingQuiesce) => {
                return Err(cancel(
                    String::from("the layer still awaits the quiesce"),
                    true,
                    idle,
                ));
            }
            Err(mint_irq::HandoverError::RemoteIrrTimeout { polls, .. }) => {
                // Abandoned by the layer (pin restored): the old owner keeps it.
                let resumed = command(from, HandoverCmd::Resume, old_vector, idle);
                return Err(alloc::format!(
                    "remote IRR stayed set for {polls} polls: hand-over abandoned, {from} keeps nic0 ({resumed:?})"
                ));
            }
            Err(e) => return Err(alloc::format!("hand-over of nic0: {e}")),
        }
    }
    flush_notices();
    let deadline = cpu::rdtsc() + node::ms_to_ticks(CMD_TIMEOUT_MS);
    while !(notices_acked(from) && notices_acked(to)) {
        if cpu::rdtsc() > deadline {
            return Err(alloc::format!(
                "the attached/detached notices were not acknowledged within {CMD_TIMEOUT_MS} ms"
            ));
        }
        flush_notices();
        idle();
    }
    let acked_at = cpu::rdtsc();
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

/// The e1000's current owner, as the layer has it.
pub fn owner(device: DeviceId) -> Option<NodeId> {
    with_layer(|l| l.layer.device(device).and_then(|d| d.owner)).flatten()
}

/// The management table for node 0's shell (`devices`).
pub fn devices_table() -> String {
    let mut s = String::from(
        "device  owner  state         gsi  vector  trigger  pin      interrupts  refused  handovers  crash-resets",
    );
    let written = with_layer(|l| {
        for d in l.layer.devices() {
            let pin = match d.binding {
                Some(Binding::Pin { pin, .. }) => {
                    let e = l.hw.read_entry(pin);
                    if e.masked { "masked" } else { "unmasked" }
                }
                Some(Binding::Msi { .. }) => "msi",
                None => "-",
            };
            // Interrupts the owner's handler serviced (its own count).
            let serviced = d.owner.map_or(0, |o| {
                crate::shared::region().real_nic.irq[o.index()]
                    .serviced
                    .load(Ordering::Relaxed)
            });
            let _ = write!(
                s,
                "\nnic{:<4} {:<6} {:<13} {:<4} {:<7} {:<8} {:<8} {:<11} {:<8} {:<10} {}",
                d.id.0,
                d.owner
                    .map_or(String::from("-"), |o| alloc::format!("{}", o.0)),
                d.state.as_str(),
                d.binding
                    .map_or(String::from("-"), |b| alloc::format!("{}", b.gsi().0)),
                d.vector
                    .map_or(String::from("-"), |v| alloc::format!("{:#04x}", v.0)),
                d.binding
                    .map_or("-", |b| if b.is_level() { "level" } else { "edge" }),
                pin,
                serviced,
                d.counters.refused,
                d.counters.handovers,
                d.counters.crash_resets,
            );
        }
    });
    if written.is_none() {
        return String::from("this node does not run the interrupt layer");
    }
    s
}

/// The routing table for node 0's shell (`route`).
pub fn routes_table() -> String {
    with_layer(|l| {
        let mut s = alloc::format!(
            "routing table, generation {}\ngsi  device  destination-apic  vector",
            l.layer.routes().generation()
        );
        for r in l.layer.routes().iter() {
            let _ = write!(
                s,
                "\n{:<4} nic{:<4} {:<17} {:#04x}",
                r.gsi.0, r.device.0, r.destination.0, r.vector.0
            );
        }
        s
    })
    .unwrap_or_else(|| String::from("this node does not run the interrupt layer"))
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
