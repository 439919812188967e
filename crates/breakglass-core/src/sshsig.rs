//! SSH signatures in OpenSSH's SSHSIG format (`ssh-keygen -Y sign`): how a
//! human proves who they are at login, with an SSH key they already have — a
//! key file, a key in ssh-agent, or a FIDO security key (the `sk-` types).
//!
//! Security: whoever calls the login endpoint controls the signature bytes
//! and the name they claim; a login is accepted only when [`verify`] returns `Ok`, and it does so only for a
//! signature over the exact challenge, in the expected namespace, by one of
//! the principal's allowed keys, and — for security keys — made with the key
//! touched (the user-presence flag). Everything else is an [`SshSigError`]
//! that says what was wrong without repeating the signature or the challenge.
//!
//! Formats: `PROTOCOL.sshsig` (the armored blob and the signed data) and
//! `PROTOCOL.u2f` (security-key public keys and signatures) in OpenSSH.
//! ssh-key does the cryptography; this module does the rest, because ssh-key
//! accepts more than a login should. [`verify`] checks, in this order:
//!
//! 1. the input is at most [`MAX_ARMORED_BYTES`], before anything is parsed;
//! 2. the armor: `-----BEGIN SSH SIGNATURE-----`, lines of base64, `-----END
//!    SSH SIGNATURE-----`, and nothing but whitespace around them (OpenSSH
//!    ignores text after the END line; we refuse it);
//! 3. the blob: the `SSHSIG` magic, version exactly 1 (ssh-key and OpenSSH
//!    also take 0), five length-prefixed fields and not one byte more;
//! 4. the namespace equals the expected one (it is inside the signed data too;
//!    checking it first gives a useful error);
//! 5. the hash algorithm is `sha256` or `sha512`;
//! 6. the reserved field is empty: OpenSSH always signs an empty one, and
//!    refusing others leaves no room for two encodings of one signature;
//! 7. the signing key is of a supported type, in canonical encoding (ssh-key
//!    alone ignores some inner length fields), not a small-order Ed25519 key,
//!    RSA of 2048 to 4096 bits, and equal to one of the allowed keys — all
//!    before any cryptography, so a key chosen by an attacker never reaches
//!    the signature code;
//! 8. the signature's algorithm fits the key: `rsa-sha2-256` or `rsa-sha2-512`
//!    for RSA (legacy `ssh-rsa`, RSA with SHA-1, is refused), the key's own
//!    type for every other key; the signature blob has no trailing bytes;
//! 9. the signature verifies (ssh-key, with the allowed key) over the SSHSIG
//!    signed data built from the *expected* namespace and the hash of the
//!    message; for security keys over `SHA256(application) || flags ||
//!    counter || SHA256(signed data)`, as `PROTOCOL.u2f` says;
//! 10. for security keys, the user-presence flag (0x01) is set. ssh-key does
//!     not look at the flags, so we read them from the signature ourselves.
//!
//! Nothing here is compared in constant time, on purpose: every value compared
//! is public. The allowed keys, the signing key, the namespace and the hash
//! name are not secrets, and the challenge is never compared directly — it
//! only enters the signed data, which the signature algorithm checks. Timing
//! can reveal at most which allowed key matched, which the caller logs anyway.
//!
//! Not done here, because it needs state: refusing a challenge twice (the
//! caller issues single-use challenges) and tracking security-key counters.
//! [`Verified::security_key`] returns the counter for a caller that wants to.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ssh_key::public::{Ed25519PublicKey, KeyData, RsaPublicKey};
use ssh_key::{Algorithm, Fingerprint, HashAlg, PublicKey, Signature, SshSig};

/// The namespace of breakglass login signatures:
/// `ssh-keygen -Y sign -f KEY -n breakglass-login@breakglass CHALLENGE`.
pub const LOGIN_NAMESPACE: &str = "breakglass-login@breakglass";
/// Armored signatures longer than this are refused before any parsing. One by
/// a 4096-bit RSA key, the largest accepted, is under 2 KiB.
pub const MAX_ARMORED_BYTES: usize = 64 * 1024;
/// Security-key flag: the user touched the key (user presence).
pub const SK_USER_PRESENT: u8 = 0x01;
/// Security-key flag: the key checked a PIN or biometric (user verification).
pub const SK_USER_VERIFIED: u8 = 0x04;
/// RSA keys must have at least this many bits (counted in whole bytes, as
/// ssh-key does, so a 2047-bit modulus from an old generator counts as 2048).
pub const MIN_RSA_BITS: usize = 2048;
/// RSA keys may have at most this many bits: the `rsa` crate behind ssh-key
/// refuses larger moduli, so a larger key could never verify.
pub const MAX_RSA_BITS: usize = 4096;

const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const ARMOR_END: &str = "-----END SSH SIGNATURE-----";
const MAGIC: &[u8] = b"SSHSIG";
const VERSION: u32 = 1;
/// At most this many characters of a string chosen by the signer (a namespace,
/// an algorithm name) are repeated in an error.
const MAX_ECHO_CHARS: usize = 64;

