//! The operator's choice of AF_XDP mode (`zerocopy`, `copy`, `skb`, `auto`) and what it means
//! for the XDP attach mode and the socket bind flags, including `auto`'s fallbacks.

use std::fmt;
use std::str::FromStr;

use tracing::{info, warn};

use crate::xdp::{AttachMode, RedirectConfig, XdpError, XdpProgram};

/// The mode asked for in the configuration (`[dataplane] mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Driver-mode XDP and zero-copy sockets (NIC drivers with AF_XDP support: ice, i40e,
    /// mlx5, ...). Fails if the driver cannot.
    ZeroCopy,
    /// Driver-mode XDP, sockets copy frames into the UMEM (veth, virtio_net, most drivers).
    Copy,
    /// Generic (skb) XDP and copying sockets: works on any interface, slowest.
    Skb,
    /// Zero-copy if the driver can, else copy, else skb; the choice is logged.
    #[default]
    Auto,
}

impl Mode {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ZeroCopy => "zerocopy",
            Mode::Copy => "copy",
            Mode::Skb => "skb",
            Mode::Auto => "auto",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown mode name.
#[derive(Debug, thiserror::Error)]
#[error("unknown AF_XDP mode {0:?}; expected one of zerocopy, copy, skb, auto")]
pub struct ModeParseError(String);

impl FromStr for Mode {
    type Err = ModeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zerocopy" => Ok(Mode::ZeroCopy),
            "copy" => Ok(Mode::Copy),
            "skb" => Ok(Mode::Skb),
            "auto" => Ok(Mode::Auto),
            other => Err(ModeParseError(other.to_string())),
        }
    }
}

/// The mode a socket actually runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundMode {
    ZeroCopy,
    Copy,
    Skb,
}

impl BoundMode {
    /// Same spelling as [`Mode`].
    pub fn name(self) -> &'static str {
        match self {
            BoundMode::ZeroCopy => "zerocopy",
            BoundMode::Copy => "copy",
            BoundMode::Skb => "skb",
        }
    }
}

impl fmt::Display for BoundMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Attaches the XDP program to `ifname` in the attach mode `mode` needs. With [`Mode::Auto`]
/// driver mode is tried first and generic mode is the fallback (logged).
pub fn attach_program(
    ifname: &str,
    mode: Mode,
    config: &RedirectConfig,
) -> Result<XdpProgram, XdpError> {
    match mode {
        Mode::ZeroCopy | Mode::Copy => XdpProgram::attach(ifname, AttachMode::Driver, config),
        Mode::Skb => XdpProgram::attach(ifname, AttachMode::Generic, config),
        Mode::Auto => match XdpProgram::attach(ifname, AttachMode::Driver, config) {
            Ok(p) => Ok(p),
            Err(e @ XdpError::Attach { .. }) => {
                warn!(ifname, error = %e, "driver-mode XDP unavailable, falling back to generic (skb) mode");
                let p = XdpProgram::attach(ifname, AttachMode::Generic, config)?;
                info!(ifname, "XDP program attached in generic mode (auto)");
                Ok(p)
            }
            Err(e) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip_and_unknown_is_an_error() {
        for m in [Mode::ZeroCopy, Mode::Copy, Mode::Skb, Mode::Auto] {
            assert_eq!(m.name().parse::<Mode>().unwrap(), m);
        }
        let err = "fast".parse::<Mode>().unwrap_err().to_string();
        assert!(
            err.contains("\"fast\"") && err.contains("zerocopy"),
            "{err}"
        );
    }
}
