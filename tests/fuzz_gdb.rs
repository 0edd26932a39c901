//! Fuzzing the gdb stub over TCP (issue 7, 11c): random and mutated remote-protocol packets against
//! `minikvm --gdb 0 --timeout T GUEST…` on real-mode guests.
//!
//! Each session starts one minikvm, connects, and sends packets built from the protocol's own
//! commands with wild fields (addresses and lengths at the edges of every range, odd thread ids,
//! breakpoint and watchpoint kinds that do not exist, register and memory writes, `vCont` in every
//! shape, monitor commands, `qXfer` offsets), mutated bodies, bad checksums, binary garbage,
//! packets over the size limit and stray Ctrl-C bytes and nacks. A session ends in one of many ways:
//! a disconnect in the middle of a packet, right after a step or a continue, `D`, `k`, SIGTERM, or a
//! client that stops reading its replies; one session in three whose first client left the guest
//! running has a second client reconnect (the stub listens again after a detach or a lost
//! connection) and fuzz on. Every minikvm must end within its limit with a documented
//! status and no panic ([`common::fuzz::contained`]), and none may grow past 64 MiB resident.
//!
//! A case here is one packet the stub answered: `cargo test` runs sessions until 2,000 replies have
//! come back (more packets than that are sent: some get no reply, some end their session). A long
//! run, and a replay:
//!
//! ```sh
//! MINIKVM_FUZZ_CASES=50000 cargo test --release --test fuzz_gdb -- --nocapture
//! MINIKVM_FUZZ_SEED=0x... cargo test --test fuzz_gdb -- --nocapture
//! ```
//!
//! A failing session's bytes (everything sent, in order) are saved under `target/fuzz-failures/`.

mod common;

use common::fuzz::{contained, FuzzRun};
use common::remote::packet;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 0x6d1c_4b7d_9e02_11c0;
/// Packets the stub answers in a `cargo test` run.
const DEFAULT_PACKETS: usize = 2000;
/// Packets in one session, at most.
const SESSION_PACKETS: usize = 80;
/// What minikvm gets as --timeout (it counts from the end of the session).
const GUEST_TIMEOUT: &str = "0.2";
/// The same for sessions whose client reconnects: the second client connects well within it (a
/// reattach stops the count again).
const RECONNECT_TIMEOUT: &str = "1";
/// The longest a session's minikvm may take to end after the client is done: the stub's write
/// timeout (5 s), its all-stop patience (3 s), the guest's timeout, and room for a loaded machine.
const END_LIMIT: Duration = Duration::from_secs(30);

/// No minikvm may grow beyond this (a debug build peaks at a few MiB; the packets stay under 40 KiB).
const MAX_RSS_KIB: i64 = 64 * 1024;

/// The guests a session runs (real mode: this host's KVM runs them; several = several vCPUs;
/// `modes` switches to protected and long mode by itself, `--long-mode hello64` starts in 64-bit
/// code: sessions in which gdb's description and register layout change under the client).
const GUESTS: &[&[&str]] = &[
    &["modes"],
    &["--long-mode", "hello64"],
    &["hello"],
    &["counter"],
    &["spin"],
    &["hctest"],
    &["uart-echo"],
    &["multiplication", "counter"],
    &["spin", "hello", "fibonacci"],
];

/// How a session ends, from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    /// Close in the middle of a packet.
    MidPacket,
    /// Close right after a step.
    MidStep,
    /// Close right after a continue.
    MidContinue,
    Detach,
    Kill,
    /// SIGTERM to minikvm with the connection open.
    Sigterm,
    /// Stop reading replies and keep sending until the stub gives up.
    StopReading,
    /// Close after the last packet.
    Close,
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

fn hex(rng: &mut fastrand::Rng, edges: &[u64]) -> String {
    let v = match rng.u8(..4) {
        0 => rng.u64(..),
        1 => rng.u64(..0x10_0000),
        _ => *pick(rng, edges),
    };
    format!("{v:x}")
}

fn address(rng: &mut fastrand::Rng) -> String {
    hex(rng, &[0, 1, 0xfffe, 0xffff, 0x3fffe, 0x40000, 0xfffff, 0x10_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX - 3])
}

fn length(rng: &mut fastrand::Rng) -> String {
    if rng.u8(..50) == 0 {
        return "1".repeat(rng.usize(17..40)); // more digits than any integer holds
    }
    hex(rng, &[0, 1, 2, 3, 4, 8, 16, 0x1ffe, 0x1fff, 0x2000, 0x4000, 0xffff_ffff, u64::MAX])
}

