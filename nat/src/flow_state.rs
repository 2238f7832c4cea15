//! Just enough connection state to pick the right idle timeout: TCP phases from the flags
//! seen in each direction (RFC 5382 §5), UDP one-way versus both ways (RFC 4787 REQ-5).
//!
//! Sequence numbers are not tracked, so a RST is not trusted to end a connection: it only
//! shortens the timeout, and traffic seen both ways afterwards restores it (RFC 7857 §2.2).

use std::time::Duration;

use crate::config::Timeouts;
use crate::view::Protocol;
use wire::tcp::{
    FLAG_ACK as TCP_ACK, FLAG_FIN as TCP_FIN, FLAG_RST as TCP_RST, FLAG_SYN as TCP_SYN,
};

const OUT_SEEN: u8 = 1 << 0;
const IN_SEEN: u8 = 1 << 1;
/// A segment without SYN went this way: the handshake is past its first two segments.
const OUT_DATA: u8 = 1 << 2;
const IN_DATA: u8 = 1 << 3;
const FIN_OUT: u8 = 1 << 4;
const FIN_IN: u8 = 1 << 5;
const RST: u8 = 1 << 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Out,
    In,
}

/// The phase of a mapping, as reported by [`crate::Mapping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// TCP: SYN sent or received, not yet established (transitory timeout).
    TcpOpening,
    TcpEstablished,
    /// TCP: FIN seen in one direction (transitory timeout).
    TcpClosing,
    /// TCP: FIN seen in both directions.
    TcpTimeWait,
    /// TCP: RST seen.
    TcpClosed,
    UdpOneWay,
    UdpBothWays,
    IcmpQuery,
}

/// Updates the state bits of a mapping for one packet and returns them.
pub(crate) fn on_packet(proto: Protocol, bits: u8, dir: Dir, tcp_flags: u8) -> u8 {
    let seen = if dir == Dir::Out { OUT_SEEN } else { IN_SEEN };
    match proto {
        Protocol::Tcp => {
            let mut bits = bits;
            let syn = tcp_flags & TCP_SYN != 0;
            if starts_connection(proto, bits, tcp_flags) {
                bits = 0;
            }
            if tcp_flags & TCP_RST != 0 {
                return RST;
            }
            bits |= seen;
            if !syn {
                bits |= if dir == Dir::Out { OUT_DATA } else { IN_DATA };
            }
            if tcp_flags & TCP_FIN != 0 {
                bits |= if dir == Dir::Out { FIN_OUT } else { FIN_IN };
            }
            if bits & RST != 0 && bits & (OUT_SEEN | IN_SEEN) == OUT_SEEN | IN_SEEN {
                // Both ends kept talking after the RST: it did not end the connection.
                bits &= !RST;
            }
            bits
        }
        Protocol::Udp | Protocol::Icmp => bits | seen,
    }
}

/// Whether a segment with `tcp_flags` on a mapping in state `bits` starts a new session: no
/// packet seen yet, or a fresh SYN after the last connection ended (RFC 5382 REQ-2: the same
/// inside port may be reused after TIME_WAIT).
pub(crate) fn starts_session(proto: Protocol, bits: u8, tcp_flags: u8) -> bool {
    bits == 0 || starts_connection(proto, bits, tcp_flags)
}

fn starts_connection(proto: Protocol, bits: u8, tcp_flags: u8) -> bool {
    proto == Protocol::Tcp
        && tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        && matches!(
            state(proto, bits),
            FlowState::TcpClosed | FlowState::TcpTimeWait
        )
}

pub(crate) fn state(proto: Protocol, bits: u8) -> FlowState {
    match proto {
        Protocol::Tcp => {
            if bits & RST != 0 {
                FlowState::TcpClosed
            } else if bits & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN {
                FlowState::TcpTimeWait
            } else if bits & (FIN_OUT | FIN_IN) != 0 {
                FlowState::TcpClosing
            } else if bits & (OUT_SEEN | IN_SEEN) == OUT_SEEN | IN_SEEN
                && bits & (OUT_DATA | IN_DATA) != 0
            {
                FlowState::TcpEstablished
            } else {
                FlowState::TcpOpening
            }
        }
        Protocol::Udp => {
            if bits & (OUT_SEEN | IN_SEEN) == OUT_SEEN | IN_SEEN {
                FlowState::UdpBothWays
            } else {
                FlowState::UdpOneWay
            }
        }
        Protocol::Icmp => FlowState::IcmpQuery,
    }
}

pub(crate) fn timeout(t: &Timeouts, s: FlowState) -> Duration {
    match s {
        FlowState::TcpOpening | FlowState::TcpClosing => t.tcp_transitory,
        FlowState::TcpEstablished => t.tcp_established,
        FlowState::TcpTimeWait => t.tcp_time_wait,
        FlowState::TcpClosed => t.tcp_closed,
        FlowState::UdpOneWay => t.udp,
        FlowState::UdpBothWays => t.udp_bidirectional,
        FlowState::IcmpQuery => t.icmp_query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &[(Dir, u8)]) -> FlowState {
        let mut b = 0;
        for &(d, f) in steps {
            b = on_packet(Protocol::Tcp, b, d, f);
        }
        state(Protocol::Tcp, b)
    }

    #[test]
    fn three_way_handshake_then_close() {
        use Dir::*;
        assert_eq!(run(&[(Out, TCP_SYN)]), FlowState::TcpOpening);
        assert_eq!(
            run(&[(Out, TCP_SYN), (In, TCP_SYN | TCP_ACK)]),
            FlowState::TcpOpening
        );
        let est = [(Out, TCP_SYN), (In, TCP_SYN | TCP_ACK), (Out, TCP_ACK)];
        assert_eq!(run(&est), FlowState::TcpEstablished);
        let mut s = est.to_vec();
        s.push((Out, TCP_FIN | TCP_ACK));
        assert_eq!(run(&s), FlowState::TcpClosing);
        s.push((In, TCP_FIN | TCP_ACK));
        assert_eq!(run(&s), FlowState::TcpTimeWait);
        s.push((Out, TCP_SYN));
        assert_eq!(
            run(&s),
            FlowState::TcpOpening,
            "new connection after TIME_WAIT"
        );
    }

    #[test]
    fn simultaneous_open_rfc5382_req2a() {
        use Dir::*;
        let s = [
            (Out, TCP_SYN),
            (In, TCP_SYN),
            (Out, TCP_SYN | TCP_ACK),
            (In, TCP_SYN | TCP_ACK),
        ];
        assert_eq!(run(&s), FlowState::TcpOpening);
        let mut s = s.to_vec();
        s.push((In, TCP_ACK));
        assert_eq!(run(&s), FlowState::TcpEstablished);
    }

    #[test]
    fn rst_shortens_but_continued_traffic_restores() {
        use Dir::*;
        let mut s = vec![
            (Out, TCP_SYN),
            (In, TCP_SYN | TCP_ACK),
            (Out, TCP_ACK),
            (In, TCP_RST),
        ];
        assert_eq!(run(&s), FlowState::TcpClosed);
        s.push((Out, TCP_ACK));
        assert_eq!(run(&s), FlowState::TcpClosed);
        s.push((In, TCP_ACK));
        assert_eq!(run(&s), FlowState::TcpEstablished);
    }
}
