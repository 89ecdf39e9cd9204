//! Reading a plan from a TOML file (feature `toml`, host side).
//!
//! ```toml
//! [machine]            # optional; cpus defaults to max core + 1,
//! cpus = 2             # memory to the layout's minimum
//! memory = "256M"
//! [shared]             # optional; size defaults to 16M
//! size = "16M"
//! [[node]]
//! id = 0
//! cores = [0]
//! memory = "64M"       # or a plain integer of bytes
//! devices = ["com1"]
//! os = "mint"          # or "linux", then optionally:
//! # kernel = "/boot/vmlinuz-6.1.0-57-amd64"   (default: Debian's linux-image-amd64)
//! # initrd = "initrd.cpio"                    (default: mint's own /init)
//! # cmdline = "loglevel=7"                    (appended to mint's words)
//! ```

use std::fmt;

use mint_abi::{CoreIndex, NodeId};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::PlanError;
use crate::device::Device;
use crate::plan::{DEFAULT_SHARED_SIZE, LinuxBoot, Machine, NodeSpec, Os, Plan};
use crate::size::parse_size;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    machine: Option<MachineSection>,
    shared: Option<SharedSection>,
    #[serde(rename = "node", default)]
    nodes: Vec<NodeSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineSection {
    cpus: Option<u8>,
    memory: Option<Size>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedSection {
    size: Size,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    id: u8,
    cores: Vec<u8>,
    memory: Size,
    devices: Vec<DeviceName>,
    os: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
    cmdline: Option<String>,
}

impl NodeSection {
    /// What the node runs: `os` (default `"mint"`), and for Linux its files.
    fn os(&mut self) -> Result<Os, PlanError> {
        let node = NodeId(self.id);
        match self.os.as_deref() {
            None | Some("mint") => {
                let keys = [
                    ("kernel", &self.kernel),
                    ("initrd", &self.initrd),
                    ("cmdline", &self.cmdline),
                ];
                match keys.iter().find(|(_, v)| v.is_some()) {
                    Some(&(key, _)) => Err(PlanError::LinuxKeyOnMintNode { node, key }),
                    None => Ok(Os::Mint),
                }
            }
            Some("linux") => Ok(Os::Linux(LinuxBoot {
                kernel: self.kernel.take(),
                initrd: self.initrd.take(),
                cmdline: self.cmdline.take(),
            })),
            Some(other) => Err(PlanError::UnknownOs {
                node,
                name: other.to_string(),
            }),
        }
    }
}

/// A size written as a string (`"64M"`) or an integer of bytes.
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = Size;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64M\", \"1G\", \"512K\" or an integer of bytes")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<Size, E> {
                Ok(Size(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<Size, E> {
                u64::try_from(bytes)
                    .map(Size)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Size, E> {
                parse_size(text).map(Size).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A device written by name (`"com1"`, `"e1000"`).
struct DeviceName(Device);

impl<'de> Deserialize<'de> for DeviceName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map(DeviceName).map_err(de::Error::custom)
    }
}

impl Plan {
    /// Parses a TOML plan file and fills in the defaults: 16 MiB shared,
    /// `machine.cpus` one past the highest core, `machine.memory` the
    /// layout's minimum (so the sizes must obey [`Plan::layout`]'s rules
    /// when it is left out). The result is not otherwise validated.
    pub fn from_toml_str(text: &str) -> Result<Plan, PlanError> {
        let file: File = toml::from_str(text).map_err(|err| PlanError::Toml(err.to_string()))?;
        let nodes: Vec<NodeSpec> = file
            .nodes
            .into_iter()
            .map(|mut node| {
                let os = node.os()?;
                Ok(NodeSpec {
                    id: NodeId(node.id),
                    cores: node.cores.into_iter().map(CoreIndex).collect(),
                    memory: node.memory.0,
                    devices: node.devices.into_iter().map(|DeviceName(d)| d).collect(),
                    os,
                })
            })
            .collect::<Result<_, PlanError>>()?;
        let machine = file.machine.unwrap_or(MachineSection {
            cpus: None,
            memory: None,
        });
        let cpus = machine.cpus.unwrap_or_else(|| {
            let highest = nodes.iter().flat_map(|node| &node.cores).max();
            highest.map_or(0, |core| core.0.saturating_add(1))
        });
        let mut plan = Plan {
            machine: Machine { cpus, memory: 0 },
            shared_size: file
                .shared
                .map_or(DEFAULT_SHARED_SIZE, |shared| shared.size.0),
            nodes,
        };
        plan.machine.memory = match machine.memory {
            Some(Size(memory)) => memory,
            None => plan.layout()?.required_ram,
        };
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::MIB;

    const EXAMPLE: &str = r#"
[machine]
cpus = 2
memory = "256M"

[shared]
size = "16M"

[[node]]
id = 0
cores = [0]
memory = "64M"
devices = ["com1"]

[[node]]
id = 1
cores = [1]
memory = 67108864
devices = ["com2", "e1000"]
"#;

    fn err_message(text: &str) -> String {
        match Plan::from_toml_str(text) {
            Err(PlanError::Toml(message)) => message,
            other => panic!("expected a TOML error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_file() {
        let plan = Plan::from_toml_str(EXAMPLE).expect("parses");
        let mut expected = Plan::default();
        expected.machine.memory = 256 * MIB;
        expected.nodes[1].devices.push(Device::E1000);
        assert_eq!(plan, expected);
        assert!(plan.validate().is_ok());
    }

    #[test]
    fn fills_in_defaults() {
        let text = r#"
[[node]]
id = 0
cores = [0]
memory = "64M"
devices = ["com1"]
[[node]]
id = 1
cores = [3]
memory = "32M"
devices = ["com2"]
"#;
        let plan = Plan::from_toml_str(text).expect("parses");
        assert_eq!(plan.shared_size, 16 * MIB);
        assert_eq!(
            plan.machine,
            Machine {
                cpus: 4,
                memory: (2 + 64 + 32 + 16 + 8) * MIB
            }
        );
        assert_eq!(
            plan.machine.memory,
            plan.validate().expect("valid").required_ram
        );
    }

    #[test]
    fn default_memory_needs_valid_sizes() {
        let text = "[[node]]\nid = 0\ncores = [0]\nmemory = \"63M\"\ndevices = [\"com1\"]\n";
        assert_eq!(
            Plan::from_toml_str(text),
            Err(PlanError::MisalignedMemory {
                node: NodeId(0),
                memory: 63 * MIB
            })
        );
    }

    #[test]
    fn malformed_toml_reports_line_and_column() {
        let message = err_message("[machine]\ncpus = = 2\n");
        assert!(message.contains("line 2, column"), "{message}");
        let err = Plan::from_toml_str("[[node]\n").unwrap_err();
        assert!(err.to_string().starts_with("invalid plan file: "), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let message = err_message("[machine]\ncpus = 2\ncolour = \"red\"\n");
        assert!(
            message.contains("colour") && message.contains("line 3"),
            "{message}"
        );
        let message = err_message(&EXAMPLE.replace("[shared]", "[sharde]"));
        assert!(message.contains("sharde"), "{message}");
        let message = err_message(&format!("{EXAMPLE}irq = 4\n"));
        assert!(message.contains("irq"), "{message}");
    }

    #[test]
    fn bad_values_name_the_value_and_place() {
        let message = err_message(&EXAMPLE.replace("\"64M\"", "\"64Q\""));
        assert!(
            message.contains("64Q") && message.contains("line 12, column 10"),
            "{message}"
        );
        let message = err_message(&EXAMPLE.replace("\"com2\"", "\"com9\""));
        assert!(
            message.contains("com9") && message.contains("line 19"),
            "{message}"
        );
        let message = err_message(&EXAMPLE.replace("67108864", "-1"));
        assert!(message.contains("-1"), "{message}");
        let message = err_message(&EXAMPLE.replace("id = 1", "id = 256"));
        assert!(message.contains("256"), "{message}");
        let message = err_message(&EXAMPLE.replace("cores = [1]\n", ""));
        assert!(message.contains("cores"), "{message}");
    }
}

#[cfg(test)]
mod linux_tests {
    use super::*;

    const LINUX: &str = r#"
[[node]]
id = 0
cores = [0]
memory = "64M"
devices = ["com1"]
[[node]]
id = 1
cores = [1]
memory = "256M"
devices = ["com2"]
os = "linux"
kernel = "/boot/vmlinuz"
cmdline = "loglevel=7"
"#;

    #[test]
    fn reads_a_linux_node() {
        let plan = Plan::from_toml_str(LINUX).expect("parses");
        assert_eq!(plan.nodes[0].os, Os::Mint);
        assert_eq!(
            plan.nodes[1].os,
            Os::Linux(LinuxBoot {
                kernel: Some("/boot/vmlinuz".into()),
                initrd: None,
                cmdline: Some("loglevel=7".into()),
            })
        );
        assert!(plan.validate().is_ok());
    }

    #[test]
    fn linux_keys_need_os_linux_and_os_is_known() {
        let mint_with_kernel = LINUX.replace("os = \"linux\"\n", "");
        assert_eq!(
            Plan::from_toml_str(&mint_with_kernel),
            Err(PlanError::LinuxKeyOnMintNode {
                node: NodeId(1),
                key: "kernel"
            })
        );
        let unknown = LINUX.replace("\"linux\"", "\"plan9\"");
        let err = Plan::from_toml_str(&unknown).unwrap_err();
        assert!(err.to_string().contains("plan9"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use crate::{MIB, Plan};

    /// The example shipped with mint stays a valid plan.
    #[test]
    fn shipped_example_is_valid() {
        let plan = Plan::from_toml_str(include_str!("../../../examples/four-nodes.toml"))
            .expect("example parses");
        let layout = plan.validate().expect("example validates");
        assert_eq!(plan.nodes.len(), 4);
        assert_eq!(plan.machine.cpus, 4);
        assert_eq!(layout.shared.1, 32 * MIB);
        assert!(layout.required_ram <= plan.machine.memory);
    }

    /// The Linux example: node 1 runs Debian's kernel between two mint nodes.
    #[test]
    fn shipped_linux_example_is_valid() {
        let plan = Plan::from_toml_str(include_str!("../../../examples/linux.toml"))
            .expect("example parses");
        plan.validate().expect("example validates");
        let os: Vec<&str> = plan.nodes.iter().map(|n| n.os.name()).collect();
        assert_eq!(os, ["mint", "linux", "mint"]);
    }
}
