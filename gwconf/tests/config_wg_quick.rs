//! wg-quick import: the hooks the linuxserver container writes are replaced by the built-in NAT,
//! anything else is refused with the line and a reason.

use gwconf::{load_str, Format, HostFacts, Interfaces, LoadOptions};
use std::path::Path;

const KEY: &str = "8OgPsIng+GXes28kZwO70fAYsPu/ahQjw5wNt4ieOGM=";
const PEER: &str = "UOGhCA+WM943C5gcBYcP8J8EhC1hDfeP9uaSf60tZSk=";

fn conf(post_up: &str, post_down: &str) -> String {
    format!(
        "[Interface]\nAddress = 10.13.13.1\nListenPort = 51820\nPrivateKey = {KEY}\nPostUp = {post_up}\nPostDown = {post_down}\n\n[Peer]\n# peer1\nPublicKey = {PEER}\nAllowedIPs = 10.13.13.2/32\n"
    )
}

fn parse(text: &str) -> Result<gwconf::Loaded, Vec<String>> {
    let opts = LoadOptions {
        host: HostFacts::unknown(),
        interfaces: None,
    };
    load_str(
        text,
        "wg0.conf",
        Path::new("."),
        Format::WgQuick,
        "wg0",
        &opts,
    )
    .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

const UP: &str = "iptables -A FORWARD -i %i -j ACCEPT; iptables -A FORWARD -o %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth+ -j MASQUERADE";
const DOWN: &str = "iptables -D FORWARD -i %i -j ACCEPT; iptables -D FORWARD -o %i -j ACCEPT; iptables -t nat -D POSTROUTING -o eth+ -j MASQUERADE";

#[test]
fn linuxserver_file_becomes_built_in_nat() {
    let l = parse(&conf(UP, DOWN)).unwrap();
    assert!(l.config.nat.masquerade);
    assert_eq!(l.config.peers[0].name.as_deref(), Some("peer1"));
    assert_eq!(
        l.config.dataplane.interfaces,
        Interfaces::OneArmed {
            interface: "eth0".into()
        }
    );
    assert!(l
        .notes
        .iter()
        .any(|n| n.contains("replaced by the built-in")));
}

#[test]
fn linuxserver_address_without_prefix_is_the_containers_subnet() {
    let l = parse(&conf(UP, DOWN)).unwrap();
    assert_eq!(l.config.interface.address[0].to_string(), "10.13.13.1/24");
    assert!(
        l.notes.iter().any(|n| n
            .starts_with("wg0.conf:2: Address = 10.13.13.1 has no prefix length")
            && n.contains("taken as 10.13.13.1/24")),
        "{:#?}",
        l.notes
    );
    assert!(
        l.notes
            .iter()
            .any(|n| n.contains("DNS = 10.13.13.1") && n.contains("dnsmasq")),
        "{:#?}",
        l.notes
    );
    // An explicit prefix is the operator's and kept as written.
    let explicit = conf(UP, DOWN).replace("Address = 10.13.13.1\n", "Address = 10.13.13.1/32\n");
    let l = parse(&explicit).unwrap();
    assert_eq!(l.config.interface.address[0].to_string(), "10.13.13.1/32");
    assert!(!l.notes.iter().any(|n| n.contains("no prefix length")));
}

#[test]
fn a_short_private_key_is_invalid_not_missing() {
    let errs = parse(&conf(UP, DOWN).replace(KEY, "abcd")).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "wg0.conf:4: Interface.PrivateKey: decodes to 3 bytes; a WireGuard key is 32 bytes"
        ),
        "{errs:#?}"
    );
}

#[test]
fn named_masquerade_interface_is_used() {
    let up = "iptables -t nat -A POSTROUTING -s 10.13.13.0/24 -o ens3 -j MASQUERADE";
    let down = "iptables -t nat -D POSTROUTING -s 10.13.13.0/24 -o ens3 -j MASQUERADE";
    let l = parse(&conf(up, down)).unwrap();
    assert_eq!(l.config.dataplane.interfaces.names(), vec!["ens3"]);
}

