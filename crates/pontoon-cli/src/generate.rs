//! `pontoon generate` (hidden): writes shell completions and man pages for the command line, from
//! its clap definition, so they never drift from it. `cargo xtask completions` runs it.

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// Where to write.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The directory to write into: `completions/` (bash, zsh, fish, elvish, PowerShell) and
    /// `man/` (one page per command and subcommand) are made under it.
    #[arg(long)]
    out: PathBuf,
}

/// Writes completions for every shell clap_complete knows and a man page per (sub)command.
pub(crate) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let completions = args.out.join("completions");
    std::fs::create_dir_all(&completions)
        .map_err(|e| format!("creating {}: {e}", completions.display()))?;
    let mut command = crate::Cli::command();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let path = clap_complete::generate_to(shell, &mut command, "pontoon", &completions)
            .map_err(|e| {
                format!(
                    "writing {shell} completions to {}: {e}",
                    completions.display()
                )
            })?;
        println!("wrote {}", path.display());
    }
    let man = args.out.join("man");
    std::fs::create_dir_all(&man).map_err(|e| format!("creating {}: {e}", man.display()))?;
    write_man_pages(&crate::Cli::command(), &man)?;
    Ok(())
}

/// Writes `command`'s page (`pontoon.1`, `pontoon-log-verify.1`, ...) and its subcommands'.
fn write_man_pages(command: &clap::Command, dir: &Path) -> Result<(), Box<dyn Error>> {
    let mut command = command.clone();
    command.build();
    write_pages(&command, "pontoon", dir)
}

fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> Result<(), Box<dyn Error>> {
    if command.is_hide_set() {
        return Ok(());
    }
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone().name(name.to_owned()))
        .render(&mut page)
        .map_err(|e| format!("rendering {}: {e}", path.display()))?;
    std::fs::write(&path, page).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    for sub in command.get_subcommands() {
        if sub.get_name() != "help" {
            write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_man_pages_are_written_for_every_visible_subcommand() {
        let out = std::env::temp_dir().join(format!("pontoon-generate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        run(&Args { out: out.clone() }).unwrap();
        let bash = std::fs::read_to_string(out.join("completions/pontoon.bash")).unwrap();
        assert!(
            bash.contains("verify"),
            "bash completions name `log verify`"
        );
        for page in [
            "pontoon.1",
            "pontoon-demo.1",
            "pontoon-log.1",
            "pontoon-log-verify.1",
        ] {
            let text = std::fs::read_to_string(out.join("man").join(page)).unwrap();
            assert!(text.contains(".TH"), "{page} is a man page");
        }
        assert!(
            !out.join("man/pontoon-generate.1").exists(),
            "hidden commands get no page"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}
