//! The hand-over state machine: moving a live device's interrupt from one node to another
//! without losing or duplicating one.
//!
//! ```text
//! handover()           the layer checks the request, reserves the new vector   -> Requested
//! handover_quiesced()  the old owner stopped RX and masked at the device;
//!                      the layer masks the pin (or MSI)                         -> Quiesced
//! handover_poll()...   level pin: wait, bounded by the poll budget, for remote
//!                      IRR = 0 (the old owner's handler EOIs)                   -> RemoteIrrClear
//!                      (budget spent: Aborted(RemoteIrrTimeout), the old owner
//!                      keeps the device, the pin's mask is restored)
//!                      rewrite destination + vector (or MSI address/data),
//!                      restore the owner's mask, old vector -> draining         -> Switched
//!                      edge the old owner reported latched: sent once to the
//!                      new owner                                                -> EdgeReplayed
//!                      "detached" notice to the old owner                       -> DetachedNotified
//!                      "attached" notice to the new owner                       -> AttachedNotified
//!                                                                               -> Done
//! ```
//!
//! A full outbox stops the machine at its notice step ([`HandoverProgress::AwaitingOutbox`]);
//! the next poll retries. Every step is stamped with the caller's timestamp (the kernel passes
//! the TSC) in the device's [`Trace`]. Refused requests change nothing.

use core::fmt;

use mint_abi::node::NodeState;
use mint_abi::{NodeId, Vector};

use crate::layer::{Binding, DeviceState, HardwareError, IrqLayer, Unknown};
use crate::notice::{AttachReason, NoticeKind};
use crate::{DeviceId, Hardware};

/// Most steps one trace holds.
pub const TRACE_CAPACITY: usize = 12;

/// A step of the hand-over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverStep {
    Requested,
    Quiesced,
    RemoteIrrClear,
    Switched,
    EdgeReplayed,
    DetachedNotified,
    /// The old owner died after the switch: nobody to tell.
    DetachedSkipped,
    AttachedNotified,
    Done,
    Aborted(AbortReason),
}

impl HandoverStep {
    pub const fn as_str(self) -> &'static str {
        match self {
            HandoverStep::Requested => "requested",
            HandoverStep::Quiesced => "quiesced",
            HandoverStep::RemoteIrrClear => "remote-irr-clear",
            HandoverStep::Switched => "switched",
            HandoverStep::EdgeReplayed => "edge-replayed",
            HandoverStep::DetachedNotified => "detached-notified",
            HandoverStep::DetachedSkipped => "detached-skipped",
            HandoverStep::AttachedNotified => "attached-notified",
            HandoverStep::Done => "done",
            HandoverStep::Aborted(AbortReason::RemoteIrrTimeout) => "aborted-remote-irr-timeout",
            HandoverStep::Aborted(AbortReason::Cancelled) => "aborted-cancelled",
            HandoverStep::Aborted(AbortReason::NodeCrashed(_)) => "aborted-node-crashed",
        }
    }
}

/// Why a hand-over ended without completing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// Remote IRR stayed set for the whole poll budget.
    RemoteIrrTimeout,
    /// The old owner gave up before the switch.
    Cancelled,
    /// The old owner (before the switch) or the new owner crashed; crash handling took over.
    NodeCrashed(NodeId),
}

/// One stamped step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    pub step: HandoverStep,
    /// The caller's timestamp (TSC in the kernel).
    pub at: u64,
}

/// The steps of one hand-over, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace {
    pub device: DeviceId,
    pub from: NodeId,
    pub to: NodeId,
    entries: [TraceEntry; TRACE_CAPACITY],
    len: usize,
}

impl Trace {
    fn new(device: DeviceId, from: NodeId, to: NodeId) -> Trace {
        Trace {
            device,
            from,
            to,
            entries: [TraceEntry {
                step: HandoverStep::Requested,
                at: 0,
            }; TRACE_CAPACITY],
            len: 0,
        }
    }

    /// Appends a step; a full trace keeps its first steps and replaces the last with `step`
    /// (the final state is never lost).
    pub(crate) fn push(&mut self, step: HandoverStep, at: u64) {
        let e = TraceEntry { step, at };
        if self.len < TRACE_CAPACITY {
            self.entries[self.len] = e;
            self.len += 1;
        } else {
            self.entries[TRACE_CAPACITY - 1] = e;
        }
    }

