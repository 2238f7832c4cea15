//! The WireGuard load generator: a real peer of the gateway under test, in the lab's client
//! namespace.
//!
//! It makes its own key pair, completes the Noise IKpsk2 handshake with the gateway through
//! `wgproto::Device` over a UDP socket (whitepaper §5.4; retransmissions come from the device's
//! own timers), and then sends transport messages sealed with its keypair: inner IPv4/UDP
//! packets from its tunnel address to the sink behind the gateway, each carrying a probe
//! ([`crate::probe`]). Packets are sealed ahead of time into a pool, off the timed path; the
//! send loop hands them to the kernel with `sendmmsg(2)`, in batches paced by
//! [`crate::pacing::Pacer`] at a set rate or as fast as it can, and records each packet's send
//! time in a [`SendTimes`] table the sink reads. When the rate outruns the pool, the loop seals
//! the next batch itself and the point is marked sender-limited.
//!
//! The reverse direction: [`Generator::receive`] opens what the gateway sends back (the sink's
//! replies, encrypted by the gateway) with the same keypair and tallies the probes inside.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use rand_core::OsRng;
use wgproto::config::{InterfaceConfig, PeerConfig};
use wgproto::constants::{REKEY_AFTER_TIME, TRANSPORT_HEADER_LEN};
use wgproto::device::{Device, KeySlot, Output};
use wgproto::keypair::{sealed_len, Keypair};
use wgproto::keys::{PresharedKey, PrivateKey, PublicKey};
use wgproto::time::Timestamp;

use crate::cpu_split::{CpuSnapshot, CpuSplit};
use crate::pacing::Pacer;
use crate::packets::SizeMix;
use wire::ipv4;

use crate::probe::{write_probe, Arrivals, SendTimes, INNER_IP_UDP, MIN_PROBE_PACKET};
use crate::session::wall_clock;
use crate::udp_batch::{monotonic_ns, recv_batch, send_batch, socket_in, RecvBatch};

/// Packets per `sendmmsg(2)`.
pub const SEND_BATCH: usize = 32;
/// The tunnel MTU the generator pads for (wg-quick's default on a 1500-byte underlay).
pub const MTU: usize = 1420;
/// A keypair older than this is replaced before the next point. Not before REKEY_AFTER_TIME:
/// the device initiates only when its keypair is due (before, `ensure_fresh` waited 15 s for a
/// handshake that was never sent, and a full run lost every point after its first 100 s); and
/// well before REJECT_AFTER_TIME, which the points after the check (seconds each) never reach.
const FRESH_FOR: Duration = REKEY_AFTER_TIME.saturating_add(Duration::from_secs(2));

/// Where the generator lives and whom it talks to.
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    /// The client namespace (`/run/netns/<name>`).
    pub netns: String,
    /// The generator's underlay address (port 0: any).
    pub bind: SocketAddrV4,
    /// The gateway's WireGuard endpoint.
    pub gateway: SocketAddrV4,
    pub gateway_public: PublicKey,
    pub preshared: Option<PresharedKey>,
    /// The generator's tunnel address: the gateway must have it in this peer's AllowedIPs.
    pub tunnel_addr: Ipv4Addr,
    /// The inner packets' source port.
    pub tunnel_port: u16,
    /// The sink behind the gateway.
    pub sink: SocketAddrV4,
}

/// One timed send.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub mix: SizeMix,
    /// Packets per second; `None` is as fast as possible.
    pub rate_pps: Option<f64>,
    pub duration: Duration,
    /// The first sequence number (runs use disjoint ranges so late packets are told apart).
    pub first_seq: u64,
    /// Sealed-ahead packets at most (memory: about this many times the sealed size).
    pub pool: usize,
}

/// What a timed send did (the generator's, or the sink's in the reverse direction).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sent {
    pub packets: u64,
    /// Inner IPv4 bytes of those packets.
    pub inner_bytes: u64,
    pub elapsed: Duration,
    /// Datagrams the kernel refused (counted as sent by nobody).
    pub refused: u64,
    /// The sender fell behind the asked rate (for the generator also: its pool of sealed
    /// packets ran dry while packets were due): it, not the gateway, set the pace.
    pub sender_limited: bool,
    /// Where the cores went while a full-speed send ran (none for a paced one).
    pub cpu: Option<CpuSplit>,
}

