//! `breakglass policy …`: check, test and explain the Cedar policies, from
//! files on disk. The decisions themselves are `breakglass_core::policy`.

use std::path::{Path, PathBuf};

use breakglass_core::grant;
use breakglass_core::policy::{self, ContextInput, IncidentInput, Policy, PolicyLoadError, RequestInput};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::time::{Clock as _, Timestamp};
use serde_json::json;

use crate::cli::{PolicyCommand, PolicyExplainArgs};
use crate::datadir::SystemClock;
use crate::error::{CliResult, bad_input, check_failed, not_found};
use crate::print_json;

pub fn run(cmd: PolicyCommand) -> CliResult {
    match cmd {
        PolicyCommand::Check { dir, json } => check(&dir, json),
        PolicyCommand::Test { file, policies, json } => test(&file, policies, json),
        PolicyCommand::Explain(args) => explain(*args),
        // Talks to a server; main routes it to the client commands.
        PolicyCommand::Reload(_) => Err(crate::error::internal("policy reload is a client command")),
    }
}

/// Every `*.cedar` file in `dir`, by name, as (path, text).
fn read_sources(dir: &Path) -> CliResult<Vec<(String, String)>> {
    breakglass_server::service::read_policy_dir(dir).map_err(not_found)
}

fn load(dir: &Path) -> Result<Policy, LoadFailure> {
    let sources = read_sources(dir).map_err(LoadFailure::Cli)?;
    Policy::load(&sources).map_err(LoadFailure::Invalid)
}

enum LoadFailure {
    Cli(crate::error::CliError),
    Invalid(PolicyLoadError),
}

/// Loads the policies, or fails with every problem (exit 1).
fn load_or_fail(dir: &Path) -> CliResult<Policy> {
    match load(dir) {
        Ok(p) => Ok(p),
        Err(LoadFailure::Cli(e)) => Err(e),
        Err(LoadFailure::Invalid(e)) => Err(check_failed(format!("policies in {}: {e}", dir.display()))),
    }
}

fn check(dir: &Path, json: bool) -> CliResult {
    match load(dir) {
        Ok(policy) => {
            if json {
                print_json(&json!({ "ok": true, "policies": policy.policies().collect::<Vec<_>>() }));
            } else {
                println!("ok: {} policies", policy.len());
            }
            Ok(())
        }
        Err(LoadFailure::Cli(e)) => Err(e),
        Err(LoadFailure::Invalid(e)) => {
            if json {
                print_json(&json!({ "ok": false, "problems": e.problems }));
            } else {
                for p in &e.problems {
                    println!("{p}");
                }
            }
            Err(check_failed(format!(
                "{} problem{} in the policies in {}",
                e.problems.len(),
                if e.problems.len() == 1 { "" } else { "s" },
                dir.display()
            )))
        }
    }
}