    pub fn entries(&self) -> &[TraceEntry] {
        &self.entries[..self.len]
    }

    pub fn steps(&self) -> impl Iterator<Item = HandoverStep> + '_ {
        self.entries().iter().map(|e| e.step)
    }

    pub fn last(&self) -> Option<TraceEntry> {
        self.entries().last().copied()
    }

    /// Time from the first to the last step.
    pub fn duration(&self) -> u64 {
        match (self.entries().first(), self.entries().last()) {
            (Some(a), Some(b)) => b.at.saturating_sub(a.at),
            _ => 0,
        }
    }
}

/// A hand-over in progress (held in the device's row).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handover {
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    step: HandoverStep,
    polls_left: u32,
    polls: u32,
    pub(crate) new_vector: Vector,
    old_vector: Vector,
    /// The layer holds the pin masked (Quiesced .. Switched).
    pub(crate) pin_masked: bool,
    latched_edge: bool,
    /// The old owner died after the switch.
    pub(crate) from_gone: bool,
    pub(crate) trace: Trace,
}

impl Handover {
    pub(crate) fn switched(&self) -> bool {
        !matches!(
            self.step,
            HandoverStep::Requested | HandoverStep::Quiesced | HandoverStep::RemoteIrrClear
        )
    }

    fn advance(&mut self, step: HandoverStep, now: u64) {
        self.step = step;
        self.trace.push(step, now);
    }
}

/// A hand-over in progress, as [`IrqLayer::handover_status`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoverStatus {
    pub from: NodeId,
    pub to: NodeId,
    pub new_vector: Vector,
    pub step: HandoverStep,
}

/// Where a hand-over waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverProgress {
    /// For the old owner's [`IrqLayer::handover_quiesced`].
    AwaitingQuiesce,
    /// Remote IRR still set; `polls_left` more polls before the hand-over is abandoned.
    AwaitingRemoteIrr {
        polls_left: u32,
    },
    /// The outbox to `to` is full: flush and collect acks, then poll again.
    AwaitingOutbox {
        to: NodeId,
    },
    Done,
}

/// A hand-over request or step that was refused (state unchanged), or a hand-over abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverError {
    UnknownDevice(DeviceId),
    UnknownNode(NodeId),
    NotRegistered(DeviceId),
    /// `claimed` is not the device's owner.
    NotOwner {
        device: DeviceId,
        claimed: NodeId,
        owner: Option<NodeId>,
    },
    /// The target already owns the device.
    SameOwner {
        device: DeviceId,
        node: NodeId,
    },
    /// The plan does not let `node` own the device.
    NotACandidate {
        device: DeviceId,
        node: NodeId,
    },
    /// The target is crashed, booting, halted or absent.
    TargetNotRunning {
        node: NodeId,
        state: NodeState,
    },
    /// The device is already being handed over.
    AlreadyInProgress {
        device: DeviceId,
        from: NodeId,
        to: NodeId,
    },
    NotInProgress(DeviceId),
    /// The step asked for does not follow the hand-over's current step.
    WrongStep {
        device: DeviceId,
        at: HandoverStep,
    },
    /// Only the old owner quiesces or cancels.
    WrongNode {
        device: DeviceId,
        by: NodeId,
        expected: NodeId,
    },
    /// No vector for the new owner.
    VectorsExhausted(DeviceId),
    /// Remote IRR stayed set for `polls` polls: abandoned, the old owner keeps the device and
    /// its mask state.
    RemoteIrrTimeout {
        device: DeviceId,
        polls: u32,
    },
    Hardware(HardwareError),
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoverError::UnknownDevice(d) => write!(f, "unknown device {d}"),
            HandoverError::UnknownNode(n) => write!(f, "unknown node {n}"),
            HandoverError::NotRegistered(d) => write!(f, "{d} has no registered interrupt"),
            HandoverError::NotOwner {
                device,
                claimed,
                owner,
            } => match owner {
                Some(o) => write!(f, "{claimed} does not own {device} ({o} does)"),
                None => write!(f, "{claimed} does not own {device} (nobody does)"),
            },
            HandoverError::SameOwner { device, node } => write!(f, "{node} already owns {device}"),
            HandoverError::NotACandidate { device, node } => {
                write!(
                    f,
                    "the plan does not let {node} own {device} (not standing by for it)"
                )
            }
            HandoverError::TargetNotRunning { node, state } => {
                write!(f, "target {node} is {state}")
            }
            HandoverError::AlreadyInProgress { device, from, to } => {
                write!(f, "{device} is already being handed from {from} to {to}")
            }
            HandoverError::NotInProgress(d) => write!(f, "no hand-over of {d} in progress"),
            HandoverError::WrongStep { device, at } => {
                write!(f, "{device}: hand-over is at {}", at.as_str())
            }
            HandoverError::WrongNode {
                device,
                by,
                expected,
            } => write!(f, "{device}: {by} asked, only {expected} may"),
            HandoverError::VectorsExhausted(d) => write!(f, "{d}: no free vector for the target"),
            HandoverError::RemoteIrrTimeout { device, polls } => write!(
                f,
                "{device}: remote IRR still set after {polls} polls; hand-over abandoned"
            ),
            HandoverError::Hardware(e) => write!(f, "hardware: {e}"),
        }
    }
}

