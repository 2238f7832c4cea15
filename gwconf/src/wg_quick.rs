//! The wg-quick `wg0.conf` loader: the file the linuxserver/wireguard container writes, turned
//! into a [`GatewayConfig`].
//!
//! The only shell hooks accepted are the ones that make the kernel forward and masquerade
//! tunnel traffic (`iptables -A FORWARD -i %i -j ACCEPT`, `... -o %i -j ACCEPT`,
//! `iptables -t nat -A POSTROUTING -o eth+ -j MASQUERADE`, the same with `ip6tables`, their
//! `-D` twins in PostDown, and `sysctl -w net.ipv4.ip_forward=1` or
//! `net.ipv6.conf.all.forwarding=1`): the data plane does exactly that itself, so they are
//! replaced by `[nat] masquerade = true` (IPv4) and `masquerade_ipv6 = true` (IPv6) with a
//! note. Any other hook is refused, because the data plane takes the packets before iptables
//! would see them.

use super::error::{ErrorSink, Locations};
use super::gw_toml::{default_control, default_dataplane, default_nat};
use super::keys::{PresharedKey, PrivateKey, PublicKey};
use super::schema::defaults;
use super::types::*;
use super::values;
use super::Loaded;
use ipnet::IpNet;

/// What the hooks of a wg-quick file amount to.
#[derive(Debug, Default)]
struct Hooks {
    forward: bool,
    /// Output interface of each iptables MASQUERADE rule (`None` = no `-o`).
    masquerade: Vec<Option<String>>,
    /// The same for ip6tables.
    masquerade6: Vec<Option<String>>,
}

