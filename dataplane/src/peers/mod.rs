//! Peers for operators: `dataplane init`, `dataplane peer add | remove | list`.
//!
//! What the linuxserver/wireguard container does with its PEERS, SERVERURL, PEERDNS and
//! ALLOWEDIPS settings, done on gw.toml: generate keys, pick the next free tunnel address,
//! append the `[[peer]]` without touching the rest of the operator's file ([`gwconf::edit`]), write
//! the client's wg-quick file ([`gwconf::client_conf`]) and its QR code ([`qr`]), and apply the change
//! to a running gateway through its UAPI socket ([`uapi_client`]) without a restart.
//!
//! Every edit is validated by the config loader before the file is replaced, and the file is
//! replaced atomically (write, fsync, rename), so a failed command leaves gw.toml as it was.

pub mod qr;
pub mod uapi_client;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context};
use ipnet::IpNet;
use rand_core::OsRng;
use wgproto::keys::{PresharedKey, PrivateKey, PublicKey};

use gwconf::client_conf::{self, ClientConf};
use gwconf::edit::{self as gw_edit, GwTomlDoc, NewPeer};
use gwconf::{self, init, Format, GatewayConfig, HostFacts, LoadOptions};
use ops::text::{ago, bytes};
use uapi_client::{LivePeer, PeerSet, UapiClient, UapiClientError};

/// A peer name must be usable as a wg-quick interface name; the rule is the config loader's,
/// so `check` refuses what `peer add` refuses.
pub fn check_name(name: &str) -> Result<(), String> {
    gwconf::values::peer_name(name).map_err(|e| format!("peer name: {e}"))
}

/// Options of [`init`].
#[derive(Debug, Clone)]
pub struct InitRequest {
    pub config: PathBuf,
    pub force: bool,
    pub options: init::InitOptions,
}

/// Writes a new gw.toml with a fresh gateway key; returns the gateway's public key (base64).
pub fn init(req: &InitRequest) -> anyhow::Result<String> {
    if req.config.exists() && !req.force {
        bail!(
            "{} exists; not overwriting it (it may hold the gateway's key). Use --force to replace it, or --config to write elsewhere",
            req.config.display()
        );
    }
    let private = PrivateKey::generate(&mut OsRng);
    let public = private.public_key().to_base64();
    let text = init::template(&req.options, &private.to_base64(), &public)
        .map_err(|e| anyhow::anyhow!(e))?;
    // The template must load: a broken starting point would only fail later, at run.
    parse_gw_toml(&text, &req.config)?;
    write_atomically(&req.config, text.as_bytes(), 0o600)?;
    Ok(public)
}

/// Options of [`add`].
#[derive(Debug, Clone)]
pub struct AddRequest {
    pub config: PathBuf,
    pub name: String,
    /// `host[:port]` clients connect to; `None` = the WAN interface's address (see `wan_address`).
    pub server_url: Option<String>,
    pub dns: Vec<String>,
    /// What the client routes into the tunnel (ALLOWEDIPS), default 0.0.0.0/0.
    pub allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: Option<u16>,
    /// Where NAME.conf and NAME.png go.
    pub out_dir: PathBuf,
    /// The running gateway's UAPI socket; `None`: the one of the config's `[interface] name`.
    pub uapi_socket: Option<PathBuf>,
}

/// The UAPI socket to reach the gateway started from `cfg`: `explicit` (`--uapi-socket`), else
/// the one its tunnel device serves (`/var/run/wireguard/NAME.sock`).
fn uapi_socket_for(explicit: Option<&Path>, cfg: &GatewayConfig) -> PathBuf {
    explicit.map_or_else(
        || uapi_client::socket_of(&cfg.interface.name),
        Path::to_path_buf,
    )
}

/// What [`add`] did.
#[derive(Debug)]
pub struct AddOutcome {
    /// The peer's tunnel addresses (/32, and /128 on a dual-stack tunnel).
    pub addresses: Vec<IpNet>,
    pub public_key: String,
    pub conf_path: PathBuf,
    pub png_path: PathBuf,
    pub conf_text: String,
    /// The QR code for a terminal.
    pub qr_text: String,
    pub live: Live,
}

