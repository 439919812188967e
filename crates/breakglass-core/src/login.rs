//! Login challenges: what a person signs with their SSH key to log in.
//!
//! Security: an unauthenticated caller sends the challenge back, and may have
//! made or altered it; a challenge that [`open`] accepts is the server's word that it issued these
//! exact bytes, for this principal, at this server, recently. A mistake here
//! lets a signature made for one login be replayed for another.
//!
//! The flow: the client asks for a challenge for principal P; the server calls
//! [`issue`] and sends the string back; the client signs exactly those bytes
//! with `ssh-keygen -Y sign -n breakglass-login@breakglass`
//! ([`crate::sshsig::LOGIN_NAMESPACE`]); the server calls [`open`] on the
//! challenge the client returns, then [`crate::sshsig::verify`] on the
//! signature over it with P's keys.
//!
//! Challenges are stateless: the server keeps nothing between issuing and
//! opening, because each challenge carries its own claims and an HMAC-SHA256
//! over them under a key only the server holds. A challenge is one line of
//! printable ASCII, seven fields separated by single spaces:
//!
//! ```text
//! breakglass-login-v1 <origin> <principal> <nonce> <issued_ms> <expires_ms> <mac>
//! ```
//!
//! `nonce` is 32 lowercase hex digits (16 random bytes chosen by the caller),
//! the times are milliseconds since the Unix epoch in canonical decimal (no
//! sign, no leading zeros), and `mac` is unpadded base64url of
//! `HMAC-SHA256(key, MAC_DOMAIN || everything before the last space)`. Origin
//! and principal may not contain spaces, so the fields split one way only, and
//! every field has exactly one accepted spelling, so one set of claims has one
//! challenge.
//!
//! [`open`] checks, in this order: the length, the characters, the shape and
//! the spelling of every field, the MAC (in constant time), then the origin,
//! the principal, the lifetime, the issue time and the expiry. Nothing is
//! interpreted before the MAC has been checked except to refuse it.
//!
//! Not done here, because it needs state: a challenge must be used once. The
//! caller stores [`ChallengeClaims::nonce`] until the challenge expires and
//! refuses a nonce it has seen.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::principals::check_name;
use crate::time::Timestamp;

/// The first field of every challenge; a new format gets a new tag.
pub const CHALLENGE_VERSION: &str = "breakglass-login-v1";
/// Challenges longer than this are refused before anything else is looked at.
pub const MAX_CHALLENGE_BYTES: usize = 1024;
/// Origins are at most this many bytes, which keeps every challenge under
/// [`MAX_CHALLENGE_BYTES`].
pub const MAX_ORIGIN_BYTES: usize = 512;
/// The longest lifetime of a challenge: long enough to touch a security key,
/// short enough that a leaked unsigned challenge is soon worthless.
pub const MAX_TTL_MS: i64 = 10 * 60 * 1000;
/// How far in the future a challenge's issue time may be, for servers sharing
/// a key whose clocks differ a little.
pub const MAX_CLOCK_SKEW_MS: i64 = 60 * 1000;
/// Prefixed to the MACed bytes, so that a MAC made with this key for anything
/// else can never pass for a challenge's.
pub const MAC_DOMAIN: &[u8] = b"breakglass login challenge MAC v1\x00";

const NONCE_HEX_LEN: usize = 32;
/// Unpadded base64 of 32 bytes.
const MAC_B64_LEN: usize = 43;
const FIELDS: usize = 7;
/// At most 19 digits: every such number with no leading zero up to
/// `i64::MAX` parses; longer ones cannot be an `i64`.
const MAX_DECIMAL_DIGITS: usize = 19;

/// The server's secret for MACing challenges: 32 random bytes, kept with the
/// server's other keys. Its `Debug` does not show it.
#[derive(Clone)]
pub struct ChallengeKey([u8; 32]);

impl ChallengeKey {
    pub fn from_bytes(bytes: [u8; 32]) -> ChallengeKey {
        ChallengeKey(bytes)
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(..)")
    }
}

