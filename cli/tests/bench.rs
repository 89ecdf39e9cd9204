//! `mint bench --native`: the result's schema and internal consistency
//! (every size present, p50 <= p99, floors > 0, results.json equal to the
//! `--json` output, a CSV row behind every sample and every run, delivered
//! plus drops equal to sent in every run, success rates within [0, 1] and no lower
//! at the longest interval than at the shortest), and bad requests refused
//! with a clear error.
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
        assert!(num(&t["floor_gbps"], &what) > 0.0);
        assert_eq!(t["floor_gbps"], t["floor"]["p50"]);
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

    // 18 throughput runs (two each), 3 handling runs, the cycles, latency.
    assert_eq!(run_rows, 2 * tput.len() + 3 + rows.len() + 1);
    assert!(r["not_measured"].is_array());
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
    assert!(!tmp.path().join("out/raw/spsc_1514.csv").exists());
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
fn full_system_mode_is_not_faked() {
    let (run, cwd) = in_fresh_dir(&["bench", "all", "--quick"]);
    run.assert_exit(2);
    assert!(
        run.stderr.contains("not built yet: use --native"),
        "{}",
        run.context()
    );
    assert!(run.stdout.is_empty(), "{}", run.context());
    assert!(!cwd.path().join("runs").exists(), "nothing is written");
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
