//! Reads the XDP program's per-CPU counters from another thread than the one that owns the
//! [`XdpProgram`]: the reader holds its own file descriptor on the counters map (duplicated
//! from the loaded program's), so it can live in the control and metrics threads for as long
//! as they run.
//!
//! Only a reader: it never writes the map. The sum over CPUs is the same as
//! [`XdpProgram::counters`].

use std::collections::BTreeMap;

use libbpf_rs::{MapCore, MapFlags, MapHandle};
use ops::XdpCountersSource;

use super::{XdpCounter, XdpCounters, XdpProgram};

/// Name of the counters map in redirect.bpf.c.
const COUNTERS_MAP: &str = "counters_map";

/// A handle on one attached program's counters map.
#[derive(Debug)]
pub struct XdpCountersReader {
    ifname: String,
    map: MapHandle,
}

impl XdpCountersReader {
    /// A reader of `program`'s counters map.
    pub fn for_program(program: &XdpProgram) -> Result<Self, String> {
        let map = program
            .counters_map_handle()
            .map_err(|e| format!("XDP program id {}: {e}", program.program_id()))?;
        Ok(XdpCountersReader {
            ifname: program.ifname().to_string(),
            map,
        })
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

impl XdpCountersSource for XdpCountersReader {
    fn interface(&self) -> &str {
        &self.ifname
    }

    fn read(&self) -> Result<BTreeMap<String, u64>, String> {
        let counters = XdpCountersReader::read(self)?;
        Ok(counters
            .iter()
            .map(|(k, v)| (k.name().to_string(), v))
            .collect())
    }
}
