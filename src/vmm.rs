//! Assemble a run from a [`Config`]: the machine, the console, the signals and the mailbox, a
//! thread per vCPU (and gdb's stub under `--gdb`), then hand this thread to the controller
//! ([`crate::controller`]), which decides when the run is over and its exit status.

use crate::boot::{self, BootPlan, MachineKind};
use crate::cli::{ColorChoice, OutputChoice, RunArgs};
use crate::controller::{Controller, Event, Mailbox, Seat, Shell, StopSignals};
use crate::devices::console::{lock, Console, COLOR_RESET, VCPU_COLORS};
use crate::devices::mmio::MmioBus;
use crate::devices::ports;
use crate::devices::serial::COM1_IRQ;
use crate::devices::stdin::{RawTerminal, StdinReader};
use crate::error::{Error, ExitStatus, Result};
use crate::gdb;
use crate::guests::{self, Guest};
use crate::kvm::error::KvmContext;
use crate::kvm::vcpu::HostCaps;
use crate::kvm::{self, memory::GuestRam};
use crate::run_loop::{DebugEvent, DebugLink, DebugRequest, Vcpu, VcpuEnd};
use crate::stats;
use std::io::IsTerminal;
use std::os::fd::AsFd;
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
    /// Guest output as whole lines tagged with each guest's name (several guests).
    pub tag_lines: bool,
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
        // An option that does not apply to this boot is a mistake to point out, not to ignore.
        let only_for_paging = [(args.entry.is_some(), "--entry"), (args.load.is_some(), "--load")];
        if let Some((_, option)) = only_for_paging.iter().find(|(given, _)| *given && args.paging.is_none()) {
            return Err(Error::usage(format!("{option} only applies to --paging (seed compatibility mode)")));
        }
        let only_for_linux = [(args.initrd.is_some(), "--initrd"), (args.cmdline.is_some(), "--cmdline")];
        if let Some((_, option)) = only_for_linux.iter().find(|(given, _)| *given && args.linux.is_none()) {
            return Err(Error::usage(format!("{option} only applies to --linux (a Linux kernel)")));
        }
        let (names, plan, elf_path) = plan_boot(args)?;
        let several = plan.cpus.len() > 1;
        let tag_lines = match args.output {
            OutputChoice::Auto => several,
            OutputChoice::Lines => true,
            OutputChoice::Raw => false,
        };
        // One guest alone is never coloured: its bytes are exactly what it printed.
        let color = color && several;
        let (stats, gdb) = (args.stats, args.gdb.clone());
        Ok(Config { names, plan, elf_path, stats, timeout, color, tag_lines, eof_grace, gdb })
    }
}

/// A run's guests by name, its boot plan and the ELF with symbols of its first guest.
type Planned = (Vec<String>, BootPlan, Option<String>);

/// Loads the guests the command line names and plans their boot: the seed's paging mode, a 64-bit
/// guest, or kernels and flat binaries ([`plan_guests`]).
fn plan_boot(args: &RunArgs) -> Result<Planned> {
    if let Some(path) = &args.linux {
        plan_linux(args, path)
    } else if let Some(path) = paging_file(args)? {
        let g = guests::resolve(&path.to_string_lossy())?;
        let load = args.load.unwrap_or(boot::seed_paging::DEFAULT_LOAD);
        let entry = args.entry.unwrap_or(boot::seed_paging::DEFAULT_ENTRY);
        let mem = mem_bytes(args, boot::seed_paging::DEFAULT_MEM >> 20)?;
        let plan = boot::seed_paging::plan(&g.bytes, load, entry, mem)
            .map_err(|e| Error::Boot { guest: path.display().to_string(), error: e.into() })?;
        Ok((vec![g.name], plan, None))
    } else if let Some(arg) = long_mode_arg(args)? {
        let g = guests::resolve(&arg)?;
        let plan = boot::long_mode::plan(&g.bytes, mem_bytes(args, boot::long_mode::DEFAULT_MEM >> 20)?)
            .map_err(|e| Error::Boot { guest: g.source.to_string(), error: e.into() })?;
        Ok((vec![g.name], plan, g.elf_path))
    } else {
        plan_guests(args)
    }
}

