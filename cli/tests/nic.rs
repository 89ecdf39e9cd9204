//! The e1000 driver's MMIO backend on (QEMU's emulated) hardware: a plan
//! that gives the 82540EM to a node makes node 0 find it on the PCI bus and
//! map its registers into that node only; the node resets it, brings the
//! link up, reads its MAC and programs the RX ring with the same `RxRing`
//! code the debug NIC uses, and the device holds what was programmed.

mod common;

use std::time::Duration;

use tempfile::TempDir;

fn plan_with_nic_on(owner: u8) -> String {
    plan_of(2, owner)
}

/// `nodes` nodes, one core and a COM port each, the e1000 on `owner`.
fn plan_of(nodes: u8, owner: u8) -> String {
    let devices = |id: u8| {
        let com = format!("\"com{}\"", id + 1);
        if id == owner {
            format!("[{com}, \"e1000\"]")
        } else {
            format!("[{com}]")
        }
    };
    (0..nodes)
        .map(|id| {
            format!(
                "[[node]]\nid = {id}\ncores = [{id}]\nmemory = \"64M\"\ndevices = {}\n",
                devices(id)
            )
        })
        .collect()
}

fn boot_with_nic_on(owner: u8, extra: &[&str]) -> (common::Run, TempDir) {
    let dir = TempDir::new().expect("temp dir");
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, plan_with_nic_on(owner)).expect("plan written");
    let mut args = vec!["--config", plan.to_str().expect("UTF-8")];
    args.extend_from_slice(extra);
    let (run, logs) = common::run_logged("boot", &args);
    run.assert_exit(0);
    drop(dir);
    (run, logs)
}

#[test]
fn the_owner_brings_up_the_real_e1000_through_its_registers() {
    for owner in [1u8, 0] {
        let (run, logs) = boot_with_nic_on(owner, &[]);
        let report = run.report();
        assert_eq!(report["ok"], true, "{report:#}");
        // The layer's view per node: who owns nic0 now, and the device
        // interrupts each node's entry saw (none: no traffic, no strays).
        for (i, n) in report["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .enumerate()
        {
            let owns = if i == usize::from(owner) {
                vec!["nic0"]
            } else {
                vec![]
            };
            assert_eq!(n["owns"], serde_json::json!(owns), "{report:#}");
            assert_eq!(n["device_interrupts"]["stray"], 0, "{report:#}");
        }
        // What node 0 publishes for every node (read back through the
        // sequence lock) is the layer's own view.
        let irq = &report["irq"];
        let published = &irq["published"];
        let generation = common::uint(&published["generation"], "generation");
        assert_eq!(generation % 2, 0, "{published:#}");
        assert_eq!(published["routes"], irq["routes"], "{report:#}");
        let (mine, theirs) = (&published["devices"][0], &irq["devices"][0]);
        for key in [
            "owner",
            "vector",
            "gsi",
            "masked",
            "refused",
            "crash_resets",
        ] {
            assert_eq!(mine[key], theirs[key], "{key}: {report:#}");
        }
        let gsi = common::uint(&theirs["gsi"], "gsi") as usize;
        assert_eq!(published["pins"][gsi], theirs["entry"]["raw"], "{report:#}");
        let devices = &report["nodes"][usize::from(owner)]["devices"];
        assert!(
            devices
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "e1000")),
            "{report:#}"
        );
        let log = |id: u8| {
            std::fs::read_to_string(logs.path().join(format!("node{id}.log"))).expect("console log")
        };
        let owner_log = log(owner);
        let line = owner_log
            .lines()
            .find(|l| l.contains("e1000 at"))
            .unwrap_or_else(|| panic!("node{owner} did not bring up the e1000:\n{owner_log}"));
        for fact in [
            "MAC 52:54:00:12:34:56",
            "link up",
            "RX ring of 256 descriptors",
            "RDLEN 4096",
            "RDT 255",
        ] {
            assert!(line.contains(fact), "'{fact}' missing from: {line}");
        }
        // Node 0 left the NIC decoding memory and mastering the bus, its
        // I/O BAR off, and says what the command register read back.
        let node0_log = log(0);
        let pci = node0_log
            .lines()
            .find(|l| l.contains("the e1000 (PCI") && l.contains("command register 0x"))
            .unwrap_or_else(|| {
                panic!("node0 did not report the e1000's PCI command:\n{node0_log}")
            });
        let command = pci
            .split("command register 0x")
            .nth(1)
            .and_then(|rest| rest.get(..4))
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("no command value in: {pci}"));
        assert_eq!(command & 0b001, 0, "I/O space decode still on: {pci}");
        assert_eq!(command & 0b110, 0b110, "memory and bus master: {pci}");
        assert!(
            pci.contains(&format!("gives node{owner} the e1000")),
            "{pci}"
        );
        let other = log(1 - owner);
        assert!(
            !other.contains("e1000 at"),
            "the other node touched the NIC:\n{other}"
        );
    }
}

