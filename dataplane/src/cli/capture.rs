//! `dataplane capture`: asks the running gateway for a capture over its control socket and
//! writes the pcap stream to a file or stdout, with a progress line and a summary on stderr.
//! Ctrl-C (or SIGTERM) ends the capture cleanly: the file then holds every whole packet
//! received so far.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::ops::capture::CaptureRequest;
use ::ops::client::{self, CaptureOutcome, CaptureStream};
use fastpath::capture::CapturePoint;

use super::ops::control_socket;

/// What `dataplane capture` was asked for.
#[derive(Debug)]
pub struct CaptureArgs {
    pub point: CapturePoint,
    /// The output file; `-` is stdout.
    pub write: PathBuf,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub snaplen: u32,
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
}

/// How often the progress line is redrawn on a terminal.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// `dataplane capture`.
pub fn capture(args: CaptureArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataplane capture: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &CaptureArgs) -> anyhow::Result<()> {
    let socket = control_socket(args.config.as_deref(), args.socket.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let request = CaptureRequest {
        point: args.point,
        snaplen: args.snaplen,
        count: args.count,
        duration_ms: args
            .duration
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
    };
    let skipped_before = skipped_total(&socket);
    let stream = CaptureStream::start(&socket, &request)?;
    let to_stdout = args.write.as_os_str() == "-";
    let target = if to_stdout {
        "stdout".to_string()
    } else {
        args.write.display().to_string()
    };
    let a = stream.accepted();
    eprintln!(
        "dataplane capture: capturing at {} on {} worker{} ({}, snap length {}) into {target}; Ctrl-C to stop",
        a.point,
        a.workers,
        if a.workers == 1 { "" } else { "s" },
        match a.linktype {
            1 => "Ethernet",
            101 => "raw IP",
            _ => "link type unknown",
        },
        a.snaplen,
    );
    // Created only once the gateway accepted: a refused capture leaves no empty file behind.
    let out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        // The tunnel's cleartext: readable by its owner only, also when the file existed.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&args.write)
            .and_then(|f| {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                Ok(f)
            })
            .map_err(|e| anyhow::anyhow!("cannot write {target}: {e}"))?;
        Box::new(file)
    };
    let live = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let outcome = stream.run(out, &stop, |packets| {
        if live && last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            let skipped = skipped_since(&socket, skipped_before);
            eprint!("\r{packets} packets written, {skipped} skipped   ");
        }
    })?;
    if live {
        eprintln!();
    }
    eprintln!(
        "{}",
        summary(&outcome, &target, skipped_since(&socket, skipped_before))
    );
    Ok(())
}

/// Packets the workers' capture taps skipped so far (over all workers), from the stats.
fn skipped_total(socket: &Path) -> Option<u64> {
    client::request_stats(socket)
        .ok()
        .map(|s| s.workers.iter().map(|w| w.counter("capture_skipped")).sum())
}

/// Skipped packets since `before`, as text ("unknown" when the stats are unreadable).
fn skipped_since(socket: &Path, before: Option<u64>) -> String {
    match (before, skipped_total(socket)) {
        (Some(b), Some(now)) => now.saturating_sub(b).to_string(),
        _ => "unknown".into(),
    }
}

/// The closing line on stderr.
fn summary(o: &CaptureOutcome, target: &str, skipped: String) -> String {
    let why = if o.stopped {
        "stopped"
    } else if o.cut_short {
        "the gateway stopped mid-packet; that packet is left out"
    } else {
        "done"
    };
    format!(
        "dataplane capture: {why}: {} packet{} at {} written to {target}, {skipped} skipped (reader too slow)",
        o.packets,
        if o.packets == 1 { "" } else { "s" },
        o.accepted.point,
    )
}
