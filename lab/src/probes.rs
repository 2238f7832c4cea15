//! What the lab runs inside namespaces to send traffic and read state, and the parsers of what
//! comes back: an HTTP GET and an ICMP echo in python3 (present on every Debian; curl and ping
//! may not be), `wg show` output, the HTTP server's access log, and interface counters.

use anyhow::{bail, Context, Result};

/// `python3 -c HTTP_GET_PY URL TIMEOUT`: writes the body to stdout, fails on non-2xx.
pub(crate) const HTTP_GET_PY: &str = r#"
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
    sys.stdout.buffer.write(r.read())
"#;

/// `python3 -c PING_PY ADDR TIMEOUT`: one ICMP echo over a raw socket (RFC 792); prints the
/// round-trip time in milliseconds, exits non-zero on timeout.
pub(crate) const PING_PY: &str = r#"
import os, socket, struct, sys, time
dst, timeout = sys.argv[1], float(sys.argv[2])
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
ident, payload = os.getpid() & 0xffff, b"wgxdp lab echo"
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + payload
pkt = struct.pack("!BBHHH", 8, 0, csum(body), ident, 1) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
t0 = time.monotonic()
s.sendto(pkt, (dst, 0))
while True:
    left = timeout - (time.monotonic() - t0)
    if left <= 0: sys.exit("no echo reply from %s within %ss" % (dst, timeout))
    s.settimeout(left)
    try: data, addr = s.recvfrom(4096)
    except socket.timeout: sys.exit("no echo reply from %s within %ss" % (dst, timeout))
    ihl = (data[0] & 15) * 4
    if len(data) < ihl + 8: continue
    typ, code, _, rid, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
    if addr[0] == dst and typ == 0 and rid == ident:
        print("%.3f" % ((time.monotonic() - t0) * 1000)); break
"#;

/// `python3 -c CAPTURE_PY IFNAME FILE`: writes every frame seen on IFNAME (both directions) to a
/// classic pcap file with kernel timestamps until SIGTERM. dumpcap would do, but it only hands
/// over packets when a ring block fills or times out, and loses the last ones on SIGTERM; this
/// reads each frame as it arrives. The file header is written once the socket is bound, so a
/// non-empty file means the capture is live.
pub(crate) const CAPTURE_PY: &str = r#"
import signal, socket, struct, sys
iface, path = sys.argv[1], sys.argv[2]
# ARPHRD_ETHER (1) frames start with Ethernet; TUN devices (wg0) carry bare IP: LINKTYPE_RAW.
linktype = 1 if open("/sys/class/net/%s/type" % iface).read().strip() == "1" else 101
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
SO_TIMESTAMPNS = 35
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.settimeout(0.05)
f = open(path, "wb")
f.write(struct.pack("<IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 262144, linktype))
f.flush()
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
while not stop:
    try:
        data, anc, _, _ = s.recvmsg(262144, 64)
    except (socket.timeout, InterruptedError):
        continue
    sec, nsec = 0, 0
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("<qq", value[:16])
    f.write(struct.pack("<IIII", sec, nsec, len(data), len(data)))
    f.write(data)
f.close()
"#;

/// The peers (hex public keys, as the UAPI writes them) that a UAPI `get` answer shows with a
/// session: a `last_handshake_time` other than zero. That holds for wireguard-go (a Unix time)
/// and for boringtun (a duration since the handshake, only written while a session exists).
/// `wg show latest-handshakes` does not do for boringtun (0.7.1): it puts the time *since* the
/// last handshake into `last_handshake_time_sec`, not a Unix time (cloudflare/boringtun issue
/// 447), and `wg` drops the nanoseconds, so a session's whole first second reads as "never".
pub(crate) fn parse_uapi_handshaken_peers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut peer: Option<String> = None;
    let mut handshaken = false;
    let mut flush = |peer: &mut Option<String>, handshaken: &mut bool| {
        if let Some(p) = peer.take() {
            if *handshaken {
                out.push(p);
            }
        }
        *handshaken = false;
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "public_key" => {
                flush(&mut peer, &mut handshaken);
                peer = Some(v.to_owned());
            }
            "last_handshake_time_sec" | "last_handshake_time_nsec" if peer.is_some() => {
                handshaken |= v.parse::<u64>().is_ok_and(|n| n != 0);
            }
            _ => {}
        }
    }
    flush(&mut peer, &mut handshaken);
    out
}

