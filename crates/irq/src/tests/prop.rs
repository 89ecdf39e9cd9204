//! Property tests: random sequences of register, assert / withdraw, service (the owner's
//! handler + EOI), mask, unmask, route, hand-over (begin, quiesce, poll, cancel; completed
//! and abandoned), notices (flush, act, ack), node crash and restart, run against the model
//! in [`crate::testing`] with three nodes and four devices (two level PCI INTx lines, one
//! edge pin, one MSI), with and without the I/O APIC EOI register (without it, the owner's
//! local APIC EOI is broadcast by hardware and the layer clears a dead owner's remote IRR by
//! the edge toggle).
//!
//! # The device model the harness plays
//!
//! A device has an interrupt *cause* (e1000: `ICR & IMS != 0`) and a device-level mask (IMS).
//! An *episode* starts when a cause is raised on a device that has none, and ends when the
//! owner's handler services it (clears the cause, then EOIs through the layer) or the device
//! withdraws it. A level device drives its line while it has a cause and is not masked at the
//! device; an edge or MSI device signals once when the cause is raised, or when it is unmasked
//! at the device with a cause pending (e1000's IMS write, MSI-X's pending bit). A driver that
//! unmasks an edge pin re-checks its device (a dropped edge is not latched by the I/O APIC).
//! Hand-over quiesce = the old owner masks at the device, finishes a running edge handler, and
//! calls the layer; the new owner, on its "attached" notice, unmasks the pin and the device.
//!
//! # Properties
//!
//! Checked on every delivery, after every event, and after a final *settle* phase in which
//! pending hand-overs are driven to their end, every handler runs, every notice is delivered
//! and acknowledged, and every owner unmasks its device and pin.
//!
//! - **No misroute**: every delivery the model's local APICs record is, per
//!   [`IrqLayer::on_interrupt`], [`Dispatch::Device`] of the device whose vector it carries,
//!   on the APIC of that device's owner at that moment, and that owner is alive. Between
//!   events, every registered device's hardware entry (or MSI message) names its owner's APIC
//!   and its current vector, and the routing table agrees.
//! - **No duplicate**: a delivery only happens for a device with an open episode and no
//!   handler running for it. So each episode is delivered at most once per handler run: once
//!   per edge, once per level assertion-service cycle. (If the node running the handler
//!   crashes, the episode is still open and is delivered to the new owner: that is the
//!   intended recovery, counted as `died_in_service`.)
//! - **No loss**: after settling, every device that has an owner and is registered has no
//!   open episode; per device, `raised == serviced + withdrawn + open` and
//!   `delivered == serviced + died_in_service`.
//! - **Remote IRR never stuck**: between events, a level pin's remote IRR is set only while a
//!   handler for its device is running; after settling, no pin has remote IRR set.
//! - **Vectors**: registered devices' vectors are distinct at all times; after a switch the
//!   old vector stays draining (not handed out) until the old owner has acknowledged a
//!   notice about that device (normally its "detached"), or died; after settling no vector is draining or
//!   reserved (nothing leaks). The routing table's generation never decreases.
//! - **Refusals change nothing**: a register / mask / unmask / route by a non-owner, and a
//!   refused hand-over request, return the typed error and leave the hardware entry (or MSI
//!   message and mask) and the device's row (but its refusal counter) unchanged.
//! - **Notices**: every notice arrives in sequence order and every ack is accepted; after
//!   settling nothing is owed or unacknowledged.

use alloc::vec;
use alloc::vec::Vec;

use mint_abi::node::NodeState;
use mint_abi::{NodeId, Vector};
use proptest::prelude::*;

use super::*;
use crate::{
    DeviceState, Dispatch, HandoverError, HandoverProgress, HandoverStep, IoApic, Msi, Notice,
    NoticeKind, OpError, RegisterError, RouteTarget,
};