#[test]
fn no_masquerade_means_routed_without_nat() {
    let l = parse(&conf(
        "iptables -A FORWARD -i %i -j ACCEPT",
        "iptables -D FORWARD -i %i -j ACCEPT",
    ))
    .unwrap();
    assert!(!l.config.nat.masquerade);
}

#[test]
fn other_hooks_are_refused_with_line_and_reason() {
    let errs = parse(&conf("iptables -A INPUT -p udp --dport 53 -j DROP", DOWN)).unwrap_err();
    assert!(
        errs[0].starts_with(
            "wg0.conf:5: Interface.PostUp: `iptables -A INPUT -p udp --dport 53 -j DROP`"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[0].contains("only forwarding and MASQUERADE hooks"),
        "{errs:#?}"
    );

    let errs = parse(&conf(UP, "systemctl restart foo")).unwrap_err();
    assert!(
        errs[0].starts_with("wg0.conf:6: Interface.PostDown: `systemctl restart foo`"),
        "{errs:#?}"
    );

    let text = conf(UP, DOWN).replace(
        "ListenPort = 51820\n",
        "ListenPort = 51820\nPreUp = echo hi\n",
    );
    let errs = parse(&text).unwrap_err();
    assert!(
        errs[0].starts_with("wg0.conf:4: Interface.PreUp: "),
        "{errs:#?}"
    );
}

#[test]
fn field_errors_name_the_line() {
    let text = conf(UP, DOWN).replace(
        "AllowedIPs = 10.13.13.2/32",
        "AllowedIPs = 10.13.13.2/32, 10.0.0.300/8",
    );
    let errs = parse(&text).unwrap_err();
    assert!(
        errs[0].starts_with(
            "wg0.conf:11: Peer[0].AllowedIPs[1]: \"10.0.0.300/8\" is not an IP prefix"
        ),
        "{errs:#?}"
    );
    let text = conf(UP, DOWN).replace("ListenPort = 51820\n", "");
    let errs = parse(&text).unwrap_err();
    assert!(
        errs[0].starts_with("wg0.conf:1: Interface.ListenPort: missing"),
        "{errs:#?}"
    );
    let text = conf(UP, DOWN) + "Colour = blue\n";
    let errs = parse(&text).unwrap_err();
    assert!(
        errs[0].starts_with("wg0.conf:12: Peer[0].Colour: unknown key"),
        "{errs:#?}"
    );
}

#[test]
fn keys_are_case_insensitive_and_dns_is_a_note() {
    let text = conf(UP, DOWN).replace("ListenPort", "listenport") + "PersistentKeepalive = off\n";
    let text = text.replace("[Interface]\n", "[Interface]\nDNS = 1.1.1.1\n");
    let l = parse(&text).unwrap();
    assert_eq!(l.config.interface.listen_port, 51820);
    assert_eq!(l.config.peers[0].persistent_keepalive, None);
    assert!(l
        .notes
        .iter()
        .any(|n| n.contains("DNS = 1.1.1.1 is ignored")));
}

#[test]
fn overlapping_peers_are_refused_like_in_gw_toml() {
    let text = conf(UP, DOWN) + "\n[Peer]\nPublicKey = q0qeMJC7Atn9bwoIHl82K3Ih6hOaGHOvfQxFfXcqFSs=\nAllowedIPs = 10.13.13.0/24\n";
    let errs = parse(&text).unwrap_err();
    assert!(errs.iter().any(|e| e.contains("overlaps")), "{errs:#?}");
    // That key is also the gateway's own public key.
    assert!(
        errs.iter().any(|e| e.contains("gateway's own public key")),
        "{errs:#?}"
    );
}

fn parse_named(file: &str, ifname: &str) -> Result<gwconf::Loaded, Vec<String>> {
    let opts = LoadOptions {
        host: HostFacts::unknown(),
        interfaces: None,
    };
    load_str(
        &conf(UP, DOWN),
        file,
        Path::new("."),
        Format::WgQuick,
        ifname,
        &opts,
    )
    .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

#[test]
fn the_device_is_named_after_the_file_as_wg_quick_does() {
    let l = parse_named("wg1.conf", "wg1").unwrap();
    assert_eq!(l.config.interface.name, "wg1");
    assert_eq!(
        l.config.control.socket,
        Path::new("/run/dataplane/wg1.control.sock")
    );
    let rendered = gwconf::to_gw_toml(&l.config, &[]);
    assert!(rendered.contains("name = \"wg1\""), "{rendered}");

    let errs = parse_named("my-long-tunnel-0.conf", "my-long-tunnel-0").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "my-long-tunnel-0.conf: interface.name: the tunnel device is named after the file"
        ) && errs[0].contains("is longer than 15 bytes")
            && errs[0].contains("rename the file, e.g. wg1.conf"),
        "{errs:#?}"
    );
}

