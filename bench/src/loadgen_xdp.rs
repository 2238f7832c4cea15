//! The load generator's AF_XDP path: the same sealed transport messages as the `sendmmsg(2)`
//! path ([`crate::loadgen`]), wrapped in Ethernet + IPv4 + UDP headers here and handed to an
//! AF_XDP socket on the client's veth ([`crate::xsk_port`]), so that at the top offered loads
//! the kernel's UDP stack on the sending side is out of the measurement. The gateway's replies
//! come back through the same socket and are opened exactly as the UDP path opens them
//! ([`Generator::tally_reply`]).
//!
//! The frames carry the addresses of the generator's kernel UDP socket, which made the
//! handshake: the gateway sees one endpoint, whichever path a message took. The MACs are the
//! client veth's own and the gateway's as the kernel's neighbour table resolved it during the
//! handshake ([`OuterHeaders::resolve`]).

use std::net::SocketAddrV4;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use wire::ethernet::{self, Mac};
use wire::{ipv4, udp};

use crate::loadgen::{now, Generator, Load, ReplyCounts, Sent, SEND_BATCH};
use crate::probe::{Arrivals, SendTimes};
use crate::udp_batch::monotonic_ns;
use crate::xsk_port::{PortInfo, Redirect, XskPort};

/// Ethernet + IPv4 (no options) + UDP.
pub const OUTER_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// The outer headers of every frame the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterHeaders {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    /// The generator's UDP socket (the gateway's endpoint for this peer).
    pub src: SocketAddrV4,
    /// The gateway's WireGuard endpoint.
    pub dst: SocketAddrV4,
}

impl OuterHeaders {
    /// Writes the headers of a frame carrying `payload_len` bytes of UDP payload (TTL 64, DF,
    /// IPv4 checksum filled, UDP checksum 0 as RFC 768 allows over IPv4: the AEAD tag
    /// authenticates the message, and kernel WireGuard's receivers accept it).
    pub fn write(&self, out: &mut [u8; OUTER_LEN], payload_len: usize) -> Result<()> {
        let (eth, rest) = out.split_at_mut(ethernet::HEADER_LEN);
        let (ip, udp_hdr) = rest.split_at_mut(ipv4::HEADER_LEN);
        ethernet::write_header(eth, self.dst_mac, self.src_mac, ethernet::ETHERTYPE_IPV4)
            .map_err(|e| anyhow::anyhow!("Ethernet header: {e:?}"))?;
        ipv4::Repr {
            src: *self.src.ip(),
            dst: *self.dst.ip(),
            protocol: ipv4::PROTO_UDP,
            payload_len: udp::HEADER_LEN + payload_len,
            ttl: ipv4::DEFAULT_TTL,
            tos: 0,
            ident: 0,
            dont_frag: true,
        }
        .emit(ip)
        .map_err(|e| anyhow::anyhow!("IPv4 header: {e:?}"))?;
        udp::Repr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            payload_len,
        }
        .emit(udp_hdr)
        .map_err(|e| anyhow::anyhow!("UDP header: {e:?}"))?;
        Ok(())
    }

    /// The UDP payload of `frame` if it is an IPv4/UDP datagram from `dst` to `src` (the reverse
    /// of what [`write`](Self::write) sends), mutable for opening in place.
    pub fn reply_payload<'a>(&self, frame: &'a mut [u8]) -> Option<&'a mut [u8]> {
        let d = udp_datagram(frame)?;
        (d.src == self.dst && d.dst == self.src).then(|| &mut frame[d.payload])
    }

    /// The headers for the generator's socket `src` and the gateway `dst`, with the MAC of
    /// `ifname` in namespace `netns` and the gateway's MAC from that namespace's neighbour table
    /// (the handshake resolved it).
    pub fn resolve(
        netns: &str,
        ifname: &str,
        src: SocketAddrV4,
        dst: SocketAddrV4,
    ) -> Result<OuterHeaders> {
        let link = ip_in(netns, &["-o", "link", "show", "dev", ifname])?;
        let src_mac = mac_after(&link, "link/ether")
            .with_context(|| format!("no MAC address for {ifname} in `ip link`: {link}"))?;
        let gw = dst.ip().to_string();
        let neigh = ip_in(netns, &["neigh", "show", &gw, "dev", ifname])?;
        let dst_mac = mac_after(&neigh, "lladdr").with_context(|| {
            format!("the kernel has not resolved {gw} on {ifname} (ip neigh: {neigh:?})")
        })?;
        Ok(OuterHeaders {
            src_mac,
            dst_mac,
            src,
            dst,
        })
    }
}

