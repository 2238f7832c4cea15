//! `dataplane --config FILE`: brings the gateway up, runs it until SIGINT/SIGTERM, reloads
//! peers on SIGHUP, and tears everything down in order.
//!
//! Start order: route cache (the workers' next hops), XDP program on each interface (which
//! takes the instance lock and replaces a stale program of ours), the slow path (wg0, UAPI,
//! handshakes), then one worker per queue with its AF_XDP sockets. Stop is the reverse, so no
//! socket outlives its program and no program outlives the process: dropping an `XdpProgram`
//! detaches it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fastpath::queue::{slow_path_queue, Clock};
use fastpath::tables::shared_tables;
use slowpath::engine::{SlowPath, SlowPathConfig};
use slowpath::tun::TunConfig;
use tracing::{info, warn};

use crate::afxdp::{attach_program, queues, Mode, XskConfig, XskGroup};
use crate::route::{CacheOptions, NextHopCache, Rtnl};
use crate::worker::handoff::Handoff;
use crate::worker::io::Worker;
use crate::xdp::{RedirectConfig, XdpCountersReader, XdpProgram};
use fastpath::counters::{DropReason, WorkerCounters};
use fastpath::pipeline::{Pipeline, PipelineConfig};
use gwconf::TUN_NAME;
use gwconf::{self, GatewayConfig, Interfaces, LoadOptions, XdpMode};

/// Test knob: protocol time runs this many times faster than real time, so that integration
/// tests see rekeys and expiry in seconds against unmodified peers.
pub const CLOCK_SPEEDUP_ENV: &str = "DATAPLANE_CLOCK_SPEEDUP";
/// Depth of the worker -> slow path queue.
const SLOW_PATH_QUEUE: usize = 1024;

fn xsk_mode(mode: XdpMode) -> Mode {
    match mode {
        XdpMode::Auto => Mode::Auto,
        XdpMode::ZeroCopy => Mode::ZeroCopy,
        XdpMode::Copy => Mode::Copy,
        XdpMode::Skb => Mode::Skb,
    }
}

