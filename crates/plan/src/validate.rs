//! Structural validation of a plan: ids, cores, devices, sizes and RAM.

use alloc::collections::BTreeMap;
use mint_abi::{CoreIndex, NodeId};

use crate::PlanError;
use crate::device::Device;
use crate::layout::Layout;
use crate::plan::{MAX_LINUX_CMDLINE, MAX_NODES, MIN_LINUX_MEMORY, NodeSpec, Os, Plan};

impl Plan {
    /// Checks everything that can be checked without the machine itself and
    /// returns the layout. Run on the host before boot and again by node 0.
    ///
    /// Rules: 1..=[`MAX_NODES`] nodes with ids exactly `0..n`; one core per
    /// node, cores distinct and below `machine.cpus`, node 0 on core 0 (the
    /// boot CPU); valid devices, each owned once, and exactly one UART per
    /// node; a Linux node not node 0, at least [`MIN_LINUX_MEMORY`], its
    /// console its only device; the size rules of [`Plan::layout`]; everything within
    /// `machine.memory`.
    pub fn validate(&self) -> Result<Layout, PlanError> {
        self.check_ids()?;
        let nodes = self.nodes_by_id();
        self.check_cores(&nodes)?;
        check_devices(&nodes)?;
        check_linux(&nodes)?;
        let layout = self.layout()?;
        self.check_ram(&layout)?;
        Ok(layout)
    }

    fn check_ids(&self) -> Result<(), PlanError> {
        let count = self.nodes.len();
        if count == 0 {
            return Err(PlanError::NoNodes);
        }
        if count > MAX_NODES {
            return Err(PlanError::TooManyNodes { count });
        }
        let mut seen = [false; MAX_NODES];
        for node in &self.nodes {
            let index = node.id.index();
            if index >= count {
                return Err(PlanError::NodeIdOutOfRange {
                    node: node.id,
                    count,
                });
            }
            // `index < count <= MAX_NODES`.
            if core::mem::replace(&mut seen[index], true) {
                return Err(PlanError::DuplicateNodeId { node: node.id });
            }
        }
        Ok(())
    }

    fn check_cores(&self, nodes: &[&NodeSpec]) -> Result<(), PlanError> {
        let mut owners: BTreeMap<CoreIndex, NodeId> = BTreeMap::new();
        for node in nodes {
            match node.cores.as_slice() {
                [] => return Err(PlanError::NoCores { node: node.id }),
                [_] => {}
                several => {
                    return Err(PlanError::SeveralCores {
                        node: node.id,
                        cores: several.to_vec(),
                    });
                }
            }
            for &core in &node.cores {
                if let Some(&owner) = owners.get(&core) {
                    return Err(PlanError::CoreOverlap {
                        node: node.id,
                        core,
                        owner,
                    });
                }
                if core.0 >= self.machine.cpus {
                    return Err(PlanError::MissingCore {
                        node: node.id,
                        core,
                        cpus: self.machine.cpus,
                    });
                }
                owners.insert(core, node.id);
            }
        }
        match owners.get(&CoreIndex(0)) {
            Some(&NodeId(0)) => Ok(()),
            _ => Err(PlanError::BootCore {
                cores: nodes
                    .iter()
                    .find(|node| node.id == NodeId(0))
                    .map(|node| node.cores.clone())
                    .unwrap_or_default(),
            }),
        }
    }

    fn check_ram(&self, layout: &Layout) -> Result<(), PlanError> {
        let ram = self.machine.memory;
        if layout.required_ram <= ram {
            return Ok(());
        }
        // Name the first region that ends past the RAM: one always does.
        let (region, base, size) = layout
            .regions()
            .find(|&(_, base, size)| base.0 + size > ram)
            .ok_or(PlanError::LayoutOverflow)?;
        Err(PlanError::BeyondRam {
            region,
            base,
            size,
            ram,
            required: layout.required_ram,
        })
    }
}

/// A Linux node: not node 0, at least [`MIN_LINUX_MEMORY`], only its
/// console UART, a command line of printable ASCII words that mint's own
/// words cannot be mistaken for.
fn check_linux(nodes: &[&NodeSpec]) -> Result<(), PlanError> {
    for node in nodes {
        let Os::Linux(boot) = &node.os else {
            continue;
        };
        if node.id == NodeId(0) {
            return Err(PlanError::LinuxOnNode0);
        }
        if node.memory < MIN_LINUX_MEMORY {
            return Err(PlanError::LinuxNodeTooSmall {
                node: node.id,
                memory: node.memory,
            });
        }
        if let Some(&device) = node.devices.iter().find(|d| !d.is_uart()) {
            return Err(PlanError::LinuxDevice {
                node: node.id,
                device,
            });
        }
        if let Some(cmdline) = &boot.cmdline {
            let reason = if cmdline.len() > MAX_LINUX_CMDLINE {
                Some("is longer than 1024 bytes")
            } else if !cmdline.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                Some("must be printable ASCII (no tabs, newlines or NUL)")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(PlanError::LinuxCmdline {
                    node: node.id,
                    reason,
                });
            }
        }
    }
    Ok(())
}

