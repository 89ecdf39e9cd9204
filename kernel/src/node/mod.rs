//! What a node does, from its first instruction to its end.
//!
//! - `boot0`: node 0 only: discover the machine, check the plan, prepare
//!   every partition, start the other nodes.
//! - this module: every node's start (`start_node`), its timer (heartbeat)
//!   and its mailbox interrupt.
//! - `fault`: containment: exceptions and panics end this node only.
//! - `ping`: timed IPI + mailbox round trips to every peer.
//! - `monitor`: node 0 watches heartbeats and writes the run report.
//! - `shell`: node 0's interactive console.

pub mod boot0;
pub mod fault;
pub mod generator;
pub mod handover;
pub mod monitor;
pub mod nicrun;
pub mod ping;
pub mod selftest;
pub mod shell;
pub mod tsc;

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use mint_abi::node::{MessageKind, NodeState};
use mint_abi::shared::Incident;
use mint_abi::{ApicId, NodeId};
use mint_mailbox::Message;

use crate::arch::interrupts::{self, InterruptFrame, vectors};
use crate::arch::{apic, cpu, gdt, paging, serial};
use crate::layout::{self, BOOT_INFO_MAGIC, NodeBootInfo, WindowLayout};
use crate::{mem, println, shared};

/// Heartbeat rate of every node's APIC timer.
pub const TIMER_HZ: u64 = 100;
/// A node that has not seen node 0's `go` this long after it started gives
/// up waiting: it skips its ping round and idles (still answering pings
/// and honouring node 0's Halt). Node 0 starts the others one at a time,
/// each within `boot0`'s 5 s start deadline, before it says go.
pub const GO_TIMEOUT_MS: u64 = 60_000;

static ME: AtomicU8 = AtomicU8::new(0);
static NODE_COUNT: AtomicU8 = AtomicU8::new(1);
static TSC_HZ: AtomicU64 = AtomicU64::new(1);
static HALT_REQUESTED: AtomicBool = AtomicBool::new(false);
static SHARED_PHYS: AtomicU64 = AtomicU64::new(0);
/// Set once this node maps the shared region (node 0: after it set it up).
static SHARED_READY: AtomicBool = AtomicBool::new(false);
static SHARED_SIZE: AtomicU64 = AtomicU64::new(0);

/// Physical base and size of the shared region.
pub fn shared_window() -> (u64, u64) {
    (
        SHARED_PHYS.load(Ordering::Relaxed),
        SHARED_SIZE.load(Ordering::Relaxed),
    )
}

pub fn set_shared_window(phys: u64, size: u64) {
    SHARED_PHYS.store(phys, Ordering::Relaxed);
    SHARED_SIZE.store(size, Ordering::Relaxed);
    SHARED_READY.store(true, Ordering::Release);
}

/// The hidden self-test this node runs (see `selftest`): node 0 before it
/// starts the others, every other node after `go`.
static SELF_TEST: AtomicU8 = AtomicU8::new(0);

pub fn set_self_test(test: selftest::SelfTest) {
    SELF_TEST.store(test as u8, Ordering::Relaxed);
}

/// The self-test this node runs.
pub fn self_test() -> selftest::SelfTest {
    selftest::SelfTest::from_raw(SELF_TEST.load(Ordering::Relaxed))
}

/// Whether the shared region is mapped and set up for this node.
pub fn shared_ready() -> bool {
    SHARED_READY.load(Ordering::Acquire)
}

/// The real e1000 this node owns.
#[derive(Clone, Copy, Default)]
pub struct RealNic {
    /// Memory BAR (0 = none).
    pub bar: u64,
    /// Packed PCI location (bus << 16 | device << 8 | function).
    pub pci: u32,
    /// INTx line (PCI config 0x3C).
    pub line: u8,
    /// Where it arrives, as `mint_irq::request`'s register argument.
    pub source: u64,
    /// [`NIC_OWNER`] or [`NIC_STANDBY`].
    pub role: u8,
}

/// `RealNic::role`: the plan gives this node the e1000 at boot.
pub const NIC_OWNER: u8 = 1;
/// `RealNic::role`: the interrupt layer may hand this node the e1000.
pub const NIC_STANDBY: u8 = 2;

static REAL_NIC: spin::Once<RealNic> = spin::Once::new();

pub fn set_real_nic(nic: RealNic) {
    REAL_NIC.call_once(|| nic);
}

/// The register BAR of the real e1000 this node owns or stands by for, if
/// any.
pub fn real_nic_bar() -> Option<u64> {
    REAL_NIC.get().map(|n| n.bar).filter(|&bar| bar != 0)
}

