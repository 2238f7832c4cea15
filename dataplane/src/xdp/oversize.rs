//! Tells the operator, once per interface, that frames longer than the MTU reached the XDP
//! program and were dropped (`drop_oversized`), and which offload merged them.
//!
//! A worker takes one MTU-sized frame per UMEM frame and cannot re-segment a merged one, so
//! the program drops them (redirect.bpf.c, `to_socket`). The counter alone would leave the
//! operator to guess why TCP through the gateway stalls; this names the interface, the mode
//! and the `ethtool` line that stops the merging.

use tracing::warn;

use super::{AttachMode, XdpCounter, XdpCountersReader, XdpProgram};

/// One reader per attached program, and whether its drops were reported already.
pub struct OversizeWatch {
    interfaces: Vec<Watched>,
}

struct Watched {
    reader: XdpCountersReader,
    mode: AttachMode,
    reported: bool,
}

impl OversizeWatch {
    /// Watches every program that has a readable counters map (others are already reported
    /// missing from stats by the caller).
    pub fn new(programs: &[XdpProgram]) -> Self {
        let interfaces = programs
            .iter()
            .filter_map(|p| {
                let reader = XdpCountersReader::for_program(p).ok()?;
                Some(Watched {
                    reader,
                    mode: p.mode(),
                    reported: false,
                })
            })
            .collect();
        OversizeWatch { interfaces }
    }

    /// Reads the counters and logs the first oversized drops of each interface.
    pub fn check(&mut self) {
        for w in self.interfaces.iter_mut().filter(|w| !w.reported) {
            let Ok(counters) = w.reader.read() else {
                continue;
            };
            let dropped = counters.get(XdpCounter::DropOversized);
            if dropped == 0 {
                continue;
            }
            w.reported = true;
            let ifname = w.reader.ifname();
            warn!(
                interface = %ifname,
                dropped,
                "frames longer than {ifname}'s MTU reached the gateway and were dropped \
                 (drop_oversized in `dataplane stats`): {}; this is logged once",
                remedy(ifname, w.mode)
            );
        }
    }
}

/// What merges frames before XDP in `mode`, and how to stop it.
pub fn remedy(ifname: &str, mode: AttachMode) -> String {
    match mode {
        AttachMode::Generic => format!(
            "in generic (skb) mode the kernel's receive offload merges them before XDP: run \
             `ethtool -K {ifname} gro off`; on a veth, the peer's segmentation offload does \
             it: use mode = \"auto\" or \"copy\" (driver mode, where the kernel segments for \
             the gateway)"
        ),
        AttachMode::Driver => format!(
            "the NIC merges them (LRO or hardware GRO): run `ethtool -K {ifname} lro off \
             rx-gro-hw off`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remedy_names_the_interface_and_the_offload_per_mode() {
        let generic = remedy("eth1", AttachMode::Generic);
        assert!(generic.contains("ethtool -K eth1 gro off"), "{generic}");
        assert!(generic.contains("mode = \"auto\""), "{generic}");
        let driver = remedy("eth1", AttachMode::Driver);
        assert!(driver.contains("ethtool -K eth1 lro off"), "{driver}");
    }
}
