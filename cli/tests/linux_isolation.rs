//! A Linux node stays in its partition: a QEMU trace of every device
//! write of a whole `examples/linux.toml` boot (`memory_region_ops_write`,
//! which names the writing CPU and the device's region) shows the Linux
//! node's CPU writing no shared platform device beyond the documented list
//! (docs/LINUX-NODES.md, "What it touches"), and the mint node beside it
//! none at all.
//!
//! The list, each with why it is safe here:
//!
//! - its own UART (the region no other node writes after node 0's set-up)
//!   and its own local APIC (`apic-msi`: a CPU's write there reaches its
//!   own APIC);
//! - PIT channel 2 and port 0x61's gate (`pit` at 0x42/0x43 with channel 2
//!   commands only, `pcspk`): Linux's fast TSC calibration, which runs
//!   although it is told the rate; channel 2 drives nothing but the
//!   speaker, and no mint node uses it after node 0's own calibration;
//! - the CMOS index register (`rtc-index`, 0x70) with the NMI-mask bit
//!   clear: reading the wall clock; no mint node reads CMOS;
//! - one write of PCI's configuration index (0xcf8), selecting bus 0
//!   device 2's vendor id, never the data window: `setup_arch`'s
//!   Sandy Bridge graphics check, which runs before `pci=off` is parsed
//!   (an index write alone changes no device).
//!
//! Everything else (the I/O APIC: node 0's MP table names none, so the
//! MP-table probe of the firmware's no longer reads it; the 8259s and
//! ELCR, the i8042, port 0x92, the reset and power ports, PCI
//! configuration data, fw_cfg, the HPET, other nodes' UARTs) is refused
//! by the test.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::run_logged;

/// One traced device write: the CPU, the region's pointer and name, the
/// address within the address space, the value.
#[derive(Debug)]
struct Write {
    cpu: i64,
    region: String,
    name: String,
    addr: u64,
    value: u64,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(&format!(" {key} "))? + key.len() + 2..];
    Some(rest.split_whitespace().next().unwrap_or(""))
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// Every `memory_region_ops_write` line of QEMU's trace log.
fn writes(log: &Path) -> Vec<Write> {
    let text = std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("cannot read the trace {}: {e}", log.display()));
    text.lines()
        .filter(|l| l.starts_with("memory_region_ops_write "))
        .map(|l| {
            let name = l
                .rsplit_once("name '")
                .and_then(|(_, n)| n.strip_suffix('\''))
                .unwrap_or_else(|| panic!("no region name: {l}"));
            Write {
                cpu: field(l, "cpu")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("no cpu: {l}")),
                region: field(l, "mr")
                    .unwrap_or_else(|| panic!("no mr: {l}"))
                    .into(),
                name: name.into(),
                addr: field(l, "addr")
                    .and_then(hex)
                    .unwrap_or_else(|| panic!("no addr: {l}")),
                value: field(l, "value")
                    .and_then(hex)
                    .unwrap_or_else(|| panic!("no value: {l}")),
            }
        })
        .collect()
}

/// Why a write by the Linux node is outside the documented list (`None`:
/// it is on it). `own_uart`: the region of the Linux node's UART.
fn refused(w: &Write, own_uart: &str) -> Option<String> {
    let ok = match w.name.as_str() {
        "serial" => w.region == own_uart,
        "apic-msi" => true,
        // Channel 2's data port, or a control word selecting channel 2
        // (bits 7-6 = 10).
        "pit" => w.addr == 0x42 || (w.addr == 0x43 && w.value >> 6 == 0b10),
        "pcspk" => w.addr == 0x61,
        "rtc-index" => w.addr == 0x70 && w.value & 0x80 == 0,
        "pci-conf-idx" => w.addr == 0xcf8 && w.value == 0x8000_1000,
        _ => false,
    };
    (!ok).then(|| format!("{w:?}"))
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/linux.toml")
}

#[test]
fn the_linux_node_writes_no_shared_device_beyond_the_documented_list() {
    let plan = example();
    let (run, logs) = run_logged(
        "boot",
        &[
            "--config",
            plan.to_str().expect("UTF-8"),
            "--qemu-trace",
            "memory_region_ops_write",
        ],
    );
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["nodes"][1]["os"], "linux", "{}", run.context());
    assert_eq!(report["nodes"][1]["state"], "running", "{}", run.context());
    let all = writes(&logs.path().join("qemu-trace.log"));
    // Node 1 runs on core 1, node 2 (mint) on core 2 (the plan's cores are
    // QEMU's CPU indices).
    let by = |cpu: i64| all.iter().filter(move |w| w.cpu == cpu);
    assert!(
        by(0).any(|w| w.name == "ioapic"),
        "the trace holds node 0's own set-up (is tracing on?)"
    );

    // The Linux node's UART: the serial region it writes most.
    let mut uarts: BTreeMap<&str, usize> = BTreeMap::new();
    for w in by(1).filter(|w| w.name == "serial") {
        *uarts.entry(w.region.as_str()).or_default() += 1;
    }
    let own = uarts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(r, _)| r.to_string())
        .expect("the Linux node wrote its console");
    let outside: Vec<String> = by(1).filter_map(|w| refused(w, &own)).collect();
    assert!(
        outside.is_empty(),
        "the Linux node wrote shared devices outside the documented list:\n{}",
        outside.join("\n")
    );
    // The index-register writes stay few: probes, not a driver.
    let count = |name: &str| by(1).filter(|w| w.name == name).count();
    assert!(
        count("pci-conf-idx") <= 1,
        "{} PCI index writes",
        count("pci-conf-idx")
    );

    // The mint node beside it: its UART and its local APIC, nothing else.
    let node2_uart = by(2).find(|w| w.name == "serial").map(|w| w.region.clone());
    let node2: Vec<String> = by(2)
        .filter(|w| {
            !(w.name == "apic-msi"
                || (w.name == "serial" && Some(&w.region) == node2_uart.as_ref()))
        })
        .map(|w| format!("{w:?}"))
        .collect();
    assert!(
        node2.is_empty(),
        "node 2 wrote shared devices:\n{}",
        node2.join("\n")
    );
    assert_ne!(
        node2_uart.as_deref(),
        Some(own.as_str()),
        "two nodes on one UART"
    );
}
