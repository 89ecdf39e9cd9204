//! Live hand-over of the real e1000 between nodes through the interrupt
//! layer, under software emulation: host frames stream in while node 0
//! hands the NIC back and forth, and every frame and interrupt is
//! accounted for across both owners; refused hand-overs change nothing;
//! a hand-over with the line asserted delivers exactly once, to the new
//! owner; node 0's shell shows and moves devices.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{MINT, one_machine_at_a_time, uint};
use serde_json::Value;
use tempfile::TempDir;

/// Checks a `mint handover --json` report: every round done, its trace in
/// state-machine order, every frame accounted for, none twice, no
/// interrupt misrouted.
fn check_report(r: &Value, rounds: u64, from: u64, to: u64) {
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["rounds"], rounds, "{r:#}");
    assert_eq!(r["unaccounted"], 0, "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    assert_eq!(r["misrouted_interrupts"], 0, "{r:#}");
    assert_eq!(r["bad_notices"], 0, "{r:#}");
    assert_eq!(r["seen_maps"]["agree_with_counts"], true, "{r:#}");
    assert_eq!(r["seen_maps"]["by_both"], 0, "{r:#}");
    let sent = uint(&r["frames_sent"], "frames_sent");
    let unique = uint(&r["delivered_unique"], "delivered_unique");
    let lost = uint(&r["lost_before_nic"], "lost_before_nic");
    let dropped: u64 = r["dropped"]
        .as_object()
        .expect("drops by reason")
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "duplicate" | "stale_run"))
        .map(|(_, v)| uint(v, "a drop count"))
        .sum();
    assert_eq!(unique + dropped + lost, sent, "{r:#}");
    let per_node: Vec<u64> = r["delivered"]
        .as_object()
        .expect("delivered per node")
        .values()
        .map(|v| uint(v, "delivered"))
        .collect();
    assert_eq!(per_node.iter().sum::<u64>(), unique, "{r:#}");
    assert!(
        per_node.iter().all(|&n| n > 0),
        "both owners must receive: {r:#}"
    );
    let trace = r["trace"].as_array().expect("trace");
    assert_eq!(trace.len() as u64, rounds, "{r:#}");
    let order = [
        "requested",
        "old-owner-quiesced",
        "new-owner-prepared",
        "quiesced",
        "remote-irr-clear",
        "switched",
        "detached-notified",
        "attached-notified",
        "done",
        "notices-acknowledged",
    ];
    for (i, round) in trace.iter().enumerate() {
        // Alternating directions, starting from --from.
        let (a, b) = if i % 2 == 0 { (from, to) } else { (to, from) };
        assert_eq!(
            (round["from"].as_u64(), round["to"].as_u64()),
            (Some(a), Some(b)),
            "{round:#}"
        );
        let steps: Vec<&str> = round["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| s["step"].as_str().expect("step name"))
            .collect();
        assert_eq!(steps, order, "{round:#}");
        let stamps: Vec<u64> = round["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| uint(&s["tsc"], "tsc"))
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{round:#}");
        assert!(
            round["handover_us"].as_f64().is_some_and(|t| t > 0.0),
            "{round:#}"
        );
    }
    let h = &r["handover_us"];
    let (p50, p99, max) = (
        h["p50"].as_f64().expect("p50"),
        h["p99"].as_f64().expect("p99"),
        h["max"].as_f64().expect("max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{h:#}");
    // Each node was attached and detached as often as the rounds say.
    let ints = &r["interrupts"];
    let sum = |what: &str| -> u64 {
        ints.as_object()
            .expect("interrupts per node")
            .values()
            .map(|n| uint(&n[what], what))
            .sum()
    };
    assert_eq!(sum("attached"), rounds, "{ints:#}");
    assert_eq!(sum("detached"), rounds, "{ints:#}");
    assert_eq!(sum("stray"), 0, "{ints:#}");
}

#[test]
fn twenty_handovers_under_traffic_account_for_every_frame() {
    let (run, _logs) = common::run_logged(
        "handover",
        &[
            "--device",
            "nic0",
            "--from",
            "0",
            "--to",
            "1",
            "--rounds",
            "20",
            "--rate",
            "1000",
            "--spacing-ms",
            "50",
        ],
    );
    run.assert_exit(0);
    check_report(&run.report(), 20, 0, 1);
}

/// Node 0 only runs the layer: the NIC moves between two other nodes.
#[test]
fn handovers_between_two_other_nodes() {
    let (run, _logs) = common::run_logged(
        "handover",
        &[
            "--from", "2", "--to", "1", "--rounds", "4", "--rate", "500", "--size", "600",
        ],
    );
    run.assert_exit(0);
    let r = run.report();
    check_report(&r, 4, 2, 1);
    assert_eq!(r["irq"]["devices"][0]["owner"], 2, "{r:#}");
}

#[test]
fn bad_handover_requests_are_refused_before_boot() {
    for (args, want) in [
        (&["--device", "nic7"][..], "--device nic7: unknown device"),
        (&["--from", "1", "--to", "1"][..], "both node 1"),
        (&["--to", "3", "--nodes", "2"][..], "the plan has 2 nodes"),
        (&["--rounds", "0"][..], "--rounds 0"),
    ] {
        let mut all = vec!["handover"];
        all.extend_from_slice(args);
        let run = common::mint(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.context());
        assert!(run.stderr.contains(want), "{args:?}: {}", run.context());
        assert!(!run.console_seen(), "{args:?} booted: {}", run.context());
    }
}

/// Node 0 owns the e1000, node 1 stands by, node 2 does not; with
/// `standby3`, a fourth node that stands by too.
fn plan_file(dir: &TempDir, standby3: bool) -> String {
    let node = |id: u8, extra: &str| {
        format!(
            "[[node]]\nid = {id}\ncores = [{id}]\nmemory = \"64M\"\ndevices = [\"com{}\"{extra}]\n",
            id + 1
        )
    };
    let mut text = node(0, ", \"e1000\"") + &node(1, ", \"e1000-standby\"") + &node(2, "");
    if standby3 {
        text += &node(3, ", \"e1000-standby\"");
    }
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, text).expect("plan written");
    path.to_str().expect("UTF-8").to_string()
}

/// Refused hand-overs change nothing and are counted; with the line
/// asserted (ICR unread) while the pin is masked, the switch delivers the
/// interrupt exactly once, to the new owner.
#[test]
fn refusals_change_nothing_and_an_asserted_line_is_delivered_once_to_the_new_owner() {
    let dir = TempDir::new().expect("temp dir");
    let plan = plan_file(&dir, true);
    let (run, _logs) = common::run_logged(
        "boot",
        &[
            "--config",
            &plan,
            "--selftest",
            "handover",
            "--fault",
            "3:panic",
        ],
    );
    run.assert_exit(0);
    let r = run.report();
    let t = r["selftests"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["test"] == "handover"))
        .unwrap_or_else(|| panic!("no handover self-test: {}", run.context()));
    let refusals = t["refusals"].as_array().expect("refusals");
    let cases: Vec<&str> = refusals
        .iter()
        .map(|c| c["case"].as_str().unwrap())
        .collect();
    assert_eq!(
        cases,
        [
            "to-current-owner",
            "to-a-crashed-node",
            "by-non-owner",
            "to-unknown-node",
            "while-one-is-in-progress",
            "to-a-node-not-standing-by",
            "new-owner-refuses-prepare"
        ],
        "{t:#}"
    );
    for c in refusals {
        assert_eq!(c["refused"], true, "{c:#}");
        assert_eq!(c["owner_unchanged"], true, "{c:#}");
        assert_eq!(c["entry_unchanged"], true, "{c:#}");
        assert!(!c["error"].as_str().unwrap_or("").is_empty(), "{c:#}");
        if c["case"] == "new-owner-refuses-prepare" {
            // Refused by the node, not the layer: undone, not counted.
            assert_eq!(c["refusals_counted"], 0, "{c:#}");
            let e = c["error"].as_str().unwrap_or("");
            assert!(
                e.contains("refused Prepare") && e.contains("cancelled, nic0 stays with node0"),
                "{c:#}"
            );
            assert!(
                !e.contains("abandoning") && !e.contains("resuming"),
                "{c:#}"
            );
        } else {
            assert_eq!(c["refusals_counted"], 1, "{c:#}");
        }
    }
    let a = &t["asserted"];
    assert_eq!(a["unmasked_first"], true, "{a:#}");
    assert_eq!(a["ok"], true, "{a:#}");
    assert_eq!(a["owner_after"], 1, "{a:#}");
    assert_eq!(a["new_owner_serviced"], 1, "exactly once: {a:#}");
    assert_eq!(a["new_owner_deferred"], 0, "{a:#}");
    assert_eq!(a["old_owner_serviced"], 0, "{a:#}");
    assert_eq!(a["old_owner_deferred"], 0, "{a:#}");
    assert_eq!(a["stray"], 0, "{a:#}");
    assert_eq!(a["remote_irr_after"], false, "{a:#}");
    assert_eq!(t["back"]["ok"], true, "{t:#}");
    assert_eq!(t["back"]["owner_after"], 0, "{t:#}");
}

/// Node 0's shell: `devices`, `route`, `handover` and their bad input.
#[test]
fn the_shell_shows_devices_and_routes_and_hands_over() {
    let dir = TempDir::new().expect("temp dir");
    let plan = plan_file(&dir, false);
    let logs = TempDir::new().expect("log dir");
    let input = "devices\nroute\nhandover nic1 1\nhandover nic0 9\nhandover nic0 0\nhandover nic0 2\nhandover\nhandover nic0 1\ndevices\nroute\nexit\n";
    let _machine = one_machine_at_a_time();
    let mut child = Command::new(MINT)
        .args(["run", "--timeout", "120", "--config", &plan, "--log-dir"])
        .arg(logs.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mint runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("typing");
    let out = child.wait_with_output().expect("mint ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("[node0] nic0 "))
        .collect();
    assert_eq!(rows.len(), 2, "two device tables:\n{text}");
    let field = |row: &str, i: usize| row.split_whitespace().nth(i).map(str::to_string);
    assert_eq!(field(rows[0], 0).as_deref(), Some("0"), "{text}");
    assert_eq!(field(rows[1], 0).as_deref(), Some("1"), "{text}");
    // Node 0 keeps a NIC it does not receive on masked; node 1 receives,
    // so the hand-over leaves the pin unmasked for it.
    assert_eq!(field(rows[0], 5).as_deref(), Some("masked"), "{text}");
    assert_eq!(field(rows[1], 5).as_deref(), Some("unmasked"), "{text}");
    for answer in [
        "handover: unknown device 'nic1' (devices: nic0)",
        "handover: no node '9'",
        "node0 already owns",
        "the plan does not let node2 own",
        "usage: handover <device> <node>",
        "handover: nic0 from node0 to node1 done in",
    ] {
        assert!(text.contains(answer), "no '{answer}':\n{text}");
    }
    // The routing table after the hand-over sends GSI 10 to node 1's APIC.
    let routes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("[node0] 10 "))
        .collect();
    assert_eq!(routes.len(), 2, "{text}");
    assert!(
        routes[1].contains(" nic0 ") && routes[1].split_whitespace().nth(3) == Some("1"),
        "{text}"
    );
}
