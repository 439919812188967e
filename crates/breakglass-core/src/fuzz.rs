//! Fuzzing harnesses: one function per cargo-fuzz target in `fuzz/` (issue
//! 14), each feeding attacker-chosen bytes to the real public API of this
//! crate and checking, where it is cheap, a property the caller relies on.
//!
//! Security: every input here is hostile (a login signature, a grant token, a
//! CI ID token, a webhook body and its headers, a checkpoint, a proof, a log
//! entry, a policy test table, a principals file). Each harness must return
//! normally for every input; a panic (including a failed `assert!`) is a
//! finding. The verifying harnesses hold fixed keys made deterministically
//! here and a fixed `now`, and check that nothing is accepted that the test
//! key did not sign.
//!
//! The same functions run in two places: under libFuzzer on nightly
//! (`cargo +nightly fuzz run <target>`, each target in `fuzz/fuzz_targets/`
//! is one line calling its function here) and on stable, where
//! `tests/it/fuzz_corpus.rs` replays every committed corpus file and crash
//! reproducer through them, so a crash found once stays fixed. They live in
//! this crate, not in `fuzz/`, so that the replay needs no nightly and the
//! harness code exists once.
//!
//! Each returns whether the input was accepted (it verified, parsed or
//! decoded), so that the replay can insist that every corpus reaches past
//! the first refusal; libFuzzer ignores the result.
//!
//! Inputs that need several parts (a header and a body, a mode and a token)
//! are split by a leading mode byte or by the first newline, as each function
//! says. The corpora in `fuzz/corpus/` are written in these shapes.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::{Hash, leaf_hash};
use breakglass_tlog::note::{self, NoteSigner, NoteVerifier};
use breakglass_tlog::proof::{root_from_inclusion, verify_consistency, verify_inclusion};
use breakglass_tlog::tlog_proof::{self, TlogProof};
use breakglass_tlog::tree::{MemoryTree, prove_consistency, prove_inclusion};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::entry::{Entry, write_canonical};
use crate::forge::{self, Forge};
use crate::incident::{self, AlertmanagerOptions, IncidentUpdate};
use crate::policy::{EXAMPLE_POLICY, Policy, run_tests};
use crate::principals::Principals;
use crate::scope::{Capability, Scope};
use crate::time::Timestamp;
use crate::{oidc, sshsig, token};

/// The instant every verifying harness runs at: Monday 2026-01-05T12:00:00Z.
pub const NOW: Timestamp = Timestamp(1_767_614_400_000);

/// The message every SSHSIG corpus signature signs (a login challenge).
pub const SSHSIG_MESSAGE: &[u8] = b"breakglass-fuzz-challenge";

/// The public halves of the keys the SSHSIG corpus was signed with, made with
/// `ssh-keygen` (and, for the security key, by hand in the `PROTOCOL.u2f`
/// format) for this purpose only; the private halves were thrown away.
pub const SSHSIG_ALLOWED_KEYS: [&str; 4] = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINnf29naE3I8S6sE1goeTgllDv88R/f400FaUCOW4I8j fuzz-ed25519",
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLUmwsnpsV9WOXkncye2LQhyFLcY06aLoJ3f20nI7Si9+cHaaW0HnDUzyDg7tBDnWWysRfhwgZJ41b4zyCk7rm8= fuzz-ecdsa",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCk0f/SvuWDYu4InOJTrxWUYTgTl40BlfeqXRKKEovh+llaV8Ize1dJyld/Nzlj6S8XmVon5UJHg1B0g1ip4gLeVf+1T63irerjmuLAWZKUe7d/jvQ8M7hGfMRo98rf/YBfp6zUI0ZQLKfuO7qZuE5p0i+wCSkKiKVLVoL5K+K1zKQt/kLABlH9s1tNTqAa9mL5EybgpVmhPTpyxbdWpY0sCa5nZEoKR8jQoFl0uJXWHrQrnd/MitnHhRI/X4N1ZY0eGk5HFnEArc8FxyroBjykVCiJhGXL4i7oZGpg3sQ/FY+K+UU7G19clbpK48iUAWUq9RHzPfbRL8Rbd7UC7Z93 fuzz-rsa",
    "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAICwcrfmkT/y+0WZi5l/0YAf4s4ATgkHDpsw32CzOUUotAAAABHNzaDo= fuzz-sk-ed25519",
];

/// The seed of the grant-token signing key (a test key, not a secret).
pub const TOKEN_SEED: [u8; 32] = [0x5a; 32];
/// The issuer grant tokens are verified against.
pub const TOKEN_ISSUER: &str = "https://breakglass.fuzz.example";
/// Who, where and what a verified grant token must allow.
pub const TOKEN_PRINCIPAL: &str = "alice";
pub const TOKEN_SCOPE: &str = "git:payments/api@refs/heads/main";

/// The ES256 signing key of the OIDC harness (a P-256 scalar; a test key).
pub const OIDC_EC_SCALAR: [u8; 32] = [0x11; 32];
pub const OIDC_EC_KID: &str = "fuzz-es256";
/// An RS256 key of the OIDC harness, public half only: the corpus holds a
/// few tokens it signed, so that the RSA path is reached.
pub const OIDC_RSA_KID: &str = "fuzz-rs256";
pub const OIDC_RSA_N: &str = "iPE0XidquqFX-LO4tHzYoaeu47zwDlfC8wdgNgFyIixQo_eGuRtT-doyAGamhC21Yb8QPxGWoFYmKXcJbfMde8K9Ln-jsX-fKw6fy59x8OAdgs4gYJBsaC00EnW2854HMUbH-gI48mK9Ts8Sj85qK26FM-sO31Sv3gAT_NhgUyFcwSptPcdMifPcb8hnzGzTVVfTMHlNghMxumimnA9JO1YUZsrho9fm_ItnBdJD3K9ldgGoE5XaOO-PL5xzNMNPowdXsor-Y4_MXDoVJtCBP9va2IbNjy50L_PeDxRVHSuMRRkxm0w9WVu1alr5XWyWfvbLsZmZnChSaUBSh26-FQ";
pub const OIDC_ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const OIDC_AUDIENCE: &str = "breakglass";