/// The key types accepted, by their SSH names.
const SUPPORTED_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshSigError {
    #[error("the expected signature namespace is empty (breakglass login uses {LOGIN_NAMESPACE:?})")]
    EmptyNamespace,
    #[error(
        "SSH signature is {len} bytes, more than the limit of {MAX_ARMORED_BYTES}; send the output of 'ssh-keygen -Y sign' unchanged"
    )]
    TooLarge { len: usize },
    #[error(
        "malformed SSH signature armor: {0} (expected the output of 'ssh-keygen -Y sign': '{ARMOR_BEGIN}', lines of base64, '{ARMOR_END}')"
    )]
    MalformedArmor(&'static str),
    #[error("SSH signature has trailing data {0}; send the output of 'ssh-keygen -Y sign' unchanged")]
    TrailingData(&'static str),
    #[error("malformed SSH signature: {0}")]
    Malformed(&'static str),
    #[error("unsupported SSH signature version {0}: only version 1 is accepted")]
    UnsupportedVersion(u32),
    #[error(
        "SSH signature is for namespace {found:?}, expected {expected:?} (hint: sign with 'ssh-keygen -Y sign -n {expected}')"
    )]
    WrongNamespace { expected: String, found: String },
    #[error("SSH signature uses hash algorithm {0:?}; only sha256 and sha512 are accepted")]
    UnsupportedHash(String),
    #[error("SSH signature has a non-empty reserved field, which OpenSSH never writes")]
    ReservedNotEmpty,
    #[error(
        "unsupported key type {0:?}: use ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@openssh.com (certificates are not accepted)"
    )]
    UnsupportedKeyType(String),
    #[error("RSA key {fingerprint} has {bits} bits; RSA keys of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits are accepted")]
    UnsupportedRsaKeySize { fingerprint: String, bits: usize },
    #[error("malformed {key_type} public key: {reason}")]
    MalformedKey { key_type: String, reason: &'static str },
    #[error(
        "SSH signature was made with {key_type} key {fingerprint}, which is not one of the allowed keys (hint: compare 'ssh-keygen -lf KEY.pub' with the principals file)"
    )]
    KeyNotAllowed { key_type: String, fingerprint: String },
    #[error(
        "SSH signature uses legacy ssh-rsa (RSA with SHA-1), which is refused; sign with rsa-sha2-512, as 'ssh-keygen -Y sign' from OpenSSH 8.2 or later does (update an old ssh-agent), or use an Ed25519 key"
    )]
    LegacyRsaSha1,
    #[error("SSH signature algorithm {signature:?} does not fit the {key_type} key that made it")]
    AlgorithmMismatch { key_type: String, signature: String },
    #[error("malformed {key_type} signature in the SSH signature: {reason}")]
    MalformedSignature { key_type: String, reason: &'static str },
    #[error(
        "{key_type} signature by key {fingerprint} does not verify: it was not made over this challenge in namespace {namespace:?}, or it was altered (hint: sign the challenge exactly as given)"
    )]
    BadSignature { key_type: String, fingerprint: String, namespace: String },
    #[error(
        "security key {fingerprint} ({key_type}) signed without user presence (flags {flags:#04x}); touch the key when it blinks, and do not use a key made with no-touch-required"
    )]
    UserPresenceNotAsserted { key_type: String, fingerprint: String, flags: u8 },
    #[error("invalid OpenSSH public key {input}: {reason}")]
    InvalidPublicKey { input: String, reason: String },
}

/// A signature that [`verify`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Index in `allowed` of the key that made the signature (the first, if
    /// the same key is listed twice).
    pub key_index: usize,
    /// That key's SHA-256 fingerprint; displays as `SHA256:…`, as
    /// `ssh-keygen -l` prints it.
    pub fingerprint: Fingerprint,
    /// That key's type, e.g. `ssh-ed25519`.
    pub algorithm: Algorithm,
    /// For security keys (`sk-` types): what the authenticator reported.
    pub security_key: Option<SecurityKeyInfo>,
}

/// The flags and counter a FIDO authenticator signed along with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityKeyInfo {
    pub flags: u8,
    pub counter: u32,
}

impl SecurityKeyInfo {
    /// The key was touched. [`verify`] never accepts a signature without it.
    pub fn user_present(self) -> bool {
        self.flags & SK_USER_PRESENT != 0
    }

    /// The key checked a PIN or biometric (keys made with `-O verify-required`).
    pub fn user_verified(self) -> bool {
        self.flags & SK_USER_VERIFIED != 0
    }
}

/// Verifies an armored SSH signature (the `.sig` file of `ssh-keygen -Y sign
/// -n NAMESPACE`) over `message` in `namespace`, by one of the `allowed` keys.
///
/// `message` is the exact bytes that were signed (the challenge), and
/// `namespace` the one the signer had to use ([`LOGIN_NAMESPACE`] for login).
/// See the module documentation for every check, in order.
pub fn verify(armored: &str, message: &[u8], namespace: &str, allowed: &[PublicKey]) -> Result<Verified, SshSigError> {
    if namespace.is_empty() {
        return Err(SshSigError::EmptyNamespace);
    }
    let blob = dearmor(armored)?;
    let fields = parse_blob(&blob)?;

    if fields.namespace != namespace.as_bytes() {
        return Err(SshSigError::WrongNamespace { expected: namespace.to_owned(), found: echo(fields.namespace) });
    }
    let hash_alg = match fields.hash_alg {
        b"sha256" => HashAlg::Sha256,
        b"sha512" => HashAlg::Sha512,
        other => return Err(SshSigError::UnsupportedHash(echo(other))),
    };
    if !fields.reserved.is_empty() {
        return Err(SshSigError::ReservedNotEmpty);
    }

    // The signing key: its type first, so that an unsupported one (DSA, a
    // certificate) gets its own error rather than "malformed".
    let key_type =
        Wire(fields.public_key).string().ok_or(SshSigError::Malformed("the public key field has no key type"))?;
    let key_type = match SUPPORTED_KEY_TYPES.iter().find(|t| t.as_bytes() == key_type) {
        Some(t) => *t,
        None => return Err(SshSigError::UnsupportedKeyType(echo(key_type))),
    };
    let Some(signer) = decode_key(fields.public_key).filter(|k| k.algorithm().as_str() == key_type) else {
        let reason = "it is truncated, has trailing bytes or is not in canonical encoding";
        return Err(SshSigError::MalformedKey { key_type: key_type.to_owned(), reason });
    };
    let fingerprint = signer.fingerprint(HashAlg::Sha256);
    check_supported(signer.key_data())?;

    // Only an allowed key goes further. Both sides are public (see the module
    // documentation), so a plain comparison is fine.
    let Some(key_index) = allowed.iter().position(|k| k.key_data() == signer.key_data()) else {
        return Err(SshSigError::KeyNotAllowed { key_type: key_type.to_owned(), fingerprint: fingerprint.to_string() });
    };
    let key = &allowed[key_index];

    let security_key = check_signature_blob(fields.signature, key.key_data(), key_type)?;
    let signature = Signature::try_from(fields.signature).map_err(|_| SshSigError::MalformedSignature {
        key_type: key_type.to_owned(),
        reason: "its values have the wrong size or encoding",
    })?;

    // The signed data is rebuilt from the expected namespace, an empty
    // reserved field, the hash name and the hash of `message`, and checked
    // with the allowed key (equal to the embedded one).
    let verified = SshSig::new(key.key_data().clone(), namespace, hash_alg, signature)
        .and_then(|sig| key.verify(namespace, message, &sig));
    if verified.is_err() {
        return Err(SshSigError::BadSignature {
            key_type: key_type.to_owned(),
            fingerprint: fingerprint.to_string(),
            namespace: namespace.to_owned(),
        });
    }

    // Checked after the signature, so that it is only ever reported for flags
    // the authenticator really signed.
    if let Some(sk) = security_key
        && !sk.user_present()
    {
        return Err(SshSigError::UserPresenceNotAsserted {
            key_type: key_type.to_owned(),
            fingerprint: fingerprint.to_string(),
            flags: sk.flags,
        });
    }

    Ok(Verified { key_index, fingerprint, algorithm: key.algorithm(), security_key })
}

