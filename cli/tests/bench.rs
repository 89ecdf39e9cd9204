//! `mint bench --native`: the result's schema and internal consistency
//! (every size present, p50 <= p99, floors > 0, results.json equal to the
//! `--json` output, a CSV row behind every sample and every run, delivered
//! plus drops equal to sent in every run, success rates within [0, 1] and no lower
//! at the longest interval than at the shortest), and bad requests refused
//! with a clear error.
//! Full-system mode (without `--native`): one `mint bench all --quick`
//! under software emulation, shared by the tests of its schema, its
//! internal consistency (fit present, rates within [0,1], the rate at the
//! longest interval at least that at the shortest, delivered + drops =
//! sent for every run) and its SVG plots; Ctrl-C in the middle of one
//! leaves no machine and no result.
//! Never absolute speeds: those live in the benchmark, not in tests.

mod common;

use std::path::Path;
use std::process::Command;

use common::{MINT, Run, mint, one_machine_at_a_time, uint};
use serde_json::Value;
use tempfile::TempDir;

const SIZES: [u64; 6] = [1024, 1514, 4096, 8192, 12288, 16384];

fn two_cpus() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// `mint bench ARGS --native --quick --json --out <tmp>/out`, one at a
/// time (two benches at once would share the CPUs).
fn bench(args: &[&str]) -> (Run, TempDir) {
    let tmp = TempDir::new().expect("temporary directory");
    let out = tmp.path().join("out");
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--native", "--quick", "--json", "--out"]);
    all.push(out.to_str().expect("UTF-8 temp path"));
    let _cpus = one_machine_at_a_time();
    (mint(&all), tmp)
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// Rows of a CSV file under the run's directory, header left out.
fn csv_rows(out: &Path, rel: &Value) -> usize {
    let rel = rel.as_str().expect("a csv path");
    let text = std::fs::read_to_string(out.join(rel))
        .unwrap_or_else(|e| panic!("{rel}: cannot read it: {e}"));
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.contains(','), "{rel}: no header ({header:?})");
    lines.filter(|l| !l.is_empty()).count()
}

/// A summary of raw samples: count rows behind it, ordered percentiles,
/// positive figures.
fn check_summary(s: &Value, out: &Path, what: &str) {
    let count = uint(&s["count"], what);
    assert!(count > 0, "{what}: no samples");
    assert_eq!(csv_rows(out, &s["csv"]) as u64, count, "{what}: CSV rows");
    let (min, p50, p99, max) = (
        num(&s["min"], what),
        num(&s["p50"], what),
        num(&s["p99"], what),
        num(&s["max"], what),
    );
    assert!(
        min >= 0.0 && p50 > 0.0 && min <= p50 && p50 <= p99 && p99 <= max,
        "{what}: {s}"
    );
    let mean = num(&s["mean"], what);
    assert!(min <= mean && mean <= max, "{what}: {s}");
}

