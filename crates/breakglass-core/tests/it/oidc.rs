//! CI OIDC ID tokens (`breakglass_core::oidc`): keys generated here (RSA 2048
//! with the `rsa` crate, P-256 with `p256`), tokens minted here, shaped like
//! GitHub Actions' and GitLab CI's. Every refusal asserts its error variant.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use breakglass_core::oidc::{
    GITHUB_ISSUER, IssuerExpect, KeyType, MAX_JWKS_KEYS, MAX_TOKEN_BYTES, OidcError, OidcKeys, peek_issuer_and_kid,
    verify,
};
use breakglass_core::time::Timestamp;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey as EcSigningKey;
use p256::pkcs8::EncodePrivateKey as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::Sha256;

const GITLAB: &str = "https://gitlab.example.com";
const AUD: &str = "https://breakglass.example.com";
const RSA_KID: &str = "gh-rsa-1";
const EC_KID: &str = "gl-ec-1";
const ROTATED_KID: &str = "gh-rsa-2";
/// 2001-09-09T01:46:40Z, in seconds: long past, so a validator that read the
/// system clock would call every token here expired.
const IAT: i64 = 1_000_000_000;
const NOW: Timestamp = Timestamp((IAT + 30) * 1000);
const HOUR: Duration = Duration::from_secs(3600);
const LEEWAY: Duration = Duration::from_secs(60);
const LEEWAY_MS: i64 = 60_000;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64URL.encode(bytes)
}

struct RsaSigner {
    private: RsaPrivateKey,
    encoding: EncodingKey,
}

impl RsaSigner {
    fn generate(bits: usize) -> RsaSigner {
        let private = RsaPrivateKey::new(&mut OsRng, bits).unwrap();
        let encoding = EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
        RsaSigner { private, encoding }
    }

    fn jwk(&self, kid: &str) -> Value {
        json!({
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
            "n": b64(self.private.n().to_bytes_be()),
            "e": b64(self.private.e().to_bytes_be()),
        })
    }

    /// The SubjectPublicKeyInfo PEM, as an attacker would download it.
    fn public_pem(&self) -> String {
        let der = self.private.to_public_key().to_public_key_der().unwrap();
        let body = STANDARD.encode(der.as_bytes());
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }
}

struct EcSigner {
    key: EcSigningKey,
    encoding: EncodingKey,
}

impl EcSigner {
    fn generate() -> EcSigner {
        let key = EcSigningKey::random(&mut OsRng);
        let encoding = EncodingKey::from_ec_der(key.to_pkcs8_der().unwrap().as_bytes());
        EcSigner { key, encoding }
    }

    fn jwk(&self, kid: &str) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "kid": kid,
            "use": "sig",
            "alg": "ES256",
            "x": b64(point.x().unwrap()),
            "y": b64(point.y().unwrap()),
        })
    }
}

struct Signers {
    rsa: RsaSigner,
    /// Another RSA key: the rotated-in key, and the impostor that reuses RSA_KID.
    rsa_other: RsaSigner,
    ec: EcSigner,
    ec_other: EcSigner,
}

/// Generated once per test run (RSA key generation takes a moment).
fn signers() -> &'static Signers {
    static SIGNERS: OnceLock<Signers> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        let (rsa, rsa_other) = std::thread::scope(|s| {
            let a = s.spawn(|| RsaSigner::generate(2048));
            let b = s.spawn(|| RsaSigner::generate(2048));
            (a.join().unwrap(), b.join().unwrap())
        });
        Signers { rsa, rsa_other, ec: EcSigner::generate(), ec_other: EcSigner::generate() }
    })
}

fn jwks_json() -> String {
    json!({ "keys": [signers().rsa.jwk(RSA_KID), signers().ec.jwk(EC_KID)] }).to_string()
}

fn keys() -> OidcKeys {
    OidcKeys::from_jwks(&jwks_json()).unwrap()
}

fn github() -> IssuerExpect {
    IssuerExpect { issuer: GITHUB_ISSUER.into(), audience: AUD.into(), max_lifetime: HOUR, leeway: LEEWAY }
}

fn gitlab() -> IssuerExpect {
    IssuerExpect::new(GITLAB, AUD, HOUR)
}

fn github_claims() -> Value {
    json!({
        "jti": "6f0d7a52-94e1-4c7e-9a55-3b1c3fbd2a10",
        "sub": "repo:acme/payments-api:environment:production",
        "aud": AUD,
        "ref": "refs/heads/main",
        "sha": "d6e8a5f1c2b3a4958f7e6d5c4b3a29180f7e6d5c",
        "repository": "acme/payments-api",
        "repository_owner": "acme",
        "repository_owner_id": "4242",
        "repository_id": "123456789",
        "repository_visibility": "private",
        "run_id": "9876543210",
        "run_number": "42",
        "run_attempt": "1",
        "actor": "alice",
        "actor_id": "1001",
        "workflow": "deploy",
        "event_name": "push",
        "ref_type": "branch",
        "environment": "production",
        "job_workflow_ref": "acme/payments-api/.github/workflows/deploy.yml@refs/heads/main",
        "iss": GITHUB_ISSUER,
        "nbf": IAT - 5,
        "exp": IAT + 300,
        "iat": IAT,
    })
}

fn gitlab_claims() -> Value {
    json!({
        "namespace_id": "72",
        "namespace_path": "acme",
        "project_id": "20",
        "project_path": "acme/payments-api",
        "user_id": "1",
        "user_login": "alice",
        "user_email": "alice@example.com",
        "pipeline_id": "574",
        "pipeline_source": "push",
        "job_id": "302",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "environment": "production",
        "environment_protected": "true",
        "deployment_tier": "production",
        "runner_id": 1,
        "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
        "iss": GITLAB,
        "iat": IAT,
        "nbf": IAT - 5,
        // exp - iat == max_lifetime: the longest accepted.
        "exp": IAT + 3600,
        "sub": "project_path:acme/payments-api:ref_type:branch:ref:main",
        "aud": [GITLAB, AUD],
    })
}

