//! Prometheus Alertmanager's `webhook_config` notifications: one update per
//! alert group, or per alert, with severity, services and responders read
//! from labels and annotations (the mapping is in the parent module's
//! documentation).

use serde::{Deserialize, Serialize};

use super::parse::{
    Obj, check_list_len, clean_id, clean_name, clean_title, parse_json, push_distinct, responder_from_login, sha256_hex,
};
use super::{IncidentStatus, IncidentUpdate, ParseError, Responder, Source, echo};
use crate::time::Timestamp;

/// How Alertmanager notifications are read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerOptions {
    /// The label whose value gives the severity (default `severity`).
    pub severity_label: String,
    /// The label whose value names the service (default `service`).
    pub service_label: String,
    /// The annotation (or, failing that, label) listing responders,
    /// comma-separated (default `responders`).
    pub responders_key: String,
    /// One incident per alert (keyed by fingerprint) instead of one per group
    /// (keyed by group key). Default `false`.
    pub one_incident_per_alert: bool,
}

impl Default for AlertmanagerOptions {
    fn default() -> AlertmanagerOptions {
        AlertmanagerOptions {
            severity_label: "severity".into(),
            service_label: "service".into(),
            responders_key: "responders".into(),
            one_incident_per_alert: false,
        }
    }
}

/// One alert of a notification, as read.
struct AmAlert {
    fingerprint: Option<String>,
    firing: bool,
    severity: Option<i64>,
    service: Option<String>,
    responders: Vec<Responder>,
    title: Option<String>,
    changed_at: Option<Timestamp>,
    url: Option<String>,
}

/// Parses an Alertmanager webhook notification (`version` `"4"`): one update
/// for the group, or one per alert with
/// [`AlertmanagerOptions::one_incident_per_alert`]. See the module
/// documentation for the mapping and the severity table.
pub fn parse_alertmanager(body: &[u8], opts: &AlertmanagerOptions) -> Result<Vec<IncidentUpdate>, ParseError> {
    let p = Source::Alertmanager;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let version = root.str_req("version")?;
    if version != "4" {
        return Err(root.invalid(
            "version",
            format!("expected \"4\" (the only webhook version there is), found {:?}", echo(version)),
        ));
    }
    let group_key = root.id_req("groupKey")?;
    let group_firing = am_status(&root, "status")?;
    let common_annotations = root.labels_opt("commonAnnotations")?;
    let common_labels = root.labels_opt("commonLabels")?;
    let group_labels = root.labels_opt("groupLabels")?;
    if root.get("alerts").is_none() {
        return Err(root.missing("alerts"));
    }
    let alert_objs = root.objects_opt("alerts")?;
    let mut alerts = Vec::new();
    for alert in &alert_objs {
        alerts.push(am_alert(alert, opts)?);
    }
    let body_digest = sha256_hex(body);

    if opts.one_incident_per_alert {
        return alerts
            .into_iter()
            .enumerate()
            .map(|(idx, a)| {
                let Some(external_id) = a.fingerprint else {
                    return Err(alert_objs[idx].missing("fingerprint"));
                };
                let status = if a.firing { IncidentStatus::Triggered } else { IncidentStatus::Resolved };
                Ok(IncidentUpdate {
                    source: p,
                    title: a.title.unwrap_or_else(|| format!("Alertmanager alert {}", echo(&external_id))),
                    external_id,
                    event_id: format!("{body_digest}:{idx}"),
                    event_type: status_word(a.firing).to_owned(),
                    severity: a.severity,
                    status,
                    status_known: true,
                    services: a.service.into_iter().collect(),
                    responders: a.responders,
                    occurred_at: a.changed_at,
                    url: a.url,
                })
            })
            .collect();
    }

    // The group's severity: its firing alerts', or all once it is resolved.
    let counted = |a: &&AmAlert| !group_firing || a.firing;
    let severity = alerts.iter().filter(counted).filter_map(|a| a.severity).min();
    let mut services = Vec::new();
    let mut responders = Vec::new();
    if let Some(list) = label(&common_annotations, &opts.responders_key) {
        for r in am_responders(p, &format!("commonAnnotations.{}", opts.responders_key), list)? {
            push_distinct(&mut responders, r);
        }
    }
    for a in &alerts {
        if let Some(s) = &a.service {
            push_distinct(&mut services, s.clone());
        }
        for r in &a.responders {
            push_distinct(&mut responders, r.clone());
        }
    }
    check_list_len(p, &format!("alerts[].labels.{}", opts.service_label), &services)?;
    check_list_len(p, &format!("alerts[].annotations.{}", opts.responders_key), &responders)?;
    let title = label(&common_annotations, "summary")
        .and_then(clean_title)
        .or_else(|| label(&common_labels, "alertname").and_then(clean_title))
        .or_else(|| label(&group_labels, "alertname").and_then(clean_title))
        .or_else(|| alerts.first().and_then(|a| a.title.clone()))
        .unwrap_or_else(|| "Alertmanager alert group".to_owned());
    let occurred_at = alerts.iter().filter_map(|a| a.changed_at).max();
    Ok(vec![IncidentUpdate {
        source: p,
        external_id: group_key,
        event_id: body_digest,
        event_type: status_word(group_firing).to_owned(),
        title,
        severity,
        status: if group_firing { IncidentStatus::Triggered } else { IncidentStatus::Resolved },
        status_known: true,
        services,
        responders,
        occurred_at,
        url: root.url_opt("externalURL")?,
    }])
}

