//! cargo-fuzz target `proof`: the harness is `breakglass_core::fuzz::proof`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::proof(data);
});
