//! The `get=1` side: [`DeviceSnapshot`], the picture of the device a backend hands over, and
//! [`write_get_response`], its text form. Line order and omissions follow wireguard-go's
//! `IpcGetOperation` (device/uapi.go), which `wg show` and `wg showconf` parse.
//!
//! [`DeviceSnapshot::apply`] is the reference meaning of a [`SetRequest`] on a plain in-memory
//! device: the slow path's backend must have the same effect on its live tables, and tests use
//! it as their backend.

use std::fmt::{self, Write};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use wgproto::keys::{PresharedKey, PrivateKey, PublicKey};

use super::parse::SetRequest;

/// What `get=1` reports about the device.
#[derive(Debug, Clone, Default)]
pub struct DeviceSnapshot {
    /// The static private key; `None` (or all-zero) is omitted from the output.
    pub private_key: Option<PrivateKey>,
    /// UDP listen port; 0 is omitted.
    pub listen_port: u16,
    /// Firewall mark; 0 is omitted.
    pub fwmark: u32,
    /// Peers in the order to report them (`wg` sorts them itself).
    pub peers: Vec<PeerSnapshot>,
}

/// What `get=1` reports about one peer.
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// The preshared key; `None` is reported as all zeroes (= none), as wireguard-go does.
    pub preshared_key: Option<PresharedKey>,
    /// Current endpoint, if known.
    pub endpoint: Option<SocketAddr>,
    /// Wall-clock time of the last completed handshake; `None` = never (reported as 0).
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from this peer (whole WireGuard packets, as the kernel counts).
    pub rx_bytes: u64,
    /// Bytes sent to this peer.
    pub tx_bytes: u64,
    /// Persistent keepalive interval in seconds, 0 = off.
    pub persistent_keepalive_interval: u16,
    /// The peer's allowed IPs (canonical, host bits cleared).
    pub allowed_ips: Vec<IpNet>,
}

impl PeerSnapshot {
    /// A peer with only its key set.
    pub fn new(public_key: PublicKey) -> Self {
        PeerSnapshot {
            public_key,
            preshared_key: None,
            endpoint: None,
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive_interval: 0,
            allowed_ips: Vec::new(),
        }
    }
}

fn is_zero(key: &[u8; 32]) -> bool {
    key == &[0u8; 32]
}

// Equality for tests (see the note on `SetRequest`'s `PartialEq`).
impl PartialEq for DeviceSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.private_key.as_ref().map(PrivateKey::as_bytes)
            == other.private_key.as_ref().map(PrivateKey::as_bytes)
            && self.listen_port == other.listen_port
            && self.fwmark == other.fwmark
            && self.peers == other.peers
    }
}

impl Eq for DeviceSnapshot {}

impl PartialEq for PeerSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.public_key == other.public_key
            && self.preshared_key.as_ref().map(PresharedKey::as_bytes)
                == other.preshared_key.as_ref().map(PresharedKey::as_bytes)
            && self.endpoint == other.endpoint
            && self.last_handshake == other.last_handshake
            && self.rx_bytes == other.rx_bytes
            && self.tx_bytes == other.tx_bytes
            && self.persistent_keepalive_interval == other.persistent_keepalive_interval
            && self.allowed_ips == other.allowed_ips
    }
}

impl Eq for PeerSnapshot {}

