//! The client's wg-quick file, as the linuxserver/wireguard container writes `peerN.conf`:
//! `[Interface]` with the peer's own key, tunnel address and DNS, `[Peer]` with the gateway's
//! public key, the preshared key, the gateway's endpoint and what to route into the tunnel
//! (the container's SERVERURL, PEERDNS and ALLOWEDIPS settings).

use std::fmt::Write as _;

use ipnet::IpNet;

/// Everything that goes into a client's `.conf`. Keys are base64, as wg-quick reads them.
#[derive(Debug, Clone)]
pub struct ClientConf {
    pub private_key: String,
    /// The client's tunnel addresses, IPv4 first: e.g. 10.13.13.2/32, fd13::2/128.
    pub address: Vec<IpNet>,
    pub dns: Vec<String>,
    pub gateway_public_key: String,
    pub preshared_key: Option<String>,
    /// `host:port` of the gateway as the client reaches it.
    pub endpoint: String,
    pub allowed_ips: Vec<IpNet>,
    pub persistent_keepalive: Option<u16>,
}

impl ClientConf {
    /// The file text (wg-quick format).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "[Interface]");
        let _ = writeln!(s, "PrivateKey = {}", self.private_key);
        let _ = writeln!(s, "Address = {}", join(&self.address));
        if !self.dns.is_empty() {
            let _ = writeln!(s, "DNS = {}", self.dns.join(", "));
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "[Peer]");
        let _ = writeln!(s, "PublicKey = {}", self.gateway_public_key);
        if let Some(psk) = &self.preshared_key {
            let _ = writeln!(s, "PresharedKey = {psk}");
        }
        let _ = writeln!(s, "Endpoint = {}", self.endpoint);
        let _ = writeln!(s, "AllowedIPs = {}", join(&self.allowed_ips));
        if let Some(k) = self.persistent_keepalive {
            let _ = writeln!(s, "PersistentKeepalive = {k}");
        }
        s
    }
}

/// wg-quick's list form: `a, b`.
fn join(nets: &[IpNet]) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a client routes into the tunnel by default: everything of each family the tunnel
/// carries (the container's ALLOWEDIPS=0.0.0.0/0, plus ::/0 when the gateway has an IPv6
/// tunnel address). An IPv4-only gateway leaves the client's IPv6 outside the tunnel, as before.
pub fn default_allowed_ips(tunnel: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = vec!["0.0.0.0/0".parse().expect("literal prefix")];
    if tunnel.iter().any(|a| a.addr().is_ipv6()) {
        out.push("::/0".parse().expect("literal prefix"));
    }
    out
}

/// `host[:port]` with `default_port` when none is given; IPv6 literals get brackets.
pub fn endpoint(server_url: &str, default_port: u16) -> Result<String, String> {
    let s = server_url.trim();
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains('/') {
        return Err(format!(
            "--server-url {server_url:?}: expected a host name or address with an optional port, e.g. vpn.example.org or 203.0.113.7:51820"
        ));
    }
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Ok(addr.to_string());
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, default_port).to_string());
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port: u16 =
                port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                    format!("--server-url {server_url:?}: the port must be 1-65535")
                })?;
            Ok(format!("{host}:{port}"))
        }
        Some(_) => Err(format!(
            "--server-url {server_url:?}: write an IPv6 address with a port as [2001:db8::1]:51820"
        )),
        None => Ok(format!("{s}:{default_port}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            endpoint("vpn.example.org", 51820).unwrap(),
            "vpn.example.org:51820"
        );
        assert_eq!(
            endpoint("vpn.example.org:443", 51820).unwrap(),
            "vpn.example.org:443"
        );
        assert_eq!(endpoint("203.0.113.7", 51820).unwrap(), "203.0.113.7:51820");
        assert_eq!(
            endpoint("2001:db8::1", 51820).unwrap(),
            "[2001:db8::1]:51820"
        );
        assert_eq!(
            endpoint("[2001:db8::1]:9", 51820).unwrap(),
            "[2001:db8::1]:9"
        );
        assert!(endpoint("host:0", 1).is_err());
        assert!(endpoint("host:x", 1).is_err());
        assert!(endpoint("", 1).is_err());
        assert!(endpoint("http://x", 1).is_err());
    }

    #[test]
    fn renders_wg_quick_sections() {
        let c = ClientConf {
            private_key: "priv".into(),
            address: vec!["10.13.13.2/32".parse().unwrap()],
            dns: vec!["10.13.13.1".into()],
            gateway_public_key: "pub".into(),
            preshared_key: Some("psk".into()),
            endpoint: "gw:51820".into(),
            allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
            persistent_keepalive: None,
        };
        assert_eq!(
            c.render(),
            "[Interface]\nPrivateKey = priv\nAddress = 10.13.13.2/32\nDNS = 10.13.13.1\n\n[Peer]\nPublicKey = pub\nPresharedKey = psk\nEndpoint = gw:51820\nAllowedIPs = 0.0.0.0/0\n"
        );
    }

    #[test]
    fn renders_a_dual_stack_client() {
        let tunnel: Vec<IpNet> = vec![
            "10.13.13.1/24".parse().unwrap(),
            "fd13::1/64".parse().unwrap(),
        ];
        let c = ClientConf {
            private_key: "priv".into(),
            address: vec![
                "10.13.13.2/32".parse().unwrap(),
                "fd13::2/128".parse().unwrap(),
            ],
            dns: vec![],
            gateway_public_key: "pub".into(),
            preshared_key: None,
            endpoint: "[2001:db8::3]:51820".into(),
            allowed_ips: default_allowed_ips(&tunnel),
            persistent_keepalive: Some(25),
        };
        assert_eq!(
            c.render(),
            "[Interface]\nPrivateKey = priv\nAddress = 10.13.13.2/32, fd13::2/128\n\n[Peer]\nPublicKey = pub\nEndpoint = [2001:db8::3]:51820\nAllowedIPs = 0.0.0.0/0, ::/0\nPersistentKeepalive = 25\n"
        );
        assert_eq!(
            default_allowed_ips(&tunnel[..1]),
            vec!["0.0.0.0/0".parse::<IpNet>().unwrap()],
            "an IPv4-only tunnel leaves the client's IPv6 alone"
        );
    }
}
