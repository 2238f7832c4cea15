//! The UAPI socket: `/var/run/wireguard/<ifname>.sock`, a Unix stream socket where `wg` writes
//! `get=1` or `set=1` requests (xplatform "Configuration Protocol") and reads the answer.
//!
//! One accept thread; one short-lived thread per connection, at most [`MAX_CONNECTIONS`] at a
//! time, each with a read timeout, so a stuck or hostile local client cannot hold the API or
//! memory. The socket file is mode 0600 (only root may configure the tunnel), replaced if a
//! killed run left it behind, refused if a live process still answers on it, and removed when
//! the server is dropped.

use std::fs::{self, DirBuilder};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::parse::{SetRequestParser, MAX_LINE_LEN, MAX_REQUEST_BYTES};
use super::serialize::write_get_response;
use super::{Errno, UapiBackend};

/// Where `wg` looks for userspace implementations' sockets (wireguard-tools `SOCK_PATH`).
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 8;

/// How long a connection may stay silent mid-request before it is closed.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum UapiServerError {
    /// The interface name cannot name a socket file.
    #[error("invalid interface name {0:?}: must be 1-15 characters without '/'")]
    InvalidName(String),
    /// Another live process answers on the socket (a second instance for the same interface).
    #[error("{0} is in use by a running process; stop it first")]
    InUse(PathBuf),
    /// Something that is not a socket sits where the socket should go; it is left alone.
    #[error("{0} exists and is not a socket; remove it by hand")]
    NotASocket(PathBuf),
    /// Creating the directory or the socket failed.
    #[error("cannot create UAPI socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A running UAPI server. Dropping it stops the accept thread and removes the socket file.
