//! Frames for another host's MAC (the XDP program's `pass_other_host`): a NIC in promiscuous
//! mode (tcpdump, a bridge port) or a switch that floods an unknown destination hands the
//! gateway frames that are not addressed to it. The kernel discards them (PACKET_OTHERHOST);
//! the XDP program must leave them to it rather than give them to the workers, which would
//! decrypt, forward and answer traffic sent to someone else.
//!
//! Shown in the one-armed lab (the client, gateway and server on one bridge) with the real
//! gateway and a wireguard-go client: the client's neighbour entry for the gateway is replaced
//! with a MAC nobody has, so its WireGuard datagrams (valid, for the gateway's address and
//! port) are flooded by the bridge to the gateway's eth0, which is put in promiscuous mode.
//! Its pings through the tunnel must go unanswered, the workers' `rx` and `decrypted` stay
//! where they were, and `pass_other_host` counts the frames; with the right MAC back, the
//! pings are answered again (the check is not vacuous).
//!
//! Before the fix the workers took and answered them: 5 of 5 pings answered, workers `rx` +10 (echo requests and the NAT return replies), `decrypted` +5.
//! Root only: `sudo -E cargo test -p dataplane --test gateway_foreign_mac -- --test-threads=1`.

use std::time::Duration;

use lab::{Node, Topology, SERVER_ADDR};

mod e2e_support;
use e2e_support::{
    assert_pings, gateway_stats, ping, root_test, worker_counter, xdp_counter, ControlSocket, E2e,
};

/// A locally administered unicast MAC that no interface of the lab has.
const FOREIGN_MAC: &str = "02:00:5e:00:53:99";

/// The client's interface on the bridge.
const CLIENT_IF: &str = "eth0";

/// The MAC of `ifname` in `node`, from `ip -br link`.
fn mac_of(t: &E2e, node: Node, ifname: &str) -> String {
    let out = t
        .exec_in(node, &["ip", "-br", "link", "show", "dev", ifname])
        .expect("ip -br link");
    out.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC in {out:?}"))
        .to_owned()
}

/// Points the client's neighbour entry for the gateway's endpoint at `mac`.
fn client_neighbour(t: &E2e, mac: &str) {
    let gateway = Topology::OneArmed.endpoint().ip().to_string();
    t.exec_in(
        Node::Client,
        &[
            "ip",
            "neigh",
            "replace",
            &gateway,
            "lladdr",
            mac,
            "dev",
            CLIENT_IF,
            "nud",
            "permanent",
        ],
    )
    .expect("ip neigh replace");
}

#[test]
fn frames_for_another_mac_go_to_the_kernel_not_the_workers() {
    root_test("foreign_mac", |name| {
        let control = ControlSocket::new(name);
        let t = E2e::build(name, Topology::OneArmed, false, &control.toml());
        assert_pings(&t, None, SERVER_ADDR, 3);

        let wan = Topology::OneArmed.gateway_wan_interface();
        let gateway_mac = mac_of(&t, Node::Gateway, wan);
        t.exec_in(Node::Gateway, &["ip", "link", "set", wan, "promisc", "on"])
            .expect("promiscuous mode on");
        client_neighbour(&t, FOREIGN_MAC);
        let before = gateway_stats(&control);

        let answered = ping(&t, Node::Client, None, SERVER_ADDR, 5);
        std::thread::sleep(Duration::from_millis(1500));
        let after = gateway_stats(&control);
        let delta = |name: &str| worker_counter(&after, name) - worker_counter(&before, name);
        let other_host =
            xdp_counter(&after, "pass_other_host") - xdp_counter(&before, "pass_other_host");
        eprintln!(
            "{name}: to {FOREIGN_MAC} (the gateway is {gateway_mac}): {answered} of 5 pings \
             answered; workers rx +{}, decrypted +{}; xdp pass_other_host +{other_host}",
            delta("rx"),
            delta("decrypted")
        );
        assert_eq!(
            answered, 0,
            "pings sent to another host's MAC were answered"
        );
        assert_eq!(
            delta("decrypted"),
            0,
            "the workers decrypted another host's frames"
        );
        assert_eq!(delta("rx"), 0, "the workers received another host's frames");
        assert!(
            other_host >= 5,
            "pass_other_host +{other_host}, want the 5 echoes at least"
        );

        // The same datagrams to the gateway's own MAC are taken again.
        client_neighbour(&t, &gateway_mac);
        assert_pings(&t, None, SERVER_ADDR, 3);
        let back = gateway_stats(&control);
        assert!(
            worker_counter(&back, "decrypted") >= worker_counter(&after, "decrypted") + 2,
            "the workers took nothing once the MAC was the gateway's"
        );
    });
}
