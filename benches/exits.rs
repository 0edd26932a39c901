//! minikvm against a raw-KVM floor, measured as ratios in one run (`cargo bench --bench exits`).
//!
//! The floor is the smallest honest program for the same job: open /dev/kvm, create a VM, one
//! memory slot and one vCPU, load the same guest binary, and loop on KVM_RUN answering only the
//! exits the guest makes (PUTCHAR read from sync_regs, UART bytes, LSR reads) with a write(2) of
//! each byte, as minikvm does. It lives in this file and runs as `exits floor GUEST.bin`, so both
//! sides are whole processes started the same way.
//!
//! Measured (medians of interleaved runs, so machine noise hits both sides alike):
//! * start-to-exit of `minimal` (one `hlt`);
//! * per-exit cost of `uart-bench` (20,000 THR writes) and `putchar-bench` (20,000 PUTCHAR
//!   hypercalls): (run time − start-to-exit of `minimal`) / 20,000;
//! * peak RSS of `hello` (getrusage of the only child of a small probe process).
//!
//! Results go to stdout and to `benches/RESULTS.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXITS: f64 = 20_000.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("floor") => std::process::exit(floor::run(Path::new(&args[2]))),
        Some("rss") => {
            let status = Command::new(&args[2]).args(&args[3..]).stdout(Stdio::null()).status();
            let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
            match (status, usage) {
                (Ok(_), Ok(u)) => println!("{}", u.max_rss()),
                _ => std::process::exit(1),
            }
        }
        _ => bench(args.iter().any(|a| a == "--quick")),
    }
}

/// The minikvm under test: `MINIKVM_BENCH_BIN` if set (the static build, see the README's
/// "Performance"), else the one cargo built for this bench.
fn minikvm() -> PathBuf {
    std::env::var_os("MINIKVM_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_minikvm")))
}

/// How a binary is linked: a dynamically linked ELF has a PT_INTERP segment naming its loader.
fn linkage(bin: &Path) -> &'static str {
    let bytes = std::fs::read(bin).unwrap_or_default();
    let interp = elf::ElfBytes::<elf::endian::AnyEndian>::minimal_parse(&bytes)
        .ok()
        .and_then(|f| f.segments())
        .is_some_and(|segments| segments.iter().any(|p| p.p_type == elf::abi::PT_INTERP));
    if interp {
        "dynamically linked"
    } else {
        "statically linked"
    }
}

/// The on-disk flat binary of a built-in guest, from `minikvm list`.
fn guest_bin(name: &str) -> PathBuf {
    let out = Command::new(minikvm()).arg("list").output().expect("minikvm list runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.split_whitespace().next() == Some(name) {
            let bin = lines.next().and_then(|b| b.trim().strip_prefix("binary:")).expect("binary line");
            return PathBuf::from(bin.trim());
        }
    }
    panic!("guest {name} is not built in");
}

fn time_once(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd.stdout(Stdio::null()).stdin(Stdio::null()).status().expect("benchmark process runs");
    let d = t.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    d
}

fn median(v: Vec<Duration>) -> f64 {
    middle(v).as_secs_f64()
}

/// The middle value of `v` once sorted (the upper one of an even count).
fn middle<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs minikvm and the floor alternately `reps` times on one guest; returns (minikvm, floor) medians.
fn pair(guest: &str, reps: usize) -> (f64, f64) {
    let me = std::env::current_exe().expect("own path");
    let bin = guest_bin(guest);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        a.push(time_once(Command::new(minikvm()).arg(&bin)));
        b.push(time_once(Command::new(&me).arg("floor").arg(&bin)));
    }
    (median(a), median(b))
}

