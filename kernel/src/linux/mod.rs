//! Linux nodes: node 0 loads a stock, unpatched bzImage into a node's
//! partition, tells it about only what it owns, and starts it on its core.
//!
//! What the kernel is given (x86 boot protocol, 64-bit entry):
//! - its protected-mode part at a 2 MiB-aligned address of at least 16 MiB
//!   inside the partition, 2 MiB past its start ([`HEAD_LEN`]: the zero
//!   page, command line, the start's stack and identity map, marked
//!   reserved in its e820);
//! - its initrd at the top of the partition;
//! - an e820 map of only its partition plus a private slice below 1 MiB
//!   (for its real-mode trampoline);
//! - per-node ACPI tables in node 0's low area (`stub`): hardware-reduced,
//!   no I/O APIC, no 8259s, no RTC, no 8042, no VGA; and an MP table with
//!   no I/O APIC where Linux looks first (`mint_linux_boot::mptable`), so
//!   it does not read the firmware's and probe the shared I/O APIC;
//! - a command line keeping it off shared devices: `nr_cpus=1 noapic
//!   pci=off tsc=reliable tsc_early_khz=<node 0's>`, `acpi=noirq
//!   acpi_sci=edge` (so it keeps the shared ELCR as it finds it: the
//!   FADT's SCI is IRQ 0, whose ELCR bit is always clear, i.e. edge), its
//!   console through
//!   `earlyprintk` on its own UART only (`8250.nr_uarts=0`: the 8250 driver
//!   probes no port, so no other node's UART is touched); `oops=panic`, so
//!   a kernel oops ends the node (crashed, with the oops in its reason)
//!   instead of leaving a half-dead kernel that still beats its heartbeat;
//! - a start through the AP trampoline into the entry stub, which loads
//!   the protocol's GDT and enters the kernel at load + 0x200, rsi = the
//!   zero page.
//!
//! Node 0 sees the stub's TSC stamp as the core enters Linux, the words
//! mint's `/init` writes into the node's loader block through /dev/mem,
//! and, once `/init` has loaded mint's module (`linux/module`, given the
//! shared region as `mint_shared=PHYS,SIZE mint_node=K`), the node's slot
//! like any node's: Running, a heartbeat, pings answered on the mailbox
//! vector it published.

mod stub;

use alloc::string::String;
use alloc::vec::Vec;

use core::sync::atomic::Ordering;

use mint_abi::node::NodeState;
use mint_abi::{ApicId, NodeId, PhysAddr};
use mint_linux_boot::bzimage::{BzImage, ENTRY_64_OFFSET};
use mint_linux_boot::pack::{Kind, Pack};
use mint_linux_boot::params::{self, BootSpec, E820Entry, E820Kind};
use mint_plan::{Layout, Plan};

use crate::arch::boot::{self, TRAMPOLINE_PHYS};
use crate::arch::partition::{BootMemory, PhysRange};
use crate::arch::{apic, cpu};
use crate::println;

const MIB: u64 = 1 << 20;
/// The partition's first 2 MiB: zero page, command line, stack, tables.
pub const HEAD_LEN: u64 = 2 * MIB;
const ZERO_PAGE_OFF: u64 = 0;
const CMDLINE_OFF: u64 = 0x1000;
const STACK_TOP_OFF: u64 = 0x1_0000;
const TABLES_OFF: u64 = 0x1_0000;
const TABLES_LEN: u64 = 0x1_0000;
/// The lowest load address the kernel accepts (Debian: PHYSICAL_START).
const MIN_LOAD: u64 = 16 * MIB;
/// How long node 0 waits for the core to enter Linux after the SIPI.
const ENTER_TIMEOUT_MS: u64 = 2_000;

/// A Linux node, prepared and waiting for its INIT-SIPI-SIPI.
pub struct LinuxStart {
    pub id: NodeId,
    apic: ApicId,
    cr3: u64,
    zero_page: PhysAddr,
    stack_top: PhysAddr,
    load: PhysAddr,
    /// Its initrd is mint's own, whose `/init` reports to node 0.
    reports_init: bool,
}

/// What node 0 saw of a started Linux node.
#[derive(Clone, Copy, Default)]
struct Seen {
    sipi_tsc: u64,
    entered_tsc: u64,
    /// Whether its `/init` is mint's, which reports.
    reports_init: bool,
    init: Option<(u64, u64)>,
}

static SEEN: spin::Mutex<[Seen; mint_abi::shared::MAX_NODES]> = spin::Mutex::new(
    [Seen {
        sipi_tsc: 0,
        entered_tsc: 0,
        reports_init: false,
        init: None,
    }; mint_abi::shared::MAX_NODES],
);

