//! The control plane of the running gateway for its operator: the control socket
//! (`[control] socket`, default /run/dataplane/NAME.control.sock for device NAME) that `dataplane stats` talks to, and the
//! one picture of the gateway ([`StatsSnapshot`]) that stats and the Prometheus endpoint
//! ([`metrics`]) both render.
//!
//! [`OpsServers`] is what the runtime starts after its workers and stops before teardown. The
//! servers read counters only; they never change the data plane.

#![forbid(unsafe_code)]

pub mod capture;
pub mod client;
pub mod metrics;
pub mod server;
pub mod stats;
pub mod text;

use std::path::Path;
use std::sync::Arc;

pub use stats::{
    GatewayStats, PeerNames, PeerStats, StatsSnapshot, StatsSource, WorkerStats, XdpCountersSource,
    XdpStats,
};

use metrics::MetricsServer;
use server::ControlServer;

/// The control socket and the optional metrics endpoint, started together.
pub struct OpsServers {
    control: Option<ControlServer>,
    metrics: Option<MetricsServer>,
}

impl OpsServers {
    /// Starts the control socket on `socket` and, with `metrics`, the Prometheus endpoint.
    pub fn start(
        socket: &Path,
        metrics: Option<std::net::SocketAddr>,
        source: Arc<dyn StatsSource>,
    ) -> anyhow::Result<OpsServers> {
        let control = ControlServer::start(socket, source.clone())?;
        tracing::info!(socket = %socket.display(), "control socket ready (dataplane stats)");
        let metrics = match metrics {
            Some(addr) => {
                let m = MetricsServer::start(addr, source)?;
                tracing::info!(listen = %m.local_addr(), "Prometheus metrics on /metrics");
                Some(m)
            }
            None => None,
        };
        Ok(OpsServers {
            control: Some(control),
            metrics,
        })
    }

    /// Stops both and waits for their threads; afterwards they hold no reference to the
    /// gateway's state.
    pub fn stop(mut self) {
        if let Some(c) = self.control.take() {
            c.stop();
        }
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
    }
}

/// What the runtime calls once its workers run: builds the [`GatewayStats`] source and starts
/// the servers of `cfg` (`[control] socket`, `[metrics] listen`). A failure is logged and the
/// gateway runs on without them: forwarding matters more than its statistics.
pub fn start_for_gateway(
    cfg: &gwconf::GatewayConfig,
    config_file: Option<&Path>,
    workers: &[Arc<fastpath::counters::WorkerCounters>],
    slow: &Arc<slowpath::engine::SlowPath>,
    queue: &fastpath::queue::SlowPathSender,
    xdp: Vec<Result<Box<dyn XdpCountersSource>, (String, String)>>,
) -> Option<OpsServers> {
    let source = Arc::new(GatewayStats {
        interface: cfg.interface.name.clone(),
        started: std::time::Instant::now(),
        workers: workers.to_vec(),
        slow: slow.clone(),
        xdp,
        names: PeerNames::new(cfg, config_file.map(Path::to_path_buf)),
        queue: queue.clone(),
    });
    match OpsServers::start(&cfg.control.socket, cfg.metrics.listen, source) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("running without the control socket and metrics: {e:#}");
            None
        }
    }
}