/// The seed and name of the checkpoint signing key (a test key).
pub const NOTE_SEED: [u8; 32] = [0x4e; 32];
pub const LOG_ORIGIN: &str = "fuzz.example/log";
/// The entry every `tlog-proof` in the proof corpus proves (leaf 0..n of a
/// tree whose leaves are `leaf-<i>`; see [`proof`]).
pub const PROOF_TREE_MAX: u8 = 64;

/// The webhook secret and bearer token the webhook harnesses accept.
pub const WEBHOOK_SECRET: &[u8] = b"fuzz-webhook-secret";
/// It holds a colon so that it is also a Basic `user:password` credential.
pub const WEBHOOK_TOKEN: &str = "fuzz:webhook-token";
/// How far from [`NOW`] a generic webhook timestamp may be.
pub const WEBHOOK_TOLERANCE_MS: i64 = 300_000;

fn utf8(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The part before the first newline and the part after it.
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

// ---------------------------------------------------------------------------
// SSHSIG
// ---------------------------------------------------------------------------

fn sshsig_allowed() -> &'static [ssh_key::PublicKey] {
    static KEYS: OnceLock<Vec<ssh_key::PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        SSHSIG_ALLOWED_KEYS.iter().map(|l| sshsig::parse_public_key(l).expect("the harness keys parse")).collect()
    })
}

/// The armor of an accepted signature with its base64 in 70-column lines.
/// OpenSSH (like [`sshsig::verify`]) reads lines of any width; ssh-key's PEM
/// reader insists on 70, which is no part of the format.
fn rewrap_armor(text: &str) -> String {
    let body: String = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    let lines: Vec<&str> =
        body.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    format!("-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n", lines.join("\n"))
}

/// Target `sshsig`: `data` is an armored SSH signature, verified over
/// [`SSHSIG_MESSAGE`] in the login namespace against [`SSHSIG_ALLOWED_KEYS`];
/// each of its first lines is also parsed as a public key line.
///
/// Checks: an accepted signature also verifies with ssh-key's own parser
/// (ours accepts a subset of what it does), by the key [`sshsig::verify`]
/// names, and not for another message or namespace; a security-key
/// signature is accepted only with the user-presence flag. A public key line
/// that parses re-serialises to a line that parses to the same key.
pub fn sshsig(data: &[u8]) -> bool {
    let Some(text) = utf8(data) else { return false };
    let allowed = sshsig_allowed();
    let verified = sshsig::verify(text, SSHSIG_MESSAGE, sshsig::LOGIN_NAMESPACE, allowed);
    if let Ok(v) = &verified {
        let key = &allowed[v.key_index];
        assert_eq!(v.algorithm, key.algorithm());
        assert_eq!(v.fingerprint, key.fingerprint(ssh_key::HashAlg::Sha256));
        let sig = ssh_key::SshSig::from_pem(rewrap_armor(text)).expect("an accepted signature parses in ssh-key");
        key.verify(sshsig::LOGIN_NAMESPACE, SSHSIG_MESSAGE, &sig).expect("an accepted signature verifies in ssh-key");
        if let Some(sk) = v.security_key {
            assert!(sk.user_present(), "a security-key signature without user presence was accepted");
        }
        assert!(sshsig::verify(text, b"another challenge", sshsig::LOGIN_NAMESPACE, allowed).is_err());
        assert!(sshsig::verify(text, SSHSIG_MESSAGE, "file", allowed).is_err());
        assert!(sshsig::verify(text, SSHSIG_MESSAGE, sshsig::LOGIN_NAMESPACE, &[]).is_err());
    }
    for line in text.lines().take(4) {
        if let Ok(key) = sshsig::parse_public_key(line) {
            let again = key.to_openssh().expect("a parsed key serialises");
            let reparsed = sshsig::parse_public_key(&again).expect("a serialised key parses again");
            assert_eq!(reparsed.key_data(), key.key_data());
        }
    }
    verified.is_ok()
}

// ---------------------------------------------------------------------------
// Grant tokens
// ---------------------------------------------------------------------------

fn token_signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&TOKEN_SEED)
}

fn token_keys() -> &'static token::KeySet {
    static KEYS: OnceLock<token::KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let public = token::TokenSigner::from_seed(&TOKEN_SEED).public_key().clone();
        token::KeySet::new([public]).expect("one key is a key set")
    })
}

/// What the grant-token harness expects of a token: [`TOKEN_ISSUER`], a
/// four-hour maximum, [`TOKEN_PRINCIPAL`] pushing to [`TOKEN_SCOPE`].
pub fn token_expect() -> token::Expect {
    token::Expect::new(TOKEN_ISSUER, Duration::from_secs(4 * 3600))
        .with_principal(TOKEN_PRINCIPAL)
        .with_scope(Scope::parse(TOKEN_SCOPE).expect("the harness scope parses"))
        .with_capability(Capability::Push)
}

/// The compact JWS of `header` and `claims` (JSON bytes as given), signed
/// with the grant-token test key.
fn sign_ed25519_jws(header: &[u8], claims: &[u8]) -> String {
    use ed25519_dalek::Signer as _;
    let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
    let sig = token_signing_key().sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(sig.to_bytes()))
}

