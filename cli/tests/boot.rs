//! End-to-end tests of `mint boot`: each boots a real machine under QEMU (or
//! must refuse to) and checks what the binary reports.
//!
//! - healthy machines of 1, 2 and 4 nodes, and a custom TOML plan: the JSON
//!   report's nodes, resources and IPI round-trip figures;
//! - every `--fault` kind on a 3-node machine: the target crashes with the
//!   right reason, the other nodes keep running and keep talking (a write
//!   to the read-only shared header or into node 0's mailboxes faults; a
//!   Halt not from node 0 is refused and counted);
//! - hidden kernel self-tests (`--selftest`): the direction flag on
//!   interrupt entry, page permissions (W^X, read-only after init, guards);
//! - per-node console logs under `--log-dir`;
//! - bad plans and bad flags refused with exit 2 before QEMU starts;
//! - node 0's own check of the plan against the machine QEMU really gives it;
//! - `--accel kvm` on a host with and without hardware virtualization.
//!
//! The host is small (2 cores) and QEMU emulates in software, so machines
//! run one at a time: every test that might start QEMU holds the guard of
//! [`common::one_machine_at_a_time`].

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Run, mint, one_machine_at_a_time, run_logged, uint};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Pings each node sends to each peer in `mint boot`.
const PINGS_PER_PEER: usize = 32;
/// Memory of each node in a `--nodes N` plan.
const DEFAULT_NODE_MEMORY: u64 = 64 << 20;

impl Run {
    fn assert_stderr_mentions(&self, fragments: &[&str]) {
        for fragment in fragments {
            assert!(
                self.stderr.contains(fragment),
                "stderr should mention {fragment:?}\n{}",
                self.context()
            );
        }
    }
}

/// `mint boot --json` with `args`, one machine at a time, consoles logged
/// to a fresh directory (returned, so the logs outlive the run).
fn boot(args: &[&str]) -> (Run, TempDir) {
    run_logged("boot", args)
}

/// `mint boot` with `args` must be refused before QEMU starts: exit 2, no
/// console, no report, not even the log directory.
fn refused(args: &[&str]) -> Run {
    let scratch = TempDir::new().expect("temporary directory");
    let log_dir = scratch.path().join("logs");
    let mut all = vec!["boot", "--timeout", "120", "--log-dir"];
    all.push(log_dir.to_str().expect("UTF-8 temp path"));
    all.extend_from_slice(args);
    // Held in case a regression boots after all.
    let _machine = one_machine_at_a_time();
    let run = mint(&all);
    run.assert_exit(2);
    assert!(
        !run.console_seen(),
        "QEMU must not start\n{}",
        run.context()
    );
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout\n{}",
        run.context()
    );
    assert!(
        !log_dir.exists(),
        "the machine was started (log directory created)\n{}",
        run.context()
    );
    run
}

/// Like [`refused`], for one of mint's own errors (not clap's).
fn refused_with(args: &[&str], fragments: &[&str]) -> Run {
    let run = refused(args);
    assert!(run.stderr.starts_with("mint: error: "), "{}", run.context());
    run.assert_stderr_mentions(fragments);
    run
}

/// Whether the host CPU offers hardware virtualization (vmx or svm).
fn host_has_hardware_virtualization() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

fn nodes(report: &Value) -> &Vec<Value> {
    report["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("report has no nodes array: {report:#}"))
}

fn node(report: &Value, id: u64) -> &Value {
    nodes(report)
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("report has no node {id}: {report:#}"))
}

/// The RTT samples `node` measured with `peer`.
fn samples_with(node: &Value, peer: u64) -> Vec<u64> {
    let entry = node["peers"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["peer"] == peer))
        .unwrap_or_else(|| panic!("no peers entry for node {peer}: {node:#}"));
    entry["rtt_ns"]
        .as_array()
        .unwrap_or_else(|| panic!("rtt_ns is not an array: {entry}"))
        .iter()
        .map(|s| uint(s, "an RTT sample"))
        .collect()
}

/// The accelerator `--accel auto` must pick on this host.
fn assert_auto_accel(report: &Value) {
    let accel = report["accel"].as_str().unwrap_or("?");
    if host_has_hardware_virtualization() {
        assert!(accel == "kvm" || accel == "tcg", "accel {accel}");
    } else {
        assert_eq!(accel, "tcg", "no vmx/svm on this host");
    }
}

