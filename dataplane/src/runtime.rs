//! `dataplane --config FILE`: brings the gateway up, runs it until SIGINT/SIGTERM, reloads
//! peers on SIGHUP, and tears everything down in order.
//!
//! Start order: route cache (the workers' next hops), XDP program on each interface (which
//! takes the instance lock and replaces a stale program of ours), the slow path (wg0, UAPI,
//! handshakes), then one worker per queue with its AF_XDP sockets. Stop is the reverse, so no
//! socket outlives its program and no program outlives the process: dropping an `XdpProgram`
//! detaches it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fastpath::outer_datagrams::{outer_datagrams, OuterReceiver, OuterSender};
use fastpath::queue::{slow_path_queue, Clock, SlowPathReceiver, SlowPathSender};
use fastpath::tables::{shared_tables, SharedTables};
use slowpath::engine::{SlowPath, SlowPathConfig};
use slowpath::tun::TunConfig;
use tracing::{info, warn};

use crate::addr_watch::{listen_addresses, AddressWatch};
use crate::afxdp::{attach_program, queues, Mode, XskConfig, XskGroup};
use crate::reserved_ports::ReservedPorts;
use crate::route::{global_ipv6_of, CacheOptions, NextHopCache, Rtnl};
use crate::worker::handoff::Handoff;
use crate::worker::io::{Worker, PANIC_AFTER_ENV};
use crate::xdp::{LivePortsWriter, OversizeWatch, RedirectConfig, XdpCountersReader, XdpProgram};
use fastpath::counters::{DropReason, WorkerCounters};
use fastpath::frame::{FRAME_SIZE, RX_OFFSET};
use fastpath::pipeline::{Pipeline, PipelineConfig};
use gwconf::{self, GatewayConfig, Interfaces, LoadOptions, XdpMode};

/// Test knob: protocol time runs this many times faster than real time, so that integration
/// tests see rekeys and expiry in seconds against unmodified peers.
pub const CLOCK_SPEEDUP_ENV: &str = "DATAPLANE_CLOCK_SPEEDUP";
/// Depth of each lane of the worker -> slow path queue (handshakes; events and host packets).
const SLOW_PATH_QUEUE: usize = 1024;
/// Depth of the slow path -> worker 0 queue of datagrams read from the listen port's socket.
const OUTER_DATAGRAM_QUEUE: usize = 1024;

/// The workers' ends of the channels with the slow path.
struct SlowPathLinks<'a> {
    to_slow: &'a SlowPathSender,
    /// Datagrams the kernel reassembled, for worker 0.
    outer: OuterReceiver,
}

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
    let signals = Signals::register()?;
    let host = HostAddresses::read(&cfg)?;
    let routes =
        NextHopCache::start(CacheOptions::default()).context("starting the route cache")?;
    let programs = attach_programs(&cfg, &host)?;
    // Held until return: the host's ephemeral ports stay out of the NAT range meanwhile (the
    // one setting covers IPv4 and IPv6 alike, so either NAT needs it).
    let _reserved = (cfg.nat.masquerade || cfg.nat.masquerade_ipv6)
        .then(|| ReservedPorts::reserve(cfg.nat.port_range.lo..=cfg.nat.port_range.hi))
        .flatten();
    let clock = protocol_clock();
    let tables = shared_tables();
    let (to_slow, from_workers) = slow_path_queue(SLOW_PATH_QUEUE);
    let (outer_tx, outer_rx) =
        outer_datagrams(OUTER_DATAGRAM_QUEUE).context("creating the outer datagram queue")?;
    let slow = start_slow_path(&cfg, tables.clone(), from_workers, outer_tx, clock)?;
    slow.set_peer_names(peer_names(&cfg));
    let links = SlowPathLinks {
        to_slow: &to_slow,
        outer: outer_rx,
    };
    let workers = start_workers(&cfg, &host, &programs, &routes, &tables, links, clock)?;
    info!(
        device = %cfg.interface.name,
        interfaces = ?cfg.dataplane.interfaces.names(),
        listen_port = cfg.interface.listen_port,
        egress = %host.egress,
        workers = workers.handles.len(),
        "gateway running; stop with Ctrl-C (SIGINT) or SIGTERM, reload peers with SIGHUP"
    );

    // The operator servers read counters only; they share the slow path until stopped.
    let slow = Arc::new(slow);
    let ops = ops::start_for_gateway(
        &cfg,
        reload_from.as_deref(),
        &workers.counters,
        &slow,
        &to_slow,
        xdp_counter_readers(&programs),
    );
    let watches = Watches {
        programs: &programs,
        oversize: OversizeWatch::new(&programs),
        addresses: host.watch(&cfg),
        last: std::time::Instant::now(),
    };
    let outcome = serve(
        &signals,
        reload_from.as_deref(),
        &cfg,
        &slow,
        &workers,
        watches,
    );

    info!("stopping");
    // Reverse order: the servers first (their threads are joined, so the slow path is ours
    // again), then the workers and their sockets, then the programs, the slow path (wg0) and
    // the route cache.
    if let Some(ops) = ops {
        ops.stop();
    }
    let slow = Arc::into_inner(slow)
        .expect("ops servers stopped and joined: nothing else holds the slow path");
    workers.stop();
    for p in programs {
        if let Err(e) = p.detach() {
            warn!("detaching the XDP program: {e}");
        }
    }
    slow.stop();
    drop(routes);
    info!(
        "stopped: XDP programs detached, {} removed",
        cfg.interface.name
    );
    outcome
}