/// Brings up the real e1000 the plan gave this node, if any: its RX ring
/// (`nic::real`), the driver, and its INTx through the interrupt layer
/// (register: a vector of its own; then unmask at the pin and at the
/// device). Returns the socket buffers and the NIC's MAC when this node
/// receives on it (every owner but node 0, which runs the machine).
fn attach_real_nic(id: NodeId) -> Option<(mint_skb::Consumer, [u8; 6])> {
    use mint_irq::request::{Op, Request, Status};
    let nic = *REAL_NIC.get().filter(|n| n.bar != 0)?;
    if nic.role == NIC_STANDBY {
        return match crate::nic::real::standby(nic.bar) {
            Ok(s) => {
                println!(
                    "{id}: stands by for the e1000 (registers mapped, not touched; MAC {}): the interrupt layer may hand it here",
                    mac_text(&s.mac)
                );
                let mac = s.mac;
                Some((crate::nic::driver::attach_standby(s.regs), mac))
            }
            Err(e) => {
                println!("{id}: {e}");
                None
            }
        };
    }
    let at = crate::arch::pci::PciAddress::unpacked(nic.pci);
    let attached = match crate::nic::real::attach(nic.bar, at, nic.line) {
        Ok(a) => a,
        Err(e) => {
            println!("{id}: {e}");
            return None;
        }
    };
    println!("{id}: {}", attached.summary);
    let mac = attached.mac;
    let skbs =
        crate::nic::driver::attach_real(attached.regs, attached.ring, attached.rx, attached.dma);
    let Ok(Request {
        op: op @ Op::Register(source),
        ..
    }) = Request::decode([1, nic.source, 0])
    else {
        println!("{id}: e1000: node 0 gave no usable interrupt source");
        return None;
    };
    let ask = |op: Op| match crate::irq::request(crate::irq::NIC0, op) {
        Ok(o) if o.reply.status == Status::Ok => Ok(o.reply),
        Ok(o) => Err(alloc::format!(
            "{} refused ({}){}",
            op.as_str(),
            o.reply.status.as_str(),
            o.error
                .map_or(alloc::string::String::new(), |e| alloc::format!(": {e}"))
        )),
        Err(e) => Err(e),
    };
    if self_test() == selftest::SelfTest::IrqRefusal {
        selftest::false_claims(source);
    }
    let registered = match ask(op) {
        Ok(r) => r,
        Err(e) => {
            println!("{id}: e1000: interrupt layer: {e}");
            return None;
        }
    };
    let (Some(gsi), Some(vector)) = (registered.gsi, registered.vector) else {
        println!("{id}: e1000: the interrupt layer gave no vector");
        return None;
    };
    crate::nic::driver::bind_real(vector);
    let how = match source {
        mint_irq::IrqSource::Gsi {
            trigger, polarity, ..
        } => alloc::format!(
            "{}, {}",
            if trigger == mint_irq::TriggerMode::Level {
                "level"
            } else {
                "edge"
            },
            if polarity == mint_irq::Polarity::ActiveLow {
                "active low"
            } else {
                "active high"
            }
        ),
        mint_irq::IrqSource::Msi => alloc::string::String::from("MSI"),
    };
    if !receives_real_nic() {
        println!(
            "{id}: e1000 INTx {gsi} ({how}) registered on {vector}, kept masked: node 0 runs the machine and does not receive"
        );
        return None;
    }
    if let Err(e) = ask(Op::Unmask) {
        println!("{id}: e1000: interrupt layer: {e}");
        return None;
    }
    crate::nic::driver::unmask_real();
    println!(
        "{id}: e1000 INTx {gsi} ({how}) on {vector} through the interrupt layer, unmasked; receiving"
    );
    Some((skbs, mac))
}

/// Whether this node receives on the real NIC when it owns it: every
/// node but node 0, which does only in `mint handover` (it runs the
/// machine).
pub fn receives_real_nic() -> bool {
    me() != NodeId(0) || boot0::record().mode == boot0::Mode::Handover
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: &[u8; 6]) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    for (i, b) in mac.iter().enumerate() {
        let _ = core::fmt::Write::write_fmt(
            &mut s,
            format_args!("{}{b:02x}", if i > 0 { ":" } else { "" }),
        );
    }
    s
}