/// GitHub's header shape (it sends x5t, which is ignored).
fn rs_header() -> Value {
    json!({"typ": "JWT", "alg": "RS256", "x5t": "c29tZS10aHVtYnByaW50", "kid": RSA_KID})
}

fn es_header() -> Value {
    json!({"kid": EC_KID, "typ": "JWT", "alg": "ES256"})
}

/// A token with exactly this header and these claims, signed with `alg`.
fn mint(header: &Value, claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

/// A token with these header and claims bytes and a raw signature.
fn craft(header: &str, claims: &str, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header), b64(claims), b64(signature))
}

fn rs(claims: &Value) -> String {
    mint(&rs_header(), claims, Algorithm::RS256, &signers().rsa.encoding)
}

fn es(claims: &Value) -> String {
    mint(&es_header(), claims, Algorithm::ES256, &signers().ec.encoding)
}

fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(mac.finalize().into_bytes()))
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn github_rs256_tokens_verify() {
    // Through jsonwebtoken's own encoder, as a third-party issuer would sign.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(RSA_KID.into());
    let token = jsonwebtoken::encode(&header, &github_claims(), &signers().rsa.encoding).unwrap();
    let claims = verify(&token, &keys(), &github(), NOW).unwrap();
    assert_eq!(claims.key_id, RSA_KID);
    assert_eq!(claims.issuer, GITHUB_ISSUER);
    assert_eq!(claims.subject, "repo:acme/payments-api:environment:production");
    assert_eq!(claims.audience, vec![AUD.to_owned()]);
    assert_eq!(claims.issued_at, Timestamp(IAT * 1000));
    assert_eq!(claims.expires_at, Timestamp((IAT + 300) * 1000));
    assert_eq!(claims.not_before, Some(Timestamp((IAT - 5) * 1000)));
    assert_eq!(claims.str_claim("repository"), Some("acme/payments-api"));
    assert_eq!(claims.str_claim("environment"), Some("production"));
    assert_eq!(claims.str_claim("actor"), Some("alice"));
    assert_eq!(claims.str_claim("workflow"), Some("deploy"));
    assert_eq!(claims.str_claim("ref"), Some("refs/heads/main"));
    assert_eq!(
        claims.str_claim("job_workflow_ref"),
        Some("acme/payments-api/.github/workflows/deploy.yml@refs/heads/main")
    );
    assert_eq!(claims.id_claim("repository_id").as_deref(), Some("123456789"));
    assert_eq!(claims.id_claim("run_id").as_deref(), Some("9876543210"));
    assert_eq!(claims.raw, github_claims().as_object().unwrap().clone());

    // GitHub's header shape, with x5t; and with no typ at all.
    assert!(verify(&rs(&github_claims()), &keys(), &github(), NOW).is_ok());
    let bare = mint(&without(rs_header(), "typ"), &github_claims(), Algorithm::RS256, &signers().rsa.encoding);
    assert!(verify(&bare, &keys(), &github(), NOW).is_ok());
    // And a GitHub token signed with ES256 verifies against the EC key.
    let es_github = mint(&es_header(), &github_claims(), Algorithm::ES256, &signers().ec.encoding);
    assert_eq!(verify(&es_github, &keys(), &github(), NOW).unwrap().key_id, EC_KID);
}

#[test]
fn gitlab_es256_tokens_verify() {
    let claims = verify(&es(&gitlab_claims()), &keys(), &gitlab(), NOW).unwrap();
    assert_eq!(claims.key_id, EC_KID);
    assert_eq!(claims.issuer, GITLAB);
    assert_eq!(claims.subject, "project_path:acme/payments-api:ref_type:branch:ref:main");
    assert_eq!(claims.audience, vec![GITLAB.to_owned(), AUD.to_owned()]);
    assert_eq!(claims.expires_at, Timestamp((IAT + 3600) * 1000));
    assert_eq!(claims.str_claim("project_path"), Some("acme/payments-api"));
    assert_eq!(claims.str_claim("user_login"), Some("alice"));
    assert_eq!(claims.str_claim("environment"), Some("production"));
    assert_eq!(claims.str_claim("pipeline_source"), Some("push"));
    assert_eq!(claims.id_claim("project_id").as_deref(), Some("20"));
    // runner_id is a JSON integer: not a string claim, but an id claim.
    assert_eq!(claims.str_claim("runner_id"), None);
    assert_eq!(claims.id_claim("runner_id").as_deref(), Some("1"));

    // GitLab signs with RSA by default.
    let rs_gitlab = mint(&rs_header(), &gitlab_claims(), Algorithm::RS256, &signers().rsa.encoding);
    assert_eq!(verify(&rs_gitlab, &keys(), &gitlab(), NOW).unwrap().key_id, RSA_KID);
}

#[test]
fn id_claims_accept_digit_strings_and_integers_only() {
    #[rustfmt::skip]
    let cases: &[(&str, Value, Option<&str>)] = &[
        ("digit string", json!("123456789"), Some("123456789")),
        ("integer", json!(123456789), Some("123456789")),
        ("zero string", json!("0"), Some("0")),
        ("zero", json!(0), Some("0")),
        ("largest u64", json!(u64::MAX.to_string()), Some("18446744073709551615")),
        ("leading zero", json!("0123"), None),
        ("plus sign", json!("+123"), None),
        ("minus sign", json!("-123"), None),
        ("negative integer", json!(-123), None),
        ("fraction", json!(12.5), None),
        ("space", json!(" 123"), None),
        ("letters", json!("12a"), None),
        ("empty", json!(""), None),
        ("over u64", json!("18446744073709551616"), None),
        ("boolean", json!(true), None),
        ("array", json!(["123"]), None),
    ];
    for (name, value, want) in cases {
        let token = es(&with(gitlab_claims(), "project_id", value.clone()));
        let claims = verify(&token, &keys(), &gitlab(), NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims.id_claim("project_id").as_deref(), *want, "{name}");
    }
    let claims = verify(&es(&gitlab_claims()), &keys(), &gitlab(), NOW).unwrap();
    assert_eq!(claims.id_claim("no_such_claim"), None);
    assert_eq!(claims.str_claim("no_such_claim"), None);
}

