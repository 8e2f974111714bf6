//! Running external commands: echo the command line, run it from the repo root, name it on failure.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "../../crates/pontoon-persist/tests/support/package_vars.rs"]
mod package_vars;
use package_vars::is_package_variable;

/// The result of a task or step: the error is a message ready to print after `error: `.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// The repository root (the workspace root): every command runs there.
pub(crate) fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A command to run from the repo root, together with the line echoed for it.
pub(crate) struct Cmd {
    /// The command itself.
    command: Command,
    /// The command line as shown to the user, e.g. `cargo nextest run --workspace`.
    shown: String,
}

impl Cmd {
    /// A command running `program` (found on `PATH`) in the repo root.
    pub(crate) fn new(program: &str) -> Self {
        Self::with_program(program, program)
    }

    /// A `cargo` command. Uses the cargo that runs xtask (`$CARGO`) so the toolchain matches.
    pub(crate) fn cargo() -> Self {
        let mut cmd = match std::env::var_os("CARGO") {
            Some(cargo) => Self::with_program(cargo, "cargo"),
            None => Self::new("cargo"),
        };
        // `cargo run` gave xtask the variables of its own package. Build scripts that rerun
        // when such a variable changes (ring's watches CARGO_MANIFEST_DIR and CARGO_PKG_NAME)
        // are checked against cargo's own environment, so with them inherited every build from
        // xtask and every plain `cargo` build after it rebuilt ring and all above it.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_package_variable) {
                cmd.command.env_remove(&key);
            }
        }
        cmd
    }

    /// A `cargo +nightly` command. Goes through rustup's `cargo` proxy on `PATH`,
    /// since only the proxy understands `+toolchain`.
    pub(crate) fn nightly_cargo() -> Self {
        Self::new("cargo").arg("+nightly")
    }

    /// A command running `program`, shown as `shown`.
    fn with_program(program: impl AsRef<OsStr>, shown: &str) -> Self {
        let mut command = Command::new(program);
        command.current_dir(repo_root());
        Self {
            command,
            shown: shown.to_owned(),
        }
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        self.shown.push(' ');
        self.shown.push_str(&shell_quote(&arg.to_string_lossy()));
        self.command.arg(arg);
        self
    }

    /// Appends several arguments.
    pub(crate) fn args<I>(self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Self::arg)
    }

    /// Sets an environment variable for the command; it is shown before the command line.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self.shown = format!("{key}={} {}", shell_quote(value), self.shown);
        self
    }

    /// Leaves `key` out of the command's environment (not echoed: the command line shows what
    /// is set).
    pub(crate) fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// What the command's environment does with `key`: `None` if it is inherited as it is,
    /// `Some(None)` if it is removed, `Some(Some(value))` if it is set.
    #[cfg(test)]
    pub(crate) fn env_of(&self, key: &str) -> Option<Option<String>> {
        self.command
            .get_envs()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    /// The command line as echoed.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Echoes the command line to stderr as `$ cargo …`.
    fn echo(&self) {
        eprintln!("$ {}", self.shown);
    }

    /// Runs the command with inherited stdio; fails unless it exits successfully.
    pub(crate) fn run(mut self) -> Result {
        self.echo();
        let status = self
            .command
            .status()
            .map_err(|e| format!("could not start `{}`: {e}", self.shown))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.shown))
        }
    }

    /// Runs the command, capturing stdout (stderr is inherited); fails unless it exits
    /// successfully. Returns stdout.
    pub(crate) fn output(mut self) -> Result<String> {
        self.echo();
        let output = self
            .command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("could not start `{}`: {e}", self.shown))?;
        if output.status.success() {
            String::from_utf8(output.stdout)
                .map_err(|e| format!("`{}` printed non-UTF-8 output: {e}", self.shown))
        } else {
            Err(format!("`{}` failed ({})", self.shown, output.status))
        }
    }

    /// Runs the command with all output discarded and tells whether it succeeded; for probes
    /// such as `cargo nextest --version`.
    pub(crate) fn probe(mut self) -> bool {
        self.echo();
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// Quotes `word` for display the way a POSIX shell would need it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Makes sure a tool is present: if `probe` fails, runs `install`, then probes again.
pub(crate) fn ensure_tool(what: &str, probe: impl Fn() -> Cmd, install: Cmd) -> Result {
    if probe().probe() {
        return Ok(());
    }
    eprintln!("{what} is missing; installing it");
    let install_line = install.shown().to_owned();
    install.run()?;
    if probe().probe() {
        Ok(())
    } else {
        Err(format!(
            "{what} is still missing after `{install_line}`; install it by hand"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_commands_leave_out_xtasks_package_variables() {
        assert!(is_package_variable("CARGO_PKG_NAME") && is_package_variable("CARGO_MANIFEST_DIR"));
        assert!(!is_package_variable("CARGO_HOME") && !is_package_variable("CARGO_TARGET_DIR"));
        // Run by cargo, this test has CARGO_MANIFEST_DIR set, as xtask itself does.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert_eq!(Cmd::cargo().env_of("CARGO_MANIFEST_DIR"), Some(None));
    }
}
