//! The target node's network side: `mint_target::Receiver` (smoltcp's
//! UDP/IPv4 stack over the e1000 driver's socket buffers, and the
//! receiving application that proves every packet arrived once, intact
//! and in order), stepped by this node's main loop. This module is only
//! its kernel half: the host hooks (the TSC, the driver's statics), the
//! run's summary and raw samples on the console, the halt between
//! interrupts.

use alloc::string::String;

use mint_abi::debug_nic::RunControl;
use mint_target::{App, Host, Stats};
use mint_traffic::{Moderation, Summary};

use crate::arch::cpu;
use crate::nic::area::SeenMap;
use crate::nic::driver;
use crate::{node, println};

/// The receiver's hooks into this kernel.
struct Kernel;

impl Host for Kernel {
    fn ms_to_ticks(&self, ms: u64) -> u64 {
        node::ms_to_ticks(ms)
    }

    fn ticks_to_us(&self, ticks: u64) -> u64 {
        node::ticks_to_ns(ticks) / 1000
    }

    fn rx_settled(&self) -> bool {
        // A real NIC arms only once its receiver takes frames as they come
        // (QEMU's 82540EM holds them for a second after RCTL is written).
        driver::real_rx_settled()
    }

    fn discard_leftovers(&mut self) -> usize {
        driver::discard_leftovers()
    }

    fn reset_samples(&mut self, frames: usize) -> bool {
        driver::reset_samples(frames).is_ok()
    }

    fn pending_completions(&self) -> bool {
        driver::has_pending_completions()
    }

    fn flush_device_counters(&mut self) {
        driver::flush_device_counters();
    }

    fn refused(&mut self, why: &str) {
        println!("run refused: {why}");
    }

    fn moderate(&mut self, m: Moderation) -> Result<(), &'static str> {
        driver::moderate(m)
    }

    fn napi_poll(&mut self) -> usize {
        driver::napi_poll()
    }

    fn finished(&mut self, app: &mut App, ctl: &RunControl, stats: &Stats, completed: bool) {
        report(app, ctl, stats, completed);
        if let Some(state) = driver::describe_real() {
            println!("{}: {state}", node::me());
        }
    }
}

/// One receiving node's stack and application over the driver's socket
/// buffers, stepped by its main loop (a target node's only work, or one
/// of node 0's chores while it runs a hand-over).
pub struct Receiver(mint_target::Receiver<'static>);

impl Receiver {
    /// A receiver over `skbs` (the driver's socket buffers, drained here
    /// only) for the interface `mac`, accounting into `ctl`; `seen` is
    /// this node's seen map (a real NIC's receiver).
    pub fn new(
        skbs: mint_skb::Consumer,
        mac: [u8; 6],
        ctl: &'static RunControl,
        seen: Option<SeenMap>,
    ) -> Receiver {
        match mint_target::Receiver::new(skbs, mac, ctl, seen, cpu::rdtsc, &Kernel) {
            Ok(r) => Receiver(r),
            Err(e) => panic!("the target's receiver: {e}"),
        }
    }

    /// Whether no socket buffer waits for the stack.
    pub fn idle(&self) -> bool {
        self.0.idle()
    }

    /// One pass (see `mint_target::Receiver::step`); whether a frame moved.
    pub fn step(&mut self) -> bool {
        self.0.step(&mut Kernel)
    }
}

/// The target's main loop: a [`Receiver`] stepped until node 0 asks this
/// node to halt. Never returns.
pub fn receive_forever(receiver: Receiver) -> ! {
    let mut r = receiver;
    loop {
        if node::halt_requested() {
            node::halt_now();
        }
        if r.step() {
            continue;
        }
        // Nothing to do until the next interrupt (or timer tick). Checked
        // with interrupts off, so a frame arriving between the check and
        // the halt still wakes us (`sti; hlt`).
        x86_64::instructions::interrupts::disable();
        if r.idle() && !driver::napi_scheduled() {
            x86_64::instructions::interrupts::enable_and_hlt();
        } else {
            x86_64::instructions::interrupts::enable();
        }
    }
}

/// After a run's accounting is published: the raw samples (when asked)
/// and a summary on this node's console.
fn report(app: &mut App, ctl: &RunControl, stats: &Stats, completed: bool) {
    use core::sync::atomic::Ordering;
    if !completed {
        println!(
            "run {}: finished after the run had moved on ({:?}); counts not published as complete",
            app.run_id(),
            ctl.phase()
        );
    }
    // The counts are final and published; the raw samples follow (the
    // UART is slow, and the support node need not wait for them).
    let (mut intervals, mut ipi) = driver::with_samples(|s| s.take());
    if app.dump_asked() {
        dump_samples(app.run_id(), "latency", app.latency());
        dump_samples(app.run_id(), "irq_interval", &intervals);
        dump_samples(app.run_id(), "ipi_latency", &ipi);
        ctl.samples_done.store(1, Ordering::Release);
    }
    let c = *app.counts();
    // `n/a` for a figure without samples, never 0.
    let na = |s: &Summary, v: u64| {
        if s.is_empty() {
            String::from("n/a")
        } else {
            alloc::format!("{} ns", node::ticks_to_ns(v))
        }
    };
    let l = Summary::from_samples(app.latency_mut());
    let i = Summary::from_samples(&mut intervals);
    let p = Summary::from_samples(&mut ipi);
    println!(
        "run {}: delivered {}/{} ({} out of order, {} bad, {} duplicate, {} stale-run, {} stack drops; {} lost IPIs recovered); latency p50 {} p99 {}; irq interval p50 {}; ipi->handler p50 {} (cross-core: node 0's TSC to this node's)",
        app.run_id(),
        c.delivered,
        ctl.sent.load(Ordering::Acquire),
        c.out_of_order,
        c.bad_checksum,
        c.duplicates,
        c.stale_run,
        stats.stack_drops(),
        ctl.recoveries.load(Ordering::Relaxed),
        na(&l, l.p50),
        na(&l, l.p99),
        na(&i, i.p50),
        na(&p, p.p50),
    );
}

/// Prints raw TSC-tick samples as `MINT-SAMPLES <run> <metric> <i> v,v,...`
/// lines of at most 256 values (`i` = index of the first value).
pub fn dump_samples(run: u32, metric: &str, values: &[u64]) {
    use core::fmt::Write;
    let mut line = String::with_capacity(256 * 12);
    for (n, chunk) in values.chunks(256).enumerate() {
        line.clear();
        for (k, v) in chunk.iter().enumerate() {
            let _ = write!(line, "{}{v}", if k > 0 { "," } else { "" });
        }
        println!("MINT-SAMPLES {run} {metric} {} {line}", n * 256);
    }
    println!("MINT-SAMPLES-END {run} {metric} {}", values.len());
}
