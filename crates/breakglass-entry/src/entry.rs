//! Audit log entries and their canonical encoding.
//!
//! An entry is canonical JSON: an object with sorted keys, no insignificant
//! whitespace, integers only, strings escaped exactly as `serde_json` escapes
//! them, at most 65,535 bytes (the tlog-tiles entry bundle limit). Version 1
//! carries `v`, `index`, `time`, `actor`, `kind`, `grant` (when there is one)
//! and `data`:
//!
//! ```text
//! {"actor":"alice","data":{"reason":"INC-42"},"grant":"g_01","index":7,"kind":"grant.requested","time":"2026-11-21T12:00:00.000Z","v":1}
//! ```
//!
//! Security: actors choose much of what an entry holds (reasons, names,
//! event data), and auditors read it. Secrets never enter an
//! entry in clear; [`SecretDigester`] turns a secret into a keyed HMAC digest
//! that an auditor holding the key can match, and nobody else can reverse.
//! Decoding is strict: bytes that are not exactly the canonical encoding of
//! what they decode to are rejected, so one entry has one encoding.

use std::borrow::Cow;
use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::time::Timestamp;

/// The largest encoded entry, in bytes.
pub const MAX_ENTRY_BYTES: usize = 65_535;
/// The entry format version written by this code.
pub const ENTRY_VERSION: u64 = 1;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry is {size} bytes, over the limit of {MAX_ENTRY_BYTES} bytes")]
    TooLarge { size: usize },
    #[error("invalid entry field {field}: {problem}")]
    InvalidField { field: &'static str, problem: String },
    #[error("entry is not canonical JSON: {0}")]
    NotCanonical(String),
    #[error("unsupported entry version {0}")]
    UnsupportedVersion(u64),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> EntryError {
    EntryError::InvalidField { field, problem: problem.into() }
}

/// The wire shape of an entry, for decoding without building a JSON tree of the envelope.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    v: u64,
    index: u64,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    grant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
}

/// What a caller submits; the sequencer assigns index and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryDraft {
    pub actor: String,
    pub kind: String,
    pub grant: Option<String>,
    /// Must be a JSON object.
    pub data: Value,
}

impl EntryDraft {
    pub fn new(actor: impl Into<String>, kind: impl Into<String>, data: Value) -> EntryDraft {
        EntryDraft { actor: actor.into(), kind: kind.into(), grant: None, data }
    }

    pub fn with_grant(mut self, grant: impl Into<String>) -> EntryDraft {
        self.grant = Some(grant.into());
        self
    }

    /// Checks everything that does not depend on the index and time,
    /// including the size the entry will have once sequenced.
    pub fn validate(&self) -> Result<(), EntryError> {
        // The widest index and a four-digit-year time give the largest encoding.
        Entry::sequence(self.clone(), u64::MAX, Timestamp(253_402_300_799_999)).encode().map(|_| ())
    }
}

/// A sequenced entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub time: Timestamp,
    pub actor: String,
    pub kind: String,
    pub grant: Option<String>,
    pub data: Value,
}

fn check_kind(kind: &str) -> Result<(), EntryError> {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid("kind", format!("{kind:?} must be 1-64 of [a-z0-9._-], starting with a letter")))
    }
}

fn check_label(field: &'static str, value: &str, max: usize) -> Result<(), EntryError> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(invalid(field, format!("{value:?} must be 1-{max} bytes with no control characters")));
    }
    Ok(())
}

impl Entry {
    pub fn sequence(draft: EntryDraft, index: u64, time: Timestamp) -> Entry {
        Entry { index, time, actor: draft.actor, kind: draft.kind, grant: draft.grant, data: draft.data }
    }

    /// The canonical bytes of this entry: what is hashed into the tree.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        check_label("actor", &self.actor, 256)?;
        check_kind(&self.kind)?;
        if let Some(g) = &self.grant {
            check_label("grant", g, 128)?;
        }
        if !self.data.is_object() {
            return Err(invalid("data", "must be a JSON object"));
        }
        // The fields in sorted key order: actor, data, grant, index, kind, time, v.
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"actor\":");
        write_canonical(&Value::String(self.actor.clone()), &mut out).map_err(|e| invalid("actor", e))?;
        out.extend_from_slice(b",\"data\":");
        write_canonical(&self.data, &mut out).map_err(|e| invalid("data", e))?;
        if let Some(g) = &self.grant {
            out.extend_from_slice(b",\"grant\":");
            serde_json::to_writer(&mut out, g).map_err(|e| invalid("grant", e.to_string()))?;
        }
        let _ = write!(out, ",\"index\":{},\"kind\":", self.index);
        serde_json::to_writer(&mut out, &self.kind).map_err(|e| invalid("kind", e.to_string()))?;
        let _ = write!(out, ",\"time\":\"{}\",\"v\":{ENTRY_VERSION}}}", self.time.to_rfc3339());
        if out.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge { size: out.len() });
        }
        Ok(out)
    }

    /// Decodes entry bytes, insisting they are canonical.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge { size: bytes.len() });
        }
        let wire: Wire<'_> = serde_json::from_slice(bytes).map_err(|e| EntryError::NotCanonical(e.to_string()))?;
        if wire.v != ENTRY_VERSION {
            return Err(EntryError::UnsupportedVersion(wire.v));
        }
        let time = Timestamp::parse(&wire.time).map_err(|e| invalid("time", e.to_string()))?;
        let data: Value = serde_json::from_str(wire.data.get()).map_err(|e| invalid("data", e.to_string()))?;
        let entry = Entry {
            index: wire.index,
            time,
            actor: wire.actor.into_owned(),
            kind: wire.kind.into_owned(),
            grant: wire.grant.map(Cow::into_owned),
            data,
        };
        if entry.encode()? != bytes {
            return Err(EntryError::NotCanonical("bytes differ from the canonical encoding".into()));
        }
        Ok(entry)
    }

    /// The JSON value of this entry, for display.
    pub fn to_json(&self) -> Value {
        serde_json::from_slice(&self.encode().unwrap_or_default()).unwrap_or(Value::Null)
    }
}

