//! What every incident parser shares: reading a JSON object with the path
//! of each field for errors, and the checks that bound and clean ids, names,
//! e-mails, URLs and titles.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{MAX_BODY_BYTES, MAX_ID_CHARS, MAX_LIST_ITEMS, MAX_NAME_CHARS, MAX_TITLE_CHARS, MAX_URL_CHARS};
use super::{ParseError, Responder, Source, echo};
use crate::text::is_unsafe_char;
use crate::time::Timestamp;

/// A JSON object being read, with the path that names it in errors.
pub(super) struct Obj<'a> {
    pub(super) provider: Source,
    pub(super) path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    pub(super) fn new(provider: Source, path: String, value: &'a Value) -> Result<Obj<'a>, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj { provider, path, map }),
            other => Err(invalid(
                provider,
                if path.is_empty() { "(the body)" } else { &path },
                format!("expected a JSON object, found {}", describe(other)),
            )),
        }
    }

    pub(super) fn field(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// The member, or `None` when it is absent or null.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn missing(&self, key: &str) -> ParseError {
        ParseError::MissingField { provider: self.provider, field: self.field(key) }
    }

    pub(super) fn invalid(&self, key: &str, problem: impl Into<String>) -> ParseError {
        invalid(self.provider, &self.field(key), problem)
    }

    pub(super) fn str_opt(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.invalid(key, format!("expected a string, found {}", describe(other)))),
        }
    }

    pub(super) fn str_req(&self, key: &str) -> Result<&'a str, ParseError> {
        self.str_opt(key)?.ok_or_else(|| self.missing(key))
    }

    pub(super) fn obj_opt(&self, key: &str) -> Result<Option<Obj<'a>>, ParseError> {
        self.get(key).map(|v| Obj::new(self.provider, self.field(key), v)).transpose()
    }

    pub(super) fn obj_req(&self, key: &str) -> Result<Obj<'a>, ParseError> {
        self.obj_opt(key)?.ok_or_else(|| self.missing(key))
    }

    pub(super) fn array_opt(&self, key: &str) -> Result<&'a [Value], ParseError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.invalid(key, format!("expected an array, found {}", describe(other)))),
        }
    }

    /// The members of an array of strings.
    pub(super) fn strings_opt(&self, key: &str) -> Result<Vec<&'a str>, ParseError> {
        self.array_opt(key)?
            .iter()
            .enumerate()
            .map(|(idx, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                other => {
                    Err(self.invalid(&format!("{key}[{idx}]"), format!("expected a string, found {}", describe(other))))
                }
            })
            .collect()
    }

    /// The objects of an array, each with its path.
    pub(super) fn objects_opt(&self, key: &str) -> Result<Vec<Obj<'a>>, ParseError> {
        self.array_opt(key)?
            .iter()
            .enumerate()
            .map(|(idx, v)| Obj::new(self.provider, format!("{}[{idx}]", self.field(key)), v))
            .collect()
    }

    /// A string-to-string map (Alertmanager labels and annotations).
    pub(super) fn labels_opt(&self, key: &str) -> Result<Vec<(&'a str, &'a str)>, ParseError> {
        let Some(obj) = self.obj_opt(key)? else { return Ok(Vec::new()) };
        obj.map
            .iter()
            .map(|(name, v)| match v {
                Value::String(s) => Ok((name.as_str(), s.as_str())),
                // Member names are untrusted here: cut them in the path.
                other => Err(obj.invalid(&echo(name), format!("expected a string, found {}", describe(other)))),
            })
            .collect()
    }

    pub(super) fn int_opt(&self, key: &str) -> Result<Option<i64>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| self.invalid(key, format!("expected an integer, found number {n}")))
            }
            Some(other) => Err(self.invalid(key, format!("expected an integer, found {}", describe(other)))),
        }
    }

    pub(super) fn time_opt(&self, key: &str) -> Result<Option<Timestamp>, ParseError> {
        let Some(s) = self.str_opt(key)? else { return Ok(None) };
        Timestamp::parse(s).map(Some).map_err(|_| {
            self.invalid(key, format!("expected an RFC 3339 time like 2026-11-21T12:00:00Z, found {:?}", echo(s)))
        })
    }

    pub(super) fn id_req(&self, key: &str) -> Result<String, ParseError> {
        clean_id(self.provider, &self.field(key), self.str_req(key)?)
    }

    pub(super) fn name_opt(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.str_opt(key)? {
            Some(s) if !s.trim().is_empty() => clean_name(self.provider, &self.field(key), s).map(Some),
            _ => Ok(None),
        }
    }

    pub(super) fn url_opt(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.str_opt(key)? {
            Some(s) if !s.trim().is_empty() => clean_url(self.provider, &self.field(key), s).map(Some),
            _ => Ok(None),
        }
    }
}

pub(super) fn invalid(provider: Source, field: &str, problem: impl Into<String>) -> ParseError {
    ParseError::InvalidField { provider, field: field.to_owned(), problem: problem.into() }
}

pub(super) use crate::signed::describe;

/// The body as JSON, after the size check.
pub(super) fn parse_json(provider: Source, body: &[u8]) -> Result<Value, ParseError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge { provider, len: body.len(), max: MAX_BODY_BYTES });
    }
    crate::signed::strict_json(body).map_err(|detail| ParseError::NotJson { provider, detail })
}

