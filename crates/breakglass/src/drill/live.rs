//! `breakglass drill --server URL`: the drill's steps against a live server,
//! as the logged-in principal, on drill scopes only (repository or project
//! `breakglass-drill[/...]`, enforced by the server), every entry marked as
//! a drill. A live server's clock cannot be moved, so the grant is revoked
//! instead of waiting for its expiry: the end, the restored protection and
//! the review are the same. The result is stored on the server
//! (`drill.completed`), for `breakglass drill history`.
//!
//! Steps: server reachable; request (drill); approval (automatic, by a
//! second principal's session from `--approver-credentials`, or waited for
//! from a person); grant token; with `--repo`, a tagged commit pushed to the
//! protected ref with the token as a push option; with `--gate`, a failing
//! gate skipped by `breakglass ci gate`; the grant ended; with `--repo`, the
//! same push refused; the review opened with those events; the review's
//! report verified (every event's inclusion proof against a signed checkpoint).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use breakglass_client::Client;
use breakglass_core::api::{ApproveRequest, GrantRequest, GrantView};
use breakglass_core::scope::Scope;

use super::{Drill, e, git, out_text, print_report};
use crate::cli::ClientArgs;
use crate::client::connect;
use crate::credentials::CredentialStore;
use crate::error::{CliError, CliResult, ExitCode, bad_input, internal};
use crate::sandbox::{clean_cmd, git_cmd};

/// What `drill --server` was asked to do.
#[derive(Debug)]
pub struct Live {
    pub server: String,
    pub scopes: Vec<String>,
    pub duration: String,
    pub repo: Option<String>,
    pub gate: Option<String>,
    pub approver: Option<PathBuf>,
    pub wait: String,
}

pub const DEFAULT_SCOPE: &str = "git:breakglass-drill@refs/heads/main";

/// The capabilities the drill asks for: push on each ref, the gate's skip.
fn capabilities(scopes: &[Scope], gate: Option<&str>) -> Vec<String> {
    let mut caps = Vec::new();
    if scopes.iter().any(|s| matches!(s, Scope::Git { .. })) {
        caps.push("push".to_owned());
    }
    if let Some(g) = gate {
        caps.push(format!("skip-gate:{g}"));
    }
    caps
}

