#![no_main]
//! Backend control-ring handling against a hostile frontend (requests and
//! granted tables under its control).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netif_fuzz::harness::backend_ctrl(data);
});
