//! `mint boot`: boot the machine, have every node ping every other, print
//! the per-node report, power off. Exit 0 only if every node that should
//! run does (and, with `--fault`, only if the fault stayed in its node).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use mint_abi::node::FaultKind;
use serde_json::{Value, json};

use crate::machine::{Echo, Event, Machine, Options};
use crate::{MachineArgs, plan, qemu};

#[derive(Args)]
pub struct BootArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Make node NODE inject a fault into itself: page-fault, panic,
    /// wild-write (into node 0's partition), hang (interrupts off),
    /// invalid-opcode, stack-overflow (into the kernel stack's guard page),
    /// double-fault (a page fault whose delivery faults), nmi-storm (NMIs
    /// to itself: the first stops the node),
    /// header-write (into the shared header, read-only outside node 0),
    /// forge-halt (send every peer a Halt only node 0 may send, then end),
    /// mailbox-forge (write a Halt into a mailbox node 0 produces),
    /// nic-overreach (read past the register space of the e1000 it owns).
    #[arg(long, value_name = "NODE:KIND")]
    pub fault: Option<String>,
    /// Print the report as JSON on stdout (consoles go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Testing: every node runs this hidden self-test of the kernel (`df`:
    /// the direction flag on interrupt entry; `wx`: page permissions;
    /// `irq`: the interrupt layer refuses nodes that do not own the e1000;
    /// `handover`: refused hand-overs and one with the line asserted)
    /// as it starts; each node's result lands in the report's `selftests`.
    #[arg(long, hide = true, value_name = "NAME", value_parser = ["df", "wx", "irq", "handover"])]
    pub selftest: Option<String>,
}

/// A checked `--fault` request.
#[derive(Clone, Copy, Debug)]
pub struct FaultRequest {
    pub node: u8,
    pub kind: FaultKind,
}

pub fn parse_fault(spec: &str, nodes: usize) -> Result<FaultRequest> {
    let (node, kind) = spec
        .split_once(':')
        .with_context(|| format!("--fault '{spec}': expected NODE:KIND, e.g. 1:page-fault"))?;
    let node: u8 = node
        .parse()
        .ok()
        .with_context(|| format!("--fault '{spec}': '{node}' is not a node number"))?;
    if usize::from(node) >= nodes {
        bail!(
            "--fault '{spec}': the plan has no node {node} (nodes are 0..{})",
            nodes - 1
        );
    }
    if node == 0 {
        bail!("--fault '{spec}': node 0 runs the monitor and the report; inject into another node");
    }
    let kind = FaultKind::parse(kind).with_context(|| {
        let kinds: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
        format!(
            "--fault '{spec}': unknown kind '{kind}' (one of {})",
            kinds.join(", ")
        )
    })?;
    Ok(FaultRequest { node, kind })
}