fn check_devices(nodes: &[&NodeSpec]) -> Result<(), PlanError> {
    let mut owners = BTreeMap::new();
    for node in nodes {
        let mut console = None;
        for &device in &node.devices {
            if !device.is_valid() {
                return Err(PlanError::InvalidDevice {
                    node: node.id,
                    device,
                });
            }
            // Several nodes may stand by for the e1000; everything else
            // has one owner.
            if let Some(&owner) = owners.get(&device)
                && (device != Device::E1000Standby || owner == node.id)
            {
                return Err(PlanError::DuplicateDevice {
                    node: node.id,
                    device,
                    owner,
                });
            }
            owners.insert(device, node.id);
            if device.is_uart() {
                if let Some(first) = console {
                    return Err(PlanError::SeveralConsoles {
                        node: node.id,
                        first,
                        second: device,
                    });
                }
                console = Some(device);
            }
        }
        if console.is_none() {
            return Err(PlanError::NoConsole { node: node.id });
        }
        if node.devices.contains(&Device::E1000) && node.devices.contains(&Device::E1000Standby) {
            return Err(PlanError::OwnerOnStandby { node: node.id });
        }
    }
    if let Some(&standby) = owners.get(&Device::E1000Standby)
        && !owners.contains_key(&Device::E1000)
    {
        return Err(PlanError::StandbyWithoutOwner { node: standby });
    }
    Ok(())
}

#[cfg(test)]
mod linux_tests {
    use super::*;
    use crate::LinuxBoot;
    use crate::size::MIB;
    use alloc::string::ToString;

    fn linux_plan(memory: u64) -> Plan {
        let mut plan = Plan::default_nodes(3).expect("in range");
        plan.nodes[1].memory = memory;
        plan.nodes[1].os = Os::Linux(LinuxBoot::default());
        plan.machine.memory = plan.layout().expect("sizes").required_ram;
        plan
    }

    #[test]
    fn a_linux_node_of_256_mib_validates() {
        let layout = linux_plan(256 * MIB).validate().expect("valid");
        assert_eq!(layout.node(NodeId(1)).map(|n| n.1), Some(256 * MIB));
    }

