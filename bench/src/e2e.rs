//! The end-to-end benchmark in the namespace lab (`lab`, two-armed: client on the
//! WAN wire, server on the LAN wire, veth pairs): for each gateway under test, a fresh lab, a
//! handshake with the client's wireguard-go, iperf3 TCP both ways and ICMP echo latency from
//! that client, then fixed offered loads from the WireGuard load generator to the sink and
//! back ([`crate::load_sweep`]).
//!
//! The gateways run in the same invocation on the same machine, so their ratios are
//! meaningful even where absolute figures are not: this project's `dataplane`, and the
//! article's design in user space twice, wireguard-go + iptables MASQUERADE and boringtun +
//! iptables MASQUERADE. iperf3 and ping go through the lab's wireguard-go client, which bounds
//! what they can offer; the load generator seals ahead of time and sends through AF_XDP (or
//! `sendmmsg(2)`), so its offered load does not depend on a WireGuard implementation in the
//! client, and the same generator drives every gateway.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use lab::{DataplaneGateway, GatewayKind, Lab, Node, Topology, SERVER_ADDR};
use serde_json::Value;

use crate::load_sweep::{GeneratorKind, LoadPoint, LoadRig, SweepPlan};
use crate::sink_xdp::SinkKind;

/// Which gateway to measure.
#[derive(Clone, Debug)]
pub enum Gateway {
    /// wireguard-go + iptables MASQUERADE.
    Reference,
    /// boringtun + iptables MASQUERADE.
    ReferenceBoringtun,
    /// The `dataplane` binary in the given AF_XDP mode (`copy` on veth).
    Dataplane { binary: PathBuf, mode: String },
}

impl Gateway {
    pub fn name(&self) -> &'static str {
        match self {
            Gateway::Reference => "wireguard-go + iptables MASQUERADE",
            Gateway::ReferenceBoringtun => "boringtun + iptables MASQUERADE",
            Gateway::Dataplane { .. } => "dataplane (AF_XDP)",
        }
    }

    pub fn short(&self) -> &'static str {
        match self {
            Gateway::Reference => "wireguard-go",
            Gateway::ReferenceBoringtun => "boringtun",
            Gateway::Dataplane { .. } => "dataplane",
        }
    }
}

/// What to run per gateway.
#[derive(Clone, Debug)]
pub struct E2eOptions {
    pub tcp_time: Duration,
    /// Inner IPv4 packet sizes of the pings.
    pub ping_sizes: Vec<usize>,
    pub pings: u32,
    pub ping_interval: Duration,
    /// The load generator's offered loads.
    pub sweep: SweepPlan,
    /// The load generator's way out of the client namespace.
    pub generator: GeneratorKind,
    /// How the sink receives and answers in the server namespace.
    pub sink: SinkKind,
}

impl E2eOptions {
    pub fn quick() -> Self {
        E2eOptions {
            tcp_time: Duration::from_secs(2),
            ping_sizes: vec![64, 1420],
            pings: 50,
            ping_interval: Duration::from_millis(10),
            sweep: SweepPlan::quick(),
            generator: GeneratorKind::default(),
            sink: SinkKind::default(),
        }
    }

    pub fn full() -> Self {
        E2eOptions {
            tcp_time: Duration::from_secs(10),
            ping_sizes: vec![64, 512, 1420],
            pings: 1000,
            ping_interval: Duration::from_millis(10),
            sweep: SweepPlan::full(),
            generator: GeneratorKind::default(),
            sink: SinkKind::default(),
        }
    }
}

/// Round-trip time percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub sent: u32,
    pub received: u32,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// A UDP flood at one size: what the receiver got.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UdpResult {
    pub size: usize,
    pub sent_pps: f64,
    pub received_pps: f64,
    pub received_bps: f64,
    pub lost_percent: f64,
}

/// Everything measured through one gateway.
#[derive(Clone, Debug, Default)]
pub struct GatewayResult {
    pub gateway: String,
    pub short: String,
    /// iperf3 TCP, client -> server and server -> client, received bits/s.
    pub tcp_up_bps: f64,
    pub tcp_down_bps: f64,
    /// Ping round trips per inner packet size.
    pub latency: Vec<(usize, Latency)>,
    /// The load generator's points, both directions.
    pub load: Vec<LoadPoint>,
    /// Why the load generator's points are missing, if they are.
    pub load_error: Option<String>,
    /// The load generator's path (AF_XDP or sendmmsg, and why) and core placement.
    pub load_path: Option<String>,
    /// The sink's path (AF_XDP or UDP, and why).
    pub sink_path: Option<String>,
    pub load_cores: Option<String>,
    /// The AF_XDP mode the gateway reported, if it is the dataplane.
    pub afxdp_mode: Option<String>,
    /// The gateway interfaces' driver (`veth`).
    pub driver: String,
    /// Where the cores went at each full-speed point, in sweep order.
    pub cpu_at_max: Vec<crate::load_sweep::MaxPointCpu>,
    /// The dataplane's `dataplane stats` after the load points (drops by reason, AF_XDP ring
    /// counters): where its packets were lost at `max`.
    pub gateway_stats: Option<String>,
}