#[test]
fn claims_are_checked() {
    let gh = github_claims;
    let exp_ms = (IAT + 300) * 1000;
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, IssuerExpect, Timestamp, OidcError)> = vec![
        ("wrong issuer", with(gh(), "iss", json!("https://evil.example")), github(), NOW,
            OidcError::WrongIssuer { expected: GITHUB_ISSUER.into(), found: "https://evil.example".into() }),
        ("issuer with a trailing slash", with(gh(), "iss", json!(format!("{GITHUB_ISSUER}/"))), github(), NOW,
            OidcError::WrongIssuer { expected: GITHUB_ISSUER.into(), found: format!("{GITHUB_ISSUER}/") }),
        ("GitLab token at the GitHub issuer", gitlab_claims(), github(), NOW,
            OidcError::WrongIssuer { expected: GITHUB_ISSUER.into(), found: GITLAB.into() }),
        ("wrong audience", with(gh(), "aud", json!("https://github.com/acme")), github(), NOW,
            OidcError::WrongAudience { expected: AUD.into(), found: vec!["https://github.com/acme".into()] }),
        ("wrong audiences", with(gh(), "aud", json!(["a", "b"])), github(), NOW,
            OidcError::WrongAudience { expected: AUD.into(), found: vec!["a".into(), "b".into()] }),
        ("audience differing in case", with(gh(), "aud", json!(AUD.to_uppercase())), github(), NOW,
            OidcError::WrongAudience { expected: AUD.into(), found: vec![AUD.to_uppercase()] }),
        ("expired", gh(), github(), Timestamp(exp_ms + LEEWAY_MS), OidcError::Expired { exp: Timestamp(exp_ms), now: Timestamp(exp_ms + LEEWAY_MS), leeway_secs: 60 }),
        ("expired long ago", gh(), github(), Timestamp(exp_ms + 86_400_000), OidcError::Expired { exp: Timestamp(exp_ms), now: Timestamp(exp_ms + 86_400_000), leeway_secs: 60 }),
        ("not yet valid (nbf)", with(gh(), "nbf", json!(IAT + 120)), github(), NOW,
            OidcError::NotYetValid { nbf: Timestamp((IAT + 120) * 1000), now: NOW, leeway_secs: 60 }),
        ("issued in the future", with(with(gh(), "iat", json!(IAT + 120)), "nbf", json!(IAT)), github(), NOW,
            OidcError::IssuedInFuture { iat: Timestamp((IAT + 120) * 1000), now: NOW, leeway_secs: 60 }),
        ("lifetime too long", with(gh(), "exp", json!(IAT + 3601)), github(), NOW,
            OidcError::LifetimeTooLong { lifetime_secs: 3601, max_secs: 3600 }),
        ("lifetime of a year", with(gh(), "exp", json!(IAT + 365 * 86_400)), github(), NOW,
            OidcError::LifetimeTooLong { lifetime_secs: 365 * 86_400, max_secs: 3600 }),
        ("exp before iat", with(gh(), "exp", json!(IAT - 1)), github(), NOW,
            OidcError::InvalidClaim { claim: "exp", reason: format!("{} is not after iat {}", Timestamp((IAT - 1) * 1000), Timestamp(IAT * 1000)) }),
        ("missing sub", without(gh(), "sub"), github(), NOW, OidcError::MissingClaim("sub")),
        ("missing exp", without(gh(), "exp"), github(), NOW, OidcError::MissingClaim("exp")),
        ("missing iat", without(gh(), "iat"), github(), NOW, OidcError::MissingClaim("iat")),
        ("missing iss", without(gh(), "iss"), github(), NOW, OidcError::MissingClaim("iss")),
        ("missing aud", without(gh(), "aud"), github(), NOW, OidcError::MissingClaim("aud")),
        ("empty sub", with(gh(), "sub", json!("")), github(), NOW, OidcError::InvalidClaim { claim: "sub", reason: "empty".into() }),
        ("sub a number", with(gh(), "sub", json!(7)), github(), NOW, OidcError::InvalidClaim { claim: "sub", reason: "not a string".into() }),
        ("iss an array", with(gh(), "iss", json!([GITHUB_ISSUER])), github(), NOW, OidcError::InvalidClaim { claim: "iss", reason: "not a string".into() }),
        ("exp a string", with(gh(), "exp", json!((IAT + 300).to_string())), github(), NOW,
            OidcError::InvalidClaim { claim: "exp", reason: "not a whole number of seconds".into() }),
        ("exp a fraction", with(gh(), "exp", json!(IAT as f64 + 300.5)), github(), NOW,
            OidcError::InvalidClaim { claim: "exp", reason: "not a whole number of seconds".into() }),
        ("exp out of range", with(gh(), "exp", json!(i64::MAX)), github(), NOW,
            OidcError::InvalidClaim { claim: "exp", reason: "out of range".into() }),
        ("nbf null", with(gh(), "nbf", Value::Null), github(), NOW,
            OidcError::InvalidClaim { claim: "nbf", reason: "not a whole number of seconds".into() }),
        ("aud a number", with(gh(), "aud", json!(1)), github(), NOW,
            OidcError::InvalidClaim { claim: "aud", reason: "neither a string nor an array of strings".into() }),
        ("aud an empty array", with(gh(), "aud", json!([])), github(), NOW,
            OidcError::InvalidClaim { claim: "aud", reason: "an empty array".into() }),
        ("aud array with a number", with(gh(), "aud", json!([AUD, 1])), github(), NOW,
            OidcError::InvalidClaim { claim: "aud", reason: "an array with a member that is not a string".into() }),
    ];
    for (name, claims, expect, now, want) in cases {
        for (alg, token) in [("RS256", rs(&claims)), ("ES256", es(&claims))] {
            let got = verify(&token, &keys(), &expect, now);
            assert_eq!(got.as_ref().err(), Some(&want), "{name} ({alg}): {got:?}");
        }
    }
}

