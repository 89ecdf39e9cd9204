//! `mint`: the host side of the mint multikernel.
//!
//! - `kernel`: builds the node kernel image (a nested, freestanding cargo build).
//! - `qemu`: finds or installs QEMU, picks the accelerator, builds the command line.
//! - `machine`: starts one machine run, shows and logs every node's console.
//! - `plan`: loads and checks the partition plan before anything boots.
//! - `preflight`: checks of the flags' files, directories and ports before boot.
//! - `shutdown`: signals and a closed output stop a run without leaving a machine.
//! - `output`: lines and progress bars that never panic; `flags`: numeric flags.
//! - `os`: the few OS calls std lacks (the only module with `unsafe`).
//! - `boot` / `run` / `generate` (`mint gen`) / `nic` (`mint nic`) / `bench`
//!   (`mint bench`, the paper's evaluation): the subcommands.
#![deny(unsafe_code)]

#[macro_use]
mod output;
mod bench;
mod boot;
mod flags;
mod generate;
mod handover;
mod kernel;
mod linux;
mod linuxmod;
mod machine;
mod nic;
mod os;
mod plan;
mod preflight;
mod qemu;
mod run;
mod shutdown;
mod tsc;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mint",
    version,
    about = "Split one x86-64 machine into independent OS nodes, no hypervisor."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot the machine, ping every node from every node, report, power off.
    Boot(boot::BootArgs),
    /// Boot the machine with an interactive shell on node 0's console.
    Run(run::RunArgs),
    /// Inject frames into the target node's e1000 driver through the
    /// shared-memory debug NIC and real IPIs; measure and account for each.
    Gen(generate::GenArgs),
    /// Send frames from the host into the real (emulated) e1000 a node
    /// owns; it takes them through its INTx, routed by the interrupt
    /// layer, and validates and accounts for each.
    Nic(nic::NicArgs),
    /// Hand the real e1000 back and forth between two nodes through the
    /// interrupt layer while the host streams frames into it; account for
    /// every frame and interrupt across both owners.
    Handover(handover::HandoverArgs),
    /// Check a partition plan without booting; print its physical layout.
    Plan(PlanArgs),
    /// The paper's evaluation: send time, throughput, success rate and
    /// latency, each beside the floors measured in the same run: natively
    /// (--native) or with the nodes under QEMU.
    Bench(bench::BenchArgs),
    /// Lint the node kernel with its own build flags (clippy, warnings denied).
    #[command(hide = true)]
    LintKernel,
}

