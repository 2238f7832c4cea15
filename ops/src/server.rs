//! The control socket server: a Unix stream socket (path from `[control] socket`) where
//! `dataplane stats` asks the running gateway for a [`StatsSnapshot`](super::StatsSnapshot)
//! and `dataplane capture` for a packet capture.
//!
//! Protocol: the client writes one request line, the server answers with one JSON line and
//! closes. Requests: `stats` -> a [`StatsSnapshot`](super::StatsSnapshot); `capture {json}` ->
//! a packet capture streamed as pcap until the client closes (see [`crate::capture::session`]);
//! anything else -> `{"error": "..."}`. One thread serves connections one after another, each
//! bounded in size and time, so a stuck client delays others by at most [`IO_TIMEOUT`] and can
//! never hold memory; a capture streams from a thread of its own (one at a time), joined on
//! stop. The socket is mode 0600, a stale one from a killed run is replaced, and it is removed
//! on stop.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use tracing::{debug, info, warn};

use super::stats::StatsSource;
use crate::capture::{CaptureRequest, CaptureSession};

/// Longest request line accepted.
pub const MAX_REQUEST: u64 = 256;
/// Read/write bound per connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A running control socket server; stop it with [`ControlServer::stop`] (or drop).
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` and serves `source` on it.
    pub fn start(path: &Path, source: Arc<dyn StatsSource>) -> anyhow::Result<ControlServer> {
        remove_stale(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("[control] socket: cannot create {}", dir.display()))?;
        }
        // 0600 from the moment its name exists (no window between bind and chmod).
        let listener = slowpath::private_socket::bind_private(path)
            .with_context(|| format!("[control] socket: cannot bind {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || accept_loop(listener, source, thread_stop))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving, waits for the thread, removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A socket left by a killed run is removed; one a live gateway answers on is an error; a
/// file that is not a socket is left alone.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "[control] socket: {} exists and is not a socket; remove it or choose another path",
            path.display()
        );
    }
    if UnixStream::connect(path).is_ok() {
        bail!(
            "[control] socket: {} is in use by a running gateway; stop it first or set another [control] socket",
            path.display()
        );
    }
    std::fs::remove_file(path)
        .with_context(|| format!("[control] socket: cannot remove stale {}", path.display()))
}

fn accept_loop(listener: UnixListener, source: Arc<dyn StatsSource>, stop: Arc<AtomicBool>) {
    // At most one capture streams at a time, on its own thread so that stats keep being
    // answered; it is joined before this loop returns, so it never outlives the server.
    let mut capture: Option<JoinHandle<()>> = None;
    while !stop.load(Ordering::Relaxed) {
        if capture.as_ref().is_some_and(|t| t.is_finished()) {
            let _ = capture.take().map(JoinHandle::join);
        }
        match listener.accept() {
            Ok((conn, _)) => {
                if let Err(e) = serve(conn, &source, &stop, &mut capture) {
                    debug!("control connection: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                warn!("control socket accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    if let Some(t) = capture.take() {
        let _ = t.join();
    }
}

fn serve(
    conn: UnixStream,
    source: &Arc<dyn StatsSource>,
    stop: &Arc<AtomicBool>,
    capture: &mut Option<JoinHandle<()>>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    // Byte by byte up to the newline: a capture's connection must not lose what follows.
    BufReader::with_capacity(1, (&conn).take(MAX_REQUEST)).read_line(&mut line)?;
    let request = line.trim();
    if let Some(args) = request.strip_prefix("capture") {
        return match start_capture(args, source.as_ref()) {
            Ok(session) => {
                let stop = stop.clone();
                let t = std::thread::Builder::new()
                    .name("capture".into())
                    .spawn(move || stream_capture(session, conn, &stop))?;
                *capture = Some(t);
                Ok(())
            }
            Err(e) => reply(&conn, &error_json(&e)),
        };
    }
    reply(&conn, &answer(request, source.as_ref()))
}

fn reply(conn: &UnixStream, answer: &str) -> std::io::Result<()> {
    let mut w = conn;
    w.write_all(answer.as_bytes())?;
    w.write_all(b"\n")
}

/// Parses `capture {json}` and attaches the rings (in the accept thread, so two captures
/// cannot start at once).
fn start_capture(args: &str, source: &dyn StatsSource) -> Result<CaptureSession, String> {
    let request: CaptureRequest = serde_json::from_str(args.trim())
        .map_err(|e| format!("bad capture request: {e}; expected capture {{\"point\": \"wire-in\", \"snaplen\": 2048}}"))?;
    CaptureSession::start(&source.capture_workers(), &request)
}

fn stream_capture(session: CaptureSession, conn: UnixStream, stop: &AtomicBool) {
    let point = session.accepted().point;
    info!(%point, "capture started");
    match session.stream(&conn, stop) {
        Ok(s) => info!(%point, packets = s.packets, skipped = s.skipped, "capture ended"),
        Err(e) => info!(%point, "capture ended: {e}"),
    }
}

/// The JSON answer to one request line.
pub fn answer(request: &str, source: &dyn StatsSource) -> String {
    match request {
        "stats" => serde_json::to_string(&source.snapshot())
            .unwrap_or_else(|e| error_json(&format!("cannot serialise the stats: {e}"))),
        other => error_json(&format!(
            "unknown request {:?}; this gateway answers: stats, capture",
            other.chars().take(40).collect::<String>()
        )),
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}
