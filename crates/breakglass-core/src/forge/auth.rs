//! What the three forges' authentication shares: reading headers (by name,
//! ignoring case, refusing a repeated one), HMAC-SHA256 and token checks in
//! constant time, delivery ids and the timestamp window.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{AuthError, Delivery, Forge, MAX_HEADER_BYTES, MAX_NAME_CHARS, read};
use crate::text::is_unsafe_char;
use crate::time::Timestamp;

/// An HMAC-SHA256 is 32 bytes.
pub(super) use crate::signed::{SIGNATURE_BYTES, hmac_matches, token_matches};

type HmacSha256 = Hmac<Sha256>;

/// A request's headers as the server received them: names compared ignoring
/// ASCII case (RFC 9110), each value as sent. Values that are not UTF-8 are
/// the server's to drop (no header read here may hold such bytes).
#[derive(Clone, Debug, Default)]
pub struct Headers<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Headers<'a> {
    pub fn new(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Headers<'a> {
        Headers { pairs: pairs.into_iter().collect() }
    }

    /// The value of `name`, `None` when absent, an error when it appears more
    /// than once (two signatures or two ids: which one counts would be
    /// ambiguous) or is longer than [`MAX_HEADER_BYTES`].
    pub fn get(&self, name: &'static str) -> Result<Option<&'a str>, AuthError> {
        let mut found = self.pairs.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
        let Some(first) = found.next() else { return Ok(None) };
        if found.next().is_some() {
            return Err(AuthError::RepeatedHeader(name));
        }
        if first.len() > MAX_HEADER_BYTES {
            return Err(AuthError::Malformed {
                header: name,
                problem: format!("longer than {MAX_HEADER_BYTES} bytes"),
            });
        }
        Ok(Some(first))
    }

    /// Whether `name` is present at all.
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub(super) fn require(&self, name: &'static str) -> Result<&'a str, AuthError> {
        self.get(name)?.ok_or(AuthError::MissingHeader(name))
    }
}

/// The configured secrets that are not empty (an empty HMAC key is known to
/// everyone).
pub(super) fn usable<S: AsRef<[u8]>>(forge: Forge, secrets: &[S]) -> Result<Vec<&[u8]>, AuthError> {
    let usable: Vec<&[u8]> = secrets.iter().map(AsRef::as_ref).filter(|s| !s.is_empty()).collect();
    if usable.is_empty() { Err(AuthError::NotConfigured(forge_name(forge))) } else { Ok(usable) }
}

fn forge_name(forge: Forge) -> &'static str {
    forge.display_name()
}

/// A hex HMAC-SHA256 (64 digits, either case), as GitHub and Gitea send it.
/// The value never goes into a message.
pub(super) fn hex_signature(header: &'static str, value: &str) -> Result<[u8; SIGNATURE_BYTES], AuthError> {
    let mut bytes = [0u8; SIGNATURE_BYTES];
    let value = value.trim();
    if value.len() != 2 * SIGNATURE_BYTES || hex::decode_to_slice(value, &mut bytes).is_err() {
        return Err(AuthError::Malformed { header, problem: "expected 64 hex digits (an HMAC-SHA256)".into() });
    }
    Ok(bytes)
}

/// The HMAC-SHA256 of the concatenated `parts` (for signing in tests and
/// harnesses, and for the documentation's examples).
pub(super) fn hmac(secret: &[u8], parts: &[&[u8]]) -> [u8; SIGNATURE_BYTES] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A delivery id or event name from a header: trimmed, not empty, bounded,
/// without control or invisible characters.
pub(super) fn header_word(header: &'static str, value: &str) -> Result<String, AuthError> {
    let t = value.trim();
    if t.is_empty() {
        return Err(AuthError::Malformed { header, problem: "empty".into() });
    }
    if t.chars().any(is_unsafe_char) {
        return Err(AuthError::Malformed { header, problem: "contains control characters".into() });
    }
    if t.chars().count() > MAX_NAME_CHARS {
        return Err(AuthError::Malformed { header, problem: format!("longer than {MAX_NAME_CHARS} characters") });
    }
    Ok(t.to_owned())
}

/// The authenticated delivery.
pub(super) fn delivery(forge: Forge, event: String, delivery_id: String, body: &[u8]) -> Delivery {
    Delivery { forge, event, delivery_id, body_sha256: read::sha256_hex(body), body_len: body.len() }
}

/// `at_secs` within `max_ms` of `now`, either way.
pub(super) fn within_window(at_secs: i64, now: Timestamp, max_ms: i64) -> Result<(), AuthError> {
    let max_ms = max_ms.max(0);
    let age = now.millis().saturating_sub(at_secs.saturating_mul(1000));
    if age > max_ms {
        return Err(AuthError::Stale { age_secs: age / 1000, max_secs: max_ms / 1000 });
    }
    if age < -max_ms {
        return Err(AuthError::FromTheFuture { ahead_secs: age.saturating_neg() / 1000, max_secs: max_ms / 1000 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_ignore_case_and_a_repeated_header_is_refused() {
        let h = Headers::new([("x-hub-signature-256", "a"), ("X-GitHub-Event", "push"), ("X-GitHub-Event", "ping")]);
        assert_eq!(h.get("X-Hub-Signature-256"), Ok(Some("a")));
        assert_eq!(h.get("X-GitHub-Delivery"), Ok(None));
        assert_eq!(h.get("X-GitHub-Event"), Err(AuthError::RepeatedHeader("X-GitHub-Event")));
    }

    #[test]
    fn the_window_holds_both_ways() {
        let now = Timestamp(1_000_000_000);
        assert!(within_window(1_000_000, now, 300_000).is_ok());
        assert!(matches!(within_window(1_000_000 - 301, now, 300_000), Err(AuthError::Stale { .. })));
        assert!(matches!(within_window(1_000_000 + 301, now, 300_000), Err(AuthError::FromTheFuture { .. })));
        assert!(within_window(i64::MIN, now, 300_000).is_err());
        assert!(within_window(i64::MAX, now, 300_000).is_err());
    }
}