#[test]
fn all_native_quick_is_consistent_and_leaves_nothing_invented() {
    if !two_cpus() {
        let (run, _tmp) = bench(&["all"]);
        run.assert_exit(2);
        assert!(run.stderr.contains("needs two CPUs"), "{}", run.context());
        return;
    }
    let (run, tmp) = bench(&["all"]);
    run.assert_exit(0);
    let out = tmp.path().join("out");
    let r = run.report();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    assert_eq!(r, file, "results.json differs from the --json output");
    assert!(
        run.elapsed.as_secs() < 60,
        "--quick took {:?} natively",
        run.elapsed
    );

    assert_eq!(r["mode"], "native");
    assert_eq!(r["accel"], "none");
    assert!(!r["cpu"].as_str().expect("cpu").is_empty());
    assert_eq!(r["experiment"], "all");
    assert!(num(&r["tsc"]["hz"], "tsc.hz") > 0.0);
    assert_eq!(
        Path::new(r["out_dir"].as_str().expect("out_dir")),
        std::path::absolute(&out).expect("absolute")
    );

    let p = &r["placement"];
    assert_ne!(p["support_cpu"], p["target_cpu"]);
    check_summary(&p["pingpong_rtt"], &out, "placement.pingpong_rtt");
    check_summary(
        &p["pingpong_rtt_after"],
        &out,
        "placement.pingpong_rtt_after",
    );
    assert_eq!(p["pingpong_rtt_ns"], p["pingpong_rtt"]["p50"]);
    check_summary(&r["timer_overhead_ns"], &out, "timer_overhead_ns");
    // How often each thread lost its CPU, per part of the run.
    for part in [
        "placement",
        "send",
        "copy_floors",
        "spsc_floor",
        "placement_after",
    ] {
        uint(&r["preempted"][part]["support"], part);
        uint(&r["preempted"][part]["target"], part);
    }
    assert!(r["steal_ms"].is_null() || r["steal_ms"]["support"].is_u64());

    let send = r["send_time"].as_array().expect("send_time");
    assert_eq!(
        send.iter()
            .map(|s| uint(&s["size"], "size"))
            .collect::<Vec<_>>(),
        SIZES
    );
    for s in send {
        let size = &s["size"];
        for key in ["copy", "xcore_copy"] {
            check_summary(&s[key], &out, &format!("send_time[{size}].{key}"));
            // The paper's protocol: 3000 sends, the mean of 1000-2000.
            assert_eq!(s[key]["count"], 3000);
            assert!(num(&s[format!("{key}_ns")], key) > 0.0);
            assert_eq!(s[format!("{key}_ns")], s[key]["mean_1000_2000"]);
        }
        // The send through the kernel's per-frame function.
        check_summary(&s["send"], &out, &format!("send_time[{size}].send"));
        check_summary(
            &s["send_signal"],
            &out,
            &format!("send_time[{size}].send_signal"),
        );
        assert_eq!(s["send"]["count"], 3000);
        // This size's own placement, taken beside its sends and floors.
        check_summary(
            &s["pingpong_rtt"],
            &out,
            &format!("send_time[{size}].pingpong_rtt"),
        );
        assert_eq!(s["pingpong_rtt_ns"], s["pingpong_rtt"]["p50"]);
        assert!(num(&s["mean_ns"], "mean_ns") > 0.0);
        assert_eq!(s["mean_ns"], s["send"]["mean_1000_2000"]);
        assert!(num(&s["p50_ns"], "p50_ns") <= num(&s["p99_ns"], "p99_ns"));
        // Every frame has a place: cleaned by the target, or no room.
        assert_eq!(
            uint(&s["cleaned"], "cleaned") + uint(&s["ring_full"], "ring_full"),
            3000,
            "send_time[{size}]: {s}"
        );
    }
    let fit = &r["send_time_fit"];
    assert!(
        (0.0..=1.0).contains(&num(&fit["r2"], "r2")),
        "send_time_fit: {fit}"
    );
    num(&fit["ns_per_kb"], "ns_per_kb");
    num(&fit["intercept_ns"], "intercept_ns");
    for key in ["copy", "xcore_copy"] {
        let fit = &r["floor_fit"][key];
        let r2 = num(&fit["r2"], "r2");
        assert!((0.0..=1.0).contains(&r2), "floor_fit.{key}: {fit}");
        num(&fit["ns_per_kb"], "ns_per_kb");
    }

    // Every whole run is a row of raw/runs.csv.
    let runs = std::fs::read_to_string(out.join("raw/runs.csv")).expect("raw/runs.csv");
    let run_rows = runs.lines().count() - 1;

    let tput = r["throughput"].as_array().expect("throughput");
    let mut shapes = Vec::new();
    for t in tput {
        let size = uint(&t["size"], "size");
        let path = t["path"].as_str().expect("path").to_string();
        let what = format!("throughput[{size} {path}]");
        shapes.push((size, path.clone()));
        check_summary(&t["floor"], &out, &format!("{what}.floor"));
        check_summary(&t["pingpong_rtt"], &out, &format!("{what}.pingpong_rtt"));
        assert!(num(&t["floor_gbps"], &what) > 0.0);
        assert_eq!(t["floor_gbps"], t["floor"]["p50"]);
        // Both buffer-reuse orders measured, each behind its own CSV; the
        // floor is the faster one's.
        let orders = t["floor_by_reuse"].as_object().expect("floor_by_reuse");
        assert_eq!(orders.len(), 2, "{what}: {orders:?}");
        for (name, s) in orders {
            check_summary(s, &out, &format!("{what}.floor_by_reuse.{name}"));
        }
        let chosen = t["floor_reuse"].as_str().expect("floor_reuse");
        assert_eq!(t["floor"], orders[chosen], "{what}");
        let best = orders
            .values()
            .map(|s| num(&s["p50"], &what))
            .fold(0.0, f64::max);
        assert_eq!(num(&t["floor_gbps"], &what), best, "{what}");
        assert!(num(&t["gbps"], &what) > 0.0, "{what}: {t}");
        assert_eq!(t["gbps"], t["lossless"]["gbps"]);
        // Lossless (NAPI, the sender waits for room): everything arrives.
        let l = &t["lossless"];
        assert_eq!(l["moderation"], "napi");
        assert_eq!(l["sent"], l["frames"], "{what}: {l}");
        assert_eq!(l["delivered"], l["sent"], "{what}: {l}");
        assert_eq!(l["unaccounted"], 0, "{what}: {l}");
        // Back to back: delivered + drops = sent, the drops by reason.
        let b = &t["back_to_back"];
        assert_eq!(b["unaccounted"], 0, "{what}: {b}");
        let dropped: u64 = b["drops"]
            .as_object()
            .expect("drops")
            .values()
            .map(|v| uint(v, "drop"))
            .sum();
        assert_eq!(dropped, uint(&b["dropped"], "dropped"));
        assert_eq!(
            uint(&b["delivered"], "delivered") + dropped,
            uint(&b["sent"], "sent")
        );
        let d = &t["drops"];
        assert_eq!(
            uint(&d["ring_full"], "ring_full")
                + uint(&d["socket_buffer_full"], "socket_buffer_full")
                + uint(&d["stack"], "stack")
                + uint(&d["other"], "other"),
            dropped,
            "{what}: {t}"
        );
    }
    let mut expected = Vec::new();
    for size in SIZES {
        for path in ["driver", "raw-checked", "udp-checked"] {
            expected.push((size, path.to_string()));
        }
    }
    assert_eq!(shapes, expected);

    let rows = r["success_rate"].as_array().expect("success_rate");
    let intervals: Vec<u64> = r["cycle_intervals_ns"]
        .as_array()
        .expect("cycle_intervals_ns")
        .iter()
        .map(|v| uint(v, "interval"))
        .collect();
    assert_eq!(rows.len(), 3 * 3 * intervals.len());
    for size in [1514u64, 8192, 16384] {
        for moderation in ["none", "itr:4096", "napi"] {
            let cycle: Vec<&Value> = rows
                .iter()
                .filter(|c| c["size"] == size && c["moderation"] == moderation)
                .collect();
            assert_eq!(cycle.len(), intervals.len(), "{size} {moderation}");
            let mut rates = Vec::new();
            for c in &cycle {
                let rate = num(&c["success_rate"], "success_rate");
                assert!((0.0..=1.0).contains(&rate), "{c}");
                assert_eq!(c["unaccounted"], 0, "{c}");
                assert_eq!(
                    uint(&c["delivered"], "delivered") + uint(&c["dropped"], "dropped"),
                    uint(&c["sent"], "sent"),
                    "{c}"
                );
                rates.push((uint(&c["interval_ns"], "interval"), rate));
            }
            rates.sort_by_key(|&(i, _)| i);
            let (first, last) = (rates[0], rates[rates.len() - 1]);
            assert!(
                last.1 >= first.1,
                "{size} {moderation}: {last:?} below {first:?}"
            );
        }
        let full = &r["min_full_interval_ns"][size.to_string()];
        assert!(
            full.is_null() || intervals.contains(&uint(full, "min_full")),
            "{full}"
        );
        assert!(num(&r["handling_ns"][size.to_string()], "handling_ns") > 0.0);
    }

    let lat = &r["latency"];
    check_summary(
        &lat["pingpong_oneway_ns"],
        &out,
        "latency.pingpong_oneway_ns",
    );
    // Half of the same round trips (computed separately from the same
    // samples: equal up to rounding in the last bit).
    let (oneway, rtt) = (
        num(&lat["pingpong_oneway_ns"]["p50"], "oneway"),
        num(&p["pingpong_rtt"]["p50"], "rtt"),
    );
    assert!(
        (oneway * 2.0 - rtt).abs() <= rtt.abs() * 1e-12,
        "one-way p50 {oneway} is not half the round trip's {rtt}"
    );
    for key in ["signal_to_handler_ns", "inject_to_app_ns"] {
        check_summary(&lat[key], &out, &format!("latency.{key}"));
        assert_eq!(lat[key]["cross_core"], true);
    }
    assert_eq!(lat["run"]["unaccounted"], 0);
    assert_eq!(
        uint(&lat["inject_to_app_ns"]["count"], "count"),
        uint(&lat["run"]["delivered"], "delivered")
    );

    // 18 throughput runs (two each), 3 handling runs, the cycles (and
    // those measured again), latency.
    let discarded = uint(&r["success_rate_discarded"], "success_rate_discarded") as usize;
    assert_eq!(run_rows, 2 * tput.len() + 3 + rows.len() + discarded + 1);
    for c in rows {
        let attempt = uint(&c["attempt"], "attempt");
        assert!((1..=3).contains(&attempt), "{c}");
    }
    assert!(r["not_measured"].is_array());

    // Issue 8's targets, each judged on this run's rows: a row's verdict
    // is its value held to its bound, the target's is all its rows'.
    let targets = r["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 7, "{targets:?}");
    for t in targets {
        let rows = t["rows"].as_array().expect("rows");
        assert!(!rows.is_empty(), "every experiment ran: {t}");
        for row in rows {
            let met = match (row["value"].as_f64(), row["bound"].as_f64()) {
                (Some(v), Some(b)) => match t["comparison"].as_str().expect("comparison") {
                    "<=" => v <= b,
                    "<" => v < b,
                    ">=" => v >= b,
                    ">" => v > b,
                    c => panic!("comparison {c}"),
                },
                _ => false,
            };
            assert_eq!(row["met"], met, "{t}");
        }
        assert_eq!(t["met"], rows.iter().all(|x| x["met"] == true), "{t}");
    }
    let by_id = |id: &str| targets.iter().find(|t| t["id"] == id).expect(id);
    assert_eq!(
        by_id("send_within_floor")["rows"].as_array().map(Vec::len),
        Some(6)
    );
    assert_eq!(
        by_id("full_interval_vs_handling")["rows"]
            .as_array()
            .map(Vec::len),
        Some(9)
    );
}

#[test]
fn one_experiment_runs_only_its_part() {
    if !two_cpus() {
        return;
    }
    let (run, tmp) = bench(&["send-time"]);
    run.assert_exit(0);
    let r = run.report();
    assert_eq!(r["experiment"], "send-time");
    assert_eq!(r["send_time"].as_array().map(Vec::len), Some(6));
    assert!(r["throughput"].is_null() && r["latency"].is_null(), "{r}");
    // The placement is part of every result.
    assert!(num(&r["placement"]["pingpong_rtt_ns"], "rtt") > 0.0);
    for order in ["last_released", "oldest_released"] {
        let csv = format!("out/raw/spsc_1514_{order}.csv");
        assert!(!tmp.path().join(csv).exists());
    }
    // Only send time's targets are judged; the others were not measured.
    for t in r["targets"].as_array().expect("targets") {
        let send = t["id"].as_str().is_some_and(|id| id.starts_with("send_"));
        assert_eq!(t["met"].is_boolean(), send, "{t}");
    }
    // The plots are written in either mode, from what was measured.
    for name in SVGS {
        check_svg(&tmp.path().join("out").join(name));
    }
}

/// `mint` with `args` in a fresh current directory (where a default
/// output directory would appear).
fn in_fresh_dir(args: &[&str]) -> (Run, TempDir) {
    let cwd = TempDir::new().expect("temporary directory");
    let start = std::time::Instant::now();
    let out = Command::new(MINT)
        .args(args)
        .current_dir(cwd.path())
        .output()
        .expect("run mint");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    };
    (run, cwd)
}

