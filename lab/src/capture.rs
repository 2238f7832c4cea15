//! Packet captures of the lab's wires (a python3 AF_PACKET reader writes pcap, tshark decodes) and their reading in the
//! article's terms: which arrow of its diagram each captured packet is.
//!
//! The article captured on the gateway's `eth0` and `wg0` and merged the two; the lab does the
//! same, but takes the wire captures from the far end of each veth (see
//! [`Topology::wire_capture_points`]) so that they also work when AF_XDP takes the packets
//! before the gateway's own packet taps.

use std::fmt;
use std::net::Ipv4Addr;

use super::topology::{Topology, CLIENT_TUNNEL_ADDR, GATEWAY_LAN_ADDR, SERVER_ADDR};

/// Handle of a running capture (see `Lab::start_capture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CaptureId(pub(crate) usize);

/// One decoded packet.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedPacket {
    /// Where it was captured (a label such as `gw eth0 (wire)`).
    pub point: String,
    /// Seconds since the epoch.
    pub time: f64,
    pub src: Option<Ipv4Addr>,
    pub dst: Option<Ipv4Addr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// tshark's protocol column (`WireGuard`, `TCP`, `HTTP`, `ICMP`, `ARP`, ...).
    pub protocol: String,
    /// Frame length on the wire (L2 included; a bare-IP `wg0` frame has none).
    pub length: u32,
    /// tshark's info column.
    pub info: String,
}

/// The tshark fields [`parse_tshark_fields`] expects, in order.
pub(crate) const TSHARK_FIELDS: [&str; 8] = [
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "udp.srcport",
    "udp.dstport",
    "_ws.col.Protocol",
    "frame.len",
    "_ws.col.Info",
];

fn first<T: std::str::FromStr>(field: &str) -> Option<T> {
    // ICMP errors quote an inner header: tshark then lists both values, comma separated.
    field.split(',').next()?.trim().parse().ok()
}

/// Parses `tshark -T fields` output (tab separated, [`TSHARK_FIELDS`] order). Lines that do not
/// have the expected shape are skipped.
pub(crate) fn parse_tshark_fields(point: &str, text: &str) -> Vec<CapturedPacket> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.splitn(TSHARK_FIELDS.len(), '\t').collect();
            if f.len() != TSHARK_FIELDS.len() {
                return None;
            }
            Some(CapturedPacket {
                point: point.to_owned(),
                time: f[0].parse().ok()?,
                src: first(f[1]),
                dst: first(f[2]),
                src_port: first(f[3]),
                dst_port: first(f[4]),
                protocol: f[5].to_owned(),
                length: f[6].parse().ok()?,
                info: f[7].trim().to_owned(),
            })
        })
        .collect()
}

/// The arrows of the article's diagram, in the order a request and its reply take them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArticleStep {
    /// Black solid: WireGuard UDP from the peer arrives on the gateway's WAN side, port 51820.
    ReceivedEncrypted,
    /// Red solid: the decrypted bare IP packet from 10.13.13.2 (seen on `wg0`).
    Decrypted,
    /// Blue + green solid: source NAT 10.13.13.2 -> 172.23.0.3, forwarded to the server.
    NatForwarded,
    /// Green dashed: the server's reply to 172.23.0.3 arrives on the LAN side.
    ServerReply,
    /// Blue dashed: un-NATed to 10.13.13.2 and routed into `wg0` for encryption.
    UnNatted,
    /// Black dashed: encrypted, sent to the peer as WireGuard UDP.
    SentEncrypted,
}

impl ArticleStep {
    pub const ALL: [ArticleStep; 6] = [
        ArticleStep::ReceivedEncrypted,
        ArticleStep::Decrypted,
        ArticleStep::NatForwarded,
        ArticleStep::ServerReply,
        ArticleStep::UnNatted,
        ArticleStep::SentEncrypted,
    ];

    /// A one-line explanation, in the article's words.
    pub fn explain(self, topology: Topology) -> String {
        let wan = topology.gateway_wan_interface();
        let lan = topology.gateway_lan_interface();
        match self {
            ArticleStep::ReceivedEncrypted => {
                format!("received on {wan}: WireGuard UDP to port 51820 (encrypted)")
            }
            ArticleStep::Decrypted => {
                format!("decrypted: bare IP packet from {CLIENT_TUNNEL_ADDR} (no L2 header)")
            }
            ArticleStep::NatForwarded => format!(
                "source NAT {CLIENT_TUNNEL_ADDR} -> {GATEWAY_LAN_ADDR}, forwarded out {lan} to {SERVER_ADDR}"
            ),
            ArticleStep::ServerReply => {
                format!("reply from {SERVER_ADDR} to {GATEWAY_LAN_ADDR} arrives on {lan}")
            }
            ArticleStep::UnNatted => format!(
                "reply un-NATed {GATEWAY_LAN_ADDR} -> {CLIENT_TUNNEL_ADDR}, routed to wg0 for encryption"
            ),
            ArticleStep::SentEncrypted => {
                format!("encrypted and sent out {wan} to the peer as WireGuard UDP")
            }
        }
    }
}

