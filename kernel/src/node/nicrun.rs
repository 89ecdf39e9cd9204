//! Node 0 runs `mint nic`: one run of frames the host sends into the real
//! e1000 another node owns. Node 0 configures the run in the debug NIC's
//! run control (the receiving side is the same driver, stack and checker
//! as a generator run), says `MINT-NIC-ARMED run=R` once the owner armed,
//! reads the host's `sent N` from its console when the host has sent
//! everything, marks the run injected, waits for the owner's accounting
//! and prints it as `MINT-NIC {json}`.
//!
//! Every wait also watches the owner: a crash it recorded itself (a panic
//! or an exception: its slot says crashed, with the reason) or a lost
//! heartbeat (the monitor declares it) ends the wait. Node 0 says so at
//! once (`MINT-NIC-OWNER-DOWN <why>`, so the host stops sending), still
//! reads the host's `sent N` (the accounting needs it), skips the settle
//! (a dead owner makes no progress) and puts the reason in the record
//! (`owner_down`): the counters are the ones the owner left.
//!
//! Hidden fault injection for the tests (`mint.nic_stop=K:HOW`): node 0
//! stops the owner once its `progress` counter reached K (it moves at each
//! frame's steps through the driver, the stack and the checker: not a
//! frame count, but it moves only with frames taken). `nmi`: an
//! NMI, which the owner's handler ends as a crash it records itself (mint
//! raises no NMI otherwise); `init`: an INIT IPI, which resets its core
//! into wait-for-SIPI, silently: only its heartbeat stops.

use alloc::string::String;
use core::cell::Cell;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use mint_abi::NodeId;
use mint_abi::debug_nic::{DropReason, RunPhase};
use mint_abi::node::NodeState;
use mint_abi::shared::{MAX_NODES, REASON_LEN};
use mint_traffic::GenConfig;

use super::monitor::{self, Watch};
use crate::arch::{apic, cpu, serial};
use crate::nic::support::{self, ARM_TIMEOUT_MS, SETTLE_DEADLINE_MS, SETTLE_TIMEOUT_MS};
use crate::{println, shared};

/// Longest a console line from the host may be.
const LINE_MAX: usize = 64;

/// How node 0 stops the owner (hidden fault injection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopBy {
    Nmi,
    Init,
}

/// `mint.nic_stop=K:HOW`: stop the owner once its `progress` reached `after`.
#[derive(Clone, Copy, Debug)]
pub struct OwnerStop {
    pub after: u64,
    pub by: StopBy,
}

/// The `mint.nic_stop=` word of `cmdline`, if any.
pub fn parse_stop(cmdline: &str) -> Result<Option<OwnerStop>, String> {
    let Some(spec) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("mint.nic_stop="))
    else {
        return Ok(None);
    };
    let bad = || alloc::format!("mint.nic_stop={spec}: expected K:nmi or K:init");
    let (after, by) = spec.split_once(':').ok_or_else(bad)?;
    let after = after.parse().map_err(|_| bad())?;
    let by = match by {
        "nmi" => StopBy::Nmi,
        "init" => StopBy::Init,
        _ => return Err(bad()),
    };
    Ok(Some(OwnerStop { after, by }))
}

/// Node 0's watch over the e1000's owner during a run.
struct OwnerWatch {
    owner: NodeId,
    watch: Cell<[Watch; MAX_NODES]>,
    /// Node 0's heartbeat at the last heartbeat check.
    last_tick: Cell<u64>,
}

impl OwnerWatch {
    fn new(owner: NodeId) -> Self {
        OwnerWatch {
            owner,
            watch: Cell::new([Watch::default(); MAX_NODES]),
            last_tick: Cell::new(u64::MAX),
        }
    }

