//! gdb's machine interface (MI), the protocol IDEs drive gdb with (VS Code, CLion, Eclipse): the
//! same session as a person's, as MI records (issue 10, item 5). gdb reads the commands from a
//! pipe; each `-exec-continue` blocks the next command until the target stops (gdb's synchronous
//! mode, MI's default), so the whole conversation can be written at once.

mod common;

use common::gdb_session::{guest_file, run_client, Vm};
use std::io::Write;
use std::process::Command;

const OK: i32 = 0;

#[test]
fn mi_connects_breaks_reads_a_register_and_continues_to_the_end() {
    let test = "gdb --interpreter=mi3";
    if common::skip_unless_installed("gdb", test) || common::skip_unless("hwbreak", test) {
        return;
    }
    let vm = Vm::start(&["hello"]);
    let commands = [
        "-gdb-set confirm off".to_string(),
        format!("-target-select remote :{}", vm.port),
        format!("-file-symbol-file {}", guest_file("hello.elf")),
        "-break-insert done".into(),
        "-exec-continue".into(),
        "-data-evaluate-expression $pc".into(),
        "-data-evaluate-expression $bl".into(),
        "-break-delete 1".into(),
        "-exec-continue".into(),
        "-gdb-exit".into(),
    ];
    let script = std::env::temp_dir().join(format!("minikvm-mi-{}-{}.txt", std::process::id(), vm.port));
    std::fs::File::create(&script).and_then(|mut f| f.write_all((commands.join("\n") + "\n").as_bytes())).unwrap();
    let mut gdb = Command::new("sh");
    gdb.args(["-c", "exec gdb --interpreter=mi3 -nx < \"$0\"", script.to_str().unwrap()]);
    let (status, out, err) = run_client(gdb);
    let _ = std::fs::remove_file(&script);
    for want in [
        "^connected",
        "*stopped,frame={addr=\"0x00000000\",func=\"??\",args=[],arch=\"i8086\"}",
        "^done,bkpt={number=\"1\",type=\"breakpoint\"",
        "addr=\"0x00000012\"",
        "*stopped,reason=\"breakpoint-hit\",disp=\"keep\",bkptno=\"1\",frame={addr=\"0x00000012\",func=\"done\"",
        "^done,value=\"0x12 <done>\"",
        "^done,value=\"0\"", // BL: the string's NUL ends the loop
        "*stopped,reason=\"exited-normally\"",
        "^exit",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}\n{err}");
    }
    assert!(!out.contains("^error"), "{out}");
    assert_eq!(status, OK, "{err}");
    let (code, guest, _) = vm.finish();
    assert_eq!((code, guest.as_str()), (OK, "Hello, KVM!\n"));
}
