//! PagerDuty v3 webhooks: incident events and responder events into
//! [`IncidentUpdate`]s (the mapping is in the parent module's documentation).

use super::parse::{Obj, check_list_len, clean_email, clean_title, parse_json, priority_level, push_distinct};
use super::{IncidentStatus, IncidentUpdate, ParseError, Responder, Source, echo};
use crate::time::Timestamp;

/// Parses a PagerDuty v3 webhook body. `Ok(None)` for deliveries with nothing
/// to record (`pagey.ping`, notes, non-incident events); see the module
/// documentation for the mapping.
pub fn parse_pagerduty(body: &[u8]) -> Result<Option<IncidentUpdate>, ParseError> {
    let p = Source::PagerDuty;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let event = root.obj_req("event")?;
    let event_type = event.str_req("event_type")?;
    let resource_type = event.str_opt("resource_type")?;
    if !event_type.starts_with("incident.") || resource_type.is_some_and(|r| r != "incident") {
        return Ok(None);
    }
    let event_id = event.id_req("id")?;
    let occurred_at = event.time_opt("occurred_at")?;
    let data = event.obj_req("data")?;
    match data.str_req("type")? {
        "incident" => pagerduty_incident(&data, event_type, event_id, occurred_at).map(Some),
        "incident_responder" => pagerduty_responder(&data, event_type, event_id, occurred_at),
        _ => Ok(None),
    }
}

/// An event whose `data` is the incident itself.
fn pagerduty_incident(
    data: &Obj<'_>,
    event_type: &str,
    event_id: String,
    occurred_at: Option<Timestamp>,
) -> Result<IncidentUpdate, ParseError> {
    let p = Source::PagerDuty;
    let external_id = data.id_req("id")?;
    let status = match data.str_opt("status")? {
        Some(s) => IncidentStatus::parse(s).ok_or_else(|| {
            data.invalid("status", format!("expected triggered, acknowledged or resolved, found {:?}", echo(s)))
        })?,
        None => match event_type {
            "incident.triggered" | "incident.unacknowledged" | "incident.reopened" => IncidentStatus::Triggered,
            "incident.acknowledged" => IncidentStatus::Acknowledged,
            "incident.resolved" => IncidentStatus::Resolved,
            _ => return Err(data.missing("status")),
        },
    };
    let from_priority = match data.obj_opt("priority")? {
        Some(priority) => priority.str_opt("summary")?.and_then(priority_level),
        None => None,
    };
    let severity = match from_priority {
        Some(level) => Some(level),
        None => match data.str_opt("urgency")? {
            Some("high") => Some(2),
            Some("low") => Some(4),
            _ => None,
        },
    };
    let mut services = Vec::new();
    if let Some(service) = data.obj_opt("service")?
        && let Some(name) = service.name_opt("summary")?
    {
        services.push(name);
    }
    let mut responders = Vec::new();
    for assignee in data.objects_opt("assignees")? {
        if let Some(r) = pagerduty_user(&assignee)? {
            push_distinct(&mut responders, r);
        }
    }
    check_list_len(p, &data.field("assignees"), &responders)?;
    let title = data
        .str_opt("title")?
        .and_then(clean_title)
        .unwrap_or_else(|| format!("PagerDuty incident {}", echo(&external_id)));
    Ok(IncidentUpdate {
        source: p,
        external_id,
        event_id,
        event_type: event_type.to_owned(),
        title,
        severity,
        status,
        status_known: true,
        services,
        responders,
        occurred_at,
        url: data.url_opt("html_url")?,
    })
}

/// `incident.responder.*` events: `data` names the incident and the user.
fn pagerduty_responder(
    data: &Obj<'_>,
    event_type: &str,
    event_id: String,
    occurred_at: Option<Timestamp>,
) -> Result<Option<IncidentUpdate>, ParseError> {
    let responds = match event_type {
        "incident.responder.added" => true,
        "incident.responder.replied" => data.str_opt("state")? == Some("accepted"),
        _ => false,
    };
    if !responds {
        return Ok(None);
    }
    let incident = data.obj_req("incident")?;
    let external_id = incident.id_req("id")?;
    let responders = match data.obj_opt("user")? {
        Some(user) => pagerduty_user(&user)?.into_iter().collect(),
        None => Vec::new(),
    };
    let title = incident
        .str_opt("summary")?
        .and_then(clean_title)
        .unwrap_or_else(|| format!("PagerDuty incident {}", echo(&external_id)));
    Ok(Some(IncidentUpdate {
        source: Source::PagerDuty,
        external_id,
        event_id,
        event_type: event_type.to_owned(),
        title,
        severity: None,
        status: IncidentStatus::Triggered,
        status_known: false,
        services: Vec::new(),
        responders,
        occurred_at,
        url: incident.url_opt("html_url")?,
    }))
}

/// A PagerDuty `user_reference`: `id` and `summary` (the name). An `email`
/// member, which v3 references do not carry today, is used if present.
fn pagerduty_user(user: &Obj<'_>) -> Result<Option<Responder>, ParseError> {
    let id = user.name_opt("id")?;
    let name = user.name_opt("summary")?;
    let email = match user.str_opt("email")? {
        Some(e) if !e.trim().is_empty() => Some(clean_email(user.provider, &user.field("email"), e)?),
        _ => None,
    };
    if id.is_none() && name.is_none() && email.is_none() {
        return Ok(None);
    }
    Ok(Some(Responder { id, email, name }))
}
