//! `/init` of a Linux node booted by mint.
//!
//! 1. Reads the TSC and the kernel's uptime (CLOCK_BOOTTIME).
//! 2. Tells node 0: writes `(tsc, uptime_ns)` and then the magic
//!    `MINTINIT` into the node's loader block, whose physical address the
//!    kernel command line gives as `mint_report=0x...` (an unknown
//!    parameter without a dot, so the kernel passes it on in the
//!    environment), through `/dev/mem` (the block is not RAM to this
//!    kernel: its e820 map does not list it, so STRICT_DEVMEM allows it).
//! 3. Loads mint's module `/mint.ko` when the initramfs has one
//!    (`finit_module`), with the shared region and node id node 0 put on
//!    the command line (`mint_shared=PHYS,SIZE mint_node=K`, given to the
//!    module as `shared_phys= shared_size= node=`; `mint_module_abi=N`
//!    makes the module claim ABI version N, for the version check's test).
//! 4. Writes one line to the kernel log (`/dev/kmsg`), which the node's
//!    console prints:
//!    `mint-init: reached /init uptime_ns=<n> tsc=<n> release=<uname -r> report=<ok|why> module=<loaded|none|why>`.
//! 5. `mint_user_fault=sysrq-crash`, `=reboot` or `=poweroff` on the command line (the
//!    tests of containment): the module is told to withhold the end of its
//!    ping round (so node 0 waits for the node), then `/init` writes `c`
//!    to `/proc/sysrq-trigger` (a kernel crash from user space: the
//!    module's panic notifier says Crashed) or calls `reboot(RESTART)` or `reboot(POWER_OFF)`
//!    (the module's reboot notifier says Halted and halts the core).
//! 6. When the module made this node the debug NIC's target (`mint0`
//!    and `/dev/mint` exist): runs the receiving application for good
//!    ([`target`]). Otherwise sleeps for ever (PID 1 must not exit).
//!
//! The C library is std's own (linked statically): the report's system
//! calls go through `syscall` directly, the target application's
//! (ioctl, mmap, mknod, sockets) through the `libc` crate's bindings.

use std::os::unix::fs::FileExt;

mod target;

/// What node 0 looks for once the TSC and uptime are written.
const MAGIC: &[u8; 8] = b"MINTINIT";

fn main() {
    // SAFETY: `rdtsc` has no preconditions (Linux leaves CR4.TSD clear).
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    let uptime_ns = boottime_ns();
    // The report first: node 0 then waits (briefly) for the module, which
    // may end the node before anything after its load runs (`--fault
    // K:panic`).
    let report = match report_to_node0(tsc, uptime_ns) {
        Ok(at) => format!("ok@{at:#x}"),
        Err(why) => why.replace(' ', "_"),
    };
    let module = match load_module() {
        Ok(what) => what.to_string(),
        Err(why) => why.replace(' ', "_"),
    };
    let line = format!(
        "mint-init: reached /init uptime_ns={uptime_ns} tsc={tsc} release={} report={report} module={module}\n",
        release()
    );
    let mut log = target::Log::open();
    log.line(&line);
    if module == "loaded"
        && let Some(fault) = user_fault()
    {
        let why = inject(fault);
        log.line(&format!("mint-init: cannot inject {fault}: {why}"));
    } else if module == "loaded" {
        match target::serve(&mut log) {
            Ok(never) => match never {},
            Err(why) => log.line(&format!("mint-target: not serving: {why}")),
        }
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Writes the report words at `mint_report` through /dev/mem, magic last.
fn report_to_node0(tsc: u64, uptime_ns: u64) -> Result<u64, String> {
    let at = std::env::var("mint_report").map_err(|_| "no mint_report= given".to_string())?;
    let at = u64::from_str_radix(at.trim_start_matches("0x"), 16)
        .map_err(|_| format!("mint_report={at} is not a hex address"))?;
    let mem = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/mem")
        .map_err(|e| format!("/dev/mem: {e}"))?;
    let mut words = [0u8; 16];
    words[..8].copy_from_slice(&tsc.to_le_bytes());
    words[8..].copy_from_slice(&uptime_ns.to_le_bytes());
    mem.write_all_at(&words, at + 8)
        .and_then(|()| mem.write_all_at(MAGIC, at))
        .map_err(|e| format!("/dev/mem at {at:#x}: {e}"))?;
    Ok(at)
}

/// Loads `/mint.ko` with the parameters node 0 gave: "loaded", "none"
/// (no module in this initramfs) or why not.
fn load_module() -> Result<&'static str, String> {
    use std::os::fd::AsRawFd;
    const SYS_FINIT_MODULE: u64 = 313;
    let file = match std::fs::File::open("/mint.ko") {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("none"),
        Err(e) => return Err(format!("/mint.ko: {e}")),
    };
    let shared = std::env::var("mint_shared").map_err(|_| "no mint_shared= given".to_string())?;
    let (phys, size) = shared
        .split_once(',')
        .ok_or_else(|| format!("mint_shared={shared} is not PHYS,SIZE"))?;
    let node = std::env::var("mint_node").map_err(|_| "no mint_node= given".to_string())?;
    let mut params = format!("shared_phys={phys} shared_size={size} node={node}");
    if user_fault().is_some() {
        params.push_str(" user_fault=1");
    }
    if let Ok(abi) = std::env::var("mint_module_abi") {
        params.push_str(&format!(" abi={abi}"));
    }
    let params = std::ffi::CString::new(params).map_err(|_| "a NUL in the parameters")?;
    // SAFETY: `file` is an open descriptor of the module, `params` a NUL
    // terminated string that outlives the call; flags 0.
    let r = unsafe {
        syscall3(
            SYS_FINIT_MODULE,
            file.as_raw_fd() as u64,
            params.as_ptr() as u64,
            0,
        )
    };
    if r != 0 {
        return Err(format!("finit_module failed errno {}", -r));
    }
    Ok("loaded")
}

/// The fault `mint_user_fault=` asks `/init` to inject, if one it knows.
fn user_fault() -> Option<&'static str> {
    match std::env::var("mint_user_fault").ok()?.as_str() {
        "sysrq-crash" => Some("sysrq-crash"),
        "reboot" => Some("reboot"),
        "poweroff" => Some("poweroff"),
        _ => None,
    }
}