pub fn run(args: BootArgs) -> Result<ExitCode> {
    let (plan, _layout) = plan::load(&args.machine.plan)?;
    crate::linux::check(&plan)?;
    let fault = args
        .fault
        .as_deref()
        .map(|f| parse_fault(f, plan.nodes.len()))
        .transpose()?;
    if let Some(f) = fault
        && !crate::linuxmod::LINUX_FAULTS.contains(&f.kind)
        && plan
            .nodes
            .iter()
            .any(|n| n.id.0 == f.node && n.os.is_linux())
    {
        bail!(
            "--fault {}:{}: node {} runs Linux, where mint's module injects only {}",
            f.node,
            f.kind.as_str(),
            f.node,
            crate::linuxmod::LINUX_FAULTS
                .map(|k| format!("`{}`", k.as_str()))
                .join(", ")
        );
    }
    let prepared = crate::machine::prepare(&args.machine, args.json)?;
    let timeout = args.machine.timeout_or(120);
    let log_dir = prepared.log_dir.clone();
    let mut cmdline = vec!["mint.mode=boot".to_string()];
    if let Some(f) = fault {
        cmdline.push(format!("mint.fault={}:{}", f.node, f.kind.as_str()));
    }
    if let Some(t) = &args.selftest {
        cmdline.push(format!("mint.selftest={t}"));
    }
    let machine = Machine::start(Options {
        prepared: &prepared,
        plan: &plan,
        cmdline,
        echo: if args.json {
            Echo::Stderr
        } else {
            Echo::Stdout
        },
        netdevs: Vec::new(),
        inherit: Vec::new(),
    })?;
    let mut report: Option<Value> = None;
    let mut refused: Option<String> = None;
    let mut selftests: Vec<Value> = Vec::new();
    let mut linux = crate::linux::ConsoleWatch::default();
    let outcome = machine.finish(timeout, |ev| {
        if let Event::Line { node, text } = ev {
            linux.line(node, &text);
            if let Some(j) = text.strip_prefix("MINT-SELFTEST ") {
                selftests.push(serde_json::from_str(j).unwrap_or_else(
                    |e| json!({"node": node.0, "unreadable": j, "error": e.to_string()}),
                ));
            }
            if node.0 != 0 {
                return;
            }
            if let Some(j) = text.strip_prefix("MINT-REPORT ") {
                report = serde_json::from_str(j).ok();
            } else if let Some(e) = text.strip_prefix("MINT-ERROR ") {
                refused = Some(e.to_string());
            }
        }
    });
    outcome.check_stopped()?;
    if prepared.accel == qemu::Accel::Kvm && qemu::is_kvm_failure(&outcome.qemu_stderr) {
        bail!(
            "KVM could not run the guest (QEMU: {}); use --accel tcg",
            outcome.qemu_stderr.lines().next().unwrap_or("").trim()
        );
    }
    if let Some(e) = refused {
        bail!("node 0 refused to boot: {e}");
    }
    let Some(mut report) = report else {
        bail!(
            "the machine ended without a report ({}); QEMU said: {}; consoles in {}",
            if outcome.timed_out {
                format!("timed out after {} s", timeout.as_secs())
            } else {
                format!(
                    "QEMU exit status {:?}",
                    outcome.status.and_then(|s| s.code())
                )
            },
            outcome.qemu_stderr.trim(),
            log_dir.display()
        );
    };
    linux.annotate(&mut report);
    judge(&mut report, fault);
    if args.selftest.is_some() {
        report["selftests"] = json!(selftests);
    }
    crate::tsc::annotate(&mut report, &prepared.host_tsc, args.json);
    report["accel"] = json!(prepared.accel.as_str());
    report["log_dir"] = json!(log_dir.display().to_string());
    crate::emit(&report, args.json, print_table)
}

/// Writes the verdict (`"verdict"`, `"ok"`): every node running, or, with a fault, the target
/// crashed with a reason and every other node running.
pub fn judge(report: &mut Value, fault: Option<FaultRequest>) {
    let nodes = report["nodes"].as_array().cloned().unwrap_or_default();
    let state = |n: &Value| n["state"].as_str().unwrap_or("").to_string();
    // A Linux node running mint's module is monitored like any node
    // (`"running"`). Without it (its own initrd, or a module that refused
    // to load) it counts as up when node 0 saw its /init report in
    // (`"reached-init"`), or, with an initrd of the plan's own (whose /init
    // does not report), when it entered the kernel (`"started"`).
    let up = |n: &Value| {
        if n["os"] == "linux" {
            state(n) == "running"
                || state(n) == "reached-init"
                || (state(n) == "started" && n["reports_init"] == false)
        } else {
            state(n) == "running"
        }
    };
    let others_running = nodes
        .iter()
        .filter(|n| Some(n["id"].as_u64().unwrap_or(u64::MAX)) != fault.map(|f| u64::from(f.node)))
        .all(up);
    let (ok, verdict) = match fault {
        None => (
            others_running,
            if others_running {
                "all nodes running"
            } else {
                "a node is not running"
            },
        ),
        Some(f) => {
            let target = nodes
                .iter()
                .find(|n| n["id"].as_u64() == Some(u64::from(f.node)));
            let crashed = target.is_some_and(|n| state(n) == "crashed" && n["reason"].is_string());
            let ok = crashed && others_running;
            report["fault"] = json!({"node": f.node, "kind": f.kind.as_str(), "contained": ok});
            (
                ok,
                if ok {
                    "fault contained: target crashed, every other node running"
                } else {
                    "fault NOT contained"
                },
            )
        }
    };
    report["verdict"] = json!(verdict);
    report["ok"] = json!(ok);
}

