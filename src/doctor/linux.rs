//! The `linux` probe: can this host's KVM run the instructions a stock Linux kernel runs at boot?
//!
//! Its guest (guest/probe/linux.S) names each instruction, runs it, and says "ok": `lock
//! cmpxchg16b`, `xsetbv`, `xrstor`. An emulating KVM that lacks one stops with an internal error
//! right after its name, so the verdict and its reason are read from what the guest printed — the
//! same bytes `minikvm --long-mode target/<profile>/guests/probe/linux.bin` shows.

use super::probes::linux_setup;
use super::runner::{run_probe, ProbeRun};
use super::NotWorking;
use crate::run_loop::{Halt, VcpuEnd};
use kvm_ioctls::Kvm;

/// What the probe guest prints after an instruction that ran.
const OK: &str = "ok";

/// The instruction the guest named last without an "ok" after it: where it stopped. `None` if
/// every instruction it named ran.
pub fn stopped_at(printed: &str) -> Option<&str> {
    printed.lines().filter_map(|l| l.split_once(": ")).find(|(_, said)| *said != OK).map(|(name, _)| name)
}

pub fn linux_probe(kvm: &Kvm) -> Result<(), NotWorking> {
    verdict(run_probe(kvm, linux_setup()?)?)
}

/// Works if the guest ran every instruction and ended with EXIT; else why not, naming the
/// instruction it stopped at.
fn verdict(run: ProbeRun) -> Result<(), NotWorking> {
    let at = stopped_at(&run.printed).map(str::to_string);
    match (&run.halt, at) {
        (Halt::End(VcpuEnd::Done("EXIT hypercall")), None) => Ok(()),
        (Halt::End(VcpuEnd::Fault { fault, .. }), Some(instruction)) => {
            Err(NotWorking::StoppedAt { instruction, why: fault.to_string() })
        }
        (_, Some(instruction)) => Err(NotWorking::StoppedAt { instruction, why: run.seen().to_string() }),
        (_, None) => Err(NotWorking::Saw(run.seen())),
    }
}

#[cfg(test)]
mod tests {
    use super::stopped_at;

    #[test]
    fn the_instruction_without_ok_is_where_the_guest_stopped() {
        assert_eq!(stopped_at("lock cmpxchg16b: ok\nxsetbv: ok\nxrstor: ok\n"), None);
        assert_eq!(stopped_at("lock cmpxchg16b: "), Some("lock cmpxchg16b"));
        assert_eq!(stopped_at("lock cmpxchg16b: ok\nxsetbv: ok\nxrstor: "), Some("xrstor"));
        assert_eq!(stopped_at(""), None);
    }
}