/// Parses wg-quick text. `ifname` is the tunnel's name (the file stem, `wg0`), the device's
/// `[interface] name` as wg-quick takes it, and is substituted for
/// `%i`; `interfaces` overrides the NIC(s) inferred from the MASQUERADE rule.
pub fn parse(
    text: &str,
    file: &str,
    ifname: &str,
    interfaces: Option<&Interfaces>,
) -> Result<(Loaded, Locations), super::ConfigErrors> {
    let mut sink = ErrorSink::new(file);
    let mut loc = Locations::default();
    let mut notes = Vec::new();

    #[derive(PartialEq)]
    enum At {
        Start,
        Interface,
        Peer,
    }
    let mut at = At::Start;
    let mut seen_interface = false;
    let mut private_key: Option<PrivateKey> = None;
    // A PrivateKey line that did not parse has its own error; "missing" would be wrong.
    let mut private_key_line = false;
    let mut listen_port: Option<u16> = None;
    let mut address = Vec::new();
    let mut mtu = defaults::MTU;
    let mut hooks = Hooks::default();
    let mut peers: Vec<PeerConfig> = Vec::new();
    let mut peer_has_key = Vec::new();
    let mut interface_line = None;
    let name = crate::values::device_name(ifname).unwrap_or_else(|e| {
        sink.push(
            None,
            "interface.name",
            format!("the tunnel device is named after the file, as wg-quick does: {e}; rename the file, e.g. wg1.conf"),
        );
        defaults::DEVICE_NAME.to_string()
    });

    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let (content, comment) = match raw.find('#') {
            Some(i) => (&raw[..i], Some(raw[i + 1..].trim())),
            None => (raw, None),
        };
        let content = content.trim();
        if content.is_empty() {
            // linuxserver writes "# peer1" right under [Peer]: keep it as the peer's name
            // (only a valid one: any other comment stays a comment).
            if let (At::Peer, Some(c), Some(p)) = (&at, comment, peers.last_mut()) {
                if p.name.is_none()
                    && !c.is_empty()
                    && crate::values::peer_name(c).is_ok()
                    && peer_has_key.last() == Some(&false)
                {
                    p.name = Some(c.to_string());
                }
            }
            continue;
        }
        if content.starts_with('[') && content.ends_with(']') {
            let name = content[1..content.len() - 1].trim();
            if name.eq_ignore_ascii_case("interface") {
                if seen_interface {
                    sink.push(
                        Some(line),
                        "Interface",
                        "a second [Interface] section; a file describes one tunnel",
                    );
                }
                seen_interface = true;
                interface_line = Some(line);
                loc.set("interface", line);
                at = At::Interface;
            } else if name.eq_ignore_ascii_case("peer") {
                let i = peers.len();
                loc.set(format!("peer[{i}]"), line);
                peers.push(PeerConfig {
                    name: None,
                    public_key: PublicKey::from_bytes([0; 32]),
                    preshared_key: None,
                    allowed_ips: Vec::new(),
                    endpoint: None,
                    persistent_keepalive: None,
                });
                peer_has_key.push(false);
                at = At::Peer;
            } else {
                sink.push(
                    Some(line),
                    name,
                    "unknown section; wg-quick files have [Interface] and [Peer]",
                );
                at = At::Start;
            }
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            sink.push(Some(line), "", format!("{content:?} is not `Key = Value`"));
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        let lower = key.to_ascii_lowercase();
        match at {
            At::Start => sink.push(
                Some(line),
                key,
                "appears before any [Interface] or [Peer] section",
            ),
            At::Interface => {
                let field = format!("Interface.{key}");
                match lower.as_str() {
                    "privatekey" => {
                        private_key_line = true;
                        match PrivateKey::from_base64(value) {
                            Ok(k) => private_key = Some(k),
                            Err(e) => sink.push(Some(line), field, e),
                        }
                    }
                    "listenport" => match value.parse::<u16>() {
                        Ok(p) if p > 0 => {
                            loc.set("interface.listen_port", line);
                            listen_port = Some(p);
                        }
                        _ => sink.push(Some(line), field, format!("{value:?} is not a port; expected 1-65535, e.g. 51820")),
                    },
                    "address" => {
                        loc.set("interface.address", line);
                        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            loc.set(format!("interface.address[{}]", address.len()), line);
                            match values::interface_address(part) {
                                Ok(a) => match linuxserver_subnet(part, a) {
                                    Some(wide) => {
                                        notes.push(linuxserver_address_note(file, line, part, wide));
                                        notes.push(linuxserver_dns_note(wide));
                                        address.push(wide);
                                    }
                                    None => address.push(a),
                                },
                                Err(e) => sink.push(Some(line), field.clone(), e),
                            }
                        }
                    }
                    "mtu" => match value.parse::<u16>() {
                        Ok(m) if (defaults::MTU_MIN..=defaults::MTU_MAX).contains(&m) => {
                            loc.set("interface.mtu", line);
                            mtu = m
                        }
                        _ => sink.push(
                            Some(line),
                            field,
                            format!("{value:?} is not an MTU; expected {}-{}, e.g. 1420", defaults::MTU_MIN, defaults::MTU_MAX),
                        ),
                    },
                    "postup" | "postdown" => {
                        let down = lower == "postdown";
                        if let Err(e) = classify_hooks(value, ifname, down, &mut hooks) {
                            sink.push(Some(line), field, e);
                        }
                    }
                    "preup" | "predown" => sink.push(
                        Some(line),
                        field,
                        "is not supported: the data plane runs no shell hooks; only PostUp/PostDown forwarding and MASQUERADE rules are understood (and replaced by the built-in NAT)",
                    ),
                    "dns" => notes.push(format!(
                        "{file}:{line}: DNS = {value} is ignored: it configures the resolver of a client, the gateway does not use it"
                    )),
                    "saveconfig" if value.eq_ignore_ascii_case("false") => {}
                    "table" if value.eq_ignore_ascii_case("auto") => {}
                    "saveconfig" | "table" | "fwmark" => sink.push(
                        Some(line),
                        field,
                        format!(
                            "{key} = {value} is not supported: the data plane routes with the kernel's main table and does not rewrite its own config; remove the line"
                        ),
                    ),
                    _ => sink.push(
                        Some(line),
                        field,
                        "unknown key; [Interface] accepts PrivateKey, ListenPort, Address, MTU, DNS, PostUp, PostDown",
                    ),
                }
            }
            At::Peer => {
                let i = peers.len() - 1;
                let field = format!("Peer[{i}].{key}");
                let peer = &mut peers[i];
                match lower.as_str() {
                    "publickey" => {
                        loc.set(format!("peer[{i}].public_key"), line);
                        match PublicKey::from_base64(value) {
                            Ok(k) => {
                                peer.public_key = k;
                                peer_has_key[i] = true;
                            }
                            Err(e) => {
                                peer_has_key[i] = true;
                                sink.push(Some(line), field, e)
                            }
                        }
                    }
                    "presharedkey" => match PresharedKey::from_base64(value) {
                        Ok(k) => peer.preshared_key = Some(k),
                        Err(e) => sink.push(Some(line), field, e),
                    },
                    "allowedips" => {
                        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            let j = peer.allowed_ips.len();
                            match values::allowed_ip(part) {
                                Ok(net) => {
                                    loc.set(format!("peer[{i}].allowed_ips[{j}]"), line);
                                    peer.allowed_ips.push(net);
                                }
                                Err(e) => sink.push(Some(line), format!("{field}[{j}]"), e),
                            }
                        }
                    }
                    "endpoint" => match values::endpoint(value) {
                        Ok(e) => peer.endpoint = Some(e),
                        Err(e) => sink.push(Some(line), field, e),
                    },
                    "persistentkeepalive" => {
                        if value.eq_ignore_ascii_case("off") {
                            peer.persistent_keepalive = None;
                        } else {
                            match value.parse::<u16>() {
                                Ok(0) => peer.persistent_keepalive = None,
                                Ok(s) => peer.persistent_keepalive = Some(s),
                                Err(_) => sink.push(
                                    Some(line),
                                    field,
                                    format!("{value:?} is not a keepalive; expected seconds 1-65535 or \"off\", e.g. 25"),
                                ),
                            }
                        }
                    }
                    _ => sink.push(
                        Some(line),
                        field,
                        "unknown key; [Peer] accepts PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive",
                    ),
                }
            }
        }
    }

    if !seen_interface {
        sink.push(None, "Interface", "missing [Interface] section");
    } else {
        if private_key.is_none() && !private_key_line {
            sink.push(
                interface_line,
                "Interface.PrivateKey",
                "missing; expected the gateway's base64 private key",
            );
        }
        if listen_port.is_none() {
            sink.push(
                interface_line,
                "Interface.ListenPort",
                "missing; a gateway needs a fixed UDP port, e.g. ListenPort = 51820",
            );
        }
        if address.is_empty() {
            sink.push(
                interface_line,
                "Interface.Address",
                "missing; expected e.g. Address = 10.13.13.1",
            );
        }
    }
    for (i, has) in peer_has_key.iter().enumerate() {
        if !has {
            sink.push(
                loc.line(&format!("peer[{i}]")),
                format!("Peer[{i}].PublicKey"),
                "missing; expected the peer's base64 public key",
            );
        }
        if peers[i].allowed_ips.is_empty() {
            sink.push(
                loc.line(&format!("peer[{i}]")),
                format!("Peer[{i}].AllowedIPs"),
                "missing; expected the peer's tunnel address, e.g. AllowedIPs = 10.13.13.2/32",
            );
        }
    }

    let mut dataplane = default_dataplane();
    let mut nat = default_nat();
    nat.masquerade = !hooks.masquerade.is_empty();
    nat.masquerade_ipv6 = !hooks.masquerade6.is_empty();
    match interfaces {
        Some(ifs) => dataplane.interfaces = ifs.clone(),
        None => {
            let named: Vec<&String> = hooks
                .masquerade
                .iter()
                .chain(&hooks.masquerade6)
                .flatten()
                .collect();
            let nic = match named.first() {
                Some(o) if o.ends_with('+') => {
                    let guess = if o.as_str() == "eth+" {
                        defaults::WG_QUICK_INTERFACE.to_string()
                    } else {
                        format!("{}0", o.trim_end_matches('+'))
                    };
                    notes.push(format!(
                        "MASQUERADE matched any interface named {o}; the data plane attaches to {guess}. If the gateway's NIC has another name, set [dataplane] interfaces (or pass --interface)"
                    ));
                    guess
                }
                Some(o) => (*o).clone(),
                None => {
                    notes.push(format!(
                        "no MASQUERADE rule names an interface; the data plane attaches to {}. Set [dataplane] interfaces (or pass --interface) if the NIC has another name",
                        defaults::WG_QUICK_INTERFACE
                    ));
                    defaults::WG_QUICK_INTERFACE.to_string()
                }
            };
            dataplane.interfaces = Interfaces::OneArmed { interface: nic };
        }
    }
    if nat.masquerade || hooks.forward {
        notes.push(format!(
            "PostUp/PostDown forwarding{} rules are replaced by the built-in data plane{}; no iptables rules are installed",
            if nat.masquerade { " and MASQUERADE" } else { "" },
            if nat.masquerade { " and its source NAT ([nat] masquerade = true)" } else { "" },
        ));
    }
    if !nat.masquerade {
        notes.push("no MASQUERADE rule: tunnel traffic is forwarded without source NAT ([nat] masquerade = false)".to_string());
    }
    if nat.masquerade_ipv6 {
        notes.push("ip6tables MASQUERADE rules are replaced by the built-in IPv6 source NAT ([nat] masquerade_ipv6 = true)".to_string());
    } else if let Some(v6) = address.iter().find(|a| a.addr().is_ipv6()) {
        notes.push(format!(
            "no ip6tables MASQUERADE rule: IPv6 from the tunnel is routed with the peers' own addresses ([nat] masquerade_ipv6 = false), so the upstream router must route {} to this gateway; set masquerade_ipv6 = true to translate it instead",
            v6.trunc()
        ));
    }

    let control = default_control(&name);
    let config = GatewayConfig {
        interface: InterfaceConfig {
            name,
            private_key: private_key.unwrap_or_else(|| PrivateKey::from_bytes([0; 32])),
            private_key_file: None,
            listen_port: listen_port.unwrap_or(0),
            address,
            mtu,
        },
        peers,
        dataplane,
        nat,
        metrics: MetricsConfig::default(),
        control,
    };
    sink.into_result(Loaded {
        config,
        notes,
        warnings: Vec::new(),
    })
    .map(|l| (l, loc))
}

