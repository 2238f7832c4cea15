//! Configuration text the lab writes: `wg setconf` files for the two wireguard-go ends, the
//! gateway's `gw.toml` per the config contract, and the article's wg-quick `wg0.conf`
//! (for import tests). Pure functions of the topology and keys; nothing here touches the system.

use std::fmt::Write as _;

use super::keys::LabKeys;
use super::topology::{
    Topology, CLIENT_TUNNEL_ADDR, CLIENT_TUNNEL_ADDR6, GATEWAY_TUNNEL_ADDR, GATEWAY_TUNNEL_ADDR6,
    LISTEN_PORT, TUNNEL_MTU, TUNNEL_PREFIX_LEN, TUNNEL_PREFIX_LEN6,
};

/// Knobs of the gw.toml the lab writes for `dataplane`.
#[derive(Clone, Debug, Default)]
pub struct GwTomlOptions {
    /// `[dataplane] mode` (`auto`, `zerocopy`, `copy`, `skb`); omitted when `None`.
    pub mode: Option<String>,
    /// `[dataplane] queues` (one worker each); omitted when `None` (queue 0).
    pub queues: Option<Vec<u32>>,
    /// Appended verbatim at the end (may open further tables).
    pub extra_toml: String,
}

/// The gateway's gw.toml (the config contract: `[interface]`, `[[peer]]`, `[dataplane]`, `[nat]`).
pub fn gw_toml(topology: Topology, keys: &LabKeys, opts: &GwTomlOptions) -> String {
    gw_toml_with(topology, keys, opts, false)
}

/// The gateway's tunnel addresses, with prefix: IPv4, and IPv6 in a dual-stack lab.
fn gateway_tunnel_nets(ipv6: bool) -> Vec<String> {
    let mut v = vec![format!("{GATEWAY_TUNNEL_ADDR}/{TUNNEL_PREFIX_LEN}")];
    if ipv6 {
        v.push(format!("{GATEWAY_TUNNEL_ADDR6}/{TUNNEL_PREFIX_LEN6}"));
    }
    v
}

/// What the gateway lets the client send from (its AllowedIPs): its tunnel address(es).
fn client_tunnel_hosts(ipv6: bool) -> Vec<String> {
    let mut v = vec![format!("{CLIENT_TUNNEL_ADDR}/32")];
    if ipv6 {
        v.push(format!("{CLIENT_TUNNEL_ADDR6}/128"));
    }
    v
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// [`gw_toml`], dual-stack when `ipv6`: the gateway's `wg0` also gets `fd13::1/64` and the peer
/// `fd13::2/128`.
pub fn gw_toml_with(
    topology: Topology,
    keys: &LabKeys,
    opts: &GwTomlOptions,
    ipv6: bool,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by lab ({} layout). Keys are throwaway lab keys.",
        topology.name()
    );
    let _ = writeln!(s, "[interface]");
    let _ = writeln!(s, "private_key = \"{}\"", keys.gateway.private);
    let _ = writeln!(s, "listen_port = {LISTEN_PORT}");
    let _ = writeln!(s, "address = {}", toml_list(&gateway_tunnel_nets(ipv6)));
    let _ = writeln!(s, "mtu = {TUNNEL_MTU}");
    let _ = writeln!(s);
    let _ = writeln!(s, "[[peer]]");
    let _ = writeln!(s, "name = \"peer1\"");
    let _ = writeln!(s, "public_key = \"{}\"", keys.client.public);
    if let Some(psk) = &keys.preshared {
        let _ = writeln!(s, "preshared_key = \"{psk}\"");
    }
    let _ = writeln!(s, "allowed_ips = {}", toml_list(&client_tunnel_hosts(ipv6)));
    let _ = writeln!(s);
    let _ = writeln!(s, "[dataplane]");
    let ifaces: Vec<String> = topology
        .gateway_interfaces()
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect();
    let _ = writeln!(s, "interfaces = [{}]", ifaces.join(", "));
    if let Some(mode) = &opts.mode {
        let _ = writeln!(s, "mode = \"{mode}\"");
    }
    if let Some(queues) = &opts.queues {
        let list: Vec<String> = queues.iter().map(u32::to_string).collect();
        let _ = writeln!(s, "queues = [{}]", list.join(", "));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "[nat]");
    let _ = writeln!(s, "masquerade = true");
    if !opts.extra_toml.is_empty() {
        let _ = writeln!(s);
        s.push_str(&opts.extra_toml);
        if !s.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// `wg setconf` file for the gateway's wireguard-go (reference gateway).
pub fn gateway_setconf(keys: &LabKeys, ipv6: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "[Interface]");
    let _ = writeln!(s, "PrivateKey = {}", keys.gateway.private);
    let _ = writeln!(s, "ListenPort = {LISTEN_PORT}");
    let _ = writeln!(s);
    let _ = writeln!(s, "[Peer]");
    let _ = writeln!(s, "PublicKey = {}", keys.client.public);
    if let Some(psk) = &keys.preshared {
        let _ = writeln!(s, "PresharedKey = {psk}");
    }
    let _ = writeln!(s, "AllowedIPs = {}", client_tunnel_hosts(ipv6).join(", "));
    s
}

/// `wg setconf` file for the client (the article's `peer1.conf` minus the wg-quick keys); in a
/// dual-stack lab (`ipv6`) its AllowedIPs take IPv6 too, and `endpoint6` makes it reach the
/// gateway over IPv6 ([`Topology::endpoint6`]).
pub fn client_setconf(topology: Topology, keys: &LabKeys, ipv6: bool, endpoint6: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "[Interface]");
    let _ = writeln!(s, "PrivateKey = {}", keys.client.private);
    let _ = writeln!(s, "ListenPort = {LISTEN_PORT}");
    let _ = writeln!(s);
    let _ = writeln!(s, "[Peer]");
    let _ = writeln!(s, "PublicKey = {}", keys.gateway.public);
    if let Some(psk) = &keys.preshared {
        let _ = writeln!(s, "PresharedKey = {psk}");
    }
    if endpoint6 {
        let _ = writeln!(s, "Endpoint = {}", topology.endpoint6());
    } else {
        let _ = writeln!(s, "Endpoint = {}", topology.endpoint());
    }
    // As the article's peer1.conf: everything goes to the gateway, cryptographically. The
    // kernel routes only the lab's LAN and tunnel subnets into wg0 (see `Lab`), so the underlay
    // route to the endpoint stays outside the tunnel.
    if ipv6 {
        let _ = writeln!(s, "AllowedIPs = 0.0.0.0/0, ::/0");
    } else {
        let _ = writeln!(s, "AllowedIPs = 0.0.0.0/0");
    }
    s
}

