//! The sink's AF_XDP path: in the lab's server namespace, an AF_XDP socket on the server's veth
//! ([`crate::xsk_port`], copy mode) takes every IPv4/UDP datagram to the sink's port before the
//! kernel's UDP stack sees it ([`Redirect::AnyUdp`]; ARP, ND, ping and iperf3 stay with the
//! kernel). Each probe is checked exactly as the UDP sink checks it (the shared
//! [`SinkState`]: CRC-32, sequence, one-way time), and the reverse direction's probes leave
//! through the same socket as prebuilt Ethernet/IPv4/UDP frames, so at the top loads the
//! server's UDP stack is out of the measurement on both directions.
//!
//! Replies go to the source the last probe came from: the gateway's NAT mapping of the
//! generator's flow (the dataplane's own mapping, or the port iptables MASQUERADE chose), from
//! the sink's address and port, to the MAC the server's neighbour table holds for it.
//! [`SinkPath`] chooses between this sink and the UDP one ([`SinkKind`]).

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wire::{checksum, ipv4, udp};

use crate::loadgen::Sent;
use crate::loadgen_xdp::{udp_datagram, OuterHeaders, OUTER_LEN};
use crate::packets::SizeMix;
use crate::probe::{Arrivals, SendTimes, Tally};
use crate::sink::{blast_probes, lock, Sink, SinkState, BLAST_BATCH};
use crate::udp_batch::monotonic_ns;
use crate::xsk_port::{PortInfo, Redirect, XskPort};

/// How the sink receives and answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    /// An AF_XDP socket (copy mode) on the server's veth; falls back to `udp` with the reason
    /// when it cannot attach.
    #[default]
    Xdp,
    /// A UDP socket, `recvmmsg(2)` / `sendmmsg(2)`.
    Udp,
}

/// The sink in use.
pub enum SinkPath {
    Udp(Sink),
    Xdp(XdpSink),
}

impl SinkPath {
    /// Starts the sink of `kind` on `bind` (interface `ifname`) in namespace `netns`; an AF_XDP
    /// sink that cannot attach falls back to UDP. Returns the sink and a line saying which one
    /// runs, and why.
    pub fn start(
        kind: SinkKind,
        netns: &str,
        ifname: &str,
        bind: SocketAddrV4,
    ) -> Result<(SinkPath, String)> {
        if kind == SinkKind::Udp {
            return Ok((
                SinkPath::Udp(Sink::start(netns, bind)?),
                "UDP socket (asked)".into(),
            ));
        }
        match XdpSink::start(netns, ifname, bind) {
            Ok(x) => {
                let i = x.info();
                let path = format!(
                    "AF_XDP {} mode on the server's {} (XDP program in {} mode)",
                    i.bind_mode, i.ifname, i.attach_mode
                );
                Ok((SinkPath::Xdp(x), path))
            }
            Err(e) => {
                let path = format!("UDP socket (AF_XDP could not attach: {e:#})");
                eprintln!("sink: {path}");
                Ok((SinkPath::Udp(Sink::start(netns, bind)?), path))
            }
        }
    }

    /// See [`Sink::expect`].
    pub fn expect(&self, first: u64, capacity: u64, times: Option<Arc<SendTimes>>) -> Arrivals {
        match self {
            SinkPath::Udp(s) => s.expect(first, capacity, times),
            SinkPath::Xdp(s) => s.state.expect(first, capacity, times),
        }
    }

    pub fn tally(&self) -> Tally {
        match self {
            SinkPath::Udp(s) => s.tally(),
            SinkPath::Xdp(s) => s.state.tally(),
        }
    }

    /// The NAT-mapped source of the generator's flow as the sink saw it.
    pub fn last_source(&self) -> Option<SocketAddr> {
        match self {
            SinkPath::Udp(s) => s.last_source(),
            SinkPath::Xdp(s) => s.state.last_source(),
        }
    }

    /// See [`Sink::blast`].
    pub fn blast(
        &self,
        dst: SocketAddrV4,
        mix: SizeMix,
        rate_pps: Option<f64>,
        duration: Duration,
        first_seq: u64,
    ) -> Result<Sent> {
        match self {
            SinkPath::Udp(s) => Ok(s.blast(dst, mix, rate_pps, duration, first_seq)),
            SinkPath::Xdp(s) => s.blast(dst, mix, rate_pps, duration, first_seq),
        }
    }

    /// Whether this is the AF_XDP sink.
    pub fn is_xdp(&self) -> bool {
        matches!(self, SinkPath::Xdp(_))
    }
}

