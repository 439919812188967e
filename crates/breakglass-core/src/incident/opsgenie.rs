//! Opsgenie's outgoing Webhook integration: alert actions into
//! [`IncidentUpdate`]s (the mapping is in the parent module's documentation).

use serde_json::Value;

use super::parse::{
    Obj, check_list_len, clean_name, clean_title, describe, parse_json, priority_level, push_distinct,
    responder_from_login, sha256_hex,
};
use super::{IncidentStatus, IncidentUpdate, ParseError, Source, echo};
use crate::time::Timestamp;

/// Parses an Opsgenie Webhook integration body. Every alert action gives an
/// update (`Ok(None)` is kept for symmetry with PagerDuty and future actions
/// with nothing to record); see the module documentation for the mapping.
pub fn parse_opsgenie(body: &[u8]) -> Result<Option<IncidentUpdate>, ParseError> {
    let p = Source::Opsgenie;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let action = root.str_req("action")?;
    let action_name = clean_name(p, "action", action)?;
    let alert = root.obj_req("alert")?;
    let external_id = alert.id_req("alertId")?;
    let (status, status_known) = match action {
        "Create" | "UnAcknowledge" => (IncidentStatus::Triggered, true),
        "Acknowledge" => (IncidentStatus::Acknowledged, true),
        "Close" | "Delete" => (IncidentStatus::Resolved, true),
        _ => (IncidentStatus::Triggered, false),
    };
    let severity =
        match alert.get("priority") {
            None => None,
            Some(Value::String(s)) => Some(priority_level(s).ok_or_else(|| {
                alert.invalid("priority", format!("expected P1, P2, P3, P4 or P5, found {:?}", echo(s)))
            })?),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(level @ 1..=5) => Some(level),
                _ => return Err(alert.invalid("priority", format!("expected 1 to 5, found number {n}"))),
            },
            Some(other) => {
                return Err(alert.invalid("priority", format!("expected P1 to P5, found {}", describe(other))));
            }
        };
    let mut services = Vec::new();
    for (idx, tag) in alert.strings_opt("tags")?.into_iter().enumerate() {
        let tag = tag.trim();
        let Some(prefix) = tag.get(..8) else { continue };
        if !prefix.eq_ignore_ascii_case("service:") || tag[8..].trim().is_empty() {
            continue;
        }
        push_distinct(&mut services, clean_name(p, &alert.field(&format!("tags[{idx}]")), &tag[8..])?);
    }
    check_list_len(p, &alert.field("tags"), &services)?;
    let mut responders = Vec::new();
    match action {
        "Acknowledge" | "TakeOwnership" => {
            let id = alert.name_opt("userId")?;
            if let Some(r) = responder_from_login(p, &alert.field("username"), id, alert.str_opt("username")?)? {
                responders.push(r);
            }
        }
        "AssignOwnership" => {
            if let Some(r) = responder_from_login(p, &alert.field("owner"), None, alert.str_opt("owner")?)? {
                responders.push(r);
            }
        }
        "AddRecipient" => {
            if let Some(r) = responder_from_login(p, &alert.field("recipient"), None, alert.str_opt("recipient")?)? {
                responders.push(r);
            }
        }
        "Escalate" => {
            if let Some(notified) = root.obj_opt("escalationNotify")?
                && notified.str_opt("entity")? == Some("user")
            {
                let id = notified.name_opt("id")?;
                if let Some(r) = responder_from_login(p, &notified.field("name"), id, notified.str_opt("name")?)? {
                    responders.push(r);
                }
            }
        }
        _ => {}
    }
    let occurred_at = match alert.int_opt("updatedAt")? {
        Some(t) => Some(epoch_to_timestamp(t)),
        None => alert.int_opt("createdAt")?.map(epoch_to_timestamp),
    };
    // The tiny id is only displayed, in the placeholder title, so it is
    // cleaned as a title is (issue 14: it carried terminal escapes).
    let tiny_id = alert.str_opt("tinyId")?.and_then(clean_title);
    let title = alert
        .str_opt("message")?
        .and_then(clean_title)
        .unwrap_or_else(|| format!("Opsgenie alert {}", echo(tiny_id.as_deref().unwrap_or(&external_id))));
    Ok(Some(IncidentUpdate {
        source: p,
        external_id,
        event_id: sha256_hex(body),
        event_type: action_name,
        title,
        severity,
        status,
        status_known,
        services,
        responders,
        occurred_at,
        url: None,
    }))
}

/// An epoch time in nanoseconds (what Opsgenie's `updatedAt` holds),
/// microseconds or milliseconds, told apart by magnitude: until the year 5138
/// milliseconds stay below 10^14, and since 1973 microseconds are above it.
fn epoch_to_timestamp(t: i64) -> Timestamp {
    const E14: i64 = 100_000_000_000_000;
    const E17: i64 = 100_000_000_000_000_000;
    let abs = t.saturating_abs();
    Timestamp(if abs < E14 {
        t
    } else if abs < E17 {
        t / 1_000
    } else {
        t / 1_000_000
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_units_are_told_apart() {
        let ms = 1_614_852_000_123;
        assert_eq!(epoch_to_timestamp(ms), Timestamp(ms));
        assert_eq!(epoch_to_timestamp(ms * 1_000), Timestamp(ms));
        assert_eq!(epoch_to_timestamp(ms * 1_000_000), Timestamp(ms));
        // The Opsgenie documentation's own example.
        assert_eq!(epoch_to_timestamp(1_420_452_193_166_002_000), Timestamp(1_420_452_193_166));
    }
}
