//! Everything that can be wrong with a plan, each error naming its culprit.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use mint_abi::{CoreIndex, NodeId, PhysAddr};

use crate::device::Device;
use crate::encode::ENCODING_VERSION;
use crate::layout::{MIN_NODE_MEMORY, MIN_SHARED_SIZE, PARTITION_ALIGN, Region};
use crate::plan::MAX_NODES;
use crate::size::Bytes;

/// Why a plan (or a piece of one) was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// A size string that [`crate::parse_size`] cannot read.
    BadSize {
        text: String,
        reason: &'static str,
    },
    /// A device name other than `com1`..`com4` or `e1000`.
    UnknownDevice {
        name: String,
    },
    NoNodes,
    TooManyNodes {
        count: usize,
    },
    /// Node ids must be exactly `0..count`.
    NodeIdOutOfRange {
        node: NodeId,
        count: usize,
    },
    DuplicateNodeId {
        node: NodeId,
    },
    NoCores {
        node: NodeId,
    },
    /// More than one core per node is not supported yet.
    SeveralCores {
        node: NodeId,
        cores: Vec<CoreIndex>,
    },
    /// A core at or beyond `machine.cpus`.
    MissingCore {
        node: NodeId,
        core: CoreIndex,
        cpus: u8,
    },
    /// `core` is claimed by `node` but already owned by `owner`.
    CoreOverlap {
        node: NodeId,
        core: CoreIndex,
        owner: NodeId,
    },
    /// Node 0 does not own core 0 (the boot CPU); `cores` are the ones it has.
    BootCore {
        cores: Vec<CoreIndex>,
    },
    /// A device that does not exist, e.g. `Com(5)`.
    InvalidDevice {
        node: NodeId,
        device: Device,
    },
    /// `device` is claimed by `node` but already owned by `owner` (which may
    /// be the same node, listing it twice).
    DuplicateDevice {
        node: NodeId,
        device: Device,
        owner: NodeId,
    },
    /// The node has no UART to be its console.
    NoConsole {
        node: NodeId,
    },
    /// The node stands by for an e1000 no node owns.
    StandbyWithoutOwner {
        node: NodeId,
    },
    /// The node lists both `e1000` and `e1000-standby`.
    OwnerOnStandby {
        node: NodeId,
    },
    /// The node has more than one UART.
    SeveralConsoles {
        node: NodeId,
        first: Device,
        second: Device,
    },
    MisalignedMemory {
        node: NodeId,
        memory: u64,
    },
    NodeMemoryTooSmall {
        node: NodeId,
        memory: u64,
    },
    NodeMemoryTooLarge {
        node: NodeId,
        memory: u64,
        max: u64,
    },
    MisalignedShared {
        size: u64,
    },
    SharedTooSmall {
        size: u64,
    },
    /// The layout does not fit in 64-bit physical addresses.
    LayoutOverflow,
    /// Node 0 runs the machine: it cannot run Linux.
    LinuxOnNode0,
    /// A Linux node's partition is smaller than [`crate::MIN_LINUX_MEMORY`].
    LinuxNodeTooSmall {
        node: NodeId,
        memory: u64,
    },
    /// A Linux node was given a device other than its console UART.
    LinuxDevice {
        node: NodeId,
        device: Device,
    },
    /// A Linux node's `cmdline` cannot be passed on.
    LinuxCmdline {
        node: NodeId,
        reason: &'static str,
    },
    /// `kernel`, `initrd` or `cmdline` on a node that does not run Linux.
    LinuxKeyOnMintNode {
        node: NodeId,
        key: &'static str,
    },
    /// An `os` other than `"mint"` or `"linux"`.
    UnknownOs {
        node: NodeId,
        name: String,
    },
    /// `region` ends beyond `machine.memory` (`ram`); the plan needs `required`.
    BeyondRam {
        region: Region,
        base: PhysAddr,
        size: u64,
        ram: u64,
        required: u64,
    },
    /// A node's core is not among the CPUs the MADT lists (`present` of them).
    CoreNotPresent {
        node: NodeId,
        core: CoreIndex,
        present: usize,
    },
    /// A region is not inside one usable RAM range; `containing` is the
    /// usable range holding its start, if any.
    NotInRam {
        region: Region,
        base: PhysAddr,
        size: u64,
        containing: Option<(PhysAddr, u64)>,
    },
    /// The encoded plan has a version this build does not read.
    UnsupportedVersion {
        found: String,
    },
    /// A malformed token in the encoded plan.
    BadEncoding {
        token: String,
        expected: &'static str,
    },
    /// The kernel command line carries no `mint.plan=` entry.
    NotInCmdline,
    /// A malformed TOML plan file; toml's message (with line and column).
    #[cfg(feature = "toml")]
    Toml(String),
}

/// `base..end` in hex.
struct Span(PhysAddr, u64);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Span(base, size) = *self;
        write!(f, "{base}..{:#x}", base.0.saturating_add(size))
    }
}

/// Cores as `cpu1, cpu2`, or `no core`.
struct Cores<'a>(&'a [CoreIndex]);

