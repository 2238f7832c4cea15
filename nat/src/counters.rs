//! What happened to every packet the NAT saw, per worker. Plain integers the worker reads
//! (and sums across workers with [`NatCounters::merge`]); no atomics because each worker owns
//! its own.

use crate::error::NatError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// Outbound packets rewritten (including hairpinned ones and ICMP errors).
    pub translated_outbound: u64,
    /// Inbound packets rewritten (including ICMP errors).
    pub translated_inbound: u64,
    /// ICMP errors from inside translated (RFC 5508 REQ-5).
    pub icmp_errors_outbound: u64,
    /// ICMP errors from outside translated (RFC 5508 REQ-4).
    pub icmp_errors_inbound: u64,
    /// Inbound packets delivered from a remote the mapping does not track (endpoint-independent
    /// filtering), which therefore neither refreshed it nor changed its TCP state.
    pub inbound_untracked: u64,
    /// Outbound packets addressed to another inside host through the egress address.
    pub hairpinned: u64,
    /// Packets returned for another worker.
    pub handoffs: u64,
    /// Outbound packets for the gateway itself, returned untouched.
    pub local: u64,
    /// Inbound packets that are not NAT traffic, returned untouched.
    pub not_nat: u64,
    /// Mappings created.
    pub created: u64,
    /// Mappings removed by expiry.
    pub expired: u64,
    /// New flows refused (table full or no free port); also counted in `dropped`.
    pub refused: u64,
    /// Drops, indexed by `NatError as usize`.
    pub dropped: [u64; NatError::COUNT],
}

impl NatCounters {
    pub fn dropped(&self, reason: NatError) -> u64 {
        self.dropped[reason as usize]
    }

    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Adds `other` into `self` (to report totals over workers).
    pub fn merge(&mut self, other: &NatCounters) {
        self.translated_outbound += other.translated_outbound;
        self.translated_inbound += other.translated_inbound;
        self.icmp_errors_outbound += other.icmp_errors_outbound;
        self.icmp_errors_inbound += other.icmp_errors_inbound;
        self.inbound_untracked += other.inbound_untracked;
        self.hairpinned += other.hairpinned;
        self.handoffs += other.handoffs;
        self.local += other.local;
        self.not_nat += other.not_nat;
        self.created += other.created;
        self.expired += other.expired;
        self.refused += other.refused;
        for (a, b) in self.dropped.iter_mut().zip(other.dropped.iter()) {
            *a += b;
        }
    }

    pub(crate) fn count_drop(&mut self, e: NatError) {
        self.dropped[e as usize] += 1;
        if matches!(e, NatError::TableFull | NatError::NoFreePort) {
            self.refused += 1;
        }
    }
}
