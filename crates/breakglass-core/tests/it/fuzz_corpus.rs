//! Issue 14: the fuzzing corpora, replayed on stable as ordinary tests.
//!
//! Every file under `fuzz/corpus/<target>/` (what the fuzzer kept) and
//! `fuzz/artifacts/<target>/` (crash reproducers, committed once their cause
//! was fixed) goes through the same harness function libFuzzer runs
//! (`breakglass_core::fuzz`), so a crash found once stays fixed without a
//! nightly toolchain. A target whose corpus is missing or empty fails the
//! test rather than testing nothing, and the verifying targets must have at
//! least one file their verifier accepts, so that the corpus reaches past the
//! first refusal.

use std::fs;
use std::path::{Path, PathBuf};

use breakglass_core::fuzz::{self, TARGETS};
use breakglass_core::time::Timestamp;
use breakglass_core::{oidc, sshsig, token};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted; empty if the directory does not exist.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(read) = fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = read
        .map(|e| e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    out.sort();
    out
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let paths = files("corpus", target);
    assert!(!paths.is_empty(), "fuzz/corpus/{target}/ is missing or empty: the replay would test nothing");
    paths.into_iter().map(|p| (p.clone(), fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))).collect()
}

#[test]
fn every_target_has_a_fuzz_target_file_and_a_corpus() {
    for (target, _) in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("breakglass_core::fuzz::{target}(data)")),
            "{} does not call its harness",
            file.display()
        );
        corpus(target);
    }
}

#[test]
fn every_corpus_file_and_crash_reproducer_replays_without_a_panic() {
    let mut n_files = 0;
    for (target, harness) in TARGETS {
        let mut inputs = corpus(target);
        for p in files("artifacts", target) {
            inputs.push((p.clone(), fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))));
        }
        for (path, data) in inputs {
            // A panic names the file, so that `cargo +nightly fuzz run <target> <file>` reproduces it.
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                panic!("fuzz target {target} panicked on {}", path.display());
            }
            n_files += 1;
        }
    }
    assert!(n_files >= TARGETS.len());
}

/// The inputs of `target` in mode `mode` (the harness's first byte), without it.
fn mode_inputs(target: &str, mode: u8, modes: u8) -> Vec<Vec<u8>> {
    corpus(target)
        .into_iter()
        .filter(|(_, d)| d.first().is_some_and(|m| m % modes == mode))
        .map(|(_, d)| d[1..].to_vec())
        .collect()
}

#[test]
fn the_sshsig_corpus_holds_signatures_the_verifier_accepts() {
    let allowed: Vec<_> = fuzz::SSHSIG_ALLOWED_KEYS.iter().map(|l| sshsig::parse_public_key(l).unwrap()).collect();
    let accepted: Vec<_> = corpus("sshsig")
        .into_iter()
        .filter_map(|(_, d)| String::from_utf8(d).ok())
        .filter_map(|t| sshsig::verify(&t, fuzz::SSHSIG_MESSAGE, sshsig::LOGIN_NAMESPACE, &allowed).ok())
        .collect();
    assert!(!accepted.is_empty(), "no corpus signature verifies: the fuzzer never reaches the accepting path");
}

#[test]
fn the_token_corpora_hold_tokens_the_verifiers_accept() {
    let keys = token::KeySet::new([token::TokenSigner::from_seed(&fuzz::TOKEN_SEED).public_key().clone()]).unwrap();
    let n_grant = mode_inputs("grant_token", 0, 4)
        .iter()
        .filter_map(|d| std::str::from_utf8(d).ok())
        .filter(|t| token::verify(t, &keys, &fuzz::token_expect(), fuzz::NOW).is_ok())
        .count();
    assert!(n_grant > 0, "no grant token in the corpus verifies");

    let keys = oidc::OidcKeys::from_jwks(&fuzz::oidc_jwks()).unwrap();
    let accepted: Vec<String> = mode_inputs("oidc", 0, 4)
        .iter()
        .filter_map(|d| std::str::from_utf8(d).ok())
        .filter_map(|t| oidc::verify(t, &keys, &fuzz::oidc_expect(), fuzz::NOW).ok())
        .map(|c| c.key_id)
        .collect();
    for kid in [fuzz::OIDC_EC_KID, fuzz::OIDC_RSA_KID] {
        assert!(accepted.iter().any(|k| k == kid), "no OIDC token in the corpus verifies with key {kid}");
    }
    // The fixed instant is an input, not the clock: an hour later every token has expired.
    let later = Timestamp(fuzz::NOW.millis() + 3_600_000);
    assert!(
        mode_inputs("oidc", 0, 4).iter().filter_map(|d| std::str::from_utf8(d).ok()).all(|t| oidc::verify(
            t,
            &keys,
            &fuzz::oidc_expect(),
            later
        )
        .is_err())
    );
}