#[derive(Debug)]
pub struct UapiServer {
    path: PathBuf,
    /// (device, inode) of the socket file we created, so drop removes only our own file.
    identity: (u64, u64),
    listener: UnixListener,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UapiServer {
    /// Serves `backend` on `/var/run/wireguard/<ifname>.sock`, creating the directory (0755).
    pub fn start<B: UapiBackend>(ifname: &str, backend: Arc<B>) -> Result<Self, UapiServerError> {
        if ifname.is_empty()
            || ifname.len() > 15
            || ifname.contains('/')
            || ifname == "."
            || ifname == ".."
        {
            return Err(UapiServerError::InvalidName(ifname.to_string()));
        }
        let dir = Path::new(SOCKET_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| UapiServerError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        Self::start_at(dir.join(format!("{ifname}.sock")), backend)
    }

    /// Serves `backend` on the socket at `path` (its directory must exist).
    pub fn start_at<B: UapiBackend>(
        path: impl Into<PathBuf>,
        backend: Arc<B>,
    ) -> Result<Self, UapiServerError> {
        let path = path.into();
        let io_err = |source| UapiServerError::Io {
            path: path.clone(),
            source,
        };
        remove_stale_socket(&path)?;
        // 0600 from the moment its name exists: only root may configure the tunnel.
        let listener = crate::private_socket::bind_private(&path).map_err(io_err)?;
        let meta = fs::metadata(&path).map_err(io_err)?;
        let identity = (meta.dev(), meta.ino());

        let stopping = Arc::new(AtomicBool::new(false));
        let accept_listener = listener.try_clone().map_err(io_err)?;
        let thread_stopping = Arc::clone(&stopping);
        let backend: Arc<dyn UapiBackend> = backend;
        let thread = std::thread::Builder::new()
            .name("uapi".into())
            .spawn(move || accept_loop(accept_listener, backend, thread_stopping))
            .map_err(io_err)?;
        Ok(UapiServer {
            path,
            identity,
            listener,
            stopping,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and removes the socket file (same as dropping).
    pub fn stop(self) {}
}

impl Drop for UapiServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Shutting down a listening socket wakes a blocked accept() with an error on Linux.
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Only remove the file if it is still the one we bound (not a successor's).
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Removes a socket file left by a process that is gone; refuses if someone still answers.
fn remove_stale_socket(path: &Path) -> Result<(), UapiServerError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(UapiServerError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(UapiServerError::NotASocket(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(UapiServerError::InUse(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing stale UAPI socket");
            fs::remove_file(path).map_err(|source| UapiServerError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(UapiServerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn accept_loop(listener: UnixListener, backend: Arc<dyn UapiBackend>, stopping: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "UAPI accept failed");
                // Avoid a hot loop on a persistent error (e.g. EMFILE).
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("UAPI: too many connections, closing one");
            continue;
        }
        let backend = Arc::clone(&backend);
        let active_in_thread = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("uapi-conn".into())
            .spawn(move || {
                if let Err(e) = serve_connection(stream, &*backend) {
                    tracing::debug!(error = %e, "UAPI connection ended with an error");
                }
                active_in_thread.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One line read with a length bound.
enum Line {
    /// A complete line, without its `\n` (or the rest of the stream before EOF).
    Text(String),
    /// The stream ended before any byte of a new line.
    Eof,
    /// Longer than [`MAX_LINE_LEN`]; the rest of the stream is not trusted.
    TooLong,
    /// Not UTF-8 (valid requests are ASCII).
    NotText,
}

fn read_line(reader: &mut impl BufRead) -> io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            if line.is_empty() {
                return Ok(Line::Eof);
            }
            break;
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if line.len() + chunk.len() > MAX_LINE_LEN {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            break;
        }
    }
    Ok(match String::from_utf8(line) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::NotText,
    })
}

fn write_errno(out: &mut impl Write, result: Result<(), Errno>) -> io::Result<()> {
    match result {
        Ok(()) => out.write_all(b"errno=0\n\n"),
        // Negated, as wireguard-go writes it; `wg set` negates it back.
        Err(e) => write!(out, "errno={}\n\n", -e.get()),
    }
}

fn serve_connection(stream: UnixStream, backend: &dyn UapiBackend) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(4096, stream);
    loop {
        let op = match read_line(&mut reader)? {
            Line::Text(op) => op,
            Line::Eof => return Ok(()),
            Line::TooLong | Line::NotText => {
                return abort(&mut writer, &mut reader, Errno::PROTOCOL)
            }
        };
        match op.as_str() {
            "get=1" => match read_line(&mut reader)? {
                Line::Text(t) if t.is_empty() => {
                    let mut text = String::new();
                    // Writing to a String cannot fail.
                    let _ = write_get_response(&backend.get(), &mut text);
                    writer.write_all(text.as_bytes())?;
                }
                Line::Eof => return Ok(()),
                // wireguard-go: a trailing character after get=1 is EINVAL.
                Line::Text(_) => write_errno(&mut writer, Err(Errno::INVALID))?,
                Line::TooLong | Line::NotText => {
                    return abort(&mut writer, &mut reader, Errno::INVALID)
                }
            },
            "set=1" => match read_set_request(&mut reader)? {
                SetOutcome::Parsed(request) => write_errno(&mut writer, backend.set(request))?,
                SetOutcome::Invalid(e) => write_errno(&mut writer, Err(e))?,
                SetOutcome::Abort(e) => return abort(&mut writer, &mut reader, e),
            },
            // wireguard-go closes the connection on an unknown operation.
            _ => return Ok(()),
        }
    }
}

/// How much unread input [`abort`] discards before closing.
const ABORT_DRAIN_BYTES: u64 = 1024 * 1024;

/// Answers `errno` and closes a connection whose input can no longer be followed.
///
/// Closing a Unix socket with unread input makes the peer's next read fail with ECONNRESET
/// before it sees our answer, so a bounded amount of the input is read and discarded first.
fn abort(writer: &mut UnixStream, reader: &mut impl BufRead, errno: Errno) -> io::Result<()> {
    write_errno(writer, Err(errno))?;
    writer.shutdown(std::net::Shutdown::Write)?;
    io::copy(&mut reader.take(ABORT_DRAIN_BYTES), &mut io::sink())?;
    Ok(())
}

enum SetOutcome {
    Parsed(super::SetRequest),
    /// Invalid, but read to its end: the connection can go on.
    Invalid(Errno),
    /// The stream cannot be trusted any more (over-long line or request): answer and close.
    Abort(Errno),
}

fn read_set_request(reader: &mut impl BufRead) -> io::Result<SetOutcome> {
    let mut parser = SetRequestParser::new();
    let mut error = None;
    let mut bytes = 0usize;
    loop {
        let line = match read_line(reader)? {
            // EOF ends the request like an empty line (wireguard-go does the same).
            Line::Eof => break,
            Line::TooLong => return Ok(SetOutcome::Abort(Errno::TOO_LONG)),
            Line::NotText => {
                error.get_or_insert(Errno::INVALID);
                continue;
            }
            Line::Text(line) => line,
        };
        if line.is_empty() {
            break;
        }
        // The parser bounds what it keeps; this bounds what we read after it gave up.
        bytes += line.len() + 1;
        if bytes > MAX_REQUEST_BYTES {
            return Ok(SetOutcome::Abort(Errno::TOO_LONG));
        }
        if error.is_none() {
            if let Err(e) = parser.line(&line) {
                error = Some(e);
            }
        }
    }
    Ok(match error {
        None => SetOutcome::Parsed(parser.finish()),
        Some(e) => SetOutcome::Invalid(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::{DeviceSnapshot, SetRequest};
    use std::io::Read;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        device: Mutex<DeviceSnapshot>,
        sets: Mutex<Vec<SetRequest>>,
        fail_with: Mutex<Option<Errno>>,
    }

    impl UapiBackend for Recorder {
        fn get(&self) -> DeviceSnapshot {
            self.device.lock().unwrap().clone()
        }
        fn set(&self, request: SetRequest) -> Result<(), Errno> {
            if let Some(e) = *self.fail_with.lock().unwrap() {
                return Err(e);
            }
            self.device.lock().unwrap().apply(&request);
            self.sets.lock().unwrap().push(request);
            Ok(())
        }
    }

    fn temp_socket(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("uapi-test-{}-{tag}.sock", std::process::id()))
    }

    fn exchange(path: &Path, request: &[u8]) -> String {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn set_then_get_over_the_socket() {
        let path = temp_socket("setget");
        let backend = Arc::new(Recorder::default());
        let server = UapiServer::start_at(&path, Arc::clone(&backend)).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions())
                & 0o777;
        assert_eq!(mode, 0o600);

        let k1 = "11".repeat(32);
        let answer = exchange(
            &path,
            format!(
                "set=1\nlisten_port=4242\npublic_key={k1}\nallowed_ip=10.0.0.2/32\n\nget=1\n\n"
            )
            .as_bytes(),
        );
        let want_get = format!(
            "errno=0\n\nlisten_port=4242\npublic_key={k1}\npreshared_key={}\n\
             protocol_version=1\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n\
             tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n\
             allowed_ip=10.0.0.2/32\nerrno=0\n\n",
            "00".repeat(32)
        );
        assert_eq!(answer, want_get);
        assert_eq!(backend.sets.lock().unwrap().len(), 1);

        drop(server);
        assert!(!path.exists(), "socket file must be removed on drop");
    }

    #[test]
    fn errors_are_reported_as_negative_errno() {
        let path = temp_socket("errno");
        let backend = Arc::new(Recorder::default());
        let _server = UapiServer::start_at(&path, Arc::clone(&backend)).unwrap();

        // Invalid request: nothing reaches the backend, the connection stays usable.
        let answer = exchange(&path, b"set=1\nlisten_port=70000\nfwmark=1\n\nget=1\n\n");
        assert_eq!(answer, "errno=-22\n\nerrno=0\n\n");
        assert!(backend.sets.lock().unwrap().is_empty());

        assert_eq!(exchange(&path, b"set=1\nnonsense\n\n"), "errno=-71\n\n");

        // Backend refusal is passed through.
        *backend.fail_with.lock().unwrap() = Some(Errno::ADDR_IN_USE);
        assert_eq!(
            exchange(&path, b"set=1\nlisten_port=1\n\n"),
            "errno=-98\n\n"
        );

        // Trailing garbage after get=1.
        assert_eq!(exchange(&path, b"get=1\nx\n"), "errno=-22\n\n");
        // Unknown operation: connection closed without an answer, like wireguard-go.
        assert_eq!(exchange(&path, b"frobnicate=1\n\n"), "");
    }

    #[test]
    fn oversized_input_is_refused_and_closed() {
        let path = temp_socket("big");
        let backend = Arc::new(Recorder::default());
        let _server = UapiServer::start_at(&path, Arc::clone(&backend)).unwrap();

        let mut long = b"set=1\nlisten_port=".to_vec();
        long.extend(std::iter::repeat_n(b'1', 100_000));
        long.extend_from_slice(b"\n\nget=1\n\n");
        assert_eq!(
            exchange(&path, &long),
            format!("errno={}\n\n", -libc::EMSGSIZE)
        );

        // An endless operation line.
        let endless = vec![b'g'; 100_000];
        assert_eq!(
            exchange(&path, &endless),
            format!("errno={}\n\n", -libc::EPROTO)
        );
        assert!(backend.sets.lock().unwrap().is_empty());
    }

    #[test]
    fn stale_socket_is_replaced_but_a_live_one_is_refused() {
        let path = temp_socket("stale");
        // A socket file nobody listens on (its listener was dropped without unlinking).
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let backend = Arc::new(Recorder::default());
        let server = UapiServer::start_at(&path, Arc::clone(&backend)).unwrap();

        let second = UapiServer::start_at(&path, Arc::clone(&backend));
        assert!(
            matches!(second, Err(UapiServerError::InUse(_))),
            "{second:?}"
        );
        // The refused second start must not have removed the live socket.
        assert_eq!(exchange(&path, b"get=1\n\n"), "errno=0\n\n");
        drop(server);

        fs::write(&path, b"not a socket").unwrap();
        let third = UapiServer::start_at(&path, backend);
        assert!(
            matches!(third, Err(UapiServerError::NotASocket(_))),
            "{third:?}"
        );
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_interface_names_are_refused() {
        let backend = Arc::new(Recorder::default());
        for name in ["", "a/b", "..", "sixteen-chars-xx"] {
            assert!(matches!(
                UapiServer::start(name, Arc::clone(&backend)),
                Err(UapiServerError::InvalidName(_))
            ));
        }
    }
}
