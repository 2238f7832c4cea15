//! Every gw.toml validation error path: the message names the file, the line and the field and
//! says what is allowed.

use gwconf::{load_str, ConfigErrors, Format, HostFacts, LoadOptions, PortRange};
use std::path::Path;

const SERVER_KEY: &str = "8OgPsIng+GXes28kZwO70fAYsPu/ahQjw5wNt4ieOGM=";
const SERVER_PUB: &str = "q0qeMJC7Atn9bwoIHl82K3Ih6hOaGHOvfQxFfXcqFSs=";
const PEER1: &str = "UOGhCA+WM943C5gcBYcP8J8EhC1hDfeP9uaSf60tZSk=";
const PEER2: &str = "3xBkVF4RsLpT3bzD4VIM6wj1MCFOM39U8pFJdQJVQVY=";

/// A valid config, one line per key so tests can name lines:
/// 1 [interface] / 2 private_key / 3 listen_port / 4 address / 5 blank / 6 [[peer]] /
/// 7 public_key / 8 allowed_ips / 9 blank / 10 [[peer]] / 11 public_key / 12 allowed_ips /
/// 13 blank / 14 [dataplane] / 15 interfaces / 16 blank / 17 [nat] / 18 masquerade
fn valid() -> String {
    format!(
        "[interface]\nprivate_key = \"{SERVER_KEY}\"\nlisten_port = 51820\naddress = [\"10.13.13.1/24\"]\n\n\
         [[peer]]\npublic_key = \"{PEER1}\"\nallowed_ips = [\"10.13.13.2/32\"]\n\n\
         [[peer]]\npublic_key = \"{PEER2}\"\nallowed_ips = [\"10.13.13.3/32\"]\n\n\
         [dataplane]\ninterfaces = [\"eth0\"]\n\n[nat]\nmasquerade = true\n"
    )
}

fn load_with(text: &str, host: HostFacts) -> Result<gwconf::Loaded, ConfigErrors> {
    let opts = LoadOptions {
        host,
        interfaces: None,
    };
    load_str(
        text,
        "gw.toml",
        Path::new("."),
        Format::GwToml,
        "wg0",
        &opts,
    )
}

