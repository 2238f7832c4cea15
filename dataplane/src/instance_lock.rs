//! One gateway per interface: an exclusive `flock` on `/run/dataplane/<ifname>@<netns>.lock`.
//!
//! The kernel releases a `flock` when its holder dies, however it dies, so a gateway killed
//! with SIGKILL never blocks the next start; the file holds the holder's pid so that a refusal
//! can name it. Interface names are per network namespace, so the namespace's inode is part of
//! the file name (two namespaces may both have an `eth0`).
//!
//! This module must never wait for the lock: a second instance is refused at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Where lock files live unless told otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/dataplane";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the interface.
    #[error(
        "interface {ifname} is already driven by another dataplane instance ({holder}); \
         stop it first (lock file {path})",
        holder = match pid { Some(p) => format!("pid {p}"), None => "pid unknown".to_string() },
        path = path.display()
    )]
    Held {
        ifname: String,
        pid: Option<u32>,
        path: PathBuf,
    },
    /// The lock file could not be created or locked.
    // The OS error is the source: `{:#}` prints it once, after this.
    #[error("cannot use lock file {}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Held for as long as this process drives the interface; released on drop (or death).
#[derive(Debug)]
pub struct InstanceLock {
    file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock for `ifname` in the calling thread's network namespace, under
    /// [`DEFAULT_LOCK_DIR`].
    pub fn acquire(ifname: &str) -> Result<Self, LockError> {
        Self::acquire_in(Path::new(DEFAULT_LOCK_DIR), ifname)
    }

    /// Takes the lock for `ifname` under `dir` (created if missing).
    pub fn acquire_in(dir: &Path, ifname: &str) -> Result<Self, LockError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LockError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        // /proc/thread-self: a thread that entered another namespace with setns sees its own.
        let netns = fs::metadata("/proc/thread-self/ns/net")
            .map(|m| m.ino())
            .map_err(io_err(Path::new("/proc/thread-self/ns/net")))?;
        let path = dir.join(format!("{ifname}@netns{netns}.lock"));

        // Retry if the file we locked was unlinked by a releasing holder in between (see Drop).
        loop {
            // Never through a symlink, never another user's file: the pid is written into it.
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io_err(&path))?;
            let meta = file.metadata().map_err(io_err(&path))?;
            // SAFETY: geteuid has no arguments and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if !meta.is_file() || meta.uid() != euid {
                return Err(LockError::Io {
                    path,
                    source: io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "not a regular file owned by this user; remove it if no gateway runs",
                    ),
                });
            }
            // SAFETY: flock on an fd we own; no memory is passed to the kernel.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(LockError::Held {
                        ifname: ifname.to_string(),
                        pid: text.trim().parse().ok(),
                        path,
                    });
                }
                return Err(LockError::Io { path, source: err });
            }
            let same_file = match (fs::metadata(&path), file.metadata()) {
                (Ok(on_disk), Ok(ours)) => on_disk.ino() == ours.ino(),
                _ => false,
            };
            if !same_file {
                continue;
            }
            file.set_len(0).map_err(io_err(&path))?;
            file.rewind().map_err(io_err(&path))?;
            writeln!(file, "{}", std::process::id()).map_err(io_err(&path))?;
            return Ok(InstanceLock { file, path });
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Unlinked while still locked, so that a waiter who opened the old file notices (inode
        // check above) instead of locking a file nobody else will look at. The lock itself
        // goes when `file` closes.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dp-lock-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn second_acquire_is_refused_with_our_pid_and_released_on_drop() {
        let dir = temp_dir("second");
        let first = InstanceLock::acquire_in(&dir, "veth-x").unwrap();
        match InstanceLock::acquire_in(&dir, "veth-x") {
            Err(LockError::Held { pid, ifname, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(ifname, "veth-x");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        let msg = InstanceLock::acquire_in(&dir, "veth-x")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        // Another interface is independent.
        let _other = InstanceLock::acquire_in(&dir, "veth-y").unwrap();
        drop(first);
        let again = InstanceLock::acquire_in(&dir, "veth-x").unwrap();
        assert!(again.path().exists());
        drop(again);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_refused_and_its_target_untouched() {
        let dir = temp_dir("symlink");
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("precious");
        fs::write(&target, "keep me\n").unwrap();
        let netns = fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        std::os::unix::fs::symlink(&target, dir.join(format!("veth-s@netns{netns}.lock"))).unwrap();
        let err = InstanceLock::acquire_in(&dir, "veth-s").unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep me\n");
        let _ = fs::remove_dir_all(&dir);
    }
}