#[test]
fn success_rate_alone_runs_its_cycles_only() {
    if !two_cpus() {
        return;
    }
    let (run, _tmp) = bench(&["success-rate"]);
    run.assert_exit(0);
    let r = run.report();
    assert_eq!(r["experiment"], "success-rate");
    assert!(r["success_rate"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(r["send_time"].is_null() && r["throughput"].is_null(), "{r}");
}

#[test]
fn an_unknown_experiment_is_refused() {
    let (run, _cwd) = in_fresh_dir(&["bench", "send-times", "--native"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("invalid value 'send-times'") && run.stderr.contains("send-time"),
        "{}",
        run.context()
    );
}

/// Root may write anywhere: the output directory is made impossible by
/// putting it under a regular file.
#[test]
fn an_unwritable_out_is_refused_before_measuring() {
    let tmp = TempDir::new().expect("temporary directory");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").expect("a file");
    let out = file.join("out");
    let run = mint(&[
        "bench",
        "all",
        "--native",
        "--quick",
        "--out",
        out.to_str().expect("UTF-8 temp path"),
    ]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("mint: error: --out") && run.stderr.contains("cannot create it"),
        "{}",
        run.context()
    );
    assert!(
        !run.stderr.contains("about"),
        "refused before the estimate: {}",
        run.context()
    );
}

#[test]
fn bad_cpus_are_refused() {
    let run = mint(&["bench", "--native", "--cpus", "1,1"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("two different CPUs"),
        "{}",
        run.context()
    );
    let run = mint(&["bench", "--native", "--cpus", "0,100000"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("not one this process may run on"),
        "{}",
        run.context()
    );
}

const SVGS: [&str; 3] = ["send_time.svg", "throughput.svg", "success_rate.svg"];

/// An SVG file: there, an `<svg>` root, every tag closed in order.
fn check_svg(path: &Path) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: cannot read it: {e}", path.display()));
    let body = text
        .strip_prefix("<?xml")
        .and_then(|t| t.split_once("?>"))
        .map_or(text.as_str(), |(_, rest)| rest);
    assert!(
        body.trim_start().starts_with("<svg ") && body.trim_end().ends_with("</svg>"),
        "{}: not an <svg> document",
        path.display()
    );
    let mut open: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').expect("a tag without '>'") + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "{}: </{name}>", path.display());
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().expect("a tag name"));
        }
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "{}: an unquoted attribute in <{tag}>",
            path.display()
        );
    }
    assert!(open.is_empty(), "{}: unclosed {open:?}", path.display());
}

