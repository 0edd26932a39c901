//! Shared helpers for the integration tests.
//!
//! Every test starts minikvm through [`minikvm`], which honours `MINIKVM_BIN` so that the nested
//! real-KVM lane can run these very test binaries against a minikvm copied into its initramfs.
#![allow(dead_code)]

pub mod fuzz;
pub mod gdb_session;
pub mod initramfs;
pub mod kernel_elf;
pub mod pty;
pub mod remote;
pub mod skip;
pub mod x86;

#[allow(unused_imports)] // not every test binary skips
pub use skip::{skip, skip_unless_installed};

use std::path::PathBuf;
use std::process::Command;

/// Path of the minikvm binary under test.
pub fn minikvm_bin() -> PathBuf {
    std::env::var_os("MINIKVM_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_minikvm")))
}

/// A `Command` for minikvm with colour off and an empty stdin unless the test sets one. It never
/// starts the lab (MINIKVM_NO_LAB) unless the run is [`through_lab`]: a test runs on the KVM it
/// asked for, or skips itself.
pub fn minikvm() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(minikvm_bin());
    cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");
    if !through_lab() {
        cmd.env("MINIKVM_NO_LAB", "1");
    }
    cmd.write_stdin(Vec::<u8>::new());
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

/// The same, as a plain std `Command` (for tests that drive the process themselves).
pub fn minikvm_std() -> Command {
    let mut cmd = Command::new(minikvm_bin());
    cmd.env("NO_COLOR", "1");
    if !through_lab() {
        cmd.env("MINIKVM_NO_LAB", "1");
    }
    cmd
}

/// True when the tests' minikvm may go to the lab (MINIKVM_TEST_THROUGH_LAB, set by `.ci/run`'s lab
/// step): the kernel tests then run through it on a host whose KVM cannot page.
pub fn through_lab() -> bool {
    std::env::var_os("MINIKVM_TEST_THROUGH_LAB").is_some()
}

/// True when running inside the nested real-KVM lane.
pub fn in_nested_lane() -> bool {
    std::env::var_os("MINIKVM_NESTED_LANE").is_some()
}

/// Asks `minikvm doctor --probe NAME` whether the host's KVM can do NAME (exit 0 = works).
/// Probe names: realmode, protected, paging, longmode, usercall, syscall, singlestep, hwbreak, watch, int3, linux.
pub fn host_can(probe: &str) -> bool {
    minikvm_std().args(["doctor", "--probe", probe]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Skips the calling test (returns true) when the host KVM lacks `probe`, saying so (see [`skip`]).
pub fn skip_unless(probe: &str, test: &str) -> bool {
    // What this host's KVM cannot run of a kernel, minikvm runs in the lab by itself.
    if host_can(probe) || (through_lab() && minikvm::lab::KERNEL_PROBES.contains(&probe)) {
        return false;
    }
    skip(
        test,
        &format!(
            "this host's KVM cannot do `{probe}` (see `minikvm doctor`); \
             the nested real-KVM lane (.ci/nested-lane) runs these tests"
        ),
    );
    true
}
