//! The `ci` task: every check CI runs, in order, stopping at the first failure.

use crate::cmd::{Cmd, Result, repo_root};
use crate::{no_args, release, test, tidy};

/// One named CI step.
struct Step {
    /// The name printed before it runs and in the error if it fails.
    name: &'static str,
    /// Runs it.
    run: fn() -> Result,
}

/// The steps, in order.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        run: || Cmd::cargo().args(["fmt", "--all", "--check"]).run(),
    },
    Step {
        name: "clippy",
        run: || {
            Cmd::cargo()
                .args(["clippy", "--workspace", "--all-targets"])
                .args(["--", "-D", "warnings"])
                .run()
        },
    },
    Step {
        name: "test",
        run: test::run_default,
    },
    Step {
        name: "doc",
        run: || {
            Cmd::cargo()
                .env("RUSTDOCFLAGS", "-D warnings")
                .args(["doc", "--workspace", "--no-deps"])
                .run()
        },
    },
    Step {
        name: "tidy",
        run: || tidy::run(&[]),
    },
    Step {
        name: "fuzz build",
        run: fuzz_build,
    },
    Step {
        name: "features",
        run: release::features,
    },
    Step {
        name: "msrv",
        run: release::msrv,
    },
    Step {
        name: "publish --dry-run",
        run: release::publish_dry_run,
    },
];

/// Runs every step; the error names the step that failed.
pub(crate) fn run(args: &[String]) -> Result {
    no_args("ci", args)?;
    for (i, step) in STEPS.iter().enumerate() {
        eprintln!("==> ci step {}/{}: {}", i + 1, STEPS.len(), step.name);
        (step.run)().map_err(|e| format!("ci step `{}` failed: {e}", step.name))?;
    }
    eprintln!("==> ci: all {} steps passed", STEPS.len());
    Ok(())
}

/// Type-checks the fuzz targets (their own workspace under fuzz/) on the stable toolchain;
/// skipped while there is no fuzz/Cargo.toml.
fn fuzz_build() -> Result {
    if !repo_root().join("fuzz/Cargo.toml").is_file() {
        eprintln!("no fuzz/Cargo.toml; skipping");
        return Ok(());
    }
    Cmd::cargo()
        .args(["check", "--manifest-path", "fuzz/Cargo.toml"])
        .run()
}
