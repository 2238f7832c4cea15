//! The outside endpoints a mapping answers to: which inbound packets may refresh it, move its
//! TCP state, end it with a RST, or bring an ICMP error to its inside host.
//!
//! Filtering stays endpoint-independent (RFC 4787 REQ-8, RFC 5382 REQ-3): any remote's
//! packet reaches a live mapping. But the mapping's timer and TCP state are about the inside
//! host's conversation, so only the remotes it talked to may touch them; otherwise anyone
//! could sweep the NAT ports with RSTs (cutting idle connections from 2 h 4 min to 240 s) or
//! with junk every few minutes (keeping every mapping alive until new flows find no port).
//!
//! One mapping serves every remote of an inside endpoint (endpoint-independent mapping), but
//! only two are tracked, to keep entries small and lookups O(1):
//! * the **opener**: the remote of the first outbound packet of the mapping's current session
//!   (a new mapping, one reused after expiry, or a new TCP connection after the last one
//!   ended). For TCP this is the connection's peer; for UDP usually the server a client keeps
//!   a session with (its DNS resolver, its game or VoIP server).
//! * the **latest**: the remote of the most recent outbound packet, so the conversation going
//!   on now is tracked even when it is not the first (a STUN client's peer after the STUN
//!   server, a TCP simultaneous open to a second candidate).
//!
//! A remote the inside host talked to earlier but is neither of these loses the right to
//! refresh the mapping; its packets are still delivered, and the inside host's own traffic
//! keeps the mapping alive (outbound always refreshes).

use crate::family::Family;
use crate::view::Protocol;

/// An outside endpoint. For ICMP queries the port is 0: the identifier belongs to the mapping,
/// the remote is its address alone. For IPv4 packed as address << 16 | port, so that the check
/// on every return packet is two integer compares (it was two field-wise compares of 6-byte
/// structs, which showed in the 64-byte reverse figures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Remote<A: Family>(A::RemoteKey);

// By hand: a derive would ask `A: Default`, which `Ipv4Addr` is not.
impl<A: Family> Default for Remote<A> {
    fn default() -> Self {
        Remote(A::RemoteKey::default())
    }
}

impl<A: Family> Remote<A> {
    #[inline]
    pub(crate) fn new(proto: Protocol, addr: A::Octets, port: u16) -> Remote<A> {
        let port = if proto == Protocol::Icmp { 0 } else { port };
        Remote(A::remote_key(addr, port))
    }
}

/// The remotes one mapping tracks (see the module doc). 16 bytes for IPv4, 36 for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Remotes<A: Family> {
    opener: Remote<A>,
    latest: Remote<A>,
}

impl<A: Family> Default for Remotes<A> {
    fn default() -> Self {
        Remotes::opened_by(Remote::default())
    }
}

impl<A: Family> Remotes<A> {
    /// The remotes of a session whose first outbound packet went to `r`.
    pub(crate) fn opened_by(r: Remote<A>) -> Remotes<A> {
        Remotes {
            opener: r,
            latest: r,
        }
    }

    /// The inside host sent to `r` within the current session.
    pub(crate) fn sent_to(&mut self, r: Remote<A>) {
        self.latest = r;
    }

    /// Whether packets from `r` may refresh the mapping or change its state.
    #[inline]
    pub(crate) fn tracks(&self, r: Remote<A>) -> bool {
        self.latest == r || self.opener == r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    type Remote = super::Remote<Ipv4Addr>;
    type Remotes = super::Remotes<Ipv4Addr>;

    #[test]
    fn tracks_the_opener_and_the_latest_only() {
        let r = |last: u8, port| Remote::new(Protocol::Udp, [192, 0, 2, last], port);
        let mut t = Remotes::opened_by(r(1, 53));
        assert!(t.tracks(r(1, 53)));
        assert!(!t.tracks(r(1, 54)), "the port counts");
        t.sent_to(r(2, 3478));
        t.sent_to(r(3, 9));
        assert!(t.tracks(r(1, 53)) && t.tracks(r(3, 9)));
        assert!(!t.tracks(r(2, 3478)));
    }

    #[test]
    fn icmp_remotes_are_addresses() {
        let t = Remotes::opened_by(Remote::new(Protocol::Icmp, [192, 0, 2, 1], 7));
        assert!(t.tracks(Remote::new(Protocol::Icmp, [192, 0, 2, 1], 9)));
    }
}
