//! `mint run`: the machine with node 0's shell on the terminal. Lines typed
//! on stdin go to node 0's console; when the shell powers the machine off
//! (`exit`) or stdin ends, the run is over.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
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
    let mut powered_off = false;
    while machine.running() {
        while let Some(ev) = machine.next_event(Duration::from_millis(20)) {
            if let Event::Line { node, text } = ev {
                powered_off |= node.0 == 0 && text == "MINT-POWEROFF";
            }
        }
        if powered_off {
            continue;
        }
        match rx.try_recv() {
            Ok(Some(line)) => machine.type_to_node0(format!("{line}\r").as_bytes())?,
            // End of input: leave the shell as `exit` would.
            Ok(None) => machine.type_to_node0(b"exit\r")?,
            Err(_) => {}
        }
    }
    let outcome = machine.finish(Duration::from_secs(5), |_| {});
    eprintln!(
        "mint: machine stopped; consoles logged in {}",
        log_dir.display()
    );
    Ok(if powered_off && !outcome.timed_out {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
