//! cargo-fuzz target `forge_push`: the harness is `breakglass_core::fuzz::forge_push`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::forge_push(data);
});
