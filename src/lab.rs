//! The lab: running minikvm inside a PC that QEMU emulates in software, with a real KVM inside,
//! when this host's KVM cannot run what was asked.
//!
//! Some KVMs (nested, emulating ones, like those of cloud VMs) run real mode but not 32-bit
//! paging, or not ring-3 system calls in long mode, so the 1K OS would fault on them. Rather than
//! fail, minikvm asks the doctor's probes for what a kernel may need, once each, and when one fails
//! hands the very same command line to `lab/minikvm-lab`,
//! which boots a small Linux with kvm-amd under QEMU and runs this minikvm binary there, with
//! the user's terminal as its console and its exit status as ours. The script does the work
//! (set-up, image, boot); this file only decides and hands over, so the decision stays readable.

use crate::cli::RunArgs;
use crate::doctor;
use crate::error::ExitStatus;
use crate::vmm::Config;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Set (to anything) to keep every run on this host, whatever it can do: the test suite sets it,
/// so that no test starts a lab by accident. `--no-lab` does the same for one run.
pub const NO_LAB_ENV: &str = "MINIKVM_NO_LAB";

/// Overrides where the lab script is (default: `lab/minikvm-lab` in the source tree minikvm was
/// built from).
pub const SCRIPT_ENV: &str = "MINIKVM_LAB";

/// The doctor's probes for what a kernel may need that some KVMs lack: 32-bit paging (the 1K OS,
/// `--paging`) and ring-3 system calls in long mode (the 64-bit 1K OS's programs). A Multiboot
/// kernel may use either, and minikvm cannot tell which before running it.
pub const KERNEL_PROBES: &[&str] = &["paging", "usercall"];

/// Why a run goes to the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `--lab` asked for it.
    Asked,
    /// The guest is a kernel and these probes (what each checks) failed on this host.
    HostCannot(Vec<&'static str>),
}

/// Problems handing a run over to the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The script is not where minikvm expects it.
    #[error(
        "the lab cannot run: its script {0} is missing (set {SCRIPT_ENV} to lab/minikvm-lab of minikvm's sources)"
    )]
    NoScript(PathBuf),
    /// The script is there but could not be started.
    #[error("the lab cannot run: starting {0} failed: {1}")]
    Exec(PathBuf, std::io::Error),
}

/// Decides where this run goes: `None` = this host, `Some(reason)` = the lab. Each probe runs at
/// most once, and only for kernels (plans that may turn paging on).
pub fn choose(args: &RunArgs, cfg: &Config) -> Option<Reason> {
    if args.lab {
        return Some(Reason::Asked);
    }
    if args.no_lab || std::env::var_os(NO_LAB_ENV).is_some() || !cfg.plan.uses_paging {
        return None;
    }
    let failing: Vec<&'static str> = doctor::PROBES
        .iter()
        .filter(|p| KERNEL_PROBES.contains(&p.name) && doctor::probe(p.name) == Ok(false))
        .map(|p| p.what)
        .collect();
    (!failing.is_empty()).then_some(Reason::HostCannot(failing))
}

/// Says why in one line on stderr and replaces this process by the lab script, which runs this
/// same binary with the same arguments (less `--lab`) inside the lab. Returns only on failure.
pub fn hand_over(reason: &Reason, cfg: &Config) -> ExitStatus {
    // `os-1k` is handed over as typed: the minikvm inside picks its flavour by the lab's KVM.
    let what = if crate::os1k_flavour::asked() { crate::guests::OS_1K.to_string() } else { cfg.names.join(" ") };
    match reason {
        Reason::Asked => crate::stderrln!("minikvm: running {what} in the lab (an emulated PC with a real KVM inside)"),
        Reason::HostCannot(missing) => crate::stderrln!(
            "minikvm: this host's KVM cannot run {} (see `minikvm doctor`), which a kernel such as {what} may need: \
             running it in the lab, an emulated PC with a real KVM inside (--no-lab runs it here anyway)",
            missing.join(", nor ")
        ),
    }
    let err = exec_script();
    crate::stderrln!("minikvm: error: {err}");
    ExitStatus::LabBroken
}

fn exec_script() -> LabError {
    let script = std::env::var_os(SCRIPT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/lab/minikvm-lab")));
    if !script.is_file() {
        return LabError::NoScript(script);
    }
    let mut cmd = Command::new(&script);
    if let Ok(exe) = std::env::current_exe() {
        cmd.arg("--minikvm").arg(exe);
    }
    cmd.arg("--").args(forwarded_args(std::env::args_os().skip(1)));
    LabError::Exec(script, cmd.exec())
}

/// The arguments the minikvm inside gets: ours, less the lab switches.
fn forwarded_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.filter(|a| a != "--lab" && a != "--no-lab").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_switches_stay_outside() {
        let args = ["--lab", "--gdb", "1234", "os-1k"].map(OsString::from);
        assert_eq!(forwarded_args(args.into_iter()), ["--gdb", "1234", "os-1k"].map(OsString::from));
    }
}
