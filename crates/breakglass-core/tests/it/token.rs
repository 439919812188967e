//! Grant tokens made by breakglass-core, checked by an independent verifier:
//! `tests/verify_jwt.py`, written from the RFCs with Python's `cryptography`
//! (the test command installs python3-cryptography on fresh machines).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use breakglass_core::time::Timestamp;
use breakglass_core::token::{Expect, IssueRequest, KeySet, TokenError, TokenSigner, verify};
use serde_json::{Value, json};

const ISSUER: &str = "https://breakglass.example.com";
/// 2026-11-21T12:00:00.250Z
const ACTIVATED: Timestamp = Timestamp(1_795_262_400_250);
const NOW: Timestamp = Timestamp(ACTIVATED.0 + 60_000);

/// Runs the Python verifier; `Ok(claims)` if it accepts, `Err(its message)` if not.
fn independent(jwks: &str, token: &str, now: Timestamp) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/verify_jwt.py");
    let request = json!({
        "jwks": serde_json::from_str::<Value>(jwks).unwrap(),
        "token": token,
        "issuer": ISSUER,
        "now": now.millis().div_euclid(1000),
    });
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with the cryptography package is needed for tests/verify_jwt.py (scripts/test installs it)");
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_str(&stdout).unwrap()),
        Some(1) if stdout.starts_with("FAIL: ") => Err(stdout.trim().to_owned()),
        _ => panic!("verify_jwt.py crashed: {}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)),
    }
}

fn grant() -> IssueRequest {
    IssueRequest {
        issuer: ISSUER.into(),
        principal: "alice".into(),
        grant_id: "g_01".into(),
        scopes: vec!["git:payments/api@refs/heads/main".into(), "pipeline:payments/api/deploy@production".into()],
        capabilities: vec!["push".into(), "skip-gate:tests".into()],
        activated_at: ACTIVATED,
        expires_at: Timestamp(ACTIVATED.0 + 30 * 60_000),
        token_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
    }
}

#[test]
fn an_independent_verifier_accepts_our_tokens_and_rejects_tampered_ones() {
    let signer = TokenSigner::from_seed(&[7; 32]);
    let rotated_out = TokenSigner::from_seed(&[8; 32]);
    let keys = KeySet::new([signer.public_key().clone()]).unwrap();
    let jwks = keys.to_jwks();
    let token = signer.issue(&grant(), NOW).unwrap();

    // Both implementations accept the token, and agree on its claims.
    let ours = verify(&token, &keys, &Expect::new(ISSUER, Duration::from_secs(3600)), NOW).unwrap();
    let theirs = independent(&jwks, &token, NOW).unwrap();
    assert_eq!(theirs["sub"], "alice");
    assert_eq!(theirs["grant"], "g_01");
    assert_eq!(theirs["aud"], "breakglass");
    assert_eq!(theirs["scopes"], json!(ours.scopes));
    assert_eq!(theirs["caps"], json!(ours.capabilities));
    assert_eq!(theirs["nbf"].as_i64().unwrap() * 1000, ours.not_before.millis());
    assert_eq!(theirs["exp"].as_i64().unwrap() * 1000, ours.expires_at.millis());
    assert_eq!(theirs["jti"], "0f1e2d3c4b5a69788796a5b4c3d2e1f0");

    // A widened scope with the original signature: both refuse it.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
    claims["scopes"] = json!(["git:payments/api@*"]);
    let tampered = format!("{}.{}.{}", parts[0], B64URL.encode(claims.to_string()), parts[2]);
    assert_eq!(independent(&jwks, &tampered, NOW).unwrap_err(), "FAIL: bad signature");
    let err = verify(&tampered, &keys, &Expect::new(ISSUER, Duration::from_secs(3600)), NOW).unwrap_err();
    assert!(matches!(err, TokenError::BadSignature { .. }), "{err}");

    // A token from a key that is not in the JWKS, and one past its exp: both refuse.
    let other = rotated_out.issue(&grant(), NOW).unwrap();
    assert_eq!(independent(&jwks, &other, NOW).unwrap_err(), "FAIL: unknown kid");
    let at_exp = ours.expires_at;
    assert_eq!(independent(&jwks, &token, at_exp).unwrap_err(), "FAIL: not valid now");
    assert!(independent(&jwks, &token, Timestamp(at_exp.0 - 1000)).is_ok());
}
