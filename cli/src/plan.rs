//! Loads the partition plan (`--nodes`, `--config` or the default) and checks
//! it on the host before anything boots.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use mint_plan::{Layout, Plan};

use crate::PlanArgs;

/// A plan file is a short TOML text; anything longer is not one (and
/// `--config /dev/zero` must not eat the memory).
const PLAN_FILE_LIMIT: u64 = 1 << 20;

/// RAM at or above this makes QEMU's `pc` machine put part of it above 4 GiB.
const QEMU_PC_LOW_RAM_LIMIT: u64 = 0xE000_0000;

/// The plan to boot, validated, with its physical layout.
pub fn load(args: &PlanArgs) -> Result<(Plan, Layout)> {
    let plan = match (&args.config, args.nodes) {
        (Some(path), _) => {
            let text = read_plan_file(path)?;
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

/// The text of a plan file, at most [`PLAN_FILE_LIMIT`] bytes of UTF-8.
fn read_plan_file(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    let shown = path.display();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(PLAN_FILE_LIMIT + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read plan {shown}"))?;
    if bytes.len() as u64 > PLAN_FILE_LIMIT {
        bail!(
            "plan {shown} is larger than {} MiB: not a plan file (a plan is a short TOML text)",
            PLAN_FILE_LIMIT >> 20
        );
    }
    String::from_utf8(bytes).with_context(|| format!("plan {shown} is not UTF-8 text"))
}

/// `mint plan`: prints the checked layout.
pub fn show(args: &PlanArgs) -> Result<ExitCode> {
    let (plan, layout) = load(args)?;
    outln!(
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
        outln!(
            "{}: cores [{}], memory {} MiB at {:#x}, devices [{}], os {}",
            node.id,
            cores.join(", "),
            size >> 20,
            base.as_u64(),
            devices.join(", "),
            node.os.name()
        );
    }
    outln!("kernel command line: {}", plan.encode());
    Ok(ExitCode::SUCCESS)
}
