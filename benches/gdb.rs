//! The GDB stub against gdbserver, in one run (`cargo bench --bench gdb`).
//!
//! gdbserver stepping a native process on the same host is the floor of the remote protocol: the
//! same gdb, the same packets over loopback, and a ptrace round trip where minikvm has a KVM_RUN
//! round trip. Two measures, each timed inside gdb (its Python `time.perf_counter`) so that
//! connecting and loading are left out:
//! * `stepi` throughput: N single steps;
//! * breakpoint-hit latency: N `continue`s onto a hardware breakpoint in a loop.
//!
//! Target: minikvm's step rate ≥ 0.5× gdbserver's. Results: stdout and `benches/RESULTS-gdb.md`.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A native busy loop for gdbserver, compiled here with the system gcc.
fn native_loop(dir: &Path) -> PathBuf {
    let src = dir.join("spin.c");
    let bin = dir.join("spin");
    std::fs::write(&src, "volatile unsigned n;\nint main(void) { for (;;) n++; }\n").expect("write spin.c");
    let ok = Command::new("gcc").args(["-O1", "-g", "-o"]).arg(&bin).arg(&src).status().map(|s| s.success());
    assert!(matches!(ok, Ok(true)), "gcc could not build the native loop");
    bin
}

/// Waits until the server says on stderr that it listens (minikvm: "waiting for gdb", gdbserver:
/// "Listening on port"). Probing the port instead would use up its one connection.
fn wait_listening(child: &mut Child, needle: &'static str) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("the server never said {needle:?}"));
}

/// Runs gdb with `prologue` (gets to a looping pc), then times `n` stepi and `n` continues onto a
/// hardware breakpoint at that pc; returns (seconds per step, seconds per breakpoint hit).
fn measure(port: u16, prologue: &str, n: u32) -> (f64, f64) {
    let script = format!(
        "set pagination off\nset confirm off\ntarget remote 127.0.0.1:{port}\n{prologue}\n\
         python import time\n\
         python t0 = time.perf_counter()\n\
         set $i = 0\nwhile $i < {n}\n  stepi\n  set $i = $i + 1\nend\n\
         python t1 = time.perf_counter()\n\
         hbreak *$pc\n\
         set $i = 0\nwhile $i < {n}\n  continue\n  set $i = $i + 1\nend\n\
         python t2 = time.perf_counter()\n\
         python print('RESULT %.9f %.9f' % ((t1 - t0) / {n}, (t2 - t1) / {n}))\n\
         kill\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.gdb");
    std::fs::File::create(&path).and_then(|mut f| f.write_all(script.as_bytes())).expect("write gdb script");
    let out = Command::new("gdb").args(["-nx", "-batch", "-x"]).arg(&path).stdin(Stdio::null()).output().expect("gdb");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("gdb gave no result:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    (v[0], v[1])
}

fn reap(mut child: Child) {
    for _ in 0..200 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 2000 };
    let rounds = if quick { 1 } else { 3 };
    let dir = tempfile::tempdir().expect("tempdir");
    let native = native_loop(dir.path());
    let minikvm = PathBuf::from(env!("CARGO_BIN_EXE_minikvm"));

    let (mut mk, mut gs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let port = free_port();
        let mut child = Command::new(&minikvm)
            .args(["--gdb", &port.to_string(), "spin"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minikvm");
        wait_listening(&mut child, "waiting for gdb");
        // `spin` prints, then loops on `jmp .`: a few steps put $pc in the loop.
        mk.push(measure(port, "hbreak *0x12\ncontinue\ndelete", n));
        reap(child);

        let port = free_port();
        let mut child = Command::new("gdbserver")
            .arg(format!("127.0.0.1:{port}"))
            .arg(&native)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gdbserver (Debian package gdbserver)");
        wait_listening(&mut child, "Listening on port");
        gs.push(measure(port, &format!("file {}\nbreak main\ncontinue\ndelete\nstepi 3", native.display()), n));
        reap(child);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (mut ms, mut mb): (Vec<f64>, Vec<f64>) = mk.iter().copied().unzip();
    let (mut gss, mut gb): (Vec<f64>, Vec<f64>) = gs.iter().copied().unzip();
    let (ms, mb, gss, gb) = (med(&mut ms), med(&mut mb), med(&mut gss), med(&mut gb));
    let step_ratio = (1.0 / ms) / (1.0 / gss);
    let report = format!(
        "# minikvm GDB stub benchmark\n\nMeasured by `cargo bench --bench gdb` ({n} steps and {n} breakpoint hits, \
         median of {rounds} rounds per side), gdb timing itself.\n\n\
         | measure | minikvm `--gdb` | gdbserver (native process) | ratio | target | |\n|---|---|---|---|---|---|\n\
         | `stepi` rate | {:.0} steps/s | {:.0} steps/s | {step_ratio:.2}× | ≥ 0.5× | {} |\n\
         | breakpoint-hit latency | {:.1} µs | {:.1} µs | {:.2}× | — | |\n",
        1.0 / ms,
        1.0 / gss,
        if step_ratio >= 0.5 { "met" } else { "missed" },
        mb * 1e6,
        gb * 1e6,
        mb / gb,
    );
    print!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS-gdb.md");
    if let Err(e) = std::fs::write(&out, &report) {
        eprintln!("cannot write {}: {e}", out.display());
    }
}
