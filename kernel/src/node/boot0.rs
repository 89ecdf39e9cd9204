//! Node 0's bring-up of the machine: read what the loader and ACPI say,
//! check the plan against it, prepare every other node's partition (its
//! copy of the kernel, page tables, boot info), move node 0 onto its own
//! tables, set up the shared region, then start the other nodes with
//! INIT-SIPI-SIPI and run the machine (ping round, monitor, report/shell).

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mint_abi::node::{FaultKind, NodeState};
use mint_abi::shared::{ABI_VERSION, Incident, MAX_NODES, SHARED_MAGIC};
use mint_abi::{NodeId, PhysAddr};
use mint_plan::{Layout, MachineFacts, Plan};

use crate::arch::boot::{self, TRAMPOLINE_PHYS};
use crate::arch::interrupts;
use crate::arch::partition::{BootMemory, PhysRange};
use crate::arch::{apic, cpu, firmware, gdt, pci, pit, serial};
use crate::layout::{self, BOOT_INFO_MAGIC, KERNEL_VIRT, NodeBootInfo, WINDOW_VIRT, WindowLayout};
use crate::{mem, println, shared};

use super::{fault, monitor, ping, shell};

/// Partition size node 0 assumes for its early heap, before it has a plan.
const EARLY_PARTITION: u64 = mint_plan::MIN_NODE_MEMORY;

/// What `mint` asked this boot to do (`mint.mode=` on the command line).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Boot, ping, report, power off.
    Boot,
    /// Boot, ping, then node 0's shell until `exit`.
    Run,
    /// Boot, ping, one generator run against the debug NIC, report, power off.
    Gen,
    /// Boot, ping, one run of host frames into the real e1000, report,
    /// power off (`mint nic`).
    Nic,
    /// Boot, ping, host frames into the e1000 while node 0 hands it back
    /// and forth, report, power off (`mint handover`).
    Handover,
}

/// A `mint handover` run: `mint.handover=FROM:TO:ROUNDS:SPACING_MS`.
#[derive(Clone, Copy, Debug)]
pub struct HandoverPlan {
    pub from: NodeId,
    pub to: NodeId,
    pub rounds: u32,
    /// Time between two hand-overs (the traffic goes on throughout).
    pub spacing_ms: u32,
}

/// The validated machine description node 0 keeps for the report.
pub struct MachineRecord {
    pub plan: Plan,
    pub layout: Layout,
    pub mode: Mode,
    pub x2apic: bool,
    /// The node the debug NIC's driver runs on (the generator's target).
    pub nic_target: Option<NodeId>,
    /// The run `mint gen` asked for.
    pub gen_run: Option<mint_traffic::GenConfig>,
    /// Fault injection for that run (`mint.corrupt=`, `mint.forget_ipi=`,
    /// `mint.stale=`).
    pub gen_faults: crate::nic::support::Faults,
    /// Hidden fault injection for `mint nic` (`mint.nic_stop=K:HOW`): node
    /// 0 stops the e1000's owner once its progress reached K (see `nicrun`).
    pub nic_stop: Option<super::nicrun::OwnerStop>,
    /// The hand-over run `mint handover` asked for.
    pub handover: Option<HandoverPlan>,
    /// The other nodes, prepared and waiting for their INIT-SIPI-SIPI.
    starts: Vec<NodeStart>,
    /// The Linux nodes among them, prepared the same way (`crate::linux`).
    linux: Vec<crate::linux::LinuxStart>,
}

static RECORD: spin::Once<MachineRecord> = spin::Once::new();

pub fn record() -> &'static MachineRecord {
    RECORD
        .get()
        .expect("machine record read before node 0 set it")
}

/// Node 0 ends the boot with a machine-readable error the CLI picks up.
fn refuse(what: &str) -> ! {
    println!("MINT-ERROR {what}");
    cpu::qemu_exit(2)
}

