//! `breakglass drill`: a whole break-glass event in a sandbox, every step
//! timed, so a team can rehearse before the real alarm. The sandbox is made
//! here and removed afterwards: a scratch data directory, a child `breakglass
//! serve` with a test clock, SSH keys from `ssh-keygen`, a bare repository
//! with the hooks, and a simulated incident. Steps: the incident arrives,
//! the on-call engineer logs in and breaks glass (approved at once by the
//! incident), takes a grant token, pushes a tagged commit to protected main,
//! a CI gate is relaxed, the grant expires (the sandbox's clock moves), the
//! same kind of push is refused again, the review has opened, the log
//! verifies. A step that fails fails the drill, saying which and why.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use breakglass_client::Client;
use breakglass_core::api::{CreateApiToken, DrillReport, DrillStep, GrantRequest};
use breakglass_core::time::Clock;
use serde_json::json;

use crate::error::{CliError, CliResult, ExitCode, internal};
use crate::print_json;
use crate::sandbox::{clean_cmd, git_cmd, login, new_ssh_key, run_tool, start_server};

pub mod history;
pub mod live;

const ORIGIN: &str = "drill.breakglass.local/sandbox";
const SECRET: &str = "drill-incident-secret-0123456789";
const REPO: &str = "drill/app";
const GIT_SCOPE: &str = "git:drill/app@refs/heads/main";
const PIPELINE_SCOPE: &str = "pipeline:drill/app/deploy@production";

/// The sandbox's policy on top of the example one: on-call engineers who
/// respond to a severity 1-2 incident may relax the drill's integration tests.
const DRILL_POLICY: &str = r#"// Written by `breakglass drill`.
@id("drill-request-pipeline")
@approvals("1")
@max_duration("60m")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"request",
  resource is Breakglass::PipelineStage
)
when { resource.project == "drill/app" && context.reason != "" };

@id("drill-skip-integration-tests")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"skip-gate",
  resource is Breakglass::PipelineStage
)
when { resource.project == "drill/app" && context.gate == "integration-tests" };

@id("drill-incident-auto-approve-pipeline")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"auto-approve",
  resource is Breakglass::PipelineStage
)
when {
  context.incident.present && context.incident.severity <= 2 && context.incident.requester_is_responder
};
"#;

/// Refuses every request: what `--fault policy-denies` puts in the sandbox.
const DENY_ALL: &str = r#"// Written by `breakglass drill --fault policy-denies`.
@id("drill-fault-deny-everything")
forbid (principal, action == Breakglass::Action::"request", resource);
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Remove the repository's hooks after installing them.
    HooksRemoved,
    /// Install a policy that refuses every request.
    PolicyDenies,
}

struct Drill {
    steps: Vec<DrillStep>,
    started: Instant,
}

impl Drill {
    fn new() -> Drill {
        Drill { steps: Vec::new(), started: Instant::now() }
    }

    /// The report of the steps run so far, ending with `result`.
    fn report(self, result: &Result<(), String>, grant: Option<String>) -> DrillReport {
        let total_ms = (self.started.elapsed().as_secs_f64() * 1e5).round() / 100.0;
        DrillReport { ok: result.is_ok(), total_ms, steps: self.steps, failed: result.as_ref().err().cloned(), grant }
    }

    /// Runs one step; its time is recorded whatever happens.
    async fn step<T>(
        &mut self,
        name: &'static str,
        f: impl std::future::Future<Output = Result<(T, String), String>>,
    ) -> Result<T, String> {
        let t = Instant::now();
        let res = f.await;
        let ms = (t.elapsed().as_secs_f64() * 1e5).round() / 100.0;
        match res {
            Ok((v, detail)) => {
                self.steps.push(DrillStep { step: name.into(), ms, ok: true, detail });
                Ok(v)
            }
            Err(e) => {
                self.steps.push(DrillStep { step: name.into(), ms, ok: false, detail: e.clone() });
                Err(format!("step {name:?} failed: {e}"))
            }
        }
    }
}

fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

fn out_text(o: &std::process::Output) -> String {
    let s = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    s.trim().lines().last().unwrap_or("").to_owned()
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = git_cmd().arg("-C").arg(dir).args(args).output().map_err(|x| format!("cannot run git: {x}"))?;
    if !out.status.success() {
        return Err(format!("git {}: {}", args.join(" "), out_text(&out)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `git push origin main` as `who` (the identity the Git server would pass).
fn push(work: &Path, who: &str) -> Result<std::process::Output, String> {
    git_cmd()
        .arg("-C")
        .arg(work)
        .args(["push", "-q", "origin", "main"])
        .env("BREAKGLASS_USER", who)
        .output()
        .map_err(|x| format!("cannot run git push: {x}"))
}

fn commit(work: &Path, n: u32, grant: Option<&str>) -> Result<(), String> {
    std::fs::write(work.join("CHANGELOG"), format!("fix {n}\n")).map_err(e)?;
    git(work, &["add", "CHANGELOG"])?;
    let mut args = vec!["commit", "-q", "-m", "drill: hotfix"];
    let trailer;
    if let Some(g) = grant {
        trailer = format!("Break-Glass: {g}");
        args.extend(["--trailer", &trailer]);
    }
    git(work, &args).map(|_| ())
}

/// Runs the sandbox drill. `clock` gives the times that enter what the drill
/// sends and keeps (the incident's signed timestamp, the history record);
/// the steps' durations are measured with `Instant`.
pub async fn run(json: bool, fault: Option<Fault>, keep: bool, clock: &dyn Clock) -> CliResult {
    let scratch = tempfile::tempdir().map_err(|x| internal(format!("cannot make the sandbox directory: {x}")))?;
    let root = scratch.path().to_owned();
    let mut drill = Drill::new();
    let result = steps(&mut drill, &root, fault, clock).await;
    let report = drill.report(&result, None);
    if keep {
        let kept = scratch.keep();
        eprintln!("sandbox kept at {}", kept.display());
    }
    // Kept for `breakglass drill history`; a drill that cannot be kept still counts.
    let kept = history::append_local(&report, clock.now());
    if json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    if let Err(x) = kept {
        eprintln!("warning: the result was not kept for `drill history`: {}", x.message);
    }
    match result {
        Ok(()) => Ok(()),
        Err(why) => Err(CliError { code: ExitCode::CheckFailed, message: format!("the drill failed: {why}") }),
    }
}

/// The table of steps with their times.
fn print_report(report: &DrillReport) {
    println!("{:<34} {:>9}  result", "step", "ms");
    for s in &report.steps {
        println!("{:<34} {:>9.1}  {} {}", s.step, s.ms, if s.ok { "ok  " } else { "FAIL" }, s.detail);
    }
    println!("{:<34} {:>9.1}  {}", "total", report.total_ms, if report.ok { "drill passed" } else { "drill FAILED" });
}

async fn steps(d: &mut Drill, root: &Path, fault: Option<Fault>, clock: &dyn Clock) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|x| format!("cannot find this executable: {x}"))?;
    let data = root.join("data");

    // The sandbox: keys, a server with a test clock and the incident receiver, a repository with hooks.
    let (srv, url, admin_token, alice_key, service) = d
        .step("sandbox", async {
            std::fs::create_dir(&data).map_err(e)?;
            // It holds a secret: owner-only, or the server refuses it (issue 14).
            crate::datadir::create_file(
                &data.join("breakglass.toml"),
                format!("[log]\norigin = \"{ORIGIN}\"\n\n[incidents]\ngeneric_secrets = [\"{SECRET}\"]\n").as_bytes(),
                0o600,
            )
            .map_err(e)?;
            let mut keys = Vec::new();
            for name in ["alice", "bob"] {
                keys.push(new_ssh_key(&root.join(name), name).map_err(|x| x.message)?);
            }
            let (srv, url, admin) =
                start_server(&data, ORIGIN, &["--unsafe-test-clock"]).await.map_err(|x| x.message)?;
            std::fs::write(
                data.join("principals.toml"),
                format!(
                    "[[principal]]\nname = \"alice\"\ngroups = [\"oncall\"]\nemails = [\"alice@drill.example\"]\nssh_keys = [\"{}\"]\n\n\
                     [[principal]]\nname = \"bob\"\ngroups = [\"approvers\"]\nssh_keys = [\"{}\"]\n",
                    keys[0], keys[1]
                ),
            )
            .map_err(e)?;
            std::fs::write(data.join("policy/drill.cedar"), DRILL_POLICY).map_err(e)?;
            if fault == Some(Fault::PolicyDenies) {
                std::fs::write(data.join("policy/fault.cedar"), DENY_ALL).map_err(e)?;
            }
            let admin_client = Client::new(&url, Some(admin.clone())).map_err(e)?;
            admin_client.reload_policy().await.map_err(e)?;
            let service = admin_client
                .create_api_token(&CreateApiToken { name: "drill-hooks".into(), role: "service".into(), expires_in: None })
                .await
                .map_err(e)?
                .token;
            // 0600 from the start: `git install` and the hooks refuse a token file others can read.
            crate::git::hook::write_private(&root.join("hook-token"), service.as_bytes()).map_err(e)?;
            Ok(((srv, url, admin, root.join("alice"), service), "a scratch server with a test clock".into()))
        })
        .await?;
    let _keep_alive = srv;
    let bare = root.join("app.git");
    let work = root.join("work");
    d.step("repository with hooks", async {
        git(root, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap_or_default()])?;
        let mut install = Command::new(&exe);
        install
            .args(["git", "install", "--repo"])
            .arg(&bare)
            .args(["--name", REPO, "--protect", "refs/heads/main", "--updater", "release-bot", "--server", &url])
            .arg("--token-file")
            .arg(root.join("hook-token"))
            .arg("--jwks")
            .arg(data.join("grant-token.jwks.json"));
        run_tool(&mut install, "breakglass git install").map_err(|x| x.message)?;
        git(root, &["clone", "-q", bare.to_str().unwrap_or_default(), work.to_str().unwrap_or_default()])?;
        git(&work, &["config", "user.name", "Alice Drill"])?;
        git(&work, &["config", "user.email", "alice@drill.example"])?;
        git(&work, &["checkout", "-q", "-b", "main"])?;
        commit(&work, 0, None)?;
        let out = push(&work, "release-bot")?;
        if !out.status.success() {
            return Err(format!("the first push of main was refused: {}", out_text(&out)));
        }
        if fault == Some(Fault::HooksRemoved) {
            for h in ["pre-receive", "post-receive"] {
                let _ = std::fs::remove_file(bare.join("hooks").join(h));
            }
        }
        Ok(((), "bare repository, main protected".into()))
    })
    .await?;

    d.step("incident arrives", async {
        let body = json!({ "id": "DRILL-1", "title": "drill: payments down", "severity": 1, "status": "triggered",
            "services": ["drill-app"], "responders": [{ "email": "alice@drill.example" }] })
        .to_string();
        // Seconds since the epoch, as the receiver's signature scheme counts them.
        let ts = clock.now().0.div_euclid(1000);
        let sig = breakglass_core::incident::sign_generic(SECRET.as_bytes(), ts, body.as_bytes());
        let poster = breakglass_client::Poster::new(std::time::Duration::from_secs(10)).map_err(e)?;
        poster
            .post_json(
                &format!("{url}/v1/incidents/generic"),
                body,
                &[("x-breakglass-timestamp", ts.to_string()), ("x-breakglass-signature", sig)],
            )
            .await?;
        Ok(((), "severity 1, alice responding".into()))
    })
    .await?;

    let alice = d
        .step("login (ssh-keygen -Y sign)", async {
            let session = login(&url, "alice", &alice_key, root).await.map_err(|x| x.message)?;
            Ok((Client::new(&url, Some(session)).map_err(e)?, "alice".into()))
        })
        .await?;

    let grant = d
        .step("request, approved by the incident", async {
            let g = alice
                .request_grant(&GrantRequest {
                    scopes: vec![GIT_SCOPE.into(), PIPELINE_SCOPE.into()],
                    capabilities: vec!["push".into(), "skip-gate:integration-tests".into()],
                    duration: "30m".into(),
                    reason: "drill: payments down".into(),
                    incident: None,
                    drill: false,
                })
                .await
                .map_err(e)?;
            if g.state.as_str() != "active" {
                return Err(format!("grant {} is {}, not active at once", g.id, g.state.as_str()));
            }
            let detail = format!("{} active, incident {}", g.id, g.incident.clone().unwrap_or_default());
            Ok((g, detail))
        })
        .await?;

    d.step("grant token", async {
        let t = alice.grant_token(&grant.id).await.map_err(e)?;
        Ok(((), format!("EdDSA, key {}", t.key_id)))
    })
    .await?;

    d.step("protected push, tagged commit", async {
        commit(&work, 1, Some(&grant.id))?;
        let out = push(&work, "alice")?;
        if !out.status.success() {
            return Err(format!("refused: {}", out_text(&out)));
        }
        Ok(((), "accepted on refs/heads/main".into()))
    })
    .await?;

    d.step("CI gate relaxed", async {
        let out = clean_cmd(&exe)
            .args(["ci", "gate", "integration-tests", "--scope", PIPELINE_SCOPE, "--", "sh", "-c", "exit 1"])
            .env("BREAKGLASS_SERVER", &url)
            .env("BREAKGLASS_TOKEN", &service)
            .env("BREAKGLASS_PRINCIPAL", "alice")
            .env("BREAKGLASS_SPOOL", root.join("ci-spool"))
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITLAB_CI")
            .output()
            .map_err(e)?;
        if !out.status.success() {
            return Err(format!("the failing gate was not skipped: {}", out_text(&out)));
        }
        Ok(((), "integration-tests skipped".into()))
    })
    .await?;

    d.step("expiry (clock moved 31m)", async {
        let admin = Client::new(&url, Some(admin_token.clone())).map_err(e)?;
        admin.advance_test_clock(31 * 60_000).await.map_err(e)?;
        let g = alice.grant(&grant.id).await.map_err(e)?;
        if g.state.as_str() != "expired" {
            return Err(format!("grant {} is {} after its end", g.id, g.state.as_str()));
        }
        Ok(((), "expired".into()))
    })
    .await?;

    d.step("same push refused again", async {
        commit(&work, 2, Some(&grant.id))?;
        let out = push(&work, "alice")?;
        if out.status.success() {
            return Err("a push under the expired grant was accepted: are the hooks installed?".into());
        }
        git(&work, &["reset", "-q", "--hard", "HEAD~1"])?;
        Ok(((), "protection is back".into()))
    })
    .await?;

    d.step("review opened", async {
        let r = alice.review(&grant.id).await.map_err(e)?;
        let kinds: Vec<&str> = r.timeline.iter().map(|t| t.kind.as_str()).collect();
        for want in ["git.push", "ci.gate", "grant.expired", "review.opened"] {
            if !kinds.contains(&want) {
                return Err(format!("the review's timeline lacks {want}: {kinds:?}"));
            }
        }
        Ok(((), format!("{} with {} entries", r.id, r.timeline.len())))
    })
    .await?;

    d.step("log verified", async {
        let out = Command::new(&exe)
            .args(["audit", "verify", "--json", "--data-dir"])
            .arg(&data)
            .env_remove("BREAKGLASS_DATABASE_URL")
            .output()
            .map_err(e)?;
        if !out.status.success() {
            return Err(out_text(&out));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(e)?;
        Ok(((), format!("{} entries, {} checkpoints", v["report"]["size"], v["report"]["checkpoints"])))
    })
    .await?;
    Ok(())
}