/// A dual-stack wg0.conf as wg-quick users write it: IPv6 Address and AllowedIPs, and the
/// IPv4 rules repeated with ip6tables.
fn dual_stack(up6: &str, down6: &str) -> String {
    format!(
        "[Interface]\nAddress = 10.13.13.1/24, fd13::1/64\nListenPort = 51820\nPrivateKey = {KEY}\nPostUp = {UP}\nPostUp = {up6}\nPostDown = {DOWN}\nPostDown = {down6}\n\n[Peer]\n# peer1\nPublicKey = {PEER}\nAllowedIPs = 10.13.13.2/32, fd13::2/128\n"
    )
}

const UP6: &str = "ip6tables -A FORWARD -i %i -j ACCEPT; ip6tables -A FORWARD -o %i -j ACCEPT; ip6tables -t nat -A POSTROUTING -o eth+ -j MASQUERADE";
const DOWN6: &str = "ip6tables -D FORWARD -i %i -j ACCEPT; ip6tables -D FORWARD -o %i -j ACCEPT; ip6tables -t nat -D POSTROUTING -o eth+ -j MASQUERADE";

#[test]
fn ipv6_addresses_and_ip6tables_masquerade_are_kept() {
    let l = parse(&dual_stack(UP6, DOWN6)).unwrap();
    let c = &l.config;
    let addrs: Vec<String> = c.interface.address.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["10.13.13.1/24", "fd13::1/64"]);
    let allowed: Vec<String> = c.peers[0]
        .allowed_ips
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(allowed, ["10.13.13.2/32", "fd13::2/128"]);
    assert!(c.nat.masquerade && c.nat.masquerade_ipv6);
    assert!(
        l.notes.iter().any(|n| n.contains("masquerade_ipv6 = true")),
        "{:#?}",
        l.notes
    );
}

#[test]
fn ip6tables_forwarding_alone_means_routed_ipv6() {
    let l = parse(&dual_stack(
        "ip6tables -A FORWARD -i %i -j ACCEPT; sysctl -w net.ipv6.conf.all.forwarding=1",
        "ip6tables -D FORWARD -i %i -j ACCEPT",
    ))
    .unwrap();
    assert!(l.config.nat.masquerade && !l.config.nat.masquerade_ipv6);
    assert!(
        l.notes
            .iter()
            .any(|n| n.contains("routed") && n.contains("fd13::/64")),
        "{:#?}",
        l.notes
    );
}

#[test]
fn other_ip6tables_hooks_are_refused_with_line_and_reason() {
    let errs = parse(&dual_stack(
        "ip6tables -A INPUT -p udp --dport 53 -j DROP",
        DOWN6,
    ))
    .unwrap_err();
    assert!(
        errs.iter().any(|e| e.starts_with(
            "wg0.conf:6: Interface.PostUp: `ip6tables -A INPUT -p udp --dport 53 -j DROP` uses -p"
        )),
        "{errs:#?}"
    );
}

#[test]
fn an_ipv6_only_file_is_refused_with_the_reason() {
    let text = dual_stack(UP6, DOWN6)
        .replace(
            "Address = 10.13.13.1/24, fd13::1/64",
            "Address = fd13::1/64",
        )
        .replace("10.13.13.2/32, ", "");
    let errs = parse(&text).unwrap_err();
    assert!(
        errs.iter().any(
            |e| e.starts_with("wg0.conf:2: interface.address: has no IPv4 prefix")
                && e.contains("ICMP errors")
        ),
        "{errs:#?}"
    );
}
