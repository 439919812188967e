//! `breakglass ci status|gate|record deploy`: pipeline steps that recognise
//! break-glass mode and adapt to it.
//!
//! Security: the pipeline's author controls the job's environment and
//! arguments; this decides whether a gate (tests, a scanner, an
//! approval check) runs. It fails closed: a gate is relaxed only under a
//! grant that the server confirms (the job proves who it is with its OIDC ID
//! token) or, when the server cannot be reached, under a grant token that
//! verifies offline against a pinned key; otherwise the job runs in normal
//! mode and every gate counts. Gates that policy marks never-skippable (or
//! that `BREAKGLASS_NEVER_SKIP` names, when offline) always run and count.

pub mod output;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use breakglass_client::{Client, ClientError};
use breakglass_core::api::{CiGrant, CiStatus, EventRequest, GateDecision};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::time::Clock as _;
use breakglass_core::token::{Expect, KeySet};
use serde_json::json;

use crate::cli::{CiArgs, CiCommand, CiRecordCommand};
use crate::datadir::SystemClock;
use crate::error::{CliResult, bad_input, check_failed, internal};
use crate::git::spool;
use crate::print_json;

/// What a job whose credential the server refused should check.
const CI_UNAUTHORIZED_HINT: &str = "the server did not accept this job's credential. With an OIDC ID token: \
is its issuer a [[ci.issuer]] of the server, its audience the server's ci.audience (--audience, \
BREAKGLASS_OIDC_AUDIENCE), its repository a [[ci.project]]? With BREAKGLASS_TOKEN: is it current?";

/// How a job proves who it is.
enum Credential {
    /// An OIDC ID token, or a breakglass API token: the server decides.
    Bearer(String),
    /// Only a grant token: verified offline when the server is unreachable.
    None,
}

