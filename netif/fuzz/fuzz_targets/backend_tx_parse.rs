#![no_main]
//! Backend TX parsing against a hostile frontend that controls the TX page,
//! including between the index read and the entry reads.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netif_fuzz::harness::backend_tx(data);
});
