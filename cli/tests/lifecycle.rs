//! mint never leaves a machine behind, and refuses what it cannot finish
//! before it boots anything.
//!
//! - SIGTERM, SIGINT and SIGHUP stop `mint gen`, `mint boot` and `mint run`:
//!   no QEMU is left (found by this test's own TMPDIR in its command line)
//!   and no socket directory; mint then ends by that signal;
//! - SIGKILL of mint takes QEMU with it (its parent-death signal);
//! - a closed stdout (`mint boot | head -1`) ends mint quietly and soon, by
//!   SIGPIPE, not after the machine's timeout;
//! - a pcap file, log directory, kernel image or gdb port that cannot be
//!   used is refused before boot, and so is a log directory in use;
//! - `mint plan` takes only the flags that describe a plan;
//! - every numeric flag says the same of a negative number;
//! - a plan file is capped in size (`/dev/zero`);
//! - `mint run` says at once that it boots; logs go to the current
//!   directory's `runs/` or under `$XDG_STATE_HOME`; `mint gen` states its
//!   estimate, node 0 reports its progress, and a terminal shows it as bars.
//!
//! No test asserts a rate or a schedule: wall-time bounds are loose (the
//! host is shared and QEMU emulates in software).

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::Duration;

use common::{Isolated, one_machine_at_a_time};
use tempfile::TempDir;

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGPIPE: i32 = 13;
const SIGTERM: i32 = 15;

/// Generous: a loaded host, a kernel build on the first run.
const BOOT_WITHIN: Duration = Duration::from_secs(240);
/// How long mint may take to stop a machine; it checks every 50 ms.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// Starts `args` (logged, TMPDIR isolated), waits for a stdout line with
/// `ready`, sends `signal`, and checks that mint ends by that signal with
/// no QEMU and no socket directory left.
fn signal_stops(args: &[&str], ready: &str, signal: (&str, i32)) {
    let run = Isolated::new();
    let _machine = one_machine_at_a_time();
    let mut child = run.logged(args).spawn().expect("mint starts");
    let stderr = common::collect_stderr(&mut child);
    let (_seen, _rest) = common::wait_for_line(&mut child, ready, BOOT_WITHIN);
    assert!(!run.qemus().is_empty(), "the machine should be running");
    stopped_by(&run, &mut child, signal, stderr);
}

/// Sends `signal` to `child` and checks the clean end.
fn stopped_by(
    run: &Isolated,
    child: &mut Child,
    (name, number): (&str, i32),
    stderr: std::thread::JoinHandle<String>,
) {
    common::send_signal(child.id(), name);
    let (status, _) = common::wait_at_most(child, STOP_WITHIN);
    run.assert_no_qemu_within(Duration::from_secs(5));
    let stderr = stderr.join().unwrap_or_default();
    assert_eq!(
        status.signal(),
        Some(number),
        "mint should end by SIG{name} ({status:?})\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("stopped by SIG{name}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        run.socket_dirs(),
        Vec::<String>::new(),
        "socket directory left"
    );
}

#[test]
fn sigterm_stops_gen_and_leaves_no_machine() {
    signal_stops(
        &["gen", "--count", "200000", "--interval-ns", "100000"],
        "e1000 driver attached",
        ("TERM", SIGTERM),
    );
}

/// `--gdb-wait` holds the machine until gdb continues: it is still
/// running, whatever the host's pace, when the signal comes.
#[test]
fn sigint_stops_boot_and_leaves_no_machine() {
    let run = Isolated::new();
    let port = common::free_port();
    let _machine = one_machine_at_a_time();
    let mut child = run
        .logged(&["boot", "--gdb", &port.to_string(), "--gdb-wait"])
        .spawn()
        .expect("mint starts");
    let stderr = common::collect_stderr(&mut child);
    let _stdout = child.stdout.take();
    let deadline = std::time::Instant::now() + BOOT_WITHIN;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "QEMU never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!run.qemus().is_empty(), "the machine should be running");
    stopped_by(&run, &mut child, ("INT", SIGINT), stderr);
}

#[test]
fn sighup_stops_run_and_leaves_no_machine() {
    signal_stops(&["run"], "mint shell on node0", ("HUP", SIGHUP));
}

#[test]
fn sigint_stops_run_and_leaves_no_machine() {
    signal_stops(&["run"], "mint shell on node0", ("INT", SIGINT));
}

