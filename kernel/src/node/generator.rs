//! Node 0 as the support node: runs the interrupt generator against the
//! target's driver and reports the run (`MINT-GEN {json}` plus raw
//! send-time samples for `mint gen`; a summary in the shell).

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use mint_abi::NodeId;
use mint_abi::debug_nic::DropReason;
use mint_traffic::{GenConfig, Summary};

use crate::nic::support::{self, Faults};
use crate::{println, shared};

/// Runs one generator run; `machine_readable` prints the JSON record and
/// raw samples the CLI collects, otherwise a human summary.
pub fn run(
    cfg: &GenConfig,
    target: NodeId,
    faults: Faults,
    machine_readable: bool,
) -> Result<bool, String> {
    let (shared_phys, shared_size) = super::shared_window();
    let r = support::run(
        cfg,
        target,
        machine_readable,
        faults,
        shared_phys,
        shared_size,
    )?;
    let ctl = &shared::region().debug_nic.run;
    let sent = ctl.sent.load(Ordering::Acquire);
    let delivered = ctl.delivered.load(Ordering::Acquire);
    let corrupted = ctl.drop_count(DropReason::BadChecksum);
    let unaccounted = ctl.unaccounted();
    let nic = &shared::region().debug_nic;
    let recoveries = ctl.recoveries.load(Ordering::Acquire);
    let forgotten = ctl.ipis_forgotten.load(Ordering::Acquire);
    let apic_errors = nic.apic_errors.total();
    if let Some(why) = &r.incomplete {
        println!("{why}");
    }
    if machine_readable {
        crate::net::dump_samples(r.run_id, "send_time", &r.send_ticks);
        crate::net::dump_samples(r.run_id, "ipi_request", &r.ipi_request_ticks);
        crate::net::dump_samples(r.run_id, "inject_tsc", &r.inject_tsc);
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"run\":{},\"tsc_hz\":{},\"completed\":{},\"config\":{{\"size\":{},\"count\":{},\"interval_ns\":{},\"pattern\":\"{}\",\"kind\":\"{}\",\"seed\":{},\"moderation\":\"{}\",\"deliver\":\"{}\",\"corrupt_every\":{},\"forget_ipi_every\":{},\"stale_every\":{}}}",
            r.run_id,
            super::tsc_hz(),
            r.completed,
            cfg.size,
            cfg.count,
            cfg.interval_ns,
            cfg.pattern,
            cfg.kind.as_str(),
            cfg.seed,
            cfg.moderation,
            cfg.deliver,
            faults.corrupt_every,
            faults.forget_ipi_every,
            faults.stale_every,
        );
        if let Some(why) = &r.incomplete {
            // The message is ours: no quotes or backslashes to escape.
            let _ = write!(s, ",\"incomplete\":\"{}\"", why.replace(['"', '\\'], "'"));
        }
        let _ = write!(
            s,
            ",\"sent\":{sent},\"delivered\":{delivered},\"dropped\":{{"
        );
        crate::nic::support::drops_json(&mut s, |r| ctl.drop_count(r));
        let _ = write!(
            s,
            "}},\"unaccounted\":{unaccounted},\"corrupted\":{corrupted},\"out_of_order\":{},\"interrupts\":{},\"ipis_sent\":{},\"itr_throttled\":{},\"first_inject_tsc\":{},\"last_delivery_tsc\":{},\"delivered_bytes\":{},\"inject_span_ticks\":{},\"schedule_digest\":{},\"recoveries\":{recoveries},\"ipis_forgotten\":{forgotten},\"apic_errors\":{apic_errors},\"apic_error_status\":[",
            ctl.out_of_order.load(Ordering::Acquire),
            ctl.interrupts.load(Ordering::Acquire),
            ctl.ipis_sent.load(Ordering::Acquire),
            r.throttled,
            // A driver-only run's frames are not opened at the target:
            // its first injection is the support node's first stamp.
            match ctl.first_inject_tsc.load(Ordering::Acquire) {
                0 => r.inject_tsc.first().copied().unwrap_or(0),
                t => t,
            },
            ctl.last_delivery_tsc.load(Ordering::Acquire),
            ctl.delivered_bytes.load(Ordering::Acquire),
            r.inject_span,
            r.schedule_digest,
        );
        for (i, status) in nic.apic_errors.status.iter().enumerate() {
            let bits = status.load(Ordering::Acquire);
            let _ = write!(s, "{}{bits}", if i > 0 { "," } else { "" });
        }
        s.push_str("]}");
        println!("MINT-GEN {s}");
        // The target prints its raw samples after Complete; the machine must
        // not power off under it. Its UART needs about 100 us per frame.
        let budget_ms = 10_000 + u64::from(cfg.count) / 10;
        let run = &shared::region().debug_nic.run;
        if r.completed
            && !crate::nic::support::wait_for(
                || run.samples_done.load(Ordering::Acquire) != 0,
                budget_ms,
            )
        {
            println!(
                "MINT-ERROR {target} did not finish printing its raw samples within {budget_ms} ms"
            );
        }
    } else {
        let mut send = r.send_ticks.clone();
        let st = Summary::from_samples(&mut send);
        let ns = super::ticks_to_ns;
        println!(
            "gen run {}: sent {sent}, delivered {delivered}, unaccounted {unaccounted}, corrupted {corrupted}, interrupts {}, IPIs {}",
            r.run_id,
            ctl.interrupts.load(Ordering::Acquire),
            ctl.ipis_sent.load(Ordering::Acquire)
        );
        println!(
            "  lost IPIs recovered by the target's timer tick: {recoveries} ({forgotten} IPIs deliberately not sent); APIC errors: {apic_errors}"
        );
        for reason in DropReason::ALL {
            let n = ctl.drop_count(reason);
            if n > 0 {
                println!("  dropped {}: {n}", reason.as_str());
            }
        }
        let na = |v: u64| {
            if st.is_empty() {
                String::from("n/a")
            } else {
                alloc::format!("{}", ns(v))
            }
        };
        println!(
            "  send processing time: mean {} ns, p50 {} ns, p99 {} ns; the target printed its latency figures on its console",
            na(st.mean as u64),
            na(st.p50),
            na(st.p99)
        );
        println!(
            "  {}",
            if r.completed && unaccounted == 0 && corrupted == 0 && delivered == sent {
                "every frame delivered"
            } else if r.completed && unaccounted == 0 && corrupted == 0 {
                "every frame accounted for, not every frame delivered"
            } else {
                "FAILED: frames unaccounted or corrupted, or the run did not complete"
            }
        );
    }
    Ok(r.completed && unaccounted == 0 && corrupted == 0)
}