    #[test]
    fn a_linux_node_too_small_is_named() {
        let err = linux_plan(128 * MIB).validate().unwrap_err();
        assert_eq!(
            err,
            PlanError::LinuxNodeTooSmall {
                node: NodeId(1),
                memory: 128 * MIB
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("node 1") && text.contains("256 MiB"),
            "{text}"
        );
    }

    #[test]
    fn node_0_cannot_run_linux() {
        let mut plan = linux_plan(256 * MIB);
        plan.nodes[0].os = Os::Linux(LinuxBoot::default());
        assert_eq!(plan.validate(), Err(PlanError::LinuxOnNode0));
    }

    #[test]
    fn a_linux_node_gets_only_its_console() {
        let mut plan = linux_plan(256 * MIB);
        plan.nodes[1].devices.push(Device::E1000);
        assert_eq!(
            plan.validate(),
            Err(PlanError::LinuxDevice {
                node: NodeId(1),
                device: Device::E1000
            })
        );
    }

    #[test]
    fn a_linux_cmdline_is_printable_and_bounded() {
        let mut plan = linux_plan(256 * MIB);
        plan.nodes[1].os = Os::Linux(LinuxBoot {
            cmdline: Some("quiet loglevel=3".into()),
            ..LinuxBoot::default()
        });
        assert!(plan.validate().is_ok());
        for bad in ["a\nb", &"x".repeat(MAX_LINUX_CMDLINE + 1)] {
            plan.nodes[1].os = Os::Linux(LinuxBoot {
                cmdline: Some(bad.to_string()),
                ..LinuxBoot::default()
            });
            assert!(
                matches!(
                    plan.validate(),
                    Err(PlanError::LinuxCmdline {
                        node: NodeId(1),
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::layout::Region;
    use crate::size::MIB;
    use alloc::string::{String, ToString};
    use alloc::vec;
    use mint_abi::PhysAddr;

    fn message(plan: &Plan) -> (PlanError, String) {
        let err = plan.validate().unwrap_err();
        let msg = err.to_string();
        (err, msg)
    }

    #[test]
    fn defaults_validate() {
        let layout = Plan::default().validate().expect("valid");
        assert_eq!(layout, Plan::default().layout().expect("valid"));
    }

    #[test]
    fn needs_a_node() {
        let mut plan = Plan::default();
        plan.nodes.clear();
        assert_eq!(
            message(&plan),
            (PlanError::NoNodes, "the plan has no nodes".into())
        );
    }

    #[test]
    fn at_most_max_nodes() {
        let mut plan = Plan::default_nodes(4).expect("in range");
        let mut extra = plan.nodes[3].clone();
        extra.id = NodeId(4);
        plan.nodes.push(extra);
        let (err, msg) = message(&plan);
        assert_eq!(err, PlanError::TooManyNodes { count: 5 });
        assert!(
            msg.contains("5 nodes") && msg.contains("at most 4"),
            "{msg}"
        );
    }

    #[test]
    fn ids_have_no_gaps() {
        let mut plan = Plan::default();
        plan.nodes[1].id = NodeId(2);
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::NodeIdOutOfRange {
                node: NodeId(2),
                count: 2
            }
        );
        assert!(
            msg.starts_with("node 2: ") && msg.contains("0..=1"),
            "{msg}"
        );
    }

    #[test]
    fn ids_are_unique() {
        let mut plan = Plan::default();
        plan.nodes[1].id = NodeId(0);
        let (err, msg) = message(&plan);
        assert_eq!(err, PlanError::DuplicateNodeId { node: NodeId(0) });
        assert!(
            msg.starts_with("node 0: ") && msg.contains("twice"),
            "{msg}"
        );
    }

    #[test]
    fn every_node_needs_a_core() {
        let mut plan = Plan::default();
        plan.nodes[1].cores.clear();
        let (err, msg) = message(&plan);
        assert_eq!(err, PlanError::NoCores { node: NodeId(1) });
        assert!(msg.starts_with("node 1: "), "{msg}");
    }

    #[test]
    fn several_cores_are_not_supported_yet() {
        let mut plan = Plan::default();
        plan.machine.cpus = 4;
        plan.nodes[1].cores = vec![CoreIndex(1), CoreIndex(2)];
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::SeveralCores {
                node: NodeId(1),
                cores: vec![CoreIndex(1), CoreIndex(2)]
            }
        );
        assert!(
            msg.starts_with("node 1: ") && msg.contains("cpu1, cpu2"),
            "{msg}"
        );
        assert!(msg.contains("not supported yet"), "{msg}");
    }

    #[test]
    fn a_core_belongs_to_one_node() {
        let mut plan = Plan::default_nodes(3).expect("in range");
        plan.nodes[2].cores = vec![CoreIndex(1)];
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::CoreOverlap {
                node: NodeId(2),
                core: CoreIndex(1),
                owner: NodeId(1)
            }
        );
        assert_eq!(msg, "node 2: core cpu1 is already owned by node 1");
    }

    #[test]
    fn overlap_is_reported_in_id_order() {
        let mut plan = Plan::default();
        plan.nodes.reverse();
        plan.nodes[0].cores = vec![CoreIndex(0)];
        assert_eq!(
            message(&plan).1,
            "node 1: core cpu0 is already owned by node 0"
        );
    }

    #[test]
    fn cores_must_exist() {
        let mut plan = Plan::default();
        plan.nodes[1].cores = vec![CoreIndex(2)];
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::MissingCore {
                node: NodeId(1),
                core: CoreIndex(2),
                cpus: 2
            }
        );
        assert!(msg.starts_with("node 1: missing core cpu2"), "{msg}");
    }

    #[test]
    fn node_0_owns_the_boot_cpu() {
        let mut plan = Plan::default();
        plan.nodes[0].cores = vec![CoreIndex(1)];
        plan.nodes[1].cores = vec![CoreIndex(0)];
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::BootCore {
                cores: vec![CoreIndex(1)]
            }
        );
        assert!(
            msg.starts_with("node 0: must own core cpu0") && msg.contains("owns cpu1"),
            "{msg}"
        );
    }

    #[test]
    fn devices_must_exist() {
        let mut plan = Plan::default();
        plan.nodes[1].devices = vec![Device::Com(5)];
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::InvalidDevice {
                node: NodeId(1),
                device: Device::Com(5)
            }
        );
        assert!(msg.starts_with("node 1: ") && msg.contains("com5"), "{msg}");
    }

    #[test]
    fn a_device_belongs_to_one_node() {
        let mut plan = Plan::default();
        plan.nodes[0].devices.push(Device::E1000);
        plan.nodes[1].devices.push(Device::E1000);
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::DuplicateDevice {
                node: NodeId(1),
                device: Device::E1000,
                owner: NodeId(0)
            }
        );
        assert_eq!(msg, "node 1: device e1000 is already owned by node 0");

        let mut plan = Plan::default();
        plan.nodes[1].devices = vec![Device::Com(1)];
        assert_eq!(
            message(&plan).1,
            "node 1: device com1 is already owned by node 0"
        );
    }