/// The error lines for `text` (which must be invalid).
fn errors(text: &str) -> Vec<String> {
    match load_with(text, HostFacts::unknown()) {
        Ok(_) => panic!("accepted an invalid config:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// Replaces line `n` (1-based) of the valid config.
fn with_line(n: usize, replacement: &str) -> String {
    let mut lines: Vec<String> = valid().lines().map(str::to_string).collect();
    lines[n - 1] = replacement.to_string();
    lines.join("\n") + "\n"
}

fn assert_one(errs: &[String], prefix: &str, also: &[&str]) {
    let hit = errs.iter().find(|e| e.starts_with(prefix));
    let Some(hit) = hit else {
        panic!("no error starting with {prefix:?} in {errs:#?}");
    };
    for a in also {
        assert!(hit.contains(a), "{hit:?} lacks {a:?}");
    }
}

#[test]
fn the_valid_base_config_loads() {
    let loaded = load_with(&valid(), HostFacts::unknown()).unwrap();
    assert_eq!(loaded.config.peers.len(), 2);
    assert_eq!(loaded.config.interface.mtu, 1420);
    assert_eq!(loaded.config.interface.public_key().to_base64(), SERVER_PUB);
}

#[test]
fn bad_allowed_ip_names_line_and_field() {
    let errs = errors(&with_line(12, "allowed_ips = [\"10.0.0.300/32\"]"));
    assert_one(
        &errs,
        "gw.toml:12: peer[1].allowed_ips[0]: ",
        &[
            "\"10.0.0.300/32\" is not an IP prefix",
            "expected e.g. 10.13.13.2/32",
        ],
    );
}

#[test]
fn allowed_ip_element_on_its_own_line() {
    let text = valid().replace(
        "allowed_ips = [\"10.13.13.3/32\"]",
        "allowed_ips = [\n  \"10.13.13.3/32\",\n  \"10.13.13.5/24\",\n]",
    );
    let errs = errors(&text);
    assert_one(
        &errs,
        "gw.toml:14: peer[1].allowed_ips[1]: ",
        &["host bits set", "10.13.13.0/24"],
    );
}

#[test]
fn unknown_key_lists_known_keys() {
    let errs = errors(&with_line(3, "listen_prot = 51820"));
    assert_one(
        &errs,
        "gw.toml:3: interface.listen_prot: ",
        &[
            "unknown key",
            "private_key, private_key_file, listen_port, address, mtu",
        ],
    );
    // ...and the real key is then missing, reported at the section header.
    assert_one(
        &errs,
        "gw.toml:1: interface.listen_port: ",
        &["missing", "51820"],
    );
}

#[test]
fn unknown_section_lists_known_sections() {
    let text = valid() + "\n[firewall]\nenabled = true\n";
    let errs = errors(&text);
    assert_one(
        &errs,
        "gw.toml:20: firewall: ",
        &["unknown section", "[[peer]]", "[dataplane]"],
    );
}

#[test]
fn listen_port_zero_is_refused() {
    let errs = errors(&with_line(3, "listen_port = 0"));
    assert_one(
        &errs,
        "gw.toml:3: interface.listen_port: ",
        &["0 is out of range", "1-65535"],
    );
}

#[test]
fn wrong_type_says_what_was_found() {
    let errs = errors(&with_line(3, "listen_port = \"51820\""));
    assert_one(
        &errs,
        "gw.toml:3: interface.listen_port: ",
        &["found string", "UDP port"],
    );
}

#[test]
fn bad_key_is_refused() {
    let errs = errors(&with_line(7, "public_key = \"AAAA\""));
    assert_one(&errs, "gw.toml:7: peer[0].public_key: ", &["32 bytes"]);
    let errs = errors(&with_line(2, "private_key = \"hello world\""));
    assert_one(
        &errs,
        "gw.toml:2: interface.private_key: ",
        &["not a base64 key", "wg genkey"],
    );
}

#[test]
fn duplicate_peer_keys_are_refused() {
    let errs = errors(&with_line(11, &format!("public_key = \"{PEER1}\"")));
    assert_one(
        &errs,
        "gw.toml:11: peer[1].public_key: ",
        &["the same public key as peer[0] (line 7)"],
    );
}

#[test]
fn duplicate_peer_names_are_refused() {
    let named = valid()
        .replace(
            &format!("public_key = \"{PEER1}\"\n"),
            &format!("public_key = \"{PEER1}\"\nname = \"phone\"\n"),
        )
        .replace(
            &format!("public_key = \"{PEER2}\"\n"),
            &format!("public_key = \"{PEER2}\"\nname = \"phone\"\n"),
        );
    let errs = errors(&named);
    assert_one(
        &errs,
        "gw.toml:13: peer[1].name: ",
        &["\"phone\" is already the name of peer[0] (line 8)"],
    );
    let distinct = named.replacen("name = \"phone\"", "name = \"laptop\"", 1);
    load_with(&distinct, HostFacts::unknown()).expect("distinct names load");
}

#[test]
fn names_peer_add_would_refuse_are_refused() {
    for bad in ["sixteen-chars-xx", "alice phone", "a/b"] {
        let text = valid().replace(
            &format!("public_key = \"{PEER1}\"\n"),
            &format!("public_key = \"{PEER1}\"\nname = \"{bad}\"\n"),
        );
        assert_one(
            &errors(&text),
            "gw.toml:8: peer[0].name: ",
            &["1-15 characters of A-Z a-z 0-9 _ = + . -"],
        );
    }
}

#[test]
fn a_peer_owning_the_gateways_tunnel_address_is_refused() {
    let errs = errors(&with_line(8, "allowed_ips = [\"10.13.13.1/32\"]"));
    assert_one(
        &errs,
        "gw.toml:8: peer[0].allowed_ips[0]: ",
        &[
            "10.13.13.1/32 contains the gateway's own tunnel address 10.13.13.1 (interface.address (line 4))",
            "e.g. 10.13.13.2/32",
        ],
    );
    // A wider prefix that covers it too.
    let errs = errors(&with_line(
        12,
        "allowed_ips = [\"10.13.13.3/32\", \"10.13.13.0/30\"]",
    ));
    assert_one(
        &errs,
        "gw.toml:12: peer[1].allowed_ips[1]: ",
        &["gateway's own tunnel address"],
    );
}

#[test]
fn the_gateways_own_key_as_a_peer_is_refused() {
    let errs = errors(&with_line(7, &format!("public_key = \"{SERVER_PUB}\"")));
    assert_one(
        &errs,
        "gw.toml:7: peer[0].public_key: ",
        &["gateway's own public key"],
    );
}

#[test]
fn overlapping_allowed_ips_between_peers_are_refused() {
    let errs = errors(&with_line(12, "allowed_ips = [\"10.13.13.0/24\"]"));
    assert_one(
        &errs,
        "gw.toml:8: peer[0].allowed_ips[0]: ",
        &["10.13.13.2/32 overlaps 10.13.13.0/24 of peer[1].allowed_ips[0] (line 12)"],
    );
    // The same prefix twice within one peer is a duplicate, not an overlap between peers.
    let errs = errors(&with_line(
        8,
        "allowed_ips = [\"10.13.13.2/32\", \"10.13.13.2/32\"]",
    ));
    assert_one(
        &errs,
        "gw.toml:8: peer[0].allowed_ips[1]: ",
        &["listed twice"],
    );
}

#[test]
fn nested_overlap_behind_a_same_peer_prefix_is_found() {
    // peer[0] holds 10.0.0.0/8 and 10.1.0.0/16; peer[1]'s 10.1.2.0/24 sits inside both.
    let text = with_line(8, "allowed_ips = [\"10.0.0.0/8\", \"10.1.0.0/16\"]");
    let text = text.replace("[\"10.13.13.3/32\"]", "[\"10.1.2.0/24\"]");
    let errs = errors(&text);
    assert_one(
        &errs,
        "gw.toml:12: peer[1].allowed_ips[0]: ",
        &["10.1.2.0/24 overlaps 10.1.0.0/16"],
    );
}

#[test]
fn endpoint_without_port_is_refused() {
    let text = with_line(
        12,
        "allowed_ips = [\"10.13.13.3/32\"]\nendpoint = \"198.51.100.7\"",
    );
    let errs = errors(&text);
    assert_one(
        &errs,
        "gw.toml:13: peer[1].endpoint: ",
        &["not host:port", "198.51.100.7:51820"],
    );
}

#[test]
fn keepalive_out_of_range() {
    let text = with_line(
        8,
        "allowed_ips = [\"10.13.13.2/32\"]\npersistent_keepalive = 70000",
    );
    let errs = errors(&text);
    assert_one(
        &errs,
        "gw.toml:9: peer[0].persistent_keepalive: ",
        &["out of range", "0-65535"],
    );
}

#[test]
fn mtu_out_of_range() {
    let text = with_line(4, "address = [\"10.13.13.1/24\"]\nmtu = 100");
    let errs = errors(&text);
    assert_one(&errs, "gw.toml:5: interface.mtu: ", &["576-9000"]);
}

#[test]
fn private_key_and_file_together_or_neither() {
    let errs = errors(&with_line(
        2,
        &format!("private_key = \"{SERVER_KEY}\"\nprivate_key_file = \"k\""),
    ));
    assert_one(
        &errs,
        "gw.toml:3: interface.private_key_file: ",
        &["keep one"],
    );
    let errs = errors(&with_line(2, ""));
    assert_one(
        &errs,
        "gw.toml:1: interface.private_key: ",
        &["missing", "private_key_file"],
    );
}

#[test]
fn unreadable_private_key_file() {
    let errs = errors(&with_line(
        2,
        "private_key_file = \"/nonexistent/dataplane.key\"",
    ));
    assert_one(
        &errs,
        "gw.toml:2: interface.private_key_file: ",
        &["cannot read /nonexistent/dataplane.key"],
    );
}

#[test]
fn oversized_private_key_file_is_refused_without_reading_it_all() {
    // /dev/zero never ends: an uncapped read would fill memory instead of failing.
    let errs = errors(&with_line(2, "private_key_file = \"/dev/zero\""));
    assert_one(
        &errs,
        "gw.toml:2: interface.private_key_file: ",
        &[
            "cannot read /dev/zero",
            "more than 256 bytes",
            "44 characters",
        ],
    );
}

#[test]
fn error_lines_are_right_deep_in_a_large_file() {
    // Line numbers come from an index of line starts (a binary search per field); check them
    // far from the start of a file of many peers, where an off-by-one would show.
    let mut text = valid();
    for i in 0..2000u32 {
        let mut bytes = [7u8; 32];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        let key = gwconf::keys::encode_key(&bytes);
        let ip = std::net::Ipv4Addr::from(0x0a14_0000 + i);
        text.push_str(&format!(
            "\n[[peer]]\npublic_key = \"{key}\"\nallowed_ips = [\"{ip}/32\"]\n"
        ));
    }
    let lines_before = text.lines().count();
    text.push_str("\n[[peer]]\npublic_key = \"not a key\"\nallowed_ips = [\"10.99.0.1/32\"]\n");
    let errs = errors(&text);
    assert_one(
        &errs,
        &format!("gw.toml:{}: peer[2002].public_key: ", lines_before + 3),
        &[],
    );
}

#[test]
fn private_key_file_is_read_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("private.key"), format!("{SERVER_KEY}\n")).unwrap();
    let text = with_line(2, "private_key_file = \"private.key\"");
    let opts = LoadOptions::default();
    let loaded = load_str(&text, "gw.toml", dir.path(), Format::GwToml, "wg0", &opts).unwrap();
    assert_eq!(loaded.config.interface.public_key().to_base64(), SERVER_PUB);
    assert_eq!(
        loaded.config.interface.private_key_file.as_deref(),
        Some(Path::new("private.key"))
    );
}

#[test]
fn xdp_mode_must_be_known() {
    let errs = errors(&with_line(15, "interfaces = [\"eth0\"]\nmode = \"turbo\""));
    assert_one(
        &errs,
        "gw.toml:16: dataplane.mode: ",
        &["\"turbo\" is not a mode", "zerocopy", "skb"],
    );
}

#[test]
fn interfaces_forms() {
    let errs = errors(&with_line(15, "interfaces = [\"a\", \"b\", \"c\"]"));
    assert_one(
        &errs,
        "gw.toml:15: dataplane.interfaces: ",
        &["has 3 entries", "two-armed"],
    );
    let errs = errors(&with_line(
        15,
        "interfaces = [\"eth0\"]\ninterface = \"eth0\"",
    ));
    assert_one(
        &errs,
        "gw.toml:14: dataplane.interfaces: ",
        &["set only one of"],
    );
    let errs = errors(&with_line(15, "wan = \"wan0\""));
    assert_one(
        &errs,
        "gw.toml:15: dataplane: ",
        &["needs both wan and lan"],
    );
    let errs = errors(&with_line(15, "interfaces = [\"lan0\", \"lan0\"]"));
    assert_one(
        &errs,
        "gw.toml:15: dataplane.interfaces: ",
        &["both \"lan0\""],
    );
    let errs = errors(&with_line(15, "interface = \"this-name-is-too-long\""));
    assert_one(
        &errs,
        "gw.toml:15: dataplane.interface: ",
        &["not an interface name"],
    );
    let errs = errors(&with_line(15, ""));
    assert_one(&errs, "gw.toml:14: dataplane.interfaces: ", &["missing"]);
}

#[test]
fn queues_and_cpus_lists() {
    let errs = errors(&with_line(15, "interfaces = [\"eth0\"]\nqueues = [0, 0]"));
    assert_one(
        &errs,
        "gw.toml:16: dataplane.queues[1]: ",
        &["listed twice"],
    );
    let errs = errors(&with_line(15, "interfaces = [\"eth0\"]\ncpus = []"));
    assert_one(&errs, "gw.toml:16: dataplane.cpus: ", &["is empty"]);
}

#[test]
fn nat_port_range_containing_the_listen_port() {
    let errs = errors(&with_line(
        18,
        "masquerade = true\nport_range = \"50000-60000\"",
    ));
    assert_one(
        &errs,
        "gw.toml:19: nat.port_range: ",
        &["contains interface.listen_port 51820"],
    );
}

#[test]
fn nat_port_range_syntax() {
    let errs = errors(&with_line(18, "port_range = \"65535-61000\""));
    assert_one(
        &errs,
        "gw.toml:18: nat.port_range: ",
        &["LOW-HIGH", "61000-65535"],
    );
}

#[test]
fn nat_port_range_overlapping_the_kernels_ephemeral_ports() {
    let host = HostFacts {
        local_port_range: Some(PortRange {
            lo: 32768,
            hi: 62000,
        }),
        ..HostFacts::unknown()
    };
    let errs: Vec<String> = load_with(&valid(), host)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    // The range is the default (not in the file), so the message points at the [nat] section.
    assert_one(
        &errs,
        "gw.toml:17: nat.port_range: ",
        &[
            "61000-65535 overlaps the kernel's ephemeral ports 32768-62000",
            "ip_local_port_range",
        ],
    );
}

#[test]
fn nat_timeouts_below_rfc_minimums() {
    let errs = errors(&with_line(18, "udp_timeout = 30"));
    assert_one(
        &errs,
        "gw.toml:18: nat.udp_timeout: ",
        &["30 is out of range", "RFC 4787"],
    );
    let errs = errors(&with_line(18, "icmp_timeout = 10"));
    assert_one(&errs, "gw.toml:18: nat.icmp_timeout: ", &["RFC 5508"]);
}

#[test]
fn nat_address_must_be_ipv4() {
    let errs = errors(&with_line(18, "address = \"2001:db8::1\""));
    assert_one(&errs, "gw.toml:18: nat.address: ", &["not an IPv4 address"]);
}

#[test]
fn nat_address_names_address_ipv6_for_an_ipv6_address() {
    let errs = errors(&with_line(18, "address = \"2001:db8::1\""));
    assert_one(
        &errs,
        "gw.toml:18: nat.address: ",
        &["is an IPv6 address", "address_ipv6"],
    );
}

#[test]
fn nat_masquerade_ipv6_is_off_by_default_and_must_be_a_bool() {
    let loaded = load_with(&valid(), HostFacts::unknown()).unwrap();
    assert!(
        !loaded.config.nat.masquerade_ipv6,
        "IPv6 is routed unless asked"
    );
    assert_eq!(loaded.config.nat.address_ipv6, None);
    let errs = errors(&with_line(18, "masquerade_ipv6 = \"yes\""));
    assert_one(
        &errs,
        "gw.toml:18: nat.masquerade_ipv6: ",
        &["found string", "expected true or false"],
    );
}

#[test]
fn nat_address_ipv6_must_be_a_global_ipv6_address() {
    for (value, why) in [
        ("172.23.0.3", "is an IPv4 address"),
        ("2001:db8::zz", "is not an IPv6 address"),
        ("fe80::3", "link-local"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
    ] {
        let text = valid() + &format!("masquerade_ipv6 = true\naddress_ipv6 = \"{value}\"\n");
        let errs = errors(&text);
        assert_one(
            &errs,
            "gw.toml:20: nat.address_ipv6: ",
            &[why, "e.g. \"2001:db8::3\""],
        );
    }
    let text = valid() + "masquerade_ipv6 = true\naddress_ipv6 = \"2001:db8::3\"\n";
    let nat = load_with(&text, HostFacts::unknown()).unwrap().config.nat;
    assert!(nat.masquerade_ipv6);
    assert_eq!(nat.address_ipv6, Some("2001:db8::3".parse().unwrap()));
}

#[test]
fn nat_address_ipv6_without_masquerade_ipv6_is_refused() {
    let errs = errors(&(valid() + "address_ipv6 = \"2001:db8::3\"\n"));
    assert_one(
        &errs,
        "gw.toml:19: nat.address_ipv6: ",
        &["masquerade_ipv6 is false", "set masquerade_ipv6 = true"],
    );
}

#[test]
fn missing_interface_on_this_host() {
    let host = HostFacts {
        interfaces: Some(vec!["lo".into(), "eth1".into()]),
        ..HostFacts::unknown()
    };
    let errs: Vec<String> = load_with(&valid(), host)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_one(
        &errs,
        "gw.toml:15: dataplane.interfaces: ",
        &["\"eth0\" does not exist", "present: lo, eth1"],
    );
}

#[test]
fn unavailable_cpu() {
    let host = HostFacts {
        cpu_count: Some(2),
        ..HostFacts::unknown()
    };
    let text = with_line(15, "interfaces = [\"eth0\"]\ncpus = [1, 7]");
    let errs: Vec<String> = load_with(&text, host)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_one(
        &errs,
        "gw.toml:16: dataplane.cpus[1]: ",
        &["CPU 7 is not available", "0-1"],
    );
}

#[test]
fn syntax_error_has_a_line() {
    let errs = errors(&with_line(3, "listen_port = = 51820"));
    assert_one(&errs, "gw.toml:3: ", &["not valid TOML"]);
}

#[test]
fn peer_written_as_a_single_table() {
    let text = valid().replacen("[[peer]]", "[peer]", 1).replace(
        &format!("[[peer]]\npublic_key = \"{PEER2}\"\nallowed_ips = [\"10.13.13.3/32\"]\n"),
        "",
    );
    let errs = errors(&text);
    assert_one(
        &errs,
        "gw.toml:6: peer: ",
        &["must be written as [[peer]] sections"],
    );
}

#[test]
fn two_single_bracket_peers_get_a_hint() {
    let text = valid().replace("[[peer]]", "[peer]");
    let errs = errors(&text);
    assert_one(
        &errs,
        "gw.toml:10: ",
        &[
            "duplicate key",
            "([peer] a second time); write each one as [[peer]]",
        ],
    );
}

#[test]
fn missing_sections() {
    let errs = errors("[nat]\nmasquerade = true\n");
    assert_one(
        &errs,
        "gw.toml: interface: ",
        &["missing [interface] section", "listen_port"],
    );
    assert_one(
        &errs,
        "gw.toml: dataplane: ",
        &["missing [dataplane] section"],
    );
}

#[test]
fn all_errors_are_reported_at_once_in_line_order() {
    let text = with_line(3, "listen_port = 0").replace("10.13.13.3/32", "10.0.0.300/32");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].starts_with("gw.toml:3:") && errs[1].starts_with("gw.toml:12:"));
}