/// The trimmed value of one label or annotation.
fn label<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.trim())
}

fn status_word(firing: bool) -> &'static str {
    if firing { "firing" } else { "resolved" }
}

/// `firing` (true) or `resolved` (false).
fn am_status(obj: &Obj<'_>, key: &str) -> Result<bool, ParseError> {
    match obj.str_req(key)? {
        "firing" => Ok(true),
        "resolved" => Ok(false),
        other => Err(obj.invalid(key, format!("expected firing or resolved, found {:?}", echo(other)))),
    }
}

fn am_alert(alert: &Obj<'_>, opts: &AlertmanagerOptions) -> Result<AmAlert, ParseError> {
    let p = Source::Alertmanager;
    let firing = am_status(alert, "status")?;
    let labels = alert.labels_opt("labels")?;
    let annotations = alert.labels_opt("annotations")?;
    let severity = label(&labels, &opts.severity_label).filter(|v| !v.is_empty()).map(alertmanager_severity);
    let service = match label(&labels, &opts.service_label).filter(|v| !v.is_empty()) {
        Some(s) => Some(clean_name(p, &format!("{}.labels.{}", alert.path, opts.service_label), s)?),
        None => None,
    };
    let responders = match (label(&annotations, &opts.responders_key), label(&labels, &opts.responders_key)) {
        (Some(list), _) => am_responders(p, &format!("{}.annotations.{}", alert.path, opts.responders_key), list)?,
        (None, Some(list)) => am_responders(p, &format!("{}.labels.{}", alert.path, opts.responders_key), list)?,
        (None, None) => Vec::new(),
    };
    let title = label(&annotations, "summary")
        .and_then(clean_title)
        .or_else(|| label(&labels, "alertname").and_then(clean_title));
    // Go's zero time (0001-01-01T00:00:00Z) means "not set".
    let set = |t: Option<Timestamp>| t.filter(|t| t.millis() >= 0);
    let changed_at = if firing { set(alert.time_opt("startsAt")?) } else { set(alert.time_opt("endsAt")?) };
    let fingerprint = match alert.str_opt("fingerprint")? {
        Some(f) if !f.trim().is_empty() => Some(clean_id(p, &alert.field("fingerprint"), f)?),
        _ => None,
    };
    Ok(AmAlert {
        fingerprint,
        firing,
        severity,
        service,
        responders,
        title,
        changed_at,
        url: alert.url_opt("generatorURL")?,
    })
}

/// A comma-separated responders list: `@` makes an e-mail, else a name.
fn am_responders(provider: Source, field: &str, list: &str) -> Result<Vec<Responder>, ParseError> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if let Some(r) = responder_from_login(provider, field, None, Some(entry))? {
            push_distinct(&mut out, r);
        }
    }
    check_list_len(provider, field, &out)?;
    Ok(out)
}

/// The severity table of the module documentation.
fn alertmanager_severity(value: &str) -> i64 {
    match value.trim().to_ascii_lowercase().as_str() {
        "critical" | "crit" | "page" | "emergency" | "fatal" | "sev1" | "sev-1" | "p1" | "1" => 1,
        "high" | "error" | "major" | "sev2" | "sev-2" | "p2" | "2" => 2,
        "warning" | "warn" | "minor" | "medium" | "sev3" | "sev-3" | "p3" | "3" => 3,
        "info" | "informational" | "low" | "notice" | "sev4" | "sev-4" | "p4" | "4" => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alertmanager_severity_table() {
        for (input, expect) in [
            ("critical", 1),
            ("CRITICAL", 1),
            ("page", 1),
            ("sev1", 1),
            ("p1", 1),
            ("1", 1),
            ("high", 2),
            ("error", 2),
            ("major", 2),
            ("P2", 2),
            ("warning", 3),
            ("minor", 3),
            ("3", 3),
            ("info", 4),
            ("4", 4),
            ("none", 5),
            ("debug", 5),
            ("5", 5),
        ] {
            assert_eq!(alertmanager_severity(input), expect, "{input:?}");
        }
    }
}