/// A Linux kernel with its initrd and command line (`--linux`, see [`boot::linux`]).
fn plan_linux(args: &RunArgs, path: &std::path::Path) -> Result<Planned> {
    let kernel = guests::resolve(&path.to_string_lossy())?;
    let mem = mem_bytes(args, boot::linux::DEFAULT_MEM_MIB)?;
    let initrd = match &args.initrd {
        Some(p) => Some(boot::linux::read_initrd(p, mem).map_err(|e| Error::usage(e.to_string()))?),
        None => None,
    };
    let cmdline = boot::linux::command_line(args.cmdline.as_deref(), args.gdb.is_some());
    let plan = boot::linux::plan(&kernel.bytes, initrd, &cmdline, mem)
        .map_err(|e| Error::usage(format!("{}: {e}", kernel.source)))?;
    // Named by its file name: a kernel's stem cuts at its version's dots (vmlinuz-6.1).
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(kernel.name);
    Ok((vec![name], plan, None))
}

/// The file `--paging` boots: its value (`--paging FILE`) or, given as a bare flag, the one guest
/// argument (`--paging --verbose FILE`, the C project's usage).
fn paging_file(args: &RunArgs) -> Result<Option<std::path::PathBuf>> {
    match (&args.paging, args.guests.as_slice()) {
        (None, _) => Ok(None),
        (Some(Some(path)), []) => Ok(Some(path.clone())),
        (Some(None), [one]) => Ok(Some(one.into())),
        (Some(_), _) => Err(Error::usage("--paging boots exactly one file: `--paging FILE` or `--paging ... FILE`")),
    }
}

/// A Multiboot kernel alone, or 1 to 4 real-mode flat binaries.
fn plan_guests(args: &RunArgs) -> Result<Planned> {
    if args.guests.is_empty() {
        return Err(Error::usage("no guest given: try `minikvm hello`, or `minikvm list` for the built-in guests"));
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
        let plan = boot::multiboot::plan(&g.bytes, mem_bytes(args, 32)?)
            .map_err(|e| Error::Boot { guest: g.name.clone(), error: e.into() })?;
        Ok((vec![g.name.clone()], plan, g.elf_path.clone()))
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
        Ok((names, boot::realmode::plan(loaded.into_iter().map(|g| g.bytes).collect()), elf))
    }
}

/// `--mem` (or `default` MiB) in bytes, checked.
fn mem_bytes(args: &RunArgs, default: u64) -> Result<u64> {
    let m = args.mem.map(u64::from).unwrap_or(default);
    if !boot::MEM_MIB.contains(&m) {
        let (min, max) = boot::MEM_MIB.into_inner();
        return Err(Error::usage(format!("--mem must be between {min} and {max} MiB")));
    }
    Ok(m << 20)
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

/// Starts a vCPU's thread. Whatever happens on it, its last act is to post how it ended: a panic
/// is caught and posted as [`VcpuEnd::Internal`], so the controller never waits for a dead thread.
fn spawn_vcpu(
    mut vcpu: Vcpu,
    link: Option<DebugLink>,
    mail: Arc<Mailbox<Event>>,
) -> Result<std::thread::JoinHandle<()>> {
    let (id, console) = (vcpu.id, vcpu.console.clone());
    std::thread::Builder::new()
        .name(format!("vcpu{id}"))
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(move || {
                injected_panic(&format!("vcpu-panic:{id}"));
                match link {
                    Some(link) => vcpu.run_debug(link),
                    None => vcpu.run(),
                }
            });
            let end = std::panic::catch_unwind(run).unwrap_or_else(|_| VcpuEnd::Internal(last_panic()));
            console.end_of(id); // its last line without a newline goes out now, not at the run's end
            mail.post(Event::Ended(id, end));
        })
        .map_err(|e| Error::Host(format!("cannot start a vCPU thread: {e}")))
}

