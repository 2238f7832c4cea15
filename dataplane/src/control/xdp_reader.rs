//! Reads the XDP program's per-CPU counters from another thread than the one that owns the
//! [`XdpProgram`]: the counters map is opened again by its kernel id (found through the
//! program's id), so the reader holds its own file descriptor and can live in the control and
//! metrics threads for as long as they run.
//!
//! Only a reader: it never writes the map. The sum over CPUs is the same as
//! [`XdpProgram::counters`].

use libbpf_rs::query::{ProgInfoIter, ProgInfoQueryOptions};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::xdp::{XdpCounter, XdpCounters, XdpProgram};

/// Name of the counters map in redirect.bpf.c.
const COUNTERS_MAP: &str = "counters_map";

/// A handle on one attached program's counters map.
#[derive(Debug)]
pub struct XdpCountersReader {
    ifname: String,
    map: MapHandle,
}

impl XdpCountersReader {
    /// Finds the counters map of `program` by the program's kernel id.
    pub fn for_program(program: &XdpProgram) -> Result<Self, String> {
        let id = program.program_id();
        let info =
            ProgInfoIter::with_query_opts(ProgInfoQueryOptions::default().include_map_ids(true))
                .find(|p| p.id == id)
                .ok_or_else(|| format!("XDP program id {id} not found among loaded programs"))?;
        for map_id in info.map_ids {
            let Ok(map) = MapHandle::from_map_id(map_id) else {
                continue;
            };
            if map.name() == COUNTERS_MAP {
                return Ok(XdpCountersReader {
                    ifname: program.ifname().to_string(),
                    map,
                });
            }
        }
        Err(format!("XDP program id {id} has no {COUNTERS_MAP}"))
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The counters now, summed over CPUs.
    pub fn read(&self) -> Result<XdpCounters, String> {
        let mut out = XdpCounters::default();
        for &c in XdpCounter::ALL {
            let per_cpu = self
                .map
                .lookup_percpu(&(c as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| format!("{COUNTERS_MAP}: {e}"))?
                .unwrap_or_default();
            for v in per_cpu {
                let bytes: [u8; 8] = v
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| format!("{COUNTERS_MAP}: per-CPU value shorter than 8 bytes"))?;
                out.add(c, u64::from_ne_bytes(bytes));
            }
        }
        Ok(out)
    }
}
