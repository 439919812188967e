//! cargo-fuzz target `webhook_generic`: the harness is `breakglass_core::fuzz::webhook_generic`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::webhook_generic(data);
});