/// The receiver of a real NIC's frames on this node (its own accounting
/// line and seen map).
pub fn real_receiver(skbs: mint_skb::Consumer, mac: [u8; 6]) -> crate::net::Receiver {
    let seen = crate::nic::area::bytes().and_then(|a| crate::nic::area::seen_map(&a, me()));
    crate::net::Receiver::new(skbs, mac, crate::nic::driver::real_run(), seen)
}

/// Whether node 0 asked this node to stop.
pub fn halt_requested() -> bool {
    HALT_REQUESTED.load(Ordering::Acquire)
}

/// Stops this node as node 0 asked.
pub fn halt_now() -> ! {
    println!("{} halted on request", me());
    shared::slot(me()).set_state(NodeState::Halted);
    cpu::halt_forever()
}

pub fn me() -> NodeId {
    NodeId(ME.load(Ordering::Relaxed))
}

pub fn node_count() -> u8 {
    NODE_COUNT.load(Ordering::Relaxed)
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn ticks_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(tsc_hz())) as u64
}

/// Spins for `us` microseconds of TSC time.
pub fn delay_us(us: u64) {
    let end = cpu::rdtsc() + tsc_hz() / 1_000_000 * us;
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}

pub fn ms_to_ticks(ms: u64) -> u64 {
    tsc_hz() / 1000 * ms
}

/// The APIC ID of `node`'s core, as node 0 published it.
pub fn apic_of(node: NodeId) -> ApicId {
    ApicId(shared::header().apic_ids[node.index()].load(Ordering::Acquire))
}

/// Entry of every node but node 0, reached from the AP trampoline with this
/// node's page tables and stack; `info` is this node's boot info (virtual).
#[unsafe(no_mangle)]
extern "C" fn ap_entry(info: *const NodeBootInfo) -> ! {
    // SAFETY: node 0 placed a NodeBootInfo at this window address before
    // starting us; copied out by value.
    let info = unsafe { core::ptr::read_volatile(info) };
    if info.magic != BOOT_INFO_MAGIC {
        cpu::halt_forever();
    }
    serial::init(info.console_port);
    gdt::init();
    interrupts::init();
    interrupts::set_exception_handler(fault::on_exception);
    layout::set_partition(info.partition_base, info.partition_size);
    paging::unmap_low_area();
    let Some(window) = WindowLayout::new(info.partition_size) else {
        println!("node{}: partition too small for the kernel", info.node);
        cpu::halt_forever();
    };
    // The last write to this node's tables was the unmapping above.
    if let Err(e) = seal(&window) {
        println!("node{}: cannot seal its tables: {e}", info.node);
        cpu::halt_forever();
    }
    // SAFETY: the heap range is this node's own memory past its image,
    // tables and boot info (see `layout`), mapped by the tables node 0 built.
    unsafe { mem::init_heap(layout::WINDOW_VIRT + window.heap_off, window.heap_len) };
    if !shared::header().is_valid() {
        println!(
            "node{}: shared region header invalid or ABI version differs",
            info.node
        );
        cpu::halt_forever();
    }
    set_shared_window(info.shared_phys, info.shared_size);
    set_real_nic(RealNic {
        bar: info.nic_bar,
        pci: info.nic_pci,
        line: info.nic_irq,
        source: info.nic_source,
        role: info.nic_role,
    });
    set_self_test(selftest::SelfTest::from_raw(info.selftest));
    start_node(NodeId(info.node), info.node_count, window)
}

/// Makes this node's page tables, boot info, GDT, TSS and IDT read-only
/// (`WindowLayout::sealed`): from here on nothing of this node writes them.
pub fn seal(window: &WindowLayout) -> Result<(), paging::SealError> {
    let ranges = window
        .sealed()
        .map(|(off, len)| (layout::WINDOW_VIRT + off, len));
    paging::seal(&ranges)
}