/// What an opened challenge says. Only returned once its MAC has verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeClaims {
    /// The server the challenge was issued by and for, e.g.
    /// `https://breakglass.example.com`.
    pub origin: String,
    /// The principal who may sign it.
    pub principal: String,
    /// 32 lowercase hex digits. The caller refuses a nonce it has seen, which
    /// makes each challenge single use.
    pub nonce: String,
    pub issued_at: Timestamp,
    /// The challenge is valid strictly before this instant.
    pub expires_at: Timestamp,
}

/// Why a challenge was not issued or not accepted. No message repeats the key,
/// and none repeats a field of a challenge whose MAC has not verified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("login challenge is {len} bytes, more than the limit of {MAX_CHALLENGE_BYTES}")]
    TooLong { len: usize },
    #[error("malformed login challenge: {0} (send the challenge exactly as the server issued it)")]
    Malformed(String),
    #[error("login challenge was not issued by this server, or it was altered")]
    BadMac,
    #[error("login challenge was issued for server {got:?}, not this one ({expected:?})")]
    WrongOrigin { expected: String, got: String },
    #[error("login challenge was issued for principal {got:?}, not {expected:?}")]
    WrongPrincipal { expected: String, got: String },
    #[error("login challenge expired at {at}; ask for a new one")]
    Expired { at: Timestamp },
    #[error(
        "login challenge is issued at {issued_at}, more than {MAX_CLOCK_SKEW_MS} ms in the future (are the servers' clocks right?)"
    )]
    NotYetValid { issued_at: Timestamp },
    #[error("login challenge would be valid for {ttl_ms} ms; the limit is {MAX_TTL_MS} ms")]
    TtlTooLong { ttl_ms: i64 },
    #[error("login challenge lifetime of {ttl_ms} ms is not positive")]
    TtlNotPositive { ttl_ms: i64 },
    #[error("cannot issue a login challenge at {now}: the time is before the Unix epoch or too far in the future")]
    TimeOutOfRange { now: Timestamp },
    #[error(
        "invalid origin for a login challenge: it must be 1 to {MAX_ORIGIN_BYTES} bytes of printable ASCII with no spaces"
    )]
    InvalidOrigin,
    #[error("invalid principal name for a login challenge: it {0}")]
    InvalidPrincipal(String),
}

/// Issues a challenge for `principal` to log in to the server at `origin`,
/// valid from `now` for `ttl_ms` (at most [`MAX_TTL_MS`]). `nonce` must be
/// fresh random bytes; it is what makes the challenge single use.
pub fn issue(
    key: &ChallengeKey,
    origin: &str,
    principal: &str,
    nonce: [u8; 16],
    now: Timestamp,
    ttl_ms: i64,
) -> Result<String, ChallengeError> {
    check_origin(origin)?;
    check_name(principal).map_err(ChallengeError::InvalidPrincipal)?;
    if ttl_ms <= 0 {
        return Err(ChallengeError::TtlNotPositive { ttl_ms });
    }
    if ttl_ms > MAX_TTL_MS {
        return Err(ChallengeError::TtlTooLong { ttl_ms });
    }
    // Negative times would be written with a sign, which `open` refuses.
    let expires_ms = match now.0.checked_add(ttl_ms) {
        Some(expires_ms) if now.0 >= 0 => expires_ms,
        _ => return Err(ChallengeError::TimeOutOfRange { now }),
    };
    let body = format!("{CHALLENGE_VERSION} {origin} {principal} {} {} {expires_ms}", hex::encode(nonce), now.0);
    let mut mac = key.mac();
    mac.update(MAC_DOMAIN);
    mac.update(body.as_bytes());
    Ok(format!("{body} {}", B64URL.encode(mac.finalize().into_bytes())))
}