/// SIGKILL cannot be handled: QEMU's parent-death signal ends it.
#[test]
fn sigkill_of_mint_takes_qemu_with_it() {
    let run = Isolated::new();
    let _machine = one_machine_at_a_time();
    let mut child = run
        .logged(&["gen", "--count", "200000", "--interval-ns", "100000"])
        .spawn()
        .expect("mint starts");
    let _stderr = common::collect_stderr(&mut child);
    let (_seen, _rest) = common::wait_for_line(&mut child, "e1000 driver attached", BOOT_WITHIN);
    assert!(!run.qemus().is_empty(), "the machine should be running");
    common::send_signal(child.id(), "KILL");
    let _ = child.wait();
    run.assert_no_qemu_within(Duration::from_secs(10));
}

/// `mint boot | head -1`: once the reader has gone, mint stops the machine
/// and ends by SIGPIPE, without a panic and long before any timeout.
#[test]
fn closed_stdout_ends_boot_quietly() {
    use std::io::BufRead;
    let run = Isolated::new();
    let _machine = one_machine_at_a_time();
    let mut child = run
        .logged(&["boot", "--nodes", "2", "--timeout", "120"])
        .spawn()
        .expect("mint starts");
    let stderr = common::collect_stderr(&mut child);
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut first).expect("a first line");
    assert!(first.starts_with("[node0]"), "{first}");
    drop(stdout);
    let (status, took) = common::wait_at_most(&mut child, Duration::from_secs(150));
    let stderr = stderr.join().unwrap_or_default();
    // The bound: mint notices the closed pipe within its poll
    // interval (tens of ms) and kills QEMU; 5 s is for a loaded host.
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} after stdout closed\n{stderr}"
    );
    assert!(!stderr.contains("timed out"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("error"), "quietly:\n{stderr}");
    assert_eq!(status.signal(), Some(SIGPIPE), "{status:?}\n{stderr}");
    run.assert_no_qemu_within(Duration::from_secs(5));
    assert_eq!(run.socket_dirs(), Vec::<String>::new());
}

// ---- refused before boot ----

/// `mint` with `args` (TMPDIR isolated; `--log-dir` only if `args` has
/// one) is refused: exit 2, mint's message naming every fragment, no
/// console, no QEMU, and soon.
fn refused(run: &Isolated, args: &[&str], fragments: &[&str]) -> String {
    // Held in case a regression boots after all.
    let _machine = one_machine_at_a_time();
    refused_now(run, args, fragments)
}

