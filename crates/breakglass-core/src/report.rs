//! Review reports: a self-contained record of one post-event review that an
//! auditor can check offline. The report carries, for every event of the
//! review's timeline, the log entry as the log stores it and its inclusion
//! proof against one signed checkpoint, plus a manifest: the
//! `review.exported` entry the server logged when it made the report, which
//! lists the timeline's entries. So:
//!
//! - an edited event no longer hashes to its proven leaf;
//! - a dropped (or added) event no longer matches the manifest, which is
//!   itself proven to be in the log;
//! - the review's decision shown (status, reviewer, notes) must be the one
//!   its sign-off entry records;
//! - the Markdown and HTML forms embed the JSON and are re-rendered from it
//!   when verified, so an edit to the readable text is caught too.
//!
//! Security: whoever hands an auditor a report controls every byte of it;
//! [`verify`] is what `breakglass audit verify --report` relies on. No IO;
//! rendering is deterministic. The readable
//! forms show text people wrote (reasons, notes, summaries), so every value
//! is escaped for its format, and control characters are made visible first
//! (an escape sequence must not reach a terminal that `cat`s the Markdown).

use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::{Hash, leaf_hash};
use breakglass_tlog::note::NoteVerifier;
use breakglass_tlog::proof::verify_inclusion;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ReviewView;

pub const REPORT_FORMAT: &str = "breakglass-review-report/v1";
const HTML_MARK: &str = "<script type=\"application/json\" id=\"breakglass-report\">";
const MD_MARK: &str = "```json breakglass-report\n";

/// A log entry with its inclusion proof against the report's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenEntry {
    pub index: u64,
    /// The entry exactly as the log stores it (canonical JSON).
    pub entry: String,
    /// The inclusion proof, base64 hashes.
    pub proof: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub format: String,
    /// The review as the server showed it (its timeline's summaries).
    pub review: ReviewView,
    /// The log's origin and its verifier key (`name+id+key`).
    pub origin: String,
    pub log_key: String,
    /// The signed checkpoint every proof is against.
    pub checkpoint: String,
    /// The `review.exported` entry listing the timeline's entries.
    pub manifest: ProvenEntry,
    pub events: Vec<ProvenEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("not a breakglass review report: {0}")]
    Malformed(String),
    #[error("the report's checkpoint does not verify: {0}")]
    Checkpoint(String),
    #[error("entry {index} of the report is not the one in the log: {why}")]
    Entry { index: u64, why: String },
    #[error("the report does not list exactly the entries its manifest names: {0}")]
    Incomplete(String),
    #[error("the review shown does not match its sign-off entry: {0}")]
    Decision(String),
    #[error("the report's readable text was edited: it is not what its embedded data renders to")]
    TextEdited,
}

/// What a verified report covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub review: String,
    pub grant: String,
    pub events: usize,
    pub checkpoint: Checkpoint,
}

fn entry_json(p: &ProvenEntry) -> Result<Value, ReportError> {
    serde_json::from_str(&p.entry).map_err(|_| ReportError::Entry { index: p.index, why: "not JSON".into() })
}