/// Only the NIC's register space is mapped into its owner, not the rest of
/// the 2 MiB frames around it: a read of the page right after it
/// page-faults in the owner, and node 0 carries on.
#[test]
fn the_owner_cannot_reach_past_the_register_space() {
    let (run, logs) = boot_with_nic_on(1, &["--fault", "1:nic-overreach"]);
    let report = run.report();
    assert_eq!(report["ok"], true, "{report:#}");
    let owner = &report["nodes"][1];
    assert_eq!(owner["state"], "crashed", "{owner:#}");
    let why = owner["reason"].as_str().unwrap_or_default();
    for fragment in ["page fault", "read of 0x", "outside this node's memory"] {
        assert!(
            why.contains(fragment),
            "reason {why:?} should mention {fragment:?}"
        );
    }
    assert_eq!(report["nodes"][0]["state"], "running", "{report:#}");
    // The address is the first byte after the registers node 0 mapped.
    let hex_after = |s: &str, key: &str| {
        s.split(key)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_hexdigit()).next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    };
    let node0 = std::fs::read_to_string(logs.path().join("node0.log")).expect("console log");
    let line = node0
        .lines()
        .find(|l| l.contains("the e1000 (PCI"))
        .unwrap_or_else(|| panic!("node0 did not say what it mapped:\n{node0}"));
    let base = hex_after(line, "registers 0x").expect("register base");
    let size = hex_after(line, "+0x").expect("register size");
    assert_eq!(
        hex_after(why, "read of 0x"),
        Some(base + size),
        "{why} / {line}"
    );
}

/// Frames the host sends reach the real e1000's owner through its INTx,
/// which the interrupt layer routed: every frame is accounted for
/// (delivered, dropped with a reason, or lost before the NIC in the
/// host's socket buffer), none corrupted, and the owner took interrupts
/// on the vector the layer gave the line.
#[test]
fn frames_from_the_host_are_received_through_the_interrupt_layer() {
    let (run, _logs) = common::run_logged(
        "nic",
        &[
            "--node", "1", "--count", "200", "--size", "1514", "--rate", "100",
        ],
    );
    let r = run.report();
    assert_eq!(r["ok"], true, "{}", run.context());
    run.assert_exit(0);
    let sent = common::uint(&r["sent"], "sent");
    assert_eq!(sent, 200, "{r:#}");
    assert_eq!(r["unaccounted"], 0, "{r:#}");
    assert_eq!(r["corrupted"], 0, "{r:#}");
    let delivered = common::uint(&r["delivered"], "delivered");
    let lost = common::uint(&r["lost_before_nic"], "lost_before_nic");
    let dropped: u64 = r["dropped"]
        .as_object()
        .expect("dropped by reason")
        .values()
        .map(|v| common::uint(v, "a drop count"))
        .sum();
    assert_eq!(delivered + dropped + lost, sent, "{r:#}");
    assert!(delivered > 0, "nothing received: {r:#}");
    assert!(common::uint(&r["interrupts"], "interrupts") > 0, "{r:#}");
    // The NIC's missed-packet counter is reported (QEMU's 82540EM never
    // misses: with its ring full it stops taking frames).
    common::uint(&r["missed_by_nic"], "missed_by_nic");
    let d = &r["device"];
    assert_eq!(d["owner"], 1, "{d:#}");
    assert_eq!(d["trigger"], "level", "{d:#}");
    assert_eq!(d["masked"], false, "{d:#}");
    let vector = common::uint(&d["vector"], "vector");
    // The layer's range: above the debug NIC's 0x40, below the mailbox.
    assert!((0x41..0xF0).contains(&vector), "{d:#}");
    assert_eq!(d["entry"]["vector"], vector, "{d:#}");
    assert_eq!(d["entry"]["destination"], 1, "{d:#}");
}

