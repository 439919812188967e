//! cargo-fuzz target `webhook_opsgenie`: the harness is `breakglass_core::fuzz::webhook_opsgenie`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::webhook_opsgenie(data);
});
