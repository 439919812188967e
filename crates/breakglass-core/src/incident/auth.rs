//! Authenticating incident webhook deliveries: PagerDuty's and the generic
//! form's HMAC signatures, bearer and basic credentials, and the replay
//! window, all compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{
    AUTHORIZATION_HEADER, AuthError, GENERIC_SIGNATURE_HEADER, GENERIC_TIMESTAMP_HEADER, MAX_HEADER_BYTES,
    MAX_SIGNATURES, PAGERDUTY_SIGNATURE_HEADER, echo,
};
use crate::time::Timestamp;

/// A v1 signature: HMAC-SHA256, 32 bytes.
use crate::signed::{SIGNATURE_BYTES, hmac_matches, token_matches};
/// The longest `X-Breakglass-Timestamp` (seconds until the year 33658).
const MAX_TIMESTAMP_DIGITS: usize = 12;

type HmacSha256 = Hmac<Sha256>;

/// Checks PagerDuty's `X-PagerDuty-Signature` over the raw body: accepted when
/// any `v1` entry is the HMAC-SHA256 of `body` under any of `secrets`.
pub fn verify_pagerduty(signature_header: Option<&str>, body: &[u8], secrets: &[Vec<u8>]) -> Result<(), AuthError> {
    let secrets = usable_secrets(secrets)?;
    let signatures = parse_signatures(PAGERDUTY_SIGNATURE_HEADER, signature_header)?;
    if hmac_matches(&secrets, &[body], &signatures) { Ok(()) } else { Err(AuthError::BadSignature) }
}

/// The replay guard for signed bodies that carry their own time (PagerDuty's
/// `event.occurred_at`): refuses a missing time, one older than `max_age_ms`
/// and one more than `max_age_ms` in the future.
pub fn check_fresh(occurred_at: Option<Timestamp>, now: Timestamp, max_age_ms: i64) -> Result<(), AuthError> {
    let Some(at) = occurred_at else {
        return Err(AuthError::Missing(
            "event time (occurred_at): a signed delivery without its own time cannot be checked for replay".into(),
        ));
    };
    within_window(at, now, max_age_ms)
}

/// Checks the generic form's headers: `X-Breakglass-Timestamp` (whole Unix
/// seconds) within `tolerance_ms` of `now` either way, and
/// `X-Breakglass-Signature`, `v1=<hex HMAC-SHA256 over "<timestamp>.<body>">`
/// (comma-separated entries for rotation), under any of `secrets`. The
/// signature is checked before the time, so a forgery is told only that its
/// signature is bad.
pub fn verify_generic(
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    secrets: &[Vec<u8>],
    now: Timestamp,
    tolerance_ms: i64,
) -> Result<(), AuthError> {
    let secrets = usable_secrets(secrets)?;
    let Some(raw) = timestamp_header else {
        return Err(AuthError::Missing(format!("{GENERIC_TIMESTAMP_HEADER} header")));
    };
    let digits = raw.trim();
    if digits.is_empty() || digits.len() > MAX_TIMESTAMP_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::Malformed(format!(
            "{GENERIC_TIMESTAMP_HEADER} header {:?}: expected whole Unix seconds, like 1614852000",
            echo(raw)
        )));
    }
    let secs: i64 = digits.parse().map_err(|_| {
        AuthError::Malformed(format!("{GENERIC_TIMESTAMP_HEADER} header {:?}: number out of range", echo(raw)))
    })?;
    let signatures = parse_signatures(GENERIC_SIGNATURE_HEADER, signature_header)?;
    if !hmac_matches(&secrets, &[digits.as_bytes(), b".", body], &signatures) {
        return Err(AuthError::BadSignature);
    }
    within_window(Timestamp(secs * 1000), now, tolerance_ms)
}

