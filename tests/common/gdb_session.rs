//! A small harness for the debugger tests that live in their own files (tests/gdb_realmode.rs,
//! tests/gdb_mi.rs, tests/lldb.rs): a minikvm started with `--gdb 0` (the system picks the port,
//! minikvm prints it), a client run to its end, and the text both wrote.
//!
//! Every wait is for an event (a line, a process ending); the limits only keep a bug from hanging
//! the test run.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// No process of a test may live longer than this.
pub const LIMIT: Duration = Duration::from_secs(120);

/// The path of one of the project's gdb scripts (`gdb/NAME`).
pub fn script(name: &str) -> String {
    format!("{}/gdb/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A built-in guest's file (`hello.elf`, `hello.bin`, `kernel64.elf`), next to the minikvm under test.
pub fn guest_file(name: &str) -> String {
    let exe = super::minikvm_bin();
    format!("{}/guests/{name}", exe.parent().expect("minikvm's directory").display())
}

/// Everything a pipe delivers, read by a thread until the pipe closes.
pub struct Drained(JoinHandle<String>);

impl Drained {
    pub fn spawn(mut from: impl Read + Send + 'static) -> Drained {
        Drained(thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = from.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        }))
    }

    /// The whole text, once the writer has closed the pipe.
    pub fn text(self) -> String {
        self.0.join().unwrap_or_default()
    }
}

/// A minikvm waiting for a debugger.
pub struct Vm {
    pub child: Child,
    pub port: u16,
    stdout: Option<Drained>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

/// A test that fails half-way leaves no minikvm behind.
impl Drop for Vm {
    fn drop(&mut self) {
        if self.child.try_wait().is_ok_and(|s| s.is_none()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Vm {
    /// Starts `minikvm --gdb 0 ARGS…` and waits for the line that names its port.
    pub fn start(args: &[&str]) -> Vm {
        Vm::start_fed(args, None)
    }

    /// The same, with `input` on the guest's console (a pipe that then ends), or none at all.
    pub fn start_fed(args: &[&str], input: Option<&[u8]>) -> Vm {
        let mut child = super::minikvm_std()
            .args(["--gdb", "0"])
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start minikvm");
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(bytes).expect("the guest's console");
        }
        let stdout = Some(Drained::spawn(child.stdout.take().unwrap()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = Some(collect_lines(child.stderr.take().unwrap(), stderr.clone()));
        let port = wait_for_port(&stderr, &mut child);
        Vm { child, port, stdout, stderr, stderr_reader }
    }

    /// Waits for minikvm to end: (exit status, stdout, stderr).
    pub fn finish(mut self) -> (i32, String, String) {
        let status = wait(&mut self.child, "minikvm");
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let err = self.stderr.lock().unwrap().clone();
        (status, self.stdout.take().map(Drained::text).unwrap_or_default(), err)
    }
}

fn collect_lines(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

/// The port in minikvm's line `… (in gdb: target remote :PORT)`.
fn wait_for_port(stderr: &Mutex<String>, child: &mut Child) -> u16 {
    let marker = "(in gdb: target remote :";
    let start = Instant::now();
    loop {
        let text = stderr.lock().unwrap().clone();
        if let Some(rest) = text.split(marker).nth(1).filter(|r| r.contains(')')) {
            if let Some(port) = rest.split(')').next().and_then(|p| p.parse().ok()) {
                return port;
            }
        }
        let ended = child.try_wait().unwrap();
        if ended.is_some() || start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("minikvm named no port ({ended:?}): {text}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a child at most [`LIMIT`]; kills it (and fails) if it does not end.
pub fn wait(child: &mut Child, what: &str) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a client (gdb, lldb) to its end with no input: (exit status, stdout, stderr). The
/// transcript is also printed (`--nocapture` shows it).
pub fn run_client(mut cmd: Command) -> (i32, String, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = Drained::spawn(child.stdout.take().unwrap());
    let err = Drained::spawn(child.stderr.take().unwrap());
    let status = wait(&mut child, "the debugger");
    let (out, err) = (out.text(), err.text());
    eprintln!("--- {cmd:?} (status {status})\n{out}\n--- its stderr ---\n{err}");
    (status, out, err)
}

/// `gdb -nx -batch` connected to `vm`, then running `commands` in order.
pub fn gdb_batch(vm: &Vm, before_connect: &[&str], commands: &[&str]) -> Command {
    let mut c = Command::new("gdb");
    c.args(["-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off"]);
    for cmd in before_connect {
        c.args(["-ex", cmd]);
    }
    c.args(["-ex", &format!("target remote :{}", vm.port)]);
    for cmd in commands {
        c.args(["-ex", cmd]);
    }
    c
}