impl Sent {
    pub fn pps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Datagrams from the gateway that carried no probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyCounts {
    /// Transport messages that failed to open.
    pub failed: u64,
    /// Handshake, cookie and keepalive messages.
    pub other: u64,
}

/// A peer with a session to the gateway.
pub struct Generator {
    cfg: GeneratorConfig,
    socket: UdpSocket,
    device: Device,
    keypair: Arc<Keypair>,
    handshake_at: Instant,
}

/// The protocol clock (CLOCK_MONOTONIC) the generator's keypair is used with.
pub fn now() -> Timestamp {
    Timestamp::from_nanos(monotonic_ns())
}

impl Generator {
    /// Opens the socket in the client namespace and completes a handshake with the gateway,
    /// as the peer with `private` (the gateway must know its public key).
    pub fn connect(cfg: GeneratorConfig, private: PrivateKey) -> Result<Generator> {
        let socket = socket_in(&cfg.netns, cfg.bind)?;
        socket.connect(cfg.gateway)?;
        let mut iface = InterfaceConfig::new(private);
        iface.listen_port = socket.local_addr()?.port();
        let mut device = Device::new(&iface);
        let mut peer = PeerConfig::new(cfg.gateway_public);
        peer.preshared_key = cfg.preshared.clone();
        peer.allowed_ips = vec!["0.0.0.0/0".parse().context("prefix")?];
        peer.endpoint = Some(SocketAddr::V4(cfg.gateway));
        device
            .set_peer(now(), peer)
            .map_err(|e| anyhow::anyhow!("generator set_peer: {e:?}"))?;
        let keypair = handshake(&mut device, &socket, Duration::from_secs(15))?;
        Ok(Generator {
            cfg,
            socket,
            device,
            keypair,
            handshake_at: Instant::now(),
        })
    }

    /// A fresh handshake if the keypair is near REKEY_AFTER_TIME.
    pub fn ensure_fresh(&mut self) -> Result<()> {
        if self.handshake_at.elapsed() < FRESH_FOR {
            return Ok(());
        }
        // `handshake` asks the device for the initiation itself.
        self.keypair = handshake(&mut self.device, &self.socket, Duration::from_secs(15))?;
        self.handshake_at = Instant::now();
        Ok(())
    }

    /// The generator's underlay source (the gateway's endpoint for this peer).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    /// Where the probes go from now on (tests aim them at a port nobody listens on).
    pub fn set_sink(&mut self, sink: SocketAddrV4) {
        self.cfg.sink = sink;
    }

    /// The inner IPv4/UDP packet `seq` of `size` bytes with a probe stamped `stamp_ns`, written
    /// at `out[..size]` (`out` at least `size` bytes; sizes below [`MIN_PROBE_PACKET`] are
    /// raised to it).
    pub fn inner_packet(&self, out: &mut [u8], size: usize, seq: u64, stamp_ns: u64) -> usize {
        write_inner(
            out,
            SocketAddrV4::new(self.cfg.tunnel_addr, self.cfg.tunnel_port),
            self.cfg.sink,
            size,
            seq,
            stamp_ns,
        )
    }

    /// Seals inner packet `seq` into `slot` (a transport message ready for the socket); returns
    /// its length and the inner size.
    fn seal(&self, slot: &mut [u8], mix: SizeMix, seq: u64) -> Result<(usize, usize)> {
        let size = mix.size(seq as usize).max(MIN_PROBE_PACKET);
        let need = sealed_len(size, MTU);
        let len = self.inner_packet(
            &mut slot[TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + size],
            size,
            seq,
            monotonic_ns(),
        );
        let sealed = self
            .keypair
            .seal_in_place(now(), &mut slot[..need], len, MTU)
            .map_err(|e| anyhow::anyhow!("seal: {e}"))?;
        Ok((sealed.len, size))
    }

    /// Sends `load` to the sink with `sendmmsg(2)`, recording send times in `times`.
    pub fn send(&self, load: &Load, times: &SendTimes) -> Result<Sent> {
        self.send_via(load, times, |batch| {
            Ok(send_batch(&self.socket, None, batch))
        })
    }

