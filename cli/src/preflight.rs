//! What the flags name is checked before anything boots, so that no run's
//! result is lost at its end: the gdb port is free, the kernel image is an
//! x86-64 ELF, the pcap file can be written, and the log directory can be
//! written and is not in use by another run (an `flock` on its
//! `.mint.lock`, held for the run's life).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// `--gdb PORT`: QEMU must be able to listen there. Binds 127.0.0.1:PORT
/// and lets it go at once.
pub fn check_gdb_port(port: u16) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(e) => bail!(
            "--gdb {port}: cannot open the gdb stub on 127.0.0.1:{port} ({e}); is another \
             program (or mint run) using it? Choose another port"
        ),
    }
}

/// `--kernel ELF`: an existing file that starts as a 64-bit x86-64 ELF.
pub fn check_kernel(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).with_context(|| format!("--kernel {shown}: no such file"))?;
    if !meta.is_file() {
        bail!("--kernel {shown}: not a file");
    }
    let mut header = Vec::with_capacity(20);
    File::open(path)
        .and_then(|f| f.take(20).read_to_end(&mut header))
        .with_context(|| format!("--kernel {shown}: cannot read it"))?;
    if header.len() < 20 || header[..4] != *b"\x7fELF" {
        bail!("--kernel {shown}: not an ELF image");
    }
    // EI_CLASS 2 (64-bit), EI_DATA 1 (little-endian), e_machine 62 (x86-64).
    if header[4] != 2 || header[5] != 1 || u16::from_le_bytes([header[18], header[19]]) != 62 {
        bail!("--kernel {shown}: not a 64-bit x86-64 ELF image");
    }
    Ok(())
}

/// A file to write at the end of a run (`--pcap`), opened at its start.
/// Left as it was found if the run ends without writing it.
pub struct OutputFile {
    path: PathBuf,
    file: Option<File>,
    existed: bool,
}

impl OutputFile {
    pub fn claim(path: &Path, flag: &str) -> Result<OutputFile> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| {
                format!(
                    "{flag} {}: cannot create the file (does its directory exist and is it writable?)",
                    path.display()
                )
            })?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            file: Some(file),
            existed,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, emptied, to write the result into.
    pub fn take(&mut self) -> Result<File> {
        let file = self.file.take().context("output file already written")?;
        if file.metadata().is_ok_and(|m| m.is_file()) {
            file.set_len(0)?;
        }
        Ok(file)
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // Never written: remove what the claim created.
        if self.file.is_some() && !self.existed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The run's log directory, locked for the run's life.
pub struct LogDir {
    pub path: PathBuf,
    /// Holds the `flock`; the kernel releases it when mint exits.
    _lock: File,
}

const LOCK_FILE: &str = ".mint.lock";

impl LogDir {
    /// `--log-dir DIR`, or the default: `runs/<time>-<pid>` in the current
    /// directory, or under `$XDG_STATE_HOME/mint` (`~/.local/state/mint`)
    /// when the current directory is not writable.
    pub fn claim(explicit: Option<&Path>) -> Result<LogDir> {
        LogDir::claim_as(explicit, "--log-dir", "")
    }

    /// Like [`LogDir::claim`] for a directory given with `flag`, whose
    /// default is named `<prefix><time>-<pid>` (`mint bench --out`:
    /// `runs/bench-<time>-<pid>`).
    pub fn claim_as(explicit: Option<&Path>, flag: &str, prefix: &str) -> Result<LogDir> {
        if let Some(dir) = explicit {
            return LogDir::lock(dir, &format!("{flag} "));
        }
        let name = format!("{prefix}{}", run_name());
        let mut tried = Vec::new();
        for base in default_bases() {
            let dir = base.join(&name);
            match LogDir::lock(&dir, "output directory ") {
                Ok(log) => return Ok(log),
                Err(e) => tried.push(format!("{e:#}")),
            }
        }
        bail!(
            "no writable place for the run's files ({}); give one with {flag}",
            tried.join("; ")
        )
    }

    fn lock(dir: &Path, what: &str) -> Result<LogDir> {
        let shown = dir.display();
        std::fs::create_dir_all(dir).with_context(|| format!("{what}{shown}: cannot create it"))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("{what}{shown}: not writable"))?;
        if !crate::os::try_lock_exclusive(&lock)
            .with_context(|| format!("{what}{shown}: cannot lock {}", lock_path.display()))?
        {
            bail!(
                "{what}{shown}: in use by another mint run (it holds {}); choose another directory",
                lock_path.display()
            );
        }
        let path = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Ok(LogDir { path, _lock: lock })
    }
}

fn run_name() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{t}-{}", std::process::id())
}

/// Where default log directories go, in order of preference.
fn default_bases() -> Vec<PathBuf> {
    let mut bases = vec![PathBuf::from("runs")];
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    if let Some(state) = state {
        bases.push(state.join("mint").join("runs"));
    }
    bases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_dir_is_locked_once() {
        let tmp = std::env::temp_dir().join(format!("mint-preflight-{}", std::process::id()));
        let first = LogDir::claim(Some(&tmp)).expect("first claim");
        let second = LogDir::claim(Some(&tmp))
            .err()
            .expect("second claim refused");
        assert!(format!("{second:#}").contains("in use by another mint run"));
        drop(first);
        LogDir::claim(Some(&tmp)).expect("claimed again once released");
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn kernel_must_be_an_x86_64_elf() {
        let tmp = std::env::temp_dir().join(format!("mint-kernel-{}", std::process::id()));
        std::fs::write(&tmp, b"#!/bin/sh\n").expect("write");
        let e = check_kernel(&tmp).unwrap_err().to_string();
        assert!(e.contains("not an ELF image"), "{e}");
        let mut elf = *b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x03\0";
        std::fs::write(&tmp, elf).expect("write");
        let e = check_kernel(&tmp).unwrap_err().to_string();
        assert!(e.contains("not a 64-bit x86-64"), "{e}");
        elf[4] = 2;
        elf[18] = 62;
        std::fs::write(&tmp, elf).expect("write");
        check_kernel(&tmp).expect("x86-64 ELF header");
        let _ = std::fs::remove_file(&tmp);
        let e = check_kernel(&tmp).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