/// Node 0's entry from the PVH stub (boot page tables: the first 4 GiB
/// identity mapped, the first GiB again at KERNEL_VIRT).
#[unsafe(no_mangle)]
extern "C" fn pvh_main(start_info: u32) -> ! {
    serial::init(mint_plan::Device::Com(1).io_port().unwrap_or(0x3F8));
    gdt::init();
    interrupts::init();
    interrupts::set_exception_handler(fault::on_exception);
    // The image is built for SSE4.1 and PCLMULQDQ (the payload check's
    // CRC, cli/src/kernel.rs): say so rather than fault later on a CPU
    // without (the heap does not exist yet: no allocation here). Best
    // effort: the compiler may have used SSE4.1 in what ran before.
    if let Some(missing) = cpu::missing_features() {
        println!(
            "MINT-ERROR this CPU lacks {missing}, which the node kernel is built for (QEMU: -cpu max under TCG, host under KVM, have it)"
        );
        cpu::qemu_exit(2)
    }
    let early = WindowLayout::new(EARLY_PARTITION).unwrap_or_else(|| {
        println!(
            "MINT-ERROR kernel image too large for a {} MiB partition",
            EARLY_PARTITION >> 20
        );
        cpu::qemu_exit(2)
    });
    // SAFETY: node 0's partition starts at physical 2 MiB, is at least
    // EARLY_PARTITION long (checked against the memory map below before
    // anything else is placed there) and is mapped at KERNEL_VIRT.
    unsafe { mem::init_heap(WINDOW_VIRT + early.heap_off, early.heap_len) };

    let boot = firmware::read_start_info(u64::from(start_info)).unwrap_or_else(|e| refuse(e));
    let plan =
        Plan::from_cmdline(&boot.cmdline).unwrap_or_else(|e| refuse(&alloc::format!("plan: {e}")));
    let cpus = firmware::madt_cpus(boot.rsdp).unwrap_or_else(|e| refuse(&e));
    // Read now: the ACPI tables are not mapped once node 0 has its own tables.
    let irq_facts = firmware::madt_irq_facts(boot.rsdp).unwrap_or_else(|e| refuse(&e));
    let facts = MachineFacts {
        cpus,
        ram: merge_ranges(boot.ram),
    };
    let layout = plan
        .check_machine(&facts)
        .unwrap_or_else(|e| refuse(&alloc::format!("plan does not fit this machine: {e}")));
    let n = plan.nodes.len();
    let (base0, size0) = (layout.nodes[0].1.as_u64(), layout.nodes[0].2);
    // The plan's layout puts node 0 where PVH loaded this image (and keeps
    // it below 1 GiB, which the boot tables map at KERNEL_VIRT).
    if base0 != WINDOW_VIRT - KERNEL_VIRT {
        refuse("node 0's partition must start where the kernel is loaded (2 MiB)");
    }
    let window0 =
        WindowLayout::new(size0).unwrap_or_else(|| refuse("node 0's partition is too small"));
    layout::set_partition(base0, size0);
    if let Some(port) = console_of(&plan, NodeId(0)) {
        serial::init(port);
    }
    println!(
        "node0: mint ABI v{ABI_VERSION}, {n} nodes, {} CPUs in MADT, plan checked",
        facts.cpus.len()
    );

    pit::mask_legacy_pic();
    let tsc_hz = super::tsc::calibrate(&boot.cmdline).unwrap_or_else(|e| refuse(&e));
    let mode = match boot
        .cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("mint.mode="))
    {
        Some("run") => Mode::Run,
        Some("gen") => Mode::Gen,
        Some("nic") => Mode::Nic,
        Some("handover") => Mode::Handover,
        _ => Mode::Boot,
    };
    let handover = parse_handover(&boot.cmdline, &plan, mode).unwrap_or_else(|e| refuse(&e));
    let (nic_target, gen_run) =
        parse_debug_nic(&boot.cmdline, n, mode).unwrap_or_else(|e| refuse(&e));
    // Fault injection of generator runs: `mint.corrupt=N` (descriptor
    // write-backs), `mint.forget_ipi=N` (lost IPIs), `mint.stale=N` (frames
    // of another run).
    let knob = |key: &str| match boot
        .cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
    {
        Some(v) => v
            .parse::<u32>()
            .unwrap_or_else(|_| refuse(&alloc::format!("{key}{v}: not a number"))),
        None => 0,
    };
    let gen_faults = crate::nic::support::Faults {
        corrupt_every: knob("mint.corrupt="),
        forget_ipi_every: knob("mint.forget_ipi="),
        stale_every: knob("mint.stale="),
    };
    let nic_stop = super::nicrun::parse_stop(&boot.cmdline).unwrap_or_else(|e| refuse(&e));
    let faults = parse_faults(&boot.cmdline, n).unwrap_or_else(|e| refuse(&e));
    let selftest = match boot
        .cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("mint.selftest="))
    {
        Some(name) => super::selftest::SelfTest::parse(name)
            .unwrap_or_else(|| refuse(&alloc::format!("mint.selftest={name}: no such self-test"))),
        None => super::selftest::SelfTest::None,
    };
    super::set_self_test(selftest);

    // A real e1000 in the plan: find it on the PCI bus; its owner gets its
    // register frame mapped and its location in the boot info.
    let nic = match plan
        .nodes
        .iter()
        .find(|n| n.devices.contains(&mint_plan::Device::E1000))
    {
        None => None,
        Some(owner) => {
            let f = pci::find(&[(0x8086, 0x100E)]).unwrap_or_else(|| {
                refuse(&alloc::format!(
                    "{}: the plan gives it an e1000, but the PCI bus has no 82540EM",
                    owner.id
                ))
            });
            let bar = f
                .bar0
                .unwrap_or_else(|| refuse(&alloc::format!("e1000 at {}: no memory BAR", f.at)));
            let (was, command) = pci::enable_memory_and_dma(f.at);
            let on = |bit: u32| {
                if u32::from(command) & bit != 0 {
                    "on"
                } else {
                    "off"
                }
            };
            println!(
                "node0: gives {} the e1000 (PCI {}): command register {command:#06x} (memory {}, bus master {}, I/O {}; was {was:#06x}), registers {:#x}+{:#x} mapped in 4 KiB pages",
                owner.id,
                f.at,
                on(pci::COMMAND_MEMORY),
                on(pci::COMMAND_BUS_MASTER),
                on(pci::COMMAND_IO),
                bar,
                mint_e1000::regs::REGISTER_SPACE.next_multiple_of(4096),
            );
            let overrides: Vec<mint_irq::request::SourceOverride> = irq_facts
                .overrides
                .iter()
                .map(|o| mint_irq::request::SourceOverride {
                    isa: o.isa,
                    gsi: o.gsi,
                    level: o.level,
                    active_low: o.active_low,
                })
                .collect();
            let source = mint_irq::request::intx_source(f.interrupt_line, &overrides);
            let encoded = mint_irq::request::Request {
                device: crate::irq::NIC0,
                op: mint_irq::request::Op::Register(source),
            }
            .encode()[1];
            println!(
                "node0: the e1000's INTx: PCI interrupt line {} -> {source:?} (MADT: {} interrupt source overrides; I/O APICs {:x?})",
                f.interrupt_line,
                overrides.len(),
                irq_facts.io_apics,
            );
            Some((
                owner.id,
                source,
                super::RealNic {
                    bar,
                    pci: f.at.packed(),
                    line: f.interrupt_line,
                    source: encoded,
                    role: 0,
                },
            ))
        }
    };
    // Its owner drives it from boot; standby nodes get the same register
    // frames mapped for a hand-over. Its ring lives in the shared region's
    // NIC area, which must fit.
    if nic.is_some() && mint_abi::real_nic::area_offset(layout.shared.1).is_none() {
        refuse(&alloc::format!(
            "the e1000 needs the shared region's last {} MiB for its ring and buffers; the region is {} MiB",
            mint_abi::real_nic::AREA_SIZE >> 20,
            layout.shared.1 >> 20
        ));
    }
    let nic_of = |id: NodeId| {
        let Some((owner, _, info)) = nic else {
            return super::RealNic::default();
        };
        let standby = plan
            .nodes
            .iter()
            .any(|n| n.id == id && n.devices.contains(&mint_plan::Device::E1000Standby));
        if id == owner {
            super::RealNic {
                role: super::NIC_OWNER,
                ..info
            }
        } else if standby {
            super::RealNic {
                role: super::NIC_STANDBY,
                ..info
            }
        } else {
            super::RealNic::default()
        }
    };
    super::set_real_nic(nic_of(NodeId(0)));

    // Every other node's partition, through the identity map; then node 0
    // moves onto its own tables and can reach no other partition again.
    let shared = PhysRange {
        base: layout.shared.0.as_u64(),
        size: layout.shared.1,
    };
    // SAFETY: node 0, boot page tables (first 4 GiB identity mapped), no
    // other node started yet; `base0..+size0` is node 0's partition.
    let boot_memory = unsafe {
        BootMemory::new(PhysRange {
            base: base0,
            size: size0,
        })
    };
    let mut starts = Vec::new();
    let is_linux = |id: NodeId| plan.nodes.iter().any(|n| n.id == id && n.os.is_linux());
    for (id, base, size) in layout.nodes.iter().copied().skip(1) {
        if is_linux(id) {
            continue;
        }
        let part = PhysRange {
            base: base.as_u64(),
            size,
        };
        let start = prepare_node(&boot_memory, &plan, id, part, shared, nic_of(id), selftest)
            .unwrap_or_else(|e| refuse(&e));
        starts.push(start);
    }
    let linux = crate::linux::prepare_all(
        &boot_memory,
        &boot.modules,
        &plan,
        &layout,
        |id| plan.apic_id_of(&facts, id).unwrap_or_default(),
        tsc_hz,
    )
    .unwrap_or_else(|e| refuse(&e));
    boot_memory
        .clear_shared(shared)
        .unwrap_or_else(|e| refuse(&e));
    boot_memory
        .switch_to_node0_tables(
            &window0,
            shared,
            Some(nic_of(NodeId(0)).bar)
                .filter(|&b| b != 0)
                .map(PhysRange::e1000_registers),
        )
        .unwrap_or_else(|e| refuse(&alloc::format!("node 0: {e}")));
    super::seal(&window0).unwrap_or_else(|e| refuse(&alloc::format!("node 0: sealing: {e}")));
    // The interrupt layer, now that node 0's tables map the I/O APIC (the
    // MADT must name one I/O APIC there, with GSI base 0).
    if irq_facts.io_apics != [(crate::arch::ioapic::IOAPIC_BASE, 0)] {
        refuse(&alloc::format!(
            "the interrupt layer needs one I/O APIC at {:#x} with GSI base 0; the MADT lists {:x?}",
            crate::arch::ioapic::IOAPIC_BASE,
            irq_facts.io_apics
        ));
    }
    let apic_ids: Vec<(NodeId, mint_abi::ApicId)> = plan
        .nodes
        .iter()
        .map(|node| {
            (
                node.id,
                plan.apic_id_of(&facts, node.id).unwrap_or_default(),
            )
        })
        .collect();
    let candidates: Vec<NodeId> = plan
        .nodes
        .iter()
        .filter(|n| n.devices.iter().any(|d| d.reaches_e1000()))
        .map(|n| n.id)
        .collect();
    match crate::irq::init_node0(&apic_ids, nic.map(|n| (n.0, n.1, candidates.as_slice()))) {
        Ok(line) => println!("{line}"),
        Err(e) => refuse(&e),
    }
    // SAFETY: the rest of node 0's window after the early heap is its own
    // unused memory, mapped by its tables.
    unsafe {
        let end_early = early.heap_off + early.heap_len;
        mem::extend_heap((window0.heap_off + window0.heap_len).saturating_sub(end_early))
    };

    // The shared region (zeroed above): fill the header, publish magic last.
    let header = shared::header();
    header.version.store(ABI_VERSION, Ordering::Relaxed);
    header.node_count.store(n as u32, Ordering::Relaxed);
    header.size.store(shared.size, Ordering::Relaxed);
    header.tsc_hz.store(tsc_hz, Ordering::Relaxed);
    header.tsc_source.store(
        super::tsc::source_code(
            super::tsc::calibration().and_then(|c| c.decision.chosen.map(|c| c.0)),
        ),
        Ordering::Relaxed,
    );
    for node in &plan.nodes {
        let apic = plan.apic_id_of(&facts, node.id).unwrap_or_default();
        header.apic_ids[node.id.index()].store(apic.0, Ordering::Relaxed);
        header.inject_fault[node.id.index()]
            .store(faults[node.id.index()] as u32, Ordering::Relaxed);
    }
    let nic_slot = nic_target.map_or(0, |t| u32::from(t.0) + 1);
    header.debug_nic_target.store(nic_slot, Ordering::Relaxed);
    super::set_shared_window(shared.base, shared.size);
    header.magic.store(SHARED_MAGIC, Ordering::Release);
    shared::slot(NodeId(0)).set_state(NodeState::Booting);

    RECORD.call_once(|| MachineRecord {
        plan,
        layout,
        mode,
        x2apic: cpu::has_x2apic(),
        nic_target,
        gen_run,
        gen_faults,
        nic_stop,
        handover,
        starts,
        linux,
    });
    super::start_node(NodeId(0), n as u8, window0)
}