pub(super) fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Control characters, and the invisible format characters (zero-width
/// spaces and joiners, bidirectional overrides, the BOM) that can make one
/// name look like another (the one definition of those is in [`crate::text`]).
pub(super) fn has_control(s: &str) -> bool {
    s.chars().any(is_unsafe_char)
}

/// An incident or event id: not blank, no control characters, bounded.
pub(super) fn clean_id(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    if s.trim().is_empty() {
        return Err(invalid(provider, field, "must not be empty"));
    }
    if has_control(s) {
        return Err(invalid(provider, field, format!("contains control characters: {:?}", echo(s))));
    }
    if s.chars().count() > MAX_ID_CHARS {
        return Err(invalid(provider, field, format!("longer than {MAX_ID_CHARS} characters: {:?}", echo(s))));
    }
    Ok(s.to_owned())
}

/// A service or responder name, e-mail or id: trimmed, not empty, no control
/// characters, bounded. Never cut: a shortened e-mail could be someone else's.
pub(super) fn clean_name(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(invalid(provider, field, "must not be empty"));
    }
    if has_control(t) {
        return Err(invalid(provider, field, format!("contains control characters: {:?}", echo(t))));
    }
    if t.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(provider, field, format!("longer than {MAX_NAME_CHARS} characters: {:?}", echo(t))));
    }
    Ok(t.to_owned())
}

/// An e-mail: a name with an `@` and no spaces.
pub(super) fn clean_email(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    let t = clean_name(provider, field, s)?;
    let well_formed = t.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !t.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(invalid(provider, field, format!("not an e-mail address: {:?}", echo(&t))));
    }
    Ok(t)
}

/// An http(s) URL without spaces or control characters, bounded.
pub(super) fn clean_url(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    let t = s.trim();
    let lower = t.get(..8).unwrap_or(t).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(invalid(provider, field, format!("not an http or https URL: {:?}", echo(t))));
    }
    if t.chars().any(|c| is_unsafe_char(c) || c.is_whitespace()) {
        return Err(invalid(provider, field, format!("contains spaces or control characters: {:?}", echo(t))));
    }
    if t.chars().count() > MAX_URL_CHARS {
        return Err(invalid(provider, field, format!("longer than {MAX_URL_CHARS} characters: {:?}", echo(t))));
    }
    Ok(t.to_owned())
}

/// A title for display: control and invisible format characters become
/// spaces, runs of spaces one,
/// cut to [`MAX_TITLE_CHARS`]. `None` when nothing is left.
pub(super) fn clean_title(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut n_chars = 0;
    for word in s.split(|c: char| is_unsafe_char(c) || c.is_whitespace()).filter(|w| !w.is_empty()) {
        for c in (!out.is_empty()).then_some(' ').into_iter().chain(word.chars()) {
            if n_chars == MAX_TITLE_CHARS {
                return Some(out);
            }
            out.push(c);
            n_chars += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A responder from a provider login: an e-mail if it has an `@`, else a name.
pub(super) fn responder_from_login(
    provider: Source,
    field: &str,
    id: Option<String>,
    login: Option<&str>,
) -> Result<Option<Responder>, ParseError> {
    let login = login.map(str::trim).filter(|l| !l.is_empty());
    let (email, name) = match login {
        Some(l) if l.contains('@') => (Some(clean_email(provider, field, l)?), None),
        Some(l) => (None, Some(clean_name(provider, field, l)?)),
        None => (None, None),
    };
    if id.is_none() && email.is_none() && name.is_none() {
        return Ok(None);
    }
    Ok(Some(Responder { id, email, name }))
}

/// Adds `item` unless it is already there.
pub(super) fn push_distinct<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Refuses lists longer than [`MAX_LIST_ITEMS`].
pub(super) fn check_list_len<T>(provider: Source, field: &str, list: &[T]) -> Result<(), ParseError> {
    if list.len() > MAX_LIST_ITEMS {
        return Err(invalid(
            provider,
            field,
            format!("{} distinct entries, more than the {MAX_LIST_ITEMS} accepted", list.len()),
        ));
    }
    Ok(())
}

/// `P1`..`P5` (any case, surrounding spaces ignored) as 1..5.
pub(super) fn priority_level(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix('P').or_else(|| t.strip_prefix('p'))?;
    match digits {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        "4" => Some(4),
        "5" => Some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_levels() {
        for (input, expect) in [
            ("P1", Some(1)),
            ("p5", Some(5)),
            (" P3 ", Some(3)),
            ("P0", None),
            ("P6", None),
            ("P10", None),
            ("SEV1", None),
            ("", None),
        ] {
            assert_eq!(priority_level(input), expect, "{input:?}");
        }
    }

    #[test]
    fn titles_are_cleaned_and_cut() {
        assert_eq!(clean_title("  a\u{1b}[2J  b\nc "), Some("a [2J b c".to_owned()));
        assert_eq!(clean_title(" \t\n"), None);
        let long = "x".repeat(MAX_TITLE_CHARS + 10);
        assert_eq!(clean_title(&long).map(|t| t.chars().count()), Some(MAX_TITLE_CHARS));
    }
}
