//! Edits of gw.toml that keep the operator's file as it was written: comments, blank lines,
//! key order and quoting survive, because the file is edited as a `toml_edit` document and
//! only the `[[peer]]` tables being added or removed change.
//!
//! This module never decides what is valid: the caller runs the edited text through the
//! config loader ([`crate::load_str`]) before anything is written.

use std::net::IpAddr;

use ipnet::IpNet;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

/// A gw.toml file held as an editable document.
#[derive(Debug, Clone)]
pub struct GwTomlDoc {
    doc: DocumentMut,
}

/// The `[[peer]]` fields `peer add` writes.
#[derive(Debug, Clone)]
pub struct NewPeer {
    pub name: String,
    pub public_key: String,
    pub preshared_key: Option<String>,
    pub allowed_ips: Vec<IpNet>,
    /// One comment line written above the table (without `# `).
    pub comment: Option<String>,
}

impl GwTomlDoc {
    /// Parses gw.toml text; the error is toml_edit's, which names line and column.
    pub fn parse(text: &str) -> Result<GwTomlDoc, String> {
        text.parse::<DocumentMut>()
            .map(|doc| GwTomlDoc { doc })
            .map_err(|e| e.to_string())
    }

    /// Appends a `[[peer]]` after the last existing one (at the end of the file when there is
    /// none), as an operator appending by hand would.
    pub fn add_peer(&mut self, peer: &NewPeer) -> Result<(), String> {
        let mut t = Table::new();
        t["name"] = value(peer.name.as_str());
        t["public_key"] = value(peer.public_key.as_str());
        if let Some(psk) = &peer.preshared_key {
            t["preshared_key"] = value(psk.as_str());
        }
        t["allowed_ips"] = value(
            peer.allowed_ips
                .iter()
                .map(|n| n.to_string())
                .collect::<Array>(),
        );
        let prefix = match &peer.comment {
            Some(c) => format!("\n# {c}\n"),
            None => "\n".to_string(),
        };
        t.decor_mut().set_prefix(prefix);
        let root = self.doc.as_table_mut();
        match root.get_mut("peer") {
            None => {
                let mut peers = ArrayOfTables::new();
                peers.push(t);
                root.insert("peer", Item::ArrayOfTables(peers));
                Ok(())
            }
            Some(Item::ArrayOfTables(peers)) => {
                peers.push(t);
                Ok(())
            }
            Some(other) => Err(format!(
                "`peer` is a {}, not [[peer]] tables; fix the file (dataplane check --config FILE)",
                other.type_name()
            )),
        }
    }

    /// Removes every `[[peer]]` whose `name` is `name`; returns how many were removed. The
    /// comment lines written above a removed table go with it.
    pub fn remove_peer(&mut self, name: &str) -> usize {
        let root = self.doc.as_table_mut();
        let Some(Item::ArrayOfTables(peers)) = root.get_mut("peer") else {
            return 0;
        };
        let before = peers.len();
        peers.retain(|t| t.get("name").and_then(Item::as_str) != Some(name));
        let removed = before - peers.len();
        if peers.is_empty() {
            root.remove("peer");
        }
        removed
    }

    /// The edited text.
    pub fn to_text(&self) -> String {
        self.doc.to_string()
    }
}

/// The first address of `subnet` that a peer can be given: not the network or broadcast
/// address of an IPv4 subnet, not the subnet-router anycast address (all host bits zero,
/// RFC 4291 §2.6.1) of an IPv6 one, and not inside any of `used` (the prefixes peers and the
/// gateway already hold). `None` when the subnet is full.
pub fn next_free_address(subnet: IpNet, used: &[IpNet]) -> Option<IpAddr> {
    let net = subnet.trunc();
    let (first, last) = host_range(net);
    let mut candidate = first;
    // A prefix in `used` that holds the candidate is skipped whole, so a peer routing a large
    // range (a /64 inside a /48) costs one step, not one per address.
    while candidate <= last {
        let addr = from_u128(net, candidate);
        match used
            .iter()
            .filter(|u| u.addr().is_ipv4() == addr.is_ipv4())
            .find(|u| u.contains(&addr))
        {
            None => return Some(addr),
            Some(u) => candidate = to_u128(u.broadcast()).checked_add(1)?,
        }
    }
    None
}