/// Common start of every node, with its GDT, IDT, tables and heap ready.
pub fn start_node(id: NodeId, count: u8, window: WindowLayout) -> ! {
    ME.store(id.0, Ordering::Relaxed);
    NODE_COUNT.store(count, Ordering::Relaxed);
    TSC_HZ.store(
        shared::header().tsc_hz.load(Ordering::Acquire).max(1),
        Ordering::Relaxed,
    );
    apic::set_tsc_hz(tsc_hz());
    let slot = shared::slot(id);

    let x2 = apic::init(vectors::SPURIOUS, vectors::APIC_ERROR);
    let apic_id = apic::id();
    if apic_id != apic_of(id) {
        slot.record_crash("started on a core whose APIC ID differs from the plan's");
        cpu::halt_forever();
    }
    interrupts::register(vectors::TIMER, on_timer);
    interrupts::register(vectors::MAILBOX, on_mailbox);
    interrupts::register(vectors::APIC_ERROR, on_apic_error);
    // Every vector the interrupt layer hands out counts as stray here
    // until a driver binds it.
    crate::irq::bind_strays();
    // Five 10 ms windows, each bracketed by TSC reads (a single window
    // read late on a loaded host gave rates up to 10x too high, and so a
    // 10 Hz "100 Hz" heartbeat).
    let timer = apic::calibrate_timer(tsc_hz(), ms_to_ticks(10), 5);
    if !timer.consistent || timer.hz == 0 {
        println!(
            "WARNING {id}: APIC timer calibration inconsistent ({} of {} windows agree); using {} kHz",
            timer.kept,
            timer.windows,
            timer.hz / 1000
        );
    }
    let apic_hz = timer.hz.max(TIMER_HZ);
    apic::start_periodic_timer(vectors::TIMER, (apic_hz / TIMER_HZ) as u32);
    x86_64::instructions::interrupts::enable();

    slot.running_tsc.store(cpu::rdtsc(), Ordering::Relaxed);
    slot.set_state(NodeState::Running);
    if id != NodeId(0) {
        // Node 0 checks this node's TSC against its own before anything
        // else (it starts as soon as it sees Running).
        tsc::serve_sync(id);
    }
    let source = tsc::published_source().map_or("unknown source", |s| s.as_str());
    println!(
        "{id} running on {apic_id} ({}), tsc {} MHz ({}{source}), apic timer {} kHz, heap {} KiB, image {} KiB",
        if x2 { "x2APIC" } else { "xAPIC" },
        tsc_hz() / 1_000_000,
        if id == NodeId(0) {
            "measured here: "
        } else {
            "node 0's calibration: "
        },
        apic_hz / 1000,
        mem::heap_free() / 1024,
        window.loaded_len / 1024,
    );
    let real_nic = attach_real_nic(id);
    let self_test = selftest::SelfTest::from_raw(SELF_TEST.load(Ordering::Relaxed));
    if id == NodeId(0) {
        selftest::run(self_test);
        boot0::run_machine(real_nic)
    }
    // Wait (bounded) for node 0's go, then do what was asked.
    let deadline = cpu::rdtsc() + ms_to_ticks(GO_TIMEOUT_MS);
    while shared::header().go.load(Ordering::Acquire) == 0 {
        if halt_requested() {
            halt_now();
        }
        if cpu::rdtsc() > deadline {
            slot.count(Incident::WaitExpired);
            println!(
                "{id}: node 0 did not say go within {} s; no ping round, idling",
                GO_TIMEOUT_MS / 1000
            );
            idle();
        }
        // The timer wakes this at least every 10 ms.
        x86_64::instructions::hlt();
    }
    selftest::run(self_test);
    fault::inject_if_asked(id);
    let skbs = if crate::nic::debug_target() == Some(id) && real_nic.is_some() {
        println!("{id}: e1000 driver not attached in debug mode: this node drives the real e1000");
        None
    } else if crate::nic::debug_target() == Some(id) {
        let (phys, size) = shared_window();
        match crate::nic::driver::attach(phys, size) {
            Ok(skbs) => {
                println!("{id}: e1000 driver attached in debug mode (RX ring in shared memory)");
                Some(skbs)
            }
            Err(e) => {
                println!("{id}: e1000 driver not attached: {e}");
                None
            }
        }
    } else {
        None
    };
    ping::round();
    if let Some(skbs) = skbs {
        crate::net::receive_forever(crate::net::Receiver::new(
            skbs,
            mint_traffic::Endpoints::default().dst_mac,
            &shared::region().debug_nic.run,
            None,
        ))
    }
    if let Some((skbs, mac)) = real_nic {
        crate::net::receive_forever(real_receiver(skbs, mac))
    }
    idle()
}

