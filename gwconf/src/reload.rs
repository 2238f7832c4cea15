//! What a reload (SIGHUP) cannot apply. A running gateway takes new `[[peer]]` tables without a
//! restart; every other setting is bound at start (the XDP program's port, the TUN's address
//! and MTU, the sockets, the NAT tables). This module names each such setting that differs
//! between the running config and the file, so the operator is told instead of ignored.

use std::fmt::Debug;

use crate::GatewayConfig;

/// One setting the file changed that the running gateway keeps until a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredChange {
    /// The config field, as errors name it (e.g. `interface.listen_port`).
    pub field: &'static str,
    /// `running -> file`, or only "changed" for secrets.
    pub detail: String,
}

/// Every non-peer field that differs between `running` and `file`, in file order.
pub fn ignored_changes(running: &GatewayConfig, file: &GatewayConfig) -> Vec<IgnoredChange> {
    let mut out = Vec::new();
    let mut cmp = |field: &'static str, a: &dyn Debug, b: &dyn Debug, equal: bool| {
        if !equal {
            out.push(IgnoredChange {
                field,
                detail: format!("{a:?} -> {b:?}"),
            });
        }
    };
    let (r, f) = (&running.interface, &file.interface);
    macro_rules! field {
        ($name:literal, $a:expr, $b:expr) => {
            cmp($name, &$a, &$b, $a == $b)
        };
    }
    field!("interface.name", r.name, f.name);
    field!("interface.listen_port", r.listen_port, f.listen_port);
    field!("interface.address", r.address, f.address);
    field!("interface.mtu", r.mtu, f.mtu);
    let (r, f) = (&running.dataplane, &file.dataplane);
    field!("dataplane.interfaces", r.interfaces, f.interfaces);
    field!("dataplane.mode", r.mode, f.mode);
    field!("dataplane.queues", r.queues, f.queues);
    field!("dataplane.cpus", r.cpus, f.cpus);
    field!("dataplane.batch_size", r.batch_size, f.batch_size);
    let (r, f) = (&running.nat, &file.nat);
    field!("nat.masquerade", r.masquerade, f.masquerade);
    field!("nat.address", r.address, f.address);
    field!("nat.masquerade_ipv6", r.masquerade_ipv6, f.masquerade_ipv6);
    field!("nat.address_ipv6", r.address_ipv6, f.address_ipv6);
    field!("nat.port_range", r.port_range, f.port_range);
    field!("nat.capacity", r.capacity, f.capacity);
    field!("nat.timeouts", r.timeouts, f.timeouts);
    field!(
        "metrics.listen",
        running.metrics.listen,
        file.metrics.listen
    );
    field!(
        "control.socket",
        running.control.socket,
        file.control.socket
    );
    // The key itself is never logged.
    if running.interface.private_key != file.interface.private_key {
        out.insert(
            0,
            IgnoredChange {
                field: "interface.private_key",
                detail: "changed".into(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;
    use crate::{load_str, Format, HostFacts, LoadOptions};
    use std::path::Path;

    fn cfg() -> GatewayConfig {
        let text = format!(
            "[interface]\nprivate_key = \"{}\"\nlisten_port = 51820\naddress = [\"10.13.13.1/24\"]\n\n[dataplane]\ninterfaces = [\"eth0\"]\n\n[nat]\nmasquerade = true\n",
            PrivateKey::from_bytes([1; 32]).to_base64()
        );
        let opts = LoadOptions {
            host: HostFacts::unknown(),
            interfaces: None,
        };
        load_str(
            &text,
            "gw.toml",
            Path::new("."),
            Format::GwToml,
            "wg0",
            &opts,
        )
        .unwrap()
        .config
    }

    #[test]
    fn peers_alone_change_nothing_ignored() {
        let a = cfg();
        let mut b = a.clone();
        b.peers.clear();
        assert!(ignored_changes(&a, &b).is_empty());
    }

    #[test]
    fn each_bound_setting_is_named() {
        let a = cfg();
        let mut b = a.clone();
        b.interface.name = "wg1".into();
        b.interface.listen_port = 51821;
        b.interface.mtu = 1380;
        b.interface.address = vec!["10.14.0.1/24".parse().unwrap()];
        b.interface.private_key = PrivateKey::from_bytes([2; 32]);
        b.nat.capacity = 10;
        let got = ignored_changes(&a, &b);
        let fields: Vec<&str> = got.iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "interface.private_key",
                "interface.name",
                "interface.listen_port",
                "interface.address",
                "interface.mtu",
                "nat.capacity"
            ]
        );
        assert_eq!(got[1].detail, "\"wg0\" -> \"wg1\"");
        assert_eq!(got[2].detail, "51820 -> 51821");
        assert_eq!(got[0].detail, "changed", "keys are never printed");
    }
}