/// The flags the signal handlers set: stop (SIGINT, SIGTERM) and reload (SIGHUP).
struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;
        Ok(Signals { stop, reload })
    }
}

/// What the gateway needs to know of the host's interfaces and addresses, read once at start.
struct HostAddresses {
    /// Source address of masqueraded packets: `[nat] address`, else the LAN interface's
    /// primary IPv4 address (MASQUERADE's rule).
    egress: Ipv4Addr,
    /// Source address of IPv6 masqueraded packets (`[nat] masquerade_ipv6`): `[nat]
    /// address_ipv6`, else the LAN interface's first global IPv6 address; `None` when off.
    egress6: Option<Ipv6Addr>,
    /// The WAN interface's IPv4 addresses: WireGuard is accepted on these.
    wan: Vec<IpAddr>,
    /// Every IPv4 address of the gateway's interfaces and of wg0: packets to them are the
    /// host's, given to the kernel.
    host: Vec<Ipv4Addr>,
    /// wg0's own IPv4 address.
    tunnel: Ipv4Addr,
    /// Every IPv6 address of the gateway's interfaces and of wg0 (link-local ones included).
    host6: Vec<Ipv6Addr>,
    /// wg0's own IPv6 address, the source of ICMPv6 errors into the tunnel, if it has one.
    tunnel6: Option<Ipv6Addr>,
    /// The MTU of each `[dataplane] interfaces` entry, in the config's order.
    mtus: Vec<u32>,
    /// Their MACs, in the same order (`None` for a link without an Ethernet address).
    macs: Vec<Option<[u8; 6]>>,
    /// The WAN interface (WireGuard arrives there) and the LAN one (the NAT's egress).
    wan_index: u32,
    lan_index: u32,
}

impl HostAddresses {
    /// Follows the WAN addresses (and reports a change of the egress address when it was
    /// taken from the LAN interface) for as long as the gateway runs.
    fn watch(&self, cfg: &GatewayConfig) -> Option<AddressWatch> {
        let wan_name = cfg.dataplane.interfaces.names()[0];
        let egress = (cfg.nat.masquerade && cfg.nat.address.is_none())
            .then_some((self.lan_index, self.egress));
        AddressWatch::new(self.wan_index, wan_name, self.wan.clone(), egress)
            .map_err(|e| warn!("address changes will not be followed (rtnetlink: {e})"))
            .ok()
    }
}

