//! The compact one-line encoding that carries a plan on the kernel command line.
//!
//! ```text
//! mint.plan=1;cpus=2;mem=268435456;shared=16777216;n0=c0/m67108864/com1;n1=c1/m67108864/com2
//! ```
//!
//! The version comes first, then the machine's CPUs and RAM, the shared
//! size, and one `n<id>=c<cores>/m<bytes>[/<device>...][/linux]` token per
//! node (cores comma-separated), in plan order; `/linux` marks a node that
//! runs Linux (what it boots stays on the host). No token contains a space.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use mint_abi::{CoreIndex, NodeId};

use crate::PlanError;
use crate::plan::{LinuxBoot, Machine, NodeSpec, Os, Plan};

/// The last field of a node token when the node runs Linux.
const LINUX_MARK: &str = "linux";
use crate::size::parse_decimal;

/// The command-line key the encoding starts with (`mint.plan=`).
pub const CMDLINE_KEY: &str = "mint.plan";
/// The encoding version this build writes and reads.
pub const ENCODING_VERSION: u32 = 1;

impl Plan {
    /// Encodes the plan as one ASCII word (see the module docs).
    /// [`Plan::decode`] gives back exactly this plan as long as all its
    /// devices are valid ones (as [`Plan::validate`] ensures), but for a
    /// Linux node's host-side [`crate::LinuxBoot`] files, which are not
    /// carried.
    pub fn encode(&self) -> String {
        Encoded(self).to_string()
    }

    /// Decodes what [`Plan::encode`] wrote (surrounding whitespace allowed).
    /// Never panics; rejects other versions and any malformed token.
    /// The result is not validated.
    pub fn decode(text: &str) -> Result<Plan, PlanError> {
        let mut tokens = text.trim_ascii().split(';');
        let mut next = |key, expected| keyed(tokens.next().unwrap_or(""), key, expected);

        let version = next(CMDLINE_KEY, "mint.plan=<version>")?;
        if parse_decimal(version) != Some(u64::from(ENCODING_VERSION)) {
            return Err(PlanError::UnsupportedVersion {
                found: version.to_string(),
            });
        }
        let cpus = next("cpus", "cpus=<CPU count, 0..=255>")?;
        let cpus = parse_decimal(cpus)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| bad(cpus, "a CPU count, 0..=255"))?;
        let mem = next("mem", "mem=<RAM bytes>")?;
        let memory = parse_decimal(mem).ok_or_else(|| bad(mem, "RAM bytes in decimal"))?;
        let shared = next("shared", "shared=<shared region bytes>")?;
        let shared_size =
            parse_decimal(shared).ok_or_else(|| bad(shared, "shared region bytes in decimal"))?;
        let nodes = tokens.map(decode_node).collect::<Result<_, _>>()?;
        Ok(Plan {
            machine: Machine { cpus, memory },
            shared_size,
            nodes,
        })
    }

    /// Finds the `mint.plan=` word in a kernel command line and decodes it
    /// (the last one wins, as for kernel parameters).
    pub fn from_cmdline(cmdline: &str) -> Result<Plan, PlanError> {
        cmdline
            .split_ascii_whitespace()
            .rfind(|word| {
                word.strip_prefix(CMDLINE_KEY)
                    .is_some_and(|rest| rest.starts_with('='))
            })
            .ok_or(PlanError::NotInCmdline)
            .and_then(Plan::decode)
    }
}

/// Writes the encoding of a plan.
struct Encoded<'a>(&'a Plan);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.0;
        write!(
            f,
            "{CMDLINE_KEY}={ENCODING_VERSION};cpus={};mem={};shared={}",
            plan.machine.cpus, plan.machine.memory, plan.shared_size
        )?;
        for node in &plan.nodes {
            write!(f, ";n{}=c", node.id.0)?;
            for (i, core) in node.cores.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                write!(f, "{sep}{}", core.0)?;
            }
            write!(f, "/m{}", node.memory)?;
            for device in &node.devices {
                write!(f, "/{device}")?;
            }
            if node.os.is_linux() {
                f.write_str("/linux")?;
            }
        }
        Ok(())
    }
}

