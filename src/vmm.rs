//! Assemble a VM from a [`Config`], run its vCPUs on their own threads, and decide the outcome.
//!
//! The controller (this thread) only waits for events — a vCPU ended, input on stdin, a signal, the
//! gdb session ended, a deadline (see [`crate::controller`]) — and stops the vCPUs by setting their
//! stop flag and kicking them.

use crate::boot::{self, BootPlan, MachineKind};
use crate::cli::{ColorChoice, RunArgs};
use crate::controller::{self, EofWatch, Mailbox, StopSignals, WaitSigns};
use crate::devices::console::InputWait;
use crate::devices::console::{lock, Console, COLOR_RESET, VCPU_COLORS};
use crate::devices::ports;
use crate::devices::serial::COM1_IRQ;
use crate::devices::stdin::{InputEvent, RawTerminal, StdinReader};
use crate::error::{Error, ExitStatus, KvmContext, Result};
use crate::exit::Fault;
use crate::gdb::{self, SessionEnd};
use crate::guests::{self, Guest};
use crate::kvm::vcpu::{DebugEvent, DebugLink, DebugRequest, HostCaps};
use crate::kvm::{
    self,
    memory::GuestRam,
    vcpu::{Vcpu, VcpuControl, VcpuEnd},
};
use crate::stats;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Everything a run needs, checked and loaded.
pub struct Config {
    pub names: Vec<String>,
    pub plan: BootPlan,
    /// ELF with symbols of the first guest, if known (offered to gdb).
    pub elf_path: Option<String>,
    pub stats: bool,
    pub timeout: Option<Duration>,
    pub color: bool,
    pub eof_grace: Duration,
    pub gdb: Option<String>,
}

impl Config {
    /// Checks the command line and loads the guests.
    pub fn from_args(args: &RunArgs) -> Result<Config> {
        let secs = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 && v < 1e9 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(Error::usage(format!("{what} must be a positive number of seconds")))
            }
        };
        let timeout = args.timeout.map(|t| secs(t, "--timeout")).transpose()?;
        let eof_grace = secs(args.eof_grace, "--eof-grace")?;
        let color = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        let mem_mib = |default: u64| -> Result<u64> {
            let m = args.mem.map(u64::from).unwrap_or(default);
            if !boot::MEM_MIB.contains(&m) {
                let (min, max) = boot::MEM_MIB.into_inner();
                return Err(Error::usage(format!("--mem must be between {min} and {max} MiB")));
            }
            Ok(m << 20)
        };
        // An option that does not apply to this boot is a mistake to point out, not to ignore.
        let only_for_paging = [(args.entry.is_some(), "--entry"), (args.load.is_some(), "--load")];
        if let Some((_, option)) = only_for_paging.iter().find(|(given, _)| *given && args.paging.is_none()) {
            return Err(Error::usage(format!("{option} only applies to --paging (seed compatibility mode)")));
        }
        let (names, plan, elf_path) = if let Some(path) = &args.paging {
            let g = guests::resolve(&path.to_string_lossy())?;
            let load = args.load.unwrap_or(boot::seed_paging::DEFAULT_LOAD);
            let entry = args.entry.unwrap_or(boot::seed_paging::DEFAULT_ENTRY);
            let mem = mem_mib(boot::seed_paging::DEFAULT_MEM >> 20)?;
            let plan = boot::seed_paging::plan(&g.bytes, load, entry, mem)
                .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
            (vec![g.name], plan, None)
        } else if let Some(arg) = long_mode_arg(args)? {
            let g = guests::resolve(&arg)?;
            let plan = boot::long_mode::plan(&g.bytes, mem_mib(boot::long_mode::DEFAULT_MEM >> 20)?)
                .map_err(|e| Error::usage(format!("{}: {e}", g.source)))?;
            (vec![g.name], plan, g.elf_path)
        } else {
            if args.guests.is_empty() {
                return Err(Error::usage(
                    "no guest given: try `minikvm hello`, or `minikvm list` for the built-in guests",
                ));
            }
            if args.guests.len() > boot::realmode::MAX_GUESTS {
                return Err(Error::usage(format!(
                    "{} guests given, but minikvm runs at most {} at once (one vCPU each)",
                    args.guests.len(),
                    boot::realmode::MAX_GUESTS
                )));
            }
            let loaded: Vec<Guest> = args.guests.iter().map(|a| guests::resolve(a)).collect::<Result<_>>()?;
            let kernels = loaded.iter().filter(|g| boot::multiboot::looks_like_elf(&g.bytes)).count();
            if kernels > 0 {
                if loaded.len() > 1 {
                    return Err(Error::usage("an ELF kernel runs alone: give one kernel, or 1 to 4 flat binaries"));
                }
                let g = &loaded[0];
                let plan = boot::multiboot::plan(&g.bytes, mem_mib(32)?)
                    .map_err(|e| Error::usage(format!("{}: {e}", g.name)))?;
                (vec![g.name.clone()], plan, g.elf_path.clone())
            } else {
                if args.mem.is_some() {
                    return Err(Error::usage(
                        "--mem only applies to kernels and 64-bit guests: each real-mode guest has its fixed 256 KiB window",
                    ));
                }
                for g in &loaded {
                    guests::check_flat_size(g)?;
                }
                let names = loaded.iter().map(|g| g.name.clone()).collect();
                let elf = loaded[0].elf_path.clone();
                (names, boot::realmode::plan(loaded.into_iter().map(|g| g.bytes).collect()), elf)
            }
        };
        Ok(Config { names, plan, elf_path, stats: args.stats, timeout, color, eof_grace, gdb: args.gdb.clone() })
    }
}

