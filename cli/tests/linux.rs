//! End-to-end tests of Linux nodes: a stock Debian kernel booted by node 0
//! on its own core and partition, between two mint nodes.
//!
//! - `examples/linux.toml` boots: node 1 (Debian's kernel, mint's /init)
//!   reaches /init, which node 0 sees (its time from the INIT) and its
//!   console shows (the kernel's release, the /init line); /init loads
//!   mint's module, so node 1 is running and monitored (heartbeats), node 0
//!   and node 1 ping each other, node 1 pings node 2; nodes 0 and 2 run
//!   and ping each other;
//! - a module that claims another ABI version refuses to load, with a
//!   clear message, and the node stays unmonitored;
//! - `--fault 1:panic`: the module panics, its panic notifier marks the
//!   node crashed with the panic's message, nodes 0 and 2 run on;
//! - a kernel crash from user space (`echo c > /proc/sysrq-trigger`, by
//!   mint's /init when the cmdline says `mint_user_fault=sysrq-crash`) is
//!   contained the same way; a restart (`mint_user_fault=reboot`) ends in
//!   the module's reboot notifier, which says halted and halts the core:
//!   the machine is not reset, nodes 0 and 2 run on;
//! - with an initrd of the plan's own the node is started (node 0 saw it
//!   enter the kernel) and not waited for;
//! - `mint gen` against node 1 on Linux (mint's module's `mint0`, the
//!   debug NIC as a Linux network device, and the target application in
//!   mint's /init): 5000 frames through Linux's UDP stack, every one
//!   delivered or dropped with a counted reason; raw-Ethernet frames to a
//!   packet socket; back to back into a
//!   socket buffer too small to keep up, with drops of the ring (the
//!   device's ring_full) and of Linux's stack (its UDP RcvbufErrors, the
//!   `stack` reason), none unaccounted;
//! - `--moderation itr:NS`: mint0 programs ITR, the device throttles;
//! - the device's faults against `mint0`: every 10th descriptor
//!   write-back corrupted (each counted as `bad_descriptor`, the rest
//!   delivered) and every 3rd IPI lost (each recovered by the module's
//!   heartbeat, which finds the posted flag left set);
//! - bad Linux nodes are refused before QEMU starts: too small, a kernel
//!   file that is missing, one that is not a bzImage, one without the
//!   64-bit entry, a Linux node 0, a `--fault` the module does not inject
//!   aimed at a Linux node;
//! - `--fault 1:page-fault`, `1:invalid-opcode` (oopses, made panics by
//!   `oops=panic`) and `1:hang` (interrupts off: the heartbeat stops) are
//!   contained: node 1 crashed with the reason, nodes 0 and 2 running;
//! - `mint gen --deliver driver`: mint0 counts and frees each frame, none
//!   reaches the stack, the payload bytes as mint's driver counts them;
//! - `mint bench --config examples/linux.toml`: every experiment into the
//!   mint node 2, throughput and success rate again into the Linux node 1
//!   (`linux_target`), every frame of every run accounted for.
//!
//! One Linux boot takes 8-10 s from the SIPI to /init under software
//! emulation (the decompressor alone about 6 s), so there is one.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, mint, one_machine_at_a_time, run_logged, uint};
use tempfile::TempDir;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("linux.toml")
}