/// Classifies one PostUp/PostDown value (commands separated by `;`).
fn classify_hooks(value: &str, ifname: &str, down: bool, hooks: &mut Hooks) -> Result<(), String> {
    for cmd in value.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        let cmd = cmd.replace("%i", ifname);
        classify_command(&cmd, ifname, down, hooks).map_err(|why| {
            format!(
                "`{cmd}` {why}. The data plane takes tunnel traffic before iptables sees it, so only forwarding and MASQUERADE hooks are understood (they are replaced by the built-in NAT); run other commands outside the gateway's config"
            )
        })?;
    }
    Ok(())
}

fn classify_command(cmd: &str, ifname: &str, down: bool, hooks: &mut Hooks) -> Result<(), String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let Some((prog, args)) = words.split_first() else {
        return Ok(());
    };
    let prog = prog.rsplit('/').next().unwrap_or(prog);
    if prog == "sysctl" {
        let settings: Vec<&&str> = args.iter().filter(|a| **a != "-w" && **a != "-q").collect();
        if !settings.is_empty()
            && settings.iter().all(|s| {
                let s = s.replace('/', ".");
                matches!(
                    s.as_str(),
                    "net.ipv4.ip_forward=1"
                        | "net.ipv4.conf.all.forwarding=1"
                        | "net.ipv6.conf.all.forwarding=1"
                        | "net.ipv6.conf.default.forwarding=1"
                )
            })
        {
            hooks.forward = true;
            return Ok(());
        }
        return Err("is a sysctl other than enabling IPv4 or IPv6 forwarding".into());
    }
    let ipv6 = match prog {
        "iptables" | "iptables-legacy" | "iptables-nft" => false,
        "ip6tables" | "ip6tables-legacy" | "ip6tables-nft" => true,
        _ => {
            return Err(format!(
                "runs {prog}, which is not an iptables/ip6tables forwarding/MASQUERADE rule"
            ))
        }
    };
    let mut table = "filter";
    let mut op = None;
    let mut chain = "";
    let (mut input, mut output, mut target) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .copied()
                .ok_or_else(|| format!("has {a} without a value"))
        };
        match *a {
            "-w" | "--wait" => {}
            "-t" | "--table" => table = val()?,
            "-A" | "--append" | "-I" | "--insert" | "-D" | "--delete" => {
                op = Some(*a);
                chain = val()?;
            }
            "-i" | "--in-interface" => input = Some(val()?),
            "-o" | "--out-interface" => output = Some(val()?),
            "-j" | "--jump" => target = Some(val()?),
            // A source match limits MASQUERADE to tunnel addresses; the built-in NAT only ever
            // sees tunnel traffic, so it changes nothing.
            "-s" | "--source" => {
                val()?;
            }
            other => {
                return Err(format!(
                    "uses {other}, which the built-in NAT has no equivalent for"
                ))
            }
        }
    }
    let deleting = matches!(op, Some("-D" | "--delete"));
    if op.is_none() {
        return Err("neither appends (-A/-I) nor deletes (-D) a rule".into());
    }
    if deleting != down {
        return Err(if down {
            "adds a rule in PostDown (expected -D)".into()
        } else {
            "deletes a rule in PostUp (expected -A or -I)".into()
        });
    }
    match (table, chain, target) {
        ("filter", "FORWARD", Some("ACCEPT"))
            if (input == Some(ifname) && output.is_none()) || (output == Some(ifname) && input.is_none()) =>
        {
            hooks.forward = true;
            Ok(())
        }
        ("nat", "POSTROUTING", Some("MASQUERADE")) if input.is_none() => {
            if output == Some(ifname) {
                return Err(format!("masquerades traffic into the tunnel ({ifname}), which the built-in NAT does not do"));
            }
            if !down {
                let rules = if ipv6 {
                    &mut hooks.masquerade6
                } else {
                    &mut hooks.masquerade
                };
                rules.push(output.map(str::to_string));
            }
            Ok(())
        }
        _ => Err("is not one of the forwarding (FORWARD -i/-o <tunnel> -j ACCEPT) or MASQUERADE (-t nat POSTROUTING -j MASQUERADE) rules".into()),
    }
}

