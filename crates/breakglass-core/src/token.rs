//! Grant tokens: signed, time-bound proof that a break-glass grant is active,
//! which a Git hook or CI step can check offline when the breakglass server
//! cannot be reached (PRODUCT.md, fundamentals 2 and 11).
//!
//! Security: a bearer of a token (stolen, forged, replayed, expired) controls
//! its every byte; a token that verifies here lets a protected push through or relaxes a
//! pipeline gate. Every check fails closed, and each refusal has its own
//! [`TokenError`] variant whose message says what is wrong without ever
//! repeating the token.
//!
//! # Revocation is not visible offline
//!
//! An offline verifier cannot see revocation. A grant revoked early stays
//! usable through a token already handed out until the token's `exp`, which
//! is the grant's expiry at the latest, so exposure after revocation is bounded
//! by `exp`. Verifiers that can reach the server ask it as well; the online
//! check is what covers revocation. Keep grants short for this reason too.
//!
//! # Format
//!
//! A token is a compact JWS (RFC 7515) JWT (RFC 7519) signed with Ed25519
//! (`alg: EdDSA`, RFC 8037). The header is exactly
//! `{"typ":"breakglass-grant+jwt","alg":"EdDSA","kid":…}`: the explicit `typ`
//! (RFC 8725 §3.11) keeps any other JWT signed by the same key from passing as
//! a grant token. The claims are
//!
//! | claim    | meaning                                                              |
//! |----------|----------------------------------------------------------------------|
//! | `iss`    | the server's configured issuer string                                |
//! | `aud`    | `"breakglass"` ([`AUDIENCE`]), a single string                       |
//! | `sub`    | the principal the grant belongs to                                   |
//! | `grant`  | the grant id                                                         |
//! | `scopes` | scope strings, e.g. `git:payments/api@refs/heads/main`               |
//! | `caps`   | capability strings, e.g. `push`, `skip-gate:tests`                   |
//! | `nbf`    | activation time, seconds, rounded down                               |
//! | `exp`    | grant expiry, seconds, rounded down: a token never outlives its grant |
//! | `iat`    | issue time, seconds, rounded down                                    |
//! | `jti`    | a unique token id, chosen by the caller (this crate has no randomness) |
//!
//! Times are RFC 7519 NumericDate seconds; [`Timestamp`] is milliseconds.
//! `nbf` is inclusive and `exp` exclusive, as RFC 7519 says: a token is valid
//! for `nbf*1000 - leeway <= now < exp*1000`, so a grant ends exactly on time.
//! The leeway ([`Expect::nbf_leeway`], default [`DEFAULT_NBF_LEEWAY`]) applies
//! to `nbf` only. A token exists only once its grant is active, so accepting
//! it a few seconds "early" on a verifier whose clock lags costs nothing;
//! leeway at `exp` would let a token outlive its grant, so there is none.
//!
//! # Keys
//!
//! The key id (`kid`) is the RFC 7638 JWK thumbprint of the public key
//! (base64url SHA-256 of `{"crv":"Ed25519","kty":"OKP","x":…}`), so anyone
//! can recompute it from the key, and a JWKS whose `kid` does not match its
//! key is refused. Verification picks the key by `kid` and fails closed on an
//! unknown one. Header members that try to supply a key (`jku`, `jwk`, `x5u`,
//! `x5c`, `x5t`, `x5t#S256`) are refused, as is any header member other than
//! `alg`, `kid` and `typ`.
//!
//! # Scopes and capabilities
//!
//! Coverage is [`crate::scope`]'s, the same rules policy and the server use:
//! a token scope covers the scope acted on if it is equal, or if it ends in
//! `*` in its ref or environment part (`git:payments/api@refs/heads/release/*`,
//! `pipeline:payments/api/deploy@*`) and the target's part starts with what
//! precedes the `*`. The repository, project and stage are always compared
//! exactly, so `git:payments/api@…` never covers `git:payments/api-internal@…`,
//! and a `pipeline:` scope never covers a `git:` target. A token scope that
//! does not parse covers nothing. The scope acted on must be concrete (no
//! `*`). Capabilities are compared exactly (`skip-gate:tests` does not grant
//! `skip-gate:secret-scan`), and one of the wrong kind for the scope acted on
//! (`deploy` on a `git:` scope) is refused as a caller error.
//!
//! jsonwebtoken does the signing and the signature check. Its own claim
//! validation (which reads the system clock) is switched off entirely; every
//! claim is checked here against the `now` the caller passes.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::grant::{Grant, GrantState};
use crate::scope::{Capability, CapabilityError, Scope, ScopeError, check_request};
use crate::time::Timestamp;

/// The `aud` of every grant token.
pub const AUDIENCE: &str = "breakglass";
/// The header `typ` of every grant token (explicit typing, RFC 8725 §3.11).
pub const TOKEN_TYPE: &str = "breakglass-grant+jwt";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Key sets (JWKS, JWK, key lines) longer than this are refused before parsing.
pub const MAX_KEYSET_BYTES: usize = 256 * 1024;
/// A key set holds at most this many keys.
pub const MAX_KEYS: usize = 64;
/// How far a verifier's clock may lag behind the issuer's at `nbf`. Nothing
/// is allowed at `exp`; see the module documentation.
pub const DEFAULT_NBF_LEEWAY: Duration = Duration::from_secs(5);

/// Header members that name or carry a key. A token never chooses its own key.
const KEY_HEADERS: [&str; 6] = ["jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256"];
/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7), followed by the seed.
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
/// Untrusted strings (alg, kid, header member names) are cut to this many
/// characters before they go into an error message.
const MAX_ECHO_CHARS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token is unsigned (alg \"none\"); only EdDSA-signed tokens are accepted")]
    AlgNone,
    #[error(
        "token uses the symmetric algorithm {alg:?}; only EdDSA is accepted (an HMAC keyed with a public key can be forged by anyone)"
    )]
    SymmetricAlgorithm { alg: String },
    #[error("token uses algorithm {alg:?}; only EdDSA is accepted")]
    UnsupportedAlgorithm { alg: String },
    #[error("token header member {field:?} tries to supply a key; keys come only from the configured key set")]
    KeyInHeader { field: String },
    #[error("token header has unexpected member {field:?}; only alg, kid and typ are allowed")]
    UnexpectedHeader { field: String },
    #[error("token header has no kid")]
    MissingKeyId,
    #[error(
        "token is signed by key {kid:?}, which is not in the key set (hint: refresh it from /.well-known/jwks.json)"
    )]
    UnknownKey { kid: String },
    #[error("token signature does not verify with key {kid:?}")]
    BadSignature { kid: String },
    #[error("token has no {0:?} claim")]
    MissingClaim(&'static str),
    #[error("token has no \"exp\" claim; a token without an expiry is never accepted (there are no permanent grants)")]
    NoExpiry,
    #[error("token lifetime of {lifetime_secs}s from nbf to exp is longer than the {max_secs}s allowed")]
    LifetimeTooLong { lifetime_secs: i64, max_secs: u64 },
    #[error("token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: Timestamp, now: Timestamp },
    #[error("token expired at {exp} (now {now})")]
    Expired { exp: Timestamp, now: Timestamp },
    #[error("token issuer is {found:?}, expected {expected:?}")]
    WrongIssuer { expected: String, found: String },
    #[error("token audience is {found:?}, expected {expected:?}")]
    WrongAudience { expected: String, found: String },
    #[error("token belongs to principal {found:?}, but {expected:?} is acting")]
    WrongPrincipal { expected: String, found: String },
    #[error("token does not cover scope {target:?} (it covers {granted:?})")]
    ScopeNotGranted { target: String, granted: Vec<String> },
    #[error("token does not grant capability {capability:?} (it grants {granted:?})")]
    CapabilityNotGranted { capability: String, granted: Vec<String> },
    #[error("the scope acted on, {0}, is a pattern; it must be a concrete scope")]
    PatternTarget(String),
    #[error(
        "capability {capability} does not apply to {target} (push, force-push and delete apply to git: scopes; deploy, skip-gate and advisory-gate to pipeline: scopes)"
    )]
    CapabilityKindMismatch { capability: String, target: String },
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error("invalid token key: {0}")]
    InvalidKey(String),
    #[error("cannot issue a grant token: {0}")]
    Issue(String),
}

fn malformed(why: impl Into<String>) -> TokenError {
    TokenError::Malformed(why.into())
}

/// Cuts an untrusted string for an error message; `{:?}` then escapes it.
fn echo(s: &str) -> String {
    s.chars().take(MAX_ECHO_CHARS).collect()
}

/// The key id: the RFC 7638 JWK thumbprint of an Ed25519 public key,
/// base64url SHA-256 of `{"crv":"Ed25519","kty":"OKP","x":"<x>"}` (RFC 8037 §A.3).
pub fn key_id(public: &[u8; 32]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64URL.encode(public));
    B64URL.encode(Sha256::digest(canonical.as_bytes()))
}