/// The 64-bit flat guest to run, if any: `--long-mode FILE`, or one built-in 64-bit guest (which
/// is known to be one, so it needs no option, and never runs as 16-bit code beside others).
fn long_mode_arg(args: &RunArgs) -> Result<Option<String>> {
    if let Some(path) = &args.long_mode {
        return Ok(Some(path.to_string_lossy().into_owned()));
    }
    let is_64 = |a: &String| guests::builtin(a).is_some_and(|g| g.kind == guests::GuestKind::LongMode);
    match args.guests.as_slice() {
        [only] if is_64(only) => Ok(Some(only.clone())),
        several => match several.iter().find(|a| is_64(a)) {
            Some(a) => Err(Error::usage(format!("`{a}` is a 64-bit guest: it runs alone (one vCPU in long mode)"))),
            None => Ok(None),
        },
    }
}

/// What other threads tell the controller (through its [`Mailbox`]).
enum Event {
    Ended(usize, VcpuEnd),
    /// The gdb session is over.
    Gdb(SessionEnd),
    /// After stdin ended, a guest started waiting for input (time its --eof-grace).
    Starving,
}

/// Why the controller stopped the run, if it did. (A guest's fault ends only its own vCPU.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Timeout,
    InputEnded,
    User,
    /// A vCPU thread died: nothing about the run can be trusted any more.
    Internal,
}

/// Starts a vCPU's thread. Whatever happens on it, its last act is to post how it ended: a panic
/// is caught and posted as [`VcpuEnd::Internal`], so the controller never waits for a dead thread.
fn spawn_vcpu(
    mut vcpu: Vcpu,
    link: Option<DebugLink>,
    mail: Arc<Mailbox<Event>>,
) -> Result<std::thread::JoinHandle<()>> {
    let id = vcpu.id;
    std::thread::Builder::new()
        .name(format!("vcpu{id}"))
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(move || {
                injected_panic(id);
                match link {
                    Some(link) => vcpu.run_debug(link),
                    None => vcpu.run(),
                }
            });
            let end = std::panic::catch_unwind(run).unwrap_or_else(|_| VcpuEnd::Internal(last_panic()));
            mail.post(Event::Ended(id, end));
        })
        .map_err(|e| Error::Host(format!("cannot start a vCPU thread: {e}")))
}

/// Fault injection for tests: `MINIKVM_FAULT_INJECT=vcpu-panic:N` makes vCPU N's thread panic as
/// it starts, standing in for any bug that kills a vCPU thread (README, "Exit status").
fn injected_panic(id: usize) {
    if std::env::var("MINIKVM_FAULT_INJECT").is_ok_and(|v| v == format!("vcpu-panic:{id}")) {
        panic!("fault injected by MINIKVM_FAULT_INJECT");
    }
}

