//! The gateway configuration: the gw.toml schema, its loader and validation, the wg-quick
//! (`wg0.conf`) importer, and the typed [`GatewayConfig`] the rest of the program consumes.
//!
//! Both the run path and `dataplane check` call [`load`]; there is no second validator. Errors
//! name the file, the line and the field and say what is allowed:
//!
//! ```text
//! gw.toml:7: peer[1].allowed_ips[0]: "10.0.0.300/32" is not an IP prefix; expected e.g. 10.13.13.2/32
//! ```
//!
//! This crate reads files and, through [`HostFacts::read`], a few facts of the host; it never
//! changes the system.

#![forbid(unsafe_code)]

pub mod client_conf;
pub mod edit;
mod error;
mod gw_toml;
pub mod init;
pub mod keys;
pub mod reload;
mod render;
pub mod schema;
mod types;
mod validate;
pub mod values;
mod wg_quick;

pub use error::{ConfigError, ConfigErrors, Locations};
pub use types::*;
pub use validate::{parse_local_port_range, HostFacts};

use std::path::Path;

/// A loaded config, the notes to show the operator (e.g. which wg-quick hooks were replaced)
/// and the warnings (e.g. a key file others can read) that do not stop it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: GatewayConfig,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// The two accepted file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The data plane's own gw.toml.
    GwToml,
    /// A wg-quick `wg0.conf` (`[Interface]`, `[Peer]`, CamelCase keys).
    WgQuick,
}

impl Format {
    /// By extension (`.toml`, `.conf`), else by content: a wg-quick file opens with
    /// `[Interface]` or `[Peer]` (capitalised, as wg-quick writes them).
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => return Format::GwToml,
            Some("conf") => return Format::WgQuick,
            _ => {}
        }
        let first = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .find(|l| !l.is_empty());
        match first {
            Some(l) if l.starts_with("[Interface]") || l.starts_with("[Peer]") => Format::WgQuick,
            _ => Format::GwToml,
        }
    }
}

/// Options of [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Host facts to check against ([`HostFacts::unknown`] checks the file alone).
    pub host: HostFacts,
    /// For wg-quick files: the NIC(s) to attach to, instead of the one inferred from the
    /// MASQUERADE rule.
    pub interfaces: Option<Interfaces>,
}

/// Reads, parses and fully validates a config file of either format.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let file = path.display().to_string();
    // The file holds the private key (unless private_key_file is used): wiped when dropped.
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: None,
            field: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })?);
    let format = Format::detect(path, &text);
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let ifname = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && format == Format::WgQuick)
        .unwrap_or(schema::defaults::DEVICE_NAME);
    let mut loaded = load_str(&text, &file, base_dir, format, ifname, opts)?;
    let mut secrets = vec![path.to_path_buf()];
    secrets.extend(loaded.config.interface.private_key_file.clone());
    loaded
        .warnings
        .extend(secrets.iter().filter_map(|p| readable_by_others(p)));
    Ok(loaded)
}

/// A warning when the file at `path` (which holds a private key) can be read or written by
/// users other than its owner, as wg-quick warns about a world-accessible wg0.conf.
fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is accessible to other users (mode {mode:03o}) and holds a private key; \
             chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

/// [`load`] on text already read. `file` names the file in errors; `base_dir` resolves a
/// relative `private_key_file`; `ifname` is substituted for `%i` in wg-quick hooks.
pub fn load_str(
    text: &str,
    file: &str,
    base_dir: &Path,
    format: Format,
    ifname: &str,
    opts: &LoadOptions,
) -> Result<Loaded, ConfigErrors> {
    let (loaded, loc) = match format {
        Format::GwToml => gw_toml::parse(text, file, base_dir)?,
        Format::WgQuick => wg_quick::parse(text, file, ifname, opts.interfaces.as_ref())?,
    };
    let mut sink = error::ErrorSink::new(file);
    validate::check(&loaded.config, &loc, &opts.host, &mut sink);
    sink.into_result(loaded)
}

/// The config as gw.toml text, with `header` lines as leading comments.
pub fn to_gw_toml(cfg: &GatewayConfig, header: &[String]) -> String {
    render::gw_toml(cfg, header)
}

impl InterfaceConfig {
    /// The gateway's public key, derived from the private key (Curve25519, whitepaper §5.4).
    pub fn public_key(&self) -> keys::PublicKey {
        let private = wgproto::keys::PrivateKey::from_bytes(*self.private_key.bytes());
        keys::PublicKey::from_bytes(*private.public_key().as_bytes())
    }

    /// The protocol core's view of `[interface]`.
    pub fn to_wgproto(&self) -> wgproto::config::InterfaceConfig {
        let mut c = wgproto::config::InterfaceConfig::new(wgproto::keys::PrivateKey::from_bytes(
            *self.private_key.bytes(),
        ));
        c.listen_port = self.listen_port;
        c.mtu = self.mtu;
        c
    }
}

impl PeerConfig {
    /// The protocol core's view of one `[[peer]]`. A host-name endpoint is resolved here (DNS),
    /// as wg-quick does when it loads a file.
    pub fn to_wgproto(&self) -> std::io::Result<wgproto::config::PeerConfig> {
        let mut p = wgproto::config::PeerConfig::new(wgproto::keys::PublicKey::from_bytes(
            *self.public_key.bytes(),
        ));
        p.preshared_key = self
            .preshared_key
            .as_ref()
            .map(|k| wgproto::keys::PresharedKey::from_bytes(*k.bytes()));
        p.allowed_ips = self
            .allowed_ips
            .iter()
            .map(|n| wgproto::config::IpPrefix::new_masked(n.addr(), n.prefix_len()))
            .collect();
        p.endpoint = self.endpoint.as_ref().map(Endpoint::resolve).transpose()?;
        p.persistent_keepalive = self.persistent_keepalive;
        Ok(p)
    }
}
