//! The target node's network side: a real UDP/IPv4 stack (smoltcp) over
//! the e1000 driver's socket buffers, and the receiving application that
//! proves every packet arrived once, intact and in order, and measures its
//! latency from injection (support node's TSC) to the application.
//!
//! Raw-Ethernet runs (ethertype 0x88B5) bypass the stack, as a packet
//! socket would; UDP runs go through smoltcp to a UDP socket on port 7777.

mod app;
mod device;

use alloc::vec;
use core::sync::atomic::Ordering;

use mint_abi::debug_nic::{DropReason, RunControl, RunPhase};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use crate::arch::cpu;
use crate::nic::driver;
use crate::{node, println};

use app::App;
pub use app::dump as dump_samples;
use device::SkbDevice;

/// Packets the UDP socket can hold between two drains.
const SOCKET_PACKETS: usize = 64;
/// After the last injection, a run is over when nothing is in flight and
/// nothing happened for this long...
const QUIET_MS: u64 = 500;
/// ...or, whatever is in flight, when nothing happened for this long.
const STUCK_MS: u64 = mint_abi::debug_nic::RUN_STUCK_MS;

fn now() -> Instant {
    Instant::from_micros((node::ticks_to_ns(cpu::rdtsc()) / 1000) as i64)
}

/// One receiving node's stack and application over the driver's socket
/// buffers, stepped by its main loop (a target node's only work, or one
/// of node 0's chores while it runs a hand-over).
pub struct Receiver {
    skbs: mint_skb::Consumer,
    dev_stats: device::Stats,
    app: App,
    iface: Interface,
    sockets: SocketSet<'static>,
    handle: smoltcp::iface::SocketHandle,
    /// The run accounting this receiver reads its runs from and writes.
    ctl: &'static RunControl,
    last_progress: u64,
    /// When this node first saw the run's injection end (the quiet window
    /// starts no earlier).
    injected_seen: Option<u64>,
}

impl Receiver {
    /// A receiver over `skbs` (the driver's socket buffers, drained here
    /// only) for the interface `mac` (the debug NIC's target gets the
    /// generator's destination, a real NIC its own MAC), accounting into
    /// `ctl`; `seen` is this node's seen map (a real NIC's receiver).
    pub fn new(
        mut skbs: mint_skb::Consumer,
        mac: [u8; 6],
        ctl: &'static RunControl,
        seen: Option<crate::nic::area::SeenMap>,
    ) -> Receiver {
        let endpoints = mint_traffic::Endpoints::default();
        let mut dev_stats = device::Stats::default();
        let mut app = App::new(seen);
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = {
            let mut dev = SkbDevice::new(&mut skbs, &mut app, &mut dev_stats);
            Interface::new(config, &mut dev, now())
        };
        iface.update_ip_addrs(|addrs| {
            let [a, b, c, d] = endpoints.dst_ip;
            let _ = addrs.push(IpCidr::new(IpAddress::v4(a, b, c, d), 24));
        });
        let rx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; SOCKET_PACKETS],
            vec![0u8; SOCKET_PACKETS * driver::BUFFER_SIZE],
        );
        let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0u8; 64]);
        let mut socket = udp::Socket::new(rx, tx);
        if socket.bind(endpoints.dst_port).is_err() {
            panic!("cannot bind UDP port {}", endpoints.dst_port);
        }
        let mut sockets = SocketSet::new(vec![]);
        let handle = sockets.add(socket);
        Receiver {
            skbs,
            dev_stats,
            app,
            iface,
            sockets,
            handle,
            ctl,
            last_progress: cpu::rdtsc(),
            injected_seen: None,
        }
    }

    /// Whether a socket buffer waits for the stack.
    pub fn idle(&self) -> bool {
        self.skbs.is_empty()
    }

    /// One pass: arm a configured run, finish an injected one, move frames
    /// through the stack into the application. Returns whether any frame
    /// moved (if not, the caller may halt until the next interrupt).
    pub fn step(&mut self) -> bool {
        let ctl = self.ctl;
        match ctl.phase() {
            // A real NIC arms only once its receiver takes frames as they
            // come (QEMU's 82540EM holds them for a second after RCTL is
            // written: `driver::REAL_RX_SETTLE_MS`).
            Some(RunPhase::Configured) if driver::real_rx_settled() => {
                // Frames a previous, abandoned run left behind are not this
                // run's: in the ring, in socket buffers, in the UDP socket.
                // The ring first: once it is empty no interrupt can fill a
                // socket buffer again before this run's frames (a full
                // pool only makes the discarding count them as refused).
                driver::discard_leftovers();
                self.skbs.clear();
                let socket = self.sockets.get_mut::<udp::Socket>(self.handle);
                while socket.recv().is_ok() {}
                self.dev_stats = device::Stats::default();
                self.injected_seen = None;
                self.last_progress = cpu::rdtsc();
                let armed = self.app.arm(ctl).and_then(|()| {
                    let frames = ctl.count.load(Ordering::Acquire) as usize;
                    driver::reset_samples(frames).map_err(|_| "interrupt samples")
                });
                match armed {
                    Ok(()) => ctl.set_phase(RunPhase::Armed),
                    Err(what) => {
                        println!("run refused: no memory for its raw {what}");
                        ctl.set_phase(RunPhase::Refused);
                    }
                }
            }
            Some(RunPhase::Injected) => {
                let now = cpu::rdtsc();
                let since = *self.injected_seen.get_or_insert(now);
                let idle_for = now - self.last_progress.max(since);
                let drained = self.skbs.is_empty() && !driver::has_pending_completions();
                let done = self
                    .app
                    .accounted(ctl, &self.dev_stats, self.skbs.is_empty())
                    && drained;
                // Give up waiting for frames only when nothing is left in
                // flight, or when nothing moved for much longer.
                let quiet = idle_for > node::ms_to_ticks(QUIET_MS) && drained;
                let stuck = idle_for > node::ms_to_ticks(STUCK_MS);
                if done || quiet || stuck {
                    driver::flush_device_counters();
                    self.app.finish(ctl, &self.dev_stats);
                    if let Some(state) = driver::describe_real() {
                        crate::println!("{}: {state}", node::me());
                    }
                }
            }
            _ => {}
        }

        let before = self.app.seen() + self.dev_stats.to_stack;
        {
            let mut dev = SkbDevice::new(&mut self.skbs, &mut self.app, &mut self.dev_stats);
            self.iface.poll(now(), &mut dev, &mut self.sockets);
        }
        let socket = self.sockets.get_mut::<udp::Socket>(self.handle);
        while let Ok((payload, _meta)) = socket.recv() {
            self.dev_stats.from_stack += 1;
            self.app.consume(payload);
        }
        let after = self.app.seen() + self.dev_stats.to_stack;
        if after != before {
            self.last_progress = cpu::rdtsc();
            ctl.progress.store(after, Ordering::Release);
            return true;
        }
        false
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
        if r.idle() {
            x86_64::instructions::interrupts::enable_and_hlt();
        } else {
            x86_64::instructions::interrupts::enable();
        }
    }
}

/// Frames the stack took but did not hand to the socket.
fn stack_drops(stats: &device::Stats) -> u64 {
    stats.to_stack.saturating_sub(stats.from_stack)
}

pub(crate) fn count_final_drops(ctl: &mint_abi::debug_nic::RunControl, stats: &device::Stats) {
    ctl.drops[DropReason::Stack as usize].store(stack_drops(stats), Ordering::Relaxed);
}