#[test]
fn a_debian_kernel_boots_as_node_1_beside_two_mint_nodes() {
    let plan = example();
    let (run, logs) = run_logged("boot", &["--config", plan.to_str().expect("UTF-8")]);
    run.assert_exit(0);
    let report = run.report();
    let nodes = report["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{}", run.context());
    let linux = &nodes[1];
    assert_eq!(linux["os"], "linux", "{}", run.context());
    assert_eq!(linux["state"], "running", "{}", run.context());
    assert_eq!(linux["monitored"], true);
    assert_eq!(linux["reports_init"], true);
    // mint's module beats its heartbeat at 100 Hz (node 0 waits for 10).
    assert!(
        uint(&linux["heartbeats"], "heartbeats") >= 10,
        "{}",
        run.context()
    );
    let running_ms = uint(&linux["running_ms"], "running_ms");
    assert!(
        running_ms >= uint(&linux["boot_ms"], "boot_ms"),
        "{running_ms}"
    );
    let release = linux["kernel"].as_str().expect("the kernel's release");
    assert!(release.ends_with("-amd64"), "{release}");
    let init = linux["console_init"].as_str().expect("the /init line");
    assert!(
        init.contains(&format!("release={release}"))
            && init.contains("report=ok@")
            && init.contains("module=loaded"),
        "{init}"
    );
    let boot_ms = uint(&linux["boot_ms"], "boot_ms");
    assert_eq!(linux["init"]["boot_ms"], linux["boot_ms"]);
    let uptime_ms = uint(&linux["init"]["uptime_ms"], "uptime_ms");
    assert!(
        boot_ms > uptime_ms && uptime_ms > 0,
        "node 0 measures from the SIPI, before the kernel's clock starts: {boot_ms} vs {uptime_ms}"
    );
    // Its module pings node 0 and node 2; node 0 pings it once it is up,
    // and asks node 2 (whose round was over by then) to ping it too:
    // every node both ways.
    let pings = |from: &serde_json::Value, to: u64| {
        from["peers"]
            .as_array()
            .expect("peers")
            .iter()
            .find(|p| p["peer"] == to)
            .map_or(0, |p| p["rtt_ns"].as_array().expect("rtt_ns").len())
    };
    assert_eq!(pings(linux, 0), 32, "{}", run.context());
    assert_eq!(pings(linux, 2), 32, "{}", run.context());
    assert_eq!(pings(&nodes[0], 1), 32, "{}", run.context());
    assert_eq!(pings(&nodes[0], 2), 32, "{}", run.context());
    assert_eq!(pings(&nodes[2], 0), 32, "{}", run.context());
    assert_eq!(pings(&nodes[2], 1), 32, "{}", run.context());
    for id in [0, 2] {
        let n = &nodes[id];
        assert_eq!(n["os"], "mint");
        assert_eq!(n["state"], "running", "{}", run.context());
    }
    assert_eq!(report["verdict"], "all nodes running", "{}", run.context());
    // The console is the node's own UART, logged like every node's.
    let log = std::fs::read_to_string(logs.path().join("node1.log")).expect("node 1's log");
    assert!(log.contains("Linux version "), "{log}");
    assert!(log.contains("mint-init: reached /init"), "{log}");
    assert!(log.contains("mint: node 1 running: shared region"), "{log}");
    // (Its "halted at node 0's request" line may be cut off: node 0
    // powers off as soon as it sees the state.)
    assert!(
        log.contains("BIOS-e820: [mem 0x0000000000080000-0x000000000009efff] usable"),
        "its e820 lists its private low slice\n{log}"
    );
    // Its memory map is its partition and that slice.
    let base = uint(&linux["memory"]["base"], "base");
    let size = uint(&linux["memory"]["size"], "size");
    let last = format!(
        "BIOS-e820: [mem {:#018x}-{:#018x}] usable",
        base + (2 << 20),
        base + size - 1
    );
    assert!(log.contains(&last), "{last}\n{log}");
    assert_eq!(
        log.matches("BIOS-e820:").count(),
        3,
        "only its slice, its head and its partition\n{log}"
    );
}

#[test]
fn a_linux_panic_is_contained() {
    // mint's module panics after its ping round; its panic notifier marks
    // the node crashed with the panic's message; the others run on.
    let plan = example();
    let (run, logs) = run_logged(
        "boot",
        &[
            "--config",
            plan.to_str().expect("UTF-8"),
            "--fault",
            "1:panic",
        ],
    );
    run.assert_exit(0);
    let report = run.report();
    assert_eq!(report["fault"]["contained"], true, "{}", run.context());
    let linux = &report["nodes"][1];
    assert_eq!(linux["state"], "crashed", "{}", run.context());
    assert_eq!(linux["monitored"], true);
    // /init reports before it loads the module, so node 0 did not wait
    // its 60 s for a report that would never come.
    assert_eq!(linux["init"]["reached"], true, "{}", run.context());
    assert_eq!(
        linux["reason"],
        "linux panic: mint: fault injected: panic",
        "{}",
        run.context()
    );
    for id in [0, 2] {
        assert_eq!(report["nodes"][id]["state"], "running", "{}", run.context());
    }
    let log = std::fs::read_to_string(logs.path().join("node1.log")).expect("node 1's log");
    assert!(
        log.contains("Kernel panic - not syncing: mint: fault injected: panic"),
        "{log}"
    );
}