const DEVS: [DeviceId; 4] = [NIC, DISK, UART, MSIDEV];
const NODES: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Level,
    Edge,
    Msi,
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        dev: usize,
        by: usize,
    },
    Assert(usize),
    Withdraw(usize),
    Service(usize),
    Mask {
        dev: usize,
        by: usize,
    },
    Unmask {
        dev: usize,
        by: usize,
    },
    Route {
        dev: usize,
        by: usize,
    },
    Handover {
        dev: usize,
        to: usize,
        budget: u32,
    },
    /// `mask_device: false` plays a driver that stops RX but leaves its device's interrupt on.
    Quiesce {
        dev: usize,
        mask_device: bool,
    },
    Poll(usize),
    Cancel(usize),
    Crash(usize),
    Restart(usize),
    /// The node stops (or resumes) reading its mailbox: a slow peer, so outboxes fill.
    Slow(usize),
    Notices,
}

/// A node, or (with `NODES`) the device's current owner.
const OWNER: usize = NODES;

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let dev = 0..DEVS.len();
    let node = 0..NODES;
    // Mostly the owner, sometimes any node (a non-owner's request must be refused).
    let who = prop_oneof![3 => Just(OWNER), 2 => 0..NODES];
    proptest::collection::vec(
        prop_oneof![
            6 => (dev.clone(), who.clone()).prop_map(|(dev, by)| Op::Register { dev, by }),
            12 => dev.clone().prop_map(Op::Assert),
            2 => dev.clone().prop_map(Op::Withdraw),
            8 => dev.clone().prop_map(Op::Service),
            2 => (dev.clone(), who.clone()).prop_map(|(dev, by)| Op::Mask { dev, by }),
            2 => (dev.clone(), who.clone()).prop_map(|(dev, by)| Op::Unmask { dev, by }),
            2 => (dev.clone(), who).prop_map(|(dev, by)| Op::Route { dev, by }),
            8 => (dev.clone(), node.clone(), 0u32..4)
                .prop_map(|(dev, to, budget)| Op::Handover { dev, to, budget }),
            8 => (dev.clone(), any::<bool>())
                .prop_map(|(dev, mask_device)| Op::Quiesce { dev, mask_device }),
            12 => dev.clone().prop_map(Op::Poll),
            2 => dev.prop_map(Op::Cancel),
            1 => node.clone().prop_map(Op::Crash),
            6 => node.clone().prop_map(Op::Restart),
            1 => node.prop_map(Op::Slow),
            6 => Just(Op::Notices),
        ],
        0..150,
    )
}

#[derive(Clone, Debug)]
struct DevModel {
    id: DeviceId,
    kind: Kind,
    pin: Option<Pin>,
    cause: bool,
    dev_masked: bool,
    in_service: Option<NodeId>,
    raised: u64,
    delivered: u64,
    serviced: u64,
    withdrawn: u64,
    died_in_service: u64,
}

struct World {
    r: Rig,
    devs: Vec<DevModel>,
    mb: Mailboxes,
    alive: [bool; NODES],
    generation: u64,
    last_seq: [u32; NODES],
    /// Old vectors after a switch, per (vector, old owner, device), until the old owner
    /// acknowledges a notice about the device or dies.
    draining: Vec<(Vector, NodeId, DeviceId)>,
    slow: [bool; NODES],
    stats: Stats,
}

/// What a run exercised, to show the property is not vacuous.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    deliveries: u64,
    handovers_done: u64,
    timeouts: u64,
    cancels: u64,
    outbox_waits: u64,
    refusals: u64,
    crashes: u64,
    switched_with_line_high: u64,
}

/// What the hardware holds for a device (entry or MSI message and mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HwState {
    Pin(u64),
    Msi(Option<crate::MsiMessage>, bool),
}