/// A node that does not own the e1000 asking the interrupt layer to
/// unmask or route its interrupt is refused, the refusal is counted on
/// the device, and the I/O APIC entry (read back by node 0 before and
/// after each request) is unchanged; node 0 asks directly, node 2 over
/// the mailbox.
#[test]
fn a_node_that_does_not_own_the_nic_is_refused_and_the_entry_is_unchanged() {
    let dir = TempDir::new().expect("temp dir");
    let plan = dir.path().join("plan.toml");
    let text: String = (0..3u8)
        .map(|id| {
            let devices = if id == 1 {
                "[\"com2\", \"e1000\"]".to_string()
            } else {
                format!("[\"com{}\"]", id + 1)
            };
            format!("[[node]]\nid = {id}\ncores = [{id}]\nmemory = \"64M\"\ndevices = {devices}\n")
        })
        .collect();
    std::fs::write(&plan, text).expect("plan written");
    let (run, _logs) = common::run_logged(
        "boot",
        &[
            "--config",
            plan.to_str().expect("UTF-8"),
            "--selftest",
            "irq",
        ],
    );
    run.assert_exit(0);
    let r = run.report();
    let tests = r["selftests"].as_array().expect("selftests");
    let mut asked = 0;
    for node in [0u64, 2] {
        let t = tests
            .iter()
            .find(|t| t["node"] == node)
            .unwrap_or_else(|| panic!("node{node} ran no irq self-test: {r:#}"));
        assert_eq!(t["owner"], false, "{t:#}");
        let requests = t["requests"].as_array().expect("requests");
        assert_eq!(requests.len(), 2, "{t:#}");
        for q in requests {
            assert_eq!(q["status"], "not_owner", "{q:#}");
            assert_eq!(q["unchanged"], true, "{q:#}");
            // Still the owner's: its vector, its CPU, unmasked.
            assert_eq!(q["after"]["destination"], 1, "{q:#}");
            assert_eq!(q["after"], q["before"], "{q:#}");
            asked += 1;
        }
    }
    let owner = tests.iter().find(|t| t["node"] == 1).expect("owner's line");
    assert_eq!(owner["owner"], true, "{owner:#}");
    // Before registering, the owner claimed two sources other than the
    // one node 0 read from PCI and the MADT: refused, nothing changed.
    let claims = owner["false_claims"].as_array().expect("false claims");
    assert_eq!(claims.len(), 2, "{owner:#}");
    for (c, what) in claims.iter().zip(["polarity", "gsi"]) {
        assert_eq!(c["claim"], what, "{c:#}");
        assert_eq!(c["status"], "refused", "{c:#}");
        assert_eq!(c["vector"], 0, "no vector given: {c:#}");
        assert_eq!(c["unchanged"], true, "{c:#}");
        asked += 1;
    }
    let devices = r["irq"]["devices"].as_array().expect("irq devices");
    let nic = devices
        .iter()
        .find(|d| d["device"] == "nic0")
        .expect("nic0");
    assert_eq!(nic["refused"], asked, "{nic:#}");
    assert_eq!(nic["owner"], 1, "{nic:#}");
    assert_eq!(nic["state"], "attached", "{nic:#}");
    // Each level GSI its own vector (EOI broadcast matches by vector).
    let routes = r["irq"]["routes"].as_array().expect("routes");
    let mut vectors: Vec<u64> = routes
        .iter()
        .map(|x| common::uint(&x["vector"], "vector"))
        .collect();
    let n = vectors.len();
    vectors.sort_unstable();
    vectors.dedup();
    assert_eq!(
        vectors.len(),
        n,
        "a vector shared between routes: {routes:?}"
    );
    assert_eq!(r["irq"]["eoi"], "lapic_broadcast", "{:#}", r["irq"]);
}