/// Runs the gateway described by `cfg` until SIGINT or SIGTERM. With `reload_from`, SIGHUP
/// re-reads that file and applies its peers without a restart.
pub fn run(cfg: GatewayConfig, reload_from: Option<PathBuf>) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;

    let mut rtnl = Rtnl::open().context("opening rtnetlink")?;
    let names = cfg.dataplane.interfaces.names();
    let mut links = Vec::new();
    for name in &names {
        let link = rtnl.link_by_name(name)?.with_context(|| {
            format!("[dataplane] interfaces: no interface named {name:?} in this network namespace")
        })?;
        links.push(link);
    }
    let lan_index = match &cfg.dataplane.interfaces {
        Interfaces::OneArmed { .. } => links[0].index,
        Interfaces::TwoArmed { .. } => links[1].index,
    };
    let wan_index = links[0].index;
    // MASQUERADE's rule: the primary address of the interface the packet leaves by.
    let egress = match cfg.nat.address {
        Some(a) => a,
        None => rtnl.primary_ipv4(lan_index)?.with_context(|| {
            format!(
                "[nat] address: not set and {} has no IPv4 address to masquerade to",
                names[names.len() - 1]
            )
        })?,
    };
    let addresses = rtnl.addresses()?;
    let wan_addrs: Vec<IpAddr> = addresses
        .iter()
        .filter(|a| a.ifindex == wan_index && a.addr.is_ipv4())
        .map(|a| a.addr)
        .collect();
    let mut host_addrs: Vec<Ipv4Addr> = addresses
        .iter()
        .filter(|a| links.iter().any(|l| l.index == a.ifindex))
        .filter_map(|a| match a.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let tunnel_addr = cfg
        .interface
        .tunnel_ipv4()
        .context("[interface] address: at least one IPv4 address is needed for wg0")?;
    host_addrs.extend(cfg.interface.address.iter().filter_map(|n| match n.addr() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }));

    let routes =
        NextHopCache::start(CacheOptions::default()).context("starting the route cache")?;

    let redirect = RedirectConfig {
        listen_port: Some(cfg.interface.listen_port),
        listen_addrs: wan_addrs,
        nat_v4: cfg.nat.masquerade.then_some(egress),
        nat_v6: None,
        nat_ports: cfg
            .nat
            .masquerade
            .then_some(cfg.nat.port_range.lo..=cfg.nat.port_range.hi),
    };
    let mode = xsk_mode(cfg.dataplane.mode);
    let mut programs: Vec<XdpProgram> = Vec::new();
    for name in &names {
        let p = attach_program(name, mode, &redirect)?;
        if let Some(old) = p.replaced_stale_program() {
            warn!(interface = %name, old_prog_id = old, "replaced an XDP program left by a previous run");
        }
        programs.push(p);
    }

    let clock = match std::env::var(CLOCK_SPEEDUP_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) if n > 1 => {
            warn!(
                speedup = n,
                "{CLOCK_SPEEDUP_ENV} is set: protocol time (key lifetimes, timers, NAT timeouts) \
                 runs {n} times faster than real time; this is a test knob, never for production"
            );
            Clock::accelerated(n)
        }
        _ => Clock::default(),
    };
    let tables = shared_tables();
    let (to_slow, from_workers) = slow_path_queue(SLOW_PATH_QUEUE);
    let peers = cfg
        .peers
        .iter()
        .map(|p| p.to_wgproto())
        .collect::<std::io::Result<Vec<_>>>()
        .context("resolving a peer endpoint")?;
    let slow = SlowPath::start(
        SlowPathConfig {
            interface: cfg.interface.to_wgproto(),
            peers,
            tun: Some(TunConfig {
                name: TUN_NAME.to_string(),
                addresses: cfg.interface.address.clone(),
                mtu: u32::from(cfg.interface.mtu),
            }),
            uapi_name: Some(TUN_NAME.to_string()),
        },
        tables.clone(),
        from_workers,
        clock,
    )?;

    let queues = choose_queues(&cfg, &names)?;
    // Packets that land on one worker's queue but belong to another's NAT slice cross over
    // through these lanes (worker::handoff).
    let mut handoffs = Handoff::mesh(queues.len())
        .context("creating the workers' handoff lanes")?
        .into_iter();
    let nat_cfg = nat::NatConfig {
        egress: vec![egress],
        ports: cfg.nat.port_range.lo..=cfg.nat.port_range.hi,
        exclude_ports: vec![cfg.interface.listen_port],
        capacity_per_worker: cfg.nat.capacity,
        workers: queues.len() as u16,
        timeouts: nat::Timeouts {
            udp: cfg.nat.timeouts.udp,
            tcp_established: cfg.nat.timeouts.tcp_established,
            tcp_transitory: cfg.nat.timeouts.tcp_transitory,
            icmp_query: cfg.nat.timeouts.icmp,
            ..nat::Timeouts::default()
        },
        hash_seed: rand_seed(),
        ..nat::NatConfig::default()
    };
    let pipeline_cfg = PipelineConfig {
        listen_port: cfg.interface.listen_port,
        mtu: usize::from(cfg.interface.mtu),
        host_addrs,
        tunnel_addr,
        masquerade: cfg.nat.masquerade,
    };
    let worker_stop = Arc::new(AtomicBool::new(false));
    let program_refs: Vec<&XdpProgram> = programs.iter().collect();
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    let mut all_counters = Vec::new();
    for (i, &queue) in queues.iter().enumerate() {
        let xsk = XskConfig {
            batch_size: usize::from(cfg.dataplane.batch_size),
            ..XskConfig::default()
        };
        let group = XskGroup::new(queue, &program_refs, mode, &xsk)?;
        for s in 0..group.socket_count() {
            let info = group.socket_info(s);
            info!(interface = %info.ifname, queue = info.queue_id, mode = %info.mode, "AF_XDP socket bound");
        }
        let nat = if cfg.nat.masquerade {
            Some(
                nat::Conntrack::new(&nat_cfg, i as u16)
                    .map_err(|e| anyhow::anyhow!("[nat]: {e:?}"))?,
            )
        } else {
            None
        };
        let counters = Arc::new(WorkerCounters::default());
        all_counters.push(counters.clone());
        let worker = Worker {
            group,
            pipeline: Pipeline::new(
                pipeline_cfg.clone(),
                nat,
                to_slow.clone(),
                routes.reader(),
                counters,
            ),
            tables: tables.clone(),
            routes: routes.reader(),
            clock,
            stop: worker_stop.clone(),
            batch_size: usize::from(cfg.dataplane.batch_size),
            handoff: handoffs.next().expect("the mesh has one end per queue"),
        };
        let core = match &cfg.dataplane.cpus {
            Some(cpus) if !cpus.is_empty() => Some(cpus[i % cpus.len()]),
            _ => core_ids.get(i % core_ids.len().max(1)).map(|c| c.id),
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker{i}"))
                .spawn(move || {
                    if let Some(id) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                            warn!(core = id, "could not pin worker to its core");
                        }
                    }
                    worker.run()
                })?,
        );
    }
    info!(
        interfaces = ?names,
        listen_port = cfg.interface.listen_port,
        egress = %egress,
        workers = handles.len(),
        "gateway running; stop with Ctrl-C (SIGINT) or SIGTERM, reload peers with SIGHUP"
    );

    // ---- ops: control socket and metrics endpoint (ops, ops::metrics) ----
    // They read counters only. The slow path is shared with them until they are stopped.
    let slow = Arc::new(slow);
    let ops = ops::start_for_gateway(
        &cfg,
        reload_from.as_deref(),
        &all_counters,
        &slow,
        &to_slow,
        xdp_counter_readers(&programs),
    );
    // ---- end ops ----

    let mut last_report = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if reload.swap(false, Ordering::Relaxed) {
            match &reload_from {
                Some(path) => match reload_peers(path, &slow) {
                    Ok(n) => info!(file = %path.display(), peers = n, "configuration reloaded"),
                    Err(e) => {
                        warn!(file = %path.display(), "reload refused, keeping the running configuration: {e:#}")
                    }
                },
                None => warn!("SIGHUP ignored: no configuration file to reload"),
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = std::time::Instant::now();
            log_counters(&all_counters);
        }
    }
    info!("stopping");
    // ---- ops: stopped before teardown; their threads are joined, so the slow path is ours again ----
    if let Some(ops) = ops {
        ops.stop();
    }
    let slow = Arc::into_inner(slow)
        .expect("ops servers stopped and joined: nothing else holds the slow path");
    // ---- end ops ----
    worker_stop.store(true, Ordering::Relaxed);
    let groups: Vec<XskGroup> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    log_counters(&all_counters);
    drop(groups);
    drop(program_refs);
    for p in programs {
        if let Err(e) = p.detach() {
            warn!("detaching the XDP program: {e}");
        }
    }
    slow.stop();
    drop(routes);
    info!("stopped: XDP programs detached, wg0 removed");
    Ok(())
}

