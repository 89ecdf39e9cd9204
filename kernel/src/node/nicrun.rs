//! Node 0 runs `mint nic`: one run of frames the host sends into the real
//! e1000 another node owns. Node 0 configures the run in the debug NIC's
//! run control (the receiving side is the same driver, stack and checker
//! as a generator run), says `MINT-NIC-ARMED run=R` once the owner armed,
//! reads the host's `sent N` from its console when the host has sent
//! everything, marks the run injected, waits for the owner's accounting
//! and prints it as `MINT-NIC {json}`.

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use mint_abi::NodeId;
use mint_abi::debug_nic::{DropReason, RunPhase};
use mint_traffic::{GenConfig, PacketKind};

use crate::arch::{cpu, serial};
use crate::nic::support::{self, ARM_TIMEOUT_MS, SETTLE_DEADLINE_MS, SETTLE_TIMEOUT_MS};
use crate::{println, shared};

/// Longest a console line from the host may be.
const LINE_MAX: usize = 64;

/// Waits for `sent N` on node 0's console, at most `ms`; `idle` runs
/// whenever no byte is there (it must halt or do node 0's other work).
pub(crate) fn read_sent(ms: u64, idle: &mut dyn FnMut()) -> Result<u64, String> {
    let deadline = cpu::rdtsc() + super::ms_to_ticks(ms);
    let mut line = String::new();
    loop {
        match serial::try_read() {
            Some(b'\r') => {}
            Some(b'\n') => {
                if let Some(n) = line.trim().strip_prefix("sent ")
                    && let Ok(n) = n.parse::<u64>()
                {
                    return Ok(n);
                }
                println!("node0: nic run: ignored console line {:?}", line.trim());
                line.clear();
            }
            Some(b) if line.len() < LINE_MAX => line.push(char::from(b)),
            Some(_) => {}
            None => {
                if cpu::rdtsc() > deadline {
                    return Err(alloc::format!(
                        "nic: the host did not say how many frames it sent within {} s",
                        ms / 1000
                    ));
                }
                // Halt until the next interrupt (the 100 Hz timer at the
                // latest) instead of spinning on the UART: under TCG every
                // port read takes QEMU's big lock, and a core polling the
                // line status register in a loop starves QEMU's main loop,
                // which then stops reading the e1000's socket (frames pile
                // up in the host's socket buffer until it drops them).
                idle();
            }
        }
    }
}

/// One run; returns whether every frame was accounted for.
pub fn run(cfg: &GenConfig, owner: NodeId) -> Result<bool, String> {
    // The owner's own accounting line (`mint_abi::real_nic`).
    let ctl = &shared::region().real_nic.receivers[owner.index()];
    ctl.reset_counters();
    ctl.size.store(cfg.size, Ordering::Relaxed);
    ctl.count.store(cfg.count, Ordering::Relaxed);
    ctl.kind.store(
        matches!(cfg.kind, PacketKind::Raw) as u32,
        Ordering::Relaxed,
    );
    ctl.seed.store(cfg.seed, Ordering::Relaxed);
    ctl.dump_samples.store(1, Ordering::Relaxed);
    let run_id = ctl.run_id.load(Ordering::Relaxed).wrapping_add(1);
    ctl.run_id.store(run_id, Ordering::Relaxed);
    ctl.set_phase(RunPhase::Configured);
    let answered = || matches!(ctl.phase(), Some(RunPhase::Armed | RunPhase::Refused));
    if !support::wait_for(answered, ARM_TIMEOUT_MS) {
        ctl.set_phase(RunPhase::Idle);
        return Err(alloc::format!(
            "nic: {owner} did not arm within {ARM_TIMEOUT_MS} ms (does it drive the e1000?)"
        ));
    }
    if ctl.phase() == Some(RunPhase::Refused) {
        return Err(alloc::format!(
            "nic: {owner} refused the run: no memory for its raw samples"
        ));
    }
    // With this node's TSC, so the host can relate its clock (the frames'
    // stamps) to the nodes' (see `mint nic`).
    println!("MINT-NIC-ARMED run={run_id} tsc={}", cpu::rdtsc());
    // The host sends at its own pace; it says when it is done. Bounded by
    // an hour (the CLI's own timeout is the real limit).
    let sent = read_sent(3_600_000, &mut || x86_64::instructions::hlt())?;
    ctl.sent.store(sent, Ordering::Release);
    ctl.set_phase(RunPhase::Injected);
    let incomplete = support::wait_while_progressing(
        || ctl.phase() == Some(RunPhase::Complete),
        || ctl.progress.load(Ordering::Acquire),
        SETTLE_TIMEOUT_MS,
        SETTLE_DEADLINE_MS,
    )
    .err()
    .map(|stall| {
        alloc::format!("nic: stopped waiting for {owner} to complete run {run_id}: {stall}")
    });
    let completed = incomplete.is_none();
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"run\":{run_id},\"owner\":{},\"tsc_hz\":{},\"completed\":{completed},\"config\":{{\"size\":{},\"count\":{},\"kind\":\"{}\",\"seed\":{}}}",
        owner.0,
        super::tsc_hz(),
        cfg.size,
        cfg.count,
        cfg.kind.as_str(),
        cfg.seed,
    );
    if let Some(why) = &incomplete {
        let _ = write!(s, ",\"incomplete\":\"{}\"", why.replace(['"', '\\'], "'"));
    }
    let _ = write!(
        s,
        ",\"sent\":{sent},\"delivered\":{},\"dropped\":{{",
        ctl.delivered.load(Ordering::Acquire)
    );
    for (i, reason) in DropReason::ALL.iter().enumerate() {
        let _ = write!(
            s,
            "{}\"{}\":{}",
            if i > 0 { "," } else { "" },
            reason.as_str(),
            ctl.drop_count(*reason)
        );
    }
    let _ = write!(
        s,
        "}},\"unaccounted\":{},\"corrupted\":{},\"out_of_order\":{},\"interrupts\":{},\"first_inject_tsc\":{},\"last_delivery_tsc\":{},\"delivered_bytes\":{},\"irq\":",
        ctl.unaccounted(),
        ctl.drop_count(DropReason::BadChecksum),
        ctl.out_of_order.load(Ordering::Acquire),
        ctl.interrupts.load(Ordering::Acquire),
        ctl.first_inject_tsc.load(Ordering::Acquire),
        ctl.last_delivery_tsc.load(Ordering::Acquire),
        ctl.delivered_bytes.load(Ordering::Acquire),
    );
    crate::irq::report_json(&mut s);
    s.push('}');
    println!("MINT-NIC {s}");
    // The owner prints its raw samples after Complete; do not power off
    // under it (its UART needs about 100 us per value).
    let budget_ms = 10_000 + u64::from(cfg.count) / 10;
    if completed && !support::wait_for(|| ctl.samples_done.load(Ordering::Acquire) != 0, budget_ms)
    {
        println!(
            "MINT-ERROR {owner} did not finish printing its raw samples within {budget_ms} ms"
        );
    }
    Ok(completed && ctl.unaccounted() == 0)
}
