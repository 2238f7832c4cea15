//! [`StatsSnapshot`]: one picture of the running gateway, the single thing both
//! `dataplane stats` (over the control socket, as JSON) and the Prometheus endpoint render.
//!
//! The picture is taken from what the gateway already keeps: the workers' counters
//! ([`WorkerCounters`], drop reasons by their stable names), the slow path's counters and its
//! `wg show` view (per-peer transfer and latest handshake), and the XDP program's per-CPU
//! counters. Taking it locks nothing the workers use.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use slowpath::engine::{SlowPath, SlowPathCounters};

use fastpath::capture::CapturePoint;
use fastpath::counters::{DropReason, WorkerCounters};
#[cfg(test)]
use fastpath::counters::{XskGauges, XskStats};
use fastpath::latency::LatencySummary;
use gwconf::{HostFacts, LoadOptions};

/// Everything `stats` and the metrics show, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// The tunnel interface the peers belong to (`wg0`).
    pub interface: String,
    /// Seconds since the gateway started.
    pub uptime_seconds: f64,
    pub workers: Vec<WorkerStats>,
    /// Slow-path counters by name (handshakes, cookie replies, wg0 traffic, send errors), and
    /// its health gauges ([`SLOW_PATH_GAUGES`]: stalled 0/1, heartbeat age, cookie mode 0/1).
    pub slow_path: BTreeMap<String, u64>,
    /// Handshake messages waiting in the workers' handshake lane to the slow path; `None`
    /// when not exported.
    pub handshake_queue_depth: Option<u64>,
    pub xdp: Vec<XdpStats>,
    pub peers: Vec<PeerStats>,
}

/// One worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub worker: usize,
    /// Every plain counter of [`WorkerCounters::INFO`] by name (`rx`, `decrypted`,
    /// `nat_entries`, ...), zeros included. Flattened: in JSON each is a field of the worker.
    #[serde(flatten)]
    pub counters: BTreeMap<String, u64>,
    /// Every drop reason, zeros included, so series never appear out of nowhere.
    pub drops: BTreeMap<String, u64>,
    /// AF_XDP XDP_STATISTICS of the worker's sockets, summed.
    pub xsk: BTreeMap<String, u64>,
    /// The point a running `dataplane capture` taps on this worker; `None` when none runs.
    #[serde(default)]
    pub capture: Option<CapturePoint>,
    /// Per-stage latency ([`fastpath::latency::Stage`] names) over sampled frames.
    #[serde(default)]
    pub latency: BTreeMap<String, LatencySummary>,
}

impl WorkerStats {
    /// The counter called `name`; 0 when the snapshot lacks it (taken by another version).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// The XDP program's counters on one interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XdpStats {
    pub interface: String,
    /// By the XDP program's counter names.
    pub counters: BTreeMap<String, u64>,
    /// Set when the counters could not be read.
    pub error: Option<String>,
}

/// One peer, as `wg show` reports it plus its name from the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    pub name: Option<String>,
    /// Base64.
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    /// Unix seconds of the latest handshake; `None` = never.
    pub latest_handshake: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Something that can take a [`StatsSnapshot`]: the running gateway, or a test's fake.
pub trait StatsSource: Send + Sync {
    fn snapshot(&self) -> StatsSnapshot;

    /// The workers `dataplane capture` can tap (their [`WorkerCounters::capture`]); none by
    /// default, and the control socket then refuses captures.
    fn capture_workers(&self) -> Vec<Arc<WorkerCounters>> {
        Vec::new()
    }
}

/// A worker's counters as [`WorkerStats`].
pub fn worker_stats(worker: usize, c: &WorkerCounters) -> WorkerStats {
    let named = |(n, v): &(&str, u64)| (n.to_string(), *v);
    WorkerStats {
        worker,
        counters: c.read().iter().map(named).collect(),
        drops: DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), c.dropped(*r)))
            .collect(),
        xsk: c.xsk.read().iter().map(named).collect(),
        capture: c.capture.point(),
        latency: c.latency.summaries(),
    }
}