impl DeviceSnapshot {
    /// Applies `request` the way wireguard-go applies it to its device: device fields, then
    /// `replace_peers`, then each peer update in order. A prefix given to one peer is taken
    /// away from any other peer (AllowedIPs maps each prefix to exactly one peer). An update
    /// for the device's own public key is ignored, and setting a private key removes a peer
    /// that has the matching public key (a device cannot be its own peer).
    pub fn apply(&mut self, request: &SetRequest) {
        if let Some(key) = &request.private_key {
            self.private_key = if is_zero(key.as_bytes()) {
                None
            } else {
                Some(key.clone())
            };
            if let Some(own) = self.own_public_key() {
                self.peers.retain(|p| p.public_key != own);
            }
        }
        if let Some(port) = request.listen_port {
            self.listen_port = port;
        }
        if let Some(mark) = request.fwmark {
            self.fwmark = mark;
        }
        if request.replace_peers {
            self.peers.clear();
        }
        let own = self.own_public_key();
        for update in &request.peers {
            if Some(update.public_key) == own {
                continue;
            }
            let existing = self
                .peers
                .iter()
                .position(|p| p.public_key == update.public_key);
            if update.remove {
                if let Some(i) = existing {
                    self.peers.remove(i);
                }
                continue;
            }
            let index = match existing {
                Some(i) => i,
                None if update.update_only => continue,
                None => {
                    self.peers.push(PeerSnapshot::new(update.public_key));
                    self.peers.len() - 1
                }
            };
            let peer = &mut self.peers[index];
            if let Some(psk) = &update.preshared_key {
                peer.preshared_key = (!psk.is_none()).then(|| psk.clone());
            }
            if let Some(endpoint) = update.endpoint {
                peer.endpoint = Some(endpoint);
            }
            if let Some(secs) = update.persistent_keepalive_interval {
                peer.persistent_keepalive_interval = secs;
            }
            if update.replace_allowed_ips {
                peer.allowed_ips.clear();
            }
            for prefix in &update.allowed_ips {
                let prefix = prefix.trunc();
                for other in self.peers.iter_mut() {
                    other.allowed_ips.retain(|p| *p != prefix);
                }
                self.peers[index].allowed_ips.push(prefix);
            }
        }
    }
}

impl DeviceSnapshot {
    /// The public key of [`DeviceSnapshot::private_key`], if one is set.
    pub fn own_public_key(&self) -> Option<PublicKey> {
        self.private_key
            .as_ref()
            .filter(|k| !is_zero(k.as_bytes()))
            .map(PrivateKey::public_key)
    }
}

