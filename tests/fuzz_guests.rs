//! Fuzzing minikvm with guests: whatever a guest does, minikvm ends within its timeout with a
//! documented exit status, never panics and never reports an internal error.
//!
//! Two harnesses, both seeded and reproducible (see `tests/common/fuzz.rs`: the seed and counts are
//! printed, a failing run's guests are saved under `target/fuzz-failures/`):
//!
//! - **templates**: guests built from instruction templates biased to port I/O — `in`/`out` and
//!   `rep ins`/`rep outs` of every size and many repeat counts on every modelled port (the hypercall
//!   port 0x500, COM1 0x3F8–0x3FF, fw_cfg 0x510–0x511, debug-exit 0xF4) and on unclaimed ones, GETCHAR pairs, PUTCHAR, loads
//!   and stores of every size past RAM (MMIO exits), control-register
//!   writes, `lgdt`/`lidt` of garbage, `int n`, far jumps — plus runs of random bytes. Half are
//!   real-mode guests, half switch to 32-bit protected mode first.
//! - **random bytes**: 4 KiB of random bytes as a real-mode guest.
//!
//! Four guests share one minikvm run (one vCPU each). A long run:
//!
//! ```sh
//! MINIKVM_FUZZ_CASES=100000 cargo test --release --test fuzz_guests -- --nocapture
//! ```
//!
//! In the nested lane QEMU's software CPU (TCG), below the KVM there, crashes on some invalid
//! opcodes (e.g. `mov` to segment register 7, 8E /7): the emulator dies, not minikvm. There only the
//! template guests whose code stays valid run — port I/O, hypercalls — and no random bytes, no
//! control transfers to garbage.

mod common;

use common::fuzz::{contained, FuzzRun};
use common::x86::{guest, Bits, Code};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Guests per minikvm run (its maximum: one vCPU each).
const PER_RUN: usize = 4;
/// Parallel minikvm runs (the CI machine has 2 cores).
const THREADS: usize = 2;
/// Where a guest's garbage tables live, and the area its string I/O uses (inside its 64 KiB segment).
const GARBAGE: u32 = 0x3000;
const BUFFERS: u32 = 0x4000;

/// Ports worth hitting: the modelled ones (the hypercall port, COM1, fw_cfg's selector and data,
/// debug-exit, which ends its guest), their neighbours, and a few unclaimed classics.
const PORTS: &[u16] = &[
    0x500, 0x500, 0x500, 0x501, 0x4ff, 0x3f8, 0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fd, 0x3fe, 0x3ff, 0x3f7,
    0x510, 0x511, 0x511, 0x50f, 0x512, 0xf4, 0xf3, 0xf7, 0xf8, 0x400, 0x60, 0x64, 0x70, 0x80, 0x20, 0x40, 0xcf8,
    0xffff, 0,
];
const COUNTS: &[u32] = &[0, 1, 1, 2, 3, 4, 7, 8, 15, 16, 17, 100, 255, 256, 1000, 0x800];

/// One piece of a guest. Only the `valid` ones run in the nested lane.
fn template(code: &mut Code, rng: &mut fastrand::Rng, valid_only: bool) {
    let port = PORTS[rng.usize(..PORTS.len())];
    let size = [1u8, 2, 4][rng.usize(..3)];
    // Port I/O three times in four; the templates that may send the guest astray (CR writes, tables,
    // interrupts, far jumps, random bytes) share the rest.
    let pick = if valid_only || rng.u8(..) < 192 { rng.u32(0..7) } else { rng.u32(7..12) };
    match pick {
        0 => {
            code.mov_dx(port).in_dx(size);
        }
        1 => {
            // The hypercall port mostly gets PUTCHAR and GETCHAR, sometimes anything (EXIT, unknown).
            let al = if port == 0x500 && rng.u8(..) > 40 { rng.u8(1..=2) } else { rng.u8(..) };
            code.mov_ax(rng.u32(..) & !0xff | al as u32).mov_dx(port).out_dx(size);
        }
        2 => {
            let offset = BUFFERS + rng.u32(0..0x2000);
            code.mov_dx(port).mov_count(COUNTS[rng.usize(..COUNTS.len())]).di_at(offset).cld().rep_ins(size);
        }
        3 => {
            let offset = BUFFERS + rng.u32(0..0x2000);
            code.mov_dx(port).mov_count(COUNTS[rng.usize(..COUNTS.len())]).si_at(offset).cld().rep_outs(size);
        }
        4 => {
            code.mov_al(2).mov_dx(0x500).out_dx(1).in_dx(size); // GETCHAR
        }
        5 => {
            let p = rng.u8(..);
            if rng.bool() {
                code.in_imm(size, p);
            } else {
                code.mov_ax(rng.u32(..)).out_imm(size, p);
            }
        }
        6 => mmio(code, rng),
        7 => {
            let value =
                if rng.bool() { rng.u32(..) } else { [0x11, 0x10, 0x8000_0011, 0x6000_0010, 0][rng.usize(..5)] };
            code.mov_ax(value).mov_cr([0, 3, 4][rng.usize(..3)]);
        }
        8 => {
            code.load_table(rng.bool(), GARBAGE + rng.u32(0..64));
        }
        9 => {
            code.int(rng.u8(..));
        }
        10 => {
            code.far_jump(rng.u16(..), rng.u32(..));
        }
        _ => {
            let n = rng.usize(1..16);
            code.raw(&(0..n).map(|_| rng.u8(..)).collect::<Vec<_>>());
        }
    }
}