/// Target `grant_token`. The first byte picks the mode (mod 4), the rest is:
/// 0, a token verified as given; 1, claims JSON, signed with the test key
/// under the header the server writes, then verified; 2, header JSON, a
/// newline and claims JSON, signed and verified; 3, a key set
/// ([`token::KeySet::parse`]).
///
/// Checks: an accepted token carries a valid Ed25519 signature by the test
/// key over its first two parts (checked here with ed25519-dalek, apart from
/// jsonwebtoken), and its claims are what [`token_expect`] demands: issuer,
/// audience, principal, a covering scope, the capability, `nbf <= now < exp`
/// (with the leeway at `nbf` only) and a lifetime within the maximum. A key
/// set that parses survives its own JWKS form.
pub fn grant_token(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else { return false };
    let expect = token_expect();
    let token = match mode % 4 {
        0 => match utf8(rest) {
            Some(t) => t.to_owned(),
            None => return false,
        },
        1 => {
            let kid = token_keys().keys()[0].key_id().to_owned();
            let header = serde_json::json!({"typ": token::TOKEN_TYPE, "alg": "EdDSA", "kid": kid});
            sign_ed25519_jws(header.to_string().as_bytes(), rest)
        }
        2 => {
            let (header, claims) = split_line(rest);
            sign_ed25519_jws(header, claims)
        }
        _ => {
            if let Some(text) = utf8(rest)
                && let Ok(set) = token::KeySet::parse(text)
            {
                let again = token::KeySet::from_jwks(&set.to_jwks()).expect("a key set's own JWKS parses");
                assert_eq!(again.keys(), set.keys());
                return true;
            }
            return false;
        }
    };
    let Ok(claims) = token::verify(&token, token_keys(), &expect, NOW) else { return false };

    // The signature, checked again without jsonwebtoken.
    use ed25519_dalek::Verifier as _;
    let (input, sig_b64) = token.rsplit_once('.').expect("an accepted token has three parts");
    let sig = B64URL.decode(sig_b64).expect("an accepted token's signature is base64url");
    let sig = ed25519_dalek::Signature::from_slice(&sig).expect("an accepted signature is 64 bytes");
    token_signing_key()
        .verifying_key()
        .verify(input.as_bytes(), &sig)
        .expect("an accepted token is signed by the test key");

    assert_eq!(claims.issuer, TOKEN_ISSUER);
    assert_eq!(claims.audience, token::AUDIENCE);
    assert_eq!(claims.principal, TOKEN_PRINCIPAL);
    assert!(claims.covers(expect.scope.as_ref().expect("the harness sets a scope")));
    assert!(claims.has_capability(&Capability::Push));
    let leeway = i64::try_from(expect.nbf_leeway.as_millis()).expect("the leeway is small");
    assert!(claims.not_before.millis() - leeway <= NOW.millis(), "accepted before nbf");
    assert!(NOW < claims.expires_at, "accepted at or after exp");
    let lifetime = i128::from(claims.expires_at.millis()) - i128::from(claims.not_before.millis());
    assert!(lifetime > 0 && lifetime <= i128::try_from(expect.max_lifetime.as_millis()).unwrap_or(i128::MAX));
    true
}

// ---------------------------------------------------------------------------
// OIDC
// ---------------------------------------------------------------------------

fn oidc_signing_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_bytes(&OIDC_EC_SCALAR.into()).expect("the harness scalar is a P-256 key")
}

/// The harness's JWKS: the ES256 key and the RS256 key.
pub fn oidc_jwks() -> String {
    let point = oidc_signing_key().verifying_key().to_encoded_point(false);
    let x = B64URL.encode(point.x().expect("an uncompressed point has x"));
    let y = B64URL.encode(point.y().expect("an uncompressed point has y"));
    serde_json::json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": OIDC_EC_KID, "alg": "ES256", "use": "sig", "x": x, "y": y},
        {"kty": "RSA", "kid": OIDC_RSA_KID, "alg": "RS256", "use": "sig", "n": OIDC_RSA_N, "e": "AQAB"},
    ]})
    .to_string()
}

fn oidc_keys() -> &'static oidc::OidcKeys {
    static KEYS: OnceLock<oidc::OidcKeys> = OnceLock::new();
    KEYS.get_or_init(|| oidc::OidcKeys::from_jwks(&oidc_jwks()).expect("the harness JWKS parses"))
}

/// What the OIDC harness expects: [`OIDC_ISSUER`], [`OIDC_AUDIENCE`], a
/// one-hour maximum lifetime and the default leeway.
pub fn oidc_expect() -> oidc::IssuerExpect {
    oidc::IssuerExpect::new(OIDC_ISSUER, OIDC_AUDIENCE, Duration::from_secs(3600))
}

fn sign_es256_jws(header: &[u8], claims: &[u8]) -> String {
    use p256::ecdsa::signature::Signer as _;
    let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
    let sig: p256::ecdsa::Signature = oidc_signing_key().sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(sig.to_bytes()))
}

