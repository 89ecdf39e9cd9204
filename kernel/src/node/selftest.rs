//! Hidden self-tests (`mint.selftest=NAME` on the kernel command line, from
//! `mint boot --selftest NAME`): checks of the node kernel's own machinery
//! that no normal run exercises on purpose. Each prints one
//! `MINT-SELFTEST {json}` line on the node's console.
//!
//! Every node runs the self-test asked for: node 0 just before it starts
//! the others, every other node right after `go`.
//!
//! - `df`: the direction flag on interrupt entry. The node copies
//!   overlapping buffers backwards (`memmove` runs `rep movsb` with DF set)
//!   with its timer running; the timer handler counts the ticks that
//!   interrupted a context with DF = 1 and the ticks in which the handler
//!   itself ran with DF = 1. The SysV ABI requires DF = 0 on function entry,
//!   so the second count must stay 0 (the entry stub clears DF); the first
//!   must be positive, or the test never hit the window it is about.
//! - `irq`: the interrupt layer refuses a node that does not own a device.
//!   Every node that does not own the e1000 asks the layer to unmask its
//!   interrupt and to route it to its own CPU (node 0 directly, once the
//!   owner registered it; the others over the mailbox); each request must
//!   be refused (not the owner) with the device's I/O APIC entry, read by
//!   node 0 before and after, unchanged. The layer counts the refusals on
//!   the device (the report's `irq.devices[].refused`). The owner, before
//!   it registers, claims two sources other than the one node 0 declared
//!   (the right GSI with the polarity inverted, and the next GSI): each must
//!   be refused (`refused`, source mismatch) with the entry unchanged.
//! - `handover`: node 0 (owning the e1000, node 1 standing by) asks the
//!   layer for hand-overs it must refuse, each with the entry and owner
//!   unchanged and the refusal counted: to the current owner, by a node
//!   that is not the owner, to a standby node that crashed (node 3, run
//!   with `--fault 3:panic`), to an unknown node (4), a second one while
//!   one is in progress, to a running node that does not stand by, and to
//!   node 1 when it refuses to prepare (node 0 undoes it: the layer
//!   cancels, node 1 abandons, node 0 resumes). Then one with the line asserted
//!   while the pin is masked (node 0 raises the NIC's receive cause with
//!   ICR unread after the layer masked the pin): the switch must deliver
//!   it exactly once, to the new owner, and nothing anywhere else. Then
//!   the NIC goes back to node 0.
//! - `wx`: the node's page permissions. The node probes its own memory
//!   (writes to text, rodata, its IDT, GDT and page tables; execution from
//!   rodata, data, stack and heap; reads of guard pages and of the low
//!   area) and checks that exactly the forbidden accesses page-fault: the
//!   page-fault handler resumes an armed probe ([`recover_probe`]) instead
//!   of stopping the node.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use alloc::string::String;
use alloc::vec;
use core::fmt::Write;

use crate::arch::interrupts::InterruptFrame;
use crate::println;

/// The direction flag in RFLAGS.
const RFLAGS_DF: u64 = 1 << 10;

/// Which self-test a node runs (carried in its boot info).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SelfTest {
    None = 0,
    DirectionFlag = 1,
    Permissions = 2,
    IrqRefusal = 3,
    Handover = 4,
}

impl SelfTest {
    pub fn parse(name: &str) -> Option<SelfTest> {
        match name {
            "df" => Some(SelfTest::DirectionFlag),
            "wx" => Some(SelfTest::Permissions),
            "irq" => Some(SelfTest::IrqRefusal),
            "handover" => Some(SelfTest::Handover),
            _ => None,
        }
    }

