//! What every end-to-end test of the `mint` binary needs: running it, one
//! machine at a time, and reading what it reports.
//!
//! The host is small and QEMU emulates in software, so machines run one at
//! a time: every test that might start QEMU holds [`MACHINE`].

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