/// Target `oidc`. The first byte picks the mode (mod 4), the rest is: 0, an
/// ID token verified as given (and peeked at); 1, claims JSON, signed with
/// the ES256 test key under a GitHub-like header, then verified; 2, header
/// JSON, a newline and claims JSON, signed and verified; 3, a JWKS document.
///
/// Checks: an accepted ES256 token carries a valid signature by the test key
/// (checked here with p256, apart from ring); an accepted RS256 one names the
/// RSA test key; the claims meet the expectation: issuer, audience among
/// `aud`, `iat < exp`, a lifetime within the maximum, and `now` inside
/// `[iat, exp)` widened by the leeway.
pub fn oidc(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else { return false };
    let expect = oidc_expect();
    let token = match mode % 4 {
        0 => match utf8(rest) {
            Some(t) => {
                let _ = oidc::peek_issuer_and_kid(t);
                t.to_owned()
            }
            None => return false,
        },
        1 => {
            let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": OIDC_EC_KID});
            sign_es256_jws(header.to_string().as_bytes(), rest)
        }
        2 => {
            let (header, claims) = split_line(rest);
            sign_es256_jws(header, claims)
        }
        _ => {
            if let Some(text) = utf8(rest)
                && let Ok(keys) = oidc::OidcKeys::from_jwks(text)
            {
                assert!(!keys.keys().is_empty(), "a JWKS that parses has a usable key");
                let mut kids = keys.kids();
                kids.sort_unstable();
                kids.dedup();
                assert_eq!(kids.len(), keys.keys().len(), "two usable keys share a kid");
                return true;
            }
            return false;
        }
    };
    let Ok(claims) = oidc::verify(&token, oidc_keys(), &expect, NOW) else { return false };

    if claims.key_id == OIDC_EC_KID {
        use p256::ecdsa::signature::Verifier as _;
        let (input, sig_b64) = token.rsplit_once('.').expect("an accepted token has three parts");
        let sig = B64URL.decode(sig_b64).expect("an accepted token's signature is base64url");
        let sig = p256::ecdsa::Signature::from_slice(&sig).expect("an accepted ES256 signature is r || s");
        oidc_signing_key()
            .verifying_key()
            .verify(input.as_bytes(), &sig)
            .expect("an accepted ES256 token is signed by the test key");
    } else {
        assert_eq!(claims.key_id, OIDC_RSA_KID, "accepted with a key the harness does not have");
    }
    assert_eq!(claims.issuer, OIDC_ISSUER);
    assert!(claims.audience.iter().any(|a| a == OIDC_AUDIENCE));
    assert!(!claims.subject.is_empty());
    let (exp, iat) = (claims.expires_at.millis(), claims.issued_at.millis());
    assert!(iat < exp, "accepted with exp not after iat");
    assert!(i128::from(exp) - i128::from(iat) <= 3_600_000, "accepted a lifetime over the maximum");
    let leeway = i128::try_from(expect.leeway.as_millis()).expect("the leeway is small");
    assert!(i128::from(iat) <= i128::from(NOW.millis()) + leeway, "accepted a token issued in the future");
    assert!(i128::from(NOW.millis()) < i128::from(exp) + leeway, "accepted an expired token");
    if let Some(nbf) = claims.not_before {
        assert!(i128::from(nbf.millis()) <= i128::from(NOW.millis()) + leeway, "accepted before nbf");
    }
    true
}

// ---------------------------------------------------------------------------
// Incident webhooks
// ---------------------------------------------------------------------------

/// Whether a `v1=<hex>[,…]` header holds the HMAC of `parts` under [`WEBHOOK_SECRET`].
fn holds_hmac(header: Option<&str>, parts: &[&[u8]]) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(WEBHOOK_SECRET).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    let want = mac.finalize().into_bytes();
    header.is_some_and(|h| {
        h.split(',')
            .filter_map(|e| e.trim().strip_prefix("v1="))
            .any(|sig| hex::decode(sig).is_ok_and(|b| b == want[..]))
    })
}

/// What every parser promises of an update (the limits in `incident.rs`).
fn check_update(u: &IncidentUpdate) {
    let clean =
        |s: &str, max: usize| !s.trim().is_empty() && !s.chars().any(char::is_control) && s.chars().count() <= max;
    assert!(clean(&u.external_id, incident::MAX_ID_CHARS), "bad external id {:?}", u.external_id);
    assert!(clean(&u.event_id, incident::MAX_ID_CHARS), "bad event id {:?}", u.event_id);
    assert!(clean(&u.title, incident::MAX_TITLE_CHARS), "bad title {:?}", u.title);
    if let Some(sev) = u.severity {
        assert!((1..=5).contains(&sev), "severity {sev} out of 1..=5");
    }
    assert!(u.services.len() <= incident::MAX_LIST_ITEMS && u.responders.len() <= incident::MAX_LIST_ITEMS);
    for s in &u.services {
        assert!(clean(s, incident::MAX_NAME_CHARS), "bad service {s:?}");
    }
    for r in &u.responders {
        assert!(r.id.is_some() || r.email.is_some() || r.name.is_some(), "an empty responder");
        for s in [&r.id, &r.email, &r.name].into_iter().flatten() {
            assert!(clean(s, incident::MAX_ID_CHARS.max(incident::MAX_NAME_CHARS)), "bad responder {s:?}");
        }
        if let Some(e) = &r.email {
            assert!(e.contains('@') && !e.chars().any(char::is_whitespace), "bad e-mail {e:?}");
        }
    }
    if let Some(url) = &u.url {
        let lower = url.to_ascii_lowercase();
        assert!(lower.starts_with("https://") || lower.starts_with("http://"), "bad url {url:?}");
        assert!(!url.chars().any(|c| c.is_control() || c.is_whitespace()), "bad url {url:?}");
    }
}

