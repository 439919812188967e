//! cargo-fuzz target `oidc`: the harness is `breakglass_core::fuzz::oidc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::oidc(data);
});