/// `mint nic`'s own checks, before anything boots: node 0 cannot receive
/// (it runs the machine), a frame must fit the real NIC's buffers, and a
/// plan file must give the e1000 to the node asked for.
#[test]
fn bad_nic_requests_are_refused_before_boot() {
    let dir = TempDir::new().expect("temp dir");
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, plan_with_nic_on(1)).expect("plan written");
    let plan = plan.to_str().expect("UTF-8");
    for (args, says) in [
        (vec!["nic", "--node", "0"], "node 0 runs the machine"),
        (vec!["nic", "--size", "1515"], "at most 1514 bytes"),
        (
            vec!["nic", "--config", plan, "--node", "2"],
            "gives the e1000 to node1",
        ),
        (
            vec!["nic", "--nodes", "2", "--node", "2"],
            "the plan has 2 nodes",
        ),
        (
            vec!["nic", "--stop-owner", "20:panic"],
            "expected K:nmi or K:init",
        ),
    ] {
        let run = common::mint(&args);
        run.assert_exit(2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.context());
        assert!(!run.console_seen(), "{args:?} booted: {}", run.context());
    }
}

/// A node that dies owning the e1000 (after registering and unmasking its
/// INTx) loses it: node 0 sees the crash, the interrupt layer masks the pin
/// (read back), leaves no remote IRR, and gives the device back to its
/// default owner, node 0, which keeps it masked; the others run on.
#[test]
fn a_crashed_owner_loses_the_nic_to_node_0_masked() {
    for fault in ["1:panic", "1:hang"] {
        let dir = TempDir::new().expect("temp dir");
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, plan_of(3, 1)).expect("plan written");
        let (run, logs) = common::run_logged(
            "boot",
            &["--config", plan.to_str().expect("UTF-8"), "--fault", fault],
        );
        run.assert_exit(0);
        let report = run.report();
        let ctx = || format!("{fault}: {report:#}\n{}", run.context());
        assert_eq!(report["nodes"][1]["state"], "crashed", "{}", ctx());
        for id in [0, 2] {
            assert_eq!(report["nodes"][id]["state"], "running", "{}", ctx());
        }
        let nic = &report["irq"]["devices"][0];
        assert_eq!(nic["device"], "nic0", "{}", ctx());
        assert_eq!(nic["owner"], 0, "back to its default owner: {}", ctx());
        assert_eq!(nic["default_owner"], 0, "{}", ctx());
        assert_eq!(nic["state"], "attached", "{}", ctx());
        assert_eq!(nic["crash_resets"], 1, "{}", ctx());
        assert_eq!(nic["masked"], true, "{}", ctx());
        let entry = &nic["entry"];
        assert_eq!(
            entry["masked"],
            true,
            "the pin reads back masked: {}",
            ctx()
        );
        assert_eq!(entry["remote_irr"], false, "{}", ctx());
        assert_eq!(entry["level"], true, "{}", ctx());
        assert_eq!(
            entry["vector"],
            nic["vector"],
            "a fresh vector, programmed: {}",
            ctx()
        );
        assert_eq!(
            report["irq"]["routes"][0]["destination_apic"],
            report["nodes"][0]["apic_ids"][0],
            "routed to node 0's CPU: {}",
            ctx()
        );
        let node1 = std::fs::read_to_string(logs.path().join("node1.log")).expect("console log");
        assert!(
            node1.contains("through the interrupt layer, unmasked"),
            "node 1 did not own the unmasked NIC before its fault:\n{node1}"
        );
        let node0 = std::fs::read_to_string(logs.path().join("node0.log")).expect("console log");
        let line = node0
            .lines()
            .find(|l| l.contains("interrupt layer: node1 crashed owning nic0"))
            .unwrap_or_else(|| panic!("{fault}: node 0 did not say it took the NIC:\n{node0}"));
        for fact in [
            "now attached by node0",
            "read back: masked",
            "remote IRR clear",
        ] {
            assert!(line.contains(fact), "'{fact}' missing from: {line}");
        }
        // Everyone told: node 0 (the new owner) by "attached (crash
        // recovery)", node 2 by "owner crashed".
        assert!(
            node0.contains("node0: nic0 is attached here after its owner crashed"),
            "{fault}: node 0 was not told:\n{node0}"
        );
        let node2 = std::fs::read_to_string(logs.path().join("node2.log")).expect("console log");
        assert!(
            node2.contains("node2: nic0's owner node1 crashed; now owned by node0"),
            "{fault}: node 2 was not told:\n{node2}"
        );
    }
}