/// Fault injection for tests: `MINIKVM_FAULT_INJECT=vcpu-panic:N` makes vCPU N's thread panic as
/// it starts, `stub-panic` the gdb stub's, standing in for any bug that kills such a thread
/// (README, "Exit status").
fn injected_panic(what: &str) {
    if std::env::var("MINIKVM_FAULT_INJECT").is_ok_and(|v| v == what) {
        panic!("fault injected by MINIKVM_FAULT_INJECT");
    }
}

thread_local! {
    /// What the panic hook saw on this thread: the message and where.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// On vCPU threads and the gdb stub's, the panic hook only notes the panic (the thread posts it as
/// its end and the controller prints one line); other threads keep the hook they had.
fn quiet_thread_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !std::thread::current().name().is_some_and(|n| n.starts_with("vcpu") || n == "gdb") {
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
        if plan.kind != MachineKind::Flat {
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
            ram.write(*gpa, bytes)?;
            log::info!("loaded {} bytes at GPA {gpa:#x}", bytes.len());
        }
        let host = HostCaps::of(&kvm)?;
        let ram_bytes = plan.memory.iter().map(|(_, len)| *len as u64).sum();
        let mut bus = ports::pc_ports(&console, ram_bytes, plan.cpus.len() as u16);
        if plan.kind == MachineKind::Linux {
            ports::add_linux_ports(&mut bus);
        }
        let bus = Arc::new(bus);
        // No device of minikvm's is memory-mapped yet (see devices::mmio): an empty MMIO bus.
        let mmio = Arc::new(MmioBus::default());
        let mut vcpus = Vec::new();
        for (i, start) in plan.cpus.iter().enumerate() {
            let fd = vm.create_vcpu(i as u64).during("creating a vCPU")?;
            // Every guest gets a CPUID table: without one KVM refuses EFER.LME (#GP), and a
            // real-mode guest may switch to long mode by itself (guest/modes.S). Kernels get the
            // host's whole table (Linux with KVM's paravirtual leaves); flat guests the few leaves
            // that needs (see kvm::cpuid).
            let cpuid = match plan.kind {
                MachineKind::Linux => kvm::kvm_paravirt_cpuid(&kvm, i as u8)?,
                MachineKind::Kernel => kvm::guest_cpuid(&kvm, i as u8)?,
                MachineKind::Flat => kvm::flat_guest_cpuid(i as u8)?,
            };
            fd.set_cpuid2(&cpuid).during("setting CPUID")?;
            if plan.kind != MachineKind::Flat {
                kvm::firmware_msrs(&fd)?;
            }
            // Not for Linux: its ACPI tables say there is no PIC, so LINT0 stays masked.
            if plan.kind == MachineKind::Kernel {
                kvm::route_pic_to_lapic(&fd)?;
            }
            let mut vcpu = Vcpu::new(i, cfg.names[i].clone(), fd, plan.kind, console.clone(), bus.clone(), host);
            vcpu.mmio = mmio.clone();
            vcpu.set_start(start)?;
            vcpus.push(vcpu);
        }
        Ok(Machine { vcpus, vm, ram, console, kind: plan.kind, uses_paging: plan.uses_paging })
    }
}