impl IrqLayer {
    /// Starts handing `device` from its owner `from` to `to`. `wait_polls` bounds the wait for
    /// remote IRR: that many [`IrqLayer::handover_poll`]s may find it set before the hand-over
    /// is abandoned.
    pub fn handover(
        &mut self,
        device: DeviceId,
        from: NodeId,
        to: NodeId,
        wait_polls: u32,
        now: u64,
    ) -> Result<(), HandoverError> {
        let i = self.known(device, from).map_err(unknown)?;
        let r = self.check_request(i, from, to);
        if let Err(e) = r {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(e);
        }
        let Some(new_vector) = self.vectors_mut().reserve(device) else {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(HandoverError::VectorsExhausted(device));
        };
        let d = self.dev_mut(i);
        let mut trace = Trace::new(device, from, to);
        trace.push(HandoverStep::Requested, now);
        d.handover = Some(Handover {
            from,
            to,
            step: HandoverStep::Requested,
            polls_left: wait_polls,
            polls: 0,
            new_vector,
            old_vector: d.info.vector.expect("registered"),
            pin_masked: false,
            latched_edge: false,
            from_gone: false,
            trace,
        });
        d.info.state = DeviceState::HandingOver;
        Ok(())
    }

    /// The hand-over of `device` in progress, if any: who hands it to whom, the vector the
    /// layer reserved for the new owner (which must bind it before the switch) and the step.
    pub fn handover_status(&self, device: DeviceId) -> Option<HandoverStatus> {
        let h = self.dev(self.slot(device)?).handover?;
        Some(HandoverStatus {
            from: h.from,
            to: h.to,
            new_vector: h.new_vector,
            step: h.step,
        })
    }

    fn check_request(&self, i: usize, from: NodeId, to: NodeId) -> Result<(), HandoverError> {
        let d = self.dev(i);
        let device = d.info.id;
        let Some(to_state) = self.node_state(to) else {
            return Err(HandoverError::UnknownNode(to));
        };
        if let Some(h) = d.handover {
            return Err(HandoverError::AlreadyInProgress {
                device,
                from: h.from,
                to: h.to,
            });
        }
        if d.info.owner != Some(from) {
            return Err(HandoverError::NotOwner {
                device,
                claimed: from,
                owner: d.info.owner,
            });
        }
        if d.info.binding.is_none() {
            return Err(HandoverError::NotRegistered(device));
        }
        if to == from {
            return Err(HandoverError::SameOwner { device, node: to });
        }
        if d.candidates.is_some_and(|m| m & (1 << to.0) == 0) {
            return Err(HandoverError::NotACandidate { device, node: to });
        }
        if to_state != NodeState::Running {
            return Err(HandoverError::TargetNotRunning {
                node: to,
                state: to_state,
            });
        }
        Ok(())
    }