/// An Ed25519 public key that verifies grant tokens, with its key id.
#[derive(Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    kid: String,
    decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kid)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.key == other.key
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// A key from its 32 bytes. Points that are not on the curve and
    /// small-order ("weak") points are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, TokenError> {
        PublicKey::checked(bytes).map_err(|why| TokenError::InvalidKey(why.into()))
    }

    fn checked(bytes: &[u8; 32]) -> Result<PublicKey, &'static str> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| "not a valid Ed25519 public key")?;
        if key.is_weak() {
            return Err("small-order Ed25519 public key");
        }
        // For Ed25519, jsonwebtoken's "DER" decoding key is the raw 32-byte public key.
        Ok(PublicKey { key, kid: key_id(bytes), decoding: DecodingKey::from_ed_der(bytes) })
    }

    /// A single JWK (RFC 7517 / RFC 8037): `kty` `OKP`, `crv` `Ed25519`, `x`.
    /// `kid`, `alg`, `use` and `key_ops` are optional but must agree with a
    /// verification key when present; a JWK carrying a private key (`d`) is
    /// refused. Other members are ignored, as RFC 7517 §4 requires.
    pub fn from_jwk(json: &str) -> Result<PublicKey, TokenError> {
        if json.len() > MAX_KEYSET_BYTES {
            return Err(TokenError::InvalidKey(format!("JWK is larger than {MAX_KEYSET_BYTES} bytes")));
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| TokenError::InvalidKey(format!("JWK is not JSON: {e}")))?;
        PublicKey::from_jwk_value(&value).map_err(|why| TokenError::InvalidKey(format!("JWK: {why}")))
    }

    fn from_jwk_value(jwk: &Value) -> Result<PublicKey, String> {
        let Some(jwk) = jwk.as_object() else { return Err("not a JSON object".into()) };
        let member = |name: &str| match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{name} is not a string")),
        };
        if jwk.contains_key("d") {
            return Err("contains a private key (d); a key set holds public keys only".into());
        }
        match member("kty")? {
            Some("OKP") => {}
            Some(other) => return Err(format!("kty is {:?}, expected \"OKP\"", echo(other))),
            None => return Err("no kty".into()),
        }
        match member("crv")? {
            Some("Ed25519") => {}
            Some(other) => return Err(format!("crv is {:?}, expected \"Ed25519\"", echo(other))),
            None => return Err("no crv".into()),
        }
        if let Some(alg) = member("alg")?
            && alg != "EdDSA"
        {
            return Err(format!("alg is {:?}, expected \"EdDSA\"", echo(alg)));
        }
        if let Some(usage) = member("use")?
            && usage != "sig"
        {
            return Err(format!("use is {:?}, expected \"sig\"", echo(usage)));
        }
        if let Some(ops) = jwk.get("key_ops")
            && !ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify"))
        {
            return Err("key_ops does not include \"verify\"".into());
        }
        let Some(x) = member("x")? else { return Err("no x".into()) };
        let bytes = B64URL.decode(x).map_err(|_| "x is not unpadded base64url".to_owned())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| "x is not 32 bytes".to_owned())?;
        let key = PublicKey::checked(&bytes)?;
        if let Some(kid) = member("kid")?
            && kid != key.kid
        {
            return Err(format!("kid {:?} is not the key's RFC 7638 thumbprint {:?}", echo(kid), key.kid));
        }
        Ok(key)
    }

    pub fn key_id(&self) -> &str {
        &self.kid
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The public JWK: `{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}`.
    pub fn to_jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64URL.encode(self.as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// The key-line form: `ed25519 <base64url public key>` (see [`KeySet::from_key_lines`]).
    pub fn to_key_line(&self) -> String {
        format!("ed25519 {}", B64URL.encode(self.as_bytes()))
    }
}

/// The keys a verifier trusts, looked up by `kid`. Never empty, no two keys
/// with the same `kid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<PublicKey>,
}

impl KeySet {
    /// A key set from keys, in order (the JWKS lists them in this order).
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Result<KeySet, TokenError> {
        let mut out: Vec<PublicKey> = Vec::new();
        for key in keys {
            if out.iter().any(|k| k.kid == key.kid) {
                return Err(TokenError::InvalidKey(format!("key {} appears twice in the key set", key.kid)));
            }
            out.push(key);
            if out.len() > MAX_KEYS {
                return Err(TokenError::InvalidKey(format!("key set has more than {MAX_KEYS} keys")));
            }
        }
        if out.is_empty() {
            return Err(TokenError::InvalidKey("key set is empty".into()));
        }
        Ok(KeySet { keys: out })
    }

    /// A JWKS document, `{"keys":[…]}`, as served at `/.well-known/jwks.json`.
    /// Every key must be a valid Ed25519 verification key (see
    /// [`PublicKey::from_jwk`]); one that is not fails the whole set rather
    /// than being skipped, because the set is breakglass's own and a key it
    /// cannot use means a misconfiguration.
    pub fn from_jwks(json: &str) -> Result<KeySet, TokenError> {
        if json.len() > MAX_KEYSET_BYTES {
            return Err(TokenError::InvalidKey(format!("JWKS is larger than {MAX_KEYSET_BYTES} bytes")));
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| TokenError::InvalidKey(format!("JWKS is not JSON: {e}")))?;
        let Some(keys) = value.get("keys").and_then(Value::as_array) else {
            return Err(TokenError::InvalidKey("JWKS has no \"keys\" array".into()));
        };
        if keys.len() > MAX_KEYS {
            return Err(TokenError::InvalidKey(format!("JWKS has more than {MAX_KEYS} keys")));
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(idx, jwk)| {
                PublicKey::from_jwk_value(jwk).map_err(|why| TokenError::InvalidKey(format!("JWKS key {idx}: {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        KeySet::new(keys)
    }

    /// Pinned raw keys, one per line: `ed25519 <base64url of the 32-byte
    /// public key>` (the JWK `x`). Blank lines and lines starting with `#`
    /// are ignored. The key id is computed from the key.
    pub fn from_key_lines(text: &str) -> Result<KeySet, TokenError> {
        if text.len() > MAX_KEYSET_BYTES {
            return Err(TokenError::InvalidKey(format!("key file is larger than {MAX_KEYSET_BYTES} bytes")));
        }
        let mut keys = Vec::new();
        for (idx, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| TokenError::InvalidKey(format!("key line {}: {why}", idx + 1));
            let Some(("ed25519", x)) = line.split_once(' ') else {
                return Err(bad("expected `ed25519 <base64url public key>`"));
            };
            let bytes = B64URL.decode(x.trim()).map_err(|_| bad("key is not unpadded base64url"))?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad("key is not 32 bytes"))?;
            keys.push(PublicKey::checked(&bytes).map_err(bad)?);
        }
        KeySet::new(keys)
    }

    /// Reads whichever form `text` is in: a JWKS (a JSON object with
    /// `keys`), a single pinned JWK (any other JSON object), or key lines.
    pub fn parse(text: &str) -> Result<KeySet, TokenError> {
        if text.len() > MAX_KEYSET_BYTES {
            return Err(TokenError::InvalidKey(format!("key set is larger than {MAX_KEYSET_BYTES} bytes")));
        }
        let trimmed = text.trim_start();
        if !trimmed.starts_with('{') {
            return KeySet::from_key_lines(text);
        }
        let is_jwks = serde_json::from_str::<Map<String, Value>>(trimmed).is_ok_and(|m| m.contains_key("keys"));
        if is_jwks { KeySet::from_jwks(trimmed) } else { KeySet::new([PublicKey::from_jwk(trimmed)?]) }
    }

    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The JWKS document: `{"keys":[<public JWK>, …]}`.
    pub fn to_jwks(&self) -> String {
        json!({ "keys": self.keys.iter().map(PublicKey::to_jwk).collect::<Vec<_>>() }).to_string()
    }
}

/// Signs grant tokens with an Ed25519 key. Its Debug output shows only the
/// key id, never the seed.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    public: PublicKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner({})", self.public.kid)
    }
}

/// What a token is issued for: a grant that is active now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRequest {
    pub issuer: String,
    pub principal: String,
    pub grant_id: String,
    pub scopes: Vec<String>,
    pub capabilities: Vec<String>,
    /// When the grant became active (not when it was requested).
    pub activated_at: Timestamp,
    /// When the grant ends.
    pub expires_at: Timestamp,
    /// A unique token id, e.g. 16 random bytes in hex; this crate has no
    /// source of randomness, so the caller chooses it.
    pub token_id: String,
}

impl IssueRequest {
    /// The request for a token for `grant`, which must be active (not
    /// pending, expired, revoked, denied or lapsed). [`TokenSigner::issue`]
    /// then checks that `now` is within its window.
    pub fn for_grant(
        grant: &Grant,
        issuer: impl Into<String>,
        token_id: impl Into<String>,
    ) -> Result<IssueRequest, TokenError> {
        let (GrantState::Active, Some(activated_at), Some(expires_at)) =
            (grant.state, grant.activated_at, grant.expires_at)
        else {
            return Err(TokenError::Issue(format!("grant {:?} is {}, not active", grant.id, grant.state.as_str())));
        };
        Ok(IssueRequest {
            issuer: issuer.into(),
            principal: grant.principal.clone(),
            grant_id: grant.id.clone(),
            scopes: grant.scopes.clone(),
            capabilities: grant.capabilities.clone(),
            activated_at,
            expires_at,
            token_id: token_id.into(),
        })
    }
}

impl TokenSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> TokenSigner {
        let public = SigningKey::from_bytes(seed).verifying_key();
        // jsonwebtoken takes Ed25519 private keys as PKCS#8 DER. The seed
        // lives on in `EncodingKey` (zeroized on drop); the scratch copy is
        // wiped here on a best-effort basis.
        let mut der = [0u8; 48];
        der[..16].copy_from_slice(&PKCS8_ED25519_PREFIX);
        der[16..].copy_from_slice(seed);
        let encoding = EncodingKey::from_ed_der(&der);
        der.fill(0);
        std::hint::black_box(&der);
        let bytes = public.to_bytes();
        TokenSigner {
            encoding,
            public: PublicKey { key: public, kid: key_id(&bytes), decoding: DecodingKey::from_ed_der(&bytes) },
        }
    }