    /// Sends `load` to the sink through `transmit`, which takes a batch of sealed transport
    /// messages and returns how many it sent (0: the batch was refused), recording send times
    /// in `times`. The pacing, the pool and the accounting are the same for every way out.
    pub fn send_via(
        &self,
        load: &Load,
        times: &SendTimes,
        mut transmit: impl FnMut(&[&[u8]]) -> Result<usize>,
    ) -> Result<Sent> {
        let planned = match load.rate_pps {
            Some(r) => (r * load.duration.as_secs_f64()).ceil() as usize,
            None => usize::MAX,
        };
        let mut pool = SealedPool::new(
            load.pool.clamp(SEND_BATCH, planned.max(SEND_BATCH)),
            load.first_seq,
            largest(load.mix),
        );
        pool.refill(self, load.mix, usize::MAX)?;
        let mut sent = Sent::default();
        // After the pool is sealed: the split covers the sending only.
        let cpu_before = load.rate_pps.is_none().then(CpuSnapshot::take);
        let start = monotonic_ns();
        let end = start + load.duration.as_nanos() as u64;
        let mut seq = load.first_seq;
        let pacer = Pacer::new(start, load.rate_pps, SEND_BATCH);
        loop {
            let t = monotonic_ns();
            if t >= end {
                break;
            }
            let due = pacer.due(t, sent.packets);
            if due > 0 && pool.filled == 0 {
                sent.sender_limited = true;
            }
            let slots = pool.next(due);
            if !slots.is_empty() {
                let n = slots.len();
                let t = monotonic_ns();
                for k in 0..n as u64 {
                    times.set(seq + k, t);
                }
                let took = transmit(&slots)?.min(n);
                // A refused batch (ENOBUFS, ICMP error reported back) is skipped: its counters
                // are spent, the gateway sees a gap, and the sink counts the packets as lost.
                // A partly taken batch keeps its rest in the pool for the next call.
                let took = if took == 0 {
                    sent.refused += n as u64;
                    n
                } else {
                    took
                };
                sent.inner_bytes += pool.consume(took);
                sent.packets += took as u64;
                seq += took as u64;
                continue;
            }
            if pool.filled < pool.len() {
                // Seal ahead while nothing is due (or, at full rate, because the pool is dry).
                pool.refill(self, load.mix, SEND_BATCH)?;
                continue;
            }
            if let Some(at) = pacer.next_batch_at(sent.packets) {
                let wait = at.min(end).saturating_sub(monotonic_ns());
                std::thread::sleep(Duration::from_nanos(wait));
            }
        }
        let elapsed = monotonic_ns() - start;
        sent.elapsed = Duration::from_nanos(elapsed);
        sent.sender_limited |= pacer.fell_behind(sent.packets, elapsed);
        sent.cpu = cpu_before.map(|b| b.split(&CpuSnapshot::take(), sent.elapsed));
        Ok(sent)
    }

    /// Receives transport messages from the gateway until `stop`, opens them with the session
    /// keypair and tallies the probes inside into `arrivals` (latency from the stamp the
    /// sender wrote, or `times` when given); the tally is locked once per batch, so the caller
    /// can watch it fill. Returns (datagrams that failed to open, other datagrams).
    pub fn receive(
        &self,
        arrivals: &Mutex<Arrivals>,
        times: Option<&SendTimes>,
        stop: &AtomicBool,
    ) -> Result<(u64, u64)> {
        let mut batch = RecvBatch::new(64, 2048);
        let mut counts = ReplyCounts::default();
        while !stop.load(Ordering::Relaxed) {
            let n = recv_batch(&self.socket, &mut batch)?;
            if n == 0 {
                continue;
            }
            let t = monotonic_ns();
            let ts = now();
            let mut arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            for i in 0..n {
                self.tally_reply(batch.get_mut(i), ts, t, &mut arrivals, times, &mut counts);
            }
        }
        Ok((counts.failed, counts.other))
    }