impl HostAddresses {
    fn read(cfg: &GatewayConfig) -> anyhow::Result<HostAddresses> {
        let mut rtnl = Rtnl::open().context("opening rtnetlink")?;
        let names = cfg.dataplane.interfaces.names();
        let mut links = Vec::new();
        for name in &names {
            let link = rtnl.link_by_name(name)?.with_context(|| {
                format!(
                    "[dataplane] interfaces: no interface named {name:?} in this network namespace"
                )
            })?;
            links.push(link);
        }
        let lan_index = match &cfg.dataplane.interfaces {
            Interfaces::OneArmed { .. } => links[0].index,
            Interfaces::TwoArmed { .. } => links[1].index,
        };
        let wan_index = links[0].index;
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
        let egress6 = match (cfg.nat.masquerade_ipv6, cfg.nat.address_ipv6) {
            (false, _) => None,
            (true, Some(a)) => Some(a),
            (true, None) => Some(global_ipv6_of(&addresses, lan_index).with_context(|| {
                format!(
                    "[nat] address_ipv6: not set and {} has no global IPv6 address to masquerade to",
                    names[names.len() - 1]
                )
            })?),
        };
        let wan = listen_addresses(&addresses, wan_index);
        let tunnel = cfg.interface.tunnel_ipv4().with_context(|| {
            format!(
                "[interface] address: at least one IPv4 address is needed for {}",
                cfg.interface.name
            )
        })?;
        let ours: Vec<IpAddr> = addresses
            .iter()
            .filter(|a| links.iter().any(|l| l.index == a.ifindex))
            .map(|a| a.addr)
            .chain(cfg.interface.address.iter().map(|n| n.addr()))
            .collect();
        let host = ours
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        let host6 = ours
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            })
            .collect();
        // The first IPv6 address of [interface] address, as the IPv4 one is taken.
        let tunnel6 = cfg.interface.address.iter().find_map(|n| match n.addr() {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        });
        Ok(HostAddresses {
            egress,
            egress6,
            wan,
            host,
            tunnel,
            host6,
            tunnel6,
            mtus: links.iter().map(|l| l.mtu).collect(),
            macs: links.iter().map(|l| l.mac.map(|m| m.0)).collect(),
            wan_index,
            lan_index,
        })
    }
}

/// Attaches the XDP program to every configured interface, redirecting the listen port and,
/// with masquerade, the NAT's return ports to the AF_XDP sockets.
fn attach_programs(cfg: &GatewayConfig, host: &HostAddresses) -> anyhow::Result<Vec<XdpProgram>> {
    let redirect = RedirectConfig {
        listen_port: Some(cfg.interface.listen_port),
        listen_addrs: host.wan.clone(),
        nat_v4: cfg.nat.masquerade.then_some(host.egress),
        nat_v6: host.egress6,
        nat_ports: (cfg.nat.masquerade || host.egress6.is_some())
            .then_some(cfg.nat.port_range.lo..=cfg.nat.port_range.hi),
        max_frame_len: None, // per interface, below
        local_mac: None,     // per interface, below
    };
    let mode = xsk_mode(cfg.dataplane.mode);
    let mut programs = Vec::new();
    let names = cfg.dataplane.interfaces.names();
    for ((name, &mtu), &mac) in names.iter().zip(&host.mtus).zip(&host.macs) {
        let redirect = RedirectConfig {
            max_frame_len: Some(max_frame_len(mtu)),
            local_mac: mac,
            ..redirect.clone()
        };
        let p = attach_program(name, mode, &redirect)?;
        if let Some(old) = p.replaced_stale_program() {
            warn!(interface = %name, old_prog_id = old, "replaced an XDP program left by a previous run");
        }
        programs.push(p);
    }
    Ok(programs)
}

/// The longest frame the workers take from an interface with `mtu`: one untagged Ethernet
/// frame of that MTU (tagged frames go to the kernel), at most what one UMEM frame receives.
fn max_frame_len(mtu: u32) -> u16 {
    let rx_capacity = FRAME_SIZE - RX_OFFSET;
    let frame = (mtu as usize).saturating_add(wire::ethernet::HEADER_LEN);
    u16::try_from(frame.min(rx_capacity)).unwrap_or(u16::MAX)
}

