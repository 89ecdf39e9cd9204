//! The debug NIC's target application on a Linux node: what mint's own
//! target node runs (`kernel/src/net`), over Linux's stack.
//!
//! - Brings `mint0` (mint's module: the debug NIC as a Linux network
//!   device) up with the generator's destination address
//!   (`mint_traffic::Endpoints::default()`: 10.0.0.2/24) and binds its UDP
//!   port (7777); for raw-Ethernet runs (`--kind raw`) a packet socket on
//!   `mint0` for their ethertype (0x88B5), as mint's target bypasses its
//!   stack for them.
//! - Reaches the run accounting (`mint_abi::debug_nic::RunControl`) by
//!   mapping the shared region through `/dev/mint` (the module's misc
//!   device; its node is made here from `/proc/misc`).
//! - Arms on `RunPhase::Configured`, checks every payload and publishes
//!   the run's accounting (delivered / out of order / drops / delivered
//!   bytes / first injection and last delivery TSC, Injected -> Complete)
//!   with mint's own target application, `mint_target::App`, over the
//!   TSC.
//! - What Linux's stack took but never handed to the socket (socket buffer
//!   full, or any other drop between the driver and the socket) is the
//!   `stack` drop reason: frames the module handed to the stack during the
//!   run (mint0's rx_packets, `/proc/net/dev`) minus datagrams the socket
//!   returned. The driver's own refusals the module counts itself
//!   (`bad_descriptor`, `socket_buffer_full`). The UDP MIB's
//!   RcvbufErrors/InErrors (`/proc/net/snmp`) are printed beside them.
//! - Prints its raw samples (`MINT-SAMPLES` lines: latency here, interrupt
//!   intervals and IPI latency from the module) to the kernel log.
//!
//! The run's life cycle (arm, the end of a run) mirrors
//! `mint_target::Receiver`, whose stack is smoltcp over socket buffers;
//! here the stack is Linux's, behind a UDP socket.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mint_abi::debug_nic::{DropReason, RunControl, RunPhase};
use mint_abi::shared::SharedRegion;
use mint_target::{App, Stats};
use mint_traffic::PacketKind;

/// After the last injection, a run is over when every frame left the
/// ring and the socket is empty, or when nothing happened for this long
/// with the socket empty...
const QUIET_MS: u64 = 500;
/// ...or, whatever is in flight, when nothing happened for this long.
const STUCK_MS: u64 = mint_abi::debug_nic::RUN_STUCK_MS;
/// The socket's receive buffer (SO_RCVBUFFORCE: /init is root), unless
/// the command line says `mint_rcvbuf=BYTES` (the tests of Linux's own
/// drops: a small one overflows).
const RCVBUF: i32 = 8 << 20;
/// `_IO('M', 1)`: the module's ioctl that empties its interrupt samples.
const MINT_IOC_RESET_SAMPLES: libc::c_ulong = 0x4d01;
/// `_IO('M', 2)` with the ITR value (256 ns units, 0 = none): the
/// module's ioctl that arms `mint0` for a run: cleans its ring of what
/// completed, delivering none of it (returns how many), and programs the
/// run's interrupt moderation.
const MINT_IOC_ARM: libc::c_ulong = 0x4d02;
/// `MINT_IOC_ARM`'s argument beside ITR: a driver-only run...
const ARM_DRIVER: libc::c_ulong = 1 << 16;
/// ...and, in bits 24-31, the run's payload offset (the headers its
/// driver-only count leaves out).
const ARM_PAYLOAD_OFFSET_SHIFT: u32 = 24;
/// `_IOR('M', 3, struct mint_driver_counts)`: a driver-only run's frames
/// as the module counted them (three u64: frames, payload bytes, the TSC
/// at the last).
const MINT_IOC_DRIVER_COUNTS: libc::c_ulong = 0x8018_4d03;
/// Values per `MINT-SAMPLES` line: a /dev/kmsg record holds under 1 KiB.
const SAMPLES_PER_LINE: usize = 64;

fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions (Linux leaves CR4.TSD clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The kernel log, one record per line.
pub struct Log(Option<File>);

impl Log {
    pub fn open() -> Log {
        Log(std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .ok())
    }

    /// One record. The newline matters: without it Linux keeps the record
    /// open for a continuation and prints it only when the next record
    /// comes, so a run's last sample line would wait for the next run.
    pub fn line(&mut self, text: &str) {
        match &mut self.0 {
            Some(f) => {
                let _ = f.write_all(format!("{text}\n").as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(format!("{text}\n").as_bytes());
            }
        }
    }
}

/// Runs the application for good when this node has `mint0` (the
/// module made it the debug NIC's target); returns why not otherwise.
pub fn serve(log: &mut Log) -> Result<std::convert::Infallible, String> {
    mount_proc()?;
    let minor = misc_minor("mint")?;
    // The console must take every sample line: /dev/kmsg's default rate
    // limit would drop all but a few.
    let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
    let region = map_region(&minor.1)?;
    let ep = mint_traffic::Endpoints::default();
    interface_up("mint0", ep.dst_ip, 24)?;
    let socket = UdpSocket::bind((std::net::Ipv4Addr::from(ep.dst_ip), ep.dst_port))
        .map_err(|e| format!("cannot bind UDP {:?}:{}: {e}", ep.dst_ip, ep.dst_port))?;
    let rcvbuf = match std::env::var("mint_rcvbuf") {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("mint_rcvbuf={v}: not a number of bytes"))?,
        Err(_) => RCVBUF,
    };
    set_rcvbuf(socket.as_raw_fd(), rcvbuf)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(10)))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let packets = PacketSocket::open("mint0", mint_traffic::frame::RAW_ETHERTYPE, rcvbuf)?;
    let tsc_hz = region.header.tsc_hz.load(Ordering::Acquire).max(1);
    log.line(&format!(
        "mint-target: mint0 up as {}.{}.{}.{}/24, UDP port {} bound (receive buffer {rcvbuf} bytes); waiting for runs",
        ep.dst_ip[0], ep.dst_ip[1], ep.dst_ip[2], ep.dst_ip[3], ep.dst_port
    ));
    let mut r = Receiver {
        ctl: &region.debug_nic.run,
        app: App::new(rdtsc, None),
        from_stack: 0,
        socket,
        packets,
        dev: DevCounters::default(),
        to_stack: 0,
        last_progress: rdtsc(),
        injected_seen: None,
        ms: tsc_hz / 1000,
        mintdev: minor.1,
        driver_only: false,
        at_driver: DriverCounts::default(),
    };
    let mut buf = vec![0u8; 65536];
    loop {
        r.step(&mut buf, log);
    }
}

/// The run's stack-side counters at arm time.
#[derive(Default, Clone, Copy)]
struct DevCounters {
    rx_packets: u64,
    rcvbuf_errors: u64,
    in_errors: u64,
    no_ports: u64,
}

impl DevCounters {
    fn now() -> DevCounters {
        let (rcvbuf_errors, in_errors, no_ports) = udp_mib();
        DevCounters {
            rx_packets: rx_packets("mint0"),
            rcvbuf_errors,
            in_errors,
            no_ports,
        }
    }
}

struct Receiver {
    ctl: &'static RunControl,
    app: App<'static>,
    /// Datagrams (or raw frames) the sockets returned this run.
    from_stack: u64,
    socket: UdpSocket,
    /// Raw-Ethernet runs' frames.
    packets: PacketSocket,
    /// At arm.
    dev: DevCounters,
    /// Frames the module handed to the stack this run, as last read.
    to_stack: u64,
    last_progress: u64,
    injected_seen: Option<u64>,
    /// TSC ticks per millisecond.
    ms: u64,
    /// /dev/mint (its read gives the module's interrupt samples).
    mintdev: File,
    /// This run delivers at the driver: `mint0` counts and frees each
    /// frame, none reaches the stack or this application.
    driver_only: bool,
    /// The module's count of a driver-only run, as last read.
    at_driver: DriverCounts,
}