thread_local! {
    /// What the panic hook saw on this thread: the message and where.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// On vCPU threads, the panic hook only notes the panic (the thread posts it as its end and the
/// controller prints one line); other threads keep the hook they had.
fn quiet_vcpu_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !std::thread::current().name().is_some_and(|n| n.starts_with("vcpu")) {
                return previous(info);
            }
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{place}")));
        }));
    });
}

fn last_panic() -> String {
    LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "a panic".into())
}

/// Builds the VM and its vCPUs (nothing runs yet).
pub struct Machine {
    // Field order matters: vCPUs and the VM go before the memory they map.
    pub vcpus: Vec<Vcpu>,
    pub vm: Arc<kvm_ioctls::VmFd>,
    pub ram: Arc<GuestRam>,
    pub console: Arc<Console>,
    pub kind: MachineKind,
    pub uses_paging: bool,
}

impl Machine {
    pub fn build(cfg: &Config, console: Arc<Console>) -> Result<Machine> {
        let kvm = kvm::open()?;
        let vm = Arc::new(kvm.create_vm().during("creating the VM")?);
        log::info!("created a VM (KVM API {})", kvm.get_api_version());
        // Intel VMX needs three pages for its real-mode helper TSS; put them out of the guest's way.
        vm.set_tss_address(0xfffb_d000).during("setting the TSS address")?;
        let plan = &cfg.plan;
        if plan.kind == MachineKind::Kernel {
            kvm::add_pc_interrupts(&vm)?;
            log::info!("added the in-kernel 8259 PIC pair, IOAPIC, LAPIC and 8254 PIT");
            let vm2 = vm.clone();
            console.connect_irq(Box::new(move |level| {
                if let Err(e) = vm2.set_irq_line(COM1_IRQ, level) {
                    log::warn!("raising IRQ{COM1_IRQ} failed: {e}");
                }
            }));
        }
        let ram = Arc::new(GuestRam::new(&vm, &plan.memory)?);
        for (gpa, bytes) in &plan.images {
            ram.write(*gpa, bytes).map_err(Error::usage)?;
            log::info!("loaded {} bytes at GPA {gpa:#x}", bytes.len());
        }
        let host = HostCaps::of(&kvm)?;
        let bus = Arc::new(ports::pc_ports(&console));
        let mut vcpus = Vec::new();
        for (i, start) in plan.cpus.iter().enumerate() {
            let fd = vm.create_vcpu(i as u64).during("creating a vCPU")?;
            // Real-mode flat guests never ask CPUID anything we would answer differently, and
            // KVM_SET_CPUID2 is a third of their start-up time; kernels get the full table.
            if plan.kind == MachineKind::Kernel {
                fd.set_cpuid2(&kvm::guest_cpuid(&kvm, i as u8)?).during("setting CPUID")?;
                kvm::route_pic_to_lapic(&fd)?;
            }
            let vcpu = Vcpu::new(i, cfg.names[i].clone(), fd, plan.kind, console.clone(), bus.clone(), host);
            vcpu.set_start(start)?;
            vcpus.push(vcpu);
        }
        Ok(Machine { vcpus, vm, ram, console, kind: plan.kind, uses_paging: plan.uses_paging })
    }
}