/// The addresses of `net` peers may get, as integers, inclusive (empty when first > last).
fn host_range(net: IpNet) -> (u128, u128) {
    let (lo, hi) = (to_u128(net.network()), to_u128(net.broadcast()));
    match net {
        // /31 and /32 have no network or broadcast address (RFC 3021).
        IpNet::V4(n) if n.prefix_len() >= 31 => (lo, hi),
        IpNet::V4(_) => (lo + 1, hi - 1),
        IpNet::V6(n) if n.prefix_len() == 128 => (lo, hi),
        IpNet::V6(_) => (lo + 1, hi),
    }
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

fn from_u128(net: IpNet, n: u128) -> IpAddr {
    match net {
        IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(n as u32)),
        IpNet::V6(_) => IpAddr::V6(n.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn next_free_skips_gateway_and_peers() {
        let used = [
            net("10.13.13.1/32"),
            net("10.13.13.2/32"),
            net("10.13.13.4/32"),
        ];
        assert_eq!(
            next_free_address(net("10.13.13.1/24"), &used),
            Some("10.13.13.3".parse().unwrap())
        );
        let used = [net("10.13.13.0/30"), net("10.13.13.4/30")];
        assert_eq!(
            next_free_address(net("10.13.13.0/29"), &used),
            None,
            "a full subnet has no free address"
        );
        // A peer routing a whole range takes every address in it.
        let used = [net("10.13.13.1/32"), net("10.13.13.0/25")];
        assert_eq!(
            next_free_address(net("10.13.13.0/24"), &used),
            Some("10.13.13.128".parse().unwrap())
        );
    }

    #[test]
    fn next_free_ipv6_skips_the_anycast_address_gateway_and_peers() {
        let used = [net("fd13::1/128"), net("fd13::2/128"), net("10.13.13.3/32")];
        assert_eq!(
            next_free_address(net("fd13::1/64"), &used),
            Some("fd13::3".parse().unwrap()),
            "an IPv4 peer address takes nothing from the IPv6 subnet"
        );
        // A peer routing a /80 inside the /64 is skipped in one step.
        let used = [net("fd13::1/128"), net("fd13::/80")];
        assert_eq!(
            next_free_address(net("fd13::/64"), &used),
            Some("fd13::1:0:0:0".parse().unwrap())
        );
        let used = [net("fd13::/126")];
        assert_eq!(next_free_address(net("fd13::/126"), &used), None);
        assert_eq!(
            next_free_address(net("fd13::/127"), &[]),
            Some("fd13::1".parse().unwrap())
        );
        // The last address of the whole space: no overflow.
        let used = [net("ffff::/16")];
        assert_eq!(next_free_address(net("ffff::/16"), &used), None);
    }

    #[test]
    fn add_then_remove_keeps_comments_and_other_peers() {
        let text = "# top comment\n[interface]\nlisten_port = 51820 # port comment\n\n# first peer\n[[peer]]\nname = \"a\"\npublic_key = \"k\"\nallowed_ips = [\"10.0.0.2/32\"]\n\n[dataplane]\ninterface = \"eth0\"\n";
        let mut doc = GwTomlDoc::parse(text).unwrap();
        doc.add_peer(&NewPeer {
            name: "b".into(),
            public_key: "kb".into(),
            preshared_key: Some("psk".into()),
            allowed_ips: vec![net("10.0.0.3/32")],
            comment: Some("added".into()),
        })
        .unwrap();
        let out = doc.to_text();
        assert!(out.starts_with("# top comment\n"), "{out}");
        assert!(out.contains("listen_port = 51820 # port comment"), "{out}");
        let a = out.find("name = \"a\"").unwrap();
        let b = out.find("name = \"b\"").unwrap();
        let dp = out.find("[dataplane]").unwrap();
        assert!(a < b && b < dp, "new peer goes after the last one:\n{out}");
        assert!(out.contains("# added\n[[peer]]\nname = \"b\""), "{out}");

        let mut doc = GwTomlDoc::parse(&out).unwrap();
        assert_eq!(doc.remove_peer("a"), 1);
        assert_eq!(doc.remove_peer("nobody"), 0);
        let out = doc.to_text();
        assert!(!out.contains("name = \"a\""), "{out}");
        assert!(!out.contains("# first peer"), "{out}");
        assert!(out.contains("name = \"b\""), "{out}");
        assert!(out.contains("# top comment"), "{out}");
    }

    #[test]
    fn first_peer_goes_to_the_end() {
        let text = "[interface]\nlisten_port = 1\n\n[nat]\nmasquerade = true\n";
        let mut doc = GwTomlDoc::parse(text).unwrap();
        doc.add_peer(&NewPeer {
            name: "p".into(),
            public_key: "k".into(),
            preshared_key: None,
            allowed_ips: vec![net("10.0.0.2/32")],
            comment: None,
        })
        .unwrap();
        let out = doc.to_text();
        assert!(out.starts_with(text), "{out}");
        assert!(
            out.ends_with(
                "[[peer]]\nname = \"p\"\npublic_key = \"k\"\nallowed_ips = [\"10.0.0.2/32\"]\n"
            ),
            "{out}"
        );
        let mut doc = GwTomlDoc::parse(&out).unwrap();
        assert_eq!(doc.remove_peer("p"), 1);
        assert!(!doc.to_text().contains("peer"));
    }

    #[test]
    fn peer_that_is_not_tables_is_an_error() {
        let mut doc = GwTomlDoc::parse("peer = 3\n").unwrap();
        let err = doc
            .add_peer(&NewPeer {
                name: "p".into(),
                public_key: "k".into(),
                preshared_key: None,
                allowed_ips: vec![],
                comment: None,
            })
            .unwrap_err();
        assert!(err.contains("not [[peer]]"), "{err}");
    }
}
