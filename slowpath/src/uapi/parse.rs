//! The `set=1` request parser: text lines in, a typed [`SetRequest`] out. Sans-IO (the server
//! feeds it lines) and bounded: a line longer than [`MAX_LINE_LEN`] or a request larger than
//! [`MAX_REQUEST_BYTES`] is an error, so a client can neither crash nor balloon the slow path.
//!
//! Keys and their meaning follow wireguard-go's `IpcSetOperation` (device/uapi.go), which is
//! what the `wg` tool talks to:
//! - device section (until the first `public_key`): `private_key`, `listen_port`, `fwmark`,
//!   `replace_peers=true`;
//! - each `public_key=` starts a peer section: `remove=true`, `update_only=true`,
//!   `preshared_key`, `endpoint`, `persistent_keepalive_interval`, `replace_allowed_ips=true`,
//!   `allowed_ip`, `protocol_version=1`.
//!
//! Errors match wireguard-go's numbers: a line without `=` is `EPROTO`; an unknown key, a
//! malformed value, or a `true`-only flag with another value is `EINVAL`.
//!
//! One deliberate difference: wireguard-go applies each line as it reads it, so an error halfway
//! leaves half a change applied. Here the whole request is parsed first and the backend gets
//! all of it or nothing.

use std::net::SocketAddr;

use ipnet::IpNet;

use wgproto::keys::{KeyParseError, PresharedKey, PrivateKey, PublicKey};

use super::Errno;

/// The longest line accepted. The longest valid line (an IPv6 endpoint with a scope) is under
/// 100 bytes; the margin is for harmless variation, not for payloads.
pub const MAX_LINE_LEN: usize = 512;

/// The largest `set=1` request accepted, in bytes. About 200 000 `allowed_ip` lines: a large
/// `wg setconf`, while bounding the parsed request to a few MiB.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// A parsed `set=1` request, ready to apply in order: device fields, then `replace_peers`, then
/// each [`PeerUpdate`] in the order given (the same public key may appear more than once; later
/// updates apply on top of earlier ones).
#[derive(Debug, Clone, Default)]
pub struct SetRequest {
    /// New private key; an all-zero key removes it.
    pub private_key: Option<PrivateKey>,
    /// New UDP listen port (0 = pick any).
    pub listen_port: Option<u16>,
    /// New firewall mark for outgoing packets (0 = none).
    pub fwmark: Option<u32>,
    /// Remove every peer before applying [`SetRequest::peers`].
    pub replace_peers: bool,
    /// Per-peer changes, in request order.
    pub peers: Vec<PeerUpdate>,
}

/// The changes for one peer, normalised from its section of the request.
///
/// Normalisation keeps wireguard-go's effect while making order irrelevant to the backend:
/// `replace_allowed_ips=true` drops the `allowed_ip` lines that came before it in the section;
/// `remove=true` drops every other change in the section (they would be discarded anyway).
#[derive(Debug, Clone)]
pub struct PeerUpdate {
    /// Which peer; created unless [`PeerUpdate::update_only`] or [`PeerUpdate::remove`].
    pub public_key: PublicKey,
    /// Remove this peer (if present). When set, all other fields are at their defaults.
    pub remove: bool,
    /// Apply only if the peer already exists; never create it.
    pub update_only: bool,
    /// New preshared key; all-zero clears it.
    pub preshared_key: Option<PresharedKey>,
    /// New endpoint.
    pub endpoint: Option<SocketAddr>,
    /// New persistent keepalive interval in seconds (0 = off).
    pub persistent_keepalive_interval: Option<u16>,
    /// Remove the peer's existing allowed IPs before adding [`PeerUpdate::allowed_ips`].
    pub replace_allowed_ips: bool,
    /// Prefixes to add, as written (host bits are not cleared here; AllowedIPs does that).
    pub allowed_ips: Vec<IpNet>,
}

impl PeerUpdate {
    /// An update for `public_key` that changes nothing yet.
    pub fn new(public_key: PublicKey) -> Self {
        PeerUpdate {
            public_key,
            remove: false,
            update_only: false,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive_interval: None,
            replace_allowed_ips: false,
            allowed_ips: Vec::new(),
        }
    }
}