    /// Opens one datagram from the gateway (`dgram`: the UDP payload) in place and tallies the
    /// probe inside into `arrivals`, received at `t` (ns) / `ts`; what is not a probe goes to
    /// `counts`. The one place every receive path (UDP socket, AF_XDP) opens replies.
    pub fn tally_reply(
        &self,
        dgram: &mut [u8],
        ts: Timestamp,
        t: u64,
        arrivals: &mut Arrivals,
        times: Option<&SendTimes>,
        counts: &mut ReplyCounts,
    ) {
        if dgram.first() != Some(&4) {
            counts.other += 1; // handshake or cookie traffic: not part of the load
            return;
        }
        let Ok(opened) = self.keypair.open_in_place(ts, dgram) else {
            counts.failed += 1;
            return;
        };
        if opened.plaintext.is_empty() {
            counts.other += 1; // keepalive
            return;
        }
        let expect_dst = SocketAddrV4::new(self.cfg.tunnel_addr, self.cfg.tunnel_port);
        let inner = &dgram[opened.plaintext];
        match inner_udp_payload(inner, expect_dst) {
            Some((payload, ip_len)) => {
                arrivals.record(payload, ip_len, t, |p| match times {
                    Some(tt) => tt.get(p.seq),
                    None => Some(p.stamp_ns),
                });
            }
            None => {
                // Not our flow, or mangled headers: counts as corrupted.
                arrivals.record(&[], 0, t, |_| None);
            }
        }
    }
}

/// Writes an IPv4/UDP packet of `size` bytes (TTL 64, valid checksums) from `src` to `dst`
/// with a probe as its payload into `out`; returns `size`.
pub fn write_inner(
    out: &mut [u8],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    size: usize,
    seq: u64,
    stamp_ns: u64,
) -> usize {
    let size = size.max(MIN_PROBE_PACKET);
    let (hdr, payload) = out[..size].split_at_mut(INNER_IP_UDP);
    write_probe(payload, seq, stamp_ns);
    let mut ip = etherparse::Ipv4Header::new(
        (size - ipv4::HEADER_LEN) as u16,
        ipv4::DEFAULT_TTL,
        etherparse::IpNumber::UDP,
        src.ip().octets(),
        dst.ip().octets(),
    )
    .expect("a payload below 64 KiB");
    ip.header_checksum = ip.calc_header_checksum();
    let udp = etherparse::UdpHeader::with_ipv4_checksum(src.port(), dst.port(), &ip, payload)
        .expect("a payload below 64 KiB");
    hdr[..ipv4::HEADER_LEN].copy_from_slice(&ip.to_bytes());
    hdr[ipv4::HEADER_LEN..].copy_from_slice(&udp.to_bytes());
    size
}

/// The UDP payload and IPv4 total length of `ip` if it is an IPv4/UDP packet to `dst`
/// (padding after the IPv4 total length is ignored).
pub fn inner_udp_payload(ip: &[u8], dst: SocketAddrV4) -> Option<(&[u8], usize)> {
    let total = ipv4::Packet::new_checked(ip).ok()?.total_len();
    let ip = ip.get(..total)?;
    let p = SlicedPacket::from_ip(ip).ok()?;
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        return None;
    };
    if v4.header().destination_addr() != *dst.ip() {
        return None;
    }
    match &p.transport {
        Some(TransportSlice::Udp(u)) if u.destination_port() == dst.port() => {
            Some((u.payload(), total))
        }
        _ => None,
    }
}

/// How many packets of `mix` a pool of sealed-ahead packets holds in `bytes` of memory.
pub fn pool_slots(mix: SizeMix, bytes: usize) -> usize {
    (bytes / SealedPool::stride(largest(mix))).max(SEND_BATCH)
}

/// The largest inner packet of `mix` (what a pool slot must hold).
fn largest(mix: SizeMix) -> usize {
    let most = match mix {
        SizeMix::Fixed(n) => n,
        SizeMix::Imix => crate::packets::IMIX_PATTERN
            .iter()
            .copied()
            .max()
            .unwrap_or(MTU),
    };
    most.clamp(MIN_PROBE_PACKET, MTU)
}

/// A ring of transport messages sealed ahead: `head` is the next to send, `filled` how many
/// are ready, `next_seq` the sequence number the next sealed packet gets.
struct SealedPool {
    buf: Vec<u8>,
    stride: usize,
    /// (sealed length, inner length) per slot.
    lens: Vec<(usize, usize)>,
    head: usize,
    filled: usize,
    next_seq: u64,
}

impl SealedPool {
    /// `slots` packets of at most `largest` inner bytes each.
    fn new(slots: usize, first_seq: u64, largest: usize) -> Self {
        let stride = Self::stride(largest);
        SealedPool {
            buf: vec![0; slots * stride],
            stride,
            lens: vec![(0, 0); slots],
            head: 0,
            filled: 0,
            next_seq: first_seq,
        }
    }

    /// Bytes per slot for inner packets of at most `largest` bytes (whole cache lines).
    fn stride(largest: usize) -> usize {
        sealed_len(largest, MTU).next_multiple_of(64)
    }

    fn len(&self) -> usize {
        self.lens.len()
    }

    /// Seals up to `max` more packets into free slots.
    fn refill(&mut self, generator: &Generator, mix: SizeMix, max: usize) -> Result<()> {
        let mut n = 0;
        while self.filled < self.len() && n < max {
            let at = (self.head + self.filled) % self.len();
            let slot = &mut self.buf[at * self.stride..(at + 1) * self.stride];
            self.lens[at] = generator.seal(slot, mix, self.next_seq)?;
            self.next_seq += 1;
            self.filled += 1;
            n += 1;
        }
        Ok(())
    }

