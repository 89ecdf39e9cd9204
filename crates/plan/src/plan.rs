//! The plan's data model — machine, nodes, shared region — and its defaults.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use mint_abi::{CoreIndex, NodeId};

use crate::PlanError;
use crate::device::Device;
use crate::layout::{ACPI_RESERVE, LOW_RESERVE};
use crate::size::MIB;

/// At most this many nodes: each needs its own ISA UART (COM1..COM4).
pub const MAX_NODES: usize = 4;
/// Memory of each node in [`Plan::default_nodes`].
pub const DEFAULT_NODE_MEMORY: u64 = 64 * MIB;
/// Size of the shared region unless the plan says otherwise.
pub const DEFAULT_SHARED_SIZE: u64 = 16 * MIB;

/// The machine the plan is written for (what QEMU is told to emulate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Number of logical CPUs (`-smp`).
    pub cpus: u8,
    /// RAM in bytes (`-m`).
    pub memory: u64,
}

/// One OS node: what it owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: NodeId,
    /// The CPUs it runs on (exactly one for now).
    pub cores: Vec<CoreIndex>,
    /// Size of its private memory partition in bytes.
    pub memory: u64,
    /// Devices it drives; exactly one of them is a UART, its console.
    pub devices: Vec<Device>,
    /// The operating system it runs.
    pub os: Os,
}

/// The smallest partition of a node that runs Linux.
pub const MIN_LINUX_MEMORY: u64 = 256 * MIB;
/// The longest `cmdline` a Linux node's plan entry may add.
pub const MAX_LINUX_CMDLINE: usize = 1024;

/// What a node runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Os {
    /// mint's own node kernel (the default).
    #[default]
    Mint,
    /// A stock Linux kernel (a bzImage), started by node 0.
    Linux(LinuxBoot),
}

impl Os {
    /// `"mint"` or `"linux"`, as a plan file and the report name it.
    pub fn name(&self) -> &'static str {
        match self {
            Os::Mint => "mint",
            Os::Linux(_) => "linux",
        }
    }

    pub fn is_linux(&self) -> bool {
        matches!(self, Os::Linux(_))
    }
}

/// What a Linux node boots. Host-side only: the paths are files on the
/// host, read by the CLI; the kernel command line carries only that the
/// node runs Linux ([`Plan::encode`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinuxBoot {
    /// A bzImage; `None`: Debian's `linux-image-amd64`, which the CLI fetches.
    pub kernel: Option<String>,
    /// An initramfs (cpio); `None`: the CLI's own, holding mint's `/init`.
    pub initrd: Option<String>,
    /// Words appended to the command line mint gives the kernel.
    pub cmdline: Option<String>,
}

/// A whole partition plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub machine: Machine,
    /// Size of the region all nodes share, in bytes.
    pub shared_size: u64,
    pub nodes: Vec<NodeSpec>,
}

impl Plan {
    /// `n` nodes where node `i` owns core `i`, 64 MiB and `com{i+1}`, with a
    /// 16 MiB shared region on a machine of `n` CPUs and just enough RAM.
    pub fn default_nodes(n: u8) -> Result<Plan, PlanError> {
        match usize::from(n) {
            0 => Err(PlanError::NoNodes),
            count if count > MAX_NODES => Err(PlanError::TooManyNodes { count }),
            _ => Ok(Self::defaults(n)),
        }
    }

    /// [`Plan::default_nodes`] for `1..=MAX_NODES` nodes (so nothing overflows).
    fn defaults(n: u8) -> Plan {
        let nodes = (0..n)
            .map(|i| NodeSpec {
                id: NodeId(i),
                cores: vec![CoreIndex(i)],
                memory: DEFAULT_NODE_MEMORY,
                devices: vec![Device::Com(i + 1)],
                os: Os::Mint,
            })
            .collect();
        // The layout's required RAM; every term is a multiple of 2 MiB.
        let memory =
            LOW_RESERVE + u64::from(n) * DEFAULT_NODE_MEMORY + DEFAULT_SHARED_SIZE + ACPI_RESERVE;
        Plan {
            machine: Machine { cpus: n, memory },
            shared_size: DEFAULT_SHARED_SIZE,
            nodes,
        }
    }
}

impl Default for Plan {
    /// Two default nodes (see [`Plan::default_nodes`]).
    fn default() -> Self {
        Self::defaults(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_size_validates_with_exactly_enough_ram() {
        for n in 1..=MAX_NODES as u8 {
            let plan = Plan::default_nodes(n).expect("in range");
            let layout = plan.validate().expect("defaults are valid");
            assert_eq!(plan.machine.cpus, n);
            assert_eq!(plan.machine.memory, layout.required_ram);
            assert!(layout.required_ram.is_multiple_of(2 * MIB));
            assert_eq!(plan.nodes.len(), usize::from(n));
            let last = &plan.nodes[usize::from(n) - 1];
            assert_eq!(last.id, NodeId(n - 1));
            assert_eq!(last.cores, [CoreIndex(n - 1)]);
            assert_eq!(last.devices, [Device::Com(n)]);
        }
    }

    #[test]
    fn default_is_two_nodes() {
        let plan = Plan::default();
        assert_eq!(Plan::default_nodes(2), Ok(plan.clone()));
        assert_eq!(
            plan.machine,
            Machine {
                cpus: 2,
                memory: 154 * MIB
            }
        );
        assert_eq!(plan.shared_size, 16 * MIB);
    }

    #[test]
    fn default_node_count_out_of_range() {
        assert_eq!(Plan::default_nodes(0), Err(PlanError::NoNodes));
        assert_eq!(
            Plan::default_nodes(5),
            Err(PlanError::TooManyNodes { count: 5 })
        );
    }
}
