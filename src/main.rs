//! minikvm's command line: parse, run, turn the outcome into an exit status.

use clap::Parser;
use minikvm::cli::{Cli, Command};
use minikvm::error::ExitStatus;
use minikvm::{doctor, guests, vmm};
use simplelog::{ColorChoice, ConfigBuilder, LevelFilter, TermLogger, TerminalMode};
use std::process::exit;

fn main() {
    let cli = match Cli::try_parse() {
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
            eprintln!("minikvm: {} (see `minikvm --help`)", first.trim_start_matches("error: "));
            exit(ExitStatus::Usage.code());
        }
    };
    let level = match cli.run.verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let mut log_config = ConfigBuilder::new();
    log_config.set_time_level(LevelFilter::Off).set_target_level(LevelFilter::Off);
    if cli.run.verbose < 3 {
        // gdbstub reports every packet it does not know at info level: noise below -vvv.
        log_config.add_filter_ignore_str("gdbstub");
    }
    let log_config = log_config.build();
    let _ = TermLogger::init(level, log_config, TerminalMode::Stderr, ColorChoice::Never);

    let status = match cli.command {
        Some(Command::List) => {
            print!("{}", guests::list());
            ExitStatus::Ok
        }
        Some(Command::Doctor { probe: Some(name) }) => match doctor::probe(&name) {
            Ok(true) => ExitStatus::Ok,
            Ok(false) => ExitStatus::GuestFault,
            Err(msg) => fail(&msg, ExitStatus::Usage),
        },
        Some(Command::Doctor { probe: None }) => match doctor::report() {
            Ok(report) => {
                print!("{report}");
                ExitStatus::Ok
            }
            Err(e) => fail(&e.to_string(), e.status()),
        },
        None => match vmm::Config::from_args(&cli.run).and_then(vmm::run) {
            Ok(status) => status,
            Err(e) => fail(&e.to_string(), e.status()),
        },
    };
    exit(status.code());
}

fn fail(msg: &str, status: ExitStatus) -> ExitStatus {
    eprintln!("minikvm: error: {msg}");
    status
}