/// Runs a configured VM to the end and returns the exit status to report.
pub fn run(cfg: Config) -> Result<ExitStatus> {
    // Guest bytes go straight to a duplicate of fd 1: one write(2) each, without std's stdout
    // lock and line buffer in the way (minikvm flushes every byte anyway, so prompts show).
    let stdout: Box<dyn std::io::Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::sink()), // no stdout at all: the guest's output goes nowhere
    };
    let console = Console::new(stdout, cfg.color, !std::io::stdin().is_terminal());
    let machine = Machine::build(&cfg, console.clone())?;
    let mut debug = match &cfg.gdb {
        Some(spec) => Some(GdbWiring::new(spec, &machine, cfg.elf_path.as_deref())?),
        None => None,
    };
    if cfg.names.len() > 1 {
        print_legend(&cfg.names, cfg.color);
    }
    kvm::install_kick_handler()?;
    quiet_vcpu_panics();
    // Before any thread starts, so that every thread inherits the blocked mask.
    let signals = StopSignals::block()?;
    let mail: Arc<Mailbox<Event>> = Arc::new(Mailbox::new()?);
    let starving = mail.clone();
    console.on_starve(Box::new(move || starving.post(Event::Starving)));

    // Raw mode before the first guest instruction, so no early key is cooked or echoed.
    let raw = RawTerminal::enter();
    let mut input = Some(StdinReader::new(raw.is_some()));

    let uses_paging = machine.uses_paging;
    let mut controls: Vec<Arc<VcpuControl>> = Vec::new();
    let mut stats_refs = Vec::new();
    let mut threads = Vec::new();
    for vcpu in machine.vcpus {
        controls.push(vcpu.ctl.clone());
        stats_refs.push((vcpu.id, vcpu.name.clone(), vcpu.stats.clone()));
        let mail = mail.clone();
        let id = vcpu.id;
        // Under gdb the vCPU starts paused and serves the stub (see crate::gdb).
        let link = debug.as_mut().map(|d| d.link(&vcpu));
        let handle = Arc::new(spawn_vcpu(vcpu, link, mail)?);
        if let Some(d) = debug.as_mut() {
            d.thread_started(id, handle.clone());
        }
        threads.push(handle);
    }
    let stoppers = debug.as_ref().map(GdbWiring::stoppers).unwrap_or_default();

    // The stub runs on its own thread and reports how the session ended. Signals are already
    // routed to the signalfd, so a SIGTERM right after the "waiting for gdb" line is not lost.
    let mut gdb_attached = false;
    if let Some(d) = debug.take() {
        d.spawn(cfg.elf_path.clone(), mail.clone())?;
        gdb_attached = true;
    }

    let started = Instant::now();
    // While gdb is attached, time at its prompt counts for nothing: the timeout starts on detach.
    let mut deadline = cfg.timeout.filter(|_| !gdb_attached).map(|t| started + t);
    let mut ends: Vec<Option<VcpuEnd>> = vec![None; threads.len()];
    let mut stop: Option<StopReason> = None;
    let mut eof = EofWatch::new(cfg.eof_grace);
    let stop_all = |ends: &[Option<VcpuEnd>]| {
        for (i, c) in controls.iter().enumerate() {
            if ends[i].is_none() {
                c.stop.store(true, Ordering::Release);
                kvm::kick(&threads[i]);
                // A vCPU paused under gdb waits for requests, not for kicks.
                if let Some(s) = stoppers.get(i) {
                    let _ = s.send(DebugRequest::Stop);
                }
            }
        }
        // After the flags: a vCPU woken from GETCHAR's wait must find its stop flag set, or it
        // would run its guest on with "no input" for a moment.
        console.close();
    };
    // After an internal error the gdb session is not waited for: the stub may wait on the dead vCPU.
    while ends.iter().any(Option::is_none) || (gdb_attached && stop != Some(StopReason::Internal)) {
        // Sleep until something happens; wake for the deadline, to re-kick vCPUs that have not
        // stopped yet, or when a guest waiting on ended input has been quiet for --eof-grace.
        let mut timeout: Option<Duration> = None;
        let mut at_most = |d: Duration| timeout = Some(timeout.map_or(d, |t| t.min(d)));
        if stop.is_some() {
            at_most(Duration::from_millis(50));
        } else {
            if let Some(d) = deadline {
                at_most(d.saturating_duration_since(Instant::now()));
            }
            if let Some(d) = eof.next_look(&wait_signs(input.is_none() && !gdb_attached, &console, &controls, &ends)) {
                at_most(d);
            }
        }
        let woke = controller::wait(&mail, &signals, input.is_some(), timeout)?;
        if woke.stdin {
            match input.as_mut().and_then(|r| r.read_once(&console)) {
                Some(InputEvent::Eof) => input = None,
                Some(InputEvent::Quit) => {
                    input = None;
                    crate::stderrln!("\r\nminikvm: quit (Ctrl-A x)\r");
                    stop.get_or_insert(StopReason::User);
                    stop_all(&ends);
                }
                None => {}
            }
        }
        if let Some(sig) = woke.signal {
            crate::stderrln!("\r\nminikvm: stopped by signal {sig}\r");
            stop.get_or_insert(StopReason::User);
            stop_all(&ends);
        }
        for event in mail.take() {
            match event {
                Event::Ended(i, end) => {
                    log::info!("vCPU {i} ({}) ended: {end:?}", cfg.names[i]);
                    // Guests are independent programs: a fault ends only its own vCPU. Its report
                    // comes now, in no vCPU's colour (the next guest byte sets its colour again).
                    if !matches!(end, VcpuEnd::Done(_) | VcpuEnd::Stopped) {
                        console.finish();
                    }
                    report_end(&cfg, i, &end, uses_paging);
                    let internal = matches!(end, VcpuEnd::Internal(_));
                    ends[i] = Some(end);
                    if internal {
                        stop = Some(StopReason::Internal);
                        stop_all(&ends);
                    }
                }
                Event::Gdb(end) => {
                    log::info!("gdb session ended: {end:?}");
                    gdb_attached = false;
                    match end {
                        SessionEnd::Killed => {
                            stop.get_or_insert(StopReason::User);
                            stop_all(&ends);
                        }
                        SessionEnd::Detached | SessionEnd::Lost(_) => {
                            deadline = cfg.timeout.map(|t| Instant::now() + t);
                        }
                        SessionEnd::Failed(why) => {
                            crate::stderrln!(
                                "\r\nminikvm: internal error: the gdb stub failed ({why}); this is a minikvm bug, \
                                 please report it\r"
                            );
                            stop = Some(StopReason::Internal);
                            stop_all(&ends);
                        }
                        SessionEnd::RunOver | SessionEnd::NeverConnected => {}
                    }
                }
                Event::Starving => {} // the wait above is recomputed with the grace period
            }
        }
        let signs = wait_signs(input.is_none() && !gdb_attached, &console, &controls, &ends);
        if stop.is_some() {
            stop_all(&ends); // again, for any vCPU that has not stopped yet
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            stop = Some(StopReason::Timeout);
            stop_all(&ends);
        } else if eof.expired(&signs) {
            stop = Some(StopReason::InputEnded);
            stop_all(&ends);
        }
    }
    // Every vCPU thread has posted its end as its last act; what is left of it is teardown (its
    // kvm_run mapping and stacks), which the process exit does anyway. Joining would wait for that
    // teardown: ~0.1 ms of a 2 ms `minimal` run, measured with perf stat. So the threads are let go.
    drop(threads);
    console.finish();
    drop(raw);

    if cfg.stats {
        let all: Vec<_> = stats_refs.iter().map(|(id, name, s)| (*id, name.clone(), lock(s).clone())).collect();
        crate::stderr!("{}", stats::table(&all));
    }
    Ok(outcome(&cfg, &ends, stop, started.elapsed()))
}