/// Every node of `report` is running with the resources of `plan`'s shape:
/// one core `cores[i]`, one APIC id, `memory[i]` bytes, `devices[i]`; the
/// partitions are disjoint.
fn assert_nodes(report: &Value, cores: &[u64], memory: &[u64], devices: &[&str]) {
    let nodes = nodes(report);
    let ids: Vec<u64> = nodes.iter().map(|n| uint(&n["id"], "id")).collect();
    let expected_ids: Vec<u64> = (0..cores.len() as u64).collect();
    assert_eq!(ids, expected_ids, "node ids: {report:#}");
    let mut apic_ids = Vec::new();
    let mut ranges = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["state"], "running", "node {i}: {n:#}");
        assert!(n.get("reason").is_none(), "node {i}: {n:#}");
        // A healthy boot raises no local APIC error (the count is read
        // from the error handler's ESR reads).
        assert_eq!(n["apic_errors"], 0, "node {i}: {n:#}");
        assert_eq!(n["apic_error_status"], 0, "node {i}: {n:#}");
        assert_eq!(n["cores"], json!([cores[i]]), "node {i}: {n:#}");
        let apic = n["apic_ids"].as_array().expect("apic_ids array");
        assert_eq!(apic.len(), 1, "node {i}: {n:#}");
        apic_ids.push(uint(&apic[0], "apic id"));
        assert_eq!(n["devices"], json!([devices[i]]), "node {i}: {n:#}");
        let base = uint(&n["memory"]["base"], "memory.base");
        let size = uint(&n["memory"]["size"], "memory.size");
        assert_eq!(size, memory[i], "node {i}: {n:#}");
        ranges.push((base, base + size, i));
    }
    apic_ids.sort_unstable();
    apic_ids.dedup();
    assert_eq!(apic_ids.len(), nodes.len(), "APIC ids distinct: {report:#}");
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((_, end, a), (base, _, b)) = (pair[0], pair[1]);
        assert!(
            end <= base,
            "memory of nodes {a} and {b} overlaps: {report:#}"
        );
    }
}

/// Every node pinged every other `PINGS_PER_PEER` times, and the summary
/// agrees with the raw samples.
fn assert_full_ping_rounds(report: &Value) {
    let nodes = nodes(report);
    let ids: Vec<u64> = nodes.iter().map(|n| uint(&n["id"], "id")).collect();
    for n in nodes {
        let id = uint(&n["id"], "id");
        let peers: Vec<u64> = n["peers"]
            .as_array()
            .expect("peers array")
            .iter()
            .map(|p| uint(&p["peer"], "peer"))
            .collect();
        let others: Vec<u64> = ids.iter().copied().filter(|&p| p != id).collect();
        assert_eq!(peers, others, "node {id}'s peers: {n:#}");
        let mut all = Vec::new();
        for &peer in &others {
            let samples = samples_with(n, peer);
            assert_eq!(samples.len(), PINGS_PER_PEER, "node {id} <-> {peer}: {n:#}");
            all.extend(samples);
        }
        let rtt = &n["ipi_rtt_ns"];
        let count = uint(&rtt["count"], "ipi_rtt_ns.count");
        assert_eq!(
            count as usize,
            PINGS_PER_PEER * others.len(),
            "node {id}: {n:#}"
        );
        assert_eq!(
            count as usize,
            all.len(),
            "count vs samples, node {id}: {n:#}"
        );
        if others.is_empty() {
            // No samples: no figures (null), not 0.
            assert!(
                rtt["p50"].is_null() && rtt["max"].is_null(),
                "node {id}: {n:#}"
            );
            continue;
        }
        let p50 = uint(&rtt["p50"], "ipi_rtt_ns.p50");
        let max = uint(&rtt["max"], "ipi_rtt_ns.max");
        assert!(p50 > 0, "node {id}: {n:#}");
        assert!(max >= p50, "node {id}: {n:#}");
        assert_eq!(
            Some(&max),
            all.iter().max(),
            "max vs samples, node {id}: {n:#}"
        );
        // p50 is a median of the samples.
        assert!(all.contains(&p50), "p50 is not a sample, node {id}: {n:#}");
        let at_most = all.iter().filter(|&&s| s <= p50).count();
        let at_least = all.iter().filter(|&&s| s >= p50).count();
        assert!(
            2 * at_most >= all.len() && 2 * at_least >= all.len(),
            "p50 is not a median, node {id}: {n:#}"
        );
    }
}

/// `mint boot --nodes n`: every node up with its default resources.
fn boots_default_nodes(n: u8) {
    let (run, _logs) = boot(&["--nodes", &n.to_string()]);
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_auto_accel(&report);
    assert_eq!(nodes(&report).len(), usize::from(n), "{report:#}");
    let cores: Vec<u64> = (0..u64::from(n)).collect();
    let memory = vec![DEFAULT_NODE_MEMORY; usize::from(n)];
    let devices: Vec<String> = (1..=n).map(|k| format!("com{k}")).collect();
    let devices: Vec<&str> = devices.iter().map(String::as_str).collect();
    assert_nodes(&report, &cores, &memory, &devices);
    assert_full_ping_rounds(&report);
}