/// Writes `value` as canonical JSON: sorted keys, no whitespace, integers only.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                return Err(format!("number {n} is not an integer (floats have no canonical form here)"));
            }
        }
        Value::String(s) => serde_json::to_writer(&mut *out, s).map_err(|e| e.to_string())?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map order depends on crate features.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).map_err(|e| e.to_string())?;
                out.push(b':');
                write_canonical(&map[key], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Turns secret values (tokens, signatures, webhook secrets) into keyed
/// digests, so the log can record that "the same token was used twice"
/// without ever holding the token.
#[derive(Clone)]
pub struct SecretDigester {
    key: [u8; 32],
}

impl std::fmt::Debug for SecretDigester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigester(..)")
    }
}

impl SecretDigester {
    pub fn new(key: [u8; 32]) -> SecretDigester {
        SecretDigester { key }
    }

    /// `hmac-sha256:<base64>` of `purpose || 0x00 || secret`. The purpose
    /// keeps a token digest from matching, say, a webhook secret digest.
    pub fn digest(&self, purpose: &str, secret: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(secret);
        format!("hmac-sha256:{}", B64.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(data: Value) -> Entry {
        Entry::sequence(
            EntryDraft::new("alice", "grant.requested", data).with_grant("g_01"),
            7,
            Timestamp::parse("2026-11-21T12:00:00Z").unwrap(),
        )
    }

    #[test]
    fn encoding_is_canonical_and_round_trips() {
        let e = entry(json!({"z": 1, "a": {"y": [true, null, "x\n"], "b": -3}}));
        let bytes = e.encode().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"actor":"alice","data":{"a":{"b":-3,"y":[true,null,"x\n"]},"z":1},"grant":"g_01","index":7,"kind":"grant.requested","time":"2026-11-21T12:00:00.000Z","v":1}"#
        );
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
    }

    #[test]
    fn non_canonical_bytes_are_rejected() {
        let bytes = entry(json!({})).encode().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        for bad in [
            text.replace(',', ", "),
            text.replace(r#""v":1"#, r#""v":1,"extra":0"#),
            text.replace(r#""v":1"#, r#""v":2"#),
            text.replace("alice", "al\\u0069ce"),
            format!(" {text}"),
            text.replace(r#""index":7"#, r#""index":7.0"#),
        ] {
            assert!(Entry::decode(bad.as_bytes()).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn fields_are_validated() {
        assert!(matches!(entry(json!([1])).encode(), Err(EntryError::InvalidField { field: "data", .. })));
        assert!(matches!(entry(json!({"f": 1.5})).encode(), Err(EntryError::InvalidField { field: "data", .. })));
        let mut e = entry(json!({}));
        e.kind = "Grant Requested".into();
        assert!(matches!(e.encode(), Err(EntryError::InvalidField { field: "kind", .. })));
        e.kind = "ok".into();
        e.actor = String::new();
        assert!(matches!(e.encode(), Err(EntryError::InvalidField { field: "actor", .. })));
    }

    #[test]
    fn size_limit_is_enforced_exactly() {
        let base = entry(json!({"pad": ""})).encode().unwrap().len();
        let fits = entry(json!({"pad": "x".repeat(MAX_ENTRY_BYTES - base)}));
        assert_eq!(fits.encode().unwrap().len(), MAX_ENTRY_BYTES);
        let over = entry(json!({"pad": "x".repeat(MAX_ENTRY_BYTES - base + 1)}));
        assert_eq!(over.encode(), Err(EntryError::TooLarge { size: MAX_ENTRY_BYTES + 1 }));
    }

    #[test]
    fn secrets_are_digested_not_stored() {
        let d = SecretDigester::new([9; 32]);
        let token = "bg_secret_token_value";
        let digest = d.digest("api-token", token.as_bytes());
        assert!(digest.starts_with("hmac-sha256:"));
        assert!(!digest.contains(token));
        assert_eq!(digest, d.digest("api-token", token.as_bytes()));
        assert_ne!(digest, d.digest("webhook", token.as_bytes()));
        assert_ne!(digest, SecretDigester::new([8; 32]).digest("api-token", token.as_bytes()));
        let bytes = entry(json!({ "token": digest })).encode().unwrap();
        assert!(!String::from_utf8(bytes).unwrap().contains(token));
    }
}
