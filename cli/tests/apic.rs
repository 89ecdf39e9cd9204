//! End-to-end tests of both local-APIC paths: x2APIC (MSRs, the ICR one
//! 64-bit write behind a full fence) wherever the QEMU in use emulates it
//! under software emulation (QEMU 10 does, 7.2 does not), and xAPIC (MMIO,
//! ICR high then low, delivery-status poll) everywhere.
//!
//! Each test states which path it expects from the QEMU it finds, so a
//! machine whose QEMU lacks x2APIC runs the xAPIC expectations instead of
//! skipping: nothing here passes without booting.

mod common;

use std::process::Command;

use common::{run_logged, uint};
use serde_json::Value;

/// The major version of the `qemu-system-x86_64` mint will find on PATH.
fn qemu_major() -> u32 {
    let out = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .expect("qemu-system-x86_64 on PATH (CI installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read QEMU's version from {text:?}"))
}

/// Whether this QEMU's TCG emulates x2APIC (QEMU 10 and later).
fn tcg_has_x2apic() -> bool {
    qemu_major() >= 10
}

/// Every node pinged every other node `PINGS` times and got every answer.
fn assert_full_ping_round(report: &Value, nodes: u64) {
    const PINGS: u64 = 32;
    let list = report["nodes"].as_array().expect("nodes array");
    assert_eq!(list.len() as u64, nodes, "{report:#}");
    for n in list {
        assert_eq!(n["state"], "running", "{report:#}");
        let count = uint(&n["ipi_rtt_ns"]["count"], "ipi_rtt_ns.count");
        assert_eq!(count, PINGS * (nodes - 1), "node {}: {report:#}", n["id"]);
    }
}

/// The default CPU model: x2APIC exactly where QEMU emulates it, and every
/// IPI of the ping round (one per ping and one per pong) arrives.
#[test]
fn boot_and_ping_on_the_apic_qemu_offers() {
    let (run, logs) = run_logged("boot", &["--nodes", "3"]);
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["x2apic"], tcg_has_x2apic(), "{report:#}");
    assert_full_ping_round(&report, 3);
    let console = std::fs::read_to_string(logs.path().join("node1.log")).expect("node1.log");
    let mode = if tcg_has_x2apic() {
        "(x2APIC)"
    } else {
        "(xAPIC)"
    };
    assert!(
        console.contains(mode),
        "node1.log should say {mode}:\n{console}"
    );
    assert_timers_agree(logs.path(), 3);
}

/// Every node calibrated its APIC timer (bracketed windows, median) to
/// within 2 % of node 0's: one machine has one timer rate, and a node
/// that read it 10 times too high would tick at 10 Hz instead of 100 (a
/// single window read late on a loaded host did).
fn assert_timers_agree(logs: &std::path::Path, nodes: u8) {
    let khz = |id: u8| -> u64 {
        let log = std::fs::read_to_string(logs.join(format!("node{id}.log"))).expect("console log");
        log.split("apic timer ")
            .nth(1)
            .and_then(|rest| rest.split(" kHz").next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("node{id}.log names no APIC timer rate:\n{log}"))
    };
    let reference = khz(0) as f64;
    assert!(reference > 0.0);
    for id in 1..nodes {
        let rate = khz(id) as f64;
        assert!(
            (rate - reference).abs() <= 0.02 * reference,
            "node{id}'s APIC timer {rate} kHz, node0's {reference} kHz"
        );
    }
}

/// A generator run on the same APIC: the debug NIC's interrupt is a fixed
/// IPI through that path; every frame is accounted for and frames arrive.
#[test]
fn generator_runs_on_the_apic_qemu_offers() {
    let (run, logs) = run_logged(
        "gen",
        &[
            "--count",
            "300",
            "--size",
            "1000",
            "--interval-ns",
            "200000",
        ],
    );
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["unaccounted"], 0, "{report:#}");
    assert_eq!(report["sent"], 300, "{report:#}");
    assert!(uint(&report["delivered"], "delivered") > 0, "{report:#}");
    assert!(uint(&report["interrupts"], "interrupts") > 0, "{report:#}");
    let console = std::fs::read_to_string(logs.path().join("node0.log")).expect("node0.log");
    let mode = if tcg_has_x2apic() {
        "(x2APIC)"
    } else {
        "(xAPIC)"
    };
    assert!(
        console.contains(mode),
        "node0.log should say {mode}:\n{console}"
    );
}

/// `--apic xapic` on any QEMU: the xAPIC path (MMIO registers, the ICR as
/// two writes and a bounded delivery-status poll) boots, pings and carries
/// the generator's IPIs even where QEMU would offer x2APIC.
#[test]
fn xapic_on_request() {
    let (run, logs) = run_logged("boot", &["--nodes", "3", "--apic", "xapic"]);
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["x2apic"], false, "{report:#}");
    assert_full_ping_round(&report, 3);
    let console = std::fs::read_to_string(logs.path().join("node2.log")).expect("node2.log");
    assert!(console.contains("(xAPIC)"), "node2.log:\n{console}");

    let (run, _logs) = run_logged(
        "gen",
        &[
            "--apic",
            "xapic",
            "--count",
            "300",
            "--interval-ns",
            "200000",
        ],
    );
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["unaccounted"], 0, "{report:#}");
    assert!(uint(&report["delivered"], "delivered") > 0, "{report:#}");
}

/// `--apic x2apic`: honoured where QEMU's software emulation has x2APIC,
/// refused with the reason (and what to install) where it has not.
#[test]
fn x2apic_on_request() {
    let (run, _logs) = run_logged("boot", &["--nodes", "2", "--apic", "x2apic"]);
    if tcg_has_x2apic() {
        run.assert_exit(0);
        let report = run.report();
        assert_eq!(report["x2apic"], true, "{report:#}");
        assert_full_ping_round(&report, 2);
    } else {
        run.assert_exit(2);
        assert!(
            run.stderr.contains("--apic x2apic") && run.stderr.contains("QEMU 10"),
            "{}",
            run.context()
        );
        assert!(!run.console_seen(), "{}", run.context());
    }
}