impl World {
    fn new(eoi_register: bool) -> World {
        let devs = DEVS
            .iter()
            .map(|&id| DevModel {
                id,
                kind: match source_of(id) {
                    IrqSource::Gsi {
                        trigger: crate::TriggerMode::Level,
                        ..
                    } => Kind::Level,
                    IrqSource::Gsi { .. } => Kind::Edge,
                    IrqSource::Msi => Kind::Msi,
                },
                pin: pin_of(id),
                cause: false,
                dev_masked: false,
                in_service: None,
                raised: 0,
                delivered: 0,
                serviced: 0,
                withdrawn: 0,
                died_in_service: 0,
            })
            .collect();
        World {
            r: Rig::with_config(crate::Config {
                eoi_register,
                // Small outboxes, so slow nodes make them push back.
                notice_slots: 3,
                ..crate::Config::QEMU
            }),
            devs,
            mb: Mailboxes::new(2),
            alive: [true; NODES],
            generation: 0,
            last_seq: [0; NODES],
            draining: Vec::new(),
            slow: [false; NODES],
            stats: Stats::default(),
        }
    }

    fn info(&self, d: usize) -> crate::DeviceInfo {
        self.r.layer.device(self.devs[d].id).unwrap()
    }

    fn hw_state(&self, d: usize) -> HwState {
        match self.devs[d].pin {
            Some(p) => HwState::Pin(self.r.hw.entry(p).to_raw()),
            None => HwState::Msi(
                self.r.hw.read_message(self.devs[d].id),
                self.r.hw.is_masked(self.devs[d].id),
            ),
        }
    }

    fn update_line(&mut self, d: usize) {
        let m = &self.devs[d];
        if m.kind == Kind::Level {
            let level = m.cause && !m.dev_masked;
            self.r.hw.set_line(m.pin.unwrap(), level);
        }
    }

    fn signal(&mut self, d: usize) {
        let m = &self.devs[d];
        match m.kind {
            Kind::Level => self.update_line(d),
            Kind::Edge => self.r.hw.pulse(m.pin.unwrap()),
            Kind::Msi => self.r.hw.fire_msi(m.id),
        }
    }

    /// The device (or its driver's re-check) signals a pending cause nobody is handling.
    fn resignal(&mut self, d: usize) {
        self.process();
        let m = &self.devs[d];
        if m.cause && !m.dev_masked && m.in_service.is_none() {
            self.signal(d);
        }
        self.process();
    }

    /// Hands every delivery to the layer's stub and checks it.
    fn process(&mut self) {
        for delivery in self.r.hw.take_deliveries() {
            let now = self.r.tick();
            let dispatch =
                self.r
                    .layer
                    .on_interrupt(&mut self.r.hw, delivery.apic, delivery.vector, now);
            let Dispatch::Device { device, .. } = dispatch else {
                panic!("misrouted or stale delivery {delivery:?}: {dispatch:?}");
            };
            let d = self.devs.iter().position(|m| m.id == device).unwrap();
            let owner = self.info(d).owner.expect("delivered to an owner");
            assert_eq!(delivery.apic, APICS[owner.index()], "misroute");
            assert!(self.alive[owner.index()], "delivered to a dead node");
            let m = &mut self.devs[d];
            assert!(m.cause, "spurious delivery for {device}: no open episode");
            assert!(
                m.in_service.is_none(),
                "duplicate delivery for {device}: handler already running"
            );
            m.in_service = Some(owner);
            m.delivered += 1;
            self.stats.deliveries += 1;
        }
    }

    fn service(&mut self, d: usize) {
        let Some(n) = self.devs[d].in_service else {
            return;
        };
        let m = &mut self.devs[d];
        m.cause = false;
        m.in_service = None;
        m.serviced += 1;
        self.update_line(d);
        if !self.r.layer.config().eoi_register && self.devs[d].kind == Kind::Level {
            // The local APIC's EOI, broadcast to the I/O APIC by hardware.
            let v = self.info(d).vector.unwrap();
            IoApic::eoi(&mut self.r.hw, v);
        }
        let r = self.r.layer.eoi(&mut self.r.hw, self.devs[d].id, n);
        assert!(
            matches!(r, Ok(crate::EoiOutcome::Done)),
            "the running handler's EOI: {r:?}"
        );
    }