/// Parses one OpenSSH public key line, `<type> <base64 key> [comment]` (a
/// `.pub` file, a line of a principals file), for use with [`verify`].
///
/// Refuses key types [`verify`] cannot check (DSA, certificates, RSA keys
/// outside 2048–4096 bits). The error names the input by its type and
/// comment, never by more than the start of the key data, and does not repeat
/// a line that looks like a private key.
pub fn parse_public_key(line: &str) -> Result<PublicKey, SshSigError> {
    let line = line.trim_matches([' ', '\t', '\r', '\n']);
    let invalid = |reason: String| SshSigError::InvalidPublicKey { input: describe_key_line(line), reason };

    if line.contains("PRIVATE KEY") || line.starts_with("b3BlbnNzaC1rZXktdjE") {
        return Err(SshSigError::InvalidPublicKey {
            input: "(not shown: it looks like a private key)".to_owned(),
            reason: "this is a private key; give the public key (the .pub file, or 'ssh-keygen -y -f KEY')".to_owned(),
        });
    }
    if line.is_empty() {
        return Err(invalid("the line is empty".to_owned()));
    }
    if line.contains(['\n', '\r']) {
        return Err(invalid("it spans several lines; give one key per line".to_owned()));
    }
    let (key_type, rest) = split_token(line);
    let (data, comment) = split_token(rest);
    if !SUPPORTED_KEY_TYPES.contains(&key_type) {
        if !looks_like_key_type(key_type) {
            return Err(invalid(
                "it does not start with a key type such as ssh-ed25519 (options such as from=\"…\" are not accepted)"
                    .to_owned(),
            ));
        }
        return Err(invalid(SshSigError::UnsupportedKeyType(key_type.to_owned()).to_string()));
    }
    if data.is_empty() {
        return Err(invalid("expected '<key type> <base64 key data> [comment]'".to_owned()));
    }
    let bytes = B64.decode(data).map_err(|_| invalid("the key data is not valid base64".to_owned()))?;
    let key = decode_key(&bytes)
        .ok_or_else(|| invalid(format!("the key data cannot be decoded as an SSH public key of type {key_type}")))?;
    if key.algorithm().as_str() != key_type {
        return Err(invalid(format!("the key data is a {} key, not {key_type}", key.algorithm().as_str())));
    }
    check_supported(key.key_data()).map_err(|e| invalid(e.to_string()))?;
    Ok(PublicKey::new(key.key_data().clone(), comment))
}

/// Decodes an SSH public key blob, which must be in the one canonical
/// encoding. ssh-key alone would also take, for instance, an Ed25519 key whose
/// inner length field is wrong (it reads 32 bytes whatever the length says).
fn decode_key(blob: &[u8]) -> Option<PublicKey> {
    let key = PublicKey::from_bytes(blob).ok()?;
    (key.to_bytes().ok()? == blob).then_some(key)
}

/// Refuses keys whose signatures [`verify`] will not check, or should not.
fn check_supported(key: &KeyData) -> Result<(), SshSigError> {
    match key {
        KeyData::Ed25519(ed) => check_ed25519(key, ed),
        KeyData::SkEd25519(sk) => check_ed25519(key, sk.public_key()),
        KeyData::Ecdsa(_) | KeyData::SkEcdsaSha2NistP256(_) => Ok(()),
        KeyData::Rsa(rsa) => {
            let bits = rsa_bits(rsa);
            if bits.div_ceil(8) * 8 < MIN_RSA_BITS || bits > MAX_RSA_BITS {
                let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
                return Err(SshSigError::UnsupportedRsaKeySize { fingerprint, bits });
            }
            Ok(())
        }
        other => Err(SshSigError::UnsupportedKeyType(other.algorithm().as_str().to_owned())),
    }
}

/// Refuses an Ed25519 key that is not a curve point, or has small order: with
/// such a "weak" key, signatures can be forged without a private key under
/// the cofactorless check ssh-key uses. OpenSSH would never make one, so
/// one in a principals file is a mistake or an attack.
fn check_ed25519(key: &KeyData, ed: &Ed25519PublicKey) -> Result<(), SshSigError> {
    let key_type = key.algorithm().as_str().to_owned();
    match ed25519_dalek::VerifyingKey::from_bytes(&ed.0) {
        Err(_) => Err(SshSigError::MalformedKey { key_type, reason: "it is not a valid Ed25519 point" }),
        Ok(point) if point.is_weak() => {
            Err(SshSigError::MalformedKey { key_type, reason: "it is a small-order (weak) Ed25519 key" })
        }
        Ok(_) => Ok(()),
    }
}

/// The bit length of an RSA modulus.
fn rsa_bits(rsa: &RsaPublicKey) -> usize {
    let Some(n) = rsa.n.as_positive_bytes() else { return 0 };
    let Some(first) = n.first() else { return 0 };
    n.len() * 8 - first.leading_zeros() as usize
}

