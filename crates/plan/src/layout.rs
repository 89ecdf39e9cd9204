//! Physical memory layout: where each node's partition and the shared region sit.

use alloc::vec::Vec;
use core::fmt;

use mint_abi::{NodeId, PhysAddr};

use crate::PlanError;
use crate::plan::{NodeSpec, Plan};
use crate::size::MIB;

/// The low/firmware area below the first partition (AP trampoline, boot info).
pub const LOW_RESERVE: u64 = 2 * MIB;
/// Kept free at the top of RAM for the firmware's ACPI tables.
pub const ACPI_RESERVE: u64 = 8 * MIB;
/// Node partitions and the shared region are multiples of this (one large page).
pub const PARTITION_ALIGN: u64 = 2 * MIB;
/// The smallest node partition.
pub const MIN_NODE_MEMORY: u64 = 16 * MIB;
/// The smallest shared region.
pub const MIN_SHARED_SIZE: u64 = 4 * MIB;
/// The largest node partition: a node maps its partition in the top 2 GiB of
/// its address space (the kernel is linked there), from 2 MiB in, and keeps
/// the last 2 MiB unmapped so the window's end stays a valid address.
pub const MAX_NODE_MEMORY: u64 = 2048 * MIB - LOW_RESERVE - 2 * MIB;
/// Node 0 starts under boot page tables that map the first GiB at the
/// kernel's address, so its partition (from 2 MiB) must end below 1 GiB.
pub const MAX_NODE0_MEMORY: u64 = 1024 * MIB - LOW_RESERVE;

/// Where everything goes in physical memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Each node's partition `(id, base, size)`, in id order.
    pub nodes: Vec<(NodeId, PhysAddr, u64)>,
    /// The shared region `(base, size)`, right after the last node.
    pub shared: (PhysAddr, u64),
    /// RAM the plan needs: up to the end of the shared region plus the ACPI
    /// reserve. A multiple of [`PARTITION_ALIGN`].
    pub required_ram: u64,
}

impl Layout {
    /// The partition `(base, size)` of node `id`.
    pub fn node(&self, id: NodeId) -> Option<(PhysAddr, u64)> {
        self.nodes
            .iter()
            .find(|&&(node, _, _)| node == id)
            .map(|&(_, base, size)| (base, size))
    }

    /// Every laid-out region with its `(base, size)`: the nodes in id order,
    /// the shared region, then the ACPI reserve.
    pub fn regions(&self) -> impl Iterator<Item = (Region, PhysAddr, u64)> + '_ {
        let (shared_base, shared_size) = self.shared;
        let acpi_base = PhysAddr(self.required_ram.saturating_sub(ACPI_RESERVE));
        self.nodes
            .iter()
            .map(|&(id, base, size)| (Region::Node(id), base, size))
            .chain([
                (Region::Shared, shared_base, shared_size),
                (Region::AcpiReserve, acpi_base, ACPI_RESERVE),
            ])
    }
}

/// A region of the layout, as named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Node(NodeId),
    Shared,
    AcpiReserve,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Node(id) => write!(f, "node {}", id.0),
            Region::Shared => f.write_str("shared region"),
            Region::AcpiReserve => f.write_str("ACPI reserve"),
        }
    }
}

impl Plan {
    /// The nodes sorted by id (stable, so duplicate ids keep plan order).
    pub(crate) fn nodes_by_id(&self) -> Vec<&NodeSpec> {
        let mut nodes: Vec<&NodeSpec> = self.nodes.iter().collect();
        nodes.sort_by_key(|node| node.id);
        nodes
    }