#[test]
fn boots_one_node() {
    boots_default_nodes(1);
}

#[test]
fn boots_two_nodes() {
    boots_default_nodes(2);
}

#[test]
fn boots_four_nodes() {
    boots_default_nodes(4);
}

/// A plan file's own sizes, cores and devices reach the machine.
#[test]
fn boots_a_custom_plan() {
    let dir = TempDir::new().expect("temporary directory");
    let plan = write_plan(
        dir.path(),
        r#"
[machine]
cpus = 3
memory = "256M"
[shared]
size = "8M"
[[node]]
id = 0
cores = [0]
memory = "64M"
devices = ["com1"]
[[node]]
id = 1
cores = [2]
memory = "32M"
devices = ["com3"]
"#,
    );
    let (run, _logs) = boot(&["--config", path_str(&plan)]);
    run.assert_exit(0);
    let report = run.report();
    assert_nodes(&report, &[0, 2], &[64 << 20, 32 << 20], &["com1", "com3"]);
    assert_full_ping_rounds(&report);
}

/// `--fault 1:KIND` on 3 nodes: node 1 crashes with a reason containing
/// every one of `reason`, nodes 0 and 2 keep running and finish their
/// ping round with each other. Returns the report.
fn fault_is_contained(kind: &str, reason: &[&str]) -> Value {
    let (run, _logs) = boot(&["--nodes", "3", "--fault", &format!("1:{kind}")]);
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(
        report["fault"],
        json!({"node": 1, "kind": kind, "contained": true}),
        "{report:#}"
    );
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(nodes(&report).len(), 3, "{report:#}");
    let target = node(&report, 1);
    assert_eq!(target["state"], "crashed", "{target:#}");
    let why = target["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {target:#}"));
    for fragment in reason {
        assert!(
            why.contains(fragment),
            "reason {why:?} should mention {fragment:?}"
        );
    }
    for id in [0, 2] {
        let n = node(&report, id);
        assert_eq!(n["state"], "running", "node {id}: {n:#}");
        assert!(n.get("reason").is_none(), "node {id}: {n:#}");
    }
    assert_eq!(
        samples_with(node(&report, 2), 0).len(),
        PINGS_PER_PEER,
        "{report:#}"
    );
    assert_eq!(
        samples_with(node(&report, 0), 2).len(),
        PINGS_PER_PEER,
        "{report:#}"
    );
    report
}

#[test]
fn fault_page_fault_is_contained() {
    fault_is_contained("page-fault", &["page fault"]);
}

#[test]
fn fault_panic_is_contained() {
    fault_is_contained("panic", &["panic: injected panic"]);
}

/// The wild write aims into node 0's partition and is stopped there.
#[test]
fn fault_wild_write_is_contained() {
    let report = fault_is_contained(
        "wild-write",
        &["page fault", "write of", "outside this node's memory"],
    );
    let why = node(&report, 1)["reason"].as_str().unwrap_or_default();
    let address = why
        .split("write of 0x")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("no address in {why:?}"));
    let node0 = &node(&report, 0)["memory"];
    let base = uint(&node0["base"], "memory.base");
    let size = uint(&node0["size"], "memory.size");
    assert!(
        (base..base + size).contains(&address),
        "the wild write {address:#x} should aim into node 0's memory {base:#x}+{size:#x}"
    );
}

#[test]
fn fault_hang_is_contained() {
    fault_is_contained("hang", &["heartbeat lost"]);
}

#[test]
fn fault_invalid_opcode_is_contained() {
    fault_is_contained("invalid-opcode", &["invalid opcode"]);
}

/// Node 0 maps the shared header read-only into every other node: node
/// 1's write to it page-faults in node 1 and the reason names the header.
#[test]
fn fault_header_write_is_contained() {
    let report = fault_is_contained(
        "header-write",
        &[
            "page fault",
            "write of 0x40000000",
            "the shared header, read-only in this node",
        ],
    );
    for id in [0, 2] {
        assert_eq!(
            node(&report, id)["incidents"]["forged_halt"],
            0,
            "{report:#}"
        );
    }
}

/// A node cannot speak for node 0: node 1 writing a Halt into the mailbox
/// node 0 produces for node 2 page-faults (node 0's outboxes are read-only
/// in node 1), and node 2 keeps running.
#[test]
fn fault_mailbox_forge_is_contained() {
    let report = fault_is_contained(
        "mailbox-forge",
        &[
            "page fault",
            "write of 0x40000",
            "another node's mailboxes, read-only in this node",
        ],
    );
    assert_eq!(
        node(&report, 2)["incidents"]["forged_halt"],
        0,
        "{report:#}"
    );
}

