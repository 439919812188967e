//! CI OIDC ID tokens: verifying the JWTs that GitHub Actions and GitLab CI
//! give a job, so that a pipeline can prove which repository, workflow,
//! environment and ref it runs for.
//!
//! Security: a CI job (whoever controls a pipeline) presents the token and
//! every claim in it. A token that verifies here is taken as proof of a
//! CI job's identity, and policy decides on its claims. Every check fails
//! closed, and each refusal has its own [`OidcError`] variant whose message
//! says what is wrong without ever repeating the token (untrusted strings
//! such as `alg`, `kid` or `iss` are cut short before they go into a message).
//!
//! # The rules
//!
//! Keys ([`OidcKeys::from_jwks`], from the issuer's JWKS document):
//!
//! - Only RSA keys (`kty: RSA`, `n`, `e`; `alg` RS256 if present) of 2048 to
//!   4096 bits and EC P-256 keys (`kty: EC`, `crv: P-256`, `x`, `y`; `alg`
//!   ES256 if present, the point must be on the curve) are used.
//! - Each usable key needs a `kid`; two usable keys with the same `kid` fail
//!   the document (a token could not say which it means).
//! - Keys with `use` other than `sig`, `key_ops` without `verify`, another
//!   `kty` or curve, or another `alg` are skipped, not an error (RFC 7517 §5):
//!   issuers may publish keys for other purposes. A document with no usable
//!   key is an error, as is one with an RSA key that is too short, a
//!   malformed usable key, or any private key material (`d`, …).
//!
//! Tokens ([`verify`]), in this order:
//!
//! 1. At most [`MAX_TOKEN_BYTES`]; exactly three base64url (unpadded) parts;
//!    header and claims JSON objects without duplicate members.
//! 2. Header `alg` is RS256 or ES256. `none`, the HMAC algorithms (an HMAC
//!    "keyed" with a public key can be forged by anyone who has the public
//!    key), PS*, EdDSA and everything else are refused, each by name.
//! 3. No header member that supplies a key (`jwk`, `jku`, `x5u`, `x5c`): the
//!    key comes only from the configured JWKS. No `crit`: no extension is
//!    understood here. `typ`, if present, is `JWT`. Other members (`x5t`,
//!    which GitHub sends) are ignored.
//! 4. `kid` present and in the key set. An unknown `kid` is
//!    [`OidcError::UnknownKey`], which a caller handles by refreshing the
//!    JWKS once and retrying (key rotation).
//! 5. The key's type matches `alg`: an RS256 header on an EC key, or an
//!    ES256 header on an RSA key, is refused before any cryptography.
//! 6. The signature verifies: RSASSA-PKCS1-v1_5 with SHA-256, or ECDSA
//!    P-256 with SHA-256 and the fixed-length `r || s` encoding of JWS
//!    (RFC 7518 §3.4). `ring` does the cryptography (see ARCHITECTURE.md,
//!    "Dependencies", for why not jsonwebtoken here).
//! 7. Claims: `iss`, `sub`, `aud`, `exp` and `iat` present and well typed;
//!    `iss` equals [`IssuerExpect::issuer`] exactly; `aud` (a string or an
//!    array of strings) contains [`IssuerExpect::audience`]; `exp` after
//!    `iat` and `exp - iat <= max_lifetime`; `iat <= now + leeway`;
//!    `nbf`, if present, `<= now + leeway`; `now < exp + leeway`.
//!
//! Times are RFC 7519 NumericDate whole seconds (a fractional value is
//! refused); [`Timestamp`] is milliseconds, and `now` is always the caller's.
//!
//! # Choosing the issuer
//!
//! A deployment trusts a few issuers, each with its own JWKS and audience.
//! [`peek_issuer_and_kid`] reads `iss` and `kid` from a token *without
//! verifying anything*, only to route it to the right [`IssuerExpect`] and
//! [`OidcKeys`]; [`verify`] then checks `iss` again against that choice.
//!
//! # Lifetimes
//!
//! GitHub Actions tokens live minutes. GitLab sets `exp` from the job's
//! timeout (plus a few minutes), so [`IssuerExpect::max_lifetime`] for a
//! GitLab issuer must be at least the longest job timeout allowed, plus a
//! margin.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::signature::{ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use crate::time::Timestamp;