fn bad(token: &str, expected: &'static str) -> PlanError {
    PlanError::BadEncoding {
        token: token.to_string(),
        expected,
    }
}

/// The value of a `key=value` token.
fn keyed<'a>(token: &'a str, key: &str, expected: &'static str) -> Result<&'a str, PlanError> {
    token
        .strip_prefix(key)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or_else(|| bad(token, expected))
}

/// Decodes one `n<id>=c<cores>/m<bytes>[/<device>...]` token.
fn decode_node(token: &str) -> Result<NodeSpec, PlanError> {
    const NODE: &str = "n<id>=c<cores>/m<bytes>[/<device>...]";
    let (id, fields) = token
        .strip_prefix('n')
        .and_then(|rest| rest.split_once('='))
        .ok_or_else(|| bad(token, NODE))?;
    let id = parse_u8(id).ok_or_else(|| bad(token, "a node id, 0..=255"))?;
    let mut fields = fields.split('/');
    let cores = fields
        .next()
        .and_then(|field| field.strip_prefix('c'))
        .ok_or_else(|| bad(token, NODE))?;
    let cores = if cores.is_empty() {
        Vec::new()
    } else {
        cores
            .split(',')
            .map(|core| parse_u8(core).map(CoreIndex))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(token, "cores as c<index>[,<index>...], each 0..=255"))?
    };
    let memory = fields
        .next()
        .and_then(|field| field.strip_prefix('m'))
        .and_then(parse_decimal)
        .ok_or_else(|| bad(token, "node memory as m<bytes>"))?;
    let mut os = Os::Mint;
    let mut devices = Vec::new();
    for field in fields {
        if field == LINUX_MARK && !os.is_linux() {
            os = Os::Linux(LinuxBoot::default());
        } else if os.is_linux() {
            return Err(bad(token, "/linux last, after the devices"));
        } else {
            let device = field
                .parse()
                .map_err(|_| bad(token, "devices among com1..com4 and e1000"))?;
            devices.push(device);
        }
    }
    Ok(NodeSpec {
        id: NodeId(id),
        cores,
        memory,
        devices,
        os,
    })
}