/// Only node 0 may halt a node: node 2 sends every peer a Halt (through
/// its own mailboxes, as any peer can), and both refuse it, count it and
/// say so; node 1 keeps running and finishes its ping round with node 0.
#[test]
fn a_halt_not_from_node0_is_refused_and_counted() {
    let (run, logs) = boot(&["--nodes", "3", "--fault", "2:forge-halt"]);
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(
        report["fault"],
        json!({"node": 2, "kind": "forge-halt", "contained": true}),
        "{report:#}"
    );
    let forger = node(&report, 2);
    assert_eq!(forger["state"], "crashed", "{forger:#}");
    for id in [0, 1] {
        let n = node(&report, id);
        assert_eq!(n["state"], "running", "node {id}: {n:#}");
        assert_eq!(n["incidents"]["forged_halt"], 1, "node {id}: {n:#}");
    }
    assert_eq!(
        samples_with(node(&report, 1), 0).len(),
        PINGS_PER_PEER,
        "{report:#}"
    );
    let log = std::fs::read_to_string(logs.path().join("node1.log")).expect("node1's console log");
    assert!(
        log.contains("node1: refused a Halt request from node2"),
        "node1 should say it refused the forged Halt:\n{log}"
    );
    // Node 0's own Halt at power-off is still honoured.
    assert!(log.contains("node1 halted on request"), "{log}");
}

/// Unbounded recursion runs into the guard page below the kernel stack;
/// the page fault is delivered on its own IST stack and named.
#[test]
fn fault_stack_overflow_is_contained() {
    fault_is_contained(
        "stack-overflow",
        &["stack overflow", "kernel stack's guard page", "write of"],
    );
}

/// A page fault whose delivery faults (the page-fault stack points into
/// its guard page) becomes a double fault, delivered on a stack of its own
/// and reported with the guard it hit. Had #DF shared the page-fault
/// stack, it would fault too: a triple fault resets the whole machine.
#[test]
fn fault_double_fault_is_contained() {
    fault_is_contained(
        "double-fault",
        &["double fault", "page-fault stack's guard page", "rsp 0x"],
    );
}

/// A node that sends itself NMIs stops at the first (mint raises none);
/// the rest stay blocked behind it.
#[test]
fn fault_nmi_storm_is_contained() {
    fault_is_contained("nmi-storm", &["NMI at rip"]);
}

#[test]
fn consoles_are_logged_per_node() {
    let (run, logs) = boot(&["--nodes", "2"]);
    run.assert_exit(0);
    assert_eq!(
        run.report()["log_dir"],
        path_str(logs.path()),
        "{}",
        run.context()
    );
    let read = |name: &str| {
        let path = logs.path().join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}\n{}", path.display(), run.context()))
    };
    let node0 = read("node0.log");
    let node1 = read("node1.log");
    assert!(node1.contains("node1 running"), "node1.log:\n{node1}");
    assert!(node0.contains("MINT-REPORT"), "node0.log:\n{node0}");
    assert!(!node1.contains("MINT-REPORT"), "node1.log:\n{node1}");
}

// ---- refused before boot ----

/// The first node of every bad plan below: valid on its own.
const NODE0: &str = r#"
[[node]]
id = 0
cores = [0]
memory = "64M"
devices = ["com1"]
"#;

fn write_plan(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).expect("write plan");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// `mint boot --config` with NODE0 and then `rest` is refused, naming
/// every one of `fragments`.
fn plan_refused(prelude: &str, rest: &str, fragments: &[&str]) -> Run {
    let dir = TempDir::new().expect("temporary directory");
    let plan = write_plan(dir.path(), &format!("{prelude}{NODE0}{rest}"));
    refused_with(&["--config", path_str(&plan)], fragments)
}

#[test]
fn refuses_overlapping_cores() {
    plan_refused(
        "",
        "[[node]]\nid = 1\ncores = [0]\nmemory = \"64M\"\ndevices = [\"com2\"]\n",
        &[
            "partition plan rejected",
            "node 1: core cpu0 is already owned by node 0",
        ],
    );
}

#[test]
fn refuses_a_core_beyond_the_machine() {
    plan_refused(
        "[machine]\ncpus = 2\n",
        "[[node]]\nid = 1\ncores = [3]\nmemory = \"64M\"\ndevices = [\"com2\"]\n",
        &["node 1: missing core cpu3", "2 CPUs"],
    );
}