    /// Why the owner no longer runs, if it does not. Heartbeats are checked
    /// once per tick of node 0's timer (they move no faster); the slot's
    /// state on every call.
    fn down(&self) -> Option<String> {
        let tick = shared::slot(NodeId(0)).heartbeat.load(Ordering::Relaxed);
        if tick != self.last_tick.get() {
            self.last_tick.set(tick);
            let mut watch = self.watch.get();
            // Also hands a crashed owner's devices back to node 0.
            monitor::check_heartbeats(&mut watch);
            self.watch.set(watch);
        }
        let slot = shared::slot(self.owner);
        match slot.state() {
            Some(NodeState::Running) => None,
            Some(NodeState::Crashed) => {
                let mut buf = [0u8; REASON_LEN];
                Some(alloc::format!(
                    "{} crashed: {}",
                    self.owner,
                    slot.reason(&mut buf)
                ))
            }
            state => Some(alloc::format!(
                "{} stopped running (state {})",
                self.owner,
                state.map_or("garbage", |s| s.as_str())
            )),
        }
    }
}

/// `text` as the inside of a JSON string.
fn json_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Waits for `sent N` on node 0's console, at most `ms`; `idle` runs
/// whenever no byte is there (it must halt or do node 0's other work).
pub(crate) fn read_sent(ms: u64, idle: &mut dyn FnMut()) -> Result<u64, String> {
    let deadline = cpu::rdtsc() + super::ms_to_ticks(ms);
    let mut line = String::new();
    loop {
        match serial::try_read() {
            Some(b'\r') => {}
            Some(b'\n') => {
                if let Some(n) = line.trim().strip_prefix("sent ")
                    && let Ok(n) = n.parse::<u64>()
                {
                    return Ok(n);
                }
                println!("node0: nic run: ignored console line {:?}", line.trim());
                line.clear();
            }
            Some(b) if line.len() < LINE_MAX => line.push(char::from(b)),
            Some(_) => {}
            None => {
                if cpu::rdtsc() > deadline {
                    return Err(alloc::format!(
                        "nic: the host did not say how many frames it sent within {} s",
                        ms / 1000
                    ));
                }
                // Halt until the next interrupt (the 100 Hz timer at the
                // latest) instead of spinning on the UART: under TCG every
                // port read takes QEMU's big lock, and a core polling the
                // line status register in a loop starves QEMU's main loop,
                // which then stops reading the e1000's socket (frames pile
                // up in the host's socket buffer until it drops them).
                idle();
            }
        }
    }
}

