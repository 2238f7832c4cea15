//! `dataplane init`: a new gateway key and a commented gw.toml to start from. The comments
//! explain each key in the operator's terms (the article's wg0.conf, iptables MASQUERADE);
//! the defaults are the schema's ([`crate::schema::defaults`]).

use std::fmt::Write as _;

use ipnet::{IpNet, Ipv4Net};

use crate::schema::defaults;

/// What `init` asks for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The NIC WireGuard arrives on and NATed traffic leaves by (one-armed).
    pub interface: String,
    /// The tunnel device (`[interface] name`, default wg0).
    pub name: String,
    /// The tunnel subnet; the gateway takes its first address.
    pub subnet: Ipv4Net,
    pub listen_port: u16,
}

/// The gateway's own `wg0` address in `subnet`: its first host address, with the subnet's
/// prefix (10.13.13.0/24 -> 10.13.13.1/24, as the linuxserver container's INTERNAL_SUBNET).
pub fn gateway_address(subnet: Ipv4Net) -> Result<IpNet, String> {
    let net = subnet.trunc();
    let first = net.hosts().next().filter(|_| net.prefix_len() <= 30).ok_or_else(|| {
        format!("--subnet {subnet}: too small; a tunnel subnet needs room for the gateway and peers, e.g. 10.13.13.0/24")
    })?;
    Ok(IpNet::V4(
        Ipv4Net::new(first, net.prefix_len()).map_err(|e| e.to_string())?,
    ))
}

/// The commented gw.toml for a new gateway with private key `private_key` (base64).
pub fn template(opts: &InitOptions, private_key: &str, public_key: &str) -> Result<String, String> {
    let address = gateway_address(opts.subnet)?;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# gw.toml: configuration of the dataplane WireGuard gateway, written by `dataplane init`."
    );
    let _ = writeln!(w, "# Check it with `dataplane check --config gw.toml`; run with `dataplane --config gw.toml`.");
    let _ = writeln!(
        w,
        "# This file holds the gateway's private key: keep it mode 0600."
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# The WireGuard side, as [Interface] of a wg-quick wg0.conf."
    );
    let _ = writeln!(w, "[interface]");
    let _ = writeln!(
        w,
        "# The tunnel device (`ip a`, `wg show {}`); a second gateway on this host needs another.",
        opts.name
    );
    let _ = writeln!(w, "name = \"{}\"", opts.name);
    let _ = writeln!(
        w,
        "# Public key, for the peers' [Peer] PublicKey: {public_key}"
    );
    let _ = writeln!(w, "private_key = \"{private_key}\"");
    let _ = writeln!(w, "# UDP port peers send to (open it in the firewall).");
    let _ = writeln!(w, "listen_port = {}", opts.listen_port);
    let _ = writeln!(
        w,
        "# The gateway's address on {}; `dataplane peer add` gives peers the next free ones.",
        opts.name
    );
    let _ = writeln!(w, "address = [\"{address}\"]");
    let _ = writeln!(w, "mtu = {}", defaults::MTU);
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# The NIC(s) the data plane takes over with XDP/AF_XDP. One interface carries WireGuard"
    );
    let _ = writeln!(
        w,
        "# and the LAN (the article's eth0); for two, write interfaces = [\"wan0\", \"lan0\"]."
    );
    let _ = writeln!(w, "[dataplane]");
    let _ = writeln!(w, "interfaces = [\"{}\"]", opts.interface);
    let _ = writeln!(
        w,
        "# auto tries zerocopy, then copy, then skb (generic XDP)."
    );
    let _ = writeln!(w, "mode = \"auto\"");
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# Built-in source NAT: what `iptables -t nat -A POSTROUTING -o eth+ -j MASQUERADE` did."
    );
    let _ = writeln!(w, "[nat]");
    let _ = writeln!(w, "masquerade = true");
    let _ = writeln!(
        w,
        "# IPv6 from the tunnel is routed with the peers' own addresses (the upstream router must"
    );
    let _ = writeln!(
        w,
        "# route the prefix to this gateway); true translates it as `ip6tables ... -j MASQUERADE`."
    );
    let _ = writeln!(w, "masquerade_ipv6 = false");
    let _ = writeln!(
        w,
        "port_range = \"{}-{}\"",
        defaults::NAT_PORT_LO,
        defaults::NAT_PORT_HI
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# Prometheus endpoint (metric names of prometheus_wireguard_exporter); off unless set."
    );
    let _ = writeln!(w, "# [metrics]");
    let _ = writeln!(w, "# listen = \"127.0.0.1:9586\"");
    let _ = writeln!(w);
    let _ = writeln!(w, "# Where `dataplane stats` finds the running gateway.");
    let _ = writeln!(w, "[control]");
    let _ = writeln!(
        w,
        "socket = \"{}\"",
        defaults::control_socket(&opts.name).display()
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# Peers follow, one [[peer]] each; add them with `dataplane peer add NAME`."
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_takes_the_first_host() {
        assert_eq!(
            gateway_address("10.13.13.0/24".parse().unwrap()).unwrap(),
            "10.13.13.1/24".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            gateway_address("10.13.13.77/24".parse().unwrap()).unwrap(),
            "10.13.13.1/24".parse::<IpNet>().unwrap()
        );
        assert!(gateway_address("10.13.13.0/31".parse().unwrap()).is_err());
    }

    #[test]
    fn the_template_names_the_device_and_its_control_socket() {
        let opts = InitOptions {
            interface: "eth1".into(),
            name: "wg1".into(),
            subnet: "10.14.14.0/24".parse().unwrap(),
            listen_port: 51821,
        };
        let key = crate::keys::PrivateKey::from_bytes([7; 32]);
        let text = template(&opts, &key.to_base64(), "unused").unwrap();
        let load = crate::LoadOptions {
            host: crate::HostFacts::unknown(),
            interfaces: None,
        };
        let cfg = crate::load_str(
            &text,
            "gw.toml",
            std::path::Path::new("."),
            crate::Format::GwToml,
            "wg1",
            &load,
        )
        .unwrap()
        .config;
        assert_eq!(cfg.interface.name, "wg1");
        assert_eq!(
            cfg.control.socket,
            std::path::Path::new("/run/dataplane/wg1.control.sock")
        );
    }
}
