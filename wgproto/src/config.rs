//! Interface and peer configuration as the protocol core consumes it: the one schema that the
//! TOML config loader and the UAPI (`wg set`) both fill in, and that [`crate::device::Device`]
//! applies. It owns the IP prefix type ([`IpPrefix`]) used by AllowedIPs.
//!
//! Parsing here is for values (keys, prefixes); file formats and error locations belong to the
//! loaders.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::constants::{DEFAULT_LISTEN_PORT, DEFAULT_MTU};
use crate::keys::{PresharedKey, PrivateKey, PublicKey};

/// An IPv4 or IPv6 prefix with its host bits cleared (`10.0.0.0/8`, `fd00::/64`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixParseError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    BadAddress(String),
    /// The part after `/` is not a number within 0..=32 (IPv4) or 0..=128 (IPv6).
    BadLength { text: String, max: u8 },
}

impl fmt::Display for PrefixParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixParseError::BadAddress(s) => {
                write!(
                    f,
                    "`{s}` is not an IPv4 or IPv6 address (expected e.g. 10.0.0.0/8)"
                )
            }
            PrefixParseError::BadLength { text, max } => {
                write!(f, "prefix length `{text}` is not a number from 0 to {max}")
            }
        }
    }
}

impl std::error::Error for PrefixParseError {}

fn max_len(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl IpPrefix {
    /// The prefix `addr/len` with the host bits of `addr` cleared (as `wg` does with
    /// `10.0.0.1/8`) and `len` capped at the family's width.
    pub fn new_masked(addr: IpAddr, len: u8) -> Self {
        let len = len.min(max_len(&addr));
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        IpPrefix { addr, len }
    }

    /// A single host: /32 or /128.
    pub fn host(addr: IpAddr) -> Self {
        IpPrefix::new_masked(addr, max_len(&addr))
    }

    /// The network address (host bits are zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` lies inside this prefix (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                IpPrefix::new_masked(ip, self.len).addr == self.addr
            }
            _ => false,
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixParseError;

    /// `addr/len`, or a bare address meaning the single host. Host bits are masked off.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| PrefixParseError::BadAddress(addr_text.to_string()))?;
        let max = max_len(&addr);
        let len = match len_text {
            None => max,
            Some(t) => match t.parse::<u8>() {
                Ok(l) if l <= max && !t.starts_with('+') => l,
                _ => {
                    return Err(PrefixParseError::BadLength {
                        text: t.to_string(),
                        max,
                    })
                }
            },
        };
        Ok(IpPrefix::new_masked(addr, len))
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One peer (a `[Peer]` section, or one `public_key=` block of a UAPI set).
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub allowed_ips: Vec<IpPrefix>,
    /// Where to send handshakes before the peer has contacted us; replaced by the source of
    /// every authenticated packet (roaming, whitepaper §2).
    pub endpoint: Option<SocketAddr>,
    /// Seconds between keepalives sent regardless of traffic (0 or `None`: off).
    pub persistent_keepalive: Option<u16>,
}

impl PeerConfig {
    /// A peer with only its key set.
    pub fn new(public_key: PublicKey) -> Self {
        PeerConfig {
            public_key,
            preshared_key: None,
            allowed_ips: Vec::new(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }
}

/// The interface (an `[Interface]` section).
#[derive(Clone, Debug)]
pub struct InterfaceConfig {
    pub private_key: PrivateKey,
    pub listen_port: u16,
    /// Tunnel MTU: transport plaintext is padded up to a multiple of 16 but never beyond it.
    pub mtu: u16,
    /// Firewall mark for the outer packets (`fwmark`); carried for the UAPI, unused here.
    pub fwmark: Option<u32>,
}

impl InterfaceConfig {
    /// An interface with the default port and MTU.
    pub fn new(private_key: PrivateKey) -> Self {
        InterfaceConfig {
            private_key,
            listen_port: DEFAULT_LISTEN_PORT,
            mtu: DEFAULT_MTU,
            fwmark: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_mask_and_print() {
        let p: IpPrefix = "10.1.2.3/8".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert_eq!(
            "192.0.2.7".parse::<IpPrefix>().unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!("0.0.0.0/0".parse::<IpPrefix>().unwrap().len(), 0);
        assert_eq!(
            "fd00::1:2/64".parse::<IpPrefix>().unwrap().to_string(),
            "fd00::/64"
        );
        assert_eq!("::/0".parse::<IpPrefix>().unwrap().to_string(), "::/0");
        assert_eq!("2001:db8::1".parse::<IpPrefix>().unwrap().len(), 128);
        assert!(matches!(
            "10.0.0.0/33".parse::<IpPrefix>(),
            Err(PrefixParseError::BadLength { max: 32, .. })
        ));
        assert!(matches!(
            "::/129".parse::<IpPrefix>(),
            Err(PrefixParseError::BadLength { .. })
        ));
        assert!(matches!(
            "10.0.0/8".parse::<IpPrefix>(),
            Err(PrefixParseError::BadAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/+8".parse::<IpPrefix>(),
            Err(PrefixParseError::BadLength { .. })
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<IpPrefix>(),
            Err(PrefixParseError::BadLength { .. })
        ));
    }

    #[test]
    fn contains_respects_length_and_family() {
        let p: IpPrefix = "10.1.0.0/16".parse().unwrap();
        assert!(p.contains("10.1.255.1".parse().unwrap()));
        assert!(!p.contains("10.2.0.1".parse().unwrap()));
        assert!(!p.contains("::a01:1".parse().unwrap()));
        let all: IpPrefix = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert!(!all.contains("10.0.0.1".parse().unwrap()));
    }
}
