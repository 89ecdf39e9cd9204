//! The e1000 driver's MMIO backend on (QEMU's emulated) hardware: a plan
//! that gives the 82540EM to a node makes node 0 find it on the PCI bus and
//! map its registers into that node only; the node resets it, brings the
//! link up, reads its MAC and programs the RX ring with the same `RxRing`
//! code the debug NIC uses, and the device holds what was programmed.

mod common;

use tempfile::TempDir;

fn plan_with_nic_on(owner: u8) -> String {
    let devices = |id: u8| {
        let com = format!("\"com{}\"", id + 1);
        if id == owner {
            format!("[{com}, \"e1000\"]")
        } else {
            format!("[{com}]")
        }
    };
    (0..2u8)
        .map(|id| {
            format!(
                "[[node]]\nid = {id}\ncores = [{id}]\nmemory = \"64M\"\ndevices = {}\n",
                devices(id)
            )
        })
        .collect()
}

fn boot_with_nic_on(owner: u8) -> (common::Run, TempDir) {
    let dir = TempDir::new().expect("temp dir");
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, plan_with_nic_on(owner)).expect("plan written");
    let (run, logs) = common::run_logged("boot", &["--config", plan.to_str().expect("UTF-8")]);
    run.assert_exit(0);
    drop(dir);
    (run, logs)
}

#[test]
fn the_owner_brings_up_the_real_e1000_through_its_registers() {
    for owner in [1u8, 0] {
        let (run, logs) = boot_with_nic_on(owner);
        let report = run.report();
        assert_eq!(report["ok"], true, "{report:#}");
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
        let other = log(1 - owner);
        assert!(
            !other.contains("e1000 at"),
            "the other node touched the NIC:\n{other}"
        );
    }
}