    pub fn key_id(&self) -> &str {
        &self.public.kid
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public JWK of this signer's key.
    pub fn public_jwk(&self) -> Value {
        self.public.to_jwk()
    }

    /// Signs a token for `grant`, at `now`. Refuses unless the grant is
    /// active at `now` and will still be after rounding `exp` down, and
    /// unless every scope and capability is well formed: it never signs a
    /// token that could not verify.
    pub fn issue(&self, grant: &IssueRequest, now: Timestamp) -> Result<String, TokenError> {
        let bad = |why: String| TokenError::Issue(format!("grant {:?}: {why}", grant.grant_id));
        for (name, value) in [
            ("issuer", &grant.issuer),
            ("principal", &grant.principal),
            ("grant id", &grant.grant_id),
            ("token id", &grant.token_id),
        ] {
            if value.is_empty() {
                return Err(bad(format!("{name} is empty")));
            }
        }
        if grant.scopes.is_empty() {
            return Err(bad("no scopes".into()));
        }
        if grant.capabilities.is_empty() {
            return Err(bad("no capabilities".into()));
        }
        let scopes = grant.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>()?;
        let caps = grant.capabilities.iter().map(|c| Capability::parse(c)).collect::<Result<Vec<_>, _>>()?;
        check_request(&scopes, &caps)?;
        let nbf = grant.activated_at.millis().div_euclid(1000);
        let exp = grant.expires_at.millis().div_euclid(1000);
        if now < grant.activated_at {
            return Err(bad(format!("not active until {} (now {now})", grant.activated_at)));
        }
        if now.millis() >= exp.saturating_mul(1000) {
            return Err(bad(format!(
                "expires at {} (tokens end at whole seconds, at {}; now {now})",
                grant.expires_at,
                Timestamp(exp.saturating_mul(1000))
            )));
        }
        let claims = WireClaims {
            iss: Some(grant.issuer.clone()),
            aud: Some(AUDIENCE.to_owned()),
            sub: Some(grant.principal.clone()),
            grant: Some(grant.grant_id.clone()),
            scopes: Some(grant.scopes.clone()),
            caps: Some(grant.capabilities.clone()),
            nbf: Some(nbf),
            exp: Some(exp),
            iat: Some(now.millis().div_euclid(1000)),
            jti: Some(grant.token_id.clone()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(self.public.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| bad(format!("signing: {e}")))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(bad(format!(
                "the token would be {} bytes, more than the {MAX_TOKEN_BYTES}-byte limit (too many scopes?)",
                token.len()
            )));
        }
        Ok(token)
    }
}

/// What a verifier expects of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The server's issuer string; `iss` must equal it.
    pub issuer: String,
    /// `aud` must equal it; [`AUDIENCE`] unless changed.
    pub audience: String,
    /// The principal acting (the pusher, for a Git hook); `sub` must equal it.
    pub principal: Option<String>,
    /// The concrete scope acted on; a token scope must cover it.
    pub scope: Option<Scope>,
    /// The capability needed; the token must list it exactly.
    pub capability: Option<Capability>,
    /// The longest `exp - nbf` accepted: the policy's maximum grant length.
    pub max_lifetime: Duration,
    /// Clock skew allowed at `nbf` only; [`DEFAULT_NBF_LEEWAY`] unless changed.
    pub nbf_leeway: Duration,
}

impl Expect {
    pub fn new(issuer: impl Into<String>, max_lifetime: Duration) -> Expect {
        Expect {
            issuer: issuer.into(),
            audience: AUDIENCE.to_owned(),
            principal: None,
            scope: None,
            capability: None,
            max_lifetime,
            nbf_leeway: DEFAULT_NBF_LEEWAY,
        }
    }

    pub fn with_principal(mut self, principal: impl Into<String>) -> Expect {
        self.principal = Some(principal.into());
        self
    }

    pub fn with_scope(mut self, scope: Scope) -> Expect {
        self.scope = Some(scope);
        self
    }

    pub fn with_capability(mut self, capability: Capability) -> Expect {
        self.capability = Some(capability);
        self
    }

    pub fn with_nbf_leeway(mut self, leeway: Duration) -> Expect {
        self.nbf_leeway = leeway;
        self
    }
}

/// The claims of a token that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantClaims {
    /// The `kid` of the key that signed it.
    pub key_id: String,
    pub issuer: String,
    pub audience: String,
    pub principal: String,
    pub grant_id: String,
    pub scopes: Vec<String>,
    pub capabilities: Vec<String>,
    /// `nbf`, in milliseconds (a whole second).
    pub not_before: Timestamp,
    /// `exp`, in milliseconds (a whole second); the token is invalid from this instant.
    pub expires_at: Timestamp,
    /// `iat`, in milliseconds (a whole second).
    pub issued_at: Timestamp,
    pub token_id: String,
}

impl GrantClaims {
    /// Whether one of the token's scopes covers `target` ([`Scope::covers`]);
    /// a token scope that does not parse covers nothing.
    pub fn covers(&self, target: &Scope) -> bool {
        self.scopes.iter().any(|s| Scope::parse(s).is_ok_and(|s| s.covers(target)))
    }

    /// Whether the token lists `capability`, exactly.
    pub fn has_capability(&self, capability: &Capability) -> bool {
        self.capabilities.iter().any(|c| Capability::parse(c).is_ok_and(|c| c == *capability))
    }
}