    pub fn from_raw(v: u8) -> SelfTest {
        match v {
            1 => SelfTest::DirectionFlag,
            2 => SelfTest::Permissions,
            3 => SelfTest::IrqRefusal,
            4 => SelfTest::Handover,
            _ => SelfTest::None,
        }
    }
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static TICKS: AtomicU64 = AtomicU64::new(0);
static INTERRUPTED_DF: AtomicU64 = AtomicU64::new(0);
static HANDLER_DF: AtomicU64 = AtomicU64::new(0);

/// Enough timer ticks inside the backwards copy to call the window hit.
const ENOUGH_HITS: u64 = 20;
/// Give up after this many ticks (3 s of this node's timer).
const MAX_TICKS: u64 = 3 * super::TIMER_HZ;
/// Bytes moved by one backwards copy.
const COPY_LEN: usize = 64 * 1024;

/// Called from this node's timer handler on every tick.
#[inline(always)]
pub fn on_tick(frame: &InterruptFrame) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    // The handler's own flags, read here and not in the entry stub: this is
    // the state the handler's code (and any `rep movs` it runs) sees.
    let own = read_rflags();
    TICKS.fetch_add(1, Ordering::Relaxed);
    if frame.rflags & RFLAGS_DF != 0 {
        INTERRUPTED_DF.fetch_add(1, Ordering::Relaxed);
    }
    if own & RFLAGS_DF != 0 {
        HANDLER_DF.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline(always)]
fn read_rflags() -> u64 {
    let flags: u64;
    // SAFETY: pushfq/pop reads RFLAGS through this handler's own stack
    // (the IST stack it runs on, not the interrupted one); no other effect.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(preserves_flags)) };
    flags
}

/// Runs `test` on this node (with its timer running) and prints the result.
pub fn run(test: SelfTest) {
    match test {
        SelfTest::None => {}
        SelfTest::DirectionFlag => direction_flag(),
        SelfTest::Permissions => permissions(),
        // Node 0 asks after the others started (the owner registers its
        // interrupt as it starts): see `boot0::run_machine`.
        SelfTest::IrqRefusal if super::me() == mint_abi::NodeId(0) => {}
        SelfTest::IrqRefusal => irq_refusal(),
        // Node 0 runs it once every node is up; node 1 refuses its first
        // Prepare, so node 0's undo is exercised.
        SelfTest::Handover if super::me() == mint_abi::NodeId(1) => {
            crate::nic::driver::refuse_next_prepare()
        }
        SelfTest::Handover => {}
    }
}

/// One refused hand-over the `handover` self-test asks for.
type HandoverCase = dyn Fn(&mut dyn FnMut()) -> Result<crate::irq::Round, String>;

/// The `handover` self-test, on node 0 (see the module docs).
pub fn handover() {
    use mint_abi::NodeId;
    let hlt = &mut || x86_64::instructions::hlt();
    let mut s = String::from("{\"test\":\"handover\",\"node\":0,\"refusals\":[");
    let cases: [(&str, &HandoverCase); 7] = [
        ("to-current-owner", &|i| {
            crate::irq::handover(NodeId(0), NodeId(0), i)
        }),
        // Node 3 stands by but was made to crash (`--fault 3:panic`).
        ("to-a-crashed-node", &|i| {
            crate::irq::handover(NodeId(0), NodeId(3), i)
        }),
        ("by-non-owner", &|i| {
            crate::irq::handover(NodeId(1), NodeId(2), i)
        }),
        ("to-unknown-node", &|i| {
            crate::irq::handover(NodeId(0), NodeId(4), i)
        }),
        ("while-one-is-in-progress", &|_| {
            crate::irq::second_handover_refused()
        }),
        ("to-a-node-not-standing-by", &|i| {
            crate::irq::handover(NodeId(0), NodeId(2), i)
        }),
        // Node 1 refuses its first Prepare: undone (cancelled in the
        // layer, node 1 abandons, node 0 resumes), counted by nobody.
        ("new-owner-refuses-prepare", &|i| {
            crate::irq::handover(NodeId(0), NodeId(1), i)
        }),
    ];
    for (k, (name, case)) in cases.iter().enumerate() {
        let before = crate::irq::nic0_probe();
        let r = case(hlt);
        let after = crate::irq::nic0_probe();
        let _ = write!(
            s,
            "{}{{\"case\":\"{name}\",\"refused\":{},\"error\":\"{}\",\"owner_unchanged\":{},\"entry_unchanged\":{},\"refusals_counted\":{}}}",
            if k > 0 { "," } else { "" },
            r.is_err(),
            r.err().unwrap_or_default().replace(['"', '\\'], "'"),
            before.owner == after.owner,
            before.entry == after.entry,
            after.refused.saturating_sub(before.refused),
        );
    }
    // The line asserted while the pin is masked: delivered once, to node 1.
    let unmasked = crate::irq::request(crate::irq::NIC0, mint_irq::request::Op::Unmask)
        .is_ok_and(|o| o.reply.status == mint_irq::request::Status::Ok);
    let counts = |n: u8| {
        let c = &crate::shared::region().real_nic.irq[usize::from(n)];
        [
            c.serviced.load(Ordering::Acquire),
            c.deferred.load(Ordering::Acquire),
            c.stray.load(Ordering::Acquire),
        ]
    };
    let (b0, b1, b2) = (counts(0), counts(1), counts(2));
    crate::irq::assert_line_on_next_switch();
    let round = crate::irq::handover(NodeId(0), NodeId(1), hlt);
    // Let anything that would follow arrive.
    let until = crate::arch::cpu::rdtsc() + super::ms_to_ticks(300);
    while crate::arch::cpu::rdtsc() < until {
        x86_64::instructions::hlt();
    }
    let (a0, a1, a2) = (counts(0), counts(1), counts(2));
    let probe = crate::irq::nic0_probe();
    let d = |a: [u64; 3], b: [u64; 3], i: usize| a[i] - b[i];
    let _ = write!(
        s,
        "],\"asserted\":{{\"unmasked_first\":{unmasked},\"ok\":{},\"error\":\"{}\",\"owner_after\":{},\"new_owner_serviced\":{},\"new_owner_deferred\":{},\"old_owner_serviced\":{},\"old_owner_deferred\":{},\"stray\":{},\"remote_irr_after\":{}}}",
        round.is_ok(),
        round
            .as_ref()
            .err()
            .cloned()
            .unwrap_or_default()
            .replace(['"', '\\'], "'"),
        probe.owner.map_or(-1, |o| i32::from(o.0)),
        d(a1, b1, 0),
        d(a1, b1, 1),
        d(a0, b0, 0),
        d(a0, b0, 1),
        d(a0, b0, 2) + d(a1, b1, 2) + d(a2, b2, 2),
        probe.entry.is_some_and(|e| e.remote_irr),
    );
    let back = crate::irq::handover(NodeId(1), NodeId(0), hlt);
    let _ = write!(
        s,
        ",\"back\":{{\"ok\":{},\"error\":\"{}\",\"owner_after\":{}}}}}",
        back.is_ok(),
        back.err().unwrap_or_default().replace(['"', '\\'], "'"),
        crate::irq::nic0_probe()
            .owner
            .map_or(-1, |o| i32::from(o.0)),
    );
    println!("MINT-SELFTEST {s}");
}

/// The owner's false claims (JSON objects, comma separated), made by
/// [`false_claims`] before it registers, printed by [`irq_refusal`].
static FALSE_CLAIMS: spin::Mutex<String> = spin::Mutex::new(String::new());

/// The `irq` self-test on the e1000's owner, before it registers `source`
/// (the one node 0 declared): two other claims, each to be refused.
pub fn false_claims(source: mint_irq::IrqSource) {
    use mint_irq::request::Op;
    use mint_irq::{IrqSource, Polarity};
    let IrqSource::Gsi {
        gsi,
        trigger,
        polarity,
    } = source
    else {
        return;
    };
    let claims = [
        IrqSource::Gsi {
            gsi,
            trigger,
            polarity: match polarity {
                Polarity::ActiveLow => Polarity::ActiveHigh,
                Polarity::ActiveHigh => Polarity::ActiveLow,
            },
        },
        IrqSource::Gsi {
            gsi: mint_abi::Gsi(gsi.0 + 1),
            trigger,
            polarity,
        },
    ];
    let mut s = String::new();
    for (i, claim) in claims.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let (what, gsi) = match claim {
            IrqSource::Gsi { gsi, .. } => (if i == 0 { "polarity" } else { "gsi" }, gsi.0),
            IrqSource::Msi => ("msi", 0),
        };
        match crate::irq::request(crate::irq::NIC0, Op::Register(claim)) {
            Ok(o) => {
                let r = o.reply;
                let _ = write!(
                    s,
                    "{{\"claim\":\"{what}\",\"gsi\":{gsi},\"status\":\"{}\",\"vector\":{},\"unchanged\":{}}}",
                    r.status.as_str(),
                    r.vector.map_or(0, |v| v.0),
                    r.before == r.after,
                );
            }
            Err(e) => {
                let _ = write!(
                    s,
                    "{{\"claim\":\"{what}\",\"error\":\"{}\"}}",
                    e.replace(['"', '\\'], "'")
                );
            }
        }
    }
    *FALSE_CLAIMS.lock() = s;
}

