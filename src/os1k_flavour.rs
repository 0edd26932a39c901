//! `minikvm os-1k`: which flavour of the 1K OS this host's KVM can run, decided by doctor's probes
//! (never by CPU or kernel names). `os-1k32` and `os-1k64` choose one explicitly.
//!
//! The rule, in order:
//! 1. 32-bit paging works (`paging`): **os-1k32**, the lesson's first flavour; it runs whole.
//! 2. Long mode works and ring 3 can make its system calls (`longmode`, `usercall`): **os-1k64**.
//! 3. Long mode works, ring-3 system calls do not (this project's own machines): **os-1k64**,
//!    which boots to its menu here, where os-1k32 would stop at its first page-table switch; its
//!    programs need the nested lane or the lab.
//! 4. Neither: **os-1k32**, whose triple fault the report then explains.
//!
//! This is the one place that choice is made. It says so in one line on stderr when the run stays
//! on this host ([`announce`]); a run that goes to the lab instead (src/lab.rs: a kernel whose
//! probes fail here) hands over `os-1k` as it was typed, and the minikvm inside the lab chooses
//! again, by the lab's own KVM — so the line the user sees names the flavour that really boots.

use crate::doctor::{self, ProbeError};
use crate::error::{Error, Result};
use std::sync::OnceLock;

/// This run's choice and why, once `os-1k` was resolved.
static CHOSEN: OnceLock<(&'static str, &'static str)> = OnceLock::new();

/// What the probes found that the choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCan {
    pub paging: bool,
    pub longmode: bool,
    pub usercall: bool,
}

/// The built-in name to boot, and the line that says why.
pub fn pick(can: HostCan) -> (&'static str, &'static str) {
    match can {
        HostCan { paging: true, .. } => {
            ("os-1k32", "the 32-bit flavour (this host's KVM runs 32-bit paging; `os-1k64` boots the 64-bit one)")
        }
        HostCan { longmode: true, usercall: true, .. } => (
            "os-1k64",
            "the 64-bit flavour (this host's KVM cannot run 32-bit paging, but runs long mode with ring-3 system calls)",
        ),
        HostCan { longmode: true, .. } => (
            "os-1k64",
            "the 64-bit flavour: this host's KVM cannot run 32-bit paging, and runs long mode but not ring-3 system \
             calls, so the OS boots to its menu and its programs need the nested lane or the lab (`minikvm doctor`)",
        ),
        _ => ("os-1k32", "the 32-bit flavour, although this host's KVM runs neither 32-bit paging nor long mode"),
    }
}

/// Probes this host and picks the flavour (announced later, by [`announce`]).
pub fn choose() -> Result<&'static str> {
    let can = |name: &str| {
        doctor::probe(name).map_err(|e| match e {
            ProbeError::NoKvm(msg) => Error::Host(msg),
            other => Error::Host(format!("os-1k: {other}")),
        })
    };
    let paging = can("paging")?;
    let longmode = !paging && can("longmode")?;
    let usercall = longmode && can("usercall")?;
    let (name, _) = *CHOSEN.get_or_init(|| pick(HostCan { paging, longmode, usercall }));
    Ok(name)
}

/// Whether this run asked for `os-1k` (and so chose a flavour).
pub fn asked() -> bool {
    CHOSEN.get().is_some()
}

/// Says which flavour boots and why, in one line on stderr, if this run chose one.
pub fn announce() {
    if let Some((name, why)) = CHOSEN.get() {
        crate::stderrln!("minikvm: os-1k: booting {name}, {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(paging: bool, longmode: bool, usercall: bool) -> &'static str {
        pick(HostCan { paging, longmode, usercall }).0
    }

    #[test]
    fn each_host_gets_the_flavour_it_can_run_furthest() {
        assert_eq!(host(true, true, true), "os-1k32", "a laptop's KVM");
        assert_eq!(host(true, false, false), "os-1k32");
        assert_eq!(host(false, true, true), "os-1k64");
        assert_eq!(host(false, true, false), "os-1k64", "this project's machines: it boots to the menu");
        assert_eq!(host(false, false, false), "os-1k32");
        assert!(pick(HostCan { paging: false, longmode: true, usercall: false }).1.contains("lab"));
    }
}
