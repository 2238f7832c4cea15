//! The gw.toml schema: every section, key, default and "what is allowed" text, in one place.
//!
//! The loader ([`super::gw_toml`]), `dataplane check`, the wg-quick importer and the renderer
//! all read this table, so an error message, a default and the template cannot disagree.

/// One key of a section.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    /// What is allowed, with an example; ends every error message about this key.
    pub expect: &'static str,
    pub required: bool,
}

/// A section (`[name]`, or `[[name]]` when `repeated`).
#[derive(Debug)]
pub struct Section {
    pub name: &'static str,
    pub repeated: bool,
    pub required: bool,
    pub fields: &'static [Field],
}

impl Section {
    pub fn field(&self, name: &str) -> &'static Field {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("schema: {}.{name} is not declared", self.name))
    }

    /// "a, b, c": the list shown when an unknown key is found.
    pub fn known_keys(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const fn field(name: &'static str, expect: &'static str) -> Field {
    Field {
        name,
        expect,
        required: false,
    }
}

const fn required(name: &'static str, expect: &'static str) -> Field {
    Field {
        name,
        expect,
        required: true,
    }
}

pub const KEY_EXPECT: &str =
    "expected a base64 WireGuard key (44 characters ending in '=', as printed by `wg genkey`)";

pub const INTERFACE: Section = Section {
    name: "interface",
    repeated: false,
    required: true,
    fields: &[
        field(
            "name",
            "expected a Linux interface name for the tunnel device: 1-15 bytes, no '/', ':' or whitespace, not \".\" or \"..\", e.g. \"wg0\"",
        ),
        field("private_key", KEY_EXPECT),
        field(
            "private_key_file",
            "expected a path to a file holding the base64 private key, e.g. \"/etc/dataplane/private.key\"",
        ),
        required(
            "listen_port",
            "expected a UDP port 1-65535, e.g. 51820",
        ),
        required(
            "address",
            "expected a list of interface addresses with prefix, e.g. [\"10.13.13.1/24\"]",
        ),
        field("mtu", "expected an integer 576-9000, e.g. 1420"),
    ],
};

pub const PEER: Section = Section {
    name: "peer",
    repeated: true,
    required: false,
    fields: &[
        field("name", "expected a short label, e.g. \"peer1\""),
        required("public_key", KEY_EXPECT),
        field("preshared_key", KEY_EXPECT),
        required(
            "allowed_ips",
            "expected a list of IP prefixes, e.g. [\"10.13.13.2/32\"]",
        ),
        field(
            "endpoint",
            "expected \"host:port\", e.g. \"198.51.100.7:51820\" or \"[2001:db8::1]:51820\"",
        ),
        field(
            "persistent_keepalive",
            "expected seconds 0-65535 (0 = off), e.g. 25",
        ),
    ],
};

pub const DATAPLANE: Section = Section {
    name: "dataplane",
    repeated: false,
    required: true,
    fields: &[
        field(
            "interfaces",
            "expected [\"eth0\"] (one-armed) or [\"wan0\", \"lan0\"] (two-armed)",
        ),
        field(
            "interface",
            "expected an interface name, e.g. \"eth0\" (one-armed)",
        ),
        field(
            "wan",
            "expected the WAN interface name, e.g. \"wan0\" (two-armed, with lan)",
        ),
        field(
            "lan",
            "expected the LAN interface name, e.g. \"lan0\" (two-armed, with wan)",
        ),
        field(
            "mode",
            "expected one of \"auto\", \"zerocopy\", \"copy\", \"skb\"",
        ),
        field(
            "queues",
            "expected a list of distinct NIC queue numbers, e.g. [0, 1]",
        ),
        field(
            "cpus",
            "expected a list of distinct CPU numbers, e.g. [2, 3]",
        ),
        field("batch_size", "expected an integer 1-1024, e.g. 64"),
    ],
};

pub const NAT: Section = Section {
    name: "nat",
    repeated: false,
    required: false,
    fields: &[
        field("masquerade", "expected true or false"),
        field(
            "address",
            "expected an IPv4 address, e.g. \"172.23.0.3\" (default: the egress interface's address)",
        ),
        field(
            "masquerade_ipv6",
            "expected true or false (default false: IPv6 from the tunnel is routed with the peers' own addresses)",
        ),
        field(
            "address_ipv6",
            "expected a global IPv6 address, e.g. \"2001:db8::3\" (default: the egress interface's global IPv6 address; needs masquerade_ipv6 = true)",
        ),
        field(
            "port_range",
            "expected \"LOW-HIGH\" within 1024-65535, e.g. \"61000-65535\"",
        ),
        field("capacity", "expected an integer 1-16777216, e.g. 65536"),
        field(
            "udp_timeout",
            "expected seconds >= 120 (RFC 4787 REQ-5), e.g. 120",
        ),
        field(
            "tcp_established_timeout",
            "expected seconds >= 7440 (RFC 5382 REQ-5: 2 h 4 min), e.g. 7440",
        ),
        field(
            "tcp_transitory_timeout",
            "expected seconds >= 240 (RFC 5382 REQ-5), e.g. 240",
        ),
        field(
            "icmp_timeout",
            "expected seconds >= 60 (RFC 5508 REQ-1), e.g. 60",
        ),
    ],
};

pub const METRICS: Section = Section {
    name: "metrics",
    repeated: false,
    required: false,
    fields: &[field(
        "listen",
        "expected \"address:port\" for the Prometheus endpoint, e.g. \"127.0.0.1:9586\"",
    )],
};

pub const CONTROL: Section = Section {
    name: "control",
    repeated: false,
    required: false,
    fields: &[field(
        "socket",
        "expected a path for the control socket, default \"/run/dataplane/NAME.control.sock\" for [interface] name NAME, e.g. \"/run/dataplane/wg0.control.sock\"",
    )],
};

/// Every top-level section, in the order the template and the renderer write them.
pub const SECTIONS: &[&Section] = &[&INTERFACE, &PEER, &DATAPLANE, &NAT, &METRICS, &CONTROL];

pub fn known_sections() -> String {
    SECTIONS
        .iter()
        .map(|s| {
            if s.repeated {
                format!("[[{}]]", s.name)
            } else {
                format!("[{}]", s.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Defaults, one home for each.
pub mod defaults {
    pub const MTU: u16 = 1420;
    pub const MTU_MIN: u16 = 576;
    pub const MTU_MAX: u16 = 9000;
    pub const BATCH_SIZE: u16 = 64;
    pub const BATCH_SIZE_MAX: u16 = 1024;
    pub const NAT_PORT_LO: u16 = 61000;
    pub const NAT_PORT_HI: u16 = 65535;
    /// Ports below this are never handed out by the NAT (privileged range).
    pub const NAT_PORT_FLOOR: u16 = 1024;
    pub const NAT_CAPACITY: u32 = 65536;
    pub const NAT_CAPACITY_MAX: u32 = 1 << 24;
    pub const UDP_TIMEOUT_S: u64 = 120;
    pub const TCP_ESTABLISHED_TIMEOUT_S: u64 = 7440;
    pub const TCP_TRANSITORY_TIMEOUT_S: u64 = 240;
    pub const ICMP_TIMEOUT_S: u64 = 60;
    /// `[interface] name`: the kernel device the slow path keeps, as kernel WireGuard's.
    pub const DEVICE_NAME: &str = "wg0";
    /// Directory of the control sockets (and the instance locks, `RuntimeDirectory=dataplane`).
    pub const CONTROL_DIR: &str = "/run/dataplane";

    /// `[control] socket` when unset: one per tunnel device, so two gateways on a host do not
    /// share one (`/run/dataplane/wg0.control.sock`).
    pub fn control_socket(device: &str) -> std::path::PathBuf {
        std::path::Path::new(CONTROL_DIR).join(format!("{device}.control.sock"))
    }
    /// Interface assumed when a wg-quick file's MASQUERADE rule names `eth+`.
    pub const WG_QUICK_INTERFACE: &str = "eth0";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_unique_keys() {
        for section in SECTIONS {
            let mut names: Vec<_> = section.fields.iter().map(|f| f.name).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "duplicate key in [{}]", section.name);
        }
    }
}