impl fmt::Display for Cores<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((first, rest)) = self.0.split_first() else {
            return f.write_str("no core");
        };
        write!(f, "{first}")?;
        rest.iter().try_for_each(|core| write!(f, ", {core}"))
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PlanError::*;
        let align = Bytes(PARTITION_ALIGN);
        match self {
            BadSize { text, reason } => write!(f, "bad size {text:?}: {reason}"),
            LinuxOnNode0 => f.write_str(
                "node 0: runs the machine and cannot run Linux; give os = \"linux\" to another node",
            ),
            LinuxNodeTooSmall { node, memory } => write!(
                f,
                "node {}: too small for Linux: {} of memory; a Linux node needs at least {}",
                node.0,
                Bytes(*memory),
                Bytes(crate::MIN_LINUX_MEMORY)
            ),
            LinuxDevice { node, device } => write!(
                f,
                "node {}: runs Linux, which gets only its console UART for now, not {device}",
                node.0
            ),
            LinuxCmdline { node, reason } => write!(f, "node {}: cmdline {reason}", node.0),
            LinuxKeyOnMintNode { node, key } => write!(
                f,
                "node {}: `{key}` is for a node with os = \"linux\"",
                node.0
            ),
            UnknownOs { node, name } => write!(
                f,
                "node {}: unknown os {name:?} (expected \"mint\" or \"linux\")",
                node.0
            ),
            UnknownDevice { name } => {
                write!(f, "unknown device {name:?} (expected com1..com4 or e1000)")
            }
            NoNodes => f.write_str("the plan has no nodes"),
            TooManyNodes { count } => write!(
                f,
                "the plan has {count} nodes; at most {MAX_NODES} are supported (one ISA UART each)"
            ),
            NodeIdOutOfRange { node, count } => write!(
                f,
                "node {}: id out of range: {count} nodes must have ids 0..={}",
                node.0,
                count.saturating_sub(1)
            ),
            DuplicateNodeId { node } => write!(f, "node {}: id given twice", node.0),
            NoCores { node } => write!(f, "node {}: owns no core", node.0),
            SeveralCores { node, cores } => write!(
                f,
                "node {}: several cores ({}) not supported yet; give each node exactly one",
                node.0,
                Cores(cores)
            ),
            MissingCore { node, core, cpus } => write!(
                f,
                "node {}: missing core {core}: the machine has {cpus} CPUs",
                node.0
            ),
            CoreOverlap { node, core, owner } => write!(
                f,
                "node {}: core {core} is already owned by node {}",
                node.0, owner.0
            ),
            BootCore { cores } => write!(
                f,
                "node 0: must own core cpu0 (the boot CPU), but owns {}",
                Cores(cores)
            ),
            InvalidDevice { node, device } => write!(
                f,
                "node {}: no such device {device} (the UARTs are com1..com4)",
                node.0
            ),
            DuplicateDevice {
                node,
                device,
                owner,
            } if node == owner => {
                write!(f, "node {}: device {device} is listed twice", node.0)
            }
            DuplicateDevice {
                node,
                device,
                owner,
            } => write!(
                f,
                "node {}: device {device} is already owned by node {}",
                node.0, owner.0
            ),
            StandbyWithoutOwner { node } => write!(
                f,
                "node {}: e1000-standby needs another node that owns the e1000 (devices = [\"e1000\"])",
                node.0
            ),
            OwnerOnStandby { node } => write!(
                f,
                "node {}: owns the e1000 and cannot also stand by for it",
                node.0
            ),
            NoConsole { node } => write!(
                f,
                "node {}: has no UART (com1..com4) for its console",
                node.0
            ),
            SeveralConsoles {
                node,
                first,
                second,
            } => write!(
                f,
                "node {}: has two UARTs, {first} and {second}; a node has exactly one (its console)",
                node.0
            ),
            MisalignedMemory { node, memory } => write!(
                f,
                "node {}: memory {} ({memory:#x}) is not a multiple of {align}",
                node.0,
                Bytes(*memory)
            ),
            NodeMemoryTooSmall { node, memory } => write!(
                f,
                "node {}: memory {} is below the {} minimum",
                node.0,
                Bytes(*memory),
                Bytes(MIN_NODE_MEMORY)
            ),
            NodeMemoryTooLarge { node, memory, max } => write!(
                f,
                "node {}: memory {} is above the {} a node can map",
                node.0,
                Bytes(*memory),
                Bytes(*max)
            ),
            MisalignedShared { size } => write!(
                f,
                "shared region: size {} ({size:#x}) is not a multiple of {align}",
                Bytes(*size)
            ),
            SharedTooSmall { size } => write!(
                f,
                "shared region: size {} is below the {} minimum",
                Bytes(*size),
                Bytes(MIN_SHARED_SIZE)
            ),
            LayoutOverflow => {
                f.write_str("the partitions overflow the 64-bit physical address space")
            }
            BeyondRam {
                region,
                base,
                size,
                ram,
                required,
            } => write!(
                f,
                "{region}: memory {} beyond machine RAM {} (the plan needs {})",
                Span(*base, *size),
                Bytes(*ram),
                Bytes(*required)
            ),
            CoreNotPresent {
                node,
                core,
                present,
            } => write!(
                f,
                "node {}: core {core} not present on this machine (MADT lists {present} CPUs)",
                node.0
            ),
            NotInRam {
                region,
                base,
                size,
                containing: Some((ram_base, ram_size)),
            } => write!(
                f,
                "{region}: {} runs past the usable RAM range {}",
                Span(*base, *size),
                Span(*ram_base, *ram_size)
            ),
            NotInRam {
                region,
                base,
                size,
                containing: None,
            } => write!(
                f,
                "{region}: {} is not in usable RAM (no usable range holds {base})",
                Span(*base, *size)
            ),
            UnsupportedVersion { found } => write!(
                f,
                "plan encoding version {found:?} is not supported (this build reads version {ENCODING_VERSION})"
            ),
            BadEncoding { token, expected } => {
                write!(
                    f,
                    "malformed plan encoding at {token:?}: expected {expected}"
                )
            }
            NotInCmdline => f.write_str("the kernel command line has no mint.plan= entry"),
            #[cfg(feature = "toml")]
            Toml(message) => write!(f, "invalid plan file: {message}"),
        }
    }
}

impl core::error::Error for PlanError {}