/// The issuer of GitHub Actions OIDC tokens on github.com.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// JWKS documents longer than this are refused before parsing.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// A JWKS document holds at most this many keys (usable or not).
pub const MAX_JWKS_KEYS: usize = 64;
/// The shortest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The longest RSA modulus accepted, in bits (the RSA implementation's limit).
pub const MAX_RSA_BITS: usize = 4096;
/// A reasonable clock skew allowance for [`IssuerExpect::leeway`].
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Header members that name or carry a key. A token never chooses its own key.
const KEY_HEADERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];
/// JWK members that only a private key has.
const PRIVATE_JWK_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];
/// Untrusted strings are cut to this many characters in error messages.
const MAX_ECHO_CHARS: usize = 128;
/// At most this many audiences are repeated in an error message.
const MAX_ECHO_AUDIENCES: usize = 8;
/// The largest RSA public exponent the RSA implementation accepts.
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;
/// The P-256 coordinate size in bytes.
const P256_COORDINATE_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("OIDC token is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed OIDC token: {0}")]
    Malformed(String),
    #[error("OIDC token is unsigned (alg \"none\"); only RS256 and ES256 are accepted")]
    AlgNone,
    #[error(
        "OIDC token uses the symmetric algorithm {alg:?}; only RS256 and ES256 are accepted (an HMAC keyed with a public key can be forged by anyone)"
    )]
    SymmetricAlgorithm { alg: String },
    #[error("OIDC token uses algorithm {alg:?}; only RS256 and ES256 are accepted")]
    UnsupportedAlgorithm { alg: String },
    #[error(
        "OIDC token header member {field:?} tries to supply a key; keys come only from the issuer's configured JWKS"
    )]
    KeyInHeader { field: String },
    #[error("OIDC token header has \"crit\"; no JWS extension is supported")]
    CriticalHeader,
    #[error("OIDC token header typ is {typ:?}, expected \"JWT\"")]
    UnexpectedType { typ: String },
    #[error("OIDC token header has no kid")]
    MissingKeyId,
    #[error("OIDC token is signed by key {kid:?}, which is not in the issuer's JWKS (refresh the JWKS and retry once)")]
    UnknownKey { kid: String },
    #[error("OIDC token is signed by key {kid:?}, which the issuer's JWKS has but cannot be used: {reason}")]
    UnusableKey { kid: String, reason: String },
    #[error("OIDC token header alg {alg:?} does not match key {kid:?}, an {key_type} key (which signs {expected:?})")]
    AlgorithmKeyMismatch { alg: String, kid: String, key_type: KeyType, expected: String },
    #[error("OIDC token signature does not verify with key {kid:?}")]
    BadSignature { kid: String },
    #[error("OIDC token has no {0:?} claim")]
    MissingClaim(&'static str),
    #[error("OIDC token claim {claim:?} is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },
    #[error("wrong issuer: expected {expected:?}, found {found:?}")]
    WrongIssuer { expected: String, found: String },
    #[error("wrong audience: expected {expected:?}, found {found:?}")]
    WrongAudience { expected: String, found: Vec<String> },
    #[error("OIDC token expired at {exp} (now {now}, leeway {leeway_secs}s)")]
    Expired { exp: Timestamp, now: Timestamp, leeway_secs: u64 },
    #[error("OIDC token is not valid before {nbf} (now {now}, leeway {leeway_secs}s)")]
    NotYetValid { nbf: Timestamp, now: Timestamp, leeway_secs: u64 },
    #[error("OIDC token was issued in the future, at {iat} (now {now}, leeway {leeway_secs}s)")]
    IssuedInFuture { iat: Timestamp, now: Timestamp, leeway_secs: u64 },
    #[error("OIDC token lifetime of {lifetime_secs}s from iat to exp is longer than the {max_secs}s allowed")]
    LifetimeTooLong { lifetime_secs: i64, max_secs: u64 },
    #[error("invalid JWKS: {0}")]
    InvalidJwks(String),
}

