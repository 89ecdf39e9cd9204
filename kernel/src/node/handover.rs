//! Node 0 runs `mint handover`: host frames stream into the real e1000
//! while the interrupt layer hands it back and forth between two nodes
//! (`irq::handover`), and every frame is accounted for across both.
//!
//! Each receiving node has its own accounting line and seen map
//! (`mint_abi::real_nic`); node 0 configures both with one run, says
//! `MINT-HANDOVER-ARMED run=R` once both armed, hands the NIC over every
//! `spacing_ms` (one `MINT-HANDOVER-ROUND {json}` each, with the layer's
//! trace and node 0's own stamps), says `MINT-HANDOVER-ROUNDS-DONE`, reads
//! the host's `sent N`, lets both receivers finish and prints the sum as
//! `MINT-HANDOVER {json}`: frames two owners both delivered are the seen
//! maps' intersection, frames nobody delivered their union's complement.
//! When node 0 is one of the two nodes, its own receiver is stepped in
//! every wait here.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use mint_abi::NodeId;
use mint_abi::debug_nic::{DropReason, RunControl, RunPhase};
use mint_abi::node::NodeState;
use mint_traffic::GenConfig;

use super::boot0::HandoverPlan;
use crate::arch::cpu;
use crate::net::Receiver;
use crate::nic::area::{self, SeenMap};
use crate::nic::support::{ARM_TIMEOUT_MS, SETTLE_DEADLINE_MS};
use crate::{irq, println, shared};

fn ctl(node: NodeId) -> &'static RunControl {
    &shared::region().real_nic.receivers[node.index()]
}

/// What node 0 does while it waits: step its own receiver if it has one,
/// else (or when that found nothing) halt until the next interrupt.
struct Idle<'a> {
    rx: Option<&'a mut Receiver>,
}

impl Idle<'_> {
    fn run(&mut self) {
        if let Some(r) = self.rx.as_deref_mut()
            && r.step()
        {
            return;
        }
        x86_64::instructions::interrupts::disable();
        if self.rx.as_deref().is_none_or(|r| r.idle()) {
            x86_64::instructions::interrupts::enable_and_hlt();
        } else {
            x86_64::instructions::interrupts::enable();
        }
    }

    /// Waits until `cond`, at most `ms`; whether it came.
    fn until(&mut self, ms: u64, cond: impl Fn() -> bool) -> bool {
        let deadline = cpu::rdtsc() + super::ms_to_ticks(ms);
        while !cond() {
            if cpu::rdtsc() > deadline {
                return false;
            }
            self.run();
        }
        true
    }
}

