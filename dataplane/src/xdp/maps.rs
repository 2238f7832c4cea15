//! The XDP program's maps as Rust sees them: what to redirect (`RedirectConfig`, written into
//! `config_map` and `listen_addrs`) and the per-CPU counters it keeps (`XdpCounter`).
//!
//! The byte layouts mirror `struct dp_config` and `enum dp_counter` in `redirect.bpf.c`; the
//! loader checks the map sizes against these at load time so a mismatch fails at start, not
//! silently on the wire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

/// What the XDP program sends to the AF_XDP sockets; everything else goes to the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectConfig {
    /// WireGuard's UDP listen port. `None`: no WireGuard traffic is redirected.
    pub listen_port: Option<u16>,
    /// Gateway addresses WireGuard datagrams must be sent to. Empty: any destination address.
    pub listen_addrs: Vec<IpAddr>,
    /// Source-NAT egress address for IPv4 return traffic. `None`: no IPv4 NAT redirect.
    pub nat_v4: Option<Ipv4Addr>,
    /// Source-NAT egress address for IPv6 return traffic. `None`: no IPv6 NAT redirect.
    pub nat_v6: Option<Ipv6Addr>,
    /// Ports (TCP/UDP destination ports, ICMP echo ids) the NAT allocates from. `None`: no
    /// NAT return traffic is redirected.
    pub nat_ports: Option<RangeInclusive<u16>>,
    /// Longest frame the program gives the workers (the interface's MTU plus the Ethernet
    /// header); longer ones, merged by GRO/LRO/GSO, are dropped and counted. `None`: no limit.
    pub max_frame_len: Option<u16>,
    /// The interface's own MAC: only frames addressed to it go to the sockets; a frame for
    /// another host (seen when the NIC is promiscuous) goes to the kernel, which discards it,
    /// and counts `pass_other_host`. Read when the program is attached: after `ip link set
    /// address`, restart the gateway. `None`: any destination MAC.
    pub local_mac: Option<[u8; 6]>,
}

/// Size of `struct dp_config` in `redirect.bpf.c`.
pub(crate) const CONFIG_VALUE_SIZE: usize = 40;
/// Capacity of the `listen_addrs` map in `redirect.bpf.c`.
pub(crate) const MAX_LISTEN_ADDRS: usize = 64;

impl RedirectConfig {
    /// The `config_map` value: `struct dp_config` (ports in host order, addresses in network
    /// order, as the program compares them).
    pub(crate) fn to_map_value(&self) -> [u8; CONFIG_VALUE_SIZE] {
        let mut v = [0u8; CONFIG_VALUE_SIZE];
        v[0..2].copy_from_slice(&self.listen_port.unwrap_or(0).to_ne_bytes());
        // The program checks low <= port <= high; low > high matches nothing.
        let (low, high) = match &self.nat_ports {
            Some(r) => (*r.start(), *r.end()),
            None => (1, 0),
        };
        v[2..4].copy_from_slice(&low.to_ne_bytes());
        v[4..6].copy_from_slice(&high.to_ne_bytes());
        v[6] = self.nat_v4.is_some() as u8;
        v[7] = self.nat_v6.is_some() as u8;
        v[8] = !self.listen_addrs.is_empty() as u8;
        v[9] = self.local_mac.is_some() as u8;
        v[10..12].copy_from_slice(&self.max_frame_len.unwrap_or(0).to_ne_bytes());
        v[12..16].copy_from_slice(&self.nat_v4.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
        v[16..32].copy_from_slice(&self.nat_v6.unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
        v[32..38].copy_from_slice(&self.local_mac.unwrap_or_default());
        v
    }

    /// Keys of the `listen_addrs` map.
    pub(crate) fn listen_addr_keys(&self) -> impl Iterator<Item = [u8; 16]> + '_ {
        self.listen_addrs.iter().map(|&a| listen_addr_key(a))
    }
}

/// The `listen_addrs` map key of `addr`: IPv4 addresses as IPv4-mapped IPv6.
pub(crate) fn listen_addr_key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

macro_rules! xdp_counters {
    ($($variant:ident = $idx:literal => $name:literal: $doc:literal,)*) => {
        /// Where the XDP program sent a frame, and why. Index = `enum dp_counter` in C.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum XdpCounter { $(#[doc = $doc] $variant = $idx,)* }

        impl XdpCounter {
            /// Every counter, in map index order.
            pub const ALL: &'static [XdpCounter] = &[$(XdpCounter::$variant,)*];

            /// Stable name for stats output and metric labels.
            pub fn name(self) -> &'static str {
                match self { $(XdpCounter::$variant => $name,)* }
            }
        }
    };
}

