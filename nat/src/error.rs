//! Why the NAT refused or dropped a packet. Every variant is one drop counter in
//! [`crate::NatCounters`], with a name and a sentence an operator can act on.

macro_rules! nat_errors {
    ($($variant:ident => $name:literal : $help:literal,)*) => {
        /// A packet the NAT did not translate. The caller drops it (or, for
        /// [`NatError::TableFull`] / [`NatError::NoFreePort`], may answer with
        /// [`crate::write_admin_prohibited`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum NatError { $($variant,)* }

        impl NatError {
            pub const ALL: &'static [NatError] = &[$(NatError::$variant,)*];
            pub const COUNT: usize = [$(NatError::$variant,)*].len();

            /// Stable snake_case name for metrics.
            pub fn name(self) -> &'static str {
                match self { $(NatError::$variant => $name,)* }
            }

            /// What it means, for operators.
            pub fn help(self) -> &'static str {
                match self { $(NatError::$variant => $help,)* }
            }
        }
    };
}

nat_errors! {
    Truncated => "truncated": "Packet shorter than its headers claim.",
    NotIpv4 => "not_ipv4": "IP version is not 4.",
    BadIpHeader => "bad_ip_header": "IPv4 header length or total length is invalid.",
    BadIpChecksum => "bad_ip_checksum": "IPv4 header checksum does not verify.",
    Fragment => "fragment": "IPv4 fragment the NAT does not follow (of an ICMP error, or hairpinned): dropped, as the kernel would forward it untranslated.",
    FragmentUnknown => "fragment_unknown": "Later IPv4 fragment of a datagram whose first fragment was not seen (lost, reordered after it, or expired after 30 s): dropped.",
    UnsupportedProtocol => "unsupported_protocol": "Not TCP, UDP or ICMP: not translated.",
    UnsupportedIcmp => "unsupported_icmp": "ICMP type the NAT does not forward (redirect, source quench, unsolicited reply).",
    NoMapping => "no_mapping": "Return traffic for a port with no live mapping (unsolicited or expired).",
    TableFull => "table_full": "Conntrack table at capacity: new flow refused; raise capacity or lower timeouts.",
    NoFreePort => "no_free_port": "Every port of this worker's slice is mapped on the chosen egress address: new flow refused; widen the port range or add egress addresses.",
    IcmpBadChecksum => "icmp_bad_checksum": "ICMP error message checksum does not verify (RFC 5508 REQ-3).",
    IcmpErrorBadChecksum => "icmp_error_embedded_bad_checksum": "IP header quoted in an ICMP error has a bad checksum (RFC 5508 REQ-3 a).",
    IcmpErrorMalformed => "icmp_error_malformed": "ICMP error quotes too little of the original packet, a fragment, an IPv6 extension header, or another ICMP error.",
    IcmpErrorNoMapping => "icmp_error_no_mapping": "ICMP error about a flow with no mapping (RFC 5508 REQ-4/5: dropped).",
    OffPathRst => "offpath_rst": "TCP RST to a live mapping from an endpoint its inside host is not talking to: a spoof aimed at the NAT state, dropped.",
    IcmpErrorOffPath => "icmp_error_offpath": "ICMP error quoting a packet to an endpoint the mapping is not talking to: forged, dropped.",
    NotIpv6 => "not_ipv6": "IP version is not 6 (a packet given to the IPv6 NAT).",
    Ipv6ExtensionHeader => "ipv6_extension_header": "IPv6 packet from inside with an extension header (hop-by-hop, routing, fragment, destination options, AH...): the IPv6 NAT translates only TCP, UDP and ICMPv6 right after the fixed header.",
}