// Equality for tests and change detection. Secrets have no `PartialEq` in wgproto (to keep
// accidental non-constant-time comparisons out of the protocol code); comparing configuration
// here is not on any path an attacker can time.
impl PartialEq for SetRequest {
    fn eq(&self, other: &Self) -> bool {
        self.private_key.as_ref().map(PrivateKey::as_bytes)
            == other.private_key.as_ref().map(PrivateKey::as_bytes)
            && self.listen_port == other.listen_port
            && self.fwmark == other.fwmark
            && self.replace_peers == other.replace_peers
            && self.peers == other.peers
    }
}

impl Eq for SetRequest {}

impl PartialEq for PeerUpdate {
    fn eq(&self, other: &Self) -> bool {
        self.public_key == other.public_key
            && self.remove == other.remove
            && self.update_only == other.update_only
            && self.preshared_key.as_ref().map(PresharedKey::as_bytes)
                == other.preshared_key.as_ref().map(PresharedKey::as_bytes)
            && self.endpoint == other.endpoint
            && self.persistent_keepalive_interval == other.persistent_keepalive_interval
            && self.replace_allowed_ips == other.replace_allowed_ips
            && self.allowed_ips == other.allowed_ips
    }
}

impl Eq for PeerUpdate {}

/// Incremental parser: feed it the lines after `set=1` (without their `\n`), one at a time,
/// stop at the empty line, then [`SetRequestParser::finish`].
#[derive(Debug, Default)]
pub struct SetRequestParser {
    request: SetRequest,
    bytes_seen: usize,
}

impl SetRequestParser {
    /// A parser with nothing fed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one line (no trailing newline; an empty line ends the request and must not be
    /// fed). On error the request is invalid as a whole and should be discarded.
    pub fn line(&mut self, line: &str) -> Result<(), Errno> {
        if line.len() > MAX_LINE_LEN {
            return Err(Errno::TOO_LONG);
        }
        self.bytes_seen = self.bytes_seen.saturating_add(line.len() + 1);
        if self.bytes_seen > MAX_REQUEST_BYTES {
            return Err(Errno::TOO_LONG);
        }
        let (key, value) = line.split_once('=').ok_or(Errno::PROTOCOL)?;
        if key == "public_key" {
            let key = hex_key(value, PublicKey::from_hex)?;
            self.request.peers.push(PeerUpdate::new(key));
            return Ok(());
        }
        match self.request.peers.last_mut() {
            None => device_line(&mut self.request, key, value),
            Some(peer) => peer_line(peer, key, value),
        }
    }

    /// The parsed request.
    pub fn finish(self) -> SetRequest {
        self.request
    }
}

/// Parses a whole request body: the lines after `set=1`, up to an optional empty line.
pub fn parse_set_request(body: &str) -> Result<SetRequest, Errno> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(Errno::TOO_LONG);
    }
    let mut parser = SetRequestParser::new();
    for line in body.split('\n') {
        if line.is_empty() {
            break;
        }
        parser.line(line)?;
    }
    Ok(parser.finish())
}

fn device_line(request: &mut SetRequest, key: &str, value: &str) -> Result<(), Errno> {
    match key {
        "private_key" => {
            request.private_key = Some(hex_key(value, PrivateKey::from_hex)?);
        }
        "listen_port" => request.listen_port = Some(parse_decimal_u16(value)?),
        "fwmark" => request.fwmark = Some(parse_decimal_u32(value)?),
        "replace_peers" => {
            expect_true(value)?;
            request.replace_peers = true;
        }
        _ => return Err(Errno::INVALID),
    }
    Ok(())
}

