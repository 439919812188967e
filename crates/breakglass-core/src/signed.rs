//! What every signed-webhook reader shares (incident receivers, forge push
//! webhooks): HMAC-SHA256 signatures matched in constant time, and strict
//! JSON bodies whose error messages quote nothing unbounded from the input.
//!
//! Security: the sender controls the body, the signatures and every header;
//! a signature is compared against every configured secret (rotation), each
//! pair in constant time, and a body is read only after one matched.

use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The length of an HMAC-SHA256.
pub const SIGNATURE_BYTES: usize = 32;

/// The most characters of an untrusted string a message quotes.
pub const MAX_ECHO_CHARS: usize = 64;

/// Whether any signature is the HMAC-SHA256 of the concatenated `parts` under
/// any secret. Every pair is compared, each in constant time.
pub fn hmac_matches(secrets: &[&[u8]], parts: &[&[u8]], signatures: &[[u8; SIGNATURE_BYTES]]) -> bool {
    let mut matched = false;
    for secret in secrets {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(part);
        }
        let expected = mac.finalize();
        for sig in signatures {
            let presented = CtOutput::<HmacSha256>::new(Output::<HmacSha256>::clone_from_slice(sig));
            matched |= expected == presented;
        }
    }
    matched
}

/// Whether `presented` equals any of `expected`, compared as SHA-256 digests
/// in constant time (so neither the length nor a prefix leaks).
pub fn token_matches(expected: &[&[u8]], presented: &[u8]) -> bool {
    use sha2::Digest as _;
    let presented = CtOutput::<Sha256>::new(Sha256::digest(presented));
    let mut matched = false;
    for token in expected {
        matched |= CtOutput::<Sha256>::new(Sha256::digest(token)) == presented;
    }
    matched
}

/// Cuts an untrusted string for a message; `{:?}` then escapes it.
pub fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// What a JSON value is, for a message, with strings cut short.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {}", echo(&n.to_string())),
        Value::String(s) => format!("string {:?}", echo(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A body as strict JSON (a member named twice at any depth is refused:
/// which one a reader takes is not defined, and the signature covers both),
/// or what is wrong with it, saying where and never quoting the input.
pub fn strict_json(body: &[u8]) -> Result<Value, String> {
    // serde_json's syntax errors say what was expected and where, without
    // quoting the input (including "recursion limit exceeded" for nesting).
    crate::json::from_slice(body).map_err(|e| match crate::json::duplicate_member(&e) {
        Some(name) => format!(
            "member {name} appears twice in one object (line {}, column {}); which one counts would be ambiguous",
            e.line(),
            e.column()
        ),
        None => echo(&e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_and_marks() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(200);
        let cut = echo(&long);
        assert_eq!(cut.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_signature_matches_under_any_secret_and_only_over_its_parts() {
        let sign = |secret: &[u8], parts: &[&[u8]]| {
            let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap();
            for p in parts {
                mac.update(p);
            }
            let mut out = [0u8; SIGNATURE_BYTES];
            out.copy_from_slice(&mac.finalize().into_bytes());
            out
        };
        let sig = sign(b"new", &[b"12.", b"body"]);
        assert!(hmac_matches(&[b"old", b"new"], &[b"12", b".body"], &[sig]), "the parts are concatenated");
        assert!(!hmac_matches(&[b"old"], &[b"12.body"], &[sig]));
        assert!(!hmac_matches(&[b"new"], &[b"12.bodx"], &[sig]));
        assert_eq!(
            strict_json(br#"{"a":1,"a":2}"#).unwrap_err().split(" (").next(),
            Some("member \"a\" appears twice in one object")
        );
    }
}
