//! cargo-fuzz target `webhook_alertmanager`: the harness is `breakglass_core::fuzz::webhook_alertmanager`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::webhook_alertmanager(data);
});
