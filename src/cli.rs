//! The command line (clap derive types only).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// minikvm — a small, educational x86 hypervisor on Linux KVM, with a GDB stub built in.
#[derive(Debug, Parser)]
#[command(
    name = "minikvm",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  minikvm hello                      run a built-in guest\n  minikvm multiplication counter     two guests on two vCPUs at once\n  minikvm os-1k                      boot the 1K OS in the flavour this host runs\n  minikvm --long-mode hello64        a 64-bit flat guest\n  minikvm --linux vmlinuz --initrd initrd.cpio   boot Linux to a shell\n  minikvm --gdb 1234 hello           wait for gdb on 127.0.0.1:1234\n  minikvm list                       the built-in guests\n  minikvm doctor                     what this host's KVM can run\n\nInteractive runs: press Ctrl-A then x to quit."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the built-in guests: name, description, binary and ELF paths.
    List,
    /// Show what this host's KVM can run, by running tiny probe guests.
    Doctor {
        /// Run one probe and exit 0 if it works, 1 if not (realmode, protected, paging, longmode,
        /// usercall, singlestep, hwbreak, watch, int3).
        #[arg(long, value_name = "NAME")]
        probe: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}

/// How the output of several guests is written (see README, "Several guests").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputChoice {
    /// Lines for several guests, raw for one.
    Auto,
    /// Whole lines, each prefixed with its guest's name.
    Lines,
    /// Bytes as they come (coloured per vCPU when colour is on).
    Raw,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guests to run: built-in names (see `minikvm list`) or paths to flat binaries (1 to 4),
    /// or one Multiboot ELF kernel.
    #[arg(value_name = "GUEST")]
    pub guests: Vec<String>,

    /// More output on stderr: -v setup steps, -vv every VM exit, -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print a table of VM exits, hypercalls, I/O ports and time per vCPU at the end.
    #[arg(long)]
    pub stats: bool,

    /// Stop the run after SECS seconds (exit status 3).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,

    /// Colour each vCPU's output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Several guests' output: whole lines prefixed with each guest's name, or raw bytes.
    #[arg(long, value_enum, default_value_t = OutputChoice::Auto, value_name = "HOW")]
    pub output: OutputChoice,

    /// Guest RAM in MiB for protected-mode kernels and 64-bit guests [default: 32 for Multiboot,
    /// 4 for --paging, 2 for --long-mode, 256 for --linux].
    #[arg(long, value_name = "MiB")]
    pub mem: Option<u32>,

    /// Seed compatibility mode: boot a flat 32-bit binary with paging already on (see README).
    /// FILE may follow `--paging` or come last, as in the C project's `--paging --verbose FILE`.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub paging: Option<Option<PathBuf>>,

    /// Run a flat 64-bit binary (or built-in guest): loaded at 0, entered at RIP 0 in long mode
    /// with identity-mapped page tables (see README, "64-bit guests").
    #[arg(long, value_name = "FILE", conflicts_with_all = ["guests", "paging"])]
    pub long_mode: Option<PathBuf>,

    /// Boot a Linux kernel (a bzImage, such as /boot/vmlinuz-*) with its console on the serial
    /// port; `poweroff -f` inside ends the run (see README, "Boot Linux").
    #[arg(long, value_name = "BZIMAGE", conflicts_with_all = ["guests", "paging", "long_mode"])]
    pub linux: Option<PathBuf>,

    /// With --linux: an initramfs (cpio archive, compressed or not) for the kernel.
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,

    /// With --linux: the kernel command line [default: console=ttyS0 earlyprintk=serial,ttyS0
    /// reboot=k; `reboot=k` is put in front of a line without `reboot=`, `nokaslr` under --gdb].
    #[arg(long, value_name = "STRING", allow_hyphen_values = true)]
    pub cmdline: Option<String>,

    /// With --paging: the entry EIP (default 0x80001000).
    #[arg(long, value_name = "ADDR", value_parser = parse_u64)]
    pub entry: Option<u64>,

    /// With --paging: the guest-physical load address (default 0x1000).
    #[arg(long, value_name = "OFFSET", value_parser = parse_u64)]
    pub load: Option<u64>,

    /// Wait for gdb on PORT or ADDR:PORT before the first instruction (ADDR defaults to 127.0.0.1;
    /// PORT 0 picks a free port).
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub gdb: Option<String>,

    /// After stdin ends, how long (seconds) a guest may keep waiting for input before the run
    /// stops with exit status 5.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, allow_negative_numbers = true)]
    pub eof_grace: f64,

    /// Run in the lab (a PC emulated by QEMU with a real KVM inside), even if this host's KVM
    /// could run the guest. Without it, minikvm goes there only when this host's KVM cannot.
    #[arg(long, conflicts_with = "no_lab")]
    pub lab: bool,

    /// Never run in the lab: run here even if this host's KVM cannot run the guest (also: the
    /// environment variable MINIKVM_NO_LAB).
    #[arg(long)]
    pub no_lab: bool,
}

/// A command-line value that should have been a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a number (use decimal or 0x hex)")]
pub struct NotANumber(String);

/// Accepts decimal or 0x-prefixed hexadecimal numbers.
pub fn parse_u64(s: &str) -> Result<u64, NotANumber> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => t.replace('_', "").parse(),
    };
    parsed.map_err(|_| NotANumber(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_both_bases() {
        assert_eq!(parse_u64("0x80001000"), Ok(0x8000_1000));
        assert_eq!(parse_u64("4096"), Ok(4096));
        assert!(parse_u64("zz").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
