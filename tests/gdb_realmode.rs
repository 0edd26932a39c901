//! gdb on real-mode guests, as a student meets it (issue 10, item 4): the disassembly of 16-bit
//! code in a batch session and in gdb's TUI (`layout asm`), and gdb/realmode.gdb after the guest
//! has ended.
//!
//! The TUI runs in a tmux session of its own (its screen is read with `capture-pane`): gdb draws
//! the TUI only on a terminal. Those tests skip where tmux is not installed.

mod common;

use common::gdb_session::{gdb_batch, guest_elf, run_client, script, Vm, LIMIT};
use std::process::Command;
use std::time::{Duration, Instant};

const OK: i32 = 0;
const STOPPED: i32 = 6;

/// Skips (true) unless gdb is installed and the host's KVM can single-step and break.
fn skip(test: &str) -> bool {
    common::skip_unless_installed("gdb", test)
        || common::skip_unless("singlestep", test)
        || common::skip_unless("hwbreak", test)
}

/// The instruction lines of a gdb transcript (`=> 0x0 <_start>:\tmov    $0x500,%dx`), as
/// `mov $0x500,%dx`.
fn instructions(transcript: &str) -> Vec<String> {
    let lines = transcript.lines().filter_map(|l| l.split_once(":\t").map(|(_, insn)| insn));
    lines.map(|insn| insn.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

/// hello's first instructions, as guest/hello.S writes them (msg is at 0x13).
const HELLO_START: [&str; 3] = ["mov $0x500,%dx", "mov $0x13,%si", "mov (%si),%bl"];

/// With the symbols loaded (`symbol-file`, whose ELF header says i386), `x/3i $pc` still decodes
/// the 16-bit code: gdb follows minikvm's i8086 description.
#[test]
fn x_3i_pc_decodes_hello_as_16_bit_code_with_its_symbols_loaded() {
    if skip("x/3i in real mode") {
        return;
    }
    let vm = Vm::start(&["hello"]);
    let symbols = format!("symbol-file {}", guest_elf("hello.elf"));
    let (status, out, err) = run_client(gdb_batch(&vm, &[], &[&symbols, "x/3i $pc", "show architecture", "detach"]));
    assert_eq!(instructions(&out), HELLO_START, "{out}{err}");
    assert!(out.contains("=> 0x0 <_start>:\tmov    $0x500,%dx"), "{out}");
    assert!(out.contains("(currently \"i8086\")"), "{out}");
    assert_eq!(status, OK, "{err}");
    let (code, guest, _) = vm.finish();
    assert_eq!((code, guest.as_str()), (OK, "Hello, KVM!\n"));
}

/// gdb inside a tmux session of its own (a terminal for the TUI), removed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `gdb ARGS…` in a 120×40 terminal.
    fn start(gdb_args: &[String]) -> Tmux {
        let socket = format!("minikvm-test-{}-{}", std::process::id(), gdb_args.len());
        let command = std::iter::once("gdb".to_string())
            .chain(gdb_args.iter().map(|a| format!("'{}'", a.replace('\'', r"'\''"))))
            .collect::<Vec<_>>()
            .join(" ");
        let started = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", &command])
            .env("TERM", "xterm")
            .status()
            .expect("tmux runs");
        assert!(started.success(), "tmux did not start {command}");
        Tmux { socket }
    }

    /// Types a line into gdb.
    fn type_line(&self, line: &str) {
        let sent = Command::new("tmux").args(["-L", &self.socket, "send-keys", "-t", "0", line, "Enter"]).status();
        assert!(sent.is_ok_and(|s| s.success()), "tmux send-keys {line}");
    }

    /// The terminal's screen now.
    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"]).output();
        String::from_utf8_lossy(&out.expect("tmux capture-pane").stdout).into_owned()
    }

    /// Waits until the screen shows `what` (fails after [`LIMIT`] with the screen).
    fn wait_for(&self, what: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return screen;
            }
            assert!(start.elapsed() < LIMIT, "the screen never showed {what:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

/// The TUI's disassembly lines from a screen: `│=> 0x0 <_start>   mov    $0x500,%dx │` gives
/// (`true`, `mov $0x500,%dx`) — the marker says whether it is the pc.
fn tui_instructions(screen: &str) -> Vec<(bool, String)> {
    let in_window = screen.lines().filter_map(|l| l.strip_prefix('│'));
    let rows = in_window.filter_map(|l| l.split_once(" 0x"));
    let rows = rows.filter_map(|(marker, rest)| {
        let insn = rest.split_once(">").map(|(_, i)| i).unwrap_or(rest.split_once(' ')?.1);
        Some((marker.contains("=>"), insn.trim_end_matches('│').split_whitespace().collect::<Vec<_>>().join(" ")))
    });
    rows.filter(|(_, i)| !i.is_empty()).collect()
}

/// Issue 10: gdb's own `layout asm` showed "[ No Assembly Available ]" at a real-mode guest's first
/// instruction (gdb takes address 0 for none) and decoded 16-bit code as 32-bit once symbols were
/// loaded (`mov $0x13be0500,%edx`). With gdb/realmode.gdb, `layout asm` shows hello's code as the
/// vCPU runs it, from address 0, and follows `stepi`.
#[test]
fn layout_asm_shows_16_bit_code_from_the_first_instruction() {
    if skip("layout asm in real mode") || common::skip_unless_installed("tmux", "layout asm in real mode") {
        return;
    }
    let vm = Vm::start(&["hello"]);
    let args = [
        "-nx".to_string(),
        "-x".into(),
        script("realmode.gdb"),
        "-ex".into(),
        "set confirm off".into(),
        "-ex".into(),
        format!("target remote :{}", vm.port),
        "-ex".into(),
        format!("symbol-file {}", guest_elf("hello.elf")),
    ];
    let tui = Tmux::start(&args);
    tui.wait_for("(gdb)");
    tui.type_line("layout asm");
    let screen = tui.wait_for("minikvm-asm (i8086)");
    let shown = tui_instructions(&screen);
    assert!(shown.len() >= 3, "{screen}");
    assert_eq!(shown[..3].iter().map(|(_, i)| i.as_str()).collect::<Vec<_>>(), HELLO_START, "{screen}");
    assert!(shown[0].0, "the pc is marked at address 0:\n{screen}");
    assert!(!screen.contains("No Assembly Available") && !screen.contains("%edx"), "{screen}");
    tui.type_line("stepi");
    let screen = tui.wait_for("=> 0x3");
    let at_pc: Vec<_> = tui_instructions(&screen).into_iter().filter(|(pc, _)| *pc).collect();
    assert_eq!(at_pc, [(true, HELLO_START[1].to_string())], "{screen}");
    tui.type_line("kill");
    assert_eq!(vm.finish().0, STOPPED);
}
