//! What every end-to-end test of the `mint` binary needs: running it, one
//! machine at a time, and reading what it reports.
//!
//! The host is small and QEMU emulates in software, so machines run one at
//! a time: every test that might start QEMU holds [`MACHINE`].
// Each test binary uses its own part of the helpers.
#![allow(dead_code)]

use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const MINT: &str = env!("CARGO_BIN_EXE_mint");

/// Held while a test may run a machine: see [`one_machine_at_a_time`].
static MACHINE: Mutex<()> = Mutex::new(());

pub fn one_machine_at_a_time() -> MutexGuard<'static, ()> {
    MACHINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One finished `mint` process.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The exit code, the time taken and both streams, for assertion
    /// messages. The consoles (on stderr with `--json`) may carry long
    /// sample lines: those are left out.
    pub fn context(&self) -> String {
        let (samples, stderr): (Vec<&str>, Vec<&str>) = self
            .stderr
            .lines()
            .partition(|l| l.contains("MINT-SAMPLES "));
        let left_out = if samples.is_empty() {
            String::new()
        } else {
            format!(" ({} sample lines left out)", samples.len())
        };
        format!(
            "exit code {} after {:.1?}\n--- stdout ---\n{}\n--- stderr{left_out} ---\n{}",
            self.code,
            self.elapsed,
            self.stdout,
            stderr.join("\n")
        )
    }

    /// The `--json` report on stdout.
    pub fn report(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not a JSON report ({e})\n{}", self.context()))
    }

    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.code, code, "{}", self.context());
    }

    /// Whether any node's console was echoed, i.e. a machine ran.
    pub fn console_seen(&self) -> bool {
        let echoed = |s: &str| s.lines().any(|l| l.starts_with("[node"));
        echoed(&self.stdout) || echoed(&self.stderr)
    }
}

/// Runs `mint` with `args`.
pub fn mint(args: &[&str]) -> Run {
    let start = Instant::now();
    let out = Command::new(MINT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {MINT}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// `mint SUBCOMMAND --json` with `args`, one machine at a time, consoles
/// (and whatever else the run writes there) kept in a fresh log directory
/// (returned, so the files outlive the run).
pub fn run_logged(subcommand: &str, args: &[&str]) -> (Run, TempDir) {
    let logs = TempDir::new().expect("temporary log directory");
    let log_dir = logs.path().to_str().expect("UTF-8 temp path");
    let mut all = vec![
        subcommand,
        "--json",
        "--timeout",
        "120",
        "--log-dir",
        log_dir,
    ];
    all.extend_from_slice(args);
    let _machine = one_machine_at_a_time();
    (mint(&all), logs)
}

pub fn uint(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not an unsigned integer: {v}"))
}

/// A `mint` run whose machine can be found and checked for leftovers: its
/// `TMPDIR` (where mint makes its socket directory) is a fresh directory,
/// whose path appears in QEMU's command line.
pub struct Isolated {
    pub tmp: TempDir,
    pub logs: TempDir,
}

impl Isolated {
    pub fn new() -> Isolated {
        Isolated {
            tmp: TempDir::new().expect("temporary TMPDIR"),
            logs: TempDir::new().expect("temporary log directory"),
        }
    }

    /// `mint` with `args` (the subcommand first) and this run's
    /// `--log-dir` and TMPDIR, every stream piped.
    pub fn logged(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.arg("--log-dir").arg(self.logs.path());
        cmd
    }

    /// `mint` with `args` and this run's TMPDIR, every stream piped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(MINT);
        cmd.args(args)
            .env("TMPDIR", self.tmp.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    /// PIDs of the QEMUs started for this run (still alive or not yet
    /// reaped).
    pub fn qemus(&self) -> Vec<u32> {
        let marker = self.tmp.path().to_str().expect("UTF-8 temp path");
        qemus_with(marker)
    }

    /// Socket directories (`mint-*`) left in this run's TMPDIR.
    pub fn socket_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.tmp.path())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("mint-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (up to `within`) until no QEMU of this run is left; panics
    /// naming those still there.
    pub fn assert_no_qemu_within(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = self.qemus();
            if left.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                // Leave no machine behind even when the test fails.
                for pid in &left {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                panic!("QEMU left behind: pids {left:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// PIDs of live processes named qemu-system-* whose command line contains
/// `marker`.
pub fn qemus_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        // A zombie has an empty command line: it is gone.
        if cmdline.contains("qemu-system") && cmdline.contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

/// Sends `signal` (a name: TERM, INT, HUP, KILL) to `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Reads `child`'s stdout line by line (on a thread) until a line
/// contains `wanted`; panics after `within`. Returns the lines read, and
/// the rest of stdout as a receiver of further lines: keep it while mint
/// runs, or its stdout closes (which stops mint).
pub fn wait_for_line(
    child: &mut std::process::Child,
    wanted: &str,
    within: Duration,
) -> (Vec<String>, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(wanted);
                seen.push(line);
                if found {
                    return (seen, rx);
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no line with {wanted:?} within {within:?}:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
}

/// Waits for `child` at most `within` (killing it after that); returns its
/// status and the time taken.
pub fn wait_at_most(
    child: &mut std::process::Child,
    within: Duration,
) -> (std::process::ExitStatus, Duration) {
    match ended_within(child, within) {
        Some(ended) => ended,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mint did not end within {within:?}");
        }
    }
}

/// `child`'s exit status and how long it took, if it ended within
/// `within` (else it is left running, for the caller to end).
pub fn ended_within(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<(std::process::ExitStatus, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for mint") {
            return Some((status, start.elapsed()));
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Collects `child`'s stderr on a thread (so mint never blocks on it).
pub fn collect_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    })
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