/// Trampoline parameters of one node to start.
struct NodeStart {
    id: NodeId,
    cr3: u64,
    boot_info_virt: u64,
}

/// Node 0 after its own start: start the others, ping, watch, report.
/// `real_nic`: the e1000's socket buffers and MAC when node 0 receives on
/// it (a hand-over run with node 0 among its nodes).
pub fn run_machine(real_nic: Option<(mint_skb::Consumer, [u8; 6])>) -> ! {
    // Linux nodes first: their boot (seconds) overlaps everything below.
    for s in &record().linux {
        crate::linux::start(s);
    }
    for s in &record().starts {
        start_node(s);
    }
    let irq_test = super::self_test() == super::selftest::SelfTest::IrqRefusal;
    // (An owner that is node 0 keeps its pin masked: nothing to wait for.)
    let nic_elsewhere = record()
        .plan
        .nodes
        .iter()
        .any(|n| n.id != NodeId(0) && n.devices.contains(&mint_plan::Device::E1000));
    if irq_test && nic_elsewhere {
        // The non-owners' requests must meet a registered, unmasked NIC:
        // wait (bounded) for its owner's bring-up before anyone asks.
        let deadline = cpu::rdtsc() + super::ms_to_ticks(30_000);
        while !crate::irq::owner_ready(crate::irq::NIC0) && cpu::rdtsc() < deadline {
            x86_64::instructions::hlt();
        }
        if !crate::irq::owner_ready(crate::irq::NIC0) {
            println!("node0: the e1000's owner did not register and unmask it within 30 s");
        }
    }
    shared::header().go.store(1, Ordering::Release);
    if irq_test {
        super::selftest::irq_refusal();
    }
    ping::round();
    monitor::settle();
    // After the settle: a node injected with a crash has been seen, and
    // the layer knows (the test hands the NIC to it).
    if super::self_test() == super::selftest::SelfTest::Handover {
        super::selftest::handover();
    }
    crate::linux::wait_for_init(&record().linux, LINUX_INIT_TIMEOUT_MS);
    // A Linux node running mint's module comes up after the ping round:
    // node 0 pings it now, and waits for its own round (to every node).
    let linux_up = crate::linux::wait_for_module(&record().linux);
    if !linux_up.is_empty() {
        ping::ping_peers(&linux_up);
        monitor::settle();
        crate::linux::wait_for_beats(&linux_up);
    }
    monitor::print_report();
    match record().mode {
        Mode::Boot => monitor::power_off(),
        Mode::Run => shell::run(),
        Mode::Gen => {
            let rec = record();
            match (rec.gen_run.as_ref(), rec.nic_target) {
                (Some(cfg), Some(target)) => {
                    if let Err(e) = super::generator::run(cfg, target, rec.gen_faults, true) {
                        println!("MINT-ERROR {e}");
                    }
                }
                _ => println!("MINT-ERROR gen mode without a run or a target"),
            }
            monitor::power_off()
        }
        Mode::Nic => {
            let rec = record();
            let owner = rec
                .plan
                .nodes
                .iter()
                .find(|n| n.devices.contains(&mint_plan::Device::E1000))
                .map(|n| n.id);
            match (rec.gen_run.as_ref(), owner) {
                (Some(cfg), Some(owner)) if owner != NodeId(0) => {
                    if let Err(e) = super::nicrun::run(cfg, owner, rec.nic_stop) {
                        println!("MINT-ERROR {e}");
                    }
                }
                (_, Some(NodeId(0))) => {
                    println!(
                        "MINT-ERROR nic mode: node 0 runs the machine and cannot receive on the e1000"
                    )
                }
                _ => println!(
                    "MINT-ERROR nic mode without a run (mint.gen=) or an e1000 in the plan"
                ),
            }
            monitor::power_off()
        }
        Mode::Handover => {
            let rec = record();
            match (rec.gen_run.as_ref(), rec.handover) {
                (Some(cfg), Some(h)) => {
                    let receiver = real_nic.map(|(skbs, mac)| super::real_receiver(skbs, mac));
                    if let Err(e) = super::handover::run(cfg, h, receiver) {
                        println!("MINT-ERROR {e}");
                    }
                }
                _ => {
                    println!("MINT-ERROR handover mode without a run (mint.gen=) or mint.handover=")
                }
            }
            monitor::power_off()
        }
    }
}