/// Whether a change reached a running gateway.
#[derive(Debug)]
pub enum Live {
    /// Applied through the UAPI.
    Applied,
    /// No gateway runs; the change takes effect at the next start.
    NotRunning,
    /// A gateway seems to run but refused or did not answer.
    Failed(String),
    /// The gateway on the socket runs another config (its key is not this file's): changing
    /// it would give a stranger's gateway this peer, so it is left alone.
    OtherGateway {
        /// The running gateway's public key (base64), `None` when it has none.
        running: Option<String>,
        /// The config file's gateway public key (base64).
        file: String,
        socket: PathBuf,
    },
}

impl Live {
    /// Applies `change` to the gateway on `socket` only when that gateway runs with `own`,
    /// the public key of the config being edited.
    fn apply(
        socket: &Path,
        own: &PublicKey,
        change: impl FnOnce(&UapiClient) -> Result<(), UapiClientError>,
    ) -> Live {
        let uapi = UapiClient::new(socket);
        match uapi.device_public_key() {
            Ok(Some(running)) if running.as_bytes() == own.as_bytes() => {
                Live::from_result(change(&uapi))
            }
            Ok(running) => Live::OtherGateway {
                running: running.map(|k| k.to_base64()),
                file: own.to_base64(),
                socket: socket.to_path_buf(),
            },
            Err(e) => Live::from_result(Err(e)),
        }
    }

    fn from_result(r: Result<(), UapiClientError>) -> Live {
        match r {
            Ok(()) => Live::Applied,
            Err(UapiClientError::NotRunning(_)) => Live::NotRunning,
            Err(UapiClientError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                // A socket file nobody listens on: left by a killed run.
                Live::NotRunning
            }
            Err(e) => Live::Failed(e.to_string()),
        }
    }

    /// One line for the operator.
    pub fn describe(&self, what: &str) -> String {
        match self {
            Live::Applied => format!("{what} applied to the running gateway (no restart)"),
            Live::NotRunning => {
                format!("no gateway is running; {what} takes effect when it starts")
            }
            Live::Failed(e) => format!(
                "{what} is in the config file but NOT in the running gateway: {e}; reload it with `kill -HUP $(pidof dataplane)`"
            ),
            Live::OtherGateway {
                running,
                file,
                socket,
            } => format!(
                "{what} is in the config file, but the running gateway was NOT changed: it runs another config (the gateway on {} has public key {}, this file's is {file}). Pass --uapi-socket of the gateway started from this file, or restart that gateway with this file",
                socket.display(),
                running.as_deref().unwrap_or("(none)")
            ),
        }
    }
}