/// The run; returns whether every frame was accounted for, none twice and
/// no interrupt misrouted.
pub fn run(cfg: &GenConfig, plan: HandoverPlan, mut own: Option<Receiver>) -> Result<bool, String> {
    let nodes = [plan.from, plan.to];
    if cfg.count > mint_abi::real_nic::SEEN_FRAMES {
        return Err(alloc::format!(
            "handover: at most {} frames per run (the seen maps' size)",
            mint_abi::real_nic::SEEN_FRAMES
        ));
    }
    let area = area::bytes().ok_or("handover: the shared region has no NIC area")?;
    let maps: Vec<SeenMap> = nodes
        .iter()
        .map(|&n| area::seen_map(&area, n).ok_or("handover: no seen map"))
        .collect::<Result<_, _>>()?;
    let run_id = ctl(plan.from)
        .run_id
        .load(Ordering::Relaxed)
        .wrapping_add(1);
    for irqs in &shared::region().real_nic.irq {
        irqs.reset();
    }
    for &n in &nodes {
        // No raw samples: two receivers' would interleave on the host;
        // the counts are what this run is about.
        crate::nic::support::configure(ctl(n), cfg, run_id, false);
        ctl(n).set_phase(RunPhase::Configured);
    }
    let mut idle = Idle { rx: own.as_mut() };
    let answered = |n: NodeId| matches!(ctl(n).phase(), Some(RunPhase::Armed | RunPhase::Refused));
    if !idle.until(ARM_TIMEOUT_MS, || nodes.iter().all(|&n| answered(n))) {
        for &n in &nodes {
            ctl(n).set_phase(RunPhase::Idle);
        }
        return Err(alloc::format!(
            "handover: {} and {} did not both arm within {ARM_TIMEOUT_MS} ms",
            plan.from,
            plan.to
        ));
    }
    if let Some(&n) = nodes
        .iter()
        .find(|&&n| ctl(n).phase() == Some(RunPhase::Refused))
    {
        return Err(alloc::format!(
            "handover: {n} refused the run: no memory for it"
        ));
    }
    println!("MINT-HANDOVER-ARMED run={run_id} tsc={}", cpu::rdtsc());

    let mut rounds_ok = 0u32;
    let mut failure: Option<String> = None;
    let (mut cur, mut next) = (plan.from, plan.to);
    for round in 0..plan.rounds {
        let start = cpu::rdtsc();
        let spacing = super::ms_to_ticks(u64::from(plan.spacing_ms));
        while cpu::rdtsc() - start < spacing {
            idle.run();
        }
        if let Some(&gone) = nodes
            .iter()
            .find(|&&n| shared::slot(n).state() != Some(NodeState::Running))
        {
            failure = Some(alloc::format!("round {round}: {gone} is not running"));
            break;
        }
        match irq::handover(cur, next, &mut || idle.run()) {
            Ok(r) => {
                println!("MINT-HANDOVER-ROUND {}", round_json(round, &r));
                rounds_ok += 1;
                core::mem::swap(&mut cur, &mut next);
            }
            Err(e) => {
                println!(
                    "MINT-HANDOVER-ROUND {{\"round\":{round},\"from\":{},\"to\":{},\"ok\":false,\"error\":\"{}\"}}",
                    cur.0,
                    next.0,
                    e.replace(['"', '\\'], "'")
                );
                failure = Some(alloc::format!("round {round}: {e}"));
                break;
            }
        }
    }
    println!("MINT-HANDOVER-ROUNDS-DONE rounds={rounds_ok}");

    let sent = super::nicrun::read_sent(3_600_000, &mut || idle.run())?;
    for &n in &nodes {
        ctl(n).sent.store(sent, Ordering::Release);
        ctl(n).set_phase(RunPhase::Injected);
    }
    let complete = || {
        nodes
            .iter()
            .all(|&n| ctl(n).phase() == Some(RunPhase::Complete))
    };
    let completed = idle.until(SETTLE_DEADLINE_MS, complete);

    // Frames each owner delivered; those both did; those nobody did.
    let words = (cfg.count as usize).div_ceil(64);
    let (mut both, mut either) = (0u64, 0u64);
    for i in 0..words {
        let mask = if i + 1 == words && !cfg.count.is_multiple_of(64) {
            (1u64 << (cfg.count % 64)) - 1
        } else {
            u64::MAX
        };
        let (a, b) = (maps[0].word(i) & mask, maps[1].word(i) & mask);
        both += u64::from((a & b).count_ones());
        either += u64::from((a | b).count_ones());
    }
    let delivered: [u64; 2] = nodes.map(|n| ctl(n).delivered.load(Ordering::Acquire));
    let drops = |r: DropReason| -> u64 { nodes.iter().map(|&n| ctl(n).drop_count(r)).sum() };
    let own_duplicates = drops(DropReason::Duplicate);
    let duplicates = both + own_duplicates;
    // Duplicates and frames of another run are not among this run's sent
    // frames: reported, never subtracted (they could hide a lost one).
    let dropped: u64 = DropReason::ALL
        .iter()
        .filter(|&&r| !matches!(r, DropReason::Duplicate | DropReason::StaleRun))
        .map(|&r| drops(r))
        .sum();
    let unique = delivered.iter().sum::<u64>().saturating_sub(both);
    // The maps and the counts are kept apart (the maps in the NIC area,
    // the counts in each node's line): they must agree.
    let maps_agree = either == unique;
    let unaccounted = sent as i64 - unique as i64 - dropped as i64;
    let irqs = &shared::region().real_nic.irq;
    let stray: u64 = irqs.iter().map(|c| c.stray.load(Ordering::Acquire)).sum();
    let bad_notices: u64 = irqs
        .iter()
        .map(|c| c.bad_notices.load(Ordering::Acquire))
        .sum();

    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"run\":{run_id},\"tsc_hz\":{},\"completed\":{completed},\"from\":{},\"to\":{},\"rounds_asked\":{},\"rounds\":{rounds_ok},\"spacing_ms\":{},",
        super::tsc_hz(),
        plan.from.0,
        plan.to.0,
        plan.rounds,
        plan.spacing_ms,
    );
    if let Some(f) = &failure {
        let _ = write!(s, "\"failure\":\"{}\",", f.replace(['"', '\\'], "'"));
    }
    let _ = write!(
        s,
        "\"config\":{{\"size\":{},\"count\":{},\"kind\":\"{}\",\"seed\":{}}},\"sent\":{sent},\"delivered\":{{\"node{}\":{},\"node{}\":{}}},\"delivered_unique\":{unique},\"seen_by_both\":{both},\"seen_by_either\":{either},\"maps_agree\":{maps_agree},\"duplicates\":{duplicates},\"dropped\":{{",
        cfg.size,
        cfg.count,
        cfg.kind.as_str(),
        cfg.seed,
        plan.from.0,
        delivered[0],
        plan.to.0,
        delivered[1],
    );
    crate::nic::support::drops_json(&mut s, drops);
    let _ = write!(
        s,
        "}},\"missed_by_nic\":{},\"unaccounted\":{unaccounted},\"misrouted_interrupts\":{stray},\"bad_notices\":{bad_notices},\"interrupts\":{{",
        drops(DropReason::RingFull),
    );
    for (i, n) in (0..super::node_count()).map(NodeId).enumerate() {
        let c = &irqs[n.index()];
        let _ = write!(
            s,
            "{}\"node{}\":{{\"serviced\":{},\"deferred\":{},\"stray\":{},\"attached\":{},\"detached\":{},\"bad_notices\":{}}}",
            if i > 0 { "," } else { "" },
            n.0,
            c.serviced.load(Ordering::Acquire),
            c.deferred.load(Ordering::Acquire),
            c.stray.load(Ordering::Acquire),
            c.attached.load(Ordering::Acquire),
            c.detached.load(Ordering::Acquire),
            c.bad_notices.load(Ordering::Acquire),
        );
    }
    s.push_str("},\"irq\":");
    irq::report_json(&mut s);
    s.push('}');
    println!("MINT-HANDOVER {s}");
    Ok(failure.is_none()
        && completed
        && maps_agree
        && unaccounted == 0
        && duplicates == 0
        && stray == 0
        && bad_notices == 0)
}

