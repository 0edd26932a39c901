//! End of input: after stdin ends, minikvm stops a guest that keeps waiting for input (exit status
//! 5) — and only such a guest. A wait is repeated polls for input with no output between them
//! (GETCHAR, the UART's RBR or LSR.DR), or halting with the UART's receive interrupt on. One LSR read
//! made before sending a byte is output, not a wait; a busy kernel with the receive interrupt on is
//! computing, not waiting.
//!
//! The kernels are `guest/test-kernels/*.S` (built by build.rs); their silent stretches are timed
//! by the PIT, so they last ~3 s of wall-clock time on any host — longer than the default
//! `--eof-grace` of 2 s.

mod common;

use common::x86::{guest, Bits};
use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const INPUT_ENDED: i32 = 5;

const QUIET_AFTER_LSR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels/quiet-after-lsr.elf"));
const QUIET_WITH_RX_IRQ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels/quiet-with-rx-irq.elf"));
const HALT_WITH_RX_IRQ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels/halt-with-rx-irq.elf"));

/// Runs minikvm on `image` with `args`; stdin ends after `close_after` (a pipe, never written).
fn run(image: &[u8], args: &[&str], close_after: Duration) -> (Output, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest");
    std::fs::write(&path, image).unwrap();
    let started = Instant::now();
    let mut child = common::minikvm_std()
        .args(["--timeout", "20"])
        .args(args)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take();
    std::thread::sleep(close_after);
    let _ = stdin.as_mut().map(|s| s.flush());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (out, started.elapsed())
}

fn explain(out: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

#[test]
fn one_lsr_read_then_silent_computing_is_not_a_wait() {
    for close_after in [Duration::ZERO, Duration::from_millis(500)] {
        let (out, _) = run(QUIET_AFTER_LSR, &[], close_after);
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        assert_eq!(out.stdout, b"done\n", "{}", explain(&out));
    }
}

#[test]
fn a_busy_kernel_with_the_receive_interrupt_on_is_not_waiting() {
    // stdin ends after the kernel has turned the interrupt on (its first instructions).
    let (out, _) = run(QUIET_WITH_RX_IRQ, &[], Duration::from_millis(500));
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(out.stdout, b"done\n", "{}", explain(&out));
}

#[test]
fn a_kernel_halting_with_the_receive_interrupt_on_is_waiting() {
    for close_after in [Duration::ZERO, Duration::from_millis(500)] {
        let (out, took) = run(HALT_WITH_RX_IRQ, &["--eof-grace", "0.5"], close_after);
        assert_eq!(out.status.code(), Some(INPUT_ENDED), "{}", explain(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("kept waiting for input"), "{}", explain(&out));
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }
}

/// Flat guests that poll for ever: GETCHAR until it gives a byte; LSR until data is ready.
#[test]
fn polling_ended_input_is_waiting() {
    // 1: mov $2,%al; mov $0x500,%dx; out; in; cmp $0xff,%al; je 1b
    let mut getchar = guest(Bits::B16);
    getchar.mov_al(2).mov_dx(0x500).out_dx(1).in_dx(1).raw(&[0x3c, 0xff, 0x74, 0xf5]).hlt();
    // mov $0x3fd,%dx; 1: in; test $1,%al; jz 1b
    let mut lsr = guest(Bits::B16);
    lsr.mov_dx(0x3fd).in_dx(1).raw(&[0xa8, 0x01, 0x74, 0xfb]).hlt();
    for (name, code) in [("GETCHAR", getchar), ("LSR", lsr)] {
        let (out, took) = run(&code.bytes, &["--eof-grace", "0.5"], Duration::ZERO);
        assert_eq!(out.status.code(), Some(INPUT_ENDED), "{name}: {}", explain(&out));
        assert!(took < Duration::from_secs(10), "{name}: took {took:?}");
    }
}