/// Node `id`'s private slice below 1 MiB (`(base, size)`): node 1 has
/// 0x80000 (124 KiB, below the EBDA), node 2 and 3 the 128 KiB below.
fn low_slice(id: NodeId) -> (PhysAddr, u64) {
    let base = 0x8_0000 - u64::from(id.0.saturating_sub(1)) * 0x2_0000;
    (PhysAddr(base), 0x1_f000)
}

/// The one PVH module, as a pack, if it lies clear of every partition and
/// the shared region.
///
/// # Safety
/// Node 0's boot page tables must identity-map the module, and the slice
/// must not be used once they are gone.
unsafe fn pack_at(module: (PhysAddr, u64), layout: &Layout) -> Result<Pack<'static>, String> {
    let (base, size) = module;
    let layout_end = layout.shared.0.as_u64() + layout.shared.1;
    if base.as_u64() < layout_end || base.as_u64().checked_add(size).is_none_or(|e| e > 4 << 30) {
        return Err(alloc::format!(
            "Linux nodes: the module at {base}+{size:#x} overlaps the partitions or the shared region (they end at {layout_end:#x})"
        ));
    }
    // SAFETY: the loader placed `size` bytes there (start info), identity
    // mapped by the boot tables (guaranteed by the caller), outside every
    // region anything writes (checked above).
    let bytes = unsafe { core::slice::from_raw_parts(base.as_u64() as *const u8, size as usize) };
    Pack::parse(bytes).map_err(|e| alloc::format!("Linux nodes: {e}"))
}

/// Prepares every Linux node of the plan: its files from the one PVH
/// module, its partition, its loader block. Node 0 only, before it leaves
/// its boot tables (the module and the partitions are reached through
/// their identity map).
pub fn prepare_all(
    memory: &BootMemory,
    modules: &[(PhysAddr, u64)],
    plan: &Plan,
    layout: &Layout,
    apic_of: impl Fn(NodeId) -> ApicId,
    tsc_hz: u64,
) -> Result<Vec<LinuxStart>, String> {
    let linux: Vec<NodeId> = plan
        .nodes
        .iter()
        .filter(|n| n.os.is_linux())
        .map(|n| n.id)
        .collect();
    if linux.is_empty() {
        return Ok(Vec::new());
    }
    let &[module] = modules else {
        return Err(alloc::format!(
            "Linux nodes: expected one module (mint's pack, QEMU's -initrd), the loader gave {}",
            modules.len()
        ));
    };
    // SAFETY: node 0 runs on its boot tables (identity map of 4 GiB) until
    // `switch_to_node0_tables`, after this returns; the pack is not kept.
    let pack = unsafe { pack_at(module, layout) }?;
    let mut starts = Vec::new();
    for id in linux {
        let (base, size) = layout
            .node(id)
            .ok_or_else(|| alloc::format!("{id}: not in the layout"))?;
        let console = plan
            .nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.devices.iter().find_map(|d| d.io_port()))
            .ok_or_else(|| alloc::format!("{id}: no console UART"))?;
        let part = PhysRange {
            base: base.as_u64(),
            size,
        };
        let shared = (layout.shared.0.as_u64(), layout.shared.1);
        let start = prepare(
            memory,
            &pack,
            id,
            part,
            apic_of(id),
            console,
            tsc_hz,
            shared,
        )
        .map_err(|e| alloc::format!("{id} (linux): {e}"))?;
        starts.push(start);
    }
    Ok(starts)
}

