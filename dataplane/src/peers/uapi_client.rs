//! A client of the WireGuard cross-platform UAPI (<https://www.wireguard.com/xplatform/>), the
//! socket the running gateway serves for `wg` at `/var/run/wireguard/NAME.sock`: adds and
//! removes peers (`set=1`) and reads peer state (`get=1`) without a restart.
//!
//! Keys go over the wire in lowercase hex; this module converts from and to the base64 the
//! config and `wg` show. Answers are read with a timeout and a size bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use wgproto::keys::{PresharedKey, PrivateKey, PublicKey};

/// The UAPI socket of the gateway whose tunnel device is `device` (`[interface] name`), as
/// the slow path serves it and `wg show DEVICE` finds it.
pub fn socket_of(device: &str) -> PathBuf {
    Path::new(slowpath::uapi::SOCKET_DIR).join(format!("{device}.sock"))
}

/// How long to wait for the gateway's answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer accepted (a get=1 of thousands of peers fits).
const MAX_ANSWER: u64 = 16 << 20;

/// What could go wrong talking to the gateway.
#[derive(Debug, thiserror::Error)]
pub enum UapiClientError {
    /// No socket file: no gateway runs (with this device name).
    #[error("no gateway is running ({0} does not exist)")]
    NotRunning(PathBuf),
    /// Connecting or exchanging failed.
    #[error("talking to the gateway on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The gateway refused the request.
    #[error("the gateway refused the change: errno={0}")]
    Refused(i32),
    /// The answer was not UAPI.
    #[error("unexpected answer from {path}: {what}")]
    Protocol { path: PathBuf, what: String },
}

/// One peer as `get=1` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePeer {
    /// Base64, as `wg show` prints it.
    pub public_key: String,
    pub endpoint: Option<SocketAddr>,
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub allowed_ips: Vec<IpNet>,
}

/// A peer to add or update.
#[derive(Debug, Clone)]
pub struct PeerSet<'a> {
    pub public_key: &'a PublicKey,
    pub preshared_key: Option<&'a PresharedKey>,
    pub allowed_ips: &'a [IpNet],
}

/// A connection target.
#[derive(Debug, Clone)]
pub struct UapiClient {
    path: PathBuf,
}

impl UapiClient {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        UapiClient { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the socket file exists (a gateway may be running).
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Adds the peer, or updates it in place (its AllowedIPs replaced).
    pub fn set_peer(&self, peer: &PeerSet<'_>) -> Result<(), UapiClientError> {
        let mut req = format!("set=1\npublic_key={}\n", peer.public_key.to_hex());
        if let Some(psk) = peer.preshared_key {
            req.push_str(&format!("preshared_key={}\n", psk.to_hex()));
        }
        req.push_str("replace_allowed_ips=true\n");
        for ip in peer.allowed_ips {
            req.push_str(&format!("allowed_ip={ip}\n"));
        }
        req.push('\n');
        self.set(&req)
    }

    /// Removes the peer (its sessions end at once).
    pub fn remove_peer(&self, public_key: &PublicKey) -> Result<(), UapiClientError> {
        self.set(&format!(
            "set=1\npublic_key={}\nremove=true\n\n",
            public_key.to_hex()
        ))
    }

    /// Every peer the gateway has now.
    pub fn peers(&self) -> Result<Vec<LivePeer>, UapiClientError> {
        let answer = self.exchange("get=1\n\n")?;
        parse_get(&answer).map_err(|what| UapiClientError::Protocol {
            path: self.path.clone(),
            what,
        })
    }

    /// The running gateway's own public key, derived from the `private_key` its `get=1`
    /// reports; `None` when it runs without one. Tells which config a gateway was started from.
    pub fn device_public_key(&self) -> Result<Option<PublicKey>, UapiClientError> {
        let answer = self.exchange("get=1\n\n")?;
        own_public_key(&answer).map_err(|what| UapiClientError::Protocol {
            path: self.path.clone(),
            what,
        })
    }

    fn set(&self, request: &str) -> Result<(), UapiClientError> {
        let answer = self.exchange(request)?;
        match errno_of(&answer) {
            Some(0) => Ok(()),
            Some(e) => Err(UapiClientError::Refused(e)),
            None => Err(UapiClientError::Protocol {
                path: self.path.clone(),
                what: format!("no errno line in {answer:?}"),
            }),
        }
    }

    fn exchange(&self, request: &str) -> Result<String, UapiClientError> {
        if !self.path.exists() {
            return Err(UapiClientError::NotRunning(self.path.clone()));
        }
        let io = |source| UapiClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut s = UnixStream::connect(&self.path).map_err(io)?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        s.write_all(request.as_bytes()).map_err(io)?;
        // The answer ends with an empty line; read up to it (the server may keep the
        // connection open for another request).
        let mut r = BufReader::new(s.take(MAX_ANSWER));
        let mut answer = String::new();
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).map_err(io)?;
            if n == 0 || line == "\n" {
                break;
            }
            answer.push_str(&line);
        }
        Ok(answer)
    }
}

fn errno_of(answer: &str) -> Option<i32> {
    answer
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("errno="))
        .and_then(|v| v.trim().parse().ok())
}

