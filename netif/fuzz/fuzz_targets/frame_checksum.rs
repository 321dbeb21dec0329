#![no_main]
//! Finishing a partial TCP/UDP checksum in a frame the backend chose.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netif_fuzz::harness::frame_checksum(data);
});
