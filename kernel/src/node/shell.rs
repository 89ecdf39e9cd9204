//! Node 0's interactive shell on its console (`mint run`).

use alloc::string::String;
use core::sync::atomic::Ordering;

use mint_abi::NodeId;
use mint_abi::node::NodeState;
use mint_abi::shared::REASON_LEN;

use crate::arch::serial;
use crate::{print, println, shared};

use super::monitor::{self, Watch};

const HELP: &str = "commands:
  help              this text
  nodes             the node state table
  ping <node> [n]   n timed IPI round trips to a node (default 8)
  pingpong <node> [n]
                    n round trips (default 1000, at most 10000) of
                    messages through the mailbox to a node, both cores
                    polling, no IPI; prints MINT-SAMPLES (TSC ticks) and a
                    MINT-PINGPONG-END line, for `mint bench`
  gen k=v ...       one interrupt-generator run against the debug NIC, e.g.
                    gen size=1500 count=5000 interval=2000 pattern=fixed kind=udp seed=1
                    (size 60..16384 bytes, interval in ns, 0 = back to back;
                    pattern fixed|poisson|burst:K; kind udp|raw; corrupt=N
                    corrupts every Nth descriptor write-back, forget_ipi=N
                    loses every Nth IPI, stale=N stamps every Nth frame
                    with the previous run's id)
  gen-record k=v ...
                    the same run, reported as `mint gen` reads it (the
                    MINT-GEN record and every raw sample, the target's
                    too), then a MINT-GEN-END line: `mint bench` drives
                    run after run in one boot with it
  devices           the interrupt layer's devices: owner, GSI/vector, state,
                    interrupts serviced by the owner
  route             the interrupt layer's routing table
  handover <device> <node>
                    hand a device (nic0) from its owner to <node> through
                    the interrupt layer, e.g. handover nic0 1
  exit              halt every node and power the machine off";

/// Reads and runs commands until `exit`.
pub fn run() -> ! {
    println!("mint shell on node0; type 'help'");
    let mut watch = [Watch::default(); mint_abi::shared::MAX_NODES];
    let mut line = String::new();
    print!("mint> ");
    loop {
        monitor::check_heartbeats(&mut watch);
        let Some(b) = serial::try_read() else {
            x86_64::instructions::hlt();
            continue;
        };
        match b {
            b'\r' | b'\n' => {
                println!();
                let cmd = core::mem::take(&mut line);
                if execute(cmd.trim()) == Flow::Exit {
                    monitor::power_off();
                }
                print!("mint> ");
            }
            0x08 | 0x7f => {
                line.pop();
            }
            b if (b.is_ascii_graphic() || b == b' ') && line.len() < 256 => line.push(b as char),
            _ => {}
        }
    }
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

fn execute(cmd: &str) -> Flow {
    let mut words = cmd.split_whitespace();
    match words.next() {
        None => {}
        Some("help") => println!("{HELP}"),
        Some("nodes") => nodes(),
        Some("ping") => ping(words.next(), words.next()),
        Some("pingpong") => pingpong(words.next(), words.next()),
        Some("gen") => {
            let _ = generate(cmd.trim_start_matches("gen").trim(), false);
        }
        Some("gen-record") => {
            // One line the CLI waits for, whatever happened: `ok`, `failed`
            // (the record says why) or `error <why>` (no run, or no record).
            match generate(cmd.trim_start_matches("gen-record").trim(), true) {
                Some(true) => println!("MINT-GEN-END ok"),
                Some(false) => println!("MINT-GEN-END failed"),
                None => println!("MINT-GEN-END error"),
            }
        }
        Some("devices") => println!("{}", crate::irq::devices_table()),
        Some("route") => println!("{}", crate::irq::routes_table()),
        Some("handover") => handover(words.next(), words.next(), words.next()),
        Some("exit" | "quit" | "poweroff") => return Flow::Exit,
        Some(other) => println!("unknown command '{other}'; type 'help'"),
    }
    Flow::Continue
}

fn nodes() {
    println!("node  state     apic  heartbeats  os     reason");
    for id in (0..super::node_count()).map(NodeId) {
        let slot = shared::slot(id);
        let state = slot.state().map_or("garbage", |s| s.as_str());
        let mut buf = [0u8; REASON_LEN];
        let reason = if slot.state() == Some(NodeState::Crashed) {
            slot.reason(&mut buf)
        } else {
            ""
        };
        let linux = super::boot0::record()
            .plan
            .nodes
            .iter()
            .any(|n| n.id == id && matches!(n.os, mint_plan::Os::Linux(_)));
        let os = if linux { "linux" } else { "mint" };
        println!(
            "{:<5} {:<9} {:<5} {:<11} {:<6} {}",
            id.0,
            state,
            super::apic_of(id).0,
            slot.heartbeat.load(Ordering::Relaxed),
            os,
            reason
        );
    }
}

fn handover(device: Option<&str>, node: Option<&str>, extra: Option<&str>) {
    let (Some(device), Some(node), None) = (device, node, extra) else {
        println!("usage: handover <device> <node>, e.g. handover nic0 1");
        return;
    };
    if device != "nic0" {
        println!("handover: unknown device '{device}' (devices: nic0)");
        return;
    }
    let Some(to) = node.parse::<u8>().ok().filter(|&n| n < super::node_count()) else {
        println!(
            "handover: no node '{node}' (nodes are 0..{})",
            super::node_count() - 1
        );
        return;
    };
    let Some(from) = crate::irq::owner(crate::irq::NIC0) else {
        println!("handover: nic0 has no owner (orphaned); nothing to hand over");
        return;
    };
    match crate::irq::handover(from, NodeId(to), &mut || x86_64::instructions::hlt()) {
        Ok(r) => println!(
            "handover: nic0 from {} to {} done in {} us (layer {} us, {} remote-IRR polls); steps: {}",
            r.from,
            r.to,
            super::ticks_to_ns(
                r.acked_at
                    .saturating_sub(r.trace.entries().first().map_or(0, |e| e.at))
            ) / 1000,
            super::ticks_to_ns(r.trace.duration()) / 1000,
            r.remote_irr_polls,
            r.trace
                .steps()
                .map(|s| s.as_str())
                .collect::<alloc::vec::Vec<_>>()
                .join(" "),
        ),
        Err(e) => println!("handover: {e}"),
    }
}

fn ping(node: Option<&str>, count: Option<&str>) {
    let Some(peer) = node.and_then(|n| n.parse::<u8>().ok()) else {
        println!("usage: ping <node> [count]");
        return;
    };
    if peer >= super::node_count() || NodeId(peer) == super::me() {
        println!(
            "ping: no peer node {peer} (nodes are 0..{})",
            super::node_count() - 1
        );
        return;
    }
    let count = match count.map(str::parse::<u32>) {
        None => 8,
        Some(Ok(c)) if (1..=10_000).contains(&c) => c,
        Some(_) => {
            println!("ping: count must be 1..10000");
            return;
        }
    };
    let peer = NodeId(peer);
    for seq in 0..count {
        match super::ping::ping_once(peer, seq) {
            Some(t) => println!(
                "reply from {peer}: seq {seq} rtt {} ns",
                super::ticks_to_ns(t)
            ),
            None => println!("no reply from {peer}: seq {seq} timed out"),
        }
    }
}

/// `pingpong <node> [n]`: polled mailbox round trips, as raw samples.
fn pingpong(node: Option<&str>, count: Option<&str>) {
    let peer = node
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|&p| p < super::node_count() && NodeId(p) != super::me());
    let rounds = match count.map(str::parse::<u32>) {
        None => Ok(1000),
        Some(Ok(c)) if (1..=super::ping::PINGPONG_MAX_ROUNDS).contains(&c) => Ok(c),
        Some(_) => Err("pingpong: n must be 1..10000"),
    };
    match (peer, rounds) {
        (None, _) => {
            println!("MINT-PINGPONG-END error usage: pingpong <node> [n], node another node")
        }
        (_, Err(e)) => println!("MINT-PINGPONG-END error {e}"),
        (Some(p), Ok(n)) => match super::ping::pingpong(NodeId(p), n) {
            Ok(ticks) => {
                crate::net::dump_samples(0, "pingpong_rtt", &ticks);
                println!("MINT-PINGPONG-END ok");
            }
            Err(e) => println!("MINT-PINGPONG-END error {e}"),
        },
    }
}

/// One generator run from the shell's `k=v` words; `record`: report it as
/// `mint gen` does (machine-readable), else as a summary for people.
/// `None` when no run took place (its reason printed), else whether every
/// frame was accounted for.
fn generate(args: &str, record: bool) -> Option<bool> {
    // `corrupt=N`, `forget_ipi=N` and `stale=N` are the shell's
    // fault-injection knobs; the rest is the run.
    let mut faults = crate::nic::support::Faults::default();
    let mut rest = String::new();
    for word in args.split_whitespace() {
        let knob = match word.split_once('=') {
            Some(("corrupt", v)) => Some((&mut faults.corrupt_every, "corrupt", v)),
            Some(("forget_ipi", v)) => Some((&mut faults.forget_ipi_every, "forget_ipi", v)),
            Some(("stale", v)) => Some((&mut faults.stale_every, "stale", v)),
            _ => None,
        };
        match knob {
            Some((slot, key, v)) => match v.parse() {
                Ok(n) => *slot = n,
                Err(_) => {
                    println!("gen: {key}={v}: not a number");
                    return None;
                }
            },
            None => {
                rest.push_str(word);
                rest.push(' ');
            }
        }
    }
    let cfg = match mint_traffic::GenConfig::from_kv(rest.trim())
        .and_then(|c| c.validate().map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            println!("gen: {e}");
            return None;
        }
    };
    let Some(target) = super::boot0::record().nic_target else {
        println!("gen: no debug NIC target on this machine (needs at least 2 nodes)");
        return None;
    };
    match super::generator::run(&cfg, target, faults, record) {
        Ok(accounted) => Some(accounted),
        Err(e) => {
            println!("{}{e}", if record { "MINT-ERROR " } else { "" });
            None
        }
    }
}