/// The gateway's wg-quick file as the article's container has it (PostUp/PostDown with the
/// FORWARD and MASQUERADE rules), for `dataplane --config wg0.conf` and `dataplane import`.
pub fn article_wg0_conf(topology: Topology, keys: &LabKeys) -> String {
    let out = topology.masquerade_out_match();
    let mut s = String::new();
    let _ = writeln!(s, "[Interface]");
    let _ = writeln!(s, "Address = {GATEWAY_TUNNEL_ADDR}");
    let _ = writeln!(s, "ListenPort = {LISTEN_PORT}");
    let _ = writeln!(s, "PrivateKey = {}", keys.gateway.private);
    let _ = writeln!(
        s,
        "PostUp = iptables -A FORWARD -i %i -j ACCEPT; iptables -A FORWARD -o %i -j ACCEPT; \
         iptables -t nat -A POSTROUTING -o {out} -j MASQUERADE"
    );
    let _ = writeln!(
        s,
        "PostDown = iptables -D FORWARD -i %i -j ACCEPT; iptables -D FORWARD -o %i -j ACCEPT; \
         iptables -t nat -D POSTROUTING -o {out} -j MASQUERADE"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "[Peer]");
    let _ = writeln!(s, "# peer1");
    let _ = writeln!(s, "PublicKey = {}", keys.client.public);
    if let Some(psk) = &keys.preshared {
        let _ = writeln!(s, "PresharedKey = {psk}");
    }
    let _ = writeln!(s, "AllowedIPs = {CLIENT_TUNNEL_ADDR}/32");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    fn keys(psk: bool) -> LabKeys {
        // Canonical base64 of 32 bytes: the last character before '=' has its low 2 bits clear.
        let k = |c: char| format!("{}=", c.to_string().repeat(43));
        LabKeys {
            client: KeyPair {
                private: k('E'),
                public: k('I'),
            },
            gateway: KeyPair {
                private: k('M'),
                public: k('Q'),
            },
            preshared: psk.then(|| k('U')),
        }
    }

    #[test]
    fn gw_toml_follows_the_contract() {
        let opts = GwTomlOptions {
            mode: Some("copy".into()),
            extra_toml: "[metrics]\nlisten = \"127.0.0.1:9586\"".into(),
            queues: Some(vec![0, 1]),
        };
        let text = gw_toml(Topology::TwoArmed, &keys(true), &opts);
        let t: toml::Table = text.parse().expect("gw.toml must be valid TOML");
        let iface = t["interface"].as_table().unwrap();
        assert_eq!(
            iface["private_key"].as_str(),
            Some(keys(true).gateway.private.as_str())
        );
        assert_eq!(iface["listen_port"].as_integer(), Some(51820));
        assert_eq!(
            iface["address"].as_array().unwrap()[0].as_str(),
            Some("10.13.13.1/24")
        );
        let peer = &t["peer"].as_array().unwrap()[0];
        assert_eq!(
            peer["public_key"].as_str(),
            Some(keys(true).client.public.as_str())
        );
        assert!(peer.get("preshared_key").is_some());
        assert_eq!(
            peer["allowed_ips"].as_array().unwrap()[0].as_str(),
            Some("10.13.13.2/32")
        );
        let dp = t["dataplane"].as_table().unwrap();
        let ifaces: Vec<_> = dp["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(ifaces, ["wan0", "lan0"]);
        assert_eq!(dp["mode"].as_str(), Some("copy"));
        let queues: Vec<_> = dp["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_integer().unwrap())
            .collect();
        assert_eq!(queues, [0, 1]);
        assert_eq!(t["nat"]["masquerade"].as_bool(), Some(true));
        assert!(t.contains_key("metrics"));
    }

    #[test]
    fn one_armed_toml_has_eth0_and_no_psk_when_disabled() {
        let text = gw_toml(Topology::OneArmed, &keys(false), &GwTomlOptions::default());
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(t["dataplane"]["interfaces"].as_array().unwrap().len(), 1);
        assert_eq!(t["dataplane"]["interfaces"][0].as_str(), Some("eth0"));
        assert!(t["dataplane"].get("mode").is_none());
        assert!(t["peer"][0].get("preshared_key").is_none());
    }

    /// The lab's files must pass the gateway's own loader and validator (the one `dataplane
    /// check` runs), so a lab failure is never a config-schema mismatch.
    #[test]
    fn lab_configs_pass_the_gateway_loader() {
        use gwconf::{load_str, Format, HostFacts, LoadOptions};
        let opts = LoadOptions {
            host: HostFacts::unknown(),
            interfaces: None,
        };
        for topology in [Topology::OneArmed, Topology::TwoArmed] {
            for psk in [true, false] {
                let text = gw_toml(topology, &keys(psk), &GwTomlOptions::default());
                let dir = std::path::Path::new("/tmp");
                if let Err(e) = load_str(&text, "gw.toml", dir, Format::GwToml, "wg0", &opts) {
                    panic!("{topology:?} psk={psk}: {e}\n{text}");
                }
            }
            let text = article_wg0_conf(topology, &keys(true));
            let dir = std::path::Path::new("/tmp");
            if let Err(e) = load_str(&text, "wg0.conf", dir, Format::WgQuick, "wg0", &opts) {
                panic!("{topology:?} wg0.conf: {e}\n{text}");
            }
        }
    }

    #[test]
    fn setconf_files_point_at_each_other() {
        let k = keys(true);
        let c = client_setconf(Topology::OneArmed, &k, false, false);
        assert!(c.contains(&format!("PublicKey = {}", k.gateway.public)));
        assert!(c.contains("Endpoint = 172.23.0.3:51820"));
        assert!(c.contains("AllowedIPs = 0.0.0.0/0\n"));
        let g = gateway_setconf(&k, false);
        assert!(g.contains(&format!("PublicKey = {}", k.client.public)));
        assert!(g.contains("AllowedIPs = 10.13.13.2/32"));
        let w = article_wg0_conf(Topology::OneArmed, &k);
        assert!(w.contains("-o eth+ -j MASQUERADE"));
    }

    #[test]
    fn dual_stack_configs_carry_ipv6() {
        let k = keys(true);
        let c = client_setconf(Topology::TwoArmed, &k, true, true);
        assert!(c.contains("Endpoint = [2001:db8::3]:51820"), "{c}");
        assert!(c.contains("AllowedIPs = 0.0.0.0/0, ::/0"), "{c}");
        let c = client_setconf(Topology::TwoArmed, &k, true, false);
        assert!(c.contains("Endpoint = 198.18.0.1:51820"), "{c}");
        let g = gateway_setconf(&k, true);
        assert!(g.contains("AllowedIPs = 10.13.13.2/32, fd13::2/128"), "{g}");
        let text = gw_toml_with(Topology::TwoArmed, &k, &GwTomlOptions::default(), true);
        let t: toml::Table = text.parse().unwrap();
        let addrs: Vec<_> = t["interface"]["address"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(addrs, ["10.13.13.1/24", "fd13::1/64"]);
        let allowed: Vec<_> = t["peer"][0]["allowed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(allowed, ["10.13.13.2/32", "fd13::2/128"]);
        use gwconf::{load_str, Format, HostFacts, LoadOptions};
        let opts = LoadOptions {
            host: HostFacts::unknown(),
            interfaces: None,
        };
        let dir = std::path::Path::new("/tmp");
        if let Err(e) = load_str(&text, "gw.toml", dir, Format::GwToml, "wg0", &opts) {
            panic!("dual-stack gw.toml: {e}\n{text}");
        }
    }
}
