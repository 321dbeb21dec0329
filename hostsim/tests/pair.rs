//! Two domains exchanging real packets; property tests against a model:
//! every TX request answered exactly once, no slot or grant lost, order kept.

use hostsim::{run_pair, TxSpec};
use netif::{Gso, GsoType, RspStatus, PAGE_SIZE};
use proptest::prelude::*;
use std::time::Duration;

fn check(specs: Vec<TxSpec>) {
    let total_slots: usize = specs.iter().map(|s| s.frags.len()).sum();
    let rep = run_pair(specs.clone(), Duration::from_secs(20));
    assert_eq!(rep.fatal, None);
    // Every data slot completed exactly once, OK.
    assert_eq!(rep.completions.len(), total_slots);
    assert!(rep.completions.iter().all(|&(_, s)| s == RspStatus::OKAY));
    // Echoed back in order, byte for byte.
    assert_eq!(rep.received.len(), specs.len());
    for (got, want) in rep.received.iter().zip(&specs) {
        assert_eq!(got, &want.data);
    }
    // GSO parameters travel TX -> backend -> RX.
    let gsos: Vec<_> = specs.iter().map(|s| s.gso).collect();
    assert_eq!(rep.received_gso, gsos);
    assert!(rep.rx_dropped.is_empty());
    assert!(rep.backend.tx_dropped.is_empty());
    // No grant or mapping lost: only the two ring pages and the posted RX
    // buffers (one full ring) remain granted; the backend unmapped everything.
    assert_eq!(rep.front_grants_left, 2 + 256);
    assert_eq!(rep.mappings_left, 0);
}

/// A packet of `len` bytes split into fragments at random offsets.
fn spec() -> impl Strategy<Value = TxSpec> {
    (14usize..=20000, any::<u64>(), any::<bool>()).prop_map(|(len, seed, gso)| {
        let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed) as u8).collect();
        let mut frags = Vec::new();
        let mut left = len;
        let mut s = seed;
        while left > 0 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = ((s >> 33) % 2048) as usize;
            let max = (PAGE_SIZE - off).min(left);
            // Every later slot holds at least 2048 bytes (offset < 2048):
            // take enough now that the packet fits in 18 slots.
            let later = (17 - frags.len()) * 2048;
            let n = (1 + ((s >> 17) as usize % max)).max(left.saturating_sub(later));
            frags.push((off as u16, n as u16));
            left -= n;
        }
        let gso = gso.then_some(Gso {
            size: 1448,
            ty: GsoType::TCPV4,
            features: 0,
        });
        assert!(frags.len() <= 18);
        TxSpec { data, frags, gso }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn every_packet_answered_once_in_order(specs in prop::collection::vec(spec(), 1..120)) {
        check(specs);
    }
}

#[test]
fn many_small_packets_wrap_the_rings() {
    let specs = (0..2000u32)
        .map(|i| TxSpec::simple((0..60 + i % 1400).map(|b| (b ^ i) as u8).collect()))
        .collect();
    check(specs);
}

#[test]
fn max_size_packets() {
    let specs = (0..20)
        .map(|i| TxSpec::simple(vec![i as u8; 65535]))
        .collect();
    check(specs);
}