#[test]
fn time_checks_allow_the_leeway_and_no_more() {
    let exp_ms = (IAT + 300) * 1000;
    let nbf_ms = (IAT + 120) * 1000;
    let t = Timestamp;
    let ok = |claims: &Value, now: Timestamp| verify(&rs(claims), &keys(), &github(), now);

    // exp: valid while now < exp + leeway.
    assert!(ok(&github_claims(), t(exp_ms + LEEWAY_MS - 1)).is_ok());
    assert!(matches!(ok(&github_claims(), t(exp_ms + LEEWAY_MS)), Err(OidcError::Expired { .. })));
    // Without leeway, exp is exclusive.
    let strict = IssuerExpect { leeway: Duration::ZERO, ..github() };
    assert!(verify(&rs(&github_claims()), &keys(), &strict, t(exp_ms - 1)).is_ok());
    assert!(matches!(verify(&rs(&github_claims()), &keys(), &strict, t(exp_ms)), Err(OidcError::Expired { .. })));

    // nbf: valid once now + leeway >= nbf.
    let late_nbf = with(github_claims(), "nbf", json!(IAT + 120));
    assert!(ok(&late_nbf, t(nbf_ms - LEEWAY_MS)).is_ok());
    assert_eq!(
        ok(&late_nbf, t(nbf_ms - LEEWAY_MS - 1)).unwrap_err(),
        OidcError::NotYetValid { nbf: t(nbf_ms), now: t(nbf_ms - LEEWAY_MS - 1), leeway_secs: 60 }
    );
    // No nbf at all is fine.
    assert!(ok(&without(github_claims(), "nbf"), NOW).is_ok());

    // iat: not after now + leeway.
    let claims = with(with(github_claims(), "iat", json!(IAT + 90)), "nbf", json!(IAT));
    assert!(ok(&claims, t((IAT + 90) * 1000 - LEEWAY_MS)).is_ok());
    assert!(matches!(ok(&claims, t((IAT + 90) * 1000 - LEEWAY_MS - 1)), Err(OidcError::IssuedInFuture { .. })));

    // Lifetime: exp - iat == max_lifetime is the longest accepted.
    assert!(ok(&with(github_claims(), "exp", json!(IAT + 3600)), NOW).is_ok());
    assert!(matches!(
        ok(&with(github_claims(), "exp", json!(IAT + 3601)), NOW),
        Err(OidcError::LifetimeTooLong { lifetime_secs: 3601, max_secs: 3600 })
    ));
}

#[test]
fn bad_signatures_are_refused() {
    let bad_rsa = OidcError::BadSignature { kid: RSA_KID.into() };
    let bad_ec = OidcError::BadSignature { kid: EC_KID.into() };
    for (token, want) in [(rs(&github_claims()), &bad_rsa), (es(&gitlab_claims()), &bad_ec)] {
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = B64URL.decode(signature).unwrap();
        // One bit flipped, at the start, in the middle and at the end.
        for at in [0, signature.len() / 2, signature.len() - 1] {
            let mut flipped = signature.clone();
            flipped[at] ^= 0x01;
            let forged = format!("{input}.{}", b64(&flipped));
            assert_eq!(verify(&forged, &keys(), &github(), NOW).as_ref().err(), Some(want), "bit at {at}");
        }
        // The claims changed under the same signature.
        let (header, _) = input.split_once('.').unwrap();
        let claims = with(github_claims(), "repository", json!("acme/other"));
        let swapped = format!("{header}.{}.{}", b64(claims.to_string()), b64(&signature));
        assert_eq!(verify(&swapped, &keys(), &github(), NOW).as_ref().err(), Some(want));
    }
    // Signed by another key that claims the trusted key's kid.
    let impostor = mint(&rs_header(), &github_claims(), Algorithm::RS256, &signers().rsa_other.encoding);
    assert_eq!(verify(&impostor, &keys(), &github(), NOW), Err(bad_rsa));
    let impostor = mint(&es_header(), &github_claims(), Algorithm::ES256, &signers().ec_other.encoding);
    assert_eq!(verify(&impostor, &keys(), &github(), NOW), Err(bad_ec));
    // A signature of the wrong length is malformed, not merely bad.
    let input = rs(&github_claims()).rsplit_once('.').unwrap().0.to_owned();
    let short = format!("{input}.{}", b64([7u8; 255]));
    assert!(matches!(verify(&short, &keys(), &github(), NOW), Err(OidcError::Malformed(m)) if m.contains("255 bytes")));
    // An ES256 signature in DER form (72 bytes or so) rather than r || s.
    let input = es(&github_claims()).rsplit_once('.').unwrap().0.to_owned();
    let der = format!("{input}.{}", b64([0x30u8; 71]));
    assert!(matches!(verify(&der, &keys(), &github(), NOW), Err(OidcError::Malformed(m)) if m.contains("71 bytes")));
}

