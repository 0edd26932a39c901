//! Guest output: how the bytes of one or several guests reach stdout.
//!
//! - **Raw** (one guest, or `--output raw`): every byte is written as it comes, one `write(2)` each,
//!   so prompts show at once and the output is byte for byte what the guest printed. With colour and
//!   several guests, a vCPU's colour code goes before its bytes whenever the vCPU changes.
//! - **Lines** (several guests, `--output lines`): each vCPU's bytes collect in a line buffer of
//!   its own; a whole line goes out in one write, after a prefix naming its guest, the names padded
//!   to one width (`multiplication | 2 x 1 = 2`). `|` says the guest ended the line; `~` says
//!   minikvm ended it: the line reached [`MAX_LINE`] bytes, or the guest ended (or, on a terminal,
//!   paused) in the middle of it. Taking the prefixes off and `|` lines with their newline, `~`
//!   lines without it, gives back each guest's exact output.
//! - **Live** (lines on a terminal): the same, with the prefix in the guest's colour, and a partial
//!   line (a prompt) shown once its guest has been quiet for [`PARTIAL_AFTER`]; if the same guest
//!   goes on before another one prints, its bytes continue that screen line.

use std::io::Write;
use std::time::{Duration, Instant};

/// ANSI colours per vCPU: cyan, yellow, magenta, green.
pub const VCPU_COLORS: [&str; 4] = ["\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m"];
pub const COLOR_RESET: &str = "\x1b[0m";

/// The longest line kept for one vCPU: a guest that prints more without a newline gets it cut into
/// lines of this length (marked `~`), so its buffer never grows past this.
pub const MAX_LINE: usize = 4096;

/// On a terminal, how long a guest's unfinished line waits before it is shown as it is.
pub const PARTIAL_AFTER: Duration = Duration::from_millis(150);

/// The prefix sign of a line its guest ended with a newline.
pub const WHOLE: char = '|';
/// The prefix sign of a line minikvm ended (too long, guest ended or paused mid-line).
pub const CUT: char = '~';

/// One vCPU's line being collected.
struct Pending {
    label: String,
    bytes: Vec<u8>,
    /// When the first byte still in `bytes` came.
    since: Instant,
}

/// Whole-line output (see the module comment).
struct Lines {
    pending: Vec<Pending>,
    /// Live view: a vCPU whose partial line is on screen, the cursor still at its end.
    open: Option<usize>,
    live: bool,
}

/// Where guest bytes go, and how.
pub struct Output {
    sink: Box<dyn Write + Send>,
    color: bool,
    /// Raw mode: the vCPU whose colour is in force.
    current: Option<usize>,
    lines: Option<Lines>,
    pub last_output: Instant,
}

impl Output {
    /// Raw output (the single-guest path).
    pub fn raw(sink: Box<dyn Write + Send>, color: bool) -> Self {
        Output { sink, color, current: None, lines: None, last_output: Instant::now() }
    }

    /// Switches to whole lines, prefixed with `names` (one per vCPU). `live`: stdout is a
    /// terminal (partial lines are shown after [`PARTIAL_AFTER`]).
    pub fn tag_lines(&mut self, names: &[String], live: bool) {
        let labels = labels(names);
        let width = labels.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let pending = labels
            .into_iter()
            .map(|l| Pending { label: format!("{l:width$}"), bytes: Vec::new(), since: Instant::now() })
            .collect();
        self.lines = Some(Lines { pending, open: None, live });
    }

    /// Whether partial lines need showing now and then (a live view).
    pub fn is_live(&self) -> bool {
        self.lines.as_ref().is_some_and(|l| l.live)
    }

    /// One byte of guest output from vCPU `vcpu`.
    pub fn put(&mut self, vcpu: usize, byte: u8) {
        self.last_output = Instant::now();
        let Some(lines) = self.lines.as_mut() else { return self.put_raw(vcpu, byte) };
        // A vCPU without a label (none is made so) still has its bytes written, never dropped.
        let Some(p) = lines.pending.get_mut(vcpu) else { return self.put_raw(vcpu, byte) };
        if p.bytes.is_empty() {
            p.since = Instant::now();
        }
        p.bytes.push(byte);
        if byte == b'\n' {
            self.emit(vcpu, WHOLE);
        } else if p.bytes.len() >= MAX_LINE {
            self.emit(vcpu, CUT);
        }
    }

