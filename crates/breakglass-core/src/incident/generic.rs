//! breakglass's generic signed JSON incident form, for any other tool (its
//! shape and headers are in the parent module's documentation).

use serde_json::Value;

use super::parse::{
    Obj, check_list_len, clean_email, clean_id, clean_name, clean_title, clean_url, describe, invalid, parse_json,
    push_distinct, sha256_hex,
};
use super::{IncidentStatus, IncidentUpdate, ParseError, Responder, Source, echo};

/// Parses breakglass's generic incident form (shape in the module
/// documentation). Strict: every listed member has one type and range.
pub fn parse_generic(body: &[u8]) -> Result<IncidentUpdate, ParseError> {
    let p = Source::Generic;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let external_id = root.id_req("id")?;
    let event_id = match root.str_opt("event_id")? {
        Some(id) => clean_id(p, "event_id", id)?,
        None => sha256_hex(body),
    };
    let title = clean_title(root.str_req("title")?).ok_or_else(|| root.invalid("title", "must not be empty"))?;
    let severity = match root.get("severity") {
        None => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|s| (1..=5).contains(&s)) => n.as_i64(),
        Some(other) => {
            return Err(root.invalid(
                "severity",
                format!("expected an integer from 1 (most severe) to 5, found {}", describe(other)),
            ));
        }
    };
    let status_word = root.str_req("status")?;
    let status = IncidentStatus::parse(status_word).ok_or_else(|| {
        root.invalid("status", format!("expected triggered, acknowledged or resolved, found {:?}", echo(status_word)))
    })?;
    let mut services = Vec::new();
    for (idx, s) in root.strings_opt("services")?.into_iter().enumerate() {
        push_distinct(&mut services, clean_name(p, &format!("services[{idx}]"), s)?);
    }
    check_list_len(p, "services", &services)?;
    let mut responders = Vec::new();
    for r in root.objects_opt("responders")? {
        let email = match r.str_opt("email")? {
            Some(e) => Some(clean_email(p, &r.field("email"), e)?),
            None => None,
        };
        let name = match r.str_opt("name")? {
            Some(n) => Some(clean_name(p, &r.field("name"), n)?),
            None => None,
        };
        let id = match r.str_opt("id")? {
            Some(i) => Some(clean_name(p, &r.field("id"), i)?),
            None => None,
        };
        if email.is_none() && name.is_none() && id.is_none() {
            return Err(invalid(p, &r.path, "a responder needs at least one of email, name and id"));
        }
        push_distinct(&mut responders, Responder { id, email, name });
    }
    check_list_len(p, "responders", &responders)?;
    Ok(IncidentUpdate {
        source: p,
        external_id,
        event_id,
        event_type: status.as_str().to_owned(),
        title,
        severity,
        status,
        status_known: true,
        services,
        responders,
        occurred_at: root.time_opt("occurred_at")?,
        url: match root.str_opt("url")? {
            Some(u) => Some(clean_url(p, "url", u)?),
            None => None,
        },
    })
}