#[test]
fn refuses_memory_beyond_ram() {
    plan_refused(
        "[machine]\ncpus = 2\nmemory = \"128M\"\n",
        "[[node]]\nid = 1\ncores = [1]\nmemory = \"64M\"\ndevices = [\"com2\"]\n",
        &[
            "node 1: memory",
            "beyond machine RAM 128 MiB",
            "needs 154 MiB",
        ],
    );
}

#[test]
fn refuses_a_device_listed_twice() {
    plan_refused(
        "",
        "[[node]]\nid = 1\ncores = [1]\nmemory = \"64M\"\ndevices = [\"com2\", \"com2\"]\n",
        &["node 1: device com2 is listed twice"],
    );
}

#[test]
fn refuses_a_device_owned_by_two_nodes() {
    plan_refused(
        "",
        "[[node]]\nid = 1\ncores = [1]\nmemory = \"64M\"\ndevices = [\"com1\"]\n",
        &["node 1: device com1 is already owned by node 0"],
    );
}

#[test]
fn refuses_a_node_without_cores() {
    plan_refused(
        "[machine]\ncpus = 2\nmemory = \"256M\"\n",
        "[[node]]\nid = 1\ncores = []\nmemory = \"64M\"\ndevices = [\"com2\"]\n",
        &["node 1: owns no core"],
    );
}

#[test]
fn refuses_a_malformed_plan_file() {
    // NODE0 is lines 1-6 (a blank line first): the second node's `memory`,
    // where the unclosed array is noticed, is line 10.
    let run = plan_refused(
        "",
        "[[node]]\nid = 1\ncores = [1\nmemory = \"64M\"\n",
        &["invalid plan file", "line 10", "plan.toml"],
    );
    assert!(
        !run.stderr.contains("partition plan rejected"),
        "{}",
        run.context()
    );
}

#[test]
fn refuses_an_unknown_key() {
    plan_refused(
        "",
        "[[node]]\nid = 1\ncores = [1]\nmemory = \"64M\"\ndevices = [\"com2\"]\ncolour = \"red\"\n",
        &[
            "invalid plan file",
            "unknown field `colour`",
            "line 12",
            "plan.toml",
        ],
    );
}

#[test]
fn refuses_a_missing_plan_file() {
    refused_with(
        &["--config", "/nonexistent/mint-plan.toml"],
        &["cannot read plan /nonexistent/mint-plan.toml"],
    );
}

#[test]
fn refuses_node_counts_out_of_range() {
    for n in ["0", "5"] {
        let run = refused(&["--nodes", n]);
        run.assert_stderr_mentions(&[&format!("invalid value '{n}' for '--nodes"), "1..=4"]);
    }
}

#[test]
fn refuses_bad_fault_requests() {
    let cases: [(&str, &[&str]); 5] = [
        (
            "1:explode",
            &[
                "unknown kind 'explode'",
                "page-fault, panic, wild-write, hang, invalid-opcode, stack-overflow, double-fault, nmi-storm, header-write, forge-halt, mailbox-forge, nic-overreach",
            ],
        ),
        ("0:panic", &["--fault '0:panic'", "node 0 runs the monitor"]),
        ("7:panic", &["--fault '7:panic'", "no node 7", "0..1"]),
        ("nonsense", &["--fault 'nonsense'", "expected NODE:KIND"]),
        ("x:panic", &["'x' is not a node number"]),
    ];
    for (spec, fragments) in cases {
        refused_with(&["--nodes", "2", "--fault", spec], fragments);
    }
}

// ---- node 0's own check ----

#[test]
fn node0_refuses_a_machine_with_too_few_cpus() {
    let (run, _logs) = boot(&["--nodes", "2", "--qemu-cpus", "1"]);
    run.assert_exit(2);
    run.assert_stderr_mentions(&[
        "mint: error: node 0 refused to boot: plan does not fit this machine: ",
        "node 1: core cpu1 not present on this machine",
    ]);
    assert!(run.stdout.is_empty(), "no report\n{}", run.context());
}

#[test]
fn node0_refuses_a_machine_with_too_little_ram() {
    let (run, _logs) = boot(&["--nodes", "2", "--qemu-memory-mib", "100"]);
    run.assert_exit(2);
    run.assert_stderr_mentions(&[
        "mint: error: node 0 refused to boot: plan does not fit this machine: ",
        "node 1: ",
        "usable RAM",
    ]);
    assert!(run.stdout.is_empty(), "no report\n{}", run.context());
}

// ---- accelerator ----

#[test]
fn accel_kvm_needs_hardware_virtualization() {
    if host_has_hardware_virtualization() {
        let (run, _logs) = boot(&["--nodes", "2", "--accel", "kvm"]);
        run.assert_exit(0);
        assert_eq!(run.report()["accel"], "kvm", "{}", run.context());
        return;
    }
    let run = refused_with(&["--nodes", "2", "--accel", "kvm"], &["--accel kvm: "]);
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}\n{}",
        run.elapsed,
        run.context()
    );
    // Without /dev/kvm at all, that is the reason given instead.
    let why = if Path::new("/dev/kvm").exists() {
        "hardware virtualization"
    } else {
        "/dev/kvm"
    };
    run.assert_stderr_mentions(&[why, "--accel tcg"]);
}