/// One round's line: node 0's stamps merged into the layer's trace, in
/// TSC order, and the times that matter.
fn round_json(round: u32, r: &irq::Round) -> String {
    // In protocol order, not sorted: node 0's stamps go where the
    // protocol puts them (the old owner answers before the new one
    // prepares, both before the layer masks the pin), so stamps out of
    // order would show a clock or protocol fault.
    let mut steps: Vec<(&str, u64)> = Vec::new();
    for e in r.trace.entries() {
        steps.push((e.step.as_str(), e.at));
        if e.step == mint_irq::HandoverStep::Requested {
            steps.push(("old-owner-quiesced", r.quiesced_at));
            steps.push(("new-owner-prepared", r.prepared_at));
        }
    }
    steps.push(("notices-acknowledged", r.acked_at));
    let first = steps.first().map_or(0, |s| s.1);
    let layer_done = r
        .trace
        .last()
        .map_or(0, |e| e.at)
        .saturating_sub(r.trace.entries().first().map_or(0, |e| e.at));
    let us = |t: u64| super::ticks_to_ns(t) as f64 / 1000.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"round\":{round},\"from\":{},\"to\":{},\"ok\":true,\"handover_us\":{:.3},\"layer_us\":{:.3},\"remote_irr_polls\":{},\"cleaned_on_quiesce\":{},\"steps\":[",
        r.from.0,
        r.to.0,
        us(r.acked_at.saturating_sub(first)),
        us(layer_done),
        r.remote_irr_polls,
        r.cleaned_on_quiesce,
    );
    for (i, (step, at)) in steps.iter().enumerate() {
        let _ = write!(
            s,
            "{}{{\"step\":\"{step}\",\"tsc\":{at}}}",
            if i > 0 { "," } else { "" }
        );
    }
    s.push_str("]}");
    s
}