/// The AF_XDP sink. Dropping it stops its thread and detaches its XDP program.
pub struct XdpSink {
    /// The receiving thread holds the lock while it waits for frames (up to [`RX_WAIT_MS`]); a
    /// reverse point raises `sending` and holds it while it transmits.
    port: Arc<Mutex<XskPort>>,
    sending: Arc<AtomicBool>,
    state: Arc<SinkState>,
    netns: String,
    ifname: String,
    local: SocketAddrV4,
    info: PortInfo,
    thread: Option<JoinHandle<Result<()>>>,
}

/// How long the receiving thread waits for frames per turn.
const RX_WAIT_MS: i32 = 20;

impl XdpSink {
    /// Attaches to `ifname` in `netns` and starts receiving the datagrams to `local`.
    pub fn start(netns: &str, ifname: &str, local: SocketAddrV4) -> Result<XdpSink> {
        let port = XskPort::open(netns, ifname, Redirect::AnyUdp(local.port()))?;
        let info = port.info().clone();
        let port = Arc::new(Mutex::new(port));
        let sending = Arc::new(AtomicBool::new(false));
        let state = SinkState::new();
        let (p, s, st) = (port.clone(), sending.clone(), state.clone());
        let thread = std::thread::Builder::new()
            .name("bench-sink-xdp".into())
            .spawn(move || receive_loop(&p, &s, &st, local))
            .context("spawn the AF_XDP sink thread")?;
        Ok(XdpSink {
            port,
            sending,
            state,
            netns: netns.to_owned(),
            ifname: ifname.to_owned(),
            local,
            info,
            thread: Some(thread),
        })
    }

    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// Frames the kernel dropped on the way to the socket so far (rx ring full, fill ring
    /// empty): the sink fell behind.
    pub fn rx_drops(&self) -> u64 {
        lock(&self.port).rx_drops()
    }

    /// The socket's kernel drop counters, for notes.
    pub fn kernel_drops(&self) -> String {
        lock(&self.port).kernel_drops()
    }

    /// Sends probes to `dst` as [`Sink::blast`] does, as frames through the AF_XDP socket.
    pub fn blast(
        &self,
        dst: SocketAddrV4,
        mix: SizeMix,
        rate_pps: Option<f64>,
        duration: Duration,
        first_seq: u64,
    ) -> Result<Sent> {
        let headers = self.reply_headers(dst)?;
        self.sending.store(true, Ordering::Relaxed);
        let mut port = lock(&self.port);
        let mut heads = [[0u8; OUTER_LEN]; BLAST_BATCH];
        let mut failed = None;
        let sent = blast_probes(mix, rate_pps, duration, first_seq, |probes| {
            for (head, probe) in heads.iter_mut().zip(probes) {
                if let Err(e) = write_reply_headers(&headers, head, probe) {
                    failed.get_or_insert(e);
                    return 0;
                }
            }
            let frames = heads.iter().map(|h| &h[..]).zip(probes.iter().copied());
            match port.transmit(frames) {
                Ok(n) => n,
                Err(e) => {
                    failed.get_or_insert(e.into());
                    0
                }
            }
        });
        drop(port);
        self.sending.store(false, Ordering::Relaxed);
        match failed {
            Some(e) => Err(e.context("the AF_XDP sink's transmit")),
            None => Ok(sent),
        }
    }

    /// The headers of the replies to `dst`: the server veth's MAC, and the MAC the server's
    /// neighbour table holds for `dst` (on the server's wire: the gateway's LAN address). An
    /// entry that is missing is resolved by one ping first, as the kernel's UDP path would
    /// resolve it by sending.
    fn reply_headers(&self, dst: SocketAddrV4) -> Result<OuterHeaders> {
        match OuterHeaders::resolve(&self.netns, &self.ifname, self.local, dst) {
            Ok(h) => Ok(h),
            Err(first) => {
                let ip = dst.ip().to_string();
                let _ = ping_once(&self.netns, &ip);
                OuterHeaders::resolve(&self.netns, &self.ifname, self.local, dst)
                    .with_context(|| format!("{first:#}; after a ping of {ip}"))
            }
        }
    }
}

/// One ping of `ip` from `netns`, to fill the neighbour table.
fn ping_once(netns: &str, ip: &str) -> Result<()> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "ping", "-c", "1", "-W", "1", ip])
        .output()
        .context("cannot run ping")?;
    if !out.status.success() {
        bail!("ping {ip} from {netns} failed");
    }
    Ok(())
}