/// One Linux node: kernel, initrd, command line, zero page, identity map,
/// loader block.
#[allow(clippy::too_many_arguments)]
fn prepare(
    memory: &BootMemory,
    pack: &Pack<'_>,
    id: NodeId,
    part: PhysRange,
    apic: ApicId,
    console: u16,
    tsc_hz: u64,
    shared: (u64, u64),
) -> Result<LinuxStart, String> {
    let kernel = pack
        .find(id, Kind::Kernel)
        .ok_or("the pack holds no kernel for it")?;
    let image = BzImage::parse(kernel).map_err(|e| alloc::format!("kernel: {e}"))?;
    let (load, kernel_end) = place_kernel(memory, part, &image)?;
    let initrd = match pack.find(id, Kind::Initrd) {
        Some(bytes) if !bytes.is_empty() => {
            Some(place_initrd(memory, part, &image, kernel_end, bytes)?)
        }
        _ => None,
    };
    let extra = pack
        .find(id, Kind::Cmdline)
        .map(|b| core::str::from_utf8(b).map_err(|_| "its cmdline is not UTF-8"))
        .transpose()?
        .unwrap_or("");
    let cmdline = command_line(id, console, tsc_hz, shared, extra);
    if cmdline.len() as u64 > u64::from(image.cmdline_size()) {
        return Err(alloc::format!(
            "a command line of {} bytes is longer than the kernel takes ({})",
            cmdline.len(),
            image.cmdline_size()
        ));
    }
    let mut line = Vec::from(cmdline.as_bytes());
    line.push(0);
    memory.write(part, CMDLINE_OFF, &line)?;

    let spec = BootSpec {
        e820: e820(id, part),
        cmdline: PhysAddr(part.base + CMDLINE_OFF),
        initrd,
        rsdp: PhysAddr(stub::block(id).as_u64() + stub::ACPI_OFF),
    };
    let zero_page = params::zero_page(&image, &spec).map_err(|e| alloc::format!("{e}"))?;
    memory.write(part, ZERO_PAGE_OFF, &zero_page)?;
    let low = PhysRange {
        base: 0,
        size: 2 * MIB,
    };
    let tables = PhysRange {
        base: part.base + TABLES_OFF,
        size: TABLES_LEN,
    };
    let cr3 = memory.identity_tables(tables, &[low, part])?;
    let acpi = mint_linux_boot::acpi::build(spec.rsdp, apic);
    stub::install(id, PhysAddr(load + ENTRY_64_OFFSET), &acpi);
    stub::install_mp_table(&mint_linux_boot::mptable::build());

    let (slice, slice_len) = low_slice(id);
    println!(
        "node0: {id} runs Linux: bzImage protocol {}.{:02}, kernel at {load:#x} (init_size {} MiB), initrd {}, e820 {slice}+{slice_len:#x} and {:#x}+{:#x}, ACPI at {}, command line: {cmdline}",
        image.version() >> 8,
        image.version() & 0xff,
        image.init_size() >> 20,
        match initrd {
            Some((at, len)) => alloc::format!("{at}+{len:#x}"),
            None => String::from("none"),
        },
        part.base + HEAD_LEN,
        part.size - HEAD_LEN,
        spec.rsdp,
    );
    Ok(LinuxStart {
        id,
        apic,
        cr3,
        zero_page: PhysAddr(part.base + ZERO_PAGE_OFF),
        stack_top: PhysAddr(part.base + STACK_TOP_OFF),
        load: PhysAddr(load),
        reports_init: pack.find(id, Kind::MintInit).is_some(),
    })
}

/// Copies the protected-mode part to the first suitable address past the
/// head (2 MiB aligned, at least 16 MiB, the kernel's alignment) with room
/// for `init_size`; returns that address and the end of the room.
fn place_kernel(
    memory: &BootMemory,
    part: PhysRange,
    image: &BzImage<'_>,
) -> Result<(u64, u64), String> {
    let end = part.base + part.size;
    let load = (part.base + HEAD_LEN)
        .max(MIN_LOAD)
        .next_multiple_of(image.kernel_alignment().max(2 * MIB));
    let kernel_end = load + image.init_size();
    if kernel_end > end {
        return Err(alloc::format!(
            "the kernel needs {:#x} bytes from {load:#x} (init_size); the partition ends at {end:#x}",
            image.init_size()
        ));
    }
    memory.write(part, load - part.base, image.protected_mode())?;
    Ok((load, kernel_end))
}

/// Copies the initrd to the top of the partition (4 KiB aligned), above
/// the kernel's room and below its `initrd_addr_max`.
fn place_initrd(
    memory: &BootMemory,
    part: PhysRange,
    image: &BzImage<'_>,
    kernel_end: u64,
    bytes: &[u8],
) -> Result<(PhysAddr, u64), String> {
    let len = bytes.len() as u64;
    let end = part.base + part.size;
    let at = end.checked_sub(len).map(|a| a & !0xfff);
    match at {
        Some(at) if at >= kernel_end && at + len - 1 <= image.initrd_addr_max() => {
            memory.write(part, at - part.base, bytes)?;
            Ok((PhysAddr(at), len))
        }
        _ => Err(alloc::format!(
            "an initrd of {len:#x} bytes does not fit between the kernel ({kernel_end:#x}) and the partition's end ({end:#x}) below {:#x}",
            image.initrd_addr_max()
        )),
    }
}