    /// The old owner `by` has stopped its driver and masked the device; the layer masks the
    /// pin (or MSI). `latched_edge`: the driver saw an edge (or message) that its device will
    /// not signal again and that it did not service; the layer sends it once to the new owner
    /// after the switch.
    pub fn handover_quiesced(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        by: NodeId,
        latched_edge: bool,
        now: u64,
    ) -> Result<(), HandoverError> {
        let i = self.known(device, by).map_err(unknown)?;
        let h = self.step_check(i, by, HandoverStep::Requested)?;
        {
            let h = self.dev_mut(i).handover.as_mut().expect("checked");
            h.pin_masked = true;
            h.latched_edge = latched_edge;
        }
        if let Err(e) = self.program(hw, i) {
            self.dev_mut(i).handover = Some(h);
            return Err(HandoverError::Hardware(e));
        }
        self.dev_mut(i)
            .handover
            .as_mut()
            .expect("checked")
            .advance(HandoverStep::Quiesced, now);
        Ok(())
    }

    /// The old owner gives up before the switch: the pin's mask is restored, the reserved
    /// vector freed; the old owner unmasks its device again.
    pub fn cancel_handover(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        by: NodeId,
        now: u64,
    ) -> Result<(), HandoverError> {
        let i = self.known(device, by).map_err(unknown)?;
        let Some(h) = self.dev(i).handover else {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(HandoverError::NotInProgress(device));
        };
        if by != h.from {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(HandoverError::WrongNode {
                device,
                by,
                expected: h.from,
            });
        }
        if h.switched() {
            self.dev_mut(i).info.counters.refused += 1;
            return Err(HandoverError::WrongStep { device, at: h.step });
        }
        self.abort_handover(hw, i, AbortReason::Cancelled, now)
            .map_err(HandoverError::Hardware)
    }

    /// Advances the hand-over as far as it can go now.
    pub fn handover_poll(
        &mut self,
        hw: &mut impl Hardware,
        device: DeviceId,
        now: u64,
    ) -> Result<HandoverProgress, HandoverError> {
        let Some(i) = self.slot(device) else {
            return Err(HandoverError::UnknownDevice(device));
        };
        let Some(h) = self.dev(i).handover else {
            return Err(HandoverError::NotInProgress(device));
        };
        let binding = self.dev(i).info.binding.expect("registered");
        match h.step {
            HandoverStep::Requested => return Ok(HandoverProgress::AwaitingQuiesce),
            HandoverStep::Quiesced => {
                if let Binding::Pin { pin, .. } = binding
                    && binding.is_level()
                    && hw.read_entry(pin).remote_irr
                {
                    if h.polls_left == 0 {
                        let polls = h.polls;
                        self.abort_handover(hw, i, AbortReason::RemoteIrrTimeout, now)
                            .map_err(HandoverError::Hardware)?;
                        return Err(HandoverError::RemoteIrrTimeout { device, polls });
                    }
                    let h = self.dev_mut(i).handover.as_mut().expect("some");
                    h.polls_left -= 1;
                    h.polls += 1;
                    return Ok(HandoverProgress::AwaitingRemoteIrr {
                        polls_left: h.polls_left,
                    });
                }
                self.hmut(i).advance(HandoverStep::RemoteIrrClear, now);
                self.switch(hw, i, now).map_err(HandoverError::Hardware)?;
            }
            // A switch whose write did not read back: try again.
            HandoverStep::RemoteIrrClear => {
                self.switch(hw, i, now).map_err(HandoverError::Hardware)?;
            }
            _ => {}
        }
        self.notify(i, now)
    }

    /// RemoteIrrClear -> Switched (-> EdgeReplayed).
    fn switch(&mut self, hw: &mut impl Hardware, i: usize, now: u64) -> Result<(), HardwareError> {
        let h = self.dev(i).handover.expect("some");
        let before = self.dev(i).info;
        {
            let d = self.dev_mut(i);
            d.info.owner = Some(h.to);
            d.info.vector = Some(h.new_vector);
            d.handover.as_mut().expect("some").pin_masked = false;
        }
        if let Err(e) = self.program(hw, i) {
            // Back to the old owner, still masked by the hand-over.
            let d = self.dev_mut(i);
            d.info.owner = before.owner;
            d.info.vector = before.vector;
            d.handover.as_mut().expect("some").pin_masked = true;
            let _ = self.program(hw, i);
            return Err(e);
        }
        self.vectors_mut().activate(h.new_vector);
        self.vectors_mut().retire(h.old_vector, h.from);
        self.update_route(i);
        self.hmut(i).advance(HandoverStep::Switched, now);
        let binding = self.dev(i).info.binding.expect("registered");
        if h.latched_edge && binding.trigger() == crate::TriggerMode::Edge {
            let apic = self.apic_of(h.to).expect("declared");
            hw.inject(apic, h.new_vector);
            self.dev_mut(i).info.counters.reinjected += 1;
            self.hmut(i).advance(HandoverStep::EdgeReplayed, now);
        }
        Ok(())
    }