#[test]
fn algorithm_attacks_are_refused() {
    let claims = github_claims();
    let header = |alg: &str, kid: &str| json!({"typ": "JWT", "alg": alg, "kid": kid});
    let check = |name: &str, token: String, want: OidcError| {
        assert_eq!(verify(&token, &keys(), &github(), NOW), Err(want), "{name}");
    };

    // Unsigned, in any spelling, with or without a signature part.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = header(alg, RSA_KID).to_string();
        check(alg, craft(&h, &claims.to_string(), b""), OidcError::AlgNone);
        check(alg, craft(&h, &claims.to_string(), &[1; 256]), OidcError::AlgNone);
    }
    let no_kid = json!({"alg": "none"}).to_string();
    check("none without kid", format!("{}.{}.", b64(&no_kid), b64(claims.to_string())), OidcError::AlgNone);

    // HS256 "signed" with the public key: its PEM, the JWK n text, the n bytes.
    let rsa = &signers().rsa;
    let jwk = rsa.jwk(RSA_KID);
    let symmetric = || OidcError::SymmetricAlgorithm { alg: "HS256".into() };
    let hs = header("HS256", RSA_KID);
    check("HS256 keyed with the PEM", hs256(&hs, &claims, rsa.public_pem().as_bytes()), symmetric());
    check("HS256 keyed with the JWK n", hs256(&hs, &claims, jwk["n"].as_str().unwrap().as_bytes()), symmetric());
    check("HS256 keyed with n", hs256(&hs, &claims, &rsa.private.n().to_bytes_be()), symmetric());
    check("HS256 keyed with the JWK", hs256(&hs, &claims, jwk.to_string().as_bytes()), symmetric());
    let ec_jwk = signers().ec.jwk(EC_KID);
    check(
        "HS256 keyed with the EC x",
        hs256(&header("HS256", EC_KID), &claims, ec_jwk["x"].as_str().unwrap().as_bytes()),
        symmetric(),
    );
    for alg in ["HS384", "HS512", "hs256"] {
        check(alg, hs256(&header(alg, RSA_KID), &claims, b"secret"), OidcError::SymmetricAlgorithm { alg: alg.into() });
    }

    // The key type fixes the algorithm.
    check(
        "RS256 header on the EC key",
        mint(&header("RS256", EC_KID), &claims, Algorithm::RS256, &rsa.encoding),
        OidcError::AlgorithmKeyMismatch {
            alg: "RS256".into(),
            kid: EC_KID.into(),
            key_type: KeyType::EcP256,
            expected: "ES256".into(),
        },
    );
    check(
        "ES256 header on the RSA key",
        mint(&header("ES256", RSA_KID), &claims, Algorithm::ES256, &signers().ec.encoding),
        OidcError::AlgorithmKeyMismatch {
            alg: "ES256".into(),
            kid: RSA_KID.into(),
            key_type: KeyType::Rsa,
            expected: "RS256".into(),
        },
    );

    // Real signatures with algorithms that are not accepted.
    check(
        "PS256",
        mint(&header("PS256", RSA_KID), &claims, Algorithm::PS256, &rsa.encoding),
        OidcError::UnsupportedAlgorithm { alg: "PS256".into() },
    );
    check(
        "RS512",
        mint(&header("RS512", RSA_KID), &claims, Algorithm::RS512, &rsa.encoding),
        OidcError::UnsupportedAlgorithm { alg: "RS512".into() },
    );
    for alg in ["EdDSA", "ES384", "ES512", "RS384", "PS512", "rs256", "RS256 ", ""] {
        let token = craft(&header(alg, RSA_KID).to_string(), &claims.to_string(), &[0; 64]);
        check(alg, token, OidcError::UnsupportedAlgorithm { alg: alg.into() });
    }
    // An absurd alg is named, cut short, never echoed in full.
    let long = "X".repeat(5000);
    let token = craft(&header(&long, RSA_KID).to_string(), &claims.to_string(), &[0; 64]);
    let err = verify(&token, &keys(), &github(), NOW).unwrap_err();
    assert_eq!(err, OidcError::UnsupportedAlgorithm { alg: "X".repeat(128) });
    assert!(!err.to_string().contains(&"X".repeat(129)));
}