/// `mint.handover=FROM:TO:ROUNDS:SPACING_MS`, checked against the plan:
/// FROM owns the e1000, TO stands by for it.
fn parse_handover(cmdline: &str, plan: &Plan, mode: Mode) -> Result<Option<HandoverPlan>, String> {
    let Some(spec) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("mint.handover="))
    else {
        return if mode == Mode::Handover {
            Err(String::from("handover mode needs mint.handover="))
        } else {
            Ok(None)
        };
    };
    let bad = || alloc::format!("mint.handover={spec}: expected FROM:TO:ROUNDS:SPACING_MS");
    let f: Vec<u32> = spec
        .split(':')
        .map(|v| v.parse::<u32>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [from, to, rounds, spacing_ms] = f[..] else {
        return Err(bad());
    };
    let has = |id: u32, d: mint_plan::Device| {
        plan.nodes
            .iter()
            .any(|n| u32::from(n.id.0) == id && n.devices.contains(&d))
    };
    if !has(from, mint_plan::Device::E1000) {
        return Err(alloc::format!(
            "mint.handover={spec}: node {from} does not own the e1000 in the plan"
        ));
    }
    if !has(to, mint_plan::Device::E1000Standby) {
        return Err(alloc::format!(
            "mint.handover={spec}: node {to} does not stand by for the e1000 in the plan"
        ));
    }
    Ok(Some(HandoverPlan {
        from: NodeId(from as u8),
        to: NodeId(to as u8),
        rounds,
        spacing_ms,
    }))
}

