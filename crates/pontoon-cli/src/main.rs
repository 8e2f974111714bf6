//! The `pontoon` command-line tool: `pontoon demo` shows what pontoon does, end to end, with numbers;
//! `pontoon log` inspects a pontoon-persist log.

mod demo;
mod log;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// pontoon: move objects between processes, machines and disk as a header plus zero-copy frames.
#[derive(Parser)]
#[command(name = "pontoon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode and decode a mixed message (small admin fields plus a large payload frame) and
    /// report sizes, frame count, whether the payload was copied, and throughput.
    Demo(demo::Args),
    /// The other process of `pontoon demo`'s transport part (started by the demo itself).
    #[command(hide = true)]
    DemoPeer(demo::PeerArgs),
    /// The writer process of `pontoon demo`'s persistence part (started, then killed with
    /// SIGKILL, by the demo itself).
    #[command(hide = true)]
    DemoWriter(demo::WriterArgs),
    /// Inspect a pontoon-persist log: verify it, or dump its records.
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
