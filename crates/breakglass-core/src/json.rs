//! Strict JSON: a document in which no object, at any depth, names a
//! member twice.
//!
//! Security: JSON (RFC 8259) leaves duplicate member names undefined, and
//! readers differ: `serde_json::Value` keeps the last, other parsers keep the
//! first or fail. A signed body with `"status": "resolved", "status":
//! "triggered"` can then mean one thing to the sender's tooling, the
//! signature checker's logs or an auditor, and another to us. The API refuses
//! duplicates because its bodies are typed (serde's derived structs fail on
//! a repeated field); every place that reads untrusted JSON into a
//! [`Value`] instead (CI OIDC tokens, incident webhooks) uses
//! [`from_slice`] here, so the rule is written once.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How the error for a repeated member starts (the member's name follows,
/// quoted and cut to [`MAX_ECHO_CHARS`]).
pub const DUPLICATE_MEMBER: &str = "duplicate member ";
/// Untrusted member names are cut to this many characters in errors.
const MAX_ECHO_CHARS: usize = 64;

/// A JSON value that refused duplicate members while it was read.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v).map(|n| Strict(Value::Number(n))).ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = access.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if out.contains_key(&name) {
                let cut: String = name.chars().take(MAX_ECHO_CHARS).collect();
                return Err(de::Error::custom(format_args!("{DUPLICATE_MEMBER}{cut:?}")));
            }
            let Strict(value) = access.next_value()?;
            out.insert(name, value);
        }
        Ok(Strict(Value::Object(out)))
    }
}

/// Parses `bytes` as JSON, refusing any object that names a member twice,
/// at any depth. serde_json's limits hold (128 levels of nesting); its
/// syntax errors say what was expected and where, without quoting the input.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|Strict(v)| v)
}

/// The quoted member name when `e` is the refusal of a duplicate member.
pub fn duplicate_member(e: &serde_json::Error) -> Option<String> {
    if !e.is_data() {
        return None;
    }
    // The message is ours, then serde_json's " at line L column C".
    let text = e.to_string();
    let name = text.strip_prefix(DUPLICATE_MEMBER)?;
    Some(name.rsplit_once(" at line ").map_or(name, |(name, _)| name).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_every_depth_and_everything_else_reads_as_serde_json_does() {
        for ok in [
            r#"{"a": 1, "b": [1, 2.5, -3, true, null, "x"], "c": {"a": {"a": 2}}}"#,
            r#"[{"id": 1}, {"id": 1}]"#,
            r#""just a string""#,
            "18446744073709551615",
        ] {
            let strict = from_slice(ok.as_bytes()).unwrap();
            let loose: Value = serde_json::from_str(ok).unwrap();
            assert_eq!(strict, loose, "{ok}");
        }
        for (bad, name) in [
            (r#"{"status": "resolved", "status": "triggered"}"#, "\"status\""),
            (r#"{"event": {"data": {"id": "P1", "id": "P2"}}}"#, "\"id\""),
            (r#"[1, {"x": {"y": [{"k": 1, "k": 2}]}}]"#, "\"k\""),
        ] {
            let err = from_slice(bad.as_bytes()).unwrap_err();
            assert!(err.is_data(), "{bad}: {err}");
            assert!(err.to_string().starts_with(&format!("{DUPLICATE_MEMBER}{name}")), "{bad}: {err}");
            assert_eq!(duplicate_member(&err).as_deref(), Some(name));
        }
        // The nesting limit still holds.
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(from_slice(deep.as_bytes()).unwrap_err().to_string().contains("recursion limit"));
    }
}
