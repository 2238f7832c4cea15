//! Where a frame's time goes, step by step, for the bench's per-step table (the non-cipher cost
//! made visible).
//!
//! A clock read at every step would cost more than most steps on the machines this runs on
//! (a TSC read is 20-60 ns on a KVM guest and perturbs the steps after it), so the bench
//! measures by truncation instead: [`Pipeline::stop_after`](crate::pipeline::Pipeline::stop_after)
//! makes every frame end right after a given step (verdict `Consumed`), and the bench times
//! whole passes over its frames with the pipeline stopped after each step in turn; a step's
//! cost is the difference between the passes that stop after it and before it. Off (the
//! default, and always in a worker), each step costs one compare and branch.

macro_rules! steps {
    ($($(#[$doc:meta])* $v:ident => $name:literal,)*) => {
        /// A step of the pipeline, in the order a frame passes them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Step { $($(#[$doc])* $v,)* }

        impl Step {
            pub const ALL: [Step; [$(Step::$v),*].len()] = [$(Step::$v),*];

            /// Its name in the bench's table.
            pub fn name(self) -> &'static str {
                match self { $(Step::$v => $name,)* }
            }
        }
    };
}

steps! {
    /// Ethernet, IPv4, UDP and WireGuard headers read; the keypair found by receiver index
    /// (forward), or the packet recognised as return traffic (reverse).
    Parse => "parse",
    /// The AEAD tag checked, the message decrypted, its counter checked and marked in the
    /// replay window.
    Decrypt => "decrypt+replay",
    /// Per-peer statistics, the checks that may report to the slow path (key confirmation,
    /// roaming, rekey), the endpoint's route asked for, counters and capture tap.
    PeerState => "peer state",
    /// The inner header read and its source checked against the peer's AllowedIPs.
    AllowedIps => "allowedips",
    /// Host/fragment checks, the route and next hop looked up, MTU, TTL.
    Route => "route",
    /// Partial checksum completed; source NAT.
    Nat => "nat",
    /// The Ethernet header written in front of the forwarded packet; the verdict.
    TxHeader => "tx header",
    /// Partial checksum completed; NAT reverse (remote check included); TTL.
    NatReverse => "nat reverse",
    /// The peer found by AllowedIPs, its keypair and endpoint, the route towards it.
    PeerLookup => "peer lookup",
    /// Padding and sealing into a transport message.
    Seal => "seal",
    /// Outer IPv4/UDP and Ethernet headers; per-peer statistics and counters; the verdict.
    OuterHeaders => "outer headers",
    /// The verdict, then what the AF_XDP edge does before it queues the packet: the check
    /// that it can be sent where it is ([`crate::frame::sendable_in_place`]). The edge used to
    /// move every packet to a fixed TX offset here (20-32 ns at 1420 B in the reverse
    /// direction); its descriptors now name the packet's start, so nothing moves. Not the
    /// pipeline's work (it never stops here): the bench does it after each `Tx` verdict as the
    /// worker does, so its cost shows, in both directions.
    TxMove => "tx move",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<_> = Step::ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Step::ALL.len());
    }
}
