//! Linux nodes, host side: what each one boots, checked before anything
//! starts, and the one pack node 0 gets as its PVH module.
//!
//! - The kernel: the plan's `kernel`, else Debian's `linux-image-amd64`
//!   (its current version as `apt-cache depends` names it): `/boot`'s
//!   copy when that package is installed, else fetched with
//!   `apt-get download` into `~/.cache/mint/linux/<release>/` (or
//!   `$XDG_CACHE_HOME`) and its `/boot/vmlinuz-<release>` unpacked from
//!   the `.deb` (`dpkg-deb --fsys-tarfile`); cached by release. Where that
//!   cannot work the error gives the commands.
//! - The initramfs: the plan's `initrd`, else one built here (cpio
//!   "newc") holding `/dev/{console,kmsg,mem}` and mint's `/init`
//!   (`linux/init`, built static for the host target) and, for Debian's
//!   kernel, mint's module `/mint.ko` (`crate::linuxmod`).
//! - The pack (`mint_linux_boot::pack`): each Linux node's kernel, initrd
//!   and `cmdline`, written next to the consoles' logs and given to QEMU as
//!   `-initrd`; the machine gets that much more RAM above the plan's
//!   layout, where QEMU puts the module.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use mint_linux_boot::bzimage::BzImage;
use mint_linux_boot::pack::{self, Kind};
use mint_plan::{LinuxBoot, NodeId, Os, Plan};

/// Debian's metapackage for its current kernel.
const METAPACKAGE: &str = "linux-image-amd64";

/// The Linux nodes of `plan` with what they boot.
fn linux_nodes(plan: &Plan) -> impl Iterator<Item = (NodeId, &LinuxBoot)> {
    plan.nodes.iter().filter_map(|n| match &n.os {
        Os::Linux(boot) => Some((n.id, boot)),
        Os::Mint => None,
    })
}

/// Reads a kernel file and checks it is a bzImage with a 64-bit entry.
fn read_kernel(node: NodeId, path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{node}: kernel {}: cannot read it", path.display()))?;
    if let Err(e) = BzImage::parse(&bytes) {
        bail!("{node}: kernel {}: {e}", path.display());
    }
    Ok(bytes)
}

/// Checks, before anything is built or booted, every file a Linux node's
/// plan entry names: the kernel a readable bzImage with the 64-bit entry,
/// the initrd a readable file.
pub fn check(plan: &Plan) -> Result<()> {
    for (node, boot) in linux_nodes(plan) {
        if let Some(kernel) = &boot.kernel {
            read_kernel(node, Path::new(kernel))?;
        }
        if let Some(initrd) = &boot.initrd {
            std::fs::metadata(initrd)
                .with_context(|| format!("{node}: initrd {initrd}: cannot read it"))?;
        }
    }
    Ok(())
}

/// RAM the machine gets above the plan's layout for a pack of `len` bytes
/// (QEMU puts the module at the top of RAM, below its ACPI tables).
pub fn module_room(len: u64) -> u64 {
    const TWO_MIB: u64 = 2 << 20;
    len.next_multiple_of(TWO_MIB) + TWO_MIB
}

/// Writes the pack for `plan`'s Linux nodes into `dir`; `None` without any.
pub fn prepare(plan: &Plan, dir: &Path) -> Result<Option<(PathBuf, u64)>> {
    let nodes: Vec<(NodeId, &LinuxBoot)> = linux_nodes(plan).collect();
    if nodes.is_empty() {
        return Ok(None);
    }
    let mut files: Vec<(NodeId, Kind, Vec<u8>)> = Vec::new();
    // mint's initramfs, by the release its module is built for (for a
    // plan's own kernel, the release its header names when that
    // release's headers are installed; else none: bring your own module
    // in your own initrd).
    let mut own_initrd: std::collections::BTreeMap<Option<String>, Vec<u8>> = Default::default();
    let mut init: Option<Vec<u8>> = None;
    for (node, boot) in nodes {
        let (kernel, release) = match &boot.kernel {
            Some(path) => {
                let bytes = read_kernel(node, Path::new(path))?;
                let release = own_kernel_release(node, path, &bytes, boot.initrd.is_none());
                (bytes, release)
            }
            None => {
                let (path, release) = debian_kernel()?;
                (read_kernel(node, &path)?, Some(release))
            }
        };
        files.push((node, Kind::Kernel, kernel));
        let initrd = match &boot.initrd {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("{node}: initrd {path}: cannot read it"))?,
            None => {
                files.push((node, Kind::MintInit, Vec::new()));
                match own_initrd.get(&release) {
                    Some(bytes) => bytes.clone(),
                    None => {
                        if init.is_none() {
                            init = Some(build_init()?);
                        }
                        let module = match &release {
                            Some(r) => Some(
                                crate::linuxmod::build(&cache_dir()?, r)
                                    .with_context(|| format!("{node}: mint's Linux module"))?,
                            ),
                            None => None,
                        };
                        let bytes =
                            initramfs(init.as_deref().unwrap_or_default(), module.as_deref())?;
                        own_initrd.insert(release.clone(), bytes.clone());
                        bytes
                    }
                }
            }
        };
        files.push((node, Kind::Initrd, initrd));
        if let Some(cmdline) = &boot.cmdline {
            files.push((node, Kind::Cmdline, cmdline.clone().into_bytes()));
        }
    }
    let refs: Vec<(NodeId, Kind, &[u8])> = files
        .iter()
        .map(|(n, k, b)| (*n, *k, b.as_slice()))
        .collect();
    let bytes = pack::write(&refs);
    let path = dir.join("linux-pack.bin");
    std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some((path, bytes.len() as u64)))
}