/// Target `webhook_pagerduty`: the first line is the `X-PagerDuty-Signature`
/// header, the rest the body. Checks: the signature is accepted only if the
/// header holds the body's HMAC under [`WEBHOOK_SECRET`]; a parsed update
/// keeps every promise of [`check_update`].
pub fn webhook_pagerduty(data: &[u8]) -> bool {
    let (header, body) = split_line(data);
    let header = utf8(header);
    if incident::verify_pagerduty(header, body, &[WEBHOOK_SECRET.to_vec()]).is_ok() {
        assert!(holds_hmac(header, &[body]), "accepted a bad signature");
    }
    let Ok(Some(update)) = incident::parse_pagerduty(body) else { return false };
    check_update(&update);
    true
}

/// Checks the `Authorization` header rule shared by Opsgenie and
/// Alertmanager: accepted only if the credentials are [`WEBHOOK_TOKEN`]
/// (as a bearer token, or for Opsgenie also as Basic `user:password`).
fn check_authorization(header: Option<&str>, basic_allowed: bool) {
    let Some(header) = header else { panic!("accepted a delivery without an Authorization header") };
    let (scheme, credentials) = header.trim().split_once(' ').expect("accepted credentials have a scheme");
    let credentials = credentials.trim_start_matches(' ');
    if scheme.eq_ignore_ascii_case("Bearer") {
        assert_eq!(credentials, WEBHOOK_TOKEN, "accepted a wrong bearer token");
    } else {
        assert!(basic_allowed && scheme.eq_ignore_ascii_case("Basic"), "accepted scheme {scheme:?}");
        let decoded = B64.decode(credentials).expect("accepted Basic credentials are base64");
        assert_eq!(decoded, WEBHOOK_TOKEN.as_bytes(), "accepted wrong Basic credentials");
    }
}

/// Target `webhook_opsgenie`: the first line is the `Authorization` header,
/// the rest the body. Checks: only [`WEBHOOK_TOKEN`] is accepted; a parsed
/// update keeps every promise of [`check_update`].
pub fn webhook_opsgenie(data: &[u8]) -> bool {
    let (header, body) = split_line(data);
    let header = utf8(header);
    if incident::verify_opsgenie(header, &[WEBHOOK_TOKEN.to_owned()]).is_ok() {
        check_authorization(header, true);
    }
    let Ok(Some(update)) = incident::parse_opsgenie(body) else { return false };
    check_update(&update);
    true
}

/// Target `webhook_alertmanager`: the first line is the `Authorization`
/// header, the rest the body, parsed both one incident per group and one per
/// alert. Checks: only the bearer [`WEBHOOK_TOKEN`] is accepted; every
/// update keeps every promise of [`check_update`]; both ways give updates
/// with distinct event ids.
pub fn webhook_alertmanager(data: &[u8]) -> bool {
    let (header, body) = split_line(data);
    let header = utf8(header);
    if incident::verify_bearer(header, &[WEBHOOK_TOKEN.to_owned()]).is_ok() {
        check_authorization(header, false);
    }
    let mut parsed = false;
    for per_alert in [false, true] {
        let opts = AlertmanagerOptions { one_incident_per_alert: per_alert, ..AlertmanagerOptions::default() };
        if let Ok(updates) = incident::parse_alertmanager(body, &opts) {
            for u in &updates {
                check_update(u);
            }
            let mut ids: Vec<&str> = updates.iter().map(|u| u.event_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), updates.len(), "two updates of one delivery share an event id");
            parsed |= !updates.is_empty();
        }
    }
    parsed
}

/// Target `webhook_generic`: the first line is `X-Breakglass-Timestamp`, the
/// second `X-Breakglass-Signature`, the rest the body. Checks: accepted only
/// with the HMAC of `<timestamp>.<body>` under [`WEBHOOK_SECRET`] and a
/// timestamp within [`WEBHOOK_TOLERANCE_MS`] of [`NOW`]; a parsed update
/// keeps every promise of [`check_update`].
pub fn webhook_generic(data: &[u8]) -> bool {
    let (ts, rest) = split_line(data);
    let (sig, body) = split_line(rest);
    let (ts, sig) = (utf8(ts), utf8(sig));
    let secrets = [WEBHOOK_SECRET.to_vec()];
    if incident::verify_generic(ts, sig, body, &secrets, NOW, WEBHOOK_TOLERANCE_MS).is_ok() {
        let digits = ts.expect("accepted with a timestamp").trim();
        assert!(holds_hmac(sig, &[digits.as_bytes(), b".", body]), "accepted a bad signature");
        let secs: i64 = digits.parse().expect("an accepted timestamp is a number");
        assert!((secs * 1000 - NOW.millis()).abs() <= WEBHOOK_TOLERANCE_MS, "accepted a stale timestamp");
    }
    let Ok(update) = incident::parse_generic(body) else { return false };
    check_update(&update);
    true
}

// ---------------------------------------------------------------------------
// Forge push webhooks
// ---------------------------------------------------------------------------

/// The `webhook-id` and `webhook-timestamp` of the GitLab deliveries the
/// `forge_push` harness signs (the timestamp is [`NOW`]).
pub const FORGE_DELIVERY_ID: &str = "fuzz-delivery";

/// Headers for a delivery of `forge` whose signature header holds `signature`.
fn forge_headers<'a>(forge: Forge, signature: &'a str, ts: &'a str) -> Vec<(&'a str, &'a str)> {
    match forge {
        Forge::GitHub => vec![
            ("X-Hub-Signature-256", signature),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", FORGE_DELIVERY_ID),
        ],
        Forge::GitLab => vec![
            ("webhook-signature", signature),
            ("webhook-id", FORGE_DELIVERY_ID),
            ("webhook-timestamp", ts),
            ("X-Gitlab-Event", "Push Hook"),
        ],
        Forge::Gitea => {
            vec![("X-Gitea-Signature", signature), ("X-Gitea-Event", "push"), ("X-Gitea-Delivery", FORGE_DELIVERY_ID)]
        }
        Forge::Forgejo => vec![
            ("X-Forgejo-Signature", signature),
            ("X-Forgejo-Event", "push"),
            ("X-Forgejo-Delivery", FORGE_DELIVERY_ID),
        ],
    }
}

