//! The cargo-fuzz harness `nic_rx_ring` (netif/fuzz/src/nic_ring.rs) as a
//! bounded random-input test on the stable toolchain.

#[path = "../../netif/fuzz/src/nic_ring.rs"]
mod nic_ring;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn nic_rx_ring(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        nic_ring::run(&data);
    }
}