/// Runs a configured VM to the end and returns the exit status to report.
pub fn run(cfg: Config) -> Result<ExitStatus> {
    let console = open_console(cfg.color);
    let machine = Machine::build(&cfg, console.clone())?;
    let debug = match &cfg.gdb {
        Some(spec) => Some(GdbWiring::new(spec, &machine, cfg.elf_path.as_deref())?),
        None => None,
    };
    // Tagged lines name their guest; raw bytes from several guests need the legend.
    if cfg.tag_lines {
        let labels: Vec<String> = machine.vcpus.iter().map(|v| v.name.clone()).collect();
        console.tag_lines(&labels, std::io::stdout().is_terminal());
    } else if cfg.names.len() > 1 {
        print_legend(&cfg.names, cfg.color);
    }
    kvm::install_kick_handler()?;
    quiet_thread_panics();
    // Before any thread starts, so that every thread inherits the blocked mask.
    let signals = StopSignals::block()?;
    let mail: Arc<Mailbox<Event>> = Arc::new(Mailbox::new()?);
    // Linux is not watched for "input ended while it waits": its serial driver reads the line
    // status for its own reasons (boot probes, transmit), which are not waits for a key; with
    // stdin ended it runs on until it powers off, reboots, or --timeout — as on QEMU.
    if machine.kind != MachineKind::Linux {
        let waiting = mail.clone();
        console.on_ended_input_wait(Box::new(move || waiting.post(Event::EndedInputWait)));
    }

    // Raw mode before the first guest instruction, so no early key is cooked or echoed.
    let raw = RawTerminal::enter();
    if raw.is_some() {
        // Raw mode passes Ctrl-C to the guest: say once how to leave instead.
        crate::stderrln!("minikvm: keys go to the guest; press Ctrl-A then x to quit");
    }
    let input = Some(StdinReader::new(raw.is_some()));
    let paging = machine.uses_paging;
    let stats: Vec<_> = machine.vcpus.iter().map(|v| (v.id, v.name.clone(), v.stats.clone())).collect();
    let seats = start(machine.vcpus, debug, &mail, cfg.elf_path.clone())?;

    let started = Instant::now();
    let mut ctl = Controller::new(seats.len(), cfg.timeout, cfg.eof_grace, cfg.gdb.is_some(), started);
    let mut shell = Shell { mail, signals, console: console.clone(), input, seats, paging };
    shell.supervise(&mut ctl)?;
    // Every vCPU thread has posted its end as its last act; what is left of it is teardown (its
    // kvm_run mapping and stacks), which the process exit does anyway. Joining would wait for that
    // teardown: ~0.1 ms of a 2 ms `minimal` run, measured with perf stat. So the threads are let go.
    console.finish();
    drop(raw);
    // A Linux guest's power-off or reset is how it ended: one line says which.
    for end in ctl.ends().iter().flatten() {
        if let VcpuEnd::Done(why) = end {
            if crate::devices::is_power_event(why) {
                crate::stderrln!("minikvm: the guest {why}");
            }
        }
    }
    if cfg.stats {
        let all: Vec<_> = stats.iter().map(|(id, name, s)| (*id, name.clone(), lock(s).clone())).collect();
        crate::stderr!("{}", stats::table(&all));
    }
    shell.say_why_stopped(&ctl, started.elapsed(), cfg.eof_grace);
    Ok(ctl.status())
}

/// The console, writing guest bytes straight to a duplicate of fd 1: one write(2) each, without
/// std's stdout lock and line buffer in the way (minikvm flushes every byte anyway, so prompts show).
fn open_console(color: bool) -> Arc<Console> {
    let stdout: Box<dyn std::io::Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::sink()), // no stdout at all: the guest's output goes nowhere
    };
    Console::new(stdout, color, !std::io::stdin().is_terminal())
}

/// Starts a thread per vCPU, then (under `--gdb`) the stub's; returns what the controller holds
/// of each vCPU. Their request channels were made before, so every vCPU can be stopped from its
/// first instruction on.
fn start(
    vcpus: Vec<Vcpu>,
    mut debug: Option<GdbWiring>,
    mail: &Arc<Mailbox<Event>>,
    elf_path: Option<String>,
) -> Result<Vec<Seat>> {
    let mut seats = Vec::new();
    for vcpu in vcpus {
        let (id, name, ctl, stats) = (vcpu.id, vcpu.name.clone(), vcpu.ctl.clone(), vcpu.stats.clone());
        // Under gdb the vCPU starts paused and serves the stub (see crate::gdb).
        let link = debug.as_mut().and_then(|d| d.link(id));
        let thread = Arc::new(spawn_vcpu(vcpu, link, mail.clone())?);
        let stopper = debug.as_ref().and_then(|d| d.requests.get(id).cloned());
        if let (Some(d), Some(requests)) = (debug.as_mut(), stopper.clone()) {
            let (name, ctl, thread) = (name.clone(), ctl.clone(), thread.clone());
            d.handles.push(gdb::VcpuHandle { id, name, requests, ctl, thread, stats });
        }
        seats.push(Seat { name, ctl, thread, stopper });
    }
    // The stub runs on its own thread and reports how the session ended. Signals are already
    // routed to the signalfd, so a SIGTERM right after the "waiting for gdb" line is not lost.
    if let Some(d) = debug {
        d.spawn(elf_path, mail.clone())?;
    }
    Ok(seats)
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
    /// Each vCPU's request channel, made before any vCPU thread starts: the stub and the controller
    /// send on it, the vCPU's thread takes the receiving end ([`GdbWiring::link`]).
    requests: Vec<mpsc::Sender<DebugRequest>>,
    receivers: Vec<Option<mpsc::Receiver<DebugRequest>>>,
    /// What the stub holds of each vCPU whose thread has started.
    handles: Vec<gdb::VcpuHandle>,
    /// A real-mode guest's ELF, for the `symbol-file` hint.
    symbols: Option<String>,
}

