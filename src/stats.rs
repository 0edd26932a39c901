//! Exit statistics: what each vCPU made KVM hand back to minikvm, and where the time went.

use crate::exit::Exit;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct VcpuStats {
    /// Exits by reason name.
    pub exits: BTreeMap<&'static str, u64>,
    /// Hypercalls by number.
    pub hypercalls: BTreeMap<u8, u64>,
    /// Port I/O by (port, "in"/"out").
    pub ports: BTreeMap<(u16, &'static str), u64>,
    /// Time spent inside KVM_RUN (the guest, plus KVM's own exit handling in the kernel).
    pub guest: Duration,
    /// Wall time of the vCPU thread's run loop.
    pub wall: Duration,
}

impl VcpuStats {
    pub fn count_exit(&mut self, exit: &Exit) {
        *self.exits.entry(exit.name()).or_default() += 1;
        match *exit {
            Exit::IoIn { port, .. } => *self.ports.entry((port, "in")).or_default() += 1,
            Exit::IoOut { port, .. } => *self.ports.entry((port, "out")).or_default() += 1,
            _ => {}
        }
    }

    pub fn count_hypercall(&mut self, nr: u8) {
        *self.hypercalls.entry(nr).or_default() += 1;
    }

    pub fn total_exits(&self) -> u64 {
        self.exits.values().sum()
    }
}

fn hypercall_name(nr: u8) -> &'static str {
    crate::devices::hypercall::Hypercall::decode(nr).name()
}

/// The end-of-run table, one block per vCPU.
pub fn table(vcpus: &[(usize, String, VcpuStats)]) -> String {
    let mut s = String::from("\n=== minikvm statistics ===\n");
    for (id, name, st) in vcpus {
        let wall = st.wall.as_secs_f64();
        let guest = st.guest.as_secs_f64().min(wall);
        let pct = if wall > 0.0 { 100.0 * guest / wall } else { 0.0 };
        let _ = writeln!(s, "vCPU {id} ({name}): {} exits", st.total_exits());
        let _ = writeln!(
            s,
            "  time: {:.3} ms total, {:.3} ms in the guest (KVM_RUN, {pct:.1}%), {:.3} ms in minikvm",
            wall * 1e3,
            guest * 1e3,
            (wall - guest) * 1e3
        );
        let _ = writeln!(s, "  exits by reason:");
        for (reason, n) in &st.exits {
            let _ = writeln!(s, "    {reason:<16} {n:>10}");
        }
        if !st.hypercalls.is_empty() {
            let _ = writeln!(s, "  hypercalls:");
            for (nr, n) in &st.hypercalls {
                let _ = writeln!(s, "    {nr:#04x} {:<11} {n:>10}", hypercall_name(*nr));
            }
        }
        if !st.ports.is_empty() {
            let _ = writeln!(s, "  port I/O:");
            for ((port, dir), n) in &st.ports {
                let _ = writeln!(s, "    {port:#06x} {dir:<11} {n:>10}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exits_ports_and_hypercalls() {
        let mut st = VcpuStats::default();
        st.count_exit(&Exit::IoOut { port: 0x500, size: 1, value: 1 });
        st.count_exit(&Exit::IoOut { port: 0x500, size: 1, value: 1 });
        st.count_exit(&Exit::IoIn { port: 0x3fd, size: 1 });
        st.count_exit(&Exit::Hlt);
        st.count_hypercall(1);
        st.count_hypercall(1);
        assert_eq!(st.total_exits(), 4);
        assert_eq!(st.ports[&(0x500, "out")], 2);
        let t = table(&[(0, "hello".into(), st)]);
        assert!(t.contains("vCPU 0 (hello): 4 exits"));
        assert!(t.contains("0x01 PUTCHAR"));
        assert!(t.contains("0x03fd in"));
    }
}