/// The claims on the wire. Every claim is optional here so that a missing
/// one gets its own error; serde refuses duplicate members and wrong types.
/// Unknown claims are ignored, as RFC 7519 §4 requires.
#[derive(Serialize, Deserialize)]
struct WireClaims {
    iss: Option<String>,
    aud: Option<String>,
    sub: Option<String>,
    grant: Option<String>,
    scopes: Option<Vec<String>>,
    caps: Option<Vec<String>>,
    nbf: Option<i64>,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// The header on the wire, parsed strictly (after the member names have been
/// checked) so that duplicate members are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// Verifies `token` against `keys` and `expect` at `now`.
///
/// Checks, in order: size; shape (three base64url parts, JSON header); `alg`
/// is EdDSA; no header member but `alg`, `kid`, `typ`; `typ`; the `kid` is
/// known; the signature; every claim is present and well typed; `exp` after
/// `nbf`; issuer; audience; lifetime; `nbf` (with leeway); `exp`; principal;
/// scope; capability.
pub fn verify(token: &str, keys: &KeySet, expect: &Expect, now: Timestamp) -> Result<GrantClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge { len: token.len(), max: MAX_TOKEN_BYTES });
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(malformed(format!("expected three dot-separated parts, found {}", parts.len())));
    };
    let header_bytes = B64URL.decode(header_b64).map_err(|_| malformed("header is not unpadded base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|e| malformed(format!("header is not a JSON object (line {}, column {})", e.line(), e.column())))?;

    // The algorithm first, so that the classic attacks are named as such.
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        Some(_) => return Err(malformed("header alg is not a string")),
        None => return Err(malformed("header has no alg")),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    if alg.as_bytes().get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"HS")) {
        return Err(TokenError::SymmetricAlgorithm { alg: echo(alg) });
    }
    if alg != "EdDSA" {
        return Err(TokenError::UnsupportedAlgorithm { alg: echo(alg) });
    }
    if let Some(field) = header.keys().find(|k| KEY_HEADERS.contains(&k.as_str())) {
        return Err(TokenError::KeyInHeader { field: echo(field) });
    }
    if let Some(field) = header.keys().find(|k| !matches!(k.as_str(), "alg" | "kid" | "typ")) {
        return Err(TokenError::UnexpectedHeader { field: echo(field) });
    }
    let header: WireHeader = serde_json::from_slice(&header_bytes).map_err(|e| {
        malformed(format!("header: {}", if e.is_data() { "duplicate or mistyped member" } else { "bad JSON" }))
    })?;
    if header.alg != "EdDSA" {
        // Unreachable unless the two parses disagree; refuse rather than assume.
        return Err(TokenError::UnsupportedAlgorithm { alg: echo(&header.alg) });
    }
    if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(TOKEN_TYPE)) {
        return Err(malformed(format!("header typ is not {TOKEN_TYPE:?}")));
    }
    let Some(kid) = header.kid else { return Err(TokenError::MissingKeyId) };
    let Some(key) = keys.get(&kid) else { return Err(TokenError::UnknownKey { kid: echo(&kid) }) };

    // Decode the other parts before the signature check, so that garbage is
    // reported as malformed rather than as a bad signature.
    B64URL.decode(payload_b64).map_err(|_| malformed("payload is not unpadded base64url"))?;
    let signature = B64URL.decode(signature_b64).map_err(|_| malformed("signature is not unpadded base64url"))?;
    if signature.len() != 64 {
        return Err(malformed(format!("signature is {} bytes, an Ed25519 signature is 64", signature.len())));
    }

    // jsonwebtoken checks the signature and parses the claims. All of its
    // claim validation is off: it would read the system clock.
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<WireClaims>(token, &key.decoding, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.into_kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature { kid: kid.clone() },
                jsonwebtoken::errors::ErrorKind::Json(e) => malformed(format!("claims: {e}")),
                other => malformed(format!("{other:?}")),
            });
        }
    };
    let claims = check_claims(claims, kid)?;

    if claims.issuer != expect.issuer {
        return Err(TokenError::WrongIssuer { expected: expect.issuer.clone(), found: claims.issuer });
    }
    if claims.audience != expect.audience {
        return Err(TokenError::WrongAudience { expected: expect.audience.clone(), found: claims.audience });
    }
    let lifetime_ms = i128::from(claims.expires_at.millis()) - i128::from(claims.not_before.millis());
    if lifetime_ms > i128::try_from(expect.max_lifetime.as_millis()).unwrap_or(i128::MAX) {
        return Err(TokenError::LifetimeTooLong {
            lifetime_secs: i64::try_from(lifetime_ms / 1000).unwrap_or(i64::MAX),
            max_secs: expect.max_lifetime.as_secs(),
        });
    }
    let leeway_ms = i128::try_from(expect.nbf_leeway.as_millis()).unwrap_or(i128::MAX);
    if i128::from(now.millis()).saturating_add(leeway_ms) < i128::from(claims.not_before.millis()) {
        return Err(TokenError::NotYetValid { nbf: claims.not_before, now });
    }
    if now >= claims.expires_at {
        return Err(TokenError::Expired { exp: claims.expires_at, now });
    }
    if let Some(principal) = &expect.principal
        && claims.principal != *principal
    {
        return Err(TokenError::WrongPrincipal { expected: principal.clone(), found: claims.principal });
    }
    if let Some(target) = &expect.scope {
        if target.to_string().contains('*') {
            return Err(TokenError::PatternTarget(target.to_string()));
        }
        if let Some(cap) = &expect.capability
            && cap.kind() != target.kind()
        {
            return Err(TokenError::CapabilityKindMismatch { capability: cap.to_string(), target: target.to_string() });
        }
        if !claims.covers(target) {
            return Err(TokenError::ScopeNotGranted { target: target.to_string(), granted: claims.scopes });
        }
    }
    if let Some(cap) = &expect.capability
        && !claims.has_capability(cap)
    {
        return Err(TokenError::CapabilityNotGranted { capability: cap.to_string(), granted: claims.capabilities });
    }
    Ok(claims)
}

