//! The cross-platform userspace API (<https://www.wireguard.com/xplatform/>): what lets the stock
//! `wg show`, `wg showconf` and `wg set` talk to this appliance as they talk to wireguard-go.
//!
//! The module owns the wire protocol and the Unix socket, nothing else:
//! - [`parse`]: a sans-IO parser turning a `set=1` request into a typed [`SetRequest`];
//! - [`serialize`]: the [`DeviceSnapshot`] a backend reports and its `get=1` text form;
//! - [`server`]: [`UapiServer`], the listener thread on `/var/run/wireguard/<ifname>.sock`.
//!
//! Keys are `wgproto::keys` types (re-exported here); the UAPI writes them as lowercase hex.
//!
//! It never touches peer state itself: the slow path implements [`UapiBackend`] and applies a
//! parsed request to its own tables. Bad input from the socket is an [`Errno`] answered to the
//! client (`errno=-22`), never a panic, and every read is bounded.

pub mod parse;
pub mod serialize;
pub mod server;

pub use parse::{parse_set_request, PeerUpdate, SetRequest, SetRequestParser};
pub use serialize::{write_get_response, DeviceSnapshot, PeerSnapshot};
pub use server::{UapiServer, UapiServerError, SOCKET_DIR};
pub use wgproto::keys::{KeyParseError, PresharedKey, PrivateKey, PublicKey};

use std::fmt;

/// An error number as the UAPI reports it.
///
/// Holds the positive `errno` value (e.g. `EINVAL` = 22). On the wire it is written negated,
/// `errno=-22`, exactly as wireguard-go does; `wg` turns that back into its error message
/// ("Invalid argument").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

impl Errno {
    /// Malformed value, unknown key, bad key length: wireguard-go's `IpcErrorInvalid`.
    pub const INVALID: Errno = Errno(libc::EINVAL);
    /// A line without `=` or an unknown operation: wireguard-go's `IpcErrorProtocol`.
    pub const PROTOCOL: Errno = Errno(libc::EPROTO);
    /// Reading the request or writing the answer failed: wireguard-go's `IpcErrorIO`.
    pub const IO: Errno = Errno(libc::EIO);
    /// The listen port could not be bound: wireguard-go's `IpcErrorPortInUse`.
    pub const ADDR_IN_USE: Errno = Errno(libc::EADDRINUSE);
    /// A line or a whole request exceeded this server's bounds.
    pub const TOO_LONG: Errno = Errno(libc::EMSGSIZE);
    /// Anything else: wireguard-go's `IpcErrorUnknown` (55).
    pub const UNKNOWN: Errno = Errno(55);

    /// An errno from its positive number (a negative one is taken by its magnitude).
    pub fn new(errno: i32) -> Errno {
        Errno(errno.saturating_abs())
    }

    /// The positive errno number.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Errno({} {})",
            self.0,
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "errno {}: {}",
            self.0,
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

impl std::error::Error for Errno {}

/// What the slow path implements so the UAPI server can read and change the device.
///
/// Called from the server's connection threads; implementations synchronise internally.
pub trait UapiBackend: Send + Sync + 'static {
    /// A consistent picture of the device for `get=1`.
    fn get(&self) -> DeviceSnapshot;

    /// Applies a fully parsed and validated `set=1` request. The parser has already rejected
    /// malformed input, so a backend returns an error only for what it cannot do (e.g.
    /// [`Errno::ADDR_IN_USE`] when the new listen port is taken).
    fn set(&self, request: SetRequest) -> Result<(), Errno>;
}
