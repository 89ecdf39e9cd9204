//! One machine run: QEMU started with the kernel and the plan, every node's
//! UART connected to a socket the CLI reads. Each console line is written to
//! that node's log file, handed to the caller as an [`Event`], and (but for
//! bulk machine records: raw samples, JSON reports) echoed prefixed by its
//! node (`[node1] ...`).

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
    socket_dir: PathBuf,
    consoles_open: usize,
}

/// How a run ended.
pub struct Outcome {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub qemu_stderr: String,
}

const COM_PORTS: u8 = 4;

impl Machine {
    pub fn start(opts: Options<'_>) -> Result<Machine> {
        let p = opts.prepared;
        std::fs::create_dir_all(&p.log_dir)
            .with_context(|| format!("cannot create log directory {}", p.log_dir.display()))?;
        let socket_dir =
            std::env::temp_dir().join(format!("mint-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&socket_dir)?;

        let plan = opts.plan;
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
            .args(["-cpu", if p.accel == Accel::Kvm { "host" } else { "max" }])
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
            .args(["-append", &cmdline.join(" ")])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .args(["-monitor", "none"]);

        if plan
            .nodes
            .iter()
            .any(|n| n.devices.contains(&Device::E1000))
        {
            // QEMU's 82540EM on a hub of its own: no traffic reaches it but
            // what a test or tool puts there.
            cmd.args(["-netdev", "hubport,id=mintnet0,hubid=0"])
                .args(["-device", "e1000,netdev=mintnet0,mac=52:54:00:12:34:56"]);
        }
        if let Some((port, wait)) = p.gdb {
            cmd.args(["-gdb", &format!("tcp:127.0.0.1:{port}")]);
            if wait {
                cmd.arg("-S");
            }
            eprintln!(
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
                    let path = socket_dir.join(format!("com{com}.sock"));
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
            socket_dir,
            consoles_open,
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

    /// Waits for QEMU to exit (killing it after `timeout`) and for every
    /// console to drain.
    pub fn finish(mut self, timeout: Duration, mut on_event: impl FnMut(Event)) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        loop {
            // Checked on every turn: busy consoles must not hold off the deadline.
            if !timed_out && Instant::now() > deadline {
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
                let drain = Instant::now() + Duration::from_secs(10);
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
        let _ = std::fs::remove_dir_all(&self.socket_dir);
        Outcome {
            status,
            timed_out,
            qemu_stderr,
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.socket_dir);
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
            let bulk = ["MINT-SAMPLES", "MINT-REPORT ", "MINT-GEN "]
                .iter()
                .any(|p| text.starts_with(p));
            match echo {
                _ if bulk => {}
                Echo::Stdout => println!("[{node}] {text}"),
                Echo::Stderr => eprintln!("[{node}] {text}"),
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
    pub log_dir: PathBuf,
    /// CPUs and RAM (MiB) QEMU gets when they should differ from the plan's.
    pub machine_override: (Option<u8>, Option<u64>),
    /// gdb stub port, and whether the CPUs wait for gdb at the start.
    pub gdb: Option<(u16, bool)>,
    /// The host's TSC rate for node 0's cross-check (`crate::tsc`).
    pub host_tsc: crate::tsc::HostTsc,
    /// `--tsc-mismatch warn`.
    pub tsc_mismatch_warn: bool,
}

pub fn prepare(args: &crate::MachineArgs, quiet_build: bool) -> Result<Prepared> {
    if args.accel == "kvm" {
        // Fail fast, before building anything, where KVM cannot be real.
        if let Some(why) = crate::qemu::kvm_unusable_reason() {
            bail!("--accel kvm: {why}; use --accel tcg (or auto)");
        }
    }
    let qemu = crate::qemu::find_or_install()?;
    let kernel = match &args.kernel {
        Some(k) => k.clone(),
        None => crate::kernel::build(quiet_build)?,
    };
    let accel = crate::qemu::choose(&args.accel, &qemu, &kernel)?;
    let log_dir = args.log_dir.clone().unwrap_or_else(default_log_dir);
    let host_tsc = crate::tsc::host_tsc(args.host_tsc_hz);
    if let Some(problem) = &host_tsc.problem {
        eprintln!("mint: WARNING: host TSC: {problem}");
    }
    Ok(Prepared {
        qemu,
        kernel,
        accel,
        log_dir,
        machine_override: (args.qemu_cpus, args.qemu_memory_mib),
        gdb: args.gdb.map(|port| (port, args.gdb_wait)),
        host_tsc,
        tsc_mismatch_warn: args.tsc_mismatch == "warn",
    })
}

/// Default log directory: `runs/<unix time>-<pid>` under the workspace.
pub fn default_log_dir() -> PathBuf {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::kernel::workspace_root()
        .join("runs")
        .join(format!("{t}-{}", std::process::id()))
}

pub fn log_path(dir: &Path, node: NodeId) -> PathBuf {
    dir.join(format!("{node}.log"))
}
