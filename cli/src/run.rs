//! `mint run`: the machine with node 0's shell on the terminal. Lines typed
//! on stdin go to node 0's console; when the shell powers the machine off
//! (`exit`) or stdin ends, the run is over.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

use crate::machine::{Echo, Event, Machine, Options};
use crate::{MachineArgs, plan};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let (plan, _layout) = plan::load(&args.machine)?;
    let prepared = crate::machine::prepare(&args.machine, false)?;
    let log_dir = prepared.log_dir.clone();
    let mut machine = Machine::start(Options {
        prepared: &prepared,
        plan: &plan,
        cmdline: vec!["mint.mode=run".into()],
        echo: Echo::Stdout,
    })?;
    // Forward stdin lines to node 0's shell from a separate thread.
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    let started = Instant::now();
    let timeout = args.machine.timeout.map(Duration::from_secs);
    let mut shell_ready = false;
    let mut powered_off = false;
    let mut node0_error: Option<String> = None;
    // Once `exit` is typed (or input ends), the machine has this long to go.
    let mut leaving: Option<Instant> = None;
    while machine.running() {
        while let Some(ev) = machine.next_event(Duration::from_millis(20)) {
            if let Event::Line { node, text } = ev {
                if node.0 != 0 {
                    continue;
                }
                shell_ready |= text.starts_with("mint shell on node0");
                powered_off |= text == "MINT-POWEROFF";
                if let Some(e) = text.strip_prefix("MINT-ERROR ") {
                    node0_error = Some(e.to_string());
                }
            }
        }
        let expired = timeout.is_some_and(|t| started.elapsed() > t)
            || leaving.is_some_and(|t| t.elapsed() > Duration::from_secs(10));
        if expired || node0_error.is_some() {
            break;
        }
        // Input waits for the shell: bytes typed before node 0 listens
        // would be lost.
        if powered_off || !shell_ready {
            continue;
        }
        match rx.try_recv() {
            Ok(Some(line)) => {
                if matches!(line.trim(), "exit" | "quit" | "poweroff") {
                    leaving.get_or_insert_with(Instant::now);
                }
                machine.type_to_node0(format!("{line}\r").as_bytes())?;
            }
            // End of input: leave the shell as `exit` would.
            Ok(None) => {
                if leaving.is_none() {
                    leaving = Some(Instant::now());
                    machine.type_to_node0(b"exit\r")?;
                }
            }
            Err(_) => {}
        }
    }
    // Powered off: QEMU is ending by itself; otherwise it is stopped now.
    let outcome = machine.finish(Duration::from_secs(if powered_off { 5 } else { 0 }), |_| {});
    if let Some(e) = node0_error {
        bail!("node 0: {e}; consoles in {}", log_dir.display());
    }
    if !powered_off {
        bail!(
            "the machine did not power off ({}); consoles in {}",
            if outcome.timed_out {
                "stopped it"
            } else {
                "QEMU ended"
            },
            log_dir.display()
        );
    }
    eprintln!(
        "mint: machine stopped; consoles logged in {}",
        log_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