#[test]
fn corrupted_descriptors_and_lost_ipis_against_mint0_are_counted_and_survived() {
    let plan = example();
    let (run, logs) = run_logged(
        "gen",
        &[
            "--config",
            plan.to_str().expect("UTF-8"),
            "--size",
            "1000",
            "--count",
            "400",
            "--interval-ns",
            "1000000",
            "--corrupt-every",
            "10",
            "--forget-ipi-every",
            "3",
        ],
    );
    run.assert_exit(0);
    let r = run.report();
    assert_eq!(r["completed"], true, "{}", run.context());
    assert_eq!(r["sent"], 400, "{}", run.context());
    assert_eq!(r["unaccounted"], 0, "{}", run.context());
    assert_eq!(r["corrupted"], 0, "{}", run.context());
    // Drops other than the corrupted descriptors are an overloaded
    // target's (the ring full while it was held up), which may also take
    // one of the tenths before it is judged.
    let mut overload = 0;
    for (reason, n) in r["dropped"].as_object().expect("dropped") {
        let n = n.as_u64().expect("a count");
        match reason.as_str() {
            "bad_descriptor" => {}
            "ring_full" | "socket_buffer_full" | "stack" => overload += n,
            _ => assert_eq!(n, 0, "dropped.{reason}: {}", run.context()),
        }
    }
    let bad = uint(&r["dropped"]["bad_descriptor"], "bad_descriptor");
    let delivered = uint(&r["delivered"], "delivered");
    assert_eq!(bad + delivered + overload, 400, "{}", run.context());
    if overload == 0 {
        assert_eq!((bad, delivered), (40, 360), "{}", run.context());
    }
    let forgotten = uint(&r["ipis_forgotten"], "ipis_forgotten");
    let recoveries = uint(&r["recoveries"], "recoveries");
    assert!(forgotten > 0, "no IPI was lost: {}", run.context());
    assert!(recoveries >= forgotten, "{}", run.context());
    let log = std::fs::read_to_string(logs.path().join("node1.log")).expect("node 1's log");
    assert!(
        log.contains(&format!(
            "driver: {bad} bad descriptors, 0 without an skb; {recoveries} lost IPIs recovered)"
        )),
        "{log}"
    );
}

/// `mint boot` of the example with `mint_user_fault=<fault>`: node 1 ends
/// `state` (the report says so: exit 1, a node is not running), nodes 0
/// and 2 run on; node 1's report and console log.
fn user_fault(fault: &str, state: &str) -> (serde_json::Value, String) {
    let dir = TempDir::new().expect("temporary directory");
    let plan = example_with_cmdline(&dir, &format!("mint_user_fault={fault}"));
    let (run, logs) = run_logged("boot", &["--config", plan.to_str().expect("UTF-8")]);
    run.assert_exit(1);
    let report = run.report();
    assert_eq!(
        report["verdict"],
        "a node is not running",
        "{}",
        run.context()
    );
    let linux = report["nodes"][1].clone();
    assert_eq!(linux["state"], state, "{}", run.context());
    assert_eq!(linux["monitored"], true);
    for id in [0, 2] {
        assert_eq!(report["nodes"][id]["state"], "running", "{}", run.context());
    }
    let log = std::fs::read_to_string(logs.path().join("node1.log")).expect("node 1's log");
    (linux, log)
}

#[test]
fn a_kernel_crash_from_user_space_is_contained() {
    let (linux, log) = user_fault("sysrq-crash", "crashed");
    assert_eq!(linux["reason"], "linux panic: sysrq triggered crash");
    assert!(log.contains("sysrq: Trigger a crash"), "{log}");
}

#[test]
fn a_linux_restart_halts_its_core_not_the_machine() {
    let (_linux, log) = user_fault("reboot", "halted");
    assert!(
        log.contains("mint: node 1: linux restart: mint's reboot notifier halted the core"),
        "{log}"
    );
}

/// `reboot(POWER_OFF)`: the node has no power-off method (its ACPI
/// tables give no PM registers), so Linux turns it into a halt, which
/// mint's reboot notifier meets like a restart: only its core stops.
#[test]
fn a_linux_poweroff_halts_its_core_not_the_machine() {
    let (_linux, log) = user_fault("poweroff", "halted");
    assert!(
        log.contains("mint: node 1: linux halt: mint's reboot notifier halted the core"),
        "{log}"
    );
}