/// The `X-Breakglass-Signature` value for `body` sent at `timestamp_secs`:
/// `v1=<hex HMAC-SHA256(secret, "<timestamp_secs>.<body>")>`.
pub fn sign_generic(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `Authorization: Bearer <token>` against the configured tokens (the
/// scheme's case is ignored, as RFC 9110 says). Used for Alertmanager.
pub fn verify_bearer(authorization_header: Option<&str>, expected: &[String]) -> Result<(), AuthError> {
    let expected = usable_tokens(expected)?;
    let (scheme, credentials) = split_authorization(authorization_header)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(AuthError::WrongScheme { found: echo(scheme), expected: "Bearer".into() });
    }
    if token_matches(&expected, credentials.as_bytes()) { Ok(()) } else { Err(AuthError::BadCredentials) }
}

/// Checks the `Authorization` custom header an Opsgenie Webhook integration
/// is configured to send: `Bearer <credential>`, or `Basic <base64>` whose
/// decoded `user:password` is a configured credential. Each configured
/// credential is accepted in either form.
pub fn verify_opsgenie(authorization_header: Option<&str>, expected: &[String]) -> Result<(), AuthError> {
    let expected = usable_tokens(expected)?;
    let (scheme, credentials) = split_authorization(authorization_header)?;
    let presented = if scheme.eq_ignore_ascii_case("Bearer") {
        credentials.as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("Basic") {
        let decoded = B64
            .decode(credentials)
            .map_err(|_| AuthError::Malformed("Authorization header: the Basic credentials are not base64".into()))?;
        if !decoded.contains(&b':') {
            return Err(AuthError::Malformed(
                "Authorization header: the Basic credentials are not user:password".into(),
            ));
        }
        decoded
    } else {
        return Err(AuthError::WrongScheme { found: echo(scheme), expected: "Bearer or Basic".into() });
    };
    if token_matches(&expected, &presented) { Ok(()) } else { Err(AuthError::BadCredentials) }
}

fn usable_secrets(secrets: &[Vec<u8>]) -> Result<Vec<&[u8]>, AuthError> {
    let usable: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).filter(|s| !s.is_empty()).collect();
    if usable.is_empty() { Err(AuthError::NotConfigured) } else { Ok(usable) }
}

fn usable_tokens(tokens: &[String]) -> Result<Vec<&[u8]>, AuthError> {
    let usable: Vec<&[u8]> = tokens.iter().map(String::as_bytes).filter(|t| !t.is_empty()).collect();
    if usable.is_empty() { Err(AuthError::NotConfigured) } else { Ok(usable) }
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes any key length")
}

/// The v1 signatures in a `v1=<hex>[,v1=<hex>…]` header. Entries of other
/// versions are skipped; a header without any v1 entry is refused. Signature
/// values never go into messages.
fn parse_signatures(header: &str, value: Option<&str>) -> Result<Vec<[u8; SIGNATURE_BYTES]>, AuthError> {
    let Some(value) = value else { return Err(AuthError::Missing(format!("{header} header"))) };
    if value.len() > MAX_HEADER_BYTES {
        return Err(AuthError::Malformed(format!("{header} header: longer than {MAX_HEADER_BYTES} bytes")));
    }
    if value.trim().is_empty() {
        return Err(AuthError::Malformed(format!("{header} header: empty; expected v1=<64 hex digits>")));
    }
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.len() > MAX_SIGNATURES {
        return Err(AuthError::Malformed(format!(
            "{header} header: {} entries, more than the {MAX_SIGNATURES} accepted",
            entries.len()
        )));
    }
    let mut v1 = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for (idx, entry) in entries.iter().enumerate() {
        let n = idx + 1;
        let Some((version, sig)) = entry.split_once('=') else {
            return Err(AuthError::Malformed(format!(
                "{header} header: entry {n} is not <version>=<signature> (expected v1=<64 hex digits>)"
            )));
        };
        if version.is_empty() {
            return Err(AuthError::Malformed(format!("{header} header: entry {n} has no version before '='")));
        }
        if version != "v1" {
            others.push(format!("{:?}", echo(version)));
            continue;
        }
        let mut bytes = [0u8; SIGNATURE_BYTES];
        if sig.len() != 2 * SIGNATURE_BYTES || hex::decode_to_slice(sig, &mut bytes).is_err() {
            return Err(AuthError::Malformed(format!(
                "{header} header: entry {n} is not v1=<64 hex digits> (an HMAC-SHA256)"
            )));
        }
        v1.push(bytes);
    }
    if v1.is_empty() {
        return Err(AuthError::NoSupportedSignature { header: header.to_owned(), found: others.join(", ") });
    }
    Ok(v1)
}

/// Splits `Authorization: <scheme> <credentials>`. Nothing of the
/// credentials goes into a message.
fn split_authorization(header: Option<&str>) -> Result<(&str, &str), AuthError> {
    let Some(value) = header else { return Err(AuthError::Missing(format!("{AUTHORIZATION_HEADER} header"))) };
    if value.len() > MAX_HEADER_BYTES {
        return Err(AuthError::Malformed(format!(
            "{AUTHORIZATION_HEADER} header: longer than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(AuthError::Malformed(format!("{AUTHORIZATION_HEADER} header: empty")));
    }
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return Err(AuthError::Malformed(format!(
            "{AUTHORIZATION_HEADER} header: expected \"<scheme> <credentials>\", like \"Bearer <token>\""
        )));
    };
    let credentials = credentials.trim_start_matches(' ');
    if credentials.is_empty() || credentials.chars().any(char::is_whitespace) {
        return Err(AuthError::Malformed(format!(
            "{AUTHORIZATION_HEADER} header: the credentials after {:?} are empty or contain spaces",
            echo(scheme)
        )));
    }
    Ok((scheme, credentials))
}

/// `at` within `max_ms` of `now`, either way.
fn within_window(at: Timestamp, now: Timestamp, max_ms: i64) -> Result<(), AuthError> {
    let max_ms = max_ms.max(0);
    let age = now.millis().saturating_sub(at.millis());
    if age > max_ms {
        return Err(AuthError::Stale { age_secs: age / 1000, max_secs: max_ms / 1000 });
    }
    if age < -max_ms {
        return Err(AuthError::FromTheFuture { ahead_secs: age.saturating_neg() / 1000, max_secs: max_ms / 1000 });
    }
    Ok(())
}
