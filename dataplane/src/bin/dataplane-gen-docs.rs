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
use clap_mangen::roff::{bold, italic, roman, Roff};
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
    // The main page again, with what clap does not know: the files, signals and the service.
    let cmd = cli::Cli::command().disable_help_subcommand(true);
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    page.extend_from_slice(operator_sections(&cmd).to_roff().as_bytes());
    std::fs::write(man.join("dataplane.1"), page)?;

    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli::Cli::command(), "dataplane", &completions)?;
    }
    Ok(())
}

/// SIGNALS, CONFIGURATION (from `gwconf::schema`), FILES and SEE ALSO of `dataplane(1)`. Paths are the defaults of the code they name
/// (`gwconf` for the control socket, `slowpath` for the UAPI socket, `instance_lock`).
fn operator_sections(cmd: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SIGNALS"]);
    for (signal, what) in [
        (
            "SIGINT, SIGTERM",
            "stop: the XDP program is detached and the tunnel device ([interface] name, default wg0) removed.",
        ),
        (
            "SIGHUP",
            "reload the peers from the config file without dropping sessions (systemctl reload).",
        ),
    ] {
        roff.control("TP", [])
            .text([bold(signal)])
            .text([roman(what)]);
    }
    roff.control("SH", ["CONFIGURATION"]);
    roff.text([roman(
        "The keys of gw.toml, with what each accepts (the text dataplane check prints; unset keys take the defaults named):",
    )]);
    for section in gwconf::schema::SECTIONS {
        for field in section.fields {
            roff.control("TP", [])
                .text([bold(format!("[{}] {}", section.name, field.name))])
                .text([roman(field.expect)]);
        }
    }
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/dataplane/NAME.toml".to_string(),
            "the config dataplane@NAME.service runs; readable by the dataplane user only (mode 0600). Instances side by side need their own [interface] name (wg0, wg1), NIC(s) and listen_port.",
        ),
        (
            "/lib/systemd/system/dataplane@.service".to_string(),
            "one gateway per config, as the dataplane user with CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_IPC_LOCK only.",
        ),
        (
            gwconf::schema::defaults::control_socket("NAME")
                .display()
                .to_string(),
            "control socket of dataplane stats and dataplane capture for the tunnel device NAME ([interface] name, default wg0; [control] socket changes it).",
        ),
        (
            format!("{}/IFNAME@netnsN.lock", dataplane::instance_lock::DEFAULT_LOCK_DIR),
            "one gateway per interface and network namespace.",
        ),
        (
            format!("{}/NAME.sock", slowpath::uapi::server::SOCKET_DIR),
            "UAPI socket of the tunnel device NAME ([interface] name, default wg0): wg show NAME, wg set and dataplane peer use it.",
        ),
        (
            "/usr/share/doc/dataplane/examples/".to_string(),
            "commented gw.toml files (one-armed, two-armed) and a wg-quick wg0.conf.",
        ),
    ] {
        roff.control("TP", []).text([italic(path)]).text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut pages: Vec<String> = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.get_subcommands().next().is_none() {
            pages.push(format!("dataplane-{}(1)", sub.get_name()));
        }
        for nested in sub.get_subcommands() {
            pages.push(format!(
                "dataplane-{}-{}(1)",
                sub.get_name(),
                nested.get_name()
            ));
        }
    }
    pages.extend([
        "wg(8)".into(),
        "systemctl(1)".into(),
        "systemd.exec(5)".into(),
    ]);
    roff.text([roman(pages.join(", "))]);
    roff
}