fn malformed(why: impl Into<String>) -> OidcError {
    OidcError::Malformed(why.into())
}

fn invalid_jwks(why: impl Into<String>) -> OidcError {
    OidcError::InvalidJwks(why.into())
}

fn invalid_claim(claim: &'static str, reason: impl Into<String>) -> OidcError {
    OidcError::InvalidClaim { claim, reason: reason.into() }
}

/// Cuts an untrusted string for an error message; `{:?}` then escapes it.
fn echo(s: &str) -> String {
    s.chars().take(MAX_ECHO_CHARS).collect()
}

/// The kind of a usable key, which fixes the one algorithm it verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// An RSA key of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits; verifies RS256.
    Rsa,
    /// An EC key on P-256; verifies ES256.
    EcP256,
}

impl KeyType {
    /// The JWS `alg` this key verifies: `RS256` or `ES256`.
    pub fn algorithm(self) -> &'static str {
        match self {
            KeyType::Rsa => "RS256",
            KeyType::EcP256 => "ES256",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
        })
    }
}

/// One usable verification key from an issuer's JWKS.
#[derive(Clone)]
pub struct OidcKey {
    kid: String,
    key_type: KeyType,
    bits: usize,
    material: KeyMaterial,
}

/// A key's public material, as the verifier takes it.
#[derive(Clone)]
enum KeyMaterial {
    /// Modulus and exponent, big-endian, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `04 || x || y`, checked to be on the curve.
    EcP256 { point: Vec<u8> },
}

impl KeyMaterial {
    /// Whether `signature` is this key's over `message`.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            KeyMaterial::Rsa { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature).is_ok()
            }
            KeyMaterial::EcP256 { point } => ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

impl fmt::Debug for OidcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OidcKey({:?}, {} {} bits)", self.kid, self.key_type, self.bits)
    }
}

impl OidcKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key size: the RSA modulus length, or 256 for P-256.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The length of a valid signature by this key, in bytes.
    fn signature_len(&self) -> usize {
        match self.key_type {
            KeyType::Rsa => self.bits.div_ceil(8),
            KeyType::EcP256 => 2 * P256_COORDINATE_BYTES,
        }
    }
}

/// A JWKS entry that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    pub kid: Option<String>,
    pub reason: String,
}

/// The verification keys of one issuer, from its JWKS, looked up by `kid`.
/// Never empty; no two keys with the same `kid`.
#[derive(Clone, Debug)]
pub struct OidcKeys {
    keys: Vec<OidcKey>,
    skipped: Vec<SkippedKey>,
}

impl OidcKeys {
    /// Parses a JWKS document, `{"keys":[…]}`, by the rules in the module
    /// documentation. Errors are [`OidcError::InvalidJwks`].
    pub fn from_jwks(json: &str) -> Result<OidcKeys, OidcError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(invalid_jwks(format!(
                "document is {} bytes, more than the {MAX_JWKS_BYTES}-byte limit",
                json.len()
            )));
        }
        let doc: Value = serde_json::from_str(json)
            .map_err(|e| invalid_jwks(format!("not JSON (line {}, column {})", e.line(), e.column())))?;
        let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
            return Err(invalid_jwks("no \"keys\" array"));
        };
        if entries.len() > MAX_JWKS_KEYS {
            return Err(invalid_jwks(format!("more than {MAX_JWKS_KEYS} keys")));
        }
        let mut keys: Vec<OidcKey> = Vec::new();
        let mut skipped = Vec::new();
        for (idx, entry) in entries.iter().enumerate() {
            let named = || match entry.get("kid").and_then(Value::as_str) {
                Some(kid) => format!("key {idx} (kid {:?})", echo(kid)),
                None => format!("key {idx}"),
            };
            match parse_jwk(entry).map_err(|why| invalid_jwks(format!("{}: {why}", named())))? {
                Ok(key) => {
                    if keys.iter().any(|k| k.kid == key.kid) {
                        return Err(invalid_jwks(format!("{}: the kid appears on more than one key", named())));
                    }
                    keys.push(key);
                }
                Err(skip) => skipped.push(skip),
            }
        }
        if keys.is_empty() {
            let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
            return Err(invalid_jwks(if reasons.is_empty() {
                "the key set is empty".to_owned()
            } else {
                format!("no usable key (RS256 or ES256 signing key); skipped: {}", reasons.join("; "))
            }));
        }
        Ok(OidcKeys { keys, skipped })
    }

    /// The `kid`s of the usable keys, in document order.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The usable key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&OidcKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[OidcKey] {
        &self.keys
    }

    /// The entries that were skipped, with the reason (for logs).
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }
}

