//! minikvm's command line: parse, run, turn the outcome into an exit status.

// `print!`/`eprint!` panic on a closed or full stream; minikvm writes through minikvm::stdio instead.
#![deny(clippy::print_stdout, clippy::print_stderr)]
// A function a reader holds in their head: at most 60 lines (clippy.toml), checked by CI's clippy.
#![deny(clippy::too_many_lines)]

use clap::Parser;
use minikvm::cli::{Cli, Command};
use minikvm::error::{Error, ExitStatus};
use minikvm::{controller, doctor, guests, kvm, lab, os1k_flavour, stderrln, stdout, vmm};
use std::process::exit;

fn main() {
    // First of all, before a signal can find minikvm without a plan: the kick handler (so a stray
    // kick signal does nothing) and the stop signals blocked, to be read by the run's controller.
    let stop_signals =
        match kvm::install_kick_handler().map_err(Error::from).and_then(|()| controller::block_stop_signals()) {
            Ok(set) => set,
            Err(e) => exit(fail(&e.to_string(), e.status()).code()),
        };
    let cli = parse_command_line();
    let level = match cli.run.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    // gdbstub reports every packet it does not know at info level: noise below -vvv.
    minikvm::stdio::init_log(level, if cli.run.verbose < 3 { &["gdbstub"] } else { &[] });

    if cli.command.is_some() {
        controller::unblock_stop_signals(&stop_signals);
    }
    let status = match cli.command {
        Some(Command::List) => {
            stdout!("{}", guests::list());
            ExitStatus::Ok
        }
        Some(Command::Doctor { probe: Some(name) }) => match doctor::probe(&name) {
            Ok(true) => ExitStatus::Ok,
            Ok(false) => ExitStatus::GuestFault,
            Err(e) => fail(&e.to_string(), e.status()),
        },
        Some(Command::Doctor { probe: None }) => match doctor::report() {
            Ok(report) => {
                stdout!("{report}");
                ExitStatus::Ok
            }
            Err(e) => fail(&e.to_string(), e.status()),
        },
        None => match vmm::Config::from_args(&cli.run) {
            Ok(cfg) => match lab::choose(&cli.run, &cfg) {
                Some(reason) => {
                    // The lab's script inherits the signal mask: it must see the stop signals.
                    controller::unblock_stop_signals(&stop_signals);
                    lab::hand_over(&reason, &cfg)
                }
                None => {
                    os1k_flavour::announce();
                    vmm::run(cfg).unwrap_or_else(|e| fail(&e.to_string(), e.status()))
                }
            },
            Err(e) => fail(&e.to_string(), e.status()),
        },
    };
    exit(status.code());
}

/// The command line, or the end: `--help` and `--version` print and exit 0, a mistake exits 2.
fn parse_command_line() -> Cli {
    match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                exit(0);
            }
            // One line, not clap's usage block: scripts and students both read the first line.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid command line");
            stderrln!("minikvm: {} (see `minikvm --help`)", first.trim_start_matches("error: "));
            exit(ExitStatus::Usage.code());
        }
    }
}

fn fail(msg: &str, status: ExitStatus) -> ExitStatus {
    stderrln!("minikvm: error: {msg}");
    status
}