    fn put_raw(&mut self, vcpu: usize, byte: u8) {
        // A `-vv` log line in between reset the colour (see `crate::stdio`): send it again.
        if crate::stdio::colour_reset_by_log() {
            self.current = None;
        }
        if self.color && self.current != Some(vcpu) {
            let _ = self.sink.write_all(VCPU_COLORS[vcpu % VCPU_COLORS.len()].as_bytes());
            self.current = Some(vcpu);
        }
        // Guest output is best effort: a closed stdout must not kill the guest.
        let _ = self.sink.write_all(&[byte]);
        let _ = self.sink.flush();
        crate::stdio::guest_wrote(byte, self.color);
    }

    /// Writes vCPU `vcpu`'s collected bytes as one line marked `sign`, in one write.
    fn emit(&mut self, vcpu: usize, sign: char) {
        let color = self.color;
        let Some(lines) = self.lines.as_mut() else { return };
        let mut text = Vec::new();
        match lines.open {
            // Its partial line is on screen: carry on there, without a new prefix.
            Some(o) if o == vcpu => {}
            Some(_) => {
                text.push(b'\n');
                text.extend(prefix(&lines.pending[vcpu].label, vcpu, sign, color));
            }
            None => text.extend(prefix(&lines.pending[vcpu].label, vcpu, sign, color)),
        }
        lines.open = None;
        let p = &mut lines.pending[vcpu];
        text.append(&mut p.bytes);
        if text.last() != Some(&b'\n') {
            text.push(b'\n');
        }
        let _ = self.sink.write_all(&text);
        let _ = self.sink.flush();
    }

    /// Live view: shows the partial lines of guests quiet for [`PARTIAL_AFTER`], the cursor left
    /// at the end of the last one (its guest's next bytes continue it).
    pub fn show_partial_lines(&mut self) {
        let color = self.color;
        let Some(lines) = self.lines.as_mut().filter(|l| l.live) else { return };
        for vcpu in 0..lines.pending.len() {
            let p = &lines.pending[vcpu];
            if p.bytes.is_empty() || p.since.elapsed() < PARTIAL_AFTER {
                continue;
            }
            let mut text = Vec::new();
            match lines.open {
                Some(o) if o == vcpu => {}
                Some(_) => {
                    text.push(b'\n');
                    text.extend(prefix(&p.label, vcpu, CUT, color));
                }
                None => text.extend(prefix(&p.label, vcpu, CUT, color)),
            }
            text.append(&mut lines.pending[vcpu].bytes);
            lines.open = Some(vcpu);
            let _ = self.sink.write_all(&text);
        }
        let _ = self.sink.flush();
    }

    /// vCPU `vcpu`'s guest ended: its unfinished line goes out, marked `~`.
    pub fn end_of(&mut self, vcpu: usize) {
        let Some(lines) = self.lines.as_mut() else { return };
        let open_here = lines.open == Some(vcpu);
        match lines.pending.get(vcpu) {
            Some(p) if !p.bytes.is_empty() || open_here => self.emit(vcpu, CUT),
            _ => {}
        }
    }

    /// The run ended: every unfinished line goes out; raw colour is reset.
    pub fn finish(&mut self) {
        let vcpus = self.lines.as_ref().map_or(0, |l| l.pending.len());
        for vcpu in 0..vcpus {
            self.end_of(vcpu);
        }
        if let Some(lines) = self.lines.as_mut() {
            lines.live = false; // the live view's thread stops
        }
        self.colour_off();
    }

    /// Raw output's colour is reset (before a report on stderr); the other guests' unfinished
    /// lines stay pending, as they run on.
    pub fn colour_off(&mut self) {
        if self.color && self.current.is_some() {
            let _ = self.sink.write_all(COLOR_RESET.as_bytes());
            self.current = None;
        }
        let _ = self.sink.flush();
    }
}

/// The prefix of a line: `label | ` (or `~`), the label in its vCPU's colour.
fn prefix(label: &str, vcpu: usize, sign: char, color: bool) -> Vec<u8> {
    if color {
        let code = VCPU_COLORS[vcpu % VCPU_COLORS.len()];
        format!("{code}{label} {sign}{COLOR_RESET} ").into_bytes()
    } else {
        format!("{label} {sign} ").into_bytes()
    }
}