/// Injects `fault`; returns only when that failed, with why.
fn inject(fault: &str) -> String {
    match fault {
        "sysrq-crash" => {
            if let Err(e) = target::mount_proc() {
                return e;
            }
            match std::fs::write("/proc/sysrq-trigger", "c") {
                Ok(()) => "the kernel survived sysrq c".into(),
                Err(e) => format!("/proc/sysrq-trigger: {e}"),
            }
        }
        "poweroff" => {
            // SAFETY: reboot(2) takes no pointer with RB_POWER_OFF.
            let r = unsafe { libc::reboot(libc::RB_POWER_OFF) };
            format!(
                "reboot(POWER_OFF) returned {r}: {}",
                std::io::Error::last_os_error()
            )
        }
        _ => {
            // SAFETY: reboot(2) takes no pointer with RB_AUTOBOOT.
            let r = unsafe { libc::reboot(libc::RB_AUTOBOOT) };
            format!("reboot returned {r}: {}", std::io::Error::last_os_error())
        }
    }
}

/// A system call with three arguments.
///
/// # Safety
/// The arguments must be what system call `nr` expects.
unsafe fn syscall3(nr: u64, a: u64, b: u64, c: u64) -> i64 {
    let ret: i64;
    // SAFETY: the `syscall` instruction with the kernel's register
    // convention; it clobbers rcx and r11 only, arguments as the caller
    // vouches.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A system call with two arguments.
///
/// # Safety
/// The arguments must be what system call `nr` expects (valid pointers
/// to memory it may write, of the sizes it writes).
unsafe fn syscall2(nr: u64, a: u64, b: u64) -> i64 {
    let ret: i64;
    // SAFETY: the `syscall` instruction with the kernel's register
    // convention; it clobbers rcx and r11 only, arguments as the caller
    // vouches.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a,
            in("rsi") b,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// CLOCK_BOOTTIME in ns (the kernel's uptime), 0 if unreadable.
fn boottime_ns() -> u64 {
    const SYS_CLOCK_GETTIME: u64 = 228;
    const CLOCK_BOOTTIME: u64 = 7;
    let mut ts = [0i64; 2];
    // SAFETY: `ts` is a writable `struct timespec` (two 64-bit words).
    let r = unsafe { syscall2(SYS_CLOCK_GETTIME, CLOCK_BOOTTIME, ts.as_mut_ptr() as u64) };
    if r != 0 {
        return 0;
    }
    (ts[0] as u64) * 1_000_000_000 + ts[1] as u64
}

/// The kernel's release (`uname -r`).
fn release() -> String {
    const SYS_UNAME: u64 = 63;
    const FIELD: usize = 65;
    let mut u = [0u8; 6 * FIELD];
    // SAFETY: `u` is a writable `struct utsname` (six 65-byte fields).
    if unsafe { syscall2(SYS_UNAME, u.as_mut_ptr() as u64, 0) } != 0 {
        return "unknown".into();
    }
    let field = &u[2 * FIELD..3 * FIELD];
    let len = field.iter().position(|&c| c == 0).unwrap_or(FIELD);
    String::from_utf8_lossy(&field[..len]).into_owned()
}