impl fmt::Display for ArticleStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = ArticleStep::ALL.iter().position(|s| s == self).unwrap_or(0) + 1;
        write!(f, "step {n}")
    }
}

/// Which arrow of the diagram a captured packet is, if any (ARP and the like are none).
pub fn classify(pkt: &CapturedPacket, topology: Topology) -> Option<ArticleStep> {
    let endpoint = topology.endpoint();
    let (src, dst) = (pkt.src?, pkt.dst?);
    if dst == *endpoint.ip() && pkt.dst_port == Some(endpoint.port()) {
        return Some(ArticleStep::ReceivedEncrypted);
    }
    if src == *endpoint.ip() && pkt.src_port == Some(endpoint.port()) {
        return Some(ArticleStep::SentEncrypted);
    }
    if src == CLIENT_TUNNEL_ADDR {
        return Some(ArticleStep::Decrypted);
    }
    if dst == CLIENT_TUNNEL_ADDR {
        return Some(ArticleStep::UnNatted);
    }
    if src == GATEWAY_LAN_ADDR && dst == SERVER_ADDR {
        return Some(ArticleStep::NatForwarded);
    }
    if src == SERVER_ADDR && dst == GATEWAY_LAN_ADDR {
        return Some(ArticleStep::ServerReply);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "1795580819.100000000\t172.23.0.10\t172.23.0.3\t51820\t51820\tWireGuard\t138\tTransport Data, receiver=0x5417CB06, counter=6, datalen=64\n\
        1795580819.100100000\t172.23.0.3\t172.23.0.2\t\t\tTCP\t74\t57468 \u{2192} 80 [SYN] Seq=0\n\
        1795580819.100200000\t172.23.0.2\t172.23.0.3\t\t\tTCP\t74\t80 \u{2192} 57468 [SYN, ACK]\n\
        1795580819.100300000\t172.23.0.3\t172.23.0.10\t51820\t51820\tWireGuard\t138\tTransport Data\n\
        1795580819.100400000\t\t\t\t\tARP\t42\tWho has 172.23.0.10?\n\
        1795580819.1\t10.13.13.2\t172.23.0.2\t\t\tTCP\t60\t57468 \u{2192} 80 [SYN]\n\
        1795580819.2\t172.23.0.2\t10.13.13.2\t\t\tTCP\t60\t80 \u{2192} 57468 [SYN, ACK]\n\
        short line\n";

    #[test]
    fn tshark_output_is_parsed_and_classified() {
        let pkts = parse_tshark_fields("p", SAMPLE);
        assert_eq!(pkts.len(), 7);
        assert_eq!(pkts[0].length, 138);
        assert_eq!(pkts[0].dst_port, Some(51820));
        assert_eq!(pkts[4].src, None);
        let steps: Vec<_> = pkts
            .iter()
            .map(|p| classify(p, Topology::OneArmed))
            .collect();
        assert_eq!(
            steps,
            vec![
                Some(ArticleStep::ReceivedEncrypted),
                Some(ArticleStep::NatForwarded),
                Some(ArticleStep::ServerReply),
                Some(ArticleStep::SentEncrypted),
                None,
                Some(ArticleStep::Decrypted),
                Some(ArticleStep::UnNatted),
            ]
        );
    }

    #[test]
    fn two_armed_endpoint_is_the_wan_address() {
        let pkt = CapturedPacket {
            point: "p".into(),
            time: 0.0,
            src: Some(Ipv4Addr::new(198, 18, 0, 2)),
            dst: Some(Ipv4Addr::new(198, 18, 0, 1)),
            src_port: Some(51820),
            dst_port: Some(51820),
            protocol: "WireGuard".into(),
            length: 138,
            info: String::new(),
        };
        assert_eq!(
            classify(&pkt, Topology::TwoArmed),
            Some(ArticleStep::ReceivedEncrypted)
        );
        assert_eq!(classify(&pkt, Topology::OneArmed), None);
    }

    #[test]
    fn icmp_error_with_inner_header_takes_the_outer_addresses() {
        let line = "1.0\t172.23.0.2,172.23.0.3\t172.23.0.3,172.23.0.2\t\t\tICMP\t98\tDestination unreachable\n";
        let p = &parse_tshark_fields("p", line)[0];
        assert_eq!(p.src, Some(SERVER_ADDR));
        assert_eq!(
            classify(p, Topology::OneArmed),
            Some(ArticleStep::ServerReply)
        );
    }
}
