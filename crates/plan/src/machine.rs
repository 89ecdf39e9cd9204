//! Checking a plan against the machine node 0 actually booted on.

use alloc::vec::Vec;

use mint_abi::{ApicId, NodeId, PhysAddr};

use crate::PlanError;
use crate::layout::{Layout, Region};
use crate::plan::Plan;

/// What node 0 found about the machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineFacts {
    /// Enabled processors in MADT order: `cpus[i]` is the APIC ID of
    /// `CoreIndex(i)`.
    pub cpus: Vec<ApicId>,
    /// Usable RAM ranges `(base, size)` from the boot memory map (adjacent
    /// ranges of the same RAM should be merged: a region must fit in one).
    pub ram: Vec<(PhysAddr, u64)>,
}

impl MachineFacts {
    /// The usable range whose bytes include `addr`, if any.
    fn range_holding(&self, addr: u64) -> Option<(PhysAddr, u64)> {
        self.ram
            .iter()
            .copied()
            .find(|&(base, size)| addr >= base.0 && addr - base.0 < size)
    }
}

impl Plan {
    /// [`Plan::validate`]s the plan, then checks it against the machine:
    /// every node's core is in the MADT, and every node partition and the
    /// shared region lies entirely inside one usable RAM range.
    pub fn check_machine(&self, facts: &MachineFacts) -> Result<Layout, PlanError> {
        let layout = self.validate()?;
        for node in self.nodes_by_id() {
            for &core in &node.cores {
                if usize::from(core.0) >= facts.cpus.len() {
                    return Err(PlanError::CoreNotPresent {
                        node: node.id,
                        core,
                        present: facts.cpus.len(),
                    });
                }
            }
        }
        let partitions = layout
            .regions()
            .filter(|&(region, _, _)| region != Region::AcpiReserve);
        for (region, base, size) in partitions {
            let containing = facts.range_holding(base.0);
            // `range_holding` guarantees `base >= ram_base`.
            let inside = containing.is_some_and(|(ram_base, ram_size)| {
                ram_size
                    .checked_sub(size)
                    .is_some_and(|room| base.0 - ram_base.0 <= room)
            });
            if !inside {
                return Err(PlanError::NotInRam {
                    region,
                    base,
                    size,
                    containing,
                });
            }
        }
        Ok(layout)
    }

    /// The APIC ID of the (first) core of node `id`, as the MADT lists it.
    pub fn apic_id_of(&self, facts: &MachineFacts, id: NodeId) -> Option<ApicId> {
        let node = self.nodes.iter().find(|node| node.id == id)?;
        let core = node.cores.first()?;
        facts.cpus.get(usize::from(core.0)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::MIB;
    use alloc::string::ToString;
    use alloc::vec;
    use mint_abi::CoreIndex;

    /// What QEMU `-smp 2 -m 256M` reports: low RAM and RAM from 1 MiB up to
    /// just below the ACPI tables.
    fn qemu() -> MachineFacts {
        MachineFacts {
            cpus: vec![ApicId(0), ApicId(1)],
            ram: vec![(PhysAddr(0), 0x9_FC00), (PhysAddr(MIB), 254 * MIB)],
        }
    }

    fn plan() -> Plan {
        let mut plan = Plan::default();
        plan.machine.memory = 256 * MIB;
        plan
    }

    #[test]
    fn fits_the_machine() {
        let layout = plan().check_machine(&qemu()).expect("fits");
        assert_eq!(layout, plan().validate().expect("valid"));
    }

    #[test]
    fn validates_first() {
        let mut plan = plan();
        plan.nodes[1].devices.clear();
        assert_eq!(
            plan.check_machine(&qemu()),
            Err(PlanError::NoConsole { node: NodeId(1) })
        );
    }

    #[test]
    fn cores_must_be_in_the_madt() {
        let facts = MachineFacts {
            cpus: vec![ApicId(0)],
            ..qemu()
        };
        let err = plan().check_machine(&facts).unwrap_err();
        assert_eq!(
            err,
            PlanError::CoreNotPresent {
                node: NodeId(1),
                core: CoreIndex(1),
                present: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "node 1: core cpu1 not present on this machine (MADT lists 1 CPUs)"
        );
    }

    #[test]
    fn a_partition_past_the_end_of_its_range() {
        let facts = MachineFacts {
            ram: vec![(PhysAddr(MIB), 100 * MIB)],
            ..qemu()
        };
        let err = plan().check_machine(&facts).unwrap_err();
        assert_eq!(
            err,
            PlanError::NotInRam {
                region: Region::Node(NodeId(1)),
                base: PhysAddr(66 * MIB),
                size: 64 * MIB,
                containing: Some((PhysAddr(MIB), 100 * MIB)),
            }
        );
        assert_eq!(
            err.to_string(),
            "node 1: 0x4200000..0x8200000 runs past the usable RAM range 0x100000..0x6500000"
        );
    }

    #[test]
    fn a_partition_split_across_ranges() {
        let facts = MachineFacts {
            ram: vec![(PhysAddr(MIB), 64 * MIB), (PhysAddr(65 * MIB), 191 * MIB)],
            ..qemu()
        };
        let err = plan().check_machine(&facts).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::NotInRam {
                    region: Region::Node(NodeId(0)),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("node 0: 0x200000..0x4200000 runs past"),
            "{err}"
        );
    }

    #[test]
    fn shared_region_outside_ram() {
        let facts = MachineFacts {
            ram: vec![(PhysAddr(MIB), 129 * MIB), (PhysAddr(200 * MIB), 56 * MIB)],
            ..qemu()
        };
        let err = plan().check_machine(&facts).unwrap_err();
        assert_eq!(
            err,
            PlanError::NotInRam {
                region: Region::Shared,
                base: PhysAddr(130 * MIB),
                size: 16 * MIB,
                containing: None,
            }
        );
        assert_eq!(
            err.to_string(),
            "shared region: 0x8200000..0x9200000 is not in usable RAM \
             (no usable range holds 0x8200000)"
        );
    }

    #[test]
    fn apic_ids_follow_the_madt() {
        let facts = MachineFacts {
            cpus: vec![ApicId(0), ApicId(2), ApicId(4)],
            ..qemu()
        };
        let mut plan = Plan::default();
        plan.nodes[1].cores = vec![CoreIndex(2)];
        assert_eq!(plan.apic_id_of(&facts, NodeId(0)), Some(ApicId(0)));
        assert_eq!(plan.apic_id_of(&facts, NodeId(1)), Some(ApicId(4)));
        assert_eq!(plan.apic_id_of(&facts, NodeId(2)), None);
        assert_eq!(plan.apic_id_of(&qemu(), NodeId(1)), None);
    }
}
