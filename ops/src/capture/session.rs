//! The server side of `dataplane capture`: a [`CaptureSession`] attaches one ring per worker
//! at the requested point, and [`CaptureSession::stream`] drains the rings into a pcap stream
//! on the client's connection until the client goes away, the requested count or duration is
//! reached, or the gateway stops. Dropping the session detaches every tap, on every path out.
//!
//! Protocol, after the request line `capture {json CaptureRequest}`: the server answers one
//! JSON line ([`CaptureAccepted`], or `{"error": ...}` and close), then a classic pcap stream
//! (global header, then records) until it closes the connection. The client stops a capture
//! by closing its end.

use std::cell::RefCell;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{Endianness, TsResolution};
use serde::{Deserialize, Serialize};

use fastpath::capture::{CapturePoint, CaptureRing};
use fastpath::counters::WorkerCounters;

/// Largest snap length accepted (pcap's customary maximum for a full frame).
pub const SNAPLEN_MAX: u32 = 65_535;
/// Smallest: enough for the WireGuard header (type, receiver, counter) over the larger
/// underlay, Ethernet + IPv6 + UDP (78 bytes; over IPv4 it is 58), so that a short capture
/// shows the same for both.
pub const SNAPLEN_MIN: u32 = (wire::ethernet::HEADER_LEN
    + wire::ipv6::HEADER_LEN
    + wire::udp::HEADER_LEN
    + wire::wireguard::TRANSPORT_HEADER_LEN) as u32;
/// Memory budget of one worker's ring; the slot count follows from the snap length.
pub const RING_BYTES: usize = 2 << 20;
const SLOTS_MIN: usize = 64;
const SLOTS_MAX: usize = 4096;
/// How long a client may take to read what is sent before the capture gives up on it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause when every ring was empty.
const IDLE: Duration = Duration::from_millis(5);
/// How often the session looks for a client that went away while no packet flows.
const HANGUP_CHECK: Duration = Duration::from_millis(100);

/// What the client asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRequest {
    pub point: CapturePoint,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Stop after this many packets.
    #[serde(default)]
    pub count: Option<u64>,
    /// Stop after this long.
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// The server's first answer line when it accepts a capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureAccepted {
    pub point: CapturePoint,
    /// pcap LINKTYPE of the stream (1 Ethernet, 101 raw IP).
    pub linktype: u32,
    pub snaplen: u32,
    /// Workers tapped (one ring each).
    pub workers: usize,
    /// Slots per ring.
    pub slots: usize,
}

/// How a streamed capture ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Records sent to the client.
    pub packets: u64,
    /// Packets the workers skipped because a ring was full.
    pub skipped: u64,
}

/// Slots per ring for a snap length: the ring stays within [`RING_BYTES`].
pub fn slots_for(snaplen: u32) -> usize {
    (RING_BYTES / snaplen.max(1) as usize).clamp(SLOTS_MIN, SLOTS_MAX)
}

/// Rings attached to the workers' taps; detached on drop.
pub struct CaptureSession {
    workers: Vec<Arc<WorkerCounters>>,
    rings: Vec<Arc<CaptureRing>>,
    accepted: CaptureAccepted,
    request: CaptureRequest,
}

impl CaptureSession {
    /// Attaches a fresh ring to every worker's tap. Refused when `workers` is empty, when
    /// another capture is attached, or for a snap length out of range. Call from one thread
    /// (the control socket's), so that two starts cannot race.
    pub fn start(
        workers: &[Arc<WorkerCounters>],
        request: &CaptureRequest,
    ) -> Result<CaptureSession, String> {
        if workers.is_empty() {
            return Err("this gateway has no workers to capture from".into());
        }
        if !(SNAPLEN_MIN..=SNAPLEN_MAX).contains(&request.snaplen) {
            return Err(format!(
                "snaplen {} out of range; allowed {SNAPLEN_MIN}..={SNAPLEN_MAX}",
                request.snaplen
            ));
        }
        if workers.iter().any(|w| w.capture.is_attached()) {
            return Err(
                "another capture is running on this gateway; one at a time (stop it first)".into(),
            );
        }
        let slots = slots_for(request.snaplen);
        let rings: Vec<Arc<CaptureRing>> = workers
            .iter()
            .map(|_| {
                Arc::new(CaptureRing::new(
                    request.point,
                    slots,
                    request.snaplen as usize,
                ))
            })
            .collect();
        for (w, r) in workers.iter().zip(&rings) {
            w.capture.attach(r.clone());
        }
        Ok(CaptureSession {
            workers: workers.to_vec(),
            rings,
            accepted: CaptureAccepted {
                point: request.point,
                linktype: u32::from(request.point.datalink()),
                snaplen: request.snaplen,
                workers: workers.len(),
                slots,
            },
            request: request.clone(),
        })
    }