/// The release of a plan's own kernel that mint's module can be built
/// for: the one its header names, when that release's headers are
/// installed. Says why not when mint's initramfs goes without it.
fn own_kernel_release(node: NodeId, path: &str, bytes: &[u8], says: bool) -> Option<String> {
    let release = BzImage::parse(bytes).ok()?.release().map(str::to_string);
    let why = match &release {
        None => "its header names no release".to_string(),
        Some(r) if crate::linuxmod::installed_headers(r).is_none() => {
            format!("the headers of its release {r} are not installed (/usr/src/linux-headers-{r})")
        }
        Some(_) => return release,
    };
    if says {
        errln!(
            "mint: {node}: kernel {path}: mint's initramfs goes without mint's module ({why}): the node is unmonitored, and cannot be the debug NIC's target"
        );
    }
    None
}

/// `~/.cache/mint/linux` (or under `$XDG_CACHE_HOME`).
fn cache_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set: no cache for Debian's kernel")?;
    Ok(base.join("mint").join("linux"))
}

/// The package `linux-image-amd64` depends on (`linux-image-<release>`).
fn current_package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", METAPACKAGE])
        .output()
        .context("cannot run apt-cache (is this Debian?) to find Debian's current kernel; give the node `kernel = \"/path/to/bzImage\"`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
        .with_context(|| {
            format!(
                "apt-cache knows no {METAPACKAGE} (run `apt-get update`, or give the node `kernel = \"/path/to/bzImage\"`)"
            )
        })
}

/// Debian's current kernel image (`/boot`'s, else the cache's, else
/// fetched) and its release.
fn debian_kernel() -> Result<(PathBuf, String)> {
    let package = current_package()?;
    let release = package.trim_start_matches("linux-image-").to_string();
    let installed = PathBuf::from(format!("/boot/vmlinuz-{release}"));
    if installed.is_file() {
        return Ok((installed, release));
    }
    let dir = cache_dir()?.join(&release);
    let kernel = dir.join(format!("vmlinuz-{release}"));
    if kernel.is_file() {
        return Ok((kernel, release));
    }
    let by_hand = format!(
        "mkdir -p {d} && cd {d} && apt-get download {package} && dpkg-deb -x {package}_*.deb unpacked && mv unpacked/boot/vmlinuz-{release} .",
        d = dir.display()
    );
    fetch(&package, &release, &dir, &kernel).with_context(|| {
        format!("cannot fetch Debian's kernel {package}; by hand: {by_hand} (or give the node `kernel = \"/path/to/bzImage\"`)")
    })?;
    Ok((kernel, release))
}

/// `apt-get download` the package into `dir`, unpack its kernel to `kernel`.
fn fetch(package: &str, release: &str, dir: &Path, kernel: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    errln!("mint: fetching Debian's {package} into {}", dir.display());
    // Its progress goes to stderr: stdout may be carrying `--json`.
    let status = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(dir)
        .stdout(std::io::stderr())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get download {package} failed ({status})");
    }
    let deb = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .context("apt-get download left no .deb")?;
    let partial = dir.join(format!("vmlinuz-{release}.partial"));
    let script =
        format!("dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./boot/vmlinuz-{release} > \"$2\"");
    let status = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(&deb)
        .arg(&partial)
        .stdout(std::io::stderr())
        .status()
        .context("cannot run dpkg-deb and tar")?;
    if !status.success() {
        bail!(
            "unpacking /boot/vmlinuz-{release} from {} failed ({status})",
            deb.display()
        );
    }
    std::fs::rename(&partial, kernel)?;
    // The kernel is kept; the 70 MB package is not needed again.
    let _ = std::fs::remove_file(&deb);
    Ok(())
}