/// One JWKS entry: `Ok(Ok(key))` usable, `Ok(Err(skipped))` skipped, `Err`
/// fails the whole document.
fn parse_jwk(entry: &Value) -> Result<Result<OidcKey, SkippedKey>, String> {
    let Some(jwk) = entry.as_object() else { return Err("not a JSON object".into()) };
    let member = |name: &str| match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("{name} is not a string")),
    };
    let kid = member("kid")?;
    if let Some(private) = PRIVATE_JWK_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(format!("contains private key material ({private}); a JWKS must hold public keys only"));
    }
    let skip = |reason: String| Ok(Err(SkippedKey { kid: kid.map(str::to_owned), reason }));
    if let Some(usage) = member("use")?
        && usage != "sig"
    {
        return skip(format!("use is {:?}, not \"sig\"", echo(usage)));
    }
    if let Some(ops) = jwk.get("key_ops")
        && !ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify"))
    {
        return skip("key_ops does not include \"verify\"".into());
    }
    let key_type = match member("kty")? {
        Some("RSA") => KeyType::Rsa,
        Some("EC") => match member("crv")? {
            Some("P-256") => KeyType::EcP256,
            Some(other) => return skip(format!("EC curve {:?} is not supported (only P-256)", echo(other))),
            None => return Err("EC key has no crv".into()),
        },
        Some(other) => return skip(format!("kty {:?} is not supported (only RSA and EC)", echo(other))),
        None => return Err("no kty".into()),
    };
    if let Some(alg) = member("alg")?
        && alg != key_type.algorithm()
    {
        return skip(format!("alg is {:?}; only {} is accepted for {key_type} keys", echo(alg), key_type.algorithm()));
    }
    let Some(kid) = kid else { return Err("no kid; tokens name their key by kid".into()) };
    if kid.is_empty() {
        return Err("empty kid".into());
    }
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let Some(text) = member(name)? else { return Err(format!("no {name}")) };
        B64URL.decode(text).map_err(|_| format!("{name} is not unpadded base64url"))
    };
    let (bits, material) = match key_type {
        KeyType::Rsa => {
            let n = bytes("n")?;
            let e = bytes("e")?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = bit_length(n);
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA modulus is {bits} bits; at least {MIN_RSA_BITS} are required"));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!("RSA modulus is {bits} bits; at most {MAX_RSA_BITS} are supported"));
            }
            if n.last().is_none_or(|b| b & 1 == 0) {
                return Err("RSA modulus is even".into());
            }
            let exponent =
                if e.len() > 8 { None } else { Some(e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b))) };
            match exponent {
                Some(x) if (3..=MAX_RSA_EXPONENT).contains(&x) && x & 1 == 1 => {}
                _ => return Err("RSA public exponent is not an odd number from 3 to 2^33-1".into()),
            }
            (bits, KeyMaterial::Rsa { n: n.to_vec(), e: e.to_vec() })
        }
        KeyType::EcP256 => {
            let mut point = vec![0x04];
            for name in ["x", "y"] {
                let coordinate = bytes(name)?;
                if coordinate.len() != P256_COORDINATE_BYTES {
                    return Err(format!(
                        "{name} is {} bytes, a P-256 coordinate is {P256_COORDINATE_BYTES}",
                        coordinate.len()
                    ));
                }
                point.extend_from_slice(&coordinate);
            }
            // The verifier checks the point only when it verifies; check it
            // now so that a point off the curve fails the JWKS rather than
            // every token.
            if p256::PublicKey::from_sec1_bytes(&point).is_err() {
                return Err("x, y is not a point on P-256".into());
            }
            (256, KeyMaterial::EcP256 { point })
        }
    };
    Ok(Ok(OidcKey { kid: kid.to_owned(), key_type, bits, material }))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// What a deployment expects of the tokens of one issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerExpect {
    /// `iss` must equal it exactly, e.g. [`GITHUB_ISSUER`] or `https://gitlab.example.com`.
    pub issuer: String,
    /// `aud` (a string or an array) must contain it.
    pub audience: String,
    /// The longest `exp - iat` accepted (e.g. 1 h; see the module
    /// documentation on GitLab).
    pub max_lifetime: Duration,
    /// Clock skew allowed at `nbf`, `iat` and `exp` (e.g. [`DEFAULT_LEEWAY`]).
    pub leeway: Duration,
}

