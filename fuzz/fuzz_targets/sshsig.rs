//! cargo-fuzz target `sshsig`: the harness is `breakglass_core::fuzz::sshsig`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    breakglass_core::fuzz::sshsig(data);
});
