//! cargo-fuzz target `checkpoint`: the harness is `breakglass_core::fuzz::checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::checkpoint(data);
});
