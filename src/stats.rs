//! Exit statistics: what each vCPU made KVM hand back to minikvm, and where the time went.

use crate::exit::{Exit, ExitKind};
use std::fmt::Write as _;
use std::time::Duration;

/// Counters kept on every exit, so they are plain arrays: no map lookups on the hot path.
#[derive(Debug, Clone)]
pub struct VcpuStats {
    /// Exits by kind, indexed by [`ExitKind`].
    pub exits: [u64; ExitKind::ALL.len()],
    /// Hypercalls by number.
    pub hypercalls: [u64; 256],
    /// Port I/O as (port, is_out, count), in the order first seen; guests use a handful of ports.
    pub ports: Vec<(u16, bool, u64)>,
    /// Time spent inside KVM_RUN (the guest, plus KVM's own exit handling in the kernel).
    pub guest: Duration,
    /// Wall time of the vCPU thread's run loop.
    pub wall: Duration,
    /// Part of `wall` the vCPU sat stopped for a debugger (at the gdb prompt): neither the
    /// guest's time nor minikvm's, so the table counts it apart.
    pub at_prompt: Duration,
}

impl Default for VcpuStats {
    fn default() -> Self {
        VcpuStats {
            exits: [0; ExitKind::ALL.len()],
            hypercalls: [0; 256],
            ports: Vec::new(),
            guest: Duration::ZERO,
            wall: Duration::ZERO,
            at_prompt: Duration::ZERO,
        }
    }
}

impl VcpuStats {
    pub fn count_exit(&mut self, exit: &Exit) {
        self.exits[exit.kind() as usize] += 1;
        let (port, out) = match *exit {
            Exit::IoIn { port, .. } => (port, false),
            Exit::IoOut { port, .. } => (port, true),
            _ => return,
        };
        match self.ports.iter_mut().find(|(p, o, _)| *p == port && *o == out) {
            Some((_, _, n)) => *n += 1,
            None => self.ports.push((port, out, 1)),
        }
    }

    pub fn count_hypercall(&mut self, nr: u8) {
        self.hypercalls[nr as usize] += 1;
    }

    pub fn total_exits(&self) -> u64 {
        self.exits.iter().sum()
    }
}

fn hypercall_name(nr: u8) -> &'static str {
    crate::devices::hypercall::Hypercall::decode(nr).name()
}

/// The end-of-run table, one block per vCPU.
pub fn table(vcpus: &[(usize, String, VcpuStats)]) -> String {
    let mut s = String::from("\n=== minikvm statistics ===\n");
    for (id, name, st) in vcpus {
        let _ = writeln!(s, "vCPU {id} ({name}): {} exits", st.total_exits());
        s += &time_line(st);
        let _ = writeln!(s, "  exits by reason:");
        let mut reasons: Vec<(&str, u64)> =
            ExitKind::ALL.iter().map(|k| k.name()).zip(st.exits).filter(|(_, n)| *n > 0).collect();
        reasons.sort();
        for (reason, n) in reasons {
            let _ = writeln!(s, "    {reason:<16} {n:>10}");
        }
        if st.hypercalls.iter().any(|&n| n > 0) {
            let _ = writeln!(s, "  hypercalls:");
            for (nr, n) in st.hypercalls.iter().enumerate().filter(|(_, n)| **n > 0) {
                let _ = writeln!(s, "    {nr:#04x} {:<11} {n:>10}", hypercall_name(nr as u8));
            }
        }
        if !st.ports.is_empty() {
            let _ = writeln!(s, "  port I/O:");
            let mut ports = st.ports.clone();
            ports.sort();
            for (port, out, n) in ports {
                let dir = if out { "out" } else { "in" };
                let _ = writeln!(s, "    {port:#06x} {dir:<11} {n:>10}");
            }
        }
    }
    s
}

/// Where a vCPU's time went: in the guest, in minikvm, and (under gdb) stopped at the prompt,
/// which is neither: the percentage is of the time the vCPU was not stopped.
fn time_line(st: &VcpuStats) -> String {
    let wall = st.wall.as_secs_f64();
    let prompt = st.at_prompt.as_secs_f64().min(wall);
    let running = wall - prompt;
    let guest = st.guest.as_secs_f64().min(running);
    let pct = if running > 0.0 { 100.0 * guest / running } else { 0.0 };
    let mut line = format!(
        "  time: {:.3} ms total, {:.3} ms in the guest (KVM_RUN, {pct:.1}%), {:.3} ms in minikvm",
        wall * 1e3,
        guest * 1e3,
        (running - guest) * 1e3
    );
    if st.at_prompt > Duration::ZERO {
        let _ = write!(line, ", {:.3} ms stopped at the gdb prompt", prompt * 1e3);
    }
    line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exits_ports_and_hypercalls() {
        let mut st = VcpuStats::default();
        st.count_exit(&Exit::IoOut { port: 0x500, size: 1, count: 1, value: 1 });
        st.count_exit(&Exit::IoOut { port: 0x500, size: 1, count: 1, value: 1 });
        st.count_exit(&Exit::IoIn { port: 0x3fd, size: 1, count: 1 });
        st.count_exit(&Exit::Hlt);
        st.count_hypercall(1);
        st.count_hypercall(1);
        assert_eq!(st.total_exits(), 4);
        assert_eq!(st.ports, vec![(0x500, true, 2), (0x3fd, false, 1)]);
        let t = table(&[(0, "hello".into(), st)]);
        assert!(t.contains("vCPU 0 (hello): 4 exits"));
        assert!(t.contains("0x01 PUTCHAR"));
        assert!(t.contains("0x03fd in"));
    }

    #[test]
    fn time_at_the_gdb_prompt_is_neither_the_guests_nor_minikvms() {
        let ms = Duration::from_millis;
        let st = VcpuStats { wall: ms(1000), guest: ms(100), at_prompt: ms(800), ..VcpuStats::default() };
        let line = time_line(&st);
        assert_eq!(
            line,
            "  time: 1000.000 ms total, 100.000 ms in the guest (KVM_RUN, 50.0%), 100.000 ms in minikvm, \
             800.000 ms stopped at the gdb prompt\n"
        );
        let plain = time_line(&VcpuStats { at_prompt: Duration::ZERO, ..st });
        assert!(plain.ends_with("900.000 ms in minikvm\n"), "no gdb, no prompt column: {plain}");
    }
}
