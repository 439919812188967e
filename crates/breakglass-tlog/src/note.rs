//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys (type 0x01),
//! compatible with Go's `golang.org/x/mod/sumdb/note`.
//!
//! Security: a note arrives as text from anyone, with any signatures on it;
//! a checkpoint is trusted only through [`open`], which rejects a note unless a
//! known key's signature verifies, and rejects it outright if any known key's
//! signature fails. Key names and key ids are matched together, as the
//! specification requires; unknown signatures are ignored.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte for Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Notes larger than this are refused before any parsing.
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// At most this many signature lines are examined.
pub const MAX_SIGNATURES: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    MalformedKey(String),
    #[error("invalid key name {0:?}: must be non-empty with no spaces or '+'")]
    InvalidKeyName(String),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("note text is not valid: {0}")]
    InvalidText(&'static str),
    #[error("signature by {name} (key id {id:08x}) does not verify")]
    BadSignature { name: String, id: u32 },
    #[error("note has no signature from a trusted key")]
    Unverified,
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::InvalidKeyName(name.to_owned()));
    }
    Ok(())
}

/// A note signer: a key name and an Ed25519 private key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "NoteSigner({}+{:08x})", self.name, self.id)
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(NoteSigner { name: name.to_owned(), id, key })
    }

    /// Parses the Go/C2SP private key string `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    pub fn parse(skey: &str) -> Result<NoteSigner, NoteError> {
        let bad = |why: &str| NoteError::MalformedKey(format!("signer key: {why}"));
        let rest = skey.trim_end().strip_prefix("PRIVATE+KEY+").ok_or_else(|| bad("missing PRIVATE+KEY+ prefix"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+name+id+key"));
        };
        let bytes = B64.decode(material).map_err(|_| bad("key material is not base64"))?;
        let [alg, seed @ ..] = bytes.as_slice() else { return Err(bad("empty key material")) };
        if *alg != ALG_ED25519 {
            return Err(bad("unsupported signature type"));
        }
        let seed: &[u8; 32] = seed.try_into().map_err(|_| bad("Ed25519 seed must be 32 bytes"))?;
        let signer = NoteSigner::from_seed(name, seed)?;
        if id_hex.len() != 8 || format!("{:08x}", signer.id) != id_hex {
            return Err(bad("key id does not match the key"));
        }
        Ok(signer)
    }

    /// The private key string, for storing in a 0600 file.
    pub fn to_private_string(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.id, B64.encode(material))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// Signs `text` (which must end in a newline) and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(blob)))
    }
}

/// A note verifier key: `<name>+<hex id>+<base64(0x01 || public key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let bad = |why: &str| NoteError::MalformedKey(format!("verifier key {vkey:?}: {why}"));
        let vkey = vkey.trim();
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+id+key"));
        };
        check_name(name)?;
        let bytes = B64.decode(material).map_err(|_| bad("key material is not base64"))?;
        let [alg, public @ ..] = bytes.as_slice() else { return Err(bad("empty key material")) };
        if *alg != ALG_ED25519 {
            return Err(bad("unsupported signature type (only Ed25519, 0x01)"));
        }
        let public: &[u8; 32] = public.try_into().map_err(|_| bad("Ed25519 public key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(public).map_err(|_| bad("not a valid Ed25519 point"))?;
        if key.is_weak() {
            return Err(bad("small-order Ed25519 key"));
        }
        let id = key_id(name, public);
        if id_hex.len() != 8 || format!("{id:08x}") != id_hex {
            return Err(bad("key id does not match the key"));
        }
        Ok(NoteVerifier { name: name.to_owned(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn public_key(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(material))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText("text must end in a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::InvalidText("text contains control characters"));
    }
    Ok(())
}

/// A note whose signature by a trusted key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The note text, including its final newline.
    pub text: String,
    /// Names of the trusted keys whose signatures verified.
    pub verified_by: Vec<String>,
}

/// A signature line: the key name and the base64 signature.
pub type SignatureLine<'a> = (&'a str, &'a str);

/// Splits a signed note into its text and its signature lines without
/// checking anything cryptographic.
pub fn split(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::Malformed("note too large"));
    }
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("note contains control characters"));
    }
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed("note does not end in a newline"));
    }
    let Some(split_at) = note.rfind("\n\n") else {
        return Err(NoteError::Malformed("no blank line before the signatures"));
    };
    let text = &note[..=split_at];
    let sigs = &note[split_at + 2..];
    let mut out = Vec::new();
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(NoteError::Malformed("signature line does not start with an em dash"));
        };
        let Some((name, sig)) = rest.split_once(' ') else {
            return Err(NoteError::Malformed("signature line has no signature"));
        };
        if name.is_empty() || sig.is_empty() || sig.contains(' ') {
            return Err(NoteError::Malformed("malformed signature line"));
        }
        out.push((name, sig));
        if out.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
    }
    if out.is_empty() {
        return Err(NoteError::Malformed("no signatures"));
    }
    Ok((text, out))
}