/// The protocol clock: real time, or faster under the [`CLOCK_SPEEDUP_ENV`] test knob.
fn protocol_clock() -> Clock {
    match std::env::var(CLOCK_SPEEDUP_ENV)
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
    }
}

/// Starts the slow-path thread: wg0, the UAPI socket, handshakes and timers.
fn start_slow_path(
    cfg: &GatewayConfig,
    tables: SharedTables,
    from_workers: SlowPathReceiver,
    outer: OuterSender,
    clock: Clock,
) -> anyhow::Result<SlowPath> {
    let peers = cfg
        .peers
        .iter()
        .map(|p| p.to_wgproto())
        .collect::<std::io::Result<Vec<_>>>()
        .context("resolving a peer endpoint")?;
    SlowPath::start(
        SlowPathConfig {
            interface: cfg.interface.to_wgproto(),
            peers,
            tun: Some(TunConfig {
                name: cfg.interface.name.clone(),
                addresses: cfg.interface.address.clone(),
                mtu: u32::from(cfg.interface.mtu),
            }),
            uapi_name: Some(cfg.interface.name.clone()),
            outer_datagrams: Some(outer),
        },
        tables,
        from_workers,
        clock,
    )
}

/// The running workers: their threads, counters and stop flag.
struct Workers {
    handles: Vec<std::thread::JoinHandle<XskGroup>>,
    counters: Vec<Arc<WorkerCounters>>,
    stop: Arc<AtomicBool>,
}

impl Workers {
    /// Stops the workers, closes their sockets and logs their final counters.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let groups: Vec<XskGroup> = self
            .handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect();
        log_counters(&self.counters, &mut Vec::new()); // always: the final values
        drop(groups);
    }
}