pub async fn run(live: Live, json: bool) -> CliResult {
    let scopes: Vec<Scope> = live
        .scopes
        .iter()
        .map(|s| Scope::parse(s).map_err(|x| bad_input(format!("invalid --scope {s:?}: {x}"))))
        .collect::<CliResult<_>>()?;
    let git_ref = scopes.iter().find_map(|s| match s {
        Scope::Git { reference, .. } if !reference.ends_with('*') => Some(reference.clone()),
        _ => None,
    });
    let pipeline = scopes.iter().find(|s| matches!(s, Scope::Pipeline { .. })).map(|s| s.to_string());
    if live.repo.is_some() && git_ref.is_none() {
        return Err(bad_input("--repo needs a git: scope naming one ref (e.g. git:breakglass-drill@refs/heads/main)"));
    }
    if live.gate.is_some() && pipeline.is_none() {
        return Err(bad_input("--gate needs a pipeline: scope (e.g. pipeline:breakglass-drill/app/test)"));
    }
    let wait_ms = breakglass_core::grant::parse_duration(&live.wait)
        .map_err(|x| bad_input(format!("invalid --wait {:?}: {x}", live.wait)))?;
    let approver = match &live.approver {
        None => None,
        Some(path) => {
            let creds = CredentialStore::at(path).get(&live.server)?.ok_or_else(|| {
                bad_input(format!("{} holds no session for {} (log the approver in with BREAKGLASS_CREDENTIALS={} breakglass login …)", path.display(), live.server, path.display()))
            })?;
            Some(Client::new(&live.server, Some(creds.token))?)
        }
    };
    let client = connect(&ClientArgs { server: live.server.clone() })?;
    let caps = capabilities(&scopes, live.gate.as_deref());
    if caps.is_empty() {
        return Err(bad_input(
            "the drill's scopes give it nothing to do: name a git: scope, or a pipeline: scope with --gate",
        ));
    }
    let scratch = tempfile::tempdir().map_err(|x| internal(format!("cannot make a scratch directory: {x}")))?;
    let mut drill = Drill::new();
    let mut grant_id = None;
    let ctx = Ctx {
        live: &live,
        client: &client,
        approver: approver.as_ref(),
        caps,
        git_ref,
        pipeline,
        wait: Duration::from_millis(wait_ms as u64),
        work: scratch.path().join("work"),
    };
    let result = steps(&mut drill, &ctx, &mut grant_id).await;
    // A drill that stopped half-way leaves no grant behind.
    if result.is_err()
        && let Some(g) = &grant_id
    {
        let _ = client.revoke(g, "drill failed; ending its grant").await;
    }
    let report = drill.report(&result, grant_id);
    let stored = client.record_drill(&report).await;
    if json {
        let mut v = serde_json::to_value(&report).map_err(|x| internal(x.to_string()))?;
        v["recorded"] = match &stored {
            Ok(r) => serde_json::json!({ "id": r.id, "index": r.index }),
            Err(x) => serde_json::json!({ "error": x.to_string() }),
        };
        crate::print_json(&v);
    } else {
        print_report(&report);
        match &stored {
            Ok(r) => println!("recorded as {} (log entry {})", r.id, r.index.map_or("?".into(), |i| i.to_string())),
            Err(x) => println!("NOT recorded on the server: {x}"),
        }
    }
    match (result, stored) {
        (Err(why), _) => Err(CliError { code: ExitCode::CheckFailed, message: format!("the drill failed: {why}") }),
        (Ok(()), Err(x)) => Err(CliError {
            code: ExitCode::CheckFailed,
            message: format!("the drill passed but its result was not recorded: {x}"),
        }),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

struct Ctx<'a> {
    live: &'a Live,
    client: &'a Client,
    approver: Option<&'a Client>,
    caps: Vec<String>,
    git_ref: Option<String>,
    pipeline: Option<String>,
    wait: Duration,
    work: PathBuf,
}

/// `git push` of HEAD to the drill ref, with the grant token as a push option.
fn push(work: &Path, refname: &str, who: &str, token: &str) -> Result<std::process::Output, String> {
    git_cmd()
        .arg("-C")
        .arg(work)
        .args(["push", "-q", "-o", &format!("breakglass={token}"), "origin", &format!("HEAD:{refname}")])
        // What a local Git server would say; a remote one says it from its own login.
        .env("BREAKGLASS_USER", who)
        .output()
        .map_err(|x| format!("cannot run git push: {x}"))
}

fn commit(work: &Path, grant: &str, n: u32) -> Result<(), String> {
    let trailer = format!("Break-Glass: {grant}");
    let msg = format!("breakglass drill {n}");
    git(work, &["commit", "-q", "--allow-empty", "-m", &msg, "--trailer", &trailer]).map(|_| ())
}

async fn steps(d: &mut Drill, c: &Ctx<'_>, grant_id: &mut Option<String>) -> Result<(), String> {
    let who = d
        .step("server reachable", async {
            let w = c.client.whoami().await.map_err(e)?;
            if w.kind != "session" {
                return Err(format!("a drill runs as a person (breakglass login), not as API token {}", w.name));
            }
            Ok((w.name.clone(), format!("{} as {}", c.live.server, w.name)))
        })
        .await?;

    let grant = d
        .step("request (drill)", async {
            let g = c
                .client
                .request_grant(&GrantRequest {
                    scopes: c.live.scopes.clone(),
                    capabilities: c.caps.clone(),
                    duration: c.live.duration.clone(),
                    reason: "breakglass drill: rehearsal, no real change".into(),
                    incident: None,
                    drill: true,
                })
                .await
                .map_err(e)?;
            let detail = format!("{} {}", g.id, g.state.as_str());
            Ok((g, detail))
        })
        .await?;
    *grant_id = Some(grant.id.clone());

    let grant = d
        .step("approval", async {
            if grant.state.as_str() == "active" {
                return Ok((grant.clone(), "approved at once by policy".into()));
            }
            if let Some(a) = c.approver {
                let g = a
                    .approve(&grant.id, &ApproveRequest { comment: Some("breakglass drill".into()) })
                    .await
                    .map_err(e)?;
                if g.state.as_str() == "active" {
                    return Ok((g, "approved by the second principal".into()));
                }
            }
            wait_active(c.client, &grant.id, c.wait).await.map(|g| (g, "approved by a person".into()))
        })
        .await?;

    let token = d
        .step("grant token", async {
            let t = c.client.grant_token(&grant.id).await.map_err(e)?;
            Ok((t.token, format!("key {}", t.key_id)))
        })
        .await?;

    if let (Some(repo), Some(refname)) = (&c.live.repo, &c.git_ref) {
        d.step("protected push, tagged commit", async {
            git(Path::new("."), &["clone", "-q", repo, c.work.to_str().unwrap_or_default()])?;
            git(&c.work, &["config", "user.name", &who])?;
            git(&c.work, &["config", "user.email", &format!("{who}@breakglass-drill.invalid")])?;
            let _ = git(&c.work, &["fetch", "-q", "origin", refname])
                .and_then(|_| git(&c.work, &["checkout", "-q", "FETCH_HEAD"]));
            commit(&c.work, &grant.id, 1)?;
            let out = push(&c.work, refname, &who, &token)?;
            if !out.status.success() {
                return Err(format!("refused: {}", out_text(&out)));
            }
            Ok(((), format!("accepted on {refname}")))
        })
        .await?;
    }

    if let (Some(gate), Some(scope)) = (&c.live.gate, &c.pipeline) {
        d.step("CI gate relaxed", async {
            let exe = std::env::current_exe().map_err(e)?;
            let spool = c.work.with_file_name("ci-spool");
            let out = clean_cmd(&exe)
                .args(["ci", "gate", gate, "--scope", scope, "--", "sh", "-c", "exit 1"])
                .env("BREAKGLASS_SERVER", &c.live.server)
                .env("BREAKGLASS_TOKEN", &token)
                .env("BREAKGLASS_SPOOL", spool)
                .env_remove("GITHUB_ACTIONS")
                .env_remove("GITLAB_CI")
                .output()
                .map_err(e)?;
            if !out.status.success() {
                return Err(format!("the failing gate {gate} was not skipped: {}", out_text(&out)));
            }
            Ok(((), format!("{gate} skipped")))
        })
        .await?;
    }

    d.step("grant ended (revoked)", async {
        let g = c.client.revoke(&grant.id, "breakglass drill complete").await.map_err(e)?;
        if g.state.as_str() != "revoked" {
            return Err(format!("grant {} is {} after revocation", g.id, g.state.as_str()));
        }
        Ok(((), "revoked: a live server's clock is not moved".into()))
    })
    .await?;

    if let (Some(_), Some(refname)) = (&c.live.repo, &c.git_ref) {
        d.step("same push refused again", async {
            commit(&c.work, &grant.id, 2)?;
            let out = push(&c.work, refname, &who, &token)?;
            if out.status.success() {
                return Err("a push under the ended grant was accepted: are the hooks installed?".into());
            }
            Ok(((), "protection is back".into()))
        })
        .await?;
    }

    let review = d
        .step("review opened", async {
            let r = c.client.review(&grant.id).await.map_err(e)?;
            let kinds: Vec<&str> = r.timeline.iter().map(|t| t.kind.as_str()).collect();
            let mut want = vec!["grant.requested", "grant.activated", "grant.revoked", "review.opened"];
            if c.live.repo.is_some() {
                want.push("git.push");
            }
            if c.live.gate.is_some() {
                want.push("ci.gate");
            }
            if let Some(missing) = want.iter().find(|k| !kinds.contains(k)) {
                return Err(format!("the review's timeline lacks {missing}: {kinds:?}"));
            }
            Ok((r.id.clone(), format!("{} with {} entries", r.id, r.timeline.len())))
        })
        .await?;

    d.step("log verified (review report)", async {
        let report = c.client.export_review(&review).await.map_err(e)?;
        let v = breakglass_core::report::verify(&report, None).map_err(e)?;
        Ok(((), format!("{} events proven against checkpoint {}", v.events, v.checkpoint.size)))
    })
    .await?;
    Ok(())
}

/// Polls until a person approves (or denies) the request, at most `wait`.
async fn wait_active(client: &Client, id: &str, wait: Duration) -> Result<GrantView, String> {
    eprintln!("waiting up to {}s for someone to approve drill grant {id}: breakglass approve {id}", wait.as_secs());
    let until = Instant::now() + wait;
    loop {
        let g = client.grant(id).await.map_err(e)?;
        match g.state.as_str() {
            "active" => return Ok(g),
            "pending" if Instant::now() < until => tokio::time::sleep(Duration::from_millis(500)).await,
            "pending" => return Err(format!("nobody approved {id} within the wait (--wait)")),
            other => return Err(format!("grant {id} is {other}")),
        }
    }
}
