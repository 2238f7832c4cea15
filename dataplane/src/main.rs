//! The `dataplane` binary: parses the command line, sets up logging, loads and validates the
//! config through `gwconf`, and runs the requested command.

mod cli;

use clap::Parser;
use cli::{Cli, Command, LogFormat};
use gwconf::{self, Format, GatewayConfig, HostFacts, Interfaces, LoadOptions};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    match cli.command {
        Some(Command::Check { config, offline }) => check(&config, offline),
        Some(Command::Import { file, interface }) => import(&file, &interface),
        Some(Command::Init {
            config,
            interface,
            name,
            subnets,
            port,
            force,
        }) => cli::ops::init(config, interface, name, subnets, port, force),
        Some(Command::Peer(cmd)) => cli::ops::peer(cmd),
        Some(Command::Stats {
            config,
            socket,
            watch,
            json,
        }) => cli::ops::stats(config, socket, watch, json),
        Some(Command::Capture {
            point,
            write,
            count,
            duration,
            snaplen,
            config,
            socket,
        }) => cli::capture::capture(cli::capture::CaptureArgs {
            point,
            write,
            count,
            duration,
            snaplen,
            config,
            socket,
        }),
        None => {
            match cli.config {
                Some(path) => run(&path),
                None => {
                    eprintln!("dataplane: nothing to do; run the gateway with --config FILE, or see --help");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// ANSI colour only for a person at a terminal: journald, files and pipes get plain text.
/// NO_COLOR (<https://no-color.org>) turns it off anywhere.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal as _;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `dataplane check`: the same loader as the run path, with errors to stderr.
fn check(path: &Path, offline: bool) -> ExitCode {
    let opts = LoadOptions {
        host: if offline {
            HostFacts::unknown()
        } else {
            dataplane::host::facts()
        },
        interfaces: None,
    };
    match gwconf::load(path, &opts) {
        Ok(loaded) => {
            for note in &loaded.notes {
                println!("note: {note}");
            }
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}: OK: {}", path.display(), summary(&loaded.config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!(
                "{}: {n} error{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

fn summary(c: &GatewayConfig) -> String {
    let arms = match &c.dataplane.interfaces {
        Interfaces::OneArmed { interface } => format!("one-armed on {interface}"),
        Interfaces::TwoArmed { wan, lan } => format!("two-armed, WAN {wan}, LAN {lan}"),
    };
    let nat = if c.nat.masquerade {
        format!("source NAT on ports {}", c.nat.port_range)
    } else {
        "no source NAT".to_string()
    };
    format!(
        "{arms}, listen port {}, {} peer{}, {nat}, XDP mode {}",
        c.interface.listen_port,
        c.peers.len(),
        if c.peers.len() == 1 { "" } else { "s" },
        c.dataplane.mode.as_str()
    )
}

/// `dataplane import`: wg-quick in, gw.toml out (stdout), notes to stderr and into the header.
fn import(path: &Path, interface: &[String]) -> ExitCode {
    let interfaces = match interface {
        [] => None,
        [one] => Some(Interfaces::OneArmed {
            interface: one.clone(),
        }),
        [wan, lan] => Some(Interfaces::TwoArmed {
            wan: wan.clone(),
            lan: lan.clone(),
        }),
        _ => {
            eprintln!(
                "dataplane import: --interface is given once (one-armed) or twice (WAN, LAN)"
            );
            return ExitCode::from(2);
        }
    };
    for name in interface {
        if let Err(e) = gwconf::values::interface_name(name) {
            eprintln!("dataplane import: --interface {e}");
            return ExitCode::from(2);
        }
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read the file: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if Format::detect(path, &text) != Format::WgQuick {
        eprintln!(
            "{}: not a wg-quick file (expected [Interface] and [Peer] sections); a gw.toml needs no import",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let opts = LoadOptions {
        host: HostFacts::unknown(),
        interfaces,
    };
    let ifname = path.file_stem().and_then(|s| s.to_str()).unwrap_or("wg0");
    let file = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new("."));
    match gwconf::load_str(&text, &file, base, Format::WgQuick, ifname, &opts) {
        Ok(loaded) => {
            for note in &loaded.notes {
                eprintln!("note: {note}");
            }
            let mut header = vec![format!(
                "gw.toml imported from {file} by `dataplane import`"
            )];
            header.extend(loaded.notes.iter().cloned());
            if let Err(e) = make_stdout_private() {
                eprintln!("dataplane import: {e}");
                return ExitCode::FAILURE;
            }
            print!("{}", gwconf::to_gw_toml(&loaded.config, &header));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// `dataplane import wg0.conf > gw.toml`: the shell creates gw.toml with its umask (often
/// 0644), and the output holds the private key. When stdout is a regular file, it is made 0600
/// before anything is written to it.
fn make_stdout_private() -> Result<(), String> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return Ok(()); // no stdout: nothing to protect
    };
    let file = std::fs::File::from(fd);
    let Ok(meta) = file.metadata() else {
        return Ok(());
    };
    if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(()); // a pipe or terminal, or already private
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| {
            format!("the output file holds the private key and cannot be made mode 0600 ({e}); nothing written. Write it elsewhere, or create it first with `install -m 600 /dev/null FILE`")
        })?;
    eprintln!("note: the output file holds the private key: made it mode 0600");
    Ok(())
}

/// Run path: validate fully, then hand the config to the runtime.
fn run(path: &Path) -> ExitCode {
    let opts = LoadOptions {
        host: dataplane::host::facts(),
        interfaces: None,
    };
    let loaded = match gwconf::load(path, &opts) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: not started; fix the errors above (dataplane check --config {} shows them again)", path.display(), path.display());
            return ExitCode::FAILURE;
        }
    };
    for note in &loaded.notes {
        tracing::info!("{note}");
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(config = %path.display(), "{}", summary(&loaded.config));
    match dataplane::runtime::run(loaded.config, Some(path.to_path_buf())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            if let Some(hint) = privilege_hint(&e) {
                tracing::error!("{hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What to do when the run failed for lack of privilege (EPERM, EACCES anywhere in the chain).
fn privilege_hint(e: &anyhow::Error) -> Option<&'static str> {
    let denied = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
            || c.to_string().contains("Operation not permitted")
            || c.to_string().contains("Permission denied")
    });
    denied.then_some(
        "the gateway needs root, or these capabilities: CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_IPC_LOCK \
         (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_IPC_LOCK), and write access to /run/dataplane; see SECURITY.md",
    )
}
