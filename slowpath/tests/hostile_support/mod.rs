//! The body of the `slowpath/fuzz` target `uapi_set`, shared with the plain corpus test
//! (`hostile_uapi.rs`) so the same code runs under libFuzzer and on a stable toolchain.
#![allow(dead_code)]

use std::fmt::Write;

use slowpath::uapi::{parse_set_request, write_get_response, DeviceSnapshot};

/// A device snapshot written back as a `set=1` body that recreates it from nothing:
/// `replace_peers`, then every peer with `replace_allowed_ips` (what `wg setconf` sends).
pub fn as_set_request(snap: &DeviceSnapshot) -> String {
    let mut s = String::new();
    if let Some(k) = &snap.private_key {
        let _ = writeln!(s, "private_key={}", k.to_hex());
    }
    let _ = writeln!(s, "listen_port={}", snap.listen_port);
    let _ = writeln!(s, "fwmark={}", snap.fwmark);
    s.push_str("replace_peers=true\n");
    for p in &snap.peers {
        let _ = writeln!(s, "public_key={}", p.public_key.to_hex());
        if let Some(k) = &p.preshared_key {
            let _ = writeln!(s, "preshared_key={}", k.to_hex());
        }
        if let Some(e) = p.endpoint {
            let _ = writeln!(s, "endpoint={e}");
        }
        let _ = writeln!(
            s,
            "persistent_keepalive_interval={}",
            p.persistent_keepalive_interval
        );
        s.push_str("replace_allowed_ips=true\n");
        for a in &p.allowed_ips {
            let _ = writeln!(s, "allowed_ip={a}");
        }
    }
    s
}

/// Any text as a `set=1` body. What parses is applied to an empty device; its `get=1` answer
/// must be writable, and the device written back as a set request must parse and rebuild the
/// same device (nothing reported that cannot be configured back).
pub fn uapi_set(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = parse_set_request(text) else {
        return;
    };
    let mut snap = DeviceSnapshot::default();
    snap.apply(&request);
    let mut get = String::new();
    write_get_response(&snap, &mut get).expect("get response writes");
    assert!(get.ends_with("errno=0\n\n"), "{get}");
    let body = as_set_request(&snap);
    let again = parse_set_request(&body)
        .unwrap_or_else(|e| panic!("the device's own state does not parse back: {e:?}\n{body}"));
    let mut rebuilt = DeviceSnapshot::default();
    rebuilt.apply(&again);
    assert_eq!(
        rebuilt, snap,
        "set -> get -> set changed the device\n{body}"
    );
}