/// A node killed inside the e1000's interrupt handler (the hidden fault
/// `nic-mid-handler`: ICS raises the receive causes, the handler panics
/// before reading ICR or its EOI) leaves the level pin with remote IRR set
/// and the line asserted; node 0's crash handling masks the pin, clears
/// remote IRR (read back) and takes the NIC, so the pin is not dead.
#[test]
fn a_node_killed_mid_handler_does_not_leave_the_pin_dead() {
    let dir = TempDir::new().expect("temp dir");
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, plan_of(3, 1)).expect("plan written");
    let (run, logs) = common::run_logged(
        "boot",
        &[
            "--config",
            plan.to_str().expect("UTF-8"),
            "--fault",
            "1:nic-mid-handler",
        ],
    );
    run.assert_exit(0);
    let report = run.report();
    let ctx = || format!("{report:#}\n{}", run.context());
    let node1 = &report["nodes"][1];
    assert_eq!(node1["state"], "crashed", "{}", ctx());
    let why = node1["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("killed in the e1000's interrupt handler"),
        "{why}"
    );
    for id in [0, 2] {
        assert_eq!(report["nodes"][id]["state"], "running", "{}", ctx());
    }
    let nic = &report["irq"]["devices"][0];
    assert_eq!(nic["owner"], 0, "{}", ctx());
    assert_eq!(nic["crash_resets"], 1, "{}", ctx());
    assert_eq!(nic["entry"]["masked"], true, "{}", ctx());
    assert_eq!(nic["entry"]["remote_irr"], false, "{}", ctx());
    let node0 = std::fs::read_to_string(logs.path().join("node0.log")).expect("console log");
    let line = node0
        .lines()
        .find(|l| l.contains("interrupt layer: node1 crashed owning nic0"))
        .unwrap_or_else(|| panic!("node 0 did not say it took the NIC:\n{node0}"));
    for fact in [
        "read back: masked, remote IRR clear",
        // What the dead handler left: the pin really was stuck.
        "remote IRR set)",
    ] {
        assert!(line.contains(fact), "'{fact}' missing from: {line}");
    }
}

/// QEMU's socket is the one mint bound and handed over: QEMU's command
/// line names an inherited descriptor (no port of its own to race for),
/// that descriptor is a loopback UDP socket connected to the host's, on
/// the port mint announced, and no process but QEMU and mint holds it.
#[test]
fn qemu_receives_on_the_socket_mint_bound_and_passed() {
    let run = common::Isolated::new();
    let _machine = common::one_machine_at_a_time();
    let mut child = run
        .logged(&[
            "nic",
            "--timeout",
            "120",
            "--node",
            "1",
            "--count",
            "300",
            "--size",
            "200",
            "--rate",
            "100",
        ])
        .spawn()
        .expect("mint starts");
    let stderr = common::collect_stderr(&mut child);
    // The owner takes frames from here on; the host sends for 3 s.
    let (_seen, rest) = common::wait_for_line(
        &mut child,
        "through the interrupt layer, unmasked; receiving",
        Duration::from_secs(120),
    );
    let qemus = run.qemus();
    assert_eq!(qemus.len(), 1, "one QEMU: {qemus:?}");
    let qemu = qemus[0];
    let cmdline = std::fs::read(format!("/proc/{qemu}/cmdline")).expect("QEMU's command line");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let netdev = cmdline
        .split(' ')
        .find(|a| a.starts_with("dgram,"))
        .unwrap_or_else(|| panic!("no dgram netdev: {cmdline}"));
    assert!(!netdev.contains("port="), "QEMU binds no port: {netdev}");
    assert!(!netdev.contains("remote."), "{netdev}");
    let fd: u32 = netdev
        .split_once("local.type=fd,local.str=")
        .and_then(|(_, n)| n.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no inherited descriptor: {netdev}"));
    let socket_of = |pid: u32, fd: &str| {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .ok()
            .and_then(|t| {
                t.to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')
                    .map(str::to_string)
            })
    };
    let inode = socket_of(qemu, &fd.to_string())
        .unwrap_or_else(|| panic!("QEMU's descriptor {fd} is not a socket"));
    let udp = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let row: Vec<&str> = udp
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(9) == Some(&inode.as_str()))
        .unwrap_or_else(|| panic!("socket {inode} not in /proc/net/udp:\n{udp}"));
    let (local, remote) = (row[1], row[2]);
    assert!(local.starts_with("0100007F:"), "{row:?}");
    // Connected to the host's loopback socket.
    assert!(
        remote.starts_with("0100007F:") && remote != "0100007F:0000",
        "{row:?}"
    );
    let mut holders: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| socket_of(*pid, &e.file_name().to_string_lossy()).as_ref() == Some(&inode))
        })
        .collect();
    holders.sort_unstable();
    let mut expected = vec![qemu, child.id()];
    expected.sort_unstable();
    assert_eq!(
        holders,
        expected,
        "QEMU's socket {inode}: held by QEMU {qemu} and mint {} only",
        child.id()
    );
    let (status, _) = common::wait_at_most(&mut child, Duration::from_secs(120));
    drop(rest);
    let stderr = stderr.join().unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let port = u16::from_str_radix(&local["0100007F:".len()..], 16).expect("hex port");
    assert!(
        stderr.contains(&format!("to QEMU's 127.0.0.1:{port}")),
        "mint did not announce QEMU's port {port}:\n{stderr}"
    );
}