/// What was decided, and how.
struct Resolved {
    status: CiStatus,
    /// `server`, `token (offline)` or `normal (server unreachable)`.
    source: &'static str,
    /// Where events go: the server (when it answered) or the spool.
    online: Option<Client>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The job's OIDC ID token: GitHub Actions' token service, or the variable
/// a GitLab job's `id_tokens` names.
async fn oidc_token(args: &CiArgs) -> CliResult<Option<String>> {
    if let Some(v) = env(&args.oidc_token_var) {
        return Ok(Some(v.trim().to_owned()));
    }
    let (Some(url), Some(request_token)) = (env("ACTIONS_ID_TOKEN_REQUEST_URL"), env("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
    else {
        return Ok(None);
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}audience={}", urlencode(&args.audience));
    let token = breakglass_client::fetch_actions_id_token(&full, &request_token)
        .await
        .map_err(|e| internal(format!("cannot get the job's OIDC ID token from GitHub Actions: {e}")))?;
    Ok(Some(token))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn credential(args: &CiArgs) -> CliResult<(Credential, Option<String>)> {
    let env_token = env("BREAKGLASS_TOKEN").map(|t| t.trim().to_owned());
    // BREAKGLASS_TOKEN is either an API token or a grant token.
    let (api, grant) = match env_token {
        Some(t) if t.starts_with("bgk_") || t.starts_with("bgs_") => (Some(t), None),
        Some(t) => (None, Some(t)),
        None => (None, None),
    };
    if let Some(t) = api {
        return Ok((Credential::Bearer(t), grant));
    }
    match oidc_token(args).await? {
        Some(t) => Ok((Credential::Bearer(t), grant)),
        // Only a grant token: ask the server with it first (so a revoked
        // grant relaxes nothing), and use it offline only if it cannot answer.
        None => match grant.clone() {
            Some(g) => Ok((Credential::Bearer(g), grant)),
            None => Ok((Credential::None, grant)),
        },
    }
}

fn server_url(args: &CiArgs) -> CliResult<String> {
    Ok(breakglass_client::normalize_server_url(&args.server)?)
}

fn unreachable(e: &ClientError) -> bool {
    matches!(e, ClientError::Unreachable { .. } | ClientError::TimedOut { .. }) || e.status().is_some_and(|s| s >= 500)
}

/// When the server says the person who triggered the job is no principal
/// (`ci:<issuer>:id:<id>`), what to tell the operator: the exact accounts
/// entry that would make them one. People are known by their account's
/// immutable id, never by a login, which can be renamed and then registered
/// by someone else.
fn unmapped_note(principal: &str) -> Option<String> {
    let account = principal.strip_prefix("ci:")?;
    let (issuer, id) = account.split_once(":id:")?;
    let login = ["GITHUB_ACTOR", "GITLAB_USER_LOGIN"]
        .iter()
        .find_map(|v| env(v))
        .map(|l| format!(" (login {})", crate::display::line(&l)))
        .unwrap_or_default();
    Some(format!(
        "breakglass: the person who triggered this job, {issuer} account id {}{login}, is no principal, so none of \
         their grants applies. If they are one, add this line to their [[principal]] table in principals.toml: \
         accounts = [\"{}\"] (a login entry such as \"{issuer}:<login>\" identifies nobody: a login can be renamed \
         and then registered by someone else)",
        crate::display::line(id),
        crate::display::line(account)
    ))
}

/// Decides break-glass mode for `scope` (and `gate`): the server when it
/// answers, else the grant token offline, else normal mode.
async fn resolve(args: &CiArgs, scope: &str, gate: Option<&str>) -> CliResult<Resolved> {
    let target = Scope::parse(scope).map_err(|e| bad_input(e.to_string()))?;
    if !matches!(target, Scope::Pipeline { .. }) {
        return Err(bad_input(format!("--scope {scope:?}: expected pipeline:<project>/<stage>[@<environment>]")));
    }
    let url = server_url(args)?;
    let (cred, grant_token) = credential(args).await?;
    let mut why_offline = String::from("no OIDC ID token or API token to ask the server with");
    if let Credential::Bearer(token) = cred {
        let client = Client::with_timeout(&url, Some(token), Duration::from_millis(args.timeout_ms))?;
        match client.ci_status(scope, gate, args.principal.as_deref()).await {
            Ok(status) => {
                if let Some(note) = unmapped_note(&status.principal) {
                    eprintln!("{note}");
                }
                flush_spool(args, &client).await;
                return Ok(Resolved { status, source: "server", online: Some(client) });
            }
            Err(e) if unreachable(&e) => why_offline = format!("the server is unreachable ({e})"),
            Err(e) => return Err(crate::client::cli_error(e, CI_UNAUTHORIZED_HINT)),
        }
    }
    let never = never_skip();
    if let Some(token) = grant_token {
        match offline(args, &url, &token, &target, gate, &never) {
            Ok(status) => {
                eprintln!("breakglass: {why_offline}; using the grant token offline");
                return Ok(Resolved { status, source: "token (offline)", online: None });
            }
            Err(e) => eprintln!("breakglass: {}", e.message),
        }
    }
    eprintln!("breakglass: {why_offline}; normal mode: every gate runs and counts");
    let status = CiStatus {
        scope: target.to_string(),
        principal: String::new(),
        active: false,
        grant: None,
        relaxations: Vec::new(),
        gate: gate.map(|g| GateDecision {
            name: g.into(),
            mode: "run".into(),
            never_skippable: never.contains(&g.to_owned()),
        }),
    };
    Ok(Resolved { status, source: "normal (server unreachable)", online: None })
}

/// `BREAKGLASS_NEVER_SKIP=secret-scan,license`: gates never relaxed offline.
fn never_skip() -> Vec<String> {
    env("BREAKGLASS_NEVER_SKIP")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// Break-glass mode from a grant token alone, verified against the pinned key.
fn offline(
    args: &CiArgs,
    url: &str,
    token: &str,
    target: &Scope,
    gate: Option<&str>,
    never: &[String],
) -> CliResult<CiStatus> {
    let Some(key) = &args.key else {
        return Err(bad_input(
            "BREAKGLASS_TOKEN holds a grant token but no pinned key verifies it: pass --key FILE or set BREAKGLASS_GRANT_KEYS",
        ));
    };
    let text =
        std::fs::read_to_string(key).map_err(|e| bad_input(format!("cannot read --key {}: {e}", key.display())))?;
    let keys = KeySet::parse(&text).map_err(|e| bad_input(format!("--key {}: {e}", key.display())))?;
    let issuer = args.issuer.clone().unwrap_or_else(|| url.to_owned());
    let expect = Expect::new(issuer, Duration::from_secs(7 * 24 * 3600)).with_scope(target.clone());
    let claims = breakglass_core::token::verify(token, &keys, &expect, SystemClock.now())
        .map_err(|e| check_failed(format!("the grant token in BREAKGLASS_TOKEN was refused: {e}")))?;
    let relaxations: Vec<String> = claims
        .capabilities
        .iter()
        .filter(|c| Capability::parse(c).is_ok_and(|c| c.kind() == breakglass_core::scope::ScopeKind::Pipeline))
        .cloned()
        .collect();
    let gate = gate.map(|g| {
        let never_skippable = never.iter().any(|n| n == g);
        let mode = if never_skippable {
            "run"
        } else if relaxations.contains(&format!("skip-gate:{g}")) {
            "skip"
        } else if relaxations.contains(&format!("advisory-gate:{g}")) {
            "advisory"
        } else {
            "run"
        };
        GateDecision { name: g.into(), mode: mode.into(), never_skippable }
    });
    Ok(CiStatus {
        scope: target.to_string(),
        principal: claims.principal.clone(),
        active: !relaxations.is_empty(),
        grant: Some(CiGrant {
            id: claims.grant_id.clone(),
            principal: claims.principal.clone(),
            reason: String::new(),
            expires_at: claims.expires_at,
        }),
        relaxations,
        gate,
    })
}

fn spool_dir(args: &CiArgs) -> PathBuf {
    args.spool.clone().unwrap_or_else(|| PathBuf::from(".breakglass-spool"))
}

async fn flush_spool(args: &CiArgs, client: &Client) {
    let dir = spool_dir(args);
    if dir.exists() {
        let f = spool::flush(&dir, client).await;
        if f.delivered + f.duplicates > 0 {
            eprintln!("breakglass: delivered {} spooled event(s)", f.delivered + f.duplicates);
        }
    }
}

/// Sends an event to the server, or spools it.
async fn report(args: &CiArgs, r: &Resolved, kind: &str, data: serde_json::Value) -> CliResult {
    let actor = r.status.grant.as_ref().map_or(r.status.principal.clone(), |g| g.principal.clone());
    let event = EventRequest {
        id: spool::new_event_id(),
        kind: kind.into(),
        actor: if actor.is_empty() { "ci".into() } else { actor },
        grant: r.status.grant.as_ref().map(|g| g.id.clone()),
        at: SystemClock.now(),
        data,
    };
    if let Some(c) = &r.online {
        match c.record_event(&event).await {
            Ok(_) => return Ok(()),
            Err(e) if !unreachable(&e) => return Err(crate::client::cli_error(e, CI_UNAUTHORIZED_HINT)),
            Err(_) => {}
        }
    }
    spool::spool(&spool_dir(args), &event).map(|_| ()).map_err(internal)
}

pub async fn run(cmd: CiCommand) -> CliResult {
    match cmd {
        CiCommand::Status { args, scope, gate, dotenv, json } => {
            let r = resolve(&args, &scope, gate.as_deref()).await?;
            write_outputs(&r, dotenv.as_deref())?;
            if json {
                print_json(&json!({ "status": r.status, "source": r.source }));
            } else {
                print_status(&r);
            }
            Ok(())
        }
        CiCommand::Gate { args, name, scope, json, command } => gate(args, &name, &scope, json, &command).await,
        CiCommand::Record(CiRecordCommand::Deploy { args, scope, commit, artifact, json }) => {
            if !crate::git::repo::is_oid(&commit.to_ascii_lowercase()) {
                return Err(bad_input(format!("--commit {commit:?}: expected a full commit id (40 or 64 hex digits)")));
            }
            if let Some(a) = &artifact
                && !(a.starts_with("sha256:") && a.len() == 71 && a[7..].bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(bad_input(format!("--artifact {a:?}: expected sha256:<64 hex digits>")));
            }
            let r = resolve(&args, &scope, None).await?;
            let deploy_allowed = r.status.relaxations.iter().any(|c| c == "deploy");
            let data = json!({
                "scope": scope, "commit": commit, "artifact": artifact,
                "break_glass": deploy_allowed, "source": r.source,
            });
            report(&args, &r, "ci.deploy", data).await?;
            if json {
                print_json(&json!({ "recorded": true, "break_glass": deploy_allowed, "grant": r.status.grant }));
            } else {
                println!(
                    "recorded the deployment of {commit} to {scope}{}",
                    r.status.grant.as_ref().map_or(String::new(), |g| format!(" under grant {}", g.id))
                );
            }
            Ok(())
        }
    }
}

async fn gate(args: CiArgs, name: &str, scope: &str, json: bool, command: &[String]) -> CliResult {
    let Some((program, rest)) = command.split_first() else {
        return Err(bad_input("no gate command: breakglass ci gate NAME --scope S -- COMMAND [ARGS]"));
    };
    let r = resolve(&args, scope, Some(name)).await?;
    let decision =
        r.status.gate.clone().unwrap_or(GateDecision { name: name.into(), mode: "run".into(), never_skippable: false });
    let started = Instant::now();
    let (ran, code) = if decision.mode == "skip" {
        eprintln!("breakglass: gate {name} skipped under grant {}", grant_id(&r));
        (false, None)
    } else {
        let status = std::process::Command::new(program)
            .args(rest)
            .status()
            .map_err(|e| bad_input(format!("cannot run the gate command {program:?}: {e}")))?;
        (true, Some(status.code().unwrap_or(1)))
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let failed = code.is_some_and(|c| c != 0);
    let outcome = match (decision.mode.as_str(), failed) {
        ("skip", _) => "skipped",
        ("advisory", true) => "advisory-failed",
        ("advisory", false) => "advisory-passed",
        (_, true) => "failed",
        (_, false) => "passed",
    };
    let data = json!({
        "scope": scope, "gate": name, "mode": decision.mode, "never_skippable": decision.never_skippable,
        "ran": ran, "exit_code": code, "duration_ms": duration_ms, "outcome": outcome, "source": r.source,
    });
    report(&args, &r, "ci.gate", data.clone()).await?;
    if json {
        print_json(&data);
    }
    match outcome {
        "advisory-failed" => {
            eprintln!(
                "breakglass: gate {name} failed (exit {}) but is advisory under grant {}: the job continues",
                code.unwrap_or(1),
                grant_id(&r)
            );
            Ok(())
        }
        "failed" => std::process::exit(code.unwrap_or(1)),
        _ => Ok(()),
    }
}

fn grant_id(r: &Resolved) -> String {
    r.status.grant.as_ref().map_or_else(|| "-".into(), |g| g.id.clone())
}

fn outputs(r: &Resolved) -> output::Outputs {
    let s = &r.status;
    let list = |prefix: &str| s.relaxations.iter().filter_map(|c| c.strip_prefix(prefix)).collect::<Vec<_>>().join(",");
    let g = s.grant.as_ref();
    vec![
        ("active".into(), s.active.to_string()),
        ("grant".into(), g.map(|g| g.id.clone()).unwrap_or_default()),
        ("grantee".into(), g.map(|g| g.principal.clone()).unwrap_or_default()),
        ("reason".into(), g.map(|g| g.reason.clone()).unwrap_or_default()),
        ("expires_at".into(), g.map(|g| g.expires_at.to_rfc3339()).unwrap_or_default()),
        ("skip_gates".into(), list("skip-gate:")),
        ("advisory_gates".into(), list("advisory-gate:")),
        ("deploy".into(), s.relaxations.iter().any(|c| c == "deploy").to_string()),
        ("source".into(), r.source.into()),
    ]
}

fn append(path: &Path, text: &str) -> CliResult {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| internal(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(text.as_bytes()).map_err(|e| internal(format!("cannot write {}: {e}", path.display())))
}

/// GitHub Actions outputs and job summary; a GitLab dotenv file.
fn write_outputs(r: &Resolved, dotenv: Option<&Path>) -> CliResult {
    let outs = outputs(r);
    if env("GITHUB_ACTIONS").as_deref() == Some("true") {
        if let Some(path) = env("GITHUB_OUTPUT") {
            append(Path::new(&path), &output::github_outputs(&outs, &spool::new_event_id()))?;
        }
        if let Some(path) = env("GITHUB_STEP_SUMMARY") {
            append(Path::new(&path), &summary(r))?;
        }
    }
    if env("GITLAB_CI").as_deref() == Some("true") || dotenv.is_some() {
        let path = dotenv.map_or_else(|| PathBuf::from("breakglass.env"), Path::to_path_buf);
        std::fs::write(&path, output::gitlab_dotenv(&outs, "breakglass_"))
            .map_err(|e| internal(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn summary(r: &Resolved) -> String {
    let s = &r.status;
    let mut out = String::from("### breakglass\n\n");
    match &s.grant {
        Some(g) if s.active => {
            out.push_str(&format!(
                "**Break-glass mode is active** for `{}`.\n\n| grant | grantee | reason | expires |\n|---|---|---|---|\n| `{}` | {} | {} | {} |\n\nRelaxations: {}\n",
                s.scope,
                g.id,
                output::md_cell(&g.principal),
                output::md_cell(&g.reason),
                g.expires_at.to_rfc3339(),
                s.relaxations.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        _ => out.push_str(&format!("Normal mode for `{}`: every gate runs and counts ({}).\n", s.scope, r.source)),
    }
    out
}

fn print_status(r: &Resolved) {
    let s = &r.status;
    match &s.grant {
        Some(g) if s.active => {
            println!("break-glass mode is ACTIVE for {} ({})", s.scope, r.source);
            println!("grant       {}", g.id);
            println!("grantee     {}", crate::display::line(&g.principal));
            if !g.reason.is_empty() {
                println!("reason      {}", crate::display::line(&g.reason));
            }
            println!("expires     {}", g.expires_at.to_rfc3339());
            println!("relaxations {}", s.relaxations.join(", "));
        }
        _ => println!("normal mode for {} ({}): every gate runs and counts", s.scope, r.source),
    }
    if let Some(g) = &s.gate {
        println!("gate {}: {}{}", g.name, g.mode, if g.never_skippable { " (never skippable by policy)" } else { "" });
    }
}

/// `breakglass spool flush --dir DIR`: delivers a CI spool.
pub async fn flush(dir: Option<PathBuf>, args: CiArgs, json: bool) -> CliResult {
    let dir = dir.or_else(|| args.spool.clone()).unwrap_or_else(|| spool_dir(&args));
    let (cred, _) = credential(&args).await?;
    let Credential::Bearer(token) = cred else {
        return Err(bad_input(
            "no credentials to deliver with: set BREAKGLASS_TOKEN to an API token, or run in a CI job",
        ));
    };
    let client = Client::with_timeout(&server_url(&args)?, Some(token), Duration::from_millis(args.timeout_ms))?;
    crate::git::report_flush(spool::flush(&dir, &client).await, json)
}
