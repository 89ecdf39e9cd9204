//! One machine run: QEMU started with the kernel and the plan, every node's
//! UART connected to a socket the CLI reads. Each console line is written to
//! that node's log file, handed to the caller as an [`Event`], and (but for
//! bulk machine records: raw samples, JSON reports, progress) echoed
//! prefixed by its node (`[node1] ...`).
//!
//! A machine never outlives mint: QEMU gets SIGKILL when mint's main
//! thread ends, however it ends ([`crate::os::die_with_parent`]); while a
//! machine runs, SIGINT, SIGTERM, SIGHUP and a closed stdout stop it and
//! remove its socket directory ([`crate::shutdown`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mint_plan::{Device, NodeId, Plan};

use crate::qemu::Accel;
use crate::shutdown::{self, Stop};

/// Where console lines are echoed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Stdout,
    Stderr,
}

pub struct Options<'a> {
    pub prepared: &'a Prepared,
    pub plan: &'a Plan,
    /// Extra kernel command-line words (mode, faults).
    pub cmdline: Vec<String>,
    pub echo: Echo,
    /// QEMU `-netdev`s for the e1000, the first with `id=mintnet0`, which
    /// the device attaches to (none: a hub port of its own, no traffic).
    /// `mint nic` passes a loopback UDP socket it bound (see `inherit`).
    pub netdevs: Vec<String>,
    /// Descriptors QEMU inherits under the same numbers (a netdev's
    /// `local.type=fd`); open until `start` returns, and QEMU's alone.
    pub inherit: Vec<std::os::fd::RawFd>,
}

/// A handle to node 0's console input usable from another thread (for a
/// sender that tells node 0 when it is done).
#[derive(Clone)]
pub struct Node0Input(Arc<Mutex<Option<UnixStream>>>);

