//! cargo-fuzz target `principals`: the harness is `breakglass_core::fuzz::principals`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::principals(data);
});