fn rss_kib(cmd: &[&str]) -> u64 {
    let me = std::env::current_exe().expect("own path");
    let out = Command::new(me).arg("rss").args(cmd).output().expect("rss probe runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn bench(quick: bool) {
    let reps = if quick { 5 } else { 21 };
    let (start_m, start_f) = pair("minimal", reps);
    let (uart_m, uart_f) = pair("uart-bench", reps);
    let (put_m, put_f) = pair("putchar-bench", reps);
    let per = |t: f64, start: f64| ((t - start) / EXITS).max(1e-12);
    let (uart_pm, uart_pf) = (per(uart_m, start_m), per(uart_f, start_f));
    let (put_pm, put_pf) = (per(put_m, start_m), per(put_f, start_f));
    let me = std::env::current_exe().expect("own path");
    let hello = guest_bin("hello");
    // Peak RSS varies from run to run by ~10% (which pages the kernel maps around each fault):
    // medians of interleaved samples, with the spread shown.
    let (mut rss_ms, mut rss_fs) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        rss_ms.push(rss_kib(&[minikvm().to_str().unwrap_or_default(), "hello"]));
        rss_fs.push(rss_kib(&[me.to_str().unwrap_or_default(), "floor", hello.to_str().unwrap_or_default()]));
    }
    let mib = |k: u64| k as f64 / 1024.0;
    let spread = |v: &[u64]| {
        format!("{:.2}–{:.2} MiB", mib(v.iter().copied().min().unwrap_or(0)), mib(v.iter().copied().max().unwrap_or(0)))
    };
    let rss_spread = format!("minikvm {}, floor {}", spread(&rss_ms), spread(&rss_fs));
    let (rss_m, rss_f) = (middle(rss_ms), middle(rss_fs));
    let rss_true = rss_kib(&["/bin/true"]);

    let row = |what: &str, m: String, f: String, ratio: f64, target: &str| {
        let ok = match target {
            "≤ 1.05×" => ratio <= 1.05,
            "≤ 1.1×" => ratio <= 1.1,
            _ => true,
        };
        format!("| {what} | {m} | {f} | {ratio:.3}× | {target} | {} |\n", if ok { "met" } else { "missed" })
    };
    let mut table =
        String::from("| measure | minikvm | raw-KVM floor | ratio | target | |\n|---|---|---|---|---|---|\n");
    table += &row(
        "start-to-exit, `minimal`",
        format!("{:.2} ms", start_m * 1e3),
        format!("{:.2} ms", start_f * 1e3),
        start_m / start_f,
        "≤ 1.1×",
    );
    table += &row(
        "per exit, 20,000 UART writes",
        format!("{:.2} µs", uart_pm * 1e6),
        format!("{:.2} µs", uart_pf * 1e6),
        uart_pm / uart_pf,
        "≤ 1.05×",
    );
    table += &row(
        "per exit, 20,000 PUTCHAR hypercalls",
        format!("{:.2} µs", put_pm * 1e6),
        format!("{:.2} µs", put_pf * 1e6),
        put_pm / put_pf,
        "≤ 1.05×",
    );
    table += &format!(
        "| peak RSS, `hello` | {:.2} MiB | {:.2} MiB | {:.3}× | ≤ 3 MiB | {} |\n",
        mib(rss_m),
        mib(rss_f),
        rss_m as f64 / rss_f.max(1) as f64,
        if rss_m <= 3 * 1024 { "met" } else { "missed" }
    );
    let bin = minikvm();
    let report = format!(
        "# minikvm benchmark results\n\nMeasured by `cargo bench --bench exits` ({reps} interleaved runs per side, medians), \
         on {} with {}, load average {}.\nminikvm: {} ({}); the floor: {}.\n\
         For scale: `/bin/true` peaks at {:.2} MiB RSS on the same machine. \
         Peak RSS over the {reps} runs: {rss_spread}.\n\n{table}",
        host_kvm(),
        cpu_model(),
        load_average(),
        bin.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&bin).display(),
        linkage(&bin),
        linkage(&me),
        mib(rss_true)
    );
    print!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    if let Err(e) = std::fs::write(&out, &report) {
        eprintln!("cannot write {}: {e}", out.display());
    }
}

/// The 1-minute load average: other work on the machine shows in the wall-clock numbers.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".into())
}

fn host_kvm() -> String {
    let paging =
        Command::new(minikvm()).args(["doctor", "--probe", "paging"]).status().map(|s| s.success()).unwrap_or(false);
    if paging {
        "a KVM that runs 32-bit paging".into()
    } else {
        "this host's nested KVM (no 32-bit paging; see abi.md §5)".into()
    }
}

/// The raw-KVM floor.
mod floor {
    use kvm_bindings::{kvm_regs, kvm_userspace_memory_region};
    use kvm_ioctls::{Kvm, SyncReg, VcpuExit};
    use std::io::Write;
    use std::path::Path;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

    pub fn run(guest: &Path) -> i32 {
        let image = std::fs::read(guest).expect("guest binary");
        let kvm = Kvm::new().expect("/dev/kvm");
        let vm = kvm.create_vm().expect("VM");
        let mem: GuestMemoryMmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40000)]).expect("RAM");
        mem.write_slice(&image, GuestAddress(0)).expect("load");
        let region = mem.iter().next().expect("one region");
        let host = region.get_host_address(vm_memory::MemoryRegionAddress(0)).expect("host address");
        let slot = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: 0x40000,
            userspace_addr: host as u64,
        };
        // SAFETY: `mem` maps this range for the rest of the process.
        unsafe { vm.set_user_memory_region(slot) }.expect("memory slot");
        let mut vcpu = vm.create_vcpu(0).expect("vCPU");
        let mut sregs = vcpu.get_sregs().expect("sregs");
        for seg in [&mut sregs.cs, &mut sregs.ds, &mut sregs.es, &mut sregs.fs, &mut sregs.gs, &mut sregs.ss] {
            seg.base = 0;
            seg.selector = 0;
        }
        vcpu.set_sregs(&sregs).expect("set sregs");
        vcpu.set_regs(&kvm_regs { rflags: 2, ..Default::default() }).expect("set regs");
        vcpu.set_sync_valid_reg(SyncReg::Register);
        let mut out = std::io::stdout().lock();
        loop {
            let byte = match vcpu.run().expect("KVM_RUN") {
                VcpuExit::Hlt => return 0,
                VcpuExit::IoOut(0x500, d) if d[0] == 0 => return 0,
                VcpuExit::IoOut(0x500, _) => None,
                VcpuExit::IoOut(0x3f8, d) => Some(d[0]),
                VcpuExit::IoIn(_, d) => {
                    d[0] = 0x60; // LSR: transmitter empty
                    continue;
                }
                _ => continue,
            };
            let b = byte.unwrap_or_else(|| vcpu.sync_regs().regs.rbx as u8);
            let _ = out.write_all(&[b]);
            let _ = out.flush();
        }
    }
}