/// The e1000's owner crashing while the host sends (hidden fault
/// injection: once the owner's progress reached 20, i.e. it took frames,
/// node 0 sends it an NMI, which it records as its crash, or an INIT,
/// which silently resets its core, found by its lost heartbeat) ends the
/// run with an error naming the node and its reason: no frame goes missing
/// from the accounting (the dead owner took frames whose fate it never
/// published: unaccounted), mint fails, and no QEMU is left.
#[test]
fn an_owner_crash_during_the_run_fails_it_naming_the_node() {
    for (how, reason) in [
        ("20:nmi", "node1 crashed: NMI at rip"),
        ("20:init", "node1 crashed: heartbeat lost"),
    ] {
        owner_crash_during_the_run(how, reason);
    }
}

fn owner_crash_during_the_run(how: &str, reason: &str) {
    let run = common::Isolated::new();
    let _machine = common::one_machine_at_a_time();
    let out = run
        .logged(&[
            "nic",
            "--json",
            "--timeout",
            "120",
            "--node",
            "1",
            "--count",
            "3000",
            "--size",
            "1514",
            "--rate",
            "1000",
            "--stop-owner",
            how,
        ])
        .output()
        .expect("mint runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = || format!("{how}: exit {:?}\n{stdout}\n{stderr}", out.status.code());
    assert_eq!(out.status.code(), Some(1), "{}", ctx());
    run.assert_no_qemu_within(Duration::from_secs(5));
    let r: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {}", ctx()));
    assert_eq!(r["ok"], false, "{}", ctx());
    assert_eq!(r["completed"], false, "{}", ctx());
    let down = &r["owner_down"];
    assert_eq!(down["node"], 1, "{}", ctx());
    let why = down["reason"].as_str().unwrap_or_default();
    assert!(why.starts_with(reason), "{}", ctx());
    assert!(
        r["verdict"].as_str().unwrap_or_default().contains(why),
        "{}",
        ctx()
    );
    assert!(
        stderr.contains(&format!("mint: nic: {why} during the run")),
        "{}",
        ctx()
    );
    let sent = common::uint(&r["sent"], "sent");
    let delivered = common::uint(&r["delivered"], "delivered");
    let lost = common::uint(&r["lost_before_nic"], "lost_before_nic");
    let dropped: u64 = r["dropped"]
        .as_object()
        .expect("dropped by reason")
        .values()
        .map(|v| common::uint(v, "a drop count"))
        .sum();
    let unaccounted = common::uint(&r["unaccounted"], "unaccounted");
    let progress = common::uint(&down["progress"], "owner_down.progress");
    assert!(
        progress >= 20,
        "stopped before its progress reached 20: {}",
        ctx()
    );
    assert!(sent > 0 && sent <= 3000, "{}", ctx());
    assert_eq!(delivered + dropped + lost + unaccounted, sent, "{}", ctx());
    // It took frames but published the fate of none that reached its
    // stack (it publishes deliveries only on completing the run).
    assert!(unaccounted > 0, "{}", ctx());
    // The interrupt layer took the NIC back, masked.
    let d = &r["device"];
    assert_eq!(d["owner"], 0, "{}", ctx());
    assert_eq!(d["crash_resets"], 1, "{}", ctx());
    assert_eq!(d["masked"], true, "{}", ctx());
}