/// After stdin ended (`ended`), what the console and the vCPU threads show of a wait for input.
/// (Where /proc has no schedstat, runnable time reads as zero: a receive interrupt left on then
/// counts as a wait, so a run can never hang on it.)
fn wait_signs(ended: bool, console: &Console, controls: &[Arc<VcpuControl>], ends: &[Option<VcpuEnd>]) -> WaitSigns {
    let now = Instant::now();
    if !ended {
        return WaitSigns { wait: InputWait::No, quiet: Duration::ZERO, runnable: Duration::ZERO, polls: 0, now };
    }
    let running = controls.iter().zip(ends).filter(|(_, end)| end.is_none());
    let runnable = running.filter_map(|(c, _)| controller::runnable_time(c.tid.load(Ordering::Relaxed))).sum();
    let quiet = Duration::from_secs_f64(console.quiet_for());
    WaitSigns { wait: console.input_wait(), quiet, runnable, polls: console.empty_polls(), now }
}

/// Says on stderr how one vCPU ended, when that is news: a fault's report, a host error, a bug.
fn report_end(cfg: &Config, i: usize, end: &VcpuEnd, paging: bool) {
    match end {
        VcpuEnd::Fault { fault, report } => {
            crate::stderrln!("minikvm: {report}");
            if paging && *fault == Fault::TripleFault && crate::doctor::probe("paging") == Ok(false) {
                crate::stderrln!(
                    "minikvm: this host's KVM cannot run 32-bit paging (see `minikvm doctor`), so a kernel \
                     that turns paging on triple-faults here. See the README section \"Hosts whose KVM cannot page\"."
                );
            }
        }
        VcpuEnd::HostError(msg) => crate::stderrln!("minikvm: {msg}"),
        VcpuEnd::Internal(why) => crate::stderrln!(
            "minikvm: internal error: the thread of vCPU {i} (`{}`) died ({why}); this is a bug in minikvm, \
             please report it with the command line that led to it",
            cfg.names[i]
        ),
        VcpuEnd::Done(_) | VcpuEnd::Stopped => {}
    }
}

