//! cargo-fuzz target `push_input`: the harness is `breakglass_core::fuzz::push_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::push_input(data);
});
