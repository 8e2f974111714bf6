//! The `pontoon` command-line tool: `pontoon demo` shows what pontoon does, end to end, with numbers;
//! `pontoon log` inspects a pontoon-persist log; `pontoon inspect` prints a pickle as JSON;
//! `pontoon store` runs and drives an object store.
//!
//! Exit status, the same for every subcommand: 0 when it did what was asked and found nothing
//! wrong; 1 when a check ran and found damage (`pontoon log verify`); 2 when it could not do what
//! was asked (an I/O error, a directory that holds no log) or the command line was wrong.

mod demo;
mod generate;
mod inspect;
mod log;
mod log_remote;
mod metrics;
mod store;

use std::error::Error;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use log::Failure;

/// The exit status's meaning, printed under every `--help`.
const EXIT_STATUS: &str = "\
Exit status:
  0  done, nothing wrong found
  1  a check ran and found damage (pontoon log verify)
  2  could not do what was asked (I/O error, not a log, ...) or bad usage";

/// Move objects between processes, machines and disk as a header plus zero-copy frames.
#[derive(Parser)]
#[command(name = "pontoon", version, propagate_version = true, after_help = EXIT_STATUS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what pontoon does, end to end, with numbers.
    ///
    /// Encodes and decodes a mixed message (small admin fields plus a large payload frame), sends
    /// typed values, arrays and Arrow data between two processes over tcp://, and keeps state
    /// across kill -9; reports sizes, frame counts, whether payloads were copied, and throughput.
    Demo(demo::Args),
    /// The other process of `pontoon demo`'s transport part (started by the demo itself).
    #[command(hide = true)]
    DemoPeer(demo::PeerArgs),
    /// The writer process of `pontoon demo`'s persistence part (started, then killed with
    /// SIGKILL, by the demo itself).
    #[command(hide = true)]
    DemoWriter(demo::WriterArgs),
    /// The producer process of `pontoon demo`'s store part (started by the demo itself).
    #[command(hide = true)]
    DemoStoreProducer(demo::ProducerArgs),
    /// Inspect a pontoon-persist log: verify it, or dump its records.
    #[command(subcommand)]
    Log(log::Command),
    /// Decode a file and print its value as JSON, never running code.
    ///
    /// With --format pickle: a Python pickle (protocols 0 to 5) and its out-of-band buffers
    /// (--buffer, in order). Prints one JSON tree of nodes: {"t":"none"}, {"t":"bool","v":..},
    /// {"t":"int","v":"<decimal>"}, {"t":"float","v":"<float.hex()>"}, {"t":"complex",..},
    /// {"t":"str","v":..}, {"t":"bytes","len":..,"sha256":..} ("kind":"bytearray" for one),
    /// {"t":"list"|"tuple"|"set"|"frozenset","items":[..]}, {"t":"dict","items":[[k,v],..]},
    /// {"t":"ndarray","dtype":..,"shape":..,"strides":..,"sha256_c_order":..} and
    /// {"t":"other","type":"module.Name"}; a cycle closes with {"t":"ref"}. Globals outside the
    /// allow-list are refused by name.
    ///
    /// Exit status: 0 when printed; 2 when the file is malformed or refused (one line on
    /// stderr naming what was wrong and the byte offset) or could not be read.
    Inspect(inspect::Args),
    /// Run an object store daemon, and put, get, delete objects and read its counters.
    #[command(subcommand)]
    Store(store::Command),
    /// Write shell completions and man pages (run by `cargo xtask completions`).
    #[command(hide = true)]
    Generate(generate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args).map_err(Failure::Unchecked),
        Command::DemoPeer(args) => demo::peer(&args).map_err(Failure::Unchecked),
        Command::DemoWriter(args) => demo::writer(&args).map_err(Failure::Unchecked),
        Command::DemoStoreProducer(args) => demo::producer(&args).map_err(Failure::Unchecked),
        Command::Log(command) => log::run(&command),
        Command::Inspect(args) => inspect::run(&args).map_err(Failure::Unchecked),
        Command::Store(command) => store::run(command).map_err(Failure::Unchecked),
        Command::Generate(args) => generate::run(&args).map_err(Failure::Unchecked),
    };
    let (code, error) = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Damaged(error)) => (1, error),
        Err(Failure::Unchecked(error)) => (2, error),
    };
    // What was printed before the error stays above it.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    eprintln!("{}", report(error.as_ref()));
    ExitCode::from(code)
}

/// The whole chain of `error`: its message, then each `source()` on a line of its own.
fn report(error: &(dyn Error + 'static)) -> String {
    let mut text = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_error_report_prints_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let outer: Box<dyn Error> = Box::new(Wrapped(io));
        let text = report(outer.as_ref());
        assert_eq!(text, "error: reading the log\n  caused by: disk on fire");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("reading the log")
        }
    }
    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
}
