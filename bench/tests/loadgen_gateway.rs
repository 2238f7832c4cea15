//! Root integration test: the load generator is a real WireGuard peer of the real gateway. In a
//! two-armed lab running `dataplane` (AF_XDP copy mode on veth), the generator handshakes, its
//! sealed probes are decrypted, NATed and delivered to the sink (every one, intact, at a low
//! rate), the sink's probes come back encrypted by the gateway and open at the generator, and
//! the gateway's own counters show the packets it decrypted and encrypted.
//!
//! Skips with a message when not root. The lab removes its namespaces even when an assertion
//! fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bench::load_sweep::{point_line, Drain, LoadRig, GENERATOR_TUNNEL_ADDR};
use bench::packets::SizeMix;
use lab::e2e::parse_logged_counters;
use lab::{is_root, DataplaneGateway, GatewayKind, Lab, Node, Topology};

/// The `dataplane` executable: `$DATAPLANE_E2E_BIN`, else built (or found fresh) by cargo in
/// this test's own target directory. A bench test has no `CARGO_BIN_EXE_dataplane`, and the
/// binary must match the sources under test, so an old file lying around is not taken.
fn dataplane_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DATAPLANE_E2E_BIN") {
        return PathBuf::from(p);
    }
    // <target>/<profile>/deps/<this test>
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("<target>/<profile>");
    let target_dir = profile_dir.parent().expect("<target>");
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "-p",
            "dataplane",
            "--bin",
            "dataplane",
            "--target-dir",
        ])
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "cargo build -p dataplane failed: {status}"
    );
    let bin = profile_dir.join("dataplane");
    assert!(bin.exists(), "no {} after the build", bin.display());
    bin
}