// ---- hidden self-tests of the kernel ----

/// `mint boot --nodes 2 --selftest NAME`: the machine is healthy, and each
/// node reported one result of `name`; returns them by node (0, 1).
fn selftest(name: &str) -> Vec<Value> {
    let (run, _logs) = boot(&["--nodes", "2", "--selftest", name]);
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["ok"], true, "{report:#}");
    let mut results = report["selftests"]
        .as_array()
        .unwrap_or_else(|| panic!("no selftests in the report: {report:#}"))
        .clone();
    results.sort_by_key(|r| r["node"].as_u64());
    let nodes: Vec<&Value> = results.iter().map(|r| &r["node"]).collect();
    assert_eq!(
        nodes,
        [&json!(0), &json!(1)],
        "one result per node: {report:#}"
    );
    for r in &results {
        assert_eq!(r["test"], name, "{r:#}");
    }
    results
}

/// The direction flag on interrupt entry: each node copies backwards (DF
/// set) with its timer running. Some ticks must interrupt the copy (or the
/// test proves nothing), and no tick's handler may run with DF set.
#[test]
fn selftest_interrupt_entry_clears_the_direction_flag() {
    for r in selftest("df") {
        assert_eq!(
            r["copy_intact"], true,
            "the backwards copies went wrong: {r:#}"
        );
        assert!(
            uint(&r["interrupted_df"], "interrupted_df") > 0,
            "no timer tick landed inside a backwards copy: {r:#}"
        );
        assert_eq!(
            uint(&r["handler_df"], "handler_df"),
            0,
            "the timer handler ran with DF set: {r:#}"
        );
    }
}

/// Page permissions, probed by each node in its own address space: W^X in
/// its window, its tables, GDT and IDT read-only after init, guard pages
/// unmapped, the low area gone from every node but node 0.
#[test]
fn selftest_page_permissions() {
    // Probes whose outcome the test insists on: name, must fault, and for a
    // fault whether the page is present (a permission fault, not a hole).
    let expected: [(&str, bool, bool); 13] = [
        ("write data", false, false),
        ("execute text", false, false),
        ("write text", true, true),
        ("write rodata", true, true),
        ("execute rodata", true, true),
        ("execute data", true, true),
        ("execute stack", true, true),
        ("execute heap", true, true),
        ("write IDT", true, true),
        ("write GDT", true, true),
        ("write page tables", true, true),
        ("read kernel stack guard", true, false),
        ("read page-fault stack guard", true, false),
    ];
    for r in selftest("wx") {
        let node = uint(&r["node"], "node");
        let probes = r["probes"]
            .as_array()
            .unwrap_or_else(|| panic!("no probes: {r:#}"));
        let find = |what: &str| {
            probes
                .iter()
                .find(|p| p["what"] == what)
                .unwrap_or_else(|| panic!("node {node}: no probe {what:?}: {r:#}"))
        };
        for (what, must_fault, present) in expected {
            let p = find(what);
            assert_eq!(p["faulted"], must_fault, "node {node}: {p}");
            if must_fault {
                let code = uint(&p["error_code"], "error_code");
                assert_eq!(code & 1 != 0, present, "node {node}, page present? {p}");
            }
        }
        // Node 0 keeps the low area; every other node dropped it.
        assert_eq!(
            find("read low area")["faulted"],
            node != 0,
            "node {node}: {r:#}"
        );
        for p in probes {
            assert_eq!(p["faulted"], p["must_fault"], "node {node}: {p}");
        }
    }
}

// ---- timing ----

/// Every TSC rate source the report names, present or not.
const TSC_SOURCES: [&str; 5] = [
    "cpuid_0x40000010",
    "cpuid_0x15",
    "pit",
    "host",
    "cpuid_0x16",
];

