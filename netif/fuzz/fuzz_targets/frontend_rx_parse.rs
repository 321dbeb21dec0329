#![no_main]
//! Frontend RX parsing against a hostile backend that controls the RX page.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netif_fuzz::harness::frontend_rx(data);
});