fn test(file: &Path, policies: Option<PathBuf>, json: bool) -> CliResult {
    let dir = policies.unwrap_or_else(|| match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let table = std::fs::read_to_string(file).map_err(|e| {
        let msg = format!("cannot read test table {}: {e}", file.display());
        if e.kind() == std::io::ErrorKind::NotFound { not_found(msg) } else { bad_input(msg) }
    })?;
    let policy = load_or_fail(&dir)?;
    let results = policy::run_tests(&policy, &table).map_err(|e| bad_input(format!("{}: {e}", file.display())))?;
    let failed = results.iter().filter(|r| !r.passed).count();
    if json {
        print_json(&json!({ "passed": results.len() - failed, "failed": failed, "cases": results }));
    } else {
        let word = |allow: bool| if allow { "allow" } else { "deny" };
        for r in &results {
            if r.passed {
                println!("pass  {}", r.name);
            } else {
                let mut why = Vec::new();
                if !r.determining.is_empty() {
                    why.push(format!("determined by {}", r.determining.join(", ")));
                }
                if !r.errors.is_empty() {
                    why.push(r.errors.join("; "));
                }
                let why = if why.is_empty() { String::from("no policy applied") } else { why.join("; ") };
                println!("FAIL  {}: expected {}, got {} ({why})", r.name, word(r.expected_allow), word(r.allowed));
            }
        }
        println!("{} passed, {failed} failed", results.len() - failed);
    }
    if failed > 0 {
        return Err(check_failed(format!("{failed} of {} policy test cases failed", results.len())));
    }
    Ok(())
}

fn explain(args: PolicyExplainArgs) -> CliResult {
    if !policy::ACTIONS.contains(&args.action.as_str()) {
        return Err(bad_input(format!(
            "unknown action {:?}: expected one of {}",
            args.action,
            policy::ACTIONS.join(", ")
        )));
    }
    let scopes = args
        .scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_input(e.to_string()))?;
    let caps = args
        .caps
        .iter()
        .map(|c| Capability::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_input(e.to_string()))?;
    let duration_ms = grant::parse_duration(&args.duration).map_err(|e| bad_input(format!("--duration: {e}")))?;
    let now = match &args.at {
        Some(t) => Timestamp::parse(t).map_err(|e| bad_input(format!("--at: {e}")))?,
        None => SystemClock.now(),
    };
    let incident = args.incident_severity.map(|severity| IncidentInput {
        id: args.incident_id.clone(),
        severity,
        status: args.incident_status.clone(),
        services: Vec::new(),
        requester_is_responder: args.responder,
    });
    let policy = load_or_fail(&args.policies)?;

    if args.action == "request" && !caps.is_empty() {
        let d = policy.decide_request(&RequestInput {
            principal: args.principal.clone(),
            groups: args.groups.clone(),
            scopes,
            capabilities: caps,
            duration_ms,
            reason: args.reason.clone(),
            incident,
            overdue_reviews: args.overdue_reviews,
            now,
            pending_ttl_ms: 0,
        });
        if args.json {
            print_json(&json!({
                "allowed": d.allowed,
                "auto_approve": d.auto_approve,
                "approvals_required": d.terms.as_ref().map(|t| t.approvals_required),
                "max_duration_ms": d.terms.as_ref().map(|t| t.max_duration_ms),
                "steps": d.reasons,
            }));
        } else {
            println!("{}", if d.allowed { "ALLOW" } else { "DENY" });
            if let Some(t) = &d.terms {
                let approval = if d.auto_approve {
                    "auto-approved".to_owned()
                } else {
                    format!(
                        "{} approval{} needed",
                        t.approvals_required,
                        if t.approvals_required == 1 { "" } else { "s" }
                    )
                };
                println!("{approval}, at most {} in total", grant::human_duration(t.max_duration_ms));
            }
            for r in &d.reasons {
                println!("  {r}");
            }
        }
        return Ok(());
    }

    // One action: its gate comes from --cap (which must be of that action) or --gate.
    let mut gate = args.gate.clone().unwrap_or_default();
    for cap in &caps {
        let (action, g) = policy::capability_action(cap);
        if action != args.action {
            return Err(bad_input(format!("--cap {cap} is checked as {action}, not {}", args.action)));
        }
        gate = g.to_owned();
    }
    if caps.len() > 1 {
        return Err(bad_input("give at most one --cap with a capability action".to_owned()));
    }
    let ctx = ContextInput {
        requester: args.requester.clone().unwrap_or_else(|| args.principal.clone()),
        overdue_reviews: args.overdue_reviews,
        duration_ms,
        reason: args.reason.clone(),
        gate,
        incident,
        now,
    };
    let mut steps = Vec::new();
    for scope in &scopes {
        let d = match args.action.as_str() {
            "approve" => policy.decide_approval(&args.principal, &args.groups, std::slice::from_ref(scope), &ctx),
            "review" => policy.decide_review(&args.principal, &args.groups, std::slice::from_ref(scope), &ctx),
            action => policy.decide(&args.principal, &args.groups, action, scope, &ctx),
        };
        steps.push((scope.to_string(), d));
    }
    let allowed = steps.iter().all(|(_, d)| d.allowed);
    if args.json {
        let steps: Vec<_> = steps
            .iter()
            .map(|(s, d)| json!({ "scope": s, "allowed": d.allowed, "determining": d.determining, "errors": d.errors }))
            .collect();
        print_json(&json!({ "allowed": allowed, "action": args.action, "steps": steps }));
    } else {
        println!("{}", if allowed { "ALLOW" } else { "DENY" });
        for (scope, d) in &steps {
            let why = if !d.errors.is_empty() {
                format!("denied: {}", d.errors.join("; "))
            } else if d.determining.is_empty() {
                "no policy permits it".to_owned()
            } else if d.allowed {
                format!("permitted by {}", d.determining.join(", "))
            } else {
                format!("forbidden by {}", d.determining.join(", "))
            };
            println!("  {} {} on {scope}: {why}", if d.allowed { "allow" } else { "deny" }, args.action);
        }
    }
    Ok(())
}
