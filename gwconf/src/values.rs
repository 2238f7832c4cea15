//! Parsers for single configuration values, shared by the gw.toml loader and the wg-quick
//! importer. Each error message says what was found and what is allowed.

use super::types::{Endpoint, PortRange};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// An interface address such as `10.13.13.1/24`; a bare address means a host route (`/32`,
/// `/128`), as wg-quick's `Address`.
pub fn interface_address(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(addr) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    Err(format!(
        "{text:?} is not an interface address; expected e.g. 10.13.13.1/24"
    ))
}

/// An AllowedIPs entry: a network with its host bits zero, e.g. `10.13.13.2/32`. A bare address
/// means that one host. Host bits set is refused rather than silently truncated, because it
/// usually means a typo (`10.13.13.5/24` routes the whole /24 to this peer).
pub fn allowed_ip(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    let net = match t.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match t.parse::<IpAddr>() {
            Ok(addr) => IpNet::from(addr),
            Err(_) => return Err(prefix_problem(text, "10.13.13.2/32")),
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set; expected a network such as {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Why `text` is not an IP prefix, in words. A prefix length out of range is named as such;
/// anything else is "not an IP prefix" with `example`.
pub fn prefix_problem(text: &str, example: &str) -> String {
    let generic = format!("{text:?} is not an IP prefix; expected e.g. {example}");
    let Some((addr, len)) = text.trim().split_once('/') else {
        return generic;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return generic;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(n) if n > max => format!(
            "{text:?}: prefix length /{n} is more than {max}, the length of an {} address; expected e.g. {example}",
            if addr.is_ipv4() { "IPv4" } else { "IPv6" }
        ),
        _ => format!("{text:?}: {len:?} is not a prefix length; expected 0-{max}, e.g. {example}"),
    }
}

/// An IPv4 prefix for a command-line flag (`init --subnet`): IPv6 is named as unsupported
/// rather than called bad syntax.
pub fn ipv4_subnet(text: &str) -> Result<ipnet::Ipv4Net, String> {
    match text.trim().parse::<IpNet>() {
        Ok(IpNet::V4(n)) => Ok(n),
        Ok(IpNet::V6(_)) => Err(format!(
            "{text:?} is an IPv6 subnet; the tunnel is IPv4 only for now: use an IPv4 subnet such as 10.13.13.0/24"
        )),
        Err(_) => Err(prefix_problem(text, "10.13.13.0/24")),
    }
}

/// Why IPv6 `addr` is not an address other hosts route to (so it cannot be a tunnel or NAT
/// address), as "is ..." words; `None`: it is.
pub fn ipv6_not_routed(addr: Ipv6Addr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("is the unspecified address")
    } else if addr.is_loopback() {
        Some("is the loopback address")
    } else if addr.is_multicast() {
        Some("is a multicast address")
    } else if addr.segments()[0] & 0xffc0 == 0xfe80 {
        Some("is link-local (fe80::/10), which is not routed beyond one link")
    } else if addr.to_ipv4_mapped().is_some() {
        Some("is an IPv4-mapped address (::ffff:a.b.c.d)")
    } else {
        None
    }
}

/// `[nat] address_ipv6`: an IPv6 address other hosts can answer ([`ipv6_not_routed`]).
pub fn nat_address_ipv6(text: &str) -> Result<Ipv6Addr, String> {
    let expect = crate::schema::NAT.field("address_ipv6").expect;
    let t = text.trim();
    let addr = match t.parse::<Ipv6Addr>() {
        Ok(a) => a,
        Err(_) if t.parse::<std::net::Ipv4Addr>().is_ok() => {
            return Err(format!(
                "{text:?} is an IPv4 address; an IPv4 egress address is nat.address; {expect}"
            ))
        }
        Err(_) => return Err(format!("{text:?} is not an IPv6 address; {expect}")),
    };
    match ipv6_not_routed(addr) {
        Some(why) => Err(format!("{text:?} {why}; {expect}")),
        None => Ok(addr),
    }
}

/// A peer endpoint `host:port`: an IPv4 address, a bracketed IPv6 address or a host name.
pub fn endpoint(text: &str) -> Result<Endpoint, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "{text:?} is not host:port; expected e.g. \"198.51.100.7:51820\", \"[2001:db8::1]:51820\" or \"vpn.example.org:51820\""
        )
    };
    if let Ok(addr) = t.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("{text:?} has port 0; expected a port 1-65535"));
        }
        return Ok(Endpoint::Addr(addr));
    }
    let (host, port) = t.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(format!("{text:?} has port 0; expected a port 1-65535"));
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !host_ok {
        return Err(bad());
    }
    Ok(Endpoint::Host {
        host: host.to_string(),
        port,
    })
}

