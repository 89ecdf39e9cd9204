//! The few calls into the OS and the CPU that std does not offer: a child
//! that dies with mint, a descriptor one child inherits, an advisory lock,
//! whether stdout's reader has gone, the TSC and the raw monotonic clock
//! (the host's TSC rate, `tsc.rs`), and the CPU affinity of a thread
//! (`mint bench --native` pins its two threads).
//!
//! The only module of the CLI with `unsafe`; each block says why it holds.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child `cmd` starts get SIGKILL when mint ends, however it
/// ends (even by SIGKILL): the kernel's parent-death signal.
///
/// The signal fires when the *thread* that forked the child exits, so
/// `cmd` must be spawned from a thread that lives as long as the child:
/// mint spawns QEMU from its main thread only.
pub fn die_with_parent(cmd: &mut Command) {
    debug_assert_eq!(
        std::thread::current().name(),
        Some("main"),
        "a child that dies with its parent must be spawned from the main thread"
    );
    let parent = std::process::id();
    // SAFETY: the hook runs in the forked child before exec and calls only
    // `prctl` and `getppid`, both async-signal-safe system calls; it touches
    // no memory the parent's other threads may hold (no allocation, no lock).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // mint may have died between fork and prctl: then nobody
            // would ever send the signal.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Makes the child `cmd` starts inherit descriptor `fd` under the same
/// number, and only that child: std opens every descriptor close-on-exec,
/// and the flag is cleared in the forked child alone, so no other program
/// mint starts (before or at the same time) gets it. `fd` must stay open
/// until the child is spawned, and must not be 0, 1 or 2 (the child's
/// stdio replaces those before the hook runs).
pub fn inherit_fd(cmd: &mut Command, fd: RawFd) -> io::Result<()> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} would be replaced by the child's stdio"),
        ));
    }
    // SAFETY: the hook runs in the forked child before exec and calls only
    // `fcntl`, an async-signal-safe system call, on a descriptor number;
    // it touches no memory the parent's other threads may hold (no
    // allocation, no lock). The caller keeps `fd` open until the spawn
    // (see above), so in the child the number names that descriptor.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Takes an exclusive `flock` on `file` without waiting: `Ok(false)` when
/// another process holds it. The lock lasts as long as the open file (the
/// kernel drops it when mint exits, however it exits).
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` on a descriptor `file` owns and keeps open for the
    // call; it reads and writes no memory of ours.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Whether stdout is a pipe or socket whose reader has gone (`mint boot |
/// head -1` after `head` exited), found without writing to it.
pub fn stdout_hung_up() -> bool {
    let mut fds = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid `pollfd` on our stack, count 1, no waiting; a
    // closed descriptor only sets POLLNVAL.
    let rc = unsafe { libc::poll(&mut fds, 1, 0) };
    rc > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// The TSC, after every earlier load has completed (`lfence; rdtsc`).
pub fn rdtsc() -> u64 {
    // SAFETY: `lfence` and `rdtsc` exist on every x86-64 CPU (this tool
    // only builds for x86-64) and touch no memory.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        core::arch::x86_64::_rdtsc()
    }
}

/// `CLOCK_MONOTONIC_RAW` in ns: the kernel's clock without NTP slewing.
pub fn monotonic_raw_ns() -> anyhow::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    if rc != 0 {
        anyhow::bail!(
            "clock_gettime(CLOCK_MONOTONIC_RAW) failed: {}",
            io::Error::last_os_error()
        );
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The CPUs this process may run on (its affinity mask), lowest first.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is a plain bit array: all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed;
    // pid 0 names the calling thread.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    Ok((0..max)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's size in bits, and
        // `set` is a valid `cpu_set_t`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins the calling thread to `cpu` alone.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    if cpu >= max {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu_set_t` is a plain bit array: all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked), `set` is a valid
    // `cpu_set_t` we own.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed, read only;
    // pid 0 names the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU the calling thread runs on now (`None` if the kernel cannot say).
pub fn current_cpu() -> Option<usize> {
    // SAFETY: `sched_getcpu` takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}