/// The one full-system run the system tests share: `mint bench all
/// --quick --accel tcg --json`, its output directory kept.
fn system_run() -> &'static (Run, TempDir) {
    static RUN: std::sync::OnceLock<(Run, TempDir)> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = TempDir::new().expect("temporary directory");
        let out = tmp.path().join("out");
        let _machine = one_machine_at_a_time();
        let run = mint(&[
            "bench",
            "all",
            "--quick",
            "--accel",
            "tcg",
            "--json",
            "--timeout",
            "600",
            "--out",
            out.to_str().expect("UTF-8 temp path"),
        ]);
        (run, tmp)
    })
}

/// The system run's result, checked to have finished.
fn system_result() -> (&'static Run, Value, std::path::PathBuf) {
    let (run, tmp) = system_run();
    run.assert_exit(0);
    (run, run.report(), tmp.path().join("out"))
}

/// Whether `not_measured` names `key` (a key left null must say why).
fn says_why(r: &Value, key: &str) -> bool {
    r["not_measured"]
        .as_array()
        .expect("not_measured")
        .iter()
        .any(|n| n.as_str().is_some_and(|n| n.contains(key)))
}

#[test]
fn system_quick_has_the_schema_and_says_why_for_every_null() {
    let (_run, r, out) = system_result();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    assert_eq!(r, file, "results.json differs from the --json output");
    assert_eq!(r["mode"], "system");
    assert_eq!(r["accel"], "tcg");
    assert!(!r["cpu"].as_str().expect("cpu").is_empty());
    assert_eq!(r["experiment"], "all");
    assert_eq!(r["quick"], true);
    assert!(num(&r["tsc"]["hz"], "tsc.hz") > 0.0);
    for key in [
        "placement",
        "send_time",
        "send_time_fit",
        "throughput",
        "success_rate",
        "min_full_interval_ns",
        "handling_ns",
        "latency",
        "not_measured",
        "paper",
        "runs",
    ] {
        assert!(!r[key].is_null(), "{key} missing: {r}");
    }
    // The polled mailbox ping-pong in the guest, and the IPI ping.
    let p = &r["placement"];
    check_summary(&p["pingpong_rtt"], &out, "placement.pingpong_rtt");
    assert_eq!(p["pingpong_rtt_ns"], p["pingpong_rtt"]["p50"]);
    let oneway = &r["latency"]["pingpong_oneway_ns"];
    check_summary(oneway, &out, "latency.pingpong_oneway_ns");
    let (half, rtt) = (
        num(&oneway["p50"], "oneway"),
        num(&p["pingpong_rtt"]["p50"], "rtt"),
    );
    assert!(
        (half * 2.0 - rtt).abs() <= rtt.abs() * 1e-12,
        "{half} vs {rtt}"
    );
    check_summary(&p["ipi_rtt"], &out, "placement.ipi_rtt");
    for key in ["signal_to_handler_ns", "inject_to_app_ns"] {
        let l = &r["latency"][key];
        check_summary(&l["summary"], &out, key);
        assert!(num(&l["p50"], key) <= num(&l["p99"], key), "{key}: {l}");
    }

    let send = r["send_time"].as_array().expect("send_time");
    assert_eq!(
        send.iter()
            .map(|s| uint(&s["size"], "size"))
            .collect::<Vec<_>>(),
        SIZES
    );
    for s in send {
        let what = format!("send_time[{}]", s["size"]);
        check_summary(&s["send"], &out, &what);
        // The paper's protocol: 3000 sends, the mean of 1000-2000.
        assert_eq!(s["send"]["count"], 3000, "{what}");
        assert_eq!(s["mean_ns"], s["send"]["mean_1000_2000"], "{what}");
        assert!(num(&s["mean_ns"], &what) > 0.0);
        assert!(num(&s["p50_ns"], &what) <= num(&s["p99_ns"], &what));
        for key in ["copy_ns", "xcore_copy_ns"] {
            assert!(s[key].is_null(), "{what}.{key}: a native figure");
        }
        // Each send minus its IPI request: never more than the send.
        check_summary(&s["send_excl_signal"], &out, &what);
        assert!(num(&s["send_excl_signal_ns"], &what) <= num(&s["mean_ns"], &what));
    }
    assert!(says_why(&r, "copy_ns") && says_why(&r, "xcore_copy_ns"));

    let tput = r["throughput"].as_array().expect("throughput");
    for path in ["raw-checked", "udp-checked", "driver"] {
        let sizes: Vec<u64> = tput
            .iter()
            .filter(|t| t["path"] == path)
            .map(|t| uint(&t["size"], "size"))
            .collect();
        assert_eq!(sizes, SIZES, "throughput path {path}");
    }
    for t in tput {
        let what = format!("throughput[{} {}]", t["size"], t["path"]);
        for key in ["ring_full", "socket_buffer_full", "other"] {
            uint(&t["drops"][key], &format!("{what}.drops.{key}"));
        }
        assert!(t["floor_gbps"].is_null(), "{what}: a native figure");
    }
    // The real e1000 row is there, or says why not.
    assert!(tput.iter().any(|t| t["path"] == "e1000") || says_why(&r, "e1000"));

    for size in ["1514", "8192", "16384"] {
        let full = &r["min_full_interval_ns"][size];
        assert!(
            full.is_u64()
                || (full.is_null() && says_why(&r, &format!("min_full_interval_ns.{size}"))),
            "min_full_interval_ns.{size}: {full}"
        );
        let h = &r["handling_ns"][size];
        assert!(
            h.as_f64().is_some_and(|h| h > 0.0)
                || (h.is_null() && says_why(&r, &format!("handling_ns.{size}"))),
            "handling_ns.{size}: {h}"
        );
    }
}