#[test]
fn a_module_of_another_abi_version_refuses_to_load() {
    // `mint_module_abi=N` makes mint's module claim ABI version N.
    let dir = TempDir::new().expect("temporary directory");
    let text = std::fs::read_to_string(example())
        .expect("example")
        .replace(
            "# cmdline = \"loglevel=7\"",
            "cmdline = \"mint_module_abi=1\"",
        );
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, text).expect("plan written");
    let (run, logs) = run_logged("boot", &["--config", plan.to_str().expect("UTF-8")]);
    run.assert_exit(0);
    let report = run.report();
    let linux = &report["nodes"][1];
    assert_eq!(linux["state"], "reached-init", "{}", run.context());
    assert_eq!(linux["monitored"], false);
    assert_eq!(linux["ipi_rtt_ns"]["count"], 0);
    let init = linux["console_init"].as_str().expect("the /init line");
    // EPROTO
    assert!(
        init.contains("module=finit_module_failed_errno_71"),
        "{init}"
    );
    let log = std::fs::read_to_string(logs.path().join("node1.log")).expect("node 1's log");
    let refusal = format!(
        "ABI version {}; this module speaks magic {:#x} ABI version 1",
        mint_abi::shared::ABI_VERSION,
        mint_abi::shared::SHARED_MAGIC
    );
    assert!(
        log.contains("mint: refusing to load: the shared region at ") && log.contains(&refusal),
        "{refusal}\n{log}"
    );
}

#[test]
fn with_an_initrd_of_its_own_the_node_is_started_not_awaited() {
    // A valid, empty initramfs: its kernel finds no /init, so nothing
    // reports; node 0 does not wait for it.
    let dir = TempDir::new().expect("temporary directory");
    let initrd = dir.path().join("empty.cpio");
    let mut cpio = b"070701".to_vec();
    for field in [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0] {
        cpio.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    cpio.extend_from_slice(b"TRAILER!!!\0");
    cpio.resize(512, 0);
    std::fs::write(&initrd, cpio).expect("initrd written");
    let text = std::fs::read_to_string(example())
        .expect("example")
        .replace(
            "# initrd = \"my-initramfs.cpio\"",
            &format!("initrd = \"{}\"", initrd.display()),
        );
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, text).expect("plan written");
    let (run, _logs) = run_logged("boot", &["--config", plan.to_str().expect("UTF-8")]);
    run.assert_exit(0);
    let report = run.report();
    let linux = &report["nodes"][1];
    assert_eq!(linux["os"], "linux", "{}", run.context());
    assert_eq!(linux["reports_init"], false);
    assert_eq!(linux["state"], "started", "{}", run.context());
    assert_eq!(linux["init"]["reached"], false);
    assert!(uint(&linux["entered_us"], "entered_us") > 0);
}

/// Debian's kernel as mint takes it (the release `linux-image-amd64`
/// depends on, in /boot or mint's cache), fetched, with its headers, by
/// one boot of the example when no test has done that yet.
fn debian_kernel() -> (String, PathBuf) {
    let out = std::process::Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .output()
        .expect("apt-cache");
    let text = String::from_utf8_lossy(&out.stdout);
    let release = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .expect("linux-image-amd64's image")
        .to_string();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let places = [
        PathBuf::from(format!("/boot/vmlinuz-{release}")),
        cache.join(format!("mint/linux/{release}/vmlinuz-{release}")),
    ];
    // The image, and the headers mint builds its module against (which
    // a boot of the example installs when it runs as root).
    let headers = PathBuf::from(format!("/usr/src/linux-headers-{release}/Makefile"));
    if !places.iter().any(|p| p.is_file()) || !headers.is_file() {
        let (run, _logs) = run_logged("boot", &["--config", example().to_str().expect("UTF-8")]);
        run.assert_exit(0);
    }
    let path = places
        .into_iter()
        .find(|p| p.is_file())
        .expect("Debian's kernel, fetched");
    (release, path)
}

#[test]
fn a_plans_own_kernel_gets_mints_module_when_its_headers_are_installed() {
    // The plan names the kernel file itself: mint reads its release from
    // the bzImage's header and, with that release's headers installed,
    // builds its module for it: the node is monitored like the default.
    // The same image with its release string changed (headers for it are
    // not installed) boots without the module, which mint says up front.
    let (release, kernel) = debian_kernel();
    let dir = TempDir::new().expect("temporary directory");
    // Same length (6.1.0-57-amd64 becomes 691.0-57-amd64): the header's
    // pointer and the rest stay valid.
    let renamed = release.replacen('.', "9", 1);
    let mut bytes = std::fs::read(&kernel).expect("kernel");
    let copy = dir.path().join("vmlinuz-renamed");
    let at = bytes
        .windows(release.len() + 1)
        .position(|w| w == format!("{release} ").as_bytes())
        .expect("the release in the image");
    assert_eq!(renamed.len(), release.len());
    bytes.splice(at..at + release.len(), renamed.bytes());
    std::fs::write(&copy, bytes).expect("copy written");
    for (path, module) in [(kernel.as_path(), true), (copy.as_path(), false)] {
        let text = std::fs::read_to_string(example())
            .expect("example")
            .replace(
                "# kernel = \"/boot/vmlinuz-6.1.0-57-amd64\"",
                &format!("kernel = \"{}\"", path.display()),
            );
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, text).expect("plan written");
        let (run, _logs) = run_logged("boot", &["--config", plan.to_str().expect("UTF-8")]);
        run.assert_exit(0);
        let linux = &run.report()["nodes"][1];
        assert_eq!(linux["init"]["reached"], true, "{}", run.context());
        assert_eq!(linux["monitored"], module, "{}", run.context());
        let said = run
            .stderr
            .contains("goes without mint's module (the headers of its release");
        assert_eq!(said, !module, "{}", run.context());
        if module {
            assert_eq!(linux["state"], "running", "{}", run.context());
            assert_eq!(linux["kernel"], release.as_str(), "{}", run.context());
        }
    }
}

