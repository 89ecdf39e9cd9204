//! Node 0's watch over the machine: heartbeats, the end of the ping round,
//! and the run report the `mint` CLI reads (`MINT-REPORT {json}` on node
//! 0's console).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use mint_abi::NodeId;
use mint_abi::node::{MessageKind, NodeState};
use mint_abi::shared::{Incident, MAX_NODES, PINGS_PER_PEER, REASON_LEN};
use mint_mailbox::Message;

use crate::arch::cpu;
use crate::{println, shared};

use super::boot0::record;

/// A node whose heartbeat has not moved while node 0's own timer ticked
/// this many times (1 s) is declared crashed.
pub const HEARTBEAT_TIMEOUT_TICKS: u64 = super::TIMER_HZ;
/// The ping round must end within this.
const SETTLE_TIMEOUT_MS: u64 = 20_000;

/// Per-node heartbeat watch state.
#[derive(Clone, Copy, Default)]
pub struct Watch {
    seen: bool,
    last_beat: u64,
    /// Node 0's own heartbeat when `last_beat` last changed.
    own_beat_then: u64,
}

/// Checks every node's heartbeat once; declares silent nodes crashed.
///
/// Time is counted in node 0's own timer ticks, not TSC: when the whole
/// machine stands still (a gdb breakpoint, the host descheduling QEMU),
/// node 0's ticks stop too, and nobody is declared dead for it.
pub fn check_heartbeats(watch: &mut [Watch; MAX_NODES]) {
    let own = shared::slot(NodeId(0)).heartbeat.load(Ordering::Relaxed);
    for id in (1..super::node_count()).map(NodeId) {
        let slot = shared::slot(id);
        let beat = slot.heartbeat.load(Ordering::Relaxed);
        let w = &mut watch[id.index()];
        if !w.seen || beat != w.last_beat {
            *w = Watch {
                seen: true,
                last_beat: beat,
                own_beat_then: own,
            };
        } else if slot.state() == Some(NodeState::Running)
            && own - w.own_beat_then > HEARTBEAT_TIMEOUT_TICKS
            && slot.declare_crashed_from(
                NodeState::Running,
                "heartbeat lost: no timer tick while node 0 counted 1 s (stuck with interrupts off?)",
            )
        {
            println!("node0: {id} declared crashed: heartbeat lost");
        }
    }
    // Whatever ended a node (its own panic or fault, a lost heartbeat, a
    // halt): the interrupt layer takes its devices back.
    crate::irq::observe_nodes();
}

/// Waits until every node has finished its ping round or stopped.
pub fn settle() {
    let mut watch = [Watch::default(); MAX_NODES];
    let deadline = cpu::rdtsc() + super::ms_to_ticks(SETTLE_TIMEOUT_MS);
    loop {
        check_heartbeats(&mut watch);
        let settled = (0..super::node_count()).map(NodeId).all(|id| {
            let slot = shared::slot(id);
            match slot.state() {
                Some(NodeState::Running) => slot.pings_done.load(Ordering::Acquire) != 0,
                Some(NodeState::Booting) => false,
                _ => true,
            }
        });
        if settled {
            return;
        }
        if cpu::rdtsc() > deadline {
            shared::slot(NodeId(0)).count(Incident::WaitExpired);
            println!(
                "node0: the ping round did not settle within {} s; reporting as is",
                SETTLE_TIMEOUT_MS / 1000
            );
            return;
        }
        x86_64::instructions::hlt();
    }
}

/// Asks every running node to halt, then powers the machine off.
pub fn power_off() -> ! {
    for id in (1..super::node_count()).map(NodeId) {
        if shared::slot(id).state() == Some(NodeState::Running) {
            let _ = super::send(id, Message::new(MessageKind::Halt as u32, 0, [0; 3]));
        }
    }
    // Each running node halts at its next mailbox interrupt; 2 s leaves a
    // loaded host room to schedule their virtual CPUs.
    let deadline = cpu::rdtsc() + super::ms_to_ticks(2_000);
    while cpu::rdtsc() < deadline
        && (1..super::node_count())
            .any(|i| shared::slot(NodeId(i)).state() == Some(NodeState::Running))
    {
        core::hint::spin_loop();
    }
    println!("MINT-POWEROFF");
    cpu::qemu_exit(0)
}

/// RTT samples (ns) `from` measured to `to`.
pub fn rtt_samples(from: NodeId, to: NodeId) -> Vec<u64> {
    let slot = shared::slot(from);
    let n = (slot.ping_count[to.index()].load(Ordering::Acquire) as usize).min(PINGS_PER_PEER);
    slot.ping_rtt[to.index()][..n]
        .iter()
        .map(|t| super::ticks_to_ns(t.load(Ordering::Relaxed)))
        .collect()
}

/// Nearest-rank percentile of sorted samples, as JSON (`null` for none).
fn percentile(sorted: &[u64], p: u64) -> String {
    if sorted.is_empty() {
        return String::from("null");
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1) as usize;
    alloc::format!("{}", sorted[rank - 1])
}