/// Checks the signature field (`PROTOCOL.sshsig`: `string signature`) against
/// the key, and returns a security key's flags and counter.
///
/// Its layout is `string algorithm, string signature`, followed for security
/// keys by `byte flags, uint32 counter` (`PROTOCOL.u2f`). ssh-key decodes it
/// again for the cryptography; requiring the exact layout here means both
/// readings see the same flags.
fn check_signature_blob(blob: &[u8], key: &KeyData, key_type: &str) -> Result<Option<SecurityKeyInfo>, SshSigError> {
    let malformed = |reason| SshSigError::MalformedSignature { key_type: key_type.to_owned(), reason };
    let mut r = Wire(blob);
    let algorithm = r.string().ok_or_else(|| malformed("it has no algorithm name"))?;
    let fits = match key {
        KeyData::Rsa(_) => match algorithm {
            b"rsa-sha2-256" | b"rsa-sha2-512" => true,
            b"ssh-rsa" => return Err(SshSigError::LegacyRsaSha1),
            _ => false,
        },
        _ => algorithm == key_type.as_bytes(),
    };
    if !fits {
        return Err(SshSigError::AlgorithmMismatch { key_type: key_type.to_owned(), signature: echo(algorithm) });
    }
    r.string().ok_or_else(|| malformed("it is truncated"))?;
    let security_key = match key {
        KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_) => {
            let (Some(flags), Some(counter)) = (r.u8(), r.u32()) else {
                return Err(malformed("the security-key flags and counter are missing"));
            };
            Some(SecurityKeyInfo { flags, counter })
        }
        _ => None,
    };
    if !r.is_empty() {
        return Err(SshSigError::TrailingData("inside the signature field, after the signature"));
    }
    Ok(security_key)
}

/// The fields of an SSHSIG blob (`PROTOCOL.sshsig`), after the magic and version.
struct Fields<'a> {
    public_key: &'a [u8],
    namespace: &'a [u8],
    reserved: &'a [u8],
    hash_alg: &'a [u8],
    signature: &'a [u8],
}

fn parse_blob(blob: &[u8]) -> Result<Fields<'_>, SshSigError> {
    let mut r = Wire(blob);
    if r.take(MAGIC.len()) != Some(MAGIC) {
        return Err(SshSigError::Malformed("it does not start with the SSHSIG magic"));
    }
    let version = r.u32().ok_or(SshSigError::Malformed("the version is truncated"))?;
    if version != VERSION {
        return Err(SshSigError::UnsupportedVersion(version));
    }
    let mut field = |what| r.string().ok_or(SshSigError::Malformed(what));
    let fields = Fields {
        public_key: field("the public key field is truncated")?,
        namespace: field("the namespace field is truncated")?,
        reserved: field("the reserved field is truncated")?,
        hash_alg: field("the hash algorithm field is truncated")?,
        signature: field("the signature field is truncated")?,
    };
    if !r.is_empty() {
        return Err(SshSigError::TrailingData("after the signature field"));
    }
    Ok(fields)
}

/// Removes the armor: the BEGIN line, base64 lines, the END line. Leading and
/// trailing whitespace and CRLF line ends are accepted; nothing else is.
fn dearmor(armored: &str) -> Result<Vec<u8>, SshSigError> {
    if armored.len() > MAX_ARMORED_BYTES {
        return Err(SshSigError::TooLarge { len: armored.len() });
    }
    let text = armored.trim_matches(|c: char| c.is_ascii_whitespace());
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() != Some(ARMOR_BEGIN) {
        return Err(SshSigError::MalformedArmor("it does not start with the BEGIN line"));
    }
    let mut body = String::with_capacity(text.len());
    let mut ended = false;
    for line in lines.by_ref() {
        if let Some(rest) = line.strip_prefix(ARMOR_END) {
            if !rest.is_empty() {
                return Err(SshSigError::TrailingData("after the END line"));
            }
            ended = true;
            break;
        }
        if line.is_empty() || !line.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
            return Err(SshSigError::MalformedArmor("a line between BEGIN and END is not base64"));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(SshSigError::MalformedArmor("the END line is missing"));
    }
    if lines.next().is_some() {
        return Err(SshSigError::TrailingData("after the END line"));
    }
    if body.is_empty() {
        return Err(SshSigError::MalformedArmor("there is nothing between BEGIN and END"));
    }
    B64.decode(&body).map_err(|_| SshSigError::MalformedArmor("the base64 between BEGIN and END does not decode"))
}

/// A reader of the SSH wire encoding (RFC 4251 §5): big-endian `uint32`s and
/// `uint32`-length-prefixed strings. `None` means truncated.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first whitespace-separated token of `s`, and the rest without its
/// surrounding blanks.
fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i..].trim_matches([' ', '\t'])),
        None => (s, ""),
    }
}

/// A signer-chosen string for an error message: lossy UTF-8, shortened.
/// Messages print it with `{:?}`, which escapes control characters.
fn echo(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if s.chars().count() > MAX_ECHO_CHARS {
        out.push('…');
    }
    out
}

/// Whether `s` is shaped like an SSH key type name (`ssh-ed25519`,
/// `sk-ssh-ed25519@openssh.com`), so that an error may repeat it.
fn looks_like_key_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ECHO_CHARS
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'@' | b'.'))
}