/// How bad an exit status is, for the run's status with several vCPUs: the worst outcome wins,
/// in the order 7 > 4 > 1 > 6 > 3 > 5 > 0 (a minikvm bug, then the host, then a guest's fault,
/// then the reasons the run was stopped).
fn severity(status: ExitStatus) -> u8 {
    match status {
        ExitStatus::Ok => 0,
        ExitStatus::InputEnded => 1,
        ExitStatus::Timeout => 2,
        ExitStatus::Stopped => 3,
        ExitStatus::GuestFault => 4,
        ExitStatus::Usage => 5,
        // The lab failing never comes from a vCPU; it ranks with the host's failures.
        ExitStatus::Host | ExitStatus::LabBroken => 6,
        ExitStatus::Internal => 7,
    }
}

/// The exit status of a run: the worst of each vCPU's end and of the reason the run was stopped;
/// says on stderr why a stop happened.
fn outcome(cfg: &Config, ends: &[Option<VcpuEnd>], stop: Option<StopReason>, elapsed: Duration) -> ExitStatus {
    let running: Vec<String> = ends
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Some(VcpuEnd::Stopped) | None))
        .map(|(i, _)| format!("`{}` (vCPU {i})", cfg.names[i]))
        .collect();
    let stopped = match stop {
        Some(StopReason::Timeout) => {
            crate::stderrln!(
                "minikvm: timeout after {:.1} s: {} still running, stopped",
                elapsed.as_secs_f64(),
                running.join(", ")
            );
            ExitStatus::Timeout
        }
        Some(StopReason::InputEnded) => {
            crate::stderrln!(
                "minikvm: stdin ended and {} kept waiting for input for {:.1} s, stopped",
                running.join(", "),
                cfg.eof_grace.as_secs_f64()
            );
            ExitStatus::InputEnded
        }
        Some(StopReason::User) => ExitStatus::Stopped,
        Some(StopReason::Internal) => ExitStatus::Internal,
        None => ExitStatus::Ok,
    };
    let ended = ends.iter().flatten().map(|end| match end {
        VcpuEnd::Fault { .. } => ExitStatus::GuestFault,
        VcpuEnd::HostError(_) => ExitStatus::Host,
        VcpuEnd::Internal(_) => ExitStatus::Internal,
        VcpuEnd::Done(_) | VcpuEnd::Stopped => ExitStatus::Ok,
    });
    ended.chain([stopped]).max_by_key(|s| severity(*s)).unwrap_or(ExitStatus::Ok)
}

fn print_legend(names: &[String], color: bool) {
    let mut s = String::from("minikvm:");
    for (i, n) in names.iter().enumerate() {
        if color {
            s += &format!(" {}vCPU {i}: {n}{COLOR_RESET}", VCPU_COLORS[i % VCPU_COLORS.len()]);
        } else {
            s += &format!(" [vCPU {i}: {n}]");
        }
    }
    crate::stderrln!("{s}");
}

// ----- the gdb side of a run (--gdb) ---------------------------------------------------------

