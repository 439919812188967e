//! cargo-fuzz target `grant_token`: the harness is `breakglass_core::fuzz::grant_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::grant_token(data);
});
