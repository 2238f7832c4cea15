//! Loading `redirect.bpf.c` into the kernel, attaching it to one interface, and detaching it.
//!
//! Owns the interface's XDP hook for the life of an [`XdpProgram`]: at start it takes the
//! instance lock, replaces a stale copy of our own program (left by a crash or SIGKILL; found
//! by program name) and refuses to touch anybody else's; on drop it detaches exactly the
//! program it attached (an atomic compare-and-detach, so it never removes a program someone
//! attached after us).

use std::ffi::CString;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use libbpf_rs::query::ProgInfoIter;
use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder, Xdp, XdpFlags};
use tracing::{info, warn};

use super::gro::GroOff;
use super::live_ports::LivePorts;
use super::maps::{
    listen_addr_key, RedirectConfig, XdpCounter, XdpCounters, CONFIG_VALUE_SIZE, MAX_LISTEN_ADDRS,
};
use crate::instance_lock::{InstanceLock, LockError};

/// The BPF program's name (the C function, as the kernel reports it in `bpf_prog_info.name`).
/// A program with this name on our interface is ours from an earlier run.
pub const PROGRAM_NAME: &str = "dp_xsk_redirect";

const XSKS_MAP: &str = "xsks_map";
const CONFIG_MAP: &str = "config_map";
const LISTEN_ADDRS_MAP: &str = "listen_addrs";
const COUNTERS_MAP: &str = "counters_map";
const LIVE_PORTS_MAP: &str = "live_ports";

/// The compiled program, built by build.rs.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redirect.bpf.o"));

/// Where in the stack the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before an skb exists (`XDP_FLAGS_DRV_MODE`). Needed for zero-copy.
    Driver,
    /// After the skb is built, for any driver (`XDP_FLAGS_SKB_MODE`); slowest.
    Generic,
}

impl AttachMode {
    fn flags(self) -> XdpFlags {
        match self {
            AttachMode::Driver => XdpFlags::DRV_MODE,
            AttachMode::Generic => XdpFlags::SKB_MODE,
        }
    }