/// The report's `"tsc"` object names every source (each a number or
/// null; the PIT's an object with its windows), the chosen one among
/// them, and the rate the run uses.
fn assert_tsc_object(report: &Value) -> &Value {
    let tsc = &report["tsc"];
    let sources = tsc["sources"]
        .as_object()
        .unwrap_or_else(|| panic!("no tsc.sources: {report:#}"));
    let mut names: Vec<&str> = sources.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = TSC_SOURCES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "{report:#}");
    for (name, v) in sources {
        if name == "pit" {
            continue;
        }
        assert!(v.is_null() || v.is_u64(), "tsc.sources.{name}: {report:#}");
    }
    let pit = &sources["pit"];
    assert!(pit.is_object(), "tsc.sources.pit: {report:#}");
    // Five windows asked for; a window the host interrupted too long is
    // discarded (and retried once).
    let windows = uint(&pit["windows"], "pit.windows");
    assert!((1..=5).contains(&windows), "{report:#}");
    assert!(uint(&pit["kept"], "pit.kept") <= windows, "{report:#}");
    uint(&pit["spread_ppm"], "pit.spread_ppm");
    let chosen = tsc["chosen"]
        .as_str()
        .unwrap_or_else(|| panic!("tsc.chosen: {report:#}"));
    assert!(TSC_SOURCES.contains(&chosen), "{report:#}");
    let chosen_hz = match &sources[chosen] {
        Value::Object(o) => uint(&o["hz"], "chosen hz"),
        v => uint(v, "chosen hz"),
    };
    assert_eq!(uint(&tsc["hz"], "tsc.hz"), chosen_hz, "{report:#}");
    assert_eq!(report["tsc_hz"], tsc["hz"], "{report:#}");
    assert_eq!(tsc["agree_ppm"], 20_000, "{report:#}");
    assert!(
        ["agree", "warn"].contains(&tsc["status"].as_str().unwrap_or("?")),
        "{report:#}"
    );
    assert!(tsc["reason"].is_string(), "{report:#}");
    tsc
}

/// Without any override the host measures its own TSC and node 0 gets
/// it; node 0 checks every other node's TSC against its own and the
/// report and the table carry each node's offset bound; every console
/// line says whose TSC figure it prints.
#[test]
fn every_node_reports_its_tsc_offset_and_every_source() {
    let (run, logs) = boot(&["--nodes", "3"]);
    run.assert_exit(0);
    let report = run.report();
    let tsc = assert_tsc_object(&report);
    assert!(tsc["sources"]["host"].is_u64(), "{report:#}");
    let host = &tsc["host_measurement"];
    assert_eq!(host["overridden"], false, "{report:#}");
    assert_eq!(host["reference"], "CLOCK_MONOTONIC_RAW", "{report:#}");
    assert_eq!(host["windows"], 5, "{report:#}");
    assert_eq!(host["hz"], tsc["sources"]["host"], "{report:#}");

    let limit = uint(&report["tsc_skew_limit_ns"], "tsc_skew_limit_ns");
    let mut all_trusted = true;
    for n in nodes(&report) {
        let id = uint(&n["id"], "id");
        let sync = &n["tsc_sync"];
        assert!(sync.is_object(), "node {id}'s tsc_sync: {report:#}");
        if id == 0 {
            assert_eq!(sync["reference"], true, "{report:#}");
            assert_eq!(sync["offset_ns"], 0, "{report:#}");
            assert_eq!(sync["skewed"], false, "{report:#}");
            continue;
        }
        assert_eq!(sync["reference"], false, "{report:#}");
        assert!(
            uint(&sync["rounds"], "rounds") >= 64,
            "node {id}: {report:#}"
        );
        let offset = sync["offset_ns"]
            .as_i64()
            .unwrap_or_else(|| panic!("node {id} offset_ns: {report:#}"));
        let uncertainty = uint(&sync["uncertainty_ns"], "uncertainty_ns");
        let worst = uint(&sync["worst_abs_ns"], "worst_abs_ns");
        // The worst case is the bound's far edge: |middle| + half width,
        // up to the rounding of three tick counts converted to ns one by
        // one (and a middle truncated by one tick): 3 ns.
        assert!(worst >= offset.unsigned_abs(), "node {id}: {report:#}");
        assert!(
            worst <= offset.unsigned_abs() + uncertainty + 3,
            "node {id}: {report:#}"
        );
        uint(&sync["min_round_trip_ns"], "min_round_trip_ns");
        let consistent = sync["consistent"].as_bool().expect("consistent");
        let skewed = sync["skewed"].as_bool().expect("skewed");
        assert_eq!(
            skewed,
            !consistent || worst > limit,
            "node {id}: {report:#}"
        );
        all_trusted &= !skewed;
    }
    assert_eq!(report["cross_core_trusted"], all_trusted, "{report:#}");

    let read = |name: &str| std::fs::read_to_string(logs.path().join(name)).expect("console log");
    let node0 = read("node0.log");
    assert!(node0.contains("node0: TSC"), "node0.log:\n{node0}");
    assert!(node0.contains("(measured here: "), "node0.log:\n{node0}");
    for peer in [1, 2] {
        assert!(
            node0.contains(&format!("node{peer}'s TSC is ")),
            "node0.log:\n{node0}"
        );
        let log = read(&format!("node{peer}.log"));
        assert!(
            log.contains("(node 0's calibration: "),
            "node{peer}.log:\n{log}"
        );
        assert!(!log.contains("measured here"), "node{peer}.log:\n{log}");
    }
}

