//! `dataplane-gen-docs OUT_DIR`: writes the man pages and the shell completions of `dataplane`
//! from its clap definitions, for the Debian package (`packaging/build-deb.sh`).
//!
//! It compiles the binary's own `cli` module, so the pages and completions describe exactly the
//! options the installed `dataplane` accepts; nothing here restates an option. It is a separate
//! binary so that the gateway's command line carries no packaging-only subcommand.
//!
//! Output: `OUT_DIR/man/dataplane.1` and one page per subcommand (`dataplane-peer-add.1`, ...),
//! `OUT_DIR/completions/{dataplane.bash,_dataplane,dataplane.fish}`.

// Only the clap definitions are used; the command implementations beside them are compiled but
// never called from here.
#[allow(dead_code, unused_imports)]
#[path = "../cli/mod.rs"]
mod cli;

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [dir] if !dir.starts_with('-') => PathBuf::from(dir),
        _ => {
            eprintln!(
                "usage: dataplane-gen-docs OUT_DIR  (writes OUT_DIR/man and OUT_DIR/completions)"
            );
            return ExitCode::from(2);
        }
    };
    match generate(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataplane-gen-docs: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(cli::Cli::command(), &man)?;

    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli::Cli::command(), "dataplane", &completions)?;
    }
    Ok(())
}