/// `examples/linux.toml` with node 1's `cmdline` set to `cmdline`.
fn example_with_cmdline(dir: &TempDir, cmdline: &str) -> PathBuf {
    let text = std::fs::read_to_string(example())
        .expect("example")
        .replace(
            "# cmdline = \"loglevel=7\"",
            &format!("cmdline = \"{cmdline}\""),
        );
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, text).expect("plan written");
    plan
}

/// `mint gen` of 5000 UDP frames of 1514 bytes, one every `interval_ns`,
/// against node 1 (Linux) of `plan`; the report after checking what every
/// run must satisfy: completed, every frame delivered or dropped with a
/// counted reason, none corrupted.
fn gen_against_linux(
    plan: &Path,
    interval_ns: &str,
    extra: &[&str],
) -> (Run, serde_json::Value, String) {
    let mut args = vec![
        "--config",
        plan.to_str().expect("UTF-8"),
        "--size",
        "1514",
        "--count",
        "5000",
        "--interval-ns",
        interval_ns,
    ];
    args.extend_from_slice(extra);
    let (run, logs) = run_logged("gen", &args);
    run.assert_exit(0);
    let r = run.report();
    assert_eq!(r["completed"], true, "{}", run.context());
    assert_eq!(r["sent"], 5000, "{}", run.context());
    assert_eq!(r["unaccounted"], 0, "{}", run.context());
    assert_eq!(r["corrupted"], 0, "{}", run.context());
    assert_eq!(r["ok"], true, "{}", run.context());
    let dropped: u64 = r["dropped"]
        .as_object()
        .expect("dropped")
        .values()
        .map(|v| v.as_u64().expect("a count"))
        .sum();
    assert_eq!(
        uint(&r["delivered"], "delivered") + dropped,
        5000,
        "{}",
        run.context()
    );
    // One latency sample per delivered frame, from the application; none
    // when the frames end at the driver.
    let timed = if r["config"]["deliver"] == "driver" {
        serde_json::json!(0)
    } else {
        r["delivered"].clone()
    };
    assert_eq!(r["latency_ns"]["count"], timed, "{}", run.context());
    let log = std::fs::read_to_string(logs.path().join("node1.log")).expect("node 1's log");
    assert!(
        log.contains("mint: mint0: the debug NIC")
            && log.contains("mint-target: mint0 up as 10.0.0.2/24"),
        "{log}"
    );
    (run, r, log)
}

#[test]
fn gen_through_linux_udp_stack_is_fully_accounted() {
    let (run, r, log) = gen_against_linux(&example(), "200000", &[]);
    let delivered = uint(&r["delivered"], "delivered");
    assert!(delivered > 0, "{}", run.context());
    // The driver refused nothing (nothing is corrupted), and took the
    // support node's IPIs on the vector it published.
    assert_eq!(r["dropped"]["bad_descriptor"], 0, "{}", run.context());
    assert!(
        uint(&r["interrupts"], "interrupts") > 0,
        "{}",
        run.context()
    );
    assert!(
        log.contains(&format!("mint-target: run 1: delivered {delivered}/5000")),
        "{log}"
    );
}

