//! `mint run`: the machine with node 0's shell on the terminal. Lines typed
//! on stdin go to node 0's console; when the shell powers the machine off
//! (`exit`) or stdin ends, the run is over.
//!
//! mint says at once that the machine is booting; lines typed before node
//! 0's shell is ready are kept and sent to it in order once it is.

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
    let (plan, _layout) = plan::load(&args.machine.plan)?;
    errln!(
        "mint: booting {} nodes; node 0's shell (`mint> `) answers once they run. \
         Type ahead: what you type now is kept.",
        plan.nodes.len()
    );
    // Forward stdin lines to node 0's shell from a separate thread; lines
    // typed during the build and the boot wait in the channel.
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
    let prepared = crate::machine::prepare(&args.machine, false)?;
    let log_dir = prepared.log_dir.clone();
    let mut machine = Machine::start(Options {
        prepared: &prepared,
        plan: &plan,
        cmdline: vec!["mint.mode=run".into()],
        echo: Echo::Stdout,
        netdevs: Vec::new(),
        inherit: Vec::new(),
    })?;
    let started = Instant::now();
    let timeout = args.machine.timeout.map(Duration::from_secs);
    let mut shell = ShellState::default();
    // Lines typed into the shell, and whether the last one left it.
    let mut typed = 0usize;
    let mut exit_typed = false;
    // Once the shell has read `exit` (every line it reads ends a `mint> `
    // line on its console), the machine has this long to power off.
    let mut leaving: Option<Instant> = None;
    while machine.running() {
        while let Some(ev) = machine.next_event(Duration::from_millis(20)) {
            shell.observe(ev);
        }
        if exit_typed && leaving.is_none() && shell.prompts >= typed {
            leaving = Some(Instant::now());
        }
        let expired = timeout.is_some_and(|t| started.elapsed() > t)
            || leaving.is_some_and(|t| t.elapsed() > Duration::from_secs(10));
        if expired || shell.node0_error.is_some() || crate::shutdown::requested().is_some() {
            break;
        }
        // Input waits for the shell: bytes typed before node 0 listens
        // would be lost.
        if shell.powered_off || !shell.ready || exit_typed {
            continue;
        }
        let line = match rx.try_recv() {
            Ok(Some(line)) => line,
            // End of input: leave the shell as `exit` would.
            Ok(None) => "exit".to_string(),
            Err(_) => continue,
        };
        exit_typed = matches!(line.trim(), "exit" | "quit" | "poweroff");
        typed += 1;
        machine.type_to_node0(format!("{line}\r").as_bytes())?;
    }
    // Powered off: QEMU is ending by itself; otherwise it is stopped now.
    let still_running = machine.running();
    let outcome = machine.finish(
        Duration::from_secs(if shell.powered_off { 5 } else { 0 }),
        |ev| shell.observe(ev),
    );
    outcome.check_stopped()?;
    if let Some(e) = shell.node0_error {
        bail!("node 0: {e}; consoles in {}", log_dir.display());
    }
    if !shell.powered_off {
        bail!(
            "the machine did not power off ({}); consoles in {}",
            if still_running && outcome.timed_out {
                "stopped it"
            } else {
                "QEMU ended"
            },
            log_dir.display()
        );
    }
    errln!(
        "mint: machine stopped; consoles logged in {}",
        log_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What node 0's console has told about its shell so far.
#[derive(Default)]
struct ShellState {
    ready: bool,
    /// Lines starting with the prompt: the shell ends the prompt's line
    /// when it reads a line, so one per line read.
    prompts: usize,
    powered_off: bool,
    node0_error: Option<String>,
}

impl ShellState {
    fn observe(&mut self, ev: Event) {
        let Event::Line { node, text } = ev else {
            return;
        };
        if node.0 != 0 {
            return;
        }
        self.ready |= text.starts_with("mint shell on node0");
        self.prompts += usize::from(text.starts_with("mint> "));
        self.powered_off |= text == "MINT-POWEROFF";
        if let Some(e) = text.strip_prefix("MINT-ERROR ") {
            self.node0_error = Some(e.to_string());
        }
    }
}
