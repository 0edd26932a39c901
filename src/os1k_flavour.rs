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
//! This is the one place that choice is made; it says so in one line on stderr.

use crate::doctor::{self, ProbeError};
use crate::error::{Error, Result};

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

/// Probes this host and picks the flavour, saying which on stderr.
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
    let (name, why) = pick(HostCan { paging, longmode, usercall });
    crate::stderrln!("minikvm: os-1k: booting {name}, {why}");
    Ok(name)
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
