//! Per-node debugging with gdb: `mint boot --gdb PORT --gdb-wait` holds the
//! machine until gdb attaches; a hardware breakpoint in kernel code stops a
//! node, gdb sees one thread per node, and after gdb detaches (even after a
//! pause longer than the heartbeat timeout) the machine finishes its boot
//! with every node running. (Under TCG the guest TSC stands still while gdb
//! holds the machine too; the tick-based heartbeat matters on KVM.)

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{MINT, free_port, one_machine_at_a_time};
use tempfile::TempDir;

/// Kills the `mint` under test if the test fails before it ends.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn gdb_stops_a_node_at_a_breakpoint_and_the_boot_goes_on() {
    let logs = TempDir::new().expect("temporary log directory");
    let port = free_port();
    let _machine = one_machine_at_a_time();
    let mut mint = KillOnDrop(Some(
        Command::new(MINT)
            .args([
                "boot",
                "--nodes",
                "2",
                "--json",
                "--timeout",
                "120",
                "--gdb",
            ])
            .arg(port.to_string())
            .arg("--gdb-wait")
            .arg("--log-dir")
            .arg(logs.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mint runs"),
    ));

    // The stub listens once QEMU is up (after the kernel build).
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gdb stub never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kernel = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/node/x86_64-unknown-linux-gnu/node/mint-node");
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx"])
        .arg(&kernel)
        .args([
            "-ex",
            &format!("target remote 127.0.0.1:{port}"),
            "-ex",
            "hbreak mint_node::node::ping::round",
            "-ex",
            "continue",
            "-ex",
            "info threads",
            // Stopped longer than the heartbeat timeout: the whole machine
            // stood still, so nobody may be declared dead for it.
            "-ex",
            "shell sleep 2",
            "-ex",
            "delete",
            "-ex",
            "detach",
        ])
        .output()
        .expect("gdb runs (apt-get install gdb)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&gdb.stdout),
        String::from_utf8_lossy(&gdb.stderr)
    );
    assert!(
        said.contains("hit Breakpoint 1"),
        "no breakpoint hit:\n{said}"
    );
    assert!(said.contains("Thread 1.1"), "no thread for node 0:\n{said}");
    assert!(said.contains("Thread 1.2"), "no thread for node 1:\n{said}");

    let out = mint
        .0
        .take()
        .expect("mint still ours")
        .wait_with_output()
        .expect("mint ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["ok"], true, "{report:#}");
}
