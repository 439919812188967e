//! The GitHub App JWT check, as GitHub documents it: RS256 signed with the
//! app's private key, `iss` the app's client ID or app ID, `iat` and `exp`
//! Unix seconds, `exp` no more than 10 minutes into the future, `iat` may be
//! set up to 60 seconds in the past against clock drift. Times are checked
//! against the fake's clock, not the wall clock.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::AppConfig;

/// The longest an app JWT may still be valid for, in seconds.
pub(crate) const MAX_LIFETIME: i64 = 600;
/// How far in the future `iat` may lie (clock drift), in seconds.
pub(crate) const IAT_SKEW: i64 = 60;

/// Checks `token` for `app` at `now`; the error is the message GitHub
/// answers with (401).
pub(crate) fn verify_app_jwt(token: &str, app: &AppConfig, now: i64) -> Result<(), String> {
    let key = DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes())
        .map_err(|e| format!("the fake's app public key is not an RSA PEM key: {e}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    // The times are checked below against the fake's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|_| "A JSON web token could not be decoded".to_owned())?;
    let claims = data.claims;
    let iss_ok = match claims.get("iss") {
        Some(Value::Number(n)) => n.as_u64() == Some(app.app_id),
        Some(Value::String(s)) => *s == app.app_id.to_string() || app.client_id.as_deref() == Some(s.as_str()),
        _ => false,
    };
    if !iss_ok {
        return Err("'Issuer' claim ('iss') must be an Integer or the app's client ID".to_owned());
    }
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
            .to_owned());
    };
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".to_owned());
    };
    if iat > now + IAT_SKEW {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
            .to_owned());
    }
    if exp <= now {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".to_owned());
    }
    if exp > now + MAX_LIFETIME || exp - iat > MAX_LIFETIME + IAT_SKEW {
        return Err("'Expiration time' claim ('exp') is too far in the future".to_owned());
    }
    Ok(())
}