/// `[interface] name` = `value` (a TOML value) on line 2 of the valid config.
fn with_name(value: &str) -> String {
    with_line(
        2,
        &format!("name = {value}\nprivate_key = \"{SERVER_KEY}\""),
    )
}

#[test]
fn device_name_defaults_to_wg0_and_names_the_control_socket() {
    let c = load_with(&valid(), HostFacts::unknown()).unwrap().config;
    assert_eq!(c.interface.name, "wg0");
    assert_eq!(
        c.control.socket,
        Path::new("/run/dataplane/wg0.control.sock")
    );
    let c = load_with(&with_name("\"wg1\""), HostFacts::unknown())
        .unwrap()
        .config;
    assert_eq!(c.interface.name, "wg1");
    assert_eq!(
        c.control.socket,
        Path::new("/run/dataplane/wg1.control.sock")
    );
    // 15 bytes is the most Linux takes; an explicit [control] socket is kept as written.
    let text = with_name("\"a-fifteen-byte0\"") + "\n[control]\nsocket = \"/tmp/x.sock\"\n";
    let c = load_with(&text, HostFacts::unknown()).unwrap().config;
    assert_eq!(c.interface.name, "a-fifteen-byte0");
    assert_eq!(c.control.socket, Path::new("/tmp/x.sock"));
}

#[test]
fn device_name_rejects_what_linux_rejects() {
    let cases = [
        ("\"\"", "is empty"),
        ("\"sixteen-bytes-xx\"", "is longer than 15 bytes"),
        // 9 characters, 16 bytes: Linux counts bytes.
        ("\"wgééééééé\"", "is longer than 15 bytes"),
        ("\".\"", "is a directory name"),
        ("\"..\"", "is a directory name"),
        ("\"wg/0\"", "contains '/'"),
        ("\"wg:0\"", "contains ':'"),
        ("\"wg 0\"", "contains whitespace"),
        ("\"wg\\t0\"", "contains whitespace"),
        ("\"wg\\u00000\"", "a NUL byte"),
    ];
    for (value, why) in cases {
        let errs = errors(&with_name(value));
        assert_eq!(errs.len(), 1, "{value}: {errs:#?}");
        assert_one(
            &errs,
            "gw.toml:2: interface.name: ",
            &[
                "is not an interface name: it ",
                why,
                "expected a Linux interface name for the tunnel device",
                "e.g. \"wg0\"",
            ],
        );
    }
    let errs = errors(&with_name("0"));
    assert_one(&errs, "gw.toml:2: interface.name: ", &["e.g. \"wg0\""]);
}
