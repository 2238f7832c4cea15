//! Packet capture inside the data plane: what `tcpdump -i eth0` and `tcpdump -i wg0` showed the
//! article's operator, for packets that AF_XDP takes away from the kernel.
//!
//! Four points of the pipeline ([`CapturePoint`]) can be tapped; a tap copies the packet
//! (truncated to a snap length) into a fixed ring of preallocated slots ([`CaptureRing`], one
//! per worker) that the control socket (`ops::capture`) drains into a pcap stream
//! (`dataplane capture`).
//!
//! What this module must never do to the worker: cost more than one relaxed atomic load per
//! packet while no capture runs ([`CaptureTap::points`]), allocate per packet, or block. A
//! full ring means the packet is skipped and counted, not waited for.

pub mod ring;
pub mod tap;

use std::fmt;
use std::str::FromStr;

use pcap_file::DataLink;
use serde::{Deserialize, Serialize};

pub use ring::{CaptureRing, CapturedFrame};
pub use tap::CaptureTap;

/// Where in the pipeline a capture looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapturePoint {
    /// Every frame as the worker received it (Ethernet): WireGuard from peers and NAT return
    /// traffic from the LAN. The article's `eth0` capture, inbound.
    WireIn,
    /// Cleartext tunnel traffic (bare IP, as on `wg0`): packets just decrypted, and replies
    /// just before they are sealed. The article's `wg0` capture.
    Decrypted,
    /// The LAN side of the source NAT (bare IP): tunnel traffic after its source was rewritten
    /// to the gateway's address, and return traffic as it arrived, before the NAT reverse.
    Nat,
    /// Every frame the worker transmits (Ethernet). The article's `eth0` capture, outbound.
    WireOut,
}

impl CapturePoint {
    pub const ALL: [CapturePoint; 4] = [
        CapturePoint::WireIn,
        CapturePoint::Decrypted,
        CapturePoint::Nat,
        CapturePoint::WireOut,
    ];

    /// The name on the command line and in the control protocol.
    pub fn name(self) -> &'static str {
        match self {
            CapturePoint::WireIn => "wire-in",
            CapturePoint::Decrypted => "decrypted",
            CapturePoint::Nat => "nat",
            CapturePoint::WireOut => "wire-out",
        }
    }

    /// The bit of this point in [`CaptureTap::points`].
    #[inline]
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The pcap link type of what this point sees: Ethernet frames on the wire, bare IP
    /// packets (LINKTYPE_RAW, 101) inside, as `tcpdump -i wg0` writes them.
    pub fn datalink(self) -> DataLink {
        match self {
            CapturePoint::WireIn | CapturePoint::WireOut => DataLink::ETHERNET,
            CapturePoint::Decrypted | CapturePoint::Nat => DataLink::RAW,
        }
    }
}

impl fmt::Display for CapturePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CapturePoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CapturePoint::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown capture point {s:?}; expected wire-in, decrypted, nat or wire-out")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_have_distinct_bits_and_round_trip_by_name() {
        let mut seen = 0u8;
        for p in CapturePoint::ALL {
            assert_eq!(seen & p.bit(), 0);
            seen |= p.bit();
            assert_eq!(p.name().parse::<CapturePoint>(), Ok(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
        assert!("eth0".parse::<CapturePoint>().is_err());
        assert_eq!(u32::from(CapturePoint::Decrypted.datalink()), 101);
        assert_eq!(u32::from(CapturePoint::WireIn.datalink()), 1);
    }
}