fn check_claims(c: WireClaims, key_id: String) -> Result<GrantClaims, TokenError> {
    let exp = c.exp.ok_or(TokenError::NoExpiry)?;
    let nbf = c.nbf.ok_or(TokenError::MissingClaim("nbf"))?;
    let iat = c.iat.ok_or(TokenError::MissingClaim("iat"))?;
    let seconds = |secs: i64, name: &str| {
        secs.checked_mul(1000).map(Timestamp).ok_or_else(|| malformed(format!("{name} {secs} is out of range")))
    };
    let claims = GrantClaims {
        key_id,
        issuer: c.iss.ok_or(TokenError::MissingClaim("iss"))?,
        audience: c.aud.ok_or(TokenError::MissingClaim("aud"))?,
        principal: c.sub.ok_or(TokenError::MissingClaim("sub"))?,
        grant_id: c.grant.ok_or(TokenError::MissingClaim("grant"))?,
        scopes: c.scopes.ok_or(TokenError::MissingClaim("scopes"))?,
        capabilities: c.caps.ok_or(TokenError::MissingClaim("caps"))?,
        not_before: seconds(nbf, "nbf")?,
        expires_at: seconds(exp, "exp")?,
        issued_at: seconds(iat, "iat")?,
        token_id: c.jti.ok_or(TokenError::MissingClaim("jti"))?,
    };
    for (name, value) in [("sub", &claims.principal), ("grant", &claims.grant_id), ("jti", &claims.token_id)] {
        if value.is_empty() {
            return Err(malformed(format!("claim {name} is empty")));
        }
    }
    if claims.scopes.is_empty() || claims.capabilities.is_empty() {
        return Err(malformed("token grants no scopes or no capabilities"));
    }
    if exp <= nbf {
        return Err(malformed(format!("exp ({exp}) is not after nbf ({nbf})")));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Signer as _;
    use hmac::{Hmac, Mac};

    use super::*;

    const OLD_SEED: [u8; 32] = [1; 32];
    const NEW_SEED: [u8; 32] = [2; 32];
    const EVIL_SEED: [u8; 32] = [3; 32];
    const ISSUER: &str = "https://breakglass.example.com";
    /// 2001-09-09T01:46:40Z: long past, so a validator that read the system
    /// clock would call every token here expired.
    const T0: i64 = 1_000_000_000_000;
    const ACTIVATED: Timestamp = Timestamp(T0 + 250);
    const GRANT_ENDS: Timestamp = Timestamp(T0 + 3_600_000 + 750);
    const NBF: Timestamp = Timestamp(T0);
    const EXP: Timestamp = Timestamp(T0 + 3_600_000);
    const NOW: Timestamp = Timestamp(T0 + 60_000);
    const HOUR: Duration = Duration::from_secs(3600);

    fn old() -> TokenSigner {
        TokenSigner::from_seed(&OLD_SEED)
    }

    fn keys() -> KeySet {
        KeySet::new([old().public_key().clone(), TokenSigner::from_seed(&NEW_SEED).public_key().clone()]).unwrap()
    }

    fn grant() -> IssueRequest {
        IssueRequest {
            issuer: ISSUER.into(),
            principal: "alice".into(),
            grant_id: "g_01".into(),
            scopes: vec![
                "git:payments/api@refs/heads/main".into(),
                "git:payments/api@refs/heads/release/*".into(),
                "pipeline:payments/api/deploy@production".into(),
            ],
            capabilities: vec!["push".into(), "skip-gate:tests".into(), "deploy".into()],
            activated_at: ACTIVATED,
            expires_at: GRANT_ENDS,
            token_id: "5f0c3b1e9a7d4c2b8e6f1a0d3c5b7e9f".into(),
        }
    }

    fn expect() -> Expect {
        Expect::new(ISSUER, 4 * HOUR)
    }

    fn sc(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn cap(c: &str) -> Capability {
        Capability::parse(c).unwrap()
    }

    fn good() -> String {
        old().issue(&grant(), NOW).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        B64URL.encode(bytes)
    }

    /// The claims `good()` carries, as JSON, for hand-made tokens.
    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "grant": "g_01",
            "scopes": grant().scopes, "caps": grant().capabilities,
            "nbf": T0 / 1000, "exp": T0 / 1000 + 3600, "iat": T0 / 1000 + 60, "jti": "jti-1",
        })
    }

    fn header() -> Value {
        json!({"alg": "EdDSA", "typ": TOKEN_TYPE, "kid": old().key_id()})
    }

    fn with(mut v: Value, key: &str, val: Value) -> Value {
        v[key] = val;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().unwrap().remove(key);
        v
    }

    /// A token with the given raw header and payload bytes, signed by `seed`.
    fn sign_raw(seed: &[u8; 32], header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = SigningKey::from_bytes(seed).sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    /// A token made by hand, signed with Ed25519 by `seed`.
    fn craft(seed: &[u8; 32], header: &Value, claims: &Value) -> String {
        sign_raw(seed, &header.to_string(), &claims.to_string())
    }

    /// A token made by hand with the signature part given.
    fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
        format!("{}.{}.{signature}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
    }

    /// An HMAC-SHA256 token keyed with `secret`: the algorithm-confusion attack.
    fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    /// `good()` with its payload replaced but its signature kept.
    fn tampered(claims: &Value) -> String {
        let token = good();
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2])
    }

    fn variant(err: &TokenError) -> String {
        format!("{err:?}").split(['(', ' ']).next().unwrap().to_owned()
    }

    /// Checks a refusal: the variant, and a message that is useful and never
    /// repeats the token (or its signature).
    fn assert_refused(name: &str, token: &str, res: Result<GrantClaims, TokenError>, want: &str) {
        let err = match res {
            Ok(claims) => panic!("{name}: accepted, claims {claims:?}"),
            Err(err) => err,
        };
        assert_eq!(variant(&err), want, "{name}: {err}");
        let msg = err.to_string();
        assert!(msg.len() > 20, "{name}: message too short: {msg}");
        if token.len() > 20 {
            assert!(!msg.contains(token), "{name}: message repeats the token: {msg}");
        }
        if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(!msg.contains(sig), "{name}: message repeats the signature: {msg}");
        }
    }

    #[test]
    fn issued_token_round_trips() {
        let token = good();
        let claims = verify(&token, &keys(), &expect(), NOW).unwrap();
        assert_eq!(
            claims,
            GrantClaims {
                key_id: old().key_id().to_owned(),
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                principal: "alice".into(),
                grant_id: "g_01".into(),
                scopes: grant().scopes,
                capabilities: grant().capabilities,
                not_before: NBF,
                expires_at: EXP,
                issued_at: NOW,
                token_id: grant().token_id,
            }
        );
    }

    #[test]
    fn token_format_is_as_documented() {
        let token = good();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"typ": TOKEN_TYPE, "alg": "EdDSA", "kid": old().key_id()}));
        let payload: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            payload,
            with(with(claims(), "jti", json!(grant().token_id)), "iat", json!(NOW.millis() / 1000)),
            "claims and second rounding"
        );
        assert_eq!(B64URL.decode(parts[2]).unwrap().len(), 64);
        // Ed25519 is deterministic: the same grant at the same time gives the same token.
        assert_eq!(good(), token);
    }

    #[test]
    fn verification_with_an_expected_use_round_trips() {
        // (principal, scope, capability): every one is granted by good().
        for (principal, scope, cap) in [
            ("alice", "git:payments/api@refs/heads/main", "push"),
            ("alice", "git:payments/api@refs/heads/release/2.1", "push"),
            ("alice", "pipeline:payments/api/deploy@production", "skip-gate:tests"),
            ("alice", "pipeline:payments/api/deploy@production", "deploy"),
        ] {
            let expect = expect().with_principal(principal).with_scope(sc(scope)).with_capability(self::cap(cap));
            let claims = verify(&good(), &keys(), &expect, NOW).unwrap_or_else(|e| panic!("{scope} {cap}: {e}"));
            assert_eq!(claims.grant_id, "g_01");
        }
    }

    #[test]
    fn hand_made_tokens_are_refused() {
        let pk = *old().public_key().as_bytes();
        let x = b64(&pk);
        let evil = TokenSigner::from_seed(&EVIL_SEED);
        let evil_kid = evil.key_id().to_owned();
        let good_parts: Vec<String> = good().split('.').map(str::to_owned).collect();
        let (h, p, s) = (&good_parts[0], &good_parts[1], &good_parts[2]);
        #[rustfmt::skip]
        let cases: Vec<(&str, String, &str)> = vec![
            // Signature and key.
            ("signed by another key, same kid", craft(&EVIL_SEED, &header(), &claims()), "BadSignature"),
            ("payload changed after signing", tampered(&with(claims(), "sub", json!("mallory"))), "BadSignature"),
            ("scopes widened after signing", tampered(&with(claims(), "scopes", json!(["git:payments/api@*"]))), "BadSignature"),
            ("signature of another token", format!("{h}.{p}.{}", craft(&OLD_SEED, &header(), &claims()).rsplit('.').next().unwrap()), "BadSignature"),
            ("signature all zero", unsigned(&header(), &claims(), &b64(&[0; 64])), "BadSignature"),
            ("unknown kid", craft(&EVIL_SEED, &with(header(), "kid", json!(evil_kid)), &claims()), "UnknownKey"),
            ("kid of another format", craft(&OLD_SEED, &with(header(), "kid", json!("1")), &claims()), "UnknownKey"),
            ("no kid", craft(&OLD_SEED, &without(header(), "kid"), &claims()), "MissingKeyId"),
            // Algorithms.
            ("alg none, no signature", unsigned(&with(header(), "alg", json!("none")), &claims(), ""), "AlgNone"),
            ("alg None, no signature", unsigned(&with(header(), "alg", json!("None")), &claims(), ""), "AlgNone"),
            ("alg NONE, real signature", format!("{}.{p}.{s}", b64(with(header(), "alg", json!("NONE")).to_string().as_bytes())), "AlgNone"),
            ("HS256 keyed with the public key bytes", hs256(&pk, &with(header(), "alg", json!("HS256")), &claims()), "SymmetricAlgorithm"),
            ("HS256 keyed with the JWK x string", hs256(x.as_bytes(), &with(header(), "alg", json!("HS256")), &claims()), "SymmetricAlgorithm"),
            ("HS256 keyed with the JWK JSON", hs256(old().public_jwk().to_string().as_bytes(), &with(header(), "alg", json!("HS256")), &claims()), "SymmetricAlgorithm"),
            ("HS512", hs256(&pk, &with(header(), "alg", json!("HS512")), &claims()), "SymmetricAlgorithm"),
            ("RS256", craft(&OLD_SEED, &with(header(), "alg", json!("RS256")), &claims()), "UnsupportedAlgorithm"),
            ("ES256", craft(&OLD_SEED, &with(header(), "alg", json!("ES256")), &claims()), "UnsupportedAlgorithm"),
            ("Ed25519 (a JOSE name, but not ours)", craft(&OLD_SEED, &with(header(), "alg", json!("Ed25519")), &claims()), "UnsupportedAlgorithm"),
            ("eddsa in lower case", craft(&OLD_SEED, &with(header(), "alg", json!("eddsa")), &claims()), "UnsupportedAlgorithm"),
            ("alg not a string", craft(&OLD_SEED, &with(header(), "alg", json!(["EdDSA"])), &claims()), "Malformed"),
            ("no alg", craft(&OLD_SEED, &without(header(), "alg"), &claims()), "Malformed"),
            // Header members that try to supply a key, and others.
            ("jwk with the attacker's key", craft(&EVIL_SEED, &with(with(header(), "kid", json!(evil_kid)), "jwk", evil.public_jwk()), &claims()), "KeyInHeader"),
            ("jwk with the attacker's key, our kid", craft(&EVIL_SEED, &with(header(), "jwk", evil.public_jwk()), &claims()), "KeyInHeader"),
            ("jku", craft(&OLD_SEED, &with(header(), "jku", json!("https://evil.example/jwks.json")), &claims()), "KeyInHeader"),
            ("x5u", craft(&OLD_SEED, &with(header(), "x5u", json!("https://evil.example/cert.pem")), &claims()), "KeyInHeader"),
            ("x5c", craft(&OLD_SEED, &with(header(), "x5c", json!(["MIIB"])), &claims()), "KeyInHeader"),
            ("x5t#S256", craft(&OLD_SEED, &with(header(), "x5t#S256", json!("abc")), &claims()), "KeyInHeader"),
            ("crit", craft(&OLD_SEED, &with(header(), "crit", json!(["exp"])), &claims()), "UnexpectedHeader"),
            ("cty", craft(&OLD_SEED, &with(header(), "cty", json!("JWT")), &claims()), "UnexpectedHeader"),
            ("duplicate alg, none last", sign_raw(&OLD_SEED, &format!(r#"{{"alg":"EdDSA","typ":"{TOKEN_TYPE}","kid":"{}","alg":"none"}}"#, old().key_id()), &claims().to_string()), "AlgNone"),
            ("duplicate alg, none first", sign_raw(&OLD_SEED, &format!(r#"{{"alg":"none","typ":"{TOKEN_TYPE}","kid":"{}","alg":"EdDSA"}}"#, old().key_id()), &claims().to_string()), "Malformed"),
            ("duplicate kid", sign_raw(&OLD_SEED, &format!(r#"{{"alg":"EdDSA","typ":"{TOKEN_TYPE}","kid":"{evil_kid}","kid":"{}"}}"#, old().key_id()), &claims().to_string()), "Malformed"),
            ("typ JWT", craft(&OLD_SEED, &with(header(), "typ", json!("JWT")), &claims()), "Malformed"),
            ("no typ", craft(&OLD_SEED, &without(header(), "typ"), &claims()), "Malformed"),
            ("kid not a string", craft(&OLD_SEED, &with(header(), "kid", json!(1)), &claims()), "Malformed"),
            // Shape and encoding.
            ("empty", String::new(), "Malformed"),
            ("one part", "abc".into(), "Malformed"),
            ("two parts", format!("{h}.{p}"), "Malformed"),
            ("four parts", format!("{h}.{p}.{s}.{s}"), "Malformed"),
            ("only dots", "..".into(), "Malformed"),
            ("header not base64url", format!("!!!.{p}.{s}"), "Malformed"),
            ("header padded", format!("{}.{p}.{s}", B64URL.encode(header().to_string()) + "="), "Malformed"),
            ("header standard base64 with +/", format!("{}.{p}.{s}", base64::engine::general_purpose::STANDARD_NO_PAD.encode([0xfb, 0xff, 0xbf])), "Malformed"),
            ("header not JSON", format!("{}.{p}.{s}", b64(b"not json")), "Malformed"),
            ("header a JSON array", format!("{}.{p}.{s}", b64(b"[]")), "Malformed"),
            ("surrounding whitespace", format!(" {h}.{p}.{s}\n"), "Malformed"),
            ("payload not base64url", format!("{h}.%%%.{s}"), "Malformed"),
            ("signature not base64url", format!("{h}.{p}.{}", s.replace(&s[..2], "**")), "Malformed"),
            ("signature too short", format!("{h}.{p}.{}", &s[..40]), "Malformed"),
            ("empty signature", format!("{h}.{p}."), "Malformed"),
            ("payload not JSON", sign_raw(&OLD_SEED, &header().to_string(), "not json"), "Malformed"),
            ("payload a JSON string", sign_raw(&OLD_SEED, &header().to_string(), "\"x\""), "Malformed"),
            ("duplicate sub", sign_raw(&OLD_SEED, &header().to_string(), &claims().to_string().replace(r#""sub":"alice""#, r#""sub":"alice","sub":"root""#)), "Malformed"),
            ("nbf a string", craft(&OLD_SEED, &header(), &with(claims(), "nbf", json!("1000000000"))), "Malformed"),
            ("exp a float", craft(&OLD_SEED, &header(), &with(claims(), "exp", json!(1_000_003_600.5))), "Malformed"),
            ("exp out of range", craft(&OLD_SEED, &header(), &with(claims(), "exp", json!(i64::MAX))), "Malformed"),
            ("aud an array", craft(&OLD_SEED, &header(), &with(claims(), "aud", json!([AUDIENCE]))), "Malformed"),
            ("scopes a string", craft(&OLD_SEED, &header(), &with(claims(), "scopes", json!("git:payments/api@*"))), "Malformed"),
            ("empty scopes", craft(&OLD_SEED, &header(), &with(claims(), "scopes", json!([]))), "Malformed"),
            ("empty caps", craft(&OLD_SEED, &header(), &with(claims(), "caps", json!([]))), "Malformed"),
            ("empty sub", craft(&OLD_SEED, &header(), &with(claims(), "sub", json!(""))), "Malformed"),
            ("exp equal to nbf", craft(&OLD_SEED, &header(), &with(claims(), "exp", json!(T0 / 1000))), "Malformed"),
            ("exp before nbf", craft(&OLD_SEED, &header(), &with(claims(), "exp", json!(T0 / 1000 - 1))), "Malformed"),
            // Missing claims.
            ("no exp (a permanent grant)", craft(&OLD_SEED, &header(), &without(claims(), "exp")), "NoExpiry"),
            ("exp null", craft(&OLD_SEED, &header(), &with(claims(), "exp", Value::Null)), "NoExpiry"),
            ("no nbf", craft(&OLD_SEED, &header(), &without(claims(), "nbf")), "MissingClaim"),
            ("no iat", craft(&OLD_SEED, &header(), &without(claims(), "iat")), "MissingClaim"),
            ("no iss", craft(&OLD_SEED, &header(), &without(claims(), "iss")), "MissingClaim"),
            ("no aud", craft(&OLD_SEED, &header(), &without(claims(), "aud")), "MissingClaim"),
            ("no sub", craft(&OLD_SEED, &header(), &without(claims(), "sub")), "MissingClaim"),
            ("no grant", craft(&OLD_SEED, &header(), &without(claims(), "grant")), "MissingClaim"),
            ("no scopes", craft(&OLD_SEED, &header(), &without(claims(), "scopes")), "MissingClaim"),
            ("no caps", craft(&OLD_SEED, &header(), &without(claims(), "caps")), "MissingClaim"),
            ("no jti", craft(&OLD_SEED, &header(), &without(claims(), "jti")), "MissingClaim"),
            // Claims that do not match what is expected (the default Expect, at NOW).
            ("wrong issuer", craft(&OLD_SEED, &header(), &with(claims(), "iss", json!("https://evil.example"))), "WrongIssuer"),
            ("issuer differs in case", craft(&OLD_SEED, &header(), &with(claims(), "iss", json!(ISSUER.to_uppercase()))), "WrongIssuer"),
            ("wrong audience", craft(&OLD_SEED, &header(), &with(claims(), "aud", json!("ci"))), "WrongAudience"),
            ("lifetime one second too long", craft(&OLD_SEED, &header(), &with(claims(), "exp", json!(T0 / 1000 + 4 * 3600 + 1))), "LifetimeTooLong"),
            ("lifetime of a century", craft(&OLD_SEED, &header(), &with(claims(), "exp", json!(T0 / 1000 + 100 * 365 * 86400))), "LifetimeTooLong"),
            ("not yet valid", craft(&OLD_SEED, &header(), &with(claims(), "nbf", json!(T0 / 1000 + 3000))), "NotYetValid"),
            ("expired", craft(&OLD_SEED, &header(), &with(with(claims(), "nbf", json!(T0 / 1000 - 3600)), "exp", json!(T0 / 1000 + 60))), "Expired"),
            // Size, checked before anything else.
            ("oversize garbage", "a".repeat(MAX_TOKEN_BYTES + 1), "TooLarge"),
            ("oversize but well formed", craft(&OLD_SEED, &header(), &with(claims(), "pad", json!("x".repeat(MAX_TOKEN_BYTES)))), "TooLarge"),
        ];
        for (name, token, want) in cases {
            assert_refused(name, &token, verify(&token, &keys(), &expect(), NOW), want);
        }
    }

    #[test]
    fn expectations_are_enforced() {
        let base = expect;
        #[rustfmt::skip]
        let cases: Vec<(&str, Expect, &str)> = vec![
            ("wrong issuer", Expect::new("https://other.example", 4 * HOUR), "WrongIssuer"),
            ("wrong audience", Expect { audience: "other".into(), ..base() }, "WrongAudience"),
            ("wrong principal", base().with_principal("mallory"), "WrongPrincipal"),
            ("principal differs in case", base().with_principal("Alice"), "WrongPrincipal"),
            ("principal is a prefix", base().with_principal("alic"), "WrongPrincipal"),
            ("max lifetime below the token's", Expect::new(ISSUER, HOUR - Duration::from_millis(1)), "LifetimeTooLong"),
            ("another ref", base().with_scope(sc("git:payments/api@refs/heads/develop")), "ScopeNotGranted"),
            ("another repo with the same prefix", base().with_scope(sc("git:payments/api-internal@refs/heads/main")), "ScopeNotGranted"),
            ("a parent repo", base().with_scope(sc("git:payments@refs/heads/main")), "ScopeNotGranted"),
            ("a git target named like the pipeline scope", base().with_scope(sc("git:payments/api/deploy@refs/heads/production")), "ScopeNotGranted"),
            ("a pipeline target named like the git repo", base().with_scope(sc("pipeline:payments/api@main")), "ScopeNotGranted"),
            ("another environment", base().with_scope(sc("pipeline:payments/api/deploy@staging")), "ScopeNotGranted"),
            ("no environment", base().with_scope(sc("pipeline:payments/api/deploy")), "ScopeNotGranted"),
            ("releases, not release/", base().with_scope(sc("git:payments/api@refs/heads/releases/1")), "ScopeNotGranted"),
            ("a tag named like a release branch", base().with_scope(sc("git:payments/api@refs/tags/release/1.2")), "ScopeNotGranted"),
            ("a ref pattern as target", base().with_scope(sc("git:payments/api@refs/heads/*")), "PatternTarget"),
            ("an environment pattern as target", base().with_scope(sc("pipeline:payments/api/deploy@*")), "PatternTarget"),
            ("force-push, push granted", base().with_capability(cap("force-push")), "CapabilityNotGranted"),
            ("delete, push granted", base().with_capability(cap("delete")), "CapabilityNotGranted"),
            ("skip secret-scan, skip tests granted", base().with_capability(cap("skip-gate:secret-scan")), "CapabilityNotGranted"),
            ("skip a prefix of tests", base().with_capability(cap("skip-gate:test")), "CapabilityNotGranted"),
            ("advisory tests, skip tests granted", base().with_capability(cap("advisory-gate:tests")), "CapabilityNotGranted"),
            ("covered scope, capability not granted", base().with_scope(sc("pipeline:payments/api/deploy@production")).with_capability(cap("skip-gate:lint")), "CapabilityNotGranted"),
            ("a pipeline capability on a git scope", base().with_scope(sc("git:payments/api@refs/heads/main")).with_capability(cap("deploy")), "CapabilityKindMismatch"),
            ("a git capability on a pipeline scope", base().with_scope(sc("pipeline:payments/api/deploy@production")).with_capability(cap("push")), "CapabilityKindMismatch"),
        ];
        for (name, expect, want) in cases {
            assert_refused(name, &good(), verify(&good(), &keys(), &expect, NOW), want);
        }
    }

    #[test]
    fn validity_is_nbf_inclusive_and_exp_exclusive() {
        let leeway = DEFAULT_NBF_LEEWAY.as_millis() as i64;
        // (now, nbf leeway in ms, Ok or the refusal)
        #[rustfmt::skip]
        let cases: [(i64, i64, &str); 12] = [
            (NBF.0 - leeway - 1, leeway, "NotYetValid"),
            (NBF.0 - leeway, leeway, "Ok"),
            (NBF.0 - 1, 0, "NotYetValid"),
            (NBF.0, 0, "Ok"),
            (ACTIVATED.0, 0, "Ok"),
            (EXP.0 - 1, 0, "Ok"),
            (EXP.0 - 1, leeway, "Ok"),
            (EXP.0, 0, "Expired"),
            (EXP.0, leeway, "Expired"), // leeway never extends exp
            (GRANT_ENDS.0 - 1, 0, "Expired"), // exp rounds down: never past the grant's end
            (GRANT_ENDS.0, 0, "Expired"),
            (EXP.0 + 86_400_000, leeway, "Expired"),
        ];
        for (now, leeway_ms, want) in cases {
            let expect = expect().with_nbf_leeway(Duration::from_millis(leeway_ms as u64));
            let got = verify(&good(), &keys(), &expect, Timestamp(now));
            let got = got.as_ref().map_or_else(variant, |_| "Ok".to_owned());
            assert_eq!(got, want, "now {} with leeway {leeway_ms} ms", Timestamp(now));
        }
    }

    #[test]
    fn lifetime_limit_is_inclusive() {
        // The token's lifetime is exactly one hour (nbf T0, exp T0 + 1 h).
        assert!(verify(&good(), &keys(), &Expect::new(ISSUER, HOUR), NOW).is_ok());
        let err = verify(&good(), &keys(), &Expect::new(ISSUER, HOUR - Duration::from_secs(1)), NOW).unwrap_err();
        assert_eq!(err, TokenError::LifetimeTooLong { lifetime_secs: 3600, max_secs: 3599 });
    }

    #[test]
    fn times_round_down_to_whole_seconds() {
        // (activated, expires, now) in ms -> (nbf, exp, iat) in s
        #[rustfmt::skip]
        let cases = [
            ((1_000_000, 2_000_000, 1_500_000), (1000, 2000, 1500)),
            ((1_000_999, 2_000_999, 1_000_999), (1000, 2000, 1000)),
            ((1_000_001, 2_000_500, 1_999_999), (1000, 2000, 1999)),
            ((-1_500, 10_000, 0), (-2, 10, 0)),
        ];
        for ((activated, expires, now), want) in cases {
            let req = IssueRequest { activated_at: Timestamp(activated), expires_at: Timestamp(expires), ..grant() };
            let token = old().issue(&req, Timestamp(now)).unwrap();
            let payload: Value =
                serde_json::from_slice(&B64URL.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
            let got =
                (payload["nbf"].as_i64().unwrap(), payload["exp"].as_i64().unwrap(), payload["iat"].as_i64().unwrap());
            assert_eq!(got, want, "activated {activated} expires {expires} now {now}");
        }
    }

    #[test]
    fn the_system_clock_is_never_consulted() {
        // A token that ended in 2001 is valid in 2001; one that starts in 2100 is valid in 2100.
        // Either would fail if jsonwebtoken's exp or nbf validation (system clock) were on.
        assert!(verify(&good(), &keys(), &expect(), NOW).is_ok());
        let year_2100 = 4_102_444_800_000;
        let req = IssueRequest {
            activated_at: Timestamp(year_2100),
            expires_at: Timestamp(year_2100 + 3_600_000),
            ..grant()
        };
        let token = old().issue(&req, Timestamp(year_2100 + 1000)).unwrap();
        assert!(verify(&token, &keys(), &expect(), Timestamp(year_2100 + 1000)).is_ok());
    }

    #[test]
    fn key_rotation() {
        let new = TokenSigner::from_seed(&NEW_SEED);
        let by_old = good();
        let by_new = new.issue(&grant(), NOW).unwrap();
        let both = KeySet::from_jwks(&keys().to_jwks()).unwrap();
        assert_eq!(verify(&by_old, &both, &expect(), NOW).unwrap().key_id, old().key_id());
        assert_eq!(verify(&by_new, &both, &expect(), NOW).unwrap().key_id, new.key_id());
        let new_only = KeySet::from_jwks(&KeySet::new([new.public_key().clone()]).unwrap().to_jwks()).unwrap();
        assert!(verify(&by_new, &new_only, &expect(), NOW).is_ok());
        assert_eq!(
            verify(&by_old, &new_only, &expect(), NOW).unwrap_err(),
            TokenError::UnknownKey { kid: old().key_id().to_owned() }
        );
    }

    #[test]
    fn jwks_document_has_the_right_members() {
        let jwks: Value = serde_json::from_str(&keys().to_jwks()).unwrap();
        let members: Vec<&String> = jwks.as_object().unwrap().keys().collect();
        assert_eq!(members, ["keys"]);
        let list = jwks["keys"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        for (jwk, seed) in list.iter().zip([OLD_SEED, NEW_SEED]) {
            let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
            assert_eq!(
                *jwk,
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&public), "kid": key_id(&public), "alg": "EdDSA", "use": "sig"})
            );
            assert_eq!(jwk["kid"].as_str().unwrap().len(), 43, "a base64url SHA-256");
        }
        assert_eq!(old().public_jwk(), list[0]);
    }

    #[test]
    fn key_id_is_the_rfc_7638_thumbprint_of_rfc_8037_vectors() {
        // RFC 8037 appendix A.1 (the key), A.3 (its thumbprint) and A.4 (a signature).
        let seed: [u8; 32] = B64URL.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap().try_into().unwrap();
        let signer = TokenSigner::from_seed(&seed);
        assert_eq!(signer.public_jwk()["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(signer.key_id(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let (input, sig) = jws.rsplit_once('.').unwrap();
        let key = &signer.public_key().decoding;
        assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), key, Algorithm::EdDSA).unwrap());
        assert!(!jsonwebtoken::crypto::verify(sig, b"eyJhbGciOiJFZERTQSJ9.eA", key, Algorithm::EdDSA).unwrap());
        // Signing with the seed through jsonwebtoken gives the RFC's signature (Ed25519 is deterministic).
        let ours = jsonwebtoken::crypto::sign(input.as_bytes(), &signer.encoding, Algorithm::EdDSA).unwrap();
        assert_eq!(ours, sig);
    }

    #[test]
    fn key_sets_parse_in_every_form() {
        let jwk = old().public_jwk();
        let jwk_no_kid = without(jwk.clone(), "kid");
        let jwk_minimal = json!({"kty": "OKP", "crv": "Ed25519", "x": jwk["x"]});
        let lines = format!(
            "# breakglass token keys\n\n{}\n{}\n",
            old().public_key().to_key_line(),
            TokenSigner::from_seed(&NEW_SEED).public_key().to_key_line()
        );
        #[rustfmt::skip]
        let cases: [(&str, String, usize); 6] = [
            ("JWKS", keys().to_jwks(), 2),
            ("JWKS with extra members", json!({"keys": [with(jwk.clone(), "x5t", json!("ignored"))], "cache": 1}).to_string(), 1),
            ("single JWK", jwk.to_string(), 1),
            ("single JWK, no kid", jwk_no_kid.to_string(), 1),
            ("single JWK, minimal, pretty", serde_json::to_string_pretty(&jwk_minimal).unwrap(), 1),
            ("key lines", lines, 2),
        ];
        for (name, text, n_keys) in cases {
            let set = KeySet::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(set.keys().len(), n_keys, "{name}");
            assert_eq!(set.get(old().key_id()), Some(old().public_key()), "{name}");
            assert!(verify(&good(), &set, &expect(), NOW).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_key_sets_are_refused() {
        let jwk = old().public_jwk();
        let jwks = |keys: Vec<Value>| json!({ "keys": keys }).to_string();
        // The identity point: on the curve, but of small order.
        let weak = b64(&{
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        });
        #[rustfmt::skip]
        let cases: Vec<(&str, String, &str)> = vec![
            ("not JSON", "{nope".into(), "is not JSON"),
            ("no keys array", json!({"keys": {}}).to_string(), "no \"keys\" array"),
            ("empty", jwks(vec![]), "key set is empty"),
            ("private key", jwks(vec![with(jwk.clone(), "d", json!(b64(&OLD_SEED)))]), "private key"),
            ("RSA", jwks(vec![with(jwk.clone(), "kty", json!("RSA"))]), "kty is \"RSA\""),
            ("oct", jwks(vec![json!({"kty": "oct", "k": jwk["x"]})]), "kty is \"oct\""),
            ("X25519", jwks(vec![with(jwk.clone(), "crv", json!("X25519"))]), "crv is \"X25519\""),
            ("no x", jwks(vec![without(jwk.clone(), "x")]), "no x"),
            ("x too short", jwks(vec![with(jwk.clone(), "x", json!(b64(&[7; 31])))]), "not 32 bytes"),
            ("x padded", jwks(vec![with(jwk.clone(), "x", json!(format!("{}=", jwk["x"].as_str().unwrap())))]), "base64url"),
            ("x a number", jwks(vec![with(jwk.clone(), "x", json!(7))]), "x is not a string"),
            ("weak key", jwks(vec![json!({"kty": "OKP", "crv": "Ed25519", "x": weak})]), "small-order"),
            ("kid not the thumbprint", jwks(vec![with(jwk.clone(), "kid", json!("2024-01"))]), "thumbprint"),
            ("alg HS256", jwks(vec![with(jwk.clone(), "alg", json!("HS256"))]), "alg is \"HS256\""),
            ("use enc", jwks(vec![with(jwk.clone(), "use", json!("enc"))]), "use is \"enc\""),
            ("key_ops sign only", jwks(vec![with(jwk.clone(), "key_ops", json!(["sign"]))]), "key_ops"),
            ("duplicate key", jwks(vec![jwk.clone(), jwk.clone()]), "appears twice"),
            ("a good key and a bad one", jwks(vec![jwk.clone(), with(jwk.clone(), "crv", json!("P-256"))]), "JWKS key 1"),
            ("too many keys", jwks((0..=MAX_KEYS as u8).map(|i| TokenSigner::from_seed(&[i + 10; 32]).public_jwk()).collect()), "more than"),
            ("too large", format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(MAX_KEYSET_BYTES)), "larger than"),
            ("key line of another type", "ssh-ed25519 AAAA".into(), "key line 1"),
            ("key line not base64url", format!("# c\ned25519 {}=", jwk["x"].as_str().unwrap()), "key line 2"),
            ("key line weak key", format!("ed25519 {weak}"), "small-order"),
        ];
        for (name, text, want) in cases {
            match KeySet::parse(&text) {
                Ok(set) => panic!("{name}: accepted {set:?}"),
                Err(err @ TokenError::InvalidKey(_)) => {
                    assert!(err.to_string().contains(want), "{name}: {err}");
                }
                Err(err) => panic!("{name}: {err:?}"),
            }
        }
    }

    #[test]
    fn scopes_are_covered_by_the_scope_module_rules() {
        // (the token's one scope, the scope acted on, covered?), through a real token.
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool)] = &[
            ("git:payments/api@refs/heads/main", "git:payments/api@refs/heads/main", true),
            ("git:payments/api@refs/heads/main", "git:payments/api@refs/heads/main2", false),
            ("git:payments/api@refs/heads/main", "git:payments/api-internal@refs/heads/main", false),
            ("git:payments/api@refs/heads/release/*", "git:payments/api@refs/heads/release/1.2", true),
            ("git:payments/api@refs/heads/release/*", "git:payments/api@refs/heads/release/1/2", true),
            ("git:payments/api@refs/heads/release/*", "git:payments/api@refs/heads/releases/1", false),
            ("git:payments/api@*", "git:payments/api@refs/tags/v1", true),
            ("git:payments/api@*", "git:payments/api-internal@refs/heads/main", false),
            ("git:payments/api@*", "git:payments/api/sub@refs/heads/main", false),
            ("git:Payments/api@refs/heads/main", "git:payments/api@refs/heads/main", false),
            ("git:payments/api@refs/heads/main", "pipeline:payments/api/main", false),
            ("pipeline:payments/api/deploy@production", "pipeline:payments/api/deploy@production", true),
            ("pipeline:payments/api/deploy@production", "pipeline:payments/api/deploy@production-eu", false),
            ("pipeline:payments/api/deploy@*", "pipeline:payments/api/deploy@staging", true),
            ("pipeline:payments/api/deploy@*", "pipeline:payments/api/deploy", false),
            ("pipeline:payments/api/deploy", "pipeline:payments/api/deploy", true),
            ("pipeline:payments/api/deploy", "pipeline:payments/api/deploy@production", false),
            ("pipeline:payments/api/deploy", "pipeline:payments/api/deploy-canary", false),
            ("pipeline:payments/api/deploy@production", "git:payments/api/deploy@refs/heads/production", false),
        ];
        for &(granted, target, want) in cases {
            let target = sc(target);
            let caps = vec![if granted.starts_with("git:") { "push" } else { "deploy" }.to_owned()];
            let req = IssueRequest { scopes: vec![granted.to_owned()], capabilities: caps, ..grant() };
            let token = old().issue(&req, NOW).unwrap();
            let got = verify(&token, &keys(), &expect().with_scope(target.clone()), NOW);
            match (want, got) {
                (true, Ok(_)) => {}
                (false, Err(TokenError::ScopeNotGranted { .. })) => {}
                (_, got) => panic!("{granted} covers {target}: want {want}, got {got:?}"),
            }
        }
        // A signed token scope that does not parse (a '*' in the repository) covers nothing.
        let token = craft(&OLD_SEED, &header(), &with(claims(), "scopes", json!(["git:payments/*@refs/heads/main"])));
        let err = verify(&token, &keys(), &expect().with_scope(sc("git:payments/api@refs/heads/main")), NOW);
        assert_eq!(variant(&err.unwrap_err()), "ScopeNotGranted");
    }

    #[test]
    fn issuing_refuses_what_could_not_verify() {
        let g = grant;
        #[rustfmt::skip]
        let cases: Vec<(&str, IssueRequest, Timestamp, &str)> = vec![
            ("before activation", g(), Timestamp(ACTIVATED.0 - 1), "Issue"),
            ("at expiry", g(), GRANT_ENDS, "Issue"),
            ("in the last partial second", g(), EXP, "Issue"),
            ("expiry before activation", IssueRequest { expires_at: Timestamp(ACTIVATED.0 - 1000), ..g() }, NOW, "Issue"),
            ("shorter than a second, within one", IssueRequest { activated_at: Timestamp(T0 + 100), expires_at: Timestamp(T0 + 900), ..g() }, Timestamp(T0 + 500), "Issue"),
            ("empty issuer", IssueRequest { issuer: String::new(), ..g() }, NOW, "Issue"),
            ("empty principal", IssueRequest { principal: String::new(), ..g() }, NOW, "Issue"),
            ("empty grant id", IssueRequest { grant_id: String::new(), ..g() }, NOW, "Issue"),
            ("empty token id", IssueRequest { token_id: String::new(), ..g() }, NOW, "Issue"),
            ("no scopes", IssueRequest { scopes: vec![], ..g() }, NOW, "Issue"),
            ("no capabilities", IssueRequest { capabilities: vec![], ..g() }, NOW, "Issue"),
            ("scope with * in the repo", IssueRequest { scopes: vec!["git:payments/*@refs/heads/main".into()], ..g() }, NOW, "Scope"),
            ("git scope without a ref", IssueRequest { scopes: vec!["git:payments/api".into()], ..g() }, NOW, "Scope"),
            ("unknown scope kind", IssueRequest { scopes: vec!["repo:payments/api@main".into()], ..g() }, NOW, "Scope"),
            ("unknown capability", IssueRequest { capabilities: vec!["sudo".into()], ..g() }, NOW, "Capability"),
            ("gate name with a space", IssueRequest { capabilities: vec!["skip-gate:secret scan".into()], ..g() }, NOW, "Capability"),
            ("capability for no scope of its kind", IssueRequest { scopes: vec!["git:payments/api@refs/heads/main".into()], capabilities: vec!["deploy".into()], ..g() }, NOW, "Capability"),
            ("too many scopes", IssueRequest { scopes: (0..1000).map(|i| format!("git:payments/api@refs/heads/b{i}")).collect(), capabilities: vec!["push".into()], ..g() }, NOW, "Issue"),
        ];
        for (name, req, now, want) in cases {
            match old().issue(&req, now) {
                Ok(_) => panic!("{name}: issued"),
                Err(err) => assert_eq!(variant(&err), want, "{name}: {err}"),
            }
        }
        // The last instant that still yields a token, and the first.
        assert!(old().issue(&grant(), Timestamp(EXP.0 - 1)).is_ok());
        assert!(old().issue(&grant(), ACTIVATED).is_ok());
    }

    #[test]
    fn tokens_are_issued_only_for_active_grants() {
        use crate::grant::{Request, Terms};
        let req = Request {
            id: "g_01".into(),
            principal: "alice".into(),
            scopes: grant().scopes,
            capabilities: grant().capabilities,
            duration_ms: 3_600_000,
            reason: "INC-1: payments down".into(),
            incident: None,
        };
        let terms = Terms { max_duration_ms: 4 * 3_600_000, approvals_required: 1, pending_ttl_ms: 900_000 };
        let (mut g, _) = Grant::request(req, &terms, Timestamp(T0)).unwrap();
        let pending = IssueRequest::for_grant(&g, ISSUER, "t1").unwrap_err();
        assert!(pending.to_string().contains("is pending, not active"), "{pending}");
        g.approve("bob", ACTIVATED).unwrap();
        let token = old().issue(&IssueRequest::for_grant(&g, ISSUER, "t1").unwrap(), NOW).unwrap();
        let claims = verify(&token, &keys(), &expect().with_principal("alice"), NOW).unwrap();
        assert_eq!((claims.not_before, claims.expires_at, claims.token_id.as_str()), (NBF, EXP, "t1"));
        g.revoke("bob", "resolved", NOW).unwrap();
        let revoked = IssueRequest::for_grant(&g, ISSUER, "t2").unwrap_err();
        assert!(revoked.to_string().contains("is revoked, not active"), "{revoked}");
        // The token already handed out still verifies offline until its exp:
        // revocation is visible only to the online check (module docs).
        assert!(verify(&token, &keys(), &expect(), Timestamp(NOW.0 + 1000)).is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_seed() {
        let signer = old();
        let seed_forms = [hex::encode(OLD_SEED), b64(&OLD_SEED), format!("{OLD_SEED:?}"), "1, 1, 1, 1".to_owned()];
        for shown in [format!("{signer:?}"), format!("{signer:#?}"), format!("{:?}", signer.public_key())] {
            assert!(shown.contains(signer.key_id()), "{shown}");
            for secret in &seed_forms {
                assert!(!shown.contains(secret.as_str()), "{shown} shows the seed");
            }
        }
    }
}