/// What Linux node `id` is told on its command line (see the module
/// docs), then the plan's words.
fn command_line(id: NodeId, console: u16, tsc_hz: u64, shared: (u64, u64), extra: &str) -> String {
    let line = alloc::format!(
        "earlyprintk=serial,{console:#x},115200,keep 8250.nr_uarts=0 nr_cpus=1 noapic pci=off \
         acpi=noirq acpi_sci=edge tsc=reliable tsc_early_khz={} oops=panic mint_report={:#x} \
         mint_shared={:#x},{:#x} mint_node={} {extra}",
        tsc_hz / 1000,
        stub::init_report(id).as_u64(),
        shared.0,
        shared.1,
        id.0
    );
    String::from(line.trim_end())
}

/// Node `id`'s memory map: its low slice, its partition's head (reserved),
/// the rest of its partition.
fn e820(id: NodeId, part: PhysRange) -> Vec<E820Entry> {
    let (slice, slice_len) = low_slice(id);
    alloc::vec![
        E820Entry {
            base: slice,
            size: slice_len,
            kind: E820Kind::Ram,
        },
        E820Entry {
            base: PhysAddr(part.base),
            size: HEAD_LEN,
            kind: E820Kind::Reserved,
        },
        E820Entry {
            base: PhysAddr(part.base + HEAD_LEN),
            size: part.size - HEAD_LEN,
            kind: E820Kind::Ram,
        },
    ]
}

/// INIT-SIPI-SIPI a prepared Linux node, and wait (bounded) until its core
/// has left the trampoline, which the next start rewrites.
pub fn start(s: &LinuxStart) {
    boot::install_trampoline(
        s.cr3,
        s.stack_top.as_u64(),
        s.zero_page.as_u64(),
        stub::stub(s.id).as_u64(),
    );
    let vector = (TRAMPOLINE_PHYS >> 12) as u8;
    let mut sipi_tsc = 0;
    let sent = apic::send_init(s.apic)
        .and_then(|()| {
            crate::node::delay_us(10_000);
            sipi_tsc = cpu::rdtsc();
            apic::send_startup(s.apic, vector)
        })
        .and_then(|()| {
            crate::node::delay_us(200);
            apic::send_startup(s.apic, vector)
        });
    if let Err(e) = sent {
        println!("node0: starting {} (linux): {e}", s.id);
    }
    if sipi_tsc == 0 {
        sipi_tsc = cpu::rdtsc();
    }
    let deadline = cpu::rdtsc() + crate::node::ms_to_ticks(ENTER_TIMEOUT_MS);
    while stub::started_tsc(s.id) == 0 && cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    let entered_tsc = stub::started_tsc(s.id);
    SEEN.lock()[s.id.index()] = Seen {
        sipi_tsc,
        entered_tsc,
        reports_init: s.reports_init,
        init: None,
    };
    if entered_tsc == 0 {
        println!(
            "node0: {} (linux) did not reach its entry stub within {} s of the SIPI",
            s.id,
            ENTER_TIMEOUT_MS / 1000
        );
        return;
    }
    println!(
        "node0: started {} (linux) on {}: first SIPI at tsc {sipi_tsc}, into the kernel at {} after {} us",
        s.id,
        s.apic,
        s.load,
        crate::node::ticks_to_ns(entered_tsc.saturating_sub(sipi_tsc)) / 1000
    );
}

/// Waits until the `/init` of every started Linux node that runs mint's
/// has reported, at most `timeout_ms` in all; prints what each reached.
/// (Another initrd's `/init` does not report: nothing to wait for.)
pub fn wait_for_init(starts: &[LinuxStart], timeout_ms: u64) {
    let deadline = cpu::rdtsc() + crate::node::ms_to_ticks(timeout_ms);
    for s in starts.iter().filter(|s| s.reports_init) {
        if SEEN.lock()[s.id.index()].entered_tsc == 0 {
            continue;
        }
        let mut init = stub::init_reached(s.id);
        while init.is_none() && cpu::rdtsc() < deadline {
            x86_64::instructions::hlt();
            init = stub::init_reached(s.id);
        }
        let seen = {
            let mut all = SEEN.lock();
            all[s.id.index()].init = init;
            all[s.id.index()]
        };
        match init {
            Some((tsc, uptime_ns)) => println!(
                "node0: {} (linux) reached /init {} ms after its SIPI (kernel uptime {} ms)",
                s.id,
                crate::node::ticks_to_ns(tsc.saturating_sub(seen.sipi_tsc)) / 1_000_000,
                uptime_ns / 1_000_000
            ),
            None => println!(
                "node0: {} (linux) did not report reaching /init within {} s",
                s.id,
                timeout_ms / 1000
            ),
        }
    }
}

/// How long node 0 waits, after a Linux node's `/init` reported, for
/// mint's module (which `/init` loads before it reports) to say Running.
const MODULE_TIMEOUT_MS: u64 = 2_000;

