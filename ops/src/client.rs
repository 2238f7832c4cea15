//! The client side of the control socket: what `dataplane stats` and `dataplane capture` run.

use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

use super::stats::StatsSnapshot;
use crate::capture::splitter::PcapSplitter;
use crate::capture::{CaptureAccepted, CaptureRequest};

/// Largest answer accepted (thousands of peers fit).
const MAX_ANSWER: u64 = 64 << 20;
/// How often a capture looks at its stop flag while the stream is quiet.
const CAPTURE_POLL: Duration = Duration::from_millis(200);

/// Asks the gateway on `socket` for its stats.
pub fn request_stats(socket: &Path) -> anyhow::Result<StatsSnapshot> {
    let line = request(socket, "stats")?;
    let value: serde_json::Value =
        serde_json::from_str(&line).context("the gateway's answer is not JSON")?;
    if let Some(e) = value.get("error").and_then(|e| e.as_str()) {
        bail!("the gateway refused: {e}");
    }
    serde_json::from_value(value).context("the gateway's stats have an unexpected shape")
}

fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    match UnixStream::connect(socket) {
        Ok(s) => Ok(s),
        // The gateway may well run; this user may not talk to it (the socket is root's, 0600).
        Err(e) if e.kind() == ErrorKind::PermissionDenied => bail!(
            "permission denied on the gateway's control socket {}: only its owner may use it (mode 0600, normally root); run this command as root, e.g. with sudo",
            socket.display()
        ),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot reach the gateway's control socket {} (is `dataplane --config ...` running? the path is [control] socket in its config)",
                socket.display()
            )
        }),
    }
}

/// Sends one request line, returns the answer line.
pub fn request(socket: &Path, request: &str) -> anyhow::Result<String> {
    let conn = connect(socket)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    (&conn).write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_ANSWER))
        .read_line(&mut line)
        .context("reading the gateway's answer")?;
    if line.is_empty() {
        bail!("the gateway closed the control connection without an answer");
    }
    Ok(line)
}

/// A capture the gateway accepted, not yet streamed: see [`CaptureStream::run`].
pub struct CaptureStream {
    conn: UnixStream,
    accepted: CaptureAccepted,
}

/// What a capture brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOutcome {
    pub accepted: CaptureAccepted,
    /// Whole packets written to the output.
    pub packets: u64,
    /// The gateway's stream ended in the middle of a record (the gateway stopped); the
    /// partial record was not written.
    pub cut_short: bool,
    /// The capture ended because the stop flag was set (Ctrl-C), not by the gateway.
    pub stopped: bool,
}

impl CaptureStream {
    /// Asks the gateway on `socket` for a capture; an error carries the gateway's reason
    /// (unknown point, snap length out of range, another capture running).
    pub fn start(socket: &Path, request: &CaptureRequest) -> anyhow::Result<CaptureStream> {
        let conn = connect(socket)?;
        conn.set_write_timeout(Some(Duration::from_secs(5)))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let line = serde_json::to_string(request)?;
        (&conn).write_all(format!("capture {line}\n").as_bytes())?;
        // Byte by byte up to the newline: what follows is the pcap stream, read raw.
        let mut answer = String::new();
        BufReader::with_capacity(1, (&conn).take(64 << 10))
            .read_line(&mut answer)
            .context("reading the gateway's answer")?;
        if answer.is_empty() {
            bail!("the gateway closed the control connection without an answer");
        }
        let value: serde_json::Value =
            serde_json::from_str(&answer).context("the gateway's answer is not JSON")?;
        if let Some(e) = value.get("error").and_then(|e| e.as_str()) {
            bail!("the gateway refused: {e}");
        }
        let accepted: CaptureAccepted = serde_json::from_value(value)
            .context("the gateway's capture answer has an unexpected shape")?;
        Ok(CaptureStream { conn, accepted })
    }

    pub fn accepted(&self) -> &CaptureAccepted {
        &self.accepted
    }

    /// Writes the stream to `out` as a pcap file, whole records only, flushed as they arrive,
    /// until the gateway ends it (count or duration reached, gateway stopping) or `stop` is
    /// set (closing the connection, which ends the capture on the gateway). `progress` is
    /// called with the packets written so far, at least every 200 ms (`CAPTURE_POLL`).
    pub fn run(
        self,
        out: impl Write,
        stop: &AtomicBool,
        mut progress: impl FnMut(u64),
    ) -> anyhow::Result<CaptureOutcome> {
        // The stream is quiet while no packet matches: wait as long as it takes, in steps.
        self.conn.set_read_timeout(Some(CAPTURE_POLL))?;
        let mut out = BufWriter::new(out);
        let mut split = PcapSplitter::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut stopped = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
            match (&self.conn).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    split.extend(&buf[..n]);
                    while let Some(piece) = split.next_piece().map_err(anyhow::Error::msg)? {
                        out.write_all(piece).context("writing the capture")?;
                    }
                    if let Some(h) = split.header() {
                        let linktype = u32::from(h.datalink);
                        if linktype != self.accepted.linktype {
                            bail!(
                                "the gateway's pcap stream has link type {linktype}, its answer said {}",
                                self.accepted.linktype
                            );
                        }
                    }
                    out.flush().context("writing the capture")?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e).context("reading the capture stream"),
            }
            progress(split.records());
        }
        out.flush().context("writing the capture")?;
        if split.header().is_none() && !stopped {
            bail!("the gateway ended the capture before sending its pcap header");
        }
        Ok(CaptureOutcome {
            accepted: self.accepted,
            packets: split.records(),
            cut_short: !stopped && split.pending() > 0,
            stopped,
        })
    }
}