#[test]
fn a_driver_only_run_is_counted_in_mint0_and_never_reaches_the_stack() {
    // `--deliver driver`: mint0's NAPI poll copies each frame into an skb,
    // counts it and frees it; the application publishes the module's
    // count. Back to back, so the ring also drops (ring_full).
    let (run, r, log) = gen_against_linux(&example(), "0", &["--deliver", "driver"]);
    assert_eq!(r["config"]["deliver"], "driver", "{}", run.context());
    let delivered = uint(&r["delivered"], "delivered");
    assert!(delivered > 0, "{}", run.context());
    // Payload bytes: each 1514-byte frame less its Ethernet, IPv4 and
    // UDP headers (42 bytes), as mint's own driver-only path counts.
    assert_eq!(
        uint(&r["delivered_bytes"], "delivered_bytes"),
        delivered * (1514 - 42),
        "{}",
        run.context()
    );
    assert!(
        log.contains(&format!(
            "mint-target: run 1: {delivered} frames consumed at mint0's driver"
        )),
        "{log}"
    );
    // None went to Linux's stack: mint0's rx_packets stays 0.
    assert!(
        log.contains("(as `ip -s link` shows it): rx 0 packets"),
        "{log}"
    );
    for reason in ["stack", "bad_checksum", "duplicate", "stale_run"] {
        assert_eq!(r["dropped"][reason], 0, "{reason}: {}", run.context());
    }
}

#[test]
fn bench_measures_the_linux_target_beside_the_mint_target() {
    // examples/linux.toml: node 1 Linux, node 2 mint. Every experiment
    // goes to node 2; throughput and success rate again to node 1, in a
    // second boot, into `linux_target`.
    let tmp = TempDir::new().expect("temporary directory");
    let out = tmp.path().join("out");
    let plan = example();
    let run = {
        let _machine = one_machine_at_a_time();
        mint(&[
            "bench",
            "all",
            "--quick",
            "--max-frames",
            "300",
            "--config",
            plan.to_str().expect("UTF-8"),
            "--json",
            "--timeout",
            "600",
            "--out",
            out.to_str().expect("UTF-8"),
        ])
    };
    run.assert_exit(0);
    let r = run.report();
    assert_eq!(r["placement"]["target_node"], 2, "{}", run.context());
    let l = &r["linux_target"];
    assert_eq!(l["node"], 1, "{}", run.context());
    let kernel = l["kernel"].as_str().expect("the Linux node's release");
    assert!(kernel.ends_with("-amd64"), "{kernel}");
    let sum = |drops: &serde_json::Value| -> u64 {
        drops["by_reason"]
            .as_object()
            .expect("drops by reason")
            .values()
            .map(|v| v.as_u64().expect("a count"))
            .sum()
    };
    // Table 2: every size on each of the three paths, beside the mint
    // target's rows; every frame delivered or dropped with a reason.
    let rows = l["throughput"].as_array().expect("throughput rows");
    let mint_rows = r["throughput"].as_array().expect("the mint target's");
    assert_eq!(rows.len(), 18, "{}", run.context());
    for row in rows {
        assert_eq!(row["sent"], 300, "{row}");
        assert_eq!(row["unaccounted"], 0, "{row}");
        assert_eq!(
            uint(&row["delivered"], "delivered") + sum(&row["drops"]),
            300,
            "{row}"
        );
        assert!(row["gbps"].as_f64().is_some_and(|g| g > 0.0), "{row}");
        assert!(
            mint_rows
                .iter()
                .any(|m| m["size"] == row["size"] && m["path"] == row["path"]),
            "{row}"
        );
    }
    for path in ["driver", "raw-checked", "udp-checked"] {
        assert_eq!(
            rows.iter().filter(|x| x["path"] == path).count(),
            6,
            "{path}"
        );
    }
    // Fig. 9: each size's climb, every cycle accounted for.
    let cycles = l["success_rate"].as_array().expect("success-rate rows");
    for size in [1514, 8192, 16384] {
        let mine: Vec<_> = cycles.iter().filter(|c| c["size"] == size).collect();
        assert!(!mine.is_empty(), "{size}: {}", run.context());
        for c in mine {
            assert_eq!(
                uint(&c["delivered"], "delivered") + sum(&c["drops"]),
                300,
                "{c}"
            );
        }
        assert!(
            l["handling_ns"][size.to_string()]
                .as_f64()
                .is_some_and(|h| h > 0.0),
            "{size}: {l}"
        );
    }
    // Its raw rows and samples under linux/raw, one runs.csv row a run.
    let runs = std::fs::read_to_string(out.join("linux/raw/runs.csv")).expect("linux/raw/runs.csv");
    assert_eq!(
        runs.lines().count() - 1,
        l["runs"].as_array().expect("runs").len(),
        "{runs}"
    );
    assert!(
        out.join("linux/raw").read_dir().expect("linux/raw").count() > 1,
        "raw samples"
    );
    let log = std::fs::read_to_string(out.join("consoles-linux/node1.log")).expect("node 1's log");
    assert!(log.contains("frames consumed at mint0's driver"), "{log}");
    // The plots carry the Linux target's lines.
    let svg = std::fs::read_to_string(out.join("success_rate.svg")).expect("success_rate.svg");
    assert!(svg.contains("Linux target, 1514 B"), "the Linux lines");
}

