//! Binds a Unix socket that other users can never reach, not even for an instant.
//!
//! `bind()` creates the socket file with mode 0777 & ~umask; a `chmod` after it leaves a window
//! in which another user may connect (and keep the connection) when the umask is lax. Changing
//! the umask is process-wide, so it would race with other threads creating files. Instead the
//! socket is bound inside a fresh 0700 directory beside the target, made 0600, and renamed into
//! place: by the time its name is reachable it is already 0600.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// Binds `path` (replacing whatever is there) with mode 0600 from the start.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    // Short: sun_path holds 107 bytes, and this path is longer than the target's.
    let private = dir.join(format!(
        ".{}.{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    DirBuilder::new().mode(0o700).create(&private)?;
    let tmp = private.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        fs::rename(&tmp, path)?;
        Ok(listener)
    })();
    let _ = fs::remove_file(&tmp); // only left when the rename failed
    let _ = fs::remove_dir(&private);
    bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_socket_is_0600_connectable_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("private-socket-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.sock");
        fs::write(&path, b"stale").unwrap();
        let listener = bind_private(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _client = UnixStream::connect(&path).unwrap();
        listener.accept().unwrap();
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.sock"], "the private directory is removed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