/// INIT-SIPI-SIPI one node and wait until it reports Running (or fails).
fn start_node(s: &NodeStart) {
    let apic = super::apic_of(s.id);
    boot::install_trampoline(
        s.cr3,
        boot::kernel_stack_top(),
        s.boot_info_virt,
        boot::ap_entry_addr(),
    );
    let slot = shared::slot(s.id);
    slot.set_state(NodeState::Booting);
    let sent = apic::send_init(apic)
        .and_then(|()| {
            super::delay_us(10_000);
            apic::send_startup(apic, (TRAMPOLINE_PHYS >> 12) as u8)
        })
        .and_then(|()| {
            super::delay_us(200);
            apic::send_startup(apic, (TRAMPOLINE_PHYS >> 12) as u8)
        });
    if let Err(e) = sent {
        // Not given up yet: the core may have taken it; the start
        // deadline below decides.
        println!("node0: starting {}: {e}", s.id);
    }
    // Generous: a loaded host may leave the new core's virtual CPU
    // unscheduled for seconds; only a node that never starts costs this.
    let deadline = cpu::rdtsc() + super::ms_to_ticks(START_TIMEOUT_MS);
    while slot.state() == Some(NodeState::Booting) && cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    // Given up only if the slot still says booting when node 0 marks it
    // crashed (compare-and-swap): a node that reached running in between
    // has started, and must not be parked.
    let gave_up = slot.state() == Some(NodeState::Booting)
        && slot.declare_crashed_from(NodeState::Booting, "did not start within 15 s");
    if gave_up {
        shared::slot(NodeId(0)).count(Incident::WaitExpired);
        // Park the core (wait-for-SIPI) so a late start cannot run the
        // next node's trampoline parameters.
        if let Err(e) = apic::send_init(apic) {
            println!("node0: parking {}: {e}", s.id);
        }
        println!("node0: {} did not start", s.id);
        return;
    }
    match slot.state() {
        Some(NodeState::Running) => {
            println!("node0: started {} on {apic}", s.id);
            crate::irq::set_node_state(s.id, NodeState::Running);
            // Before any cross-core figure: how far its TSC is from ours.
            super::tsc::sync_with(s.id);
        }
        other => println!("node0: {} ended its start as {:?}", s.id, other),
    }
}