/// Prints `MINT-REPORT {json}`: the state table with RTT figures and the
/// raw RTT samples behind them.
pub fn print_report() {
    crate::irq::observe_nodes();
    let rec = record();
    let mut s = String::new();
    let _ = write!(s, "{{\"tsc_hz\":{},\"tsc\":", super::tsc_hz());
    super::tsc::report_json(&mut s);
    let cross_core_trusted = rec
        .plan
        .nodes
        .iter()
        .filter(|n| n.id != NodeId(0) && !n.os.is_linux())
        .filter(|n| shared::slot(n.id).state() == Some(NodeState::Running))
        .all(|n| !super::tsc::is_skewed(super::tsc::sync_result(n.id)));
    let _ = write!(
        s,
        ",\"tsc_skew_limit_ns\":{},\"cross_core_trusted\":{cross_core_trusted},\"x2apic\":{},\"nodes\":[",
        super::tsc::SKEW_LIMIT_NS,
        rec.x2apic
    );
    for (i, node) in rec.plan.nodes.iter().enumerate() {
        let id = node.id;
        let slot = shared::slot(id);
        let state = slot.state().map_or("garbage", |st| st.as_str());
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{{\"id\":{}", id.0);
        if node.os.is_linux() {
            crate::linux::report_json(&mut s, id);
        } else {
            let _ = write!(s, ",\"state\":\"{state}\",\"os\":\"mint\"");
        }
        if slot.state() == Some(NodeState::Crashed) {
            let mut buf = [0u8; REASON_LEN];
            let _ = write!(s, ",\"reason\":\"{}\"", json_escape(slot.reason(&mut buf)));
        }
        let cores: Vec<u8> = node.cores.iter().map(|c| c.0).collect();
        let apic = shared::header().apic_ids[id.index()].load(Ordering::Relaxed);
        let (base, size) = rec.layout.node(id).map_or((0, 0), |(b, s)| (b.as_u64(), s));
        let _ = write!(
            s,
            ",\"cores\":{cores:?},\"apic_ids\":[{apic}],\"memory\":{{\"base\":{base},\"size\":{size}}},\"devices\":["
        );
        for (j, d) in node.devices.iter().enumerate() {
            let _ = write!(s, "{}\"{d}\"", if j > 0 { "," } else { "" });
        }
        let apic_errors = &shared::region().debug_nic.apic_errors;
        let _ = write!(
            s,
            "],\"heartbeats\":{},\"apic_errors\":{},\"apic_error_status\":{}",
            slot.heartbeat.load(Ordering::Relaxed),
            apic_errors.count[id.index()].load(Ordering::Relaxed),
            apic_errors.status[id.index()].load(Ordering::Relaxed)
        );
        let _ = write!(s, ",\"incidents\":{{");
        for (j, k) in Incident::ALL.iter().enumerate() {
            let _ = write!(
                s,
                "{}\"{}\":{}",
                if j > 0 { "," } else { "" },
                k.as_str(),
                slot.incident_count(*k)
            );
        }
        s.push('}');
        // The devices the interrupt layer has this node own now, and the
        // device interrupts its entry saw.
        let irqs = &shared::region().real_nic.irq[id.index()];
        let owns = crate::irq::owner(crate::irq::NIC0) == Some(id);
        let _ = write!(
            s,
            ",\"owns\":[{}],\"device_interrupts\":{{\"serviced\":{},\"deferred\":{},\"stray\":{},\"attached\":{},\"detached\":{}}}",
            if owns { "\"nic0\"" } else { "" },
            irqs.serviced.load(Ordering::Relaxed),
            irqs.deferred.load(Ordering::Relaxed),
            irqs.stray.load(Ordering::Relaxed),
            irqs.attached.load(Ordering::Relaxed),
            irqs.detached.load(Ordering::Relaxed),
        );
        let _ = write!(s, ",\"tsc_sync\":");
        super::tsc::sync_json(&mut s, id);
        let mut all = Vec::new();
        let _ = write!(s, ",\"peers\":[");
        let mut first = true;
        for peer in rec.plan.nodes.iter().map(|n| n.id).filter(|&p| p != id) {
            let samples = rtt_samples(id, peer);
            let _ = write!(
                s,
                "{}{{\"peer\":{},\"rtt_ns\":{samples:?}}}",
                if first { "" } else { "," },
                peer.0
            );
            first = false;
            all.extend(samples);
        }
        all.sort_unstable();
        let _ = write!(
            s,
            "],\"ipi_rtt_ns\":{{\"count\":{},\"p50\":{},\"max\":{}}}}}",
            all.len(),
            percentile(&all, 50),
            all.last()
                .map_or(String::from("null"), |m| alloc::format!("{m}"))
        );
    }
    s.push_str("],\"irq\":");
    crate::irq::report_json(&mut s);
    s.push('}');
    println!("MINT-REPORT {s}");
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
