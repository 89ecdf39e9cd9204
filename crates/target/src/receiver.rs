//! One receiving node's UDP/IPv4 stack (smoltcp) and application over the
//! driver's socket buffers, and its part in a run's life cycle: arm a
//! configured run, move frames through the stack into the application,
//! finish an injected run once every frame is accounted for (or nothing
//! moves any more). Stepped by the caller's loop: the target kernel's main
//! loop, node 0's chores during a hand-over, the native benchmark's
//! target thread.
//!
//! Raw-Ethernet runs (ethertype 0x88B5) bypass the stack, as a packet
//! socket would; UDP runs go through smoltcp to a UDP socket on the
//! generator's port.

use alloc::vec;
use core::sync::atomic::Ordering;

use mint_abi::debug_nic::{BUFFER_SIZE, DELIVER_DRIVER, RUN_STUCK_MS, RunControl, RunPhase};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use crate::app::{App, Clock};
use crate::device::{SkbDevice, Stats};
use crate::rx::moderation_of;
use crate::seen::SeenMap;
use mint_traffic::Moderation;

/// Packets the UDP socket can hold between two drains.
const SOCKET_PACKETS: usize = 64;
/// After the last injection, a run is over when nothing is in flight and
/// nothing happened for this long...
pub const QUIET_MS: u64 = 500;
/// ...or, whatever is in flight, when nothing happened for this long.
pub const STUCK_MS: u64 = RUN_STUCK_MS;

/// What the receiver asks of the node it runs on, between frames: time,
/// and the driver's side of a run's start and end.
pub trait Host {
    /// `ms` milliseconds in clock ticks.
    fn ms_to_ticks(&self, ms: u64) -> u64;
    /// Clock ticks in microseconds (the stack's clock).
    fn ticks_to_us(&self, ticks: u64) -> u64;
    /// Whether the NIC takes frames as they come (a real NIC settles
    /// after its receiver is enabled); runs are armed only then.
    fn rx_settled(&self) -> bool {
        true
    }
    /// Cleans whatever an abandoned run left in the ring, keeping nothing.
    fn discard_leftovers(&mut self) -> usize;
    /// Applies the run's interrupt moderation to the driver
    /// (`RxPath::moderate`); why not, when the driver cannot.
    fn moderate(&mut self, m: Moderation) -> Result<(), &'static str>;
    /// NAPI: polls the ring if a poll is scheduled (`RxPath::napi_poll`);
    /// the frames cleaned.
    fn napi_poll(&mut self) -> usize {
        0
    }
    /// Makes room for `frames` frames' interrupt samples; false when there
    /// is no memory for them.
    fn reset_samples(&mut self, frames: usize) -> bool;
    /// Whether the ring holds completions not cleaned yet.
    fn pending_completions(&self) -> bool;
    /// Before a run's accounting is published: the NIC's own counters
    /// (a real NIC's missed packets) into the run's drops.
    fn flush_device_counters(&mut self) {}
    /// A configured run was refused, for `why`.
    fn refused(&mut self, _why: &str) {}
    /// The run is finished: the application's accounting is published
    /// (`completed`: and the run marked Complete). The place to print a
    /// summary or the raw samples.
    fn finished(&mut self, app: &mut App, ctl: &RunControl, stats: &Stats, completed: bool);
}

/// Why a receiver could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverError {
    /// The UDP socket would not bind the generator's port.
    Bind(u16),
}

impl core::fmt::Display for ReceiverError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReceiverError::Bind(port) => write!(f, "cannot bind UDP port {port}"),
        }
    }
}

/// A receiving node's stack and application.
pub struct Receiver<'m> {
    skbs: mint_skb::Consumer,
    stats: Stats,
    app: App<'m>,
    iface: Interface,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    /// The run accounting this receiver reads its runs from and writes.
    ctl: &'m RunControl,
    clock: Clock,
    last_progress: u64,
    /// When this node first saw the run's injection end (the quiet window
    /// starts no earlier).
    injected_seen: Option<u64>,
    /// This run's frames are counted at the driver and released.
    driver_only: bool,
}