/// How long node 0 waits, before its report, for the Linux nodes' `/init`
/// (8-10 s after the SIPI under software emulation).
const LINUX_INIT_TIMEOUT_MS: u64 = 60_000;

/// How long node 0 waits for a started node to report running.
const START_TIMEOUT_MS: u64 = 15_000;

fn console_of(plan: &Plan, id: NodeId) -> Option<u16> {
    plan.nodes
        .iter()
        .find(|n| n.id == id)?
        .devices
        .iter()
        .find_map(|d| d.io_port())
}

/// Gives node `id` its kernel copy, page tables and boot info in `part`.
fn prepare_node(
    memory: &BootMemory,
    plan: &Plan,
    id: NodeId,
    part: PhysRange,
    shared: PhysRange,
    nic: super::RealNic,
    selftest: super::selftest::SelfTest,
) -> Result<NodeStart, String> {
    let w =
        WindowLayout::new(part.size).ok_or_else(|| alloc::format!("{id}: partition too small"))?;
    let console = console_of(plan, id).ok_or_else(|| alloc::format!("{id}: no console UART"))?;
    let info = NodeBootInfo {
        magic: BOOT_INFO_MAGIC,
        node: id.0,
        node_count: plan.nodes.len() as u8,
        console_port: console,
        partition_base: part.base,
        partition_size: part.size,
        shared_phys: shared.base,
        shared_size: shared.size,
        nic_bar: nic.bar,
        nic_pci: nic.pci,
        nic_irq: nic.line,
        nic_source: nic.source,
        nic_role: nic.role,
        selftest: selftest as u8,
    };
    let cr3 = memory
        .prepare_node(part, &w, shared, &info)
        .map_err(|e| alloc::format!("{id}: {e}"))?;
    Ok(NodeStart {
        id,
        cr3,
        boot_info_virt: WINDOW_VIRT + w.boot_info_off,
    })
}