    /// Switched / EdgeReplayed -> DetachedNotified -> AttachedNotified -> Done.
    fn notify(&mut self, i: usize, now: u64) -> Result<HandoverProgress, HandoverError> {
        let d = self.dev(i).info;
        let gsi = d.binding.expect("registered").gsi();
        let h = self.dev(i).handover.expect("some");
        if matches!(h.step, HandoverStep::Switched | HandoverStep::EdgeReplayed) {
            if h.from_gone || self.node_state(h.from) != Some(NodeState::Running) {
                // The old owner is gone: its vector cannot be pending anywhere alive.
                self.vectors_mut().release(h.old_vector);
                self.hmut(i).advance(HandoverStep::DetachedSkipped, now);
            } else {
                match self
                    .outbox_mut()
                    .post(h.from, NoticeKind::Detached, d.id, gsi, h.old_vector)
                {
                    Ok(_) => self.hmut(i).advance(HandoverStep::DetachedNotified, now),
                    Err(_) => return Ok(HandoverProgress::AwaitingOutbox { to: h.from }),
                }
            }
        }
        let h = self.dev(i).handover.expect("some");
        if matches!(
            h.step,
            HandoverStep::DetachedNotified | HandoverStep::DetachedSkipped
        ) {
            match self.outbox_mut().post(
                h.to,
                NoticeKind::Attached(AttachReason::Handover),
                d.id,
                gsi,
                h.new_vector,
            ) {
                Ok(_) => self.hmut(i).advance(HandoverStep::AttachedNotified, now),
                Err(_) => return Ok(HandoverProgress::AwaitingOutbox { to: h.to }),
            }
        }
        let h = self.dev(i).handover.expect("some");
        if h.step != HandoverStep::AttachedNotified {
            return Err(HandoverError::WrongStep {
                device: d.id,
                at: h.step,
            });
        }
        let dm = self.dev_mut(i);
        let mut h = dm.handover.take().expect("some");
        h.advance(HandoverStep::Done, now);
        dm.last_trace = Some(h.trace);
        dm.info.state = DeviceState::Attached;
        dm.info.counters.handovers += 1;
        Ok(HandoverProgress::Done)
    }

    /// Ends a hand-over before its switch: the reserved vector is freed, the pin re-programmed
    /// with the owner's own mask state.
    pub(crate) fn abort_handover(
        &mut self,
        hw: &mut impl Hardware,
        i: usize,
        reason: AbortReason,
        now: u64,
    ) -> Result<(), HardwareError> {
        let h = self.dev(i).handover.expect("some");
        self.vectors_mut().release(h.new_vector);
        self.end_handover(i, reason, now);
        self.program(hw, i)
    }

    fn step_check(
        &mut self,
        i: usize,
        by: NodeId,
        at: HandoverStep,
    ) -> Result<Handover, HandoverError> {
        let device = self.dev(i).info.id;
        let r = match self.dev(i).handover {
            None => Err(HandoverError::NotInProgress(device)),
            Some(h) if h.from != by => Err(HandoverError::WrongNode {
                device,
                by,
                expected: h.from,
            }),
            Some(h) if h.step != at => Err(HandoverError::WrongStep { device, at: h.step }),
            Some(h) => Ok(h),
        };
        if r.is_err() {
            self.dev_mut(i).info.counters.refused += 1;
        }
        r
    }

    fn hmut(&mut self, i: usize) -> &mut Handover {
        self.dev_mut(i)
            .handover
            .as_mut()
            .expect("hand-over in progress")
    }
}

fn unknown(e: Unknown) -> HandoverError {
    match e {
        Unknown::Device(d) => HandoverError::UnknownDevice(d),
        Unknown::Node(n) => HandoverError::UnknownNode(n),
    }
}
