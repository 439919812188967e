//! The grant commands and what reads around them: `request`, `approve`,
//! `deny`, `revoke`, `extend`, `grants`, `show`, and `incidents`, `stats`,
//! `review …` and `notifications`.

use breakglass_core::api::{ApproveRequest, ExtendRequest, GrantRequest};
use breakglass_core::grant::{GrantState, human_duration};
use breakglass_core::scope::{Capability, Scope, check_request};
use serde_json::json;

use super::{
    check_duration, connect, non_empty, now, opt_time, print_grant, print_table, short_time, state_phrase, when,
};
use crate::cli::{ApproveArgs, ClientArgs, ExtendArgs, GrantsArgs, ReasonArgs, RequestArgs, ShowArgs};
use crate::error::{CliResult, bad_input, internal};
use crate::print_json;

pub async fn request(args: RequestArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    check_duration("--for", &args.duration)?;
    // Checked here for a quick, precise message; the server checks again.
    let scopes = args.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>().map_err(|e| {
        bad_input(format!(
            "--scope: {e} (expected e.g. git:payments/api@refs/heads/main or pipeline:payments/api/deploy@production)"
        ))
    })?;
    let caps = args
        .caps
        .iter()
        .map(|c| Capability::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_input(format!("--cap: {e}")))?;
    check_request(&scopes, &caps).map_err(|e| bad_input(format!("--cap: {e}")))?;
    if let Some(incident) = &args.incident {
        non_empty("--incident", incident)?;
    }
    let client = connect(&args.client)?;
    let view = client
        .request_grant(&GrantRequest {
            scopes: args.scopes,
            capabilities: args.caps,
            duration: args.duration,
            reason,
            incident: args.incident,
            drill: false,
        })
        .await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn approve(args: ApproveArgs) -> CliResult {
    let client = connect(&args.client)?;
    let view = client.approve(&args.id, &ApproveRequest { comment: args.comment }).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn deny(args: ReasonArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    let client = connect(&args.client)?;
    let view = client.deny(&args.id, &reason).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn revoke(args: ReasonArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    let client = connect(&args.client)?;
    let view = client.revoke(&args.id, &reason).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn extend(args: ExtendArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    check_duration("--by", &args.by)?;
    let client = connect(&args.client)?;
    let view = client.extend(&args.id, &ExtendRequest { by: args.by, reason }).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn grants(args: GrantsArgs) -> CliResult {
    let client = connect(&args.client)?;
    let principal = args.principal.as_deref();
    // The API filters on one state at a time; both flags ask twice and merge.
    let mut states = Vec::new();
    if args.active {
        states.push(GrantState::Active);
    }
    if args.pending {
        states.push(GrantState::Pending);
    }
    let mut list = if states.is_empty() {
        client.list_grants(None, principal).await?.grants
    } else {
        let mut all = Vec::new();
        for state in &states {
            all.extend(client.list_grants(Some(*state), principal).await?.grants);
        }
        if states.len() > 1 {
            all.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then_with(|| a.id.cmp(&b.id)));
        }
        all
    };
    // The server shows a grant past its expiry as expired even before writing that down; so does --active.
    if !states.is_empty() {
        list.retain(|g| states.contains(&g.state));
    }
    if args.json {
        print_json(&json!({ "grants": list }));
        return Ok(());
    }
    if list.is_empty() {
        println!("no grants");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|g| {
            vec![
                g.id.clone(),
                g.principal.clone(),
                state_phrase(g),
                g.scopes.join(","),
                g.capabilities.join(","),
                match g.state {
                    GrantState::Pending => format!("lapses {}", short_time(g.pending_until)),
                    _ => opt_time(g.expires_at),
                },
            ]
        })
        .collect();
    print_table(&["ID", "PRINCIPAL", "STATE", "SCOPES", "CAPABILITIES", "EXPIRES"], &rows);
    Ok(())
}

pub async fn incidents(args: crate::cli::IncidentsArgs) -> CliResult {
    use crate::cli::IncidentsCommand;
    if let Some(IncidentsCommand::Show { id, json, client }) = args.command {
        let i = connect(&client)?.incident(&id).await?;
        if json {
            print_json(&i);
            return Ok(());
        }
        let field = |name: &str, value: String| println!("{name:<12}{}", crate::display::line(&value));
        field("id", i.id.clone());
        field("title", i.title.clone());
        field("severity", i.severity.to_string());
        field("status", i.status.clone());
        field("services", if i.services.is_empty() { "-".into() } else { i.services.join(", ") });
        let who: Vec<String> = i
            .responders
            .iter()
            .map(|r| {
                let named = r.name.clone().or_else(|| r.email.clone()).or_else(|| r.id.clone()).unwrap_or_default();
                match &r.principal {
                    Some(p) => format!("{named} (principal {p})"),
                    None => format!("{named} (not a principal)"),
                }
            })
            .collect();
        field("responders", if who.is_empty() { "-".into() } else { who.join("; ") });
        field("opened", short_time(i.opened_at));
        field("updated", short_time(i.updated_at));
        field("resolved", opt_time(i.resolved_at));
        field("url", i.url.clone().unwrap_or_else(|| "-".into()));
        return Ok(());
    }
    let list = connect(&args.client)?.incidents(args.open).await?;
    if args.json {
        print_json(&list);
        return Ok(());
    }
    if list.incidents.is_empty() {
        println!("no incidents");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .incidents
        .iter()
        .map(|i| {
            let principals: Vec<&str> = i.responders.iter().filter_map(|r| r.principal.as_deref()).collect();
            vec![
                i.id.clone(),
                i.severity.to_string(),
                i.status.clone(),
                i.services.join(","),
                if principals.is_empty() { "-".into() } else { principals.join(",") },
                i.title.clone(),
            ]
        })
        .collect();
    print_table(&["ID", "SEV", "STATUS", "SERVICES", "RESPONDERS", "TITLE"], &rows);
    Ok(())
}

pub async fn stats(since: Option<String>, json: bool, client: ClientArgs) -> CliResult {
    let since = since.map(|s| if s.len() == 10 { format!("{s}T00:00:00Z") } else { s });
    let s = connect(&client)?.stats(since.as_deref()).await?;
    if json {
        print_json(&s);
        return Ok(());
    }
    let d = |d: &breakglass_core::api::DurationStats| {
        if d.count == 0 {
            "-".to_owned()
        } else {
            format!(
                "p50 {}, p90 {}, max {} ({} grants)",
                breakglass_core::grant::human_duration(d.p50_ms),
                breakglass_core::grant::human_duration(d.p90_ms),
                breakglass_core::grant::human_duration(d.max_ms),
                d.count
            )
        }
    };
    println!(
        "grants requested    {}{}",
        s.requested,
        s.since.map_or(String::new(), |t| format!(" since {}", t.to_rfc3339()))
    );
    println!(
        "activated           {} ({} with no human approval); refused, denied or lapsed {}",
        s.activated, s.auto_approved, s.refused_or_lapsed
    );
    println!("request to active   {}", d(&s.request_to_active));
    println!("active for          {}", d(&s.active_for));
    println!(
        "reviews             {} open, {} overdue, {} approved, {} flagged",
        s.reviews_open, s.reviews_overdue, s.reviews_approved, s.reviews_flagged
    );
    let top = |v: &[breakglass_core::api::CountBy]| {
        v.iter().take(10).map(|c| format!("{} {}", c.name, c.count)).collect::<Vec<_>>().join(", ")
    };
    println!("by principal        {}", top(&s.by_principal));
    println!("by scope            {}", top(&s.by_scope));
    Ok(())
}

pub async fn review(cmd: crate::cli::ReviewCommand) -> CliResult {
    use crate::cli::ReviewCommand;
    match cmd {
        ReviewCommand::List { open, overdue, json, client } => {
            let list = connect(&client)?.reviews(open, overdue).await?;
            if json {
                print_json(&list);
                return Ok(());
            }
            if list.reviews.is_empty() {
                println!("no reviews");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .reviews
                .iter()
                .map(|r| {
                    let status = if r.overdue { "overdue".to_owned() } else { r.status.clone() };
                    vec![
                        r.id.clone(),
                        r.grant.clone(),
                        r.principal.clone(),
                        status,
                        short_time(r.deadline),
                        r.reviewer.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(&["ID", "GRANT", "GRANTEE", "STATUS", "DUE", "REVIEWER"], &rows);
            Ok(())
        }
        ReviewCommand::Show { id, json, client } => {
            let r = connect(&client)?.review(&id).await?;
            if json {
                print_json(&r);
                return Ok(());
            }
            print_review(&r);
            Ok(())
        }
        ReviewCommand::Export { id, format, output, client } => {
            use crate::cli::ReportFormat;
            let report = connect(&client)?.export_review(&id).await?;
            let text = match format {
                ReportFormat::Json => {
                    serde_json::to_string_pretty(&report).map_err(|e| internal(e.to_string()))? + "\n"
                }
                ReportFormat::Md => breakglass_core::report::to_markdown(&report),
                ReportFormat::Html => breakglass_core::report::to_html(&report),
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| bad_input(format!("cannot write {}: {e}", path.display())))?;
                    eprintln!(
                        "wrote the report of review {} ({} entries, proven at tree size {}) to {}",
                        report.review.id,
                        report.events.len(),
                        report.checkpoint.lines().nth(1).unwrap_or("?"),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        ReviewCommand::Approve(a) | ReviewCommand::Flag(a) if a.notes.trim().is_empty() => Err(
            crate::error::bad_input(format!("--notes for review {}: say what was checked and what was found", a.id)),
        ),
        ReviewCommand::Approve(a) => decide(a, true).await,
        ReviewCommand::Flag(a) => decide(a, false).await,
    }
}

async fn decide(a: crate::cli::ReviewDecisionArgs, approve: bool) -> CliResult {
    let d = breakglass_core::api::ReviewDecision { notes: a.notes, lessons: a.lessons, follow_ups: a.follow_ups };
    let r = connect(&a.client)?.decide_review(&a.id, approve, &d).await?;
    if a.json {
        print_json(&r);
    } else {
        println!("review {} of grant {} {} by {}", r.id, r.grant, r.status, r.reviewer.as_deref().unwrap_or("?"));
    }
    Ok(())
}

fn print_review(r: &breakglass_core::api::ReviewView) {
    let field = |name: &str, value: String| println!("{name:<12}{}", crate::display::line(&value));
    field("review", r.id.clone());
    field("grant", format!("{} of {} ({})", r.grant, r.principal, r.grant_end));
    field("scopes", r.scopes.join(", "));
    field("status", if r.overdue { format!("{} (overdue)", r.status) } else { r.status.clone() });
    field("due", short_time(r.deadline));
    if let Some(who) = &r.reviewer {
        field("reviewer", format!("{who} at {}", opt_time(r.decided_at)));
        // Notes are prose: their lines are kept, indented under the label.
        println!("{:<12}{}", "notes", crate::display::prose(&r.notes).replace('\n', &format!("\n{:12}", "")));
        for l in &r.lessons {
            field("lesson", l.clone());
        }
        for f in &r.follow_ups {
            field("follow-up", f.clone());
        }
    }
    println!();
    println!("timeline ({} entries):", r.timeline.len());
    for e in &r.timeline {
        println!(
            "  #{:<8} {}  {:<18} {}",
            e.index,
            crate::display::line(&e.time),
            crate::display::line(&e.kind),
            crate::display::line(&e.summary)
        );
    }
}

pub async fn notifications(args: crate::cli::NotificationsArgs) -> CliResult {
    use crate::cli::NotificationsCommand;
    if let Some(NotificationsCommand::Retry { id, json, client }) = args.command {
        let n = connect(&client)?.retry_notification(&id).await?;
        if json {
            print_json(&n);
        } else {
            println!("notification {} queued again", n.id);
        }
        return Ok(());
    }
    let list = connect(&args.client)?.notifications(args.status.as_deref()).await?;
    if args.json {
        print_json(&list);
        return Ok(());
    }
    if list.notifications.is_empty() {
        println!("no notifications");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .notifications
        .iter()
        .map(|n| {
            let state = match (n.status.as_str(), n.next_attempt_at) {
                ("pending", Some(at)) if n.attempts > 0 => format!("retry {}", short_time(at)),
                ("pending", Some(at)) => format!("pending {}", short_time(at)),
                (s, _) => s.to_owned(),
            };
            vec![
                n.id.clone(),
                n.channel.clone(),
                n.event.clone(),
                n.grant.clone(),
                state,
                n.attempts.to_string(),
                n.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["ID", "CHANNEL", "EVENT", "GRANT", "STATE", "ATTEMPTS", "LAST ERROR"], &rows);
    Ok(())
}

pub async fn show(args: ShowArgs) -> CliResult {
    let client = connect(&args.client)?;
    let view = client.grant(&args.id).await?;
    if args.json {
        print_json(&view);
        return Ok(());
    }
    let now = now();
    // Every value is escaped: the reason, extension reasons and end reason
    // were written by the requester or an approver.
    let field = |name: &str, value: String| println!("{name:<14}{}", crate::display::line(&value));
    field("id", view.id.clone());
    field("principal", view.principal.clone());
    field("state", format!("{}{}", state_phrase(&view), if view.effective { ", effective now" } else { "" }));
    field("scopes", view.scopes.join(", "));
    field("capabilities", view.capabilities.join(", "));
    field("reason", view.reason.clone());
    field("incident", view.incident.clone().unwrap_or_else(|| "-".into()));
    field("requested", when(view.requested_at, now));
    field("duration", format!("{} (policy maximum {})", view.duration, view.max_duration));
    let approvals = if view.approvals.is_empty() {
        format!("none of {} required", view.approvals_required)
    } else {
        let who: Vec<String> = view.approvals.iter().map(|a| format!("{} at {}", a.by, short_time(a.at))).collect();
        format!("{} of {} required: {}", view.approvals.len(), view.approvals_required, who.join("; "))
    };
    field("approvals", approvals);
    if view.state == GrantState::Pending {
        field("pending until", when(view.pending_until, now));
    }
    field("activated", view.activated_at.map_or_else(|| "-".into(), |t| when(t, now)));
    field("expires", view.expires_at.map_or_else(|| "-".into(), |t| when(t, now)));
    if view.extensions.is_empty() {
        field("extensions", "none".into());
    }
    for (idx, ext) in view.extensions.iter().enumerate() {
        let name = if idx == 0 { "extensions" } else { "" };
        field(
            name,
            format!("+{} by {} at {}: {}", human_duration(ext.added_ms), ext.by, short_time(ext.at), ext.reason),
        );
    }
    if let Some(ended) = view.ended_at {
        let by = view.ended_by.as_deref().unwrap_or("the server");
        let why = view.end_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        field("ended", format!("{} by {by}{why}", when(ended, now)));
    }
    let indexes: Vec<String> = view.log_indexes.iter().map(u64::to_string).collect();
    field("log entries", if indexes.is_empty() { "-".into() } else { indexes.join(", ") });
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::Command;
    use crate::client::tests::parse;
    use crate::error::ExitCode;

    #[test]
    fn request_requires_a_reason_scope_and_cap() {
        let base = ["request", "--scope", "git:a/b@refs/heads/main", "--cap", "push"];
        let err = parse(&base).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(err.exit_code(), ExitCode::BadInput as i32);
        assert!(err.to_string().contains("--reason"), "{err}");

        let cli = parse(&[&base[..], &["--reason", "prod down", "--for", "45m", "--incident", "P1"]].concat()).unwrap();
        let Command::Request(args) = cli.command else { panic!("not request") };
        assert_eq!(args.scopes, ["git:a/b@refs/heads/main"]);
        assert_eq!(args.caps, ["push"]);
        assert_eq!((args.duration.as_str(), args.incident.as_deref()), ("45m", Some("P1")));

        assert!(parse(&["request", "--cap", "push", "--reason", "r"]).is_err(), "--scope is required");
        assert!(parse(&["request", "--scope", "git:a/b@refs/heads/main", "--reason", "r"]).is_err(), "--cap");
    }

    #[test]
    fn deny_revoke_extend_require_reasons() {
        assert!(parse(&["deny", "g_1"]).is_err());
        assert!(parse(&["revoke", "g_1"]).is_err());
        assert!(parse(&["extend", "g_1", "--by", "15m"]).is_err());
        assert!(parse(&["extend", "g_1", "--by", "15m", "--reason", "still fixing"]).is_ok());
        assert!(parse(&["approve", "g_1"]).is_ok(), "a comment is optional");
    }
}