/// `mint.fault=NODE:KIND` words: which node injects which fault.
fn parse_faults(cmdline: &str, n: usize) -> Result<[FaultKind; MAX_NODES], String> {
    let mut faults = [FaultKind::None; MAX_NODES];
    for word in cmdline.split_whitespace() {
        let Some(spec) = word.strip_prefix("mint.fault=") else {
            continue;
        };
        let (node, kind) = spec
            .split_once(':')
            .ok_or_else(|| alloc::format!("fault '{spec}': expected NODE:KIND"))?;
        let node: usize = node
            .parse()
            .ok()
            .filter(|&i| i < n)
            .ok_or_else(|| alloc::format!("fault '{spec}': no node {node} in the plan"))?;
        faults[node] = FaultKind::parse(kind)
            .ok_or_else(|| alloc::format!("fault '{spec}': unknown kind {kind}"))?;
    }
    Ok(faults)
}

/// `mint.debug=SUPPORT:TARGET` and `mint.gen=k=v,k=v`: where the debug NIC
/// goes and what `mint gen` runs. The shell (`mint run`) gets the NIC on
/// node 1 by default.
fn parse_debug_nic(
    cmdline: &str,
    n: usize,
    mode: Mode,
) -> Result<(Option<NodeId>, Option<mint_traffic::GenConfig>), String> {
    let word = |key: &str| cmdline.split_whitespace().find_map(|w| w.strip_prefix(key));
    let target = match word("mint.debug=") {
        Some(spec) => {
            let (support, target) = spec
                .split_once(':')
                .ok_or_else(|| alloc::format!("debug NIC '{spec}': expected SUPPORT:TARGET"))?;
            if support != "0" {
                return Err(alloc::format!(
                    "debug NIC '{spec}': the support node must be node 0"
                ));
            }
            let t: usize = target
                .parse()
                .ok()
                .filter(|&t| t > 0 && t < n)
                .ok_or_else(|| {
                    alloc::format!("debug NIC '{spec}': target must be a node 1..{}", n - 1)
                })?;
            Some(NodeId(t as u8))
        }
        None if n >= 2 && matches!(mode, Mode::Run | Mode::Gen) => Some(NodeId(1)),
        None => None,
    };
    let gen_run = match word("mint.gen=") {
        Some(kv) => Some(
            mint_traffic::GenConfig::from_kv(&kv.replace(',', " "))
                .and_then(|c| c.validate().map(|()| c))
                .map_err(|e| alloc::format!("gen: {e}"))?,
        ),
        None => None,
    };
    if mode == Mode::Gen && (gen_run.is_none() || target.is_none()) {
        return Err(String::from("gen mode needs mint.gen= and a target node"));
    }
    Ok((target, gen_run))
}

/// Adjacent RAM ranges of the memory map, merged.
fn merge_ranges(mut ram: Vec<(PhysAddr, u64)>) -> Vec<(PhysAddr, u64)> {
    ram.sort_by_key(|r| r.0);
    let mut out: Vec<(PhysAddr, u64)> = Vec::new();
    for (base, size) in ram {
        match out.last_mut() {
            Some(last) if last.0.as_u64() + last.1 == base.as_u64() => last.1 += size,
            _ => out.push((base, size)),
        }
    }
    out
}