xdp_counters! {
    RedirectWireguard = 0 => "redirect_wireguard": "UDP to the WireGuard listen port, sent to the AF_XDP socket.",
    RedirectNatReturn = 1 => "redirect_nat_return": "Return traffic for a NAT port / echo id / ICMP error, sent to the socket.",
    PassNoSocket = 2 => "pass_no_socket": "Matched, but the rx queue has no AF_XDP socket: passed to the kernel.",
    PassNotIp = 3 => "pass_not_ip": "Not IPv4/IPv6 (ARP, LLDP, ...): passed to the kernel.",
    PassTruncated = 4 => "pass_truncated": "Headers shorter than they claim: passed to the kernel.",
    PassFragment = 5 => "pass_fragment": "IPv4 fragment not of NAT return traffic (the host's own, or a later fragment that overtook its first), or an IPv6 extension header: passed to the kernel.",
    PassNotOurs = 6 => "pass_not_ours": "Well-formed IP the gateway does not take (host traffic): passed.",
    PassVlan = 7 => "pass_vlan": "802.1Q/802.1ad tagged frame (the pipeline takes untagged frames only): passed.",
    DropOversized = 8 => "drop_oversized": "Ours, but longer than the MTU (merged by GRO/LRO/GSO before XDP): dropped.",
    PassNatUnmapped = 9 => "pass_nat_unmapped": "To a NAT port or echo id no mapping holds (the host's own traffic): passed.",
    RedirectNatFragment = 10 => "redirect_nat_fragment": "A later IPv4 fragment of NAT return traffic whose first fragment went to the socket: sent to the socket too.",
    PassOtherHost = 11 => "pass_other_host": "Would be taken, but addressed to another host's MAC (a promiscuous NIC sees it): passed to the kernel, which discards it.",
}

/// A snapshot of the program's counters, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    values: [u64; XdpCounter::ALL.len()],
}

impl XdpCounters {
    /// The value of one counter.
    pub fn get(&self, c: XdpCounter) -> u64 {
        self.values[c as usize]
    }

    /// Every counter with its name, in map order.
    pub fn iter(&self) -> impl Iterator<Item = (XdpCounter, u64)> + '_ {
        XdpCounter::ALL.iter().map(|&c| (c, self.get(c)))
    }

    /// Frames sent to AF_XDP sockets.
    pub fn redirected(&self) -> u64 {
        self.iter()
            .filter(|(c, _)| c.name().starts_with("redirect_"))
            .map(|(_, v)| v)
            .sum()
    }

    /// Frames passed to the kernel, whatever the reason.
    pub fn passed(&self) -> u64 {
        self.iter()
            .filter(|(c, _)| c.name().starts_with("pass_"))
            .map(|(_, v)| v)
            .sum()
    }

    pub(crate) fn add(&mut self, c: XdpCounter, v: u64) {
        self.values[c as usize] = self.values[c as usize].wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_indices_are_dense_and_ordered() {
        for (i, c) in XdpCounter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{} out of order", c.name());
        }
    }

    #[test]
    fn config_value_layout_matches_dp_config() {
        let cfg = RedirectConfig {
            listen_port: Some(51820),
            listen_addrs: vec!["10.0.0.1".parse().unwrap()],
            nat_v4: Some(Ipv4Addr::new(172, 23, 0, 3)),
            nat_v6: Some("fd00::3".parse().unwrap()),
            nat_ports: Some(40000..=50000),
            max_frame_len: Some(1514),
            local_mac: Some([0x02, 0, 0, 0, 0, 0x03]),
        };
        let v = cfg.to_map_value();
        assert_eq!(u16::from_ne_bytes([v[0], v[1]]), 51820);
        assert_eq!(u16::from_ne_bytes([v[2], v[3]]), 40000);
        assert_eq!(u16::from_ne_bytes([v[4], v[5]]), 50000);
        assert_eq!(&v[6..10], &[1, 1, 1, 1]);
        assert_eq!(u16::from_ne_bytes([v[10], v[11]]), 1514);
        assert_eq!(&v[12..16], &[172, 23, 0, 3]);
        assert_eq!(v[16], 0xfd);
        assert_eq!(v[31], 3);
        assert_eq!(&v[32..38], &[0x02, 0, 0, 0, 0, 0x03]);
        let keys: Vec<_> = cfg.listen_addr_keys().collect();
        assert_eq!(&keys[0][10..], &[0xff, 0xff, 10, 0, 0, 1]);
    }

    #[test]
    fn default_config_redirects_nothing() {
        let v = RedirectConfig::default().to_map_value();
        assert_eq!(u16::from_ne_bytes([v[0], v[1]]), 0, "listen port 0 = off");
        let (low, high) = (
            u16::from_ne_bytes([v[2], v[3]]),
            u16::from_ne_bytes([v[4], v[5]]),
        );
        assert!(low > high, "empty NAT range");
        assert_eq!(&v[6..10], &[0, 0, 0, 0], "no address or MAC filter");
        assert_eq!(&v[10..12], &[0, 0], "no frame length limit");
    }
}