#[test]
fn header_members_are_checked() {
    let claims = github_claims();
    let signed = |header: Value| mint(&header, &claims, Algorithm::RS256, &signers().rsa.encoding);
    let check = |name: &str, token: String, want: OidcError| {
        assert_eq!(verify(&token, &keys(), &github(), NOW), Err(want), "{name}");
    };
    let rsa_jwk = signers().rsa.jwk(RSA_KID);
    #[rustfmt::skip]
    let key_headers: [(&str, Value); 4] = [
        ("jku", json!("https://evil.example/jwks.json")),
        ("jwk", rsa_jwk.clone()),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
    ];
    for (field, value) in key_headers {
        check(field, signed(with(rs_header(), field, value)), OidcError::KeyInHeader { field: field.into() });
    }
    check("crit", signed(with(rs_header(), "crit", json!(["exp"]))), OidcError::CriticalHeader);
    check(
        "crit b64",
        signed(with(with(rs_header(), "crit", json!(["b64"])), "b64", json!(false))),
        OidcError::CriticalHeader,
    );
    check("missing kid", signed(without(rs_header(), "kid")), OidcError::MissingKeyId);
    check("empty kid", signed(with(rs_header(), "kid", json!(""))), OidcError::MissingKeyId);
    check(
        "unknown kid",
        signed(with(rs_header(), "kid", json!("gh-rsa-9"))),
        OidcError::UnknownKey { kid: "gh-rsa-9".into() },
    );
    check(
        "kid not a string",
        signed(with(rs_header(), "kid", json!(1))),
        OidcError::Malformed("header kid is not a string".into()),
    );
    check(
        "typ of an access token",
        signed(with(rs_header(), "typ", json!("at+jwt"))),
        OidcError::UnexpectedType { typ: "at+jwt".into() },
    );
    check(
        "typ of a grant token",
        signed(with(rs_header(), "typ", json!("breakglass-grant+jwt"))),
        OidcError::UnexpectedType { typ: "breakglass-grant+jwt".into() },
    );
    check(
        "alg not a string",
        signed(with(rs_header(), "alg", json!(["RS256"]))),
        OidcError::Malformed("header alg is not a string".into()),
    );
    check("no alg", signed(without(rs_header(), "alg")), OidcError::Malformed("header has no alg".into()));
    // Typ variants that mean JWT, and unknown members, are accepted.
    for typ in ["JWT", "jwt", "application/jwt"] {
        assert!(verify(&signed(with(rs_header(), "typ", json!(typ))), &keys(), &github(), NOW).is_ok(), "{typ}");
    }
    assert!(verify(&signed(with(rs_header(), "x5t#S256", json!("abc"))), &keys(), &github(), NOW).is_ok());

    // Duplicate members: one parser would take the first, another the last.
    let input = format!(
        "{}.{}",
        b64(format!(r#"{{"alg":"RS256","kid":"{RSA_KID}","kid":"gh-rsa-9"}}"#)),
        b64(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &signers().rsa.encoding, Algorithm::RS256).unwrap();
    check(
        "duplicate header member",
        format!("{input}.{sig}"),
        OidcError::Malformed("header has a duplicate member \"kid\"".into()),
    );
    let payload = format!(r#"{{"iss":"https://evil.example",{}"#, &claims.to_string()[1..]);
    let input = format!("{}.{}", b64(rs_header().to_string()), b64(&payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &signers().rsa.encoding, Algorithm::RS256).unwrap();
    check(
        "duplicate claim",
        format!("{input}.{sig}"),
        OidcError::Malformed("claims has a duplicate member \"iss\"".into()),
    );
    // Issue 14: nested objects too (one strict reader for tokens and webhooks).
    let payload = format!(r#"{{"extra":{{"actor_id":"1","actor_id":"2"}},{}"#, &claims.to_string()[1..]);
    let input = format!("{}.{}", b64(rs_header().to_string()), b64(&payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &signers().rsa.encoding, Algorithm::RS256).unwrap();
    check(
        "duplicate nested member",
        format!("{input}.{sig}"),
        OidcError::Malformed("claims has a duplicate member \"actor_id\"".into()),
    );
}

#[test]
fn unknown_keys_are_found_after_a_jwks_refresh() {
    // The issuer rotates to a new key; the verifier's cached JWKS lacks it.
    let new_header = with(rs_header(), "kid", json!(ROTATED_KID));
    let token = mint(&new_header, &github_claims(), Algorithm::RS256, &signers().rsa_other.encoding);
    let cached = keys();
    assert_eq!(verify(&token, &cached, &github(), NOW), Err(OidcError::UnknownKey { kid: ROTATED_KID.into() }));
    // peek tells the caller which kid to look for.
    assert_eq!(peek_issuer_and_kid(&token).unwrap(), (GITHUB_ISSUER.to_owned(), Some(ROTATED_KID.to_owned())));
    let refreshed = json!({"keys": [signers().rsa.jwk(RSA_KID), signers().rsa_other.jwk(ROTATED_KID)]}).to_string();
    let refreshed = OidcKeys::from_jwks(&refreshed).unwrap();
    assert_eq!(verify(&token, &refreshed, &github(), NOW).unwrap().key_id, ROTATED_KID);
    // The old key still verifies its tokens during the overlap.
    assert!(verify(&rs(&github_claims()), &refreshed, &github(), NOW).is_ok());
}

#[test]
fn garbage_and_oversize_tokens_are_refused() {
    let token = rs(&github_claims());
    let (header, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let pad = |n: usize| format!("{token}{}", "A".repeat(n));
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "expected three dot-separated parts, found 1"),
        ("one part", "abc".into(), "found 1"),
        ("two parts", format!("{header}.{payload}"), "found 2"),
        ("four parts", format!("{token}.x"), "found 4"),
        ("JWE-like five parts", format!("{header}.a.b.c.d"), "found 5"),
        ("header not base64url", format!("{header}!.{payload}.{signature}"), "header is not unpadded base64url"),
        ("header padded", format!("{header}=.{payload}.{signature}"), "header is not unpadded base64url"),
        ("header not JSON", format!("{}.{payload}.{signature}", b64("not json")), "header is not a JSON object"),
        ("header a JSON array", format!("{}.{payload}.{signature}", b64("[1]")), "header is not a JSON object"),
        ("header a JSON string", format!("{}.{payload}.{signature}", b64("\"RS256\"")), "header is not a JSON object"),
        ("claims not base64url", format!("{header}.{payload}*.{signature}"), "claims is not unpadded base64url"),
        ("claims not JSON", format!("{header}.{}.{signature}", b64("{\"iss\":")), "claims is not a JSON object"),
        ("claims a JSON array", format!("{header}.{}.{signature}", b64("[]")), "claims is not a JSON object"),
        ("signature not base64url", format!("{header}.{payload}.{signature}+"), "signature is not unpadded base64url"),
        ("standard base64", token.replace('-', "+").replace('_', "/"), "base64url"),
        ("whitespace", format!(" {token}"), "header is not unpadded base64url"),
        ("binary", "\u{0}\u{1}.\u{2}.\u{3}".into(), "header is not unpadded base64url"),
    ];
    for (name, bad, want) in &cases {
        match verify(bad, &keys(), &github(), NOW) {
            Err(OidcError::Malformed(m)) => assert!(m.contains(want), "{name}: {m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // Oversize: refused before any parsing.
    let limit = MAX_TOKEN_BYTES;
    assert_eq!(
        verify(&pad(limit + 1 - token.len()), &keys(), &github(), NOW),
        Err(OidcError::TooLarge { len: limit + 1, max: limit })
    );
    let huge = "A".repeat(10 * limit);
    assert_eq!(verify(&huge, &keys(), &github(), NOW), Err(OidcError::TooLarge { len: 10 * limit, max: limit }));
    assert_eq!(peek_issuer_and_kid(&huge), Err(OidcError::TooLarge { len: 10 * limit, max: limit }));
    // At the limit it is parsed (and here refused for what it is, not its size).
    assert!(matches!(verify(&pad(limit - token.len()), &keys(), &github(), NOW), Err(OidcError::Malformed(_))));
}

#[test]
fn errors_never_repeat_the_token() {
    let token = rs(&github_claims());
    let (_, signature) = token.rsplit_once('.').unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let leaks = |err: &OidcError| {
        let shown = format!("{err} {err:?}");
        shown.contains(signature) || shown.contains(payload) || shown.contains("acme/payments-api")
    };
    let cases = [
        verify(&token, &keys(), &IssuerExpect { audience: "other".into(), ..github() }, NOW),
        verify(&token, &keys(), &gitlab(), NOW),
        verify(&token, &keys(), &github(), Timestamp(i64::MAX)),
        verify(&format!("{token}x"), &keys(), &github(), NOW),
        verify(&token.replacen('.', "!.", 1), &keys(), &github(), NOW),
        verify(&format!("{token}.{token}"), &keys(), &github(), NOW),
        verify(
            &token,
            &OidcKeys::from_jwks(&json!({"keys": [signers().ec.jwk(EC_KID)]}).to_string()).unwrap(),
            &github(),
            NOW,
        ),
    ];
    for got in cases {
        let err = got.unwrap_err();
        assert!(!leaks(&err), "{err:?}");
    }
    // The wrong-issuer message names both issuers, quoted.
    let evil = rs(&with(github_claims(), "iss", json!("https://evil.example")));
    assert_eq!(
        verify(&evil, &keys(), &github(), NOW).unwrap_err().to_string(),
        r#"wrong issuer: expected "https://token.actions.githubusercontent.com", found "https://evil.example""#
    );
}

#[test]
fn peek_reads_issuer_and_kid_without_verifying() {
    assert_eq!(
        peek_issuer_and_kid(&rs(&github_claims())).unwrap(),
        (GITHUB_ISSUER.to_owned(), Some(RSA_KID.to_owned()))
    );
    assert_eq!(peek_issuer_and_kid(&es(&gitlab_claims())).unwrap(), (GITLAB.to_owned(), Some(EC_KID.to_owned())));
    // Unverified: an unsigned token peeks the same. Only for routing.
    let unsigned = craft(&json!({"alg": "none"}).to_string(), &github_claims().to_string(), b"");
    assert_eq!(peek_issuer_and_kid(&unsigned).unwrap(), (GITHUB_ISSUER.to_owned(), None));
    assert_eq!(verify(&unsigned, &keys(), &github(), NOW), Err(OidcError::AlgNone));

    let no_iss = es(&without(gitlab_claims(), "iss"));
    assert_eq!(peek_issuer_and_kid(&no_iss), Err(OidcError::MissingClaim("iss")));
    let bad_iss = es(&with(gitlab_claims(), "iss", json!(1)));
    assert_eq!(
        peek_issuer_and_kid(&bad_iss),
        Err(OidcError::InvalidClaim { claim: "iss", reason: "not a string".into() })
    );
    assert!(matches!(peek_issuer_and_kid("garbage"), Err(OidcError::Malformed(_))));
    assert!(matches!(peek_issuer_and_kid("a.b.c"), Err(OidcError::Malformed(_))));
}

fn jwks(keys: Vec<Value>) -> String {
    json!({ "keys": keys }).to_string()
}

fn jwks_error(text: &str) -> String {
    match OidcKeys::from_jwks(text) {
        Ok(keys) => panic!("accepted {keys:?}"),
        Err(OidcError::InvalidJwks(why)) => why,
        Err(other) => panic!("wrong variant: {other:?}"),
    }
}

#[test]
fn jwks_documents_parse() {
    let keys = keys();
    assert_eq!(keys.kids(), vec![RSA_KID, EC_KID]);
    let rsa = keys.get(RSA_KID).unwrap();
    assert_eq!((rsa.kid(), rsa.key_type(), rsa.bits()), (RSA_KID, KeyType::Rsa, 2048));
    let ec = keys.get(EC_KID).unwrap();
    assert_eq!((ec.key_type(), ec.bits(), ec.key_type().algorithm()), (KeyType::EcP256, 256, "ES256"));
    assert!(keys.get("nope").is_none());
    assert!(keys.skipped().is_empty());

    // GitHub's JWKS shape: no use or alg on some keys, extra members (x5c,
    // x5t) that are ignored, and members at the top level.
    let minimal = json!({
        "kty": "RSA",
        "kid": RSA_KID,
        "n": signers().rsa.jwk(RSA_KID)["n"],
        "e": "AQAB",
        "x5c": ["MIIDrDCCApSgAwIBAgIQ"],
        "x5t": "cyb3rK",
    });
    let text = json!({"keys": [minimal], "cache_control": "max-age=300"}).to_string();
    let parsed = OidcKeys::from_jwks(&text).unwrap();
    assert_eq!(parsed.kids(), vec![RSA_KID]);
    assert!(verify(&rs(&github_claims()), &parsed, &github(), NOW).is_ok());

    // A 4096-bit modulus (the largest accepted), and one with a leading zero byte.
    let mut n4096 = vec![0xffu8; 512];
    n4096[0] = 0x80;
    let big = with(signers().rsa.jwk("big"), "n", json!(b64(&n4096)));
    let mut n = vec![0u8];
    n.extend(signers().rsa.private.n().to_bytes_be());
    let padded = with(signers().rsa.jwk("padded"), "n", json!(b64(&n)));
    let parsed = OidcKeys::from_jwks(&jwks(vec![big, padded])).unwrap();
    assert_eq!(parsed.get("big").unwrap().bits(), 4096);
    assert_eq!(parsed.get("padded").unwrap().bits(), 2048);
    let token =
        mint(&with(rs_header(), "kid", json!("padded")), &github_claims(), Algorithm::RS256, &signers().rsa.encoding);
    assert!(verify(&token, &parsed, &github(), NOW).is_ok());
}

#[test]
fn jwks_skips_keys_it_cannot_use() {
    let rsa = signers().rsa.jwk(RSA_KID);
    let ec = signers().ec.jwk(EC_KID);
    let enc = with(signers().rsa_other.jwk("enc-1"), "use", json!("enc"));
    let text = jwks(vec![
        enc.clone(),
        json!({"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0"}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64([7; 32])}),
        with(with(ec.clone(), "crv", json!("P-384")), "kid", json!("p384-1")),
        with(with(rsa.clone(), "alg", json!("RS512")), "kid", json!("rs512-1")),
        with(with(rsa.clone(), "key_ops", json!(["encrypt"])), "kid", json!("ops-1")),
        rsa.clone(),
        ec.clone(),
    ]);
    let keys = OidcKeys::from_jwks(&text).unwrap();
    assert_eq!(keys.kids(), vec![RSA_KID, EC_KID]);
    let skipped: Vec<(Option<&str>, &str)> =
        keys.skipped().iter().map(|s| (s.kid.as_deref(), s.reason.as_str())).collect();
    assert_eq!(
        skipped,
        vec![
            (Some("enc-1"), "use is \"enc\", not \"sig\""),
            (Some("hmac-1"), "kty \"oct\" is not supported (only RSA and EC)"),
            (Some("ed-1"), "kty \"OKP\" is not supported (only RSA and EC)"),
            (Some("p384-1"), "EC curve \"P-384\" is not supported (only P-256)"),
            (Some("rs512-1"), "alg is \"RS512\"; only RS256 is accepted for RSA keys"),
            (Some("ops-1"), "key_ops does not include \"verify\""),
        ]
    );
    // A token signed by a skipped key is refused as such, not as unknown.
    let token = mint(
        &with(rs_header(), "kid", json!("enc-1")),
        &github_claims(),
        Algorithm::RS256,
        &signers().rsa_other.encoding,
    );
    assert_eq!(
        verify(&token, &keys, &github(), NOW),
        Err(OidcError::UnusableKey { kid: "enc-1".into(), reason: "use is \"enc\", not \"sig\"".into() })
    );

    // A set with only unusable keys is refused, with the reasons.
    let why = jwks_error(&jwks(vec![enc, json!({"kty": "oct", "k": "c2VjcmV0"})]));
    assert!(why.starts_with("no usable key"), "{why}");
    assert!(why.contains("use is \"enc\"") && why.contains("kty \"oct\""), "{why}");
}

#[test]
fn bad_jwks_documents_are_refused() {
    let rsa = signers().rsa.jwk(RSA_KID);
    let ec = signers().ec.jwk(EC_KID);
    let short = RsaSigner::generate(1024).jwk("short-1");
    // 2047 bits: one short of the minimum.
    let mut n2047 = vec![0xffu8; 256];
    n2047[0] = 0x7f;
    let mut n4097 = vec![0xffu8; 513];
    n4097[0] = 0x01;
    let mut n_even = signers().rsa.private.n().to_bytes_be();
    *n_even.last_mut().unwrap() &= 0xfe;
    let mut off_curve = B64URL.decode(ec["y"].as_str().unwrap()).unwrap();
    off_curve[31] ^= 1;
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{keys".into(), "not JSON"),
        ("no keys array", json!({"keys": {}}).to_string(), "no \"keys\" array"),
        ("a bare JWK", rsa.to_string(), "no \"keys\" array"),
        ("empty set", jwks(vec![]), "the key set is empty"),
        ("1024-bit RSA key", jwks(vec![rsa.clone(), short]), "RSA modulus is 1024 bits; at least 2048 are required"),
        ("2047-bit RSA modulus", jwks(vec![with(rsa.clone(), "n", json!(b64(&n2047)))]), "2047 bits"),
        ("4097-bit RSA modulus", jwks(vec![with(rsa.clone(), "n", json!(b64(&n4097)))]), "at most 4096"),
        ("even RSA modulus", jwks(vec![with(rsa.clone(), "n", json!(b64(&n_even)))]), "modulus is even"),
        ("RSA exponent 1", jwks(vec![with(rsa.clone(), "e", json!(b64([1])))]), "public exponent"),
        ("RSA exponent even", jwks(vec![with(rsa.clone(), "e", json!(b64([1, 0, 0])))]), "public exponent"),
        ("RSA exponent huge", jwks(vec![with(rsa.clone(), "e", json!(b64([1; 9])))]), "public exponent"),
        ("RSA no n", jwks(vec![without(rsa.clone(), "n")]), "no n"),
        ("RSA n padded base64", jwks(vec![with(rsa.clone(), "n", json!(format!("{}=", rsa["n"].as_str().unwrap())))]), "n is not unpadded base64url"),
        ("duplicate kid", jwks(vec![rsa.clone(), with(ec.clone(), "kid", json!(RSA_KID))]), "the kid appears on more than one key"),
        ("same key twice", jwks(vec![ec.clone(), ec.clone()]), "the kid appears on more than one key"),
        ("no kid", jwks(vec![without(rsa.clone(), "kid")]), "no kid"),
        ("empty kid", jwks(vec![with(rsa.clone(), "kid", json!(""))]), "empty kid"),
        ("kid a number", jwks(vec![with(rsa.clone(), "kid", json!(1))]), "kid is not a string"),
        ("no kty", jwks(vec![without(rsa.clone(), "kty")]), "no kty"),
        ("EC no crv", jwks(vec![without(ec.clone(), "crv")]), "EC key has no crv"),
        ("EC point off the curve", jwks(vec![with(ec.clone(), "y", json!(b64(&off_curve)))]), "not a point on P-256"),
        ("EC x short", jwks(vec![with(ec.clone(), "x", json!(b64([1; 31])))]), "x is 31 bytes"),
        ("EC no y", jwks(vec![without(ec.clone(), "y")]), "no y"),
        ("RSA private key", jwks(vec![with(rsa.clone(), "d", json!("AQAB"))]), "private key material (d)"),
        ("EC private key", jwks(vec![with(ec.clone(), "d", json!(b64([5; 32])))]), "private key material (d)"),
        ("private key marked enc", jwks(vec![rsa.clone(), with(with(ec.clone(), "use", json!("enc")), "d", json!("AQAB"))]), "private key material"),
        ("key not an object", jwks(vec![rsa.clone(), json!("RSA")]), "key 1: not a JSON object"),
        ("too many keys", jwks((0..=MAX_JWKS_KEYS).map(|i| with(ec.clone(), "kid", json!(format!("k{i}")))).collect()), "more than 64 keys"),
        ("too large", format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(256 * 1024)), "more than the 262144-byte limit"),
    ];
    for (name, text, want) in cases {
        let why = jwks_error(&text);
        assert!(why.contains(want), "{name}: {why}");
    }
    // The message names the key by index and kid.
    let why = jwks_error(&jwks(vec![ec.clone(), RsaSigner::generate(1024).jwk("short-2")]));
    assert!(why.starts_with("key 1 (kid \"short-2\"): RSA modulus is 1024 bits"), "{why}");
}