/// Whether mint's module runs in node `id`: it entered Running (it stamps
/// `running_tsc` first), whatever its state is now.
fn module_ran(id: NodeId) -> bool {
    crate::shared::slot(id).running_tsc.load(Ordering::Acquire) != 0
}

/// The started Linux nodes whose module entered Running, waited for (at
/// most [`MODULE_TIMEOUT_MS`] in all) after their `/init` reported; prints
/// what each did. From then on node 0's monitor watches their heartbeat.
pub fn wait_for_module(starts: &[LinuxStart]) -> Vec<NodeId> {
    let deadline = cpu::rdtsc() + crate::node::ms_to_ticks(MODULE_TIMEOUT_MS);
    let mut up = Vec::new();
    for s in starts {
        let seen = SEEN.lock()[s.id.index()];
        if seen.entered_tsc == 0 || (s.reports_init && seen.init.is_none()) {
            continue;
        }
        let slot = crate::shared::slot(s.id);
        while !module_ran(s.id) && cpu::rdtsc() < deadline {
            x86_64::instructions::hlt();
        }
        if module_ran(s.id) {
            let at = slot.running_tsc.load(Ordering::Acquire);
            println!(
                "node0: {} (linux) runs mint's module: Running {} ms after its SIPI, mailbox vector {:#x}; monitored (now {})",
                s.id,
                crate::node::ticks_to_ns(at.saturating_sub(seen.sipi_tsc)) / 1_000_000,
                slot.mailbox_vector(),
                slot.state().map_or("garbage", |st| st.as_str())
            );
            up.push(s.id);
        } else {
            println!(
                "node0: {} (linux) has no mint module running (state {}); unmonitored",
                s.id,
                slot.state().map_or("garbage", |st| st.as_str())
            );
        }
    }
    up
}

/// Heartbeats a Linux node's module must have counted before node 0
/// reports it (its 100 Hz timer keeps running, not just its first tick).
const MIN_BEATS: u64 = 10;

/// Waits (at most 2 s in all) until each of `ids` has counted
/// [`MIN_BEATS`] heartbeats or stopped running.
pub fn wait_for_beats(ids: &[NodeId]) {
    let deadline = cpu::rdtsc() + crate::node::ms_to_ticks(2_000);
    for &id in ids {
        let slot = crate::shared::slot(id);
        while slot.heartbeat.load(Ordering::Relaxed) < MIN_BEATS
            && slot.state() == Some(NodeState::Running)
            && cpu::rdtsc() < deadline
        {
            x86_64::instructions::hlt();
        }
    }
}

/// The report's fields of Linux node `id` (after `"id"`): its state as far
/// as node 0 saw it, and the times it measured. With mint's module it is
/// monitored and its state is its slot's, as for any node.
pub fn report_json(s: &mut String, id: NodeId) {
    use core::fmt::Write;
    let seen = SEEN.lock()[id.index()];
    let monitored = module_ran(id);
    let slot_state = crate::shared::slot(id)
        .state()
        .map_or("garbage", |st| st.as_str());
    let state = match (seen.entered_tsc, seen.init) {
        _ if monitored => slot_state,
        (0, _) => "not-started",
        (_, Some(_)) => "reached-init",
        (_, None) => "started",
    };
    let ms = |from: u64, to: u64| crate::node::ticks_to_ns(to.saturating_sub(from)) / 1_000_000;
    let running_ms = if monitored {
        alloc::format!(
            "{}",
            ms(
                seen.sipi_tsc,
                crate::shared::slot(id).running_tsc.load(Ordering::Relaxed)
            )
        )
    } else {
        String::from("null")
    };
    let _ = write!(
        s,
        ",\"state\":\"{state}\",\"os\":\"linux\",\"monitored\":{monitored},\"running_ms\":{running_ms},\"reports_init\":{},\"entered_us\":{}",
        seen.reports_init,
        if seen.entered_tsc == 0 {
            String::from("null")
        } else {
            alloc::format!(
                "{}",
                crate::node::ticks_to_ns(seen.entered_tsc.saturating_sub(seen.sipi_tsc)) / 1000
            )
        }
    );
    match seen.init {
        Some((tsc, uptime_ns)) => {
            let _ = write!(
                s,
                ",\"boot_ms\":{boot_ms},\"init\":{{\"reached\":true,\"boot_ms\":{boot_ms},\"uptime_ms\":{}}}",
                uptime_ns / 1_000_000,
                boot_ms = ms(seen.sipi_tsc, tsc),
            );
        }
        None => s.push_str(",\"boot_ms\":null,\"init\":{\"reached\":false}"),
    }
}