/// One of the slow path's health gauges: its key in [`StatsSnapshot::slow_path`] and how the
/// metrics export it.
#[derive(Clone, Copy, Debug)]
pub struct HealthGauge {
    pub key: &'static str,
    /// The Prometheus gauge.
    pub metric: &'static str,
    pub help: &'static str,
    /// Stats units per metric unit (1000 for milliseconds exported as seconds).
    pub per_unit: f64,
}

const STALLED: HealthGauge = HealthGauge {
    key: "slowpath_stalled",
    metric: "dataplane_slowpath_stalled",
    help: "1 while the slow-path thread has not beaten its heartbeat for over 2 s",
    per_unit: 1.0,
};
const HEARTBEAT_AGE: HealthGauge = HealthGauge {
    key: "slowpath_heartbeat_age_ms",
    metric: "dataplane_slowpath_heartbeat_age_seconds",
    help: "Seconds since the slow-path thread's last heartbeat",
    per_unit: 1000.0,
};
const COOKIE_MODE: HealthGauge = HealthGauge {
    key: "cookie_mode",
    metric: "dataplane_handshake_cookie_mode",
    help: "1 while handshake initiations are answered with cookie replies (under load)",
    per_unit: 1.0,
};

/// The entries of [`StatsSnapshot::slow_path`] that are gauges, not counters: from
/// [`slowpath::watchdog::HealthReport`] ([`slow_path_health`]).
pub const SLOW_PATH_GAUGES: [HealthGauge; 3] = [STALLED, HEARTBEAT_AGE, COOKIE_MODE];

/// The slow path's health (watchdog) as entries of [`StatsSnapshot::slow_path`]: the
/// [`SLOW_PATH_GAUGES`] and the count of stalls so far.
pub fn slow_path_health(h: &slowpath::watchdog::HealthReport) -> [(String, u64); 4] {
    [
        (STALLED.key.into(), u64::from(h.stalled)),
        (HEARTBEAT_AGE.key.into(), h.heartbeat_age.as_millis() as u64),
        ("slowpath_stalls".into(), h.stalls),
        (COOKIE_MODE.key.into(), u64::from(h.cookie_mode)),
    ]
}

/// The slow path's counters by name.
pub fn slow_path_stats(c: &SlowPathCounters) -> BTreeMap<String, u64> {
    c.read()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Peer names by base64 public key: from the config at start, refreshed from the config file
/// when it changes (so a `peer add` shows up by name without a restart).
pub struct PeerNames {
    file: Option<PathBuf>,
    cached: Mutex<(Option<SystemTime>, HashMap<String, String>)>,
}

impl PeerNames {
    pub fn new(cfg: &gwconf::GatewayConfig, file: Option<PathBuf>) -> Self {
        PeerNames {
            file,
            cached: Mutex::new((None, names_of(cfg))),
        }
    }

    /// The current map (re-read when the file's mtime moved and it still loads).
    pub fn get(&self) -> HashMap<String, String> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = &self.file {
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if mtime.is_some() && mtime != cached.0 {
                let opts = LoadOptions {
                    host: HostFacts::unknown(),
                    interfaces: None,
                };
                if let Ok(loaded) = gwconf::load(path, &opts) {
                    *cached = (mtime, names_of(&loaded.config));
                }
            }
        }
        cached.1.clone()
    }
}

fn names_of(cfg: &gwconf::GatewayConfig) -> HashMap<String, String> {
    cfg.peers
        .iter()
        .filter_map(|p| p.name.clone().map(|n| (p.public_key.to_base64(), n)))
        .collect()
}

/// The XDP program's counters on one interface, read when a snapshot is taken. The binary
/// implements it over the loaded program's map; this crate never touches BPF.
pub trait XdpCountersSource: Send + Sync {
    /// The interface the program is attached to.
    fn interface(&self) -> &str;
    /// The counters now, by name.
    fn read(&self) -> Result<BTreeMap<String, u64>, String>;
}

/// The running gateway as a [`StatsSource`].
pub struct GatewayStats {
    pub interface: String,
    pub started: Instant,
    pub workers: Vec<Arc<WorkerCounters>>,
    pub slow: Arc<SlowPath>,
    /// One per attached program, or the interface and why its counters cannot be read.
    pub xdp: Vec<Result<Box<dyn XdpCountersSource>, (String, String)>>,
    pub names: PeerNames,
    /// The workers' end of the slow-path queue, read for its handshake lane's depth.
    pub queue: fastpath::queue::SlowPathSender,
}

