//! `cargo xtask`: pontoon's developer tasks (test, demo, ci, tidy, bench, fuzz, miri).
//!
//! Run `cargo xtask help` for the list. Every task runs its commands from the repo root,
//! echoes each command line to stderr as `$ …`, and exits non-zero with `error: …` when
//! something fails.

mod bench;
mod ci;
mod cmd;
mod demo;
mod fuzz;
mod miri;
mod python;
mod release;
mod seaweed;
mod test;
mod tidy;
mod workspace;

use std::process::ExitCode;

use cmd::Result;

/// One task: its name, its usage line, what it does, and the function that runs it with the
/// arguments that follow its name.
struct Task {
    /// The name given on the command line.
    name: &'static str,
    /// The flags it takes, for the help text.
    usage: &'static str,
    /// One line on what it does.
    about: &'static str,
    /// Runs it.
    run: fn(&[String]) -> Result,
}

/// Every task, in the order `help` lists them.
const TASKS: &[Task] = &[
    Task {
        name: "test",
        usage: "[--large] [--long]",
        about: "make/reuse the numpy venv, doc tests, then all tests with nextest; --large/--long also run the ignored large_/long_ tests",
        run: test::run,
    },
    Task {
        name: "demo",
        usage: "[ARGS...]",
        about: "run `pontoon demo` (release build), passing ARGS on",
        run: demo::run,
    },
    Task {
        name: "ci",
        usage: "",
        about: "everything CI checks: fmt, clippy, test, doc, tidy, fuzz build, each feature alone, publish --dry-run",
        run: ci::run,
    },
    Task {
        name: "tidy",
        usage: "",
        about: "repo rules: crate layering, no tokio in pontoon-wire, banned crates, //! headers, SAFETY comments",
        run: tidy::run,
    },
    Task {
        name: "bench",
        usage: "[--quick] [--python] [AREA...] [CRITERION ARGS...]",
        about: "run the benchmarks area by area; report ratios, targets and plots under target/pontoon-bench",
        run: bench::run,
    },
    Task {
        name: "fuzz",
        usage: "[--time SECONDS] [TARGET...]",
        about: "run every cargo-fuzz target (or those named) for SECONDS each (default 60; needs nightly)",
        run: fuzz::run,
    },
    Task {
        name: "features",
        usage: "",
        about: "check every publishable crate with no default features and each feature alone; the facade's doc tests per feature",
        run: release::features_task,
    },
    Task {
        name: "package",
        usage: "",
        about: "cargo publish --dry-run --workspace: every crate packaged and built from its package alone",
        run: |args| crate::no_args("package", args).and_then(|()| release::publish_dry_run()),
    },
    Task {
        name: "msrv",
        usage: "",
        about: "check that no dependency in the lock file needs a newer Rust than the rust-version claimed",
        run: |args| crate::no_args("msrv", args).and_then(|()| release::msrv()),
    },
    Task {
        name: "semver",
        usage: "",
        about: "cargo semver-checks against each crate's newest crates.io release (none yet: says so)",
        run: release::semver,
    },
    Task {
        name: "completions",
        usage: "",
        about: "write shell completions and man pages for `pontoon` to target/pontoon-dist/",
        run: release::completions,
    },
    Task {
        name: "miri",
        usage: "",
        about: "run the unit tests of every crate that uses `unsafe` under miri (needs nightly)",
        run: miri::run,
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        print_help();
        return ExitCode::FAILURE;
    };
    if matches!(name.as_str(), "help" | "-h" | "--help") {
        print_help();
        return ExitCode::SUCCESS;
    }
    let Some(task) = TASKS.iter().find(|t| t.name == name) else {
        eprintln!("error: unknown task `{name}`; `cargo xtask help` lists the tasks");
        return ExitCode::FAILURE;
    };
    // Asked of a task, help is its usage, not a run (a bench would take an hour).
    if args[1..].iter().any(|a| a == "-h" || a == "--help") {
        let call = format!("cargo xtask {} {}", task.name, task.usage);
        println!("usage: {}", call.trim_end());
        println!("\n{}", task.about);
        return ExitCode::SUCCESS;
    }
    match (task.run)(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the list of tasks.
fn print_help() {
    println!("usage: cargo xtask <task> [flags]\n\ntasks:");
    for task in TASKS {
        let call = format!("{} {}", task.name, task.usage);
        println!("  {:<36} {}", call.trim_end(), task.about);
    }
    println!("  {:<36} print this list", "help");
}

/// Fails with a message naming the task if `args` holds anything; for tasks that take no flags.
pub(crate) fn no_args(task: &str, args: &[String]) -> Result {
    match args.first() {
        None => Ok(()),
        Some(arg) => Err(format!(
            "`cargo xtask {task}` takes no arguments, got `{arg}`"
        )),
    }
}