fn peer_line(peer: &mut PeerUpdate, key: &str, value: &str) -> Result<(), Errno> {
    // After `remove=true` wireguard-go still validates the section's lines but applies none.
    let removed = peer.remove;
    match key {
        "remove" => {
            expect_true(value)?;
            *peer = PeerUpdate::new(peer.public_key);
            peer.remove = true;
        }
        "update_only" => {
            expect_true(value)?;
            peer.update_only = true;
        }
        "preshared_key" => {
            let psk = hex_key(value, PresharedKey::from_hex)?;
            if !removed {
                peer.preshared_key = Some(psk);
            }
        }
        "endpoint" => {
            let endpoint = parse_endpoint(value)?;
            if !removed {
                peer.endpoint = Some(endpoint);
            }
        }
        "persistent_keepalive_interval" => {
            let secs = parse_decimal_u16(value)?;
            if !removed {
                peer.persistent_keepalive_interval = Some(secs);
            }
        }
        "replace_allowed_ips" => {
            expect_true(value)?;
            if !removed {
                peer.replace_allowed_ips = true;
                peer.allowed_ips.clear();
            }
        }
        "allowed_ip" => {
            let prefix = parse_prefix(value)?;
            if !removed {
                peer.allowed_ips.push(prefix);
            }
        }
        "protocol_version" => {
            if value != "1" {
                return Err(Errno::INVALID);
            }
        }
        _ => return Err(Errno::INVALID),
    }
    Ok(())
}

/// Exactly 64 hex digits, either case, like Go's `hex.DecodeString` into a 32-byte key (the
/// length check first: wgproto's decoder also tolerates surrounding whitespace).
fn hex_key<K>(value: &str, decode: fn(&str) -> Result<K, KeyParseError>) -> Result<K, Errno> {
    if value.len() != 64 {
        return Err(Errno::INVALID);
    }
    decode(value).map_err(|_| Errno::INVALID)
}

fn expect_true(value: &str) -> Result<(), Errno> {
    if value == "true" {
        Ok(())
    } else {
        Err(Errno::INVALID)
    }
}

/// Decimal digits only, like Go's `strconv.ParseUint(v, 10, n)`: no sign, no spaces, no
/// underscores (Rust's `str::parse` alone would accept a leading `+`).
fn parse_decimal_u64(value: &str) -> Result<u64, Errno> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Errno::INVALID);
    }
    value.parse().map_err(|_| Errno::INVALID)
}

fn parse_decimal_u16(value: &str) -> Result<u16, Errno> {
    u16::try_from(parse_decimal_u64(value)?).map_err(|_| Errno::INVALID)
}

fn parse_decimal_u32(value: &str) -> Result<u32, Errno> {
    u32::try_from(parse_decimal_u64(value)?).map_err(|_| Errno::INVALID)
}

/// `a.b.c.d:port` or `[v6]:port` (numeric only; `wg` resolves names before sending). An
/// IPv4-mapped IPv6 address is its IPv4 address: the fast path sends by the address's family.
fn parse_endpoint(value: &str) -> Result<SocketAddr, Errno> {
    let a: SocketAddr = value.parse().map_err(|_| Errno::INVALID)?;
    Ok(SocketAddr::new(a.ip().to_canonical(), a.port()))
}