/// Starts one pinned worker per queue, each with its AF_XDP sockets on every interface, its
/// slice of the NAT, and its ends of the handoff lanes.
fn start_workers(
    cfg: &GatewayConfig,
    host: &HostAddresses,
    programs: &[XdpProgram],
    routes: &NextHopCache,
    tables: &SharedTables,
    links: SlowPathLinks<'_>,
    clock: Clock,
) -> anyhow::Result<Workers> {
    let SlowPathLinks { to_slow, outer } = links;
    let mut outer = Some(outer);
    if let Ok(secs) = std::env::var(PANIC_AFTER_ENV) {
        warn!("{PANIC_AFTER_ENV}={secs} is set: worker 0 will panic on purpose; a test knob, never for production");
    }
    let names = cfg.dataplane.interfaces.names();
    let queues = choose_queues(cfg, &names)?;
    // Packets that land on one worker's queue but belong to another's NAT slice cross over
    // through these lanes.
    let mut handoffs = Handoff::mesh(queues.len())
        .context("creating the workers' handoff lanes")?
        .into_iter();
    let nat_cfg = nat_config(cfg, host.egress, queues.len());
    let nat6_cfg = host
        .egress6
        .map(|egress6| nat_cfg.with_egress(vec![egress6]));
    let pipeline_cfg = PipelineConfig {
        listen_port: cfg.interface.listen_port,
        mtu: usize::from(cfg.interface.mtu),
        host_addrs: host.host.clone(),
        tunnel_addr: host.tunnel,
        host_addrs6: host.host6.clone(),
        tunnel_addr6: host.tunnel6,
        masquerade: cfg.nat.masquerade,
        outer_ip_id_seed: 0,
        outer_frag_id_seed: 0,
        cookie_nonce_seed: [0; 16],
    };
    let live_ports = if cfg.nat.masquerade || host.egress6.is_some() {
        let maps = programs
            .iter()
            .map(|p| {
                p.live_ports().map(Arc::new).with_context(|| {
                    format!("mapping the NAT's live-port bitmap of {}", p.ifname())
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Some(LivePortsWriter::new(maps))
    } else {
        None
    };
    let mode = xsk_mode(cfg.dataplane.mode);
    let stop = Arc::new(AtomicBool::new(false));
    let program_refs: Vec<&XdpProgram> = programs.iter().collect();
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    let mut counters = Vec::new();
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
        let nat = match &live_ports {
            Some(live) if cfg.nat.masquerade => {
                let mut ct = nat::Conntrack::new(&nat_cfg, i as u16)
                    .map_err(|e| anyhow::anyhow!("[nat]: {e:?}"))?;
                // The XDP program takes NAT return traffic only for ports a mapping holds.
                ct.observe_ports(Box::new(live.clone()));
                Some(ct)
            }
            _ => None,
        };
        let nat6 = match (&live_ports, &nat6_cfg) {
            (Some(live), Some(nat6_cfg)) => {
                let mut ct = nat::Conntrack6::new(nat6_cfg, i as u16)
                    .map_err(|e| anyhow::anyhow!("[nat] (IPv6): {e:?}"))?;
                // Its ports are held apart from the IPv4 NAT's (live_ports.rs).
                ct.observe_ports(Box::new(live.ipv6()));
                Some(ct)
            }
            _ => None,
        };
        let worker_counters = Arc::new(WorkerCounters::default());
        counters.push(worker_counters.clone());
        let pipeline = Pipeline::new(
            PipelineConfig {
                outer_ip_id_seed: rand_seed() as u16,
                outer_frag_id_seed: rand_core::RngCore::next_u32(&mut rand_core::OsRng),
                cookie_nonce_seed: {
                    let mut seed = [0; 16];
                    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
                    seed
                },
                ..pipeline_cfg.clone()
            },
            nat,
            to_slow.clone(),
            routes.reader(),
            worker_counters,
        );
        // The IPv6 NAT beside the IPv4 one (`[nat] masquerade_ipv6`).
        let pipeline = match nat6 {
            Some(ct) => pipeline.with_nat6(ct),
            None => pipeline,
        };
        let worker = Worker {
            group,
            pipeline,
            tables: tables.clone(),
            routes: routes.reader(),
            clock,
            stop: stop.clone(),
            batch_size: usize::from(cfg.dataplane.batch_size),
            handoff: handoffs.next().expect("the mesh has one end per queue"),
            // Worker 0 takes what the kernel reassembled (a rare path: one worker suffices).
            outer: outer.take(),
            index: i,
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
    Ok(Workers {
        handles,
        counters,
        stop,
    })
}

/// The NAT of `[nat]`, partitioned over `workers`, masquerading to `egress`.
fn nat_config(cfg: &GatewayConfig, egress: Ipv4Addr, workers: usize) -> nat::NatConfig {
    nat::NatConfig {
        egress: vec![egress],
        ports: cfg.nat.port_range.lo..=cfg.nat.port_range.hi,
        exclude_ports: vec![cfg.interface.listen_port],
        capacity_per_worker: cfg.nat.capacity,
        workers: workers as u16,
        timeouts: nat::Timeouts {
            udp: cfg.nat.timeouts.udp,
            tcp_established: cfg.nat.timeouts.tcp_established,
            tcp_transitory: cfg.nat.timeouts.tcp_transitory,
            icmp_query: cfg.nat.timeouts.icmp,
            ..nat::Timeouts::default()
        },
        hash_seed: rand_seed(),
        ..nat::NatConfig::default()
    }
}

/// The gateway's main thread while it runs: waits for a stop signal, applies reloads, logs
/// the workers' counters every 10 s, and watches the workers. A worker that ends on its own
/// has panicked: its queue would fall to the kernel, which answers the NAT's return traffic
/// with resets, so the gateway stops with an error (and a non-zero exit, for the service
/// manager to restart it) rather than run on without it.
fn serve(
    signals: &Signals,
    reload_from: Option<&Path>,
    running: &GatewayConfig,
    slow: &SlowPath,
    workers: &Workers,
    mut watches: Watches<'_>,
) -> anyhow::Result<()> {
    let counters = &workers.counters;
    let mut last_report = std::time::Instant::now();
    let mut reported: Vec<Vec<u64>> = Vec::new();
    while !signals.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(dead) = workers.handles.iter().position(|h| h.is_finished()) {
            tracing::error!(
                worker = dead,
                "worker {dead} stopped unexpectedly (it panicked; see the message above): \
                 stopping the gateway"
            );
            anyhow::bail!(
                "worker {dead} panicked; the gateway stopped so that it can be restarted"
            );
        }
        if signals.reload.swap(false, Ordering::Relaxed) {
            match reload_from {
                Some(path) => match reload_peers(path, running, slow) {
                    Ok(n) => info!(file = %path.display(), peers = n, "configuration reloaded"),
                    Err(e) => {
                        warn!(file = %path.display(), "reload refused, keeping the running configuration: {e:#}")
                    }
                },
                None => warn!("SIGHUP ignored: no configuration file to reload"),
            }
        }
        watches.tick();
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = std::time::Instant::now();
            log_counters(counters, &mut reported);
        }
    }
    Ok(())
}

/// What the main thread checks while the gateway runs, besides the workers and signals.
/// Once a second: cheap next to what they watch (a DHCP lease, a misconfigured offload).
struct Watches<'a> {
    programs: &'a [XdpProgram],
    oversize: OversizeWatch,
    addresses: Option<AddressWatch>,
    last: std::time::Instant,
}

impl Watches<'_> {
    fn tick(&mut self) {
        if self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = std::time::Instant::now();
        self.oversize.check();
        if let Some(a) = self.addresses.as_mut() {
            a.check(self.programs);
        }
    }
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

/// Applies the file's peers; every other setting it changed is named at WARN (they are bound
/// at start and need a restart).
fn reload_peers(path: &Path, running: &GatewayConfig, slow: &SlowPath) -> anyhow::Result<usize> {
    let opts = LoadOptions {
        host: crate::host::facts(),
        interfaces: None,
    };
    let loaded = gwconf::load(path, &opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    for change in gwconf::reload::ignored_changes(running, &loaded.config) {
        warn!(
            field = change.field,
            change = %change.detail,
            "{} changed in {} but a reload applies [[peer]] changes only: the gateway keeps the running value until it is restarted",
            change.field,
            path.display()
        );
    }
    let peers = loaded
        .config
        .peers
        .iter()
        .map(|p| p.to_wgproto())
        .collect::<std::io::Result<Vec<_>>>()?;
    let n = peers.len();
    slow.reload_peers(peers)?;
    slow.set_peer_names(peer_names(&loaded.config));
    Ok(n)
}

/// Configured peer names by key, for the slow path's logs.
fn peer_names(cfg: &GatewayConfig) -> std::collections::HashMap<wgproto::keys::PublicKey, String> {
    cfg.peers
        .iter()
        .filter_map(|p| {
            let name = p.name.clone()?;
            Some((
                wgproto::keys::PublicKey::from_bytes(*p.public_key.bytes()),
                name,
            ))
        })
        .collect()
}

/// Logs each worker's counters at INFO when they changed since the last report (`reported`
/// keeps what was logged), at DEBUG when idle: an idle gateway does not fill the journal.
fn log_counters(all: &[Arc<WorkerCounters>], reported: &mut Vec<Vec<u64>>) {
    reported.resize(all.len(), Vec::new());
    for (i, c) in all.iter().enumerate() {
        let read = c.read();
        let mut values: Vec<u64> = read.iter().map(|(_, v)| *v).collect();
        values.extend(DropReason::ALL.iter().map(|r| c.dropped(*r)));
        let changed = reported[i] != values;
        reported[i] = values;
        if !changed {
            tracing::debug!(worker = i, "counters unchanged");
            continue;
        }
        let counters: Vec<String> = read.iter().map(|(n, v)| format!("{n}={v}")).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_frame_len_is_the_mtu_plus_ethernet_within_one_umem_frame() {
        assert_eq!(max_frame_len(1500), 1514);
        assert_eq!(max_frame_len(1400), 1414);
        // Jumbo MTUs: a UMEM frame holds 3840 bytes after the kernel's headroom.
        assert_eq!(max_frame_len(9000), 3840);
        assert_eq!(max_frame_len(u32::MAX), 3840);
    }
}
