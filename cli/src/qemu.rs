//! QEMU: finding (or installing) it, choosing the accelerator, and the
//! command line of a mint machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const QEMU: &str = "qemu-system-x86_64";

/// The QEMU binary; installs Debian's `qemu-system-x86` when missing and
/// running as root, otherwise says how.
pub fn find_or_install() -> Result<PathBuf> {
    if let Some(p) = which(QEMU) {
        return Ok(p);
    }
    if !is_root() {
        bail!(
            "{QEMU} not found. Install it with:\n  sudo apt-get update && sudo apt-get install -y qemu-system-x86"
        );
    }
    eprintln!("mint: {QEMU} not found; installing Debian's qemu-system-x86 (running as root)");
    let ok = Command::new("apt-get")
        .arg("update")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && Command::new("apt-get")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "qemu-system-x86",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        bail!(
            "installing qemu-system-x86 failed; install it by hand: apt-get install -y qemu-system-x86"
        );
    }
    which(QEMU).context("qemu-system-x86 installed but qemu-system-x86_64 is still not on PATH")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // The effective UID from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The accelerator a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Why KVM is not usable here, or `None` when it is backed by hardware
/// virtualization. A /dev/kvm that merely opens is not enough: software-
/// nested KVM (no vmx/svm in the host CPU flags) fails on the guest's first
/// SSE instruction.
pub fn kvm_unusable_reason() -> Option<String> {
    if !Path::new("/dev/kvm").exists() {
        return Some("/dev/kvm does not exist".into());
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Some("/dev/kvm cannot be opened read-write".into());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !hw {
        return Some(
            "/dev/kvm is not backed by hardware virtualization (the host CPU shows neither vmx nor svm; \
             a software-nested KVM stops the guest at its first SSE instruction)"
                .into(),
        );
    }
    None
}

/// Resolves `--accel`.
pub fn choose(requested: &str) -> Result<Accel> {
    match requested {
        "tcg" => Ok(Accel::Tcg),
        "kvm" => match kvm_unusable_reason() {
            None => Ok(Accel::Kvm),
            Some(why) => bail!("--accel kvm: {why}; use --accel tcg (or auto)"),
        },
        _ => Ok(if kvm_unusable_reason().is_none() {
            Accel::Kvm
        } else {
            Accel::Tcg
        }),
    }
}

/// QEMU's text for a KVM guest it could not run (the software-nested case).
pub fn is_kvm_failure(stderr: &str) -> bool {
    stderr.contains("KVM internal error") || stderr.contains("emulation failure")
}