/// Builds a lab with `gw`, measures, tears the lab down.
pub fn run_gateway(
    gw: &Gateway,
    opts: &E2eOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<GatewayResult> {
    let topology = Topology::TwoArmed;
    // Not the host's default control socket: other gateways may run at the same time.
    let control = std::env::temp_dir().join(format!("bench-e2e-{}.sock", std::process::id()));
    let kind = match gw {
        Gateway::Reference => GatewayKind::Reference,
        Gateway::ReferenceBoringtun => GatewayKind::ReferenceBoringtun,
        Gateway::Dataplane { binary, mode } => {
            let mut dp = DataplaneGateway::new(binary);
            dp.toml.mode = Some(mode.clone());
            dp.toml.extra_toml = format!("[control]\nsocket = \"{}\"\n", control.display());
            GatewayKind::Dataplane(dp)
        }
    };
    progress(&format!("{}: building the lab", gw.short()));
    let mut lab = Lab::builder(topology)
        .gateway(kind)
        .iperf3_server(true)
        .build()?;
    lab.wait_for_handshake(Duration::from_secs(10))?;
    // The first packets resolve neighbours and create the NAT mappings.
    for _ in 0..3 {
        if lab.ping_from_client(SERVER_ADDR).is_ok() {
            break;
        }
    }
    let mut r = GatewayResult {
        gateway: gw.name().to_owned(),
        short: gw.short().to_owned(),
        driver: driver_of(&lab, topology.gateway_wan_interface()),
        ..GatewayResult::default()
    };
    progress(&format!("{}: iperf3 TCP client -> server", gw.short()));
    r.tcp_up_bps = iperf3(&lab, opts.tcp_time, false, None)?.received_bps;
    progress(&format!("{}: iperf3 TCP server -> client", gw.short()));
    r.tcp_down_bps = iperf3(&lab, opts.tcp_time, true, None)?.received_bps;
    for &size in &opts.ping_sizes {
        progress(&format!(
            "{}: {} pings of {size} bytes",
            gw.short(),
            opts.pings
        ));
        r.latency.push((
            size,
            ping(&lab, SERVER_ADDR, size, opts.pings, opts.ping_interval)?,
        ));
    }
    progress(&format!(
        "{}: load generator handshake and offered loads",
        gw.short()
    ));
    // A failed sweep keeps the TCP and ping figures and the points measured before it, and
    // says why in the report.
    let swept = LoadRig::attach_paths(&mut lab, opts.generator, opts.sink).and_then(|mut rig| {
        r.load_path = Some(rig.path().to_owned());
        r.sink_path = Some(rig.sink_path().to_owned());
        r.load_cores = Some(rig.cores().note.clone());
        progress(&format!(
            "{}: load generator via {}; sink via {}; cores: {}",
            gw.short(),
            rig.path(),
            rig.sink_path(),
            rig.cores().note
        ));
        let swept = rig.sweep(&opts.sweep, &mut r.load, progress);
        if let Some(drops) = rig.xdp_kernel_drops() {
            lab.note(format!("load generator AF_XDP socket: {drops}"));
        }
        if let Some(drops) = rig.sink_kernel_drops() {
            lab.note(format!("sink AF_XDP socket: {drops}"));
        }
        r.cpu_at_max = std::mem::take(&mut rig.cpu_at_max);
        swept
    });
    if let Err(e) = swept {
        progress(&format!("{}: load generator failed: {e:#}", gw.short()));
        r.load_error = Some(format!("{e:#}"));
    }
    if let Gateway::Dataplane { binary, .. } = gw {
        r.afxdp_mode = afxdp_mode_from_log(&lab.gateway_log());
        r.gateway_stats = Command::new(binary)
            .args(["stats", "--socket"])
            .arg(&control)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    }
    if let Some(status) = lab.gateway_exit_status() {
        bail!("the gateway exited during the benchmark ({status})");
    }
    Ok(r)
}

/// The kernel driver of `ifname` in the gateway namespace (`ethtool -i` needs ethtool; the
/// link kind `ip -d link` prints is enough to tell veth).
fn driver_of(lab: &Lab, ifname: &str) -> String {
    lab.exec_in(Node::Gateway, &["ip", "-d", "link", "show", "dev", ifname])
        .ok()
        .and_then(|out| {
            out.lines()
                .nth(2)
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The `mode` of the gateway's "AF_XDP socket bound" log lines.
pub fn afxdp_mode_from_log(log: &str) -> Option<String> {
    log.lines()
        .filter(|l| l.contains("AF_XDP socket bound"))
        .find_map(|l| {
            let at = l.find("mode=")? + "mode=".len();
            let rest = &l[at..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            Some(rest[..end].trim_matches('"').to_owned())
        })
}

fn in_client(lab: &Lab, argv: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns_name(Node::Client)]);
    cmd.args(argv);
    cmd
}

/// iperf3 from the client to the server's `iperf3 -s`: TCP, or UDP at full rate with inner
/// packets of `udp_size` bytes (IPv4 + UDP headers included).
pub fn iperf3(
    lab: &Lab,
    time: Duration,
    reverse: bool,
    udp_size: Option<usize>,
) -> Result<UdpResult> {
    let server = SERVER_ADDR.to_string();
    let secs = time.as_secs().max(1).to_string();
    let mut argv = vec![
        "iperf3".to_owned(),
        "-c".into(),
        server,
        "-t".into(),
        secs,
        "-J".into(),
        "--connect-timeout".into(),
        "3000".into(),
    ];
    if reverse {
        argv.push("-R".into());
    }
    if let Some(size) = udp_size {
        let payload = size.checked_sub(28).context("UDP packet below 28 bytes")?;
        argv.extend(["-u".into(), "-b".into(), "0".into(), "-l".into()]);
        argv.push(payload.to_string());
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    lab.note(argv.join(" "));
    let out = in_client(lab, &argv)
        .output()
        .context("cannot run iperf3")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "iperf3 printed no JSON ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = json.get("error").and_then(Value::as_str) {
        bail!("iperf3: {e}");
    }
    parse_iperf3(&json, udp_size.is_some())
}

/// Reads an iperf3 `-J` report: TCP `end.sum_received`; UDP the receiver's `end.sum_received`
/// (packets, lost) and the sender's `end.sum_sent`.
pub fn parse_iperf3(json: &Value, udp: bool) -> Result<UdpResult> {
    let end = json.get("end").context("iperf3 report without `end`")?;
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let secs = |v: &Value| {
        num(v, "seconds")
            .or_else(|| Some(num(v, "end")? - num(v, "start")?))
            .filter(|s| *s > 0.0)
    };
    if !udp {
        let rx = end
            .get("sum_received")
            .context("iperf3 TCP report without sum_received")?;
        return Ok(UdpResult {
            received_bps: num(rx, "bits_per_second").context("no bits_per_second")?,
            ..UdpResult::default()
        });
    }
    // iperf3 3.12: `sum_received` is the server's view (packets it expected, lost_packets,
    // received bytes), `sum_sent` the client's; older versions only have `sum`.
    let received = end
        .get("sum_received")
        .or_else(|| end.get("sum"))
        .context("iperf3 UDP report without sum_received")?;
    let packets = num(received, "packets").context("no packets")?;
    let lost = num(received, "lost_packets").unwrap_or(0.0);
    let s = secs(received).context("no duration")?;
    let sent_pps = end
        .get("sum_sent")
        .and_then(|v| Some(num(v, "packets")? / secs(v)?))
        .unwrap_or(packets / s);
    Ok(UdpResult {
        size: 0,
        sent_pps,
        received_pps: (packets - lost).max(0.0) / s,
        received_bps: num(received, "bits_per_second").unwrap_or(0.0),
        lost_percent: num(received, "lost_percent").unwrap_or(0.0),
    })
}

/// `count` ICMP echoes of `size`-byte IPv4 packets from the client to `dst`, every `interval`;
/// percentiles of the round-trip times iputils' ping prints.
pub fn ping(
    lab: &Lab,
    dst: Ipv4Addr,
    size: usize,
    count: u32,
    interval: Duration,
) -> Result<Latency> {
    // ICMP echo: 20-byte IPv4 header + 8-byte ICMP header + data.
    let data = size.checked_sub(28).context("ping packet below 28 bytes")?;
    let argv = [
        "ping".to_owned(),
        "-n".into(),
        "-c".into(),
        count.to_string(),
        "-i".into(),
        format!("{:.3}", interval.as_secs_f64()),
        "-s".into(),
        data.to_string(),
        "-W".into(),
        "1".into(),
        dst.to_string(),
    ];
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    lab.note(argv.join(" "));
    let out = in_client(lab, &argv).output().context("cannot run ping")?;
    let rtts = parse_ping_times(&String::from_utf8_lossy(&out.stdout));
    latency_of(count, &rtts)
}

/// The `time=X ms` of every reply line, in microseconds.
pub fn parse_ping_times(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| {
            let at = l.find("time=")? + "time=".len();
            let ms: f64 = l[at..].split_whitespace().next()?.parse().ok()?;
            Some(ms * 1000.0)
        })
        .collect()
}

/// Percentiles of `rtts_us` (hdrhistogram, 3 significant digits).
pub fn latency_of(sent: u32, rtts_us: &[f64]) -> Result<Latency> {
    if rtts_us.is_empty() {
        bail!("no echo replies out of {sent}");
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for &us in rtts_us {
        // Nanoseconds: ping prints microsecond precision.
        h.saturating_record((us * 1000.0).round().max(1.0) as u64);
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    Ok(Latency {
        sent,
        received: rtts_us.len() as u32,
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: h.max() as f64 / 1000.0,
    })
}