/// A JSON number for people: "n/a" when it is missing (no samples).
fn or_na(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => "n/a".into(),
    }
}

/// A node's TSC offset from node 0's, for the table.
fn offset_cell(sync: &Value) -> String {
    if sync["reference"] == true {
        return "reference".into();
    }
    match (sync["offset_ns"].as_i64(), sync["uncertainty_ns"].as_u64()) {
        (Some(o), Some(u)) => format!(
            "{o:+}±{u}{}",
            if sync["skewed"] == true { " SKEW" } else { "" }
        ),
        _ => "n/a".into(),
    }
}

fn print_table(report: &Value) {
    outln!();
    outln!(
        "accel {}  tsc {}  {}  logs {}",
        report["accel"].as_str().unwrap_or("?"),
        crate::tsc::describe(report),
        if report["x2apic"].as_bool() == Some(true) {
            "x2APIC"
        } else {
            "xAPIC"
        },
        report["log_dir"].as_str().unwrap_or("?")
    );
    for w in crate::tsc::warnings(report) {
        outln!("WARNING: {w}");
    }
    outln!(
        "{:<5} {:<8} {:<6} {:<6} {:<24} {:<12} {:>7} {:>12} {:>12} {:>16}",
        "node",
        "state",
        "cores",
        "apic",
        "memory",
        "devices",
        "pings",
        "rtt p50 ns",
        "rtt max ns",
        "tsc offset ns"
    );
    for n in report["nodes"].as_array().into_iter().flatten() {
        let list = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.to_string().trim_matches('"').to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let base = n["memory"]["base"].as_u64().unwrap_or(0);
        let size = n["memory"]["size"].as_u64().unwrap_or(0);
        outln!(
            "{:<5} {:<8} {:<6} {:<6} {:<24} {:<12} {:>7} {:>12} {:>12} {:>16}",
            n["id"].to_string(),
            n["state"].as_str().unwrap_or("?"),
            list(&n["cores"]),
            list(&n["apic_ids"]),
            format!("{} MiB @ {:#x}", size >> 20, base),
            list(&n["devices"]),
            n["ipi_rtt_ns"]["count"].to_string(),
            or_na(&n["ipi_rtt_ns"]["p50"]),
            or_na(&n["ipi_rtt_ns"]["max"]),
            offset_cell(&n["tsc_sync"]),
        );
        if let Some(r) = n["reason"].as_str() {
            outln!("      reason: {r}");
        }
        if n["os"] == "linux" {
            let init = if n["reports_init"] == false {
                "the plan's own initrd: its /init does not report to node 0".to_string()
            } else if n["init"]["reached"] == true {
                format!(
                    "/init reached {} ms after the SIPI (kernel uptime {} ms)",
                    or_na(&n["init"]["boot_ms"]),
                    or_na(&n["init"]["uptime_ms"])
                )
            } else {
                "/init NOT reached".to_string()
            };
            let watch = if n["monitored"] == true {
                format!(
                    "monitored: mint's module running {} ms after the SIPI",
                    or_na(&n["running_ms"])
                )
            } else {
                "unmonitored: no heartbeat or pings without mint's module".to_string()
            };
            outln!(
                "      linux {}: {init}; {watch}",
                n["kernel"].as_str().unwrap_or("(release not seen)"),
            );
        }
        let incidents: Vec<String> = n["incidents"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_u64().is_some_and(|c| c > 0))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !incidents.is_empty() {
            outln!("      refused or gave up: {}", incidents.join(", "));
        }
    }
    outln!("verdict: {}", report["verdict"].as_str().unwrap_or("?"));
}