/// Builds mint's `/init` (static, for the host target) and returns it.
fn build_init() -> Result<Vec<u8>> {
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let root = crate::kernel::workspace_root();
    let target_dir = root.join("target").join("linux-init");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root.join("linux").join("init"))
        .args(["build", "--quiet", "--release", "--target", TARGET])
        .arg("--manifest-path")
        .arg(root.join("linux").join("init").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_BOOTSTRAP")
        .stdout(std::io::stderr())
        .status()
        .context("cannot run cargo to build the Linux nodes' /init")?;
    if !status.success() {
        bail!("building the Linux nodes' /init failed ({status})");
    }
    let path = target_dir
        .join(TARGET)
        .join("release")
        .join("mint-linux-init");
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// One cpio "newc" entry.
fn newc(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// mint's initramfs: `/init`, the device nodes it needs and, when given,
/// mint's module as `/mint.ko` (which `/init` loads).
pub fn initramfs(init: &[u8], module: Option<&[u8]>) -> Result<Vec<u8>> {
    if init.len() > u32::MAX as usize || module.is_some_and(|m| m.len() > u32::MAX as usize) {
        bail!("/init or /mint.ko is too large for cpio");
    }
    const DIR: u32 = 0o040_755;
    const CHAR: u32 = 0o020_000;
    let mut out = Vec::new();
    newc(&mut out, 1, "dev", DIR, (0, 0), &[]);
    newc(&mut out, 2, "dev/console", CHAR | 0o600, (5, 1), &[]);
    newc(&mut out, 3, "dev/kmsg", CHAR | 0o644, (1, 11), &[]);
    newc(&mut out, 4, "dev/mem", CHAR | 0o600, (1, 1), &[]);
    newc(&mut out, 5, "proc", DIR, (0, 0), &[]);
    newc(&mut out, 6, "init", 0o100_755, (0, 0), init);
    if let Some(module) = module {
        newc(&mut out, 7, "mint.ko", 0o100_644, (0, 0), module);
    }
    newc(&mut out, 0, "TRAILER!!!", 0, (0, 0), &[]);
    out.resize(out.len().next_multiple_of(512), 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_named() {
        let cpio = initramfs(b"\x7fELF...", Some(b"ko")).expect("small");
        assert!(cpio.starts_with(b"070701"));
        assert_eq!(cpio.len() % 512, 0);
        let text = String::from_utf8_lossy(&cpio);
        for name in ["dev/kmsg", "dev/mem", "init", "mint.ko", "TRAILER!!!"] {
            assert!(text.contains(name), "{name}");
        }
        // The first header's name size: "dev" + NUL.
        assert_eq!(&cpio[94..102], b"00000004");
    }

    #[test]
    fn room_for_the_module_is_whole_large_pages() {
        assert_eq!(module_room(1), 4 << 20);
        assert_eq!(module_room(2 << 20), 4 << 20);
        assert_eq!(module_room((2 << 20) + 1), 6 << 20);
    }
}

/// What the Linux nodes' consoles showed: the kernel's release (its
/// "Linux version" line) and mint's /init line.
#[derive(Default)]
pub struct ConsoleWatch {
    /// Per node id: the release, and the /init line's fields.
    release: std::collections::BTreeMap<u8, String>,
    init: std::collections::BTreeMap<u8, String>,
}

impl ConsoleWatch {
    /// Looks at one console line of `node`.
    pub fn line(&mut self, node: NodeId, text: &str) {
        if node.0 == 0 {
            return;
        }
        if let Some(rest) = text.split("Linux version ").nth(1)
            && let Some(release) = rest.split_whitespace().next()
        {
            self.release
                .entry(node.0)
                .or_insert_with(|| release.to_string());
        }
        if let Some(rest) = text.split("mint-init: reached /init ").nth(1) {
            self.init
                .entry(node.0)
                .or_insert_with(|| rest.trim().to_string());
        }
    }

    /// Adds to each Linux node of the report `"kernel"` (the release its
    /// console printed, or null) and `"console_init"` (mint's /init line as
    /// printed, or null).
    pub fn annotate(&self, report: &mut serde_json::Value) {
        let Some(nodes) = report["nodes"].as_array_mut() else {
            return;
        };
        for n in nodes.iter_mut().filter(|n| n["os"] == "linux") {
            let Some(id) = n["id"].as_u64().and_then(|i| u8::try_from(i).ok()) else {
                continue;
            };
            n["kernel"] = serde_json::json!(self.release.get(&id));
            n["console_init"] = serde_json::json!(self.init.get(&id));
        }
    }
}