/// Which plan: `--nodes N`, `--config FILE` or the default (2 nodes).
/// All that `mint plan` takes.
#[derive(Args, Clone, Debug)]
pub struct PlanArgs {
    /// N nodes of one core each (default: 2).
    #[arg(long, conflicts_with = "config", allow_negative_numbers = true, value_parser = flags::nodes)]
    pub nodes: Option<u8>,
    /// A partition plan in TOML (see examples/four-nodes.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

/// How to describe and start the machine; shared by every subcommand that
/// boots one.
#[derive(Args, Clone, Debug)]
pub struct MachineArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Accelerator: auto (KVM only where it is real hardware virtualization), kvm or tcg.
    #[arg(long, default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
    pub accel: String,
    /// Local APIC mode of the virtual CPUs: auto (x2APIC where the CPU
    /// model and QEMU offer it), xapic (MMIO registers, the ICR as two
    /// writes with a delivery-status poll) or x2apic (MSRs; under software
    /// emulation QEMU 10 or later).
    #[arg(long, default_value = "auto", value_parser = ["auto", "xapic", "x2apic"])]
    pub apic: String,
    /// Use this kernel image (an x86-64 ELF) instead of building one.
    #[arg(long, value_name = "ELF")]
    pub kernel: Option<std::path::PathBuf>,
    /// Where to keep per-node console logs (default: runs/<time> in the
    /// current directory, or under $XDG_STATE_HOME/mint when that is not
    /// writable). One run at a time per directory.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<std::path::PathBuf>,
    /// Give up on the machine after this many seconds (default: 120 for
    /// `boot`; for `gen`, 120 plus the run's own length; none for `run`).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = flags::u64_value)]
    pub timeout: Option<u64>,
    /// Open QEMU's gdb stub on 127.0.0.1:PORT: one gdb thread per CPU, so
    /// thread K+1 is the node on core K (all nodes run the same image at the
    /// same addresses: use hardware breakpoints, `hbreak`).
    #[arg(long, value_name = "PORT", allow_negative_numbers = true, value_parser = flags::port)]
    pub gdb: Option<u16>,
    /// With --gdb: hold every CPU at its first instruction until gdb says
    /// `continue`.
    #[arg(long, requires = "gdb")]
    pub gdb_wait: bool,
    /// Testing: start QEMU with this many CPUs instead of the plan's, to
    /// exercise node 0's own check of the plan against the machine.
    #[arg(long, hide = true, allow_negative_numbers = true, value_parser = flags::u8_value)]
    pub qemu_cpus: Option<u8>,
    /// Testing: start QEMU with this much RAM (MiB) instead of the plan's.
    #[arg(long, hide = true, allow_negative_numbers = true, value_parser = flags::u64_value)]
    pub qemu_memory_mib: Option<u64>,
    /// When the TSC rate sources disagree by more than 2 % (and none is
    /// exact): refuse the boot, or warn and go on with node 0's choice.
    #[arg(long, default_value = "refuse", value_parser = ["refuse", "warn"])]
    pub tsc_mismatch: String,
    /// Testing: tell node 0 this host TSC rate instead of measuring it.
    #[arg(long, hide = true, value_name = "HZ")]
    pub host_tsc_hz: Option<u64>,
    /// Testing: enable these QEMU trace events (comma-separated names or
    /// patterns, e.g. `ioapic_mem_write,pic_ioport_write`), logged to
    /// qemu-trace.log in the log directory.
    #[arg(long, hide = true, value_name = "EVENTS")]
    pub qemu_trace: Option<String>,
}

impl MachineArgs {
    /// `--timeout`, else `default` seconds; with a gdb stub open, a person
    /// is at the wheel: no default limit.
    pub fn timeout_or(&self, default: u64) -> std::time::Duration {
        const A_YEAR: u64 = 365 * 24 * 3600;
        std::time::Duration::from_secs(self.timeout.unwrap_or(if self.gdb.is_some() {
            A_YEAR
        } else {
            default
        }))
    }
}

/// Prints a report (JSON, or for people) and turns its `"ok"` into the exit
/// code: 0 when it holds, 1 when the run finished but failed.
pub fn emit(
    report: &serde_json::Value,
    json: bool,
    for_people: fn(&serde_json::Value),
) -> anyhow::Result<ExitCode> {
    if json {
        outln!("{}", serde_json::to_string_pretty(report)?);
    } else {
        for_people(report);
    }
    Ok(if report["ok"].as_bool() == Some(true) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = shutdown::install() {
        errln!("mint: error: cannot handle SIGINT, SIGTERM and SIGHUP: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Boot(args) => boot::run(args),
        Command::Run(args) => run::run(args),
        Command::Gen(args) => generate::run(args),
        Command::Nic(args) => nic::run(args),
        Command::Handover(args) => handover::run(args),
        Command::Plan(args) => plan::show(&args),
        Command::Bench(args) => bench::run(args),
        Command::LintKernel => kernel::lint().map(|()| ExitCode::SUCCESS),
    };
    // A run stopped early (a signal, a closed output) ends as the signal
    // would have, after its clean-up: see `shutdown`.
    let stop = match &result {
        Err(e) => e.downcast_ref::<shutdown::Stop>().cloned(),
        Ok(_) => shutdown::pending(),
    };
    if let Some(stop) = stop {
        if let shutdown::Stop::Signal(_) | shutdown::Stop::Output(Some(_)) = stop {
            errln!("mint: {stop}; the machine is stopped");
        }
        return ExitCode::from(shutdown::end(&stop));
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("mint: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