/// `addr/len` with a decimal length no larger than the family allows.
fn parse_prefix(value: &str) -> Result<IpNet, Errno> {
    let (addr, len) = value.split_once('/').ok_or(Errno::INVALID)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| Errno::INVALID)?;
    // Go's netip.ParsePrefix rejects leading zeros in the length ("/08").
    if len.len() > 1 && len.starts_with('0') {
        return Err(Errno::INVALID);
    }
    let len = u8::try_from(parse_decimal_u64(len)?).map_err(|_| Errno::INVALID)?;
    IpNet::new(addr, len).map_err(|_| Errno::INVALID)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
    const K3: &str = "3333333333333333333333333333333333333333333333333333333333333333";

    fn key(b: u8) -> [u8; 32] {
        [b; 32]
    }

    fn pk(b: u8) -> PublicKey {
        PublicKey::from_bytes(key(b))
    }

    #[test]
    fn every_device_key_is_parsed() {
        let req = parse_set_request(&format!(
            "private_key={K1}\nlisten_port=51820\nfwmark=4294967295\nreplace_peers=true\n\n"
        ))
        .unwrap();
        assert_eq!(req.private_key.unwrap().as_bytes(), &key(0x11));
        assert_eq!(req.listen_port, Some(51820));
        assert_eq!(req.fwmark, Some(u32::MAX));
        assert!(req.replace_peers);
        assert!(req.peers.is_empty());
    }

    #[test]
    fn an_ipv4_mapped_endpoint_is_its_ipv4_address() {
        let mapped = format!("public_key={K1}\nendpoint=[::ffff:192.0.2.7]:9\n");
        let p = &parse_set_request(&mapped).unwrap().peers[0];
        assert_eq!(p.endpoint, Some("192.0.2.7:9".parse().unwrap()));
    }

    #[test]
    fn every_peer_key_is_parsed() {
        let req = parse_set_request(&format!(
            "public_key={K1}\n\
             update_only=true\n\
             preshared_key={K2}\n\
             endpoint=[2001:db8::1]:51820\n\
             persistent_keepalive_interval=25\n\
             replace_allowed_ips=true\n\
             allowed_ip=10.0.0.2/32\n\
             allowed_ip=fd00::/64\n\
             protocol_version=1\n\
             public_key={K3}\n\
             endpoint=192.0.2.7:1234\n\
             remove=true\n"
        ))
        .unwrap();
        assert_eq!(req.peers.len(), 2);
        let p = &req.peers[0];
        assert_eq!(p.public_key, pk(0x11));
        assert!(p.update_only);
        assert!(!p.remove);
        assert_eq!(p.preshared_key.as_ref().unwrap().as_bytes(), &key(0x22));
        assert_eq!(p.endpoint, Some("[2001:db8::1]:51820".parse().unwrap()));
        assert_eq!(p.persistent_keepalive_interval, Some(25));
        assert!(p.replace_allowed_ips);
        assert_eq!(
            p.allowed_ips,
            vec![
                "10.0.0.2/32".parse::<IpNet>().unwrap(),
                "fd00::/64".parse().unwrap()
            ]
        );
        // remove=true discards the section's other changes.
        let mut removed = PeerUpdate::new(pk(0x33));
        removed.remove = true;
        assert_eq!(req.peers[1], removed);
    }

    #[test]
    fn exactly_what_wg_set_sends() {
        // `wg set wgX peer <K1> allowed-ips 10.0.0.2/32 endpoint 127.0.0.1:5555`
        let req = parse_set_request(&format!(
            "public_key={K1}\nendpoint=127.0.0.1:5555\nreplace_allowed_ips=true\n\
             allowed_ip=10.0.0.2/32\n\n"
        ))
        .unwrap();
        let mut want = PeerUpdate::new(pk(0x11));
        want.endpoint = Some("127.0.0.1:5555".parse().unwrap());
        want.replace_allowed_ips = true;
        want.allowed_ips = vec!["10.0.0.2/32".parse().unwrap()];
        assert_eq!(
            req,
            SetRequest {
                peers: vec![want],
                ..SetRequest::default()
            }
        );
    }

    #[test]
    fn replace_allowed_ips_drops_earlier_prefixes_only() {
        let req = parse_set_request(&format!(
            "public_key={K1}\nallowed_ip=10.0.0.1/32\nreplace_allowed_ips=true\n\
             allowed_ip=10.0.0.2/32\n"
        ))
        .unwrap();
        assert_eq!(
            req.peers[0].allowed_ips,
            vec!["10.0.0.2/32".parse().unwrap()]
        );
    }

    #[test]
    fn lines_after_remove_are_validated_but_not_applied() {
        let req = parse_set_request(&format!(
            "public_key={K1}\nremove=true\nendpoint=1.2.3.4:5\n"
        ))
        .unwrap();
        assert_eq!(req.peers[0].endpoint, None);
        assert!(req.peers[0].remove);
        assert_eq!(
            parse_set_request(&format!("public_key={K1}\nremove=true\nendpoint=bogus\n")),
            Err(Errno::INVALID)
        );
    }

    #[test]
    fn zero_keys_are_accepted_for_clearing() {
        let zero = "0".repeat(64);
        let req = parse_set_request(&format!(
            "private_key={zero}\npublic_key={K1}\npreshared_key={zero}\n"
        ))
        .unwrap();
        assert_eq!(req.private_key.unwrap().as_bytes(), &[0u8; 32]);
        assert!(req.peers[0].preshared_key.as_ref().unwrap().is_none());
    }

    #[test]
    fn invalid_values_are_einval() {
        let bad = [
            "private_key=1234".to_string(),
            format!("private_key={}", "g".repeat(64)),
            format!("public_key={}", &K1[..63]),
            format!("public_key={K1}0"),
            format!("public_key= {}", &K1[..63]),
            format!("public_key={} ", &K1[..63]),
            "listen_port=65536".into(),
            "listen_port=-1".into(),
            "listen_port=+5".into(),
            "listen_port=".into(),
            "listen_port= 5".into(),
            "fwmark=4294967296".into(),
            "fwmark=0x10".into(),
            "replace_peers=false".into(),
            format!("public_key={K1}\npreshared_key=00"),
            format!("public_key={K1}\nendpoint=1.2.3.4"),
            format!("public_key={K1}\nendpoint=host.example:51820"),
            format!("public_key={K1}\nendpoint=1.2.3.4:65536"),
            format!("public_key={K1}\nendpoint=::1:51820"),
            format!("public_key={K1}\npersistent_keepalive_interval=65536"),
            format!("public_key={K1}\nreplace_allowed_ips=yes"),
            format!("public_key={K1}\nallowed_ip=10.0.0.1"),
            format!("public_key={K1}\nallowed_ip=10.0.0.1/33"),
            format!("public_key={K1}\nallowed_ip=fd00::/129"),
            format!("public_key={K1}\nallowed_ip=10.0.0.1/08"),
            format!("public_key={K1}\nallowed_ip=10.0.0.1/+8"),
            format!("public_key={K1}\nallowed_ip=010.0.0.1/8"),
            format!("public_key={K1}\nremove=1"),
            format!("public_key={K1}\nupdate_only=false"),
            format!("public_key={K1}\nprotocol_version=2"),
        ];
        for text in bad {
            assert_eq!(parse_set_request(&text), Err(Errno::INVALID), "{text:?}");
        }
    }

    #[test]
    fn unknown_keys_are_einval_in_either_section() {
        assert_eq!(parse_set_request("bogus=1\n"), Err(Errno::INVALID));
        // Peer-only keys are unknown in the device section and vice versa.
        assert_eq!(
            parse_set_request("endpoint=1.2.3.4:5\n"),
            Err(Errno::INVALID)
        );
        assert_eq!(
            parse_set_request(&format!("public_key={K1}\nlisten_port=1\n")),
            Err(Errno::INVALID)
        );
        // `get`-only keys cannot be set.
        assert_eq!(
            parse_set_request(&format!("public_key={K1}\nrx_bytes=1\n")),
            Err(Errno::INVALID)
        );
    }

    #[test]
    fn a_line_without_equals_is_eproto() {
        assert_eq!(parse_set_request("listen_port\n"), Err(Errno::PROTOCOL));
        assert_eq!(
            parse_set_request(&format!("public_key={K1}\ngarbage\n")),
            Err(Errno::PROTOCOL)
        );
    }

    #[test]
    fn oversized_lines_and_requests_are_rejected() {
        let long = format!(
            "public_key={K1}\nallowed_ip=10.0.0.1/32{}\n",
            " ".repeat(600)
        );
        assert_eq!(parse_set_request(&long), Err(Errno::TOO_LONG));

        let mut parser = SetRequestParser::new();
        parser.line(&format!("public_key={K1}")).unwrap();
        let line = "allowed_ip=10.0.0.1/32";
        let mut result = Ok(());
        let mut fed = 0usize;
        while result.is_ok() {
            result = parser.line(line);
            fed += 1;
            assert!(fed <= MAX_REQUEST_BYTES / line.len() + 1, "never stopped");
        }
        assert_eq!(result, Err(Errno::TOO_LONG));
        assert!(fed * (line.len() + 1) >= MAX_REQUEST_BYTES - 200);
    }

    #[test]
    fn input_after_the_empty_line_is_ignored() {
        let req = parse_set_request("listen_port=1\n\nbogus\n").unwrap();
        assert_eq!(req.listen_port, Some(1));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: splice fragments of valid lines and junk together.
        let pieces = [
            "public_key=",
            K1,
            "=",
            "\n",
            "allowed_ip=",
            "/",
            "::",
            "1.2.3.4",
            ":",
            "[",
            "]",
            "remove=true",
            "endpoint=",
            "999999999999999999999",
            "\u{fffd}",
            "listen_port=",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let mut text = String::new();
            for _ in 0..(state % 12) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            let _ = parse_set_request(&text);
            state = state.wrapping_add(1);
        }
    }
}