    /// Up to `due` (and one batch) ready packets from `head`, contiguous in the ring.
    fn next(&self, due: usize) -> Vec<&[u8]> {
        let n = due
            .min(self.filled)
            .min(SEND_BATCH)
            .min(self.len() - self.head);
        (self.head..self.head + n)
            .map(|i| &self.buf[i * self.stride..i * self.stride + self.lens[i].0])
            .collect()
    }

    /// Marks `n` packets sent; returns their inner bytes.
    fn consume(&mut self, n: usize) -> u64 {
        let bytes = (self.head..self.head + n)
            .map(|i| self.lens[i].1 as u64)
            .sum();
        self.head = (self.head + n) % self.len();
        self.filled -= n;
        bytes
    }
}

/// Completes the handshake the device starts (or has started): sends what it asks, feeds it
/// what the gateway answers, until a current keypair is installed or `limit` passes.
fn handshake(device: &mut Device, socket: &UdpSocket, limit: Duration) -> Result<Arc<Keypair>> {
    let deadline = Instant::now() + limit;
    let first = device.peers().next().map(|p| p.id());
    if let Some(p) = first {
        device.request_handshake(now(), wall_clock(), p, &mut OsRng);
    }
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        while let Some(out) = device.poll(now(), wall_clock(), &mut OsRng) {
            match out {
                Output::SendHandshake { bytes, .. } => {
                    socket.send(&bytes).context("send handshake")?;
                }
                Output::KeypairInstalled {
                    keypair,
                    slot: KeySlot::Current,
                    ..
                } => return Ok(keypair),
                _ => {}
            }
        }
        match socket.recv(&mut buf) {
            Ok(n) if n > 0 && buf[0] != 4 => {
                let src = socket.peer_addr()?;
                // A bad or stale message is the gateway's business; keep waiting.
                let _ =
                    device.handle_handshake(now(), wall_clock(), src, &buf[..n], false, &mut OsRng);
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // ICMP port unreachable while the gateway starts: retry on the device's timer.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e).context("receive handshake"),
        }
    }
    bail!("no handshake with the gateway within {limit:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgproto::config::InterfaceConfig;

    /// Sends what `from` has queued to `to`; returns whether anything was sent.
    fn pump(from: &mut Device, to: &mut Device, at: Timestamp, src: SocketAddr) -> bool {
        let mut sent = false;
        while let Some(out) = from.poll(at, wall_clock(), &mut OsRng) {
            if let Output::SendHandshake { bytes, .. } = out {
                let _ = to.handle_handshake(at, wall_clock(), src, &bytes, false, &mut OsRng);
                sent = true;
            }
        }
        sent
    }

    #[test]
    fn a_keypair_as_old_as_fresh_for_makes_the_device_initiate() {
        let gw_key = PrivateKey::generate(&mut OsRng);
        let client_key = PrivateKey::generate(&mut OsRng);
        let mut gw = Device::new(&InterfaceConfig::new(gw_key.clone()));
        let mut client = Device::new(&InterfaceConfig::new(client_key.clone()));
        let t0 = Timestamp::from_nanos(1_000_000_000);
        let gw_addr: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let client_addr: SocketAddr = "192.0.2.2:40000".parse().unwrap();
        let mut to_gw = PeerConfig::new(gw_key.public_key());
        to_gw.endpoint = Some(gw_addr);
        let peer = client.set_peer(t0, to_gw).unwrap();
        gw.set_peer(t0, PeerConfig::new(client_key.public_key()))
            .unwrap();
        client.request_handshake(t0, wall_clock(), peer, &mut OsRng);
        assert!(pump(&mut client, &mut gw, t0, client_addr), "initiation");
        assert!(pump(&mut gw, &mut client, t0, gw_addr), "response");
        let _ = pump(&mut client, &mut gw, t0, client_addr);

        // What `ensure_fresh` asks once the keypair is FRESH_FOR old: a new initiation.
        let later = t0 + FRESH_FOR;
        client.request_handshake(later, wall_clock(), peer, &mut OsRng);
        assert!(
            pump(&mut client, &mut gw, later, client_addr),
            "no initiation after {FRESH_FOR:?}: `ensure_fresh` would wait for nothing"
        );
    }
}