#[test]
fn system_quick_is_internally_consistent() {
    let (_run, r, out) = system_result();
    let fit = &r["send_time_fit"];
    assert!(
        (0.0..=1.0).contains(&num(&fit["r2"], "r2")),
        "send_time_fit: {fit}"
    );
    num(&fit["ns_per_kb"], "ns_per_kb");
    num(&fit["intercept_ns"], "intercept_ns");

    // Every frame of every run delivered or dropped with a counted reason.
    let runs = r["runs"].as_array().expect("runs");
    assert!(!runs.is_empty());
    for run in runs {
        let what = format!(
            "run {} ({} {} B every {} ns)",
            run["run"], run["purpose"], run["size"], run["interval_ns"]
        );
        let dropped: u64 = run["dropped"]
            .as_object()
            .expect("dropped")
            .values()
            .map(|n| uint(n, &what))
            .sum();
        assert_eq!(
            uint(&run["delivered"], &what) + dropped,
            uint(&run["sent"], &what),
            "{what}: {run}"
        );
        assert_eq!(run["sent"], run["count"], "{what}");
        assert_eq!(run["accounted"], true, "{what}: {run}");
        for csv in run["samples"].as_object().expect("samples").values() {
            csv_rows(&out, csv);
        }
    }
    for t in r["throughput"].as_array().expect("throughput") {
        let d = &t["drops"];
        let what = format!("throughput[{} {}]", t["size"], t["path"]);
        assert_eq!(
            uint(&t["delivered"], &what)
                + uint(&d["ring_full"], &what)
                + uint(&d["socket_buffer_full"], &what)
                + uint(&d["other"], &what),
            uint(&t["sent"], &what),
            "{what}: {t}"
        );
        if uint(&t["delivered"], &what) > 0 {
            assert!(num(&t["gbps"], &what) > 0.0, "{what}: {t}");
        }
    }

    let rates = r["success_rate"].as_array().expect("success_rate");
    for size in [1514, 8192, 16384] {
        let cycles: Vec<&Value> = rates.iter().filter(|x| x["size"] == size).collect();
        assert!(cycles.len() >= 2, "success rate of {size} B: {cycles:?}");
        for c in &cycles {
            let rate = num(&c["success_rate"], "success_rate");
            assert!((0.0..=1.0).contains(&rate), "{c}");
            assert_eq!(
                rate,
                uint(&c["delivered"], "delivered") as f64 / uint(&c["sent"], "sent") as f64
            );
        }
        let intervals: Vec<u64> = cycles
            .iter()
            .map(|c| uint(&c["interval_ns"], "interval"))
            .collect();
        assert!(intervals.windows(2).all(|w| w[0] < w[1]), "{intervals:?}");
        let (first, last) = (cycles[0], cycles[cycles.len() - 1]);
        assert!(
            num(&last["success_rate"], "last") >= num(&first["success_rate"], "first"),
            "{size} B: the longest interval's rate below the shortest's: {first} {last}"
        );
        // The smallest 100 % interval is one of the cycles at 100 %.
        if let Some(full) = r["min_full_interval_ns"][size.to_string()].as_u64() {
            assert!(
                cycles
                    .iter()
                    .any(|c| c["interval_ns"] == full && c["success_rate"] == 1.0),
                "{size} B: min_full_interval_ns {full}"
            );
            assert!(
                cycles
                    .iter()
                    .filter(|c| uint(&c["interval_ns"], "interval") < full)
                    .all(|c| num(&c["success_rate"], "rate") < 1.0)
            );
        }
    }
}