/// The `irq` self-test on this node (see the module docs).
pub fn irq_refusal() {
    use mint_irq::request::{Op, Status};
    let me = super::me();
    if super::real_nic_bar().is_some() {
        println!(
            "MINT-SELFTEST {{\"test\":\"irq\",\"node\":{},\"owner\":true,\"false_claims\":[{}]}}",
            me.0,
            FALSE_CLAIMS.lock().as_str()
        );
        return;
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"test\":\"irq\",\"node\":{},\"owner\":false,\"requests\":[",
        me.0
    );
    let ops = [Op::Unmask, Op::Route(super::apic_of(me).0)];
    for (i, op) in ops.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match crate::irq::request(crate::irq::NIC0, op) {
            Ok(o) => {
                let r = o.reply;
                let entry = |raw: u64| {
                    mint_irq::RedirectionEntry::from_raw(raw)
                        .map_or(String::from("null"), crate::irq::entry_json)
                };
                let _ = write!(
                    s,
                    "{{\"op\":\"{}\",\"status\":\"{}\",\"refused\":{},\"before\":{},\"after\":{},\"unchanged\":{}}}",
                    op.as_str(),
                    r.status.as_str(),
                    r.status == Status::NotOwner,
                    entry(r.before),
                    entry(r.after),
                    r.before == r.after && r.before != 0,
                );
            }
            Err(e) => {
                let _ = write!(
                    s,
                    "{{\"op\":\"{}\",\"error\":\"{}\"}}",
                    op.as_str(),
                    e.replace(['"', '\\'], "'")
                );
            }
        }
    }
    s.push_str("]}");
    println!("MINT-SELFTEST {s}");
}

