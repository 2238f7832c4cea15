//! The tunnel fragmenter (`fastpath::fragmentation`) against independent checks: etherparse
//! reads every fragment's header (and computes its checksum), and a reassembly by offset in
//! the test puts the data back together, which must be the original's, byte for byte.

use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice};
use fastpath::fragmentation::Fragmenter;
use proptest::prelude::*;

/// An IPv4 packet: `options` (a multiple of 4 bytes), `data` bytes of pattern, the original's
/// fragment offset (8-byte units) and MF flag.
fn packet(data: usize, options: &[u8], offset: u16, more: bool) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 61, IpNumber::UDP, [172, 23, 0, 2], [10, 13, 13, 2]).unwrap();
    h.identification = 0xbeef;
    h.dont_fragment = false;
    h.more_fragments = more;
    h.fragment_offset = etherparse::IpFragOffset::try_new(offset).unwrap();
    h.options = options.try_into().unwrap();
    h.set_payload_len(data).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut p = h.to_bytes().to_vec();
    p.extend((0..data).map(|i| (i * 13 + 5) as u8));
    p
}

/// Options to choose from: none, padding, record route (not copied), a copied option.
fn options() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![1, 1, 1, 0]),
        Just(vec![7, 7, 4, 0, 0, 0, 0, 0]),
        Just(vec![0x94, 4, 0, 0, 7, 3, 4, 0]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fragments_fit_the_mtu_and_reassemble_to_the_original(
        data in 1usize..3800,
        mtu in 68usize..1600,
        opts in options(),
        offset in 0u16..4000,
        more in any::<bool>(),
    ) {
        let original = packet(data, &opts, offset, more);
        let hl = 20 + opts.len();
        let plan = Fragmenter::new(&original, mtu).unwrap();
        let mut reassembled = vec![None::<u8>; data];
        let mut out = vec![0u8; 4096];
        let mut saw_last = false;
        for i in 0..plan.count() {
            let n = plan.write(&original, i, &mut out).unwrap();
            let frag = &out[..n];
            prop_assert!(n <= mtu.max(hl + 8), "fragment {i} of {n} bytes for MTU {mtu}");
            let h = Ipv4HeaderSlice::from_slice(frag).unwrap();
            let hdr = h.to_header();
            prop_assert_eq!(h.header_checksum(), hdr.calc_header_checksum());
            prop_assert_eq!(usize::from(h.total_len()), n);
            prop_assert_eq!(h.ihl() as usize * 4, hl);
            prop_assert!(!h.dont_fragment());
            prop_assert_eq!(h.identification(), 0xbeef);
            prop_assert_eq!((h.ttl(), h.protocol()), (61, IpNumber::UDP));
            prop_assert_eq!(h.source(), [172, 23, 0, 2]);
            prop_assert_eq!(h.destination(), [10, 13, 13, 2]);
            // Options: all of them in the first fragment; the copied ones in every other.
            if i == 0 {
                prop_assert_eq!(h.options(), &opts[..]);
            } else if opts.first() == Some(&0x94) {
                prop_assert_eq!(&h.options()[..4], &opts[..4]);
            }
            let at = usize::from(h.fragments_offset().value()) * 8;
            prop_assert!(at >= usize::from(offset) * 8);
            let rel = at - usize::from(offset) * 8;
            let payload = &frag[hl..];
            let last = rel + payload.len() == data;
            if !last {
                prop_assert!(h.more_fragments(), "only the last may clear MF");
                prop_assert_eq!(payload.len() % 8, 0);
            } else {
                prop_assert_eq!(h.more_fragments(), more, "the last keeps the original's MF");
                saw_last = true;
            }
            for (k, &b) in payload.iter().enumerate() {
                prop_assert!(reassembled[rel + k].is_none(), "overlap at {}", rel + k);
                reassembled[rel + k] = Some(b);
            }
        }
        prop_assert!(saw_last);
        let back: Option<Vec<u8>> = reassembled.into_iter().collect();
        prop_assert_eq!(back.as_deref(), Some(&original[hl..]), "reassembled data");
    }
}

#[test]
fn a_packet_that_fits_is_its_own_only_fragment() {
    let p = packet(1000, &[], 0, false);
    let plan = Fragmenter::new(&p, 1420).unwrap();
    assert_eq!(plan.count(), 1);
    let mut out = vec![0u8; 2048];
    let n = plan.write(&p, 0, &mut out).unwrap();
    assert_eq!(&out[..n], &p[..]);
}