    /// Lays the plan out in physical memory. Checks only sizes: each node's
    /// memory is a multiple of 2 MiB, at least 16 MiB and at most what a node
    /// can map ([`MAX_NODE_MEMORY`], [`MAX_NODE0_MEMORY`]), the shared region a
    /// multiple of 2 MiB and at least 4 MiB, and everything fits in 64 bits.
    /// [`Plan::validate`] checks the rest.
    pub fn layout(&self) -> Result<Layout, PlanError> {
        let mut next = LOW_RESERVE;
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in self.nodes_by_id() {
            let (id, memory) = (node.id, node.memory);
            if !memory.is_multiple_of(PARTITION_ALIGN) {
                return Err(PlanError::MisalignedMemory { node: id, memory });
            }
            if memory < MIN_NODE_MEMORY {
                return Err(PlanError::NodeMemoryTooSmall { node: id, memory });
            }
            let max = if id == NodeId(0) {
                MAX_NODE0_MEMORY
            } else {
                MAX_NODE_MEMORY
            };
            if memory > max {
                return Err(PlanError::NodeMemoryTooLarge {
                    node: id,
                    memory,
                    max,
                });
            }
            nodes.push((id, PhysAddr(next), memory));
            next = next.checked_add(memory).ok_or(PlanError::LayoutOverflow)?;
        }
        let size = self.shared_size;
        if !size.is_multiple_of(PARTITION_ALIGN) {
            return Err(PlanError::MisalignedShared { size });
        }
        if size < MIN_SHARED_SIZE {
            return Err(PlanError::SharedTooSmall { size });
        }
        let required_ram = next
            .checked_add(size)
            .and_then(|end| end.checked_add(ACPI_RESERVE))
            .ok_or(PlanError::LayoutOverflow)?;
        Ok(Layout {
            nodes,
            shared: (PhysAddr(next), size),
            required_ram,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Device;
    use alloc::{format, vec};
    use mint_abi::CoreIndex;

    fn node(id: u8, memory: u64) -> NodeSpec {
        NodeSpec {
            id: NodeId(id),
            cores: vec![CoreIndex(id)],
            memory,
            devices: vec![Device::Com(id + 1)],
            os: crate::Os::Mint,
        }
    }

    #[test]
    fn exact_numbers_in_id_order() {
        let mut plan = Plan::default_nodes(3).expect("in range");
        plan.nodes = vec![node(2, 32 * MIB), node(0, 64 * MIB), node(1, 128 * MIB)];
        plan.shared_size = 4 * MIB;
        let layout = plan.layout().expect("sizes are fine");
        assert_eq!(
            layout.nodes,
            [
                (NodeId(0), PhysAddr(0x20_0000), 64 * MIB),
                (NodeId(1), PhysAddr(0x420_0000), 128 * MIB),
                (NodeId(2), PhysAddr(0xC20_0000), 32 * MIB),
            ]
        );
        assert_eq!(layout.shared, (PhysAddr(0xE20_0000), 4 * MIB));
        assert_eq!(layout.required_ram, 0xE20_0000 + 4 * MIB + 8 * MIB);
        assert_eq!(
            layout.node(NodeId(1)),
            Some((PhysAddr(0x420_0000), 128 * MIB))
        );
        assert_eq!(layout.node(NodeId(3)), None);
        let regions: Vec<_> = layout.regions().map(|(r, b, s)| (r, b.0, s)).collect();
        assert_eq!(regions[3], (Region::Shared, 0xE20_0000, 4 * MIB));
        assert_eq!(regions[4], (Region::AcpiReserve, 0xE60_0000, 8 * MIB));
    }

    #[test]
    fn default_two_node_layout() {
        let layout = Plan::default().layout().expect("defaults are fine");
        assert_eq!(
            layout.nodes,
            [
                (NodeId(0), PhysAddr(2 * MIB), 64 * MIB),
                (NodeId(1), PhysAddr(66 * MIB), 64 * MIB),
            ]
        );
        assert_eq!(layout.shared, (PhysAddr(130 * MIB), 16 * MIB));
        assert_eq!(layout.required_ram, 154 * MIB);
    }

    #[test]
    fn node_memory_must_be_aligned() {
        let mut plan = Plan::default();
        plan.nodes[1].memory = 65 * MIB;
        let err = plan.layout().unwrap_err();
        assert_eq!(
            err,
            PlanError::MisalignedMemory {
                node: NodeId(1),
                memory: 65 * MIB
            }
        );
        let msg = format!("{err}");
        assert!(
            msg.starts_with("node 1: ") && msg.contains("65 MiB"),
            "{msg}"
        );
    }

    #[test]
    fn node_memory_has_a_minimum() {
        let mut plan = Plan::default();
        plan.nodes[0].memory = 14 * MIB;
        let err = plan.layout().unwrap_err();
        assert_eq!(
            err,
            PlanError::NodeMemoryTooSmall {
                node: NodeId(0),
                memory: 14 * MIB
            }
        );
        let msg = format!("{err}");
        assert!(
            msg.starts_with("node 0: ") && msg.contains("16 MiB"),
            "{msg}"
        );
    }

    #[test]
    fn node_memory_has_a_maximum_a_node_can_map() {
        let mut plan = Plan::default();
        plan.nodes[1].memory = MAX_NODE_MEMORY;
        assert!(plan.layout().is_ok(), "the largest window fits");
        plan.nodes[1].memory = MAX_NODE_MEMORY + 2 * MIB;
        let err = plan.layout().unwrap_err();
        assert_eq!(
            err,
            PlanError::NodeMemoryTooLarge {
                node: NodeId(1),
                memory: MAX_NODE_MEMORY + 2 * MIB,
                max: MAX_NODE_MEMORY
            }
        );
        assert!(format!("{err}").starts_with("node 1: "), "{err}");
        // Node 0 must end below 1 GiB.
        let mut plan = Plan::default();
        plan.nodes[0].memory = MAX_NODE0_MEMORY;
        assert!(plan.layout().is_ok());
        plan.nodes[0].memory = MAX_NODE0_MEMORY + 2 * MIB;
        assert!(matches!(
            plan.layout(),
            Err(PlanError::NodeMemoryTooLarge {
                node: NodeId(0),
                ..
            })
        ));
    }

    #[test]
    fn shared_size_rules() {
        let mut plan = Plan {
            shared_size: 5 * MIB,
            ..Plan::default()
        };
        let err = plan.layout().unwrap_err();
        assert_eq!(err, PlanError::MisalignedShared { size: 5 * MIB });
        assert!(format!("{err}").starts_with("shared region: "), "{err}");
        plan.shared_size = 2 * MIB;
        let err = plan.layout().unwrap_err();
        assert_eq!(err, PlanError::SharedTooSmall { size: 2 * MIB });
        assert!(format!("{err}").contains("4 MiB"), "{err}");
    }

    #[test]
    fn overflow_is_an_error() {
        let mut plan = Plan::default();
        // Node sizes are capped well before they could overflow...
        plan.nodes[0].memory = u64::MAX - (u64::MAX % PARTITION_ALIGN);
        assert!(matches!(
            plan.layout(),
            Err(PlanError::NodeMemoryTooLarge { .. })
        ));
        // ...the shared region is not.
        plan.nodes[0].memory = 64 * MIB;
        plan.shared_size = u64::MAX - (u64::MAX % PARTITION_ALIGN) - 128 * MIB;
        assert_eq!(plan.layout(), Err(PlanError::LayoutOverflow));
    }
}