/// Verifies a signed note against trusted keys and returns its text.
pub fn open(note: &str, trusted: &[NoteVerifier]) -> Result<Opened, NoteError> {
    let (text, sigs) = split(note)?;
    let mut verified_by = Vec::new();
    for (name, sig_b64) in sigs {
        let Ok(blob) = B64.decode(sig_b64) else {
            return Err(NoteError::Malformed("signature is not base64"));
        };
        if blob.len() < 4 {
            return Err(NoteError::Malformed("signature too short"));
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let Some(key) = trusted.iter().find(|k| k.name == name && k.id == id) else {
            continue; // Unknown keys are ignored, as the specification requires.
        };
        let ok = <[u8; 64]>::try_from(&blob[4..])
            .map(|s| ed25519_dalek::Signature::from_bytes(&s))
            .is_ok_and(|s| key.key.verify_strict(text.as_bytes(), &s).is_ok());
        if !ok {
            return Err(NoteError::BadSignature { name: name.to_owned(), id });
        }
        verified_by.push(name.to_owned());
    }
    if verified_by.is_empty() {
        return Err(NoteError::Unverified);
    }
    Ok(Opened { text: text.to_owned(), verified_by })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of golang.org/x/mod/sumdb/note: Ed25519 is deterministic,
    // so our signer must reproduce Go's note byte for byte.
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn matches_go_sumdb_note_vector() {
        let signer = NoteSigner::parse(SKEY).unwrap();
        assert_eq!(signer.to_private_string(), SKEY);
        assert_eq!(signer.verifier().to_string(), VKEY);
        assert_eq!(signer.sign(TEXT).unwrap(), NOTE);
        let v = NoteVerifier::parse(VKEY).unwrap();
        let opened = open(NOTE, &[v]).unwrap();
        assert_eq!(opened.text, TEXT);
        assert_eq!(opened.verified_by, vec!["PeterNeumann"]);
    }

    #[test]
    fn tampered_notes_are_rejected() {
        let v = NoteVerifier::parse(VKEY).unwrap();
        let changed = NOTE.replace("cryptography", "cryptographY");
        assert_eq!(
            open(&changed, std::slice::from_ref(&v)),
            Err(NoteError::BadSignature { name: "PeterNeumann".into(), id: 0xc74f20a3 })
        );
        // Signed by another key with the same name: unknown, so unverified.
        let other = NoteSigner::from_seed("PeterNeumann", &[7; 32]).unwrap();
        assert_eq!(open(&other.sign(TEXT).unwrap(), std::slice::from_ref(&v)), Err(NoteError::Unverified));
        // No trusted keys at all.
        assert_eq!(open(NOTE, &[]), Err(NoteError::Unverified));
        // Structural damage.
        for bad in [
            "",
            TEXT,
            &NOTE[..NOTE.len() - 1],
            &NOTE.replace('\u{2014}', "-"),
            &NOTE.replace("\n\n", "\n\r\n"),
            &format!("{NOTE}garbage\n"),
        ] {
            assert!(open(bad, std::slice::from_ref(&v)).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn key_strings_are_checked() {
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(NoteVerifier::parse("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a3+AhpcZ").is_err());
        assert!(NoteVerifier::parse("PeterNeumann").is_err());
        assert!(
            NoteSigner::parse("PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
                .is_err()
        );
        assert!(NoteSigner::from_seed("a+b", &[1; 32]).is_err());
        assert!(NoteSigner::from_seed("", &[1; 32]).is_err());
    }

    #[test]
    fn text_must_be_well_formed() {
        let s = NoteSigner::from_seed("example.com/log", &[1; 32]).unwrap();
        assert!(s.sign("no newline").is_err());
        assert!(s.sign("tab\there\n").is_err());
        assert!(format!("{s:?}").contains("example.com/log"));
        assert!(!format!("{s:?}").contains(&B64.encode([1u8; 32])));
    }
}