    fn handing_over(&self, d: usize) -> Option<crate::Trace> {
        (self.info(d).state == DeviceState::HandingOver)
            .then(|| *self.r.layer.trace(self.devs[d].id).unwrap())
    }

    fn unquiesce(&mut self, d: usize) {
        self.devs[d].dev_masked = false;
        self.update_line(d);
        self.resignal(d);
    }

    /// `by`, or the device's owner for [`OWNER`].
    fn who(&self, d: usize, by: usize) -> Option<usize> {
        if by == OWNER {
            self.info(d).owner.map(NodeId::index)
        } else {
            Some(by)
        }
    }

    fn owner_op(&mut self, d: usize, by: usize, which: u8) {
        let Some(by) = self.who(d, by) else { return };
        if !self.alive[by] {
            return;
        }
        let by = NodeId(by as u8);
        let id = self.devs[d].id;
        let before_hw = self.hw_state(d);
        let before = self.info(d);
        let r = match which {
            0 => self.r.layer.mask(&mut self.r.hw, id, by).map(|_| ()),
            1 => self.r.layer.unmask(&mut self.r.hw, id, by).map(|_| ()),
            _ => self
                .r
                .layer
                .route(&mut self.r.hw, id, by, APICS[by.index()])
                .map(|_| ()),
        };
        let expect_refusal = if before.owner != Some(by) {
            Some(matches!(r, Err(OpError::NotOwner(_))))
        } else if before.binding.is_none() {
            Some(r == Err(OpError::NotRegistered(id)))
        } else if before.state == DeviceState::HandingOver {
            Some(r == Err(OpError::HandoverInProgress(id)))
        } else {
            None
        };
        match expect_refusal {
            Some(ok) => {
                assert!(ok, "{id} op {which} by {by}: {r:?}");
                self.stats.refusals += 1;
                assert_eq!(
                    self.hw_state(d),
                    before_hw,
                    "a refused op changed the hardware"
                );
                let mut after = self.info(d);
                after.counters.refused = before.counters.refused;
                assert_eq!(after, before, "a refused op changed the table");
            }
            None => {
                assert_eq!(r, Ok(()), "{id} op {which} by its owner");
                if which == 1 {
                    self.resignal(d);
                }
            }
        }
    }

    fn notices(&mut self) {
        self.r.layer.flush_notices(&mut self.mb);
        for n in 0..NODES {
            if !self.alive[n] {
                self.mb.queues[n].clear();
                continue;
            }
            if self.slow[n] {
                continue;
            }
            let node = NodeId(n as u8);
            let msgs: Vec<_> = self.mb.queues[n].drain(..).collect();
            let mut last = None;
            let mut released = Vec::new();
            for m in msgs {
                let notice = Notice::from_message(m).expect("well-formed notice");
                assert!(notice.seq > self.last_seq[n], "notices in sequence order");
                self.last_seq[n] = notice.seq;
                last = Some(notice.seq);
                released.push(notice.device);
                if let NoticeKind::Attached(_) = notice.kind {
                    self.bind(node, notice.device);
                }
            }
            if let Some(seq) = last {
                self.r.layer.ack_notice(node, seq).expect("ack accepted");
                self.draining
                    .retain(|&(_, from, dev)| !(from == node && released.contains(&dev)));
            }
        }
        self.process();
    }