    #[test]
    fn standby_nodes_need_an_owner_elsewhere() {
        let mut plan = Plan::default_nodes(3).unwrap();
        plan.nodes[1].devices.push(Device::E1000Standby);
        let (err, msg) = message(&plan);
        assert_eq!(err, PlanError::StandbyWithoutOwner { node: NodeId(1) });
        assert!(msg.starts_with("node 1: e1000-standby needs"), "{msg}");

        plan.nodes[1].devices.push(Device::E1000);
        let (err, msg) = message(&plan);
        assert_eq!(err, PlanError::OwnerOnStandby { node: NodeId(1) });
        assert!(msg.contains("cannot also stand by"), "{msg}");

        // One owner, any number of standby nodes.
        plan.nodes[1].devices.retain(|d| *d != Device::E1000Standby);
        plan.nodes[0].devices.push(Device::E1000Standby);
        plan.nodes[2].devices.push(Device::E1000Standby);
        assert!(plan.validate().is_ok());
        let twice = {
            let mut p = plan.clone();
            p.nodes[2].devices.push(Device::E1000Standby);
            message(&p).1
        };
        assert_eq!(twice, "node 2: device e1000-standby is listed twice");
    }

    #[test]
    fn a_device_listed_twice_by_one_node() {
        let mut plan = Plan::default();
        plan.nodes[1].devices = vec![Device::Com(2), Device::Com(2)];
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::DuplicateDevice {
                node: NodeId(1),
                device: Device::Com(2),
                owner: NodeId(1)
            }
        );
        assert_eq!(msg, "node 1: device com2 is listed twice");
    }

    #[test]
    fn every_node_needs_a_console() {
        let mut plan = Plan::default();
        plan.nodes[1].devices = vec![Device::E1000];
        let (err, msg) = message(&plan);
        assert_eq!(err, PlanError::NoConsole { node: NodeId(1) });
        assert!(msg.starts_with("node 1: has no UART"), "{msg}");
    }

    #[test]
    fn one_console_per_node() {
        let mut plan = Plan::default();
        plan.nodes[0].devices = vec![Device::Com(1), Device::E1000, Device::Com(3)];
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::SeveralConsoles {
                node: NodeId(0),
                first: Device::Com(1),
                second: Device::Com(3)
            }
        );
        assert!(
            msg.starts_with("node 0: ") && msg.contains("com1 and com3"),
            "{msg}"
        );
    }

    #[test]
    fn size_rules_apply() {
        let mut plan = Plan::default();
        plan.nodes[1].memory = 8 * MIB;
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::NodeMemoryTooSmall {
                node: NodeId(1),
                memory: 8 * MIB
            }
        );
        assert!(msg.starts_with("node 1: memory 8 MiB"), "{msg}");
    }

    #[test]
    fn memory_beyond_ram() {
        let mut plan = Plan::default_nodes(3).expect("in range");
        plan.machine.memory = 160 * MIB;
        let (err, msg) = message(&plan);
        assert_eq!(
            err,
            PlanError::BeyondRam {
                region: Region::Node(NodeId(2)),
                base: PhysAddr(130 * MIB),
                size: 64 * MIB,
                ram: 160 * MIB,
                required: 218 * MIB,
            }
        );
        assert_eq!(
            msg,
            "node 2: memory 0x8200000..0xc200000 beyond machine RAM 160 MiB \
             (the plan needs 218 MiB)"
        );
    }

    #[test]
    fn shared_region_and_acpi_reserve_count_too() {
        let mut plan = Plan::default();
        plan.machine.memory = 140 * MIB;
        let (err, msg) = message(&plan);
        assert!(
            matches!(
                err,
                PlanError::BeyondRam {
                    region: Region::Shared,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            msg.starts_with("shared region: ") && msg.contains("140 MiB"),
            "{msg}"
        );
        plan.machine.memory = 150 * MIB;
        let (err, msg) = message(&plan);
        assert!(
            matches!(
                err,
                PlanError::BeyondRam {
                    region: Region::AcpiReserve,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(msg.contains("150 MiB") && msg.contains("154 MiB"), "{msg}");
        plan.machine.memory = 154 * MIB;
        assert!(plan.validate().is_ok());
    }
}