fn forge_verify(forge: Forge, headers: &forge::Headers<'_>, body: &[u8]) -> Result<forge::Delivery, forge::AuthError> {
    let secrets = [WEBHOOK_SECRET];
    match forge {
        Forge::GitHub => forge::verify_github(headers, body, &secrets),
        Forge::GitLab => {
            let config =
                forge::GitLabAuth::Signing { keys: vec![WEBHOOK_SECRET.to_vec()], max_age_ms: WEBHOOK_TOLERANCE_MS };
            forge::verify_gitlab(headers, body, &config, NOW)
        }
        Forge::Gitea => forge::verify_gitea(headers, body, &secrets, forge::GiteaFlavour::Gitea),
        Forge::Forgejo => forge::verify_gitea(headers, body, &secrets, forge::GiteaFlavour::Forgejo),
    }
}

/// Target `forge_push`: the first byte chooses the forge (GitHub, GitLab with
/// a signing token, Gitea, Forgejo, by its value modulo 4), the rest up to
/// the first newline is the signature header, the rest the body. Checks: a
/// signature is accepted only if it is the HMAC under [`WEBHOOK_SECRET`]
/// (for GitLab, of `fuzz-delivery.<NOW in seconds>.<body>`); a correctly
/// signed body always verifies; a parsed push keeps the promises of
/// [`forge::ForgePush`] (object ids and ref name well-formed, `created` and
/// `deleted` as `before` and `after` say, lists bounded, names clean).
pub fn forge_push(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else { return false };
    let forge = Forge::ALL[usize::from(mode % 4)];
    let (sig, body) = split_line(rest);
    let ts = (NOW.millis() / 1000).to_string();
    let good = match forge {
        Forge::GitHub => forge::sign_github(WEBHOOK_SECRET, body),
        Forge::GitLab => forge::sign_gitlab(WEBHOOK_SECRET, FORGE_DELIVERY_ID, NOW.millis() / 1000, body),
        Forge::Gitea | Forge::Forgejo => forge::sign_gitea(WEBHOOK_SECRET, body),
    };
    if let Some(sig) = utf8(sig) {
        let headers = forge::Headers::new(forge_headers(forge, sig, &ts));
        if forge_verify(forge, &headers, body).is_ok() {
            let accepted = match forge {
                Forge::GitLab => sig.split_ascii_whitespace().any(|e| e == good),
                Forge::GitHub => sig.trim().eq_ignore_ascii_case(&good),
                Forge::Gitea | Forge::Forgejo => sig.trim().eq_ignore_ascii_case(&good),
            };
            assert!(accepted, "accepted a bad signature");
        }
    }
    let headers = forge::Headers::new(forge_headers(forge, &good, &ts));
    let delivery = forge_verify(forge, &headers, body).expect("a correctly signed delivery verifies");
    let Ok(forge::ForgeEvent::Push(push)) = forge::parse_push(&delivery, body) else { return false };
    let clean = |s: &str| {
        !s.trim().is_empty() && !s.chars().any(char::is_control) && s.chars().count() <= forge::MAX_NAME_CHARS
    };
    assert_eq!(push.forge, forge);
    assert!(crate::push_input::is_oid(&push.before) && crate::push_input::is_oid(&push.after), "{push:?}");
    assert!(crate::push_input::check_refname(&push.ref_name).is_ok(), "{push:?}");
    assert_eq!(push.created, crate::push_input::is_zero(&push.before));
    assert_eq!(push.deleted, crate::push_input::is_zero(&push.after));
    assert_eq!(push.forced.is_some(), forge == Forge::GitHub);
    assert!(clean(&push.repository) && clean(&push.pusher.login));
    assert!(push.commits.len() <= forge::MAX_COMMITS);
    for c in &push.commits {
        assert!(crate::push_input::is_oid(&c.id));
        for name in [&c.author_name, &c.author_email].into_iter().flatten() {
            assert!(clean(name), "bad name {name:?}");
        }
        assert!(c.added.len() <= forge::MAX_FILES && c.removed.len() <= forge::MAX_FILES);
        for tag in c.grant_tags() {
            assert!(!tag.is_empty() && tag.trim() == tag, "bad tag {tag:?}");
        }
    }
    true
}

// ---------------------------------------------------------------------------
// Checkpoints, proofs and entries
// ---------------------------------------------------------------------------

fn note_signer() -> &'static NoteSigner {
    static SIGNER: OnceLock<NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(|| NoteSigner::from_seed(LOG_ORIGIN, &NOTE_SEED).expect("the harness key name is valid"))
}

fn note_verifier() -> NoteVerifier {
    note_signer().verifier()
}

