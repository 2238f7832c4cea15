//! The README's first command: build the lab, start the gateway, send a request and a ping
//! through it, and explain what happened packet by packet the way the article's diagram does,
//! with the gateway's counters. Then tear the lab down.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use super::capture::{classify, ArticleStep, CapturedPacket};
use super::gateway::{DataplaneGateway, GatewayKind};
use super::topology::{Node, Topology, GATEWAY_LAN_ADDR, SERVER_ADDR};
use super::{cleanup_orphans, IfCounters, Lab};

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The `dataplane` binary to run as the gateway. `None`, or a binary that fails to start or
    /// to handshake, means the reference gateway (and the demo says why).
    pub dataplane: Option<DataplaneGateway>,
    /// The layouts to run, in order (default: the article's one-armed one).
    pub topologies: Vec<Topology>,
    /// Capture the wires and explain each packet (needs tshark).
    pub capture: bool,
    /// Print every command the lab runs.
    pub verbose: bool,
    /// Keep the lab's files (configs, logs, pcap captures) after the run.
    pub keep_files: bool,
    /// How many explained packets to print per run.
    pub max_packets: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            dataplane: None,
            topologies: vec![Topology::OneArmed],
            capture: true,
            verbose: false,
            keep_files: false,
            max_packets: 24,
        }
    }
}