/// Writes the `get=1` answer for `snapshot`, ending with `errno=0` and the empty line.
pub fn write_get_response(snapshot: &DeviceSnapshot, out: &mut impl Write) -> fmt::Result {
    if let Some(key) = snapshot
        .private_key
        .as_ref()
        .filter(|k| !is_zero(k.as_bytes()))
    {
        writeln!(out, "private_key={}", key.to_hex())?;
    }
    if snapshot.listen_port != 0 {
        writeln!(out, "listen_port={}", snapshot.listen_port)?;
    }
    if snapshot.fwmark != 0 {
        writeln!(out, "fwmark={}", snapshot.fwmark)?;
    }
    for peer in &snapshot.peers {
        writeln!(out, "public_key={}", peer.public_key.to_hex())?;
        // wireguard-go always reports the PSK, all zeroes when there is none.
        let psk = peer.preshared_key.as_ref().map(PresharedKey::to_hex);
        writeln!(
            out,
            "preshared_key={}",
            psk.unwrap_or_else(|| PresharedKey::none().to_hex())
        )?;
        out.write_str("protocol_version=1\n")?;
        if let Some(endpoint) = peer.endpoint {
            // SocketAddr's Display is the UAPI form: `a.b.c.d:p` or `[v6]:p`.
            writeln!(out, "endpoint={endpoint}")?;
        }
        // A time before 1970 cannot come from a real handshake; report it as "never".
        let since_epoch = peer
            .last_handshake
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        writeln!(out, "last_handshake_time_sec={}", since_epoch.as_secs())?;
        writeln!(
            out,
            "last_handshake_time_nsec={}",
            since_epoch.subsec_nanos()
        )?;
        writeln!(out, "tx_bytes={}", peer.tx_bytes)?;
        writeln!(out, "rx_bytes={}", peer.rx_bytes)?;
        writeln!(
            out,
            "persistent_keepalive_interval={}",
            peer.persistent_keepalive_interval
        )?;
        for prefix in &peer.allowed_ips {
            writeln!(out, "allowed_ip={prefix}")?;
        }
    }
    out.write_str("errno=0\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::parse::{parse_set_request, PeerUpdate};
    use std::time::Duration;

    fn k(b: u8) -> [u8; 32] {
        [b; 32]
    }

    #[test]
    fn empty_device_is_just_errno() {
        let mut s = String::new();
        write_get_response(&DeviceSnapshot::default(), &mut s).unwrap();
        assert_eq!(s, "errno=0\n\n");
    }

    #[test]
    fn full_device_in_wireguard_go_order() {
        let mut peer = PeerSnapshot::new(PublicKey::from_bytes(k(0xab)));
        peer.preshared_key = Some(PresharedKey::from_bytes(k(0x01)));
        peer.endpoint = Some("[2001:db8::5]:51820".parse().unwrap());
        peer.last_handshake = Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789));
        peer.rx_bytes = 1536;
        peer.tx_bytes = 3072;
        peer.persistent_keepalive_interval = 25;
        peer.allowed_ips = vec![
            "10.13.13.2/32".parse().unwrap(),
            "fd00::/64".parse().unwrap(),
        ];
        let bare = PeerSnapshot::new(PublicKey::from_bytes(k(0x02)));
        let snap = DeviceSnapshot {
            private_key: Some(PrivateKey::from_bytes(k(0xcd))),
            listen_port: 51820,
            fwmark: 7,
            peers: vec![peer, bare],
        };
        let mut s = String::new();
        write_get_response(&snap, &mut s).unwrap();
        let want = format!(
            "private_key={}\nlisten_port=51820\nfwmark=7\n\
             public_key={}\npreshared_key={}\nprotocol_version=1\n\
             endpoint=[2001:db8::5]:51820\n\
             last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=123456789\n\
             tx_bytes=3072\nrx_bytes=1536\npersistent_keepalive_interval=25\n\
             allowed_ip=10.13.13.2/32\nallowed_ip=fd00::/64\n\
             public_key={}\npreshared_key={}\nprotocol_version=1\n\
             last_handshake_time_sec=0\nlast_handshake_time_nsec=0\n\
             tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n\
             errno=0\n\n",
            "cd".repeat(32),
            "ab".repeat(32),
            "01".repeat(32),
            "02".repeat(32),
            "00".repeat(32),
        );
        assert_eq!(s, want);
    }

    #[test]
    fn zero_private_key_and_zero_port_are_omitted() {
        let snap = DeviceSnapshot {
            private_key: Some(PrivateKey::from_bytes([0; 32])),
            ..DeviceSnapshot::default()
        };
        let mut s = String::new();
        write_get_response(&snap, &mut s).unwrap();
        assert_eq!(s, "errno=0\n\n");
    }

    #[test]
    fn apply_follows_wireguard_go_semantics() {
        let k1 = "11".repeat(32);
        let k2 = "22".repeat(32);
        let mut dev = DeviceSnapshot::default();
        dev.apply(
            &parse_set_request(&format!(
                "private_key={}\nlisten_port=51820\n\
                 public_key={k1}\nallowed_ip=10.0.0.5/24\nendpoint=192.0.2.1:1\n\
                 public_key={k2}\nupdate_only=true\nallowed_ip=10.0.1.0/24\n",
                "33".repeat(32)
            ))
            .unwrap(),
        );
        assert_eq!(dev.listen_port, 51820);
        assert_eq!(dev.peers.len(), 1, "update_only must not create a peer");
        assert_eq!(
            dev.peers[0].allowed_ips,
            vec!["10.0.0.0/24".parse().unwrap()]
        );

        // The same prefix given to another peer moves to it.
        dev.apply(
            &parse_set_request(&format!("public_key={k2}\nallowed_ip=10.0.0.0/24\n")).unwrap(),
        );
        assert_eq!(dev.peers.len(), 2);
        assert!(dev.peers[0].allowed_ips.is_empty());
        assert_eq!(
            dev.peers[1].allowed_ips,
            vec!["10.0.0.0/24".parse().unwrap()]
        );

        // Removing and replacing.
        let mut remove = PeerUpdate::new(PublicKey::from_bytes(k(0x22)));
        remove.remove = true;
        dev.apply(&SetRequest {
            peers: vec![remove],
            ..SetRequest::default()
        });
        assert_eq!(dev.peers.len(), 1);
        dev.apply(&parse_set_request("replace_peers=true\n").unwrap());
        assert!(dev.peers.is_empty());
        dev.apply(&parse_set_request(&format!("private_key={}\n", "00".repeat(32))).unwrap());
        assert!(dev.private_key.is_none());

        // The device's own public key is never a peer.
        let own = PrivateKey::from_bytes(k(0x44));
        let own_pub = own.public_key().to_hex();
        dev.apply(&parse_set_request(&format!("public_key={own_pub}\n")).unwrap());
        assert_eq!(dev.peers.len(), 1);
        dev.apply(&parse_set_request(&format!("private_key={}\n", own.to_hex())).unwrap());
        assert!(dev.peers.is_empty());
        dev.apply(&parse_set_request(&format!("public_key={own_pub}\n")).unwrap());
        assert!(dev.peers.is_empty());
    }
}