/// Opens a challenge returned by a client who wants to log in as `principal`
/// to the server at `origin`, at time `now`. See the module documentation for
/// every check, in order. The caller must still refuse a nonce it has seen.
pub fn open(
    key: &ChallengeKey,
    challenge: &str,
    origin: &str,
    principal: &str,
    now: Timestamp,
) -> Result<ChallengeClaims, ChallengeError> {
    let malformed = |what: &str| ChallengeError::Malformed(what.to_owned());

    if challenge.len() > MAX_CHALLENGE_BYTES {
        return Err(ChallengeError::TooLong { len: challenge.len() });
    }
    if !challenge.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(malformed("it contains a character other than printable ASCII (a line break, a tab, …)"));
    }
    let fields: Vec<&str> = challenge.split(' ').collect();
    if fields.len() != FIELDS || fields.iter().any(|f| f.is_empty()) {
        return Err(malformed("expected seven fields separated by single spaces"));
    }
    let [version, got_origin, got_principal, nonce, issued, expires, mac_b64] = fields[..] else {
        unreachable!("exactly seven fields");
    };
    if version != CHALLENGE_VERSION {
        return Err(malformed("it does not start with breakglass-login-v1"));
    }
    if check_origin(got_origin).is_err() {
        return Err(malformed("the origin field is invalid"));
    }
    if check_name(got_principal).is_err() {
        return Err(malformed("the principal field is invalid"));
    }
    if nonce.len() != NONCE_HEX_LEN || !nonce.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(malformed("the nonce is not 32 lowercase hex digits"));
    }
    let issued_ms =
        parse_millis(issued).ok_or_else(|| malformed("the issue time is not a canonical decimal number"))?;
    let expires_ms = parse_millis(expires).ok_or_else(|| malformed("the expiry is not a canonical decimal number"))?;
    let tag = match B64URL.decode(mac_b64) {
        Ok(tag) if mac_b64.len() == MAC_B64_LEN && tag.len() == 32 => tag,
        _ => return Err(malformed("the MAC is not 43 characters of unpadded base64url")),
    };

    // The body is everything before the last space; the split above made sure
    // that space exists and that the MAC field holds no other.
    let body = &challenge[..challenge.len() - mac_b64.len() - 1];
    let mut mac = key.mac();
    mac.update(MAC_DOMAIN);
    mac.update(body.as_bytes());
    mac.verify_slice(&tag).map_err(|_| ChallengeError::BadMac)?;

    if got_origin != origin {
        return Err(ChallengeError::WrongOrigin { expected: origin.to_owned(), got: got_origin.to_owned() });
    }
    if got_principal != principal {
        return Err(ChallengeError::WrongPrincipal { expected: principal.to_owned(), got: got_principal.to_owned() });
    }
    // This server never issues such challenges, but the MAC key may be shared
    // with other servers, so the lifetime is checked here too. Both times are
    // non-negative, so the subtraction cannot overflow.
    let ttl_ms = expires_ms - issued_ms;
    if ttl_ms <= 0 {
        return Err(ChallengeError::TtlNotPositive { ttl_ms });
    }
    if ttl_ms > MAX_TTL_MS {
        return Err(ChallengeError::TtlTooLong { ttl_ms });
    }
    if issued_ms > now.0.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(ChallengeError::NotYetValid { issued_at: Timestamp(issued_ms) });
    }
    if now.0 >= expires_ms {
        return Err(ChallengeError::Expired { at: Timestamp(expires_ms) });
    }

    Ok(ChallengeClaims {
        origin: got_origin.to_owned(),
        principal: got_principal.to_owned(),
        nonce: nonce.to_owned(),
        issued_at: Timestamp(issued_ms),
        expires_at: Timestamp(expires_ms),
    })
}

/// An origin is 1 to [`MAX_ORIGIN_BYTES`] bytes of printable ASCII without
/// spaces: spaces separate the fields of a challenge.
fn check_origin(origin: &str) -> Result<(), ChallengeError> {
    if origin.is_empty() || origin.len() > MAX_ORIGIN_BYTES || !origin.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ChallengeError::InvalidOrigin);
    }
    Ok(())
}

