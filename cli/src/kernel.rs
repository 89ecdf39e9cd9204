//! Builds the node kernel image: a nested cargo build of `mint-node` for the
//! host target with the flags a freestanding higher-half kernel needs. Stable
//! Rust only; `--target` keeps these flags off build scripts and proc macros.

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
const RUSTFLAGS: &str = "-C relocation-model=static -C code-model=kernel -C no-redzone=yes";

/// Builds (or reuses) the kernel and returns the ELF's path.
pub fn build(quiet: bool) -> Result<PathBuf> {
    let root = workspace_root();
    let target_dir = root.join("target").join("node");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "node",
            "-p",
            "mint-node",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_BOOTSTRAP");
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
