//! The cargo-fuzz harnesses (netif/fuzz/src/harness.rs) run on the stable
//! toolchain as bounded random-input tests, so `cargo test` exercises them.

#[path = "../fuzz/src/harness.rs"]
mod harness;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn backend_tx_parse(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        harness::backend_tx(&data);
    }

    #[test]
    fn frontend_rx_parse(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        harness::frontend_rx(&data);
    }

    #[test]
    fn backend_ctrl_parse(data in prop::collection::vec(any::<u8>(), 0..512)) {
        harness::backend_ctrl(&data);
    }

    #[test]
    fn frame_checksum(data in prop::collection::vec(any::<u8>(), 0..1600)) {
        harness::frame_checksum(&data);
    }

    #[test]
    fn frame_checksum_ipv4_udp(tail in prop::collection::vec(any::<u8>(), 0..200), ihl in 5u8..8) {
        // Mostly well-formed IPv4/UDP, so the finishing path runs.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x40 | ihl]);
        f.resize(14 + usize::from(ihl) * 4, 0);
        let tot = (f.len() - 14 + tail.len()) as u16;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f[23] = 17;
        f.extend_from_slice(&tail);
        harness::frame_checksum(&f);
    }

    #[test]
    fn backend_gref_list(data in prop::collection::vec(any::<u8>(), 0..2400)) {
        harness::backend_gref_list(&data);
    }
}

/// Structured inputs that reach deep states: valid-looking chains.
#[test]
fn backend_tx_structured_seeds() {
    let mut n = 0;
    for seed in 0..2000u64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut input = Vec::new();
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slot = (input.len() / 16) as u8;
            // write slot: gref, offset, flags (small), id, size
            input.push(0);
            input.push(slot);
            input.extend_from_slice(&1u32.to_ne_bytes());
            input.extend_from_slice(&((x % 4096) as u16).to_ne_bytes());
            input.extend_from_slice(&((x >> 12) as u16 & 0xf).to_ne_bytes());
            input.extend_from_slice(&(slot as u16).to_ne_bytes());
            input.extend_from_slice(&((x >> 20) as u16 % 3000).to_ne_bytes());
            input.push(1);
            input.push(1);
            input.push(4);
        }
        n += harness::backend_tx(&input);
    }
    assert!(n > 0, "structured seeds should produce some valid packets");
}