/// A base64 WireGuard key (as `wg` prints it) in the UAPI's lowercase hex.
pub(crate) fn key_hex(base64_key: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_key.trim())
        .ok()?;
    (bytes.len() == 32).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Bytes through one peer, from `wg show wg0 transfer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTransfer {
    pub public_key: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

pub(crate) fn parse_transfer(text: &str) -> Vec<PeerTransfer> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(PeerTransfer {
                public_key: it.next()?.to_owned(),
                rx_bytes: it.next()?.parse().ok()?,
                tx_bytes: it.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// The client addresses of the requests in python's http.server log
/// (`172.23.0.3 - - [date] "GET / HTTP/1.1" 200 -`).
pub(crate) fn parse_http_log_sources<A: std::str::FromStr>(text: &str) -> Vec<A> {
    text.lines()
        .filter(|l| l.contains("\"GET ") || l.contains("\"HEAD "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// An interface's counters (the numbers `ip -s link` prints, read from sysfs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

/// The sysfs files [`parse_counters`] expects, in order.
pub(crate) const COUNTER_FILES: [&str; 6] = [
    "rx_packets",
    "rx_bytes",
    "rx_dropped",
    "tx_packets",
    "tx_bytes",
    "tx_dropped",
];

pub(crate) fn parse_counters(text: &str) -> Result<IfCounters> {
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse::<u64>().with_context(|| format!("counter {w:?}")))
        .collect::<Result<_>>()?;
    if v.len() != COUNTER_FILES.len() {
        bail!("expected {} counters, got {:?}", COUNTER_FILES.len(), v);
    }
    Ok(IfCounters {
        rx_packets: v[0],
        rx_bytes: v[1],
        rx_dropped: v[2],
        tx_packets: v[3],
        tx_bytes: v[4],
        tx_dropped: v[5],
    })
}

impl IfCounters {
    /// Counter growth since `earlier` (saturating, counters only grow).
    pub fn since(&self, earlier: &IfCounters) -> IfCounters {
        IfCounters {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(earlier.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
        }
    }
}

/// The received throughput of an `iperf3 -J` run: `end.sum_received.bits_per_second`. A small
/// scan instead of a JSON parser: the key names are fixed and the number follows directly.
/// The replies counted in `ping`'s summary line ("3 packets transmitted, 2 received, ..."),
/// `None` if the output has no summary.
pub fn parse_ping_received(out: &str) -> Option<u32> {
    out.lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| {
            l.split(',')
                .find(|p| p.contains("received"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

pub(crate) fn parse_iperf3_received_bps(json: &str) -> Result<f64> {
    let at = json
        .find("\"sum_received\"")
        .context("iperf3 JSON has no end.sum_received (did the test run?)")?;
    let rest = &json[at..];
    let key = "\"bits_per_second\":";
    let at = rest
        .find(key)
        .context("iperf3 JSON: sum_received without bits_per_second")?;
    let num: String = rest[at + key.len()..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        .collect();
    num.parse()
        .with_context(|| format!("iperf3 JSON: bits_per_second {num:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn uapi_sessions_from_either_implementation() {
        // wireguard-go: a Unix time, 0 for never. boringtun: a duration, present only with a
        // session, and 0 s in its first second (nsec tells).
        let t = "private_key=aa\nlisten_port=51820\n\
                 public_key=01\nendpoint=1.2.3.4:5\nlast_handshake_time_sec=0\n\
                 last_handshake_time_nsec=0\nrx_bytes=0\n\
                 public_key=02\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=41000\n\
                 public_key=03\nrx_bytes=9\n\
                 public_key=04\nlast_handshake_time_sec=1795580819\n\
                 last_handshake_time_nsec=0\nerrno=0\n\n";
        assert_eq!(parse_uapi_handshaken_peers(t), ["02", "04"]);
        assert!(parse_uapi_handshaken_peers("errno=0\n\n").is_empty());
        assert!(parse_uapi_handshaken_peers("garbage").is_empty());
    }

    #[test]
    fn keys_in_hex() {
        let hex = key_hex("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(
            hex,
            (0u8..32).map(|b| format!("{b:02x}")).collect::<String>()
        );
        assert_eq!(key_hex("AAEC"), None, "not 32 bytes");
        assert_eq!(key_hex("not base64!"), None);
    }

    #[test]
    fn transfer_lines() {
        let t = "k=\t836\t844\n";
        assert_eq!(
            parse_transfer(t),
            vec![PeerTransfer {
                public_key: "k=".into(),
                rx_bytes: 836,
                tx_bytes: 844
            }]
        );
    }

    #[test]
    fn http_log_sources() {
        let log = "Serving HTTP on 172.23.0.2 port 80 (http://172.23.0.2:80/) ...\n\
                   172.23.0.3 - - [25/Nov/2026 04:26:59] \"GET /index.html HTTP/1.1\" 200 -\n\
                   10.13.13.2 - - [25/Nov/2026 04:27:00] \"GET / HTTP/1.1\" 200 -\n";
        assert_eq!(
            parse_http_log_sources::<Ipv4Addr>(log),
            vec![Ipv4Addr::new(172, 23, 0, 3), Ipv4Addr::new(10, 13, 13, 2)]
        );
    }

    #[test]
    fn ping_summary() {
        let out = "PING 172.23.0.2 (172.23.0.2) 56(84) bytes of data.\n\n--- 172.23.0.2 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 402ms\n";
        assert_eq!(parse_ping_received(out), Some(2));
        assert_eq!(
            parse_ping_received("ping: connect: Network is unreachable"),
            None
        );
    }

    #[test]
    fn iperf3_json() {
        let j = r#"{"end": {"sum_sent": {"bits_per_second": 1.0},
            "sum_received": {"seconds": 1.0, "bytes": 5, "bits_per_second": 4.25e8}}}"#;
        assert_eq!(parse_iperf3_received_bps(j).unwrap(), 4.25e8);
        assert!(parse_iperf3_received_bps("{}").is_err());
        assert!(parse_iperf3_received_bps(r#"{"sum_received": {"bits_per_second": x}}"#).is_err());
    }

    #[test]
    fn counters() {
        let c = parse_counters("1 2 3\n4 5 6\n").unwrap();
        assert_eq!(c.rx_packets, 1);
        assert_eq!(c.tx_dropped, 6);
        assert!(parse_counters("1 2").is_err());
        assert!(parse_counters("1 2 3 4 5 x").is_err());
        let later = IfCounters {
            rx_packets: 10,
            ..c
        };
        assert_eq!(later.since(&c).rx_packets, 9);
    }
}