fn parse_u8(digits: &str) -> Option<u8> {
    parse_decimal(digits).and_then(|n| u8::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::plan::MAX_NODES;
    use crate::size::MIB;
    use alloc::{format, vec};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    const EXAMPLE: &str = "mint.plan=1;cpus=2;mem=268435456;shared=16777216;\
                           n0=c0/m67108864/com1;n1=c1/m67108864/com2";

    #[test]
    fn encodes_the_documented_example() {
        let mut plan = Plan::default();
        plan.machine.memory = 256 * MIB;
        assert_eq!(plan.encode(), EXAMPLE);
        assert_eq!(Plan::decode(EXAMPLE), Ok(plan));
    }

    #[test]
    fn encodes_several_cores_and_devices_and_empty_lists() {
        let mut plan = Plan::default();
        plan.nodes[0].cores = vec![CoreIndex(0), CoreIndex(3)];
        plan.nodes[0].devices = vec![Device::Com(1), Device::E1000];
        plan.nodes[1].cores.clear();
        plan.nodes[1].devices.clear();
        let text = plan.encode();
        assert!(
            text.ends_with(";n0=c0,3/m67108864/com1/e1000;n1=c/m67108864"),
            "{text}"
        );
        assert_eq!(Plan::decode(&text), Ok(plan));
    }

    #[test]
    fn carries_that_a_node_runs_linux_but_not_its_files() {
        let mut plan = Plan::default();
        plan.nodes[1].memory = 256 * MIB;
        plan.nodes[1].os = Os::Linux(LinuxBoot {
            kernel: Some("/boot/vmlinuz".into()),
            ..LinuxBoot::default()
        });
        let text = plan.encode();
        assert!(text.ends_with(";n1=c1/m268435456/com2/linux"), "{text}");
        let decoded = Plan::decode(&text).expect("decodes");
        assert_eq!(decoded.nodes[1].os, Os::Linux(LinuxBoot::default()));
        assert_eq!(decoded.nodes[0].os, Os::Mint);
        let twice = text.replace("/linux", "/linux/linux");
        assert!(Plan::decode(&twice).is_err());
        let late_device = text.replace("/com2/linux", "/linux/com2");
        assert!(Plan::decode(&late_device).is_err());
    }

    #[test]
    fn finds_the_plan_in_a_command_line() {
        let plan = Plan::default_nodes(3).expect("in range");
        let cmdline = format!("console=ttyS0 {} quiet\n", plan.encode());
        assert_eq!(Plan::from_cmdline(&cmdline), Ok(plan));
        assert_eq!(
            Plan::from_cmdline("console=ttyS0 mint.planx=1"),
            Err(PlanError::NotInCmdline)
        );
        assert!(matches!(
            Plan::from_cmdline("mint.plan=7"),
            Err(PlanError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn rejects_other_versions() {
        for version in ["2", "0", "01x", "", "１"] {
            let text = EXAMPLE.replacen("=1;", &format!("={version};"), 1);
            let err = Plan::decode(&text).unwrap_err();
            assert_eq!(
                err,
                PlanError::UnsupportedVersion {
                    found: version.into()
                }
            );
            assert!(format!("{err}").contains("version 1"), "{err}");
        }
    }

    #[test]
    fn rejects_malformed_tokens_naming_them() {
        let cases = [
            ("", ""),
            ("mint.plan", "mint.plan"),
            ("plan=1;cpus=2", "plan=1"),
            ("mint.plan=1", ""),
            ("mint.plan=1;cpu=2;mem=1;shared=1", "cpu=2"),
            ("mint.plan=1;cpus=256;mem=1;shared=1", "256"),
            ("mint.plan=1;cpus=2;mem=-1;shared=1", "-1"),
            ("mint.plan=1;cpus=2;shared=1;mem=1", "shared=1"),
            ("mint.plan=1;cpus=2;mem=1;shared=1M", "1M"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;", ""),
            ("mint.plan=1;cpus=2;mem=1;shared=1;x0=c0/m1", "x0=c0/m1"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n0", "n0"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n=c0/m1", "n=c0/m1"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n300=c0/m1", "n300=c0/m1"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n0=0/m1", "n0=0/m1"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n0=c0,/m1", "n0=c0,/m1"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n0=c0", "n0=c0"),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n0=c0/1", "n0=c0/1"),
            (
                "mint.plan=1;cpus=2;mem=1;shared=1;n0=c0/m1/com5",
                "n0=c0/m1/com5",
            ),
            ("mint.plan=1;cpus=2;mem=1;shared=1;n0=c0/m1/", "n0=c0/m1/"),
            (
                "mint.plan=1;cpus=2;mem=1;shared=1;n0=c0/m1 com1",
                "n0=c0/m1 com1",
            ),
        ];
        for (text, culprit) in cases {
            match Plan::decode(text) {
                Err(err @ PlanError::BadEncoding { .. }) => {
                    let PlanError::BadEncoding { token, .. } = &err else {
                        unreachable!()
                    };
                    assert!(token.contains(culprit), "{text:?}: {err}");
                    assert!(format!("{err}").contains(&format!("{culprit:?}")), "{err}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    /// Fixed seed and no regression files: the same cases on every run.
    fn config() -> Config {
        Config {
            cases: 512,
            rng_seed: RngSeed::Fixed(0x6d69_6e74),
            failure_persistence: None,
            ..Config::default()
        }
    }

    fn device() -> impl Strategy<Value = Device> {
        prop_oneof![(1u8..=4).prop_map(Device::Com), Just(Device::E1000)]
    }

    /// Valid plans: node `i` (in shuffled order) owns a distinct core, with
    /// core 0 for node 0, a distinct UART, maybe the e1000, and aligned memory.
    fn valid_plan() -> impl Strategy<Value = Plan> {
        (1..=MAX_NODES as u8)
            .prop_flat_map(|n| {
                (
                    Just(n),
                    (n..=n + 4).prop_flat_map(move |cpus| {
                        let others: Vec<u8> = (1..cpus).collect();
                        (Just(cpus), Just(others).prop_shuffle())
                    }),
                    Just(vec![1u8, 2, 3, 4]).prop_shuffle(),
                    proptest::collection::vec(8u64..=256, usize::from(n)),
                    proptest::option::of(0..n),
                    2u64..=64,
                    0u64..=64,
                )
            })
            .prop_flat_map(|(n, (cpus, others), uarts, memories, nic, shared, spare)| {
                let nodes: Vec<NodeSpec> = (0..n)
                    .map(|i| {
                        let core = if i == 0 {
                            0
                        } else {
                            others[usize::from(i) - 1]
                        };
                        let mut devices = vec![Device::Com(uarts[usize::from(i)])];
                        if nic == Some(i) {
                            devices.push(Device::E1000);
                        }
                        NodeSpec {
                            id: NodeId(i),
                            cores: vec![CoreIndex(core)],
                            memory: memories[usize::from(i)] * 2 * MIB,
                            devices,
                            os: Os::Mint,
                        }
                    })
                    .collect();
                let mut plan = Plan {
                    machine: Machine { cpus, memory: 0 },
                    shared_size: shared * 2 * MIB,
                    nodes,
                };
                plan.machine.memory = plan.layout().map_or(0, |l| l.required_ram) + spare * MIB;
                Just(plan.nodes.clone())
                    .prop_shuffle()
                    .prop_map(move |nodes| Plan {
                        nodes,
                        ..plan.clone()
                    })
            })
    }

    /// Any plan shape at all (ids, cores, sizes unchecked), with real devices.
    fn any_plan() -> impl Strategy<Value = Plan> {
        let node = (
            any::<u8>(),
            proptest::collection::vec(any::<u8>().prop_map(CoreIndex), 0..4),
            any::<u64>(),
            proptest::collection::vec(device(), 0..4),
        )
            .prop_map(|(id, cores, memory, devices)| NodeSpec {
                id: NodeId(id),
                cores,
                memory,
                devices,
                os: Os::Mint,
            });
        (
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(node, 0..6),
        )
            .prop_map(|(cpus, memory, shared_size, nodes)| Plan {
                machine: Machine { cpus, memory },
                shared_size,
                nodes,
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn valid_plans_round_trip(plan in valid_plan()) {
            prop_assert!(plan.validate().is_ok(), "{:?}", plan.validate());
            let text = plan.encode();
            prop_assert!(text.is_ascii() && !text.contains(char::is_whitespace));
            prop_assert_eq!(Plan::decode(&text), Ok(plan));
        }

        #[test]
        fn any_plan_round_trips(plan in any_plan()) {
            prop_assert_eq!(Plan::decode(&plan.encode()), Ok(plan));
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = Plan::decode(&text);
            let _ = Plan::from_cmdline(&text);
        }

        #[test]
        fn decoding_near_misses_never_panics(
            text in "mint\\.plan=1;cpus=[0-9]{1,3};mem=[0-9]{0,21};shared=[0-9m]{0,21}(;n[0-9]{0,3}=c[0-9,]{0,8}(/[mcoe0-9]{0,22}){0,4}){0,5};?"
        ) {
            let _ = Plan::decode(&text);
        }
    }
}
