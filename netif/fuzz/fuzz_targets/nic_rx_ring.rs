#![no_main]
//! The NIC receive ring against a NIC that writes anything back.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netif_fuzz::nic_ring::run(data);
});
