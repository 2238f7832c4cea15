//! Root test of `dataplane capture` against the real gateway in the one-armed lab: while the
//! client pings the server and fetches a page through the tunnel, a capture at each point is
//! written by the CLI over the control socket and read back by tshark, which must see what the
//! article's `tcpdump` saw on `eth0` and `wg0`: WireGuard transport data at wire-in, the
//! client's ICMP and TCP in cleartext at decrypted, the gateway's LAN address as the source at
//! nat, Ethernet frames both ways at wire-out. Also: a capture ended by Ctrl-C leaves a file
//! tshark reads to the end and the taps detached; unknown points, bad snap lengths and a second
//! concurrent capture are refused with the reason; a capture running when the gateway gets
//! SIGTERM ends with a readable file and does not hold up the clean exit.
//!
//! Without root, the same command line runs against a control socket served from fake
//! workers whose taps the test feeds: framing, truncation, `--count`, Ctrl-C and detaching.
//!
//! The lab test is skipped with a message when not root. It needs tshark
//! (`dataplane/scripts/install-deps.sh`).
//! Run with `sudo -E cargo test -p dataplane --test ops_capture -- --nocapture`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use fastpath::capture::CapturePoint;
use fastpath::counters::WorkerCounters;
use lab::{is_root, CLIENT_TUNNEL_ADDR, GATEWAY_LAN_ADDR, ONE_ARMED_CLIENT_ADDR, SERVER_ADDR};
use ops::capture::splitter::PcapSplitter;
use ops::server::ControlServer;
use ops::stats::worker_stats;
use ops::{client, StatsSnapshot, StatsSource};

mod ops_support;
use ops_support::lab::{OpsLab, TempDir, BIN};

/// A `dataplane capture` this test started; killed on drop if still running.
struct CaptureCli {
    child: Child,
    file: PathBuf,
    log: PathBuf,
}