fn direction_flag() {
    let me = super::me();
    let mut buf = vec![0u8; COPY_LEN + 1];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
    }
    ACTIVE.store(true, Ordering::Relaxed);
    let mut copies = 0u64;
    while INTERRUPTED_DF.load(Ordering::Relaxed) < ENOUGH_HITS
        && TICKS.load(Ordering::Relaxed) < MAX_TICKS
    {
        let p = buf.as_mut_ptr();
        // SAFETY: both ranges lie inside `buf` (COPY_LEN + 1 bytes); they
        // overlap with the destination above the source, which is the case
        // `memmove` copies backwards (DF set) and is defined to handle.
        unsafe { crate::mem::memmove(p.add(1), p, COPY_LEN) };
        copies += 1;
    }
    ACTIVE.store(false, Ordering::Relaxed);
    // Each copy moved every byte up by one: byte i now holds the original
    // byte i - copies, i.e. (i - copies) mod 256, for i >= copies.
    let intact = buf
        .iter()
        .enumerate()
        .skip(copies.min(COPY_LEN as u64) as usize)
        .all(|(i, &b)| b == (i as u64).wrapping_sub(copies) as u8);
    println!(
        "MINT-SELFTEST {{\"test\":\"df\",\"node\":{},\"copies\":{copies},\"ticks\":{},\"interrupted_df\":{},\"handler_df\":{},\"copy_intact\":{intact}}}",
        me.0,
        TICKS.load(Ordering::Relaxed),
        INTERRUPTED_DF.load(Ordering::Relaxed),
        HANDLER_DF.load(Ordering::Relaxed),
    );
}

/// Where the page-fault handler resumes an armed probe (0: none armed).
static PROBE_RESUME: AtomicU64 = AtomicU64::new(0);
/// The stack pointer to resume it with (an execution probe faults after
/// its `call` pushed the return address).
static PROBE_RSP: AtomicU64 = AtomicU64::new(0);
/// The error code of the page fault the probe met, or [`NO_FAULT`].
static PROBE_FAULT: AtomicU64 = AtomicU64::new(NO_FAULT);
const NO_FAULT: u64 = u64::MAX;

/// Called by the exception handler first: a page fault of an armed probe
/// is recorded and the probe resumed past its access; anything else is a
/// real fault (returns false).
pub fn recover_probe(frame: &mut InterruptFrame) -> bool {
    let resume = PROBE_RESUME.load(Ordering::Relaxed);
    if frame.vector != 14 || resume == 0 {
        return false;
    }
    PROBE_RESUME.store(0, Ordering::Relaxed);
    PROBE_FAULT.store(frame.error_code, Ordering::Relaxed);
    frame.rip = resume;
    frame.rsp = PROBE_RSP.load(Ordering::Relaxed);
    true
}

#[derive(Clone, Copy)]
enum Access {
    Read,
    /// Reads the byte, then writes the same value back.
    Write,
    /// Calls the address, which holds `ret` (0xC3).
    Execute,
}