    /// The node's driver binds a device it was told it owns (if it still does).
    fn bind(&mut self, node: NodeId, device: DeviceId) {
        let d = self.devs.iter().position(|m| m.id == device).unwrap();
        let info = self.info(d);
        if info.owner != Some(node) || info.state == DeviceState::HandingOver {
            return;
        }
        self.devs[d].dev_masked = false;
        self.update_line(d);
        if info.binding.is_some() {
            assert_eq!(self.r.layer.unmask(&mut self.r.hw, device, node), Ok(()));
        }
        self.resignal(d);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Register { dev, by } => {
                let Some(by) = self.who(dev, by) else { return };
                if !self.alive[by] {
                    return;
                }
                let by = NodeId(by as u8);
                let id = self.devs[dev].id;
                let before_hw = self.hw_state(dev);
                let before = self.info(dev);
                let r = self.r.layer.register(&mut self.r.hw, id, by, source_of(id));
                if before.owner != Some(by) {
                    assert!(matches!(r, Err(RegisterError::NotOwner(_))), "{r:?}");
                    assert_eq!(self.hw_state(dev), before_hw);
                } else if before.binding.is_some() {
                    assert!(
                        matches!(
                            r,
                            Err(RegisterError::AlreadyRegistered { .. }
                                | RegisterError::HandoverInProgress(_))
                        ),
                        "{r:?}"
                    );
                } else {
                    r.expect("owner registers");
                    self.bind(by, id);
                }
            }
            Op::Assert(d) => {
                let m = &mut self.devs[d];
                if !m.cause {
                    m.cause = true;
                    m.raised += 1;
                    if !m.dev_masked {
                        self.signal(d);
                    }
                }
            }
            Op::Withdraw(d) => {
                let m = &mut self.devs[d];
                if m.cause && m.in_service.is_none() {
                    m.cause = false;
                    m.withdrawn += 1;
                    if m.kind == Kind::Msi {
                        let id = m.id;
                        self.r.hw.withdraw_msi(id);
                    }
                    self.update_line(d);
                }
            }
            Op::Service(d) => self.service(d),
            Op::Mask { dev, by } => self.owner_op(dev, by, 0),
            Op::Unmask { dev, by } => self.owner_op(dev, by, 1),
            Op::Route { dev, by } => self.owner_op(dev, by, 2),
            Op::Handover { dev, to, budget } => {
                let before = self.info(dev);
                let Some(from) = before.owner else { return };
                let to = NodeId(to as u8);
                let now = self.r.tick();
                let r = self
                    .r
                    .layer
                    .handover(self.devs[dev].id, from, to, budget, now);
                let acceptable = before.binding.is_some()
                    && to != from
                    && self.alive[to.index()]
                    && before.state != DeviceState::HandingOver;
                if acceptable {
                    assert_eq!(r, Ok(()));
                } else {
                    assert!(r.is_err(), "{r:?}");
                    let mut after = self.info(dev);
                    after.counters.refused = before.counters.refused;
                    assert_eq!(after, before);
                }
            }
            Op::Quiesce {
                dev: d,
                mask_device,
            } => {
                let Some(t) = self.handing_over(d) else {
                    return;
                };
                if t.last().unwrap().step != HandoverStep::Requested {
                    return;
                }
                self.devs[d].dev_masked = mask_device;
                self.update_line(d);
                if self.devs[d].kind != Kind::Level {
                    // Unbinding waits for a running edge handler.
                    self.service(d);
                }
                let now = self.r.tick();
                let r = self.r.layer.handover_quiesced(
                    &mut self.r.hw,
                    self.devs[d].id,
                    t.from,
                    false,
                    now,
                );
                assert_eq!(r, Ok(()));
            }
            Op::Poll(d) => {
                if self.handing_over(d).is_none() {
                    return;
                }
                let now = self.r.tick();
                let t = self.handing_over(d).unwrap();
                let before = self.info(d);
                let owner = match self
                    .r
                    .layer
                    .handover_poll(&mut self.r.hw, self.devs[d].id, now)
                {
                    Ok(
                        HandoverProgress::AwaitingQuiesce
                        | HandoverProgress::AwaitingRemoteIrr { .. },
                    ) => t.from,
                    Ok(HandoverProgress::AwaitingOutbox { .. }) => {
                        self.stats.outbox_waits += 1;
                        t.to
                    }
                    Ok(HandoverProgress::Done) => {
                        self.stats.handovers_done += 1;
                        t.to
                    }
                    Err(HandoverError::RemoteIrrTimeout { .. }) => {
                        self.stats.timeouts += 1;
                        self.unquiesce(d);
                        t.from
                    }
                    Err(e) => panic!("poll: {e:?}"),
                };
                assert_eq!(self.info(d).owner, Some(owner), "owner after a poll");
                self.process();
                if before.owner == Some(t.from) && owner == t.to {
                    if self.devs[d].in_service == Some(t.to) {
                        self.stats.switched_with_line_high += 1;
                    }
                    self.draining
                        .push((before.vector.unwrap(), t.from, self.devs[d].id));
                }
            }
            Op::Cancel(d) => {
                let Some(t) = self.handing_over(d) else {
                    return;
                };
                if !matches!(
                    t.last().unwrap().step,
                    HandoverStep::Requested | HandoverStep::Quiesced
                ) {
                    return;
                }
                let now = self.r.tick();
                let r = self
                    .r
                    .layer
                    .cancel_handover(&mut self.r.hw, self.devs[d].id, t.from, now);
                assert_eq!(r, Ok(()));
                self.stats.cancels += 1;
                self.unquiesce(d);
            }
            Op::Crash(n) => {
                if !self.alive[n] {
                    return;
                }
                let node = NodeId(n as u8);
                // Hand-overs to the node that will be abandoned before their switch.
                let aborted: Vec<usize> = (0..self.devs.len())
                    .filter(|&d| {
                        self.handing_over(d).is_some_and(|t| {
                            t.to == node
                                && t.from != node
                                && matches!(
                                    t.last().unwrap().step,
                                    HandoverStep::Requested | HandoverStep::Quiesced
                                )
                        })
                    })
                    .collect();
                self.alive[n] = false;
                self.stats.crashes += 1;
                self.mb.queues[n].clear();
                self.draining.retain(|&(_, from, _)| from != node);
                for m in &mut self.devs {
                    if m.in_service == Some(node) {
                        m.in_service = None;
                        m.died_in_service += 1;
                    }
                }
                let now = self.r.tick();
                self.r
                    .layer
                    .set_node_state(&mut self.r.hw, node, NodeState::Crashed, now)
                    .expect("crash handling");
                for d in aborted {
                    self.unquiesce(d);
                }
            }
            Op::Restart(n) => {
                if self.alive[n] {
                    return;
                }
                self.alive[n] = true;
                self.mb.queues[n].clear();
                let now = self.r.tick();
                self.r
                    .layer
                    .set_node_state(&mut self.r.hw, NodeId(n as u8), NodeState::Running, now)
                    .expect("restart");
            }
            Op::Slow(n) => self.slow[n] = !self.slow[n],
            Op::Notices => self.notices(),
        }
        self.process();
    }

    /// The invariants that hold between any two events.
    fn check(&mut self) {
        for &(v, from, device) in &self.draining {
            assert_eq!(
                self.r.layer.vectors().usage(v),
                crate::VectorUse::Draining {
                    device,
                    old_owner: from
                },
                "{v} reused before {from} confirmed nothing is pending"
            );
        }
        let g = self.r.layer.routes().generation();
        assert!(g >= self.generation, "generation went back");
        self.generation = g;
        let mut vectors: Vec<Vector> = Vec::new();
        for d in 0..self.devs.len() {
            let info = self.info(d);
            let m = &self.devs[d];
            if let Some(n) = m.in_service {
                assert!(m.cause, "{}: handler without a cause", m.id);
                assert_eq!(info.owner, Some(n), "{}: handler on a non-owner", m.id);
            }
            if let Some(o) = info.owner {
                assert!(self.alive[o.index()], "{} owned by dead {o}", m.id);
            }
            if let Some(pin) = m.pin
                && self.r.hw.remote_irr(pin)
            {
                assert!(m.in_service.is_some(), "{}: remote IRR stuck", m.id);
            }
            let (Some(_), Some(v)) = (info.binding, info.vector) else {
                continue;
            };
            assert!(!vectors.contains(&v), "{v} shared");
            vectors.push(v);
            let Some(owner) = info.owner else {
                continue;
            };
            let apic = APICS[owner.index()];
            let route = self.r.layer.routes().of_device(m.id).expect("routed");
            assert_eq!((route.destination, route.vector), (apic, v));
            match m.pin {
                Some(pin) => {
                    let e = self.r.hw.entry(pin);
                    assert_eq!(
                        (e.destination_apic(), e.vector),
                        (apic, v),
                        "{} entry",
                        m.id
                    );
                    assert_eq!(route.target, RouteTarget::Pin(pin));
                    if info.state == DeviceState::Attached {
                        assert_eq!(e.masked, info.masked || info.storm_paused, "{} mask", m.id);
                    }
                    if let Some(t) = self.handing_over(d)
                        && t.last().unwrap().step == HandoverStep::Quiesced
                    {
                        assert!(e.masked, "{}: quiesced but the pin is unmasked", m.id);
                    }
                }
                None => {
                    let msg = self.r.hw.read_message(m.id).unwrap();
                    assert_eq!((msg.address.destination_apic(), msg.data.vector), (apic, v));
                }
            }
        }
    }

    /// Drives everything to rest: hand-overs end, handlers run, notices are delivered and
    /// acknowledged, owners unmask.
    fn settle(&mut self) {
        self.slow = [false; NODES];
        for _ in 0..40 {
            for d in 0..self.devs.len() {
                if self.handing_over(d).is_some() {
                    self.apply(&Op::Quiesce {
                        dev: d,
                        mask_device: true,
                    });
                    self.service(d);
                    self.apply(&Op::Poll(d));
                }
            }
            self.notices();
            for d in 0..self.devs.len() {
                self.service(d);
                let info = self.info(d);
                let Some(owner) = info.owner else { continue };
                if info.binding.is_none() || info.state == DeviceState::HandingOver {
                    continue;
                }
                self.devs[d].dev_masked = false;
                self.update_line(d);
                assert_eq!(
                    self.r.layer.unmask(&mut self.r.hw, self.devs[d].id, owner),
                    Ok(())
                );
                self.resignal(d);
                self.service(d);
            }
            self.process();
            self.check();
        }
    }

    fn check_settled(&self) {
        assert!(
            self.draining.is_empty(),
            "old owners never released {:?}",
            self.draining
        );
        for v in 0..=255u8 {
            assert!(
                !matches!(
                    self.r.layer.vectors().usage(Vector(v)),
                    crate::VectorUse::Draining { .. } | crate::VectorUse::Reserved(_)
                ),
                "vector {v:#x} leaked"
            );
        }
        assert!(!self.r.layer.notices_owed(), "notices still owed");
        for n in 0..NODES {
            if self.alive[n] {
                assert_eq!(
                    self.r.layer.outbox().pending(NodeId(n as u8)).count(),
                    0,
                    "unacknowledged notices for node {n}"
                );
            }
        }
        for p in 0..24 {
            assert!(!self.r.hw.remote_irr(Pin(p)), "pin {p}: remote IRR stuck");
        }
        for (d, m) in self.devs.iter().enumerate() {
            let info = self.info(d);
            assert_ne!(info.state, DeviceState::HandingOver, "{}", m.id);
            assert_eq!(m.in_service, None);
            if info.owner.is_some() && info.binding.is_some() {
                assert!(!m.cause, "{}: an interrupt was lost", m.id);
            }
            let open = u64::from(m.cause);
            assert_eq!(
                m.raised,
                m.serviced + m.withdrawn + open,
                "{} episodes",
                m.id
            );
            assert_eq!(
                m.delivered,
                m.serviced + m.died_in_service,
                "{} deliveries",
                m.id
            );
            assert_eq!(info.counters.misrouted, 0);
            assert_eq!(info.counters.stale, 0);
        }
        assert_eq!(self.r.layer.counters().unknown_vectors, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// No interrupt lost, duplicated or misrouted; remote IRR never stuck; refusals change
    /// nothing (see the module docs for the precise definitions).
    #[test]
    fn interrupts_survive_any_sequence(ops in ops(), eoi_register in any::<bool>()) {
        let mut w = World::new(eoi_register);
        for op in &ops {
            w.apply(op);
            w.check();
        }
        w.settle();
        w.check_settled();
    }
}

/// A fixed scenario the property covers only by chance: 20 level hand-overs back and forth,
/// each with the old owner in its handler when it starts and the line asserted again (pin
/// masked, ICR unread) at the switch: delivered exactly once, to the new owner.
#[test]
fn twenty_handovers_with_the_line_asserted() {
    let mut w = World::new(true);
    w.apply(&Op::Register { dev: 0, by: 0 });
    for round in 0..20 {
        let from = w.info(0).owner.unwrap().index();
        let to = 1 - from;
        w.apply(&Op::Assert(0));
        assert_eq!(w.devs[0].in_service, Some(NodeId(from as u8)));
        w.apply(&Op::Handover {
            dev: 0,
            to,
            budget: 2,
        });
        // The driver stops RX but leaves the device's interrupt on: the pin mask holds it.
        w.apply(&Op::Quiesce {
            dev: 0,
            mask_device: false,
        });
        w.apply(&Op::Poll(0));
        // The old owner's handler finishes during the wait; the device raises again at once.
        w.apply(&Op::Service(0));
        w.apply(&Op::Assert(0));
        assert_eq!(w.devs[0].in_service, None, "held by the masked pin");
        w.apply(&Op::Poll(0));
        w.check();
        assert_eq!(w.info(0).owner, Some(NodeId(to as u8)), "round {round}");
        assert_eq!(
            w.devs[0].in_service,
            Some(NodeId(to as u8)),
            "round {round}"
        );
        w.apply(&Op::Notices);
        w.apply(&Op::Service(0));
    }
    w.settle();
    w.check_settled();
    assert_eq!(w.info(0).counters.handovers, 20);
    assert_eq!(w.devs[0].delivered, 40);
    assert_eq!(w.devs[0].delivered, w.devs[0].raised);
}

/// The random sequences reach every path the properties are about: completed hand-overs,
/// remote-IRR timeouts, cancels, outbox pushback, refusals, crashes, and switches with the
/// line asserted (delivered to the new owner at the switch).
#[test]
fn random_sequences_exercise_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut total = Stats::default();
    for k in 0..200 {
        let ops = ops().new_tree(&mut runner).unwrap().current();
        let mut w = World::new(k % 2 == 0);
        for op in &ops {
            w.apply(op);
            w.check();
        }
        w.settle();
        w.check_settled();
        let s = w.stats;
        total.deliveries += s.deliveries;
        total.handovers_done += s.handovers_done;
        total.timeouts += s.timeouts;
        total.cancels += s.cancels;
        total.outbox_waits += s.outbox_waits;
        total.refusals += s.refusals;
        total.crashes += s.crashes;
        total.switched_with_line_high += s.switched_with_line_high;
    }
    std::println!("{total:?}");
    assert!(total.deliveries > 500, "{total:?}");
    assert!(total.handovers_done > 100, "{total:?}");
    assert!(total.timeouts > 0, "{total:?}");
    assert!(total.cancels > 0, "{total:?}");
    assert!(total.outbox_waits > 0, "{total:?}");
    assert!(total.refusals > 100, "{total:?}");
    assert!(total.crashes > 50, "{total:?}");
    assert!(total.switched_with_line_high > 0, "{total:?}");
}
