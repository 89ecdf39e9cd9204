//! `mint nic`: frames from the host into the real (emulated) e1000 a node
//! owns, through its INTx and the interrupt layer.
//!
//! QEMU's e1000 gets `-netdev dgram` on loopback: every UDP datagram the
//! host sends to QEMU's port is one Ethernet frame on the NIC's wire.
//! This command binds QEMU's socket itself (port 0: the kernel picks a
//! free one, and nothing can take it before QEMU has it) and hands it to
//! QEMU as an inherited descriptor (`local.type=fd`, QEMU 7.2 and later;
//! no `remote.*` with it: the socket is connected to the host's own, so
//! QEMU's `send` reaches that and only its datagrams are received). mint
//! keeps its own copy, never read, until the run is over, so the socket's
//! `/proc/net/udp` row is there when the record is read even if QEMU has
//! just exited. Once
//! node 0 says the owner armed the run (`MINT-NIC-ARMED run=R`), this
//! command sends C frames built with the generator's frame template and
//! payload format (sequence number, run id, the host's TSC at send, CRC),
//! at the rate asked for, then tells node 0 on its console how many it
//! handed to the host's kernel (`sent N`). The owner validates every frame
//! as it validates the generator's; node 0 reports the run's accounting
//! (`MINT-NIC {json}`).
//!
//! Where frames can go missing, and how each is counted: QEMU stops
//! reading its socket while the NIC has no free descriptor, so datagrams
//! wait in the host kernel's socket buffer, and when that is full the
//! kernel drops them, counted on QEMU's socket (`/proc/net/udp`, its
//! `drops` column): `lost_before_nic`. Frames the NIC itself could not
//! place are its missed-packets counter MPC (read by the owner, clear on
//! read, accumulated): `dropped.ring_full`. Everything past the NIC is the
//! driver's, the stack's and the checker's drops, as in `mint gen`.
//! `unaccounted` is what is left; it is 0 only when every frame has a
//! place.
//!
//! When the owner stops during the run (a panic or exception it recorded,
//! or a heartbeat node 0's monitor lost), node 0 says so
//! (`MINT-NIC-OWNER-DOWN <why>`): the sender stops, node 0 records what
//! the owner left (`owner_down` in its record), and the run fails naming
//! the node and its reason. The owner publishes its delivered count (and
//! the checker's drops) only when it completes a run, so a dead owner's
//! deliveries have no place either: with the frames in the NIC's ring, in
//! QEMU and in the host's socket they are `unaccounted`;
//! `owner_down.progress` is the owner's progress counter when it stopped
//! (it moves at each frame's steps: not a frame count).

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use mint_plan::{Device, NodeId};
use mint_traffic::{Endpoints, FrameTemplate, GenConfig, PacketKind, Pattern};
use serde_json::{Value, json};

use crate::generate::{Samples, summary_ns};
use crate::machine::{E1000_MAC, Echo, Event, Machine, Node0Input, Options};
use crate::{MachineArgs, flags, plan};

/// Largest frame: one 2 KiB receive buffer per frame (the real NIC's
/// ring), a standard Ethernet frame without FCS.
pub const MAX_SIZE: u32 = 1514;

#[derive(Args)]
pub struct NicArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// The node that owns the e1000 and receives (not node 0, which runs
    /// the machine). Without --config the plan is built from the flags:
    /// --nodes (default: enough for this node, at least 2), the e1000 on
    /// this node.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = flags::u8_value)]
    pub node: u8,
    /// Frames to send.
    #[arg(long, default_value = "1000", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub count: String,
    /// Frame size in bytes (60..=1514, without FCS).
    #[arg(long, default_value = "1514", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub size: String,
    /// Frames per second (0: as fast as the host sends).
    #[arg(long, default_value_t = 2000, allow_negative_numbers = true, value_parser = flags::u64_value)]
    pub rate: u64,
    /// udp (through the owner's UDP/IP stack) or raw (Ethernet).
    #[arg(long, default_value = "udp")]
    pub kind: String,
    /// Seed of the payloads.
    #[arg(long, default_value = "1", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub seed: String,
    /// Print the result as JSON on stdout (consoles go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Fault injection (for tests), K:HOW: node 0 stops the owner once its
    /// progress counter (it moves as frames go through the driver, stack
    /// and checker) reached K, by an NMI (`nmi`: a crash the owner
    /// records) or an INIT IPI (`init`: its core silently reset; only its
    /// heartbeat stops).
    #[arg(long, hide = true, value_name = "K:HOW", value_parser = stop_owner_value)]
    pub stop_owner: Option<String>,
}