    pub fn accepted(&self) -> &CaptureAccepted {
        &self.accepted
    }

    /// Packets skipped so far, over all rings.
    pub fn skipped(&self) -> u64 {
        self.rings.iter().map(|r| r.skipped()).sum()
    }

    /// Sends the accept line and the pcap stream on `conn` until the client closes, the
    /// count or duration is reached, or `stop` is set. Consumes the session: the taps are
    /// detached when this returns, whatever happened.
    pub fn stream(self, conn: &UnixStream, stop: &AtomicBool) -> io::Result<CaptureSummary> {
        conn.set_nonblocking(false)?;
        conn.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let out = RefCell::new(BufWriter::new(conn));
        let line = serde_json::to_string(&self.accepted).map_err(io::Error::other)?;
        out.borrow_mut().write_all(line.as_bytes())?;
        out.borrow_mut().write_all(b"\n")?;
        let header = PcapHeader {
            snaplen: self.accepted.snaplen,
            datalink: self.request.point.datalink(),
            ts_resolution: TsResolution::NanoSecond,
            endianness: if cfg!(target_endian = "big") {
                Endianness::Big
            } else {
                Endianness::Little
            },
            ..PcapHeader::default()
        };
        let mut pcap = PcapWriter::with_header(Shared(&out), header).map_err(pcap_io)?;
        out.borrow_mut().flush()?;
        let deadline = self
            .request
            .duration_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let limit = self.request.count.unwrap_or(u64::MAX);
        let mut sent = 0u64;
        let mut last_check = Instant::now();
        'capture: while !stop.load(Ordering::Relaxed)
            && sent < limit
            && deadline.is_none_or(|d| Instant::now() < d)
        {
            let mut got = 0u64;
            for ring in &self.rings {
                while sent < limit {
                    let written = ring.pop_with(|f| {
                        pcap.write_packet(&PcapPacket::new(f.timestamp, f.orig_len, f.data))
                    });
                    match written {
                        None => break,
                        Some(Err(e)) => return Err(pcap_io(e)),
                        Some(Ok(_)) => {
                            sent += 1;
                            got += 1;
                        }
                    }
                }
            }
            if got == 0 || last_check.elapsed() >= HANGUP_CHECK {
                out.borrow_mut().flush()?;
                if last_check.elapsed() >= HANGUP_CHECK {
                    last_check = Instant::now();
                    if client_gone(conn)? {
                        break 'capture;
                    }
                }
            }
            if got == 0 {
                std::thread::sleep(IDLE);
            }
        }
        let skipped = self.skipped();
        drop(self);
        let _ = out.borrow_mut().flush();
        Ok(CaptureSummary {
            packets: sent,
            skipped,
        })
    }
}

impl Drop for CaptureSession {
    fn drop(&mut self) {
        for w in &self.workers {
            w.capture.detach();
        }
    }
}

/// The client sends nothing after its request: end of stream (or an error) on a
/// non-blocking read means it went away.
fn client_gone(conn: &UnixStream) -> io::Result<bool> {
    conn.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let gone = match (&*conn).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    conn.set_nonblocking(false)?;
    Ok(gone)
}

fn pcap_io(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// A pcap writer's sink that its owner can still flush: the pcap writer offers no way to reach
/// its writer, and a buffered stream must be flushed when the packets pause.
struct Shared<'a, W: Write>(&'a RefCell<W>);

impl<W: Write> Write for Shared<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_snap_length_keeps_the_wireguard_header_over_ipv6() {
        // Ethernet 14 + IPv6 40 + UDP 8 + type, reserved, receiver, counter 16.
        assert_eq!(SNAPLEN_MIN, 78);
        let workers = vec![Arc::new(WorkerCounters::default())];
        let mut request = CaptureRequest {
            point: CapturePoint::WireIn,
            snaplen: SNAPLEN_MIN - 1,
            count: None,
            duration_ms: None,
        };
        let e = CaptureSession::start(&workers, &request).err().unwrap();
        assert!(e.contains("out of range; allowed 78..=65535"), "{e}");
        request.snaplen = SNAPLEN_MIN;
        let session = CaptureSession::start(&workers, &request).unwrap();
        assert_eq!(session.accepted.snaplen, 78);
    }
}