/// `LOW-HIGH`, both within 1024-65535, `LOW <= HIGH`.
pub fn port_range(text: &str) -> Result<PortRange, String> {
    let bad = || {
        format!("{text:?} is not a port range; expected \"LOW-HIGH\" within 1024-65535, e.g. \"61000-65535\"")
    };
    let (lo, hi) = text.trim().split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi || lo < super::schema::defaults::NAT_PORT_FLOOR {
        return Err(bad());
    }
    Ok(PortRange { lo, hi })
}

/// Why `text` is not a Linux interface name, as the kernel's `dev_valid_name` decides: 1-15
/// bytes (IFNAMSIZ - 1), not "." or "..", no '/', ':', whitespace or NUL. `None`: valid.
fn ifname_problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        Some("is empty")
    } else if text.len() > 15 {
        Some("is longer than 15 bytes (Linux IFNAMSIZ - 1)")
    } else if text == "." || text == ".." {
        Some("is a directory name (\".\" and \"..\" are not allowed)")
    } else if text.contains('/') {
        Some("contains '/'")
    } else if text.contains(':') {
        Some("contains ':' (an alias separator)")
    } else if text.chars().any(|c| c.is_whitespace() || c == '\0') {
        Some("contains whitespace or a NUL byte")
    } else {
        None
    }
}

/// A Linux interface name (a NIC): see [`ifname_problem`].
pub fn interface_name(text: &str) -> Result<String, String> {
    match ifname_problem(text) {
        None => Ok(text.to_string()),
        Some(why) => Err(format!(
            "{text:?} is not an interface name: it {why}; expected an interface name of 1-15 characters without '/', ':' or spaces, e.g. \"eth0\""
        )),
    }
}

/// The name of the tunnel device the gateway creates (`wg0`): a Linux interface name. It also
/// names the UAPI socket (`/var/run/wireguard/NAME.sock`) and the default control socket.
pub fn device_name(text: &str) -> Result<String, String> {
    match ifname_problem(text) {
        None => Ok(text.to_string()),
        Some(why) => Err(format!(
            "{text:?} is not an interface name: it {why}; {}",
            crate::schema::INTERFACE.field("name").expect
        )),
    }
}

/// Longest peer name: the client file is `NAME.conf`, and wg-quick takes the interface name
/// from the file name (Linux IFNAMSIZ - 1).
pub const PEER_NAME_MAX: usize = 15;