/// Target `checkpoint`: `data` is a signed checkpoint note (or a bare body).
///
/// Checks: a body that parses re-serialises to a prefix of itself (extension
/// lines are kept out) that parses to the same checkpoint; a note that opens
/// under the test key contains the test key's own (deterministic Ed25519)
/// signature of its text, so nothing unsigned is accepted, and its body is
/// the checkpoint returned.
pub fn checkpoint(data: &[u8]) -> bool {
    let Some(text) = utf8(data) else { return false };
    if let Ok(cp) = Checkpoint::parse_text(text) {
        let again = cp.to_text();
        assert!(text.starts_with(&again), "a parsed checkpoint does not re-serialise to its own prefix");
        assert_eq!(Checkpoint::parse_text(&again).as_ref(), Ok(&cp));
    }
    let verifier = note_verifier();
    if let Ok(opened) = note::open(text, std::slice::from_ref(&verifier)) {
        let genuine = note_signer().sign(&opened.text).expect("an opened text can be signed");
        let sig_line = genuine.rsplit('\n').nth(1).expect("a signed note has a signature line");
        assert!(text.lines().any(|l| l == sig_line), "a note opened without the test key's signature");
        assert!(!opened.verified_by.is_empty() && opened.verified_by.iter().all(|n| n == LOG_ORIGIN));
    }
    let Ok(cp) = Checkpoint::open(text, LOG_ORIGIN, std::slice::from_ref(&verifier)) else { return false };
    assert_eq!(cp.origin, LOG_ORIGIN);
    let (body, _) = note::split(text).expect("an opened note splits");
    assert_eq!(Checkpoint::parse_text(body).as_ref(), Ok(&cp));
    true
}

/// The tree of `n` leaves `leaf-0`, `leaf-1`, … that the proof harness proves against.
fn proof_tree(n: u64) -> MemoryTree {
    let mut tree = MemoryTree::default();
    for i in 0..n {
        tree.append(leaf_hash(format!("leaf-{i}").as_bytes()));
    }
    tree
}

fn hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks_exact(32).map(|c| Hash::from_slice(c).expect("32 bytes")).collect()
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        b.copy_from_slice(src);
    }
    u64::from_be_bytes(b)
}

/// Target `proof`. Text starting with `c2sp.org/tlog-proof@v1` is a
/// tlog-proof, verified for the entry `leaf-<index>` against the test log
/// key; otherwise the first byte picks the mode (mod 3) and the rest is:
/// 0, an inclusion proof `[size, index, hashes…]` (one byte each, then
/// 32-byte hashes) in the tree of [`proof_tree`]; 1, a consistency proof
/// `[new, old, hashes…]` in the same trees; 2, raw RFC 9162 inputs
/// (`index u64, size u64, leaf, root, hashes…` big-endian) for robustness.
///
/// Checks: a tlog-proof that parses survives its own text form, and one that
/// verifies proves an index below its checkpoint's size; in the real trees a
/// proof verifies if and only if it is the one the tree makes (the tree's own
/// proof always verifies, and no other is accepted).
pub fn proof(data: &[u8]) -> bool {
    if data.starts_with(tlog_proof::HEADER.as_bytes()) {
        let Some(text) = utf8(data) else { return false };
        let Ok(p) = TlogProof::parse(text) else { return false };
        assert_eq!(TlogProof::parse(&p.to_text()).as_ref(), Ok(&p), "a parsed tlog-proof does not round-trip");
        let entry = format!("leaf-{}", p.index);
        let Ok(cp) = p.verify(entry.as_bytes(), LOG_ORIGIN, &note_verifier()) else { return false };
        assert!(p.index < cp.size);
        assert!(p.verify(b"another entry", LOG_ORIGIN, &note_verifier()).is_err());
        return true;
    }
    let Some((&mode, rest)) = data.split_first() else { return false };
    match mode % 3 {
        0 => {
            let [size, index, proof @ ..] = rest else { return false };
            let size = 1 + u64::from(*size % PROOF_TREE_MAX);
            let index = u64::from(*index) % size;
            let tree = proof_tree(size);
            let root = tree.root();
            let leaf = leaf_hash(format!("leaf-{index}").as_bytes());
            let genuine = prove_inclusion(size, index, &tree).expect("the tree proves its own leaves");
            assert_eq!(verify_inclusion(index, size, &leaf.0, &genuine, &root.0), Ok(()));
            let given = hashes(proof);
            let ok = verify_inclusion(index, size, &leaf.0, &given, &root.0).is_ok();
            if ok {
                assert_eq!(given, genuine, "accepted an inclusion proof the tree did not make");
            }
            ok
        }
        1 => {
            let [new, old, proof @ ..] = rest else { return false };
            let new = 1 + u64::from(*new % PROOF_TREE_MAX);
            let old = 1 + u64::from(*old) % new;
            let new_tree = proof_tree(new);
            let old_root = proof_tree(old).root();
            let genuine = prove_consistency(new, old, &new_tree).expect("the tree proves its own prefixes");
            assert_eq!(verify_consistency(old, new, &old_root.0, &new_tree.root().0, &genuine), Ok(()));
            let given = hashes(proof);
            let ok = verify_consistency(old, new, &old_root.0, &new_tree.root().0, &given).is_ok();
            if ok {
                assert_eq!(given, genuine, "accepted a consistency proof the tree did not make");
            }
            ok
        }
        _ => {
            let (index, size) = (u64_at(rest, 0), u64_at(rest, 8));
            let leaf = rest.get(16..48).unwrap_or_default();
            let root = rest.get(48..80).unwrap_or_default();
            let given = hashes(rest.get(80..).unwrap_or_default());
            let included = verify_inclusion(index, size, leaf, &given, root).is_ok();
            let consistent = verify_consistency(index, size, leaf, root, &given).is_ok();
            if let Some(leaf) = Hash::from_slice(leaf) {
                let _ = root_from_inclusion(index, size, &leaf, &given);
            }
            included || consistent
        }
    }
}

