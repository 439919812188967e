//! Reading a push body: strict JSON, objects read member by member with the
//! path of each for errors, and the checks that bound and clean ids, names,
//! object ids, ref names and paths.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    Forge, ForgeCommit, MAX_BODY_BYTES, MAX_COMMITS, MAX_FILES, MAX_MESSAGE_BYTES, MAX_NAME_CHARS, MAX_PATH_BYTES,
    ParseError, echo,
};
use crate::push_input::{check_refname, is_oid};
use crate::text::is_unsafe_char;
use crate::time::Timestamp;

pub(super) fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The body as strict JSON, after the size check.
pub(super) fn parse_json(forge: Forge, body: &[u8]) -> Result<Value, ParseError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge { forge, len: body.len(), max: MAX_BODY_BYTES });
    }
    crate::signed::strict_json(body).map_err(|detail| ParseError::NotJson { forge, detail })
}

use crate::signed::describe;

/// A JSON object being read, with the path that names it in errors.
pub(super) struct Obj<'a> {
    forge: Forge,
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    pub(super) fn root(forge: Forge, value: &'a Value) -> Result<Obj<'a>, ParseError> {
        Obj::new(forge, String::new(), value)
    }

    fn new(forge: Forge, path: String, value: &'a Value) -> Result<Obj<'a>, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj { forge, path, map }),
            other => Err(ParseError::InvalidField {
                forge,
                field: if path.is_empty() { "(the body)".into() } else { path },
                problem: format!("expected a JSON object, found {}", describe(other)),
            }),
        }
    }

    pub(super) fn field(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// The member, or `None` when it is absent or null.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn missing(&self, key: &str) -> ParseError {
        ParseError::MissingField { forge: self.forge, field: self.field(key) }
    }

    pub(super) fn invalid(&self, key: &str, problem: impl Into<String>) -> ParseError {
        ParseError::InvalidField { forge: self.forge, field: self.field(key), problem: problem.into() }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> ParseError {
        self.invalid(key, format!("expected {expected}, found {}", describe(found)))
    }

    pub(super) fn str_opt(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    pub(super) fn str_req(&self, key: &str) -> Result<&'a str, ParseError> {
        self.str_opt(key)?.ok_or_else(|| self.missing(key))
    }

    pub(super) fn bool_req(&self, key: &str) -> Result<bool, ParseError> {
        match self.get(key) {
            None => Err(self.missing(key)),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong_type(key, "a boolean", other)),
        }
    }

    pub(super) fn u64_opt(&self, key: &str) -> Result<Option<u64>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                self.invalid(key, format!("expected a non-negative integer, found number {}", echo(&n.to_string())))
            }),
            Some(other) => Err(self.wrong_type(key, "a non-negative integer", other)),
        }
    }

    pub(super) fn u64_req(&self, key: &str) -> Result<u64, ParseError> {
        self.u64_opt(key)?.ok_or_else(|| self.missing(key))
    }

    pub(super) fn obj_opt(&self, key: &str) -> Result<Option<Obj<'a>>, ParseError> {
        self.get(key).map(|v| Obj::new(self.forge, self.field(key), v)).transpose()
    }

    pub(super) fn obj_req(&self, key: &str) -> Result<Obj<'a>, ParseError> {
        self.obj_opt(key)?.ok_or_else(|| self.missing(key))
    }

    fn array_opt(&self, key: &str, max: usize) -> Result<&'a [Value], ParseError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) if items.len() > max => {
                Err(self.invalid(key, format!("{} entries, more than the {max} accepted", items.len())))
            }
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.wrong_type(key, "an array", other)),
        }
    }

    /// The objects of an array, each with its path; absent or null is empty.
    pub(super) fn objects(&self, key: &str, max: usize) -> Result<Vec<Obj<'a>>, ParseError> {
        self.array_opt(key, max)?
            .iter()
            .enumerate()
            .map(|(idx, v)| Obj::new(self.forge, format!("{}[{idx}]", self.field(key)), v))
            .collect()
    }

    /// A list of file paths; absent or null is empty.
    pub(super) fn paths(&self, key: &str) -> Result<Vec<String>, ParseError> {
        self.array_opt(key, MAX_FILES)?
            .iter()
            .enumerate()
            .map(|(idx, v)| {
                let at = format!("{key}[{idx}]");
                match v {
                    Value::String(s) if s.is_empty() => Err(self.invalid(&at, "must not be empty")),
                    Value::String(s) if s.len() > MAX_PATH_BYTES => {
                        Err(self.invalid(&at, format!("longer than {MAX_PATH_BYTES} bytes")))
                    }
                    Value::String(s) if s.contains('\0') => Err(self.invalid(&at, "contains a NUL character")),
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong_type(&at, "a string", other)),
                }
            })
            .collect()
    }

    /// A name, login, id or e-mail: not blank, no control characters, bounded.
    pub(super) fn name_req(&self, key: &str) -> Result<String, ParseError> {
        let s = self.str_req(key)?;
        self.clean_name(key, s)
    }

    /// As [`Obj::name_req`], but absent, null and blank are `None`.
    pub(super) fn name_opt(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.str_opt(key)? {
            Some(s) if !s.trim().is_empty() => self.clean_name(key, s).map(Some),
            _ => Ok(None),
        }
    }

    fn clean_name(&self, key: &str, s: &str) -> Result<String, ParseError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(self.invalid(key, "must not be empty"));
        }
        if t.chars().any(is_unsafe_char) {
            return Err(self.invalid(key, format!("contains control characters: {:?}", echo(t))));
        }
        if t.chars().count() > MAX_NAME_CHARS {
            return Err(self.invalid(key, format!("longer than {MAX_NAME_CHARS} characters: {:?}", echo(t))));
        }
        Ok(t.to_owned())
    }

    /// A git object id: hex of SHA-1 or SHA-256 length, lower case.
    pub(super) fn oid_req(&self, key: &str) -> Result<String, ParseError> {
        let s = self.str_req(key)?;
        if !is_oid(s) {
            return Err(self.invalid(
                key,
                format!("expected a git object id (40 or 64 lower-case hex digits), found {:?}", echo(s)),
            ));
        }
        Ok(s.to_owned())
    }

    /// A full git ref name by git's rules.
    pub(super) fn ref_req(&self, key: &str) -> Result<String, ParseError> {
        let s = self.str_req(key)?;
        check_refname(s).map_err(|why| self.invalid(key, why))?;
        Ok(s.to_owned())
    }

    pub(super) fn time_opt(&self, key: &str) -> Result<Option<Timestamp>, ParseError> {
        let Some(s) = self.str_opt(key)? else { return Ok(None) };
        if s.is_empty() {
            return Ok(None);
        }
        Timestamp::parse(s).map(Some).map_err(|_| {
            self.invalid(key, format!("expected an RFC 3339 time like 2026-11-21T12:00:00Z, found {:?}", echo(s)))
        })
    }

    pub(super) fn message_req(&self, key: &str) -> Result<String, ParseError> {
        let s = self.str_req(key)?;
        if s.len() > MAX_MESSAGE_BYTES {
            return Err(self.invalid(key, format!("longer than {MAX_MESSAGE_BYTES} bytes")));
        }
        Ok(s.to_owned())
    }
}

/// An e-mail as forges show it: a bounded name, `None` when GitLab hides it.
pub(super) fn email(obj: &Obj<'_>, key: &str) -> Result<Option<String>, ParseError> {
    Ok(obj.name_opt(key)?.filter(|e| e != "[REDACTED]"))
}

/// The `commits` array in the layout GitHub, GitLab and Gitea share: `id`,
/// `message`, `timestamp`, `author{name,email}`, `added`, `removed`,
/// `modified`.
pub(super) fn commits(root: &Obj<'_>) -> Result<Vec<ForgeCommit>, ParseError> {
    root.objects("commits", MAX_COMMITS)?
        .iter()
        .map(|c| {
            let author = c.obj_opt("author")?;
            let (author_name, author_email) = match &author {
                Some(a) => (a.name_opt("name")?, email(a, "email")?),
                None => (None, None),
            };
            Ok(ForgeCommit {
                id: c.oid_req("id")?,
                message: c.message_req("message")?,
                timestamp: c.time_opt("timestamp")?,
                author_name,
                author_email,
                added: c.paths("added")?,
                removed: c.paths("removed")?,
                modified: c.paths("modified")?,
            })
        })
        .collect()
}
