//! A valid config survives render -> parse unchanged, the example files load, and a wg-quick
//! file imports to the same config as its gw.toml equivalent.

use gwconf::{
    load, load_str, to_gw_toml, Endpoint, Format, HostFacts, Interfaces, LoadOptions, XdpMode,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn offline() -> LoadOptions {
    LoadOptions {
        host: HostFacts::unknown(),
        interfaces: None,
    }
}

fn reparse(text: &str) -> gwconf::GatewayConfig {
    load_str(
        text,
        "rendered.toml",
        Path::new("."),
        Format::GwToml,
        "wg0",
        &offline(),
    )
    .unwrap_or_else(|e| panic!("rendered config does not load:\n{e}\n---\n{text}"))
    .config
}

#[test]
fn example_gw_toml_round_trips() {
    let loaded = load(&configs_dir().join("gw.toml"), &offline()).unwrap();
    let c = &loaded.config;
    assert_eq!(c.interface.listen_port, 51820);
    assert_eq!(c.interface.address[0].to_string(), "10.13.13.1/24");
    assert_eq!(c.peers[0].name.as_deref(), Some("peer1"));
    assert!(c.peers[0].preshared_key.is_some());
    assert_eq!(
        c.dataplane.interfaces,
        Interfaces::OneArmed {
            interface: "eth0".into()
        }
    );
    assert!(c.nat.masquerade);
    let text = to_gw_toml(c, &["a header".into()]);
    assert!(text.starts_with("# a header\n"));
    assert_eq!(&reparse(&text), c);
}

#[test]
fn example_two_armed_round_trips() {
    let loaded = load(&configs_dir().join("gw-two-armed.toml"), &offline()).unwrap();
    let c = &loaded.config;
    assert_eq!(
        c.dataplane.interfaces,
        Interfaces::TwoArmed {
            wan: "wan0".into(),
            lan: "lan0".into()
        }
    );
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[0].persistent_keepalive, Some(25));
    assert_eq!(
        c.peers[1].endpoint,
        Some(Endpoint::Addr("198.51.100.7:51820".parse().unwrap()))
    );
    assert_eq!(&reparse(&to_gw_toml(c, &[])), c);
}

#[test]
fn every_key_set_round_trips() {
    let text = r#"
[interface]
private_key = "8OgPsIng+GXes28kZwO70fAYsPu/ahQjw5wNt4ieOGM="
listen_port = 443
address = ["10.13.13.1/24", "fd00:13::1/64"]
mtu = 1380

[[peer]]
name = "laptop"
public_key = "UOGhCA+WM943C5gcBYcP8J8EhC1hDfeP9uaSf60tZSk="
preshared_key = "4iq2SmL5ZiSl9yAbbryJj11md2i5v3TaA7aJlp2yTvE="
allowed_ips = ["10.13.13.2/32", "fd00:13::2/128"]
endpoint = "vpn.example.org:51820"
persistent_keepalive = 25

[[peer]]
public_key = "3xBkVF4RsLpT3bzD4VIM6wj1MCFOM39U8pFJdQJVQVY="
allowed_ips = ["192.168.50.0/24"]
endpoint = "[2001:db8::7]:4500"
persistent_keepalive = 0

[dataplane]
wan = "wan0"
lan = "lan0"
mode = "copy"
queues = [0, 1, 3]
cpus = [1, 0]
batch_size = 32

[nat]
masquerade = false
address = "192.0.2.10"
masquerade_ipv6 = true
address_ipv6 = "2001:db8::10"
port_range = "40000-50000"
capacity = 1000
udp_timeout = 300
tcp_established_timeout = 86400
tcp_transitory_timeout = 300
icmp_timeout = 90

[metrics]
listen = "127.0.0.1:9586"

[control]
socket = "/tmp/dp.sock"
"#;
    let c = reparse(text);
    assert_eq!(c.interface.mtu, 1380);
    assert_eq!(c.dataplane.mode, XdpMode::Copy);
    assert_eq!(c.dataplane.queues, Some(vec![0, 1, 3]));
    assert_eq!(c.dataplane.cpus, Some(vec![1, 0]));
    assert_eq!(c.peers[1].persistent_keepalive, None, "0 means off");
    assert_eq!(c.nat.timeouts.tcp_established, Duration::from_secs(86400));
    assert_eq!(c.nat.address, Some("192.0.2.10".parse().unwrap()));
    assert!(c.nat.masquerade_ipv6);
    assert_eq!(c.nat.address_ipv6, Some("2001:db8::10".parse().unwrap()));
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9586".parse().unwrap()));
    assert_eq!(
        c.peers[0].endpoint,
        Some(Endpoint::Host {
            host: "vpn.example.org".into(),
            port: 51820
        })
    );
    let rendered = to_gw_toml(&c, &[]);
    assert_eq!(reparse(&rendered), c, "{rendered}");
}

#[test]
fn article_wg0_conf_imports_to_the_example_gw_toml() {
    let wg = load(&configs_dir().join("wg0.conf"), &offline()).unwrap();
    let toml = load(&configs_dir().join("gw.toml"), &offline()).unwrap();
    // The article's Address has no prefix: taken as the container's /24, it matches exactly.
    assert_eq!(wg.config, toml.config);
    assert!(
        wg.notes
            .iter()
            .any(|n| n.contains("MASQUERADE") && n.contains("built-in")),
        "{:#?}",
        wg.notes
    );
    // And the import renders to a gw.toml that loads back to the same config.
    assert_eq!(reparse(&to_gw_toml(&wg.config, &wg.notes)), wg.config);
}

#[test]
fn wg_quick_interface_override() {
    let opts = LoadOptions {
        host: HostFacts::unknown(),
        interfaces: Some(Interfaces::TwoArmed {
            wan: "wan0".into(),
            lan: "lan0".into(),
        }),
    };
    let wg = load(&configs_dir().join("wg0.conf"), &opts).unwrap();
    assert_eq!(
        wg.config.dataplane.interfaces,
        Interfaces::TwoArmed {
            wan: "wan0".into(),
            lan: "lan0".into()
        }
    );
}

/// A config that others can read holds a private key in the open: loaded with a warning that
/// says what to run, as wg-quick warns; a 0600 file loads without one.
#[test]
fn a_config_readable_by_others_loads_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("gwconf-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gw.toml");
    std::fs::copy(configs_dir().join("gw.toml"), &path).unwrap();
    let load_with_mode = |mode: u32| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        load(&path, &offline()).unwrap().warnings
    };
    let open = load_with_mode(0o644);
    let private = load_with_mode(0o600);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(
        open[0].contains("mode 644") && open[0].contains("chmod 600"),
        "{open:?}"
    );
    assert!(private.is_empty(), "{private:?}");
}
