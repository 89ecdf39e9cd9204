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

use mint_abi::debug_nic::{DropReason, RunPhase};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use crate::arch::cpu;
use crate::nic::driver;
use crate::{node, println, shared};

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

/// The target's main loop: arm runs, move frames through the stack into the
/// application, account for each run. `skbs` is the driver's socket
/// buffers, drained here only; `mac` the interface's own address (the
/// debug NIC's target gets the generator's destination, a real NIC its
/// own MAC). Never returns.
pub fn receive_forever(mut skbs: mint_skb::Consumer, mac: [u8; 6]) -> ! {
    let endpoints = mint_traffic::Endpoints::default();
    let mut dev_stats = device::Stats::default();
    let mut app = App::new();
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

    let ctl = &shared::region().debug_nic.run;
    let mut last_progress = cpu::rdtsc();
    // When this node first saw the run's injection end (the quiet window
    // starts no earlier).
    let mut injected_seen: Option<u64> = None;
    loop {
        if node::halt_requested() {
            node::halt_now();
        }
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
                skbs.clear();
                let socket = sockets.get_mut::<udp::Socket>(handle);
                while socket.recv().is_ok() {}
                dev_stats = device::Stats::default();
                injected_seen = None;
                last_progress = cpu::rdtsc();
                let armed = app.arm(ctl).and_then(|()| {
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
                let since = *injected_seen.get_or_insert(now);
                let idle_for = now - last_progress.max(since);
                let drained = skbs.is_empty() && !driver::has_pending_completions();
                let done = app.accounted(ctl, &dev_stats, skbs.is_empty()) && drained;
                // Give up waiting for frames only when nothing is left in
                // flight, or when nothing moved for much longer.
                let quiet = idle_for > node::ms_to_ticks(QUIET_MS) && drained;
                let stuck = idle_for > node::ms_to_ticks(STUCK_MS);
                if done || quiet || stuck {
                    driver::flush_device_counters();
                    app.finish(ctl, &dev_stats);
                    if let Some(state) = driver::describe_real() {
                        crate::println!("{}: {state}", node::me());
                    }
                }
            }
            _ => {}
        }

        let before = app.seen() + dev_stats.to_stack;
        {
            let mut dev = SkbDevice::new(&mut skbs, &mut app, &mut dev_stats);
            iface.poll(now(), &mut dev, &mut sockets);
        }
        let socket = sockets.get_mut::<udp::Socket>(handle);
        while let Ok((payload, _meta)) = socket.recv() {
            dev_stats.from_stack += 1;
            app.consume(payload);
        }
        let after = app.seen() + dev_stats.to_stack;
        if after != before {
            last_progress = cpu::rdtsc();
            ctl.progress.store(after, Ordering::Release);
            continue;
        }
        // Nothing to do until the next interrupt (or timer tick). Checked
        // with interrupts off, so a frame arriving between the check and
        // the halt still wakes us (`sti; hlt`).
        x86_64::instructions::interrupts::disable();
        if skbs.is_empty() {
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
