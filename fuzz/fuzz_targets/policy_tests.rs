//! cargo-fuzz target `policy_tests`: the harness is `breakglass_core::fuzz::policy_tests`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::policy_tests(data);
});