    /// `driver` or `generic`.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Driver => "driver",
            AttachMode::Generic => "generic",
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the program could not be loaded, attached or used.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("no interface named {0:?} in this network namespace (check `ip link`)")]
    NoSuchInterface(String),
    #[error(
        "interface {ifname} already has XDP program id {id} ({name:?}, {mode} mode) attached, \
         which is not this gateway's ({PROGRAM_NAME}); remove it with `{remove}` \
         (or `xdp-loader unload {ifname} --all` if libxdp loaded it) and start again"
    )]
    ForeignProgram {
        ifname: String,
        id: u32,
        name: String,
        mode: &'static str,
        remove: String,
    },
    #[error("loading the XDP program into the kernel failed: {0}")]
    Load(#[source] libbpf_rs::Error),
    #[error("attaching the XDP program to {ifname} in {mode} mode failed: {source}")]
    Attach {
        ifname: String,
        mode: AttachMode,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("XDP map {map}: {what}")]
    Map { map: &'static str, what: String },
}

fn map_err(map: &'static str) -> impl FnOnce(libbpf_rs::Error) -> XdpError {
    move |e| XdpError::Map {
        map,
        what: e.to_string(),
    }
}

/// The program, loaded and attached to one interface. Detached on drop.
#[derive(Debug)]
pub struct XdpProgram {
    obj: Object,
    ifname: String,
    ifindex: i32,
    mode: AttachMode,
    prog_id: u32,
    replaced_stale: Option<u32>,
    attached: bool,
    /// In generic mode, GRO turned off for as long as the program is attached (gro.rs).
    gro_off: Option<GroOff>,
    // Dropped last (fields drop after `Drop::drop`): the interface stays ours until detached.
    _lock: InstanceLock,
}

impl XdpProgram {
    /// Loads the program, writes `config` into its maps and attaches it to `ifname` (in the
    /// calling thread's network namespace) in `mode`.
    pub fn attach(
        ifname: &str,
        mode: AttachMode,
        config: &RedirectConfig,
    ) -> Result<XdpProgram, XdpError> {
        let lock = InstanceLock::acquire(ifname)?;
        let ifindex = ifindex(ifname)?;

        let obj = load_object()?;
        let mut program = XdpProgram {
            obj,
            ifname: ifname.to_string(),
            ifindex,
            mode,
            prog_id: 0,
            replaced_stale: None,
            attached: false,
            gro_off: None,
            _lock: lock,
        };
        program.check_layout()?;
        program.write_config(config)?;
        let replace_on_attach = program.replace_stale_or_refuse()?;
        // Normally attach only where nothing is attached (a program appearing meanwhile is not
        // overwritten); a stale program of ours we could not detach is replaced in one step.
        let only_if_free = if replace_on_attach {
            XdpFlags::empty()
        } else {
            XdpFlags::UPDATE_IF_NOEXIST
        };

        let prog_id = {
            let prog = program.prog();
            let xdp = Xdp::new(prog.as_fd());
            xdp.attach(ifindex, mode.flags() | only_if_free)
                .map_err(|source| XdpError::Attach {
                    ifname: ifname.to_string(),
                    mode,
                    source,
                })?;
            xdp.query_id(ifindex, mode.flags()).unwrap_or(0)
        };
        program.attached = true;
        program.prog_id = prog_id;
        if let Err(e) = record::write(&record::path(program._lock.path()), prog_id) {
            warn!(
                ifname,
                "could not record the attached program's id ({e}): after a crash, a restart \
                 without CAP_SYS_ADMIN will not recognise the program as its own"
            );
        }
        if mode == AttachMode::Generic {
            program.gro_off = GroOff::engage(ifname).unwrap_or_else(|e| {
                warn!(
                    ifname,
                    "could not turn off generic receive offload ({e}): merged frames will be \
                     dropped and counted as drop_oversized; run `ethtool -K {ifname} gro off`"
                );
                None
            });
        }
        info!(
            ifname,
            mode = mode.name(),
            prog_id = program.prog_id,
            "XDP program attached"
        );
        Ok(program)
    }

    /// The interface this program is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Its index in this network namespace.
    pub fn ifindex(&self) -> u32 {
        self.ifindex as u32
    }

    /// The mode it is attached in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The kernel's id for the attached program (as `ip link` and `bpftool` show it).
    pub fn program_id(&self) -> u32 {
        self.prog_id
    }

    /// The id of a stale program of ours that this start replaced, if there was one.
    pub fn replaced_stale_program(&self) -> Option<u32> {
        self.replaced_stale
    }

    /// Sends frames of rx queue `queue_id` to the AF_XDP socket `fd`.
    pub fn register_socket(&self, queue_id: u32, fd: RawFd) -> Result<(), XdpError> {
        self.map(XSKS_MAP)?
            .update(&queue_id.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err(XSKS_MAP))
    }

    /// Stops sending rx queue `queue_id` to a socket (its frames go to the kernel again). The
    /// kernel also does this by itself when the socket closes.
    pub fn unregister_socket(&self, queue_id: u32) -> Result<(), XdpError> {
        self.map(XSKS_MAP)?
            .delete(&queue_id.to_ne_bytes())
            .map_err(map_err(XSKS_MAP))
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let map = self.map(COUNTERS_MAP)?;
        let mut out = XdpCounters::default();
        for &c in XdpCounter::ALL {
            let per_cpu = map
                .lookup_percpu(&(c as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(map_err(COUNTERS_MAP))?
                .unwrap_or_default();
            for v in per_cpu {
                let bytes: [u8; 8] =
                    v.get(..8)
                        .and_then(|b| b.try_into().ok())
                        .ok_or(XdpError::Map {
                            map: COUNTERS_MAP,
                            what: "per-CPU value shorter than 8 bytes".into(),
                        })?;
                out.add(c, u64::from_ne_bytes(bytes));
            }
        }
        Ok(out)
    }

    /// A handle of its own on the counters map (a duplicated file descriptor), for a reader in
    /// another thread ([`ops::XdpCountersReader`]). Taken from the loaded object, not
    /// looked up by kernel id: enumerating programs needs CAP_SYS_ADMIN, which the gateway
    /// does not have when it runs with only its four capabilities (SECURITY.md).
    pub fn counters_map_handle(&self) -> Result<libbpf_rs::MapHandle, XdpError> {
        let map = self.map(COUNTERS_MAP)?;
        libbpf_rs::MapHandle::try_from(&map).map_err(map_err(COUNTERS_MAP))
    }

    /// The program's `live_ports` bitmap, mapped into memory for the workers' NAT observers.
    pub fn live_ports(&self) -> Result<LivePorts, XdpError> {
        let map = self.map(LIVE_PORTS_MAP)?;
        let handle = libbpf_rs::MapHandle::try_from(&map).map_err(map_err(LIVE_PORTS_MAP))?;
        LivePorts::map(handle).map_err(|e| XdpError::Map {
            map: LIVE_PORTS_MAP,
            what: e.to_string(),
        })
    }

    /// Rewrites the redirect rules while attached (e.g. after a configuration reload).
    pub fn write_config(&self, config: &RedirectConfig) -> Result<(), XdpError> {
        if config.listen_addrs.len() > MAX_LISTEN_ADDRS {
            return Err(XdpError::Map {
                map: LISTEN_ADDRS_MAP,
                what: format!(
                    "{} listen addresses, at most {MAX_LISTEN_ADDRS}",
                    config.listen_addrs.len()
                ),
            });
        }
        let addrs = self.map(LISTEN_ADDRS_MAP)?;
        for key in addrs.keys().collect::<Vec<_>>() {
            addrs.delete(&key).map_err(map_err(LISTEN_ADDRS_MAP))?;
        }
        for key in config.listen_addr_keys() {
            addrs
                .update(&key, &[1], MapFlags::ANY)
                .map_err(map_err(LISTEN_ADDRS_MAP))?;
        }
        self.map(CONFIG_MAP)?
            .update(&0u32.to_ne_bytes(), &config.to_map_value(), MapFlags::ANY)
            .map_err(map_err(CONFIG_MAP))
    }

    /// Replaces the addresses WireGuard is accepted on, while attached (the host's addresses
    /// changed). New ones are added before stale ones are removed, so an address kept across
    /// the change is never missing from the map, not even briefly.
    pub fn set_listen_addrs(&self, listen: &[IpAddr]) -> Result<(), XdpError> {
        if listen.len() > MAX_LISTEN_ADDRS {
            return Err(XdpError::Map {
                map: LISTEN_ADDRS_MAP,
                what: format!(
                    "{} listen addresses, at most {MAX_LISTEN_ADDRS}",
                    listen.len()
                ),
            });
        }
        let addrs = self.map(LISTEN_ADDRS_MAP)?;
        let wanted: Vec<[u8; 16]> = listen.iter().map(|&a| listen_addr_key(a)).collect();
        for key in &wanted {
            addrs
                .update(key, &[1], MapFlags::ANY)
                .map_err(map_err(LISTEN_ADDRS_MAP))?;
        }
        for key in addrs.keys().collect::<Vec<_>>() {
            if !wanted.iter().any(|w| w[..] == key[..]) {
                addrs.delete(&key).map_err(map_err(LISTEN_ADDRS_MAP))?;
            }
        }
        Ok(())
    }

    /// Detaches now, reporting failure (drop does the same but can only log).
    pub fn detach(mut self) -> Result<(), XdpError> {
        self.detach_inner()
    }

    fn detach_inner(&mut self) -> Result<(), XdpError> {
        if !self.attached {
            return Ok(());
        }
        self.attached = false;
        let prog = self.prog();
        detach_expected(self.ifindex, self.mode.flags(), prog.as_fd()).map_err(|source| {
            XdpError::Attach {
                ifname: self.ifname.clone(),
                mode: self.mode,
                source,
            }
        })?;
        info!(ifname = %self.ifname, "XDP program detached");
        record::remove(&record::path(self._lock.path()));
        self.gro_off = None; // restores GRO, now that nothing runs after it
        Ok(())
    }

    fn prog(&self) -> libbpf_rs::Program<'_> {
        self.obj
            .progs()
            .find(|p| p.name() == PROGRAM_NAME)
            .expect("the embedded object defines PROGRAM_NAME (checked at load)")
    }

    fn map(&self, name: &'static str) -> Result<libbpf_rs::Map<'_>, XdpError> {
        self.obj
            .maps()
            .find(|m| m.name() == name)
            .ok_or(XdpError::Map {
                map: name,
                what: "not in the embedded object".into(),
            })
    }

    /// The C structs and the Rust mirrors must agree; a mismatch is a build bug, caught here.
    fn check_layout(&self) -> Result<(), XdpError> {
        let config = self.map(CONFIG_MAP)?;
        if config.value_size() as usize != CONFIG_VALUE_SIZE {
            return Err(XdpError::Map {
                map: CONFIG_MAP,
                what: format!(
                    "value is {} bytes, Rust expects {CONFIG_VALUE_SIZE}",
                    config.value_size()
                ),
            });
        }
        let counters = self.map(COUNTERS_MAP)?;
        if counters.max_entries() as usize != XdpCounter::ALL.len() {
            return Err(XdpError::Map {
                map: COUNTERS_MAP,
                what: format!(
                    "{} entries, Rust expects {}",
                    counters.max_entries(),
                    XdpCounter::ALL.len()
                ),
            });
        }
        Ok(())
    }

    /// Looks at what is attached now: our own program from an earlier run is detached (it is
    /// stale: we hold the instance lock, so no live instance owns it); anything else is the
    /// operator's and stays, and we refuse to start.
    ///
    /// Ours is recognised by name, or, when the name cannot be read (reading another
    /// program's name needs CAP_SYS_ADMIN, which the service does not have), by the id the
    /// earlier run recorded beside the instance lock. Returns whether the new program must
    /// replace the old one on attach (ours, but not detachable without CAP_SYS_ADMIN).
    fn replace_stale_or_refuse(&mut self) -> Result<bool, XdpError> {
        let recorded = record::read(&record::path(self._lock.path()));
        let prog = self.prog();
        let query = Xdp::new(prog.as_fd())
            .query(self.ifindex, XdpFlags::NONE)
            .map_err(|source| XdpError::Attach {
                ifname: self.ifname.clone(),
                mode: self.mode,
                source,
            })?;
        let attached = [
            (
                query.drv_prog_id,
                Some(XdpFlags::DRV_MODE),
                "driver",
                "xdpdrv",
            ),
            (
                query.skb_prog_id,
                Some(XdpFlags::SKB_MODE),
                "generic",
                "xdpgeneric",
            ),
            (query.hw_prog_id, None, "offload", "xdpoffload"),
        ];
        let mut replaced = None;
        let mut replace_on_attach = false;
        for (id, flags, mode, ip_keyword) in attached {
            if id == 0 {
                continue;
            }
            let name = program_name(id).unwrap_or_default();
            let same_mode = flags
                .as_ref()
                .is_some_and(|f| f.bits() == self.mode.flags().bits());
            if name.is_empty() && recorded == Some(id) && same_mode {
                warn!(
                    ifname = %self.ifname,
                    stale_prog_id = id,
                    mode,
                    "replacing the XDP program an earlier run of this gateway left attached \
                     (it did not stop cleanly; recognised by the id it recorded)"
                );
                replaced = Some(id);
                replace_on_attach = true;
                continue;
            }
            match flags {
                Some(flags) if name == PROGRAM_NAME => {
                    warn!(
                        ifname = %self.ifname,
                        stale_prog_id = id,
                        mode,
                        "replacing a stale XDP program left by an earlier run that did not stop cleanly"
                    );
                    let old =
                        libbpf_rs::Program::fd_from_id(id).map_err(|source| XdpError::Attach {
                            ifname: self.ifname.clone(),
                            mode: self.mode,
                            source,
                        })?;
                    detach_expected(self.ifindex, flags, old.as_fd()).map_err(|source| {
                        XdpError::Attach {
                            ifname: self.ifname.clone(),
                            mode: self.mode,
                            source,
                        }
                    })?;
                    replaced = Some(id);
                }
                _ => {
                    return Err(XdpError::ForeignProgram {
                        ifname: self.ifname.clone(),
                        id,
                        name,
                        mode,
                        remove: format!("ip link set dev {} {ip_keyword} off", self.ifname),
                    })
                }
            }
        }
        self.replaced_stale = replaced;
        Ok(replace_on_attach)
    }
}

/// The id of the program a run attached, kept beside its instance lock
/// (`/run/dataplane/<ifname>@<netns>.lock.prog`) until it detaches: how the next run knows a
/// program left by a crash is its own when it may not read the program's name.
mod record {
    use std::fs::OpenOptions;
    use std::io::{self, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::{Path, PathBuf};

    pub fn path(lock: &Path) -> PathBuf {
        let mut p = lock.as_os_str().to_owned();
        p.push(".prog");
        PathBuf::from(p)
    }

    pub fn write(path: &Path, id: u32) -> io::Result<()> {
        // Never through a symlink, private to the gateway's user.
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        writeln!(f, "{id}")
    }

    pub fn read(path: &Path) -> Option<u32> {
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ok()?;
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).ok()?;
        s.trim().parse().ok()
    }

    pub fn remove(path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn an_id_written_reads_back_and_a_symlink_is_refused() {
            let dir = tempfile::tempdir().unwrap();
            let p = path(&dir.path().join("eth0@1.lock"));
            assert!(p.to_string_lossy().ends_with("eth0@1.lock.prog"));
            assert_eq!(read(&p), None);
            write(&p, 4242).unwrap();
            assert_eq!(read(&p), Some(4242));
            remove(&p);
            assert_eq!(read(&p), None);
            let target = dir.path().join("elsewhere");
            std::os::unix::fs::symlink(&target, &p).unwrap();
            assert!(write(&p, 1).is_err(), "wrote through a symlink");
            assert!(!target.exists());
        }
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(e) = self.detach_inner() {
            warn!(ifname = %self.ifname, error = %e, "could not detach the XDP program; remove it with `ip link set dev {} xdp off`", self.ifname);
        }
    }
}

fn load_object() -> Result<Object, XdpError> {
    let obj = ObjectBuilder::default()
        .open_memory(OBJECT)
        .and_then(|o| o.load())
        .map_err(XdpError::Load)?;
    if !obj.progs().any(|p| p.name() == PROGRAM_NAME) {
        return Err(XdpError::Load(libbpf_rs::Error::from(
            std::io::Error::other(format!("object has no program {PROGRAM_NAME}")),
        )));
    }
    Ok(obj)
}

fn ifindex(ifname: &str) -> Result<i32, XdpError> {
    let c = CString::new(ifname).map_err(|_| XdpError::NoSuchInterface(ifname.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(XdpError::NoSuchInterface(ifname.to_string()));
    }
    Ok(idx as i32)
}

/// Name of a loaded program by id (empty if it vanished meanwhile).
fn program_name(id: u32) -> Option<String> {
    ProgInfoIter::default()
        .find(|p| p.id == id)
        .map(|p| p.name.to_string_lossy().into_owned())
}

/// Detaches from `ifindex` only if `expected` is the attached program (XDP_FLAGS_REPLACE with
/// `old_prog_fd`: the kernel compares and detaches atomically).
fn detach_expected(
    ifindex: i32,
    mode: XdpFlags,
    expected: BorrowedFd<'_>,
) -> Result<(), libbpf_rs::Error> {
    let opts = libbpf_rs::libbpf_sys::bpf_xdp_attach_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_xdp_attach_opts>() as _,
        old_prog_fd: expected.as_raw_fd(),
        ..Default::default()
    };
    let flags = (mode | XdpFlags::REPLACE).bits();
    // SAFETY: `opts` is a fully initialised options struct with its own size set, alive for
    // the duration of the call; libbpf does not keep the pointer.
    let rc = unsafe { libbpf_rs::libbpf_sys::bpf_xdp_detach(ifindex, flags, &opts) };
    if rc < 0 {
        return Err(libbpf_rs::Error::from(std::io::Error::from_raw_os_error(
            -rc,
        )));
    }
    Ok(())
}