/// The tunnel subnet of the linuxserver/wireguard container's `Address = 10.13.13.1` (no
/// prefix): the container hands out `${INTERNAL_SUBNET}.N`, a /24. Taken literally it is a
/// /32, which leaves `peer add` no address to hand out. `None` for any other form.
fn linuxserver_subnet(text: &str, parsed: IpNet) -> Option<IpNet> {
    match parsed {
        IpNet::V4(v4) if !text.contains('/') => Some(IpNet::V4(
            ipnet::Ipv4Net::new(v4.addr(), 24).expect("24 <= 32"),
        )),
        _ => None,
    }
}

fn linuxserver_address_note(file: &str, line: usize, text: &str, wide: IpNet) -> String {
    format!(
        "{file}:{line}: Address = {text} has no prefix length (as the linuxserver/wireguard container writes it); taken as {wide}, the container's tunnel subnet (INTERNAL_SUBNET, a /24), so `dataplane peer add` can hand out addresses in it. Edit [interface] address if your subnet differs"
    )
}

fn linuxserver_dns_note(wide: IpNet) -> String {
    let own = wide.addr();
    format!(
        "clients of the linuxserver/wireguard container use DNS = {own} (its CoreDNS); this gateway runs no resolver, so nothing answers there now. Either run one on this host listening on {own} (it reaches the host through wg0), e.g. `dnsmasq --interface=wg0 --bind-dynamic --no-resolv --server=1.1.1.1`, or give clients a resolver they reach through the NAT (change DNS in their files; new peers: `dataplane peer add NAME --dns ADDR`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(cmd: &str, down: bool) -> Result<Hooks, String> {
        let mut h = Hooks::default();
        classify_hooks(cmd, "wg0", down, &mut h).map(|_| h)
    }

    #[test]
    fn linuxserver_hooks_are_recognised() {
        let h = classify(
            "iptables -A FORWARD -i %i -j ACCEPT; iptables -A FORWARD -o %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth+ -j MASQUERADE",
            false,
        )
        .unwrap();
        assert!(h.forward);
        assert_eq!(h.masquerade, vec![Some("eth+".to_string())]);
        let h = classify(
            "iptables -D FORWARD -i %i -j ACCEPT; iptables -D FORWARD -o %i -j ACCEPT; iptables -t nat -D POSTROUTING -o eth+ -j MASQUERADE",
            true,
        )
        .unwrap();
        assert!(h.forward && h.masquerade.is_empty());
    }

    #[test]
    fn ip6tables_hooks_are_recognised_as_their_ipv4_twins() {
        let h = classify(
            "iptables -t nat -A POSTROUTING -o eth+ -j MASQUERADE; ip6tables -A FORWARD -i %i -j ACCEPT; ip6tables -A FORWARD -o %i -j ACCEPT; ip6tables -t nat -A POSTROUTING -o eth+ -j MASQUERADE",
            false,
        )
        .unwrap();
        assert!(h.forward);
        assert_eq!(h.masquerade, vec![Some("eth+".to_string())]);
        assert_eq!(h.masquerade6, vec![Some("eth+".to_string())]);
        let h = classify(
            "ip6tables-nft -t nat -I POSTROUTING -s fd13::/64 -o eth0 -j MASQUERADE",
            false,
        )
        .unwrap();
        assert!(h.masquerade.is_empty());
        assert_eq!(h.masquerade6, vec![Some("eth0".to_string())]);
        let h = classify(
            "ip6tables -D FORWARD -i %i -j ACCEPT; ip6tables -t nat -D POSTROUTING -o eth+ -j MASQUERADE",
            true,
        )
        .unwrap();
        assert!(h.forward && h.masquerade6.is_empty());
        assert!(
            classify("sysctl -w net.ipv6.conf.all.forwarding=1", false)
                .unwrap()
                .forward
        );
    }

    #[test]
    fn other_hooks_are_refused_with_a_reason() {
        let e = classify("iptables -A INPUT -p tcp --dport 22 -j DROP", false).unwrap_err();
        assert!(
            e.contains("`iptables -A INPUT -p tcp --dport 22 -j DROP`"),
            "{e}"
        );
        let e = classify("ip6tables -A INPUT -p udp --dport 53 -j DROP", false).unwrap_err();
        assert!(
            e.contains("`ip6tables -A INPUT -p udp --dport 53 -j DROP` uses -p"),
            "{e}"
        );
        let e = classify("ip6tables -t mangle -A FORWARD -j TCPMSS", false).unwrap_err();
        assert!(e.contains("is not one of the forwarding"), "{e}");
        let e = classify("ip6tables -t nat -A POSTROUTING -o %i -j MASQUERADE", false).unwrap_err();
        assert!(e.contains("into the tunnel"), "{e}");
        let e = classify("curl http://example.org", false).unwrap_err();
        assert!(e.contains("curl"), "{e}");
        let e = classify("iptables -A FORWARD -i %i -j ACCEPT", true).unwrap_err();
        assert!(e.contains("expected -D"), "{e}");
        let e = classify("iptables -t nat -A POSTROUTING -o %i -j MASQUERADE", false).unwrap_err();
        assert!(e.contains("into the tunnel"), "{e}");
    }

    #[test]
    fn ip_forward_sysctl_is_forwarding() {
        assert!(
            classify("sysctl -w net.ipv4.ip_forward=1", false)
                .unwrap()
                .forward
        );
        assert!(classify("sysctl -w kernel.panic=1", false).is_err());
    }
}