impl IssuerExpect {
    /// An expectation with the [`DEFAULT_LEEWAY`].
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, max_lifetime: Duration) -> IssuerExpect {
        IssuerExpect { issuer: issuer.into(), audience: audience.into(), max_lifetime, leeway: DEFAULT_LEEWAY }
    }
}

/// The claims of a token that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcClaims {
    /// The `kid` of the key that signed it.
    pub key_id: String,
    pub issuer: String,
    pub subject: String,
    pub audience: Vec<String>,
    /// `exp`, in milliseconds (a whole second).
    pub expires_at: Timestamp,
    /// `iat`, in milliseconds (a whole second).
    pub issued_at: Timestamp,
    /// `nbf`, in milliseconds (a whole second), if the token has one.
    pub not_before: Option<Timestamp>,
    /// Every claim, as signed (GitHub's `repository`, GitLab's `project_path`, …).
    pub raw: Map<String, Value>,
}

impl OidcClaims {
    /// A claim that is a JSON string, e.g. `repository`, `environment`, `ref`.
    /// Anything else (absent, a number, an object) is `None`.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.raw.get(name).and_then(Value::as_str)
    }

    /// A numeric id claim (GitHub's `repository_id`, GitLab's `project_id`)
    /// in canonical decimal form. Issuers send ids as JSON strings of digits,
    /// but a non-negative JSON integer is accepted too. A string with a sign,
    /// a leading zero or anything but digits, a fraction and a negative
    /// number are `None`, so that two forms of one id never compare unequal.
    pub fn id_claim(&self, name: &str) -> Option<String> {
        match self.raw.get(name)? {
            Value::String(s) => {
                let n: u64 = s.parse().ok()?;
                (s.bytes().all(|b| b.is_ascii_digit()) && n.to_string() == *s).then(|| s.clone())
            }
            Value::Number(n) => n.as_u64().map(|n| n.to_string()),
            _ => None,
        }
    }
}

/// Decodes one base64url part and parses it as a JSON object without
/// duplicate members at any depth ([`crate::json`]: a parser differential,
/// one reader seeing the first `iss` and another the last, is refused).
/// Error messages name the position, never the content.
fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = B64URL.decode(part).map_err(|_| malformed(format!("{what} is not unpadded base64url")))?;
    match crate::json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed(format!("{what} is not a JSON object"))),
        // serde_json's own messages may quote the content; only ours is repeated.
        Err(e) => Err(match crate::json::duplicate_member(&e) {
            Some(name) => malformed(format!("{what} has a {}{name}", crate::json::DUPLICATE_MEMBER)),
            None => malformed(format!("{what} is not a JSON object (line {}, column {})", e.line(), e.column())),
        }),
    }
}