/// `struct mint_driver_counts` (linux/module/mint.c).
#[repr(C)]
#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct DriverCounts {
    frames: u64,
    payload_bytes: u64,
    last_tsc: u64,
}

fn driver_counts(dev: &File) -> Result<DriverCounts, String> {
    let mut c = DriverCounts::default();
    // SAFETY: the ioctl writes exactly one `struct mint_driver_counts`
    // (three u64, the layout of `DriverCounts`) into `c`, which lives
    // across the call.
    let r = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            MINT_IOC_DRIVER_COUNTS,
            &mut c as *mut DriverCounts,
        )
    };
    if r != 0 {
        return Err(format!(
            "/dev/mint: driver counts: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(c)
}

impl Receiver {
    fn step(&mut self, buf: &mut [u8], log: &mut Log) {
        if self.driver_only {
            return self.step_at_driver(log);
        }
        let ctl = self.ctl;
        let mut empty = false;
        let raw = self.app.kind() == PacketKind::Raw;
        // Frames the stack had been given, read before the receive: when
        // the receive then finds the socket empty, each of these was
        // received or dropped by the stack (a frame the next interrupt
        // hands to the stack after this read is not counted yet).
        let handed = matches!(ctl.phase(), Some(RunPhase::Injected))
            .then(|| rx_packets("mint0").saturating_sub(self.dev.rx_packets));
        let got = if raw {
            self.packets.recv(buf)
        } else {
            self.socket.recv(buf)
        };
        match got {
            Ok(n) => {
                if matches!(ctl.phase(), Some(RunPhase::Armed | RunPhase::Injected)) {
                    self.from_stack += 1;
                    if raw {
                        self.app.consume_raw(&buf[..n]);
                    } else {
                        self.app.consume(&buf[..n]);
                    }
                    self.last_progress = rdtsc();
                    ctl.progress
                        .store(self.app.seen() + self.to_stack, Ordering::Release);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                empty = true
            }
            Err(e) => {
                log.line(&format!("mint-target: recv: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        match ctl.phase() {
            Some(RunPhase::Configured) => self.arm(log),
            Some(RunPhase::Injected) if empty => {
                let now = rdtsc();
                let to_stack = handed
                    .unwrap_or_else(|| rx_packets("mint0").saturating_sub(self.dev.rx_packets));
                if to_stack != self.to_stack {
                    self.to_stack = to_stack;
                    self.last_progress = now;
                    ctl.progress
                        .store(self.app.seen() + self.to_stack, Ordering::Release);
                }
                let since = *self.injected_seen.get_or_insert(now);
                let idle_for = now - self.last_progress.max(since);
                let sent = ctl.sent.load(Ordering::Acquire);
                // Every frame left the ring: to the stack or refused.
                let done = to_stack + ctl.drops_before_stack() >= sent;
                let quiet = idle_for > QUIET_MS * self.ms;
                let stuck = idle_for > STUCK_MS * self.ms;
                if done || quiet || stuck {
                    self.finish(log, done.then_some(to_stack));
                }
            }
            _ => {}
        }
    }

    /// A driver-only run: the module counts; this follows its count
    /// (about every millisecond) to the run's end.
    fn step_at_driver(&mut self, log: &mut Log) {
        let ctl = self.ctl;
        match ctl.phase() {
            Some(RunPhase::Configured) => return self.arm(log),
            Some(RunPhase::Armed | RunPhase::Injected) => {}
            _ => {
                // The run is over (or was never armed): the next one may
                // deliver to the stack.
                self.driver_only = false;
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
        let now = rdtsc();
        match driver_counts(&self.mintdev) {
            Ok(c) if c != self.at_driver => {
                self.at_driver = c;
                self.last_progress = now;
                ctl.progress.store(c.frames, Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => {
                log.line(&format!("mint-target: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if ctl.phase() != Some(RunPhase::Injected) {
            return;
        }
        let since = *self.injected_seen.get_or_insert(now);
        let idle_for = now - self.last_progress.max(since);
        let sent = ctl.sent.load(Ordering::Acquire);
        let done = self.at_driver.frames + ctl.drops_before_stack() >= sent;
        if done || idle_for > QUIET_MS * self.ms {
            self.finish(log, Some(0));
        }
    }

    /// Resets for the run the support node configured.
    fn arm(&mut self, log: &mut Log) {
        // Frames an abandoned run left behind are not this run's: in the
        // ring (the support node sends only once this run is armed, so
        // all of it), then in the sockets. `mint0` polls with NAPI
        // whatever the run's moderation; ITR it programs as asked.
        let armed = self.app.arm(self.ctl);
        self.driver_only =
            self.ctl.deliver.load(Ordering::Acquire) == mint_abi::debug_nic::DELIVER_DRIVER;
        self.at_driver = DriverCounts::default();
        let itr = mint_target::moderation_of(self.ctl).map_or(0, |m| m.itr_register());
        let mut arg = libc::c_ulong::from(itr);
        if self.driver_only {
            let offset = mint_traffic::payload_offset(self.app.kind()) as libc::c_ulong;
            arg |= ARM_DRIVER | offset << ARM_PAYLOAD_OFFSET_SHIFT;
        }
        // SAFETY: an ioctl whose argument is a plain integer, on our open
        // /dev/mint.
        let discarded = unsafe { libc::ioctl(self.mintdev.as_raw_fd(), MINT_IOC_ARM, arg) };
        if discarded < 0 {
            // mint0 kept the last run's delivery and moderation: this run
            // cannot be taken as asked.
            log.line(&format!(
                "mint-target: cannot arm mint0 for run {}: {}; run refused",
                self.app.run_id(),
                std::io::Error::last_os_error()
            ));
            self.driver_only = false;
            self.ctl.set_phase(RunPhase::Refused);
            return;
        } else if discarded > 0 {
            log.line(&format!(
                "mint-target: {discarded} frames of an earlier run left in mint0's ring, discarded"
            ));
        }
        let _ = self.socket.set_nonblocking(true);
        let mut scratch = vec![0u8; 65536];
        while self.socket.recv(&mut scratch).is_ok() {}
        let _ = self.socket.set_nonblocking(false);
        while self.packets.recv_now(&mut scratch).is_ok() {}
        self.dev = DevCounters::now();
        self.to_stack = 0;
        self.from_stack = 0;
        self.injected_seen = None;
        self.last_progress = rdtsc();
        // SAFETY: an ioctl without argument on our open /dev/mint.
        let reset = unsafe { libc::ioctl(self.mintdev.as_raw_fd(), MINT_IOC_RESET_SAMPLES) };
        if reset != 0 {
            log.line("mint-target: cannot reset the module's interrupt samples");
        }
        match armed {
            Ok(()) => self.ctl.set_phase(RunPhase::Armed),
            Err(what) => {
                log.line(&format!(
                    "mint-target: run refused: no memory for its raw {what}"
                ));
                self.ctl.set_phase(RunPhase::Refused);
            }
        }
    }

    /// The run's end: `to_stack`, the frames handed to the stack as read
    /// before the last empty receive when every frame is accounted for
    /// (`None`: the run gave up waiting; then as the counters say now).
    fn finish(&mut self, log: &mut Log, to_stack: Option<u64>) {
        let ctl = self.ctl;
        if self.driver_only {
            if let Ok(c) = driver_counts(&self.mintdev) {
                self.at_driver = c;
            }
            let c = self.at_driver;
            self.app
                .count_at_driver(c.frames, c.payload_bytes, c.last_tsc);
            log.line(&format!(
                "mint-target: run {}: {} frames consumed at mint0's driver (driver-only delivery: not checked, not handed to the stack)",
                self.app.run_id(),
                c.frames
            ));
        }
        let now = DevCounters::now();
        let stats = Stats {
            to_stack: to_stack
                .unwrap_or_else(|| now.rx_packets.saturating_sub(self.dev.rx_packets)),
            from_stack: self.from_stack,
            ..Stats::default()
        };
        let stack = stats.stack_drops();
        if !self.app.publish(ctl, &stats) {
            log.line(&format!(
                "mint-target: run {}: finished after the run had moved on ({:?}); counts not published as complete",
                self.app.run_id(),
                ctl.phase()
            ));
        }
        let a = &self.app;
        let c = a.counts();
        log.line(&format!(
            "mint-target: run {}: delivered {}/{} ({} out of order, {} bad, {} duplicate, {} stale-run, {} stack drops: UDP RcvbufErrors +{} InErrors +{} NoPorts +{}; driver: {} bad descriptors, {} without an skb; {} lost IPIs recovered)",
            a.run_id(),
            c.delivered,
            ctl.sent.load(Ordering::Acquire),
            c.out_of_order,
            c.bad_checksum,
            c.duplicates,
            c.stale_run,
            stack,
            now.rcvbuf_errors.saturating_sub(self.dev.rcvbuf_errors),
            now.in_errors.saturating_sub(self.dev.in_errors),
            now.no_ports.saturating_sub(self.dev.no_ports),
            ctl.drop_count(DropReason::BadDescriptor),
            ctl.drop_count(DropReason::SocketBufferFull),
            ctl.recoveries.load(Ordering::Relaxed),
        ));
        let dev = dev_counters("mint0");
        let at = |i: usize| dev.get(i).copied().unwrap_or(0);
        log.line(&format!(
            "mint-target: mint0 since it came up (as `ip -s link` shows it): rx {} packets {} bytes {} errors {} dropped, tx {} dropped",
            at(1),
            at(0),
            at(2),
            at(3),
            at(11)
        ));
        if a.dump_asked() {
            let (intervals, ipi) = irq_samples(&mut self.mintdev).unwrap_or_else(|e| {
                log.line(&format!("mint-target: no interrupt samples: {e}"));
                (Vec::new(), Vec::new())
            });
            dump(log, a.run_id(), "latency", a.latency());
            dump(log, a.run_id(), "irq_interval", &intervals);
            dump(log, a.run_id(), "ipi_latency", &ipi);
            ctl.samples_done.store(1, Ordering::Release);
        }
    }
}

/// Prints raw samples as `MINT-SAMPLES <run> <metric> <i> v,v,...` lines
/// and `MINT-SAMPLES-END <run> <metric> <n>`, as mint's target does (in
/// shorter lines: a kernel log record holds under 1 KiB).
fn dump(log: &mut Log, run: u32, metric: &str, values: &[u64]) {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(SAMPLES_PER_LINE * 12 + 64);
    for (n, chunk) in values.chunks(SAMPLES_PER_LINE).enumerate() {
        line.clear();
        let _ = write!(
            line,
            "MINT-SAMPLES {run} {metric} {} ",
            n * SAMPLES_PER_LINE
        );
        for (k, v) in chunk.iter().enumerate() {
            let _ = write!(line, "{}{v}", if k > 0 { "," } else { "" });
        }
        log.line(&line);
    }
    log.line(&format!("MINT-SAMPLES-END {run} {metric} {}", values.len()));
}

/// The module's interrupt samples: (handler entry to entry, IPI stamp to
/// entry), in TSC ticks.
fn irq_samples(dev: &mut File) -> Result<(Vec<u64>, Vec<u64>), String> {
    use std::io::Read;
    // Two counts, then at most 2 x (1 << 18) samples.
    let mut bytes = vec![0u8; 16 + 2 * (1 << 18) * 8];
    let n = dev
        .read(&mut bytes)
        .map_err(|e| format!("/dev/mint: {e}"))?;
    let words: Vec<u64> = bytes[..n]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    let (Some(&a), Some(&b)) = (words.first(), words.get(1)) else {
        return Err(format!("/dev/mint: {n} bytes, no counts"));
    };
    let (a, b) = (a as usize, b as usize);
    if words.len() != 2 + a + b {
        return Err(format!("/dev/mint: {n} bytes for {a} + {b} samples"));
    }
    Ok((words[2..2 + a].to_vec(), words[2 + a..].to_vec()))
}

/// /proc (misc devices, the interface and UDP counters, printk_devkmsg).
pub fn mount_proc() -> Result<(), String> {
    if std::path::Path::new("/proc/self").exists() {
        return Ok(());
    }
    // SAFETY: NUL-terminated literals; no data argument.
    let r = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            0,
            core::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!("mount /proc: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The misc device `name`'s (major 10) node in /dev, made from /proc/misc,
/// and its minor.
fn misc_minor(name: &str) -> Result<(u32, File), String> {
    let misc = std::fs::read_to_string("/proc/misc").map_err(|e| format!("/proc/misc: {e}"))?;
    let minor: u32 = misc
        .lines()
        .find_map(|l| {
            let (m, n) = l.trim().split_once(' ')?;
            (n == name).then(|| m.parse().ok())?
        })
        .ok_or_else(|| {
            format!("no misc device {name} (this node is not the debug NIC's target)")
        })?;
    let path = format!("/dev/{name}");
    let cpath = std::ffi::CString::new(path.clone()).map_err(|_| "a NUL in a path")?;
    // SAFETY: `cpath` is a NUL-terminated path that outlives the call.
    let r = unsafe {
        libc::mknod(
            cpath.as_ptr(),
            libc::S_IFCHR | 0o600,
            libc::makedev(10, minor),
        )
    };
    if r != 0 && std::io::Error::last_os_error().kind() != ErrorKind::AlreadyExists {
        return Err(format!("mknod {path}: {}", std::io::Error::last_os_error()));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok((minor, f))
}

/// The shared region, mapped for good through /dev/mint.
fn map_region(dev: &File) -> Result<&'static SharedRegion, String> {
    let size = std::env::var("mint_shared")
        .ok()
        .and_then(|s| {
            let (_, size) = s.split_once(',')?;
            u64::from_str_radix(size.trim_start_matches("0x"), 16).ok()
        })
        .ok_or("no mint_shared=PHYS,SIZE given")?;
    let need = core::mem::size_of::<SharedRegion>() as u64;
    if size < need {
        return Err(format!(
            "the shared region ({size:#x} bytes) is smaller than its layout ({need:#x})"
        ));
    }
    // Only the fixed layout: the DMA window is the module's.
    let len = need.next_multiple_of(4096) as usize;
    // SAFETY: a new shared mapping of the device's first `len` bytes
    // (checked inside the region by the module); no existing memory is
    // touched.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            dev.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "mmap /dev/mint: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The mapping holds the file open; it is never unmapped.
    // SAFETY: the mapping is `len` >= size_of::<SharedRegion>() bytes,
    // page aligned (more than the layout's 4096-byte alignment), stays
    // mapped for the process's life, and every field of `SharedRegion`
    // is an atomic (or an array or struct of atomics), valid for any bits
    // and the only way the other nodes and the module reach it too.
    Ok(unsafe { &*(p as *const SharedRegion) })
}

/// `ifconfig <name> <ip>/<prefix> up`, by ioctl.
fn interface_up(name: &str, ip: [u8; 4], prefix: u32) -> Result<(), String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("control socket: {e}"))?;
    let fd = sock.as_raw_fd();
    let ifreq_with = |addr: [u8; 4]| {
        // SAFETY: `ifreq` is plain data; all zeros is a valid value.
        let mut r: libc::ifreq = unsafe { core::mem::zeroed() };
        for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(addr),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `sockaddr_in` is 16 bytes, the size of the union's
        // `sockaddr` (and less than the union's).
        unsafe {
            core::ptr::write_unaligned(
                core::ptr::addr_of_mut!(r.ifr_ifru) as *mut libc::sockaddr_in,
                sin,
            )
        };
        r
    };
    let ioctl = |req: libc::c_ulong, r: &mut libc::ifreq, what: &str| {
        // SAFETY: `r` is a valid `ifreq` the request reads (and may write).
        if unsafe { libc::ioctl(fd, req, r as *mut libc::ifreq) } != 0 {
            return Err(format!(
                "{what} {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    };
    ioctl(libc::SIOCSIFADDR, &mut ifreq_with(ip), "SIOCSIFADDR")?;
    let mask = (u32::MAX << (32 - prefix)).to_be_bytes();
    ioctl(
        libc::SIOCSIFNETMASK,
        &mut ifreq_with(mask),
        "SIOCSIFNETMASK",
    )?;
    let mut r = ifreq_with([0; 4]);
    ioctl(libc::SIOCGIFFLAGS, &mut r, "SIOCGIFFLAGS")?;
    // SAFETY: SIOCGIFFLAGS wrote the union's flags member.
    unsafe { r.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(libc::SIOCSIFFLAGS, &mut r, "SIOCSIFFLAGS")
}

/// A packet socket on one interface for one ethertype (raw-Ethernet
/// runs): each `recv` is one whole frame, Ethernet header included.
struct PacketSocket(std::os::fd::OwnedFd);

impl PacketSocket {
    fn open(interface: &str, ethertype: u16, rcvbuf: i32) -> Result<PacketSocket, String> {
        use std::os::fd::FromRawFd;
        let protocol = ethertype.to_be();
        // SAFETY: socket(2) takes no pointer.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        if fd < 0 {
            return Err(format!(
                "packet socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: `fd` is a new descriptor no one else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(interface).map_err(|_| "a NUL in a name")?;
        // SAFETY: `name` is NUL-terminated and outlives the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(format!("no interface {interface}"));
        }
        // SAFETY: `sockaddr_ll` is plain data; all zeros is a valid value.
        let mut at: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        at.sll_family = libc::AF_PACKET as u16;
        at.sll_protocol = protocol;
        at.sll_ifindex = index as i32;
        // SAFETY: `at` is a `sockaddr_ll` of the length given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&at as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(format!(
                "bind the packet socket to {interface}: {}",
                std::io::Error::last_os_error()
            ));
        }
        set_rcvbuf(fd.as_raw_fd(), rcvbuf)?;
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 10_000,
        };
        // SAFETY: SO_RCVTIMEO reads one `timeval` from the pointer given.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                core::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(format!("SO_RCVTIMEO: {}", std::io::Error::last_os_error()));
        }
        Ok(PacketSocket(fd))
    }

    /// One frame, waiting at most the socket's timeout.
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.recv_with(buf, 0)
    }

    /// One frame if one is there.
    fn recv_now(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.recv_with(buf, libc::MSG_DONTWAIT)
    }

    fn recv_with(&self, buf: &mut [u8], flags: i32) -> std::io::Result<usize> {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

fn set_rcvbuf(fd: i32, bytes: i32) -> Result<(), String> {
    // SAFETY: SO_RCVBUFFORCE reads one int from the pointer given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            core::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(format!(
            "SO_RCVBUFFORCE: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// `name`'s received packets in /proc/net/dev (0 when unreadable).
fn rx_packets(name: &str) -> u64 {
    dev_counters(name).get(1).copied().unwrap_or(0)
}

/// `name`'s line of /proc/net/dev: receive bytes, packets, errors,
/// drops, fifo, frame, compressed, multicast, then the same eight for
/// transmit (empty when unreadable).
fn dev_counters(name: &str) -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let (n, rest) = l.split_once(':')?;
            (n.trim() == name).then(|| {
                rest.split_whitespace()
                    .map(|v| v.parse().unwrap_or(0))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The UDP MIB's RcvbufErrors, InErrors and NoPorts (/proc/net/snmp).
fn udp_mib() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return (0, 0, 0);
    };
    let get = |key: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    (get("RcvbufErrors"), get("InErrors"), get("NoPorts"))
}