impl StatsSource for GatewayStats {
    fn capture_workers(&self) -> Vec<Arc<WorkerCounters>> {
        self.workers.clone()
    }

    fn snapshot(&self) -> StatsSnapshot {
        let names = self.names.get();
        let dev = self.slow.snapshot();
        let peers = dev
            .peers
            .iter()
            .map(|p| {
                let key = p.public_key.to_base64();
                PeerStats {
                    name: names.get(&key).cloned(),
                    endpoint: p.endpoint.map(|e| e.to_string()),
                    allowed_ips: p.allowed_ips.iter().map(|n| n.to_string()).collect(),
                    latest_handshake: p
                        .last_handshake
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs()),
                    rx_bytes: p.rx_bytes,
                    tx_bytes: p.tx_bytes,
                    public_key: key,
                }
            })
            .collect();
        let xdp = self
            .xdp
            .iter()
            .map(|r| match r {
                Ok(reader) => match reader.read() {
                    Ok(counters) => XdpStats {
                        interface: reader.interface().to_string(),
                        counters,
                        error: None,
                    },
                    Err(e) => XdpStats {
                        interface: reader.interface().to_string(),
                        counters: BTreeMap::new(),
                        error: Some(e),
                    },
                },
                Err((ifname, e)) => XdpStats {
                    interface: ifname.clone(),
                    counters: BTreeMap::new(),
                    error: Some(e.clone()),
                },
            })
            .collect();
        let mut slow_path = slow_path_stats(&self.slow.counters());
        slow_path.extend(slow_path_health(&self.slow.health()));
        StatsSnapshot {
            interface: self.interface.clone(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            workers: self
                .workers
                .iter()
                .enumerate()
                .map(|(i, c)| worker_stats(i, c))
                .collect(),
            slow_path,
            handshake_queue_depth: Some(self.queue.depth() as u64),
            xdp,
            peers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_stats_names_every_reason_and_xsk_stat() {
        let c = WorkerCounters::default();
        WorkerCounters::add(&c.rx, 5);
        c.count_drop(DropReason::NoRoute);
        c.count_drop(DropReason::NoRoute);
        c.nat_entries.store(7, Ordering::Relaxed);
        c.xsk.publish(&[
            XskStats {
                rx_dropped: 1,
                rx_ring_full: 2,
                ..Default::default()
            },
            XskStats {
                rx_dropped: 10,
                ..Default::default()
            },
        ]);
        let w = worker_stats(3, &c);
        assert_eq!(
            (w.worker, w.counters["rx"], w.counters["nat_entries"]),
            (3, 5, 7)
        );
        assert_eq!(w.counters.len(), WorkerCounters::INFO.len());
        assert_eq!(w.drops.len(), DropReason::ALL.len());
        assert_eq!(w.drops["no_route"], 2);
        assert_eq!(w.drops["malformed"], 0);
        assert_eq!(w.xsk["rx_dropped"], 11);
        assert_eq!(w.xsk["rx_ring_full"], 2);
        assert_eq!(w.xsk.len(), XskGauges::NAMES.len());
    }

    #[test]
    fn slow_path_stats_name_every_declared_counter() {
        let c = SlowPathCounters::default();
        c.send_errors.fetch_add(2, Ordering::Relaxed);
        let s = slow_path_stats(&c);
        assert_eq!(s.len(), c.read().len());
        assert_eq!(s["send_errors"], 2);
        assert_eq!(s["handshakes_bad_mac1"], 0);
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut s = StatsSnapshot {
            interface: "wg0".into(),
            uptime_seconds: 1.5,
            handshake_queue_depth: Some(3),
            ..Default::default()
        };
        s.workers.push(worker_stats(0, &WorkerCounters::default()));
        s.peers.push(PeerStats {
            name: Some("peer1".into()),
            public_key: "k".into(),
            latest_handshake: Some(1_700_000_000),
            rx_bytes: 9,
            ..Default::default()
        });
        let json = serde_json::to_string(&s).unwrap();
        let back: StatsSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        // Each counter is a field of the worker, as before the table.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["workers"][0]["decrypted"], 0);
        assert_eq!(v["workers"][0]["handed_off"], 0);
    }
}