/// Channels between the vCPU threads and the gdb stub, assembled while the vCPUs start.
struct GdbWiring {
    listener: std::net::TcpListener,
    events_tx: mpsc::Sender<(usize, DebugEvent)>,
    events_rx: mpsc::Receiver<(usize, DebugEvent)>,
    wake: Arc<nix::sys::eventfd::EventFd>,
    ram: Arc<GuestRam>,
    caps: gdb::Caps,
    handles: Vec<gdb::VcpuHandle>,
    /// The vCPU whose thread starts next.
    starting: Option<Starting>,
    /// A real-mode guest's ELF, for the `symbol-file` hint.
    symbols: Option<String>,
}

/// What the stub will hold of a vCPU, once its thread has started.
struct Starting {
    id: usize,
    name: String,
    requests: mpsc::Sender<DebugRequest>,
    ctl: Arc<VcpuControl>,
    stats: Arc<std::sync::Mutex<stats::VcpuStats>>,
}

impl GdbWiring {
    fn new(spec: &str, machine: &Machine, elf_path: Option<&str>) -> Result<Self> {
        let symbols = elf_path.filter(|_| machine.kind == MachineKind::Flat).map(String::from);
        let listener = gdb::listen(spec)?;
        let wake = nix::sys::eventfd::EventFd::from_flags(nix::sys::eventfd::EfdFlags::EFD_CLOEXEC)
            .map_err(|e| Error::Host(format!("cannot create an eventfd for the gdb stub: {e}")))?;
        let debug2 = machine.vm.check_extension_raw(kvm_bindings::KVM_CAP_SET_GUEST_DEBUG2.into());
        let caps = gdb::Caps {
            block_irq: debug2 > 0 && (debug2 as u32) & kvm_bindings::KVM_GUESTDBG_BLOCKIRQ != 0,
            int3: crate::doctor::probe("int3") == Ok(true),
            data_breakpoints: crate::doctor::probe("watch") == Ok(true),
        };
        log::info!("gdb: host KVM: {caps:?}");
        let (events_tx, events_rx) = mpsc::channel();
        Ok(GdbWiring {
            listener,
            events_tx,
            events_rx,
            wake: Arc::new(wake),
            ram: machine.ram.clone(),
            caps,
            handles: Vec::new(),
            starting: None,
            symbols,
        })
    }

    /// The vCPU's end of the link (its thread starts next).
    fn link(&mut self, vcpu: &Vcpu) -> DebugLink {
        let (requests, req_rx) = mpsc::channel();
        let (id, name, ctl, stats) = (vcpu.id, vcpu.name.clone(), vcpu.ctl.clone(), vcpu.stats.clone());
        self.starting = Some(Starting { id, name, requests, ctl, stats });
        DebugLink { requests: req_rx, events: self.events_tx.clone(), wake: self.wake.clone(), ram: self.ram.clone() }
    }

    fn thread_started(&mut self, id: usize, thread: Arc<std::thread::JoinHandle<()>>) {
        if let Some(Starting { id, name, requests, ctl, stats }) = self.starting.take().filter(|s| s.id == id) {
            self.handles.push(gdb::VcpuHandle { id, name, requests, ctl, thread, stats });
        }
    }

    /// Senders the controller uses to stop paused vCPUs.
    fn stoppers(&self) -> Vec<mpsc::Sender<DebugRequest>> {
        self.handles.iter().map(|h| h.requests.clone()).collect()
    }

    /// Says where gdb can connect and starts the stub's thread.
    fn spawn(self, elf_path: Option<String>, mail: Arc<Mailbox<Event>>) -> Result<()> {
        gdb::announce(&self.listener, self.symbols.as_deref())?;
        let stub = gdb::Stub {
            listener: self.listener,
            vcpus: self.handles,
            events: self.events_rx,
            wake: self.wake,
            ram: self.ram,
            caps: self.caps,
            elf_path,
        };
        std::thread::Builder::new()
            .name("gdb".into())
            .spawn(move || {
                let end = stub.serve();
                mail.post(Event::Gdb(end));
            })
            .map_err(|e| Error::Host(format!("cannot start the gdb stub thread: {e}")))?;
        Ok(())
    }
}