#[test]
fn raw_frames_reach_a_packet_socket_on_mint0() {
    // `--kind raw` (ethertype 0x88B5) bypasses UDP: the application reads
    // them from a packet socket bound to mint0 and checks each whole frame.
    let (run, r, _log) = gen_against_linux(&example(), "200000", &["--kind", "raw"]);
    assert_eq!(r["config"]["kind"], "raw", "{}", run.context());
    assert!(uint(&r["delivered"], "delivered") > 0, "{}", run.context());
    for reason in ["bad_checksum", "bad_descriptor", "duplicate", "stale_run"] {
        assert_eq!(r["dropped"][reason], 0, "{reason}: {}", run.context());
    }
}

#[test]
fn mint0_programs_the_runs_interrupt_moderation() {
    // `--moderation itr:NS`: mint0 writes ITR when the run arms (NAPI is
    // its own whatever the run says), and the device defers interrupts
    // inside that window: 1 ms windows over frames 100 us apart.
    let (run, _logs) = run_logged(
        "gen",
        &[
            "--config",
            example().to_str().expect("UTF-8"),
            "--count",
            "2000",
            "--interval-ns",
            "100000",
            "--moderation",
            "itr:1048576",
        ],
    );
    run.assert_exit(0);
    let r = run.report();
    assert_eq!(
        r["config"]["moderation"],
        "itr:1048576",
        "{}",
        run.context()
    );
    assert_eq!(r["completed"], true, "{}", run.context());
    assert_eq!(r["unaccounted"], 0, "{}", run.context());
    assert!(
        uint(&r["itr_throttled"], "itr_throttled") > 0,
        "nothing throttled: {}",
        run.context()
    );
}

#[test]
fn back_to_back_into_a_small_socket_buffer_drops_with_counted_reasons() {
    // A 4 KiB socket buffer holds one datagram: Linux's UDP drops the
    // rest of every batch its NAPI poll hands up (RcvbufErrors), counted
    // as `stack`; the ring, refilled faster than Linux empties it, drops
    // at the device (`ring_full`).
    let dir = TempDir::new().expect("temporary directory");
    let plan = example_with_cmdline(&dir, "mint_rcvbuf=4096");
    let (run, r, log) = gen_against_linux(&plan, "0", &[]);
    let stack = uint(&r["dropped"]["stack"], "stack");
    assert!(stack > 0, "{}", run.context());
    assert!(
        uint(&r["dropped"]["ring_full"], "ring_full") > 0,
        "{}",
        run.context()
    );
    assert!(uint(&r["delivered"], "delivered") > 0, "{}", run.context());
    // Linux's own counter says the same.
    assert!(
        log.contains(&format!("{stack} stack drops: UDP RcvbufErrors +{stack} ")),
        "{log}"
    );
}

/// `mint boot --config` a plan with `node1` as given must be refused
/// before QEMU starts (exit 2), naming every fragment.
fn refused(node1: &str, fragments: &[&str]) -> Run {
    let dir = TempDir::new().expect("temporary directory");
    let plan = dir.path().join("plan.toml");
    let text = format!(
        "[[node]]\nid = 0\ncores = [0]\nmemory = \"64M\"\ndevices = [\"com1\"]\n\n\
         [[node]]\nid = 1\ncores = [1]\ndevices = [\"com2\"]\n{node1}\n"
    );
    std::fs::write(&plan, text).expect("plan written");
    let log_dir = dir.path().join("logs");
    let _machine = one_machine_at_a_time();
    let run = mint(&[
        "boot",
        "--config",
        plan.to_str().expect("UTF-8"),
        "--log-dir",
        log_dir.to_str().expect("UTF-8"),
    ]);
    run.assert_exit(2);
    assert!(
        !run.console_seen(),
        "QEMU must not start\n{}",
        run.context()
    );
    assert!(!log_dir.exists(), "nothing started\n{}", run.context());
    for fragment in fragments {
        assert!(
            run.stderr.contains(fragment),
            "stderr should mention {fragment:?}\n{}",
            run.context()
        );
    }
    run
}

