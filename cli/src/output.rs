//! What mint shows a person: lines on stdout and stderr that never panic,
//! and the progress bar they make room for.
//!
//! Rust ignores SIGPIPE, so `println!` panics once stdout's reader has
//! gone. Here a failed stdout write is a stop request instead
//! ([`crate::shutdown`]): the machine is stopped and mint ends quietly. A
//! failed stderr write is ignored: stderr carries notes and, with
//! `--json`, the consoles, all of which are in the logs too.
//!
//! Progress bars go to stderr, and only when it is a terminal; lines
//! printed while one is shown are printed above it.

use std::fmt;
use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A line on stdout (`println!`, minus the panic).
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}

/// A line on stderr (`eprintln!`, minus the panic).
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!($($arg)*)) };
}

/// The bar on screen, if any: lines are printed around it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn shown_bar() -> Option<ProgressBar> {
    BAR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Runs `write` with the bar (if any) lifted off the screen.
fn around_bar<R>(write: impl FnOnce() -> R) -> R {
    match shown_bar() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

pub fn stdout(args: fmt::Arguments<'_>) {
    let result = around_bar(|| writeln!(std::io::stdout().lock(), "{args}"));
    if let Err(e) = result {
        crate::shutdown::output_failed((e.kind() != ErrorKind::BrokenPipe).then(|| e.to_string()));
    }
}

pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = around_bar(|| writeln!(std::io::stderr().lock(), "{args}"));
}

/// Whether progress bars are shown at all.
pub fn bars_wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar on stderr while it lives; does nothing when stderr is
/// not a terminal.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// `len` steps of `unit` (shown after the counts), labelled `what`.
    pub fn new(what: &str, len: u64, unit: &str) -> Bar {
        if !bars_wanted() {
            return Bar(None);
        }
        let template = format!(
            "{what:>12} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{percent}} %, {{elapsed}} elapsed, ETA {{eta}})"
        );
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(500));
        *BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
        Bar(Some(bar))
    }

    pub fn set(&self, pos: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(pos);
        }
    }

    /// Like [`Bar::set`] for a bar made before its work began: the first
    /// report starts its clock (elapsed time, rate and ETA).
    pub fn progress(&self, pos: u64) {
        if let Some(bar) = &self.0 {
            let first = bar.position() == 0;
            bar.set_position(pos);
            if first {
                bar.reset_elapsed();
                bar.reset_eta();
            }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            let mut shown = BAR.lock().unwrap_or_else(|p| p.into_inner());
            *shown = None;
            bar.finish_and_clear();
        }
    }
}