/// [`refused`], for a caller that holds the machine lock already.
fn refused_now(run: &Isolated, args: &[&str], fragments: &[&str]) -> String {
    let start = std::time::Instant::now();
    let out = run
        .command(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("mint runs");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let what = format!(
        "mint {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        args.join(" ")
    );
    assert_eq!(out.status.code(), Some(2), "{what}");
    for fragment in fragments {
        assert!(
            stderr.contains(fragment),
            "should mention {fragment:?}: {what}"
        );
    }
    assert!(
        !stdout.contains("[node") && !stderr.contains("[node"),
        "QEMU started: {what}"
    );
    assert!(run.qemus().is_empty(), "QEMU started: {what}");
    assert!(took < Duration::from_secs(30), "took {took:?}: {what}");
    stderr
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[test]
fn refuses_a_pcap_in_a_missing_directory() {
    let run = Isolated::new();
    let pcap = run.tmp.path().join("no/such/dir/run.pcap");
    let logs = run.logs.path().join("logs");
    refused(
        &run,
        &[
            "gen",
            "--count",
            "10",
            "--pcap",
            path(&pcap),
            "--log-dir",
            path(&logs),
        ],
        &["mint: error: --pcap", "cannot create the file"],
    );
    assert!(!logs.exists(), "refused before the log directory was made");
}

/// Root may write anywhere: the log directory is made impossible by
/// putting it under a regular file.
#[test]
fn refuses_an_unwritable_log_dir() {
    let run = Isolated::new();
    let file = run.logs.path().join("a-file");
    std::fs::write(&file, "").expect("a file");
    let logs = file.join("logs");
    refused(
        &run,
        &["boot", "--log-dir", path(&logs)],
        &["mint: error: --log-dir", "cannot create it"],
    );
}

#[test]
fn refuses_a_missing_or_non_elf_kernel() {
    let run = Isolated::new();
    let logs = run.logs.path().join("logs");
    refused(
        &run,
        &[
            "boot",
            "--kernel",
            "/nonexistent/mint-node",
            "--log-dir",
            path(&logs),
        ],
        &[
            "mint: error: --kernel /nonexistent/mint-node",
            "no such file",
        ],
    );
    let text = run.tmp.path().join("not-a-kernel");
    std::fs::write(&text, "#!/bin/sh\necho hello\n").expect("a text file");
    refused(
        &run,
        &["boot", "--kernel", path(&text), "--log-dir", path(&logs)],
        &["not an ELF image"],
    );
    assert!(!logs.exists(), "refused before the log directory was made");
}

/// A run holds its log directory; a second run there is refused at once.
#[test]
fn refuses_a_log_dir_in_use() {
    let run = Isolated::new();
    let _machine = one_machine_at_a_time();
    let mut first = run
        .logged(&["run", "--timeout", "200"])
        .spawn()
        .expect("mint starts");
    let _stderr = common::collect_stderr(&mut first);
    let (_seen, _rest) = common::wait_for_line(&mut first, "mint shell on node0", BOOT_WITHIN);
    let second = Isolated::new();
    refused_now(
        &second,
        &["boot", "--log-dir", path(run.logs.path())],
        &["mint: error: --log-dir", "in use by another mint run"],
    );
    // The first run goes on and ends normally.
    let mut stdin = first.stdin.take().expect("stdin");
    stdin.write_all(b"exit\n").expect("typing exit");
    drop(stdin);
    let (status, _) = common::wait_at_most(&mut first, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{status:?}");
    run.assert_no_qemu_within(Duration::from_secs(5));
}

#[test]
fn refuses_gdb_port_zero_and_a_busy_port() {
    let run = Isolated::new();
    let stderr = refused(
        &run,
        &["boot", "--gdb", "0"],
        &["'--gdb <PORT>'", "1..=65535"],
    );
    assert!(stderr.starts_with("error: invalid value '0'"), "{stderr}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port of ours");
    let port = busy.local_addr().expect("its address").port().to_string();
    let logs = run.logs.path().join("logs");
    refused(
        &run,
        &["boot", "--gdb", &port, "--log-dir", path(&logs)],
        &[&format!(
            "mint: error: --gdb {port}: cannot open the gdb stub on 127.0.0.1:{port}"
        )],
    );
    assert!(!logs.exists(), "refused before the log directory was made");
}

// ---- flags ----

/// `mint plan` describes a plan: it takes --nodes and --config, and
/// refuses the flags that start a machine.
#[test]
fn plan_takes_only_plan_flags() {
    let run = Isolated::new();
    for flag in [
        &["--accel", "kvm"][..],
        &["--kernel", "/bin/true"],
        &["--log-dir", "/tmp"],
        &["--timeout", "5"],
        &["--gdb", "1234"],
        &["--gdb-wait"],
    ] {
        let mut args = vec!["plan"];
        args.extend_from_slice(flag);
        refused(
            &run,
            &args,
            &[&format!("unexpected argument '{}'", flag[0])],
        );
    }
    let out = run
        .command(&["plan", "--nodes", "3"])
        .output()
        .expect("mint runs");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("node2: cores [cpu2]"));
}

/// Every numeric flag says the same of a negative number, naming itself.
#[test]
fn negative_numbers_get_one_clear_message() {
    let run = Isolated::new();
    let cases: [(&str, &str); 16] = [
        ("boot", "--nodes"),
        ("boot", "--timeout"),
        ("boot", "--gdb"),
        ("boot", "--qemu-cpus"),
        ("boot", "--qemu-memory-mib"),
        ("run", "--timeout"),
        ("plan", "--nodes"),
        ("gen", "--size"),
        ("gen", "--count"),
        ("gen", "--interval-ns"),
        ("gen", "--seed"),
        ("gen", "--support"),
        ("gen", "--target"),
        ("gen", "--corrupt-every"),
        ("gen", "--timeout"),
        ("gen", "--nodes"),
    ];
    for (subcommand, flag) in cases {
        for value in ["-5", "-1"] {
            refused(
                &run,
                &[subcommand, flag, value],
                &[
                    &format!("invalid value '{value}' for '{flag} <"),
                    "must be a non-negative number",
                ],
            );
        }
    }
}

/// A plan is a short text: an endless file is refused after 1 MiB.
#[test]
fn refuses_dev_zero_as_a_plan() {
    let run = Isolated::new();
    for subcommand in ["plan", "boot"] {
        refused(
            &run,
            &[subcommand, "--config", "/dev/zero"],
            &["mint: error: plan /dev/zero is larger than 1 MiB"],
        );
    }
}

// ---- what a person sees ----

/// `mint run` says it is booting before anything else (the kernel build
/// included), and lines typed ahead still reach the shell.
#[test]
fn run_says_it_is_booting_at_once() {
    let run = Isolated::new();
    let _machine = one_machine_at_a_time();
    let mut child = run
        .logged(&["run", "--timeout", "120"])
        .spawn()
        .expect("mint starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"nodes\nexit\n").expect("typing ahead");
    drop(stdin);
    let out = child.wait_with_output().expect("mint ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("mint: booting 2 nodes"),
        "first line on stderr: {first:?}\n{stderr}"
    );
    assert!(stdout.contains("[node0] node  state"), "{stdout}");
}

/// Without --log-dir the logs go to `runs/` in the current directory, or
/// under `$XDG_STATE_HOME/mint/runs` where that is not writable (here
/// /proc, which not even root can write).
#[test]
fn default_logs_go_to_the_cwd_or_the_state_home() {
    let cwd = TempDir::new().expect("a current directory");
    let state = TempDir::new().expect("a state home");
    for (dir, expected) in [
        (cwd.path(), cwd.path().join("runs")),
        (
            std::path::Path::new("/proc"),
            state.path().join("mint/runs"),
        ),
    ] {
        let run = Isolated::new();
        let _machine = one_machine_at_a_time();
        let out = run
            .command(&["boot", "--nodes", "1", "--json", "--timeout", "120"])
            .current_dir(dir)
            .env("XDG_STATE_HOME", state.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("mint runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
        let log_dir = std::path::PathBuf::from(report["log_dir"].as_str().expect("log_dir"));
        assert_eq!(log_dir.parent(), Some(expected.as_path()), "{report:#}");
        assert!(log_dir.join("node0.log").is_file(), "{}", log_dir.display());
    }
}

/// `mint gen` says up front how long the run should take, node 0 logs its
/// progress while it injects, and no progress bar reaches a stderr that
/// is not a terminal (nor anything but the report stdout).
#[test]
fn gen_states_its_estimate_and_logs_progress() {
    let run = Isolated::new();
    let _machine = one_machine_at_a_time();
    // 2.5 s of schedule: at least two progress lines.
    let out = run
        .logged(&[
            "gen",
            "--json",
            "--count",
            "25000",
            "--interval-ns",
            "100000",
            "--timeout",
            "200",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("mint runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is only the report");
    assert_eq!(report["sent"], 25000, "{report:#}");
    assert!(
        stderr
            .contains("mint: gen: 25000 frames, one every 100000 ns: about 3 seconds of injection"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("injecting ["),
        "no bar off a terminal:\n{stderr}"
    );
    assert!(
        !stderr.contains("MINT-PROGRESS"),
        "progress stays in the log"
    );
    let log = std::fs::read_to_string(run.logs.path().join("node0.log")).expect("node0.log");
    let progress: Vec<u64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("MINT-PROGRESS sent="))
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert!(!progress.is_empty(), "no progress line in node0.log");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert!(progress.iter().all(|&n| n <= 25000), "{progress:?}");
}

/// On a terminal (a pty from util-linux's `script`), `mint gen` shows its
/// progress bars; the run still ends with its report. `script` is in
/// Debian's essential `bsdutils`: its absence fails the test, never skips it.
#[test]
fn gen_shows_progress_bars_on_a_terminal() {
    assert!(
        std::process::Command::new("script")
            .arg("--version")
            .output()
            .is_ok(),
        "no `script` (util-linux/bsdutils) to give mint a pty"
    );
    let run = Isolated::new();
    let _machine = one_machine_at_a_time();
    let mint = format!(
        "{} gen --count 25000 --interval-ns 100000 --timeout 200 --log-dir {}",
        common::MINT,
        path(run.logs.path())
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &mint, "/dev/null"])
        .env("TMPDIR", run.tmp.path())
        .env("COLUMNS", "160")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("injecting ["), "no injection bar:\n{shown}");
    assert!(shown.contains("raw samples ["), "no samples bar:\n{shown}");
    assert!(
        shown.contains("verdict: every frame delivered")
            || shown.contains("verdict: every frame accounted for"),
        "{shown}"
    );
    run.assert_no_qemu_within(Duration::from_secs(5));
}