/// Target `entry`: `data` is a log entry's bytes, and also any JSON value.
///
/// Checks: a decoded entry re-encodes to exactly the same bytes and decodes
/// again to itself (one entry, one encoding); the canonical JSON writer is
/// idempotent and keeps the value.
pub fn entry(data: &[u8]) -> bool {
    let decoded = Entry::decode(data);
    if let Ok(e) = &decoded {
        let bytes = e.encode().expect("a decoded entry encodes");
        assert_eq!(bytes, data, "a decoded entry re-encodes to other bytes");
        assert_eq!(Entry::decode(&bytes).as_ref(), Ok(e));
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return decoded.is_ok() };
    let mut out = Vec::new();
    if write_canonical(&value, &mut out).is_ok() {
        let back: Value = serde_json::from_slice(&out).expect("canonical JSON is JSON");
        assert_eq!(back, value, "canonical JSON changed the value");
        let mut again = Vec::new();
        write_canonical(&back, &mut again).expect("canonical JSON writes again");
        assert_eq!(again, out, "canonical JSON is not idempotent");
    }
    decoded.is_ok()
}

// ---------------------------------------------------------------------------
// Policy test tables and principals files
// ---------------------------------------------------------------------------

fn example_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::load(&[("breakglass.cedar".to_owned(), EXAMPLE_POLICY.to_owned())]).expect("the example policy loads")
    })
}

/// Target `policy_tests`: `data` is a `breakglass policy test` table, run
/// against the example policy. Checks: every case result is consistent
/// (`passed` exactly when the decision is the expected one), one result per
/// case.
pub fn policy_tests(data: &[u8]) -> bool {
    let Some(text) = utf8(data) else { return false };
    let Ok(results) = run_tests(example_policy(), text) else { return false };
    assert!(!results.is_empty(), "a table that ran has a case");
    for r in &results {
        assert_eq!(r.passed, r.allowed == r.expected_allow, "case {:?} is inconsistent", r.name);
    }
    true
}

/// Target `principals`: `data` is a principals file. Checks: every principal
/// of a file that parses is found by its name, each of its e-mails (in any
/// ASCII case) and each of its accounts, and by nothing else's.
pub fn principals(data: &[u8]) -> bool {
    let Some(text) = utf8(data) else { return false };
    let Ok(all) = Principals::parse(text, "principals.toml") else { return false };
    assert_eq!(all.iter().count(), all.len());
    for p in &all {
        assert_eq!(all.get(&p.name), Some(p), "principal {:?} not found by name", p.name);
        for e in &p.emails {
            assert_eq!(all.by_email(e).map(|q| &q.name), Some(&p.name));
            assert_eq!(all.by_email(&e.to_ascii_uppercase()).map(|q| &q.name), Some(&p.name));
        }
        for a in &p.accounts {
            assert_eq!(all.by_account(a).map(|q| &q.name), Some(&p.name));
        }
    }
    true
}

/// A harness: one input; `true` when it was accepted (verified, parsed or
/// decoded: it went past every refusal). A panic is a finding.
pub type Harness = fn(&[u8]) -> bool;

/// `push_input`: the Git hook's standard input and push options, as a pusher
/// writes them. The first byte chooses: 0, the update lines; 1, push options
/// (one a line) for the grant token; 2, `GIT_PUSH_OPTION_COUNT`; anything
/// else, a ref name checked and matched against protected patterns. An
/// accepted update is always well-formed, and an accepted token holds only
/// token characters.
pub fn push_input(data: &[u8]) -> bool {
    use crate::push_input::{self as pi};
    let Some((&mode, rest)) = data.split_first() else { return false };
    match mode {
        0 => match pi::parse_updates(rest) {
            Ok(updates) => {
                for u in &updates {
                    assert!(pi::is_oid(&u.old) && pi::is_oid(&u.new) && u.old.len() == u.new.len(), "{u:?}");
                    assert!(pi::check_refname(&u.refname).is_ok(), "{u:?}");
                    assert!(!u.refname.contains("..") && !u.refname.chars().any(char::is_control), "{u:?}");
                }
                !updates.is_empty()
            }
            Err(_) => false,
        },
        1 => {
            let text = String::from_utf8_lossy(rest);
            match pi::grant_token(text.lines()) {
                Ok(Some(token)) => {
                    assert!(!token.is_empty() && token.len() <= pi::MAX_TOKEN);
                    assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=')));
                    true
                }
                Ok(None) | Err(_) => false,
            }
        }
        2 => {
            std::str::from_utf8(rest).is_ok_and(|s| pi::option_count(Some(s)).is_ok_and(|n| n <= pi::MAX_PUSH_OPTIONS))
        }
        _ => {
            let Ok(name) = std::str::from_utf8(rest) else { return false };
            let patterns = ["refs/heads/main".to_owned(), "refs/heads/release/*".to_owned()];
            let _ = pi::case_variant_of(&patterns, name);
            let _ = pi::normalization_variant_of(&patterns, name);
            let ok = pi::check_refname(name).is_ok();
            if ok {
                assert!(name.starts_with("refs/") && !name.contains("..") && !name.contains("//"), "{name:?}");
            }
            ok && patterns.iter().any(|p| pi::matches(p, name))
        }
    }
}

/// Every target, by the name of its directory under `fuzz/corpus/`, for the
/// stable replay test.
pub const TARGETS: [(&str, Harness); 14] = [
    ("sshsig", sshsig),
    ("grant_token", grant_token),
    ("oidc", oidc),
    ("webhook_pagerduty", webhook_pagerduty),
    ("webhook_opsgenie", webhook_opsgenie),
    ("webhook_alertmanager", webhook_alertmanager),
    ("webhook_generic", webhook_generic),
    ("checkpoint", checkpoint),
    ("proof", proof),
    ("entry", entry),
    ("policy_tests", policy_tests),
    ("principals", principals),
    ("push_input", push_input),
    ("forge_push", forge_push),
];
