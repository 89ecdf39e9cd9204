//! Ending early without leaving a machine behind.
//!
//! SIGINT, SIGTERM and SIGHUP, and a closed output (stdout's reader gone,
//! e.g. `mint boot | head -1`), are *stop requests*. While a machine runs
//! ([`guard`]), a signal only records itself: the main thread sees the
//! request on its next turn (every 50 ms or so), stops QEMU, removes the
//! socket directory and then ends mint as the signal would have (so the
//! caller sees "killed by SIGTERM", a shell `$?` of 143). Outside a
//! machine's life there is nothing to clean up, and a signal ends mint at
//! once by its default action. QEMU itself dies with mint in every case,
//! even SIGKILL ([`crate::os::die_with_parent`]).
//!
//! A closed stdout ends mint quietly, as SIGPIPE ends other tools (`$?`
//! 141); any other failure to write the consoles ends it with an error.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGPIPE, SIGTERM};

/// The signals that stop a run.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Why a run was stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// One of [`STOP_SIGNALS`].
    Signal(i32),
    /// Writing what mint shows failed: the reader has gone (`BrokenPipe`)
    /// or the output is unusable (the error's text).
    Output(Option<String>),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal(sig) => write!(f, "stopped by {}", signal_name(*sig)),
            Stop::Output(None) => f.write_str("stopped: the output was closed"),
            Stop::Output(Some(e)) => write!(f, "stopped: cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for Stop {}

fn signal_name(sig: i32) -> &'static str {
    signal_hook::low_level::signal_name(sig).unwrap_or("a signal")
}

/// The signal received while guarded (0: none).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Whether no machine runs: a signal then ends mint at once.
static UNGUARDED: AtomicBool = AtomicBool::new(true);
static OUTPUT: Mutex<Option<Stop>> = Mutex::new(None);

/// Installs the handlers; once, first thing in `main`.
pub fn install() -> std::io::Result<()> {
    for sig in STOP_SIGNALS {
        // The default action first: it ends mint before the flag is set
        // when no machine runs (signal-hook runs actions in order).
        signal_hook::flag::register_conditional_default(sig, &UNGUARDED)?;
        signal_hook::flag::register_usize(sig, &SIGNAL, sig as usize)?;
    }
    Ok(())
}

/// While alive, a stop signal is recorded for the main thread instead of
/// ending mint. Held by a running machine.
pub struct Guard(());

pub fn guard() -> Guard {
    UNGUARDED.store(false, Ordering::SeqCst);
    Guard(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        UNGUARDED.store(true, Ordering::SeqCst);
    }
}

/// Records that the output failed (`None`: closed by its reader).
pub fn output_failed(error: Option<String>) {
    OUTPUT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(Stop::Output(error));
}

/// A recorded failure of the output, if any (checked once a run is over:
/// a report cut short by a closed stdout ends mint as a stop does).
pub fn output_failure() -> Option<Stop> {
    OUTPUT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// What is left to act on once a command is done: a signal that came as
/// its machine was ending, or an output that failed (a report cut short
/// by a closed stdout). Either ends mint as a stop does.
pub fn pending() -> Option<Stop> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => output_failure(),
        sig => Some(Stop::Signal(sig as i32)),
    }
}

/// The stop request, if any: a signal, a failed output, or stdout's
/// reader gone (noticed before anything is written to it).
pub fn requested() -> Option<Stop> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => {}
        sig => return Some(Stop::Signal(sig as i32)),
    }
    if let Some(stop) = output_failure() {
        return Some(stop);
    }
    if crate::os::stdout_hung_up() {
        output_failed(None);
        return Some(Stop::Output(None));
    }
    None
}

/// Ends mint after a stop and its clean-up: by the signal's own default
/// action (SIGPIPE's for a closed output), so the caller sees what it
/// would have seen without the clean-up. Returns the exit code to use
/// only where that is not possible (a failed, not closed, output).
pub fn end(stop: &Stop) -> u8 {
    let sig = match stop {
        Stop::Signal(sig) => *sig,
        Stop::Output(None) => SIGPIPE,
        Stop::Output(Some(_)) => return 2,
    };
    let _ = signal_hook::low_level::emulate_default_handler(sig);
    // Not reached for a terminating signal; keep the shell's convention.
    128u8.saturating_add(u8::try_from(sig).unwrap_or(0))
}