/// One run; returns whether every frame was accounted for. `stop`: the
/// hidden fault injection, see the module docs.
pub fn run(cfg: &GenConfig, owner: NodeId, stop: Option<OwnerStop>) -> Result<bool, String> {
    let watch = OwnerWatch::new(owner);
    // The owner's own accounting line (`mint_abi::real_nic`).
    let ctl = &shared::region().real_nic.receivers[owner.index()];
    let run_id = ctl.run_id.load(Ordering::Relaxed).wrapping_add(1);
    support::configure(ctl, cfg, run_id, true);
    ctl.set_phase(RunPhase::Configured);
    let answered = || matches!(ctl.phase(), Some(RunPhase::Armed | RunPhase::Refused));
    if !support::wait_for(|| answered() || watch.down().is_some(), ARM_TIMEOUT_MS) || !answered() {
        ctl.set_phase(RunPhase::Idle);
        if let Some(why) = watch.down() {
            return Err(alloc::format!("nic: {why} (before it armed run {run_id})"));
        }
        return Err(alloc::format!(
            "nic: {owner} did not arm within {ARM_TIMEOUT_MS} ms (does it drive the e1000?)"
        ));
    }
    if ctl.phase() == Some(RunPhase::Refused) {
        return Err(alloc::format!(
            "nic: {owner} refused the run: no memory for its raw samples"
        ));
    }
    // With this node's TSC, so the host can relate its clock (the frames'
    // stamps) to the nodes' (see `mint nic`).
    println!("MINT-NIC-ARMED run={run_id} tsc={}", cpu::rdtsc());
    // The host sends at its own pace; it says when it is done. Bounded by
    // an hour (the CLI's own timeout is the real limit).
    // The owner publishes its delivered count only when it completes the
    // run; `progress` moves as it goes.
    let stop = Cell::new(stop);
    let inject = || {
        let Some(OwnerStop { after, by }) = stop.get() else {
            return;
        };
        if ctl.progress.load(Ordering::Acquire) < after {
            return;
        }
        stop.set(None);
        println!("node0: nic run: stopping {owner} by {by:?} after {after} frames (mint.nic_stop)");
        let apic_id = super::apic_of(owner);
        let sent = match by {
            StopBy::Nmi => apic::send_nmi(apic_id),
            StopBy::Init => apic::send_init(apic_id),
        };
        if let Err(e) = sent {
            println!("node0: nic run: the {by:?} to {owner} was not sent: {e:?}");
        }
    };
    let mut down: Option<String> = None;
    let sent = read_sent(3_600_000, &mut || {
        inject();
        if down.is_none() {
            down = watch.down();
            if let Some(why) = &down {
                // The host stops sending when it reads this.
                println!("MINT-NIC-OWNER-DOWN {why}");
            }
        }
        x86_64::instructions::hlt();
    })?;
    ctl.sent.store(sent, Ordering::Release);
    ctl.set_phase(RunPhase::Injected);
    let stall = match &down {
        // A dead owner makes no progress: nothing to wait for.
        Some(_) => None,
        None => support::wait_while_progressing(
            || {
                inject();
                ctl.phase() == Some(RunPhase::Complete) || watch.down().is_some()
            },
            || ctl.progress.load(Ordering::Acquire),
            SETTLE_TIMEOUT_MS,
            SETTLE_DEADLINE_MS,
        )
        .err(),
    };
    if down.is_none() && ctl.phase() != Some(RunPhase::Complete) {
        down = watch.down();
        if let Some(why) = &down {
            println!("MINT-NIC-OWNER-DOWN {why}");
        }
    }
    let incomplete = match (&down, stall) {
        (Some(why), _) => Some(alloc::format!(
            "nic: {why} during run {run_id}; its counters are as it left them"
        )),
        (None, Some(stall)) => Some(alloc::format!(
            "nic: stopped waiting for {owner} to complete run {run_id}: {stall}"
        )),
        (None, None) => None,
    };
    let completed = incomplete.is_none();
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"run\":{run_id},\"owner\":{},\"tsc_hz\":{},\"completed\":{completed},\"config\":{{\"size\":{},\"count\":{},\"kind\":\"{}\",\"seed\":{}}}",
        owner.0,
        super::tsc_hz(),
        cfg.size,
        cfg.count,
        cfg.kind.as_str(),
        cfg.seed,
    );
    if let Some(why) = &incomplete {
        let _ = write!(s, ",\"incomplete\":\"{}\"", json_text(why));
    }
    if let Some(why) = &down {
        let _ = write!(
            s,
            ",\"owner_down\":{{\"node\":{},\"reason\":\"{}\",\"progress\":{}}}",
            owner.0,
            json_text(why),
            ctl.progress.load(Ordering::Acquire)
        );
    }
    let _ = write!(
        s,
        ",\"sent\":{sent},\"delivered\":{},\"dropped\":{{",
        ctl.delivered.load(Ordering::Acquire)
    );
    support::drops_json(&mut s, |r| ctl.drop_count(r));
    let _ = write!(
        s,
        "}},\"unaccounted\":{},\"corrupted\":{},\"out_of_order\":{},\"interrupts\":{},\"first_inject_tsc\":{},\"last_delivery_tsc\":{},\"delivered_bytes\":{},\"irq\":",
        ctl.unaccounted(),
        ctl.drop_count(DropReason::BadChecksum),
        ctl.out_of_order.load(Ordering::Acquire),
        ctl.interrupts.load(Ordering::Acquire),
        ctl.first_inject_tsc.load(Ordering::Acquire),
        ctl.last_delivery_tsc.load(Ordering::Acquire),
        ctl.delivered_bytes.load(Ordering::Acquire),
    );
    crate::irq::report_json(&mut s);
    s.push('}');
    println!("MINT-NIC {s}");
    // The owner prints its raw samples after Complete; do not power off
    // under it (its UART needs about 100 us per value).
    let budget_ms = 10_000 + u64::from(cfg.count) / 10;
    if completed && !support::wait_for(|| ctl.samples_done.load(Ordering::Acquire) != 0, budget_ms)
    {
        println!(
            "MINT-ERROR {owner} did not finish printing its raw samples within {budget_ms} ms"
        );
    }
    Ok(completed && ctl.unaccounted() == 0)
}
