//! cargo-fuzz target `webhook_pagerduty`: the harness is `breakglass_core::fuzz::webhook_pagerduty`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::webhook_pagerduty(data);
});