/// Where an unfragmented IPv4/UDP datagram in an Ethernet frame came from and went to, and
/// where its payload lies in the frame. The UDP checksum is not checked: a datagram the kernel
/// forwarded may still carry the partial sum of a checksum offload, and the probes carry their
/// own CRC-32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpDatagram {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: std::ops::Range<usize>,
}

/// Parses `frame` as Ethernet + IPv4 + UDP (lengths checked; `None` for anything else or a
/// fragment).
pub fn udp_datagram(frame: &[u8]) -> Option<UdpDatagram> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != ethernet::ETHERTYPE_IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != ipv4::PROTO_UDP || ip.is_fragment() {
        return None;
    }
    let (ip_start, ip_end) = (
        ethernet::HEADER_LEN + ip.header_len(),
        ethernet::HEADER_LEN + ip.total_len(),
    );
    let u = udp::Packet::new_checked(frame.get(ip_start..ip_end)?).ok()?;
    Some(UdpDatagram {
        src: SocketAddrV4::new(ip.src_addr(), u.src_port()),
        dst: SocketAddrV4::new(ip.dst_addr(), u.dst_port()),
        payload: ip_start + udp::HEADER_LEN..ip_start + u.len(),
    })
}

pub(crate) fn ip_in(netns: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "ip"])
        .args(args)
        .output()
        .context("cannot run ip")?;
    if !out.status.success() {
        bail!(
            "ip {} in {netns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The MAC address after the word `key` in `text` (`ip link` / `ip neigh` output).
pub fn mac_after(text: &str, key: &str) -> Option<Mac> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key)?;
    parse_mac(words.next()?)
}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The generator's AF_XDP socket and the headers it sends with.
pub struct XdpPath {
    port: XskPort,
    headers: OuterHeaders,
}

impl XdpPath {
    /// Opens the AF_XDP port on `ifname` in `netns` for the replies to `headers.src`.
    pub fn open(netns: &str, ifname: &str, headers: OuterHeaders) -> Result<XdpPath> {
        let port = XskPort::open(
            netns,
            ifname,
            Redirect::WireguardTransport(headers.src.port()),
        )?;
        Ok(XdpPath { port, headers })
    }

    pub fn info(&self) -> &PortInfo {
        self.port.info()
    }

    pub fn headers(&self) -> &OuterHeaders {
        &self.headers
    }

    /// The headers to change: tests send deliberately wrong frames with it.
    pub fn headers_mut(&mut self) -> &mut OuterHeaders {
        &mut self.headers
    }

    /// Frames the kernel dropped on the way to the socket so far.
    pub fn rx_drops(&self) -> u64 {
        self.port.rx_drops()
    }

    /// The socket's kernel drop counters, for notes.
    pub fn kernel_drops(&self) -> String {
        self.port.kernel_drops()
    }

