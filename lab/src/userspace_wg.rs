//! The user-space WireGuard implementations the lab runs as a `wg0` device (there is no kernel
//! module on the lab machines): wireguard-go (Debian package) and boringtun (`boringtun-cli`
//! from crates.io, which `dataplane/scripts/install-deps.sh` builds into `/opt/boringtun`).
//! The module owns which one is meant ([`ClientKind`]), where its executable is, and the
//! command line that runs it in the foreground with its UAPI socket at
//! `/var/run/wireguard/<ifname>.sock` (`/var/run` is `/run` on Debian, so the lab's private
//! `/run/wireguard` tmpfs covers both programs).
//!
//! Both speak the same UAPI, so configuration and probes (`wg setconf`, `wg show`) are the same
//! for either; only starting them differs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The boringtun-cli version the lab was tested with, and the one install-deps.sh pins.
pub const BORINGTUN_VERSION: &str = "0.7.1";

/// Where install-deps.sh installs boringtun-cli (`cargo install --root /opt/boringtun`).
pub const BORINGTUN_INSTALLED: &str = "/opt/boringtun/bin/boringtun-cli";

/// Environment variable naming another boringtun-cli executable (takes precedence).
pub const BORINGTUN_ENV: &str = "BORINGTUN_CLI";

/// Which WireGuard implementation runs a lab device (the client's `wg0`, or the reference
/// gateway's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// wireguard-go from Debian (`wireguard-go -f wg0`), the lab's default.
    #[default]
    WireguardGo,
    /// Cloudflare's boringtun (`boringtun-cli --foreground --disable-drop-privileges wg0`).
    Boringtun,
}

impl ClientKind {
    /// A short name for logs and reports (`wireguard-go`, `boringtun`).
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::WireguardGo => "wireguard-go",
            ClientKind::Boringtun => "boringtun",
        }
    }

    /// The executable, or why it cannot be found (with what to do about it).
    pub fn program(self) -> Result<PathBuf> {
        match self {
            ClientKind::WireguardGo => find_in_path("wireguard-go").ok_or_else(|| {
                anyhow::anyhow!(
                    "wireguard-go not found in PATH (apt-get install wireguard-go, or run \
                         dataplane/scripts/install-deps.sh as root)"
                )
            }),
            ClientKind::Boringtun => match boringtun_binary() {
                Some(p) => Ok(p),
                None => bail!(
                    "boringtun-cli not found (${BORINGTUN_ENV}, {BORINGTUN_INSTALLED}, PATH); \
                     install it with dataplane/scripts/install-deps.sh as root, or \
                     `cargo install --locked --version ={BORINGTUN_VERSION} --root /opt/boringtun \
                     boringtun-cli`"
                ),
            },
        }
    }

    /// The command line (after the lab's private-UAPI wrapper) that runs device `ifname` in the
    /// foreground, so the lab owns the process, its pid and its output.
    pub(crate) fn argv(self, ifname: &str) -> Result<Vec<String>> {
        let program = self.program()?;
        Ok(self.argv_with(&program.to_string_lossy(), ifname))
    }

    fn argv_with(self, program: &str, ifname: &str) -> Vec<String> {
        let mut argv = vec![program.to_owned()];
        match self {
            ClientKind::WireguardGo => argv.push("-f".into()),
            // Without --disable-drop-privileges boringtun switches to the getlogin() user after
            // creating the TUN device, and exits when (as under the test harness) there is no
            // login session. `--verbosity info` logs handshakes and errors to stdout, i.e. the
            // lab's log of the process.
            ClientKind::Boringtun => argv.extend(
                [
                    "--foreground",
                    "--disable-drop-privileges",
                    "--verbosity",
                    "info",
                ]
                .map(String::from),
            ),
        }
        argv.push(ifname.to_owned());
        argv
    }
}

/// The boringtun-cli to use: `$BORINGTUN_CLI`, else [`BORINGTUN_INSTALLED`], else
/// `boringtun-cli` in `PATH`. `None` when there is none.
pub fn boringtun_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BORINGTUN_ENV) {
        let p = PathBuf::from(p);
        return is_executable(&p).then_some(p);
    }
    let installed = Path::new(BORINGTUN_INSTALLED);
    if is_executable(installed) {
        return Some(installed.to_owned());
    }
    find_in_path("boringtun-cli")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_wireguard_go_and_names_differ() {
        assert_eq!(ClientKind::default(), ClientKind::WireguardGo);
        assert_ne!(ClientKind::WireguardGo.name(), ClientKind::Boringtun.name());
    }

    #[test]
    fn executables_are_told_from_plain_files() {
        let dir = std::env::temp_dir().join(format!("wlab-exe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!is_executable(&f));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(is_executable(&f));
        assert!(!is_executable(&dir), "a directory is not a program");
        assert!(!is_executable(&dir.join("absent")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn both_run_in_the_foreground_and_boringtun_keeps_root() {
        let go = ClientKind::WireguardGo.argv_with("/usr/bin/wireguard-go", "wg0");
        assert_eq!(go, ["/usr/bin/wireguard-go", "-f", "wg0"]);
        let bt = ClientKind::Boringtun.argv_with("/opt/boringtun/bin/boringtun-cli", "wg9");
        assert_eq!(
            bt.first().map(String::as_str),
            Some("/opt/boringtun/bin/boringtun-cli")
        );
        for flag in ["--foreground", "--disable-drop-privileges"] {
            assert!(bt.iter().any(|a| a == flag), "{bt:?}");
        }
        assert_eq!(bt.last().map(String::as_str), Some("wg9"));
    }
}