/// `--stop-owner K:nmi|init`.
fn stop_owner_value(text: &str) -> Result<String, String> {
    match text.split_once(':') {
        Some((n, "nmi" | "init")) if n.parse::<u64>().is_ok() => Ok(text.to_string()),
        _ => Err(format!(
            "'{text}': expected K:nmi or K:init (K: the owner's progress)"
        )),
    }
}

/// The run's frames, checked before anything boots.
fn config(args: &NicArgs) -> Result<GenConfig> {
    host_frames(
        &args.size,
        mint_traffic::config::parse_count(&args.count)?,
        args.rate,
        &args.kind,
        &args.seed,
    )
}

/// Frames the host sends into the real NIC (`mint nic`, `mint handover`):
/// at most [`MAX_SIZE`] bytes (one receive buffer each), `rate` per second
/// (0: as fast as the host sends), checked before anything boots.
pub(crate) fn host_frames(
    size: &str,
    count: u32,
    rate: u64,
    kind: &str,
    seed: &str,
) -> Result<GenConfig> {
    let size = mint_traffic::config::parse_size(size)?;
    if size > MAX_SIZE {
        bail!(
            "--size {size}: the real NIC's receive buffers take frames of at most {MAX_SIZE} bytes"
        );
    }
    let cfg = GenConfig {
        size,
        count,
        interval_ns: if rate == 0 {
            0
        } else {
            1_000_000_000 / rate.max(1)
        },
        pattern: Pattern::Fixed,
        kind: kind.parse::<PacketKind>()?,
        seed: mint_traffic::config::parse_seed(seed)?,
        moderation: Default::default(),
        deliver: Default::default(),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The plan: `--config` as given (it must give the e1000 to `--node`), or
/// built from `--nodes` and `--node`.
fn nic_plan(args: &NicArgs) -> Result<mint_plan::Plan> {
    let node = NodeId(args.node);
    if args.node == 0 {
        bail!(
            "--node 0: node 0 runs the machine (and the interrupt layer); give the e1000 to another node"
        );
    }
    if args.machine.plan.config.is_some() {
        let (plan, _) = plan::load(&args.machine.plan)?;
        let owner = plan
            .nodes
            .iter()
            .find(|n| n.devices.contains(&Device::E1000))
            .map(|n| n.id);
        if owner != Some(node) {
            bail!(
                "--node {}: the plan gives the e1000 to {}",
                args.node,
                owner.map_or("no node".to_string(), |o| o.to_string())
            );
        }
        return Ok(plan);
    }
    let n = args
        .machine
        .plan
        .nodes
        .unwrap_or(2)
        .max(args.node.saturating_add(1));
    if args.machine.plan.nodes.is_some_and(|k| k <= args.node) {
        bail!(
            "--node {}: the plan has {} nodes",
            args.node,
            args.machine.plan.nodes.unwrap_or(0)
        );
    }
    let mut plan = mint_plan::Plan::default_nodes(n)?;
    plan.nodes[usize::from(args.node)]
        .devices
        .push(Device::E1000);
    plan.validate().context("partition plan rejected")?;
    Ok(plan)
}

/// Drops and queued bytes of the loopback UDP socket bound to `port`
/// (`/proc/net/udp`: `rx_queue` and `drops`), if it is there.
pub(crate) fn udp_socket_stats(port: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!("0100007F:{port:04X}");
    let mut rows = table.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&local.as_str()) {
            return None;
        }
        let rx_queue = f
            .get(4)?
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())?;
        let drops = f.last()?.parse().ok()?;
        Some((rx_queue, drops))
    });
    let first = rows.next()?;
    // Two sockets on the port would make the row ambiguous: attribute
    // nothing rather than another socket's drops. (QEMU's socket is mint's,
    // bound without SO_REUSEADDR, so no other can share its port; the check
    // keeps a row from ever being misattributed.)
    rows.next().is_none().then_some(first)
}