/// `peer add`: keys, address, gw.toml entry, client file, QR code, live apply.
pub fn add(req: &AddRequest) -> anyhow::Result<AddOutcome> {
    check_name(&req.name).map_err(|e| anyhow::anyhow!(e))?;
    let text = read_gw_toml(&req.config)?;
    let cfg = parse_gw_toml(&text, &req.config)?;
    if cfg
        .peers
        .iter()
        .any(|p| p.name.as_deref() == Some(&req.name))
    {
        bail!(
            "{}: a peer named {:?} exists already; remove it first (dataplane peer remove {}) or pick another name",
            req.config.display(),
            req.name,
            req.name
        );
    }
    let addresses =
        peer_addresses(&cfg).map_err(|e| anyhow::anyhow!("{}: {e}", req.config.display()))?;
    let endpoint = match &req.server_url {
        Some(url) => client_conf::endpoint(url, cfg.interface.listen_port),
        None => wan_address(&cfg)
            .map(|a| std::net::SocketAddr::new(a, cfg.interface.listen_port).to_string()),
    }
    .map_err(|e| anyhow::anyhow!(e))?;

    let private = PrivateKey::generate(&mut OsRng);
    let public = private.public_key();
    let psk = PresharedKey::generate(&mut OsRng);

    let mut doc = GwTomlDoc::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    doc.add_peer(&NewPeer {
        name: req.name.clone(),
        public_key: public.to_base64(),
        preshared_key: Some(psk.to_base64()),
        allowed_ips: addresses.clone(),
        comment: Some(format!("{}: added by `dataplane peer add`", req.name)),
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", req.config.display()))?;
    let edited = doc.to_text();
    parse_gw_toml(&edited, &req.config)
        .context("the edited file would not load; nothing written")?;

    let conf = ClientConf {
        private_key: private.to_base64(),
        address: addresses.clone(),
        dns: req.dns.clone(),
        gateway_public_key: cfg.interface.public_key().to_base64(),
        preshared_key: Some(psk.to_base64()),
        endpoint,
        allowed_ips: if req.allowed_ips.is_empty() {
            client_conf::default_allowed_ips(&cfg.interface.address)
        } else {
            req.allowed_ips.clone()
        },
        persistent_keepalive: req.persistent_keepalive,
    };
    let conf_text = conf.render();
    let code = qr::encode(&conf_text).map_err(|e| anyhow::anyhow!(e))?;
    fs::create_dir_all(&req.out_dir)
        .with_context(|| format!("cannot create {}", req.out_dir.display()))?;
    let conf_path = req.out_dir.join(format!("{}.conf", req.name));
    let png_path = req.out_dir.join(format!("{}.png", req.name));
    // Both files hold the client's private key.
    write_atomically(&conf_path, conf_text.as_bytes(), 0o600)?;
    let mut png = Vec::new();
    qr::write_png(&code, &mut png).map_err(|e| anyhow::anyhow!(e))?;
    write_atomically(&png_path, &png, 0o600)?;
    write_config(&req.config, &edited)?;
    tracing::info!(peer = %req.name, addresses = ?addresses, public_key = %public.to_base64(), config = %req.config.display(), "peer added to the config");

    let socket = uapi_socket_for(req.uapi_socket.as_deref(), &cfg);
    let live = Live::apply(&socket, &gateway_key(&cfg), |uapi| {
        uapi.set_peer(&PeerSet {
            public_key: &public,
            preshared_key: Some(&psk),
            allowed_ips: &addresses,
        })
    });
    Ok(AddOutcome {
        addresses,
        public_key: public.to_base64(),
        conf_path,
        png_path,
        conf_text,
        qr_text: qr::to_terminal(&code),
        live,
    })
}

/// A new peer's tunnel addresses: the next free one of each subnet of `[interface] address`
/// (IPv4 first), as a host prefix (/32, /128). Taken are the gateway's own addresses and every
/// peer's AllowedIPs.
fn peer_addresses(cfg: &GatewayConfig) -> Result<Vec<IpNet>, String> {
    // The loader made sure of one IPv4 subnet and at most one IPv6 one.
    let mut own = cfg.interface.address.clone();
    own.sort_by_key(|n| n.addr().is_ipv6());
    let mut used: Vec<IpNet> = own.iter().map(|a| IpNet::from(a.addr())).collect();
    used.extend(cfg.peers.iter().flat_map(|p| p.allowed_ips.iter().copied()));
    own.iter()
        .map(|subnet| {
            gw_edit::next_free_address(*subnet, &used)
                .map(IpNet::from)
                .ok_or_else(|| {
                    format!(
                        "no free address left in {} (every one is the gateway's or in a peer's allowed_ips); widen [interface] address",
                        subnet.trunc()
                    )
                })
        })
        .collect()
}

/// Names for `peer add --count N`: `peer1`, `peer2`, ... as the linuxserver container names its
/// PEERS=N, skipping numbers the config already uses.
pub fn numbered_names(config: &Path, count: usize) -> anyhow::Result<Vec<String>> {
    let text = read_gw_toml(config)?;
    let cfg = parse_gw_toml(&text, config)?;
    let taken: Vec<&str> = cfg.peers.iter().filter_map(|p| p.name.as_deref()).collect();
    Ok((1..)
        .map(|n| format!("peer{n}"))
        .filter(|n| !taken.contains(&n.as_str()))
        .take(count)
        .collect())
}

/// Checks every name of a multi-name `peer add` before any is added, so a bad one in the list
/// leaves the config as it was.
pub fn check_new_names(config: &Path, names: &[String]) -> anyhow::Result<()> {
    let text = read_gw_toml(config)?;
    let cfg = parse_gw_toml(&text, config)?;
    for (i, name) in names.iter().enumerate() {
        check_name(name).map_err(|e| anyhow::anyhow!(e))?;
        if names[..i].contains(name) {
            bail!("peer name {name:?} is given twice; each peer needs its own name");
        }
        if cfg.peers.iter().any(|p| p.name.as_deref() == Some(name)) {
            bail!(
                "{}: a peer named {name:?} exists already; nothing added (show it with `dataplane peer show {name}`)",
                config.display()
            );
        }
    }
    Ok(())
}

/// What [`show`] found.
#[derive(Debug)]
pub struct ShowOutcome {
    pub conf_path: PathBuf,
    pub conf_text: String,
    pub qr_text: String,
}

/// `peer show`: the client file `peer add` wrote, and its QR code again. The client's private
/// key is only in that file (the gateway never needs it), so nothing else can rebuild it.
pub fn show(config: &Path, name: &str, out_dir: &Path) -> anyhow::Result<ShowOutcome> {
    check_name(name).map_err(|e| anyhow::anyhow!(e))?;
    let conf_path = out_dir.join(format!("{name}.conf"));
    let conf_text = match fs::read_to_string(&conf_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = read_gw_toml(config)?;
            let cfg = parse_gw_toml(&text, config)?;
            let known = cfg.peers.iter().any(|p| p.name.as_deref() == Some(name));
            bail!(
                "{} does not exist{}; the client's private key lives only in that file, so it cannot be shown again. Pass --out-dir if `peer add` wrote it elsewhere, or replace the peer: dataplane peer remove {name} && dataplane peer add {name}",
                conf_path.display(),
                if known {
                    format!(" ({name} is in {})", config.display())
                } else {
                    format!(" and {} has no peer named {name:?}", config.display())
                }
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", conf_path.display())),
    };
    let code = qr::encode(&conf_text).map_err(|e| anyhow::anyhow!(e))?;
    Ok(ShowOutcome {
        conf_path,
        qr_text: qr::to_terminal(&code),
        conf_text,
    })
}

/// What [`remove`] did.
#[derive(Debug)]
pub struct RemoveOutcome {
    pub public_key: String,
    /// The client files deleted (NAME.conf, NAME.png).
    pub removed_files: Vec<PathBuf>,
    pub live: Live,
}

/// `peer remove`: from gw.toml, from the running gateway, and its client files.
/// `out_dir` is where `peer add` wrote NAME.conf and NAME.png; they are deleted.
pub fn remove(
    config: &Path,
    name: &str,
    uapi_socket: Option<&Path>,
    out_dir: &Path,
) -> anyhow::Result<RemoveOutcome> {
    let text = read_gw_toml(config)?;
    let cfg = parse_gw_toml(&text, config)?;
    let peer = cfg
        .peers
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .with_context(|| {
            let names: Vec<&str> = cfg.peers.iter().filter_map(|p| p.name.as_deref()).collect();
            format!(
                "{}: no peer named {name:?}; named peers: {}",
                config.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })?;
    let key = PublicKey::from_bytes(*peer.public_key.bytes());
    let mut doc = GwTomlDoc::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    doc.remove_peer(name);
    let edited = doc.to_text();
    parse_gw_toml(&edited, config).context("the edited file would not load; nothing written")?;
    write_config(config, &edited)?;
    tracing::info!(peer = %name, config = %config.display(), "peer removed from the config");
    // The client files hold the client's private key: a removed peer's go with it.
    let mut removed_files = Vec::new();
    for ext in ["conf", "png"] {
        let f = out_dir.join(format!("{name}.{ext}"));
        match fs::remove_file(&f) {
            Ok(()) => removed_files.push(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!(
                "peer {name} is removed from {}, but its client file {} (it holds the client's private key) could not be deleted: {e}; delete it by hand",
                config.display(),
                f.display()
            ),
        }
    }
    let socket = uapi_socket_for(uapi_socket, &cfg);
    let live = Live::apply(&socket, &gateway_key(&cfg), |uapi| uapi.remove_peer(&key));
    Ok(RemoveOutcome {
        public_key: key.to_base64(),
        removed_files,
        live,
    })
}

/// One row of `peer list`.
#[derive(Debug, Clone)]
pub struct PeerRow {
    pub name: Option<String>,
    pub public_key: String,
    pub allowed_ips: Vec<IpNet>,
    /// From the running gateway, when one answers.
    pub live: Option<LivePeer>,
}

/// `peer list`: the config's peers, joined with the running gateway's view. The second value
/// says why live data is missing (no gateway, or an error).
pub fn list(
    config: &Path,
    uapi_socket: Option<&Path>,
) -> anyhow::Result<(Vec<PeerRow>, Option<String>)> {
    let text = read_gw_toml(config)?;
    let cfg = parse_gw_toml(&text, config)?;
    let uapi_socket = &uapi_socket_for(uapi_socket, &cfg);
    let uapi = UapiClient::new(uapi_socket);
    let own = gateway_key(&cfg);
    // Another gateway's peers are not this file's: show no live data rather than mix them in.
    let (live, why) = match uapi.device_public_key() {
        Ok(Some(k)) if k.as_bytes() == own.as_bytes() => match uapi.peers() {
            Ok(p) => (p, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        Ok(running) => (
            Vec::new(),
            Some(format!(
                "the gateway on {} runs another config (public key {}, this file's is {})",
                uapi_socket.display(),
                running.map_or("(none)".to_string(), |k| k.to_base64()),
                own.to_base64()
            )),
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let mut rows: Vec<PeerRow> = cfg
        .peers
        .iter()
        .map(|p| {
            let key = p.public_key.to_base64();
            PeerRow {
                name: p.name.clone(),
                live: live.iter().find(|l| l.public_key == key).cloned(),
                public_key: key,
                allowed_ips: p.allowed_ips.clone(),
            }
        })
        .collect();
    // Peers the gateway has but the file does not (set by `wg set`, or a file edited since).
    for l in &live {
        if !rows.iter().any(|r| r.public_key == l.public_key) {
            rows.push(PeerRow {
                name: None,
                public_key: l.public_key.clone(),
                allowed_ips: l.allowed_ips.clone(),
                live: Some(l.clone()),
            });
        }
    }
    Ok((rows, why))
}

/// `peer list` as text, in `wg show`'s words.
pub fn render_list(rows: &[PeerRow], now: SystemTime) -> String {
    let mut s = String::new();
    for r in rows {
        let ips: Vec<String> = r.allowed_ips.iter().map(|n| n.to_string()).collect();
        s.push_str(&format!(
            "peer {}\n  public key: {}\n  allowed ips: {}\n",
            r.name.as_deref().unwrap_or("(unnamed)"),
            r.public_key,
            if ips.is_empty() {
                "(none)".into()
            } else {
                ips.join(", ")
            }
        ));
        if let Some(l) = &r.live {
            if let Some(e) = l.endpoint {
                s.push_str(&format!("  endpoint: {e}\n"));
            }
            match l.last_handshake {
                Some(t) => s.push_str(&format!(
                    "  latest handshake: {}\n",
                    ago(now.duration_since(t).unwrap_or_default())
                )),
                None => s.push_str("  latest handshake: never\n"),
            }
            s.push_str(&format!(
                "  transfer: {} received, {} sent\n",
                bytes(l.rx_bytes),
                bytes(l.tx_bytes)
            ));
        }
        s.push('\n');
    }
    s
}

fn read_gw_toml(path: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (create one with `dataplane init --config {}`)",
            path.display(),
            path.display()
        )
    })?;
    if Format::detect(path, &text) == Format::WgQuick {
        bail!(
            "{} is a wg-quick file; peers are managed in gw.toml. Convert it first: dataplane import {} > gw.toml",
            path.display(),
            path.display()
        );
    }
    Ok(text)
}

/// Loads gw.toml text with the gateway's own loader (file checks only, not this host's).
fn parse_gw_toml(text: &str, path: &Path) -> anyhow::Result<GatewayConfig> {
    let opts = LoadOptions {
        host: HostFacts::unknown(),
        interfaces: None,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    gwconf::load_str(
        text,
        &path.display().to_string(),
        base,
        Format::GwToml,
        "wg0",
        &opts,
    )
    .map(|l| l.config)
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The public key of the gateway `cfg` configures.
fn gateway_key(cfg: &GatewayConfig) -> PublicKey {
    PublicKey::from_bytes(*cfg.interface.public_key().bytes())
}

/// The default client endpoint (SERVERURL=auto): the WAN interface's primary IPv4 address, or
/// on an IPv6-only WAN its first address others route to (not link-local).
fn wan_address(cfg: &GatewayConfig) -> Result<std::net::IpAddr, String> {
    let wan = cfg.dataplane.interfaces.wan();
    let hint = "pass --server-url with the address or name clients reach the gateway at";
    let mut rtnl = crate::route::Rtnl::open().map_err(|e| format!("rtnetlink: {e}; {hint}"))?;
    let link = rtnl
        .link_by_name(wan)
        .map_err(|e| format!("rtnetlink: {e}; {hint}"))?
        .ok_or_else(|| format!("no interface {wan:?} on this host; {hint}"))?;
    let addresses = rtnl
        .addresses()
        .map_err(|e| format!("rtnetlink: {e}; {hint}"))?;
    let ipv6 = || {
        addresses.iter().find_map(|a| match a.addr {
            std::net::IpAddr::V6(v6)
                if a.ifindex == link.index && gwconf::values::ipv6_not_routed(v6).is_none() =>
            {
                Some(a.addr)
            }
            _ => None,
        })
    };
    crate::route::primary_ipv4_of(&addresses, link.index)
        .map(std::net::IpAddr::V4)
        .or_else(ipv6)
        .ok_or_else(|| format!("{wan} has no IPv4 address and no routed IPv6 address; {hint}"))
}

/// Where client files go by default: `peers/` beside the config, wherever the command runs.
pub fn default_out_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("peers")
}

/// The file an edit of `config` must replace: the target when `config` is a symbolic link (an
/// operator's `gw.toml -> /etc/...`), so the link stays a link.
fn edit_target(config: &Path) -> anyhow::Result<PathBuf> {
    let is_link = fs::symlink_metadata(config)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    if !is_link {
        return Ok(config.to_path_buf());
    }
    fs::canonicalize(config).with_context(|| {
        format!(
            "{} is a symbolic link that does not resolve",
            config.display()
        )
    })
}

/// Writes the edited config through any symbolic link, keeping the target's mode.
fn write_config(config: &Path, text: &str) -> anyhow::Result<()> {
    let target = edit_target(config)?;
    write_atomically(&target, text.as_bytes(), mode_of(&target))
}

/// The permission bits of `path`, 0600 when it does not exist.
fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600)
}

/// Replaces `path` with `data`: a temporary file beside it, fsync, rename. Readers see the old
/// or the new file, never half of one. A file that exists keeps its owner and group: root editing
/// the gw.toml of `dataplane@.service` must leave it readable by the service user.
fn write_atomically(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let owner = fs::metadata(path).ok().map(|m| (m.uid(), m.gid()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.dataplane-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            let now = f.metadata()?;
            if (now.uid(), now.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        // As root (the CI run), hand the file to another user as the service's config would be.
        let root = fs::metadata(&path).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
        let before = fs::metadata(&path).unwrap();
        write_atomically(&path, b"new", mode_of(&path)).unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(after.permissions().mode() & 0o7777, 0o600);
        if root {
            assert_eq!(after.uid(), 65534);
        }
    }

    #[test]
    fn names() {
        assert!(check_name("peer1").is_ok());
        assert!(check_name("alice-phone.2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name("sixteen-chars-xx").is_err());
        assert!(check_name("with space").is_err());
    }
}
