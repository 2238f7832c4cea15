//! The step every ICMPv6 error a worker originates opens with, whichever way it then leaves
//! (sealed back into the tunnel by `forward6`, routed to a LAN sender by `nat6`): the error
//! written in place in front of its quote (RFC 4443 §2.4), then a token of the ICMP rate limit
//! for the host it goes to (§2.4 (f)). Kept in one place so that both answer under the same
//! rules: only errors that are written spend tokens.

use std::net::Ipv6Addr;
use std::ops::Range;

use super::{Batch, Pipeline};
use crate::icmp6::{icmp6_error_in_place, Icmp6Error};
use wire::ipv6;

impl Pipeline {
    /// Writes the ICMPv6 error `kind` from `router` in front of the IPv6 packet at
    /// `buf[packet]`, addressed to that packet's source and at most `max_len` bytes long, and
    /// spends a rate-limit token for that source. The error's place in `buf`, or `None` when
    /// no error may be sent: RFC 4443 forbids one, there is no room, or the limit is spent.
    pub(super) fn icmp6_error_step(
        &mut self,
        b: &Batch<'_>,
        buf: &mut [u8],
        packet: Range<usize>,
        router: Ipv6Addr,
        kind: Icmp6Error,
        max_len: usize,
    ) -> Option<Range<usize>> {
        let error = icmp6_error_in_place(buf, packet, router, kind, max_len)?;
        // Written above: a whole IPv6 header to the quoted packet's source.
        let dst = ipv6::Packet::new_unchecked(&buf[error.clone()]).dst_addr();
        self.icmp_allowed(b, dst).then_some(error)
    }
}
