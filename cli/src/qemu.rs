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
    errln!("mint: {QEMU} not found; installing Debian's qemu-system-x86 (running as root)");
    // apt's progress goes to stderr: stdout may be carrying `--json`.
    let ok = Command::new("apt-get")
        .arg("update")
        .stdout(std::io::stderr())
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
            .stdout(std::io::stderr())
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

pub fn is_root() -> bool {
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

/// QEMU's version as `qemu-system-x86_64 --version` states it
/// (major, minor), or `None` if it cannot be run or read.
pub fn version(qemu: &Path) -> Option<(u32, u32)> {
    let out = Command::new(qemu).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The `-cpu` model for `accel` and the `--apic` request (auto, xapic or
/// x2apic). Software emulation has x2APIC from QEMU 10 on (7.2's TCG lacks
/// it: the guest would see no x2APIC in CPUID and silently use xAPIC, so an
/// explicit x2apic request is refused there rather than not honoured).
pub fn cpu_model(accel: Accel, apic: &str, qemu: &Path) -> Result<String> {
    let base = if accel == Accel::Kvm { "host" } else { "max" };
    Ok(match apic {
        "xapic" => format!("{base},x2apic=off"),
        "x2apic" => {
            if accel == Accel::Tcg {
                match version(qemu) {
                    Some((major, _)) if major >= 10 => {}
                    Some((major, minor)) => bail!(
                        "--apic x2apic: QEMU {major}.{minor}'s software emulation has no x2APIC (QEMU 10 has: Debian's bookworm-backports, as .ci/run installs it); use --apic auto or xapic"
                    ),
                    None => bail!("--apic x2apic: cannot tell {}'s version", qemu.display()),
                }
            }
            format!("{base},x2apic=on")
        }
        _ => base.to_string(),
    })
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

/// Resolves `--accel`: KVM only where it is hardware virtualization *and*
/// the kernel really runs under it (checked by a one-node probe boot).
pub fn choose(requested: &str, qemu: &Path, kernel: &Path) -> Result<Accel> {
    let kvm = || match kvm_unusable_reason() {
        Some(why) => Err(why),
        None => probe_kvm(qemu, kernel),
    };
    match requested {
        "tcg" => Ok(Accel::Tcg),
        "kvm" => match kvm() {
            Ok(()) => Ok(Accel::Kvm),
            Err(why) => bail!("--accel kvm: {why}; use --accel tcg (or auto)"),
        },
        _ => Ok(match kvm() {
            Ok(()) => Accel::Kvm,
            Err(_) => Accel::Tcg,
        }),
    }
}

/// Boots a one-node machine under KVM and waits for its report.
fn probe_kvm(qemu: &Path, kernel: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    use std::time::{Duration, Instant};

    let plan = mint_plan::Plan::default_nodes(1).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-machine", "pc", "-accel", "kvm", "-cpu", "host", "-smp", "1",
    ])
    .args(["-m", &format!("{}M", plan.machine.memory.div_ceil(1 << 20))])
    .args([
        "-display",
        "none",
        "-vga",
        "none",
        "-nodefaults",
        "-no-reboot",
    ])
    .arg("-kernel")
    .arg(kernel)
    .args(["-append", &format!("{} mint.mode=boot", plan.encode())])
    .args(["-serial", "stdio", "-monitor", "none"])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    // Dies with mint like every machine (spawned from the main thread).
    crate::os::die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    let mut out = child.stdout.take().ok_or("no QEMU stdout")?;
    let mut err = child.stderr.take().ok_or("no QEMU stderr")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let stdout = reader.join().unwrap_or_default();
    let mut stderr = String::new();
    let _ = err.read_to_string(&mut stderr);
    if stdout.contains("MINT-REPORT") {
        Ok(())
    } else if is_kvm_failure(&stderr) {
        Err(format!(
            "the kernel does not run under this KVM (QEMU: {})",
            stderr.lines().next().unwrap_or("").trim()
        ))
    } else {
        Err("a one-node probe boot under KVM gave no report within 30 s".into())
    }
}

/// QEMU's text for a KVM guest it could not run (the software-nested case).
pub fn is_kvm_failure(stderr: &str) -> bool {
    stderr.contains("KVM internal error") || stderr.contains("emulation failure")
}