/// A peer name, usable as a wg-quick interface name so `wg-quick up ./NAME.conf` works on the
/// client: 1-15 of `A-Z a-z 0-9 _ = + . -` (wg-quick's own rule).
pub fn peer_name(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= PEER_NAME_MAX
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_=+.-".contains(c))
        && text != "."
        && text != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a peer name; expected 1-{PEER_NAME_MAX} characters of A-Z a-z 0-9 _ = + . - (it names the client's wg-quick file), e.g. peer1 or alice-phone"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_errors_say_what_is_wrong() {
        let e = |t| prefix_problem(t, "10.0.0.0/8");
        assert!(e("10.0.0.0/33").contains("/33 is more than 32"));
        assert!(e("::/129").contains("/129 is more than 128"));
        assert_eq!(
            e("10.0.0.300/24"),
            "\"10.0.0.300/24\" is not an IP prefix; expected e.g. 10.0.0.0/8"
        );
        assert!(e("10.0.0.0/x").contains("not a prefix length"));
        assert!(allowed_ip("10.0.0.0/33")
            .unwrap_err()
            .contains("more than 32"));
        assert!(ipv4_subnet("fd00:13::/64").unwrap_err().contains("IPv6"));
        assert!(ipv4_subnet("10.0.0.0/33")
            .unwrap_err()
            .contains("more than 32"));
        assert_eq!(
            ipv4_subnet("10.13.13.0/24").unwrap().to_string(),
            "10.13.13.0/24"
        );
    }

    #[test]
    fn nat_ipv6_addresses() {
        assert_eq!(
            nat_address_ipv6("2001:db8::3").unwrap(),
            "2001:db8::3".parse::<Ipv6Addr>().unwrap()
        );
        assert!(nat_address_ipv6("fd00:23::3").is_ok());
        for (bad, why) in [
            (
                "172.23.0.3",
                "is an IPv4 address; an IPv4 egress address is nat.address",
            ),
            ("2001:db8::g", "is not an IPv6 address"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("ff02::1", "multicast"),
            ("fe80::1", "link-local"),
            ("::ffff:172.23.0.3", "IPv4-mapped"),
        ] {
            let e = nat_address_ipv6(bad).unwrap_err();
            assert!(
                e.contains(why) && e.contains("e.g. \"2001:db8::3\""),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn peer_names() {
        assert!(peer_name("peer1").is_ok());
        assert!(peer_name("alice-phone.2").is_ok());
        assert!(peer_name("fifteen-chars-x").is_ok());
        for bad in ["", "a/b", "..", "sixteen-chars-xx", "with space", "ü"] {
            let e = peer_name(bad).unwrap_err();
            assert!(e.contains("1-15 characters"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn allowed_ips_are_canonical_networks() {
        assert_eq!(
            allowed_ip("10.13.13.2/32").unwrap().to_string(),
            "10.13.13.2/32"
        );
        assert_eq!(
            allowed_ip("10.13.13.2").unwrap().to_string(),
            "10.13.13.2/32"
        );
        assert_eq!(allowed_ip("::/0").unwrap().to_string(), "::/0");
        let e = allowed_ip("10.0.0.300/32").unwrap_err();
        assert!(
            e.contains("is not an IP prefix") && e.contains("10.13.13.2/32"),
            "{e}"
        );
        let e = allowed_ip("10.13.13.5/24").unwrap_err();
        assert!(e.contains("10.13.13.0/24"), "{e}");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("172.16.1.55:51820").unwrap(),
            Endpoint::Addr("172.16.1.55:51820".parse().unwrap())
        );
        assert_eq!(
            endpoint("[2001:db8::1]:51820").unwrap(),
            Endpoint::Addr("[2001:db8::1]:51820".parse().unwrap())
        );
        assert_eq!(
            endpoint("vpn.example.org:51820").unwrap(),
            Endpoint::Host {
                host: "vpn.example.org".into(),
                port: 51820
            }
        );
        assert!(endpoint("172.16.1.55").is_err());
        assert!(endpoint("1.2.3.4:0").is_err());
        assert!(endpoint("bad host:1").is_err());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            port_range("61000-65535").unwrap(),
            PortRange {
                lo: 61000,
                hi: 65535
            }
        );
        assert!(port_range("65535-61000").is_err());
        assert!(port_range("80-90").is_err());
        assert!(port_range("61000").is_err());
    }

    #[test]
    fn interface_names() {
        assert!(interface_name("eth0").is_ok());
        assert!(interface_name("a-very-long-name0").is_err());
        assert!(interface_name("eth 0").is_err());
        assert!(interface_name("").is_err());
        assert!(interface_name("eth0:1").is_err());
    }
}