pub(crate) fn check_proof(p: &ProvenEntry, cp: &Checkpoint) -> Result<(), ReportError> {
    let hashes = p
        .proof
        .iter()
        .map(|h| {
            Hash::from_base64(h).ok_or(ReportError::Entry { index: p.index, why: "a proof hash is not base64".into() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = leaf_hash(p.entry.as_bytes());
    verify_inclusion(p.index, cp.size, leaf.as_bytes(), &hashes, cp.root.as_bytes())
        .map_err(|e| ReportError::Entry { index: p.index, why: e.to_string() })?;
    // The entry says which index it is: a proven entry moved to another index fails too.
    let v = entry_json(p)?;
    if v.get("index").and_then(Value::as_u64) != Some(p.index) {
        return Err(ReportError::Entry { index: p.index, why: "its index field differs".into() });
    }
    Ok(())
}

/// Checks a report's JSON: signatures, proofs, the manifest, the decision.
/// `pinned`: the log's key as the auditor knows it; without one, the key the
/// report carries is used (which proves consistency, not origin).
pub fn verify(report: &Report, pinned: Option<&NoteVerifier>) -> Result<Verified, ReportError> {
    if report.format != REPORT_FORMAT {
        return Err(ReportError::Malformed(format!("format {:?}, expected {REPORT_FORMAT}", report.format)));
    }
    let carried;
    let key = match pinned {
        Some(k) => k,
        None => {
            carried =
                NoteVerifier::parse(&report.log_key).map_err(|e| ReportError::Malformed(format!("log_key: {e}")))?;
            &carried
        }
    };
    let cp = Checkpoint::open(&report.checkpoint, &report.origin, std::slice::from_ref(key))
        .map_err(|e| ReportError::Checkpoint(e.to_string()))?;
    check_proof(&report.manifest, &cp)?;
    let manifest = entry_json(&report.manifest)?;
    let data = &manifest["data"];
    if manifest["kind"] != "review.exported" || data["review"] != report.review.id.as_str() {
        return Err(ReportError::Incomplete(format!(
            "entry {} is not the export manifest of review {}",
            report.manifest.index, report.review.id
        )));
    }
    if data["grant"] != report.review.grant.as_str() {
        return Err(ReportError::Incomplete("the manifest names another grant".into()));
    }
    let listed: Vec<u64> = data["entries"]
        .as_array()
        .ok_or_else(|| ReportError::Incomplete("the manifest lists no entries".into()))?
        .iter()
        .map(|v| v.as_u64().ok_or_else(|| ReportError::Incomplete("a manifest entry is not an index".into())))
        .collect::<Result<_, _>>()?;
    let present: Vec<u64> = report.events.iter().map(|e| e.index).collect();
    if listed != present {
        let missing: Vec<u64> = listed.iter().filter(|i| !present.contains(i)).copied().collect();
        let extra: Vec<u64> = present.iter().filter(|i| !listed.contains(i)).copied().collect();
        return Err(ReportError::Incomplete(format!("missing entries {missing:?}, unlisted entries {extra:?}")));
    }
    let mut decision = None;
    for e in &report.events {
        check_proof(e, &cp)?;
        let v = entry_json(e)?;
        if v["grant"] != report.review.grant.as_str() {
            return Err(ReportError::Entry { index: e.index, why: "it is not about this review's grant".into() });
        }
        if matches!(v["kind"].as_str(), Some("review.approved" | "review.flagged")) {
            decision = Some(v);
        }
    }
    // The timeline shown must be the proven one, entry by entry.
    let shown: Vec<u64> = report.review.timeline.iter().map(|t| t.index).collect();
    if shown != present {
        return Err(ReportError::Incomplete("the timeline shown is not the list of proven entries".into()));
    }
    for (t, e) in report.review.timeline.iter().zip(&report.events) {
        let v = entry_json(e)?;
        if t.kind != v["kind"].as_str().unwrap_or("")
            || t.actor != v["actor"].as_str().unwrap_or("")
            || t.data != v["data"]
            || t.time != v["time"].as_str().unwrap_or("")
        {
            return Err(ReportError::Entry { index: e.index, why: "the timeline shows it differently".into() });
        }
        if t.summary != crate::review::summarize(&t.kind, &t.actor, &t.data) {
            return Err(ReportError::Entry { index: e.index, why: "its summary is not what the entry says".into() });
        }
    }
    let r = &report.review;
    match (&decision, r.status.as_str()) {
        (None, "open") => {}
        (None, s) => {
            return Err(ReportError::Decision(format!("the review shows {s} but no sign-off entry is included")));
        }
        (Some(d), s) => {
            let kind = d["kind"].as_str().unwrap_or("");
            let ok = kind == format!("review.{s}")
                && r.reviewer.as_deref() == d["actor"].as_str()
                && d["data"]["notes"] == r.notes.as_str()
                && d["data"]["lessons"] == serde_json::json!(r.lessons)
                && d["data"]["follow_ups"] == serde_json::json!(r.follow_ups);
            if !ok {
                return Err(ReportError::Decision(format!(
                    "shown {s} by {:?}, recorded {kind} by {}",
                    r.reviewer, d["actor"]
                )));
            }
        }
    }
    Ok(Verified { review: r.id.clone(), grant: r.grant.clone(), events: report.events.len(), checkpoint: cp })
}

/// Text for HTML: control and invisible characters made visible first
/// ([`crate::text`]; newlines and tabs kept, the browser folds them), then
/// the HTML metacharacters.
fn html_escape(s: &str) -> String {
    crate::text::escape_multiline(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Text for one Markdown line or table cell: newlines become spaces, every
/// other control or invisible character a visible escape ([`crate::text`]),
/// then the Markdown metacharacters.
fn md_escape(s: &str) -> String {
    crate::text::escape(&s.replace('\n', " ")).replace('\\', "\\\\").replace('|', "\\|")
}

/// The report as Markdown: readable text, then the JSON it was made from.
pub fn to_markdown(report: &Report) -> String {
    let r = &report.review;
    let mut out = format!("# Review {} of grant {}\n\n", md_escape(&r.id), md_escape(&r.grant));
    for (k, v) in header_fields(report) {
        out.push_str(&format!("- **{k}**: {}\n", md_escape(&v)));
    }
    out.push_str("\n## Timeline\n\n| index | time | kind | actor | what |\n|---|---|---|---|---|\n");
    for t in &r.timeline {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            t.index,
            md_escape(&t.time),
            md_escape(&t.kind),
            md_escape(&t.actor),
            md_escape(&t.summary)
        ));
    }
    out.push_str(&format!(
        "\nEvery entry above is in the log {} at tree size {}, with its inclusion proof in the data below. \
         Check it with `breakglass audit verify --report FILE [--key KEY]`.\n\n{MD_MARK}{}\n```\n",
        md_escape(&report.origin),
        checkpoint_size(report),
        json_block(report)
    ));
    out
}

/// The report as one HTML page with no external assets: readable text, then
/// the JSON it was made from.
pub fn to_html(report: &Report) -> String {
    let r = &report.review;
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str(&format!("<title>Review {} of grant {}</title>\n", html_escape(&r.id), html_escape(&r.grant)));
    out.push_str(
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;width:100%}\
         td,th{border:1px solid #999;padding:.3em;text-align:left;vertical-align:top}th{background:#eee}\
         @media print{body{margin:0}}</style>\n</head><body>\n",
    );
    out.push_str(&format!("<h1>Review {} of grant {}</h1>\n<dl>\n", html_escape(&r.id), html_escape(&r.grant)));
    for (k, v) in header_fields(report) {
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", html_escape(k), html_escape(&v)));
    }
    out.push_str("</dl>\n<h2>Timeline</h2>\n<table><tr><th>index</th><th>time</th><th>kind</th><th>actor</th><th>what</th></tr>\n");
    for t in &r.timeline {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            t.index,
            html_escape(&t.time),
            html_escape(&t.kind),
            html_escape(&t.actor),
            html_escape(&t.summary)
        ));
    }
    out.push_str(&format!(
        "</table>\n<p>Every entry above is in the log {} at tree size {}, with its inclusion proof in the data below. \
         Check it with <code>breakglass audit verify --report FILE [--key KEY]</code>.</p>\n{HTML_MARK}{}</script>\n</body></html>\n",
        html_escape(&report.origin),
        checkpoint_size(report),
        // JSON inside a script element: "</" must not appear in it.
        json_block(report).replace("</", "<\\/")
    ));
    out
}

fn json_block(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report serialises")
}

fn checkpoint_size(report: &Report) -> String {
    report.checkpoint.lines().nth(1).unwrap_or("?").to_owned()
}

fn header_fields(report: &Report) -> Vec<(&'static str, String)> {
    let r = &report.review;
    let mut f = vec![
        ("grantee", r.principal.clone()),
        ("scopes", r.scopes.join(", ")),
        ("grant ended", r.grant_end.clone()),
        ("review opened", r.opened_at.to_rfc3339()),
        ("deadline", r.deadline.to_rfc3339()),
        ("status", if r.overdue { format!("{} (overdue)", r.status) } else { r.status.clone() }),
    ];
    if let Some(who) = &r.reviewer {
        f.push(("reviewer", who.clone()));
        f.push(("decided", r.decided_at.map_or(String::new(), |t| t.to_rfc3339())));
        f.push(("notes", r.notes.clone()));
        f.push(("lessons learned", r.lessons.join("; ")));
        f.push(("follow-up actions", r.follow_ups.join("; ")));
    }
    f
}

/// Reads a report file in any of the three forms: the JSON, or Markdown or
/// HTML with the JSON embedded (then the text must be exactly what the JSON
/// renders to).
pub fn read(text: &str) -> Result<Report, ReportError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| ReportError::Malformed(format!("JSON: {e}")));
    }
    let (json, html) = if let Some(i) = text.find(HTML_MARK) {
        let rest = &text[i + HTML_MARK.len()..];
        let end = rest.find("</script>").ok_or_else(|| ReportError::Malformed("unterminated report data".into()))?;
        (rest[..end].replace("<\\/", "</"), true)
    } else if let Some(i) = text.find(MD_MARK) {
        let rest = &text[i + MD_MARK.len()..];
        let end = rest.rfind("\n```").ok_or_else(|| ReportError::Malformed("unterminated report data".into()))?;
        (rest[..end].to_owned(), false)
    } else {
        return Err(ReportError::Malformed("no embedded report data (JSON, Markdown or HTML expected)".into()));
    };
    let report: Report =
        serde_json::from_str(&json).map_err(|e| ReportError::Malformed(format!("embedded JSON: {e}")))?;
    let rendered = if html { to_html(&report) } else { to_markdown(&report) };
    if rendered != text {
        return Err(ReportError::TextEdited);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ReviewView, TimelineEntry};
    use crate::time::Timestamp;

    // Issue 14: text stored before control characters were refused (a
    // reason, notes, a summary) must not reach a terminal or a page raw.
    #[test]
    fn issue14_stored_control_characters_are_escaped_in_markdown_and_html() {
        let hostile = "fix\u{1b}]0;owned\u{7}\r\u{1b}[2K<b>APPROVED</b>";
        let entry = ProvenEntry { index: 3, entry: "{}".into(), proof: Vec::new() };
        let report = Report {
            format: "breakglass-review-report/v1".into(),
            review: ReviewView {
                id: "rv_1".into(),
                grant: "gr_1".into(),
                principal: "alice".into(),
                scopes: vec!["git:a/b@refs/heads/main".into()],
                status: "approved".into(),
                overdue: false,
                grant_end: format!("revoked: {hostile}"),
                opened_at: Timestamp(0),
                deadline: Timestamp(0),
                escalated_at: None,
                reviewer: Some("bob".into()),
                decided_at: Some(Timestamp(0)),
                notes: format!("line one\n{hostile}"),
                lessons: vec![hostile.into()],
                follow_ups: Vec::new(),
                timeline: vec![TimelineEntry {
                    index: 3,
                    time: "2026-12-02T00:00:00Z".into(),
                    kind: "grant.requested".into(),
                    actor: "alice".into(),
                    summary: format!("alice requested push: {hostile}"),
                    data: serde_json::Value::Null,
                }],
            },
            origin: "o".into(),
            log_key: "k".into(),
            checkpoint: "o\n4\nx\n".into(),
            manifest: entry.clone(),
            events: vec![entry],
        };
        for (what, text) in [("markdown", to_markdown(&report)), ("html", to_html(&report))] {
            // The readable part, before the embedded JSON (which escapes in its own way).
            let readable = text.split(MD_MARK).next().unwrap().split(HTML_MARK).next().unwrap();
            assert!(!readable.contains('\u{1b}') && !readable.contains('\u{7}'), "{what}: {readable:?}");
            assert!(!readable.contains('\r'), "{what}: {readable:?}");
            assert!(readable.contains("u{1b}]0;owned") && readable.contains("u{7}"), "{what}: {readable}");
            if what == "html" {
                assert!(!readable.contains("<b>"), "{what}: markup is escaped too");
            }
        }
    }
}
