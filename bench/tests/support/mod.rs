//! Helpers shared by the bench's root tests: the `dataplane` binary under test, and where
//! packets went missing for failure messages.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lab::{DataplaneGateway, GatewayKind, Lab, Node, Topology};

/// The `dataplane` executable: `$DATAPLANE_E2E_BIN`, else built (or found fresh) by cargo in
/// this test's own target directory. A bench test has no `CARGO_BIN_EXE_dataplane`, and the
/// binary must match the sources under test, so an old file lying around is not taken.
pub fn dataplane_binary() -> PathBuf {
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

/// The gateway under test in a fresh two-armed lab, AF_XDP in copy mode (what veth offers),
/// with a control socket of its own (named by `tag` and this process: other gateways may run
/// on the machine at the same time). Returns the lab, the binary and the control socket, the
/// last two for [`where_lost`].
pub fn dataplane_lab(tag: &str) -> (Lab, PathBuf, PathBuf) {
    let binary = dataplane_binary();
    let mut dp = DataplaneGateway::new(&binary);
    dp.toml.mode = Some("copy".into());
    let control = std::env::temp_dir().join(format!("bench-{tag}-{}.sock", std::process::id()));
    dp.toml.extra_toml = format!("[control]\nsocket = \"{}\"\n", control.display());
    dp.ready_timeout = Duration::from_secs(5);
    let lab = Lab::builder(Topology::TwoArmed)
        .gateway(GatewayKind::Dataplane(dp))
        .build()
        .expect("the lab builds");
    (lab, binary, control)
}

/// The UDP `InDatagrams` and `OutDatagrams` of `node`'s namespace (/proc/net/snmp): what its
/// kernel UDP stack carried.
#[allow(dead_code)] // every test binary compiles this module; not all of them use this
pub fn udp_datagrams(lab: &Lab, node: Node) -> (u64, u64) {
    let snmp = lab.exec_in(node, &["cat", "/proc/net/snmp"]).unwrap();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = udp.next().unwrap().split_whitespace().collect();
    let values: Vec<&str> = udp.next().unwrap().split_whitespace().collect();
    let get = |k: &str| -> u64 {
        let i = names.iter().position(|n| *n == k).unwrap();
        values[i].parse().unwrap()
    };
    (get("InDatagrams"), get("OutDatagrams"))
}

/// Where packets may have gone missing: both ends of the LAN wire and the server's UDP
/// counters (checksum and buffer errors), for failure messages.
pub fn where_lost(lab: &Lab, binary: &std::path::Path, control: &std::path::Path) -> String {
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