/// `[dataplane] queues`, or the default (`afxdp::queues`); warns about queues left to the
/// kernel.
fn choose_queues(cfg: &GatewayConfig, names: &[&str]) -> anyhow::Result<Vec<u32>> {
    let mut counts = Vec::with_capacity(names.len());
    for name in names {
        let n = queues::rx_queue_count(name)
            .with_context(|| format!("reading the receive queues of {name} (/sys/class/net)"))?;
        counts.push(n);
    }
    let chosen = match &cfg.dataplane.queues {
        Some(q) => q.clone(),
        None => {
            let cpus = match &cfg.dataplane.cpus {
                Some(c) if !c.is_empty() => c.len(),
                _ => core_affinity::get_core_ids().map_or(1, |c| c.len()),
            };
            let q = queues::default_queues(&counts, cpus);
            info!(queues = ?q, nic_queues = ?counts, cpus, "serving one worker per queue ([dataplane] queues not set)");
            q
        }
    };
    for (name, &count) in names.iter().zip(&counts) {
        let left = queues::unserved(count, &chosen);
        if !left.is_empty() {
            warn!(
                interface = %name,
                queues = ?left,
                "these receive queues have no worker: tunnel and NAT traffic hashed to them goes \
                 to the kernel and is lost; serve them in [dataplane] queues or reduce the NIC's \
                 queues (`ethtool -L {name} combined {}`)",
                chosen.len()
            );
        }
    }
    Ok(chosen)
}

fn reload_peers(path: &Path, slow: &SlowPath) -> anyhow::Result<usize> {
    let opts = LoadOptions {
        host: crate::host::facts(),
        interfaces: None,
    };
    let loaded = gwconf::load(path, &opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let peers = loaded
        .config
        .peers
        .iter()
        .map(|p| p.to_wgproto())
        .collect::<std::io::Result<Vec<_>>>()?;
    let n = peers.len();
    slow.reload_peers(peers)?;
    Ok(n)
}

fn log_counters(all: &[Arc<WorkerCounters>]) {
    for (i, c) in all.iter().enumerate() {
        let counters: Vec<String> = c.read().iter().map(|(n, v)| format!("{n}={v}")).collect();
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| c.dropped(**r) > 0)
            .map(|r| format!("{}={}", r.name(), c.dropped(*r)))
            .collect();
        // Every declared counter as `name=value` in the message (field names cannot be made
        // at run time); `dropped` stays last, as log readers take the rest of the line.
        info!(
            worker = i,
            dropped = %drops.join(" "),
            "counters {}",
            counters.join(" ")
        );
    }
}

/// A seed for the NAT's keyed hash, so port choice is not predictable across runs.
fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

/// A reader of each program's counters for the stats, or why there is none (logged once).
fn xdp_counter_readers(
    programs: &[XdpProgram],
) -> Vec<Result<Box<dyn ops::XdpCountersSource>, (String, String)>> {
    programs
        .iter()
        .map(|p| match XdpCountersReader::for_program(p) {
            Ok(r) => Ok(Box::new(r) as Box<dyn ops::XdpCountersSource>),
            Err(e) => {
                tracing::warn!(interface = %p.ifname(), "XDP counters will be missing from stats: {e}");
                Err((p.ifname().to_string(), e))
            }
        })
        .collect()
}
