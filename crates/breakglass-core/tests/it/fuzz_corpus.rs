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
use breakglass_core::{oidc, sshsig};

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

/// The contents of `paths`. A file that a fuzzer running at the same time
/// removed (it replaces inputs by shorter ones) after the listing is skipped.
fn read_all(paths: Vec<PathBuf>) -> Vec<(PathBuf, Vec<u8>)> {
    paths
        .into_iter()
        .filter_map(|p| match fs::read(&p) {
            Ok(data) => Some((p, data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{}: {e}", p.display()),
        })
        .collect()
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let inputs = read_all(files("corpus", target));
    assert!(!inputs.is_empty(), "fuzz/corpus/{target}/ is missing or empty: the replay would test nothing");
    inputs
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
        inputs.extend(read_all(files("artifacts", target)));
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

#[test]
fn every_corpus_holds_an_input_its_target_accepts() {
    for (target, harness) in TARGETS {
        let n_accepted = corpus(target).iter().filter(|(_, data)| harness(data)).count();
        assert!(
            n_accepted > 0,
            "no input in fuzz/corpus/{target}/ is accepted: the fuzzer never reaches past a refusal"
        );
    }
}

#[test]
fn the_sshsig_corpus_holds_signatures_the_verifier_accepts() {
    let allowed: Vec<_> = fuzz::SSHSIG_ALLOWED_KEYS.iter().map(|l| sshsig::parse_public_key(l).unwrap()).collect();
    let n_accepted = corpus("sshsig")
        .into_iter()
        .filter_map(|(_, d)| String::from_utf8(d).ok())
        .filter(|t| sshsig::verify(t, fuzz::SSHSIG_MESSAGE, sshsig::LOGIN_NAMESPACE, &allowed).is_ok())
        .count();
    assert!(n_accepted > 0, "no corpus signature verifies");
}

#[test]
fn the_fixed_instant_is_an_input_an_hour_later_no_oidc_token_verifies() {
    let keys = oidc::OidcKeys::from_jwks(&fuzz::oidc_jwks()).unwrap();
    let later = Timestamp(fuzz::NOW.millis() + 3_600_000);
    let tokens: Vec<String> = corpus("oidc")
        .into_iter()
        .filter(|(_, d)| d.first().is_some_and(|m| m % 4 == 0))
        .filter_map(|(_, d)| String::from_utf8(d[1..].to_vec()).ok())
        .collect();
    let n_now = tokens.iter().filter(|t| oidc::verify(t, &keys, &fuzz::oidc_expect(), fuzz::NOW).is_ok()).count();
    assert!(n_now > 0, "no OIDC token in the corpus verifies at fuzz::NOW");
    assert!(tokens.iter().all(|t| oidc::verify(t, &keys, &fuzz::oidc_expect(), later).is_err()));
}

/// Issue 14, found by the `webhook_opsgenie` target
/// (`fuzz/artifacts/webhook_opsgenie/crash-321c…`): an Opsgenie alert without
/// a message got the title "Opsgenie alert <tinyId>" with the `tinyId` as
/// sent, so a sender's terminal escapes reached every CLI that prints titles.
#[test]
fn issue14_an_opsgenie_tiny_id_cannot_put_control_characters_in_a_title() {
    let body = br#"{"action":"Create","alert":{"alertId":"a-1","tinyId":"\u001b]0;pwned\u0007\u001b[31m42\u007f"}}"#;
    let update = breakglass_core::incident::parse_opsgenie(body).unwrap().unwrap();
    assert!(!update.title.chars().any(char::is_control), "title {:?} holds control characters", update.title);
    assert!(update.title.contains("42"), "title {:?} lost the tiny id", update.title);
}
