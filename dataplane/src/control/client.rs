//! The client side of the control socket: what `dataplane stats` runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::stats::StatsSnapshot;

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

/// Sends one request line, returns the answer line.
pub fn request(socket: &Path, request: &str) -> anyhow::Result<String> {
    let conn = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the gateway's control socket {} (is `dataplane --config ...` running? the path is [control] socket in its config)",
            socket.display()
        )
    })?;
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