/// The public key of the device-level `private_key` line of a `get=1` answer (it comes before
/// the first peer).
pub fn own_public_key(answer: &str) -> Result<Option<PublicKey>, String> {
    match errno_of(answer) {
        Some(0) => {}
        Some(e) => return Err(format!("errno={e}")),
        None => return Err("no errno line".into()),
    }
    for line in answer.lines() {
        if line.starts_with("public_key=") {
            break;
        }
        if let Some(hex) = line.strip_prefix("private_key=") {
            let key = PrivateKey::from_hex(hex).map_err(|e| format!("private_key: {e}"))?;
            return Ok(Some(key.public_key()));
        }
    }
    Ok(None)
}

/// Parses a `get=1` answer (without its final empty line) into peers.
pub fn parse_get(answer: &str) -> Result<Vec<LivePeer>, String> {
    match errno_of(answer) {
        Some(0) => {}
        Some(e) => return Err(format!("errno={e}")),
        None => return Err("no errno line".into()),
    }
    let mut peers: Vec<LivePeer> = Vec::new();
    let mut secs: Option<u64> = None;
    for line in answer.lines() {
        let Some((key, val)) = line.split_once('=') else {
            return Err(format!("line without '=': {line:?}"));
        };
        if key == "public_key" {
            let k = PublicKey::from_hex(val).map_err(|e| format!("public_key: {e}"))?;
            peers.push(LivePeer {
                public_key: k.to_base64(),
                endpoint: None,
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
                allowed_ips: Vec::new(),
            });
            secs = None;
            continue;
        }
        let Some(p) = peers.last_mut() else {
            continue; // device-level keys: private_key, listen_port, fwmark
        };
        let bad = |what: &str| format!("{key}: {what} {val:?}");
        match key {
            "endpoint" => p.endpoint = Some(val.parse().map_err(|_| bad("not an address"))?),
            "rx_bytes" => p.rx_bytes = val.parse().map_err(|_| bad("not a number"))?,
            "tx_bytes" => p.tx_bytes = val.parse().map_err(|_| bad("not a number"))?,
            "allowed_ip" => p
                .allowed_ips
                .push(val.parse().map_err(|_| bad("not a prefix"))?),
            "last_handshake_time_sec" => secs = Some(val.parse().map_err(|_| bad("not a number"))?),
            "last_handshake_time_nsec" => {
                let nsec: u32 = val.parse().map_err(|_| bad("not a number"))?;
                let s = secs.unwrap_or(0);
                // 0 = never, as wg prints it.
                p.last_handshake = (s != 0 || nsec != 0)
                    .then(|| UNIX_EPOCH + Duration::new(s, nsec.min(999_999_999)));
            }
            _ => {}
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wireguard_go_style_answer() {
        let key = PublicKey::from_bytes([7; 32]);
        let answer = format!(
            "private_key={}\nlisten_port=51820\npublic_key={}\npreshared_key={}\nprotocol_version=1\nendpoint=192.0.2.1:4000\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=0\nallowed_ip=10.13.13.2/32\nerrno=0\n",
            "00".repeat(32),
            key.to_hex(),
            "00".repeat(32)
        );
        let peers = parse_get(&answer).unwrap();
        assert_eq!(peers.len(), 1);
        let p = &peers[0];
        assert_eq!(p.public_key, key.to_base64());
        assert_eq!(p.endpoint, Some("192.0.2.1:4000".parse().unwrap()));
        assert_eq!(
            p.last_handshake,
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5))
        );
        assert_eq!((p.rx_bytes, p.tx_bytes), (20, 10));
        assert_eq!(
            p.allowed_ips,
            vec!["10.13.13.2/32".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn never_handshaken_and_errors() {
        let key = PublicKey::from_bytes([1; 32]);
        let answer = format!(
            "public_key={}\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nerrno=0\n",
            key.to_hex()
        );
        assert_eq!(parse_get(&answer).unwrap()[0].last_handshake, None);
        assert!(parse_get("errno=-22\n").is_err());
        assert!(parse_get("public_key=zz\nerrno=0\n").is_err());
        assert!(parse_get("listen_port=1\n").is_err());
    }

    #[test]
    fn own_key_comes_from_the_device_private_key() {
        let own = PrivateKey::from_bytes([3; 32]);
        let peer = PublicKey::from_bytes([7; 32]);
        let answer = format!(
            "private_key={}\nlisten_port=1\npublic_key={}\nerrno=0\n",
            own.to_hex(),
            peer.to_hex()
        );
        assert_eq!(
            own_public_key(&answer).unwrap().map(|k| k.to_base64()),
            Some(own.public_key().to_base64())
        );
        let keyless = format!("listen_port=1\npublic_key={}\nerrno=0\n", peer.to_hex());
        assert!(own_public_key(&keyless).unwrap().is_none());
        assert!(own_public_key("errno=-13\n").is_err());
    }

    #[test]
    fn missing_socket_is_not_running() {
        let c = UapiClient::new("/nonexistent/dir/wg0.sock");
        assert!(!c.exists());
        assert!(matches!(c.peers(), Err(UapiClientError::NotRunning(_))));
    }
}