#[test]
fn a_linux_node_too_small_is_refused() {
    refused(
        "memory = \"128M\"\nos = \"linux\"",
        &["node 1", "too small for Linux", "256 MiB"],
    );
}

#[test]
fn node_0_cannot_run_linux() {
    let dir = TempDir::new().expect("temporary directory");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[[node]]\nid = 0\ncores = [0]\nmemory = \"256M\"\ndevices = [\"com1\"]\nos = \"linux\"\n",
    )
    .expect("plan written");
    let run = mint(&["boot", "--config", plan.to_str().expect("UTF-8")]);
    run.assert_exit(2);
    assert!(run.stderr.contains("cannot run Linux"), "{}", run.context());
}

#[test]
fn a_fault_into_a_linux_node_is_refused() {
    let plan = example();
    let run = mint(&[
        "boot",
        "--config",
        plan.to_str().expect("UTF-8"),
        "--fault",
        "1:nmi-storm",
    ]);
    run.assert_exit(2);
    assert!(
        !run.console_seen(),
        "QEMU must not start\n{}",
        run.context()
    );
    assert!(
        run.stderr.contains(
            "runs Linux, where mint's module injects only `panic`, `page-fault`, `invalid-opcode`, `hang`"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn a_linux_oops_or_hang_is_contained() {
    // An oops (a NULL read; a BUG()'s invalid opcode) becomes a panic
    // (`oops=panic`), whose reason carries the oops; a hang with
    // interrupts off stops the heartbeat, and node 0's watch declares the
    // node crashed. Nodes 0 and 2 run on each time.
    let plan = example();
    for (fault, reason) in [
        (
            "page-fault",
            "linux panic: Fatal exception (after an oops: Oops at ",
        ),
        (
            "invalid-opcode",
            "linux panic: Fatal exception (after an oops: invalid opcode at ",
        ),
        ("hang", "heartbeat lost"),
    ] {
        let (run, _logs) = run_logged(
            "boot",
            &[
                "--config",
                plan.to_str().expect("UTF-8"),
                "--fault",
                &format!("1:{fault}"),
            ],
        );
        run.assert_exit(0);
        let report = run.report();
        assert_eq!(
            report["fault"]["contained"],
            true,
            "{fault}: {}",
            run.context()
        );
        let linux = &report["nodes"][1];
        assert_eq!(linux["state"], "crashed", "{fault}: {}", run.context());
        let why = linux["reason"].as_str().unwrap_or("");
        assert!(why.starts_with(reason), "{fault}: {why}");
        for id in [0, 2] {
            assert_eq!(
                report["nodes"][id]["state"],
                "running",
                "{fault}: {}",
                run.context()
            );
        }
    }
}

#[test]
fn a_missing_kernel_file_is_refused() {
    refused(
        "memory = \"256M\"\nos = \"linux\"\nkernel = \"/nonexistent/vmlinuz\"",
        &["node1", "/nonexistent/vmlinuz", "cannot read it"],
    );
}

#[test]
fn a_file_that_is_not_a_bzimage_is_refused() {
    let dir = TempDir::new().expect("temporary directory");
    let kernel = dir.path().join("vmlinuz");
    let mut bytes = b"#!/bin/sh\necho not a kernel\n".to_vec();
    bytes.resize(8192, b' ');
    std::fs::write(&kernel, bytes).expect("file written");
    refused(
        &format!(
            "memory = \"256M\"\nos = \"linux\"\nkernel = \"{}\"",
            kernel.display()
        ),
        &["node1", "not a bzImage"],
    );
}

#[test]
fn a_kernel_without_the_64_bit_entry_is_refused() {
    // A bzImage header (protocol 2.15, relocatable) whose xloadflags lack
    // bit 0, as a 32-bit-only kernel's do.
    let mut b = vec![0u8; 8192];
    b[0x1f1] = 4;
    b[0x1fe..0x200].copy_from_slice(&0xAA55u16.to_le_bytes());
    b[0x201] = 0x6a;
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    b[0x234] = 1;
    b[0x236..0x238].copy_from_slice(&0x7eu16.to_le_bytes());
    let dir = TempDir::new().expect("temporary directory");
    let kernel = dir.path().join("bzImage-32");
    std::fs::write(&kernel, b).expect("file written");
    refused(
        &format!(
            "memory = \"256M\"\nos = \"linux\"\nkernel = \"{}\"",
            kernel.display()
        ),
        &["node1", "no 64-bit entry", "xloadflags 0x7e"],
    );
}
