//! cargo-fuzz target `entry`: the harness is `breakglass_core::fuzz::entry`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::entry(data);
});