/// The reply's outer headers for `probe`, with the UDP checksum filled (RFC 768): the
/// gateways' NAT (iptables' conntrack among them) may check it, and the UDP sink's kernel
/// sends one.
fn write_reply_headers(
    headers: &OuterHeaders,
    head: &mut [u8; OUTER_LEN],
    probe: &[u8],
) -> Result<()> {
    headers.write(head, probe.len())?;
    let udp_at = OUTER_LEN - udp::HEADER_LEN;
    let sum = udp::pseudo_header_sum(
        *headers.src.ip(),
        *headers.dst.ip(),
        ipv4::PROTO_UDP,
        udp::HEADER_LEN + probe.len(),
    ) + checksum::sum(&head[udp_at..])
        + checksum::sum(probe);
    // Zero means "no checksum" in UDP over IPv4: a sum of zero is sent as all ones.
    let c = match !checksum::fold(sum) {
        0 => 0xffff,
        c => c,
    };
    head[udp_at + 6..udp_at + 8].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

impl Drop for XdpSink {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn receive_loop(
    port: &Mutex<XskPort>,
    sending: &AtomicBool,
    state: &SinkState,
    local: SocketAddrV4,
) -> Result<()> {
    while !state.stop.load(Ordering::Relaxed) {
        if sending.load(Ordering::Relaxed) {
            // A reverse point holds the port; nothing for the sink arrives meanwhile.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let mut port = lock(port);
        // The frames are checked inside the socket's callback: they go back to the fill ring
        // after it.
        state.record_batch(|record| {
            let (mut t, mut source) = (0, None);
            let got = port.receive(RX_WAIT_MS, |frame| {
                if t == 0 {
                    t = monotonic_ns();
                }
                match udp_datagram(frame) {
                    Some(d) if d.dst == local => {
                        record(t, &frame[d.payload]);
                        source = Some(SocketAddr::V4(d.src));
                    }
                    // The XDP program passes only datagrams to the sink's port; anything else
                    // here is mangled, and counts as corrupted.
                    _ => record(t, &[]),
                }
            });
            (got, source)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn replies_carry_a_udp_checksum_that_verifies_and_parse_back() {
        let headers = OuterHeaders {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 3],
            src: SocketAddrV4::new(Ipv4Addr::new(172, 23, 0, 2), 9_000),
            dst: SocketAddrV4::new(Ipv4Addr::new(172, 23, 0, 3), 40_123),
        };
        for len in [24usize, 36, 1392, 1393] {
            let mut probe = vec![0u8; len];
            crate::probe::write_probe(&mut probe, 7, 99);
            let mut head = [0u8; OUTER_LEN];
            write_reply_headers(&headers, &mut head, &probe).unwrap();
            let frame = [&head[..], &probe[..]].concat();
            let d = udp_datagram(&frame).expect("parses");
            assert_eq!((d.src, d.dst), (headers.src, headers.dst));
            assert_eq!(&frame[d.payload.clone()], &probe[..]);
            let dgram = &frame[OUTER_LEN - udp::HEADER_LEN..];
            let u = udp::Packet::new_checked(dgram).unwrap();
            assert_ne!(u.checksum(), 0, "{len}: sent without a checksum");
            assert!(
                u.verify_checksum(*headers.src.ip(), *headers.dst.ip()),
                "{len} bytes: bad UDP checksum"
            );
            let mut broken = frame.clone();
            *broken.last_mut().unwrap() ^= 1;
            let u = udp::Packet::new_checked(&broken[OUTER_LEN - udp::HEADER_LEN..]).unwrap();
            assert!(!u.verify_checksum(*headers.src.ip(), *headers.dst.ip()));
        }
    }

    #[test]
    fn frames_that_are_not_unfragmented_ipv4_udp_do_not_parse() {
        let headers = OuterHeaders {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 3],
            src: SocketAddrV4::new(Ipv4Addr::new(172, 23, 0, 2), 9_000),
            dst: SocketAddrV4::new(Ipv4Addr::new(172, 23, 0, 3), 40_123),
        };
        let probe = [0u8; 40];
        let mut head = [0u8; OUTER_LEN];
        write_reply_headers(&headers, &mut head, &probe).unwrap();
        let frame = [&head[..], &probe[..]].concat();
        for cut in 0..OUTER_LEN {
            assert!(udp_datagram(&frame[..cut]).is_none(), "{cut} bytes");
        }
        let mut fragment = frame.clone();
        fragment[14 + 6] |= 0x20; // more fragments
        assert!(udp_datagram(&fragment).is_none());
        let mut tcp = frame.clone();
        tcp[14 + 9] = 6;
        assert!(udp_datagram(&tcp).is_none());
    }
}
