//! Network namespaces of the lab: unique names per lab instance, running commands inside them,
//! and deleting them again, including the leftovers of runs that were killed before their `Drop`
//! could run. Everything goes through the `ip` command; nothing here enters a namespace itself.
//!
//! Names are `wlab<pid>-<n>-<role>`: the pid of the process that built the lab plus a per-process
//! counter, so concurrent tests never collide, and [`cleanup_orphans`] can tell that a lab's owner
//! is gone. Interface names never carry the prefix (veths are created directly inside their
//! namespaces), so they stay the article's `eth0`/`wg0` and under the 15-byte `IFNAMSIZ` limit.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

/// Every lab namespace name starts with this tag.
pub const NAME_TAG: &str = "wlab";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A prefix no other lab of this process uses, e.g. `wlab4242-0`.
pub(crate) fn unique_prefix() -> String {
    format!(
        "{NAME_TAG}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Renders a command line for traces and error messages.
pub(crate) fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs a command to completion; its stdout on success, an error naming the command, its exit
/// status and its stderr otherwise.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let line = command_line(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{line}` (is the program installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A `Command` that runs `argv` inside namespace `ns` (`ip netns exec`, which also gives the
/// command a `/sys` of that namespace and a private mount namespace).
pub(crate) fn in_ns(ns: &str, argv: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(argv);
    cmd
}

/// All network namespace names known to `ip netns`.
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = run(Command::new("ip").args(["netns", "list"]))?;
    // Lines look like `name (id: 3)` or just `name`.
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Kills what still runs inside `ns` (only namespaces this module created reach here) and
/// deletes it.
pub(crate) fn delete_namespace(ns: &str) -> Result<()> {
    if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", ns])) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).output();
        }
    }
    run(Command::new("ip").args(["netns", "del", ns])).map(|_| ())
}

/// Deletes every namespace whose name starts with `prefix` (and the processes inside them), and
/// the lab directory of that prefix under the temp dir. Returns the deleted namespace names.
/// Meant for leftovers of killed runs: `cleanup_stale("wlab4242-")`.
pub fn cleanup_stale(prefix: &str) -> Result<Vec<String>> {
    if prefix.is_empty() {
        bail!("cleanup_stale: refusing an empty prefix (it would match every namespace)");
    }
    let mut removed = Vec::new();
    for ns in list_namespaces()? {
        if ns.starts_with(prefix) {
            delete_namespace(&ns)?;
            removed.push(ns);
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.starts_with(NAME_TAG) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(removed)
}

/// The pid encoded in a lab name (`wlab<pid>-...`), if it is one.
pub(crate) fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_TAG)?;
    let digits = rest.split('-').next()?;
    digits.parse().ok()
}

/// Deletes the namespaces (and lab directories) of labs whose owning process no longer exists:
/// what a `kill -9`ed test or demo left behind. Returns the deleted namespace names.
pub fn cleanup_orphans() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for ns in list_namespaces()? {
        if let Some(pid) = owner_pid(&ns) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                delete_namespace(&ns)?;
                removed.push(ns);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = owner_pid(&name) {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_carry_the_pid() {
        let a = unique_prefix();
        let b = unique_prefix();
        assert_ne!(a, b);
        assert_eq!(owner_pid(&a), Some(std::process::id()));
        assert_eq!(owner_pid(&format!("{b}-client")), Some(std::process::id()));
    }

    #[test]
    fn foreign_names_have_no_owner() {
        assert_eq!(owner_pid("docker-ns"), None);
        assert_eq!(owner_pid("wlabx-1"), None);
        assert_eq!(owner_pid("wlab-1"), None);
    }

    #[test]
    fn empty_prefix_is_refused() {
        assert!(cleanup_stale("").is_err());
    }
}