/// Parses milliseconds written as `issue` writes them: ASCII digits, no sign,
/// no leading zero (except `0` itself), within `i64`.
fn parse_millis(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > MAX_DECIMAL_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://breakglass.example.com";
    const NOW: Timestamp = Timestamp(1_795_000_000_000);
    const TTL: i64 = 5 * 60 * 1000;
    const NONCE: [u8; 16] = [0xab; 16];

    fn key() -> ChallengeKey {
        ChallengeKey::from_bytes([7; 32])
    }

    fn alice_challenge() -> String {
        issue(&key(), ORIGIN, "alice", NONCE, NOW, TTL).unwrap()
    }

    fn open_as_alice(challenge: &str) -> Result<ChallengeClaims, ChallengeError> {
        open(&key(), challenge, ORIGIN, "alice", NOW)
    }

    /// A challenge with any body, MACed with the right key: for checks that
    /// `issue` would never let a challenge reach.
    fn forge(body: &str) -> String {
        let mut mac = key().mac();
        mac.update(MAC_DOMAIN);
        mac.update(body.as_bytes());
        format!("{body} {}", B64URL.encode(mac.finalize().into_bytes()))
    }

    /// The challenge with field `index` replaced, and its MAC left as it was.
    fn with_field(challenge: &str, index: usize, value: &str) -> String {
        let mut fields: Vec<&str> = challenge.split(' ').collect();
        fields[index] = value;
        fields.join(" ")
    }

    fn is_malformed(r: &Result<ChallengeClaims, ChallengeError>) -> bool {
        matches!(r, Err(ChallengeError::Malformed(_)))
    }

    #[test]
    fn round_trip() {
        let challenge = alice_challenge();
        let nonce = "ab".repeat(16);
        let mac = &challenge[challenge.rfind(' ').unwrap() + 1..];
        assert_eq!(challenge, format!("breakglass-login-v1 {ORIGIN} alice {nonce} 1795000000000 1795000300000 {mac}"));
        assert_eq!(mac.len(), 43);
        let claims = open_as_alice(&challenge).unwrap();
        assert_eq!(
            claims,
            ChallengeClaims {
                origin: ORIGIN.to_owned(),
                principal: "alice".to_owned(),
                nonce,
                issued_at: NOW,
                expires_at: Timestamp(NOW.0 + TTL),
            }
        );
        // Different nonces make different challenges.
        let other = issue(&key(), ORIGIN, "alice", [0; 16], NOW, TTL).unwrap();
        assert_ne!(other, challenge);
        assert_eq!(open_as_alice(&other).unwrap().nonce, "0".repeat(32));
    }

    #[test]
    fn validity_window_edges() {
        let challenge = alice_challenge();
        let at = |ms: i64| open(&key(), &challenge, ORIGIN, "alice", Timestamp(ms));
        // Valid from a minute before issue (clock skew) until just before expiry.
        assert!(at(NOW.0 - MAX_CLOCK_SKEW_MS).is_ok());
        assert!(at(NOW.0 + TTL - 1).is_ok());
        assert_eq!(at(NOW.0 + TTL), Err(ChallengeError::Expired { at: Timestamp(NOW.0 + TTL) }));
        assert!(matches!(at(NOW.0 + 86_400_000), Err(ChallengeError::Expired { .. })));
        assert_eq!(at(NOW.0 - MAX_CLOCK_SKEW_MS - 1), Err(ChallengeError::NotYetValid { issued_at: NOW }));
        assert!(matches!(at(i64::MAX), Err(ChallengeError::Expired { .. })));
        assert!(matches!(at(i64::MIN), Err(ChallengeError::NotYetValid { .. })));
    }

    #[test]
    fn issue_refuses_what_open_would_refuse() {
        let k = key();
        for origin in ["", "https://a b", "https://a\tb", "https://ä", &"o".repeat(MAX_ORIGIN_BYTES + 1)] {
            assert_eq!(issue(&k, origin, "alice", NONCE, NOW, TTL), Err(ChallengeError::InvalidOrigin), "{origin:?}");
        }
        assert!(issue(&k, &"o".repeat(MAX_ORIGIN_BYTES), "alice", NONCE, NOW, TTL).is_ok());
        for principal in ["", "al ice", "-alice", "alice\n", &"a".repeat(65)] {
            assert!(
                matches!(issue(&k, ORIGIN, principal, NONCE, NOW, TTL), Err(ChallengeError::InvalidPrincipal(_))),
                "{principal:?}"
            );
        }
        assert_eq!(issue(&k, ORIGIN, "alice", NONCE, NOW, 0), Err(ChallengeError::TtlNotPositive { ttl_ms: 0 }));
        assert_eq!(issue(&k, ORIGIN, "alice", NONCE, NOW, -1), Err(ChallengeError::TtlNotPositive { ttl_ms: -1 }));
        assert_eq!(
            issue(&k, ORIGIN, "alice", NONCE, NOW, MAX_TTL_MS + 1),
            Err(ChallengeError::TtlTooLong { ttl_ms: MAX_TTL_MS + 1 })
        );
        assert!(issue(&k, ORIGIN, "alice", NONCE, NOW, MAX_TTL_MS).is_ok());
        for now in [Timestamp(-1), Timestamp(i64::MIN), Timestamp(i64::MAX)] {
            assert_eq!(issue(&k, ORIGIN, "alice", NONCE, now, TTL), Err(ChallengeError::TimeOutOfRange { now }));
        }
        // The largest challenge fits comfortably under the limit.
        let longest =
            issue(&k, &"o".repeat(MAX_ORIGIN_BYTES), &"a".repeat(64), NONCE, Timestamp(i64::MAX - 1000), 1000);
        assert!(longest.unwrap().len() < MAX_CHALLENGE_BYTES);
    }

    #[test]
    fn a_challenge_for_someone_else_is_refused() {
        let bob = issue(&key(), ORIGIN, "bob", NONCE, NOW, TTL).unwrap();
        assert_eq!(
            open_as_alice(&bob),
            Err(ChallengeError::WrongPrincipal { expected: "alice".into(), got: "bob".into() })
        );
        // Names are case-sensitive.
        assert!(matches!(open(&key(), &bob, ORIGIN, "Bob", NOW), Err(ChallengeError::WrongPrincipal { .. })));
        assert!(open(&key(), &bob, ORIGIN, "bob", NOW).is_ok());
    }

    #[test]
    fn a_challenge_for_another_server_is_refused() {
        let challenge = alice_challenge();
        for other in ["https://evil.example.com", "https://breakglass.example.com/", "http://breakglass.example.com"] {
            assert_eq!(
                open(&key(), &challenge, other, "alice", NOW),
                Err(ChallengeError::WrongOrigin { expected: other.into(), got: ORIGIN.into() })
            );
        }
    }

    #[test]
    fn another_key_is_refused() {
        let challenge = alice_challenge();
        let other = ChallengeKey::from_bytes([8; 32]);
        assert_eq!(open(&other, &challenge, ORIGIN, "alice", NOW), Err(ChallengeError::BadMac));
        let mut one_bit = [7; 32];
        one_bit[31] ^= 1;
        assert_eq!(
            open(&ChallengeKey::from_bytes(one_bit), &challenge, ORIGIN, "alice", NOW),
            Err(ChallengeError::BadMac)
        );
    }

    #[test]
    fn tampered_fields_are_refused() {
        let challenge = alice_challenge();
        let expires = (NOW.0 + MAX_TTL_MS).to_string();
        let earlier = (NOW.0 - 1000).to_string();
        for (index, value) in [
            (1, "https://evil.example.com"),
            (2, "bob"),
            (2, "Alice"),
            (3, "00000000000000000000000000000000"),
            (3, "abababababababababababababababac"),
            (4, earlier.as_str()),
            (5, expires.as_str()),
            (6, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            let tampered = with_field(&challenge, index, value);
            assert_eq!(open_as_alice(&tampered), Err(ChallengeError::BadMac), "{tampered}");
            // Even for the identity the tampering claims.
            let principal = tampered.split(' ').nth(2).unwrap();
            let origin = tampered.split(' ').nth(1).unwrap();
            assert_eq!(open(&key(), &tampered, origin, principal, NOW), Err(ChallengeError::BadMac), "{tampered}");
        }
        // A MAC taken from another valid challenge does not fit this one.
        let bob = issue(&key(), ORIGIN, "bob", NONCE, NOW, TTL).unwrap();
        let bobs_mac = bob.rsplit(' ').next().unwrap();
        assert_eq!(open_as_alice(&with_field(&challenge, 6, bobs_mac)), Err(ChallengeError::BadMac));
    }

    #[test]
    fn every_changed_character_and_every_truncation_is_refused() {
        let challenge = alice_challenge();
        for i in 0..challenge.len() {
            for replacement in ["a", "b", "0", "9", "A", "-", "_", " ", "\n", "é"] {
                if challenge[i..].starts_with(replacement) {
                    continue;
                }
                let changed = format!("{}{replacement}{}", &challenge[..i], &challenge[i + 1..]);
                assert!(open_as_alice(&changed).is_err(), "{changed:?}");
            }
            assert!(open_as_alice(&challenge[..i]).is_err(), "truncated to {i}");
            let inserted = format!("{}x{}", &challenge[..i], &challenge[i..]);
            assert!(open_as_alice(&inserted).is_err(), "{inserted:?}");
        }
    }

    #[test]
    fn lifetime_and_issue_time_are_checked_even_with_a_good_mac() {
        let nonce = "ab".repeat(16);
        let body = |issued: i64, expires: i64| format!("{CHALLENGE_VERSION} {ORIGIN} alice {nonce} {issued} {expires}");
        assert!(open_as_alice(&forge(&body(NOW.0, NOW.0 + TTL))).is_ok(), "the forge helper MACs like issue");

        let too_long = forge(&body(NOW.0, NOW.0 + MAX_TTL_MS + 1));
        assert_eq!(open_as_alice(&too_long), Err(ChallengeError::TtlTooLong { ttl_ms: MAX_TTL_MS + 1 }));
        let forever = forge(&body(0, i64::MAX));
        assert_eq!(open_as_alice(&forever), Err(ChallengeError::TtlTooLong { ttl_ms: i64::MAX }));
        let backwards = forge(&body(NOW.0, NOW.0 - 1));
        assert_eq!(open_as_alice(&backwards), Err(ChallengeError::TtlNotPositive { ttl_ms: -1 }));
        let empty = forge(&body(NOW.0, NOW.0));
        assert_eq!(open_as_alice(&empty), Err(ChallengeError::TtlNotPositive { ttl_ms: 0 }));
        let future = NOW.0 + MAX_CLOCK_SKEW_MS + 1;
        let from_the_future = forge(&body(future, future + TTL));
        assert_eq!(open_as_alice(&from_the_future), Err(ChallengeError::NotYetValid { issued_at: Timestamp(future) }));
        let old = forge(&body(NOW.0 - TTL, NOW.0));
        assert_eq!(open_as_alice(&old), Err(ChallengeError::Expired { at: NOW }));
        // Another version tag is refused, MAC or not.
        let v2 = forge(&format!("breakglass-login-v2 {ORIGIN} alice {nonce} {} {}", NOW.0, NOW.0 + TTL));
        assert!(is_malformed(&open_as_alice(&v2)));
    }

    #[test]
    fn only_the_canonical_spelling_is_accepted() {
        let challenge = alice_challenge();
        let nonce = "ab".repeat(16);
        let mac = challenge.rsplit(' ').next().unwrap().to_owned();
        let issued = NOW.0.to_string();
        let expires = (NOW.0 + TTL).to_string();
        let cases: Vec<(usize, String)> = vec![
            (0, "BREAKGLASS-LOGIN-V1".into()),
            (0, "breakglass-login-v0".into()),
            (3, nonce.to_uppercase()),
            (3, nonce[..30].into()),
            (3, format!("{nonce}ab")),
            (3, "g".repeat(32)),
            (4, format!("0{issued}")),
            (4, format!("+{issued}")),
            (4, format!("-{issued}")),
            (4, format!("{issued}.0")),
            (4, "99999999999999999999".into()),
            (4, "9223372036854775808".into()),
            (5, format!("0{expires}")),
            (5, format!("{expires}e0")),
            (6, format!("{mac}=")),
            (6, format!("{}+", &mac[..42])),
            (6, mac[..42].into()),
            (6, "*".repeat(43)),
        ];
        for (index, value) in cases {
            let changed = with_field(&challenge, index, &value);
            assert!(is_malformed(&open_as_alice(&changed)), "{changed}: {:?}", open_as_alice(&changed));
        }
        // Base64url with non-zero trailing bits decodes to the same MAC in a
        // lax decoder; here it is refused.
        let last = mac.as_bytes()[42];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        let sibling = alphabet[pos ^ 1] as char;
        let changed = with_field(&challenge, 6, &format!("{}{sibling}", &mac[..42]));
        assert!(open_as_alice(&changed).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        let challenge = alice_challenge();
        let garbage = [
            String::new(),
            " ".into(),
            "hello".into(),
            "breakglass-login-v1".into(),
            "\0".repeat(100),
            "é".repeat(50),
            format!("{challenge}\n"),
            format!("{challenge}\r\n"),
            format!(" {challenge}"),
            format!("{challenge} "),
            challenge.replacen(' ', "  ", 1),
            challenge.replacen(' ', "\t", 1),
            format!("{challenge} {}", challenge.rsplit(' ').next().unwrap()),
            challenge.replace("alice", "alice alice"),
            challenge.replace("alice", "alïce"),
            "x ".repeat(6) + "x",
        ];
        for g in &garbage {
            let r = open_as_alice(g);
            assert!(is_malformed(&r), "{g:?}: {r:?}");
        }
    }

    #[test]
    fn oversize_challenges_are_refused_before_parsing() {
        let challenge = alice_challenge();
        let padded = format!("{challenge}{}", " ".repeat(MAX_CHALLENGE_BYTES + 1 - challenge.len()));
        assert_eq!(open_as_alice(&padded), Err(ChallengeError::TooLong { len: MAX_CHALLENGE_BYTES + 1 }));
        let huge = "A".repeat(10 * 1024 * 1024);
        assert_eq!(open_as_alice(&huge), Err(ChallengeError::TooLong { len: huge.len() }));
        let exactly = "x".repeat(MAX_CHALLENGE_BYTES);
        assert!(is_malformed(&open_as_alice(&exactly)));
    }

    #[test]
    fn the_key_is_never_shown() {
        let secret = ChallengeKey::from_bytes([0x5a; 32]);
        let debug = format!("{secret:?} {secret:#?}");
        assert_eq!(debug, "ChallengeKey(..) ChallengeKey(..)");
        let secret_forms = [hex::encode([0x5a; 32]), B64URL.encode([0x5a; 32]), "90, 90".to_owned(), "0x5a".to_owned()];
        let challenge = issue(&secret, ORIGIN, "alice", NONCE, NOW, TTL).unwrap();
        let errors = [
            open(&secret, &challenge, "https://other", "alice", NOW),
            open(&secret, &challenge, ORIGIN, "bob", NOW),
            open(&secret, &challenge, ORIGIN, "alice", Timestamp(NOW.0 + TTL)),
            open(&key(), &challenge, ORIGIN, "alice", NOW),
            open(&secret, "garbage", ORIGIN, "alice", NOW),
        ];
        for e in errors {
            let e = e.unwrap_err();
            let shown = format!("{e} {e:?}");
            for secret in &secret_forms {
                assert!(!shown.contains(secret.as_str()), "{shown}");
            }
        }
        // Nor is it derivable from the challenge: the MAC is not the key.
        assert!(!challenge.contains(&B64URL.encode([0x5a; 32])));
    }

    #[test]
    fn the_mac_is_domain_separated() {
        // A plain HMAC of the body, without the domain prefix, is not accepted.
        let challenge = alice_challenge();
        let body = &challenge[..challenge.rfind(' ').unwrap()];
        let mut mac = key().mac();
        mac.update(body.as_bytes());
        let undomained = format!("{body} {}", B64URL.encode(mac.finalize().into_bytes()));
        assert_eq!(open_as_alice(&undomained), Err(ChallengeError::BadMac));
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            ChallengeError::WrongPrincipal { expected: "alice".into(), got: "bob".into() }.to_string(),
            "login challenge was issued for principal \"bob\", not \"alice\""
        );
        assert_eq!(
            ChallengeError::Expired { at: NOW }.to_string(),
            "login challenge expired at 2026-11-18T11:06:40.000Z; ask for a new one"
        );
        assert_eq!(
            ChallengeError::BadMac.to_string(),
            "login challenge was not issued by this server, or it was altered"
        );
    }
}