    /// Sends `load` as [`Generator::send`] does, through the AF_XDP socket.
    pub fn send(&mut self, generator: &Generator, load: &Load, times: &SendTimes) -> Result<Sent> {
        let mut heads = [[0u8; OUTER_LEN]; SEND_BATCH];
        let (port, headers) = (&mut self.port, &self.headers);
        generator.send_via(load, times, |batch| {
            let batch = &batch[..batch.len().min(SEND_BATCH)];
            for (head, msg) in heads.iter_mut().zip(batch) {
                headers.write(head, msg.len())?;
            }
            let frames = heads.iter().map(|h| &h[..]).zip(batch.iter().copied());
            Ok(port.transmit(frames)?)
        })
    }

    /// Receives until `stop` as [`Generator::receive`] does, from the AF_XDP socket; frames that
    /// are not datagrams from the gateway's endpoint count as other.
    pub fn receive(
        &mut self,
        generator: &Generator,
        arrivals: &Mutex<Arrivals>,
        stop: &AtomicBool,
    ) -> Result<ReplyCounts> {
        let mut counts = ReplyCounts::default();
        let headers = self.headers;
        while !stop.load(Ordering::Relaxed) {
            // The tally is locked once per batch, after the wait: the caller watches it fill.
            let mut tally = None;
            self.port.receive(50, |frame| {
                let arrivals = tally.get_or_insert_with(|| {
                    (
                        arrivals.lock().unwrap_or_else(|e| e.into_inner()),
                        monotonic_ns(),
                        now(),
                    )
                });
                match headers.reply_payload(frame) {
                    Some(dgram) => generator.tally_reply(
                        dgram,
                        arrivals.2,
                        arrivals.1,
                        &mut arrivals.0,
                        None,
                        &mut counts,
                    ),
                    None => counts.other += 1,
                }
            })?;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn headers() -> OuterHeaders {
        OuterHeaders {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40_001),
            dst: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 51_820),
        }
    }

    #[test]
    fn frames_parse_back_as_the_datagram_they_carry() {
        let h = headers();
        let payload = [4u8, 0, 0, 0, 9, 9, 9, 9, 7, 7];
        let mut head = [0u8; OUTER_LEN];
        h.write(&mut head, payload.len()).unwrap();
        let mut frame = [&head[..], &payload[..]].concat();
        {
            let p = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
                panic!("not IPv4")
            };
            assert_eq!(ip.header().source_addr(), *h.src.ip());
            assert_eq!(ip.header().destination_addr(), *h.dst.ip());
            assert!(ip.header().dont_fragment());
            let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else {
                panic!("not UDP")
            };
            assert_eq!((u.source_port(), u.destination_port()), (40_001, 51_820));
            assert_eq!(u.payload(), payload);
        }
        // The same frame seen from the other end: a reply swaps both ends.
        let back = OuterHeaders {
            src_mac: h.dst_mac,
            dst_mac: h.src_mac,
            src: h.dst,
            dst: h.src,
        };
        assert_eq!(back.reply_payload(&mut frame).unwrap(), &payload[..]);
        assert!(
            h.reply_payload(&mut frame).is_none(),
            "not from the gateway"
        );
        frame.truncate(OUTER_LEN + 3);
        assert!(back.reply_payload(&mut frame).is_none(), "truncated");
    }

    #[test]
    fn macs_come_from_ip_link_and_neighbour_lines() {
        let link = "7: eth0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue \
                    state UP mode DEFAULT group default qlen 1000\\    link/ether \
                    b2:0c:1e:3d:4f:5a brd ff:ff:ff:ff:ff:ff link-netns gw";
        assert_eq!(
            mac_after(link, "link/ether"),
            Some([0xb2, 0x0c, 0x1e, 0x3d, 0x4f, 0x5a])
        );
        let neigh = "198.18.0.1 lladdr 6e:01:02:03:04:05 REACHABLE\n";
        assert_eq!(mac_after(neigh, "lladdr"), Some([0x6e, 1, 2, 3, 4, 5]));
        assert_eq!(mac_after("198.18.0.1 FAILED", "lladdr"), None);
        assert_eq!(mac_after("lladdr 6e:01:02", "lladdr"), None);
    }
}