/// Where packets may have gone missing: both ends of the LAN wire and the server's UDP
/// counters (checksum and buffer errors), for failure messages.
fn where_lost(lab: &Lab, binary: &std::path::Path, control: &std::path::Path) -> String {
    let udp = lab
        .exec_in(Node::Server, &["cat", "/proc/net/snmp"])
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("Udp:"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let stats = Command::new(binary)
        .args(["stats", "--socket"])
        .arg(control)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let veth = lab
        .exec_in(Node::Gateway, &["ethtool", "-S", "wan0"])
        .unwrap_or_default();
    format!(
        "client eth0: {:?}\ngateway wan0: {:?}\ngateway lan0: {:?}\nserver eth0: {:?}\n\
         server UDP:\n{udp}\nethtool -S wan0:\n{veth}\ndataplane stats:\n{stats}\n\
         gateway log:\n{}",
        lab.interface_counters(Node::Client, "eth0"),
        lab.interface_counters(Node::Gateway, "wan0"),
        lab.interface_counters(Node::Gateway, "lan0"),
        lab.interface_counters(Node::Server, "eth0"),
        lab.gateway_log()
    )
}

#[test]
fn generator_packets_are_decrypted_by_the_gateway_and_counted_by_the_sink() {
    if !is_root() {
        eprintln!(
            "SKIPPED generator_packets_are_decrypted_by_the_gateway_and_counted_by_the_sink: \
             needs root (network namespaces, veth, AF_XDP); run as root"
        );
        return;
    }
    let t0 = Instant::now();
    let binary = dataplane_binary();
    let mut dp = DataplaneGateway::new(&binary);
    dp.toml.mode = Some("copy".into());
    // Our own control socket: other gateways may run on this machine at the same time.
    let control = std::env::temp_dir().join(format!("bench-loadgen-{}.sock", std::process::id()));
    dp.toml.extra_toml = format!("[control]\nsocket = \"{}\"\n", control.display());
    dp.ready_timeout = Duration::from_secs(5);
    let mut lab = Lab::builder(Topology::TwoArmed)
        .gateway(GatewayKind::Dataplane(dp))
        .build()
        .expect("the lab builds");
    let mut rig = LoadRig::attach(&mut lab).expect("the generator completes a handshake");
    // A debug-built gateway on a shared machine can be seconds behind; a packet counts as lost
    // only if it has not arrived 10 s after the last one was sent.
    rig.drain = Drain {
        quiet: Duration::from_secs(1),
        limit: Duration::from_secs(10),
    };
    let generator_key = {
        let dump = lab
            .wg(Node::Gateway, &["show", "wg0", "allowed-ips"])
            .unwrap();
        dump.lines()
            .find(|l| l.contains(&format!("{GENERATOR_TUNNEL_ADDR}/32")))
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| panic!("the generator's peer is not on the gateway:\n{dump}"))
    };

    // Warm-up: the gateway resolves the server's MAC and makes the NAT mapping.
    let warm = rig
        .forward(SizeMix::Fixed(64), Some(200.0), Duration::from_millis(250))
        .unwrap();
    eprintln!("warm-up {}", point_line(&warm));
    assert!(
        warm.tally.unique > 0,
        "nothing reached the sink: {warm:?}\n{}",
        where_lost(&lab, &binary, &control)
    );

    // At a low rate every packet arrives, intact, once; at every size.
    let mut forwarded = warm.sent;
    for (mix, rate) in [
        (SizeMix::Fixed(64), 1_000.0),
        (SizeMix::Fixed(1420), 400.0),
        (SizeMix::Imix, 500.0),
    ] {
        let p = rig
            .forward(mix, Some(rate), Duration::from_millis(700))
            .unwrap();
        eprintln!("{}", point_line(&p));
        forwarded += p.sent;
        let t = p.tally;
        assert!(p.sent as f64 >= 0.9 * rate * 0.7, "sent only {}", p.sent);
        assert_eq!(
            t.unique,
            p.sent,
            "{} at {rate} pps: {t:?}\n{}",
            mix.label(),
            where_lost(&lab, &binary, &control)
        );
        assert_eq!((t.corrupted, t.duplicates, t.foreign), (0, 0, 0), "{t:?}");
        assert_eq!(t.latency_samples, t.unique, "every probe timed");
        assert!(t.p50_us > 0.0 && t.p50_us <= t.p99_us, "{t:?}");
        // Every packet arrived at the size it was sent (the sink measures its own bytes).
        assert_eq!(t.unique_bytes, p.sent_bytes, "{}", mix.label());
    }

    // Reverse: the sink answers through the NAT mapping; the gateway encrypts for the
    // generator, which opens every packet.
    let back = rig
        .reverse(SizeMix::Fixed(512), Some(500.0), Duration::from_millis(700))
        .unwrap();
    eprintln!("{}", point_line(&back));
    let t = back.tally;
    assert!(back.sent >= 300, "the sink sent only {}", back.sent);
    assert_eq!(t.unique, back.sent, "{t:?}");
    assert_eq!((t.corrupted, t.duplicates), (0, 0), "{t:?}");
    assert_eq!(t.unique_bytes, back.sent_bytes);

    // The gateway's view: the generator's peer received what it sent (wg show transfer), and
    // the workers decrypted and encrypted at least as many packets.
    let transfer = lab.wg_transfer(Node::Gateway).unwrap();
    let peer = transfer
        .iter()
        .find(|p| p.public_key == generator_key)
        .expect("the generator's peer in wg show transfer");
    assert!(
        peer.rx_bytes >= forwarded * 64,
        "gateway rx {} bytes for {forwarded} packets",
        peer.rx_bytes
    );
    drop(rig);
    lab.signal_gateway("TERM").unwrap();
    assert!(
        lab.wait_gateway_exit(Duration::from_secs(10)).is_some(),
        "the gateway did not stop on SIGTERM"
    );
    let counters = parse_logged_counters(&lab.gateway_log());
    let decrypted: u64 = counters.iter().map(|c| c.decrypted).sum();
    let encrypted: u64 = counters.iter().map(|c| c.encrypted).sum();
    eprintln!(
        "gateway counters: decrypted={decrypted} encrypted={encrypted} (generator sent \
         {forwarded}, sink sent {}); {:.1} s",
        back.sent,
        t0.elapsed().as_secs_f64()
    );
    assert!(decrypted >= forwarded, "{counters:?}");
    assert!(encrypted >= back.sent, "{counters:?}");
    lab.take_gateway();
}