impl<'m> Receiver<'m> {
    /// A receiver over `skbs` (the driver's socket buffers, drained here
    /// only) for the interface `mac` (the debug NIC's target gets the
    /// generator's destination, a real NIC its own MAC), accounting into
    /// `ctl`, stamping with `clock`; `seen` is this node's seen map (a
    /// real NIC's receiver).
    pub fn new(
        mut skbs: mint_skb::Consumer,
        mac: [u8; 6],
        ctl: &'m RunControl,
        seen: Option<SeenMap<'m>>,
        clock: Clock,
        host: &impl Host,
    ) -> Result<Receiver<'m>, ReceiverError> {
        let endpoints = mint_traffic::Endpoints::default();
        let mut stats = Stats::default();
        let mut app = App::new(clock, seen);
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let now = instant(host, clock());
        let mut iface = {
            let mut dev = SkbDevice::new(&mut skbs, &mut app, &mut stats);
            Interface::new(config, &mut dev, now)
        };
        iface.update_ip_addrs(|addrs| {
            let [a, b, c, d] = endpoints.dst_ip;
            let _ = addrs.push(IpCidr::new(IpAddress::v4(a, b, c, d), 24));
        });
        let mut payloads = vec![0u8; SOCKET_PACKETS * BUFFER_SIZE];
        // A host allocator's zeroed memory is mapped on first touch: map
        // it now, not in the stack's first copy into each page (one store
        // per page the compiler cannot drop; a kernel heap is mapped).
        for page in payloads.chunks_mut(4096) {
            page[0] = core::hint::black_box(0);
        }
        let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; SOCKET_PACKETS], payloads);
        let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 1], vec![0u8; 64]);
        let mut socket = udp::Socket::new(rx, tx);
        socket
            .bind(endpoints.dst_port)
            .map_err(|_| ReceiverError::Bind(endpoints.dst_port))?;
        let mut sockets = SocketSet::new(vec![]);
        let handle = sockets.add(socket);
        Ok(Receiver {
            skbs,
            stats,
            app,
            iface,
            sockets,
            handle,
            ctl,
            clock,
            last_progress: clock(),
            injected_seen: None,
            driver_only: false,
        })
    }

    /// Whether no socket buffer waits for the stack.
    pub fn idle(&self) -> bool {
        self.skbs.is_empty()
    }

    /// The application (its counts so far).
    pub fn app(&self) -> &App<'m> {
        &self.app
    }

    /// The stack's counts of the current run.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// One pass: arm a configured run, finish an injected one, move frames
    /// through the stack into the application. Returns whether any frame
    /// moved (if not, the caller may wait for the next interrupt).
    pub fn step(&mut self, host: &mut impl Host) -> bool {
        let ctl = self.ctl;
        match ctl.phase() {
            Some(RunPhase::Configured) if host.rx_settled() => self.arm(host),
            Some(RunPhase::Injected) => {
                let now = (self.clock)();
                let since = *self.injected_seen.get_or_insert(now);
                let idle_for = now.wrapping_sub(self.last_progress.max(since));
                let drained = self.skbs.is_empty() && !host.pending_completions();
                let done = self.app.accounted(ctl, &self.stats, self.skbs.is_empty()) && drained;
                // Give up waiting for frames only when nothing is left in
                // flight, or when nothing moved for much longer.
                let quiet = idle_for > host.ms_to_ticks(QUIET_MS) && drained;
                let stuck = idle_for > host.ms_to_ticks(STUCK_MS);
                if done || quiet || stuck {
                    host.flush_device_counters();
                    let completed = self.app.publish(ctl, &self.stats);
                    host.finished(&mut self.app, ctl, &self.stats, completed);
                }
            }
            _ => {}
        }
        self.drain(host)
    }

    /// Arms the run `ctl` holds: leftovers of an abandoned run (in the
    /// ring, in socket buffers, in the UDP socket) are not this run's.
    fn arm(&mut self, host: &mut impl Host) {
        let ctl = self.ctl;
        // The ring first: once it is empty no interrupt can fill a socket
        // buffer again before this run's frames (a full pool only makes
        // the discarding count them as refused).
        host.discard_leftovers();
        self.skbs.clear();
        let socket = self.sockets.get_mut::<udp::Socket>(self.handle);
        while socket.recv().is_ok() {}
        self.stats = Stats::default();
        self.injected_seen = None;
        self.last_progress = (self.clock)();
        let frames = ctl.count.load(Ordering::Acquire) as usize;
        self.driver_only = ctl.deliver.load(Ordering::Acquire) == DELIVER_DRIVER;
        let armed = match moderation_of(ctl) {
            Some(m) => host.moderate(m),
            None => Err("its interrupt moderation is not one this node knows"),
        };
        let armed = armed
            .and_then(|()| {
                self.app
                    .arm(ctl)
                    .map_err(|_| "no memory for its raw latency samples")
            })
            .and_then(|()| {
                if host.reset_samples(frames) {
                    Ok(())
                } else {
                    Err("no memory for its raw interrupt samples")
                }
            });
        match armed {
            Ok(()) => ctl.set_phase(RunPhase::Armed),
            Err(why) => {
                host.refused(why);
                ctl.set_phase(RunPhase::Refused);
            }
        }
    }

    /// Moves what the socket buffers hold through the stack (or, raw, past
    /// it) into the application; returns whether anything moved.
    fn drain(&mut self, host: &mut impl Host) -> bool {
        let polled = host.napi_poll();
        if self.driver_only {
            let mut moved = polled > 0;
            while let Some(skb) = self.skbs.front() {
                self.app.count_unchecked(skb.frame());
                skb.release();
                moved = true;
            }
            if moved {
                self.last_progress = (self.clock)();
                self.ctl.progress.store(self.app.seen(), Ordering::Release);
            }
            return moved;
        }
        let before = self.app.seen() + self.stats.to_stack;
        {
            let now = instant(host, (self.clock)());
            let mut dev = SkbDevice::new(&mut self.skbs, &mut self.app, &mut self.stats);
            self.iface.poll(now, &mut dev, &mut self.sockets);
        }
        let socket = self.sockets.get_mut::<udp::Socket>(self.handle);
        while let Ok((payload, _meta)) = socket.recv() {
            self.stats.from_stack += 1;
            self.app.consume(payload);
        }
        let after = self.app.seen() + self.stats.to_stack;
        if after != before || polled > 0 {
            self.last_progress = (self.clock)();
            self.ctl.progress.store(after, Ordering::Release);
            return true;
        }
        false
    }
}

fn instant(host: &impl Host, ticks: u64) -> Instant {
    Instant::from_micros(host.ticks_to_us(ticks) as i64)
}