impl Node0Input {
    /// Writes `text` to node 0's console (waiting, bounded, for QEMU to
    /// connect it).
    pub fn write(&self, text: &[u8]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.0.lock().expect("console lock").as_mut() {
                return s.write_all(text).context("writing to node 0's console");
            }
            if Instant::now() > deadline {
                bail!("node 0's console never connected");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Something a node printed, or the end of its console.
pub enum Event {
    Line { node: NodeId, text: String },
    Closed,
}

pub struct Machine {
    child: Child,
    events: Receiver<Event>,
    stderr: Receiver<String>,
    /// Node 0's console, for typing into its shell (set once QEMU connects).
    node0_input: Arc<Mutex<Option<UnixStream>>>,
    consoles_open: usize,
    // Dropped in this order, after `child` is killed (see `Drop`): the
    // sockets go once QEMU is gone, and signals end mint at once again.
    _socket_dir: SocketDir,
    _guard: shutdown::Guard,
}

/// How a run ended.
pub struct Outcome {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub qemu_stderr: String,
    /// Stopped early by a signal or a closed output.
    pub stopped: Option<Stop>,
}

impl Outcome {
    /// `Err` when the run was stopped early: mint then ends as `main`
    /// says, with nothing more to report.
    pub fn check_stopped(&self) -> Result<()> {
        match &self.stopped {
            Some(stop) => Err(stop.clone().into()),
            None => Ok(()),
        }
    }
}

/// The directory of a machine's console sockets, removed when dropped.
struct SocketDir(PathBuf);

impl SocketDir {
    fn create() -> Result<SocketDir> {
        let tmp = std::env::temp_dir();
        remove_stale_socket_dirs(&tmp);
        let path = tmp.join(format!("mint-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create the socket directory {}", path.display()))?;
        Ok(SocketDir(path))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Socket directories of mint processes that are gone (only a SIGKILL can
/// leave one behind; their QEMUs died with them).
fn remove_stale_socket_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("mint-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

const COM_PORTS: u8 = 4;

/// The MAC QEMU gives the e1000.
pub const E1000_MAC: &str = "52:54:00:12:34:56";

impl Machine {
    /// Starts QEMU; call it from the main thread (see
    /// [`crate::os::die_with_parent`]).
    pub fn start(opts: Options<'_>) -> Result<Machine> {
        let p = opts.prepared;
        // From here on a signal is handled here, on the main path.
        let guard = shutdown::guard();
        let socket_dir = SocketDir::create()?;

        // Linux nodes: their files in one pack, QEMU's -initrd (node 0's
        // PVH module), in RAM above the plan's layout.
        let mut plan = opts.plan.clone();
        let pack = crate::linux::prepare(&plan, &p.log_dir)?;
        if let Some((_, len)) = &pack {
            plan.machine.memory += crate::linux::module_room(*len);
        }
        let plan = &plan;
        let mut cmdline = vec![plan.encode()];
        cmdline.extend(opts.cmdline.iter().cloned());
        cmdline.extend(p.host_tsc.cmdline());
        if p.tsc_mismatch_warn {
            cmdline.push("mint.tsc_mismatch=warn".into());
        }
        let mut cmd = Command::new(&p.qemu);
        let accel = match p.accel {
            Accel::Kvm => "kvm".to_string(),
            Accel::Tcg => "tcg,thread=multi".to_string(),
        };
        cmd.args(["-machine", "pc", "-accel", &accel])
            .args(["-cpu", &p.cpu_model])
            .args([
                "-smp",
                &p.machine_override
                    .0
                    .unwrap_or(plan.machine.cpus)
                    .to_string(),
            ])
            .args([
                "-m",
                &format!(
                    "{}M",
                    p.machine_override
                        .1
                        .unwrap_or(plan.machine.memory.div_ceil(1 << 20))
                ),
            ])
            .args([
                "-display",
                "none",
                "-vga",
                "none",
                "-no-reboot",
                "-nodefaults",
            ])
            .arg("-kernel")
            .arg(&p.kernel)
            .args(
                pack.iter()
                    .flat_map(|(path, _)| [std::ffi::OsStr::new("-initrd"), path.as_os_str()]),
            )
            .args(["-append", &cmdline.join(" ")])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .args(["-monitor", "none"]);
        if !p.trace.is_empty() {
            for event in &p.trace {
                cmd.args(["-trace", &format!("enable={event}")]);
            }
            cmd.arg("-D").arg(trace_path(&p.log_dir));
        }

        if plan
            .nodes
            .iter()
            .any(|n| n.devices.contains(&Device::E1000))
        {
            // QEMU's 82540EM on a hub of its own (no traffic reaches it
            // but what a test or tool puts there), or on the netdev asked for.
            if opts.netdevs.is_empty() {
                cmd.args(["-netdev", "hubport,id=mintnet0,hubid=0"]);
            }
            for netdev in &opts.netdevs {
                cmd.args(["-netdev", netdev]);
            }
            cmd.args(["-device", &format!("e1000,netdev=mintnet0,mac={E1000_MAC}")]);
        }
        if let Some((port, wait)) = p.gdb {
            cmd.args(["-gdb", &format!("tcp:127.0.0.1:{port}")]);
            if wait {
                cmd.arg("-S");
            }
            errln!(
                "mint: gdb stub on 127.0.0.1:{port}{}: gdb {} -ex 'target remote 127.0.0.1:{port}' \
                 (thread K+1 = the node on core K; use hbreak)",
                if wait {
                    ", CPUs held until gdb continues"
                } else {
                    ""
                },
                p.kernel.display()
            );
        }
        let (tx, events) = mpsc::channel();
        let mut consoles_open = 0;
        let node0_input = Arc::new(Mutex::new(None));
        for com in 1..=COM_PORTS {
            let owner = plan
                .nodes
                .iter()
                .find(|n| n.devices.contains(&Device::Com(com)))
                .map(|n| n.id);
            match owner {
                Some(node) => {
                    let path = socket_dir.0.join(format!("com{com}.sock"));
                    let listener = UnixListener::bind(&path)
                        .with_context(|| format!("cannot listen on {}", path.display()))?;
                    cmd.args([
                        "-chardev",
                        &format!("socket,id=com{com},path={}", path.display()),
                    ])
                    .args(["-serial", &format!("chardev:com{com}")]);
                    let log = log_path(&p.log_dir, node);
                    let input = (node == NodeId(0)).then(|| node0_input.clone());
                    spawn_console(listener, node, log, opts.echo, tx.clone(), input)?;
                    consoles_open += 1;
                }
                None => {
                    cmd.args(["-serial", "null"]);
                }
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::os::die_with_parent(&mut cmd);
        for &fd in &opts.inherit {
            crate::os::inherit_fd(&mut cmd, fd)
                .with_context(|| format!("cannot pass descriptor {fd} to QEMU"))?;
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", p.qemu.display()))?;
        let mut qemu_err = child.stderr.take().context("QEMU stderr")?;
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut qemu_err, &mut s);
            let _ = etx.send(s);
        });
        Ok(Machine {
            child,
            events,
            stderr,
            node0_input,
            consoles_open,
            _socket_dir: socket_dir,
            _guard: guard,
        })
    }

    /// The next console event, waiting at most `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(ev) => {
                if let Event::Closed = ev {
                    self.consoles_open = self.consoles_open.saturating_sub(1);
                }
                Some(ev)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Node 0's console input, for another thread.
    pub fn node0_input(&self) -> Node0Input {
        Node0Input(self.node0_input.clone())
    }

    /// Sends text to node 0's console (its shell).
    pub fn type_to_node0(&mut self, text: &[u8]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.node0_input.lock().expect("console lock").as_mut() {
                return s.write_all(text).context("writing to node 0's console");
            }
            if Instant::now() > deadline {
                bail!("node 0's console never connected");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for QEMU to exit (killing it after `timeout`, or at once on a
    /// stop request) and for every console to drain.
    pub fn finish(mut self, timeout: Duration, mut on_event: impl FnMut(Event)) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let mut stopped = None;
        loop {
            // Checked on every turn: busy consoles must not hold off the
            // deadline or a stop.
            if stopped.is_none()
                && let Some(stop) = shutdown::requested()
            {
                stopped = Some(stop);
                let _ = self.child.kill();
            }
            if !timed_out && stopped.is_none() && Instant::now() > deadline {
                timed_out = true;
                let _ = self.child.kill();
            }
            if let Some(ev) = self.next_event(Duration::from_millis(50)) {
                on_event(ev);
                continue;
            }
            if !self.running() {
                // The consoles' readers may still hold the last lines;
                // they close right after QEMU's end.
                let drain =
                    Instant::now() + Duration::from_secs(if stopped.is_some() { 1 } else { 10 });
                while self.consoles_open > 0 && Instant::now() < drain {
                    if let Some(ev) = self.next_event(Duration::from_millis(50)) {
                        on_event(ev);
                    }
                }
                break;
            }
        }
        let status = self.child.wait().ok();
        let qemu_stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(2))
            .unwrap_or_default();
        // A signal that came while QEMU was ending still counts.
        let stopped = stopped.or_else(|| match shutdown::requested() {
            Some(Stop::Signal(sig)) => Some(Stop::Signal(sig)),
            _ => None,
        });
        Outcome {
            status,
            timed_out,
            qemu_stderr,
            stopped,
        }
    }
}

impl Drop for Machine {
    /// QEMU first; then the fields: the socket directory, then the guard.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn spawn_console(
    listener: UnixListener,
    node: NodeId,
    log: PathBuf,
    echo: Echo,
    tx: Sender<Event>,
    input: Option<Arc<Mutex<Option<UnixStream>>>>,
) -> Result<()> {
    let mut file =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            let _ = tx.send(Event::Closed);
            return;
        };
        if let (Some(slot), Ok(w)) = (input, stream.try_clone()) {
            *slot.lock().expect("console lock") = Some(w);
        }
        let reader = BufReader::new(stream);
        for line in reader.split(b'\n') {
            let Ok(bytes) = line else { break };
            let text = String::from_utf8_lossy(&bytes)
                .trim_end_matches('\r')
                .to_string();
            let _ = writeln!(file, "{text}");
            // Bulk machine records (raw samples, JSON reports) stay in the
            // log and reach the caller, but are not echoed to a person.
            let bulk = [
                "MINT-SAMPLES",
                "MINT-REPORT ",
                "MINT-GEN ",
                "MINT-PROGRESS ",
            ]
            .iter()
            .any(|p| text.starts_with(p));
            match echo {
                _ if bulk => {}
                Echo::Stdout => outln!("[{node}] {text}"),
                Echo::Stderr => errln!("[{node}] {text}"),
            }
            if tx.send(Event::Line { node, text }).is_err() {
                break;
            }
        }
        let _ = tx.send(Event::Closed);
    });
    Ok(())
}

/// Everything a subcommand needs before it starts a machine: QEMU, the
/// kernel image, the accelerator and the log directory.
pub struct Prepared {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub accel: Accel,
    /// QEMU's `-cpu` model (the accelerator's, with the `--apic` choice).
    pub cpu_model: String,
    /// The log directory (absolute), locked for the run: see `log`.
    pub log_dir: PathBuf,
    pub _log: crate::preflight::LogDir,
    /// CPUs and RAM (MiB) QEMU gets when they should differ from the plan's.
    pub machine_override: (Option<u8>, Option<u64>),
    /// gdb stub port, and whether the CPUs wait for gdb at the start.
    pub gdb: Option<(u16, bool)>,
    /// The host's TSC rate for node 0's cross-check (`crate::tsc`).
    pub host_tsc: crate::tsc::HostTsc,
    /// `--tsc-mismatch warn`.
    pub tsc_mismatch_warn: bool,
    /// `--qemu-trace`: QEMU trace events to log into `qemu-trace.log`.
    pub trace: Vec<String>,
}

/// Checks what the flags name (`crate::preflight`), then finds QEMU,
/// builds the kernel and picks the accelerator.
pub fn prepare(args: &crate::MachineArgs, quiet_build: bool) -> Result<Prepared> {
    if args.accel == "kvm" {
        // Fail fast, before building anything, where KVM cannot be real.
        if let Some(why) = crate::qemu::kvm_unusable_reason() {
            bail!("--accel kvm: {why}; use --accel tcg (or auto)");
        }
    }
    if let Some(port) = args.gdb {
        crate::preflight::check_gdb_port(port)?;
    }
    if let Some(kernel) = &args.kernel {
        crate::preflight::check_kernel(kernel)?;
    }
    // Last of the checks: it creates the directory.
    let log = crate::preflight::LogDir::claim(args.log_dir.as_deref())?;
    let qemu = crate::qemu::find_or_install()?;
    let kernel = match &args.kernel {
        Some(k) => k.clone(),
        None => crate::kernel::build(quiet_build)?,
    };
    let accel = crate::qemu::choose(&args.accel, &qemu, &kernel)?;
    let cpu_model = crate::qemu::cpu_model(accel, &args.apic, &qemu)?;
    let host_tsc = crate::tsc::host_tsc(args.host_tsc_hz);
    if let Some(problem) = &host_tsc.problem {
        errln!("mint: WARNING: host TSC: {problem}");
    }
    Ok(Prepared {
        qemu,
        kernel,
        accel,
        cpu_model,
        log_dir: log.path.clone(),
        _log: log,
        machine_override: (args.qemu_cpus, args.qemu_memory_mib),
        gdb: args.gdb.map(|port| (port, args.gdb_wait)),
        host_tsc,
        tsc_mismatch_warn: args.tsc_mismatch == "warn",
        trace: trace_events(args.qemu_trace.as_deref())?,
    })
}

/// `--qemu-trace`'s event patterns: names of QEMU trace events, `*` as a
/// wildcard; anything else would reach QEMU's option parser.
fn trace_events(arg: Option<&str>) -> Result<Vec<String>> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    arg.split(',')
        .map(|e| {
            let e = e.trim();
            if e.is_empty() || !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*') {
                bail!("--qemu-trace: '{e}' is not a trace event name or pattern (letters, digits, _ and *)");
            }
            Ok(e.to_string())
        })
        .collect()
}

/// Where `--qemu-trace` logs.
pub fn trace_path(dir: &Path) -> PathBuf {
    dir.join("qemu-trace.log")
}

pub fn log_path(dir: &Path, node: NodeId) -> PathBuf {
    dir.join(format!("{node}.log"))
}
