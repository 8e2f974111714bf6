//! The `ferry` command-line tool: `ferry demo` shows what ferry does, end to end, with numbers;
//! `ferry log` inspects a ferry-persist log.

mod demo;
mod log;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ferry: move objects between processes, machines and disk as a header plus zero-copy frames.
#[derive(Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode and decode a mixed message (small admin fields plus a large payload frame) and
    /// report sizes, frame count, whether the payload was copied, and throughput.
    Demo(demo::Args),
    /// The other process of `ferry demo`'s transport part (started by the demo itself).
    #[command(hide = true)]
    DemoPeer(demo::PeerArgs),
    /// The writer process of `ferry demo`'s persistence part (started, then killed with
    /// SIGKILL, by the demo itself).
    #[command(hide = true)]
    DemoWriter(demo::WriterArgs),
    /// Inspect a ferry-persist log: verify it, or dump its records.
    #[command(subcommand)]
    Log(log::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::DemoPeer(args) => demo::peer(&args),
        Command::DemoWriter(args) => demo::writer(&args),
        Command::Log(command) => log::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