#[test]
fn system_quick_writes_its_plots_and_raw_samples() {
    let (_run, _r, out) = system_result();
    for name in SVGS {
        check_svg(&out.join(name));
    }
    let runs = std::fs::read_to_string(out.join("raw/runs.csv")).expect("raw/runs.csv");
    assert!(runs.lines().count() > 1, "raw/runs.csv has no rows");
    // The plots again from the result alone, elsewhere.
    let again = TempDir::new().expect("temporary directory");
    let copy = again.path().join("results.json");
    std::fs::copy(out.join("results.json"), &copy).expect("copy results.json");
    let run = mint(&["bench", "--replot", copy.to_str().expect("UTF-8 temp path")]);
    run.assert_exit(0);
    for name in SVGS {
        check_svg(&again.path().join(name));
    }
    let run = mint(&[
        "bench",
        "--replot",
        out.join("raw/runs.csv").to_str().expect("UTF-8"),
    ]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("not a JSON result object"),
        "{}",
        run.context()
    );
}

#[test]
fn host_cpus_are_refused_in_full_system_mode() {
    let (run, cwd) = in_fresh_dir(&["bench", "all", "--cpus", "0,1"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("--cpus 0,1") && run.stderr.contains("--native"),
        "{}",
        run.context()
    );
    assert!(!cwd.path().join("runs").exists(), "nothing is written");
}

#[test]
fn a_plan_without_a_target_is_refused_before_anything_is_written() {
    let (run, cwd) = in_fresh_dir(&["bench", "all", "--quick", "--nodes", "1"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("needs at least 2 nodes"),
        "{}",
        run.context()
    );
    assert!(!run.console_seen(), "no machine booted: {}", run.context());
    assert!(!cwd.path().join("runs").exists(), "nothing is written");
}

#[test]
fn machine_flags_are_refused_natively() {
    let (run, cwd) = in_fresh_dir(&["bench", "--native", "--accel", "tcg"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("--accel is for full-system runs"),
        "{}",
        run.context()
    );
    assert!(!cwd.path().join("runs").exists(), "nothing is written");
}

#[test]
fn a_bad_moderation_is_refused_before_anything_boots() {
    let (run, cwd) = in_fresh_dir(&["bench", "success-rate", "--moderation", "itr:100"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("'itr:100'") && run.stderr.contains("multiple of 256"),
        "{}",
        run.context()
    );
    assert!(!run.console_seen(), "no machine booted: {}", run.context());
    assert!(!cwd.path().join("runs").exists(), "nothing is written");
}

/// Ctrl-C in the middle of a full-system bench: mint ends by SIGINT, no
/// QEMU and no result are left.
#[test]
fn sigint_stops_a_system_bench_and_leaves_no_machine() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};
    let run = common::Isolated::new();
    let out = TempDir::new().expect("temporary directory");
    let out = out.path().join("out");
    let _machine = one_machine_at_a_time();
    let mut child = run
        .logged(&[
            "bench",
            "all",
            "--quick",
            "--accel",
            "tcg",
            "--out",
            out.to_str().expect("UTF-8 temp path"),
        ])
        .spawn()
        .expect("mint starts");
    let stderr = common::collect_stderr(&mut child);
    let _stdout = child.stdout.take();
    // A loaded host, a kernel build on the first run: generous.
    let deadline = Instant::now() + Duration::from_secs(240);
    // A failure names what mint printed (it is ended first, so its stderr
    // is complete).
    fn fail(
        child: &mut std::process::Child,
        stderr: std::thread::JoinHandle<String>,
        what: &str,
    ) -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}\n{}", stderr.join().unwrap_or_default());
    }
    while run.qemus().is_empty() {
        if Instant::now() >= deadline {
            fail(&mut child, stderr, "QEMU never started");
        }
        if child.try_wait().expect("wait").is_some() {
            fail(&mut child, stderr, "mint ended early");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Into the boot or the first run.
    std::thread::sleep(Duration::from_secs(2));
    common::send_signal(child.id(), "INT");
    let Some((status, _)) = common::ended_within(&mut child, Duration::from_secs(30)) else {
        fail(&mut child, stderr, "mint did not end within 30 s of SIGINT");
    };
    run.assert_no_qemu_within(Duration::from_secs(5));
    let stderr = stderr.join().unwrap_or_default();
    assert_eq!(status.signal(), Some(2), "{status:?}\n{stderr}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !out.join("results.json").exists(),
        "no result from a stopped run"
    );
}
