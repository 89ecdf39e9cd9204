//! Builds the node kernel image: a nested cargo build of `mint-node` for the
//! host target with the flags a freestanding higher-half kernel needs. Stable
//! Rust only; `--target` keeps these flags off build scripts and proc macros.
//! The kernel is a workspace of its own (`kernel/Cargo.toml`), so no host-only
//! dependency of the CLI can unify a `std` feature into its graph.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (this crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ lives in the workspace")
        .to_path_buf()
}

const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The kernel's code generation: a higher-half static image, no red zone
/// (interrupts use the stack), and SSE4.1 + PCLMULQDQ, which every x86-64
/// CPU since 2010 has and QEMU's TCG emulates (`-cpu max`): crc32fast's
/// folding CRC, the payload check's, is chosen at compile time in a
/// no_std build, and without them it runs its table (about 1 byte a
/// cycle, 70 % of the target's time at 16 KB). Node 0 checks CPUID first.
const RUSTFLAGS: &str = "-C relocation-model=static -C code-model=kernel -C no-redzone=yes -C target-feature=+sse4.1,+pclmulqdq";

/// The nested cargo invocation for the kernel: `build` or `clippy`, with the
/// kernel's flags, profile and target directory.
fn kernel_cargo(subcommand: &str) -> (Command, PathBuf) {
    let root = workspace_root();
    let target_dir = root.join("target").join("node");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("kernel"))
        .arg(subcommand)
        .arg("--manifest-path")
        .arg(root.join("kernel").join("Cargo.toml"))
        .args(["--profile", "node", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_BOOTSTRAP");
    (cmd, target_dir)
}

/// Lints the kernel with its own flags (`cargo clippy` on its workspace,
/// warnings denied); the host workspace is linted by a plain
/// `cargo clippy --workspace`.
pub fn lint() -> Result<()> {
    let (mut cmd, _) = kernel_cargo("clippy");
    cmd.args(["--", "-D", "warnings"]);
    let status = cmd
        .status()
        .context("cannot run cargo clippy on the node kernel")?;
    if !status.success() {
        bail!("linting the node kernel failed ({status})");
    }
    Ok(())
}

/// Builds (or reuses) the kernel and returns the ELF's path.
pub fn build(quiet: bool) -> Result<PathBuf> {
    let (mut cmd, target_dir) = kernel_cargo("build");
    if quiet {
        cmd.arg("--quiet");
    }
    let status = cmd
        .status()
        .context("cannot run cargo to build the node kernel")?;
    if !status.success() {
        bail!("building the node kernel failed ({status})");
    }
    let elf = target_dir.join(TARGET).join("node").join("mint-node");
    if !elf.exists() {
        bail!("node kernel build produced no image at {}", elf.display());
    }
    Ok(elf)
}