/// The table (no `--json`) shows each node's TSC offset and the TSC
/// sources.
#[test]
fn the_table_shows_tsc_offsets() {
    let logs = TempDir::new().expect("temporary directory");
    let _machine = one_machine_at_a_time();
    let run = mint(&[
        "boot",
        "--nodes",
        "2",
        "--timeout",
        "120",
        "--log-dir",
        path_str(logs.path()),
    ]);
    run.assert_exit(0);
    assert!(run.stdout.contains("tsc offset ns"), "{}", run.context());
    assert!(run.stdout.contains("(from "), "{}", run.context());
    let row = |id: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(id) && l.contains("running"))
            .unwrap_or_else(|| panic!("no row for node {id}\n{}", run.context()))
            .to_string()
    };
    assert!(row("0 ").contains("reference"), "{}", run.context());
    assert!(row("1 ").contains('±'), "{}", run.context());
}

/// A host TSC figure far from the PIT's (`--host-tsc-hz`, standing in for
/// a wrong measurement): two measurements disagree and neither is exact,
/// so node 0 refuses the boot, naming every source.
#[test]
fn a_wrong_host_tsc_refuses_the_boot() {
    let (run, _logs) = boot(&["--nodes", "2", "--host-tsc-hz", "5200000000"]);
    run.assert_exit(2);
    run.assert_stderr_mentions(&[
        "mint: error: node 0 refused to boot: TSC calibration refused",
        "host 5200.0 MHz",
        "pit ",
        "cpuid_0x15 ",
        "cpuid_0x16 ",
        "cpuid_0x40000010 ",
        "using pit",
    ]);
    assert!(run.stdout.is_empty(), "no report\n{}", run.context());
}

/// The same with `--tsc-mismatch warn`: the boot goes on with the PIT's
/// rate, says so loudly on node 0's console and the terminal, and the
/// report carries every source and the disagreement.
#[test]
fn a_wrong_host_tsc_warns_when_told_to_go_on() {
    let (run, logs) = boot(&[
        "--nodes",
        "2",
        "--host-tsc-hz",
        "5200000000",
        "--tsc-mismatch",
        "warn",
    ]);
    run.assert_exit(0);
    let report = run.report();
    let tsc = assert_tsc_object(&report);
    assert_eq!(tsc["status"], "warn", "{report:#}");
    assert_eq!(tsc["sources"]["host"], 5_200_000_000u64, "{report:#}");
    assert_eq!(tsc["chosen"], "pit", "{report:#}");
    assert_eq!(tsc["hz"], tsc["sources"]["pit"]["hz"], "{report:#}");
    assert_eq!(tsc["farthest"], "host", "{report:#}");
    assert!(
        uint(&tsc["disagreement_ppm"], "disagreement_ppm") > 20_000,
        "{report:#}"
    );
    assert_eq!(tsc["host_measurement"]["overridden"], true, "{report:#}");
    run.assert_stderr_mentions(&["mint: WARNING: TSC: "]);
    let node0 = std::fs::read_to_string(logs.path().join("node0.log")).expect("node0.log");
    assert!(
        node0.contains("WARNING node0: TSC: ") && node0.contains("host 5200.0 MHz"),
        "node0.log:\n{node0}"
    );
}

/// A node that crashed before its ping round has no RTT samples: its
/// figures are null in the JSON and n/a in the table, never 0.
#[test]
fn a_crashed_nodes_rtts_are_null_and_not_available() {
    let (run, _logs) = boot(&["--nodes", "2", "--fault", "1:page-fault"]);
    run.assert_exit(0);
    let report = run.report();
    let rtt = &node(&report, 1)["ipi_rtt_ns"];
    assert_eq!(rtt["count"], 0, "{report:#}");
    assert!(rtt["p50"].is_null(), "{report:#}");
    assert!(rtt["max"].is_null(), "{report:#}");

    let logs = TempDir::new().expect("temporary directory");
    let _machine = one_machine_at_a_time();
    let run = mint(&[
        "boot",
        "--nodes",
        "2",
        "--fault",
        "1:page-fault",
        "--timeout",
        "120",
        "--log-dir",
        path_str(logs.path()),
    ]);
    run.assert_exit(0);
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("1 ") && l.contains("crashed"))
        .unwrap_or_else(|| panic!("no row for node 1\n{}", run.context()));
    assert_eq!(row.matches("n/a").count(), 2, "{row}\n{}", run.context());
}
