//! Comparing a documented example with a fake's answer by shape: the same
//! keys with the same JSON types (shared by the GitHub and GitLab fixtures).

use serde_json::Value;

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The differences in shape between a documented example and an answer.
/// `extra` are keys the answer may have beyond the example; a `null` on
/// either side matches anything (nullable fields).
pub fn diff(doc: &Value, got: &Value, at: &str, extra: &[&str], out: &mut Vec<String>) {
    match (doc, got) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(d), Value::Object(g)) => {
            for (k, dv) in d {
                match g.get(k) {
                    Some(gv) => diff(dv, gv, &format!("{at}.{k}"), extra, out),
                    None => out.push(format!("{at}.{k} is missing")),
                }
            }
            for k in g.keys().filter(|k| !d.contains_key(*k) && !extra.contains(&k.as_str())) {
                out.push(format!("{at}.{k} is not in the documented example"));
            }
        }
        (Value::Array(d), Value::Array(g)) => {
            if let (Some(d0), Some(g0)) = (d.first(), g.first()) {
                diff(d0, g0, &format!("{at}[0]"), extra, out);
            }
        }
        (d, g) if kind(d) != kind(g) => out.push(format!("{at} is {} where the example has {}", kind(g), kind(d))),
        _ => {}
    }
}
