//! Loads the partition plan (`--nodes`, `--config` or the default) and checks
//! it on the host before anything boots.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use mint_plan::{Layout, Plan};

use crate::MachineArgs;

/// RAM at or above this makes QEMU's `pc` machine put part of it above 4 GiB.
const QEMU_PC_LOW_RAM_LIMIT: u64 = 0xE000_0000;

/// The plan to boot, validated, with its physical layout.
pub fn load(args: &MachineArgs) -> Result<(Plan, Layout)> {
    let plan = match (&args.config, args.nodes) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read plan {}", path.display()))?;
            Plan::from_toml_str(&text).with_context(|| format!("plan {}", path.display()))?
        }
        (None, Some(n)) => Plan::default_nodes(n)?,
        (None, None) => Plan::default(),
    };
    let layout = plan.validate().context("partition plan rejected")?;
    if plan.machine.memory >= QEMU_PC_LOW_RAM_LIMIT {
        bail!(
            "partition plan rejected: machine memory {} MiB: the QEMU `pc` machine keeps RAM in one \
             range only below {} MiB (above that it splits RAM around the PCI hole at 3 GiB)",
            plan.machine.memory >> 20,
            QEMU_PC_LOW_RAM_LIMIT >> 20
        );
    }
    Ok((plan, layout))
}

/// `mint plan`: prints the checked layout.
pub fn show(args: &MachineArgs) -> Result<ExitCode> {
    let (plan, layout) = load(args)?;
    println!(
        "machine: {} CPUs, {} MiB RAM; shared region {} MiB at {:#x}",
        plan.machine.cpus,
        plan.machine.memory >> 20,
        layout.shared.1 >> 20,
        layout.shared.0.as_u64()
    );
    for node in &plan.nodes {
        let (base, size) = layout.node(node.id).unwrap_or_default();
        let cores: Vec<String> = node.cores.iter().map(|c| c.to_string()).collect();
        let devices: Vec<String> = node.devices.iter().map(|d| d.to_string()).collect();
        println!(
            "{}: cores [{}], memory {} MiB at {:#x}, devices [{}]",
            node.id,
            cores.join(", "),
            size >> 20,
            base.as_u64(),
            devices.join(", ")
        );
    }
    println!("kernel command line: {}", plan.encode());
    Ok(ExitCode::SUCCESS)
}