/// Tries one access; returns the page fault's error code if it faulted.
fn probe(access: Access, addr: u64) -> Option<u64> {
    PROBE_FAULT.store(NO_FAULT, Ordering::Relaxed);
    let resume = PROBE_RESUME.as_ptr();
    let rsp = PROBE_RSP.as_ptr();
    // SAFETY: each block arms the probe (resume address and stack pointer
    // into the statics above), makes one access and disarms; a page fault
    // on the access is resumed at label 2 with the stack pointer as armed
    // (`recover_probe`), so control always reaches the end of the block
    // with the stack as it was. A write stores back the byte it read; an
    // executed target holds a lone `ret`, so a call that does not fault
    // returns straight to the block. Interrupts are off while a probe is
    // armed, so the only page fault `recover_probe` can see then is the
    // probe's own (an NMI stops the node without resuming anything).
    x86_64::instructions::interrupts::without_interrupts(|| unsafe {
        match access {
            Access::Read => core::arch::asm!(
                "lea {t}, [rip + 2f]",
                "mov [{resume}], {t}",
                "mov [{rsp}], rsp",
                "mov {t:l}, byte ptr [{addr}]",
                "2:",
                "mov qword ptr [{resume}], 0",
                t = out(reg) _, resume = in(reg) resume, rsp = in(reg) rsp, addr = in(reg) addr,
            ),
            Access::Write => core::arch::asm!(
                "lea {t}, [rip + 2f]",
                "mov [{resume}], {t}",
                "mov [{rsp}], rsp",
                "mov {t:l}, byte ptr [{addr}]",
                "mov byte ptr [{addr}], {t:l}",
                "2:",
                "mov qword ptr [{resume}], 0",
                t = out(reg) _, resume = in(reg) resume, rsp = in(reg) rsp, addr = in(reg) addr,
            ),
            Access::Execute => core::arch::asm!(
                "lea {t}, [rip + 2f]",
                "mov [{resume}], {t}",
                "mov [{rsp}], rsp",
                "call {addr}",
                "2:",
                "mov qword ptr [{resume}], 0",
                t = out(reg) _, resume = in(reg) resume, rsp = in(reg) rsp, addr = in(reg) addr,
            ),
        }
    });
    match PROBE_FAULT.load(Ordering::Relaxed) {
        NO_FAULT => None,
        code => Some(code),
    }
}

/// A `ret` in rodata, in data, and a function in text that only returns.
static RET_IN_RODATA: [u8; 1] = [0xC3];
static mut RET_IN_DATA: [u8; 1] = [0xC3];
extern "C" fn returns_at_once() {}

fn permissions() {
    use crate::arch::stacks;
    let me = super::me();
    let ret_on_stack = [0xC3u8; 16];
    let ret_on_heap = alloc::boxed::Box::new([0xC3u8; 16]);
    let idt = x86_64::instructions::tables::sidt().base.as_u64();
    let gdt = x86_64::instructions::tables::sgdt().base.as_u64();
    let (pml4, _) = x86_64::registers::control::Cr3::read();
    let pml4 = crate::layout::phys_to_virt(pml4.start_address().as_u64());
    let guards = stacks::guard_pages();
    let data = (&raw const RET_IN_DATA) as u64;
    // What, how, where, and whether it must fault.
    let probes: [(&str, Access, u64, bool); 14] = [
        ("write data", Access::Write, data, false),
        (
            "execute text",
            Access::Execute,
            returns_at_once as *const () as u64,
            false,
        ),
        (
            "write text",
            Access::Write,
            returns_at_once as *const () as u64,
            true,
        ),
        (
            "write rodata",
            Access::Write,
            RET_IN_RODATA.as_ptr() as u64,
            true,
        ),
        (
            "execute rodata",
            Access::Execute,
            RET_IN_RODATA.as_ptr() as u64,
            true,
        ),
        ("execute data", Access::Execute, data, true),
        (
            "execute stack",
            Access::Execute,
            ret_on_stack.as_ptr() as u64,
            true,
        ),
        (
            "execute heap",
            Access::Execute,
            ret_on_heap.as_ptr() as u64,
            true,
        ),
        ("write IDT", Access::Write, idt, true),
        ("write GDT", Access::Write, gdt, true),
        ("write page tables", Access::Write, pml4, true),
        ("read kernel stack guard", Access::Read, guards[0].0, true),
        (
            "read page-fault stack guard",
            Access::Read,
            guards[usize::from(crate::arch::gdt::IST_PAGE_FAULT)].0,
            true,
        ),
        // Node 0 owns the low area (not executable); the others drop it.
        ("read low area", Access::Read, 0x8000, me.0 != 0),
    ];
    let mut out = String::new();
    for (i, &(what, access, addr, must_fault)) in probes.iter().enumerate() {
        let fault = probe(access, addr);
        let _ = write!(
            out,
            "{}{{\"what\":\"{what}\",\"addr\":{addr},\"must_fault\":{must_fault},\"faulted\":{},\"error_code\":{}}}",
            if i > 0 { "," } else { "" },
            fault.is_some(),
            fault.map_or(-1, |c| c as i64),
        );
    }
    core::hint::black_box(&ret_on_stack);
    println!(
        "MINT-SELFTEST {{\"test\":\"wx\",\"node\":{},\"probes\":[{out}]}}",
        me.0
    );
}