impl CaptureCli {
    fn start(control: &Path, dir: &Path, point: &str, extra: &[&str]) -> CaptureCli {
        let file = dir.join(format!("{point}.pcap"));
        let log = dir.join(format!("{point}.log"));
        let child = Command::new(BIN)
            .args(["capture", "--point", point, "-w", file.to_str().unwrap()])
            .args(["--socket", control.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("dataplane capture starts");
        CaptureCli { child, file, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C, as an operator would stop it.
    fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -INT of our own capture");
    }

    /// Waits for the CLI to exit (successfully) and returns its stderr.
    fn wait(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(
                    status.success(),
                    "dataplane capture failed ({status}):\n{log}"
                );
                // Tunnel cleartext: readable by its owner only.
                let mode = std::os::unix::fs::PermissionsExt::mode(
                    &std::fs::metadata(&self.file).unwrap().permissions(),
                );
                assert_eq!(mode & 0o777, 0o600, "{} mode {mode:o}", self.file.display());
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "dataplane capture still running after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for CaptureCli {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The capture point each worker reports in its stats.
fn running(control: &Path) -> Vec<Option<CapturePoint>> {
    let snap = client::request_stats(control).expect("stats over the control socket");
    snap.workers.iter().map(|w| w.capture).collect()
}

/// Waits until the stats say the capture at `point` runs (`Some`) or none runs (`None`).
fn wait_running(control: &Path, point: Option<CapturePoint>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = running(control);
        if !now.is_empty() && now.iter().all(|p| *p == point) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stats show capture {now:?}, expected {point:?} on every worker"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pings the server three times and fetches its page, through the tunnel.
fn traffic(lab: &OpsLab) {
    for _ in 0..3 {
        lab.ping_from_client(SERVER_ADDR)
            .expect("ping through the tunnel");
    }
    let body = lab
        .http_get_from_client(&format!("http://{SERVER_ADDR}/"))
        .expect("HTTP through the tunnel");
    assert_eq!(body, lab.server_index_body().as_bytes());
}

/// `tshark -r file -T fields -e ...` (WireGuard decoded on the listen port): one row of fields
/// per packet. The file must read to its end: no "cut short" record.
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        file.to_str().unwrap(),
        "-n",
        "-d",
        "udp.port==51820,wg",
    ])
    .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark -r {}: {err}", file.display());
    assert!(
        !err.contains("cut short") && !err.contains("appears to be damaged"),
        "tshark: {err}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

fn has(rows: &[Vec<String>], want: &[Option<&str>]) -> bool {
    rows.iter().any(|r| {
        want.iter()
            .zip(r)
            .all(|(w, got)| w.is_none_or(|w| w == got))
    })
}

#[test]
fn captures_at_every_point_read_back_by_tshark() {
    if !is_root() {
        eprintln!(
            "SKIPPED captures_at_every_point_read_back_by_tshark: needs root (namespaces, XDP); run as root"
        );
        return;
    }
    assert!(
        Command::new("tshark").arg("-v").output().is_ok(),
        "tshark is missing: run dataplane/scripts/install-deps.sh"
    );
    let started = Instant::now();
    let mut lab = OpsLab::start("ops-capture", "");
    let control = lab.control.clone();
    let dir = lab.tmp.path().to_path_buf();
    wait_running(&control, None);
    refusals(&lab);
    let client = CLIENT_TUNNEL_ADDR.to_string();
    let server = SERVER_ADDR.to_string();
    let gw_lan = GATEWAY_LAN_ADDR.to_string();

    // wire-in, ended by --duration: WireGuard transport data (type 4) from the client's
    // underlay address, in Ethernet frames.
    let mut cap = CaptureCli::start(&control, &dir, "wire-in", &["--duration", "6"]);
    wait_running(&control, Some(CapturePoint::WireIn));
    traffic(&lab);
    let log = cap.wait(Duration::from_secs(15));
    eprintln!("{log}");
    assert!(log.contains("capturing at wire-in"), "{log}");
    assert!(log.contains("done:"), "{log}");
    let rows = tshark(&cap.file, &["frame.protocols", "ip.src", "wg.type"]);
    eprintln!("wire-in: {} packets", rows.len());
    let transport = rows
        .iter()
        .filter(|r| r[1] == ONE_ARMED_CLIENT_ADDR.to_string() && r[2] == "4")
        .count();
    assert!(transport >= 8, "wg.type 4 from the client: {rows:?}");
    assert!(rows.iter().all(|r| r[0].starts_with("eth:")), "{rows:?}");
    assert!(
        log.contains(&format!("{} packets at wire-in", rows.len())),
        "the summary counts what the file holds: {log}"
    );

    // decrypted, ended by Ctrl-C: the client's ICMP echo and TCP in cleartext (raw IP, as on
    // wg0), and the replies to it before they are sealed.
    let mut cap = CaptureCli::start(&control, &dir, "decrypted", &[]);
    wait_running(&control, Some(CapturePoint::Decrypted));
    // One capture at a time: a second one is refused while this one runs.
    let second = Command::new(BIN)
        .args(["capture", "--point", "nat", "-w"])
        .arg(dir.join("second.pcap"))
        .args(["--socket", control.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(err.contains("another capture is running"), "{err}");
    assert!(
        !dir.join("second.pcap").exists(),
        "a refused capture writes no file"
    );
    traffic(&lab);
    // The last reply may still be on its way into the ring.
    std::thread::sleep(Duration::from_millis(300));
    cap.interrupt();
    let log = cap.wait(Duration::from_secs(5));
    eprintln!("{log}");
    assert!(log.contains("stopped:"), "{log}");
    wait_running(&control, None);
    let rows = tshark(
        &cap.file,
        &[
            "frame.protocols",
            "ip.src",
            "ip.dst",
            "icmp.type",
            "tcp.dstport",
        ],
    );
    eprintln!("decrypted: {} packets", rows.len());
    assert!(rows.iter().all(|r| r[0].starts_with("raw:ip")), "{rows:?}");
    let (c, s) = (Some(client.as_str()), Some(server.as_str()));
    assert!(
        has(&rows, &[None, c, s, Some("8")]),
        "echo request: {rows:?}"
    );
    assert!(has(&rows, &[None, s, c, Some("0")]), "echo reply: {rows:?}");
    assert!(
        has(&rows, &[None, c, s, Some(""), Some("80")]),
        "TCP to port 80: {rows:?}"
    );
    // Forwarding goes on with the taps detached.
    traffic(&lab);

    // nat, ended by --count: the LAN side, source rewritten to the gateway's address; the
    // replies as they arrived, to that address.
    let mut cap = CaptureCli::start(&control, &dir, "nat", &["--count", "5"]);
    wait_running(&control, Some(CapturePoint::Nat));
    traffic(&lab);
    let log = cap.wait(Duration::from_secs(10));
    eprintln!("{log}");
    let rows = tshark(&cap.file, &["ip.src", "ip.dst", "icmp.type"]);
    assert_eq!(rows.len(), 5, "--count 5: {rows:?}");
    let g = Some(gw_lan.as_str());
    assert!(
        has(&rows, &[g, s, Some("8")]),
        "NATed echo request: {rows:?}"
    );
    assert!(
        has(&rows, &[s, g, Some("0")]),
        "reply before the reverse: {rows:?}"
    );
    assert!(
        rows.iter().all(|r| r[0] != client && r[1] != client),
        "no tunnel address on the LAN side: {rows:?}"
    );

    // wire-out, to stdout (`-w -`) with a small snap length: Ethernet frames towards the
    // server (NATed) and towards the client (WireGuard transport data).
    let out_file = dir.join("wire-out.pcap");
    let mut child = Command::new(BIN)
        .args([
            "capture",
            "--point",
            "wire-out",
            "-w",
            "-",
            "--snaplen",
            "96",
        ])
        .args(["--duration", "6", "--socket", control.to_str().unwrap()])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_running(&control, Some(CapturePoint::WireOut));
    traffic(&lab);
    let status = child.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("into stdout"), "{log}");
    let rows = tshark(
        &out_file,
        &[
            "frame.protocols",
            "eth.type",
            "ip.src",
            "ip.dst",
            "wg.type",
            "frame.cap_len",
            "frame.len",
        ],
    );
    eprintln!("wire-out: {} packets", rows.len());
    assert!(
        rows.iter()
            .all(|r| r[0].starts_with("eth:") && r[1] == "0x0800"),
        "{rows:?}"
    );
    assert!(
        has(&rows, &[None, None, g, s]),
        "NATed to the server: {rows:?}"
    );
    let peer = ONE_ARMED_CLIENT_ADDR.to_string();
    assert!(
        has(&rows, &[None, None, g, Some(peer.as_str()), Some("4")]),
        "WireGuard data to the client: {rows:?}"
    );
    // Truncated to the snap length, the original length kept.
    let cut = rows
        .iter()
        .filter(|r| r[5] == "96" && r[6].parse::<u32>().unwrap() > 96)
        .count();
    assert!(cut > 0, "no frame cut at 96 bytes: {rows:?}");

    wait_running(&control, None);
    let snap = client::request_stats(&control).unwrap();
    let skipped: u64 = snap
        .workers
        .iter()
        .map(|w| w.counters["capture_skipped"])
        .sum();
    assert_eq!(skipped, 0, "a slow capture reader at this rate?");

    // A capture does not hold up the gateway's stop: SIGTERM ends the stream (the file keeps
    // every whole packet) and the gateway exits cleanly.
    let mut cap = CaptureCli::start(&control, &dir, "wire-in", &["-s", "128"]);
    wait_running(&control, Some(CapturePoint::WireIn));
    traffic(&lab);
    lab.signal_gateway("TERM").unwrap();
    let status = lab.wait_gateway_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "gateway exit: {status:?}"
    );
    let log = cap.wait(Duration::from_secs(5));
    assert!(log.contains("done:"), "{log}");
    let rows = tshark(&cap.file, &["wg.type"]);
    assert!(rows.iter().any(|r| r[0] == "4"), "{rows:?}");
    eprintln!("captures: {:?}", started.elapsed());
}

/// Unknown points and bad snap lengths, refused by the command line and by the gateway.
fn refusals(lab: &OpsLab) {
    let control = &lab.control;
    let file = lab.tmp.path().join("x.pcap");

    // The command line refuses an unknown point itself, naming the valid ones.
    let out = Command::new(BIN)
        .args(["capture", "--point", "eth0", "-w"])
        .arg(&file)
        .args(["--socket", control.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown capture point \"eth0\"")
            && err.contains("wire-in, decrypted, nat or wire-out"),
        "{err}"
    );
    assert!(!file.exists());

    // So does the gateway, for a client that asks for one anyway, and for bad snap lengths.
    let answer = client::request(control, r#"capture {"point": "eth0", "snaplen": 2048}"#).unwrap();
    assert!(
        answer.contains("\"error\"") && answer.contains("unknown variant `eth0`"),
        "{answer}"
    );
    let answer = client::request(control, r#"capture {"point": "nat", "snaplen": 10}"#).unwrap();
    assert!(answer.contains("snaplen 10 out of range"), "{answer}");
    let out = Command::new(BIN)
        .args(["capture", "--point", "nat", "--snaplen", "70000", "-w"])
        .arg(&file)
        .args(["--socket", control.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("78..=65535"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing was attached by any of it.
    assert!(running(control).iter().all(Option::is_none));
}

/// Workers without a data plane: the test plays the worker and calls their taps itself.
struct FakeWorkers(Vec<Arc<WorkerCounters>>);

impl StatsSource for FakeWorkers {
    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            workers: self
                .0
                .iter()
                .enumerate()
                .map(|(i, c)| worker_stats(i, c))
                .collect(),
            ..Default::default()
        }
    }

    fn capture_workers(&self) -> Vec<Arc<WorkerCounters>> {
        self.0.clone()
    }
}

/// (captured length, original length, first byte) of every record of a pcap file, and its
/// link type and snap length; read with the client's own splitter, which checks the framing.
fn records(file: &Path) -> (u32, u32, Vec<(u32, u32, u8)>) {
    let bytes = std::fs::read(file).unwrap();
    let mut split = PcapSplitter::new();
    split.extend(&bytes);
    let mut out = Vec::new();
    let mut first = true;
    while let Some(piece) = split.next_piece().unwrap() {
        if std::mem::take(&mut first) {
            continue;
        }
        let le = |at: usize| u32::from_le_bytes(piece[at..at + 4].try_into().unwrap());
        out.push((le(8), le(12), piece.get(16).copied().unwrap_or(0)));
    }
    assert_eq!(split.pending(), 0, "a partial record in {}", file.display());
    let h = split.header().expect("a pcap header");
    (u32::from(h.datalink), h.snaplen, out)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_cli_writes_what_the_taps_record_and_detaches_them() {
    let tmp = TempDir::new("ops-capture-fake");
    let sock = tmp.path().join("control.sock");
    let workers: Vec<Arc<WorkerCounters>> = (0..2).map(|_| Arc::default()).collect();
    let server = ControlServer::start(&sock, Arc::new(FakeWorkers(workers.clone()))).unwrap();
    let attached = || workers.iter().all(|w| w.capture.points() != 0);
    let detached = || workers.iter().all(|w| w.capture.points() == 0);

    // --count 4 at wire-out, the smallest snap length (Ethernet + IPv6 + UDP + WireGuard
    // header, 78), from both workers.
    let mut cap = CaptureCli::start(
        &sock,
        tmp.path(),
        "wire-out",
        &["--count", "4", "--snaplen", "78"],
    );
    wait_until("the capture to attach", attached);
    workers[0].tap(CapturePoint::WireIn, &[0xee; 60]); // another point: not captured
    workers[0].tap(CapturePoint::WireOut, &[1; 60]);
    workers[1].tap(CapturePoint::WireOut, &[2; 1514]); // cut to 78 bytes
    workers[0].tap(CapturePoint::WireOut, &[3; 78]);
    workers[1].tap(CapturePoint::WireOut, &[4; 14]);
    let log = cap.wait(Duration::from_secs(10));
    assert!(log.contains("done: 4 packets at wire-out"), "{log}");
    assert!(log.contains("0 skipped"), "{log}");
    let (linktype, snaplen, mut got) = records(&cap.file);
    assert_eq!((linktype, snaplen), (1, 78));
    // The rings are drained worker by worker: order within a worker is kept.
    got.sort_by_key(|r| r.2);
    assert_eq!(
        got,
        vec![(60, 60, 1), (78, 1514, 2), (78, 78, 3), (14, 14, 4)]
    );
    wait_until("the taps to detach after --count", detached);
    workers[0].tap(CapturePoint::WireOut, &[5; 60]);
    assert_eq!(
        workers[0]
            .capture_skipped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Until Ctrl-C: the packets so far are in the file, whole, and the taps are detached.
    let mut cap = CaptureCli::start(&sock, tmp.path(), "decrypted", &[]);
    wait_until("the capture to attach", attached);
    for i in 0..3u8 {
        workers[usize::from(i % 2)].tap(CapturePoint::Decrypted, &[0x45 + i; 40]);
    }
    wait_until("three records in the file", || {
        std::fs::metadata(&cap.file).is_ok_and(|m| m.len() == 24 + 3 * (16 + 40))
    });
    cap.interrupt();
    let log = cap.wait(Duration::from_secs(5));
    assert!(log.contains("stopped: 3 packets at decrypted"), "{log}");
    let (linktype, _, got) = records(&cap.file);
    assert_eq!(linktype, 101, "raw IP");
    assert_eq!(got.len(), 3);
    wait_until("the taps to detach after Ctrl-C", detached);
    server.stop();
}