impl DemoOptions {
    /// Options that run `binary` as the gateway.
    pub fn with_dataplane(binary: impl Into<PathBuf>) -> Self {
        DemoOptions {
            dataplane: Some(DataplaneGateway::new(binary)),
            ..DemoOptions::default()
        }
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(8);

/// Runs the demo for every layout in `opts`. Fails if the traffic did not make it through.
pub fn run_demo(opts: &DemoOptions) -> Result<()> {
    if !super::is_root() {
        bail!("the lab needs root: run it with sudo (it creates network namespaces)");
    }
    let stale = cleanup_orphans()?;
    if !stale.is_empty() {
        println!("removed {} namespaces left by killed lab runs", stale.len());
    }
    let mut capture = opts.capture;
    if capture && !has_program("tshark") {
        println!("note: tshark not found, packets will not be shown (apt-get install tshark)");
        capture = false;
    }
    for &topology in &opts.topologies {
        run_one(opts, topology, capture)?;
    }
    Ok(())
}

fn has_program(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

fn banner(text: &str) {
    println!("\n=== {text} ===");
}

fn build(opts: &DemoOptions, topology: Topology, kind: GatewayKind) -> Result<Lab> {
    Lab::builder(topology)
        .gateway(kind)
        .echo(opts.verbose)
        .keep_dir(opts.keep_files)
        .build()
}

/// Builds the lab with the dataplane gateway when one is given and it starts and handshakes;
/// otherwise with the reference gateway, saying why.
fn lab_with_gateway(opts: &DemoOptions, topology: Topology) -> Result<(Lab, Duration)> {
    if let Some(dp) = &opts.dataplane {
        println!(
            "gateway: dataplane ({}) on a gw.toml written by the lab",
            dp.binary.display()
        );
        let attempt =
            build(opts, topology, GatewayKind::Dataplane(dp.clone())).and_then(|mut lab| {
                let took = lab.wait_for_handshake(HANDSHAKE_TIMEOUT)?;
                Ok((lab, took))
            });
        match attempt {
            Ok(ok) => return Ok(ok),
            Err(e) => {
                println!("FALLING BACK to the reference gateway: the dataplane gateway did not work here:");
                for line in format!("{e:#}").lines().take(30) {
                    println!("    {line}");
                }
            }
        }
    } else {
        println!("gateway: no dataplane binary given, running the REFERENCE gateway");
    }
    println!(
        "gateway: reference = the article's design in user space: wireguard-go wg0 + \
         iptables MASQUERADE + ip_forward"
    );
    let mut lab = build(opts, topology, GatewayKind::Reference)?;
    let took = lab.wait_for_handshake(HANDSHAKE_TIMEOUT)?;
    Ok((lab, took))
}

fn counters_line(lab: &Lab, label: &str) -> Result<Vec<(String, IfCounters)>> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    for ifname in lab.topology().gateway_interfaces() {
        let c = lab.interface_counters(Node::Gateway, ifname)?;
        parts.push(format!(
            "{ifname} rx {} pkts/{} B, tx {} pkts/{} B",
            c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes
        ));
        out.push((ifname.to_string(), c));
    }
    println!("  counters {label}: gw {}", parts.join("; "));
    Ok(out)
}

fn run_one(opts: &DemoOptions, topology: Topology, capture: bool) -> Result<()> {
    banner(&format!(
        "the article's gateway, {} layout",
        topology.name()
    ));
    match topology {
        Topology::OneArmed => println!(
            "client ({}) --eth0-- [bridge] --eth0-- gw ({GATEWAY_LAN_ADDR}, wg0 10.13.13.1) \
             ; server {SERVER_ADDR} on the same bridge",
            topology.client_underlay_addr()
        ),
        Topology::TwoArmed => println!(
            "client ({}) --wan0-- gw ({}, wg0 10.13.13.1) --lan0 {GATEWAY_LAN_ADDR}-- server {SERVER_ADDR}",
            topology.client_underlay_addr(),
            topology.endpoint().ip()
        ),
    }
    // Captures start only after the handshake here; the handshake itself is reported below.
    let (mut lab, took) = lab_with_gateway(opts, topology)?;
    let kind = lab.gateway_kind().map(GatewayKind::name).unwrap_or("none");
    println!(
        "1. handshake: client wg0 (10.13.13.2) <-> gateway ({kind}) done in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    counters_line(&lab, "after handshake")?;

    let mut captures = Vec::new();
    if capture {
        for &(node, ifname, label) in topology.wire_capture_points() {
            captures.push(lab.start_capture(node, ifname, label)?);
        }
        if lab.gateway_kind().is_some_and(GatewayKind::is_reference) {
            // The article's second capture point: the decrypted side.
            captures.push(lab.start_capture(Node::Gateway, "wg0", "gw wg0")?);
        }
    }
    let before = counters_line(&lab, "before traffic")?;

    // The echo first: its six packets are the diagram's six arrows, one each.
    let rtt = lab.ping_from_client(SERVER_ADDR);
    match &rtt {
        Ok(d) => println!(
            "2. ping {SERVER_ADDR} from the client: reply in {:.2} ms",
            d.as_secs_f64() * 1000.0
        ),
        Err(e) => println!("2. ping {SERVER_ADDR} from the client: FAILED: {e:#}"),
    }
    counters_line(&lab, "after ping")?;
    let url = format!("http://{SERVER_ADDR}/");
    let body = lab.http_get_from_client(&url)?;
    let expected = lab.server_index_body();
    let body_ok = body == expected.as_bytes();
    println!(
        "3. HTTP GET {url} from the client: {} bytes, {}",
        body.len(),
        if body_ok {
            "body as served"
        } else {
            "UNEXPECTED body"
        }
    );
    let after = counters_line(&lab, "after HTTP")?;

    let mut packets: Vec<CapturedPacket> = Vec::new();
    for id in captures {
        packets.extend(lab.stop_capture(id)?);
    }
    packets.sort_by(|a, b| a.time.total_cmp(&b.time));
    if capture {
        let reference = lab.gateway_kind().is_some_and(GatewayKind::is_reference);
        explain_packets(&packets, topology, opts.max_packets, reference);
    }

    println!("4. what the gateway did (interface counters, traffic only):");
    for ((ifname, b), (_, a)) in before.iter().zip(after.iter()) {
        let d = a.since(b);
        println!(
            "   gw {ifname}: received {} packets ({} B), sent {} packets ({} B), dropped rx {} tx {}",
            d.rx_packets, d.rx_bytes, d.tx_packets, d.tx_bytes, d.rx_dropped, d.tx_dropped
        );
    }
    if let Ok(t) = lab.wg_transfer(Node::Client) {
        for p in t {
            println!(
                "   client wg0 peer {}…: {} B sent encrypted, {} B received",
                &p.public_key[..8.min(p.public_key.len())],
                p.tx_bytes,
                p.rx_bytes
            );
        }
    }
    if let Ok(t) = lab.wg_transfer(Node::Gateway) {
        for p in t {
            println!(
                "   gateway wg0 peer {}…: {} B received, {} B sent",
                &p.public_key[..8.min(p.public_key.len())],
                p.rx_bytes,
                p.tx_bytes
            );
        }
    }
    let sources = lab.server_request_sources()?;
    let natted = !sources.is_empty() && sources.iter().all(|s| *s == GATEWAY_LAN_ADDR);
    println!(
        "5. the server saw the request from {:?}: {}",
        sources,
        if natted {
            "the gateway's LAN address, so source NAT 10.13.13.2 -> 172.23.0.3 happened"
        } else {
            "NOT the gateway's address: source NAT did not happen"
        }
    );
    if opts.keep_files {
        println!(
            "files (configs, logs, captures) kept in {}",
            lab.dir().display()
        );
    }
    let prefix = lab.prefix().to_owned();
    drop(lab);
    let left: Vec<String> = super::list_namespaces()?
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    println!(
        "6. cleanup: lab {prefix} removed{}",
        if left.is_empty() {
            String::new()
        } else {
            format!(", but namespaces remain: {left:?}")
        }
    );
    if !body_ok || !natted || rtt.is_err() {
        bail!(
            "the {} lab did not carry traffic as expected (see above)",
            topology.name()
        );
    }
    Ok(())
}

fn explain_packets(packets: &[CapturedPacket], topology: Topology, max: usize, reference: bool) {
    if reference {
        println!("   packets of the exchange, on the gateway's wires and on wg0, in time order:");
    } else {
        println!("   packets of the exchange, on the gateway's wires, in time order:");
    }
    let t0 = packets.first().map(|p| p.time).unwrap_or(0.0);
    let mut shown = 0;
    let mut counts = [0usize; 6];
    for p in packets {
        let Some(step) = classify(p, topology) else {
            continue;
        };
        let i = ArticleStep::ALL
            .iter()
            .position(|s| *s == step)
            .unwrap_or(0);
        counts[i] += 1;
        if shown < max {
            shown += 1;
            let addr = |a: Option<std::net::Ipv4Addr>| a.map(|a| a.to_string()).unwrap_or_default();
            println!(
                "   {:>8.3} ms  {:<14} {:>11} -> {:<11} {:<9} {:>4} B {:<24}  {step}: {}",
                (p.time - t0) * 1000.0,
                p.point,
                addr(p.src),
                addr(p.dst),
                p.protocol,
                p.length,
                p.info.chars().take(24).collect::<String>(),
                step.explain(topology)
            );
        }
    }
    if shown == max {
        println!("   ... (more packets in the capture files)");
    }
    println!("   packets per step of the article's diagram:");
    for (i, step) in ArticleStep::ALL.iter().enumerate() {
        println!("     {step} {:>4}  {}", counts[i], step.explain(topology));
    }
    if !reference {
        println!(
            "   (steps 2 and 5 happen inside the dataplane's workers: the decrypted packet never \
             passes a kernel wg0, so there is nothing to capture there; the wire shows their effect)"
        );
    }
}
