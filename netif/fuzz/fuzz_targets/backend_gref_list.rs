#![no_main]
//! Static-grant lists (`ADD`/`DEL_GREF_MAPPING`) from a hostile frontend.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netif_fuzz::harness::backend_gref_list(data);
});
