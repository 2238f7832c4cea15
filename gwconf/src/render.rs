//! Writes a [`GatewayConfig`] as gw.toml (for `dataplane import` and round-trip tests). Every
//! value is written explicitly, defaults included, so the file documents what will run; values
//! decided at start (`None`) are omitted.

use super::types::*;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

/// Renders `cfg`; `header` lines are written first as `# ` comments.
pub fn gw_toml(cfg: &GatewayConfig, header: &[String]) -> String {
    let mut doc = DocumentMut::new();

    let i = &cfg.interface;
    let mut t = Table::new();
    t["name"] = value(i.name.as_str());
    match &i.private_key_file {
        Some(path) => t["private_key_file"] = value(path.display().to_string()),
        None => t["private_key"] = value(i.private_key.to_base64()),
    }
    t["listen_port"] = value(i64::from(i.listen_port));
    t["address"] = value(strings(i.address.iter().map(|a| a.to_string())));
    t["mtu"] = value(i64::from(i.mtu));
    doc["interface"] = Item::Table(t);

    if !cfg.peers.is_empty() {
        let mut peers = ArrayOfTables::new();
        for p in &cfg.peers {
            let mut t = Table::new();
            if let Some(name) = &p.name {
                t["name"] = value(name.as_str());
            }
            t["public_key"] = value(p.public_key.to_base64());
            if let Some(psk) = &p.preshared_key {
                t["preshared_key"] = value(psk.to_base64());
            }
            t["allowed_ips"] = value(strings(p.allowed_ips.iter().map(|a| a.to_string())));
            if let Some(e) = &p.endpoint {
                t["endpoint"] = value(e.to_string());
            }
            if let Some(k) = p.persistent_keepalive {
                t["persistent_keepalive"] = value(i64::from(k));
            }
            peers.push(t);
        }
        doc["peer"] = Item::ArrayOfTables(peers);
    }

    let d = &cfg.dataplane;
    let mut t = Table::new();
    t["interfaces"] = value(strings(
        d.interfaces.names().into_iter().map(str::to_string),
    ));
    t["mode"] = value(d.mode.as_str());
    if let Some(q) = &d.queues {
        t["queues"] = value(q.iter().map(|n| i64::from(*n)).collect::<Array>());
    }
    if let Some(c) = &d.cpus {
        t["cpus"] = value(c.iter().map(|n| *n as i64).collect::<Array>());
    }
    t["batch_size"] = value(i64::from(d.batch_size));
    doc["dataplane"] = Item::Table(t);

    let n = &cfg.nat;
    let mut t = Table::new();
    t["masquerade"] = value(n.masquerade);
    if let Some(a) = n.address {
        t["address"] = value(a.to_string());
    }
    t["masquerade_ipv6"] = value(n.masquerade_ipv6);
    if let Some(a) = n.address_ipv6 {
        t["address_ipv6"] = value(a.to_string());
    }
    t["port_range"] = value(n.port_range.to_string());
    t["capacity"] = value(i64::from(n.capacity));
    t["udp_timeout"] = value(n.timeouts.udp.as_secs() as i64);
    t["tcp_established_timeout"] = value(n.timeouts.tcp_established.as_secs() as i64);
    t["tcp_transitory_timeout"] = value(n.timeouts.tcp_transitory.as_secs() as i64);
    t["icmp_timeout"] = value(n.timeouts.icmp.as_secs() as i64);
    doc["nat"] = Item::Table(t);

    if let Some(listen) = cfg.metrics.listen {
        let mut t = Table::new();
        t["listen"] = value(listen.to_string());
        doc["metrics"] = Item::Table(t);
    }
    let mut t = Table::new();
    t["socket"] = value(cfg.control.socket.display().to_string());
    doc["control"] = Item::Table(t);

    let mut out = String::new();
    for line in header {
        for l in line.lines() {
            out.push_str("# ");
            out.push_str(l);
            out.push('\n');
        }
    }
    if !header.is_empty() {
        out.push('\n');
    }
    out.push_str(&doc.to_string());
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn strings(items: impl Iterator<Item = String>) -> Array {
    items.collect()
}