/// Size check and the three parts.
fn split(token: &str) -> Result<[&str; 3], OidcError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(OidcError::TooLarge { len: token.len(), max: MAX_TOKEN_BYTES });
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts[..] {
        [header, payload, signature] => Ok([header, payload, signature]),
        _ => Err(malformed(format!("expected three dot-separated parts, found {}", parts.len()))),
    }
}

/// Reads `iss` (from the claims) and `kid` (from the header) of a token
/// **without verifying anything**: no signature, no time, no audience.
///
/// Use it only to route a token to the issuer configuration and JWKS it
/// claims to come from, then call [`verify`] with them, which checks `iss`
/// again. Never decide anything else on what this returns.
pub fn peek_issuer_and_kid(token: &str) -> Result<(String, Option<String>), OidcError> {
    let [header_b64, payload_b64, _] = split(token)?;
    let header = decode_object(header_b64, "header")?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("header kid is not a string")),
    };
    let claims = decode_object(payload_b64, "claims")?;
    let issuer = match claims.get("iss") {
        Some(Value::String(iss)) => iss.clone(),
        Some(_) => return Err(invalid_claim("iss", "not a string")),
        None => return Err(OidcError::MissingClaim("iss")),
    };
    Ok((issuer, kid))
}

/// Verifies a CI OIDC ID token against one issuer's keys and expectations at
/// `now`, by the rules in the module documentation.
///
/// On [`OidcError::UnknownKey`] the issuer may have rotated its keys: fetch
/// its JWKS again (at most once per token, and rate-limited) and retry.
pub fn verify(token: &str, keys: &OidcKeys, expect: &IssuerExpect, now: Timestamp) -> Result<OidcClaims, OidcError> {
    let [header_b64, payload_b64, signature_b64] = split(token)?;
    let header = decode_object(header_b64, "header")?;

    // The algorithm first, so that the classic attacks are named as such.
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        Some(_) => return Err(malformed("header alg is not a string")),
        None => return Err(malformed("header has no alg")),
    };
    let alg = match alg {
        "RS256" => KeyType::Rsa,
        "ES256" => KeyType::EcP256,
        none if none.eq_ignore_ascii_case("none") => return Err(OidcError::AlgNone),
        hs if hs.as_bytes().get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"HS")) => {
            return Err(OidcError::SymmetricAlgorithm { alg: echo(hs) });
        }
        other => return Err(OidcError::UnsupportedAlgorithm { alg: echo(other) }),
    };
    if let Some(field) = KEY_HEADERS.iter().find(|f| header.contains_key(**f)) {
        return Err(OidcError::KeyInHeader { field: (*field).to_owned() });
    }
    if header.contains_key("crit") {
        return Err(OidcError::CriticalHeader);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("application/jwt") => {}
        Some(Value::String(typ)) => return Err(OidcError::UnexpectedType { typ: echo(typ) }),
        Some(_) => return Err(malformed("header typ is not a string")),
    }
    let kid = match header.get("kid") {
        None => return Err(OidcError::MissingKeyId),
        Some(Value::String(kid)) if kid.is_empty() => return Err(OidcError::MissingKeyId),
        Some(Value::String(kid)) => kid.as_str(),
        Some(_) => return Err(malformed("header kid is not a string")),
    };
    let Some(key) = keys.get(kid) else {
        return Err(match keys.skipped.iter().find(|s| s.kid.as_deref() == Some(kid)) {
            Some(skipped) => OidcError::UnusableKey { kid: echo(kid), reason: skipped.reason.clone() },
            None => OidcError::UnknownKey { kid: echo(kid) },
        });
    };
    if key.key_type != alg {
        let found = alg.algorithm();
        return Err(OidcError::AlgorithmKeyMismatch {
            alg: found.to_owned(),
            kid: echo(kid),
            key_type: key.key_type,
            expected: key.key_type.algorithm().to_owned(),
        });
    }

    // The other parts before the signature check, so that garbage is reported
    // as malformed rather than as a bad signature.
    let claims = decode_object(payload_b64, "claims")?;
    let signature = B64URL.decode(signature_b64).map_err(|_| malformed("signature is not unpadded base64url"))?;
    if signature.len() != key.signature_len() {
        return Err(malformed(format!(
            "signature is {} bytes; an {} signature by key {:?} is {}",
            signature.len(),
            key.key_type.algorithm(),
            echo(kid),
            key.signature_len()
        )));
    }

    // The JWS signing input is the first two parts as sent, dot included.
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    if !key.material.verifies(signing_input, &signature) {
        return Err(OidcError::BadSignature { kid: echo(kid) });
    }

    let claims = check_claims(claims, kid)?;
    if claims.issuer != expect.issuer {
        return Err(OidcError::WrongIssuer { expected: expect.issuer.clone(), found: echo(&claims.issuer) });
    }
    if !claims.audience.contains(&expect.audience) {
        return Err(OidcError::WrongAudience {
            expected: expect.audience.clone(),
            found: claims.audience.iter().take(MAX_ECHO_AUDIENCES).map(|a| echo(a)).collect(),
        });
    }
    let (exp, iat) = (i128::from(claims.expires_at.millis()), i128::from(claims.issued_at.millis()));
    if exp <= iat {
        return Err(invalid_claim("exp", format!("{} is not after iat {}", claims.expires_at, claims.issued_at)));
    }
    if exp - iat > i128::try_from(expect.max_lifetime.as_millis()).unwrap_or(i128::MAX) {
        return Err(OidcError::LifetimeTooLong {
            lifetime_secs: i64::try_from((exp - iat) / 1000).unwrap_or(i64::MAX),
            max_secs: expect.max_lifetime.as_secs(),
        });
    }
    let leeway = i128::try_from(expect.leeway.as_millis()).unwrap_or(i128::MAX);
    let leeway_secs = expect.leeway.as_secs();
    let now_ms = i128::from(now.millis());
    if iat > now_ms.saturating_add(leeway) {
        return Err(OidcError::IssuedInFuture { iat: claims.issued_at, now, leeway_secs });
    }
    if let Some(nbf) = claims.not_before
        && i128::from(nbf.millis()) > now_ms.saturating_add(leeway)
    {
        return Err(OidcError::NotYetValid { nbf, now, leeway_secs });
    }
    if now_ms >= exp.saturating_add(leeway) {
        return Err(OidcError::Expired { exp: claims.expires_at, now, leeway_secs });
    }
    Ok(claims)
}

