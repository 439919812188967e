//! `breakglass drill` (issue 8): the whole event in a sandbox passes, and a
//! broken sandbox fails at the step that is broken, saying why; the same
//! steps against a live server run on drill scopes only, every entry marked
//! as a drill, and results are kept for `drill history`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::git::GitSetup;
use crate::support::BIN;

fn drill(args: &[&str]) -> (Option<i32>, Value, String) {
    drill_in(args, &std::env::temp_dir().join(format!("bg-drill-history-{}.jsonl", std::process::id())))
}

fn drill_in(args: &[&str], history: &Path) -> (Option<i32>, Value, String) {
    let out = Command::new(BIN)
        .arg("drill")
        .args(args)
        .arg("--json")
        .env("BREAKGLASS_DRILL_HISTORY", history)
        .env_remove("BREAKGLASS_DATABASE_URL")
        .env_remove("BREAKGLASS_SERVER")
        .env_remove("BREAKGLASS_TOKEN")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_drill_passes_every_step_in_its_sandbox() {
    let (code, v, err) = drill(&[]);
    assert_eq!(code, Some(0), "{err}\n{v}");
    let steps: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "sandbox",
            "repository with hooks",
            "incident arrives",
            "login (ssh-keygen -Y sign)",
            "request, approved by the incident",
            "grant token",
            "protected push, tagged commit",
            "CI gate relaxed",
            "expiry (clock moved 31m)",
            "same push refused again",
            "review opened",
            "log verified",
        ]
    );
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true && s["ms"].as_f64().unwrap() >= 0.0));
    assert_eq!(v["ok"], true);
}

#[test]
fn a_broken_sandbox_fails_the_drill_at_the_broken_step() {
    for (fault, step, needle) in [
        ("hooks-removed", "same push refused again", "are the hooks installed?"),
        ("policy-denies", "request, approved by the incident", "forbidden by drill-fault-deny-everything"),
    ] {
        let (code, v, err) = drill(&["--fault", fault]);
        assert_eq!(code, Some(1), "{fault}: {err}");
        assert_eq!(v["ok"], false);
        let last = v["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["step"].as_str(), last["ok"].as_bool()), (Some(step), Some(false)), "{fault}: {v}");
        assert!(err.contains(step) && err.contains(needle), "{fault}: {err}");
    }
}

#[test]
fn sandbox_drills_are_kept_for_history() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("drills.jsonl");
    let (code, _, err) = drill_in(&[], &history);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, _) = drill_in(&["--fault", "hooks-removed"], &history);
    assert_eq!(code, Some(1));
    let out = Command::new(BIN)
        .args(["drill", "history", "--json"])
        .env("BREAKGLASS_DRILL_HISTORY", &history)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok: Vec<bool> = v["drills"].as_array().unwrap().iter().map(|d| d["ok"].as_bool().unwrap()).collect();
    assert_eq!(ok, [false, true], "newest first: {v}");
    assert!(v["drills"][1]["steps"].as_array().unwrap().len() == 12, "{v}");
    // A damaged history is named, not ignored.
    std::fs::write(&history, "{not json\n").unwrap();
    let out = Command::new(BIN).args(["drill", "history"]).env("BREAKGLASS_DRILL_HISTORY", &history).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Lets on-call engineers rehearse on the drill project's test gate.
const DRILL_GATE_POLICY: &str = r#"
@id("oncall-drill-pipeline")
@approvals("1")
@max_duration("30m")
permit (principal in Breakglass::Group::"oncall", action == Breakglass::Action::"request", resource is Breakglass::PipelineStage)
when { resource.project == "breakglass-drill" && context.reason != "" };

@id("oncall-drill-skip-gate")
permit (principal in Breakglass::Group::"oncall", action == Breakglass::Action::"skip-gate", resource is Breakglass::PipelineStage)
when { resource.project == "breakglass-drill" && context.gate == "drill-gate" };
"#;

#[test]
fn a_live_drill_runs_on_drill_scopes_marks_every_entry_and_is_stored() {
    let s = GitSetup::for_repo("breakglass-drill", DRILL_GATE_POLICY);
    let (srv, bare) = (&s.srv, &s.bare);
    let bob_creds = srv.path("bob.credentials.toml");
    let args = [
        "drill",
        "--server",
        &srv.url,
        "--repo",
        bare.to_str().unwrap(),
        "--scope",
        "git:breakglass-drill@refs/heads/main",
        "--scope",
        "pipeline:breakglass-drill/test",
        "--gate",
        "drill-gate",
        "--approver-credentials",
        bob_creds.to_str().unwrap(),
        "--json",
    ];
    let out = srv.cli("alice", &args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{}\n{v}", String::from_utf8_lossy(&out.stderr));
    let steps: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "server reachable",
            "request (drill)",
            "approval",
            "grant token",
            "protected push, tagged commit",
            "CI gate relaxed",
            "grant ended (revoked)",
            "same push refused again",
            "review opened",
            "log verified (review report)",
        ],
        "{v}"
    );
    let grant = v["grant"].as_str().unwrap().to_owned();
    assert!(grant.starts_with("gd_"), "{grant}");
    assert!(v["recorded"]["index"].as_u64().is_some(), "{v}");

    // Every entry naming the drill grant says it is a drill; nothing else does.
    let log = Command::new(BIN)
        .args(["audit", "tail", "-n", "100000", "--json", "--data-dir"])
        .arg(&srv.data)
        .output()
        .unwrap();
    let log: Value = serde_json::from_slice(&log.stdout).unwrap();
    let entries = log.as_array().cloned().unwrap_or_else(|| log["entries"].as_array().unwrap().clone());
    let of_grant: Vec<&Value> = entries.iter().filter(|e| e["grant"] == grant.as_str()).collect();
    let kinds: Vec<&str> = of_grant.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in [
        "grant.requested",
        "grant.approved",
        "grant.activated",
        "git.push",
        "ci.gate",
        "grant.revoked",
        "review.opened",
        "drill.completed",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    assert!(of_grant.iter().all(|e| e["data"]["drill"] == true), "{of_grant:?}");
    assert!(entries.iter().filter(|e| e["grant"] != grant.as_str()).all(|e| e["data"].get("drill").is_none()));

    // The server keeps the result; history shows it.
    let out = srv.cli("alice", &["drill", "history", "--server", &srv.url, "--json"]);
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["drills"].as_array().unwrap().len(), 1, "{h}");
    assert_eq!((h["drills"][0]["by"].as_str(), h["drills"][0]["ok"].as_bool()), (Some("alice"), Some(true)));
    assert_eq!(h["drills"][0]["grant"], grant.as_str());

    // A drill never opens a real scope: refused at the request, and the failure is kept too.
    let out =
        srv.cli("alice", &["drill", "--server", &srv.url, "--scope", "git:payments/api@refs/heads/main", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = v["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["step"], "request (drill)", "{v}");
    assert!(last["detail"].as_str().unwrap().contains("only drill scopes"), "{v}");
    let out = srv.cli("alice", &["drill", "history", "--server", &srv.url, "--json"]);
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["drills"][0]["ok"], false, "{h}");
}
