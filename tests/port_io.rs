//! Port I/O as a guest does it, through the real minikvm: single accesses of every size and string
//! I/O (`rep ins`/`rep outs`), which KVM hands over as ONE exit whose buffer holds count × size bytes.
//! Each item must be one access to the device: GETCHAR bytes in order, UART RBR bytes, 0xFF from
//! unclaimed ports, every byte of `rep outs` to THR. Devices are byte-wide: a 2- or 4-byte access
//! reaches the ports that follow too, as on the ISA bus.
//!
//! The guests are written with the tiny encoder in `tests/common/x86.rs`, in real mode and again in
//! 32-bit protected mode.

mod common;

use common::x86::{guest, Bits, Code};
use std::time::Duration;

/// Where test guests keep data: past their code, inside their window.
const BUF: u32 = 0x200;

struct Case {
    name: &'static str,
    /// Builds the guest's code (before the final `hlt`).
    code: fn(&mut Code),
    /// Bytes placed at [`BUF`] in the image.
    data: &'static [u8],
    stdin: &'static [u8],
    stdout: &'static [u8],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "rep insb of 8 from an unclaimed port reads 0xFF each",
            code: |c| {
                c.mov_dx(0x60).mov_count(8).di_at(BUF).cld().rep_ins(1).dump(BUF, 8);
            },
            data: &[0; 8],
            stdin: b"",
            stdout: &[0xff; 8],
        },
        Case {
            name: "rep insl of 3 from an unclaimed port reads 12 bytes of 0xFF",
            code: |c| {
                c.mov_dx(0x1234).mov_count(3).di_at(BUF).cld().rep_ins(4).dump(BUF, 12);
            },
            data: &[0; 12],
            stdin: b"",
            stdout: &[0xff; 12],
        },
        Case {
            name: "GETCHAR then rep insb of 2 gives both bytes in order",
            code: |c| {
                c.mov_al(2).mov_dx(0x500).out_dx(1).mov_count(2).di_at(BUF).cld().rep_ins(1).dump(BUF, 2);
            },
            data: &[0; 2],
            stdin: b"AB",
            stdout: b"AB",
        },
        Case {
            name: "GETCHAR then rep insw of 2: each word is GETCHAR (low) and unclaimed 0x501 (high)",
            code: |c| {
                c.mov_al(2).mov_dx(0x500).out_dx(1).mov_count(2).di_at(BUF).cld().rep_ins(2).dump(BUF, 4);
            },
            data: &[0; 4],
            stdin: b"AB",
            stdout: b"A\xffB\xff",
        },
        Case {
            name: "rep insb of 3 from the UART's RBR, after LSR says data is ready",
            code: |c| {
                // 1: in $0x3fd; test $1,%al; jz 1b
                c.mov_dx(0x3fd).in_dx(1).raw(&[0xa8, 0x01, 0x74, 0xfb]);
                c.mov_dx(0x3f8).mov_count(3).di_at(BUF).cld().rep_ins(1).dump(BUF, 3);
            },
            data: &[0; 3],
            stdin: b"xyz",
            stdout: b"xyz",
        },
        Case {
            name: "rep outsb to THR sends every byte",
            code: |c| {
                c.mov_dx(0x3f8).mov_count(13).si_at(BUF).cld().rep_outs(1);
            },
            data: b"Hello, rep!\r\n",
            stdin: b"",
            stdout: b"Hello, rep!\r\n",
        },
        Case {
            name: "rep outsb to the hypercall port: three PUTCHARs of BL",
            code: |c| {
                // (SI first: 32-bit guests address through EBX, whose low byte BL then becomes the character)
                c.si_at(BUF).mov_bl(b'k').mov_dx(0x500).mov_count(3).cld().rep_outs(1);
            },
            data: &[1, 1, 1],
            stdin: b"",
            stdout: b"kkk",
        },
        Case {
            name: "rep outsw to THR: low bytes to THR, high bytes to IER (read back)",
            code: |c| {
                c.mov_dx(0x3f8).mov_count(2).si_at(BUF).cld().rep_outs(2);
                c.mov_dx(0x3f9).di_at(BUF).mov_count(1).rep_ins(1).dump(BUF, 1);
            },
            data: &[b'O', 0x01, b'K', 0x05],
            stdin: b"",
            stdout: b"OK\x05",
        },
        Case {
            name: "in %ax from the UART reads RBR and IER; out %ax writes THR and IER",
            code: |c| {
                c.mov_ax(0x0a00 | b'!' as u32).mov_dx(0x3f8).out_dx(2);
                c.mov_dx(0x3f9).in_dx(1).raw(&[0x88, 0xc3]).mov_al(1).mov_dx(0x500).out_dx(1);
                // mov %al,%bl; PUTCHAR
            },
            data: &[],
            stdin: b"",
            stdout: b"!\x0a",
        },
        Case {
            name: "UART loopback: THR comes back in RBR with LSR.DR set, not on the console",
            code: |c| {
                let putchar_al = |c: &mut Code| {
                    c.raw(&[0x88, 0xc3]).mov_al(1).mov_dx(0x500).out_dx(1); // mov %al,%bl; PUTCHAR
                };
                c.mov_dx(0x3fc).mov_al(0x10).out_dx(1); // MCR: loopback
                c.mov_dx(0x3f8).mov_al(b'Q').out_dx(1); // THR
                c.mov_dx(0x3fd).in_dx(1);
                putchar_al(c); // LSR: data ready, THR empty
                c.mov_dx(0x3f8).in_dx(1);
                putchar_al(c); // RBR
            },
            data: &[],
            stdin: b"",
            stdout: b"\x61Q",
        },
    ]
}

fn image(bits: Bits, c: &Case) -> Vec<u8> {
    let mut code = guest(bits);
    (c.code)(&mut code);
    code.hlt().pad_to(BUF as usize).raw(c.data);
    code.bytes
}

#[test]
fn every_port_access_is_one_device_access_per_item() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for bits in [Bits::B16, Bits::B32] {
        for c in cases() {
            let path = dir.path().join("guest.bin");
            std::fs::write(&path, image(bits, &c)).unwrap();
            let out = common::minikvm()
                .timeout(Duration::from_secs(30))
                .args(["--timeout", "10"])
                .arg(&path)
                .write_stdin(c.stdin)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(0) || out.stdout != c.stdout {
                failures.push(format!(
                    "{bits:?} {}: status {:?}, stdout {:?} (expected {:?}), stderr {}",
                    c.name,
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(c.stdout),
                    stderr.trim_end()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} failing guests:\n{}", failures.len(), failures.join("\n"));
}