/// The registered claims, present and well typed; the caller compares them.
fn check_claims(raw: Map<String, Value>, kid: &str) -> Result<OidcClaims, OidcError> {
    let string = |name: &'static str| match raw.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid_claim(name, "not a string")),
        None => Err(OidcError::MissingClaim(name)),
    };
    let time = |name: &'static str| -> Result<Option<Timestamp>, OidcError> {
        let Some(value) = raw.get(name) else { return Ok(None) };
        let secs = value.as_i64().ok_or_else(|| invalid_claim(name, "not a whole number of seconds"))?;
        secs.checked_mul(1000).map(|ms| Some(Timestamp(ms))).ok_or_else(|| invalid_claim(name, "out of range"))
    };
    let issuer = string("iss")?;
    let subject = string("sub")?;
    if subject.is_empty() {
        return Err(invalid_claim("sub", "empty"));
    }
    let audience = match raw.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(auds)) if !auds.is_empty() => auds
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid_claim("aud", "an array with a member that is not a string"))?,
        Some(Value::Array(_)) => return Err(invalid_claim("aud", "an empty array")),
        Some(_) => return Err(invalid_claim("aud", "neither a string nor an array of strings")),
        None => return Err(OidcError::MissingClaim("aud")),
    };
    let expires_at = time("exp")?.ok_or(OidcError::MissingClaim("exp"))?;
    let issued_at = time("iat")?.ok_or(OidcError::MissingClaim("iat"))?;
    let not_before = time("nbf")?;
    Ok(OidcClaims { key_id: kid.to_owned(), issuer, subject, audience, expires_at, issued_at, not_before, raw })
}