impl GdbWiring {
    fn new(spec: &str, machine: &Machine, elf_path: Option<&str>) -> Result<Self> {
        let symbols = elf_path.filter(|_| machine.kind == MachineKind::Flat).map(String::from);
        let listener = gdb::listen(spec)?;
        let wake = nix::sys::eventfd::EventFd::from_flags(nix::sys::eventfd::EfdFlags::EFD_CLOEXEC)
            .map_err(|e| Error::Host(format!("cannot create an eventfd for the gdb stub: {e}")))?;
        let debug2 = machine.vm.check_extension_raw(kvm_bindings::KVM_CAP_SET_GUEST_DEBUG2.into());
        // Two probe VMs, before gdb can connect: gdb gives up on a reply after 2 s, so no packet
        // may wait for them. (Overlapping them with the vCPU threads' start gained nothing
        // measurable: 17.7 ms vs 17.0 ms to the "waiting" line, debug build, medians of 15.)
        let caps = gdb::Caps {
            block_irq: debug2 > 0 && (debug2 as u32) & kvm_bindings::KVM_GUESTDBG_BLOCKIRQ != 0,
            int3: crate::doctor::probe("int3") == Ok(true),
            data_breakpoints: crate::doctor::probe("watch") == Ok(true),
        };
        log::info!("gdb: host KVM: {caps:?}");
        let (events_tx, events_rx) = mpsc::channel();
        let (requests, receivers) = machine.vcpus.iter().map(|_| mpsc::channel()).map(|(s, r)| (s, Some(r))).unzip();
        Ok(GdbWiring {
            listener,
            events_tx,
            events_rx,
            wake: Arc::new(wake),
            ram: machine.ram.clone(),
            caps,
            requests,
            receivers,
            handles: Vec::new(),
            symbols,
        })
    }

    /// vCPU `id`'s end of the link, for its thread (once: the receiving end moves there).
    fn link(&mut self, id: usize) -> Option<DebugLink> {
        let requests = self.receivers.get_mut(id)?.take()?;
        Some(DebugLink { requests, events: self.events_tx.clone(), wake: self.wake.clone(), ram: self.ram.clone() })
    }

    /// Says where gdb can connect and starts the stub's thread. Whatever happens on it, its last
    /// act is to post how the session ended; a panic is posted as [`Event::StubDied`], so the
    /// controller never waits for a stub that is gone.
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
                let news = mail.clone();
                let serve = std::panic::AssertUnwindSafe(move || {
                    injected_panic("stub-panic");
                    stub.serve(move |n| match n {
                        gdb::Attachment::Attached => news.post(Event::GdbAttached),
                        gdb::Attachment::Detached(end) => news.post(Event::Gdb(end)),
                    })
                });
                match std::panic::catch_unwind(serve) {
                    Ok(end) => mail.post(Event::Gdb(end)),
                    Err(_) => mail.post(Event::StubDied(last_panic())),
                }
            })
            .map_err(|e| Error::Host(format!("cannot start the gdb stub thread: {e}")))?;
        Ok(())
    }
}