/// The guests' names as labels; a name given twice gets its vCPU number (`counter#1`).
fn labels(names: &[String]) -> Vec<String> {
    let twice = |n: &String| names.iter().filter(|m| *m == n).count() > 1;
    names.iter().enumerate().map(|(i, n)| if twice(n) { format!("{n}#{i}") } else { n.clone() }).collect()
}

/// A sink for the devices' unit tests: every byte written, readable while the writer lives on.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Shared(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buf: &Shared) -> String {
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    fn lines_output(names: &[&str], live: bool) -> (Output, Shared) {
        let buf = Shared::default();
        let mut out = Output::raw(Box::new(buf.clone()), false);
        out.tag_lines(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>(), live);
        (out, buf)
    }

    #[test]
    fn colour_switches_only_when_the_vcpu_changes() {
        let buf = Shared::default();
        let mut out = Output::raw(Box::new(buf.clone()), true);
        for (v, b) in [(0, b'a'), (0, b'b'), (1, b'c')] {
            out.put(v, b);
        }
        out.finish();
        assert_eq!(text(&buf), "\x1b[36mab\x1b[33mc\x1b[0m");
    }

    #[test]
    fn interleaved_bytes_come_out_as_whole_aligned_lines() {
        let (mut out, buf) = lines_output(&["multiplication", "counter"], false);
        for (a, b) in "2 x 1\n".bytes().zip("0\n1\n2\n".bytes()) {
            out.put(0, a);
            out.put(1, b);
        }
        out.put(0, b'!');
        out.finish();
        assert_eq!(
            text(&buf),
            "counter        | 0\ncounter        | 1\nmultiplication | 2 x 1\ncounter        | 2\nmultiplication ~ !\n"
        );
    }

    #[test]
    fn a_long_line_is_cut_at_max_line() {
        let (mut out, buf) = lines_output(&["a", "b"], false);
        for _ in 0..MAX_LINE * 2 + 5 {
            out.put(0, b'x');
        }
        assert_eq!(out.lines.as_ref().unwrap().pending[0].bytes.len(), 5, "the buffer is bounded");
        out.finish();
        let got = text(&buf);
        let lens: Vec<_> = got.lines().map(|l| l.len() - "a ~ ".len()).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 5]);
    }

    #[test]
    fn a_report_leaves_the_other_guests_partial_lines_whole() {
        let (mut out, buf) = lines_output(&["spin", "fault"], false);
        out.put(0, b's');
        out.end_of(1); // the faulting guest ended with nothing pending
        out.colour_off(); // its report comes
        for &b in b"pinning\n" {
            out.put(0, b);
        }
        assert_eq!(text(&buf), "spin  | spinning\n");
    }

    #[test]
    fn live_view_shows_a_quiet_partial_line_and_continues_it() {
        let (mut out, buf) = lines_output(&["one", "two"], true);
        for b in *b"Name? " {
            out.put(0, b);
        }
        out.show_partial_lines();
        assert_eq!(text(&buf), "", "not before the guest has been quiet a while");
        std::thread::sleep(PARTIAL_AFTER);
        out.show_partial_lines();
        assert_eq!(text(&buf), "one ~ Name? ");
        for b in *b"Ada\n" {
            out.put(0, b);
        }
        out.put(1, b'.');
        std::thread::sleep(PARTIAL_AFTER);
        out.show_partial_lines();
        out.put(0, b'x');
        out.put(0, b'\n');
        assert_eq!(text(&buf), "one ~ Name? Ada\ntwo ~ .\none | x\n");
    }

    #[test]
    fn a_vcpu_without_a_label_is_written_not_dropped() {
        let (mut out, buf) = lines_output(&["a"], false);
        out.put(1, b'z');
        assert_eq!(text(&buf), "z");
    }

    #[test]
    fn names_given_twice_get_their_vcpu_number() {
        let names: Vec<String> = ["counter", "hello", "counter"].iter().map(|s| s.to_string()).collect();
        assert_eq!(labels(&names), ["counter#0", "hello", "counter#2"]);
    }
}
