//! The client side of the control socket: what `dataplane stats` and `dataplane capture` run.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use pcap_file::pcap::{PcapReader, PcapWriter};

use super::stats::StatsSnapshot;
use crate::capture::session::Shared;
use crate::capture::{CaptureAccepted, CaptureRequest};

/// Largest answer accepted (thousands of peers fit).
const MAX_ANSWER: u64 = 64 << 20;

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
    UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the gateway's control socket {} (is `dataplane --config ...` running? the path is [control] socket in its config)",
            socket.display()
        )
    })
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

/// What a capture brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOutcome {
    pub accepted: CaptureAccepted,
    /// Packets written to the output.
    pub packets: u64,
    /// The stream ended in the middle of a record (the gateway stopped).
    pub cut_short: bool,
}

/// Runs a capture on the gateway at `socket` and writes it to `out` as a pcap file, each
/// packet flushed as it arrives (a Ctrl-C leaves a readable file). Returns when the gateway
/// ends the stream: count or duration reached, or the gateway stopping.
pub fn capture(
    socket: &Path,
    request: &CaptureRequest,
    out: impl Write,
) -> anyhow::Result<CaptureOutcome> {
    let conn = connect(socket)?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let line = serde_json::to_string(request)?;
    (&conn).write_all(format!("capture {line}\n").as_bytes())?;
    let mut reader = BufReader::new(&conn);
    let mut answer = String::new();
    (&mut reader)
        .take(64 << 10)
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
    // From here on the stream is quiet while no packet matches: wait as long as it takes.
    conn.set_read_timeout(None)?;
    let mut input = PcapReader::new(reader).context("the gateway's pcap stream")?;
    let sink = RefCell::new(BufWriter::new(out));
    let mut output = PcapWriter::with_header(Shared(&sink), input.header())
        .context("writing the pcap header")?;
    sink.borrow_mut().flush()?;
    let mut packets = 0u64;
    let mut cut_short = false;
    while let Some(packet) = input.next_packet() {
        match packet {
            Ok(p) => {
                output.write_packet(&p).context("writing a packet")?;
                sink.borrow_mut().flush().context("writing a packet")?;
                packets += 1;
            }
            Err(_) => {
                cut_short = true;
                break;
            }
        }
    }
    sink.borrow_mut().flush()?;
    Ok(CaptureOutcome {
        accepted,
        packets,
        cut_short,
    })
}
