//! `monitor idt` and `monitor exits` on gdb's screen (issue 10, item 8): the real-mode IVT as an
//! IVT, with what it holds here, and the time stopped at the gdb prompt counted apart from the
//! time in minikvm.

mod common;

use common::gdb_session::{gdb_batch, guest_file, run_client, Vm};

const OK: i32 = 0;

fn skip(test: &str) -> bool {
    common::skip_unless_installed("gdb", test) || common::skip_unless("singlestep", test)
}

/// The IVT is read at linear 0, where minikvm loaded hello: vector 0 is hello's first four bytes
/// (offset, then segment, little-endian), and the note says so.
#[test]
fn monitor_idt_decodes_the_real_mode_ivt_as_segment_offset_pairs() {
    if skip("monitor idt in real mode") {
        return;
    }
    let image = std::fs::read(guest_file("hello.bin")).expect("hello.bin");
    let offset = u16::from_le_bytes([image[0], image[1]]);
    let segment = u16::from_le_bytes([image[2], image[3]]);
    let linear = u32::from(segment) * 16 + u32::from(offset);
    let vm = Vm::start(&["hello", "counter"]);
    let (status, out, err) =
        run_client(gdb_batch(&vm, &[], &["monitor idt", "monitor vcpu 1", "monitor idt", "detach"]));
    let out = out + &err; // gdb prints a monitor command's output on its stderr
    assert_eq!(out.matches("IVT (real mode): 1024 bytes, 256 vectors").count(), 2, "{out}");
    let vector0 = format!("[  0] handler at {segment:04x}:{offset:04x} (linear {linear:#07x})  (#DE divide error)");
    assert_eq!(out.matches(&vector0).count(), 2, "{vector0:?} for both vCPUs:\n{out}");
    let note = "note: linear 0x0 is in vCPU 0's window, where minikvm loaded `hello`: unless that guest stored \
                handlers there, these vectors are its code and data read as segment:offset";
    assert_eq!(out.matches(note).count(), 2, "{out}");
    assert!(!out.contains("gate"), "no protected-mode gates in real mode:\n{out}");
    assert_eq!(status, OK, "{err}");
    assert_eq!(vm.finish().0, OK);
}

/// The milliseconds `monitor exits` gives for `what` ("in minikvm", "stopped at the gdb prompt").
fn ms(transcript: &str, what: &str) -> f64 {
    let line = transcript.lines().find(|l| l.trim_start().starts_with("time:")).expect("a time line");
    let part = line.split(", ").find(|p| p.ends_with(what)).unwrap_or_else(|| panic!("no {what:?} in {line}"));
    let number = part.trim_start_matches("  time: ").split(" ms").next().unwrap();
    number.parse().unwrap_or_else(|_| panic!("not a number: {part}"))
}

/// 1.5 s at the prompt before a `stepi`: they are counted as stopped at the gdb prompt, not as time
/// in minikvm (which a step costs only a little of).
#[test]
fn monitor_exits_counts_the_time_at_the_gdb_prompt_apart() {
    if skip("monitor exits") {
        return;
    }
    let vm = Vm::start(&["hello"]);
    let (status, out, err) = run_client(gdb_batch(&vm, &[], &["shell sleep 1.5", "stepi", "monitor exits", "detach"]));
    let out = out + &err; // gdb prints a monitor command's output on its stderr
    assert_eq!(status, OK, "{err}");
    let prompt = ms(&out, "ms stopped at the gdb prompt");
    let minikvm = ms(&out, "ms in minikvm");
    assert!(prompt >= 1500.0, "{out}");
    assert!(minikvm < 1000.0, "the prompt's time is not minikvm's:\n{out}");
    assert!(out.contains("    debug                     1"), "the step is one debug exit:\n{out}");
    let (code, guest, _) = vm.finish();
    assert_eq!((code, guest.as_str()), (OK, "Hello, KVM!\n"));
}

/// Issue 10: `monitor pt $pc` was a bare usage error (gdb sends the text `$pc`); it now says why
/// and what works, and realmode.gdb's `pt $pc` (which has gdb evaluate it) walks the pc.
#[test]
fn monitor_pt_with_a_gdb_expression_says_why_and_realmode_gdb_pt_evaluates_it() {
    if skip("monitor pt $pc") {
        return;
    }
    let vm = Vm::start(&["counter"]);
    let source = format!("source {}", common::gdb_session::script("realmode.gdb"));
    let (status, out, err) = run_client(gdb_batch(&vm, &[&source], &["stepi", "monitor pt $pc", "pt $pc", "detach"]));
    let out = out + &err;
    let why = "error: gdb does not evaluate monitor arguments: minikvm received the text `$pc`; \
               write `eval \"monitor pt %#lx\", $pc` (or `pt $pc` with gdb/realmode.gdb or gdb/os-1k.gdb)";
    assert!(out.contains(why), "{out}");
    assert!(!out.contains("usage: monitor pt"), "{out}");
    // After one step counter's pc is 3 (`mov digit, %al` is three bytes).
    assert!(out.contains("gdb address 0x3 = linear 0x3 (CS base 0x0)"), "{out}");
    assert!(out.contains("KVM_TRANSLATE: physical 0x3"), "{out}");
    assert_eq!(status, OK, "{err}");
    assert_eq!(vm.finish().0, OK);
}
