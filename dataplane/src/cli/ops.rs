//! The operator commands of the binary: `init`, `peer add|remove|list`, `stats`. Each turns
//! the library's result into what the operator reads, and an exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use dataplane::peers::{self, AddRequest, InitRequest};
use gwconf::init::InitOptions;
use gwconf::{self, schema::defaults, HostFacts, LoadOptions};
use ops::{client, text};

use super::{PeerCommand, PeerTarget};

fn fail(cmd: &str, e: anyhow::Error) -> ExitCode {
    eprintln!("dataplane {cmd}: {e:#}");
    ExitCode::FAILURE
}

/// `dataplane init`.
pub fn init(
    config: PathBuf,
    interface: String,
    name: String,
    subnets: gwconf::init::TunnelSubnets,
    port: u16,
    force: bool,
) -> ExitCode {
    if let Err(e) = gwconf::values::interface_name(&interface) {
        eprintln!("dataplane init: --interface {e}");
        return ExitCode::from(2);
    }
    let req = InitRequest {
        config: config.clone(),
        force,
        options: InitOptions {
            interface,
            name,
            subnets,
            listen_port: port,
        },
    };
    match peers::init(&req) {
        Ok(public) => {
            println!("wrote {} (mode 0600)", config.display());
            println!("gateway public key: {public}");
            println!(
                "next: dataplane peer add NAME --config {} --server-url <address clients reach>",
                config.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("init", e),
    }
}

/// `dataplane peer ...`.
pub fn peer(cmd: PeerCommand) -> ExitCode {
    match cmd {
        PeerCommand::Add {
            names,
            count,
            target: PeerTarget {
                config,
                uapi_socket,
            },
            server_url,
            dns,
            allowed_ips,
            keepalive,
            out_dir,
            no_qr,
        } => {
            let out_dir = out_dir.unwrap_or_else(|| peers::default_out_dir(&config));
            let names = match count {
                Some(n) => match peers::numbered_names(&config, usize::from(n)) {
                    Ok(names) => names,
                    Err(e) => return fail("peer add", e),
                },
                None => names,
            };
            if let Err(e) = peers::check_new_names(&config, &names) {
                return fail("peer add", e);
            }
            for (i, name) in names.iter().enumerate() {
                let req = AddRequest {
                    config: config.clone(),
                    name: name.clone(),
                    server_url: server_url.clone(),
                    dns: dns.clone(),
                    allowed_ips: allowed_ips.clone(),
                    persistent_keepalive: keepalive,
                    out_dir: out_dir.clone(),
                    uapi_socket: uapi_socket.clone(),
                };
                match peers::add(&req) {
                    Ok(out) => {
                        if !no_qr {
                            println!("{}", out.qr_text);
                        }
                        println!(
                            "peer {} added: address {}, public key {}",
                            req.name,
                            out.addresses
                                .iter()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                            out.public_key
                        );
                        println!("client config: {}", out.conf_path.display());
                        println!("QR code:       {}", out.png_path.display());
                        println!("{}", out.live.describe("the peer"));
                    }
                    Err(e) => {
                        let done = names[..i].join(", ");
                        let e = if done.is_empty() {
                            e
                        } else {
                            e.context(format!("{name} not added ({done} were)"))
                        };
                        return fail("peer add", e);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        PeerCommand::Show {
            name,
            target: PeerTarget { config, .. },
            out_dir,
            no_qr,
        } => {
            let out_dir = out_dir.unwrap_or_else(|| peers::default_out_dir(&config));
            match peers::show(&config, &name, &out_dir) {
                Ok(out) => {
                    if !no_qr {
                        println!("{}", out.qr_text);
                    }
                    println!("# {}", out.conf_path.display());
                    print!("{}", out.conf_text);
                    ExitCode::SUCCESS
                }
                Err(e) => fail("peer show", e),
            }
        }
        PeerCommand::Remove {
            name,
            target: PeerTarget {
                config,
                uapi_socket,
            },
            out_dir,
        } => {
            let out_dir = out_dir.unwrap_or_else(|| peers::default_out_dir(&config));
            match peers::remove(&config, &name, uapi_socket.as_deref(), &out_dir) {
                Ok(out) => {
                    println!(
                        "peer {name} ({}) removed from {}",
                        out.public_key,
                        config.display()
                    );
                    for f in &out.removed_files {
                        println!("deleted {}", f.display());
                    }
                    println!("{}", out.live.describe("the removal"));
                    ExitCode::SUCCESS
                }
                Err(e) => fail("peer remove", e),
            }
        }
        PeerCommand::List {
            target: PeerTarget {
                config,
                uapi_socket,
            },
        } => match peers::list(&config, uapi_socket.as_deref()) {
            Ok((rows, why)) => {
                if rows.is_empty() {
                    println!(
                        "no peers in {}; add one with `dataplane peer add NAME`",
                        config.display()
                    );
                }
                print!("{}", peers::render_list(&rows, SystemTime::now()));
                if let Some(why) = why {
                    println!("(no live data: {why})");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("peer list", e),
        },
    }
}

/// The socket `dataplane init` wrote into every gw.toml before the device had a name: with
/// neither `--config` nor `--socket`, a gateway on such a file is still found.
const CONTROL_SOCKET_BEFORE_NAMES: &str = "/run/dataplane/control.sock";

/// The control socket: `--socket`, else `[control] socket` of `--config`, else the default of
/// the default device (wg0), else the one older configs name.
pub(super) fn control_socket(
    config: Option<&Path>,
    socket: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s);
    }
    match config {
        Some(path) => {
            let opts = LoadOptions {
                host: HostFacts::unknown(),
                interfaces: None,
            };
            gwconf::load(path, &opts)
                .map(|l| l.config.control.socket)
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        None => {
            let default = defaults::control_socket(defaults::DEVICE_NAME);
            let before = Path::new(CONTROL_SOCKET_BEFORE_NAMES);
            Ok(if !default.exists() && before.exists() {
                before.to_path_buf()
            } else {
                default
            })
        }
    }
}

/// `dataplane stats`.
pub fn stats(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    watch: bool,
    json: bool,
) -> ExitCode {
    let socket = match control_socket(config.as_deref(), socket) {
        Ok(s) => s,
        Err(e) => return fail("stats", e),
    };
    if !watch {
        return match client::request_stats(&socket) {
            Ok(snap) => {
                if json {
                    match serde_json::to_string_pretty(&snap) {
                        Ok(j) => println!("{j}"),
                        Err(e) => return fail("stats", e.into()),
                    }
                } else {
                    print!("{}", text::render(&snap, None));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail("stats", e),
        };
    }
    let mut prev = None;
    loop {
        match client::request_stats(&socket) {
            Ok(snap) => {
                // Clear the screen and home the cursor (ANSI), as `watch` does.
                print!("\x1b[2J\x1b[H{}", text::render(&snap, prev.as_ref()));
                prev = Some(snap);
            }
            Err(e) => return fail("stats", e),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