/// What the sender did.
pub(crate) struct Sent {
    /// Datagrams the host's kernel took.
    pub sent: u64,
    /// Sends the kernel refused (e.g. no buffer).
    pub send_errors: u64,
    /// First and last send, on the host's TSC.
    pub first_tsc: u64,
    pub last_tsc: u64,
    pub elapsed: Duration,
    /// Sends that were due more than one interval before they went out.
    pub late: u64,
}

/// When a sender stops before its count: once `flag` is set, after `tail`
/// more frames (the traffic that follows the last event it waited for).
pub(crate) struct Stop<'a> {
    pub flag: &'a std::sync::atomic::AtomicBool,
    pub tail: u32,
}

/// Sends `cfg.count` frames of run `run` from `socket` to QEMU's port:
/// each at its absolute deadline `start + seq * interval` (a late frame
/// goes at once; nothing is sent early, so the rate never exceeds the one
/// asked for, and the report says how far behind it fell). With `stop`,
/// it stops early (e.g. once the owner is down).
pub(crate) fn send_frames(
    socket: &UdpSocket,
    to: u16,
    cfg: &GenConfig,
    run: u32,
    stop: Option<Stop<'_>>,
) -> Result<Sent> {
    let endpoints = Endpoints {
        dst_mac: parse_mac(E1000_MAC),
        ..Endpoints::default()
    };
    let mut template = FrameTemplate::from_config(cfg, &endpoints)?;
    template.set_run(run as u8);
    let interval = Duration::from_nanos(cfg.interval_ns);
    let start = Instant::now();
    let mut out = Sent {
        sent: 0,
        send_errors: 0,
        first_tsc: 0,
        last_tsc: 0,
        elapsed: Duration::ZERO,
        late: 0,
    };
    let mut tail_left: Option<u32> = None;
    for seq in 0..cfg.count {
        if seq % 256 == 0 && crate::shutdown::requested().is_some() {
            break;
        }
        if let Some(stop) = &stop {
            match tail_left {
                Some(0) => break,
                Some(ref mut n) => *n -= 1,
                None if stop.flag.load(std::sync::atomic::Ordering::Acquire) => {
                    tail_left = Some(stop.tail)
                }
                None => {}
            }
        }
        let due = start + interval * seq;
        let now = Instant::now();
        if now < due {
            let wait = due - now;
            // Sleep the bulk, spin the last stretch (sleeps overshoot).
            if wait > Duration::from_micros(200) {
                std::thread::sleep(wait - Duration::from_micros(100));
            }
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        } else if !interval.is_zero() && now - due > interval {
            out.late += 1;
        }
        let tsc = crate::os::rdtsc();
        let frame = template.stamp_own(seq, tsc);
        match socket.send_to(frame, ("127.0.0.1", to)) {
            Ok(_) => {
                out.sent += 1;
                if out.first_tsc == 0 {
                    out.first_tsc = tsc;
                }
                out.last_tsc = tsc;
            }
            Err(_) => out.send_errors += 1,
        }
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

pub(crate) fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (b, part) in mac.iter_mut().zip(text.split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    mac
}

/// The host's end and QEMU's end of the e1000's wire: two loopback UDP
/// sockets, QEMU's bound to a port the kernel picks and connected to the
/// host's, passed to QEMU as an inherited descriptor (`-netdev dgram
/// local.type=fd`: no port to race for). mint keeps its copy of QEMU's
/// socket open to the end, so the socket's `/proc/net/udp` row (the
/// host's drops on it) outlives QEMU.
pub(crate) struct HostLink {
    /// Where mint sends from (taken by the sender thread).
    pub host: Option<UdpSocket>,
    pub host_port: u16,
    qemu: UdpSocket,
    pub qemu_port: u16,
}

impl HostLink {
    pub fn new() -> Result<HostLink> {
        let host =
            UdpSocket::bind("127.0.0.1:0").context("binding the host's loopback UDP socket")?;
        let host_port = host.local_addr()?.port();
        let qemu = UdpSocket::bind("127.0.0.1:0").context("binding QEMU's loopback UDP socket")?;
        qemu.connect(("127.0.0.1", host_port))
            .context("connecting QEMU's UDP socket to the host's")?;
        let qemu_port = qemu.local_addr()?.port();
        Ok(HostLink {
            host: Some(host),
            host_port,
            qemu,
            qemu_port,
        })
    }

    /// QEMU's `-netdev` for it.
    pub fn netdev(&self) -> String {
        format!(
            "dgram,id=mintnet0,local.type=fd,local.str={}",
            self.qemu.as_raw_fd()
        )
    }

    /// The descriptor QEMU inherits.
    pub fn inherit(&self) -> Vec<std::os::fd::RawFd> {
        vec![self.qemu.as_raw_fd()]
    }

    /// Drops and queued bytes of QEMU's socket now.
    pub fn stats(&self) -> Option<(u64, u64)> {
        udp_socket_stats(self.qemu_port)
    }
}

/// `-netdev dgram` with `local.type=fd` came with the backend itself in
/// QEMU 7.2; an older QEMU has neither, so there is nothing to fall back to.
pub(crate) fn check_qemu(qemu: &std::path::Path) -> Result<()> {
    match crate::qemu::version(qemu) {
        Some((major, minor)) if (major, minor) < (7, 2) => bail!(
            "mint nic needs QEMU 7.2 or newer (-netdev dgram with local.type=fd); {} is {major}.{minor}",
            qemu.display()
        ),
        _ => Ok(()),
    }
}

pub fn run(args: NicArgs) -> Result<ExitCode> {
    let report = measure(&args)?;
    crate::emit(&report, args.json, print_summary)
}

/// One `mint nic` run: boots, sends, returns the report (`mint bench`
/// takes its e1000 row from it).
pub(crate) fn measure(args: &NicArgs) -> Result<Value> {
    let cfg = config(args).context("bad nic settings")?;
    let plan = nic_plan(args)?;
    let mut link = HostLink::new()?;
    let (host_port, qemu_port) = (link.host_port, link.qemu_port);
    let prepared = crate::machine::prepare(&args.machine, args.json)?;
    check_qemu(&prepared.qemu)?;
    let rate_s = if cfg.interval_ns == 0 {
        0
    } else {
        u64::from(cfg.count) * cfg.interval_ns / 1_000_000_000
    };
    let timeout = args
        .machine
        .timeout_or(120 + rate_s + u64::from(cfg.count) / 2_000);
    let log_dir = prepared.log_dir.clone();
    let kv = format!(
        "size={},count={},interval=0,pattern=fixed,kind={},seed={}",
        cfg.size,
        cfg.count,
        cfg.kind.as_str(),
        cfg.seed
    );
    errln!(
        "mint: nic: {} frames of {} bytes to {} at {}, from 127.0.0.1:{host_port} to QEMU's 127.0.0.1:{qemu_port}",
        cfg.count,
        cfg.size,
        NodeId(args.node),
        if args.rate == 0 {
            "the host's pace".to_string()
        } else {
            format!("{} frames/s", args.rate)
        }
    );
    let machine = Machine::start(Options {
        prepared: &prepared,
        plan: &plan,
        cmdline: vec!["mint.mode=nic".into(), format!("mint.gen={kv}")]
            .into_iter()
            .chain(args.stop_owner.iter().map(|s| format!("mint.nic_stop={s}")))
            .collect(),
        echo: if args.json {
            Echo::Stderr
        } else {
            Echo::Stdout
        },
        netdevs: vec![link.netdev()],
        inherit: link.inherit(),
    })?;
    let console: Node0Input = machine.node0_input();
    let (sent_tx, sent_rx) = mpsc::channel::<Result<Sent>>();
    let mut sender: Option<std::thread::JoinHandle<()>> = None;
    let mut record: Option<Value> = None;
    let mut error: Option<String> = None;
    let mut socket_at_start: Option<(u64, u64)> = None;
    let mut socket_at_end: Option<(u64, u64)> = None;
    let mut samples = Samples::default();
    let mut sample_error: Option<anyhow::Error> = None;
    let owner = NodeId(args.node);
    let mut tsc_offset: Option<i64> = None;
    let stop = Arc::new(AtomicBool::new(false));
    let mut owner_down: Option<String> = None;
    let outcome = machine.finish(timeout, |ev| {
        let Event::Line { node, text } = ev else {
            return;
        };
        if text.starts_with("MINT-SAMPLES") {
            if node == owner
                && let Err(e) = samples.take(&text)
            {
                sample_error.get_or_insert(e);
            }
            return;
        }
        if node != NodeId(0) {
            return;
        }
        if let Some((run, guest_tsc)) = text
            .strip_prefix("MINT-NIC-ARMED run=")
            .and_then(|r| r.trim().split_once(" tsc="))
            .and_then(|(r, t)| Some((r.parse::<u32>().ok()?, t.parse::<u64>().ok()?)))
        {
            // The host's TSC now minus node 0's when it printed the line:
            // at least the true host-minus-guest offset (the line took
            // some time to arrive), so latencies corrected with it are
            // upper bounds.
            tsc_offset = Some(crate::os::rdtsc() as i64 - guest_tsc as i64);
            socket_at_start = link.stats();
            let (Some(socket), None) = (link.host.take(), &sender) else {
                return;
            };
            let (cfg, console, tx, stop) = (cfg, console.clone(), sent_tx.clone(), stop.clone());
            sender = Some(std::thread::spawn(move || {
                let stop = Some(Stop {
                    flag: &stop,
                    tail: 0,
                });
                let result = send_frames(&socket, qemu_port, &cfg, run, stop);
                // Node 0 waits for this line to close the injection; a
                // sender that failed before sending says 0, so the run ends
                // and the error (below) is reported, not a timeout.
                let n = result.as_ref().map_or(0, |s| s.sent);
                let _ = console.write(format!("sent {n}\n").as_bytes());
                let _ = tx.send(result);
            }));
        } else if let Some(why) = text.strip_prefix("MINT-NIC-OWNER-DOWN ") {
            // Nobody takes the frames any more: stop sending (node 0 still
            // waits for `sent N`).
            stop.store(true, Ordering::Relaxed);
            owner_down.get_or_insert_with(|| why.trim().to_string());
        } else if let Some(j) = text.strip_prefix("MINT-NIC ") {
            socket_at_end = link.stats();
            record = serde_json::from_str(j).ok();
        } else if let Some(e) = text.strip_prefix("MINT-ERROR ") {
            error = Some(e.to_string());
        }
    });
    // Kept (never read) until here: QEMU may exit right after node 0's
    // record, and the socket's /proc/net/udp row, read at that record,
    // must still be there.
    drop(link);
    outcome.check_stopped()?;
    if outcome.timed_out {
        // A sender that failed never told node 0 it was done, so node 0
        // waited on: name that failure, not only the timeout it caused.
        if let Ok(Err(e)) = sent_rx.try_recv() {
            bail!(
                "sending the frames failed ({e:#}), so the run never ended; stopped the machine after the {} s timeout; consoles in {}",
                timeout.as_secs(),
                log_dir.display()
            );
        }
        if let Some(why) = &owner_down {
            bail!(
                "{why} during the run; stopped the machine after the {} s timeout; consoles in {}",
                timeout.as_secs(),
                log_dir.display()
            );
        }
        bail!(
            "stopped the machine after the {} s timeout; consoles in {}",
            timeout.as_secs(),
            log_dir.display()
        );
    }
    if let Some(e) = error {
        bail!("node 0: {e}");
    }
    let Some(record) = record else {
        bail!(
            "the machine ended without a nic record (QEMU exit {:?}); QEMU said: {}; consoles in {}",
            outcome.status.and_then(|s| s.code()),
            outcome.qemu_stderr.trim(),
            log_dir.display()
        );
    };
    if let Some(e) = sample_error {
        return Err(e.context("reading the owner's raw samples"));
    }
    let sent = sent_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the sender never finished")??;
    if let Some(h) = sender {
        let _ = h.join();
    }
    let report = summarize(
        args,
        &cfg,
        &record,
        &sent,
        socket_at_start,
        socket_at_end,
        &samples,
        tsc_offset,
        prepared.accel.as_str(),
        &log_dir,
    )?;
    if let Some(why) = report["owner_down"]["reason"].as_str() {
        errln!(
            "mint: nic: {why} during the run; {} of {} frames sent unaccounted (what it received but never published, and what was left in the NIC's ring, QEMU and the host's socket); consoles in {}",
            report["unaccounted"],
            report["sent"],
            log_dir.display()
        );
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    args: &NicArgs,
    cfg: &GenConfig,
    rec: &Value,
    sent: &Sent,
    socket_at_start: Option<(u64, u64)>,
    socket_at_end: Option<(u64, u64)>,
    samples: &Samples,
    tsc_offset: Option<i64>,
    accel: &str,
    log_dir: &std::path::Path,
) -> Result<Value> {
    let tsc_hz = rec["tsc_hz"]
        .as_f64()
        .filter(|&h| h > 0.0)
        .context("record without tsc_hz")?;
    let node_sent = rec["sent"].as_u64().unwrap_or(0);
    if node_sent != sent.sent {
        bail!(
            "node 0 recorded {node_sent} frames sent, the host sent {}",
            sent.sent
        );
    }
    let delivered = rec["delivered"].as_u64().unwrap_or(0);
    let completed = rec["completed"].as_bool() == Some(true);
    let corrupted = rec["corrupted"].as_u64().unwrap_or(u64::MAX);
    let node_dropped: u64 = rec["dropped"]
        .as_object()
        .map(|d| d.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    // Datagrams the host's kernel dropped on QEMU's socket during the run.
    let lost_before_nic = match (socket_at_start, socket_at_end) {
        (Some((_, a)), Some((_, b))) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let queued_bytes = socket_at_end.map(|(q, _)| q);
    let unaccounted = sent.sent as i64
        - delivered as i64
        - node_dropped as i64
        - lost_before_nic.unwrap_or(0) as i64;
    // Each sample is the owner's TSC at the application minus the host's
    // at send (wrapping); plus the host-minus-guest offset, an upper bound
    // of the time from the host's send to the application.
    let offset = tsc_offset.unwrap_or(0);
    // An owner that never completed the run never printed its samples:
    // none, rather than an error that hides the accounting.
    let metric = |name| match samples.metric(name) {
        Err(_) if !completed => Ok(&[][..]),
        other => other,
    };
    let latency: Vec<u64> = metric("latency")?
        .iter()
        .map(|&v| (v as i64).saturating_add(offset).max(0) as u64)
        .collect();
    let latency = latency.as_slice();
    let intervals = metric("irq_interval")?;
    let bytes = rec["delivered_bytes"].as_u64().unwrap_or(0);
    // First send (host TSC) to last delivery (the owner's TSC): one clock
    // where the guest's TSC is the host's (software emulation here).
    let span = (rec["last_delivery_tsc"].as_u64().unwrap_or(0) as i64)
        .saturating_add(offset)
        .saturating_sub(sent.first_tsc as i64)
        .max(0) as u64;
    let throughput =
        (span > 0 && bytes > 0).then(|| bytes as f64 * 8.0 / (span as f64 / tsc_hz) / 1e9);
    let achieved =
        (sent.elapsed.as_secs_f64() > 0.0).then(|| sent.sent as f64 / sent.elapsed.as_secs_f64());
    let device = rec["irq"]["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["device"] == "nic0"))
        .cloned()
        .unwrap_or(Value::Null);
    let same_clock = accel == "tcg";
    let accounted = completed && unaccounted == 0 && corrupted == 0 && lost_before_nic.is_some();
    let owner_down = rec.get("owner_down").cloned().unwrap_or(Value::Null);
    let verdict = if let Some(why) = owner_down["reason"].as_str() {
        format!("FAILED: {why} during the run ({unaccounted} frames unaccounted)")
    } else if accounted && delivered == sent.sent {
        "every frame delivered".to_string()
    } else if accounted {
        format!(
            "every frame accounted for, not every frame delivered: {delivered} of {} delivered",
            sent.sent
        )
    } else {
        "FAILED: frames unaccounted or corrupted, or the run did not complete".to_string()
    };
    let samples_path = log_dir.join(format!("nic-samples-run{}.json", rec["run"]));
    std::fs::write(
        &samples_path,
        serde_json::to_vec(&json!({
            "unit": "tsc_ticks", "tsc_hz": tsc_hz, "latency": latency, "irq_interval": intervals,
        }))?,
    )
    .with_context(|| format!("cannot write {}", samples_path.display()))?;
    Ok(json!({
        "accel": accel,
        "node": args.node,
        "config": rec["config"],
        "rate": {
            "requested_pps": args.rate,
            "achieved_pps": achieved,
            "late_sends": sent.late,
            "send_seconds": sent.elapsed.as_secs_f64(),
        },
        "sent": sent.sent,
        "send_errors": sent.send_errors,
        "delivered": delivered,
        "dropped": rec["dropped"],
        "missed_by_nic": rec["dropped"]["ring_full"],
        "lost_before_nic": lost_before_nic,
        "host_socket_queued_bytes": queued_bytes,
        "unaccounted": unaccounted,
        "corrupted": corrupted,
        "out_of_order": rec["out_of_order"],
        "interrupts": rec["interrupts"],
        "delivered_bytes": bytes,
        "throughput_gbps": throughput,
        "latency_ns": {
            "summary": summary_ns(latency, tsc_hz),
            "clock": "host TSC at send to the owner's TSC in its application, the owner's converted with host-minus-node-0 offset measured at MINT-NIC-ARMED (an upper bound: it includes that line's console delay)",
            "tsc_offset_ticks": tsc_offset,
            "upper_bound": true,
            "trusted": same_clock && tsc_offset.is_some(),
        },
        "irq_interval_ns": summary_ns(intervals, tsc_hz),
        "device": device,
        "irq": rec["irq"],
        "tsc_hz": tsc_hz,
        "completed": completed,
        "incomplete": rec.get("incomplete").cloned().unwrap_or(Value::Null),
        "owner_down": owner_down,
        "verdict": verdict,
        "ok": accounted,
        "samples_file": samples_path.display().to_string(),
        "log_dir": log_dir.display().to_string(),
        "frames": cfg.count,
    }))
}

fn print_summary(r: &Value) {
    let f = |v: &Value| v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.0}"));
    outln!();
    outln!(
        "nic: {} to node {} (accel {})",
        r["config"],
        r["node"],
        r["accel"].as_str().unwrap_or("?")
    );
    let d = &r["device"];
    outln!(
        "device nic0: owner node {}, {} {} on vector {} ({}), {} interrupts this run",
        d["owner"],
        d["gsi"]
            .as_u64()
            .map_or("no GSI".into(), |g| format!("GSI {g}")),
        d["trigger"].as_str().unwrap_or("?"),
        d["vector"]
            .as_u64()
            .map_or("none".into(), |v| format!("{v:#x}")),
        d["state"].as_str().unwrap_or("?"),
        r["interrupts"]
    );
    outln!(
        "rate: requested {} frames/s, achieved {} frames/s ({} late sends)",
        r["rate"]["requested_pps"],
        f(&r["rate"]["achieved_pps"]),
        r["rate"]["late_sends"]
    );
    outln!(
        "sent {}  delivered {}  missed by the NIC (MPC) {}  lost before the NIC {}  unaccounted {}  corrupted {}",
        r["sent"],
        r["delivered"],
        r["missed_by_nic"],
        r["lost_before_nic"],
        r["unaccounted"],
        r["corrupted"]
    );
    crate::generate::print_drops(r);
    outln!(
        "host send to application: p50 {} ns, p99 {} ns ({}); interrupt interval p50 {} ns",
        f(&r["latency_ns"]["summary"]["p50"]),
        f(&r["latency_ns"]["summary"]["p99"]),
        if r["latency_ns"]["trusted"] == true {
            "an upper bound: the guest's TSC related to the host's through the console"
        } else {
            "IN DOUBT: the guest's TSC need not be the host's"
        },
        f(&r["irq_interval_ns"]["p50"]),
    );
    outln!(
        "delivered throughput (payload bytes, first send to last delivery): {} Gbps",
        r["throughput_gbps"]
            .as_f64()
            .map_or("n/a".into(), |x| format!("{x:.4}"))
    );
    outln!("verdict: {}", r["verdict"].as_str().unwrap_or("?"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nic_mac_parses() {
        assert_eq!(parse_mac(E1000_MAC), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    }

    #[test]
    fn a_missing_socket_has_no_stats() {
        // Port 0 is never a bound socket's.
        assert_eq!(udp_socket_stats(0), None);
    }

    #[test]
    fn own_socket_is_found_in_proc_net_udp() {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = s.local_addr().expect("addr").port();
        let (queued, drops) = udp_socket_stats(port).expect("listed");
        assert_eq!((queued, drops), (0, 0));
    }
}