/// Names a key line in an error by its type, the start of its key data and
/// its comment. A line that does not start with something shaped like a key
/// type (say, a line of a private key file) is not repeated at all.
fn describe_key_line(line: &str) -> String {
    let (key_type, rest) = split_token(line);
    let (data, comment) = split_token(rest);
    if !looks_like_key_type(key_type) {
        return format!("(a line of {} characters that does not start with a key type)", line.chars().count());
    }
    let mut shown = key_type.to_owned();
    if !data.is_empty() {
        shown.push(' ');
        shown.extend(data.chars().take(16));
        if data.chars().count() > 16 {
            shown.push('…');
        }
    }
    if !comment.is_empty() {
        shown.push(' ');
        shown.push_str(&echo(comment.as_bytes()));
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};
    use sha2::{Digest as _, Sha256, Sha512};

    const NS: &str = LOGIN_NAMESPACE;
    const CHALLENGE: &[u8] = b"breakglass login challenge 0123456789abcdef";

    // The SSH wire encoding, written independently of ssh-key so that the
    // tests do not check ssh-key against itself.
    fn put_string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&u32::try_from(s.len()).unwrap().to_be_bytes());
        out.extend_from_slice(s);
    }

    fn strings(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            put_string(&mut out, p);
        }
        out
    }

    fn digest(hash: &str, msg: &[u8]) -> Vec<u8> {
        match hash {
            "sha256" => Sha256::digest(msg).to_vec(),
            "sha512" => Sha512::digest(msg).to_vec(),
            _ => vec![0; 32],
        }
    }

    /// PROTOCOL.sshsig: the data that is signed.
    fn signed_data(namespace: &str, hash: &str, msg: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend(strings(&[namespace.as_bytes(), b"", hash.as_bytes(), &digest(hash, msg)]));
        out
    }

    /// PROTOCOL.sshsig: the blob, with every field given.
    fn blob(version: u32, public_key: &[u8], namespace: &[u8], reserved: &[u8], hash: &[u8], sig: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&version.to_be_bytes());
        out.extend(strings(&[public_key, namespace, reserved, hash, sig]));
        out
    }

    fn armor(blob: &[u8]) -> String {
        let b64 = B64.encode(blob);
        let mut out = format!("{ARMOR_BEGIN}\n");
        for chunk in b64.as_bytes().chunks(70) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str(ARMOR_END);
        out.push('\n');
        out
    }

    /// A signer of plain Ed25519 or security-key Ed25519 SSH signatures.
    struct Ed {
        key: SigningKey,
        /// `Some(application)` for an sk-ssh-ed25519@openssh.com key.
        sk_application: Option<&'static str>,
    }

    impl Ed {
        fn plain(seed: u8) -> Ed {
            Ed { key: SigningKey::from_bytes(&[seed; 32]), sk_application: None }
        }

        fn sk(seed: u8) -> Ed {
            Ed { key: SigningKey::from_bytes(&[seed; 32]), sk_application: Some("ssh:") }
        }

        fn key_type(&self) -> &'static str {
            if self.sk_application.is_some() { "sk-ssh-ed25519@openssh.com" } else { "ssh-ed25519" }
        }

        fn public_blob(&self) -> Vec<u8> {
            let pk = self.key.verifying_key().to_bytes();
            match self.sk_application {
                None => strings(&[self.key_type().as_bytes(), &pk]),
                Some(app) => strings(&[self.key_type().as_bytes(), &pk, app.as_bytes()]),
            }
        }

        fn public(&self) -> PublicKey {
            PublicKey::from_bytes(&self.public_blob()).unwrap()
        }

        /// The signature field, signed as an authenticator would, with the
        /// given flags and (for sk keys) application.
        fn sign_with(&self, data: &[u8], flags: u8, application: &str) -> Vec<u8> {
            match self.sk_application {
                None => strings(&[b"ssh-ed25519", &self.key.sign(data).to_bytes()]),
                Some(_) => {
                    let counter = 7u32;
                    // PROTOCOL.u2f: SHA256(application) || flags || counter || SHA256(data).
                    let mut to_sign = Sha256::digest(application.as_bytes()).to_vec();
                    to_sign.push(flags);
                    to_sign.extend_from_slice(&counter.to_be_bytes());
                    to_sign.extend_from_slice(&Sha256::digest(data));
                    let mut out = strings(&[self.key_type().as_bytes(), &self.key.sign(&to_sign).to_bytes()]);
                    out.push(flags);
                    out.extend_from_slice(&counter.to_be_bytes());
                    out
                }
            }
        }

        fn sign_blob(&self, namespace: &str, hash: &str, msg: &[u8], flags: u8) -> Vec<u8> {
            let sig = self.sign_with(&signed_data(namespace, hash, msg), flags, self.sk_application.unwrap_or(""));
            blob(1, &self.public_blob(), namespace.as_bytes(), b"", hash.as_bytes(), &sig)
        }

        fn sign(&self, msg: &[u8]) -> String {
            armor(&self.sign_blob(NS, "sha512", msg, SK_USER_PRESENT))
        }
    }

    #[test]
    fn ed25519_signatures_verify_with_either_hash() {
        let alice = Ed::plain(1);
        for hash in ["sha256", "sha512"] {
            let armored = armor(&alice.sign_blob(NS, hash, CHALLENGE, 0));
            let v = verify(&armored, CHALLENGE, NS, &[alice.public()]).unwrap();
            assert_eq!(v.key_index, 0);
            assert_eq!(v.fingerprint, alice.public().fingerprint(HashAlg::Sha256));
            assert!(v.fingerprint.to_string().starts_with("SHA256:"));
            assert_eq!(v.algorithm, Algorithm::Ed25519);
            assert_eq!(v.security_key, None);
        }
    }

    #[test]
    fn the_matching_allowed_key_is_reported() {
        let (alice, bob, carol) = (Ed::plain(1), Ed::plain(2), Ed::sk(3));
        let allowed = [alice.public(), carol.public(), bob.public(), bob.public()];
        assert_eq!(verify(&bob.sign(CHALLENGE), CHALLENGE, NS, &allowed).unwrap().key_index, 2);
        assert_eq!(verify(&carol.sign(CHALLENGE), CHALLENGE, NS, &allowed).unwrap().key_index, 1);
    }

    #[test]
    fn sk_ed25519_requires_user_presence() {
        let key = Ed::sk(5);
        // (flags, accepted): UP is required, UV alone is not enough, other bits are ignored.
        for (flags, accepted) in [(0x01, true), (0x05, true), (0x45, true), (0x00, false), (0x04, false), (0xfe, false)]
        {
            let armored = armor(&key.sign_blob(NS, "sha512", CHALLENGE, flags));
            let got = verify(&armored, CHALLENGE, NS, &[key.public()]);
            if accepted {
                let sk = got.unwrap().security_key.unwrap();
                assert_eq!((sk.flags, sk.counter, sk.user_present()), (flags, 7, true));
                assert_eq!(sk.user_verified(), flags & SK_USER_VERIFIED != 0);
            } else {
                let fingerprint = key.public().fingerprint(HashAlg::Sha256).to_string();
                assert_eq!(
                    got,
                    Err(SshSigError::UserPresenceNotAsserted {
                        key_type: "sk-ssh-ed25519@openssh.com".into(),
                        fingerprint,
                        flags
                    }),
                    "flags {flags:#04x}"
                );
            }
        }
    }

    #[test]
    fn sk_signature_for_another_application_is_rejected() {
        let key = Ed::sk(5);
        let sig = key.sign_with(&signed_data(NS, "sha512", CHALLENGE), SK_USER_PRESENT, "ssh:other");
        let armored = armor(&blob(1, &key.public_blob(), NS.as_bytes(), b"", b"sha512", &sig));
        assert!(matches!(verify(&armored, CHALLENGE, NS, &[key.public()]), Err(SshSigError::BadSignature { .. })));
    }

    #[test]
    fn signatures_that_do_not_fit_are_rejected() {
        let (alice, bob) = (Ed::plain(1), Ed::plain(2));
        let armored = alice.sign(CHALLENGE);
        let mut changed = CHALLENGE.to_vec();
        changed[0] ^= 1;
        let fingerprint = alice.public().fingerprint(HashAlg::Sha256).to_string();

        assert!(matches!(verify(&armored, &changed, NS, &[alice.public()]), Err(SshSigError::BadSignature { .. })));
        assert!(matches!(verify(&armored, b"", NS, &[alice.public()]), Err(SshSigError::BadSignature { .. })));
        assert_eq!(
            verify(&armored, CHALLENGE, "git@breakglass", &[alice.public()]),
            Err(SshSigError::WrongNamespace { expected: "git@breakglass".into(), found: NS.into() })
        );
        assert_eq!(verify(&armored, CHALLENGE, "", &[alice.public()]), Err(SshSigError::EmptyNamespace));
        assert_eq!(
            verify(&armored, CHALLENGE, NS, &[bob.public()]),
            Err(SshSigError::KeyNotAllowed { key_type: "ssh-ed25519".into(), fingerprint: fingerprint.clone() })
        );
        assert_eq!(
            verify(&armored, CHALLENGE, NS, &[]),
            Err(SshSigError::KeyNotAllowed { key_type: "ssh-ed25519".into(), fingerprint: fingerprint.clone() })
        );
        // Bob's signature presented as Alice's: the embedded key is allowed,
        // the signature is not hers.
        let sig = bob.sign_with(&signed_data(NS, "sha512", CHALLENGE), 0, "");
        let forged = armor(&blob(1, &alice.public_blob(), NS.as_bytes(), b"", b"sha512", &sig));
        assert_eq!(
            verify(&forged, CHALLENGE, NS, &[alice.public(), bob.public()]),
            Err(SshSigError::BadSignature { key_type: "ssh-ed25519".into(), fingerprint, namespace: NS.into() })
        );
        // A plain Ed25519 signature presented as one by the same key as a
        // security key: the sk signed data differs, so it cannot verify.
        let as_sk = Ed { key: alice.key.clone(), sk_application: Some("ssh:") };
        let mut sig = strings(&[
            b"sk-ssh-ed25519@openssh.com",
            &alice.key.sign(&signed_data(NS, "sha512", CHALLENGE)).to_bytes(),
        ]);
        sig.extend_from_slice(&[SK_USER_PRESENT, 0, 0, 0, 1]);
        let relabelled = armor(&blob(1, &as_sk.public_blob(), NS.as_bytes(), b"", b"sha512", &sig));
        assert!(matches!(verify(&relabelled, CHALLENGE, NS, &[as_sk.public()]), Err(SshSigError::BadSignature { .. })));
    }

    type Check = fn(&SshSigError) -> bool;

    /// One row of a table of rejections: what is tried, and what error it must give.
    fn case<T>(name: &'static str, input: T, check: Check) -> (&'static str, T, Check) {
        (name, input, check)
    }

    /// Every field of the blob, changed one at a time; signed honestly where
    /// the change is in the signed data, so the checks, not the signature,
    /// must catch it.
    #[test]
    fn blob_fields_are_checked() {
        let alice = Ed::plain(1);
        let pk = alice.public_blob();
        let sig_over = |ns: &str, hash: &str| alice.sign_with(&signed_data(ns, hash, CHALLENGE), 0, "");
        let good_sig = sig_over(NS, "sha512");
        let blob_with =
            |pk: &[u8], ns: &[u8], reserved: &[u8], hash: &[u8], sig: &[u8]| blob(1, pk, ns, reserved, hash, sig);
        let plus_byte = |b: &[u8]| [b, &[0]].concat();
        let dsa_key = strings(&[b"ssh-dss", &[1], &[2], &[3], &[4]]);
        let cert_key = strings(&[b"ssh-ed25519-cert-v01@openssh.com", &[0; 32]]);
        let raw_sig = alice.key.sign(&signed_data(NS, "sha512", CHALLENGE)).to_bytes();
        let mut bad_magic = blob_with(&pk, NS.as_bytes(), b"", b"sha512", &good_sig);
        bad_magic[0] = b'X';
        let ns = NS.as_bytes();

        let cases = [
            case("version 0", blob(0, &pk, ns, b"", b"sha512", &good_sig), |e| {
                *e == SshSigError::UnsupportedVersion(0)
            }),
            case("version 2", blob(2, &pk, ns, b"", b"sha512", &good_sig), |e| {
                *e == SshSigError::UnsupportedVersion(2)
            }),
            case("bad magic", bad_magic, |e| matches!(e, SshSigError::Malformed(_))),
            case(
                "other namespace, honestly signed",
                blob_with(&pk, b"file", b"", b"sha512", &sig_over("file", "sha512")),
                |e| *e == SshSigError::WrongNamespace { expected: NS.into(), found: "file".into() },
            ),
            case(
                "namespace with a NUL",
                blob_with(&pk, format!("{NS}\0").as_bytes(), b"", b"sha512", &good_sig),
                |e| matches!(e, SshSigError::WrongNamespace { .. }),
            ),
            case("hash sha1", blob_with(&pk, ns, b"", b"sha1", &sig_over(NS, "sha1")), |e| {
                *e == SshSigError::UnsupportedHash("sha1".into())
            }),
            case("hash SHA512", blob_with(&pk, ns, b"", b"SHA512", &good_sig), |e| {
                *e == SshSigError::UnsupportedHash("SHA512".into())
            }),
            case("hash empty", blob_with(&pk, ns, b"", b"", &good_sig), |e| {
                *e == SshSigError::UnsupportedHash(String::new())
            }),
            case("reserved not empty", blob_with(&pk, ns, b"x", b"sha512", &good_sig), |e| {
                *e == SshSigError::ReservedNotEmpty
            }),
            case("trailing byte after the blob", plus_byte(&blob_with(&pk, ns, b"", b"sha512", &good_sig)), |e| {
                matches!(e, SshSigError::TrailingData(_))
            }),
            case(
                "trailing byte in the signature field",
                blob_with(&pk, ns, b"", b"sha512", &plus_byte(&good_sig)),
                |e| matches!(e, SshSigError::TrailingData(_)),
            ),
            case("trailing byte in the key field", blob_with(&plus_byte(&pk), ns, b"", b"sha512", &good_sig), |e| {
                matches!(e, SshSigError::MalformedKey { .. })
            }),
            case("DSA key", blob_with(&dsa_key, ns, b"", b"sha512", &good_sig), |e| {
                *e == SshSigError::UnsupportedKeyType("ssh-dss".into())
            }),
            case("certificate", blob_with(&cert_key, ns, b"", b"sha512", &good_sig), |e| {
                *e == SshSigError::UnsupportedKeyType("ssh-ed25519-cert-v01@openssh.com".into())
            }),
            case(
                "key with a wrong inner length",
                blob_with(&[&pk[..15], &[0, 1, 0, 32], &pk[19..]].concat(), ns, b"", b"sha512", &good_sig),
                |e| matches!(e, SshSigError::MalformedKey { key_type, .. } if key_type == "ssh-ed25519"),
            ),
            case(
                "small-order Ed25519 key",
                blob_with(&strings(&[b"ssh-ed25519", &[0; 32]]), ns, b"", b"sha512", &good_sig),
                |e| {
                    *e == SshSigError::MalformedKey {
                        key_type: "ssh-ed25519".into(),
                        reason: "it is a small-order (weak) Ed25519 key",
                    }
                },
            ),
            case("empty key field", blob_with(b"", ns, b"", b"sha512", &good_sig), |e| {
                matches!(e, SshSigError::Malformed(_))
            }),
            case(
                "signature labelled sk",
                blob_with(&pk, ns, b"", b"sha512", &strings(&[b"sk-ssh-ed25519@openssh.com", &raw_sig])),
                |e| matches!(e, SshSigError::AlgorithmMismatch { signature, .. } if signature == "sk-ssh-ed25519@openssh.com"),
            ),
            case(
                "signature labelled rsa",
                blob_with(&pk, ns, b"", b"sha512", &strings(&[b"rsa-sha2-512", &raw_sig])),
                |e| matches!(e, SshSigError::AlgorithmMismatch { .. }),
            ),
            case(
                "signature of 63 bytes",
                blob_with(&pk, ns, b"", b"sha512", &strings(&[b"ssh-ed25519", &raw_sig[..63]])),
                |e| matches!(e, SshSigError::MalformedSignature { .. }),
            ),
            case("empty signature field", blob_with(&pk, ns, b"", b"sha512", b""), |e| {
                matches!(e, SshSigError::MalformedSignature { .. })
            }),
        ];
        for (name, b, check) in cases {
            let got = verify(&armor(&b), CHALLENGE, NS, &[alice.public()]);
            assert!(got.as_ref().is_err_and(check), "{name}: got {got:?}");
        }
    }

    #[test]
    fn sk_signature_without_flags_and_counter_is_rejected() {
        let key = Ed::sk(5);
        let good = key.sign_with(&signed_data(NS, "sha512", CHALLENGE), SK_USER_PRESENT, "ssh:");
        for cut in 1..=5 {
            let sig = &good[..good.len() - cut];
            let armored = armor(&blob(1, &key.public_blob(), NS.as_bytes(), b"", b"sha512", sig));
            let got = verify(&armored, CHALLENGE, NS, &[key.public()]);
            assert!(matches!(got, Err(SshSigError::MalformedSignature { .. })), "cut {cut}: {got:?}");
        }
    }

    /// No change of a single byte anywhere in the blob, and no truncation,
    /// leaves a signature that verifies.
    #[test]
    fn every_flipped_byte_and_every_truncation_is_rejected() {
        for key in [Ed::plain(1), Ed::sk(5)] {
            let good = key.sign_blob(NS, "sha512", CHALLENGE, SK_USER_PRESENT | SK_USER_VERIFIED);
            assert!(verify(&armor(&good), CHALLENGE, NS, &[key.public()]).is_ok());
            for i in 0..good.len() {
                for bit in [0x01, 0x80] {
                    let mut bad = good.clone();
                    bad[i] ^= bit;
                    let got = verify(&armor(&bad), CHALLENGE, NS, &[key.public()]);
                    assert!(got.is_err(), "{}: byte {i} ^ {bit:#04x} still verifies", key.key_type());
                }
            }
            for len in 0..good.len() {
                assert!(verify(&armor(&good[..len]), CHALLENGE, NS, &[key.public()]).is_err(), "truncated to {len}");
            }
        }
    }

    #[test]
    fn armor_is_strict() {
        let alice = Ed::plain(1);
        let good = alice.sign(CHALLENGE);
        let body = good.trim_end().strip_prefix(ARMOR_BEGIN).unwrap().strip_suffix(ARMOR_END).unwrap().trim();
        let with_body = |b: &str| format!("{ARMOR_BEGIN}\n{b}\n{ARMOR_END}\n");
        assert!(body.ends_with('=') && body.contains('\n'), "the cases below need padding and several lines");

        let accepted = [
            good.clone(),
            good.replace('\n', "\r\n"),
            format!("\n  {good}\n\n"),
            good.trim_end().to_owned(),
            with_body(&body.replace('\n', "")),
        ];
        for armored in &accepted {
            assert!(verify(armored, CHALLENGE, NS, &[alice.public()]).is_ok(), "{armored:?}");
        }

        fn malformed(e: &SshSigError) -> bool {
            matches!(e, SshSigError::MalformedArmor(_))
        }
        fn trailing(e: &SshSigError) -> bool {
            matches!(e, SshSigError::TrailingData(_))
        }
        let cases = [
            case("empty", String::new(), malformed),
            case("no armor", body.to_owned(), malformed),
            case("another label", good.replace("SSH SIGNATURE", "PGP SIGNATURE"), malformed),
            case("BEGIN repeated", format!("{ARMOR_BEGIN}\n{good}"), malformed),
            case("no END line", good.replace(ARMOR_END, ""), malformed),
            case("cut in the middle", good[..good.len() / 2].to_owned(), malformed),
            case("character outside base64", with_body(&body.replacen('A', "*", 1)), malformed),
            case("space in a line", with_body(&body.replacen('A', " A", 1)), malformed),
            case("blank line in the body", with_body(&body.replacen('\n', "\n\n", 1)), malformed),
            case("padding removed", with_body(body.trim_end_matches('=')), malformed),
            case("padding doubled", with_body(&format!("{body}==")), malformed),
            case("nothing in the body", format!("{ARMOR_BEGIN}\n{ARMOR_END}\n"), malformed),
            case("text after END", format!("{good}garbage\n"), trailing),
            case("text on the END line", good.replace(ARMOR_END, &format!("{ARMOR_END} garbage")), trailing),
            case("a second signature", format!("{good}{good}"), trailing),
            case(
                "too large",
                format!("{good}{}", " ".repeat(MAX_ARMORED_BYTES)),
                |e| matches!(e, SshSigError::TooLarge { len } if *len > MAX_ARMORED_BYTES),
            ),
        ];
        for (name, armored, check) in cases {
            let got = verify(&armored, CHALLENGE, NS, &[alice.public()]);
            assert!(got.as_ref().is_err_and(check), "{name}: got {got:?}");
        }
    }

    #[test]
    fn parse_public_key_accepts_openssh_lines() {
        let alice = Ed::plain(1);
        let b64 = B64.encode(alice.public_blob());
        for (line, comment) in [
            (format!("ssh-ed25519 {b64} alice@laptop"), "alice@laptop"),
            (format!("ssh-ed25519 {b64}"), ""),
            (format!("  ssh-ed25519\t{b64}   alice with spaces  \n"), "alice with spaces"),
        ] {
            let key = parse_public_key(&line).unwrap();
            assert_eq!(key.key_data(), alice.public().key_data(), "{line:?}");
            assert_eq!(key.comment(), comment);
        }
        let sk = Ed::sk(5);
        let line = format!("sk-ssh-ed25519@openssh.com {} yubikey", B64.encode(sk.public_blob()));
        assert_eq!(parse_public_key(&line).unwrap().key_data(), sk.public().key_data());
    }

    #[test]
    fn parse_public_key_errors_name_the_input() {
        let alice = Ed::plain(1);
        let b64 = B64.encode(alice.public_blob());
        let dsa = B64.encode(strings(&[b"ssh-dss", &[1], &[2], &[3], &[4]]));
        let mut identity = [0; 32];
        identity[0] = 1;
        let weak = B64.encode(strings(&[b"ssh-ed25519", &identity]));
        let cases = [
            (String::new(), "the line is empty"),
            ("ssh-ed25519".to_owned(), "expected '<key type> <base64 key data> [comment]'"),
            (format!("ssh-ed25519 {}! alice", &b64[..20]), "the key data is not valid base64"),
            (format!("ssh-ed25519 {} alice", &b64[..b64.len() - 8]), "cannot be decoded"),
            (format!("ecdsa-sha2-nistp256 {b64} alice"), "the key data is a ssh-ed25519 key, not ecdsa-sha2-nistp256"),
            (format!("ssh-ed25519 {weak} weak"), "small-order (weak) Ed25519 key"),
            (format!("ssh-dss {dsa} old"), "unsupported key type \"ssh-dss\""),
            (format!("from=\"10.0.0.1\" ssh-ed25519 {b64}"), "does not start with a key type"),
            (format!("ssh-ed25519 {b64} a\nssh-ed25519 {b64} b"), "several lines"),
        ];
        for (line, want) in cases {
            let err = parse_public_key(&line).unwrap_err();
            let SshSigError::InvalidPublicKey { input, reason } = &err else { panic!("{line:?}: {err:?}") };
            assert!(reason.contains(want), "{line:?}: reason {reason:?} lacks {want:?}");
            if !line.starts_with("from=") {
                let named = format!("\"{}", split_token(&line).0);
                assert!(line.is_empty() || input.starts_with(&named), "{line:?}: input {input:?}");
            }
        }
        let err = parse_public_key(&format!("ssh-ed25519 {b64}x alice@laptop")).unwrap_err().to_string();
        assert!(err.starts_with("invalid OpenSSH public key \"ssh-ed25519 AAAAC3NzaC1lZDI1…"), "{err}");
        assert!(err.contains("alice@laptop"), "{err}");
    }

    #[test]
    fn parse_public_key_never_repeats_a_private_key() {
        // Not real keys: the shapes of an OpenSSH and a PEM private key file.
        let openssh_body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";
        let pem_body = "MIIEowIBAAKCAQEAxSECRETSECRETSECRETSECRETSECRETSECRETSECRETSECRET";
        for line in ["-----BEGIN OPENSSH PRIVATE KEY-----", openssh_body, pem_body, "-----BEGIN RSA PRIVATE KEY-----"] {
            let err = parse_public_key(line).unwrap_err().to_string();
            assert!(!err.contains(&line[5..20]), "{line:?} repeated in {err:?}");
        }
        assert!(parse_public_key(pem_body).unwrap_err().to_string().contains("does not start with a key type"));
        assert!(parse_public_key(openssh_body).unwrap_err().to_string().contains("private key"));
    }

    #[test]
    fn errors_shorten_and_escape_what_the_signer_chose() {
        let alice = Ed::plain(1);
        let message = |namespace: &str| {
            let b = blob(1, &alice.public_blob(), namespace.as_bytes(), b"", b"sha512", b"");
            verify(&armor(&b), CHALLENGE, NS, &[alice.public()]).unwrap_err().to_string()
        };
        let long = message(&"n".repeat(200));
        assert!(long.contains(&format!("namespace \"{}…\"", "n".repeat(MAX_ECHO_CHARS))), "{long}");
        let escaped = message("x\u{1b}[31m\ny");
        assert!(escaped.contains(r#"namespace "x\u{1b}[31m\ny""#), "{escaped}");
    }
}