fn thread_id(rng: &mut fastrand::Rng) -> String {
    if rng.u8(..30) == 0 {
        return pick(rng, &["x", "", "p", "p1.", "-2"]).to_string(); // not a thread id at all
    }
    pick(rng, &["-1", "0", "1", "2", "3", "4", "9", "ffffffff", "p1.1", "p1.-1", "p2.1", "pffff.0"]).to_string()
}

fn hex_bytes(rng: &mut fastrand::Rng, n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rng.u8(..))).collect()
}

/// One command body, well-formed in shape, wild in its fields.
fn command(rng: &mut fastrand::Rng) -> Vec<u8> {
    let body = match rng.u8(..34) {
        0 | 30 | 31 => "?".into(),
        1 => "g".into(),
        2 if rng.u8(..4) == 0 => {
            // A `G` of the wrong size ends the session (gdbstub's rule), so one in four.
            // 420 and 648: the 32-bit and the x86-64 layouts' sizes (one of them is refused).
            let n = *pick(rng, &[0, 4, 100, 300, 420, 600, 608, 648, 1000]);
            format!("G{}", hex_bytes(rng, n))
        }
        2 | 32 | 33 => format!("p{:x}", rng.u32(..40)),
        3 => format!("p{:x}", rng.u32(..120)),
        4 => {
            let n = *pick(rng, &[1, 2, 4, 8, 10, 16, 20]);
            format!("P{:x}={}", rng.u32(..120), hex_bytes(rng, n))
        }
        5 | 6 => format!("m{},{}", address(rng), length(rng)),
        7 => {
            let n = rng.usize(..64);
            format!("M{},{:x}:{}", address(rng), n, hex_bytes(rng, n))
        }
        8 => {
            // X: binary data; built below (the escaping bytes are part of the fun).
            let n = rng.usize(..64);
            let mut b = format!("X{},{:x}:", address(rng), n).into_bytes();
            b.extend((0..n).map(|_| rng.u8(..)));
            return b;
        }
        9 | 10 => format!("Z{},{},{}", rng.u8(..6), address(rng), length(rng)),
        11 => format!("z{},{},{}", rng.u8(..6), address(rng), length(rng)),
        12 => "vCont?".into(),
        13 | 14 => {
            let actions: Vec<String> = (0..rng.usize(1..4))
                .map(|_| {
                    let a = pick(rng, &["c", "s", "s", "s", "t", "C05", "S02", "r0,10", "rffff,0"]);
                    if rng.bool() {
                        format!("{a}:{}", thread_id(rng))
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            format!("vCont;{}", actions.join(";"))
        }
        15 => pick(rng, &["c", "s", "s", "s", "C05", "S05"]).to_string(),
        16 => format!("Hg{}", thread_id(rng)),
        17 => format!("Hc{}", thread_id(rng)),
        18 => format!("T{}", thread_id(rng)),
        19 => pick(
            rng,
            &["qfThreadInfo", "qsThreadInfo", "qC", "qAttached", "qOffsets", "vMustReplyEmpty", "!", "qTStatus"],
        )
        .to_string(),
        20 => pick(
            rng,
            &[
                "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386",
                "qSupported:xmlRegisters=i386:x86-64",
                "qSupported:",
                "qSupported:x-",
            ],
        )
        .to_string(),
        21 | 22 => format!(
            "qXfer:features:read:{}:{},{}",
            pick(rng, &["target.xml", "", "i386.xml", "../x"]),
            length(rng),
            length(rng)
        ),
        23 => format!("qXfer:exec-file:read:{}:{},{}", pick(rng, &["", "1", "zz"]), length(rng), length(rng)),
        24 | 25 => {
            let cmd = pick(
                rng,
                &[
                    "help",
                    "regs",
                    "mode",
                    "gdt",
                    "idt",
                    "exits",
                    "breakpoints",
                    "pt 0x10",
                    "pt 0xffffffffffffffff",
                    "pt 0xffffffff80100000",
                    "pt",
                    "vcpu 1",
                    "vcpu 99",
                    "vcpu -1",
                    "nonsense",
                    "",
                ],
            );
            let hexed: String = cmd.bytes().map(|b| format!("{b:02x}")).collect();
            format!("qRcmd,{hexed}")
        }
        26 => format!("qThreadExtraInfo,{}", thread_id(rng)),
        27 => "QStartNoAckMode".into(),
        28 => pick(rng, &["vKill;1", "R00", "r", "i", "vAttach;1", "vRun;", "D;1", "qTfV", "QTinit"]).to_string(),
        _ => format!("x{},{}", address(rng), length(rng)),
    };
    body.into_bytes()
}

/// A body changed a little: bytes flipped, inserted, cut or repeated.
fn mutate(rng: &mut fastrand::Rng, mut body: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.usize(1..4) {
        if body.is_empty() {
            body.push(rng.u8(..));
            continue;
        }
        let at = rng.usize(..body.len());
        match rng.u8(..5) {
            0 => body[at] ^= 1 << rng.u8(..8),
            1 => body.insert(at, *pick(rng, b",:;#$}*0-f")),
            2 => body.truncate(at),
            3 => {
                body.remove(at);
            }
            _ => {
                let piece = body[at..].to_vec();
                body.extend_from_slice(&piece);
            }
        }
    }
    body
}

/// The bytes of one packet, well or badly framed.
fn wire(rng: &mut fastrand::Rng) -> Vec<u8> {
    let body = command(rng);
    // gdbstub ends a session at the first packet it cannot parse or whose checksum is wrong, so
    // these are rare enough for a session to get a few dozen packets in.
    let body = if rng.u8(..10) == 0 { mutate(rng, body) } else { body };
    match rng.u8(..100) {
        0..=1 => {
            let mut p = packet(&body);
            let n = p.len();
            p[n - 1] = if p[n - 1] == b'0' { b'1' } else { b'0' }; // a bad checksum
            p
        }
        2 => {
            let mut p = vec![b'$'];
            p.extend_from_slice(&body); // no `#`: runs into the next packet
            p
        }
        3 => (0..rng.usize(1..200)).map(|_| rng.u8(..)).collect(), // binary garbage
        4 => {
            let mut p = vec![b'$'];
            p.resize(rng.usize(16_000..40_000), b'a'); // around and over the packet limit
            p.extend_from_slice(b"#00");
            p
        }
        5..=9 => vec![0x03], // Ctrl-C
        10 => b"-".to_vec(), // a nack
        _ => packet(&body),
    }
}

/// A running minikvm and what it writes on stderr.
struct Session {
    child: Child,
    port: u16,
    stderr: Arc<std::sync::Mutex<Vec<u8>>>,
}

fn start(guests: &[&str], open_stdin: bool, timeout: &str) -> Session {
    let mut child = common::minikvm_std()
        .args(["--gdb", "0", "--timeout", timeout])
        .args(guests)
        .stdin(if open_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start minikvm");
    let mut err = child.stderr.take().unwrap();
    let stderr = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let collected = stderr.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut port_sent = false;
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut all = collected.lock().unwrap();
            all.extend_from_slice(&buf[..n]);
            if !port_sent {
                let text = String::from_utf8_lossy(&all);
                // The whole number: up to the `)` that closes the line's parenthesis.
                let after = text.split("target remote :").nth(1).filter(|r| r.contains(')'));
                if let Some(p) = after.and_then(|r| r.split(')').next()) {
                    let _ = port_tx.send(p.parse::<u16>().unwrap_or(0));
                    port_sent = true;
                }
            }
        }
    });
    let port = port_rx.recv_timeout(END_LIMIT).unwrap_or(0);
    Session { child, port, stderr }
}

/// Reads and drops what the stub sends, counting its packets (`$`), until the connection closes or
/// `stop` is set.
fn drain(mut stream: TcpStream, replies: Arc<AtomicUsize>, reading: Arc<std::sync::atomic::AtomicBool>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 65536];
    loop {
        if !reading.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
            if Arc::strong_count(&reading) == 1 {
                return;
            }
            continue;
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                replies.fetch_add(buf[..n].iter().filter(|&&b| b == b'$').count(), Ordering::Relaxed);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if Arc::strong_count(&reading) == 1 {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// What one session did.
struct Outcome {
    sent: usize,
    ending: Ending,
    status: Option<i32>,
    /// Why the stub ended the session, as its stderr says (`lost gdb (WHY)`), if it did.
    lost: Option<String>,
    /// A second client connected after the first one's session ended.
    reconnected: bool,
    failure: Option<String>,
    transcript: Vec<u8>,
}

/// Whether a session ending leaves the guest running and the stub listening for the next client.
fn leaves_the_guest_running(ending: Ending) -> bool {
    !matches!(ending, Ending::Kill | Ending::Sigterm)
}

/// Runs one session with its own generator: one client, or (one session in three) a client whose
/// session ends with the guest running on, then a second client that reconnects.
fn session(rng: &mut fastrand::Rng, replies: &Arc<AtomicUsize>) -> Outcome {
    let guests = *pick(rng, GUESTS);
    let open_stdin = rng.u8(..4) == 0;
    let first = ending(rng);
    let reconnect = leaves_the_guest_running(first) && rng.u8(..3) == 0;
    // A reconnecting client needs the run to outlast the moment between its two sessions.
    let mut s = start(guests, open_stdin, if reconnect { RECONNECT_TIMEOUT } else { GUEST_TIMEOUT });
    let mut out = Outcome {
        sent: 0,
        ending: first,
        status: None,
        lost: None,
        reconnected: false,
        failure: None,
        transcript: Vec::new(),
    };
    if !client(rng, &s, first, replies, &mut out) {
        out.failure = Some(format!("cannot connect to port {} ({guests:?})", s.port));
        let _ = s.child.kill();
        return out;
    }
    if reconnect && session_over(&mut s) {
        out.ending = ending(rng);
        // The guest may have ended meanwhile (then nobody listens): that is no failure.
        let _ = client(rng, &s, out.ending, replies, &mut out);
    }
    drop(s.child.stdin.take());
    finish(&mut s, &mut out);
    let err = s.stderr.lock().unwrap().clone();
    out.reconnected = String::from_utf8_lossy(&err).matches("minikvm: gdb connected from").count() >= 2;
    out
}

/// Waits until the stub has ended the first client's session and the guest runs on (true), or
/// minikvm has ended (false): a client that connected earlier would be turned away as a second gdb.
fn session_over(s: &mut Session) -> bool {
    let deadline = Instant::now() + END_LIMIT;
    while Instant::now() < deadline {
        if String::from_utf8_lossy(&s.stderr.lock().unwrap()).contains("the guest runs on") {
            return true;
        }
        if !matches!(s.child.try_wait(), Ok(None)) {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

/// How a client's session ends.
fn ending(rng: &mut fastrand::Rng) -> Ending {
    let ending = *pick(
        rng,
        &[
            Ending::MidPacket,
            Ending::MidStep,
            Ending::MidContinue,
            Ending::Detach,
            Ending::Kill,
            Ending::Sigterm,
            Ending::Close,
            Ending::MidPacket,
            Ending::MidContinue,
            Ending::Close,
        ],
    );
    // A client that stops reading costs the stub's write timeout (5 s): one session in 150.
    if rng.u8(..150) == 0 {
        Ending::StopReading
    } else {
        ending
    }
}

/// One client: connects, sends packets, ends as `ending` says and closes. False if it could not
/// connect.
fn client(rng: &mut fastrand::Rng, s: &Session, ending: Ending, replies: &Arc<AtomicUsize>, out: &mut Outcome) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", s.port)) else {
        return false;
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let (stream, replies, reading) = (stream.try_clone().unwrap(), replies.clone(), reading.clone());
        thread::spawn(move || drain(stream, replies, reading))
    };
    let mut send = |bytes: &[u8], out: &mut Outcome| -> bool {
        out.transcript.extend_from_slice(bytes);
        stream.write_all(bytes).is_ok()
    };
    if rng.u8(..4) != 0 {
        send(&packet(b"qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386"), out);
        out.sent += 1;
    }
    let n = out.sent + rng.usize(SESSION_PACKETS / 2..=SESSION_PACKETS);
    while out.sent < n {
        let bytes = wire(rng);
        if !send(&bytes, out) {
            break; // the stub closed the session (a packet over the limit, a `k`, …)
        }
        out.sent += 1;
        if rng.u8(..8) == 0 {
            thread::sleep(Duration::from_millis(rng.u64(..5)));
        }
    }
    end_session(rng, s, ending, &reading, &mut send, out);
    out.sent += 1; // the ending's packet
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(stream);
    drop(reading);
    let _ = reader.join();
    true
}

/// What the client does last.
fn end_session(
    rng: &mut fastrand::Rng,
    s: &Session,
    ending: Ending,
    reading: &std::sync::atomic::AtomicBool,
    send: &mut dyn FnMut(&[u8], &mut Outcome) -> bool,
    out: &mut Outcome,
) {
    match ending {
        Ending::MidPacket => {
            let p = packet(&command(rng));
            let cut = rng.usize(1..p.len());
            send(&p[..cut], out);
        }
        Ending::MidStep => {
            let steps: &[&[u8]] = &[b"s", b"vCont;s:1", b"vCont;s:1;c"];
            send(&packet(pick::<&[u8]>(rng, steps)), out);
        }
        Ending::MidContinue => {
            let continues: &[&[u8]] = &[b"c", b"vCont;c", b"vCont;c:2;s:1"];
            send(&packet(pick::<&[u8]>(rng, continues)), out);
        }
        Ending::Detach => {
            send(&packet(b"D"), out);
        }
        Ending::Kill => {
            send(&packet(b"k"), out);
        }
        Ending::StopReading => {
            reading.store(false, Ordering::Relaxed);
            let flood: Vec<u8> = (0..64).flat_map(|_| packet(b"m0,1000")).collect();
            let started = Instant::now();
            while started.elapsed() < END_LIMIT && send(&flood, out) {}
        }
        Ending::Sigterm => {
            let _ = std::process::Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status();
        }
        Ending::Close => {}
    }
}

/// Waits for the session's minikvm within [`END_LIMIT`] and judges how it ended.
fn finish(s: &mut Session, out: &mut Outcome) {
    let deadline = Instant::now() + END_LIMIT;
    let status = loop {
        match s.child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = s.child.kill();
                let _ = s.child.wait();
                out.failure = Some(format!("minikvm did not end within {END_LIMIT:?} after the session"));
                return;
            }
        }
    };
    // The stderr reader sees the pipe close right after the process ends.
    thread::sleep(Duration::from_millis(20));
    let err = s.stderr.lock().unwrap().clone();
    out.status = status.code();
    let text = String::from_utf8_lossy(&err);
    out.lost = text.split("lost gdb (").nth(1).and_then(|r| r.split(')').next()).map(|w| {
        // The kind of reason, without the details that vary (numbers, addresses).
        w.chars().filter(|c| !c.is_ascii_digit()).collect()
    });
    if let Err(why) = contained(&status, &err) {
        out.failure = Some(why);
    }
}

#[test]
fn random_and_mutated_gdb_packets_never_crash_hang_or_bloat_minikvm() {
    let run = FuzzRun::new("gdb", DEFAULT_SEED, DEFAULT_PACKETS);
    let replies = Arc::new(AtomicUsize::new(0));
    let mut sent = 0;
    let mut sessions = 0;
    let mut reconnected = 0;
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<i32, usize> = BTreeMap::new();
    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    let mut lost: BTreeMap<String, usize> = BTreeMap::new();
    while replies.load(Ordering::Relaxed) < run.cases {
        let mut rng = run.case_rng(sessions);
        let out = session(&mut rng, &replies);
        sent += out.sent;
        reconnected += usize::from(out.reconnected);
        *statuses.entry(out.status.unwrap_or(-1)).or_default() += 1;
        *endings.entry(format!("{:?}", out.ending)).or_default() += 1;
        if let Some(why) = &out.lost {
            *lost.entry(why.clone()).or_default() += 1;
        }
        if let Some(why) = out.failure {
            let path = run.save_failure(sessions, "bin", &out.transcript);
            failures.push(format!("session {sessions} ({:?}): {why} (sent bytes: {})", out.ending, path.display()));
        }
        sessions += 1;
    }
    eprintln!(
        "fuzz gdb: {sessions} sessions ({reconnected} with a second client that reconnected), {sent} packets sent, {} replies received; exit statuses {statuses:?}; endings {endings:?}",
        replies.load(Ordering::Relaxed)
    );
    eprintln!("fuzz gdb: sessions the stub ended, by reason: {lost:?}");
    // This file holds one test, so every child waited for is one of its minikvms (and `kill`).
    let peak = common::kernel_elf::peak_rss_of_children_kib();
    eprintln!("fuzz gdb: the largest minikvm peaked at {} KiB resident", peak);
    if peak > MAX_RSS_KIB {
        failures.push(format!("a minikvm grew to {peak} KiB resident (limit {MAX_RSS_KIB} KiB)"));
    }
    run.finish(replies.load(Ordering::Relaxed), &failures);
}