/// Waits for interrupts until node 0 asks this node to halt.
pub fn idle() -> ! {
    loop {
        // Checked with interrupts off, then `sti; hlt`: a request that
        // arrives in between still wakes the halt.
        ping::late_round();
        x86_64::instructions::interrupts::disable();
        if halt_requested() {
            halt_now();
        }
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

fn on_timer(frame: &mut InterruptFrame) {
    selftest::on_tick(frame);
    let slot = shared::slot(me());
    slot.heartbeat.fetch_add(1, Ordering::Relaxed);
    // ICRs given up as stuck, published where the report reads them.
    slot.incidents[Incident::StuckIcr as usize].store(apic::stuck_icrs(), Ordering::Relaxed);
    // The e1000 driver's bounded poll fallback (nothing without a driver).
    crate::nic::driver::on_tick();
    apic::end_of_interrupt();
}

/// The local APIC reported an error: read (and so clear) its error status
/// and count it where the run report shows it.
fn on_apic_error(_frame: &mut InterruptFrame) {
    let esr = apic::read_error_status();
    shared::region()
        .debug_nic
        .apic_errors
        .record(me().index(), esr);
    apic::end_of_interrupt();
}

/// Why [`send`] did not (fully) send.
#[derive(Debug)]
pub enum SendError {
    /// The mailbox had no free slot: nothing was sent.
    Full,
    /// The message is queued, but the IPI announcing it is stuck in this
    /// core's ICR: the peer sees it only on its next mailbox interrupt.
    IcrStuck(apic::IcrStuck),
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::Full => f.write_str("mailbox full"),
            SendError::IcrStuck(e) => write!(f, "queued, but {e}"),
        }
    }
}

/// Sends `msg` to `to` and raises its mailbox interrupt. Interrupts are off
/// meanwhile: this node's mailbox handler also produces into the same
/// mailbox (Pong replies), and a mailbox has exactly one producer context.
pub fn send(to: NodeId, msg: Message) -> Result<(), SendError> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        shared::mailbox(to, me())
            .push(msg)
            .map_err(|_| SendError::Full)?;
        // The vector the receiver published (a Linux node's is not 0xF0),
        // validated by `mailbox_vector`.
        let vector = mint_abi::Vector(shared::slot(to).mailbox_vector());
        apic::try_send_ipi(apic_of(to), vector).map_err(SendError::IcrStuck)
    })
}

/// Drains every peer's mailbox, each at most one capacity's worth
/// (`Queue::drain`): a peer that keeps producing cannot keep this handler,
/// and the other mailboxes, waiting; what it sent meanwhile waits for the
/// next mailbox interrupt (its IPIs keep coming while it produces).
fn on_mailbox(_frame: &mut InterruptFrame) {
    let me = me();
    for from in (0..node_count()).map(NodeId) {
        if from == me {
            continue;
        }
        // The sender is the mailbox, never a claim inside the message:
        // its messages sit in `from`'s outbox, on pages only `from` may
        // write (mapped read-only in every other node).
        let mailbox = shared::mailbox(me, from);
        match mailbox.drain(|msg| handle_message(from, msg)) {
            Ok(d) if d.more_waiting => shared::slot(me).count(Incident::MailboxDrainCapped),
            Ok(_) => {}
            Err(corrupt) => {
                // A faulty peer: say so, and stop reading its mailbox
                // rather than follow its index.
                println!("{me}: mailbox from {from}: {corrupt}; ignored");
            }
        }
    }
    // A polled ping-pong node 0 asked for in what was just drained.
    ping::serve_pingpong();
    apic::end_of_interrupt();
}

fn handle_message(from: NodeId, msg: Message) {
    match MessageKind::from_raw(msg.kind) {
        Some(MessageKind::Ping) if ping::take_pingpong_request(from, &msg) => {}
        Some(MessageKind::Ping) => {
            let _ = send(
                from,
                Message::new(MessageKind::Pong as u32, msg.seq, msg.args),
            );
        }
        Some(MessageKind::Pong) => ping::on_pong(from, msg.seq),
        Some(MessageKind::Halt) if from == NodeId(0) => {
            HALT_REQUESTED.store(true, Ordering::Release)
        }
        Some(MessageKind::IrqRequest) if me() == NodeId(0) => crate::irq::on_request(from, msg),
        Some(MessageKind::IrqReply) if from == NodeId(0) => crate::irq::on_reply(msg),
        Some(MessageKind::HandoverCmd) if from == NodeId(0) => crate::irq::on_handover_cmd(msg),
        Some(MessageKind::HandoverAck) if me() == NodeId(0) => {
            crate::irq::on_handover_ack(from, msg)
        }
        None if crate::irq::is_notice(msg.kind) => crate::irq::on_notice_message(from, msg),
        Some(MessageKind::Halt) => {
            // Only node 0 runs the machine; a peer asking is a forgery
            // (or a broken peer): refuse, count and say so.
            shared::slot(me()).count(Incident::ForgedHalt);
            println!(
                "{}: refused a Halt request from {from}: only node 0 may halt a node",
                me()
            );
        }
        _ => {}
    }
}
