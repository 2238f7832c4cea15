//! The gateway's WAN address changes while a client is connected (a DHCP renewal, an
//! operator's `ip addr`), issue 16 item 7: the XDP program accepts WireGuard only on the
//! addresses it was given, so before the fix the client's datagrams to the new address were
//! passed to the kernel, where no socket reads them, and the tunnel was dead until a restart.
//! The gateway now re-reads its addresses (src/addr_watch.rs) and follows.
//!
//! Two-armed, wireguard-go client: the WAN address 198.18.0.1 is replaced by 198.18.0.5 and the
//! client is pointed at the new one (as a client re-resolving a dynamic DNS name would be);
//! pings through the tunnel must be answered again, on the same session.
//!
//! Skips with a message when not root. `sudo -E cargo test -p dataplane --test
//! gateway_address_change -- --nocapture --test-threads=1`.

use std::time::{Duration, Instant};

use lab::{Node, Topology, LISTEN_PORT, SERVER_ADDR, TWO_ARMED_GATEWAY_WAN_ADDR};

mod e2e_support;
use e2e_support::{assert_pings, ping, root_test, E2e};

const NEW_WAN_ADDR: &str = "198.18.0.5";

#[test]
fn wan_address_change_is_followed() {
    root_test("wan_address_change", |name| {
        let mut t = E2e::build(name, Topology::TwoArmed, false, "");
        assert_pings(&t, None, SERVER_ADDR, 3);

        let old = format!("{TWO_ARMED_GATEWAY_WAN_ADDR}/24");
        let new = format!("{NEW_WAN_ADDR}/24");
        t.exec_in(Node::Gateway, &["ip", "addr", "del", &old, "dev", "wan0"])
            .unwrap();
        t.exec_in(Node::Gateway, &["ip", "addr", "add", &new, "dev", "wan0"])
            .unwrap();
        let gateway_public = t.keys().gateway.public.clone();
        let endpoint = format!("{NEW_WAN_ADDR}:{LISTEN_PORT}");
        t.wg(
            Node::Client,
            &["set", "wg0", "peer", &gateway_public, "endpoint", &endpoint],
        )
        .unwrap();

        // The gateway reads its addresses once a second: allow a few.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut answered = 0;
        while Instant::now() < deadline {
            answered = ping(&t, Node::Client, None, SERVER_ADDR, 2);
            if answered > 0 {
                break;
            }
        }
        assert!(
            answered > 0,
            "no ping through the tunnel answered within 10 s of the address change"
        );
        assert_eq!(
            ping(&t, Node::Client, None, SERVER_ADDR, 5),
            5,
            "pings after the change"
        );
        let log = t.gateway_log();
        assert!(
            log.contains("addresses changed") && log.contains(NEW_WAN_ADDR),
            "the gateway did not log the change:\n{log}"
        );
    });
}