/// A load or store of 1, 2 or 4 bytes past the guests' RAM (four 256 KiB windows end at 1 MiB),
/// which leaves as an MMIO exit: in real mode through ES = 0xFFFF (linear 0x100000 and up), in
/// protected mode anywhere up to the 4 GiB edge (a dword at 0xFFFFFFFF runs past the segment limit).
fn mmio(code: &mut Code, rng: &mut fastrand::Rng) {
    let (store, size) = (rng.bool(), [1u8, 2, 4][rng.usize(..3)]);
    if store {
        code.mov_ax(rng.u32(..));
    }
    match code.bits {
        Bits::B16 => {
            code.mov_ax(0xffff).mov_es_ax().mov_moffs(store, size, true, rng.u32(0x10..0x1_0000));
        }
        Bits::B32 => {
            let addr = [0x10_0000, 0xfec0_0000, 0xfee0_0000, 0xffff_fffc, 0xffff_ffff, rng.u32(0x10_0000..)];
            code.mov_moffs(store, size, false, addr[rng.usize(..addr.len())]);
        }
    }
}

/// A guest of 1 to 12 templates, ending in `hlt`, with garbage tables at [`GARBAGE`].
fn template_guest(rng: &mut fastrand::Rng, valid_only: bool) -> Vec<u8> {
    let mut code = guest(if rng.bool() { Bits::B16 } else { Bits::B32 });
    for _ in 0..rng.usize(1..=12) {
        template(&mut code, rng, valid_only);
    }
    code.hlt().pad_to(GARBAGE as usize);
    let garbage: Vec<u8> = (0..80).map(|_| rng.u8(..)).collect();
    code.raw(&garbage);
    code.bytes
}

fn random_guest(rng: &mut fastrand::Rng, _: bool) -> Vec<u8> {
    (0..4096).map(|_| rng.u8(..)).collect()
}

/// Runs `cases` guests from `make`, four per minikvm run, on [`THREADS`] threads; fails on any run
/// that is not contained (or reports an internal error), saving its guests.
fn fuzz(run: &FuzzRun, make: fn(&mut fastrand::Rng, bool) -> Vec<u8>, valid_only: bool) {
    let dir = tempfile::tempdir().unwrap();
    let batches = run.cases.div_ceil(PER_RUN);
    let next = AtomicUsize::new(0);
    let ran = AtomicUsize::new(0);
    let statuses = Mutex::new([0usize; 10]);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (dir, next, ran, statuses, failures) = (&dir, &next, &ran, &statuses, &failures);
            s.spawn(move || loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let cases: Vec<usize> = (b * PER_RUN..((b + 1) * PER_RUN).min(run.cases)).collect();
                let guests: Vec<Vec<u8>> = cases.iter().map(|&i| make(&mut run.case_rng(i), valid_only)).collect();
                let paths: Vec<_> = guests
                    .iter()
                    .enumerate()
                    .map(|(k, g)| {
                        let p = dir.path().join(format!("t{t}-g{k}.bin"));
                        std::fs::write(&p, g).unwrap();
                        p
                    })
                    .collect();
                let stdin: Vec<u8> = (0..run.case_rng(b).usize(0..8)).map(|i| b"ab\n\x01x\xff"[i % 6]).collect();
                let out = common::minikvm()
                    .timeout(Duration::from_secs(30))
                    .args(["--timeout", "0.3", "--eof-grace", "0.2"])
                    .args(&paths)
                    .write_stdin(stdin)
                    .output()
                    .expect("minikvm could not be started");
                let verdict = contained(&out.status, &out.stderr).and_then(|()| match out.status.code() {
                    Some(code @ (2 | 7)) => Err(format!("status {code}: {}", String::from_utf8_lossy(&out.stderr))),
                    _ => Ok(()),
                });
                if let Some(code) = out.status.code().filter(|c| (0..10).contains(c)) {
                    statuses.lock().unwrap()[code as usize] += 1;
                }
                if let Err(why) = verdict {
                    let saved: Vec<String> = cases
                        .iter()
                        .zip(&guests)
                        .map(|(&i, g)| run.save_failure(i, "bin", g).display().to_string())
                        .collect();
                    failures.lock().unwrap().push(format!("cases {cases:?} ({}): {why}", saved.join(" ")));
                }
                ran.fetch_add(cases.len(), Ordering::Relaxed);
            });
        }
    });
    eprintln!(
        "fuzz {}: {} guests in {:.0?}, runs by exit status (0..9): {:?}",
        run.name,
        ran.load(Ordering::Relaxed),
        started.elapsed(),
        statuses.into_inner().unwrap()
    );
    run.finish(ran.into_inner(), &failures.into_inner().unwrap());
}

#[test]
fn template_guests_are_contained() {
    let valid_only = common::in_nested_lane();
    // The nested lane's KVM runs under a software CPU, ~100 times slower: a tenth of the cases there.
    let run = FuzzRun::new("guests-templates", 0x6d69_6e69_6b76_6d07, if valid_only { 200 } else { 2000 });
    if valid_only {
        eprintln!("fuzz guests-templates: nested lane, only templates of valid, non-jumping instructions");
    }
    fuzz(&run, template_guest, valid_only);
}

#[test]
fn random_guests_are_contained() {
    if common::in_nested_lane() {
        common::skip(
            "random_guests_are_contained",
            "QEMU's TCG under the nested lane crashes on random code; this test runs on the host lane",
        );
        return;
    }
    let run = FuzzRun::new("guests-random-bytes", 0x6d69_6e69_6b76_6d21, 400);
    fuzz(&run, random_guest, false);
}
