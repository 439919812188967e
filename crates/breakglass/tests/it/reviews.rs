//! Post-event review end to end (issue 7): a real push under a grant and a
//! real CI gate skipped under it, then expiry; the review opens with exactly
//! those events; the grantee cannot sign it off, a reviewer can; the exported
//! report verifies offline, and fails when an event is edited or dropped.

use std::process::Command;

use serde_json::Value;

use crate::git::{GitSetup, MAIN};
use crate::support::BIN;

const PIPELINE: &str = "pipeline:payments/api/deploy@staging";

/// On-call may also relax the integration tests of deploy stages.
const PIPELINE_POLICY: &str = r#"
@id("oncall-request-deploy")
@approvals("1")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"request",
  resource is Breakglass::PipelineStage
)
when { resource.stage == "deploy" && context.reason != "" };

@id("oncall-skip-integration-tests")
permit (
  principal in Breakglass::Group::"oncall",
  action == Breakglass::Action::"skip-gate",
  resource is Breakglass::PipelineStage
)
when { context.gate == "integration-tests" };
"#;

fn verify_report(path: &std::path::Path, key: &str) -> std::process::Output {
    Command::new(BIN).args(["audit", "verify", "--key", key, "--report"]).arg(path).output().unwrap()
}

#[test]
fn a_review_holds_the_push_and_the_gate_only_a_reviewer_signs_it_and_its_report_proves_it() {
    let s = GitSetup::new();
    let srv = &s.srv;
    std::fs::write(srv.data.join("policy/pipeline.cedar"), PIPELINE_POLICY).unwrap();
    srv.ok("admin", &["policy", "reload"]);
    let g = srv.json(
        "alice",
        &["request", "--scope", MAIN, "--scope", PIPELINE, "--cap", "push", "--cap", "skip-gate:integration-tests"]
            .into_iter()
            .chain(["--for", "30m", "--reason", "INC-9: payments down"])
            .collect::<Vec<_>>(),
    );
    let grant = g["id"].as_str().unwrap().to_owned();
    assert_eq!(srv.json("bob", &["approve", &grant])["state"], "active");

    // A real push of a tagged commit to protected main.
    std::fs::create_dir_all(s.work.join("src")).unwrap();
    let sha = s.commit("src/pay.rs", "fn pay() {}\n", "hotfix payments", Some(&grant));
    let out = s.push_as(Some("alice"), &["origin", "main"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A real CI gate, skipped under the grant (the step asks with a service token for alice's job).
    let token = std::fs::read_to_string(&s.token_file).unwrap();
    let gate = Command::new(BIN)
        .args(["ci", "gate", "integration-tests", "--scope", PIPELINE, "--", "sh", "-c", "exit 1"])
        .env("BREAKGLASS_SERVER", &srv.url)
        .env("BREAKGLASS_TOKEN", token.trim())
        .env("BREAKGLASS_PRINCIPAL", "alice")
        .env("BREAKGLASS_SPOOL", srv.path("spool"))
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap();
    assert!(gate.status.success(), "the failing gate was skipped: {}", String::from_utf8_lossy(&gate.stderr));

    // Expiry opens the review.
    srv.advance_clock(31 * 60_000);
    let r = srv.json("bob", &["review", "show", &grant]);
    let kinds: Vec<&str> = r["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "grant.requested",
            "grant.approved",
            "grant.activated",
            "git.push.decision",
            "git.push",
            "ci.gate",
            "grant.expired",
            "review.opened"
        ],
        "{r}"
    );
    let push = r["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "git.push").unwrap();
    assert_eq!(push["data"]["commits"][0]["sha"], sha.as_str());
    assert_eq!(push["data"]["commits"][0]["files"], serde_json::json!(["src/pay.rs"]));
    let gate = r["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "ci.gate").unwrap();
    assert_eq!((gate["data"]["mode"].as_str(), gate["data"]["ran"].as_bool()), (Some("skip"), Some(false)));
    let review = r["id"].as_str().unwrap().to_owned();
    assert!(srv.ok("admin", &["review", "list", "--open"]).contains(&review));

    // alice may not sign off her own use; bob may.
    srv.refused("alice", &["review", "approve", &review, "--notes", "all good"], 1, "cannot review");
    let v = srv.json(
        "bob",
        &[
            "review",
            "approve",
            &review,
            "--notes",
            "hotfix matches INC-9",
            "--lesson",
            "keep a canary",
            "--follow-up",
            "PAY-7",
        ],
    );
    assert_eq!((v["status"].as_str(), v["reviewer"].as_str()), (Some("approved"), Some("bob")));

    let stats = srv.json("admin", &["stats"]);
    assert_eq!(
        (stats["reviews_approved"].as_u64(), stats["by_principal"][0]["name"].as_str()),
        (Some(1), Some("alice"))
    );

    // The report, in each form, verifies offline against the pinned log key.
    let key = String::from_utf8(
        Command::new(BIN).args(["audit", "key", "--data-dir"]).arg(&srv.data).output().unwrap().stdout,
    )
    .unwrap();
    let key = key.lines().find(|l| l.contains('+')).unwrap_or(key.trim()).trim().to_owned();
    for format in ["json", "md", "html"] {
        let file = srv.path(&format!("report.{format}"));
        srv.ok("bob", &["review", "export", &review, "--format", format, "--output", file.to_str().unwrap()]);
        let out = verify_report(&file, &key);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("9 entries"), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let html = std::fs::read_to_string(srv.path("report.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<link"), "no external assets");

    // Tampering: each of these fails verification.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(srv.path("report.json")).unwrap()).unwrap();
    let push_at = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["entry"].as_str().unwrap().contains("\"git.push\""))
        .unwrap();
    let mut edited = json.clone();
    edited["events"][push_at]["entry"] =
        Value::String(json["events"][push_at]["entry"].as_str().unwrap().replace("src/pay.rs", "src/other.rs"));
    let mut dropped = json.clone();
    dropped["events"].as_array_mut().unwrap().remove(push_at);
    dropped["review"]["timeline"].as_array_mut().unwrap().remove(push_at);
    let mut relabelled = json.clone();
    relabelled["review"]["timeline"][push_at]["summary"] = Value::String("nothing happened".into());
    let mut whitewashed = json.clone();
    whitewashed["review"]["notes"] = Value::String("perfect".into());
    for (what, report, needle) in [
        ("an edited event", edited.to_string(), "not the one in the log"),
        ("a dropped event", dropped.to_string(), "missing entries"),
        ("an edited summary", relabelled.to_string(), "summary"),
        ("edited sign-off notes", whitewashed.to_string(), "sign-off"),
        ("edited readable text", html.replacen("hotfix matches INC-9", "no concerns", 1), "edited"),
    ] {
        let file = srv.path("tampered");
        std::fs::write(&file, report).unwrap();
        let out = verify_report(&file, &key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {err}");
    }
    // Another log's key does not verify it either.
    let other = "breakglass.test/other+0a1b2c3d+AaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAa";
    assert!(!verify_report(&srv.path("report.json"), other).status.success());
}

#[test]
fn an_evidence_bundle_of_a_date_range_verifies_offline_and_fails_when_tampered_with() {
    let s = GitSetup::new();
    let srv = &s.srv;
    // Entries on day one, then on day three.
    s.grant(MAIN, &["push"], "30m");
    srv.advance_clock(2 * 24 * 3_600_000);
    // (Two days on, the sessions have expired: log in again.)
    for who in ["alice", "bob"] {
        let key = srv.path("keys").join(who);
        srv.ok(who, &["login", "--principal", who, "--key", key.to_str().unwrap()]);
    }
    s.grant(MAIN, &["push"], "30m");
    srv.advance_clock(60_000);
    let log = s.log();
    let times: Vec<&str> = log.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let day3 = &times.last().unwrap()[..10];
    let first_day3 = times.iter().position(|t| t.starts_with(day3)).unwrap() as u64;
    let bundle = srv.path("evidence.json");
    let out = Command::new(BIN)
        .args(["audit", "export", "--bundle"])
        .arg(&bundle)
        .args(["--from", day3, "--to", day3, "--json", "--data-dir"])
        .arg(&srv.data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["start"].as_u64(), v["end"].as_u64()), (Some(first_day3), Some(log.len() as u64)), "{v}");

    // Offline: no data directory, no server; the key pinned.
    let key = String::from_utf8(
        Command::new(BIN).args(["audit", "key", "--data-dir"]).arg(&srv.data).output().unwrap().stdout,
    )
    .unwrap();
    let key = key.lines().find(|l| l.contains('+')).unwrap_or(key.trim()).trim().to_owned();
    let verify = |file: &std::path::Path| {
        Command::new(BIN)
            .args(["audit", "verify", "--key", &key, "--bundle"])
            .arg(file)
            .env_remove("BREAKGLASS_DATA_DIR")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    };
    let out = verify(&bundle);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let mut edited = json.clone();
    edited["entries"][0]["entry"] =
        Value::String(json["entries"][0]["entry"].as_str().unwrap().replacen("\"kind\":\"", "\"kind\":\"x", 1));
    let mut dropped = json.clone();
    dropped["entries"].as_array_mut().unwrap().remove(1);
    let mut unfenced = json.clone();
    unfenced["before"] = Value::Null;
    let mut shifted = json.clone();
    shifted["start"] = Value::from(first_day3 + 1);
    // The left-out entry poses as the fence before the range.
    shifted["before"] = shifted["entries"].as_array_mut().unwrap().remove(0);
    for (what, b, needle) in [
        ("an edited entry", edited, "root"),
        ("a dropped entry", dropped, "not exactly indexes"),
        ("the fence before removed", unfenced, "just before"),
        ("the range's first entry left out", shifted, "before the range is not before"),
    ] {
        let file = srv.path("tampered.json");
        std::fs::write(&file, b.to_string()).unwrap();
        let out = verify(&file);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {err}");
    }
    // Bad input names the flag.
    let out = Command::new(BIN)
        .args(["audit", "export", "--bundle"])
        .arg(srv.path("x.json"))
        .args(["--from", "yesterday", "--to", day3, "--data-dir"])
        .arg(&srv.data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from \"yesterday\""));
    assert!(!srv.path("x.json").exists(), "nothing written");
}
